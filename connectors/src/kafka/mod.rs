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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use runnel_engine::connector::{Connector, Resource, SourceTable, TableDescriptor};
use runnel_engine::operator::OperatorFactory;
use runnel_engine::{EngineError, Result};

mod format;
mod sink;
mod source;
mod table;
pub mod test_broker;
#[cfg(test)]
mod tests;

use table::{Delivery, KafkaTable, Malformed, Meta, Startup, Topics};

const OPTIONS: &[&str] = &[
    "topic",
    "topic-pattern",
    "properties.",
    "format",
    "debezium-json.schema-include",
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
    "scan.parallelism",
    "sink.delivery-guarantee",
    "sink.transactional-id-prefix",
];

/// Client properties anyone may set: they name no file, command or other
/// server. The rest (`ssl.ca.location`, `sasl.kerberos.kinit.cmd`, ...)
/// are for administrators.
const PLAIN_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "client.id",
    "auto.offset.reset",
    "isolation.level",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "transaction.timeout.ms",
    "session.timeout.ms",
    "fetch.max.bytes",
    "message.max.bytes",
    "linger.ms",
    "compression.type",
];

/// The brokers a Kafka table connects to and the properties only
/// administrators may set.
fn kafka_resources(table: &TableDescriptor) -> Vec<Resource> {
    let mut out: Vec<Resource> = table
        .option("properties.bootstrap.servers")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Resource::Server(s.to_string()))
        .collect();
    out.extend(table.options.keys().filter_map(|k| {
        let property = k.strip_prefix("properties.")?;
        (!PLAIN_PROPERTIES.contains(&property)).then(|| Resource::AdminOption(k.clone()))
    }));
    // A topic is data another table may own; a pattern could match any.
    for key in ["topic", "scan.dead-letter-topic"] {
        if let Some(t) = table.option(key) {
            out.extend(
                t.split(';')
                    .map(|t| Resource::Topic(format!("kafka:{}", t.trim()))),
            );
        }
    }
    if table.option("topic-pattern").is_some() {
        out.push(Resource::AdminOption("topic-pattern".into()));
    }
    out
}

/// `'scan.parallelism'`: the source's own parallelism (as in Flink), for
/// topics with fewer partitions than the job's parallelism.
fn scan_parallelism(table: &TableDescriptor) -> Result<Option<usize>> {
    match table.option("scan.parallelism") {
        None => Ok(None),
        Some(_) => Ok(Some(
            usize::try_from(crate::options::min_u64_option(
                table,
                "scan.parallelism",
                1,
                1,
            )?)
            .unwrap_or(usize::MAX),
        )),
    }
}

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

    fn resources(&self, table: &TableDescriptor) -> Vec<Resource> {
        kafka_resources(table)
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
            parallelism: scan_parallelism(table)?,
            in_memory: false,
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
        if t.debezium.is_some() {
            return Err(crate::options::bad_option(
                table,
                "format",
                "'debezium-json' is read-only here: the kafka sink writes json, csv or raw",
            ));
        }
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

    fn resources(&self, table: &TableDescriptor) -> Vec<Resource> {
        kafka_resources(table)
    }

    /// Reads the topic as an upsert stream: each record's row as `+U`,
    /// each tombstone as `-D` of its key (the planner puts a changelog
    /// normalize after the scan, which turns this into a full changelog).
    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        let t = Arc::new(KafkaTable::from_table(table, true)?);
        if t.debezium.is_some() {
            return Err(crate::options::bad_option(
                table,
                "value.format",
                "cannot be 'debezium-json' for upsert-kafka: the record key and tombstones say what changed",
            ));
        }
        Ok(SourceTable {
            bounded: t.bounded,
            parallelism: scan_parallelism(table)?,
            in_memory: false,
            factory: source::factory(t),
        })
    }

    fn sink(&self, table: &TableDescriptor, updating: bool) -> Result<OperatorFactory> {
        let t = Arc::new(KafkaTable::from_table(table, true)?);
        sink::factory(t, updating)
    }

    fn writes_upserts(&self, _table: &TableDescriptor) -> bool {
        true
    }
}

/// The first delivery failure a producer reported; the producer's context
/// (clones share the slot).
#[derive(Default, Clone)]
pub(super) struct DeliveryErrors(Arc<Mutex<Option<KafkaError>>>);

impl ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut g) = self.0.lock() {
                g.get_or_insert_with(|| e.clone());
            }
        }
    }
}

impl DeliveryErrors {
    /// An error when a delivery failed; `action` says what was being sent.
    pub(super) fn check(&self, action: &str) -> Result<()> {
        match self.0.lock().ok().and_then(|g| g.clone()) {
            Some(e) => Err(kafka_error(action, e)),
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

/// A failure of the Kafka client or broker; `action` is what was being
/// done, as a verb phrase.
pub(super) fn kafka_error(action: &str, e: KafkaError) -> EngineError {
    let retryable = is_retryable(&e);
    EngineError::external("kafka", action, retryable, e)
}

/// True for failures that may pass: timeouts, brokers that are down or
/// moved, a coordinator that is loading. Configuration, authorization and
/// fenced producers are not.
fn is_retryable(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    if let KafkaError::Transaction(t) = e {
        return t.is_retriable();
    }
    matches!(
        e.rdkafka_error_code(),
        Some(
            Code::MessageTimedOut
                | Code::RequestTimedOut
                | Code::OperationTimedOut
                | Code::TimedOutQueue
                | Code::BrokerTransportFailure
                | Code::AllBrokersDown
                | Code::Resolve
                | Code::NetworkException
                | Code::BrokerNotAvailable
                | Code::LeaderNotAvailable
                | Code::NotLeaderForPartition
                | Code::CoordinatorLoadInProgress
                | Code::CoordinatorNotAvailable
                | Code::NotCoordinator
                | Code::NotEnoughReplicas
                | Code::NotEnoughReplicasAfterAppend
                | Code::NotController
                | Code::ConcurrentTransactions
                | Code::KafkaStorageError
                | Code::QueueFull
        )
    )
}
