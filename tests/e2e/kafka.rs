//! Kafka end to end, against the Tansu broker process on 127.0.0.1: SQL
//! jobs that read readings from a topic (JSON, metadata columns,
//! per-partition watermarks, a malformed record sent to a dead-letter
//! topic) and write window results to a topic with the exactly-once sink,
//! read back by an rdkafka consumer and compared with a computation here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use runnel_connectors::kafka::test_broker::TestBroker;
use runnel_flight::cli::{run_file, RunOptions};

/// 2026-01-01 00:00:00 UTC in ms.
pub const BASE_MS: i64 = 1_767_225_600_000;

/// One reading: device `i % devices`, one reading per device per second.
pub fn reading(i: u64, devices: u64) -> (u64, i64, f64) {
    let device = i % devices;
    let t = BASE_MS + (i / devices) as i64 * 1_000;
    let temperature = ((i * 7_919) % 400) as f64 / 10.0;
    (device, t, temperature)
}

fn iso(ms: i64) -> String {
    chrono_like(ms)
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` for a UTC epoch-millisecond (no chrono in this
/// crate; days from the civil calendar algorithm).
fn chrono_like(ms: i64) -> String {
    let secs = ms.div_euclid(1_000);
    let milli = ms.rem_euclid(1_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3_600, rem % 3_600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// Writes `rows` readings of `devices` devices as JSON to `topic`; device
/// `d` goes to partition `d % partitions`, so each partition is in time order.
pub fn produce_readings(bootstrap: &str, topic: &str, rows: u64, devices: u64, partitions: i32) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for i in 0..rows {
        let (device, t, temperature) = reading(i, devices);
        let value = format!(
            r#"{{"device_id":"d{device}","event_time":"{}","temperature":{temperature}}}"#,
            iso(t)
        );
        let key = format!("d{device}");
        let partition = (device % partitions as u64) as i32;
        let mut rec = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .partition(partition)
            .timestamp(t);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(_), r)) => {
                    p.poll(Duration::from_millis(5));
                    rec = r;
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// A record read back: key, value, headers.
pub struct Record {
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: BTreeMap<String, String>,
}

/// Every record of `topic`, read_committed, to the end of each partition.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let text = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    runnel_connectors::kafka::test_broker::read_topic(bootstrap, topic)
        .into_iter()
        .map(|r| Record {
            key: text(&r.key),
            value: text(&r.value),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), text(v).unwrap_or_default()))
                .collect(),
        })
        .collect()
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("runnel-e2e-kafka-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn sql_job_from_kafka_to_kafka_writes_each_window_once() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("readings", 3);
    broker.create_topic("windows", 2);
    broker.create_topic("bad-readings", 1);
    let (rows, devices) = (6_000u64, 10u64);
    produce_readings(&bootstrap, "readings", rows, devices, 3);
    // One record that is not JSON, in the middle of partition 0.
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    p.send(
        BaseRecord::<str, str>::to("readings")
            .payload("{oops")
            .partition(0),
    )
    .map_err(|(e, _)| e)
    .expect("send");
    p.flush(Duration::from_secs(10)).expect("flush");

    let script = format!(
        "SET 'parallelism' = '2';
SET 'execution.checkpointing.interval' = '200 ms';
CREATE TABLE readings (
  device_id STRING, event_time TIMESTAMP(3), temperature DOUBLE,
  part INT METADATA FROM 'partition' VIRTUAL,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH ('connector' = 'kafka', 'topic' = 'readings',
        'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json',
        'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
        'scan.malformed-records' = 'dead-letter', 'scan.dead-letter-topic' = 'bad-readings');
CREATE TABLE windows (device_id STRING, window_start TIMESTAMP(3), readings BIGINT, hi DOUBLE, lo_part INT, hi_part INT)
WITH ('connector' = 'kafka', 'topic' = 'windows', 'properties.bootstrap.servers' = '{bootstrap}',
      'format' = 'json', 'key.format' = 'raw', 'key.fields' = 'device_id',
      'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'e2e-windows');
INSERT INTO windows
SELECT device_id, window_start, COUNT(*), MAX(temperature), MIN(part), MAX(part)
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY device_id, window_start, window_end;
"
    );
    let dir = temp("sql");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("job.sql");
    std::fs::write(&file, script).expect("script");
    let options = RunOptions {
        parallelism: None,
        checkpoint_dir: Some(dir.join("checkpoints").display().to_string()),
        ..Default::default()
    };
    run_file(&file.display().to_string(), &options, false).expect("the job runs");

    // What the windows must be, computed here from the generator.
    let mut expected: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
    for i in 0..rows {
        let (device, t, temperature) = reading(i, devices);
        let start = t - t.rem_euclid(60_000);
        let e = expected
            .entry((format!("d{device}"), iso(start)))
            .or_insert((0, f64::MIN));
        e.0 += 1;
        e.1 = e.1.max(temperature);
    }
    let got_records = read_topic(&bootstrap, "windows");
    let mut got: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
    for r in &got_records {
        let v: serde_json::Value =
            serde_json::from_str(r.value.as_deref().expect("a value")).expect("JSON value");
        let device = v["device_id"].as_str().expect("device").to_string();
        assert_eq!(
            r.key.as_deref(),
            Some(device.as_str()),
            "the key is the device"
        );
        // Each device lives in one partition, which the metadata column names.
        let partition = device[1..].parse::<i64>().expect("device number") % 3;
        assert_eq!(v["lo_part"].as_i64(), Some(partition));
        assert_eq!(v["hi_part"].as_i64(), Some(partition));
        let start = v["window_start"].as_str().expect("window_start");
        // arrow writes whole seconds without a fraction.
        let start = if start.len() == 19 {
            format!("{start}.000")
        } else {
            start.to_string()
        };
        let previous = got.insert(
            (device, start),
            (
                v["readings"].as_i64().expect("readings"),
                v["hi"].as_f64().expect("hi"),
            ),
        );
        assert!(previous.is_none(), "a window was written twice");
    }
    assert_eq!(got_records.len(), expected.len());
    assert_eq!(got, expected);

    let dead = read_topic(&bootstrap, "bad-readings");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some("{oops"));
    assert_eq!(
        dead[0]
            .headers
            .get("runnel.source.topic")
            .map(String::as_str),
        Some("readings")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_malformed_record_stops_the_job_and_names_where_it_is() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    produce_readings(&bootstrap, "in", 10, 2, 1);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    p.send(
        BaseRecord::<str, str>::to("in")
            .payload("not json")
            .partition(0),
    )
    .map_err(|(e, _)| e)
    .expect("send");
    p.flush(Duration::from_secs(10)).expect("flush");
    let script = format!(
        "CREATE TABLE r (device_id STRING, event_time TIMESTAMP(3), temperature DOUBLE)
WITH ('connector' = 'kafka', 'topic' = 'in', 'properties.bootstrap.servers' = '{bootstrap}',
      'format' = 'json', 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE o (device_id STRING) WITH ('connector' = 'kafka', 'topic' = 'out',
      'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json');
INSERT INTO o SELECT device_id FROM r;
"
    );
    let dir = temp("fail");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("job.sql");
    std::fs::write(&file, script).expect("script");
    let err = run_file(&file.display().to_string(), &RunOptions::default(), false)
        .expect_err("the job fails");
    assert!(err.contains("topic 'in' partition 0 at offset 10"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Debezium changes of a product table in a topic, counted per category
/// into an upsert-kafka topic: the last record of each key is the final
/// count, and a category whose last product left has no live record. A
/// broken change is skipped ('scan.malformed-records' = 'skip'), and the
/// tombstone Debezium writes after a delete carries no row. A second
/// query takes the same changes through a LEFT JOIN with a topic of
/// category labels and counts per label into another upsert topic.
#[test]
fn debezium_changes_from_kafka_aggregate_into_an_upsert_topic() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("cdc", 1);
    broker.create_topic("per_category", 1);
    broker.create_topic("labels", 1);
    broker.create_topic("per_label", 1);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    let row = |id: u32, name: &str, cat: &str| {
        format!(r#"{{"id":{id},"name":"{name}","category":"{cat}"}}"#)
    };
    let changes: Vec<(String, Option<String>)> = vec![
        (
            "1".into(),
            Some(format!(
                r#"{{"before":null,"after":{},"op":"r"}}"#,
                row(1, "saw", "tools")
            )),
        ),
        (
            "2".into(),
            Some(format!(
                r#"{{"before":null,"after":{},"op":"r"}}"#,
                row(2, "drill", "tools")
            )),
        ),
        (
            "3".into(),
            Some(format!(
                r#"{{"before":null,"after":{},"op":"c"}}"#,
                row(3, "kite", "toys")
            )),
        ),
        // The saw moves to toys.
        (
            "1".into(),
            Some(format!(
                r#"{{"before":{},"after":{},"op":"u"}}"#,
                row(1, "saw", "tools"),
                row(1, "saw", "toys")
            )),
        ),
        (
            "9".into(),
            Some(r#"{"before":null,"after":null,"op":"x"}"#.into()),
        ),
        (
            "2".into(),
            Some(format!(
                r#"{{"before":{},"after":null,"op":"d"}}"#,
                row(2, "drill", "tools")
            )),
        ),
        ("2".into(), None),
        (
            "4".into(),
            Some(format!(
                r#"{{"before":null,"after":{},"op":"c"}}"#,
                row(4, "glue", "crafts")
            )),
        ),
    ];
    for (key, value) in &changes {
        let mut rec = BaseRecord::<str, str>::to("cdc").key(key).partition(0);
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        p.send(rec).map_err(|(e, _)| e).expect("send");
    }
    // Labels of two categories (crafts has none), a plain JSON stream.
    for (cat, label) in [("toys", "Toys & Games"), ("tools", "Tools")] {
        let v = format!(r#"{{"category":"{cat}","label":"{label}"}}"#);
        p.send(
            BaseRecord::<str, str>::to("labels")
                .key(cat)
                .payload(&v)
                .partition(0),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    }
    p.flush(Duration::from_secs(10)).expect("flush");
    let script = format!(
        "CREATE TABLE products (id BIGINT, name STRING, category STRING)
WITH ('connector' = 'kafka', 'topic' = 'cdc', 'properties.bootstrap.servers' = '{bootstrap}',
      'format' = 'debezium-json', 'scan.bounded.mode' = 'latest-offset',
      'scan.malformed-records' = 'skip');
CREATE TABLE per_category (category STRING, n BIGINT, PRIMARY KEY (category) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'per_category',
      'properties.bootstrap.servers' = '{bootstrap}', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO per_category SELECT category, COUNT(*) FROM products GROUP BY category;
CREATE TABLE labels (category STRING, label STRING)
WITH ('connector' = 'kafka', 'topic' = 'labels', 'properties.bootstrap.servers' = '{bootstrap}',
      'format' = 'json', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE per_label (label STRING, n BIGINT, PRIMARY KEY (label) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'per_label',
      'properties.bootstrap.servers' = '{bootstrap}', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO per_label SELECT label, COUNT(*) FROM (
  SELECT COALESCE(l.label, 'none') AS label
  FROM products p LEFT JOIN (SELECT category, label FROM labels) l ON p.category = l.category
) GROUP BY label;
"
    );
    let dir = temp("debezium");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("job.sql");
    std::fs::write(&file, script).expect("script");
    run_file(&file.display().to_string(), &RunOptions::default(), false).expect("the job runs");
    // The last record of each key.
    let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in read_topic(&bootstrap, "per_category") {
        last.insert(r.key.unwrap_or_default(), r.value);
    }
    let value = |cat: &str| {
        last.iter()
            .find(|(k, _)| k.contains(&format!("\"{cat}\"")))
            .map(|(_, v)| v.clone())
    };
    assert!(
        value("toys")
            .flatten()
            .is_some_and(|v| v.contains(r#""n":2"#)),
        "{last:?}"
    );
    assert!(
        value("crafts")
            .flatten()
            .is_some_and(|v| v.contains(r#""n":1"#)),
        "{last:?}"
    );
    // Tools lost both products: never written (when the aggregate saw its
    // rows come and go in one batch) or deleted by a tombstone.
    assert!(
        matches!(value("tools"), None | Some(None)),
        "tools lost both products: {last:?}"
    );
    // Through the LEFT JOIN: the saw and the kite are labelled toys, the
    // glue has no label; the tools label lost both its products. Folded
    // to the last record of each key, as a compacted topic keeps it.
    let mut labels: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in read_topic(&bootstrap, "per_label") {
        labels.insert(r.key.unwrap_or_default(), r.value);
    }
    let live: BTreeMap<&str, &str> = labels
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_deref()?)))
        .collect();
    assert_eq!(
        live,
        BTreeMap::from([
            (
                r#"{"label":"Toys & Games"}"#,
                r#"{"label":"Toys & Games","n":2}"#
            ),
            (r#"{"label":"none"}"#, r#"{"label":"none","n":1}"#),
        ]),
        "{labels:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// An upsert-kafka topic read as a table: each record is its key's row
/// now, a tombstone deletes the key. The planner's changelog normalize
/// turns that into retractions, so the job's output (another upsert-kafka
/// topic, the value times ten) ends with each key's last row, and the
/// deleted key ends in a tombstone.
#[test]
fn an_upsert_kafka_topic_is_read_as_a_changelog() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("prices", 2);
    broker.create_topic("prices_x10", 1);
    broker.create_topic("by_price", 1);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    let records: Vec<(&str, Option<&str>)> = vec![
        (r#"{"item":"a"}"#, Some(r#"{"item":"a","price":1}"#)),
        (r#"{"item":"b"}"#, Some(r#"{"item":"b","price":5}"#)),
        (r#"{"item":"a"}"#, Some(r#"{"item":"a","price":3}"#)),
        (r#"{"item":"c"}"#, Some(r#"{"item":"c","price":7}"#)),
        (r#"{"item":"b"}"#, None),
        // The same row again changes nothing.
        (r#"{"item":"c"}"#, Some(r#"{"item":"c","price":7}"#)),
    ];
    for (key, value) in &records {
        // Keys go to a partition each, as a keyed producer does.
        let partition = i32::from(key.contains("\"b\""));
        let mut rec = BaseRecord::<str, str>::to("prices")
            .key(key)
            .partition(partition);
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        p.send(rec).map_err(|(e, _)| e).expect("send");
    }
    p.flush(Duration::from_secs(10)).expect("flush");
    let script = format!(
        "SET 'parallelism' = '2';
CREATE TABLE prices (item STRING, price BIGINT, PRIMARY KEY (item) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'prices', 'properties.bootstrap.servers' = '{bootstrap}',
      'key.format' = 'json', 'value.format' = 'json', 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE prices_x10 (item STRING, price BIGINT, PRIMARY KEY (item) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'prices_x10',
      'properties.bootstrap.servers' = '{bootstrap}', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO prices_x10 SELECT item, price * 10 FROM prices;
CREATE TABLE by_price (price BIGINT, item STRING, PRIMARY KEY (price) NOT ENFORCED)
WITH ('connector' = 'upsert-kafka', 'topic' = 'by_price',
      'properties.bootstrap.servers' = '{bootstrap}', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO by_price SELECT price, item FROM prices;
"
    );
    let dir = temp("upsert-source");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("job.sql");
    std::fs::write(&file, script).expect("script");
    run_file(&file.display().to_string(), &RunOptions::default(), false).expect("the job runs");
    let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
    let all = read_topic(&bootstrap, "prices_x10");
    for r in &all {
        last.insert(r.key.clone().unwrap_or_default(), r.value.clone());
    }
    let value = |item: &str| {
        last.iter()
            .find(|(k, _)| k.contains(&format!("\"{item}\"")))
            .map(|(_, v)| v.clone())
    };
    assert!(
        value("a")
            .flatten()
            .is_some_and(|v| v.contains(r#""price":30"#)),
        "{last:?}"
    );
    assert!(
        value("c")
            .flatten()
            .is_some_and(|v| v.contains(r#""price":70"#)),
        "{last:?}"
    );
    assert_eq!(value("b"), Some(None), "b was deleted: {last:?}");
    // c's repeated row produced no second record.
    let c_records = all
        .iter()
        .filter(|r| r.key.as_deref().is_some_and(|k| k.contains("\"c\"")))
        .count();
    assert_eq!(c_records, 1, "{last:?}");
    // Keyed by price, which the changes are not: a materializer retracts
    // price 1 when a moves to 3 (the sink drops -U rows, so without it
    // price 1 would keep a), and price 5 when b is deleted.
    let mut by_price: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in read_topic(&bootstrap, "by_price") {
        by_price.insert(r.key.unwrap_or_default(), r.value);
    }
    let at = |price: &str| {
        by_price
            .iter()
            .find(|(k, _)| k.contains(&format!(":{price}}}")))
            .map(|(_, v)| v.clone())
    };
    assert!(
        at("3")
            .flatten()
            .is_some_and(|v| v.contains(r#""item":"a""#)),
        "{by_price:?}"
    );
    assert!(
        at("7")
            .flatten()
            .is_some_and(|v| v.contains(r#""item":"c""#)),
        "{by_price:?}"
    );
    assert_eq!(at("1"), Some(None), "{by_price:?}");
    assert_eq!(at("5"), Some(None), "{by_price:?}");
    let _ = std::fs::remove_dir_all(dir);
}
