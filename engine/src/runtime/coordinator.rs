//! The checkpoint coordinator.
//!
//! One coordinator thread per job. It injects barriers at the sources
//! (every `'execution.checkpointing.interval'`, or when asked), collects
//! each subtask's acknowledgement with its state snapshot and source
//! position, writes the checkpoint (manifest last), and then tells every
//! subtask that the checkpoint is complete, which is when two-phase-commit
//! sinks publish. Checkpoints are strictly sequential: the next one starts
//! only after the previous one completed or was abandoned.
//!
//! The end of a job is a checkpoint too. When a subtask has processed the
//! end of all its inputs (after `on_end`), it acknowledges with its final
//! state and waits; once every subtask has done so, the coordinator writes
//! that final checkpoint and completes it, and the subtasks exit. If every
//! source had reached its end, the checkpoint is marked *finished*; if the
//! job was stopped, it is an ordinary checkpoint to resume from (a
//! savepoint).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, Select, Sender};
use runnel_state::{CheckpointStore, PendingSnapshot, SnapshotData};

use crate::error::{EngineError, Result};
use crate::types::Barrier;

/// Commands from the coordinator (or the job handle) to a subtask.
#[derive(Debug, Clone, Copy)]
pub(super) enum Control {
    /// Sources only: emit this barrier now.
    InjectBarrier(Barrier),
    /// Every subtask: the checkpoint is complete.
    CheckpointComplete(u64),
}

/// What a subtask reports.
#[derive(Debug)]
pub(super) enum AckKind {
    /// It passed the barrier of this checkpoint.
    Barrier(u64),
    /// It processed the end of its input; `finished` is false when a
    /// source was stopped rather than exhausted.
    End { finished: bool },
}

/// A subtask's acknowledgement with its snapshot entries.
#[derive(Debug)]
pub(super) struct Ack {
    pub kind: AckKind,
    pub is_source: bool,
    /// Snapshot parts, possibly still being written by state writers.
    pub entries: Vec<(String, PendingSnapshot)>,
    /// How long the subtask waited for the barrier on all its inputs.
    pub alignment: Duration,
}

/// Figures of the last completed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Its id.
    pub id: u64,
    /// From injecting the barriers to writing the manifest.
    pub duration: Duration,
    /// Bytes this checkpoint wrote (files shared with the previous
    /// checkpoint not counted).
    pub bytes: u64,
    /// Total size of the checkpoint, shared files included.
    pub size: u64,
    /// The longest barrier alignment of any subtask.
    pub alignment: Duration,
    /// Checkpoints completed by this run.
    pub completed: u64,
    /// Checkpoints of this run that failed (a part could not be written).
    pub failed: u64,
    /// When it completed, in milliseconds since the epoch.
    pub completed_at_ms: i64,
}

/// Completed checkpoints a job remembers for its history
/// ([`super::JobHandle::checkpoint_history`]).
pub const CHECKPOINT_HISTORY: usize = 64;

/// Where the coordinator writes, and how often.
#[derive(Debug, Clone)]
pub(super) struct Durable {
    pub store: CheckpointStore,
    pub interval: Duration,
    pub fingerprint: String,
    /// Failed checkpoints in a row the job survives; one more fails it.
    pub tolerable_failures: u32,
}

pub(super) type Request = (Duration, Sender<Result<u64>>);

struct Pending {
    id: u64,
    started: Instant,
    deadline: Instant,
    acks: usize,
    entries: Vec<(String, PendingSnapshot)>,
    alignment: Duration,
    reply: Option<Sender<Result<u64>>>,
}

/// The coordinator's state; runs on its own thread.
pub(super) struct Coordinator {
    pub controls: Vec<(bool, Sender<Control>)>,
    pub acks: Receiver<Ack>,
    pub requests: Receiver<Request>,
    pub durable: Option<Durable>,
    pub next_id: u64,
    pub cancelled: Box<dyn Fn() -> bool + Send>,
    pub stats: Arc<Mutex<Option<CheckpointStats>>>,
    /// The latest completed checkpoints, oldest first.
    pub history: Arc<Mutex<std::collections::VecDeque<CheckpointStats>>>,
    /// Checkpoints failed so far, and how many of the latest in a row.
    pub failures: (u64, u32),
    /// Called with the error when writing a checkpoint fails.
    pub fail: Box<dyn Fn(EngineError) + Send>,
}

/// Default time a periodic checkpoint may take before it is abandoned.
const PERIODIC_TIMEOUT: Duration = Duration::from_secs(60);

impl Coordinator {
    pub fn run(mut self) {
        let total = self.controls.len();
        let mut pending: Option<Pending> = None;
        let mut ended = 0usize;
        let mut all_finished = true;
        let mut end_entries: Vec<(String, PendingSnapshot)> = Vec::new();
        // The final checkpoint's duration runs from the first subtask's end.
        let mut end_started: Option<Instant> = None;
        let interval = self.durable.as_ref().map(|d| d.interval);
        let mut next_periodic = interval.map(|i| Instant::now() + i);
        let mut completed = 0u64;
        loop {
            if (self.cancelled)() {
                if let Some(p) = pending.take() {
                    reply(
                        p.reply,
                        Err(EngineError::Execution("the job stopped".into())),
                    );
                }
                return;
            }
            if total > 0 && ended == total {
                self.finish(
                    end_entries,
                    all_finished,
                    end_started.unwrap_or_else(Instant::now),
                    &mut completed,
                );
                return;
            }
            if let Some(p) = pending.take_if(|p| Instant::now() >= p.deadline) {
                {
                    reply(
                        p.reply,
                        Err(EngineError::Execution(format!(
                            "checkpoint {} timed out ({} of {total} subtasks done)",
                            p.id, p.acks
                        ))),
                    );
                }
            }
            if pending.is_none() && ended == 0 && next_periodic.is_some_and(|t| Instant::now() >= t)
            {
                next_periodic = interval.map(|i| Instant::now() + i);
                pending = self.trigger(None, PERIODIC_TIMEOUT);
            }
            let mut select = Select::new();
            let ack_op = select.recv(&self.acks);
            let req_op = select.recv(&self.requests);
            let op = match select.select_timeout(Duration::from_millis(20)) {
                Ok(op) => op,
                Err(_) => continue,
            };
            if op.index() == req_op {
                // An error means the handle is gone; keep serving the subtasks.
                if let Ok((timeout, tx)) = op.recv(&self.requests) {
                    if pending.is_some() {
                        reply(
                            Some(tx),
                            Err(EngineError::Execution(
                                "another checkpoint is in progress".into(),
                            )),
                        );
                    } else if ended > 0 {
                        reply(
                            Some(tx),
                            Err(EngineError::Execution("the job is ending".into())),
                        );
                    } else {
                        pending = self.trigger(Some(tx), timeout);
                    }
                }
                continue;
            }
            debug_assert_eq!(op.index(), ack_op);
            let ack = match op.recv(&self.acks) {
                Ok(a) => a,
                // Every subtask has exited.
                Err(_) => return,
            };
            match ack.kind {
                AckKind::Barrier(id) => {
                    let Some(p) = pending.as_mut().filter(|p| p.id == id) else {
                        continue; // a late ack of an abandoned checkpoint
                    };
                    p.acks += 1;
                    p.entries.extend(ack.entries);
                    p.alignment = p.alignment.max(ack.alignment);
                    if let Some(p) = pending.take_if(|p| p.acks == total) {
                        let result = self.complete(
                            p.id,
                            p.started,
                            p.entries,
                            p.alignment,
                            false,
                            false,
                            &mut completed,
                        );
                        reply(p.reply, result);
                    }
                }
                AckKind::End { finished } => {
                    ended += 1;
                    end_started.get_or_insert_with(Instant::now);
                    if ack.is_source {
                        all_finished &= finished;
                    }
                    end_entries.extend(ack.entries);
                    // A subtask that ended cannot pass a barrier any more.
                    if let Some(p) = pending.take() {
                        reply(
                            p.reply,
                            Err(EngineError::Execution(format!(
                                "checkpoint {} abandoned: the job is ending",
                                p.id
                            ))),
                        );
                    }
                }
            }
        }
    }

    fn trigger(
        &mut self,
        reply_to: Option<Sender<Result<u64>>>,
        timeout: Duration,
    ) -> Option<Pending> {
        let id = self.next_id;
        self.next_id += 1;
        let barrier = Barrier {
            checkpoint_id: id,
            timestamp: chrono::Utc::now().timestamp_millis(),
            then_stop: false,
        };
        for (is_source, tx) in &self.controls {
            if *is_source && tx.send(Control::InjectBarrier(barrier)).is_err() {
                reply(
                    reply_to,
                    Err(EngineError::Execution(format!(
                        "checkpoint {id} failed: a source has already finished"
                    ))),
                );
                return None;
            }
        }
        let now = Instant::now();
        Some(Pending {
            id,
            started: now,
            deadline: now + timeout,
            acks: 0,
            alignment: Duration::ZERO,
            entries: Vec::new(),
            reply: reply_to,
        })
    }

    /// Writes checkpoint `id` (when durable) and tells every subtask.
    /// `ended_input` marks the checkpoint taken at the end of input;
    /// `finished` additionally says every source was exhausted.
    fn complete(
        &mut self,
        id: u64,
        started: Instant,
        parts: Vec<(String, PendingSnapshot)>,
        alignment: Duration,
        ended_input: bool,
        finished: bool,
        completed: &mut u64,
    ) -> Result<u64> {
        // The asynchronous part: wait until every state writer has made
        // its snapshot durable. Subtasks go on processing meanwhile.
        let mut entries = Vec::with_capacity(parts.len());
        let mut first_error = None;
        for (name, part) in parts {
            match part.wait() {
                Ok(data) => entries.push((name, data)),
                Err(e) => {
                    first_error.get_or_insert(EngineError::State(e));
                }
            }
        }
        let written = match first_error {
            Some(e) => Err(e),
            None => match &self.durable {
                Some(d) => d
                    .store
                    .write(id, &d.fingerprint, finished, &entries)
                    .map(|_| ())
                    .map_err(EngineError::State),
                None => Ok(()),
            },
        };
        if let Err(err) = written {
            return Err(self.failed(id, err, ended_input));
        }
        self.failures.1 = 0;
        let (bytes, size) = entries.iter().fold((0u64, 0u64), |(b, s), e| match &e.1 {
            SnapshotData::Bytes(v) => (b + v.len() as u64, s + v.len() as u64),
            SnapshotData::Dir {
                bytes, new_bytes, ..
            } => (b + new_bytes, s + bytes),
        });
        *completed += 1;
        let stats = CheckpointStats {
            id,
            duration: started.elapsed(),
            bytes,
            size,
            alignment,
            completed: *completed,
            failed: self.failures.0,
            completed_at_ms: chrono::Utc::now().timestamp_millis(),
        };
        if let Ok(mut s) = self.stats.lock() {
            *s = Some(stats);
        }
        if let Ok(mut h) = self.history.lock() {
            if h.len() >= CHECKPOINT_HISTORY {
                h.pop_front();
            }
            h.push_back(stats);
        }
        // Subtasks know the end-of-input checkpoint by its reserved id.
        let announced = if ended_input {
            Barrier::FINAL_CHECKPOINT
        } else {
            id
        };
        for (_, tx) in &self.controls {
            // A subtask that already exited has nothing left to commit.
            let _ = tx.send(Control::CheckpointComplete(announced));
        }
        Ok(id)
    }

    /// Records that checkpoint `id` failed with `err`. The job goes on
    /// (the next checkpoint is the retry) unless more than the tolerated
    /// number failed in a row, or this was the end-of-input checkpoint,
    /// which nothing would retry.
    fn failed(&mut self, id: u64, err: EngineError, ended_input: bool) -> EngineError {
        self.failures.0 += 1;
        self.failures.1 += 1;
        let tolerable = self.durable.as_ref().map_or(0, |d| d.tolerable_failures);
        if let Ok(mut s) = self.stats.lock() {
            if let Some(s) = s.as_mut() {
                s.failed = self.failures.0;
            }
        }
        if ended_input || self.failures.1 > tolerable {
            (self.fail)(EngineError::Execution(format!(
                "writing checkpoint {id} failed: {err}"
            )));
        } else {
            eprintln!(
                "[warn] checkpoint {id} failed ({} in a row, {tolerable} tolerated); \
                 the job goes on and the next checkpoint retries: {err}",
                self.failures.1
            );
        }
        err
    }

    /// The final checkpoint, once every subtask has ended. Subtasks learn
    /// of its completion as [`Barrier::FINAL_CHECKPOINT`], which tells them to exit.
    fn finish(
        mut self,
        entries: Vec<(String, PendingSnapshot)>,
        finished: bool,
        started: Instant,
        completed: &mut u64,
    ) {
        if self.durable.is_none() {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let _ = self.complete(
            id,
            started,
            entries,
            Duration::ZERO,
            true,
            finished,
            completed,
        );
    }
}

fn reply(to: Option<Sender<Result<u64>>>, result: Result<u64>) {
    if let Some(tx) = to {
        let _ = tx.send(result);
    }
}

/// Waits for the next checkpoint completion after the end of input, with
/// looks at the cancel flag; `None` when the coordinator is gone.
pub(super) fn wait_complete(
    ctrl: &Receiver<Control>,
    cancelled: &dyn Fn() -> bool,
) -> Result<Option<u64>> {
    loop {
        if cancelled() {
            return Err(EngineError::Cancelled);
        }
        match ctrl.recv_timeout(Duration::from_millis(50)) {
            Ok(Control::CheckpointComplete(id)) => return Ok(Some(id)),
            // Barriers cannot be injected into an ended source.
            Ok(Control::InjectBarrier(_)) => {}
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
        }
    }
}
