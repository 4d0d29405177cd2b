//! The Delta sink's committer, which all subtasks of one sink share: it
//! loads (or creates) the table, keeps the lineage, and commits the files
//! every subtask staged for a checkpoint as one Delta version once the last
//! subtask reports that checkpoint complete (see `sink.rs` for the
//! protocol).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arrow::datatypes::{Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructField, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake::DeltaTable;
use runnel_engine::{EngineError, Result};

use super::{block_on, upsert, DeltaOptions};

/// What a subtask staged for one checkpoint.
pub(super) enum Payload {
    /// Files to add (append and changelog modes).
    Files(Vec<Add>),
    /// The last change per key (upsert mode), to merge.
    Changes(arrow::array::RecordBatch),
}

/// What the subtasks of one sink share: the table and the commit protocol.
pub(super) struct Committer {
    pub(super) options: Arc<DeltaOptions>,
    /// The columns the query writes (Delta types).
    pub(super) schema: SchemaRef,
    /// Declared `PARTITIONED BY` columns (empty: take the table's).
    pub(super) partition_columns: Vec<String>,
    /// The PRIMARY KEY columns in upsert mode.
    pub(super) upsert_key: Option<Vec<String>>,
    pub(super) shared: Mutex<Shared>,
    /// The newest entry key committed in this run (0: none).
    pub(super) committed: AtomicU64,
}

#[derive(Default)]
pub(super) struct Shared {
    /// The table, loaded (or created) by the first subtask that opens.
    table: Option<DeltaTable>,
    lineage: Option<String>,
    /// `lineage` came from a restored state.
    lineage_restored: bool,
    /// Subtasks that opened, and what they restored.
    opened: BTreeSet<usize>,
    restored: BTreeMap<(u64, usize), Payload>,
    /// Completion notifications: checkpoint id -> subtasks that reported.
    reports: BTreeMap<u64, BTreeSet<usize>>,
    /// Entries handed in: (key, subtask) -> what was staged.
    handed_in: BTreeMap<(u64, usize), Payload>,
}

impl Committer {
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Shared>> {
        self.shared
            .lock()
            .map_err(|_| EngineError::Internal("Delta committer lock poisoned".into()))
    }

    pub(super) fn error(
        &self,
        what: &str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> EngineError {
        self.options.error(what, e)
    }

    /// The table, loading it or creating it from the query's schema first;
    /// checks the schema of an existing table (and evolves it when allowed).
    pub(super) fn table(&self, shared: &mut Shared) -> Result<DeltaTable> {
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
    pub(super) fn lineage(
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
    pub(super) fn begin(&self, subtask: usize) -> Result<()> {
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

    /// Takes the entries old subtask `origin` staged, restored by another
    /// subtask at a new parallelism (before that subtask's `opened`).
    pub(super) fn inherited(&self, origin: usize, restored: Vec<(u64, Payload)>) -> Result<()> {
        let mut shared = self.lock()?;
        for (key, payload) in restored {
            shared.restored.insert((key, origin), payload);
        }
        Ok(())
    }

    /// Records that `subtask` opened with `restored` entries; the last of
    /// `parallelism` subtasks to open commits the restored entries that the
    /// table does not have yet.
    pub(super) fn opened(
        &self,
        subtask: usize,
        parallelism: usize,
        restored: Vec<(u64, Payload)>,
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
        let todo: Vec<(u64, Payload)> = restored
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
    pub(super) fn report(
        &self,
        round: u64,
        subtask: usize,
        parallelism: usize,
        entries: Vec<(u64, Payload)>,
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
        let todo: Vec<(u64, Payload)> = std::mem::replace(&mut shared.handed_in, later)
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

    /// Commits `entries` (oldest first) as one version: their files added,
    /// their changes merged; with a `txn` action for `lineage` at the
    /// newest key (none when `lineage` is empty). Keeps the table's new
    /// state.
    fn commit(
        &self,
        shared: &mut Shared,
        lineage: &str,
        entries: Vec<(u64, Payload)>,
    ) -> Result<()> {
        let newest = entries.iter().map(|(k, _)| *k).max().unwrap_or(0);
        let mut actions: Vec<Action> = Vec::new();
        let mut changes = Vec::new();
        for (_, payload) in entries {
            match payload {
                Payload::Files(adds) => actions.extend(adds.into_iter().map(Action::Add)),
                Payload::Changes(batch) => changes.push(batch),
            }
        }
        let merging = !changes.is_empty();
        if merging {
            let key = self.upsert_key.as_deref().ok_or_else(|| {
                EngineError::Internal("changes staged for a Delta sink not in upsert mode".into())
            })?;
            if let Some(changes) = upsert::fold(&changes, key)? {
                let table = self.table(shared)?;
                actions.extend(upsert::merge(&self.options, &table, key, &changes)?);
            }
        }
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
            output_mode: if merging {
                OutputMode::Update
            } else {
                OutputMode::Append
            },
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
    pub(super) fn commit_now(&self, adds: Vec<Add>) -> Result<()> {
        if adds.is_empty() {
            return Ok(());
        }
        let mut shared = self.lock()?;
        self.commit(&mut shared, "", vec![(0, Payload::Files(adds))])
    }

    /// Merges changes directly (jobs without checkpoints).
    pub(super) fn merge_now(&self, changes: arrow::array::RecordBatch) -> Result<()> {
        if changes.num_rows() == 0 {
            return Ok(());
        }
        let mut shared = self.lock()?;
        self.commit(&mut shared, "", vec![(0, Payload::Changes(changes))])
    }
}

/// The Arrow schema of a loaded table.
pub(super) fn table_arrow_schema(table: &DeltaTable) -> deltalake::DeltaResult<Schema> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
    let snapshot = table.snapshot()?;
    let schema: Schema = snapshot.schema().as_ref().try_into_arrow()?;
    Ok(schema)
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
