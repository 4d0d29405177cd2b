-- q19: the ten highest bids of each auction.
CREATE TABLE q19_sink (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, date_time TIMESTAMP(3), rank_number BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO q19_sink
SELECT *
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
  FROM bid
)
WHERE rank_number <= 10;
