//! Hive-style partition directories of a filesystem table declared with
//! `PARTITIONED BY (dt, hm)`: rows live in `dt=<value>/hm=<value>/`, and
//! the partition columns are not written into the files (as Flink does):
//! the source reads their values back from the directory names.
//!
//! A value is the column's text (as CAST to STRING writes it) with the
//! characters a path cannot hold, or that would make it ambiguous (`/`,
//! `=`, `%`, `:` and a few more), written as `%XX`; NULL and the empty
//! string are [`DEFAULT_PARTITION`], read back as NULL.

use std::path::Path;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::datatypes::SchemaRef;
use runnel_engine::{EngineError, Result};

/// The directory value of a NULL or empty partition value (Flink's and
/// Hive's default `partition.default-name`).
pub(super) const DEFAULT_PARTITION: &str = "__DEFAULT_PARTITION__";

/// True for a character written as `%XX` in a directory name.
fn needs_escape(c: char) -> bool {
    c.is_ascii_control()
        || matches!(
            c,
            '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
        )
}

/// `value` as it appears in a directory name.
pub(super) fn escape(value: &str) -> String {
    if value.is_empty() {
        return DEFAULT_PARTITION.to_string();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The value a directory name holds; `None` for [`DEFAULT_PARTITION`].
/// A `%` not followed by two hex digits stays as it is.
pub(super) fn unescape(text: &str) -> Option<String> {
    if text == DEFAULT_PARTITION {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(v) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The `name=value` directory names of a relative directory, as (name,
/// value) pairs; `None` when a part is not of that form (or is hidden).
pub(super) fn parse_dir(relative: &Path) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for part in relative.components() {
        let text = part.as_os_str().to_str()?;
        if text.starts_with('.') || text.starts_with('_') {
            return None;
        }
        let (name, value) = text.split_once('=')?;
        if name.is_empty() {
            return None;
        }
        out.push((name.to_string(), unescape(value)));
    }
    Some(out)
}

/// The files in `root` and, when `descend`, in its `name=value`
/// directories at any depth (other directories skipped): (relative
/// directory, joined by `/`, and file name), file names unfiltered. A
/// link counts as what it points to; a broken one is skipped.
pub(super) fn files_under(root: &Path, descend: bool) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(root.join(&dir))? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                if descend && parse_dir(Path::new(&name)).is_some() {
                    dirs.push(if dir.is_empty() {
                        name
                    } else {
                        format!("{dir}/{name}")
                    });
                }
            } else if meta.is_file() {
                out.push((dir.clone(), name));
            }
        }
    }
    Ok(out)
}

/// The relative directory of each row of `batch` for the partition
/// columns `columns` (name, index): `a=1/b=x`.
pub(super) fn row_dirs(batch: &RecordBatch, columns: &[(String, usize)]) -> Result<Vec<String>> {
    let n = batch.num_rows();
    let mut dirs = vec![String::new(); n];
    for (name, index) in columns {
        let text = arrow::compute::cast(batch.column(*index), &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        for (i, dir) in dirs.iter_mut().enumerate() {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(name);
            dir.push('=');
            if text.is_null(i) {
                dir.push_str(DEFAULT_PARTITION);
            } else {
                dir.push_str(&escape(text.value(i)));
            }
        }
    }
    Ok(dirs)
}

/// A column of `rows` copies of a partition value, of type `to`: the text
/// cast like a CSV value; NULL for [`DEFAULT_PARTITION`].
pub(super) fn value_column(
    value: Option<&str>,
    to: &DataType,
    rows: usize,
    column: &str,
    dir: &str,
) -> Result<ArrayRef> {
    let text: ArrayRef = std::sync::Arc::new(arrow::array::StringArray::from(vec![value; rows]));
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow::compute::cast_with_options(&text, to, &options).map_err(|e| {
        EngineError::Connector(format!(
            "partition directory '{dir}': the value {value:?} of column '{column}' is not a {to}: {e}"
        ))
    })
}

/// The rows of a partitioned table: its columns, each read from the files
/// or from the partition directory.
#[derive(Debug)]
pub(super) struct PartitionedOutput {
    pub(super) schema: SchemaRef,
    pub(super) columns: Vec<OutputColumn>,
}

#[derive(Debug)]
pub(super) enum OutputColumn {
    /// The column of this index in the decoded batch.
    Data(usize),
    /// The value of this partition in the file's directory.
    Partition(String),
}

impl PartitionedOutput {
    /// The table's rows from a decoded batch of `split`'s file.
    pub(super) fn rows(
        &self,
        batch: RecordBatch,
        split: &super::splits::FileSplit,
    ) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut columns = Vec::with_capacity(self.columns.len());
        for (c, field) in self.columns.iter().zip(self.schema.fields()) {
            columns.push(match c {
                OutputColumn::Data(i) => Arc::clone(batch.column(*i)),
                OutputColumn::Partition(name) => {
                    let value = split
                        .partition
                        .iter()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| v.as_deref());
                    value_column(value, field.data_type(), n, name, &split.name)?
                }
            });
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(n));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_directory_names() {
        for v in ["2026-01-01", "10:15", "a/b=c%d", "plain", "ünï", "x y"] {
            let e = escape(v);
            assert!(
                !e.contains('/') && !e.contains('=') && !e.contains(':'),
                "{e}"
            );
            assert_eq!(unescape(&e).as_deref(), Some(v), "{v} -> {e}");
        }
        assert_eq!(escape("10:15"), "10%3A15");
        assert_eq!(escape(""), DEFAULT_PARTITION);
        assert_eq!(unescape(DEFAULT_PARTITION), None);
        // A lone % is kept.
        assert_eq!(unescape("50%").as_deref(), Some("50%"));
        assert_eq!(unescape("%zz").as_deref(), Some("%zz"));
    }

    #[test]
    fn parses_partition_directories_and_refuses_others() {
        let p = parse_dir(Path::new("dt=2026-01-01/hm=10%3A15")).expect("partitions");
        assert_eq!(
            p,
            vec![
                ("dt".to_string(), Some("2026-01-01".to_string())),
                ("hm".to_string(), Some("10:15".to_string()))
            ]
        );
        assert!(parse_dir(Path::new("not-a-partition")).is_none());
        assert!(parse_dir(Path::new(".hidden=1")).is_none());
        assert!(parse_dir(Path::new("=1")).is_none());
    }
}
