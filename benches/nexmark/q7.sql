-- q7: highest bid in each 10-second window.
-- Written as a window join: each bid, with its tumbling window, joined with
-- its window's highest price. Flink's nexmark writes q7 as an interval join
-- (bids with date_time BETWEEN window_end - 10 s AND window_end), which also
-- matches a bid at exactly window_end to the window before; interval joins
-- are not supported yet.
CREATE TABLE q7_sink (auction BIGINT, price BIGINT, bidder BIGINT, date_time TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO q7_sink
SELECT B.auction, B.price, B.bidder, B.date_time
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) B
JOIN (
  SELECT MAX(price) AS maxprice, window_start, window_end
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.window_start = B1.window_start AND B.window_end = B1.window_end AND B.price = B1.maxprice;
