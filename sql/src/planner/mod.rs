//! From a query to a logical plan ([`crate::plan::Plan`]).
//!
//! [`Planner`] is one struct; each clause has its own file holding one
//! `impl Planner` block (or, where a step needs no planner state, free
//! functions): `query` (WITH, UNION ALL, the ORDER BY and LIMIT a stream
//! refuses), `select` (the select list), `filter` (WHERE), `relation`
//! (FROM: tables, views, CTEs, subqueries), `join`, `window` (window table
//! functions), `aggregate` (GROUP BY, aggregate calls, HAVING) and `sink`
//! (matching the query's columns to an INSERT target). This file holds the
//! planner and the helpers several clauses share. Turning the plan into a
//! job graph is [`crate::lower`]'s work, not the planner's.
//!
//! What the planner does beyond translation:
//! * predicate pushdown: WHERE conditions are applied right after the scan
//!   (or the join), before any exchange;
//! * projection pruning ([`Plan::prune`]): a scan whose downstream needs
//!   only some columns reads only those;
//! * append-only vs updating inference: non-windowed aggregates produce
//!   updating streams; a sink that only appends rejects them.

use std::collections::HashMap;

use arrow::datatypes::{DataType, TimeUnit};
use runnel_engine::expr::Expr;
use runnel_engine::types::ROW_KIND_COLUMN;
use sqlparser::ast::Spanned;
use sqlparser::ast::{self, FunctionArg, FunctionArgExpr, FunctionArguments};

use crate::binder::{bind_expr_with, Scope, ScopeColumn};
use crate::catalog::{Catalog, TableEntry};
use crate::error::{Position, Result, SqlError};
use crate::plan::{Node, Plan};

mod aggregate;
pub mod expect;
mod filter;
mod hints;
mod join;
mod lookup;
mod policies;
mod query;
mod rank;
pub(crate) use rank::data_width;
mod relation;
mod select;
pub mod sink;
mod window;

/// Name given to the window columns.
const WINDOW_START: &str = "window_start";
const WINDOW_END: &str = "window_end";
const WINDOW_TIME: &str = "window_time";
/// The time column added under a cascaded window aggregate.
const CASCADE_TIME: &str = "$window_time";

/// Plans queries against a catalog.
pub struct Planner<'a> {
    catalog: &'a Catalog,
    /// CTEs visible to the query being planned.
    ctes: HashMap<String, ast::Query>,
    /// Views being expanded (to report cycles).
    expanding: Vec<String>,
    /// The STATE_TTL hint of the SELECT being planned: input name (lower
    /// case) to TTL, and whether a join or aggregate used it.
    state_ttl: HashMap<String, (std::time::Duration, bool)>,
    /// `'table.exec.emit.allow-lateness'` in milliseconds: how long window
    /// aggregates keep a window after it fired (0: append-only windows).
    allowed_lateness: i64,
    /// Every table and view the query reads, for the session's access
    /// checks.
    reads: Vec<Read>,
    /// The views being expanded, innermost last: a read inside a view is
    /// checked against the view owner's rights.
    views: Vec<String>,
    /// Who reads: `current_user()` and `is_member('r')` answer for them.
    identity: Option<(String, std::collections::BTreeSet<String>)>,
    /// The session's expectation bookkeeping (views' expectations apply
    /// where they are read).
    expect: Option<&'a expect::ExpectState>,
    /// False to plan past masks and row filters (to see which source
    /// columns a query copies, for a materialized view's policies).
    policies: bool,
}

/// The option the planner adds to the scan of a system table: the user
/// who reads it, so that its rows show only what that user may see.
pub const SYSTEM_USER_OPTION: &str = "system.user";

/// A table or view a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Its catalog key.
    pub key: String,
    /// Where the query names it.
    pub position: Position,
    /// The innermost view through which it is read (`None`: the query
    /// names it itself).
    pub via: Option<String>,
}

impl<'a> Planner<'a> {
    /// A planner over `catalog`.
    pub fn new(catalog: &'a Catalog) -> Self {
        Self {
            catalog,
            ctes: HashMap::new(),
            expanding: Vec::new(),
            state_ttl: HashMap::new(),
            allowed_lateness: 0,
            reads: Vec::new(),
            views: Vec::new(),
            identity: None,
            expect: None,
            policies: true,
        }
    }

    /// Plans without masks and row filters: only to find where columns
    /// come from, never to run.
    pub fn without_policies(mut self) -> Self {
        self.policies = false;
        self
    }

    /// Counts expectations and collects quarantine branches in `state`.
    pub fn with_expectations(mut self, state: &'a expect::ExpectState) -> Self {
        self.expect = Some(state);
        self
    }

    /// `current_user()` is `user` and `is_member(r)` is true for `roles`.
    pub fn with_identity(mut self, user: &str, roles: std::collections::BTreeSet<String>) -> Self {
        self.identity = Some((user.to_string(), roles));
        self
    }

    /// The tables and views read by what was planned so far.
    pub fn reads(&self) -> &[Read] {
        &self.reads
    }

    /// `t` as this query reads it: a system table names its reader (no
    /// user at all without an identity), so its rows are those the reader
    /// may see.
    fn reader_table(&self, t: &TableEntry) -> TableEntry {
        let mut table = t.clone();
        if table.kind == crate::catalog::TableKind::System {
            let user = self
                .identity
                .as_ref()
                .map(|(u, _)| u.clone())
                .unwrap_or_default();
            table
                .descriptor
                .options
                .insert(SYSTEM_USER_OPTION.to_string(), user);
        }
        table
    }

    /// Records a read of `name` at the current view depth.
    fn record_read(&mut self, name: &ast::ObjectName) {
        self.reads.push(Read {
            key: crate::catalog::key_of(name),
            position: crate::catalog::position_of(name),
            via: self.views.last().cloned(),
        });
    }

    /// Window aggregates keep each window `millis` after it fired and
    /// correct its result for rows that arrive in that time.
    pub fn with_allowed_lateness(mut self, millis: i64) -> Self {
        self.allowed_lateness = millis.max(0);
        self
    }
}

/// A column of a scope.
fn col(name: &str, qualifier: Option<&str>, data_type: DataType, nullable: bool) -> ScopeColumn {
    ScopeColumn {
        qualifier: qualifier.map(str::to_string),
        name: name.to_string(),
        data_type,
        nullable,
    }
}

/// The type of window and PROCTIME columns.
fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// Where `node` starts in the SQL text.
fn pos(node: &impl Spanned) -> Position {
    Position::of(node.span())
}

/// The first three words of `s`, to name an unsupported construct.
fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The plain (unnamed) arguments of a function call.
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

/// True for a call `PROCTIME()`.
fn is_proctime_call(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Function(f) => {
            f.name.to_string().eq_ignore_ascii_case("PROCTIME")
                && match &f.args {
                    FunctionArguments::None => true,
                    FunctionArguments::List(l) => l.args.is_empty(),
                    FunctionArguments::Subquery(_) => false,
                }
        }
        _ => false,
    }
}

/// Where the first `PROCTIME()` call in `e` is, if there is one.
fn proctime_call(e: &ast::Expr) -> Option<Position> {
    let mut at = None;
    let _ = ast::visit_expressions(e, |x| {
        if is_proctime_call(x) {
            at = Some(pos(x));
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    at
}

/// `input` with a `PROCTIME()` column appended (hidden: only the
/// select list that asked for it reads it).
fn with_proctime(input: Plan, at: Position) -> Result<Plan> {
    if input.updating {
        return Err(SqlError::plan(
            "PROCTIME() over an updating input is not supported; take it from an append-only table",
            at,
        ));
    }
    let mut columns = input.scope.columns.clone();
    columns.push(col("$proctime", None, ts_type(), false));
    Ok(Plan {
        time_column: input.time_column,
        window: input.window,
        updating: false,
        scope: Scope::new(columns),
        node: Node::ProcTime {
            input: Box::new(input),
        },
    })
}

/// True when column `c` of `plan` holds processing time: a table's
/// `name AS PROCTIME()` column or a select list's `PROCTIME()`, passed
/// through projections and filters unchanged.
pub(super) fn is_proctime_column(plan: &Plan, c: usize) -> bool {
    match &plan.node {
        Node::Scan { table, .. } => {
            let physical = table.descriptor.schema.fields().len();
            !plan.updating && c >= physical && c < physical + table.proctime.len()
        }
        Node::ProcTime { input } => c == input.scope.columns.len() || is_proctime_column(input, c),
        Node::Filter { input, .. } | Node::Expect { input, .. } => is_proctime_column(input, c),
        Node::Project { input, exprs } => match exprs.get(c) {
            Some((Expr::Column(k), _)) => is_proctime_column(input, *k),
            _ => false,
        },
        _ => false,
    }
}

/// Makes the scans below `plan` send processing-time watermarks, for a
/// window driven by a `PROCTIME()` column. Only projections, filters and
/// unions may lie between: an aggregate, join or window below would lose
/// the event time it runs on.
pub(super) fn use_processing_time(plan: &mut Plan, at: Position) -> Result<()> {
    plan.time_column = None;
    match &mut plan.node {
        Node::Scan {
            proctime_watermark, ..
        } => {
            *proctime_watermark = true;
            Ok(())
        }
        Node::ProcTime { input }
        | Node::Filter { input, .. }
        | Node::Expect { input, .. }
        | Node::Project { input, .. } => use_processing_time(input, at),
        Node::Union { inputs } => inputs.iter_mut().try_for_each(|i| use_processing_time(i, at)),
        _ => Err(SqlError::plan(
            "a window over a PROCTIME() column must read a table's rows directly (through projections and filters only), not the output of a join, aggregate or window",
            at,
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

/// Gives every column but the changelog one the qualifier `qualifier`.
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

/// The conditions of `e` joined by AND.
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

/// A projection of `items` over `input`; keeps the changelog column of an
/// updating input last, and keeps the time attribute when it is passed
/// through as a plain column.
fn project(
    input: Plan,
    items: &[(ast::Expr, Option<String>)],
    substitute: &mut crate::binder::Substitute<'_>,
) -> Result<Plan> {
    // PROCTIME() in the select list reads a column appended below.
    let input = match items.iter().find_map(|(e, _)| proctime_call(e)) {
        Some(at) => with_proctime(input, at)?,
        None => input,
    };
    let proctime =
        matches!(input.node, Node::ProcTime { .. }).then(|| input.scope.columns.len() - 1);
    let mut substitute = |e: &ast::Expr| match proctime {
        Some(c) if is_proctime_call(e) => Some(Ok(crate::binder::Bound {
            expr: Expr::Column(c),
            data_type: ts_type(),
            nullable: false,
        })),
        _ => substitute(e),
    };
    let mut exprs = Vec::new();
    let mut cols = Vec::new();
    let mut time_column = None;
    for (i, (e, alias)) in items.iter().enumerate() {
        let b = bind_expr_with(e, &input.scope, &mut substitute)?;
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
