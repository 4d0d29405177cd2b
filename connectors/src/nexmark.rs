//! `nexmark`: the event stream of the Nexmark benchmark (an online auction
//! site), as one flat table.
//!
//! # The stream
//!
//! Events are numbered `n = 0, 1, 2, ...`. Within every block of 50 events
//! the first is a new person, the next three are new auctions and the other
//! 46 are bids (2% / 6% / 92%, exact by construction). Event `n` happens at
//! `'nexmark.start' + n * 'nexmark.event-interval-us'` (truncated to
//! milliseconds). Persons and auctions get consecutive ids in order of
//! appearance, starting at 1000 as in the reference generator.
//!
//! Every value is a hash of `(seed, n, field)` rather than a draw from a
//! running random stream, so event `n` is the same whichever subtask makes
//! it: subtask `i` of `p` makes the events with `n % p == i`, and the union
//! over subtasks is the same sequence at any parallelism.
//!
//! * A bid names an auction: with probability `'nexmark.hot-auction-ratio'`
//!   the current "hot" auction (the newest auction id rounded down to a
//!   multiple of 100, so one auction stays hot for a while), otherwise one
//!   of the last `'nexmark.in-flight-auctions'` auctions. Its bidder is the
//!   hot person (same rounding) with probability
//!   `'nexmark.hot-bidder-ratio'`, otherwise one of the last
//!   `'nexmark.active-people'` persons. An auction's seller is chosen the
//!   same way with `'nexmark.hot-seller-ratio'`. Every id referenced was
//!   emitted earlier in the sequence.
//! * An auction expires a random time after it opens, uniform in
//!   `[D/2, 3D/2)` with `D = 'nexmark.auction-duration-ms'`. The default
//!   `D` is twice the event time that `'nexmark.in-flight-auctions'`
//!   auctions take to appear, so with the defaults every bid lands while
//!   its auction is open (a shorter duration makes late bids).
//! * Prices (cents) are `100 * 10^(6u)` for a uniform `u`, at least 1;
//!   `reserve = initial_bid + price`, so `reserve >= initial_bid`.
//!   Categories are 10 to 14 (10 plus one of five).
//! * Bids come through `Google`, `Facebook`, `Baidu` or `Apple` (10% each)
//!   or a generic `channel-<k>` (`k < 1000`), with a URL that carries the
//!   channel.
//!
//! # Deviations from the reference generator
//!
//! * The reference draws from a per-event seeded `Random`; here values are
//!   hashes, so the concrete values differ (same seed, same rows within
//!   Runnel only).
//! * The reference's hot bidder can be an id one past the newest person;
//!   here hot ids always exist.
//! * A person's city lies in its state (the reference picks both
//!   independently); names, item names and descriptions come from small
//!   word lists rather than random letters.
//! * No `extra` padding field, and auction lengths do not depend on the
//!   event rate: they are fixed by `'nexmark.auction-duration-ms'`.
//! * Columns are flat (`person_*`, `auction_*`, `bid_*`) instead of three
//!   ROW columns; the ones not belonging to an event's type are NULL.
//!
//! # Options
//!
//! `'number-of-events'` bounds the stream. `'rows-per-second'` paces it
//! (over all subtasks); an unbounded table is paced at 10 000 events per
//! second unless told otherwise, a bounded one runs unpaced, and `0` means
//! unpaced. The default interval of 100 µs also makes 10 000 events per
//! second of event time, so event time tracks wall time by default.
//!
//! Checkpoints: a subtask's position is the next event number it emits;
//! see [`NexmarkSource::snapshot_position`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use runnel_engine::connector::{Connector, SourceTable, TableDescriptor};
use runnel_engine::operator::{OperatorFactory, OperatorMetrics, TaskInfo};
use runnel_engine::source::{Source, SourcePoll, SplitId};
use runnel_engine::{EngineError, Result};

use crate::options::{bad_option, min_u64_option, parse_timestamp_millis, rate_option};
use crate::pacing::Pacer;
use crate::position::{PositionReader, PositionWriter};

/// Rows per emitted batch at most.
const BATCH_ROWS: usize = 4096;

/// Format version of [`NexmarkSource`] positions.
const POSITION_VERSION: u8 = 1;

/// Default `'nexmark.start'`: 2026-01-01 00:00:00 UTC.
const DEFAULT_START_MS: i64 = 1_767_225_600_000;

/// Events per block: one person, three auctions, 46 bids.
const BLOCK: u64 = 50;
const PERSONS_PER_BLOCK: u64 = 1;
const AUCTIONS_PER_BLOCK: u64 = 3;

/// The first person id and the first auction id, as in the reference.
const FIRST_ID: u64 = 1000;

/// Hot ids are the newest id rounded down to a multiple of this.
const HOT_STRIDE: u64 = 100;

const FIRST_CATEGORY: i64 = 10;
const CATEGORIES: u64 = 5;

/// Default pace of an unbounded table, events per second.
const DEFAULT_RATE: u64 = 10_000;

const OPTIONS: &[&str] = &[
    "number-of-events",
    "rows-per-second",
    "seed",
    "nexmark.start",
    "nexmark.event-interval-us",
    "nexmark.hot-auction-ratio",
    "nexmark.hot-bidder-ratio",
    "nexmark.hot-seller-ratio",
    "nexmark.in-flight-auctions",
    "nexmark.active-people",
    "nexmark.auction-duration-ms",
];

/// The `nexmark` connector (source only).
#[derive(Debug, Default, Clone, Copy)]
pub struct NexmarkConnector;

impl Connector for NexmarkConnector {
    fn name(&self) -> &'static str {
        "nexmark"
    }

    fn options(&self) -> &'static [&'static str] {
        OPTIONS
    }

    fn supports_projection(&self, _table: &TableDescriptor) -> bool {
        // Columns are chosen by name, so a projected table is just a table
        // with fewer columns.
        true
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        let config = Arc::new(NexmarkConfig::from_table(table)?);
        let columns = Arc::new(select_columns(table)?);
        let schema = Arc::clone(&table.schema);
        let bounded = config.number_of_events.is_some();
        let factory = Arc::new(move |task: &TaskInfo| {
            Ok(Box::new(NexmarkSource::new(
                Arc::clone(&config),
                Arc::clone(&columns),
                Arc::clone(&schema),
                task,
            )) as Box<dyn Source>)
        });
        Ok(SourceTable {
            factory,
            bounded,
            parallelism: None,
        })
    }

    fn sink(&self, table: &TableDescriptor, _updating: bool) -> Result<OperatorFactory> {
        Err(EngineError::Plan(format!(
            "connector 'nexmark' of table '{}' can only be read, not written",
            table.name
        )))
    }
}

/// The columns a nexmark table may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    EventType,
    EventTime,
    PersonId,
    PersonName,
    PersonEmail,
    PersonCreditCard,
    PersonCity,
    PersonState,
    AuctionId,
    AuctionItemName,
    AuctionDescription,
    AuctionInitialBid,
    AuctionReserve,
    AuctionExpires,
    AuctionSeller,
    AuctionCategory,
    BidAuction,
    BidBidder,
    BidPrice,
    BidChannel,
    BidUrl,
}

impl Column {
    const ALL: [Column; 21] = [
        Column::EventType,
        Column::EventTime,
        Column::PersonId,
        Column::PersonName,
        Column::PersonEmail,
        Column::PersonCreditCard,
        Column::PersonCity,
        Column::PersonState,
        Column::AuctionId,
        Column::AuctionItemName,
        Column::AuctionDescription,
        Column::AuctionInitialBid,
        Column::AuctionReserve,
        Column::AuctionExpires,
        Column::AuctionSeller,
        Column::AuctionCategory,
        Column::BidAuction,
        Column::BidBidder,
        Column::BidPrice,
        Column::BidChannel,
        Column::BidUrl,
    ];

    fn name(self) -> &'static str {
        match self {
            Column::EventType => "event_type",
            Column::EventTime => "event_time",
            Column::PersonId => "person_id",
            Column::PersonName => "person_name",
            Column::PersonEmail => "person_email",
            Column::PersonCreditCard => "person_credit_card",
            Column::PersonCity => "person_city",
            Column::PersonState => "person_state",
            Column::AuctionId => "auction_id",
            Column::AuctionItemName => "auction_item_name",
            Column::AuctionDescription => "auction_description",
            Column::AuctionInitialBid => "auction_initial_bid",
            Column::AuctionReserve => "auction_reserve",
            Column::AuctionExpires => "auction_expires",
            Column::AuctionSeller => "auction_seller",
            Column::AuctionCategory => "auction_category",
            Column::BidAuction => "bid_auction",
            Column::BidBidder => "bid_bidder",
            Column::BidPrice => "bid_price",
            Column::BidChannel => "bid_channel",
            Column::BidUrl => "bid_url",
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Column::EventType => DataType::Int32,
            Column::EventTime | Column::AuctionExpires => {
                DataType::Timestamp(TimeUnit::Millisecond, None)
            }
            Column::PersonName
            | Column::PersonEmail
            | Column::PersonCreditCard
            | Column::PersonCity
            | Column::PersonState
            | Column::AuctionItemName
            | Column::AuctionDescription
            | Column::BidChannel
            | Column::BidUrl => DataType::Utf8,
            _ => DataType::Int64,
        }
    }

    fn sql_type(self) -> &'static str {
        match self.data_type() {
            DataType::Int32 => "INT",
            DataType::Int64 => "BIGINT",
            DataType::Utf8 => "STRING",
            _ => "TIMESTAMP(3)",
        }
    }

    /// Only the columns every event has are never NULL.
    fn nullable(self) -> bool {
        !matches!(self, Column::EventType | Column::EventTime)
    }

    fn available() -> String {
        Self::ALL
            .iter()
            .map(|c| format!("{} {}", c.name(), c.sql_type()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Maps the table's columns, by name and in the table's order, to generated
/// columns.
fn select_columns(table: &TableDescriptor) -> Result<Vec<Column>> {
    table
        .schema
        .fields()
        .iter()
        .map(|field| {
            let column = Column::ALL
                .iter()
                .copied()
                .find(|c| c.name().eq_ignore_ascii_case(field.name()))
                .ok_or_else(|| {
                    EngineError::Plan(format!(
                        "nexmark table '{}' has a column '{}' that the generator does not \
                         produce; available columns: {}",
                        table.name,
                        field.name(),
                        Column::available()
                    ))
                })?;
            if field.data_type() != &column.data_type() {
                return Err(EngineError::Plan(format!(
                    "column '{}' of nexmark table '{}' must be {} ({}), not {}; available \
                     columns: {}",
                    field.name(),
                    table.name,
                    column.sql_type(),
                    column.data_type(),
                    field.data_type(),
                    Column::available()
                )));
            }
            if !field.is_nullable() && column.nullable() {
                return Err(EngineError::Plan(format!(
                    "column '{}' of nexmark table '{}' is NOT NULL, but it is NULL in every \
                     event of another type; only event_type and event_time are never NULL",
                    field.name(),
                    table.name
                )));
            }
            Ok(column)
        })
        .collect()
}

/// The parsed options.
#[derive(Debug, Clone)]
struct NexmarkConfig {
    seed: u64,
    start_ms: i64,
    interval_us: u64,
    hot_auction_ratio: f64,
    hot_bidder_ratio: f64,
    hot_seller_ratio: f64,
    in_flight_auctions: u64,
    active_people: u64,
    auction_duration_ms: u64,
    number_of_events: Option<u64>,
    /// Events per second over all subtasks; `None` generates unpaced.
    rows_per_second: Option<u64>,
}

impl NexmarkConfig {
    fn from_table(table: &TableDescriptor) -> Result<Self> {
        let number_of_events = match table.option("number-of-events") {
            None => None,
            Some(_) => Some(table.u64_option("number-of-events", 0)?),
        };
        let rows_per_second = match (table.option("rows-per-second"), number_of_events) {
            // A bounded table is a fixture or a throughput run: full speed.
            (None, Some(_)) => None,
            _ => Some(table.u64_option("rows-per-second", DEFAULT_RATE)?).filter(|r| *r > 0),
        };
        let start_ms = match table.option("nexmark.start") {
            None => DEFAULT_START_MS,
            Some(v) => parse_timestamp_millis(v).ok_or_else(|| {
                bad_option(
                    table,
                    "nexmark.start",
                    &format!("must be epoch milliseconds or 'YYYY-MM-DD HH:MM:SS', not '{v}'"),
                )
            })?,
        };
        let interval_us = min_u64_option(table, "nexmark.event-interval-us", 100, 1)?;
        // Caps keep window arithmetic far from overflow; larger values are
        // typos, not benchmarks.
        let in_flight_auctions = min_u64_option(table, "nexmark.in-flight-auctions", 100, 1)?;
        let active_people = min_u64_option(table, "nexmark.active-people", 1000, 1)?;
        for (key, value) in [
            ("nexmark.event-interval-us", interval_us),
            ("nexmark.in-flight-auctions", in_flight_auctions),
            ("nexmark.active-people", active_people),
        ] {
            if value > 1_000_000_000 {
                return Err(bad_option(
                    table,
                    key,
                    &format!("must be at most 1000000000, not {value}"),
                ));
            }
        }
        // The time in which the in-flight auctions appear, doubled.
        let default_duration = (in_flight_auctions * BLOCK / AUCTIONS_PER_BLOCK * interval_us
            / 1000)
            .saturating_mul(2)
            .max(1);
        let auction_duration_ms =
            min_u64_option(table, "nexmark.auction-duration-ms", default_duration, 1)?;
        if auction_duration_ms > 1_000_000_000_000 {
            return Err(bad_option(
                table,
                "nexmark.auction-duration-ms",
                &format!("must be at most 1000000000000, not {auction_duration_ms}"),
            ));
        }
        Ok(Self {
            seed: table.u64_option("seed", 42)?,
            start_ms,
            interval_us,
            hot_auction_ratio: rate_option(table, "nexmark.hot-auction-ratio", 0.5)?,
            hot_bidder_ratio: rate_option(table, "nexmark.hot-bidder-ratio", 0.75)?,
            hot_seller_ratio: rate_option(table, "nexmark.hot-seller-ratio", 0.75)?,
            in_flight_auctions,
            active_people,
            auction_duration_ms,
            number_of_events,
            rows_per_second,
        })
    }

    /// Event time of event `n`, in milliseconds.
    fn event_time(&self, n: u64) -> i64 {
        let offset_ms = u128::from(n) * u128::from(self.interval_us) / 1000;
        let offset = i64::try_from(offset_ms).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(offset)
    }
}

// Salts separate the independent draws made for one event.
const SALT_FIRST_NAME: u64 = 1;
const SALT_LAST_NAME: u64 = 2;
const SALT_EMAIL: u64 = 3;
const SALT_CARD: u64 = 4;
const SALT_PLACE: u64 = 5;
const SALT_ITEM: u64 = 6;
const SALT_DESCRIPTION: u64 = 7;
const SALT_INITIAL: u64 = 8;
const SALT_RESERVE: u64 = 9;
const SALT_DURATION: u64 = 10;
const SALT_SELLER_HOT: u64 = 11;
const SALT_SELLER: u64 = 12;
const SALT_CATEGORY: u64 = 13;
const SALT_AUCTION_HOT: u64 = 14;
const SALT_AUCTION: u64 = 15;
const SALT_BIDDER_HOT: u64 = 16;
const SALT_BIDDER: u64 = 17;
const SALT_PRICE: u64 = 18;
const SALT_CHANNEL: u64 = 19;
const SALT_URL: u64 = 20;

/// SplitMix64's finalizer: a cheap, well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The draw `salt` of event `n`.
fn hash(seed: u64, n: u64, salt: u64) -> u64 {
    mix(mix(mix(seed) ^ salt) ^ n)
}

/// A uniform draw in `[0, 1)`.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// An element of a non-empty list.
fn pick<T: Copy>(list: &[T], h: u64, fallback: T) -> T {
    list.get((h % list.len().max(1) as u64) as usize)
        .copied()
        .unwrap_or(fallback)
}

/// Persons that appeared before event `n`.
fn persons_before(n: u64) -> u64 {
    let offset = n % BLOCK;
    n / BLOCK * PERSONS_PER_BLOCK + offset.min(PERSONS_PER_BLOCK)
}

/// Auctions that appeared before event `n`.
fn auctions_before(n: u64) -> u64 {
    let offset = n % BLOCK;
    n / BLOCK * AUCTIONS_PER_BLOCK
        + offset
            .saturating_sub(PERSONS_PER_BLOCK)
            .min(AUCTIONS_PER_BLOCK)
}

/// Picks one of the `count` ids that exist (0-based): the hot one with
/// probability `hot_ratio`, else one of the newest `window`.
fn choose_existing(count: u64, window: u64, hot_ratio: f64, hot_draw: u64, draw: u64) -> u64 {
    let newest = count.saturating_sub(1);
    if unit(hot_draw) < hot_ratio {
        newest / HOT_STRIDE * HOT_STRIDE
    } else {
        newest - draw % window.min(count).max(1)
    }
}

/// A price in cents: log-uniform between 1 and 10^6 dollars.
fn price(h: u64) -> i64 {
    ((10f64.powf(unit(h) * 6.0) * 100.0).round() as i64).max(1)
}

const FIRST_NAMES: [&str; 12] = [
    "Ada", "Bruno", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Júlia", "Kenji",
    "Lena",
];
const LAST_NAMES: [&str; 10] = [
    "Abbott", "Berg", "Castro", "Dietz", "Evans", "Fischer", "Garcia", "Hale", "Ito", "Jensen",
];
const EMAIL_DOMAINS: [&str; 4] = ["example.com", "mail.test", "auction.test", "inbox.test"];
const PLACES: [(&str, &str); 12] = [
    ("Phoenix", "AZ"),
    ("Tucson", "AZ"),
    ("Los Angeles", "CA"),
    ("San Francisco", "CA"),
    ("Boise", "ID"),
    ("Portland", "OR"),
    ("Bend", "OR"),
    ("Seattle", "WA"),
    ("Redmond", "WA"),
    ("Kent", "WA"),
    ("Cheyenne", "WY"),
    ("Casper", "WY"),
];
const ADJECTIVES: [&str; 10] = [
    "antique", "vintage", "rare", "signed", "mint", "handmade", "restored", "boxed", "limited",
    "classic",
];
const NOUNS: [&str; 10] = [
    "lamp", "clock", "guitar", "camera", "poster", "watch", "chair", "vase", "bicycle", "record",
];
const CONDITIONS: [&str; 4] = ["like new", "lightly used", "for parts", "needs cleaning"];
const NAMED_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

struct Person {
    id: i64,
    name: String,
    email: String,
    credit_card: String,
    city: &'static str,
    state: &'static str,
}

struct Auction {
    id: i64,
    item_name: String,
    description: String,
    initial_bid: i64,
    reserve: i64,
    expires: i64,
    seller: i64,
    category: i64,
}

struct Bid {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: String,
    url: String,
}

enum Body {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

/// One generated event.
struct Event {
    time: i64,
    body: Body,
}

/// Ids are far below `i64::MAX` for any stream that can be generated.
fn id(base0: u64) -> i64 {
    i64::try_from(FIRST_ID.saturating_add(base0)).unwrap_or(i64::MAX)
}

fn person(config: &NexmarkConfig, n: u64) -> Person {
    let h = |salt| hash(config.seed, n, salt);
    let first = pick(&FIRST_NAMES, h(SALT_FIRST_NAME), "Ada");
    let last = pick(&LAST_NAMES, h(SALT_LAST_NAME), "Abbott");
    let domain = pick(&EMAIL_DOMAINS, h(SALT_EMAIL), "example.com");
    let card = h(SALT_CARD);
    let (city, state) = pick(&PLACES, h(SALT_PLACE), ("Boise", "ID"));
    let base0 = persons_before(n);
    Person {
        id: id(base0),
        name: format!("{first} {last}"),
        email: format!(
            "{}.{}{}@{domain}",
            first.to_lowercase(),
            last.to_lowercase(),
            base0 % 1000
        ),
        credit_card: format!(
            "{:04} {:04} {:04} {:04}",
            card % 10_000,
            card / 10_000 % 10_000,
            card / 100_000_000 % 10_000,
            card / 1_000_000_000_000 % 10_000
        ),
        city,
        state,
    }
}

fn auction(config: &NexmarkConfig, n: u64, time: i64) -> Auction {
    let h = |salt| hash(config.seed, n, salt);
    let item = h(SALT_ITEM);
    let adjective = pick(&ADJECTIVES, item, "rare");
    let noun = pick(&NOUNS, item / 16, "lamp");
    let condition = pick(&CONDITIONS, h(SALT_DESCRIPTION), "like new");
    let initial_bid = price(h(SALT_INITIAL));
    let d = config.auction_duration_ms;
    // At least 1 ms, so an auction is open for some time.
    let length = (d / 2 + h(SALT_DURATION) % d.max(1)).max(1);
    let seller = choose_existing(
        persons_before(n),
        config.active_people,
        config.hot_seller_ratio,
        h(SALT_SELLER_HOT),
        h(SALT_SELLER),
    );
    Auction {
        id: id(auctions_before(n)),
        item_name: format!("{adjective} {noun}"),
        description: format!("{adjective} {noun}, {condition}"),
        initial_bid,
        reserve: initial_bid.saturating_add(price(h(SALT_RESERVE))),
        expires: time.saturating_add(i64::try_from(length).unwrap_or(i64::MAX)),
        seller: id(seller),
        category: FIRST_CATEGORY + (h(SALT_CATEGORY) % CATEGORIES) as i64,
    }
}

fn bid(config: &NexmarkConfig, n: u64) -> Bid {
    let h = |salt| hash(config.seed, n, salt);
    let auction = choose_existing(
        auctions_before(n),
        config.in_flight_auctions,
        config.hot_auction_ratio,
        h(SALT_AUCTION_HOT),
        h(SALT_AUCTION),
    );
    let bidder = choose_existing(
        persons_before(n),
        config.active_people,
        config.hot_bidder_ratio,
        h(SALT_BIDDER_HOT),
        h(SALT_BIDDER),
    );
    let c = h(SALT_CHANNEL);
    let path = pick(&NOUNS, h(SALT_URL), "lamp");
    let (channel, channel_id) = if c % 10 < 4 {
        let index = c / 10 % 4;
        (pick(&NAMED_CHANNELS, index, "Google").to_string(), index)
    } else {
        let k = c / 10 % 1000;
        (format!("channel-{k}"), 4 + k)
    };
    Bid {
        auction: id(auction),
        bidder: id(bidder),
        price: price(h(SALT_PRICE)),
        url: format!("https://www.nexmark.com/{path}/item.htm?query=1&channel_id={channel_id}"),
        channel,
    }
}

/// Event `n` of the stream.
fn event(config: &NexmarkConfig, n: u64) -> Event {
    let time = config.event_time(n);
    let offset = n % BLOCK;
    let body = if offset < PERSONS_PER_BLOCK {
        Body::Person(person(config, n))
    } else if offset < PERSONS_PER_BLOCK + AUCTIONS_PER_BLOCK {
        Body::Auction(auction(config, n, time))
    } else {
        Body::Bid(bid(config, n))
    };
    Event { time, body }
}

/// A growing output column.
enum Builder {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Time(TimestampMillisecondBuilder),
    Text(StringBuilder),
}

impl Builder {
    fn new(column: Column, rows: usize) -> Self {
        match column.data_type() {
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Utf8 => Builder::Text(StringBuilder::new()),
            _ => Builder::Time(TimestampMillisecondBuilder::with_capacity(rows)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
        }
    }

    /// Appends `column` of `e`: NULL when the event has no such field.
    fn append(&mut self, column: Column, e: &Event) {
        use Body::{Auction as A, Bid as B, Person as P};
        match self {
            Builder::Int32(b) => b.append_value(match e.body {
                P(_) => 0,
                A(_) => 1,
                B(_) => 2,
            }),
            Builder::Time(b) => b.append_option(match (column, &e.body) {
                (Column::AuctionExpires, A(a)) => Some(a.expires),
                (Column::AuctionExpires, _) => None,
                _ => Some(e.time),
            }),
            Builder::Int64(b) => b.append_option(match (column, &e.body) {
                (Column::PersonId, P(p)) => Some(p.id),
                (Column::AuctionId, A(a)) => Some(a.id),
                (Column::AuctionInitialBid, A(a)) => Some(a.initial_bid),
                (Column::AuctionReserve, A(a)) => Some(a.reserve),
                (Column::AuctionSeller, A(a)) => Some(a.seller),
                (Column::AuctionCategory, A(a)) => Some(a.category),
                (Column::BidAuction, B(b)) => Some(b.auction),
                (Column::BidBidder, B(b)) => Some(b.bidder),
                (Column::BidPrice, B(b)) => Some(b.price),
                _ => None,
            }),
            Builder::Text(b) => b.append_option(match (column, &e.body) {
                (Column::PersonName, P(p)) => Some(p.name.as_str()),
                (Column::PersonEmail, P(p)) => Some(p.email.as_str()),
                (Column::PersonCreditCard, P(p)) => Some(p.credit_card.as_str()),
                (Column::PersonCity, P(p)) => Some(p.city),
                (Column::PersonState, P(p)) => Some(p.state),
                (Column::AuctionItemName, A(a)) => Some(a.item_name.as_str()),
                (Column::AuctionDescription, A(a)) => Some(a.description.as_str()),
                (Column::BidChannel, B(b)) => Some(b.channel.as_str()),
                (Column::BidUrl, B(b)) => Some(b.url.as_str()),
                _ => None,
            }),
        }
    }
}

/// Where a subtask's generator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    SplitDone,
    Finished,
}

/// One subtask of the generator: the events `n` with `n % p == subtask`.
struct NexmarkSource {
    config: Arc<NexmarkConfig>,
    columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    split: SplitId,
    subtask: u64,
    parallelism: u64,
    /// The next event number this subtask emits.
    next: u64,
    /// Paces this subtask to its share of the events per second.
    pacer: Pacer,
    phase: Phase,
}

impl NexmarkSource {
    fn new(
        config: Arc<NexmarkConfig>,
        columns: Arc<Vec<Column>>,
        schema: SchemaRef,
        task: &TaskInfo,
    ) -> Self {
        let parallelism = task.parallelism.max(1) as u64;
        let subtask = task.subtask as u64;
        let rate = config
            .rows_per_second
            .map(|r| r as f64 / parallelism as f64);
        Self {
            config,
            columns,
            schema,
            split: SplitId::try_from(task.subtask).unwrap_or(SplitId::MAX),
            subtask,
            parallelism,
            next: subtask,
            pacer: Pacer::new(rate, BATCH_ROWS),
            phase: Phase::Running,
        }
    }

    fn exhausted(&self) -> bool {
        self.config.number_of_events.is_some_and(|n| self.next >= n)
    }

    fn generate(&mut self, max_rows: usize) -> Result<RecordBatch> {
        let columns = Arc::clone(&self.columns);
        let mut builders: Vec<Builder> =
            columns.iter().map(|c| Builder::new(*c, max_rows)).collect();
        let mut rows = 0;
        while rows < max_rows && !self.exhausted() {
            let e = event(&self.config, self.next);
            for (builder, column) in builders.iter_mut().zip(columns.iter()) {
                builder.append(*column, &e);
            }
            self.next = self.next.saturating_add(self.parallelism);
            rows += 1;
        }
        self.pacer.sent(rows as u64);
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &options,
        )?)
    }
}

impl Source for NexmarkSource {
    fn open(&mut self, _task: &TaskInfo, _metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        Ok(vec![self.split])
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        match self.phase {
            Phase::Finished => return Ok(SourcePoll::Finished),
            Phase::SplitDone => {
                self.phase = Phase::Finished;
                return Ok(SourcePoll::Finished);
            }
            Phase::Running => {}
        }
        if self.exhausted() {
            self.phase = Phase::SplitDone;
            return Ok(SourcePoll::SplitFinished(self.split));
        }
        let budget = self.pacer.budget();
        if budget == 0 {
            return Ok(SourcePoll::Pending);
        }
        let batch = self.generate(budget)?;
        Ok(SourcePoll::Batch {
            split: self.split,
            batch,
        })
    }

    /// Version 1: `[1, next: u64, parallelism: u64, seed: u64]`,
    /// big-endian. `next` is the next event number to emit; parallelism and
    /// seed detect a restore into a job where that number would belong to
    /// another subtask or mean other values.
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        Ok(PositionWriter::new(POSITION_VERSION)
            .u64(self.next)
            .u64(self.parallelism)
            .u64(self.config.seed)
            .finish())
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        let mut r = PositionReader::new("nexmark", position, POSITION_VERSION)?;
        let next = r.u64()?;
        let parallelism = r.u64()?;
        let seed = r.u64()?;
        if parallelism != self.parallelism || seed != self.config.seed {
            return Err(r.error(&format!(
                "it was taken at parallelism {parallelism} with seed {seed}, the job now runs \
                 at parallelism {} with seed {}",
                self.parallelism, self.config.seed
            )));
        }
        if next % self.parallelism != self.subtask {
            return Err(r.error(&format!(
                "event {next} does not belong to subtask {} of {}",
                self.subtask, self.parallelism
            )));
        }
        r.finish()?;
        self.next = next;
        // Whether the split already ended is derived again from the cursor,
        // so that the restored run also reports the end of its split.
        self.phase = Phase::Running;
        self.pacer.restart();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Int32Type, Int64Type, TimestampMillisecondType};

    use super::*;
    use crate::testutil::Drained;
    use crate::testutil::{check_resume_everywhere, drain, poll_batches, rows_of, table, task};

    fn all_fields() -> Vec<Field> {
        Column::ALL
            .iter()
            .map(|c| Field::new(c.name(), c.data_type(), c.nullable()))
            .collect()
    }

    fn generate(options: &[(&str, &str)], parallelism: usize) -> Result<Drained> {
        drain(
            &NexmarkConnector.source(&table(all_fields(), options))?,
            parallelism,
        )
    }

    fn plan_error(fields: Vec<Field>, options: &[(&str, &str)]) -> String {
        match NexmarkConnector.source(&table(fields, options)) {
            Err(EngineError::Plan(msg)) => msg,
            Err(other) => panic!("expected a plan error, got {other}"),
            Ok(_) => panic!("expected a plan error"),
        }
    }

    fn index(column: Column) -> usize {
        Column::ALL
            .iter()
            .position(|c| *c == column)
            .expect("listed")
    }

    fn ints(batch: &RecordBatch, column: Column) -> Vec<Option<i64>> {
        batch
            .column(index(column))
            .as_primitive::<Int64Type>()
            .iter()
            .collect()
    }

    fn times(batch: &RecordBatch, column: Column) -> Vec<Option<i64>> {
        batch
            .column(index(column))
            .as_primitive::<TimestampMillisecondType>()
            .iter()
            .collect()
    }

    fn types(batch: &RecordBatch) -> Vec<i32> {
        batch
            .column(index(Column::EventType))
            .as_primitive::<Int32Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn proportions_are_exact() -> Result<()> {
        let d = generate(&[("number-of-events", "5000")], 1)?;
        assert_eq!(d.rows(), 5000);
        let mut counts = [0usize; 3];
        for batch in d.all() {
            assert!(batch.num_rows() <= BATCH_ROWS);
            for t in types(&batch) {
                counts[t as usize] += 1;
            }
        }
        assert_eq!(counts, [100, 300, 4600]);
        Ok(())
    }

    #[test]
    fn same_seed_same_rows_different_seed_different_rows() -> Result<()> {
        let a = generate(&[("number-of-events", "3000"), ("seed", "7")], 1)?;
        let b = generate(&[("number-of-events", "3000"), ("seed", "7")], 1)?;
        let c = generate(&[("number-of-events", "3000"), ("seed", "8")], 1)?;
        assert_eq!(rows_of(&a.all())?, rows_of(&b.all())?);
        assert_ne!(a.sorted_rows()?, c.sorted_rows()?);
        Ok(())
    }

    #[test]
    fn same_multiset_at_parallelism_one_and_three() -> Result<()> {
        let options = [("number-of-events", "10001")];
        let one = generate(&options, 1)?;
        let three = generate(&options, 3)?;
        assert_eq!(three.batches.len(), 3);
        assert!(three.batches.iter().all(|b| !b.is_empty()));
        assert_eq!(three.rows(), 10_001);
        assert_eq!(one.sorted_rows()?, three.sorted_rows()?);
        Ok(())
    }

    #[test]
    fn referenced_ids_were_emitted_earlier() -> Result<()> {
        let d = generate(&[("number-of-events", "20000")], 1)?;
        let mut persons = HashSet::new();
        let mut auctions = HashSet::new();
        let (mut bids, mut hot) = (0usize, 0usize);
        for batch in d.all() {
            let person_id = ints(&batch, Column::PersonId);
            let auction_id = ints(&batch, Column::AuctionId);
            let seller = ints(&batch, Column::AuctionSeller);
            let bid_auction = ints(&batch, Column::BidAuction);
            let bidder = ints(&batch, Column::BidBidder);
            for (i, t) in types(&batch).into_iter().enumerate() {
                match t {
                    0 => {
                        let id = person_id[i].expect("a person has an id");
                        assert_eq!(id, FIRST_ID as i64 + persons.len() as i64);
                        persons.insert(id);
                        assert!(auction_id[i].is_none() && bid_auction[i].is_none());
                    }
                    1 => {
                        let id = auction_id[i].expect("an auction has an id");
                        assert_eq!(id, FIRST_ID as i64 + auctions.len() as i64);
                        auctions.insert(id);
                        let s = seller[i].expect("a seller");
                        assert!(persons.contains(&s), "seller {s} unknown");
                        assert!(person_id[i].is_none() && bidder[i].is_none());
                    }
                    2 => {
                        let a = bid_auction[i].expect("a bid names an auction");
                        let b = bidder[i].expect("a bid names a bidder");
                        assert!(auctions.contains(&a), "auction {a} unknown");
                        assert!(persons.contains(&b), "bidder {b} unknown");
                        assert!(person_id[i].is_none() && auction_id[i].is_none());
                        bids += 1;
                        hot += usize::from(a % HOT_STRIDE as i64 == FIRST_ID as i64 % 100);
                    }
                    other => panic!("event type {other}"),
                }
            }
        }
        assert_eq!((persons.len(), auctions.len()), (400, 1200));
        // Half the bids go to the hot auction (plus recent ones that happen
        // to be hot).
        let share = hot as f64 / bids as f64;
        assert!((0.45..0.6).contains(&share), "hot share {share}");
        Ok(())
    }

    #[test]
    fn values_are_plausible_and_times_advance() -> Result<()> {
        let d = generate(&[("number-of-events", "12000")], 3)?;
        let mut channels = HashSet::new();
        for subtask in &d.batches {
            let mut last = i64::MIN;
            for batch in subtask {
                let event_time = times(batch, Column::EventTime);
                let expires = times(batch, Column::AuctionExpires);
                let initial = ints(batch, Column::AuctionInitialBid);
                let reserve = ints(batch, Column::AuctionReserve);
                let category = ints(batch, Column::AuctionCategory);
                let price = ints(batch, Column::BidPrice);
                let channel = batch.column(index(Column::BidChannel)).as_string::<i32>();
                let url = batch.column(index(Column::BidUrl)).as_string::<i32>();
                let card = batch
                    .column(index(Column::PersonCreditCard))
                    .as_string::<i32>();
                for (i, t) in types(batch).into_iter().enumerate() {
                    let time = event_time[i].expect("every event has a time");
                    assert!(time >= last, "event time goes back");
                    last = time;
                    if t == 1 {
                        let (initial, reserve) = (initial[i].expect("bid"), reserve[i].expect("r"));
                        assert!(initial > 0 && reserve >= initial);
                        assert!(expires[i].expect("expires") > time);
                        assert!((10..15).contains(&category[i].expect("category")));
                    }
                    if t == 2 {
                        assert!(price[i].expect("price") > 0);
                        channels.insert(channel.value(i).to_string());
                        assert!(url.value(i).starts_with("https://www.nexmark.com/"));
                    }
                    if t == 0 {
                        assert_eq!(card.value(i).len(), 19, "{}", card.value(i));
                    }
                }
            }
            assert!(last > DEFAULT_START_MS);
        }
        for named in NAMED_CHANNELS {
            assert!(channels.contains(named), "{named} missing");
        }
        assert!(channels.iter().any(|c| c.starts_with("channel-")));
        Ok(())
    }

    #[test]
    fn most_bids_land_while_their_auction_is_open() -> Result<()> {
        let d = generate(&[("number-of-events", "20000")], 1)?;
        let mut open_until = std::collections::HashMap::new();
        let (mut bids, mut open) = (0usize, 0usize);
        for batch in d.all() {
            let event_time = times(&batch, Column::EventTime);
            let expires = times(&batch, Column::AuctionExpires);
            let auction_id = ints(&batch, Column::AuctionId);
            let bid_auction = ints(&batch, Column::BidAuction);
            for (i, t) in types(&batch).into_iter().enumerate() {
                if t == 1 {
                    open_until.insert(auction_id[i], expires[i]);
                } else if t == 2 {
                    bids += 1;
                    let until = open_until.get(&bid_auction[i]).copied().flatten();
                    open += usize::from(until.is_some_and(|u| event_time[i] < Some(u)));
                }
            }
        }
        // With the defaults a bid reaches at most 99 auctions back, which
        // opened less than the shortest auction length ago.
        assert_eq!(open, bids, "every bid hits an open auction");
        Ok(())
    }

    #[test]
    fn event_time_follows_start_and_interval() -> Result<()> {
        let t = table(
            vec![Field::new(
                "event_time",
                Column::EventTime.data_type(),
                false,
            )],
            &[
                ("number-of-events", "10"),
                ("nexmark.start", "2026-03-01 12:00:00"),
                ("nexmark.event-interval-us", "2500"),
            ],
        );
        let d = drain(&NexmarkConnector.source(&t)?, 1)?;
        let start = parse_timestamp_millis("2026-03-01 12:00:00").expect("parses");
        let got: Vec<i64> = d
            .all()
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        let expected: Vec<i64> = (0..10).map(|n| start + n * 25 / 10).collect();
        assert_eq!(got, expected);
        Ok(())
    }

    #[test]
    fn cut_and_resume_equals_an_uninterrupted_run() -> Result<()> {
        let source =
            NexmarkConnector.source(&table(all_fields(), &[("number-of-events", "20000")]))?;
        let batches = check_resume_everywhere(&source, 0, 1)?;
        assert!(batches >= 4, "{batches} batches: cuts fall mid-run");
        for subtask in 0..3 {
            check_resume_everywhere(&source, subtask, 3)?;
        }
        // Kill after every batch and restore from the last position.
        let task = task(1, 2);
        let metrics = Arc::new(OperatorMetrics::default());
        let mut whole = (source.factory)(&task)?;
        whole.open(&task, &metrics)?;
        let (all, _, _) = poll_batches(whole.as_mut(), usize::MAX)?;
        let mut got = Vec::new();
        let mut position: Option<Vec<u8>> = None;
        loop {
            let mut src = (source.factory)(&task)?;
            src.open(&task, &metrics)?;
            if let Some(p) = &position {
                src.restore_position(p)?;
            }
            let (batches, _, done) = poll_batches(src.as_mut(), 1)?;
            got.extend(batches);
            position = Some(src.snapshot_position()?);
            if done {
                break;
            }
        }
        assert_eq!(rows_of(&got)?, rows_of(&all)?);
        Ok(())
    }

    #[test]
    fn damaged_or_foreign_positions_are_errors() -> Result<()> {
        let source =
            NexmarkConnector.source(&table(all_fields(), &[("number-of-events", "9000")]))?;
        let metrics = Arc::new(OperatorMetrics::default());
        let fresh = |subtask, parallelism| -> Result<Box<dyn Source>> {
            let task = task(subtask, parallelism);
            let mut src = (source.factory)(&task)?;
            src.open(&task, &metrics)?;
            Ok(src)
        };
        let mut src = fresh(1, 3)?;
        poll_batches(src.as_mut(), 1)?;
        let good = src.snapshot_position()?;
        fresh(1, 3)?.restore_position(&good)?;
        let mut damaged = vec![vec![], vec![2], good[..good.len() - 1].to_vec()];
        damaged.push([good.as_slice(), &[0]].concat());
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        damaged.push(wrong_version);
        for bytes in &damaged {
            match fresh(1, 3)?.restore_position(bytes) {
                Err(EngineError::Plan(msg)) => assert!(msg.contains("nexmark"), "{msg}"),
                Err(other) => panic!("expected a plan error, got {other}"),
                Ok(()) => panic!("position {bytes:?} must be rejected"),
            }
        }
        // Another subtask or parallelism would emit other events.
        match fresh(2, 3)?.restore_position(&good) {
            Err(EngineError::Plan(msg)) => assert!(msg.contains("subtask 2 of 3"), "{msg}"),
            other => panic!("expected a plan error, got {other:?}"),
        }
        match fresh(1, 2)?.restore_position(&good) {
            Err(EngineError::Plan(msg)) => assert!(msg.contains("parallelism"), "{msg}"),
            other => panic!("expected a plan error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn columns_are_selected_by_name_in_table_order() -> Result<()> {
        let t = table(
            vec![
                Field::new("BID_PRICE", DataType::Int64, true),
                Field::new("event_type", DataType::Int32, false),
            ],
            &[("number-of-events", "100")],
        );
        let d = drain(&NexmarkConnector.source(&t)?, 1)?;
        let batch = d.all().into_iter().next().expect("a batch");
        assert_eq!(batch.num_columns(), 2);
        let price = batch.column(0).as_primitive::<Int64Type>();
        let kind = batch.column(1).as_primitive::<Int32Type>();
        assert_eq!(kind.value(0), 0);
        assert!(price.is_null(0), "a person has no bid price");
        assert!(kind.value(4) == 2 && price.value(4) > 0);
        Ok(())
    }

    #[test]
    fn unknown_column_and_wrong_type_are_plan_errors() {
        let msg = plan_error(vec![Field::new("bid_price", DataType::Float64, true)], &[]);
        assert!(
            msg.contains("'bid_price'") && msg.contains("BIGINT"),
            "{msg}"
        );
        assert!(msg.contains("event_time TIMESTAMP(3)"), "{msg}");
        let msg = plan_error(vec![Field::new("bid_time", DataType::Int64, true)], &[]);
        assert!(
            msg.contains("'bid_time'") && msg.contains("available columns"),
            "{msg}"
        );
        assert!(
            msg.contains("event_type INT") && msg.contains("bid_url STRING"),
            "{msg}"
        );
        let msg = plan_error(vec![Field::new("person_id", DataType::Int64, false)], &[]);
        assert!(msg.contains("NOT NULL"), "{msg}");
    }

    #[test]
    fn invalid_options_are_plan_errors_naming_the_option() {
        let fields = || vec![Field::new("event_type", DataType::Int32, false)];
        for (key, value) in [
            ("number-of-events", "many"),
            ("rows-per-second", "-3"),
            ("seed", "x"),
            ("nexmark.start", "soon"),
            ("nexmark.event-interval-us", "0"),
            ("nexmark.hot-auction-ratio", "1.5"),
            ("nexmark.hot-bidder-ratio", "often"),
            ("nexmark.in-flight-auctions", "0"),
            ("nexmark.active-people", "100000000000"),
            ("nexmark.auction-duration-ms", "0"),
        ] {
            let msg = plan_error(fields(), &[(key, value)]);
            assert!(msg.contains(&format!("'{key}'")), "{key}: {msg}");
        }
    }

    #[test]
    fn unbounded_by_default_and_cannot_be_written() -> Result<()> {
        let t = table(all_fields(), &[]);
        let source = NexmarkConnector.source(&t)?;
        assert!(!source.bounded);
        let task = task(0, 1);
        let mut src = (source.factory)(&task)?;
        src.open(&task, &Arc::new(OperatorMetrics::default()))?;
        // Paced: the first poll, right after the clock starts, has nothing.
        assert!(matches!(src.poll()?, SourcePoll::Pending));
        assert!(matches!(
            NexmarkConnector.sink(&t, false),
            Err(EngineError::Plan(_))
        ));
        Ok(())
    }
}
