//! The non-windowed keyed aggregate: an updating stream.
//!
//! Every batch updates the groups its rows belong to and emits, for each
//! touched group, the retraction of its previous result (`-U`) followed by
//! the new result (`+U`), or `+I` for a group seen for the first time. All
//! retractions of a batch come before all new results, so for each key the
//! order is `-U` then `+U`, as a changelog consumer expects. The input must
//! be append-only: over an updating stream, or with a state TTL,
//! [`GroupAggregateSpec`] builds a [`RetractAggregate`] instead.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::aggregate::GroupsAccumulator;
use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::ops::agg::{
    load_group, load_meta, save_group, save_meta, state_key, update_all, AggregateCall,
    BoundAggregates,
};
use crate::ops::retract_agg::RetractAggregate;
use crate::types::{is_updating, row_kind_array, with_row_kind, Barrier, RowKind};

/// What a non-windowed aggregate computes.
#[derive(Debug, Clone)]
pub struct GroupAggregateSpec {
    /// GROUP BY columns of the input.
    pub key_columns: Vec<usize>,
    /// The aggregates.
    pub aggregates: Vec<AggregateCall>,
    /// How long a group lives after it was last written (state TTL);
    /// `None` keeps it for as long as the job runs.
    pub ttl: Option<std::time::Duration>,
    /// Where the TTL reads the time.
    pub clock: crate::time::Clock,
}

impl GroupAggregateSpec {
    /// The operator for `input`: the vectorized [`GroupAggregate`] over an
    /// append-only stream without a TTL, else a [`RetractAggregate`].
    fn build(&self, input: &SchemaRef) -> Result<Box<dyn Operator>> {
        if is_updating(input) || self.ttl.is_some() {
            return Ok(Box::new(RetractAggregate::new(
                self.clone(),
                input,
                self.ttl,
                self.clock.clone(),
            )?));
        }
        Ok(Box::new(GroupAggregate::new(self.clone(), input)?))
    }

    /// A factory for the subtasks of this operator.
    pub fn factory(self, input: SchemaRef) -> Result<OperatorFactory> {
        self.build(&input)?;
        Ok(Arc::new(move |_task: &TaskInfo| self.build(&input)))
    }
}

/// The operator; see the module docs.
#[derive(Debug)]
pub struct GroupAggregate {
    aggs: BoundAggregates,
    encoder: KeyEncoder,
    schema: SchemaRef,
    accs: Vec<Box<dyn GroupsAccumulator>>,
    groups: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    keys: Vec<Box<[u8]>>,
    /// Bytes of the keys in `keys`.
    key_bytes: usize,
    /// Groups changed since they were last written to the backend.
    dirty: Vec<bool>,
    /// True when the backend may hold groups that are not in memory (after
    /// a restore or an eviction), so a key missing in memory is looked up.
    backed: bool,
    /// The batch that last touched each slot (0: not in this run yet).
    touched_at: Vec<u64>,
    /// Batches seen so far; the current batch's number.
    batch_no: u64,
    /// Slots of evicted groups, for reuse.
    free: Vec<u32>,
    /// Groups in memory (slots in use).
    live: usize,
    /// Memory above which the next eviction runs: the budget, or more
    /// when the groups in use by recent batches alone exceed it.
    evict_above: usize,
    seq: u64,
    table: Option<runnel_state::TableId>,
}

/// Rough bytes per cached group besides its key and accumulator values:
/// the hash map slot, the boxed key in two places, the dirty flag.
const GROUP_OVERHEAD: usize = 64;

/// An eviction stops once the cache is at this many tenths of the budget.
const LOW_WATER: usize = 6;

/// Groups touched by this many of the latest batches are never evicted:
/// a group that most batches touch (q16's channels, touched with a chance
/// of about 90% per batch) would otherwise be written out and read back
/// again and again.
const RECENT_BATCHES: u64 = 16;

impl GroupAggregate {
    /// Builds the operator for `input`.
    pub fn new(spec: GroupAggregateSpec, input: &Schema) -> Result<Self> {
        if is_updating(input) {
            return Err(EngineError::Plan(
                "an aggregate over an updating stream (one that retracts rows) is not supported yet".into(),
            ));
        }
        let aggs = BoundAggregates::new(spec.aggregates.clone(), input)?;
        let encoder = KeyEncoder::new(input, &spec.key_columns)?;
        let mut fields: Vec<Field> = spec
            .key_columns
            .iter()
            .map(|&k| input.field(k).clone())
            .collect();
        fields.extend(aggs.fields().iter().cloned());
        let schema = with_row_kind(&Schema::new(fields));
        Ok(Self {
            accs: aggs.accumulators()?,
            aggs,
            encoder,
            schema,
            groups: HashMap::default(),
            keys: Vec::new(),
            key_bytes: 0,
            dirty: Vec::new(),
            backed: false,
            touched_at: Vec::new(),
            batch_no: 0,
            free: Vec::new(),
            live: 0,
            evict_above: 0,
            seq: 0,
            table: None,
        })
    }

    /// The output schema: keys, aggregates, then the changelog column.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The group of `key` and whether the key is new (has no result yet):
    /// from memory, else from the backend, else a fresh group.
    fn group_of(&mut self, key: &[u8], ctx: &mut OperatorContext<'_>) -> Result<(u32, bool)> {
        if let Some(&g) = self.groups.get(key) {
            return Ok((g, false));
        }
        let g = match self.free.pop() {
            Some(g) => {
                self.keys[g as usize] = key.into();
                self.dirty[g as usize] = false;
                self.touched_at[g as usize] = 0;
                g
            }
            None => {
                self.keys.push(key.into());
                self.dirty.push(false);
                self.touched_at.push(0);
                (self.keys.len() - 1) as u32
            }
        };
        self.live += 1;
        self.key_bytes += key.len();
        self.groups.insert(key.into(), g);
        if self.backed {
            let table = self.table()?;
            if let Some(value) = ctx.state.get(table, &state_key(ctx, key, &[]))? {
                load_group(&mut self.accs, g, &value)?;
                return Ok((g, false));
            }
        }
        Ok((g, true))
    }

    fn table(&self) -> Result<runnel_state::TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal("group aggregate not opened".into()))
    }

    /// Approximate bytes of the groups in memory.
    pub fn memory_size(&self) -> usize {
        self.key_bytes
            + self.live * GROUP_OVERHEAD
            + self.accs.iter().map(|a| a.size_bytes()).sum::<usize>()
    }

    /// Writes the changed groups and the sequence to the backend.
    fn write_dirty(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        let mut size = 16;
        for (g, dirty) in self.dirty.iter_mut().enumerate() {
            if !*dirty {
                continue;
            }
            *dirty = false;
            // Owned buffers: a backend that keeps recent writes in memory
            // (asynchronous snapshots) takes them without a copy.
            let mut value = Vec::with_capacity(size);
            save_group(&self.accs, g as u32, &mut value)?;
            size = value.len();
            let key = state_key(ctx, &self.keys[g], &[]);
            ctx.state.put_owned(table, key, value)?;
        }
        save_meta(ctx, table, i64::MIN, self.seq)
    }

    /// Makes room under `budget`: writes the groups none of the last
    /// [`RECENT_BATCHES`] batches touched, least recently touched first, and
    /// drops them from memory until the cache is at [`LOW_WATER`] of the
    /// budget. Recently touched groups stay. When those alone exceed the budget, the cache
    /// stays above it, and the next eviction waits until it has grown by a
    /// quarter: evicting the working set would reload it from the backend
    /// at every batch.
    fn evict(&mut self, ctx: &mut OperatorContext<'_>, budget: usize) -> Result<()> {
        let table = self.table()?;
        let mut cold: Vec<(u64, u32)> = self
            .touched_at
            .iter()
            .enumerate()
            .filter(|(g, &t)| t + RECENT_BATCHES <= self.batch_no && !self.keys[*g].is_empty())
            .map(|(g, &t)| (t, g as u32))
            .collect();
        cold.sort_unstable();
        let target = budget / 10 * LOW_WATER;
        let mut value = Vec::new();
        let mut evicted = 0usize;
        for (_, g) in cold {
            if self.memory_size() <= target {
                break;
            }
            let gi = g as usize;
            if self.dirty[gi] {
                value.clear();
                save_group(&self.accs, g, &mut value)?;
                ctx.state
                    .put(table, &state_key(ctx, &self.keys[gi], &[]), &value)?;
                self.dirty[gi] = false;
            }
            let key = std::mem::take(&mut self.keys[gi]);
            self.groups.remove(&key);
            self.key_bytes -= key.len();
            for acc in &mut self.accs {
                acc.reset(g);
            }
            self.free.push(g);
            self.live -= 1;
            evicted += 1;
        }
        if evicted > 0 {
            save_meta(ctx, table, i64::MIN, self.seq)?;
            self.backed = true;
            ctx.metrics
                .state_spills
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let now = self.memory_size();
        self.evict_above = if now > budget { now / 4 * 5 } else { budget };
        Ok(())
    }

    /// Rows for `groups`: keys, current values, the given row kinds.
    fn rows(&self, groups: &[u32], kinds: &[RowKind]) -> Result<Vec<ArrayRef>> {
        let parser = self.encoder.converter().parser();
        let mut columns = self
            .encoder
            .decode(groups.iter().map(|&g| parser.parse(&self.keys[g as usize])))?;
        for acc in &self.accs {
            columns.push(acc.evaluate(groups)?);
        }
        columns.push(row_kind_array(kinds));
        Ok(columns)
    }
}

impl Operator for GroupAggregate {
    fn state_layout(&self) -> crate::operator::StateLayout {
        crate::operator::StateLayout::KeyGroups
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/group_agg", ctx.task.operator_name))?;
        self.table = Some(table);
        let Some((_, seq)) = load_meta(ctx, table)? else {
            return Ok(());
        };
        // Groups are read back when their keys come again.
        self.seq = seq;
        self.backed = true;
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
        let key_rows = self.encoder.encode(&batch)?;
        let inputs = self.aggs.evaluate(&batch)?;
        let mut groups = Vec::with_capacity(n);
        // Touched groups in first-touch order, and whether each is new.
        let mut touched: Vec<(u32, bool)> = Vec::new();
        self.batch_no += 1;
        for row in key_rows.iter() {
            let (g, new) = self.group_of(row.as_ref(), ctx)?;
            let gi = g as usize;
            self.dirty[gi] = true;
            groups.push(g);
            if self.touched_at[gi] != self.batch_no {
                self.touched_at[gi] = self.batch_no;
                touched.push((g, new));
            }
        }
        let before: Vec<u32> = touched
            .iter()
            .filter(|(_, new)| !new)
            .map(|(g, _)| *g)
            .collect();
        let retractions = if before.is_empty() {
            None
        } else {
            Some(self.rows(&before, &vec![RowKind::UpdateBefore; before.len()])?)
        };
        let first_seq = self.seq;
        self.seq += n as u64;
        update_all(
            &mut self.accs,
            &inputs,
            &groups,
            None,
            self.keys.len(),
            first_seq,
        )?;
        let after: Vec<u32> = touched.iter().map(|(g, _)| *g).collect();
        let kinds: Vec<RowKind> = touched
            .iter()
            .map(|(_, new)| {
                if *new {
                    RowKind::Insert
                } else {
                    RowKind::UpdateAfter
                }
            })
            .collect();
        let additions = self.rows(&after, &kinds)?;
        let columns = match retractions {
            None => additions,
            Some(r) => r
                .iter()
                .zip(&additions)
                .map(|(a, b)| arrow::compute::concat(&[a.as_ref(), b.as_ref()]))
                .collect::<std::result::Result<Vec<_>, _>>()?,
        };
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)?;
        if let Some(budget) = ctx.task.memory_budget {
            if self.memory_size() > self.evict_above.max(budget) {
                self.evict(ctx, budget)?;
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.write_dirty(ctx)
    }
}
