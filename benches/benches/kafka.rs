//! Kafka throughput against a local broker (Tansu 0.6 with in-memory
//! storage on 127.0.0.1, started by the benchmark), side by side in one run
//! (not criterion: each sample is a whole job).
//!
//! The input topic `readings` (4 partitions) is filled once with
//! `RUNNEL_BENCH_ROWS` JSON records (default 200,000) of about 1 KB each
//! (`device_id`, `event_time`, `temperature` and a padding string), 1,000
//! devices, one reading per device per second of event time. Three jobs,
//! each built from SQL as `runnel run` builds it, at parallelism
//! `RUNNEL_BENCH_PARALLELISM` (default 2), with a checkpoint every second:
//!
//! * `source`: the topic into `blackhole` (read and parse, nothing else);
//! * `eo-off`: the topic -> one-minute TUMBLE per device (COUNT, MAX) ->
//!   a Kafka topic with `'sink.delivery-guarantee' = 'at-least-once'`;
//! * `eo-on`: the same with `'exactly-once'` (one transaction per
//!   checkpoint, see docs/kafka.md).
//!
//! `RUNNEL_BENCH_ROUNDS` rounds (default 3) run the three in turn so that
//! the shared machine's noise falls on all of them; each sink writes to a
//! topic of its own per round, whose record count is checked against the
//! expected number of windows. Figures are input records per second,
//! median over rounds, and the ratio eo-on / eo-off.
//!
//! Output: a summary on stdout and JSON in
//! `$CARGO_TARGET_DIR/kafka-bench.json` (the workspace's `target/` when the
//! variable is unset).
//!
//! Run: `cargo bench -p runnel-benches --bench kafka`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use runnel_connectors::kafka::test_broker::{read_topic, TestBroker};
use runnel_flight::cli::{run_file, RunOptions};

const DEVICES: u64 = 1_000;
const PARTITIONS: i32 = 4;

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fill(bootstrap: &str, rows: u64) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .create()
        .expect("producer");
    let padding = "x".repeat(940);
    for i in 0..rows {
        let device = i % DEVICES;
        let secs = i / DEVICES;
        let value = format!(
            r#"{{"device_id":"d{device}","event_time":"2026-01-01T{:02}:{:02}:{:02}","temperature":{},"payload":"{padding}"}}"#,
            secs / 3_600 % 24,
            secs / 60 % 60,
            secs % 60,
            (i * 7_919 % 400) as f64 / 10.0
        );
        let mut rec = BaseRecord::<str, str>::to("readings")
            .payload(&value)
            .partition((device % PARTITIONS as u64) as i32);
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
    p.flush(Duration::from_secs(120)).expect("flush");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Source,
    EoOff,
    EoOn,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Source => "source",
            Case::EoOff => "eo-off",
            Case::EoOn => "eo-on",
        }
    }
}

fn script(case: Case, bootstrap: &str, parallelism: u64, out_topic: &str) -> String {
    let source = format!(
        "SET 'parallelism' = '{parallelism}';
SET 'execution.checkpointing.interval' = '1 s';
CREATE TABLE readings (device_id STRING, event_time TIMESTAMP(3), temperature DOUBLE, payload STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
WITH ('connector' = 'kafka', 'topic' = 'readings', 'properties.bootstrap.servers' = '{bootstrap}',
      'format' = 'json', 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
"
    );
    let guarantee = match case {
        Case::EoOn => "exactly-once",
        _ => "at-least-once",
    };
    match case {
        Case::Source => format!(
            "{source}CREATE TABLE sink (device_id STRING, temperature DOUBLE, payload STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT device_id, temperature, payload FROM readings;
"
        ),
        Case::EoOff | Case::EoOn => format!(
            "{source}CREATE TABLE sink (device_id STRING, window_start TIMESTAMP(3), n BIGINT, hi DOUBLE)
WITH ('connector' = 'kafka', 'topic' = '{out_topic}', 'properties.bootstrap.servers' = '{bootstrap}',
      'format' = 'json', 'sink.delivery-guarantee' = '{guarantee}',
      'sink.transactional-id-prefix' = '{out_topic}');
INSERT INTO sink
SELECT device_id, window_start, COUNT(*), MAX(temperature)
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY device_id, window_start, window_end;
"
        ),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rows = env_u64("RUNNEL_BENCH_ROWS", 200_000);
    let rounds = env_u64("RUNNEL_BENCH_ROUNDS", 3);
    let parallelism = env_u64("RUNNEL_BENCH_PARALLELISM", 2);
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("readings", PARTITIONS);
    let t = Instant::now();
    fill(&bootstrap, rows);
    println!(
        "filled 'readings' with {rows} records of ~1 KB in {:.1?}",
        t.elapsed()
    );
    // Windows: every device has one reading a second; minutes rounded up.
    let seconds = rows.div_ceil(DEVICES);
    let windows = DEVICES.min(rows) * seconds.div_ceil(60);

    let dir = std::env::temp_dir().join(format!("runnel-kafka-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut results: Vec<(Case, Vec<f64>)> = [Case::Source, Case::EoOff, Case::EoOn]
        .into_iter()
        .map(|c| (c, Vec::new()))
        .collect();
    for round in 0..rounds {
        for (case, samples) in results.iter_mut() {
            let out = format!("out-{}-{round}", case.name());
            if *case != Case::Source {
                broker.create_topic(&out, 2);
            }
            let file = dir.join(format!("{out}.sql"));
            std::fs::write(&file, script(*case, &bootstrap, parallelism, &out)).expect("script");
            let options = RunOptions {
                parallelism: None,
                checkpoint_dir: Some(dir.join(format!("{out}-ckpt")).display().to_string()),
                ..Default::default()
            };
            let start = Instant::now();
            run_file(&file.display().to_string(), &options, false).expect("job");
            let secs = start.elapsed().as_secs_f64();
            if *case != Case::Source {
                let written = read_topic(&bootstrap, &out).len() as u64;
                assert_eq!(written, windows, "{out}: one record per window");
            }
            let rate = rows as f64 / secs;
            println!(
                "round {round} {:<7} {rate:>12.0} records/s ({secs:.2} s)",
                case.name()
            );
            samples.push(rate);
        }
    }
    let med: Vec<(Case, f64)> = results
        .iter()
        .map(|(c, s)| (*c, median(s.clone())))
        .collect();
    let get = |c: Case| med.iter().find(|(x, _)| *x == c).map_or(0.0, |(_, v)| *v);
    let ratio = get(Case::EoOn) / get(Case::EoOff);
    println!(
        "median records/s: source {:.0}, eo-off {:.0}, eo-on {:.0}; eo-on / eo-off = {ratio:.3}",
        get(Case::Source),
        get(Case::EoOff),
        get(Case::EoOn)
    );
    let json = serde_json::json!({
        "rows": rows,
        "record_bytes_approx": 1024,
        "rounds": rounds,
        "parallelism": parallelism,
        "samples_records_per_s": results.iter().map(|(c, s)| (c.name(), s.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        "median_records_per_s": med.iter().map(|(c, v)| (c.name(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
        "eo_on_over_eo_off": ratio,
    });
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("kafka-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    println!("wrote {}", path.display());
    let _ = std::fs::remove_dir_all(dir);
}
