//! The source contract: what a source subtask does, how it is created, and
//! how its watermarks are generated. The scripted source that tests use is
//! in [`crate::testing`].

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;

use crate::error::Result;
use crate::operator::{OperatorMetrics, TaskInfo};
use crate::types::EventTime;

/// Identifies a split (a file, a Kafka partition, a generator shard) within
/// one source; unique across the source's subtasks.
pub type SplitId = u32;

/// What a source produced on one poll.
#[derive(Debug)]
pub enum SourcePoll {
    /// Rows read from `split`.
    Batch {
        /// The split the rows came from (watermarks are tracked per split).
        split: SplitId,
        /// The rows.
        batch: RecordBatch,
    },
    /// An explicit watermark, for sources that know their event-time
    /// progress better than a bounded-delay strategy (and for tests that
    /// script time). Sources without a watermark strategy use this.
    Watermark(EventTime),
    /// Nothing available now; the runtime waits briefly and polls again.
    Pending,
    /// `split` is exhausted; it no longer holds back the watermark.
    SplitFinished(SplitId),
    /// Every split of this subtask is exhausted.
    Finished,
}

/// A source subtask: reads its share of the splits.
///
/// The same threading rules as for [`crate::operator::Operator`] apply:
/// one instance per subtask, all calls from that subtask's thread. `poll`
/// must not block for long (a few milliseconds at most) so that barriers
/// and stop requests are handled promptly; return [`SourcePoll::Pending`]
/// instead.
pub trait Source: Send {
    /// Opens the source; returns the splits this subtask reads (they hold
    /// back the watermark until they produce data or become idle). The
    /// source keeps `metrics` to count what it skips
    /// ([`OperatorMetrics::add_malformed`]).
    fn open(&mut self, task: &TaskInfo, metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>>;
    /// Produces the next batch, watermark or end.
    fn poll(&mut self) -> Result<SourcePoll>;

    /// Bytes that let a new instance of this subtask resume exactly after
    /// the last row this one returned from `poll`. Called between polls,
    /// when a checkpoint barrier is taken at this source. A source that
    /// cannot resume keeps the default, which makes checkpoints fail with a
    /// clear error.
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        Err(crate::error::EngineError::Plan(
            "this source cannot resume from a position, so the job cannot take checkpoints".into(),
        ))
    }

    /// Resumes from `position`, as returned by `snapshot_position` of the
    /// same subtask in an earlier run. Called after `open`, before the first
    /// `poll`. Rows up to that position must not be produced again.
    fn restore_position(&mut self, _position: &[u8]) -> Result<()> {
        Err(crate::error::EngineError::Plan(
            "this source cannot resume from a position".into(),
        ))
    }

    /// Resumes from a checkpoint taken at another parallelism: `positions`
    /// holds what every subtask of that run returned from
    /// `snapshot_position`, in subtask order (empty for a subtask that had
    /// none). The source takes over the splits it owns at its parallelism
    /// now, each from where its old owner left it. Called instead of
    /// `restore_position`. The default refuses with a clear error.
    fn restore_positions(&mut self, positions: &[Vec<u8>]) -> Result<()> {
        Err(crate::error::EngineError::Plan(format!(
            "this source cannot be restored at another parallelism (its checkpoint was taken \
             at parallelism {}); resume with that parallelism",
            positions.len()
        )))
    }
}

/// Creates the source instance of one subtask.
pub type SourceFactory = Arc<dyn Fn(&TaskInfo) -> Result<Box<dyn Source>> + Send + Sync>;

/// How a source's event-time watermarks are generated.
#[derive(Debug, Clone)]
pub struct WatermarkStrategy {
    /// Index of the event-time column (Timestamp or Int64, milliseconds).
    pub time_column: usize,
    /// `WATERMARK FOR ts AS ts - INTERVAL 'd'`: rows may arrive up to `d`
    /// behind the newest row of their split.
    pub max_out_of_orderness: Duration,
    /// A split that produced nothing for this long stops holding back the
    /// watermark (`'scan.idle-timeout'`); `None` never.
    pub idle_timeout: Option<Duration>,
    /// Processing time instead: the watermark is this clock's time (less
    /// a millisecond), sent every watermark interval whether or not rows
    /// arrive, and `time_column` is not read. Used when a window is
    /// driven by a `PROCTIME()` column stamped from the same clock.
    pub processing_time: Option<crate::time::Clock>,
}

impl WatermarkStrategy {
    /// Bounded out-of-orderness on `time_column`, no idle timeout.
    pub fn bounded(time_column: usize, max_out_of_orderness: Duration) -> Self {
        Self {
            time_column,
            max_out_of_orderness,
            idle_timeout: None,
            processing_time: None,
        }
    }

    /// Watermarks that follow `clock` (processing time).
    pub fn processing_time(clock: crate::time::Clock) -> Self {
        Self {
            time_column: 0,
            max_out_of_orderness: Duration::ZERO,
            idle_timeout: None,
            processing_time: Some(clock),
        }
    }

    /// Sets the idle timeout.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }
}
