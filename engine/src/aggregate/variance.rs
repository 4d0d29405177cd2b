//! `STDDEV_SAMP`, `STDDEV_POP`, `VAR_SAMP` and `VAR_POP`: one running
//! count, mean and M2 per group, whichever statistic is output.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::{ArrowPrimitiveType, DataType};

use super::codec::{self, corrupt, tag, Reader};
use super::numeric::{not_numeric, numeric_input, with_numeric_type, Widen};
use super::{downcast_other, for_each_row, grow, AggregateFunction, GroupsAccumulator, UpdateArgs};
use crate::error::Result;
use crate::internal_err;

/// The accumulator of a variance-family `func` for a numeric argument type.
pub(super) fn create_variance(
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
    pub(super) fn new(kind: VarianceKind) -> Self {
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
