//! What a running job reports about itself: each subtask's counters, the
//! progress line, and the latency measured with latency markers.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::coordinator::CheckpointStats;
use crate::graph::NodeId;
use crate::operator::OperatorMetrics;
use crate::types::EventTime;

/// Counters of one subtask of one node.
#[derive(Debug, Clone)]
pub struct SubtaskMetrics {
    /// The node.
    pub node: NodeId,
    /// The node's name.
    pub name: String,
    /// Subtask index.
    pub subtask: usize,
    /// True for source subtasks.
    pub is_source: bool,
    /// True for nodes without outgoing edges.
    pub is_sink: bool,
    /// The live counters.
    pub metrics: Arc<OperatorMetrics>,
    /// The counters of the thread the subtask runs on, shared by every
    /// operator chained with it.
    pub task: Arc<TaskMetrics>,
}

/// Where one chain subtask's thread spends its time, and the bytes it
/// receives from and sends to other subtasks (as Flink's task metrics
/// `busyTimeMsPerSecond`, `backPressuredTimeMsPerSecond`,
/// `idleTimeMsPerSecond`, `numBytesIn`, `numBytesOut`). Idle is waiting
/// for input; backpressured is waiting for room in a full output channel;
/// busy is the rest. Bytes are the Arrow buffers of the batches crossing
/// a channel (rows passed between chained operators are not counted).
///
/// A wait is marked when it starts and when it ends ([`TaskMetrics::wait`]),
/// so a reader in the middle of a long wait sees it as it grows, and each
/// of the three times only ever grows (as Prometheus counters must).
#[derive(Debug)]
pub struct TaskMetrics {
    started: Instant,
    clock: Mutex<Clock>,
    /// Bytes of the batches received from other subtasks.
    pub bytes_in: AtomicU64,
    /// Bytes of the batches sent to other subtasks.
    pub bytes_out: AtomicU64,
}

/// What a subtask thread is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Input.
    Idle,
    /// Room in a full output channel.
    Backpressured,
}

#[derive(Debug, Default)]
struct Clock {
    idle: Duration,
    backpressured: Duration,
    /// The wait in progress and when it began.
    waiting: Option<(Wait, Instant)>,
    /// When the thread ended: its times stop there.
    ended: Option<Instant>,
    /// Busy as last reported: busy never goes down, even when time first
    /// taken for work turns out to have been a wait ([`TaskMetrics::add_idle`]).
    busy_reported: Duration,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            clock: Mutex::new(Clock::default()),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }
}

/// A subtask's time so far, split three ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskTimes {
    /// Processing.
    pub busy: Duration,
    /// Waiting for room downstream.
    pub backpressured: Duration,
    /// Waiting for input.
    pub idle: Duration,
}

impl TaskMetrics {
    fn clock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the start of a wait; [`TaskMetrics::done_waiting`] ends it.
    pub fn wait(&self, what: Wait) {
        let mut c = self.clock();
        if c.waiting.is_none() {
            c.waiting = Some((what, Instant::now()));
        }
    }

    /// Ends the wait in progress, if any, adding it to its time.
    pub fn done_waiting(&self) {
        let mut c = self.clock();
        if let Some((what, since)) = c.waiting.take() {
            let d = since.elapsed();
            match what {
                Wait::Idle => c.idle += d,
                Wait::Backpressured => c.backpressured += d,
            }
        }
    }

    /// Adds time that was spent waiting for input though it was not marked
    /// as a wait when it began (a source's poll that found nothing).
    pub(super) fn add_idle(&self, d: Duration) {
        self.clock().idle += d;
    }

    /// Marks the end of the thread: its times stop growing.
    pub(super) fn finish(&self) {
        self.done_waiting();
        let mut c = self.clock();
        c.ended.get_or_insert_with(Instant::now);
    }

    /// The time since the subtask started, split into busy, backpressured
    /// and idle (a wait in progress counts up to now). Each of the three
    /// only grows from one call to the next; they add up to the subtask's
    /// age, except that busy is held where it was while time it had counted
    /// is found to be idle.
    pub fn times(&self) -> TaskTimes {
        let mut c = self.clock();
        let now = c.ended.unwrap_or_else(Instant::now);
        let (mut idle, mut backpressured) = (c.idle, c.backpressured);
        if let Some((what, since)) = c.waiting {
            let d = now.saturating_duration_since(since);
            match what {
                Wait::Idle => idle += d,
                Wait::Backpressured => backpressured += d,
            }
        }
        let total = now.saturating_duration_since(self.started);
        let busy = total
            .saturating_sub(idle)
            .saturating_sub(backpressured)
            .max(c.busy_reported);
        c.busy_reported = busy;
        TaskTimes {
            busy,
            backpressured,
            idle,
        }
    }
}

/// The bytes of a batch's Arrow buffers that its rows use (a slice counts
/// only its part of a shared buffer).
pub(super) fn batch_bytes(batch: &arrow::array::RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
}

/// A summary of a running job, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows emitted by all sources.
    pub rows_read: u64,
    /// Rows received by all sinks.
    pub rows_written: u64,
    /// Late rows dropped anywhere.
    pub late_rows: u64,
    /// Malformed input records skipped by sources.
    pub malformed: u64,
    /// Smallest watermark over the sinks' subtasks (`None` before any).
    pub watermark: Option<EventTime>,
    /// The last completed checkpoint.
    pub checkpoint: Option<CheckpointStats>,
    /// Processing latency, when the job sends latency markers.
    pub latency: Option<LatencySummary>,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wm = match self.watermark {
            None => "-".to_string(),
            Some(EventTime::MAX) => "end".to_string(),
            Some(t) => chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .unwrap_or_else(|| t.to_string()),
        };
        write!(
            f,
            "rows in {} | rows out {} | watermark {} | late rows {} | malformed {}",
            self.rows_read, self.rows_written, wm, self.late_rows, self.malformed
        )?;
        if let Some(l) = self.latency {
            write!(
                f,
                " | latency p50 {:.1} ms, p99 {:.1} ms",
                l.p50.as_secs_f64() * 1e3,
                l.p99.as_secs_f64() * 1e3
            )?;
        }
        if let Some(c) = self.checkpoint {
            write!(
                f,
                " | checkpoint {} ({} ms, {} KiB written, {} KiB in all, aligned in {} ms)",
                c.id,
                c.duration.as_millis(),
                c.bytes.div_ceil(1024),
                c.size.div_ceil(1024),
                c.alignment.as_millis()
            )?;
        }
        Ok(())
    }
}

/// Microseconds that latency markers took from a source to a sink.
#[derive(Debug)]
pub(super) struct LatencyHistogram(Histogram<u64>);

impl LatencyHistogram {
    /// Records one marker that took `micros`; larger values than the
    /// histogram holds saturate.
    pub(super) fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros);
    }

    /// The summary so far; `None` before the first marker.
    pub(super) fn summary(&self) -> Option<LatencySummary> {
        let h = &self.0;
        if h.is_empty() {
            return None;
        }
        Some(LatencySummary {
            samples: h.len(),
            p50: Duration::from_micros(h.value_at_quantile(0.5)),
            p99: Duration::from_micros(h.value_at_quantile(0.99)),
            max: Duration::from_micros(h.max()),
        })
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        // 1 us to 1 hour in 3 significant digits; larger values saturate.
        Self(
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("1 us .. 1 h at 3 significant digits is a valid histogram"),
        )
    }
}

/// Processing latency measured with latency markers
/// ([`super::JobHandle::latency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// Markers that reached a sink.
    pub samples: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long wait shows as it grows, not only when it ends; no time ever
    /// goes down; a finished thread's times stop.
    #[test]
    fn thread_times_grow_during_a_wait_and_never_go_down() {
        let t = TaskMetrics::default();
        t.wait(Wait::Backpressured);
        std::thread::sleep(Duration::from_millis(40));
        let during = t.times();
        assert!(
            during.backpressured >= Duration::from_millis(40),
            "{during:?}"
        );
        assert!(during.busy < Duration::from_millis(20), "{during:?}");
        std::thread::sleep(Duration::from_millis(10));
        t.done_waiting();
        let after = t.times();
        assert!(after.backpressured >= during.backpressured + Duration::from_millis(10));
        assert!(after.busy >= during.busy);
        // Work, then time found to have been a wait: busy holds.
        std::thread::sleep(Duration::from_millis(20));
        let worked = t.times();
        t.add_idle(Duration::from_millis(15));
        let reclassified = t.times();
        assert!(
            reclassified.busy >= worked.busy,
            "{worked:?} {reclassified:?}"
        );
        assert!(reclassified.idle >= Duration::from_millis(15));
        t.finish();
        let ended = t.times();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(t.times(), ended, "an ended thread's times stop");
    }
}
