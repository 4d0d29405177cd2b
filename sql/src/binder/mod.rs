//! Binding of SQL scalar expressions: resolves column names against a
//! [`Scope`], turns the `sqlparser` AST into the engine's
//! [`runnel_engine::expr::Expr`] and type-checks the result.
//!
//! The entry points are [`bind_expr`] and [`bind_expr_with`]; they run a
//! `Binder`, whose methods are spread over this folder by what they bind:
//! `scope` resolves names, `expr` binds operators, predicates, CASE and
//! CAST, `functions` binds function calls and the function-like syntax
//! (EXTRACT, FLOOR ... TO, SUBSTRING, TRIM), `literals` reads literal text
//! (numbers, dates, intervals, time units) and `types` maps SQL type names
//! to Arrow types and back.
//!
//! Every error carries the line and column of the sub-expression it is
//! about. `sqlparser` spans start at the first token of an expression, so a
//! binary operator's error points at the start of its left operand and a
//! `CAST` or `EXTRACT` error at its argument.
//!
//! # Decisions
//!
//! * Integer literals are `INT` when they fit and `BIGINT` otherwise (a
//!   DECIMAL(p, 0) past BIGINT); a literal with a point is an exact
//!   DECIMAL(p, s), one with an exponent a `DOUBLE` (as in Flink).
//! * `DECIMAL`/`NUMERIC` are Arrow `Decimal128`, computed exactly (see
//!   docs/sql.md#decimal).
//! * A bare `NULL` has the Arrow type `Null`; the engine's coercion rules
//!   give it the other operand's type in comparisons and arithmetic, and the
//!   binder casts NULL branches of CASE / COALESCE / IF / NULLIF to the
//!   result type so the output column has a real type.
//! * Timestamps are millisecond precision whatever precision the SQL type
//!   names; `TIMESTAMP '…'` literals are read as UTC by the engine's
//!   [`runnel_engine::time::parse_timestamp_millis`], the same parser the
//!   connectors use for time options.

mod expr;
mod functions;
mod literals;
mod params;
mod scope;
mod types;

#[cfg(test)]
mod tests;

use arrow::datatypes::{DataType, Schema};
use runnel_engine::expr::{Expr, ScalarFunction};
use runnel_engine::EngineError;
use sqlparser::ast::{self, Spanned};

use crate::error::{Position, Result, SqlError};

pub(crate) use functions::call_args;
pub use literals::interval_millis;
pub use params::{count_parameter, placeholder_positions, with_parameters, Parameters};
pub use scope::{Scope, ScopeColumn};
pub use types::{flink_type_name, sql_type_to_arrow};

/// A bound expression with its type.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The engine expression over the scope's columns.
    pub expr: Expr,
    /// Its result type.
    pub data_type: DataType,
    /// Whether it may be NULL.
    pub nullable: bool,
}

/// Lets the caller replace sub-expressions before binding: `Some(result)` takes over, `None` binds normally.
pub type Substitute<'a> = dyn FnMut(&ast::Expr) -> Option<Result<Bound>> + 'a;

/// Binds `expr` against `scope`.
pub fn bind_expr(expr: &ast::Expr, scope: &Scope) -> Result<Bound> {
    bind_expr_with(expr, scope, &mut |_: &ast::Expr| None)
}

/// Binds `expr` against `scope`, offering every sub-expression to `substitute` first.
pub fn bind_expr_with(
    expr: &ast::Expr,
    scope: &Scope,
    substitute: &mut Substitute<'_>,
) -> Result<Bound> {
    let mut binder = Binder {
        scope,
        schema: scope.schema(),
        substitute,
        outer: Position::default(),
    };
    binder.bind(expr)
}

/// True when `name` (upper case) is a scalar function Runnel has built in.
pub fn is_builtin_function(name: &str) -> bool {
    functions::is_builtin(name)
}

/// True when `name` (case-insensitive) is an aggregate function name the planner handles.
pub fn is_aggregate_name(name: &str) -> bool {
    const AGGREGATES: &[&str] = &[
        "COUNT",
        "SUM",
        "AVG",
        "MIN",
        "MAX",
        "FIRST_VALUE",
        "LAST_VALUE",
        "STDDEV",
        "STDDEV_SAMP",
        "STDDEV_POP",
        "VARIANCE",
        "VAR_SAMP",
        "VAR_POP",
    ];
    AGGREGATES.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// The state of binding one expression tree.
struct Binder<'s, 'f, 'a> {
    scope: &'s Scope,
    schema: Schema,
    substitute: &'f mut Substitute<'a>,
    /// Position of the innermost enclosing node with a known span, used for
    /// nodes the parser did not give a position.
    outer: Position,
}

impl Binder<'_, '_, '_> {
    /// Where `e` starts, or where its closest enclosing node with a span does.
    fn pos_of(&self, e: &ast::Expr) -> Position {
        let p = Position::of(e.span());
        if p.is_unknown() {
            self.outer
        } else {
            p
        }
    }

    /// Binds `e`, first offering it to the caller's substitute.
    fn bind(&mut self, e: &ast::Expr) -> Result<Bound> {
        let pos = self.pos_of(e);
        let saved = std::mem::replace(&mut self.outer, pos);
        let result = match (self.substitute)(e) {
            Some(r) => r,
            None => self.bind_node(e, pos),
        };
        self.outer = saved;
        result.map_err(|err| match err {
            SqlError::Plan { message, position } if position.is_unknown() => {
                SqlError::plan(message, pos)
            }
            other => other,
        })
    }

    /// Types `expr`, reporting a type error at `pos`.
    fn typed(&self, expr: Expr, pos: Position) -> Result<Bound> {
        let data_type = expr
            .data_type(&self.schema)
            .map_err(|e| self.engine_error(e, pos))?;
        let nullable = expr
            .nullable(&self.schema)
            .map_err(|e| self.engine_error(e, pos))?;
        Ok(Bound {
            expr,
            data_type,
            nullable,
        })
    }

    /// An engine typing error as a SQL error in SQL type names.
    fn engine_error(&self, e: EngineError, pos: Position) -> SqlError {
        let message = match e {
            EngineError::Plan(m) => m,
            other => other.to_string(),
        };
        let column_types = self.scope.columns.iter().map(|c| &c.data_type);
        SqlError::plan(types::with_sql_type_names(&message, column_types), pos)
    }

    /// Binds `e`; when it is a `?` placeholder, as a parameter of type
    /// `hint`, which the place it stands in gives.
    fn bind_hinted(&mut self, e: &ast::Expr, hint: Option<&DataType>) -> Result<Bound> {
        if params::is_placeholder(e) {
            let pos = self.pos_of(e);
            let expr = params::placeholder_expr(pos, hint)?;
            return self.typed(expr, pos);
        }
        self.bind(e)
    }

    /// Binds two operands that stand for each other's type (`a = b`,
    /// `a + b`): a placeholder on one side takes the other side's type,
    /// mapped by `hint_of`.
    fn bind_pair(
        &mut self,
        left: &ast::Expr,
        right: &ast::Expr,
        hint_of: impl Fn(&DataType) -> Option<DataType>,
    ) -> Result<(Bound, Bound)> {
        if params::is_placeholder(left) && !params::is_placeholder(right) {
            let r = self.bind(right)?;
            let l = self.bind_hinted(left, hint_of(&r.data_type).as_ref())?;
            return Ok((l, r));
        }
        let l = self.bind(left)?;
        let r = self.bind_hinted(right, hint_of(&l.data_type).as_ref())?;
        Ok((l, r))
    }

    /// Types a call of `func` on already bound `args`.
    fn call(&self, func: ScalarFunction, args: Vec<Expr>, pos: Position) -> Result<Bound> {
        self.typed(Expr::Function { func, args }, pos)
    }
}
