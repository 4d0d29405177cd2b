//! Binding of the expression forms that are not function calls: column
//! references, literals, unary and binary operators, the `IS` tests,
//! BETWEEN, IN lists, LIKE, CASE and CAST. [`Binder::bind_node`] is the one
//! dispatch over the AST; it hands calls and function-like syntax to the
//! `functions` module.

use arrow::datatypes::DataType;
use runnel_engine::expr::{BinaryOp, Expr, ScalarValue, INTERVAL_MS, TS_MS};
use runnel_engine::time::parse_timestamp_millis;
use sqlparser::ast;

use super::literals::{
    literal, number_literal, parse_date_days, parse_interval, string_value, IntervalValue,
};
use super::types::{flink_type_name, sql_type_to_arrow};
use super::{Binder, Bound};
use crate::error::{Position, Result, SqlError};

/// The `IS` tests that expect a BOOLEAN operand.
#[derive(Debug, Clone, Copy)]
enum TruthTest {
    Unknown,
    NotUnknown,
    True,
    NotTrue,
    False,
    NotFalse,
}

impl TruthTest {
    /// The test as written in SQL, for messages.
    fn sql(self) -> &'static str {
        match self {
            Self::Unknown => "IS UNKNOWN",
            Self::NotUnknown => "IS NOT UNKNOWN",
            Self::True => "IS TRUE",
            Self::NotTrue => "IS NOT TRUE",
            Self::False => "IS FALSE",
            Self::NotFalse => "IS NOT FALSE",
        }
    }
}

impl Binder<'_, '_, '_> {
    /// Binds one AST node; [`Binder::bind`] has already offered it to the
    /// substitute and recorded its position.
    pub(super) fn bind_node(&mut self, e: &ast::Expr, pos: Position) -> Result<Bound> {
        use ast::Expr as A;
        match e {
            A::Identifier(ident) => self.column(std::slice::from_ref(ident), pos),
            A::CompoundIdentifier(idents) => self.column(idents, pos),
            A::Value(v) if matches!(v.value, ast::Value::Placeholder(_)) => {
                self.bind_hinted(e, None)
            }
            A::Value(v) => self.typed(Expr::Literal(literal(&v.value, pos)?), pos),
            A::TypedString(ts) => self.typed_string(ts, pos),
            A::Interval(iv) => self.interval(iv, pos),
            A::Nested(inner) => self.bind(inner),
            A::UnaryOp { op, expr } => self.unary(*op, expr, pos),
            A::BinaryOp { left, op, right } => self.binary(left, op, right, pos),
            A::IsNull(inner) => {
                let b = self.bind(inner)?;
                self.typed(Expr::IsNull(Box::new(b.expr)), pos)
            }
            A::IsNotNull(inner) => {
                let b = self.bind(inner)?;
                self.typed(Expr::IsNotNull(Box::new(b.expr)), pos)
            }
            A::IsUnknown(inner) => self.truth_test(inner, TruthTest::Unknown, pos),
            A::IsNotUnknown(inner) => self.truth_test(inner, TruthTest::NotUnknown, pos),
            A::IsTrue(inner) => self.truth_test(inner, TruthTest::True, pos),
            A::IsNotTrue(inner) => self.truth_test(inner, TruthTest::NotTrue, pos),
            A::IsFalse(inner) => self.truth_test(inner, TruthTest::False, pos),
            A::IsNotFalse(inner) => self.truth_test(inner, TruthTest::NotFalse, pos),
            A::IsDistinctFrom(l, r) => self.distinct_from(l, r, false, pos),
            A::IsNotDistinctFrom(l, r) => self.distinct_from(l, r, true, pos),
            A::Between {
                expr,
                negated,
                low,
                high,
            } => self.between(expr, low, high, *negated, pos),
            A::InList {
                expr,
                list,
                negated,
            } => self.in_list(expr, list, *negated, pos),
            A::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => self.like(
                *negated,
                *any,
                expr,
                pattern,
                escape_char.as_deref(),
                false,
                pos,
            ),
            A::ILike {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => self.like(
                *negated,
                *any,
                expr,
                pattern,
                escape_char.as_deref(),
                true,
                pos,
            ),
            A::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref(), pos),
            A::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() {
                    return Err(SqlError::plan("CAST ... FORMAT is not supported", pos));
                }
                self.cast(kind, expr, data_type, pos)
            }
            A::Extract { field, expr, .. } => self.extract(field, expr, pos),
            A::Floor { expr, field } => self.floor_ceil(expr, field, true, pos),
            A::Ceil { expr, field } => self.floor_ceil(expr, field, false, pos),
            A::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => self.substring(
                expr,
                substring_from.as_deref(),
                substring_for.as_deref(),
                pos,
            ),
            A::Trim {
                trim_where,
                trim_what,
                expr,
                trim_characters,
            } => self.trim(
                trim_where.as_ref(),
                trim_what.as_deref(),
                expr,
                trim_characters.as_deref(),
                pos,
            ),
            A::Function(f) => self.function(f, pos),
            A::Subquery(_) | A::Exists { .. } | A::InSubquery { .. } => Err(SqlError::plan(
                "subqueries are not supported in expressions",
                pos,
            )),
            A::Wildcard(_) | A::QualifiedWildcard(..) => Err(SqlError::plan(
                "'*' is only allowed in the SELECT list and in COUNT(*)",
                pos,
            )),
            other => Err(SqlError::plan(
                format!("unsupported expression: {other}"),
                pos,
            )),
        }
    }

    /// An `INTERVAL` literal.
    fn interval(&self, iv: &ast::Interval, pos: Position) -> Result<Bound> {
        let v = match parse_interval(iv, pos)? {
            IntervalValue::Millis(ms) => ScalarValue::IntervalMillis(ms),
            IntervalValue::Months(m) => ScalarValue::IntervalMonths(m),
        };
        self.typed(Expr::Literal(v), pos)
    }

    /// `x IS [NOT] TRUE|FALSE|UNKNOWN`.
    fn truth_test(&mut self, inner: &ast::Expr, test: TruthTest, pos: Position) -> Result<Bound> {
        let b = self.boolean_operand(inner, test.sql())?;
        // The IS [NOT] TRUE/FALSE forms never return NULL, which
        // COALESCE with the answer for a NULL operand expresses.
        let expr = match test {
            TruthTest::Unknown => Expr::IsNull(Box::new(b.expr)),
            TruthTest::NotUnknown => Expr::IsNotNull(Box::new(b.expr)),
            TruthTest::True => Expr::Coalesce(vec![b.expr, bool_lit(false)]),
            TruthTest::NotTrue => {
                let is_true = Expr::Coalesce(vec![b.expr, bool_lit(false)]);
                Expr::Not(Box::new(is_true))
            }
            TruthTest::False => {
                let negated = Expr::Not(Box::new(b.expr));
                Expr::Coalesce(vec![negated, bool_lit(false)])
            }
            TruthTest::NotFalse => Expr::Coalesce(vec![b.expr, bool_lit(true)]),
        };
        self.typed(expr, pos)
    }

    /// `x [NOT] BETWEEN low AND high`.
    fn between(
        &mut self,
        expr: &ast::Expr,
        low: &ast::Expr,
        high: &ast::Expr,
        negated: bool,
        pos: Position,
    ) -> Result<Bound> {
        let (expr, low) = self.bind_pair(expr, low, |t| Some(t.clone()))?;
        let high = self.bind_hinted(high, Some(&expr.data_type))?;
        self.typed(
            Expr::Between {
                expr: Box::new(expr.expr),
                low: Box::new(low.expr),
                high: Box::new(high.expr),
                negated,
            },
            pos,
        )
    }

    /// `x [NOT] IN (a, b, ...)`.
    fn in_list(
        &mut self,
        expr: &ast::Expr,
        list: &[ast::Expr],
        negated: bool,
        pos: Position,
    ) -> Result<Bound> {
        let expr = self.bind(expr)?;
        let list = list
            .iter()
            .map(|item| {
                self.bind_hinted(item, Some(&expr.data_type))
                    .map(|b| b.expr)
            })
            .collect::<Result<Vec<_>>>()?;
        self.typed(
            Expr::InList {
                expr: Box::new(expr.expr),
                list,
                negated,
            },
            pos,
        )
    }

    /// `CASE [operand] WHEN ... THEN ... [ELSE ...] END`.
    fn case(
        &mut self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
        pos: Position,
    ) -> Result<Bound> {
        let operand = match operand {
            Some(o) => Some(Box::new(self.bind(o)?.expr)),
            None => None,
        };
        let mut when_then = Vec::with_capacity(conditions.len());
        for cw in conditions {
            let w = self.bind(&cw.condition)?;
            let t = self.bind(&cw.result)?;
            when_then.push((w.expr, t.expr));
        }
        let else_expr = match else_result {
            Some(e) => Some(Box::new(self.bind(e)?.expr)),
            None => None,
        };
        self.typed_with_null_branches(
            Expr::Case {
                operand,
                when_then,
                else_expr,
            },
            pos,
        )
    }

    /// `CAST`, `TRY_CAST`, `SAFE_CAST` and `x::type`.
    fn cast(
        &mut self,
        kind: &ast::CastKind,
        expr: &ast::Expr,
        data_type: &ast::DataType,
        pos: Position,
    ) -> Result<Bound> {
        let to = sql_type_to_arrow(data_type, pos)?;
        let inner = self.bind_hinted(expr, Some(&to))?;
        let cast = match kind {
            ast::CastKind::Cast | ast::CastKind::DoubleColon => Expr::Cast {
                expr: Box::new(inner.expr),
                to,
            },
            ast::CastKind::TryCast | ast::CastKind::SafeCast => Expr::TryCast {
                expr: Box::new(inner.expr),
                to,
            },
        };
        self.typed(cast, pos)
    }

    /// A column reference, resolved in the scope.
    fn column(&self, idents: &[ast::Ident], pos: Position) -> Result<Bound> {
        let i = self.scope.resolve(idents).map_err(|e| match e {
            SqlError::Plan { message, position } if position.is_unknown() => {
                SqlError::plan(message, pos)
            }
            other => other,
        })?;
        match self.scope.columns.get(i) {
            Some(c) => Ok(Bound {
                expr: Expr::Column(i),
                data_type: c.data_type.clone(),
                nullable: c.nullable,
            }),
            None => Err(SqlError::plan(
                format!("column index {i} out of range"),
                pos,
            )),
        }
    }

    /// Binds `e` and checks it is BOOLEAN (or NULL) for the operator `what`.
    pub(super) fn boolean_operand(&mut self, e: &ast::Expr, what: &str) -> Result<Bound> {
        let b = self.bind(e)?;
        if !matches!(b.data_type, DataType::Boolean | DataType::Null) {
            return Err(SqlError::plan(
                format!(
                    "{what} expects a BOOLEAN operand, got {}",
                    flink_type_name(&b.data_type)
                ),
                self.pos_of(e),
            ));
        }
        Ok(b)
    }

    /// Types a CASE or COALESCE, then gives its bare NULL branches the result
    /// type so the output column is not of the Null type in any branch.
    pub(super) fn typed_with_null_branches(&self, expr: Expr, pos: Position) -> Result<Bound> {
        let bound = self.typed(expr, pos)?;
        if bound.data_type == DataType::Null {
            return Ok(bound);
        }
        let t = bound.data_type.clone();
        let fix = |e: Expr| match e {
            Expr::Literal(ScalarValue::Null) => Expr::Cast {
                expr: Box::new(Expr::Literal(ScalarValue::Null)),
                to: t.clone(),
            },
            other => other,
        };
        let expr = match bound.expr {
            Expr::Case {
                operand,
                when_then,
                else_expr,
            } => Expr::Case {
                operand,
                when_then: when_then.into_iter().map(|(w, r)| (w, fix(r))).collect(),
                else_expr: else_expr.map(|e| Box::new(fix(*e))),
            },
            Expr::Coalesce(args) => Expr::Coalesce(args.into_iter().map(fix).collect()),
            other => other,
        };
        self.typed(expr, pos)
    }

    /// `NOT x`, `-x`, `+x`.
    fn unary(&mut self, op: ast::UnaryOperator, inner: &ast::Expr, pos: Position) -> Result<Bound> {
        match op {
            ast::UnaryOperator::Not => {
                let b = self.bind(inner)?;
                self.typed(Expr::Not(Box::new(b.expr)), pos)
            }
            ast::UnaryOperator::Minus => {
                // Folding the sign into a number literal keeps -2147483648 an INT.
                if let ast::Expr::Value(v) = inner {
                    if let ast::Value::Number(n, _) = &v.value {
                        let lit = number_literal(&format!("-{n}"), pos)?;
                        return self.typed(Expr::Literal(lit), pos);
                    }
                }
                let b = self.bind(inner)?;
                let folded = match &b.expr {
                    Expr::Literal(ScalarValue::IntervalMillis(ms)) => {
                        ms.checked_neg().map(ScalarValue::IntervalMillis)
                    }
                    Expr::Literal(ScalarValue::IntervalMonths(m)) => {
                        m.checked_neg().map(ScalarValue::IntervalMonths)
                    }
                    _ => None,
                };
                match folded {
                    Some(v) => self.typed(Expr::Literal(v), pos),
                    None => self.typed(Expr::Negative(Box::new(b.expr)), pos),
                }
            }
            ast::UnaryOperator::Plus => {
                let b = self.bind(inner)?;
                // Unary plus only checks that the operand is a number.
                self.typed(Expr::Negative(Box::new(b.expr.clone())), pos)?;
                Ok(b)
            }
            other => Err(SqlError::plan(
                format!("unsupported unary operator {other}"),
                pos,
            )),
        }
    }

    /// `l op r` for the operators the engine has.
    fn binary(
        &mut self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        pos: Position,
    ) -> Result<Bound> {
        use ast::BinaryOperator as B;
        let engine_op = match op {
            B::Plus => BinaryOp::Plus,
            B::Minus => BinaryOp::Minus,
            B::Multiply => BinaryOp::Multiply,
            B::Divide => BinaryOp::Divide,
            B::Modulo => BinaryOp::Modulo,
            B::Eq => BinaryOp::Eq,
            B::NotEq => BinaryOp::NotEq,
            B::Lt => BinaryOp::Lt,
            B::LtEq => BinaryOp::LtEq,
            B::Gt => BinaryOp::Gt,
            B::GtEq => BinaryOp::GtEq,
            B::And => BinaryOp::And,
            B::Or => BinaryOp::Or,
            B::StringConcat => BinaryOp::StringConcat,
            other => return Err(SqlError::plan(format!("unsupported operator {other}"), pos)),
        };
        let (l, r) = self.bind_pair(left, right, |t| operand_hint(engine_op, t))?;
        self.binary_bound(engine_op, l, r, pos)
    }

    /// Types `l op r` on bound operands, with a message in SQL type names.
    pub(super) fn binary_bound(
        &self,
        op: BinaryOp,
        l: Bound,
        r: Bound,
        pos: Position,
    ) -> Result<Bound> {
        let (lt, rt) = (flink_type_name(&l.data_type), flink_type_name(&r.data_type));
        let expr = Expr::Binary {
            op,
            left: Box::new(l.expr),
            right: Box::new(r.expr),
        };
        self.typed(expr, pos).map_err(|_| {
            let message = if op.is_comparison() {
                format!("cannot compare {lt} and {rt} (operator '{op}')")
            } else {
                match op {
                    BinaryOp::And | BinaryOp::Or => {
                        format!("{op} expects BOOLEAN operands, got {lt} and {rt}")
                    }
                    BinaryOp::StringConcat => format!("cannot concatenate {lt} and {rt} with '||'"),
                    _ => format!("cannot apply '{op}' to {lt} and {rt}"),
                }
            };
            SqlError::plan(message, pos)
        })
    }

    /// `a IS [NOT] DISTINCT FROM b`: equality where two NULLs are equal.
    fn distinct_from(
        &mut self,
        left: &ast::Expr,
        right: &ast::Expr,
        not_distinct: bool,
        pos: Position,
    ) -> Result<Bound> {
        let (l, r) = self.bind_pair(left, right, |t| Some(t.clone()))?;
        let op = if not_distinct {
            BinaryOp::Eq
        } else {
            BinaryOp::NotEq
        };
        let cmp = self.binary_bound(op, l.clone(), r.clone(), pos)?;
        let r_null = if not_distinct {
            Expr::IsNull(Box::new(r.expr.clone()))
        } else {
            Expr::IsNotNull(Box::new(r.expr.clone()))
        };
        self.typed(
            Expr::Case {
                operand: None,
                when_then: vec![
                    (Expr::IsNull(Box::new(l.expr)), r_null),
                    (Expr::IsNull(Box::new(r.expr)), bool_lit(!not_distinct)),
                ],
                else_expr: Some(Box::new(cmp.expr)),
            },
            pos,
        )
    }

    /// `[NOT] LIKE` and `[NOT] ILIKE`.
    fn like(
        &mut self,
        negated: bool,
        any: bool,
        expr: &ast::Expr,
        pattern: &ast::Expr,
        escape: Option<&ast::Expr>,
        case_insensitive: bool,
        pos: Position,
    ) -> Result<Bound> {
        let what = if case_insensitive { "ILIKE" } else { "LIKE" };
        if any {
            return Err(SqlError::plan(format!("{what} ANY is not supported"), pos));
        }
        if let Some(e) = escape {
            return Err(SqlError::plan(
                format!("{what} ... ESCAPE is not supported; '\\' escapes '%' and '_' in patterns"),
                self.pos_of(e),
            ));
        }
        let e = self.bind_hinted(expr, Some(&DataType::Utf8))?;
        let p = self.bind_hinted(pattern, Some(&DataType::Utf8))?;
        self.typed(
            Expr::Like {
                expr: Box::new(e.expr),
                pattern: Box::new(p.expr),
                negated,
                case_insensitive,
            },
            pos,
        )
    }

    /// `TIMESTAMP '…'`, `DATE '…'` and other `TYPE 'text'` literals.
    fn typed_string(&mut self, ts: &ast::TypedString, pos: Position) -> Result<Bound> {
        let Some(text) = string_value(&ts.value.value) else {
            return Err(SqlError::plan(
                format!("{} literal expects a quoted string", ts.data_type),
                pos,
            ));
        };
        let target = sql_type_to_arrow(&ts.data_type, pos)?;
        let value = match &target {
            DataType::Timestamp(_, _) => match parse_timestamp_millis(text) {
                Some(ms) => ScalarValue::TimestampMillis(ms),
                None => {
                    return Err(SqlError::plan(
                        format!(
                        "invalid TIMESTAMP literal '{text}'; expected 'YYYY-MM-DD HH:MM:SS[.fff]'"
                    ),
                        pos,
                    ))
                }
            },
            DataType::Date32 => match parse_date_days(text) {
                Some(d) => ScalarValue::Date32(d),
                None => {
                    return Err(SqlError::plan(
                        format!("invalid DATE literal '{text}'; expected 'YYYY-MM-DD'"),
                        pos,
                    ))
                }
            },
            _ => {
                let s = Expr::Literal(ScalarValue::Utf8(text.to_string()));
                return self.typed(
                    Expr::Cast {
                        expr: Box::new(s),
                        to: target,
                    },
                    pos,
                );
            }
        };
        self.typed(Expr::Literal(value), pos)
    }
}

/// The type a `?` operand of `op` takes when the other operand has type
/// `other`: the same type, except that time moves by intervals.
fn operand_hint(op: BinaryOp, other: &DataType) -> Option<DataType> {
    let temporal = matches!(other, DataType::Timestamp(_, _) | DataType::Date32);
    let interval = matches!(other, DataType::Duration(_) | DataType::Interval(_));
    match op {
        BinaryOp::And | BinaryOp::Or => Some(DataType::Boolean),
        BinaryOp::StringConcat => Some(DataType::Utf8),
        BinaryOp::Plus | BinaryOp::Minus if temporal => Some(INTERVAL_MS),
        BinaryOp::Plus if interval => Some(TS_MS),
        BinaryOp::Multiply | BinaryOp::Divide if interval => Some(DataType::Int64),
        _ => Some(other.clone()),
    }
}

/// A BOOLEAN literal.
fn bool_lit(v: bool) -> Expr {
    Expr::Literal(ScalarValue::Boolean(v))
}
