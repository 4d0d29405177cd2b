CREATE TABLE IF NOT EXISTS f (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)
WITH ('connector' = 'filesystem', 'path' = '/nonexistent/dir', 'format' = 'json');
CREATE TEMPORARY TABLE k (id BIGINT, payload STRING, ts TIMESTAMP(3) METADATA FROM 'timestamp', p AS PROCTIME())
WITH ('connector' = 'kafka', 'topic' = 'x', 'properties.bootstrap.servers' = '127.0.0.1:1', 'format' = 'json');
CREATE MATERIALIZED VIEW mv AS SELECT id, COUNT(*) AS n FROM f GROUP BY id;
DESCRIBE mv;
SHOW TABLES;
SHOW JOBS;
STOP JOB 'job-1' WITH SAVEPOINT;
DROP VIEW IF EXISTS mv;
DROP TABLE f;
