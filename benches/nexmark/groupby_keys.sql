-- Not a Nexmark query: a non-windowed GROUP BY with about one key per
-- event (the event's time, type and ids), for the state-size scaling
-- benchmark (`runnel-bench nexmark-scaling`). At 10 M events it keeps
-- about 10 M groups, most of them spilled to RocksDB under the default
-- memory budget.
CREATE TABLE groupby_keys_sink (
  event_time TIMESTAMP(3), event_type INT, id BIGINT, other BIGINT, n BIGINT, top BIGINT
) WITH ('connector' = 'blackhole');
INSERT INTO groupby_keys_sink
SELECT event_time, event_type, id, other, COUNT(*) AS n, MAX(price) AS top
FROM (
  SELECT event_time, event_type,
         COALESCE(person_id, auction_id, bid_auction) AS id,
         COALESCE(auction_seller, bid_bidder, 0) AS other,
         COALESCE(bid_price, auction_initial_bid, 0) AS price
  FROM nexmark
) AS e
GROUP BY event_time, event_type, id, other;
