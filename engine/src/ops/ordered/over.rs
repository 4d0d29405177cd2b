//! OVER aggregation with `ROWS BETWEEN n PRECEDING AND CURRENT ROW` over an
//! updating input, ordered by any columns (Nexmark q6: the average of each
//! seller's last ten auction prices, over the updating maximum bid of each
//! auction). Flink refuses this shape; Runnel computes it as a changelog.
//!
//! Each live row is emitted with its aggregates over itself and the `n`
//! rows before it in its partition's order. A change moves the rows after
//! it: an inserted row is `+I` with its aggregates, and each of the `n`
//! rows after it whose frame now holds other rows gets `-U` of its old
//! result and `+U` of its new one; a retracted row is `-D` with the result
//! it had, and the `n` rows after it are updated the same way. A row whose
//! aggregates come out equal is not re-emitted. Every change costs about
//! `n * n` aggregated rows, and a partition keeps all its live rows.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};

use super::{Entry, Partitions};
use crate::error::{EngineError, Result};
use crate::operator::{Collector, Operator, OperatorContext};
use crate::ops::agg::{take_inputs, BoundAggregates};
use crate::ops::over_agg::{OverAggregateSpec, OverFrame};
use crate::types::{row_kind_array, Barrier, RowKind};

/// The operator; see the module docs.
#[derive(Debug)]
pub struct RetractOver {
    spec: OverAggregateSpec,
    /// `n` of `n PRECEDING`.
    preceding: usize,
    schema: SchemaRef,
    aggs: BoundAggregates,
    /// The aggregates' results of one row, as bytes.
    results: RowConverter,
    parts: Partitions,
}

/// One output change: input row, its results, kind.
type Out = (Vec<u8>, Vec<u8>, RowKind);

impl RetractOver {
    /// Builds the operator for updating `input`.
    pub fn new(spec: OverAggregateSpec, input: &SchemaRef) -> Result<Self> {
        let OverFrame::Rows(n) = spec.frame else {
            return Err(EngineError::Plan(
                "over an updating stream, an OVER window takes ROWS BETWEEN n PRECEDING AND \
                 CURRENT ROW (RANGE and UNBOUNDED frames need an append-only input)"
                    .into(),
            ));
        };
        if !spec.lags.is_empty() {
            return Err(EngineError::Plan(
                "LAG over an updating stream is not supported; its input must be append-only"
                    .into(),
            ));
        }
        if spec.aggregates.is_empty() {
            return Err(EngineError::Internal(
                "an OVER aggregation without aggregates".into(),
            ));
        }
        let preceding = usize::try_from(n)
            .ok()
            .filter(|&n| n <= 1_000)
            .ok_or_else(|| {
                EngineError::Plan(format!(
                    "over an updating stream, an OVER frame reaches back at most 1000 rows, not {n}"
                ))
            })?;
        let parts = Partitions::new("OVER aggregation", input, &spec.partition_keys, &spec.order)?;
        let aggs = BoundAggregates::new(spec.aggregates.clone(), &parts.data)?;
        let results = RowConverter::new(
            aggs.fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(Self {
            schema: spec.output_schema(input)?,
            spec,
            preceding,
            aggs,
            results,
            parts,
        })
    }

    /// The output schema: the input's columns, the aggregates, the
    /// changelog column.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The results of the rows at `targets` of `rows`, each over its frame.
    fn frame_results(&self, rows: &[Entry], targets: Range<usize>) -> Result<Vec<Vec<u8>>> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.preceding;
        let first = targets.start.saturating_sub(n);
        let columns = self
            .parts
            .columns(rows[first..targets.end].iter().map(|e| e.row.as_slice()))?;
        let batch = RecordBatch::try_new(Arc::clone(&self.parts.data), columns)?;
        let inputs = self.aggs.evaluate(&batch)?;
        let mut indices: Vec<u32> = Vec::new();
        let mut groups: Vec<u32> = Vec::new();
        for (g, t) in targets.clone().enumerate() {
            for j in t.saturating_sub(n)..=t {
                indices.push((j - first) as u32);
                groups.push(g as u32);
            }
        }
        let taken = take_inputs(&inputs, &UInt32Array::from(indices))?;
        let total = targets.len();
        let all: Vec<u32> = (0..total as u32).collect();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (mut acc, input) in self.aggs.accumulators()?.into_iter().zip(&taken) {
            acc.update(&crate::aggregate::UpdateArgs {
                values: &input.values,
                groups: &groups,
                filter: input.filter.as_ref(),
                total_groups: total,
                first_row_seq: 0,
            })?;
            arrays.push(acc.evaluate(&all)?);
        }
        let converted = self.results.convert_columns(&arrays)?;
        Ok(converted.iter().map(|r| r.as_ref().to_vec()).collect())
    }

    /// Applies one change at `at` of `key`'s partition (an insertion of
    /// `entry`, or the removal of the row there) and adds its output.
    fn apply(
        &mut self,
        key: &[u8],
        at: usize,
        insert: Option<Entry>,
        ctx: &mut OperatorContext<'_>,
        out: &mut Vec<Out>,
    ) -> Result<()> {
        let n = self.preceding;
        let part = self.parts.get(key, ctx)?;
        let mut rows = std::mem::take(&mut part.rows);
        let result = self.apply_to(&mut rows, at, insert, n, out);
        let part = self.parts.get(key, ctx)?;
        part.rows = rows;
        part.dirty = true;
        result
    }

    fn apply_to(
        &self,
        rows: &mut Vec<Entry>,
        at: usize,
        insert: Option<Entry>,
        n: usize,
        out: &mut Vec<Out>,
    ) -> Result<()> {
        match insert {
            Some(entry) => {
                // The rows at at..at+n move one down and get it in their frames.
                let old = self.frame_results(rows, at..(at + n).min(rows.len()))?;
                rows.insert(at, entry);
                let new = self.frame_results(rows, at..(at + n + 1).min(rows.len()))?;
                out.push((rows[at].row.clone(), new[0].clone(), RowKind::Insert));
                for (k, was) in old.into_iter().enumerate() {
                    updated(&rows[at + 1 + k].row, was, &new[k + 1], out);
                }
            }
            None => {
                // The rows after it move one up and lose it from their frames.
                let old = self.frame_results(rows, at..(at + n + 1).min(rows.len()))?;
                let gone = rows.remove(at);
                let new = self.frame_results(rows, at..(at + n).min(rows.len()))?;
                let mut old = old.into_iter();
                if let Some(was) = old.next() {
                    out.push((gone.row, was, RowKind::Delete));
                }
                for (k, was) in old.enumerate() {
                    updated(&rows[at + k].row, was, &new[k], out);
                }
            }
        }
        Ok(())
    }

    fn emit(&self, changes: &[Out], out: &mut dyn Collector) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut columns = self
            .parts
            .columns(changes.iter().map(|(r, ..)| r.as_slice()))?;
        let parser = self.results.parser();
        columns.extend(
            self.results
                .convert_rows(changes.iter().map(|(_, r, _)| parser.parse(r)))?,
        );
        let kinds: Vec<RowKind> = changes.iter().map(|(.., k)| *k).collect();
        columns.push(row_kind_array(&kinds));
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// `-U`/`+U` of `row` when its results changed from `was` to `now`.
fn updated(row: &[u8], was: Vec<u8>, now: &[u8], out: &mut Vec<Out>) {
    if was != now {
        out.push((row.to_vec(), was, RowKind::UpdateBefore));
        out.push((row.to_vec(), now.to_vec(), RowKind::UpdateAfter));
    }
}

impl Operator for RetractOver {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.parts.open(ctx, "retract_over")
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let encoded = self.parts.encode(&batch, &self.spec.order)?;
        let mut changes: Vec<Out> = Vec::new();
        for i in 0..batch.num_rows() {
            let c = encoded.change(i);
            let part = self.parts.get(c.key, ctx)?;
            let (at, insert) = if c.kind.is_addition() {
                let at = part.rows.partition_point(|e| e.sort.as_slice() <= c.sort);
                let entry = Entry {
                    sort: c.sort.to_vec(),
                    row: c.row.to_vec(),
                };
                (at, Some(entry))
            } else {
                match part.find(c.sort, c.row) {
                    Some(at) => (at, None),
                    None => continue,
                }
            };
            self.apply(c.key, at, insert, ctx, &mut changes)?;
        }
        self.emit(&changes, out)
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.parts.checkpoint(ctx)
    }
}
