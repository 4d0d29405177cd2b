-- not yet: needs a processing-time attribute (PROCTIME()) for the lookup join and a side-input file
-- q13: bounded side input join: each bid joined with a value from a static table.
CREATE TABLE side_input (`key` BIGINT, `value` STRING) WITH ('connector' = 'filesystem', 'path' = 'side_input.csv', 'format' = 'csv');
CREATE TABLE q13_sink (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), `value` STRING) WITH ('connector' = 'blackhole');
INSERT INTO q13_sink
SELECT B.auction, B.bidder, B.price, B.date_time, S.`value`
FROM (SELECT *, PROCTIME() AS p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON MOD(B.auction, 10000) = S.`key`;
