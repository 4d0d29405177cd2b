//! `SUM`, `AVG` and the variance family over numeric arguments.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};

use super::codec::{self, corrupt, tag, Reader};
use super::{downcast_other, for_each_row, grow, AggregateFunction, GroupsAccumulator, UpdateArgs};
use crate::error::{EngineError, Result};
use crate::{exec_err, internal_err};

/// Widening of an argument's native value to the accumulator's number types.
pub(crate) trait Widen: Copy + Send + Sync + 'static {
    fn widen_f64(self) -> f64;
    /// The value as i64, and whether that lost information (only u64 can).
    fn widen_i64(self) -> (i64, bool);
}

macro_rules! widen_int {
    ($($t:ty),*) => {$(
        impl Widen for $t {
            #[inline(always)]
            fn widen_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn widen_i64(self) -> (i64, bool) {
                (self as i64, false)
            }
        }
    )*};
}
widen_int!(i8, i16, i32, i64, u8, u16, u32);

impl Widen for u64 {
    #[inline(always)]
    fn widen_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn widen_i64(self) -> (i64, bool) {
        (self as i64, self > i64::MAX as u64)
    }
}

impl Widen for f32 {
    #[inline(always)]
    fn widen_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn widen_i64(self) -> (i64, bool) {
        (self as i64, true)
    }
}

impl Widen for f64 {
    #[inline(always)]
    fn widen_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn widen_i64(self) -> (i64, bool) {
        (self as i64, true)
    }
}

/// Expands `$body` with `$T` bound to the primitive type of a numeric
/// `DataType`, or evaluates `$fallback` for any other type.
macro_rules! with_numeric_type {
    ($dt:expr, $T:ident => $body:expr, _ => $fallback:expr) => {
        match $dt {
            DataType::Int8 => {
                type $T = Int8Type;
                $body
            }
            DataType::Int16 => {
                type $T = Int16Type;
                $body
            }
            DataType::Int32 => {
                type $T = Int32Type;
                $body
            }
            DataType::Int64 => {
                type $T = Int64Type;
                $body
            }
            DataType::UInt8 => {
                type $T = UInt8Type;
                $body
            }
            DataType::UInt16 => {
                type $T = UInt16Type;
                $body
            }
            DataType::UInt32 => {
                type $T = UInt32Type;
                $body
            }
            DataType::UInt64 => {
                type $T = UInt64Type;
                $body
            }
            DataType::Float32 => {
                type $T = Float32Type;
                $body
            }
            DataType::Float64 => {
                type $T = Float64Type;
                $body
            }
            _ => $fallback,
        }
    };
}

/// The values slice of the single numeric argument, downcast once per call.
fn numeric_input<'a, T: ArrowPrimitiveType>(
    args: &UpdateArgs<'a>,
    func: &str,
) -> Result<&'a [T::Native]> {
    args.validate(1)?;
    match args.values[0].as_primitive_opt::<T>() {
        // Slicing to the row count lets the compiler drop bounds checks.
        Some(a) => Ok(&a.values()[..args.groups.len()]),
        None => internal_err!(
            "{func} expected a {} argument, got {}",
            T::DATA_TYPE,
            args.values[0].data_type()
        ),
    }
}

fn not_numeric(func: &str, t: &DataType) -> EngineError {
    EngineError::Plan(format!(
        "{func} does not accept {t}; expected a numeric argument"
    ))
}

pub(crate) fn create_sum(t: &DataType) -> Result<Box<dyn GroupsAccumulator>> {
    if super::is_integer(t) {
        with_numeric_type!(t, T => Ok(Box::new(SumInt::<T>::new())), _ => Err(not_numeric("SUM", t)))
    } else {
        with_numeric_type!(t, T => Ok(Box::new(SumFloat::<T>::new())), _ => Err(not_numeric("SUM", t)))
    }
}

pub(crate) fn create_avg(t: &DataType) -> Result<Box<dyn GroupsAccumulator>> {
    with_numeric_type!(t, T => Ok(Box::new(Avg::<T>::new())), _ => Err(not_numeric("AVG", t)))
}

pub(crate) fn create_variance(
    func: AggregateFunction,
    t: &DataType,
) -> Result<Box<dyn GroupsAccumulator>> {
    let kind = match func {
        AggregateFunction::StddevSamp => VarianceKind::StddevSamp,
        AggregateFunction::StddevPop => VarianceKind::StddevPop,
        AggregateFunction::VarSamp => VarianceKind::VarSamp,
        AggregateFunction::VarPop => VarianceKind::VarPop,
        other => internal_err!("{} is not a variance function", other.name()),
    };
    with_numeric_type!(t, T => Ok(Box::new(Variance::<T>::new(kind))), _ => Err(not_numeric(func.name(), t)))
}

// ---------------------------------------------------------------------------
// SUM of integers

/// `SUM` of integers into i64 with overflow detection. The update loop uses
/// wrapping adds and ORs the overflow flags, which keeps it branch-free; an
/// overflow fails the call (the state is then meaningless, as the job fails).
pub(crate) struct SumInt<T> {
    sums: Vec<i64>,
    seen: Vec<bool>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for SumInt<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SumInt<{}>", std::any::type_name::<T>())
    }
}

impl<T> SumInt<T> {
    fn new() -> Self {
        Self {
            sums: Vec::new(),
            seen: Vec::new(),
            _t: PhantomData,
        }
    }

    fn grow(&mut self, n: usize) {
        grow(&mut self.sums, n, 0);
        grow(&mut self.seen, n, false);
    }
}

impl<T> GroupsAccumulator for SumInt<T>
where
    T: ArrowPrimitiveType,
    T::Native: Widen,
{
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        let values = numeric_input::<T>(args, "SUM")?;
        self.grow(args.total_groups);
        let selection = args.selection(true);
        let (sums, seen) = (&mut self.sums, &mut self.seen);
        let groups = args.groups;
        let mut overflow = false;
        match &selection {
            None => {
                for (&g, &v) in groups.iter().zip(values) {
                    let g = g as usize;
                    let (w, lossy) = v.widen_i64();
                    let (s, o) = sums[g].overflowing_add(w);
                    sums[g] = s;
                    seen[g] = true;
                    overflow |= o | lossy;
                }
            }
            Some(_) => for_each_row(groups.len(), selection.as_ref(), |i| {
                let g = groups[i] as usize;
                let (w, lossy) = values[i].widen_i64();
                let (s, o) = sums[g].overflowing_add(w);
                sums[g] = s;
                seen[g] = true;
                overflow |= o | lossy;
            }),
        }
        if overflow {
            exec_err!("SUM overflowed the BIGINT range");
        }
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        let (d, s) = (dst as usize, src as usize);
        self.grow(d + 1);
        if other.seen.get(s).copied().unwrap_or(false) {
            match self.sums[d].checked_add(other.sums[s]) {
                Some(v) => self.sums[d] = v,
                None => exec_err!("SUM overflowed the BIGINT range"),
            }
            self.seen[d] = true;
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let a: Int64Array = groups
            .iter()
            .map(|&g| {
                let g = g as usize;
                self.seen
                    .get(g)
                    .copied()
                    .unwrap_or(false)
                    .then(|| self.sums[g])
            })
            .collect();
        Ok(Arc::new(a))
    }

    fn reset(&mut self, group: u32) {
        let g = group as usize;
        if g < self.sums.len() {
            self.sums[g] = 0;
            self.seen[g] = false;
        }
    }

    fn num_groups(&self) -> usize {
        self.sums.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        let g = group as usize;
        let seen = self.seen.get(g).copied().unwrap_or(false);
        codec::put_u8(out, tag::SUM_INT);
        codec::put_u8(out, seen as u8);
        codec::put_i64(out, if seen { self.sums[g] } else { 0 });
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(tag::SUM_INT)?;
        let seen = r.bool()?;
        let sum = r.i64()?;
        let g = group as usize;
        self.grow(g + 1);
        self.seen[g] = seen;
        self.sums[g] = sum;
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.sums.capacity() * 8 + self.seen.capacity()
    }
}

// ---------------------------------------------------------------------------
// SUM of floats

/// `SUM` of floats into f64 (plain summation, like Flink's DOUBLE sum).
pub(crate) struct SumFloat<T> {
    sums: Vec<f64>,
    seen: Vec<bool>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for SumFloat<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SumFloat<{}>", std::any::type_name::<T>())
    }
}

impl<T> SumFloat<T> {
    fn new() -> Self {
        Self {
            sums: Vec::new(),
            seen: Vec::new(),
            _t: PhantomData,
        }
    }

    fn grow(&mut self, n: usize) {
        grow(&mut self.sums, n, 0.0);
        grow(&mut self.seen, n, false);
    }
}

impl<T> GroupsAccumulator for SumFloat<T>
where
    T: ArrowPrimitiveType,
    T::Native: Widen,
{
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        let values = numeric_input::<T>(args, "SUM")?;
        self.grow(args.total_groups);
        let selection = args.selection(true);
        let (sums, seen) = (&mut self.sums, &mut self.seen);
        let groups = args.groups;
        match &selection {
            None => {
                for (&g, &v) in groups.iter().zip(values) {
                    let g = g as usize;
                    sums[g] += v.widen_f64();
                    seen[g] = true;
                }
            }
            Some(_) => for_each_row(groups.len(), selection.as_ref(), |i| {
                let g = groups[i] as usize;
                sums[g] += values[i].widen_f64();
                seen[g] = true;
            }),
        }
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        let (d, s) = (dst as usize, src as usize);
        self.grow(d + 1);
        if other.seen.get(s).copied().unwrap_or(false) {
            self.sums[d] += other.sums[s];
            self.seen[d] = true;
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let a: Float64Array = groups
            .iter()
            .map(|&g| {
                let g = g as usize;
                self.seen
                    .get(g)
                    .copied()
                    .unwrap_or(false)
                    .then(|| self.sums[g])
            })
            .collect();
        Ok(Arc::new(a))
    }

    fn reset(&mut self, group: u32) {
        let g = group as usize;
        if g < self.sums.len() {
            self.sums[g] = 0.0;
            self.seen[g] = false;
        }
    }

    fn num_groups(&self) -> usize {
        self.sums.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        let g = group as usize;
        let seen = self.seen.get(g).copied().unwrap_or(false);
        codec::put_u8(out, tag::SUM_FLOAT);
        codec::put_u8(out, seen as u8);
        codec::put_f64(out, if seen { self.sums[g] } else { 0.0 });
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(tag::SUM_FLOAT)?;
        let seen = r.bool()?;
        let sum = r.f64()?;
        let g = group as usize;
        self.grow(g + 1);
        self.seen[g] = seen;
        self.sums[g] = sum;
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.sums.capacity() * 8 + self.seen.capacity()
    }
}

// ---------------------------------------------------------------------------
// AVG

/// `AVG` as an f64 sum and a row count; the count doubles as the "seen" flag.
pub(crate) struct Avg<T> {
    sums: Vec<f64>,
    counts: Vec<u64>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Avg<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Avg<{}>", std::any::type_name::<T>())
    }
}

impl<T> Avg<T> {
    fn new() -> Self {
        Self {
            sums: Vec::new(),
            counts: Vec::new(),
            _t: PhantomData,
        }
    }

    fn grow(&mut self, n: usize) {
        grow(&mut self.sums, n, 0.0);
        grow(&mut self.counts, n, 0);
    }
}

impl<T> GroupsAccumulator for Avg<T>
where
    T: ArrowPrimitiveType,
    T::Native: Widen,
{
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        let values = numeric_input::<T>(args, "AVG")?;
        self.grow(args.total_groups);
        let selection = args.selection(true);
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        let groups = args.groups;
        match &selection {
            None => {
                for (&g, &v) in groups.iter().zip(values) {
                    let g = g as usize;
                    sums[g] += v.widen_f64();
                    counts[g] += 1;
                }
            }
            Some(_) => for_each_row(groups.len(), selection.as_ref(), |i| {
                let g = groups[i] as usize;
                sums[g] += values[i].widen_f64();
                counts[g] += 1;
            }),
        }
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        let (d, s) = (dst as usize, src as usize);
        self.grow(d + 1);
        if let Some(&c) = other.counts.get(s) {
            self.sums[d] += other.sums[s];
            self.counts[d] += c;
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let a: Float64Array = groups
            .iter()
            .map(|&g| {
                let g = g as usize;
                match self.counts.get(g) {
                    Some(&c) if c > 0 => Some(self.sums[g] / c as f64),
                    _ => None,
                }
            })
            .collect();
        Ok(Arc::new(a))
    }

    fn reset(&mut self, group: u32) {
        let g = group as usize;
        if g < self.sums.len() {
            self.sums[g] = 0.0;
            self.counts[g] = 0;
        }
    }

    fn num_groups(&self) -> usize {
        self.sums.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        let g = group as usize;
        let (sum, count) = match self.counts.get(g) {
            Some(&c) => (self.sums[g], c),
            None => (0.0, 0),
        };
        codec::put_u8(out, tag::AVG);
        codec::put_u64(out, count);
        codec::put_f64(out, sum);
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(tag::AVG)?;
        let count = r.u64()?;
        let sum = r.f64()?;
        let g = group as usize;
        self.grow(g + 1);
        self.counts[g] = count;
        self.sums[g] = sum;
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.sums.capacity() * 8 + self.counts.capacity() * 8
    }
}

// ---------------------------------------------------------------------------
// STDDEV / VARIANCE

/// Which statistic a [`Variance`] accumulator outputs; the state is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarianceKind {
    StddevSamp,
    StddevPop,
    VarSamp,
    VarPop,
}

/// Count, mean and sum of squared deviations (M2) per group: Welford's update
/// per row and Chan's formula on merge stay accurate where the textbook
/// `sum(x²) - sum(x)²/n` cancels catastrophically.
pub(crate) struct Variance<T> {
    kind: VarianceKind,
    counts: Vec<u64>,
    means: Vec<f64>,
    m2s: Vec<f64>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Variance<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Variance<{}>", std::any::type_name::<T>())
    }
}

impl<T> Variance<T> {
    fn new(kind: VarianceKind) -> Self {
        Self {
            kind,
            counts: Vec::new(),
            means: Vec::new(),
            m2s: Vec::new(),
            _t: PhantomData,
        }
    }

    fn grow(&mut self, n: usize) {
        grow(&mut self.counts, n, 0);
        grow(&mut self.means, n, 0.0);
        grow(&mut self.m2s, n, 0.0);
    }

    fn result(&self, g: usize) -> Option<f64> {
        let n = *self.counts.get(g)?;
        // Rounding must not turn a zero spread into a tiny negative variance.
        let m2 = if self.m2s[g] < 0.0 { 0.0 } else { self.m2s[g] };
        match self.kind {
            VarianceKind::VarPop if n > 0 => Some(m2 / n as f64),
            VarianceKind::StddevPop if n > 0 => Some((m2 / n as f64).sqrt()),
            VarianceKind::VarSamp if n > 1 => Some(m2 / (n - 1) as f64),
            VarianceKind::StddevSamp if n > 1 => Some((m2 / (n - 1) as f64).sqrt()),
            _ => None,
        }
    }
}

/// Welford's single-value update.
#[inline(always)]
fn welford(count: &mut u64, mean: &mut f64, m2: &mut f64, x: f64) {
    *count += 1;
    let delta = x - *mean;
    *mean += delta / *count as f64;
    *m2 += delta * (x - *mean);
}

impl<T> GroupsAccumulator for Variance<T>
where
    T: ArrowPrimitiveType,
    T::Native: Widen,
{
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        let values = numeric_input::<T>(args, "STDDEV/VARIANCE")?;
        self.grow(args.total_groups);
        let selection = args.selection(true);
        let (counts, means, m2s) = (&mut self.counts, &mut self.means, &mut self.m2s);
        let groups = args.groups;
        for_each_row(groups.len(), selection.as_ref(), |i| {
            let g = groups[i] as usize;
            welford(
                &mut counts[g],
                &mut means[g],
                &mut m2s[g],
                values[i].widen_f64(),
            );
        });
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        let (d, s) = (dst as usize, src as usize);
        self.grow(d + 1);
        let nb = other.counts.get(s).copied().unwrap_or(0);
        if nb == 0 {
            return Ok(());
        }
        let na = self.counts[d];
        if na == 0 {
            self.counts[d] = nb;
            self.means[d] = other.means[s];
            self.m2s[d] = other.m2s[s];
            return Ok(());
        }
        let n = na + nb;
        let (fa, fb, f) = (na as f64, nb as f64, n as f64);
        let delta = other.means[s] - self.means[d];
        self.means[d] += delta * fb / f;
        self.m2s[d] += other.m2s[s] + delta * delta * fa * fb / f;
        self.counts[d] = n;
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let a: Float64Array = groups.iter().map(|&g| self.result(g as usize)).collect();
        Ok(Arc::new(a))
    }

    fn reset(&mut self, group: u32) {
        let g = group as usize;
        if g < self.counts.len() {
            self.counts[g] = 0;
            self.means[g] = 0.0;
            self.m2s[g] = 0.0;
        }
    }

    fn num_groups(&self) -> usize {
        self.counts.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        let g = group as usize;
        let (count, mean, m2) = match self.counts.get(g) {
            Some(&c) => (c, self.means[g], self.m2s[g]),
            None => (0, 0.0, 0.0),
        };
        codec::put_u8(out, tag::VARIANCE);
        codec::put_u64(out, count);
        codec::put_f64(out, mean);
        codec::put_f64(out, m2);
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(tag::VARIANCE)?;
        let count = r.u64()?;
        let mean = r.f64()?;
        let m2 = r.f64()?;
        if count == 0 && (mean != 0.0 || m2 != 0.0) {
            return Err(corrupt("variance state with no rows but a non-zero mean"));
        }
        let g = group as usize;
        self.grow(g + 1);
        self.counts[g] = count;
        self.means[g] = mean;
        self.m2s[g] = m2;
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.counts.capacity() * 24
    }
}
