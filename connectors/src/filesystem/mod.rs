//! `filesystem`: reads and writes JSON lines, CSV and Parquet files.
//!
//! `'path'` names a file or a directory. Reading a directory reads every
//! regular file in it, by name, skipping names that start with `.` or `_`
//! (in-progress and marker files). The source is bounded. Its input is cut
//! into splits that all source subtasks share (split `i` goes to subtask
//! `i % parallelism`): each file, and each line-aligned range of
//! `'source.split-size'` bytes (32 MiB by default) of a large JSON-lines
//! or CSV file (see `splits.rs`).
//!
//! The sink writes `part-<subtask>-<seq>.<ext>` files into the directory.
//! A file is written under a hidden in-progress name and renamed once
//! closed, on each checkpoint barrier and at the end of input, so readers
//! never see half a file. When the job takes checkpoints, a closed file is
//! first staged under another hidden name and published only when its
//! checkpoint completes (two-phase commit, see `sink.rs`), so that after a
//! recovery every row is in exactly one visible file.
//!
//! The source's checkpoint position is the split it is in and how far in
//! (byte offset for JSON and CSV, row count for Parquet); restoring into a
//! directory whose listing changed is an error (see `source.rs`).
//!
//! Limits: JSON records are one per line; a CSV record is one line unless a
//! quoted value holds line breaks (and a CSV file holding quotes is then
//! read by one subtask). Directories are read once, not watched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use runnel_engine::connector::{Connector, Resource, SourceTable, TableDescriptor};
use runnel_engine::graph::parse_byte_size;
use runnel_engine::operator::OperatorFactory;
use runnel_engine::{EngineError, Result};

use crate::options::{bad_option, delimiter_option};

mod lines;
mod parquet_types;
mod partitions;
mod sink;
mod source;
mod splits;

pub use splits::list_files;

const OPTIONS: &[&str] = &[
    "path",
    "format",
    "json.ignore-parse-errors",
    "csv.field-delimiter",
    "csv.ignore-first-line",
    "csv.ignore-parse-errors",
    "debezium-json.schema-include",
    "debezium-json.ignore-parse-errors",
    "source.split-size",
    "lookup.cache.ttl",
];

/// The `filesystem` connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct FilesystemConnector;

impl Connector for FilesystemConnector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn options(&self) -> &'static [&'static str] {
        OPTIONS
    }

    fn supports_partitioning(&self) -> bool {
        true
    }

    fn resources(&self, table: &TableDescriptor) -> Vec<Resource> {
        table
            .option("path")
            .map(|p| Resource::Path(p.to_string()))
            .into_iter()
            .collect()
    }

    fn supports_projection(&self, table: &TableDescriptor) -> bool {
        // JSON and Parquet find columns by name; CSV by position. Debezium
        // changes come whole. A partitioned table is read whole too: the
        // source finds its directories by the partition columns.
        table.partition_keys.is_empty()
            && matches!(table.option("format"), Some("json") | Some("parquet"))
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        let options = Arc::new(FsOptions::from_table(table)?);
        Ok(SourceTable {
            factory: source::factory(options, Arc::clone(&table.schema)),
            bounded: true,
            parallelism: None,
            in_memory: false,
        })
    }

    fn sink(&self, table: &TableDescriptor, updating: bool) -> Result<OperatorFactory> {
        if updating {
            return Err(EngineError::Plan(format!(
                "filesystem sink is append-only; table '{}' cannot take the updating stream \
                 (with UPDATE/DELETE changes) this query produces",
                table.name
            )));
        }
        let options = Arc::new(FsOptions::from_table(table)?);
        if options.debezium.is_some() {
            return Err(bad_option(
                table,
                "format",
                "'debezium-json' is read-only here: the filesystem sink writes json, csv or parquet",
            ));
        }
        if options.path.is_file() {
            return Err(bad_option(
                table,
                "path",
                &format!(
                    "must name a directory for writing, but '{}' is a file",
                    options.path.display()
                ),
            ));
        }
        Ok(sink::factory(options, Arc::clone(&table.schema)))
    }
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Parquet,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Csv => "CSV",
            Format::Parquet => "Parquet",
        }
    }
}

/// The parsed options of a filesystem table.
#[derive(Debug, Clone)]
struct FsOptions {
    path: PathBuf,
    format: Format,
    /// `'format' = 'debezium-json'`: JSON lines holding Debezium change
    /// envelopes, read as a changelog (the source only).
    debezium: Option<crate::debezium::Debezium>,
    /// Skip and count records that do not parse instead of failing.
    ignore_parse_errors: bool,
    delimiter: u8,
    /// Skip the first line of every CSV file (a header).
    ignore_first_line: bool,
    /// Bytes per split of a large JSON-lines or CSV file.
    split_bytes: u64,
    /// `PARTITIONED BY` columns, in directory order: written as
    /// `name=value` directories, not into the files (see `partitions.rs`).
    partition_columns: Vec<String>,
}

impl FsOptions {
    fn from_table(table: &TableDescriptor) -> Result<Self> {
        let path = PathBuf::from(table.required("path")?);
        let debezium = crate::debezium::Debezium::of(table)?;
        if debezium.is_some() {
            crate::debezium::DebeziumMeta::check_columns(table, "")?;
        } else if let Some((key, _)) =
            (0..table.schema.fields().len()).find_map(|i| table.metadata_column(i))
        {
            return Err(EngineError::Plan(format!(
                "table '{}' reads metadata '{key}'; the filesystem connector has metadata only \
                 for 'format' = 'debezium-json' ({})",
                table.name,
                crate::debezium::DebeziumMeta::KEYS
            )));
        }
        let partition_columns: Vec<String> = table
            .partition_keys
            .iter()
            .map(|&k| table.schema.field(k).name().clone())
            .collect();
        // A directory `_x=1` or `.x=1` is hidden from readers, and `/` or
        // `=` in a name would read back as another layout.
        if let Some(bad) = partition_columns.iter().find(|c| {
            c.starts_with('_') || c.starts_with('.') || c.contains('/') || c.contains('=')
        }) {
            return Err(EngineError::Plan(format!(
                "table '{}' is partitioned by '{bad}', which cannot name a partition directory (it may not start with '_' or '.' or hold '/' or '='); rename the column",
                table.name
            )));
        }
        if debezium.is_some() && !partition_columns.is_empty() {
            return Err(EngineError::Plan(format!(
                "table '{}' reads Debezium changes; PARTITIONED BY applies to json, csv and parquet files",
                table.name
            )));
        }
        let format = match table.required("format")? {
            f if f.eq_ignore_ascii_case("json") => Format::Json,
            _ if debezium.is_some() => Format::Json,
            f if f.eq_ignore_ascii_case("csv") => Format::Csv,
            f if f.eq_ignore_ascii_case("parquet") => Format::Parquet,
            other => {
                return Err(bad_option(
                    table,
                    "format",
                    &format!("must be one of json, csv, parquet, debezium-json, not '{other}'"),
                ))
            }
        };
        let ignore_parse_errors = match format {
            Format::Json if debezium.is_some() => {
                table.bool_option("debezium-json.ignore-parse-errors", false)?
            }
            Format::Json => table.bool_option("json.ignore-parse-errors", false)?,
            Format::Csv => table.bool_option("csv.ignore-parse-errors", false)?,
            Format::Parquet => false,
        };
        Ok(Self {
            path,
            format,
            debezium,
            ignore_parse_errors,
            delimiter: delimiter_option(table, "csv.field-delimiter", b',')?,
            ignore_first_line: table.bool_option("csv.ignore-first-line", false)?,
            partition_columns,
            split_bytes: match table.option("source.split-size") {
                None => splits::DEFAULT_SPLIT_BYTES,
                Some(text) => parse_byte_size(text).filter(|n| *n > 0).ok_or_else(|| {
                    bad_option(
                        table,
                        "source.split-size",
                        &format!("must be a size such as '64mb' or '1048576', not '{text}'"),
                    )
                })?,
            },
        })
    }

    /// The CSV delimiter for CSV files, `None` for JSON.
    fn csv_delimiter(&self) -> Option<u8> {
        (self.format == Format::Csv).then_some(self.delimiter)
    }

    /// The format's name in messages.
    fn label(&self) -> &'static str {
        match self.debezium {
            Some(_) => crate::debezium::FORMAT,
            None => self.format.label(),
        }
    }

    /// What the text decoder reads for a table of `schema`.
    fn wire_schema(&self, schema: &SchemaRef) -> SchemaRef {
        match self.debezium {
            Some(d) => d.wire_schema(schema),
            None => Arc::clone(schema),
        }
    }

    /// The source's batches for a table of `schema`: with the changelog
    /// column for Debezium changes.
    fn output_schema(&self, schema: &SchemaRef) -> SchemaRef {
        match self.debezium {
            Some(_) => runnel_engine::types::with_row_kind(schema),
            None => Arc::clone(schema),
        }
    }

    /// Turns what the decoder made into the source's rows.
    fn finish(
        &self,
        schema: &SchemaRef,
        decoded: RecordBatch,
    ) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
        match self.debezium {
            Some(d) => d.unwrap(schema, &decoded).map(|(b, _)| b),
            None => Ok(decoded),
        }
    }
}

/// A failed file operation on `path` while doing `action` (a verb). A
/// missing file or directory is a problem with the path the user gave (or
/// a file deleted under the job); anything else is the file system failing.
fn io_error(
    path: &Path,
    action: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
) -> EngineError {
    let source = e.into();
    let io = source
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind);
    if io == Some(std::io::ErrorKind::NotFound) {
        return EngineError::Connector(format!("cannot {action} '{}': {source}", path.display()));
    }
    let retryable = matches!(
        io,
        Some(
            std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::WouldBlock
        )
    );
    EngineError::external(
        "file",
        format!("{action} '{}'", path.display()),
        retryable,
        source,
    )
}

#[cfg(test)]
mod tests;
