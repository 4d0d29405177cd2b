//! The keyed window aggregate for TUMBLE, HOP and CUMULATE.
//!
//! Rows go into *slices* (see [`crate::window`]); each slice holds, per
//! key, one group of every accumulator. When the watermark passes a
//! window's end, the window's slices are merged per key and emitted once:
//! the output is append-only. A slice is dropped once the last window that
//! uses it has fired. A row whose windows have all fired is late: it is
//! dropped and counted. A row some of whose windows have fired (HOP,
//! CUMULATE) still counts in the windows that have not.
//!
//! Slices in memory hold what arrived since the last *flush*. A flush (at
//! every checkpoint barrier, and whenever the slices outgrow the task's
//! memory budget) merges each in-memory group into its entry in the state
//! backend and empties memory; so a checkpoint writes only what changed,
//! and a window with more keys than fit in memory works (on RocksDB). A
//! window whose slices were flushed is fired key group by key group:
//! stored entries and in-memory groups of one key group are merged and
//! emitted in batches, so firing needs memory for one key group, not for
//! the window.

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
    load_group, save_group, save_meta_with, state_key, take_inputs, update_all, AggregateCall,
    BoundAggregates, CallInput,
};
use crate::types::{event_time_millis, Barrier, EventTime, RowKind};
use crate::window::WindowSpec;

mod corrections;
mod restore;

/// Above this many distinct slices in one batch, rows are split by slice
/// with `take` instead of being masked once per slice.
const MAX_MASKED_SLICES: usize = 8;

/// Rows per output batch when a flushed window is fired.
const EMIT_BATCH: usize = 8192;

/// Rough bytes per in-memory group besides its key and accumulator values:
/// the hash map slot and the boxed key in two places.
const GROUP_OVERHEAD: usize = 64;

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
    /// Milliseconds the windows are shifted by from multiples of their
    /// size (Flink's window offset: `TUMBLE(..., INTERVAL '1' DAY,
    /// INTERVAL '-8' HOUR)` starts days at 08:00 UTC).
    pub offset: i64,
    /// Milliseconds a window's state is kept after it fired
    /// (`'table.exec.emit.allow-lateness'`): a row that arrives for it
    /// within that time updates its result, emitted as `-U` and `+U`.
    /// With 0 (the default) the output is append-only; otherwise it is
    /// updating (the last column holds the row kind).
    pub allowed_lateness: i64,
}

impl WindowAggregateSpec {
    /// The output schema for `input`: key columns, `window_start`,
    /// `window_end`, then one column per aggregate.
    pub fn output_schema(&self, input: &Schema) -> Result<SchemaRef> {
        let aggs = BoundAggregates::new(self.aggregates.clone(), input)?;
        let schema = output_schema(input, &self.key_columns, aggs.fields());
        Ok(if self.allowed_lateness > 0 {
            crate::types::with_row_kind(&schema)
        } else {
            schema
        })
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
    key_bytes: usize,
    accs: Vec<Box<dyn GroupsAccumulator>>,
}

impl Slice {
    fn group_of(&mut self, key: &[u8]) -> u32 {
        if let Some(&g) = self.groups.get(key) {
            return g;
        }
        let g = self.keys.len() as u32;
        self.keys.push(key.into());
        self.key_bytes += key.len();
        self.groups.insert(key.into(), g);
        g
    }

    fn memory_size(&self) -> usize {
        self.key_bytes
            + self.keys.len() * GROUP_OVERHEAD
            + self.accs.iter().map(|a| a.size_bytes()).sum::<usize>()
    }
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct WindowAggregate {
    spec: WindowAggregateSpec,
    aggs: BoundAggregates,
    encoder: KeyEncoder,
    schema: SchemaRef,
    /// What arrived since the last flush, by slice end.
    slices: BTreeMap<EventTime, Slice>,
    /// Ends of slices that have entries in the state backend, with the key
    /// groups those entries are in (firing scans only those).
    stored: BTreeMap<EventTime, BTreeSet<u16>>,
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
        if spec.allowed_lateness < 0 {
            return Err(EngineError::Plan(format!(
                "allowed lateness must not be negative, got {} ms",
                spec.allowed_lateness
            )));
        }
        let aggs = BoundAggregates::new(spec.aggregates.clone(), input)?;
        let encoder = KeyEncoder::new(input, &spec.key_columns)?;
        let schema = spec.output_schema(input)?;
        Ok(Self {
            spec,
            aggs,
            encoder,
            schema,
            slices: BTreeMap::new(),
            stored: BTreeMap::new(),
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

    /// True when every window a row at slice `slice_end` belongs to has
    /// fired and its allowed lateness has passed.
    fn is_late(&self, slice_end: EventTime) -> bool {
        self.spec
            .window
            .slice_is_late(slice_end, self.cleanup_watermark())
    }

    /// The watermark less the allowed lateness: windows that ended by it
    /// are closed for good and their slices dropped.
    fn cleanup_watermark(&self) -> EventTime {
        match self.watermark {
            EventTime::MAX => EventTime::MAX,
            w => w.saturating_sub(self.spec.allowed_lateness),
        }
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
                key_bytes: 0,
                accs: self.aggs.accumulators()?,
            };
            self.slices.insert(slice_end, slice);
        }
        self.slices
            .get_mut(&slice_end)
            .ok_or_else(|| EngineError::Internal("slice vanished".into()))
    }

    /// Approximate bytes of the slices in memory.
    pub fn memory_size(&self) -> usize {
        self.slices.values().map(Slice::memory_size).sum()
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("window aggregate not opened".into()))
    }

    /// Merges every in-memory group into its stored entry and empties
    /// memory; then records the stored slices and the watermark.
    fn flush(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        let mut scratch = self.aggs.accumulators()?;
        let mut value = Vec::new();
        for (&slice_end, slice) in self.slices.iter_mut() {
            let ns = encode_time(slice_end);
            let merge_stored = self.stored.contains_key(&slice_end);
            let groups = self.stored.entry(slice_end).or_default();
            for (g, key) in slice.keys.iter().enumerate() {
                let skey = state_key(ctx, key, &ns);
                groups.insert(u16::from_be_bytes([skey[0], skey[1]]));
                if merge_stored {
                    if let Some(old) = ctx.state.get(table, &skey)? {
                        load_group(&mut scratch, 0, &old)?;
                        for (a, s) in slice.accs.iter_mut().zip(&scratch) {
                            a.merge(g as u32, s.as_ref(), 0)?;
                        }
                    }
                }
                value.clear();
                save_group(&slice.accs, g as u32, &mut value)?;
                ctx.state.put(table, &skey, &value)?;
            }
        }
        self.slices.clear();
        self.save_meta(ctx)
    }

    fn save_meta(&self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        // Per stored slice: its end, the number of key groups, the groups.
        let mut extra = Vec::new();
        for (end, groups) in &self.stored {
            extra.extend_from_slice(&end.to_le_bytes());
            extra.extend_from_slice(&(groups.len() as u32).to_le_bytes());
            for g in groups {
                extra.extend_from_slice(&g.to_le_bytes());
            }
        }
        save_meta_with(ctx, self.table()?, self.watermark, self.seq, &extra)
    }

    fn fire(
        &self,
        end: EventTime,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let start = self.spec.window.window_start(end);
        let stored: Vec<EventTime> = self
            .stored
            .range(start.saturating_add(1)..=end)
            .map(|(s, _)| *s)
            .collect();
        if stored.is_empty() {
            return self.fire_memory(end, out);
        }
        let table = self.table()?;
        let parts: Vec<&Slice> = self
            .slices
            .range(start.saturating_add(1)..=end)
            .map(|(_, s)| s)
            .collect();
        // In-memory groups by key group.
        let max = ctx.task.max_parallelism;
        let mut in_memory: BTreeMap<u16, Vec<(usize, u32)>> = BTreeMap::new();
        for (p, slice) in parts.iter().enumerate() {
            for (g, key) in slice.keys.iter().enumerate() {
                let kg = runnel_state::key_group_for_hash(crate::keys::hash_key(key), max);
                in_memory.entry(kg).or_default().push((p, g as u32));
            }
        }
        let mut key_groups: BTreeSet<u16> = in_memory.keys().copied().collect();
        for s in &stored {
            key_groups.extend(self.stored.get(s).into_iter().flatten().copied());
        }

        let mut scratch = self.aggs.accumulators()?;
        let mut merged = self.aggs.accumulators()?;
        let mut index: HashMap<Vec<u8>, u32, ahash::RandomState> = HashMap::default();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for kg in key_groups {
            for &s in &stored {
                let mut prefix = kg.to_be_bytes().to_vec();
                prefix.extend_from_slice(&encode_time(s));
                for entry in ctx.state.scan_prefix(table, &prefix)? {
                    let (k, v) = entry?;
                    load_group(&mut scratch, 0, &v)?;
                    let key = k[prefix.len()..].to_vec();
                    let next = keys.len() as u32;
                    let dst = *index.entry(key.clone()).or_insert_with(|| {
                        keys.push(key);
                        next
                    });
                    for (m, a) in merged.iter_mut().zip(&scratch) {
                        m.merge(dst, a.as_ref(), 0)?;
                    }
                }
            }
            for &(p, g) in in_memory.get(&kg).map(Vec::as_slice).unwrap_or_default() {
                let slice = parts[p];
                let key = slice.keys[g as usize].to_vec();
                let next = keys.len() as u32;
                let dst = *index.entry(key.clone()).or_insert_with(|| {
                    keys.push(key);
                    next
                });
                for (m, a) in merged.iter_mut().zip(&slice.accs) {
                    m.merge(dst, a.as_ref(), g)?;
                }
            }
            if keys.len() >= EMIT_BATCH {
                self.emit(start, end, &keys, &merged, out)?;
                keys.clear();
                index.clear();
                merged = self.aggs.accumulators()?;
            }
        }
        self.emit(start, end, &keys, &merged, out)
    }

    /// Emits one row per key: the key, the window, `accs`' group i for key i.
    fn emit(
        &self,
        start: EventTime,
        end: EventTime,
        keys: &[Vec<u8>],
        accs: &[Box<dyn GroupsAccumulator>],
        out: &mut dyn Collector,
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let groups: Vec<u32> = (0..keys.len() as u32).collect();
        let values = accs
            .iter()
            .map(|a| a.evaluate(&groups))
            .collect::<Result<Vec<_>>>()?;
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        self.emit_rows(start, end, &keys, values, out)
    }

    /// Emits the rows of one window: `keys`, the window bounds, `values`,
    /// inserts (when the output has a row kind).
    fn emit_rows(
        &self,
        start: EventTime,
        end: EventTime,
        keys: &[&[u8]],
        values: Vec<ArrayRef>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let kinds = vec![RowKind::Insert; keys.len()];
        self.emit_kinds(start, end, keys, values, &kinds, out)
    }

    /// [`Self::emit_rows`] with one kind for every row.
    fn emit_kind(
        &self,
        start: EventTime,
        end: EventTime,
        keys: &[&[u8]],
        values: Vec<ArrayRef>,
        kind: RowKind,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let kinds = vec![kind; keys.len()];
        self.emit_kinds(start, end, keys, values, &kinds, out)
    }

    /// [`Self::emit_rows`] with each row's kind.
    fn emit_kinds(
        &self,
        start: EventTime,
        end: EventTime,
        keys: &[&[u8]],
        values: Vec<ArrayRef>,
        kinds: &[RowKind],
        out: &mut dyn Collector,
    ) -> Result<()> {
        let parser = self.encoder.converter().parser();
        let mut columns = self.encoder.decode(keys.iter().map(|k| parser.parse(k)))?;
        let n = keys.len();
        // The operator works in times shifted by the offset; the window
        // columns are in real time.
        let offset = self.spec.offset;
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![
            start
                .saturating_add(
                    offset
                );
            n
        ])));
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![
            end.saturating_add(offset);
            n
        ])));
        columns.extend(values);
        if self.spec.allowed_lateness > 0 {
            columns.push(crate::types::row_kind_array(kinds));
        }
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Fires a window none of whose slices was flushed.
    fn fire_memory(&self, end: EventTime, out: &mut dyn Collector) -> Result<()> {
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
        self.emit_rows(start, end, &keys, values, out)
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
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

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
        out: &mut dyn Collector,
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
            let s = self
                .spec
                .window
                .slice_end(times.value(i).saturating_sub(self.spec.offset));
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
        // Rows for windows that fired but are within their allowed
        // lateness: their keys' results before and after the rows.
        let corrections = self.corrections(&slice_of, &key_rows);
        let mut before = Vec::with_capacity(corrections.len());
        for (end, keys) in &corrections {
            before.push(self.results_of(*end, keys, ctx)?);
        }
        self.update_slices(&distinct, &slice_of, dropped, &key_rows, &inputs, first_seq)?;
        for ((end, keys), (old_keys, old_values)) in corrections.iter().zip(before) {
            let start = self.spec.window.window_start(*end);
            let (new_keys, new_values) = self.results_of(*end, keys, ctx)?;
            if !old_keys.is_empty() {
                let keys: Vec<&[u8]> = old_keys.iter().map(Vec::as_slice).collect();
                self.emit_kind(start, *end, &keys, old_values, RowKind::UpdateBefore, out)?;
            }
            // A key new to the window is an insert, the others updates.
            let kinds: Vec<RowKind> = new_keys
                .iter()
                .map(|k| {
                    if old_keys.binary_search(k).is_ok() {
                        RowKind::UpdateAfter
                    } else {
                        RowKind::Insert
                    }
                })
                .collect();
            let keys: Vec<&[u8]> = new_keys.iter().map(Vec::as_slice).collect();
            self.emit_kinds(start, *end, &keys, new_values, &kinds, out)?;
        }
        if ctx
            .task
            .memory_budget
            .is_some_and(|budget| self.memory_size() > budget)
        {
            ctx.metrics
                .state_spills
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.flush(ctx)?;
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        // In shifted time, as the slices are (the end of time stays).
        let watermark = if watermark == EventTime::MAX {
            watermark
        } else {
            watermark.saturating_sub(self.spec.offset)
        };
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        while let Some(&end) = self.pending_ends.first() {
            if end.saturating_sub(1) > watermark {
                break;
            }
            self.pending_ends.pop_first();
            self.fire(end, ctx, out)?;
        }
        let window = self.spec.window;
        let closed = self.cleanup_watermark();
        self.slices
            .retain(|&s, _| window.last_window_end(s).saturating_sub(1) > closed);
        let done: Vec<EventTime> = self
            .stored
            .keys()
            .copied()
            .filter(|&s| window.last_window_end(s).saturating_sub(1) <= closed)
            .collect();
        if !done.is_empty() {
            let table = self.table()?;
            for s in done {
                for kg in self.stored.remove(&s).unwrap_or_default() {
                    let mut prefix = kg.to_be_bytes().to_vec();
                    prefix.extend_from_slice(&encode_time(s));
                    ctx.state.delete_prefix(table, &prefix)?;
                }
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.flush(ctx)
    }
}

impl WindowAggregate {
    /// Adds a batch's rows to their slices (see `process_batch`).
    fn update_slices(
        &mut self,
        distinct: &[EventTime],
        slice_of: &[Option<EventTime>],
        dropped: u64,
        key_rows: &arrow::row::Rows,
        inputs: &[CallInput],
        first_seq: u64,
    ) -> Result<()> {
        let n = slice_of.len();
        match distinct {
            [] => Ok(()),
            [only] if dropped == 0 => {
                self.update_slice(*only, key_rows, None, inputs, None, first_seq)
            }
            few if few.len() <= MAX_MASKED_SLICES => {
                for &s in few {
                    let mask: BooleanArray = slice_of.iter().map(|x| Some(*x == Some(s))).collect();
                    self.update_slice(s, key_rows, None, inputs, Some(&mask), first_seq)?;
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
                    self.update_slice(s, key_rows, Some(&idx), inputs, None, seq)?;
                }
                Ok(())
            }
        }
    }
}
