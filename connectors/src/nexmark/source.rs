//! One subtask's share of the Nexmark stream: the events `n` with
//! `n % parallelism == subtask`, with the next `n` as its checkpoint
//! position. [`crate::generator::GeneratorSource`] runs it.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use runnel_engine::operator::TaskInfo;
use runnel_engine::Result;

use super::columns::{Builder, Column};
use super::events::event;
use super::NexmarkConfig;
use crate::generator::RowGenerator;
use crate::position::{PositionReader, PositionWriter};

/// Format version of [`NexmarkGenerator`] positions.
const POSITION_VERSION: u8 = 1;

/// One subtask of the generator: the events `n` with `n % p == subtask`.
pub(super) struct NexmarkGenerator {
    config: Arc<NexmarkConfig>,
    columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    subtask: u64,
    parallelism: u64,
    /// The next event number this subtask emits.
    next: u64,
}

impl NexmarkGenerator {
    /// Subtask `task`'s generator and its share of the events per second.
    pub(super) fn new(
        config: Arc<NexmarkConfig>,
        columns: Arc<Vec<Column>>,
        schema: SchemaRef,
        task: &TaskInfo,
    ) -> (Self, Option<f64>) {
        let parallelism = task.parallelism.max(1) as u64;
        let subtask = task.subtask as u64;
        let rate = config
            .rows_per_second
            .map(|r| r as f64 / parallelism as f64);
        let generator = Self {
            config,
            columns,
            schema,
            subtask,
            parallelism,
            next: subtask,
        };
        (generator, rate)
    }
}

impl RowGenerator for NexmarkGenerator {
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
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &options,
        )?)
    }

    /// Version 1: `[1, next: u64, parallelism: u64, seed: u64]`,
    /// big-endian. `next` is the next event number to emit; parallelism and
    /// seed detect a restore into a job where that number would belong to
    /// another subtask or mean other values.
    fn position(&self) -> Result<Vec<u8>> {
        Ok(PositionWriter::new(POSITION_VERSION)
            .u64(self.next)
            .u64(self.parallelism)
            .u64(self.config.seed)
            .finish())
    }

    fn restore(&mut self, position: &[u8]) -> Result<()> {
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
        Ok(())
    }
}
