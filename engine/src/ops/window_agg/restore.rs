//! Restoring a window aggregate: the watermark, the arrival sequence and
//! the list of stored slices from the meta entry (a union of the old
//! subtasks' lists after a rescale).

use runnel_state::TableId;

use super::WindowAggregate;
use crate::error::{EngineError, Result};
use crate::operator::OperatorContext;
use crate::ops::agg::{decode_time_at, load_meta_with, scan_owned};
use crate::types::EventTime;

impl WindowAggregate {
    /// Reads the watermark, sequence and stored slices; the entries stay in
    /// the backend until their windows fire.
    pub(super) fn restore(&mut self, ctx: &mut OperatorContext<'_>, table: TableId) -> Result<()> {
        let Some((watermark, seq, extra)) = load_meta_with(ctx, table)? else {
            return Ok(());
        };
        self.watermark = watermark;
        self.seq = seq;
        let corrupt = || {
            EngineError::State(runnel_state::StateError::Corrupt {
                table: "window aggregate".into(),
                reason: "the list of stored slices is truncated".into(),
            })
        };
        if extra.is_empty() {
            // Written before the meta entry listed stored slices: find them.
            for (kg, ns, _, _) in scan_owned(ctx, table, 8)? {
                let slice_end = decode_time_at(&ns, 0)?;
                self.stored.entry(slice_end).or_default().insert(kg);
            }
            let ends: Vec<EventTime> = self.stored.keys().copied().collect();
            for slice_end in ends {
                for e in self.spec.window.window_ends_of_slice(slice_end) {
                    if e.saturating_sub(1) > watermark {
                        self.pending_ends.insert(e);
                    }
                }
            }
            return Ok(());
        }
        let mut rest = extra.as_slice();
        while !rest.is_empty() {
            let end: [u8; 8] = rest
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(corrupt)?;
            let n: [u8; 4] = rest
                .get(8..12)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(corrupt)?;
            let n = u32::from_le_bytes(n) as usize;
            let groups = rest.get(12..12 + 2 * n).ok_or_else(corrupt)?;
            let slice_end = i64::from_le_bytes(end);
            // A union: after a rescale the list holds one part per old
            // subtask, with key groups this subtask may not own.
            let owned = runnel_state::key_group_range(
                ctx.task.subtask,
                ctx.task.parallelism,
                ctx.task.max_parallelism,
            );
            self.stored.entry(slice_end).or_default().extend(
                groups
                    .chunks_exact(2)
                    .map(|g| u16::from_le_bytes([g[0], g[1]]))
                    .filter(|g| owned.contains(&u32::from(*g))),
            );
            rest = &rest[12 + 2 * n..];
            for e in self.spec.window.window_ends_of_slice(slice_end) {
                if e.saturating_sub(1) > watermark {
                    self.pending_ends.insert(e);
                }
            }
        }
        Ok(())
    }
}
