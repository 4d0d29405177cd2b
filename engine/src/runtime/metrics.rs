//! What a running job reports about itself: each subtask's counters, the
//! progress line, and the latency measured with latency markers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
#[derive(Debug)]
pub struct TaskMetrics {
    started: Instant,
    idle_nanos: AtomicU64,
    backpressured_nanos: AtomicU64,
    /// Bytes of the batches received from other subtasks.
    pub bytes_in: AtomicU64,
    /// Bytes of the batches sent to other subtasks.
    pub bytes_out: AtomicU64,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            idle_nanos: AtomicU64::new(0),
            backpressured_nanos: AtomicU64::new(0),
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
    /// Adds time spent waiting for input.
    pub(super) fn add_idle(&self, d: Duration) {
        self.idle_nanos
            .fetch_add(saturating_nanos(d), Ordering::Relaxed);
    }

    /// Adds time spent waiting for room in an output channel.
    pub(super) fn add_backpressured(&self, d: Duration) {
        self.backpressured_nanos
            .fetch_add(saturating_nanos(d), Ordering::Relaxed);
    }

    /// The time since the subtask started, split into busy, backpressured
    /// and idle. Busy is what the other two leave (so the three add up to
    /// the subtask's age; after it ends, busy keeps growing: read the
    /// times of running jobs only).
    pub fn times(&self) -> TaskTimes {
        let total = self.started.elapsed();
        let idle = Duration::from_nanos(self.idle_nanos.load(Ordering::Relaxed));
        let backpressured = Duration::from_nanos(self.backpressured_nanos.load(Ordering::Relaxed));
        TaskTimes {
            busy: total.saturating_sub(idle).saturating_sub(backpressured),
            backpressured,
            idle,
        }
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
