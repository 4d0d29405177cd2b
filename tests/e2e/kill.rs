//! Kill tests: a SQL job (datagen -> TUMBLE aggregate -> an exactly-once
//! sink, with checkpoints) is killed with SIGKILL at random moments and
//! started again, many times; what the sink finally published must hold
//! exactly the rows of a run that was never killed: none lost, none twice.
//! Three cases: datagen into the filesystem sink (CSV files, 20 kills) and
//! into the Delta sink (read back by DuckDB, 12 kills), and a Kafka topic
//! (on the Tansu broker) into CSV files (12 kills).
//!
//! The job runs in a child process (this test binary again, running only
//! `kill_test_child`), as `runnel run --checkpoint-dir DIR` would. The
//! generator is paced to take about a minute; the expected rows come from
//! the same script without pacing or checkpoints, in this process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runnel_connectors::kafka::test_broker::TestBroker;
use runnel_flight::cli::{run_file, RunOptions};

/// One kill test: the source, the sink, how much data, how many kills.
struct Case {
    name: &'static str,
    rows: u64,
    kills: usize,
    /// The source table `readings`' WITH options; `true` for the paced
    /// runs that are killed.
    source_options: Box<dyn Fn(bool) -> String>,
    /// The sink table `out`'s WITH options, writing to the given path.
    sink_options: fn(&Path) -> String,
    /// What a reader sees in the sink's output, one string a row, sorted.
    read: fn(&Path) -> Vec<String>,
}

fn csv_options(out: &Path) -> String {
    format!(
        "'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv'",
        out.display()
    )
}

fn delta_options(out: &Path) -> String {
    format!("'connector' = 'delta', 'path' = '{}'", out.display())
}

/// The windows DuckDB sees in the Delta table (the deltalake package must
/// agree), as JSON objects.
fn delta_rows(out: &Path) -> Vec<String> {
    if !out.join("_delta_log").is_dir() {
        return Vec::new();
    }
    let readers = crate::delta::read_delta(out);
    let mut rows: Vec<String> = readers
        .agreed_rows()
        .iter()
        .map(|r| r.to_string())
        .collect();
    rows.sort();
    rows
}

/// The datagen source: 50 devices, one reading each per second.
fn datagen_options(rows: u64) -> Box<dyn Fn(bool) -> String> {
    Box::new(move |paced| {
        let pacing = if paced {
            "'rows-per-second' = '1000',"
        } else {
            ""
        };
        format!(
            "'connector' = 'datagen', 'number-of-rows' = '{rows}', {pacing}
        'iot.devices' = '50', 'iot.interval-ms' = '1000', 'seed' = '3'"
        )
    })
}

fn script(case: &Case, out: &Path, paced: bool) -> String {
    format!(
        "SET 'parallelism' = '2';
SET 'execution.checkpointing.interval' = '250 ms';
CREATE TABLE readings (
  event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH ({});
CREATE TABLE out (device_id STRING, window_start TIMESTAMP(3), readings BIGINT, lo DOUBLE, hi DOUBLE)
WITH ({});
INSERT INTO out
SELECT device_id, window_start, COUNT(*), MIN(temperature), MAX(temperature)
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY device_id, window_start, window_end;
",
        (case.source_options)(paced),
        (case.sink_options)(out)
    )
}

/// Published rows (hidden staging and in-progress files are not), sorted.
fn csv_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return rows;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("readable output file");
        rows.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    rows.sort();
    rows
}

fn temp(case: &Case, name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "runnel-kill-{}-{name}-{}",
        case.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// Not a test: the body of the child process that `killed_and_restarted_job_publishes_every_row_once`
/// starts and kills. It does nothing unless that test set the environment.
#[test]
#[ignore = "child process of the kill test, started by it with the environment it needs"]
fn kill_test_child() {
    let (Ok(script), Ok(dir)) = (
        std::env::var("RUNNEL_KILL_SCRIPT"),
        std::env::var("RUNNEL_KILL_CHECKPOINTS"),
    ) else {
        return;
    };
    let options = RunOptions {
        parallelism: None,
        checkpoint_dir: Some(dir),
    };
    if let Err(e) = run_file(&script, &options, false) {
        panic!("the job failed: {e}");
    }
}

#[test]
fn killed_and_restarted_job_publishes_every_row_once() {
    kill_and_restart(&Case {
        name: "csv",
        rows: 60_000,
        kills: 20,
        source_options: datagen_options(60_000),
        sink_options: csv_options,
        read: csv_rows,
    });
}

#[test]
fn killed_and_restarted_job_commits_every_window_to_delta_once() {
    kill_and_restart(&Case {
        name: "delta",
        rows: 30_000,
        kills: 12,
        source_options: datagen_options(30_000),
        sink_options: delta_options,
        read: delta_rows,
    });
}

#[test]
fn killed_and_restarted_kafka_job_publishes_every_window_once() {
    // Kafka source (4 partitions, read_committed, offsets in checkpoints)
    // -> TUMBLE -> exactly-once CSV files. Proves that restored partition
    // offsets neither skip nor repeat records, whatever the kill moment.
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("readings", 4);
    let rows = 30_000;
    crate::kafka::produce_readings(&bootstrap, "readings", rows, 50, 4);
    kill_and_restart(&Case {
        name: "kafka",
        rows,
        kills: 12,
        source_options: Box::new(move |paced| {
            let pacing = if paced {
                "'scan.max-records-per-second' = '1000',"
            } else {
                ""
            };
            format!(
                "'connector' = 'kafka', 'topic' = 'readings', {pacing}
        'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json',
        'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"
            )
        }),
        sink_options: csv_options,
        read: csv_rows,
    });
}

fn kill_and_restart(case: &Case) {
    // The rows of a run that is never killed.
    let expected_dir = temp(case, "expected");
    let expected_script = temp(case, "expected.sql");
    std::fs::write(&expected_script, script(case, &expected_dir, false)).expect("write script");
    run_file(
        &expected_script.display().to_string(),
        &RunOptions::default(),
        false,
    )
    .expect("reference run");
    let expected = (case.read)(&expected_dir);
    // 50 devices x one-minute windows.
    assert_eq!(
        expected.len(),
        50 * (case.rows as usize / 50 / 60),
        "reference rows"
    );

    let out = temp(case, "out");
    let checkpoints = temp(case, "checkpoints");
    let script_path = temp(case, "job.sql");
    std::fs::write(&script_path, script(case, &out, true)).expect("write script");
    let exe = std::env::current_exe().expect("test binary path");
    let start = |stdout: Stdio| {
        Command::new(&exe)
            .args([
                "kill::kill_test_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("RUNNEL_KILL_SCRIPT", &script_path)
            .env("RUNNEL_KILL_CHECKPOINTS", &checkpoints)
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child process")
    };
    // A small deterministic generator for the kill times (logged on failure).
    let mut seed: u64 = 0x9e37_79b9 ^ u64::from(std::process::id());
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let mut kills = Vec::new();
    let started = Instant::now();
    for _ in 0..case.kills {
        let mut child = start(Stdio::null());
        let wait_ms = 400 + next() % 2_000;
        std::thread::sleep(Duration::from_millis(wait_ms));
        if child.try_wait().expect("child status").is_some() {
            break; // it finished before we could kill it
        }
        child.kill().expect("SIGKILL the child");
        let _ = child.wait();
        kills.push(wait_ms);
    }
    let status = start(Stdio::null()).wait().expect("final run");
    assert!(
        status.success(),
        "the final run failed (kills after {kills:?} ms)"
    );
    let got = (case.read)(&out);
    assert!(
        kills.len() >= case.kills,
        "only {} kills happened before the job finished",
        kills.len()
    );
    assert_eq!(
        got.len(),
        expected.len(),
        "row count after {} kills at {kills:?} ms",
        kills.len()
    );
    assert!(
        got == expected,
        "rows differ after {} kills at {kills:?} ms",
        kills.len()
    );
    eprintln!(
        "kill test ({}): {} kills in {:.1?}",
        case.name,
        kills.len(),
        started.elapsed()
    );
    for p in [expected_dir, out, checkpoints] {
        let _ = std::fs::remove_dir_all(p);
    }
    let _ = std::fs::remove_file(expected_script);
    let _ = std::fs::remove_file(script_path);
}
