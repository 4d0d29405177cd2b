//! The Delta connector against independent readers: tables written by
//! Runnel are read back by DuckDB's delta extension and by the Python
//! `deltalake` package (tests/python/delta_readers.py, run with the python
//! of the test venv that scripts/python-venv.sh makes), and a Delta table
//! appended to by the Python `deltalake` writer is followed by a streaming
//! Runnel job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use runnel_engine::runtime::Job;
use runnel_flight::cli::{run_file, RunOptions};
use runnel_sql::parser::parse_sql;
use runnel_sql::session::{Outcome, Session};
use serde_json::Value;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The python of the test venv, made on first use.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new(root().join("scripts/python-venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/python-venv.sh");
        assert!(out.status.success(), "scripts/python-venv.sh failed");
        let path = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(path.trim())
    })
}

/// What the two readers see in a table.
#[derive(Debug)]
pub struct Readers {
    pub version: i64,
    pub duckdb: Vec<Value>,
    pub deltalake: Vec<Value>,
    pub txns: BTreeMap<String, Option<i64>>,
}

impl Readers {
    /// The rows, after checking that both readers saw the same ones.
    pub fn agreed_rows(&self) -> &[Value] {
        assert_eq!(
            self.duckdb.len(),
            self.deltalake.len(),
            "DuckDB and deltalake see different row counts"
        );
        assert!(
            self.duckdb == self.deltalake,
            "DuckDB and deltalake see different rows"
        );
        &self.duckdb
    }
}

/// Reads the Delta table at `path` with DuckDB and with deltalake.
pub fn read_delta(path: &Path) -> Readers {
    read_delta_with(&path.display().to_string(), &[])
}

/// Reads the Delta table at `location` (a path, or `s3://...` with the
/// endpoint and credentials in `env`) with DuckDB and with deltalake.
pub fn read_delta_with(location: &str, env: &[(String, String)]) -> Readers {
    let path = location;
    let out = Command::new(python())
        .arg(root().join("tests/python/delta_readers.py"))
        .arg(path)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run delta_readers.py");
    assert!(
        out.status.success(),
        "delta_readers.py failed on {}: {}",
        path,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("readers print JSON");
    let rows = |k: &str| v[k].as_array().cloned().expect("a row list");
    Readers {
        version: v["version"].as_i64().expect("a version"),
        duckdb: rows("duckdb"),
        deltalake: rows("deltalake"),
        txns: v["txns"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_i64())).collect())
            .unwrap_or_default(),
    }
}

/// A fresh path under the temp dir.
fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("runnel-delta-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn int(row: &Value, column: &str) -> i64 {
    row[column]
        .as_i64()
        .unwrap_or_else(|| panic!("{column} is an integer in {row}"))
}

#[test]
fn a_sql_job_writes_partitioned_tables_that_duckdb_and_deltalake_read() {
    const ROWS: i64 = 12_000;
    const DEVICES: i64 = 20;
    let raw = temp("raw");
    let gold = temp("gold");
    let checkpoints = temp("sql-checkpoints");
    let script = temp("sql.sql");
    std::fs::write(
        &script,
        format!(
            "SET 'parallelism' = '2';
SET 'execution.checkpointing.interval' = '100 ms';
CREATE TABLE readings (
  event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE, status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH ('connector' = 'datagen', 'number-of-rows' = '{ROWS}', 'rows-per-second' = '20000',
        'iot.devices' = '{DEVICES}', 'iot.interval-ms' = '1000', 'seed' = '11');
CREATE TABLE raw (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE, status STRING)
PARTITIONED BY (status)
WITH ('connector' = 'delta', 'path' = '{}');
CREATE TABLE gold (device_id STRING, window_start TIMESTAMP(3), readings BIGINT, hi DOUBLE)
WITH ('connector' = 'delta', 'path' = '{}');
INSERT INTO raw SELECT event_time, device_id, temperature, status FROM readings;
INSERT INTO gold
SELECT device_id, window_start, COUNT(*), MAX(temperature)
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY device_id, window_start, window_end;
",
            raw.display(),
            gold.display()
        ),
    )
    .expect("write script");
    run_file(
        &script.display().to_string(),
        &RunOptions {
            parallelism: None,
            checkpoint_dir: Some(checkpoints.display().to_string()),
            ..Default::default()
        },
        false,
    )
    .expect("the job runs");

    // Raw: every reading once, in one directory per status.
    let r = read_delta(&raw);
    let rows = r.agreed_rows();
    assert_eq!(rows.len() as i64, ROWS, "every reading once");
    let statuses: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(|row| row["status"].as_str())
        .collect();
    assert!(statuses.len() >= 2, "several statuses: {statuses:?}");
    for s in &statuses {
        assert!(raw.join(format!("status={s}")).is_dir(), "partition {s}");
    }
    assert!(
        rows.iter()
            .all(|row| row["event_time"].as_str().is_some_and(|t| t.ends_with('Z'))),
        "event times are Delta timestamps (UTC)"
    );
    assert!(r.version >= 2, "several checkpoints, several versions");
    assert!(
        !r.txns.is_empty() && r.txns.keys().all(|k| k.starts_with("runnel-")),
        "commits carry the sink's txn: {:?}",
        r.txns
    );

    // Gold: one row per device and minute; the counts add up to the input.
    let g = read_delta(&gold);
    let rows = g.agreed_rows();
    let total: i64 = rows.iter().map(|row| int(row, "readings")).sum();
    assert_eq!(total, ROWS, "each reading counted once");
    let keys: std::collections::BTreeSet<(String, String)> = rows
        .iter()
        .map(|row| {
            (
                row["device_id"].to_string(),
                row["window_start"].to_string(),
            )
        })
        .collect();
    assert_eq!(keys.len(), rows.len(), "no window twice");
    assert_eq!(rows.len() as i64, DEVICES * (ROWS / DEVICES / 60));
    for p in [raw, gold, checkpoints, script] {
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }
}

/// Upsert mode: a table with a PRIMARY KEY keeps the newest row per key.
/// Aggregates over a generated stream, checkpointed every 100 ms, are
/// merged into keyed tables; DuckDB and deltalake read the final rows,
/// which must equal what the raw rows (written by the same job to an
/// append-only table) give when counted here. A filter over the aggregate
/// makes rows leave the table again: it must end empty.
#[test]
fn aggregates_merge_into_keyed_tables_that_duckdb_and_deltalake_read_as_final_rows() {
    const ROWS: i64 = 12_000;
    const DEVICES: i64 = 20;
    let raw = temp("upsert-raw");
    let per_device = temp("upsert-per-device");
    let few = temp("upsert-few");
    let checkpoints = temp("upsert-checkpoints");
    let script = temp("upsert.sql");
    std::fs::write(
        &script,
        format!(
            "SET 'parallelism' = '2';
SET 'execution.checkpointing.interval' = '100 ms';
CREATE TABLE readings (
  event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE, status STRING
) WITH ('connector' = 'datagen', 'number-of-rows' = '{ROWS}', 'rows-per-second' = '20000',
        'iot.devices' = '{DEVICES}', 'iot.interval-ms' = '1000', 'seed' = '5');
CREATE TABLE raw (device_id STRING, temperature DOUBLE)
WITH ('connector' = 'delta', 'path' = '{}');
CREATE TABLE per_device (device_id STRING, readings BIGINT, hi DOUBLE,
  PRIMARY KEY (device_id) NOT ENFORCED)
WITH ('connector' = 'delta', 'path' = '{}');
CREATE TABLE few (device_id STRING, n BIGINT, PRIMARY KEY (device_id) NOT ENFORCED)
WITH ('connector' = 'delta', 'path' = '{}');
INSERT INTO raw SELECT device_id, temperature FROM readings;
INSERT INTO per_device SELECT device_id, COUNT(*), MAX(temperature) FROM readings GROUP BY device_id;
INSERT INTO few SELECT device_id, n
FROM (SELECT device_id, COUNT(*) AS n FROM readings GROUP BY device_id) WHERE n < 300;
",
            raw.display(),
            per_device.display(),
            few.display()
        ),
    )
    .expect("write script");
    run_file(
        &script.display().to_string(),
        &RunOptions {
            parallelism: None,
            checkpoint_dir: Some(checkpoints.display().to_string()),
            ..Default::default()
        },
        false,
    )
    .expect("the job runs");

    let mut expected: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    let r = read_delta(&raw);
    assert_eq!(r.agreed_rows().len() as i64, ROWS);
    for row in r.agreed_rows() {
        let device = row["device_id"].as_str().expect("device").to_string();
        let t = row["temperature"].as_f64().expect("temperature");
        let e = expected.entry(device).or_insert((0, f64::MIN));
        e.0 += 1;
        e.1 = e.1.max(t);
    }
    assert_eq!(expected.len() as i64, DEVICES);

    let g = read_delta(&per_device);
    let got: BTreeMap<String, (i64, f64)> = g
        .agreed_rows()
        .iter()
        .map(|row| {
            (
                row["device_id"].as_str().expect("device").to_string(),
                (int(row, "readings"), row["hi"].as_f64().expect("hi")),
            )
        })
        .collect();
    assert_eq!(g.agreed_rows().len(), got.len(), "one row per device");
    assert_eq!(got, expected);
    assert!(
        g.version >= 2,
        "merged at several checkpoints: {}",
        g.version
    );
    assert!(
        !g.txns.is_empty() && g.txns.keys().all(|k| k.starts_with("runnel-")),
        "merges carry the sink's txn: {:?}",
        g.txns
    );

    // Every device passed 300 readings: each row written while it had
    // fewer was deleted again.
    let f = read_delta(&few);
    assert_eq!(f.agreed_rows(), &[] as &[Value], "every row left again");
    let log = std::fs::read_dir(few.join("_delta_log"))
        .expect("a log")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| std::fs::read_to_string(e.path()).expect("readable"))
        .collect::<String>();
    assert!(
        log.contains("\"add\"") && log.contains("\"remove\""),
        "rows were written, then removed"
    );
    for p in [raw, per_device, few, checkpoints, script] {
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }
}

/// Rows appended by the Python deltalake writer: `count` rows with ids
/// from `first`, in `appends` commits `pause_ms` apart (the first commit
/// creates the table).
fn python_appender(path: &Path, first: i64, count: i64, appends: i64, pause_ms: u64) -> Command {
    let program = r#"
import sys, time
import pyarrow as pa
from deltalake import write_deltalake
path, first, count, appends, pause = sys.argv[1], *map(int, sys.argv[2:6])
per = count // appends
for i in range(appends):
    ids = list(range(first + i * per, first + (i + 1) * per))
    table = pa.table({"id": pa.array(ids, pa.int64()), "label": pa.array([f"row-{x}" for x in ids])})
    write_deltalake(path, table, mode="append")
    time.sleep(pause / 1000)
"#;
    let mut c = Command::new(python());
    c.arg("-c")
        .arg(program)
        .arg(path)
        .arg(first.to_string())
        .arg(count.to_string())
        .arg(appends.to_string())
        .arg(pause_ms.to_string());
    c
}

/// The `id`s of the JSON lines in the visible files of `dir`, sorted.
fn published_ids(dir: &Path) -> Vec<i64> {
    let mut ids = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return ids;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            ids.push(int(&v, "id"));
        }
    }
    ids.sort_unstable();
    ids
}

#[test]
fn a_stream_follows_a_table_while_another_writer_appends() {
    let table = temp("followed");
    let out = temp("follow-out");
    let checkpoints = temp("follow-checkpoints");
    // The other writer makes the table with 100 rows before the job starts.
    let status = python_appender(&table, 0, 100, 1, 0)
        .status()
        .expect("python writer");
    assert!(status.success(), "the first Python append failed");

    let mut session = Session::new(runnel_connectors::default_registry());
    let statements = format!(
        "SET 'execution.checkpointing.interval' = '100 ms';
SET 'state.checkpoints.dir' = '{}';
CREATE TABLE followed (id BIGINT, label STRING)
WITH ('connector' = 'delta', 'path' = '{}', 'mode' = 'streaming', 'scan.poll-interval' = '50 ms');
CREATE TABLE copy (id BIGINT, label STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
INSERT INTO copy SELECT id, label FROM followed;",
        checkpoints.display(),
        table.display(),
        out.display()
    );
    let mut job = None;
    for stmt in parse_sql(&statements).expect("statements parse") {
        if let Outcome::Job(j) = session
            .execute(&stmt, "", &runnel_flight::cli::print_sink)
            .expect("statement runs")
        {
            job = Some(Job::start(j.graph).expect("the job starts"));
        }
    }
    let job = job.expect("the INSERT starts a job");

    // While the job runs, the Python writer appends 10 commits of 100 rows.
    let mut writer = python_appender(&table, 100, 1000, 10, 100)
        .spawn()
        .expect("python writer");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ids = Vec::new();
    while Instant::now() < deadline {
        ids = published_ids(&out);
        if ids.len() >= 1100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        writer.wait().expect("writer ends").success(),
        "the Python appends failed"
    );
    // One more checkpoint's worth of time: nothing is published twice.
    std::thread::sleep(Duration::from_millis(500));
    let ids_after = published_ids(&out);
    job.cancel();
    let _ = job.wait();
    assert_eq!(ids.len(), 1100, "every appended row reached the copy");
    assert_eq!(ids_after, (0..1100).collect::<Vec<i64>>(), "each row once");
    for p in [table, out, checkpoints] {
        let _ = std::fs::remove_dir_all(p);
    }
}
