//! Late rows made visible: the split in front of an operator that drops
//! late rows (a window aggregate, a window Top-N, an OVER aggregate),
//! which sends the rows that operator would drop to a late-data table
//! (`'table.exec.late-data.table'`), instead of only counting them.
//!
//! [`LateSplit`] sits in the operator's chain, after the exchange, so it
//! sees the same watermarks in the same order as the operator. It marks
//! each row late or not by the operator's own rule ([`LateRule`]) and adds
//! the watermark of the moment.
//! Two operators follow it: [`OnTime`] passes the other rows on to the
//! aggregate without the two added columns, and [`LateRows`] turns the
//! late ones into the late-data table's rows: the operator that would
//! have dropped them, the watermark, the row's event time and the row as
//! JSON. Both read the same batches, so every row goes exactly one way,
//! and the late-data table's sink takes part in checkpoints like any
//! other: a late row is written once, with exactly-once sinks exactly
//! once.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{EngineError, Result};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::types::{event_time_millis, EventTime};
use crate::window::WindowSpec;

/// The column [`LateSplit`] adds: true for a late row.
pub const LATE_COLUMN: &str = "$late";
/// The column [`LateSplit`] adds: the watermark when the row arrived.
pub const WATERMARK_COLUMN: &str = "$watermark";

/// The columns of a late-data table, in order: `operator STRING,
/// watermark TIMESTAMP(3), row_time TIMESTAMP(3), row STRING`.
pub fn late_table_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(Schema::new(vec![
        Field::new("operator", DataType::Utf8, false),
        Field::new("watermark", ts.clone(), true),
        Field::new("row_time", ts, true),
        Field::new("row", DataType::Utf8, false),
    ]))
}

/// When the operator behind a [`LateSplit`] drops a row as late, given the
/// row's time (from the split's time column) and the watermark. A row
/// without a time is always dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateRule {
    /// A TUMBLE, HOP or CUMULATE window aggregate: every window of the
    /// row's slice has fired ([`WindowSpec::slice_is_late`]), in time
    /// shifted by the windows' offset.
    Window {
        /// The windows.
        window: WindowSpec,
        /// Their offset (milliseconds).
        offset: i64,
        /// How long a window's state is kept after it fired (milliseconds).
        lateness: i64,
    },
    /// A window Top-N, whose time column is `window_end`: that window has
    /// fired.
    WindowEnd,
    /// An OVER aggregate: the row is not after the watermark.
    AtOrBefore,
}

impl LateRule {
    /// The offset time is shifted by (window aggregates only).
    fn offset(&self) -> i64 {
        match self {
            LateRule::Window { offset, .. } => *offset,
            _ => 0,
        }
    }

    /// True when a row at `t` is late at `watermark` (both shifted).
    fn is_late(&self, t: EventTime, watermark: EventTime) -> bool {
        match self {
            LateRule::Window {
                window, lateness, ..
            } => {
                let closed = match watermark {
                    EventTime::MAX => EventTime::MAX,
                    w => w.saturating_sub(*lateness),
                };
                window.slice_is_late(window.slice_end(t), closed)
            }
            LateRule::WindowEnd => t.saturating_sub(1) <= watermark,
            LateRule::AtOrBefore => t <= watermark,
        }
    }
}

/// Marks the rows the operator behind it would drop as late, by `rule`
/// over the time in `time_column`.
#[derive(Debug)]
pub struct LateSplit {
    rule: LateRule,
    time_column: usize,
    /// The watermark in shifted time, as the aggregate keeps it.
    watermark: EventTime,
    schema: SchemaRef,
    table: Option<runnel_state::TableId>,
}

impl LateSplit {
    /// `input` with the two columns the split adds.
    pub fn output_schema(input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(LATE_COLUMN, DataType::Boolean, false));
        fields.push(Field::new(
            WATERMARK_COLUMN,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ));
        Arc::new(Schema::new(fields))
    }

    /// A factory of splits by `rule` over `time_column` of `input`.
    pub fn factory(rule: LateRule, time_column: usize, input: &Schema) -> OperatorFactory {
        let schema = Self::output_schema(input);
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(LateSplit {
                rule,
                time_column,
                watermark: EventTime::MIN,
                schema: Arc::clone(&schema),
                table: None,
            }) as Box<dyn Operator>)
        })
    }
}

impl Operator for LateSplit {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/late_split", ctx.task.operator_name))?;
        self.table = Some(table);
        // After a restore the aggregate starts from its saved watermark;
        // so does the split (the lowest of the old subtasks' after a
        // rescale, as the aggregate's).
        if let Some((wm, _)) = super::agg::load_meta(ctx, table)? {
            self.watermark = wm;
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let n = batch.num_rows();
        let times = event_time_millis(batch.column(self.time_column))?;
        let offset = self.rule.offset();
        let late: BooleanArray = (0..n)
            .map(|i| {
                Some(
                    times.is_null(i)
                        || self
                            .rule
                            .is_late(times.value(i).saturating_sub(offset), self.watermark),
                )
            })
            .collect();
        // The watermark as the user's time (not shifted), NULL before the first.
        let shown = match self.watermark {
            EventTime::MIN => None,
            EventTime::MAX => Some(EventTime::MAX),
            w => Some(w.saturating_add(offset)),
        };
        let mut cols = batch.columns().to_vec();
        cols.push(Arc::new(late));
        cols.push(Arc::new(TimestampMillisecondArray::from(vec![shown; n])));
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), cols)?)
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        let watermark = if watermark == EventTime::MAX {
            watermark
        } else {
            watermark.saturating_sub(self.rule.offset())
        };
        self.watermark = self.watermark.max(watermark);
        Ok(())
    }

    fn on_barrier(
        &mut self,
        _barrier: &crate::types::Barrier,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let table = self
            .table
            .ok_or_else(|| EngineError::Internal("late split not opened".into()))?;
        super::agg::save_meta(ctx, table, self.watermark, 0)
    }
}

/// The rows [`LateSplit`] did not mark late, without its two columns.
#[derive(Debug)]
pub struct OnTime {
    schema: SchemaRef,
}

impl OnTime {
    /// A factory; `input` is the schema before the split.
    pub fn factory(input: SchemaRef) -> OperatorFactory {
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(OnTime {
                schema: Arc::clone(&input),
            }) as Box<dyn Operator>)
        })
    }
}

impl Operator for OnTime {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let width = self.schema.fields().len();
        let late = late_column(&batch, width)?;
        let keep = arrow::compute::not(late)?;
        let data =
            RecordBatch::try_new(Arc::clone(&self.schema), batch.columns()[..width].to_vec())?;
        out.collect(arrow::compute::filter_record_batch(&data, &keep)?)
    }
}

/// The rows [`LateSplit`] marked late, as rows of the late-data table.
#[derive(Debug)]
pub struct LateRows {
    operator: String,
    input: SchemaRef,
    time_column: usize,
}

impl LateRows {
    /// A factory; `operator` names the aggregate in the late rows, `input`
    /// is the schema before the split.
    pub fn factory(operator: String, input: SchemaRef, time_column: usize) -> OperatorFactory {
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(LateRows {
                operator: operator.clone(),
                input: Arc::clone(&input),
                time_column,
            }) as Box<dyn Operator>)
        })
    }
}

impl Operator for LateRows {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let width = self.input.fields().len();
        let late = late_column(&batch, width)?.clone();
        let batch = arrow::compute::filter_record_batch(&batch, &late)?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let data =
            RecordBatch::try_new(Arc::clone(&self.input), batch.columns()[..width].to_vec())?;
        let rows = json_rows(&data)?;
        let row_time = event_time_millis(data.column(self.time_column))?;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![self.operator.as_str(); n])),
            Arc::clone(batch.column(width + 1)),
            Arc::new(TimestampMillisecondArray::from(
                (0..n)
                    .map(|i| (!row_time.is_null(i)).then(|| row_time.value(i)))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(rows)),
        ];
        out.collect(RecordBatch::try_new(late_table_schema(), cols)?)
    }
}

/// The split's `$late` column, after the `width` input columns.
fn late_column(batch: &RecordBatch, width: usize) -> Result<&BooleanArray> {
    batch
        .column(width)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| EngineError::Internal("the late split's column is not boolean".into()))
}

/// Each row of `batch` as one JSON object (NULLs written out).
fn json_rows(batch: &RecordBatch) -> Result<Vec<String>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        w.write(batch)?;
        w.finish()?;
    }
    let text = String::from_utf8(buf)
        .map_err(|e| EngineError::Internal(format!("JSON of a late row: {e}")))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// The column an operator that reports its own late rows fills with the
/// late row as JSON (NULL on its results).
pub const LATE_ROW_COLUMN: &str = "$late_row";

/// The output of an operator that reports its own late rows: `schema`'s
/// columns (nullable: NULL on late rows), then `$late_row` (JSON),
/// `$watermark` and `$row_time`.
pub fn with_late_columns(schema: &Schema) -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(LATE_ROW_COLUMN, DataType::Utf8, true));
    fields.push(Field::new(WATERMARK_COLUMN, ts.clone(), true));
    fields.push(Field::new("$row_time", ts, true));
    Arc::new(Schema::new(fields))
}

/// An operator's results in its [`with_late_columns`] output: the three
/// columns NULL.
pub(crate) fn results_with_late_columns(
    marked: &SchemaRef,
    results: RecordBatch,
) -> Result<RecordBatch> {
    let n = results.num_rows();
    let mut cols = results.columns().to_vec();
    for f in marked.fields().iter().skip(cols.len()) {
        cols.push(arrow::array::new_null_array(f.data_type(), n));
    }
    Ok(RecordBatch::try_new(Arc::clone(marked), cols)?)
}

/// The rows of `input` where `late` is true as rows of an operator's
/// [`with_late_columns`] output: results NULL, the row as JSON, the
/// `watermark` and the row's time from `times`.
pub(crate) fn late_rows_marked(
    marked: &SchemaRef,
    input: &RecordBatch,
    late: &BooleanArray,
    times: &arrow::array::Int64Array,
    watermark: EventTime,
) -> Result<RecordBatch> {
    let rows = arrow::compute::filter_record_batch(input, late)?;
    let n = rows.num_rows();
    let width = marked.fields().len() - 3;
    let mut cols: Vec<ArrayRef> = marked
        .fields()
        .iter()
        .take(width)
        .map(|f| arrow::array::new_null_array(f.data_type(), n))
        .collect();
    cols.push(Arc::new(StringArray::from(json_rows(&rows)?)));
    let shown = (watermark != EventTime::MIN).then_some(watermark);
    cols.push(Arc::new(TimestampMillisecondArray::from(vec![shown; n])));
    let times = arrow::compute::filter(times, late)?;
    let times = times
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .ok_or_else(|| EngineError::Internal("row times are not Int64".into()))?;
    cols.push(Arc::new(TimestampMillisecondArray::from(
        times.iter().collect::<Vec<_>>(),
    )));
    Ok(RecordBatch::try_new(Arc::clone(marked), cols)?)
}

/// The results of an operator that reports its own late rows, without the
/// three columns.
#[derive(Debug)]
pub struct OnTimeOfMarked {
    schema: SchemaRef,
}

impl OnTimeOfMarked {
    /// A factory; `results` is the operator's output without the columns.
    pub fn factory(results: SchemaRef) -> OperatorFactory {
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(OnTimeOfMarked {
                schema: Arc::clone(&results),
            }) as Box<dyn Operator>)
        })
    }
}

impl Operator for OnTimeOfMarked {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let width = self.schema.fields().len();
        let results = arrow::compute::is_null(batch.column(width))?;
        let batch = arrow::compute::filter_record_batch(&batch, &results)?;
        out.collect(RecordBatch::try_new(
            Arc::clone(&self.schema),
            batch.columns()[..width].to_vec(),
        )?)
    }
}

/// The late rows an operator reported in its output, as rows of the
/// late-data table.
#[derive(Debug)]
pub struct LateOfMarked {
    operator: String,
}

impl LateOfMarked {
    /// A factory; `operator` names the operator in the late rows.
    pub fn factory(operator: String) -> OperatorFactory {
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(LateOfMarked {
                operator: operator.clone(),
            }) as Box<dyn Operator>)
        })
    }
}

impl Operator for LateOfMarked {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let width = batch.num_columns() - 3;
        let late = arrow::compute::is_not_null(batch.column(width))?;
        let batch = arrow::compute::filter_record_batch(&batch, &late)?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![self.operator.as_str(); n])),
            Arc::clone(batch.column(width + 1)),
            Arc::clone(batch.column(width + 2)),
            Arc::clone(batch.column(width)),
        ];
        out.collect(RecordBatch::try_new(late_table_schema(), cols)?)
    }
}

/// The collector of an operator that reports its own late rows: its
/// results get the three late-row columns, NULL; batches that already
/// have them (its late rows) pass as they are.
pub(crate) struct MarkResults<'a> {
    out: &'a mut dyn Collector,
    marked: SchemaRef,
}

impl Collector for MarkResults<'_> {
    fn collect(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_columns() == self.marked.fields().len() {
            return self.out.collect(batch);
        }
        self.out
            .collect(results_with_late_columns(&self.marked, batch)?)
    }
}

/// Runs `f` with `out`, or, when the operator reports its late rows
/// (`marked`), with `out` wrapped in [`MarkResults`].
pub(crate) fn with_marked<R>(
    marked: Option<SchemaRef>,
    out: &mut dyn Collector,
    f: impl FnOnce(&mut dyn Collector) -> Result<R>,
) -> Result<R> {
    match marked {
        Some(marked) => f(&mut MarkResults { out, marked }),
        None => f(out),
    }
}
