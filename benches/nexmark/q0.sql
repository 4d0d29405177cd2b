-- q0: pass-through, measures the cost of reading and projecting bids.
CREATE TABLE q0_sink (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO q0_sink SELECT auction, bidder, price, date_time FROM bid;
