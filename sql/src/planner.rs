//! From a query to a logical plan, and from the plan to the engine's job
//! graph.
//!
//! The logical plan is small: scans, filters, projections, window table
//! functions, window and group aggregates, unions, lookup joins and window
//! joins. Each node knows its output columns, whether its stream is
//! updating (carries the changelog column), where its window columns are,
//! and which column is its event-time attribute (the column declared with
//! a WATERMARK, while it passes through unchanged).
//!
//! What the planner does beyond translation:
//! * predicate pushdown: WHERE conditions are applied right after the scan
//!   (or the join), before any exchange;
//! * projection pruning: a scan whose downstream needs only some columns is
//!   followed by a projection to those columns before the first exchange;
//! * append-only vs updating inference: non-windowed aggregates produce
//!   updating streams; a sink that only appends rejects them;
//! * exchanges: a hash exchange on the group keys in front of every
//!   aggregate; forward (chained) edges elsewhere; round-robin where the
//!   parallelism changes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use runnel_engine::aggregate::AggregateFunction;
use runnel_engine::connector::{ConnectorRegistry, TableDescriptor};
use runnel_engine::expr::{BinaryOp, Expr, ScalarValue};
use runnel_engine::graph::{Exchange, JobGraph, NodeId};
use runnel_engine::operator::{OperatorFactory, OperatorMetrics, TaskInfo};
use runnel_engine::ops::filter_project::{FilterOperator, ProjectOperator};
use runnel_engine::ops::{
    AggregateCall, GroupAggregateSpec, JoinKind, LookupJoin, ProcTimeOperator,
    SessionAggregateSpec, StreamJoinSpec, UnionOperator, WindowAggregateSpec, WindowAssign,
    WindowJoinSpec,
};
use runnel_engine::source::{SourcePoll, WatermarkStrategy};
use runnel_engine::types::ROW_KIND_COLUMN;
use runnel_engine::window::WindowSpec;
use sqlparser::ast::Spanned;
use sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, SelectItem, SetExpr,
};

use crate::binder::{
    bind_expr, bind_expr_with, interval_millis, is_aggregate_name, Bound, Scope, ScopeColumn,
};
use crate::catalog::{key_of, position_of, Catalog, Entry, TableEntry};
use crate::error::{Position, Result, SqlError};
use crate::parser::TABLE_ARGUMENT;

/// Name given to the window columns.
const WINDOW_START: &str = "window_start";
const WINDOW_END: &str = "window_end";
const WINDOW_TIME: &str = "window_time";
/// The time column added under a cascaded window aggregate.
const CASCADE_TIME: &str = "$window_time";

/// A logical plan node with its output facts.
#[derive(Clone)]
pub struct Plan {
    /// What the node does.
    pub node: Node,
    /// Output columns (names, qualifiers, types).
    pub scope: Scope,
    /// True when the output carries the changelog column (last column).
    pub updating: bool,
    /// The event-time attribute among the output columns.
    pub time_column: Option<usize>,
    /// The `window_start` and `window_end` columns when every row belongs
    /// to one window (after a window TVF or a window aggregate, while those
    /// columns pass through unchanged): what window joins and cascaded
    /// window aggregates key on.
    pub window: Option<(usize, usize)>,
}

/// Plan nodes.
#[derive(Clone)]
pub enum Node {
    /// Read a table.
    Scan {
        /// The table.
        table: TableEntry,
        /// Physical columns the query uses (`None`: all), set by
        /// [`Plan::prune`].
        projection: Option<Vec<usize>>,
    },
    /// Keep rows where the predicate is true.
    Filter {
        /// Input.
        input: Box<Plan>,
        /// Predicate over the input.
        predicate: Expr,
    },
    /// Compute columns.
    Project {
        /// Input.
        input: Box<Plan>,
        /// Output expressions over the input, with names.
        exprs: Vec<(Expr, String)>,
    },
    /// A window table function not yet consumed by a GROUP BY.
    WindowTvf {
        /// Input.
        input: Box<Plan>,
        /// The window.
        window: WindowSpec,
        /// Input time column.
        time_column: usize,
        /// SESSION's PARTITION BY columns.
        partition: Vec<usize>,
    },
    /// TUMBLE / HOP / CUMULATE aggregate.
    WindowAggregate {
        /// Input.
        input: Box<Plan>,
        /// The operator's spec.
        spec: WindowAggregateSpec,
    },
    /// SESSION aggregate.
    SessionAggregate {
        /// Input.
        input: Box<Plan>,
        /// The operator's spec.
        spec: SessionAggregateSpec,
    },
    /// Non-windowed (updating) aggregate.
    GroupAggregate {
        /// Input.
        input: Box<Plan>,
        /// The operator's spec.
        spec: GroupAggregateSpec,
    },
    /// UNION ALL.
    Union {
        /// Inputs, all with the same column types.
        inputs: Vec<Plan>,
    },
    /// Two windowed streams joined window by window.
    WindowJoin {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// Keys, window columns and other conditions.
        spec: WindowJoinSpec,
    },
    /// Two streams joined on keys, every row kept (a regular join).
    StreamJoin {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// Keys and other conditions.
        spec: StreamJoinSpec,
    },
    /// Stream joined with a bounded table loaded in memory.
    LookupJoin {
        /// The stream.
        input: Box<Plan>,
        /// The table.
        table: TableEntry,
        /// Stream key columns.
        stream_keys: Vec<usize>,
        /// Table key columns.
        table_keys: Vec<usize>,
        /// INNER or LEFT.
        kind: JoinKind,
    },
}

impl Plan {
    /// Output schema (without qualifiers).
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.scope.schema())
    }

    /// Projection pruning: tells every scan which of its columns the plan
    /// above it uses, given that the consumer needs the output columns
    /// `needed`. Unused columns are then not read (for connectors that can
    /// skip them) and filled with placeholders, so column numbers above the
    /// scan stay as they are.
    pub fn prune(&mut self, needed: &BTreeSet<usize>) {
        match &mut self.node {
            Node::Scan { table, projection } => {
                let physical = table.descriptor.schema.fields().len();
                let mut keep: BTreeSet<usize> =
                    needed.iter().copied().filter(|&c| c < physical).collect();
                // The event-time column drives the watermark even when unused.
                if let Some((t, _)) = table.descriptor.watermark {
                    keep.insert(t);
                }
                if keep.len() < physical {
                    *projection = Some(keep.into_iter().collect());
                }
            }
            Node::Filter { input, predicate } => {
                let mut n = needed.clone();
                predicate.columns(&mut n);
                input.prune(&n);
            }
            Node::Project { input, exprs } => {
                let mut n = BTreeSet::new();
                for (i, (e, _)) in exprs.iter().enumerate() {
                    if needed.contains(&i) {
                        e.columns(&mut n);
                    }
                }
                input.prune(&n);
            }
            Node::WindowTvf {
                input,
                time_column,
                partition,
                ..
            } => {
                let width = input.scope.columns.len();
                let mut n: BTreeSet<usize> =
                    needed.iter().copied().filter(|&c| c < width).collect();
                n.insert(*time_column);
                n.extend(partition.iter().copied());
                input.prune(&n);
            }
            Node::WindowAggregate { input, spec } => {
                let mut n: BTreeSet<usize> = spec.key_columns.iter().copied().collect();
                n.insert(spec.time_column);
                aggregate_columns(&spec.aggregates, &mut n);
                input.prune(&n);
            }
            Node::SessionAggregate { input, spec } => {
                let mut n: BTreeSet<usize> = spec.key_columns.iter().copied().collect();
                n.insert(spec.time_column);
                aggregate_columns(&spec.aggregates, &mut n);
                input.prune(&n);
            }
            Node::GroupAggregate { input, spec } => {
                let mut n: BTreeSet<usize> = spec.key_columns.iter().copied().collect();
                aggregate_columns(&spec.aggregates, &mut n);
                input.prune(&n);
            }
            Node::Union { inputs } => inputs.iter_mut().for_each(|i| i.prune(needed)),
            Node::WindowJoin {
                left,
                right,
                spec:
                    WindowJoinSpec {
                        left_keys,
                        right_keys,
                        residual,
                        ..
                    },
            }
            | Node::StreamJoin {
                left,
                right,
                spec:
                    StreamJoinSpec {
                        left_keys,
                        right_keys,
                        residual,
                    },
            } => {
                let width = left.scope.columns.len();
                let mut all = needed.clone();
                if let Some(r) = residual {
                    r.columns(&mut all);
                }
                let mut l: BTreeSet<usize> = all.iter().copied().filter(|&c| c < width).collect();
                l.extend(left_keys.iter().copied());
                let mut r: BTreeSet<usize> = all
                    .iter()
                    .filter(|&&c| c >= width)
                    .map(|c| c - width)
                    .collect();
                r.extend(right_keys.iter().copied());
                left.prune(&l);
                right.prune(&r);
            }
            Node::LookupJoin {
                input, stream_keys, ..
            } => {
                let width = input.scope.columns.len();
                let mut n: BTreeSet<usize> =
                    needed.iter().copied().filter(|&c| c < width).collect();
                n.extend(stream_keys.iter().copied());
                input.prune(&n);
            }
        }
    }

    /// [`Plan::prune`] for a plan whose every output column is consumed.
    pub fn prune_all(&mut self) {
        let n = (0..self.scope.columns.len()).collect();
        self.prune(&n);
    }

    /// The tables this plan reads as streams (not the build sides of joins).
    pub fn scanned_tables(&self) -> Vec<&TableEntry> {
        match &self.node {
            Node::Scan { table, .. } => vec![table],
            Node::Filter { input, .. }
            | Node::Project { input, .. }
            | Node::WindowTvf { input, .. }
            | Node::WindowAggregate { input, .. }
            | Node::SessionAggregate { input, .. }
            | Node::GroupAggregate { input, .. }
            | Node::LookupJoin { input, .. } => input.scanned_tables(),
            Node::Union { inputs } => inputs.iter().flat_map(|i| i.scanned_tables()).collect(),
            Node::WindowJoin { left, right, .. } | Node::StreamJoin { left, right, .. } => {
                let mut t = left.scanned_tables();
                t.extend(right.scanned_tables());
                t
            }
        }
    }

    /// A one-line-per-node description, indented by depth.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        self.describe_into(0, &mut out);
        out
    }

    fn describe_into(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        let cols: Vec<&str> = self.scope.columns.iter().map(|c| c.name.as_str()).collect();
        let kind = if self.updating {
            "updating"
        } else {
            "append-only"
        };
        let line = match &self.node {
            Node::Scan { table, projection } => match projection {
                Some(p) => format!("Scan {} reading columns {p:?}", table.descriptor.name),
                None => format!("Scan {}", table.descriptor.name),
            },
            Node::Filter { predicate, .. } => format!("Filter {predicate}"),
            Node::Project { .. } => "Project".to_string(),
            Node::WindowTvf { window, .. } => format!("WindowTvf {window:?}"),
            Node::WindowAggregate { spec, .. } => format!(
                "WindowAggregate {:?} keys {:?}",
                spec.window, spec.key_columns
            ),
            Node::SessionAggregate { spec, .. } => format!(
                "SessionAggregate gap {} ms keys {:?}",
                spec.gap, spec.key_columns
            ),
            Node::GroupAggregate { spec, .. } => {
                format!("GroupAggregate keys {:?}", spec.key_columns)
            }
            Node::Union { .. } => "Union".to_string(),
            Node::StreamJoin { spec, .. } => format!(
                "Join keys {:?} = {:?}{}",
                spec.left_keys,
                spec.right_keys,
                match &spec.residual {
                    Some(r) => format!(" and {r}"),
                    None => String::new(),
                }
            ),
            Node::WindowJoin { spec, .. } => format!(
                "WindowJoin keys {:?} = {:?}{}",
                spec.left_keys,
                spec.right_keys,
                match &spec.residual {
                    Some(r) => format!(" and {r}"),
                    None => String::new(),
                }
            ),
            Node::LookupJoin { table, kind, .. } => {
                format!("LookupJoin {kind:?} {}", table.descriptor.name)
            }
        };
        out.push_str(&format!("{pad}{line} -> [{}] ({kind})\n", cols.join(", ")));
        match &self.node {
            Node::Scan { .. } => {}
            Node::Filter { input, .. }
            | Node::Project { input, .. }
            | Node::WindowTvf { input, .. }
            | Node::WindowAggregate { input, .. }
            | Node::SessionAggregate { input, .. }
            | Node::GroupAggregate { input, .. }
            | Node::LookupJoin { input, .. } => input.describe_into(depth + 1, out),
            Node::Union { inputs } => inputs.iter().for_each(|i| i.describe_into(depth + 1, out)),
            Node::WindowJoin { left, right, .. } | Node::StreamJoin { left, right, .. } => {
                left.describe_into(depth + 1, out);
                right.describe_into(depth + 1, out);
            }
        }
    }
}

fn col(name: &str, qualifier: Option<&str>, data_type: DataType, nullable: bool) -> ScopeColumn {
    ScopeColumn {
        qualifier: qualifier.map(str::to_string),
        name: name.to_string(),
        data_type,
        nullable,
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn pos(node: &impl Spanned) -> Position {
    Position::of(node.span())
}

/// Plans queries against a catalog.
pub struct Planner<'a> {
    catalog: &'a Catalog,
    /// CTEs visible to the query being planned.
    ctes: HashMap<String, ast::Query>,
    /// Views being expanded (to report cycles).
    expanding: Vec<String>,
}

impl<'a> Planner<'a> {
    /// A planner over `catalog`.
    pub fn new(catalog: &'a Catalog) -> Self {
        Self {
            catalog,
            ctes: HashMap::new(),
            expanding: Vec::new(),
        }
    }

    /// Plans a query.
    pub fn plan_query(&mut self, query: &ast::Query) -> Result<Plan> {
        if query.order_by.is_some() {
            return Err(SqlError::plan(
                "ORDER BY is not supported on streaming queries",
                pos(query),
            ));
        }
        if query.limit_clause.is_some() {
            return Err(SqlError::plan(
                "LIMIT is not supported on streaming queries",
                pos(query),
            ));
        }
        let saved = self.ctes.clone();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes
                    .insert(cte.alias.name.value.to_lowercase(), (*cte.query).clone());
            }
        }
        let plan = self.plan_set_expr(&query.body);
        self.ctes = saved;
        plan
    }

    fn plan_set_expr(&mut self, body: &SetExpr) -> Result<Plan> {
        match body {
            SetExpr::Select(select) => self.plan_select(select),
            SetExpr::Query(q) => self.plan_query(q),
            SetExpr::SetOperation {
                op: ast::SetOperator::Union,
                set_quantifier,
                left,
                right,
            } => {
                if !matches!(set_quantifier, ast::SetQuantifier::All) {
                    return Err(SqlError::plan(
                        "only UNION ALL is supported (UNION without ALL removes duplicates, which needs state)",
                        pos(body),
                    ));
                }
                let l = self.plan_set_expr(left)?;
                let r = self.plan_set_expr(right)?;
                union(vec![l, r], pos(body))
            }
            other => Err(SqlError::plan(
                format!("{} is not supported here", first_words(&other.to_string())),
                pos(other),
            )),
        }
    }

    fn plan_select(&mut self, select: &ast::Select) -> Result<Plan> {
        if select.distinct.is_some() {
            return Err(SqlError::plan(
                "SELECT DISTINCT is not supported yet",
                pos(select),
            ));
        }
        let mut from = match select.from.as_slice() {
            [] => {
                return Err(SqlError::plan(
                    "a streaming query needs a FROM clause",
                    pos(select),
                ))
            }
            [one] => self.plan_from(one)?,
            [_, second, ..] => {
                return Err(SqlError::plan(
                    "comma joins are not supported; use JOIN ... ON",
                    pos(&second.relation),
                ))
            }
        };
        // WHERE applies to the rows before windowing and aggregation.
        if let Some(pred) = &select.selection {
            from = with_filter(from, pred)?;
        }
        let group_exprs: Vec<ast::Expr> = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(SqlError::plan(
                        "GROUP BY modifiers are not supported",
                        pos(select),
                    ));
                }
                exprs.clone()
            }
            GroupByExpr::All(_) => {
                return Err(SqlError::plan("GROUP BY ALL is not supported", pos(select)))
            }
        };
        let mut items: Vec<(ast::Expr, Option<String>)> = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => items.push((e.clone(), None)),
                SelectItem::ExprWithAlias { expr, alias } => {
                    items.push((expr.clone(), Some(alias.value.clone())))
                }
                SelectItem::ExprWithAliases { expr, .. } => {
                    return Err(SqlError::plan(
                        "multiple aliases for one expression are not supported",
                        pos(expr),
                    ))
                }
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    if !group_exprs.is_empty() {
                        return Err(SqlError::plan(
                            "SELECT * cannot be combined with GROUP BY or a window; name the columns",
                            pos(item),
                        ));
                    }
                    let qualifier = match item {
                        SelectItem::QualifiedWildcard(
                            ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                            _,
                        ) => Some(key_of(n)),
                        _ => None,
                    };
                    for c in &from.scope.columns {
                        if c.name == ROW_KIND_COLUMN {
                            continue;
                        }
                        if let Some(q) = &qualifier {
                            if c.qualifier.as_deref().map(str::to_lowercase).as_deref()
                                != Some(q.as_str())
                            {
                                continue;
                            }
                        }
                        let mut parts = Vec::new();
                        if let Some(q) = &c.qualifier {
                            parts.push(ast::Ident::new(q));
                        }
                        parts.push(ast::Ident::with_quote('"', &c.name));
                        items.push((ast::Expr::CompoundIdentifier(parts), Some(c.name.clone())));
                    }
                }
            }
        }
        let has_aggregates = items.iter().any(|(e, _)| contains_aggregate(e))
            || select.having.as_ref().is_some_and(contains_aggregate);
        if group_exprs.is_empty() && !has_aggregates {
            if select.having.is_some() {
                return Err(SqlError::plan(
                    "HAVING needs GROUP BY or aggregates",
                    pos(select),
                ));
            }
            if let Node::WindowTvf {
                window: WindowSpec::Session { .. },
                ..
            } = from.node
            {
                return Err(SqlError::plan(
                    "a SESSION window must be followed by GROUP BY window_start, window_end",
                    pos(select),
                ));
            }
            return project(from, &items, &mut |_| None);
        }
        self.plan_aggregate(
            from,
            &group_exprs,
            &items,
            select.having.as_ref(),
            pos(select),
        )
    }

    fn plan_aggregate(
        &mut self,
        input: Plan,
        group_exprs: &[ast::Expr],
        items: &[(ast::Expr, Option<String>)],
        having: Option<&ast::Expr>,
        position: Position,
    ) -> Result<Plan> {
        if input.updating {
            return Err(SqlError::plan(
                "aggregating an updating stream is not supported yet",
                position,
            ));
        }
        // Window: the input is a window TVF and GROUP BY names its columns.
        let input_window = input.window;
        let (mut base, window) = match input.node {
            Node::WindowTvf {
                input: inner,
                window,
                time_column,
                partition,
            } => (
                *inner,
                Some((window, time_column, partition, input.scope.clone())),
            ),
            _ => (input, None),
        };
        let tvf_scope = window.as_ref().map(|w| w.3.clone());
        let base_width = base.scope.columns.len();
        // Group keys: input columns, plus window_start/window_end for windows.
        let mut keys: Vec<usize> = Vec::new();
        let mut key_exprs: Vec<String> = Vec::new();
        let (mut has_start, mut has_end) = (false, false);
        for g in group_exprs {
            let idx = match &tvf_scope {
                Some(s) => resolve_column(g, s)?,
                None => resolve_column(g, &base.scope)?,
            };
            if idx >= base_width {
                match tvf_scope.as_ref().map(|s| s.columns[idx].name.as_str()) {
                    Some(WINDOW_START) => has_start = true,
                    Some(WINDOW_END) => has_end = true,
                    _ => return Err(SqlError::plan(
                        "GROUP BY window_time is not supported; group by window_start, window_end",
                        pos(g),
                    )),
                }
                continue;
            }
            keys.push(idx);
            key_exprs.push(g.to_string().to_lowercase());
        }
        if window.is_some() && !(has_start && has_end) {
            return Err(SqlError::plan(
                "a windowed GROUP BY must include both window_start and window_end",
                position,
            ));
        }
        // A cascaded window aggregate: the input's rows already carry one
        // window each (a window aggregate's output) and GROUP BY keeps both
        // of its columns. Each group is complete when the watermark reaches
        // the window's last millisecond, so it runs as a window aggregate
        // over 1 ms tumbling windows on `window_end - 1`, keyed by the
        // window columns: it fires exactly when the input window fired.
        let cascade = match window {
            None => input_window.filter(|(s, e)| keys.contains(s) && keys.contains(e)),
            Some(_) => None,
        };
        if let Some((_, end)) = cascade {
            let mut exprs: Vec<(Expr, String)> = base
                .scope
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (Expr::Column(i), c.name.clone()))
                .collect();
            exprs.push((
                Expr::Binary {
                    op: BinaryOp::Minus,
                    left: Box::new(Expr::Column(end)),
                    right: Box::new(Expr::Literal(ScalarValue::IntervalMillis(1))),
                },
                CASCADE_TIME.to_string(),
            ));
            let mut scope = base.scope.clone();
            scope
                .columns
                .push(col(CASCADE_TIME, None, ts_type(), false));
            base = Plan {
                time_column: Some(base_width),
                window: base.window,
                updating: false,
                scope,
                node: Node::Project {
                    input: Box::new(base),
                    exprs,
                },
            };
        }
        // Collect aggregate calls from the select list and HAVING.
        let mut aggs: Vec<(String, AggregateCall, DataType)> = Vec::new();
        {
            let mut collect = |e: &ast::Expr| -> Option<Result<Bound>> {
                let ast::Expr::Function(f) = e else {
                    return None;
                };
                let name = f.name.to_string();
                if !is_aggregate_name(&name) {
                    return None;
                }
                Some(bind_aggregate(f, &base.scope).map(|(call, t)| {
                    let key = e.to_string().to_lowercase();
                    if !aggs.iter().any(|(k, _, _)| *k == key) {
                        aggs.push((key, call, t.clone()));
                    }
                    Bound {
                        expr: Expr::Cast {
                            expr: Box::new(Expr::Literal(ScalarValue::Null)),
                            to: t.clone(),
                        },
                        data_type: t,
                        nullable: true,
                    }
                }))
            };
            let pre_scope = tvf_scope.clone().unwrap_or_else(|| base.scope.clone());
            for (e, _) in items {
                bind_expr_with(e, &pre_scope, &mut collect).map(|_| ())?;
            }
            if let Some(h) = having {
                bind_expr_with(h, &pre_scope, &mut collect).map(|_| ())?;
            }
        }
        let calls: Vec<AggregateCall> = aggs.iter().map(|(_, c, _)| c.clone()).collect();
        // The aggregate's output scope.
        let mut out_cols: Vec<ScopeColumn> = keys
            .iter()
            .map(|&k| base.scope.columns[k].clone())
            .collect();
        // A cascade is a window aggregate whose own window columns are
        // internal: the input's window columns are among its keys.
        let (window, names) = match (window, cascade) {
            (None, Some(_)) => (
                Some((
                    WindowSpec::Tumble { size: 1 },
                    base_width,
                    Vec::new(),
                    base.scope.clone(),
                )),
                ["$cascade_start", "$cascade_end"],
            ),
            (w, _) => (w, [WINDOW_START, WINDOW_END]),
        };
        let (node, updating) = match window {
            Some((window, time_column, partition, _)) => {
                out_cols.push(col(names[0], None, ts_type(), false));
                out_cols.push(col(names[1], None, ts_type(), false));
                match window {
                    WindowSpec::Session { gap } => {
                        if let Some(p) = partition.iter().find(|p| !keys.contains(p)) {
                            return Err(SqlError::plan(
                                format!(
                                    "the SESSION window is partitioned by '{}', so GROUP BY must include it",
                                    base.scope.columns[*p].name
                                ),
                                position,
                            ));
                        }
                        let spec = SessionAggregateSpec {
                            gap,
                            time_column,
                            key_columns: keys.clone(),
                            aggregates: calls,
                        };
                        (
                            Node::SessionAggregate {
                                input: Box::new(base),
                                spec,
                            },
                            false,
                        )
                    }
                    w => {
                        let spec = WindowAggregateSpec {
                            window: w,
                            time_column,
                            key_columns: keys.clone(),
                            aggregates: calls,
                        };
                        (
                            Node::WindowAggregate {
                                input: Box::new(base),
                                spec,
                            },
                            false,
                        )
                    }
                }
            }
            None => {
                let spec = GroupAggregateSpec {
                    key_columns: keys.clone(),
                    aggregates: calls,
                };
                (
                    Node::GroupAggregate {
                        input: Box::new(base),
                        spec,
                    },
                    true,
                )
            }
        };
        let agg_offset = out_cols.len();
        for (i, (_, call, t)) in aggs.iter().enumerate() {
            let nullable = !matches!(
                call.func,
                AggregateFunction::Count | AggregateFunction::CountDistinct
            );
            out_cols.push(col(&format!("$agg{i}"), None, t.clone(), nullable));
        }
        if updating {
            out_cols.push(col(ROW_KIND_COLUMN, None, DataType::Int8, false));
        }
        // Where window_start and window_end are among the output columns.
        let window_columns = match (&node, cascade) {
            (_, Some((s, e))) => keys
                .iter()
                .position(|&k| k == s)
                .zip(keys.iter().position(|&k| k == e)),
            (Node::WindowAggregate { .. }, None) => Some((keys.len(), keys.len() + 1)),
            _ => None,
        };
        let agg_plan = Plan {
            node,
            scope: Scope::new(out_cols),
            updating,
            time_column: None,
            window: window_columns,
        };
        // Select list and HAVING over the aggregate's output.
        let agg_scope = agg_plan.scope.clone();
        let is_window = agg_scope
            .columns
            .iter()
            .any(|c| c.name == WINDOW_END && c.qualifier.is_none());
        let mut substitute = |e: &ast::Expr| -> Option<Result<Bound>> {
            let text = e.to_string().to_lowercase();
            if let Some(i) = aggs.iter().position(|(k, _, _)| *k == text) {
                let c = &agg_scope.columns[agg_offset + i];
                return Some(Ok(Bound {
                    expr: Expr::Column(agg_offset + i),
                    data_type: c.data_type.clone(),
                    nullable: c.nullable,
                }));
            }
            if let Some(i) = key_exprs.iter().position(|k| *k == text) {
                let c = &agg_scope.columns[i];
                return Some(Ok(Bound {
                    expr: Expr::Column(i),
                    data_type: c.data_type.clone(),
                    nullable: c.nullable,
                }));
            }
            if is_window {
                if let ast::Expr::Identifier(id) = e {
                    if id.value.eq_ignore_ascii_case(WINDOW_TIME) {
                        // window_time is the last millisecond of the window.
                        let end = agg_offset - 1;
                        return Some(Ok(Bound {
                            expr: Expr::Binary {
                                op: BinaryOp::Minus,
                                left: Box::new(Expr::Column(end)),
                                right: Box::new(Expr::Literal(ScalarValue::IntervalMillis(1))),
                            },
                            data_type: ts_type(),
                            nullable: false,
                        }));
                    }
                }
            }
            None
        };
        let mut plan = agg_plan.clone();
        if let Some(h) = having {
            let b = bind_expr_with(h, &agg_scope, &mut substitute)?;
            if b.data_type != DataType::Boolean {
                return Err(SqlError::plan("HAVING needs a BOOLEAN condition", pos(h)));
            }
            plan = Plan {
                node: Node::Filter {
                    input: Box::new(plan),
                    predicate: b.expr,
                },
                scope: agg_scope.clone(),
                updating,
                time_column: None,
                window: window_columns,
            };
        }
        project(plan, items, &mut substitute)
    }

    fn plan_from(&mut self, from: &ast::TableWithJoins) -> Result<Plan> {
        let mut plan = self.plan_table_factor(&from.relation)?;
        for join in &from.joins {
            plan = self.plan_join(plan, join)?;
        }
        Ok(plan)
    }

    fn plan_join(&mut self, left: Plan, join: &ast::Join) -> Result<Plan> {
        use ast::JoinOperator as J;
        let (kind, constraint) = match &join.join_operator {
            J::Join(c) | J::Inner(c) => (JoinKind::Inner, c),
            J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, c),
            other => {
                return Err(SqlError::plan(
                    format!(
                        "{} joins are not supported; use [LEFT] JOIN with a bounded table",
                        first_words(&format!("{other:?}"))
                    ),
                    pos(&join.relation),
                ))
            }
        };
        // A table named on the right is the build side of a lookup join;
        // anything else (a view, a subquery, a window function) is a
        // stream, joined with the left stream window by window.
        let lookup = match &join.relation {
            ast::TableFactor::Table {
                name, alias, args, ..
            } if args.is_none() && !self.ctes.contains_key(&key_of(name)) => {
                match self.catalog.get(name) {
                    // A table with a WATERMARK is a stream, not a lookup table.
                    Some(Entry::Table(table)) if table.descriptor.watermark.is_none() => {
                        Some((name, alias, table))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((name, alias, table)) = lookup else {
            let right = self.plan_table_factor(&join.relation)?;
            return plan_stream_join(left, right, kind, constraint, pos(&join.relation));
        };
        let qualifier = alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| key_of(name));
        let right_scope = table_scope(table, &qualifier);
        if left.updating {
            return Err(SqlError::plan(
                "joining an updating stream is not supported yet",
                pos(&join.relation),
            ));
        }
        let ast::JoinConstraint::On(on) = constraint else {
            return Err(SqlError::plan(
                "a join needs an ON condition",
                pos(&join.relation),
            ));
        };
        let mut stream_keys = Vec::new();
        let mut table_keys = Vec::new();
        for eq in conjuncts(on) {
            if !matches!(
                eq,
                ast::Expr::BinaryOp {
                    op: ast::BinaryOperator::Eq,
                    ..
                }
            ) {
                return Err(SqlError::plan(
                    "join conditions must be equalities between the two sides, joined by AND",
                    pos(eq),
                ));
            }
            let Some((s, t)) = equality_sides(eq, &left.scope, &right_scope) else {
                return Err(SqlError::plan(
                    "each side of a join equality must be a column of one side of the join",
                    pos(eq),
                ));
            };
            stream_keys.push(s);
            table_keys.push(t);
        }
        let mut columns = left.scope.columns.clone();
        for c in &right_scope.columns {
            let mut c = c.clone();
            c.nullable |= kind == JoinKind::Left;
            columns.push(c);
        }
        Ok(Plan {
            time_column: left.time_column,
            window: left.window,
            node: Node::LookupJoin {
                input: Box::new(left),
                table: table.clone(),
                stream_keys,
                table_keys,
                kind,
            },
            scope: Scope::new(columns),
            updating: false,
        })
    }

    fn plan_table_factor(&mut self, factor: &ast::TableFactor) -> Result<Plan> {
        match factor {
            ast::TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    return Err(SqlError::plan(
                        "table arguments are not supported",
                        position_of(name),
                    ));
                }
                let qualifier = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or_else(|| key_of(name));
                self.plan_named(name, &qualifier)
            }
            ast::TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut plan = self.plan_query(subquery)?;
                if let Some(a) = alias {
                    requalify(&mut plan.scope, &a.name.value);
                }
                Ok(plan)
            }
            ast::TableFactor::TableFunction { expr, alias } => {
                let mut plan = self.plan_window_tvf(expr)?;
                if let Some(a) = alias {
                    requalify(&mut plan.scope, &a.name.value);
                }
                Ok(plan)
            }
            other => Err(SqlError::plan(
                format!(
                    "{} is not supported in FROM",
                    first_words(&other.to_string())
                ),
                pos(other),
            )),
        }
    }

    fn plan_named(&mut self, name: &ast::ObjectName, qualifier: &str) -> Result<Plan> {
        let key = key_of(name);
        if let Some(q) = self.ctes.get(&key).cloned() {
            if self.expanding.contains(&key) {
                return Err(SqlError::plan(
                    format!("'{name}' refers to itself"),
                    position_of(name),
                ));
            }
            self.expanding.push(key);
            let mut plan = self.plan_query(&q);
            self.expanding.pop();
            if let Ok(p) = plan.as_mut() {
                requalify(&mut p.scope, qualifier);
            }
            return plan;
        }
        match self.catalog.get(name) {
            Some(Entry::Table(t)) => {
                let scope = table_scope(t, qualifier);
                Ok(Plan {
                    node: Node::Scan {
                        table: t.clone(),
                        projection: None,
                    },
                    time_column: t.descriptor.watermark.map(|w| w.0),
                    window: None,
                    scope,
                    updating: false,
                })
            }
            Some(Entry::View(v)) => {
                if self.expanding.contains(&key) {
                    return Err(SqlError::plan(
                        format!("view '{name}' refers to itself"),
                        position_of(name),
                    ));
                }
                self.expanding.push(key);
                let saved = std::mem::take(&mut self.ctes);
                let mut plan = self.plan_query(&v.query);
                self.ctes = saved;
                self.expanding.pop();
                if let Ok(p) = plan.as_mut() {
                    requalify(&mut p.scope, qualifier);
                }
                plan
            }
            None => {
                let known: Vec<String> = self.catalog.list().into_iter().map(|(n, _)| n).collect();
                Err(SqlError::not_found(
                    format!(
                        "unknown table '{name}'{}",
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!("; known tables and views: {}", known.join(", "))
                        }
                    ),
                    position_of(name),
                ))
            }
        }
    }

    /// `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL ...))` and friends.
    fn plan_window_tvf(&mut self, expr: &ast::Expr) -> Result<Plan> {
        let ast::Expr::Function(f) = expr else {
            return Err(SqlError::plan(
                "expected a window function: TUMBLE, HOP, CUMULATE or SESSION",
                pos(expr),
            ));
        };
        let fname = f.name.to_string().to_uppercase();
        let args = function_args(f)?;
        let arity = match fname.as_str() {
            "TUMBLE" | "SESSION" => 3,
            "HOP" | "CUMULATE" => 4,
            _ => {
                return Err(SqlError::plan(
                    format!(
                    "unknown window function '{}'; expected one of TUMBLE, HOP, CUMULATE, SESSION",
                    f.name
                ),
                    pos(&f.name),
                ))
            }
        };
        if args.len() != arity {
            return Err(SqlError::plan(
                format!("{fname} takes {arity} arguments (TABLE t, DESCRIPTOR(time column), {}), found {}",
                    match fname.as_str() { "TUMBLE" => "size", "SESSION" => "gap", "HOP" => "slide, size", _ => "step, size" },
                    args.len()),
                pos(expr),
            ));
        }
        // TABLE t [PARTITION BY ...]
        let ast::Expr::Function(table_arg) = args[0] else {
            return Err(SqlError::plan(
                format!("the first argument of {fname} must be TABLE name"),
                pos(args[0]),
            ));
        };
        if !table_arg
            .name
            .to_string()
            .eq_ignore_ascii_case(TABLE_ARGUMENT)
        {
            return Err(SqlError::plan(
                format!("the first argument of {fname} must be TABLE name"),
                pos(args[0]),
            ));
        }
        let targs = function_args(table_arg)?;
        let Some(ast::Expr::CompoundIdentifier(parts)) = targs.first().copied() else {
            return Err(SqlError::plan(
                "expected a table name after TABLE",
                pos(args[0]),
            ));
        };
        let tname = ast::ObjectName::from(parts.clone());
        let qualifier = key_of(&tname);
        let input = self.plan_named(&tname, &qualifier)?;
        if input.updating {
            return Err(SqlError::plan(
                "windows over an updating stream are not supported",
                pos(args[0]),
            ));
        }
        let partition = targs[1..]
            .iter()
            .map(|k| resolve_column(k, &input.scope))
            .collect::<Result<Vec<_>>>()?;
        if !partition.is_empty() && fname != "SESSION" {
            return Err(SqlError::plan(
                "PARTITION BY is only allowed for SESSION windows",
                pos(args[0]),
            ));
        }
        // DESCRIPTOR(ts)
        let ast::Expr::Function(d) = args[1] else {
            return Err(SqlError::plan(
                "the second argument must be DESCRIPTOR(time column)",
                pos(args[1]),
            ));
        };
        let dargs = function_args(d)?;
        if !d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") || dargs.len() != 1 {
            return Err(SqlError::plan(
                "the second argument must be DESCRIPTOR(time column)",
                pos(args[1]),
            ));
        }
        let time_column = resolve_column(dargs[0], &input.scope)?;
        if input.time_column != Some(time_column) {
            let name = &input.scope.columns[time_column].name;
            let hint = match input.time_column {
                Some(t) => format!(
                    "the event-time column of '{tname}' is '{}'",
                    input.scope.columns[t].name
                ),
                None => format!("'{tname}' declares no WATERMARK"),
            };
            return Err(SqlError::plan(
                format!("column '{name}' has no watermark, so it cannot drive a window; declare WATERMARK FOR {name} AS {name} - INTERVAL '...' SECOND in the table ({hint})"),
                pos(dargs[0]),
            ));
        }
        let size = |e: &ast::Expr| -> Result<i64> {
            let ms = interval_millis(e)?;
            if ms <= 0 {
                return Err(SqlError::plan(
                    "a window size must be a positive interval",
                    pos(e),
                ));
            }
            Ok(ms)
        };
        let window = match fname.as_str() {
            "TUMBLE" => WindowSpec::Tumble {
                size: size(args[2])?,
            },
            "HOP" => WindowSpec::Hop {
                slide: size(args[2])?,
                size: size(args[3])?,
            },
            "CUMULATE" => WindowSpec::Cumulate {
                step: size(args[2])?,
                size: size(args[3])?,
            },
            _ => WindowSpec::Session {
                gap: size(args[2])?,
            },
        };
        window
            .validate()
            .map_err(|e| SqlError::plan(engine_message(&e), pos(expr)))?;
        let mut columns = input.scope.columns.clone();
        columns.push(col(WINDOW_START, None, ts_type(), false));
        columns.push(col(WINDOW_END, None, ts_type(), false));
        columns.push(col(WINDOW_TIME, None, ts_type(), false));
        let width = input.scope.columns.len();
        Ok(Plan {
            time_column: input.time_column,
            window: match window {
                WindowSpec::Session { .. } => None,
                _ => Some((width, width + 1)),
            },
            node: Node::WindowTvf {
                input: Box::new(input),
                window,
                time_column,
                partition,
            },
            scope: Scope::new(columns),
            updating: false,
        })
    }
}

/// An engine error's message without its "invalid plan: " prefix.
pub fn engine_message(e: &runnel_engine::EngineError) -> String {
    match e {
        runnel_engine::EngineError::Plan(m) => m.clone(),
        other => other.to_string(),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn function_args(f: &ast::Function) -> Result<Vec<&ast::Expr>> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(SqlError::plan(
                    format!("unsupported argument {other}"),
                    pos(&f.name),
                )),
            })
            .collect(),
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::Subquery(_) => Err(SqlError::plan(
            "subquery arguments are not supported",
            pos(&f.name),
        )),
    }
}

/// The columns of a table as seen by a query: physical, then PROCTIME().
fn table_scope(t: &TableEntry, qualifier: &str) -> Scope {
    let mut cols: Vec<ScopeColumn> = t
        .descriptor
        .schema
        .fields()
        .iter()
        .map(|f| {
            col(
                f.name(),
                Some(qualifier),
                f.data_type().clone(),
                f.is_nullable(),
            )
        })
        .collect();
    for p in &t.proctime {
        cols.push(col(p, Some(qualifier), ts_type(), false));
    }
    Scope::new(cols)
}

fn requalify(scope: &mut Scope, qualifier: &str) {
    for c in &mut scope.columns {
        if c.name != ROW_KIND_COLUMN {
            c.qualifier = Some(qualifier.to_string());
        }
    }
}

/// The index of the column `e` names (an identifier or `t.c`).
fn resolve_column(e: &ast::Expr, scope: &Scope) -> Result<usize> {
    match e {
        ast::Expr::Identifier(i) => scope.resolve(std::slice::from_ref(i)),
        ast::Expr::CompoundIdentifier(parts) => scope.resolve(parts),
        ast::Expr::Nested(inner) => resolve_column(inner, scope),
        other => Err(SqlError::plan(
            format!(
                "expected a column name, found {other} (expressions are not supported here yet)"
            ),
            pos(other),
        )),
    }
}

fn conjuncts(e: &ast::Expr) -> Vec<&ast::Expr> {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        ast::Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

/// True when `e` calls an aggregate function anywhere.
fn contains_aggregate(e: &ast::Expr) -> bool {
    let found = ast::visit_expressions(e, |sub| {
        if let ast::Expr::Function(f) = sub {
            if is_aggregate_name(&f.name.to_string()) {
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    found.is_break()
}

fn aggregate_columns(calls: &[AggregateCall], out: &mut BTreeSet<usize>) {
    for c in calls {
        c.args.iter().for_each(|a| a.columns(out));
        if let Some(f) = &c.filter {
            f.columns(out);
        }
    }
}

/// Binds one aggregate call (function, DISTINCT, FILTER) over `scope`.
fn bind_aggregate(f: &ast::Function, scope: &Scope) -> Result<(AggregateCall, DataType)> {
    let name = f.name.to_string();
    let mut func = AggregateFunction::from_name(&name).ok_or_else(|| {
        SqlError::plan(format!("unknown aggregate function {name}"), pos(&f.name))
    })?;
    if f.over.is_some() {
        return Err(SqlError::plan(
            "OVER windows are not supported yet",
            pos(&f.name),
        ));
    }
    let mut args = Vec::new();
    let mut types = Vec::new();
    if let FunctionArguments::List(list) = &f.args {
        if matches!(
            list.duplicate_treatment,
            Some(ast::DuplicateTreatment::Distinct)
        ) {
            if func != AggregateFunction::Count {
                return Err(SqlError::plan(
                    format!("DISTINCT is only supported in COUNT, not {name}"),
                    pos(&f.name),
                ));
            }
            func = AggregateFunction::CountDistinct;
        }
        for a in &list.args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard)
                    if func == AggregateFunction::Count => {}
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                    let b = bind_expr(e, scope)?;
                    types.push(b.data_type);
                    args.push(b.expr);
                }
                other => {
                    return Err(SqlError::plan(
                        format!("unsupported argument {other}"),
                        pos(&f.name),
                    ))
                }
            }
        }
    }
    let ret = func
        .return_type(&types)
        .map_err(|e| SqlError::plan(engine_message(&e), pos(&f.name)))?;
    let mut call = AggregateCall::new(func, args, name.to_lowercase());
    if let Some(filter) = &f.filter {
        let b = bind_expr(filter, scope)?;
        if b.data_type != DataType::Boolean {
            return Err(SqlError::plan(
                "FILTER (WHERE ...) needs a BOOLEAN condition",
                pos(filter.as_ref()),
            ));
        }
        call = call.with_filter(b.expr);
    }
    Ok((call, ret))
}

/// The columns `(left, right)` of an equality `a = b` between a column of
/// each side, in either order; `None` for any other condition.
fn equality_sides(c: &ast::Expr, left: &Scope, right: &Scope) -> Option<(usize, usize)> {
    let ast::Expr::BinaryOp {
        left: a,
        op: ast::BinaryOperator::Eq,
        right: b,
    } = c
    else {
        return None;
    };
    match (resolve_column(a, left), resolve_column(b, right)) {
        (Ok(l), Ok(r)) => Some((l, r)),
        _ => match (resolve_column(b, left), resolve_column(a, right)) {
            (Ok(l), Ok(r)) => Some((l, r)),
            _ => None,
        },
    }
}

/// The join of two streams. Equalities between a column of each side are
/// keys, the remaining conditions filter the joined pairs. When both sides
/// carry windows and ON equates their `window_start` and `window_end`, it
/// is a window join (see [`runnel_engine::ops::window_join`]); otherwise a
/// regular join that keeps every row ([`runnel_engine::ops::stream_join`]).
fn plan_stream_join(
    left: Plan,
    right: Plan,
    kind: JoinKind,
    constraint: &ast::JoinConstraint,
    position: Position,
) -> Result<Plan> {
    if kind != JoinKind::Inner {
        return Err(SqlError::plan(
            "only INNER joins of two streams are supported yet",
            position,
        ));
    }
    if left.updating || right.updating {
        return Err(SqlError::plan(
            "joining an updating stream is not supported yet",
            position,
        ));
    }
    let ast::JoinConstraint::On(on) = constraint else {
        return Err(SqlError::plan("a join needs an ON condition", position));
    };
    let mut columns = left.scope.columns.clone();
    columns.extend(right.scope.columns.iter().cloned());
    let scope = Scope::new(columns);
    let mut left_keys = Vec::new();
    let mut right_keys = Vec::new();
    let mut rest = Vec::new();
    for c in conjuncts(on) {
        // Over both sides first: a name both sides have must be qualified.
        let bound = bind_expr(c, &scope)?;
        match equality_sides(c, &left.scope, &right.scope) {
            Some((l, r)) => {
                let (lc, rc) = (&left.scope.columns[l], &right.scope.columns[r]);
                if lc.data_type != rc.data_type {
                    return Err(SqlError::plan(
                        format!(
                            "join keys {} ({}) and {} ({}) have different types; CAST one side",
                            lc.name,
                            crate::binder::flink_type_name(&lc.data_type),
                            rc.name,
                            crate::binder::flink_type_name(&rc.data_type)
                        ),
                        pos(c),
                    ));
                }
                left_keys.push(l);
                right_keys.push(r);
            }
            None => rest.push((c, bound)),
        }
    }
    let has = |l: usize, r: usize| {
        left_keys
            .iter()
            .zip(&right_keys)
            .any(|(&a, &b)| a == l && b == r)
    };
    if left_keys.is_empty() {
        return Err(SqlError::plan(
            "a join of two streams needs an equality between a column of each side (a.k = b.k)",
            pos(on),
        ));
    }
    let windows = match (left.window, right.window) {
        (Some((lws, lwe)), Some((rws, rwe))) if has(lws, rws) && has(lwe, rwe) => {
            Some((lws, lwe, rwe))
        }
        _ => None,
    };
    let mut residual: Option<Expr> = None;
    for (c, b) in rest {
        if b.data_type != DataType::Boolean {
            return Err(SqlError::plan("a join condition must be BOOLEAN", pos(c)));
        }
        residual = Some(match residual {
            None => b.expr,
            Some(prev) => Expr::Binary {
                op: BinaryOp::And,
                left: Box::new(prev),
                right: Box::new(b.expr),
            },
        });
    }
    let (node, window) = match windows {
        Some((lws, lwe, rwe)) => (
            Node::WindowJoin {
                left: Box::new(left),
                right: Box::new(right),
                spec: WindowJoinSpec {
                    left_keys,
                    right_keys,
                    left_window_end: lwe,
                    right_window_end: rwe,
                    residual,
                },
            },
            Some((lws, lwe)),
        ),
        None => (
            Node::StreamJoin {
                left: Box::new(left),
                right: Box::new(right),
                spec: StreamJoinSpec {
                    left_keys,
                    right_keys,
                    residual,
                },
            },
            None,
        ),
    };
    Ok(Plan {
        time_column: None,
        window,
        updating: false,
        scope,
        node,
    })
}

fn with_filter(input: Plan, pred: &ast::Expr) -> Result<Plan> {
    if matches!(
        input.node,
        Node::WindowJoin { .. } | Node::StreamJoin { .. }
    ) {
        return filter_join(input, pred);
    }
    let Plan {
        node,
        scope,
        updating,
        time_column,
        window: window_columns,
    } = input;
    // Over a window TVF, WHERE sees the input rows (before windowing).
    let input = match node {
        Node::WindowTvf {
            input: inner,
            window,
            time_column: tc,
            partition,
        } => {
            let filtered = with_filter(*inner, pred)?;
            return Ok(Plan {
                node: Node::WindowTvf {
                    input: Box::new(filtered),
                    window,
                    time_column: tc,
                    partition,
                },
                scope,
                updating,
                time_column,
                window: window_columns,
            });
        }
        node => Plan {
            node,
            scope,
            updating,
            time_column,
            window: window_columns,
        },
    };
    filter_node(input, pred)
}

/// A Filter node applying WHERE condition `pred` to `input`'s rows.
fn filter_node(input: Plan, pred: &ast::Expr) -> Result<Plan> {
    let b = bind_expr(pred, &input.scope)?;
    if b.data_type != DataType::Boolean {
        return Err(SqlError::plan(
            format!(
                "WHERE needs a BOOLEAN condition, not {}",
                crate::binder::flink_type_name(&b.data_type)
            ),
            pos(pred),
        ));
    }
    Ok(Plan {
        scope: input.scope.clone(),
        updating: input.updating,
        time_column: input.time_column,
        window: input.window,
        node: Node::Filter {
            input: Box::new(input),
            predicate: b.expr,
        },
    })
}

/// WHERE over a join of two streams: conditions on one side's columns only
/// are applied to that side before the join (so the join keeps fewer
/// rows), the rest after it.
fn filter_join(join: Plan, pred: &ast::Expr) -> Result<Plan> {
    let width = match &join.node {
        Node::WindowJoin { left, .. } | Node::StreamJoin { left, .. } => left.scope.columns.len(),
        _ => return Err(SqlError::plan("internal: not a join", pos(pred))),
    };
    let (mut to_left, mut to_right, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for c in conjuncts(pred) {
        let mut cols = BTreeSet::new();
        bind_expr(c, &join.scope)?.expr.columns(&mut cols);
        match (cols.first(), cols.last()) {
            (Some(_), Some(&last)) if last < width => to_left.push(c),
            (Some(&first), Some(_)) if first >= width => to_right.push(c),
            _ => after.push(c),
        }
    }
    // Below a window table function WHERE sees the rows before windowing,
    // where the window columns do not exist yet: keep such sides whole.
    fn push<'a>(
        side: Plan,
        conds: Vec<&'a ast::Expr>,
        after: &mut Vec<&'a ast::Expr>,
    ) -> Result<Plan> {
        if matches!(side.node, Node::WindowTvf { .. }) {
            after.extend(conds);
            Ok(side)
        } else {
            conds.into_iter().try_fold(side, with_filter)
        }
    }
    let Plan {
        node,
        scope,
        updating,
        time_column,
        window,
    } = join;
    let node = match node {
        Node::WindowJoin { left, right, spec } => Node::WindowJoin {
            left: Box::new(push(*left, to_left, &mut after)?),
            right: Box::new(push(*right, to_right, &mut after)?),
            spec,
        },
        Node::StreamJoin { left, right, spec } => Node::StreamJoin {
            left: Box::new(push(*left, to_left, &mut after)?),
            right: Box::new(push(*right, to_right, &mut after)?),
            spec,
        },
        other => other,
    };
    let plan = Plan {
        node,
        scope,
        updating,
        time_column,
        window,
    };
    after.into_iter().try_fold(plan, filter_node)
}

/// A projection of `items` over `input`; keeps the changelog column of an
/// updating input last, and keeps the time attribute when it is passed
/// through as a plain column.
fn project(
    input: Plan,
    items: &[(ast::Expr, Option<String>)],
    substitute: &mut crate::binder::Substitute<'_>,
) -> Result<Plan> {
    let mut exprs = Vec::new();
    let mut cols = Vec::new();
    let mut time_column = None;
    for (i, (e, alias)) in items.iter().enumerate() {
        let b = bind_expr_with(e, &input.scope, substitute)?;
        let name = alias.clone().unwrap_or_else(|| match e {
            ast::Expr::Identifier(id) => id.value.clone(),
            ast::Expr::CompoundIdentifier(parts) => {
                parts.last().map(|p| p.value.clone()).unwrap_or_default()
            }
            _ => format!("EXPR${i}"),
        });
        if let (Expr::Column(c), Some(t)) = (&b.expr, input.time_column) {
            if *c == t && time_column.is_none() {
                time_column = Some(i);
            }
        }
        let qualifier = match &b.expr {
            Expr::Column(c) => input.scope.columns[*c].qualifier.clone(),
            _ => None,
        };
        cols.push(ScopeColumn {
            qualifier,
            name: name.clone(),
            data_type: b.data_type.clone(),
            nullable: b.nullable,
        });
        exprs.push((b.expr, name));
    }
    if input.updating {
        let rk = input.scope.columns.len() - 1;
        exprs.push((Expr::Column(rk), ROW_KIND_COLUMN.to_string()));
        cols.push(col(ROW_KIND_COLUMN, None, DataType::Int8, false));
    }
    // The window columns survive when both are passed through unchanged.
    let passed = |c: usize| exprs.iter().position(|(e, _)| *e == Expr::Column(c));
    let window = input
        .window
        .and_then(|(s, e)| Some((passed(s)?, passed(e)?)));
    Ok(Plan {
        updating: input.updating,
        time_column,
        window,
        scope: Scope::new(cols),
        node: Node::Project {
            input: Box::new(input),
            exprs,
        },
    })
}

fn union(inputs: Vec<Plan>, position: Position) -> Result<Plan> {
    let first = &inputs[0];
    for other in &inputs[1..] {
        let a: Vec<&DataType> = first.scope.columns.iter().map(|c| &c.data_type).collect();
        let b: Vec<&DataType> = other.scope.columns.iter().map(|c| &c.data_type).collect();
        if a != b {
            let fmt = |v: &[&DataType]| {
                v.iter()
                    .map(|t| crate::binder::flink_type_name(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(SqlError::plan(
                format!(
                    "UNION ALL inputs have different column types: ({}) and ({})",
                    fmt(&a),
                    fmt(&b)
                ),
                position,
            ));
        }
    }
    let updating = inputs.iter().any(|p| p.updating);
    if updating && !inputs.iter().all(|p| p.updating) {
        return Err(SqlError::plan(
            "UNION ALL of an updating and an append-only stream is not supported",
            position,
        ));
    }
    let time_column = first
        .time_column
        .filter(|t| inputs.iter().all(|p| p.time_column == Some(*t)));
    let window = first
        .window
        .filter(|w| inputs.iter().all(|p| p.window == Some(*w)));
    let mut scope = first.scope.clone();
    for c in &mut scope.columns {
        c.qualifier = None;
        c.nullable = inputs.iter().any(|p| {
            p.scope
                .columns
                .iter()
                .find(|x| x.name == c.name)
                .is_none_or(|x| x.nullable)
        });
    }
    Ok(Plan {
        window,
        node: Node::Union { inputs },
        scope,
        updating,
        time_column,
    })
}

/// Casts the query's columns to the sink's types where they differ but
/// convert (INT into BIGINT, ...); an error names the column otherwise.
pub fn align_to_sink(plan: Plan, sink: &TableDescriptor, position: Position) -> Result<Plan> {
    let sink_fields = sink.schema.fields();
    let data_cols: Vec<&ScopeColumn> = plan
        .scope
        .columns
        .iter()
        .filter(|c| c.name != ROW_KIND_COLUMN)
        .collect();
    if data_cols.len() != sink_fields.len() {
        return Err(SqlError::plan(
            format!(
                "the query produces {} columns but sink '{}' has {} ({})",
                data_cols.len(),
                sink.name,
                sink_fields.len(),
                sink_fields
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            position,
        ));
    }
    let needs_cast = data_cols
        .iter()
        .zip(sink_fields.iter())
        .any(|(c, f)| &c.data_type != f.data_type());
    if !needs_cast {
        return Ok(plan);
    }
    let mut exprs = Vec::new();
    let mut cols = Vec::new();
    for (i, (c, f)) in data_cols.iter().zip(sink_fields.iter()).enumerate() {
        let castable = arrow::compute::can_cast_types(&c.data_type, f.data_type())
            && !(matches!(c.data_type, DataType::Utf8) && f.data_type().is_numeric());
        if !castable {
            return Err(SqlError::plan(
                format!(
                    "column {} of the query is {} but sink column '{}' is {}",
                    i + 1,
                    crate::binder::flink_type_name(&c.data_type),
                    f.name(),
                    crate::binder::flink_type_name(f.data_type())
                ),
                position,
            ));
        }
        let e = if &c.data_type == f.data_type() {
            Expr::Column(i)
        } else {
            Expr::Cast {
                expr: Box::new(Expr::Column(i)),
                to: f.data_type().clone(),
            }
        };
        exprs.push((e, f.name().clone()));
        cols.push(col(f.name(), None, f.data_type().clone(), true));
    }
    if plan.updating {
        let rk = plan.scope.columns.len() - 1;
        exprs.push((Expr::Column(rk), ROW_KIND_COLUMN.to_string()));
        cols.push(col(ROW_KIND_COLUMN, None, DataType::Int8, false));
    }
    Ok(Plan {
        updating: plan.updating,
        time_column: None,
        window: None,
        scope: Scope::new(cols),
        node: Node::Project {
            input: Box::new(plan),
            exprs,
        },
    })
}

// ---------------------------------------------------------------------------
// Lowering
// ---------------------------------------------------------------------------

/// Settings for lowering a plan.
#[derive(Clone)]
pub struct LowerOptions {
    /// Default parallelism of operators.
    pub parallelism: usize,
    /// Connectors by name.
    pub registry: ConnectorRegistry,
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
    let mut graph = JobGraph::new();
    let mut lowerer = Lowerer {
        graph: &mut graph,
        options,
        position,
        names: HashMap::new(),
    };
    let (node, par) = lowerer.lower(plan)?;
    let (name, factory, sink_par) = match sink {
        SinkTarget::Table(desc) => {
            let connector = options
                .registry
                .resolve(&desc)
                .map_err(|e| SqlError::plan(engine_message(&e), position))?;
            let factory = connector.sink(&desc, plan.updating).map_err(|e| {
                let msg = engine_message(&e);
                let msg = if plan.updating {
                    format!("{msg} (the query is an updating stream because it aggregates without a window; use a window, or a sink that accepts updates such as 'print' or 'blackhole')")
                } else {
                    msg
                };
                SqlError::plan(msg, position)
            })?;
            (format!("sink: {}", desc.name), factory, par)
        }
        SinkTarget::Operator {
            name,
            factory,
            parallelism,
        } => (name, factory, parallelism),
    };
    let sink_node = graph.add_operator(name, sink_par, factory);
    connect(&mut graph, node, par, sink_node, sink_par, None)?;
    Ok(graph)
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
}

impl Lowerer<'_> {
    fn err(&self, e: runnel_engine::EngineError) -> SqlError {
        SqlError::plan(engine_message(&e), self.position)
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
        let par = if keys.is_empty() {
            1
        } else {
            self.options.parallelism.max(1)
        };
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

    /// Adds the nodes of `plan`; returns the last node and its parallelism.
    fn lower(&mut self, plan: &Plan) -> Result<(NodeId, usize)> {
        let par = self.options.parallelism.max(1);
        match &plan.node {
            Node::Scan { table, projection } => {
                let full = &table.descriptor;
                let connector = self
                    .options
                    .registry
                    .resolve(full)
                    .map_err(|e| self.err(e))?;
                // Read only the used columns when the connector can.
                let pruned = projection
                    .as_ref()
                    .filter(|_| connector.supports_projection(full))
                    .map(|p| pruned_descriptor(full, p));
                let desc = pruned.as_ref().unwrap_or(full);
                let source = connector.source(desc).map_err(|e| self.err(e))?;
                let watermark = match desc.watermark {
                    Some((c, delay)) => {
                        let mut s = WatermarkStrategy::bounded(
                            c,
                            Duration::from_millis(delay.max(0) as u64),
                        );
                        if let Some(t) = desc.option("scan.idle-timeout") {
                            s.idle_timeout = Some(parse_duration(t).ok_or_else(|| {
                                SqlError::plan(format!("'scan.idle-timeout' must be a duration such as '30 s', not '{t}'"), self.position)
                            })?);
                        }
                        Some(s)
                    }
                    None => None,
                };
                let spar = source.parallelism.unwrap_or(par);
                let name = unique(&mut self.names, &format!("source: {}", desc.name));
                let mut node = self.graph.add_source(name, spar, source.factory, watermark);
                if let (Some(p), Some(_)) = (projection, pruned.as_ref()) {
                    // Put placeholders where the unread columns were, so
                    // column numbers above the scan do not change.
                    let exprs = padding_exprs(&full.schema, p);
                    let read_schema = Arc::clone(&desc.schema);
                    ProjectOperator::new(exprs.clone(), &read_schema).map_err(|e| self.err(e))?;
                    let pad = self.graph.add_operator(
                        unique(&mut self.names, "unpruned columns"),
                        spar,
                        Arc::new(move |_t: &TaskInfo| {
                            Ok(Box::new(ProjectOperator::new(exprs.clone(), &read_schema)?)
                                as Box<_>)
                        }),
                    );
                    connect(self.graph, node, spar, pad, spar, None)?;
                    node = pad;
                }
                if !table.proctime.is_empty() {
                    let pt = self.graph.add_operator(
                        unique(&mut self.names, "proctime"),
                        spar,
                        ProcTimeOperator::factory(&full.schema, table.proctime.clone()),
                    );
                    connect(self.graph, node, spar, pt, spar, None)?;
                    node = pt;
                }
                Ok((node, spar))
            }
            Node::Filter { input, predicate } => {
                let (n, p) = self.lower(input)?;
                let pred = predicate.clone();
                let op = self.graph.add_operator(
                    unique(&mut self.names, "filter"),
                    p,
                    Arc::new(move |_t: &TaskInfo| {
                        Ok(Box::new(FilterOperator::new(pred.clone())) as Box<_>)
                    }),
                );
                connect(self.graph, n, p, op, p, None)?;
                Ok((op, p))
            }
            Node::Project { input, exprs } => {
                let (n, p) = self.lower(input)?;
                let schema = input.schema();
                ProjectOperator::new(exprs.clone(), &schema).map_err(|e| self.err(e))?;
                let exprs = exprs.clone();
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
            Node::WindowTvf {
                input,
                window,
                time_column,
                ..
            } => {
                let factory = WindowAssign::factory(*window, *time_column, &input.schema())
                    .map_err(|e| self.err(e))?;
                let (n, p) = self.lower(input)?;
                let op =
                    self.graph
                        .add_operator(unique(&mut self.names, "window assign"), p, factory);
                connect(self.graph, n, p, op, p, None)?;
                Ok((op, p))
            }
            Node::WindowJoin { left, right, spec } => {
                let factory = spec
                    .clone()
                    .factory(left.schema(), right.schema())
                    .map_err(|e| self.err(e))?;
                let keys = [&spec.left_keys, &spec.right_keys];
                self.lower_join(left, right, "window join", keys, factory)
            }
            Node::StreamJoin { left, right, spec } => {
                let factory = spec
                    .clone()
                    .factory(left.schema(), right.schema())
                    .map_err(|e| self.err(e))?;
                let keys = [&spec.left_keys, &spec.right_keys];
                self.lower_join(left, right, "join", keys, factory)
            }
            Node::WindowAggregate { input, spec } => {
                let factory = spec
                    .clone()
                    .factory(input.schema())
                    .map_err(|e| self.err(e))?;
                let kind = match spec.window {
                    WindowSpec::Tumble { .. } => "tumble",
                    WindowSpec::Hop { .. } => "hop",
                    WindowSpec::Cumulate { .. } => "cumulate",
                    WindowSpec::Session { .. } => "session",
                };
                self.lower_keyed(
                    input,
                    &format!("{kind} window aggregate"),
                    &spec.key_columns,
                    factory,
                )
            }
            Node::SessionAggregate { input, spec } => {
                let factory = spec
                    .clone()
                    .factory(input.schema())
                    .map_err(|e| self.err(e))?;
                self.lower_keyed(
                    input,
                    "session window aggregate",
                    &spec.key_columns,
                    factory,
                )
            }
            Node::GroupAggregate { input, spec } => {
                let factory = spec
                    .clone()
                    .factory(input.schema())
                    .map_err(|e| self.err(e))?;
                self.lower_keyed(input, "group aggregate", &spec.key_columns, factory)
            }
            Node::Union { inputs } => {
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
            Node::LookupJoin {
                input,
                table,
                stream_keys,
                table_keys,
                kind,
            } => {
                let (n, p) = self.lower(input)?;
                let rows = load_bounded(table, &self.options.registry).map_err(|e| self.err(e))?;
                let join = LookupJoin::new(
                    *kind,
                    &input.schema(),
                    stream_keys.clone(),
                    rows,
                    table_keys.clone(),
                )
                .map_err(|e| self.err(e))?;
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
    }
}

/// The descriptor of `table` with only the columns `projection`.
pub(crate) fn pruned_descriptor(table: &TableDescriptor, projection: &[usize]) -> TableDescriptor {
    let fields: Vec<Field> = projection
        .iter()
        .map(|&i| table.schema.field(i).clone())
        .collect();
    let position = |c: usize| projection.iter().position(|&p| p == c);
    TableDescriptor {
        name: table.name.clone(),
        schema: Arc::new(Schema::new(fields)),
        options: table.options.clone(),
        watermark: table
            .watermark
            .and_then(|(c, d)| position(c).map(|p| (p, d))),
        primary_key: table
            .primary_key
            .iter()
            .filter_map(|&k| position(k))
            .collect(),
        partition_keys: table
            .partition_keys
            .iter()
            .filter_map(|&k| position(k))
            .collect(),
    }
}

/// Expressions that rebuild the full row from the pruned one: read columns
/// in place, a typed placeholder (zero, empty string, NULL) elsewhere.
fn padding_exprs(full: &Schema, projection: &[usize]) -> Vec<(Expr, String)> {
    full.fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let e = match projection.iter().position(|&p| p == i) {
                Some(p) => Expr::Column(p),
                None => placeholder(f.data_type(), f.is_nullable()),
            };
            (e, f.name().clone())
        })
        .collect()
}

/// A constant of type `t`; non-null where the column is declared NOT NULL,
/// so that the batch still satisfies the schema. Its value is never read.
fn placeholder(t: &DataType, nullable: bool) -> Expr {
    let value = match t {
        _ if nullable => ScalarValue::Null,
        DataType::Boolean => ScalarValue::Boolean(false),
        DataType::Int32 => ScalarValue::Int32(0),
        DataType::Int64 => ScalarValue::Int64(0),
        DataType::Float64 => ScalarValue::Float64(0.0),
        DataType::Utf8 => ScalarValue::Utf8(String::new()),
        DataType::Timestamp(TimeUnit::Millisecond, _) => ScalarValue::TimestampMillis(0),
        _ => ScalarValue::Null,
    };
    Expr::Cast {
        expr: Box::new(Expr::Literal(value)),
        to: t.clone(),
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

pub use runnel_engine::connector::parse_duration;
