//! `FIRST_VALUE` and `LAST_VALUE`: one value per group with the arrival
//! sequence number that decides which value wins.

use std::any::Any;

use arrow::array::ArrayRef;

use super::codec::{self, tag, Reader};
use super::group_state::is_set;
use super::slots::Slots;
use super::{downcast_other, for_each_row, grow, GroupsAccumulator, UpdateArgs};
use crate::error::Result;
use crate::internal_err;

/// `FIRST_VALUE` (`LAST = false`) or `LAST_VALUE`: the non-NULL value with
/// the smallest (largest) arrival sequence number, so that merging states of
/// different time slices picks the right row whatever the merge order.
#[derive(Debug)]
pub(crate) struct FirstLastAcc<S, const LAST: bool> {
    slots: S,
    set: Vec<bool>,
    seqs: Vec<u64>,
}

impl<S: Slots, const LAST: bool> FirstLastAcc<S, LAST> {
    pub(super) fn new(slots: S) -> Self {
        Self {
            slots,
            set: Vec::new(),
            seqs: Vec::new(),
        }
    }

    fn grow(&mut self, n: usize) {
        self.slots.grow(n);
        grow(&mut self.set, n, false);
        grow(&mut self.seqs, n, 0);
    }

    /// Whether a value with sequence `seq` replaces one with `current`.
    #[inline(always)]
    fn wins(seq: u64, current: u64) -> bool {
        if LAST {
            seq >= current
        } else {
            seq < current
        }
    }

    fn tag() -> u8 {
        if LAST {
            tag::LAST
        } else {
            tag::FIRST
        }
    }
}

impl<S: Slots, const LAST: bool> GroupsAccumulator for FirstLastAcc<S, LAST> {
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        args.validate(1)?;
        self.grow(args.total_groups);
        let input = self.slots.input(&args.values[0])?;
        let selection = args.selection(true);
        let groups = args.groups;
        let base = args.first_row_seq;
        let (slots, set, seqs) = (&mut self.slots, &mut self.set, &mut self.seqs);
        for_each_row(groups.len(), selection.as_ref(), |i| {
            let g = groups[i] as usize;
            let seq = base.wrapping_add(i as u64);
            if !set[g] || Self::wins(seq, seqs[g]) {
                slots.set_input(g, &input, i);
                seqs[g] = seq;
                set[g] = true;
            }
        });
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        if !self.slots.same_type(&other.slots) {
            internal_err!("cannot merge FIRST_VALUE/LAST_VALUE states of different types");
        }
        let (d, s) = (dst as usize, src as usize);
        self.grow(d + 1);
        if is_set(&other.set, src) && (!self.set[d] || Self::wins(other.seqs[s], self.seqs[d])) {
            self.slots.set_other(d, &other.slots, s);
            self.seqs[d] = other.seqs[s];
            self.set[d] = true;
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        self.slots.evaluate(groups, &self.set)
    }

    fn reset(&mut self, group: u32) {
        let g = group as usize;
        if g < self.set.len() {
            self.set[g] = false;
            self.seqs[g] = 0;
            self.slots.clear(g);
        }
    }

    fn num_groups(&self) -> usize {
        self.set.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        codec::put_u8(out, Self::tag());
        let set = is_set(&self.set, group);
        codec::put_u8(out, set as u8);
        if set {
            codec::put_u64(out, self.seqs[group as usize]);
            self.slots.save(group as usize, out)?;
        }
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(Self::tag())?;
        let set = r.bool()?;
        let g = group as usize;
        self.grow(g + 1);
        self.slots.clear(g);
        self.set[g] = false;
        self.seqs[g] = 0;
        if set {
            let seq = r.u64()?;
            self.slots.load(g, &mut r)?;
            self.seqs[g] = seq;
            self.set[g] = true;
        }
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.slots.size_bytes() + self.set.capacity() + self.seqs.capacity() * 8
    }
}
