//! Typing an expression against an input schema: its result type (type
//! errors are plan errors) and whether it may be NULL.

use arrow::compute::can_cast_types;
use arrow::datatypes::{DataType, Schema};

use super::{coercion, functions, Expr, ScalarFunction, ScalarValue};
use crate::error::Result;
use crate::plan_err;

/// The result and comparison types of a CASE.
pub(super) struct CaseTypes {
    /// Type the operand and WHEN values are compared in (operand form only).
    pub(super) compare: Option<DataType>,
    /// Type of the result.
    pub(super) result: DataType,
}

impl Expr {
    /// Result type given the input schema; a plan error names the problem
    /// (for example "cannot apply '+' to Utf8 and Int64").
    pub fn data_type(&self, input: &Schema) -> Result<DataType> {
        match self {
            Expr::Column(i) => match input.fields().get(*i) {
                Some(f) => Ok(f.data_type().clone()),
                None => plan_err!(
                    "column index {i} out of range for an input of {} columns",
                    input.fields().len()
                ),
            },
            Expr::Literal(v) => Ok(v.data_type()),
            Expr::Binary { op, left, right } => Ok(coercion::binary_signature(
                *op,
                &left.data_type(input)?,
                &right.data_type(input)?,
            )?
            .result),
            Expr::Not(e) => {
                let t = e.data_type(input)?;
                if !matches!(t, DataType::Boolean | DataType::Null) {
                    plan_err!("NOT expects a boolean, got {t}");
                }
                Ok(DataType::Boolean)
            }
            Expr::Negative(e) => coercion::negative_type(&e.data_type(input)?),
            Expr::IsNull(e) | Expr::IsNotNull(e) => {
                e.data_type(input)?;
                Ok(DataType::Boolean)
            }
            Expr::Case {
                operand,
                when_then,
                else_expr,
            } => Ok(
                Self::case_types(operand.as_deref(), when_then, else_expr.as_deref(), input)?
                    .result,
            ),
            Expr::Cast { expr, to } | Expr::TryCast { expr, to } => {
                let from = expr.data_type(input)?;
                if !can_cast_types(&from, to) {
                    plan_err!("cannot cast {from} to {to}");
                }
                Ok(to.clone())
            }
            Expr::Coalesce(args) => {
                if args.is_empty() {
                    plan_err!("COALESCE expects at least one argument");
                }
                let types = args
                    .iter()
                    .map(|a| a.data_type(input))
                    .collect::<Result<Vec<_>>>()?;
                coercion::common_type_of(&types, "COALESCE")
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let types = [
                    expr.data_type(input)?,
                    low.data_type(input)?,
                    high.data_type(input)?,
                ];
                coercion::common_type_of(&types, "BETWEEN")?;
                Ok(DataType::Boolean)
            }
            Expr::InList { expr, list, .. } => {
                if list.is_empty() {
                    plan_err!("IN expects a non-empty list");
                }
                let mut types = vec![expr.data_type(input)?];
                for e in list {
                    types.push(e.data_type(input)?);
                }
                coercion::common_type_of(&types, "IN")?;
                Ok(DataType::Boolean)
            }
            Expr::Like {
                expr,
                pattern,
                case_insensitive,
                ..
            } => {
                let what = if *case_insensitive { "ILIKE" } else { "LIKE" };
                for t in [expr.data_type(input)?, pattern.data_type(input)?] {
                    if !(coercion::is_string(&t) || t == DataType::Null) {
                        plan_err!("{what} expects strings, got {t}");
                    }
                }
                Ok(DataType::Boolean)
            }
            Expr::Function { func, args } => {
                let types = args
                    .iter()
                    .map(|a| a.data_type(input))
                    .collect::<Result<Vec<_>>>()?;
                let literals: Vec<Option<&ScalarValue>> = args
                    .iter()
                    .map(|a| match a {
                        Expr::Literal(v) => Some(v),
                        _ => None,
                    })
                    .collect();
                functions::check_literal_args(func, &literals)?;
                let round_digits = functions::literal_round_digits(func, args);
                functions::return_type(func, &types, round_digits)
            }
        }
    }

    pub(super) fn case_types(
        operand: Option<&Expr>,
        when_then: &[(Expr, Expr)],
        else_expr: Option<&Expr>,
        input: &Schema,
    ) -> Result<CaseTypes> {
        if when_then.is_empty() {
            plan_err!("CASE expects at least one WHEN");
        }
        let compare = match operand {
            Some(o) => {
                let mut types = vec![o.data_type(input)?];
                for (w, _) in when_then {
                    types.push(w.data_type(input)?);
                }
                Some(coercion::common_type_of(
                    &types,
                    "CASE operand and WHEN values",
                )?)
            }
            None => {
                for (w, _) in when_then {
                    let t = w.data_type(input)?;
                    if !matches!(t, DataType::Boolean | DataType::Null) {
                        plan_err!("CASE WHEN expects a boolean condition, got {t}");
                    }
                }
                None
            }
        };
        let mut results = Vec::with_capacity(when_then.len() + 1);
        for (_, t) in when_then {
            results.push(t.data_type(input)?);
        }
        if let Some(e) = else_expr {
            results.push(e.data_type(input)?);
        }
        let result = coercion::common_type_of(&results, "CASE")?;
        Ok(CaseTypes { compare, result })
    }

    /// Whether the result may be NULL (conservative: true when unsure).
    pub fn nullable(&self, input: &Schema) -> Result<bool> {
        let any = |es: &mut dyn Iterator<Item = &Expr>| -> Result<bool> {
            for e in es {
                if e.nullable(input)? {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        Ok(match self {
            Expr::Column(i) => match input.fields().get(*i) {
                Some(f) => f.is_nullable(),
                None => plan_err!(
                    "column index {i} out of range for an input of {} columns",
                    input.fields().len()
                ),
            },
            Expr::Literal(v) => v.is_null(),
            Expr::Binary { left, right, .. } => left.nullable(input)? || right.nullable(input)?,
            Expr::Not(e) | Expr::Negative(e) | Expr::Cast { expr: e, .. } => e.nullable(input)?,
            Expr::IsNull(_) | Expr::IsNotNull(_) => false,
            Expr::TryCast { .. } => true,
            Expr::Case {
                when_then,
                else_expr,
                ..
            } => match else_expr {
                None => true,
                Some(e) => e.nullable(input)? || any(&mut when_then.iter().map(|(_, t)| t))?,
            },
            Expr::Coalesce(args) => {
                for a in args {
                    if !a.nullable(input)? {
                        return Ok(false);
                    }
                }
                true
            }
            Expr::Between {
                expr, low, high, ..
            } => any(&mut [&**expr, low, high].into_iter())?,
            Expr::InList { expr, list, .. } => expr.nullable(input)? || any(&mut list.iter())?,
            Expr::Like { expr, pattern, .. } => expr.nullable(input)? || pattern.nullable(input)?,
            Expr::Function { func, args } => {
                // SUBSTRING with a negative length is NULL.
                (*func == ScalarFunction::Substring && args.len() == 3) || any(&mut args.iter())?
            }
        })
    }
}
