//! Typed single values: SQL literals and single cells read out of arrays.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Date32Array, DurationMillisecondArray,
    Float64Array, Int32Array, Int64Array, IntervalYearMonthArray, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::DataType;

use super::coercion::{INTERVAL_MONTHS, INTERVAL_MS, TS_MS};
use super::kernels;
use crate::error::Result;
use crate::internal_err;

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
    /// DECIMAL(precision, scale): the unscaled value (`1.25` in
    /// DECIMAL(3, 2) is 125).
    Decimal128(i128, u8, i8),
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
            ScalarValue::Decimal128(_, p, s) => DataType::Decimal128(*p, *s),
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
            ScalarValue::Decimal128(v, p, s) => Arc::new(
                arrow::array::Decimal128Array::from_value(*v, len)
                    .with_precision_and_scale(*p, *s)?,
            ),
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
            DataType::Decimal128(p, s) => {
                ScalarValue::Decimal128(array.as_primitive::<Decimal128Type>().value(i), *p, *s)
            }
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
