//! Thin wrappers over Arrow kernels that turn data-dependent kernel failures
//! (overflow, division by zero, bad casts) into [`EngineError::Execution`].

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Datum, Scalar};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::coercion::BinarySignature;
use super::{BinaryOp, Value};
use crate::error::{EngineError, Result};
use crate::exec_err;

/// Sorts a kernel error: failures caused by the values are the user's
/// (Execution), anything else is an engine bug (Arrow).
pub(crate) fn kernel_err(e: ArrowError) -> EngineError {
    match e {
        ArrowError::DivideByZero => EngineError::Execution("division by zero".into()),
        ArrowError::ArithmeticOverflow(m) => {
            EngineError::Execution(format!("numeric overflow: {m}"))
        }
        ArrowError::CastError(m) => EngineError::Execution(m),
        ArrowError::ComputeError(m) => EngineError::Execution(m),
        other => EngineError::Arrow(other),
    }
}

/// True when row `i` of `array` holds a value (logical nulls, so that
/// `NullArray` and dictionaries answer correctly).
pub(crate) fn is_valid_at(array: &dyn Array, i: usize) -> bool {
    array.logical_nulls().is_none_or(|n| n.is_valid(i))
}

/// Casts and fails on the first value that does not convert, naming it.
pub(crate) fn cast_strict(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(Arc::clone(array));
    }
    // A safe cast turns bad values into NULL; comparing null positions
    // before and after finds the offending value for the error message.
    let out = cast_safe(array, to)?;
    if array.data_type() != &DataType::Null && out.logical_null_count() > array.logical_null_count()
    {
        for i in 0..array.len() {
            if is_valid_at(array.as_ref(), i) && !is_valid_at(out.as_ref(), i) {
                let shown = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
                    .map(|f| f.value(i).to_string())
                    .unwrap_or_else(|_| "?".into());
                exec_err!("cannot cast '{shown}' to {to}");
            }
        }
    }
    Ok(out)
}

/// Casts, turning values that do not convert into NULL.
pub(crate) fn cast_safe(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(Arc::clone(array));
    }
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    cast_with_options(array.as_ref(), to, &options).map_err(kernel_err)
}

/// Casts a value, keeping scalars scalar.
pub(crate) fn cast_value(v: Value, to: &DataType) -> Result<Value> {
    Ok(match v {
        Value::Array(a) => Value::Array(cast_strict(&a, to)?),
        Value::Scalar(a) => Value::Scalar(cast_strict(&a, to)?),
    })
}

/// A value as an Arrow [`Datum`], so kernels broadcast scalars themselves.
enum DatumRef<'a> {
    Array(&'a ArrayRef),
    Scalar(Scalar<ArrayRef>),
}

impl<'a> DatumRef<'a> {
    fn new(v: &'a Value) -> Self {
        match v {
            Value::Array(a) => DatumRef::Array(a),
            Value::Scalar(a) => DatumRef::Scalar(Scalar::new(Arc::clone(a))),
        }
    }

    fn datum(&self) -> &dyn Datum {
        match self {
            DatumRef::Array(a) => *a,
            DatumRef::Scalar(s) => s,
        }
    }
}

/// Wraps a kernel result, scalar when both inputs were.
fn wrap(l: &Value, r: &Value, out: ArrayRef) -> Value {
    if l.is_scalar() && r.is_scalar() {
        Value::Scalar(out)
    } else {
        Value::Array(out)
    }
}

/// Applies a comparison (already cast to one type).
pub(crate) fn compare(op: BinaryOp, l: &Value, r: &Value) -> Result<Value> {
    if l.data_type() == &DataType::Null {
        return Ok(wrap(
            l,
            r,
            arrow::array::new_null_array(&DataType::Boolean, l.len().max(r.len())),
        ));
    }
    let (ld, rd) = (DatumRef::new(l), DatumRef::new(r));
    let (ld, rd) = (ld.datum(), rd.datum());
    let out: BooleanArray = match op {
        BinaryOp::Eq => cmp::eq(ld, rd),
        BinaryOp::NotEq => cmp::neq(ld, rd),
        BinaryOp::Lt => cmp::lt(ld, rd),
        BinaryOp::LtEq => cmp::lt_eq(ld, rd),
        BinaryOp::Gt => cmp::gt(ld, rd),
        BinaryOp::GtEq => cmp::gt_eq(ld, rd),
        other => {
            return Err(EngineError::Internal(format!(
                "'{other}' is not a comparison"
            )))
        }
    }
    .map_err(kernel_err)?;
    Ok(wrap(l, r, Arc::new(out)))
}

/// Three-valued AND / OR of two boolean arrays of equal length.
pub(crate) fn kleene(op: BinaryOp, l: &ArrayRef, r: &ArrayRef) -> Result<ArrayRef> {
    let l = cast_strict(l, &DataType::Boolean)?;
    let r = cast_strict(r, &DataType::Boolean)?;
    let (l, r) = (l.as_boolean(), r.as_boolean());
    let out = match op {
        BinaryOp::And => boolean::and_kleene(l, r),
        BinaryOp::Or => boolean::or_kleene(l, r),
        other => return Err(EngineError::Internal(format!("'{other}' is not AND/OR"))),
    }
    .map_err(kernel_err)?;
    Ok(Arc::new(out))
}

/// True when some row has a valid left value and a valid zero divisor.
fn float_zero_divisor(l: &Value, r: &Value) -> bool {
    let n = l.len().max(r.len());
    let r_arr = r.array();
    let zero_at = |i: usize| -> bool {
        let j = if r.is_scalar() { 0 } else { i };
        if !is_valid_at(r_arr.as_ref(), j) {
            return false;
        }
        match r_arr.data_type() {
            DataType::Float64 => r_arr.as_primitive::<Float64Type>().value(j) == 0.0,
            DataType::Float32 => r_arr.as_primitive::<Float32Type>().value(j) == 0.0,
            _ => false,
        }
    };
    let l_arr = l.array();
    let l_valid = |i: usize| is_valid_at(l_arr.as_ref(), if l.is_scalar() { 0 } else { i });
    if r.is_scalar() {
        return zero_at(0) && (0..n).any(l_valid);
    }
    (0..n).any(|i| zero_at(i) && l_valid(i))
}

/// Applies arithmetic after both sides were cast per `sig`.
///
/// Division and modulo by zero are an error for every numeric type: Arrow
/// already fails for integers, and floats are checked here so that `x / 0.0`
/// does not silently yield infinity or NaN (one rule for all, as Flink does
/// for integers). A zero divisor in a row whose dividend is NULL is NULL.
pub(crate) fn arithmetic(
    op: BinaryOp,
    sig: &BinarySignature,
    l: &Value,
    r: &Value,
) -> Result<Value> {
    if sig.result == DataType::Null {
        return Ok(wrap(
            l,
            r,
            arrow::array::new_null_array(&DataType::Null, l.len().max(r.len())),
        ));
    }
    if matches!(op, BinaryOp::Divide | BinaryOp::Modulo)
        && matches!(sig.right, DataType::Float32 | DataType::Float64)
        && float_zero_divisor(l, r)
    {
        exec_err!("division by zero");
    }
    // Durations have no multiply/divide kernel: scale their millisecond count.
    let duration_scaled = matches!(op, BinaryOp::Multiply | BinaryOp::Divide)
        && matches!(sig.result, DataType::Duration(_));
    let (l, r) = if duration_scaled {
        (
            cast_value(l.clone(), &DataType::Int64)?,
            cast_value(r.clone(), &DataType::Int64)?,
        )
    } else {
        (l.clone(), r.clone())
    };
    if let (BinaryOp::Divide, DataType::Decimal128(_, scale)) = (op, &sig.result) {
        let out = decimal_divide(&l, &r, *scale)?;
        let out = Arc::new(out.with_data_type(sig.result.clone())) as ArrayRef;
        return Ok(wrap(&l, &r, out));
    }
    let (ld, rd) = (DatumRef::new(&l), DatumRef::new(&r));
    let (ld, rd) = (ld.datum(), rd.datum());
    let out = match op {
        BinaryOp::Plus => numeric::add(ld, rd),
        BinaryOp::Minus => numeric::sub(ld, rd),
        BinaryOp::Multiply => numeric::mul(ld, rd),
        BinaryOp::Divide => numeric::div(ld, rd),
        BinaryOp::Modulo => numeric::rem(ld, rd),
        other => {
            return Err(EngineError::Internal(format!(
                "'{other}' is not arithmetic"
            )))
        }
    }
    .map_err(kernel_err)?;
    let out = if duration_scaled {
        cast_strict(&out, &sig.result)?
    } else {
        out
    };
    if out.data_type() != &sig.result {
        // The kernels return the planned type for every signature; a
        // mismatch would break the batch schema downstream.
        return Err(EngineError::Internal(format!(
            "'{op}' returned {} where {} was planned",
            out.data_type(),
            sig.result
        )));
    }
    Ok(wrap(&l, &r, out))
}

/// DECIMAL division as Flink does it: the quotient at `scale`, rounded
/// half away from zero; division by zero and a quotient past 38 digits are
/// errors.
fn decimal_divide(l: &Value, r: &Value, scale: i8) -> Result<arrow::array::Decimal128Array> {
    use arrow::datatypes::Decimal128Type;
    let n = l.len().max(r.len());
    let (la, ra) = (l.clone().into_array(n)?, r.clone().into_array(n)?);
    let (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) =
        (la.data_type(), ra.data_type())
    else {
        return Err(EngineError::Internal(
            "DECIMAL division of other types".into(),
        ));
    };
    // quotient = l * 10^(scale - s1 + s2) / r, all unscaled.
    let shift = i32::from(scale) - i32::from(*s1) + i32::from(*s2);
    let (la, ra) = (
        la.as_primitive::<Decimal128Type>(),
        ra.as_primitive::<Decimal128Type>(),
    );
    let overflow = || EngineError::Execution("DECIMAL division overflowed DECIMAL(38)".into());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if la.is_null(i) || ra.is_null(i) {
            out.push(None);
            continue;
        }
        let (a, b) = (la.value(i), ra.value(i));
        if b == 0 {
            exec_err!("division by zero");
        }
        let (num, den) = if shift >= 0 {
            let f = 10i128.checked_pow(shift as u32).ok_or_else(overflow)?;
            (a.checked_mul(f).ok_or_else(overflow)?, b)
        } else {
            let f = 10i128
                .checked_pow(shift.unsigned_abs())
                .ok_or_else(overflow)?;
            (a, b.checked_mul(f).ok_or_else(overflow)?)
        };
        let (q, rem) = (num / den, num % den);
        let q = if rem.unsigned_abs() * 2 >= den.unsigned_abs() {
            if (num < 0) != (den < 0) {
                q - 1
            } else {
                q + 1
            }
        } else {
            q
        };
        if !super::coercion::fits_decimal_38(q) {
            return Err(overflow());
        }
        out.push(Some(q));
    }
    Ok(arrow::array::Decimal128Array::from(out))
}

/// Unary minus, failing on overflow (`-i64::MIN`).
pub(crate) fn negate(v: &Value) -> Result<Value> {
    let a = v.array();
    if a.data_type() == &DataType::Null {
        return Ok(v.clone());
    }
    let out = numeric::neg(a.as_ref()).map_err(kernel_err)?;
    Ok(if v.is_scalar() {
        Value::Scalar(out)
    } else {
        Value::Array(out)
    })
}

/// LIKE / ILIKE on two string values (already cast to `Utf8`). `%` and `_`
/// are wildcards, a backslash escapes them, and every other character
/// (regex meta characters included) matches itself.
pub(crate) fn like(
    l: &Value,
    pattern: &Value,
    negated: bool,
    case_insensitive: bool,
) -> Result<Value> {
    let (ld, rd) = (DatumRef::new(l), DatumRef::new(pattern));
    let (ld, rd) = (ld.datum(), rd.datum());
    let out = match (negated, case_insensitive) {
        (false, false) => arrow::compute::kernels::comparison::like(ld, rd),
        (false, true) => arrow::compute::kernels::comparison::ilike(ld, rd),
        (true, false) => arrow::compute::kernels::comparison::nlike(ld, rd),
        (true, true) => arrow::compute::kernels::comparison::nilike(ld, rd),
    }
    .map_err(kernel_err)?;
    Ok(wrap(l, pattern, Arc::new(out)))
}
