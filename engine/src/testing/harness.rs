//! Driving one operator by hand, for unit tests: feed batches and
//! watermarks, take barriers, and collect what it emits.

use std::sync::Arc;

use arrow::array::RecordBatch;
use runnel_state::{MemorySnapshot, MemoryStateBackend, DEFAULT_MAX_PARALLELISM};

use crate::error::Result;
use crate::operator::{Operator, OperatorContext, OperatorMetrics, TaskInfo, VecCollector};
use crate::types::{Barrier, EventTime};

/// One operator instance with its own state backend and counters.
pub struct OperatorHarness {
    op: Box<dyn Operator>,
    state: MemoryStateBackend,
    task: TaskInfo,
    metrics: Arc<OperatorMetrics>,
    out: VecCollector,
}

impl OperatorHarness {
    /// Opens `op` as subtask 0 of 1 with empty state.
    pub fn new(op: Box<dyn Operator>) -> Result<Self> {
        Self::restored(op, &MemorySnapshot::default())
    }

    /// Opens `op` with the state of `snapshot` (as after a recovery).
    pub fn restored(op: Box<dyn Operator>, snapshot: &MemorySnapshot) -> Result<Self> {
        let mut h = Self {
            op,
            state: MemoryStateBackend::restore(snapshot),
            task: TaskInfo {
                operator_name: "op".into(),
                subtask: 0,
                parallelism: 1,
                max_parallelism: DEFAULT_MAX_PARALLELISM,
                checkpointing: false,
                memory_budget: None,
            },
            metrics: Arc::new(OperatorMetrics::default()),
            out: VecCollector::default(),
        };
        let mut ctx = OperatorContext {
            task: &h.task,
            state: &mut h.state,
            metrics: &h.metrics,
        };
        h.op.open(&mut ctx)?;
        Ok(h)
    }

    /// Feeds one batch on input 0.
    pub fn batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.batch_on(0, batch)
    }

    /// Feeds one batch on input `input` (operators with several inputs).
    pub fn batch_on(&mut self, input: usize, batch: RecordBatch) -> Result<()> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        self.op.process_batch(input, batch, &mut ctx, &mut self.out)
    }

    /// Advances the watermark.
    pub fn watermark(&mut self, wm: EventTime) -> Result<()> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        self.op.on_watermark(wm, &mut ctx, &mut self.out)
    }

    /// Takes a checkpoint and returns the state snapshot.
    pub fn checkpoint(&mut self, id: u64) -> Result<MemorySnapshot> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        let barrier = Barrier {
            checkpoint_id: id,
            timestamp: 0,
            then_stop: false,
        };
        self.op.on_barrier(&barrier, &mut ctx)?;
        Ok(self.state.snapshot())
    }

    /// Signals end of input.
    pub fn end(&mut self) -> Result<()> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        self.op.on_end(&mut ctx, &mut self.out)
    }

    /// Takes the batches emitted so far.
    pub fn take_output(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.out.batches)
    }

    /// Sets the task's memory budget (see [`TaskInfo::memory_budget`]).
    pub fn set_memory_budget(&mut self, budget: Option<usize>) {
        self.task.memory_budget = budget;
    }

    /// Entries in the state backend now, without taking a checkpoint.
    pub fn state_entries(&self) -> usize {
        self.state.snapshot().len()
    }

    /// The operator's counters.
    pub fn metrics(&self) -> &OperatorMetrics {
        &self.metrics
    }
}
