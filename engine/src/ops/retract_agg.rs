//! The non-windowed keyed aggregate over an updating stream (and over an
//! append-only one when a state TTL is set).
//!
//! Each input row adds to its group (`+I`, `+U`) or takes away from it
//! (`-U`, `-D`). COUNT, SUM and AVG keep a running total and count and
//! retract by subtraction. MIN, MAX and COUNT(DISTINCT) keep, per group, a
//! map from each value (in Arrow's row format, whose bytes order as the
//! values do) to how many rows carry it: MIN is the first entry, MAX the
//! last, COUNT(DISTINCT) the number of entries. FIRST_VALUE and
//! LAST_VALUE keep the values in arrival order (a retraction removes the
//! earliest occurrence of its value). The variances cannot be retracted
//! this way and are refused.
//!
//! A group also counts its rows. For each group a batch touched, the
//! operator emits, as Flink does: `+I` of its result when the group is
//! new, `-U` of the previous result and `+U` of the new one when the
//! result changed, `-D` of the previous result when its last row was
//! retracted, and nothing when the result is unchanged. A retraction for
//! a group that has no rows (its state expired, or the input retracts
//! what it never added) is ignored.
//!
//! State TTL: a group that was not written for the TTL is dropped as if it
//! had never existed, without output (Flink's behaviour); expiry checks are
//! scheduled as in [`crate::ops::changelog_join`].
//!
//! State: one entry per group, `key group | key` to the group's row count,
//! last write time and each aggregate's state. A barrier writes the groups
//! changed since the last one; groups not in memory are read back when a
//! row of theirs comes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    UInt32Array,
};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use runnel_state::TableId;

use crate::aggregate::{is_integer, AggregateFunction};
use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext};
use crate::ops::agg::{load_meta, save_meta, scan_owned, state_key, BoundAggregates, EntryReader};
use crate::ops::GroupAggregateSpec;
use crate::time::Clock;
use crate::types::{is_updating, row_kind_array, row_kinds, with_row_kind, Barrier, RowKind};

/// Rough bytes of bookkeeping per group.
const GROUP_OVERHEAD: usize = 96;

/// What one aggregate keeps for one group.
#[derive(Debug, Clone, PartialEq)]
enum AggState {
    /// Rows counted (COUNT).
    Count(i64),
    /// A sum over integers and the number of non-NULL values (SUM, AVG).
    IntSum(i128, i64),
    /// A sum over floats and the number of non-NULL values (SUM, AVG).
    FloatSum(f64, i64),
    /// Each value's row count (MIN, MAX, COUNT DISTINCT).
    Values(BTreeMap<Vec<u8>, i64>),
    /// The values in arrival order, by a sequence number, and the next
    /// number (FIRST_VALUE, LAST_VALUE). Taking a value away removes its
    /// earliest occurrence, as Flink's retracting FIRST_VALUE does.
    Sequence(BTreeMap<i64, Vec<u8>>, i64),
}

/// One aggregate's result for one group, comparable to the previous one.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Null,
    Int(i64),
    Float(f64),
    /// An unscaled DECIMAL of the output's scale.
    Decimal(i128),
    /// A DECIMAL result past 38 digits.
    Overflow,
    /// A value in row format.
    Row(Vec<u8>),
}

/// A group: its row count, last write time, aggregate states.
#[derive(Debug, Clone)]
struct Group {
    rows: i64,
    at: i64,
    aggs: Vec<AggState>,
    dirty: bool,
    /// The backend holds an entry for the group.
    stored: bool,
}

/// How one call is computed.
#[derive(Debug)]
struct Call {
    func: AggregateFunction,
    /// Integer (not float) arguments, for SUM and AVG.
    int: bool,
    /// The scale of a DECIMAL argument (SUM and AVG add its unscaled
    /// values exactly, as integers).
    decimal: Option<i8>,
    /// The arguments in row format (MIN, MAX, COUNT DISTINCT).
    converter: Option<RowConverter>,
    /// The result type.
    output: DataType,
}

impl Call {
    fn empty(&self) -> AggState {
        match self.func {
            AggregateFunction::Count => AggState::Count(0),
            AggregateFunction::Sum | AggregateFunction::Avg
                if self.int || self.decimal.is_some() =>
            {
                AggState::IntSum(0, 0)
            }
            AggregateFunction::Sum | AggregateFunction::Avg => AggState::FloatSum(0.0, 0),
            AggregateFunction::FirstValue | AggregateFunction::LastValue => {
                AggState::Sequence(BTreeMap::new(), 0)
            }
            _ => AggState::Values(BTreeMap::new()),
        }
    }

    fn result(&self, state: &AggState) -> Out {
        match (self.func, state) {
            (_, AggState::Count(n)) => Out::Int(*n),
            (_, AggState::IntSum(_, 0)) => Out::Null,
            (AggregateFunction::Sum, AggState::IntSum(s, _)) if self.decimal.is_some() => {
                Out::Decimal(*s)
            }
            (AggregateFunction::Sum, AggState::IntSum(s, _)) => Out::Int(*s as i64),
            // AVG of DECIMAL(p, s) at the output's scale, as the window and
            // group aggregates compute it.
            (_, AggState::IntSum(s, n)) if self.decimal.is_some() => {
                let (scale, out) = match (self.decimal, &self.output) {
                    (Some(s), DataType::Decimal128(_, o)) => (s, *o),
                    _ => (0, 0),
                };
                u64::try_from(*n)
                    .ok()
                    .and_then(|n| crate::aggregate::decimal_average(*s, n, scale, out))
                    .map_or(Out::Overflow, Out::Decimal)
            }
            (AggregateFunction::Sum, AggState::FloatSum(s, n)) => {
                if *n == 0 {
                    Out::Null
                } else {
                    Out::Float(*s)
                }
            }
            // AVG of integers is an integer, truncated (as Flink).
            (_, AggState::IntSum(s, n)) if *n > 0 => Out::Int((*s / i128::from(*n)) as i64),
            (_, AggState::FloatSum(s, n)) if *n > 0 => Out::Float(*s / *n as f64),
            (_, AggState::IntSum(..) | AggState::FloatSum(..)) => Out::Null,
            (AggregateFunction::CountDistinct, AggState::Values(m)) => Out::Int(m.len() as i64),
            (AggregateFunction::Min, AggState::Values(m)) => {
                m.keys().next().map_or(Out::Null, |k| Out::Row(k.clone()))
            }
            (AggregateFunction::FirstValue, AggState::Sequence(m, _)) => {
                m.values().next().map_or(Out::Null, |v| Out::Row(v.clone()))
            }
            (_, AggState::Sequence(m, _)) => m
                .values()
                .next_back()
                .map_or(Out::Null, |v| Out::Row(v.clone())),
            (_, AggState::Values(m)) => m
                .keys()
                .next_back()
                .map_or(Out::Null, |k| Out::Row(k.clone())),
        }
    }
}

/// The evaluated inputs of one call for one batch.
struct CallRows {
    /// Per row: the call takes it (FILTER true, arguments not NULL).
    takes: Vec<bool>,
    /// Integer or float argument values (SUM, AVG).
    ints: Option<Int64Array>,
    floats: Option<Float64Array>,
    /// Unscaled DECIMAL argument values (SUM, AVG).
    decimals: Option<Decimal128Array>,
    /// Argument rows (MIN, MAX, COUNT DISTINCT).
    rows: Option<Rows>,
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct RetractAggregate {
    aggs: BoundAggregates,
    calls: Vec<Call>,
    encoder: KeyEncoder,
    schema: SchemaRef,
    updating_in: bool,
    groups: HashMap<Box<[u8]>, Group, ahash::RandomState>,
    /// Groups that lost their last row, dropped from memory, whose backend
    /// entry the next barrier deletes.
    gone: HashSet<Box<[u8]>, ahash::RandomState>,
    backed: bool,
    memory: usize,
    ttl: Option<i64>,
    clock: Clock,
    expiry: BinaryHeap<Reverse<(i64, Box<[u8]>)>>,
    scheduled: HashSet<Box<[u8]>, ahash::RandomState>,
    table: Option<TableId>,
}

impl RetractAggregate {
    /// Builds the operator for `input`.
    pub fn new(
        spec: GroupAggregateSpec,
        input: &Schema,
        ttl: Option<std::time::Duration>,
        clock: Clock,
    ) -> Result<Self> {
        let aggs = BoundAggregates::new(spec.aggregates.clone(), input)?;
        let mut calls = Vec::new();
        for ((call, types), field) in aggs.calls().iter().zip(aggs.arg_types()).zip(aggs.fields()) {
            use AggregateFunction as F;
            let converter = match call.func {
                F::Min | F::Max | F::CountDistinct | F::FirstValue | F::LastValue => {
                    Some(RowConverter::new(
                        types.iter().map(|t| SortField::new(t.clone())).collect(),
                    )?)
                }
                F::Count | F::Sum | F::Avg => None,
                other => {
                    return Err(EngineError::Plan(format!(
                        "{} over an updating stream (or with a state TTL) is not supported yet; \
                         COUNT, SUM, AVG, MIN, MAX, COUNT(DISTINCT), FIRST_VALUE and LAST_VALUE are",
                        other.name()
                    )))
                }
            };
            calls.push(Call {
                func: call.func,
                int: types.first().is_some_and(is_integer),
                decimal: match types.first() {
                    Some(DataType::Decimal128(_, s)) => Some(*s),
                    _ => None,
                },
                converter,
                output: field.data_type().clone(),
            });
        }
        let encoder = KeyEncoder::new(input, &spec.key_columns)?;
        let mut fields: Vec<Field> = spec
            .key_columns
            .iter()
            .map(|&k| input.field(k).clone())
            .collect();
        fields.extend(aggs.fields().iter().cloned());
        Ok(Self {
            aggs,
            calls,
            encoder,
            schema: with_row_kind(&Schema::new(fields)),
            updating_in: is_updating(input),
            groups: HashMap::default(),
            gone: HashSet::default(),
            backed: false,
            memory: 0,
            ttl: ttl.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            clock,
            expiry: BinaryHeap::new(),
            scheduled: HashSet::default(),
            table: None,
        })
    }

    /// The output schema: keys, aggregates, the changelog column.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("aggregate not opened".into()))
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<Vec<CallRows>> {
        let inputs = self.aggs.evaluate(batch)?;
        let n = batch.num_rows();
        let mut out = Vec::with_capacity(self.calls.len());
        for (call, input) in self.calls.iter().zip(inputs) {
            let takes: Vec<bool> = (0..n)
                .map(|i| {
                    input
                        .filter
                        .as_ref()
                        .is_none_or(|f| f.is_valid(i) && f.value(i))
                        && input.values.iter().all(|v| v.is_valid(i))
                })
                .collect();
            let mut rows = CallRows {
                takes,
                ints: None,
                floats: None,
                decimals: None,
                rows: None,
            };
            match call.func {
                AggregateFunction::Sum | AggregateFunction::Avg => {
                    let v = &input.values[0];
                    if let Some(s) = call.decimal {
                        let a = cast(v, &DataType::Decimal128(38, s))?;
                        rows.decimals = a.as_any().downcast_ref::<Decimal128Array>().cloned();
                    } else if call.int {
                        let a = cast(v, &DataType::Int64)?;
                        rows.ints = a.as_any().downcast_ref::<Int64Array>().cloned();
                    } else {
                        let a = cast(v, &DataType::Float64)?;
                        rows.floats = a.as_any().downcast_ref::<Float64Array>().cloned();
                    }
                }
                AggregateFunction::Count => {}
                _ => {
                    let converter = call.converter.as_ref().ok_or_else(|| {
                        EngineError::Internal("aggregate without a row converter".into())
                    })?;
                    rows.rows = Some(converter.convert_columns(&input.values)?);
                }
            }
            out.push(rows);
        }
        Ok(out)
    }

    /// Makes sure `key`'s group is in memory when the backend has it.
    fn load(&mut self, key: &[u8], ctx: &mut OperatorContext<'_>) -> Result<()> {
        if !self.backed || self.groups.contains_key(key) || self.gone.contains(key) {
            return Ok(());
        }
        let table = self.table()?;
        if let Some(v) = ctx.state.get(table, &state_key(ctx, key, &[]))? {
            let g = decode_group(&v, self.calls.len())?;
            self.memory += group_bytes(&g) + key.len();
            self.groups.insert(key.into(), g);
        }
        Ok(())
    }

    fn schedule(&mut self, key: &[u8]) {
        let Some(ttl) = self.ttl else { return };
        if self.scheduled.contains(key) {
            return;
        }
        let Some(at) = self.groups.get(key).map(|g| g.at) else {
            return;
        };
        self.scheduled.insert(key.into());
        self.expiry
            .push(Reverse((at.saturating_add(ttl), key.into())));
    }

    /// Drops the groups whose TTL passed by `now`.
    fn expire(&mut self, now: i64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let Some(ttl) = self.ttl else { return Ok(()) };
        while self.expiry.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            let Some(Reverse((_, key))) = self.expiry.pop() else {
                break;
            };
            self.scheduled.remove(&key);
            self.load(&key, ctx)?;
            let expired = self
                .groups
                .get(&key)
                .is_some_and(|g| g.at.saturating_add(ttl) <= now);
            if expired {
                self.forget(&key);
            } else {
                self.schedule(&key);
            }
        }
        Ok(())
    }

    /// Drops a group (its TTL passed, or its last row went): from memory
    /// now, from the backend at the next barrier.
    fn forget(&mut self, key: &[u8]) {
        if let Some(g) = self.groups.remove(key) {
            self.memory = self.memory.saturating_sub(group_bytes(&g) + key.len());
            if g.stored {
                self.gone.insert(key.into());
            }
        }
    }

    fn results(&self, g: &Group) -> Vec<Out> {
        self.calls
            .iter()
            .zip(&g.aggs)
            .map(|(c, s)| c.result(s))
            .collect()
    }

    /// Output rows: keys, results, kinds.
    fn emit(&self, rows: &[(&[u8], Vec<Out>, RowKind)], out: &mut dyn Collector) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let parser = self.encoder.converter().parser();
        let mut columns = self
            .encoder
            .decode(rows.iter().map(|(k, ..)| parser.parse(k)))?;
        for (i, call) in self.calls.iter().enumerate() {
            let values = rows.iter().map(|(_, r, _)| &r[i]);
            let array: ArrayRef = match &call.converter {
                Some(converter) if call.func != AggregateFunction::CountDistinct => {
                    let present: Vec<&[u8]> = values
                        .clone()
                        .filter_map(|v| match v {
                            Out::Row(b) => Some(b.as_slice()),
                            _ => None,
                        })
                        .collect();
                    if present.is_empty() {
                        new_null_array(&call.output, rows.len())
                    } else {
                        let p = converter.parser();
                        let decoded = converter.convert_rows(present.iter().map(|b| p.parse(b)))?;
                        let mut next = 0u32;
                        let indices: UInt32Array = values
                            .map(|v| {
                                matches!(v, Out::Row(_)).then(|| {
                                    next += 1;
                                    next - 1
                                })
                            })
                            .collect();
                        take(decoded[0].as_ref(), &indices, None)?
                    }
                }
                _ => match call.output {
                    DataType::Decimal128(..) => {
                        let mut out = Vec::new();
                        for v in values {
                            out.push(match v {
                                Out::Decimal(d) if crate::expr::fits_decimal_38(*d) => Some(*d),
                                Out::Decimal(_) | Out::Overflow => {
                                    return Err(EngineError::Execution(format!(
                                        "{} of DECIMAL values overflowed DECIMAL(38)",
                                        call.func.name()
                                    )))
                                }
                                _ => None,
                            });
                        }
                        Arc::new(Decimal128Array::from(out).with_data_type(call.output.clone()))
                    }
                    DataType::Float64 => Arc::new(
                        values
                            .map(|v| match v {
                                Out::Float(f) => Some(*f),
                                _ => None,
                            })
                            .collect::<Float64Array>(),
                    ),
                    _ => {
                        let ints: ArrayRef = Arc::new(
                            values
                                .map(|v| match v {
                                    Out::Int(n) => Some(*n),
                                    _ => None,
                                })
                                .collect::<Int64Array>(),
                        );
                        // AVG of a narrower integer has that type.
                        if call.output == DataType::Int64 {
                            ints
                        } else {
                            arrow::compute::cast(&ints, &call.output)?
                        }
                    }
                },
            };
            columns.push(array);
        }
        let kinds: Vec<RowKind> = rows.iter().map(|(.., k)| *k).collect();
        columns.push(row_kind_array(&kinds));
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    fn write_dirty(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        for key in std::mem::take(&mut self.gone) {
            if !self.groups.contains_key(&key) {
                ctx.state.delete(table, &state_key(ctx, &key, &[]))?;
            }
        }
        for (key, g) in self.groups.iter_mut() {
            if !g.dirty {
                continue;
            }
            g.dirty = false;
            g.stored = true;
            ctx.state
                .put_owned(table, state_key(ctx, key, &[]), encode_group(g))?;
        }
        save_meta(ctx, table, i64::MIN, 0)
    }
}

fn group_bytes(g: &Group) -> usize {
    GROUP_OVERHEAD
        + g.aggs
            .iter()
            .map(|a| match a {
                AggState::Values(m) => m.keys().map(|k| k.len() + 48).sum(),
                AggState::Sequence(m, _) => m.values().map(|v| v.len() + 48).sum(),
                _ => 24,
            })
            .sum::<usize>()
}

fn encode_group(g: &Group) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&g.rows.to_le_bytes());
    out.extend_from_slice(&g.at.to_le_bytes());
    for a in &g.aggs {
        match a {
            AggState::Count(n) => {
                out.push(0);
                out.extend_from_slice(&n.to_le_bytes());
            }
            AggState::IntSum(s, n) => {
                out.push(1);
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            AggState::FloatSum(s, n) => {
                out.push(2);
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            AggState::Values(m) => {
                out.push(3);
                out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                for (k, c) in m {
                    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    out.extend_from_slice(k);
                    out.extend_from_slice(&c.to_le_bytes());
                }
            }
            AggState::Sequence(m, next) => {
                out.push(4);
                out.extend_from_slice(&next.to_le_bytes());
                out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                for (seq, v) in m {
                    out.extend_from_slice(&seq.to_le_bytes());
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v);
                }
            }
        }
    }
    out
}

fn decode_group(b: &[u8], calls: usize) -> Result<Group> {
    let mut r = EntryReader::new(b, "aggregate");
    let rows = r.i64()?;
    let at = r.i64()?;
    let mut aggs = Vec::with_capacity(calls);
    for _ in 0..calls {
        aggs.push(match r.u8()? {
            0 => AggState::Count(r.i64()?),
            1 => AggState::IntSum(r.i128()?, r.i64()?),
            2 => AggState::FloatSum(r.f64()?, r.i64()?),
            3 => {
                let n = r.u32()?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let k = r.sized()?.to_vec();
                    m.insert(k, r.i64()?);
                }
                AggState::Values(m)
            }
            4 => {
                let next = r.i64()?;
                let n = r.u32()?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let seq = r.i64()?;
                    m.insert(seq, r.sized()?.to_vec());
                }
                AggState::Sequence(m, next)
            }
            _ => {
                return Err(EngineError::Internal(
                    "corrupt aggregate state entry".into(),
                ))
            }
        });
    }
    Ok(Group {
        rows,
        at,
        aggs,
        dirty: false,
        stored: true,
    })
}

/// Adds (`sign` 1) or takes away (`sign` -1) row `i` of `input` to `state`.
fn apply(state: &mut AggState, input: &CallRows, i: usize, sign: i64) {
    if !input.takes[i] {
        return;
    }
    match state {
        AggState::Count(n) => *n += sign,
        AggState::IntSum(s, n) => {
            if let Some(v) = &input.ints {
                *s += i128::from(v.value(i)) * i128::from(sign);
                *n += sign;
            } else if let Some(v) = &input.decimals {
                *s = s.saturating_add(v.value(i).saturating_mul(i128::from(sign)));
                *n += sign;
            }
        }
        AggState::FloatSum(s, n) => {
            if let Some(v) = &input.floats {
                *s += v.value(i) * sign as f64;
                *n += sign;
            }
        }
        AggState::Values(m) => {
            if let Some(rows) = &input.rows {
                let k = rows.row(i);
                let k = k.as_ref();
                match m.get_mut(k) {
                    Some(c) => {
                        *c += sign;
                        if *c <= 0 {
                            m.remove(k);
                        }
                    }
                    None if sign > 0 => {
                        m.insert(k.to_vec(), sign);
                    }
                    None => {}
                }
            }
        }
        AggState::Sequence(m, next) => {
            if let Some(rows) = &input.rows {
                let v = rows.row(i);
                let v = v.as_ref();
                if sign > 0 {
                    m.insert(*next, v.to_vec());
                    *next += 1;
                } else if let Some(seq) = m.iter().find(|(_, x)| x.as_slice() == v).map(|(s, _)| *s)
                {
                    m.remove(&seq);
                }
            }
        }
    }
}

impl Operator for RetractAggregate {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/retract_agg", ctx.task.operator_name))?;
        self.table = Some(table);
        if load_meta(ctx, table)?.is_none() {
            return Ok(());
        }
        self.backed = true;
        if let Some(ttl) = self.ttl {
            for (_, _, key, value) in scan_owned(ctx, table, 0)? {
                let g = decode_group(&value, self.calls.len())?;
                let key: Box<[u8]> = key.into();
                self.scheduled.insert(key.clone());
                self.expiry.push(Reverse((g.at.saturating_add(ttl), key)));
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
        let now = self.clock.now_millis();
        self.expire(now, ctx)?;
        let kinds = if self.updating_in {
            row_kinds(&batch)?
        } else {
            vec![RowKind::Insert; n]
        };
        let keys = self.encoder.encode(&batch)?;
        let inputs = self.evaluate(&batch)?;
        // Touched groups in first-touch order, with their result before.
        let mut touched: Vec<(Box<[u8]>, Option<Vec<Out>>)> = Vec::new();
        let mut seen: HashSet<Box<[u8]>, ahash::RandomState> = HashSet::default();
        for (i, kind) in kinds.into_iter().enumerate() {
            let key = keys.row(i);
            let key = key.as_ref();
            self.load(key, ctx)?;
            if !seen.contains(key) {
                let before = self
                    .groups
                    .get(key)
                    .filter(|g| g.rows > 0)
                    .map(|g| self.results(g));
                seen.insert(key.into());
                touched.push((key.into(), before));
            }
            let sign = if kind.is_addition() { 1 } else { -1 };
            let exists = self.groups.get(key).is_some_and(|g| g.rows > 0);
            if sign < 0 && !exists {
                continue;
            }
            if !self.groups.contains_key(key) {
                let g = Group {
                    rows: 0,
                    at: now,
                    aggs: self.calls.iter().map(Call::empty).collect(),
                    dirty: true,
                    stored: false,
                };
                self.memory += group_bytes(&g) + key.len();
                self.groups.insert(key.into(), g);
            }
            let g = self
                .groups
                .get_mut(key)
                .ok_or_else(|| EngineError::Internal("group vanished".into()))?;
            g.rows += sign;
            g.at = now;
            g.dirty = true;
            for (state, input) in g.aggs.iter_mut().zip(&inputs) {
                apply(state, input, i, sign);
            }
            if g.rows == 0 {
                // Nothing left: start from empty states (float sums may
                // carry rounding otherwise).
                g.aggs = self.calls.iter().map(Call::empty).collect();
            }
        }
        let mut rows: Vec<(&[u8], Vec<Out>, RowKind)> = Vec::new();
        let mut after: Vec<(&[u8], Vec<Out>, RowKind)> = Vec::new();
        for (key, before) in &touched {
            let now_result = self
                .groups
                .get(key)
                .filter(|g| g.rows > 0)
                .map(|g| self.results(g));
            match (before, now_result) {
                (None, Some(r)) => after.push((key.as_ref(), r, RowKind::Insert)),
                (Some(b), None) => rows.push((key.as_ref(), b.clone(), RowKind::Delete)),
                (Some(b), Some(r)) if *b != r => {
                    rows.push((key.as_ref(), b.clone(), RowKind::UpdateBefore));
                    after.push((key.as_ref(), r, RowKind::UpdateAfter));
                }
                _ => {}
            }
        }
        // Retractions first, then the new results, as the append-only
        // aggregate does.
        rows.extend(after);
        self.emit(&rows, out)?;
        let keys: Vec<Box<[u8]>> = touched.into_iter().map(|(k, _)| k).collect();
        for key in keys {
            if self.groups.get(&key).is_some_and(|g| g.rows <= 0) {
                self.forget(&key);
            } else {
                self.schedule(&key);
            }
        }
        if let Some(budget) = ctx.task.memory_budget {
            if self.memory > budget {
                self.write_dirty(ctx)?;
                self.groups.clear();
                self.memory = 0;
                self.backed = true;
                ctx.metrics
                    .state_spills
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use proptest::prelude::*;

    use super::*;
    use crate::expr::Expr;
    use crate::ops::AggregateCall;
    use crate::testing::OperatorHarness;

    use AggregateFunction as F;
    use RowKind::{Delete as D, Insert as I, UpdateAfter as UA, UpdateBefore as UB};

    type Row = (i64, Option<i64>);

    fn input() -> SchemaRef {
        with_row_kind(&Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn spec() -> GroupAggregateSpec {
        let v = || vec![Expr::Column(1)];
        GroupAggregateSpec {
            key_columns: vec![0],
            aggregates: vec![
                AggregateCall::new(F::Count, vec![], "n"),
                AggregateCall::new(F::Sum, v(), "s"),
                AggregateCall::new(F::Min, v(), "lo"),
                AggregateCall::new(F::Max, v(), "hi"),
                AggregateCall::new(F::CountDistinct, v(), "d"),
                AggregateCall::new(F::Avg, v(), "a"),
            ],
            ttl: None,
            clock: Clock::System,
        }
    }

    fn op(ttl: Option<std::time::Duration>, clock: Clock) -> Box<dyn Operator> {
        Box::new(RetractAggregate::new(spec(), &input(), ttl, clock).expect("valid"))
    }

    fn batch(rows: &[(RowKind, Row)]) -> RecordBatch {
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1 .0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1 .1).collect::<Vec<_>>(),
                )),
                row_kind_array(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ],
        )
        .expect("valid batch")
    }

    /// `+I k: n, s, lo, hi, d, a` per output row, in order.
    fn changelog(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            let kinds = row_kinds(b).expect("kinds");
            let int = |c: usize, i: usize| {
                let a = b.column(c).as_primitive::<Int64Type>();
                if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    a.value(i).to_string()
                }
            };
            for (i, kind) in kinds.iter().enumerate() {
                // AVG of BIGINT is a BIGINT (truncated), as in Flink.
                let avg = int(6, i);
                out.push(format!(
                    "{} {}: {}, {}, {}, {}, {}, {avg}",
                    kind.short_string(),
                    int(0, i),
                    int(1, i),
                    int(2, i),
                    int(3, i),
                    int(4, i),
                    int(5, i)
                ));
            }
        }
        out
    }

    fn send(h: &mut OperatorHarness, rows: &[(RowKind, Row)]) -> Vec<String> {
        h.batch(batch(rows)).expect("processes");
        changelog(&h.take_output())
    }

    #[test]
    fn retractions_update_every_aggregate_and_the_last_one_deletes_the_group() {
        let mut h = OperatorHarness::new(op(None, Clock::System)).expect("opens");
        assert_eq!(
            send(&mut h, &[(I, (1, Some(5))), (I, (1, Some(9)))]),
            ["+I 1: 2, 14, 5, 9, 2, 7"]
        );
        // The minimum goes: the next smallest value takes its place.
        assert_eq!(
            send(&mut h, &[(UB, (1, Some(5))), (UA, (1, Some(7)))]),
            ["-U 1: 2, 14, 5, 9, 2, 7", "+U 1: 2, 16, 7, 9, 2, 8"]
        );
        // A NULL value counts as a row but not as a value.
        assert_eq!(
            send(&mut h, &[(I, (1, None))]),
            ["-U 1: 2, 16, 7, 9, 2, 8", "+U 1: 3, 16, 7, 9, 2, 8"]
        );
        assert_eq!(
            send(&mut h, &[(D, (1, Some(7))), (D, (1, Some(9)))]),
            [
                "-U 1: 3, 16, 7, 9, 2, 8",
                "+U 1: 1, NULL, NULL, NULL, 0, NULL"
            ]
        );
        assert_eq!(
            send(&mut h, &[(D, (1, None))]),
            ["-D 1: 1, NULL, NULL, NULL, 0, NULL"]
        );
        // A retraction of a group that has no rows changes nothing.
        assert!(send(&mut h, &[(D, (2, Some(1)))]).is_empty());
        assert_eq!(
            send(&mut h, &[(I, (2, Some(1)))]),
            ["+I 2: 1, 1, 1, 1, 1, 1"]
        );
    }

    #[test]
    fn an_unchanged_result_is_not_emitted_and_duplicates_are_counted() {
        let mut h = OperatorHarness::new(op(None, Clock::System)).expect("opens");
        send(&mut h, &[(I, (1, Some(3))), (I, (1, Some(3)))]);
        // Both rows carry 3: removing one leaves MIN, MAX and DISTINCT.
        assert_eq!(
            send(&mut h, &[(D, (1, Some(3)))]),
            ["-U 1: 2, 6, 3, 3, 1, 3", "+U 1: 1, 3, 3, 3, 1, 3"]
        );
        // Within one batch a row that comes and goes leaves no output.
        assert!(send(&mut h, &[(I, (1, Some(4))), (D, (1, Some(4)))]).is_empty());
    }

    #[test]
    fn first_and_last_value_take_back_the_earliest_occurrence_of_a_value() -> Result<()> {
        use RowKind::{Delete as D, Insert as I};
        let mut s = spec();
        s.aggregates = vec![
            AggregateCall::new(F::FirstValue, vec![Expr::Column(1)], "f"),
            AggregateCall::new(F::LastValue, vec![Expr::Column(1)], "l"),
        ];
        let mut h = OperatorHarness::new(Box::new(RetractAggregate::new(
            s,
            &input(),
            None,
            Clock::System,
        )?))?;
        let mut step = |rows: &[(RowKind, Row)]| -> Result<Vec<String>> {
            h.batch(batch(rows))?;
            let mut out = Vec::new();
            for b in h.take_output() {
                let kinds = row_kinds(&b)?;
                for (r, k) in kinds.iter().enumerate() {
                    let f = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
                    let l = b.column(2).as_primitive::<arrow::datatypes::Int64Type>();
                    let show = |a: &arrow::array::Int64Array| {
                        if a.is_valid(r) {
                            a.value(r).to_string()
                        } else {
                            "NULL".into()
                        }
                    };
                    out.push(format!("{} {} {}", k.short_string(), show(f), show(l)));
                }
            }
            Ok(out)
        };
        // Values 5, 7, 5 arrive in that order (NULL is skipped).
        assert_eq!(
            step(&[
                (I, (1, Some(5))),
                (I, (1, Some(7))),
                (I, (1, None)),
                (I, (1, Some(5)))
            ])?,
            ["+I 5 5"]
        );
        // Taking 5 back removes its first occurrence: 7 is first now.
        assert_eq!(step(&[(D, (1, Some(5)))])?, ["-U 5 5", "+U 7 5"]);
        assert_eq!(step(&[(D, (1, Some(5)))])?, ["-U 7 5", "+U 7 7"]);
        // Only the NULL row is left: both NULL; then the group goes.
        assert_eq!(step(&[(D, (1, Some(7)))])?, ["-U 7 7", "+U NULL NULL"]);
        assert_eq!(step(&[(D, (1, None))])?, ["-D NULL NULL"]);
        Ok(())
    }

    #[test]
    fn groups_expire_after_the_ttl_and_leave_the_state() {
        let clock = Clock::manual(0);
        let ttl = Some(std::time::Duration::from_millis(1000));
        let mut h = OperatorHarness::new(op(ttl, clock.clone())).expect("opens");
        send(&mut h, &[(I, (1, Some(5))), (I, (2, Some(6)))]);
        clock.set_millis(900);
        send(&mut h, &[(I, (2, Some(7)))]);
        h.checkpoint(1).expect("checkpoint");
        assert_eq!(h.state_entries(), 3, "two groups and the meta entry");
        clock.set_millis(1500);
        // Group 1 (written at 0) expired: a new row starts it again.
        assert_eq!(
            send(&mut h, &[(I, (1, Some(8)))]),
            ["+I 1: 1, 8, 8, 8, 1, 8"]
        );
        clock.set_millis(10_000);
        h.checkpoint(2).expect("checkpoint");
        assert_eq!(h.state_entries(), 1, "only the meta entry is left");
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert(Row),
        Delete(usize),
        Checkpoint,
    }

    fn brute_force(table: &[Row]) -> BTreeMap<String, i64> {
        let mut groups: BTreeMap<i64, Vec<Option<i64>>> = BTreeMap::new();
        for (k, v) in table {
            groups.entry(*k).or_default().push(*v);
        }
        let mut out = BTreeMap::new();
        for (k, vs) in groups {
            let vals: Vec<i64> = vs.iter().flatten().copied().collect();
            let opt = |v: Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
            let distinct: std::collections::BTreeSet<i64> = vals.iter().copied().collect();
            let avg = if vals.is_empty() {
                "NULL".to_string()
            } else {
                (vals.iter().sum::<i64>() / vals.len() as i64).to_string()
            };
            let row = format!(
                "{k}: {}, {}, {}, {}, {}, {avg}",
                vs.len(),
                opt((!vals.is_empty()).then(|| vals.iter().sum())),
                opt(vals.iter().min().copied()),
                opt(vals.iter().max().copied()),
                distinct.len()
            );
            out.insert(row, 1);
        }
        out
    }

    fn materialize(into: &mut BTreeMap<String, i64>, changes: &[String]) {
        for c in changes {
            let (kind, row) = c.split_at(3);
            *into.entry(row.to_string()).or_insert(0) += if kind.starts_with('+') { 1 } else { -1 };
        }
        into.retain(|_, n| *n != 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// For random inserts and deletes, with checkpoints and restores in
        /// between and a memory budget that forces groups out of memory,
        /// the materialized output is the GROUP BY of the final table.
        #[test]
        fn the_materialized_output_equals_the_aggregate_of_the_final_table(
            steps in prop::collection::vec(prop_oneof![
                6 => (0i64..3, prop::option::weighted(0.8, -3i64..4)).prop_map(Step::Insert),
                3 => (0usize..100).prop_map(Step::Delete),
                1 => Just(Step::Checkpoint),
            ], 1..60),
            budget in prop_oneof![Just(None), Just(Some(1usize))],
        ) {
            let mut h = OperatorHarness::new(op(None, Clock::System)).expect("opens");
            h.set_memory_budget(budget);
            let mut table: Vec<Row> = Vec::new();
            let mut got = BTreeMap::new();
            for step in steps {
                match step {
                    Step::Insert(row) => {
                        table.push(row);
                        materialize(&mut got, &send(&mut h, &[(I, row)]));
                    }
                    Step::Delete(n) => {
                        if table.is_empty() {
                            continue;
                        }
                        let row = table.remove(n % table.len());
                        materialize(&mut got, &send(&mut h, &[(D, row)]));
                    }
                    Step::Checkpoint => {
                        let snapshot = h.checkpoint(1).expect("checkpoint");
                        h = OperatorHarness::restored(op(None, Clock::System), &snapshot)
                            .expect("restores");
                        h.set_memory_budget(budget);
                    }
                }
            }
            prop_assert_eq!(got, brute_force(&table));
        }
    }
}
