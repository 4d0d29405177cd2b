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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, Int8Array, RecordBatch, StringArray,
};
use arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::kernel::Add;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use runnel_engine::operator::{OperatorContext, OperatorFactory, TaskInfo};
use runnel_engine::types::{row_kinds, Barrier, RowKind, ROW_KIND_COLUMN};
use runnel_engine::{EngineError, Result};

use super::committer::{table_arrow_schema, Committer, Payload, Shared};
use super::upsert::{self, ChangeBuffer};
use super::{block_on, DeltaOptions};
use crate::two_phase::{self, Committed, Staged, TwoPhaseSink};

/// Key of the lineage in the meta table.
const LINEAGE_KEY: &[u8] = b"lineage";
/// Key of the last real barrier id in the meta table.
const LAST_BARRIER_KEY: &[u8] = b"last_barrier";

/// A factory of Delta sink subtasks writing rows of `schema` (already in
/// Delta's types, see [`super::table_schema`]); `upsert_key`: the PRIMARY
/// KEY columns of a table in upsert mode.
pub(super) fn factory(
    options: Arc<DeltaOptions>,
    schema: SchemaRef,
    partition_columns: Vec<String>,
    updating: bool,
    upsert_key: Option<Vec<String>>,
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
        upsert_key: upsert_key.clone(),
        shared: Mutex::new(Shared::default()),
        committed: AtomicU64::new(0),
    });
    Ok(two_phase::factory(move |task: &TaskInfo| {
        Ok(DeltaSink {
            committer: Arc::clone(&committer),
            subtask: task.subtask,
            parallelism: task.parallelism,
            checkpointing: task.checkpointing,
            updating,
            changes: upsert_key.clone().map(ChangeBuffer::new),
            meta_table: format!("{}/meta", task.operator_name),
            operator_name: task.operator_name.clone(),
            writer: None,
            table_schema: None,
            flushed: Vec::new(),
            open_since: None,
            last_barrier: 0,
        })
    }))
}

/// One subtask of the Delta sink.
struct DeltaSink {
    committer: Arc<Committer>,
    subtask: usize,
    parallelism: usize,
    checkpointing: bool,
    updating: bool,
    /// Upsert mode: the changes since the last barrier.
    changes: Option<ChangeBuffer>,
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

    /// Gives `batch` the table's columns: the row kind as text (`updating`:
    /// the batch ends with the row kind column), types cast to the table's,
    /// NULLs for table columns the query does not write.
    fn conform(&self, batch: &RecordBatch, updating: bool) -> Result<RecordBatch> {
        let schema = self
            .table_schema
            .as_ref()
            .ok_or_else(|| EngineError::Internal("Delta sink not opened".into()))?;
        let mut by_name: HashMap<&str, ArrayRef> = HashMap::new();
        let declared = self.committer.schema.fields();
        let data_columns = if updating {
            batch.num_columns().saturating_sub(1)
        } else {
            batch.num_columns()
        };
        if data_columns + usize::from(updating) != declared.len() {
            return Err(EngineError::Plan(format!(
                "Delta sink at '{}' expects {} columns, the query produces {}",
                self.committer.options.path,
                declared.len() - usize::from(updating),
                data_columns
            )));
        }
        for (i, f) in declared.iter().take(data_columns).enumerate() {
            by_name.insert(f.name().as_str(), Arc::clone(batch.column(i)));
        }
        let kinds;
        if updating {
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

    /// What staged `entries` hold: files, or changes in upsert mode.
    fn decode(&self, entries: Vec<Staged>) -> Result<Vec<(u64, Payload)>> {
        entries
            .into_iter()
            .map(|e| {
                let changes = e.bytes.first() == Some(&upsert::TAG);
                if changes != self.changes.is_some() {
                    return Err(self.corrupt(&format!(
                        "pending entry {} was staged in {} mode, and the table is in {} mode now \
                         ('sink.updating-mode' changed?)",
                        e.id,
                        if changes {
                            "upsert"
                        } else {
                            "append or changelog"
                        },
                        if changes {
                            "append or changelog"
                        } else {
                            "upsert"
                        },
                    )));
                }
                let payload =
                    if changes {
                        Payload::Changes(upsert::decode(&e.bytes).map_err(|err| {
                            self.corrupt(&format!("pending entry {}: {err}", e.id))
                        })?)
                    } else {
                        Payload::Files(serde_json::from_slice(&e.bytes).map_err(|err| {
                            self.corrupt(&format!("pending entry {}: {err}", e.id))
                        })?)
                    };
                Ok((e.id, payload))
            })
            .collect()
    }

    /// Upsert mode: buffers the changes of `batch`: `+I`/`+U` rows are
    /// upserts, `-D` and `-U` rows delete their key (the `+U` that usually
    /// follows a `-U` replaces it again when the buffer folds; a `-U`
    /// alone, as after a filter, is a delete).
    fn write_changes(&mut self, batch: &RecordBatch) -> Result<()> {
        let (data, deleted) = if self.updating {
            let deleted: BooleanArray = row_kinds(batch)?
                .iter()
                .map(|k| Some(matches!(k, RowKind::Delete | RowKind::UpdateBefore)))
                .collect();
            let data = batch.project(&(0..batch.num_columns() - 1).collect::<Vec<_>>())?;
            (data, deleted)
        } else {
            (
                batch.clone(),
                BooleanArray::from(vec![false; batch.num_rows()]),
            )
        };
        let conformed = self.conform(&data, false)?;
        let mut columns = conformed.columns().to_vec();
        columns.push(Arc::new(deleted) as ArrayRef);
        let changes = RecordBatch::try_new(upsert::change_schema(conformed.schema_ref()), columns)?;
        self.changes
            .as_mut()
            .ok_or_else(|| EngineError::Internal("Delta sink not in upsert mode".into()))?
            .push(changes)?;
        let since = *self.open_since.get_or_insert_with(Instant::now);
        if !self.checkpointing && since.elapsed() >= self.committer.options.rollover_interval {
            self.merge_now()?;
        }
        Ok(())
    }

    /// Upsert mode without checkpoints: merges the buffered changes.
    fn merge_now(&mut self) -> Result<()> {
        self.open_since = None;
        if let Some(Some(changes)) = self.changes.as_mut().map(ChangeBuffer::take).transpose()? {
            self.committer.merge_now(changes)?;
        }
        Ok(())
    }

    fn corrupt(&self, why: &str) -> EngineError {
        EngineError::Plan(format!(
            "corrupt checkpoint state of the Delta sink at '{}' (subtask {}): {why}",
            self.committer.options.path, self.subtask
        ))
    }
}

impl TwoPhaseSink for DeltaSink {
    fn staged_table(&self) -> &'static str {
        "pending"
    }

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
        Ok(())
    }

    /// Restored at another parallelism: old subtask `origin`'s entries go
    /// to the committer under that subtask, without counting this subtask
    /// as opened (its own entries follow in `restore`), so that no old
    /// subtask's entries replace another's and none is committed before
    /// every subtask handed its entries in.
    fn restore_other(
        &mut self,
        origin: usize,
        entries: Vec<Staged>,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<Committed> {
        let restored = self.decode(entries)?;
        self.committer.inherited(origin, restored)?;
        Ok(Committed::HandedOver)
    }

    fn restore(
        &mut self,
        entries: Vec<Staged>,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<Committed> {
        let restored = self.decode(entries)?;
        self.committer
            .opened(self.subtask, self.parallelism, restored)?;
        Ok(Committed::HandedOver)
    }

    fn write(&mut self, batch: RecordBatch, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.changes.is_some() {
            return self.write_changes(&batch);
        }
        let batch = self.conform(&batch, self.updating)?;
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

    fn pre_commit(
        &mut self,
        checkpoint_id: u64,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<Option<Staged>> {
        if !self.checkpointing {
            // Each subtask commits its own files at the end of input.
            if checkpoint_id == Barrier::FINAL_CHECKPOINT {
                if self.changes.is_some() {
                    self.merge_now()?;
                } else {
                    let adds = self.flush()?;
                    self.committer.commit_now(adds)?;
                }
            }
            return Ok(None);
        }
        // The end-of-input barrier has no id of its own: it takes the one
        // after the last, and keeps it, so that a job resumed from this
        // final checkpoint and ended again files under a newer key.
        let key = if checkpoint_id == Barrier::FINAL_CHECKPOINT {
            self.last_barrier
                .max(self.committer.committed.load(Ordering::SeqCst))
                + 1
        } else {
            checkpoint_id
        };
        self.last_barrier = key;
        let meta = ctx.state.register_table(&self.meta_table)?;
        ctx.state
            .put(meta, LAST_BARRIER_KEY, &self.last_barrier.to_be_bytes())?;
        if let Some(buffer) = self.changes.as_mut() {
            self.open_since = None;
            return Ok(match buffer.take()? {
                Some(changes) => Some(Staged {
                    id: key,
                    bytes: upsert::encode(&changes)?,
                }),
                None => None,
            });
        }
        let mut adds = std::mem::take(&mut self.flushed);
        adds.extend(self.flush()?);
        if adds.is_empty() {
            return Ok(None);
        }
        let bytes = serde_json::to_vec(&adds)
            .map_err(|e| EngineError::Internal(format!("cannot encode Delta actions: {e}")))?;
        Ok(Some(Staged { id: key, bytes }))
    }

    fn commit(&mut self, checkpoint_id: u64, entries: Vec<Staged>) -> Result<Committed> {
        let entries = self.decode(entries)?;
        self.committer
            .report(checkpoint_id, self.subtask, self.parallelism, entries)?;
        Ok(Committed::HandedOver)
    }

    /// Entries up to the newest key committed in this run are in the table,
    /// whichever subtask committed them.
    fn settled(&self) -> Option<u64> {
        Some(self.committer.committed.load(Ordering::SeqCst))
    }
}
