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
//! [`DatagenSource::snapshot_position`] for the encoding.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
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

/// Largest `'iot.devices'`.
const MAX_DEVICES: u64 = 10_000_000;

/// Format version of [`DatagenSource`] positions.
const POSITION_VERSION: u8 = 1;

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
        let columns = Arc::new(select_columns(table, &config)?);
        let schema = Arc::clone(&table.schema);
        let bounded = config.number_of_rows.is_some();
        let factory = Arc::new(move |task: &TaskInfo| {
            Ok(Box::new(DatagenSource::new(
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

    /// True when the options can make this column NULL.
    fn nullable(self, config: &IotConfig) -> bool {
        match self {
            IotColumn::DeviceId => config.missing_rate > 0.0,
            IotColumn::Temperature => config.malformed_rate > 0.0,
            _ => false,
        }
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
fn select_columns(table: &TableDescriptor, config: &IotConfig) -> Result<Vec<IotColumn>> {
    table
        .schema
        .fields()
        .iter()
        .map(|field| {
            let column = IotColumn::ALL
                .iter()
                .copied()
                .find(|c| c.name().eq_ignore_ascii_case(field.name()))
                .ok_or_else(|| {
                    EngineError::Plan(format!(
                        "datagen table '{}' has a column '{}' that the generator does not \
                         produce; available columns: {}",
                        table.name,
                        field.name(),
                        IotColumn::available()
                    ))
                })?;
            if field.data_type() != &column.data_type() {
                return Err(EngineError::Plan(format!(
                    "column '{}' of datagen table '{}' must be {} ({}), not {}; available \
                     columns: {}",
                    field.name(),
                    table.name,
                    column.sql_type(),
                    column.data_type(),
                    field.data_type(),
                    IotColumn::available()
                )));
            }
            if !field.is_nullable() && column.nullable(config) {
                return Err(EngineError::Plan(format!(
                    "column '{}' of datagen table '{}' is NOT NULL, but the generator's \
                     error rates make it NULL in some rows",
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

// Salts separate the independent draws made from one (seed, device, tick).
const SALT_REGION: u64 = 1;
const SALT_OFFSET: u64 = 2;
const SALT_DEVICE_TEMP: u64 = 3;
const SALT_DEVICE_HUMIDITY: u64 = 4;
const SALT_TEMP_NOISE: u64 = 5;
const SALT_HUMIDITY_NOISE: u64 = 6;
const SALT_STATUS: u64 = 7;
const SALT_MISSING: u64 = 8;
const SALT_BAD_TEMP: u64 = 9;
const SALT_MALFORMED: u64 = 10;
const SALT_LATE: u64 = 11;
const SALT_GARBAGE: u64 = 12;
const SALT_OUTAGE: u64 = 13;

/// True when `device` is silent during the hour that holds `tick`: a
/// device that fails to report for a while, as fleets do.
fn in_outage(config: &IotConfig, device: u64, tick: u64) -> bool {
    if config.outage_rate <= 0.0 {
        return false;
    }
    let hour = tick.saturating_mul(config.interval_ms) / 3_600_000;
    unit(hash(config.seed, device, hour, SALT_OUTAGE)) < config.outage_rate
}

/// SplitMix64's finalizer: a cheap, well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash(seed: u64, device: u64, tick: u64, salt: u64) -> u64 {
    mix(mix(mix(mix(seed) ^ salt) ^ device) ^ tick)
}

/// A uniform draw in `[0, 1)`.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Region name and its climate (mean °F, mean relative humidity %).
fn region(index: u64) -> (String, f64, f64) {
    match index {
        0 => ("north".into(), 54.0, 62.0),
        1 => ("south".into(), 80.0, 70.0),
        2 => ("east".into(), 66.0, 55.0),
        3 => ("west".into(), 72.0, 35.0),
        4 => ("central".into(), 64.0, 50.0),
        i => (
            format!("region-{}", i + 1),
            55.0 + ((i * 7) % 25) as f64,
            35.0 + ((i * 11) % 40) as f64,
        ),
    }
}

/// How much warmer a device runs than its region: a few degrees either way,
/// and about one device in twenty sits next to machinery and runs hot, so
/// that threshold alerts have something to find at any time of day.
fn device_temperature_offset(h: u64) -> f64 {
    let u = unit(h);
    if u < 0.05 {
        15.0 + u * 100.0
    } else {
        (u - 0.5) * 12.0
    }
}

/// What stays fixed for a device across readings.
#[derive(Debug, Clone)]
struct Device {
    id: u64,
    name: String,
    region: Arc<str>,
    /// Offset of its reports within each interval, so a fleet does not report
    /// all at once.
    offset_ms: u64,
    base_temperature: f64,
    base_humidity: f64,
}

impl Device {
    fn new(config: &IotConfig, id: u64) -> Self {
        let seed = config.seed;
        let (region, temp, humidity) = region(hash(seed, id, 0, SALT_REGION) % config.regions);
        Self {
            id,
            name: format!("device-{id:04}"),
            region: region.into(),
            offset_ms: hash(seed, id, 0, SALT_OFFSET) % config.interval_ms,
            base_temperature: temp + device_temperature_offset(hash(seed, id, 0, SALT_DEVICE_TEMP)),
            base_humidity: humidity + (unit(hash(seed, id, 0, SALT_DEVICE_HUMIDITY)) - 0.5) * 20.0,
        }
    }
}

/// One generated reading.
#[derive(Debug)]
struct Reading {
    event_time: i64,
    missing_device: bool,
    temperature: Option<f64>,
    humidity: f64,
    status: &'static str,
    malformed: bool,
}

const GARBAGE_STATUS: [&str; 6] = ["act!ve", "#ERR", "???", "IDL3", "0xFF", "stat\u{fffd}s"];

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn reading(config: &IotConfig, device: &Device, tick: u64) -> Reading {
    let seed = config.seed;
    let d = device.id;
    let on_time = config.start_ms.saturating_add(
        i64::try_from(
            tick.saturating_mul(config.interval_ms)
                .saturating_add(device.offset_ms),
        )
        .unwrap_or(i64::MAX),
    );
    // A daily cycle peaking mid-afternoon keeps windowed averages interesting.
    let day_fraction = on_time.rem_euclid(86_400_000) as f64 / 86_400_000.0;
    let daily = (std::f64::consts::TAU * (day_fraction - 0.375)).sin();
    let temp_noise = (unit(hash(seed, d, tick, SALT_TEMP_NOISE)) - 0.5) * 6.0;
    let temperature =
        round1((device.base_temperature + 6.0 * daily + temp_noise).clamp(30.0, 115.0));
    let humidity_noise = (unit(hash(seed, d, tick, SALT_HUMIDITY_NOISE)) - 0.5) * 10.0;
    let humidity = round1((device.base_humidity - 10.0 * daily + humidity_noise).clamp(3.0, 100.0));
    let s = unit(hash(seed, d, tick, SALT_STATUS));
    let status = if s < 0.03 {
        "faulty"
    } else if s < 0.15 {
        "idle"
    } else {
        "active"
    };
    let missing_device = unit(hash(seed, d, tick, SALT_MISSING)) < config.missing_rate;
    let bad_temperature = unit(hash(seed, d, tick, SALT_BAD_TEMP)) < config.bad_temperature_rate;
    let malformed = unit(hash(seed, d, tick, SALT_MALFORMED)) < config.malformed_rate;
    let late = unit(hash(seed, d, tick, SALT_LATE)) < config.late_rate;
    let garbage = (hash(seed, d, tick, SALT_GARBAGE) % GARBAGE_STATUS.len() as u64) as usize;
    Reading {
        event_time: if late {
            on_time.saturating_sub(config.late_ms)
        } else {
            on_time
        },
        missing_device,
        temperature: if malformed {
            None
        } else if bad_temperature {
            Some(9999.0)
        } else {
            Some(temperature)
        },
        humidity,
        status: if malformed {
            GARBAGE_STATUS.get(garbage).copied().unwrap_or("???")
        } else {
            status
        },
        malformed,
    }
}

/// The reading as the JSON a device would send; cut short when malformed.
fn raw_json(config: &IotConfig, device: &Device, tick: u64, r: &Reading) -> String {
    let time = chrono::DateTime::from_timestamp_millis(r.event_time)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| r.event_time.to_string());
    let device_id = if r.missing_device {
        "null".to_string()
    } else {
        format!("\"{}\"", device.name)
    };
    let temperature = match r.temperature {
        Some(t) => format!("{t:.1}"),
        // A malformed reading still carried some temperature text; the
        // payload is cut before it is parseable anyway.
        None => "7?.?".to_string(),
    };
    let full = format!(
        "{{\"device_id\":{device_id},\"region\":\"{}\",\"event_time\":\"{time}\",\
         \"temperature\":{temperature},\"humidity\":{:.1},\"status\":\"{}\"}}",
        device.region, r.humidity, r.status
    );
    if !r.malformed {
        return full;
    }
    // Any strict prefix of a JSON object lacks its closing brace, so the cut
    // text never parses.
    let len = full.len();
    let cut = len / 3 + (hash(config.seed, device.id, tick, SALT_GARBAGE) as usize) % (len / 2);
    let mut cut = cut.min(len - 1);
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    full[..cut].to_string()
}

/// Where a subtask's generator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    SplitDone,
    Finished,
}

/// One subtask of the generator: the devices `d` with `d % p == subtask`.
struct DatagenSource {
    config: Arc<IotConfig>,
    columns: Arc<Vec<IotColumn>>,
    schema: SchemaRef,
    split: SplitId,
    /// This subtask's devices, in the order they report within a tick.
    devices: Vec<Device>,
    tick: u64,
    position: usize,
    /// Paces this subtask to its share of the devices' rate.
    pacer: Pacer,
    /// Rows emitted by this subtask since the job first started.
    emitted: u64,
    phase: Phase,
}

impl DatagenSource {
    fn new(
        config: Arc<IotConfig>,
        columns: Arc<Vec<IotColumn>>,
        schema: SchemaRef,
        task: &TaskInfo,
    ) -> Self {
        let parallelism = task.parallelism.max(1) as u64;
        let subtask = task.subtask as u64;
        let mut devices: Vec<Device> = (0..config.devices)
            .filter(|d| d % parallelism == subtask)
            .map(|d| Device::new(&config, d))
            .collect();
        // Reporting in offset order keeps each subtask's output in event-time
        // order (late rows aside).
        devices.sort_by_key(|d| (d.offset_ms, d.id));
        let rate = config
            .rows_per_second
            .map(|r| r as f64 * devices.len() as f64 / config.devices as f64);
        Self {
            config,
            columns,
            schema,
            split: SplitId::try_from(task.subtask).unwrap_or(SplitId::MAX),
            devices,
            tick: 0,
            position: 0,
            pacer: Pacer::new(rate, BATCH_ROWS),
            emitted: 0,
            phase: Phase::Running,
        }
    }

    /// True when no device has a row left.
    fn exhausted(&self) -> bool {
        if self.devices.is_empty() {
            return true;
        }
        match self.config.number_of_rows {
            Some(n) => self.tick.saturating_mul(self.config.devices) >= n,
            None => false,
        }
    }

    /// The next (device, tick) to emit, advancing past rows beyond
    /// `'number-of-rows'`.
    fn next_row(&mut self) -> Option<(usize, u64)> {
        loop {
            if self.exhausted() {
                return None;
            }
            if self.position >= self.devices.len() {
                self.position = 0;
                self.tick += 1;
                continue;
            }
            let index = self.position;
            self.position += 1;
            let id = self.devices.get(index)?.id;
            let row = self
                .tick
                .saturating_mul(self.config.devices)
                .saturating_add(id);
            if self.config.number_of_rows.is_none_or(|n| row < n) {
                return Some((index, self.tick));
            }
        }
    }

    fn generate(&mut self, max_rows: usize) -> Result<RecordBatch> {
        let columns = Arc::clone(&self.columns);
        let mut times = TimestampMillisecondBuilder::with_capacity(max_rows);
        let mut ids = StringBuilder::new();
        let mut regions = StringBuilder::new();
        let mut temps = Float64Builder::with_capacity(max_rows);
        let mut humidities = Float64Builder::with_capacity(max_rows);
        let mut statuses = StringBuilder::new();
        let mut raws = StringBuilder::new();
        let wants_raw = columns.contains(&IotColumn::Raw);
        let mut rows = 0;
        while rows < max_rows {
            let Some((index, tick)) = self.next_row() else {
                break;
            };
            let Some(device) = self.devices.get(index) else {
                break;
            };
            // Readings scheduled during an outage are never sent; they
            // still count towards 'number-of-rows' (the schedule's length).
            if in_outage(&self.config, device.id, tick) {
                continue;
            }
            let r = reading(&self.config, device, tick);
            times.append_value(r.event_time);
            if r.missing_device {
                ids.append_null();
            } else {
                ids.append_value(&device.name);
            }
            regions.append_value(&device.region);
            temps.append_option(r.temperature);
            humidities.append_value(r.humidity);
            statuses.append_value(r.status);
            if wants_raw {
                raws.append_value(raw_json(&self.config, device, tick, &r));
            }
            rows += 1;
        }
        self.emitted += rows as u64;
        self.pacer.sent(rows as u64);
        let mut built: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        for column in columns.iter() {
            let array: ArrayRef = match column {
                IotColumn::EventTime => Arc::new(times.finish()),
                IotColumn::DeviceId => Arc::new(ids.finish()),
                IotColumn::Region => Arc::new(regions.finish()),
                IotColumn::Temperature => Arc::new(temps.finish()),
                IotColumn::Humidity => Arc::new(humidities.finish()),
                IotColumn::Status => Arc::new(statuses.finish()),
                IotColumn::Raw => Arc::new(raws.finish()),
            };
            built.push(array);
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            built,
            &options,
        )?)
    }
}

impl Source for DatagenSource {
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
        if batch.num_rows() == 0 {
            self.phase = Phase::SplitDone;
            return Ok(SourcePoll::SplitFinished(self.split));
        }
        Ok(SourcePoll::Batch {
            split: self.split,
            batch,
        })
    }

    /// Version 1: `[1, tick: u64, position: u64, emitted: u64,
    /// subtask devices: u64, all devices: u64, seed: u64]`, big-endian.
    /// `tick` and `position` are the cursor (the next row is device
    /// `position` of this subtask's reporting order at `tick`); `emitted`
    /// carries the row count on; the last three detect a restore into a
    /// job with other options or another parallelism, where the cursor would
    /// mean different rows.
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        Ok(PositionWriter::new(POSITION_VERSION)
            .u64(self.tick)
            .u64(self.position as u64)
            .u64(self.emitted)
            .u64(self.devices.len() as u64)
            .u64(self.config.devices)
            .u64(self.config.seed)
            .finish())
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        let mut r = PositionReader::new("datagen", position, POSITION_VERSION)?;
        let tick = r.u64()?;
        let index = r.u64()?;
        let emitted = r.u64()?;
        let subtask_devices = r.u64()?;
        let devices = r.u64()?;
        let seed = r.u64()?;
        if subtask_devices != self.devices.len() as u64
            || devices != self.config.devices
            || seed != self.config.seed
        {
            return Err(r.error(&format!(
                "it was taken with other options or another parallelism ({subtask_devices} \
                 of {devices} devices with seed {seed} in this subtask then, {} of {} with \
                 seed {} now)",
                self.devices.len(),
                self.config.devices,
                self.config.seed
            )));
        }
        let index = usize::try_from(index)
            .ok()
            .filter(|i| *i <= self.devices.len())
            .ok_or_else(|| {
                r.error(&format!(
                    "device index {index} is beyond the subtask's {} devices",
                    self.devices.len()
                ))
            })?;
        r.finish()?;
        self.tick = tick;
        self.position = index;
        self.emitted = emitted;
        // Whether the split already ended is derived again from the cursor,
        // so that the restored run also reports the end of its split.
        self.phase = Phase::Running;
        self.pacer.restart();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Float64Type, TimestampMillisecondType};

    use super::*;
    use crate::testutil::{
        check_resume_everywhere, drain, poll_batches, rows_of, table, task, Drained,
    };

    fn all_fields() -> Vec<Field> {
        IotColumn::ALL
            .iter()
            .map(|c| Field::new(c.name(), c.data_type(), true))
            .collect()
    }

    fn generate(options: &[(&str, &str)], parallelism: usize) -> Result<Drained> {
        let t = table(all_fields(), options);
        drain(&DatagenConnector.source(&t)?, parallelism)
    }

    fn plan_error(fields: Vec<Field>, options: &[(&str, &str)]) -> String {
        match DatagenConnector.source(&table(fields, options)) {
            Err(EngineError::Plan(msg)) => msg,
            Err(other) => panic!("expected a plan error, got {other}"),
            Ok(_) => panic!("expected a plan error"),
        }
    }

    /// (device_id, event_time) of every row, in emission order.
    fn device_times(d: &Drained) -> Vec<(Option<String>, i64)> {
        let mut out = Vec::new();
        for batch in d.all() {
            let ids = batch.column(1).as_string::<i32>();
            let times = batch.column(0).as_primitive::<TimestampMillisecondType>();
            for i in 0..batch.num_rows() {
                let id = ids.is_valid(i).then(|| ids.value(i).to_string());
                out.push((id, times.value(i)));
            }
        }
        out
    }

    #[test]
    fn same_seed_same_rows_different_seed_different_rows() -> Result<()> {
        let a = generate(&[("number-of-rows", "3000"), ("seed", "7")], 1)?;
        let b = generate(&[("number-of-rows", "3000"), ("seed", "7")], 1)?;
        let c = generate(&[("number-of-rows", "3000"), ("seed", "8")], 1)?;
        assert_eq!(a.sorted_rows()?, b.sorted_rows()?);
        assert_ne!(a.sorted_rows()?, c.sorted_rows()?);
        Ok(())
    }

    #[test]
    fn same_multiset_at_parallelism_one_and_three() -> Result<()> {
        let options = [
            ("number-of-rows", "5000"),
            ("iot.devices", "100"),
            ("iot.missing-device-rate", "0.1"),
            ("iot.malformed-rate", "0.05"),
            ("iot.late-rate", "0.1"),
        ];
        let one = generate(&options, 1)?;
        let three = generate(&options, 3)?;
        assert_eq!(three.batches.len(), 3);
        assert!(
            three.batches.iter().all(|b| !b.is_empty()),
            "every subtask works"
        );
        assert_eq!(one.sorted_rows()?, three.sorted_rows()?);
        Ok(())
    }

    #[test]
    fn number_of_rows_is_exact_at_any_parallelism() -> Result<()> {
        for parallelism in [1, 3, 4, 7] {
            let d = generate(
                &[("number-of-rows", "10007"), ("iot.devices", "2000")],
                parallelism,
            )?;
            assert_eq!(d.rows(), 10_007, "parallelism {parallelism}");
            let max_batch = d.all().iter().map(RecordBatch::num_rows).max().unwrap_or(0);
            assert!(max_batch <= BATCH_ROWS);
        }
        // More subtasks than devices: the idle ones finish at once.
        let d = generate(&[("number-of-rows", "10"), ("iot.devices", "2")], 4)?;
        assert_eq!(d.rows(), 10);
        Ok(())
    }

    #[test]
    fn outages_silence_whole_device_hours() -> Result<()> {
        // 50 devices, one reading a minute, 10 hours: 500 device-hours.
        let d = generate(
            &[
                ("number-of-rows", "30000"),
                ("iot.devices", "50"),
                ("iot.interval-ms", "60000"),
                ("iot.outage-rate", "0.2"),
            ],
            2,
        )?;
        let mut per_slot: std::collections::HashMap<(String, i64), usize> =
            std::collections::HashMap::new();
        let start = DEFAULT_START_MS;
        for (device, t) in device_times(&d) {
            let device = device.expect("no missing ids configured");
            *per_slot
                .entry((device, (t - start).div_euclid(3_600_000)))
                .or_default() += 1;
        }
        let silent = 500 - per_slot.len();
        assert!(
            (60..=140).contains(&silent),
            "{silent} of 500 device-hours silent, expected about 100"
        );
        // A device-hour is either silent or complete (60 readings; device
        // offsets may move one reading across an hour boundary).
        assert!(
            per_slot.values().all(|&n| n >= 59),
            "partial outage hours: {per_slot:?}"
        );
        let rows: usize = d.all().iter().map(|b| b.num_rows()).sum();
        assert!(
            (21_000..=27_000).contains(&rows),
            "{rows} rows sent of 30000 scheduled"
        );
        Ok(())
    }

    #[test]
    fn rates_are_roughly_respected() -> Result<()> {
        let d = generate(
            &[
                ("number-of-rows", "20000"),
                ("iot.missing-device-rate", "0.1"),
                ("iot.bad-temperature-rate", "0.05"),
                ("iot.malformed-rate", "0.03"),
            ],
            2,
        )?;
        let (mut missing, mut bad, mut malformed, mut garbage_status, mut total) = (0, 0, 0, 0, 0);
        for batch in d.all() {
            let ids = batch.column(1).as_string::<i32>();
            let temps = batch.column(3).as_primitive::<Float64Type>();
            let statuses = batch.column(5).as_string::<i32>();
            let raws = batch.column(6).as_string::<i32>();
            for i in 0..batch.num_rows() {
                total += 1;
                missing += usize::from(ids.is_null(i));
                let status_ok = ["active", "idle", "faulty"].contains(&statuses.value(i));
                if temps.is_null(i) {
                    malformed += 1;
                    garbage_status += usize::from(!status_ok);
                    assert!(!raws.value(i).ends_with('}'), "malformed raw is cut short");
                } else {
                    assert!(status_ok, "{}", statuses.value(i));
                    assert!(raws.value(i).starts_with('{') && raws.value(i).ends_with('}'));
                    bad += usize::from(temps.value(i) == 9999.0);
                }
            }
        }
        assert_eq!(total, 20_000);
        let close = |n: usize, rate: f64| (n as f64 / total as f64 - rate).abs() < 0.02;
        assert!(close(missing, 0.1), "missing {missing}");
        // Bad temperatures are drawn among all rows, malformed ones hide some.
        assert!(close(bad, 0.05 * 0.97), "bad {bad}");
        assert!(close(malformed, 0.03), "malformed {malformed}");
        assert_eq!(
            garbage_status, malformed,
            "malformed rows carry a garbage status"
        );
        Ok(())
    }

    #[test]
    fn temperatures_are_realistic() -> Result<()> {
        let d = generate(&[("number-of-rows", "20000")], 1)?;
        let mut temps = Vec::new();
        for batch in d.all() {
            temps.extend(
                batch
                    .column(3)
                    .as_primitive::<Float64Type>()
                    .iter()
                    .flatten(),
            );
        }
        assert_eq!(temps.len(), 20_000, "no NULLs without a malformed rate");
        assert!(temps.iter().all(|t| (30.0..=115.0).contains(t)));
        assert!(temps.iter().any(|t| *t > 90.0), "some hot readings");
        assert!(temps.iter().any(|t| *t < 60.0), "some cool readings");
        Ok(())
    }

    #[test]
    fn late_rows_are_behind_their_devices_previous_reading() -> Result<()> {
        let rows = |late: &str| -> Result<Vec<(Option<String>, i64)>> {
            Ok(device_times(&generate(
                &[
                    ("number-of-rows", "20000"),
                    ("iot.devices", "200"),
                    ("iot.late-rate", late),
                ],
                3,
            )?))
        };
        let count_behind = |rows: &[(Option<String>, i64)]| {
            let mut previous: HashMap<String, i64> = HashMap::new();
            let mut behind = 0;
            for (id, time) in rows {
                let id = id.clone().expect("no missing ids without a missing rate");
                if let Some(prev) = previous.insert(id, *time) {
                    behind += usize::from(*time < prev);
                }
            }
            behind
        };
        assert_eq!(
            count_behind(&rows("0")?),
            0,
            "on-time readings advance per device"
        );
        let behind = count_behind(&rows("0.1")?);
        // About 10% late; a late row right after another late row is not
        // behind it, so a bit less is seen.
        assert!((1400..=2200).contains(&behind), "behind {behind}");
        Ok(())
    }

    #[test]
    fn event_times_follow_interval_and_start() -> Result<()> {
        let d = generate(
            &[
                ("number-of-rows", "40"),
                ("iot.devices", "10"),
                ("iot.interval-ms", "1000"),
                ("iot.start", "2026-03-01 12:00:00"),
            ],
            1,
        )?;
        let times: Vec<i64> = device_times(&d).into_iter().map(|(_, t)| t).collect();
        let start = parse_timestamp_millis("2026-03-01 12:00:00").expect("parses");
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "event-time order");
        assert!(times.iter().all(|t| (start..start + 4000).contains(t)));
        Ok(())
    }

    #[test]
    fn columns_are_selected_by_name_in_table_order() -> Result<()> {
        let t = table(
            vec![
                Field::new("temperature", DataType::Float64, true),
                Field::new("DEVICE_ID", DataType::Utf8, true),
            ],
            &[("number-of-rows", "100")],
        );
        let d = drain(&DatagenConnector.source(&t)?, 1)?;
        let batch = d.all().into_iter().next().expect("a batch");
        assert_eq!(batch.num_columns(), 2);
        assert_eq!(batch.schema().field(0).name(), "temperature");
        assert!(batch.column(0).as_primitive_opt::<Float64Type>().is_some());
        assert!(batch
            .column(1)
            .as_string::<i32>()
            .value(0)
            .starts_with("device-"));
        Ok(())
    }

    #[test]
    fn wrong_type_and_unknown_column_are_plan_errors() {
        let msg = plan_error(vec![Field::new("temperature", DataType::Int32, true)], &[]);
        assert!(
            msg.contains("'temperature'") && msg.contains("DOUBLE"),
            "{msg}"
        );
        assert!(msg.contains("event_time TIMESTAMP(3)"), "{msg}");
        let msg = plan_error(vec![Field::new("pressure", DataType::Float64, true)], &[]);
        assert!(
            msg.contains("'pressure'") && msg.contains("available columns"),
            "{msg}"
        );
        assert!(msg.contains("raw STRING"), "{msg}");
        let msg = plan_error(
            vec![Field::new("device_id", DataType::Utf8, false)],
            &[("iot.missing-device-rate", "0.1")],
        );
        assert!(msg.contains("NOT NULL"), "{msg}");
    }

    #[test]
    fn invalid_options_are_plan_errors_naming_the_option() {
        let fields = || vec![Field::new("region", DataType::Utf8, true)];
        for (key, value) in [
            ("iot.late-rate", "1.5"),
            ("iot.malformed-rate", "often"),
            ("iot.devices", "0"),
            ("iot.devices", "100000000000"),
            ("iot.start", "soon"),
            ("rows-per-second", "-3"),
        ] {
            let msg = plan_error(fields(), &[(key, value)]);
            assert!(msg.contains(&format!("'{key}'")), "{msg}");
        }
    }

    #[test]
    fn regions_are_named() -> Result<()> {
        let t = table(
            vec![Field::new("region", DataType::Utf8, true)],
            &[
                ("number-of-rows", "700"),
                ("iot.devices", "700"),
                ("iot.regions", "7"),
            ],
        );
        let d = drain(&DatagenConnector.source(&t)?, 1)?;
        let mut names: Vec<String> = d
            .all()
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names,
            ["central", "east", "north", "region-6", "region-7", "south", "west"]
        );
        Ok(())
    }

    #[test]
    fn unbounded_generation_is_paced() -> Result<()> {
        let t = table(all_fields(), &[("rows-per-second", "1000")]);
        let source = DatagenConnector.source(&t)?;
        assert!(!source.bounded);
        let task = task(0, 1);
        let mut src = (source.factory)(&task)?;
        src.open(&task, &Arc::new(OperatorMetrics::default()))?;
        let started = Instant::now();
        let (mut rows, mut pending) = (0, 0);
        while started.elapsed() < Duration::from_millis(100) {
            match src.poll()? {
                SourcePoll::Batch { batch, .. } => rows += batch.num_rows(),
                SourcePoll::Pending => {
                    pending += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => panic!("an unbounded source does not {other:?}"),
            }
        }
        let limit = (started.elapsed().as_secs_f64() * 1000.0) as usize + 1;
        assert!(rows >= 1 && rows <= limit, "rows {rows}, limit {limit}");
        assert!(pending > 0);
        Ok(())
    }

    #[test]
    fn resume_continues_exactly_after_the_last_row() -> Result<()> {
        let options = [
            ("number-of-rows", "20000"),
            ("iot.devices", "300"),
            ("iot.interval-ms", "60000"),
            ("iot.outage-rate", "0.2"),
            ("iot.missing-device-rate", "0.1"),
            ("iot.late-rate", "0.1"),
        ];
        let source = DatagenConnector.source(&table(all_fields(), &options))?;
        let batches = check_resume_everywhere(&source, 0, 1)?;
        assert!(batches >= 4, "{batches} batches: cuts fall mid-run");
        for subtask in 0..3 {
            check_resume_everywhere(&source, subtask, 3)?;
        }
        // Subtasks without devices resume too.
        let tiny = DatagenConnector.source(&table(
            all_fields(),
            &[("number-of-rows", "10"), ("iot.devices", "2")],
        ))?;
        for subtask in 0..4 {
            check_resume_everywhere(&tiny, subtask, 4)?;
        }
        Ok(())
    }

    #[test]
    fn a_resumed_run_equals_an_uninterrupted_one_across_several_restarts() -> Result<()> {
        let source = DatagenConnector.source(&table(
            all_fields(),
            &[("number-of-rows", "9000"), ("iot.devices", "77")],
        ))?;
        let task = task(0, 1);
        let metrics = Arc::new(OperatorMetrics::default());
        let mut whole = (source.factory)(&task)?;
        whole.open(&task, &metrics)?;
        let (all, _, _) = poll_batches(whole.as_mut(), usize::MAX)?;
        // Kill after every batch and restore from the last position.
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
        let options = [("number-of-rows", "5000"), ("iot.devices", "30")];
        let source = DatagenConnector.source(&table(all_fields(), &options))?;
        let metrics = Arc::new(OperatorMetrics::default());
        let fresh = |subtask, parallelism| -> Result<Box<dyn Source>> {
            let task = task(subtask, parallelism);
            let mut src = (source.factory)(&task)?;
            src.open(&task, &metrics)?;
            Ok(src)
        };
        let mut src = fresh(0, 3)?;
        poll_batches(src.as_mut(), 1)?;
        let good = src.snapshot_position()?;
        fresh(0, 3)?.restore_position(&good)?;

        let mut damaged: Vec<Vec<u8>> = vec![vec![], vec![2], good[..good.len() - 1].to_vec()];
        damaged.push([good.as_slice(), &[0]].concat());
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        damaged.push(wrong_version);
        // Device index 10_000 of a subtask with 10 devices.
        let mut bad_index = good.clone();
        bad_index[9..17].copy_from_slice(&10_000u64.to_be_bytes());
        damaged.push(bad_index);
        for bytes in &damaged {
            match fresh(0, 3)?.restore_position(bytes) {
                Err(EngineError::Plan(msg)) => {
                    assert!(msg.contains("datagen"), "{msg}")
                }
                Err(other) => panic!("expected a plan error, got {other}"),
                Ok(()) => panic!("position {bytes:?} must be rejected"),
            }
        }
        // Another parallelism gives the subtask other devices.
        match fresh(0, 2)?.restore_position(&good) {
            Err(EngineError::Plan(msg)) => assert!(msg.contains("parallelism"), "{msg}"),
            other => panic!("expected a plan error, got {other:?}"),
        }
        // And other options other rows.
        let other = DatagenConnector.source(&table(
            all_fields(),
            &[
                ("number-of-rows", "5000"),
                ("iot.devices", "30"),
                ("seed", "1"),
            ],
        ))?;
        let task = task(0, 3);
        let mut src = (other.factory)(&task)?;
        src.open(&task, &metrics)?;
        assert!(src.restore_position(&good).is_err());
        Ok(())
    }

    #[test]
    fn pacing_restarts_after_a_restore_without_bursting_or_stalling() -> Result<()> {
        let t = table(all_fields(), &[("rows-per-second", "2000")]);
        let source = DatagenConnector.source(&t)?;
        let task = task(0, 1);
        let metrics = Arc::new(OperatorMetrics::default());
        let run = |src: &mut dyn Source, for_ms: u64| -> Result<(usize, f64)> {
            let started = Instant::now();
            let mut rows = 0;
            while started.elapsed() < Duration::from_millis(for_ms) {
                match src.poll()? {
                    SourcePoll::Batch { batch, .. } => rows += batch.num_rows(),
                    _ => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            Ok((rows, started.elapsed().as_secs_f64()))
        };
        let mut first = (source.factory)(&task)?;
        first.open(&task, &metrics)?;
        let (before, _) = run(first.as_mut(), 150)?;
        assert!(before > 0);
        let position = first.snapshot_position()?;
        drop(first);
        // The job is down for a while: the restored source must not send
        // the rows of that time at once.
        std::thread::sleep(Duration::from_millis(150));
        let mut second = (source.factory)(&task)?;
        second.open(&task, &metrics)?;
        second.restore_position(&position)?;
        let (after, secs) = run(second.as_mut(), 100)?;
        let limit = (secs * 2000.0) as usize + 1;
        assert!(after <= limit, "burst: {after} rows in {secs}s");
        assert!(after > 0, "pacing stalled after the restore");
        Ok(())
    }

    #[test]
    fn datagen_cannot_be_written() {
        let t = table(all_fields(), &[]);
        assert!(matches!(
            DatagenConnector.sink(&t, false),
            Err(EngineError::Plan(_))
        ));
    }
}
