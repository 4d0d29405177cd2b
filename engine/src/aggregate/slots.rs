//! The value column that MIN, MAX, FIRST_VALUE and LAST_VALUE keep: one
//! value per group of the argument's type, which can be ordered and copied
//! between groups and accumulators.

use std::cmp::Ordering;

use arrow::array::ArrayRef;

use super::group_state::Values;
use crate::error::Result;

/// A [`Values`] column of one Arrow type that can also order and copy
/// values: what MIN, MAX, FIRST_VALUE and LAST_VALUE need of it.
pub(crate) trait Slots: Values {
    /// The argument column prepared once per update call.
    type Input<'a>;
    fn input<'a>(&self, array: &'a ArrayRef) -> Result<Self::Input<'a>>;
    /// Orders row `row` of `input` against slot `slot`.
    fn cmp_input(&self, slot: usize, input: &Self::Input<'_>, row: usize) -> Ordering;
    fn set_input(&mut self, slot: usize, input: &Self::Input<'_>, row: usize);
    /// Orders slot `src` of `other` against slot `slot` of self.
    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering;
    fn set_other(&mut self, slot: usize, other: &Self, src: usize);
    /// The values of `groups`; a group is NULL where `set` is false or missing.
    fn evaluate(&self, groups: &[u32], set: &[bool]) -> Result<ArrayRef>;
}
