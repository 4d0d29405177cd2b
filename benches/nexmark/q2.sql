-- q2: selection of a few auctions.
CREATE TABLE q2_sink (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO q2_sink SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
