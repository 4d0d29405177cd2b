//! Kafka connector tests against librdkafka's in-process mock cluster (a
//! real Kafka protocol peer: produce, fetch, metadata, offsets, groups and
//! transactions). The mock does not hide records of aborted transactions
//! from read_committed consumers, so no assertion here depends on that;
//! the end-to-end tests with a broker process are in tests/e2e/kafka.rs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use runnel_engine::connector::{
    Connector, TableDescriptor, METADATA_FIELD_KEY, METADATA_VIRTUAL_KEY,
};
use runnel_engine::operator::OperatorMetrics;
use runnel_engine::source::SourcePoll;
use runnel_engine::types::{row_kind_field, RowKind};
use runnel_engine::Result;
use runnel_state::MemorySnapshot;

use super::format::Format;
use super::*;
use crate::testutil::{check_resume_everywhere, drain, table, CheckpointHarness};

type Cluster = MockCluster<'static, DefaultProducerContext>;

fn cluster(topics: &[(&str, i32)]) -> Cluster {
    let c = MockCluster::new(1).expect("mock cluster");
    for (t, n) in topics {
        c.create_topic(t, *n, 1).expect("create topic");
    }
    c
}

/// One record to produce.
#[derive(Clone, Default)]
struct In {
    partition: i32,
    key: Option<String>,
    value: Option<String>,
    timestamp: Option<i64>,
    headers: Vec<(&'static str, &'static str)>,
}

fn produce(c: &Cluster, topic: &str, records: &[In]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap_servers())
        .create()
        .expect("producer");
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut rec: BaseRecord<'_, str, str> = BaseRecord::to(topic)
            .partition(r.partition)
            .headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_str());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_str());
        }
        if let Some(ts) = r.timestamp {
            rec = rec.timestamp(ts);
        }
        p.send(rec).map_err(|(e, _)| e).expect("send");
    }
    p.flush(Duration::from_secs(10)).expect("flush");
}

/// A record read back.
#[derive(Debug, Clone, PartialEq)]
struct Out {
    partition: i32,
    key: Option<String>,
    value: Option<String>,
    timestamp: Option<i64>,
    headers: BTreeMap<String, String>,
}

/// Everything in `topic` now, read_committed, sorted by (partition, offset).
fn read_all(bootstrap: &str, topic: &str) -> Vec<Out> {
    let text = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    crate::kafka::test_broker::read_topic(bootstrap, topic)
        .into_iter()
        .map(|r| Out {
            partition: r.partition,
            key: text(&r.key),
            value: text(&r.value),
            timestamp: r.timestamp,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), text(v).unwrap_or_default()))
                .collect(),
        })
        .collect()
}

fn meta_field(name: &str, t: DataType, key: &str, is_virtual: bool) -> Field {
    let mut md = std::collections::HashMap::from([(METADATA_FIELD_KEY.into(), key.into())]);
    if is_virtual {
        md.insert(METADATA_VIRTUAL_KEY.into(), "true".into());
    }
    Field::new(name, t, true).with_metadata(md)
}

fn source_table(
    c: &Cluster,
    topic: &str,
    fields: Vec<Field>,
    extra: &[(&str, &str)],
) -> TableDescriptor {
    let bootstrap = c.bootstrap_servers();
    let mut options = vec![
        ("connector", "kafka"),
        ("topic", topic),
        ("properties.bootstrap.servers", bootstrap.as_str()),
        ("format", "json"),
        ("scan.startup.mode", "earliest-offset"),
        ("scan.bounded.mode", "latest-offset"),
    ];
    options.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    options.extend_from_slice(extra);
    table(fields, &options)
}

fn json_rows(partition: i32, ids: std::ops::Range<i64>) -> Vec<In> {
    ids.map(|i| In {
        partition,
        key: Some(format!("k{i}")),
        value: Some(format!("{{\"id\": {i}, \"name\": \"n{i}\"}}")),
        timestamp: Some(1_000 + i),
        headers: vec![("h", "v")],
    })
    .collect()
}

fn ids_of(batches: &[RecordBatch]) -> Vec<i64> {
    let mut v: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn source_reads_every_partition_once_with_metadata_across_subtasks() -> Result<()> {
    let c = cluster(&[("events", 3)]);
    for p in 0..3 {
        produce(
            &c,
            "events",
            &json_rows(p, (p as i64 * 100)..(p as i64 * 100 + 40)),
        );
    }
    let fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        meta_field(
            "ts",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            "timestamp",
            false,
        ),
        meta_field("part", DataType::Int32, "partition", true),
        meta_field("off", DataType::Int64, "offset", true),
        meta_field("k", DataType::Utf8, "key", true),
        meta_field("hdrs", DataType::Utf8, "headers", true),
        meta_field("src", DataType::Utf8, "topic", true),
    ];
    let t = source_table(&c, "events", fields, &[]);
    let src = KafkaConnector.source(&t)?;
    assert!(src.bounded);
    let drained = drain(&src, 2)?;
    let all = drained.all();
    let mut expected: Vec<i64> = (0..3).flat_map(|p| (p * 100)..(p * 100 + 40)).collect();
    expected.sort_unstable();
    assert_eq!(ids_of(&all), expected);
    // Both subtasks read something: partitions are spread.
    assert!(drained.batches.iter().all(|b| !b.is_empty()));
    for b in &all {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let ts = b
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let part = b.column(3).as_primitive::<arrow::datatypes::Int32Type>();
        let off = b.column(4).as_primitive::<Int64Type>();
        let key = b.column(5).as_string::<i32>();
        let hdrs = b.column(6).as_string::<i32>();
        let src = b.column(7).as_string::<i32>();
        for i in 0..b.num_rows() {
            let id = ids.value(i);
            assert_eq!(ts.value(i), 1_000 + id);
            assert_eq!(i64::from(part.value(i)), id / 100);
            assert_eq!(off.value(i), id % 100, "offset within its partition");
            assert_eq!(key.value(i), format!("k{id}"));
            assert_eq!(hdrs.value(i), r#"{"h":"v"}"#);
            assert_eq!(src.value(i), "events");
        }
    }
    Ok(())
}

#[test]
fn source_resumes_from_any_position_without_loss_or_repeats() -> Result<()> {
    let c = cluster(&[("one", 1)]);
    // Small runs: produce in several flushes so that reads come in pieces.
    for k in 0..5 {
        produce(&c, "one", &json_rows(0, (k * 30)..(k * 30 + 30)));
    }
    let t = source_table(
        &c,
        "one",
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ],
        &[],
    );
    let src = KafkaConnector.source(&t)?;
    let batches = check_resume_everywhere(&src, 0, 1)?;
    assert!(batches >= 1);
    Ok(())
}

/// Restoring at another parallelism: subtasks of the new run take over
/// the partitions they own now, each from the offset its old owner had
/// reached, so the two runs together read every record exactly once.
#[test]
fn source_resumes_at_another_parallelism_without_loss_or_repeats() -> Result<()> {
    use crate::testutil::{poll_batches, task};
    let c = cluster(&[("r", 5)]);
    for p in 0..5i64 {
        produce(&c, "r", &json_rows(p as i32, (p * 40)..(p * 40 + 40)));
    }
    let t = source_table(
        &c,
        "r",
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ],
        &[],
    );
    let src = KafkaConnector.source(&t)?;
    let metrics = Arc::new(OperatorMetrics::default());
    for (before, after) in [(2usize, 3usize), (3, 1), (1, 4)] {
        let mut seen = Vec::new();
        let mut positions = Vec::new();
        for subtask in 0..before {
            let task = task(subtask, before);
            let mut first = (src.factory)(&task)?;
            first.open(&task, &metrics)?;
            let (head, _, _) = poll_batches(first.as_mut(), 2)?;
            seen.extend(head);
            positions.push(first.snapshot_position()?);
        }
        assert!(
            !seen.is_empty(),
            "the first run read something before its checkpoint"
        );
        for subtask in 0..after {
            let task = task(subtask, after);
            let mut second = (src.factory)(&task)?;
            second.open(&task, &metrics)?;
            second.restore_positions(&positions)?;
            let (tail, _, done) = poll_batches(second.as_mut(), usize::MAX)?;
            assert!(done, "{before} -> {after}: the resumed subtask finishes");
            seen.extend(tail);
        }
        let mut ids = ids_of(&seen);
        ids.sort_unstable();
        assert_eq!(ids, (0..200).collect::<Vec<i64>>(), "{before} -> {after}");
    }
    Ok(())
}

#[test]
fn startup_modes_pick_the_first_record() -> Result<()> {
    let c = cluster(&[("s", 1)]);
    produce(&c, "s", &json_rows(0, 0..10));
    let fields = || {
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]
    };
    let run = |extra: &[(&str, &str)]| -> Result<Vec<i64>> {
        let t = source_table(&c, "s", fields(), extra);
        Ok(ids_of(&drain(&KafkaConnector.source(&t)?, 1)?.all()))
    };
    assert_eq!(run(&[])?, (0..10).collect::<Vec<_>>());
    assert_eq!(
        run(&[
            ("scan.startup.mode", "specific-offsets"),
            ("scan.startup.specific-offsets", "partition:0,offset:7"),
        ])?,
        vec![7, 8, 9]
    );
    // The mock answers no time lookups; 'timestamp' is tested against the
    // broker in tests/e2e/kafka.rs.
    assert_eq!(
        run(&[("scan.startup.mode", "latest-offset")])?,
        Vec::<i64>::new()
    );
    Ok(())
}

/// A subtask measures how far it is behind each partition's end: before it
/// has read anything, the whole partition.
#[test]
fn a_source_measures_its_consumer_lag_per_partition() -> Result<()> {
    let c = cluster(&[("lagging", 2)]);
    produce(&c, "lagging", &json_rows(0, 0..700));
    produce(&c, "lagging", &json_rows(1, 1000..1300));
    let t = source_table(
        &c,
        "lagging",
        vec![Field::new("id", DataType::Int64, false)],
        &[],
    );
    let table = KafkaConnector.source(&t)?;
    let task = crate::testutil::task(0, 1);
    let metrics = Arc::new(OperatorMetrics::default());
    let mut src = (table.factory)(&task)?;
    src.open(&task, &metrics)?;
    // One partition per poll, before the poll reads: the first poll
    // measures partition 0 with nothing read, the second partition 1 after
    // whatever the first poll returned of it.
    let first = src.poll()?;
    let read_of_1 = match &first {
        SourcePoll::Batch { batch, .. } => ids_of(std::slice::from_ref(batch))
            .iter()
            .filter(|id| **id >= 1000)
            .count() as i64,
        _ => 0,
    };
    src.poll()?;
    let mut lag = metrics.partition_lag.lock().expect("lag").clone();
    lag.sort();
    assert_eq!(
        lag,
        vec![
            ("lagging".to_string(), 0, 700),
            ("lagging".to_string(), 1, 300 - read_of_1)
        ]
    );
    Ok(())
}

fn malformed_input() -> Vec<In> {
    let mut rows = json_rows(0, 0..5);
    rows.insert(
        2,
        In {
            partition: 0,
            key: Some("bad".into()),
            value: Some("{\"id\": \"not a number\"".into()),
            timestamp: Some(5),
            headers: vec![],
        },
    );
    rows
}

#[test]
fn a_malformed_record_fails_the_job_with_topic_partition_and_offset() -> Result<()> {
    let c = cluster(&[("m", 1)]);
    produce(&c, "m", &malformed_input());
    let t = source_table(&c, "m", vec![Field::new("id", DataType::Int64, false)], &[]);
    let err = match drain(&KafkaConnector.source(&t)?, 1) {
        Err(e) => e,
        Ok(_) => panic!("a malformed record fails the job by default"),
    };
    let text = err.to_string();
    assert!(text.contains("topic 'm' partition 0 at offset 2"), "{text}");
    Ok(())
}

#[test]
fn malformed_records_can_be_skipped_and_counted() -> Result<()> {
    let c = cluster(&[("m", 1)]);
    produce(&c, "m", &malformed_input());
    let t = source_table(
        &c,
        "m",
        vec![Field::new("id", DataType::Int64, false)],
        &[("scan.malformed-records", "skip")],
    );
    let drained = drain(&KafkaConnector.source(&t)?, 1)?;
    assert_eq!(ids_of(&drained.all()), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        drained
            .metrics
            .malformed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    Ok(())
}

#[test]
fn malformed_records_go_to_the_dead_letter_topic_with_the_error() -> Result<()> {
    let c = cluster(&[("m", 1), ("dlq", 1)]);
    produce(&c, "m", &malformed_input());
    let t = source_table(
        &c,
        "m",
        vec![Field::new("id", DataType::Int64, false)],
        &[
            ("scan.malformed-records", "dead-letter"),
            ("scan.dead-letter-topic", "dlq"),
        ],
    );
    let drained = drain(&KafkaConnector.source(&t)?, 1)?;
    assert_eq!(ids_of(&drained.all()), vec![0, 1, 2, 3, 4]);
    let dead = read_all(&c.bootstrap_servers(), "dlq");
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.key.as_deref(), Some("bad"));
    assert_eq!(d.value.as_deref(), Some("{\"id\": \"not a number\""));
    assert_eq!(
        d.headers.get("runnel.source.topic").map(String::as_str),
        Some("m")
    );
    assert_eq!(
        d.headers.get("runnel.source.offset").map(String::as_str),
        Some("2")
    );
    assert!(d.headers.get("runnel.error").is_some_and(|e| !e.is_empty()));
    Ok(())
}

fn sink_table(c: &Cluster, topic: &str, extra: &[(&str, &str)]) -> TableDescriptor {
    let bootstrap = c.bootstrap_servers();
    let mut options = vec![
        ("connector", "kafka"),
        ("topic", topic),
        ("properties.bootstrap.servers", bootstrap.as_str()),
        ("format", "json"),
    ];
    options.extend_from_slice(extra);
    table(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ],
        &options,
    )
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.collect::<Vec<_>>())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .expect("batch")
}

/// The ids in the JSON values of `topic`, sorted (duplicates kept).
fn written_ids(c: &Cluster, topic: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = read_all(&c.bootstrap_servers(), topic)
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(|v| {
            let j: serde_json::Value = serde_json::from_str(v).expect("json");
            j["id"].as_i64().expect("id")
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn eo(c: &Cluster, topic: &str, prefix: &str) -> TableDescriptor {
    sink_table(
        c,
        topic,
        &[
            ("sink.delivery-guarantee", "exactly-once"),
            ("sink.transactional-id-prefix", prefix),
        ],
    )
}

#[test]
fn exactly_once_sink_writes_a_checkpoint_only_when_it_completes() -> Result<()> {
    let c = cluster(&[("out", 2)]);
    let f = KafkaConnector.sink(&eo(&c, "out", "job-a"), false)?;
    let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
    h.batch(rows(0..10))?;
    h.barrier(1)?;
    h.batch(rows(10..15))?;
    // Nothing is in the topic before checkpoint 1 completes (nothing was
    // even sent: the rows wait in the checkpoint).
    assert_eq!(written_ids(&c, "out"), Vec::<i64>::new());
    h.complete(1)?;
    assert_eq!(written_ids(&c, "out"), (0..10).collect::<Vec<_>>());
    h.barrier(2)?;
    h.complete(2)?;
    assert_eq!(written_ids(&c, "out"), (0..15).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn exactly_once_sink_commits_a_restored_checkpoint_that_was_not_committed() -> Result<()> {
    // Proves: rows of a checkpoint that completed but whose transaction
    // never ran are written by the restored subtask (no loss). That rows
    // are not written twice when the commit did happen needs the broker's
    // transactional offset commits, which the mock drops; tests/e2e/kafka.rs
    // proves it against Tansu.
    let c = cluster(&[("out", 1)]);
    let f = KafkaConnector.sink(&eo(&c, "out", "job-b"), false)?;
    let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
    h.batch(rows(0..10))?;
    let snap1 = h.barrier(1)?;
    h.batch(rows(10..12))?;
    drop(h);
    let mut h = CheckpointHarness::open(&f, 0, 1, &snap1)?;
    assert_eq!(written_ids(&c, "out"), (0..10).collect::<Vec<_>>());
    // The rows after the barrier were lost with the crash; the source
    // replays them into the new instance.
    h.batch(rows(10..12))?;
    h.end()?;
    h.barrier(runnel_engine::types::Barrier::FINAL_CHECKPOINT)?;
    h.complete(runnel_engine::types::Barrier::FINAL_CHECKPOINT)?;
    assert_eq!(written_ids(&c, "out"), (0..12).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn a_fresh_run_with_the_same_prefix_is_not_mistaken_for_a_recovery() -> Result<()> {
    let c = cluster(&[("out", 1)]);
    let f = KafkaConnector.sink(&eo(&c, "out", "job-c"), false)?;
    let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
    h.batch(rows(0..5))?;
    h.barrier(1)?;
    h.complete(1)?;
    drop(h);
    // A new run starts from no state: its checkpoint ids start at 1 again,
    // but its lineage differs, so its checkpoint 1 is written too.
    let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
    h.batch(rows(100..103))?;
    h.barrier(1)?;
    h.complete(1)?;
    assert_eq!(written_ids(&c, "out"), vec![0, 1, 2, 3, 4, 100, 101, 102]);
    Ok(())
}

#[test]
fn a_failed_commit_fails_the_job_and_recovery_writes_once() -> Result<()> {
    let c = cluster(&[("out", 1)]);
    let f = KafkaConnector.sink(&eo(&c, "out", "job-e"), false)?;
    let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
    h.batch(rows(0..4))?;
    let snap = h.barrier(1)?;
    // The broker refuses to add the partition to the transaction, so no
    // record reaches the log and the commit fails.
    c.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 4],
    );
    let err = h.complete(1).expect_err("the transaction fails");
    assert!(err.to_string().contains("transaction"), "{err}");
    drop(h);
    c.clear_request_errors(RDKafkaApiKey::AddPartitionsToTxn);
    assert_eq!(written_ids(&c, "out"), Vec::<i64>::new());
    let _h = CheckpointHarness::open(&f, 0, 1, &snap)?;
    assert_eq!(written_ids(&c, "out"), vec![0, 1, 2, 3]);
    Ok(())
}

#[test]
fn exactly_once_needs_a_transactional_id_prefix() -> Result<()> {
    let c = cluster(&[("out", 1)]);
    let t = sink_table(&c, "out", &[("sink.delivery-guarantee", "exactly-once")]);
    let err = KafkaConnector
        .sink(&t, false)
        .err()
        .expect("needs a prefix");
    assert!(
        err.to_string().contains("sink.transactional-id-prefix"),
        "{err}"
    );
    Ok(())
}

#[test]
fn at_least_once_sink_writes_keys_and_timestamps() -> Result<()> {
    let c = cluster(&[("alo", 1)]);
    let bootstrap = c.bootstrap_servers();
    let t = table(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            meta_field(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                "timestamp",
                false,
            ),
        ],
        &[
            ("connector", "kafka"),
            ("topic", "alo"),
            ("properties.bootstrap.servers", bootstrap.as_str()),
            ("format", "csv"),
            ("key.format", "raw"),
            ("key.fields", "name"),
        ],
    );
    let f = KafkaConnector.sink(&t, false)?;
    let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
    let b = rows(0..3);
    let ts = arrow::array::TimestampMillisecondArray::from(vec![10, 20, 30]);
    let b = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", ts.data_type().clone(), true),
        ])),
        vec![b.column(0).clone(), b.column(1).clone(), Arc::new(ts)],
    )?;
    h.batch(b)?;
    // At-least-once: the barrier returns only when the broker has the rows.
    h.barrier(1)?;
    let got = read_all(&bootstrap, "alo");
    let seen: Vec<(Option<String>, Option<String>, Option<i64>)> = got
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some("n0".into()), Some("0,n0".into()), Some(10)),
            (Some("n1".into()), Some("1,n1".into()), Some(20)),
            (Some("n2".into()), Some("2,n2".into()), Some(30)),
        ]
    );
    Ok(())
}

/// Debezium values with envelope metadata (`value.*`) next to the
/// record's own (`offset`): both rows of an update carry the update's
/// offset and op; a malformed key gets a clear error.
#[test]
fn debezium_values_expose_the_envelope_as_metadata() -> Result<()> {
    let c = cluster(&[("cdc", 1)]);
    let value = |before: &str, after: &str, op: &str, table: &str| {
        Some(format!(
            r#"{{"before":{before},"after":{after},"op":"{op}","ts_ms":77,"source":{{"ts_ms":70,"db":"shop","table":"{table}"}}}}"#
        ))
    };
    produce(
        &c,
        "cdc",
        &[
            In {
                value: value("null", r#"{"id":1,"name":"a"}"#, "c", "items"),
                ..In::default()
            },
            In {
                value: value(
                    r#"{"id":1,"name":"a"}"#,
                    r#"{"id":1,"name":"b"}"#,
                    "u",
                    "items",
                ),
                ..In::default()
            },
        ],
    );
    let fields = vec![
        Field::new("id", DataType::Int64, false),
        meta_field("op", DataType::Utf8, "value.op", true),
        meta_field("off", DataType::Int64, "offset", true),
        meta_field("db", DataType::Utf8, "value.source.database", true),
        meta_field(
            "changed",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            "value.source.timestamp",
            true,
        ),
        Field::new("name", DataType::Utf8, true),
    ];
    let t = source_table(&c, "cdc", fields.clone(), &[("format", "debezium-json")]);
    let all = drain(&KafkaConnector.source(&t)?, 1)?.all();
    let mut got = Vec::new();
    for b in &all {
        let kinds = runnel_engine::types::row_kinds(b)?;
        for (i, kind) in kinds.iter().enumerate() {
            got.push(format!(
                "{} {} {} {} {} {} {}",
                kind.short_string(),
                b.column(0).as_primitive::<Int64Type>().value(i),
                b.column(1).as_string::<i32>().value(i),
                b.column(2).as_primitive::<Int64Type>().value(i),
                b.column(3).as_string::<i32>().value(i),
                b.column(4)
                    .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .value(i),
                b.column(5).as_string::<i32>().value(i),
            ));
        }
    }
    assert_eq!(
        got,
        [
            "+I 1 c 0 shop 70 a",
            "-U 1 u 1 shop 70 a",
            "+U 1 u 1 shop 70 b"
        ]
    );
    let mut bad = fields;
    bad[1] = meta_field("op", DataType::Utf8, "value.operation", true);
    let err = KafkaConnector
        .source(&source_table(
            &c,
            "cdc",
            bad,
            &[("format", "debezium-json")],
        ))
        .err()
        .expect("unknown key");
    assert!(
        err.to_string()
            .contains("debezium-json has: value.op, value.ingestion-timestamp"),
        "{err}"
    );
    Ok(())
}

#[test]
fn upsert_kafka_writes_updates_as_keyed_records_and_deletes_as_tombstones() -> Result<()> {
    let c = cluster(&[("up", 1)]);
    let bootstrap = c.bootstrap_servers();
    let mut t = table(
        vec![
            Field::new("region", DataType::Utf8, false),
            Field::new("total", DataType::Int64, true),
        ],
        &[
            ("connector", "upsert-kafka"),
            ("topic", "up"),
            ("properties.bootstrap.servers", bootstrap.as_str()),
            ("key.format", "json"),
            ("value.format", "json"),
        ],
    );
    t.primary_key = vec![0];
    let err = UpsertKafkaConnector
        .sink(
            &table(
                t.schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect(),
                &[
                    ("topic", "up"),
                    ("properties.bootstrap.servers", bootstrap.as_str()),
                    ("key.format", "json"),
                    ("value.format", "json"),
                ],
            ),
            true,
        )
        .err()
        .expect("needs a primary key");
    assert!(err.to_string().contains("PRIMARY KEY"), "{err}");
    let f = UpsertKafkaConnector.sink(&t, true)?;
    let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("total", DataType::Int64, true),
        row_kind_field(),
    ]));
    // The last -U has no +U of its key after it (a filter dropped it): the
    // key's row is gone.
    let kinds = [
        RowKind::Insert,
        RowKind::UpdateBefore,
        RowKind::UpdateAfter,
        RowKind::Delete,
        RowKind::UpdateBefore,
    ];
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["eu", "eu", "eu", "us", "ap"])),
            Arc::new(Int64Array::from(vec![1, 1, 3, 7, 2])),
            runnel_engine::types::row_kind_array(&kinds),
        ],
    )?;
    h.batch(b)?;
    h.barrier(1)?;
    let got: Vec<(Option<String>, Option<String>)> = read_all(&bootstrap, "up")
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Some(r#"{"region":"eu"}"#.into()),
                Some(r#"{"region":"eu","total":1}"#.into())
            ),
            (
                Some(r#"{"region":"eu"}"#.into()),
                Some(r#"{"region":"eu","total":3}"#.into())
            ),
            (Some(r#"{"region":"us"}"#.into()), None),
            (Some(r#"{"region":"ap"}"#.into()), None),
        ]
    );
    Ok(())
}

#[test]
fn options_are_checked_with_clear_errors() {
    let c = cluster(&[("x", 1)]);
    let bad = |extra: &[(&str, &str)]| -> String {
        let t = sink_table(&c, "x", extra);
        match KafkaConnector.source(&t) {
            Err(e) => e.to_string(),
            Ok(_) => String::from("accepted"),
        }
    };
    assert!(bad(&[("scan.startup.mode", "newest")]).contains("earliest-offset, latest-offset"));
    assert!(bad(&[("format", "avro")]).contains("json, csv, raw"));
    assert!(bad(&[("scan.malformed-records", "dead-letter")]).contains("scan.dead-letter-topic"));
    assert!(bad(&[("scan.startup.mode", "group-offsets")]).contains("properties.group.id"));
    assert!(bad(&[("key.fields", "nope"), ("key.format", "json")]).contains("'nope'"));
    let t = sink_table(&c, "x", &[]);
    let mut fields: Vec<Field> = t
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(meta_field("o", DataType::Int64, "offset", false));
    let t2 = table(
        fields,
        &t.options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let err = KafkaConnector
        .sink(&t2, false)
        .err()
        .expect("offset is read-only");
    assert!(err.to_string().contains("VIRTUAL"), "{err}");
    let _ = OperatorMetrics::default();
}

/// Sink tables and readers against the Tansu broker process.
mod broker {
    use super::*;
    use crate::kafka::test_broker::TestBroker;

    fn eo_table(b: &TestBroker, topic: &str, prefix: &str) -> TableDescriptor {
        table(
            vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, true),
            ],
            &[
                ("connector", "kafka"),
                ("topic", topic),
                ("properties.bootstrap.servers", b.bootstrap().as_str()),
                ("format", "json"),
                ("sink.delivery-guarantee", "exactly-once"),
                ("sink.transactional-id-prefix", prefix),
            ],
        )
    }

    fn ids(b: &TestBroker, topic: &str) -> Vec<i64> {
        let mut ids: Vec<i64> = read_all(&b.bootstrap(), topic)
            .iter()
            .filter_map(|r| r.value.as_ref())
            .map(|v| {
                let j: serde_json::Value = serde_json::from_str(v).expect("json");
                j["id"].as_i64().expect("id")
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_checkpoint_committed_before_a_crash_is_not_written_again() -> Result<()> {
        // Proves the other half of exactly-once: the marker committed in
        // the same transaction as the rows tells a restored subtask that
        // its checkpoint is already in the topic. No transaction is aborted
        // here, so Tansu's visible aborted records cannot mask a duplicate.
        let b = TestBroker::start();
        b.create_topic("out", 2);
        let f = KafkaConnector.sink(&eo_table(&b, "out", "job-r"), false)?;
        let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
        h.batch(rows(0..10))?;
        h.barrier(1)?;
        h.complete(1)?;
        h.batch(rows(10..20))?;
        let snap2 = h.barrier(2)?;
        h.complete(2)?;
        assert_eq!(ids(&b, "out"), (0..20).collect::<Vec<_>>());
        // Crash after checkpoint 2 was committed: its restored state still
        // holds the entry, the marker says it is in.
        drop(h);
        let h = CheckpointHarness::open(&f, 0, 1, &snap2)?;
        drop(h);
        let mut h = CheckpointHarness::open(&f, 0, 1, &snap2)?;
        assert_eq!(ids(&b, "out"), (0..20).collect::<Vec<_>>());
        h.batch(rows(20..25))?;
        h.barrier(3)?;
        h.complete(3)?;
        assert_eq!(ids(&b, "out"), (0..25).collect::<Vec<_>>());
        // A second subtask keeps its own marker.
        let mut h1 = CheckpointHarness::open(&f, 1, 2, &MemorySnapshot::default())?;
        h1.batch(rows(100..102))?;
        h1.barrier(1)?;
        h1.complete(1)?;
        let mut want: Vec<i64> = (0..25).collect();
        want.extend([100, 101]);
        assert_eq!(ids(&b, "out"), want);
        Ok(())
    }

    #[test]
    fn a_run_resumed_from_a_stop_savepoint_commits_its_own_checkpoints() -> Result<()> {
        // The end of input (or a stop) commits under the final checkpoint's
        // id, the largest there is. A run resumed from that savepoint must
        // not take its own, smaller checkpoint ids for committed ones.
        let b = TestBroker::start();
        b.create_topic("out", 1);
        let f = KafkaConnector.sink(&eo_table(&b, "out", "job-s"), false)?;
        let mut h = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
        h.batch(rows(0..4))?;
        h.end()?;
        let last = runnel_engine::types::Barrier::FINAL_CHECKPOINT;
        let savepoint = h.barrier(last)?;
        h.complete(last)?;
        drop(h);
        let mut h = CheckpointHarness::open(&f, 0, 1, &savepoint)?;
        h.batch(rows(4..8))?;
        let snap = h.barrier(5)?;
        drop(h); // killed before checkpoint 5 was committed
        let _h = CheckpointHarness::open(&f, 0, 1, &snap)?;
        assert_eq!(ids(&b, "out"), (0..8).collect::<Vec<_>>());
        Ok(())
    }

    #[test]
    fn a_replacement_subtask_fences_the_old_producer() -> Result<()> {
        // Proves that a zombie (an old instance still running after its
        // replacement started, same transactional id) cannot commit.
        let b = TestBroker::start();
        b.create_topic("out", 1);
        let f = KafkaConnector.sink(&eo_table(&b, "out", "job-f"), false)?;
        let mut old = CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default())?;
        old.batch(rows(0..3))?;
        old.barrier(1)?;
        old.complete(1)?;
        old.batch(rows(3..6))?;
        let snap = old.barrier(2)?;
        let _new = CheckpointHarness::open(&f, 0, 1, &snap)?;
        assert!(old.complete(2).is_err(), "the old producer is fenced");
        assert_eq!(ids(&b, "out"), (0..6).collect::<Vec<_>>());
        Ok(())
    }
}

#[test]
fn each_record_must_be_exactly_one_value() {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let ok = Format::Json
        .decode_all(&schema, &[b"{\"id\":1}", b"{\"id\":2}\n"])
        .expect("two records, two rows");
    assert_eq!(ok.num_rows(), 2);
    // Two values in one record and none in the next: as many rows as
    // records, but not one per record.
    assert!(Format::Json
        .decode_all(&schema, &[b"{\"id\":1} {\"id\":2}", b" "])
        .is_err());
    // Half a value in each of two records.
    assert!(Format::Json
        .decode_all(&schema, &[b"{\"id\":", b"1}"])
        .is_err());
    assert!(Format::Json
        .decode_one(&schema, b"{\"id\":1} {\"id\":2}")
        .is_err());
    assert!(Format::Csv(b',')
        .decode_all(&schema, &[b"1\n2", b""])
        .is_err());
    assert_eq!(
        Format::Csv(b',')
            .decode_all(&schema, &[b"1", b"2\r\n"])
            .expect("two lines")
            .num_rows(),
        2
    );
}

#[test]
fn tables_with_key_fields_are_not_pruned() {
    let c = cluster(&[("x", 1)]);
    let plain = sink_table(&c, "x", &[]);
    assert!(KafkaConnector.supports_projection(&plain));
    let keyed = sink_table(&c, "x", &[("key.fields", "id"), ("key.format", "raw")]);
    assert!(!KafkaConnector.supports_projection(&keyed));
}
