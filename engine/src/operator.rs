//! The operator contract.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use runnel_state::StateBackend;

use crate::error::Result;
use crate::types::{Barrier, EventTime};

/// Fixed facts about the subtask an operator instance runs in.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// Name of the job graph node.
    pub operator_name: String,
    /// Index of this subtask, below `parallelism`.
    pub subtask: usize,
    /// Number of subtasks of the node.
    pub parallelism: usize,
    /// Number of key groups of the job (see [`runnel_state::key`]).
    pub max_parallelism: u16,
    /// True when the job takes checkpoints: sinks then publish output only
    /// in `on_checkpoint_complete` (two-phase commit), also for what
    /// `on_end` flushes, since the end of input is a final checkpoint.
    pub checkpointing: bool,
    /// Bytes of state this operator subtask may keep in memory; beyond it a
    /// stateful operator writes state to its backend and drops it from
    /// memory (reading it back when needed). `None`: no limit (the state
    /// backend is itself in memory).
    pub memory_budget: Option<usize>,
}

/// Counters of one operator subtask, readable from other threads while the
/// job runs (the progress line, later the `/metrics` endpoint).
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    /// Rows received.
    pub rows_in: AtomicU64,
    /// Rows emitted.
    pub rows_out: AtomicU64,
    /// Rows dropped because every window they belong to had already fired.
    pub late_rows_dropped: AtomicU64,
    /// Input records a source could not parse and skipped (or sent to a
    /// dead-letter output) instead of failing.
    pub malformed_records: AtomicU64,
    /// Times the operator wrote its in-memory state to the backend and
    /// dropped it because it outgrew the memory budget.
    pub state_spills: AtomicU64,
    /// The operator's current event-time watermark (`i64::MIN` before the first).
    pub watermark: AtomicI64Cell,
    /// Completed checkpoints the operator was told of
    /// (`on_checkpoint_complete` calls: for a sink, its commits).
    pub commits: AtomicU64,
    /// Nanoseconds those calls took in all.
    pub commit_nanos: AtomicU64,
    /// Nanoseconds the last of them took.
    pub last_commit_nanos: AtomicU64,
    /// How many records a source subtask is behind the end of each
    /// partition it reads, as last measured: (topic, partition, records).
    /// Kafka sources fill it.
    pub partition_lag: std::sync::Mutex<Vec<(String, i32, i64)>>,
}

/// An `i64` readable across threads (std has `AtomicI64`; this wrapper starts
/// at `i64::MIN`, the "no watermark yet" value).
#[derive(Debug)]
pub struct AtomicI64Cell(std::sync::atomic::AtomicI64);

impl Default for AtomicI64Cell {
    fn default() -> Self {
        Self(std::sync::atomic::AtomicI64::new(i64::MIN))
    }
}

impl AtomicI64Cell {
    /// Reads the value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Replaces the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed)
    }
}

impl OperatorMetrics {
    /// Adds `n` late rows.
    pub fn add_late(&self, n: u64) {
        self.late_rows_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `n` malformed records.
    pub fn add_malformed(&self, n: u64) {
        self.malformed_records.fetch_add(n, Ordering::Relaxed);
    }
}

/// What an operator may use besides its input: its task facts, its state
/// backend and its counters.
pub struct OperatorContext<'a> {
    /// The subtask this instance runs in.
    pub task: &'a TaskInfo,
    /// State of the whole subtask; each operator registers its own tables,
    /// named after the operator.
    pub state: &'a mut dyn StateBackend,
    /// This operator's counters.
    pub metrics: &'a Arc<OperatorMetrics>,
}

/// Where an operator sends its output batches.
pub trait Collector {
    /// Sends one batch downstream. May block while downstream is full
    /// (backpressure).
    fn collect(&mut self, batch: RecordBatch) -> Result<()>;
}

/// A collector that keeps everything, for unit tests of one operator.
#[derive(Debug, Default)]
pub struct VecCollector {
    /// Batches collected so far.
    pub batches: Vec<RecordBatch>,
}

impl Collector for VecCollector {
    fn collect(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() > 0 {
            self.batches.push(batch);
        }
        Ok(())
    }
}

/// A streaming operator: turns input batches into output batches, keeping
/// state between them.
///
/// # Contract
///
/// * **Threading.** Each subtask owns one instance, created on the job's
///   thread by the node's factory and then moved to the subtask's own OS
///   thread; every method below is called from that thread only, one call at
///   a time. Operators need no locks of their own.
/// * **Order of calls.** `open` once, before anything else. Then, in stream
///   order, any number of `process_batch`, `on_watermark`, `on_barrier` and
///   `on_checkpoint_complete` calls. Then `on_end` once, when every input has
///   ended (it is not called when the job is cancelled or fails). In a job
///   that takes checkpoints, the end of input is a final checkpoint:
///   `on_end` is followed by one more `on_barrier` (with checkpoint id
///   [`crate::types::Barrier::FINAL_CHECKPOINT`]) and, once that checkpoint is
///   written, by `on_checkpoint_complete`.
/// * **What may block.** Methods may block only on [`Collector::collect`]
///   (backpressure from downstream) and on their state backend. They must not
///   sleep, wait for external events or run unbounded CPU loops: a slow
///   operator stalls the whole chain it runs in. Operators that talk to
///   external systems (sinks) do so within these calls and report failures
///   as errors.
/// * **No work before data.** Nothing is computed before the first batch
///   arrives; `open` only restores state and allocates.
/// * **Watermarks.** `on_watermark` receives the merged event-time watermark
///   of all inputs, only when it advances. The runtime forwards the watermark
///   downstream after the call returns, so rows emitted inside the call are
///   ahead of it.
/// * **Barriers.** `on_barrier` is called once the barrier arrived on every
///   input (aligned); the operator writes whatever it keeps in memory to
///   `ctx.state` so the state backend's snapshot is complete, and sinks
///   pre-commit. The runtime forwards the barrier afterwards.
/// * **Errors.** Returning an error fails the job: every subtask is stopped
///   and the error, wrapped with the operator's name and subtask, is what
///   the job returns. Bad *user data* that should not fail the job is counted
///   (or sent to a dead-letter output) instead of returned as an error.
///   Panics are caught and reported as errors, but are bugs.
pub trait Operator: Send {
    /// Restores state and prepares to run.
    fn open(&mut self, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Handles one batch from input number `input` (0 for single-input
    /// operators; inputs are numbered in the order of their edges).
    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()>;

    /// The merged event-time watermark advanced to `watermark`.
    fn on_watermark(
        &mut self,
        _watermark: EventTime,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        Ok(())
    }

    /// How far (milliseconds) the watermark after this operator lags the
    /// one it receives: rows it emits may be that much older than its input
    /// watermark (an interval join pairs a new row with kept older ones),
    /// so operators after it see the watermark held back by this much and
    /// do not take those rows for late ones. 0 for most operators.
    fn watermark_delay(&self) -> EventTime {
        0
    }

    /// All inputs delivered `barrier`: snapshot state, pre-commit.
    fn on_barrier(&mut self, _barrier: &Barrier, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        Ok(())
    }

    /// The checkpoint `checkpoint_id` is complete everywhere: commit what was
    /// pre-committed for it (two-phase commit sinks).
    fn on_checkpoint_complete(
        &mut self,
        _checkpoint_id: u64,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        Ok(())
    }

    /// Every input ended: emit what is still held (a bounded input's final
    /// watermark has already fired the windows) and flush.
    fn on_end(&mut self, _ctx: &mut OperatorContext<'_>, _out: &mut dyn Collector) -> Result<()> {
        Ok(())
    }

    /// How this operator's state is divided among subtasks when a job
    /// restores a checkpoint at another parallelism. The default refuses
    /// to rescale an operator that has state (one without state rescales
    /// whatever it says).
    fn state_layout(&self) -> StateLayout {
        StateLayout::Fixed
    }
}

/// How an operator's state moves when the parallelism changes
/// ([`Operator::state_layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateLayout {
    /// Every key starts with its key group (see `runnel_state::key`), and
    /// keys from `ff ff` on are per-subtask bookkeeping: a new subtask
    /// gets the entries of its key groups from every old subtask, and each
    /// old subtask's bookkeeping entry under its key followed by the old
    /// subtask's index (four bytes, big-endian) for the operator to merge.
    KeyGroups,
    /// The state belongs to the subtask as a whole (a sink's staged
    /// commits). Old subtask `i` goes to new subtask `i % parallelism`:
    /// the first one's tables under their names, each further one's under
    /// `<table>@<i>`, for the operator to take over in `open`.
    Union,
    /// Cannot be split or combined: restoring at another parallelism
    /// fails with a clear error when the operator has state.
    Fixed,
}

/// Creates the operator instance of one subtask.
pub type OperatorFactory = Arc<dyn Fn(&TaskInfo) -> Result<Box<dyn Operator>> + Send + Sync>;
