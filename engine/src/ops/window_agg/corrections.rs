//! Allowed lateness: the windows a batch of late rows changes after they
//! fired, and their current results per key (read from the in-memory
//! slices and the state backend), so the aggregate can emit `-U`/`+U`.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::ArrayRef;
use runnel_state::encode_time;

use super::WindowAggregate;
use crate::error::Result;
use crate::operator::OperatorContext;
use crate::ops::agg::{load_group, state_key};
use crate::types::EventTime;

impl WindowAggregate {
    /// The windows that fired but may still change, and the keys a batch
    /// of rows at slices `slice_of` changes in each.
    pub(super) fn corrections(
        &self,
        slice_of: &[Option<EventTime>],
        key_rows: &arrow::row::Rows,
    ) -> BTreeMap<EventTime, BTreeSet<Vec<u8>>> {
        let mut out: BTreeMap<EventTime, BTreeSet<Vec<u8>>> = BTreeMap::new();
        if self.spec.allowed_lateness == 0 {
            return out;
        }
        let closed = self.cleanup_watermark();
        for (i, s) in slice_of.iter().enumerate() {
            let Some(s) = s else { continue };
            for e in self.spec.window.window_ends_of_slice(*s) {
                let last = e.saturating_sub(1);
                if last <= self.watermark && last > closed {
                    out.entry(e)
                        .or_default()
                        .insert(key_rows.row(i).as_ref().to_vec());
                }
            }
        }
        out
    }

    /// The current result of window `end` for each of `keys` that has one:
    /// the keys found and their values.
    pub(super) fn results_of(
        &self,
        end: EventTime,
        keys: &BTreeSet<Vec<u8>>,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<(Vec<Vec<u8>>, Vec<ArrayRef>)> {
        let start = self.spec.window.window_start(end);
        let table = self.table()?;
        let mut merged = self.aggs.accumulators()?;
        let mut scratch = self.aggs.accumulators()?;
        let mut found: Vec<Vec<u8>> = Vec::new();
        for key in keys {
            let dst = found.len() as u32;
            let mut any = false;
            for slice in self
                .slices
                .range(start.saturating_add(1)..=end)
                .map(|(_, s)| s)
            {
                if let Some(&g) = slice.groups.get(key.as_slice()) {
                    for (m, a) in merged.iter_mut().zip(&slice.accs) {
                        m.merge(dst, a.as_ref(), g)?;
                    }
                    any = true;
                }
            }
            for s in self
                .stored
                .range(start.saturating_add(1)..=end)
                .map(|(s, _)| *s)
            {
                let skey = state_key(ctx, key, &encode_time(s));
                if let Some(v) = ctx.state.get(table, &skey)? {
                    load_group(&mut scratch, 0, &v)?;
                    for (m, a) in merged.iter_mut().zip(&scratch) {
                        m.merge(dst, a.as_ref(), 0)?;
                    }
                    any = true;
                }
            }
            if any {
                found.push(key.clone());
            }
        }
        let groups: Vec<u32> = (0..found.len() as u32).collect();
        let values = merged
            .iter()
            .map(|a| a.evaluate(&groups))
            .collect::<Result<Vec<_>>>()?;
        Ok((found, values))
    }
}
