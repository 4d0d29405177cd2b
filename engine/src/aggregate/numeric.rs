//! What the numeric aggregates (`SUM`, `AVG` and the variance family)
//! share: widening an argument's native values, dispatch on the argument
//! type, and reading the argument column of an update call.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{ArrowPrimitiveType, DataType};

use super::UpdateArgs;
use crate::error::{EngineError, Result};
use crate::internal_err;

/// Widening of an argument's native value to the accumulator's number types.
pub(crate) trait Widen: Copy + Send + Sync + 'static {
    fn widen_f64(self) -> f64;
    /// The value as i64, and whether that lost information (only u64 can).
    fn widen_i64(self) -> (i64, bool);
}

macro_rules! widen_int {
    ($($t:ty),*) => {$(
        impl Widen for $t {
            #[inline(always)]
            fn widen_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn widen_i64(self) -> (i64, bool) {
                (self as i64, false)
            }
        }
    )*};
}
widen_int!(i8, i16, i32, i64, u8, u16, u32);

impl Widen for u64 {
    #[inline(always)]
    fn widen_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn widen_i64(self) -> (i64, bool) {
        (self as i64, self > i64::MAX as u64)
    }
}

impl Widen for f32 {
    #[inline(always)]
    fn widen_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn widen_i64(self) -> (i64, bool) {
        (self as i64, true)
    }
}

impl Widen for f64 {
    #[inline(always)]
    fn widen_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn widen_i64(self) -> (i64, bool) {
        (self as i64, true)
    }
}

/// Expands `$body` with `$T` bound to the primitive type of a numeric
/// `DataType`, or evaluates `$fallback` for any other type.
macro_rules! with_numeric_type {
    ($dt:expr, $T:ident => $body:expr, _ => $fallback:expr) => {
        match $dt {
            arrow::datatypes::DataType::Int8 => {
                type $T = arrow::datatypes::Int8Type;
                $body
            }
            arrow::datatypes::DataType::Int16 => {
                type $T = arrow::datatypes::Int16Type;
                $body
            }
            arrow::datatypes::DataType::Int32 => {
                type $T = arrow::datatypes::Int32Type;
                $body
            }
            arrow::datatypes::DataType::Int64 => {
                type $T = arrow::datatypes::Int64Type;
                $body
            }
            arrow::datatypes::DataType::UInt8 => {
                type $T = arrow::datatypes::UInt8Type;
                $body
            }
            arrow::datatypes::DataType::UInt16 => {
                type $T = arrow::datatypes::UInt16Type;
                $body
            }
            arrow::datatypes::DataType::UInt32 => {
                type $T = arrow::datatypes::UInt32Type;
                $body
            }
            arrow::datatypes::DataType::UInt64 => {
                type $T = arrow::datatypes::UInt64Type;
                $body
            }
            arrow::datatypes::DataType::Float32 => {
                type $T = arrow::datatypes::Float32Type;
                $body
            }
            arrow::datatypes::DataType::Float64 => {
                type $T = arrow::datatypes::Float64Type;
                $body
            }
            _ => $fallback,
        }
    };
}
pub(super) use with_numeric_type;

/// The values slice of the single numeric argument, downcast once per call.
pub(super) fn numeric_input<'a, T: ArrowPrimitiveType>(
    args: &UpdateArgs<'a>,
    func: &str,
) -> Result<&'a [T::Native]> {
    args.validate(1)?;
    match args.values[0].as_primitive_opt::<T>() {
        // Slicing to the row count lets the compiler drop bounds checks.
        Some(a) => Ok(&a.values()[..args.groups.len()]),
        None => internal_err!(
            "{func} expected a {} argument, got {}",
            T::DATA_TYPE,
            args.values[0].data_type()
        ),
    }
}

pub(super) fn not_numeric(func: &str, t: &DataType) -> EngineError {
    EngineError::Plan(format!(
        "{func} does not accept {t}; expected a numeric argument"
    ))
}
