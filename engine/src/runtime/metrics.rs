//! What a running job reports about itself: each subtask's counters, the
//! progress line, and the latency measured with latency markers.

use std::sync::Arc;
use std::time::Duration;

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
