//! Top-N over an updating input (Flink's retractable rank).
//!
//! Each change is applied to its partition; the top rows (ranks 1 to N,
//! ties included for RANK and DENSE_RANK) before and after it are
//! compared. With ROW_NUMBER, each rank whose row changed gets `-U` of its
//! old row and `+U` of its new one, `+I` when it had none, `-D` when it
//! has none left (keyed by partition and rank, as the append-only Top-N).
//! With RANK and DENSE_RANK, equal rows share a rank: a row that stayed in
//! the top with another rank gets `-U`/`+U`, one that left `-D`, one that
//! came in `+I`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::SchemaRef;

use super::{Entry, Partitions};
use crate::error::{EngineError, Result};
use crate::operator::{Collector, Operator, OperatorContext};
use crate::ops::top_n::{RankFunction, TopNSpec};
use crate::types::{row_kind_array, Barrier, RowKind};

/// The operator; see the module docs.
#[derive(Debug)]
pub struct RetractTopN {
    spec: TopNSpec,
    schema: SchemaRef,
    parts: Partitions,
}

impl RetractTopN {
    /// Builds the operator for updating `input`.
    pub fn new(spec: TopNSpec, input: &SchemaRef) -> Result<Self> {
        if spec.limit == 0 {
            return Err(EngineError::Plan(
                "a Top-N keeps at least one row (WHERE rn <= N with N >= 1)".into(),
            ));
        }
        if spec.window_end.is_some() {
            return Err(EngineError::Plan(
                "a window Top-N over an updating stream is not supported".into(),
            ));
        }
        let parts = Partitions::new("Top-N", input, &spec.partition_keys, &spec.order)?;
        Ok(Self {
            schema: spec.output_schema(input),
            spec,
            parts,
        })
    }

    /// The output schema: the input's columns, the rank, the changelog
    /// column.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Emits `changes` (row bytes, rank, kind).
    fn emit(&self, changes: &[(Vec<u8>, usize, RowKind)], out: &mut dyn Collector) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = self
            .parts
            .columns(changes.iter().map(|(r, ..)| r.as_slice()))?;
        if self.spec.rank_column {
            columns.push(Arc::new(Int64Array::from_iter_values(
                changes.iter().map(|(_, rank, _)| *rank as i64),
            )));
        }
        let kinds: Vec<RowKind> = changes.iter().map(|(.., k)| *k).collect();
        columns.push(row_kind_array(&kinds));
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// The top rows of `rows` (best first) with their ranks: those of rank
/// `limit` or better.
pub(super) fn top(rows: &[Entry], function: RankFunction, limit: usize) -> Vec<(&Entry, usize)> {
    let mut out: Vec<(&Entry, usize)> = Vec::new();
    let mut dense = 0;
    for (i, e) in rows.iter().enumerate() {
        let tie = i > 0 && rows[i - 1].sort == e.sort;
        let rank = match function {
            RankFunction::RowNumber => i + 1,
            RankFunction::Rank if tie => out[i - 1].1,
            RankFunction::Rank => i + 1,
            RankFunction::DenseRank => {
                if !tie {
                    dense += 1;
                }
                dense
            }
        };
        if rank > limit {
            break;
        }
        out.push((e, rank));
    }
    out
}

/// The changes that turn top list `old` into `new`. Without the rank in
/// the output (`ranked` false) only the rows that left (`-D`) and came in
/// (`+I`) change it.
pub(super) fn diff(
    old: &[(&Entry, usize)],
    new: &[(&Entry, usize)],
    function: RankFunction,
    ranked: bool,
    changes: &mut Vec<(Vec<u8>, usize, RowKind)>,
) {
    if function == RankFunction::RowNumber && ranked {
        // One row per rank: compare rank by rank.
        for i in 0..old.len().max(new.len()) {
            match (old.get(i), new.get(i)) {
                (Some((o, rank)), Some((n, _))) if o.row != n.row => {
                    changes.push((o.row.clone(), *rank, RowKind::UpdateBefore));
                    changes.push((n.row.clone(), *rank, RowKind::UpdateAfter));
                }
                (Some(_), Some(_)) => {}
                (Some((o, rank)), None) => changes.push((o.row.clone(), *rank, RowKind::Delete)),
                (None, Some((n, rank))) => changes.push((n.row.clone(), *rank, RowKind::Insert)),
                (None, None) => {}
            }
        }
        return;
    }
    // Match equal rows, in order, between the two lists.
    let mut taken = vec![false; new.len()];
    let mut removed = Vec::new();
    for (o, rank) in old {
        let found = (0..new.len()).find(|&j| !taken[j] && new[j].0.row == o.row);
        match found {
            Some(j) => {
                taken[j] = true;
                if ranked && new[j].1 != *rank {
                    changes.push((o.row.clone(), *rank, RowKind::UpdateBefore));
                    changes.push((o.row.clone(), new[j].1, RowKind::UpdateAfter));
                }
            }
            None => removed.push((o.row.clone(), *rank, RowKind::Delete)),
        }
    }
    changes.extend(removed);
    for (j, (n, rank)) in new.iter().enumerate() {
        if !taken[j] {
            changes.push((n.row.clone(), *rank, RowKind::Insert));
        }
    }
}

impl Operator for RetractTopN {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.parts.open(ctx, "retract_top_n")
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
        let (function, limit) = (self.spec.function, self.spec.limit);
        let mut changes: Vec<(Vec<u8>, usize, RowKind)> = Vec::new();
        for i in 0..batch.num_rows() {
            let c = encoded.change(i);
            let part = self.parts.get(c.key, ctx)?;
            let at = if c.kind.is_addition() {
                part.rows.partition_point(|e| e.sort.as_slice() <= c.sort)
            } else {
                match part.find(c.sort, c.row) {
                    Some(at) => at,
                    None => continue,
                }
            };
            // The top rows before the change, unless it is below them and
            // moves nothing in them (a row inserted right after them may
            // come in).
            let before: Option<Vec<(Entry, usize)>> = {
                let current = top(&part.rows, function, limit);
                let below = match c.kind.is_addition() {
                    true => at > current.len(),
                    false => at >= current.len(),
                };
                (!below).then(|| current.into_iter().map(|(e, r)| (e.clone(), r)).collect())
            };
            if c.kind.is_addition() {
                part.insert(c.sort, c.row);
            } else {
                part.rows.remove(at);
                part.dirty = true;
            }
            if let Some(before) = before {
                let before: Vec<(&Entry, usize)> = before.iter().map(|(e, r)| (e, *r)).collect();
                diff(
                    &before,
                    &top(&part.rows, function, limit),
                    function,
                    self.spec.rank_column,
                    &mut changes,
                );
            }
        }
        self.emit(&changes, out)
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.parts.checkpoint(ctx)
    }
}
