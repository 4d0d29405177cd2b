//! The rolling file sink.
//!
//! Each subtask writes one part file at a time under a hidden in-progress
//! name and renames it when it is closed (at a checkpoint barrier or at the
//! end of input), so that a directory reader sees only whole files.
//!
//! # Two-phase commit (when the job takes checkpoints)
//!
//! Files of subtask `s` with sequence number `n` and extension `ext`:
//!
//! * `.part-s-n.ext.inprogress` — being written;
//! * `.part-s-n.ext.staged` — closed at a barrier (or at the end of input),
//!   waiting for its checkpoint to complete;
//! * `part-s-n.ext` — published, visible to readers.
//!
//! A barrier closes and stages the current file and records it in the state
//! table `<operator>/pending` (key: `n` as big-endian `u64`; value: the id of
//! the checkpoint whose barrier staged it, big-endian `u64`, then the final
//! file name; files `on_end` stages carry [`Barrier::FINAL_CHECKPOINT`]), and the next
//! sequence number in `<operator>/meta` (key `next_seq`, big-endian `u64`),
//! both captured by the checkpoint's snapshot. `on_checkpoint_complete(n)`
//! publishes the pending files staged at barriers up to `n` and removes them
//! from the table; a file staged later (by a newer barrier, or by `on_end`
//! while checkpoint `n` was still completing) waits for its own checkpoint. After a crash, `open` gets the state of the
//! last completed checkpoint: it publishes the files still pending there
//! (their checkpoint completed, but the crash may have come before the
//! rename), then deletes this subtask's other in-progress and staged files,
//! which hold rows written after that checkpoint: the sources replay those
//! rows. Publishing is idempotent: a pending file whose staged name is gone
//! and whose final name exists was published before.
//!
//! Without checkpoints, files are published directly at barriers and at the
//! end of input.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use runnel_engine::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use runnel_engine::types::{is_updating, Barrier};
use runnel_engine::{EngineError, Result};

use super::{Format, FsOptions};

/// A factory of file sink subtasks writing rows of `table_schema`.
pub(super) fn factory(options: Arc<FsOptions>, table_schema: SchemaRef) -> OperatorFactory {
    // Files are written with the table's column names and types; every
    // column nullable, since the query may produce NULLs the DDL did not
    // expect and a file is no place to enforce that.
    let schema: SchemaRef = Arc::new(Schema::new(
        table_schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    Arc::new(move |task: &TaskInfo| {
        Ok(Box::new(FileSink {
            options: Arc::clone(&options),
            schema: Arc::clone(&schema),
            subtask: task.subtask,
            checkpointing: task.checkpointing,
            pending_table: format!("{}/pending", task.operator_name),
            meta_table: format!("{}/meta", task.operator_name),
            next_seq: 0,
            current: None,
        }) as Box<dyn Operator>)
    })
}

/// Key of the next sequence number in the meta table.
const NEXT_SEQ_KEY: &[u8] = b"next_seq";
/// Suffix of files being written.
const IN_PROGRESS_SUFFIX: &str = ".inprogress";
/// Suffix of closed files waiting for their checkpoint to complete.
const STAGED_SUFFIX: &str = ".staged";

/// One subtask of the file sink.
struct FileSink {
    options: Arc<FsOptions>,
    schema: SchemaRef,
    subtask: usize,
    /// Two-phase commit: publish only when a checkpoint completes.
    checkpointing: bool,
    /// State table of staged files: sequence number -> final file name.
    pending_table: String,
    /// State table holding the next sequence number.
    meta_table: String,
    next_seq: u64,
    current: Option<PartFile>,
}

/// The part file being written.
struct PartFile {
    writer: PartWriter,
    seq: u64,
    /// Final file name (without directory).
    name: String,
    in_progress: PathBuf,
}

// Boxed: the writers differ a lot in size and only one exists at a time.
enum PartWriter {
    Json(Box<arrow::json::LineDelimitedWriter<BufWriter<File>>>),
    Csv(Box<arrow::csv::Writer<BufWriter<File>>>),
    Parquet(Box<ArrowWriter<File>>),
}

fn io_error(path: &Path, what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Connector(format!("cannot {what} '{}': {e}", path.display()))
}

impl FileSink {
    fn part_name(&self, seq: u64) -> String {
        format!(
            "part-{}-{seq}.{}",
            self.subtask,
            self.options.format.extension()
        )
    }

    /// The hidden name of final name `name` with `suffix`.
    fn hidden_path(&self, name: &str, suffix: &str) -> PathBuf {
        self.options.path.join(format!(".{name}{suffix}"))
    }

    /// If `file_name` is one of this subtask's part files (final, in progress
    /// or staged), its sequence number and whether it is hidden.
    fn parse_own_name(&self, file_name: &str) -> Option<(u64, bool)> {
        let prefix = format!("part-{}-", self.subtask);
        let suffix = format!(".{}", self.options.format.extension());
        let (name, hidden) = match file_name.strip_prefix('.') {
            Some(rest) => {
                let rest = rest
                    .strip_suffix(IN_PROGRESS_SUFFIX)
                    .or_else(|| rest.strip_suffix(STAGED_SUFFIX))?;
                (rest, true)
            }
            None => (file_name, false),
        };
        let digits = name.strip_prefix(&prefix)?.strip_suffix(&suffix)?;
        // Only plain digits: `part-1-` must not match `part-1-x` or subtask 11.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((digits.parse().ok()?, hidden))
    }

    /// Names in the sink's directory.
    fn directory_names(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.options.path)
            .map_err(|e| io_error(&self.options.path, "list", e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&self.options.path, "list", e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    /// The first sequence number not used by a file of this subtask already
    /// in the directory, so that a second run does not overwrite the first.
    fn first_free_seq(&self) -> Result<u64> {
        Ok(self
            .directory_names()?
            .iter()
            .filter_map(|n| self.parse_own_name(n))
            .map(|(seq, _)| seq.saturating_add(1))
            .max()
            .unwrap_or(0))
    }

    fn start_part(&mut self) -> Result<PartFile> {
        let seq = self.next_seq;
        let name = self.part_name(seq);
        self.next_seq += 1;
        let in_progress = self.hidden_path(&name, IN_PROGRESS_SUFFIX);
        let file = File::create(&in_progress).map_err(|e| io_error(&in_progress, "create", e))?;
        let writer = match self.options.format {
            Format::Json => PartWriter::Json(Box::new(arrow::json::LineDelimitedWriter::new(
                BufWriter::new(file),
            ))),
            Format::Csv => PartWriter::Csv(Box::new(
                arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .with_delimiter(self.options.delimiter)
                    .build(BufWriter::new(file)),
            )),
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let writer = ArrowWriter::try_new(file, Arc::clone(&self.schema), Some(props))
                    .map_err(|e| io_error(&in_progress, "start Parquet file", e))?;
                PartWriter::Parquet(Box::new(writer))
            }
        };
        Ok(PartFile {
            writer,
            seq,
            name,
            in_progress,
        })
    }

    /// Gives `batch` the sink's schema, casting columns whose type differs
    /// from the table's.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let fields = self.schema.fields();
        if batch.num_columns() != fields.len() {
            return Err(EngineError::Plan(format!(
                "filesystem sink at '{}' expects {} columns, the query produces {}",
                self.options.path.display(),
                fields.len(),
                batch.num_columns()
            )));
        }
        let columns = batch
            .columns()
            .iter()
            .zip(fields.iter())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(Arc::clone(column))
                } else {
                    arrow::compute::cast(column, field.data_type()).map_err(|e| {
                        EngineError::Execution(format!(
                            "column '{}' of the filesystem sink at '{}' cannot take {}: {e}",
                            field.name(),
                            self.options.path.display(),
                            column.data_type()
                        ))
                    })
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Finishes the current part file, if any: publishes it, or with
    /// checkpoints stages it and records it as pending in `ctx.state`.
    fn close_part(&mut self, staged_at: u64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let Some(part) = self.current.take() else {
            return Ok(());
        };
        let (seq, name, in_progress) = (part.seq, part.name.clone(), part.in_progress.clone());
        Self::finish_writer(part)?;
        if !self.checkpointing {
            let final_path = self.options.path.join(&name);
            return std::fs::rename(&in_progress, &final_path)
                .map_err(|e| io_error(&in_progress, "rename", e));
        }
        let staged = self.hidden_path(&name, STAGED_SUFFIX);
        std::fs::rename(&in_progress, &staged).map_err(|e| io_error(&in_progress, "rename", e))?;
        let pending = ctx.state.register_table(&self.pending_table)?;
        let mut value = staged_at.to_be_bytes().to_vec();
        value.extend_from_slice(name.as_bytes());
        ctx.state.put(pending, &seq.to_be_bytes(), &value)?;
        Ok(())
    }

    /// Writes the next sequence number to `ctx.state`, so that numbering
    /// continues after a restore instead of reusing names.
    fn save_next_seq(&self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let meta = ctx.state.register_table(&self.meta_table)?;
        ctx.state
            .put(meta, NEXT_SEQ_KEY, &self.next_seq.to_be_bytes())?;
        Ok(())
    }

    /// The next sequence number stored in `ctx.state`, if any.
    fn saved_next_seq(&self, ctx: &mut OperatorContext<'_>) -> Result<Option<u64>> {
        let meta = ctx.state.register_table(&self.meta_table)?;
        let Some(bytes) = ctx.state.get(meta, NEXT_SEQ_KEY)? else {
            return Ok(None);
        };
        let bytes = <[u8; 8]>::try_from(bytes.as_slice()).map_err(|_| {
            self.corrupt_state(format!(
                "next sequence number has {} bytes, expected 8",
                bytes.len()
            ))
        })?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    fn corrupt_state(&self, why: String) -> EngineError {
        EngineError::Plan(format!(
            "corrupt checkpoint state of the filesystem sink at '{}' (subtask {}): {why}",
            self.options.path.display(),
            self.subtask
        ))
    }

    /// Publishes the files pending in `ctx.state` that were staged at
    /// checkpoints up to `up_to`, and forgets them. Files already published
    /// (staged name gone, final name present) are skipped, so calling this
    /// again after a crash or twice in a row is harmless.
    fn publish_pending(&self, up_to: u64, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let pending = ctx.state.register_table(&self.pending_table)?;
        let entries = ctx
            .state
            .scan_prefix(pending, &[])?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Ok(());
        }
        for (key, value) in entries {
            let seq = <[u8; 8]>::try_from(key.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    self.corrupt_state(format!("pending key has {} bytes, expected 8", key.len()))
                })?;
            // The name must be this subtask's part file `seq` in this format:
            // anything else (a path, another subtask's file) is not ours to
            // rename.
            let (staged_at, name) = match value.split_first_chunk::<8>() {
                Some((id, name)) => (
                    u64::from_be_bytes(*id),
                    String::from_utf8_lossy(name).into_owned(),
                ),
                None => return Err(self.corrupt_state(format!("pending entry {seq} is too short"))),
            };
            if staged_at > up_to {
                continue;
            }
            if self.parse_own_name(&name) != Some((seq, false)) {
                return Err(self.corrupt_state(format!(
                    "pending file {seq} is named '{name}', not '{}'",
                    self.part_name(seq)
                )));
            }
            self.publish(&name)?;
            // Forgotten one by one: a failure half-way leaves the rest
            // pending for the next attempt.
            ctx.state.delete(pending, &key)?;
        }
        sync_directory(&self.options.path);
        Ok(())
    }

    /// Renames the staged file of `name` to `name`, unless that happened
    /// already.
    fn publish(&self, name: &str) -> Result<()> {
        let staged = self.hidden_path(name, STAGED_SUFFIX);
        let final_path = self.options.path.join(name);
        match std::fs::rename(&staged, &final_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if final_path.is_file() {
                    Ok(())
                } else {
                    Err(EngineError::Connector(format!(
                        "file '{}' of a completed checkpoint was neither staged as '{}' nor \
                         published; its rows are lost (was the directory changed by hand?)",
                        final_path.display(),
                        staged.display()
                    )))
                }
            }
            Err(e) => Err(io_error(&staged, "publish", e)),
        }
    }

    /// Deletes this subtask's in-progress and staged files: after pending
    /// files were published, what is left was written after the checkpoint
    /// the job restored from, and its rows will be produced again.
    fn delete_aborted(&self) -> Result<()> {
        for name in self.directory_names()? {
            if let Some((_, true)) = self.parse_own_name(&name) {
                let path = self.options.path.join(&name);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&path, "delete", e)),
                }
            }
        }
        Ok(())
    }

    /// Finishes writing a part file and makes its contents durable.
    fn finish_writer(part: PartFile) -> Result<()> {
        let path = &part.in_progress;
        let file = match part.writer {
            PartWriter::Json(mut w) => {
                w.finish().map_err(|e| io_error(path, "write", e))?;
                w.into_inner()
                    .into_inner()
                    .map_err(|e| io_error(path, "write", e.error()))?
            }
            PartWriter::Csv(w) => w
                .into_inner()
                .into_inner()
                .map_err(|e| io_error(path, "write", e.error()))?,
            PartWriter::Parquet(w) => w
                .into_inner()
                .map_err(|e| io_error(path, "finish Parquet file", e))?,
        };
        // The rename stages or publishes the file; its contents must be
        // durable first.
        file.sync_all().map_err(|e| io_error(path, "sync", e))?;
        Ok(())
    }
}

/// Makes renames in `dir` durable where the platform allows it. Best
/// effort: not every platform can open or sync a directory, and the file
/// contents themselves were synced before the rename.
fn sync_directory(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Operator for FileSink {
    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        std::fs::create_dir_all(&self.options.path)
            .map_err(|e| io_error(&self.options.path, "create directory", e))?;
        if !self.checkpointing {
            self.next_seq = self.first_free_seq()?;
            return Ok(());
        }
        // Order matters: pending files of the restored checkpoint must be
        // published before the clean-up, which deletes every hidden file of
        // this subtask that is left.
        // Everything pending in a restored state belongs to a checkpoint that completed.
        self.publish_pending(u64::MAX, ctx)?;
        self.delete_aborted()?;
        // Published files of a later checkpoint (when restoring an older
        // one) still hold their names: never overwrite them.
        let saved = self.saved_next_seq(ctx)?.unwrap_or(0);
        self.next_seq = saved.max(self.first_free_seq()?);
        Ok(())
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        if is_updating(batch.schema_ref()) {
            return Err(EngineError::Plan(
                "filesystem sink is append-only; it cannot write an updating stream".into(),
            ));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = self.conform(&batch)?;
        if self.current.is_none() {
            let part = self.start_part()?;
            self.current = Some(part);
        }
        let Some(part) = self.current.as_mut() else {
            return Ok(());
        };
        let path = &part.in_progress;
        match &mut part.writer {
            PartWriter::Json(w) => w.write(&batch).map_err(|e| io_error(path, "write", e)),
            PartWriter::Csv(w) => w.write(&batch).map_err(|e| io_error(path, "write", e)),
            PartWriter::Parquet(w) => w.write(&batch).map_err(|e| io_error(path, "write", e)),
        }
    }

    fn on_barrier(&mut self, barrier: &Barrier, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.close_part(barrier.checkpoint_id, ctx)?;
        if self.checkpointing {
            self.save_next_seq(ctx)?;
        }
        Ok(())
    }

    fn on_checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        if self.checkpointing {
            self.publish_pending(checkpoint_id, ctx)?;
        }
        Ok(())
    }

    /// With checkpoints, the last file is only staged here: the end of
    /// input is a final checkpoint, whose completion publishes it.
    fn on_end(&mut self, ctx: &mut OperatorContext<'_>, _out: &mut dyn Collector) -> Result<()> {
        self.close_part(Barrier::FINAL_CHECKPOINT, ctx)?;
        if self.checkpointing {
            self.save_next_seq(ctx)?;
        }
        Ok(())
    }
}
