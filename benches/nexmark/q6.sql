-- q6: average selling price of each seller's last 10 closed auctions.
-- Flink's nexmark does not run q6: its OVER aggregation reads the
-- updating output of a GROUP BY, which Flink refuses; Runnel runs it as a
-- changelog (runnel_engine::ops::ordered). Flink's text orders by the
-- bid's date_time, which its GROUP BY does not keep; here each auction's
-- row is ordered by when the auction closes (expires), then by its id, so
-- that the order is the same in every run.
CREATE TABLE q6_sink (seller BIGINT, avg_price BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO q6_sink
SELECT Q.seller, AVG(Q.final) OVER (PARTITION BY Q.seller ORDER BY Q.expires, Q.id ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
FROM (
  SELECT MAX(B.price) AS final, A.id, A.seller, A.expires
  FROM auction AS A, bid AS B
  WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
  GROUP BY A.id, A.seller, A.expires
) AS Q;
