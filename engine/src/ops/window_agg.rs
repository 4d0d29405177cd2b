//! The keyed window aggregate for TUMBLE, HOP and CUMULATE.
//!
//! Rows go into *slices* (see [`crate::window`]); each slice holds, per
//! key, one group of every accumulator. When the watermark passes a
//! window's end, the window's slices are merged per key and emitted once:
//! the output is append-only. A slice is dropped once the last window that
//! uses it has fired. A row whose windows have all fired is late: it is
//! dropped and counted. A row some of whose windows have fired (HOP,
//! CUMULATE) still counts in the windows that have not.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use runnel_state::{encode_time, TableId};

use crate::aggregate::GroupsAccumulator;
use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{
    decode_time_at, load_group, load_meta, put_keyed, save_group, save_meta, scan_owned,
    take_inputs, update_all, AggregateCall, BoundAggregates, CallInput,
};
use crate::types::{event_time_millis, Barrier, EventTime};
use crate::window::WindowSpec;

/// Above this many distinct slices in one batch, rows are split by slice
/// with `take` instead of being masked once per slice.
const MAX_MASKED_SLICES: usize = 8;

type KeyMap = HashMap<Box<[u8]>, u32, ahash::RandomState>;

/// What a window aggregate computes.
#[derive(Debug, Clone)]
pub struct WindowAggregateSpec {
    /// TUMBLE, HOP or CUMULATE (SESSION has its own operator).
    pub window: WindowSpec,
    /// The event-time column of the input.
    pub time_column: usize,
    /// GROUP BY columns of the input (besides the window).
    pub key_columns: Vec<usize>,
    /// The aggregates.
    pub aggregates: Vec<AggregateCall>,
}

impl WindowAggregateSpec {
    /// The output schema for `input`: key columns, `window_start`,
    /// `window_end`, then one column per aggregate.
    pub fn output_schema(&self, input: &Schema) -> Result<SchemaRef> {
        let aggs = BoundAggregates::new(self.aggregates.clone(), input)?;
        Ok(output_schema(input, &self.key_columns, aggs.fields()))
    }

    /// A factory for the subtasks of this operator.
    pub fn factory(self, input: SchemaRef) -> Result<OperatorFactory> {
        // Build once now so that plan errors surface before the job starts.
        WindowAggregate::new(self.clone(), &input)?;
        Ok(Arc::new(move |_task: &TaskInfo| {
            Ok(Box::new(WindowAggregate::new(self.clone(), &input)?)
                as Box<dyn crate::operator::Operator>)
        }))
    }
}

pub(crate) fn output_schema(
    input: &Schema,
    key_columns: &[usize],
    agg_fields: &[Field],
) -> SchemaRef {
    let mut fields: Vec<Field> = key_columns
        .iter()
        .map(|&k| input.field(k).clone())
        .collect();
    fields.push(Field::new(
        "window_start",
        DataType::Timestamp(TimeUnit::Millisecond, None),
        false,
    ));
    fields.push(Field::new(
        "window_end",
        DataType::Timestamp(TimeUnit::Millisecond, None),
        false,
    ));
    fields.extend(agg_fields.iter().cloned());
    Arc::new(Schema::new(fields))
}

#[derive(Debug)]
struct Slice {
    groups: KeyMap,
    keys: Vec<Box<[u8]>>,
    accs: Vec<Box<dyn GroupsAccumulator>>,
}

impl Slice {
    fn group_of(&mut self, key: &[u8]) -> u32 {
        if let Some(&g) = self.groups.get(key) {
            return g;
        }
        let g = self.keys.len() as u32;
        self.keys.push(key.into());
        self.groups.insert(key.into(), g);
        g
    }
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct WindowAggregate {
    spec: WindowAggregateSpec,
    aggs: BoundAggregates,
    encoder: KeyEncoder,
    schema: SchemaRef,
    slices: BTreeMap<EventTime, Slice>,
    /// Ends of windows that have a slice and have not fired.
    pending_ends: BTreeSet<EventTime>,
    watermark: EventTime,
    /// Arrival sequence of the next row (FIRST_VALUE / LAST_VALUE order).
    seq: u64,
    table: Option<TableId>,
}

impl WindowAggregate {
    /// Builds the operator for `input`.
    pub fn new(spec: WindowAggregateSpec, input: &Schema) -> Result<Self> {
        spec.window.validate()?;
        if matches!(spec.window, WindowSpec::Session { .. }) {
            return Err(EngineError::Plan(
                "SESSION windows use the session window operator".into(),
            ));
        }
        if spec.time_column >= input.fields().len() {
            return Err(EngineError::Plan(format!(
                "time column {} is out of range",
                spec.time_column
            )));
        }
        let aggs = BoundAggregates::new(spec.aggregates.clone(), input)?;
        let encoder = KeyEncoder::new(input, &spec.key_columns)?;
        let schema = output_schema(input, &spec.key_columns, aggs.fields());
        Ok(Self {
            spec,
            aggs,
            encoder,
            schema,
            slices: BTreeMap::new(),
            pending_ends: BTreeSet::new(),
            watermark: EventTime::MIN,
            seq: 0,
            table: None,
        })
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// True when every window a row at slice `slice_end` belongs to has fired.
    fn is_late(&self, slice_end: EventTime) -> bool {
        self.spec
            .window
            .last_window_end(slice_end)
            .saturating_sub(1)
            <= self.watermark
    }

    fn slice_mut(&mut self, slice_end: EventTime) -> Result<&mut Slice> {
        if !self.slices.contains_key(&slice_end) {
            for e in self.spec.window.window_ends_of_slice(slice_end) {
                if e.saturating_sub(1) > self.watermark {
                    self.pending_ends.insert(e);
                }
            }
            let slice = Slice {
                groups: KeyMap::default(),
                keys: Vec::new(),
                accs: self.aggs.accumulators()?,
            };
            self.slices.insert(slice_end, slice);
        }
        self.slices
            .get_mut(&slice_end)
            .ok_or_else(|| EngineError::Internal("slice vanished".into()))
    }

    fn fire(&self, end: EventTime, out: &mut dyn Collector) -> Result<()> {
        let start = self.spec.window.window_start(end);
        let parts: Vec<&Slice> = self
            .slices
            .range(start.saturating_add(1)..=end)
            .map(|(_, s)| s)
            .collect();
        let (keys, values): (Vec<&[u8]>, Vec<ArrayRef>) = match parts.as_slice() {
            [] => return Ok(()),
            [only] => {
                let groups: Vec<u32> = (0..only.keys.len() as u32).collect();
                let values = only
                    .accs
                    .iter()
                    .map(|a| a.evaluate(&groups))
                    .collect::<Result<Vec<_>>>()?;
                (only.keys.iter().map(|k| k.as_ref()).collect(), values)
            }
            many => {
                let mut merged = self.aggs.accumulators()?;
                let mut index: HashMap<&[u8], u32, ahash::RandomState> = HashMap::default();
                let mut keys: Vec<&[u8]> = Vec::new();
                for slice in many {
                    for (g, key) in slice.keys.iter().enumerate() {
                        let next = keys.len() as u32;
                        let dst = *index.entry(key.as_ref()).or_insert_with(|| {
                            keys.push(key.as_ref());
                            next
                        });
                        for (m, a) in merged.iter_mut().zip(&slice.accs) {
                            m.merge(dst, a.as_ref(), g as u32)?;
                        }
                    }
                }
                let groups: Vec<u32> = (0..keys.len() as u32).collect();
                let values = merged
                    .iter()
                    .map(|a| a.evaluate(&groups))
                    .collect::<Result<Vec<_>>>()?;
                (keys, values)
            }
        };
        if keys.is_empty() {
            return Ok(());
        }
        let parser = self.encoder.converter().parser();
        let mut columns = self.encoder.decode(keys.iter().map(|k| parser.parse(k)))?;
        let n = keys.len();
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![start; n])));
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![end; n])));
        columns.extend(values);
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Adds the rows `rows` (all of slice `slice_end`) to that slice.
    fn update_slice(
        &mut self,
        slice_end: EventTime,
        key_rows: &arrow::row::Rows,
        rows: Option<&[u32]>,
        inputs: &[CallInput],
        mask: Option<&BooleanArray>,
        first_seq: u64,
    ) -> Result<()> {
        let slice = self.slice_mut(slice_end)?;
        match rows {
            None => {
                // Every row of the batch (maybe masked) goes to this slice.
                let groups: Vec<u32> = match mask {
                    None => key_rows
                        .iter()
                        .map(|r| slice.group_of(r.as_ref()))
                        .collect(),
                    Some(m) => key_rows
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            if m.value(i) {
                                slice.group_of(r.as_ref())
                            } else {
                                0
                            }
                        })
                        .collect(),
                };
                let total = slice.keys.len();
                update_all(&mut slice.accs, inputs, &groups, mask, total, first_seq)
            }
            Some(idx) => {
                let groups: Vec<u32> = idx
                    .iter()
                    .map(|&i| slice.group_of(key_rows.row(i as usize).as_ref()))
                    .collect();
                let total = slice.keys.len();
                let taken = take_inputs(inputs, &UInt32Array::from(idx.to_vec()))?;
                update_all(&mut slice.accs, &taken, &groups, None, total, first_seq)
            }
        }
    }
}

impl Operator for WindowAggregate {
    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/window_agg", ctx.task.operator_name))?;
        self.table = Some(table);
        self.restore(ctx, table)
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
        let key_rows = self.encoder.encode(&batch)?;
        let inputs = self.aggs.evaluate(&batch)?;
        let first_seq = self.seq;
        self.seq += n as u64;

        // Slice of every row; None for late rows and rows without a time.
        let mut slice_of: Vec<Option<EventTime>> = Vec::with_capacity(n);
        let mut distinct: Vec<EventTime> = Vec::new();
        let mut dropped = 0u64;
        for i in 0..n {
            if times.is_null(i) {
                dropped += 1;
                slice_of.push(None);
                continue;
            }
            let s = self.spec.window.slice_end(times.value(i));
            if self.is_late(s) {
                dropped += 1;
                slice_of.push(None);
                continue;
            }
            if distinct.last() != Some(&s) && !distinct.contains(&s) {
                distinct.push(s);
            }
            slice_of.push(Some(s));
        }
        if dropped > 0 {
            ctx.metrics.add_late(dropped);
        }
        match distinct.as_slice() {
            [] => Ok(()),
            [only] if dropped == 0 => {
                self.update_slice(*only, &key_rows, None, &inputs, None, first_seq)
            }
            few if few.len() <= MAX_MASKED_SLICES => {
                for &s in few {
                    let mask: BooleanArray = slice_of.iter().map(|x| Some(*x == Some(s))).collect();
                    self.update_slice(s, &key_rows, None, &inputs, Some(&mask), first_seq)?;
                }
                Ok(())
            }
            many => {
                // Rows keep their order within a slice; FIRST_VALUE/LAST_VALUE
                // order across slices of this one batch is by slice first.
                for &s in many {
                    let idx: Vec<u32> = (0..n as u32)
                        .filter(|&i| slice_of[i as usize] == Some(s))
                        .collect();
                    let seq = first_seq + u64::from(idx[0]);
                    self.update_slice(s, &key_rows, Some(&idx), &inputs, None, seq)?;
                }
                Ok(())
            }
        }
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
        while let Some(&end) = self.pending_ends.first() {
            if end.saturating_sub(1) > watermark {
                break;
            }
            self.pending_ends.pop_first();
            self.fire(end, out)?;
        }
        let window = self.spec.window;
        self.slices
            .retain(|&s, _| window.last_window_end(s).saturating_sub(1) > watermark);
        Ok(())
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self
            .table
            .ok_or_else(|| EngineError::Internal("window aggregate not opened".into()))?;
        // The whole state is rewritten: simple and exact. Incremental writes
        // of dirty slices come with the RocksDB backend.
        ctx.state.delete_prefix(table, &[])?;
        let mut value = Vec::new();
        for (&slice_end, slice) in &self.slices {
            for (g, key) in slice.keys.iter().enumerate() {
                value.clear();
                save_group(&slice.accs, g as u32, &mut value)?;
                put_keyed(ctx, table, key, &encode_time(slice_end), &value)?;
            }
        }
        save_meta(ctx, table, self.watermark, self.seq)
    }
}

impl WindowAggregate {
    fn restore(&mut self, ctx: &mut OperatorContext<'_>, table: TableId) -> Result<()> {
        let Some((watermark, seq)) = load_meta(ctx, table)? else {
            return Ok(());
        };
        self.watermark = watermark;
        self.seq = seq;
        for (_, ns, key, value) in scan_owned(ctx, table, 8)? {
            let slice = self.slice_mut(decode_time_at(&ns, 0)?)?;
            let g = slice.group_of(&key);
            load_group(&mut slice.accs, g, &value)?;
        }
        Ok(())
    }
}
