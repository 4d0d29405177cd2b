-- q1: currency conversion (dollars to euros).
CREATE TABLE q1_sink (auction BIGINT, bidder BIGINT, price DOUBLE, date_time TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO q1_sink SELECT auction, bidder, 0.908 * price, date_time FROM bid;
