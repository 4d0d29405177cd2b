//! Column lineage from a logical plan: for each output column, the table
//! columns it comes from and how (copied, computed, aggregated), and the
//! columns the rows were filtered or joined on (which every output column
//! depends on). Views are expanded in plans, so lineage goes through them
//! to the tables they read. A node this walk does not model column by
//! column makes each of its output columns depend on all its input
//! columns ("computed"): more than the truth, never less.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use runnel_engine::expr::Expr;
use runnel_engine::types::ROW_KIND_COLUMN;

use crate::plan::{Node, Plan};

/// How a target column derives from a source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Derivation {
    /// The value as it was.
    Copied,
    /// An expression of it.
    Computed,
    /// An aggregate over it.
    Aggregated,
    /// Rows were kept or dropped by a condition on it.
    FilteredOn,
    /// Rows were matched on it.
    JoinedOn,
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Derivation::Copied => "copied",
            Derivation::Computed => "computed",
            Derivation::Aggregated => "aggregated",
            Derivation::FilteredOn => "filtered on",
            Derivation::JoinedOn => "joined on",
        })
    }
}

/// A table's column.
pub type SourceColumn = (String, String);

/// Where one output column comes from: source column -> the strongest
/// derivation (aggregated over computed over copied).
pub type Origins = BTreeMap<SourceColumn, Derivation>;

/// The lineage of a plan's output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Per output column (without the changelog column).
    pub columns: Vec<Origins>,
    /// Columns rows were filtered or joined on.
    pub indirect: BTreeSet<(SourceColumn, Derivation)>,
}

impl Lineage {
    /// (source table, source column, output column index, derivation),
    /// one per pair, indirect ones for every output column.
    pub fn pairs(&self) -> Vec<(SourceColumn, usize, Derivation)> {
        let mut out = Vec::new();
        for (i, origins) in self.columns.iter().enumerate() {
            for (src, d) in origins {
                out.push((src.clone(), i, *d));
            }
            for (src, d) in &self.indirect {
                out.push((src.clone(), i, *d));
            }
        }
        out
    }
}

/// The lineage of `plan`'s output columns.
pub fn lineage(plan: &Plan) -> Lineage {
    let mut indirect = BTreeSet::new();
    let columns = walk(plan, &mut indirect);
    let columns = columns
        .into_iter()
        .zip(&plan.scope.columns)
        .filter(|(_, c)| c.name != ROW_KIND_COLUMN)
        .map(|(o, _)| o)
        .collect();
    Lineage { columns, indirect }
}

fn upgrade(o: &Origins, to: Derivation) -> Origins {
    o.iter().map(|(k, d)| (k.clone(), (*d).max(to))).collect()
}

fn merge(into: &mut Origins, from: &Origins) {
    for (k, d) in from {
        let e = into.entry(k.clone()).or_insert(*d);
        *e = (*e).max(*d);
    }
}

/// The origins of the columns `e` reads, at least `to`.
fn expr_origins(e: &Expr, input: &[Origins], to: Derivation) -> Origins {
    let mut cols = BTreeSet::new();
    e.columns(&mut cols);
    let mut out = Origins::new();
    for c in cols {
        if let Some(o) = input.get(c) {
            merge(&mut out, &upgrade(o, to));
        }
    }
    out
}

fn note(indirect: &mut BTreeSet<(SourceColumn, Derivation)>, o: &Origins, d: Derivation) {
    for src in o.keys() {
        indirect.insert((src.clone(), d));
    }
}

fn keys(input: &[Origins], keys: &[usize]) -> Origins {
    let mut out = Origins::new();
    for &k in keys {
        if let Some(o) = input.get(k) {
            merge(&mut out, o);
        }
    }
    out
}

/// Output columns of `plan`: `width` of them, the first from `leading`,
/// the last `aggs.len()` aggregates of `aggs`, any between computed from
/// `middle`.
fn laid_out(
    width: usize,
    leading: Vec<Origins>,
    middle: &Origins,
    aggs: Vec<Origins>,
) -> Vec<Origins> {
    let mut out = leading;
    while out.len() + aggs.len() < width {
        out.push(middle.clone());
    }
    out.extend(aggs);
    out.truncate(width);
    out
}

/// An aggregate's output: its keys (copied), the window columns between
/// (computed from the time column), then the aggregates.
fn keyed_aggregate(
    cols: &[Origins],
    keys: &[usize],
    time_column: Option<usize>,
    calls: &[runnel_engine::ops::AggregateCall],
    width: usize,
) -> Vec<Origins> {
    let leading = keys
        .iter()
        .map(|&k| cols.get(k).cloned().unwrap_or_default())
        .collect();
    let time = time_column
        .and_then(|t| cols.get(t))
        .map(|o| upgrade(o, Derivation::Computed))
        .unwrap_or_default();
    laid_out(width, leading, &time, aggregates(cols, calls))
}

fn aggregates(input: &[Origins], calls: &[runnel_engine::ops::AggregateCall]) -> Vec<Origins> {
    calls
        .iter()
        .map(|a| {
            let mut o = Origins::new();
            for e in a.args.iter().chain(a.filter.iter()) {
                merge(&mut o, &expr_origins(e, input, Derivation::Aggregated));
            }
            o
        })
        .collect()
}

/// An OVER aggregation's columns after its input's: the aggregates, then
/// LAG's values, which it copies from another row (computed).
fn over(input: &[Origins], spec: &runnel_engine::ops::OverAggregateSpec) -> Vec<Origins> {
    let mut out = aggregates(input, &spec.aggregates);
    for lag in &spec.lags {
        let mut o = expr_origins(&lag.arg, input, Derivation::Computed);
        if let Some(d) = &lag.default {
            merge(&mut o, &expr_origins(d, input, Derivation::Computed));
        }
        out.push(o);
    }
    out
}

fn walk(plan: &Plan, indirect: &mut BTreeSet<(SourceColumn, Derivation)>) -> Vec<Origins> {
    let width = plan.scope.columns.len();
    let all = |ins: &[Vec<Origins>]| -> Origins {
        let mut o = Origins::new();
        for cols in ins {
            for c in cols {
                merge(&mut o, &upgrade(c, Derivation::Computed));
            }
        }
        o
    };
    match &plan.node {
        Node::Scan { table, .. } => {
            let names: BTreeSet<String> = table
                .descriptor
                .schema
                .fields()
                .iter()
                .map(|f| f.name().to_lowercase())
                .collect();
            plan.scope
                .columns
                .iter()
                .map(|c| {
                    let mut o = Origins::new();
                    if names.contains(&c.name.to_lowercase()) {
                        o.insert(
                            (table.descriptor.name.clone(), c.name.to_lowercase()),
                            Derivation::Copied,
                        );
                    }
                    o
                })
                .collect()
        }
        Node::Filter { input, predicate } => {
            let cols = walk(input, indirect);
            note(
                indirect,
                &expr_origins(predicate, &cols, Derivation::Copied),
                Derivation::FilteredOn,
            );
            cols
        }
        Node::Expect { input, spec } => {
            let cols = walk(input, indirect);
            // Expectations that drop rows filter on what they read.
            for c in &spec.checks {
                if c.mode != runnel_engine::ops::Violation::Warn {
                    let o = expr_origins(&c.predicate, &cols, Derivation::Copied);
                    note(indirect, &o, Derivation::FilteredOn);
                }
            }
            cols
        }
        Node::Normalize { input, .. } => walk(input, indirect),
        Node::ProcTime { input } => {
            let mut cols = walk(input, indirect);
            cols.resize(width, Origins::new());
            cols
        }
        Node::Project { input, exprs } => {
            let cols = walk(input, indirect);
            exprs
                .iter()
                .map(|(e, _)| match e {
                    Expr::Column(c) => cols.get(*c).cloned().unwrap_or_default(),
                    other => expr_origins(other, &cols, Derivation::Computed),
                })
                .collect()
        }
        Node::WindowTvf {
            input, time_column, ..
        } => {
            let mut cols = walk(input, indirect);
            let time = upgrade(
                &cols.get(*time_column).cloned().unwrap_or_default(),
                Derivation::Computed,
            );
            cols.resize(width, time);
            cols
        }
        Node::WindowAggregate { input, spec } => {
            let cols = walk(input, indirect);
            let width = width.saturating_sub(usize::from(plan.updating));
            let time = Some(spec.time_column);
            keyed_aggregate(&cols, &spec.key_columns, time, &spec.aggregates, width)
        }
        Node::SessionAggregate { input, spec } => {
            let cols = walk(input, indirect);
            let width = width.saturating_sub(usize::from(plan.updating));
            let time = Some(spec.time_column);
            keyed_aggregate(&cols, &spec.key_columns, time, &spec.aggregates, width)
        }
        Node::GroupAggregate { input, spec } => {
            let cols = walk(input, indirect);
            let width = width.saturating_sub(usize::from(plan.updating));
            keyed_aggregate(&cols, &spec.key_columns, None, &spec.aggregates, width)
        }
        Node::OverAggregate { input, spec } => {
            let cols = walk(input, indirect);
            let data = cols.len().saturating_sub(usize::from(input.updating));
            laid_out(
                width,
                cols[..data].to_vec(),
                &Origins::new(),
                over(&cols, spec),
            )
        }
        Node::TopN { input, .. } => {
            let mut cols = walk(input, indirect);
            // An updating input's changelog column is not the rank.
            cols.truncate(crate::planner::data_width(input));
            let rest = all(std::slice::from_ref(&cols));
            cols.resize(width, rest);
            cols
        }
        Node::Union { inputs } => {
            let mut out = vec![Origins::new(); width];
            for i in inputs {
                for (k, o) in walk(i, indirect).into_iter().enumerate() {
                    if let Some(slot) = out.get_mut(k) {
                        merge(slot, &o);
                    }
                }
            }
            out
        }
        Node::LookupJoin {
            input,
            table,
            stream_keys,
            table_keys,
            ..
        } => {
            let left = walk(input, indirect);
            let right: Vec<Origins> = table
                .descriptor
                .schema
                .fields()
                .iter()
                .map(|f| {
                    [(
                        (table.descriptor.name.clone(), f.name().to_lowercase()),
                        Derivation::Copied,
                    )]
                    .into_iter()
                    .collect()
                })
                .collect();
            note(indirect, &keys(&left, stream_keys), Derivation::JoinedOn);
            note(indirect, &keys(&right, table_keys), Derivation::JoinedOn);
            join_columns(left, input.updating, right, width)
        }
        Node::WindowJoin { left, right, spec } => two_sided(
            left,
            right,
            &spec.left_keys,
            &spec.right_keys,
            width,
            indirect,
        ),
        Node::StreamJoin { left, right, spec } => two_sided(
            left,
            right,
            &spec.left_keys,
            &spec.right_keys,
            width,
            indirect,
        ),
        Node::IntervalJoin { left, right, spec } => two_sided(
            left,
            right,
            &spec.left_keys,
            &spec.right_keys,
            width,
            indirect,
        ),
        Node::TemporalJoin { left, right, spec } => two_sided(
            left,
            right,
            &spec.left_keys,
            &spec.right_keys,
            width,
            indirect,
        ),
    }
}

/// A join's output: the left side's data columns, then the right side's.
fn join_columns(
    left: Vec<Origins>,
    left_updating: bool,
    right: Vec<Origins>,
    width: usize,
) -> Vec<Origins> {
    let data = left.len().saturating_sub(usize::from(left_updating));
    let mut out: Vec<Origins> = left.into_iter().take(data).collect();
    out.extend(right);
    out.resize(width, Origins::new());
    out
}

fn two_sided(
    left: &Plan,
    right: &Plan,
    left_keys: &[usize],
    right_keys: &[usize],
    width: usize,
    indirect: &mut BTreeSet<(SourceColumn, Derivation)>,
) -> Vec<Origins> {
    let l = walk(left, indirect);
    let r = walk(right, indirect);
    note(indirect, &keys(&l, left_keys), Derivation::JoinedOn);
    note(indirect, &keys(&r, right_keys), Derivation::JoinedOn);
    let r_data = r.len().saturating_sub(usize::from(right.updating));
    join_columns(
        l,
        left.updating,
        r.into_iter().take(r_data).collect(),
        width,
    )
}
