//! The column types a Parquet file may hold for a table's column, and
//! putting a Parquet batch's columns in the table's order and types.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;

/// True when a Parquet column of type `from` may be read as `to` without
/// a CAST: the same type, or one of the widenings Flink applies implicitly
/// (a narrower integer to a wider one or to DOUBLE, FLOAT to DOUBLE, any
/// string encoding to STRING, a timestamp of another precision, a DATE to
/// TIMESTAMP, DECIMAL to DOUBLE), and a dictionary-encoded column whose
/// values widen so. None of them makes a value of another meaning, though
/// a large BIGINT or DECIMAL read as DOUBLE loses digits, as in Flink; a
/// DECIMAL column read as a DECIMAL of the same type is exact; a
/// narrowing (BIGINT to INT) or a parse
/// (STRING to DOUBLE) needs an explicit CAST.
pub(super) fn implicit_cast(from: &DataType, to: &DataType) -> bool {
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
pub(super) fn sql_type(t: &DataType) -> String {
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
pub(super) fn conform_parquet(
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
