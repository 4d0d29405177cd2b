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

/// The AVG accumulator for a numeric argument type.
pub(super) fn create_avg(t: &DataType) -> Result<Box<dyn GroupsAccumulator>> {
    with_numeric_type!(t, T => Ok(Box::new(GroupState::<Avg<T>>::new(Vec::new()))), _ => Err(not_numeric("AVG", t)))
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
