//! The rolling file sink.
//!
//! Each subtask writes one part file at a time under a hidden in-progress
//! name and renames it when it is closed (at a checkpoint barrier or at the
//! end of input), so that a directory reader sees only whole files.

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
            next_seq: 0,
            current: None,
        }) as Box<dyn Operator>)
    })
}

/// One subtask of the file sink.
struct FileSink {
    options: Arc<FsOptions>,
    schema: SchemaRef,
    subtask: usize,
    next_seq: u64,
    current: Option<PartFile>,
}

/// The part file being written.
struct PartFile {
    writer: PartWriter,
    in_progress: PathBuf,
    final_path: PathBuf,
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

    /// The first sequence number not used by a file of this subtask already
    /// in the directory, so that a second run does not overwrite the first.
    fn first_free_seq(&self) -> Result<u64> {
        let prefix = format!("part-{}-", self.subtask);
        let suffix = format!(".{}", self.options.format.extension());
        let entries = std::fs::read_dir(&self.options.path)
            .map_err(|e| io_error(&self.options.path, "list", e))?;
        let mut next = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let name = name.strip_prefix('.').unwrap_or(name);
            let name = name.strip_suffix(".inprogress").unwrap_or(name);
            let seq = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(&suffix))
                .and_then(|seq| seq.parse::<u64>().ok());
            if let Some(seq) = seq {
                next = next.max(seq + 1);
            }
        }
        Ok(next)
    }

    fn start_part(&mut self) -> Result<PartFile> {
        let name = self.part_name(self.next_seq);
        self.next_seq += 1;
        let final_path = self.options.path.join(&name);
        let in_progress = self.options.path.join(format!(".{name}.inprogress"));
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
            in_progress,
            final_path,
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

    /// Finishes the current part file, if any, and gives it its final name.
    fn close_part(&mut self) -> Result<()> {
        let Some(part) = self.current.take() else {
            return Ok(());
        };
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
        // The rename publishes the file; its contents must be durable first.
        file.sync_all().map_err(|e| io_error(path, "sync", e))?;
        drop(file);
        std::fs::rename(path, &part.final_path).map_err(|e| io_error(path, "rename", e))
    }
}

impl Operator for FileSink {
    fn open(&mut self, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        std::fs::create_dir_all(&self.options.path)
            .map_err(|e| io_error(&self.options.path, "create directory", e))?;
        self.next_seq = self.first_free_seq()?;
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

    fn on_barrier(&mut self, _barrier: &Barrier, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.close_part()
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext<'_>, _out: &mut dyn Collector) -> Result<()> {
        self.close_part()
    }
}
