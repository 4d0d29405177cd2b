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
//! The protocol is [`crate::two_phase`]'s; this sink is its
//! [`TwoPhaseSink`]. A barrier (pre-commit) closes and stages the current
//! file; the staged entry, kept in the state table `<operator>/pending`
//! under the checkpoint id, is that id (big-endian `u64`) followed by the
//! final file name. The next sequence number goes to `<operator>/meta` (key
//! `next_seq`, big-endian `u64`). A commit publishes the files of the
//! entries it gets. After a crash, the restored entries are published
//! (their checkpoint completed, but the crash may have come before the
//! rename), then `abort` deletes this subtask's other in-progress and
//! staged files, which hold rows written after that checkpoint: the sources
//! replay those rows. Publishing is idempotent: a pending file whose staged
//! name is gone and whose final name exists was published before.
//!
//! State written before the protocol moved to `two_phase.rs` keyed the
//! pending table by sequence number instead of checkpoint id; it restores
//! the same way, since a restore publishes every entry and takes the file
//! from the value.
//!
//! Without checkpoints, files are published directly at barriers and at the
//! end of input.
//!
//! A partitioned table (`PARTITIONED BY (dt, hm)`) keeps one part file
//! open per partition directory (`dt=.../hm=.../`, see `partitions.rs`);
//! the files hold the other columns. A barrier closes all of them, and
//! the one staged entry of the checkpoint lists every file it staged, each
//! with its directory, one per line.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use runnel_engine::operator::{OperatorContext, OperatorFactory, TaskInfo};
use runnel_engine::types::is_updating;
use runnel_engine::{EngineError, Result};

use super::{io_error, Format, FsOptions};
use crate::two_phase::{self, Committed, Staged, TwoPhaseSink};

/// A factory of file sink subtasks writing rows of `table_schema`.
pub(super) fn factory(options: Arc<FsOptions>, table_schema: SchemaRef) -> OperatorFactory {
    // Rows arrive with the table's column names and types; every column
    // nullable, since the query may produce NULLs the DDL did not expect
    // and a file is no place to enforce that.
    let schema: SchemaRef = Arc::new(Schema::new(
        table_schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let partitions: Vec<(String, usize)> = options
        .partition_columns
        .iter()
        .filter_map(|name| schema.index_of(name).ok().map(|i| (name.clone(), i)))
        .collect();
    // The files hold the other columns.
    let data: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !partitions.iter().any(|(_, p)| p == i))
        .collect();
    let file_schema: SchemaRef =
        Arc::new(schema.project(&data).unwrap_or_else(|_| (*schema).clone()));
    two_phase::factory(move |task: &TaskInfo| {
        Ok(FileSink {
            options: Arc::clone(&options),
            schema: Arc::clone(&schema),
            file_schema: Arc::clone(&file_schema),
            partitions: partitions.clone(),
            data_columns: data.clone(),
            subtask: task.subtask,
            checkpointing: task.checkpointing,
            meta_table: format!("{}/meta", task.operator_name),
            next_seq: 0,
            current: std::collections::BTreeMap::new(),
        })
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
    /// The rows it takes: the table's columns.
    schema: SchemaRef,
    /// What its files hold: the columns that are not partition columns.
    file_schema: SchemaRef,
    /// Partition columns (name, index in `schema`), in directory order.
    partitions: Vec<(String, usize)>,
    /// Indexes in `schema` of the columns written into files.
    data_columns: Vec<usize>,
    subtask: usize,
    /// Two-phase commit: publish only when a checkpoint completes.
    checkpointing: bool,
    /// State table holding the next sequence number.
    meta_table: String,
    next_seq: u64,
    /// The part file being written in each partition directory (relative;
    /// "" without partitions).
    current: std::collections::BTreeMap<String, PartFile>,
}

/// The part file being written.
struct PartFile {
    writer: PartWriter,
    /// Its directory relative to the table's ("" without partitions).
    dir: String,
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

impl FileSink {
    fn part_name(&self, seq: u64) -> String {
        format!(
            "part-{}-{seq}.{}",
            self.subtask,
            self.options.format.extension()
        )
    }

    /// The hidden name of final name `name` in `dir` with `suffix`.
    fn hidden_path(&self, dir: &str, name: &str, suffix: &str) -> PathBuf {
        self.dir_path(dir).join(format!(".{name}{suffix}"))
    }

    /// The directory `dir` (relative to the table's).
    fn dir_path(&self, dir: &str) -> PathBuf {
        if dir.is_empty() {
            self.options.path.clone()
        } else {
            self.options.path.join(dir)
        }
    }

    /// If `file_name` is one of this subtask's part files (final, in progress
    /// or staged), its sequence number and whether it is hidden.
    fn parse_own_name(&self, file_name: &str) -> Option<(u64, bool)> {
        self.parse_part_name(file_name)
            .filter(|(subtask, ..)| *subtask == self.subtask)
            .map(|(_, seq, hidden)| (seq, hidden))
    }

    /// The subtask, sequence number and hiddenness of any subtask's part
    /// file in this format; `None` for any other name.
    fn parse_part_name(&self, file_name: &str) -> Option<(usize, u64, bool)> {
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
        let (subtask, digits) = name
            .strip_prefix("part-")?
            .strip_suffix(&suffix)?
            .split_once('-')?;
        // Only plain digits: `part-1-` must not match `part-1-x`.
        let plain = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if !plain(subtask) || !plain(digits) {
            return None;
        }
        Some((subtask.parse().ok()?, digits.parse().ok()?, hidden))
    }

    /// Names in the sink's directory and, for a partitioned table, in its
    /// partition directories: (relative directory, file name).
    fn directory_names(&self) -> Result<Vec<(String, String)>> {
        super::partitions::files_under(&self.options.path, !self.partitions.is_empty())
            .map_err(|e| io_error(&self.options.path, "list", e))
    }

    /// The first sequence number not used by a file of this subtask already
    /// in the directory, so that a second run does not overwrite the first.
    fn first_free_seq(&self) -> Result<u64> {
        Ok(self
            .directory_names()?
            .iter()
            .filter_map(|(_, n)| self.parse_own_name(n))
            .map(|(seq, _)| seq.saturating_add(1))
            .max()
            .unwrap_or(0))
    }

    fn start_part(&mut self, dir: &str) -> Result<PartFile> {
        let seq = self.next_seq;
        let name = self.part_name(seq);
        self.next_seq += 1;
        if !dir.is_empty() {
            let path = self.dir_path(dir);
            std::fs::create_dir_all(&path).map_err(|e| io_error(&path, "create directory", e))?;
        }
        let in_progress = self.hidden_path(dir, &name, IN_PROGRESS_SUFFIX);
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
                let writer = ArrowWriter::try_new(file, Arc::clone(&self.file_schema), Some(props))
                    .map_err(|e| io_error(&in_progress, "start Parquet file", e))?;
                PartWriter::Parquet(Box::new(writer))
            }
        };
        Ok(PartFile {
            writer,
            dir: dir.to_string(),
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

    /// Finishes the current part files, if any: publishes them, or with
    /// checkpoints stages them and returns their staged entry (the files'
    /// relative paths, one per line).
    fn close_part(&mut self, staged_at: u64) -> Result<Option<Staged>> {
        if self.current.is_empty() {
            return Ok(None);
        }
        let mut listed = Vec::new();
        for (_, part) in std::mem::take(&mut self.current) {
            let (dir, name, in_progress) = (
                part.dir.clone(),
                part.name.clone(),
                part.in_progress.clone(),
            );
            Self::finish_writer(part)?;
            if !self.checkpointing {
                let final_path = self.dir_path(&dir).join(&name);
                std::fs::rename(&in_progress, &final_path)
                    .map_err(|e| io_error(&in_progress, "rename", e))?;
                continue;
            }
            let staged = self.hidden_path(&dir, &name, STAGED_SUFFIX);
            std::fs::rename(&in_progress, &staged)
                .map_err(|e| io_error(&in_progress, "rename", e))?;
            listed.push(if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            });
        }
        if listed.is_empty() {
            return Ok(None);
        }
        let mut bytes = staged_at.to_be_bytes().to_vec();
        bytes.extend_from_slice(listed.join("\n").as_bytes());
        Ok(Some(Staged {
            id: staged_at,
            bytes,
        }))
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

    /// Publishes the files of staged `entries`. Files already published
    /// (staged name gone, final name present) are skipped, so publishing
    /// again after a crash or twice in a row is harmless.
    fn publish_entries(&self, entries: Vec<Staged>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in entries {
            // The name must be a part file in this format: anything else
            // (a path) is not ours to rename. It may be another subtask's:
            // after a restore at another parallelism, a subtask publishes
            // what old subtasks staged (StateLayout::Union).
            let names = match entry.bytes.split_first_chunk::<8>() {
                Some((_, names)) => String::from_utf8_lossy(names).into_owned(),
                None => {
                    return Err(
                        self.corrupt_state(format!("pending entry {} is too short", entry.id))
                    )
                }
            };
            // One file per line, each with its partition directory.
            for path in names.lines() {
                let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
                let dir_ok = dir.is_empty()
                    || super::partitions::parse_dir(Path::new(dir)).is_some_and(|p| !p.is_empty());
                if !dir_ok || !matches!(self.parse_part_name(name), Some((_, _, false))) {
                    return Err(self.corrupt_state(format!(
                        "pending file {} is named '{path}', not as a part file",
                        entry.id
                    )));
                }
                self.publish(dir, name)?;
                if !dir.is_empty() {
                    sync_directory(&self.dir_path(dir));
                }
            }
        }
        sync_directory(&self.options.path);
        Ok(())
    }

    /// Renames the staged file of `name` in `dir` to `name`, unless that
    /// happened already.
    fn publish(&self, dir: &str, name: &str) -> Result<()> {
        let staged = self.hidden_path(dir, name, STAGED_SUFFIX);
        let final_path = self.dir_path(dir).join(name);
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
        for (dir, name) in self.directory_names()? {
            if let Some((_, true)) = self.parse_own_name(&name) {
                let path = self.dir_path(&dir).join(&name);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&path, "delete", e)),
                }
            }
        }
        Ok(())
    }

    /// Appends `batch` (of the file schema) to the part file of `dir`,
    /// starting one when there is none.
    fn write_to(&mut self, dir: &str, batch: &RecordBatch) -> Result<()> {
        if !self.current.contains_key(dir) {
            let part = self.start_part(dir)?;
            self.current.insert(dir.to_string(), part);
        }
        let Some(part) = self.current.get_mut(dir) else {
            return Ok(());
        };
        let path = &part.in_progress;
        match &mut part.writer {
            PartWriter::Json(w) => w.write(batch).map_err(|e| io_error(path, "write", e)),
            PartWriter::Csv(w) => w.write(batch).map_err(|e| io_error(path, "write", e)),
            PartWriter::Parquet(w) => w.write(batch).map_err(|e| io_error(path, "write", e)),
        }
    }

    /// Finishes writing a part file and makes its contents durable.
    fn finish_writer(part: PartFile) -> Result<()> {
        let path = &part.in_progress;
        let file = match part.writer {
            PartWriter::Json(mut w) => {
                w.finish().map_err(|e| io_error(path, "write", e))?;
                w.into_inner()
                    .into_inner()
                    .map_err(|e| io_error(path, "write", e.into_error()))?
            }
            PartWriter::Csv(w) => w
                .into_inner()
                .into_inner()
                .map_err(|e| io_error(path, "write", e.into_error()))?,
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

impl TwoPhaseSink for FileSink {
    fn staged_table(&self) -> &'static str {
        "pending"
    }

    fn open(&mut self, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        std::fs::create_dir_all(&self.options.path)
            .map_err(|e| io_error(&self.options.path, "create directory", e))?;
        if !self.checkpointing {
            self.next_seq = self.first_free_seq()?;
        }
        // With checkpoints, numbering starts in `abort`, once the restore
        // has published and cleaned up.
        Ok(())
    }

    fn write(&mut self, batch: RecordBatch, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        if is_updating(batch.schema_ref()) {
            return Err(EngineError::Plan(
                "filesystem sink is append-only; it cannot write an updating stream".into(),
            ));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = self.conform(&batch)?;
        if self.options.format == Format::Csv {
            refuse_nul_in_csv(&batch, &self.options.path)?;
        }
        if self.partitions.is_empty() {
            return self.write_to("", &batch);
        }
        // Rows by partition directory, in order of first appearance.
        let dirs = super::partitions::row_dirs(&batch, &self.partitions)?;
        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = Default::default();
        for (i, dir) in dirs.iter().enumerate() {
            let g = *index.entry(dir.as_str()).or_insert_with(|| {
                groups.push((dir.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i as u32);
        }
        let data = batch.project(&self.data_columns)?;
        let data = RecordBatch::try_new(Arc::clone(&self.file_schema), data.columns().to_vec())?;
        for (dir, rows) in groups {
            let part = if rows.len() == data.num_rows() {
                data.clone()
            } else {
                let idx = arrow::array::UInt32Array::from(rows);
                let cols = data
                    .columns()
                    .iter()
                    .map(|c| arrow::compute::take(c, &idx, None))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                RecordBatch::try_new(Arc::clone(&self.file_schema), cols)?
            };
            self.write_to(&dir, &part)?;
        }
        Ok(())
    }

    fn pre_commit(
        &mut self,
        checkpoint_id: u64,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<Option<Staged>> {
        let staged = self.close_part(checkpoint_id)?;
        if self.checkpointing {
            self.save_next_seq(ctx)?;
        }
        Ok(staged)
    }

    fn commit(&mut self, _checkpoint_id: u64, entries: Vec<Staged>) -> Result<Committed> {
        self.publish_entries(entries)?;
        Ok(Committed::Published)
    }

    fn restore(
        &mut self,
        entries: Vec<Staged>,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<Committed> {
        self.publish_entries(entries)?;
        Ok(Committed::Published)
    }

    /// Deletes what is left hidden, then continues the numbering.
    fn abort(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.delete_aborted()?;
        // Published files of a later checkpoint (when restoring an older
        // one) still hold their names: never overwrite them.
        let saved = self.saved_next_seq(ctx)?.unwrap_or(0);
        self.next_seq = saved.max(self.first_free_seq()?);
        Ok(())
    }
}

/// A CSV value cannot hold a NUL byte: the CSV source (and other readers)
/// would take the record for malformed. Fails naming the column, rather
/// than writing a file that does not read back.
fn refuse_nul_in_csv(batch: &RecordBatch, path: &std::path::Path) -> Result<()> {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    for (i, column) in batch.columns().iter().enumerate() {
        let strings: Box<dyn Iterator<Item = Option<&str>>> = match column.data_type() {
            DataType::Utf8 => Box::new(column.as_string::<i32>().iter()),
            DataType::LargeUtf8 => Box::new(column.as_string::<i64>().iter()),
            _ => continue,
        };
        for (row, value) in strings.enumerate() {
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(EngineError::Execution(format!(
                    "cannot write CSV to '{}': column '{}' of row {} holds a NUL byte, which \
                     CSV cannot carry (JSON lines and Parquet can)",
                    path.display(),
                    batch.schema_ref().field(i).name(),
                    row + 1
                )));
            }
        }
    }
    Ok(())
}
