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
//!
//! Allowed lateness (`allowed_lateness` > 0): a fired session is kept
//! until the watermark passes its end by that much, and the output is
//! updating. A row that reaches a kept session (falls into it, extends it,
//! bridges it with another) corrects it as soon as the row arrives: a
//! session whose bounds stayed gets `-U` of its old result and `+U` of
//! its new one; one whose bounds changed or that merged into another gets
//! `-D` (its bounds are part of its row), and the session it became is
//! `+I`, at once if it has ended by the watermark, else when it fires. A
//! row whose own session ended more than the lateness before the
//! watermark is late. Whether a kept session fired is saved with it (a
//! byte before its accumulators, with allowed lateness only).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, TimestampMillisecondArray};
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
use crate::types::{event_time_millis, Barrier, EventTime, RowKind};
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
    /// Milliseconds a fired session is kept and corrected (see the module
    /// docs); 0: each session fires once and the output is append-only.
    pub allowed_lateness: i64,
}

impl SessionAggregateSpec {
    /// The schema of its results (without the late-row columns).
    pub fn output_schema(&self, input: &Schema) -> Result<SchemaRef> {
        let aggs = BoundAggregates::new(self.aggregates.clone(), input)?;
        let schema = output_schema(input, &self.key_columns, aggs.fields());
        Ok(match self.allowed_lateness > 0 {
            true => crate::types::with_row_kind(&schema),
            false => schema,
        })
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
    /// Emitted (allowed lateness: kept for corrections). Saved with the
    /// session: after a restore at another parallelism the watermark is
    /// the lowest of the old subtasks', which does not tell.
    fired: bool,
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
    /// Allowed lateness: (end - 1 + lateness, group) of every fired session
    /// still kept, to drop in that order.
    by_cleanup: BTreeSet<(EventTime, u32)>,
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
        if spec.allowed_lateness < 0 {
            return Err(EngineError::Plan(
                "the allowed lateness cannot be negative".into(),
            ));
        }
        let schema = spec.output_schema(input)?;
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
            by_cleanup: BTreeSet::new(),
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

impl SessionAggregate {
    /// Removes `group`'s session (of `key`) from the open and kept ones.
    fn forget(&mut self, key: &[u8], group: u32) -> Result<Session> {
        self.key_of.remove(&group);
        let list = self
            .sessions
            .get_mut(key)
            .ok_or_else(|| EngineError::Internal("session list missing".into()))?;
        let pos = list
            .iter()
            .position(|s| s.group == group)
            .ok_or_else(|| EngineError::Internal("session missing from its key".into()))?;
        let session = list.remove(pos);
        self.touched.insert(group);
        if list.is_empty() {
            self.sessions.remove(key);
        }
        Ok(session)
    }

    /// Allowed lateness: the rows that correct fired sessions after a
    /// batch. `before`: the fired sessions it changed, as they were, with
    /// their results `retracted`; `ended`: the groups of ended sessions it
    /// made or changed (followed through `redirect` when merged away).
    fn corrections(
        &self,
        before: Vec<(Box<[u8]>, Session)>,
        retracted: &[ArrayRef],
        ended: Vec<u32>,
        redirect: &HashMap<u32, u32>,
    ) -> Result<Rows> {
        let mut now: Vec<(Box<[u8]>, Session)> = Vec::new();
        for mut g in ended {
            while let Some(&to) = redirect.get(&g) {
                g = to;
            }
            if now.iter().any(|(_, s)| s.group == g) {
                continue;
            }
            let Some(key) = self.key_of.get(&g) else {
                continue;
            };
            let list = self.sessions.get(key);
            if let Some(s) = list.and_then(|l| l.iter().find(|s| s.group == g)) {
                if s.fired {
                    now.push((key.clone(), *s));
                }
            }
        }
        let current = self.results_of(&now)?;
        let mut rows = Vec::new();
        let mut paired = vec![false; now.len()];
        for (i, (key, old)) in before.into_iter().enumerate() {
            let same = now
                .iter()
                .position(|(_, s)| (s.group, s.start, s.end) == (old.group, old.start, old.end));
            match same {
                Some(j) => {
                    rows.push((key, old, RowKind::UpdateBefore, i));
                    rows.push((now[j].0.clone(), now[j].1, RowKind::UpdateAfter, j));
                    paired[j] = true;
                }
                None => rows.push((key, old, RowKind::Delete, i)),
            }
        }
        for (j, (key, s)) in now.into_iter().enumerate() {
            if !paired[j] {
                rows.push((key, s, RowKind::Insert, j));
            }
        }
        // No retractions: empty arrays, one per aggregate.
        let retracted = match retracted.is_empty() {
            true => self.results_of(&[])?,
            false => retracted.to_vec(),
        };
        Ok((rows, retracted, current))
    }

    /// Emits result rows: keys, bounds, aggregates (from the retracted
    /// values for `-U`/`-D`, the current ones otherwise) and, with allowed
    /// lateness, the row kinds.
    fn emit(&self, (rows, retracted, current): Rows, out: &mut dyn Collector) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let parser = self.encoder.converter().parser();
        let mut columns = self
            .encoder
            .decode(rows.iter().map(|(k, ..)| parser.parse(k)))?;
        columns.push(Arc::new(TimestampMillisecondArray::from(
            rows.iter().map(|(_, s, ..)| s.start).collect::<Vec<_>>(),
        )));
        columns.push(Arc::new(TimestampMillisecondArray::from(
            rows.iter().map(|(_, s, ..)| s.end).collect::<Vec<_>>(),
        )));
        let picks: Vec<(usize, usize)> = rows
            .iter()
            .map(|(_, _, kind, i)| (usize::from(kind.is_addition()), *i))
            .collect();
        for (old, new) in retracted.iter().zip(&current) {
            columns.push(arrow::compute::interleave(
                &[old.as_ref(), new.as_ref()],
                &picks,
            )?);
        }
        if self.spec.allowed_lateness > 0 {
            let kinds: Vec<RowKind> = rows.iter().map(|(_, _, k, _)| *k).collect();
            columns.push(crate::types::row_kind_array(&kinds));
        }
        let results = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        match &self.marked {
            Some(marked) => out.collect(crate::ops::late::results_with_late_columns(
                marked, results,
            )?),
            None => out.collect(results),
        }
    }

    /// The aggregates' current results of `sessions`, one array per
    /// aggregate.
    fn results_of(&self, sessions: &[(Box<[u8]>, Session)]) -> Result<Vec<ArrayRef>> {
        let groups: Vec<u32> = sessions.iter().map(|(_, s)| s.group).collect();
        self.accs.iter().map(|acc| acc.evaluate(&groups)).collect()
    }

    /// Adds a batch's kept rows to their sessions' accumulators: row `i`
    /// to group `groups[i]`.
    fn feed(
        &mut self,
        inputs: &[crate::ops::agg::CallInput],
        groups: &[u32],
        keep: &[bool],
    ) -> Result<()> {
        let n = keep.len();
        let first_seq = self.seq;
        self.seq += n as u64;
        let kept = keep.iter().filter(|&&k| k).count();
        if kept == 0 {
            return Ok(());
        }
        let mask: Option<BooleanArray> =
            (kept < n).then(|| keep.iter().map(|&k| Some(k)).collect());
        update_all(
            &mut self.accs,
            inputs,
            groups,
            mask.as_ref(),
            self.next_group as usize,
            first_seq,
        )
    }

    /// With a late-data table: the rows of `batch` not kept, as late rows.
    fn report_late(
        &self,
        keep: &[bool],
        batch: &RecordBatch,
        times: &arrow::array::Int64Array,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let Some(marked) = &self.marked else {
            return Ok(());
        };
        let late: BooleanArray = keep.iter().map(|&k| Some(!k)).collect();
        out.collect(crate::ops::late::late_rows_marked(
            marked,
            batch,
            &late,
            times,
            self.watermark,
        )?)
    }

    /// Puts `s` where it waits (see [`schedule`]).
    fn schedule(&mut self, s: Session) {
        let lateness = self.spec.allowed_lateness;
        schedule(&mut self.by_end, &mut self.by_cleanup, s, lateness);
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
            // With allowed lateness a byte says whether it fired.
            let (fired, value) = match self.spec.allowed_lateness > 0 {
                true => match value.split_first() {
                    Some((&flag, rest)) => (flag == 1, rest),
                    None => return Err(EngineError::Internal("empty session entry".into())),
                },
                false => (false, value.as_slice()),
            };
            load_group(&mut self.accs, group, value)?;
            self.stored.insert(group, agg::state_key(ctx, &key, &ns));
            let list = self.sessions.entry(key.clone().into()).or_default();
            let pos = list.partition_point(|s| s.start < start);
            let session = Session {
                start,
                end,
                group,
                fired,
            };
            list.insert(pos, session);
            self.schedule(session);
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
            if self.spec.allowed_lateness > 0 {
                value.push(u8::from(session.fired));
            }
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
        let (watermark, lateness) = (self.watermark, self.spec.allowed_lateness);
        let mut groups = vec![0u32; n];
        let mut keep = vec![true; n];
        // Sessions absorbed by others in this batch: (into, from), in order.
        let mut merges: Vec<(u32, u32)> = Vec::new();
        let mut redirect: HashMap<u32, u32> = HashMap::new();
        let mut dropped = 0u64;
        // Groups freed in this batch are reused only after it, so that rows
        // assigned earlier in the batch never land in a recycled group.
        let mut freed_now: Vec<u32> = Vec::new();
        // Allowed lateness: fired sessions this batch changes, as they were
        // before it (their emitted results to retract); ended sessions this
        // batch made or changed, marked fired now and emitted after it.
        let mut before: Vec<(Box<[u8]>, Session)> = Vec::new();
        let mut ended: Vec<u32> = Vec::new();
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
                if end.saturating_sub(1).saturating_add(lateness) <= watermark {
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
                let fired = ended_by(end, watermark);
                let session = Session {
                    start,
                    end,
                    group,
                    fired,
                };
                list.insert(first, session);
                let (by_end, by_cleanup) = (&mut self.by_end, &mut self.by_cleanup);
                schedule(by_end, by_cleanup, session, lateness);
                if fired {
                    ended.push(group);
                }
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
                fired: false,
            };
            for s in &absorbed {
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                self.by_end.remove(&(s.end, s.group));
                self.by_cleanup.remove(&(cleanup_at(s, lateness), s.group));
                // Emitted before this batch: its result is retracted (once).
                let emitted = s.fired && !ended.contains(&s.group);
                if emitted && !before.iter().any(|(_, b)| b.group == s.group) {
                    before.push((key.as_ref().into(), *s));
                }
            }
            for s in &absorbed[1..] {
                self.touched.insert(s.group);
                merges.push((keeper.group, s.group));
                redirect.insert(s.group, keeper.group);
                self.key_of.remove(&s.group);
                freed_now.push(s.group);
            }
            merged.fired = ended_by(merged.end, watermark);
            list.insert(first, merged);
            let (by_end, by_cleanup) = (&mut self.by_end, &mut self.by_cleanup);
            schedule(by_end, by_cleanup, merged, lateness);
            if merged.fired && !ended.contains(&merged.group) {
                ended.push(merged.group);
            }
            self.touched.insert(merged.group);
            groups[i] = merged.group;
        }
        if dropped > 0 {
            ctx.metrics.add_late(dropped);
            self.report_late(&keep, &batch, &times, out)?;
        }
        // The results the corrections retract, before anything changes.
        let retracted = match before.is_empty() {
            true => Vec::new(),
            false => self.results_of(&before)?,
        };
        for (into, from) in merges {
            self.merge_groups(into, from)?;
        }
        for g in groups.iter_mut() {
            while let Some(&to) = redirect.get(g) {
                *g = to;
            }
        }
        self.feed(&inputs, &groups, &keep)?;
        self.free.extend(freed_now);
        if before.is_empty() && ended.is_empty() {
            return Ok(());
        }
        let corrections = self.corrections(before, &retracted, ended, &redirect)?;
        self.emit(corrections, out)
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
        let lateness = self.spec.allowed_lateness;
        let mut fired: Vec<(Box<[u8]>, Session)> = Vec::new();
        // Groups whose sessions are forgotten: reset and reused after this.
        let mut gone: Vec<u32> = Vec::new();
        while let Some(&(end, group)) = self.by_end.first() {
            if end.saturating_sub(1) > watermark {
                break;
            }
            self.by_end.pop_first();
            let key = self.key_of.get(&group).cloned().ok_or_else(|| {
                EngineError::Internal(format!("session group {group} has no key"))
            })?;
            let session = match lateness > 0 {
                // Kept for corrections until the lateness has passed.
                true => {
                    let list = self.sessions.get_mut(&key);
                    let found = list.and_then(|l| l.iter_mut().find(|s| s.group == group));
                    let session = found.ok_or_else(|| {
                        EngineError::Internal("session missing from its key".into())
                    })?;
                    session.fired = true;
                    let session = *session;
                    self.touched.insert(group);
                    self.by_cleanup
                        .insert((cleanup_at(&session, lateness), group));
                    session
                }
                false => {
                    gone.push(group);
                    self.forget(&key, group)?
                }
            };
            fired.push((key, session));
        }
        // Fired sessions whose lateness has passed.
        while let Some(&(at, group)) = self.by_cleanup.first() {
            if at > watermark {
                break;
            }
            self.by_cleanup.pop_first();
            let key = self.key_of.get(&group).cloned().ok_or_else(|| {
                EngineError::Internal(format!("session group {group} has no key"))
            })?;
            self.forget(&key, group)?;
            gone.push(group);
        }
        let mut results = Ok(());
        if !fired.is_empty() {
            let rows: Vec<(Box<[u8]>, Session, RowKind, usize)> = fired
                .into_iter()
                .enumerate()
                .map(|(i, (k, s))| (k, s, RowKind::Insert, i))
                .collect();
            let groups: Vec<u32> = rows.iter().map(|(_, s, ..)| s.group).collect();
            let values: Vec<ArrayRef> = self
                .accs
                .iter()
                .map(|acc| acc.evaluate(&groups))
                .collect::<Result<_>>()?;
            results = self.emit((rows, values.clone(), values), out);
        }
        for acc in self.accs.iter_mut() {
            for &g in &gone {
                acc.reset(g);
            }
        }
        self.free.extend(gone);
        results
    }
}

/// Puts `s` where it waits: to fire (open), or to be dropped (fired,
/// kept for the allowed lateness).
fn schedule(
    by_end: &mut BTreeSet<(EventTime, u32)>,
    by_cleanup: &mut BTreeSet<(EventTime, u32)>,
    s: Session,
    lateness: i64,
) {
    if s.fired {
        by_cleanup.insert((cleanup_at(&s, lateness), s.group));
    } else {
        by_end.insert((s.end, s.group));
    }
}

/// True when the watermark has reached the last millisecond of a session
/// ending at `end`: it fires (now, if it has not).
fn ended_by(end: EventTime, watermark: EventTime) -> bool {
    end.saturating_sub(1) <= watermark
}

/// The watermark at which a fired session is dropped.
fn cleanup_at(s: &Session, lateness: i64) -> EventTime {
    s.end.saturating_sub(1).saturating_add(lateness)
}

/// Output rows to emit: (key, session, kind, index into the values), the
/// retracted values and the current values (one array per aggregate).
type Rows = (
    Vec<(Box<[u8]>, Session, RowKind, usize)>,
    Vec<ArrayRef>,
    Vec<ArrayRef>,
);

impl SessionAggregate {
    /// Number of open sessions (for tests and metrics).
    pub fn open_sessions(&self) -> usize {
        self.by_end.len()
    }
}
