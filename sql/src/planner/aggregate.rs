//! GROUP BY, aggregate calls and HAVING: a window aggregate over a window
//! table function, a session aggregate, a cascaded window aggregate over a
//! window aggregate's output, or a non-windowed (updating) group aggregate;
//! then HAVING and the select list over the aggregate's output.

use arrow::datatypes::DataType;
use runnel_engine::aggregate::AggregateFunction;
use runnel_engine::expr::{BinaryOp, Expr, ScalarValue};
use runnel_engine::ops::{
    AggregateCall, GroupAggregateSpec, SessionAggregateSpec, WindowAggregateSpec,
};
use runnel_engine::types::ROW_KIND_COLUMN;
use runnel_engine::window::WindowSpec;
use sqlparser::ast::{self, FunctionArg, FunctionArgExpr, FunctionArguments};

use super::{
    col, pos, project, resolve_column, ts_type, Planner, CASCADE_TIME, WINDOW_END, WINDOW_START,
    WINDOW_TIME,
};
use crate::binder::{bind_expr, bind_expr_with, is_aggregate_name, Bound, Scope, ScopeColumn};
use crate::error::{Position, Result, SqlError};
use crate::plan::{engine_message, Node, Plan};

/// An aggregate call of the select list or HAVING: its text (lower case,
/// by which later mentions of the same call find it), the call, and its
/// result type.
type FoundAggregate = (String, AggregateCall, DataType);

/// The window a GROUP BY aggregates over: the window, the input's time
/// column, SESSION's partition columns, and the columns of the window
/// table function (what GROUP BY and the select list name).
type GroupWindow = (WindowSpec, usize, Vec<usize>, Scope);

impl Planner<'_> {
    pub(super) fn plan_aggregate(
        &mut self,
        input: Plan,
        group_exprs: &[ast::Expr],
        items: &[(ast::Expr, Option<String>)],
        having: Option<&ast::Expr>,
        position: Position,
    ) -> Result<Plan> {
        // Over an updating stream only GROUP BY without a window applies
        // (windows refuse updating input where they are planned); its
        // operator retracts (see runnel_engine::ops::retract_agg).
        // Window: the input is a window TVF and GROUP BY names its columns.
        let input_window = input.window;
        let offset = match &input.node {
            Node::WindowTvf { offset, .. } => *offset,
            _ => 0,
        };
        let (base, window) = match input.node {
            Node::WindowTvf {
                input: inner,
                window,
                time_column,
                partition,
                ..
            } => (
                *inner,
                Some((window, time_column, partition, input.scope.clone())),
            ),
            _ => (input, None),
        };
        // GROUP BY expressions that are not columns become columns of the
        // input (a projection appends them), named by their text.
        let (mut base, window, group_exprs) = computed_keys(base, window, group_exprs)?;
        let group_exprs = group_exprs.as_slice();
        let tvf_scope = window.as_ref().map(|w| w.3.clone());
        let base_width = base.scope.columns.len();
        let (keys, key_exprs) = group_keys(group_exprs, &base.scope, tvf_scope.as_ref(), position)?;
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
            base = cascade_input(base, end);
        }
        let pre_scope = tvf_scope.unwrap_or_else(|| base.scope.clone());
        let aggs = collect_aggregates(items, having, &pre_scope, &base.scope)?;
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
        let (agg_plan, agg_offset) = aggregate_plan(
            base,
            window,
            names,
            cascade,
            &keys,
            &aggs,
            (offset, self.allowed_lateness),
            position,
        )?;
        // Select list and HAVING over the aggregate's output.
        let updating = agg_plan.updating;
        let window_columns = agg_plan.window;
        let agg_scope = agg_plan.scope.clone();
        let is_window = agg_scope
            .columns
            .iter()
            .any(|c| c.name == WINDOW_END && c.qualifier.is_none());
        let mut substitute = |e: &ast::Expr| -> Option<Result<Bound>> {
            substitute_output(e, &aggs, &key_exprs, &agg_scope, agg_offset, is_window)
        };
        let mut plan = agg_plan;
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
}

/// The group keys: the input columns GROUP BY names, and their text (lower
/// case) for finding them in the select list. Over a window table function
/// (`tvf_scope`), GROUP BY must also name both `window_start` and
/// `window_end`, which are not keys of their own.
fn group_keys(
    group_exprs: &[ast::Expr],
    base: &Scope,
    tvf_scope: Option<&Scope>,
    position: Position,
) -> Result<(Vec<usize>, Vec<String>)> {
    let base_width = base.columns.len();
    let mut keys: Vec<usize> = Vec::new();
    let mut key_exprs: Vec<String> = Vec::new();
    let (mut has_start, mut has_end) = (false, false);
    for g in group_exprs {
        let idx = match tvf_scope {
            Some(s) => resolve_column(g, s)?,
            None => resolve_column(g, base)?,
        };
        if idx >= base_width {
            match tvf_scope.map(|s| s.columns[idx].name.as_str()) {
                Some(WINDOW_START) => has_start = true,
                Some(WINDOW_END) => has_end = true,
                _ => {
                    return Err(SqlError::plan(
                        "GROUP BY window_time is not supported; group by window_start, window_end",
                        pos(g),
                    ))
                }
            }
            continue;
        }
        keys.push(idx);
        // A computed key is found by the text of its expression.
        let text = g.to_string().to_lowercase();
        let text = text
            .trim_matches('"')
            .strip_prefix(GROUP_EXPR_PREFIX)
            .map(str::to_string)
            .unwrap_or(text);
        key_exprs.push(text);
    }
    if tvf_scope.is_some() && !(has_start && has_end) {
        return Err(SqlError::plan(
            "a windowed GROUP BY must include both window_start and window_end",
            position,
        ));
    }
    Ok((keys, key_exprs))
}

/// Name prefix of the columns computed for GROUP BY expressions.
const GROUP_EXPR_PREFIX: &str = "$group:";

/// Appends each GROUP BY expression that is not a column of `base` (or of
/// the window table function's columns) to `base` as a computed column,
/// and returns the GROUP BY list with such expressions replaced by a
/// reference to their column. The column's name carries the expression's
/// text, so the select list and HAVING find the key by that text (see
/// [`group_keys`]).
fn computed_keys(
    base: Plan,
    window: Option<GroupWindow>,
    group_exprs: &[ast::Expr],
) -> Result<(Plan, Option<GroupWindow>, Vec<ast::Expr>)> {
    let names_a_column = |g: &ast::Expr| {
        let scope = window.as_ref().map_or(&base.scope, |w| &w.3);
        resolve_column(g, scope).is_ok()
    };
    if group_exprs.iter().all(names_a_column) {
        return Ok((base, window, group_exprs.to_vec()));
    }
    let width = base.scope.columns.len();
    let mut exprs: Vec<(Expr, String)> = base
        .scope
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (Expr::Column(i), c.name.clone()))
        .collect();
    let mut scope = base.scope.clone();
    let mut rewritten = Vec::with_capacity(group_exprs.len());
    for g in group_exprs {
        if names_a_column(g) {
            rewritten.push(g.clone());
            continue;
        }
        if contains_aggregate_call(g) {
            return Err(SqlError::plan(
                "GROUP BY cannot contain an aggregate function",
                pos(g),
            ));
        }
        let b = bind_expr(g, &base.scope)?;
        let name = format!("{GROUP_EXPR_PREFIX}{}", g.to_string().to_lowercase());
        exprs.push((b.expr, name.clone()));
        scope
            .columns
            .push(col(&name, None, b.data_type, b.nullable));
        rewritten.push(ast::Expr::Identifier(ast::Ident::with_quote('"', name)));
    }
    if exprs.len() == width {
        return Ok((base, window, rewritten));
    }
    let added = exprs.len() - width;
    let plan = Plan {
        time_column: base.time_column,
        window: base.window,
        updating: base.updating,
        scope: scope.clone(),
        node: Node::Project {
            input: Box::new(base),
            exprs,
        },
    };
    // The window table function's columns follow the input's: the new
    // ones go in between.
    let window = window.map(|(spec, time, partition, tvf)| {
        let mut columns = scope.columns.clone();
        columns.extend(tvf.columns[width..].iter().cloned());
        debug_assert_eq!(columns.len(), tvf.columns.len() + added);
        (spec, time, partition, Scope::new(columns))
    });
    Ok((plan, window, rewritten))
}

/// True when `e` calls an aggregate function.
fn contains_aggregate_call(e: &ast::Expr) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(e, |x| {
        if let ast::Expr::Function(f) = x {
            if is_aggregate_name(&f.name.to_string()) {
                found = true;
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// The input of a cascaded window aggregate: `base` plus a time column,
/// the last millisecond of its window (`end` - 1).
fn cascade_input(base: Plan, end: usize) -> Plan {
    let base_width = base.scope.columns.len();
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
    Plan {
        time_column: Some(base_width),
        window: base.window,
        updating: false,
        scope,
        node: Node::Project {
            input: Box::new(base),
            exprs,
        },
    }
}

/// The aggregate calls of the select list and HAVING, each once, in order
/// of appearance; the expressions are checked over `pre_scope` (what the
/// query sees before aggregating), the calls bound over `base`.
fn collect_aggregates(
    items: &[(ast::Expr, Option<String>)],
    having: Option<&ast::Expr>,
    pre_scope: &Scope,
    base: &Scope,
) -> Result<Vec<FoundAggregate>> {
    let mut aggs: Vec<FoundAggregate> = Vec::new();
    let mut collect = |e: &ast::Expr| -> Option<Result<Bound>> {
        let ast::Expr::Function(f) = e else {
            return None;
        };
        let name = f.name.to_string();
        if !is_aggregate_name(&name) {
            return None;
        }
        Some(bind_aggregate(f, base).map(|(call, t)| {
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
    for (e, _) in items {
        bind_expr_with(e, pre_scope, &mut collect).map(|_| ())?;
    }
    if let Some(h) = having {
        bind_expr_with(h, pre_scope, &mut collect).map(|_| ())?;
    }
    Ok(aggs)
}

/// The aggregate node over `base` with its output columns (keys, the
/// window's columns named `names`, one column per call, the changelog
/// column when updating), and the index of its first call's column.
fn aggregate_plan(
    base: Plan,
    window: Option<GroupWindow>,
    names: [&str; 2],
    cascade: Option<(usize, usize)>,
    keys: &[usize],
    aggs: &[FoundAggregate],
    (offset, lateness): (i64, i64),
    position: Position,
) -> Result<(Plan, usize)> {
    let calls: Vec<AggregateCall> = aggs.iter().map(|(_, c, _)| c.clone()).collect();
    // The aggregate's output scope.
    let mut out_cols: Vec<ScopeColumn> = keys
        .iter()
        .map(|&k| base.scope.columns[k].clone())
        .collect();
    if window.is_some() {
        out_cols.push(col(names[0], None, ts_type(), false));
        out_cols.push(col(names[1], None, ts_type(), false));
    }
    let (node, updating) = aggregate_node(base, window, keys, calls, (offset, lateness), position)?;
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
        // Windows corrected after they fired (allowed lateness) are
        // updating rows: no longer rows of one window each, so what follows
        // is an ordinary aggregate or join over them.
        (Node::WindowAggregate { .. }, None) if !updating => Some((keys.len(), keys.len() + 1)),
        _ => None,
    };
    let plan = Plan {
        node,
        scope: Scope::new(out_cols),
        updating,
        time_column: None,
        window: window_columns,
    };
    Ok((plan, agg_offset))
}

/// The aggregate node over `base` for `window` (none: a group aggregate),
/// and whether its output is updating.
fn aggregate_node(
    base: Plan,
    window: Option<GroupWindow>,
    keys: &[usize],
    calls: Vec<AggregateCall>,
    (offset, lateness): (i64, i64),
    position: Position,
) -> Result<(Node, bool)> {
    Ok(match window {
        Some((window, time_column, partition, _)) => match window {
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
                    key_columns: keys.to_vec(),
                    aggregates: calls,
                    late_rows: false,
                    allowed_lateness: lateness,
                };
                (
                    Node::SessionAggregate {
                        input: Box::new(base),
                        spec,
                    },
                    lateness > 0,
                )
            }
            w => {
                let spec = WindowAggregateSpec {
                    window: w,
                    time_column,
                    key_columns: keys.to_vec(),
                    aggregates: calls,
                    offset,
                    allowed_lateness: lateness,
                };
                (
                    Node::WindowAggregate {
                        input: Box::new(base),
                        spec,
                    },
                    lateness > 0,
                )
            }
        },
        None => {
            let spec = GroupAggregateSpec {
                key_columns: keys.to_vec(),
                aggregates: calls,
                ttl: None,
                clock: Default::default(),
            };
            (
                Node::GroupAggregate {
                    input: Box::new(base),
                    spec,
                },
                true,
            )
        }
    })
}

/// What an expression of the select list or HAVING means over the
/// aggregate's output `agg_scope`: an aggregate call or a group key is its
/// output column, `window_time` (over a window) the window's last
/// millisecond; anything else is bound as usual (`None`).
fn substitute_output(
    e: &ast::Expr,
    aggs: &[FoundAggregate],
    key_exprs: &[String],
    agg_scope: &Scope,
    agg_offset: usize,
    is_window: bool,
) -> Option<Result<Bound>> {
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
}

/// Binds one aggregate call (function, DISTINCT, FILTER) over `scope`.
pub(super) fn bind_aggregate(
    f: &ast::Function,
    scope: &Scope,
) -> Result<(AggregateCall, DataType)> {
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
                    // The variance family works in DOUBLE, as in Flink.
                    let variance = matches!(
                        func,
                        AggregateFunction::StddevSamp
                            | AggregateFunction::StddevPop
                            | AggregateFunction::VarSamp
                            | AggregateFunction::VarPop
                    );
                    if variance && matches!(b.data_type, DataType::Decimal128(..)) {
                        types.push(DataType::Float64);
                        args.push(Expr::Cast {
                            expr: Box::new(b.expr),
                            to: DataType::Float64,
                        });
                        continue;
                    }
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
