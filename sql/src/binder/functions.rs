//! Binding of function calls by name (`LOWER(s)`, `COALESCE(...)`,
//! `DATE_TRUNC('HOUR', ts)`, ...) and of the function-like syntax with its
//! own AST nodes: `EXTRACT(unit FROM x)`, `FLOOR(x TO unit)`, `CEIL`,
//! `SUBSTRING(s FROM a FOR b)` and `TRIM([LEADING] c FROM s)`.
//!
//! Aggregates are not bound here: the planner replaces them before binding
//! (see [`super::bind_expr_with`]), so one that reaches the binder is in a
//! place where aggregates are not allowed.

use runnel_engine::expr::{BinaryOp, Expr, ScalarFunction, ScalarValue};
use sqlparser::ast;

use super::literals::{string_value, time_unit, truncatable, unit_from_name};
use super::{is_aggregate_name, Binder, Bound};
use crate::error::{Position, Result, SqlError};

/// Scalar function names the binder knows, for the "unknown function" message.
const SUPPORTED_FUNCTIONS: &[&str] = &[
    "ABS",
    "CAST",
    "CEIL",
    "CEILING",
    "CHARACTER_LENGTH",
    "CHAR_LENGTH",
    "COALESCE",
    "CONCAT",
    "DATE_FORMAT",
    "DATE_TRUNC",
    "DAYOFMONTH",
    "DAYOFWEEK",
    "DAYOFYEAR",
    "EXTRACT",
    "FLOOR",
    "HOUR",
    "IF",
    "LOWER",
    "LTRIM",
    "MINUTE",
    "MOD",
    "MONTH",
    "NULLIF",
    "QUARTER",
    "REGEXP_EXTRACT",
    "REGEXP_REPLACE",
    "REPLACE",
    "ROUND",
    "RTRIM",
    "SECOND",
    "SPLIT_INDEX",
    "SUBSTR",
    "SUBSTRING",
    "TRIM",
    "TRY_CAST",
    "UPPER",
    "WEEK",
    "YEAR",
];

/// The engine function a name maps to when its arguments pass through as
/// they are.
fn simple_function(name: &str) -> Option<ScalarFunction> {
    Some(match name {
        "LOWER" => ScalarFunction::Lower,
        "UPPER" => ScalarFunction::Upper,
        "TRIM" => ScalarFunction::Trim,
        "LTRIM" => ScalarFunction::Ltrim,
        "RTRIM" => ScalarFunction::Rtrim,
        "SUBSTRING" | "SUBSTR" => ScalarFunction::Substring,
        "CONCAT" => ScalarFunction::Concat,
        "CHAR_LENGTH" | "CHARACTER_LENGTH" => ScalarFunction::CharLength,
        "REGEXP_REPLACE" => ScalarFunction::RegexpReplace,
        "REPLACE" => ScalarFunction::Replace,
        "REGEXP_EXTRACT" => ScalarFunction::RegexpExtract,
        "SPLIT_INDEX" => ScalarFunction::SplitIndex,
        "DATE_FORMAT" => ScalarFunction::DateFormat,
        "ABS" => ScalarFunction::Abs,
        "ROUND" => ScalarFunction::Round,
        "FLOOR" => ScalarFunction::Floor,
        "CEIL" | "CEILING" => ScalarFunction::Ceil,
        _ => return None,
    })
}

/// The field Flink's one-argument time functions (`HOUR(ts)`) extract.
fn time_function(name: &str) -> Option<runnel_engine::expr::TimeUnitField> {
    use runnel_engine::expr::TimeUnitField as U;
    Some(match name {
        "YEAR" => U::Year,
        "QUARTER" => U::Quarter,
        "MONTH" => U::Month,
        "WEEK" => U::Week,
        "DAYOFMONTH" => U::Day,
        "DAYOFYEAR" => U::DayOfYear,
        "DAYOFWEEK" => U::DayOfWeek,
        "HOUR" => U::Hour,
        "MINUTE" => U::Minute,
        "SECOND" => U::Second,
        _ => return None,
    })
}

/// True when `name` (upper case) names a built-in scalar function.
pub(super) fn is_builtin(name: &str) -> bool {
    SUPPORTED_FUNCTIONS.contains(&name)
        || matches!(
            name,
            "PROCTIME"
                | "DESCRIPTOR"
                | "TUMBLE"
                | "HOP"
                | "CUMULATE"
                | "SESSION"
                | "ROW_NUMBER"
                | "RANK"
                | "DENSE_RANK"
                | "LAG"
                | "LEAD"
        )
}

/// The upper-case name a call is looked up by.
fn call_name(f: &ast::Function) -> String {
    let display_name = f.name.to_string();
    match f.name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(|i| i.value.to_ascii_uppercase())
            .unwrap_or_else(|| display_name.to_ascii_uppercase()),
        _ => display_name.to_ascii_uppercase(),
    }
}

/// Rejects what a scalar call cannot have: OVER, FILTER, WITHIN GROUP,
/// parameters, and the names of aggregates and of PROCTIME().
fn check_scalar_call(f: &ast::Function, name: &str, pos: Position) -> Result<()> {
    if f.over.is_some() {
        return Err(SqlError::plan("OVER windows are not supported yet", pos));
    }
    if is_aggregate_name(name) {
        return Err(SqlError::plan(
            format!("aggregate function {name} is not allowed here"),
            pos,
        ));
    }
    if name == "PROCTIME" {
        return Err(SqlError::plan(
            "PROCTIME() is only allowed in the select list of a query without aggregates, or as a computed column of a CREATE TABLE",
            pos,
        ));
    }
    if f.filter.is_some() {
        return Err(SqlError::plan(
            format!("FILTER is only allowed on aggregate functions, not on {name}"),
            pos,
        ));
    }
    if !f.within_group.is_empty() || f.null_treatment.is_some() {
        return Err(SqlError::plan(
            format!("unsupported clause in the call to {name}"),
            pos,
        ));
    }
    if !matches!(f.parameters, ast::FunctionArguments::None) {
        return Err(SqlError::plan(
            format!("unsupported parameter list in the call to {name}"),
            pos,
        ));
    }
    Ok(())
}

/// The argument expressions of a call, which must be plain and unnamed.
pub(crate) fn call_args<'f>(
    f: &'f ast::Function,
    name: &str,
    pos: Position,
) -> Result<Vec<&'f ast::Expr>> {
    let list = match &f.args {
        ast::FunctionArguments::None => return Ok(Vec::new()),
        ast::FunctionArguments::Subquery(_) => {
            return Err(SqlError::plan(
                "subqueries are not supported in expressions",
                pos,
            ))
        }
        ast::FunctionArguments::List(list) => list,
    };
    if list.duplicate_treatment.is_some() {
        return Err(SqlError::plan(
            format!("DISTINCT is only allowed in aggregate functions, not in {name}"),
            pos,
        ));
    }
    if !list.clauses.is_empty() {
        return Err(SqlError::plan(
            format!("unsupported clause in the call to {name}"),
            pos,
        ));
    }
    let mut out = Vec::with_capacity(list.args.len());
    for a in &list.args {
        match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => out.push(e),
            ast::FunctionArg::Unnamed(_) => {
                return Err(SqlError::plan(
                    format!("'*' is not a valid argument of {name}"),
                    pos,
                ))
            }
            _ => {
                return Err(SqlError::plan(
                    format!("named arguments are not supported (in {name})"),
                    pos,
                ))
            }
        }
    }
    Ok(out)
}

impl Binder<'_, '_, '_> {
    /// A call by name: checked, then bound as a simple function or one
    /// that the binder rewrites.
    pub(super) fn function(&mut self, f: &ast::Function, pos: Position) -> Result<Bound> {
        let name = call_name(f);
        check_scalar_call(f, &name, pos)?;
        let args = call_args(f, &name, pos)?;
        if let Some(func) = simple_function(&name) {
            let bound = self.bind_all(&args)?;
            return self.call(func, bound, pos);
        }
        // Flink's HOUR(ts), MINUTE(ts), ...: EXTRACT of that field.
        if let Some(unit) = time_function(&name) {
            let [a] = expect_args::<1>(&name, &args, pos)?;
            let arg = self.bind(a)?;
            return self.call(ScalarFunction::Extract(unit), vec![arg.expr], pos);
        }
        match name.as_str() {
            "COALESCE" => {
                if args.is_empty() {
                    return Err(SqlError::plan(
                        "COALESCE expects at least one argument",
                        pos,
                    ));
                }
                let bound = self.bind_all(&args)?;
                self.typed_with_null_branches(Expr::Coalesce(bound), pos)
            }
            "NULLIF" => {
                let [a, b] = expect_args::<2>(&name, &args, pos)?;
                self.nullif(a, b, pos)
            }
            "MOD" => {
                let [a, b] = expect_args::<2>(&name, &args, pos)?;
                let a = self.bind(a)?;
                let b = self.bind(b)?;
                self.binary_bound(BinaryOp::Modulo, a, b, pos)
            }
            "IF" => {
                let [c, a, b] = expect_args::<3>(&name, &args, pos)?;
                self.if_then_else(c, a, b, pos)
            }
            "DATE_TRUNC" => {
                let [unit, ts] = expect_args::<2>(&name, &args, pos)?;
                self.date_trunc(unit, ts, pos)
            }
            _ => Err(SqlError::plan(
                format!(
                    "unknown function '{}'; supported functions: {}",
                    f.name,
                    SUPPORTED_FUNCTIONS.join(", ")
                ),
                pos,
            )),
        }
    }

    /// Binds each of `args`.
    fn bind_all(&mut self, args: &[&ast::Expr]) -> Result<Vec<Expr>> {
        args.iter()
            .map(|a| self.bind(a).map(|b| b.expr))
            .collect::<Result<Vec<_>>>()
    }

    /// `NULLIF(a, b)`: NULL when `a = b`, else `a`.
    fn nullif(&mut self, a: &ast::Expr, b: &ast::Expr, pos: Position) -> Result<Bound> {
        let a = self.bind(a)?;
        let b = self.bind(b)?;
        let eq = self.binary_bound(BinaryOp::Eq, a.clone(), b, pos)?;
        let null = Expr::Literal(ScalarValue::Null);
        self.typed_with_null_branches(
            Expr::Case {
                operand: None,
                when_then: vec![(eq.expr, null)],
                else_expr: Some(Box::new(a.expr)),
            },
            pos,
        )
    }

    /// `IF(c, a, b)`.
    fn if_then_else(
        &mut self,
        c: &ast::Expr,
        a: &ast::Expr,
        b: &ast::Expr,
        pos: Position,
    ) -> Result<Bound> {
        let c = self.boolean_operand(c, "IF")?;
        let a = self.bind(a)?;
        let b = self.bind(b)?;
        self.typed_with_null_branches(
            Expr::Case {
                operand: None,
                when_then: vec![(c.expr, a.expr)],
                else_expr: Some(Box::new(b.expr)),
            },
            pos,
        )
    }

    /// `DATE_TRUNC('unit', ts)`; the unit must be a string literal.
    fn date_trunc(&mut self, unit: &ast::Expr, ts: &ast::Expr, pos: Position) -> Result<Bound> {
        let unit_text = match unit {
            ast::Expr::Value(v) => string_value(&v.value),
            _ => None,
        };
        let Some(unit_text) = unit_text else {
            return Err(SqlError::plan(
                "the first argument of DATE_TRUNC must be a unit string such as 'HOUR'",
                self.pos_of(unit),
            ));
        };
        let field = match unit_from_name(unit_text) {
            Some(u) if truncatable(u) => u,
            _ => {
                return Err(SqlError::plan(
                    format!(
                        "DATE_TRUNC does not support the unit '{unit_text}'; use YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE, SECOND or MILLISECOND"
                    ),
                    self.pos_of(unit),
                ))
            }
        };
        let ts = self.bind(ts)?;
        self.call(ScalarFunction::DateTrunc(field), vec![ts.expr], pos)
    }

    /// `EXTRACT(unit FROM x)`.
    pub(super) fn extract(
        &mut self,
        field: &ast::DateTimeField,
        expr: &ast::Expr,
        pos: Position,
    ) -> Result<Bound> {
        let Some(unit) = time_unit(field) else {
            return Err(SqlError::plan(
                format!(
                    "EXTRACT does not support {field}; use YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE, SECOND, MILLISECOND, DOW, DOY or EPOCH"
                ),
                pos,
            ));
        };
        let arg = self.bind(expr)?;
        self.call(ScalarFunction::Extract(unit), vec![arg.expr], pos)
    }

    /// `FLOOR(x)` / `CEIL(x)`, and `FLOOR(ts TO unit)` as a truncation.
    pub(super) fn floor_ceil(
        &mut self,
        expr: &ast::Expr,
        kind: &ast::CeilFloorKind,
        floor: bool,
        pos: Position,
    ) -> Result<Bound> {
        let name = if floor { "FLOOR" } else { "CEIL" };
        match kind {
            ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime) => {
                let arg = self.bind(expr)?;
                let func = if floor {
                    ScalarFunction::Floor
                } else {
                    ScalarFunction::Ceil
                };
                self.call(func, vec![arg.expr], pos)
            }
            ast::CeilFloorKind::DateTimeField(field) if floor => {
                let unit = match time_unit(field) {
                    Some(u) if truncatable(u) => u,
                    _ => {
                        return Err(SqlError::plan(
                            format!(
                                "FLOOR(... TO {field}) is not supported; use YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE, SECOND or MILLISECOND"
                            ),
                            pos,
                        ))
                    }
                };
                let arg = self.bind(expr)?;
                self.call(ScalarFunction::DateTrunc(unit), vec![arg.expr], pos)
            }
            ast::CeilFloorKind::DateTimeField(field) => Err(SqlError::plan(
                format!("CEIL(... TO {field}) is not supported yet; use FLOOR(... TO {field})"),
                pos,
            )),
            ast::CeilFloorKind::Scale(_) => Err(SqlError::plan(
                format!("{name} with a scale is not supported; use ROUND(x, digits)"),
                pos,
            )),
        }
    }

    /// `SUBSTRING(s FROM a [FOR n])`.
    pub(super) fn substring(
        &mut self,
        expr: &ast::Expr,
        substring_from: Option<&ast::Expr>,
        substring_for: Option<&ast::Expr>,
        pos: Position,
    ) -> Result<Bound> {
        let s = self.bind(expr)?;
        let from = match substring_from {
            Some(f) => self.bind(f)?.expr,
            // `SUBSTRING(s FOR n)` starts at the first character.
            None => Expr::Literal(ScalarValue::Int32(1)),
        };
        let mut args = vec![s.expr, from];
        if let Some(f) = substring_for {
            args.push(self.bind(f)?.expr);
        }
        self.call(ScalarFunction::Substring, args, pos)
    }

    /// `TRIM([BOTH|LEADING|TRAILING] [chars FROM] s)`.
    pub(super) fn trim(
        &mut self,
        trim_where: Option<&ast::TrimWhereField>,
        trim_what: Option<&ast::Expr>,
        expr: &ast::Expr,
        trim_characters: Option<&[ast::Expr]>,
        pos: Position,
    ) -> Result<Bound> {
        let func = match trim_where {
            None | Some(ast::TrimWhereField::Both) => ScalarFunction::Trim,
            Some(ast::TrimWhereField::Leading) => ScalarFunction::Ltrim,
            Some(ast::TrimWhereField::Trailing) => ScalarFunction::Rtrim,
        };
        let mut args = vec![self.bind(expr)?.expr];
        if let Some(w) = trim_what {
            args.push(self.bind(w)?.expr);
        }
        if let Some(chars) = trim_characters {
            for c in chars {
                args.push(self.bind(c)?.expr);
            }
        }
        self.call(func, args, pos)
    }
}

/// The `N` arguments of `name`, or an error naming how many there were.
fn expect_args<'e, const N: usize>(
    name: &str,
    args: &[&'e ast::Expr],
    pos: Position,
) -> Result<[&'e ast::Expr; N]> {
    <[&ast::Expr; N]>::try_from(args).map_err(|_| {
        SqlError::plan(
            format!("{name} expects {N} arguments, got {}", args.len()),
            pos,
        )
    })
}
