//! Record formats of the Kafka connector: turning message values (and
//! keys) into rows and rows back into message bytes.
//!
//! Decoding works on a run of messages at once. The fast path parses all of
//! them as one input; only when that fails, or yields a different number of
//! rows than messages, is each message parsed on its own to find the bad
//! ones, so a clean stream pays no per-record overhead.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use runnel_engine::connector::TableDescriptor;
use runnel_engine::{EngineError, Result};

use crate::options::{bad_option, delimiter_option};

/// A message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One JSON object per message.
    Json,
    /// One CSV line per message.
    Csv(u8),
    /// The bytes as they are, into a single STRING or BYTES column.
    Raw,
}

impl Format {
    /// Reads the format option `key` (`'format'`, `'value.format'` or
    /// `'key.format'`).
    pub(super) fn from_option(table: &TableDescriptor, key: &str, value: &str) -> Result<Self> {
        match value {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv(delimiter_option(
                table,
                "csv.field-delimiter",
                b',',
            )?)),
            "raw" => Ok(Format::Raw),
            // Debezium envelopes are JSON; the table unwraps them
            // (`KafkaTable::debezium`).
            "debezium-json" if key != "key.format" => Ok(Format::Json),
            other => Err(bad_option(
                table,
                key,
                &format!("must be one of json, csv, raw, debezium-json; not '{other}'"),
            )),
        }
    }

    /// Checks that `schema` (the columns this format carries) fits the format.
    pub(super) fn check_schema(
        self,
        table: &TableDescriptor,
        key: &str,
        schema: &SchemaRef,
    ) -> Result<()> {
        if self == Format::Raw {
            let ok = schema.fields().len() == 1
                && matches!(
                    schema.field(0).data_type(),
                    DataType::Utf8 | DataType::Binary
                );
            if !ok {
                return Err(bad_option(
                    table,
                    key,
                    &format!(
                        "is 'raw', which needs exactly one STRING or BYTES column, but the format would carry {} column(s)",
                        schema.fields().len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Parses `records` into one batch of `schema`, all or nothing: an error
    /// when any record is bad or the row count differs from the record count.
    pub(super) fn decode_all(
        self,
        schema: &SchemaRef,
        records: &[&[u8]],
    ) -> std::result::Result<RecordBatch, String> {
        match self {
            Format::Raw => raw_column(schema, records),
            Format::Json => {
                // One decoder for the whole run, fed record by record: each
                // record must add exactly one complete row, so a record
                // holding two values, or half of one, is caught here.
                let mut d = arrow::json::ReaderBuilder::new(Arc::clone(schema))
                    .with_batch_size(records.len().max(1))
                    .build_decoder()
                    .map_err(|e| e.to_string())?;
                for (i, r) in records.iter().enumerate() {
                    crate::text::check_no_nul(r).map_err(|e| e.to_string())?;
                    let read = d.decode(r).map_err(|e| e.to_string())?;
                    if read != r.len() || d.has_partial_record() || d.len() != i + 1 {
                        return Err(format!("record {i} is not exactly one JSON value"));
                    }
                }
                let batch = d.flush().map_err(|e| e.to_string())?;
                let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)));
                crate::text::check_timestamps(&batch).map_err(|e| e.to_string())?;
                Ok(batch)
            }
            Format::Csv(_) => {
                let mut joined = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
                for r in records {
                    let line = trim_line_end(r);
                    if line.is_empty() {
                        return Err("a CSV record must not be empty".into());
                    }
                    joined.extend_from_slice(line);
                    joined.push(b'\n');
                }
                // One row per record: a line break outside quotes in a
                // record makes the counts differ, and the per-record path
                // then names the record.
                self.decode_text(schema, &joined, records.len())
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Parses one record into a one-row batch, or says why it cannot.
    pub(super) fn decode_one(
        self,
        schema: &SchemaRef,
        record: &[u8],
    ) -> std::result::Result<RecordBatch, String> {
        let batch = match self {
            Format::Raw => return raw_column(schema, &[record]),
            Format::Json | Format::Csv(_) => {
                let trimmed = trim_line_end(record);
                self.decode_text(schema, trimmed, 1).map_err(|e| {
                    // The CSV decoder numbers lines within our one-record input.
                    e.to_string().replace(" at line 0", "")
                })?
            }
        };
        match batch.num_rows() {
            1 => Ok(batch),
            0 => Err("the record is empty".into()),
            n => Err(format!("the record holds {n} values instead of one")),
        }
    }

    fn decode_text(
        self,
        schema: &SchemaRef,
        bytes: &[u8],
        rows: usize,
    ) -> std::result::Result<RecordBatch, ArrowError> {
        let csv_delimiter = match self {
            Format::Json => None,
            Format::Csv(delimiter) => Some(delimiter),
            Format::Raw => {
                return Err(ArrowError::ParseError(
                    "the raw format has no text decoder".into(),
                ))
            }
        };
        crate::text::decode_records(schema, bytes, rows, csv_delimiter)
    }

    /// Encodes every row of `batch` (whose columns are exactly what this
    /// format carries) as one message payload each.
    pub(super) fn encode(self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        match self {
            Format::Json => {
                let mut buf = Vec::new();
                {
                    let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
                    w.write(batch)?;
                    w.finish()?;
                }
                // JSON escapes line breaks inside strings, so lines are rows.
                let rows: Vec<Vec<u8>> = buf
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect();
                if rows.len() != batch.num_rows() {
                    return Err(EngineError::Internal(format!(
                        "JSON encoding gave {} lines for {} rows",
                        rows.len(),
                        batch.num_rows()
                    )));
                }
                Ok(rows)
            }
            Format::Csv(delimiter) => (0..batch.num_rows())
                .map(|i| {
                    let mut buf = Vec::new();
                    {
                        let mut w = arrow::csv::WriterBuilder::new()
                            .with_header(false)
                            .with_delimiter(delimiter)
                            .build(&mut buf);
                        w.write(&batch.slice(i, 1))?;
                    }
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    Ok(buf)
                })
                .collect(),
            Format::Raw => {
                let col = batch.column(0);
                let mut rows = Vec::with_capacity(batch.num_rows());
                if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
                    for i in 0..s.len() {
                        rows.push(s.is_valid(i).then(|| s.value(i).as_bytes().to_vec()));
                    }
                } else if let Some(b) = col.as_any().downcast_ref::<BinaryArray>() {
                    for i in 0..b.len() {
                        rows.push(b.is_valid(i).then(|| b.value(i).to_vec()));
                    }
                } else {
                    return Err(EngineError::Internal(
                        "the raw format needs a STRING or BYTES column".into(),
                    ));
                }
                // A NULL raw value is written as an empty payload.
                Ok(rows.into_iter().map(Option::unwrap_or_default).collect())
            }
        }
    }
}

/// Drops a trailing line break (producers often append one).
fn trim_line_end(r: &[u8]) -> &[u8] {
    let mut end = r.len();
    while end > 0 && (r[end - 1] == b'\n' || r[end - 1] == b'\r') {
        end -= 1;
    }
    &r[..end]
}

/// The raw format: each record is the single column's value.
fn raw_column(schema: &SchemaRef, records: &[&[u8]]) -> std::result::Result<RecordBatch, String> {
    let array: ArrayRef = match schema.field(0).data_type() {
        DataType::Utf8 => {
            let mut values = Vec::with_capacity(records.len());
            for r in records {
                values.push(
                    std::str::from_utf8(r)
                        .map_err(|e| format!("the record is not UTF-8 text: {e}"))?,
                );
            }
            Arc::new(StringArray::from(values))
        }
        _ => Arc::new(BinaryArray::from(records.to_vec())),
    };
    RecordBatch::try_new(Arc::clone(schema), vec![array]).map_err(|e| e.to_string())
}
