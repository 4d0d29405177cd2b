//! `COUNT(*)`, `COUNT(x, ...)` and `COUNT(DISTINCT x, ...)`.

use std::any::Any;
use std::collections::HashSet;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};

use super::codec::{self, corrupt, tag, Reader};
use super::{downcast_other, for_each_row, grow, GroupsAccumulator, UpdateArgs};
use crate::error::Result;
use crate::internal_err;

/// `COUNT`: one i64 per group. With zero arguments it counts rows (`COUNT(*)`),
/// otherwise rows whose arguments are all non-NULL.
#[derive(Debug)]
pub(crate) struct CountAcc {
    num_args: usize,
    counts: Vec<i64>,
}

impl CountAcc {
    pub fn new(num_args: usize) -> Self {
        Self {
            num_args,
            counts: Vec::new(),
        }
    }
}

impl GroupsAccumulator for CountAcc {
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        args.validate(self.num_args)?;
        grow(&mut self.counts, args.total_groups, 0);
        let selection = args.selection(true);
        let counts = &mut self.counts;
        let groups = args.groups;
        match &selection {
            None => {
                for &g in groups {
                    counts[g as usize] += 1;
                }
            }
            Some(_) => for_each_row(groups.len(), selection.as_ref(), |i| {
                counts[groups[i] as usize] += 1;
            }),
        }
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        grow(&mut self.counts, dst as usize + 1, 0);
        let add = other.counts.get(src as usize).copied().unwrap_or(0);
        self.counts[dst as usize] += add;
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let values: Int64Array = groups
            .iter()
            .map(|&g| self.counts.get(g as usize).copied().unwrap_or(0))
            .collect();
        Ok(std::sync::Arc::new(values))
    }

    fn reset(&mut self, group: u32) {
        if let Some(c) = self.counts.get_mut(group as usize) {
            *c = 0;
        }
    }

    fn num_groups(&self) -> usize {
        self.counts.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        codec::put_u8(out, tag::COUNT);
        codec::put_i64(out, self.counts.get(group as usize).copied().unwrap_or(0));
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(tag::COUNT)?;
        let c = r.i64()?;
        if c < 0 {
            return Err(corrupt("negative count"));
        }
        grow(&mut self.counts, group as usize + 1, 0);
        self.counts[group as usize] = c;
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<i64>()
    }
}

type ValueSet = HashSet<Box<[u8]>, ahash::RandomState>;

/// `COUNT(DISTINCT ...)`: a hash set per group of the arguments' arrow-row
/// encodings, which are equal exactly when the values are, for any type.
#[derive(Debug)]
pub(crate) struct CountDistinctAcc {
    types: Vec<DataType>,
    converter: RowConverter,
    sets: Vec<ValueSet>,
    /// Running totals so `size_bytes` does not walk every set.
    elements: usize,
    element_bytes: usize,
}

impl CountDistinctAcc {
    pub fn new(types: &[DataType]) -> Result<Self> {
        let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
        Ok(Self {
            types: types.to_vec(),
            converter: RowConverter::new(fields)?,
            sets: Vec::new(),
            elements: 0,
            element_bytes: 0,
        })
    }

    fn grow(&mut self, n: usize) {
        if self.sets.len() < n {
            self.sets.resize_with(n, ValueSet::default);
        }
    }

    fn insert(&mut self, group: usize, value: &[u8]) {
        let set = &mut self.sets[group];
        // Checking first avoids allocating the boxed key for values already seen.
        if !set.contains(value) {
            set.insert(value.into());
            self.elements += 1;
            self.element_bytes += value.len();
        }
    }

    fn clear(&mut self, group: usize) {
        if let Some(set) = self.sets.get_mut(group) {
            self.elements -= set.len();
            self.element_bytes -= set.iter().map(|v| v.len()).sum::<usize>();
            *set = ValueSet::default();
        }
    }
}

impl GroupsAccumulator for CountDistinctAcc {
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        args.validate(self.types.len())?;
        for (v, t) in args.values.iter().zip(&self.types) {
            if !v.data_type().equals_datatype(t) {
                internal_err!(
                    "COUNT DISTINCT expected an argument of type {t}, got {}",
                    v.data_type()
                );
            }
        }
        self.grow(args.total_groups);
        let rows = self.converter.convert_columns(args.values)?;
        let selection = args.selection(true);
        let groups = args.groups;
        for_each_row(groups.len(), selection.as_ref(), |i| {
            self.insert(groups[i] as usize, rows.row(i).data());
        });
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        if other.types != self.types {
            internal_err!("cannot merge COUNT DISTINCT states of different argument types");
        }
        self.grow(dst as usize + 1);
        if let Some(set) = other.sets.get(src as usize) {
            for v in set {
                self.insert(dst as usize, v);
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let values: Int64Array = groups
            .iter()
            .map(|&g| self.sets.get(g as usize).map_or(0, |s| s.len() as i64))
            .collect();
        Ok(std::sync::Arc::new(values))
    }

    fn reset(&mut self, group: u32) {
        self.clear(group as usize);
    }

    fn num_groups(&self) -> usize {
        self.sets.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        codec::put_u8(out, tag::COUNT_DISTINCT);
        match self.sets.get(group as usize) {
            None => codec::put_u64(out, 0),
            Some(set) => {
                codec::put_u64(out, set.len() as u64);
                for v in set {
                    codec::put_bytes(out, v)?;
                }
            }
        }
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(tag::COUNT_DISTINCT)?;
        let n = r.u64()?;
        // Each element takes at least its 4-byte length, which bounds `n` before
        // anything is allocated for it.
        if n > (bytes.len() / 4) as u64 {
            return Err(corrupt("distinct value count exceeds the saved bytes"));
        }
        let mut values = Vec::with_capacity(n as usize);
        for _ in 0..n {
            values.push(r.bytes()?);
        }
        self.grow(group as usize + 1);
        self.clear(group as usize);
        for v in values {
            self.insert(group as usize, v);
        }
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        // A hashbrown slot holds the boxed key plus one control byte, at a load
        // factor of at most 7/8.
        let slot = std::mem::size_of::<Box<[u8]>>() + 1;
        self.sets.capacity() * std::mem::size_of::<ValueSet>()
            + self.elements * slot * 8 / 7
            + self.element_bytes
            + self.converter.size()
    }
}
