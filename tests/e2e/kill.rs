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
    /// The sink table `out`'s WITH options, writing to the given location.
    sink_options: Box<dyn Fn(&str) -> String>,
    /// What a reader sees in the sink's output at a location, one string
    /// a row, sorted.
    read: Box<dyn Fn(&str) -> Vec<String>>,
    /// Where the killed runs write and checkpoint when that is not a
    /// local temporary directory (object storage).
    remote: Option<Remote>,
    /// The parallelism of each phase of a rescale test; empty: 2 always.
    phases: Vec<Phase>,
    /// The sink table has a PRIMARY KEY (device_id) and the query is a
    /// running aggregate per device (updates), instead of one-minute
    /// windows (appends).
    upsert: bool,
    /// The sink table is `PARTITIONED BY (device_id)`.
    partitioned: bool,
}

/// Output and checkpoints of the killed runs on object storage.
struct Remote {
    out: String,
    checkpoints: String,
    /// SET statements the script needs for them (endpoint, credentials).
    sets: String,
}

/// One phase of a rescale test: runs at `parallelism`, killed `kills`
/// times with SIGKILL, then (unless it is the last) stopped with a
/// savepoint (SIGTERM, as Ctrl-C).
#[derive(Debug, Clone, Copy)]
struct Phase {
    parallelism: usize,
    kills: usize,
}

fn csv_options(out: &str) -> String {
    format!("'connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv'")
}

fn delta_options(out: &str) -> String {
    format!("'connector' = 'delta', 'path' = '{out}'")
}

/// The windows DuckDB sees in the Delta table (the deltalake package must
/// agree), as JSON objects.
fn delta_rows(out: &str) -> Vec<String> {
    delta_rows_with(out, &[])
}

/// [`delta_rows`] of a table the readers reach with `env` (S3).
fn delta_rows_with(out: &str, env: &[(String, String)]) -> Vec<String> {
    if !out.starts_with("s3://") && !Path::new(out).join("_delta_log").is_dir() {
        return Vec::new();
    }
    let readers = crate::delta::read_delta_with(out, env);
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

fn script(case: &Case, out: &str, paced: bool) -> String {
    let sets = match (&case.remote, paced) {
        (Some(r), true) => r.sets.clone(),
        _ => String::new(),
    };
    // A rescale test's parallelism comes from the command line.
    let parallelism = if case.phases.is_empty() {
        "SET 'parallelism' = '2';\n"
    } else {
        ""
    };
    let (key, query) = if case.upsert {
        (
            ", PRIMARY KEY (device_id) NOT ENFORCED",
            "SELECT device_id, MAX(event_time), COUNT(*), MIN(temperature), MAX(temperature)
FROM readings GROUP BY device_id",
        )
    } else {
        (
            "",
            "SELECT device_id, window_start, COUNT(*), MIN(temperature), MAX(temperature)
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY device_id, window_start, window_end",
        )
    };
    let partitioned = if case.partitioned {
        "PARTITIONED BY (device_id) "
    } else {
        ""
    };
    format!(
        "{sets}{parallelism}SET 'execution.checkpointing.interval' = '250 ms';
CREATE TABLE readings (
  event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH ({});
CREATE TABLE out (device_id STRING, window_start TIMESTAMP(3), readings BIGINT, lo DOUBLE, hi DOUBLE{key})
{partitioned}WITH ({});
INSERT INTO out
{query};
",
        (case.source_options)(paced),
        (case.sink_options)(out)
    )
}

/// Published rows (hidden staging and in-progress files are not), sorted.
fn csv_rows(dir: &str) -> Vec<String> {
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

/// Published rows of a table partitioned by its first column: each file
/// of a `device_id=<value>` directory holds the other columns; the value
/// is put back in front. Files outside a partition directory fail.
fn partitioned_csv_rows(dir: &str) -> Vec<String> {
    let mut rows = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return rows;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let value = name
            .strip_prefix("device_id=")
            .unwrap_or_else(|| panic!("'{name}' in {dir} is not a partition directory"));
        for part in csv_rows(&e.path().display().to_string()) {
            assert_eq!(
                part.split(',').count(),
                4,
                "a partitioned file holds the other 4 columns: {part}"
            );
            rows.push(format!("{value},{part}"));
        }
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
        parallelism: std::env::var("RUNNEL_KILL_PARALLELISM")
            .ok()
            .and_then(|p| p.parse().ok()),
        checkpoint_dir: Some(dir),
        ..Default::default()
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
        sink_options: Box::new(csv_options),
        read: Box::new(csv_rows),
        remote: None,
        phases: Vec::new(),
        upsert: false,
        partitioned: false,
    });
}

/// Into CSV files partitioned by device: one directory per device, the
/// files of each checkpoint staged and published together.
#[test]
fn killed_and_restarted_job_publishes_every_row_once_into_partitions() {
    kill_and_restart(&Case {
        name: "csv-partitioned",
        rows: 30_000,
        kills: 8,
        source_options: datagen_options(30_000),
        sink_options: Box::new(csv_options),
        read: Box::new(partitioned_csv_rows),
        remote: None,
        phases: Vec::new(),
        upsert: false,
        partitioned: true,
    });
}

#[test]
fn killed_and_restarted_job_commits_every_window_to_delta_once() {
    kill_and_restart(&Case {
        name: "delta",
        rows: 30_000,
        kills: 12,
        source_options: datagen_options(30_000),
        sink_options: Box::new(delta_options),
        read: Box::new(delta_rows),
        remote: None,
        phases: Vec::new(),
        upsert: false,
        partitioned: false,
    });
}

/// Upsert mode: a running aggregate per device merged into a Delta table
/// keyed by device at each checkpoint; after the kills the table holds the
/// final row of every device, as in a run never killed.
#[test]
fn killed_and_restarted_job_merges_a_running_aggregate_into_a_keyed_delta_table() {
    kill_and_restart(&Case {
        name: "delta-upsert",
        rows: 30_000,
        kills: 8,
        source_options: datagen_options(30_000),
        sink_options: Box::new(delta_options),
        read: Box::new(delta_rows),
        remote: None,
        phases: Vec::new(),
        upsert: true,
        partitioned: false,
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
        source_options: kafka_options(bootstrap),
        sink_options: Box::new(csv_options),
        read: Box::new(csv_rows),
        remote: None,
        phases: Vec::new(),
        upsert: false,
        partitioned: false,
    });
}

/// The Kafka source's options (paced for the killed runs).
fn kafka_options(bootstrap: String) -> Box<dyn Fn(bool) -> String> {
    Box::new(move |paced| {
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
    })
}

/// Rescaling: the Kafka job runs at parallelism 2 and is stopped with a
/// savepoint, resumes at 4 and is killed several times, then resumes at 1
/// and runs to the end. Key groups of the window aggregate move, partitions
/// move with their offsets, and the sink subtasks publish what the old ones
/// staged: the CSV files hold every window once.
#[test]
fn a_kafka_job_rescaled_2_4_1_and_killed_publishes_every_window_once() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("readings", 4);
    let rows = 30_000;
    crate::kafka::produce_readings(&bootstrap, "readings", rows, 50, 4);
    kill_and_restart(&Case {
        name: "rescale-csv",
        rows,
        kills: 4,
        source_options: kafka_options(bootstrap),
        sink_options: Box::new(csv_options),
        read: Box::new(csv_rows),
        remote: None,
        phases: vec![
            Phase {
                parallelism: 2,
                kills: 0,
            },
            Phase {
                parallelism: 4,
                kills: 4,
            },
            Phase {
                parallelism: 1,
                kills: 0,
            },
        ],
        upsert: false,
        partitioned: false,
    });
}

/// The same rescale into a Delta table: the new sink subtasks commit the
/// old ones' staged versions before anything of their own.
#[test]
fn a_kafka_job_rescaled_into_delta_commits_every_window_once() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("readings", 4);
    let rows = 30_000;
    crate::kafka::produce_readings(&bootstrap, "readings", rows, 50, 4);
    kill_and_restart(&Case {
        name: "rescale-delta",
        rows,
        kills: 3,
        source_options: kafka_options(bootstrap),
        sink_options: Box::new(delta_options),
        read: Box::new(delta_rows),
        remote: None,
        phases: vec![
            Phase {
                parallelism: 2,
                kills: 0,
            },
            Phase {
                parallelism: 4,
                kills: 3,
            },
            Phase {
                parallelism: 1,
                kills: 0,
            },
        ],
        upsert: false,
        partitioned: false,
    });
}

/// The rescale into a Kafka topic with the exactly-once sink, 2 -> 4 -> 1
/// through savepoints: after each rescale a subtask finishes what an old
/// subtask had staged through that subtask's commit marker, so no window
/// is written twice or lost. Without kills: Tansu shows the records of
/// aborted transactions to read_committed readers (docs/kafka.md), so a
/// killed producer's aborted output would read as duplicates there.
#[test]
fn a_kafka_job_rescaled_into_kafka_writes_every_window_once() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("readings", 4);
    let rows = 30_000;
    crate::kafka::produce_readings(&bootstrap, "readings", rows, 50, 4);
    // The output topic is named after the output path the test picks.
    let topic = |out: &str| -> String {
        Path::new(out)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    for name in ["expected", "out"] {
        broker.create_topic(
            &format!("runnel-kill-rescale-kafka-{name}-{}", std::process::id()),
            2,
        );
    }
    let sink_bootstrap = bootstrap.clone();
    let read_bootstrap = bootstrap.clone();
    kill_and_restart(&Case {
        name: "rescale-kafka",
        rows,
        kills: 0,
        source_options: kafka_options(bootstrap),
        sink_options: Box::new(move |out| {
            let t = topic(out);
            // The reference run takes no checkpoints, which exactly-once
            // output needs; it runs once, so at-least-once is exact there.
            let delivery = if t.contains("-expected-") {
                "'sink.delivery-guarantee' = 'at-least-once'".to_string()
            } else {
                format!(
                    "'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = '{t}'"
                )
            };
            format!(
                "'connector' = 'kafka', 'topic' = '{t}', 'format' = 'json',
                 'properties.bootstrap.servers' = '{sink_bootstrap}', {delivery}"
            )
        }),
        read: Box::new(move |out| {
            let mut rows: Vec<String> = crate::kafka::read_topic(&read_bootstrap, &topic(out))
                .into_iter()
                .filter_map(|r| r.value)
                .collect();
            rows.sort();
            rows
        }),
        remote: None,
        phases: vec![
            Phase {
                parallelism: 2,
                kills: 0,
            },
            Phase {
                parallelism: 4,
                kills: 0,
            },
            Phase {
                parallelism: 1,
                kills: 0,
            },
        ],
        upsert: false,
        partitioned: false,
    });
}

/// The Delta kill test with the table and the checkpoints on S3 (moto's
/// server on 127.0.0.1): killed 8 times, each restart restores from the
/// checkpoints in the bucket, and DuckDB and deltalake, reading the table
/// through the same endpoint, see every window once.
#[test]
fn killed_and_restarted_job_on_s3_commits_every_window_to_delta_once() {
    let server = crate::s3::S3Server::start("runnel-kill");
    let with = server.with_options();
    let env = server.reader_env();
    kill_and_restart(&Case {
        name: "s3-delta",
        rows: 30_000,
        kills: 8,
        source_options: datagen_options(30_000),
        sink_options: Box::new(move |out| {
            if out.starts_with("s3://") {
                format!("{}{with}", delta_options(out))
            } else {
                delta_options(out)
            }
        }),
        read: Box::new(move |out| delta_rows_with(out, &env)),
        remote: Some(Remote {
            out: "s3://runnel-kill/tables/out".into(),
            checkpoints: "s3://runnel-kill/checkpoints".into(),
            sets: server.set_statements(),
        }),
        phases: Vec::new(),
        upsert: false,
        partitioned: false,
    });
    let store = runnel_state::CheckpointStore::open(
        "s3://runnel-kill/checkpoints/job-1",
        3,
        &server.options(),
        None,
    )
    .expect("the checkpoint store");
    let remote = store.remote().expect("on S3");
    assert_eq!(
        remote.missing_objects().expect("list"),
        Vec::<String>::new()
    );
    assert!(store.latest().expect("latest").is_some_and(|c| c.finished));
}

fn kill_and_restart(case: &Case) {
    // The rows of a run that is never killed.
    let expected_dir = temp(case, "expected");
    let expected_script = temp(case, "expected.sql");
    let expected_at = expected_dir.display().to_string();
    std::fs::write(&expected_script, script(case, &expected_at, false)).expect("write script");
    run_file(
        &expected_script.display().to_string(),
        &RunOptions::default(),
        false,
    )
    .expect("reference run");
    let expected = (case.read)(&expected_at);
    // 50 devices x one-minute windows, or one row per device.
    let windows = if case.upsert {
        1
    } else {
        case.rows as usize / 50 / 60
    };
    assert_eq!(expected.len(), 50 * windows, "reference rows");

    let out = temp(case, "out");
    let checkpoints = temp(case, "checkpoints");
    let (out_at, checkpoints_at) = match &case.remote {
        Some(r) => (r.out.clone(), r.checkpoints.clone()),
        None => (out.display().to_string(), checkpoints.display().to_string()),
    };
    let script_path = temp(case, "job.sql");
    std::fs::write(&script_path, script(case, &out_at, true)).expect("write script");
    let exe = std::env::current_exe().expect("test binary path");
    let start = |parallelism: Option<usize>| {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "kill::kill_test_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUNNEL_KILL_SCRIPT", &script_path)
        .env("RUNNEL_KILL_CHECKPOINTS", &checkpoints_at)
        .stdout(Stdio::null())
        // RUNNEL_KILL_VERBOSE=1 shows what the child runs print.
        .stderr(if std::env::var_os("RUNNEL_KILL_VERBOSE").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
        if let Some(p) = parallelism {
            cmd.env("RUNNEL_KILL_PARALLELISM", p.to_string());
        }
        cmd.spawn().expect("start the child process")
    };
    // A small deterministic generator for the kill times (logged on failure).
    let mut seed: u64 = 0x9e37_79b9 ^ u64::from(std::process::id());
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let phases = if case.phases.is_empty() {
        vec![Phase {
            parallelism: 0,
            kills: case.kills,
        }]
    } else {
        case.phases.clone()
    };
    let mut kills = Vec::new();
    let mut savepoints = 0;
    let started = Instant::now();
    let last = phases.len() - 1;
    let mut status = None;
    for (i, phase) in phases.iter().enumerate() {
        let parallelism = (phase.parallelism > 0).then_some(phase.parallelism);
        for _ in 0..phase.kills {
            let mut child = start(parallelism);
            let wait_ms = 400 + next() % 2_000;
            std::thread::sleep(Duration::from_millis(wait_ms));
            if child.try_wait().expect("child status").is_some() {
                break; // it finished before we could kill it
            }
            child.kill().expect("SIGKILL the child");
            let _ = child.wait();
            kills.push(wait_ms);
        }
        let mut child = start(parallelism);
        if i < last {
            // Run a while, then stop with a savepoint (Ctrl-C's signal).
            std::thread::sleep(Duration::from_millis(1_500 + next() % 1_000));
            let term = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(term.success(), "SIGTERM the child");
            let stopped = child.wait().expect("the stopped run");
            assert!(stopped.success(), "stopping with a savepoint failed ({i})");
            savepoints += 1;
        } else {
            status = Some(child.wait().expect("final run"));
        }
    }
    let status = status.expect("a final run");
    assert!(
        status.success(),
        "the final run failed (kills after {kills:?} ms, phases {phases:?})"
    );
    let got = (case.read)(&out_at);
    assert!(
        kills.len() >= case.kills,
        "only {} kills happened before the job finished",
        kills.len()
    );
    if got.len() != expected.len() {
        let mut extra = got.clone();
        for e in &expected {
            if let Some(i) = extra.iter().position(|g| g == e) {
                extra.swap_remove(i);
            }
        }
        let missing: Vec<&String> = expected.iter().filter(|e| !got.contains(e)).collect();
        extra.truncate(5);
        eprintln!(
            "extra rows (first 5): {extra:?}\nmissing rows (first 5): {:?}",
            &missing[..missing.len().min(5)]
        );
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "row count after {} kills at {kills:?} ms (phases {phases:?})",
        kills.len()
    );
    let differ: Vec<(&String, &String)> = got
        .iter()
        .zip(&expected)
        .filter(|(g, e)| g != e)
        .take(3)
        .collect();
    assert!(
        got == expected,
        "rows differ after {} kills at {kills:?} ms (phases {phases:?}); first (got, expected): {differ:?}",
        kills.len()
    );
    eprintln!(
        "kill test ({}): {} kills and {savepoints} savepoints in {:.1?}",
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
