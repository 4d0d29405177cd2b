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
//!
//! The tree is [`Expr`] (in `tree`), built from [`ScalarValue`] literals
//! and the operators and functions of `operators`; `typing` types it,
//! `eval` and `short_circuit` evaluate it with the kernels of `kernels`,
//! `functions` and `temporal` under the coercion rules of `coercion`.

mod coercion;
mod display;
mod eval;
mod functions;
mod kernels;
mod operators;
mod scalar;
mod short_circuit;
mod temporal;
mod tree;
mod typing;
mod value;

#[cfg(test)]
mod tests;

pub(crate) use coercion::fits_decimal_38;
pub use coercion::{INTERVAL_MONTHS, INTERVAL_MS, TS_MS};
pub use operators::{BinaryOp, ScalarFunction, TimeUnitField};
pub use scalar::ScalarValue;
pub use tree::{and, binary, call, cast, col, lit, not, null, or, try_cast, Expr};
pub(crate) use value::Value;
