//! Decoding JSON and CSV text into Arrow batches, shared by the connectors
//! that read text records (files, Kafka messages).
//!
//! What a record is, for every reader and writer of text:
//!
//! * **JSON lines**: one JSON object per line. Two objects on one line, or
//!   one object spread over several lines, is a malformed record.
//! * **CSV**: one record per line, except that a double-quoted value may
//!   hold line breaks (RFC 4180), as the CSV sink writes them.
//! * **Both**: a NUL byte (0x00) anywhere makes the record malformed, and so
//!   does a timestamp that no calendar date matches (a number of
//!   milliseconds such as 2^63 - 1): it is caught where it enters rather
//!   than failing a sink later.
//!
//! [`decode_records`] checks all of this for a run of records.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

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

/// Parses `bytes` (about `rows` records) into one batch of `schema`: JSON
/// values, or CSV lines (no header) when `csv_delimiter` is given.
pub(crate) fn decode_text(
    schema: &SchemaRef,
    bytes: &[u8],
    rows: usize,
    csv_delimiter: Option<u8>,
) -> std::result::Result<RecordBatch, ArrowError> {
    let batch_size = rows.max(1);
    let mut decoder: Box<dyn RecordDecoder> = match csv_delimiter {
        None => Box::new(
            arrow::json::ReaderBuilder::new(Arc::clone(schema))
                .with_batch_size(batch_size)
                .build_decoder()?,
        ),
        Some(delimiter) => Box::new(
            arrow::csv::ReaderBuilder::new(Arc::clone(schema))
                .with_header(false)
                .with_delimiter(delimiter)
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

/// Parses `bytes`, which hold exactly `records` records, into a batch with
/// one row per record, checking what [the module docs](self) say a record
/// is. An error means at least one record is malformed; callers then parse
/// record by record to find it.
pub(crate) fn decode_records(
    schema: &SchemaRef,
    bytes: &[u8],
    records: usize,
    csv_delimiter: Option<u8>,
) -> std::result::Result<RecordBatch, ArrowError> {
    check_no_nul(bytes)?;
    if csv_delimiter.is_none() {
        check_json_lines(bytes)?;
    }
    let batch = decode_text(schema, bytes, records, csv_delimiter)?;
    if batch.num_rows() != records {
        let what = match csv_delimiter {
            None if records == 1 && batch.num_rows() > 1 => format!(
                "the line holds {} JSON values; JSON lines take one object per line",
                batch.num_rows()
            ),
            None => format!(
                "{} JSON values in {records} lines; JSON lines take exactly one object per line \
                 (not several, and not one spread over several lines)",
                batch.num_rows()
            ),
            Some(_) => format!(
                "{} CSV records where {records} were expected",
                batch.num_rows()
            ),
        };
        return Err(ArrowError::ParseError(what));
    }
    check_timestamps(&batch)?;
    Ok(batch)
}

/// Fails unless every line holds exactly one whole JSON value: no line
/// with two, none that a value spills over from or into.
fn check_json_lines(bytes: &[u8]) -> std::result::Result<(), ArrowError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if depth > 0 || in_string {
            return Err(ArrowError::ParseError(format!(
                "a JSON value runs over several lines (from line {i} of the input on); JSON \
                 lines take one whole object per line"
            )));
        }
        let mut values = 0usize;
        for &b in line {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    if depth == 0 {
                        values += 1;
                    }
                    depth += 1;
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if values > 1 {
            return Err(ArrowError::ParseError(format!(
                "the line holds {values} JSON values; JSON lines take one object per line"
            )));
        }
    }
    if depth > 0 || in_string {
        return Err(ArrowError::ParseError(
            "a JSON value is not closed at the end of its line; JSON lines take one whole \
             object per line"
                .into(),
        ));
    }
    Ok(())
}

/// Fails on a NUL byte.
pub(crate) fn check_no_nul(bytes: &[u8]) -> std::result::Result<(), ArrowError> {
    match bytes.iter().position(|b| *b == 0) {
        None => Ok(()),
        Some(at) => Err(ArrowError::ParseError(format!(
            "a NUL byte (0x00) at byte {at} of the record; text records may not hold NUL bytes"
        ))),
    }
}

/// Fails on a timestamp or date no calendar date matches.
pub(crate) fn check_timestamps(batch: &RecordBatch) -> std::result::Result<(), ArrowError> {
    use arrow::array::AsArray;
    use arrow::datatypes::{
        DataType, Date32Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
        TimestampSecondType,
    };
    for (i, column) in batch.columns().iter().enumerate() {
        let name = batch.schema_ref().field(i).name().clone();
        let bad = |value: i64| {
            ArrowError::ParseError(format!(
                "column '{name}': {value} is outside the range of timestamps"
            ))
        };
        let check = |values: &mut dyn Iterator<Item = Option<i64>>,
                     valid: &dyn Fn(i64) -> bool|
         -> std::result::Result<(), ArrowError> {
            for v in values.flatten() {
                if !valid(v) {
                    return Err(bad(v));
                }
            }
            Ok(())
        };
        match column.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => check(
                &mut column.as_primitive::<TimestampSecondType>().iter(),
                &|v| chrono::DateTime::from_timestamp(v, 0).is_some(),
            )?,
            DataType::Timestamp(TimeUnit::Millisecond, _) => check(
                &mut column.as_primitive::<TimestampMillisecondType>().iter(),
                &|v| chrono::DateTime::from_timestamp_millis(v).is_some(),
            )?,
            DataType::Timestamp(TimeUnit::Microsecond, _) => check(
                &mut column.as_primitive::<TimestampMicrosecondType>().iter(),
                &|v| chrono::DateTime::from_timestamp_micros(v).is_some(),
            )?,
            DataType::Date32 => check(
                &mut column
                    .as_primitive::<Date32Type>()
                    .iter()
                    .map(|d| d.map(i64::from)),
                &|d| {
                    chrono::NaiveDate::from_num_days_from_ce_opt(
                        i32::try_from(d + 719_163).unwrap_or(i32::MAX),
                    )
                    .is_some()
                },
            )?,
            // Every i64 of nanoseconds is a date (1677-2262).
            _ => {}
        }
    }
    Ok(())
}
