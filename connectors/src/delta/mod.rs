//! `delta`: writes and reads Delta Lake tables.
//!
//! The sink appends Parquet files to a Delta table (created from the
//! query's schema when absent) and, in a job with checkpoints, commits the
//! files of each checkpoint as one Delta version together with a `txn`
//! action, so that a commit repeated after a crash is recognised and
//! skipped (see `sink.rs` and docs/delta.md). The source reads a table as a
//! bounded snapshot (latest, `'scan.version'` or `'scan.timestamp'`) or,
//! with `'mode' = 'streaming'`, follows the table as versions are committed
//! (see `source.rs`).
//!
//! The `deltalake` crate is async; this connector drives it from the job's
//! operator threads through one small Tokio runtime shared by every Delta
//! table of the process ([`block_on`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use runnel_engine::connector::{Connector, Resource, SourceTable, TableDescriptor};
use runnel_engine::operator::OperatorFactory;
use runnel_engine::types::ROW_KIND_COLUMN;
use runnel_engine::{EngineError, Result};

use crate::options::{bad_option, parse_timestamp_millis};

mod committer;
mod s3;
mod sink;
mod source;
mod upsert;

const OPTIONS: &[&str] = &[
    "path",
    "storage.",
    "sink.target-file-size",
    "sink.rollover-interval",
    "sink.updating-mode",
    "sink.schema-evolution",
    "mode",
    "scan.version",
    "scan.timestamp",
    "scan.poll-interval",
    "lookup.cache.ttl",
    "s3.endpoint",
    "s3.access-key",
    "s3.secret-key",
    "s3.region",
    "s3.path.style.access",
    "s3.request-timeout",
];

/// The `delta` connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeltaConnector;

impl Connector for DeltaConnector {
    fn name(&self) -> &'static str {
        "delta"
    }

    fn options(&self) -> &'static [&'static str] {
        OPTIONS
    }

    fn supports_projection(&self, _table: &TableDescriptor) -> bool {
        // Columns are found by name in the Parquet files and partition values.
        true
    }

    fn supports_partitioning(&self) -> bool {
        true
    }

    fn resources(&self, table: &TableDescriptor) -> Vec<Resource> {
        let mut out: Vec<Resource> = Vec::new();
        if let Some(p) = table.option("path") {
            out.push(Resource::Path(p.to_string()));
        }
        if let Some(endpoint) = table.option("s3.endpoint") {
            out.push(Resource::Endpoint(endpoint.to_string()));
        }
        // Storage options reach credentials files and endpoints of their
        // own.
        out.extend(
            table
                .options
                .keys()
                .filter(|k| k.starts_with("storage."))
                .map(|k| Resource::AdminOption(k.clone())),
        );
        out
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        let options = Arc::new(DeltaOptions::from_table(table)?);
        let streaming = options.streaming;
        Ok(SourceTable {
            factory: source::factory(options, Arc::clone(&table.schema)),
            bounded: !streaming,
            // A stream follows the log in one place, so that versions are
            // read in order.
            parallelism: streaming.then_some(1),
            in_memory: false,
        })
    }

    fn sink(&self, table: &TableDescriptor, updating: bool) -> Result<OperatorFactory> {
        let options = DeltaOptions::from_table(table)?;
        if options.streaming || options.version.is_some() || options.timestamp_ms.is_some() {
            return Err(bad_option(
                table,
                if options.streaming {
                    "mode"
                } else if options.version.is_some() {
                    "scan.version"
                } else {
                    "scan.timestamp"
                },
                "is a source option; a table written to cannot set it",
            ));
        }
        if updating && options.updating_mode == UpdatingMode::Reject {
            return Err(EngineError::Plan(format!(
                "the Delta sink of table '{}' takes append-only streams, and this query produces \
                 updates and deletes; declare a PRIMARY KEY to keep one row per key (upsert \
                 mode), or set 'sink.updating-mode' = 'changelog' to write every change as a row \
                 with its kind in column '{ROW_KIND_COLUMN}'",
                table.name
            )));
        }
        let upsert = options.updating_mode == UpdatingMode::Upsert;
        if upsert && table.primary_key.is_empty() {
            return Err(bad_option(
                table,
                "sink.updating-mode",
                "is 'upsert', which needs a PRIMARY KEY (...) NOT ENFORCED on the table: \
                 the columns that identify a row",
            ));
        }
        let partition_columns = table
            .partition_keys
            .iter()
            .map(|&i| table.schema.field(i).name().clone())
            .collect();
        let upsert_key = upsert.then(|| {
            table
                .primary_key
                .iter()
                .map(|&i| table.schema.field(i).name().clone())
                .collect()
        });
        sink::factory(
            Arc::new(options),
            table_schema(&table.schema, updating && !upsert),
            partition_columns,
            updating,
            upsert_key,
        )
    }

    fn writes_upserts(&self, table: &TableDescriptor) -> bool {
        DeltaOptions::from_table(table).is_ok_and(|o| o.updating_mode == UpdatingMode::Upsert)
    }
}

/// What the sink does with an updating stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdatingMode {
    /// Refuse the query.
    Reject,
    /// Write each change as a row, with its kind in a string column.
    Changelog,
    /// Keep one row per PRIMARY KEY: each checkpoint's changes merged
    /// into the table (see `upsert.rs`).
    Upsert,
}

/// The parsed options of a Delta table.
#[derive(Debug, Clone)]
struct DeltaOptions {
    /// What users wrote in `'path'`.
    path: String,
    /// `'storage.*'`, prefix removed: passed to the object store.
    storage: HashMap<String, String>,
    target_file_size: u64,
    rollover_interval: Duration,
    updating_mode: UpdatingMode,
    schema_evolution: bool,
    streaming: bool,
    version: Option<u64>,
    timestamp_ms: Option<i64>,
    poll_interval: Duration,
}

impl DeltaOptions {
    fn from_table(table: &TableDescriptor) -> Result<Self> {
        let path = table.required("path")?.to_string();
        let mut storage: HashMap<String, String> = table
            .options
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("storage.")
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        // Flink's S3 option names, read by the s3:// object store (s3.rs).
        for k in runnel_engine::graph::CHECKPOINT_STORAGE_OPTIONS {
            if let Some(v) = table.option(k) {
                storage.insert((*k).to_string(), v.to_string());
            }
        }
        if path.starts_with("s3://") {
            s3::register();
        }
        let target_file_size = match table.option("sink.target-file-size") {
            None => 128 << 20,
            Some(v) => runnel_engine::graph::parse_byte_size(v)
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    bad_option(
                        table,
                        "sink.target-file-size",
                        &format!("must be a size such as '64MB' or '1048576', not '{v}'"),
                    )
                })?,
        };
        let rollover_interval =
            table.duration_option("sink.rollover-interval", Duration::from_secs(60))?;
        if rollover_interval.is_zero() {
            return Err(bad_option(
                table,
                "sink.rollover-interval",
                "must be longer than zero",
            ));
        }
        let updating_mode = match table.option("sink.updating-mode") {
            // A table with a PRIMARY KEY is an upsert table, as in Flink.
            None if !table.primary_key.is_empty() => UpdatingMode::Upsert,
            None => UpdatingMode::Reject,
            Some(v) if v.eq_ignore_ascii_case("reject") => UpdatingMode::Reject,
            Some(v) if v.eq_ignore_ascii_case("changelog") => UpdatingMode::Changelog,
            Some(v) if v.eq_ignore_ascii_case("upsert") => UpdatingMode::Upsert,
            Some(v) => {
                return Err(bad_option(
                    table,
                    "sink.updating-mode",
                    &format!("must be 'reject', 'changelog' or 'upsert', not '{v}'"),
                ))
            }
        };
        let streaming = match table.option("mode") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("batch") => false,
            Some(v) if v.eq_ignore_ascii_case("streaming") => true,
            Some(v) => {
                return Err(bad_option(
                    table,
                    "mode",
                    &format!("must be 'batch' or 'streaming', not '{v}'"),
                ))
            }
        };
        let version = match table.option("scan.version") {
            None => None,
            Some(_) => Some(table.u64_option("scan.version", 0)?),
        };
        let timestamp_ms = match table.option("scan.timestamp") {
            None => None,
            Some(v) => Some(parse_timestamp_millis(v).ok_or_else(|| {
                bad_option(
                    table,
                    "scan.timestamp",
                    &format!(
                        "must be a time such as '2026-01-31 12:00:00' (UTC) or epoch milliseconds, not '{v}'"
                    ),
                )
            })?),
        };
        if version.is_some() && timestamp_ms.is_some() {
            return Err(bad_option(
                table,
                "scan.timestamp",
                "cannot be set together with 'scan.version'",
            ));
        }
        let poll_interval = table.duration_option("scan.poll-interval", Duration::from_secs(1))?;
        Ok(Self {
            path,
            storage,
            target_file_size,
            rollover_interval,
            updating_mode,
            schema_evolution: table.bool_option("sink.schema-evolution", false)?,
            streaming,
            version,
            timestamp_ms,
            poll_interval,
        })
    }

    /// The table's URL: a local path is made absolute (and created).
    fn url(&self) -> Result<url::Url> {
        deltalake::ensure_table_uri(&self.path).map_err(|e| self.error("open", e))
    }

    /// A builder for this table with its storage options.
    fn builder(&self) -> Result<DeltaTableBuilder> {
        Ok(DeltaTableBuilder::from_url(self.url()?)
            .map_err(|e| self.error("open", e))?
            .with_storage_options(self.storage.clone()))
    }

    /// The table as of its latest version, or `None` when there is no Delta
    /// table at the path yet.
    fn load_latest(&self) -> Result<Option<DeltaTable>> {
        let builder = self.builder()?;
        block_on(async move {
            match builder.load().await {
                Ok(t) => Ok(Some(t)),
                Err(DeltaTableError::NotATable(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| self.error("open", e))
    }

    /// A failure of the Delta log or its object store while doing `what`
    /// to this table (a verb: "open", "commit to").
    fn error(
        &self,
        what: &str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> EngineError {
        let source = e.into();
        let retryable = is_retryable(source.as_ref());
        EngineError::external(
            "delta",
            format!("{what} Delta table '{}'", self.path),
            retryable,
            source,
        )
    }

    /// A problem with the table the user named (a feature it uses that
    /// this connector does not read, a checkpoint it no longer fits).
    fn problem(&self, what: &str, why: impl std::fmt::Display) -> EngineError {
        EngineError::Connector(format!("cannot {what} Delta table '{}': {why}", self.path))
    }
}

/// True for Delta failures that may pass: the object store's transport, a
/// commit that lost a race with another writer.
fn is_retryable(e: &(dyn std::error::Error + 'static)) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    match e.downcast_ref::<DeltaTableError>() {
        Some(DeltaTableError::ObjectStore { source }) => {
            matches!(source, object_store::Error::Generic { .. })
        }
        Some(DeltaTableError::Io { .. } | DeltaTableError::VersionAlreadyExists(_)) => true,
        Some(DeltaTableError::Transaction { source }) => matches!(
            source,
            TransactionError::VersionAlreadyExists(_)
                | TransactionError::CommitConflict(_)
                | TransactionError::MaxCommitAttempts(_)
        ),
        _ => false,
    }
}

/// The Arrow schema of the Delta table a sink of `declared` columns writes:
/// timestamps become Delta `timestamp` (microseconds, UTC), the type every
/// Delta reader knows without table features; an updating stream gets its
/// row kind as a string column.
fn table_schema(declared: &Schema, updating: bool) -> SchemaRef {
    let mut fields: Vec<Field> = declared
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), delta_type(f.data_type()), f.is_nullable()))
        .collect();
    if updating {
        fields.push(Field::new(ROW_KIND_COLUMN, DataType::Utf8, false));
    }
    Arc::new(Schema::new(fields))
}

/// The Arrow type a column of type `t` has in a Delta table.
fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        other => other.clone(),
    }
}

/// Runs `fut` to completion on the connector's Tokio runtime. Called from
/// operator and source threads, never from inside a Tokio runtime.
fn block_on<F>(fut: F) -> F::Output
where
    F: std::future::IntoFuture,
    F::IntoFuture: Send,
    F::Output: Send,
{
    let fut = fut.into_future();
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("runnel-delta-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the Delta I/O runtime: {e}"))
    });
    match tokio::runtime::Handle::try_current() {
        // Inside a runtime (a caller on a Tokio thread): block this thread
        // without blocking the caller's runtime.
        Ok(_) => std::thread::scope(|s| {
            s.spawn(move || runtime.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
        Err(_) => runtime.block_on(fut),
    }
}

#[cfg(test)]
mod tests;
