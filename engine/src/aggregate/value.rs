//! `MIN`, `MAX`, `FIRST_VALUE` and `LAST_VALUE`: accumulators that keep one
//! value of the argument's type per group.
//!
//! The value column is a [`Slots`] implementation chosen by type: a native
//! `Vec` for primitives (ints, floats, dates, times, timestamps, durations,
//! decimals), a `Vec<bool>`, byte strings for Utf8/Binary, and arrow-row
//! encodings (which compare in the type's order) for everything else.

use arrow::array::downcast_primitive;
use arrow::datatypes::{BinaryType, DataType, LargeBinaryType, LargeUtf8Type, Utf8Type};
use arrow::row::{RowConverter, SortField};

use super::bytes_slots::BytesSlots;
use super::first_last::FirstLastAcc;
use super::group_state::GroupState;
use super::min_max::MinMax;
use super::prim_slots::{BoolSlots, PrimSlots};
use super::row_slots::RowSlots;
use super::slots::Slots;
use super::{AggregateFunction, GroupsAccumulator};
use crate::error::Result;
use crate::internal_err;

/// Whether MIN/MAX/FIRST_VALUE/LAST_VALUE accept `t`.
pub(crate) fn supports_type(t: &DataType) -> bool {
    macro_rules! primitive {
        ($t:ty) => {
            true
        };
    }
    downcast_primitive! {
        t => (primitive),
        DataType::Null => false,
        _ => RowConverter::supports_fields(&[SortField::new(t.clone())])
    }
}

/// Creates the accumulator of `func` (MIN, MAX, FIRST_VALUE or LAST_VALUE).
pub(crate) fn create(func: AggregateFunction, t: &DataType) -> Result<Box<dyn GroupsAccumulator>> {
    macro_rules! primitive {
        ($t:ty, $func:ident, $dt:ident) => {
            with_slots($func, PrimSlots::<$t>::new($dt.clone()))
        };
    }
    downcast_primitive! {
        t => (primitive, func, t),
        DataType::Boolean => with_slots(func, BoolSlots::default()),
        DataType::Utf8 => with_slots(func, BytesSlots::<Utf8Type>::default()),
        DataType::LargeUtf8 => with_slots(func, BytesSlots::<LargeUtf8Type>::default()),
        DataType::Binary => with_slots(func, BytesSlots::<BinaryType>::default()),
        DataType::LargeBinary => with_slots(func, BytesSlots::<LargeBinaryType>::default()),
        _ => with_slots(func, RowSlots::new(t)?)
    }
}

fn with_slots<S: Slots>(func: AggregateFunction, slots: S) -> Result<Box<dyn GroupsAccumulator>> {
    Ok(match func {
        AggregateFunction::Min => Box::new(GroupState::<MinMax<S, true>>::new(slots)),
        AggregateFunction::Max => Box::new(GroupState::<MinMax<S, false>>::new(slots)),
        AggregateFunction::FirstValue => Box::new(FirstLastAcc::<S, false>::new(slots)),
        AggregateFunction::LastValue => Box::new(FirstLastAcc::<S, true>::new(slots)),
        other => internal_err!("{} does not keep a value per group", other.name()),
    })
}
