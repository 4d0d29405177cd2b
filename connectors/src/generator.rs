//! The loop shared by the generator sources (`datagen`, `nexmark`).
//!
//! A generator makes its rows from a cursor alone, so one subtask's output
//! depends on nothing but its cursor: that cursor is the checkpoint
//! position. What is the same for every generator lives here, in
//! [`GeneratorSource`]: the subtask's one split, pacing to
//! `'rows-per-second'`, ending the split and then the source once a bounded
//! generator runs dry, and restarting the pace after a restore. The
//! generators themselves ([`RowGenerator`]) only say how rows are made, how
//! the cursor is encoded and when it has run out.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use runnel_engine::connector::{SourceTable, TableDescriptor};
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::source::{Source, SourcePoll, SplitId};
use runnel_engine::{EngineError, Result};

use crate::pacing::Pacer;

/// Rows per emitted batch at most.
pub(crate) const BATCH_ROWS: usize = 4096;

/// One subtask's generator: rows made from a cursor that a checkpoint keeps.
pub(crate) trait RowGenerator: Send {
    /// True when this subtask has no row left (never, for an unbounded one).
    fn exhausted(&self) -> bool;

    /// Makes up to `max_rows` rows and moves the cursor past them. May
    /// return fewer, or none when the rows left are all skipped.
    fn generate(&mut self, max_rows: usize) -> Result<RecordBatch>;

    /// The cursor, encoded as the source's checkpoint position.
    fn position(&self) -> Result<Vec<u8>>;

    /// Moves the cursor to `position`, as [`RowGenerator::position`] wrote it
    /// in an earlier run of the same subtask.
    fn restore(&mut self, position: &[u8]) -> Result<()>;
}

/// A column a generator can produce; a table picks its columns by name.
pub(crate) trait GeneratedColumn: Copy + Sized + 'static {
    /// Every column the generator can produce, in the order it lists them.
    fn all() -> &'static [Self];
    /// The column's name.
    fn name(self) -> &'static str;
    /// The column's Arrow type.
    fn data_type(self) -> DataType;
    /// The column's SQL type, as error messages name it.
    fn sql_type(self) -> &'static str;
}

/// `name TYPE` of every column of `C`, for error messages.
fn available<C: GeneratedColumn>() -> String {
    C::all()
        .iter()
        .map(|c| format!("{} {}", c.name(), c.sql_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps the columns of `table` (of connector `connector`), by name and in
/// the table's order, to generated columns. A column the generator does
/// not produce, one of another type, or a NOT NULL column for which
/// `nullable` is true is a plan error; `why_null` ends that last message.
pub(crate) fn select_columns<C: GeneratedColumn>(
    connector: &str,
    table: &TableDescriptor,
    nullable: impl Fn(C) -> bool,
    why_null: &str,
) -> Result<Vec<C>> {
    table
        .schema
        .fields()
        .iter()
        .map(|field| {
            let column = C::all()
                .iter()
                .copied()
                .find(|c| c.name().eq_ignore_ascii_case(field.name()))
                .ok_or_else(|| {
                    EngineError::Plan(format!(
                        "{connector} table '{}' has a column '{}' that the generator does not \
                         produce; available columns: {}",
                        table.name,
                        field.name(),
                        available::<C>()
                    ))
                })?;
            if field.data_type() != &column.data_type() {
                return Err(EngineError::Plan(format!(
                    "column '{}' of {connector} table '{}' must be {} ({}), not {}; available \
                     columns: {}",
                    field.name(),
                    table.name,
                    column.sql_type(),
                    column.data_type(),
                    field.data_type(),
                    available::<C>()
                )));
            }
            if !field.is_nullable() && nullable(column) {
                return Err(EngineError::Plan(format!(
                    "column '{}' of {connector} table '{}' is NOT NULL, but {why_null}",
                    field.name(),
                    table.name
                )));
            }
            Ok(column)
        })
        .collect()
}

/// The source side of a generator connector: each subtask runs the
/// generator `make` builds for it (with its share of the rate) as a
/// [`GeneratorSource`]. `bounded` says whether the generator runs dry.
pub(crate) fn generator_table<G, F>(bounded: bool, make: F) -> SourceTable
where
    G: RowGenerator + 'static,
    F: Fn(&TaskInfo) -> (G, Option<f64>) + Send + Sync + 'static,
{
    let factory = Arc::new(move |task: &TaskInfo| {
        let (generator, rate) = make(task);
        Ok(Box::new(GeneratorSource::new(generator, task, rate)) as Box<dyn Source>)
    });
    SourceTable {
        factory,
        bounded,
        parallelism: None,
        in_memory: false,
    }
}

/// Where a subtask's generator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    SplitDone,
    Finished,
}

/// A [`Source`] running one [`RowGenerator`] as a single split per subtask.
pub(crate) struct GeneratorSource<G> {
    generator: G,
    split: SplitId,
    /// Paces this subtask to its share of the rate.
    pacer: Pacer,
    phase: Phase,
}

impl<G: RowGenerator> GeneratorSource<G> {
    /// Subtask `task` of a generator; `rate` is this subtask's share of
    /// `'rows-per-second'` (`None`: unpaced).
    pub(crate) fn new(generator: G, task: &TaskInfo, rate: Option<f64>) -> Self {
        Self {
            generator,
            split: SplitId::try_from(task.subtask).unwrap_or(SplitId::MAX),
            pacer: Pacer::new(rate, BATCH_ROWS),
            phase: Phase::Running,
        }
    }
}

impl<G: RowGenerator> Source for GeneratorSource<G> {
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
        if self.generator.exhausted() {
            self.phase = Phase::SplitDone;
            return Ok(SourcePoll::SplitFinished(self.split));
        }
        let budget = self.pacer.budget();
        if budget == 0 {
            return Ok(SourcePoll::Pending);
        }
        let batch = self.generator.generate(budget)?;
        self.pacer.sent(batch.num_rows() as u64);
        if batch.num_rows() == 0 {
            // Only skipped rows were left: the split ended inside this batch.
            self.phase = Phase::SplitDone;
            return Ok(SourcePoll::SplitFinished(self.split));
        }
        Ok(SourcePoll::Batch {
            split: self.split,
            batch,
        })
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        self.generator.position()
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        self.generator.restore(position)?;
        // Whether the split already ended is derived again from the cursor,
        // so that the restored run also reports the end of its split.
        self.phase = Phase::Running;
        self.pacer.restart();
        Ok(())
    }
}
