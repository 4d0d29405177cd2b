-- q18: find the last bid of each bidder on each auction.
CREATE TABLE q18_sink (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, date_time TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO q18_sink
SELECT auction, bidder, price, channel, url, date_time
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC) AS rank_number
  FROM bid
)
WHERE rank_number <= 1;
