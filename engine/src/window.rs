//! Window assignment for TUMBLE, HOP, CUMULATE and SESSION.
//!
//! Times are milliseconds. A window `[start, end)` holds the rows with
//! `start <= ts < end` and fires when the watermark reaches `end - 1`, its
//! largest timestamp (as in Flink). TUMBLE, HOP and CUMULATE windows are cut
//! into *slices*: non-overlapping pieces whose size divides every window, so
//! a row is added to exactly one slice and a window's result is the merge of
//! its slices' partial aggregates (no row is copied into every window it
//! belongs to). SESSION windows are per key and merge as rows arrive; they
//! are handled by their own operator.

use crate::error::{EngineError, Result};
use crate::types::EventTime;

/// A window kind with its sizes, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `size`.
    Tumble {
        /// Window length.
        size: i64,
    },
    /// Windows of `size` starting every `slide` (Flink's HOP takes the slide first).
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window length; a multiple of `slide`.
        size: i64,
    },
    /// Windows that start every `size` and grow by `step` until they reach `size`.
    Cumulate {
        /// Growth step.
        step: i64,
        /// Largest window length; a multiple of `step`.
        size: i64,
    },
    /// Per-key windows that close after `gap` without rows.
    Session {
        /// Inactivity gap.
        gap: i64,
    },
}

impl WindowSpec {
    /// Checks the sizes, with a message a SQL user can act on.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: i64| {
            if v <= 0 {
                Err(EngineError::Plan(format!(
                    "window {name} must be positive, got {v} ms"
                )))
            } else {
                Ok(())
            }
        };
        match *self {
            WindowSpec::Tumble { size } => positive("size", size),
            WindowSpec::Hop { slide, size } => {
                positive("slide", slide)?;
                positive("size", size)?;
                if size % slide != 0 {
                    return Err(EngineError::Plan(format!(
                        "HOP size ({size} ms) must be a whole multiple of its slide ({slide} ms)"
                    )));
                }
                Ok(())
            }
            WindowSpec::Cumulate { step, size } => {
                positive("step", step)?;
                positive("size", size)?;
                if size % step != 0 {
                    return Err(EngineError::Plan(format!(
                        "CUMULATE size ({size} ms) must be a whole multiple of its step ({step} ms)"
                    )));
                }
                Ok(())
            }
            WindowSpec::Session { gap } => positive("gap", gap),
        }
    }

    /// Length of the slices the window is cut into (the gap for sessions,
    /// which have no slices).
    pub fn slice_size(&self) -> i64 {
        match *self {
            WindowSpec::Tumble { size } => size,
            WindowSpec::Hop { slide, .. } => slide,
            WindowSpec::Cumulate { step, .. } => step,
            WindowSpec::Session { gap } => gap,
        }
    }

    /// End of the slice holding `ts`.
    pub fn slice_end(&self, ts: EventTime) -> EventTime {
        let s = self.slice_size();
        ts.div_euclid(s).saturating_mul(s).saturating_add(s)
    }

    /// End of the last window that uses the slice ending at `slice_end`:
    /// once that window fired, the slice can be dropped, and a row of that
    /// slice arriving later is late.
    pub fn last_window_end(&self, slice_end: EventTime) -> EventTime {
        match *self {
            WindowSpec::Tumble { .. } | WindowSpec::Session { .. } => slice_end,
            WindowSpec::Hop { slide, size } => slice_end.saturating_sub(slide).saturating_add(size),
            WindowSpec::Cumulate { size, .. } => (slice_end - 1)
                .div_euclid(size)
                .saturating_mul(size)
                .saturating_add(size),
        }
    }

    /// True when every window the slice ending at `slice_end` belongs to
    /// has fired by `watermark`: a row of that slice is late. The one rule
    /// of the window aggregate and of the split that sends its late rows
    /// to a late-data table ([`crate::ops::late`]).
    pub fn slice_is_late(&self, slice_end: EventTime, watermark: EventTime) -> bool {
        self.last_window_end(slice_end).saturating_sub(1) <= watermark
    }

    /// Ends of every window the slice ending at `slice_end` belongs to, in
    /// increasing order.
    pub fn window_ends_of_slice(&self, slice_end: EventTime) -> Vec<EventTime> {
        let step = self.slice_size();
        let last = self.last_window_end(slice_end);
        let mut ends = Vec::new();
        let mut e = slice_end;
        while e <= last {
            ends.push(e);
            match e.checked_add(step) {
                Some(n) => e = n,
                None => break,
            }
        }
        ends
    }

    /// Start of the (non-session) window that ends at `end`.
    pub fn window_start(&self, end: EventTime) -> EventTime {
        match *self {
            WindowSpec::Tumble { size } | WindowSpec::Hop { size, .. } => end.saturating_sub(size),
            WindowSpec::Cumulate { size, .. } => (end - 1).div_euclid(size).saturating_mul(size),
            WindowSpec::Session { gap } => end.saturating_sub(gap),
        }
    }

    /// Every window `[start, end)` a row at `ts` belongs to, computed
    /// directly (not from slices). For sessions, the row's own window
    /// `[ts, ts + gap)` before merging.
    pub fn windows_of(&self, ts: EventTime) -> Vec<(EventTime, EventTime)> {
        match *self {
            WindowSpec::Tumble { size } => {
                let start = ts.div_euclid(size) * size;
                vec![(start, start + size)]
            }
            WindowSpec::Hop { slide, size } => {
                // Starts are multiples of slide in (ts - size, ts].
                let last_start = ts.div_euclid(slide) * slide;
                let mut out = Vec::new();
                let mut start = last_start;
                while start > ts - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
                out
            }
            WindowSpec::Cumulate { step, size } => {
                let start = ts.div_euclid(size) * size;
                let mut out = Vec::new();
                let mut end = start + step;
                while end <= start + size {
                    if ts < end {
                        out.push((start, end));
                    }
                    end += step;
                }
                out
            }
            WindowSpec::Session { gap } => vec![(ts, ts + gap)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windows made of the slices of `ts` must be the windows computed
    /// directly, for every kind.
    fn slices_agree(spec: WindowSpec, ts: i64) {
        let slice_end = spec.slice_end(ts);
        assert!(slice_end - spec.slice_size() <= ts && ts < slice_end);
        let from_slices: Vec<(i64, i64)> = spec
            .window_ends_of_slice(slice_end)
            .into_iter()
            .map(|e| (spec.window_start(e), e))
            .collect();
        assert_eq!(from_slices, spec.windows_of(ts), "{spec:?} at {ts}");
    }

    #[test]
    fn tumble_hop_cumulate_slices_match_direct_assignment() {
        let specs = [
            WindowSpec::Tumble { size: 10 },
            WindowSpec::Hop { slide: 5, size: 15 },
            WindowSpec::Hop {
                slide: 10,
                size: 10,
            },
            WindowSpec::Cumulate { step: 5, size: 20 },
        ];
        for spec in specs {
            for ts in -40..60 {
                slices_agree(spec, ts);
            }
        }
    }

    #[test]
    fn hand_checked_windows() {
        assert_eq!(
            WindowSpec::Tumble { size: 10 }.windows_of(-1),
            vec![(-10, 0)]
        );
        assert_eq!(
            WindowSpec::Hop { slide: 5, size: 15 }.windows_of(7),
            vec![(-5, 10), (0, 15), (5, 20)]
        );
        assert_eq!(
            WindowSpec::Cumulate { step: 5, size: 20 }.windows_of(27),
            vec![(20, 30), (20, 35), (20, 40)]
        );
        assert_eq!(
            WindowSpec::Cumulate { step: 5, size: 20 }.last_window_end(25),
            40
        );
    }

    #[test]
    fn invalid_sizes_are_plan_errors() {
        let err = WindowSpec::Hop { slide: 7, size: 15 }
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("whole multiple"), "{err}");
        assert!(WindowSpec::Tumble { size: 0 }.validate().is_err());
        assert!(WindowSpec::Session { gap: -1 }.validate().is_err());
        assert!(WindowSpec::Cumulate { step: 5, size: 20 }
            .validate()
            .is_ok());
    }
}
