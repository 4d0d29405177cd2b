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
//! see `source.rs`.

use std::sync::Arc;

use runnel_engine::connector::{Connector, SourceTable, TableDescriptor};
use runnel_engine::operator::{OperatorFactory, TaskInfo};
use runnel_engine::{EngineError, Result};

use crate::generator::{generator_table, select_columns};
use crate::options::{bad_option, min_u64_option, parse_timestamp_millis, rate_option};

mod columns;
mod events;
mod source;
#[cfg(test)]
mod tests;

use columns::Column;
use events::{AUCTIONS_PER_BLOCK, BLOCK};
use source::NexmarkGenerator;

/// Default `'nexmark.start'`: 2026-01-01 00:00:00 UTC.
const DEFAULT_START_MS: i64 = 1_767_225_600_000;

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
        let columns = Arc::new(select_columns(
            "nexmark",
            table,
            Column::nullable,
            "it is NULL in every event of another type; only event_type and event_time are \
             never NULL",
        )?);
        let schema = Arc::clone(&table.schema);
        let bounded = config.number_of_events.is_some();
        Ok(generator_table(bounded, move |task: &TaskInfo| {
            NexmarkGenerator::new(
                Arc::clone(&config),
                Arc::clone(&columns),
                Arc::clone(&schema),
                task,
            )
        }))
    }

    fn sink(&self, table: &TableDescriptor, _updating: bool) -> Result<OperatorFactory> {
        Err(EngineError::Plan(format!(
            "connector 'nexmark' of table '{}' can only be read, not written",
            table.name
        )))
    }
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
