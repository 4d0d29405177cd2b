//! Upsert mode of the Delta sink: a table with a PRIMARY KEY holds one row
//! per key, the newest the query produced, and a delete removes it.
//!
//! Between barriers each subtask keeps its changes (rows with a "deleted"
//! flag: `+I`/`+U` are upserts, `-D` and `-U` delete; the `+U` that follows
//! a `-U` of the same key replaces it) and folds them now and then to the
//! last change per key ([`ChangeBuffer`]). Folding keeps order per key,
//! which holds because every row of a key reaches the same subtask in the
//! order it was produced. At a barrier the folded changes are
//! staged in the checkpoint like the file actions of the append mode (Arrow
//! IPC behind a one-byte tag). When the checkpoint completes, the committer
//! folds the changes of every subtask and merges them into the table as one
//! Delta version ([`merge`]): each data file that holds a changed key is
//! rewritten without the changed keys (a `remove` of the old file, an `add`
//! of the rest), the upserted rows are written as new files, and the
//! version carries the same `txn` action as an append, so a merge repeated
//! after a crash is recognised and skipped.
//!
//! Finding the files that hold a changed key reads the key columns of each
//! file; a file whose statistics (min/max of a single integer key column)
//! exclude every changed key is not read. See docs/delta.md for the cost.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray,
};
use arrow::compute::{cast, filter_record_batch, interleave};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, SortField};
use deltalake::kernel::{Action, Remove};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, Path};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use runnel_engine::{EngineError, Result};

use super::{block_on, DeltaOptions};

/// The column of a change batch that says the row's key was deleted.
pub(super) const DELETED: &str = "__runnel_deleted";

/// First byte of a staged entry that holds changes (an entry of file
/// actions is JSON and starts with `[`).
pub(super) const TAG: u8 = b'U';

/// Rows buffered before the first fold of a barrier interval.
const FOLD_AT_LEAST: usize = 64 * 1024;

/// The schema of the change batches of a table with columns `table`.
pub(super) fn change_schema(table: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(DELETED, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// The changes of one subtask since its last barrier.
pub(super) struct ChangeBuffer {
    key: Vec<String>,
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Rows left by the last fold: the buffer folds again when it has
    /// twice as many, so memory stays within a small factor of the number
    /// of distinct keys changed.
    folded_rows: usize,
}

impl ChangeBuffer {
    pub(super) fn new(key: Vec<String>) -> Self {
        Self {
            key,
            batches: Vec::new(),
            rows: 0,
            folded_rows: 0,
        }
    }

    /// Adds changes (a batch of [`change_schema`]).
    pub(super) fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows();
        self.batches.push(batch);
        if self.rows >= FOLD_AT_LEAST.max(2 * self.folded_rows) {
            let folded = fold(&self.batches, &self.key)?;
            self.batches.clear();
            self.rows = 0;
            self.folded_rows = 0;
            if let Some(b) = folded {
                self.rows = b.num_rows();
                self.folded_rows = b.num_rows();
                self.batches.push(b);
            }
        }
        Ok(())
    }

    /// The last change of each key since the last call.
    pub(super) fn take(&mut self) -> Result<Option<RecordBatch>> {
        let folded = fold(&self.batches, &self.key)?;
        self.batches.clear();
        self.rows = 0;
        self.folded_rows = 0;
        Ok(folded)
    }
}

/// Indices of the `key` columns in `schema`.
fn key_indices(schema: &Schema, key: &[String]) -> Result<Vec<usize>> {
    key.iter()
        .map(|k| {
            schema.index_of(k).map_err(|_| {
                EngineError::Plan(format!(
                    "PRIMARY KEY column '{k}' is not a column of the Delta table"
                ))
            })
        })
        .collect()
}

fn converter(schema: &Schema, key: &[usize]) -> Result<RowConverter> {
    Ok(RowConverter::new(
        key.iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )?)
}

/// The last row of each key in `batches` (oldest first, all of one
/// schema), in the order of their last appearance; `None` when there are
/// no rows.
pub(super) fn fold(batches: &[RecordBatch], key: &[String]) -> Result<Option<RecordBatch>> {
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let schema = first.schema();
    let key = key_indices(&schema, key)?;
    let converter = converter(&schema, &key)?;
    let mut last: HashMap<Box<[u8]>, (usize, usize)> = HashMap::new();
    for (b, batch) in batches.iter().enumerate() {
        let columns: Vec<ArrayRef> = key.iter().map(|&i| Arc::clone(batch.column(i))).collect();
        let rows = converter.convert_columns(&columns)?;
        for r in 0..batch.num_rows() {
            last.insert(rows.row(r).as_ref().into(), (b, r));
        }
    }
    let mut picks: Vec<(usize, usize)> = last.into_values().collect();
    picks.sort_unstable();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            Ok(interleave(&arrays, &picks)?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(Some(RecordBatch::try_new(schema, columns)?))
}

/// A staged entry holding `changes`.
pub(super) fn encode(changes: &RecordBatch) -> Result<Vec<u8>> {
    let mut bytes = vec![TAG];
    {
        let mut w = StreamWriter::try_new(&mut bytes, &changes.schema())?;
        w.write(changes)?;
        w.finish()?;
    }
    Ok(bytes)
}

/// The changes of a staged entry written by [`encode`].
pub(super) fn decode(bytes: &[u8]) -> Result<RecordBatch> {
    let body = bytes
        .strip_prefix(&[TAG])
        .ok_or_else(|| EngineError::Internal("not a staged entry of changes".into()))?;
    let mut reader = StreamReader::try_new(body, None)?;
    let first = reader
        .next()
        .transpose()?
        .ok_or_else(|| EngineError::Internal("a staged entry of changes is empty".into()))?;
    let mut batches = vec![first];
    for b in reader {
        batches.push(b?);
    }
    let schema = batches[0].schema();
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// A data file of the table's current snapshot.
struct TableFile {
    path: Path,
    partition_values: HashMap<String, Option<String>>,
    stats: Option<String>,
    remove: Remove,
}

/// The actions that merge `changes` (the last change per key, of
/// [`change_schema`]) into `table`: `remove` for each file holding a
/// changed key, `add` for what is left of those files and for the upserted
/// rows. The new files are written here.
pub(super) fn merge(
    options: &DeltaOptions,
    table: &DeltaTable,
    key: &[String],
    changes: &RecordBatch,
) -> Result<Vec<Action>> {
    let change_schema = changes.schema();
    let deleted_at = change_schema
        .index_of(DELETED)
        .map_err(|_| EngineError::Internal("change batch without its deleted flag".into()))?;
    // The table's columns as the sink writes them.
    let target: SchemaRef = Arc::new(Schema::new(
        change_schema
            .fields()
            .iter()
            .take(deleted_at)
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ));
    let key_at = key_indices(&target, key)?;
    let key_schema = Arc::new(target.project(&key_at)?);
    let converter = converter(&key_schema, &(0..key_at.len()).collect::<Vec<_>>())?;
    let changed_keys = converter.convert_columns(
        &key_at
            .iter()
            .map(|&i| Arc::clone(changes.column(i)))
            .collect::<Vec<_>>(),
    )?;
    let changed: HashSet<&[u8]> = changed_keys.iter().map(|r| r.data()).collect();
    // Sorted integer keys, for skipping files by their statistics.
    let int_keys: Option<(String, Vec<i64>)> = match key_at.as_slice() {
        [i] => int_values(changes.column(*i)).map(|mut v| {
            v.sort_unstable();
            (target.field(*i).name().clone(), v)
        }),
        _ => None,
    };

    let snapshot = table.snapshot().map_err(|e| options.error("read", e))?;
    let partition_columns: Vec<String> = snapshot.metadata().partition_columns().to_vec();
    let mut files = Vec::new();
    for f in snapshot.log_data().iter() {
        if f.deletion_vector_descriptor().is_some() {
            return Err(options.problem(
                "merge into",
                format!(
                    "file '{}' has a deletion vector, which is not supported",
                    f.path()
                ),
            ));
        }
        files.push(TableFile {
            path: f.object_store_path(),
            partition_values: f.partition_values_map(),
            stats: f.stats(),
            remove: f.remove_action(true),
        });
    }

    let mut writer = RecordBatchWriter::for_table(table)
        .map_err(|e| options.error("write to", e))?
        .with_target_file_size(options.target_file_size);
    let mut actions = Vec::new();
    for file in files {
        if let (Some((name, keys)), Some(stats)) = (&int_keys, &file.stats) {
            if let Some((lo, hi)) = stats_range(stats, name) {
                let from = keys.partition_point(|&k| k < lo);
                if keys.get(from).is_none_or(|&k| k > hi) {
                    continue;
                }
            }
        }
        let keys_of_file = read_file(options, table, &file, &key_schema, &partition_columns)?;
        let mut hit = false;
        for batch in &keys_of_file {
            let rows = converter.convert_columns(batch.columns())?;
            if rows.iter().any(|r| changed.contains(r.data())) {
                hit = true;
                break;
            }
        }
        if !hit {
            continue;
        }
        for batch in read_file(options, table, &file, &target, &partition_columns)? {
            let columns: Vec<ArrayRef> = key_at
                .iter()
                .map(|&i| Arc::clone(batch.column(i)))
                .collect();
            let rows = converter.convert_columns(&columns)?;
            let keep: BooleanArray = rows
                .iter()
                .map(|r| Some(!changed.contains(r.data())))
                .collect();
            let kept = filter_record_batch(&batch, &keep)?;
            if kept.num_rows() > 0 {
                block_on(writer.write(kept)).map_err(|e| options.error("write to", e))?;
            }
        }
        actions.push(Action::Remove(file.remove));
    }
    let deleted = changes.column(deleted_at).as_boolean();
    let upserted = filter_record_batch(
        &RecordBatch::try_new(
            Arc::clone(&target),
            changes.columns()[..deleted_at].to_vec(),
        )?,
        &arrow::compute::not(deleted)?,
    )?;
    if upserted.num_rows() > 0 {
        block_on(writer.write(upserted)).map_err(|e| options.error("write to", e))?;
    }
    let adds = block_on(writer.flush()).map_err(|e| options.error("write files of", e))?;
    actions.extend(adds.into_iter().map(Action::Add));
    Ok(actions)
}

/// The values of an integer column, `None` for other types or NULLs.
fn int_values(column: &ArrayRef) -> Option<Vec<i64>> {
    if !column.data_type().is_integer() || column.null_count() > 0 {
        return None;
    }
    let wide = cast(column, &DataType::Int64).ok()?;
    Some(
        wide.as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec(),
    )
}

/// The min and max of integer column `name` in a file's statistics.
fn stats_range(stats: &str, name: &str) -> Option<(i64, i64)> {
    let v: serde_json::Value = serde_json::from_str(stats).ok()?;
    let lo = v.get("minValues")?.get(name)?.as_i64()?;
    let hi = v.get("maxValues")?.get(name)?.as_i64()?;
    Some((lo, hi))
}

/// The rows of `file` with the columns of `schema` (partition columns from
/// the file's partition values, columns the file lacks as NULLs).
fn read_file(
    options: &DeltaOptions,
    table: &DeltaTable,
    file: &TableFile,
    schema: &SchemaRef,
    partition_columns: &[String],
) -> Result<Vec<RecordBatch>> {
    let store = table.object_store();
    let path = file.path.clone();
    let bytes = block_on(async move { store.get(&path).await?.bytes().await })
        .map_err(|e| options.error("read", format!("file '{}': {e}", file.path)))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| options.error("read", format!("file '{}': {e}", file.path)))?;
    let wanted: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !partition_columns.iter().any(|p| p == n))
        .collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| options.error("read", format!("file '{}': {e}", file.path)))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch =
            batch.map_err(|e| options.error("read", format!("file '{}': {e}", file.path)))?;
        let rows = batch.num_rows();
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                let column: ArrayRef = if partition_columns.contains(field.name()) {
                    let value = file.partition_values.get(field.name()).cloned().flatten();
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
                cast(&column, field.data_type()).map_err(|e| {
                    options.problem(
                        "merge into",
                        format!(
                            "column '{}' of file '{}' ({}) cannot be read as {}: {e}",
                            field.name(),
                            file.path,
                            column.data_type(),
                            field.data_type()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(RecordBatch::try_new(Arc::clone(schema), columns)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn changes(ids: &[i64], values: &[&str], deleted: &[bool]) -> RecordBatch {
        let schema = change_schema(&Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(values.to_vec())),
                Arc::new(BooleanArray::from(deleted.to_vec())),
            ],
        )
        .expect("valid batch")
    }

    fn rows(b: &RecordBatch) -> Vec<(i64, String, bool)> {
        let mut out: Vec<_> = (0..b.num_rows())
            .map(|r| {
                (
                    b.column(0)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .value(r),
                    b.column(1).as_string::<i32>().value(r).to_string(),
                    b.column(2).as_boolean().value(r),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn fold_keeps_the_last_change_of_each_key() {
        let key = vec!["id".to_string()];
        let a = changes(&[1, 2, 1], &["a", "b", "c"], &[false, false, false]);
        let b = changes(&[2, 3, 1], &["b", "d", "c"], &[true, false, false]);
        let folded = fold(&[a, b], &key).expect("folds").expect("rows");
        assert_eq!(
            rows(&folded),
            vec![
                (1, "c".into(), false),
                (2, "b".into(), true),
                (3, "d".into(), false)
            ]
        );
        assert!(fold(&[], &key).expect("folds").is_none());
    }

    #[test]
    fn the_buffer_folds_as_it_grows_and_keeps_the_last_change() {
        let mut buffer = ChangeBuffer::new(vec!["id".to_string()]);
        // Three rounds of every key of 0..FOLD_AT_LEAST: the buffer folds
        // in between, so it never holds much more than the distinct keys.
        let n = FOLD_AT_LEAST as i64;
        for round in 0..3 {
            let ids: Vec<i64> = (0..n).collect();
            let values: Vec<String> = ids.iter().map(|i| format!("{i}-{round}")).collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            buffer
                .push(changes(&ids, &refs, &vec![false; ids.len()]))
                .expect("buffered");
            assert!(buffer.rows <= 2 * FOLD_AT_LEAST, "{}", buffer.rows);
        }
        buffer
            .push(changes(&[5], &["gone"], &[true]))
            .expect("buffered");
        let out = rows(&buffer.take().expect("folds").expect("rows"));
        assert_eq!(out.len(), FOLD_AT_LEAST);
        assert_eq!(out[0], (0, "0-2".into(), false));
        assert_eq!(out[5], (5, "gone".into(), true));
        assert!(buffer.take().expect("folds").is_none());
    }

    #[test]
    fn staged_changes_round_trip() {
        let c = changes(&[7, 8], &["x", "y"], &[false, true]);
        let bytes = encode(&c).expect("buffered");
        assert_eq!(bytes[0], TAG);
        assert_eq!(rows(&decode(&bytes).expect("decodes")), rows(&c));
        assert!(decode(b"[]").is_err());
    }

    #[test]
    fn statistics_skip_files_only_for_integer_ranges() {
        let stats =
            r#"{"numRecords":3,"minValues":{"id":10,"v":"a"},"maxValues":{"id":20,"v":"z"}}"#;
        assert_eq!(stats_range(stats, "id"), Some((10, 20)));
        assert_eq!(stats_range(stats, "v"), None);
        assert_eq!(stats_range("{}", "id"), None);
    }
}
