//! WHERE: where each condition is applied. WHERE filters the rows before
//! windowing and aggregation; over a join of two streams, a condition on
//! one side's columns is pushed below the join to that side.

use std::collections::BTreeSet;

use arrow::datatypes::DataType;
use sqlparser::ast;

use super::{conjuncts, pos};
use crate::binder::bind_expr;
use crate::error::{Result, SqlError};
use crate::plan::{Node, Plan};

/// `input` filtered by the WHERE condition `pred`: below a window table
/// function, and split over the sides of a join where it can be.
pub(super) fn with_filter(input: Plan, pred: &ast::Expr) -> Result<Plan> {
    if matches!(
        input.node,
        Node::WindowJoin { .. } | Node::StreamJoin { .. } | Node::IntervalJoin { .. }
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
            offset,
        } => {
            let filtered = with_filter(*inner, pred)?;
            return Ok(Plan {
                node: Node::WindowTvf {
                    input: Box::new(filtered),
                    window,
                    time_column: tc,
                    partition,
                    offset,
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
    // The left side's data columns come first; a side whose rows an outer
    // join pads with NULLs takes no condition below the join (WHERE sees
    // the padded rows, which do not exist below it).
    let (width, padded) = match &join.node {
        Node::WindowJoin { left, spec, .. } => (left.scope.columns.len(), padded_sides(spec.kind)),
        Node::StreamJoin { left, spec, .. } => (
            left.scope.columns.len() - usize::from(left.updating),
            padded_sides(spec.kind),
        ),
        Node::IntervalJoin { left, spec, .. } => {
            (left.scope.columns.len(), padded_sides(spec.kind))
        }
        _ => return Err(SqlError::plan("internal: not a join", pos(pred))),
    };
    let (mut to_left, mut to_right, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for c in conjuncts(pred) {
        let mut cols = BTreeSet::new();
        bind_expr(c, &join.scope)?.expr.columns(&mut cols);
        match (cols.first(), cols.last()) {
            (Some(_), Some(&last)) if last < width && !padded[0] => to_left.push(c),
            (Some(&first), Some(_)) if first >= width && !padded[1] => to_right.push(c),
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
        Node::IntervalJoin { left, right, spec } => Node::IntervalJoin {
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

/// Which sides (left, right) a join of `kind` pads with NULLs.
fn padded_sides(kind: runnel_engine::ops::JoinKind) -> [bool; 2] {
    use runnel_engine::ops::JoinKind;
    [
        matches!(kind, JoinKind::Right | JoinKind::Full),
        matches!(kind, JoinKind::Left | JoinKind::Full),
    ]
}
