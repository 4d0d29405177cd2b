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

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, UInt32Array};
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Select, SendTimeoutError, Sender};
use hdrhistogram::Histogram;
use runnel_state::{
    copy_all, key_group_for_hash, subtask_for_key_group, CheckpointInfo, CheckpointStore,
    MemorySnapshot, MemoryStateBackend, RocksMemory, RocksStateBackend, SnapshotData, StateBackend,
};

use crate::checkpoint::{
    wait_complete, Ack, AckKind, CheckpointStats, Control, Coordinator, Durable, Request,
};
use crate::error::{EngineError, Result};
use crate::graph::{Exchange, JobGraph, NodeId, NodeKind, StateBackendKind, StateConfig};
use crate::keys::{hash_key, KeyEncoder};
use crate::operator::{Collector, Operator, OperatorContext, OperatorMetrics, TaskInfo};
use crate::source::{Source, SourcePoll, WatermarkStrategy};
use crate::types::{max_event_time, Barrier, EventTime, Message, Watermark};
use crate::watermark::{WatermarkGenerator, WatermarkMerger};

/// How often blocked threads look at the cancel flag.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// State shared by the job handle and all subtasks.
#[derive(Debug, Default)]
struct Shared {
    cancel: AtomicBool,
    stop: AtomicBool,
    error: Mutex<Option<EngineError>>,
    /// How long latency markers took from source to sink.
    latency: Mutex<LatencyHistogram>,
}

impl Shared {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Records `err` unless a more telling error is already there, and tells
    /// every subtask to stop. A subtask that stops because another one failed
    /// reports `Cancelled`; the root cause wins over it.
    fn fail(&self, err: EngineError) {
        if let Ok(mut slot) = self.error.lock() {
            let replace = match &*slot {
                None => true,
                Some(existing) => {
                    matches!(existing.root(), EngineError::Cancelled)
                        && !matches!(err.root(), EngineError::Cancelled)
                }
            };
            if replace {
                *slot = Some(err);
            }
        }
        self.cancel.store(true, Ordering::SeqCst);
    }
}

/// Counters of one subtask of one node.
#[derive(Debug, Clone)]
pub struct SubtaskMetrics {
    /// The node.
    pub node: NodeId,
    /// The node's name.
    pub name: String,
    /// Subtask index.
    pub subtask: usize,
    /// True for source subtasks.
    pub is_source: bool,
    /// True for nodes without outgoing edges.
    pub is_sink: bool,
    /// The live counters.
    pub metrics: Arc<OperatorMetrics>,
}

/// A summary of a running job, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows emitted by all sources.
    pub rows_read: u64,
    /// Rows received by all sinks.
    pub rows_written: u64,
    /// Late rows dropped anywhere.
    pub late_rows: u64,
    /// Malformed input records skipped by sources.
    pub malformed: u64,
    /// Smallest watermark over the sinks' subtasks (`None` before any).
    pub watermark: Option<EventTime>,
    /// The last completed checkpoint.
    pub checkpoint: Option<CheckpointStats>,
    /// Processing latency, when the job sends latency markers.
    pub latency: Option<LatencySummary>,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wm = match self.watermark {
            None => "-".to_string(),
            Some(EventTime::MAX) => "end".to_string(),
            Some(t) => chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .unwrap_or_else(|| t.to_string()),
        };
        write!(
            f,
            "rows in {} | rows out {} | watermark {} | late rows {} | malformed {}",
            self.rows_read, self.rows_written, wm, self.late_rows, self.malformed
        )?;
        if let Some(l) = self.latency {
            write!(
                f,
                " | latency p50 {:.1} ms, p99 {:.1} ms",
                l.p50.as_secs_f64() * 1e3,
                l.p99.as_secs_f64() * 1e3
            )?;
        }
        if let Some(c) = self.checkpoint {
            write!(
                f,
                " | checkpoint {} ({} ms, {} KiB written, {} KiB in all, aligned in {} ms)",
                c.id,
                c.duration.as_millis(),
                c.bytes.div_ceil(1024),
                c.size.div_ceil(1024),
                c.alignment.as_millis()
            )?;
        }
        Ok(())
    }
}

/// Microseconds that latency markers took from a source to a sink.
#[derive(Debug)]
struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        // 1 us to 1 hour in 3 significant digits; larger values saturate.
        Self(
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("1 us .. 1 h at 3 significant digits is a valid histogram"),
        )
    }
}

/// Processing latency measured with latency markers
/// ([`JobHandle::latency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// Markers that reached a sink.
    pub samples: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

/// Entry point of the runtime.
#[derive(Debug)]
pub struct Job;

impl Job {
    /// Validates `graph`, creates every operator instance and starts one
    /// thread per chain subtask. Returns at once.
    pub fn start(graph: JobGraph) -> Result<JobHandle> {
        graph.validate()?;
        let chains = graph.chains()?;
        let nodes = graph.nodes();
        let mut chain_of = vec![0usize; nodes.len()];
        for (c, chain) in chains.iter().enumerate() {
            for &n in chain {
                chain_of[n] = c;
            }
        }

        // Channels for every edge that crosses chains.
        // outputs[node][subtask] -> Vec<OutEdge>; inputs[chain][subtask] -> Vec<(input, Receiver)>
        let mut outputs: Vec<Vec<Vec<OutEdge>>> = nodes
            .iter()
            .map(|n| (0..n.parallelism).map(|_| Vec::new()).collect())
            .collect();
        let mut inputs: Vec<Vec<Vec<(usize, Receiver<Message>)>>> = chains
            .iter()
            .map(|c| (0..nodes[c[0]].parallelism).map(|_| Vec::new()).collect())
            .collect();
        for e in graph.edges().iter().filter(|e| !graph.is_chained(e)) {
            let (pf, pt) = (nodes[e.from].parallelism, nodes[e.to].parallelism);
            let mut senders: Vec<Vec<Option<Sender<Message>>>> = vec![vec![None; pt]; pf];
            for (j, row) in senders.iter_mut().enumerate() {
                for (i, slot) in row.iter_mut().enumerate() {
                    if e.exchange == Exchange::Forward && i != j {
                        continue;
                    }
                    let (tx, rx) = channel::bounded(graph.channel_capacity.max(1));
                    *slot = Some(tx);
                    inputs[chain_of[e.to]][i].push((e.input, rx));
                }
            }
            for (j, targets) in senders.into_iter().enumerate() {
                outputs[e.from][j].push(OutEdge {
                    exchange: e.exchange.clone(),
                    targets,
                    encoder: None,
                    next: j,
                    max_parallelism: graph.max_parallelism,
                });
            }
        }

        let shared = Arc::new(Shared::default());
        let (ack_tx, ack_rx) = channel::unbounded();
        let (request_tx, request_rx) = channel::unbounded();
        let mut handle = JobHandle {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
            coordinator: None,
            requests: request_tx,
            stats: Arc::new(Mutex::new(None)),
            metrics: Vec::new(),
            running: Arc::new(AtomicUsize::new(0)),
            restored: None,
        };
        let mut controls: Vec<(bool, Sender<Control>)> = Vec::new();
        // Resume from the newest complete checkpoint of the same plan.
        let (store, restored) = match &graph.checkpointing {
            None => (None, None),
            Some(c) => {
                let store = CheckpointStore::new(&c.dir, c.retained);
                let latest = store.latest()?;
                if let Some(cp) = &latest {
                    if cp.fingerprint != c.fingerprint {
                        return Err(EngineError::Plan(format!(
                            "the checkpoints in {} were taken by a different query; \
                             use another checkpoint directory or delete this one",
                            c.dir.display()
                        )));
                    }
                }
                (Some(store), latest)
            }
        };
        // Working copies of RocksDB state: inside the checkpoint directory
        // (so checkpoints can hard-link them), else private temporary
        // directories named after the process and job, one per subtask, so
        // that each is removed whole when its subtask ends.
        let work_path: Box<dyn Fn(&str) -> std::path::PathBuf> = match &store {
            Some(st) => {
                st.clear_scratch()?;
                let root = st.work_dir();
                Box::new(move |name: &str| root.join(name))
            }
            None => {
                static JOBS: AtomicUsize = AtomicUsize::new(0);
                let base = graph
                    .state
                    .local_dir
                    .clone()
                    .unwrap_or_else(std::env::temp_dir);
                let prefix = format!(
                    "runnel-state-{}-{}",
                    std::process::id(),
                    JOBS.fetch_add(1, Ordering::Relaxed)
                );
                Box::new(move |name: &str| base.join(format!("{prefix}-{name}")))
            }
        };
        let read_entry = |name: &str| -> Result<Option<Vec<u8>>> {
            match (&store, &restored) {
                (Some(st), Some(cp)) => Ok(st.read(cp, name)?),
                _ => Ok(None),
            }
        };

        // Create every instance first, so a failing factory starts nothing.
        let mut bodies: Vec<(String, SubtaskBody)> = Vec::new();
        for chain in &chains {
            let head = &nodes[chain[0]];
            let tail = *chain.last().unwrap_or(&chain[0]);
            for subtask in 0..head.parallelism {
                let task_for = |n: NodeId| TaskInfo {
                    operator_name: nodes[n].name.clone(),
                    subtask,
                    parallelism: nodes[n].parallelism,
                    max_parallelism: graph.max_parallelism,
                    checkpointing: graph.checkpointing.is_some(),
                    memory_budget: graph.state.spill_budget(),
                };
                let mut slots = Vec::new();
                let mut source: Option<(
                    Box<dyn Source>,
                    Option<WatermarkStrategy>,
                    TaskInfo,
                    Arc<OperatorMetrics>,
                )> = None;
                for &n in chain {
                    let task = task_for(n);
                    let metrics = Arc::new(OperatorMetrics::default());
                    handle.metrics.push(SubtaskMetrics {
                        node: n,
                        name: nodes[n].name.clone(),
                        subtask,
                        is_source: matches!(nodes[n].kind, NodeKind::Source { .. }),
                        is_sink: graph.outputs_of(n).is_empty(),
                        metrics: Arc::clone(&metrics),
                    });
                    match &nodes[n].kind {
                        NodeKind::Source { factory, watermark } => {
                            let s = factory(&task).map_err(|e| wrap(e, &task))?;
                            source = Some((s, watermark.clone(), task, metrics));
                        }
                        NodeKind::Operator { factory } => {
                            let op = factory(&task).map_err(|e| wrap(e, &task))?;
                            let name = state_entry_name(n, subtask);
                            let state = open_state(
                                &graph.state,
                                work_path(&name),
                                restored
                                    .as_ref()
                                    .zip(store.as_ref())
                                    .and_then(|(cp, st)| st.dir_of(cp, &name)),
                                read_entry(&name)?,
                            )?;
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
                let router = Router {
                    edges: std::mem::take(&mut outputs[tail][subtask]),
                    shared: Arc::clone(&shared),
                };
                let chain_rt = ChainRuntime {
                    slots,
                    store: store.clone(),
                    router,
                    ack: ack_tx.clone(),
                    is_source: source.is_some(),
                    checkpointing: graph.checkpointing.is_some(),
                    latency_interval: graph.latency_interval,
                };
                let (ctrl_tx, ctrl_rx) = channel::unbounded();
                controls.push((source.is_some(), ctrl_tx));
                let name = format!("{}-{subtask}", head.name);
                let body = match source {
                    Some((source, strategy, task, metrics)) => SubtaskBody::Source {
                        position: read_entry(&position_entry_name(head.id, subtask))?,
                        position_name: position_entry_name(head.id, subtask),
                        source,
                        strategy,
                        task,
                        metrics,
                        chain: chain_rt,
                        ctrl: ctrl_rx,
                    },
                    None => SubtaskBody::Operator {
                        inputs: std::mem::take(&mut inputs[chain_of[head.id]][subtask]),
                        chain: chain_rt,
                        ctrl: ctrl_rx,
                    },
                };
                bodies.push((name, body));
            }
        }
        drop(ack_tx);

        let coordinator = Coordinator {
            controls,
            acks: ack_rx,
            requests: request_rx,
            durable: match (&graph.checkpointing, store) {
                (Some(c), Some(store)) => Some(Durable {
                    store,
                    interval: c.interval,
                    fingerprint: c.fingerprint.clone(),
                }),
                _ => None,
            },
            next_id: restored.as_ref().map_or(1, |cp: &CheckpointInfo| cp.id + 1),
            cancelled: {
                let shared = Arc::clone(&shared);
                Box::new(move || shared.cancelled())
            },
            stats: Arc::clone(&handle.stats),
            fail: {
                let shared = Arc::clone(&shared);
                Box::new(move |e| shared.fail(e))
            },
        };
        handle.restored = restored;
        handle.coordinator = Some(
            std::thread::Builder::new()
                .name("checkpoint-coordinator".into())
                .spawn(move || coordinator.run())
                .map_err(|e| EngineError::Internal(format!("cannot start a thread: {e}")))?,
        );

        for (name, body) in bodies {
            let thread_shared = Arc::clone(&shared);
            let running = Arc::clone(&handle.running);
            running.fetch_add(1, Ordering::SeqCst);
            let thread_name = name.clone();
            let spawned = std::thread::Builder::new()
                .name(thread_name)
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
                Ok(t) => handle.threads.push(t),
                Err(e) => {
                    handle.running.fetch_sub(1, Ordering::SeqCst);
                    shared.fail(EngineError::Internal(format!("cannot start a thread: {e}")));
                    return Err(EngineError::Internal(format!("cannot start a thread: {e}")));
                }
            }
        }
        Ok(handle)
    }

    /// Starts `graph` and waits for it to finish (bounded jobs).
    pub fn run(graph: JobGraph) -> Result<()> {
        Job::start(graph)?.wait()
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
        let h = self.shared.latency.lock().ok()?;
        let h = &h.0;
        if h.is_empty() {
            return None;
        }
        Some(LatencySummary {
            samples: h.len(),
            p50: Duration::from_micros(h.value_at_quantile(0.5)),
            p99: Duration::from_micros(h.value_at_quantile(0.99)),
            max: Duration::from_micros(h.max()),
        })
    }

    /// The checkpoint this run resumed from, if any.
    pub fn restored_from(&self) -> Option<&CheckpointInfo> {
        self.restored.as_ref()
    }

    /// The last completed checkpoint of this run.
    pub fn last_checkpoint(&self) -> Option<CheckpointStats> {
        self.stats.lock().ok().and_then(|s| *s)
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

/// Name of an operator subtask's state in a checkpoint.
fn state_entry_name(node: NodeId, subtask: usize) -> String {
    format!("state-{node}-{subtask}")
}

/// Name of a source subtask's position in a checkpoint.
fn position_entry_name(node: NodeId, subtask: usize) -> String {
    format!("position-{node}-{subtask}")
}

/// Wraps an operator's error with its name, once.
fn wrap(err: EngineError, task: &TaskInfo) -> EngineError {
    match err {
        EngineError::Operator { .. } | EngineError::Cancelled => err,
        other => EngineError::Operator {
            operator: task.operator_name.clone(),
            subtask: task.subtask,
            source: Box::new(other),
        },
    }
}

/// Sends with periodic looks at the cancel flag.
fn send(tx: &Sender<Message>, msg: Message, shared: &Shared) -> Result<()> {
    let mut msg = msg;
    loop {
        match tx.send_timeout(msg, POLL_INTERVAL) {
            Ok(()) => return Ok(()),
            Err(SendTimeoutError::Timeout(m)) => {
                if shared.cancelled() {
                    return Err(EngineError::Cancelled);
                }
                msg = m;
            }
            // The receiver is gone: it failed or was cancelled.
            Err(SendTimeoutError::Disconnected(_)) => return Err(EngineError::Cancelled),
        }
    }
}

/// One outgoing edge of a subtask.
struct OutEdge {
    exchange: Exchange,
    /// Sender per receiving subtask (`None` where the exchange sends nothing).
    targets: Vec<Option<Sender<Message>>>,
    encoder: Option<KeyEncoder>,
    /// Next receiver for round-robin.
    next: usize,
    max_parallelism: u16,
}

impl OutEdge {
    fn send_batch(&mut self, batch: RecordBatch, shared: &Shared) -> Result<()> {
        match &self.exchange {
            Exchange::Forward => {
                for tx in self.targets.iter().flatten() {
                    send(tx, Message::Batch(batch.clone()), shared)?;
                }
                Ok(())
            }
            Exchange::Broadcast => {
                for tx in self.targets.iter().flatten() {
                    send(tx, Message::Batch(batch.clone()), shared)?;
                }
                Ok(())
            }
            Exchange::RoundRobin => {
                let n = self.targets.len();
                for _ in 0..n {
                    let i = self.next % n;
                    self.next = self.next.wrapping_add(1);
                    if let Some(tx) = &self.targets[i] {
                        return send(tx, Message::Batch(batch), shared);
                    }
                }
                Ok(())
            }
            Exchange::Hash(cols) => {
                if self.encoder.is_none() {
                    self.encoder = Some(KeyEncoder::new(batch.schema_ref(), cols)?);
                }
                let Some(encoder) = &self.encoder else {
                    return Err(EngineError::Internal("key encoder missing".into()));
                };
                let rows = encoder.encode(&batch)?;
                let p = self.targets.len();
                let mut per_target: Vec<Vec<u32>> = vec![Vec::new(); p];
                for (i, row) in rows.iter().enumerate() {
                    let kg = key_group_for_hash(hash_key(row.as_ref()), self.max_parallelism);
                    per_target[subtask_for_key_group(kg, p, self.max_parallelism)].push(i as u32);
                }
                for (t, idx) in per_target.into_iter().enumerate() {
                    if idx.is_empty() {
                        continue;
                    }
                    let part = if idx.len() == batch.num_rows() {
                        batch.clone()
                    } else {
                        arrow::compute::take_record_batch(&batch, &UInt32Array::from(idx))?
                    };
                    if let Some(tx) = &self.targets[t] {
                        send(tx, Message::Batch(part), shared)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn send_control(&self, msg: &Message, shared: &Shared) -> Result<()> {
        for tx in self.targets.iter().flatten() {
            send(tx, msg.clone(), shared)?;
        }
        Ok(())
    }
}

/// The outgoing edges of a chain's last operator.
struct Router {
    edges: Vec<OutEdge>,
    shared: Arc<Shared>,
}

impl Router {
    fn send_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        for e in &mut self.edges {
            e.send_batch(batch.clone(), &shared)?;
        }
        Ok(())
    }

    fn send_control(&self, msg: Message) -> Result<()> {
        for e in &self.edges {
            e.send_control(&msg, &self.shared)?;
        }
        Ok(())
    }
}

/// Opens the state backend of one operator subtask: restored from the
/// checkpoint's directory (`dir`, a RocksDB checkpoint) or bytes (`bytes`,
/// the in-memory backend's), converted when the checkpoint was written by
/// the other kind of backend, or empty.
fn open_state(
    config: &StateConfig,
    work: std::path::PathBuf,
    dir: Option<std::path::PathBuf>,
    bytes: Option<Vec<u8>>,
) -> Result<Box<dyn StateBackend>> {
    let memory = RocksMemory::within(config.memory_budget);
    let state: Box<dyn StateBackend> = match (config.backend, dir, bytes) {
        (StateBackendKind::RocksDb, Some(dir), _) => {
            Box::new(RocksStateBackend::restore(&dir, work, memory)?)
        }
        (StateBackendKind::RocksDb, None, Some(bytes)) => {
            let mut from = MemoryStateBackend::restore(&MemorySnapshot::from_bytes(&bytes)?);
            let mut to = RocksStateBackend::open(work, memory)?;
            copy_all(&mut from, &mut to)?;
            Box::new(to)
        }
        (StateBackendKind::RocksDb, None, None) => Box::new(RocksStateBackend::open(work, memory)?),
        (StateBackendKind::HashMap, Some(dir), _) => {
            let mut from = RocksStateBackend::restore(&dir, work, memory)?;
            let mut to = MemoryStateBackend::new();
            copy_all(&mut from, &mut to)?;
            Box::new(to)
        }
        (StateBackendKind::HashMap, None, Some(bytes)) => Box::new(MemoryStateBackend::restore(
            &MemorySnapshot::from_bytes(&bytes)?,
        )),
        (StateBackendKind::HashMap, None, None) => Box::new(MemoryStateBackend::new()),
    };
    Ok(state)
}

/// One operator of a chain, with what it owns.
struct Slot {
    op: Box<dyn Operator>,
    state: Box<dyn StateBackend>,
    /// Name of this slot's state in a checkpoint.
    name: String,
    metrics: Arc<OperatorMetrics>,
    task: TaskInfo,
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
struct ChainRuntime {
    slots: Vec<Slot>,
    /// Where checkpoints go; `None` without checkpointing.
    store: Option<CheckpointStore>,
    router: Router,
    ack: Sender<Ack>,
    is_source: bool,
    checkpointing: bool,
    /// How often a source sends a latency marker (sources only).
    latency_interval: Option<Duration>,
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

    fn open(&mut self) -> Result<()> {
        self.each_operator(|op, ctx| op.open(ctx))
    }

    /// Feeds a batch to the first operator (input `input`), or to the
    /// router when the chain is only a source.
    fn process(
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

    fn watermark(&mut self, wm: Watermark) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
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
            }
        }
        self.router.send_control(Message::Watermark(wm))
    }

    /// Passes a latency marker on, or, at the end of the job graph, records
    /// how long it took to get here.
    fn latency_marker(&mut self, sent: Instant) -> Result<()> {
        if !self.router.edges.is_empty() {
            return self.router.send_control(Message::LatencyMarker(sent));
        }
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut h) = self.router.shared.latency.lock() {
            h.0.saturating_record(micros.max(1));
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
        self.snapshot_operators(&barrier)?;
        self.router.send_control(Message::Barrier(barrier))?;
        self.acknowledge(
            AckKind::Barrier(barrier.checkpoint_id),
            Some(barrier.checkpoint_id),
            extra,
            alignment,
        )
    }

    /// Reports the snapshot of every operator's state (and `extra`, the
    /// source position) to the coordinator. `id` is the checkpoint's id,
    /// `None` for the end-of-input checkpoint. Without checkpointing there
    /// is nowhere to write state, and only the acknowledgement is sent.
    fn acknowledge(
        &mut self,
        kind: AckKind,
        id: Option<u64>,
        extra: Vec<(String, Vec<u8>)>,
        alignment: Duration,
    ) -> Result<()> {
        let mut entries: Vec<(String, SnapshotData)> = Vec::new();
        if let Some(store) = &self.store {
            for s in &mut self.slots {
                let staging = store.staging_path(id, &s.name);
                let data = s
                    .state
                    .write_snapshot(&staging)
                    .map_err(|e| wrap(e.into(), &s.task))?;
                entries.push((s.name.clone(), data));
            }
        }
        entries.extend(
            extra
                .into_iter()
                .map(|(name, bytes)| (name, SnapshotData::Bytes(bytes))),
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
    fn finish(
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
        while let Some(id) = wait_complete(ctrl, &|| shared.cancelled())? {
            self.checkpoint_complete(id)?;
            if id == Barrier::FINAL_CHECKPOINT {
                break;
            }
        }
        Ok(())
    }

    fn checkpoint_complete(&mut self, id: u64) -> Result<()> {
        self.each_operator(|op, ctx| op.on_checkpoint_complete(id, ctx))
    }

    fn end(&mut self) -> Result<()> {
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
    fn handle_control(
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

/// What one subtask thread runs.
enum SubtaskBody {
    Source {
        /// Where to resume, from the restored checkpoint.
        position: Option<Vec<u8>>,
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
        inputs: Vec<(usize, Receiver<Message>)>,
        chain: ChainRuntime,
        ctrl: Receiver<Control>,
    },
}

impl SubtaskBody {
    fn run(self, shared: &Shared) -> Result<()> {
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

/// The source's position as a checkpoint entry. Without a checkpoint
/// directory nothing is restored from it, so a source that cannot tell its
/// position takes part with an empty one.
fn position_entry(
    source: &mut dyn Source,
    name: &str,
    durable: bool,
    task: &TaskInfo,
) -> Result<Vec<(String, Vec<u8>)>> {
    let position = match source.snapshot_position() {
        Ok(p) => p,
        Err(e) if durable => return Err(wrap(e, task)),
        Err(_) => Vec::new(),
    };
    Ok(vec![(name.to_string(), position)])
}

/// A source subtask's own parts.
struct SourceRun {
    source: Box<dyn Source>,
    position: Option<Vec<u8>>,
    position_name: String,
    strategy: Option<WatermarkStrategy>,
}

fn run_source(
    run: SourceRun,
    task: &TaskInfo,
    metrics: &Arc<OperatorMetrics>,
    mut chain: ChainRuntime,
    ctrl: &Receiver<Control>,
    shared: &Shared,
) -> Result<()> {
    let SourceRun {
        mut source,
        position,
        position_name,
        strategy,
    } = run;
    let splits = source.open(task, metrics).map_err(|e| wrap(e, task))?;
    if let Some(p) = &position {
        source.restore_position(p).map_err(|e| wrap(e, task))?;
    }
    chain.open()?;
    let mut generator = strategy.as_ref().map(|s| {
        WatermarkGenerator::new(
            s.max_out_of_orderness,
            s.idle_timeout,
            &splits,
            Instant::now(),
        )
    });
    let mut last_explicit: Option<EventTime> = None;
    let mut next_marker = chain.latency_interval.map(|i| Instant::now() + i);
    let emit = |chain: &mut ChainRuntime, wm: Watermark| -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            metrics.watermark.set(t);
        }
        chain.watermark(wm)
    };
    loop {
        if shared.cancelled() {
            return Err(EngineError::Cancelled);
        }
        let durable = chain.checkpointing;
        let mut snapshot = || position_entry(&mut *source, &position_name, durable, task);
        if shared.stop.load(Ordering::Relaxed) {
            chain.end()?;
            let extra = snapshot()?;
            return chain.finish(false, extra, ctrl, shared);
        }
        while let Ok(c) = ctrl.try_recv() {
            chain.handle_control(c, &mut snapshot)?;
        }
        if let (Some(at), Some(interval)) = (next_marker, chain.latency_interval) {
            let now = Instant::now();
            if now >= at {
                chain.latency_marker(now)?;
                next_marker = Some(now + interval);
            }
        }
        let polled = source.poll().map_err(|e| wrap(e, task))?;
        match polled {
            SourcePoll::Batch { split, batch } => {
                if let (Some(g), Some(s)) = (generator.as_mut(), strategy.as_ref()) {
                    let column = batch.columns().get(s.time_column).ok_or_else(|| {
                        wrap(
                            EngineError::Plan(format!(
                                "event-time column {} does not exist",
                                s.time_column
                            )),
                            task,
                        )
                    })?;
                    let newest = max_event_time(column).map_err(|e| wrap(e, task))?;
                    g.on_rows(split, newest, Instant::now());
                }
                if batch.num_rows() > 0 {
                    chain.process(0, batch, Some(metrics))?;
                }
                if let Some(wm) = generator.as_mut().and_then(|g| g.poll(Instant::now())) {
                    emit(&mut chain, wm)?;
                }
            }
            SourcePoll::Watermark(t) => {
                if last_explicit.is_none_or(|l| t > l) {
                    last_explicit = Some(t);
                    emit(&mut chain, Watermark::EventTime(t))?;
                }
            }
            SourcePoll::Pending => {
                if let Some(wm) = generator.as_mut().and_then(|g| g.poll(Instant::now())) {
                    emit(&mut chain, wm)?;
                }
                match ctrl.recv_timeout(Duration::from_millis(1)) {
                    Ok(c) => {
                        let mut snapshot =
                            || position_entry(&mut *source, &position_name, durable, task);
                        chain.handle_control(c, &mut snapshot)?
                    }
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
                }
            }
            SourcePoll::SplitFinished(split) => {
                if let Some(g) = generator.as_mut() {
                    g.split_finished(split);
                    if let Some(wm) = g.poll(Instant::now()) {
                        emit(&mut chain, wm)?;
                    }
                }
            }
            SourcePoll::Finished => {
                // A bounded input is complete: everything it opened may fire.
                emit(&mut chain, Watermark::MAX)?;
                chain.end()?;
                let extra = position_entry(&mut *source, &position_name, durable, task)?;
                return chain.finish(true, extra, ctrl, shared);
            }
        }
    }
}

fn run_operator(
    inputs: Vec<(usize, Receiver<Message>)>,
    mut chain: ChainRuntime,
    ctrl: &Receiver<Control>,
    shared: &Shared,
) -> Result<()> {
    chain.open()?;
    let n = inputs.len();
    let mut merger = WatermarkMerger::new(n);
    let mut ended = vec![false; n];
    let mut blocked = vec![false; n];
    // The barrier being aligned and when its first copy arrived.
    let mut pending: Option<(Barrier, Instant)> = None;
    let mut live: Vec<usize> = Vec::with_capacity(n);
    loop {
        if shared.cancelled() {
            return Err(EngineError::Cancelled);
        }
        while let Ok(c) = ctrl.try_recv() {
            chain.handle_control(c, &mut || Ok(Vec::new()))?;
        }
        live.clear();
        let mut select = Select::new();
        for k in 0..n {
            if !ended[k] && !blocked[k] {
                live.push(k);
                select.recv(&inputs[k].1);
            }
        }
        if live.is_empty() {
            return Err(EngineError::Internal(
                "operator subtask has no readable input".into(),
            ));
        }
        let op = match select.select_timeout(POLL_INTERVAL) {
            Ok(op) => op,
            Err(_) => continue,
        };
        let k = live[op.index()];
        let (input, rx) = &inputs[k];
        let msg = match op.recv(rx) {
            Ok(m) => m,
            // The sender ended without End: it failed or was cancelled.
            Err(_) => return Err(EngineError::Cancelled),
        };
        match msg {
            Message::Batch(batch) => chain.process(*input, batch, None)?,
            Message::Watermark(wm) => {
                if let Some(out) = merger.update(k, wm) {
                    chain.watermark(out)?;
                }
            }
            Message::LatencyMarker(sent) => chain.latency_marker(sent)?,
            Message::Barrier(b) => {
                blocked[k] = true;
                pending.get_or_insert((b, Instant::now()));
            }
            Message::End => {
                ended[k] = true;
                if let Some(out) = merger.input_ended(k) {
                    chain.watermark(out)?;
                }
            }
        }
        if let Some((b, since)) = pending {
            if (0..n).all(|k| blocked[k] || ended[k]) {
                chain.barrier(b, Vec::new(), since.elapsed())?;
                pending = None;
                blocked.iter_mut().for_each(|x| *x = false);
            }
        }
        if ended.iter().all(|&e| e) {
            chain.end()?;
            return chain.finish(true, Vec::new(), ctrl, shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use arrow::array::{Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

    use super::*;
    use crate::aggregate::AggregateFunction;
    use crate::expr::Expr;
    use crate::ops::{AggregateCall, WindowAggregateSpec};
    use crate::sink::MemorySinkHandle;
    use crate::source::{ScriptStep, ScriptedSource, SplitId};
    use crate::window::WindowSpec;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    fn batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("valid batch")
    }

    fn sum_by_key_window(out: &MemorySinkHandle) -> Vec<(i64, i64, i64, i64)> {
        let mut rows = Vec::new();
        for b in out.batches() {
            let k = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("k");
            let s = b
                .column(1)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .expect("start");
            let c = b
                .column(3)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("count");
            let v = b
                .column(4)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("sum");
            for i in 0..b.num_rows() {
                rows.push((k.value(i), s.value(i), c.value(i), v.value(i)));
            }
        }
        rows.sort_unstable();
        rows
    }

    fn windowed_job(
        scripts: Vec<Vec<ScriptStep>>,
        par: usize,
        out: &MemorySinkHandle,
    ) -> Result<JobGraph> {
        let mut g = JobGraph::new();
        let src = g.add_source(
            "src",
            scripts.len(),
            ScriptedSource::factory(scripts),
            Some(WatermarkStrategy::bounded(0, Duration::ZERO)),
        );
        let spec = WindowAggregateSpec {
            window: WindowSpec::Tumble { size: 10 },
            time_column: 0,
            key_columns: vec![1],
            aggregates: vec![
                AggregateCall::new(AggregateFunction::Count, vec![], "c"),
                AggregateCall::new(AggregateFunction::Sum, vec![Expr::Column(2)], "s"),
            ],
        };
        let agg = g.add_operator("agg", par, spec.factory(schema())?);
        let sink = g.add_operator("sink", 1, out.factory());
        g.connect(src, agg, Exchange::Hash(vec![1]))?;
        g.connect(agg, sink, Exchange::RoundRobin)?;
        Ok(g)
    }

    #[test]
    fn bounded_job_runs_to_completion_with_hash_exchange() -> Result<()> {
        let split = |s: SplitId, rows: &[(i64, i64, i64)]| ScriptStep::Batch(s, batch(rows));
        let scripts = vec![
            vec![split(0, &[(1, 1, 10), (2, 2, 20)]), split(0, &[(11, 1, 1)])],
            vec![
                split(1, &[(3, 1, 5), (12, 2, 7)]),
                split(1, &[(25, 3, 100)]),
            ],
        ];
        let out = MemorySinkHandle::new();
        Job::run(windowed_job(scripts, 3, &out)?)?;
        assert_eq!(
            sum_by_key_window(&out),
            vec![
                (1, 0, 2, 15),
                (1, 10, 1, 1),
                (2, 0, 1, 20),
                (2, 10, 1, 7),
                (3, 20, 1, 100)
            ]
        );
        Ok(())
    }

    /// Fails on the first batch that holds a value of 13.
    struct Unlucky {
        panic: bool,
    }

    impl Operator for Unlucky {
        fn process_batch(
            &mut self,
            _input: usize,
            batch: RecordBatch,
            _ctx: &mut OperatorContext<'_>,
            out: &mut dyn Collector,
        ) -> Result<()> {
            let v = batch
                .column(2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("v");
            if v.iter().any(|x| x == Some(13)) {
                if self.panic {
                    panic!("thirteen");
                }
                return Err(EngineError::Execution("unlucky value 13".into()));
            }
            out.collect(batch)
        }
    }

    /// An unbounded source of one-row batches, counting what it emitted.
    struct Endless {
        emitted: Arc<AtomicU64>,
        value: i64,
    }

    impl Source for Endless {
        fn open(
            &mut self,
            _task: &TaskInfo,
            _metrics: &Arc<OperatorMetrics>,
        ) -> Result<Vec<SplitId>> {
            Ok(vec![0])
        }
        fn poll(&mut self) -> Result<SourcePoll> {
            self.emitted.fetch_add(1, Ordering::SeqCst);
            Ok(SourcePoll::Batch {
                split: 0,
                batch: batch(&[(1, 1, self.value)]),
            })
        }
    }

    fn endless(emitted: &Arc<AtomicU64>, value: i64) -> crate::source::SourceFactory {
        let emitted = Arc::clone(emitted);
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(Endless {
                emitted: Arc::clone(&emitted),
                value,
            }) as Box<dyn Source>)
        })
    }

    #[test]
    fn failing_operator_stops_the_job_with_its_error() -> Result<()> {
        for panic in [false, true] {
            // Unbounded sources on other subtasks must stop too, not hang.
            let emitted = Arc::new(AtomicU64::new(0));
            let mut g = JobGraph::new();
            let src = g.add_source("src", 2, endless(&emitted, 13), None);
            let op = g.add_operator(
                "unlucky",
                2,
                Arc::new(move |_t: &TaskInfo| Ok(Box::new(Unlucky { panic }) as Box<dyn Operator>)),
            );
            let sink = g.add_operator("sink", 1, MemorySinkHandle::new().factory());
            g.connect(src, op, Exchange::RoundRobin)?;
            g.connect(op, sink, Exchange::RoundRobin)?;
            let err = Job::run(g)
                .err()
                .ok_or_else(|| EngineError::Internal("job should fail".into()))?;
            let text = err.to_string();
            if panic {
                assert!(text.contains("panicked: thirteen"), "{text}");
            } else {
                assert!(
                    text.contains("operator 'unlucky'") && text.contains("unlucky value 13"),
                    "{text}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn stop_ends_an_unbounded_job_and_cancel_reports_cancelled() -> Result<()> {
        let emitted = Arc::new(AtomicU64::new(0));
        let out = MemorySinkHandle::new();
        let mut g = JobGraph::new();
        let src = g.add_source("src", 1, endless(&emitted, 1), None);
        let sink = g.add_operator("sink", 1, out.factory());
        g.connect(src, sink, Exchange::Forward)?;
        let job = Job::start(g.clone())?;
        while out.num_rows() < 10 {
            std::thread::sleep(Duration::from_millis(1));
        }
        job.stop();
        job.wait()?;
        assert!(out.num_rows() >= 10);

        let job = Job::start(g)?;
        job.cancel();
        assert!(matches!(job.wait(), Err(EngineError::Cancelled)));
        Ok(())
    }

    /// A sink that blocks until released, to test backpressure.
    struct Gate(Arc<AtomicBool>);

    impl Operator for Gate {
        fn process_batch(
            &mut self,
            _input: usize,
            _batch: RecordBatch,
            _ctx: &mut OperatorContext<'_>,
            _out: &mut dyn Collector,
        ) -> Result<()> {
            while !self.0.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        }
    }

    #[test]
    fn a_blocked_sink_backpressures_the_source() -> Result<()> {
        let emitted = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicBool::new(false));
        let mut g = JobGraph::new();
        g.channel_capacity = 2;
        let src = g.add_source("src", 1, endless(&emitted, 1), None);
        let gate = Arc::clone(&open);
        let sink = g.add_operator(
            "sink",
            1,
            Arc::new(move |_t: &TaskInfo| {
                Ok(Box::new(Gate(Arc::clone(&gate))) as Box<dyn Operator>)
            }),
        );
        g.connect(src, sink, Exchange::RoundRobin)?;
        let job = Job::start(g)?;
        std::thread::sleep(Duration::from_millis(300));
        // One batch held by the sink, two in the channel, one being sent.
        let seen = emitted.load(Ordering::SeqCst);
        assert!(
            seen <= 4,
            "source ran ahead of a blocked sink: {seen} batches"
        );
        open.store(true, Ordering::SeqCst);
        while emitted.load(Ordering::SeqCst) < seen + 100 {
            std::thread::sleep(Duration::from_millis(1));
        }
        job.stop();
        job.wait()
    }

    /// A sink that takes `delay` per batch.
    struct Slow(Duration);

    impl Operator for Slow {
        fn process_batch(
            &mut self,
            _input: usize,
            _batch: RecordBatch,
            _ctx: &mut OperatorContext<'_>,
            _out: &mut dyn Collector,
        ) -> Result<()> {
            std::thread::sleep(self.0);
            Ok(())
        }
    }

    fn slow_sink_job(latency_interval: Option<Duration>) -> Result<JobHandle> {
        let emitted = Arc::new(AtomicU64::new(0));
        let mut g = JobGraph::new();
        g.channel_capacity = 4;
        g.latency_interval = latency_interval;
        let src = g.add_source("src", 1, endless(&emitted, 1), None);
        let sink = g.add_operator(
            "sink",
            1,
            Arc::new(|_t: &TaskInfo| {
                Ok(Box::new(Slow(Duration::from_millis(5))) as Box<dyn Operator>)
            }),
        );
        g.connect(src, sink, Exchange::RoundRobin)?;
        Job::start(g)
    }

    #[test]
    fn latency_markers_wait_behind_the_rows_ahead_of_them() -> Result<()> {
        let job = slow_sink_job(Some(Duration::from_millis(1)))?;
        let give_up = Instant::now() + Duration::from_secs(60);
        let summary = loop {
            match job.latency() {
                Some(l) if l.samples >= 5 => break l,
                _ if Instant::now() > give_up => panic!("fewer than 5 markers reached the sink"),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        job.stop();
        job.wait()?;
        // The source is backpressured by a sink that sleeps 5 ms a batch,
        // so each marker queues behind at least one such batch.
        assert!(summary.p50 >= Duration::from_millis(5), "{summary:?}");
        assert!(summary.p50 <= summary.p99 && summary.p99 <= summary.max);

        // Without an interval no marker is sent.
        let job = slow_sink_job(None)?;
        while job.progress().rows_written < 10 {
            assert!(Instant::now() < give_up, "the second job wrote nothing");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(job.latency(), None);
        assert!(!job.progress().to_string().contains("latency"));
        job.stop();
        job.wait()
    }

    /// Counts barriers and checks that no batch of a checkpoint's next epoch
    /// is processed before the barrier is aligned.
    struct BarrierProbe {
        barriers: Arc<AtomicU64>,
    }

    impl Operator for BarrierProbe {
        fn process_batch(
            &mut self,
            _input: usize,
            batch: RecordBatch,
            _ctx: &mut OperatorContext<'_>,
            out: &mut dyn Collector,
        ) -> Result<()> {
            out.collect(batch)
        }
        fn on_barrier(&mut self, _b: &Barrier, _ctx: &mut OperatorContext<'_>) -> Result<()> {
            self.barriers.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn checkpoints_align_barriers_across_inputs() -> Result<()> {
        let emitted = Arc::new(AtomicU64::new(0));
        let barriers = Arc::new(AtomicU64::new(0));
        let mut g = JobGraph::new();
        let a = g.add_source("a", 2, endless(&emitted, 1), None);
        let b = g.add_source("b", 1, endless(&emitted, 2), None);
        let probe_barriers = Arc::clone(&barriers);
        let union = g.add_operator(
            "union",
            2,
            Arc::new(move |_t: &TaskInfo| {
                Ok(Box::new(BarrierProbe {
                    barriers: Arc::clone(&probe_barriers),
                }) as Box<dyn Operator>)
            }),
        );
        let sink = g.add_operator("sink", 1, crate::sink::BlackholeSink::factory());
        g.connect(a, union, Exchange::RoundRobin)?;
        g.connect(b, union, Exchange::Broadcast)?;
        g.connect(union, sink, Exchange::RoundRobin)?;
        let job = Job::start(g)?;
        assert_eq!(job.checkpoint(Duration::from_secs(30))?, 1);
        assert_eq!(
            barriers.load(Ordering::SeqCst),
            2,
            "each union subtask snapshots once"
        );
        assert_eq!(job.checkpoint(Duration::from_secs(30))?, 2);
        let stats = job
            .last_checkpoint()
            .ok_or_else(|| EngineError::Internal("no stats".into()))?;
        assert_eq!((stats.id, stats.completed), (2, 2));
        assert!(job.progress().to_string().contains("checkpoint 2 ("));
        assert_eq!(barriers.load(Ordering::SeqCst), 4);
        job.stop();
        job.wait()
    }

    #[test]
    fn an_idle_split_stops_holding_back_the_watermark() -> Result<()> {
        // Split 1 goes quiet at time 5 while split 0 moves on to 100. After
        // the idle timeout the watermark follows split 0 alone, window
        // [0, 10) fires, and a row for it arriving later on split 1 is late.
        let run = |idle: Option<Duration>| -> Result<(Vec<(i64, i64, i64, i64)>, u64)> {
            // Split 0 keeps producing every ~25 ms for 400 ms; split 1 is
            // silent for that long, then sends a row for window [0, 10).
            let mut script = vec![
                ScriptStep::Batch(0, batch(&[(1, 1, 1), (5, 1, 1)])),
                ScriptStep::Batch(1, batch(&[(2, 1, 1), (5, 1, 1)])),
            ];
            for t in 100..116 {
                script.push(ScriptStep::Batch(0, batch(&[(t, 1, 1)])));
                script.push(ScriptStep::Pause(25));
            }
            script.push(ScriptStep::Batch(1, batch(&[(3, 1, 1)])));
            let out = MemorySinkHandle::new();
            let mut g = JobGraph::new();
            let mut strategy = WatermarkStrategy::bounded(0, Duration::ZERO);
            strategy.idle_timeout = idle;
            let src = g.add_source(
                "src",
                1,
                ScriptedSource::factory(vec![script]),
                Some(strategy),
            );
            let spec = WindowAggregateSpec {
                window: WindowSpec::Tumble { size: 10 },
                time_column: 0,
                key_columns: vec![1],
                aggregates: vec![
                    AggregateCall::new(AggregateFunction::Count, vec![], "c"),
                    AggregateCall::new(AggregateFunction::Sum, vec![Expr::Column(2)], "s"),
                ],
            };
            let agg = g.add_operator("agg", 1, spec.factory(schema())?);
            let sink = g.add_operator("sink", 1, out.factory());
            g.connect(src, agg, Exchange::Forward)?;
            g.connect(agg, sink, Exchange::Forward)?;
            let job = Job::start(g)?;
            let metrics = job.metrics().to_vec();
            job.wait()?;
            let late = metrics
                .iter()
                .map(|m| m.metrics.late_rows_dropped.load(Ordering::Relaxed))
                .sum();
            Ok((sum_by_key_window(&out), late))
        };
        let (rows, late) = run(Some(Duration::from_millis(150)))?;
        assert_eq!(rows, vec![(1, 0, 4, 4), (1, 100, 10, 10), (1, 110, 6, 6)]);
        assert_eq!(late, 1);
        // Without the timeout split 1 holds the watermark at 4 and the row counts.
        let (rows, late) = run(None)?;
        assert_eq!(rows, vec![(1, 0, 5, 5), (1, 100, 10, 10), (1, 110, 6, 6)]);
        assert_eq!(late, 0);
        Ok(())
    }
}
