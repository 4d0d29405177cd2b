//! `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)`, planned as Flink
//! does: a Top-N (see [`runnel_engine::ops::top_n`]) whose N comes from a
//! filter on the row number in the enclosing query (`WHERE rn <= 10`,
//! `rn < 10`, `rn = 1`). Deduplication is the case N = 1.

use arrow::datatypes::DataType;
use runnel_engine::expr::{BinaryOp, Expr, ScalarValue};
use runnel_engine::ops::TopNSpec;
use runnel_engine::types::ROW_KIND_COLUMN;
use sqlparser::ast;

use super::{col, pos, resolve_column};
use crate::binder::Scope;
use crate::error::{Result, SqlError};
use crate::plan::{Node, Plan};

/// The scope name of the row number column the Top-N adds.
pub(super) const ROW_NUMBER_COLUMN: &str = "$row_number";

/// The OVER function call of a select item, if it is one.
pub(super) fn over_call(e: &ast::Expr) -> Option<&ast::Function> {
    match e {
        ast::Expr::Function(f) if f.over.is_some() => Some(f),
        ast::Expr::Nested(inner) => over_call(inner),
        _ => None,
    }
}

/// True when `e` has an OVER call anywhere inside.
pub(super) fn contains_over(e: &ast::Expr) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(e, |x| {
        if matches!(x, ast::Expr::Function(f) if f.over.is_some()) {
            found = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// The Top-N node for `ROW_NUMBER() OVER (...)` call `f` over `input`,
/// its limit not yet known (0).
pub(super) fn row_number(input: Plan, f: &ast::Function) -> Result<Plan> {
    let name = f.name.to_string();
    if !name.eq_ignore_ascii_case("ROW_NUMBER") {
        return Err(SqlError::plan(
            format!(
                "{name}() OVER is not supported yet; ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) \
                 with a filter on it (Top-N, deduplication) is"
            ),
            pos(&f.name),
        ));
    }
    let no_args = match &f.args {
        ast::FunctionArguments::None => true,
        ast::FunctionArguments::List(l) => l.args.is_empty(),
        ast::FunctionArguments::Subquery(_) => false,
    };
    if !no_args {
        return Err(SqlError::plan(
            "ROW_NUMBER() takes no arguments",
            pos(&f.name),
        ));
    }
    let Some(ast::WindowType::WindowSpec(spec)) = &f.over else {
        return Err(SqlError::plan(
            "named windows are not supported; write OVER (PARTITION BY ... ORDER BY ...)",
            pos(&f.name),
        ));
    };
    if spec.window_frame.is_some() {
        return Err(SqlError::plan(
            "ROW_NUMBER() takes no window frame (ROWS/RANGE)",
            pos(&f.name),
        ));
    }
    if input.updating {
        return Err(SqlError::plan(
            "ROW_NUMBER() over an updating stream is not supported yet: its input must be \
             append-only (a table, a window aggregate, an INNER join of append-only streams)",
            pos(&f.name),
        ));
    }
    let scope = &input.scope;
    let partition_keys = spec
        .partition_by
        .iter()
        .map(|e| {
            resolve_column(e, scope).map_err(|_| {
                SqlError::plan(
                    format!("PARTITION BY takes columns, not {e}; compute it in a subquery"),
                    pos(e),
                )
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    if spec.order_by.is_empty() {
        return Err(SqlError::plan(
            "ROW_NUMBER() needs ORDER BY in its OVER clause: which rows come first",
            pos(&f.name),
        ));
    }
    let mut order = Vec::new();
    for o in &spec.order_by {
        let c = resolve_column(&o.expr, scope).map_err(|_| {
            SqlError::plan(
                format!(
                    "ORDER BY in OVER takes columns, not {}; compute it in a subquery",
                    o.expr
                ),
                pos(&o.expr),
            )
        })?;
        let descending = match &o.options.sort {
            None | Some(ast::OrderBySort::Asc) => false,
            Some(ast::OrderBySort::Desc) => true,
            Some(ast::OrderBySort::Using(_)) => {
                return Err(SqlError::plan(
                    "ORDER BY ... USING is not supported; write ASC or DESC",
                    pos(&o.expr),
                ))
            }
        };
        // NULLs are the smallest values, as in Flink: first ascending,
        // last descending.
        let nulls_first = o.options.nulls_first.unwrap_or(!descending);
        order.push((c, descending, nulls_first));
    }
    // ORDER BY the time attribute DESC is Flink's deduplication keeping
    // the last row: of rows with equal times the latest to arrive wins
    // (when the filter makes it a Top-1, see `set_limit`).
    let later_first = matches!(order.as_slice(), [(c, true, _)] if input.time_column == Some(*c));
    let width = scope.columns.len();
    let mut columns = scope.columns.clone();
    columns.push(col(ROW_NUMBER_COLUMN, None, DataType::Int64, false));
    columns.push(col(ROW_KIND_COLUMN, None, DataType::Int8, false));
    debug_assert_eq!(width + 2, columns.len());
    Ok(Plan {
        time_column: None,
        window: None,
        updating: true,
        scope: Scope::new(columns),
        node: Node::TopN {
            input: Box::new(input),
            spec: TopNSpec {
                partition_keys,
                order,
                limit: 0,
                rank_column: true,
                rank_name: "row_number".into(),
                later_first,
            },
            position: pos(&f.name),
        },
    })
}

/// Sets the N of Top-N nodes from the filters above them: a conjunct
/// `rn <= N`, `rn < N` or `rn = 1` (either way round) on a row number
/// whose Top-N has no N yet, seen through projections, becomes the N and
/// leaves the filter (the filter goes when nothing else is left).
pub(super) fn set_limits(plan: Plan) -> Plan {
    let Plan {
        node,
        scope,
        updating,
        time_column,
        window,
    } = plan;
    let node = match node {
        Node::Filter { input, predicate } => {
            let mut input = *input;
            let mut predicate = Some(predicate);
            if let (Some(rank), Some(p)) = (row_number_column(&input), predicate.clone()) {
                let mut rest = Vec::new();
                let mut limit = None;
                for c in split_and(p) {
                    match (limit, bound_of(&c, rank)) {
                        (None, Some(n)) => limit = Some(n),
                        _ => rest.push(c),
                    }
                }
                if let Some(n) = limit {
                    set_limit(&mut input, n);
                    predicate = rest.into_iter().reduce(|a, b| Expr::Binary {
                        op: BinaryOp::And,
                        left: Box::new(a),
                        right: Box::new(b),
                    });
                }
            }
            let input = set_limits(input);
            match predicate {
                Some(predicate) => Node::Filter {
                    input: Box::new(input),
                    predicate,
                },
                // A filter on the row number alone: the Top-N is the filter.
                None => return input,
            }
        }
        Node::Project { input, exprs } => Node::Project {
            input: Box::new(set_limits(*input)),
            exprs,
        },
        other => other,
    };
    Plan {
        node,
        scope,
        updating,
        time_column,
        window,
    }
}

/// The column of `plan`'s output that is the row number of a Top-N with no
/// N yet, passed through projections unchanged.
fn row_number_column(plan: &Plan) -> Option<usize> {
    match &plan.node {
        Node::TopN { input, spec, .. } if spec.limit == 0 => Some(input.scope.columns.len()),
        Node::Project { input, exprs } => {
            let inner = row_number_column(input)?;
            exprs
                .iter()
                .position(|(e, _)| strip_casts(e) == &Expr::Column(inner))
        }
        _ => None,
    }
}

fn set_limit(plan: &mut Plan, n: usize) {
    match &mut plan.node {
        Node::TopN { spec, .. } => {
            spec.limit = n;
            // Only deduplication (N = 1) lets the latest of equal rows win.
            spec.later_first &= n == 1;
        }
        Node::Project { input, .. } => set_limit(input, n),
        _ => {}
    }
}

fn split_and(e: Expr) -> Vec<Expr> {
    match e {
        Expr::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            let mut v = split_and(*left);
            v.extend(split_and(*right));
            v
        }
        other => vec![other],
    }
}

fn strip_casts(e: &Expr) -> &Expr {
    match e {
        Expr::Cast { expr, .. } | Expr::TryCast { expr, .. } => strip_casts(expr),
        other => other,
    }
}

fn literal(e: &Expr) -> Option<i64> {
    match strip_casts(e) {
        Expr::Literal(ScalarValue::Int32(v)) => Some(i64::from(*v)),
        Expr::Literal(ScalarValue::Int64(v)) => Some(*v),
        _ => None,
    }
}

/// The N that conjunct `c` sets on row number column `rank`.
fn bound_of(c: &Expr, rank: usize) -> Option<usize> {
    let Expr::Binary { op, left, right } = c else {
        return None;
    };
    let is_rank = |e: &Expr| strip_casts(e) == &Expr::Column(rank);
    // As `rn <op> n`.
    let (op, n) = if is_rank(left) {
        (*op, literal(right)?)
    } else if is_rank(right) {
        let flipped = match op {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            other => *other,
        };
        (flipped, literal(left)?)
    } else {
        return None;
    };
    let n = match op {
        BinaryOp::LtEq => n,
        BinaryOp::Lt => n - 1,
        BinaryOp::Eq if n == 1 => 1,
        _ => return None,
    };
    usize::try_from(n).ok().filter(|&n| n >= 1)
}
