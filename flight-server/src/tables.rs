//! Tables the server keeps in memory: materialized views and system tables.
//!
//! A materialized view is a [`ViewTable`]: a multiset of rows that a job's
//! sink keeps up to date by applying its changelog (`+I`/`+U` add a row,
//! `-U`/`-D` remove one). Rows are stored in Arrow's row format, whose byte
//! order is the sort order of the columns, so a view lists its rows sorted
//! by all columns. Each sink subtask owns one partition and checkpoints only
//! that partition; readers sum the partitions. A retraction may reach a
//! different subtask than the row it retracts (round-robin exchanges), so a
//! partition may hold a negative count for a row; the sum is what counts.
//!
//! Both kinds of table are read through connectors, so the planner treats
//! them as bounded tables: `runnel-view` reads a snapshot of a view,
//! `runnel-system` asks the server for the rows of a system table when the
//! query starts reading.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use runnel_engine::connector::{Connector, SourceTable, TableDescriptor};
use runnel_engine::error::{EngineError, Result};
use runnel_engine::operator::{
    Collector, Operator, OperatorContext, OperatorFactory, OperatorMetrics, TaskInfo,
};
use runnel_engine::source::{Source, SourceFactory, SourcePoll, SplitId};
use runnel_engine::types::{is_updating, row_kinds, Barrier};
use runnel_sql::session::MATERIALIZED_VIEW_CONNECTOR;

/// The connector name of system tables.
pub const SYSTEM_CONNECTOR: &str = "runnel-system";

/// The contents of a materialized view.
pub struct ViewTable {
    schema: SchemaRef,
    converter: RowConverter,
    /// One map per sink subtask: row bytes to count.
    partitions: Mutex<Vec<BTreeMap<Vec<u8>, i64>>>,
    /// Per partition, the rows whose count changed since the sink last
    /// wrote its partition to its state (taken with `take_changes`).
    changed: Mutex<Vec<std::collections::HashSet<Vec<u8>>>>,
    /// The last snapshot, until the contents change: dashboards read a
    /// view far more often than its job updates it.
    cached: Mutex<Option<RecordBatch>>,
}

impl std::fmt::Debug for ViewTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewTable")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl ViewTable {
    /// An empty view with these columns.
    pub fn new(schema: SchemaRef) -> Result<Self> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Self {
            converter: RowConverter::new(fields)?,
            schema,
            partitions: Mutex::new(Vec::new()),
            changed: Mutex::new(Vec::new()),
            cached: Mutex::new(None),
        })
    }

    /// The view's columns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn lock(&self) -> Result<MutexGuard<'_, Vec<BTreeMap<Vec<u8>, i64>>>> {
        self.partitions
            .lock()
            .map_err(|_| EngineError::Internal("view table lock poisoned".into()))
    }

    /// Applies a batch to partition `part`: appended rows, or a changelog
    /// when the batch ends in the changelog column.
    pub fn apply(&self, part: usize, batch: &RecordBatch) -> Result<()> {
        let n = self.schema.fields().len();
        let kinds = if is_updating(batch.schema_ref()) {
            Some(row_kinds(batch)?)
        } else {
            None
        };
        if batch.num_columns() < n {
            return Err(EngineError::Internal(format!(
                "a view of {n} columns received a batch of {}",
                batch.num_columns()
            )));
        }
        let columns: Vec<ArrayRef> = batch.columns()[..n].to_vec();
        let rows = self.converter.convert_columns(&columns)?;
        let mut parts = self.lock()?;
        self.invalidate();
        if parts.len() <= part {
            parts.resize_with(part + 1, BTreeMap::new);
        }
        let map = &mut parts[part];
        let mut changed = self
            .changed
            .lock()
            .map_err(|_| EngineError::Internal("view table lock poisoned".into()))?;
        if changed.len() <= part {
            changed.resize_with(part + 1, Default::default);
        }
        let changed = &mut changed[part];
        for (i, row) in rows.iter().enumerate() {
            let delta = match &kinds {
                Some(k) if !k[i].is_addition() => -1,
                _ => 1,
            };
            let bytes = row.as_ref();
            if !changed.contains(bytes) {
                changed.insert(bytes.to_vec());
            }
            let entry = match map.get_mut(bytes) {
                Some(c) => c,
                None => map.entry(bytes.to_vec()).or_insert(0),
            };
            *entry += delta;
            if *entry == 0 {
                map.remove(bytes);
            }
        }
        Ok(())
    }

    /// Forgets the cached snapshot (the caller holds the partitions' lock).
    fn invalidate(&self) {
        if let Ok(mut c) = self.cached.lock() {
            *c = None;
        }
    }

    /// Each row's count summed over all partitions.
    fn totals(&self) -> Result<BTreeMap<Vec<u8>, i64>> {
        let parts = self.lock()?;
        Ok(Self::sum(&parts))
    }

    fn sum(parts: &[BTreeMap<Vec<u8>, i64>]) -> BTreeMap<Vec<u8>, i64> {
        let mut totals = BTreeMap::new();
        for p in parts.iter() {
            for (k, c) in p {
                *totals.entry(k.clone()).or_insert(0) += *c;
            }
        }
        totals
    }

    /// The current contents: every row whose count over all partitions is
    /// positive, as often as it counts, sorted by all columns.
    pub fn snapshot(&self) -> Result<RecordBatch> {
        // Under the partitions' lock, so that no change lands between
        // building the snapshot and caching it.
        let parts = self.lock()?;
        if let Some(b) = self.cached.lock().ok().and_then(|c| c.clone()) {
            return Ok(b);
        }
        let totals = Self::sum(&parts);
        let parser = self.converter.parser();
        let mut rows = Vec::new();
        for (k, c) in &totals {
            for _ in 0..(*c).max(0) {
                rows.push(parser.parse(k));
            }
        }
        let columns = self.converter.convert_rows(rows)?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        if let Ok(mut c) = self.cached.lock() {
            *c = Some(batch.clone());
        }
        Ok(batch)
    }

    /// Number of rows now (without building them).
    pub fn len(&self) -> Result<usize> {
        Ok(self.totals()?.values().map(|c| (*c).max(0) as usize).sum())
    }

    /// True when the view has no rows.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The rows of partition `part` whose count changed since the last
    /// call, with their count now (`None`: the row is gone).
    fn take_changes(&self, part: usize) -> Result<Vec<(Vec<u8>, Option<i64>)>> {
        let parts = self.lock()?;
        let keys = self
            .changed
            .lock()
            .map_err(|_| EngineError::Internal("view table lock poisoned".into()))?
            .get_mut(part)
            .map(std::mem::take)
            .unwrap_or_default();
        let map = parts.get(part);
        Ok(keys
            .into_iter()
            .map(|k| {
                let c = map.and_then(|m| m.get(&k)).copied();
                (k, c)
            })
            .collect())
    }

    /// Replaces partition `part` (on restore).
    fn set_partition(&self, part: usize, entries: BTreeMap<Vec<u8>, i64>) -> Result<()> {
        let mut parts = self.lock()?;
        self.invalidate();
        if parts.len() <= part {
            parts.resize_with(part + 1, BTreeMap::new);
        }
        parts[part] = entries;
        // The restored partition is what the state holds: nothing of it
        // differs from the state until rows come again.
        if let Some(changed) = self
            .changed
            .lock()
            .map_err(|_| EngineError::Internal("view table lock poisoned".into()))?
            .get_mut(part)
        {
            changed.clear();
        }
        Ok(())
    }
}

/// Folds a complete changelog into its final rows (what a bounded updating
/// query returns).
pub fn fold_changelog(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let table = ViewTable::new(Arc::clone(schema))?;
    for b in batches {
        table.apply(0, b)?;
    }
    table.snapshot()
}

/// The materialized views of a server, by name.
#[derive(Debug, Clone, Default)]
pub struct Views(Arc<Mutex<HashMap<String, Arc<ViewTable>>>>);

impl Views {
    /// The view `name`, created empty with `schema` if it does not exist
    /// (or exists with other columns: the name was dropped and reused).
    pub fn get_or_create(&self, name: &str, schema: &SchemaRef) -> Result<Arc<ViewTable>> {
        let mut views = self
            .0
            .lock()
            .map_err(|_| EngineError::Internal("views lock poisoned".into()))?;
        if let Some(v) = views.get(name) {
            if v.schema() == schema {
                return Ok(Arc::clone(v));
            }
        }
        let v = Arc::new(ViewTable::new(Arc::clone(schema))?);
        views.insert(name.to_string(), Arc::clone(&v));
        Ok(v)
    }

    /// The view `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<ViewTable>> {
        self.0.lock().ok().and_then(|v| v.get(name).cloned())
    }

    /// Forgets the view `name` (DROP VIEW).
    pub fn remove(&self, name: &str) {
        if let Ok(mut v) = self.0.lock() {
            v.remove(name);
        }
    }
}

/// The `runnel-view` connector: a materialized view's sink (the job that
/// maintains it) and its source (a snapshot, for queries).
pub struct ViewConnector {
    views: Views,
}

impl ViewConnector {
    /// A connector over these views.
    pub fn new(views: Views) -> Self {
        Self { views }
    }
}

impl Connector for ViewConnector {
    fn name(&self) -> &'static str {
        MATERIALIZED_VIEW_CONNECTOR
    }

    fn options(&self) -> &'static [&'static str] {
        &[]
    }

    fn internal(&self) -> bool {
        true
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        let views = self.views.clone();
        let name = table.name.clone();
        let empty = Arc::clone(&table.schema);
        Ok(snapshot_source(table, move || match views.get(&name) {
            Some(v) => v.snapshot(),
            None => Ok(RecordBatch::new_empty(Arc::clone(&empty))),
        }))
    }

    fn sink(&self, table: &TableDescriptor, _updating: bool) -> Result<OperatorFactory> {
        let view = self.views.get_or_create(&table.name, &table.schema)?;
        Ok(Arc::new(move |task: &TaskInfo| {
            Ok(Box::new(ViewSink {
                view: Arc::clone(&view),
                part: task.subtask,
                table: None,
            }) as Box<dyn Operator>)
        }))
    }

    fn supports_projection(&self, _table: &TableDescriptor) -> bool {
        true
    }
}

/// A bounded source of one subtask that reads `make()` once, when the query
/// starts reading, and keeps the columns the query asked for.
fn snapshot_source(
    table: &TableDescriptor,
    make: impl Fn() -> Result<RecordBatch> + Send + Sync + 'static,
) -> SourceTable {
    let make = Arc::new(make);
    let wanted = Arc::clone(&table.schema);
    let factory: SourceFactory = Arc::new(move |_task: &TaskInfo| {
        let make = Arc::clone(&make);
        let wanted = Arc::clone(&wanted);
        Ok(
            Box::new(OnceSource::new(move || project_by_name(&make()?, &wanted)))
                as Box<dyn Source>,
        )
    });
    SourceTable {
        factory,
        bounded: true,
        parallelism: Some(1),
        in_memory: true,
    }
}

/// Picks the columns of `schema` (by name) out of `batch`.
fn project_by_name(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let (i, _) = batch.schema().column_with_name(f.name()).ok_or_else(|| {
            EngineError::Internal(format!("column '{}' is missing from the table", f.name()))
        })?;
        columns.push(Arc::clone(batch.column(i)));
    }
    // COUNT(*) reads no column: the batch still has its rows.
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// The sink of a materialized view's job.
///
/// State layout: one table named after the view; the key is a row in Arrow
/// row format, the value its count in this subtask's partition (`i64`
/// little-endian). A barrier writes the rows whose count changed.
struct ViewSink {
    view: Arc<ViewTable>,
    part: usize,
    table: Option<runnel_state::TableId>,
}

impl Operator for ViewSink {
    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = ctx.state.register_table("view-sink")?;
        self.table = Some(table);
        let mut restored = BTreeMap::new();
        let read = |ctx: &OperatorContext<'_>,
                    t: runnel_state::TableId,
                    into: &mut BTreeMap<Vec<u8>, i64>|
         -> Result<()> {
            for entry in ctx.state.scan_prefix(t, &[])? {
                let (k, v) = entry?;
                let count: [u8; 8] = v.as_slice().try_into().map_err(|_| {
                    EngineError::Internal("a view's state holds a count that is not 8 bytes".into())
                })?;
                *into.entry(k).or_insert(0) += i64::from_le_bytes(count);
            }
            Ok(())
        };
        read(ctx, table, &mut restored)?;
        // Restored at another parallelism: other old partitions come as
        // `view-sink@<i>` (StateLayout::Union). Counts add up (a view is
        // the sum of its partitions), so they merge into this one, which
        // is written whole under its own table now.
        let others: Vec<String> = ctx
            .state
            .table_names()
            .into_iter()
            .filter(|t| t.starts_with("view-sink@"))
            .collect();
        if !others.is_empty() {
            for name in &others {
                let t = ctx.state.register_table(name)?;
                read(ctx, t, &mut restored)?;
                ctx.state.delete_prefix(t, &[])?;
            }
            restored.retain(|_, c| *c != 0);
            ctx.state.delete_prefix(table, &[])?;
            for (k, c) in &restored {
                ctx.state.put(table, k, &c.to_le_bytes())?;
            }
        }
        self.view.set_partition(self.part, restored)
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() > 0 {
            self.view.apply(self.part, &batch)?;
        }
        Ok(())
    }

    /// Writes the rows whose count changed since the last barrier.
    fn on_barrier(&mut self, _barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let table = self
            .table
            .ok_or_else(|| EngineError::Internal("view sink not opened".into()))?;
        for (k, c) in self.view.take_changes(self.part)? {
            match c {
                Some(c) => ctx.state.put(table, &k, &c.to_le_bytes())?,
                None => ctx.state.delete(table, &k)?,
            }
        }
        Ok(())
    }

    fn state_layout(&self) -> runnel_engine::operator::StateLayout {
        runnel_engine::operator::StateLayout::Union
    }
}

/// Produces the rows of a system table.
/// Produces the rows of a system table (its name within `system`) for a
/// reader (the user the planner names in `'system.user'`).
pub type SystemRows = Arc<dyn Fn(&str, &str) -> Result<RecordBatch> + Send + Sync>;

/// The `runnel-system` connector: the option `'system.table'` names the
/// table; its rows come from the server when the query starts reading.
pub struct SystemConnector {
    rows: SystemRows,
}

impl SystemConnector {
    /// A connector that reads rows from `rows`.
    pub fn new(rows: SystemRows) -> Self {
        Self { rows }
    }
}

impl Connector for SystemConnector {
    fn name(&self) -> &'static str {
        SYSTEM_CONNECTOR
    }

    fn options(&self) -> &'static [&'static str] {
        &["system.table", runnel_sql::planner::SYSTEM_USER_OPTION]
    }

    fn internal(&self) -> bool {
        true
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        let rows = Arc::clone(&self.rows);
        let name = table.required("system.table")?.to_string();
        // Without a reader the rows are those nobody may see.
        let user = table
            .option(runnel_sql::planner::SYSTEM_USER_OPTION)
            .unwrap_or_default()
            .to_string();
        Ok(snapshot_source(table, move || rows(&name, &user)))
    }

    fn sink(&self, table: &TableDescriptor, _updating: bool) -> Result<OperatorFactory> {
        Err(EngineError::Plan(format!(
            "'{}' is a system table and cannot be written",
            table.name
        )))
    }

    fn supports_projection(&self, _table: &TableDescriptor) -> bool {
        true
    }
}

/// A source that produces one batch, computed at its first poll (not when
/// the job starts, so that the server's locks are free by then), and ends.
struct OnceSource {
    make: Option<Box<dyn FnOnce() -> Result<RecordBatch> + Send>>,
    done: bool,
}

impl OnceSource {
    fn new(make: impl FnOnce() -> Result<RecordBatch> + Send + 'static) -> Self {
        Self {
            make: Some(Box::new(make)),
            done: false,
        }
    }
}

impl Source for OnceSource {
    fn open(&mut self, _task: &TaskInfo, _metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        Ok(vec![0])
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        if let Some(make) = self.make.take() {
            return Ok(SourcePoll::Batch {
                split: 0,
                batch: make()?,
            });
        }
        if !self.done {
            self.done = true;
            return Ok(SourcePoll::SplitFinished(0));
        }
        Ok(SourcePoll::Finished)
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        // A snapshot is read whole; a resumed job reads a new one, which is
        // what a materialized view over another view would want anyway.
        Ok(vec![u8::from(self.make.is_none())])
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        if position.first() == Some(&1) {
            self.make = None;
            self.done = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use runnel_engine::types::{row_kind_array, with_row_kind, RowKind};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]))
    }

    fn changes(rows: &[(&str, i64, RowKind)]) -> RecordBatch {
        let s = with_row_kind(&schema());
        let kinds: Vec<RowKind> = rows.iter().map(|r| r.2).collect();
        RecordBatch::try_new(
            s,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                row_kind_array(&kinds),
            ],
        )
        .expect("batch")
    }

    fn contents(t: &ViewTable) -> Vec<(String, i64)> {
        let b = t.snapshot().expect("snapshot");
        let k = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("k");
        let n = b
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("n");
        (0..b.num_rows())
            .map(|i| (k.value(i).to_string(), n.value(i)))
            .collect()
    }

    #[test]
    fn a_changelog_leaves_the_latest_row_per_key() -> Result<()> {
        let t = ViewTable::new(schema())?;
        t.apply(
            0,
            &changes(&[
                ("b", 1, RowKind::Insert),
                ("a", 1, RowKind::Insert),
                ("b", 1, RowKind::UpdateBefore),
                ("b", 2, RowKind::UpdateAfter),
            ]),
        )?;
        assert_eq!(contents(&t), vec![("a".into(), 1), ("b".into(), 2)]);
        t.apply(0, &changes(&[("a", 1, RowKind::Delete)]))?;
        assert_eq!(contents(&t), vec![("b".into(), 2)]);
        Ok(())
    }

    #[test]
    fn a_retraction_in_another_partition_cancels_the_row() -> Result<()> {
        let t = ViewTable::new(schema())?;
        t.apply(0, &changes(&[("x", 1, RowKind::Insert)]))?;
        t.apply(1, &changes(&[("x", 1, RowKind::UpdateBefore)]))?;
        t.apply(1, &changes(&[("x", 5, RowKind::UpdateAfter)]))?;
        assert_eq!(contents(&t), vec![("x".into(), 5)]);
        Ok(())
    }

    #[test]
    fn appended_duplicates_are_kept() -> Result<()> {
        let t = ViewTable::new(schema())?;
        let b = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec!["q", "q", "p"])),
                Arc::new(Int64Array::from(vec![3, 3, 1])),
            ],
        )?;
        t.apply(0, &b)?;
        assert_eq!(
            contents(&t),
            vec![("p".into(), 1), ("q".into(), 3), ("q".into(), 3)]
        );
        Ok(())
    }

    #[test]
    fn the_sink_restores_its_partition_from_a_checkpoint() -> Result<()> {
        let views = Views::default();
        let connector = ViewConnector::new(views.clone());
        let desc = TableDescriptor {
            name: "v".into(),
            schema: schema(),
            options: Default::default(),
            watermark: None,
            primary_key: vec![],
            partition_keys: vec![],
        };
        let factory = connector.sink(&desc, true)?;
        let mut h = runnel_engine::testing::OperatorHarness::new(factory(&task())?)?;
        h.batch(changes(&[("a", 7, RowKind::Insert)]))?;
        let snapshot = h.checkpoint(1)?;
        // Rows after the checkpoint are lost with the crash ...
        h.batch(changes(&[("z", 9, RowKind::Insert)]))?;
        assert_eq!(views.get("v").expect("view").len()?, 2);
        // ... and a restored sink puts back exactly the checkpointed rows.
        let _restored =
            runnel_engine::testing::OperatorHarness::restored(factory(&task())?, &snapshot)?;
        assert_eq!(
            contents(&views.get("v").expect("view")),
            vec![("a".into(), 7)]
        );
        Ok(())
    }

    fn task() -> TaskInfo {
        TaskInfo {
            operator_name: "sink".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: 1024,
            checkpointing: true,
            memory_budget: None,
        }
    }
}
