//! Operators over an updating input that keep each partition's live rows
//! in ORDER BY order: Top-N ([`RetractTopN`]) and OVER aggregations with
//! a ROWS frame ([`RetractOver`]), for `ROW_NUMBER()`/`RANK()` or
//! `AGG(x) OVER (PARTITION BY p ORDER BY o ...)` over a GROUP BY without a
//! window, a regular join or a changelog table.
//!
//! An insertion (`+I`, `+U`) goes after the rows that sort before it or
//! equal to it: of equal rows, the one that came first ranks first. A
//! retraction (`-U`, `-D`) removes the first live row equal to it; a
//! retraction of a row that is not there (it was never inserted, or the
//! input is not a consistent changelog) changes nothing. Each change is
//! applied on its own and its effect on the output computed from the
//! partition before and after it, so the output is a consistent changelog
//! whatever the changes' order.
//!
//! Unlike the append-only Top-N, these keep every live row of a partition
//! (a row leaving the top N lets the next one in), as Flink's retractable
//! Top-N does.
//!
//! State: one entry per partition, `key group | partition key` to its rows;
//! a barrier writes the partitions changed since the last one and deletes
//! the empty ones. Partitions are read back from the backend when a change
//! of theirs comes and they are not in memory (after a restore).

mod over;
mod top_n;

use std::collections::HashMap;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use runnel_state::TableId;

use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::OperatorContext;
use crate::ops::agg::{load_meta, save_meta, state_key, EntryReader};
use crate::types::{row_kinds, RowKind};

pub use over::RetractOver;
pub use top_n::RetractTopN;

/// One live row: its ORDER BY bytes (Arrow row format with each column's
/// direction) and the row itself (without the changelog column).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    sort: Vec<u8>,
    row: Vec<u8>,
}

/// A partition's live rows in ORDER BY order, equal ones by arrival.
#[derive(Debug, Default)]
struct Ordered {
    rows: Vec<Entry>,
    dirty: bool,
}

impl Ordered {
    /// Adds a row after the rows that sort before or with it; its position.
    fn insert(&mut self, sort: &[u8], row: &[u8]) -> usize {
        let at = self.rows.partition_point(|e| e.sort.as_slice() <= sort);
        self.rows.insert(
            at,
            Entry {
                sort: sort.to_vec(),
                row: row.to_vec(),
            },
        );
        self.dirty = true;
        at
    }

    /// The position of the first live row equal to `row`.
    fn find(&self, sort: &[u8], row: &[u8]) -> Option<usize> {
        let from = self.rows.partition_point(|e| e.sort.as_slice() < sort);
        self.rows[from..]
            .iter()
            .take_while(|e| e.sort.as_slice() == sort)
            .position(|e| e.row.as_slice() == row)
            .map(|i| from + i)
    }
}

fn encode(p: &Ordered) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(p.rows.len() as u32).to_le_bytes());
    for e in &p.rows {
        out.extend_from_slice(&(e.sort.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.sort);
        out.extend_from_slice(&(e.row.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.row);
    }
    out
}

fn decode(b: &[u8], what: &'static str) -> Result<Ordered> {
    let mut r = EntryReader::new(b, what);
    let n = r.u32()?;
    let mut rows = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let sort = r.sized()?.to_vec();
        let row = r.sized()?.to_vec();
        rows.push(Entry { sort, row });
    }
    Ok(Ordered { rows, dirty: false })
}

/// What both operators share: the partition key encoder, the row formats
/// and the partitions with their state table.
#[derive(Debug)]
struct Partitions {
    what: &'static str,
    /// The input's columns without the changelog column.
    data: SchemaRef,
    partition: Option<KeyEncoder>,
    sort: RowConverter,
    rows: RowConverter,
    map: HashMap<Box<[u8]>, Ordered, ahash::RandomState>,
    /// The backend may hold partitions not in memory (after a restore).
    backed: bool,
    table: Option<TableId>,
}

/// One change of a batch, in its partition's formats.
struct Change<'a> {
    key: &'a [u8],
    sort: &'a [u8],
    row: &'a [u8],
    kind: RowKind,
}

/// A batch's changes in row formats, borrowed by [`Change`]s.
struct Encoded {
    keys: Option<Rows>,
    sorts: Rows,
    rows: Rows,
    kinds: Vec<RowKind>,
}

impl Encoded {
    fn change(&self, i: usize) -> Change<'_> {
        Change {
            key: self.keys.as_ref().map_or(&[], |k| k.row(i).data()),
            sort: self.sorts.row(i).data(),
            row: self.rows.row(i).data(),
            kind: self.kinds[i],
        }
    }
}

impl Partitions {
    /// `order`: (column, descending, nulls first).
    fn new(
        what: &'static str,
        input: &SchemaRef,
        partition_keys: &[usize],
        order: &[(usize, bool, bool)],
    ) -> Result<Self> {
        if !crate::types::is_updating(input) {
            return Err(EngineError::Internal(format!(
                "{what} expects an updating input"
            )));
        }
        let width = input.fields().len() - 1;
        let data = Schema::new(input.fields()[..width].to_vec());
        if let Some(&c) = partition_keys
            .iter()
            .chain(order.iter().map(|(c, ..)| c))
            .find(|&&c| c >= width)
        {
            return Err(EngineError::Plan(format!(
                "{what} column {c} is out of range ({width} columns)"
            )));
        }
        if order.is_empty() {
            return Err(EngineError::Plan(format!("{what} needs ORDER BY")));
        }
        let sort = crate::ops::top_n::order_converter(&data, order)?;
        let rows = RowConverter::new(
            data.fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let data = std::sync::Arc::new(data);
        let partition = if partition_keys.is_empty() {
            None
        } else {
            Some(KeyEncoder::new(&data, partition_keys)?)
        };
        Ok(Self {
            what,
            data,
            partition,
            sort,
            rows,
            map: HashMap::default(),
            backed: false,
            table: None,
        })
    }

    fn table(&self) -> Result<TableId> {
        self.table
            .ok_or_else(|| EngineError::Internal(format!("{} not opened", self.what)))
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>, suffix: &str) -> Result<()> {
        let table = ctx
            .state
            .register_table(&format!("{}/{suffix}", ctx.task.operator_name))?;
        self.table = Some(table);
        self.backed = load_meta(ctx, table)?.is_some();
        Ok(())
    }

    /// The row formats of `batch`'s changes.
    fn encode(&self, batch: &RecordBatch, order: &[(usize, bool, bool)]) -> Result<Encoded> {
        let width = self.data.fields().len();
        let columns: Vec<ArrayRef> = batch.columns()[..width].to_vec();
        let data = RecordBatch::try_new(std::sync::Arc::clone(&self.data), columns)?;
        let keys = match &self.partition {
            Some(e) => Some(e.encode(&data)?),
            None => None,
        };
        let sort_columns: Vec<ArrayRef> = order
            .iter()
            .map(|&(c, ..)| data.column(c).clone())
            .collect();
        Ok(Encoded {
            keys,
            sorts: self.sort.convert_columns(&sort_columns)?,
            rows: self.rows.convert_columns(data.columns())?,
            kinds: row_kinds(batch)?,
        })
    }

    /// `key`'s partition, read back from the backend when it has it and
    /// it is not in memory.
    fn get(&mut self, key: &[u8], ctx: &mut OperatorContext<'_>) -> Result<&mut Ordered> {
        if self.backed && !self.map.contains_key(key) {
            let table = self.table()?;
            if let Some(v) = ctx.state.get(table, &state_key(ctx, key, &[]))? {
                self.map.insert(key.into(), decode(&v, self.what)?);
            }
        }
        Ok(self.map.entry(key.into()).or_default())
    }

    /// Writes the partitions changed since the last barrier; forgets the
    /// empty ones.
    fn checkpoint(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self.table()?;
        let mut gone = Vec::new();
        for (key, p) in self.map.iter_mut() {
            // Empty partitions go, also those a retraction of a row that
            // was not there left behind (never written).
            if p.rows.is_empty() {
                gone.push(key.clone());
            }
            if !p.dirty {
                continue;
            }
            p.dirty = false;
            let k = state_key(ctx, key, &[]);
            if p.rows.is_empty() {
                ctx.state.delete(table, &k)?;
            } else {
                ctx.state.put_owned(table, k, encode(p))?;
            }
        }
        for key in gone {
            self.map.remove(&key);
        }
        // The meta entry marks the table as written (see `open`).
        save_meta(ctx, table, i64::MIN, 0)
    }

    /// Arrays of `rows` (row bytes of the data columns).
    fn columns<'a>(&self, rows: impl Iterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let parser = self.rows.parser();
        Ok(self.rows.convert_rows(rows.map(|r| parser.parse(r)))?)
    }
}

#[cfg(test)]
mod tests;
