//! The Delta sink: Parquet files written before the barrier, committed as
//! one Delta version per completed checkpoint.
//!
//! # Protocol (jobs with checkpoints)
//!
//! * Every subtask writes Parquet files into the table's directory with the
//!   `deltalake` writer. Files are invisible to readers until an `add`
//!   action for them is committed to the log.
//! * At barrier `n` a subtask finishes its open files and stores their `add`
//!   actions (JSON) in its state table `<operator>/pending` under key `n`
//!   (big-endian `u64`). The end-of-input barrier uses the id after the
//!   last real barrier, kept in `<operator>/meta`, since Delta versions of
//!   application transactions are `i64`.
//! * When checkpoint `n` completes, each subtask hands the entries of its
//!   state with keys up to `n` to the sink's [`Committer`], which all
//!   subtasks of the sink share. The subtask that reports last commits every
//!   entry handed in that is newer than the last commit, as one Delta
//!   version with a `txn` action: app id = the sink's *lineage*, version =
//!   the newest entry's key. Entries stay in the state until a later barrier
//!   sees them committed, so a checkpoint taken while a commit is still
//!   outstanding keeps them.
//! * The lineage (`runnel-<random>-<operator>`) is drawn when a job starts
//!   without a checkpoint and kept in the state, so a restored job continues
//!   its lineage and a fresh run of the same query starts a new one (its
//!   checkpoint ids start again at 1 and must not be compared with the old
//!   run's).
//! * On restore, every subtask hands its restored entries to the committer;
//!   once all have opened, the committer reads the lineage's last `txn`
//!   version from the table and commits the entries with newer keys (one
//!   version), skipping those a commit before the crash already applied.
//! * Files written after the restored checkpoint are never referenced by a
//!   commit: they stay as orphans in the directory (Delta's `VACUUM` removes
//!   them) and their rows come again from the replaying sources.
//!
//! Without checkpoints, each subtask commits its own files (no `txn`) when
//! they roll over (`'sink.rollover-interval'`) and at the end of input:
//! at-least-once at best, as there is nothing to replay from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arrow::array::{new_null_array, Array, ArrayRef, Int8Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructField, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;
use runnel_engine::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use runnel_engine::types::{Barrier, RowKind, ROW_KIND_COLUMN};
use runnel_engine::{EngineError, Result};

use super::{block_on, DeltaOptions};

/// Key of the lineage in the meta table.
const LINEAGE_KEY: &[u8] = b"lineage";
/// Key of the last real barrier id in the meta table.
const LAST_BARRIER_KEY: &[u8] = b"last_barrier";

/// A factory of Delta sink subtasks writing rows of `schema` (already in
/// Delta's types, see [`super::table_schema`]).
pub(super) fn factory(
    options: Arc<DeltaOptions>,
    schema: SchemaRef,
    partition_columns: Vec<String>,
    updating: bool,
) -> Result<OperatorFactory> {
    for c in &partition_columns {
        let field = schema.field_with_name(c).map_err(|e| {
            EngineError::Plan(format!("partition column '{c}' is not a column: {e}"))
        })?;
        if field.data_type().is_floating() || field.data_type().is_nested() {
            return Err(EngineError::Plan(format!(
                "Delta table '{}' cannot be partitioned by '{c}' of type {}",
                options.path,
                field.data_type()
            )));
        }
    }
    let committer = Arc::new(Committer {
        options,
        schema,
        partition_columns,
        shared: Mutex::new(Shared::default()),
        committed: AtomicU64::new(0),
    });
    Ok(Arc::new(move |task: &TaskInfo| {
        Ok(Box::new(DeltaSink {
            committer: Arc::clone(&committer),
            subtask: task.subtask,
            parallelism: task.parallelism,
            checkpointing: task.checkpointing,
            updating,
            pending_table: format!("{}/pending", task.operator_name),
            meta_table: format!("{}/meta", task.operator_name),
            operator_name: task.operator_name.clone(),
            writer: None,
            table_schema: None,
            flushed: Vec::new(),
            open_since: None,
            last_barrier: 0,
        }) as Box<dyn Operator>)
    }))
}

/// What the subtasks of one sink share: the table and the commit protocol.
struct Committer {
    options: Arc<DeltaOptions>,
    /// The columns the query writes (Delta types).
    schema: SchemaRef,
    /// Declared `PARTITIONED BY` columns (empty: take the table's).
    partition_columns: Vec<String>,
    shared: Mutex<Shared>,
    /// The newest entry key committed in this run (0: none).
    committed: AtomicU64,
}

#[derive(Default)]
struct Shared {
    /// The table, loaded (or created) by the first subtask that opens.
    table: Option<DeltaTable>,
    lineage: Option<String>,
    /// `lineage` came from a restored state.
    lineage_restored: bool,
    /// Subtasks that opened, and what they restored.
    opened: BTreeSet<usize>,
    restored: BTreeMap<(u64, usize), Vec<Add>>,
    /// Completion notifications: checkpoint id -> subtasks that reported.
    reports: BTreeMap<u64, BTreeSet<usize>>,
    /// Entries handed in: (key, subtask) -> files.
    handed_in: BTreeMap<(u64, usize), Vec<Add>>,
}

impl Committer {
    fn lock(&self) -> Result<MutexGuard<'_, Shared>> {
        self.shared
            .lock()
            .map_err(|_| EngineError::Internal("Delta committer lock poisoned".into()))
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> EngineError {
        self.options.error(what, e)
    }

    /// The table, loading it or creating it from the query's schema first;
    /// checks the schema of an existing table (and evolves it when allowed).
    fn table(&self, shared: &mut Shared) -> Result<DeltaTable> {
        if let Some(t) = &shared.table {
            return Ok(t.clone());
        }
        let table = match self.options.load_latest()? {
            Some(t) => self.check_schema(t)?,
            None => self.create()?,
        };
        shared.table = Some(table.clone());
        Ok(table)
    }

    fn create(&self) -> Result<DeltaTable> {
        let kernel: StructType = self
            .schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| self.error("create", e))?;
        let builder = self.options.builder()?;
        let columns: Vec<StructField> = kernel.fields().cloned().collect();
        let partitions = self.partition_columns.clone();
        block_on(async move {
            let table = builder.build()?;
            table
                .create()
                .with_columns(columns)
                .with_partition_columns(partitions)
                // Another writer may create it at the same moment: take theirs.
                .with_save_mode(SaveMode::Ignore)
                .await
        })
        .map_err(|e| self.error("create", e))
        .and_then(|t| self.check_schema(t))
    }

    /// Checks that the table can take the query's columns: every column
    /// the query writes exists with the same type (or, with
    /// `'sink.schema-evolution'`, is added when nullable and missing), every
    /// table column the query does not write is nullable, and the declared
    /// partitioning matches.
    fn check_schema(&self, table: DeltaTable) -> Result<DeltaTable> {
        let snapshot = table.snapshot().map_err(|e| self.error("read", e))?;
        let existing: Schema = table_arrow_schema(&table).map_err(|e| self.error("read", e))?;
        let parts = snapshot.metadata().partition_columns().to_vec();
        if !self.partition_columns.is_empty() && self.partition_columns != parts {
            return Err(EngineError::Plan(format!(
                "Delta table '{}' is partitioned by ({}), but the DDL says PARTITIONED BY ({})",
                self.options.path,
                parts.join(", "),
                self.partition_columns.join(", ")
            )));
        }
        let mut problems = Vec::new();
        let mut missing = Vec::new();
        for f in self.schema.fields() {
            match existing.field_with_name(f.name()) {
                Ok(t) if t.data_type() == f.data_type() => {}
                Ok(t) => problems.push(format!(
                    "column '{}' is {} in the table but {} in the query",
                    f.name(),
                    t.data_type(),
                    f.data_type()
                )),
                Err(_) if self.options.schema_evolution && f.is_nullable() => {
                    missing.push(f.clone())
                }
                Err(_) if self.options.schema_evolution => problems.push(format!(
                    "column '{}' is not in the table, and only nullable columns can be added",
                    f.name()
                )),
                Err(_) => problems.push(format!(
                    "column '{}' is not in the table (set 'sink.schema-evolution' = 'true' to add it)",
                    f.name()
                )),
            }
        }
        for t in existing.fields() {
            if !t.is_nullable() && self.schema.field_with_name(t.name()).is_err() {
                problems.push(format!(
                    "column '{}' of the table is NOT NULL and the query does not write it",
                    t.name()
                ));
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::Plan(format!(
                "the query's columns do not fit Delta table '{}': {}",
                self.options.path,
                problems.join("; ")
            )));
        }
        if missing.is_empty() {
            return Ok(table);
        }
        let fields: Vec<StructField> = missing
            .iter()
            .map(|f| f.as_ref().try_into_kernel())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.error("evolve the schema of", e))?;
        block_on(async move { table.add_columns().with_fields(fields).await })
            .map_err(|e| self.error("add columns to", e))
    }

    /// The lineage restored by a subtask, or the one drawn for this run.
    fn lineage(
        &self,
        shared: &mut Shared,
        restored: Option<String>,
        operator: &str,
    ) -> Result<String> {
        if let Some(l) = restored {
            match &shared.lineage {
                Some(current) if *current != l && shared.lineage_restored => {
                    Err(EngineError::Plan(format!(
                        "the subtasks of the Delta sink at '{}' restored different lineages \
                         ('{current}' and '{l}'): the checkpoint mixes two runs",
                        self.options.path
                    )))
                }
                _ => {
                    // A restored lineage wins over one drawn by a subtask
                    // that had no state.
                    shared.lineage = Some(l.clone());
                    shared.lineage_restored = true;
                    Ok(l)
                }
            }
        } else {
            Ok(shared
                .lineage
                .get_or_insert_with(|| {
                    let mut bytes = [0u8; 8];
                    if getrandom::fill(&mut bytes).is_err() {
                        bytes = (std::process::id() as u64
                            ^ chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64)
                            .to_le_bytes();
                    }
                    format!("runnel-{:016x}-{operator}", u64::from_le_bytes(bytes))
                })
                .clone())
        }
    }

    /// Called first by every subtask's `open`: a subtask that opens again
    /// means a new run of the same job graph, which starts from a clean
    /// protocol state (the table stays loaded).
    fn begin(&self, subtask: usize) -> Result<()> {
        let mut shared = self.lock()?;
        if shared.opened.contains(&subtask) {
            let table = shared.table.take();
            *shared = Shared {
                table,
                ..Shared::default()
            };
            self.committed.store(0, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Records that `subtask` opened with `restored` entries; the last of
    /// `parallelism` subtasks to open commits the restored entries that the
    /// table does not have yet.
    fn opened(
        &self,
        subtask: usize,
        parallelism: usize,
        restored: Vec<(u64, Vec<Add>)>,
    ) -> Result<()> {
        let mut shared = self.lock()?;
        shared.opened.insert(subtask);
        for (key, adds) in restored {
            shared.restored.insert((key, subtask), adds);
        }
        if shared.opened.len() < parallelism || shared.restored.is_empty() {
            return Ok(());
        }
        let restored = std::mem::take(&mut shared.restored);
        let table = self.table(&mut shared)?;
        let lineage = shared
            .lineage
            .clone()
            .ok_or_else(|| EngineError::Internal("Delta sink restored without lineage".into()))?;
        let applied = {
            let snapshot = table.snapshot().map_err(|e| self.error("read", e))?;
            let log_store = table.log_store();
            block_on(snapshot.transaction_version(log_store.as_ref(), &lineage))
                .map_err(|e| self.error("read the transactions of", e))?
                .unwrap_or(-1)
        };
        let newest = restored.keys().map(|(k, _)| *k).max().unwrap_or(0);
        let todo: Vec<(u64, Vec<Add>)> = restored
            .into_iter()
            .filter(|((key, _), _)| i64::try_from(*key).map_or(true, |k| k > applied))
            .map(|((key, _), adds)| (key, adds))
            .collect();
        if !todo.is_empty() {
            self.commit(&mut shared, &lineage, todo)?;
        }
        self.committed.fetch_max(newest, Ordering::SeqCst);
        Ok(())
    }

    /// Takes `subtask`'s entries for completed checkpoint `round`; the last
    /// subtask to report the round commits everything handed in that is
    /// not committed yet.
    fn report(
        &self,
        round: u64,
        subtask: usize,
        parallelism: usize,
        entries: Vec<(u64, Vec<Add>)>,
    ) -> Result<()> {
        let mut shared = self.lock()?;
        let committed = self.committed.load(Ordering::SeqCst);
        for (key, adds) in entries {
            if key > committed {
                shared.handed_in.insert((key, subtask), adds);
            }
        }
        let reported = shared.reports.entry(round).or_default();
        reported.insert(subtask);
        if reported.len() < parallelism {
            return Ok(());
        }
        // This round and every older one are settled. Entries of later
        // rounds (from subtasks already past their next barrier) wait for
        // their own round: the others have not handed theirs in yet.
        shared.reports = shared.reports.split_off(&round.saturating_add(1));
        let later = match round.checked_add(1) {
            Some(next) => shared.handed_in.split_off(&(next, 0)),
            None => BTreeMap::new(),
        };
        let todo: Vec<(u64, Vec<Add>)> = std::mem::replace(&mut shared.handed_in, later)
            .into_iter()
            .filter(|((key, _), _)| *key > committed)
            .map(|((key, _), adds)| (key, adds))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let newest = todo.iter().map(|(k, _)| *k).max().unwrap_or(0);
        let lineage = shared
            .lineage
            .clone()
            .ok_or_else(|| EngineError::Internal("Delta sink has no lineage".into()))?;
        self.commit(&mut shared, &lineage, todo)?;
        self.committed.fetch_max(newest, Ordering::SeqCst);
        Ok(())
    }

    /// Commits the files of `entries` as one version, with a `txn` action
    /// for `lineage` at the newest key (none when `lineage` is empty), and
    /// keeps the table's new state.
    fn commit(
        &self,
        shared: &mut Shared,
        lineage: &str,
        entries: Vec<(u64, Vec<Add>)>,
    ) -> Result<()> {
        let newest = entries.iter().map(|(k, _)| *k).max().unwrap_or(0);
        let mut actions: Vec<Action> = entries
            .into_iter()
            .flat_map(|(_, adds)| adds)
            .map(Action::Add)
            .collect();
        if !lineage.is_empty() {
            let version = i64::try_from(newest)
                .map_err(|_| EngineError::Internal(format!("checkpoint id {newest} too large")))?;
            actions.push(Action::Txn(Transaction::new_with_last_update(
                lineage,
                version,
                Some(chrono::Utc::now().timestamp_millis()),
            )));
        }
        let operation = DeltaOperation::StreamingUpdate {
            output_mode: OutputMode::Append,
            query_id: if lineage.is_empty() {
                "runnel".to_string()
            } else {
                lineage.to_string()
            },
            epoch_id: i64::try_from(newest).unwrap_or(i64::MAX),
        };
        let mut table = self.table(shared)?;
        let snapshot = table.snapshot().map_err(|e| self.error("read", e))?.clone();
        let log_store = table.log_store();
        let started = Instant::now();
        let finalized = block_on(
            CommitBuilder::from(CommitProperties::default())
                .with_actions(actions)
                .build(Some(&snapshot), log_store, operation),
        )
        .map_err(|e| self.error("commit to", e))?;
        record_commit_latency(started.elapsed());
        table.state = Some(finalized.snapshot());
        shared.table = Some(table);
        Ok(())
    }

    /// Commits files directly (jobs without checkpoints).
    fn commit_now(&self, adds: Vec<Add>) -> Result<()> {
        if adds.is_empty() {
            return Ok(());
        }
        let mut shared = self.lock()?;
        self.commit(&mut shared, "", vec![(0, adds)])
    }
}

/// The Arrow schema of a loaded table.
fn table_arrow_schema(table: &DeltaTable) -> deltalake::DeltaResult<Schema> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
    let snapshot = table.snapshot()?;
    let schema: Schema = snapshot.schema().as_ref().try_into_arrow()?;
    Ok(schema)
}

/// One subtask of the Delta sink.
struct DeltaSink {
    committer: Arc<Committer>,
    subtask: usize,
    parallelism: usize,
    checkpointing: bool,
    updating: bool,
    pending_table: String,
    meta_table: String,
    operator_name: String,
    writer: Option<RecordBatchWriter>,
    /// The table's schema, which batches are conformed to.
    table_schema: Option<SchemaRef>,
    /// Files finished by a rollover since the last barrier.
    flushed: Vec<Add>,
    /// When the first row of the open files was written.
    open_since: Option<Instant>,
    /// The id of the last real barrier (for the end-of-input entry key).
    last_barrier: u64,
}

impl DeltaSink {
    fn writer(&mut self) -> Result<&mut RecordBatchWriter> {
        self.writer
            .as_mut()
            .ok_or_else(|| EngineError::Internal("Delta sink not opened".into()))
    }

    /// Finishes the open files; their `add` actions.
    fn flush(&mut self) -> Result<Vec<Add>> {
        self.open_since = None;
        let committer = Arc::clone(&self.committer);
        let writer = self.writer()?;
        if writer.buffer_len() == 0 {
            return Ok(Vec::new());
        }
        block_on(writer.flush()).map_err(|e| committer.error("write files of", e))
    }

    /// Gives `batch` the table's columns: the row kind as text, types cast
    /// to the table's, NULLs for table columns the query does not write.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = self
            .table_schema
            .as_ref()
            .ok_or_else(|| EngineError::Internal("Delta sink not opened".into()))?;
        let mut by_name: HashMap<&str, ArrayRef> = HashMap::new();
        let declared = self.committer.schema.fields();
        let data_columns = if self.updating {
            batch.num_columns().saturating_sub(1)
        } else {
            batch.num_columns()
        };
        if data_columns + usize::from(self.updating) != declared.len() {
            return Err(EngineError::Plan(format!(
                "Delta sink at '{}' expects {} columns, the query produces {}",
                self.committer.options.path,
                declared.len() - usize::from(self.updating),
                data_columns
            )));
        }
        for (i, f) in declared.iter().take(data_columns).enumerate() {
            by_name.insert(f.name().as_str(), Arc::clone(batch.column(i)));
        }
        let kinds;
        if self.updating {
            let column = batch.column(batch.num_columns() - 1);
            let codes = column
                .as_any()
                .downcast_ref::<Int8Array>()
                .ok_or_else(|| EngineError::Internal("row kind column is not Int8".into()))?;
            kinds = codes
                .iter()
                .map(|c| {
                    RowKind::from_i8(c.unwrap_or(0)).map(|k| Some(k.short_string().to_string()))
                })
                .collect::<Result<StringArray>>()?;
            by_name.insert(ROW_KIND_COLUMN, Arc::new(kinds) as ArrayRef);
        }
        let columns = schema
            .fields()
            .iter()
            .map(|field| match by_name.get(field.name().as_str()) {
                Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
                Some(column) => arrow::compute::cast(column, field.data_type()).map_err(|e| {
                    EngineError::Execution(format!(
                        "column '{}' of Delta table '{}' cannot take {}: {e}",
                        field.name(),
                        self.committer.options.path,
                        column.data_type()
                    ))
                }),
                None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }

    /// The pending entries in `ctx.state` with keys up to `up_to`.
    fn pending(&self, up_to: u64, ctx: &mut OperatorContext<'_>) -> Result<Vec<(u64, Vec<Add>)>> {
        let table = ctx.state.register_table(&self.pending_table)?;
        let mut out = Vec::new();
        for entry in ctx.state.scan_prefix(table, &[])? {
            let (key, value) = entry?;
            let key = <[u8; 8]>::try_from(key.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("pending key is not 8 bytes"))?;
            if key > up_to {
                continue;
            }
            let adds: Vec<Add> = serde_json::from_slice(&value)
                .map_err(|e| self.corrupt(&format!("pending entry {key}: {e}")))?;
            out.push((key, adds));
        }
        Ok(out)
    }

    fn corrupt(&self, why: &str) -> EngineError {
        EngineError::Plan(format!(
            "corrupt checkpoint state of the Delta sink at '{}' (subtask {}): {why}",
            self.committer.options.path, self.subtask
        ))
    }

    /// Forgets pending entries that a commit has applied.
    fn prune(&self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let committed = self.committer.committed.load(Ordering::SeqCst);
        let table = ctx.state.register_table(&self.pending_table)?;
        for (key, _) in self.pending(committed, ctx)? {
            ctx.state.delete(table, &key.to_be_bytes())?;
        }
        Ok(())
    }
}

impl Operator for DeltaSink {
    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let committer = Arc::clone(&self.committer);
        committer.begin(self.subtask)?;
        let table = {
            let mut shared = committer.lock()?;
            committer.table(&mut shared)?
        };
        let writer = RecordBatchWriter::for_table(&table)
            .map_err(|e| committer.error("write to", e))?
            .with_target_file_size(committer.options.target_file_size);
        let schema = writer.arrow_schema();
        // The writer's schema has the partition columns; batches must carry
        // every table column, in the table's order.
        self.table_schema = Some(Arc::new(Schema::new(
            table_arrow_schema(&table)
                .map_err(|e| committer.error("read", e))?
                .fields()
                .iter()
                .map(|f| {
                    schema
                        .field_with_name(f.name())
                        .cloned()
                        .unwrap_or_else(|_| f.as_ref().clone())
                })
                .collect::<Vec<Field>>(),
        )));
        self.writer = Some(writer);
        if !self.checkpointing {
            return Ok(());
        }
        let meta = ctx.state.register_table(&self.meta_table)?;
        let restored_lineage = ctx
            .state
            .get(meta, LINEAGE_KEY)?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if let Some(b) = ctx.state.get(meta, LAST_BARRIER_KEY)? {
            self.last_barrier = <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("last barrier is not 8 bytes"))?;
        }
        let lineage = {
            let mut shared = committer.lock()?;
            committer.lineage(&mut shared, restored_lineage, &self.operator_name)?
        };
        ctx.state.put(meta, LINEAGE_KEY, lineage.as_bytes())?;
        let restored = self.pending(u64::MAX, ctx)?;
        committer.opened(self.subtask, self.parallelism, restored)
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = self.conform(&batch)?;
        let committer = Arc::clone(&self.committer);
        block_on(self.writer()?.write(batch)).map_err(|e| committer.error("write to", e))?;
        let since = *self.open_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= committer.options.rollover_interval {
            let adds = self.flush()?;
            if self.checkpointing {
                self.flushed.extend(adds);
            } else {
                committer.commit_now(adds)?;
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if !self.checkpointing {
            return Ok(());
        }
        // The end-of-input barrier has no id of its own: it takes the one
        // after the last, and keeps it, so that a job resumed from this
        // final checkpoint and ended again files under a newer key.
        let key = if barrier.checkpoint_id == Barrier::FINAL_CHECKPOINT {
            self.last_barrier
                .max(self.committer.committed.load(Ordering::SeqCst))
                + 1
        } else {
            barrier.checkpoint_id
        };
        self.last_barrier = key;
        let meta = ctx.state.register_table(&self.meta_table)?;
        ctx.state
            .put(meta, LAST_BARRIER_KEY, &self.last_barrier.to_be_bytes())?;
        self.prune(ctx)?;
        let mut adds = std::mem::take(&mut self.flushed);
        adds.extend(self.flush()?);
        if adds.is_empty() {
            return Ok(());
        }
        let value = serde_json::to_vec(&adds)
            .map_err(|e| EngineError::Internal(format!("cannot encode Delta actions: {e}")))?;
        let table = ctx.state.register_table(&self.pending_table)?;
        ctx.state.put(table, &key.to_be_bytes(), &value)?;
        Ok(())
    }

    fn on_checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        if !self.checkpointing {
            return Ok(());
        }
        let entries = self.pending(checkpoint_id, ctx)?;
        self.committer
            .report(checkpoint_id, self.subtask, self.parallelism, entries)
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext<'_>, _out: &mut dyn Collector) -> Result<()> {
        // With checkpoints, the end-of-input barrier that follows stages the
        // last files and its completion commits them.
        if self.checkpointing {
            return Ok(());
        }
        let adds = self.flush()?;
        self.committer.commit_now(adds)
    }
}

/// Most commit latencies kept between two calls of
/// [`super::DeltaConnector::take_commit_latencies`]; later ones are dropped.
const COMMIT_LATENCIES_KEPT: usize = 4096;

/// How long the Delta commits of this process took (diagnostic).
static COMMIT_LATENCIES: Mutex<Vec<std::time::Duration>> = Mutex::new(Vec::new());

fn record_commit_latency(took: std::time::Duration) {
    let mut kept = COMMIT_LATENCIES.lock().unwrap_or_else(|p| p.into_inner());
    if kept.len() < COMMIT_LATENCIES_KEPT {
        kept.push(took);
    }
}

impl super::DeltaConnector {
    /// A diagnostic for benchmarks: how long each successful Delta commit
    /// of this process took (the `CommitBuilder` call: conflict check and
    /// log write), oldest first, since the previous call, which this call
    /// empties. At most 4096 are kept in between.
    pub fn take_commit_latencies() -> Vec<std::time::Duration> {
        std::mem::take(&mut *COMMIT_LATENCIES.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
