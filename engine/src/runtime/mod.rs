//! The runtime: expands a [`JobGraph`] into subtasks on OS threads and runs
//! them.
//!
//! Each chain of the graph (see [`JobGraph::chains`]) runs as `parallelism`
//! threads. Chained operators call each other directly; chains are joined by
//! bounded crossbeam channels, one per pair of communicating subtasks, so a
//! slow consumer blocks its producers all the way back to the sources.
//!
//! A subtask with several input channels merges their watermarks (see
//! [`crate::watermark::WatermarkMerger`]) and aligns checkpoint barriers: once
//! a barrier arrives on one channel, that channel is not read again until the
//! barrier has arrived on every other live channel.
//!
//! Failure: the first error (or panic) of any subtask is recorded, every
//! other subtask is told to stop, and [`JobHandle::wait`] returns that error.
//! Threads never wait forever: channel operations time out periodically to
//! look at the cancel flag.
//!
//! Where things are: this file starts a job (wiring, restoring, building
//! operators, spawning threads) and holds its [`JobHandle`];
//! `exchange.rs` holds the channels between chains and how a forward, hash,
//! broadcast or round-robin edge sends a batch (`route_by_key` is where a
//! hash exchange routes a row); `chain.rs` passes batches, watermarks and
//! barriers through one subtask's chained operators, and its
//! `run_operator` is where barriers are aligned; `source_task.rs` is a
//! source subtask's loop; `coordinator.rs` is the checkpoint coordinator;
//! `restore.rs` finds the checkpoint to resume from and opens each
//! operator's state; `metrics.rs` has the counters, progress and latency a
//! running job reports; `shared.rs` has the flags every thread watches;
//! `local.rs` runs a small bounded job (a query over in-memory tables) on
//! the caller's thread instead ([`run_local`]).

mod chain;
mod coordinator;
mod exchange;
mod local;
mod metrics;
mod restore;
mod shared;
mod source_task;
mod status;
#[cfg(test)]
mod tests;
pub mod transport;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, Sender};
use runnel_state::CheckpointInfo;

use self::chain::{run_operator, wrap, ChainRuntime, Slot};
use self::coordinator::{Ack, Control, Coordinator, Durable, Request};
use self::exchange::{Inbound, Wiring};
use self::restore::{position_entry_name, state_entry_name, Restore, Resume};
use self::shared::Shared;
use self::source_task::{run_source, SourceRun};
use crate::error::{EngineError, Result};
use crate::graph::{JobGraph, NodeId, NodeKind};
use crate::operator::{OperatorMetrics, TaskInfo};
use crate::source::{Source, WatermarkStrategy};

pub use self::coordinator::{CheckpointStats, CHECKPOINT_HISTORY};
pub use self::local::run_local;
pub use self::metrics::{LatencySummary, Progress, SubtaskMetrics, TaskMetrics, TaskTimes};
pub use self::status::JobStatus;

/// The stack of each subtask thread. Expressions are bounded in depth by
/// the SQL parser, and the evaluator recurses once per level; this is room
/// for that bound in unoptimised builds too. Only touched pages take memory.
pub const SUBTASK_STACK_BYTES: usize = 16 << 20;

/// Entry point of the runtime.
#[derive(Debug)]
pub struct Job;

impl Job {
    /// Validates `graph`, creates every operator instance and starts one
    /// thread per chain subtask. Returns at once.
    pub fn start(graph: JobGraph) -> Result<JobHandle> {
        graph.validate()?;
        let chains = graph.chains()?;
        let shared = Arc::new(Shared::default());
        let (ack_tx, ack_rx) = channel::unbounded();
        let (request_tx, request_rx) = channel::unbounded();
        let mut handle = JobHandle {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
            coordinator: None,
            requests: request_tx,
            stats: Arc::new(Mutex::new(None)),
            history: Arc::default(),
            topology: graph
                .edges()
                .iter()
                .map(|e| (e.from, e.to, e.exchange.to_string()))
                .collect(),
            metrics: Vec::new(),
            running: Arc::new(AtomicUsize::new(0)),
            restored: None,
        };
        let restore = Restore::open(&graph)?;
        let mut builder = SubtaskBuilder {
            graph: &graph,
            restore: &restore,
            shared: &shared,
            ack: ack_tx,
            wiring: Wiring::new(&graph, &chains),
            metrics: Vec::new(),
        };
        // Create every instance first, so a failing factory starts nothing.
        let mut controls: Vec<(bool, Sender<Control>)> = Vec::new();
        let mut bodies: Vec<(String, SubtaskBody)> = Vec::new();
        for chain in &chains {
            let head = &graph.nodes()[chain[0]];
            for subtask in 0..head.parallelism {
                let (ctrl_tx, ctrl_rx) = channel::unbounded();
                let body = builder.build(chain, subtask, ctrl_rx)?;
                controls.push((body.is_source(), ctrl_tx));
                bodies.push((format!("{}-{subtask}", head.name), body));
            }
        }
        handle.metrics = builder.finish();
        handle.start_coordinator(&graph, restore, controls, ack_rx, request_rx)?;
        for (name, body) in bodies {
            handle.spawn_subtask(name, body)?;
        }
        Ok(handle)
    }

    /// Starts `graph` and waits for it to finish (bounded jobs).
    pub fn run(graph: JobGraph) -> Result<()> {
        Job::start(graph)?.wait()
    }
}

/// Messages that crossed between subtasks (channel hops, not calls within
/// a chain), for benchmarks and tuning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeStats {
    /// Batches sent.
    pub batches: u64,
    /// Rows in them.
    pub rows: u64,
    /// Watermarks, barriers, latency markers and ends sent.
    pub controls: u64,
}

/// Creates the subtasks of a starting job, one at a time, and hands each
/// its channels.
struct SubtaskBuilder<'a> {
    graph: &'a JobGraph,
    restore: &'a Restore,
    shared: &'a Arc<Shared>,
    /// Where subtasks acknowledge checkpoints; dropped by `finish`, so the
    /// coordinator sees the channel close once every subtask has exited.
    ack: Sender<Ack>,
    wiring: Wiring,
    /// Every operator subtask's counters, in the order they were created.
    metrics: Vec<SubtaskMetrics>,
}

/// A source instance of a chain subtask, before it runs.
struct SourceParts {
    source: Box<dyn Source>,
    strategy: Option<WatermarkStrategy>,
    task: TaskInfo,
    metrics: Arc<OperatorMetrics>,
}

impl SubtaskBuilder<'_> {
    /// Creates the instances of subtask `subtask` of `chain` and takes its
    /// channels; `ctrl` is where the coordinator reaches it.
    fn build(
        &mut self,
        chain: &[NodeId],
        subtask: usize,
        ctrl: Receiver<Control>,
    ) -> Result<SubtaskBody> {
        let head = &self.graph.nodes()[chain[0]];
        let tail = *chain.last().unwrap_or(&chain[0]);
        let task_metrics = Arc::new(TaskMetrics::default());
        let (slots, source) = self.instances(chain, subtask, &task_metrics)?;
        let chain_rt = ChainRuntime {
            slots,
            store: self.restore.store.clone(),
            router: self.wiring.router(
                tail,
                subtask,
                Arc::clone(self.shared),
                Arc::clone(&task_metrics),
            ),
            ack: self.ack.clone(),
            is_source: source.is_some(),
            checkpointing: self.graph.checkpointing.is_some(),
            latency_interval: self.graph.latency_interval,
            watermark_interval: self.graph.watermark_interval,
        };
        Ok(match source {
            Some(SourceParts {
                source,
                strategy,
                task,
                metrics,
            }) => SubtaskBody::Source {
                position: self.restore.resume(
                    head.id,
                    subtask,
                    self.graph.nodes()[head.id].parallelism,
                )?,
                position_name: position_entry_name(head.id, subtask),
                source,
                strategy,
                task,
                metrics,
                chain: chain_rt,
                ctrl,
            },
            None => SubtaskBody::Operator {
                inputs: self.wiring.inputs(head.id, subtask)?,
                chain: chain_rt,
                ctrl,
            },
        })
    }

    /// Calls the factories of the nodes of `chain` for subtask `subtask`,
    /// and opens each operator's state, restored when the job resumes.
    fn instances(
        &mut self,
        chain: &[NodeId],
        subtask: usize,
        task_metrics: &Arc<TaskMetrics>,
    ) -> Result<(Vec<Slot>, Option<SourceParts>)> {
        let graph = self.graph;
        let nodes = graph.nodes();
        let task_for = |n: NodeId| TaskInfo {
            operator_name: nodes[n].name.clone(),
            subtask,
            parallelism: nodes[n].parallelism,
            max_parallelism: graph.max_parallelism,
            checkpointing: graph.checkpointing.is_some(),
            memory_budget: graph.state.spill_budget(),
        };
        let mut slots = Vec::new();
        let mut source = None;
        for &n in chain {
            let task = task_for(n);
            let metrics = Arc::new(OperatorMetrics::default());
            self.metrics.push(SubtaskMetrics {
                node: n,
                name: nodes[n].name.clone(),
                subtask,
                is_source: matches!(nodes[n].kind, NodeKind::Source { .. }),
                is_sink: graph.outputs_of(n).is_empty(),
                metrics: Arc::clone(&metrics),
                task: Arc::clone(task_metrics),
            });
            match &nodes[n].kind {
                NodeKind::Source { factory, watermark } => {
                    let s = factory(&task).map_err(|e| wrap(e, &task))?;
                    source = Some(SourceParts {
                        source: s,
                        strategy: watermark.clone(),
                        task,
                        metrics,
                    });
                }
                NodeKind::Operator { factory } => {
                    let op = factory(&task).map_err(|e| wrap(e, &task))?;
                    let name = state_entry_name(n, subtask);
                    let state = self
                        .restore
                        .operator_state(
                            &graph.state,
                            n,
                            (subtask, nodes[n].parallelism),
                            op.state_layout(),
                            &nodes[n].name,
                            graph.max_parallelism,
                        )
                        .map_err(|e| wrap(e, &task))?;
                    slots.push(Slot {
                        op,
                        state,
                        metrics,
                        task,
                        name,
                    });
                }
            }
        }
        Ok((slots, source))
    }

    /// The counters of every subtask built; drops the builder's end of the
    /// acknowledgement channel.
    fn finish(self) -> Vec<SubtaskMetrics> {
        self.metrics
    }
}

/// A running job.
///
/// Dropping the handle cancels the job and waits for its threads: no thread
/// outlives its handle.
#[derive(Debug)]
pub struct JobHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    coordinator: Option<JoinHandle<()>>,
    requests: Sender<Request>,
    stats: Arc<Mutex<Option<CheckpointStats>>>,
    history: Arc<Mutex<std::collections::VecDeque<CheckpointStats>>>,
    /// The graph's edges: sending node, receiving node, exchange.
    topology: Vec<(NodeId, NodeId, String)>,
    metrics: Vec<SubtaskMetrics>,
    running: Arc<AtomicUsize>,
    restored: Option<CheckpointInfo>,
}

impl JobHandle {
    /// Waits for every subtask to finish; returns the job's first error.
    pub fn wait(mut self) -> Result<()> {
        self.join();
        let err = self.shared.error.lock().ok().and_then(|mut e| e.take());
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn join(&mut self) {
        for t in self.threads.drain(..) {
            // A panicking subtask was already caught and recorded.
            let _ = t.join();
        }
        if let Some(c) = self.coordinator.take() {
            let _ = c.join();
        }
    }

    /// Asks the sources to stop reading; the job then drains and finishes
    /// without firing the windows that are still open (as Flink's `stop`
    /// without `--drain`).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Cancels the job: every subtask stops as soon as it can, and `wait`
    /// returns [`EngineError::Cancelled`].
    pub fn cancel(&self) {
        self.shared.fail(EngineError::Cancelled);
    }

    /// True once every subtask has ended (successfully or not).
    pub fn is_finished(&self) -> bool {
        self.running.load(Ordering::SeqCst) == 0
    }

    /// Live counters of every subtask.
    pub fn metrics(&self) -> &[SubtaskMetrics] {
        &self.metrics
    }

    /// A summary for the progress line.
    pub fn progress(&self) -> Progress {
        let mut p = Progress {
            rows_read: 0,
            rows_written: 0,
            late_rows: 0,
            malformed: 0,
            watermark: None,
            checkpoint: self.stats.lock().ok().and_then(|s| *s),
            latency: self.latency(),
        };
        for m in &self.metrics {
            if m.is_source {
                p.rows_read += m.metrics.rows_out.load(Ordering::Relaxed);
            }
            if m.is_sink {
                p.rows_written += m.metrics.rows_in.load(Ordering::Relaxed);
                let wm = m.metrics.watermark.get();
                if wm != i64::MIN {
                    p.watermark = Some(p.watermark.map_or(wm, |w| w.min(wm)));
                }
            }
            p.late_rows += m.metrics.late_rows_dropped.load(Ordering::Relaxed);
            p.malformed += m.metrics.malformed_records.load(Ordering::Relaxed);
        }
        p
    }

    /// Takes a checkpoint now: injects a barrier at every source subtask,
    /// waits until every subtask has snapshotted (and, for a job with a
    /// checkpoint directory, until the checkpoint is written), then tells
    /// every subtask that it is complete. Returns its id. Fails if another
    /// checkpoint is in progress, if a source has already finished (a
    /// bounded job near its end), or if `timeout` passes.
    pub fn checkpoint(&self, timeout: Duration) -> Result<u64> {
        let (tx, rx) = channel::bounded(1);
        self.requests
            .send((timeout, tx))
            .map_err(|_| EngineError::Execution("the job has ended".into()))?;
        match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(result) => result,
            Err(_) => Err(EngineError::Execution(format!(
                "checkpoint timed out after {timeout:?}"
            ))),
        }
    }

    /// The processing latency so far: how long the latency markers that the
    /// sources send every `JobGraph::latency_interval` took to reach the
    /// sinks. `None` before the first marker arrives (or without markers).
    pub fn latency(&self) -> Option<LatencySummary> {
        self.shared.latency.lock().ok()?.summary()
    }

    /// How long subtasks stopped processing at checkpoint barriers (the
    /// synchronous part of a snapshot, per subtask and barrier). `None`
    /// before the first barrier.
    pub fn barrier_pauses(&self) -> Option<LatencySummary> {
        self.shared.barrier_pause.lock().ok()?.summary()
    }

    /// What crossed between subtasks so far: counted by each subtask as it
    /// ends, so complete once the job has ended.
    pub fn exchange_stats(&self) -> ExchangeStats {
        let c = &self.shared.exchange;
        ExchangeStats {
            batches: c.batches.load(Ordering::Relaxed),
            rows: c.rows.load(Ordering::Relaxed),
            controls: c.controls.load(Ordering::Relaxed),
        }
    }

    /// The checkpoint this run resumed from, if any.
    pub fn restored_from(&self) -> Option<&CheckpointInfo> {
        self.restored.as_ref()
    }

    /// The last completed checkpoint of this run.
    pub fn last_checkpoint(&self) -> Option<CheckpointStats> {
        self.stats.lock().ok().and_then(|s| *s)
    }

    /// The latest completed checkpoints of this run (at most
    /// [`coordinator::CHECKPOINT_HISTORY`]), oldest first.
    pub fn checkpoint_history(&self) -> Vec<CheckpointStats> {
        self.history
            .lock()
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The edges of the job's graph: sending node, receiving node, and how
    /// rows are routed between their subtasks (as `EXPLAIN` names it).
    pub fn topology(&self) -> &[(NodeId, NodeId, String)] {
        &self.topology
    }
}

/// The steps of [`Job::start`] that start threads.
impl JobHandle {
    /// Starts the checkpoint coordinator's thread. Without a checkpoint
    /// directory it still runs: checkpoints are then taken on request and
    /// not written.
    fn start_coordinator(
        &mut self,
        graph: &JobGraph,
        restore: Restore,
        controls: Vec<(bool, Sender<Control>)>,
        acks: Receiver<Ack>,
        requests: Receiver<Request>,
    ) -> Result<()> {
        let Restore {
            store, restored, ..
        } = restore;
        let coordinator = Coordinator {
            controls,
            acks,
            requests,
            durable: match (&graph.checkpointing, store) {
                (Some(c), Some(store)) => Some(Durable {
                    store,
                    interval: c.interval,
                    fingerprint: c.fingerprint.clone(),
                    tolerable_failures: graph.tolerable_failed_checkpoints,
                }),
                _ => None,
            },
            next_id: restored.as_ref().map_or(1, |cp: &CheckpointInfo| cp.id + 1),
            cancelled: {
                let shared = Arc::clone(&self.shared);
                Box::new(move || shared.cancelled())
            },
            stats: Arc::clone(&self.stats),
            history: Arc::clone(&self.history),
            failures: (0, 0),
            fail: {
                let shared = Arc::clone(&self.shared);
                Box::new(move |e| shared.fail(e))
            },
        };
        self.restored = restored;
        self.coordinator = Some(
            std::thread::Builder::new()
                .name("checkpoint-coordinator".into())
                .spawn(move || coordinator.run())
                .map_err(|e| EngineError::Internal(format!("cannot start a thread: {e}")))?,
        );
        Ok(())
    }

    /// Starts the thread of one subtask. Its error, or its panic, fails the
    /// job.
    fn spawn_subtask(&mut self, name: String, body: SubtaskBody) -> Result<()> {
        let thread_shared = Arc::clone(&self.shared);
        let running = Arc::clone(&self.running);
        running.fetch_add(1, Ordering::SeqCst);
        let thread_name = name.clone();
        let spawned = std::thread::Builder::new()
            .name(thread_name)
            .stack_size(SUBTASK_STACK_BYTES)
            .spawn(move || {
                let shared = thread_shared;
                let result = catch_unwind(AssertUnwindSafe(|| body.run(&shared)));
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => shared.fail(e),
                    Err(panic) => {
                        let msg = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        shared.fail(EngineError::Internal(format!(
                            "subtask {name} panicked: {msg}"
                        )));
                    }
                }
                running.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(t) => self.threads.push(t),
            Err(e) => {
                self.running.fetch_sub(1, Ordering::SeqCst);
                self.shared
                    .fail(EngineError::Internal(format!("cannot start a thread: {e}")));
                return Err(EngineError::Internal(format!("cannot start a thread: {e}")));
            }
        }
        Ok(())
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.coordinator.is_some() {
            self.shared.fail(EngineError::Cancelled);
            self.join();
        }
    }
}

/// What one subtask thread runs.
enum SubtaskBody {
    Source {
        /// Where to resume, from the restored checkpoint.
        position: Resume,
        /// Name of the position in checkpoints.
        position_name: String,
        source: Box<dyn Source>,
        strategy: Option<WatermarkStrategy>,
        task: TaskInfo,
        metrics: Arc<OperatorMetrics>,
        chain: ChainRuntime,
        ctrl: Receiver<Control>,
    },
    Operator {
        inputs: Inbound,
        chain: ChainRuntime,
        ctrl: Receiver<Control>,
    },
}

impl SubtaskBody {
    fn is_source(&self) -> bool {
        matches!(self, SubtaskBody::Source { .. })
    }

    fn run(self, shared: &Shared) -> Result<()> {
        let clock = match &self {
            SubtaskBody::Source { chain, .. } | SubtaskBody::Operator { chain, .. } => {
                Arc::clone(&chain.router.task)
            }
        };
        // Stops the thread's clock however the loop ends (a panic too).
        struct StopClock(Arc<TaskMetrics>);
        impl Drop for StopClock {
            fn drop(&mut self) {
                self.0.finish();
            }
        }
        let _stop = StopClock(clock);
        self.run_loop(shared)
    }

    fn run_loop(self, shared: &Shared) -> Result<()> {
        match self {
            SubtaskBody::Source {
                position,
                position_name,
                source,
                strategy,
                task,
                metrics,
                chain,
                ctrl,
            } => run_source(
                SourceRun {
                    source,
                    position,
                    position_name,
                    strategy,
                },
                &task,
                &metrics,
                chain,
                &ctrl,
                shared,
            ),
            SubtaskBody::Operator {
                inputs,
                chain,
                ctrl,
            } => run_operator(inputs, chain, &ctrl, shared),
        }
    }
}
