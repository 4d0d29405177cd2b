//! The data model: what flows between operators.
//!
//! Data travels as Arrow [`RecordBatch`]es. Between batches, control
//! messages travel in the same channels, so that their order relative to the
//! data is exact: a watermark promises that no later row is older than it, a
//! barrier cuts the stream for a checkpoint, and `End` says the input is done.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int8Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};

/// Event time in milliseconds since the Unix epoch (Flink's `TIMESTAMP(3)`).
pub type EventTime = i64;

/// A message on an edge of the job graph.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows.
    Batch(RecordBatch),
    /// Event-time progress of the sender.
    Watermark(Watermark),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// A latency marker: when a source subtask sent it. It overtakes no
    /// row, and operators pass it on at once, so the time it takes to reach
    /// a sink is the queueing and processing delay of the rows ahead of it
    /// (not the time rows wait in window state).
    LatencyMarker(std::time::Instant),
    /// The sender will send nothing more.
    End,
}

/// Event-time progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// No row with an event time at or below this value will follow.
    EventTime(EventTime),
    /// The sender has no data for now and must not hold back the watermark
    /// of operators that merge it with other inputs; it stops being idle with
    /// its next `EventTime` watermark.
    Idle,
}

impl Watermark {
    /// The watermark of a bounded input that has ended: every window fires.
    pub const MAX: Watermark = Watermark::EventTime(EventTime::MAX);
}

/// A checkpoint barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// Checkpoint id, increasing within a job.
    pub checkpoint_id: u64,
    /// Wall-clock time the coordinator started the checkpoint, ms since epoch.
    pub timestamp: i64,
    /// True when the job stops after this checkpoint (a savepoint on stop).
    pub then_stop: bool,
}

impl Barrier {
    /// The checkpoint id operators see in the barrier that follows the end
    /// of input: sinks stage what they still hold under it, and publish it
    /// when the checkpoint with this id completes. The coordinator gives
    /// the final checkpoint its real id in the manifest.
    pub const FINAL_CHECKPOINT: u64 = u64::MAX;

    /// True for the barrier that follows the end of input.
    pub fn is_final(&self) -> bool {
        self.checkpoint_id == Self::FINAL_CHECKPOINT
    }
}

/// Name of the changelog column that updating streams carry, as the last
/// column of every batch.
pub const ROW_KIND_COLUMN: &str = "_row_kind";

/// Flink's row kinds for updating streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the previous version of an updated row.
    UpdateBefore = 1,
    /// `+U`: the new version of an updated row.
    UpdateAfter = 2,
    /// `-D`: a deleted row.
    Delete = 3,
}

impl RowKind {
    /// Decodes the value stored in the changelog column.
    pub fn from_i8(v: i8) -> Result<Self> {
        Ok(match v {
            0 => RowKind::Insert,
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            other => return Err(EngineError::Internal(format!("unknown row kind {other}"))),
        })
    }

    /// Flink's short form (`+I`, `-U`, `+U`, `-D`).
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// True for `+I` and `+U`, the kinds that add a row.
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

/// The changelog column's field.
pub fn row_kind_field() -> Field {
    Field::new(ROW_KIND_COLUMN, DataType::Int8, false)
}

/// Appends the changelog column to `schema`.
pub fn with_row_kind(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(row_kind_field());
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// True when `schema` describes an updating stream (ends in the changelog column).
pub fn is_updating(schema: &Schema) -> bool {
    schema
        .fields()
        .last()
        .is_some_and(|f| f.name() == ROW_KIND_COLUMN && f.data_type() == &DataType::Int8)
}

/// Reads the row kinds of an updating batch.
pub fn row_kinds(batch: &RecordBatch) -> Result<Vec<RowKind>> {
    if !is_updating(batch.schema_ref()) {
        return Err(EngineError::Internal(
            "batch has no changelog column".into(),
        ));
    }
    let col = batch.column(batch.num_columns() - 1);
    let kinds = col
        .as_any()
        .downcast_ref::<Int8Array>()
        .ok_or_else(|| EngineError::Internal("changelog column is not Int8".into()))?;
    (0..kinds.len())
        .map(|i| RowKind::from_i8(kinds.value(i)))
        .collect()
}

/// Builds the changelog column for `kinds`.
pub fn row_kind_array(kinds: &[RowKind]) -> ArrayRef {
    Arc::new(Int8Array::from_iter_values(kinds.iter().map(|k| *k as i8)))
}

/// Reads an event-time column as milliseconds since the epoch.
///
/// Timestamps of any unit are converted (flooring sub-millisecond parts);
/// Int64 columns are taken as milliseconds already.
pub fn event_time_millis(column: &ArrayRef) -> Result<arrow::array::Int64Array> {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    let out: Int64Array = match column.data_type() {
        DataType::Int64 => column.as_primitive::<arrow::datatypes::Int64Type>().clone(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => column
            .as_primitive::<TimestampMillisecondType>()
            .reinterpret_cast(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => column
            .as_primitive::<TimestampMicrosecondType>()
            .unary(|v| v.div_euclid(1_000)),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => column
            .as_primitive::<TimestampNanosecondType>()
            .unary(|v| v.div_euclid(1_000_000)),
        DataType::Timestamp(TimeUnit::Second, _) => column
            .as_primitive::<TimestampSecondType>()
            .unary(|v| v.saturating_mul(1_000)),
        other => {
            return Err(EngineError::Plan(format!(
                "an event-time column must be a TIMESTAMP or BIGINT (milliseconds), not {other}"
            )))
        }
    };
    Ok(out)
}

/// The newest non-NULL event time in `column`.
pub fn max_event_time(column: &ArrayRef) -> Result<Option<EventTime>> {
    Ok(arrow::compute::max(&event_time_millis(column)?))
}
