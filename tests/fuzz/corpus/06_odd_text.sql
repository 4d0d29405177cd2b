SELECT "double quoted", `back quoted`, 'unterminated
FROM t /* comment */ -- trailing
WHERE é = 'ü' AND x = 99999999999999999999999 AND y = 1e400 AND z = .5;
SELECT ((((((((((1)))))))))) FROM t;
;;;
SELECT ? + ? FROM t WHERE ? IS NULL
