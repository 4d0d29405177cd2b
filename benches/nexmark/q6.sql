-- not yet: needs a join of two streams and OVER windows (Flink's nexmark does not run q6 either)
-- q6: average selling price of each seller's last 10 closed auctions.
CREATE TABLE q6_sink (seller BIGINT, avg_price BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO q6_sink
SELECT Q.seller, AVG(Q.final) OVER (PARTITION BY Q.seller ORDER BY Q.date_time ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
FROM (
  SELECT MAX(B.price) AS final, A.seller, B.date_time
  FROM auction AS A, bid AS B
  WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
  GROUP BY A.id, A.seller
) AS Q;
