//! One subtask's chain of operators: how a batch, a watermark, a barrier or
//! the end of input passes through the chained operators to the router, and
//! the loop of an operator subtask that reads its input channels, merges
//! their watermarks and aligns checkpoint barriers ([`run_operator`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use crossbeam::channel::{Receiver, Sender};
use runnel_state::{CheckpointStore, PendingSnapshot, SnapshotData, StateBackend};

use super::coordinator::{wait_complete, Ack, AckKind, Control};
use super::exchange::{Inbound, Router};
use super::metrics::{batch_bytes, Wait};
use super::shared::{Shared, POLL_INTERVAL};
use crate::error::{EngineError, Result};
use crate::operator::{Collector, Operator, OperatorContext, OperatorMetrics, TaskInfo};
use crate::types::{Barrier, EventTime, Message, Watermark};
use crate::watermark::WatermarkMerger;

/// Wraps an operator's error with its name, once.
pub(super) fn wrap(err: EngineError, task: &TaskInfo) -> EngineError {
    match err {
        EngineError::Operator { .. } | EngineError::Cancelled => err,
        other => EngineError::Operator {
            operator: task.operator_name.clone(),
            subtask: task.subtask,
            source: Box::new(other),
        },
    }
}

/// One operator of a chain, with what it owns.
pub(super) struct Slot {
    pub(super) op: Box<dyn Operator>,
    pub(super) state: Box<dyn StateBackend>,
    /// Name of this slot's state in a checkpoint.
    pub(super) name: String,
    pub(super) metrics: Arc<OperatorMetrics>,
    pub(super) task: TaskInfo,
}

/// Passes an operator's output to the next operator of the chain, or to the
/// router after the last one.
struct ChainCollector<'a> {
    rest: &'a mut [Slot],
    router: &'a mut Router,
    emitter: &'a OperatorMetrics,
}

impl Collector for ChainCollector<'_> {
    fn collect(&mut self, batch: RecordBatch) -> Result<()> {
        let n = batch.num_rows() as u64;
        if n == 0 {
            return Ok(());
        }
        self.emitter.rows_out.fetch_add(n, Ordering::Relaxed);
        feed(self.rest, self.router, 0, batch)
    }
}

/// Hands `batch` to the first of `slots` as its input `input`, with the
/// rest of the chain as its collector, or to the router when no operator is
/// left.
fn feed(slots: &mut [Slot], router: &mut Router, input: usize, batch: RecordBatch) -> Result<()> {
    let Some((next, rest)) = slots.split_first_mut() else {
        return router.send_batch(batch);
    };
    next.metrics
        .rows_in
        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
    let Slot {
        op,
        state,
        metrics,
        task,
        ..
    } = next;
    let metrics: &Arc<OperatorMetrics> = metrics;
    let mut ctx = OperatorContext {
        task,
        state: state.as_mut(),
        metrics,
    };
    let mut out = ChainCollector {
        rest,
        router,
        emitter: metrics,
    };
    op.process_batch(input, batch, &mut ctx, &mut out)
        .map_err(|e| wrap(e, task))
}

/// The operators of one chain subtask and its outputs.
pub(super) struct ChainRuntime {
    pub(super) slots: Vec<Slot>,
    /// Where checkpoints go; `None` without checkpointing.
    pub(super) store: Option<CheckpointStore>,
    pub(super) router: Router,
    pub(super) ack: Sender<Ack>,
    pub(super) is_source: bool,
    pub(super) checkpointing: bool,
    /// How often a source sends a latency marker (sources only).
    pub(super) latency_interval: Option<Duration>,
    /// How often a source sends a watermark it generated (sources only).
    pub(super) watermark_interval: Duration,
}

impl ChainRuntime {
    /// Calls `f` on every operator of the chain, in order, with its context;
    /// an error is wrapped with the operator's name.
    fn each_operator(
        &mut self,
        mut f: impl FnMut(&mut dyn Operator, &mut OperatorContext<'_>) -> Result<()>,
    ) -> Result<()> {
        for Slot {
            op,
            state,
            metrics,
            task,
            ..
        } in &mut self.slots
        {
            let mut ctx = OperatorContext {
                task,
                state: state.as_mut(),
                metrics,
            };
            f(op.as_mut(), &mut ctx).map_err(|e| wrap(e, task))?;
        }
        Ok(())
    }

    pub(super) fn open(&mut self) -> Result<()> {
        self.each_operator(|op, ctx| op.open(ctx))
    }

    /// Feeds a batch to the first operator (input `input`), or to the
    /// router when the chain is only a source.
    pub(super) fn process(
        &mut self,
        input: usize,
        batch: RecordBatch,
        emitter: Option<&OperatorMetrics>,
    ) -> Result<()> {
        if let Some(m) = emitter {
            m.rows_out
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        }
        feed(&mut self.slots, &mut self.router, input, batch)
    }

    pub(super) fn watermark(&mut self, wm: Watermark) -> Result<()> {
        let mut wm = wm;
        if let Watermark::EventTime(mut t) = wm {
            for k in 0..self.slots.len() {
                let (head, rest) = self.slots.split_at_mut(k + 1);
                let Slot {
                    op,
                    state,
                    metrics,
                    task,
                    ..
                } = &mut head[k];
                let metrics: &Arc<OperatorMetrics> = metrics;
                metrics.watermark.set(t);
                let mut ctx = OperatorContext {
                    task,
                    state: state.as_mut(),
                    metrics,
                };
                let mut out = ChainCollector {
                    rest,
                    router: &mut self.router,
                    emitter: metrics,
                };
                op.on_watermark(t, &mut ctx, &mut out)
                    .map_err(|e| wrap(e, task))?;
                // The end of time stays the end of time.
                if t != EventTime::MAX {
                    t = t.saturating_sub(op.watermark_delay().max(0));
                }
            }
            wm = Watermark::EventTime(t);
        }
        self.router.send_control(Message::Watermark(wm))
    }

    /// Passes a latency marker on, or, at the end of the job graph, records
    /// how long it took to get here.
    pub(super) fn latency_marker(&mut self, sent: Instant) -> Result<()> {
        if !self.router.edges.is_empty() {
            return self.router.send_control(Message::LatencyMarker(sent));
        }
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut h) = self.router.shared.latency.lock() {
            h.record(micros.max(1));
        }
        Ok(())
    }

    /// Calls `on_barrier` on every operator of the chain, in order.
    fn snapshot_operators(&mut self, barrier: &Barrier) -> Result<()> {
        self.each_operator(|op, ctx| op.on_barrier(barrier, ctx))
    }

    /// Snapshots the chain at `barrier` and passes the barrier on;
    /// `alignment` is how long the subtask waited for it on all inputs.
    fn barrier(
        &mut self,
        barrier: Barrier,
        extra: Vec<(String, Vec<u8>)>,
        alignment: Duration,
    ) -> Result<()> {
        let paused = Instant::now();
        self.snapshot_operators(&barrier)?;
        self.router.send_control(Message::Barrier(barrier))?;
        self.acknowledge(
            AckKind::Barrier(barrier.checkpoint_id),
            Some(barrier.checkpoint_id),
            extra,
            alignment,
        )?;
        // What the barrier cost this subtask: the operators writing what
        // they hold to their backends and the backends pinning a snapshot.
        // Writing the snapshot happens on the state writers' threads.
        let micros = u64::try_from(paused.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut h) = self.router.shared.barrier_pause.lock() {
            h.record(micros.max(1));
        }
        Ok(())
    }

    /// Reports the snapshot of every operator's state (and `extra`, the
    /// source position) to the coordinator. `id` is the checkpoint's id,
    /// `None` for the end-of-input checkpoint. Without checkpointing there
    /// is nowhere to write state, and only the acknowledgement is sent.
    /// State snapshots are pinned here and written in the background; the
    /// coordinator waits for them before it writes the checkpoint.
    fn acknowledge(
        &mut self,
        kind: AckKind,
        id: Option<u64>,
        extra: Vec<(String, Vec<u8>)>,
        alignment: Duration,
    ) -> Result<()> {
        let mut entries: Vec<(String, PendingSnapshot)> = Vec::new();
        if let Some(store) = &self.store {
            for s in &mut self.slots {
                let staging = store.staging_path(id, &s.name);
                let data = s
                    .state
                    .snapshot_async(&staging)
                    .map_err(|e| wrap(e.into(), &s.task))?;
                entries.push((s.name.clone(), data));
            }
        }
        entries.extend(
            extra.into_iter().map(|(name, bytes)| {
                (name, PendingSnapshot::ready(Ok(SnapshotData::Bytes(bytes))))
            }),
        );
        // The coordinator may be gone (job cancelled); nothing to report then.
        let _ = self.ack.send(Ack {
            kind,
            is_source: self.is_source,
            entries,
            alignment,
        });
        Ok(())
    }

    /// After the end of input: with checkpointing, the final state is a
    /// checkpoint, and its completion (which publishes what sinks staged in
    /// `on_end`) is awaited before the subtask exits.
    pub(super) fn finish(
        &mut self,
        finished: bool,
        extra: Vec<(String, Vec<u8>)>,
        ctrl: &Receiver<Control>,
        shared: &Shared,
    ) -> Result<()> {
        if !self.checkpointing {
            return Ok(());
        }
        // Operators write what they hold in memory at barriers only: give
        // them one more, so the final checkpoint has their final state.
        self.snapshot_operators(&Barrier {
            checkpoint_id: Barrier::FINAL_CHECKPOINT,
            timestamp: chrono::Utc::now().timestamp_millis(),
            then_stop: true,
        })?;
        self.acknowledge(AckKind::End { finished }, None, extra, Duration::ZERO)?;
        // A checkpoint that completed while this subtask was ending is
        // committed as usual; the final one ends the subtask.
        loop {
            let clock = Arc::clone(&self.router.task);
            clock.wait(Wait::Idle);
            let completed = wait_complete(ctrl, &|| shared.cancelled());
            clock.done_waiting();
            let Some(id) = completed? else {
                break;
            };
            self.checkpoint_complete(id)?;
            if id == Barrier::FINAL_CHECKPOINT {
                break;
            }
        }
        Ok(())
    }

    /// Tells every operator that checkpoint `id` is complete (sinks commit
    /// then), timing each call.
    fn checkpoint_complete(&mut self, id: u64) -> Result<()> {
        self.each_operator(|op, ctx| {
            let start = Instant::now();
            op.on_checkpoint_complete(id, ctx)?;
            let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let m = ctx.metrics;
            m.commits.fetch_add(1, Ordering::Relaxed);
            m.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
            m.last_commit_nanos.store(nanos, Ordering::Relaxed);
            Ok(())
        })
    }

    pub(super) fn end(&mut self) -> Result<()> {
        for k in 0..self.slots.len() {
            let (head, rest) = self.slots.split_at_mut(k + 1);
            let Slot {
                op,
                state,
                metrics,
                task,
                ..
            } = &mut head[k];
            let metrics: &Arc<OperatorMetrics> = metrics;
            let mut ctx = OperatorContext {
                task,
                state: state.as_mut(),
                metrics,
            };
            let mut out = ChainCollector {
                rest,
                router: &mut self.router,
                emitter: metrics,
            };
            op.on_end(&mut ctx, &mut out).map_err(|e| wrap(e, task))?;
        }
        self.router.send_control(Message::End)
    }

    /// Handles a command; `position` snapshots the source (sources only).
    pub(super) fn handle_control(
        &mut self,
        c: Control,
        position: &mut dyn FnMut() -> Result<Vec<(String, Vec<u8>)>>,
    ) -> Result<()> {
        match c {
            Control::InjectBarrier(b) => {
                let extra = position()?;
                self.barrier(b, extra, Duration::ZERO)
            }
            Control::CheckpointComplete(id) => self.checkpoint_complete(id),
        }
    }
}

/// Runs an operator subtask: reads its input channels, merges their
/// watermarks, and aligns checkpoint barriers. This is where a barrier is
/// aligned: once it arrives on one channel, that channel is not read again
/// (it is not `readable`) until the barrier has arrived on every other
/// channel that has not ended; then the chain snapshots and passes the
/// barrier on, and every channel is read again. Before it waits for input,
/// the subtask sends the rows its exchanges hold gathered.
pub(super) fn run_operator(
    inbound: Inbound,
    mut chain: ChainRuntime,
    ctrl: &Receiver<Control>,
    shared: &Shared,
) -> Result<()> {
    chain.open()?;
    let Inbound {
        mut receiver,
        input_of,
    } = inbound;
    let n = receiver.channels();
    let mut merger = WatermarkMerger::new(n);
    let mut ended = vec![false; n];
    // Channels read now: not ended, and not holding a barrier back.
    let mut readable = vec![true; n];
    // The barrier being aligned and when its first copy arrived.
    let mut pending: Option<(Barrier, Instant)> = None;
    loop {
        if shared.cancelled() {
            return Err(EngineError::Cancelled);
        }
        while let Ok(c) = ctrl.try_recv() {
            chain.handle_control(c, &mut || Ok(Vec::new()))?;
        }
        if !readable.iter().any(|r| *r) {
            return Err(EngineError::Internal(
                "operator subtask has no readable input".into(),
            ));
        }
        let next = match receiver.try_recv(&readable)? {
            Some(found) => Some(found),
            None => {
                chain.router.flush()?;
                let clock = Arc::clone(&chain.router.task);
                clock.wait(Wait::Idle);
                let found = receiver.recv_timeout(&readable, POLL_INTERVAL);
                clock.done_waiting();
                found?
            }
        };
        let Some((k, msg)) = next else {
            continue;
        };
        match msg {
            Message::Batch(batch) => {
                chain
                    .router
                    .task
                    .bytes_in
                    .fetch_add(batch_bytes(&batch), Ordering::Relaxed);
                chain.process(input_of[k], batch, None)?;
                chain.router.flush_expired()?;
            }
            Message::Watermark(wm) => {
                if let Some(out) = merger.update(k, wm) {
                    chain.watermark(out)?;
                }
            }
            Message::LatencyMarker(sent) => chain.latency_marker(sent)?,
            Message::Barrier(b) => {
                readable[k] = false;
                pending.get_or_insert((b, Instant::now()));
            }
            Message::End => {
                ended[k] = true;
                readable[k] = false;
                // A stopped job's sources end where they happen to be, not
                // at the end of their data: their end says nothing about
                // event time. So the merger is not told: the ended input
                // keeps its last watermark and goes on holding the others
                // back. Otherwise a watermark still to come from an input
                // far ahead would fire windows with part of their rows, and
                // the savepoint would hold that output and a watermark past
                // rows still to come (a resumed job would drop them as
                // late). A source that ended by itself sent the end of time
                // first, so holding its input changes nothing.
                if !shared.stop.load(Ordering::Relaxed) {
                    if let Some(out) = merger.input_ended(k) {
                        chain.watermark(out)?;
                    }
                }
            }
        }
        if let Some((b, since)) = pending {
            if !readable.iter().any(|r| *r) {
                chain.barrier(b, Vec::new(), since.elapsed())?;
                pending = None;
                for (r, e) in readable.iter_mut().zip(&ended) {
                    *r = !*e;
                }
            }
        }
        if ended.iter().all(|&e| e) {
            chain.end()?;
            return chain.finish(true, Vec::new(), ctrl, shared);
        }
    }
}
