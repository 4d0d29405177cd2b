//! The options and column layout of a Kafka table, parsed once by
//! [`KafkaTable::from_table`] in named steps, one per group of options.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rdkafka::config::ClientConfig;
use runnel_engine::connector::TableDescriptor;
use runnel_engine::types::ROW_KIND_COLUMN;
use runnel_engine::{EngineError, Result};

use super::format::Format;
use super::OWN_PROPERTIES;
use crate::options::{bad_option, parse_timestamp_millis};

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
    /// `debezium-json` values: change envelopes read as a changelog.
    pub(super) debezium: Option<crate::debezium::Debezium>,
    /// `upsert-kafka`: a record is the key's row now, a tombstone its
    /// delete.
    pub(super) upsert: bool,
    /// What the value decoder reads: `value_schema`, or the envelope.
    pub(super) value_wire_schema: SchemaRef,
    /// Columns carried in the message key (`'key.fields'`, or the primary
    /// key for upsert-kafka), and their format.
    pub(super) key_columns: Vec<usize>,
    pub(super) key_schema: SchemaRef,
    pub(super) key_format: Option<Format>,
}

impl KafkaTable {
    /// Parses `table`'s options and columns; `upsert` for `upsert-kafka`.
    pub(super) fn from_table(table: &TableDescriptor, upsert: bool) -> Result<Self> {
        let topics = topics(table)?;
        let (properties, commit_offsets) = properties(table)?;
        let startup = startup(table, properties.contains_key("group.id"))?;
        let bounded = bounded(table, &topics)?;
        let discovery = discovery(table)?;
        let malformed = malformed(table)?;
        let max_rate = max_rate(table)?;
        let delivery = delivery(table)?;
        let transactional_id_prefix = table
            .option("sink.transactional-id-prefix")
            .map(String::from);
        let schema = Arc::clone(&table.schema);
        let debezium = crate::debezium::Debezium::of(table)?;
        if debezium.is_some() {
            crate::debezium::DebeziumMeta::check_columns(table, "value.")?;
        }
        let metadata = metadata_columns(table, &schema, debezium.is_some())?;
        let layout = Layout::new(table, upsert, &schema, &metadata)?;
        let value_wire_schema = match debezium {
            Some(d) => d.wire_schema(&layout.value_schema),
            None => Arc::clone(&layout.value_schema),
        };
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
            value_columns: layout.value_columns,
            value_schema: layout.value_schema,
            value_format: layout.value_format,
            debezium,
            upsert,
            value_wire_schema,
            key_columns: layout.key_columns,
            key_schema: layout.key_schema,
            key_format: layout.key_format,
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

/// `'topic'` or `'topic-pattern'`.
fn topics(table: &TableDescriptor) -> Result<Topics> {
    Ok(
        match (table.option("topic"), table.option("topic-pattern")) {
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
        },
    )
}

/// The `properties.*` passed to librdkafka, and whether offsets are
/// committed to the group on checkpoints.
fn properties(table: &TableDescriptor) -> Result<(BTreeMap<String, String>, bool)> {
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
    Ok((properties, commit_offsets))
}

/// `'scan.startup.mode'` and the options it needs.
fn startup(table: &TableDescriptor, has_group: bool) -> Result<Startup> {
    Ok(match table.option("scan.startup.mode") {
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
    })
}

/// `'scan.bounded.mode'`.
fn bounded(table: &TableDescriptor, topics: &Topics) -> Result<bool> {
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
    Ok(bounded)
}

/// `'scan.topic-partition-discovery.interval'`; `None`: never.
fn discovery(table: &TableDescriptor) -> Result<Option<Duration>> {
    Ok(
        match table.option("scan.topic-partition-discovery.interval") {
            Some(v) if v.trim() == "0" || v.trim().starts_with('-') => None,
            _ => Some(table.duration_option(
                "scan.topic-partition-discovery.interval",
                Duration::from_secs(30),
            )?),
        },
    )
}

/// `'scan.malformed-records'` (and the older `*.ignore-parse-errors`).
fn malformed(table: &TableDescriptor) -> Result<Malformed> {
    let ignore = table.bool_option("json.ignore-parse-errors", false)?
        || table.bool_option("csv.ignore-parse-errors", false)?;
    Ok(match table.option("scan.malformed-records") {
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
    })
}

/// `'scan.max-records-per-second'`.
fn max_rate(table: &TableDescriptor) -> Result<Option<f64>> {
    Ok(match table.option("scan.max-records-per-second") {
        None => None,
        Some(_) => {
            Some(crate::options::min_u64_option(table, "scan.max-records-per-second", 1, 1)? as f64)
        }
    })
}

/// `'sink.delivery-guarantee'`.
fn delivery(table: &TableDescriptor) -> Result<Delivery> {
    Ok(match table.option("sink.delivery-guarantee") {
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
    })
}

/// The metadata columns: (column index, what). With `debezium` values,
/// `value.*` columns read the change envelope: they are value columns.
fn metadata_columns(
    table: &TableDescriptor,
    schema: &SchemaRef,
    debezium: bool,
) -> Result<Vec<(usize, Meta)>> {
    let mut metadata = Vec::new();
    for i in 0..schema.fields().len() {
        if let Some((key, _)) = table.metadata_column(i) {
            if debezium && key.starts_with("value.") {
                continue;
            }
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
    Ok(metadata)
}

/// Which columns go into the message key and value, and their formats.
struct Layout {
    value_columns: Vec<usize>,
    value_schema: SchemaRef,
    value_format: Format,
    key_columns: Vec<usize>,
    key_schema: SchemaRef,
    key_format: Option<Format>,
}

impl Layout {
    /// The layout of `table`'s columns that are not `metadata`.
    fn new(
        table: &TableDescriptor,
        upsert: bool,
        schema: &SchemaRef,
        metadata: &[(usize, Meta)],
    ) -> Result<Self> {
        let physical: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !metadata.iter().any(|(m, _)| m == i))
            .filter(|&i| schema.field(i).name() != ROW_KIND_COLUMN)
            .collect();
        let key_columns = key_columns(table, upsert, schema, &physical)?;
        let key_format = key_format(table, upsert, &key_columns)?;
        let value_columns = value_columns(table, &physical, &key_columns)?;
        let (value_format, value_format_key) = value_format(table)?;
        let sub_schema = |cols: &[usize]| -> SchemaRef {
            Arc::new(Schema::new(
                cols.iter()
                    .map(|&i| {
                        let f = schema.field(i);
                        // Envelope metadata of a Debezium value keeps its
                        // key (see `crate::debezium`).
                        Field::new(f.name(), f.data_type().clone(), f.is_nullable())
                            .with_metadata(f.metadata().clone())
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
            value_columns,
            value_schema,
            value_format,
            key_columns,
            key_schema,
            key_format,
        })
    }
}

/// The key columns: `'key.fields'`, or the primary key for upsert-kafka.
fn key_columns(
    table: &TableDescriptor,
    upsert: bool,
    schema: &SchemaRef,
    physical: &[usize],
) -> Result<Vec<usize>> {
    let find = |name: &str| {
        physical
            .iter()
            .copied()
            .find(|&i| schema.field(i).name().eq_ignore_ascii_case(name))
    };
    if upsert {
        if table.primary_key.is_empty() {
            return Err(EngineError::Plan(format!(
                "upsert-kafka table '{}' needs a PRIMARY KEY (...) NOT ENFORCED: it becomes the record key",
                table.name
            )));
        }
        return Ok(table.primary_key.clone());
    }
    match table.option("key.fields") {
        None => Ok(Vec::new()),
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
            .collect::<Result<_>>(),
    }
}

/// `'key.format'`, which key columns need and only they allow.
fn key_format(
    table: &TableDescriptor,
    upsert: bool,
    key_columns: &[usize],
) -> Result<Option<Format>> {
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
    Ok(key_format)
}

/// The value columns: every physical column, or with
/// `'value.fields-include' = 'EXCEPT_KEY'` those not in the key.
fn value_columns(
    table: &TableDescriptor,
    physical: &[usize],
    key_columns: &[usize],
) -> Result<Vec<usize>> {
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
    Ok(physical
        .iter()
        .copied()
        .filter(|i| !(except_key && key_columns.contains(i)))
        .collect())
}

/// The value format and the option that gave it (`'value.format'` or
/// `'format'`).
fn value_format(table: &TableDescriptor) -> Result<(Format, &'static str)> {
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
    Ok((value_format, value_format_key))
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
