-- q13: bounded side input join: each bid joined with a value from a static
-- table, looked up as of the bid's processing time. The harness writes the
-- side input (keys 0-9999, each value the key's text) and puts its path in
-- place of ${SIDE_INPUT}.
CREATE TABLE side_input (`key` BIGINT, `value` STRING) WITH ('connector' = 'filesystem', 'path' = '${SIDE_INPUT}', 'format' = 'csv');
CREATE TABLE q13_sink (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), `value` STRING) WITH ('connector' = 'blackhole');
INSERT INTO q13_sink
SELECT B.auction, B.bidder, B.price, B.date_time, S.`value`
FROM (SELECT *, PROCTIME() AS p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON MOD(B.auction, 10000) = S.`key`;
