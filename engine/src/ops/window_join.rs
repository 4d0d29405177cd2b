//! Window joins, and the window table function used without GROUP BY.
//!
//! [`WindowAssign`] appends `window_start`, `window_end` and `window_time`
//! to every row, once per window the row belongs to: one copy for TUMBLE,
//! `size / slide` copies for HOP, one per growth step for CUMULATE. It is
//! what `SELECT ... FROM TABLE(TUMBLE(...))` without a GROUP BY runs, and
//! what feeds a window join from a table.
//!
//! [`WindowJoin`] is the join (INNER, LEFT, RIGHT or FULL) of two
//! append-only streams whose rows carry windows, on equal windows and
//! equal keys (`window_start` and `window_end` are among the equality
//! keys). Rows of each side are held per window end. When the watermark
//! reaches the window's last millisecond (`end - 1`, the moment a window
//! aggregate fires) both sides of the window are complete: they are joined
//! by hashing the right side's keys, the remaining ON conditions are
//! applied, the result is emitted and the held rows are dropped. An outer
//! join then emits each row of a kept side that no pair passing the ON
//! condition used, padded with NULLs on the other side (its window columns
//! included, as in Flink). A row for a window that already fired is late:
//! it is counted and dropped. Output: the left side's columns, then the
//! right side's; append-only, since a window's rows are all known when it
//! is joined.
//!
//! State: at each barrier the rows that arrived since the previous barrier
//! are written to the backend as Arrow IPC, split by key group, under
//! `key group | window end | side | sequence`. Restoring reads them back;
//! firing a window deletes its entries in each key group it wrote. Held rows
//! also stay in memory until their window fires, so the rows of the open
//! windows must fit in memory (they are one window's worth of input).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use runnel_state::key::encode_time;
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::keys::{hash_key, KeyEncoder};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{decode_time_at, load_meta, save_meta, scan_owned};
use crate::ops::lookup_join::JoinKind;
use crate::types::{event_time_millis, is_updating, Barrier, EventTime};
use crate::window::WindowSpec;

/// Names of the columns [`WindowAssign`] appends.
pub const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// Rows per emitted batch of join results.
pub(crate) const OUTPUT_BATCH_ROWS: usize = 8192;

/// True when a key column of row `i` is NULL: the row matches nothing.
pub(crate) fn null_key(batch: &RecordBatch, key_columns: &[usize], i: usize) -> bool {
    key_columns.iter().any(|&c| batch.column(c).is_null(i))
}

fn window_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, None),
        false,
    )
}

/// Appends each row's windows (see the module docs).
#[derive(Debug)]
pub struct WindowAssign {
    window: WindowSpec,
    time_column: usize,
    /// Window offset in milliseconds (see `WindowAggregateSpec::offset`).
    offset: i64,
    schema: SchemaRef,
    /// For a late-data table: the output with the late-row columns, which
    /// also carries the rows dropped for having no time.
    marked: Option<SchemaRef>,
    watermark: EventTime,
}

impl WindowAssign {
    /// Output schema: `input` plus `window_start`, `window_end`, `window_time`.
    pub fn output_schema(input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(WINDOW_COLUMNS.iter().map(|n| window_field(n)));
        Arc::new(Schema::new(fields))
    }

    /// A factory for windows of `window` over `input`'s `time_column`.
    /// SESSION windows depend on the rows around them and are rejected.
    pub fn factory(
        window: WindowSpec,
        time_column: usize,
        input: &Schema,
    ) -> Result<OperatorFactory> {
        Self::factory_with_offset(window, time_column, 0, input)
    }

    /// [`WindowAssign::factory`] for windows shifted by `offset`
    /// milliseconds from multiples of their size.
    pub fn factory_with_offset(
        window: WindowSpec,
        time_column: usize,
        offset: i64,
        input: &Schema,
    ) -> Result<OperatorFactory> {
        Self::factory_reporting(window, time_column, offset, input, false)
    }

    /// [`WindowAssign::factory_with_offset`]; with `late_rows`, rows
    /// without a time are reported in the output (see
    /// [`crate::ops::late::with_late_columns`]) for a late-data table, not
    /// only counted.
    pub fn factory_reporting(
        window: WindowSpec,
        time_column: usize,
        offset: i64,
        input: &Schema,
        late_rows: bool,
    ) -> Result<OperatorFactory> {
        if let WindowSpec::Session { .. } = window {
            return Err(EngineError::Plan(
                "a SESSION window must be followed by GROUP BY window_start, window_end".into(),
            ));
        }
        window.validate()?;
        if time_column >= input.fields().len() {
            return Err(EngineError::Plan(format!(
                "window time column {time_column} is outside the input's {} columns",
                input.fields().len()
            )));
        }
        let schema = Self::output_schema(input);
        let marked = late_rows.then(|| crate::ops::late::with_late_columns(&schema));
        Ok(Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(WindowAssign {
                window,
                time_column,
                offset,
                schema: Arc::clone(&schema),
                marked: marked.clone(),
                watermark: EventTime::MIN,
            }) as Box<dyn Operator>)
        }))
    }
}

impl Operator for WindowAssign {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let times = event_time_millis(batch.column(self.time_column))?;
        let mut rows: Vec<u32> = Vec::with_capacity(batch.num_rows());
        let mut starts: Vec<i64> = Vec::with_capacity(batch.num_rows());
        let mut ends: Vec<i64> = Vec::with_capacity(batch.num_rows());
        let mut no_time = 0u64;
        for i in 0..batch.num_rows() {
            if times.is_null(i) {
                no_time += 1;
                continue;
            }
            let shifted = times.value(i).saturating_sub(self.offset);
            for (s, e) in self.window.windows_of(shifted) {
                rows.push(i as u32);
                starts.push(s.saturating_add(self.offset));
                ends.push(e.saturating_add(self.offset));
            }
        }
        if no_time > 0 {
            // A row without a time belongs to no window, as in an aggregate.
            ctx.metrics.add_late(no_time);
            if let Some(marked) = &self.marked {
                let late = arrow::compute::is_null(&times)?;
                out.collect(crate::ops::late::late_rows_marked(
                    marked,
                    &batch,
                    &late,
                    &times,
                    self.watermark,
                )?)?;
            }
        }
        let mut columns = take_record_batch(&batch, &UInt32Array::from(rows))?
            .columns()
            .to_vec();
        let times: Vec<i64> = ends.iter().map(|e| e - 1).collect();
        columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
        columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
        columns.push(Arc::new(TimestampMillisecondArray::from(times)));
        let results = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        match &self.marked {
            Some(marked) => out.collect(crate::ops::late::results_with_late_columns(
                marked, results,
            )?),
            None => out.collect(results),
        }
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        // Only to say when a row without a time came (late-data table).
        self.watermark = self.watermark.max(watermark);
        Ok(())
    }
}

/// What a window join joins on.
#[derive(Debug, Clone)]
pub struct WindowJoinSpec {
    /// Equality keys of the left input; the window start is one of them.
    pub left_keys: Vec<usize>,
    /// Equality keys of the right input, pairwise equal to `left_keys`.
    pub right_keys: Vec<usize>,
    /// The left input's `window_end` column (also one of `left_keys`).
    pub left_window_end: usize,
    /// The right input's `window_end` column.
    pub right_window_end: usize,
    /// Other ON conditions, over the left columns followed by the right.
    pub residual: Option<Expr>,
    /// Which unmatched rows are kept (padded with NULLs).
    pub kind: JoinKind,
    /// Report late rows in the output (for a late-data table) instead of
    /// only counting them: the output then has
    /// [`crate::ops::late::with_late_columns`].
    pub late_rows: bool,
}

impl WindowJoinSpec {
    /// Left columns, then right columns.
    pub fn output_schema(left: &Schema, right: &Schema) -> SchemaRef {
        Self::padded_schema(left, right, JoinKind::Inner)
    }

    /// Left columns, then right columns; the columns of a side that `kind`
    /// pads with NULLs are nullable.
    pub fn padded_schema(left: &Schema, right: &Schema, kind: JoinKind) -> SchemaRef {
        let pad_left = matches!(kind, JoinKind::Right | JoinKind::Full);
        let pad_right = matches!(kind, JoinKind::Left | JoinKind::Full);
        let fields: Vec<Field> = left
            .fields()
            .iter()
            .map(|f| {
                f.as_ref()
                    .clone()
                    .with_nullable(f.is_nullable() || pad_left)
            })
            .chain(right.fields().iter().map(|f| {
                f.as_ref()
                    .clone()
                    .with_nullable(f.is_nullable() || pad_right)
            }))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// A factory for the subtasks; checks the spec against the inputs.
    pub fn factory(self, left: SchemaRef, right: SchemaRef) -> Result<OperatorFactory> {
        WindowJoin::new(self.clone(), &left, &right)?;
        Ok(Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(WindowJoin::new(self.clone(), &left, &right)?) as Box<dyn Operator>)
        }))
    }
}

/// Rows of one window not yet joined.
#[derive(Debug, Default)]
struct Held {
    /// Batches per side (0 left, 1 right).
    rows: [Vec<RecordBatch>; 2],
    /// How many batches of each side are already in the backend.
    saved: [usize; 2],
    /// Key groups with entries of this window in the backend.
    groups: BTreeSet<u16>,
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct WindowJoin {
    /// The planner's input schemas: held batches are concatenated under
    /// them, since batches of one side may differ in nullability (the
    /// branches of a UNION ALL).
    inputs: [SchemaRef; 2],
    encoders: [KeyEncoder; 2],
    key_columns: [Vec<usize>; 2],
    end_columns: [usize; 2],
    residual: Option<Expr>,
    /// Sides whose unmatched rows are emitted padded (0 left, 1 right).
    keep_unmatched: [bool; 2],
    schema: SchemaRef,
    windows: BTreeMap<EventTime, Held>,
    watermark: EventTime,
    seq: u64,
    table: Option<TableId>,
    /// With `late_rows`: the output with the late-row columns.
    marked: Option<SchemaRef>,
}

impl WindowJoin {
    /// Builds the operator for inputs `left` and `right`.
    pub fn new(spec: WindowJoinSpec, left: &SchemaRef, right: &SchemaRef) -> Result<Self> {
        check_join_inputs(
            "a window join",
            left,
            right,
            &spec.left_keys,
            &spec.right_keys,
        )?;
        if !spec.left_keys.contains(&spec.left_window_end)
            || !spec.right_keys.contains(&spec.right_window_end)
        {
            return Err(EngineError::Plan(
                "a window join must have window_end = window_end among its keys".into(),
            ));
        }
        let schema = WindowJoinSpec::padded_schema(left, right, spec.kind);
        check_condition(spec.residual.as_ref(), &schema)?;
        Ok(Self {
            marked: spec
                .late_rows
                .then(|| crate::ops::late::with_late_columns(&schema)),
            keep_unmatched: [
                matches!(spec.kind, JoinKind::Left | JoinKind::Full),
                matches!(spec.kind, JoinKind::Right | JoinKind::Full),
            ],
            inputs: [Arc::clone(left), Arc::clone(right)],
            encoders: [
                KeyEncoder::new(left, &spec.left_keys)?,
                KeyEncoder::new(right, &spec.right_keys)?,
            ],
            key_columns: [spec.left_keys, spec.right_keys],
            end_columns: [spec.left_window_end, spec.right_window_end],
            residual: spec.residual,
            schema,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
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
            .ok_or_else(|| EngineError::Internal("window join not opened".into()))
    }

    /// Joins the rows of one window and emits the result.
    fn join(&self, held: &Held, out: &mut dyn Collector) -> Result<()> {
        let kept = |side: usize| self.keep_unmatched[side] && !held.rows[side].is_empty();
        if (held.rows[0].is_empty() || held.rows[1].is_empty()) && !kept(0) && !kept(1) {
            return Ok(());
        }
        let left = concat_batches(&self.inputs[0], &held.rows[0])?;
        let right = concat_batches(&self.inputs[1], &held.rows[1])?;
        // Rows of each side some emitted pair used (outer joins only).
        let mut matched = [
            vec![
                false;
                if self.keep_unmatched[0] {
                    left.num_rows()
                } else {
                    0
                }
            ],
            vec![
                false;
                if self.keep_unmatched[1] {
                    right.num_rows()
                } else {
                    0
                }
            ],
        ];
        if left.num_rows() > 0 && right.num_rows() > 0 {
            let left_keys = self.encoders[0].encode(&left)?;
            let right_keys = self.encoders[1].encode(&right)?;
            // NULL keys match nothing.
            let mut index: HashMap<&[u8], Vec<u32>, ahash::RandomState> = HashMap::default();
            for (j, row) in right_keys.iter().enumerate() {
                if !null_key(&right, &self.key_columns[1], j) {
                    index.entry(row.data()).or_default().push(j as u32);
                }
            }
            let mut li: Vec<u32> = Vec::new();
            let mut ri: Vec<u32> = Vec::new();
            for (i, row) in left_keys.iter().enumerate() {
                let Some(matches) = index.get(row.as_ref()) else {
                    continue;
                };
                if null_key(&left, &self.key_columns[0], i) {
                    continue;
                }
                for &j in matches {
                    li.push(i as u32);
                    ri.push(j);
                }
                if li.len() >= OUTPUT_BATCH_ROWS {
                    self.emit(&left, &right, &li, &ri, &mut matched, out)?;
                    li.clear();
                    ri.clear();
                }
            }
            if !li.is_empty() {
                self.emit(&left, &right, &li, &ri, &mut matched, out)?;
            }
        }
        for (side, used) in matched.iter().enumerate() {
            if !self.keep_unmatched[side] {
                continue;
            }
            let alone: Vec<u32> = (0..used.len() as u32)
                .filter(|&i| !used[i as usize])
                .collect();
            if alone.is_empty() {
                continue;
            }
            let rows = take_record_batch(
                if side == 0 { &left } else { &right },
                &UInt32Array::from(alone),
            )?;
            let n = rows.num_rows();
            let nulls = |schema: &SchemaRef| -> Vec<ArrayRef> {
                schema
                    .fields()
                    .iter()
                    .map(|f| arrow::array::new_null_array(f.data_type(), n))
                    .collect()
            };
            let columns: Vec<ArrayRef> = if side == 0 {
                let mut c = rows.columns().to_vec();
                c.extend(nulls(&self.inputs[1]));
                c
            } else {
                let mut c = nulls(&self.inputs[0]);
                c.extend(rows.columns().iter().cloned());
                c
            };
            out.collect(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)?;
        }
        Ok(())
    }

    /// Emits the pairs `li`/`ri` that pass the other ON conditions and
    /// marks their rows in `matched` (the sides an outer join keeps).
    fn emit(
        &self,
        left: &RecordBatch,
        right: &RecordBatch,
        li: &[u32],
        ri: &[u32],
        matched: &mut [Vec<bool>; 2],
        out: &mut dyn Collector,
    ) -> Result<()> {
        let l = take_record_batch(left, &UInt32Array::from(li.to_vec()))?;
        let r = take_record_batch(right, &UInt32Array::from(ri.to_vec()))?;
        let mut columns = l.columns().to_vec();
        columns.extend(r.columns().iter().cloned());
        let mut batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let keep = match &self.residual {
            Some(cond) => Some(cond.evaluate(&batch)?.as_boolean().clone()),
            None => None,
        };
        for (k, (&i, &j)) in li.iter().zip(ri).enumerate() {
            let passes = keep.as_ref().is_none_or(|m| m.is_valid(k) && m.value(k));
            if passes {
                if let Some(m) = matched[0].get_mut(i as usize) {
                    *m = true;
                }
                if let Some(m) = matched[1].get_mut(j as usize) {
                    *m = true;
                }
            }
        }
        if let Some(keep) = keep {
            batch = filter_record_batch(&batch, &keep)?;
        }
        if batch.num_rows() > 0 {
            out.collect(batch)?;
        }
        Ok(())
    }

    /// Writes the rows that arrived since the last barrier, and the meta entry.
    fn save(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        for (&end, held) in self.windows.iter_mut() {
            let ns = encode_time(end);
            for side in 0..2 {
                for batch in &held.rows[side][held.saved[side]..] {
                    put_by_key_group(
                        ctx,
                        table,
                        (&ns, side as u8),
                        batch,
                        &self.encoders[side],
                        &mut self.seq,
                        &mut held.groups,
                    )?;
                }
                held.saved[side] = held.rows[side].len();
            }
        }
        save_meta(ctx, table, self.watermark, self.seq)
    }

    /// Deletes a fired window's entries.
    fn forget(&self, end: EventTime, held: &Held, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        for kg in &held.groups {
            let mut prefix = kg.to_be_bytes().to_vec();
            prefix.extend_from_slice(&encode_time(end));
            ctx.state.delete_prefix(table, &prefix)?;
        }
        Ok(())
    }
}

/// Checks what every join of two streams needs: append-only inputs and
/// equal, non-empty key lists of pairwise equal types.
pub(crate) fn check_join_inputs(
    what: &str,
    left: &Schema,
    right: &Schema,
    left_keys: &[usize],
    right_keys: &[usize],
) -> Result<()> {
    if is_updating(left) || is_updating(right) {
        return Err(EngineError::Plan(format!(
            "{what} needs append-only inputs; one side is an updating stream"
        )));
    }
    check_join_keys(what, left, right, left_keys, right_keys)
}

/// Checks a join's key lists: as long as each other, not empty, pairwise
/// of one type, and data columns of their inputs (not the changelog
/// column).
pub(crate) fn check_join_keys(
    what: &str,
    left: &Schema,
    right: &Schema,
    left_keys: &[usize],
    right_keys: &[usize],
) -> Result<()> {
    for (schema, keys) in [(left, left_keys), (right, right_keys)] {
        let width = schema.fields().len() - usize::from(is_updating(schema));
        if let Some(k) = keys.iter().find(|&&k| k >= width) {
            return Err(EngineError::Plan(format!(
                "{what}: key column {k} is not a data column of {schema}"
            )));
        }
    }
    if left_keys.len() != right_keys.len() || left_keys.is_empty() {
        return Err(EngineError::Plan(format!(
            "{what} needs equal, non-empty key lists"
        )));
    }
    for (&l, &r) in left_keys.iter().zip(right_keys) {
        let (lf, rf) = (left.field(l), right.field(r));
        if lf.data_type() != rf.data_type() {
            return Err(EngineError::Plan(format!(
                "join keys {} ({}) and {} ({}) have different types; CAST one side",
                lf.name(),
                lf.data_type(),
                rf.name(),
                rf.data_type()
            )));
        }
    }
    Ok(())
}

/// Checks that the join's other conditions are BOOLEAN over its output.
pub(crate) fn check_condition(residual: Option<&Expr>, output: &Schema) -> Result<()> {
    if let Some(r) = residual {
        let t = r.data_type(output)?;
        if t != DataType::Boolean {
            return Err(EngineError::Plan(format!(
                "a join condition must be BOOLEAN, not {t}"
            )));
        }
    }
    Ok(())
}

/// Emits joined pairs (left columns, then right columns) that pass the
/// other conditions.
pub(crate) fn emit_pairs(
    schema: &SchemaRef,
    residual: Option<&Expr>,
    columns: Vec<ArrayRef>,
    out: &mut dyn Collector,
) -> Result<()> {
    let mut batch = RecordBatch::try_new(Arc::clone(schema), columns)?;
    if let Some(cond) = residual {
        let keep = cond.evaluate(&batch)?;
        batch = filter_record_batch(&batch, keep.as_boolean())?;
    }
    if batch.num_rows() > 0 {
        out.collect(batch)?;
    }
    Ok(())
}

/// Writes `batch`'s rows split by the key group of their `encoder` key, one
/// Arrow IPC entry per key group under `key group | ns | side | seq`, and
/// adds the key groups written to `groups`. `seq` numbers the entries.
pub(crate) fn put_by_key_group(
    ctx: &mut OperatorContext<'_>,
    table: TableId,
    (ns, side): (&[u8], u8),
    batch: &RecordBatch,
    encoder: &KeyEncoder,
    seq: &mut u64,
    groups: &mut BTreeSet<u16>,
) -> Result<()> {
    let keys = encoder.encode(batch)?;
    let mut by_group: BTreeMap<u16, Vec<u32>> = BTreeMap::new();
    for (i, row) in keys.iter().enumerate() {
        let kg = runnel_state::key_group_for_hash(hash_key(row.as_ref()), ctx.task.max_parallelism);
        by_group.entry(kg).or_default().push(i as u32);
    }
    for (kg, rows) in by_group {
        let part = take_record_batch(batch, &UInt32Array::from(rows))?;
        let mut suffix = vec![side];
        suffix.extend_from_slice(&seq.to_be_bytes());
        *seq += 1;
        let key = runnel_state::encode_key(kg, ns, &suffix);
        ctx.state.put(table, &key, &to_ipc(&part)?)?;
        groups.insert(kg);
    }
    Ok(())
}

/// The side byte of an entry written by [`put_by_key_group`].
pub(crate) fn side_of(key: &[u8], table: &str) -> Result<usize> {
    match key.first() {
        Some(0) => Ok(0),
        Some(1) => Ok(1),
        _ => Err(EngineError::State(runnel_state::StateError::Corrupt {
            table: table.into(),
            reason: "an entry names no side".into(),
        })),
    }
}

fn to_ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema())?;
        w.write(batch)?;
        w.finish()?;
    }
    Ok(buf)
}

pub(crate) fn from_ipc(bytes: &[u8]) -> Result<RecordBatch> {
    let mut reader = StreamReader::try_new(bytes, None)?;
    reader.next().transpose()?.ok_or_else(|| {
        EngineError::State(runnel_state::StateError::Corrupt {
            table: "window join".into(),
            reason: "a stored batch is empty".into(),
        })
    })
}

impl Operator for WindowJoin {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/window_join", ctx.task.operator_name))?;
        self.table = Some(table);
        let Some((watermark, seq)) = load_meta(ctx, table)? else {
            return Ok(());
        };
        self.watermark = watermark;
        self.seq = seq;
        for (kg, ns, key, value) in scan_owned(ctx, table, 8)? {
            let end = decode_time_at(&ns, 0)?;
            let side = side_of(&key, "window join")?;
            let batch = from_ipc(&value)?;
            let held = self.windows.entry(end).or_default();
            held.rows[side].push(batch);
            held.saved[side] += 1;
            held.groups.insert(kg);
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
                "a window join has two inputs, got input {input}"
            )));
        }
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let ends = event_time_millis(batch.column(self.end_columns[input]))?;
        // Rows per window end, in first-seen order (a batch spans few windows).
        let mut by_end: Vec<(EventTime, Vec<u32>)> = Vec::new();
        let mut late = vec![false; n];
        for (i, is_late) in late.iter_mut().enumerate() {
            if ends.is_null(i) || ends.value(i).saturating_sub(1) <= self.watermark {
                *is_late = true;
                continue;
            }
            let end = ends.value(i);
            match by_end.iter_mut().rev().find(|(e, _)| *e == end) {
                Some((_, rows)) => rows.push(i as u32),
                None => by_end.push((end, vec![i as u32])),
            }
        }
        let dropped = late.iter().filter(|l| **l).count() as u64;
        if dropped > 0 {
            ctx.metrics.add_late(dropped);
            if let Some(marked) = &self.marked {
                let mask: BooleanArray = late.into_iter().map(Some).collect();
                // Judged by the window's end, as the row's time.
                out.collect(crate::ops::late::late_rows_marked(
                    marked,
                    &batch,
                    &mask,
                    &ends,
                    self.watermark,
                )?)?;
            }
        }
        for (end, rows) in by_end {
            let part = if rows.len() == n {
                batch.clone()
            } else {
                take_record_batch(&batch, &UInt32Array::from(rows))?
            };
            self.windows.entry(end).or_default().rows[input].push(part);
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        let marked = self.marked.clone();
        crate::ops::late::with_marked(marked, out, |out| {
            while let Some(entry) = self.windows.first_entry() {
                if entry.key().saturating_sub(1) > watermark {
                    break;
                }
                let (end, held) = entry.remove_entry();
                self.join(&held, out)?;
                self.forget(end, &held, ctx)?;
            }
            Ok(())
        })
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.save(ctx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use arrow::array::Int64Array;

    use super::*;
    use crate::expr::{binary, col, BinaryOp};
    use crate::testing::OperatorHarness;

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    /// window_start, window_end, k, v.
    fn side_schema(value: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("window_start", ts(), false),
            Field::new("window_end", ts(), false),
            Field::new("k", DataType::Int64, true),
            Field::new(value, DataType::Int64, false),
        ]))
    }

    type Row = (i64, Option<i64>, i64);

    /// Rows of (window_end, k, v) for 10 ms tumbling windows.
    fn side(value: &str, rows: &[Row]) -> RecordBatch {
        let ends: Vec<i64> = rows.iter().map(|r| r.0).collect();
        RecordBatch::try_new(
            side_schema(value),
            vec![
                Arc::new(TimestampMillisecondArray::from(
                    ends.iter().map(|e| e - 10).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(ends)),
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

    fn join_op(residual: Option<Expr>) -> Box<dyn Operator> {
        let spec = WindowJoinSpec {
            left_keys: vec![0, 1, 2],
            right_keys: vec![0, 1, 2],
            left_window_end: 1,
            right_window_end: 1,
            residual,
            kind: JoinKind::Inner,
            late_rows: false,
        };
        Box::new(WindowJoin::new(spec, &side_schema("v"), &side_schema("w")).expect("valid join"))
    }

    /// (window_end, k, v, w) of the output, sorted.
    fn joined(batches: &[RecordBatch]) -> Vec<(i64, i64, i64, i64)> {
        let mut out = Vec::new();
        for b in batches {
            assert_eq!(b.num_columns(), 8);
            let i64s = |c: usize| {
                b.column(c)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .clone()
            };
            let end = b
                .column(1)
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .clone();
            let right_end = b
                .column(5)
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .clone();
            let (k, v, rk, w) = (i64s(2), i64s(3), i64s(6), i64s(7));
            for i in 0..b.num_rows() {
                assert_eq!(end.value(i), right_end.value(i), "windows must match");
                assert_eq!(k.value(i), rk.value(i), "keys must match");
                out.push((end.value(i), k.value(i), v.value(i), w.value(i)));
            }
        }
        out.sort();
        out
    }

    /// The join written as a nested loop over every pair.
    fn nested_loop(
        left: &[Row],
        right: &[Row],
        keep: impl Fn(i64, i64) -> bool,
    ) -> Vec<(i64, i64, i64, i64)> {
        let mut out = Vec::new();
        for l in left {
            for r in right {
                if l.0 == r.0 && l.1.is_some() && l.1 == r.1 && keep(l.2, r.2) {
                    out.push((l.0, l.1.unwrap_or_default(), l.2, r.2));
                }
            }
        }
        out.sort();
        out
    }

    const LEFT: [Row; 6] = [
        (10, Some(1), 5),
        (10, Some(1), 7),
        (10, Some(2), 1),
        (10, None, 3),
        (20, Some(1), 9),
        (20, Some(3), 4),
    ];
    const RIGHT: [Row; 5] = [
        (10, Some(1), 6),
        (10, Some(2), 2),
        (10, None, 3),
        (20, Some(1), 9),
        (20, Some(1), 1),
    ];

    /// Outer window joins: every kind against a nested loop that pads the
    /// rows of a kept side no pair passing the ON condition used.
    #[test]
    fn outer_window_joins_pad_unmatched_rows_when_the_window_fires() -> Result<()> {
        use crate::expr::{binary, col, BinaryOp};
        for kind in [JoinKind::Left, JoinKind::Right, JoinKind::Full] {
            for residual in [false, true] {
                let spec = WindowJoinSpec {
                    left_keys: vec![0, 1, 2],
                    right_keys: vec![0, 1, 2],
                    left_window_end: 1,
                    right_window_end: 1,
                    // v < w: some key matches fail the condition.
                    residual: residual.then(|| binary(col(3), BinaryOp::Lt, col(7))),
                    kind,
                    late_rows: false,
                };
                let op = WindowJoin::new(spec, &side_schema("v"), &side_schema("w"))?;
                assert!(op.schema().field(0).is_nullable() == (kind != JoinKind::Left));
                let mut h = OperatorHarness::new(Box::new(op))?;
                h.batch_on(0, side("v", &LEFT))?;
                h.batch_on(1, side("w", &RIGHT))?;
                // A window with rows on the left only.
                h.batch_on(0, side("v", &[(30, Some(5), 2)]))?;
                h.watermark(100)?;
                let mut got = Vec::new();
                for b in h.take_output() {
                    for i in 0..b.num_rows() {
                        let v = |c: usize| {
                            let a = b.column(c).as_primitive::<arrow::datatypes::Int64Type>();
                            a.is_valid(i).then(|| a.value(i))
                        };
                        let end = |c: usize| {
                            let a = b
                                .column(c)
                                .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
                            a.is_valid(i).then(|| a.value(i))
                        };
                        got.push((end(1), v(2), v(3), end(5), v(6), v(7)));
                    }
                }
                got.sort();
                let mut left: Vec<Row> = LEFT.to_vec();
                left.push((30, Some(5), 2));
                let keep = |v: i64, w: i64| !residual || v < w;
                let meets =
                    |l: &Row, r: &Row| l.0 == r.0 && l.1.is_some() && l.1 == r.1 && keep(l.2, r.2);
                let mut want = Vec::new();
                for l in &left {
                    for r in &RIGHT {
                        if meets(l, r) {
                            want.push((Some(l.0), l.1, Some(l.2), Some(r.0), r.1, Some(r.2)));
                        }
                    }
                    if kind != JoinKind::Right && !RIGHT.iter().any(|r| meets(l, r)) {
                        want.push((Some(l.0), l.1, Some(l.2), None, None, None));
                    }
                }
                if kind != JoinKind::Left {
                    for r in &RIGHT {
                        if !left.iter().any(|l| meets(l, r)) {
                            want.push((None, None, None, Some(r.0), r.1, Some(r.2)));
                        }
                    }
                }
                want.sort();
                assert_eq!(got, want, "{kind:?}, residual {residual}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_window_is_joined_when_the_watermark_reaches_its_last_millisecond() -> Result<()> {
        let mut h = OperatorHarness::new(join_op(None))?;
        h.batch_on(0, side("v", &LEFT[..3]))?;
        h.batch_on(1, side("w", &RIGHT))?;
        h.batch_on(0, side("v", &LEFT[3..]))?;
        h.watermark(8)?;
        assert!(h.take_output().is_empty(), "window [0, 10) is still open");
        h.watermark(9)?;
        let first = joined(&h.take_output());
        let all = nested_loop(&LEFT, &RIGHT, |_, _| true);
        let (w10, w20): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.0 == 10);
        assert_eq!(first, w10);
        h.watermark(100)?;
        assert_eq!(joined(&h.take_output()), w20);
        Ok(())
    }

    #[test]
    fn other_on_conditions_filter_the_pairs() -> Result<()> {
        // v >= w over (left ++ right): v is column 3, w column 7.
        let cond = binary(col(3), BinaryOp::GtEq, col(7));
        let mut h = OperatorHarness::new(join_op(Some(cond)))?;
        h.batch_on(0, side("v", &LEFT))?;
        h.batch_on(1, side("w", &RIGHT))?;
        h.watermark(i64::MAX)?;
        let got = joined(&h.take_output());
        assert_eq!(got, nested_loop(&LEFT, &RIGHT, |v, w| v >= w));
        assert!(!got.is_empty() && got.len() < nested_loop(&LEFT, &RIGHT, |_, _| true).len());
        Ok(())
    }

    #[test]
    fn rows_for_a_fired_window_are_late() -> Result<()> {
        let mut h = OperatorHarness::new(join_op(None))?;
        h.batch_on(0, side("v", &LEFT[..1]))?;
        h.watermark(9)?;
        h.batch_on(1, side("w", &RIGHT[..1]))?;
        h.watermark(100)?;
        assert!(h.take_output().is_empty());
        assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
        Ok(())
    }

    /// With `late_rows`, a row for a fired window comes out of the join as
    /// a late row (results NULL; the row as JSON, the watermark, its
    /// window's end), and the joined pairs carry the late columns NULL.
    #[test]
    fn late_rows_are_reported_in_the_output() -> Result<()> {
        let spec = WindowJoinSpec {
            left_keys: vec![0, 1, 2],
            right_keys: vec![0, 1, 2],
            left_window_end: 1,
            right_window_end: 1,
            residual: None,
            kind: JoinKind::Inner,
            late_rows: true,
        };
        let join = WindowJoin::new(spec, &side_schema("v"), &side_schema("w"))?;
        let width = join.schema().fields().len();
        let mut h = OperatorHarness::new(Box::new(join))?;
        h.batch_on(0, side("v", &[(20, Some(1), 5)]))?;
        h.batch_on(1, side("w", &[(20, Some(1), 6)]))?;
        h.watermark(9)?;
        h.batch_on(1, side("w", &[(10, Some(1), 7)]))?;
        h.watermark(100)?;
        let out = h.take_output();
        assert!(out.iter().all(|b| b.num_columns() == width + 3));
        let all = arrow::compute::concat_batches(&out[0].schema(), &out)?;
        let late = all.column(width).as_string::<i32>();
        let results: Vec<usize> = (0..all.num_rows()).filter(|&i| late.is_null(i)).collect();
        let reported: Vec<usize> = (0..all.num_rows()).filter(|&i| !late.is_null(i)).collect();
        assert_eq!(results.len(), 1, "the pair of window 20");
        assert_eq!(reported.len(), 1, "the right row of the fired window 10");
        let r = reported[0];
        assert_eq!(
            late.value(r),
            r#"{"window_start":"1970-01-01T00:00:00","window_end":"1970-01-01T00:00:00.010","k":1,"w":7}"#
        );
        let wm = all
            .column(width + 1)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let at = all
            .column(width + 2)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!((wm.value(r), at.value(r)), (9, 10));
        assert!(all.column(2).is_null(r), "a late row has no results");
        assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
        Ok(())
    }

    #[test]
    fn held_rows_survive_a_restore_and_are_deleted_when_their_window_fires() -> Result<()> {
        let mut h = OperatorHarness::new(join_op(None))?;
        h.batch_on(0, side("v", &LEFT))?;
        h.batch_on(1, side("w", &RIGHT[..2]))?;
        let snapshot = h.checkpoint(1)?;
        assert!(h.state_entries() > 1, "held rows are in the backend");
        // Rows after the checkpoint are lost with the crash; the source
        // replays them into the restored operator.
        h.batch_on(1, side("w", &RIGHT[2..]))?;

        let mut restored = OperatorHarness::restored(join_op(None), &snapshot)?;
        restored.batch_on(1, side("w", &RIGHT[2..]))?;
        restored.watermark(i64::MAX)?;
        assert_eq!(
            joined(&restored.take_output()),
            nested_loop(&LEFT, &RIGHT, |_, _| true)
        );
        restored.checkpoint(2)?;
        assert_eq!(restored.state_entries(), 1, "only the meta entry is left");
        Ok(())
    }

    #[test]
    fn batches_of_one_side_may_differ_in_nullability() -> Result<()> {
        // The planner's schema says v may be NULL (a UNION ALL of a branch
        // where it cannot be and one where it can); batches carry their
        // branch's own schema.
        let nullable = |value: &str| {
            let fields: Vec<Field> = side_schema(value)
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect();
            Arc::new(Schema::new(fields))
        };
        let spec = WindowJoinSpec {
            left_keys: vec![0, 1, 2],
            right_keys: vec![0, 1, 2],
            left_window_end: 1,
            right_window_end: 1,
            residual: None,
            kind: JoinKind::Inner,
            late_rows: false,
        };
        let op = WindowJoin::new(spec, &nullable("v"), &side_schema("w"))?;
        let mut h = OperatorHarness::new(Box::new(op))?;
        h.batch_on(0, side("v", &LEFT[..1]))?;
        let with_null = RecordBatch::try_new(
            nullable("v"),
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![0])),
                Arc::new(TimestampMillisecondArray::from(vec![10])),
                Arc::new(Int64Array::from(vec![Some(1)])),
                Arc::new(Int64Array::from(vec![None::<i64>])),
            ],
        )?;
        h.batch_on(0, with_null)?;
        h.batch_on(1, side("w", &RIGHT[..1]))?;
        h.watermark(i64::MAX)?;
        let rows: usize = h.take_output().iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 2, "both left rows of key 1 meet the right row");
        Ok(())
    }

    #[test]
    fn assign_copies_each_row_into_its_windows() -> Result<()> {
        let input = Arc::new(Schema::new(vec![Field::new("ts", ts(), true)]));
        let factory = WindowAssign::factory(WindowSpec::Hop { slide: 5, size: 10 }, 0, &input)?;
        let task = TaskInfo {
            operator_name: "assign".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: runnel_state::DEFAULT_MAX_PARALLELISM,
            checkpointing: false,
            memory_budget: None,
        };
        let mut h = OperatorHarness::new(factory(&task)?)?;
        let times = TimestampMillisecondArray::from(vec![Some(7), None, Some(10)]);
        h.batch(RecordBatch::try_new(input, vec![Arc::new(times)])?)?;
        let out = h.take_output();
        let b = &out[0];
        let get = |c: usize| {
            b.column(c)
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .values()
                .to_vec()
        };
        // Each time t is in the windows [s, s + 10) with s a multiple of 5 in (t - 10, t].
        assert_eq!(get(0), vec![7, 7, 10, 10]);
        assert_eq!(get(1), vec![0, 5, 5, 10]);
        assert_eq!(get(2), vec![10, 15, 15, 20]);
        assert_eq!(get(3), vec![9, 14, 14, 19]);
        assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
        assert!(
            WindowAssign::factory(WindowSpec::Session { gap: 5 }, 0, &Schema::empty()).is_err()
        );
        Ok(())
    }
}
