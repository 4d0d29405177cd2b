//! `print`: writes every row to standard output (or error) the way Flink's
//! print connector does, `+I[v1, v2, ...]`, so that examples and tests read
//! the same as their Flink counterparts.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use runnel_engine::connector::{Connector, SourceTable, TableDescriptor};
use runnel_engine::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use runnel_engine::types::{is_updating, row_kinds, RowKind};
use runnel_engine::{EngineError, Result};

/// The `print` connector (sink only; accepts updating streams).
#[derive(Debug, Default, Clone, Copy)]
pub struct PrintConnector;

impl Connector for PrintConnector {
    fn name(&self) -> &'static str {
        "print"
    }

    fn options(&self) -> &'static [&'static str] {
        &["print-identifier", "standard-error"]
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        Err(EngineError::Plan(format!(
            "connector 'print' of table '{}' can only be written, not read",
            table.name
        )))
    }

    fn sink(&self, table: &TableDescriptor, _updating: bool) -> Result<OperatorFactory> {
        let identifier = table.option("print-identifier").unwrap_or("").to_string();
        let to_stderr = table.bool_option("standard-error", false)?;
        Ok(Arc::new(move |task: &TaskInfo| {
            Ok(Box::new(PrintSink {
                prefix: line_prefix(&identifier, task),
                to_stderr,
            }) as Box<dyn Operator>)
        }))
    }
}

/// Flink's prefix: `id> `, or `id:n> ` (`n> ` without an id) when the sink
/// runs in more than one subtask, `n` counting from 1.
fn line_prefix(identifier: &str, task: &TaskInfo) -> String {
    let mut prefix = identifier.to_string();
    if task.parallelism > 1 {
        if !prefix.is_empty() {
            prefix.push(':');
        }
        prefix.push_str(&(task.subtask + 1).to_string());
    }
    if !prefix.is_empty() {
        prefix.push_str("> ");
    }
    prefix
}

/// Formats each row of `batch` as `+I[v1, v2, ...]`: the row kind comes from
/// the changelog column when the batch has one (which is then not printed),
/// NULL prints as `NULL`.
pub fn format_rows(batch: &RecordBatch) -> Result<Vec<String>> {
    let (kinds, values) = if is_updating(batch.schema_ref()) {
        (Some(row_kinds(batch)?), batch.num_columns() - 1)
    } else {
        (None, batch.num_columns())
    };
    let options = FormatOptions::new().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .take(values)
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut lines = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let kind = kinds
            .as_ref()
            .and_then(|k| k.get(row).copied())
            .unwrap_or(RowKind::Insert);
        let mut line = String::with_capacity(16 * values + 4);
        line.push_str(kind.short_string());
        line.push('[');
        for (i, f) in formatters.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            line.push_str(&f.value(row).try_to_string()?);
        }
        line.push(']');
        lines.push(line);
    }
    Ok(lines)
}

/// One subtask of the print sink.
///
/// At-least-once under checkpoints: rows are printed as they arrive, not
/// held until a checkpoint completes, so after a recovery the rows printed
/// since the last completed checkpoint are printed again. Standard output
/// cannot be rolled back, and holding rows back would make the output lag
/// by a checkpoint interval.
#[derive(Debug)]
struct PrintSink {
    prefix: String,
    to_stderr: bool,
}

impl Operator for PrintSink {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut text = String::new();
        for line in format_rows(&batch)? {
            text.push_str(&self.prefix);
            text.push_str(&line);
            text.push('\n');
        }
        // One write per batch so that lines of parallel subtasks do not mix.
        let written = if self.to_stderr {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            std::io::stdout().lock().write_all(text.as_bytes())
        };
        let stream = if self.to_stderr { "stderr" } else { "stdout" };
        written.map_err(|e| EngineError::external("print", format!("write to {stream}"), false, e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use runnel_engine::types::{row_kind_array, with_row_kind};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("v", DataType::Float64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![None, Some("a b")])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_767_225_605_000),
                    Some(1_767_225_605_250),
                ])),
                Arc::new(Float64Array::from(vec![Some(1.5), None])),
            ],
        )
        .expect("a valid batch")
    }

    #[test]
    fn formats_nulls_and_timestamps_like_flink() {
        let lines = format_rows(&batch()).expect("formats");
        assert_eq!(
            lines,
            vec![
                "+I[1, NULL, 2026-01-01T00:00:05, 1.5]",
                "+I[NULL, a b, 2026-01-01T00:00:05.250, NULL]",
            ]
        );
    }

    #[test]
    fn formats_row_kinds_of_updating_batches() {
        let b = batch();
        let schema = with_row_kind(b.schema_ref());
        let mut columns = b.columns().to_vec();
        columns.push(row_kind_array(&[RowKind::UpdateBefore, RowKind::Delete]));
        let updating = RecordBatch::try_new(schema, columns).expect("a valid batch");
        let lines = format_rows(&updating).expect("formats");
        assert!(lines[0].starts_with("-U[1, NULL"), "{}", lines[0]);
        assert!(lines[1].starts_with("-D[NULL, a b"), "{}", lines[1]);
        assert!(lines[1].ends_with(", NULL]"), "the row kind is not a value");
    }

    #[test]
    fn prefix_follows_flink() {
        let task = |subtask, parallelism| TaskInfo {
            operator_name: "sink".into(),
            subtask,
            parallelism,
            max_parallelism: 128,
            checkpointing: false,
            memory_budget: None,
        };
        assert_eq!(line_prefix("", &task(0, 1)), "");
        assert_eq!(line_prefix("out", &task(0, 1)), "out> ");
        assert_eq!(line_prefix("out", &task(1, 4)), "out:2> ");
        assert_eq!(line_prefix("", &task(2, 4)), "3> ");
    }
}
