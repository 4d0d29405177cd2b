//! What the web console and `/metrics` show of a job: its operators with
//! each subtask's counters, the edges between them, and its recent
//! checkpoints ([`JobView`]). Taken from a running job's handle; a job
//! that has ended keeps the view taken as it ended.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use runnel_engine::runtime::{CheckpointStats, JobHandle};
use runnel_sql::session::Session;
use serde::Serialize;

use crate::jobs::JobManager;

/// One job as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// Its status (`RUNNING`, `FINISHED`, `FAILED: ...`).
    pub status: String,
    /// `SELECT`, `INSERT`, `MATERIALIZED VIEW` or `STATEMENT SET`.
    pub kind: String,
    /// What it writes.
    pub target: String,
    /// Its statement.
    pub statement: String,
    /// Who started it.
    pub owner: String,
    /// True while its threads run.
    pub running: bool,
    /// Milliseconds since it was planned.
    pub uptime_ms: u64,
    /// Rows its sources read.
    pub rows_read: u64,
    /// Rows its sinks received.
    pub rows_written: u64,
    /// Rows dropped as late.
    pub late_rows: u64,
    /// Records its sources could not decode.
    pub malformed: u64,
    /// Its lowest sink watermark, ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Its graph and checkpoints (`None` before it ran).
    pub graph: Option<Arc<GraphView>>,
}

/// A job's operators, edges and checkpoints.
#[derive(Debug, Clone, Serialize)]
pub struct GraphView {
    /// Its operators, by node id.
    pub operators: Vec<OperatorView>,
    /// The edges between them.
    pub edges: Vec<EdgeView>,
    /// Its latest checkpoints, oldest first.
    pub checkpoints: Vec<CheckpointView>,
}

/// One operator (a node of the job graph).
#[derive(Debug, Clone, Serialize)]
pub struct OperatorView {
    /// Its node id.
    pub id: usize,
    /// Its name, as `EXPLAIN` shows it.
    pub name: String,
    /// Its subtasks.
    pub parallelism: usize,
    /// True for a source.
    pub is_source: bool,
    /// True for a node without outputs (a sink).
    pub is_sink: bool,
    /// The node id of the first operator of its chain: operators of one
    /// chain run on one thread per subtask and share its time and bytes.
    pub chain: usize,
    /// Each subtask's counters.
    pub subtasks: Vec<SubtaskView>,
}

/// The counters of one operator subtask. Times and bytes are its
/// thread's (shared by the operators chained with it).
#[derive(Debug, Clone, Serialize)]
pub struct SubtaskView {
    /// Its index.
    pub subtask: usize,
    /// Rows in.
    pub rows_in: u64,
    /// Rows out.
    pub rows_out: u64,
    /// Arrow bytes received from other subtasks.
    pub bytes_in: u64,
    /// Arrow bytes sent to other subtasks.
    pub bytes_out: u64,
    /// Milliseconds its thread worked.
    pub busy_ms: f64,
    /// Milliseconds its thread waited for room downstream.
    pub backpressured_ms: f64,
    /// Milliseconds its thread waited for input.
    pub idle_ms: f64,
    /// Its watermark, ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Rows it dropped as late.
    pub late_rows: u64,
    /// Records it could not decode (sources).
    pub malformed: u64,
    /// Completed checkpoints it was told of (a sink commits then).
    pub commits: u64,
    /// Milliseconds those calls took in all.
    pub commit_ms_total: f64,
    /// Milliseconds the last one took.
    pub last_commit_ms: f64,
    /// For a Kafka source: records it is behind each partition's end.
    pub partition_lag: Vec<PartitionLag>,
}

/// How far a source subtask is behind the end of one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Records not read yet.
    pub records: i64,
}

/// An edge of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeView {
    /// Sending node.
    pub from: usize,
    /// Receiving node.
    pub to: usize,
    /// How rows are routed (`FORWARD`, `HASH[0]`, ...).
    pub exchange: String,
}

/// One completed checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointView {
    /// Its id.
    pub id: u64,
    /// When it completed, ms since the epoch.
    pub completed_at_ms: i64,
    /// Milliseconds from its barriers to its manifest.
    pub duration_ms: f64,
    /// Bytes it wrote.
    pub bytes: u64,
    /// Its whole size, shared files included (the job's state).
    pub size: u64,
    /// The longest barrier alignment of any subtask, ms.
    pub alignment_ms: f64,
}

impl From<&CheckpointStats> for CheckpointView {
    fn from(c: &CheckpointStats) -> Self {
        Self {
            id: c.id,
            completed_at_ms: c.completed_at_ms,
            duration_ms: c.duration.as_secs_f64() * 1e3,
            bytes: c.bytes,
            size: c.size,
            alignment_ms: c.alignment.as_secs_f64() * 1e3,
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The graph of a running job as it is now.
pub fn capture(h: &JobHandle) -> GraphView {
    let mut operators: Vec<OperatorView> = Vec::new();
    // The first node seen on each thread's counters names its chain.
    let mut chain_of: HashMap<*const runnel_engine::runtime::TaskMetrics, usize> = HashMap::new();
    for m in h.metrics() {
        let chain = *chain_of.entry(Arc::as_ptr(&m.task)).or_insert(m.node);
        let times = m.task.times();
        let o = &m.metrics;
        let wm = o.watermark.get();
        let sub = SubtaskView {
            subtask: m.subtask,
            rows_in: o.rows_in.load(Ordering::Relaxed),
            rows_out: o.rows_out.load(Ordering::Relaxed),
            bytes_in: m.task.bytes_in.load(Ordering::Relaxed),
            bytes_out: m.task.bytes_out.load(Ordering::Relaxed),
            busy_ms: ms(times.busy),
            backpressured_ms: ms(times.backpressured),
            idle_ms: ms(times.idle),
            watermark_ms: (wm != i64::MIN).then_some(wm),
            late_rows: o.late_rows_dropped.load(Ordering::Relaxed),
            malformed: o.malformed_records.load(Ordering::Relaxed),
            commits: o.commits.load(Ordering::Relaxed),
            commit_ms_total: o.commit_nanos.load(Ordering::Relaxed) as f64 / 1e6,
            last_commit_ms: o.last_commit_nanos.load(Ordering::Relaxed) as f64 / 1e6,
            partition_lag: o
                .partition_lag
                .lock()
                .map(|l| {
                    l.iter()
                        .map(|(topic, partition, records)| PartitionLag {
                            topic: topic.clone(),
                            partition: *partition,
                            records: *records,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        match operators.iter_mut().find(|op| op.id == m.node) {
            Some(op) => {
                op.parallelism += 1;
                op.subtasks.push(sub);
            }
            None => operators.push(OperatorView {
                id: m.node,
                name: m.name.clone(),
                parallelism: 1,
                is_source: m.is_source,
                is_sink: m.is_sink,
                chain,
                subtasks: vec![sub],
            }),
        }
    }
    operators.sort_by_key(|o| o.id);
    for o in &mut operators {
        o.subtasks.sort_by_key(|s| s.subtask);
    }
    GraphView {
        operators,
        edges: h
            .topology()
            .iter()
            .map(|(from, to, exchange)| EdgeView {
                from: *from,
                to: *to,
                exchange: exchange.clone(),
            })
            .collect(),
        checkpoints: h
            .checkpoint_history()
            .iter()
            .map(CheckpointView::from)
            .collect(),
    }
}

/// The jobs `user` may see (their own; every job for an administrator),
/// or every job for `None`, in the order they were planned.
pub(crate) fn views(jobs: &JobManager, session: &Session, user: Option<&str>) -> Vec<JobView> {
    let admin = user.is_none_or(|u| {
        let who = session.principal_of(u);
        session.catalog().grants().is_admin(&who)
    });
    views_with(jobs, &|id| {
        let owner = session.job_owner(id);
        (admin || owner == user).then(|| owner.unwrap_or_default().to_string())
    })
}

/// Every job of `jobs` for which `owner` names an owner (`None`: not
/// shown), in the order they were planned.
pub(crate) fn views_with(
    jobs: &JobManager,
    owner: &dyn Fn(&str) -> Option<String>,
) -> Vec<JobView> {
    let mut out: Vec<JobView> = jobs
        .iter()
        .filter_map(|(id, j)| {
            let owner = owner(id)?;
            let p = j.progress();
            let (kind, target) = crate::system::kind_and_target(j.kind());
            Some(JobView {
                id: id.clone(),
                status: j.status().to_string(),
                kind: kind.to_string(),
                target,
                statement: j.statement().to_string(),
                owner,
                running: j.is_running(),
                uptime_ms: u64::try_from(j.age().as_millis()).unwrap_or(u64::MAX),
                rows_read: p.map_or(0, |p| p.rows_read),
                rows_written: p.map_or(0, |p| p.rows_written),
                late_rows: p.map_or(0, |p| p.late_rows),
                malformed: p.map_or(0, |p| p.malformed),
                watermark_ms: p.and_then(|p| p.watermark),
                graph: j.graph(),
            })
        })
        .collect();
    out.sort_by_key(|v| crate::jobs::job_number(&v.id));
    out
}
