//! Decoding JSON and CSV text into Arrow batches, shared by the connectors
//! that read text records (files, Kafka messages).

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
