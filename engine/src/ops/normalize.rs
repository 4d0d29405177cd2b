//! Turns an upsert stream into a full changelog, as Flink's
//! ChangelogNormalize does for `upsert-kafka` sources.
//!
//! An upsert stream says, per key, "this is the row now" (`+U` or `+I`) or
//! "the key is gone" (`-D`, with only the key columns set), never what the
//! row was before. The operator keeps the last row of each key and emits:
//! `+I` of a key's first row, `-U` of the previous row and `+U` of the new
//! one when a row replaces a different one, nothing when the same row comes
//! again, `-D` of the previous row when the key is deleted, and nothing for
//! a delete of a key it does not hold. Input `-U` rows are ignored.
//!
//! State: one entry per key, `key group | key` to the row in Arrow's row
//! format, written for the keys changed since the last barrier and read
//! back when a key is not in memory.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{load_meta, save_meta, state_key};
use crate::ops::changelog_join::row_converter;
use crate::types::{is_updating, row_kind_array, row_kinds, Barrier, RowKind};

/// Bookkeeping bytes per key in memory.
const KEY_OVERHEAD: usize = 80;

/// What a normalize keys on.
#[derive(Debug, Clone)]
pub struct NormalizeSpec {
    /// The key (primary key) columns of the input.
    pub key_columns: Vec<usize>,
}

impl NormalizeSpec {
    /// A factory for the subtasks; checks the spec against the input.
    pub fn factory(self, input: SchemaRef) -> Result<OperatorFactory> {
        ChangelogNormalize::new(self.clone(), &input)?;
        Ok(Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(ChangelogNormalize::new(self.clone(), &input)?) as Box<dyn Operator>)
        }))
    }
}

/// The last row of a key in memory.
#[derive(Debug)]
struct Last {
    /// `None`: the key is deleted (its entry goes at the next barrier).
    row: Option<Box<[u8]>>,
    dirty: bool,
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct ChangelogNormalize {
    encoder: KeyEncoder,
    converter: RowConverter,
    width: usize,
    schema: SchemaRef,
    last: HashMap<Box<[u8]>, Last, ahash::RandomState>,
    /// Keys whose entry is in the backend but not in `last`.
    backed: bool,
    memory: usize,
    table: Option<TableId>,
}

impl ChangelogNormalize {
    /// Builds the operator for `input` (an updating stream).
    pub fn new(spec: NormalizeSpec, input: &SchemaRef) -> Result<Self> {
        if !is_updating(input) {
            return Err(EngineError::Plan(
                "a changelog normalize needs an updating input".into(),
            ));
        }
        let width = input.fields().len() - 1;
        if spec.key_columns.is_empty() || spec.key_columns.iter().any(|&k| k >= width) {
            return Err(EngineError::Plan(format!(
                "a changelog normalize needs key columns among the input's {width} columns"
            )));
        }
        Ok(Self {
            encoder: KeyEncoder::new(input, &spec.key_columns)?,
            converter: row_converter(input)?,
            width,
            schema: Arc::clone(input),
            last: HashMap::default(),
            backed: false,
            memory: 0,
            table: None,
        })
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("changelog normalize not opened".into()))
    }

    /// The last row of `key`: from memory, else from the backend.
    fn last_row(&mut self, key: &[u8], ctx: &mut OperatorContext<'_>) -> Result<Option<Box<[u8]>>> {
        if let Some(l) = self.last.get(key) {
            return Ok(l.row.clone());
        }
        if !self.backed {
            return Ok(None);
        }
        let table = self.table()?;
        Ok(ctx
            .state
            .get(table, &state_key(ctx, key, &[]))?
            .map(|v| v.into_boxed_slice()))
    }

    fn set(&mut self, key: &[u8], row: Option<Box<[u8]>>) {
        let add = row.as_ref().map_or(0, |r| r.len());
        match self.last.get_mut(key) {
            Some(l) => {
                let old = l.row.as_ref().map_or(0, |r| r.len());
                self.memory = (self.memory + add).saturating_sub(old);
                l.row = row;
                l.dirty = true;
            }
            None => {
                self.memory += add + key.len() + KEY_OVERHEAD;
                self.last.insert(key.into(), Last { row, dirty: true });
            }
        }
    }

    fn write_dirty(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        let mut deleted = Vec::new();
        for (key, l) in self.last.iter_mut() {
            if !l.dirty {
                continue;
            }
            l.dirty = false;
            let k = state_key(ctx, key, &[]);
            match &l.row {
                Some(r) => ctx.state.put_owned(table, k, r.to_vec())?,
                None => {
                    ctx.state.delete(table, &k)?;
                    deleted.push(key.clone());
                }
            }
        }
        for key in deleted {
            self.last.remove(&key);
            self.memory = self.memory.saturating_sub(key.len() + KEY_OVERHEAD);
        }
        save_meta(ctx, table, i64::MIN, 0)
    }
}

/// Emits `rows` (whole rows in `converter`'s format, with their kinds) as
/// one batch of `schema`, the changelog column last.
fn emit_rows(
    converter: &RowConverter,
    schema: &SchemaRef,
    rows: &[(Box<[u8]>, RowKind)],
    out: &mut dyn Collector,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let parser = converter.parser();
    let mut columns: Vec<ArrayRef> =
        converter.convert_rows(rows.iter().map(|(r, _)| parser.parse(r)))?;
    let kinds: Vec<RowKind> = rows.iter().map(|(_, k)| *k).collect();
    columns.push(row_kind_array(&kinds));
    out.collect(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

impl Operator for ChangelogNormalize {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/normalize", ctx.task.operator_name))?;
        self.table = Some(table);
        self.backed = load_meta(ctx, table)?.is_some();
        Ok(())
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
        let kinds = row_kinds(&batch)?;
        let keys = self.encoder.encode(&batch)?;
        let rows = self
            .converter
            .convert_columns(&batch.columns()[..self.width])?;
        let mut emitted: Vec<(Box<[u8]>, RowKind)> = Vec::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let key = keys.row(i);
            let key = key.as_ref();
            let prev = self.last_row(key, ctx)?;
            match kind {
                RowKind::Insert | RowKind::UpdateAfter => {
                    let row: Box<[u8]> = rows.row(i).as_ref().into();
                    match prev {
                        Some(p) if p == row => continue,
                        Some(p) => {
                            emitted.push((p, RowKind::UpdateBefore));
                            emitted.push((row.clone(), RowKind::UpdateAfter));
                        }
                        None => emitted.push((row.clone(), RowKind::Insert)),
                    }
                    self.set(key, Some(row));
                }
                RowKind::Delete => {
                    if let Some(p) = prev {
                        emitted.push((p, RowKind::Delete));
                        self.set(key, None);
                    }
                }
                RowKind::UpdateBefore => {}
            }
        }
        emit_rows(&self.converter, &self.schema, &emitted, out)?;
        if let Some(budget) = ctx.task.memory_budget {
            if self.memory > budget {
                self.write_dirty(ctx)?;
                self.last.clear();
                self.memory = 0;
                self.backed = true;
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.write_dirty(ctx)
    }
}

/// What an upsert materializer keys on: the sink's primary key.
#[derive(Debug, Clone)]
pub struct MaterializeSpec {
    /// The sink's primary key columns.
    pub key_columns: Vec<usize>,
}

impl MaterializeSpec {
    /// A factory for the subtasks; checks the spec against the input.
    pub fn factory(self, input: SchemaRef) -> Result<OperatorFactory> {
        UpsertMaterialize::new(self.clone(), &input)?;
        Ok(Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(UpsertMaterialize::new(self.clone(), &input)?) as Box<dyn Operator>)
        }))
    }
}

/// Before an upsert sink whose primary key is not the key of the query's
/// changes (Flink's SinkUpsertMaterializer): keeps, per sink key, the
/// query's live rows with that key in arrival order, and tells the sink
/// which row the key holds now. An added row becomes the key's row (`+I`
/// for a key that had none, `+U` otherwise); a retracted row that was the
/// key's newest hands the key to the newest row left (`+U`), or deletes
/// the key (`-D`) when none is left; retracting an older row changes
/// nothing downstream.
///
/// State: one entry per key, the live rows (length-prefixed, each with its
/// count), written for the keys changed since the last barrier.
#[derive(Debug)]
pub struct UpsertMaterialize {
    encoder: KeyEncoder,
    converter: RowConverter,
    width: usize,
    schema: SchemaRef,
    rows: HashMap<Box<[u8]>, (Vec<Box<[u8]>>, bool), ahash::RandomState>,
    backed: bool,
    table: Option<TableId>,
}

impl UpsertMaterialize {
    /// Builds the operator for `input` (an updating stream).
    pub fn new(spec: MaterializeSpec, input: &SchemaRef) -> Result<Self> {
        if !is_updating(input) {
            return Err(EngineError::Plan(
                "an upsert materializer needs an updating input".into(),
            ));
        }
        let width = input.fields().len() - 1;
        if spec.key_columns.is_empty() || spec.key_columns.iter().any(|&k| k >= width) {
            return Err(EngineError::Plan(format!(
                "an upsert materializer needs key columns among the input's {width} columns"
            )));
        }
        Ok(Self {
            encoder: KeyEncoder::new(input, &spec.key_columns)?,
            converter: row_converter(input)?,
            width,
            schema: Arc::clone(input),
            rows: HashMap::default(),
            backed: false,
            table: None,
        })
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("upsert materializer not opened".into()))
    }

    fn load(&mut self, key: &[u8], ctx: &mut OperatorContext<'_>) -> Result<()> {
        if !self.backed || self.rows.contains_key(key) {
            return Ok(());
        }
        let table = self.table()?;
        if let Some(v) = ctx.state.get(table, &state_key(ctx, key, &[]))? {
            let mut list = Vec::new();
            let mut b = v.as_slice();
            while b.len() >= 4 {
                let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if b.len() < 4 + len {
                    return Err(EngineError::Internal(
                        "corrupt upsert materializer state entry".into(),
                    ));
                }
                list.push(b[4..4 + len].into());
                b = &b[4 + len..];
            }
            self.rows.insert(key.into(), (list, false));
        }
        Ok(())
    }
}

impl Operator for UpsertMaterialize {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/materialize", ctx.task.operator_name))?;
        self.table = Some(table);
        self.backed = load_meta(ctx, table)?.is_some();
        Ok(())
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
        let kinds = row_kinds(&batch)?;
        let keys = self.encoder.encode(&batch)?;
        let rows = self
            .converter
            .convert_columns(&batch.columns()[..self.width])?;
        let mut emitted: Vec<(Box<[u8]>, RowKind)> = Vec::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let key = keys.row(i);
            let key = key.as_ref();
            self.load(key, ctx)?;
            let row: Box<[u8]> = rows.row(i).as_ref().into();
            let (list, dirty) = self.rows.entry(key.into()).or_default();
            if kind.is_addition() {
                let k = if list.is_empty() {
                    RowKind::Insert
                } else {
                    RowKind::UpdateAfter
                };
                list.push(row.clone());
                *dirty = true;
                emitted.push((row, k));
            } else if let Some(at) = list.iter().rposition(|r| *r == row) {
                let newest = at + 1 == list.len();
                list.remove(at);
                *dirty = true;
                match (newest, list.last()) {
                    (true, Some(now)) => emitted.push((now.clone(), RowKind::UpdateAfter)),
                    (true, None) => emitted.push((row, RowKind::Delete)),
                    (false, _) => {}
                }
            }
        }
        emit_rows(&self.converter, &self.schema, &emitted, out)
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        let mut empty = Vec::new();
        for (key, (list, dirty)) in self.rows.iter_mut() {
            if !*dirty {
                continue;
            }
            *dirty = false;
            let k = state_key(ctx, key, &[]);
            if list.is_empty() {
                ctx.state.delete(table, &k)?;
                empty.push(key.clone());
                continue;
            }
            let mut v = Vec::new();
            for r in list.iter() {
                v.extend_from_slice(&(r.len() as u32).to_le_bytes());
                v.extend_from_slice(r);
            }
            ctx.state.put_owned(table, k, v)?;
        }
        for key in empty {
            self.rows.remove(&key);
        }
        save_meta(ctx, table, i64::MIN, 0)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::testing::OperatorHarness;
    use crate::types::with_row_kind;

    fn schema() -> SchemaRef {
        with_row_kind(&Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn batch(rows: &[(RowKind, &str, Option<i64>)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                row_kind_array(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ],
        )
        .expect("valid batch")
    }

    fn out(h: &mut OperatorHarness) -> Vec<String> {
        let mut lines = Vec::new();
        for b in h.take_output() {
            let kinds = row_kinds(&b).expect("kinds");
            let k = b.column(0).as_string::<i32>();
            let v = b.column(1).as_primitive::<Int64Type>();
            for (i, kind) in kinds.iter().enumerate() {
                lines.push(format!(
                    "{} {} {}",
                    kind.short_string(),
                    k.value(i),
                    v.value(i)
                ));
            }
        }
        lines
    }

    fn op() -> Box<dyn Operator> {
        let spec = NormalizeSpec {
            key_columns: vec![0],
        };
        Box::new(ChangelogNormalize::new(spec, &schema()).expect("valid"))
    }

    use RowKind::{Delete as D, UpdateAfter as UA};

    #[test]
    fn upserts_become_inserts_updates_and_deletes() -> Result<()> {
        let mut h = OperatorHarness::new(op())?;
        h.batch(batch(&[
            (UA, "a", Some(1)),
            (UA, "b", Some(5)),
            (UA, "a", Some(2)),
        ]))?;
        assert_eq!(out(&mut h), ["+I a 1", "+I b 5", "-U a 1", "+U a 2"]);
        // The same row again changes nothing; a delete of an unknown key
        // neither.
        h.batch(batch(&[(UA, "b", Some(5)), (D, "z", None)]))?;
        assert!(out(&mut h).is_empty());
        let snapshot = h.checkpoint(1)?;
        let mut r = OperatorHarness::restored(op(), &snapshot)?;
        r.batch(batch(&[(D, "a", None), (UA, "b", Some(6))]))?;
        assert_eq!(out(&mut r), ["-D a 2", "-U b 5", "+U b 6"]);
        // A deleted key comes back as an insert.
        r.batch(batch(&[(UA, "a", Some(9))]))?;
        assert_eq!(out(&mut r), ["+I a 9"]);
        Ok(())
    }

    #[test]
    fn a_materializer_keeps_the_newest_live_row_of_each_sink_key() -> Result<()> {
        use RowKind::{Insert as I, UpdateBefore as UB};
        let spec = MaterializeSpec {
            key_columns: vec![0],
        };
        let mut h =
            OperatorHarness::new(Box::new(UpsertMaterialize::new(spec.clone(), &schema())?))?;
        // Two query rows share sink key a.
        h.batch(batch(&[(I, "a", Some(1)), (I, "a", Some(2))]))?;
        assert_eq!(out(&mut h), ["+I a 1", "+U a 2"]);
        // Retracting the older row changes nothing downstream.
        h.batch(batch(&[(UB, "a", Some(1))]))?;
        assert!(out(&mut h).is_empty());
        let snapshot = h.checkpoint(1)?;
        let mut r = OperatorHarness::restored(
            Box::new(UpsertMaterialize::new(spec, &schema())?),
            &snapshot,
        )?;
        r.batch(batch(&[(I, "a", Some(3)), (D, "a", Some(3))]))?;
        assert_eq!(out(&mut r), ["+U a 3", "+U a 2"]);
        r.batch(batch(&[(D, "a", Some(2))]))?;
        assert_eq!(out(&mut r), ["-D a 2"]);
        Ok(())
    }
}
