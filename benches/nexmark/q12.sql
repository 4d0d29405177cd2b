-- q12: bids per bidder in 10-second processing-time windows.
CREATE VIEW bid_proctime AS SELECT bidder, PROCTIME() AS p_time FROM bid;
CREATE TABLE q12_sink (bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO q12_sink
SELECT bidder, COUNT(*) AS bid_count, window_start, window_end
FROM TABLE(TUMBLE(TABLE bid_proctime, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
GROUP BY bidder, window_start, window_end;
