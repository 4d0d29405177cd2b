//! The bounded file source.
//!
//! JSON and CSV files are read in chunks of lines that are parsed in one go;
//! only a chunk that fails is parsed again line by line, to name the bad
//! line or to skip it, so clean files stay on the fast path.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::source::{Source, SourceFactory, SourcePoll, SplitId};
use runnel_engine::{EngineError, Result};

use super::{Format, FsOptions};

/// Records per chunk (and so per batch) at most.
const CHUNK_LINES: usize = 4096;
/// Bytes per chunk at most, so that files of huge lines stay bounded too.
const CHUNK_BYTES: usize = 8 << 20;

/// The files a source at `path` reads: `path` itself when it is a file,
/// otherwise the regular files in the directory, sorted by name, without
/// hidden and staging files (names starting with `.` or `_`).
pub fn list_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if std::fs::metadata(path)?.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let visible = name
            .to_str()
            .is_some_and(|n| !n.starts_with('.') && !n.starts_with('_'));
        // metadata() follows symlinks, so a link to a file counts as a file.
        if visible && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// A factory of file source subtasks.
pub(super) fn factory(options: Arc<FsOptions>, schema: SchemaRef) -> SourceFactory {
    Arc::new(move |task: &TaskInfo| {
        let files = list_files(&options.path).map_err(|e| {
            EngineError::Connector(format!(
                "cannot list the files of '{}': {e}",
                options.path.display()
            ))
        })?;
        let parallelism = task.parallelism.max(1);
        let mine: VecDeque<(SplitId, PathBuf)> = files
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == task.subtask)
            .map(|(i, p)| (SplitId::try_from(i).unwrap_or(SplitId::MAX), p))
            .collect();
        Ok(Box::new(FileSource {
            options: Arc::clone(&options),
            schema: Arc::clone(&schema),
            splits: mine.iter().map(|(s, _)| *s).collect(),
            files: mine,
            current: None,
            metrics: Arc::new(OperatorMetrics::default()),
        }) as Box<dyn Source>)
    })
}

/// One subtask of the file source: reads its files one after the other.
struct FileSource {
    options: Arc<FsOptions>,
    schema: SchemaRef,
    splits: Vec<SplitId>,
    files: VecDeque<(SplitId, PathBuf)>,
    current: Option<OpenFile>,
    metrics: Arc<OperatorMetrics>,
}

impl Source for FileSource {
    fn open(&mut self, _task: &TaskInfo, metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        self.metrics = Arc::clone(metrics);
        Ok(self.splits.clone())
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        let file = match self.current.as_mut() {
            Some(file) => file,
            None => {
                let Some((split, path)) = self.files.pop_front() else {
                    return Ok(SourcePoll::Finished);
                };
                let opened = OpenFile::open(split, path, &self.options, &self.schema)?;
                self.current.insert(opened)
            }
        };
        match file.next_batch(&self.options, &self.schema, &self.metrics)? {
            Some(batch) if batch.num_rows() > 0 => Ok(SourcePoll::Batch {
                split: file.split,
                batch,
            }),
            // Every record of the chunk was skipped; more may follow.
            Some(_) => Ok(SourcePoll::Pending),
            None => {
                let split = file.split;
                self.current = None;
                Ok(SourcePoll::SplitFinished(split))
            }
        }
    }
}

/// A file being read.
struct OpenFile {
    split: SplitId,
    path: PathBuf,
    reader: FileReader,
}

enum FileReader {
    /// JSON lines or CSV: `line` counts the lines consumed so far.
    Lines { input: BufReader<File>, line: u64 },
    /// Parquet, with the file's column index of each table column.
    Parquet {
        reader: ParquetRecordBatchReader,
        columns: Vec<String>,
    },
}

/// Lines read for one batch: their bytes, and each line's byte range and
/// 1-based line number.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    lines: Vec<(usize, usize, u64)>,
}

impl OpenFile {
    fn open(
        split: SplitId,
        path: PathBuf,
        options: &FsOptions,
        schema: &SchemaRef,
    ) -> Result<Self> {
        let file = File::open(&path).map_err(|e| {
            EngineError::Connector(format!("cannot open '{}': {e}", path.display()))
        })?;
        let reader = match options.format {
            Format::Json | Format::Csv => FileReader::Lines {
                input: BufReader::with_capacity(1 << 20, file),
                line: 0,
            },
            Format::Parquet => open_parquet(file, &path, schema)?,
        };
        Ok(Self {
            split,
            path,
            reader,
        })
    }

    /// The next batch, or `None` at the end of the file.
    fn next_batch(
        &mut self,
        options: &FsOptions,
        schema: &SchemaRef,
        metrics: &OperatorMetrics,
    ) -> Result<Option<RecordBatch>> {
        match &mut self.reader {
            FileReader::Lines { input, line } => {
                let chunk = read_chunk(input, line, options).map_err(|e| {
                    EngineError::Connector(format!("cannot read '{}': {e}", self.path.display()))
                })?;
                let Some(chunk) = chunk else {
                    return Ok(None);
                };
                let rows = chunk.lines.len();
                match decode(options, schema, &chunk.bytes, rows) {
                    Ok(batch) => Ok(Some(batch)),
                    Err(_) => decode_lines(&chunk, options, schema, &self.path, metrics).map(Some),
                }
            }
            FileReader::Parquet { reader, columns } => match reader.next() {
                None => Ok(None),
                Some(Err(e)) => Err(EngineError::Execution(format!(
                    "cannot read Parquet file '{}': {e}",
                    self.path.display()
                ))),
                Some(Ok(batch)) => {
                    conform_parquet(&batch, columns, schema)
                        .map(Some)
                        .map_err(|e| {
                            EngineError::Execution(format!(
                                "Parquet file '{}' does not fit the table: {e}",
                                self.path.display()
                            ))
                        })
                }
            },
        }
    }
}

/// Reads the next chunk of non-blank lines; `None` at the end of the file.
fn read_chunk(
    input: &mut BufReader<File>,
    line: &mut u64,
    options: &FsOptions,
) -> std::io::Result<Option<Chunk>> {
    let mut chunk = Chunk::default();
    while chunk.lines.len() < CHUNK_LINES && chunk.bytes.len() < CHUNK_BYTES {
        let start = chunk.bytes.len();
        if input.read_until(b'\n', &mut chunk.bytes)? == 0 {
            break;
        }
        *line += 1;
        let skip_header = *line == 1 && options.format == Format::Csv && options.ignore_first_line;
        let blank = chunk.bytes[start..].iter().all(u8::is_ascii_whitespace);
        if skip_header || blank {
            chunk.bytes.truncate(start);
            continue;
        }
        // The last line may lack its newline; decoders finish a record only
        // at one.
        if chunk.bytes.last() != Some(&b'\n') {
            chunk.bytes.push(b'\n');
        }
        chunk.lines.push((start, chunk.bytes.len(), *line));
    }
    Ok((!chunk.lines.is_empty()).then_some(chunk))
}

/// The arrow JSON and CSV decoders behind one interface.
trait RecordDecoder {
    fn decode(&mut self, buf: &[u8]) -> std::result::Result<usize, ArrowError>;
    fn flush(&mut self) -> std::result::Result<Option<RecordBatch>, ArrowError>;
}

impl RecordDecoder for arrow::json::reader::Decoder {
    fn decode(&mut self, buf: &[u8]) -> std::result::Result<usize, ArrowError> {
        arrow::json::reader::Decoder::decode(self, buf)
    }
    fn flush(&mut self) -> std::result::Result<Option<RecordBatch>, ArrowError> {
        arrow::json::reader::Decoder::flush(self)
    }
}

impl RecordDecoder for arrow::csv::reader::Decoder {
    fn decode(&mut self, buf: &[u8]) -> std::result::Result<usize, ArrowError> {
        arrow::csv::reader::Decoder::decode(self, buf)
    }
    fn flush(&mut self) -> std::result::Result<Option<RecordBatch>, ArrowError> {
        arrow::csv::reader::Decoder::flush(self)
    }
}

/// Parses `bytes` (about `rows` records) into one batch of `schema`.
fn decode(
    options: &FsOptions,
    schema: &SchemaRef,
    bytes: &[u8],
    rows: usize,
) -> std::result::Result<RecordBatch, ArrowError> {
    let batch_size = rows.max(1);
    let mut decoder: Box<dyn RecordDecoder> = match options.format {
        Format::Json => Box::new(
            arrow::json::ReaderBuilder::new(Arc::clone(schema))
                .with_batch_size(batch_size)
                .build_decoder()?,
        ),
        Format::Csv | Format::Parquet => Box::new(
            arrow::csv::ReaderBuilder::new(Arc::clone(schema))
                .with_header(false)
                .with_delimiter(options.delimiter)
                .with_batch_size(batch_size)
                .build_decoder(),
        ),
    };
    let mut batches = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let read = decoder.decode(bytes.get(offset..).unwrap_or_default())?;
        offset += read;
        if read == 0 {
            // The decoder holds a full batch and wants it taken first.
            match decoder.flush()? {
                Some(batch) => batches.push(batch),
                None => {
                    return Err(ArrowError::ParseError(
                        "the decoder stopped making progress".into(),
                    ))
                }
            }
        }
    }
    if let Some(batch) = decoder.flush()? {
        batches.push(batch);
    }
    concat_batches(schema, &batches)
}

/// Parses a chunk line by line: fails on the first bad line, or skips and
/// counts bad lines when the table ignores parse errors.
fn decode_lines(
    chunk: &Chunk,
    options: &FsOptions,
    schema: &SchemaRef,
    path: &Path,
    metrics: &OperatorMetrics,
) -> Result<RecordBatch> {
    let mut good = Vec::new();
    for &(start, end, line) in &chunk.lines {
        let bytes = chunk.bytes.get(start..end).unwrap_or_default();
        match decode(options, schema, bytes, 1) {
            Ok(batch) => good.push(batch),
            Err(_) if options.ignore_parse_errors => metrics.add_malformed(1),
            Err(e) => {
                // The CSV decoder saw a one-line input and reports "line 0";
                // the real line is in our own message.
                let detail = e.to_string().replace(" at line 0", "");
                return Err(EngineError::Execution(format!(
                    "malformed {} record in file '{}' at line {line}: {detail}",
                    options.format.label(),
                    path.display()
                )));
            }
        }
    }
    Ok(concat_batches(schema, &good)?)
}

/// Opens a Parquet file, reading only the table's columns (found by name).
fn open_parquet(file: File, path: &Path, schema: &SchemaRef) -> Result<FileReader> {
    let not_parquet = |e: parquet::errors::ParquetError| {
        EngineError::Execution(format!(
            "cannot read Parquet file '{}': {e}",
            path.display()
        ))
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(not_parquet)?;
    let file_schema = Arc::clone(builder.schema());
    let mut indices = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let found = file_schema
            .fields()
            .iter()
            .position(|f| f.name() == field.name())
            .or_else(|| {
                file_schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(field.name()))
            });
        let Some(index) = found else {
            return Err(EngineError::Execution(format!(
                "Parquet file '{}' has no column '{}'; its columns: {}",
                path.display(),
                field.name(),
                file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        indices.push(index);
        columns.push(file_schema.field(index).name().clone());
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(CHUNK_LINES)
        .build()
        .map_err(not_parquet)?;
    Ok(FileReader::Parquet { reader, columns })
}

/// Orders and casts the columns of a Parquet batch to the table's schema.
fn conform_parquet(
    batch: &RecordBatch,
    columns: &[String],
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    let arrays = schema
        .fields()
        .iter()
        .zip(columns)
        .map(|(field, name)| {
            let column = batch.column_by_name(name).ok_or_else(|| {
                ArrowError::SchemaError(format!("column '{name}' missing from a batch"))
            })?;
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                arrow::compute::cast(column, field.data_type())
            }
        })
        .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options)
}
