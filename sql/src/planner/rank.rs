//! OVER in the select list. `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY
//! ...)`, planned as Flink does: a Top-N (see
//! [`runnel_engine::ops::top_n`]) whose N comes from a filter on the row
//! number in the enclosing query (`WHERE rn <= 10`, `rn < 10`, `rn = 1`);
//! deduplication is the case N = 1. Aggregates OVER a ROWS or RANGE frame
//! ordered by the time attribute: an OVER aggregation (see
//! [`runnel_engine::ops::over_agg`]).

use arrow::datatypes::DataType;
use runnel_engine::expr::{BinaryOp, Expr, ScalarValue};
use runnel_engine::ops::{LagCall, OverAggregateSpec, OverFrame, RankFunction, TopNSpec};
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
    let function = match name.to_uppercase().as_str() {
        "ROW_NUMBER" => RankFunction::RowNumber,
        "RANK" => RankFunction::Rank,
        "DENSE_RANK" => RankFunction::DenseRank,
        _ => {
            return Err(SqlError::plan(
                format!(
                    "{name}() OVER is not supported yet; ROW_NUMBER(), RANK() or DENSE_RANK() OVER \
                     (PARTITION BY ... ORDER BY ...) with a filter on it (Top-N, deduplication), and \
                     aggregate functions OVER a frame, are"
                ),
                pos(&f.name),
            ))
        }
    };
    let no_args = match &f.args {
        ast::FunctionArguments::None => true,
        ast::FunctionArguments::List(l) => l.args.is_empty(),
        ast::FunctionArguments::Subquery(_) => false,
    };
    if !no_args {
        return Err(SqlError::plan(
            format!("{name}() takes no arguments"),
            pos(&f.name),
        ));
    }
    let Some(ast::WindowType::WindowSpec(spec)) = &f.over else {
        return Err(SqlError::plan(
            "this OVER names no window definition; write OVER (PARTITION BY ... ORDER BY ...), or OVER w with WINDOW w AS (...)",
            pos(&f.name),
        ));
    };
    if spec.window_frame.is_some() {
        return Err(SqlError::plan(
            "ROW_NUMBER() takes no window frame (ROWS/RANGE)",
            pos(&f.name),
        ));
    }
    let scope = &input.scope;
    let partition_keys = partition_columns(&spec.partition_by, &input)?;
    if spec.order_by.is_empty() {
        return Err(SqlError::plan(
            "ROW_NUMBER() needs ORDER BY in its OVER clause: which rows come first",
            pos(&f.name),
        ));
    }
    let order = order_columns(&spec.order_by, &input)?;
    // ORDER BY the time attribute DESC is Flink's deduplication keeping
    // the last row: of rows with equal times the latest to arrive wins
    // (when the filter makes it a Top-1, see `set_limit`).
    let later_first = function == RankFunction::RowNumber
        && !input.updating
        && matches!(order.as_slice(), [(c, true, _)] if input.time_column == Some(*c));
    // PARTITION BY the input's window columns: a window Top-N, emitted
    // when the window closes (append-only).
    let window_end = input
        .window
        .filter(|_| !input.updating)
        .filter(|(s, e)| partition_keys.contains(s) && partition_keys.contains(e))
        .map(|(_, e)| e);
    // Over an updating input, the input's changelog column gives way to
    // the Top-N's own (see runnel_engine::ops::ordered).
    let mut columns = scope.columns[..data_width(&input)].to_vec();
    columns.push(col(ROW_NUMBER_COLUMN, None, DataType::Int64, false));
    if window_end.is_none() {
        columns.push(col(ROW_KIND_COLUMN, None, DataType::Int8, false));
    }
    Ok(Plan {
        time_column: None,
        window: window_end.and(input.window),
        updating: window_end.is_none(),
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
                window_end,
                function,
            },
            position: pos(&f.name),
        },
    })
}

/// A column of `input` named in an OVER clause; not its changelog column.
fn over_column(e: &ast::Expr, input: &Plan, clause: &str) -> Result<usize> {
    let c = resolve_column(e, &input.scope).map_err(|_| {
        SqlError::plan(
            format!("{clause} takes columns, not {e}; compute it in a subquery"),
            pos(e),
        )
    })?;
    if c >= data_width(input) {
        return Err(SqlError::plan(
            format!("{clause} cannot use the changelog column {e}"),
            pos(e),
        ));
    }
    Ok(c)
}

/// PARTITION BY of an OVER clause.
fn partition_columns(partition_by: &[ast::Expr], input: &Plan) -> Result<Vec<usize>> {
    partition_by
        .iter()
        .map(|e| over_column(e, input, "PARTITION BY"))
        .collect()
}

/// ORDER BY of an OVER clause as (column, descending, nulls first).
fn order_columns(order_by: &[ast::OrderByExpr], input: &Plan) -> Result<Vec<(usize, bool, bool)>> {
    let mut order = Vec::new();
    for o in order_by {
        let c = over_column(&o.expr, input, "ORDER BY in OVER")?;
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
    Ok(order)
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
        Node::TopN { input, spec, .. } if spec.limit == 0 => Some(data_width(input)),
        Node::Project { input, exprs } => {
            let inner = row_number_column(input)?;
            exprs
                .iter()
                .position(|(e, _)| strip_casts(e) == &Expr::Column(inner))
        }
        // Another filter keeps the columns where they are.
        Node::Filter { input, .. } => row_number_column(input),
        _ => None,
    }
}

/// The columns of `plan`'s output before its changelog column, if any.
pub(crate) fn data_width(plan: &Plan) -> usize {
    plan.scope.columns.len() - usize::from(plan.updating)
}

fn set_limit(plan: &mut Plan, n: usize) {
    match &mut plan.node {
        Node::TopN { spec, .. } => {
            spec.limit = n;
            // Only deduplication (N = 1) lets the latest of equal rows win.
            spec.later_first &= n == 1;
        }
        Node::Project { input, .. } | Node::Filter { input, .. } => set_limit(input, n),
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

/// The OVER aggregation of the OVER calls at `over` in `items` (all with
/// the same window), over `input`: the node, and the scope names of its
/// aggregate columns in the order of `over`.
pub(super) fn over_aggregate(
    input: Plan,
    items: &[(ast::Expr, Option<String>)],
    over: &[usize],
) -> Result<(Plan, Vec<String>)> {
    let calls: Vec<&ast::Function> = over
        .iter()
        .map(|&i| {
            over_call(&items[i].0).ok_or_else(|| {
                SqlError::plan(
                    "an OVER call must be a select item of its own (SELECT ..., AVG(x) OVER (...) AS a)",
                    pos(&items[i].0),
                )
            })
        })
        .collect::<Result<_>>()?;
    let first = calls[0];
    let Some(ast::WindowType::WindowSpec(spec)) = &first.over else {
        return Err(SqlError::plan(
            "this OVER names no window definition; write OVER (PARTITION BY ... ORDER BY ...), or OVER w with WINDOW w AS (...)",
            pos(&first.name),
        ));
    };
    if let Some(f) = calls[1..].iter().find(|f| f.over != first.over) {
        return Err(SqlError::plan(
            "every OVER call of a SELECT must use the same window (as in Flink)",
            pos(&f.name),
        ));
    }
    let scope = &input.scope;
    let partition_keys = partition_columns(&spec.partition_by, &input)?;
    if input.updating {
        let lag = calls.iter().find(|f| {
            let n = f.name.to_string();
            n.eq_ignore_ascii_case("LAG") || n.eq_ignore_ascii_case("LEAD")
        });
        if let Some(f) = lag {
            return Err(SqlError::plan(
                format!(
                    "{}() OVER an updating stream is not supported; its input must be append-only",
                    f.name
                ),
                pos(&f.name),
            ));
        }
        return updating_over(input, calls, partition_keys, spec);
    }
    let time_column = match spec.order_by.as_slice() {
        [o] if !matches!(o.options.sort, Some(ast::OrderBySort::Desc)) => {
            let c = resolve_column(&o.expr, scope).ok();
            match (c, input.time_column) {
                (Some(c), Some(t)) if c == t => c,
                _ => {
                    return Err(SqlError::plan(
                        format!(
                            "an OVER window must be ORDER BY the time attribute (the column with \
                             the WATERMARK), ascending; {} is not{}",
                            o.expr,
                            match input.time_column {
                                Some(t) =>
                                    format!(" (the time attribute is '{}')", scope.columns[t].name),
                                None => " (the input has no time attribute)".into(),
                            }
                        ),
                        pos(&o.expr),
                    ))
                }
            }
        }
        _ => {
            return Err(SqlError::plan(
                "an OVER window must be ORDER BY the time attribute (the column with the \
                 WATERMARK), ascending, alone",
                pos(&first.name),
            ))
        }
    };
    let frame_error = |why: &str| {
        SqlError::plan(
            format!(
                "{why}; write ROWS BETWEEN n PRECEDING AND CURRENT ROW or RANGE BETWEEN INTERVAL \
                 '...' PRECEDING AND CURRENT ROW"
            ),
            pos(&first.name),
        )
    };
    // Without a frame, Flink's default: RANGE UNBOUNDED PRECEDING.
    let Some(frame) = &spec.window_frame else {
        return finish_over(
            input,
            calls,
            partition_keys,
            vec![(time_column, false, false)],
            OverFrame::UnboundedRange,
        );
    };
    if !matches!(
        frame.end_bound,
        None | Some(ast::WindowFrameBound::CurrentRow)
    ) {
        return Err(frame_error("an OVER frame must end at CURRENT ROW"));
    }
    let start = match &frame.start_bound {
        ast::WindowFrameBound::Preceding(Some(start)) => start,
        ast::WindowFrameBound::Preceding(None) => {
            let unbounded = match frame.units {
                ast::WindowFrameUnits::Rows => OverFrame::UnboundedRows,
                ast::WindowFrameUnits::Range => OverFrame::UnboundedRange,
                ast::WindowFrameUnits::Groups => {
                    return Err(frame_error("GROUPS frames are not supported"))
                }
            };
            let order = vec![(time_column, false, false)];
            return finish_over(input, calls, partition_keys, order, unbounded);
        }
        _ => {
            return Err(frame_error(
                "an OVER frame must start before the row (n PRECEDING, an interval PRECEDING or UNBOUNDED PRECEDING)",
            ))
        }
    };
    let frame = match frame.units {
        ast::WindowFrameUnits::Rows => {
            let n =
                row_count(start).ok_or_else(|| frame_error("ROWS takes a whole number of rows"))?;
            OverFrame::Rows(n)
        }
        ast::WindowFrameUnits::Range => {
            let ms = crate::binder::interval_millis(start)
                .map_err(|_| frame_error("RANGE takes an interval (INTERVAL '10' MINUTE)"))?;
            if ms < 0 {
                return Err(frame_error(
                    "a RANGE frame reaches back a positive interval",
                ));
            }
            OverFrame::Range(ms)
        }
        ast::WindowFrameUnits::Groups => {
            return Err(frame_error("GROUPS frames are not supported"))
        }
    };
    let order = vec![(time_column, false, false)];
    finish_over(input, calls, partition_keys, order, frame)
}

/// A whole number of rows (`10` of `10 PRECEDING`).
fn row_count(e: &ast::Expr) -> Option<u64> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// An OVER aggregation over an updating input: ORDER BY any columns, a
/// ROWS frame of n rows (see runnel_engine::ops::ordered).
fn updating_over(
    input: Plan,
    calls: Vec<&ast::Function>,
    partition_keys: Vec<usize>,
    spec: &ast::WindowSpec,
) -> Result<(Plan, Vec<String>)> {
    let first = calls[0];
    let why = input
        .updating_cause()
        .unwrap_or_else(|| "its rows are changes".into());
    let refuse = |what: &str| {
        SqlError::plan(
            format!(
                "{what}: over an updating stream an OVER window takes ROWS BETWEEN n PRECEDING \
                 AND CURRENT ROW (the input updates because {why})"
            ),
            pos(&first.name),
        )
    };
    if spec.order_by.is_empty() {
        return Err(refuse("this OVER window has no ORDER BY"));
    }
    let order = order_columns(&spec.order_by, &input)?;
    let n = match &spec.window_frame {
        Some(frame)
            if frame.units == ast::WindowFrameUnits::Rows
                && matches!(
                    frame.end_bound,
                    None | Some(ast::WindowFrameBound::CurrentRow)
                ) =>
        {
            match &frame.start_bound {
                ast::WindowFrameBound::Preceding(Some(start)) => {
                    row_count(start).ok_or_else(|| refuse("ROWS takes a whole number of rows"))?
                }
                ast::WindowFrameBound::CurrentRow => 0,
                ast::WindowFrameBound::Preceding(None) => {
                    return Err(refuse("this frame is UNBOUNDED"))
                }
                ast::WindowFrameBound::Following(_) => {
                    return Err(refuse("this frame starts after the current row"))
                }
            }
        }
        Some(_) => {
            return Err(refuse(
                "this frame is not a ROWS frame ending at the current row",
            ))
        }
        None => {
            return Err(refuse(
                "this OVER window has no frame (Flink's default is RANGE UNBOUNDED PRECEDING)",
            ))
        }
    };
    if n > 1_000 {
        return Err(refuse("this frame reaches back more than 1000 rows"));
    }
    finish_over(input, calls, partition_keys, order, OverFrame::Rows(n))
}

/// The OverAggregate node of `calls` over `input` with `frame`.
fn finish_over(
    input: Plan,
    calls: Vec<&ast::Function>,
    partition_keys: Vec<usize>,
    order: Vec<(usize, bool, bool)>,
    frame: OverFrame,
) -> Result<(Plan, Vec<String>)> {
    let scope = &input.scope;
    let mut aggregates = Vec::new();
    let mut lags = Vec::new();
    let mut names = Vec::new();
    let mut columns = scope.columns[..data_width(&input)].to_vec();
    // The operator's output: the aggregates, then the LAG columns.
    let mut lag_columns = Vec::new();
    for (i, f) in calls.iter().enumerate() {
        let mut plain = (*f).clone();
        plain.over = None;
        let name = plain.name.to_string();
        let column = format!("$over{i}");
        names.push(column.clone());
        if name.eq_ignore_ascii_case("LEAD") {
            return Err(SqlError::plan(
                "LEAD() OVER needs rows that come after the current one, which a stream \
                 emitting each row when the watermark passes it has not seen; LAG() is supported",
                pos(&f.name),
            ));
        }
        if name.eq_ignore_ascii_case("LAG") {
            if input.updating {
                return Err(SqlError::plan(
                    "LAG() OVER an updating stream is not supported; its input must be append-only",
                    pos(&f.name),
                ));
            }
            let (lag, data_type) = bind_lag(&plain, scope, column.clone())?;
            lag_columns.push(col(&column, None, data_type, true));
            lags.push(lag);
            continue;
        }
        if !crate::binder::is_aggregate_name(&name) {
            return Err(SqlError::plan(
                format!(
                    "{name}() OVER is not supported; aggregate functions, LAG() and ROW_NUMBER() are"
                ),
                pos(&f.name),
            ));
        }
        let (call, data_type) = super::aggregate::bind_aggregate(&plain, scope)?;
        columns.push(col(&column, None, data_type, true));
        aggregates.push(call);
    }
    columns.extend(lag_columns);
    let updating = input.updating;
    if updating {
        columns.push(col(ROW_KIND_COLUMN, None, DataType::Int8, false));
    }
    let plan = Plan {
        time_column: input.time_column.filter(|_| !updating),
        window: input.window.filter(|_| !updating),
        updating,
        scope: Scope::new(columns),
        node: Node::OverAggregate {
            input: Box::new(input),
            spec: OverAggregateSpec {
                partition_keys,
                time_column: order[0].0,
                frame,
                aggregates,
                order,
                lags,
            },
        },
    };
    Ok((plan, names))
}

/// True for the functions an OVER aggregation computes: aggregates, LAG
/// (and LEAD, refused with a reason).
pub(super) fn is_over_function(name: &str) -> bool {
    crate::binder::is_aggregate_name(name)
        || name.eq_ignore_ascii_case("LAG")
        || name.eq_ignore_ascii_case("LEAD")
}

/// `LAG(value [, offset [, default]])`: the call and its type.
fn bind_lag(f: &ast::Function, scope: &Scope, name: String) -> Result<(LagCall, DataType)> {
    let plain = match &f.args {
        ast::FunctionArguments::List(l) => l.duplicate_treatment.is_none() && l.clauses.is_empty(),
        _ => true,
    };
    if !plain || f.filter.is_some() || f.null_treatment.is_some() || !f.within_group.is_empty() {
        return Err(SqlError::plan(
            "LAG takes no DISTINCT, FILTER, IGNORE/RESPECT NULLS or WITHIN GROUP",
            pos(&f.name),
        ));
    }
    let args: Vec<&ast::Expr> = match &f.args {
        ast::FunctionArguments::List(l) => l
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(SqlError::plan(
                    format!("unsupported argument {other} of LAG"),
                    pos(&f.name),
                )),
            })
            .collect::<Result<_>>()?,
        _ => Vec::new(),
    };
    if args.is_empty() || args.len() > 3 {
        return Err(SqlError::plan(
            "LAG takes a value, an optional offset (a positive whole number) and an optional default",
            pos(&f.name),
        ));
    }
    let value = crate::binder::bind_expr(args[0], scope)?;
    let offset = match args.get(1) {
        None => 1,
        Some(e) => row_count(e)
            .filter(|&n| (1..=1_000).contains(&n))
            .ok_or_else(|| {
                SqlError::plan(
                    format!("LAG's offset must be a whole number from 1 to 1000, not {e}"),
                    pos(*e),
                )
            })?,
    };
    let default = match args.get(2) {
        None => None,
        Some(e) => {
            let d = crate::binder::bind_expr(e, scope)?;
            let numeric = |t: &DataType| t.is_numeric();
            if d.data_type == value.data_type || d.data_type == DataType::Null {
                Some(d.expr)
            } else if numeric(&d.data_type) && numeric(&value.data_type) {
                Some(Expr::Cast {
                    expr: Box::new(d.expr),
                    to: value.data_type.clone(),
                })
            } else {
                return Err(SqlError::plan(
                    format!(
                        "LAG's default must be a {} like its value, not {}",
                        crate::binder::flink_type_name(&value.data_type),
                        crate::binder::flink_type_name(&d.data_type)
                    ),
                    pos(*e),
                ));
            }
        }
    };
    let lag = LagCall {
        arg: value.expr,
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
        default,
        name,
    };
    Ok((lag, value.data_type))
}

/// `ORDER BY ... LIMIT n` over a stream: a Top-N of the whole stream by
/// `sort` (output columns of `input`) without the row number: rows that
/// come into the top are `+I`, rows that leave it `-D` (rank shifts are not
/// changes of the result).
pub(super) fn top_n_query(
    input: Plan,
    sort: &[crate::finish::SortKey],
    n: usize,
    position: crate::error::Position,
) -> Result<Plan> {
    let width = data_width(&input);
    let order: Vec<(usize, bool, bool)> = sort
        .iter()
        .map(|k| (k.column, k.descending, k.nulls_first))
        .collect();
    let mut columns = input.scope.columns[..width].to_vec();
    columns.push(col(ROW_KIND_COLUMN, None, DataType::Int8, false));
    Ok(Plan {
        time_column: None,
        window: None,
        updating: true,
        scope: Scope::new(columns),
        node: Node::TopN {
            input: Box::new(input),
            spec: TopNSpec {
                partition_keys: Vec::new(),
                order,
                limit: n,
                rank_column: false,
                rank_name: "row_number".into(),
                later_first: false,
                window_end: None,
                function: RankFunction::RowNumber,
            },
            position,
        },
    })
}

/// `ORDER BY <time attribute>` of an append-only stream: each row once the
/// watermark passes its time, in time order (rows of one time by arrival),
/// late rows dropped; an OVER aggregation without aggregates over one
/// partition.
pub(super) fn time_sort(input: Plan, time_column: usize) -> Plan {
    Plan {
        time_column: input.time_column,
        window: input.window,
        updating: false,
        scope: input.scope.clone(),
        node: Node::OverAggregate {
            input: Box::new(input),
            spec: OverAggregateSpec {
                partition_keys: Vec::new(),
                time_column,
                frame: OverFrame::Rows(0),
                aggregates: Vec::new(),
                order: vec![(time_column, false, false)],
                lags: Vec::new(),
            },
        },
    }
}
