-- q17: auction statistics report per day: bids in three price ranges and price statistics per auction.
-- (Flink's text groups by DATE_FORMAT(...) directly; Runnel groups by columns only, so the day is computed in a subquery.)
-- (Runnel's AVG is DOUBLE; Flink's AVG of a BIGINT is a BIGINT, rounded down: the CAST makes both agree.)
CREATE TABLE q17_sink (
  auction BIGINT, `day` STRING, total_bids BIGINT, rank1_bids BIGINT, rank2_bids BIGINT,
  rank3_bids BIGINT, min_price BIGINT, max_price BIGINT, avg_price BIGINT, sum_price BIGINT
) WITH ('connector' = 'blackhole');
INSERT INTO q17_sink
SELECT
  auction,
  `day`,
  COUNT(*) AS total_bids,
  COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
  COUNT(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
  COUNT(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
  MIN(price) AS min_price,
  MAX(price) AS max_price,
  CAST(AVG(price) AS BIGINT) AS avg_price,
  SUM(price) AS sum_price
FROM (SELECT *, DATE_FORMAT(date_time, 'yyyy-MM-dd') AS `day` FROM bid) AS b
GROUP BY auction, `day`;
