//! Top-N: `ROW_NUMBER() OVER (PARTITION BY p ORDER BY o) <= N` over an
//! append-only stream, as Flink's append-only rank. Also deduplication:
//! `= 1` with ORDER BY the time ascending keeps each key's first row,
//! descending its last.
//!
//! Per partition the operator keeps the best N rows, sorted by the ORDER
//! BY columns (in Arrow's row format with each column's direction, so the
//! bytes compare as the rows should) and, for equal values, by arrival: a
//! row ranks after the rows that came before it with the same values. A
//! row that does not make the top N is dropped; since the input only adds
//! rows it can never get in later. A row that gets in pushes the rest one
//! rank down and the last one out.
//!
//! Output (updating, as Flink's): without the rank number, `+I` of the new
//! row and `-D` of the row it pushed out. With the rank number, one change
//! per rank whose row changed, keyed by (partition, rank): `-U` of the
//! rank's old row and `+U` of its new one, `+I` for a rank that had no row
//! yet. An upsert sink keyed by the partition columns and the rank takes
//! it as it comes.
//!
//! Window Top-N (`window_end` set: PARTITION BY includes the input's
//! window columns): nothing is emitted until the watermark reaches the
//! window's last millisecond; then each partition of the window comes out
//! once, its rows with their rank as inserts, and is dropped. The output is
//! append-only. A row of a window that already came out is late.
//!
//! State: one entry per partition, `key group | partition key` to its
//! rows (and window end); a barrier writes the partitions changed since
//! the last one, with the arrival counter and the watermark in the meta
//! entry. Partitions not in memory are read back when a row of theirs
//! comes (a window Top-N reads them all back on restore).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{load_meta, save_meta, state_key, EntryReader};
use crate::types::{is_updating, row_kind_array, with_row_kind, Barrier, RowKind};

/// How rows are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankFunction {
    /// `ROW_NUMBER()`: 1, 2, 3, ... (equal rows by arrival).
    #[default]
    RowNumber,
    /// `RANK()`: equal rows share a rank, the next rank skips (1, 1, 3).
    Rank,
    /// `DENSE_RANK()`: equal rows share a rank, no gaps (1, 1, 2).
    DenseRank,
}

/// What a Top-N keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopNSpec {
    /// PARTITION BY columns (empty: one partition).
    pub partition_keys: Vec<usize>,
    /// ORDER BY columns: (column, descending, nulls first).
    pub order: Vec<(usize, bool, bool)>,
    /// N: the rows kept per partition.
    pub limit: usize,
    /// The output carries the row number (a BIGINT after the input's
    /// columns, named `rank_name`).
    pub rank_column: bool,
    /// The name of the row number column.
    pub rank_name: String,
    /// Of rows with equal ORDER BY values, the one that arrived last ranks
    /// first (Flink's deduplication keeping the last row by time); else the
    /// first to arrive does (Flink's rank).
    pub later_first: bool,
    /// Window Top-N: the input's `window_end` column (one of the partition
    /// columns); the output is then append-only.
    pub window_end: Option<usize>,
    /// ROW_NUMBER, RANK or DENSE_RANK; with RANK and DENSE_RANK the rows
    /// of rank `limit` or better are kept, ties included.
    pub function: RankFunction,
}

impl TopNSpec {
    /// The output schema: the input's columns, the row number when kept,
    /// the changelog column.
    pub fn output_schema(&self, input: &Schema) -> SchemaRef {
        // An updating input's changelog column is replaced by the output's.
        let width = input.fields().len() - usize::from(is_updating(input));
        let mut fields: Vec<Field> = input.fields()[..width]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if self.rank_column {
            fields.push(Field::new(&self.rank_name, DataType::Int64, false));
        }
        match self.window_end {
            Some(_) => Arc::new(Schema::new(fields)),
            None => with_row_kind(&Schema::new(fields)),
        }
    }

    /// A factory for the subtasks; checks the spec against `input`.
    pub fn factory(self, input: SchemaRef) -> Result<OperatorFactory> {
        if is_updating(&input) {
            crate::ops::ordered::RetractTopN::new(self.clone(), &input)?;
            return Ok(Arc::new(move |_t: &TaskInfo| {
                Ok(
                    Box::new(crate::ops::ordered::RetractTopN::new(self.clone(), &input)?)
                        as Box<dyn Operator>,
                )
            }));
        }
        TopN::new(self.clone(), &input)?;
        Ok(Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(TopN::new(self.clone(), &input)?) as Box<dyn Operator>)
        }))
    }
}

/// One kept row: its sort key, arrival number and the row itself.
#[derive(Debug, Clone)]
struct Kept {
    sort: Vec<u8>,
    seq: u64,
    row: Vec<u8>,
}

/// A partition's best rows, best first.
#[derive(Debug, Default)]
struct Partition {
    rows: Vec<Kept>,
    /// Window Top-N: the window's end.
    end: i64,
    dirty: bool,
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct TopN {
    spec: TopNSpec,
    schema: SchemaRef,
    partition: Option<KeyEncoder>,
    sort: RowConverter,
    rows: RowConverter,
    partitions: HashMap<Box<[u8]>, Partition, ahash::RandomState>,
    /// Window Top-N: the partitions of each window, by window end.
    windows: std::collections::BTreeMap<i64, Vec<Box<[u8]>>>,
    watermark: i64,
    /// The backend may hold partitions not in memory (after a restore).
    backed: bool,
    seq: u64,
    table: Option<TableId>,
}

impl TopN {
    /// Builds the operator for `input`.
    pub fn new(spec: TopNSpec, input: &SchemaRef) -> Result<Self> {
        if is_updating(input) {
            return Err(EngineError::Plan(
                "Top-N over an updating stream is not supported yet; its input must be \
                 append-only"
                    .into(),
            ));
        }
        if spec.limit == 0 {
            return Err(EngineError::Plan(
                "a Top-N keeps at least one row (WHERE rn <= N with N >= 1)".into(),
            ));
        }
        if spec.order.is_empty() {
            return Err(EngineError::Plan(
                "ROW_NUMBER() needs ORDER BY in its OVER clause".into(),
            ));
        }
        let width = input.fields().len();
        if let Some(&c) = spec
            .partition_keys
            .iter()
            .chain(spec.order.iter().map(|(c, ..)| c))
            .find(|&&c| c >= width)
        {
            return Err(EngineError::Plan(format!(
                "Top-N column {c} is out of range ({width} columns)"
            )));
        }
        let sort = order_converter(input, &spec.order)?;
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
            schema: spec.output_schema(input),
            spec,
            partition,
            sort,
            rows,
            partitions: HashMap::default(),
            windows: std::collections::BTreeMap::new(),
            watermark: i64::MIN,
            backed: false,
            seq: 0,
            table: None,
        })
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("Top-N not opened".into()))
    }

    /// Makes sure `key`'s partition is in memory when the backend has it.
    fn load(&mut self, key: &[u8], ctx: &mut OperatorContext<'_>) -> Result<()> {
        if !self.backed || self.partitions.contains_key(key) {
            return Ok(());
        }
        let table = self.table()?;
        if let Some(v) = ctx.state.get(table, &state_key(ctx, key, &[]))? {
            self.partitions.insert(key.into(), decode(&v)?);
        }
        Ok(())
    }

    /// Emits `changes` (row bytes, rank, kind).
    fn emit(&self, changes: &[(&[u8], usize, RowKind)], out: &mut dyn Collector) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let parser = self.rows.parser();
        let mut columns: Vec<ArrayRef> = self
            .rows
            .convert_rows(changes.iter().map(|(r, ..)| parser.parse(r)))?;
        if self.spec.rank_column {
            columns.push(Arc::new(Int64Array::from_iter_values(
                changes.iter().map(|(_, rank, _)| *rank as i64),
            )));
        }
        if self.spec.window_end.is_none() {
            let kinds: Vec<RowKind> = changes.iter().map(|(.., k)| *k).collect();
            columns.push(row_kind_array(&kinds));
        }
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// The row format of ORDER BY columns `order` (column, descending, nulls
/// first) of `input`: bytes that compare as the rows should sort.
pub(crate) fn order_converter(
    input: &Schema,
    order: &[(usize, bool, bool)],
) -> Result<RowConverter> {
    Ok(RowConverter::new(
        order
            .iter()
            .map(|&(c, descending, nulls_first)| {
                SortField::new_with_options(
                    input.field(c).data_type().clone(),
                    arrow::compute::SortOptions {
                        descending,
                        nulls_first,
                    },
                )
            })
            .collect(),
    )?)
}

/// The rank of each of `rows` (best first) under `function`.
fn ranks(rows: &[Kept], function: RankFunction) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(rows.len());
    let mut dense = 0;
    for (i, k) in rows.iter().enumerate() {
        let tie = i > 0 && rows[i - 1].sort == k.sort;
        let rank = match function {
            RankFunction::RowNumber => i + 1,
            RankFunction::Rank if tie => out[i - 1],
            RankFunction::Rank => i + 1,
            RankFunction::DenseRank => {
                if !tie {
                    dense += 1;
                }
                dense
            }
        };
        out.push(rank);
    }
    out
}

fn encode(p: &Partition) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&p.end.to_le_bytes());
    out.extend_from_slice(&(p.rows.len() as u32).to_le_bytes());
    for k in &p.rows {
        out.extend_from_slice(&k.seq.to_le_bytes());
        out.extend_from_slice(&(k.sort.len() as u32).to_le_bytes());
        out.extend_from_slice(&k.sort);
        out.extend_from_slice(&(k.row.len() as u32).to_le_bytes());
        out.extend_from_slice(&k.row);
    }
    out
}

fn decode(b: &[u8]) -> Result<Partition> {
    let mut r = EntryReader::new(b, "Top-N");
    let end = r.i64()?;
    let n = r.u32()?;
    let mut rows = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let seq = r.i64()? as u64;
        let sort = r.sized()?.to_vec();
        let row = r.sized()?.to_vec();
        rows.push(Kept { sort, seq, row });
    }
    Ok(Partition {
        rows,
        end,
        dirty: false,
    })
}

impl Operator for TopN {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/top_n", ctx.task.operator_name))?;
        self.table = Some(table);
        if let Some((watermark, seq)) = load_meta(ctx, table)? {
            self.backed = true;
            self.seq = seq;
            self.watermark = watermark;
            // A window Top-N must know every open window to fire it.
            if self.spec.window_end.is_some() {
                for (_, _, key, value) in crate::ops::agg::scan_owned(ctx, table, 0)? {
                    let p = decode(&value)?;
                    let key: Box<[u8]> = key.into();
                    self.windows.entry(p.end).or_default().push(key.clone());
                    self.partitions.insert(key, p);
                }
                self.backed = false;
            }
        }
        Ok(())
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
        let keys = self.partition.as_ref().map(|e| e.encode(&batch));
        let keys = keys.transpose()?;
        let order = self.spec.order.iter();
        let sort_columns: Vec<ArrayRef> =
            order.map(|&(c, ..)| Arc::clone(batch.column(c))).collect();
        let sorts = self.sort.convert_columns(&sort_columns)?;
        let rows = self.rows.convert_columns(batch.columns())?;
        let ends = self
            .spec
            .window_end
            .map(|c| crate::types::event_time_millis(batch.column(c)));
        let ends = ends.transpose()?;
        let limit = self.spec.limit;
        let ranked = self.spec.rank_column;
        let mut late = 0;
        // (row, rank, kind), as owned bytes: rows leave the partitions.
        let mut changes: Vec<(Vec<u8>, usize, RowKind)> = Vec::new();
        for i in 0..n {
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(i).data());
            let end = match &ends {
                Some(e) if e.is_null(i) || e.value(i).saturating_sub(1) <= self.watermark => {
                    late += 1;
                    continue;
                }
                Some(e) => Some(e.value(i)),
                None => None,
            };
            self.load(key, ctx)?;
            let sort = sorts.row(i);
            let sort = sort.as_ref();
            if let Some(end) = end {
                if !self.partitions.contains_key(key) {
                    self.windows.entry(end).or_default().push(key.into());
                    self.partitions.insert(
                        key.into(),
                        Partition {
                            end,
                            ..Partition::default()
                        },
                    );
                }
            }
            let part = self.partitions.entry(key.into()).or_default();
            if self.spec.function != RankFunction::RowNumber {
                // RANK, DENSE_RANK: rank = better rows (or distinct better
                // values) + 1; the row goes after its equals.
                let function = self.spec.function;
                let at = part.rows.partition_point(|k| k.sort.as_slice() <= sort);
                let old = ranks(&part.rows, function);
                self.seq += 1;
                part.rows.insert(
                    at,
                    Kept {
                        sort: sort.to_vec(),
                        seq: self.seq,
                        row: rows.row(i).as_ref().to_vec(),
                    },
                );
                let new = ranks(&part.rows, function);
                if new[at] > limit {
                    part.rows.remove(at);
                    continue;
                }
                let keep = new.partition_point(|&r| r <= limit);
                if end.is_none() {
                    // Rows after it moved down a rank, or out.
                    for idx in at + 1..part.rows.len() {
                        let (was, now) = (old[idx - 1], new[idx]);
                        let row = &part.rows[idx].row;
                        if idx >= keep {
                            changes.push((row.clone(), was, RowKind::Delete));
                        } else if was != now && ranked {
                            changes.push((row.clone(), was, RowKind::UpdateBefore));
                            changes.push((row.clone(), now, RowKind::UpdateAfter));
                        }
                    }
                    changes.push((part.rows[at].row.clone(), new[at], RowKind::Insert));
                }
                part.rows.truncate(keep);
                part.dirty = true;
                continue;
            }
            // After every kept row that sorts before it, and after (or,
            // with `later_first`, before) the ones equal to it.
            let at = if self.spec.later_first {
                part.rows.partition_point(|k| k.sort.as_slice() < sort)
            } else {
                part.rows.partition_point(|k| k.sort.as_slice() <= sort)
            };
            if at >= limit {
                continue;
            }
            self.seq += 1;
            let kept = Kept {
                sort: sort.to_vec(),
                seq: self.seq,
                row: rows.row(i).as_ref().to_vec(),
            };
            let before: Vec<Vec<u8>> = if ranked {
                part.rows[at..].iter().map(|k| k.row.clone()).collect()
            } else {
                Vec::new()
            };
            part.rows.insert(at, kept);
            let out_of_top = (part.rows.len() > limit).then(|| part.rows.pop()).flatten();
            part.dirty = true;
            if end.is_some() {
                // A window's rows come out when it closes.
                continue;
            }
            if ranked {
                // Ranks at..: each rank's row moved down by one.
                for (offset, k) in part.rows[at..].iter().enumerate() {
                    let rank = at + offset + 1;
                    match before.get(offset) {
                        Some(old) => {
                            changes.push((old.clone(), rank, RowKind::UpdateBefore));
                            changes.push((k.row.clone(), rank, RowKind::UpdateAfter));
                        }
                        None => changes.push((k.row.clone(), rank, RowKind::Insert)),
                    }
                }
            } else {
                changes.push((part.rows[at].row.clone(), at + 1, RowKind::Insert));
                if let Some(gone) = out_of_top {
                    changes.push((gone.row, limit, RowKind::Delete));
                }
            }
        }
        if late > 0 {
            ctx.metrics.add_late(late);
        }
        let borrowed: Vec<(&[u8], usize, RowKind)> = changes
            .iter()
            .map(|(r, rank, k)| (r.as_slice(), *rank, *k))
            .collect();
        self.emit(&borrowed, out)
    }

    fn on_watermark(
        &mut self,
        watermark: i64,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        if self.spec.window_end.is_none() {
            return Ok(());
        }
        let table = self.table()?;
        // Windows whose last millisecond the watermark reached.
        let later = self.windows.split_off(&watermark.saturating_add(2));
        let due = std::mem::replace(&mut self.windows, later);
        for (_, keys) in due {
            let mut rows: Vec<(Vec<u8>, usize, RowKind)> = Vec::new();
            for key in keys {
                if let Some(p) = self.partitions.remove(&key) {
                    let numbers = ranks(&p.rows, self.spec.function);
                    for (k, rank) in p.rows.into_iter().zip(numbers) {
                        rows.push((k.row, rank, RowKind::Insert));
                    }
                }
                ctx.state.delete(table, &state_key(ctx, &key, &[]))?;
            }
            let borrowed: Vec<(&[u8], usize, RowKind)> = rows
                .iter()
                .map(|(r, rank, k)| (r.as_slice(), *rank, *k))
                .collect();
            self.emit(&borrowed, out)?;
        }
        Ok(())
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        for (key, p) in self.partitions.iter_mut() {
            if p.dirty {
                p.dirty = false;
                ctx.state
                    .put_owned(table, state_key(ctx, key, &[]), encode(p))?;
            }
        }
        save_meta(ctx, table, self.watermark, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, StringArray};
    use arrow::datatypes::Int64Type;
    use proptest::prelude::*;

    use super::*;
    use crate::testing::OperatorHarness;
    use crate::types::row_kinds;

    /// (k, v, name).
    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
            Field::new("name", DataType::Utf8, false),
        ]))
    }

    fn batch(rows: &[(i64, Option<i64>, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("valid batch")
    }

    fn spec(limit: usize, rank: bool) -> TopNSpec {
        TopNSpec {
            partition_keys: vec![0],
            // v DESC, NULLs last.
            order: vec![(1, true, false)],
            limit,
            rank_column: rank,
            rank_name: "rn".into(),
            later_first: false,
            window_end: None,
            function: RankFunction::RowNumber,
        }
    }

    /// "kind name[ rank]" per output row.
    fn changes(batches: &[RecordBatch], rank: bool) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            let kinds = row_kinds(b).expect("kinds");
            for (i, k) in kinds.iter().enumerate() {
                let name = b.column(2).as_string::<i32>().value(i);
                if rank {
                    let r = b.column(3).as_primitive::<Int64Type>().value(i);
                    out.push(format!("{} {name} {r}", k.short_string()));
                } else {
                    out.push(format!("{} {name}", k.short_string()));
                }
            }
        }
        out
    }

    #[test]
    fn rows_enter_the_top_n_and_push_the_last_one_out() -> Result<()> {
        let mut h = OperatorHarness::new(Box::new(TopN::new(spec(2, false), &input())?))?;
        h.batch(batch(&[
            (1, Some(5), "a"),
            (1, Some(3), "b"),
            (2, Some(1), "x"),
        ]))?;
        assert_eq!(changes(&h.take_output(), false), ["+I a", "+I b", "+I x"]);
        // 4 beats b; 2 does not make it; an equal value ranks after.
        h.batch(batch(&[
            (1, Some(4), "c"),
            (1, Some(2), "d"),
            (1, Some(5), "e"),
        ]))?;
        assert_eq!(
            changes(&h.take_output(), false),
            ["+I c", "-D b", "+I e", "-D c"]
        );
        // NULLs sort last: never in a full top.
        h.batch(batch(&[(1, None, "n")]))?;
        assert!(h.take_output().is_empty());
        Ok(())
    }

    #[test]
    fn with_the_row_number_every_rank_whose_row_changed_is_updated() -> Result<()> {
        let mut h = OperatorHarness::new(Box::new(TopN::new(spec(3, true), &input())?))?;
        h.batch(batch(&[(1, Some(5), "a"), (1, Some(3), "b")]))?;
        assert_eq!(changes(&h.take_output(), true), ["+I a 1", "+I b 2"]);
        h.batch(batch(&[(1, Some(4), "c")]))?;
        assert_eq!(
            changes(&h.take_output(), true),
            ["-U b 2", "+U c 2", "+I b 3"]
        );
        h.batch(batch(&[(1, Some(9), "d")]))?;
        assert_eq!(
            changes(&h.take_output(), true),
            ["-U a 1", "+U d 1", "-U c 2", "+U a 2", "-U b 3", "+U c 3"]
        );
        Ok(())
    }

    #[test]
    fn with_later_first_an_equal_row_replaces_the_kept_one() -> Result<()> {
        let mut s = spec(1, false);
        s.later_first = true;
        let mut h = OperatorHarness::new(Box::new(TopN::new(s, &input())?))?;
        h.batch(batch(&[
            (1, Some(5), "a"),
            (1, Some(5), "b"),
            (1, Some(4), "c"),
        ]))?;
        assert_eq!(changes(&h.take_output(), false), ["+I a", "+I b", "-D a"]);
        Ok(())
    }

    #[test]
    fn a_window_top_n_emits_each_window_once_when_it_closes() -> Result<()> {
        // k is the window end here: PARTITION BY the window.
        let mut s = spec(2, true);
        s.window_end = Some(0);
        let input = Arc::new(Schema::new(vec![
            Field::new(
                "k",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("v", DataType::Int64, true),
            Field::new("name", DataType::Utf8, false),
        ]));
        let rows = |r: &[(i64, i64, &str)]| {
            RecordBatch::try_new(
                Arc::clone(&input),
                vec![
                    Arc::new(arrow::array::TimestampMillisecondArray::from(
                        r.iter().map(|x| x.0).collect::<Vec<_>>(),
                    )),
                    Arc::new(Int64Array::from(r.iter().map(|x| x.1).collect::<Vec<_>>())),
                    Arc::new(StringArray::from(r.iter().map(|x| x.2).collect::<Vec<_>>())),
                ],
            )
            .expect("valid batch")
        };
        let op = TopN::new(s.clone(), &input)?;
        assert!(!crate::types::is_updating(&op.schema()), "append-only");
        let mut h = OperatorHarness::new(Box::new(op))?;
        h.batch(rows(&[
            (10, 1, "a"),
            (10, 5, "b"),
            (20, 7, "x"),
            (10, 3, "c"),
        ]))?;
        assert!(h.take_output().is_empty(), "windows still open");
        let snapshot = h.checkpoint(1)?;
        let mut h = OperatorHarness::restored(Box::new(TopN::new(s, &input)?), &snapshot)?;
        h.watermark(9)?;
        let out = h.take_output();
        let got: Vec<(String, i64)> = out
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |i| {
                    (
                        b.column(2).as_string::<i32>().value(i).to_string(),
                        b.column(3).as_primitive::<Int64Type>().value(i),
                    )
                })
            })
            .collect();
        assert_eq!(got, [("b".to_string(), 1), ("c".to_string(), 2)]);
        // A row of the closed window is late; the other window comes later.
        h.batch(rows(&[(10, 9, "late"), (20, 8, "y")]))?;
        assert_eq!(
            h.metrics()
                .late_rows_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        h.watermark(30)?;
        assert_eq!(
            h.take_output().iter().map(|b| b.num_rows()).sum::<usize>(),
            2
        );
        Ok(())
    }

    #[test]
    fn rank_and_dense_rank_keep_ties_and_move_rows_down() -> Result<()> {
        let mut s = spec(2, true);
        s.function = RankFunction::Rank;
        let mut h = OperatorHarness::new(Box::new(TopN::new(s.clone(), &input())?))?;
        h.batch(batch(&[(1, Some(5), "a"), (1, Some(5), "b")]))?;
        assert_eq!(changes(&h.take_output(), true), ["+I a 1", "+I b 1"]);
        // 3 gets rank 3 > 2: dropped. 9 moves both to rank 2.
        h.batch(batch(&[(1, Some(3), "c"), (1, Some(9), "d")]))?;
        assert_eq!(
            changes(&h.take_output(), true),
            ["-U a 1", "+U a 2", "-U b 1", "+U b 2", "+I d 1"]
        );
        // Another 9: a and b fall to rank 3, out.
        h.batch(batch(&[(1, Some(9), "e")]))?;
        assert_eq!(
            changes(&h.take_output(), true),
            ["-D a 2", "-D b 2", "+I e 1"]
        );

        s.function = RankFunction::DenseRank;
        let mut h = OperatorHarness::new(Box::new(TopN::new(s, &input())?))?;
        h.batch(batch(&[
            (1, Some(5), "a"),
            (1, Some(9), "b"),
            (1, Some(9), "c"),
            (1, Some(3), "d"),
        ]))?;
        let mut got = changes(&h.take_output(), true);
        got.sort();
        // Dense ranks: 9 -> 1 (b, c), 5 -> 2 (a); 3 would be 3: out.
        let mut live: std::collections::BTreeMap<String, i32> = Default::default();
        for line in &got {
            let (kind, row) = line.split_once(' ').expect("kind");
            *live.entry(row.to_string()).or_default() +=
                if matches!(kind, "+I" | "+U") { 1 } else { -1 };
        }
        live.retain(|_, n| *n != 0);
        assert_eq!(
            live.keys().cloned().collect::<Vec<_>>(),
            ["a 2", "b 1", "c 1"]
        );
        Ok(())
    }

    #[test]
    fn partitions_survive_a_restore() -> Result<()> {
        let mut h = OperatorHarness::new(Box::new(TopN::new(spec(1, false), &input())?))?;
        h.batch(batch(&[(1, Some(5), "a"), (2, Some(1), "x")]))?;
        h.take_output();
        let snapshot = h.checkpoint(1)?;
        let mut h =
            OperatorHarness::restored(Box::new(TopN::new(spec(1, false), &input())?), &snapshot)?;
        // 4 does not beat the restored 5; 2 beats the restored 1.
        h.batch(batch(&[(1, Some(4), "b"), (2, Some(2), "y")]))?;
        assert_eq!(changes(&h.take_output(), false), ["+I y", "-D x"]);
        Ok(())
    }

    #[test]
    fn bad_specs_are_refused() {
        let err = |s: TopNSpec| TopN::new(s, &input()).err().map(|e| e.to_string());
        let mut s = spec(0, false);
        assert!(err(s.clone()).is_some_and(|e| e.contains("at least one row")));
        s.limit = 1;
        s.order.clear();
        assert!(err(s).is_some_and(|e| e.contains("needs ORDER BY")));
    }

    proptest! {
        /// The rows the changelog leaves equal, per partition, the first N
        /// rows of a stable sort of every row by v descending.
        #[test]
        fn the_output_leaves_the_top_n_of_all_rows(
            rows in prop::collection::vec((0i64..3, prop::option::of(0i64..6)), 1..60),
            limit in 1usize..4,
            rank in any::<bool>(),
            split in 1usize..10,
            function in prop_oneof![
                Just(RankFunction::RowNumber),
                Just(RankFunction::Rank),
                Just(RankFunction::DenseRank)
            ],
        ) {
            let mut s = spec(limit, rank);
            s.function = function;
            let mut h = OperatorHarness::new(Box::new(TopN::new(s, &input()).expect("op"))).expect("open");
            let names: Vec<String> = (0..rows.len()).map(|i| format!("r{i}")).collect();
            let mut live: std::collections::BTreeMap<String, i64> = Default::default();
            for (c, chunk) in rows.chunks(split).enumerate() {
                let base = c * split;
                let b: Vec<(i64, Option<i64>, &str)> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, (k, v))| (*k, *v, names[base + i].as_str()))
                    .collect();
                h.batch(batch(&b)).expect("batch");
                for line in changes(&h.take_output(), rank) {
                    let (kind, row) = line.split_once(' ').expect("kind");
                    let d = if matches!(kind, "+I" | "+U") { 1 } else { -1 };
                    *live.entry(row.to_string()).or_default() += d;
                }
            }
            live.retain(|_, n| *n != 0);
            prop_assert!(live.values().all(|n| *n == 1));
            let mut want = std::collections::BTreeSet::new();
            for k in 0..3 {
                let mut part: Vec<(usize, Option<i64>)> = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.0 == k)
                    .map(|(i, r)| (i, r.1))
                    .collect();
                // v descending, NULLs last, arrival order for ties.
                part.sort_by(|a, b| match (a.1, b.1) {
                    (Some(x), Some(y)) => y.cmp(&x).then(a.0.cmp(&b.0)),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => a.0.cmp(&b.0),
                });
                // The rank of each row of the sorted partition.
                let mut numbers: Vec<usize> = Vec::new();
                let mut dense = 0;
                for (pos, (_, v)) in part.iter().enumerate() {
                    let tie = pos > 0 && part[pos - 1].1 == *v;
                    numbers.push(match function {
                        RankFunction::RowNumber => pos + 1,
                        RankFunction::Rank if tie => numbers[pos - 1],
                        RankFunction::Rank => pos + 1,
                        RankFunction::DenseRank => {
                            if !tie {
                                dense += 1;
                            }
                            dense
                        }
                    });
                }
                for ((i, _), n) in part.iter().zip(numbers) {
                    if n <= limit {
                        want.insert(if rank {
                            format!("{} {}", names[*i], n)
                        } else {
                            names[*i].clone()
                        });
                    }
                }
            }
            let got: std::collections::BTreeSet<String> = live.into_keys().collect();
            prop_assert_eq!(got, want);
        }
    }
}
