CREATE TABLE t (a INT, b DOUBLE, s STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out_t (a INT, n BIGINT) WITH ('connector' = 'blackhole');
SELECT a, b * 2 AS twice, UPPER(s) FROM t WHERE a > 3 AND s LIKE 'x%';
