//! JOIN: a table on the right without a WATERMARK is the bounded build side
//! of a lookup join; anything else is a stream, joined with the left one
//! window by window when both carry the same windows, or as a regular join
//! that keeps every row.

use arrow::datatypes::DataType;
use runnel_engine::expr::ScalarValue;
use runnel_engine::expr::{BinaryOp, Expr};
use runnel_engine::ops::{
    IntervalJoinSpec, JoinKind, StreamJoinSpec, TemporalJoinSpec, WindowJoinSpec,
};
use runnel_engine::types::ROW_KIND_COLUMN;
use sqlparser::ast;

use super::{conjuncts, first_words, pos, resolve_column, Planner};
use crate::binder::{bind_expr, flink_type_name, Bound, Scope, ScopeColumn};
use crate::catalog::{key_of, Entry};
use crate::error::{Position, Result, SqlError};
use crate::plan::{Node, Plan};

impl Planner<'_> {
    pub(super) fn plan_join(&mut self, left: Plan, join: &ast::Join) -> Result<Plan> {
        use ast::JoinOperator as J;
        let (kind, constraint) = match &join.join_operator {
            J::Join(c) | J::Inner(c) => (JoinKind::Inner, c),
            J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, c),
            J::Right(c) | J::RightOuter(c) => (JoinKind::Right, c),
            J::FullOuter(c) => (JoinKind::Full, c),
            other => {
                return Err(SqlError::plan(
                    format!(
                        "{} joins are not supported; use [INNER], LEFT, RIGHT or FULL [OUTER] JOIN ... ON",
                        first_words(&format!("{other:?}"))
                    ),
                    pos(&join.relation),
                ))
            }
        };
        // A table named on the right is the build side of a lookup join;
        // anything else (a view, a subquery, a window function) is a
        // stream, joined with the left stream window by window.
        // `FOR SYSTEM_TIME AS OF` a table with a WATERMARK: an event-time
        // temporal join against a versioned table.
        if let ast::TableFactor::Table {
            name,
            args: None,
            version: Some(ast::TableVersion::ForSystemTimeAsOf(as_of)),
            ..
        } = &join.relation
        {
            if let Some(Entry::Table(table)) = self.catalog.get(name) {
                if table.descriptor.watermark.is_some() {
                    let table = table.clone();
                    self.record_read(name);
                    self.refuse_policies(name)?;
                    return self.plan_temporal_join(left, join, kind, constraint, as_of, &table);
                }
            }
        }
        // RIGHT and FULL joins keep the table's unmatched rows too: the
        // table is then read as a stream.
        let lookup = match &join.relation {
            ast::TableFactor::Table {
                name, alias, args, ..
            } if args.is_none()
                && !self.ctes.contains_key(&key_of(name))
                && matches!(kind, JoinKind::Inner | JoinKind::Left) =>
            {
                match self.catalog.get(name) {
                    // A table with a WATERMARK is a stream, not a lookup table.
                    // A table of changes is a stream too (its rows are
                    // not a table to look up until they are applied).
                    Some(Entry::Table(table))
                        if table.descriptor.watermark.is_none()
                            && !super::relation::is_changelog_table(table) =>
                    {
                        Some((name, alias, table))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((name, alias, table)) = lookup else {
            let right = self.plan_table_factor(&join.relation)?;
            let names = [
                super::hints::input_name(&left),
                super::hints::input_name(&right),
            ];
            let mut plan = plan_stream_join(left, right, kind, constraint, pos(&join.relation))?;
            // STATE_TTL applies to regular joins (window and interval
            // joins free their state by the watermark).
            if let Node::StreamJoin { spec, .. } = &mut plan.node {
                let [l, r] = names;
                spec.ttl = [self.hinted_ttl(l), self.hinted_ttl(r)];
            }
            return Ok(plan);
        };
        self.plan_lookup_join(
            left,
            (name, alias, table),
            (kind, constraint),
            &join.relation,
        )
    }
}

impl Planner<'_> {
    /// `left JOIN table FOR SYSTEM_TIME AS OF left.time ON ...` where the
    /// table has a WATERMARK and a PRIMARY KEY: each left row meets the
    /// table's row for its key as of the row's event time.
    fn plan_temporal_join(
        &mut self,
        left: Plan,
        join: &ast::Join,
        kind: JoinKind,
        constraint: &ast::JoinConstraint,
        as_of: &ast::Expr,
        table: &crate::catalog::TableEntry,
    ) -> Result<Plan> {
        let position = pos(&join.relation);
        if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(SqlError::plan(
                "a temporal join (FOR SYSTEM_TIME AS OF) is INNER or LEFT",
                position,
            ));
        }
        if left.updating {
            return Err(SqlError::plan(
                "the stream of a temporal join must be append-only; this one updates",
                position,
            ));
        }
        let time = match (resolve_column(as_of, &left.scope), left.time_column) {
            (Ok(c), Some(t)) if c == t => t,
            _ => {
                return Err(SqlError::plan(
                    format!(
                        "FOR SYSTEM_TIME AS OF must name the event-time attribute of the stream on the left (its WATERMARK column{}), because table '{}' has a WATERMARK and is joined by event time",
                        left.time_column
                            .map(|t| format!(": {}", left.scope.columns[t].name))
                            .unwrap_or_default(),
                        table.descriptor.name
                    ),
                    pos(as_of),
                ))
            }
        };
        if table.descriptor.primary_key.is_empty() {
            return Err(SqlError::plan(
                format!(
                    "table '{}' is joined FOR SYSTEM_TIME AS OF an event time, so it must be a versioned table: declare its PRIMARY KEY (...) NOT ENFORCED",
                    table.descriptor.name
                ),
                position,
            ));
        }
        let right = self.plan_table_factor(&join.relation)?;
        let Some(right_time) = right.time_column else {
            return Err(SqlError::plan(
                "a versioned table needs a WATERMARK",
                position,
            ));
        };
        let ast::JoinConstraint::On(on) = constraint else {
            return Err(SqlError::plan("a join needs an ON condition", position));
        };
        let right_data = data_scope(&right);
        let mut columns = left.scope.columns.clone();
        for c in &right_data.columns {
            let mut c = c.clone();
            c.nullable |= kind == JoinKind::Left;
            columns.push(c);
        }
        let scope = Scope::new(columns.clone());
        let (left_keys, right_keys, rest) = stream_join_keys(on, &left.scope, &right_data, &scope)?;
        let pk = &table.descriptor.primary_key;
        if !pk.iter().all(|k| right_keys.contains(k)) {
            let names: Vec<&str> = pk
                .iter()
                .map(|&k| table.descriptor.schema.field(k).name().as_str())
                .collect();
            return Err(SqlError::plan(
                format!(
                    "a temporal join must equate the versioned table's primary key ({}) with columns of the stream",
                    names.join(", ")
                ),
                pos(on),
            ));
        }
        let residual = residual_condition(rest)?;
        Ok(Plan {
            time_column: Some(time),
            window: None,
            updating: false,
            scope: Scope::new(columns),
            node: Node::TemporalJoin {
                left: Box::new(left),
                right: Box::new(right),
                spec: TemporalJoinSpec {
                    left_keys,
                    right_keys,
                    times: [time, right_time],
                    residual,
                    kind,
                },
            },
        })
    }
}

/// The columns `(left, right)` of an equality `a = b` between a column of
/// each side, in either order; `None` for any other condition.
pub(super) fn equality_sides(c: &ast::Expr, left: &Scope, right: &Scope) -> Option<(usize, usize)> {
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
/// carry windows and ON equates their `window_start` and `window_end`, the
/// join (of any kind) is a window join (see
/// [`runnel_engine::ops::window_join`]), append-only; otherwise a regular
/// join that keeps every row (INNER, LEFT, RIGHT or
/// FULL, over append-only or updating inputs; see
/// [`runnel_engine::ops::changelog_join`]). Its output updates when an
/// input does or a side is padded with NULLs.
fn plan_stream_join(
    left: Plan,
    right: Plan,
    kind: JoinKind,
    constraint: &ast::JoinConstraint,
    position: Position,
) -> Result<Plan> {
    let ast::JoinConstraint::On(on) = constraint else {
        return Err(SqlError::plan("a join needs an ON condition", position));
    };
    let (left_data, right_data) = (data_scope(&left), data_scope(&right));
    let pad_left = matches!(kind, JoinKind::Right | JoinKind::Full);
    let pad_right = matches!(kind, JoinKind::Left | JoinKind::Full);
    let mut columns: Vec<ScopeColumn> = left_data.columns.clone();
    for c in &mut columns {
        c.nullable |= pad_left;
    }
    for c in &right_data.columns {
        let mut c = c.clone();
        c.nullable |= pad_right;
        columns.push(c);
    }
    let scope = Scope::new(columns.clone());
    let (left_keys, right_keys, rest) = stream_join_keys(on, &left_data, &right_data, &scope)?;
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
    // Bounds on the distance between the two sides' event times make an
    // interval join (append-only inputs with time attributes only).
    let times = match (left.time_column, right.time_column) {
        (Some(l), Some(r)) if windows.is_none() && !left.updating && !right.updating => {
            Some((l, left_data.columns.len() + r))
        }
        _ => None,
    };
    let (bounds, rest) = match times {
        Some(t) => interval_bounds(rest, t),
        None => (None, rest),
    };
    let residual = residual_condition(rest)?;
    if let (Some((lower, upper)), Some((lt, _))) = (bounds, times) {
        let right_time = right.time_column.unwrap_or_default();
        let spec = IntervalJoinSpec {
            left_keys,
            right_keys,
            times: [lt, right_time],
            lower,
            upper,
            residual,
            kind,
            late_rows: false,
        };
        // The output's event time: a side that is never padded with NULLs
        // (the operator holds the watermark back by the interval).
        let time_column = match kind {
            JoinKind::Inner | JoinKind::Left => Some(lt),
            JoinKind::Right => Some(left_data.columns.len() + right_time),
            JoinKind::Full => None,
        };
        return Ok(Plan {
            time_column,
            window: None,
            updating: false,
            scope: Scope::new(columns),
            node: Node::IntervalJoin {
                left: Box::new(left),
                right: Box::new(right),
                spec,
            },
        });
    }
    let width = left_data.columns.len();
    let (node, window, updating) = match windows {
        Some((lws, lwe, rwe)) => {
            // The window columns of the output are those of a side that is
            // never padded with NULLs: a FULL join has none.
            let window = match kind {
                JoinKind::Inner | JoinKind::Left => Some((lws, lwe)),
                JoinKind::Right => right.window.map(|(s, e)| (width + s, width + e)),
                JoinKind::Full => None,
            };
            (
                Node::WindowJoin {
                    left: Box::new(left),
                    right: Box::new(right),
                    spec: WindowJoinSpec {
                        left_keys,
                        right_keys,
                        left_window_end: lwe,
                        right_window_end: rwe,
                        residual,
                        kind,
                        late_rows: false,
                    },
                },
                window,
                false,
            )
        }
        None => {
            let updating = kind != JoinKind::Inner || left.updating || right.updating;
            let mut spec = StreamJoinSpec::inner(left_keys, right_keys, residual);
            spec.kind = kind;
            (
                Node::StreamJoin {
                    left: Box::new(left),
                    right: Box::new(right),
                    spec,
                },
                None,
                updating,
            )
        }
    };
    if updating {
        columns.push(ScopeColumn {
            qualifier: None,
            name: ROW_KIND_COLUMN.to_string(),
            data_type: DataType::Int8,
            nullable: false,
        });
    }
    Ok(Plan {
        time_column: None,
        window,
        updating,
        scope: Scope::new(columns),
        node,
    })
}

/// The columns of `plan` without its changelog column.
pub(super) fn data_scope(plan: &Plan) -> Scope {
    let mut columns = plan.scope.columns.clone();
    if plan.updating {
        columns.pop();
    }
    Scope::new(columns)
}

/// Splits a stream join's ON condition into its keys, equalities between a
/// column of each side (of the same type), and the remaining conditions,
/// each bound over `both` sides' columns.
fn stream_join_keys<'e>(
    on: &'e ast::Expr,
    left: &Scope,
    right: &Scope,
    both: &Scope,
) -> Result<(Vec<usize>, Vec<usize>, Vec<(&'e ast::Expr, Bound)>)> {
    let mut left_keys = Vec::new();
    let mut right_keys = Vec::new();
    let mut rest = Vec::new();
    for c in conjuncts(on) {
        // Over both sides first: a name both sides have must be qualified.
        let bound = bind_expr(c, both)?;
        match equality_sides(c, left, right) {
            Some((l, r)) => {
                let (lc, rc) = (&left.columns[l], &right.columns[r]);
                if lc.data_type != rc.data_type {
                    return Err(SqlError::plan(
                        format!(
                            "join keys {} ({}) and {} ({}) have different types; CAST one side",
                            lc.name,
                            flink_type_name(&lc.data_type),
                            rc.name,
                            flink_type_name(&rc.data_type)
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
    Ok((left_keys, right_keys, rest))
}

/// The conditions of a join that are not keys, joined by AND.
fn residual_condition(rest: Vec<(&ast::Expr, Bound)>) -> Result<Option<Expr>> {
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
    Ok(residual)
}

/// ON conditions with their bound expressions.
type Conditions<'e> = Vec<(&'e ast::Expr, Bound)>;

/// The bounds `lower <= l.ts - r.ts <= upper` (milliseconds) that the
/// conditions `rest` put on the distance between the left time column and
/// the right one (`times`, numbered over both sides' columns), and the
/// conditions left over; `None` unless both bounds are there. Conditions
/// are comparisons (`<`, `<=`, `>`, `>=`, BETWEEN) between the two time
/// columns, each plus or minus a constant interval.
fn interval_bounds(
    rest: Conditions<'_>,
    (lt, rt): (usize, usize),
) -> (Option<(i64, i64)>, Conditions<'_>) {
    let (mut lower, mut upper): (Option<i64>, Option<i64>) = (None, None);
    let mut others = Vec::new();
    let mut used = Vec::new();
    for (c, b) in rest {
        let found = match &b.expr {
            Expr::Between {
                expr,
                low,
                high,
                negated: false,
            } => distance(expr, BinaryOp::GtEq, low, (lt, rt))
                .zip(distance(expr, BinaryOp::LtEq, high, (lt, rt)))
                .map(|(a, b)| vec![a, b]),
            Expr::Binary { op, left, right } => {
                distance(left, *op, right, (lt, rt)).map(|d| vec![d])
            }
            _ => None,
        };
        match found {
            Some(ds) => {
                for (is_lower, v) in ds {
                    if is_lower {
                        lower = Some(lower.map_or(v, |l| l.max(v)));
                    } else {
                        upper = Some(upper.map_or(v, |u| u.min(v)));
                    }
                }
                used.push((c, b));
            }
            None => others.push((c, b)),
        }
    }
    match (lower, upper) {
        (Some(l), Some(u)) => (Some((l, u)), others),
        _ => {
            others.extend(used);
            (None, others)
        }
    }
}

/// `a op b` as a bound on `l.ts - r.ts`: `(true, v)` for `>= v`,
/// `(false, v)` for `<= v`; `None` when it is no such comparison.
fn distance(a: &Expr, op: BinaryOp, b: &Expr, (lt, rt): (usize, usize)) -> Option<(bool, i64)> {
    let (ca, oa) = time_term(a)?;
    let (cb, ob) = time_term(b)?;
    // l + x op r + y  =>  l - r op y - x; with the sides swapped the
    // comparison turns around.
    let (op, v) = if ca == lt && cb == rt {
        (op, ob.checked_sub(oa)?)
    } else if ca == rt && cb == lt {
        let flipped = match op {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            _ => return None,
        };
        (flipped, oa.checked_sub(ob)?)
    } else {
        return None;
    };
    match op {
        BinaryOp::GtEq => Some((true, v)),
        BinaryOp::Gt => Some((true, v.checked_add(1)?)),
        BinaryOp::LtEq => Some((false, v)),
        BinaryOp::Lt => Some((false, v.checked_sub(1)?)),
        _ => None,
    }
}

/// `column`, `column + INTERVAL`, `column - INTERVAL` (a day-time one):
/// the column and the offset in milliseconds.
fn time_term(e: &Expr) -> Option<(usize, i64)> {
    match e {
        Expr::Column(c) => Some((*c, 0)),
        Expr::Binary {
            op: BinaryOp::Plus,
            left,
            right,
        } => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(ScalarValue::IntervalMillis(ms)))
            | (Expr::Literal(ScalarValue::IntervalMillis(ms)), Expr::Column(c)) => Some((*c, *ms)),
            _ => None,
        },
        Expr::Binary {
            op: BinaryOp::Minus,
            left,
            right,
        } => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(ScalarValue::IntervalMillis(ms))) => {
                Some((*c, ms.checked_neg()?))
            }
            _ => None,
        },
        _ => None,
    }
}
