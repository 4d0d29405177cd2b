//! Query parameters: the `?` placeholders of a prepared statement.
//!
//! A statement's placeholders are numbered in the order they appear in
//! its text ([`placeholder_positions`]). While a statement is planned under
//! [`with_parameters`], the binder turns each placeholder into a typed
//! value: a typed NULL while the statement is only being described, the
//! bound value (cast to the parameter's type) when it runs. A parameter's
//! type comes from where it stands: the other operand of a comparison or
//! arithmetic, the target of a CAST, BIGINT in LIMIT, and STRING where
//! nothing says otherwise. Values never become SQL text.
//!
//! The parameters are kept per thread for the length of one planning call
//! rather than passed down: the planner binds expressions from many free
//! functions of its clauses, and a placeholder can stand in any of them.

use std::cell::RefCell;

use arrow::array::Array;
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::DataType;
use runnel_engine::expr::{Expr, ScalarValue};
use sqlparser::ast::{self, Visit, Visitor};

use super::types::flink_type_name;
use crate::error::{Position, Result, SqlError};

/// The parameters of one statement being planned.
#[derive(Debug, Clone, Default)]
pub struct Parameters {
    /// Where each placeholder stands, in text order.
    positions: Vec<Position>,
    /// The bound values; `None` while the statement is only described.
    values: Option<Vec<ScalarValue>>,
    /// The type found for each parameter so far.
    types: Vec<Option<DataType>>,
}

impl Parameters {
    /// Parameters at `positions` to describe: they bind as typed NULLs
    /// and their types are recorded.
    pub fn to_describe(positions: Vec<Position>) -> Self {
        let types = vec![None; positions.len()];
        Self {
            positions,
            values: None,
            types,
        }
    }

    /// Parameters at `positions` bound to `values`, one per placeholder
    /// (the caller has checked the count).
    pub fn bound(positions: Vec<Position>, values: Vec<ScalarValue>) -> Self {
        let types = vec![None; positions.len()];
        Self {
            positions,
            values: Some(values),
            types,
        }
    }

    /// The type of each parameter: what its place said, else STRING.
    pub fn types(&self) -> Vec<DataType> {
        self.types
            .iter()
            .map(|t| t.clone().unwrap_or(DataType::Utf8))
            .collect()
    }

    /// The number of the placeholder at `pos`, from 0.
    fn index(&self, pos: Position) -> Result<usize> {
        self.positions
            .iter()
            .position(|p| *p == pos)
            .ok_or_else(|| SqlError::plan("a query parameter (?) of unknown place", pos))
    }

    /// Records the type of parameter `k` (the first place that says one
    /// wins) and returns it.
    fn settle(&mut self, k: usize, hint: Option<&DataType>) -> DataType {
        let hint = hint.filter(|t| **t != DataType::Null);
        if let (Some(slot), Some(t)) = (self.types.get_mut(k), hint) {
            if slot.is_none() {
                *slot = Some(t.clone());
            }
        }
        self.types
            .get(k)
            .cloned()
            .flatten()
            .or_else(|| hint.cloned())
            .unwrap_or(DataType::Utf8)
    }

    /// The expression of the placeholder at `pos`, of the type `hint`
    /// (STRING when none).
    fn expr(&mut self, pos: Position, hint: Option<&DataType>) -> Result<Expr> {
        let k = self.index(pos)?;
        let to = self.settle(k, hint);
        let value = match &self.values {
            None => None,
            Some(values) => values.get(k).cloned(),
        };
        match value {
            None | Some(ScalarValue::Null) => Ok(Expr::Cast {
                expr: Box::new(Expr::Literal(ScalarValue::Null)),
                to,
            }),
            Some(v) => cast_value(k, v, &to, pos),
        }
    }
}

/// The placeholder `?` of `e`, if `e` is one.
pub(super) fn is_placeholder(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Value(v) if matches!(v.value, ast::Value::Placeholder(_)))
}

thread_local! {
    static ACTIVE: RefCell<Option<Parameters>> = const { RefCell::new(None) };
}

/// Puts back the parameters that were active before, even on a panic.
struct Restore(Option<Parameters>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        ACTIVE.with(|a| *a.borrow_mut() = previous);
    }
}

/// Runs `f` with `params` bound to the placeholders of every expression
/// planned on this thread meanwhile; returns its result and the
/// parameters with the types found.
pub fn with_parameters<T>(params: Parameters, f: impl FnOnce() -> T) -> (T, Parameters) {
    let restore = Restore(ACTIVE.with(|a| a.borrow_mut().replace(params)));
    let out = f();
    let params = ACTIVE.with(|a| a.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (out, params)
}

/// The expression of the placeholder at `pos` under the active
/// parameters, typed `hint` where its place says so.
pub(super) fn placeholder_expr(pos: Position, hint: Option<&DataType>) -> Result<Expr> {
    ACTIVE.with(|a| match a.borrow_mut().as_mut() {
        Some(params) => params.expr(pos, hint),
        None => Err(SqlError::plan(
            "query parameters (?) are only supported in prepared statements",
            pos,
        )),
    })
}

/// The value of a `LIMIT ?` or `OFFSET ?` parameter at `pos`: a BIGINT
/// that must not be negative; 0 while the statement is only described.
pub fn count_parameter(pos: Position, clause: &str) -> Result<usize> {
    let expr = placeholder_expr(pos, Some(&DataType::Int64))?;
    match expr {
        Expr::Literal(ScalarValue::Int64(n)) => usize::try_from(n)
            .map_err(|_| SqlError::plan(format!("{clause} needs a whole number, not {n}"), pos)),
        Expr::Cast { .. } if !is_bound() => Ok(0),
        _ => Err(SqlError::plan(
            format!("{clause} needs a whole number, not NULL"),
            pos,
        )),
    }
}

/// True when the active parameters carry values.
fn is_bound() -> bool {
    ACTIVE.with(|a| a.borrow().as_ref().is_some_and(|p| p.values.is_some()))
}

/// `v`, the value of parameter `k`, as a literal of type `to`.
fn cast_value(k: usize, v: ScalarValue, to: &DataType, pos: Position) -> Result<Expr> {
    let mismatch = |v: &ScalarValue| {
        SqlError::plan(
            format!(
                "parameter {}: cannot cast {} to {}",
                k + 1,
                shown(v),
                flink_type_name(to)
            ),
            pos,
        )
    };
    if &v.data_type() == to {
        return Ok(Expr::Literal(v));
    }
    let array = v.to_array(1).map_err(SqlError::Engine)?;
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let cast = cast_with_options(array.as_ref(), to, &options).map_err(|_| mismatch(&v))?;
    if cast.is_null(0) {
        return Err(mismatch(&v));
    }
    // Types without a scalar of their own (SMALLINT, FLOAT) stay a cast
    // of the value, which is now known to succeed.
    Ok(match ScalarValue::try_from_array(cast.as_ref(), 0) {
        Ok(value) => Expr::Literal(value),
        Err(_) => Expr::Cast {
            expr: Box::new(Expr::Literal(v)),
            to: to.clone(),
        },
    })
}

/// A value as a message shows it.
fn shown(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(s) => format!("'{s}'"),
        ScalarValue::Null => "NULL".to_string(),
        ScalarValue::Boolean(b) => b.to_string(),
        ScalarValue::Int32(n) => n.to_string(),
        ScalarValue::Int64(n) => n.to_string(),
        ScalarValue::Float64(f) => f.to_string(),
        other => format!("{other:?}"),
    }
}

/// Where the `?` placeholders of `node` stand, in text order.
pub fn placeholder_positions<V: Visit>(node: &V) -> Vec<Position> {
    struct Found(Vec<Position>);
    impl Visitor for Found {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &ast::Expr) -> std::ops::ControlFlow<()> {
            if let ast::Expr::Value(v) = e {
                if matches!(v.value, ast::Value::Placeholder(_)) {
                    self.0.push(Position::of(v.span));
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut found = Found(Vec::new());
    let _ = node.visit(&mut found);
    found.0.sort_by_key(|p| (p.line, p.column));
    found.0
}
