//! Grouping and partitioning keys.
//!
//! Key columns are encoded with arrow's row format, whose bytes compare in
//! the same order as the values and are equal exactly when the values are
//! (NULLs included, as SQL GROUP BY wants). The bytes are hashed with fixed
//! seeds, so every process routes a key to the same key group.

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use arrow::row::{RowConverter, Rows, SortField};

use crate::error::{EngineError, Result};

/// Encodes the key columns of batches into comparable, hashable bytes.
///
/// With no key columns (a global aggregate) every row gets the same key:
/// the encoder then converts a single all-NULL column, and decoding yields
/// no columns.
#[derive(Debug)]
pub struct KeyEncoder {
    columns: Vec<usize>,
    converter: RowConverter,
}

impl KeyEncoder {
    /// An encoder for `columns` of batches with schema `schema`.
    pub fn new(schema: &Schema, columns: &[usize]) -> Result<Self> {
        let fields = columns
            .iter()
            .map(|&c| {
                schema
                    .fields()
                    .get(c)
                    .map(|f| SortField::new(f.data_type().clone()))
                    .ok_or_else(|| {
                        EngineError::Plan(format!("key column {c} is out of range for {schema}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let fields = if fields.is_empty() {
            vec![SortField::new(DataType::Null)]
        } else {
            fields
        };
        Ok(Self {
            columns: columns.to_vec(),
            converter: RowConverter::new(fields)?,
        })
    }

    /// The key columns' indices.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Encodes the keys of every row of `batch`.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        let cols: Vec<ArrayRef> = if self.columns.is_empty() {
            vec![new_null_array(&DataType::Null, batch.num_rows())]
        } else {
            self.columns
                .iter()
                .map(|&c| batch.column(c).clone())
                .collect()
        };
        Ok(self.converter.convert_columns(&cols)?)
    }

    /// Decodes encoded keys back into columns (for emitting group keys).
    pub fn decode<'a>(
        &self,
        rows: impl IntoIterator<Item = arrow::row::Row<'a>>,
    ) -> Result<Vec<ArrayRef>> {
        if self.columns.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.converter.convert_rows(rows)?)
    }

    /// An empty row buffer to keep owned keys in.
    pub fn empty_rows(&self) -> Rows {
        self.converter.empty_rows(0, 0)
    }

    /// The converter, for parsing stored key bytes back into rows.
    pub fn converter(&self) -> &RowConverter {
        &self.converter
    }
}

/// Hash of encoded key bytes, stable across processes and runs.
pub fn hash_key(bytes: &[u8]) -> u64 {
    // Fixed seeds: partitioning and key groups must agree between subtasks,
    // restarts and (later) processes.
    let state = ahash::RandomState::with_seeds(0x5275_6e6e, 0x656c_2d6b, 0x6579_2d68, 0x6173_6821);
    state.hash_one(bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn no_key_columns_give_every_row_the_same_key() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )?;
        let enc = KeyEncoder::new(&schema, &[])?;
        let rows = enc.encode(&batch)?;
        assert_eq!(rows.num_rows(), 3);
        assert_eq!(rows.row(0), rows.row(2));
        assert!(enc.decode([rows.row(0)])?.is_empty());
        Ok(())
    }

    #[test]
    fn equal_keys_encode_equal_and_round_trip() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None, Some("a"), None])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            ],
        )?;
        let enc = KeyEncoder::new(&schema, &[0])?;
        let rows = enc.encode(&batch)?;
        assert_eq!(rows.row(0), rows.row(2));
        assert_eq!(rows.row(1), rows.row(3), "NULL keys group together");
        assert_ne!(rows.row(0), rows.row(1));
        assert_eq!(
            hash_key(rows.row(0).as_ref()),
            hash_key(rows.row(2).as_ref())
        );
        let back = enc.decode([rows.row(0), rows.row(1)])?;
        let back = back[0]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or(EngineError::Internal("type".into()))?;
        assert_eq!(back.value(0), "a");
        assert!(back.is_null(1));
        Ok(())
    }
}
