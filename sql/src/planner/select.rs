//! SELECT: the select list (with `*` expanded), GROUP BY's expressions, and
//! the choice between a plain projection and an aggregate.

use runnel_engine::types::ROW_KIND_COLUMN;
use runnel_engine::window::WindowSpec;
use sqlparser::ast::{self, GroupByExpr, SelectItem};

use super::filter::with_filter;
use super::{conjuncts, pos, project, Planner};
use crate::binder::{bind_expr, is_aggregate_name, Scope};
use crate::catalog::key_of;
use crate::error::{Position, Result, SqlError};
use crate::plan::{Node, Plan};

/// A select-list item: the expression and its alias.
type Item = (ast::Expr, Option<String>);

impl Planner<'_> {
    /// Plans a SELECT with its STATE_TTL hint in force (see
    /// [`super::hints`]).
    pub(super) fn plan_select(&mut self, select: &ast::Select) -> Result<Plan> {
        // OVER w with WINDOW w AS (...): the definition written in place.
        let resolved = resolve_named_windows(select)?;
        let select = resolved.as_ref().unwrap_or(select);
        let hints = super::hints::state_ttl_hints(select)?
            .into_iter()
            .map(|(k, v)| (k, (v, false)))
            .collect();
        let outer = std::mem::replace(&mut self.state_ttl, hints);
        let planned = self.plan_select_hinted(select);
        let hints = std::mem::replace(&mut self.state_ttl, outer);
        let plan = planned?;
        let mut unused: Vec<&String> = hints
            .iter()
            .filter(|(_, (_, used))| !used)
            .map(|(k, _)| k)
            .collect();
        if !unused.is_empty() {
            unused.sort();
            return Err(SqlError::plan(
                format!(
                    "STATE_TTL names {}, which no regular join or non-windowed aggregate of this \
                     SELECT reads (name a join side or the aggregate's input by its alias or table name)",
                    unused
                        .iter()
                        .map(|k| format!("'{k}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                pos(select),
            ));
        }
        Ok(plan)
    }

    /// The TTL the current SELECT's hint gives input `name`, marking it used.
    pub(super) fn hinted_ttl(&mut self, name: Option<String>) -> Option<std::time::Duration> {
        let (ttl, used) = self.state_ttl.get_mut(&name?)?;
        *used = true;
        Some(*ttl)
    }

    fn plan_select_hinted(&mut self, select: &ast::Select) -> Result<Plan> {
        let distinct = match &select.distinct {
            None | Some(ast::Distinct::All) => false,
            Some(ast::Distinct::Distinct) => true,
            Some(ast::Distinct::On(_)) => {
                return Err(SqlError::plan(
                    "SELECT DISTINCT ON is not supported; keep one row per key with \
                     ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) = 1",
                    pos(select),
                ))
            }
        };
        if select.from.len() > 1 {
            let rewritten = self.comma_joins(select)?;
            return self.plan_select_hinted(&rewritten);
        }
        let mut from = match select.from.as_slice() {
            [one] => self.plan_from(one)?,
            _ => {
                return Err(SqlError::plan(
                    "a streaming query needs a FROM clause",
                    pos(select),
                ))
            }
        };
        // WHERE applies to the rows before windowing and aggregation. A
        // condition on a subquery's ROW_NUMBER() gives its Top-N its N.
        if let Some(pred) = &select.selection {
            from = super::rank::set_limits(with_filter(from, pred)?);
        }
        let mut group_exprs = group_by_exprs(select)?;
        let items = select_items(select, &from.scope, &group_exprs)?;
        let over: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, (e, _))| super::rank::contains_over(e))
            .map(|(i, _)| i)
            .collect();
        if !over.is_empty() {
            use super::rank::over_call;
            let name_of = |i: usize| over_call(&items[i].0).map(|f| f.name.to_string());
            let all_aggregates = over
                .iter()
                .all(|&i| name_of(i).is_some_and(|n| super::rank::is_over_function(&n)));
            if all_aggregates {
                return self.plan_over_aggregate(
                    select,
                    from,
                    items,
                    &over,
                    &group_exprs,
                    distinct,
                );
            }
            // ROW_NUMBER(), or an error about the OVER call that is not.
            let i = over
                .iter()
                .copied()
                .find(|&i| {
                    name_of(i).is_some_and(|n| {
                        ["ROW_NUMBER", "RANK", "DENSE_RANK"]
                            .iter()
                            .any(|f| n.eq_ignore_ascii_case(f))
                    })
                })
                .unwrap_or(over[0]);
            return self.plan_row_number(select, from, items, i, &group_exprs, distinct);
        }
        let has_aggregates = items.iter().any(|(e, _)| contains_aggregate(e))
            || select.having.as_ref().is_some_and(contains_aggregate);
        // SELECT DISTINCT is a GROUP BY of the select list, as Flink plans it.
        if distinct {
            if !group_exprs.is_empty() || has_aggregates {
                return Err(SqlError::plan(
                    "SELECT DISTINCT with GROUP BY or aggregates is not supported; \
                     wrap the aggregate in a subquery and SELECT DISTINCT from it",
                    pos(select),
                ));
            }
            group_exprs = items.iter().map(|(e, _)| e.clone()).collect();
        }
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
        let input = super::hints::input_name(&from);
        let mut plan = self.plan_aggregate(
            from,
            &group_exprs,
            &items,
            select.having.as_ref(),
            pos(select),
        )?;
        // The hint counts as used only when a non-windowed aggregate took it.
        let hinted = input.and_then(|name| Some((self.state_ttl.get(&name)?.0, name)));
        if let Some((ttl, name)) = hinted {
            if super::hints::set_aggregate_ttl(&mut plan, ttl) {
                self.hinted_ttl(Some(name));
            }
        }
        Ok(plan)
    }
}

impl Planner<'_> {
    /// A SELECT whose item `i` is `ROW_NUMBER() OVER (...)`: a Top-N over
    /// `from` (its N comes from the enclosing query's filter), then the
    /// select list, with the row number where the call was.
    fn plan_row_number(
        &mut self,
        select: &ast::Select,
        from: Plan,
        mut items: Vec<Item>,
        i: usize,
        group_exprs: &[ast::Expr],
        distinct: bool,
    ) -> Result<Plan> {
        use super::rank::{contains_over, over_call, row_number, ROW_NUMBER_COLUMN};
        let Some(f) = over_call(&items[i].0) else {
            return Err(SqlError::plan(
                "an OVER call must be a select item of its own (SELECT ..., ROW_NUMBER() OVER (...) AS rn)",
                pos(&items[i].0),
            ));
        };
        if let Some((e, _)) = items
            .iter()
            .enumerate()
            .find(|(j, (e, _))| *j != i && contains_over(e))
            .map(|(_, item)| item)
        {
            return Err(SqlError::plan(
                "one OVER call per SELECT is supported",
                pos(e),
            ));
        }
        if !group_exprs.is_empty()
            || distinct
            || select.having.is_some()
            || items
                .iter()
                .any(|(e, _)| contains_aggregate(e) && !contains_over(e))
        {
            return Err(SqlError::plan(
                "ROW_NUMBER() cannot share its SELECT with GROUP BY, aggregates or DISTINCT; \
                 aggregate in a subquery and rank its rows in the enclosing SELECT",
                pos(select),
            ));
        }
        let ranked = row_number(from, f)?;
        items[i].0 = ast::Expr::Identifier(ast::Ident::with_quote('"', ROW_NUMBER_COLUMN));
        if items[i].1.is_none() {
            items[i].1 = Some("row_number".into());
        }
        project(ranked, &items, &mut |_| None)
    }

    /// A SELECT whose items `over` are aggregates OVER one window: an OVER
    /// aggregation of `from`, then the select list with each call's result
    /// where it was.
    fn plan_over_aggregate(
        &mut self,
        select: &ast::Select,
        from: Plan,
        mut items: Vec<Item>,
        over: &[usize],
        group_exprs: &[ast::Expr],
        distinct: bool,
    ) -> Result<Plan> {
        if !group_exprs.is_empty()
            || distinct
            || select.having.is_some()
            || items
                .iter()
                .any(|(e, _)| contains_aggregate(e) && !super::rank::contains_over(e))
        {
            return Err(SqlError::plan(
                "an OVER aggregation cannot share its SELECT with GROUP BY, other aggregates or \
                 DISTINCT; aggregate in a subquery",
                pos(select),
            ));
        }
        let (plan, names) = super::rank::over_aggregate(from, &items, over)?;
        for (&i, name) in over.iter().zip(names) {
            if items[i].1.is_none() {
                let label = super::rank::over_call(&items[i].0)
                    .map(|f| f.name.to_string().to_lowercase())
                    .unwrap_or_default();
                items[i].1 = Some(label);
            }
            items[i].0 = ast::Expr::Identifier(ast::Ident::with_quote('"', name));
        }
        project(plan, &items, &mut |_| None)
    }

    /// `FROM a, b, c WHERE ...` as Flink reads it: each comma is an INNER
    /// JOIN whose ON takes the WHERE conditions that relate the new table
    /// to the ones before it (bindable over both, over neither alone); the
    /// other conditions stay in WHERE.
    fn comma_joins(&mut self, select: &ast::Select) -> Result<ast::Select> {
        let mut conditions: Vec<ast::Expr> = select
            .selection
            .as_ref()
            .map(|w| conjuncts(w).into_iter().cloned().collect())
            .unwrap_or_default();
        let mut joined = select.from[0].clone();
        let mut left = data_columns(&self.plan_from(&joined)?);
        for item in &select.from[1..] {
            let right = data_columns(&self.plan_from(item)?);
            let mut both = left.clone();
            both.extend(right.iter().cloned());
            let (left_scope, right_scope, both) =
                (Scope::new(left), Scope::new(right), Scope::new(both));
            let binds = |e: &ast::Expr, scope: &Scope| bind_expr(e, scope).is_ok();
            let (on, rest): (Vec<ast::Expr>, Vec<ast::Expr>) =
                conditions.into_iter().partition(|c| {
                    binds(c, &both) && !binds(c, &left_scope) && !binds(c, &right_scope)
                });
            conditions = rest;
            let Some(on) = on.into_iter().reduce(and) else {
                return Err(SqlError::plan(
                    format!(
                        "a comma join needs a WHERE condition that relates {} to the tables \
                         before it (such as a.id = b.id); or write JOIN ... ON",
                        item.relation
                    ),
                    pos(&item.relation),
                ));
            };
            joined.joins.push(ast::Join {
                relation: item.relation.clone(),
                global: false,
                join_operator: ast::JoinOperator::Inner(ast::JoinConstraint::On(on)),
            });
            joined.joins.extend(item.joins.iter().cloned());
            left = data_columns(&self.plan_from(&joined)?);
        }
        let mut out = select.clone();
        out.from = vec![joined];
        out.selection = conditions.into_iter().reduce(and);
        Ok(out)
    }
}

/// The columns of `plan` without its changelog column.
fn data_columns(plan: &Plan) -> Vec<crate::binder::ScopeColumn> {
    let mut columns = plan.scope.columns.clone();
    if plan.updating {
        columns.pop();
    }
    columns
}

/// `a AND b`.
fn and(a: ast::Expr, b: ast::Expr) -> ast::Expr {
    ast::Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    }
}

/// The expressions of GROUP BY (none without it).
/// `select` with every `OVER w` replaced by the specification `WINDOW w
/// AS (...)` gives (a definition may name an earlier one, and add to it as
/// in standard SQL only by naming it alone); `None` when there are no
/// named windows. An unknown name is an error at its use.
fn resolve_named_windows(select: &ast::Select) -> Result<Option<ast::Select>> {
    let mut defined: Vec<(String, ast::WindowSpec)> = Vec::new();
    for ast::NamedWindowDefinition(name, expr) in &select.named_window {
        let spec = match expr {
            ast::NamedWindowExpr::WindowSpec(spec) => spec.clone(),
            ast::NamedWindowExpr::NamedWindow(other) => defined
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&other.value))
                .map(|(_, s)| s.clone())
                .ok_or_else(|| {
                    SqlError::plan(
                        format!("window '{other}' is not defined before '{name}'"),
                        Position::of(other.span),
                    )
                })?,
        };
        defined.push((name.value.clone(), spec));
    }
    // OVER calls stand in the select list; subqueries have their own
    // WINDOW clauses and are resolved when they are planned.
    let item_exprs = |s: &ast::Select| -> Vec<ast::Expr> {
        s.projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    Some(e.clone())
                }
                _ => None,
            })
            .collect()
    };
    let uses_names = item_exprs(select).iter().any(|e| {
        matches!(e, ast::Expr::Function(f) if matches!(f.over, Some(ast::WindowType::NamedWindow(_))))
    });
    if defined.is_empty() && !uses_names {
        return Ok(None);
    }
    let mut out = select.clone();
    out.named_window.clear();
    let mut failed = None;
    for item in out.projection.iter_mut() {
        let e = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        if failed.is_some() {
            break;
        }
        if let ast::Expr::Function(f) = e {
            if let Some(ast::WindowType::NamedWindow(name)) = &f.over {
                match defined
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&name.value))
                {
                    Some((_, spec)) => f.over = Some(ast::WindowType::WindowSpec(spec.clone())),
                    None => {
                        failed = Some(SqlError::plan(
                            format!(
                                "window '{name}' is not defined; add WINDOW {name} AS (PARTITION BY ... ORDER BY ...) after the WHERE, GROUP BY and HAVING clauses"
                            ),
                            Position::of(name.span),
                        ));
                    }
                }
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(Some(out)),
    }
}

fn group_by_exprs(select: &ast::Select) -> Result<Vec<ast::Expr>> {
    match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(SqlError::plan(
                    "GROUP BY modifiers are not supported",
                    pos(select),
                ));
            }
            Ok(exprs.clone())
        }
        GroupByExpr::All(_) => Err(SqlError::plan("GROUP BY ALL is not supported", pos(select))),
    }
}

/// The select list over the FROM clause's columns `from`, with `*` and
/// `t.*` expanded to qualified column references.
fn select_items(
    select: &ast::Select,
    from: &Scope,
    group_exprs: &[ast::Expr],
) -> Result<Vec<Item>> {
    let mut items: Vec<Item> = Vec::new();
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
                expand_wildcard(from, qualifier.as_deref(), &mut items);
            }
        }
    }
    Ok(items)
}

/// Adds a reference to every column of `from` (of table `qualifier` only,
/// for `t.*`), leaving out the changelog column.
fn expand_wildcard(from: &Scope, qualifier: Option<&str>, items: &mut Vec<Item>) {
    for c in &from.columns {
        if c.name == ROW_KIND_COLUMN {
            continue;
        }
        if let Some(q) = qualifier {
            if c.qualifier.as_deref().map(str::to_lowercase).as_deref() != Some(q) {
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
