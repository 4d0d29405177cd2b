//! One subtask's share of the fleet: the devices `d` with
//! `d % parallelism == subtask`, read out tick by tick, with the cursor in
//! that schedule as its checkpoint position.
//! [`crate::generator::GeneratorSource`] runs it.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::SchemaRef;
use runnel_engine::operator::TaskInfo;
use runnel_engine::Result;

use super::fleet::{in_outage, raw_json, reading, Device};
use super::{IotColumn, IotConfig};
use crate::generator::RowGenerator;
use crate::position::{PositionReader, PositionWriter};

/// Format version of [`DatagenGenerator`] positions.
const POSITION_VERSION: u8 = 1;

/// One subtask of the generator: the devices `d` with `d % p == subtask`.
pub(super) struct DatagenGenerator {
    config: Arc<IotConfig>,
    columns: Arc<Vec<IotColumn>>,
    schema: SchemaRef,
    /// This subtask's devices, in the order they report within a tick.
    devices: Vec<Device>,
    tick: u64,
    position: usize,
    /// Rows emitted by this subtask since the job first started.
    emitted: u64,
}

impl DatagenGenerator {
    /// Subtask `task`'s generator and its share of the rows per second
    /// (its share of the devices).
    pub(super) fn new(
        config: Arc<IotConfig>,
        columns: Arc<Vec<IotColumn>>,
        schema: SchemaRef,
        task: &TaskInfo,
    ) -> (Self, Option<f64>) {
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
        let generator = Self {
            config,
            columns,
            schema,
            devices,
            tick: 0,
            position: 0,
            emitted: 0,
        };
        (generator, rate)
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

    fn generate_rows(&mut self, max_rows: usize) -> Result<RecordBatch> {
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

impl RowGenerator for DatagenGenerator {
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

    fn generate(&mut self, max_rows: usize) -> Result<RecordBatch> {
        self.generate_rows(max_rows)
    }

    /// Version 1: `[1, tick: u64, position: u64, emitted: u64,
    /// subtask devices: u64, all devices: u64, seed: u64]`, big-endian.
    /// `tick` and `position` are the cursor (the next row is device
    /// `position` of this subtask's reporting order at `tick`); `emitted`
    /// carries the row count on; the last three detect a restore into a
    /// job with other options or another parallelism, where the cursor would
    /// mean different rows.
    fn position(&self) -> Result<Vec<u8>> {
        Ok(PositionWriter::new(POSITION_VERSION)
            .u64(self.tick)
            .u64(self.position as u64)
            .u64(self.emitted)
            .u64(self.devices.len() as u64)
            .u64(self.config.devices)
            .u64(self.config.seed)
            .finish())
    }

    fn restore(&mut self, position: &[u8]) -> Result<()> {
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
        Ok(())
    }
}
