//! Type rules: which operand types an operator accepts and what each side is
//! converted to before the Arrow kernel runs.
//!
//! Both planning ([`super::Expr::data_type`]) and evaluation use these rules,
//! so the types a plan promises are the types evaluation produces.

use arrow::datatypes::{DataType, IntervalUnit, TimeUnit};

use super::BinaryOp;
use crate::error::Result;
use crate::plan_err;

/// The timestamp type of event time (Flink's `TIMESTAMP(3)`).
pub const TS_MS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);
/// How [`super::ScalarValue::IntervalMillis`] is stored: a day-time interval
/// as an exact number of milliseconds.
pub const INTERVAL_MS: DataType = DataType::Duration(TimeUnit::Millisecond);
/// How [`super::ScalarValue::IntervalMonths`] is stored.
pub const INTERVAL_MONTHS: DataType = DataType::Interval(IntervalUnit::YearMonth);

/// True for the string types; all of them are read as `Utf8`.
pub(crate) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// True for types arithmetic accepts.
pub(crate) fn is_numeric(t: &DataType) -> bool {
    numeric_rank(t).is_some()
}

/// True for integer types.
pub(crate) fn is_integer(t: &DataType) -> bool {
    matches!(numeric_rank(t), Some((false, _))) && !is_decimal(t)
}

/// `(is_float, width rank)` of a numeric type. Unsigned integers rank as the
/// next wider signed type so mixing them with signed ones never loses values.
/// DECIMAL(p, s) (Arrow `Decimal128`) ranks as an exact type of its own (see
/// [`decimal_of`]); the other decimal widths are computed as `Float64`.
fn numeric_rank(t: &DataType) -> Option<(bool, u8)> {
    use DataType::*;
    Some(match t {
        Int8 => (false, 1),
        Int16 | UInt8 => (false, 2),
        Int32 | UInt16 => (false, 3),
        Int64 | UInt32 | UInt64 => (false, 4),
        Decimal128(_, _) => (false, 5),
        Float16 | Float32 => (true, 3),
        Float64 | Decimal32(_, _) | Decimal64(_, _) | Decimal256(_, _) => (true, 4),
        _ => return None,
    })
}

/// The largest precision of a DECIMAL.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// True when the unscaled value `v` has at most 38 digits (fits any
/// DECIMAL(38, s)).
pub(crate) fn fits_decimal_38(v: i128) -> bool {
    v.unsigned_abs() < 10u128.pow(u32::from(MAX_DECIMAL_PRECISION))
}

/// The exact DECIMAL(precision, scale) an integer or decimal type fits in
/// (Flink's: BIGINT is DECIMAL(19, 0), INT DECIMAL(10, 0), ...); `None`
/// for floats and other types.
pub(crate) fn decimal_of(t: &DataType) -> Option<(u8, i8)> {
    use DataType::*;
    Some(match t {
        Decimal128(p, s) => (*p, *s),
        Int8 | UInt8 => (3, 0),
        Int16 | UInt16 => (5, 0),
        Int32 | UInt32 => (10, 0),
        Int64 => (19, 0),
        UInt64 => (20, 0),
        _ => return None,
    })
}

/// True when `t` is `Decimal128`.
pub(crate) fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(_, _))
}

/// The DECIMAL both `l` and `r` convert to without losing digits: the
/// larger scale and the larger number of integer digits (at most 38 in
/// all, the scale kept).
fn common_decimal(l: (u8, i8), r: (u8, i8)) -> DataType {
    let scale = l.1.max(r.1);
    let ints = (l.0 as i16 - l.1 as i16)
        .max(r.0 as i16 - r.1 as i16)
        .max(1);
    let precision = (ints + scale.max(0) as i16).clamp(1, MAX_DECIMAL_PRECISION as i16) as u8;
    DataType::Decimal128(precision, scale.min(precision as i8))
}

/// The type two numeric operands are widened to.
pub(crate) fn numeric_common(l: &DataType, r: &DataType) -> Option<DataType> {
    let (lf, lw) = numeric_rank(l)?;
    let (rf, rw) = numeric_rank(r)?;
    // DECIMAL with an integer or a DECIMAL stays exact; with a float it
    // is a DOUBLE (as in Flink).
    if !lf && !rf && (is_decimal(l) || is_decimal(r)) {
        return Some(common_decimal(decimal_of(l)?, decimal_of(r)?));
    }
    Some(if lf || rf {
        // FLOAT op FLOAT stays FLOAT; anything involving a wider type or an
        // integer goes to DOUBLE, as in Flink.
        if lf && rf && lw == 3 && rw == 3 {
            DataType::Float32
        } else {
            DataType::Float64
        }
    } else {
        match lw.max(rw) {
            1 => DataType::Int8,
            2 => DataType::Int16,
            3 => DataType::Int32,
            _ => DataType::Int64,
        }
    })
}

/// The type a numeric operand is computed in when it stands alone (unary
/// functions): signed integers and floats keep their type.
pub(crate) fn numeric_self(t: &DataType) -> Option<DataType> {
    numeric_common(t, t)
}

/// Normalises a timestamp of any unit to milliseconds, keeping the zone.
fn ts_ms(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Timestamp(_, tz) => Some(DataType::Timestamp(TimeUnit::Millisecond, tz.clone())),
        _ => None,
    }
}

/// True for types that have an order and equality the comparison kernels support.
fn is_comparable(t: &DataType) -> bool {
    use DataType::*;
    t.is_primitive()
        || matches!(
            t,
            Null | Boolean | Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary
        )
}

/// The type two operands are converted to before comparing (or before one
/// is chosen over the other, as in CASE and COALESCE).
pub(crate) fn common_type(l: &DataType, r: &DataType) -> Option<DataType> {
    use DataType::*;
    if l == r {
        return is_comparable(l).then(|| l.clone());
    }
    match (l, r) {
        (Null, other) | (other, Null) => is_comparable(other).then(|| other.clone()),
        _ if is_numeric(l) && is_numeric(r) => numeric_common(l, r),
        _ if is_string(l) && is_string(r) => Some(Utf8),
        (Timestamp(_, lz), Timestamp(_, rz)) => Some(Timestamp(
            TimeUnit::Millisecond,
            if lz == rz { lz.clone() } else { None },
        )),
        (Timestamp(_, tz), Date32 | Date64) | (Date32 | Date64, Timestamp(_, tz)) => {
            Some(Timestamp(TimeUnit::Millisecond, tz.clone()))
        }
        (Date32, Date64) | (Date64, Date32) => Some(Date64),
        (Duration(_), Duration(_)) => Some(INTERVAL_MS),
        _ => None,
    }
}

/// Like [`common_type`] over a list; `what` names the construct in errors.
pub(crate) fn common_type_of(types: &[DataType], what: &str) -> Result<DataType> {
    let mut acc = DataType::Null;
    for t in types {
        match common_type(&acc, t) {
            Some(c) => acc = c,
            None => plan_err!("{what} mixes incompatible types {acc} and {t}"),
        }
    }
    Ok(acc)
}

/// How a binary operator's operands are converted and what it returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BinarySignature {
    /// Type the left operand is cast to.
    pub left: DataType,
    /// Type the right operand is cast to.
    pub right: DataType,
    /// Type of the result.
    pub result: DataType,
}

impl BinarySignature {
    fn same(t: DataType, result: DataType) -> Self {
        Self {
            left: t.clone(),
            right: t,
            result,
        }
    }
}

/// True for types `||` and CONCAT turn into text.
pub(crate) fn is_stringifiable(t: &DataType) -> bool {
    is_string(t)
        || is_numeric(t)
        || matches!(
            t,
            DataType::Null | DataType::Boolean | DataType::Date32 | DataType::Date64
        )
        || matches!(t, DataType::Timestamp(_, _))
}

/// The signature of `l op r`, or a plan error naming both types.
pub(crate) fn binary_signature(
    op: BinaryOp,
    l: &DataType,
    r: &DataType,
) -> Result<BinarySignature> {
    use BinaryOp::*;
    use DataType::*;
    let sig = match op {
        And | Or => match (l, r) {
            (Boolean | Null, Boolean | Null) => Some(BinarySignature::same(Boolean, Boolean)),
            _ => None,
        },
        Eq | NotEq | Lt | LtEq | Gt | GtEq => {
            common_type(l, r).map(|t| BinarySignature::same(t, Boolean))
        }
        StringConcat => {
            (is_stringifiable(l) && is_stringifiable(r)).then(|| BinarySignature::same(Utf8, Utf8))
        }
        Plus | Minus | Multiply | Divide | Modulo => arithmetic_signature(op, l, r),
    };
    match sig {
        Some(s) => Ok(s),
        None => plan_err!("cannot apply '{op}' to {l} and {r}"),
    }
}

fn arithmetic_signature(op: BinaryOp, l: &DataType, r: &DataType) -> Option<BinarySignature> {
    use BinaryOp::*;
    use DataType::*;
    let sig = |left: DataType, right: DataType, result: DataType| {
        Some(BinarySignature {
            left,
            right,
            result,
        })
    };
    // A NULL literal takes the type of the other side; NULL op NULL is NULL.
    match (l, r) {
        (Null, Null) => return sig(Null, Null, Null),
        // NULL op DECIMAL: the NULL takes the DECIMAL's type, and the
        // result is what the decimal rule gives for that pair.
        (Null, d) | (d, Null) if is_decimal(d) => {
            return sig(d.clone(), d.clone(), decimal_result(op, d, d)?);
        }
        (Null, other) if is_numeric(other) => {
            let t = numeric_self(other)?;
            return Some(BinarySignature::same(t.clone(), t));
        }
        (other, Null) if is_numeric(other) => {
            let t = numeric_self(other)?;
            return Some(BinarySignature::same(t.clone(), t));
        }
        _ => {}
    }
    // Exact arithmetic: each side a DECIMAL of its own precision and
    // scale, the result Arrow's (Hive's) rule for the operator.
    if (is_decimal(l) || is_decimal(r)) && numeric_common(l, r).is_some_and(|t| is_decimal(&t)) {
        let (lp, ls) = decimal_of(l)?;
        let (rp, rs) = decimal_of(r)?;
        let (left, right) = (DataType::Decimal128(lp, ls), DataType::Decimal128(rp, rs));
        let result = decimal_result(op, &left, &right)?;
        return sig(left, right, result);
    }
    if let Some(t) = numeric_common(l, r) {
        return Some(BinarySignature::same(t.clone(), t));
    }
    let is_ivl_ms = |t: &DataType| matches!(t, Duration(_) | Null);
    let is_ivl_months = |t: &DataType| matches!(t, Interval(IntervalUnit::YearMonth) | Null);
    match (op, l, r) {
        // timestamp ± interval
        (Plus | Minus, Timestamp(_, _), _) if is_ivl_ms(r) => {
            let ts = ts_ms(l)?;
            sig(ts.clone(), INTERVAL_MS, ts)
        }
        (Plus | Minus, Timestamp(_, _), Interval(IntervalUnit::YearMonth)) => {
            let ts = ts_ms(l)?;
            sig(ts.clone(), INTERVAL_MONTHS, ts)
        }
        (Plus, Duration(_) | Null, Timestamp(_, _)) => {
            let ts = ts_ms(r)?;
            sig(INTERVAL_MS, ts.clone(), ts)
        }
        (Plus, Interval(IntervalUnit::YearMonth), Timestamp(_, _)) => {
            let ts = ts_ms(r)?;
            sig(INTERVAL_MONTHS, ts.clone(), ts)
        }
        // timestamp − timestamp is the exact number of milliseconds between them
        (Minus, Timestamp(_, _), Timestamp(_, _)) => {
            let t = common_type(l, r)?;
            sig(t.clone(), t, INTERVAL_MS)
        }
        // date ± months stays a date; date ± milliseconds becomes a timestamp
        (Plus | Minus, Date32, Interval(IntervalUnit::YearMonth)) => {
            sig(Date32, INTERVAL_MONTHS, Date32)
        }
        (Plus, Interval(IntervalUnit::YearMonth), Date32) => sig(INTERVAL_MONTHS, Date32, Date32),
        (Plus | Minus, Date32 | Date64, Duration(_)) => sig(TS_MS, INTERVAL_MS, TS_MS),
        (Plus, Duration(_), Date32 | Date64) => sig(INTERVAL_MS, TS_MS, TS_MS),
        (Minus, Date32 | Date64, Date32 | Date64) => sig(TS_MS, TS_MS, INTERVAL_MS),
        // interval ± interval of the same kind
        (Plus | Minus, _, _) if is_ivl_ms(l) && is_ivl_ms(r) => {
            sig(INTERVAL_MS, INTERVAL_MS, INTERVAL_MS)
        }
        (Plus | Minus, _, _) if is_ivl_months(l) && is_ivl_months(r) => {
            sig(INTERVAL_MONTHS, INTERVAL_MONTHS, INTERVAL_MONTHS)
        }
        // interval scaled by an integer
        (Multiply | Divide, Duration(_), _) if is_integer(r) => {
            sig(INTERVAL_MS, Int64, INTERVAL_MS)
        }
        (Multiply, _, Duration(_)) if is_integer(l) => sig(Int64, INTERVAL_MS, INTERVAL_MS),
        (Multiply, Interval(IntervalUnit::YearMonth), _) if is_integer(r) => {
            sig(INTERVAL_MONTHS, Int64, INTERVAL_MONTHS)
        }
        (Multiply, _, Interval(IntervalUnit::YearMonth)) if is_integer(l) => {
            sig(Int64, INTERVAL_MONTHS, INTERVAL_MONTHS)
        }
        _ => None,
    }
}

/// The DECIMAL type Arrow's kernel gives `l op r`, found by running it on
/// no rows, so that the planned type is the computed one; `None` when the
/// kernel refuses the pair (a scale past 38).
fn decimal_result(op: BinaryOp, l: &DataType, r: &DataType) -> Option<DataType> {
    use arrow::compute::kernels::numeric;
    if let (BinaryOp::Divide, Some(l), Some(r)) = (op, decimal_of(l), decimal_of(r)) {
        return Some(decimal_quotient_type(l, r));
    }
    let (a, b) = (
        arrow::array::new_empty_array(l),
        arrow::array::new_empty_array(r),
    );
    let out = match op {
        BinaryOp::Plus => numeric::add(&a, &b),
        BinaryOp::Minus => numeric::sub(&a, &b),
        BinaryOp::Multiply => numeric::mul(&a, &b),
        BinaryOp::Divide => numeric::div(&a, &b),
        BinaryOp::Modulo => numeric::rem(&a, &b),
        _ => return None,
    };
    out.ok().map(|a| a.data_type().clone())
}

/// Flink's type of DECIMAL(p1, s1) / DECIMAL(p2, s2): scale max(6, s1 +
/// p2 + 1), precision p1 - s1 + s2 + scale; past 38 digits the integer
/// digits are kept and the scale cut, to no less than min(scale, 6).
pub(crate) fn decimal_quotient_type((p1, s1): (u8, i8), (p2, s2): (u8, i8)) -> DataType {
    let (p1, s1, p2, s2) = (i32::from(p1), i32::from(s1), i32::from(p2), i32::from(s2));
    let scale = 6.max(s1 + p2 + 1);
    let precision = p1 - s1 + s2 + scale;
    let max = i32::from(MAX_DECIMAL_PRECISION);
    let (precision, scale) = if precision <= max {
        (precision, scale)
    } else {
        let digits = precision - scale;
        (max, (max - digits).max(scale.min(6)))
    };
    DataType::Decimal128(precision.clamp(1, max) as u8, scale.clamp(0, max) as i8)
}

/// The result type of a unary minus.
pub(crate) fn negative_type(t: &DataType) -> Result<DataType> {
    match t {
        DataType::Null => Ok(DataType::Null),
        DataType::Duration(_) => Ok(INTERVAL_MS),
        DataType::Interval(IntervalUnit::YearMonth) => Ok(INTERVAL_MONTHS),
        _ => match numeric_self(t) {
            Some(n) => Ok(n),
            None => plan_err!("cannot negate a value of type {t}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_widening() {
        assert_eq!(
            numeric_common(&DataType::Int32, &DataType::Int64),
            Some(DataType::Int64)
        );
        assert_eq!(
            numeric_common(&DataType::Int8, &DataType::Int16),
            Some(DataType::Int16)
        );
        assert_eq!(
            numeric_common(&DataType::UInt32, &DataType::Int32),
            Some(DataType::Int64)
        );
        assert_eq!(
            numeric_common(&DataType::Int64, &DataType::Float32),
            Some(DataType::Float64)
        );
        assert_eq!(
            numeric_common(&DataType::Float32, &DataType::Float32),
            Some(DataType::Float32)
        );
        assert_eq!(numeric_common(&DataType::Utf8, &DataType::Int32), None);
    }

    #[test]
    fn comparison_types() {
        assert_eq!(
            common_type(&DataType::Utf8, &DataType::LargeUtf8),
            Some(DataType::Utf8)
        );
        assert_eq!(
            common_type(&DataType::Null, &DataType::Int32),
            Some(DataType::Int32)
        );
        assert_eq!(common_type(&DataType::Utf8, &DataType::Int64), None);
        assert_eq!(common_type(&DataType::Date32, &TS_MS), Some(TS_MS));
    }

    #[test]
    fn temporal_arithmetic_types() -> Result<()> {
        let s = binary_signature(BinaryOp::Plus, &TS_MS, &INTERVAL_MS)?;
        assert_eq!(s.result, TS_MS);
        let s = binary_signature(BinaryOp::Plus, &INTERVAL_MONTHS, &TS_MS)?;
        assert_eq!(s.result, TS_MS);
        let s = binary_signature(BinaryOp::Minus, &TS_MS, &TS_MS)?;
        assert_eq!(s.result, INTERVAL_MS);
        assert!(binary_signature(BinaryOp::Plus, &TS_MS, &TS_MS).is_err());
        assert!(binary_signature(BinaryOp::Minus, &INTERVAL_MS, &TS_MS).is_err());
        Ok(())
    }
}
