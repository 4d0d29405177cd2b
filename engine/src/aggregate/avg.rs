//! `AVG` as a fold over the shared per-group state: an f64 sum and a row
//! count per group, divided when the result is asked for.

use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::{ArrowPrimitiveType, DataType};

use super::codec::{self, tag, Reader};
use super::group_state::{Fold, GroupState, Layout, Native};
use super::numeric::{not_numeric, numeric_input, with_numeric_type, Widen};
use super::{GroupsAccumulator, UpdateArgs};
use crate::error::Result;
use crate::expr::fits_decimal_38;

/// The AVG accumulator for a numeric argument type: an integer of the
/// argument's type for integers (as Flink), a DOUBLE otherwise.
pub(super) fn create_avg(t: &DataType) -> Result<Box<dyn GroupsAccumulator>> {
    if let DataType::Decimal128(_, s) = t {
        return Ok(Box::new(GroupState::<AvgDecimal>::new(DecimalSums::new(
            *s,
        ))));
    }
    if t.is_integer() {
        return with_numeric_type!(t, T => Ok(Box::new(GroupState::<IntAvg<T>>::new(Vec::new()))), _ => Err(not_numeric("AVG", t)));
    }
    with_numeric_type!(t, T => Ok(Box::new(GroupState::<Avg<T>>::new(Vec::new()))), _ => Err(not_numeric("AVG", t)))
}

/// One group's exact running sum and row count, for integer AVG.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IntSumCount {
    sum: i128,
    count: u64,
}

impl Native for IntSumCount {
    fn put(self, out: &mut Vec<u8>) {
        codec::put_u64(out, self.count);
        // Low then high 64 bits.
        codec::put_u64(out, self.sum as u64);
        codec::put_i64(out, (self.sum >> 64) as i64);
    }

    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let count = r.u64()?;
        let low = r.u64()?;
        let high = r.i64()?;
        Ok(Self {
            sum: (i128::from(high) << 64) | i128::from(low),
            count,
        })
    }
}

/// `AVG` of an integer argument: the exact sum divided by the count,
/// truncated toward zero (Java's and so Flink's integer division), of the
/// argument's type.
pub(crate) struct IntAvg<T>(PhantomData<fn() -> T>);

impl<T> Fold for IntAvg<T>
where
    T: ArrowPrimitiveType,
    T::Native: Widen,
{
    type Values = Vec<IntSumCount>;
    type Input<'a> = &'a [T::Native];
    const NAME: &'static str = "AVG";
    const TAG: u8 = tag::AVG_INT;
    const LAYOUT: Layout = Layout::ValueOnly;

    fn input<'a>(_acc: &Vec<IntSumCount>, args: &UpdateArgs<'a>) -> Result<&'a [T::Native]> {
        numeric_input::<T>(args, "AVG")
    }

    #[inline(always)]
    fn update(
        acc: &mut Vec<IntSumCount>,
        g: usize,
        _seen: bool,
        input: &&[T::Native],
        row: usize,
    ) -> bool {
        let a = &mut acc[g];
        // u64 arguments above i64::MAX widen through f64; exact below.
        let (v, lossy) = input[row].widen_i64();
        a.sum += if lossy {
            input[row].widen_f64() as i128
        } else {
            i128::from(v)
        };
        a.count += 1;
        false
    }

    fn merge(
        acc: &mut Vec<IntSumCount>,
        d: usize,
        _seen: bool,
        other: &Vec<IntSumCount>,
        s: usize,
    ) -> Result<()> {
        acc[d].sum += other[s].sum;
        acc[d].count += other[s].count;
        Ok(())
    }

    fn evaluate(acc: &Vec<IntSumCount>, groups: &[u32], _seen: &[bool]) -> Result<ArrayRef> {
        // The average lies between the group's least and greatest value,
        // so it fits the argument's type.
        let a: arrow::array::Int64Array = groups
            .iter()
            .map(|&g| match acc.get(g as usize) {
                Some(a) if a.count > 0 => Some((a.sum / i128::from(a.count)) as i64),
                _ => None,
            })
            .collect();
        Ok(arrow::compute::cast(&a, &T::DATA_TYPE)?)
    }

    fn seen_in(acc: &Vec<IntSumCount>, slot: usize) -> bool {
        acc[slot].count > 0
    }
}

/// One group's running sum and row count; the count tells whether the group
/// saw a row, so checkpoints carry no separate flag.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SumCount {
    sum: f64,
    count: u64,
}

impl Native for SumCount {
    fn put(self, out: &mut Vec<u8>) {
        codec::put_u64(out, self.count);
        codec::put_f64(out, self.sum);
    }

    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let count = r.u64()?;
        let sum = r.f64()?;
        Ok(Self { sum, count })
    }
}

/// `AVG` of any numeric argument, as DOUBLE.
pub(crate) struct Avg<T>(PhantomData<fn() -> T>);

impl<T> Fold for Avg<T>
where
    T: ArrowPrimitiveType,
    T::Native: Widen,
{
    type Values = Vec<SumCount>;
    type Input<'a> = &'a [T::Native];
    const NAME: &'static str = "AVG";
    const TAG: u8 = tag::AVG;
    const LAYOUT: Layout = Layout::ValueOnly;

    fn input<'a>(_acc: &Vec<SumCount>, args: &UpdateArgs<'a>) -> Result<&'a [T::Native]> {
        numeric_input::<T>(args, "AVG")
    }

    #[inline(always)]
    fn update(
        acc: &mut Vec<SumCount>,
        g: usize,
        _seen: bool,
        input: &&[T::Native],
        row: usize,
    ) -> bool {
        let a = &mut acc[g];
        a.sum += input[row].widen_f64();
        a.count += 1;
        false
    }

    fn merge(
        acc: &mut Vec<SumCount>,
        d: usize,
        _seen: bool,
        other: &Vec<SumCount>,
        s: usize,
    ) -> Result<()> {
        acc[d].sum += other[s].sum;
        acc[d].count += other[s].count;
        Ok(())
    }

    fn evaluate(acc: &Vec<SumCount>, groups: &[u32], _seen: &[bool]) -> Result<ArrayRef> {
        let a: Float64Array = groups
            .iter()
            .map(|&g| match acc.get(g as usize) {
                Some(a) if a.count > 0 => Some(a.sum / a.count as f64),
                _ => None,
            })
            .collect();
        Ok(Arc::new(a))
    }

    fn seen_in(acc: &Vec<SumCount>, slot: usize) -> bool {
        acc[slot].count > 0
    }
}

/// The running sums of DECIMAL values of one scale: the unscaled values'
/// exact sum and the row count per group.
#[derive(Debug)]
pub(crate) struct DecimalSums {
    /// The argument's scale.
    scale: i8,
    sums: Vec<IntSumCount>,
}

impl DecimalSums {
    pub(crate) fn new(scale: i8) -> Self {
        Self {
            scale,
            sums: Vec::new(),
        }
    }
}

impl super::group_state::Values for DecimalSums {
    fn grow(&mut self, n: usize) {
        self.sums.grow(n);
    }

    fn clear(&mut self, slot: usize) {
        super::group_state::Values::clear(&mut self.sums, slot);
    }

    fn same_type(&self, other: &Self) -> bool {
        self.scale == other.scale
    }

    fn save(&self, slot: usize, out: &mut Vec<u8>) -> Result<()> {
        self.sums.save(slot, out)
    }

    fn save_empty(&self, out: &mut Vec<u8>) -> Result<()> {
        self.sums.save_empty(out)
    }

    fn load(&mut self, slot: usize, r: &mut Reader<'_>) -> Result<()> {
        self.sums.load(slot, r)?;
        if !fits_decimal_38(self.sums[slot].sum) {
            return Err(codec::corrupt("a DECIMAL sum past 38 digits"));
        }
        Ok(())
    }

    fn size_bytes(&self) -> usize {
        self.sums.size_bytes()
    }
}

/// The precision of DECIMAL sums and averages (Flink's: 38).
const DECIMAL_RESULT_PRECISION: u8 = 38;

/// The result type of SUM of a DECIMAL of `scale`: DECIMAL(38, scale).
pub(crate) fn decimal_sum_type(scale: i8) -> DataType {
    DataType::Decimal128(DECIMAL_RESULT_PRECISION, scale)
}

/// The result type of AVG of a DECIMAL of `scale`: DECIMAL(38, max(6,
/// scale)), as Flink.
pub(crate) fn decimal_avg_type(scale: i8) -> DataType {
    DataType::Decimal128(DECIMAL_RESULT_PRECISION, scale.max(6))
}

fn decimal_input<'a>(args: &UpdateArgs<'a>, func: &str) -> Result<&'a [i128]> {
    numeric_input::<arrow::datatypes::Decimal128Type>(args, func)
}

fn add_decimal(acc: &mut DecimalSums, g: usize, v: i128) -> bool {
    let a = &mut acc.sums[g];
    match a.sum.checked_add(v) {
        Some(s) if fits_decimal_38(s) => {
            a.sum = s;
            a.count += 1;
            false
        }
        _ => true,
    }
}

/// `SUM` of a DECIMAL, exact; fails past 38 digits.
pub(crate) struct SumDecimal;

impl Fold for SumDecimal {
    type Values = DecimalSums;
    type Input<'a> = &'a [i128];
    const NAME: &'static str = "SUM";
    const TAG: u8 = tag::SUM_DECIMAL;
    const LAYOUT: Layout = Layout::ValueOnly;

    fn input<'a>(_acc: &DecimalSums, args: &UpdateArgs<'a>) -> Result<&'a [i128]> {
        decimal_input(args, "SUM")
    }

    fn update(acc: &mut DecimalSums, g: usize, _seen: bool, input: &&[i128], row: usize) -> bool {
        add_decimal(acc, g, input[row])
    }

    fn overflow() -> crate::error::EngineError {
        crate::error::EngineError::Execution("SUM of DECIMAL values overflowed DECIMAL(38)".into())
    }

    fn merge(
        acc: &mut DecimalSums,
        d: usize,
        _seen: bool,
        other: &DecimalSums,
        s: usize,
    ) -> Result<()> {
        let o = other.sums[s];
        let a = &mut acc.sums[d];
        match a.sum.checked_add(o.sum) {
            Some(v) if fits_decimal_38(v) => a.sum = v,
            _ => return Err(Self::overflow()),
        }
        a.count += o.count;
        Ok(())
    }

    fn evaluate(acc: &DecimalSums, groups: &[u32], _seen: &[bool]) -> Result<ArrayRef> {
        let a: arrow::array::Decimal128Array = groups
            .iter()
            .map(|&g| match acc.sums.get(g as usize) {
                Some(a) if a.count > 0 => Some(a.sum),
                _ => None,
            })
            .collect();
        Ok(Arc::new(a.with_data_type(decimal_sum_type(acc.scale))))
    }

    fn seen_in(acc: &DecimalSums, slot: usize) -> bool {
        acc.sums[slot].count > 0
    }
}

/// `AVG` of a DECIMAL: the exact sum over the count, at scale max(6, s),
/// rounded half away from zero.
pub(crate) struct AvgDecimal;

/// `sum / count` of unscaled values at `scale`, as an unscaled value at
/// `out_scale` (not below `scale`), rounded half away from zero; `None`
/// when it does not fit.
pub(crate) fn decimal_average(sum: i128, count: u64, scale: i8, out_scale: i8) -> Option<i128> {
    let up = 10i128.checked_pow(u32::try_from(out_scale - scale).ok()?)?;
    let n = sum.checked_mul(up)?;
    let c = i128::from(count);
    let (q, r) = (n.abs() / c, n.abs() % c);
    let q = if r * 2 >= c { q + 1 } else { q };
    Some(if n < 0 { -q } else { q })
}

impl Fold for AvgDecimal {
    type Values = DecimalSums;
    type Input<'a> = &'a [i128];
    const NAME: &'static str = "AVG";
    const TAG: u8 = tag::AVG_DECIMAL;
    const LAYOUT: Layout = Layout::ValueOnly;

    fn input<'a>(_acc: &DecimalSums, args: &UpdateArgs<'a>) -> Result<&'a [i128]> {
        decimal_input(args, "AVG")
    }

    fn update(acc: &mut DecimalSums, g: usize, _seen: bool, input: &&[i128], row: usize) -> bool {
        add_decimal(acc, g, input[row])
    }

    fn overflow() -> crate::error::EngineError {
        crate::error::EngineError::Execution(
            "AVG of DECIMAL values: their sum overflowed DECIMAL(38)".into(),
        )
    }

    fn merge(
        acc: &mut DecimalSums,
        d: usize,
        seen: bool,
        other: &DecimalSums,
        s: usize,
    ) -> Result<()> {
        SumDecimal::merge(acc, d, seen, other, s)
    }

    fn evaluate(acc: &DecimalSums, groups: &[u32], _seen: &[bool]) -> Result<ArrayRef> {
        let out = decimal_avg_type(acc.scale);
        let DataType::Decimal128(_, out_scale) = out else {
            return Err(crate::error::EngineError::Internal(
                "AVG of DECIMAL is a DECIMAL".into(),
            ));
        };
        let mut values = Vec::with_capacity(groups.len());
        for &g in groups {
            values.push(match acc.sums.get(g as usize) {
                Some(a) if a.count > 0 => Some(
                    decimal_average(a.sum, a.count, acc.scale, out_scale)
                        .ok_or_else(Self::overflow)?,
                ),
                _ => None,
            });
        }
        Ok(Arc::new(
            arrow::array::Decimal128Array::from(values).with_data_type(out),
        ))
    }

    fn seen_in(acc: &DecimalSums, slot: usize) -> bool {
        acc.sums[slot].count > 0
    }
}
