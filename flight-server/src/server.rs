//! The server's core, apart from the network: one shared SQL session, the
//! jobs it started, materialized views, system tables, and the statement
//! log that lets the catalog and the jobs survive a restart.
//!
//! Every statement that changes the catalog or starts a long-running job
//! (`CREATE`, `DROP`, `SET`, `INSERT INTO`, `CREATE MATERIALIZED VIEW`,
//! `STOP JOB`) is appended to `<data_dir>/statements.jsonl` once it has
//! succeeded. On start the server replays the log in order: each job gets
//! the id it had, so it finds its checkpoints in `<data_dir>/checkpoints/
//! <job id>` and resumes from the latest one; jobs that were stopped, or
//! whose view was dropped, are not started again. Ad-hoc queries are not
//! logged and take no checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use runnel_engine::connector::{ConnectorRegistry, TableDescriptor};
use runnel_engine::graph::JobGraph;
use runnel_engine::runtime::{Job, JobHandle, Progress};
use runnel_engine::types::{row_kinds, ROW_KIND_COLUMN};
use runnel_engine::EngineError;
use runnel_sql::bind_expr::flink_type_name;
use runnel_sql::catalog::{
    Entry, TableEntry, TableKind, CATALOG_NAME, PUBLIC_SCHEMA, SYSTEM_SCHEMA,
};
use runnel_sql::error::SqlError;
use runnel_sql::finish::Finish;
use runnel_sql::parser::{parse_sql, Statement};
use runnel_sql::planner::{Plan, SinkTarget};
use runnel_sql::session::{JobKind, Outcome, QueryShape, Session};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::ServerConfig;
use crate::tables::{fold_changelog, SystemConnector, ViewConnector, Views, SYSTEM_CONNECTOR};

/// Why a request failed, sorted the way clients need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// A wrong statement: message with line and column.
    InvalidArgument(String),
    /// An unknown table, view, job, ticket or prepared statement.
    NotFound(String),
    /// The query was cancelled (its client went away, or STOP JOB).
    Cancelled(String),
    /// Something failed while running.
    Internal(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::InvalidArgument(m)
            | ServerError::NotFound(m)
            | ServerError::Cancelled(m)
            | ServerError::Internal(m) => f.write_str(m),
        }
    }
}

impl From<SqlError> for ServerError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::NotFound { .. } => ServerError::NotFound(e.to_string()),
            SqlError::Syntax { .. } | SqlError::Plan { .. } => {
                ServerError::InvalidArgument(e.to_string())
            }
            SqlError::Engine(EngineError::Plan(m)) => ServerError::InvalidArgument(m),
            SqlError::Engine(e) => ServerError::Internal(e.to_string()),
        }
    }
}

impl From<EngineError> for ServerError {
    fn from(e: EngineError) -> Self {
        ServerError::Internal(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for ServerError {
    fn from(e: arrow::error::ArrowError) -> Self {
        ServerError::Internal(e.to_string())
    }
}

/// Result alias of this module.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// What executing a statement gave.
pub enum Executed {
    /// A finished result (DDL message, job id, SHOW, DESCRIBE, EXPLAIN).
    Batch(RecordBatch),
    /// A planned SELECT, started when its rows are fetched.
    Query(Box<QueryRun>),
}

/// A SELECT waiting to be fetched.
pub struct QueryRun {
    /// Its job id.
    pub job_id: String,
    /// The schema of the stream the client receives.
    pub schema: SchemaRef,
    /// True when it ends by itself (then the result is complete, sorted
    /// and limited; otherwise it is a subscription).
    pub bounded: bool,
    updating: bool,
    finish: Option<Finish>,
    graph: Option<JobGraph>,
    rx: mpsc::Receiver<RecordBatch>,
    /// The query's own columns (without `op`).
    columns: SchemaRef,
}

/// One job the server knows.
struct JobEntry {
    statement: String,
    kind: JobKind,
    status: Arc<Mutex<String>>,
    handle: Option<JobHandle>,
    /// Counters when the job ended (`Some` once it has ended).
    last: Option<Progress>,
    cancelled: bool,
    /// When the job was planned.
    created: Instant,
}

/// One line of the statement log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct LogEntry {
    /// The statement.
    sql: String,
    /// The job it started, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job: Option<String>,
    /// Jobs it ended (STOP JOB, DROP VIEW of a materialized view).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ends: Vec<String>,
}

struct Inner {
    session: Session,
    jobs: BTreeMap<String, JobEntry>,
}

/// The Flight SQL server's state.
pub struct Server {
    config: ServerConfig,
    inner: Mutex<Inner>,
    views: Views,
    /// Replaying the log: nothing is logged again.
    replaying: AtomicBool,
    stopped: AtomicBool,
}

/// The channel capacity between a query's sink and its client stream.
const QUERY_CHANNEL: usize = 16;

impl Server {
    /// Opens the data directory, replays its statement log and starts the
    /// jobs it names.
    pub fn open(config: ServerConfig) -> Result<Arc<Server>, String> {
        std::fs::create_dir_all(config.data_dir.join("checkpoints")).map_err(|e| {
            format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let views = Views::default();
        let server = Arc::new_cyclic(|weak: &Weak<Server>| {
            let mut registry: ConnectorRegistry = runnel_connectors::default_registry();
            registry.register(Arc::new(ViewConnector::new(views.clone())));
            let w = weak.clone();
            registry.register(Arc::new(SystemConnector::new(Arc::new(
                move |name: &str| {
                    let server = w.upgrade().ok_or(EngineError::Cancelled)?;
                    server
                        .system_rows(name)
                        .map_err(|e| EngineError::Execution(e.to_string()))
                },
            ))));
            let mut session = Session::new(registry);
            for (k, v) in [
                (
                    "state.checkpoints.dir",
                    config.data_dir.join("checkpoints").display().to_string(),
                ),
                (
                    "execution.checkpointing.interval",
                    format!("{} ms", config.checkpoint_interval.as_millis()),
                ),
                ("parallelism", config.parallelism.to_string()),
            ] {
                let sql = format!("SET '{k}' = '{}'", v.replace('\'', "''"));
                if let Ok(stmts) = parse_sql(&sql) {
                    let _ = session.execute(&stmts[0], &sql, &|_: &Plan| unreachable_sink());
                }
            }
            for (name, schema) in system_tables() {
                let entry = TableEntry {
                    kind: TableKind::System,
                    descriptor: TableDescriptor {
                        name: format!("{SYSTEM_SCHEMA}.{name}"),
                        schema,
                        options: [
                            ("connector".to_string(), SYSTEM_CONNECTOR.to_string()),
                            ("system.table".to_string(), name.to_string()),
                        ]
                        .into_iter()
                        .collect(),
                        watermark: None,
                        primary_key: vec![],
                        partition_keys: vec![],
                    },
                    proctime: vec![],
                };
                let _ = session
                    .catalog_mut()
                    .insert_table(&format!("{SYSTEM_SCHEMA}.{name}"), entry);
            }
            Server {
                config,
                inner: Mutex::new(Inner {
                    session,
                    jobs: BTreeMap::new(),
                }),
                views,
                replaying: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
            }
        });
        server.replay()?;
        let weak = Arc::downgrade(&server);
        std::thread::Builder::new()
            .name("runnel-job-monitor".into())
            .spawn(move || monitor(weak))
            .map_err(|e| format!("cannot start the job monitor: {e}"))?;
        Ok(server)
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| ServerError::Internal("the server's state lock is poisoned".into()))
    }

    fn log_path(&self) -> PathBuf {
        self.config.data_dir.join("statements.jsonl")
    }

    fn next_job_path(&self) -> PathBuf {
        self.config.data_dir.join("next-job")
    }

    fn append_log(&self, entry: &LogEntry) -> Result<()> {
        if self.replaying.load(Ordering::SeqCst) {
            return Ok(());
        }
        let line = serde_json::to_string(entry)
            .map_err(|e| ServerError::Internal(format!("cannot encode the log entry: {e}")))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .and_then(|mut f| {
                writeln!(f, "{line}")?;
                Ok(f)
            })
            .map_err(|e| ServerError::Internal(format!("cannot write the statement log: {e}")))?;
        f.flush()
            .and_then(|_| f.sync_data())
            .map_err(|e| ServerError::Internal(format!("cannot sync the statement log: {e}")))
    }

    /// Replays the statement log of the data directory.
    fn replay(&self) -> Result<(), String> {
        let path = self.log_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LogEntry>(line) {
                Ok(e) => entries.push(e),
                // A torn last line (a crash while appending) is dropped: the
                // statement had not been acknowledged.
                Err(_) if i + 1 == text.lines().count() => {}
                Err(e) => return Err(format!("{}:{}: {e}", path.display(), i + 1)),
            }
        }
        if !text.is_empty() && !text.ends_with('\n') {
            // Cut the torn line off, or the next append would glue onto it.
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(keep as u64))
                .map_err(|e| format!("cannot repair {}: {e}", path.display()))?;
        }
        let ended: BTreeSet<String> = entries.iter().flat_map(|e| e.ends.clone()).collect();
        let logged_max = entries
            .iter()
            .filter_map(|e| e.job.as_deref().and_then(job_number))
            .max()
            .unwrap_or(0);
        self.replaying.store(true, Ordering::SeqCst);
        for e in &entries {
            if let Some(n) = e.job.as_deref().and_then(job_number) {
                if let Ok(mut inner) = self.lock() {
                    inner.session.set_next_job_number(n);
                }
            }
            // A statement that no longer runs (its file was deleted, say)
            // is skipped rather than keeping the whole server down; the
            // ones that depend on it fail and are skipped in turn.
            if let Err(err) = self.execute_inner(&e.sql, &ended) {
                eprintln!(
                    "runnel: skipping a logged statement that no longer runs: {err}\n  statement: {}",
                    e.sql
                );
            }
        }
        self.replaying.store(false, Ordering::SeqCst);
        let recorded = std::fs::read_to_string(self.next_job_path())
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(1);
        if let Ok(mut inner) = self.lock() {
            // Past every logged job, even one whose statement was skipped,
            // so that no new job takes an old job's checkpoints.
            let n = inner
                .session
                .next_job_number()
                .max(recorded)
                .max(logged_max + 1);
            inner.session.set_next_job_number(n);
        }
        if !entries.is_empty() {
            eprintln!(
                "runnel: replayed {} statement(s) from {}",
                entries.len(),
                path.display()
            );
        }
        Ok(())
    }

    /// Executes the statements of `sql`; the result of the last one is
    /// returned.
    pub fn execute(&self, sql: &str) -> Result<Executed> {
        self.execute_inner(sql, &BTreeSet::new())
    }

    fn execute_inner(&self, sql: &str, ended: &BTreeSet<String>) -> Result<Executed> {
        let stmts = parse_sql(sql)?;
        if stmts.is_empty() {
            return Err(ServerError::InvalidArgument(
                "the statement is empty".into(),
            ));
        }
        let mut last = None;
        for (i, stmt) in stmts.iter().enumerate() {
            let text = crate::cli::statement_text(sql, &stmts, i);
            last = Some(self.execute_one(stmt, text, ended)?);
        }
        last.ok_or_else(|| ServerError::Internal("no statement ran".into()))
    }

    fn execute_one(
        &self,
        stmt: &runnel_sql::parser::Located,
        text: &str,
        ended: &BTreeSet<String>,
    ) -> Result<Executed> {
        let (tx, rx) = mpsc::channel::<RecordBatch>(QUERY_CHANNEL);
        let sink = move |_plan: &Plan| SinkTarget::Operator {
            name: "sink: client".to_string(),
            factory: crate::sinks::channel_sink(tx.clone()),
            parallelism: 1,
        };
        let mut inner = self.lock()?;
        let outcome = inner.session.execute(stmt, text, &sink)?;
        match outcome {
            Outcome::Message(m) => {
                let mut ends = Vec::new();
                if let Statement::Drop { names, .. } = &stmt.statement {
                    for n in names {
                        let key = runnel_sql::catalog::key_of(n);
                        for (id, job) in inner.jobs.iter_mut() {
                            if job.kind == JobKind::MaterializedView(key.clone()) {
                                if let Some(h) = &job.handle {
                                    h.cancel();
                                    job.cancelled = true;
                                }
                                ends.push(id.clone());
                            }
                        }
                        self.views.remove(&key);
                    }
                }
                if matches!(
                    stmt.statement,
                    Statement::CreateTable(_)
                        | Statement::CreateView { .. }
                        | Statement::Drop { .. }
                        | Statement::Set { .. }
                ) {
                    self.append_log(&LogEntry {
                        sql: text.to_string(),
                        job: None,
                        ends,
                    })?;
                }
                Ok(Executed::Batch(one_column("result", &m)?))
            }
            Outcome::Rows(b) => Ok(Executed::Batch(b)),
            Outcome::Explain(t) => Ok(Executed::Batch(one_column("plan", &t)?)),
            Outcome::StopJob { id, savepoint } => {
                let job = inner.jobs.get_mut(&id).ok_or_else(|| {
                    ServerError::NotFound(format!("job '{id}' is not running on this server"))
                })?;
                let message = match &job.handle {
                    Some(h) => {
                        h.stop();
                        set(&job.status, "STOPPING");
                        if savepoint {
                            format!("stopping {id}; it takes a savepoint as it stops")
                        } else {
                            format!("stopping {id}")
                        }
                    }
                    None => format!("{id} is not running"),
                };
                self.append_log(&LogEntry {
                    sql: text.to_string(),
                    job: None,
                    ends: vec![id],
                })?;
                Ok(Executed::Batch(one_column("result", &message)?))
            }
            Outcome::Job(mut job) => {
                let id = job.id.clone();
                if job.kind == JobKind::Select {
                    // Ad-hoc queries are not resumed after a restart.
                    job.graph.checkpointing = None;
                    let schema = if !job.bounded && job.updating {
                        with_op(&job.schema)
                    } else {
                        Arc::clone(&job.schema)
                    };
                    let schema = crate::metadata::annotate(&schema, None);
                    inner.jobs.insert(
                        id.clone(),
                        JobEntry {
                            statement: job.statement.clone(),
                            kind: JobKind::Select,
                            status: Arc::clone(&job.status),
                            handle: None,
                            last: None,
                            cancelled: false,
                            created: Instant::now(),
                        },
                    );
                    return Ok(Executed::Query(Box::new(QueryRun {
                        job_id: id,
                        schema,
                        bounded: job.bounded,
                        updating: job.updating,
                        finish: job.finish,
                        graph: Some(job.graph),
                        rx,
                        columns: Arc::clone(&job.schema),
                    })));
                }
                let handle = if ended.contains(&id) {
                    set(&job.status, "STOPPED");
                    None
                } else {
                    let h = match Job::start(job.graph) {
                        Ok(h) => h,
                        Err(e) if self.replaying.load(Ordering::SeqCst) => {
                            // Keep the catalog entry and show why the job
                            // is not running (say, a checkpoint of another
                            // parallelism), rather than losing it silently.
                            set(&job.status, &format!("FAILED: {e}"));
                            eprintln!("runnel: {id} cannot resume: {e}");
                            inner.jobs.insert(
                                id.clone(),
                                JobEntry {
                                    statement: job.statement,
                                    kind: job.kind,
                                    status: job.status,
                                    handle: None,
                                    last: None,
                                    cancelled: false,
                                    created: Instant::now(),
                                },
                            );
                            return Ok(Executed::Batch(one_column("job_id", &id)?));
                        }
                        Err(e) => {
                            // Nothing was logged: take the view back out.
                            if let JobKind::MaterializedView(v) = &job.kind {
                                inner.session.catalog_mut().remove(v);
                                self.views.remove(v);
                            }
                            return Err(e.into());
                        }
                    };
                    set(&job.status, "RUNNING");
                    if let Some(cp) = h.restored_from() {
                        eprintln!(
                            "runnel: {id} resumes from checkpoint {} in {}",
                            cp.id,
                            cp.dir.display()
                        );
                    }
                    Some(h)
                };
                self.append_log(&LogEntry {
                    sql: text.to_string(),
                    job: Some(id.clone()),
                    ends: vec![],
                })?;
                inner.jobs.insert(
                    id.clone(),
                    JobEntry {
                        statement: job.statement,
                        kind: job.kind,
                        status: job.status,
                        handle,
                        last: None,
                        cancelled: false,
                        created: Instant::now(),
                    },
                );
                Ok(Executed::Batch(one_column("job_id", &id)?))
            }
        }
    }

    /// The output schema of a query statement without running it, for
    /// prepared statements: `None` for statements that return no rows
    /// (DDL, INSERT), which clients then send as updates.
    pub fn describe(&self, sql: &str) -> Result<Option<SchemaRef>> {
        let stmts = parse_sql(sql)?;
        let Some(last) = stmts.last() else {
            return Ok(None);
        };
        match &last.statement {
            Statement::Query(q) => {
                let inner = self.lock()?;
                let QueryShape {
                    schema,
                    updating,
                    bounded,
                } = inner.session.query_shape(q)?;
                Ok(Some(if updating && !bounded {
                    with_op(&schema)
                } else {
                    schema
                }))
            }
            Statement::ShowTables | Statement::ShowJobs | Statement::Describe(_) => {
                // Side-effect free: run it (and only it) for its schema.
                let text = crate::cli::statement_text(sql, &stmts, stmts.len() - 1);
                match self.execute(text)? {
                    Executed::Batch(b) => Ok(Some(b.schema())),
                    Executed::Query(q) => Ok(Some(q.schema)),
                }
            }
            Statement::Explain(_) => Ok(Some(Arc::new(Schema::new(vec![Field::new(
                "plan",
                DataType::Utf8,
                false,
            )])))),
            _ => Ok(None),
        }
    }

    /// Starts a query's job and returns the receiving end of its rows.
    pub fn start_query(self: &Arc<Self>, run: &mut QueryRun) -> Result<()> {
        let graph = run
            .graph
            .take()
            .ok_or_else(|| ServerError::Internal("the query was already started".into()))?;
        let mut inner = self.lock()?;
        let job = inner.jobs.get_mut(&run.job_id).ok_or_else(|| {
            ServerError::NotFound(format!(
                "{} is no longer known; run the query again",
                run.job_id
            ))
        })?;
        job.handle = Some(Job::start(graph)?);
        set(&job.status, "RUNNING");
        Ok(())
    }

    /// Forgets a query that was planned but will never run (it came as an
    /// update).
    pub fn forget_query(&self, id: &str) {
        if let Ok(mut inner) = self.lock() {
            if inner.jobs.get(id).is_some_and(|j| j.handle.is_none()) {
                inner.jobs.remove(id);
                inner.session.forget_job(id);
            }
        }
    }

    /// Cancels a job (a client closed its subscription).
    pub fn cancel_job(&self, id: &str) {
        if let Ok(mut inner) = self.lock() {
            if let Some(job) = inner.jobs.get_mut(id) {
                if let Some(h) = &job.handle {
                    h.cancel();
                    job.cancelled = true;
                }
            }
        }
    }

    /// Waits until job `id` has ended; its error, if it failed or was
    /// cancelled. The caller's channel has closed, so the job is ending:
    /// it is reaped here rather than waiting for the monitor.
    pub async fn job_result(&self, id: &str) -> Result<()> {
        loop {
            let status = {
                let mut inner = self.lock()?;
                let job = inner.jobs.get_mut(id).ok_or_else(|| {
                    ServerError::Internal(format!("{id} disappeared from the job list"))
                })?;
                if job.handle.as_ref().is_some_and(JobHandle::is_finished) {
                    reap_job(id, job);
                }
                if job.handle.is_some() {
                    None
                } else {
                    Some(job.status.lock().map(|s| s.clone()).unwrap_or_default())
                }
            };
            match status.as_deref() {
                None => tokio::time::sleep(Duration::from_millis(1)).await,
                Some(s) => {
                    return match s.strip_prefix("FAILED: ") {
                        Some(msg) => Err(ServerError::Internal(format!("{id} failed: {msg}"))),
                        None if s == "CANCELED" => {
                            Err(ServerError::Cancelled(format!("{id} was cancelled")))
                        }
                        None => Ok(()),
                    }
                }
            }
        }
    }

    /// Reaps jobs that have ended, and forgets old ad-hoc queries. Called
    /// by the monitor thread.
    fn reap(&self) {
        let Ok(mut inner) = self.lock() else {
            return;
        };
        for (id, job) in inner.jobs.iter_mut() {
            if job.handle.as_ref().is_some_and(JobHandle::is_finished) {
                reap_job(id, job);
            }
        }
        // Ended ad-hoc queries are forgotten, oldest first, beyond the
        // newest 200, so that the job list does not grow without bound;
        // queries planned but never fetched are forgotten once their
        // result has expired.
        let mut ended: Vec<(usize, String)> = Vec::new();
        let mut expired = Vec::new();
        for (id, j) in &inner.jobs {
            if j.kind != JobKind::Select || j.handle.is_some() {
                continue;
            }
            if j.last.is_some() {
                ended.push((job_number(id).unwrap_or(0), id.clone()));
            } else if j.created.elapsed() > UNFETCHED_QUERY_TTL {
                expired.push(id.clone());
            }
        }
        ended.sort();
        let excess = ended.len().saturating_sub(KEPT_QUERIES);
        for (_, id) in ended.into_iter().take(excess) {
            inner.jobs.remove(&id);
            inner.session.forget_job(&id);
        }
        for id in expired {
            inner.jobs.remove(&id);
            inner.session.forget_job(&id);
        }
    }

    /// Stops every job (taking a savepoint where they checkpoint) and
    /// waits up to `timeout` for them.
    pub fn shutdown(&self, timeout: Duration) {
        self.stopped.store(true, Ordering::SeqCst);
        let handles: Vec<(String, JobHandle)> = match self.lock() {
            Ok(mut inner) => {
                // Written once here rather than at every query: logged jobs'
                // ids are safe anyway (the replay counts past them), and
                // after a crash ad-hoc queries may reuse ids, which is
                // harmless since they keep no checkpoints.
                let next = inner.session.next_job_number().to_string();
                let _ = std::fs::write(self.next_job_path(), next);
                inner
                    .jobs
                    .iter_mut()
                    .filter_map(|(id, j)| j.handle.take().map(|h| (id.clone(), h)))
                    .collect()
            }
            Err(_) => return,
        };
        for (_, h) in &handles {
            h.stop();
        }
        let deadline = Instant::now() + timeout;
        for (id, h) in handles {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !h.is_finished() {
                eprintln!("runnel: {id} did not stop in time; cancelling it");
                h.cancel();
            }
            if let Err(e) = h.wait() {
                if !matches!(e, EngineError::Cancelled) {
                    eprintln!("runnel: {id} ended with an error while stopping: {e}");
                }
            }
        }
    }

    /// Tables for the metadata calls: (schema name, table name, type,
    /// columns, primary key column names).
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        let inner = self.lock()?;
        let mut out = Vec::new();
        for (name, entry) in inner.session.catalog().entries() {
            let (schema_name, table_name) = match name.split_once('.') {
                Some((s, t)) => (s.to_string(), t.to_string()),
                None => (PUBLIC_SCHEMA.to_string(), name.to_string()),
            };
            let (table_type, schema, primary_key, connector) = match entry {
                Entry::Table(t) => (
                    t.kind.type_name(),
                    Arc::clone(&t.descriptor.schema),
                    t.descriptor
                        .primary_key
                        .iter()
                        .map(|i| t.descriptor.schema.field(*i).name().clone())
                        .collect(),
                    t.descriptor.option("connector").map(str::to_string),
                ),
                Entry::View(v) => {
                    let schema = inner
                        .session
                        .query_shape(&v.query)
                        .map(|s| s.schema)
                        .unwrap_or_else(|_| Arc::new(Schema::empty()));
                    ("VIEW", schema, vec![], None)
                }
            };
            out.push(TableInfo {
                schema_name,
                table_name,
                table_type,
                schema,
                primary_key,
                connector,
            });
        }
        Ok(out)
    }

    /// The rows of system table `name`.
    fn system_rows(&self, name: &str) -> Result<RecordBatch> {
        let schema = system_tables()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
            .ok_or_else(|| ServerError::NotFound(format!("no system table '{name}'")))?;
        let columns: Vec<ArrayRef> = match name {
            "jobs" => {
                let inner = self.lock()?;
                let mut c: [Vec<String>; 5] = Default::default();
                for (id, j) in &inner.jobs {
                    c[0].push(id.clone());
                    c[1].push(j.status.lock().map(|s| s.clone()).unwrap_or_default());
                    let (kind, target) = match &j.kind {
                        JobKind::Select => ("SELECT", String::new()),
                        JobKind::Insert(t) => ("INSERT", t.clone()),
                        JobKind::MaterializedView(v) => ("MATERIALIZED VIEW", v.clone()),
                    };
                    c[2].push(kind.to_string());
                    c[3].push(target);
                    c[4].push(j.statement.clone());
                }
                c.into_iter()
                    .map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
                    .collect()
            }
            "tables" => {
                let tables = self.tables()?;
                vec![
                    strings(tables.iter().map(|_| Some(CATALOG_NAME.to_string()))),
                    strings(tables.iter().map(|t| Some(t.schema_name.clone()))),
                    strings(tables.iter().map(|t| Some(t.table_name.clone()))),
                    strings(tables.iter().map(|t| Some(t.table_type.to_string()))),
                    strings(tables.iter().map(|t| t.connector.clone())),
                ]
            }
            "columns" => {
                let tables = self.tables()?;
                let mut c: [Vec<String>; 4] = Default::default();
                let mut ordinal = Vec::new();
                let mut types = Vec::new();
                let mut nullable = Vec::new();
                for t in &tables {
                    for (i, f) in t.schema.fields().iter().enumerate() {
                        c[0].push(CATALOG_NAME.into());
                        c[1].push(t.schema_name.clone());
                        c[2].push(t.table_name.clone());
                        c[3].push(f.name().clone());
                        ordinal.push(i as i32 + 1);
                        types.push(flink_type_name(f.data_type()));
                        nullable.push(f.is_nullable());
                    }
                }
                let mut cols: Vec<ArrayRef> = c
                    .into_iter()
                    .map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
                    .collect();
                cols.push(Arc::new(Int32Array::from(ordinal)));
                cols.push(Arc::new(StringArray::from(types)));
                cols.push(Arc::new(BooleanArray::from(nullable)));
                cols
            }
            "metrics" => {
                let inner = self.lock()?;
                let mut ids = Vec::new();
                let mut names = Vec::new();
                let mut values = Vec::new();
                for (id, j) in &inner.jobs {
                    let p = match (&j.handle, &j.last) {
                        (Some(h), _) => h.progress(),
                        (None, Some(p)) => *p,
                        (None, None) => continue,
                    };
                    let mut push = |n: &str, v: f64| {
                        ids.push(id.clone());
                        names.push(n.to_string());
                        values.push(v);
                    };
                    push("rows_read", p.rows_read as f64);
                    push("rows_written", p.rows_written as f64);
                    push("late_rows_dropped", p.late_rows as f64);
                    push("malformed_records", p.malformed as f64);
                    if let Some(w) = p.watermark {
                        push("watermark_ms", w as f64);
                    }
                    if let Some(c) = p.checkpoint {
                        push("checkpoints_completed", c.completed as f64);
                        push("last_checkpoint_id", c.id as f64);
                        push(
                            "last_checkpoint_duration_ms",
                            c.duration.as_secs_f64() * 1e3,
                        );
                        push("last_checkpoint_bytes", c.bytes as f64);
                        push("last_checkpoint_size_bytes", c.size as f64);
                        push(
                            "last_checkpoint_alignment_ms",
                            c.alignment.as_secs_f64() * 1e3,
                        );
                    }
                }
                vec![
                    Arc::new(StringArray::from(ids)),
                    Arc::new(StringArray::from(names)),
                    Arc::new(Float64Array::from(values)),
                ]
            }
            other => return Err(ServerError::NotFound(format!("no system table '{other}'"))),
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// A table as the metadata calls describe it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// `public` or `system`.
    pub schema_name: String,
    /// The name within its schema.
    pub table_name: String,
    /// TABLE, VIEW, MATERIALIZED VIEW or SYSTEM TABLE.
    pub table_type: &'static str,
    /// Columns.
    pub schema: SchemaRef,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// The connector, for tables.
    pub connector: Option<String>,
}

impl QueryRun {
    /// Receives the next batch of the query's sink, in the form the client
    /// receives: the changelog as an `op` column for subscriptions to an
    /// updating query. `None` once the job has ended.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>> {
        let Some(batch) = self.rx.recv().await else {
            return Ok(None);
        };
        if self.updating {
            Ok(Some(changelog_with_op(&self.schema, &batch)?))
        } else {
            Ok(Some(batch.with_schema(Arc::clone(&self.schema))?))
        }
    }

    /// Collects a bounded query to its end and returns the final result:
    /// the changelog folded into rows, then ORDER BY and LIMIT.
    pub async fn collect(&mut self) -> Result<RecordBatch> {
        let mut batches = Vec::new();
        while let Some(b) = self.rx.recv().await {
            batches.push(b);
        }
        let rows = if self.updating {
            fold_changelog(&self.columns, &batches)?
        } else {
            let batches: Vec<RecordBatch> = batches
                .into_iter()
                .map(|b| b.with_schema(Arc::clone(&self.columns)))
                .collect::<std::result::Result<_, _>>()?;
            arrow::compute::concat_batches(&self.columns, &batches)?
        };
        match &self.finish {
            Some(f) => Ok(f.apply(&self.columns, &[rows])?),
            None => Ok(rows),
        }
    }
}

/// `op` followed by the query's columns.
fn with_op(schema: &SchemaRef) -> SchemaRef {
    let mut fields = vec![Field::new("op", DataType::Utf8, false)];
    fields.extend(schema.fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(fields))
}

fn changelog_with_op(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let kinds = row_kinds(batch)?;
    let op: ArrayRef = Arc::new(StringArray::from_iter_values(
        kinds.iter().map(|k| k.short_string()),
    ));
    let mut columns = vec![op];
    for (i, f) in batch.schema().fields().iter().enumerate() {
        if f.name() != ROW_KIND_COLUMN {
            columns.push(Arc::clone(batch.column(i)));
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn strings(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

/// The system tables and their columns.
pub fn system_tables() -> Vec<(&'static str, SchemaRef)> {
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    vec![
        (
            "jobs",
            Arc::new(Schema::new(vec![
                utf8("job_id"),
                utf8("status"),
                utf8("kind"),
                utf8("target"),
                utf8("statement"),
            ])),
        ),
        (
            "tables",
            Arc::new(Schema::new(vec![
                utf8("table_catalog"),
                utf8("table_schema"),
                utf8("table_name"),
                utf8("table_type"),
                Field::new("connector", DataType::Utf8, true),
            ])),
        ),
        (
            "columns",
            Arc::new(Schema::new(vec![
                utf8("table_catalog"),
                utf8("table_schema"),
                utf8("table_name"),
                utf8("column_name"),
                Field::new("ordinal_position", DataType::Int32, false),
                utf8("data_type"),
                Field::new("is_nullable", DataType::Boolean, false),
            ])),
        ),
        (
            "metrics",
            Arc::new(Schema::new(vec![
                utf8("job_id"),
                utf8("metric"),
                Field::new("value", DataType::Float64, false),
            ])),
        ),
    ]
}

fn one_column(name: &str, value: &str) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec![value]))],
    )?)
}

fn set(status: &Mutex<String>, s: &str) {
    if let Ok(mut g) = status.lock() {
        *g = s.to_string();
    }
}

fn job_number(id: &str) -> Option<usize> {
    id.strip_prefix("job-")?.parse().ok()
}

/// The SET statements the server runs at start never plan a query.
fn unreachable_sink() -> SinkTarget {
    SinkTarget::Operator {
        name: "unused".into(),
        factory: runnel_engine::sink::BlackholeSink::factory(),
        parallelism: 1,
    }
}

/// Waits for a finished job's threads and records how it ended.
fn reap_job(id: &str, job: &mut JobEntry) {
    let Some(h) = job.handle.take() else {
        return;
    };
    job.last = Some(h.progress());
    let status = match h.wait() {
        Ok(()) if job.cancelled => "CANCELED".to_string(),
        Ok(()) => {
            let s = job.status.lock().map(|s| s.clone()).unwrap_or_default();
            if s == "STOPPING" {
                "STOPPED".to_string()
            } else {
                "FINISHED".to_string()
            }
        }
        Err(EngineError::Cancelled) => "CANCELED".to_string(),
        Err(e) => format!("FAILED: {e}"),
    };
    if status.starts_with("FAILED") {
        eprintln!("runnel: {id} {status}");
    }
    set(&job.status, &status);
}

/// Ended ad-hoc queries kept in the job list.
const KEPT_QUERIES: usize = 200;

/// A query planned but never fetched is forgotten after this long (its
/// result expires after ten minutes).
const UNFETCHED_QUERY_TTL: Duration = Duration::from_secs(15 * 60);

/// Reaps finished jobs every 50 ms until the server is dropped or stopped.
fn monitor(server: Weak<Server>) {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let Some(s) = server.upgrade() else {
            return;
        };
        if s.stopped.load(Ordering::SeqCst) {
            return;
        }
        s.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn data_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("runnel-server-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn config(dir: &Path) -> ServerConfig {
        let mut c = ServerConfig::new(dir);
        c.auth.allow_anonymous = true;
        c
    }

    fn table_names(server: &Server) -> Vec<String> {
        server
            .tables()
            .expect("tables")
            .into_iter()
            .filter(|t| t.schema_name == PUBLIC_SCHEMA)
            .map(|t| t.table_name)
            .collect()
    }

    const CREATE: &str = "CREATE TABLE {} (x INT) WITH ('connector' = 'blackhole')";

    #[test]
    fn a_torn_last_log_line_is_cut_off_and_later_statements_survive() {
        let dir = data_dir("torn");
        let good = serde_json::to_string(&LogEntry {
            sql: CREATE.replace("{}", "a"),
            job: None,
            ends: vec![],
        })
        .expect("json");
        std::fs::write(
            dir.join("statements.jsonl"),
            format!("{good}\n{{\"sql\":\"CREATE TAB"),
        )
        .expect("log");
        let server = Server::open(config(&dir)).expect("open with a torn line");
        assert_eq!(table_names(&server), vec!["a"]);
        assert!(server.execute(&CREATE.replace("{}", "b")).is_ok());
        drop(server);
        let server = Server::open(config(&dir)).expect("reopen");
        assert_eq!(table_names(&server), vec!["a", "b"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn new_jobs_never_take_the_id_of_a_logged_job() {
        let dir = data_dir("ids");
        // job-5 no longer plans (its sink is gone), so the replay skips it.
        let entry = serde_json::to_string(&LogEntry {
            sql: "INSERT INTO gone SELECT x FROM gone".into(),
            job: Some("job-5".into()),
            ends: vec![],
        })
        .expect("json");
        std::fs::write(dir.join("statements.jsonl"), format!("{entry}\n")).expect("log");
        let server = Server::open(config(&dir)).expect("open");
        let next = server.lock().expect("lock").session.next_job_number();
        assert_eq!(next, 6);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_view_name_in_use_is_refused_without_touching_the_view() {
        let dir = data_dir("mvname");
        let server = Server::open(config(&dir)).expect("open");
        let csv = dir.join("t.csv");
        std::fs::write(&csv, "k,n\na,1\nb,2\n").expect("csv");
        server
            .execute(&format!(
                "CREATE TABLE t (k STRING, n INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'csv.ignore-first-line' = 'true')",
                csv.display()
            ))
            .map(|_| ())
            .expect("table");
        server
            .execute("CREATE MATERIALIZED VIEW v AS SELECT k, n FROM t")
            .map(|_| ())
            .expect("view");
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.views.get("v").map_or(0, |v| v.len().unwrap_or(0)) < 2
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let err = server
            .execute("CREATE MATERIALIZED VIEW v AS SELECT k FROM t")
            .map(|_| ())
            .expect_err("name in use");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(server.views.get("v").expect("view").len().expect("len"), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
