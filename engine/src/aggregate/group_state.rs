//! The per-group state that SUM, AVG, MIN and MAX share: a column of values
//! and a seen flag per group, grown, reset, saved, loaded and sized here once.
//!
//! An aggregate only says how a row or another group's value folds into a
//! group ([`Fold`]); [`GroupState`] runs the update and merge loops around
//! that fold and frames the saved bytes. Each fold keeps the byte layout its
//! accumulator has always written ([`Layout`]), so older checkpoints restore.

use std::any::Any;
use std::fmt::Debug;

use arrow::array::ArrayRef;

use super::codec::{self, Reader};
use super::{downcast_other, for_each_row, grow, GroupsAccumulator, UpdateArgs};
use crate::error::{EngineError, Result};
use crate::internal_err;

/// A column holding one value per group. A slot's content is meaningful
/// only where the owning state's seen flag is true.
pub(crate) trait Values: Send + Debug + Sized + 'static {
    /// Grows to `n` slots (never shrinks).
    fn grow(&mut self, n: usize);
    /// Drops the slot's value (freeing any heap memory); a slot past the end
    /// is left alone.
    fn clear(&mut self, slot: usize);
    /// Whether `other` holds values of the same type as self.
    fn same_type(&self, other: &Self) -> bool;
    /// Appends the encoding of the value in `slot`.
    fn save(&self, slot: usize, out: &mut Vec<u8>) -> Result<()>;
    /// Appends the encoding of an empty group's value; only layouts that
    /// write a value for empty groups call it.
    fn save_empty(&self, _out: &mut Vec<u8>) -> Result<()> {
        internal_err!("{self:?} has no empty value to save")
    }
    /// Replaces the value in `slot` (allocated) with one written by `save`.
    fn load(&mut self, slot: usize, r: &mut Reader<'_>) -> Result<()>;
    /// Approximate heap bytes used.
    fn size_bytes(&self) -> usize;
}

/// A fixed-size value kept in a plain `Vec`, with its checkpoint encoding.
pub(crate) trait Native: Copy + Default + Send + Debug + 'static {
    fn put(self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Result<Self>;
}

impl Native for i64 {
    fn put(self, out: &mut Vec<u8>) {
        codec::put_i64(out, self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        r.i64()
    }
}

impl Native for f64 {
    fn put(self, out: &mut Vec<u8>) {
        codec::put_f64(out, self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        r.f64()
    }
}

impl<N: Native> Values for Vec<N> {
    fn grow(&mut self, n: usize) {
        grow(self, n, N::default());
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.get_mut(slot) {
            *v = N::default();
        }
    }

    fn same_type(&self, _other: &Self) -> bool {
        true
    }

    fn save(&self, slot: usize, out: &mut Vec<u8>) -> Result<()> {
        self[slot].put(out);
        Ok(())
    }

    fn save_empty(&self, out: &mut Vec<u8>) -> Result<()> {
        N::default().put(out);
        Ok(())
    }

    fn load(&mut self, slot: usize, r: &mut Reader<'_>) -> Result<()> {
        self[slot] = N::get(r)?;
        Ok(())
    }

    fn size_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<N>()
    }
}

/// How a saved group says whether it saw a row. It is fixed per tag byte:
/// changing it would make older checkpoints unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// A seen byte, then the value (the empty value for an empty group).
    SeenThenValue,
    /// A seen byte, then the value only when the group saw a row.
    SeenThenValueIfSeen,
    /// The value alone; [`Fold::seen_in`] tells from it whether the group
    /// saw a row.
    ValueOnly,
}

/// What one aggregate adds to [`GroupState`]: how rows and other groups fold
/// into a group's value, and how values become the result column.
pub(crate) trait Fold: Send + Sized + 'static {
    /// The column of per-group values.
    type Values: Values;
    /// The argument column, prepared once per update call.
    type Input<'a>;
    /// The function's name in messages.
    const NAME: &'static str;
    /// The tag byte that starts every saved group.
    const TAG: u8;
    /// How a saved group records its seen flag.
    const LAYOUT: Layout;

    /// Checks the shape of an update call and prepares its argument column.
    fn input<'a>(values: &Self::Values, args: &UpdateArgs<'a>) -> Result<Self::Input<'a>>;
    /// Folds row `row` of `input` into group `g`, which already holds a value
    /// when `seen`; returns true when the row overflowed the value's range.
    fn update(
        values: &mut Self::Values,
        g: usize,
        seen: bool,
        input: &Self::Input<'_>,
        row: usize,
    ) -> bool;
    /// The error for an update in which some row overflowed.
    fn overflow() -> EngineError {
        EngineError::Internal(format!(
            "{} reported an overflow it cannot have",
            Self::NAME
        ))
    }
    /// Folds group `s` of `other`, which saw a row, into group `d`.
    fn merge(
        values: &mut Self::Values,
        d: usize,
        seen: bool,
        other: &Self::Values,
        s: usize,
    ) -> Result<()>;
    /// The results of `groups`, in that order; `seen` may be shorter than
    /// the largest group (such groups are empty).
    fn evaluate(values: &Self::Values, groups: &[u32], seen: &[bool]) -> Result<ArrayRef>;
    /// For [`Layout::ValueOnly`]: whether the value loaded into `slot` saw
    /// a row.
    fn seen_in(_values: &Self::Values, _slot: usize) -> bool {
        true
    }
}

/// Whether group `g` saw a row (groups past the end did not).
pub(crate) fn is_set(seen: &[bool], g: u32) -> bool {
    seen.get(g as usize).copied().unwrap_or(false)
}

/// The accumulator of any [`Fold`]: its values and a seen flag per group.
pub(crate) struct GroupState<F: Fold> {
    values: F::Values,
    seen: Vec<bool>,
}

impl<F: Fold> Debug for GroupState<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(std::any::type_name::<F>())
            .field("values", &self.values)
            .field("groups", &self.seen.len())
            .finish()
    }
}

impl<F: Fold> GroupState<F> {
    /// An empty state over `values` (which holds no group yet).
    pub(crate) fn new(values: F::Values) -> Self {
        Self {
            values,
            seen: Vec::new(),
        }
    }

    fn grow(&mut self, n: usize) {
        self.values.grow(n);
        grow(&mut self.seen, n, false);
    }
}

impl<F: Fold> GroupsAccumulator for GroupState<F> {
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        let input = F::input(&self.values, args)?;
        self.grow(args.total_groups);
        let selection = args.selection(true);
        let groups = args.groups;
        let (values, seen) = (&mut self.values, &mut self.seen);
        // Overflow flags are ORed rather than checked per row, which keeps
        // the loop branch-free; the state is meaningless after an overflow,
        // but the error fails the job anyway.
        let mut overflow = false;
        for_each_row(groups.len(), selection.as_ref(), |i| {
            let g = groups[i] as usize;
            overflow |= F::update(values, g, seen[g], &input, i);
            seen[g] = true;
        });
        if overflow {
            return Err(F::overflow());
        }
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        if !self.values.same_type(&other.values) {
            internal_err!("cannot merge {} states of different types", F::NAME);
        }
        let (d, s) = (dst as usize, src as usize);
        self.grow(d + 1);
        if is_set(&other.seen, src) {
            F::merge(&mut self.values, d, self.seen[d], &other.values, s)?;
            self.seen[d] = true;
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        F::evaluate(&self.values, groups, &self.seen)
    }

    fn reset(&mut self, group: u32) {
        if let Some(s) = self.seen.get_mut(group as usize) {
            *s = false;
            self.values.clear(group as usize);
        }
    }

    fn num_groups(&self) -> usize {
        self.seen.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        let g = group as usize;
        let seen = is_set(&self.seen, group);
        codec::put_u8(out, F::TAG);
        match F::LAYOUT {
            Layout::SeenThenValue => {
                codec::put_u8(out, seen as u8);
                if seen {
                    self.values.save(g, out)
                } else {
                    self.values.save_empty(out)
                }
            }
            Layout::SeenThenValueIfSeen => {
                codec::put_u8(out, seen as u8);
                if seen {
                    self.values.save(g, out)?;
                }
                Ok(())
            }
            Layout::ValueOnly => {
                if g < self.seen.len() {
                    self.values.save(g, out)
                } else {
                    self.values.save_empty(out)
                }
            }
        }
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(F::TAG)?;
        let g = group as usize;
        match F::LAYOUT {
            Layout::SeenThenValue => {
                let seen = r.bool()?;
                self.grow(g + 1);
                self.values.load(g, &mut r)?;
                self.seen[g] = seen;
            }
            Layout::SeenThenValueIfSeen => {
                let seen = r.bool()?;
                self.grow(g + 1);
                self.values.clear(g);
                self.seen[g] = false;
                if seen {
                    self.values.load(g, &mut r)?;
                    self.seen[g] = true;
                }
            }
            Layout::ValueOnly => {
                self.grow(g + 1);
                self.values.load(g, &mut r)?;
                self.seen[g] = F::seen_in(&self.values, g);
            }
        }
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.values.size_bytes() + self.seen.capacity()
    }
}
