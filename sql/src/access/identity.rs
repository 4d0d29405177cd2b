//! `current_user()` and `is_member('role')`: replaced by the reading
//! user's name and a boolean before a query is planned, so that a view or
//! a SQL function that calls them (a column mask) answers for whoever
//! reads it.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{self, Spanned};

use crate::error::{Position, Result, SqlError};

/// `node` with `current_user()` / `CURRENT_USER` and `is_member('r')`
/// replaced by literals for `user` holding `roles`; `None` when nothing
/// was replaced.
pub fn substitute_identity<T: ast::VisitMut + Clone>(
    node: &T,
    user: &str,
    roles: &BTreeSet<String>,
) -> Result<Option<T>> {
    let mut out = node.clone();
    let mut changed = false;
    let mut failed = None;
    let _ = ast::visit_expressions_mut(&mut out, |e| {
        let ast::Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let Some(name) = f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
        else {
            return ControlFlow::Continue(());
        };
        let at = Position::of(f.name.span());
        let replaced = match name.as_str() {
            "current_user" if f.name.0.len() == 1 => no_args(f, at)
                .map(|()| ast::Expr::Value(ast::Value::SingleQuotedString(user.into()).into())),
            "is_member" if f.name.0.len() == 1 => role_arg(f, at)
                .map(|role| ast::Expr::Value(ast::Value::Boolean(roles.contains(&role)).into())),
            _ => return ControlFlow::Continue(()),
        };
        match replaced {
            Ok(v) => {
                *e = v;
                changed = true;
                ControlFlow::Continue(())
            }
            Err(err) => {
                failed = Some(err);
                ControlFlow::Break(())
            }
        }
    });
    if let Some(err) = failed {
        return Err(err);
    }
    Ok(changed.then_some(out))
}

fn no_args(f: &ast::Function, at: Position) -> Result<()> {
    let empty = match &f.args {
        ast::FunctionArguments::None => true,
        ast::FunctionArguments::List(l) => l.args.is_empty(),
        ast::FunctionArguments::Subquery(_) => false,
    };
    if empty {
        Ok(())
    } else {
        Err(SqlError::plan("current_user() takes no arguments", at))
    }
}

/// The role name of `is_member('role')`: one string literal.
fn role_arg(f: &ast::Function, at: Position) -> Result<String> {
    let wrong = || {
        SqlError::plan(
            "is_member takes one role name as a string literal: is_member('admins')",
            at,
        )
    };
    let ast::FunctionArguments::List(l) = &f.args else {
        return Err(wrong());
    };
    match l.args.as_slice() {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v)))] => {
            match &v.value {
                ast::Value::SingleQuotedString(s) => Ok(s.to_lowercase()),
                _ => Err(wrong()),
            }
        }
        _ => Err(wrong()),
    }
}
