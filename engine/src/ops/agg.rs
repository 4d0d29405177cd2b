//! What the aggregate operators share: aggregate calls bound to an input
//! schema, and feeding accumulators from a batch.

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::kernels::boolean::and;
use arrow::datatypes::{DataType, Field, Schema};

use crate::aggregate::{create_accumulator, AggregateFunction, GroupsAccumulator, UpdateArgs};
use crate::error::{EngineError, Result};
use crate::expr::Expr;

/// One aggregate in a GROUP BY: `func(args) FILTER (WHERE filter) AS name`.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    /// The function.
    pub func: AggregateFunction,
    /// Argument expressions over the input (none for `COUNT(*)`).
    pub args: Vec<Expr>,
    /// The FILTER clause, if any.
    pub filter: Option<Expr>,
    /// Output column name.
    pub name: String,
}

impl AggregateCall {
    /// `func(args) AS name` without a filter.
    pub fn new(func: AggregateFunction, args: Vec<Expr>, name: impl Into<String>) -> Self {
        Self {
            func,
            args,
            filter: None,
            name: name.into(),
        }
    }

    /// Adds a FILTER (WHERE ...) clause.
    pub fn with_filter(mut self, filter: Expr) -> Self {
        self.filter = Some(filter);
        self
    }
}

/// The evaluated inputs of one aggregate call for one batch.
#[derive(Debug)]
pub(crate) struct CallInput {
    pub values: Vec<ArrayRef>,
    pub filter: Option<BooleanArray>,
}

/// Aggregate calls checked against an input schema.
#[derive(Debug, Clone)]
pub(crate) struct BoundAggregates {
    calls: Vec<AggregateCall>,
    arg_types: Vec<Vec<DataType>>,
    fields: Vec<Field>,
}

impl BoundAggregates {
    pub fn new(calls: Vec<AggregateCall>, input: &Schema) -> Result<Self> {
        let mut arg_types = Vec::with_capacity(calls.len());
        let mut fields = Vec::with_capacity(calls.len());
        for call in &calls {
            let types = call
                .args
                .iter()
                .map(|a| a.data_type(input))
                .collect::<Result<Vec<_>>>()?;
            let ret = call.func.return_type(&types)?;
            if let Some(f) = &call.filter {
                let t = f.data_type(input)?;
                if t != DataType::Boolean {
                    return Err(EngineError::Plan(format!(
                        "the FILTER clause of {} must be a BOOLEAN condition, not {t}",
                        call.name
                    )));
                }
            }
            // Counts are never NULL; everything else is NULL on an empty group.
            let nullable = !matches!(
                call.func,
                AggregateFunction::Count | AggregateFunction::CountDistinct
            );
            fields.push(Field::new(&call.name, ret, nullable));
            // Validate now that an accumulator can be built, so errors surface at planning.
            create_accumulator(call.func, &types)?;
            arg_types.push(types);
        }
        Ok(Self {
            calls,
            arg_types,
            fields,
        })
    }

    /// Output fields, one per call.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The calls.
    pub fn calls(&self) -> &[AggregateCall] {
        &self.calls
    }

    /// The argument types of each call.
    pub fn arg_types(&self) -> &[Vec<DataType>] {
        &self.arg_types
    }

    /// Fresh accumulators, one per call.
    pub fn accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.calls
            .iter()
            .zip(&self.arg_types)
            .map(|(c, t)| create_accumulator(c.func, t))
            .collect()
    }

    /// Evaluates the arguments and filters of every call on `batch`.
    pub fn evaluate(&self, batch: &arrow::array::RecordBatch) -> Result<Vec<CallInput>> {
        self.calls
            .iter()
            .map(|c| {
                let values = c
                    .args
                    .iter()
                    .map(|a| a.evaluate(batch))
                    .collect::<Result<Vec<_>>>()?;
                let filter = match &c.filter {
                    None => None,
                    Some(f) => {
                        let arr = f.evaluate(batch)?;
                        let b = arr
                            .as_any()
                            .downcast_ref::<BooleanArray>()
                            .ok_or_else(|| {
                                EngineError::Internal("FILTER did not evaluate to BOOLEAN".into())
                            })?
                            .clone();
                        Some(b)
                    }
                };
                Ok(CallInput { values, filter })
            })
            .collect()
    }
}

/// Feeds every accumulator: `groups[i]` is row `i`'s group; rows where
/// `mask` is false are skipped in addition to each call's own filter.
pub(crate) fn update_all(
    accs: &mut [Box<dyn GroupsAccumulator>],
    inputs: &[CallInput],
    groups: &[u32],
    mask: Option<&BooleanArray>,
    total_groups: usize,
    first_row_seq: u64,
) -> Result<()> {
    for (acc, input) in accs.iter_mut().zip(inputs) {
        let combined;
        let filter = match (input.filter.as_ref(), mask) {
            (None, None) => None,
            (Some(f), None) => Some(f),
            (None, Some(m)) => Some(m),
            (Some(f), Some(m)) => {
                combined = and(f, m)?;
                Some(&combined)
            }
        };
        acc.update(&UpdateArgs {
            values: &input.values,
            groups,
            filter,
            total_groups,
            first_row_seq,
        })?;
    }
    Ok(())
}

/// Takes the rows `indices` of every call input (for a subset of a batch).
pub(crate) fn take_inputs(
    inputs: &[CallInput],
    indices: &arrow::array::UInt32Array,
) -> Result<Vec<CallInput>> {
    inputs
        .iter()
        .map(|i| {
            let values = i
                .values
                .iter()
                .map(|v| arrow::compute::take(v.as_ref(), indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let filter = match &i.filter {
                None => None,
                Some(f) => {
                    let t = arrow::compute::take(f, indices, None)?;
                    t.as_any().downcast_ref::<BooleanArray>().cloned()
                }
            };
            Ok(CallInput { values, filter })
        })
        .collect()
}

/// Saves group `group` of every accumulator, each prefixed by its length.
pub(crate) fn save_group(
    accs: &[Box<dyn GroupsAccumulator>],
    group: u32,
    out: &mut Vec<u8>,
) -> Result<()> {
    for acc in accs {
        let mut buf = Vec::new();
        acc.save(group, &mut buf)?;
        out.extend_from_slice(&(buf.len() as u32).to_le_bytes());
        out.extend_from_slice(&buf);
    }
    Ok(())
}

/// Loads what [`save_group`] wrote into group `group`.
pub(crate) fn load_group(
    accs: &mut [Box<dyn GroupsAccumulator>],
    group: u32,
    bytes: &[u8],
) -> Result<()> {
    let mut rest = bytes;
    for acc in accs.iter_mut() {
        let corrupt = || {
            EngineError::State(runnel_state::StateError::Corrupt {
                table: "aggregate".into(),
                reason: "truncated accumulator state".into(),
            })
        };
        let len_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        let body = rest.get(4..4 + len).ok_or_else(corrupt)?;
        acc.load(group, body)?;
        rest = &rest[4 + len..];
    }
    Ok(())
}

// -- Checkpointing helpers ----------------------------------------------------
//
// Operator state entries are keyed `key group (2 bytes) | namespace (fixed
// width per table, e.g. a slice end) | key bytes`: the namespace comes
// before the variable-length key so that it can be decoded without parsing
// the key, and so that one slice's entries form a contiguous range within a
// key group. The operator's own bookkeeping (watermark, arrival sequence)
// lives under [`META_KEY`], which sorts after every key group.

/// Key of an operator's bookkeeping entry.
pub(crate) const META_KEY: &[u8] = &[0xff, 0xff, b'm', b'e', b't', b'a'];

fn corrupt(reason: &str) -> EngineError {
    EngineError::State(runnel_state::StateError::Corrupt {
        table: "operator state".into(),
        reason: reason.to_string(),
    })
}

/// The state key of `key` under namespace `ns`: key group, namespace, key.
pub(crate) fn state_key(
    ctx: &crate::operator::OperatorContext<'_>,
    key: &[u8],
    ns: &[u8],
) -> Vec<u8> {
    let kg = runnel_state::key_group_for_hash(crate::keys::hash_key(key), ctx.task.max_parallelism);
    runnel_state::encode_key(kg, ns, key)
}

/// Writes the watermark and arrival sequence.
pub(crate) fn save_meta(
    ctx: &mut crate::operator::OperatorContext<'_>,
    table: runnel_state::TableId,
    watermark: i64,
    seq: u64,
) -> Result<()> {
    save_meta_with(ctx, table, watermark, seq, &[])
}

/// Writes the watermark, arrival sequence and `extra` operator facts.
pub(crate) fn save_meta_with(
    ctx: &mut crate::operator::OperatorContext<'_>,
    table: runnel_state::TableId,
    watermark: i64,
    seq: u64,
    extra: &[u8],
) -> Result<()> {
    let mut meta = Vec::with_capacity(16 + extra.len());
    meta.extend_from_slice(&watermark.to_le_bytes());
    meta.extend_from_slice(&seq.to_le_bytes());
    meta.extend_from_slice(extra);
    ctx.state.put(table, META_KEY, &meta)?;
    Ok(())
}

/// Reads what [`save_meta_with`] wrote: watermark, sequence, extra bytes;
/// `None` on a fresh start.
pub(crate) fn load_meta_with(
    ctx: &mut crate::operator::OperatorContext<'_>,
    table: runnel_state::TableId,
) -> Result<Option<(i64, u64, Vec<u8>)>> {
    if let Some(meta) = ctx.state.get(table, META_KEY)? {
        return parse_meta(&meta).map(Some);
    }
    // Restored at another parallelism: one entry per old subtask whose key
    // groups this subtask took, under META_KEY and the old subtask's index
    // (see StateLayout::KeyGroups). The watermark is the lowest of them, as
    // where streams merge; the sequence the highest, so that rows arriving
    // now come after every row restored; the extra bytes are concatenated
    // (lists that the operator reads as a union).
    let olds: Vec<Vec<u8>> = ctx
        .state
        .scan_prefix(table, META_KEY)?
        .map(|e| e.map(|(_, v)| v))
        .collect::<std::result::Result<_, _>>()?;
    if olds.is_empty() {
        return Ok(None);
    }
    let mut merged: Option<(i64, u64, Vec<u8>)> = None;
    for old in &olds {
        let (wm, seq, extra) = parse_meta(old)?;
        merged = Some(match merged {
            None => (wm, seq, extra),
            Some((w, s, mut e)) => {
                e.extend_from_slice(&extra);
                (w.min(wm), s.max(seq), e)
            }
        });
    }
    let Some((wm, seq, extra)) = merged else {
        return Ok(None);
    };
    // One entry from now on, so a later rescale does not merge these again.
    ctx.state.delete_prefix(table, META_KEY)?;
    save_meta_with(ctx, table, wm, seq, &extra)?;
    Ok(Some((wm, seq, extra)))
}

fn parse_meta(meta: &[u8]) -> Result<(i64, u64, Vec<u8>)> {
    let wm: [u8; 8] = meta
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("meta"))?;
    let seq: [u8; 8] = meta
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("meta"))?;
    Ok((
        i64::from_le_bytes(wm),
        u64::from_le_bytes(seq),
        meta[16..].to_vec(),
    ))
}

/// Reads what [`save_meta`] wrote; `None` on a fresh start.
pub(crate) fn load_meta(
    ctx: &mut crate::operator::OperatorContext<'_>,
    table: runnel_state::TableId,
) -> Result<Option<(i64, u64)>> {
    Ok(load_meta_with(ctx, table)?.map(|(wm, seq, _)| (wm, seq)))
}

/// Every keyed entry of `table` in this subtask's key groups, split into
/// (key group, namespace of `ns_len` bytes, key bytes, value).
pub(crate) fn scan_owned(
    ctx: &mut crate::operator::OperatorContext<'_>,
    table: runnel_state::TableId,
    ns_len: usize,
) -> Result<Vec<(u16, Vec<u8>, Vec<u8>, Vec<u8>)>> {
    let range = runnel_state::key_group_range(
        ctx.task.subtask,
        ctx.task.parallelism,
        ctx.task.max_parallelism,
    );
    let mut out = Vec::new();
    for entry in ctx.state.scan_prefix(table, &[])? {
        let (k, v) = entry?;
        if k.as_slice() == META_KEY {
            continue;
        }
        let kg = u16::from_be_bytes(
            k.get(..2)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("key"))?,
        );
        if !range.contains(&u32::from(kg)) {
            continue;
        }
        let ns = k.get(2..2 + ns_len).ok_or_else(|| corrupt("key"))?.to_vec();
        let key = k[2 + ns_len..].to_vec();
        out.push((kg, ns, key, v));
    }
    Ok(out)
}

/// Decodes a time written with [`runnel_state::encode_time`] at `offset`.
pub(crate) fn decode_time_at(bytes: &[u8], offset: usize) -> Result<i64> {
    let b: [u8; 8] = bytes
        .get(offset..offset + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("time"))?;
    Ok(runnel_state::key::decode_time(b))
}

/// Reads a state entry's little-endian fields in order; running out of
/// bytes is a corrupt entry of `what`.
pub(crate) struct EntryReader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> EntryReader<'a> {
    /// A reader of `bytes`, an entry of `what` (for the error).
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    /// True when every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(EngineError::Internal(format!(
                "corrupt {} state entry",
                self.what
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i128(&mut self) -> Result<i128> {
        Ok(i128::from_le_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A `u32` length, then that many bytes.
    pub(crate) fn sized(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}
