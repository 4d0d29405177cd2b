-- not yet: needs a filesystem sink partitioned by columns (PARTITIONED BY)
-- q10: log every bid to files partitioned by day and minute.
CREATE TABLE q10_sink (
  auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), dt STRING, hm STRING
) PARTITIONED BY (dt, hm) WITH ('connector' = 'blackhole');
INSERT INTO q10_sink
SELECT auction, bidder, price, date_time, DATE_FORMAT(date_time, 'yyyy-MM-dd'), DATE_FORMAT(date_time, 'HH:mm')
FROM bid;
