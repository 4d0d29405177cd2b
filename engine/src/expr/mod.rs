//! Scalar expressions evaluated on Arrow record batches.
//!
//! An [`Expr`] is typed against an input [`Schema`] with
//! [`Expr::data_type`] (type errors are [`EngineError::Plan`]) and evaluated
//! on a whole batch with [`Expr::evaluate`] (errors caused by the values,
//! such as overflow, are [`EngineError::Execution`]).
//!
//! # Representation choices
//!
//! * Timestamps are `Timestamp(Millisecond, None)` (Flink `TIMESTAMP(3)`);
//!   other units are converted to milliseconds when they meet an operator.
//! * A day-time interval ([`ScalarValue::IntervalMillis`]) is an Arrow
//!   `Duration(Millisecond)`: Arrow adds it to millisecond timestamps
//!   exactly, and `timestamp - timestamp` yields the same type, so the
//!   difference of two timestamps is an interval in milliseconds.
//! * A year-month interval ([`ScalarValue::IntervalMonths`]) is an Arrow
//!   `Interval(YearMonth)`; adding it to a timestamp moves the calendar
//!   month and clamps the day (Jan 31 + 1 month = Feb 28/29).
//! * Division and modulo by zero fail with "division by zero" for integers
//!   and floats alike; integer overflow fails with "numeric overflow".
//! * AND, OR, CASE and COALESCE evaluate their later operands only on the
//!   rows that still need them, so `b <> 0 AND a / b > 1` and
//!   `CASE WHEN b = 0 THEN 0 ELSE a / b END` do not fail on `b = 0`.

mod coercion;
mod display;
mod functions;
mod kernels;
mod temporal;

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    new_empty_array, new_null_array, Array, ArrayRef, AsArray, BooleanArray, Date32Array,
    DurationMillisecondArray, Float64Array, Int32Array, Int64Array, IntervalYearMonthArray,
    RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::kernels::{boolean, interleave::interleave};
use arrow::compute::{can_cast_types, filter, filter_record_batch, prep_null_mask_filter, take};
use arrow::datatypes::{DataType, Schema};

use crate::error::Result;
use crate::{internal_err, plan_err};

pub use coercion::{INTERVAL_MONTHS, INTERVAL_MS, TS_MS};

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// A single typed value: a literal, or one cell of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarValue {
    /// SQL NULL of no particular type.
    Null,
    /// BOOLEAN.
    Boolean(bool),
    /// INT.
    Int32(i32),
    /// BIGINT.
    Int64(i64),
    /// DOUBLE.
    Float64(f64),
    /// STRING.
    Utf8(String),
    /// DATE, days since 1970-01-01.
    Date32(i32),
    /// TIMESTAMP(3), milliseconds since the epoch.
    TimestampMillis(i64),
    /// A day-time interval in milliseconds (Arrow `Duration(Millisecond)`).
    IntervalMillis(i64),
    /// A year-month interval in months (Arrow `Interval(YearMonth)`).
    IntervalMonths(i32),
}

impl ScalarValue {
    /// The Arrow type of the value.
    pub fn data_type(&self) -> DataType {
        match self {
            ScalarValue::Null => DataType::Null,
            ScalarValue::Boolean(_) => DataType::Boolean,
            ScalarValue::Int32(_) => DataType::Int32,
            ScalarValue::Int64(_) => DataType::Int64,
            ScalarValue::Float64(_) => DataType::Float64,
            ScalarValue::Utf8(_) => DataType::Utf8,
            ScalarValue::Date32(_) => DataType::Date32,
            ScalarValue::TimestampMillis(_) => TS_MS,
            ScalarValue::IntervalMillis(_) => INTERVAL_MS,
            ScalarValue::IntervalMonths(_) => INTERVAL_MONTHS,
        }
    }

    /// True for [`ScalarValue::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, ScalarValue::Null)
    }

    /// An array repeating the value `len` times.
    pub fn to_array(&self, len: usize) -> Result<ArrayRef> {
        Ok(match self {
            ScalarValue::Null => new_null_array(&DataType::Null, len),
            ScalarValue::Boolean(v) => Arc::new(BooleanArray::from(vec![*v; len])),
            ScalarValue::Int32(v) => Arc::new(Int32Array::from_value(*v, len)),
            ScalarValue::Int64(v) => Arc::new(Int64Array::from_value(*v, len)),
            ScalarValue::Float64(v) => Arc::new(Float64Array::from_value(*v, len)),
            ScalarValue::Utf8(v) => {
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(v, len)))
            }
            ScalarValue::Date32(v) => Arc::new(Date32Array::from_value(*v, len)),
            ScalarValue::TimestampMillis(v) => {
                Arc::new(TimestampMillisecondArray::from_value(*v, len))
            }
            ScalarValue::IntervalMillis(v) => {
                Arc::new(DurationMillisecondArray::from_value(*v, len))
            }
            ScalarValue::IntervalMonths(v) => Arc::new(IntervalYearMonthArray::from_value(*v, len)),
        })
    }

    /// Reads row `i` of `array` (types without a variant are an error).
    pub fn try_from_array(array: &dyn Array, i: usize) -> Result<Self> {
        if i >= array.len() {
            internal_err!("row {i} out of bounds for an array of {} rows", array.len());
        }
        if !kernels::is_valid_at(array, i) {
            return Ok(ScalarValue::Null);
        }
        use arrow::datatypes::*;
        Ok(match array.data_type() {
            DataType::Boolean => ScalarValue::Boolean(array.as_boolean().value(i)),
            DataType::Int32 => ScalarValue::Int32(array.as_primitive::<Int32Type>().value(i)),
            DataType::Int64 => ScalarValue::Int64(array.as_primitive::<Int64Type>().value(i)),
            DataType::Float64 => ScalarValue::Float64(array.as_primitive::<Float64Type>().value(i)),
            DataType::Utf8 => ScalarValue::Utf8(array.as_string::<i32>().value(i).to_string()),
            DataType::Date32 => ScalarValue::Date32(array.as_primitive::<Date32Type>().value(i)),
            DataType::Timestamp(TimeUnit::Millisecond, None) => ScalarValue::TimestampMillis(
                array.as_primitive::<TimestampMillisecondType>().value(i),
            ),
            DataType::Duration(TimeUnit::Millisecond) => ScalarValue::IntervalMillis(
                array.as_primitive::<DurationMillisecondType>().value(i),
            ),
            DataType::Interval(IntervalUnit::YearMonth) => {
                ScalarValue::IntervalMonths(array.as_primitive::<IntervalYearMonthType>().value(i))
            }
            other => internal_err!("no scalar value for type {other}"),
        })
    }
}

impl From<bool> for ScalarValue {
    fn from(v: bool) -> Self {
        ScalarValue::Boolean(v)
    }
}

impl From<i32> for ScalarValue {
    fn from(v: i32) -> Self {
        ScalarValue::Int32(v)
    }
}

impl From<i64> for ScalarValue {
    fn from(v: i64) -> Self {
        ScalarValue::Int64(v)
    }
}

impl From<f64> for ScalarValue {
    fn from(v: f64) -> Self {
        ScalarValue::Float64(v)
    }
}

impl From<&str> for ScalarValue {
    fn from(v: &str) -> Self {
        ScalarValue::Utf8(v.to_string())
    }
}

impl From<String> for ScalarValue {
    fn from(v: String) -> Self {
        ScalarValue::Utf8(v)
    }
}

impl<T: Into<ScalarValue>> From<Option<T>> for ScalarValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(ScalarValue::Null, Into::into)
    }
}

/// An evaluated operand: a full column, or one value standing for every row
/// (kept as a one-row array so kernels can broadcast it without copying).
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// One value per row.
    Array(ArrayRef),
    /// One value for all rows.
    Scalar(ArrayRef),
}

impl Value {
    fn is_scalar(&self) -> bool {
        matches!(self, Value::Scalar(_))
    }

    fn array(&self) -> &ArrayRef {
        match self {
            Value::Array(a) | Value::Scalar(a) => a,
        }
    }

    fn data_type(&self) -> &DataType {
        self.array().data_type()
    }

    fn len(&self) -> usize {
        self.array().len()
    }

    /// Expands to `n` rows.
    fn into_array(self, n: usize) -> Result<ArrayRef> {
        match self {
            Value::Array(a) if a.len() == n => Ok(a),
            Value::Array(a) => {
                internal_err!("expression produced {} rows for a batch of {n}", a.len())
            }
            Value::Scalar(a) if a.len() == n => Ok(a),
            Value::Scalar(a) if a.data_type() == &DataType::Null => {
                Ok(new_null_array(&DataType::Null, n))
            }
            Value::Scalar(a) => {
                let Ok(zeros) = u32::try_from(n).map(|_| UInt32Array::from(vec![0u32; n])) else {
                    internal_err!("batch of {n} rows is too large");
                };
                Ok(take(a.as_ref(), &zeros, None)?)
            }
        }
    }

    fn map(self, f: impl FnOnce(&ArrayRef) -> Result<ArrayRef>) -> Result<Value> {
        Ok(match self {
            Value::Array(a) => Value::Array(f(&a)?),
            Value::Scalar(a) => Value::Scalar(f(&a)?),
        })
    }
}

// ---------------------------------------------------------------------------
// Operators and functions
// ---------------------------------------------------------------------------

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Multiply,
    /// `/` (integer division truncates toward zero)
    Divide,
    /// `%`
    Modulo,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND` (three-valued)
    And,
    /// `OR` (three-valued)
    Or,
    /// `||` string concatenation
    StringConcat,
}

impl BinaryOp {
    /// True for `=`, `<>`, `<`, `<=`, `>`, `>=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Plus => "+",
            BinaryOp::Minus => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::StringConcat => "||",
        })
    }
}

/// A part of a date or time, for EXTRACT and DATE_TRUNC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnitField {
    /// Calendar year.
    Year,
    /// Quarter of the year, 1–4.
    Quarter,
    /// Month, 1–12.
    Month,
    /// ISO week, 1–53 (weeks start on Monday).
    Week,
    /// Day of the month.
    Day,
    /// Hour, 0–23.
    Hour,
    /// Minute, 0–59.
    Minute,
    /// Second, 0–59.
    Second,
    /// Milliseconds within the minute for EXTRACT; the millisecond for DATE_TRUNC.
    Millisecond,
    /// Day of the week, Sunday = 1 … Saturday = 7 (EXTRACT only).
    DayOfWeek,
    /// Day of the year, 1–366 (EXTRACT only).
    DayOfYear,
    /// Seconds since 1970-01-01 (EXTRACT only).
    Epoch,
}

/// A built-in scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarFunction {
    /// `LOWER(s)`
    Lower,
    /// `UPPER(s)`
    Upper,
    /// `TRIM(s [, chars])`: strips spaces (or `chars`) from both ends.
    Trim,
    /// `LTRIM(s [, chars])`
    Ltrim,
    /// `RTRIM(s [, chars])`
    Rtrim,
    /// `SUBSTRING(s, start [, len])`, 1-based, Flink rules (see functions docs).
    Substring,
    /// `CONCAT(a, b, ...)`: NULL when any argument is NULL.
    Concat,
    /// `CHAR_LENGTH(s)` in characters.
    CharLength,
    /// `REGEXP_REPLACE(s, pattern, replacement)`, all matches.
    RegexpReplace,
    /// `REGEXP_EXTRACT(s, pattern [, group])`: the group (default 0, the
    /// whole match) of the first match; NULL without a match.
    RegexpExtract,
    /// `SPLIT_INDEX(s, separator, n)`: the n-th (0-based) piece of `s` split
    /// at every `separator`; NULL past the last piece or for a negative n.
    SplitIndex,
    /// `DATE_FORMAT(ts, pattern)`: the timestamp as text, with a Java
    /// (Flink) pattern such as `'yyyy-MM-dd HH:mm'`.
    DateFormat,
    /// `EXTRACT(field FROM ts)` as BIGINT.
    Extract(TimeUnitField),
    /// `DATE_TRUNC(field, ts)` as TIMESTAMP(3).
    DateTrunc(TimeUnitField),
    /// `ABS(x)`
    Abs,
    /// `ROUND(x [, digits])`, half away from zero.
    Round,
    /// `FLOOR(x)`
    Floor,
    /// `CEIL(x)`
    Ceil,
}

impl ScalarFunction {
    /// The SQL name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ScalarFunction::Lower => "LOWER",
            ScalarFunction::Upper => "UPPER",
            ScalarFunction::Trim => "TRIM",
            ScalarFunction::Ltrim => "LTRIM",
            ScalarFunction::Rtrim => "RTRIM",
            ScalarFunction::Substring => "SUBSTRING",
            ScalarFunction::Concat => "CONCAT",
            ScalarFunction::CharLength => "CHAR_LENGTH",
            ScalarFunction::RegexpReplace => "REGEXP_REPLACE",
            ScalarFunction::RegexpExtract => "REGEXP_EXTRACT",
            ScalarFunction::SplitIndex => "SPLIT_INDEX",
            ScalarFunction::DateFormat => "DATE_FORMAT",
            ScalarFunction::Extract(_) => "EXTRACT",
            ScalarFunction::DateTrunc(_) => "DATE_TRUNC",
            ScalarFunction::Abs => "ABS",
            ScalarFunction::Round => "ROUND",
            ScalarFunction::Floor => "FLOOR",
            ScalarFunction::Ceil => "CEIL",
        }
    }
}

// ---------------------------------------------------------------------------
// Expressions
// ---------------------------------------------------------------------------

/// A scalar expression over the columns of one input batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The column at this index of the input batch.
    Column(usize),
    /// A constant.
    Literal(ScalarValue),
    /// `left op right`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Three-valued `NOT`.
    Not(Box<Expr>),
    /// Unary minus.
    Negative(Box<Expr>),
    /// `IS NULL` (never NULL itself).
    IsNull(Box<Expr>),
    /// `IS NOT NULL` (never NULL itself).
    IsNotNull(Box<Expr>),
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END`.
    Case {
        /// Compared for equality with each WHEN value; absent for searched CASE.
        operand: Option<Box<Expr>>,
        /// WHEN/THEN pairs, first match wins.
        when_then: Vec<(Expr, Expr)>,
        /// Value when nothing matched (NULL if absent).
        else_expr: Option<Box<Expr>>,
    },
    /// `CAST(expr AS to)`: a value that does not convert is an error.
    Cast {
        /// The value.
        expr: Box<Expr>,
        /// Target type.
        to: DataType,
    },
    /// `TRY_CAST(expr AS to)`: a value that does not convert is NULL.
    TryCast {
        /// The value.
        expr: Box<Expr>,
        /// Target type.
        to: DataType,
    },
    /// `COALESCE(a, b, ...)`: the first non-NULL argument.
    Coalesce(Vec<Expr>),
    /// `expr [NOT] BETWEEN low AND high`, bounds inclusive.
    Between {
        /// The value.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `expr [NOT] IN (list)`, NULL when nothing matched and the list holds NULL.
    InList {
        /// The value.
        expr: Box<Expr>,
        /// Candidates.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `expr [NOT] LIKE / ILIKE pattern`.
    Like {
        /// The string.
        expr: Box<Expr>,
        /// The pattern, `%` and `_` wildcards, `\` escapes.
        pattern: Box<Expr>,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// A scalar function call.
    Function {
        /// The function.
        func: ScalarFunction,
        /// Its arguments.
        args: Vec<Expr>,
    },
}

/// `Expr::Column(i)`.
pub fn col(i: usize) -> Expr {
    Expr::Column(i)
}

/// `Expr::Literal(v)`.
pub fn lit(v: impl Into<ScalarValue>) -> Expr {
    Expr::Literal(v.into())
}

/// A NULL literal.
pub fn null() -> Expr {
    Expr::Literal(ScalarValue::Null)
}

/// `left op right`.
pub fn binary(left: Expr, op: BinaryOp, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

/// `left AND right`.
pub fn and(left: Expr, right: Expr) -> Expr {
    binary(left, BinaryOp::And, right)
}

/// `left OR right`.
pub fn or(left: Expr, right: Expr) -> Expr {
    binary(left, BinaryOp::Or, right)
}

/// `NOT e`.
pub fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

/// `CAST(e AS to)`.
pub fn cast(e: Expr, to: DataType) -> Expr {
    Expr::Cast {
        expr: Box::new(e),
        to,
    }
}

/// `TRY_CAST(e AS to)`.
pub fn try_cast(e: Expr, to: DataType) -> Expr {
    Expr::TryCast {
        expr: Box::new(e),
        to,
    }
}

/// A function call.
pub fn call(func: ScalarFunction, args: Vec<Expr>) -> Expr {
    Expr::Function { func, args }
}

/// The result and comparison types of a CASE.
struct CaseTypes {
    /// Type the operand and WHEN values are compared in (operand form only).
    compare: Option<DataType>,
    /// Type of the result.
    result: DataType,
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
                functions::return_type(func, &types)
            }
        }
    }

    fn case_types(
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

    /// Evaluates on a whole batch, returning an array of `batch.num_rows()` rows.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        self.eval(batch)?.into_array(batch.num_rows())
    }

    /// Evaluates on the rows of `batch` where `mask` (no nulls) is true.
    fn evaluate_where(&self, batch: &RecordBatch, mask: &BooleanArray) -> Result<ArrayRef> {
        if mask.true_count() == batch.num_rows() {
            self.evaluate(batch)
        } else {
            self.evaluate(&filter_record_batch(batch, mask)?)
        }
    }

    fn eval(&self, batch: &RecordBatch) -> Result<Value> {
        let n = batch.num_rows();
        match self {
            Expr::Column(i) => match batch.columns().get(*i) {
                Some(c) => Ok(Value::Array(Arc::clone(c))),
                None => plan_err!(
                    "column index {i} out of range for a batch of {} columns",
                    batch.num_columns()
                ),
            },
            Expr::Literal(v) => Ok(Value::Scalar(v.to_array(1)?)),
            Expr::Binary {
                op: op @ (BinaryOp::And | BinaryOp::Or),
                left,
                right,
            } => Self::eval_logical(*op, left, right, batch),
            Expr::Binary { op, left, right } => {
                let l = left.eval(batch)?;
                let r = right.eval(batch)?;
                let sig = coercion::binary_signature(*op, l.data_type(), r.data_type())?;
                let l = kernels::cast_value(l, &sig.left)?;
                let r = kernels::cast_value(r, &sig.right)?;
                if op.is_comparison() {
                    kernels::compare(*op, &l, &r)
                } else if *op == BinaryOp::StringConcat {
                    let both_scalar = l.is_scalar() && r.is_scalar();
                    let len = if both_scalar { 1 } else { n };
                    let out = functions::concat(&[l.into_array(len)?, r.into_array(len)?], len)?;
                    Ok(if both_scalar {
                        Value::Scalar(out)
                    } else {
                        Value::Array(out)
                    })
                } else {
                    kernels::arithmetic(*op, &sig, &l, &r)
                }
            }
            Expr::Not(e) => {
                let v = e.eval(batch)?;
                if !matches!(v.data_type(), DataType::Boolean | DataType::Null) {
                    plan_err!("NOT expects a boolean, got {}", v.data_type());
                }
                kernels::cast_value(v, &DataType::Boolean)?
                    .map(|a| Ok(Arc::new(boolean::not(a.as_boolean())?) as ArrayRef))
            }
            Expr::Negative(e) => {
                let v = e.eval(batch)?;
                let t = coercion::negative_type(v.data_type())?;
                kernels::negate(&kernels::cast_value(v, &t)?)
            }
            Expr::IsNull(e) => e
                .eval(batch)?
                .map(|a| Ok(Arc::new(boolean::is_null(a.as_ref())?) as ArrayRef)),
            Expr::IsNotNull(e) => e
                .eval(batch)?
                .map(|a| Ok(Arc::new(boolean::is_not_null(a.as_ref())?) as ArrayRef)),
            Expr::Case {
                operand,
                when_then,
                else_expr,
            } => Ok(Value::Array(self.eval_case(
                operand.as_deref(),
                when_then,
                else_expr.as_deref(),
                batch,
            )?)),
            Expr::Cast { expr, to } => kernels::cast_value(expr.eval(batch)?, to),
            Expr::TryCast { expr, to } => expr.eval(batch)?.map(|a| kernels::cast_safe(a, to)),
            Expr::Coalesce(args) => Ok(Value::Array(self.eval_coalesce(args, batch)?)),
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let t = self.operand_type(&[&**expr, low, high], batch, "BETWEEN")?;
                let v = kernels::cast_value(expr.eval(batch)?, &t)?;
                let lo = kernels::cast_value(low.eval(batch)?, &t)?;
                let hi = kernels::cast_value(high.eval(batch)?, &t)?;
                let ge = kernels::compare(BinaryOp::GtEq, &v, &lo)?.into_array(n)?;
                let le = kernels::compare(BinaryOp::LtEq, &v, &hi)?.into_array(n)?;
                let both = kernels::kleene(BinaryOp::And, &ge, &le)?;
                Ok(Value::Array(if *negated {
                    Arc::new(boolean::not(both.as_boolean())?)
                } else {
                    both
                }))
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let mut all: Vec<&Expr> = vec![expr];
                all.extend(list.iter());
                let t = self.operand_type(&all, batch, "IN")?;
                let v = kernels::cast_value(expr.eval(batch)?, &t)?;
                let mut acc: Option<ArrayRef> = None;
                for item in list {
                    let w = kernels::cast_value(item.eval(batch)?, &t)?;
                    let eq = kernels::compare(BinaryOp::Eq, &v, &w)?.into_array(n)?;
                    acc = Some(match acc {
                        None => eq,
                        Some(prev) => kernels::kleene(BinaryOp::Or, &prev, &eq)?,
                    });
                }
                let Some(found) = acc else {
                    plan_err!("IN expects a non-empty list");
                };
                Ok(Value::Array(if *negated {
                    Arc::new(boolean::not(found.as_boolean())?)
                } else {
                    found
                }))
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let v = expr.eval(batch)?;
                let p = pattern.eval(batch)?;
                for t in [v.data_type(), p.data_type()] {
                    if !(coercion::is_string(t) || t == &DataType::Null) {
                        plan_err!("LIKE expects strings, got {t}");
                    }
                }
                let v = kernels::cast_value(v, &DataType::Utf8)?;
                let p = kernels::cast_value(p, &DataType::Utf8)?;
                kernels::like(&v, &p, *negated, *case_insensitive)
            }
            Expr::Function { func, args } => {
                let values = args
                    .iter()
                    .map(|a| a.eval(batch))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Value::Array(functions::evaluate(func, &values, n)?))
            }
        }
    }

    /// The common type of several operands, typed against the batch schema.
    fn operand_type(&self, exprs: &[&Expr], batch: &RecordBatch, what: &str) -> Result<DataType> {
        let schema = batch.schema();
        let types = exprs
            .iter()
            .map(|e| e.data_type(&schema))
            .collect::<Result<Vec<_>>>()?;
        coercion::common_type_of(&types, what)
    }

    /// AND / OR: the right side runs only on rows the left side leaves open
    /// (not FALSE for AND, not TRUE for OR).
    fn eval_logical(op: BinaryOp, left: &Expr, right: &Expr, batch: &RecordBatch) -> Result<Value> {
        let n = batch.num_rows();
        let l = left.eval(batch)?;
        if !matches!(l.data_type(), DataType::Boolean | DataType::Null) {
            plan_err!("cannot apply '{op}' to {}", l.data_type());
        }
        let l = kernels::cast_strict(&l.into_array(n)?, &DataType::Boolean)?;
        let lb = l.as_boolean();
        let decisive = op == BinaryOp::Or;
        let open: BooleanArray = (0..n)
            .map(|i| Some(!(lb.is_valid(i) && lb.value(i) == decisive)))
            .collect();
        let k = open.true_count();
        if k == 0 {
            return Ok(Value::Array(l));
        }
        let r = right.evaluate_where(batch, &open)?;
        if !matches!(r.data_type(), DataType::Boolean | DataType::Null) {
            plan_err!("cannot apply '{op}' to Boolean and {}", r.data_type());
        }
        let r = kernels::cast_strict(&r, &DataType::Boolean)?;
        let r = if k == n { r } else { scatter(&open, &r)? };
        Ok(Value::Array(kernels::kleene(op, &l, &r)?))
    }

    /// CASE: each WHEN runs on the rows no earlier WHEN matched, each THEN
    /// only on its matched rows; the pieces are interleaved back in order.
    fn eval_case(
        &self,
        operand: Option<&Expr>,
        when_then: &[(Expr, Expr)],
        else_expr: Option<&Expr>,
        batch: &RecordBatch,
    ) -> Result<ArrayRef> {
        let types = Self::case_types(operand, when_then, else_expr, &batch.schema())?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(new_empty_array(&types.result));
        }
        let mut rest_operand = match (operand, &types.compare) {
            (Some(o), Some(t)) => Some(kernels::cast_strict(&o.evaluate(batch)?, t)?),
            _ => None,
        };
        let mut rest_batch = batch.clone();
        let mut rest_rows: Vec<usize> = (0..n).collect();
        let mut pieces: Vec<ArrayRef> = Vec::new();
        let mut slots: Vec<(usize, usize)> = vec![(0, 0); n];
        for (when, then) in when_then {
            if rest_rows.is_empty() {
                break;
            }
            let cond = match (&rest_operand, &types.compare) {
                (Some(o), Some(t)) => {
                    let w = kernels::cast_value(when.eval(&rest_batch)?, t)?;
                    kernels::compare(BinaryOp::Eq, &Value::Array(Arc::clone(o)), &w)?
                        .into_array(rest_rows.len())?
                }
                _ => kernels::cast_strict(&when.evaluate(&rest_batch)?, &DataType::Boolean)?,
            };
            let hit = definitely_true(cond.as_boolean());
            if hit.true_count() == 0 {
                continue;
            }
            let vals =
                kernels::cast_strict(&then.evaluate_where(&rest_batch, &hit)?, &types.result)?;
            let piece = pieces.len();
            pieces.push(vals);
            let mut next = Vec::with_capacity(rest_rows.len() - hit.true_count());
            let mut j = 0;
            for (pos, &row) in rest_rows.iter().enumerate() {
                if hit.value(pos) {
                    slots[row] = (piece, j);
                    j += 1;
                } else {
                    next.push(row);
                }
            }
            rest_rows = next;
            if !rest_rows.is_empty() {
                let miss = boolean::not(&hit)?;
                rest_batch = filter_record_batch(&rest_batch, &miss)?;
                rest_operand = match rest_operand {
                    Some(o) => Some(filter(o.as_ref(), &miss)?),
                    None => None,
                };
            }
        }
        if !rest_rows.is_empty() {
            let vals = match else_expr {
                Some(e) => kernels::cast_strict(&e.evaluate(&rest_batch)?, &types.result)?,
                None => new_null_array(&types.result, rest_rows.len()),
            };
            let piece = pieces.len();
            pieces.push(vals);
            for (j, &row) in rest_rows.iter().enumerate() {
                slots[row] = (piece, j);
            }
        }
        gather(pieces, &slots)
    }

    /// COALESCE: each argument runs only on the rows still NULL.
    fn eval_coalesce(&self, args: &[Expr], batch: &RecordBatch) -> Result<ArrayRef> {
        let result = self.data_type(&batch.schema())?;
        let n = batch.num_rows();
        let Some((first, later)) = args.split_first() else {
            plan_err!("COALESCE expects at least one argument");
        };
        let first = kernels::cast_strict(&first.evaluate(batch)?, &result)?;
        let mut pieces = vec![first];
        let mut slots: Vec<(usize, usize)> = (0..n).map(|i| (0, i)).collect();
        let mut rest_rows: Vec<usize> = (0..n)
            .filter(|&i| !kernels::is_valid_at(pieces[0].as_ref(), i))
            .collect();
        let mut rest_batch = if rest_rows.is_empty() || later.is_empty() {
            batch.clone()
        } else {
            filter_record_batch(batch, &boolean::is_null(pieces[0].as_ref())?)?
        };
        for arg in later {
            if rest_rows.is_empty() {
                break;
            }
            let vals = kernels::cast_strict(&arg.evaluate(&rest_batch)?, &result)?;
            let piece = pieces.len();
            let mut next = Vec::new();
            for (j, &row) in rest_rows.iter().enumerate() {
                slots[row] = (piece, j);
                if !kernels::is_valid_at(vals.as_ref(), j) {
                    next.push(row);
                }
            }
            if !next.is_empty() {
                rest_batch = filter_record_batch(&rest_batch, &boolean::is_null(vals.as_ref())?)?;
            }
            pieces.push(vals);
            rest_rows = next;
        }
        gather(pieces, &slots)
    }
}

/// TRUE rows of a boolean array, NULL counting as not TRUE.
fn definitely_true(b: &BooleanArray) -> BooleanArray {
    if b.null_count() > 0 {
        prep_null_mask_filter(b)
    } else {
        b.clone()
    }
}

/// Spreads `values` (one per TRUE row of `mask`) back to `mask.len()` rows,
/// NULL elsewhere.
fn scatter(mask: &BooleanArray, values: &ArrayRef) -> Result<ArrayRef> {
    let nulls = new_null_array(values.data_type(), 1);
    let mut slots = Vec::with_capacity(mask.len());
    let mut j = 0;
    for i in 0..mask.len() {
        if mask.value(i) {
            slots.push((0, j));
            j += 1;
        } else {
            slots.push((1, 0));
        }
    }
    Ok(interleave(&[values.as_ref(), nulls.as_ref()], &slots)?)
}

/// Builds the result row by row from `(piece, row in piece)` slots.
fn gather(pieces: Vec<ArrayRef>, slots: &[(usize, usize)]) -> Result<ArrayRef> {
    // One piece covering every row in order needs no copy.
    if pieces.len() == 1 && pieces[0].len() == slots.len() {
        if let Some(only) = pieces.into_iter().next() {
            return Ok(only);
        }
        internal_err!("gather lost its only piece");
    }
    let refs: Vec<&dyn Array> = pieces.iter().map(|p| p.as_ref()).collect();
    Ok(interleave(&refs, slots)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;
    use arrow::datatypes::{Field, Float64Type, Int32Type, Int64Type, TimestampMillisecondType};

    /// A batch with columns
    /// `i` Int64 [1, 5, NULL, i64::MAX], `s` Utf8 ["abc", "a.c", NULL, "Hello"],
    /// `b` Boolean [true, false, NULL, true], `n` Int32 [10, 0, 3, NULL],
    /// `f` Float64 [1.5, 0.0, -2.5, NULL].
    fn batch() -> Result<RecordBatch> {
        let i: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            Some(5),
            None,
            Some(i64::MAX),
        ]));
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some("abc"),
            Some("a.c"),
            None,
            Some("Hello"),
        ]));
        let b: ArrayRef = Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
        ]));
        let n: ArrayRef = Arc::new(Int32Array::from(vec![Some(10), Some(0), Some(3), None]));
        let f: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(0.0),
            Some(-2.5),
            None,
        ]));
        Ok(RecordBatch::try_from_iter(vec![
            ("i", i),
            ("s", s),
            ("b", b),
            ("n", n),
            ("f", f),
        ])?)
    }

    /// A batch of one nullable column.
    fn one(name: &str, a: ArrayRef) -> Result<RecordBatch> {
        Ok(RecordBatch::try_from_iter(vec![(name, a)])?)
    }

    fn bools(a: &ArrayRef) -> Vec<Option<bool>> {
        a.as_boolean().iter().collect()
    }

    fn i64s(a: &ArrayRef) -> Vec<Option<i64>> {
        a.as_primitive::<Int64Type>().iter().collect()
    }

    fn strs(a: &ArrayRef) -> Vec<Option<String>> {
        a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn ts(a: &ArrayRef) -> Vec<Option<i64>> {
        a.as_primitive::<TimestampMillisecondType>()
            .iter()
            .collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn exec_message(r: Result<ArrayRef>) -> String {
        match r {
            Err(EngineError::Execution(m)) => m,
            other => panic!("expected an execution error, got {other:?}"),
        }
    }

    fn plan_message(r: Result<DataType>) -> String {
        match r {
            Err(EngineError::Plan(m)) => m,
            other => panic!("expected a plan error, got {other:?}"),
        }
    }

    fn f(func: ScalarFunction, args: Vec<Expr>) -> Expr {
        call(func, args)
    }

    /// Every pair of {TRUE, FALSE, NULL}.
    fn truth_batch() -> Result<RecordBatch> {
        let vals = [Some(true), Some(false), None];
        let mut l = Vec::new();
        let mut r = Vec::new();
        for a in vals {
            for b in vals {
                l.push(a);
                r.push(b);
            }
        }
        let l: ArrayRef = Arc::new(BooleanArray::from(l));
        let r: ArrayRef = Arc::new(BooleanArray::from(r));
        Ok(RecordBatch::try_from_iter(vec![("l", l), ("r", r)])?)
    }

    #[test]
    fn three_valued_and_or_not() -> Result<()> {
        let b = truth_batch()?;
        let (t, fa, n) = (Some(true), Some(false), None);
        // rows: TT TF TN FT FF FN NT NF NN
        assert_eq!(
            bools(&and(col(0), col(1)).evaluate(&b)?),
            vec![t, fa, n, fa, fa, fa, n, fa, n]
        );
        assert_eq!(
            bools(&or(col(0), col(1)).evaluate(&b)?),
            vec![t, t, t, t, fa, n, t, n, n]
        );
        assert_eq!(
            bools(&not(col(0)).evaluate(&b)?),
            vec![fa, fa, fa, t, t, t, n, n, n]
        );
        // NULL literals behave as unknown booleans
        assert_eq!(bools(&and(lit(false), null()).evaluate(&b)?), vec![fa; 9]);
        assert_eq!(bools(&or(lit(true), null()).evaluate(&b)?), vec![t; 9]);
        assert_eq!(bools(&or(lit(false), null()).evaluate(&b)?), vec![n; 9]);
        Ok(())
    }

    #[test]
    fn and_skips_right_side_where_left_is_false() -> Result<()> {
        let b = batch()?;
        // n <> 0 AND i / n >= 0: row 1 has n = 0 and must not divide
        let e = and(
            binary(col(3), BinaryOp::NotEq, lit(0)),
            binary(
                binary(col(0), BinaryOp::Divide, col(3)),
                BinaryOp::GtEq,
                lit(0i64),
            ),
        );
        assert_eq!(
            bools(&e.evaluate(&b)?),
            vec![Some(true), Some(false), None, None]
        );
        // without the guard the division fails
        let unguarded = binary(col(0), BinaryOp::Divide, col(3));
        assert_eq!(exec_message(unguarded.evaluate(&b)), "division by zero");
        // OR skips rows where the left side is TRUE
        let e = or(
            binary(col(3), BinaryOp::Eq, lit(0)),
            binary(
                binary(col(0), BinaryOp::Divide, col(3)),
                BinaryOp::GtEq,
                lit(0i64),
            ),
        );
        assert_eq!(
            bools(&e.evaluate(&b)?),
            vec![Some(true), Some(true), None, None]
        );
        Ok(())
    }

    #[test]
    fn arithmetic_widens_and_propagates_null() -> Result<()> {
        let b = batch()?;
        let e = binary(col(3), BinaryOp::Plus, col(0)); // Int32 + Int64
        assert_eq!(e.data_type(b.schema_ref())?, DataType::Int64);
        let out = binary(col(3), BinaryOp::Plus, lit(1i64)).evaluate(&b)?;
        assert_eq!(i64s(&out), vec![Some(11), Some(1), Some(4), None]);
        let e = binary(col(3), BinaryOp::Multiply, col(4)); // Int32 * Float64
        assert_eq!(e.data_type(b.schema_ref())?, DataType::Float64);
        let out = e.evaluate(&b)?;
        let got: Vec<Option<f64>> = out.as_primitive::<Float64Type>().iter().collect();
        assert_eq!(got, vec![Some(15.0), Some(0.0), Some(-7.5), None]);
        let out = binary(lit(7), BinaryOp::Divide, lit(2)).evaluate(&b)?;
        assert_eq!(
            out.as_primitive::<Int32Type>().values().to_vec(),
            vec![3, 3, 3, 3]
        );
        let out = binary(lit(-7i64), BinaryOp::Modulo, col(0)).evaluate(&b)?;
        assert_eq!(i64s(&out), vec![Some(0), Some(-2), None, Some(-7)]);
        let out = binary(null(), BinaryOp::Plus, col(3)).evaluate(&b)?;
        assert_eq!(out.data_type(), &DataType::Int32);
        assert_eq!(out.null_count(), 4);
        Ok(())
    }

    #[test]
    fn integer_overflow_is_an_error() -> Result<()> {
        let b = batch()?;
        let m = exec_message(binary(col(0), BinaryOp::Plus, lit(1i64)).evaluate(&b));
        assert!(m.starts_with("numeric overflow"), "{m}");
        let m = exec_message(binary(lit(i32::MAX), BinaryOp::Multiply, lit(2)).evaluate(&b));
        assert!(m.starts_with("numeric overflow"), "{m}");
        let m = exec_message(Expr::Negative(Box::new(lit(i64::MIN))).evaluate(&b));
        assert!(m.starts_with("numeric overflow"), "{m}");
        let m = exec_message(binary(lit(i64::MIN), BinaryOp::Divide, lit(-1i64)).evaluate(&b));
        assert!(m.starts_with("numeric overflow"), "{m}");
        let m = exec_message(f(ScalarFunction::Abs, vec![lit(i32::MIN)]).evaluate(&b));
        assert!(m.starts_with("numeric overflow"), "{m}");
        Ok(())
    }

    #[test]
    fn division_by_zero_is_an_error_for_ints_and_floats() -> Result<()> {
        let b = batch()?;
        for e in [
            binary(col(0), BinaryOp::Divide, lit(0i64)),
            binary(col(0), BinaryOp::Modulo, lit(0i64)),
            binary(col(4), BinaryOp::Divide, lit(0.0)),
            binary(lit(1.0), BinaryOp::Divide, col(4)),
            binary(col(0), BinaryOp::Modulo, col(4)),
        ] {
            assert_eq!(exec_message(e.evaluate(&b)), "division by zero", "{e:?}");
        }
        // NULL / 0 is NULL, not an error
        let out = binary(null(), BinaryOp::Divide, lit(0)).evaluate(&b)?;
        assert_eq!(out.null_count(), 4);
        let nulls: ArrayRef = Arc::new(Float64Array::from(vec![None, Some(4.0)]));
        let zeros: ArrayRef = Arc::new(Float64Array::from(vec![Some(0.0), Some(2.0)]));
        let b2 = RecordBatch::try_from_iter(vec![("x", nulls), ("y", zeros)])?;
        let out = binary(col(0), BinaryOp::Divide, col(1)).evaluate(&b2)?;
        let got: Vec<Option<f64>> = out.as_primitive::<Float64Type>().iter().collect();
        assert_eq!(got, vec![None, Some(2.0)]);
        Ok(())
    }

    #[test]
    fn comparisons_across_types() -> Result<()> {
        let b = batch()?;
        let out = binary(col(3), BinaryOp::Lt, col(4)).evaluate(&b)?; // Int32 < Float64
        assert_eq!(
            bools(&out),
            vec![Some(false), Some(false), Some(false), None]
        );
        let out = binary(col(1), BinaryOp::GtEq, lit("abc")).evaluate(&b)?;
        assert_eq!(
            bools(&out),
            vec![Some(true), Some(false), None, Some(false)]
        );
        let out = binary(lit(1), BinaryOp::Eq, lit(1i64)).evaluate(&b)?;
        assert_eq!(bools(&out), vec![Some(true); 4]);
        Ok(())
    }

    #[test]
    fn type_errors_from_data_type() -> Result<()> {
        let b = batch()?;
        let schema = b.schema();
        let m = plan_message(binary(col(1), BinaryOp::Plus, col(0)).data_type(&schema));
        assert_eq!(m, "cannot apply '+' to Utf8 and Int64");
        let m = plan_message(binary(col(1), BinaryOp::Eq, lit(1i64)).data_type(&schema));
        assert_eq!(m, "cannot apply '=' to Utf8 and Int64");
        let m = plan_message(and(col(0), col(2)).data_type(&schema));
        assert_eq!(m, "cannot apply 'AND' to Int64 and Boolean");
        let m = plan_message(not(col(0)).data_type(&schema));
        assert_eq!(m, "NOT expects a boolean, got Int64");
        let m = plan_message(col(9).data_type(&schema));
        assert_eq!(m, "column index 9 out of range for an input of 5 columns");
        let m = plan_message(f(ScalarFunction::Upper, vec![col(0)]).data_type(&schema));
        assert_eq!(m, "argument 1 of UPPER must be a string, got Int64");
        let m = plan_message(f(ScalarFunction::Substring, vec![col(1)]).data_type(&schema));
        assert_eq!(m, "SUBSTRING expects 2 to 3 argument(s), got 1");
        let case = Expr::Case {
            operand: None,
            when_then: vec![(col(2), col(1))],
            else_expr: Some(Box::new(col(0))),
        };
        let m = plan_message(case.data_type(&schema));
        assert_eq!(m, "CASE mixes incompatible types Utf8 and Int64");
        let m = plan_message(
            f(
                ScalarFunction::DateTrunc(TimeUnitField::DayOfWeek),
                vec![lit(ScalarValue::TimestampMillis(0))],
            )
            .data_type(&schema),
        );
        assert_eq!(m, "DATE_TRUNC does not support the unit DayOfWeek");
        let m = plan_message(
            cast(
                col(2),
                DataType::Duration(arrow::datatypes::TimeUnit::Second),
            )
            .data_type(&schema),
        );
        assert!(m.starts_with("cannot cast Boolean to Duration"), "{m}");
        let m = plan_message(
            binary(
                lit(ScalarValue::TimestampMillis(0)),
                BinaryOp::Plus,
                lit(1i64),
            )
            .data_type(&schema),
        );
        assert_eq!(m, "cannot apply '+' to Timestamp(ms) and Int64");
        Ok(())
    }

    #[test]
    fn cast_errors_but_try_cast_gives_null() -> Result<()> {
        let b = one(
            "s",
            Arc::new(StringArray::from(vec![Some("12"), Some("abc"), None])),
        )?;
        let m = exec_message(cast(col(0), DataType::Int64).evaluate(&b));
        assert_eq!(m, "cannot cast 'abc' to Int64");
        let out = try_cast(col(0), DataType::Int64).evaluate(&b)?;
        assert_eq!(i64s(&out), vec![Some(12), None, None]);
        // a value out of range of the target type also fails
        let m = exec_message(cast(lit(i64::MAX), DataType::Int32).evaluate(&b));
        assert_eq!(m, format!("cannot cast '{}' to Int32", i64::MAX));
        let out = cast(lit("2024-02-29 12:00:00"), TS_MS).evaluate(&b)?;
        assert_eq!(ts(&out)[0], Some(1_709_208_000_000));
        assert!(Expr::TryCast {
            expr: Box::new(col(0)),
            to: DataType::Int64
        }
        .nullable(b.schema_ref())?);
        Ok(())
    }

    #[test]
    fn case_with_null_conditions_and_first_match() -> Result<()> {
        let b = batch()?;
        // CASE WHEN b THEN 'yes' WHEN i > 2 THEN 'big' END; row 2 has NULL
        // conditions only, so no WHEN matches and there is no ELSE.
        let e = Expr::Case {
            operand: None,
            when_then: vec![
                (col(2), lit("yes")),
                (binary(col(0), BinaryOp::Gt, lit(2i64)), lit("big")),
            ],
            else_expr: None,
        };
        assert_eq!(
            strs(&e.evaluate(&b)?),
            vec![s("yes"), s("big"), None, s("yes")]
        );
        // first matching WHEN wins even if a later one matches too
        let e = Expr::Case {
            operand: None,
            when_then: vec![
                (binary(col(0), BinaryOp::Gt, lit(0i64)), lit(1)),
                (binary(col(0), BinaryOp::Gt, lit(2i64)), lit(2)),
            ],
            else_expr: Some(Box::new(lit(0i64))),
        };
        assert_eq!(e.data_type(b.schema_ref())?, DataType::Int64);
        assert_eq!(
            i64s(&e.evaluate(&b)?),
            vec![Some(1), Some(1), Some(0), Some(1)]
        );
        // simple CASE: operand NULL matches nothing
        let e = Expr::Case {
            operand: Some(Box::new(col(3))),
            when_then: vec![
                (lit(10), lit("ten")),
                (lit(0), lit("zero")),
                (null(), lit("null")),
            ],
            else_expr: Some(Box::new(lit("other"))),
        };
        assert_eq!(
            strs(&e.evaluate(&b)?),
            vec![s("ten"), s("zero"), s("other"), s("other")]
        );
        // the division only runs on rows where n <> 0
        let e = Expr::Case {
            operand: None,
            when_then: vec![(binary(col(3), BinaryOp::Eq, lit(0)), lit(-1i64))],
            else_expr: Some(Box::new(binary(col(0), BinaryOp::Divide, col(3)))),
        };
        assert_eq!(i64s(&e.evaluate(&b)?), vec![Some(0), Some(-1), None, None]);
        Ok(())
    }

    #[test]
    fn coalesce_takes_first_non_null_lazily() -> Result<()> {
        let b = batch()?;
        let e = Expr::Coalesce(vec![
            col(3),
            binary(lit(100), BinaryOp::Divide, col(3)),
            lit(-1),
        ]);
        // rows 0..2 are non-null, so the failing division only sees row 3 (n NULL)
        assert_eq!(
            e.evaluate(&b)?
                .as_primitive::<Int32Type>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(10), Some(0), Some(3), Some(-1)]
        );
        let e = Expr::Coalesce(vec![col(0), col(3)]);
        assert_eq!(e.data_type(b.schema_ref())?, DataType::Int64);
        assert_eq!(
            i64s(&e.evaluate(&b)?),
            vec![Some(1), Some(5), Some(3), Some(i64::MAX)]
        );
        assert!(!Expr::Coalesce(vec![col(0), lit(0i64)]).nullable(b.schema_ref())?);
        Ok(())
    }

    #[test]
    fn in_list_and_between_null_semantics() -> Result<()> {
        let b = batch()?;
        let in_list = |negated, list| Expr::InList {
            expr: Box::new(col(0)),
            list,
            negated,
        };
        // i IN (1, NULL): 1 -> TRUE, 5 -> NULL (no match, list has NULL), NULL -> NULL
        let out = in_list(false, vec![lit(1), null()]).evaluate(&b)?;
        assert_eq!(bools(&out), vec![Some(true), None, None, None]);
        let out = in_list(true, vec![lit(1), null()]).evaluate(&b)?;
        assert_eq!(bools(&out), vec![Some(false), None, None, None]);
        let out = in_list(false, vec![lit(5i64), lit(7)]).evaluate(&b)?;
        assert_eq!(
            bools(&out),
            vec![Some(false), Some(true), None, Some(false)]
        );
        let out = in_list(true, vec![lit(5i64), lit(7)]).evaluate(&b)?;
        assert_eq!(bools(&out), vec![Some(true), Some(false), None, Some(true)]);
        let bad = in_list(false, vec![lit("x")]);
        assert!(matches!(
            bad.data_type(b.schema_ref()),
            Err(EngineError::Plan(_))
        ));
        // BETWEEN is inclusive on both ends
        let between = |negated| Expr::Between {
            expr: Box::new(col(0)),
            low: Box::new(lit(1)),
            high: Box::new(lit(5)),
            negated,
        };
        assert_eq!(
            bools(&between(false).evaluate(&b)?),
            vec![Some(true), Some(true), None, Some(false)]
        );
        assert_eq!(
            bools(&between(true).evaluate(&b)?),
            vec![Some(false), Some(false), None, Some(true)]
        );
        Ok(())
    }

    #[test]
    fn like_wildcards_and_meta_characters() -> Result<()> {
        let v: ArrayRef = Arc::new(StringArray::from(vec![
            Some("abc"),
            Some("a.c"),
            Some("aXc"),
            Some("ABC"),
            Some("50%"),
            None,
        ]));
        let b = one("s", v)?;
        let like = |p: &str, negated, ci| Expr::Like {
            expr: Box::new(col(0)),
            pattern: Box::new(lit(p)),
            negated,
            case_insensitive: ci,
        };
        let (t, fa) = (Some(true), Some(false));
        assert_eq!(
            bools(&like("a%", false, false).evaluate(&b)?),
            vec![t, t, t, fa, fa, None]
        );
        assert_eq!(
            bools(&like("a_c", false, false).evaluate(&b)?),
            vec![t, t, t, fa, fa, None]
        );
        // '.' is literal, not "any character"
        assert_eq!(
            bools(&like("a.c", false, false).evaluate(&b)?),
            vec![fa, t, fa, fa, fa, None]
        );
        assert_eq!(
            bools(&like("%\\%", false, false).evaluate(&b)?),
            vec![fa, fa, fa, fa, t, None]
        );
        assert_eq!(
            bools(&like("a%", true, false).evaluate(&b)?),
            vec![fa, fa, fa, t, t, None]
        );
        assert_eq!(
            bools(&like("abc", false, true).evaluate(&b)?),
            vec![t, fa, fa, t, fa, None]
        );
        let bad = Expr::Like {
            expr: Box::new(lit(1)),
            pattern: Box::new(lit("1")),
            negated: false,
            case_insensitive: false,
        };
        assert!(matches!(
            bad.data_type(b.schema_ref()),
            Err(EngineError::Plan(_))
        ));
        Ok(())
    }

    #[test]
    fn substring_edge_cases() -> Result<()> {
        let b = one(
            "s",
            Arc::new(StringArray::from(vec![Some("hello"), Some("héllo"), None])),
        )?;
        let sub = |start: i64, len: Option<i64>| {
            let mut args = vec![col(0), lit(start)];
            args.extend(len.map(lit));
            f(ScalarFunction::Substring, args)
        };
        assert_eq!(
            strs(&sub(2, Some(3)).evaluate(&b)?),
            vec![s("ell"), s("éll"), None]
        );
        assert_eq!(
            strs(&sub(0, Some(2)).evaluate(&b)?),
            vec![s("he"), s("hé"), None]
        );
        assert_eq!(
            strs(&sub(-3, None).evaluate(&b)?),
            vec![s("llo"), s("llo"), None]
        );
        assert_eq!(
            strs(&sub(-7, Some(4)).evaluate(&b)?),
            vec![s("he"), s("hé"), None]
        );
        assert_eq!(
            strs(&sub(10, Some(2)).evaluate(&b)?),
            vec![s(""), s(""), None]
        );
        assert_eq!(
            strs(&sub(3, Some(100)).evaluate(&b)?),
            vec![s("llo"), s("llo"), None]
        );
        assert_eq!(
            strs(&sub(1, Some(-1)).evaluate(&b)?),
            vec![None, None, None]
        );
        Ok(())
    }

    #[test]
    fn string_functions() -> Result<()> {
        let b = one(
            "s",
            Arc::new(StringArray::from(vec![Some("  MiXed Ünï  "), None])),
        )?;
        let up = f(ScalarFunction::Upper, vec![col(0)]).evaluate(&b)?;
        assert_eq!(strs(&up), vec![s("  MIXED ÜNÏ  "), None]);
        let lo = f(ScalarFunction::Lower, vec![col(0)]).evaluate(&b)?;
        assert_eq!(strs(&lo), vec![s("  mixed ünï  "), None]);
        assert_eq!(
            strs(&f(ScalarFunction::Trim, vec![col(0)]).evaluate(&b)?),
            vec![s("MiXed Ünï"), None]
        );
        assert_eq!(
            strs(&f(ScalarFunction::Ltrim, vec![col(0)]).evaluate(&b)?),
            vec![s("MiXed Ünï  "), None]
        );
        assert_eq!(
            strs(&f(ScalarFunction::Rtrim, vec![col(0)]).evaluate(&b)?),
            vec![s("  MiXed Ünï"), None]
        );
        assert_eq!(
            strs(&f(ScalarFunction::Trim, vec![lit("xxaxx"), lit("x")]).evaluate(&b)?),
            vec![s("a"), s("a")]
        );
        let len = f(ScalarFunction::CharLength, vec![col(0)]).evaluate(&b)?;
        assert_eq!(
            len.as_primitive::<Int32Type>().iter().collect::<Vec<_>>(),
            vec![Some(13), None]
        );
        // CONCAT and || are NULL when any argument is NULL
        let c = f(ScalarFunction::Concat, vec![lit("a"), lit(1), lit("b")]).evaluate(&b)?;
        assert_eq!(strs(&c), vec![s("a1b"), s("a1b")]);
        let c = f(ScalarFunction::Concat, vec![lit("a"), col(0)]).evaluate(&b)?;
        assert_eq!(strs(&c)[1], None);
        let c = binary(lit("x"), BinaryOp::StringConcat, col(0)).evaluate(&b)?;
        assert_eq!(strs(&c), vec![s("x  MiXed Ünï  "), None]);
        Ok(())
    }

    #[test]
    fn regexp_replace_literal_and_bad_patterns() -> Result<()> {
        let b = one(
            "s",
            Arc::new(StringArray::from(vec![Some("a1b22c333"), None])),
        )?;
        let e = f(
            ScalarFunction::RegexpReplace,
            vec![col(0), lit("[0-9]+"), lit("#")],
        );
        assert_eq!(strs(&e.evaluate(&b)?), vec![s("a#b#c#"), None]);
        let e = f(
            ScalarFunction::RegexpReplace,
            vec![
                lit("2024-05-06"),
                lit("(\\d+)-(\\d+)-(\\d+)"),
                lit("$3/$2/$1"),
            ],
        );
        assert_eq!(strs(&e.evaluate(&b)?)[0], s("06/05/2024"));
        // a bad literal pattern is caught when planning, a bad column value when running
        let bad = f(
            ScalarFunction::RegexpReplace,
            vec![col(0), lit("(unclosed"), lit("")],
        );
        assert!(matches!(
            bad.data_type(b.schema_ref()),
            Err(EngineError::Plan(_))
        ));
        let bad_col = f(
            ScalarFunction::RegexpReplace,
            vec![lit("x"), col(0), lit("")],
        );
        let b2 = one("p", Arc::new(StringArray::from(vec![Some("x"), Some("(")])))?;
        let m = exec_message(bad_col.evaluate(&b2));
        assert!(m.starts_with("invalid regular expression '('"), "{m}");
        Ok(())
    }

    #[test]
    fn regexp_extract_groups_and_misses() -> Result<()> {
        let b = one(
            "u",
            Arc::new(StringArray::from(vec![
                Some("a=1&channel_id=xyz&b=2"),
                Some("channel_id=first"),
                Some("no match here"),
                None,
            ])),
        )?;
        let pattern = "(&|^)channel_id=([^&]*)";
        let e = f(
            ScalarFunction::RegexpExtract,
            vec![col(0), lit(pattern), lit(2i64)],
        );
        assert_eq!(
            strs(&e.evaluate(&b)?),
            vec![s("xyz"), s("first"), None, None]
        );
        // without a group: the whole match; the empty alternative of group 1
        let whole = f(ScalarFunction::RegexpExtract, vec![col(0), lit(pattern)]);
        assert_eq!(
            strs(&whole.evaluate(&b)?)[..2],
            [s("&channel_id=xyz"), s("channel_id=first")]
        );
        let g1 = f(
            ScalarFunction::RegexpExtract,
            vec![col(0), lit(pattern), lit(1i64)],
        );
        assert_eq!(strs(&g1.evaluate(&b)?)[..2], [s("&"), s("")]);
        // a group the pattern does not have, and a negative one
        for g in [3i64, -1] {
            let e = f(
                ScalarFunction::RegexpExtract,
                vec![col(0), lit(pattern), lit(g)],
            );
            assert_eq!(strs(&e.evaluate(&b)?), vec![None, None, None, None]);
        }
        let bad = f(ScalarFunction::RegexpExtract, vec![col(0), lit("[")]);
        assert!(matches!(
            bad.data_type(b.schema_ref()),
            Err(EngineError::Plan(_))
        ));
        Ok(())
    }

    #[test]
    fn split_index_keeps_empty_pieces() -> Result<()> {
        let b = one(
            "u",
            Arc::new(StringArray::from(vec![
                Some("https://www.nexmark.com/abc/def/item.htm"),
                None,
            ])),
        )?;
        let piece = |n: i64, sep: &str| -> Result<Vec<Option<String>>> {
            Ok(strs(
                &f(ScalarFunction::SplitIndex, vec![col(0), lit(sep), lit(n)]).evaluate(&b)?,
            ))
        };
        assert_eq!(piece(0, "/")?, vec![s("https:"), None]);
        assert_eq!(piece(1, "/")?, vec![s(""), None]);
        assert_eq!(piece(3, "/")?, vec![s("abc"), None]);
        assert_eq!(piece(5, "/")?, vec![s("item.htm"), None]);
        assert_eq!(piece(6, "/")?, vec![None, None]);
        assert_eq!(piece(-1, "/")?, vec![None, None]);
        assert_eq!(piece(1, "nexmark.")?, vec![s("com/abc/def/item.htm"), None]);
        assert_eq!(piece(0, "")?, vec![None, None]);
        Ok(())
    }

    #[test]
    fn date_format_with_java_patterns() -> Result<()> {
        let b = ts_batch()?;
        let fmt = |p: &str| -> Result<Vec<Option<String>>> {
            Ok(strs(
                &f(ScalarFunction::DateFormat, vec![col(0), lit(p)]).evaluate(&b)?,
            ))
        };
        assert_eq!(
            fmt("yyyy-MM-dd HH:mm:ss.SSS")?,
            vec![
                s("1969-12-31 23:59:59.999"),
                s("2024-02-29 23:59:59.999"),
                s("2024-03-01 00:00:00.000"),
                None
            ]
        );
        assert_eq!(
            fmt("yyyy-MM-dd")?,
            vec![s("1969-12-31"), s("2024-02-29"), s("2024-03-01"), None]
        );
        assert_eq!(fmt("HH:mm")?[2], s("00:00"));
        assert_eq!(fmt("d/M/yy 'at' h a")?[2], s("1/3/24 at 12 AM"));
        assert_eq!(fmt("yyyy''MM '100%'")?[1], s("2024'02 100%"));
        assert_eq!(fmt("EEE, MMM d")?[1], s("Thu, Feb 29"));
        for bad in ["yyyy-qq", "'open"] {
            let e = f(ScalarFunction::DateFormat, vec![col(0), lit(bad)]);
            assert!(
                matches!(e.data_type(b.schema_ref()), Err(EngineError::Plan(_))),
                "{bad}"
            );
        }
        Ok(())
    }

    /// 1969-12-31 23:59:59.999 UTC, one millisecond before the epoch (a Wednesday).
    const BEFORE_EPOCH: i64 = -1;
    /// 2024-02-29 23:59:59.999 UTC, the last millisecond of a leap February.
    const END_OF_FEB: i64 = 1_709_251_199_999;
    /// 2024-03-01 00:00:00.000 UTC.
    const MARCH_1: i64 = 1_709_251_200_000;
    const DAY: i64 = 86_400_000;

    fn ts_batch() -> Result<RecordBatch> {
        let a = TimestampMillisecondArray::from(vec![
            Some(BEFORE_EPOCH),
            Some(END_OF_FEB),
            Some(MARCH_1),
            None,
        ]);
        one("t", Arc::new(a))
    }

    #[test]
    fn extract_before_epoch_and_at_month_boundary() -> Result<()> {
        let b = ts_batch()?;
        let ex = |field| -> Result<Vec<Option<i64>>> {
            Ok(i64s(
                &f(ScalarFunction::Extract(field), vec![col(0)]).evaluate(&b)?,
            ))
        };
        assert_eq!(
            ex(TimeUnitField::Year)?,
            vec![Some(1969), Some(2024), Some(2024), None]
        );
        assert_eq!(
            ex(TimeUnitField::Month)?,
            vec![Some(12), Some(2), Some(3), None]
        );
        assert_eq!(
            ex(TimeUnitField::Day)?,
            vec![Some(31), Some(29), Some(1), None]
        );
        assert_eq!(
            ex(TimeUnitField::Hour)?,
            vec![Some(23), Some(23), Some(0), None]
        );
        assert_eq!(
            ex(TimeUnitField::Second)?,
            vec![Some(59), Some(59), Some(0), None]
        );
        assert_eq!(
            ex(TimeUnitField::Millisecond)?,
            vec![Some(59_999), Some(59_999), Some(0), None]
        );
        assert_eq!(
            ex(TimeUnitField::Quarter)?,
            vec![Some(4), Some(1), Some(1), None]
        );
        assert_eq!(
            ex(TimeUnitField::DayOfWeek)?,
            vec![Some(4), Some(5), Some(6), None]
        );
        assert_eq!(
            ex(TimeUnitField::DayOfYear)?,
            vec![Some(365), Some(60), Some(61), None]
        );
        assert_eq!(
            ex(TimeUnitField::Epoch)?,
            vec![Some(-1), Some(1_709_251_199), Some(1_709_251_200), None]
        );
        assert_eq!(
            ex(TimeUnitField::Week)?,
            vec![Some(1), Some(9), Some(9), None]
        );
        Ok(())
    }

    #[test]
    fn date_trunc_before_epoch_and_at_month_boundary() -> Result<()> {
        let b = ts_batch()?;
        let tr = |field| -> Result<Vec<Option<i64>>> {
            let e = f(ScalarFunction::DateTrunc(field), vec![col(0)]);
            assert_eq!(e.data_type(b.schema_ref())?, TS_MS);
            Ok(ts(&e.evaluate(&b)?))
        };
        assert_eq!(
            tr(TimeUnitField::Second)?,
            vec![Some(-1_000), Some(END_OF_FEB - 999), Some(MARCH_1), None]
        );
        assert_eq!(
            tr(TimeUnitField::Day)?,
            vec![Some(-DAY), Some(MARCH_1 - DAY), Some(MARCH_1), None]
        );
        // 1969-12-29 and 2024-02-26 are Mondays
        assert_eq!(
            tr(TimeUnitField::Week)?,
            vec![
                Some(-3 * DAY),
                Some(MARCH_1 - 4 * DAY),
                Some(MARCH_1 - 4 * DAY),
                None
            ]
        );
        // 1969-12-01, 2024-02-01, 2024-03-01
        assert_eq!(
            tr(TimeUnitField::Month)?,
            vec![
                Some(-31 * DAY),
                Some(MARCH_1 - 29 * DAY),
                Some(MARCH_1),
                None
            ]
        );
        // 1969-10-01, 2024-01-01
        assert_eq!(
            tr(TimeUnitField::Quarter)?,
            vec![
                Some(-92 * DAY),
                Some(1_704_067_200_000),
                Some(1_704_067_200_000),
                None
            ]
        );
        assert_eq!(
            tr(TimeUnitField::Year)?,
            vec![
                Some(-365 * DAY),
                Some(1_704_067_200_000),
                Some(1_704_067_200_000),
                None
            ]
        );
        Ok(())
    }

    #[test]
    fn timestamp_interval_arithmetic() -> Result<()> {
        let b = ts_batch()?;
        let plus_ms = binary(col(0), BinaryOp::Plus, lit(ScalarValue::IntervalMillis(1)));
        assert_eq!(plus_ms.data_type(b.schema_ref())?, TS_MS);
        assert_eq!(
            ts(&plus_ms.evaluate(&b)?),
            vec![Some(0), Some(MARCH_1), Some(MARCH_1 + 1), None]
        );
        let interval_first = binary(
            lit(ScalarValue::IntervalMillis(DAY)),
            BinaryOp::Plus,
            col(0),
        );
        assert_eq!(ts(&interval_first.evaluate(&b)?)[0], Some(DAY - 1));
        // 2024-01-31 + 1 month clamps to 2024-02-29
        let jan_31 = 1_706_659_200_000;
        let e = binary(
            lit(ScalarValue::TimestampMillis(jan_31)),
            BinaryOp::Plus,
            lit(ScalarValue::IntervalMonths(1)),
        );
        assert_eq!(ts(&e.evaluate(&b)?)[0], Some(MARCH_1 - DAY));
        let e = binary(
            col(0),
            BinaryOp::Minus,
            lit(ScalarValue::IntervalMonths(12)),
        );
        assert_eq!(ts(&e.evaluate(&b)?)[2], Some(1_677_628_800_000)); // 2023-03-01
                                                                      // timestamp - timestamp is an interval in milliseconds
        let diff = binary(
            col(0),
            BinaryOp::Minus,
            lit(ScalarValue::TimestampMillis(0)),
        );
        assert_eq!(diff.data_type(b.schema_ref())?, INTERVAL_MS);
        let out = diff.evaluate(&b)?;
        assert_eq!(
            ScalarValue::try_from_array(out.as_ref(), 2)?,
            ScalarValue::IntervalMillis(MARCH_1)
        );
        // intervals scale by integers and compare
        let scaled = binary(
            lit(ScalarValue::IntervalMillis(1_000)),
            BinaryOp::Multiply,
            lit(3),
        );
        assert_eq!(
            ScalarValue::try_from_array(scaled.evaluate(&b)?.as_ref(), 0)?,
            ScalarValue::IntervalMillis(3_000)
        );
        let cmp = binary(diff, BinaryOp::Gt, lit(ScalarValue::IntervalMillis(0)));
        assert_eq!(
            bools(&cmp.evaluate(&b)?),
            vec![Some(false), Some(true), Some(true), None]
        );
        Ok(())
    }

    #[test]
    fn math_functions() -> Result<()> {
        let b = batch()?;
        let round = |x: Expr, d: Option<i32>| {
            let mut args = vec![x];
            args.extend(d.map(lit));
            f(ScalarFunction::Round, args)
        };
        let get = |e: Expr| -> Result<Vec<Option<f64>>> {
            Ok(e.evaluate(&b)?
                .as_primitive::<Float64Type>()
                .iter()
                .collect())
        };
        assert_eq!(
            get(round(col(4), None))?,
            vec![Some(2.0), Some(0.0), Some(-3.0), None]
        );
        assert_eq!(get(round(lit(2.345), Some(2)))?[0], Some(2.35));
        assert_eq!(
            get(f(ScalarFunction::Floor, vec![col(4)]))?,
            vec![Some(1.0), Some(0.0), Some(-3.0), None]
        );
        assert_eq!(
            get(f(ScalarFunction::Ceil, vec![col(4)]))?,
            vec![Some(2.0), Some(0.0), Some(-2.0), None]
        );
        assert_eq!(
            get(f(ScalarFunction::Abs, vec![col(4)]))?,
            vec![Some(1.5), Some(0.0), Some(2.5), None]
        );
        let r = round(lit(1_250i64), Some(-2)).evaluate(&b)?;
        assert_eq!(i64s(&r)[0], Some(1_300));
        let a = f(ScalarFunction::Abs, vec![lit(-7)]).evaluate(&b)?;
        assert_eq!(a.as_primitive::<Int32Type>().value(0), 7);
        Ok(())
    }

    #[test]
    fn literals_broadcast_and_empty_batches() -> Result<()> {
        let b = batch()?;
        let out = binary(lit(2i64), BinaryOp::Multiply, lit(21i64)).evaluate(&b)?;
        assert_eq!(i64s(&out), vec![Some(42); 4]);
        let out = null().evaluate(&b)?;
        assert_eq!((out.len(), out.data_type()), (4, &DataType::Null));
        let empty = b.slice(0, 0);
        let e = Expr::Case {
            operand: None,
            when_then: vec![(col(2), lit(1))],
            else_expr: None,
        };
        assert_eq!(e.evaluate(&empty)?.len(), 0);
        assert_eq!(
            binary(col(0), BinaryOp::Plus, lit(1i64))
                .evaluate(&empty)?
                .len(),
            0
        );
        assert_eq!(ScalarValue::Utf8("x".into()).to_array(3)?.len(), 3);
        Ok(())
    }

    #[test]
    fn nullability() -> Result<()> {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, true),
        ]);
        assert!(!binary(col(0), BinaryOp::Plus, lit(1i64)).nullable(&schema)?);
        assert!(binary(col(0), BinaryOp::Plus, col(1)).nullable(&schema)?);
        assert!(!Expr::IsNull(Box::new(col(1))).nullable(&schema)?);
        let case = Expr::Case {
            operand: None,
            when_then: vec![(lit(true), col(0))],
            else_expr: None,
        };
        assert!(case.nullable(&schema)?);
        assert!(null().nullable(&schema)?);
        Ok(())
    }
}
