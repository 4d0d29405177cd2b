//! The connector registry: how sources and sinks are found by name.
//!
//! The SQL layer knows a table only as a schema plus `WITH (...)` options.
//! A [`Connector`] turns such a [`TableDescriptor`] into a source or sink of
//! this engine. Connectors register themselves in a [`ConnectorRegistry`]
//! under the name users write in `'connector' = '...'`; the SQL crate never
//! depends on the connectors crate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;

use crate::error::{EngineError, Result};
use crate::operator::OperatorFactory;
use crate::source::SourceFactory;

/// Field metadata key marking a `METADATA` column; its value is the
/// connector's metadata key (`'timestamp'`, `'partition'`, ...).
pub const METADATA_FIELD_KEY: &str = "runnel.metadata";
/// Field metadata key set to `"true"` on `METADATA ... VIRTUAL` columns,
/// which sinks do not receive.
pub const METADATA_VIRTUAL_KEY: &str = "runnel.metadata.virtual";

/// A table as declared in DDL.
#[derive(Debug, Clone)]
pub struct TableDescriptor {
    /// Table name.
    pub name: String,
    /// Physical and metadata columns (a metadata column's field carries
    /// [`METADATA_FIELD_KEY`]); `PROCTIME()` columns are added by the planner.
    pub schema: SchemaRef,
    /// `WITH (...)` options, keys as written (Flink option names).
    pub options: BTreeMap<String, String>,
    /// `WATERMARK FOR col AS col - INTERVAL ...`: the column and the delay in ms.
    pub watermark: Option<(usize, i64)>,
    /// `PRIMARY KEY (...) NOT ENFORCED` columns.
    pub primary_key: Vec<usize>,
    /// `PARTITIONED BY (...)` columns, for sinks that lay out their data by
    /// column values (Delta); empty when not partitioned.
    pub partition_keys: Vec<usize>,
}

impl TableDescriptor {
    /// An option's value.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// The metadata key of column `index` and whether it is `VIRTUAL`, when
    /// it is a `METADATA` column.
    pub fn metadata_column(&self, index: usize) -> Option<(&str, bool)> {
        let f = self.schema.fields().get(index)?;
        let key = f.metadata().get(METADATA_FIELD_KEY)?;
        let is_virtual = f
            .metadata()
            .get(METADATA_VIRTUAL_KEY)
            .is_some_and(|v| v == "true");
        Some((key.as_str(), is_virtual))
    }

    /// A required option, or a plan error naming it.
    pub fn required(&self, key: &str) -> Result<&str> {
        self.option(key).ok_or_else(|| {
            EngineError::Plan(format!("table '{}' needs the option '{key}'", self.name))
        })
    }

    /// A boolean option (`'true'`/`'false'`), `default` when absent.
    pub fn bool_option(&self, key: &str, default: bool) -> Result<bool> {
        match self.option(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(EngineError::Plan(format!(
                "option '{key}' of table '{}' must be 'true' or 'false', not '{v}'",
                self.name
            ))),
        }
    }

    /// A duration option (`'30 s'`, `'2 min'`, plain milliseconds),
    /// `default` when absent.
    pub fn duration_option(&self, key: &str, default: Duration) -> Result<Duration> {
        match self.option(key) {
            None => Ok(default),
            Some(v) => parse_duration(v).ok_or_else(|| {
                EngineError::Plan(format!(
                    "option '{key}' of table '{}' must be a duration such as '30 s' or '2 min', not '{v}'",
                    self.name
                ))
            }),
        }
    }

    /// An integer option, `default` when absent.
    pub fn u64_option(&self, key: &str, default: u64) -> Result<u64> {
        match self.option(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                EngineError::Plan(format!(
                    "option '{key}' of table '{}' must be a whole number, not '{v}'",
                    self.name
                ))
            }),
        }
    }
}

/// Parses `'30 s'`, `'5s'`, `'500 ms'`, `'2 min'`, `'1 h'` or plain milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim().to_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" | "sec" | "second" | "seconds" => n * 1_000,
        "min" | "minute" | "minutes" => n * 60_000,
        "h" | "hour" | "hours" => n * 3_600_000,
        "d" | "day" | "days" => n * 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// A source built for a table.
#[derive(Clone)]
pub struct SourceTable {
    /// Creates one source per subtask.
    pub factory: SourceFactory,
    /// True when the source ends by itself (a file, `'number-of-rows'`).
    pub bounded: bool,
    /// Parallelism the connector asks for (e.g. 1 for a single file); the
    /// job's default otherwise.
    pub parallelism: Option<usize>,
    /// True when the source reads what the process already holds in
    /// memory (a view's snapshot, a system table): a query that reads
    /// only such sources can run on the caller's thread
    /// ([`crate::runtime::run_local`]).
    pub in_memory: bool,
}

/// A kind of external system (or generator) that tables can be bound to.
pub trait Connector: Send + Sync {
    /// The name used in `'connector' = '...'`.
    fn name(&self) -> &'static str;

    /// Option keys this connector accepts besides `connector`; a key ending
    /// in `.` accepts every key with that prefix (`properties.`).
    fn options(&self) -> &'static [&'static str];

    /// Builds a source for `table`; a plan error when this connector cannot
    /// read.
    fn source(&self, table: &TableDescriptor) -> Result<SourceTable>;

    /// Builds a sink for `table`. `updating` is true when the rows carry the
    /// changelog column; sinks that only append must reject that.
    fn sink(&self, table: &TableDescriptor, updating: bool) -> Result<OperatorFactory>;

    /// True when the sink of `table` writes each change under the table's
    /// PRIMARY KEY, the newest row of a key replacing the one before and a
    /// delete removing it (an upsert sink: upsert-kafka, Delta in upsert
    /// mode). The planner then makes sure every sink key has at most one
    /// live row in the stream it writes (see `sql/src/lower.rs`).
    fn writes_upserts(&self, _table: &TableDescriptor) -> bool {
        false
    }

    /// True when [`Connector::source`] accepts a descriptor whose schema is
    /// a subset of the declared columns (by name), so that a query reads
    /// only the columns it uses. Formats that find columns by position
    /// (CSV) cannot.
    fn supports_projection(&self, _table: &TableDescriptor) -> bool {
        false
    }

    /// True when tables of this connector may be `PARTITIONED BY` columns.
    fn supports_partitioning(&self) -> bool {
        false
    }

    /// True for connectors the server uses for its own tables (system
    /// tables, materialized views): a `CREATE TABLE` may not name them.
    fn internal(&self) -> bool {
        false
    }

    /// What outside the engine `table` reaches (paths, servers, options
    /// that run commands or read files), for the server's access policy:
    /// a user who is not an administrator may only create tables whose
    /// resources its allow-lists name. Connectors that touch nothing
    /// outside (datagen, print) keep the default.
    fn resources(&self, _table: &TableDescriptor) -> Vec<Resource> {
        Vec::new()
    }
}

/// Something outside the engine a table reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A local path, or an object-store URI (`s3://bucket/prefix`).
    Path(String),
    /// A network server, `host:port`.
    Server(String),
    /// A network endpoint as a URL (`http://minio:9000`); its host and
    /// port must be an allowed server.
    Endpoint(String),
    /// A stream of data another table could name too (`kafka:topic`):
    /// only its owner's tables may share it.
    Topic(String),
    /// An option only an administrator may set: one that can run a
    /// command, read a local file or reach an arbitrary endpoint (Kafka's
    /// `properties.ssl.ca.location`, an S3 endpoint).
    AdminOption(String),
}

/// Connectors by name.
#[derive(Clone, Default)]
pub struct ConnectorRegistry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl ConnectorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a connector.
    pub fn register(&mut self, connector: Arc<dyn Connector>) {
        self.connectors.insert(connector.name(), connector);
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.connectors.keys().copied().collect()
    }

    /// The connector of `table` after checking its options: an unknown
    /// connector or option is a plan error that lists the valid choices.
    pub fn resolve(&self, table: &TableDescriptor) -> Result<Arc<dyn Connector>> {
        let name = table.option("connector").ok_or_else(|| {
            EngineError::Plan(format!(
                "table '{}' has no 'connector' option; expected one of: {}",
                table.name,
                self.names().join(", ")
            ))
        })?;
        let connector = self.connectors.get(name).ok_or_else(|| {
            EngineError::Plan(format!(
                "unknown connector '{name}' for table '{}'; expected one of: {}",
                table.name,
                self.names().join(", ")
            ))
        })?;
        if !table.partition_keys.is_empty() && !connector.supports_partitioning() {
            return Err(EngineError::Plan(format!(
                "connector '{name}' (table '{}') does not support PARTITIONED BY",
                table.name
            )));
        }
        let accepted = connector.options();
        for key in table.options.keys() {
            if key == "connector" || key == "scan.idle-timeout" {
                continue;
            }
            let ok = accepted
                .iter()
                .any(|a| a == key || (a.ends_with('.') && key.starts_with(a)));
            if !ok {
                return Err(EngineError::Plan(format!(
                    "unknown option '{key}' for connector '{name}' (table '{}'); valid options: {}",
                    table.name,
                    accepted.join(", ")
                )));
            }
        }
        Ok(Arc::clone(connector))
    }
}
