CREATE TABLE t (a INT, b DOUBLE, s STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT window_start, window_end, s, COUNT(*) AS n, SUM(b), MAX(a)
FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, s;
SELECT window_start, COUNT(DISTINCT a) FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '1' MINUTE))
GROUP BY window_start, window_end;
SELECT window_start, AVG(b) FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' HOUR))
GROUP BY window_start, window_end HAVING AVG(b) > 1;
SELECT window_start, s, COUNT(*) FROM TABLE(SESSION(TABLE t PARTITION BY s, DESCRIPTOR(ts), INTERVAL '30' SECOND))
GROUP BY window_start, window_end, s;
