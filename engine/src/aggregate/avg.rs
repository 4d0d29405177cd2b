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

/// The AVG accumulator for a numeric argument type: an integer of the
/// argument's type for integers (as Flink), a DOUBLE otherwise.
pub(super) fn create_avg(t: &DataType) -> Result<Box<dyn GroupsAccumulator>> {
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
