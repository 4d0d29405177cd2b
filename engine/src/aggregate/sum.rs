//! `SUM` as folds over the shared per-group state: integers into a BIGINT
//! that fails on overflow, floats into a DOUBLE.

use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{ArrowPrimitiveType, DataType};

use super::codec::tag;
use super::group_state::{is_set, Fold, GroupState, Layout};
use super::numeric::{not_numeric, numeric_input, with_numeric_type, Widen};
use super::{is_integer, GroupsAccumulator, UpdateArgs};
use crate::error::{EngineError, Result};
use crate::exec_err;

/// The SUM accumulator for a numeric argument type.
pub(super) fn create_sum(t: &DataType) -> Result<Box<dyn GroupsAccumulator>> {
    if let DataType::Decimal128(_, s) = t {
        return Ok(Box::new(GroupState::<super::avg::SumDecimal>::new(
            super::avg::DecimalSums::new(*s),
        )));
    }
    if is_integer(t) {
        with_numeric_type!(t, T => Ok(Box::new(GroupState::<SumInt<T>>::new(Vec::new()))), _ => Err(not_numeric("SUM", t)))
    } else {
        with_numeric_type!(t, T => Ok(Box::new(GroupState::<SumFloat<T>>::new(Vec::new()))), _ => Err(not_numeric("SUM", t)))
    }
}

/// `SUM` of integers into i64 with overflow detection. A row reports its
/// overflow instead of failing, so the update loop stays branch-free; an
/// overflow fails the call (the state is then meaningless, as the job fails).
pub(crate) struct SumInt<T>(PhantomData<fn() -> T>);

impl<T> Fold for SumInt<T>
where
    T: ArrowPrimitiveType,
    T::Native: Widen,
{
    type Values = Vec<i64>;
    type Input<'a> = &'a [T::Native];
    const NAME: &'static str = "SUM";
    const TAG: u8 = tag::SUM_INT;
    const LAYOUT: Layout = Layout::SeenThenValue;

    fn input<'a>(_sums: &Vec<i64>, args: &UpdateArgs<'a>) -> Result<&'a [T::Native]> {
        numeric_input::<T>(args, "SUM")
    }

    #[inline(always)]
    fn update(
        sums: &mut Vec<i64>,
        g: usize,
        _seen: bool,
        input: &&[T::Native],
        row: usize,
    ) -> bool {
        let (w, lossy) = input[row].widen_i64();
        let (s, o) = sums[g].overflowing_add(w);
        sums[g] = s;
        o | lossy
    }

    fn overflow() -> EngineError {
        EngineError::Execution("SUM overflowed the BIGINT range".to_string())
    }

    fn merge(sums: &mut Vec<i64>, d: usize, _seen: bool, other: &Vec<i64>, s: usize) -> Result<()> {
        match sums[d].checked_add(other[s]) {
            Some(v) => sums[d] = v,
            None => exec_err!("SUM overflowed the BIGINT range"),
        }
        Ok(())
    }

    fn evaluate(sums: &Vec<i64>, groups: &[u32], seen: &[bool]) -> Result<ArrayRef> {
        let a: Int64Array = groups
            .iter()
            .map(|&g| is_set(seen, g).then(|| sums[g as usize]))
            .collect();
        Ok(Arc::new(a))
    }
}

/// `SUM` of floats into f64 (plain summation, like Flink's DOUBLE sum).
pub(crate) struct SumFloat<T>(PhantomData<fn() -> T>);

impl<T> Fold for SumFloat<T>
where
    T: ArrowPrimitiveType,
    T::Native: Widen,
{
    type Values = Vec<f64>;
    type Input<'a> = &'a [T::Native];
    const NAME: &'static str = "SUM";
    const TAG: u8 = tag::SUM_FLOAT;
    const LAYOUT: Layout = Layout::SeenThenValue;

    fn input<'a>(_sums: &Vec<f64>, args: &UpdateArgs<'a>) -> Result<&'a [T::Native]> {
        numeric_input::<T>(args, "SUM")
    }

    #[inline(always)]
    fn update(
        sums: &mut Vec<f64>,
        g: usize,
        _seen: bool,
        input: &&[T::Native],
        row: usize,
    ) -> bool {
        sums[g] += input[row].widen_f64();
        false
    }

    fn merge(sums: &mut Vec<f64>, d: usize, _seen: bool, other: &Vec<f64>, s: usize) -> Result<()> {
        sums[d] += other[s];
        Ok(())
    }

    fn evaluate(sums: &Vec<f64>, groups: &[u32], seen: &[bool]) -> Result<ArrayRef> {
        let a: Float64Array = groups
            .iter()
            .map(|&g| is_set(seen, g).then(|| sums[g as usize]))
            .collect();
        Ok(Arc::new(a))
    }
}
