//! Watermark generation at sources and merging where inputs meet.
//!
//! A source subtask tracks each of its splits: the newest event time seen
//! and when it last produced data. Its watermark is the minimum, over the
//! splits that are neither finished nor idle, of `newest - delay - 1` (as
//! Flink's bounded out-of-orderness strategy: a watermark `w` promises no
//! row with time `<= w` follows). A split that has produced nothing yet
//! holds the watermark back until it produces data or becomes idle. When
//! every live split is idle, the subtask reports [`Watermark::Idle`].
//!
//! An operator with several input channels takes the minimum over the
//! inputs that are neither idle nor ended. The merged watermark never goes
//! back: an idle input that wakes up with an older watermark does not pull
//! it down (its rows behind the watermark become late rows).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::source::SplitId;
use crate::types::{EventTime, Watermark};

#[derive(Debug, Clone)]
struct SplitState {
    newest: Option<EventTime>,
    last_active: Instant,
    finished: bool,
}

/// Per-split bounded-out-of-orderness watermarks of one source subtask.
#[derive(Debug)]
pub struct WatermarkGenerator {
    delay_ms: i64,
    idle_timeout: Option<Duration>,
    splits: BTreeMap<SplitId, SplitState>,
    last_time: Option<EventTime>,
    idle: bool,
}

impl WatermarkGenerator {
    /// A generator for `splits`, all considered active from `now`.
    pub fn new(
        delay: Duration,
        idle_timeout: Option<Duration>,
        splits: &[SplitId],
        now: Instant,
    ) -> Self {
        let splits = splits
            .iter()
            .map(|&s| {
                (
                    s,
                    SplitState {
                        newest: None,
                        last_active: now,
                        finished: false,
                    },
                )
            })
            .collect();
        Self {
            delay_ms: i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
            idle_timeout,
            splits,
            last_time: None,
            idle: false,
        }
    }

    /// Records that `split` produced rows whose newest event time is `newest`.
    pub fn on_rows(&mut self, split: SplitId, newest: Option<EventTime>, now: Instant) {
        let s = self.splits.entry(split).or_insert(SplitState {
            newest: None,
            last_active: now,
            finished: false,
        });
        s.last_active = now;
        if let Some(t) = newest {
            s.newest = Some(s.newest.map_or(t, |n| n.max(t)));
        }
    }

    /// Records that `split` is exhausted.
    pub fn split_finished(&mut self, split: SplitId) {
        if let Some(s) = self.splits.get_mut(&split) {
            s.finished = true;
        }
    }

    /// The subtask's watermark as of `now`, or `None` while a live split has
    /// produced nothing yet (and is not idle).
    pub fn current(&self, now: Instant) -> Option<Watermark> {
        let mut min: Option<EventTime> = None;
        let mut any_live = false;
        for s in self.splits.values().filter(|s| !s.finished) {
            let idle = self
                .idle_timeout
                .is_some_and(|t| now.saturating_duration_since(s.last_active) >= t);
            if idle {
                continue;
            }
            any_live = true;
            let wm = s.newest?.saturating_sub(self.delay_ms).saturating_sub(1);
            min = Some(min.map_or(wm, |m| m.min(wm)));
        }
        match (any_live, min) {
            (true, Some(m)) => Some(Watermark::EventTime(m)),
            (true, None) => None,
            // Every split finished: nothing holds time back.
            (false, _) if self.splits.values().all(|s| s.finished) && !self.splits.is_empty() => {
                Some(Watermark::MAX)
            }
            (false, _) => Some(Watermark::Idle),
        }
    }

    /// The watermark to send downstream now, if it differs from the last one
    /// sent: a later event time, or a change into or out of idleness.
    /// Event-time watermarks never go back.
    pub fn poll(&mut self, now: Instant) -> Option<Watermark> {
        match self.current(now)? {
            Watermark::EventTime(t) => {
                let t = self.last_time.map_or(t, |l| l.max(t));
                let advanced = self.last_time.is_none_or(|l| t > l);
                if !advanced && !self.idle {
                    return None;
                }
                self.idle = false;
                self.last_time = Some(t);
                Some(Watermark::EventTime(t))
            }
            Watermark::Idle if self.idle => None,
            Watermark::Idle => {
                self.idle = true;
                Some(Watermark::Idle)
            }
        }
    }
}

impl WatermarkGenerator {
    /// As [`WatermarkGenerator::poll`], but a later event time goes out
    /// only when `due()` says so (the source's watermark interval); a
    /// change into or out of idleness is never held back, so that rows of
    /// an input waking up are not taken for rows of an idle one.
    pub fn poll_due(&mut self, now: Instant, due: impl FnOnce() -> bool) -> Option<Watermark> {
        let idleness_changes = self.idle || matches!(self.current(now), Some(Watermark::Idle));
        if idleness_changes || due() {
            self.poll(now)
        } else {
            None
        }
    }
}

/// Merges the watermarks of several input channels.
#[derive(Debug)]
pub struct WatermarkMerger {
    inputs: Vec<InputWatermark>,
    current: Option<EventTime>,
    idle_sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum InputWatermark {
    None,
    Time(EventTime),
    Idle,
    Ended,
}

impl WatermarkMerger {
    /// A merger for `n` input channels, none of which has sent a watermark.
    pub fn new(n: usize) -> Self {
        Self {
            inputs: vec![InputWatermark::None; n],
            current: None,
            idle_sent: false,
        }
    }

    /// The merged event-time watermark so far.
    pub fn current(&self) -> Option<EventTime> {
        self.current
    }

    /// Input `i` sent `wm`; returns the watermark to forward, if any.
    pub fn update(&mut self, i: usize, wm: Watermark) -> Option<Watermark> {
        if let Some(slot) = self.inputs.get_mut(i) {
            *slot = match wm {
                Watermark::EventTime(t) => InputWatermark::Time(t),
                Watermark::Idle => InputWatermark::Idle,
            };
        }
        self.recompute()
    }

    /// Input `i` ended; it no longer holds anything back.
    pub fn input_ended(&mut self, i: usize) -> Option<Watermark> {
        if let Some(slot) = self.inputs.get_mut(i) {
            *slot = InputWatermark::Ended;
        }
        self.recompute()
    }

    fn recompute(&mut self) -> Option<Watermark> {
        let mut min: Option<EventTime> = None;
        let mut active = 0usize;
        for w in &self.inputs {
            match *w {
                InputWatermark::None => return None,
                InputWatermark::Time(t) => {
                    active += 1;
                    min = Some(min.map_or(t, |m| m.min(t)));
                }
                InputWatermark::Idle | InputWatermark::Ended => {}
            }
        }
        if active == 0 {
            let all_ended = self.inputs.iter().all(|w| *w == InputWatermark::Ended);
            if all_ended || self.idle_sent {
                return None;
            }
            self.idle_sent = true;
            return Some(Watermark::Idle);
        }
        let was_idle = std::mem::replace(&mut self.idle_sent, false);
        let min = min?;
        match self.current {
            Some(c) if min <= c => was_idle.then_some(Watermark::EventTime(c)),
            _ => {
                self.current = Some(min);
                Some(Watermark::EventTime(min))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The watermark interval holds back a later event time, but never
    /// going idle or waking up.
    #[test]
    fn the_interval_holds_back_time_but_not_idleness() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut g = WatermarkGenerator::new(Duration::ZERO, Some(ms(10)), &[0], t0);
        g.on_rows(0, Some(100), t0);
        assert_eq!(g.poll_due(t0, || true), Some(Watermark::EventTime(99)));
        assert_eq!(
            g.poll_due(t0 + ms(20), || false),
            Some(Watermark::Idle),
            "going idle is not held back"
        );
        g.on_rows(0, Some(200), t0 + ms(21));
        assert_eq!(
            g.poll_due(t0 + ms(21), || false),
            Some(Watermark::EventTime(199)),
            "waking up is not held back"
        );
        g.on_rows(0, Some(300), t0 + ms(22));
        assert_eq!(g.poll_due(t0 + ms(22), || false), None, "not due yet");
        assert_eq!(
            g.poll_due(t0 + ms(23), || true),
            Some(Watermark::EventTime(299))
        );
    }

    #[test]
    fn generator_takes_min_over_splits_and_subtracts_delay() {
        let t0 = Instant::now();
        let mut g = WatermarkGenerator::new(Duration::from_millis(5), None, &[0, 1], t0);
        g.on_rows(0, Some(100), t0);
        assert_eq!(g.poll(t0), None, "split 1 has produced nothing yet");
        g.on_rows(1, Some(50), t0);
        assert_eq!(g.poll(t0), Some(Watermark::EventTime(44)));
        g.on_rows(1, Some(40), t0);
        assert_eq!(g.poll(t0), None, "an older row does not move the watermark");
        g.on_rows(1, Some(200), t0);
        assert_eq!(g.poll(t0), Some(Watermark::EventTime(94)));
        g.split_finished(0);
        assert_eq!(g.poll(t0), Some(Watermark::EventTime(194)));
        g.split_finished(1);
        assert_eq!(g.poll(t0), Some(Watermark::MAX));
    }

    #[test]
    fn idle_split_stops_holding_back_and_all_idle_reports_idle() {
        let t0 = Instant::now();
        let mut g = WatermarkGenerator::new(Duration::ZERO, Some(secs(10)), &[0, 1], t0);
        g.on_rows(0, Some(1_000), t0);
        assert_eq!(g.poll(t0), None);
        // Split 1 never produces; after the timeout it no longer counts.
        assert_eq!(g.poll(t0 + secs(11)), Some(Watermark::Idle));
        let t1 = t0 + secs(12);
        g.on_rows(0, Some(2_000), t1);
        assert_eq!(g.poll(t1), Some(Watermark::EventTime(1_999)));
    }

    #[test]
    fn merger_takes_min_and_ignores_idle_and_ended() {
        let mut m = WatermarkMerger::new(3);
        assert_eq!(m.update(0, Watermark::EventTime(10)), None);
        assert_eq!(m.update(1, Watermark::EventTime(20)), None);
        assert_eq!(
            m.update(2, Watermark::EventTime(5)),
            Some(Watermark::EventTime(5))
        );
        assert_eq!(m.update(2, Watermark::Idle), Some(Watermark::EventTime(10)));
        assert_eq!(
            m.update(0, Watermark::EventTime(30)),
            Some(Watermark::EventTime(20))
        );
        // Input 2 wakes with an old time: the merged watermark does not go back.
        assert_eq!(m.update(2, Watermark::EventTime(7)), None);
        assert_eq!(m.current(), Some(20));
        assert_eq!(
            m.input_ended(2),
            None,
            "ending the slowest input changes nothing here"
        );
        assert_eq!(m.update(1, Watermark::Idle), Some(Watermark::EventTime(30)));
        assert_eq!(m.update(0, Watermark::Idle), Some(Watermark::Idle));
        assert_eq!(m.update(0, Watermark::Idle), None, "idle is sent once");
    }
}
