//! SQL functions (`CREATE FUNCTION f(x STRING) RETURNS STRING RETURN
//! expr`): checked when created, then expanded in place wherever a query
//! calls them, before planning. A call becomes
//! `CAST((body) AS returns)` with each parameter replaced by
//! `CAST((argument) AS its type)`, so the body sees its declared types
//! and the call the declared result type, as if the function ran on its
//! own. Expansion repeats for functions that call functions, up to
//! [`MAX_NESTING`] levels.

use std::ops::ControlFlow;

use sqlparser::ast::{self, Spanned};

use crate::binder::{bind_expr, is_aggregate_name, sql_type_to_arrow, Scope, ScopeColumn};
use crate::catalog::{Catalog, FunctionEntry};
use crate::error::{Position, Result, SqlError};
use crate::parser::CreateFunction;

/// How deep calls of SQL functions may nest (a function that calls itself
/// reaches it).
pub const MAX_NESTING: usize = 16;

/// Checks a new function against the catalog: a name that no built-in
/// function has, known parameter and result types, and a body that uses
/// only its parameters and converts to the result type.
pub fn check(catalog: &Catalog, cf: &CreateFunction) -> Result<FunctionEntry> {
    let at = Position::of(cf.name.span());
    let name = crate::catalog::key_of(&cf.name);
    let upper = name.to_ascii_uppercase();
    // The identity functions masks and row filters rely on cannot be
    // shadowed by a user's function.
    let reserved = [
        "IS_MEMBER",
        "CURRENT_USER",
        "SESSION_USER",
        "USER",
        "IS_ACCOUNT_GROUP_MEMBER",
    ];
    if is_aggregate_name(&upper)
        || crate::binder::is_builtin_function(&upper)
        || reserved.contains(&upper.as_str())
    {
        return Err(SqlError::plan(
            format!("'{name}' is a built-in function; choose another name"),
            at,
        ));
    }
    let mut columns = Vec::new();
    for (i, (p, t)) in cf.params.iter().enumerate() {
        if cf.params[..i]
            .iter()
            .any(|(q, _)| q.value.eq_ignore_ascii_case(&p.value))
        {
            return Err(SqlError::plan(
                format!("parameter '{p}' is declared twice"),
                Position::of(p.span),
            ));
        }
        columns.push(ScopeColumn {
            qualifier: None,
            name: p.value.clone(),
            data_type: sql_type_to_arrow(t, Position::of(p.span))?,
            nullable: true,
        });
    }
    sql_type_to_arrow(&cf.returns, at)?;
    let body = expand_expr(catalog, &cf.body)?;
    // current_user() and is_member() are typed as a string and a boolean
    // here; they take the caller's values where the function is called.
    let body = crate::access::substitute_identity(&body, "", &Default::default())?.unwrap_or(body);
    let typed = cast(body, cf.returns.clone());
    bind_expr(&typed, &Scope::new(columns)).map_err(|e| {
        let message = match &e {
            SqlError::Plan { message, .. }
            | SqlError::Syntax { message, .. }
            | SqlError::NotFound { message, .. } => message.clone(),
            other => other.to_string(),
        };
        SqlError::plan(
            format!("in the body of function '{name}': {message}"),
            e.position().unwrap_or(at),
        )
    })?;
    Ok(FunctionEntry {
        name,
        params: cf
            .params
            .iter()
            .map(|(p, t)| (p.value.clone(), t.clone()))
            .collect(),
        returns: cf.returns.clone(),
        body: cf.body.clone(),
    })
}

/// `query` with every call of a SQL function expanded; `None` when the
/// catalog has no functions (nothing to do).
pub fn expand_query(catalog: &Catalog, query: &ast::Query) -> Result<Option<ast::Query>> {
    if !catalog.has_functions() {
        return Ok(None);
    }
    let mut q = query.clone();
    expand_all(catalog, &mut q)?;
    Ok(Some(q))
}

/// `expr` with every call of a SQL function expanded.
pub fn expand_expr(catalog: &Catalog, expr: &ast::Expr) -> Result<ast::Expr> {
    let mut e = expr.clone();
    if catalog.has_functions() {
        expand_all(catalog, &mut e)?;
    }
    Ok(e)
}

fn expand_all<T: ast::VisitMut>(catalog: &Catalog, node: &mut T) -> Result<()> {
    let mut last_call = Position::default();
    for _ in 0..=MAX_NESTING {
        let mut changed = false;
        let mut failed = None;
        let _ = ast::visit_expressions_mut(node, |e| {
            if let ast::Expr::Function(f) = e {
                let name = crate::catalog::key_of(&f.name);
                if let Some(def) = catalog.function(&name) {
                    last_call = Position::of(f.name.span());
                    match inline(def, f) {
                        Ok(body) => {
                            *e = body;
                            changed = true;
                        }
                        Err(err) => {
                            failed = Some(err);
                            return ControlFlow::Break(());
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        });
        if let Some(err) = failed {
            return Err(err);
        }
        if !changed {
            return Ok(());
        }
    }
    Err(SqlError::plan(
        format!(
            "SQL function calls nest more than {MAX_NESTING} deep; does a function call itself?"
        ),
        last_call,
    ))
}

/// The body of `def` for the call `f`.
fn inline(def: &FunctionEntry, f: &ast::Function) -> Result<ast::Expr> {
    let at = Position::of(f.name.span());
    // The same argument rules as a built-in call's.
    let args: Vec<ast::Expr> = crate::binder::call_args(f, &def.name, at)?
        .into_iter()
        .cloned()
        .collect();
    if f.over.is_some() || f.filter.is_some() {
        return Err(SqlError::plan(
            format!("'{}' is a scalar function: no OVER or FILTER", def.name),
            at,
        ));
    }
    if args.len() != def.params.len() {
        let names: Vec<String> = def.params.iter().map(|(n, t)| format!("{n} {t}")).collect();
        return Err(SqlError::plan(
            format!(
                "function '{}' takes {} argument(s) ({}), not {}",
                def.name,
                def.params.len(),
                names.join(", "),
                args.len()
            ),
            at,
        ));
    }
    let mut body = def.body.clone();
    let _ = ast::visit_expressions_mut(&mut body, |e| {
        if let ast::Expr::Identifier(id) = e {
            if let Some(i) = def
                .params
                .iter()
                .position(|(p, _)| p.eq_ignore_ascii_case(&id.value))
            {
                *e = cast(args[i].clone(), def.params[i].1.clone());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(cast(body, def.returns.clone()))
}

fn cast(e: ast::Expr, to: ast::DataType) -> ast::Expr {
    ast::Expr::Cast {
        kind: ast::CastKind::Cast,
        expr: Box::new(ast::Expr::Nested(Box::new(e))),
        data_type: to,
        format: None,
    }
}
