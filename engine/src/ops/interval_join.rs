//! The interval join: two append-only streams joined on equal keys where
//! the left row's event time lies within bounds of the right row's,
//! `l.ts BETWEEN r.ts - INTERVAL '5' MINUTE AND r.ts + INTERVAL '1' MINUTE`
//! (`lower <= l.ts - r.ts <= upper`), INNER, LEFT, RIGHT or FULL.
//!
//! Each side keeps its rows by key with their times. A row that arrives
//! joins the other side's rows of its key whose time is within the bounds
//! and that pass the other ON conditions, and is kept. The watermark frees
//! rows: a left row at `t` can meet right rows up to `t - lower`, so once
//! the watermark reaches that time no right row that matches it can come
//! (a row at or below the watermark is late); a right row at `s` likewise
//! at `s + upper`. An outer side's row that leaves without having matched
//! is emitted then, padded with NULLs. Nothing is ever retracted: the
//! output is append-only for every kind. Rows at or below the watermark
//! when they arrive are late: dropped and counted. NULL keys and NULL
//! times match nothing (an outer row with either is emitted padded at
//! once). The watermark after the join is held back by the interval
//! (`watermark_delay`), so both sides' times stay event-time attributes.
//!
//! State: one entry per side and key, `key group | side | key` to its rows
//! (time, matched flag, row bytes); a barrier writes the keys changed
//! since the last one, with the watermark in the meta entry. Restoring
//! reads all of them back: what is kept is bounded by the interval.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{load_meta, save_meta, scan_owned, state_key, EntryReader};
use crate::ops::changelog_join::{pair_fields, pairs_batch, passing, row_converter, Pending};
use crate::ops::late::with_marked;
use crate::ops::window_join::{check_condition, check_join_inputs, null_key, OUTPUT_BATCH_ROWS};
use crate::ops::JoinKind;
use crate::types::{event_time_millis, Barrier, EventTime, RowKind};

/// What an interval join joins on.
#[derive(Debug, Clone)]
pub struct IntervalJoinSpec {
    /// Equality keys of the left input.
    pub left_keys: Vec<usize>,
    /// Equality keys of the right input.
    pub right_keys: Vec<usize>,
    /// The event-time columns of the left and right inputs.
    pub times: [usize; 2],
    /// `lower <= l.ts - r.ts <= upper`, in milliseconds.
    pub lower: i64,
    /// See `lower`.
    pub upper: i64,
    /// Other ON conditions, over the left columns followed by the right.
    pub residual: Option<Expr>,
    /// INNER, LEFT, RIGHT or FULL.
    pub kind: JoinKind,
    /// Report late rows in the output (for a late-data table) instead of
    /// only counting them: the output then has
    /// [`crate::ops::late::with_late_columns`].
    pub late_rows: bool,
}

impl IntervalJoinSpec {
    /// A factory for the subtasks; checks the spec against the inputs.
    pub fn factory(self, left: SchemaRef, right: SchemaRef) -> Result<OperatorFactory> {
        IntervalJoin::new(self.clone(), &left, &right)?;
        Ok(Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(IntervalJoin::new(self.clone(), &left, &right)?) as Box<dyn Operator>)
        }))
    }
}

/// One kept row.
#[derive(Debug, Clone)]
struct Held {
    ts: i64,
    matched: bool,
    row: Box<[u8]>,
}

type KeyMap = HashMap<Box<[u8]>, Vec<Held>, ahash::RandomState>;

/// The operator; see the module docs.
#[derive(Debug)]
pub struct IntervalJoin {
    spec: IntervalJoinSpec,
    outer: [bool; 2],
    encoders: [KeyEncoder; 2],
    converters: [RowConverter; 2],
    widths: [usize; 2],
    pair_schema: SchemaRef,
    schema: SchemaRef,
    kept: [KeyMap; 2],
    /// Per side: the time a row leaves to the keys with rows leaving then.
    leaving: [BTreeMap<i64, Vec<Box<[u8]>>>; 2],
    dirty: [HashSet<Box<[u8]>, ahash::RandomState>; 2],
    watermark: EventTime,
    table: Option<TableId>,
    /// With `late_rows`: the output with the late-row columns.
    marked: Option<SchemaRef>,
}

impl IntervalJoin {
    /// Builds the join of `left` and `right`.
    pub fn new(spec: IntervalJoinSpec, left: &SchemaRef, right: &SchemaRef) -> Result<Self> {
        check_join_inputs(
            "an interval join",
            left,
            right,
            &spec.left_keys,
            &spec.right_keys,
        )?;
        if spec.lower > spec.upper {
            return Err(EngineError::Plan(format!(
                "the time bounds of an interval join are empty: the left time must be at least \
                 {} ms and at most {} ms after the right one",
                spec.lower, spec.upper
            )));
        }
        let outer = [
            matches!(spec.kind, JoinKind::Left | JoinKind::Full),
            matches!(spec.kind, JoinKind::Right | JoinKind::Full),
        ];
        let pair_schema = pair_fields(left, right, [outer[1], outer[0]]);
        check_condition(spec.residual.as_ref(), &pair_schema)?;
        Ok(Self {
            marked: spec
                .late_rows
                .then(|| crate::ops::late::with_late_columns(&pair_schema)),
            outer,
            encoders: [
                KeyEncoder::new(left, &spec.left_keys)?,
                KeyEncoder::new(right, &spec.right_keys)?,
            ],
            converters: [row_converter(left)?, row_converter(right)?],
            widths: [left.fields().len(), right.fields().len()],
            schema: Arc::clone(&pair_schema),
            pair_schema,
            kept: [KeyMap::default(), KeyMap::default()],
            leaving: [BTreeMap::new(), BTreeMap::new()],
            dirty: Default::default(),
            watermark: EventTime::MIN,
            table: None,
            spec,
        })
    }

    /// The output schema: left columns, then right columns.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// When a row of `side` at `ts` can meet nothing more.
    fn leaves_at(&self, side: usize, ts: i64) -> i64 {
        if side == 0 {
            ts.saturating_sub(self.spec.lower)
        } else {
            ts.saturating_add(self.spec.upper)
        }
    }

    /// The times of the other side's rows that a row of `side` at `ts`
    /// meets.
    fn range(&self, side: usize, ts: i64) -> (i64, i64) {
        if side == 0 {
            (
                ts.saturating_sub(self.spec.upper),
                ts.saturating_sub(self.spec.lower),
            )
        } else {
            (
                ts.saturating_add(self.spec.lower),
                ts.saturating_add(self.spec.upper),
            )
        }
    }

    fn keep(&mut self, side: usize, key: &[u8], held: Held) {
        let at = self.leaves_at(side, held.ts);
        self.leaving[side].entry(at).or_default().push(key.into());
        self.kept[side].entry(key.into()).or_default().push(held);
        self.dirty[side].insert(key.into());
    }

    /// Joins one arrived row; keeps it.
    fn arrive(
        &mut self,
        side: usize,
        (key, row, ts): (&[u8], &[u8], i64),
        out: &mut Pending,
    ) -> Result<()> {
        let other = 1 - side;
        let (from, to) = self.range(side, ts);
        let candidates: Vec<usize> = self.kept[other].get(key).map_or(Vec::new(), |rows| {
            (0..rows.len())
                .filter(|&i| (from..=to).contains(&rows[i].ts))
                .collect()
        });
        let matches: Vec<usize> = match (&self.spec.residual, candidates.is_empty()) {
            (Some(cond), false) => {
                let rows = &self.kept[other][key];
                let theirs: Vec<&[u8]> = candidates.iter().map(|&i| &*rows[i].row).collect();
                let keep = passing(
                    &self.converters,
                    &self.pair_schema,
                    cond,
                    side,
                    row,
                    &theirs,
                )?;
                candidates
                    .into_iter()
                    .zip(keep)
                    .filter_map(|(i, k)| k.then_some(i))
                    .collect()
            }
            _ => candidates,
        };
        if let Some(rows) = self.kept[other].get_mut(key) {
            for &m in &matches {
                let r = &mut rows[m];
                out.push(side, Some(row), Some(&r.row), RowKind::Insert);
                if !r.matched {
                    r.matched = true;
                    self.dirty[other].insert(key.into());
                }
            }
        }
        let held = Held {
            ts,
            matched: !matches.is_empty(),
            row: row.into(),
        };
        self.keep(side, key, held);
        Ok(())
    }

    /// Frees what the watermark `wm` (or the end of input) made final:
    /// rows that can meet nothing more; unmatched rows of an outer side
    /// are emitted padded.
    fn advance(&mut self, wm: EventTime, out: &mut dyn Collector) -> Result<()> {
        let mut pending = Pending::default();
        for side in 0..2 {
            while let Some(entry) = self.leaving[side].first_entry() {
                if *entry.key() > wm {
                    break;
                }
                let keys = entry.remove();
                for key in keys {
                    let Some(rows) = self.kept[side].get_mut(&key) else {
                        continue;
                    };
                    let spec = &self.spec;
                    let leaves = |ts: i64| {
                        if side == 0 {
                            ts.saturating_sub(spec.lower)
                        } else {
                            ts.saturating_add(spec.upper)
                        }
                    };
                    let mut kept = Vec::with_capacity(rows.len());
                    for r in rows.drain(..) {
                        if leaves(r.ts) > wm {
                            kept.push(r);
                        } else if self.outer[side] && !r.matched {
                            pending.push(side, Some(&r.row), None, RowKind::Insert);
                        }
                    }
                    if kept.is_empty() {
                        self.kept[side].remove(&key);
                    } else {
                        *rows = kept;
                    }
                    self.dirty[side].insert(key);
                    if pending.len() >= OUTPUT_BATCH_ROWS {
                        self.emit(&mut pending, out)?;
                    }
                }
            }
        }
        self.emit(&mut pending, out)
    }

    fn emit(&self, pending: &mut Pending, out: &mut dyn Collector) -> Result<()> {
        if pending.len() == 0 {
            return Ok(());
        }
        let batch = pairs_batch(
            &self.converters,
            self.widths,
            &self.pair_schema,
            &self.schema,
            pending,
        )?;
        *pending = Pending::default();
        out.collect(batch)
    }

    /// A batch of input `input` (0 left, 1 right): each row meets the kept
    /// rows of the other side within the bounds and is kept itself.
    fn process(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if input > 1 {
            return Err(EngineError::Internal(format!(
                "a join has two inputs, got input {input}"
            )));
        }
        let side = input;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = event_time_millis(batch.column(self.spec.times[side]))?;
        let keys = self.encoders[side].encode(&batch)?;
        let rows = self.converters[side].convert_columns(batch.columns())?;
        let key_columns = if side == 0 {
            &self.spec.left_keys
        } else {
            &self.spec.right_keys
        };
        let nulls: Vec<bool> = (0..batch.num_rows())
            .map(|i| null_key(&batch, key_columns, i) || times.is_null(i))
            .collect();
        let mut pending = Pending::default();
        let mut late: Vec<usize> = Vec::new();
        for (i, null) in nulls.into_iter().enumerate() {
            let row = rows.row(i);
            if null {
                if self.outer[side] {
                    pending.push(side, Some(row.as_ref()), None, RowKind::Insert);
                } else if times.is_null(i) {
                    // No time, so no interval: dropped as a window drops
                    // it, and counted (reported) as late.
                    late.push(i);
                }
                continue;
            }
            let ts = times.value(i);
            if ts <= self.watermark {
                late.push(i);
                continue;
            }
            self.arrive(side, (keys.row(i).as_ref(), row.as_ref(), ts), &mut pending)?;
            if pending.len() >= OUTPUT_BATCH_ROWS {
                self.emit(&mut pending, out)?;
            }
        }
        self.emit(&mut pending, out)?;
        if !late.is_empty() {
            ctx.metrics.add_late(late.len() as u64);
            if let Some(marked) = &self.marked {
                let mut mask = vec![false; batch.num_rows()];
                for &i in &late {
                    mask[i] = true;
                }
                let mask: BooleanArray = mask.into_iter().map(Some).collect();
                out.collect(crate::ops::late::late_rows_marked(
                    marked,
                    &batch,
                    &mask,
                    &times,
                    self.watermark,
                )?)?;
            }
        }
        Ok(())
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("interval join not opened".into()))
    }
}

fn encode(rows: &[Held]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + rows.iter().map(|r| r.row.len() + 13).sum::<usize>());
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for r in rows {
        out.extend_from_slice(&r.ts.to_le_bytes());
        out.push(u8::from(r.matched));
        out.extend_from_slice(&(r.row.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.row);
    }
    out
}

fn decode(b: &[u8]) -> Result<Vec<Held>> {
    let mut r = EntryReader::new(b, "interval join");
    let n = r.u32()? as usize;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        rows.push(Held {
            ts: r.i64()?,
            matched: r.u8()? != 0,
            row: r.sized()?.into(),
        });
    }
    Ok(rows)
}

impl Operator for IntervalJoin {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/interval_join", ctx.task.operator_name))?;
        self.table = Some(table);
        let Some((wm, _)) = load_meta(ctx, table)? else {
            return Ok(());
        };
        self.watermark = wm;
        for (_, ns, key, value) in scan_owned(ctx, table, 1)? {
            let side = usize::from(ns.first().copied().unwrap_or(0)).min(1);
            for held in decode(&value)? {
                let at = self.leaves_at(side, held.ts);
                self.leaving[side]
                    .entry(at)
                    .or_default()
                    .push(key.clone().into());
                self.kept[side]
                    .entry(key.clone().into())
                    .or_default()
                    .push(held);
            }
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let marked = self.marked.clone();
        with_marked(marked, out, |out| self.process(input, batch, ctx, out))
    }

    /// A pair made when its right row arrives (after the watermark) has a
    /// left time down to `watermark + lower`; one made when its left row
    /// arrives, a right time down to `watermark - upper`. Holding the
    /// watermark back by the larger keeps either side's time an event-time
    /// attribute after the join (a window may follow), as in Flink.
    fn watermark_delay(&self) -> EventTime {
        self.spec.lower.saturating_neg().max(self.spec.upper).max(0)
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
        let marked = self.marked.clone();
        with_marked(marked, out, |out| self.advance(watermark, out))
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext<'_>, out: &mut dyn Collector) -> Result<()> {
        let marked = self.marked.clone();
        with_marked(marked, out, |out| self.advance(EventTime::MAX, out))
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        for side in 0..2 {
            for key in std::mem::take(&mut self.dirty[side]) {
                let k = state_key(ctx, &key, &[side as u8]);
                match self.kept[side].get(&key) {
                    Some(rows) if !rows.is_empty() => {
                        ctx.state.put_owned(table, k, encode(rows))?
                    }
                    _ => ctx.state.delete(table, &k)?,
                }
            }
        }
        save_meta(ctx, table, self.watermark, 0)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use proptest::prelude::*;

    use super::*;
    use crate::expr::{binary, col, BinaryOp};
    use crate::testing::OperatorHarness;

    /// (key, time, value)
    type Row = (Option<i64>, i64, i64);

    fn schema(v: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("ts", DataType::Int64, false),
            Field::new(v, DataType::Int64, false),
        ]))
    }

    fn batch(v: &str, rows: &[Row]) -> RecordBatch {
        RecordBatch::try_new(
            schema(v),
            vec![
                Arc::new(Int64Array::from(
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

    /// `lower <= l.ts - r.ts <= upper`
    fn op(kind: JoinKind, lower: i64, upper: i64, residual: Option<Expr>) -> Box<dyn Operator> {
        let spec = IntervalJoinSpec {
            left_keys: vec![0],
            right_keys: vec![0],
            times: [1, 1],
            lower,
            upper,
            residual,
            kind,
            late_rows: false,
        };
        Box::new(IntervalJoin::new(spec, &schema("v"), &schema("w")).expect("valid"))
    }

    /// `v/w` pairs: "10/20", "10/-" for padded.
    fn pairs(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            let v = b.column(2).as_primitive::<Int64Type>();
            let w = b.column(5).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let cell = |a: &arrow::array::Int64Array| {
                    if a.is_null(i) {
                        "-".to_string()
                    } else {
                        a.value(i).to_string()
                    }
                };
                out.push(format!("{}/{}", cell(v), cell(w)));
            }
        }
        out
    }

    #[test]
    fn rows_meet_within_the_bounds_only() -> Result<()> {
        // l.ts BETWEEN r.ts - 5 AND r.ts + 1
        let mut h = OperatorHarness::new(op(JoinKind::Inner, -5, 1, None))?;
        h.batch_on(1, batch("w", &[(Some(1), 100, 1)]))?;
        h.batch_on(
            0,
            batch(
                "v",
                &[
                    (Some(1), 94, 10),  // 6 before: out
                    (Some(1), 95, 11),  // 5 before: in
                    (Some(1), 101, 12), // 1 after: in
                    (Some(1), 102, 13), // 2 after: out
                    (Some(2), 100, 14), // other key
                ],
            ),
        )?;
        assert_eq!(pairs(&h.take_output()), ["11/1", "12/1"]);
        // A right row arriving later meets the kept left rows from 92 to
        // 98: those at 94 and 95.
        h.batch_on(1, batch("w", &[(Some(1), 97, 2)]))?;
        let mut got = pairs(&h.take_output());
        got.sort();
        assert_eq!(got, ["10/2", "11/2"]);
        Ok(())
    }

    #[test]
    fn the_watermark_frees_rows_and_pads_unmatched_outer_rows_then() -> Result<()> {
        let mut h = OperatorHarness::new(op(JoinKind::Full, -5, 1, None))?;
        h.batch_on(0, batch("v", &[(Some(1), 100, 10), (Some(2), 100, 20)]))?;
        h.batch_on(1, batch("w", &[(Some(1), 99, 1), (Some(3), 100, 3)]))?;
        assert_eq!(pairs(&h.take_output()), ["10/1"]);
        // Left rows at 100 can meet right rows up to 105; right rows at
        // 99/100 left rows up to 100/101.
        h.watermark(100)?;
        assert!(pairs(&h.take_output()).is_empty());
        h.watermark(101)?;
        assert_eq!(pairs(&h.take_output()), ["-/3"]);
        assert_eq!(h.state_entries_after_checkpoint(), 2 + 1);
        h.watermark(105)?;
        assert_eq!(pairs(&h.take_output()), ["20/-"]);
        // Everything left: only the meta entry remains.
        assert_eq!(h.state_entries_after_checkpoint(), 1);
        // A late row is dropped and counted.
        h.batch_on(0, batch("v", &[(Some(1), 105, 30)]))?;
        assert!(h.take_output().is_empty());
        assert_eq!(
            h.metrics()
                .late_rows_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        Ok(())
    }

    #[test]
    fn other_conditions_filter_pairs_and_state_survives_a_restore() -> Result<()> {
        let cond = || Some(binary(col(2), BinaryOp::Gt, col(5)));
        let mut h = OperatorHarness::new(op(JoinKind::Left, 0, 10, cond()))?;
        h.batch_on(0, batch("v", &[(Some(1), 100, 5)]))?;
        let snapshot = h.checkpoint(1)?;
        let mut r = OperatorHarness::restored(op(JoinKind::Left, 0, 10, cond()), &snapshot)?;
        r.batch_on(1, batch("w", &[(Some(1), 95, 7), (Some(1), 92, 3)]))?;
        assert_eq!(pairs(&r.take_output()), ["5/3"]);
        r.end()?;
        assert!(pairs(&r.take_output()).is_empty(), "the left row matched");
        Ok(())
    }

    /// With `late_rows`, a late row comes out of the join itself (results
    /// NULL, the row as JSON, the watermark, its time) next to the pairs
    /// (late columns NULL), and the two operators behind part them.
    #[test]
    fn late_rows_are_reported_in_the_output_and_parted_behind() -> Result<()> {
        use crate::ops::late::{late_table_schema, LateOfMarked, OnTimeOfMarked};
        let spec = IntervalJoinSpec {
            left_keys: vec![0],
            right_keys: vec![0],
            times: [1, 1],
            lower: -5,
            upper: 1,
            residual: None,
            kind: JoinKind::Inner,
            late_rows: true,
        };
        let join = IntervalJoin::new(spec, &schema("v"), &schema("w"))?;
        let results = join.schema();
        let mut h = OperatorHarness::new(Box::new(join))?;
        h.batch_on(1, batch("w", &[(Some(1), 100, 1)]))?;
        h.batch_on(0, batch("v", &[(Some(1), 101, 10)]))?;
        h.watermark(105)?;
        h.batch_on(0, batch("v", &[(Some(1), 104, 30), (Some(1), 106, 31)]))?;
        let out = h.take_output();
        assert!(out
            .iter()
            .all(|b| b.num_columns() == results.fields().len() + 3));
        let task = TaskInfo {
            operator_name: "part".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            checkpointing: false,
            memory_budget: None,
        };
        let mut on_time =
            OperatorHarness::new(OnTimeOfMarked::factory(Arc::clone(&results))(&task)?)?;
        let mut late = OperatorHarness::new(LateOfMarked::factory("interval join".into())(&task)?)?;
        for b in &out {
            on_time.batch_on(0, b.clone())?;
            late.batch_on(0, b.clone())?;
        }
        let pairs_out = on_time.take_output();
        assert!(pairs_out.iter().all(|b| b.schema() == results));
        assert_eq!(pairs(&pairs_out), ["10/1"]);
        let late_out = late.take_output();
        assert_eq!(late_out.len(), 1);
        let l = &late_out[0];
        assert_eq!(l.schema(), late_table_schema());
        assert_eq!(l.num_rows(), 1, "106 is after the watermark");
        assert_eq!(l.column(0).as_string::<i32>().value(0), "interval join");
        let wm = l
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let at = l
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!((wm.value(0), at.value(0)), (105, 104));
        assert_eq!(
            l.column(3).as_string::<i32>().value(0),
            r#"{"k":1,"ts":104,"v":30}"#
        );
        assert_eq!(
            h.metrics()
                .late_rows_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        Ok(())
    }

    impl OperatorHarness {
        fn state_entries_after_checkpoint(&mut self) -> usize {
            self.checkpoint(7).expect("checkpoint");
            self.state_entries()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Random rows on both sides with watermarks between them (rows
        /// never late): the output equals the nested-loop interval join,
        /// padded rows included, for every join kind.
        #[test]
        fn the_output_equals_a_nested_loop_join(
            steps in prop::collection::vec((0usize..2, 0i64..3, 0i64..20), 1..40),
            lower in -5i64..3,
            width in 0i64..6,
            kind in prop_oneof![
                Just(JoinKind::Inner),
                Just(JoinKind::Left),
                Just(JoinKind::Right),
                Just(JoinKind::Full)
            ],
        ) {
            let upper = lower + width;
            let mut h = OperatorHarness::new(op(kind, lower, upper, None)).expect("opens");
            // Times only grow per step by construction: base + offset.
            let mut sides: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
            let mut got = Vec::new();
            for (n, (side, key, offset)) in steps.iter().enumerate() {
                let ts = 1000 + n as i64 * 3 + offset;
                let row = (Some(*key), ts, n as i64);
                sides[*side].push(row);
                let name = if *side == 0 { "v" } else { "w" };
                h.batch_on(*side, batch(name, &[row])).expect("processes");
                // Watermarks trail far enough behind that no row is late.
                h.watermark(1000 + n as i64 * 3 - 40).expect("watermark");
                got.extend(pairs(&h.take_output()));
            }
            h.end().expect("ends");
            got.extend(pairs(&h.take_output()));
            got.sort();
            let mut want = Vec::new();
            let meets = |l: &Row, r: &Row| l.0 == r.0 && (lower..=upper).contains(&(l.1 - r.1));
            for l in &sides[0] {
                let mut any = false;
                for r in &sides[1] {
                    if meets(l, r) {
                        any = true;
                        want.push(format!("{}/{}", l.2, r.2));
                    }
                }
                if !any && matches!(kind, JoinKind::Left | JoinKind::Full) {
                    want.push(format!("{}/-", l.2));
                }
            }
            if matches!(kind, JoinKind::Right | JoinKind::Full) {
                for r in &sides[1] {
                    if !sides[0].iter().any(|l| meets(l, r)) {
                        want.push(format!("-/{}", r.2));
                    }
                }
            }
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
