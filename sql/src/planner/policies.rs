//! Column masks and row filters (`ALTER TABLE ... SET MASK`, `SET ROW
//! FILTER`), applied where a query reads a table, so that every read
//! (batch query, subscription, view, job) goes through them: the row
//! filter over the raw values first, then each masked column replaced by
//! its mask function's result. Both are SQL functions, expanded here with
//! the reader's `current_user()` and `is_member()`.

use sqlparser::ast;

use super::Planner;
use crate::binder::{bind_expr, Bound, Scope};
use crate::error::{Position, Result, SqlError};
use crate::plan::{Node, Plan};
use runnel_engine::types::ROW_KIND_COLUMN;

impl Planner<'_> {
    /// True when reads of table `key` go through a mask or row filter.
    pub(super) fn has_policies(&self, key: &str) -> bool {
        self.policies
            && self.catalog.grants().meta(key).is_some_and(|m| {
                m.row_filter.is_some() || m.columns.values().any(|c| c.mask.is_some())
            })
    }

    /// Refuses a temporal join of a table with a mask or row filter: it
    /// reads the table's changes directly, past the policies.
    pub(super) fn refuse_policies(&self, name: &ast::ObjectName) -> Result<()> {
        let key = crate::catalog::key_of(name);
        if self.has_policies(&key) {
            return Err(SqlError::plan(
                format!("'{key}' has a column mask or row filter, which temporal joins do not apply yet; join a view or subquery of it instead"),
                crate::catalog::position_of(name),
            ));
        }
        Ok(())
    }

    /// `plan` (a scan of table `key`) with the table's row filter and
    /// column masks applied.
    pub(super) fn apply_policies(&self, plan: Plan, key: &str, at: Position) -> Result<Plan> {
        if !self.has_policies(key) {
            return Ok(plan);
        }
        let scope = plan.scope.clone();
        let columns = 0..scope.columns.len();
        self.apply_policies_to(plan, key, (&scope, columns), None, at)
    }

    /// The policies of lookup table `key` applied to the output of its
    /// lookup join, whose columns `offset..offset + width` are the table's:
    /// the row filter as a filter over them (an INNER join only: in a LEFT
    /// join a filtered row must leave its stream row padded, which a filter
    /// after the join cannot do), then each masked column through its mask,
    /// except on a LEFT join's padded rows (NULL table key), which stay NULL.
    /// A masked lookup key is refused: the join would match its raw values,
    /// which a reader of masked ones could probe.
    pub(super) fn apply_lookup_policies(
        &self,
        joined: Plan,
        key: &str,
        (offset, width): (usize, usize),
        (kind, table_keys): (runnel_engine::ops::JoinKind, &[usize]),
        at: Position,
    ) -> Result<Plan> {
        if !self.has_policies(key) {
            return Ok(joined);
        }
        let Some(meta) = self.catalog.grants().meta(key).cloned() else {
            return Ok(joined);
        };
        let left = kind == runnel_engine::ops::JoinKind::Left;
        for &k in table_keys {
            let name = &joined.scope.columns[offset + k].name;
            if meta
                .columns
                .get(&name.to_lowercase())
                .is_some_and(|c| c.mask.is_some())
            {
                return Err(SqlError::plan(
                    format!("the lookup key '{name}' of '{key}' has a mask: a lookup join would match its raw values; join a view or subquery of it instead"),
                    at,
                ));
            }
        }
        if left && meta.row_filter.is_some() {
            return Err(SqlError::plan(
                format!("'{key}' has a row filter, which a LEFT lookup join does not apply yet; use an INNER join or join a view of it"),
                at,
            ));
        }
        // Only the table's columns can be named in the calls.
        let mut hidden = joined.scope.clone();
        for (i, c) in hidden.columns.iter_mut().enumerate() {
            if !(offset..offset + width).contains(&i) {
                c.name = format!("$hidden{i}");
                c.qualifier = None;
            }
        }
        let padded = table_keys.first().filter(|_| left).map(|k| offset + k);
        self.apply_policies_to(joined, key, (&hidden, offset..offset + width), padded, at)
    }

    /// `plan` with table `key`'s row filter and masks applied to its
    /// `columns`, calls bound in `scope` (plan's columns, named so that only
    /// the table's can be called by name). A row whose column `padded` is
    /// NULL (a LEFT join's padding) keeps its values unmasked.
    fn apply_policies_to(
        &self,
        plan: Plan,
        key: &str,
        (scope, columns): (&Scope, std::ops::Range<usize>),
        padded: Option<usize>,
        at: Position,
    ) -> Result<Plan> {
        let Some(meta) = self.catalog.grants().meta(key).cloned() else {
            return Ok(plan);
        };
        let mut plan = plan;
        if let Some((f, cols)) = &meta.row_filter {
            let bound = self.bind_policy(&call(f, cols), scope, key, "row filter", at)?;
            plan = Plan {
                time_column: plan.time_column,
                window: plan.window,
                scope: plan.scope.clone(),
                updating: plan.updating,
                node: Node::Filter {
                    input: Box::new(plan),
                    predicate: bound.expr,
                },
            };
        }
        if meta.columns.values().all(|c| c.mask.is_none()) {
            return Ok(plan);
        }
        let mut exprs = Vec::with_capacity(plan.scope.columns.len());
        let mut out = plan.scope.clone();
        for (i, c) in scope.columns.iter().enumerate() {
            let mask = (columns.contains(&i) && c.name != ROW_KIND_COLUMN)
                .then(|| meta.columns.get(&c.name.to_lowercase()))
                .flatten()
                .and_then(|m| m.mask.as_ref());
            let expr = match mask {
                Some(f) => {
                    let what = format!("mask of column '{}'", c.name);
                    let masked = call(f, std::slice::from_ref(&c.name));
                    let bound = self.bind_policy(&masked, scope, key, &what, at)?;
                    out.columns[i].nullable |= bound.nullable;
                    match padded {
                        // CASE WHEN key IS NULL THEN c ELSE mask(c) END
                        Some(k) => runnel_engine::expr::Expr::Case {
                            operand: None,
                            when_then: vec![(
                                runnel_engine::expr::Expr::IsNull(Box::new(
                                    runnel_engine::expr::col(k),
                                )),
                                runnel_engine::expr::col(i),
                            )],
                            else_expr: Some(Box::new(bound.expr)),
                        },
                        None => bound.expr,
                    }
                }
                None => runnel_engine::expr::col(i),
            };
            exprs.push((expr, plan.scope.columns[i].name.clone()));
        }
        Ok(Plan {
            time_column: plan.time_column,
            window: plan.window,
            scope: out,
            updating: plan.updating,
            node: Node::Project {
                input: Box::new(plan),
                exprs,
            },
        })
    }

    /// Binds a mask or filter call for the reader.
    fn bind_policy(
        &self,
        call: &ast::Expr,
        scope: &Scope,
        key: &str,
        what: &str,
        at: Position,
    ) -> Result<Bound> {
        let bind = || -> Result<Bound> {
            let e = crate::functions::expand_expr(self.catalog, call)?;
            let e = match &self.identity {
                Some((user, roles)) => {
                    crate::access::substitute_identity(&e, user, roles)?.unwrap_or(e)
                }
                None => e,
            };
            bind_expr(&e, scope)
        };
        // The mask's own error would point into its definition, not the
        // query: name the table and the function instead.
        bind().map_err(|e| {
            SqlError::plan(
                format!("the {what} of table '{key}' cannot be applied: {e}"),
                at,
            )
        })
    }
}

/// `f(c1, c2, ...)` over column names.
fn call(f: &str, columns: &[String]) -> ast::Expr {
    let args = columns
        .iter()
        .map(|c| {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Identifier(
                ast::Ident::with_quote('`', c.clone()),
            )))
        })
        .collect();
    crate::parser::call_expr(f, args)
}
