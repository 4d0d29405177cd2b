//! The event-time temporal join: `FROM orders o JOIN rates FOR
//! SYSTEM_TIME AS OF o.order_time AS r ON o.currency = r.currency`, INNER
//! or LEFT. Each left row is joined with the version of the right table's
//! row for its key that was valid at the left row's time: the latest right
//! row (by the right side's event time) at or before it, unless that
//! version is a delete.
//!
//! The right side (the versioned table) is an updating stream (Debezium
//! changes, an upsert-kafka topic) or an append-only one whose rows
//! replace each other by key. The operator keeps, per key, its versions by
//! time (`-D` as a version that removes the row; `-U` is ignored, the
//! `+U` that follows carries the new version). Left rows wait until the
//! watermark reaches their time, so that every version up to it has
//! arrived, and are then joined in time order; a LEFT join emits an
//! unmatched row padded with NULLs. Once the watermark passes a version's
//! successor, the version can match nothing more and is dropped. Output
//! rows leave before the watermark that released them, so the output is
//! append-only and keeps the left side's event time.
//!
//! State: per side and key, `key group | side | key` to the key's waiting
//! left rows (side 0) or versions (side 1), written for the keys changed
//! since the last barrier, with the watermark in the meta entry; restoring
//! reads them all back (both are bounded by the watermark).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{load_meta, save_meta, scan_owned, state_key, EntryReader};
use crate::ops::changelog_join::{pair_fields, pairs_batch, passing, row_converter, Pending};
use crate::ops::window_join::{check_condition, null_key, OUTPUT_BATCH_ROWS};
use crate::ops::JoinKind;
use crate::types::{event_time_millis, is_updating, row_kinds, Barrier, EventTime, RowKind};

/// What a temporal join joins on.
#[derive(Debug, Clone)]
pub struct TemporalJoinSpec {
    /// Equality keys of the left input.
    pub left_keys: Vec<usize>,
    /// Equality keys of the right (versioned) input.
    pub right_keys: Vec<usize>,
    /// The event-time columns of the left and right inputs.
    pub times: [usize; 2],
    /// Other ON conditions, over the left columns followed by the right.
    pub residual: Option<Expr>,
    /// INNER or LEFT.
    pub kind: JoinKind,
}

impl TemporalJoinSpec {
    /// A factory for the subtasks; checks the spec against the inputs.
    pub fn factory(self, left: SchemaRef, right: SchemaRef) -> Result<OperatorFactory> {
        TemporalJoin::new(self.clone(), &left, &right)?;
        Ok(Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(TemporalJoin::new(self.clone(), &left, &right)?) as Box<dyn Operator>)
        }))
    }
}

/// Per key: left rows waiting (time, row) or versions (time -> row, `None`
/// for a delete).
type Waiting = HashMap<Box<[u8]>, Vec<(i64, Box<[u8]>)>, ahash::RandomState>;
type Versions = HashMap<Box<[u8]>, BTreeMap<i64, Option<Box<[u8]>>>, ahash::RandomState>;

/// The operator; see the module docs.
#[derive(Debug)]
pub struct TemporalJoin {
    spec: TemporalJoinSpec,
    right_updating: bool,
    encoders: [KeyEncoder; 2],
    converters: [RowConverter; 2],
    widths: [usize; 2],
    pair_schema: SchemaRef,
    schema: SchemaRef,
    waiting: Waiting,
    /// Times of waiting left rows to their keys, in time order.
    due: BTreeMap<i64, Vec<Box<[u8]>>>,
    versions: Versions,
    dirty: [HashSet<Box<[u8]>, ahash::RandomState>; 2],
    watermark: EventTime,
    table: Option<TableId>,
}

impl TemporalJoin {
    /// Builds the join of `left` (append-only) with the versioned `right`.
    pub fn new(spec: TemporalJoinSpec, left: &SchemaRef, right: &SchemaRef) -> Result<Self> {
        if is_updating(left) {
            return Err(EngineError::Plan(
                "the left side of a temporal join must be append-only".into(),
            ));
        }
        if !matches!(spec.kind, JoinKind::Inner | JoinKind::Left) {
            return Err(EngineError::Plan("a temporal join is INNER or LEFT".into()));
        }
        let right_updating = is_updating(right);
        let widths = [
            left.fields().len(),
            right.fields().len() - usize::from(right_updating),
        ];
        if spec.left_keys.is_empty()
            || spec.left_keys.len() != spec.right_keys.len()
            || spec.left_keys.iter().any(|&k| k >= widths[0])
            || spec.right_keys.iter().any(|&k| k >= widths[1])
        {
            return Err(EngineError::Plan(
                "a temporal join needs equal, non-empty key lists of data columns".into(),
            ));
        }
        let pair_schema = pair_fields(left, right, [false, spec.kind == JoinKind::Left]);
        check_condition(spec.residual.as_ref(), &pair_schema)?;
        Ok(Self {
            right_updating,
            encoders: [
                KeyEncoder::new(left, &spec.left_keys)?,
                KeyEncoder::new(right, &spec.right_keys)?,
            ],
            converters: [row_converter(left)?, row_converter(right)?],
            widths,
            schema: Arc::clone(&pair_schema),
            pair_schema,
            waiting: Waiting::default(),
            due: BTreeMap::new(),
            versions: Versions::default(),
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

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("temporal join not opened".into()))
    }

    /// Joins one left row with the version of its key valid at `ts`.
    fn resolve(&self, key: &[u8], ts: i64, row: &[u8], out: &mut Pending) -> Result<()> {
        let version = self
            .versions
            .get(key)
            .and_then(|v| v.range(..=ts).next_back())
            .and_then(|(_, r)| r.as_deref());
        let matched = match (version, &self.spec.residual) {
            (Some(v), Some(cond)) => {
                passing(&self.converters, &self.pair_schema, cond, 0, row, &[v])?[0]
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        match version {
            Some(v) if matched => out.push(0, Some(row), Some(v), RowKind::Insert),
            _ if self.spec.kind == JoinKind::Left => out.push(0, Some(row), None, RowKind::Insert),
            _ => {}
        }
        Ok(())
    }

    /// Joins the left rows the watermark `wm` released, in time order, and
    /// drops versions nothing can match any more.
    fn advance(&mut self, wm: EventTime, out: &mut dyn Collector) -> Result<()> {
        let mut pending = Pending::default();
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > wm {
                break;
            }
            let keys = entry.remove();
            for key in keys {
                let Some(rows) = self.waiting.get_mut(&key) else {
                    continue;
                };
                let (now, later): (Vec<_>, Vec<_>) = rows.drain(..).partition(|(t, _)| *t <= wm);
                *rows = later;
                if rows.is_empty() {
                    self.waiting.remove(&key);
                }
                self.dirty[0].insert(key.clone());
                let mut now = now;
                now.sort_by_key(|(t, _)| *t);
                for (t, row) in now {
                    self.resolve(&key, t, &row, &mut pending)?;
                }
                if pending.len() >= OUTPUT_BATCH_ROWS {
                    self.emit(&mut pending, out)?;
                }
            }
        }
        self.emit(&mut pending, out)?;
        // Versions older than the one valid at the watermark are dropped
        // (no waiting or later left row can be older than the watermark).
        let mut emptied = Vec::new();
        for (key, versions) in self.versions.iter_mut() {
            let Some((&current, _)) = versions.range(..=wm).next_back() else {
                continue;
            };
            let before = versions.len();
            versions.retain(|t, _| *t >= current);
            if versions.len() == 1 && versions.get(&current).is_some_and(Option::is_none) {
                versions.clear();
            }
            if versions.len() != before {
                self.dirty[1].insert(key.clone());
            }
            if versions.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.versions.remove(&key);
        }
        Ok(())
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
}

fn encode(entries: impl Iterator<Item = (i64, Option<Box<[u8]>>)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (ts, row) in entries {
        out.extend_from_slice(&ts.to_le_bytes());
        match row {
            Some(r) => {
                out.push(1);
                out.extend_from_slice(&(r.len() as u32).to_le_bytes());
                out.extend_from_slice(&r);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode(b: &[u8]) -> Result<Vec<(i64, Option<Box<[u8]>>)>> {
    let mut r = EntryReader::new(b, "temporal join");
    let mut out = Vec::new();
    while !r.is_empty() {
        let ts = r.i64()?;
        let row = match r.u8()? {
            1 => Some(r.sized()?.into()),
            _ => None,
        };
        out.push((ts, row));
    }
    Ok(out)
}

impl Operator for TemporalJoin {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/temporal_join", ctx.task.operator_name))?;
        self.table = Some(table);
        let Some((wm, _)) = load_meta(ctx, table)? else {
            return Ok(());
        };
        self.watermark = wm;
        for (_, ns, key, value) in scan_owned(ctx, table, 1)? {
            let key: Box<[u8]> = key.into();
            let entries = decode(&value)?;
            if ns.first() == Some(&0) {
                for (ts, row) in entries {
                    let row = row.ok_or_else(|| {
                        EngineError::Internal("a waiting row without its bytes".into())
                    })?;
                    self.due.entry(ts).or_default().push(key.clone());
                    self.waiting.entry(key.clone()).or_default().push((ts, row));
                }
            } else {
                self.versions.insert(key, entries.into_iter().collect());
            }
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if input > 1 {
            return Err(EngineError::Internal(format!(
                "a join has two inputs, got input {input}"
            )));
        }
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let side = input;
        let times = event_time_millis(batch.column(self.spec.times[side]))?;
        let keys = self.encoders[side].encode(&batch)?;
        let rows = self.converters[side].convert_columns(&batch.columns()[..self.widths[side]])?;
        let key_columns = if side == 0 {
            &self.spec.left_keys
        } else {
            &self.spec.right_keys
        };
        let mut pending = Pending::default();
        if side == 1 {
            let kinds = if self.right_updating {
                row_kinds(&batch)?
            } else {
                vec![RowKind::Insert; n]
            };
            for (i, kind) in kinds.into_iter().enumerate() {
                if null_key(&batch, key_columns, i) || times.is_null(i) {
                    continue;
                }
                let version = match kind {
                    RowKind::Insert | RowKind::UpdateAfter => Some(rows.row(i).as_ref().into()),
                    RowKind::Delete => None,
                    RowKind::UpdateBefore => continue,
                };
                let key: Box<[u8]> = keys.row(i).as_ref().into();
                self.versions
                    .entry(key.clone())
                    .or_default()
                    .insert(times.value(i), version);
                self.dirty[1].insert(key);
            }
            return Ok(());
        }
        for i in 0..n {
            let row = rows.row(i);
            if null_key(&batch, key_columns, i) || times.is_null(i) {
                if self.spec.kind == JoinKind::Left {
                    pending.push(0, Some(row.as_ref()), None, RowKind::Insert);
                }
                continue;
            }
            let ts = times.value(i);
            let key: Box<[u8]> = keys.row(i).as_ref().into();
            if ts <= self.watermark {
                // Late for the watermark: joined with what is known now.
                self.resolve(&key, ts, row.as_ref(), &mut pending)?;
                continue;
            }
            self.due.entry(ts).or_default().push(key.clone());
            self.waiting
                .entry(key.clone())
                .or_default()
                .push((ts, row.as_ref().into()));
            self.dirty[0].insert(key);
        }
        self.emit(&mut pending, out)
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
        self.advance(watermark, out)
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext<'_>, out: &mut dyn Collector) -> Result<()> {
        self.advance(EventTime::MAX, out)
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        for key in std::mem::take(&mut self.dirty[0]) {
            let k = state_key(ctx, &key, &[0]);
            match self.waiting.get(&key) {
                Some(rows) if !rows.is_empty() => ctx.state.put_owned(
                    table,
                    k,
                    encode(rows.iter().map(|(t, r)| (*t, Some(r.clone())))),
                )?,
                _ => ctx.state.delete(table, &k)?,
            }
        }
        for key in std::mem::take(&mut self.dirty[1]) {
            let k = state_key(ctx, &key, &[1]);
            match self.versions.get(&key) {
                Some(v) if !v.is_empty() => {
                    ctx.state
                        .put_owned(table, k, encode(v.iter().map(|(t, r)| (*t, r.clone()))))?
                }
                _ => ctx.state.delete(table, &k)?,
            }
        }
        save_meta(ctx, table, self.watermark, 0)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::testing::OperatorHarness;
    use crate::types::{row_kind_array, with_row_kind};

    /// (key, time, value)
    type Row = (i64, i64, i64);

    fn left_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("amount", DataType::Int64, false),
        ]))
    }

    fn right_schema() -> SchemaRef {
        with_row_kind(&Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("rate", DataType::Int64, false),
        ]))
    }

    fn cols(rows: &[Row]) -> Vec<arrow::array::ArrayRef> {
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
        ]
    }

    fn left(rows: &[Row]) -> RecordBatch {
        RecordBatch::try_new(left_schema(), cols(rows)).expect("valid")
    }

    fn right(rows: &[(RowKind, Row)]) -> RecordBatch {
        let plain: Vec<Row> = rows.iter().map(|r| r.1).collect();
        let mut c = cols(&plain);
        c.push(row_kind_array(
            &rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ));
        RecordBatch::try_new(right_schema(), c).expect("valid")
    }

    fn op(kind: JoinKind) -> Box<dyn Operator> {
        let spec = TemporalJoinSpec {
            left_keys: vec![0],
            right_keys: vec![0],
            times: [1, 1],
            residual: None,
            kind,
        };
        Box::new(TemporalJoin::new(spec, &left_schema(), &right_schema()).expect("valid"))
    }

    /// `amount/rate` per output row, `-` for padding.
    fn pairs(h: &mut OperatorHarness) -> Vec<String> {
        let mut out = Vec::new();
        for b in h.take_output() {
            let a = b.column(2).as_primitive::<Int64Type>().clone();
            let r = b.column(5).as_primitive::<Int64Type>().clone();
            for i in 0..b.num_rows() {
                let rate = if r.is_null(i) {
                    "-".to_string()
                } else {
                    r.value(i).to_string()
                };
                out.push(format!("{}/{rate}", a.value(i)));
            }
        }
        out
    }

    use RowKind::{Delete as D, Insert as I, UpdateAfter as UA, UpdateBefore as UB};

    #[test]
    fn each_left_row_meets_the_version_valid_at_its_time() -> Result<()> {
        let mut h = OperatorHarness::new(op(JoinKind::Left))?;
        h.batch_on(1, right(&[(I, (1, 10, 100)), (I, (2, 10, 7))]))?;
        h.batch_on(
            1,
            right(&[(UB, (1, 10, 100)), (UA, (1, 20, 110)), (D, (2, 25, 7))]),
        )?;
        // Orders at 5 (before any rate), 15 (rate 100), 20 and 22 (110),
        // and key 2 at 12 (rate 7) and 30 (deleted at 25).
        h.batch_on(
            0,
            left(&[
                (1, 5, 1),
                (1, 15, 2),
                (1, 20, 3),
                (1, 22, 4),
                (2, 12, 5),
                (2, 30, 6),
            ]),
        )?;
        assert!(pairs(&mut h).is_empty(), "rows wait for the watermark");
        h.watermark(20)?;
        let mut got = pairs(&mut h);
        got.sort();
        assert_eq!(got, ["1/-", "2/100", "3/110", "5/7"]);
        // A version arriving before the watermark passes still counts.
        h.batch_on(1, right(&[(UB, (1, 20, 110)), (UA, (1, 21, 120))]))?;
        let snapshot = h.checkpoint(1)?;
        let mut r = OperatorHarness::restored(op(JoinKind::Left), &snapshot)?;
        r.watermark(40)?;
        let mut got = pairs(&mut r);
        got.sort();
        assert_eq!(got, ["4/120", "6/-"]);
        Ok(())
    }

    #[test]
    fn an_inner_temporal_join_drops_unmatched_rows_and_old_versions() -> Result<()> {
        let mut h = OperatorHarness::new(op(JoinKind::Inner))?;
        h.batch_on(
            1,
            right(&[(I, (1, 10, 100)), (UA, (1, 20, 110)), (UA, (1, 30, 120))]),
        )?;
        h.batch_on(0, left(&[(1, 5, 1), (1, 25, 2), (3, 25, 3)]))?;
        h.watermark(26)?;
        assert_eq!(pairs(&mut h), ["2/110"]);
        h.checkpoint(1)?;
        // Key 1 keeps the versions at 20 and 30 only; the meta entry.
        assert_eq!(h.state_entries(), 2);
        Ok(())
    }
}
