CREATE TABLE l (k INT, v STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
CREATE TABLE r (k INT, w DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen', 'number-of-rows' = '5');
SELECT l.k, l.v, r.w FROM l JOIN r ON l.k = r.k AND r.w > 0.5;
CREATE VIEW joined AS SELECT l.k AS k, COUNT(*) AS n FROM l JOIN r ON l.k = r.k GROUP BY l.k;
INSERT INTO joined SELECT 1, 2;
EXPLAIN SELECT k, n FROM joined WHERE n > ?;
