//! `kafka` and `upsert-kafka`: read and write Apache Kafka topics through
//! librdkafka (the `rdkafka` crate), with Flink's option names.
//!
//! Source (`source.rs`): each topic partition is a split; partition `p` of
//! topic `t` belongs to subtask `(hash(t) + p) % parallelism`, so subtasks
//! need no coordination and a partition added later lands on a fixed
//! subtask. The next offset of every partition is the checkpoint position;
//! consumers read with `isolation.level = read_committed`. Malformed
//! records fail the job (naming topic, partition and offset), are skipped
//! and counted, or go to a dead-letter topic with the error.
//!
//! Sink (`sink.rs`): JSON, CSV or raw values, optional key columns, and
//! `'sink.delivery-guarantee'` none, at-least-once (flush at every
//! barrier) or exactly-once (records held in the checkpoint and written in
//! one Kafka transaction per completed checkpoint; see docs/kafka.md).
//! `upsert-kafka` writes an updating stream as keyed records and
//! tombstones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use runnel_engine::connector::{Connector, SourceTable, TableDescriptor};
use runnel_engine::operator::OperatorFactory;
use runnel_engine::types::ROW_KIND_COLUMN;
use runnel_engine::{EngineError, Result};

use crate::options::{bad_option, parse_timestamp_millis};

mod format;
mod sink;
mod source;
pub mod test_broker;
#[cfg(test)]
mod tests;

use format::Format;

const OPTIONS: &[&str] = &[
    "topic",
    "topic-pattern",
    "properties.",
    "format",
    "value.format",
    "key.format",
    "key.fields",
    "value.fields-include",
    "json.ignore-parse-errors",
    "csv.ignore-parse-errors",
    "csv.field-delimiter",
    "scan.startup.mode",
    "scan.startup.specific-offsets",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "scan.topic-partition-discovery.interval",
    "scan.malformed-records",
    "scan.dead-letter-topic",
    "scan.max-records-per-second",
    "sink.delivery-guarantee",
    "sink.transactional-id-prefix",
];

/// Option keys under `properties.` that Runnel reads itself instead of
/// passing them to librdkafka.
const OWN_PROPERTIES: &[&str] = &["commit.offsets.on.checkpoint"];

/// The `kafka` connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct KafkaConnector;

/// The `upsert-kafka` connector: an updating stream as keyed records, a
/// delete as a tombstone (a record with the key and no value).
#[derive(Debug, Default, Clone, Copy)]
pub struct UpsertKafkaConnector;

impl Connector for KafkaConnector {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn options(&self) -> &'static [&'static str] {
        OPTIONS
    }

    fn supports_projection(&self, table: &TableDescriptor) -> bool {
        // JSON finds value columns by name; CSV and raw by position. Key
        // columns are named in 'key.fields', so they must stay.
        table.option("key.fields").is_none()
            && matches!(
                table.option("value.format").or(table.option("format")),
                Some("json")
            )
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        let t = Arc::new(KafkaTable::from_table(table, false)?);
        Ok(SourceTable {
            bounded: t.bounded,
            parallelism: None,
            factory: source::factory(t),
        })
    }

    fn sink(&self, table: &TableDescriptor, updating: bool) -> Result<OperatorFactory> {
        if updating {
            return Err(EngineError::Plan(format!(
                "the kafka sink is append-only; table '{}' cannot take the updating stream \
                 (with UPDATE/DELETE changes) this query produces; declare it with \
                 'connector' = 'upsert-kafka' and a PRIMARY KEY",
                table.name
            )));
        }
        let t = Arc::new(KafkaTable::from_table(table, false)?);
        sink::factory(t, false)
    }
}

impl Connector for UpsertKafkaConnector {
    fn name(&self) -> &'static str {
        "upsert-kafka"
    }

    fn options(&self) -> &'static [&'static str] {
        OPTIONS
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        Err(EngineError::Plan(format!(
            "upsert-kafka table '{}' can only be written for now; reading a compacted topic as a changelog is not supported yet",
            table.name
        )))
    }

    fn sink(&self, table: &TableDescriptor, updating: bool) -> Result<OperatorFactory> {
        let t = Arc::new(KafkaTable::from_table(table, true)?);
        sink::factory(t, updating)
    }
}

/// Which topics a table reads.
#[derive(Debug, Clone)]
pub(super) enum Topics {
    /// `'topic' = 'a;b'` (Flink separates a list with semicolons; commas
    /// are accepted too).
    List(Vec<String>),
    /// `'topic-pattern'`: every topic whose whole name matches.
    Pattern(regex::Regex),
}

impl Topics {
    pub(super) fn matches(&self, topic: &str) -> bool {
        match self {
            Topics::List(l) => l.iter().any(|t| t == topic),
            Topics::Pattern(p) => p.is_match(topic),
        }
    }
}

/// Where a partition without a checkpoint position starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Startup {
    Earliest,
    Latest,
    /// The group's committed offset, else `properties.auto.offset.reset`.
    GroupOffsets,
    /// The first record at or after this time (epoch ms).
    Timestamp(i64),
    /// `partition:0,offset:42;partition:1,offset:7`; other partitions
    /// start at the earliest offset.
    Specific(BTreeMap<i32, i64>),
}

/// What to do with a record that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Malformed {
    Fail,
    Skip,
    DeadLetter(String),
}

/// `'sink.delivery-guarantee'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    None,
    AtLeastOnce,
    ExactlyOnce,
}

/// A metadata column the connector fills or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Meta {
    Timestamp,
    Partition,
    Offset,
    Topic,
    Key,
    Headers,
}

impl Meta {
    const KEYS: &'static str = "timestamp, partition, offset, topic, key, headers";

    fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "timestamp" => Meta::Timestamp,
            "partition" => Meta::Partition,
            "offset" => Meta::Offset,
            "topic" => Meta::Topic,
            "key" => Meta::Key,
            "headers" => Meta::Headers,
            _ => return None,
        })
    }

    /// The column types Runnel accepts for this metadata.
    fn fits(self, t: &DataType) -> bool {
        match self {
            Meta::Timestamp => matches!(t, DataType::Timestamp(TimeUnit::Millisecond, _)),
            Meta::Partition => matches!(t, DataType::Int32 | DataType::Int64),
            Meta::Offset => matches!(t, DataType::Int64),
            Meta::Topic | Meta::Headers => matches!(t, DataType::Utf8),
            Meta::Key => matches!(t, DataType::Utf8 | DataType::Binary),
        }
    }

    fn type_hint(self) -> &'static str {
        match self {
            Meta::Timestamp => "TIMESTAMP(3)",
            Meta::Partition => "INT",
            Meta::Offset => "BIGINT",
            Meta::Topic => "STRING",
            Meta::Headers => "STRING (a JSON object of header names to values)",
            Meta::Key => "STRING or BYTES",
        }
    }
}

/// The parsed options and column layout of a Kafka table.
#[derive(Debug, Clone)]
pub(super) struct KafkaTable {
    pub(super) name: String,
    pub(super) topics: Topics,
    /// librdkafka properties (`properties.*` without the prefix).
    pub(super) properties: BTreeMap<String, String>,
    pub(super) commit_offsets: bool,
    pub(super) startup: Startup,
    pub(super) bounded: bool,
    pub(super) discovery: Option<Duration>,
    pub(super) malformed: Malformed,
    /// Read limit of the whole table, shared evenly by its subtasks
    /// (`'scan.max-records-per-second'`).
    pub(super) max_rate: Option<f64>,
    pub(super) delivery: Delivery,
    pub(super) transactional_id_prefix: Option<String>,
    /// Every column of the table as given to the connector.
    pub(super) schema: SchemaRef,
    /// Metadata columns: (column index, what).
    pub(super) metadata: Vec<(usize, Meta)>,
    /// Columns carried in the message value, and their format.
    pub(super) value_columns: Vec<usize>,
    pub(super) value_schema: SchemaRef,
    pub(super) value_format: Format,
    /// Columns carried in the message key (`'key.fields'`, or the primary
    /// key for upsert-kafka), and their format.
    pub(super) key_columns: Vec<usize>,
    pub(super) key_schema: SchemaRef,
    pub(super) key_format: Option<Format>,
}

impl KafkaTable {
    pub(super) fn from_table(table: &TableDescriptor, upsert: bool) -> Result<Self> {
        let topics = match (table.option("topic"), table.option("topic-pattern")) {
            (Some(_), Some(_)) => {
                return Err(bad_option(
                    table,
                    "topic-pattern",
                    "cannot be combined with 'topic'; give one of them",
                ))
            }
            (Some(list), None) => {
                let names: Vec<String> = list
                    .split([';', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if names.is_empty() {
                    return Err(bad_option(table, "topic", "names no topic"));
                }
                Topics::List(names)
            }
            (None, Some(p)) => {
                Topics::Pattern(regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    bad_option(
                        table,
                        "topic-pattern",
                        &format!("is not a regular expression: {e}"),
                    )
                })?)
            }
            (None, None) => {
                return Err(EngineError::Plan(format!(
                    "table '{}' needs the option 'topic' (or 'topic-pattern' for a source)",
                    table.name
                )))
            }
        };
        table.required("properties.bootstrap.servers")?;
        let mut properties = BTreeMap::new();
        for (k, v) in &table.options {
            if let Some(p) = k.strip_prefix("properties.") {
                if !OWN_PROPERTIES.contains(&p) {
                    properties.insert(p.to_string(), v.clone());
                }
            }
        }
        let commit_offsets = table.bool_option("properties.commit.offsets.on.checkpoint", true)?;
        let has_group = properties.contains_key("group.id");
        let startup = match table.option("scan.startup.mode") {
            None if has_group => Startup::GroupOffsets,
            None | Some("earliest-offset") => Startup::Earliest,
            Some("latest-offset") => Startup::Latest,
            Some("group-offsets") => {
                if !has_group {
                    return Err(bad_option(
                        table,
                        "scan.startup.mode",
                        "is 'group-offsets', which needs 'properties.group.id'",
                    ));
                }
                Startup::GroupOffsets
            }
            Some("timestamp") => {
                let raw = table.required("scan.startup.timestamp-millis")?;
                Startup::Timestamp(parse_timestamp_millis(raw).ok_or_else(|| {
                    bad_option(
                        table,
                        "scan.startup.timestamp-millis",
                        &format!("must be epoch milliseconds, not '{raw}'"),
                    )
                })?)
            }
            Some("specific-offsets") => {
                let raw = table.required("scan.startup.specific-offsets")?;
                Startup::Specific(parse_specific_offsets(raw).ok_or_else(|| {
                    bad_option(
                        table,
                        "scan.startup.specific-offsets",
                        &format!(
                            "must look like 'partition:0,offset:42;partition:1,offset:300', not '{raw}'"
                        ),
                    )
                })?)
            }
            Some(other) => {
                return Err(bad_option(
                    table,
                    "scan.startup.mode",
                    &format!(
                        "must be one of earliest-offset, latest-offset, group-offsets, timestamp, specific-offsets; not '{other}'"
                    ),
                ))
            }
        };
        let bounded = match table.option("scan.bounded.mode") {
            None | Some("unbounded") => false,
            Some("latest-offset") => true,
            Some(other) => {
                return Err(bad_option(
                    table,
                    "scan.bounded.mode",
                    &format!("must be 'unbounded' or 'latest-offset', not '{other}'"),
                ))
            }
        };
        if bounded && !matches!(&topics, Topics::List(l) if l.len() == 1) {
            return Err(bad_option(
                table,
                "scan.bounded.mode",
                "needs a table that reads exactly one 'topic'",
            ));
        }
        let discovery = match table.option("scan.topic-partition-discovery.interval") {
            Some(v) if v.trim() == "0" || v.trim().starts_with('-') => None,
            _ => Some(table.duration_option(
                "scan.topic-partition-discovery.interval",
                Duration::from_secs(30),
            )?),
        };
        let ignore = table.bool_option("json.ignore-parse-errors", false)?
            || table.bool_option("csv.ignore-parse-errors", false)?;
        let malformed = match table.option("scan.malformed-records") {
            None if ignore => Malformed::Skip,
            None | Some("fail") => Malformed::Fail,
            Some("skip") => Malformed::Skip,
            Some("dead-letter") => Malformed::DeadLetter(
                table
                    .option("scan.dead-letter-topic")
                    .ok_or_else(|| {
                        bad_option(
                            table,
                            "scan.malformed-records",
                            "is 'dead-letter', which needs 'scan.dead-letter-topic'",
                        )
                    })?
                    .to_string(),
            ),
            Some(other) => {
                return Err(bad_option(
                    table,
                    "scan.malformed-records",
                    &format!("must be one of fail, skip, dead-letter; not '{other}'"),
                ))
            }
        };
        let max_rate = match table.option("scan.max-records-per-second") {
            None => None,
            Some(_) => {
                Some(
                    crate::options::min_u64_option(table, "scan.max-records-per-second", 1, 1)?
                        as f64,
                )
            }
        };
        let delivery = match table.option("sink.delivery-guarantee") {
            None | Some("at-least-once") => Delivery::AtLeastOnce,
            Some("none") => Delivery::None,
            Some("exactly-once") => Delivery::ExactlyOnce,
            Some(other) => {
                return Err(bad_option(
                    table,
                    "sink.delivery-guarantee",
                    &format!("must be one of none, at-least-once, exactly-once; not '{other}'"),
                ))
            }
        };
        let transactional_id_prefix = table
            .option("sink.transactional-id-prefix")
            .map(String::from);

        // Column layout.
        let schema = Arc::clone(&table.schema);
        let mut metadata = Vec::new();
        for i in 0..schema.fields().len() {
            if let Some((key, _)) = table.metadata_column(i) {
                let meta = Meta::parse(key).ok_or_else(|| {
                    EngineError::Plan(format!(
                        "column '{}' of table '{}' reads unknown metadata '{key}'; the kafka connector has: {}",
                        schema.field(i).name(),
                        table.name,
                        Meta::KEYS
                    ))
                })?;
                if !meta.fits(schema.field(i).data_type()) {
                    return Err(EngineError::Plan(format!(
                        "metadata column '{}' of table '{}' ('{key}') must be {}",
                        schema.field(i).name(),
                        table.name,
                        meta.type_hint()
                    )));
                }
                metadata.push((i, meta));
            }
        }
        let physical: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !metadata.iter().any(|(m, _)| m == i))
            .filter(|&i| schema.field(i).name() != ROW_KIND_COLUMN)
            .collect();
        let find = |name: &str| {
            physical
                .iter()
                .copied()
                .find(|&i| schema.field(i).name().eq_ignore_ascii_case(name))
        };
        let key_columns: Vec<usize> = if upsert {
            if table.primary_key.is_empty() {
                return Err(EngineError::Plan(format!(
                    "upsert-kafka table '{}' needs a PRIMARY KEY (...) NOT ENFORCED: it becomes the record key",
                    table.name
                )));
            }
            table.primary_key.clone()
        } else {
            match table.option("key.fields") {
                None => Vec::new(),
                Some(list) => list
                    .split([';', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|n| {
                        find(n).ok_or_else(|| {
                            bad_option(
                                table,
                                "key.fields",
                                &format!("names '{n}', which is not a physical column"),
                            )
                        })
                    })
                    .collect::<Result<_>>()?,
            }
        };
        let key_format = match table.option("key.format") {
            Some(f) => Some(Format::from_option(table, "key.format", f)?),
            None if !key_columns.is_empty() => {
                if upsert {
                    return Err(EngineError::Plan(format!(
                        "upsert-kafka table '{}' needs 'key.format' (json, csv or raw)",
                        table.name
                    )));
                }
                return Err(bad_option(
                    table,
                    "key.fields",
                    "needs 'key.format' (json, csv or raw) as well",
                ));
            }
            None => None,
        };
        if key_format.is_some() && key_columns.is_empty() {
            return Err(bad_option(
                table,
                "key.format",
                "needs 'key.fields' naming the key columns",
            ));
        }
        let except_key = match table.option("value.fields-include") {
            None | Some("ALL") | Some("all") => false,
            Some("EXCEPT_KEY") | Some("except_key") => true,
            Some(other) => {
                return Err(bad_option(
                    table,
                    "value.fields-include",
                    &format!("must be ALL or EXCEPT_KEY, not '{other}'"),
                ))
            }
        };
        let value_columns: Vec<usize> = physical
            .iter()
            .copied()
            .filter(|i| !(except_key && key_columns.contains(i)))
            .collect();
        let value_format_key = if table.option("value.format").is_some() {
            "value.format"
        } else {
            "format"
        };
        let value_format = Format::from_option(
            table,
            value_format_key,
            table.option(value_format_key).ok_or_else(|| {
                EngineError::Plan(format!(
                    "table '{}' needs the option 'format' (or 'value.format'): json, csv or raw",
                    table.name
                ))
            })?,
        )?;
        let sub_schema = |cols: &[usize]| -> SchemaRef {
            Arc::new(Schema::new(
                cols.iter()
                    .map(|&i| {
                        let f = schema.field(i);
                        Field::new(f.name(), f.data_type().clone(), f.is_nullable())
                    })
                    .collect::<Vec<_>>(),
            ))
        };
        let value_schema = sub_schema(&value_columns);
        let key_schema = sub_schema(&key_columns);
        value_format.check_schema(table, value_format_key, &value_schema)?;
        if let Some(f) = key_format {
            f.check_schema(table, "key.format", &key_schema)?;
        }
        Ok(Self {
            name: table.name.clone(),
            topics,
            properties,
            commit_offsets,
            startup,
            bounded,
            discovery,
            malformed,
            max_rate,
            delivery,
            transactional_id_prefix,
            schema,
            metadata,
            value_columns,
            value_schema,
            value_format,
            key_columns,
            key_schema,
            key_format,
        })
    }

    /// A librdkafka configuration with the table's properties.
    pub(super) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// The single topic a sink writes to.
    pub(super) fn sink_topic(&self) -> Result<&str> {
        match &self.topics {
            Topics::List(l) if l.len() == 1 => Ok(&l[0]),
            _ => Err(EngineError::Plan(format!(
                "sink table '{}' must name exactly one 'topic'",
                self.name
            ))),
        }
    }
}

/// The first delivery failure a producer reported; the producer's context
/// (clones share the slot).
#[derive(Default, Clone)]
pub(super) struct DeliveryErrors(Arc<Mutex<Option<String>>>);

impl ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut g) = self.0.lock() {
                g.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

impl DeliveryErrors {
    /// An error when a delivery failed.
    pub(super) fn check(&self, what: &str) -> Result<()> {
        match self.0.lock().ok().and_then(|g| g.clone()) {
            Some(e) => Err(kafka_error(what, e)),
            None => Ok(()),
        }
    }
}

/// Sends `record`, serving delivery reports while librdkafka's queue is full.
pub(super) fn send_with_retry<C: ProducerContext>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> std::result::Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                r,
            )) => {
                producer.poll(Duration::from_millis(10));
                record = r;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Parses Flink's `partition:0,offset:42;partition:1,offset:300`.
fn parse_specific_offsets(raw: &str) -> Option<BTreeMap<i32, i64>> {
    let mut out = BTreeMap::new();
    for part in raw.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for kv in part.split(',') {
            let (k, v) = kv.split_once(':')?;
            match k.trim() {
                "partition" => partition = v.trim().parse().ok(),
                "offset" => offset = v.trim().parse().ok(),
                _ => return None,
            }
        }
        out.insert(partition?, offset?);
    }
    (!out.is_empty()).then_some(out)
}

/// A Kafka error as a plan or execution error with context.
pub(super) fn kafka_error(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Execution(format!("kafka: {what}: {e}"))
}

#[cfg(test)]
mod option_tests {
    use super::*;

    #[test]
    fn specific_offsets_parse_in_flinks_form() {
        let m =
            parse_specific_offsets("partition:0,offset:42;partition:1,offset:300").expect("valid");
        assert_eq!(m.get(&0), Some(&42));
        assert_eq!(m.get(&1), Some(&300));
        assert!(parse_specific_offsets("partition:x,offset:1").is_none());
        assert!(parse_specific_offsets("0:42").is_none());
    }
}
