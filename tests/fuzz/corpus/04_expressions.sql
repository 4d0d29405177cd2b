CREATE TABLE t (a INT, b DOUBLE, s STRING, ts TIMESTAMP(3)) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
SELECT CASE WHEN a > 1 THEN 'big' WHEN a IS NULL THEN NULL ELSE s || '!' END,
       CAST(a AS BIGINT) + CAST('12' AS INT), COALESCE(s, 'none'), ABS(-b) / NULLIF(a, 0),
       a BETWEEN 1 AND 10, a IN (1, 2, 3), NOT (a <> 2 OR b >= 3.5e10),
       DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm'), TIMESTAMPADD(MINUTE, 5, ts), SUBSTRING(s, 2, 3),
       -(-a) % 7, 'it''s', `a`, TRUE IS NOT FALSE
FROM t;
SET 'parallelism' = '2';
SET 'table.exec.state.ttl' = '1 h';
