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

    /// Refuses a lookup or temporal join of a table with a mask or row
    /// filter: those joins read the table directly, past the policies.
    pub(super) fn refuse_policies(&self, name: &ast::ObjectName) -> Result<()> {
        let key = crate::catalog::key_of(name);
        if self.has_policies(&key) {
            return Err(SqlError::plan(
                format!("'{key}' has a column mask or row filter, which lookup and temporal joins do not apply yet; join a view or subquery of it instead"),
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
        let Some(meta) = self.catalog.grants().meta(key).cloned() else {
            return Ok(plan);
        };
        let mut plan = plan;
        if let Some((f, cols)) = &meta.row_filter {
            let call = call(f, cols);
            let bound = self.bind_policy(&call, &plan.scope, key, "row filter", at)?;
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
        let mut scope = plan.scope.clone();
        for (i, c) in plan.scope.columns.iter().enumerate() {
            let mask = (c.name != ROW_KIND_COLUMN)
                .then(|| meta.columns.get(&c.name.to_lowercase()))
                .flatten()
                .and_then(|m| m.mask.as_ref());
            let expr = match mask {
                Some(f) => {
                    let bound = self.bind_policy(
                        &call(f, std::slice::from_ref(&c.name)),
                        &plan.scope,
                        key,
                        &format!("mask of column '{}'", c.name),
                        at,
                    )?;
                    scope.columns[i].nullable |= bound.nullable;
                    bound.expr
                }
                None => runnel_engine::expr::col(i),
            };
            exprs.push((expr, c.name.clone()));
        }
        Ok(Plan {
            time_column: plan.time_column,
            window: plan.window,
            scope,
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
