//! OVER aggregations ordered by event time, as Flink runs them:
//! `AGG(x) OVER (PARTITION BY p ORDER BY ts ROWS BETWEEN n PRECEDING AND
//! CURRENT ROW)` or `RANGE BETWEEN INTERVAL '10' MINUTE PRECEDING AND
//! CURRENT ROW`.
//!
//! Rows wait, per partition, until the watermark passes their time; then
//! each is emitted once, in time order, with its aggregates over its frame:
//! the `n` rows before it and itself (ROWS; rows of equal time in arrival
//! order), or every row whose time lies in `[t - range, t]`, rows of equal
//! time included whatever their order (RANGE). A row at or below the
//! watermark when it arrives is late: dropped and counted. Emitted rows
//! stay only while a later row's frame can reach them: the last `n`
//! (ROWS), or those no older than `range` before the watermark (RANGE).
//!
//! The aggregates are the engine's accumulators: every emitted row is a
//! group fed the rows of its frame, so any aggregate function works and
//! each row costs the size of its frame. An UNBOUNDED PRECEDING frame
//! instead keeps one running accumulator per partition (saved with the
//! partition's state): each row (RANGE: each set of rows of one time) is
//! added and the results read, and emitted rows are not kept. Output: the input's columns, then
//! one column per aggregate; append-only, with the input's time column.
//!
//! State: one entry per partition, `key group | partition key` to its rows
//! (time, row) and how many of them were emitted; a
//! barrier writes the partitions changed since the last one. A restore
//! reads every partition of the subtask back.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{
    load_meta, save_meta, scan_owned, state_key, take_inputs, AggregateCall, BoundAggregates,
    EntryReader,
};
use crate::types::{event_time_millis, is_updating, Barrier, EventTime};

/// The frame of each row: what comes before it (the row itself is always
/// the frame's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`.
    Rows(u64),
    /// `RANGE BETWEEN <interval> PRECEDING AND CURRENT ROW`, milliseconds.
    Range(i64),
    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`: every row so far.
    UnboundedRows,
    /// `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (the default
    /// with ORDER BY): every row so far and the row's peers.
    UnboundedRange,
}

impl OverFrame {
    fn unbounded(self) -> bool {
        matches!(self, OverFrame::UnboundedRows | OverFrame::UnboundedRange)
    }
}

/// What an OVER aggregation computes.
#[derive(Debug, Clone)]
pub struct OverAggregateSpec {
    /// PARTITION BY columns (empty: one partition).
    pub partition_keys: Vec<usize>,
    /// The event-time column the rows are ordered by.
    pub time_column: usize,
    /// Each row's frame.
    pub frame: OverFrame,
    /// The aggregates, over the input's columns.
    pub aggregates: Vec<AggregateCall>,
    /// Over an updating input: the ORDER BY columns (column, descending,
    /// nulls first), which need not be a time attribute (see
    /// [`crate::ops::ordered`]); the frame is then `Rows`. Over an
    /// append-only input it is `time_column` ascending.
    pub order: Vec<(usize, bool, bool)>,
    /// `LAG` calls (append-only input only), output after the aggregates.
    pub lags: Vec<LagCall>,
}

/// `LAG(arg, offset, default)`: `arg` of the row `offset` rows before each
/// row in its partition (whatever the frame), `default` (or NULL) when
/// the partition has no such row.
#[derive(Debug, Clone)]
pub struct LagCall {
    /// The value, over the input's columns.
    pub arg: crate::expr::Expr,
    /// How many rows back (at least 1).
    pub offset: usize,
    /// The value when there is no such row; of `arg`'s type.
    pub default: Option<crate::expr::Expr>,
    /// The output column's name.
    pub name: String,
}

impl OverAggregateSpec {
    /// The most rows any LAG looks back.
    fn lag_reach(&self) -> usize {
        self.lags.iter().map(|l| l.offset).max().unwrap_or(0)
    }

    /// The LAG columns' fields over `input`.
    fn lag_fields(&self, input: &Schema) -> Result<Vec<Field>> {
        self.lags
            .iter()
            .map(|l| {
                let t = l.arg.data_type(input)?;
                if let Some(d) = &l.default {
                    let dt = d.data_type(input)?;
                    if dt != t && dt != arrow::datatypes::DataType::Null {
                        return Err(EngineError::Plan(format!(
                            "the default of {} must be a {t}, not {dt}",
                            l.name
                        )));
                    }
                }
                if l.offset == 0 {
                    return Err(EngineError::Plan(format!(
                        "{} looks back at least one row",
                        l.name
                    )));
                }
                Ok(Field::new(&l.name, t, true))
            })
            .collect()
    }
}

impl OverAggregateSpec {
    /// A factory for the subtasks; checks the spec against `input`.
    pub fn factory(self, input: SchemaRef) -> Result<OperatorFactory> {
        if is_updating(&input) {
            crate::ops::ordered::RetractOver::new(self.clone(), &input)?;
            return Ok(Arc::new(move |_t: &TaskInfo| {
                Ok(
                    Box::new(crate::ops::ordered::RetractOver::new(self.clone(), &input)?)
                        as Box<dyn Operator>,
                )
            }));
        }
        OverAggregate::new(self.clone(), &input)?;
        Ok(Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(OverAggregate::new(self.clone(), &input)?) as Box<dyn Operator>)
        }))
    }

    /// The output schema: the input's columns, then the aggregates' (then
    /// the changelog column, over an updating input).
    pub fn output_schema(&self, input: &Schema) -> Result<SchemaRef> {
        let updating = is_updating(input);
        let width = input.fields().len() - usize::from(updating);
        let data = Schema::new(input.fields()[..width].to_vec());
        let aggs = BoundAggregates::new(self.aggregates.clone(), &data)?;
        let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(aggs.fields().iter().cloned());
        fields.extend(self.lag_fields(&data)?);
        let schema = Schema::new(fields);
        Ok(match updating {
            true => crate::types::with_row_kind(&schema),
            false => Arc::new(schema),
        })
    }
}

/// One row of a partition.
#[derive(Debug, Clone)]
struct Held {
    ts: EventTime,
    row: Vec<u8>,
}

/// A partition's rows in (time, arrival) order; the first `emitted` were
/// emitted.
#[derive(Debug, Default)]
struct Partition {
    rows: Vec<Held>,
    emitted: usize,
    dirty: bool,
    /// UNBOUNDED PRECEDING: the running aggregates of every emitted row.
    running: Option<Vec<Box<dyn crate::aggregate::GroupsAccumulator>>>,
    /// UNBOUNDED PRECEDING: rows fed to `running` so far, which numbers
    /// them in time order (FIRST_VALUE and LAST_VALUE go by that number).
    fed: u64,
    /// The time of the last emitted row: a row before it cannot join the
    /// partition's order any more (it is late).
    last_emitted: Option<EventTime>,
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct OverAggregate {
    spec: OverAggregateSpec,
    input: SchemaRef,
    schema: SchemaRef,
    aggs: BoundAggregates,
    partition: Option<KeyEncoder>,
    rows: RowConverter,
    partitions: HashMap<Box<[u8]>, Partition, ahash::RandomState>,
    /// Partitions with rows not yet emitted.
    waiting: BTreeSet<Box<[u8]>>,
    watermark: EventTime,
    table: Option<TableId>,
}

impl OverAggregate {
    /// Builds the operator for `input`.
    pub fn new(spec: OverAggregateSpec, input: &SchemaRef) -> Result<Self> {
        if is_updating(input) {
            return Err(EngineError::Plan(
                "an OVER aggregation over an updating stream is not supported yet; its input \
                 must be append-only"
                    .into(),
            ));
        }
        // Without aggregates or LAG it sorts by time (ORDER BY the time
        // attribute).
        match spec.frame {
            OverFrame::Range(r) if r < 0 => {
                return Err(EngineError::Plan(
                    "a RANGE frame reaches back a positive interval".into(),
                ))
            }
            _ => {}
        }
        let width = input.fields().len();
        if spec.time_column >= width || spec.partition_keys.iter().any(|&k| k >= width) {
            return Err(EngineError::Internal("OVER column out of range".into()));
        }
        let aggs = BoundAggregates::new(spec.aggregates.clone(), input)?;
        let rows = RowConverter::new(
            input
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let partition = if spec.partition_keys.is_empty() {
            None
        } else {
            Some(KeyEncoder::new(input, &spec.partition_keys)?)
        };
        Ok(Self {
            schema: spec.output_schema(input)?,
            spec,
            input: Arc::clone(input),
            aggs,
            partition,
            rows,
            partitions: HashMap::default(),
            waiting: BTreeSet::new(),
            watermark: EventTime::MIN,
            table: None,
        })
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("OVER aggregation not opened".into()))
    }

    /// Emits the rows of `key`'s partition at or below `watermark` and
    /// drops the rows no later frame (or LAG) reaches.
    fn emit_partition(
        &mut self,
        key: &[u8],
        watermark: EventTime,
        out: &mut dyn Collector,
    ) -> Result<bool> {
        let reach = self.spec.lag_reach();
        let Some(p) = self.partitions.get_mut(key) else {
            return Ok(false);
        };
        let due = p.rows[p.emitted..].partition_point(|h| h.ts <= watermark);
        if self.spec.frame.unbounded() {
            if due > 0 {
                let view = Emit {
                    rows: &self.rows,
                    aggs: &self.aggs,
                    input: &self.input,
                    schema: &self.schema,
                    spec: &self.spec,
                };
                emit_unbounded(&view, p, due, out)?;
            }
            return Ok(p.emitted < p.rows.len());
        }
        if due > 0 {
            let from = p.emitted;
            let to = from + due;
            let frames = frames_of(self.spec.frame, &p.rows, from..to);
            let first = frames
                .iter()
                .map(|f| f.0)
                .min()
                .unwrap_or(from)
                .min(from.saturating_sub(reach));
            let last = frames
                .iter()
                .map(|f| f.1)
                .max()
                .unwrap_or(to - 1)
                .max(to - 1);
            let parser = self.rows.parser();
            let columns = self
                .rows
                .convert_rows(p.rows[first..=last].iter().map(|h| parser.parse(&h.row)))?;
            let batch = RecordBatch::try_new(Arc::clone(&self.input), columns)?;
            let inputs = self.aggs.evaluate(&batch)?;
            let mut indices: Vec<u32> = Vec::new();
            let mut groups: Vec<u32> = Vec::new();
            for (g, &(lo, hi)) in frames.iter().enumerate() {
                for j in lo..=hi {
                    indices.push((j - first) as u32);
                    groups.push(g as u32);
                }
            }
            let indices = UInt32Array::from(indices);
            let mut accs = self.aggs.accumulators()?;
            let total = frames.len();
            let taken = take_inputs(&inputs, &indices)?;
            for (acc, input) in accs.iter_mut().zip(&taken) {
                acc.update(&crate::aggregate::UpdateArgs {
                    values: &input.values,
                    groups: &groups,
                    filter: input.filter.as_ref(),
                    total_groups: total,
                    first_row_seq: 0,
                })?;
            }
            let all: Vec<u32> = (0..total as u32).collect();
            let emitted =
                UInt32Array::from_iter_values(((from - first) as u32)..((to - first) as u32));
            let mut out_columns: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &emitted, None))
                .collect::<std::result::Result<_, _>>()?;
            for acc in &accs {
                out_columns.push(acc.evaluate(&all)?);
            }
            out_columns.extend(lag_columns(&self.spec.lags, &batch, first, from..to)?);
            out.collect(RecordBatch::try_new(Arc::clone(&self.schema), out_columns)?)?;
            p.emitted = to;
            p.last_emitted = p.rows.get(to - 1).map(|h| h.ts);
            p.dirty = true;
        }
        // Rows no frame of a later row reaches (later rows are above the
        // watermark), except the last ones a LAG reaches.
        let keep_from = match self.spec.frame {
            OverFrame::Rows(n) => p
                .emitted
                .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
            OverFrame::Range(r) => {
                let oldest = watermark.saturating_add(1).saturating_sub(r);
                p.rows[..p.emitted].partition_point(|h| h.ts < oldest)
            }
            OverFrame::UnboundedRows | OverFrame::UnboundedRange => 0,
        }
        .min(p.emitted.saturating_sub(reach));
        if keep_from > 0 {
            p.rows.drain(..keep_from);
            p.emitted -= keep_from;
            p.dirty = true;
        }
        Ok(p.emitted < p.rows.len())
    }
}

/// What emitting a partition's rows reads from the operator.
struct Emit<'a> {
    rows: &'a RowConverter,
    aggs: &'a BoundAggregates,
    input: &'a SchemaRef,
    schema: &'a SchemaRef,
    spec: &'a OverAggregateSpec,
}

/// An UNBOUNDED PRECEDING frame: emits the `due` rows after the kept ones
/// of `p`, feeding them to its running aggregates, and keeps only the last
/// rows a LAG reaches.
fn emit_unbounded(
    view: &Emit<'_>,
    p: &mut Partition,
    due: usize,
    out: &mut dyn Collector,
) -> Result<()> {
    let reach = view.spec.lag_reach();
    // Rows before `base` are only kept for LAG.
    let base = p.emitted;
    let parser = view.rows.parser();
    let columns = view
        .rows
        .convert_rows(p.rows[..base + due].iter().map(|h| parser.parse(&h.row)))?;
    let batch = RecordBatch::try_new(Arc::clone(view.input), columns)?;
    let inputs = view.aggs.evaluate(&batch)?;
    if p.running.is_none() {
        p.running = Some(view.aggs.accumulators()?);
    }
    let running = p
        .running
        .as_mut()
        .ok_or_else(|| EngineError::Internal("no running aggregates".into()))?;
    let mut results: Vec<Vec<ArrayRef>> = vec![Vec::new(); running.len()];
    let end = base + due;
    let mut i = base;
    while i < end {
        // ROWS: one row at a time; RANGE: the row and its peers.
        let j = match view.spec.frame {
            OverFrame::UnboundedRange => {
                i + p.rows[i..end].partition_point(|h| h.ts <= p.rows[i].ts)
            }
            _ => i + 1,
        };
        let slice = UInt32Array::from_iter_values(i as u32..j as u32);
        let groups = vec![0u32; j - i];
        let taken = take_inputs(&inputs, &slice)?;
        for ((acc, input), out) in running.iter_mut().zip(&taken).zip(&mut results) {
            acc.update(&crate::aggregate::UpdateArgs {
                values: &input.values,
                groups: &groups,
                filter: input.filter.as_ref(),
                total_groups: 1,
                first_row_seq: p.fed,
            })?;
            let value = acc.evaluate(&[0])?;
            for _ in i..j {
                out.push(Arc::clone(&value));
            }
        }
        p.fed += (j - i) as u64;
        i = j;
    }
    let mut out_columns: Vec<ArrayRef> = batch.slice(base, due).columns().to_vec();
    for r in results {
        let refs: Vec<&dyn Array> = r.iter().map(|a| a.as_ref()).collect();
        out_columns.push(arrow::compute::concat(&refs)?);
    }
    out_columns.extend(lag_columns(&view.spec.lags, &batch, 0, base..end)?);
    out.collect(RecordBatch::try_new(Arc::clone(view.schema), out_columns)?)?;
    // Emitted rows live on in the running aggregates only (and
    // the last few for LAG).
    p.last_emitted = p.rows.get(end - 1).map(|h| h.ts);
    let keep_from = end.saturating_sub(reach);
    p.rows.drain(..keep_from);
    p.emitted = end - keep_from;
    p.dirty = true;
    Ok(())
}

/// The LAG columns of the rows `emitted` (partition positions) of a
/// partition whose rows from position `first` on are `batch`.
fn lag_columns(
    lags: &[LagCall],
    batch: &RecordBatch,
    first: usize,
    emitted: std::ops::Range<usize>,
) -> Result<Vec<ArrayRef>> {
    let mut out = Vec::with_capacity(lags.len());
    for lag in lags {
        let values = lag.arg.evaluate(batch)?;
        // The row `offset` before each; none before the partition's start.
        let sources: UInt32Array = emitted
            .clone()
            .map(|j| {
                j.checked_sub(lag.offset)
                    .filter(|&s| s >= first)
                    .map(|s| (s - first) as u32)
            })
            .collect();
        let taken = take(values.as_ref(), &sources, None)?;
        let column = match &lag.default {
            None => taken,
            Some(default) => {
                let defaults = default.evaluate(batch)?;
                let own =
                    UInt32Array::from_iter_values(emitted.clone().map(|j| (j - first) as u32));
                let defaults = take(defaults.as_ref(), &own, None)?;
                let defaults = arrow::compute::cast(&defaults, values.data_type())?;
                let missing = arrow::compute::is_null(&sources)?;
                arrow::compute::kernels::zip::zip(&missing, &defaults, &taken)?
            }
        };
        out.push(column);
    }
    Ok(out)
}

fn encode(p: &Partition) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&p.fed.to_le_bytes());
    out.extend_from_slice(&p.last_emitted.unwrap_or(EventTime::MIN).to_le_bytes());
    match &p.running {
        None => out.push(0),
        Some(accs) => {
            out.push(1);
            for acc in accs {
                let mut state = Vec::new();
                acc.save(0, &mut state)?;
                out.extend_from_slice(&(state.len() as u32).to_le_bytes());
                out.extend_from_slice(&state);
            }
        }
    }
    out.extend_from_slice(&(p.emitted as u32).to_le_bytes());
    out.extend_from_slice(&(p.rows.len() as u32).to_le_bytes());
    for h in &p.rows {
        out.extend_from_slice(&h.ts.to_le_bytes());
        out.extend_from_slice(&(h.row.len() as u32).to_le_bytes());
        out.extend_from_slice(&h.row);
    }
    Ok(out)
}

fn decode(b: &[u8], aggs: &BoundAggregates) -> Result<Partition> {
    let mut r = EntryReader::new(b, "OVER aggregation");
    let fed = r.i64()? as u64;
    let last_emitted = Some(r.i64()?).filter(|&t| t != EventTime::MIN);
    let running = match r.u8()? {
        0 => None,
        _ => {
            let mut accs = aggs.accumulators()?;
            for acc in &mut accs {
                let state = r.sized()?;
                acc.load(0, state)?;
            }
            Some(accs)
        }
    };
    let emitted = r.u32()? as usize;
    let n = r.u32()?;
    let mut rows = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let ts = r.i64()?;
        let row = r.sized()?.to_vec();
        rows.push(Held { ts, row });
    }
    Ok(Partition {
        rows,
        emitted,
        dirty: false,
        running,
        fed,
        last_emitted,
    })
}

impl Operator for OverAggregate {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/over_agg", ctx.task.operator_name))?;
        self.table = Some(table);
        if let Some((watermark, _)) = load_meta(ctx, table)? {
            self.watermark = watermark;
            for (_, _, key, value) in scan_owned(ctx, table, 0)? {
                let p = decode(&value, &self.aggs)?;
                let key: Box<[u8]> = key.into();
                if p.emitted < p.rows.len() {
                    self.waiting.insert(key.clone());
                }
                self.partitions.insert(key, p);
            }
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = event_time_millis(batch.column(self.spec.time_column))?;
        let keys = match &self.partition {
            Some(e) => Some(e.encode(&batch)?),
            None => None,
        };
        let rows = self.rows.convert_columns(batch.columns())?;
        let mut late = 0;
        for i in 0..n {
            if times.is_null(i) || times.value(i) <= self.watermark {
                late += 1;
                continue;
            }
            let ts = times.value(i);
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(i).data());
            let held = Held {
                ts,
                row: rows.row(i).as_ref().to_vec(),
            };
            let p = self.partitions.entry(key.into()).or_default();
            // Behind the partition's last emitted row (possible after a
            // restore at another parallelism, whose watermark is the
            // lowest of the old subtasks'): late.
            if p.last_emitted.is_some_and(|t| ts < t) {
                late += 1;
                continue;
            }
            // After the rows of the same or an earlier time, and after
            // every emitted row.
            let at = p.rows.partition_point(|h| h.ts <= ts).max(p.emitted);
            p.rows.insert(at, held);
            p.dirty = true;
            if !self.waiting.contains(key) {
                self.waiting.insert(key.into());
            }
        }
        if late > 0 {
            ctx.metrics.add_late(late);
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        let waiting: Vec<Box<[u8]>> = std::mem::take(&mut self.waiting).into_iter().collect();
        for key in waiting {
            if self.emit_partition(&key, watermark, out)? {
                self.waiting.insert(key);
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        let mut gone = Vec::new();
        for (key, p) in self.partitions.iter_mut() {
            if !p.dirty {
                continue;
            }
            p.dirty = false;
            let k = state_key(ctx, key, &[]);
            if p.rows.is_empty() && p.running.is_none() {
                ctx.state.delete(table, &k)?;
                gone.push(key.clone());
            } else {
                ctx.state.put_owned(table, k, encode(p)?)?;
            }
        }
        for key in gone {
            self.partitions.remove(&key);
        }
        save_meta(ctx, table, self.watermark, 0)
    }
}

/// The frame of each row in `rows`: the rows `[lo, hi]` (in the
/// partition's order) its aggregates cover.
fn frames_of(
    frame: OverFrame,
    rows: &[Held],
    range: std::ops::Range<usize>,
) -> Vec<(usize, usize)> {
    range
        .map(|i| match frame {
            OverFrame::Rows(n) => (
                i.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
                i,
            ),
            OverFrame::UnboundedRows | OverFrame::UnboundedRange => (0, i),
            OverFrame::Range(r) => {
                let t = rows[i].ts;
                let lo = rows.partition_point(|h| h.ts < t.saturating_sub(r));
                let hi = rows.partition_point(|h| h.ts <= t) - 1;
                (lo, hi)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Int64Type, TimeUnit};
    use proptest::prelude::*;

    use super::*;
    use crate::aggregate::AggregateFunction as F;
    use crate::expr::Expr;
    use crate::testing::OperatorHarness;

    /// (ts, k, v).
    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn batch(rows: &[(i64, i64, Option<i64>)]) -> RecordBatch {
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("valid batch")
    }

    fn spec(frame: OverFrame) -> OverAggregateSpec {
        OverAggregateSpec {
            partition_keys: vec![1],
            time_column: 0,
            frame,
            aggregates: vec![
                AggregateCall::new(F::Sum, vec![Expr::Column(2)], "s"),
                AggregateCall::new(F::Count, vec![], "n"),
                AggregateCall::new(F::Avg, vec![Expr::Column(2)], "a"),
            ],
            order: vec![(0, false, false)],
            lags: Vec::new(),
        }
    }

    /// (ts, k, v, sum, count) per output row, in output order.
    fn rows(batches: &[RecordBatch]) -> Vec<(i64, i64, Option<i64>, Option<i64>, i64)> {
        let mut out = Vec::new();
        for b in batches {
            let ts = b
                .column(0)
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            let k = b.column(1).as_primitive::<Int64Type>();
            let v = b.column(2).as_primitive::<Int64Type>();
            let s = b.column(3).as_primitive::<Int64Type>();
            let n = b.column(4).as_primitive::<Int64Type>();
            // AVG of BIGINT is a BIGINT.
            let _ = b.column(5).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                out.push((
                    ts.value(i),
                    k.value(i),
                    v.is_valid(i).then(|| v.value(i)),
                    s.is_valid(i).then(|| s.value(i)),
                    n.value(i),
                ));
            }
        }
        out
    }

    #[test]
    fn rows_frames_take_the_n_rows_before_and_wait_for_the_watermark() -> Result<()> {
        let mut h = OperatorHarness::new(Box::new(OverAggregate::new(
            spec(OverFrame::Rows(1)),
            &input(),
        )?))?;
        h.batch(batch(&[
            (3, 1, Some(30)),
            (1, 1, Some(10)),
            (2, 2, Some(5)),
            (2, 1, Some(20)),
        ]))?;
        assert!(h.take_output().is_empty(), "nothing before the watermark");
        h.watermark(2)?;
        let mut got = rows(&h.take_output());
        got.sort();
        assert_eq!(
            got,
            [
                (1, 1, Some(10), Some(10), 1),
                (2, 1, Some(20), Some(30), 2),
                (2, 2, Some(5), Some(5), 1)
            ]
        );
        // A row at or below the watermark is late.
        h.batch(batch(&[(2, 1, Some(99)), (4, 1, None)]))?;
        assert_eq!(
            h.metrics()
                .late_rows_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        h.watermark(10)?;
        assert_eq!(
            rows(&h.take_output()),
            [(3, 1, Some(30), Some(50), 2), (4, 1, None, Some(30), 2)]
        );
        Ok(())
    }

    #[test]
    fn range_frames_take_peers_and_restore() -> Result<()> {
        let mut h = OperatorHarness::new(Box::new(OverAggregate::new(
            spec(OverFrame::Range(10)),
            &input(),
        )?))?;
        h.batch(batch(&[
            (0, 1, Some(1)),
            (10, 1, Some(2)),
            (10, 1, Some(3)),
            (21, 1, Some(4)),
        ]))?;
        h.watermark(10)?;
        // Both rows at 10 see each other and the row at 0 (10 - 10).
        assert_eq!(
            rows(&h.take_output()),
            [
                (0, 1, Some(1), Some(1), 1),
                (10, 1, Some(2), Some(6), 3),
                (10, 1, Some(3), Some(6), 3)
            ]
        );
        let snapshot = h.checkpoint(1)?;
        let mut h = OperatorHarness::restored(
            Box::new(OverAggregate::new(spec(OverFrame::Range(10)), &input())?),
            &snapshot,
        )?;
        h.batch(batch(&[(15, 1, Some(5))]))?;
        h.watermark(30)?;
        // 15 reaches back to 5: the rows at 10; 21 reaches back to 11.
        assert_eq!(
            rows(&h.take_output()),
            [(15, 1, Some(5), Some(10), 3), (21, 1, Some(4), Some(9), 2)]
        );
        Ok(())
    }

    #[test]
    fn unbounded_frames_keep_running_aggregates_across_a_restore() -> Result<()> {
        let mut h = OperatorHarness::new(Box::new(OverAggregate::new(
            spec(OverFrame::UnboundedRange),
            &input(),
        )?))?;
        h.batch(batch(&[
            (1, 1, Some(10)),
            (2, 1, Some(20)),
            (2, 1, Some(5)),
        ]))?;
        h.watermark(2)?;
        // The rows at 2 are peers: both see 35.
        assert_eq!(
            rows(&h.take_output()),
            [
                (1, 1, Some(10), Some(10), 1),
                (2, 1, Some(20), Some(35), 3),
                (2, 1, Some(5), Some(35), 3)
            ]
        );
        let snapshot = h.checkpoint(1)?;
        let mut h = OperatorHarness::restored(
            Box::new(OverAggregate::new(
                spec(OverFrame::UnboundedRange),
                &input(),
            )?),
            &snapshot,
        )?;
        h.batch(batch(&[(3, 1, Some(1))]))?;
        h.watermark(5)?;
        assert_eq!(rows(&h.take_output()), [(3, 1, Some(1), Some(36), 4)]);
        // ROWS: equal times one after the other.
        let mut h = OperatorHarness::new(Box::new(OverAggregate::new(
            spec(OverFrame::UnboundedRows),
            &input(),
        )?))?;
        h.batch(batch(&[(2, 1, Some(20)), (2, 1, Some(5))]))?;
        h.watermark(2)?;
        assert_eq!(
            rows(&h.take_output()),
            [(2, 1, Some(20), Some(20), 1), (2, 1, Some(5), Some(25), 2)]
        );
        Ok(())
    }

    #[test]
    fn running_first_and_last_values_follow_time_not_arrival() -> Result<()> {
        let mut s = spec(OverFrame::UnboundedRows);
        s.aggregates = vec![
            AggregateCall::new(F::FirstValue, vec![Expr::Column(2)], "f"),
            AggregateCall::new(F::LastValue, vec![Expr::Column(2)], "l"),
        ];
        let mut h = OperatorHarness::new(Box::new(OverAggregate::new(s, &input())?))?;
        // 5 arrives before 3 but comes after it in time.
        h.batch(batch(&[(5, 1, Some(50)), (3, 1, Some(30))]))?;
        h.watermark(10)?;
        let out = h.take_output();
        let got: Vec<(i64, i64, i64)> = out
            .iter()
            .flat_map(|b| {
                let ts = b
                    .column(0)
                    .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .clone();
                let f = b.column(3).as_primitive::<Int64Type>().clone();
                let l = b.column(4).as_primitive::<Int64Type>().clone();
                (0..b.num_rows())
                    .map(move |i| (ts.value(i), f.value(i), l.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(got, [(3, 30, 30), (5, 30, 50)]);
        Ok(())
    }

    proptest! {
        /// Every row comes out once, with the SUM and COUNT of its frame
        /// computed over all rows of its partition.
        #[test]
        fn each_row_gets_the_aggregates_of_its_frame(
            input_rows in prop::collection::vec((0i64..30, 0i64..2, prop::option::of(0i64..9)), 1..40),
            rows_frame in any::<bool>(),
            n in 0u64..4,
            split in 1usize..8,
        ) {
            let frame = match (rows_frame, n) {
                (true, 3) => OverFrame::UnboundedRows,
                (false, 3) => OverFrame::UnboundedRange,
                (true, n) => OverFrame::Rows(n),
                (false, n) => OverFrame::Range(n as i64 * 3),
            };
            let mut h = OperatorHarness::new(Box::new(OverAggregate::new(spec(frame), &input()).expect("op"))).expect("open");
            for chunk in input_rows.chunks(split) {
                h.batch(batch(chunk)).expect("batch");
            }
            h.watermark(100).expect("watermark");
            let mut got = rows(&h.take_output());
            got.sort();
            let mut want = Vec::new();
            for k in 0..2 {
                // Time order, arrival order within a time.
                let mut part: Vec<(usize, &(i64, i64, Option<i64>))> =
                    input_rows.iter().enumerate().filter(|(_, r)| r.1 == k).collect();
                part.sort_by_key(|(i, r)| (r.0, *i));
                for (pos, (_, r)) in part.iter().enumerate() {
                    let frame_rows: Vec<&(i64, i64, Option<i64>)> = match frame {
                        OverFrame::Rows(n) => part[pos.saturating_sub(n as usize)..=pos].iter().map(|x| x.1).collect(),
                        OverFrame::Range(d) => part.iter().map(|x| x.1).filter(|x| x.0 >= r.0 - d && x.0 <= r.0).collect(),
                        OverFrame::UnboundedRows => part[..=pos].iter().map(|x| x.1).collect(),
                        OverFrame::UnboundedRange => part.iter().map(|x| x.1).filter(|x| x.0 <= r.0).collect(),
                    };
                    let vals: Vec<i64> = frame_rows.iter().filter_map(|x| x.2).collect();
                    let sum = (!vals.is_empty()).then(|| vals.iter().sum::<i64>());
                    want.push((r.0, r.1, r.2, sum, frame_rows.len() as i64));
                }
            }
            want.sort();
            prop_assert_eq!(got, want);
        }
    }

    /// LAG(v) and LAG(v, 2, -1) per partition, with each frame kind: the
    /// values of the rows one and two before, in time order, across
    /// watermarks (rows dropped for the frame are kept for LAG) and a
    /// restore.
    #[test]
    fn lag_looks_back_across_watermarks_and_restores() -> Result<()> {
        use crate::expr::ScalarValue;
        for frame in [
            OverFrame::Rows(0),
            OverFrame::Range(1),
            OverFrame::UnboundedRows,
            OverFrame::UnboundedRange,
        ] {
            let mut s = spec(frame);
            s.lags = vec![
                LagCall {
                    arg: Expr::Column(2),
                    offset: 1,
                    default: None,
                    name: "prev".into(),
                },
                LagCall {
                    arg: Expr::Column(2),
                    offset: 2,
                    default: Some(Expr::Literal(ScalarValue::Int64(-1))),
                    name: "prev2".into(),
                },
            ];
            let lags = |batches: &[RecordBatch]| -> Vec<(Option<i64>, Option<i64>, Option<i64>)> {
                let mut out = Vec::new();
                for b in batches {
                    let v = b.column(2).as_primitive::<Int64Type>();
                    let p1 = b.column(6).as_primitive::<Int64Type>();
                    let p2 = b.column(7).as_primitive::<Int64Type>();
                    for i in 0..b.num_rows() {
                        let get = |a: &arrow::array::Int64Array| a.is_valid(i).then(|| a.value(i));
                        out.push((get(v), get(p1), get(p2)));
                    }
                }
                out
            };
            let op = || OverAggregate::new(s.clone(), &input()).map(Box::new);
            let mut h = OperatorHarness::new(op()?)?;
            h.batch(batch(&[
                (1, 1, Some(10)),
                (2, 1, Some(20)),
                (2, 2, Some(7)),
            ]))?;
            h.watermark(5)?;
            let mut got = lags(&h.take_output());
            h.batch(batch(&[(6, 1, Some(30))]))?;
            h.watermark(6)?;
            got.extend(lags(&h.take_output()));
            let snapshot = h.checkpoint(1)?;
            let mut h = OperatorHarness::restored(op()?, &snapshot)?;
            h.batch(batch(&[(9, 1, Some(40)), (8, 2, None), (9, 2, Some(9))]))?;
            h.watermark(20)?;
            got.extend(lags(&h.take_output()));
            got.sort();
            let mut want = vec![
                (Some(10), None, Some(-1)),
                (Some(20), Some(10), Some(-1)),
                (Some(30), Some(20), Some(10)),
                (Some(40), Some(30), Some(20)),
                (Some(7), None, Some(-1)),
                (None, Some(7), Some(-1)),
                // After a NULL value: NULL (the row exists), not the default.
                (Some(9), None, Some(7)),
            ];
            want.sort();
            assert_eq!(got, want, "{frame:?}");
        }
        Ok(())
    }

    /// Without aggregates the operator sorts by time: rows come out in time
    /// order when the watermark passes them, late ones are dropped.
    #[test]
    fn without_aggregates_it_sorts_by_time() -> Result<()> {
        let mut s = spec(OverFrame::Rows(0));
        s.aggregates.clear();
        s.partition_keys.clear();
        let op = OverAggregate::new(s, &input())?;
        assert_eq!(op.schema().fields().len(), 3, "the input's columns only");
        let mut h = OperatorHarness::new(Box::new(op))?;
        h.batch(batch(&[
            (5, 1, Some(50)),
            (1, 2, Some(10)),
            (3, 1, Some(30)),
        ]))?;
        h.batch(batch(&[(9, 2, Some(90)), (2, 1, Some(20))]))?;
        h.watermark(5)?;
        h.batch(batch(&[(4, 1, Some(40)), (7, 2, Some(70))]))?;
        h.watermark(20)?;
        let times: Vec<i64> = h
            .take_output()
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(times, [1, 2, 3, 5, 7, 9]);
        assert_eq!(
            h.metrics()
                .late_rows_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        Ok(())
    }
}
