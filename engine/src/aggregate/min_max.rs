//! `MIN` and `MAX` as folds over the shared per-group state: a candidate
//! replaces a group's value when it orders below (MIN) or above (MAX) it.

use std::cmp::Ordering;
use std::marker::PhantomData;

use arrow::array::ArrayRef;

use super::codec::tag;
use super::group_state::{Fold, Layout};
use super::slots::Slots;
use super::UpdateArgs;
use crate::error::Result;

/// `MIN` (`MIN = true`) or `MAX` over the values column `S`.
pub(crate) struct MinMax<S, const MIN: bool>(PhantomData<fn() -> S>);

impl<S, const MIN: bool> MinMax<S, MIN> {
    /// Whether a candidate ordered `ord` against the current value replaces it.
    #[inline(always)]
    fn better(ord: Ordering) -> bool {
        if MIN {
            ord == Ordering::Less
        } else {
            ord == Ordering::Greater
        }
    }
}

impl<S: Slots, const MIN: bool> Fold for MinMax<S, MIN> {
    type Values = S;
    type Input<'a> = S::Input<'a>;
    const NAME: &'static str = "MIN/MAX";
    const TAG: u8 = if MIN { tag::MIN } else { tag::MAX };
    const LAYOUT: Layout = Layout::SeenThenValueIfSeen;

    fn input<'a>(slots: &S, args: &UpdateArgs<'a>) -> Result<S::Input<'a>> {
        args.validate(1)?;
        slots.input(&args.values[0])
    }

    #[inline(always)]
    fn update(slots: &mut S, g: usize, seen: bool, input: &S::Input<'_>, row: usize) -> bool {
        if !seen || Self::better(slots.cmp_input(g, input, row)) {
            slots.set_input(g, input, row);
        }
        false
    }

    fn merge(slots: &mut S, d: usize, seen: bool, other: &S, s: usize) -> Result<()> {
        if !seen || Self::better(slots.cmp_other(d, other, s)) {
            slots.set_other(d, other, s);
        }
        Ok(())
    }

    fn evaluate(slots: &S, groups: &[u32], seen: &[bool]) -> Result<ArrayRef> {
        slots.evaluate(groups, seen)
    }
}
