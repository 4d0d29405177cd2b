-- q10: log every bid to CSV files partitioned by day and minute (Flink's
-- nexmark writes them to a filesystem sink the same way). The harness puts
-- a fresh temporary directory in place of ${SINK_DIR} and removes it after
-- the run.
CREATE TABLE q10_sink (
  auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), dt STRING, hm STRING
) PARTITIONED BY (dt, hm) WITH ('connector' = 'filesystem', 'path' = '${SINK_DIR}', 'format' = 'csv');
INSERT INTO q10_sink
SELECT auction, bidder, price, date_time, DATE_FORMAT(date_time, 'yyyy-MM-dd'), DATE_FORMAT(date_time, 'HH:mm')
FROM bid;
