-- The Nexmark event stream, shared by every query file (prepended by the
-- runner). Columns are flat: fields of other event types are NULL.
CREATE TABLE nexmark (
  event_type INT,
  event_time TIMESTAMP(3),
  person_id BIGINT, person_name STRING, person_email STRING, person_credit_card STRING,
  person_city STRING, person_state STRING,
  auction_id BIGINT, auction_item_name STRING, auction_description STRING,
  auction_initial_bid BIGINT, auction_reserve BIGINT, auction_expires TIMESTAMP(3),
  auction_seller BIGINT, auction_category BIGINT,
  bid_auction BIGINT, bid_bidder BIGINT, bid_price BIGINT, bid_channel STRING, bid_url STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'number-of-events' = '${EVENTS}');

CREATE VIEW bid AS
SELECT bid_auction AS auction, bid_bidder AS bidder, bid_price AS price, bid_channel AS channel,
       bid_url AS url, event_time AS date_time
FROM nexmark WHERE event_type = 2;

CREATE VIEW person AS
SELECT person_id AS id, person_name AS name, person_email AS email_address,
       person_credit_card AS credit_card, person_city AS city, person_state AS state,
       event_time AS date_time
FROM nexmark WHERE event_type = 0;

CREATE VIEW auction AS
SELECT auction_id AS id, auction_item_name AS item_name, auction_description AS description,
       auction_initial_bid AS initial_bid, auction_reserve AS reserve, event_time AS date_time,
       auction_expires AS expires, auction_seller AS seller, auction_category AS category
FROM nexmark WHERE event_type = 1;

CREATE TABLE discard_sink (a STRING) WITH ('connector' = 'blackhole');
