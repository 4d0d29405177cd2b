//! The bounded file source.
//!
//! JSON and CSV files are read in chunks of lines that are parsed in one go;
//! only a chunk that fails is parsed again line by line, to name the bad
//! line or to skip it, so clean files stay on the fast path.
//!
//! Checkpoints: a subtask's position names the file it is in (its index in
//! the sorted listing, which is its split id, and its name) and how far into
//! it the emitted rows reach: a byte offset and line number for JSON and
//! CSV, a row count for Parquet. Files with a smaller index are done. The
//! listing's size and a hash of its names are kept too, because the
//! assignment of files to subtasks depends on the whole listing: a restore
//! into a directory whose files changed fails instead of re-reading or
//! skipping rows. See [`FileSource::snapshot_position`] for the encoding.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::source::{Source, SourceFactory, SourcePoll, SplitId};
use runnel_engine::{EngineError, Result};

use super::{io_error, Format, FsOptions};
use crate::position::{PositionReader, PositionWriter};

/// Format version of [`FileSource`] positions.
const POSITION_VERSION: u8 = 1;
/// Position tag: every file of the subtask is done.
const TAG_DONE: u8 = 0;
/// Position tag: reading (or about to read) one file.
const TAG_IN_FILE: u8 = 1;

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
        let files = list_files(&options.path)
            .map_err(|e| io_error(&options.path, "list the files of", e))?;
        let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
        let listing_hash = hash_names(&names);
        let listing_len = names.len() as u64;
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
            listing_len,
            listing_hash,
            names,
            done_before_restore: VecDeque::new(),
        }) as Box<dyn Source>)
    })
}

/// The last component of `path`, as the name a position records.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
}

/// FNV-1a over the names (each ended by a NUL): a stable fingerprint of a
/// listing, independent of the std hasher's per-release changes.
fn hash_names(names: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        for b in name.as_bytes().iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// One subtask of the file source: reads its files one after the other.
struct FileSource {
    options: Arc<FsOptions>,
    schema: SchemaRef,
    splits: Vec<SplitId>,
    files: VecDeque<(SplitId, PathBuf)>,
    current: Option<OpenFile>,
    metrics: Arc<OperatorMetrics>,
    /// Number of files in the whole listing (all subtasks).
    listing_len: u64,
    /// [`hash_names`] of the whole listing.
    listing_hash: u64,
    /// Names of the whole listing, indexed by split id.
    names: Vec<String>,
    /// Splits a restore skipped as already read; announced finished by the
    /// first polls, since `open` had reported them as open.
    done_before_restore: VecDeque<SplitId>,
}

impl FileSource {
    fn position_error(&self, why: String) -> EngineError {
        EngineError::Connector(format!(
            "cannot resume reading '{}' from the checkpoint: {why}",
            self.options.path.display()
        ))
    }
}

impl Source for FileSource {
    fn open(&mut self, _task: &TaskInfo, metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        self.metrics = Arc::clone(metrics);
        Ok(self.splits.clone())
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        if let Some(split) = self.done_before_restore.pop_front() {
            return Ok(SourcePoll::SplitFinished(split));
        }
        let file = match self.current.as_mut() {
            Some(file) => file,
            None => {
                let Some((split, path)) = self.files.pop_front() else {
                    return Ok(SourcePoll::Finished);
                };
                let opened = OpenFile::open(split, path, &self.options, &self.schema, (0, 0))?;
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

    /// Version 1, big-endian: `[1, listing size: u64, listing hash: u64,
    /// tag: u8]`, then for tag 1 (in a file) `[split: u32, file name:
    /// u32 length + UTF-8, a: u64, b: u64]`; tag 0 means every file of the
    /// subtask is done. For JSON and CSV `a` is the byte offset after the
    /// last line consumed and `b` that line's number (so error messages keep
    /// true line numbers); for Parquet `a` is the number of rows emitted and
    /// `b` is 0. A file not yet opened has `a = b = 0`.
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        let mut w = PositionWriter::new(POSITION_VERSION);
        w.u64(self.listing_len).u64(self.listing_hash);
        let (split, name, a, b) = match (&self.current, self.files.front()) {
            (Some(file), _) => {
                let (a, b) = file.reader.progress();
                (file.split, file_name(&file.path), a, b)
            }
            (None, Some((split, path))) => (*split, file_name(path), 0, 0),
            (None, None) => return Ok(w.u8(TAG_DONE).finish()),
        };
        w.u8(TAG_IN_FILE).u32(split).str(&name)?.u64(a).u64(b);
        Ok(w.finish())
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        let mut r = PositionReader::new("filesystem", position, POSITION_VERSION)?;
        let listing_len = r.u64()?;
        let listing_hash = r.u64()?;
        let at = match r.u8()? {
            TAG_DONE => None,
            TAG_IN_FILE => {
                let split = r.u32()?;
                let name = r.str()?;
                Some((split, name, r.u64()?, r.u64()?))
            }
            tag => return Err(r.error(&format!("unknown tag {tag}"))),
        };
        r.finish()?;
        if let Some((_, name, _, _)) = &at {
            if !self.names.contains(name) {
                return Err(self.position_error(format!(
                    "the file '{name}' it was reading no longer exists (or is hidden now)"
                )));
            }
        }
        if listing_len != self.listing_len || listing_hash != self.listing_hash {
            return Err(self.position_error(format!(
                "the set of files changed since the checkpoint ({listing_len} files then, {} \
                 now); files are assigned to subtasks by their place in the sorted listing, so \
                 the job cannot resume where it stopped",
                self.listing_len
            )));
        }
        self.current = None;
        self.done_before_restore.clear();
        // Files before the one the position is in are done (all of them
        // when it says the subtask was done).
        let done_below = at.as_ref().map_or(SplitId::MAX, |(split, ..)| *split);
        while let Some((split, _)) = self.files.front() {
            if at.is_some() && *split >= done_below {
                break;
            }
            self.done_before_restore.push_back(*split);
            self.files.pop_front();
        }
        let Some((split, name, a, b)) = at else {
            return Ok(());
        };
        let Some(path) = self
            .files
            .front()
            .filter(|(front, path)| *front == split && file_name(path) == name)
            .map(|(_, path)| path.clone())
        else {
            return Err(self.position_error(format!(
                "file '{name}' (number {split}) is not one of this subtask's files; was the \
                 parallelism changed?"
            )));
        };
        if (a, b) != (0, 0) {
            self.files.pop_front();
            let opened = OpenFile::open(split, path, &self.options, &self.schema, (a, b))?;
            self.current = Some(opened);
        }
        Ok(())
    }
}

/// A file being read.
struct OpenFile {
    split: SplitId,
    path: PathBuf,
    reader: FileReader,
}

enum FileReader {
    /// JSON lines or CSV: `offset` counts the bytes and `line` the lines
    /// consumed so far.
    Lines {
        input: BufReader<File>,
        offset: u64,
        line: u64,
    },
    /// Parquet, with the file's column index of each table column, and the
    /// number of rows returned so far.
    Parquet {
        reader: ParquetRecordBatchReader,
        columns: Vec<String>,
        rows: u64,
    },
}

impl FileReader {
    /// The two numbers a position records for this reader.
    fn progress(&self) -> (u64, u64) {
        match self {
            FileReader::Lines { offset, line, .. } => (*offset, *line),
            FileReader::Parquet { rows, .. } => (*rows, 0),
        }
    }
}

/// Records read for one batch: their bytes, and each record's byte range
/// and 1-based first line number (a CSV record runs over several lines
/// when a quoted value holds line breaks).
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    lines: Vec<(usize, usize, u64)>,
    /// Lines longer than [`MAX_LINE_BYTES`]: kept only up to that length.
    oversized: Vec<u64>,
}

impl OpenFile {
    /// Opens `path`, skipping what `resume` (a position's `a` and `b`, see
    /// [`FileSource::snapshot_position`]) says was already read.
    fn open(
        split: SplitId,
        path: PathBuf,
        options: &FsOptions,
        schema: &SchemaRef,
        resume: (u64, u64),
    ) -> Result<Self> {
        let mut file = File::open(&path).map_err(|e| io_error(&path, "open", e))?;
        let reader = match options.format {
            Format::Json | Format::Csv => {
                let (offset, line) = resume;
                if offset > 0 {
                    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                    if offset > len {
                        return Err(EngineError::Connector(format!(
                            "cannot resume reading '{}' at byte {offset}: the file has only \
                             {len} bytes now (was it rewritten since the checkpoint?)",
                            path.display()
                        )));
                    }
                    file.seek(SeekFrom::Start(offset))
                        .map_err(|e| io_error(&path, "seek in", e))?;
                }
                FileReader::Lines {
                    input: BufReader::with_capacity(1 << 20, file),
                    offset,
                    line,
                }
            }
            Format::Parquet => open_parquet(file, &path, schema, resume.0)?,
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
            FileReader::Lines {
                input,
                offset,
                line,
            } => {
                let chunk = read_chunk(input, offset, line, options)
                    .map_err(|e| io_error(&self.path, "read", e))?;
                let Some(chunk) = chunk else {
                    return Ok(None);
                };
                let rows = chunk.lines.len();
                if !chunk.oversized.is_empty() {
                    return decode_lines(&chunk, options, schema, &self.path, metrics).map(Some);
                }
                match decode(options, schema, &chunk.bytes, rows) {
                    Ok(batch) => Ok(Some(batch)),
                    Err(_) => decode_lines(&chunk, options, schema, &self.path, metrics).map(Some),
                }
            }
            FileReader::Parquet {
                reader,
                columns,
                rows,
            } => match reader.next() {
                None => Ok(None),
                Some(Err(e)) => Err(EngineError::Execution(format!(
                    "cannot read Parquet file '{}': {e}",
                    self.path.display()
                ))),
                Some(Ok(batch)) => {
                    *rows += batch.num_rows() as u64;
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
/// `offset` and `line` advance past every line consumed, blank or not.
fn read_chunk(
    input: &mut BufReader<File>,
    offset: &mut u64,
    line: &mut u64,
    options: &FsOptions,
) -> std::io::Result<Option<Chunk>> {
    let mut chunk = Chunk::default();
    let csv = options.format == Format::Csv;
    while chunk.lines.len() < CHUNK_LINES && chunk.bytes.len() < CHUNK_BYTES {
        let start = chunk.bytes.len();
        let first_line = *line + 1;
        // A CSV record goes on to the next line while a double-quoted value
        // is open, up to MAX_RECORD_BYTES (past that it is cut there, and
        // fails to parse as a malformed record).
        let mut quotes = CsvQuotes::new(options.delimiter);
        loop {
            let from = chunk.bytes.len();
            let (read, cut) = read_line_capped(input, &mut chunk.bytes)?;
            if read == 0 {
                break;
            }
            *offset += read as u64;
            *line += 1;
            if cut {
                // Too long to be a record: the rest of the line was skipped.
                chunk.oversized.push(first_line);
                break;
            }
            let open = csv && quotes.feed(&chunk.bytes[from..]);
            if !open || chunk.bytes.len() - start > MAX_RECORD_BYTES {
                break;
            }
        }
        if chunk.bytes.len() == start {
            break;
        }
        let skip_header = first_line == 1 && csv && options.ignore_first_line;
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
        chunk.lines.push((start, chunk.bytes.len(), first_line));
    }
    Ok((!chunk.lines.is_empty()).then_some(chunk))
}

/// The longest CSV record that may run over several lines.
const MAX_RECORD_BYTES: usize = 1 << 20;

/// The longest line read as a record; a longer one is a malformed record
/// (so that a file without line breaks cannot take all memory).
#[cfg(not(test))]
const MAX_LINE_BYTES: usize = 64 << 20;
#[cfg(test)]
const MAX_LINE_BYTES: usize = 64 << 10;

/// Appends one line (with its line break) to `out`, but no more than
/// [`MAX_LINE_BYTES`] of it; the rest of a longer line is read and
/// dropped. The bytes consumed, and whether the line was cut.
fn read_line_capped(
    input: &mut BufReader<File>,
    out: &mut Vec<u8>,
) -> std::io::Result<(usize, bool)> {
    let (mut consumed, mut kept, mut cut) = (0usize, 0usize, false);
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed, cut));
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(kept);
        if take <= room {
            out.extend_from_slice(&available[..take]);
            kept += take;
        } else {
            out.extend_from_slice(&available[..room]);
            kept += room;
            cut = true;
        }
        input.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, cut));
        }
    }
}

/// Where a CSV record's reader is, to tell whether a line break is inside
/// a double-quoted value. A quote opens a value only at its start (as the
/// CSV decoder reads it); elsewhere in an unquoted value it is an ordinary
/// character (`12" ruler`). Inside quotes, a doubled quote is a quote.
enum CsvQuotes {
    FieldStart(u8),
    Unquoted(u8),
    Quoted(u8),
    QuoteInQuoted(u8),
}

impl CsvQuotes {
    fn new(delimiter: u8) -> Self {
        CsvQuotes::FieldStart(delimiter)
    }

    /// Reads one line (with its line break); true when the record goes on
    /// because the line ended inside a quoted value.
    fn feed(&mut self, line: &[u8]) -> bool {
        use CsvQuotes::*;
        for &b in line {
            *self = match *self {
                FieldStart(d) | Unquoted(d) if b == d => FieldStart(d),
                FieldStart(d) if b == b'"' => Quoted(d),
                FieldStart(d) | Unquoted(d) if b == b'\n' => FieldStart(d),
                FieldStart(d) | Unquoted(d) => Unquoted(d),
                Quoted(d) if b == b'"' => QuoteInQuoted(d),
                Quoted(d) => Quoted(d),
                QuoteInQuoted(d) if b == b'"' => Quoted(d),
                QuoteInQuoted(d) if b == d || b == b'\n' => FieldStart(d),
                QuoteInQuoted(d) => Unquoted(d),
            };
        }
        matches!(self, Quoted(_))
    }
}

/// Parses `bytes` (about `rows` records) into one batch of `schema`.
fn decode(
    options: &FsOptions,
    schema: &SchemaRef,
    bytes: &[u8],
    rows: usize,
) -> std::result::Result<RecordBatch, ArrowError> {
    let csv_delimiter = match options.format {
        Format::Json => None,
        Format::Csv | Format::Parquet => Some(options.delimiter),
    };
    crate::text::decode_records(schema, bytes, rows, csv_delimiter)
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
        if chunk.oversized.contains(&line) {
            if options.ignore_parse_errors {
                metrics.add_malformed(1);
                continue;
            }
            return Err(EngineError::Execution(format!(
                "malformed {} record in file '{}' at line {line}: the line is longer than \
                 {MAX_LINE_BYTES} bytes",
                options.format.label(),
                path.display(),
            )));
        }
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

/// Opens a Parquet file, reading only the table's columns (found by name),
/// from row `skip` on.
fn open_parquet(file: File, path: &Path, schema: &SchemaRef, skip: u64) -> Result<FileReader> {
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
        let file_type = file_schema.field(index).data_type();
        if !implicit_cast(file_type, field.data_type()) {
            return Err(EngineError::Execution(format!(
                "Parquet file '{}': column '{}' is {} in the file but {} in the table, and \
                 {} does not convert to {} implicitly; declare the column as {}, or read it \
                 as it is and CAST it in the query",
                path.display(),
                field.name(),
                sql_type(file_type),
                sql_type(field.data_type()),
                sql_type(file_type),
                sql_type(field.data_type()),
                sql_type(file_type),
            )));
        }
        indices.push(index);
        columns.push(file_schema.field(index).name().clone());
    }
    let total = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    if skip > total {
        return Err(EngineError::Connector(format!(
            "cannot resume reading Parquet file '{}' after row {skip}: it has only {total} rows \
             now (was it rewritten since the checkpoint?)",
            path.display()
        )));
    }
    let skip_rows = usize::try_from(skip).map_err(|_| {
        EngineError::Connector(format!(
            "cannot skip {skip} rows of '{}' on this platform",
            path.display()
        ))
    })?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let mut builder = builder.with_projection(mask).with_batch_size(CHUNK_LINES);
    if skip_rows > 0 {
        builder = builder.with_offset(skip_rows);
    }
    let reader = builder.build().map_err(not_parquet)?;
    Ok(FileReader::Parquet {
        reader,
        columns,
        rows: skip,
    })
}

/// True when a Parquet column of type `from` may be read as `to` without
/// a CAST: the same type, or one of the widenings Flink applies implicitly
/// (a narrower integer to a wider one or to DOUBLE, FLOAT to DOUBLE, any
/// string encoding to STRING, a timestamp of another precision, a DATE to
/// TIMESTAMP, DECIMAL to DOUBLE, which is how DECIMAL columns are read), and
/// a dictionary-encoded column whose values widen so. None of them makes a
/// value of another meaning, though a large BIGINT or DECIMAL read as DOUBLE
/// loses digits, as in Flink; a narrowing (BIGINT to INT) or a parse
/// (STRING to DOUBLE) needs an explicit CAST.
fn implicit_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let int_width = |t: &DataType| match t {
        Int8 => Some((8, true)),
        Int16 => Some((16, true)),
        Int32 => Some((32, true)),
        Int64 => Some((64, true)),
        UInt8 => Some((8, false)),
        UInt16 => Some((16, false)),
        UInt32 => Some((32, false)),
        UInt64 => Some((64, false)),
        _ => None,
    };
    if from == to {
        return true;
    }
    match (from, to) {
        (f, t) if int_width(f).is_some() && int_width(t).is_some() => {
            let ((fw, fs), (tw, ts)) = (
                int_width(f).unwrap_or_default(),
                int_width(t).unwrap_or_default(),
            );
            // Signed to signed (or unsigned to unsigned) when no narrower;
            // unsigned to signed only when strictly wider.
            (fs == ts && fw <= tw) || (!fs && ts && fw < tw)
        }
        (f, Float64) if int_width(f).is_some() => true,
        (Float16 | Float32, Float64) | (Float16, Float32) => true,
        (Decimal128(..) | Decimal256(..), Float64) => true,
        (LargeUtf8 | Utf8View, Utf8) => true,
        (LargeBinary | BinaryView | FixedSizeBinary(_), Binary) => true,
        (Timestamp(..), Timestamp(..)) => true,
        (Date32 | Date64, Timestamp(..)) => true,
        (Date64, Date32) => true,
        (Dictionary(_, values), to) => implicit_cast(values, to),
        _ => false,
    }
}

/// The SQL name of a column type, for messages.
fn sql_type(t: &DataType) -> String {
    use DataType::*;
    match t {
        Boolean => "BOOLEAN".into(),
        Int8 => "TINYINT".into(),
        Int16 => "SMALLINT".into(),
        Int32 => "INT".into(),
        Int64 => "BIGINT".into(),
        UInt8 | UInt16 | UInt32 | UInt64 => format!("unsigned {t}"),
        Float16 | Float32 => "FLOAT".into(),
        Float64 => "DOUBLE".into(),
        Utf8 | LargeUtf8 | Utf8View => "STRING".into(),
        Binary | LargeBinary | BinaryView => "BYTES".into(),
        Date32 | Date64 => "DATE".into(),
        Timestamp(_, None) => "TIMESTAMP".into(),
        Timestamp(_, Some(_)) => "TIMESTAMP_LTZ".into(),
        Decimal128(p, s) | Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        other => other.to_string(),
    }
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
