//! The regular inner join of two append-only streams (`a JOIN b ON a.k =
//! b.k` without windows).
//!
//! Each side's rows are kept for as long as the job runs, indexed by their
//! key (there is no state TTL yet, so on unbounded inputs the state only
//! grows, as in Flink without `table.exec.state.ttl`). A row that arrives
//! is joined with every kept row of the other side with an equal key, the
//! other ON conditions are applied to the pairs, and then it is kept. Each
//! pair is therefore emitted once, when its later row arrives, and the
//! output of two append-only inputs is append-only. NULL keys match
//! nothing. Output: left columns, then right columns; it has no event-time
//! attribute.
//!
//! State: at each barrier the rows that arrived since the previous barrier
//! are written to the backend as Arrow IPC split by key group, under
//! `key group | side | sequence` (the layout of the window join without a
//! window end). Restoring reads them all back and rebuilds the index. The
//! kept rows also stay in memory: both inputs must fit in memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, interleave, take_record_batch};
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{load_meta, save_meta, scan_owned};
use crate::ops::changelog_join::ChangelogJoin;
use crate::ops::window_join::{
    check_condition, check_join_inputs, emit_pairs, from_ipc, null_key, put_by_key_group, side_of,
    WindowJoinSpec, OUTPUT_BATCH_ROWS,
};
use crate::ops::JoinKind;
use crate::time::Clock;
use crate::types::is_updating;
use crate::types::Barrier;

/// Stored entries merged into one kept batch on restore.
const RESTORE_CHUNK: usize = 1024;

/// What a regular join joins on.
#[derive(Debug, Clone)]
pub struct StreamJoinSpec {
    /// Equality keys of the left input.
    pub left_keys: Vec<usize>,
    /// Equality keys of the right input, pairwise equal to `left_keys`.
    pub right_keys: Vec<usize>,
    /// Other ON conditions, over the left columns followed by the right.
    pub residual: Option<Expr>,
    /// INNER, LEFT, RIGHT or FULL.
    pub kind: JoinKind,
    /// Per side (left, right): how long a kept row lives after it was last
    /// written (state TTL); `None` keeps it for as long as the job runs.
    pub ttl: [Option<Duration>; 2],
    /// Where the TTL reads the time.
    pub clock: Clock,
}

impl StreamJoinSpec {
    /// An INNER join on these keys without a TTL.
    pub fn inner(left_keys: Vec<usize>, right_keys: Vec<usize>, residual: Option<Expr>) -> Self {
        Self {
            left_keys,
            right_keys,
            residual,
            kind: JoinKind::Inner,
            ttl: [None, None],
            clock: Clock::System,
        }
    }

    /// True when the join of these inputs is an updating stream: an input
    /// updates, or a side is padded with NULLs when unmatched.
    pub fn is_updating(&self, left: &Schema, right: &Schema) -> bool {
        self.kind != JoinKind::Inner || is_updating(left) || is_updating(right)
    }

    /// True when the append-only [`StreamJoin`] does it: an INNER join of
    /// append-only inputs without a TTL. Anything else is a
    /// [`ChangelogJoin`].
    fn append_only(&self, left: &Schema, right: &Schema) -> bool {
        !self.is_updating(left, right) && self.ttl == [None, None]
    }

    fn build(&self, left: &SchemaRef, right: &SchemaRef) -> Result<Box<dyn Operator>> {
        if self.append_only(left, right) {
            return Ok(Box::new(StreamJoin::new(self.clone(), left, right)?));
        }
        Ok(Box::new(ChangelogJoin::new(
            self.kind,
            (left, right),
            (self.left_keys.clone(), self.right_keys.clone()),
            self.residual.clone(),
            self.ttl,
            self.clock.clone(),
        )?))
    }

    /// A factory for the subtasks; checks the spec against the inputs.
    pub fn factory(self, left: SchemaRef, right: SchemaRef) -> Result<OperatorFactory> {
        self.build(&left, &right)?;
        Ok(Arc::new(move |_t: &TaskInfo| self.build(&left, &right)))
    }
}

/// The kept rows of one side.
#[derive(Debug, Default)]
struct Side {
    batches: Vec<RecordBatch>,
    /// Key bytes to (batch, row) of every kept row with a non-NULL key.
    index: HashMap<Box<[u8]>, Vec<(u32, u32)>, ahash::RandomState>,
    /// How many batches are already in the backend.
    saved: usize,
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct StreamJoin {
    inputs: [SchemaRef; 2],
    encoders: [KeyEncoder; 2],
    key_columns: [Vec<usize>; 2],
    residual: Option<Expr>,
    schema: SchemaRef,
    sides: [Side; 2],
    seq: u64,
    groups: BTreeSet<u16>,
    table: Option<TableId>,
}

impl StreamJoin {
    /// Builds the operator for inputs `left` and `right`.
    pub fn new(spec: StreamJoinSpec, left: &SchemaRef, right: &SchemaRef) -> Result<Self> {
        check_join_inputs("a join", left, right, &spec.left_keys, &spec.right_keys)?;
        let schema = WindowJoinSpec::output_schema(left, right);
        check_condition(spec.residual.as_ref(), &schema)?;
        Ok(Self {
            inputs: [Arc::clone(left), Arc::clone(right)],
            encoders: [
                KeyEncoder::new(left, &spec.left_keys)?,
                KeyEncoder::new(right, &spec.right_keys)?,
            ],
            key_columns: [spec.left_keys, spec.right_keys],
            residual: spec.residual,
            schema,
            sides: [Side::default(), Side::default()],
            seq: 0,
            groups: BTreeSet::new(),
            table: None,
        })
    }

    /// Adds `batch` to side `side`'s kept rows; with `probe`, first emits
    /// its pairs with the other side's kept rows.
    fn add(
        &mut self,
        side: usize,
        batch: RecordBatch,
        probe: Option<&mut dyn Collector>,
    ) -> Result<()> {
        let keys = self.encoders[side].encode(&batch)?;
        let number = self.sides[side].batches.len() as u32;
        let other = 1 - side;
        let mut mine: Vec<u32> = Vec::new();
        let mut theirs: Vec<(usize, usize)> = Vec::new();
        let mut out = probe;
        for (i, row) in keys.iter().enumerate() {
            if null_key(&batch, &self.key_columns[side], i) {
                continue;
            }
            if let Some(out) = out.as_deref_mut() {
                if let Some(matches) = self.sides[other].index.get(row.as_ref()) {
                    for &(b, r) in matches {
                        mine.push(i as u32);
                        theirs.push((b as usize, r as usize));
                    }
                    if mine.len() >= OUTPUT_BATCH_ROWS {
                        self.emit(side, &batch, &mine, &theirs, out)?;
                        mine.clear();
                        theirs.clear();
                    }
                }
            }
            self.sides[side]
                .index
                .entry(row.as_ref().into())
                .or_default()
                .push((number, i as u32));
        }
        if let Some(out) = out {
            if !mine.is_empty() {
                self.emit(side, &batch, &mine, &theirs, out)?;
            }
        }
        self.sides[side].batches.push(batch);
        Ok(())
    }

    /// Emits rows `mine` of `batch` (on side `side`) paired with the other
    /// side's kept rows `theirs`.
    fn emit(
        &self,
        side: usize,
        batch: &RecordBatch,
        mine: &[u32],
        theirs: &[(usize, usize)],
        out: &mut dyn Collector,
    ) -> Result<()> {
        let this = take_record_batch(batch, &UInt32Array::from(mine.to_vec()))?
            .columns()
            .to_vec();
        // Gather from the kept batches these pairs touch only, so the cost
        // does not grow with the number of kept batches.
        let kept = &self.sides[1 - side].batches;
        let mut touched: Vec<usize> = theirs.iter().map(|&(b, _)| b).collect();
        touched.sort_unstable();
        touched.dedup();
        let local: Vec<(usize, usize)> = theirs
            .iter()
            .map(|&(b, r)| (touched.binary_search(&b).unwrap_or_default(), r))
            .collect();
        let width = kept.first().map_or(0, |b| b.num_columns());
        let mut that: Vec<ArrayRef> = Vec::with_capacity(width);
        for c in 0..width {
            let arrays: Vec<&dyn Array> = touched
                .iter()
                .map(|&b| kept[b].column(c).as_ref())
                .collect();
            that.push(interleave(&arrays, &local)?);
        }
        let columns = if side == 0 {
            [this, that].concat()
        } else {
            [that, this].concat()
        };
        emit_pairs(&self.schema, self.residual.as_ref(), columns, out)
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("join not opened".into()))
    }
}

impl Operator for StreamJoin {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/join", ctx.task.operator_name))?;
        self.table = Some(table);
        let Some((_, seq)) = load_meta(ctx, table)? else {
            return Ok(());
        };
        self.seq = seq;
        // Entries are one key group's rows of one batch each: merge them
        // back into large batches before indexing.
        let mut restored: [Vec<RecordBatch>; 2] = [Vec::new(), Vec::new()];
        for (kg, _, key, value) in scan_owned(ctx, table, 0)? {
            restored[side_of(&key, "join")?].push(from_ipc(&value)?);
            self.groups.insert(kg);
        }
        for (side, batches) in restored.into_iter().enumerate() {
            for chunk in batches.chunks(RESTORE_CHUNK) {
                let merged = concat_batches(&self.inputs[side], chunk)?;
                self.add(side, merged, None)?;
            }
        }
        for side in &mut self.sides {
            side.saved = side.batches.len();
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
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.add(input, batch, Some(out))
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        for side in 0..2 {
            let s = &self.sides[side];
            for batch in &s.batches[s.saved..] {
                put_by_key_group(
                    ctx,
                    table,
                    (&[], side as u8),
                    batch,
                    &self.encoders[side],
                    &mut self.seq,
                    &mut self.groups,
                )?;
            }
            self.sides[side].saved = self.sides[side].batches.len();
        }
        save_meta(ctx, table, i64::MIN, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::expr::{binary, col, BinaryOp};
    use crate::testing::OperatorHarness;

    fn schema(value: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new(value, DataType::Int64, false),
        ]))
    }

    fn batch(value: &str, rows: &[(Option<i64>, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(value),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("valid batch")
    }

    fn op(residual: Option<Expr>) -> Box<dyn Operator> {
        let spec = StreamJoinSpec::inner(vec![0], vec![0], residual);
        Box::new(StreamJoin::new(spec, &schema("v"), &schema("w")).expect("valid join"))
    }

    /// (k, v, w) of the output, sorted.
    fn pairs(batches: &[RecordBatch]) -> Vec<(i64, i64, i64)> {
        let mut out = Vec::new();
        for b in batches {
            let c = |i: usize| {
                b.column(i)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .clone()
            };
            let (k, v, rk, w) = (c(0), c(1), c(2), c(3));
            for i in 0..b.num_rows() {
                assert_eq!(k.value(i), rk.value(i));
                out.push((k.value(i), v.value(i), w.value(i)));
            }
        }
        out.sort();
        out
    }

    type Row = (Option<i64>, i64);
    const LEFT: [Row; 5] = [
        (Some(1), 10),
        (Some(2), 20),
        (None, 30),
        (Some(1), 11),
        (Some(3), 40),
    ];
    const RIGHT: [Row; 4] = [(Some(1), 5), (None, 6), (Some(1), 12), (Some(2), 25)];

    fn nested_loop(keep: impl Fn(i64, i64) -> bool) -> Vec<(i64, i64, i64)> {
        let mut out = Vec::new();
        for l in &LEFT {
            for r in &RIGHT {
                if l.0.is_some() && l.0 == r.0 && keep(l.1, r.1) {
                    out.push((l.0.unwrap_or_default(), l.1, r.1));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_pair_is_emitted_once_whichever_side_comes_first() -> Result<()> {
        let mut h = OperatorHarness::new(op(None))?;
        h.batch_on(0, batch("v", &LEFT[..2]))?;
        h.batch_on(1, batch("w", &RIGHT[..2]))?;
        h.batch_on(0, batch("v", &LEFT[2..]))?;
        h.batch_on(1, batch("w", &RIGHT[2..]))?;
        assert_eq!(pairs(&h.take_output()), nested_loop(|_, _| true));
        Ok(())
    }

    #[test]
    fn other_conditions_filter_pairs() -> Result<()> {
        let cond = binary(col(1), BinaryOp::Gt, col(3));
        let mut h = OperatorHarness::new(op(Some(cond)))?;
        h.batch_on(1, batch("w", &RIGHT))?;
        h.batch_on(0, batch("v", &LEFT))?;
        let got = pairs(&h.take_output());
        assert_eq!(got, nested_loop(|v, w| v > w));
        assert!(!got.is_empty() && got.len() < nested_loop(|_, _| true).len());
        Ok(())
    }

    #[test]
    fn kept_rows_survive_a_restore() -> Result<()> {
        let mut h = OperatorHarness::new(op(None))?;
        h.batch_on(0, batch("v", &LEFT[..3]))?;
        h.batch_on(1, batch("w", &RIGHT[..2]))?;
        let before = pairs(&h.take_output());
        let snapshot = h.checkpoint(1)?;
        // Lost with the crash, replayed after the restore.
        h.batch_on(0, batch("v", &LEFT[3..]))?;

        let mut restored = OperatorHarness::restored(op(None), &snapshot)?;
        restored.batch_on(0, batch("v", &LEFT[3..]))?;
        restored.batch_on(1, batch("w", &RIGHT[2..]))?;
        let mut all = before;
        all.extend(pairs(&restored.take_output()));
        all.sort();
        assert_eq!(all, nested_loop(|_, _| true));
        Ok(())
    }
}
