//! The keyed SESSION window aggregate.
//!
//! Each row opens the window `[ts, ts + gap)`; windows of one key that
//! overlap or touch merge into one session (Flink's rule). A session fires
//! when the watermark reaches its end - 1 and is then forgotten. A row is
//! late when it would open a new session that has already ended by the
//! watermark; a row that falls into, or bridges, open sessions is never
//! late. Sessions of all keys share one set of accumulators; a session is a
//! group index, and indices of fired sessions are reused. With
//! `late_rows`, late rows are not only counted but reported in the output
//! (see [`crate::ops::late::with_late_columns`]), for a late-data table.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{Schema, SchemaRef};
use runnel_state::{encode_time, TableId};

use crate::aggregate::GroupsAccumulator;
use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{
    self, decode_time_at, load_group, load_meta, save_group, save_meta, scan_owned, update_all,
    AggregateCall, BoundAggregates,
};
use crate::ops::window_agg::output_schema;
use crate::types::{event_time_millis, Barrier, EventTime};
use crate::window::WindowSpec;

/// What a session window aggregate computes.
#[derive(Debug, Clone)]
pub struct SessionAggregateSpec {
    /// Inactivity gap in milliseconds.
    pub gap: i64,
    /// The event-time column of the input.
    pub time_column: usize,
    /// `PARTITION BY` / GROUP BY columns of the input.
    pub key_columns: Vec<usize>,
    /// The aggregates.
    pub aggregates: Vec<AggregateCall>,
    /// Report late rows in the output (for a late-data table) instead of
    /// only counting them: the output then has
    /// [`crate::ops::late::with_late_columns`].
    pub late_rows: bool,
}

impl SessionAggregateSpec {
    /// The schema of its results (without the late-row columns).
    pub fn output_schema(&self, input: &Schema) -> Result<SchemaRef> {
        let aggs = BoundAggregates::new(self.aggregates.clone(), input)?;
        Ok(output_schema(input, &self.key_columns, aggs.fields()))
    }

    /// A factory for the subtasks of this operator.
    pub fn factory(self, input: SchemaRef) -> Result<OperatorFactory> {
        SessionAggregate::new(self.clone(), &input)?;
        Ok(Arc::new(move |_task: &TaskInfo| {
            Ok(Box::new(SessionAggregate::new(self.clone(), &input)?) as Box<dyn Operator>)
        }))
    }
}

#[derive(Debug, Clone, Copy)]
struct Session {
    start: EventTime,
    end: EventTime,
    group: u32,
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct SessionAggregate {
    spec: SessionAggregateSpec,
    aggs: BoundAggregates,
    encoder: KeyEncoder,
    schema: SchemaRef,
    /// With `late_rows`: the output with the late-row columns.
    marked: Option<SchemaRef>,
    accs: Vec<Box<dyn GroupsAccumulator>>,
    /// A one-group accumulator set used to move state between groups.
    scratch: Vec<Box<dyn GroupsAccumulator>>,
    /// Open sessions per key, sorted by start, never overlapping.
    sessions: HashMap<Box<[u8]>, Vec<Session>, ahash::RandomState>,
    /// (end, group) of every open session, to fire in end order.
    by_end: BTreeSet<(EventTime, u32)>,
    /// Key of every live group.
    key_of: HashMap<u32, Box<[u8]>>,
    free: Vec<u32>,
    next_group: u32,
    watermark: EventTime,
    seq: u64,
    table: Option<TableId>,
    /// The state key each group's session was written under at the last
    /// barrier (or restored from).
    stored: HashMap<u32, Vec<u8>>,
    /// Groups whose session changed since the last barrier: rows added,
    /// merged, fired or reused. Only these are written at a barrier.
    touched: HashSet<u32>,
}

impl SessionAggregate {
    /// Builds the operator for `input`.
    pub fn new(spec: SessionAggregateSpec, input: &Schema) -> Result<Self> {
        WindowSpec::Session { gap: spec.gap }.validate()?;
        if spec.time_column >= input.fields().len() {
            return Err(EngineError::Plan(format!(
                "time column {} is out of range",
                spec.time_column
            )));
        }
        let aggs = BoundAggregates::new(spec.aggregates.clone(), input)?;
        let encoder = KeyEncoder::new(input, &spec.key_columns)?;
        let schema = output_schema(input, &spec.key_columns, aggs.fields());
        let marked = spec
            .late_rows
            .then(|| crate::ops::late::with_late_columns(&schema));
        Ok(Self {
            marked,
            accs: aggs.accumulators()?,
            scratch: aggs.accumulators()?,
            spec,
            aggs,
            encoder,
            schema,
            sessions: HashMap::default(),
            by_end: BTreeSet::new(),
            key_of: HashMap::new(),
            free: Vec::new(),
            next_group: 0,
            watermark: EventTime::MIN,
            seq: 0,
            table: None,
            stored: HashMap::new(),
            touched: HashSet::new(),
        })
    }

    /// The output schema: keys, `window_start`, `window_end`, aggregates.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Moves group `src`'s state into group `dst` and empties `src`.
    fn merge_groups(&mut self, dst: u32, src: u32) -> Result<()> {
        let mut buf = Vec::new();
        for (acc, scratch) in self.accs.iter_mut().zip(self.scratch.iter_mut()) {
            buf.clear();
            acc.save(src, &mut buf)?;
            scratch.load(0, &buf)?;
            acc.merge(dst, scratch.as_ref(), 0)?;
            acc.reset(src);
        }
        Ok(())
    }
}

impl Operator for SessionAggregate {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/session_agg", ctx.task.operator_name))?;
        self.table = Some(table);
        let Some((watermark, seq)) = load_meta(ctx, table)? else {
            return Ok(());
        };
        self.watermark = watermark;
        self.seq = seq;
        for (_, ns, key, value) in scan_owned(ctx, table, 16)? {
            let start = decode_time_at(&ns, 0)?;
            let end = decode_time_at(&ns, 8)?;
            let group = self.next_group;
            self.next_group += 1;
            load_group(&mut self.accs, group, &value)?;
            self.stored.insert(group, agg::state_key(ctx, &key, &ns));
            let list = self.sessions.entry(key.clone().into()).or_default();
            let pos = list.partition_point(|s| s.start < start);
            list.insert(pos, Session { start, end, group });
            self.by_end.insert((end, group));
            self.key_of.insert(group, key.into());
        }
        Ok(())
    }

    /// Writes the sessions that changed since the last barrier: the entry
    /// a changed group was stored under goes, and a group that is still an
    /// open session is written under its current bounds.
    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self
            .table
            .ok_or_else(|| EngineError::Internal("session aggregate not opened".into()))?;
        let mut value = Vec::new();
        let mut touched: Vec<u32> = self.touched.drain().collect();
        touched.sort_unstable();
        for group in touched {
            if let Some(old) = self.stored.remove(&group) {
                ctx.state.delete(table, &old)?;
            }
            let Some(key) = self.key_of.get(&group) else {
                continue; // fired or merged into another session
            };
            let Some(session) = self
                .sessions
                .get(key)
                .and_then(|list| list.iter().find(|s| s.group == group))
            else {
                continue;
            };
            value.clear();
            save_group(&self.accs, group, &mut value)?;
            let mut ns = encode_time(session.start).to_vec();
            ns.extend_from_slice(&encode_time(session.end));
            let state_key = agg::state_key(ctx, key, &ns);
            ctx.state.put(table, &state_key, &value)?;
            self.stored.insert(group, state_key);
        }
        save_meta(ctx, table, self.watermark, self.seq)
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
        let gap = self.spec.gap;
        let mut groups = vec![0u32; n];
        let mut keep = vec![true; n];
        // Sessions absorbed by others in this batch: (into, from), in order.
        let mut merges: Vec<(u32, u32)> = Vec::new();
        let mut redirect: HashMap<u32, u32> = HashMap::new();
        let mut dropped = 0u64;
        // Groups freed in this batch are reused only after it, so that rows
        // assigned earlier in the batch never land in a recycled group.
        let mut freed_now: Vec<u32> = Vec::new();
        for i in 0..n {
            if times.is_null(i) {
                keep[i] = false;
                dropped += 1;
                continue;
            }
            let ts = times.value(i);
            let (start, end) = (ts, ts.saturating_add(gap));
            let key = key_rows.row(i);
            let list = self.sessions.entry(key.as_ref().into()).or_default();
            // Sessions that overlap or touch [start, end).
            let first = list.partition_point(|s| s.end < start);
            let last = list.partition_point(|s| s.start <= end);
            if first == last {
                if end.saturating_sub(1) <= self.watermark {
                    keep[i] = false;
                    dropped += 1;
                    if list.is_empty() {
                        // Do not keep an empty entry for a key that only sent late rows.
                        self.sessions.remove(key.as_ref());
                    }
                    continue;
                }
                let group = self.free.pop().unwrap_or_else(|| {
                    self.next_group += 1;
                    self.next_group - 1
                });
                list.insert(first, Session { start, end, group });
                self.by_end.insert((end, group));
                self.key_of.insert(group, key.as_ref().into());
                self.touched.insert(group);
                groups[i] = group;
                continue;
            }
            let absorbed: Vec<Session> = list.drain(first..last).collect();
            let keeper = absorbed[0];
            let mut merged = Session {
                start: start.min(keeper.start),
                end: end.max(keeper.end),
                group: keeper.group,
            };
            for s in &absorbed {
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                self.by_end.remove(&(s.end, s.group));
            }
            for s in &absorbed[1..] {
                self.touched.insert(s.group);
                merges.push((keeper.group, s.group));
                redirect.insert(s.group, keeper.group);
                self.key_of.remove(&s.group);
                freed_now.push(s.group);
            }
            list.insert(first, merged);
            self.by_end.insert((merged.end, merged.group));
            self.touched.insert(merged.group);
            groups[i] = merged.group;
        }
        if dropped > 0 {
            ctx.metrics.add_late(dropped);
            if let Some(marked) = &self.marked {
                let late: BooleanArray = keep.iter().map(|&k| Some(!k)).collect();
                out.collect(crate::ops::late::late_rows_marked(
                    marked,
                    &batch,
                    &late,
                    &times,
                    self.watermark,
                )?)?;
            }
        }
        for (into, from) in merges {
            self.merge_groups(into, from)?;
        }
        for g in groups.iter_mut() {
            while let Some(&to) = redirect.get(g) {
                *g = to;
            }
        }
        let first_seq = self.seq;
        self.seq += n as u64;
        if dropped == n as u64 {
            return Ok(());
        }
        let mask: Option<BooleanArray> = if dropped == 0 {
            None
        } else {
            Some(keep.iter().map(|&k| Some(k)).collect())
        };
        update_all(
            &mut self.accs,
            &inputs,
            &groups,
            mask.as_ref(),
            self.next_group as usize,
            first_seq,
        )?;
        self.free.extend(freed_now);
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
        let mut fired: Vec<(Box<[u8]>, Session)> = Vec::new();
        while let Some(&(end, group)) = self.by_end.first() {
            if end.saturating_sub(1) > watermark {
                break;
            }
            self.by_end.pop_first();
            let key = self.key_of.remove(&group).ok_or_else(|| {
                EngineError::Internal(format!("session group {group} has no key"))
            })?;
            let list = self
                .sessions
                .get_mut(&key)
                .ok_or_else(|| EngineError::Internal("session list missing".into()))?;
            let pos = list
                .iter()
                .position(|s| s.group == group)
                .ok_or_else(|| EngineError::Internal("session missing from its key".into()))?;
            let session = list.remove(pos);
            self.touched.insert(group);
            if list.is_empty() {
                self.sessions.remove(&key);
            }
            fired.push((key, session));
        }
        if fired.is_empty() {
            return Ok(());
        }
        let groups: Vec<u32> = fired.iter().map(|(_, s)| s.group).collect();
        let parser = self.encoder.converter().parser();
        let mut columns = self
            .encoder
            .decode(fired.iter().map(|(k, _)| parser.parse(k)))?;
        columns.push(Arc::new(TimestampMillisecondArray::from(
            fired.iter().map(|(_, s)| s.start).collect::<Vec<_>>(),
        )));
        columns.push(Arc::new(TimestampMillisecondArray::from(
            fired.iter().map(|(_, s)| s.end).collect::<Vec<_>>(),
        )));
        for acc in &self.accs {
            columns.push(acc.evaluate(&groups)?);
        }
        for acc in self.accs.iter_mut() {
            for &g in &groups {
                acc.reset(g);
            }
        }
        self.free.extend(groups);
        let results = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        match &self.marked {
            Some(marked) => out.collect(crate::ops::late::results_with_late_columns(
                marked, results,
            )?),
            None => out.collect(results),
        }
    }
}

impl SessionAggregate {
    /// Number of open sessions (for tests and metrics).
    pub fn open_sessions(&self) -> usize {
        self.by_end.len()
    }
}
