//! Binding of SQL scalar expressions: resolves column names against a
//! [`Scope`], turns the `sqlparser` AST into the engine's
//! [`runnel_engine::expr::Expr`] and type-checks the result.
//!
//! Every error carries the line and column of the sub-expression it is
//! about. `sqlparser` spans start at the first token of an expression, so a
//! binary operator's error points at the start of its left operand and a
//! `CAST` or `EXTRACT` error at its argument.
//!
//! # Decisions
//!
//! * Integer literals are `INT` when they fit and `BIGINT` otherwise; any
//!   literal with a fraction or exponent is `DOUBLE`.
//! * `DECIMAL`/`NUMERIC` are approximated as `DOUBLE` for now: the engine has
//!   no decimal arithmetic.
//! * A bare `NULL` has the Arrow type `Null`; the engine's coercion rules
//!   give it the other operand's type in comparisons and arithmetic, and the
//!   binder casts NULL branches of CASE / COALESCE / IF / NULLIF to the
//!   result type so the output column has a real type.
//! * Timestamps are millisecond precision whatever precision the SQL type
//!   names; `TIMESTAMP '…'` literals are read as UTC.

use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, TimeUnit};
use runnel_engine::expr::{
    BinaryOp, Expr, ScalarFunction, ScalarValue, TimeUnitField, INTERVAL_MONTHS, INTERVAL_MS, TS_MS,
};
use runnel_engine::EngineError;
use sqlparser::ast::{self, Spanned};

use crate::error::{Position, Result, SqlError};

// ---------------------------------------------------------------------------
// Scope
// ---------------------------------------------------------------------------

/// One column visible to an expression.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    /// Table name or alias the column can be qualified with.
    pub qualifier: Option<String>,
    /// Column name.
    pub name: String,
    /// Arrow type of the column.
    pub data_type: DataType,
    /// Whether the column may hold NULL.
    pub nullable: bool,
}

/// The columns an expression can see, in input order (index = position in the input batch).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The visible columns.
    pub columns: Vec<ScopeColumn>,
}

/// How many column names an "unknown column" message lists.
const MAX_LISTED_COLUMNS: usize = 10;

impl Scope {
    /// A scope over `columns`.
    pub fn new(columns: Vec<ScopeColumn>) -> Self {
        Self { columns }
    }

    /// Resolves `name` or `qualifier.name` case-insensitively to a column index.
    pub fn resolve(&self, idents: &[ast::Ident]) -> Result<usize> {
        let position = idents
            .first()
            .map(|i| Position::of(i.span))
            .unwrap_or_default();
        let Some((name, prefix)) = idents.split_last() else {
            return Err(SqlError::plan("empty column reference", position));
        };
        // Only the part right before the column name can be a table alias;
        // catalog and database parts in front of it are ignored.
        let qualifier = prefix.last();
        let full = idents
            .iter()
            .map(|i| i.value.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let matches: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name.eq_ignore_ascii_case(&name.value))
            .filter(|(_, c)| match qualifier {
                None => true,
                Some(q) => c
                    .qualifier
                    .as_deref()
                    .is_some_and(|cq| cq.eq_ignore_ascii_case(&q.value)),
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(SqlError::plan(
                format!(
                    "unknown column '{full}'; available columns: {}",
                    self.listed_names()
                ),
                position,
            )),
            many => {
                let owners = many
                    .iter()
                    .filter_map(|i| self.columns.get(*i))
                    .map(|c| c.qualifier.as_deref().unwrap_or("<unqualified>"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(SqlError::plan(
                    format!(
                        "column '{full}' is ambiguous (it exists in {owners}); qualify it with a table name or alias"
                    ),
                    position,
                ))
            }
        }
    }

    fn listed_names(&self) -> String {
        if self.columns.is_empty() {
            return "(none)".to_string();
        }
        let mut s = self
            .columns
            .iter()
            .take(MAX_LISTED_COLUMNS)
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if self.columns.len() > MAX_LISTED_COLUMNS {
            s.push_str(&format!(
                ", … ({} more)",
                self.columns.len() - MAX_LISTED_COLUMNS
            ));
        }
        s
    }

    /// The Arrow schema of the input, fields named by column name.
    pub fn schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        )
    }
}

// ---------------------------------------------------------------------------
// Binding
// ---------------------------------------------------------------------------

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
    "EXTRACT",
    "FLOOR",
    "IF",
    "LOWER",
    "LTRIM",
    "NULLIF",
    "MOD",
    "REGEXP_EXTRACT",
    "REGEXP_REPLACE",
    "ROUND",
    "RTRIM",
    "SUBSTR",
    "SPLIT_INDEX",
    "SUBSTRING",
    "TRIM",
    "TRY_CAST",
    "UPPER",
];

struct Binder<'s, 'f, 'a> {
    scope: &'s Scope,
    schema: Schema,
    substitute: &'f mut Substitute<'a>,
    /// Position of the innermost enclosing node with a known span, used for
    /// nodes the parser did not give a position.
    outer: Position,
}

impl Binder<'_, '_, '_> {
    fn pos_of(&self, e: &ast::Expr) -> Position {
        let p = Position::of(e.span());
        if p.is_unknown() {
            self.outer
        } else {
            p
        }
    }

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

    fn engine_error(&self, e: EngineError, pos: Position) -> SqlError {
        let message = match e {
            EngineError::Plan(m) => m,
            other => other.to_string(),
        };
        SqlError::plan(self.flink_names(&message), pos)
    }

    /// Rewrites Arrow type names in an engine message into the SQL names
    /// users wrote, so "Utf8" reads as "STRING".
    fn flink_names(&self, message: &str) -> String {
        let mut types: Vec<DataType> = vec![
            TS_MS,
            INTERVAL_MS,
            INTERVAL_MONTHS,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Utf8,
            DataType::LargeUtf8,
            DataType::Utf8View,
            DataType::Boolean,
            DataType::Date32,
            DataType::Binary,
            DataType::Null,
        ];
        types.extend(self.scope.columns.iter().map(|c| c.data_type.clone()));
        let mut names: Vec<(String, String)> = types
            .iter()
            .map(|t| (t.to_string(), flink_type_name(t)))
            .collect();
        // Longer names first so a type whose name contains another's is
        // rewritten as a whole.
        names.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
        names.dedup();
        let mut out = message.to_string();
        for (arrow_name, sql_name) in names {
            out = replace_word(&out, &arrow_name, &sql_name);
        }
        out
    }

    fn bind_node(&mut self, e: &ast::Expr, pos: Position) -> Result<Bound> {
        use ast::Expr as A;
        match e {
            A::Identifier(ident) => self.column(std::slice::from_ref(ident), pos),
            A::CompoundIdentifier(idents) => self.column(idents, pos),
            A::Value(v) => self.typed(Expr::Literal(literal(&v.value, pos)?), pos),
            A::TypedString(ts) => self.typed_string(ts, pos),
            A::Interval(iv) => {
                let v = match parse_interval(iv, pos)? {
                    IntervalValue::Millis(ms) => ScalarValue::IntervalMillis(ms),
                    IntervalValue::Months(m) => ScalarValue::IntervalMonths(m),
                };
                self.typed(Expr::Literal(v), pos)
            }
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
            A::IsUnknown(inner) => {
                let b = self.boolean_operand(inner, "IS UNKNOWN")?;
                self.typed(Expr::IsNull(Box::new(b.expr)), pos)
            }
            A::IsNotUnknown(inner) => {
                let b = self.boolean_operand(inner, "IS NOT UNKNOWN")?;
                self.typed(Expr::IsNotNull(Box::new(b.expr)), pos)
            }
            // The IS [NOT] TRUE/FALSE forms never return NULL, which
            // COALESCE with the answer for a NULL operand expresses.
            A::IsTrue(inner) => {
                let b = self.boolean_operand(inner, "IS TRUE")?;
                self.typed(Expr::Coalesce(vec![b.expr, bool_lit(false)]), pos)
            }
            A::IsNotTrue(inner) => {
                let b = self.boolean_operand(inner, "IS NOT TRUE")?;
                let is_true = Expr::Coalesce(vec![b.expr, bool_lit(false)]);
                self.typed(Expr::Not(Box::new(is_true)), pos)
            }
            A::IsFalse(inner) => {
                let b = self.boolean_operand(inner, "IS FALSE")?;
                let negated = Expr::Not(Box::new(b.expr));
                self.typed(Expr::Coalesce(vec![negated, bool_lit(false)]), pos)
            }
            A::IsNotFalse(inner) => {
                let b = self.boolean_operand(inner, "IS NOT FALSE")?;
                self.typed(Expr::Coalesce(vec![b.expr, bool_lit(true)]), pos)
            }
            A::IsDistinctFrom(l, r) => self.distinct_from(l, r, false, pos),
            A::IsNotDistinctFrom(l, r) => self.distinct_from(l, r, true, pos),
            A::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let expr = self.bind(expr)?;
                let low = self.bind(low)?;
                let high = self.bind(high)?;
                self.typed(
                    Expr::Between {
                        expr: Box::new(expr.expr),
                        low: Box::new(low.expr),
                        high: Box::new(high.expr),
                        negated: *negated,
                    },
                    pos,
                )
            }
            A::InList {
                expr,
                list,
                negated,
            } => {
                let expr = self.bind(expr)?;
                let list = list
                    .iter()
                    .map(|item| self.bind(item).map(|b| b.expr))
                    .collect::<Result<Vec<_>>>()?;
                self.typed(
                    Expr::InList {
                        expr: Box::new(expr.expr),
                        list,
                        negated: *negated,
                    },
                    pos,
                )
            }
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
            } => {
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
            A::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() {
                    return Err(SqlError::plan("CAST ... FORMAT is not supported", pos));
                }
                let to = sql_type_to_arrow(data_type, pos)?;
                let inner = self.bind(expr)?;
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
            A::Extract { field, expr, .. } => {
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
            A::Floor { expr, field } => self.floor_ceil(expr, field, true, pos),
            A::Ceil { expr, field } => self.floor_ceil(expr, field, false, pos),
            A::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
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
            A::Trim {
                trim_where,
                trim_what,
                expr,
                trim_characters,
            } => {
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

    fn call(&self, func: ScalarFunction, args: Vec<Expr>, pos: Position) -> Result<Bound> {
        self.typed(Expr::Function { func, args }, pos)
    }

    fn boolean_operand(&mut self, e: &ast::Expr, what: &str) -> Result<Bound> {
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
    fn typed_with_null_branches(&self, expr: Expr, pos: Position) -> Result<Bound> {
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
        let l = self.bind(left)?;
        let r = self.bind(right)?;
        self.binary_bound(engine_op, l, r, pos)
    }

    fn binary_bound(&self, op: BinaryOp, l: Bound, r: Bound, pos: Position) -> Result<Bound> {
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
        let l = self.bind(left)?;
        let r = self.bind(right)?;
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
        let e = self.bind(expr)?;
        let p = self.bind(pattern)?;
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

    fn floor_ceil(
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

    fn function(&mut self, f: &ast::Function, pos: Position) -> Result<Bound> {
        let display_name = f.name.to_string();
        let name = match f.name.0.as_slice() {
            [part] => part
                .as_ident()
                .map(|i| i.value.to_ascii_uppercase())
                .unwrap_or_else(|| display_name.to_ascii_uppercase()),
            _ => display_name.to_ascii_uppercase(),
        };
        if f.over.is_some() {
            return Err(SqlError::plan("OVER windows are not supported yet", pos));
        }
        if is_aggregate_name(&name) {
            return Err(SqlError::plan(
                format!("aggregate function {name} is not allowed here"),
                pos,
            ));
        }
        if name == "PROCTIME" {
            return Err(SqlError::plan(
                "PROCTIME() is only allowed as a computed column of a CREATE TABLE",
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
        let args: Vec<&ast::Expr> = match &f.args {
            ast::FunctionArguments::None => Vec::new(),
            ast::FunctionArguments::Subquery(_) => {
                return Err(SqlError::plan(
                    "subqueries are not supported in expressions",
                    pos,
                ))
            }
            ast::FunctionArguments::List(list) => {
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
                out
            }
        };
        let simple = match name.as_str() {
            "LOWER" => Some(ScalarFunction::Lower),
            "UPPER" => Some(ScalarFunction::Upper),
            "TRIM" => Some(ScalarFunction::Trim),
            "LTRIM" => Some(ScalarFunction::Ltrim),
            "RTRIM" => Some(ScalarFunction::Rtrim),
            "SUBSTRING" | "SUBSTR" => Some(ScalarFunction::Substring),
            "CONCAT" => Some(ScalarFunction::Concat),
            "CHAR_LENGTH" | "CHARACTER_LENGTH" => Some(ScalarFunction::CharLength),
            "REGEXP_REPLACE" => Some(ScalarFunction::RegexpReplace),
            "REGEXP_EXTRACT" => Some(ScalarFunction::RegexpExtract),
            "SPLIT_INDEX" => Some(ScalarFunction::SplitIndex),
            "DATE_FORMAT" => Some(ScalarFunction::DateFormat),
            "ABS" => Some(ScalarFunction::Abs),
            "ROUND" => Some(ScalarFunction::Round),
            "FLOOR" => Some(ScalarFunction::Floor),
            "CEIL" | "CEILING" => Some(ScalarFunction::Ceil),
            _ => None,
        };
        if let Some(func) = simple {
            let bound = args
                .iter()
                .map(|a| self.bind(a).map(|b| b.expr))
                .collect::<Result<Vec<_>>>()?;
            return self.call(func, bound, pos);
        }
        match name.as_str() {
            "COALESCE" => {
                if args.is_empty() {
                    return Err(SqlError::plan(
                        "COALESCE expects at least one argument",
                        pos,
                    ));
                }
                let bound = args
                    .iter()
                    .map(|a| self.bind(a).map(|b| b.expr))
                    .collect::<Result<Vec<_>>>()?;
                self.typed_with_null_branches(Expr::Coalesce(bound), pos)
            }
            "NULLIF" => {
                let [a, b] = expect_args::<2>(&name, &args, pos)?;
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
            "MOD" => {
                let [a, b] = expect_args::<2>(&name, &args, pos)?;
                let a = self.bind(a)?;
                let b = self.bind(b)?;
                self.binary_bound(BinaryOp::Modulo, a, b, pos)
            }
            "IF" => {
                let [c, a, b] = expect_args::<3>(&name, &args, pos)?;
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
            "DATE_TRUNC" => {
                let [unit, ts] = expect_args::<2>(&name, &args, pos)?;
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
            _ => Err(SqlError::plan(
                format!(
                    "unknown function '{display_name}'; supported functions: {}",
                    SUPPORTED_FUNCTIONS.join(", ")
                ),
                pos,
            )),
        }
    }
}

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

fn bool_lit(v: bool) -> Expr {
    Expr::Literal(ScalarValue::Boolean(v))
}

/// Replaces whole-word occurrences of `from` (not preceded or followed by
/// an identifier character).
fn replace_word(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return text.to_string();
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let before_ok = !rest[..i].chars().next_back().is_some_and(is_word);
        let after = &rest[i + from.len()..];
        let after_ok = !after.chars().next().is_some_and(is_word);
        out.push_str(&rest[..i]);
        out.push_str(if before_ok && after_ok { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------
// Literals
// ---------------------------------------------------------------------------

/// The text of a character-string literal (not byte or hex strings).
fn string_value(v: &ast::Value) -> Option<&str> {
    use ast::Value as V;
    match v {
        V::SingleQuotedString(s)
        | V::DoubleQuotedString(s)
        | V::TripleSingleQuotedString(s)
        | V::TripleDoubleQuotedString(s)
        | V::EscapedStringLiteral(s)
        | V::UnicodeStringLiteral(s)
        | V::NationalStringLiteral(s)
        | V::SingleQuotedRawStringLiteral(s)
        | V::DoubleQuotedRawStringLiteral(s)
        | V::TripleSingleQuotedRawStringLiteral(s)
        | V::TripleDoubleQuotedRawStringLiteral(s) => Some(s),
        V::DollarQuotedString(s) => Some(&s.value),
        _ => None,
    }
}

fn literal(v: &ast::Value, pos: Position) -> Result<ScalarValue> {
    if let Some(s) = string_value(v) {
        return Ok(ScalarValue::Utf8(s.to_string()));
    }
    match v {
        ast::Value::Number(n, _) => number_literal(n, pos),
        ast::Value::Boolean(b) => Ok(ScalarValue::Boolean(*b)),
        ast::Value::Null => Ok(ScalarValue::Null),
        ast::Value::Placeholder(p) => Err(SqlError::plan(
            format!("query parameters ({p}) are not supported"),
            pos,
        )),
        other => Err(SqlError::plan(format!("unsupported literal {other}"), pos)),
    }
}

fn number_literal(text: &str, pos: Position) -> Result<ScalarValue> {
    let is_integer = text
        .strip_prefix('-')
        .unwrap_or(text)
        .chars()
        .all(|c| c.is_ascii_digit());
    if is_integer {
        if let Ok(v) = text.parse::<i64>() {
            return Ok(match i32::try_from(v) {
                Ok(small) => ScalarValue::Int32(small),
                Err(_) => ScalarValue::Int64(v),
            });
        }
        // Integers beyond BIGINT are DECIMAL in Flink, approximated as DOUBLE here.
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(ScalarValue::Float64(v)),
        _ => Err(SqlError::plan(
            format!("invalid numeric literal {text}"),
            pos,
        )),
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Counting years from March puts the leap day at the end of the year,
    // so the day of the year follows a fixed pattern per month.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn parse_digits(s: &str, min_len: usize, max_len: usize) -> Option<i64> {
    if s.len() < min_len || s.len() > max_len || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `YYYY-MM-DD` into days since the epoch.
fn parse_date_days(text: &str) -> Option<i32> {
    let mut parts = text.trim().splitn(3, '-');
    let year = parse_digits(parts.next()?, 4, 4)?;
    let month = parse_digits(parts.next()?, 1, 2)?;
    let day = parse_digits(parts.next()?, 1, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    i32::try_from(days_from_civil(year, month, day)).ok()
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]]` as UTC into milliseconds since the epoch.
fn parse_timestamp_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = match text.find([' ', 'T']) {
        Some(i) => (&text[..i], Some(text[i + 1..].trim_start())),
        None => (text, None),
    };
    let days = i64::from(parse_date_days(date)?);
    let mut ms = 0;
    if let Some(time) = time {
        let (hms, fraction) = match time.split_once('.') {
            Some((hms, f)) => (hms, Some(f)),
            None => (time, None),
        };
        let mut parts = hms.split(':');
        let hour = parse_digits(parts.next()?, 1, 2)?;
        let minute = parse_digits(parts.next()?, 1, 2)?;
        let second = match parts.next() {
            Some(s) => parse_digits(s, 1, 2)?,
            None => 0,
        };
        if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        ms = ((hour * 60 + minute) * 60 + second) * 1000;
        if let Some(f) = fraction {
            if f.is_empty() || f.len() > 9 || !f.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Digits beyond milliseconds are dropped: timestamps are TIMESTAMP(3).
            let padded = format!("{f:0<3}");
            ms += parse_digits(&padded[..3], 3, 3)?;
        }
    }
    days.checked_mul(86_400_000)?.checked_add(ms)
}

// ---------------------------------------------------------------------------
// Intervals
// ---------------------------------------------------------------------------

enum IntervalValue {
    Millis(i64),
    Months(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum IntervalUnitKind {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl IntervalUnitKind {
    fn from_field(f: &ast::DateTimeField) -> Option<Self> {
        use ast::DateTimeField as D;
        Some(match f {
            D::Year | D::Years => Self::Year,
            D::Month | D::Months => Self::Month,
            D::Week(None) | D::Weeks => Self::Week,
            D::Day | D::Days => Self::Day,
            D::Hour | D::Hours => Self::Hour,
            D::Minute | D::Minutes => Self::Minute,
            D::Second | D::Seconds => Self::Second,
            D::Millisecond | D::Milliseconds => Self::Millisecond,
            D::Custom(i) => return Self::from_name(&i.value),
            _ => return None,
        })
    }

    fn from_name(s: &str) -> Option<Self> {
        let s = s.to_ascii_uppercase();
        let singular = s.strip_suffix('S').unwrap_or(&s);
        Some(match singular {
            "YEAR" => Self::Year,
            "MONTH" => Self::Month,
            "WEEK" => Self::Week,
            "DAY" => Self::Day,
            "HOUR" => Self::Hour,
            "MINUTE" => Self::Minute,
            "SECOND" => Self::Second,
            "MILLISECOND" => Self::Millisecond,
            _ => return None,
        })
    }

    /// Milliseconds per unit, `None` for the calendar units.
    fn millis(self) -> Option<i64> {
        Some(match self {
            Self::Year | Self::Month => return None,
            Self::Week => 7 * 86_400_000,
            Self::Day => 86_400_000,
            Self::Hour => 3_600_000,
            Self::Minute => 60_000,
            Self::Second => 1_000,
            Self::Millisecond => 1,
        })
    }
}

/// The text of an interval's value: a quoted string or a (signed) number.
fn interval_text(e: &ast::Expr) -> Option<String> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => Some(n.clone()),
            other => string_value(other).map(str::to_string),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => interval_text(expr).map(|t| format!("-{t}")),
        ast::Expr::Nested(inner) => interval_text(inner),
        _ => None,
    }
}

/// `n * unit` where `n` may have a fraction (`1.5 SECOND`), rounded to whole
/// milliseconds.
fn scaled_millis(number: &str, unit_ms: i64) -> Option<i64> {
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let whole_v = if whole.is_empty() {
        0
    } else {
        parse_digits(whole, 1, 19)?
    };
    let mut ms = whole_v.checked_mul(unit_ms)?;
    if !fraction.is_empty() {
        if !fraction.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let f: f64 = format!("0.{fraction}").parse().ok()?;
        // Fractions below a millisecond are rounded: the engine is ms-precise.
        let extra = (f * unit_ms as f64).round() as i64;
        ms = ms.checked_add(extra)?;
    }
    Some(ms)
}

fn parse_interval(iv: &ast::Interval, pos: Position) -> Result<IntervalValue> {
    let bad = |detail: &str| SqlError::plan(format!("invalid INTERVAL literal: {detail}"), pos);
    let Some(text) = interval_text(&iv.value) else {
        return Err(bad(
            "the value must be a quoted string such as INTERVAL '5' SECOND",
        ));
    };
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let value = match (&iv.leading_field, &iv.last_field) {
        (None, _) => parse_unit_pairs(body).ok_or_else(|| {
            bad(&format!(
                "'{text}' has no unit; write for example INTERVAL '5' SECOND"
            ))
        })?,
        (Some(lead), None) => {
            let unit = IntervalUnitKind::from_field(lead)
                .ok_or_else(|| bad(&format!("unsupported unit {lead}")))?;
            single_unit(body, unit)
                .ok_or_else(|| bad(&format!("'{text}' is not a number of {lead}")))?
        }
        (Some(lead), Some(last)) => {
            let (Some(l), Some(t)) = (
                IntervalUnitKind::from_field(lead),
                IntervalUnitKind::from_field(last),
            ) else {
                return Err(bad(&format!("unsupported range {lead} TO {last}")));
            };
            range_value(body, l, t)
                .ok_or_else(|| bad(&format!("'{text}' does not match {lead} TO {last}")))?
        }
    };
    Ok(match value {
        IntervalValue::Millis(ms) if negative => IntervalValue::Millis(-ms),
        IntervalValue::Months(m) if negative => IntervalValue::Months(-m),
        v => v,
    })
}

fn single_unit(number: &str, unit: IntervalUnitKind) -> Option<IntervalValue> {
    match unit.millis() {
        Some(ms) => scaled_millis(number, ms).map(IntervalValue::Millis),
        None => {
            let n = i32::try_from(parse_digits(number, 1, 10)?).ok()?;
            let months = if unit == IntervalUnitKind::Year {
                n.checked_mul(12)?
            } else {
                n
            };
            Some(IntervalValue::Months(months))
        }
    }
}

/// `'5 seconds'`, `'1 day 2 hours'`: number/unit pairs written in the string.
fn parse_unit_pairs(body: &str) -> Option<IntervalValue> {
    let tokens: Vec<&str> = body.split_whitespace().collect();
    if tokens.is_empty() || !tokens.len().is_multiple_of(2) {
        return None;
    }
    let mut millis: Option<i64> = None;
    let mut months: Option<i32> = None;
    for pair in tokens.chunks(2) {
        let [n, u] = pair else { return None };
        match single_unit(n, IntervalUnitKind::from_name(u)?)? {
            IntervalValue::Millis(ms) => millis = Some(millis.unwrap_or(0).checked_add(ms)?),
            IntervalValue::Months(m) => months = Some(months.unwrap_or(0).checked_add(m)?),
        }
    }
    match (millis, months) {
        (Some(ms), None) => Some(IntervalValue::Millis(ms)),
        (None, Some(m)) => Some(IntervalValue::Months(m)),
        // A value mixing months with days has no single representation.
        _ => None,
    }
}

/// `'1-6' YEAR TO MONTH`, `'1:30' MINUTE TO SECOND`, `'2 03:04:05.5' DAY TO SECOND`.
fn range_value(
    body: &str,
    lead: IntervalUnitKind,
    last: IntervalUnitKind,
) -> Option<IntervalValue> {
    use IntervalUnitKind as U;
    if lead == U::Year && last == U::Month {
        let (y, m) = body.split_once('-')?;
        let years = i32::try_from(parse_digits(y.trim(), 1, 9)?).ok()?;
        let months = i32::try_from(parse_digits(m.trim(), 1, 2)?).ok()?;
        if months > 11 {
            return None;
        }
        return Some(IntervalValue::Months(
            years.checked_mul(12)?.checked_add(months)?,
        ));
    }
    const ORDER: [IntervalUnitKind; 4] = [U::Day, U::Hour, U::Minute, U::Second];
    let first = ORDER.iter().position(|u| *u == lead)?;
    let end = ORDER.iter().position(|u| *u == last)?;
    if end <= first {
        return None;
    }
    let parts: Vec<&str> = body.split([' ', ':']).filter(|p| !p.is_empty()).collect();
    let units = ORDER.get(first..=end)?;
    if parts.len() != units.len() {
        return None;
    }
    let mut total: i64 = 0;
    for (i, (part, unit)) in parts.iter().zip(units).enumerate() {
        let unit_ms = unit.millis()?;
        let is_last = i + 1 == units.len();
        let ms = if is_last && *unit == U::Second {
            scaled_millis(part, unit_ms)?
        } else {
            parse_digits(part, 1, 18)?.checked_mul(unit_ms)?
        };
        // Fields after the leading one are bounded by the next larger unit.
        if i > 0 {
            let limit = match unit {
                U::Hour => 24 * 3_600_000,
                _ => 60 * unit_ms,
            };
            if ms >= limit {
                return None;
            }
        }
        total = total.checked_add(ms)?;
    }
    Some(IntervalValue::Millis(total))
}

/// Parses an interval literal expression (`INTERVAL '5' SECOND`) into milliseconds; month and year intervals are an error.
pub fn interval_millis(expr: &ast::Expr) -> Result<i64> {
    let pos = Position::of(expr.span());
    match expr {
        ast::Expr::Interval(iv) => match parse_interval(iv, pos)? {
            IntervalValue::Millis(ms) => Ok(ms),
            IntervalValue::Months(_) => Err(SqlError::plan(
                "month and year intervals are not allowed here; use MILLISECOND, SECOND, MINUTE, HOUR or DAY",
                pos,
            )),
        },
        ast::Expr::Nested(inner) => interval_millis(inner),
        other => Err(SqlError::plan(
            format!("expected an INTERVAL literal such as INTERVAL '5' SECOND, got {other}"),
            pos,
        )),
    }
}

// ---------------------------------------------------------------------------
// Time units
// ---------------------------------------------------------------------------

fn time_unit(f: &ast::DateTimeField) -> Option<TimeUnitField> {
    use ast::DateTimeField as D;
    Some(match f {
        D::Year | D::Years => TimeUnitField::Year,
        D::Quarter => TimeUnitField::Quarter,
        D::Month | D::Months => TimeUnitField::Month,
        D::Week(None) | D::Weeks | D::IsoWeek => TimeUnitField::Week,
        D::Day | D::Days => TimeUnitField::Day,
        D::Hour | D::Hours => TimeUnitField::Hour,
        D::Minute | D::Minutes => TimeUnitField::Minute,
        D::Second | D::Seconds => TimeUnitField::Second,
        D::Millisecond | D::Milliseconds => TimeUnitField::Millisecond,
        D::Dow | D::DayOfWeek => TimeUnitField::DayOfWeek,
        D::Doy | D::DayOfYear => TimeUnitField::DayOfYear,
        D::Epoch => TimeUnitField::Epoch,
        D::Custom(i) => return unit_from_name(&i.value),
        _ => return None,
    })
}

fn unit_from_name(s: &str) -> Option<TimeUnitField> {
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "YEAR" => TimeUnitField::Year,
        "QUARTER" => TimeUnitField::Quarter,
        "MONTH" => TimeUnitField::Month,
        "WEEK" => TimeUnitField::Week,
        "DAY" => TimeUnitField::Day,
        "HOUR" => TimeUnitField::Hour,
        "MINUTE" => TimeUnitField::Minute,
        "SECOND" => TimeUnitField::Second,
        "MILLISECOND" => TimeUnitField::Millisecond,
        "DOW" | "DAYOFWEEK" => TimeUnitField::DayOfWeek,
        "DOY" | "DAYOFYEAR" => TimeUnitField::DayOfYear,
        "EPOCH" => TimeUnitField::Epoch,
        _ => return None,
    })
}

/// True for the units DATE_TRUNC / FLOOR(.. TO ..) accept.
fn truncatable(u: TimeUnitField) -> bool {
    !matches!(
        u,
        TimeUnitField::DayOfWeek | TimeUnitField::DayOfYear | TimeUnitField::Epoch
    )
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// SQL type → Arrow type; DECIMAL/NUMERIC are approximated as DOUBLE for now, timestamps are millisecond precision.
pub fn sql_type_to_arrow(t: &ast::DataType, position: Position) -> Result<DataType> {
    use ast::DataType as S;
    Ok(match t {
        S::TinyInt(_) => DataType::Int8,
        S::SmallInt(_) | S::Int2(_) | S::Int16 => DataType::Int16,
        S::Int(_) | S::Integer(_) | S::Int4(_) | S::Int32 => DataType::Int32,
        S::BigInt(_) | S::Int8(_) | S::Int64 => DataType::Int64,
        // FLOAT(p) with more than 24 bits of precision is a DOUBLE in SQL.
        S::Float(ast::ExactNumberInfo::Precision(p))
        | S::Float(ast::ExactNumberInfo::PrecisionAndScale(p, _))
            if *p > 24 =>
        {
            DataType::Float64
        }
        S::Float(_) | S::Real | S::Float4 | S::Float32 => DataType::Float32,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 => DataType::Float64,
        S::Decimal(_) | S::Numeric(_) | S::Dec(_) | S::BigDecimal(_) | S::BigNumeric(_) => {
            DataType::Float64
        }
        S::Boolean | S::Bool => DataType::Boolean,
        S::String(_)
        | S::Varchar(_)
        | S::Nvarchar(_)
        | S::Char(_)
        | S::Character(_)
        | S::CharVarying(_)
        | S::CharacterVarying(_)
        | S::Text => DataType::Utf8,
        S::Timestamp(_, _) | S::TimestampNtz(_) | S::Datetime(_) => TS_MS,
        S::Date => DataType::Date32,
        S::Bytes(_) | S::Varbinary(_) | S::Binary(_) | S::Bytea | S::Blob(_) => DataType::Binary,
        S::Custom(name, _) => {
            let n = name.to_string().to_ascii_uppercase();
            match n.as_str() {
                "TIMESTAMP_LTZ" | "TIMESTAMP_NTZ" => TS_MS,
                "STRING" => DataType::Utf8,
                "BYTES" => DataType::Binary,
                _ => {
                    return Err(SqlError::plan(
                        format!("unsupported data type {t}"),
                        position,
                    ))
                }
            }
        }
        other => {
            return Err(SqlError::plan(
                format!("unsupported data type {other}"),
                position,
            ))
        }
    })
}

/// Flink SQL type name for an Arrow type (for DESCRIBE and messages).
pub fn flink_type_name(t: &DataType) -> String {
    let precision = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    match t {
        DataType::Null => "NULL".to_string(),
        DataType::Boolean => "BOOLEAN".to_string(),
        DataType::Int8 => "TINYINT".to_string(),
        DataType::Int16 | DataType::UInt8 => "SMALLINT".to_string(),
        DataType::Int32 | DataType::UInt16 => "INT".to_string(),
        DataType::Int64 | DataType::UInt32 => "BIGINT".to_string(),
        DataType::UInt64 => "DECIMAL(20, 0)".to_string(),
        DataType::Float16 | DataType::Float32 => "FLOAT".to_string(),
        DataType::Float64 => "DOUBLE".to_string(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".to_string(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".to_string(),
        DataType::FixedSizeBinary(n) => format!("BINARY({n})"),
        DataType::Date32 | DataType::Date64 => "DATE".to_string(),
        DataType::Time32(u) | DataType::Time64(u) => format!("TIME({})", precision(u)),
        DataType::Timestamp(u, None) => format!("TIMESTAMP({})", precision(u)),
        DataType::Timestamp(u, Some(_)) => format!("TIMESTAMP_LTZ({})", precision(u)),
        DataType::Duration(_) | DataType::Interval(IntervalUnit::DayTime) => {
            "INTERVAL DAY TO SECOND(3)".to_string()
        }
        DataType::Interval(IntervalUnit::YearMonth) => "INTERVAL YEAR TO MONTH".to_string(),
        DataType::Interval(IntervalUnit::MonthDayNano) => "INTERVAL".to_string(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("ARRAY<{}>", flink_type_name(f.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => match &kv[..] {
                [k, v] => format!(
                    "MAP<{}, {}>",
                    flink_type_name(k.data_type()),
                    flink_type_name(v.data_type())
                ),
                _ => "MAP".to_string(),
            },
            _ => "MAP".to_string(),
        },
        DataType::Struct(fields) => format!(
            "ROW<{}>",
            fields
                .iter()
                .map(|f| format!("`{}` {}", f.name(), flink_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string().to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
    };
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// 2026-01-01 00:00:00 UTC.
    const NEW_YEAR_2026: i64 = 1_767_225_600_000;
    const HOUR: i64 = 3_600_000;
    /// 2026-01-01 10:15:30.250 UTC.
    const ROW0_TS: i64 = NEW_YEAR_2026 + 10 * HOUR + 15 * 60_000 + 30_250;
    /// 2026-01-01 23:59:59.999 UTC.
    const ROW1_TS: i64 = NEW_YEAR_2026 + 24 * HOUR - 1;

    fn parse(sql: &str) -> std::result::Result<ast::Expr, sqlparser::parser::ParserError> {
        Parser::new(&GenericDialect {})
            .try_with_sql(sql)?
            .parse_expr()
    }

    fn column(name: &str, data_type: DataType) -> ScopeColumn {
        ScopeColumn {
            qualifier: Some("readings".to_string()),
            name: name.to_string(),
            data_type,
            nullable: true,
        }
    }

    fn scope() -> Scope {
        Scope::new(vec![
            column("ts", TS_MS),
            column("device_id", DataType::Utf8),
            column("temperature", DataType::Float64),
            column("reading", DataType::Int32),
            column("status", DataType::Utf8),
        ])
    }

    fn batch() -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(ROW0_TS),
                Some(ROW1_TS),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some("dev-1"),
                None,
                Some("sensor-22"),
            ])),
            Arc::new(Float64Array::from(vec![Some(212.0), Some(32.0), None])),
            Arc::new(Int32Array::from(vec![Some(5), Some(17), None])),
            Arc::new(StringArray::from(vec![
                Some("OK"),
                Some("error: overheat"),
                None,
            ])),
        ];
        RecordBatch::try_new(Arc::new(scope().schema()), columns)
    }

    fn bind_sql(sql: &str) -> std::result::Result<Bound, Box<dyn std::error::Error>> {
        Ok(bind_expr(&parse(sql)?, &scope())?)
    }

    /// Binds and evaluates `sql` on the test batch, one value per row.
    fn eval(sql: &str) -> std::result::Result<Vec<ScalarValue>, Box<dyn std::error::Error>> {
        let bound = bind_sql(sql)?;
        let out = bound.expr.evaluate(&batch()?)?;
        assert_eq!(out.data_type(), &bound.data_type, "type of {sql}");
        let values = (0..out.len())
            .map(|i| ScalarValue::try_from_array(out.as_ref(), i))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(values)
    }

    fn bind_err(sql: &str) -> std::result::Result<(String, Position), Box<dyn std::error::Error>> {
        match bind_expr(&parse(sql)?, &scope()) {
            Ok(b) => Err(format!("expected an error for {sql}, got {:?}", b.expr).into()),
            Err(SqlError::Plan { message, position }) => Ok((message, position)),
            Err(other) => Err(format!("expected a plan error for {sql}, got {other}").into()),
        }
    }

    fn s(v: &str) -> ScalarValue {
        ScalarValue::Utf8(v.to_string())
    }

    fn b(v: bool) -> ScalarValue {
        ScalarValue::Boolean(v)
    }

    const NULL: ScalarValue = ScalarValue::Null;

    #[test]
    fn bind_expr_arithmetic_on_columns() -> TestResult {
        assert_eq!(
            eval("(temperature - 32) * 5 / 9")?,
            vec![ScalarValue::Float64(100.0), ScalarValue::Float64(0.0), NULL]
        );
        let i = ScalarValue::Int32;
        assert_eq!(eval("reading % 4")?, vec![i(1), i(1), NULL]);
        assert_eq!(eval("-reading")?, vec![i(-5), i(-17), NULL]);
        assert_eq!(eval("+reading * 2")?, vec![i(10), i(34), NULL]);
        assert_eq!(
            eval("reading + 10000000000")?,
            vec![
                ScalarValue::Int64(10_000_000_005),
                ScalarValue::Int64(10_000_000_017),
                NULL
            ]
        );
        let bound = bind_sql("reading + 1")?;
        assert_eq!((bound.data_type, bound.nullable), (DataType::Int32, true));
        Ok(())
    }

    #[test]
    fn bind_expr_literals() -> TestResult {
        let lit = |sql: &str| -> std::result::Result<(ScalarValue, DataType), Box<dyn std::error::Error>> {
            let bound = bind_sql(sql)?;
            match bound.expr {
                Expr::Literal(v) => Ok((v, bound.data_type)),
                other => Err(format!("{sql} bound to {other:?}").into()),
            }
        };
        assert_eq!(
            lit("2147483647")?,
            (ScalarValue::Int32(i32::MAX), DataType::Int32)
        );
        assert_eq!(
            lit("2147483648")?,
            (ScalarValue::Int64(2_147_483_648), DataType::Int64)
        );
        assert_eq!(
            lit("-2147483648")?,
            (ScalarValue::Int32(i32::MIN), DataType::Int32)
        );
        assert_eq!(lit("1.5")?, (ScalarValue::Float64(1.5), DataType::Float64));
        assert_eq!(
            lit("1e3")?,
            (ScalarValue::Float64(1000.0), DataType::Float64)
        );
        assert_eq!(lit("'abc'")?, (s("abc"), DataType::Utf8));
        assert_eq!(lit("TRUE")?, (b(true), DataType::Boolean));
        assert_eq!(lit("NULL")?, (NULL, DataType::Null));
        assert_eq!(
            lit("DATE '2026-01-02'")?,
            (ScalarValue::Date32(20_455), DataType::Date32)
        );
        assert_eq!(
            lit("TIMESTAMP '2026-01-01 10:15:30.250'")?,
            (ScalarValue::TimestampMillis(ROW0_TS), TS_MS)
        );
        assert_eq!(
            lit("TIMESTAMP '2024-02-29T00:00:00'")?.0,
            ScalarValue::TimestampMillis(1_709_164_800_000)
        );
        assert_eq!(
            lit("TIMESTAMP '1969-12-31 23:59:59.999'")?.0,
            ScalarValue::TimestampMillis(-1)
        );
        assert_eq!(
            lit("INTERVAL '10' MINUTES")?,
            (ScalarValue::IntervalMillis(600_000), INTERVAL_MS)
        );
        assert_eq!(
            lit("INTERVAL '2' YEAR")?,
            (ScalarValue::IntervalMonths(24), INTERVAL_MONTHS)
        );
        assert_eq!(
            lit("-INTERVAL '1' SECOND")?.0,
            ScalarValue::IntervalMillis(-1_000)
        );
        let (m, p) = bind_err("TIMESTAMP '2026-02-30 00:00:00'")?;
        assert!(m.contains("invalid TIMESTAMP literal"), "{m}");
        assert_eq!(p, Position::new(1, 11));
        Ok(())
    }

    #[test]
    fn bind_expr_case_forms_and_null_branches() -> TestResult {
        assert_eq!(
            eval("CASE WHEN reading > 10 THEN 'high' WHEN reading > 0 THEN 'low' ELSE 'none' END")?,
            vec![s("low"), s("high"), s("none")]
        );
        let i = ScalarValue::Int32;
        assert_eq!(
            eval("CASE status WHEN 'OK' THEN 1 WHEN 'WARN' THEN 2 ELSE 0 END")?,
            vec![i(1), i(0), i(0)]
        );
        let bound = bind_sql("CASE WHEN reading > 10 THEN NULL ELSE reading END")?;
        assert_eq!(bound.data_type, DataType::Int32);
        assert_eq!(
            eval("CASE WHEN reading > 10 THEN NULL ELSE reading END")?,
            vec![i(5), NULL, NULL]
        );
        assert_eq!(
            eval("CASE WHEN reading IS NULL THEN NULL ELSE 'x' END")?,
            vec![s("x"), s("x"), NULL]
        );
        assert_eq!(
            eval("CASE WHEN reading = 5 THEN 'five' END")?,
            vec![s("five"), NULL, NULL]
        );
        Ok(())
    }

    #[test]
    fn bind_expr_in_between_and_boolean_predicates() -> TestResult {
        assert_eq!(eval("reading IN (5, NULL)")?, vec![b(true), NULL, NULL]);
        assert_eq!(eval("reading NOT IN (1, 2)")?, vec![b(true), b(true), NULL]);
        assert_eq!(
            eval("status IN ('OK', 'WARN')")?,
            vec![b(true), b(false), NULL]
        );
        assert_eq!(
            eval("reading BETWEEN 1 AND 10")?,
            vec![b(true), b(false), NULL]
        );
        assert_eq!(
            eval("reading NOT BETWEEN 1 AND 10")?,
            vec![b(false), b(true), NULL]
        );
        assert_eq!(eval("reading IS NULL")?, vec![b(false), b(false), b(true)]);
        assert_eq!(
            eval("device_id IS NOT NULL")?,
            vec![b(true), b(false), b(true)]
        );
        assert_eq!(
            eval("(reading > 10) IS TRUE")?,
            vec![b(false), b(true), b(false)]
        );
        assert_eq!(
            eval("(reading > 10) IS NOT TRUE")?,
            vec![b(true), b(false), b(true)]
        );
        assert_eq!(
            eval("(reading > 10) IS FALSE")?,
            vec![b(true), b(false), b(false)]
        );
        assert_eq!(
            eval("(reading > 10) IS NOT FALSE")?,
            vec![b(false), b(true), b(true)]
        );
        assert!(!bind_sql("(reading > 10) IS TRUE")?.nullable);
        assert_eq!(eval("NOT (reading > 10)")?, vec![b(true), b(false), NULL]);
        assert_eq!(
            eval("reading > 1 AND status = 'OK' OR device_id = 'sensor-22'")?,
            vec![b(true), NULL, b(true)]
        );
        assert_eq!(eval("reading <> 5")?, vec![b(false), b(true), NULL]);
        assert_eq!(eval("reading != 5")?, vec![b(false), b(true), NULL]);
        assert_eq!(
            eval("device_id IS DISTINCT FROM 'dev-1'")?,
            vec![b(false), b(true), b(true)]
        );
        assert_eq!(
            eval("device_id IS NOT DISTINCT FROM NULL")?,
            vec![b(false), b(true), b(false)]
        );
        assert_eq!(eval("NULL = reading")?, vec![NULL, NULL, NULL]);
        Ok(())
    }

    #[test]
    fn bind_expr_like_and_ilike() -> TestResult {
        assert_eq!(eval("status LIKE 'error%'")?, vec![b(false), b(true), NULL]);
        assert_eq!(
            eval("status NOT LIKE 'error%'")?,
            vec![b(true), b(false), NULL]
        );
        assert_eq!(
            eval("device_id LIKE 'dev-_'")?,
            vec![b(true), NULL, b(false)]
        );
        assert_eq!(
            eval("device_id ILIKE 'DEV-%'")?,
            vec![b(true), NULL, b(false)]
        );
        let (m, p) = bind_err("status LIKE 'a!%' ESCAPE '!'")?;
        assert!(m.contains("ESCAPE is not supported"), "{m}");
        assert_eq!(p, Position::new(1, 26));
        Ok(())
    }

    #[test]
    fn bind_expr_casts() -> TestResult {
        assert_eq!(eval("CAST('12' AS INT)")?, vec![ScalarValue::Int32(12); 3]);
        assert_eq!(eval("TRY_CAST('x' AS INT)")?, vec![NULL; 3]);
        assert!(bind_sql("TRY_CAST('x' AS INT)")?.nullable);
        assert_eq!(
            eval("CAST(reading AS STRING)")?,
            vec![s("5"), s("17"), NULL]
        );
        assert_eq!(
            bind_sql("CAST(reading AS BIGINT)")?.data_type,
            DataType::Int64
        );
        assert_eq!(bind_sql("reading::DOUBLE")?.data_type, DataType::Float64);
        assert_eq!(
            eval("CAST('2026-01-01 10:15:30.250' AS TIMESTAMP(3))")?,
            vec![ScalarValue::TimestampMillis(ROW0_TS); 3]
        );
        let (m, _) = bind_err("CAST(reading AS JSON)")?;
        assert!(m.contains("unsupported data type JSON"), "{m}");
        Ok(())
    }

    #[test]
    fn bind_expr_time_functions() -> TestResult {
        let i = ScalarValue::Int64;
        assert_eq!(eval("EXTRACT(HOUR FROM ts)")?, vec![i(10), i(23), NULL]);
        assert_eq!(eval("EXTRACT(MINUTE FROM ts)")?, vec![i(15), i(59), NULL]);
        assert_eq!(eval("EXTRACT(YEAR FROM ts)")?, vec![i(2026), i(2026), NULL]);
        let t = ScalarValue::TimestampMillis;
        assert_eq!(
            eval("FLOOR(ts TO HOUR)")?,
            vec![
                t(NEW_YEAR_2026 + 10 * HOUR),
                t(NEW_YEAR_2026 + 23 * HOUR),
                NULL
            ]
        );
        assert_eq!(
            eval("DATE_TRUNC('day', ts)")?,
            vec![t(NEW_YEAR_2026), t(NEW_YEAR_2026), NULL]
        );
        assert_eq!(
            eval("ts + INTERVAL '5' SECOND")?,
            vec![t(ROW0_TS + 5_000), t(ROW1_TS + 5_000), NULL]
        );
        assert_eq!(
            eval("ts - INTERVAL '1' HOUR")?,
            vec![t(ROW0_TS - HOUR), t(ROW1_TS - HOUR), NULL]
        );
        assert_eq!(bind_sql("ts + INTERVAL '1' MONTH")?.data_type, TS_MS);
        assert_eq!(
            eval("ts > TIMESTAMP '2026-01-01 12:00:00'")?,
            vec![b(false), b(true), NULL]
        );
        assert_eq!(
            eval("ts = TIMESTAMP '2026-01-01 10:15:30.250'")?,
            vec![b(true), b(false), NULL]
        );
        let (m, _) = bind_err("DATE_TRUNC('fortnight', ts)")?;
        assert!(m.contains("does not support the unit 'fortnight'"), "{m}");
        let (m, _) = bind_err("EXTRACT(HOUR FROM status)")?;
        assert!(m.contains("STRING"), "{m}");
        Ok(())
    }

    #[test]
    fn bind_expr_coalesce_nullif_if() -> TestResult {
        assert_eq!(
            eval("COALESCE(device_id, 'unknown')")?,
            vec![s("dev-1"), s("unknown"), s("sensor-22")]
        );
        assert!(!bind_sql("COALESCE(device_id, 'unknown')")?.nullable);
        let bound = bind_sql("COALESCE(NULL, reading)")?;
        assert_eq!(bound.data_type, DataType::Int32);
        let i = ScalarValue::Int32;
        assert_eq!(eval("NULLIF(reading, 5)")?, vec![NULL, i(17), NULL]);
        assert_eq!(
            eval("IF(reading > 10, 'big', 'small')")?,
            vec![s("small"), s("big"), s("small")]
        );
        assert_eq!(
            eval("IF(reading > 10, NULL, reading)")?,
            vec![i(5), NULL, NULL]
        );
        let (m, _) = bind_err("IF(reading, 1, 2)")?;
        assert!(m.contains("IF expects a BOOLEAN operand, got INT"), "{m}");
        let (m, _) = bind_err("NULLIF(reading)")?;
        assert!(m.contains("NULLIF expects 2 arguments"), "{m}");
        Ok(())
    }

    #[test]
    fn bind_expr_string_functions() -> TestResult {
        assert_eq!(
            eval("SUBSTRING(device_id FROM 2 FOR 3)")?,
            vec![s("ev-"), NULL, s("ens")]
        );
        assert_eq!(eval("SUBSTR(status, 1, 2)")?, vec![s("OK"), s("er"), NULL]);
        assert_eq!(
            eval("UPPER(device_id)")?,
            vec![s("DEV-1"), NULL, s("SENSOR-22")]
        );
        assert_eq!(
            eval("lower(status)")?,
            vec![s("ok"), s("error: overheat"), NULL]
        );
        let i = ScalarValue::Int32;
        assert_eq!(eval("CHAR_LENGTH(device_id)")?, vec![i(5), NULL, i(9)]);
        assert_eq!(eval("CHARACTER_LENGTH(status)")?, vec![i(2), i(15), NULL]);
        assert_eq!(eval("TRIM(BOTH 'x' FROM 'xxhixx')")?, vec![s("hi"); 3]);
        assert_eq!(eval("TRIM('  hi  ')")?, vec![s("hi"); 3]);
        assert_eq!(eval("LTRIM('  hi  ')")?, vec![s("hi  "); 3]);
        assert_eq!(eval("TRIM(TRAILING 'x' FROM 'xhix')")?, vec![s("xhi"); 3]);
        assert_eq!(
            eval("CONCAT(device_id, '/', status)")?,
            vec![s("dev-1/OK"), NULL, NULL]
        );
        assert_eq!(
            eval("device_id || '!'")?,
            vec![s("dev-1!"), NULL, s("sensor-22!")]
        );
        assert_eq!(
            eval("REGEXP_REPLACE(device_id, '[0-9]+', '#')")?,
            vec![s("dev-#"), NULL, s("sensor-#")]
        );
        Ok(())
    }

    #[test]
    fn bind_expr_math_functions() -> TestResult {
        let f = ScalarValue::Float64;
        assert_eq!(eval("ABS(-3)")?, vec![ScalarValue::Int32(3); 3]);
        assert_eq!(eval("MOD(17, 5)")?, vec![ScalarValue::Int32(2); 3]);
        assert_eq!(
            eval("ROUND(temperature / 7, 2)")?,
            vec![f(30.29), f(4.57), NULL]
        );
        assert_eq!(eval("CEIL(1.2)")?, vec![f(2.0); 3]);
        assert_eq!(eval("CEILING(1.2)")?, vec![f(2.0); 3]);
        assert_eq!(
            eval("FLOOR(temperature / 100)")?,
            vec![f(2.0), f(0.0), NULL]
        );
        Ok(())
    }

    #[test]
    fn bind_expr_unknown_column_reports_position_and_choices() -> TestResult {
        let (m, p) = bind_err("reading +\n  tmp")?;
        assert_eq!(
            m,
            "unknown column 'tmp'; available columns: ts, device_id, temperature, reading, status"
        );
        assert_eq!(p, Position::new(2, 3));
        let (m, p) = bind_err("readings.nope")?;
        assert!(m.starts_with("unknown column 'readings.nope'"), "{m}");
        assert_eq!(p, Position::new(1, 1));
        // a long scope lists only the first ten names
        let wide = Scope::new(
            (0..15)
                .map(|i| column(&format!("c{i}"), DataType::Int32))
                .collect(),
        );
        let Err(SqlError::Plan { message, .. }) = bind_expr(&parse("x")?, &wide) else {
            return Err("expected an unknown column error".into());
        };
        assert!(message.ends_with("c8, c9, … (5 more)"), "{message}");
        Ok(())
    }

    #[test]
    fn bind_expr_qualified_and_ambiguous_columns() -> TestResult {
        let col = |q: &str, n: &str| ScopeColumn {
            qualifier: Some(q.to_string()),
            name: n.to_string(),
            data_type: DataType::Int32,
            nullable: false,
        };
        let joined = Scope::new(vec![col("a", "id"), col("b", "ID"), col("b", "x")]);
        let resolve =
            |sql: &str| -> std::result::Result<Result<usize>, Box<dyn std::error::Error>> {
                Ok(match parse(sql)? {
                    ast::Expr::Identifier(i) => joined.resolve(&[i]),
                    ast::Expr::CompoundIdentifier(is) => joined.resolve(&is),
                    other => return Err(format!("not an identifier: {other}").into()),
                })
            };
        assert_eq!(resolve("a.id")??, 0);
        assert_eq!(resolve("B.Id")??, 1);
        assert_eq!(resolve("X")??, 2);
        assert_eq!(resolve("cat.db.b.x")??, 2);
        match resolve("  id")? {
            Err(SqlError::Plan { message, position }) => {
                assert!(message.contains("column 'id' is ambiguous"), "{message}");
                assert!(message.contains("a, b"), "{message}");
                assert_eq!(position, Position::new(1, 3));
            }
            other => return Err(format!("expected ambiguity, got {other:?}").into()),
        }
        assert!(matches!(resolve("c.id")?, Err(SqlError::Plan { .. })));
        let bound = bind_expr(&parse("a.id + b.x")?, &joined)?;
        assert_eq!(
            bound.expr,
            runnel_engine::expr::binary(Expr::Column(0), BinaryOp::Plus, Expr::Column(2))
        );
        assert!(!bound.nullable);
        Ok(())
    }

    #[test]
    fn bind_expr_type_mismatch_reports_position() -> TestResult {
        let (m, p) = bind_err("reading > 0 AND\n   status = 5")?;
        assert!(m.starts_with("cannot compare STRING and INT"), "{m}");
        assert_eq!(p, Position::new(2, 4));
        let (m, p) = bind_err("1 + (status * 2)")?;
        assert_eq!(m, "cannot apply '*' to STRING and INT");
        assert_eq!(p, Position::new(1, 6));
        let (m, _) = bind_err("reading AND TRUE")?;
        assert_eq!(m, "AND expects BOOLEAN operands, got INT and BOOLEAN");
        let (m, p) = bind_err("x + UPPER(reading)")?;
        assert!(m.starts_with("unknown column 'x'"), "{m}");
        assert_eq!(p, Position::new(1, 1));
        let (m, p) = bind_err("reading + UPPER(reading)")?;
        assert!(m.contains("UPPER") && m.contains("INT"), "{m}");
        assert_eq!(p, Position::new(1, 11));
        let (m, _) = bind_err("UPPER(ts)")?;
        assert_eq!(m, "argument 1 of UPPER must be a string, got TIMESTAMP(3)");
        let (m, _) = bind_err("CASE WHEN reading > 1 THEN 'a' ELSE 1 END")?;
        assert!(m.contains("STRING and INT"), "{m}");
        Ok(())
    }

    #[test]
    fn bind_expr_rejects_aggregates_windows_and_proctime() -> TestResult {
        let (m, p) = bind_err("1 + COUNT(*)")?;
        assert_eq!(m, "aggregate function COUNT is not allowed here");
        assert_eq!(p, Position::new(1, 5));
        let (m, _) = bind_err("sum(reading)")?;
        assert_eq!(m, "aggregate function SUM is not allowed here");
        let (m, _) = bind_err("SUM(reading) OVER (PARTITION BY device_id)")?;
        assert_eq!(m, "OVER windows are not supported yet");
        let (m, _) = bind_err("PROCTIME()")?;
        assert!(m.starts_with("PROCTIME() is only allowed"), "{m}");
        Ok(())
    }

    #[test]
    fn bind_expr_unknown_function_lists_choices() -> TestResult {
        let (m, p) = bind_err("reading + \n FOO(1)")?;
        assert!(
            m.starts_with("unknown function 'FOO'; supported functions: "),
            "{m}"
        );
        assert!(
            m.contains("REGEXP_REPLACE") && m.contains("COALESCE"),
            "{m}"
        );
        assert_eq!(p, Position::new(2, 2));
        Ok(())
    }

    #[test]
    fn bind_expr_with_substitutes_aggregates() -> TestResult {
        // The aggregate's output: the group key and COUNT(*) as column 1.
        let agg_scope = Scope::new(vec![
            ScopeColumn {
                qualifier: None,
                name: "device_id".into(),
                data_type: DataType::Utf8,
                nullable: true,
            },
            ScopeColumn {
                qualifier: None,
                name: "$agg0".into(),
                data_type: DataType::Int64,
                nullable: false,
            },
        ]);
        let mut calls = 0;
        let mut sub = |e: &ast::Expr| -> Option<Result<Bound>> {
            match e {
                ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("count") => {
                    calls += 1;
                    Some(Ok(Bound {
                        expr: Expr::Column(1),
                        data_type: DataType::Int64,
                        nullable: false,
                    }))
                }
                _ => None,
            }
        };
        let bound = bind_expr_with(&parse("COUNT(*) * 2 + 1")?, &agg_scope, &mut sub)?;
        assert_eq!(calls, 1);
        assert_eq!(bound.data_type, DataType::Int64);
        let out_batch = RecordBatch::try_new(
            Arc::new(agg_scope.schema()),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(arrow::array::Int64Array::from(vec![3, 10])),
            ],
        )?;
        let out = bound.expr.evaluate(&out_batch)?;
        assert_eq!(
            ScalarValue::try_from_array(out.as_ref(), 1)?,
            ScalarValue::Int64(21)
        );
        Ok(())
    }

    #[test]
    fn bind_expr_interval_millis_units() -> TestResult {
        let ms = |sql: &str| -> std::result::Result<i64, Box<dyn std::error::Error>> {
            Ok(interval_millis(&parse(sql)?)?)
        };
        assert_eq!(ms("INTERVAL '5' SECOND")?, 5_000);
        assert_eq!(ms("INTERVAL '5' SECONDS")?, 5_000);
        assert_eq!(ms("INTERVAL '1' HOUR")?, 3_600_000);
        assert_eq!(ms("INTERVAL '10' MINUTES")?, 600_000);
        assert_eq!(ms("INTERVAL '2' DAY")?, 172_800_000);
        assert_eq!(ms("INTERVAL '1.5' SECOND")?, 1_500);
        assert_eq!(ms("INTERVAL '250' MILLISECOND")?, 250);
        assert_eq!(ms("INTERVAL '-3' SECOND")?, -3_000);
        assert_eq!(ms("INTERVAL '1:30' MINUTE TO SECOND")?, 90_000);
        assert_eq!(ms("INTERVAL '2:15' HOUR TO MINUTE")?, 8_100_000);
        assert_eq!(ms("INTERVAL '1 02:03:04.5' DAY TO SECOND")?, 93_784_500);
        assert_eq!(ms("INTERVAL '5 seconds'")?, 5_000);
        assert_eq!(ms("(INTERVAL '1' MINUTE)")?, 60_000);
        let err = |sql: &str| -> std::result::Result<String, Box<dyn std::error::Error>> {
            match interval_millis(&parse(sql)?) {
                Err(SqlError::Plan { message, position }) => {
                    assert!(!position.is_unknown(), "{sql}");
                    Ok(message)
                }
                other => Err(format!("expected an error for {sql}, got {other:?}").into()),
            }
        };
        assert!(err("INTERVAL '1' MONTH")?.contains("month and year intervals are not allowed"));
        assert!(err("INTERVAL '1' YEAR")?.contains("month and year"));
        assert!(err("INTERVAL '1:75' MINUTE TO SECOND")?.contains("does not match"));
        assert!(err("INTERVAL 'abc' SECOND")?.contains("invalid INTERVAL literal"));
        assert!(err("5")?.contains("expected an INTERVAL literal"));
        Ok(())
    }

    #[test]
    fn bind_expr_sql_type_to_arrow_each_type() -> TestResult {
        let cases = [
            ("INT", DataType::Int32),
            ("INTEGER", DataType::Int32),
            ("BIGINT", DataType::Int64),
            ("SMALLINT", DataType::Int16),
            ("TINYINT", DataType::Int8),
            ("FLOAT", DataType::Float32),
            ("REAL", DataType::Float32),
            ("DOUBLE", DataType::Float64),
            ("DOUBLE PRECISION", DataType::Float64),
            ("DECIMAL(10, 2)", DataType::Float64),
            ("NUMERIC(5)", DataType::Float64),
            ("BOOLEAN", DataType::Boolean),
            ("STRING", DataType::Utf8),
            ("VARCHAR(20)", DataType::Utf8),
            ("CHAR(3)", DataType::Utf8),
            ("TEXT", DataType::Utf8),
            ("TIMESTAMP", TS_MS),
            ("TIMESTAMP(3)", TS_MS),
            ("TIMESTAMP_LTZ(3)", TS_MS),
            ("DATE", DataType::Date32),
            ("BYTES", DataType::Binary),
            ("VARBINARY", DataType::Binary),
        ];
        for (name, expected) in cases {
            let ast::Expr::Cast { data_type, .. } = parse(&format!("CAST(x AS {name})"))? else {
                return Err(format!("{name} did not parse as a CAST").into());
            };
            assert_eq!(
                sql_type_to_arrow(&data_type, Position::new(1, 1))?,
                expected,
                "{name}"
            );
        }
        let ast::Expr::Cast { data_type, .. } = parse("CAST(x AS JSON)")? else {
            return Err("JSON did not parse as a CAST".into());
        };
        match sql_type_to_arrow(&data_type, Position::new(3, 4)) {
            Err(SqlError::Plan { message, position }) => {
                assert_eq!(message, "unsupported data type JSON");
                assert_eq!(position, Position::new(3, 4));
            }
            other => return Err(format!("expected an error, got {other:?}").into()),
        }
        Ok(())
    }

    #[test]
    fn bind_expr_flink_type_names() {
        let cases = [
            (DataType::Int32, "INT"),
            (DataType::Int64, "BIGINT"),
            (DataType::Int16, "SMALLINT"),
            (DataType::Int8, "TINYINT"),
            (DataType::Float32, "FLOAT"),
            (DataType::Float64, "DOUBLE"),
            (DataType::Utf8, "STRING"),
            (DataType::Boolean, "BOOLEAN"),
            (DataType::Date32, "DATE"),
            (DataType::Binary, "BYTES"),
            (TS_MS, "TIMESTAMP(3)"),
            (
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                "TIMESTAMP_LTZ(3)",
            ),
            (INTERVAL_MS, "INTERVAL DAY TO SECOND(3)"),
            (INTERVAL_MONTHS, "INTERVAL YEAR TO MONTH"),
            (DataType::Decimal128(10, 2), "DECIMAL(10, 2)"),
            (DataType::Null, "NULL"),
        ];
        for (t, name) in cases {
            assert_eq!(flink_type_name(&t), name, "{t}");
        }
    }

    #[test]
    fn bind_expr_aggregate_names() {
        for name in [
            "count",
            "SUM",
            "Avg",
            "min",
            "MAX",
            "first_value",
            "LAST_VALUE",
            "stddev_pop",
            "VAR_SAMP",
        ] {
            assert!(is_aggregate_name(name), "{name}");
        }
        for name in ["LOWER", "COUNTS", "", "ROUND"] {
            assert!(!is_aggregate_name(name), "{name}");
        }
    }

    #[test]
    fn bind_expr_date_arithmetic_helpers() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 1, 1) * 86_400_000, NEW_YEAR_2026);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(parse_date_days("2024-02-29"), Some(19_782));
        assert_eq!(parse_date_days("2023-02-29"), None);
        assert_eq!(parse_date_days("2026-13-01"), None);
        assert_eq!(
            parse_timestamp_millis("2026-01-01 10:15:30.25"),
            Some(ROW0_TS)
        );
        assert_eq!(
            parse_timestamp_millis("2026-01-01 10:15:30.250999"),
            Some(ROW0_TS)
        );
        assert_eq!(parse_timestamp_millis("2026-01-01"), Some(NEW_YEAR_2026));
        assert_eq!(parse_timestamp_millis("2026-01-01 24:00:00"), None);
        assert_eq!(parse_timestamp_millis("2026-01-01 10:15:30."), None);
    }
}
