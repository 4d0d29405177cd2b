//! In-memory sinks that keep what they receive, for tests and demos: a
//! plain one, and a two-phase-commit one for exactly-once recovery tests.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;

use crate::error::{EngineError, Result};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};

/// Batches received by a [`MemorySink`], shared by all its subtasks.
#[derive(Debug, Clone, Default)]
pub struct MemorySinkHandle(Arc<Mutex<Vec<RecordBatch>>>);

impl MemorySinkHandle {
    /// A new, empty handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything received so far (in arrival order per subtask).
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Total rows received.
    pub fn num_rows(&self) -> usize {
        self.batches().iter().map(RecordBatch::num_rows).sum()
    }

    /// A factory for sink subtasks that all append to this handle.
    pub fn factory(&self) -> OperatorFactory {
        let handle = self.clone();
        Arc::new(move |_task: &TaskInfo| {
            Ok(Box::new(MemorySink {
                handle: handle.clone(),
            }) as Box<dyn Operator>)
        })
    }
}

/// A sink that keeps every batch in memory.
#[derive(Debug)]
pub struct MemorySink {
    handle: MemorySinkHandle,
}

impl Operator for MemorySink {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.handle
            .0
            .lock()
            .map_err(|_| EngineError::Internal("memory sink lock poisoned".into()))?
            .push(batch);
        Ok(())
    }
}

/// Batches published by [`TransactionalMemorySink`]s, tagged with the
/// subtask and the checkpoint whose barrier staged them
/// ([`crate::types::Barrier::FINAL_CHECKPOINT`] for the end of input). A staged
/// entry published twice (once before a crash, once again on restore)
/// appears twice; the pair identifies it.
#[derive(Debug, Clone, Default)]
pub struct CommittedHandle(Arc<Mutex<Vec<(usize, u64, RecordBatch)>>>);

impl CommittedHandle {
    /// A new, empty handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every published batch with its (subtask, staging checkpoint id).
    pub fn entries(&self) -> Vec<(usize, u64, RecordBatch)> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// A factory of sinks publishing into this handle.
    pub fn factory(&self) -> OperatorFactory {
        let handle = self.clone();
        Arc::new(move |_task: &TaskInfo| {
            Ok(Box::new(TransactionalMemorySink {
                handle: handle.clone(),
                open: Vec::new(),
                table: None,
            }) as Box<dyn Operator>)
        })
    }
}

/// A two-phase-commit sink into memory, for tests of exactly-once
/// recovery: rows are staged in the operator state at each barrier and
/// published when the checkpoint completes, or, after a restore, by
/// `open` for the checkpoint restored from.
#[derive(Debug)]
pub struct TransactionalMemorySink {
    handle: CommittedHandle,
    open: Vec<RecordBatch>,
    table: Option<runnel_state::TableId>,
}

impl TransactionalMemorySink {
    fn table(&self) -> Result<runnel_state::TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("sink not opened".into()))
    }

    /// Stages the open batches under `key`.
    fn stage(&mut self, key: u64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if self.open.is_empty() {
            return Ok(());
        }
        let schema = self.open[0].schema();
        let mut bytes = Vec::new();
        {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &schema)?;
            for b in self.open.drain(..) {
                w.write(&b)?;
            }
            w.finish()?;
        }
        let table = self.table()?;
        ctx.state.put(table, &key.to_be_bytes(), &bytes)?;
        Ok(())
    }

    /// Publishes the entries staged at barriers up to `up_to`. Entries
    /// staged later (after a newer barrier, or by `on_end`) wait for their
    /// own checkpoint.
    fn publish(&mut self, up_to: u64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        self.publish_table(table, ctx.task.subtask, up_to, ctx)
    }

    /// Publishes what `table` staged up to `up_to`, tagged with `origin`,
    /// the subtask that staged it.
    fn publish_table(
        &mut self,
        table: runnel_state::TableId,
        origin: usize,
        up_to: u64,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let staged: Vec<(Vec<u8>, Vec<u8>)> = ctx
            .state
            .scan_prefix(table, &[])?
            .collect::<runnel_state::Result<_>>()?;
        for (key, bytes) in staged {
            let staged_at = key
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            if staged_at > up_to {
                continue;
            }
            let reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
            let mut g = self
                .handle
                .0
                .lock()
                .map_err(|_| EngineError::Internal("sink lock poisoned".into()))?;
            for b in reader {
                g.push((origin, staged_at, b?));
            }
            ctx.state.delete(table, &key)?;
        }
        Ok(())
    }
}

impl Operator for TransactionalMemorySink {
    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let name = format!("{}/staged", ctx.task.operator_name);
        self.table = Some(ctx.state.register_table(&name)?);
        // Entries restored from a complete checkpoint belong to it. After
        // a rescale, other old subtasks' entries are in `<name>@<i>`.
        let others: Vec<(String, usize)> = ctx
            .state
            .table_names()
            .into_iter()
            .filter_map(|t| {
                let i = t.strip_prefix(&format!("{name}@"))?.parse().ok()?;
                Some((t, i))
            })
            .collect();
        for (t, origin) in others {
            let table = ctx.state.register_table(&t)?;
            self.publish_table(table, origin, u64::MAX, ctx)?;
        }
        self.publish(u64::MAX, ctx)
    }

    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::Union
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() > 0 {
            self.open.push(batch);
        }
        Ok(())
    }

    fn on_barrier(
        &mut self,
        barrier: &crate::types::Barrier,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        self.stage(barrier.checkpoint_id, ctx)
    }

    fn on_checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        self.publish(checkpoint_id, ctx)
    }

    fn on_end(&mut self, ctx: &mut OperatorContext<'_>, _out: &mut dyn Collector) -> Result<()> {
        self.stage(crate::types::Barrier::FINAL_CHECKPOINT, ctx)?;
        if !ctx.task.checkpointing {
            self.publish(u64::MAX, ctx)?;
        }
        Ok(())
    }
}
