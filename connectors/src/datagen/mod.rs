//! `datagen`: a deterministic generator of IoT sensor readings.
//!
//! A fleet of `'iot.devices'` sensors, spread over `'iot.regions'` regions,
//! each reports every `'iot.interval-ms'` of event time. Every value of a
//! reading is a hash of `(seed, device, tick)` rather than the output of a
//! running random stream, so the generated rows do not depend on how the
//! devices are split over subtasks: the same options give the same multiset
//! of rows at any parallelism.
//!
//! The rows of one run are numbered tick-major (`tick * devices + device`);
//! `'number-of-rows'` keeps the first `n` of that numbering.
//!
//! Real fleets send bad data, and so does this generator on request: missing
//! device ids, 9999 °F readings, malformed payloads and readings that arrive
//! late (their event time moved back by `'iot.late-ms'`).
//!
//! Checkpoints: a subtask's position is its cursor in the schedule (the
//! tick and the index of the next device within it), so a restored subtask
//! continues with exactly the row after the last one it emitted. See
//! `source.rs` for the encoding.

use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use runnel_engine::connector::{Connector, SourceTable, TableDescriptor};
use runnel_engine::operator::{OperatorFactory, TaskInfo};
use runnel_engine::{EngineError, Result};

use crate::generator::{generator_table, select_columns, GeneratedColumn};
use crate::options::{bad_option, min_u64_option, parse_timestamp_millis, rate_option};

mod fleet;
mod source;
#[cfg(test)]
mod tests;

use source::DatagenGenerator;

/// Largest `'iot.devices'`.
const MAX_DEVICES: u64 = 10_000_000;

/// Default `'iot.start'`: 2026-01-01 00:00:00 UTC.
const DEFAULT_START_MS: i64 = 1_767_225_600_000;

const OPTIONS: &[&str] = &[
    "number-of-rows",
    "rows-per-second",
    "seed",
    "iot.devices",
    "iot.regions",
    "iot.interval-ms",
    "iot.start",
    "iot.missing-device-rate",
    "iot.bad-temperature-rate",
    "iot.malformed-rate",
    "iot.late-rate",
    "iot.late-ms",
    "iot.outage-rate",
];

/// The `datagen` connector (source only).
#[derive(Debug, Default, Clone, Copy)]
pub struct DatagenConnector;

impl Connector for DatagenConnector {
    fn name(&self) -> &'static str {
        "datagen"
    }

    fn options(&self) -> &'static [&'static str] {
        OPTIONS
    }

    fn supports_projection(&self, _table: &TableDescriptor) -> bool {
        // Columns are chosen by name; unused ones (such as `raw`) are then
        // never generated.
        true
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        let config = Arc::new(IotConfig::from_table(table)?);
        let columns = Arc::new(select_columns(
            "datagen",
            table,
            |c: IotColumn| c.nullable(&config),
            "the generator's error rates make it NULL in some rows",
        )?);
        let schema = Arc::clone(&table.schema);
        let bounded = config.number_of_rows.is_some();
        Ok(generator_table(bounded, move |task: &TaskInfo| {
            DatagenGenerator::new(
                Arc::clone(&config),
                Arc::clone(&columns),
                Arc::clone(&schema),
                task,
            )
        }))
    }

    fn sink(&self, table: &TableDescriptor, _updating: bool) -> Result<OperatorFactory> {
        Err(EngineError::Plan(format!(
            "connector 'datagen' of table '{}' can only be read, not written",
            table.name
        )))
    }
}

/// The columns a datagen table may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IotColumn {
    EventTime,
    DeviceId,
    Region,
    Temperature,
    Humidity,
    Status,
    Raw,
}

impl IotColumn {
    const ALL: [IotColumn; 7] = [
        IotColumn::EventTime,
        IotColumn::DeviceId,
        IotColumn::Region,
        IotColumn::Temperature,
        IotColumn::Humidity,
        IotColumn::Status,
        IotColumn::Raw,
    ];

    /// True when the options can make this column NULL.
    fn nullable(self, config: &IotConfig) -> bool {
        match self {
            IotColumn::DeviceId => config.missing_rate > 0.0,
            IotColumn::Temperature => config.malformed_rate > 0.0,
            _ => false,
        }
    }
}

impl GeneratedColumn for IotColumn {
    fn all() -> &'static [Self] {
        &Self::ALL
    }

    fn name(self) -> &'static str {
        match self {
            IotColumn::EventTime => "event_time",
            IotColumn::DeviceId => "device_id",
            IotColumn::Region => "region",
            IotColumn::Temperature => "temperature",
            IotColumn::Humidity => "humidity",
            IotColumn::Status => "status",
            IotColumn::Raw => "raw",
        }
    }

    fn data_type(self) -> DataType {
        match self {
            IotColumn::EventTime => DataType::Timestamp(TimeUnit::Millisecond, None),
            IotColumn::Temperature | IotColumn::Humidity => DataType::Float64,
            _ => DataType::Utf8,
        }
    }

    fn sql_type(self) -> &'static str {
        match self {
            IotColumn::EventTime => "TIMESTAMP(3)",
            IotColumn::Temperature | IotColumn::Humidity => "DOUBLE",
            _ => "STRING",
        }
    }
}

/// The parsed options.
#[derive(Debug, Clone)]
struct IotConfig {
    seed: u64,
    devices: u64,
    regions: u64,
    interval_ms: u64,
    start_ms: i64,
    missing_rate: f64,
    bad_temperature_rate: f64,
    malformed_rate: f64,
    late_rate: f64,
    late_ms: i64,
    /// Fraction of (device, hour) slots in which the device sends nothing.
    outage_rate: f64,
    number_of_rows: Option<u64>,
    /// Rows per second over all subtasks; `None` generates as fast as asked.
    rows_per_second: Option<u64>,
}

impl IotConfig {
    fn from_table(table: &TableDescriptor) -> Result<Self> {
        let number_of_rows = match table.option("number-of-rows") {
            None => None,
            Some(_) => Some(table.u64_option("number-of-rows", 0)?),
        };
        let rows_per_second = match (table.option("rows-per-second"), number_of_rows) {
            // A bounded table without an explicit rate is generated at full
            // speed: it is a test fixture, not a simulated fleet.
            (None, Some(_)) => None,
            _ => Some(min_u64_option(table, "rows-per-second", 1000, 1)?),
        };
        let start_ms = match table.option("iot.start") {
            None => DEFAULT_START_MS,
            Some(v) => parse_timestamp_millis(v).ok_or_else(|| {
                bad_option(
                    table,
                    "iot.start",
                    &format!("must be epoch milliseconds or 'YYYY-MM-DD HH:MM:SS', not '{v}'"),
                )
            })?,
        };
        let late_ms = table.u64_option("iot.late-ms", 120_000)?;
        let devices = min_u64_option(table, "iot.devices", 2000, 1)?;
        // Each subtask keeps its devices in memory; a typo must not exhaust it.
        if devices > MAX_DEVICES {
            return Err(bad_option(
                table,
                "iot.devices",
                &format!("must be at most {MAX_DEVICES}, not {devices}"),
            ));
        }
        Ok(Self {
            seed: table.u64_option("seed", 42)?,
            devices,
            regions: min_u64_option(table, "iot.regions", 5, 1)?,
            interval_ms: min_u64_option(table, "iot.interval-ms", 5000, 1)?,
            start_ms,
            missing_rate: rate_option(table, "iot.missing-device-rate", 0.0)?,
            bad_temperature_rate: rate_option(table, "iot.bad-temperature-rate", 0.0)?,
            malformed_rate: rate_option(table, "iot.malformed-rate", 0.0)?,
            late_rate: rate_option(table, "iot.late-rate", 0.0)?,
            outage_rate: rate_option(table, "iot.outage-rate", 0.0)?,
            late_ms: i64::try_from(late_ms)
                .map_err(|_| bad_option(table, "iot.late-ms", "is too large"))?,
            number_of_rows,
            rows_per_second,
        })
    }
}
