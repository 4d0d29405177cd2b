//! Join of a stream with a bounded table held in memory: the lookup join
//! `JOIN t FOR SYSTEM_TIME AS OF s.proc_time` against a table read once,
//! and a plain join of a stream with a bounded table.
//!
//! The build side is loaded before the job starts and shared by every
//! subtask (it is small: device metadata, dimension tables). With a refresh
//! interval (`'lookup.cache.ttl'` on the table) the first subtask that sees
//! the loaded copy older than the interval reads the table again and every
//! subtask joins with the new copy from its next batch on; a failed read
//! fails the job with the table's name. Each stream
//! row is matched by equality of the key columns; NULL keys match nothing,
//! as in SQL. INNER drops unmatched stream rows, LEFT keeps them with NULLs
//! on the table's side. Output: the stream's columns, then the table's.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::keys::KeyEncoder;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};

/// Which stream rows a join keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Only rows with a match.
    Inner,
    /// Every stream row; table columns NULL when nothing matches.
    Left,
    /// Every right row; left columns NULL when nothing matches (joins of
    /// two streams only).
    Right,
    /// Every row of both sides (joins of two streams only).
    Full,
}

/// Reads the lookup table again.
pub type TableLoader = Arc<dyn Fn() -> Result<RecordBatch> + Send + Sync>;

/// How a lookup table is refreshed.
#[derive(Clone)]
pub struct Refresh {
    /// Reads the table.
    pub load: TableLoader,
    /// How old the loaded copy may get, in milliseconds.
    pub ttl_ms: i64,
    /// Where the age is read.
    pub clock: crate::time::Clock,
    /// The table's name, for errors.
    pub name: String,
}

impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Refresh({} every {} ms)", self.name, self.ttl_ms)
    }
}

/// A loaded copy of the table with its index.
#[derive(Debug)]
struct Loaded {
    table: RecordBatch,
    index: HashMap<Box<[u8]>, Vec<u32>, ahash::RandomState>,
    at: i64,
}

/// The join, built once and shared by its subtasks.
#[derive(Debug)]
pub struct LookupJoin {
    kind: JoinKind,
    stream_keys: KeyEncoder,
    stream_key_columns: Vec<usize>,
    table_keys: Vec<usize>,
    loaded: std::sync::RwLock<Arc<Loaded>>,
    refresh: Option<Refresh>,
    schema: SchemaRef,
}

impl LookupJoin {
    /// Builds the join: `stream_keys[i]` of the stream equals `table_keys[i]`
    /// of `table`. Key types must match pairwise.
    pub fn new(
        kind: JoinKind,
        stream: &Schema,
        stream_keys: Vec<usize>,
        table: RecordBatch,
        table_keys: Vec<usize>,
    ) -> Result<Self> {
        if stream_keys.len() != table_keys.len() || stream_keys.is_empty() {
            return Err(EngineError::Plan(
                "a lookup join needs equal, non-empty key lists".into(),
            ));
        }
        for (&s, &t) in stream_keys.iter().zip(&table_keys) {
            let (st, tt) = (
                stream.field(s).data_type(),
                table.schema().field(t).data_type().clone(),
            );
            if st != &tt {
                return Err(EngineError::Plan(format!(
                    "join keys {} ({st}) and {} ({tt}) have different types",
                    stream.field(s).name(),
                    table.schema().field(t).name()
                )));
            }
        }
        let loaded = index_table(table.clone(), &table_keys, 0)?;
        // An updating stream keeps its changelog column last: each output
        // row has its stream row's kind.
        let updating = crate::types::is_updating(stream);
        let width = stream.fields().len() - usize::from(updating);
        let mut fields: Vec<Field> = stream.fields()[..width]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for f in table.schema().fields() {
            // The table side may be NULL when a LEFT join finds nothing.
            fields.push(
                f.as_ref()
                    .clone()
                    .with_nullable(f.is_nullable() || kind == JoinKind::Left),
            );
        }
        if updating {
            fields.push(crate::types::row_kind_field());
        }
        Ok(Self {
            kind,
            stream_keys: KeyEncoder::new(stream, &stream_keys)?,
            stream_key_columns: stream_keys,
            table_keys,
            loaded: std::sync::RwLock::new(Arc::new(loaded)),
            refresh: None,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// Reads the table again through `refresh.load` once the loaded copy
    /// is older than `refresh.ttl_ms` (its age counts from now).
    pub fn with_refresh(mut self, refresh: Refresh) -> Result<Self> {
        let now = refresh.clock.now_millis();
        if let Ok(mut l) = self.loaded.write() {
            let table = l.table.clone();
            *l = Arc::new(index_table(table, &self.table_keys, now)?);
        }
        self.refresh = Some(refresh);
        Ok(self)
    }

    /// The loaded copy to join with, read again first when it is too old.
    fn current(&self) -> Result<Arc<Loaded>> {
        let poisoned = || EngineError::Internal("lookup table lock poisoned".into());
        let loaded = Arc::clone(&*self.loaded.read().map_err(|_| poisoned())?);
        let Some(r) = &self.refresh else {
            return Ok(loaded);
        };
        let now = r.clock.now_millis();
        if now.saturating_sub(loaded.at) < r.ttl_ms {
            return Ok(loaded);
        }
        let mut slot = self.loaded.write().map_err(|_| poisoned())?;
        // Another subtask may have read it meanwhile.
        if now.saturating_sub(slot.at) < r.ttl_ms {
            return Ok(Arc::clone(&slot));
        }
        let table = (r.load)().map_err(|e| {
            EngineError::Execution(format!("cannot refresh lookup table '{}': {e}", r.name))
        })?;
        if table.schema().fields().len() != slot.table.schema().fields().len() {
            return Err(EngineError::Execution(format!(
                "lookup table '{}' came back with other columns",
                r.name
            )));
        }
        let fresh = Arc::new(index_table(table, &self.table_keys, now)?);
        *slot = Arc::clone(&fresh);
        Ok(fresh)
    }

    /// Output schema: stream columns, then table columns.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// A factory whose subtasks share this join's table.
    pub fn factory(self) -> OperatorFactory {
        let shared = Arc::new(self);
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(LookupJoinOperator(Arc::clone(&shared))) as Box<dyn Operator>)
        })
    }

    fn join(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let loaded = self.current()?;
        let rows = self.stream_keys.encode(batch)?;
        let mut left_idx: Vec<u32> = Vec::with_capacity(batch.num_rows());
        let mut right_idx: Vec<Option<u32>> = Vec::with_capacity(batch.num_rows());
        for (i, row) in rows.iter().enumerate() {
            let null_key = self
                .stream_key_columns
                .iter()
                .any(|&k| batch.column(k).is_null(i));
            match (null_key, loaded.index.get(row.as_ref())) {
                (false, Some(matches)) => {
                    for &m in matches {
                        left_idx.push(i as u32);
                        right_idx.push(Some(m));
                    }
                }
                _ if self.kind == JoinKind::Left => {
                    left_idx.push(i as u32);
                    right_idx.push(None);
                }
                _ => {}
            }
        }
        let left = UInt32Array::from(left_idx);
        let right = UInt32Array::from(right_idx);
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let updating = crate::types::is_updating(&self.schema);
        let width = batch.num_columns() - usize::from(updating);
        for c in &batch.columns()[..width] {
            cols.push(arrow::compute::take(c.as_ref(), &left, None)?);
        }
        for c in loaded.table.columns() {
            if loaded.table.num_rows() == 0 {
                cols.push(new_null_array(c.data_type(), right.len()));
            } else {
                cols.push(arrow::compute::take(c.as_ref(), &right, None)?);
            }
        }
        if updating {
            cols.push(arrow::compute::take(
                batch.column(width).as_ref(),
                &left,
                None,
            )?);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), cols)?)
    }
}

/// `table` with its rows indexed by `keys` (rows with a NULL key left
/// out: they match nothing), loaded at `at`.
fn index_table(table: RecordBatch, keys: &[usize], at: i64) -> Result<Loaded> {
    let encoder = KeyEncoder::new(table.schema_ref(), keys)?;
    let rows = encoder.encode(&table)?;
    let mut index: HashMap<Box<[u8]>, Vec<u32>, ahash::RandomState> = HashMap::default();
    for (i, row) in rows.iter().enumerate() {
        if keys.iter().any(|&k| table.column(k).is_null(i)) {
            continue;
        }
        index.entry(row.as_ref().into()).or_default().push(i as u32);
    }
    Ok(Loaded { table, index, at })
}

/// One subtask of a [`LookupJoin`].
#[derive(Debug)]
pub struct LookupJoinOperator(Arc<LookupJoin>);

impl Operator for LookupJoinOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let joined = self.0.join(&batch)?;
        if joined.num_rows() > 0 {
            out.collect(joined)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::DataType;

    use super::*;

    fn table() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("region", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("b"),
                ])),
                Arc::new(StringArray::from(vec!["north", "south", "nowhere", "east"])),
            ],
        )
        .expect("table")
    }

    fn stream() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("device", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("c"),
                    None,
                    Some("a"),
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            ],
        )
        .expect("stream")
    }

    fn pairs(b: &RecordBatch) -> Vec<(i64, Option<String>)> {
        let v = b
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("v");
        let r = b
            .column(3)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("region");
        let mut out: Vec<(i64, Option<String>)> = (0..b.num_rows())
            .map(|i| (v.value(i), (!r.is_null(i)).then(|| r.value(i).to_string())))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn inner_and_left_joins_with_duplicates_and_null_keys() -> Result<()> {
        let s = stream();
        let inner = LookupJoin::new(JoinKind::Inner, s.schema_ref(), vec![0], table(), vec![0])?;
        assert_eq!(
            pairs(&inner.join(&s)?),
            vec![
                (1, Some("east".into())),
                (1, Some("south".into())),
                (4, Some("north".into()))
            ]
        );
        let left = LookupJoin::new(JoinKind::Left, s.schema_ref(), vec![0], table(), vec![0])?;
        assert_eq!(
            pairs(&left.join(&s)?),
            vec![
                (1, Some("east".into())),
                (1, Some("south".into())),
                (2, None),
                (3, None),
                (4, Some("north".into()))
            ]
        );
        let err = LookupJoin::new(JoinKind::Inner, s.schema_ref(), vec![1], table(), vec![0]).err();
        assert!(err
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("different types"));
        Ok(())
    }

    #[test]
    fn a_refreshed_table_is_read_again_once_its_copy_is_older_than_the_ttl() -> Result<()> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let s = stream().slice(3, 1);
        let reads = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&reads);
        let load: TableLoader = Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let schema = table().schema();
            Ok(RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(StringArray::from(vec![Some("a")])),
                    Arc::new(StringArray::from(vec!["west"])),
                ],
            )?)
        });
        let clock = crate::time::Clock::manual(1_000);
        let join = LookupJoin::new(JoinKind::Inner, s.schema_ref(), vec![0], table(), vec![0])?
            .with_refresh(Refresh {
                load,
                ttl_ms: 500,
                clock: clock.clone(),
                name: "devices".into(),
            })?;
        let region = |b: &RecordBatch| -> String {
            b.column(3)
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|a| a.value(0).to_string())
                .unwrap_or_default()
        };
        assert_eq!(region(&join.join(&s)?), "north");
        clock.set_millis(1_400);
        assert_eq!(region(&join.join(&s)?), "north", "still fresh");
        assert_eq!(reads.load(Ordering::SeqCst), 0);
        clock.set_millis(1_600);
        assert_eq!(region(&join.join(&s)?), "west", "read again");
        assert_eq!(join.join(&s)?.num_rows(), 1);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        Ok(())
    }
}
