//! Reading JSON-lines and CSV splits in chunks of whole records: line
//! boundaries, CSV records that run over several lines inside quotes, and
//! lines too long to keep (cut and counted as malformed).

use std::io::BufRead;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use runnel_engine::operator::OperatorMetrics;
use runnel_engine::{EngineError, Result};

use super::{Format, FsOptions};

/// Records per chunk (and so per batch) at most.
pub(super) const CHUNK_LINES: usize = 4096;
/// Bytes per chunk at most, so that files of huge lines stay bounded too.
pub(super) const CHUNK_BYTES: usize = 8 << 20;

/// Records read for one batch: their bytes, and each record's byte range
/// and 1-based first line number counted from the split's start (a CSV
/// record runs over several lines when a quoted value holds line breaks).
#[derive(Default)]
pub(super) struct Chunk {
    pub(super) bytes: Vec<u8>,
    pub(super) lines: Vec<(usize, usize, u64)>,
    /// Lines longer than [`MAX_LINE_BYTES`]: kept only up to that length.
    pub(super) oversized: Vec<u64>,
}

impl Chunk {
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.lines.clear();
        self.oversized.clear();
    }
}

/// Reads the next chunk of non-blank lines into `chunk` (left empty at the
/// end of the split). `offset` and `line` advance past every line consumed,
/// blank or not; `header` says the split starts the file, whose first line
/// may be a CSV header.
pub(super) fn read_chunk(
    input: &mut impl BufRead,
    offset: &mut u64,
    line: &mut u64,
    options: &FsOptions,
    header: bool,
    chunk: &mut Chunk,
) -> std::io::Result<()> {
    let csv = options.format == Format::Csv;
    while chunk.lines.len() < CHUNK_LINES && chunk.bytes.len() < CHUNK_BYTES {
        if !csv && take_whole_lines(input, offset, line, chunk)? > 0 {
            continue;
        }
        // One line the careful way: it is not all buffered yet, too long,
        // the last one without a line break, or a CSV record.
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
        let skip_header = header && first_line == 1 && csv && options.ignore_first_line;
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
    Ok(())
}

/// JSON lines: moves the whole lines that the reader holds buffered into
/// the chunk with one copy, up to the chunk's limits. Blank lines stay in
/// the bytes (decoders skip them) but are not records. Returns the bytes
/// taken: 0 when no whole line of at most [`MAX_LINE_BYTES`] is buffered.
fn take_whole_lines(
    input: &mut impl BufRead,
    offset: &mut u64,
    line: &mut u64,
    chunk: &mut Chunk,
) -> std::io::Result<usize> {
    let available = input.fill_buf()?;
    let base = chunk.bytes.len();
    let mut end = 0;
    for nl in memchr::memchr_iter(b'\n', available) {
        if chunk.lines.len() >= CHUNK_LINES
            || base + end >= CHUNK_BYTES
            || nl + 1 - end > MAX_LINE_BYTES
        {
            break;
        }
        let text = &available[end..=nl];
        *line += 1;
        if !text.iter().all(u8::is_ascii_whitespace) {
            chunk.lines.push((base + end, base + nl + 1, *line));
        }
        end = nl + 1;
    }
    chunk.bytes.extend_from_slice(&available[..end]);
    input.consume(end);
    *offset += end as u64;
    Ok(end)
}

/// The longest CSV record that may run over several lines.
pub(super) const MAX_RECORD_BYTES: usize = 1 << 20;

/// The longest line read as a record; a longer one is a malformed record
/// (so that a file without line breaks cannot take all memory).
#[cfg(not(test))]
pub(super) const MAX_LINE_BYTES: usize = 64 << 20;
#[cfg(test)]
pub(super) const MAX_LINE_BYTES: usize = 64 << 10;

/// Appends one line (with its line break) to `out`, but no more than
/// [`MAX_LINE_BYTES`] of it; the rest of a longer line is read and
/// dropped. The bytes consumed, and whether the line was cut.
fn read_line_capped(input: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
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
        let (take, done) = match memchr::memchr(b'\n', available) {
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
    let decoded = crate::text::decode_records(
        &options.wire_schema(schema),
        bytes,
        rows,
        options.csv_delimiter(),
    )?;
    options.finish(schema, decoded)
}

/// Parses a chunk line by line: fails on the first bad line, or skips and
/// counts bad lines when the table ignores parse errors. `before` is the
/// number of lines in the file before the split's start.
pub(super) fn decode_lines(
    chunk: &Chunk,
    before: u64,
    options: &FsOptions,
    schema: &SchemaRef,
    path: &Path,
    metrics: &OperatorMetrics,
) -> Result<RecordBatch> {
    let mut good = Vec::new();
    for &(start, end, in_split) in &chunk.lines {
        let line = before + in_split;
        if chunk.oversized.contains(&in_split) {
            if options.ignore_parse_errors {
                metrics.add_malformed(1);
                continue;
            }
            return Err(EngineError::Execution(format!(
                "malformed {} record in file '{}' at line {line}: the line is longer than \
                 {MAX_LINE_BYTES} bytes",
                options.label(),
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
                    options.label(),
                    path.display()
                )));
            }
        }
    }
    Ok(concat_batches(&options.output_schema(schema), &good)?)
}
