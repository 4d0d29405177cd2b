//! The regular join of two streams with changelog semantics: INNER, LEFT,
//! RIGHT and FULL OUTER, over append-only or updating inputs, with an
//! optional state TTL per side.
//!
//! Each side keeps, per join key, its distinct rows with how many times
//! each is present (`count`) and, for the side whose rows are padded with
//! NULLs when unmatched (the left side of a LEFT join, both of a FULL
//! one), how many rows of the other side each matches (`assoc`). A row
//! that arrives is matched against the other side's rows of its key that
//! pass the ON conditions, then:
//!
//! * an addition (`+I`, `+U`) emits `+I` of each joined pair; a row of the
//!   other side that had no match until now and was emitted padded first
//!   has that padded row retracted (`-D`). An unmatched row of a padded
//!   side is emitted padded (`+I`).
//! * a retraction (`-U`, `-D`) emits `-D` of each joined pair; a row of the
//!   other side left without matches is emitted padded again (`+I`). An
//!   unmatched row of a padded side has its padded row retracted (`-D`).
//!
//! This is Flink's join changelog: joined rows come as `+I` and `-D` only.
//! When neither input updates and neither side is padded (an INNER join
//! of append-only streams), nothing is ever retracted and the output is
//! append-only (no changelog column). NULL keys match nothing.
//!
//! State TTL: with a TTL on a side, a kept row that was not written for
//! that long is dropped as if it had never arrived (Flink's state TTL:
//! processing time, refreshed on create and write). A later row then finds
//! no match; nothing is emitted for the expiry itself. Each key with rows
//! is scheduled for a check at the earliest moment one of its rows can
//! expire, so keys that never come again also leave memory, the backend
//! and the following checkpoints.
//!
//! State: one entry per side and key, `key group | side | key` to the
//! key's rows (`u32` count of rows, then per row its length, bytes, count,
//! associations and last write time). A barrier writes the keys changed
//! since the last one. Keys are read back from the backend when they are
//! not in memory (after a restore, or after the memory budget made the
//! operator write and drop them).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext};
use crate::ops::agg::{load_meta, save_meta, scan_owned, state_key, EntryReader};
use crate::ops::window_join::{check_condition, check_join_keys, null_key, OUTPUT_BATCH_ROWS};
use crate::ops::JoinKind;
use crate::time::Clock;
use crate::types::{is_updating, row_kind_array, row_kinds, with_row_kind, Barrier, RowKind};

/// Rough bytes of bookkeeping per kept row and per key.
const ROW_OVERHEAD: usize = 40;
const KEY_OVERHEAD: usize = 80;

/// One distinct kept row.
#[derive(Debug, Clone)]
struct KeptRow {
    row: Box<[u8]>,
    count: u32,
    assoc: u32,
    at: i64,
}

/// The rows of one key on one side.
#[derive(Debug, Default)]
struct Kept {
    rows: Vec<KeptRow>,
    /// Changed since last written to the backend.
    dirty: bool,
    /// The backend holds an entry for the key (read from it or written).
    stored: bool,
}

impl Kept {
    fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(4 + self.rows.iter().map(|r| r.row.len() + 20).sum::<usize>());
        out.extend_from_slice(&(self.rows.len() as u32).to_le_bytes());
        for r in &self.rows {
            out.extend_from_slice(&(r.row.len() as u32).to_le_bytes());
            out.extend_from_slice(&r.row);
            out.extend_from_slice(&r.count.to_le_bytes());
            out.extend_from_slice(&r.assoc.to_le_bytes());
            out.extend_from_slice(&r.at.to_le_bytes());
        }
        out
    }

    fn decode(b: &[u8]) -> Result<Self> {
        let mut r = EntryReader::new(b, "join");
        let n = r.u32()? as usize;
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            rows.push(KeptRow {
                row: r.sized()?.into(),
                count: r.u32()?,
                assoc: r.u32()?,
                at: r.i64()?,
            });
        }
        Ok(Self {
            rows,
            dirty: false,
            stored: true,
        })
    }

    fn bytes(&self) -> usize {
        self.rows
            .iter()
            .map(|r| r.row.len() + ROW_OVERHEAD)
            .sum::<usize>()
    }
}

type KeyMap = HashMap<Box<[u8]>, Kept, ahash::RandomState>;

/// Output rows not yet emitted: (left row, right row, kind); `None` pads.
#[derive(Default)]
pub(crate) struct Pending {
    left: Vec<Option<Box<[u8]>>>,
    right: Vec<Option<Box<[u8]>>>,
    kinds: Vec<RowKind>,
}

impl Pending {
    /// Rows waiting.
    pub(crate) fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Adds a row: `mine` of `side` joined with `theirs` (`None` pads).
    pub(crate) fn push(
        &mut self,
        side: usize,
        mine: Option<&[u8]>,
        theirs: Option<&[u8]>,
        kind: RowKind,
    ) {
        let (l, r) = if side == 0 {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        self.left.push(l.map(Into::into));
        self.right.push(r.map(Into::into));
        self.kinds.push(kind);
    }

    pub(crate) fn push_n(
        &mut self,
        n: u32,
        side: usize,
        mine: Option<&[u8]>,
        theirs: Option<&[u8]>,
        kind: RowKind,
    ) {
        for _ in 0..n {
            self.push(side, mine, theirs, kind);
        }
    }
}

/// The batch of `pending` joined rows: the left side's data columns (of
/// `pair_schema`, `widths[0]` of them), the right side's, and the row
/// kinds when `schema` has the changelog column.
pub(crate) fn pairs_batch(
    converters: &[RowConverter; 2],
    widths: [usize; 2],
    pair_schema: &Schema,
    schema: &SchemaRef,
    pending: &Pending,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (side, rows) in [&pending.left, &pending.right].into_iter().enumerate() {
        let converter = &converters[side];
        let parser = converter.parser();
        let present: Vec<&[u8]> = rows.iter().flatten().map(|r| &**r).collect();
        let fields = pair_schema.fields();
        let range = if side == 0 {
            0..widths[0]
        } else {
            widths[0]..fields.len()
        };
        if present.is_empty() {
            for f in &fields[range] {
                columns.push(new_null_array(f.data_type(), rows.len()));
            }
            continue;
        }
        let arrays = converter.convert_rows(present.iter().map(|r| parser.parse(r)))?;
        let mut next = 0u32;
        let indices: UInt32Array = rows
            .iter()
            .map(|r| {
                r.as_ref().map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        for a in arrays {
            columns.push(take(a.as_ref(), &indices, None)?);
        }
    }
    if is_updating(schema) {
        columns.push(row_kind_array(&pending.kinds));
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Which of `theirs` (rows of the side other than `side`) pass `cond`
/// joined with `row` (a row of `side`); `cond` is over `pair_schema`.
pub(crate) fn passing(
    converters: &[RowConverter; 2],
    pair_schema: &SchemaRef,
    cond: &Expr,
    side: usize,
    row: &[u8],
    theirs: &[&[u8]],
) -> Result<Vec<bool>> {
    let n = theirs.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let other = 1 - side;
    let mine_parser = converters[side].parser();
    let theirs_parser = converters[other].parser();
    let mine = converters[side].convert_rows((0..n).map(|_| mine_parser.parse(row)))?;
    let theirs = converters[other].convert_rows(theirs.iter().map(|r| theirs_parser.parse(r)))?;
    let columns = if side == 0 {
        [mine, theirs].concat()
    } else {
        [theirs, mine].concat()
    };
    let batch = RecordBatch::try_new(Arc::clone(pair_schema), columns)?;
    let keep = cond.evaluate(&batch)?;
    let keep = keep.as_boolean();
    Ok((0..n).map(|i| keep.is_valid(i) && keep.value(i)).collect())
}

/// The fields of a join's two inputs side by side, without changelog
/// columns; a side's fields are nullable when `padded[side]`.
pub(crate) fn pair_fields(left: &Schema, right: &Schema, padded: [bool; 2]) -> SchemaRef {
    let mut fields = data_fields(left, padded[0]);
    fields.extend(data_fields(right, padded[1]));
    Arc::new(Schema::new(fields))
}

/// A row converter of all data columns of `schema`.
pub(crate) fn row_converter(schema: &Schema) -> Result<RowConverter> {
    let fields = data_fields(schema, false)
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    Ok(RowConverter::new(fields)?)
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct ChangelogJoin {
    /// Per side: its rows are emitted padded when unmatched.
    outer: [bool; 2],
    /// Per side: the input carries the changelog column.
    updating: [bool; 2],
    encoders: [KeyEncoder; 2],
    key_columns: [Vec<usize>; 2],
    /// Per side: all data columns in row format.
    converters: [RowConverter; 2],
    /// Per side: the number of data columns.
    widths: [usize; 2],
    residual: Option<Expr>,
    /// Left then right data columns, for the ON conditions.
    pair_schema: SchemaRef,
    schema: SchemaRef,
    /// Per side: TTL in milliseconds.
    ttl: [Option<i64>; 2],
    clock: Clock,
    kept: [KeyMap; 2],
    /// Per side: keys that lost their last row, dropped from memory, whose
    /// backend entry the next barrier deletes.
    gone: [HashSet<Box<[u8]>, ahash::RandomState>; 2],
    /// The backend may hold keys that are not in memory.
    backed: bool,
    /// Approximate bytes kept in memory.
    memory: usize,
    /// (time, side, key): check the key's rows for expiry at that time.
    expiry: BinaryHeap<Reverse<(i64, u8, Box<[u8]>)>>,
    scheduled: [HashSet<Box<[u8]>, ahash::RandomState>; 2],
    table: Option<TableId>,
}

/// The fields of `schema` without the changelog column, nullable when
/// `padded`.
fn data_fields(schema: &Schema, padded: bool) -> Vec<Field> {
    let n = schema.fields().len() - usize::from(is_updating(schema));
    schema.fields()[..n]
        .iter()
        .map(|f| {
            let nullable = f.is_nullable() || padded;
            f.as_ref().clone().with_nullable(nullable)
        })
        .collect()
}

impl ChangelogJoin {
    /// Builds the join; see [`crate::ops::StreamJoinSpec`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: JoinKind,
        (left, right): (&SchemaRef, &SchemaRef),
        (left_keys, right_keys): (Vec<usize>, Vec<usize>),
        residual: Option<Expr>,
        ttl: [Option<std::time::Duration>; 2],
        clock: Clock,
    ) -> Result<Self> {
        let outer = [
            matches!(kind, JoinKind::Left | JoinKind::Full),
            matches!(kind, JoinKind::Right | JoinKind::Full),
        ];
        check_join_keys("a join", left, right, &left_keys, &right_keys)?;
        let updating = [is_updating(left), is_updating(right)];
        let pair_schema = pair_fields(left, right, [outer[1], outer[0]]);
        check_condition(residual.as_ref(), &pair_schema)?;
        let updating_out = updating[0] || updating[1] || outer[0] || outer[1];
        let schema = if updating_out {
            with_row_kind(&pair_schema)
        } else {
            Arc::clone(&pair_schema)
        };
        let millis = |d: Option<std::time::Duration>| {
            d.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        };
        Ok(Self {
            outer,
            updating,
            encoders: [
                KeyEncoder::new(left, &left_keys)?,
                KeyEncoder::new(right, &right_keys)?,
            ],
            key_columns: [left_keys, right_keys],
            converters: [row_converter(left)?, row_converter(right)?],
            widths: [
                left.fields().len() - usize::from(updating[0]),
                right.fields().len() - usize::from(updating[1]),
            ],
            residual,
            pair_schema,
            schema,
            ttl: [millis(ttl[0]), millis(ttl[1])],
            clock,
            kept: [KeyMap::default(), KeyMap::default()],
            gone: Default::default(),
            backed: false,
            memory: 0,
            expiry: BinaryHeap::new(),
            scheduled: Default::default(),
            table: None,
        })
    }

    /// The output schema: left columns, right columns, and the changelog
    /// column when the output updates.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("join not opened".into()))
    }

    /// Makes sure `key`'s rows on `side` are in memory when the backend
    /// has them.
    fn load(&mut self, side: usize, key: &[u8], ctx: &mut OperatorContext<'_>) -> Result<()> {
        if !self.backed || self.kept[side].contains_key(key) || self.gone[side].contains(key) {
            return Ok(());
        }
        let table = self.table()?;
        if let Some(v) = ctx.state.get(table, &state_key(ctx, key, &[side as u8]))? {
            let kept = Kept::decode(&v)?;
            self.memory += kept.bytes() + key.len() + KEY_OVERHEAD;
            self.kept[side].insert(key.into(), kept);
        }
        Ok(())
    }

    /// Drops `key` on `side` from memory when it has no rows left; its
    /// backend entry, if any, goes at the next barrier.
    fn settle(&mut self, side: usize, key: &[u8]) {
        if !self.kept[side].get(key).is_some_and(|k| k.rows.is_empty()) {
            return;
        }
        if let Some(kept) = self.kept[side].remove(key) {
            self.memory = self.memory.saturating_sub(key.len() + KEY_OVERHEAD);
            if kept.stored {
                self.gone[side].insert(key.into());
            }
        }
    }

    /// Drops `key`'s rows on `side` whose TTL passed by `now`.
    fn drop_expired(&mut self, side: usize, key: &[u8], now: i64) {
        let Some(ttl) = self.ttl[side] else { return };
        let Some(kept) = self.kept[side].get_mut(key) else {
            return;
        };
        let before = kept.rows.len();
        let mut freed = 0;
        kept.rows.retain(|r| {
            let live = r.at.saturating_add(ttl) > now;
            if !live {
                freed += r.row.len() + ROW_OVERHEAD;
            }
            live
        });
        if kept.rows.len() != before {
            kept.dirty = true;
            self.memory = self.memory.saturating_sub(freed);
        }
    }

    /// Schedules an expiry check of `key` on `side` when it has rows and
    /// none is scheduled.
    fn schedule(&mut self, side: usize, key: &[u8]) {
        let Some(ttl) = self.ttl[side] else { return };
        if self.scheduled[side].contains(key) {
            return;
        }
        let Some(first) = self.kept[side]
            .get(key)
            .and_then(|k| k.rows.iter().map(|r| r.at).min())
        else {
            return;
        };
        self.scheduled[side].insert(key.into());
        self.expiry
            .push(Reverse((first.saturating_add(ttl), side as u8, key.into())));
    }

    /// Runs the expiry checks due by `now`.
    fn expire(&mut self, now: i64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        while self.expiry.peek().is_some_and(|Reverse((t, ..))| *t <= now) {
            let Some(Reverse((_, side, key))) = self.expiry.pop() else {
                break;
            };
            let side = side as usize;
            self.scheduled[side].remove(&key);
            self.load(side, &key, ctx)?;
            self.drop_expired(side, &key, now);
            self.settle(side, &key);
            self.schedule(side, &key);
        }
        Ok(())
    }

    /// The indices of the other side's rows of `key` that pass the ON
    /// conditions with `row` (a row of `side`).
    fn matches(&self, side: usize, row: &[u8], key: &[u8]) -> Result<Vec<usize>> {
        let other = 1 - side;
        let Some(kept) = self.kept[other].get(key) else {
            return Ok(Vec::new());
        };
        let n = kept.rows.len();
        let Some(cond) = &self.residual else {
            return Ok((0..n).collect());
        };
        let theirs: Vec<&[u8]> = kept.rows.iter().map(|r| &*r.row).collect();
        let keep = passing(
            &self.converters,
            &self.pair_schema,
            cond,
            side,
            row,
            &theirs,
        )?;
        Ok((0..n).filter(|&i| keep[i]).collect())
    }

    /// Applies one input row of `side` with its key and kind.
    fn apply(
        &mut self,
        side: usize,
        row: &[u8],
        key: &[u8],
        kind: RowKind,
        now: i64,
        out: &mut Pending,
    ) -> Result<()> {
        let other = 1 - side;
        let matches = self.matches(side, row, key)?;
        let (mine_map, theirs_map) = if side == 0 {
            let (a, b) = self.kept.split_at_mut(1);
            (&mut a[0], &mut b[0])
        } else {
            let (a, b) = self.kept.split_at_mut(1);
            (&mut b[0], &mut a[0])
        };
        let theirs_outer = self.outer[other];
        let mut matched = 0u32;
        if let Some(theirs) = theirs_map.get_mut(key) {
            for &m in &matches {
                let r = &mut theirs.rows[m];
                matched = matched.saturating_add(r.count);
                if kind.is_addition() {
                    if theirs_outer && r.assoc == 0 {
                        out.push_n(r.count, other, Some(&r.row), None, RowKind::Delete);
                    }
                    out.push_n(r.count, side, Some(row), Some(&r.row), RowKind::Insert);
                    if theirs_outer {
                        r.assoc = r.assoc.saturating_add(1);
                    }
                } else {
                    out.push_n(r.count, side, Some(row), Some(&r.row), RowKind::Delete);
                    if theirs_outer {
                        r.assoc = r.assoc.saturating_sub(1);
                        if r.assoc == 0 {
                            out.push_n(r.count, other, Some(&r.row), None, RowKind::Insert);
                        }
                    }
                }
                if theirs_outer {
                    r.at = now;
                    theirs.dirty = true;
                }
            }
        }
        if matches.is_empty() && self.outer[side] {
            let k = if kind.is_addition() {
                RowKind::Insert
            } else {
                RowKind::Delete
            };
            out.push(side, Some(row), None, k);
        }
        // This side's own rows.
        if kind.is_addition() {
            let is_new_key = !mine_map.contains_key(key);
            let mine = mine_map.entry(key.into()).or_default();
            mine.dirty = true;
            match mine.rows.iter_mut().find(|r| &*r.row == row) {
                Some(r) => {
                    r.count = r.count.saturating_add(1);
                    r.assoc = matched;
                    r.at = now;
                }
                None => {
                    mine.rows.push(KeptRow {
                        row: row.into(),
                        count: 1,
                        assoc: matched,
                        at: now,
                    });
                    self.memory += row.len() + ROW_OVERHEAD;
                }
            }
            if is_new_key {
                self.memory += key.len() + KEY_OVERHEAD;
            }
        } else if let Some(mine) = mine_map.get_mut(key) {
            if let Some(i) = mine.rows.iter().position(|r| &*r.row == row) {
                mine.dirty = true;
                let r = &mut mine.rows[i];
                r.count -= 1;
                r.at = now;
                if r.count == 0 {
                    self.memory = self.memory.saturating_sub(row.len() + ROW_OVERHEAD);
                    mine.rows.swap_remove(i);
                }
            }
        }
        self.schedule(side, key);
        self.schedule(other, key);
        Ok(())
    }

    /// Emits the pending rows as one batch.
    fn flush(&self, pending: &mut Pending, out: &mut dyn Collector) -> Result<()> {
        if pending.kinds.is_empty() {
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

    /// Deletes the entries of keys that lost their rows and writes the
    /// changed keys.
    fn write_dirty(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        for side in 0..2 {
            for key in std::mem::take(&mut self.gone[side]) {
                if !self.kept[side].contains_key(&key) {
                    ctx.state
                        .delete(table, &state_key(ctx, &key, &[side as u8]))?;
                }
            }
            for (key, kept) in self.kept[side].iter_mut() {
                if !kept.dirty {
                    continue;
                }
                kept.dirty = false;
                kept.stored = true;
                let k = state_key(ctx, key, &[side as u8]);
                ctx.state.put_owned(table, k, kept.encode())?;
            }
        }
        save_meta(ctx, table, i64::MIN, 0)
    }

    /// Writes everything changed and drops all keys from memory; they are
    /// read back when they come again.
    fn spill(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.write_dirty(ctx)?;
        for side in &mut self.kept {
            side.clear();
        }
        self.memory = 0;
        self.backed = true;
        ctx.metrics
            .state_spills
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl Operator for ChangelogJoin {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/changelog_join", ctx.task.operator_name))?;
        self.table = Some(table);
        if load_meta(ctx, table)?.is_none() {
            return Ok(());
        }
        // Keys are read back when they come again; with a TTL, every
        // restored key is scheduled for its expiry check now.
        self.backed = true;
        if self.ttl.iter().any(Option::is_some) {
            for (_, ns, key, value) in scan_owned(ctx, table, 1)? {
                let side = usize::from(ns.first().copied().unwrap_or(0)).min(1);
                let Some(ttl) = self.ttl[side] else { continue };
                let kept = Kept::decode(&value)?;
                if let Some(first) = kept.rows.iter().map(|r| r.at).min() {
                    let key: Box<[u8]> = key.into();
                    self.scheduled[side].insert(key.clone());
                    self.expiry
                        .push(Reverse((first.saturating_add(ttl), side as u8, key)));
                }
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
        if input > 1 {
            return Err(EngineError::Internal(format!(
                "a join has two inputs, got input {input}"
            )));
        }
        let side = input;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let now = self.clock.now_millis();
        self.expire(now, ctx)?;
        let kinds = if self.updating[side] {
            row_kinds(&batch)?
        } else {
            vec![RowKind::Insert; n]
        };
        let data: Vec<ArrayRef> = batch.columns()[..self.widths[side]].to_vec();
        let keys = self.encoders[side].encode(&batch)?;
        let rows = self.converters[side].convert_columns(&data)?;
        let mut pending = Pending::default();
        for (i, kind) in kinds.into_iter().enumerate() {
            let row = rows.row(i);
            if null_key(&batch, &self.key_columns[side], i) {
                if self.outer[side] {
                    let k = if kind.is_addition() {
                        RowKind::Insert
                    } else {
                        RowKind::Delete
                    };
                    pending.push(side, Some(row.as_ref()), None, k);
                }
                continue;
            }
            let key = keys.row(i);
            let key = key.as_ref();
            self.load(0, key, ctx)?;
            self.load(1, key, ctx)?;
            self.drop_expired(0, key, now);
            self.drop_expired(1, key, now);
            self.apply(side, row.as_ref(), key, kind, now, &mut pending)?;
            self.settle(0, key);
            self.settle(1, key);
            if pending.kinds.len() >= OUTPUT_BATCH_ROWS {
                self.flush(&mut pending, out)?;
            }
        }
        self.flush(&mut pending, out)?;
        if let Some(budget) = ctx.task.memory_budget {
            if self.memory > budget {
                self.spill(ctx)?;
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let now = self.clock.now_millis();
        self.expire(now, ctx)?;
        self.write_dirty(ctx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Int64Type};
    use proptest::prelude::*;

    use super::*;
    use crate::expr::{binary, col, BinaryOp};
    use crate::testing::OperatorHarness;

    type Row = (Option<i64>, i64);

    fn schema(value: &str, updating: bool) -> SchemaRef {
        let fields = vec![
            Field::new("k", DataType::Int64, true),
            Field::new(value, DataType::Int64, false),
        ];
        let s = Schema::new(fields);
        if updating {
            with_row_kind(&s)
        } else {
            Arc::new(s)
        }
    }

    fn batch(value: &str, updating: bool, rows: &[(RowKind, Row)]) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1 .0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1 .1).collect::<Vec<_>>(),
            )),
        ];
        if updating {
            columns.push(row_kind_array(
                &rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ));
        }
        RecordBatch::try_new(schema(value, updating), columns).expect("valid batch")
    }

    struct Join {
        h: OperatorHarness,
        updating: [bool; 2],
    }

    impl Join {
        fn new(kind: JoinKind, updating: [bool; 2], residual: Option<Expr>) -> Self {
            Self::with(kind, updating, residual, [None, None], Clock::System)
        }

        fn with(
            kind: JoinKind,
            updating: [bool; 2],
            residual: Option<Expr>,
            ttl: [Option<std::time::Duration>; 2],
            clock: Clock,
        ) -> Self {
            let op = Self::op(kind, updating, residual, ttl, clock);
            Self {
                h: OperatorHarness::new(op).expect("opens"),
                updating,
            }
        }

        fn op(
            kind: JoinKind,
            updating: [bool; 2],
            residual: Option<Expr>,
            ttl: [Option<std::time::Duration>; 2],
            clock: Clock,
        ) -> Box<dyn Operator> {
            Box::new(
                ChangelogJoin::new(
                    kind,
                    (&schema("v", updating[0]), &schema("w", updating[1])),
                    (vec![0], vec![0]),
                    residual,
                    ttl,
                    clock,
                )
                .expect("valid join"),
            )
        }

        fn send(&mut self, side: usize, rows: &[(RowKind, Row)]) -> Vec<String> {
            let name = if side == 0 { "v" } else { "w" };
            self.h
                .batch_on(side, batch(name, self.updating[side], rows))
                .expect("processes");
            changelog(&self.h.take_output())
        }
    }

    /// The output rows as `+I 1, 10, NULL, NULL`, in order.
    fn changelog(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            let kinds = if is_updating(b.schema_ref()) {
                row_kinds(b).expect("kinds")
            } else {
                vec![RowKind::Insert; b.num_rows()]
            };
            for (i, kind) in kinds.iter().enumerate() {
                let cells: Vec<String> = (0..4)
                    .map(|c| {
                        let a = b.column(c).as_primitive::<Int64Type>();
                        if a.is_null(i) {
                            "NULL".to_string()
                        } else {
                            a.value(i).to_string()
                        }
                    })
                    .collect();
                out.push(format!("{} {}", kind.short_string(), cells.join(", ")));
            }
        }
        out
    }

    use RowKind::{Delete as D, Insert as I, UpdateAfter as UA, UpdateBefore as UB};

    #[test]
    fn a_left_join_pads_unmatched_rows_and_retracts_the_padding_on_a_match() {
        let mut j = Join::new(JoinKind::Left, [false, true], None);
        assert_eq!(j.send(0, &[(I, (Some(1), 10))]), ["+I 1, 10, NULL, NULL"]);
        assert_eq!(
            j.send(1, &[(I, (Some(1), 5))]),
            ["-D 1, 10, NULL, NULL", "+I 1, 10, 1, 5"]
        );
        assert_eq!(j.send(1, &[(I, (Some(1), 6))]), ["+I 1, 10, 1, 6"]);
        assert_eq!(j.send(1, &[(D, (Some(1), 5))]), ["-D 1, 10, 1, 5"]);
        // The last match goes: the left row is padded again.
        assert_eq!(
            j.send(1, &[(D, (Some(1), 6))]),
            ["-D 1, 10, 1, 6", "+I 1, 10, NULL, NULL"]
        );
        // A right row without a left match is not emitted in a LEFT join.
        assert!(j.send(1, &[(I, (Some(2), 7))]).is_empty());
    }

    #[test]
    fn a_full_join_pads_both_sides_and_a_delete_restores_the_other_sides_padding() {
        let mut j = Join::new(JoinKind::Full, [true, true], None);
        assert_eq!(j.send(0, &[(I, (Some(1), 10))]), ["+I 1, 10, NULL, NULL"]);
        assert_eq!(j.send(1, &[(I, (Some(2), 20))]), ["+I NULL, NULL, 2, 20"]);
        assert_eq!(
            j.send(1, &[(I, (Some(1), 5))]),
            ["-D 1, 10, NULL, NULL", "+I 1, 10, 1, 5"]
        );
        assert_eq!(
            j.send(0, &[(D, (Some(1), 10))]),
            ["-D 1, 10, 1, 5", "+I NULL, NULL, 1, 5"]
        );
        assert_eq!(j.send(1, &[(D, (Some(2), 20))]), ["-D NULL, NULL, 2, 20"]);
    }

    #[test]
    fn a_right_join_keeps_the_right_rows() {
        let mut j = Join::new(JoinKind::Right, [false, false], None);
        assert!(j.send(0, &[(I, (Some(1), 10))]).is_empty());
        assert_eq!(j.send(1, &[(I, (Some(1), 5))]), ["+I 1, 10, 1, 5"]);
        assert_eq!(j.send(1, &[(I, (Some(3), 6))]), ["+I NULL, NULL, 3, 6"]);
        assert_eq!(
            j.send(0, &[(I, (Some(3), 30))]),
            ["-D NULL, NULL, 3, 6", "+I 3, 30, 3, 6"]
        );
    }

    #[test]
    fn an_update_of_an_input_row_retracts_its_pairs_and_adds_the_new_ones() {
        let mut j = Join::new(JoinKind::Inner, [true, false], None);
        assert!(j.send(0, &[(I, (Some(1), 10))]).is_empty());
        assert_eq!(j.send(1, &[(I, (Some(1), 5))]), ["+I 1, 10, 1, 5"]);
        assert_eq!(
            j.send(0, &[(UB, (Some(1), 10)), (UA, (Some(1), 11))]),
            ["-D 1, 10, 1, 5", "+I 1, 11, 1, 5"]
        );
        // The key moves: the old pair goes, no new one.
        assert_eq!(
            j.send(0, &[(UB, (Some(1), 11)), (UA, (Some(2), 11))]),
            ["-D 1, 11, 1, 5"]
        );
    }

    #[test]
    fn other_conditions_decide_what_matches_and_nulls_never_match() {
        // ON l.k = r.k AND l.v > r.w
        let cond = binary(col(1), BinaryOp::Gt, col(3));
        let mut j = Join::new(JoinKind::Left, [false, false], Some(cond));
        assert_eq!(j.send(0, &[(I, (Some(1), 10))]), ["+I 1, 10, NULL, NULL"]);
        assert!(j.send(1, &[(I, (Some(1), 20))]).is_empty());
        assert_eq!(
            j.send(1, &[(I, (Some(1), 5))]),
            ["-D 1, 10, NULL, NULL", "+I 1, 10, 1, 5"]
        );
        assert_eq!(j.send(0, &[(I, (None, 30))]), ["+I NULL, 30, NULL, NULL"]);
        assert!(j.send(1, &[(I, (None, 1))]).is_empty());
    }

    #[test]
    fn duplicate_rows_join_once_each() {
        let mut j = Join::new(JoinKind::Left, [false, false], None);
        j.send(0, &[(I, (Some(1), 10)), (I, (Some(1), 10))]);
        assert_eq!(
            j.send(1, &[(I, (Some(1), 5))]),
            [
                "-D 1, 10, NULL, NULL",
                "-D 1, 10, NULL, NULL",
                "+I 1, 10, 1, 5",
                "+I 1, 10, 1, 5"
            ]
        );
    }

    #[test]
    fn an_inner_join_of_append_only_streams_is_append_only() {
        let j = ChangelogJoin::new(
            JoinKind::Inner,
            (&schema("v", false), &schema("w", false)),
            (vec![0], vec![0]),
            None,
            [Some(std::time::Duration::from_secs(1)), None],
            Clock::System,
        )
        .expect("valid");
        assert!(!is_updating(&j.schema()));
        let l = ChangelogJoin::new(
            JoinKind::Left,
            (&schema("v", false), &schema("w", false)),
            (vec![0], vec![0]),
            None,
            [None, None],
            Clock::System,
        )
        .expect("valid");
        assert!(is_updating(&l.schema()));
        assert!(l.schema().field(3).is_nullable());
        assert!(!l.schema().field(1).is_nullable());
    }

    #[test]
    fn rows_expire_after_the_ttl_and_leave_the_state() {
        let clock = Clock::manual(0);
        let ttl = Some(std::time::Duration::from_millis(1000));
        let mut j = Join::with(
            JoinKind::Inner,
            [false, false],
            None,
            [ttl, ttl],
            clock.clone(),
        );
        j.send(0, &[(I, (Some(1), 10))]);
        j.send(0, &[(I, (Some(2), 20))]);
        clock.set_millis(500);
        assert_eq!(j.send(1, &[(I, (Some(1), 5))]), ["+I 1, 10, 1, 5"]);
        j.h.checkpoint(1).expect("checkpoint");
        // Two left keys, one right key and the meta entry.
        assert_eq!(j.h.state_entries(), 4);
        // Left rows were written at 0: gone at 1000. The right row at 500
        // lives until 1500.
        clock.set_millis(1200);
        assert!(j.send(1, &[(I, (Some(1), 6))]).is_empty());
        assert!(j.send(0, &[(I, (Some(1), 11))]).len() == 2);
        clock.set_millis(5000);
        // Key 2 never came again; its expiry check drops it all the same.
        j.h.checkpoint(2).expect("checkpoint");
        assert_eq!(j.h.state_entries(), 1, "only the meta entry is left");
    }

    #[test]
    fn kept_rows_and_their_matches_survive_a_restore() {
        let mut j = Join::new(JoinKind::Left, [false, true], None);
        j.send(0, &[(I, (Some(1), 10))]);
        j.send(1, &[(I, (Some(2), 5))]);
        let snapshot = j.h.checkpoint(1).expect("checkpoint");
        let op = Join::op(
            JoinKind::Left,
            [false, true],
            None,
            [None, None],
            Clock::System,
        );
        let mut r = Join {
            h: OperatorHarness::restored(op, &snapshot).expect("restores"),
            updating: [false, true],
        };
        assert_eq!(
            r.send(1, &[(I, (Some(1), 5))]),
            ["-D 1, 10, NULL, NULL", "+I 1, 10, 1, 5"]
        );
        assert_eq!(r.send(0, &[(I, (Some(2), 20))]), ["+I 2, 20, 2, 5"]);
    }

    /// One step of the oracle: a side, and an insert or the delete of the
    /// `n`-th row of that side's current table.
    #[derive(Debug, Clone)]
    enum Step {
        Insert(usize, Row),
        Delete(usize, usize),
        Checkpoint,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let row = (prop::option::weighted(0.9, 0i64..4), 0i64..5);
        prop::collection::vec(
            prop_oneof![
                6 => (0usize..2, row).prop_map(|(s, r)| Step::Insert(s, r)),
                3 => (0usize..2, 0usize..100).prop_map(|(s, n)| Step::Delete(s, n)),
                1 => Just(Step::Checkpoint),
            ],
            1..60,
        )
    }

    /// The join of the final tables, computed pair by pair.
    fn brute_force(
        kind: JoinKind,
        tables: &[Vec<Row>; 2],
        keep: impl Fn(i64, i64) -> bool,
    ) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        let cell = |v: Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
        let matches = |l: &Row, r: &Row| l.0.is_some() && l.0 == r.0 && keep(l.1, r.1);
        for l in &tables[0] {
            let mut any = false;
            for r in &tables[1] {
                if matches(l, r) {
                    any = true;
                    let k = format!("{}, {}, {}, {}", cell(l.0), l.1, cell(r.0), r.1);
                    *out.entry(k).or_insert(0) += 1;
                }
            }
            if !any && matches!(kind, JoinKind::Left | JoinKind::Full) {
                *out.entry(format!("{}, {}, NULL, NULL", cell(l.0), l.1))
                    .or_insert(0) += 1;
            }
        }
        if matches!(kind, JoinKind::Right | JoinKind::Full) {
            for r in &tables[1] {
                if !tables[0].iter().any(|l| matches(l, r)) {
                    *out.entry(format!("NULL, NULL, {}, {}", cell(r.0), r.1))
                        .or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// Applies a changelog to a multiset of rows.
    fn materialize(into: &mut BTreeMap<String, i64>, changes: &[String]) {
        for c in changes {
            let (kind, row) = c.split_at(3);
            let delta = if kind.starts_with('+') { 1 } else { -1 };
            *into.entry(row.to_string()).or_insert(0) += delta;
        }
        into.retain(|_, n| *n != 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// For random inserts and deletes on both sides, with checkpoints
        /// and restores in between and a memory budget that forces state
        /// out of memory, the materialized output of every join kind is
        /// the join of the final tables.
        #[test]
        fn the_materialized_output_equals_the_join_of_the_final_tables(
            steps in steps(),
            kind in prop_oneof![
                Just(JoinKind::Inner),
                Just(JoinKind::Left),
                Just(JoinKind::Right),
                Just(JoinKind::Full)
            ],
            with_condition in any::<bool>(),
            budget in prop_oneof![Just(None), Just(Some(1usize))],
        ) {
            let cond = || with_condition.then(|| binary(col(1), BinaryOp::GtEq, col(3)));
            let keep = |v: i64, w: i64| !with_condition || v >= w;
            let mut j = Join::new(kind, [true, true], cond());
            j.h.set_memory_budget(budget);
            let mut tables: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
            let mut got = BTreeMap::new();
            for step in steps {
                match step {
                    Step::Insert(side, row) => {
                        tables[side].push(row);
                        materialize(&mut got, &j.send(side, &[(I, row)]));
                    }
                    Step::Delete(side, n) => {
                        if tables[side].is_empty() {
                            continue;
                        }
                        let row = tables[side].remove(n % tables[side].len());
                        materialize(&mut got, &j.send(side, &[(D, row)]));
                    }
                    Step::Checkpoint => {
                        let snapshot = j.h.checkpoint(1).expect("checkpoint");
                        let op = Join::op(kind, [true, true], cond(), [None, None], Clock::System);
                        j.h = OperatorHarness::restored(op, &snapshot).expect("restores");
                        j.h.set_memory_budget(budget);
                    }
                }
            }
            prop_assert_eq!(got, brute_force(kind, &tables, keep));
        }
    }
}
