//! A SQL session: executes statements against a catalog.
//!
//! DDL changes the catalog; `SET` changes session options; `INSERT INTO`
//! and top-level `SELECT` produce a [`JobGraph`] for the caller to run (the
//! CLI, a test harness, later the Flight SQL server) and are recorded so
//! that `SHOW JOBS` can list them.

mod alter;
mod ddl;
mod expect;
mod lineage;
pub use expect::ExpectationCount;
pub use lineage::{LineageRow, OpenLineageSpec, OPENLINEAGE_FILE_OPTION, OPENLINEAGE_URL_OPTION};
mod governance;
mod options;
mod query;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use runnel_engine::connector::ConnectorRegistry;
use std::path::PathBuf;

use runnel_engine::graph::{
    parse_byte_size, CheckpointConfig, JobGraph, StateBackendKind, StateConfig,
};
use runnel_engine::runtime::JobStatus;
use runnel_engine::types::ROW_KIND_COLUMN;

use crate::binder::flink_type_name;
use crate::catalog::{key_of, position_of, Catalog, Entry, TableEntry, TableKind, ViewEntry};
use crate::error::{Result, SqlError};
use crate::finish::{Finish, FinishClauses};
use crate::lower::{lower, lower_all, pruned_descriptor, LowerOptions, SinkTarget};
use crate::parser::{Located, Statement};
use crate::plan::Plan;
use crate::planner::sink::align_to_sink;
use crate::planner::Planner;

/// What executing a statement produced.
pub enum Outcome {
    /// Done; a short message for the user.
    Message(String),
    /// A result table (SHOW, DESCRIBE).
    Rows(RecordBatch),
    /// The text of EXPLAIN.
    Explain(String),
    /// A job to run.
    Job(Box<PreparedJob>),
    /// STOP JOB: the caller stops the job with this id.
    StopJob {
        /// Job id.
        id: String,
        /// Take a savepoint first.
        savepoint: bool,
    },
}

/// A job planned from a statement.
pub struct PreparedJob {
    /// Id (`job-1`, `job-2`, ...).
    pub id: String,
    /// The statement's text, for SHOW JOBS.
    pub statement: String,
    /// The graph to run.
    pub graph: JobGraph,
    /// True when every source is bounded (the job ends by itself).
    pub bounded: bool,
    /// Status, updated by whoever runs the job.
    pub status: Arc<Mutex<JobStatus>>,
    /// What the job writes to: a top-level SELECT, INSERT INTO a table, or
    /// a materialized view.
    pub kind: JobKind,
    /// Output columns of the query (without the changelog column).
    pub schema: SchemaRef,
    /// True when the output is an updating stream (it carries the
    /// changelog column).
    pub updating: bool,
    /// ORDER BY / LIMIT of a bounded SELECT, for the caller to apply to the
    /// complete result.
    pub finish: Option<Finish>,
    /// Where to send OpenLineage run events, with the job's lineage;
    /// `None` unless the session names a file or URL.
    pub openlineage: Option<OpenLineageSpec>,
}

/// What a job was started for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// A top-level SELECT: the rows go to the caller's select sink.
    Select,
    /// `INSERT INTO table`.
    Insert(String),
    /// `CREATE MATERIALIZED VIEW name`: the job keeps the view up to date.
    MaterializedView(String),
    /// A statement set: its INSERTs' tables, in order.
    StatementSet(Vec<String>),
}

/// The connector of materialized views. Sessions accept `CREATE
/// MATERIALIZED VIEW` only when the registry has it (the Flight SQL server
/// registers it; the command-line tool has nowhere to serve views from).
pub const MATERIALIZED_VIEW_CONNECTOR: &str = "runnel-view";

/// The output of a query, known before it runs.
#[derive(Debug, Clone)]
pub struct QueryShape {
    /// Output columns (without the changelog column).
    pub schema: SchemaRef,
    /// True when the output is an updating stream.
    pub updating: bool,
    /// True when every source is bounded.
    pub bounded: bool,
}

/// Where the rows of a top-level SELECT go.
pub type SelectSink = dyn Fn(&Plan) -> SinkTarget;

/// A session: catalog, options, jobs.
pub struct Session {
    catalog: Catalog,
    registry: ConnectorRegistry,
    options: BTreeMap<String, String>,
    /// Jobs: id, statement, status, owner.
    jobs: Vec<(String, String, Arc<Mutex<JobStatus>>, String)>,
    next_job: usize,
    /// Who runs the statements, and the server's limits.
    access: governance::AccessContext,
    /// Objects the access checks looked at since the caller last asked
    /// (what the audit log names).
    touched: std::cell::RefCell<Vec<String>>,
    /// Expectation counters and the quarantine branches of the job being
    /// planned.
    expect: crate::planner::expect::ExpectState,
    /// Column lineage of jobs and views.
    lineage: Vec<LineageRow>,
    /// The highest parallelism `SET` may ask for; `None` leaves only the
    /// runtime's own bound (the number of key groups).
    parallelism_limit: Option<usize>,
    /// Where state TTL reads processing time (tests move a manual clock).
    clock: runnel_engine::time::Clock,
}

/// Flink's option for the state TTL of regular joins (and, later,
/// non-windowed aggregates).
pub const STATE_TTL_OPTION: &str = "table.exec.state.ttl";

/// The session option that keeps windows open for late rows after they
/// fired (Flink's name).
pub const ALLOW_LATENESS_OPTION: &str = "table.exec.emit.allow-lateness";

/// The session option naming the table that receives the rows window
/// aggregates drop as late.
pub const LATE_DATA_TABLE_OPTION: &str = "table.exec.late-data.table";

impl Session {
    /// A session with these connectors.
    pub fn new(registry: ConnectorRegistry) -> Self {
        Self {
            catalog: Catalog::new(),
            registry,
            options: BTreeMap::new(),
            jobs: Vec::new(),
            next_job: 1,
            access: governance::AccessContext::default(),
            touched: Default::default(),
            expect: Default::default(),
            lineage: Vec::new(),
            parallelism_limit: None,
            clock: runnel_engine::time::Clock::System,
        }
    }

    /// Makes jobs planned from now on read processing time from `clock`
    /// (for state TTL); tests pass a manual clock.
    pub fn set_clock(&mut self, clock: runnel_engine::time::Clock) {
        self.clock = clock;
    }

    /// Bounds the parallelism `SET 'parallelism'` may ask for (a server
    /// shared by many clients keeps one of them from starting thousands of
    /// threads and a channel per pair of them).
    pub fn set_parallelism_limit(&mut self, limit: usize) {
        self.parallelism_limit = Some(limit.max(1));
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The number the next job's id gets (`job-<n>`).
    pub fn next_job_number(&self) -> usize {
        self.next_job
    }

    /// Sets the number of the next job's id: a server that replays its
    /// statements after a restart gives each job the id (and so the
    /// checkpoint directory) it had before.
    pub fn set_next_job_number(&mut self, n: usize) {
        self.next_job = n.max(1);
    }

    /// Forgets job `id` (an ended ad-hoc query) from `SHOW JOBS`.
    pub fn forget_job(&mut self, id: &str) {
        self.jobs.retain(|j| j.0 != id);
    }

    /// The catalog, for callers that add their own tables (system tables).
    pub fn catalog_mut(&mut self) -> &mut Catalog {
        &mut self.catalog
    }

    /// `CREATE FUNCTION` (checked, then kept) and `DROP FUNCTION`.
    fn function_statement(
        &mut self,
        statement: &Statement,
        position: crate::error::Position,
    ) -> Result<Outcome> {
        match statement {
            Statement::CreateFunction(cf) => {
                self.check_create(position)?;
                let f = crate::functions::check(&self.catalog, cf)?;
                let name = f.name.clone();
                if self.catalog.function(&name).is_some() {
                    self.require_function_owner(&name, "replace", position)?;
                }
                self.catalog.create_function(f, cf.or_replace, position)?;
                self.own_function(&name);
                Ok(Outcome::Message(format!("created function {name}")))
            }
            Statement::DropFunction { name, if_exists } => {
                let key = key_of(name);
                if self.catalog.function(&key).is_some() {
                    self.require_function_owner(&key, "drop", position)?;
                }
                if let Some(used) = self.catalog.grants().function_use(&key) {
                    return Err(SqlError::plan(
                        format!("function '{name}' is {used}; drop that first"),
                        position,
                    ));
                }
                if self.policy_functions().contains(&key) {
                    return Err(SqlError::plan(
                        format!("function '{name}' is called by a mask or row filter's function; change that first"),
                        position,
                    ));
                }
                self.catalog.drop_function(name, *if_exists)?;
                self.catalog.grants_mut().forget_function(&key);
                Ok(Outcome::Message(format!("dropped function {name}")))
            }
            other => Err(SqlError::plan(
                format!("{} is not a function statement", other.kind()),
                position,
            )),
        }
    }

    /// Executes one statement. `select_sink` decides where a top-level
    /// SELECT's rows go; `text` is the statement's SQL for SHOW JOBS.
    pub fn execute(
        &mut self,
        stmt: &Located,
        text: &str,
        select_sink: &SelectSink,
    ) -> Result<Outcome> {
        let position = stmt.position;
        match &stmt.statement {
            Statement::CreateTable(ct) => self.create_table_statement(ct),
            Statement::CreateView {
                name,
                query,
                materialized,
                if_not_exists,
                expectations,
            } => {
                if *materialized {
                    return self.create_materialized_view(
                        name,
                        query,
                        *if_not_exists,
                        text,
                        position,
                        expectations,
                    );
                }
                self.check_create(position_of(name))?;
                // Plan now so that errors show at creation time (and the
                // creator, the view's owner, may read what it reads).
                let plan = self.plan_checked(query)?;
                let view = ViewEntry {
                    query: (**query).clone(),
                    materialized: false,
                };
                let existed = self.catalog.get(name).is_some();
                if !existed {
                    // Checked (and kept) before the view exists.
                    self.set_expectations(&key_of(name), &plan.scope, expectations)?;
                    self.record_lineage(None, &key_of(name), &plan);
                }
                self.catalog.create_view(name, view, *if_not_exists)?;
                if !existed {
                    self.own(&key_of(name));
                }
                Ok(Outcome::Message(format!("created view {name}")))
            }
            Statement::Drop {
                names,
                if_exists,
                view,
            } => self.drop_statement(names, *if_exists, *view),
            Statement::CreateFunction(_) | Statement::DropFunction { .. } => {
                self.function_statement(&stmt.statement, position)
            }
            Statement::Governance(g) => self.governance(g, position),
            Statement::Alter(a) => self.alter(a, position),
            Statement::Set { key, value } => {
                self.check_option(key, value, position)?;
                self.set_option(key, value, position)?;
                Ok(Outcome::Message(format!("set {key} = {value}")))
            }
            Statement::ShowTables => self.show_tables(),
            Statement::ShowJobs => self.show_jobs(),
            Statement::Describe(name) => {
                if self.catalog.get(name).is_some() {
                    let on = crate::access::Securable::Object(key_of(name));
                    self.require(crate::access::Privilege::Select, &on, position_of(name))?;
                }
                self.describe(name)
            }
            Statement::StopJob { id, savepoint } => {
                self.stop_job_statement(id, *savepoint, position)
            }
            Statement::Explain(inner) if matches!(**inner, Statement::StatementSet(_)) => {
                let Statement::StatementSet(inserts) = &**inner else {
                    return Err(SqlError::plan("not a statement set", position));
                };
                let (plans, graph) = self.plan_statement_set(inserts)?;
                let plans: Vec<String> = plans.iter().map(Plan::describe).collect();
                Ok(Outcome::Explain(format!(
                    "== logical plans ==\n{}\n== operator graph ==\n{}",
                    plans.join("\n"),
                    graph.explain().map_err(SqlError::Engine)?
                )))
            }
            Statement::Explain(inner) => {
                let inner = Located {
                    statement: (**inner).clone(),
                    position,
                };
                let (plan, graph, _) = self.plan_job(&inner, select_sink)?;
                Ok(Outcome::Explain(format!(
                    "== logical plan ==\n{}\n== operator graph ==\n{}",
                    plan.describe(),
                    graph.explain().map_err(SqlError::Engine)?
                )))
            }
            Statement::StatementSet(inserts) => {
                let (plans, graph) = self.plan_statement_set(inserts)?;
                let bounded = plans.iter().all(|p| self.is_bounded(p));
                let tables: Vec<String> = inserts
                    .iter()
                    .filter_map(|i| match &i.statement {
                        Statement::Insert { table, .. } => Some(key_of(table)),
                        _ => None,
                    })
                    .collect();
                let job = self.upcoming_job_id();
                for (table, plan) in tables.iter().zip(&plans) {
                    self.record_lineage(Some(&job), table, plan);
                }
                Ok(Outcome::Job(self.new_job(
                    text,
                    graph,
                    bounded,
                    JobKind::StatementSet(tables),
                    &plans[0],
                    None,
                    stmt.position,
                )?))
            }
            Statement::Insert { .. } | Statement::Query(_) => {
                let (plan, graph, clauses) = self.plan_job(stmt, select_sink)?;
                let bounded = self.is_bounded(&plan);
                let schema = output_schema(&plan);
                let finish = self.check_finish(clauses.as_ref(), &schema, bounded)?;
                let kind = match &stmt.statement {
                    Statement::Insert { table, .. } => JobKind::Insert(key_of(table)),
                    _ => JobKind::Select,
                };
                if let JobKind::Insert(table) = &kind {
                    let job = self.upcoming_job_id();
                    self.record_lineage(Some(&job), table, &plan);
                }
                Ok(Outcome::Job(self.new_job(
                    text,
                    graph,
                    bounded,
                    kind,
                    &plan,
                    finish,
                    stmt.position,
                )?))
            }
        }
    }

    /// Records a job planned from the statement `text`.
    fn new_job(
        &mut self,
        text: &str,
        mut graph: JobGraph,
        bounded: bool,
        kind: JobKind,
        plan: &Plan,
        finish: Option<Finish>,
        position: crate::error::Position,
    ) -> Result<Box<PreparedJob>> {
        let id = format!("job-{}", self.next_job);
        self.next_job += 1;
        let status = Arc::new(Mutex::new(JobStatus::Created));
        let statement = text.split_whitespace().collect::<Vec<_>>().join(" ");
        graph.checkpointing = self.checkpoint_config(&id, &statement, &graph, position)?;
        graph.state = self.state_config(position)?;
        graph.latency_interval = self.latency_interval(position)?;
        if let Some(d) = self.duration_option("execution.buffer-timeout", position)? {
            graph.buffer_timeout = d;
        }
        if let Some(d) = self.duration_option("pipeline.auto-watermark-interval", position)? {
            graph.watermark_interval = d;
        }
        if let Some(v) = self.option("execution.checkpointing.tolerable-failed-checkpoints") {
            graph.tolerable_failed_checkpoints = v.trim().parse::<u32>().map_err(|_| {
                SqlError::plan(
                    format!(
                        "'execution.checkpointing.tolerable-failed-checkpoints' must be a \
                         whole number of checkpoints, not '{v}'"
                    ),
                    position,
                )
            })?;
        }
        let owner = self.principal().user.clone();
        self.jobs
            .push((id.clone(), statement.clone(), Arc::clone(&status), owner));
        let openlineage = self.openlineage_spec(&id, &statement);
        Ok(Box::new(PreparedJob {
            openlineage,
            id,
            statement,
            graph,
            bounded,
            status,
            kind,
            schema: output_schema(plan),
            updating: plan.updating,
            finish,
        }))
    }

    /// `CREATE MATERIALIZED VIEW`: a table of the view connector whose
    /// contents a job keeps up to date.
    fn create_materialized_view(
        &mut self,
        name: &sqlparser::ast::ObjectName,
        query: &sqlparser::ast::Query,
        if_not_exists: bool,
        text: &str,
        position: crate::error::Position,
        expectations: &[crate::parser::ExpectDecl],
    ) -> Result<Outcome> {
        if !self.registry.names().contains(&MATERIALIZED_VIEW_CONNECTOR) {
            return Err(SqlError::plan(
                "CREATE MATERIALIZED VIEW needs the Flight SQL server (`runnel serve`), which serves the view's contents; here use CREATE VIEW and INSERT INTO a sink",
                position,
            ));
        }
        self.check_create(position_of(name))?;
        if self.catalog.get(name).is_some() {
            if if_not_exists {
                return Ok(Outcome::Message(format!("{name} already exists")));
            }
            // Before lowering: lowering registers the view's sink.
            return Err(SqlError::plan(
                format!("'{name}' already exists"),
                position_of(name),
            ));
        }
        // The view's expectations check the rows its job keeps.
        let key = key_of(name);
        let probe = self.plan_checked(query)?;
        self.set_expectations(&key, &probe.scope, expectations)?;
        let planned = self.planning_writes(|| {
            let plan = self.plan_checked(query)?;
            crate::planner::expect::apply_expectations(
                &self.catalog,
                &self.expect,
                plan,
                &key,
                position_of(name),
            )
        });
        let (mut plan, quarantines) = match planned {
            Ok(p) => p,
            Err(e) => {
                self.catalog.grants_mut().forget_object(&key);
                return Err(e);
            }
        };
        plan.prune_all();
        let descriptor = runnel_engine::connector::TableDescriptor {
            name: key_of(name),
            schema: output_schema(&plan),
            options: [(
                "connector".to_string(),
                MATERIALIZED_VIEW_CONNECTOR.to_string(),
            )]
            .into_iter()
            .collect(),
            watermark: None,
            primary_key: vec![],
            partition_keys: vec![],
        };
        let graph = self
            .lower_with_quarantines(
                vec![(
                    &plan,
                    SinkTarget::Table(descriptor.clone()),
                    position_of(name),
                )],
                quarantines,
                position_of(name),
            )
            .inspect_err(|_| self.catalog.grants_mut().forget_object(&key))?;
        let bounded = self.is_bounded(&plan);
        self.catalog.create_table_entry(
            name,
            TableEntry {
                kind: TableKind::MaterializedView,
                descriptor,
                proctime: vec![],
            },
            false,
        )?;
        self.own(&key_of(name));
        let job = self.upcoming_job_id();
        self.record_lineage(Some(&job), &key_of(name), &plan);
        self.inherit_policies(&key_of(name), query);
        let kind = JobKind::MaterializedView(key_of(name));
        Ok(Outcome::Job(self.new_job(
            text, graph, bounded, kind, &plan, None, position,
        )?))
    }

    /// True when every table the plan scans is bounded.
    fn is_bounded(&self, plan: &Plan) -> bool {
        plan.scanned_tables().iter().all(|t| {
            self.registry
                .resolve(&t.descriptor)
                .and_then(|c| c.source(&t.descriptor))
                .map(|s| s.bounded)
                .unwrap_or(true)
        })
    }

    /// Plans `INSERT INTO table query`: the plan, aligned to the sink's
    /// columns, and the sink's descriptor.
    fn plan_insert(
        &self,
        table: &sqlparser::ast::ObjectName,
        query: &sqlparser::ast::Query,
    ) -> Result<(Plan, runnel_engine::connector::TableDescriptor)> {
        let Some(Entry::Table(sink)) = self.catalog.get(table) else {
            return Err(SqlError::plan(
                format!("INSERT INTO needs a table; '{table}' is not one"),
                position_of(table),
            ));
        };
        self.require(
            crate::access::Privilege::Insert,
            &crate::access::Securable::Object(key_of(table)),
            position_of(table),
        )?;
        let plan = self.plan_checked(query)?;
        // VIRTUAL metadata columns are read-only: the query does not
        // produce them and the sink does not receive them.
        let written: Vec<usize> = (0..sink.descriptor.schema.fields().len())
            .filter(|&i| !sink.descriptor.metadata_column(i).is_some_and(|(_, v)| v))
            .collect();
        let descriptor = pruned_descriptor(&sink.descriptor, &written);
        let plan = align_to_sink(plan, &descriptor, position_of(table))?;
        // The table's expectations check every row written to it.
        let mut plan = crate::planner::expect::apply_expectations(
            &self.catalog,
            &self.expect,
            plan,
            &key_of(table),
            position_of(table),
        )?;
        plan.prune_all();
        Ok((plan, descriptor))
    }

    /// Plans the INSERTs of a statement set into one job graph in which
    /// each source is read once.
    fn plan_statement_set(&self, inserts: &[Located]) -> Result<(Vec<Plan>, JobGraph)> {
        let (planned, quarantines) = self.planning_writes(|| self.plan_inserts(inserts))?;
        let queries = planned
            .iter()
            .map(|(plan, descriptor, position)| {
                (plan, SinkTarget::Table(descriptor.clone()), *position)
            })
            .collect();
        let position = planned.first().map(|p| p.2).unwrap_or_default();
        let graph = self.lower_with_quarantines(queries, quarantines, position)?;
        Ok((planned.into_iter().map(|(p, ..)| p).collect(), graph))
    }

    /// The plans of a statement set's INSERTs, each with its table.
    fn plan_inserts(
        &self,
        inserts: &[Located],
    ) -> Result<
        Vec<(
            Plan,
            runnel_engine::connector::TableDescriptor,
            crate::error::Position,
        )>,
    > {
        let mut planned = Vec::with_capacity(inserts.len());
        let mut targets: Vec<String> = Vec::new();
        for insert in inserts {
            let Statement::Insert { table, query } = &insert.statement else {
                return Err(SqlError::plan(
                    "a statement set holds only INSERT INTO statements",
                    insert.position,
                ));
            };
            // Two sinks of one job writing one table would write the same
            // file names (and commit the same transactions).
            let key = key_of(table);
            if targets.contains(&key) {
                return Err(SqlError::plan(
                    format!(
                        "the statement set writes '{key}' twice; write each table once, \
                         combining the queries with UNION ALL"
                    ),
                    position_of(table),
                ));
            }
            targets.push(key);
            let (plan, descriptor) = self.plan_insert(table, query)?;
            planned.push((plan, descriptor, position_of(table)));
        }
        Ok(planned)
    }

    /// Lowers `queries` and the quarantine branches they asked for into
    /// one job graph.
    fn lower_with_quarantines(
        &self,
        queries: Vec<(&Plan, SinkTarget, crate::error::Position)>,
        quarantines: Vec<crate::planner::expect::Quarantine>,
        position: crate::error::Position,
    ) -> Result<JobGraph> {
        let branches = self.quarantine_plans(quarantines)?;
        let all: Vec<(&Plan, SinkTarget, crate::error::Position)> = queries
            .into_iter()
            .chain(
                branches
                    .iter()
                    .map(|(p, d, at)| (p, SinkTarget::Table(d.clone()), *at)),
            )
            .collect();
        lower_all(all, &self.lower_options(position)?)
    }

    /// Plans INSERT or SELECT into a job graph.
    fn plan_job(
        &self,
        stmt: &Located,
        select_sink: &SelectSink,
    ) -> Result<(Plan, JobGraph, Option<FinishClauses>)> {
        let options = self.lower_options(stmt.position)?;
        match &stmt.statement {
            Statement::Insert { table, query } => {
                let ((plan, descriptor), quarantines) =
                    self.planning_writes(|| self.plan_insert(table, query))?;
                let graph = self.lower_with_quarantines(
                    vec![(&plan, SinkTarget::Table(descriptor), position_of(table))],
                    quarantines,
                    position_of(table),
                )?;
                Ok((plan, graph, None))
            }
            Statement::Query(query) => {
                let (plan, clauses) = self.plan_query_statement(query)?;
                let graph = lower(&plan, select_sink(&plan), &options, stmt.position)?;
                Ok((plan, graph, clauses))
            }
            other => Err(SqlError::plan(
                format!("cannot EXPLAIN {other}"),
                stmt.position,
            )),
        }
    }
}

/// The output columns of a plan, without the changelog column.
fn output_schema(plan: &Plan) -> SchemaRef {
    let fields: Vec<Field> = plan
        .scope
        .schema()
        .fields()
        .iter()
        .filter(|f| f.name() != ROW_KIND_COLUMN)
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn rows(columns: &[(&str, Vec<String>)]) -> Result<Outcome> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, _)| Field::new(*n, DataType::Utf8, false))
        .collect();
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|(_, v)| Arc::new(StringArray::from(v.clone())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| SqlError::Engine(e.into()))?;
    Ok(Outcome::Rows(batch))
}
