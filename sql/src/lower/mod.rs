//! Where a plan becomes a `JobGraph`: lowering turns the logical plan
//! ([`crate::plan::Plan`]) plus a sink into the engine's DAG of sources,
//! operators and sinks.
//!
//! Each plan node becomes one operator (a scan may add a padding step for
//! pruned columns and one for PROCTIME columns). A table read as a stream
//! in several places of a plan, or by several plans of a statement set, is
//! read once: one source fans out to every place (see [`lower_all`]). The edges between them are
//! chosen here: a hash exchange on the group keys in front of every
//! aggregate and on each side's keys in front of a join; forward (chained)
//! edges elsewhere; round-robin where the parallelism changes. The build
//! side of a lookup join is read completely at lowering time.

mod late;
mod scan;

pub(crate) use scan::pruned_descriptor;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use runnel_engine::connector::{parse_duration, ConnectorRegistry, TableDescriptor};
use runnel_engine::expr::Expr;
use runnel_engine::graph::{Exchange, JobGraph, NodeId};
use runnel_engine::operator::{OperatorFactory, OperatorMetrics, TaskInfo};
use runnel_engine::ops::filter_project::{FilterOperator, ProjectOperator};
use runnel_engine::ops::{
    JoinKind, LookupJoin, MaterializeSpec, ProcTimeOperator, UnionOperator, WindowAssign,
};
use runnel_engine::source::SourcePoll;

use crate::catalog::TableEntry;
use crate::error::{Position, Result, SqlError};
use crate::plan::{engine_message, Node, Plan};

/// Settings for lowering a plan.
#[derive(Clone)]
pub struct LowerOptions {
    /// Default parallelism of operators.
    pub parallelism: usize,
    /// Connectors by name.
    pub registry: ConnectorRegistry,
    /// `'table.exec.state.ttl'`: the state TTL of regular joins whose
    /// query gives none in a STATE_TTL hint; `None` keeps state forever.
    pub state_ttl: Option<std::time::Duration>,
    /// Where state TTL reads processing time.
    pub clock: runnel_engine::time::Clock,
    /// `'table.exec.late-data.table'`: the table that receives the rows
    /// window aggregates drop as late (checked by the session).
    pub late_table: Option<TableDescriptor>,
}

/// Where a job's rows go.
pub enum SinkTarget {
    /// A catalog table (INSERT INTO).
    Table(TableDescriptor),
    /// An operator built by the caller (print to the console, collect in memory).
    Operator {
        /// Node name.
        name: String,
        /// The sink.
        factory: OperatorFactory,
        /// Its parallelism.
        parallelism: usize,
    },
}

/// Lowers `plan` plus a sink into a job graph.
pub fn lower(
    plan: &Plan,
    sink: SinkTarget,
    options: &LowerOptions,
    position: Position,
) -> Result<JobGraph> {
    lower_all(vec![(plan, sink, position)], options)
}

/// Lowers several plans, each with its sink, into one job graph (a
/// statement set). A table that several plans, or several places of one
/// plan, read as a stream is read by one source whose rows fan out to every
/// reader; it reads the union of the columns they use.
pub fn lower_all(
    queries: Vec<(&Plan, SinkTarget, Position)>,
    options: &LowerOptions,
) -> Result<JobGraph> {
    let mut graph = JobGraph::new();
    let mut reads: HashMap<String, Option<Vec<usize>>> = HashMap::new();
    for (plan, _, _) in &queries {
        for (table, projection) in plan.stream_scans() {
            let entry = reads
                .entry(scan_key(table))
                .or_insert_with(|| projection.map(<[usize]>::to_vec));
            *entry = match (entry.take(), projection) {
                (Some(mut a), Some(b)) => {
                    a.extend_from_slice(b);
                    a.sort_unstable();
                    a.dedup();
                    Some(a)
                }
                _ => None,
            };
        }
    }
    let mut lowerer = Lowerer {
        graph: &mut graph,
        options,
        position: queries.first().map(|q| q.2).unwrap_or_default(),
        names: HashMap::new(),
        sources: 0,
        memory_sources: 0,
        reads,
        lowered: HashMap::new(),
        late: Vec::new(),
    };
    let mut outputs = Vec::with_capacity(queries.len());
    for (plan, sink, position) in queries {
        lowerer.position = position;
        let (node, par) = lowerer.lower(plan)?;
        outputs.push((plan, node, par, sink, position));
    }
    let in_memory = lowerer.sources > 0 && lowerer.sources == lowerer.memory_sources;
    let late = std::mem::take(&mut lowerer.late);
    let mut names = std::mem::take(&mut lowerer.names);
    if let Some(desc) = &options.late_table {
        let position = outputs.first().map(|o| o.4).unwrap_or_default();
        late::sink_late_rows(&mut graph, &mut names, late, desc, options, position)?;
    }
    graph.in_memory = in_memory;
    for (plan, node, par, sink, position) in outputs {
        let (name, factory, sink_par) = match sink {
            SinkTarget::Table(desc) => {
                let connector = options
                    .registry
                    .resolve(&desc)
                    .map_err(|e| SqlError::plan(engine_message(&e), position))?;
                let materialize = needs_materializer(plan, &desc, connector.writes_upserts(&desc));
                let factory = connector.sink(&desc, plan.updating).map_err(|e| {
                    let msg = engine_message(&e);
                    let msg = match plan.updating_cause() {
                        Some(cause) => format!("{msg} (the query is an updating stream because {cause}; use a window or an INNER join of append-only streams, or a sink that accepts updates: 'print', 'blackhole', 'upsert-kafka' or 'delta' with a PRIMARY KEY, or 'delta' with 'sink.updating-mode' = 'changelog')"),
                        None => msg,
                    };
                    SqlError::plan(msg, position)
                })?;
                // An upsert sink keyed other than the query's changes gets
                // a materializer keyed by the sink's key in front of it.
                if let Some(pk) = materialize {
                    let m = MaterializeSpec {
                        key_columns: pk.clone(),
                    }
                    .factory(plan.schema())
                    .map_err(|e| SqlError::plan(engine_message(&e), position))?;
                    let name = unique(&mut names, &format!("upsert materializer: {}", desc.name));
                    let op = graph.add_operator(name, par, m);
                    connect(&mut graph, node, par, op, par, Some(pk))?;
                    let sink = graph.add_operator(
                        unique(&mut names, &format!("sink: {}", desc.name)),
                        par,
                        factory,
                    );
                    connect(&mut graph, op, par, sink, par, None)?;
                    continue;
                }
                // An upsert sink folds or orders changes per key: every row
                // of a key goes to one subtask, in order.
                // (An updating query keyed by the sink's key already comes
                // partitioned by it.)
                if connector.writes_upserts(&desc) && !desc.primary_key.is_empty() && !plan.updating
                {
                    let sink = graph.add_operator(
                        unique(&mut names, &format!("sink: {}", desc.name)),
                        par,
                        factory,
                    );
                    connect(
                        &mut graph,
                        node,
                        par,
                        sink,
                        par,
                        Some(desc.primary_key.clone()),
                    )?;
                    continue;
                }
                (format!("sink: {}", desc.name), factory, par)
            }
            SinkTarget::Operator {
                name,
                factory,
                parallelism,
            } => (name, factory, parallelism),
        };
        let sink_node = graph.add_operator(unique(&mut names, &name), sink_par, factory);
        connect(&mut graph, node, par, sink_node, sink_par, None)?;
    }
    Ok(graph)
}

/// What identifies steps that make the same stream, so that they are
/// lowered once and fan out: a scan (whatever columns each reader uses:
/// the shared scan reads them all, see [`lower_all`]), and filters,
/// projections and window assignments over such steps. Stateful steps are
/// not shared (`None`).
fn reuse_key(plan: &Plan) -> Option<String> {
    Some(match &plan.node {
        Node::Scan {
            table,
            proctime_watermark,
            ..
        } => format!("scan({}, {proctime_watermark})", scan_key(table)),
        Node::Filter { input, predicate } => {
            format!("filter({predicate:?}, {})", reuse_key(input)?)
        }
        Node::Project { input, exprs } => format!("project({exprs:?}, {})", reuse_key(input)?),
        Node::WindowTvf {
            input,
            window,
            time_column,
            partition,
            offset,
        } => format!(
            "window({window:?}, {time_column}, {partition:?}, {offset}, {})",
            reuse_key(input)?
        ),
        _ => return None,
    })
}

/// What makes two scans the same read: the table with the same options,
/// watermark and PROCTIME columns.
fn scan_key(table: &TableEntry) -> String {
    let d = &table.descriptor;
    format!(
        "{}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
        d.name, d.options, d.watermark, table.proctime
    )
}

fn connect(
    graph: &mut JobGraph,
    from: NodeId,
    from_par: usize,
    to: NodeId,
    to_par: usize,
    keys: Option<Vec<usize>>,
) -> Result<()> {
    let exchange = match keys {
        Some(k) => Exchange::Hash(k),
        None if from_par == to_par => Exchange::Forward,
        None => Exchange::RoundRobin,
    };
    graph.connect(from, to, exchange).map_err(SqlError::Engine)
}

fn unique(names: &mut HashMap<String, usize>, base: &str) -> String {
    let n = names.entry(base.to_string()).or_insert(0);
    *n += 1;
    if *n == 1 {
        base.to_string()
    } else {
        format!("{base}#{n}")
    }
}

struct Lowerer<'g> {
    graph: &'g mut JobGraph,
    options: &'g LowerOptions,
    position: Position,
    names: HashMap<String, usize>,
    /// Sources lowered so far, and how many of them read memory.
    sources: usize,
    memory_sources: usize,
    /// The columns each table's shared scan reads (by [`scan_key`]):
    /// the union over every place it is read, `None` for all.
    reads: HashMap<String, Option<Vec<usize>>>,
    /// Steps lowered so far, by [`reuse_key`]: the node that ends them,
    /// and its parallelism.
    lowered: HashMap<String, (NodeId, usize)>,
    /// The nodes whose rows go to the late-data table, with parallelism.
    late: Vec<(NodeId, usize)>,
}

impl Lowerer<'_> {
    fn err(&self, e: runnel_engine::EngineError) -> SqlError {
        SqlError::plan(engine_message(&e), self.position)
    }

    /// The parallelism of an operator keyed by `keys`: 1 without keys (a
    /// global aggregate), the job's otherwise.
    fn keyed_parallelism(&self, keys: &[usize]) -> usize {
        if keys.is_empty() {
            1
        } else {
            self.options.parallelism.max(1)
        }
    }

    /// Adds an operator keyed by `keys` behind a hash exchange on them (at
    /// parallelism 1 without keys: a global aggregate).
    fn lower_keyed(
        &mut self,
        input: &Plan,
        name: &str,
        keys: &[usize],
        factory: OperatorFactory,
    ) -> Result<(NodeId, usize)> {
        let (n, p) = self.lower(input)?;
        let par = self.keyed_parallelism(keys);
        let op = self
            .graph
            .add_operator(unique(&mut self.names, name), par, factory);
        connect(self.graph, n, p, op, par, Some(keys.to_vec()))?;
        Ok((op, par))
    }

    /// Adds a join of two inputs behind a hash exchange on each side's keys.
    fn lower_join(
        &mut self,
        left: &Plan,
        right: &Plan,
        name: &str,
        [left_keys, right_keys]: [&Vec<usize>; 2],
        factory: OperatorFactory,
    ) -> Result<(NodeId, usize)> {
        let par = self.options.parallelism.max(1);
        let (ln, lp) = self.lower(left)?;
        let (rn, rp) = self.lower(right)?;
        let op = self
            .graph
            .add_operator(unique(&mut self.names, name), par, factory);
        connect(self.graph, ln, lp, op, par, Some(left_keys.clone()))?;
        connect(self.graph, rn, rp, op, par, Some(right_keys.clone()))?;
        Ok((op, par))
    }

    /// Adds the nodes of `plan`, or finds them when the same steps were
    /// lowered before (see [`reuse_key`]); returns the last node and its
    /// parallelism.
    fn lower(&mut self, plan: &Plan) -> Result<(NodeId, usize)> {
        let key = reuse_key(plan);
        if let Some(&done) = key.as_ref().and_then(|k| self.lowered.get(k)) {
            return Ok(done);
        }
        let out = self.lower_node(plan)?;
        if let Some(k) = key {
            self.lowered.insert(k, out);
        }
        Ok(out)
    }

    fn lower_node(&mut self, plan: &Plan) -> Result<(NodeId, usize)> {
        match &plan.node {
            Node::Scan {
                table,
                projection,
                proctime_watermark,
            } => {
                let reads = match self.reads.get(&scan_key(table)) {
                    Some(union) => union.clone(),
                    None => projection.clone(),
                };
                self.lower_scan(table, reads.as_deref(), *proctime_watermark)
            }
            Node::ProcTime { input } => {
                let (n, p) = self.lower(input)?;
                let name = plan.scope.columns.last().map(|c| c.name.clone());
                let op = self.graph.add_operator(
                    unique(&mut self.names, "proctime"),
                    p,
                    ProcTimeOperator::factory(
                        &input.schema(),
                        name.into_iter().collect(),
                        self.options.clock.clone(),
                    ),
                );
                connect(self.graph, n, p, op, p, None)?;
                Ok((op, p))
            }
            Node::Filter { input, predicate } => self.lower_filter(input, predicate),
            Node::Expect { input, spec } => self.lower_expect(input, spec),
            Node::Project { input, exprs } => self.lower_project(input, exprs),
            Node::WindowTvf {
                input,
                window,
                time_column,
                offset,
                ..
            } => {
                // With a late-data table, rows without a time go there.
                let late = self.options.late_table.is_some();
                let factory = WindowAssign::factory_reporting(
                    *window,
                    *time_column,
                    *offset,
                    &input.schema(),
                    late,
                )
                .map_err(|e| self.err(e))?;
                let (n, p) = self.lower(input)?;
                let op =
                    self.graph
                        .add_operator(unique(&mut self.names, "window assign"), p, factory);
                connect(self.graph, n, p, op, p, None)?;
                let results = WindowAssign::output_schema(&input.schema());
                self.part_late_rows((op, p), late, results)
            }
            Node::WindowJoin { left, right, spec } => {
                let mut spec = spec.clone();
                spec.late_rows = self.options.late_table.is_some();
                let factory = spec
                    .clone()
                    .factory(left.schema(), right.schema())
                    .map_err(|e| self.err(e))?;
                let keys = [&spec.left_keys, &spec.right_keys];
                let (op, par) = self.lower_join(left, right, "window join", keys, factory)?;
                self.part_late_rows((op, par), spec.late_rows, plan.schema())
            }
            Node::StreamJoin { left, right, spec } => {
                let mut spec = spec.clone();
                for ttl in &mut spec.ttl {
                    *ttl = ttl.or(self.options.state_ttl);
                }
                spec.clock = self.options.clock.clone();
                let factory = spec
                    .clone()
                    .factory(left.schema(), right.schema())
                    .map_err(|e| self.err(e))?;
                let keys = [&spec.left_keys, &spec.right_keys];
                self.lower_join(left, right, "join", keys, factory)
            }
            Node::OverAggregate { input, spec } => self.lower_over_aggregate(input, spec),
            Node::TopN {
                input,
                spec,
                position,
            } => self.lower_top_n(input, spec, *position),
            Node::Normalize { input, spec } => {
                let factory = spec
                    .clone()
                    .factory(input.schema())
                    .map_err(|e| self.err(e))?;
                self.lower_keyed(input, "changelog normalize", &spec.key_columns, factory)
            }
            Node::TemporalJoin { left, right, spec } => {
                let factory = spec
                    .clone()
                    .factory(left.schema(), right.schema())
                    .map_err(|e| self.err(e))?;
                let keys = [&spec.left_keys, &spec.right_keys];
                self.lower_join(left, right, "temporal join", keys, factory)
            }
            Node::IntervalJoin { left, right, spec } => {
                let mut spec = spec.clone();
                spec.late_rows = self.options.late_table.is_some();
                let factory = spec
                    .clone()
                    .factory(left.schema(), right.schema())
                    .map_err(|e| self.err(e))?;
                let keys = [&spec.left_keys, &spec.right_keys];
                let (op, par) = self.lower_join(left, right, "interval join", keys, factory)?;
                self.part_late_rows((op, par), spec.late_rows, plan.schema())
            }
            Node::WindowAggregate { input, spec } => self.lower_window_aggregate(input, spec),
            Node::SessionAggregate { input, spec } => self.lower_session_aggregate(input, spec),
            Node::GroupAggregate { input, spec } => {
                let mut spec = spec.clone();
                spec.ttl = spec.ttl.or(self.options.state_ttl);
                spec.clock = self.options.clock.clone();
                let factory = spec
                    .clone()
                    .factory(input.schema())
                    .map_err(|e| self.err(e))?;
                self.lower_keyed(input, "group aggregate", &spec.key_columns, factory)
            }
            Node::Union { inputs } => self.lower_union(inputs),
            Node::LookupJoin {
                input,
                table,
                stream_keys,
                table_keys,
                kind,
            } => self.lower_lookup_join(input, table, stream_keys, table_keys, *kind),
        }
    }

    /// A filter chained behind its input.
    fn lower_filter(&mut self, input: &Plan, predicate: &Expr) -> Result<(NodeId, usize)> {
        let (n, p) = self.lower(input)?;
        let pred = predicate.clone();
        let op = self.graph.add_operator(
            unique(&mut self.names, "filter"),
            p,
            Arc::new(
                move |_t: &TaskInfo| Ok(Box::new(FilterOperator::new(pred.clone())) as Box<_>),
            ),
        );
        connect(self.graph, n, p, op, p, None)?;
        Ok((op, p))
    }

    /// The expectations of a table or view, chained behind their input.
    fn lower_expect(
        &mut self,
        input: &Plan,
        spec: &runnel_engine::ops::ExpectSpec,
    ) -> Result<(NodeId, usize)> {
        let (n, p) = self.lower(input)?;
        let spec = spec.clone();
        let op = self.graph.add_operator(
            unique(&mut self.names, &format!("expect: {}", spec.object)),
            p,
            Arc::new(move |_t: &TaskInfo| {
                Ok(Box::new(runnel_engine::ops::ExpectOperator::new(spec.clone())) as Box<_>)
            }),
        );
        connect(self.graph, n, p, op, p, None)?;
        Ok((op, p))
    }

    /// A projection chained behind its input, its expressions checked
    /// against the input's schema now rather than when the job starts.
    fn lower_project(&mut self, input: &Plan, exprs: &[(Expr, String)]) -> Result<(NodeId, usize)> {
        let (n, p) = self.lower(input)?;
        let schema = input.schema();
        ProjectOperator::new(exprs.to_vec(), &schema).map_err(|e| self.err(e))?;
        let exprs = exprs.to_vec();
        let op = self.graph.add_operator(
            unique(&mut self.names, "project"),
            p,
            Arc::new(move |_t: &TaskInfo| {
                Ok(Box::new(ProjectOperator::new(exprs.clone(), &schema)?) as Box<_>)
            }),
        );
        connect(self.graph, n, p, op, p, None)?;
        Ok((op, p))
    }

    /// A union at the default parallelism; an input whose parallelism
    /// differs reaches it round-robin.
    fn lower_union(&mut self, inputs: &[Plan]) -> Result<(NodeId, usize)> {
        let par = self.options.parallelism.max(1);
        let lowered = inputs
            .iter()
            .map(|i| self.lower(i))
            .collect::<Result<Vec<_>>>()?;
        let op = self.graph.add_operator(
            unique(&mut self.names, "union"),
            par,
            UnionOperator::factory(),
        );
        for (n, p) in lowered {
            connect(self.graph, n, p, op, par, None).or_else(|_| {
                self.graph
                    .connect(n, op, Exchange::RoundRobin)
                    .map_err(SqlError::Engine)
            })?;
        }
        Ok((op, par))
    }

    /// A lookup join chained behind the stream, holding the whole bounded
    /// table it joins with.
    fn lower_lookup_join(
        &mut self,
        input: &Plan,
        table: &TableEntry,
        stream_keys: &[usize],
        table_keys: &[usize],
        kind: JoinKind,
    ) -> Result<(NodeId, usize)> {
        let (n, p) = self.lower(input)?;
        let rows = load_bounded(table, &self.options.registry).map_err(|e| self.err(e))?;
        let mut join = LookupJoin::new(
            kind,
            &input.schema(),
            stream_keys.to_vec(),
            rows,
            table_keys.to_vec(),
        )
        .map_err(|e| self.err(e))?;
        // 'lookup.cache.ttl': read the table again once the loaded copy is
        // that old (processing time); without it the table is read once.
        if let Some(v) = table.descriptor.option("lookup.cache.ttl") {
            let ttl = parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| {
                self.err(runnel_engine::EngineError::Plan(format!(
                    "option 'lookup.cache.ttl' of table '{}' must be a duration such as '10 min', not '{v}'",
                    table.descriptor.name
                )))
            })?;
            let (entry, registry) = (table.clone(), self.options.registry.clone());
            join = join
                .with_refresh(runnel_engine::ops::lookup_join::Refresh {
                    load: Arc::new(move || load_bounded(&entry, &registry)),
                    ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
                    clock: self.options.clock.clone(),
                    name: table.descriptor.name.clone(),
                })
                .map_err(|e| self.err(e))?;
        }
        let op = self.graph.add_operator(
            unique(
                &mut self.names,
                &format!("lookup join: {}", table.descriptor.name),
            ),
            p,
            join.factory(),
        );
        connect(self.graph, n, p, op, p, None)?;
        Ok((op, p))
    }
}

/// Reads a bounded table completely (the build side of a lookup join).
fn load_bounded(
    table: &TableEntry,
    registry: &ConnectorRegistry,
) -> runnel_engine::Result<RecordBatch> {
    let desc = &table.descriptor;
    let connector = registry.resolve(desc)?;
    let source = connector.source(desc)?;
    if !source.bounded {
        return Err(runnel_engine::EngineError::Plan(format!(
            "table '{}' is unbounded; a join needs a bounded table (a file) on its right side",
            desc.name
        )));
    }
    let metrics = Arc::new(OperatorMetrics::default());
    let par = source.parallelism.unwrap_or(1);
    let mut batches = Vec::new();
    for subtask in 0..par {
        let task = TaskInfo {
            operator_name: desc.name.clone(),
            subtask,
            parallelism: par,
            max_parallelism: 1024,
            checkpointing: false,
            memory_budget: None,
        };
        let mut s = (source.factory)(&task)?;
        s.open(&task, &metrics)?;
        loop {
            match s.poll()? {
                SourcePoll::Batch { batch, .. } => batches.push(batch),
                SourcePoll::Finished => break,
                SourcePoll::Pending => std::thread::sleep(Duration::from_millis(1)),
                SourcePoll::Watermark(_) | SourcePoll::SplitFinished(_) => {}
            }
        }
    }
    let mut fields: Vec<Field> = desc
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    // PROCTIME columns of the table are not part of the build side.
    fields.truncate(desc.schema.fields().len());
    let schema = Arc::new(Schema::new(fields));
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// An upsert sink (upsert-kafka, Delta in upsert mode) writes each change
/// under the row's PRIMARY KEY and drops `-U` rows: right as they come only
/// when the query's changes are keyed by exactly those columns. Otherwise
/// (an update that moves a row to another sink key would leave the old one
/// behind) the sink's key columns, for a materializer keyed by them.
fn needs_materializer(plan: &Plan, desc: &TableDescriptor, upsert: bool) -> Option<Vec<usize>> {
    if !upsert || !plan.updating || desc.primary_key.is_empty() {
        return None;
    }
    let mut pk = desc.primary_key.clone();
    pk.sort_unstable();
    let key = plan.upsert_key().map(|mut k| {
        k.sort_unstable();
        k
    });
    (key.as_ref() != Some(&pk)).then(|| desc.primary_key.clone())
}
