//! Two-phase commit, written once for every transactional sink.
//!
//! A sink that publishes exactly once implements [`TwoPhaseSink`]: it
//! writes batches, *pre-commits* at a barrier (finishes what it wrote and
//! returns a description of it, such as file names or encoded records), and
//! *commits* the pre-commits of completed checkpoints. [`TwoPhaseOperator`]
//! runs such a sink as an engine operator and owns the protocol around it:
//!
//! * What a pre-commit returns is kept in the state table
//!   `<operator>/<table>` under its checkpoint id (big-endian `u64`), so it is
//!   part of that checkpoint's snapshot.
//! * When checkpoint `n` completes, the entries with ids up to `n` go to
//!   [`TwoPhaseSink::commit`]; entries of later barriers wait for their own
//!   checkpoint. Committed entries are forgotten, either at once or, for a
//!   sink whose subtasks share one committer, once
//!   [`TwoPhaseSink::settled`] covers them.
//! * The end of input is a final checkpoint: `on_end` pre-commits under
//!   [`Barrier::FINAL_CHECKPOINT`], so the final snapshot holds the last
//!   output, and the final barrier that follows stages nothing more.
//! * After a crash, `open` gets the entries of the checkpoint restored
//!   from; all of them belong to a completed checkpoint, so they go to
//!   [`TwoPhaseSink::restore`], which commits what the outside system does
//!   not have yet. Then [`TwoPhaseSink::abort`] discards what the crashed
//!   run wrote after that checkpoint (the sources replay those rows).
//!
//! Without checkpoints nothing is staged for later: a sink publishes what
//! it can at barriers and at the end of input itself, and whatever a
//! pre-commit returns anyway is committed at once.

use arrow::array::RecordBatch;
use runnel_engine::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use runnel_engine::types::Barrier;
use runnel_engine::{EngineError, Result};
use runnel_state::TableId;

/// What a sink pre-committed at one barrier, kept in the checkpoint until
/// it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staged {
    /// The checkpoint the entry belongs to: the barrier's id, or, for a sink
    /// that numbers its commits itself, that number (never above the
    /// barrier's id).
    pub(crate) id: u64,
    /// The sink's own description of the output (file names, records).
    pub(crate) bytes: Vec<u8>,
}

/// Whether a commit made its entries durable in the outside system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committed {
    /// Every entry handed in is published: forget them.
    Published,
    /// The entries went to a committer the subtasks share; they are
    /// forgotten once [`TwoPhaseSink::settled`] reaches them.
    HandedOver,
}

/// A sink that publishes in two phases; [`TwoPhaseOperator`] runs it.
///
/// Methods are called from the operator's thread, in the order the
/// [`Operator`] contract gives, and may block on the outside system.
pub(crate) trait TwoPhaseSink: Send {
    /// The suffix of the state table that holds staged entries
    /// (`<operator>/<suffix>`).
    fn staged_table(&self) -> &'static str;

    /// Connects, and restores the sink's own state (not its staged
    /// entries, which [`TwoPhaseSink::restore`] gets).
    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()>;

    /// Writes (or buffers) one non-empty batch.
    fn write(&mut self, batch: RecordBatch, ctx: &mut OperatorContext<'_>) -> Result<()>;

    /// At the barrier of checkpoint `checkpoint_id` (or the end of input,
    /// [`Barrier::FINAL_CHECKPOINT`]): finishes what was written since the
    /// last pre-commit and returns it, to be staged; `None` when there is
    /// nothing to stage. Without checkpoints, a sink publishes here.
    fn pre_commit(
        &mut self,
        checkpoint_id: u64,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<Option<Staged>>;

    /// Checkpoint `checkpoint_id` completed: publishes `entries`, the staged
    /// entries with ids up to it, oldest first (possibly none).
    fn commit(&mut self, checkpoint_id: u64, entries: Vec<Staged>) -> Result<Committed>;

    /// The id up to which handed-over entries are in the outside system;
    /// staged entries up to it are forgotten at every barrier.
    fn settled(&self) -> Option<u64> {
        None
    }

    /// After a restore: `entries` were staged in the restored checkpoint,
    /// which completed; publishes those the outside system does not have.
    fn restore(&mut self, entries: Vec<Staged>, ctx: &mut OperatorContext<'_>)
        -> Result<Committed>;

    /// After a restore at another parallelism: `entries` were staged by
    /// old subtask `origin`, whose other tables this subtask's state holds
    /// as `<table>@<origin>` (`StateLayout::Union`); publishes those the
    /// outside system does not have. Called after `open`, before
    /// `restore`. By default the same as `restore`, right for sinks whose
    /// publishing does not depend on the subtask that staged.
    fn restore_other(
        &mut self,
        _origin: usize,
        entries: Vec<Staged>,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<Committed> {
        self.restore(entries, ctx)
    }

    /// After a restore, once restored entries are published: discards what
    /// a crashed run wrote but never staged in a completed checkpoint.
    fn abort(&mut self, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        Ok(())
    }
}

/// A factory of [`TwoPhaseOperator`]s around the sinks `make` creates.
pub(crate) fn factory<S, F>(make: F) -> OperatorFactory
where
    S: TwoPhaseSink + 'static,
    F: Fn(&TaskInfo) -> Result<S> + Send + Sync + 'static,
{
    std::sync::Arc::new(move |task: &TaskInfo| {
        Ok(Box::new(TwoPhaseOperator::new(make(task)?)) as Box<dyn Operator>)
    })
}

/// Runs a [`TwoPhaseSink`] as an operator, keeping its staged entries in
/// operator state (see the module docs for the protocol).
pub(crate) struct TwoPhaseOperator<S> {
    sink: S,
    /// The staged-entry table; `None` without checkpoints.
    staged: Option<TableId>,
    /// `on_end` pre-committed the end of input already.
    ended: bool,
}

impl<S: TwoPhaseSink> TwoPhaseOperator<S> {
    /// An operator around `sink`.
    pub(crate) fn new(sink: S) -> Self {
        Self {
            sink,
            staged: None,
            ended: false,
        }
    }

    /// The staged entries with ids up to `up_to`, oldest first.
    fn entries(&self, up_to: u64, ctx: &OperatorContext<'_>) -> Result<Vec<Staged>> {
        let Some(table) = self.staged else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in ctx.state.scan_prefix(table, &[])? {
            let (key, bytes) = entry?;
            let id = <[u8; 8]>::try_from(key.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    EngineError::Plan(format!(
                        "corrupt checkpoint state of sink '{}' (subtask {}): a staged key has \
                         {} bytes, expected 8",
                        ctx.task.operator_name,
                        ctx.task.subtask,
                        key.len()
                    ))
                })?;
            if id <= up_to {
                out.push(Staged { id, bytes });
            }
        }
        Ok(out)
    }

    /// Forgets `entries`.
    fn forget(&self, entries: &[u64], ctx: &mut OperatorContext<'_>) -> Result<()> {
        if let Some(table) = self.staged {
            for id in entries {
                ctx.state.delete(table, &id.to_be_bytes())?;
            }
        }
        Ok(())
    }

    /// Forgets entries up to what the shared committer settled.
    fn forget_settled(&self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let Some(settled) = self.sink.settled() else {
            return Ok(());
        };
        let ids: Vec<u64> = self.entries(settled, ctx)?.iter().map(|e| e.id).collect();
        self.forget(&ids, ctx)
    }

    /// Pre-commits `checkpoint_id` and stages the result; without
    /// checkpoints, commits it at once.
    fn pre_commit(&mut self, checkpoint_id: u64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.forget_settled(ctx)?;
        let Some(entry) = self.sink.pre_commit(checkpoint_id, ctx)? else {
            return Ok(());
        };
        match self.staged {
            Some(table) => ctx
                .state
                .put(table, &entry.id.to_be_bytes(), &entry.bytes)?,
            None => {
                self.sink.commit(checkpoint_id, vec![entry])?;
            }
        }
        Ok(())
    }

    /// Applies the outcome of a commit of `ids`.
    fn settle(&self, outcome: Committed, ids: &[u64], ctx: &mut OperatorContext<'_>) -> Result<()> {
        match outcome {
            Committed::Published => self.forget(ids, ctx),
            Committed::HandedOver => Ok(()),
        }
    }
}

impl<S: TwoPhaseSink> Operator for TwoPhaseOperator<S> {
    fn state_layout(&self) -> runnel_engine::operator::StateLayout {
        runnel_engine::operator::StateLayout::Union
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.sink.open(ctx)?;
        if !ctx.task.checkpointing {
            return Ok(());
        }
        let name = format!("{}/{}", ctx.task.operator_name, self.sink.staged_table());
        // Restored at another parallelism: the staged entries of other old
        // subtasks are in `<name>@<i>` (StateLayout::Union). They belong to
        // the completed checkpoint too: publish them first.
        let others: Vec<(String, usize)> = ctx
            .state
            .table_names()
            .into_iter()
            .filter_map(|t| {
                let origin = t.strip_prefix(&format!("{name}@"))?.parse().ok()?;
                Some((t, origin))
            })
            .collect();
        for (other, origin) in others {
            let table = ctx.state.register_table(&other)?;
            self.staged = Some(table);
            let entries = self.entries(u64::MAX, ctx)?;
            if let Committed::Published = self.sink.restore_other(origin, entries, ctx)? {
                ctx.state.delete_prefix(table, &[])?;
            }
        }
        self.staged = Some(ctx.state.register_table(&name)?);
        // Everything staged in a restored state belongs to a checkpoint
        // that completed.
        let entries = self.entries(u64::MAX, ctx)?;
        let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
        let outcome = self.sink.restore(entries, ctx)?;
        self.settle(outcome, &ids, ctx)?;
        self.sink.abort(ctx)
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        self.sink.write(batch, ctx)
    }

    fn on_barrier(&mut self, barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if barrier.checkpoint_id == Barrier::FINAL_CHECKPOINT && self.ended {
            // `on_end` staged the last output; nothing was written since.
            return self.forget_settled(ctx);
        }
        self.pre_commit(barrier.checkpoint_id, ctx)
    }

    fn on_checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        if self.staged.is_none() {
            return Ok(());
        }
        let entries = self.entries(checkpoint_id, ctx)?;
        let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
        let outcome = self.sink.commit(checkpoint_id, entries)?;
        self.settle(outcome, &ids, ctx)
    }

    fn on_end(&mut self, ctx: &mut OperatorContext<'_>, _out: &mut dyn Collector) -> Result<()> {
        self.ended = true;
        self.pre_commit(Barrier::FINAL_CHECKPOINT, ctx)
    }
}
