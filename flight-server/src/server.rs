//! The server's core, apart from the network: one shared SQL session (one
//! catalog; each client's statements run as its user, with its own `SET`
//! options, see [`crate::clients`]), the jobs it started (a
//! [`JobManager`]), materialized views and system tables, and the
//! statement log ([`crate::statement_log`]) that lets the catalog and the
//! jobs survive a restart.
//!
//! [`Server::execute`] is where a statement becomes a job: the session
//! plans it, then [`Server::execute_one`]'s steps act on the outcome. DDL
//! is logged; `INSERT INTO` and `CREATE MATERIALIZED VIEW` start their job
//! at once and log it; a `SELECT` comes back as a [`QueryRun`] whose job
//! starts when the client fetches its rows ([`Server::start_query`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use runnel_engine::expr::ScalarValue;
use runnel_engine::runtime::Job;
use runnel_engine::EngineError;
use runnel_sql::lower::SinkTarget;
use runnel_sql::parser::{parse_sql, Located, Statement};
use runnel_sql::plan::Plan;
use runnel_sql::prepare::Prepared;
use runnel_sql::session::{JobKind, Outcome, PreparedJob, QueryShape, Session};
use tokio::sync::mpsc;

use crate::audit::{masked_statement, AuditLog};
use crate::clients::{Client, ClientSessions};
use crate::config::ServerConfig;
use crate::error::{Result, ServerError};
use crate::jobs::{job_number, JobManager, JobStatus};
use crate::query::{with_op, Executed, QueryRun};
use crate::statement_log::{LogEntry, LoggedValue, StatementLog};
use crate::statements::statement_text;
use crate::system::{self, TableInfo};
use crate::tables::Views;
use runnel_sql::access::{Principal, ADMINS};

struct Inner {
    session: Session,
    jobs: JobManager,
}

/// Who a statement runs as, in which client session.
struct Caller {
    principal: Principal,
    /// The client session whose options the statement uses and changes.
    session: String,
    /// Options fixed by the log entry being replayed (instead of the
    /// session's).
    options: Option<BTreeMap<String, String>>,
    /// A statement replayed from the log: no access checks.
    replay: bool,
    /// The objects its statement touched (for the audit log), taken
    /// while the session is still the caller's.
    touched: std::cell::RefCell<Vec<String>>,
}

/// The Flight SQL server's state.
pub struct Server {
    config: ServerConfig,
    inner: Mutex<Inner>,
    views: Views,
    log: StatementLog,
    stopped: AtomicBool,
    /// Queries running from snapshots at once, at most (one per core).
    local_slots: tokio::sync::Semaphore,
    /// Each client session's options.
    sessions: ClientSessions,
    /// The options a new client session starts with.
    base_options: BTreeMap<String, String>,
    /// Logins and statements.
    audit: Arc<AuditLog>,
    /// Flight SQL calls by method, for `/metrics`.
    requests: Arc<crate::requests::RequestStats>,
    /// Password checks and back-off, shared by Flight SQL and the console.
    logins: crate::flight_sql::login::Logins,
}

/// The channel capacity between a query's sink and its client stream.
const QUERY_CHANNEL: usize = 16;

impl Server {
    /// Opens the data directory, replays its statement log and starts the
    /// jobs it names.
    pub fn open(config: ServerConfig) -> Result<Arc<Server>> {
        std::fs::create_dir_all(config.data_dir.join("checkpoints")).map_err(|e| {
            ServerError::io(
                format!("create the data directory {}", config.data_dir.display()),
                e,
            )
        })?;
        let views = Views::default();
        let logins = crate::flight_sql::login::Logins::start(config.clone())
            .map_err(|e| ServerError::io("start the password checker", e))?;
        let server = Arc::new_cyclic(|weak: &Weak<Server>| {
            let session = crate::session_setup::new_session(&config, &views, weak.clone());
            Server {
                logins,
                base_options: session.options().clone(),
                audit: AuditLog::new(&config.data_dir),
                requests: Arc::default(),
                sessions: ClientSessions::default(),
                log: StatementLog::new(&config.data_dir),
                config,
                inner: Mutex::new(Inner {
                    session,
                    jobs: JobManager::new(),
                }),
                views,
                stopped: AtomicBool::new(false),
                local_slots: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                ),
            }
        });
        server.replay()?;
        let weak = Arc::downgrade(&server);
        std::thread::Builder::new()
            .name("runnel-job-monitor".into())
            .spawn(move || monitor(weak))
            .map_err(|e| ServerError::io("start the job monitor", e))?;
        Ok(server)
    }

    /// What bounds how many queries run from snapshots at once.
    pub fn local_slots(&self) -> &tokio::sync::Semaphore {
        &self.local_slots
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The server's state. A statement that panicked while holding it (a
    /// bug; the client got INTERNAL) does not take the server down with
    /// it: the state is used as that statement left it.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        Ok(self.inner.lock().unwrap_or_else(|poisoned| {
            eprintln!("runnel: a statement panicked while it held the server's state; serving on");
            self.inner.clear_poison();
            poisoned.into_inner()
        }))
    }

    /// Replays the statement log of the data directory.
    fn replay(&self) -> Result<()> {
        let replayed = self.log.replay(|entry, ended| {
            if let Some(n) = entry.job.as_deref().and_then(job_number) {
                if let Ok(mut inner) = self.lock() {
                    inner.session.set_next_job_number(n);
                }
            }
            // A statement that no longer runs (its file was deleted, say)
            // is skipped rather than keeping the whole server down; the
            // ones that depend on it fail and are skipped in turn.
            let params: Vec<ScalarValue> = entry.params.iter().map(ScalarValue::from).collect();
            // As the user who ran it (who owns what it creates), with
            // every right: the checks passed when it first ran.
            let user = entry.user.clone().unwrap_or_default();
            let roles = self.config.roles_of(&user);
            let caller = Caller {
                principal: Principal::new(user, roles),
                session: "replay".into(),
                options: entry.options.clone(),
                replay: true,
                touched: Default::default(),
            };
            if let Err(err) = self.execute_inner(&entry.sql, ended, &params, &caller) {
                eprintln!(
                    "runnel: skipping a logged statement that no longer runs: {err}\n  statement: {}",
                    entry.sql
                );
            }
        })?;
        let recorded = self.log.recorded_next_job().unwrap_or(1);
        if let Ok(mut inner) = self.lock() {
            // Past every logged job, even one whose statement was skipped,
            // so that no new job takes an old job's checkpoints.
            let n = inner
                .session
                .next_job_number()
                .max(recorded)
                .max(replayed.logged_max + 1);
            inner.session.set_next_job_number(n);
        }
        Ok(())
    }

    /// Executes the one statement of `sql`. A request holds one statement
    /// (Flight SQL has one result per request); a script of several is
    /// refused, pointing at its second statement.
    pub fn execute(&self, sql: &str) -> Result<Executed> {
        self.execute_with(sql, &[])
    }

    /// Executes the one statement of `sql` with `params` bound to its `?`
    /// parameters, in text order (a prepared statement).
    pub fn execute_with(&self, sql: &str, params: &[ScalarValue]) -> Result<Executed> {
        self.execute_as(&Client::local(LOCAL_ADMIN), sql, params)
    }

    /// Executes the one statement of `sql` for `client`: as its user, with
    /// its session's options.
    pub fn execute_as(
        &self,
        client: &Client,
        sql: &str,
        params: &[ScalarValue],
    ) -> Result<Executed> {
        let stmt = match one_statement(sql) {
            Ok(s) => s,
            Err(e) => {
                self.audit
                    .statement(client, "UNPARSED", sql, vec![], &Err(&e), params);
                return Err(e);
            }
        };
        let text = statement_text(sql, std::slice::from_ref(&stmt), 0);
        let caller = self.caller(client);
        let result = self.execute_one(&stmt, text, &BTreeSet::new(), params, &caller);
        let touched = std::mem::take(&mut *caller.touched.borrow_mut());
        let kind = audit_action(&stmt.statement);
        self.audit.statement(
            client,
            kind,
            &masked_statement(&stmt, text),
            touched,
            &result.as_ref().map(|_| ()),
            params,
        );
        result
    }

    /// The principal and session of a client's requests.
    fn caller(&self, client: &Client) -> Caller {
        let mut roles = self.config.roles_of(&client.user);
        if client.user == LOCAL_ADMIN && client.session == Client::local(LOCAL_ADMIN).session {
            roles.push(ADMINS.to_string());
        }
        Caller {
            principal: Principal::new(client.user.clone(), roles),
            session: client.session.clone(),
            options: None,
            replay: false,
            touched: Default::default(),
        }
    }

    /// Runs `f` on the session as `caller`, with its options; returns what
    /// `f` gave and the options after it (a `SET` changes them).
    fn as_caller<R>(
        &self,
        inner: &mut Inner,
        caller: &Caller,
        f: impl FnOnce(&mut Session) -> R,
    ) -> (R, BTreeMap<String, String>) {
        inner.session.set_principal(caller.principal.clone());
        inner.session.set_replaying(caller.replay);
        inner.session.take_touched();
        let options = caller
            .options
            .clone()
            .unwrap_or_else(|| self.sessions.options(&caller.session, &self.base_options));
        let base = inner.session.replace_options(options);
        let out = f(&mut inner.session);
        let after = inner.session.replace_options(base);
        if caller.options.is_none() {
            self.sessions.store(&caller.session, after.clone());
        }
        (out, after)
    }

    /// Executes the statements of a logged `sql` (one statement; older logs
    /// may hold scripts); `ended` are the jobs the log ends later, which
    /// are recorded as stopped rather than started.
    fn execute_inner(
        &self,
        sql: &str,
        ended: &BTreeSet<String>,
        params: &[ScalarValue],
        caller: &Caller,
    ) -> Result<Executed> {
        let stmts = parse_sql(sql)?;
        let mut last = None;
        for (i, stmt) in stmts.iter().enumerate() {
            let text = statement_text(sql, &stmts, i);
            last = Some(self.execute_one(stmt, text, ended, params, caller)?);
        }
        last.ok_or_else(|| ServerError::InvalidArgument("the statement is empty".into()))
    }

    /// Plans one statement in the session, then acts on what it gave.
    fn execute_one(
        &self,
        stmt: &Located,
        text: &str,
        ended: &BTreeSet<String>,
        params: &[ScalarValue],
        caller: &Caller,
    ) -> Result<Executed> {
        let (tx, rx) = mpsc::channel::<RecordBatch>(QUERY_CHANNEL);
        let sink = move |_plan: &Plan| SinkTarget::Operator {
            name: "sink: client".to_string(),
            factory: crate::sinks::channel_sink(tx.clone()),
            parallelism: 1,
        };
        let mut inner = self.lock()?;
        let (outcome, options) = self.as_caller(&mut inner, caller, |session| {
            let outcome = session.execute_with(stmt, text, &sink, params);
            *caller.touched.borrow_mut() = session.take_touched();
            outcome
        });
        let outcome = outcome?;
        let logged = Logged {
            user: caller.principal.user.clone(),
            options,
        };
        match outcome {
            Outcome::Message(m) => self.finish_ddl(&mut inner, stmt, text, &m, &logged),
            Outcome::Rows(b) => Ok(Executed::Batch(b)),
            Outcome::Explain(t) => Ok(Executed::Batch(one_column("plan", &t)?)),
            Outcome::StopJob { id, savepoint } => {
                self.stop_job(&mut inner, text, id, savepoint, &logged)
            }
            Outcome::Job(job)
                if job.kind == JobKind::Select
                    && job.bounded
                    && job.graph.in_memory
                    && self.config.snapshot_queries =>
            {
                // Reads only views and system tables: it runs on the
                // fetching thread from their snapshots, with no job.
                inner.session.forget_job(&job.id);
                Ok(Executed::Query(Box::new(QueryRun::local(*job, rx))))
            }
            Outcome::Job(job) if job.kind == JobKind::Select => {
                Ok(plan_query(&mut inner.jobs, *job, rx))
            }
            Outcome::Job(job) => self.start_job(&mut inner, text, params, *job, ended, &logged),
        }
    }

    /// After DDL and SET: a dropped materialized view's jobs are cancelled,
    /// and the statement is logged.
    fn finish_ddl(
        &self,
        inner: &mut Inner,
        stmt: &Located,
        text: &str,
        message: &str,
        logged: &Logged,
    ) -> Result<Executed> {
        let mut ends = Vec::new();
        if let Statement::Drop { names, .. } = &stmt.statement {
            for n in names {
                let key = runnel_sql::catalog::key_of(n);
                ends.extend(inner.jobs.cancel_view(&key));
                self.views.remove(&key);
            }
        }
        if matches!(
            stmt.statement,
            Statement::CreateTable(_)
                | Statement::CreateView { .. }
                | Statement::Drop { .. }
                | Statement::CreateFunction(_)
                | Statement::DropFunction { .. }
                | Statement::Alter(_)
        ) || matches!(&stmt.statement, Statement::Governance(g)
        if !matches!(
            **g,
            runnel_sql::parser::Governance::ShowGrants { .. }
                | runnel_sql::parser::Governance::ShowLineage { .. }
        )) {
            // SET is not logged: options belong to the client's session;
            // a job's entry keeps the options it was planned with.
            self.log.append(&LogEntry {
                sql: text.to_string(),
                params: vec![],
                job: None,
                ends,
                user: Some(logged.user.clone()),
                options: None,
            })?;
        }
        Ok(Executed::Batch(one_column("result", message)?))
    }

    /// `STOP JOB`: the job stops (taking its savepoint), and the log says
    /// it is not to be started again.
    fn stop_job(
        &self,
        inner: &mut Inner,
        text: &str,
        id: String,
        savepoint: bool,
        logged: &Logged,
    ) -> Result<Executed> {
        let message = match inner.jobs.stop(&id) {
            None => {
                return Err(ServerError::NotFound(format!(
                    "job '{id}' is not running on this server"
                )))
            }
            Some(true) if savepoint => format!("stopping {id}; it takes a savepoint as it stops"),
            Some(true) => format!("stopping {id}"),
            Some(false) => format!("{id} is not running"),
        };
        self.log.append(&LogEntry {
            sql: text.to_string(),
            params: vec![],
            job: None,
            ends: vec![id],
            user: Some(logged.user.clone()),
            options: None,
        })?;
        Ok(Executed::Batch(one_column("result", &message)?))
    }

    /// `INSERT INTO` or `CREATE MATERIALIZED VIEW`: the job starts now
    /// (unless the log stops it later) and is logged with its id.
    fn start_job(
        &self,
        inner: &mut Inner,
        text: &str,
        params: &[ScalarValue],
        job: PreparedJob,
        ended: &BTreeSet<String>,
        logged: &Logged,
    ) -> Result<Executed> {
        let id = job.id.clone();
        let kind = job.kind.clone();
        inner.jobs.add(&job);
        if ended.contains(&id) {
            inner.jobs.mark_stopped(&id);
        } else {
            match inner.jobs.start(&id, job.graph) {
                Ok(h) => {
                    if let Some(cp) = h.restored_from() {
                        eprintln!(
                            "runnel: {id} resumes from checkpoint {} in {}",
                            cp.id,
                            cp.dir.display()
                        );
                    }
                }
                Err(e) if self.log.replaying() => {
                    // Keep the catalog entry and show why the job is not
                    // running (say, a checkpoint of another parallelism),
                    // rather than losing it silently.
                    eprintln!("runnel: {id} cannot resume: {e}");
                    inner.jobs.fail(&id, e);
                    return Ok(Executed::Batch(one_column("job_id", &id)?));
                }
                Err(e) => {
                    // Nothing was logged: take the job and the view back out.
                    inner.jobs.forget(&id);
                    if let JobKind::MaterializedView(v) = &kind {
                        inner.session.catalog_mut().remove(v);
                        self.views.remove(v);
                    }
                    return Err(e.into());
                }
            }
        }
        let logged = self.log.append(&LogEntry {
            sql: text.to_string(),
            params: params.iter().map(LoggedValue::from).collect(),
            job: Some(id.clone()),
            ends: vec![],
            user: Some(logged.user.clone()),
            options: Some(logged.options.clone()),
        });
        if let Err(e) = logged {
            // A job that is not in the log would not survive a restart.
            inner.jobs.forget(&id);
            return Err(e);
        }
        Ok(Executed::Batch(one_column("job_id", &id)?))
    }

    /// What a prepared statement takes and gives, without running it: the
    /// type of each `?` parameter, and the output schema of a query;
    /// `None` for statements that return no rows (DDL, INSERT), which
    /// clients then send as updates.
    pub fn prepare(&self, sql: &str) -> Result<(Option<SchemaRef>, Vec<DataType>)> {
        self.prepare_as(&Client::local(LOCAL_ADMIN), sql)
    }

    /// [`Server::prepare`] for `client`.
    pub fn prepare_as(
        &self,
        client: &Client,
        sql: &str,
    ) -> Result<(Option<SchemaRef>, Vec<DataType>)> {
        let last = one_statement(sql)?;
        let caller = self.caller(client);
        let (prepared, touched) = {
            let mut inner = self.lock()?;
            let p = self
                .as_caller(&mut inner, &caller, |session| session.prepare(&last))
                .0;
            (p, inner.session.take_touched())
        };
        // A statement refused when it is prepared never runs: the refusal
        // is its audit record (one that runs is recorded when it does).
        let prepared = prepared.map_err(ServerError::from);
        if let Err(e) = &prepared {
            let kind = audit_action(&last.statement);
            let text = statement_text(sql, std::slice::from_ref(&last), 0);
            let masked = masked_statement(&last, text);
            self.audit
                .statement(client, kind, &masked, touched, &Err(e), &[]);
        }
        let Prepared { parameters, shape } = prepared?;
        let schema = match &last.statement {
            Statement::Query(_) => shape.map(
                |QueryShape {
                     schema,
                     updating,
                     bounded,
                 }| {
                    if updating && !bounded {
                        with_op(&schema)
                    } else {
                        schema
                    }
                },
            ),
            Statement::ShowTables | Statement::ShowJobs | Statement::Describe(_) => {
                // Side-effect free: run it for its schema.
                match self.execute_as(client, sql, &[])? {
                    Executed::Batch(b) => Some(b.schema()),
                    Executed::Query(q) => Some(q.schema),
                }
            }
            Statement::Explain(_) => Some(Arc::new(Schema::new(vec![Field::new(
                "plan",
                DataType::Utf8,
                false,
            )]))),
            _ => None,
        };
        Ok((schema, parameters))
    }

    /// Starts a query's job; its rows then arrive in `run`.
    pub fn start_query(self: &Arc<Self>, run: &mut QueryRun) -> Result<()> {
        let graph = run
            .take_graph()
            .ok_or_else(|| ServerError::Internal("the query was already started".into()))?;
        let gone = || {
            ServerError::NotFound(format!(
                "{} is no longer known; run the query again",
                run.job_id
            ))
        };
        if self.lock()?.jobs.get(&run.job_id).is_none() {
            return Err(gone());
        }
        // Starting a job (threads, state, files) is slow: other requests
        // go on meanwhile.
        let handle = Job::start(graph)?;
        if self.lock()?.jobs.attach(&run.job_id, handle) {
            Ok(())
        } else {
            Err(gone())
        }
    }

    /// Forgets a query that was planned but will never run (it came as an
    /// update).
    pub fn forget_query(&self, id: &str) {
        if let Ok(mut inner) = self.lock() {
            if inner.jobs.forget_unless_running(id) {
                inner.session.forget_job(id);
            }
        }
    }

    /// Cancels a job (a client closed its subscription).
    pub fn cancel_job(&self, id: &str) {
        if let Ok(mut inner) = self.lock() {
            inner.jobs.cancel(id);
        }
    }

    /// Waits until job `id` has ended; its error, if it failed or was
    /// cancelled. The caller's channel has closed, so the job is ending:
    /// it is reaped here rather than waiting for the monitor.
    pub async fn job_result(&self, id: &str) -> Result<()> {
        loop {
            let status = {
                let mut inner = self.lock()?;
                if inner.jobs.reap(id) {
                    report_end(id, &inner.jobs);
                }
                let job = inner.jobs.get(id).ok_or_else(|| {
                    ServerError::Internal(format!("{id} disappeared from the job list"))
                })?;
                (!job.is_running()).then(|| job.status())
            };
            match status {
                None => tokio::time::sleep(Duration::from_millis(1)).await,
                Some(JobStatus::Failed(source)) => {
                    return Err(ServerError::JobFailed {
                        id: id.to_string(),
                        source,
                    })
                }
                Some(JobStatus::Cancelled) => {
                    return Err(ServerError::JobCancelled { id: id.to_string() })
                }
                Some(_) => return Ok(()),
            }
        }
    }

    /// Reaps jobs that have ended, and forgets old ad-hoc queries. Called
    /// by the monitor thread.
    fn reap(&self) {
        let Ok(mut inner) = self.lock() else {
            return;
        };
        for id in inner.jobs.reap_all() {
            report_end(&id, &inner.jobs);
        }
        for id in inner.jobs.prune_queries() {
            inner.session.forget_job(&id);
        }
    }

    /// Stops every job (taking a savepoint where they checkpoint) and
    /// waits up to `timeout` for them.
    pub fn shutdown(&self, timeout: Duration) {
        self.stopped.store(true, Ordering::SeqCst);
        let handles = match self.lock() {
            Ok(mut inner) => {
                // Written once here rather than at every query: logged jobs'
                // ids are safe anyway (the replay counts past them), and
                // after a crash ad-hoc queries may reuse ids, which is
                // harmless since they keep no checkpoints.
                self.log.record_next_job(inner.session.next_job_number());
                inner.jobs.take_running()
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

    /// Tables for the metadata calls.
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        self.tables_for(&Client::local(LOCAL_ADMIN))
    }

    /// Tables for the metadata calls of `client`: those its user may read.
    pub fn tables_for(&self, client: &Client) -> Result<Vec<TableInfo>> {
        let caller = self.caller(client);
        let mut inner = self.lock()?;
        let (infos, _) = self.as_caller(&mut inner, &caller, |session| {
            system::table_infos(session)
                .into_iter()
                .filter(|t| session.may_read(&t.key()))
                .collect()
        });
        Ok(infos)
    }

    /// The rows of system table `name`.
    pub(crate) fn system_rows(&self, name: &str, user: &str) -> Result<RecordBatch> {
        let inner = self.lock()?;
        system::rows(name, user, &inner.jobs, &inner.session, &self.audit)
    }

    /// Every job's metrics (as `system.metrics` names them) and the
    /// counts of the expectations it checks: (job, metrics, (table,
    /// expectation, passed, failed)).
    pub fn job_metrics(&self) -> crate::http::prometheus::JobMetrics {
        let Ok(inner) = self.lock() else {
            return Vec::new();
        };
        inner
            .jobs
            .iter()
            .filter_map(|(id, j)| {
                let p = j.progress()?;
                Some((
                    id.clone(),
                    system::job_metrics(&p),
                    inner.session.job_expectation_counts(id),
                ))
            })
            .collect()
    }

    /// The jobs `user` may see, with their graphs (every job for `None`).
    pub fn job_views(&self, user: Option<&str>) -> Vec<crate::monitor::JobView> {
        match self.lock() {
            Ok(inner) => crate::monitor::views(&inner.jobs, &inner.session, user),
            Err(_) => Vec::new(),
        }
    }

    /// The Flight SQL calls the server answered.
    pub fn requests(&self) -> &Arc<crate::requests::RequestStats> {
        &self.requests
    }

    /// Where passwords are checked, for every service of the server.
    pub fn logins(&self) -> &crate::flight_sql::login::Logins {
        &self.logins
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }
}

/// The user of calls without credentials on a server that allows them.
pub const ANONYMOUS: &str = "anonymous";

/// The user of in-process calls ([`Server::execute`]): an administrator.
pub const LOCAL_ADMIN: &str = "admin";

/// What the log records of a statement besides its text.
struct Logged {
    user: String,
    options: BTreeMap<String, String>,
}

/// A statement's action in the audit log: its kind, `SELECT` for a query.
fn audit_action(statement: &Statement) -> &'static str {
    match statement {
        Statement::Query(_) => "SELECT",
        other => other.kind(),
    }
}

/// The one statement of a request's `sql`.
fn one_statement(sql: &str) -> Result<Located> {
    let mut stmts = parse_sql(sql)?;
    match stmts.len() {
        0 => Err(ServerError::InvalidArgument(
            "the statement is empty".into(),
        )),
        1 => Ok(stmts.remove(0)),
        n => Err(ServerError::InvalidArgument(format!(
            "a request runs one statement, and this one holds {n} (the second starts at {}); \
             send each statement in a request of its own",
            stmts[1].position
        ))),
    }
}

/// A SELECT: recorded, not started; its job starts when its rows are
/// fetched.
fn plan_query(
    jobs: &mut JobManager,
    mut job: PreparedJob,
    rx: mpsc::Receiver<RecordBatch>,
) -> Executed {
    jobs.add(&job);
    // Ad-hoc queries are not resumed after a restart.
    job.graph.checkpointing = None;
    Executed::Query(Box::new(QueryRun::new(job, rx)))
}

/// Says on the server's stderr that a job failed.
fn report_end(id: &str, jobs: &JobManager) {
    if let Some(job) = jobs.get(id) {
        if matches!(job.status(), JobStatus::Failed(_)) {
            eprintln!("runnel: {id} {}", job.status());
        }
    }
}

fn one_column(name: &str, value: &str) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec![value]))],
    )?)
}

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
    use arrow::array::AsArray;
    use runnel_sql::catalog::PUBLIC_SCHEMA;
    use std::path::{Path, PathBuf};

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
            params: vec![],
            job: None,
            ends: vec![],
            user: None,
            options: None,
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
            params: vec![],
            job: Some("job-5".into()),
            ends: vec![],
            user: None,
            options: None,
        })
        .expect("json");
        std::fs::write(dir.join("statements.jsonl"), format!("{entry}\n")).expect("log");
        let server = Server::open(config(&dir)).expect("open");
        let next = server.lock().expect("lock").session.next_job_number();
        assert_eq!(next, 6);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_prepared_insert_is_logged_with_its_values_and_replays() {
        let dir = data_dir("params");
        let server = Server::open(config(&dir)).expect("open");
        let csv = dir.join("t.csv");
        std::fs::write(&csv, "k,n\na,1\nb,2\n").expect("csv");
        for sql in [
            format!(
                "CREATE TABLE t (k STRING, n INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'csv.ignore-first-line' = 'true')",
                csv.display()
            ),
            CREATE.replace("{}", "out").replace("x INT", "k STRING"),
        ] {
            server.execute(&sql).map(|_| ()).expect("ddl");
        }
        let (_, types) = server
            .prepare("INSERT INTO out SELECT k FROM t WHERE n = ? AND k <> ?")
            .expect("prepare");
        assert_eq!(types, vec![DataType::Int32, DataType::Utf8]);
        let values = [ScalarValue::Int64(2), ScalarValue::Utf8("it's".into())];
        server
            .execute_with(
                "INSERT INTO out SELECT k FROM t WHERE n = ? AND k <> ?",
                &values,
            )
            .map(|_| ())
            .expect("insert");
        let log = std::fs::read_to_string(dir.join("statements.jsonl")).expect("log");
        let entry: LogEntry = log
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|e: &LogEntry| e.job.is_some())
            .expect("the insert is logged");
        assert_eq!(
            entry.sql,
            "INSERT INTO out SELECT k FROM t WHERE n = ? AND k <> ?"
        );
        let replayed: Vec<ScalarValue> = entry.params.iter().map(ScalarValue::from).collect();
        assert_eq!(replayed, values);
        let id = entry.job.expect("job id");
        drop(server);
        let server = Server::open(config(&dir)).expect("reopen");
        assert!(server.lock().expect("lock").jobs.get(&id).is_some());
        // Without its values the statement is refused, saying how many.
        let err = server
            .execute("SELECT k FROM t WHERE n = ?")
            .map(|_| ())
            .expect_err("no value");
        assert!(
            err.to_string()
                .ends_with("the statement has 1 parameter(s) but 0 were bound"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Table `t (k STRING, n INT)` over `rows` (CSV lines `k,n`) in `dir`,
    /// and materialized view `v` of it, once the view holds every row.
    fn csv_view(server: &Server, dir: &Path, rows: &[&str]) -> Arc<crate::tables::ViewTable> {
        let csv = dir.join("t.csv");
        std::fs::write(&csv, format!("k,n\n{}\n", rows.join("\n"))).expect("csv");
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
        let view = server.views.get("v").expect("the view exists");
        let deadline = Instant::now() + Duration::from_secs(30);
        while view.len().expect("len") < rows.len() {
            assert!(Instant::now() < deadline, "the view never filled");
            std::thread::sleep(Duration::from_millis(20));
        }
        view
    }

    /// The (STRING, integer) rows of a two-column result.
    fn pairs(batch: &RecordBatch) -> Vec<(String, i64)> {
        let keys = batch.column(0).as_string::<i32>();
        let values = arrow::compute::cast(batch.column(1), &DataType::Int64).expect("cast");
        let values = values.as_primitive::<arrow::datatypes::Int64Type>();
        (0..batch.num_rows())
            .map(|i| (keys.value(i).to_string(), values.value(i)))
            .collect()
    }

    #[test]
    fn a_view_name_in_use_is_refused_without_touching_the_view() {
        let dir = data_dir("mvname");
        let server = Server::open(config(&dir)).expect("open");
        csv_view(&server, &dir, &["a,1", "b,2"]);
        let err = server
            .execute("CREATE MATERIALIZED VIEW v AS SELECT k FROM t")
            .map(|_| ())
            .expect_err("name in use");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(server.views.get("v").expect("view").len().expect("len"), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn queries_over_views_and_system_tables_run_from_snapshots_without_a_job() {
        let dir = data_dir("local");
        let server = Server::open(config(&dir)).expect("open");
        csv_view(&server, &dir, &["a,1", "b,2", "a,3", "c,4", "a,5"]);
        let jobs_before = server.lock().expect("lock").jobs.iter().count();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let run = |sql: &str| -> Result<RecordBatch> {
            match server.execute(sql)? {
                Executed::Query(mut q) => {
                    assert!(q.is_local(), "{sql} should run locally");
                    rt.block_on(q.run_local(server.local_slots()))
                }
                Executed::Batch(_) => panic!("{sql} gave no query"),
            }
        };
        // An aggregate (updating), sorted and limited, over the view.
        let rows = run("SELECT k, SUM(n) AS total FROM v GROUP BY k ORDER BY total DESC LIMIT 2")
            .expect("aggregate");
        assert_eq!(
            pairs(&rows),
            vec![("a".to_string(), 9), ("c".to_string(), 4)]
        );
        // A join of two inputs (the view with itself): 'a' has 3 rows, so
        // 9 pairs.
        let joined = run(
            "SELECT x.k, COUNT(*) AS n FROM v AS x JOIN v AS y ON x.k = y.k GROUP BY x.k ORDER BY k",
        )
        .expect("join");
        assert_eq!(
            pairs(&joined),
            vec![
                ("a".to_string(), 9),
                ("b".to_string(), 1),
                ("c".to_string(), 1)
            ]
        );
        // A system table.
        let tables = run("SELECT table_name FROM system.tables WHERE table_name = 'v'")
            .expect("system table");
        assert_eq!(tables.num_rows(), 1);
        // An error while running is the query's error.
        let err = run("SELECT CAST(k AS INT) FROM v").expect_err("'a' is no INT");
        assert!(matches!(err, ServerError::JobFailed { .. }), "{err}");
        // No job was started or recorded for any of them.
        assert_eq!(
            server.lock().expect("lock").jobs.iter().count(),
            jobs_before
        );
        // A query that also reads a file still runs as a job.
        match server.execute("SELECT k FROM t").expect("query") {
            Executed::Query(q) => assert!(!q.is_local()),
            Executed::Batch(_) => panic!("no query"),
        }
        server.shutdown(Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_panic_while_holding_the_state_does_not_stop_the_server() {
        let dir = data_dir("poison");
        let server = Server::open(config(&dir)).expect("open");
        let s = Arc::clone(&server);
        let crashed = std::thread::spawn(move || {
            let _held = s.lock().expect("lock");
            panic!("a bug while planning");
        })
        .join();
        assert!(crashed.is_err());
        // (The job monitor may have taken the lock since, and served on.)
        server
            .execute(&CREATE.replace("{}", "after_the_panic"))
            .map(|_| ())
            .expect("later statements still run");
        assert!(table_names(&server).contains(&"after_the_panic".to_string()));
        server.shutdown(Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
