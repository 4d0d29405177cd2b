//! The Delta source.
//!
//! Bounded (`'mode' = 'batch'`, the default): the files of one snapshot
//! (the latest, `'scan.version'` or `'scan.timestamp'`), sorted by path;
//! file `i` goes to subtask `i % parallelism`.
//!
//! Streaming (`'mode' = 'streaming'`, one subtask): the files of the
//! starting snapshot, then, version after version, the files each new
//! commit adds (read from the commit's log entry, every
//! `'scan.poll-interval'`). Files a commit adds without changing data
//! (`dataChange = false`, as compaction does) are skipped; a commit that
//! removes data (a DELETE, UPDATE or overwrite) stops the stream with an
//! error, since its rows cannot be taken back downstream.
//!
//! The checkpoint position is the version, whether the file list is that
//! version's whole snapshot or only the files its commit added, the index
//! of the file being read in that (sorted) list, and the rows of it already
//! returned. Restoring rebuilds the same list from the log.
//!
//! Partition columns come from each file's partition values; columns a
//! file lacks (added later by schema evolution) are NULL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{Schema, SchemaRef};
use deltalake::logstore::LogStore;
use deltalake::{DeltaTable, Path};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::source::{Source, SourceFactory, SourcePoll, SplitId};
use runnel_engine::{EngineError, Result};

use super::{block_on, DeltaOptions};
use crate::position::{PositionReader, PositionWriter};

/// Format version of the source position.
const POSITION_VERSION: u8 = 1;
/// Rows per batch read from a file.
const BATCH_ROWS: usize = 8192;

/// A factory of Delta source subtasks producing rows of `schema`.
pub(super) fn factory(options: Arc<DeltaOptions>, schema: SchemaRef) -> SourceFactory {
    Arc::new(move |task: &TaskInfo| {
        Ok(Box::new(DeltaSource {
            options: Arc::clone(&options),
            schema: Arc::clone(&schema),
            subtask: task.subtask,
            parallelism: task.parallelism.max(1),
            table: None,
            partition_columns: Vec::new(),
            version: 0,
            whole_snapshot: true,
            files: Vec::new(),
            next_file: 0,
            current: None,
            last_poll: None,
            split_finished: false,
        }) as Box<dyn Source>)
    })
}

/// A data file to read.
#[derive(Debug, Clone)]
struct DataFile {
    path: Path,
    partition_values: HashMap<String, Option<String>>,
}

/// The file being read.
struct OpenFile {
    reader: ParquetRecordBatchReader,
    partition_values: HashMap<String, Option<String>>,
    /// Index of the file in `files`.
    index: usize,
    /// Rows of it returned so far.
    rows: u64,
}

struct DeltaSource {
    options: Arc<DeltaOptions>,
    schema: SchemaRef,
    subtask: usize,
    parallelism: usize,
    table: Option<DeltaTable>,
    partition_columns: Vec<String>,
    /// The version `files` belong to.
    version: u64,
    /// `files` is the snapshot of `version` (not the files its commit added).
    whole_snapshot: bool,
    /// This subtask's files of `version`, sorted by path.
    files: Vec<DataFile>,
    /// Index in `files` of the next file to open.
    next_file: usize,
    current: Option<OpenFile>,
    /// When the log was last asked for a new version (streaming).
    last_poll: Option<Instant>,
    /// The split was reported finished (bounded).
    split_finished: bool,
}

impl DeltaSource {
    fn error(
        &self,
        what: &str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> EngineError {
        self.options.error(what, e)
    }

    fn problem(&self, what: &str, why: impl std::fmt::Display) -> EngineError {
        self.options.problem(what, why)
    }

    fn table(&self) -> Result<&DeltaTable> {
        self.table
            .as_ref()
            .ok_or_else(|| EngineError::Internal("Delta source not opened".into()))
    }

    /// Loads the starting snapshot.
    fn load_start(&self) -> Result<DeltaTable> {
        let mut builder = self.options.builder()?;
        if let Some(v) = self.options.version {
            builder = builder.with_version(v);
        } else if let Some(ms) = self.options.timestamp_ms {
            let at = chrono::DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| self.problem("open", format!("timestamp {ms} is out of range")))?;
            builder = builder.with_timestamp(at);
        }
        block_on(builder.load()).map_err(|e| match e {
            deltalake::DeltaTableError::NotATable(_) => EngineError::Connector(format!(
                "there is no Delta table at '{}' (no _delta_log)",
                self.options.path
            )),
            e => self.error("open", e),
        })
    }

    /// The data files of the loaded snapshot at `version` that this subtask
    /// reads.
    fn snapshot_files(&self, table: &DeltaTable) -> Result<Vec<DataFile>> {
        let snapshot = table.snapshot().map_err(|e| self.error("read", e))?;
        let mut files = Vec::new();
        for f in snapshot.log_data().iter() {
            if f.deletion_vector_descriptor().is_some() {
                return Err(self.problem(
                    "read",
                    format!(
                        "file '{}' has a deletion vector, which is not supported",
                        f.path()
                    ),
                ));
            }
            files.push(DataFile {
                path: f.object_store_path(),
                partition_values: f.partition_values_map(),
            });
        }
        files.sort_by(|a, b| a.path.as_ref().cmp(b.path.as_ref()));
        Ok(files
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.parallelism == self.subtask)
            .map(|(_, f)| f)
            .collect())
    }

    /// The data files the commit of `version` added, or `None` when that
    /// version does not exist yet.
    fn commit_files(&self, version: u64) -> Result<Option<Vec<DataFile>>> {
        let log_store = self.table()?.log_store();
        let Some(bytes) = block_on(log_store.read_commit_entry(version))
            .map_err(|e| self.error("read the log of", e))?
        else {
            return Ok(None);
        };
        let mut files = Vec::new();
        for line in bytes.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let action: serde_json::Value = serde_json::from_slice(line)
                .map_err(|e| self.error("read the log of", format!("version {version}: {e}")))?;
            if let Some(remove) = action.get("remove") {
                if remove.get("dataChange").and_then(|v| v.as_bool()) != Some(false) {
                    return Err(self.problem(
                        "follow",
                        format!(
                            "version {version} removes data (an update, delete or overwrite); \
                             a streaming read takes appends only"
                        ),
                    ));
                }
            }
            let Some(add) = action.get("add") else {
                continue;
            };
            if add.get("dataChange").and_then(|v| v.as_bool()) == Some(false) {
                continue;
            }
            let raw = add.get("path").and_then(|p| p.as_str()).ok_or_else(|| {
                self.error(
                    "read the log of",
                    format!("version {version}: add without path"),
                )
            })?;
            let path = Path::from_url_path(raw)
                .map_err(|e| self.error("read the log of", format!("path '{raw}': {e}")))?;
            let partition_values = add
                .get("partitionValues")
                .and_then(|v| v.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                        .collect()
                })
                .unwrap_or_default();
            files.push(DataFile {
                path,
                partition_values,
            });
        }
        files.sort_by(|a, b| a.path.as_ref().cmp(b.path.as_ref()));
        Ok(Some(files))
    }

    /// Opens `files[index]`, skipping its first `skip` rows.
    fn open_file(&self, index: usize, skip: u64) -> Result<OpenFile> {
        let file = &self.files[index];
        let store = self.table()?.object_store();
        let path = file.path.clone();
        let bytes = block_on(async move { store.get(&path).await?.bytes().await })
            .map_err(|e| self.error("read", format!("file '{}': {e}", file.path)))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| self.error("read", format!("file '{}': {e}", file.path)))?;
        // Read only the columns the query uses (partition columns are not in
        // the file).
        let wanted: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| !self.partition_columns.iter().any(|p| p == n))
            .collect();
        let mask = ProjectionMask::columns(builder.parquet_schema(), wanted);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .with_offset(usize::try_from(skip).unwrap_or(usize::MAX))
            .build()
            .map_err(|e| self.error("read", format!("file '{}': {e}", file.path)))?;
        Ok(OpenFile {
            reader,
            partition_values: file.partition_values.clone(),
            index,
            rows: skip,
        })
    }

    /// Gives a batch read from a file the source's columns.
    fn conform(
        &self,
        batch: &RecordBatch,
        partition_values: &HashMap<String, Option<String>>,
    ) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| {
                let column: ArrayRef = if self.partition_columns.contains(field.name()) {
                    let value = partition_values.get(field.name()).cloned().flatten();
                    Arc::new(StringArray::from(vec![value; rows]))
                } else {
                    match batch.column_by_name(field.name()) {
                        Some(c) => Arc::clone(c),
                        None => new_null_array(field.data_type(), rows),
                    }
                };
                if column.data_type() == field.data_type() {
                    return Ok(column);
                }
                arrow::compute::cast(&column, field.data_type()).map_err(|e| {
                    self.problem(
                        "read",
                        format!(
                            "column '{}' ({}) cannot be read as {}: {e}",
                            field.name(),
                            column.data_type(),
                            field.data_type()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    fn split(&self) -> SplitId {
        SplitId::try_from(self.subtask).unwrap_or(SplitId::MAX)
    }

    /// Streaming: moves to the next version when it has been committed.
    fn advance(&mut self) -> Result<bool> {
        if self
            .last_poll
            .is_some_and(|t| t.elapsed() < self.options.poll_interval)
        {
            return Ok(false);
        }
        self.last_poll = Some(Instant::now());
        let Some(files) = self.commit_files(self.version + 1)? else {
            return Ok(false);
        };
        self.version += 1;
        self.whole_snapshot = false;
        self.files = files;
        self.next_file = 0;
        Ok(true)
    }
}

impl Source for DeltaSource {
    fn open(&mut self, _task: &TaskInfo, _metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        let table = self.load_start()?;
        let schema: Schema = {
            use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
            let snapshot = table.snapshot().map_err(|e| self.error("read", e))?;
            snapshot
                .schema()
                .as_ref()
                .try_into_arrow()
                .map_err(|e| self.error("read", e))?
        };
        let missing: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .filter(|f| schema.field_with_name(f.name()).is_err())
            .map(|f| f.name().as_str())
            .collect();
        if !missing.is_empty() {
            return Err(EngineError::Plan(format!(
                "Delta table '{}' has no column {}; its columns are {}",
                self.options.path,
                missing
                    .iter()
                    .map(|m| format!("'{m}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let snapshot = table.snapshot().map_err(|e| self.error("read", e))?;
        self.partition_columns = snapshot.metadata().partition_columns().to_vec();
        self.version = snapshot.version();
        self.files = self.snapshot_files(&table)?;
        self.whole_snapshot = true;
        self.table = Some(table);
        Ok(vec![self.split()])
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        loop {
            if let Some(open) = self.current.as_mut() {
                match open.reader.next() {
                    Some(batch) => {
                        let batch = batch.map_err(|e| {
                            self.options.error(
                                "read",
                                format!("file '{}': {e}", self.files[open.index].path),
                            )
                        })?;
                        open.rows += batch.num_rows() as u64;
                        let values = open.partition_values.clone();
                        let batch = self.conform(&batch, &values)?;
                        return Ok(SourcePoll::Batch {
                            split: self.split(),
                            batch,
                        });
                    }
                    None => {
                        self.current = None;
                        continue;
                    }
                }
            }
            if self.next_file < self.files.len() {
                let index = self.next_file;
                self.next_file += 1;
                self.current = Some(self.open_file(index, 0)?);
                continue;
            }
            if !self.options.streaming {
                if !self.split_finished {
                    self.split_finished = true;
                    return Ok(SourcePoll::SplitFinished(self.split()));
                }
                return Ok(SourcePoll::Finished);
            }
            if !self.advance()? {
                return Ok(SourcePoll::Pending);
            }
        }
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        let (index, rows) = match &self.current {
            Some(open) => (open.index, open.rows),
            None => (self.next_file, 0),
        };
        Ok(PositionWriter::new(POSITION_VERSION)
            .u64(self.version)
            .u8(u8::from(self.whole_snapshot))
            .u64(index as u64)
            .u64(rows)
            .finish())
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        let mut r = PositionReader::new("Delta source", position, POSITION_VERSION)?;
        let version = r.u64()?;
        let whole_snapshot = r.u8()? == 1;
        let index = usize::try_from(r.u64()?).map_err(|_| r.error("file index too large"))?;
        let rows = r.u64()?;
        r.finish()?;
        if whole_snapshot {
            if version != self.version {
                // The position names another snapshot than the one opened.
                let mut table = self.table()?.clone();
                block_on(table.load_version(version))
                    .map_err(|e| self.error(&format!("load version {version} of"), e))?;
                self.files = self.snapshot_files(&table)?;
                self.table = Some(table);
            }
        } else {
            self.files = self.commit_files(version)?.ok_or_else(|| {
                self.problem(
                    "restore",
                    format!("version {version} of the checkpoint is not in the log"),
                )
            })?;
        }
        self.version = version;
        self.whole_snapshot = whole_snapshot;
        if index > self.files.len() {
            return Err(self.problem(
                "restore",
                format!(
                    "the checkpoint is at file {index} of version {version}, which has only {} files for this subtask",
                    self.files.len()
                ),
            ));
        }
        self.current = None;
        self.next_file = index;
        if rows > 0 && index < self.files.len() {
            self.current = Some(self.open_file(index, rows)?);
            self.next_file = index + 1;
        }
        Ok(())
    }
}
