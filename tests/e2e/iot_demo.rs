//! The IoT demo script (`examples/iot/pipeline.sql`) run through the CLI's
//! code path on a smaller input, with its outputs checked: the Delta tables
//! through DuckDB and deltalake, the CSV and JSON files directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMillisecondType};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read_dir_batches(dir: &Path, schema: SchemaRef, json: bool) -> Vec<RecordBatch> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let file = std::fs::File::open(&f).expect("open output file");
        let reader = std::io::BufReader::new(file);
        if json {
            let r = arrow::json::ReaderBuilder::new(Arc::clone(&schema))
                .build(reader)
                .expect("json reader");
            out.extend(r.map(|b| b.expect("valid JSON lines")));
        } else {
            let r = arrow::csv::ReaderBuilder::new(Arc::clone(&schema))
                .build(reader)
                .expect("csv reader");
            out.extend(r.map(|b| b.expect("valid CSV")));
        }
    }
    out
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

#[test]
fn iot_pipeline_writes_quarantine_sliding_windows_and_sessions() {
    let root = repo_root();
    let out = std::env::temp_dir().join(format!("runnel-iot-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let sql =
        std::fs::read_to_string(root.join("examples/iot/pipeline.sql")).expect("pipeline.sql");
    // Absolute paths, a temporary output directory and a smaller input.
    let sql = sql
        .replace(
            "'examples/iot/",
            &format!("'{}/examples/iot/", root.display()),
        )
        .replace("'target/iot-demo/", &format!("'{}/", out.display()))
        .replace("'number-of-rows' = '400000'", "'number-of-rows' = '60000'");
    assert!(
        sql.contains(&out.display().to_string()),
        "the script's output paths changed"
    );
    let script = out.with_extension("sql");
    std::fs::create_dir_all(&out).expect("temp dir");
    std::fs::write(&script, sql).expect("write script");
    runnel_flight::cli::run_file(
        &script.display().to_string(),
        &runnel_flight::cli::RunOptions {
            parallelism: Some(2),
            checkpoint_dir: None,
            ..Default::default()
        },
        false,
    )
    .expect("the demo runs");

    // Quarantine: each row names the expectations it failed, and they
    // match its fields. Quarantine, silver and gold are Delta tables: read
    // them back with DuckDB and deltalake (which must agree).
    let quarantine = crate::delta::read_delta(&out.join("quarantine"));
    let mut failed = std::collections::BTreeSet::new();
    let rows = quarantine.agreed_rows();
    for row in rows {
        let names = row["expectations"].as_str().expect("expectations");
        assert!(row["quarantined_at"].is_string(), "{row}");
        for name in names.split(',') {
            failed.insert(name.to_string());
            let temperature = row["temperature"].as_f64();
            match name {
                "has_device" => assert!(row["device_id"].is_null(), "{row}"),
                "parsed" => assert!(temperature.is_none(), "{row}"),
                "valid_temp" => {
                    assert!(
                        temperature.is_none_or(|t| !(-40.0..=150.0).contains(&t)),
                        "{row}"
                    )
                }
                "known_status" => assert!(
                    !["active", "idle", "faulty"]
                        .contains(&row["status"].as_str().unwrap_or_default()),
                    "{row}"
                ),
                other => panic!("unexpected expectation {other}: {row}"),
            }
        }
        // A row is quarantined only for what it fails.
        assert_eq!(
            names.contains("has_device"),
            row["device_id"].is_null(),
            "{row}"
        );
    }
    assert_eq!(
        failed.into_iter().collect::<Vec<_>>(),
        vec!["has_device", "known_status", "parsed", "valid_temp"]
    );
    assert!(
        (700..=1_700).contains(&rows.len()),
        "{} quarantined rows",
        rows.len()
    );

    let silver = crate::delta::read_delta(&out.join("silver"));
    let silver_rows = silver.agreed_rows().len();
    assert!(
        silver_rows + rows.len() <= 60_000 && silver_rows > 50_000,
        "{silver_rows} silver rows"
    );
    for region in ["central", "east", "north", "south", "west"] {
        assert!(
            out.join("silver").join(format!("region={region}")).is_dir(),
            "{region}"
        );
    }
    // Gold counts each silver reading at most once: all of them but the
    // late ones whose hour had closed (1% arrive 10 minutes late), and has
    // one row per region and hour.
    let gold = crate::delta::read_delta(&out.join("gold_hourly"));
    let gold_rows = gold.agreed_rows();
    let counted: i64 = gold_rows
        .iter()
        .map(|r| r["readings"].as_i64().expect("readings"))
        .sum();
    let silver_rows = silver_rows as i64;
    assert!(
        counted <= silver_rows && counted >= silver_rows - silver_rows / 100,
        "gold counts {counted} of {silver_rows} silver readings"
    );
    let windows: std::collections::BTreeSet<String> = gold_rows
        .iter()
        .map(|r| format!("{}/{}", r["region"], r["window_start"]))
        .collect();
    assert_eq!(windows.len(), gold_rows.len(), "no gold window twice");

    // Sliding windows are 15 minutes long and start on 5-minute boundaries.
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("avg_temp_c", DataType::Float64, true),
        Field::new("readings", DataType::Int64, false),
    ]));
    let batches = read_dir_batches(&out.join("sliding_15min"), schema, false);
    let windows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // 50 minutes of event time: 12 windows per region, 5 regions.
    assert!(windows >= 5 * 12, "{windows} sliding windows");
    for b in &batches {
        let s = b.column(1).as_primitive::<TimestampMillisecondType>();
        let e = b.column(2).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            assert_eq!(e.value(i) - s.value(i), 15 * 60_000);
            assert_eq!(s.value(i) % (5 * 60_000), 0);
        }
    }

    // Sessions last at least the gap and hold at least one reading.
    let schema = Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, false),
        Field::new("session_start", ts(), false),
        Field::new("session_end", ts(), false),
        Field::new("readings", DataType::Int64, false),
    ]));
    let batches = read_dir_batches(&out.join("device_sessions"), schema, true);
    let sessions: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(sessions >= 200, "{sessions} sessions for 200 devices");
    for b in &batches {
        let s = b.column(1).as_primitive::<TimestampMillisecondType>();
        let e = b.column(2).as_primitive::<TimestampMillisecondType>();
        let n = b.column(3).as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            assert!(e.value(i) - s.value(i) >= 5 * 60_000);
            assert!(n.value(i) >= 1);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&script);
}

/// The demo's INSERTs are one statement set: one job, in which the
/// generated readings are read by one source that feeds all seven sinks.
#[test]
fn iot_pipeline_is_one_job_that_reads_its_source_once() {
    use runnel_engine::graph::NodeKind;
    use runnel_sql::session::{Outcome, Session};
    let root = repo_root();
    let sql = std::fs::read_to_string(root.join("examples/iot/pipeline.sql"))
        .expect("pipeline.sql")
        .replace(
            "'examples/iot/",
            &format!("'{}/examples/iot/", root.display()),
        );
    let stmts = runnel_sql::parser::parse_sql(&sql).expect("the demo parses");
    let mut session = Session::new(runnel_connectors::default_registry());
    let mut graphs = Vec::new();
    for stmt in &stmts {
        let outcome = session
            .execute(stmt, "", &|_| unreachable!("the demo has no SELECT"))
            .expect("the demo plans");
        if let Outcome::Job(job) = outcome {
            graphs.push(job.graph);
        }
    }
    assert_eq!(graphs.len(), 1, "one job");
    let nodes = graphs[0].nodes();
    let sources: Vec<&str> = nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Source { .. }))
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(sources, ["source: sensor_readings"]);
    let sinks = nodes
        .iter()
        .filter(|n| n.name.starts_with("sink: "))
        .count();
    assert_eq!(sinks, 7, "every INSERT has its sink");
}

/// The checkpoint options of a planned job: the fingerprint, which decides
/// whether a checkpoint may be restored, is the same at any parallelism
/// (so a job rescales) and differs for another statement; a bad
/// tolerable-failures count is refused with the option's name.
#[test]
fn checkpoints_restore_at_any_parallelism_and_failures_are_tolerated_as_set() {
    use runnel_sql::session::{Outcome, Session};
    let plan = |parallelism: &str, tolerable: &str, query: &str| {
        let sql = format!(
            "SET 'parallelism' = '{parallelism}';
             SET 'state.checkpoints.dir' = '/tmp/runnel-unused';
             SET 'execution.checkpointing.tolerable-failed-checkpoints' = '{tolerable}';
             CREATE TABLE r (device_id STRING, temperature DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
             CREATE TABLE out (id STRING, n DOUBLE) WITH ('connector' = 'blackhole');
             {query};"
        );
        let stmts = runnel_sql::parser::parse_sql(&sql).expect("parses");
        let mut session = Session::new(runnel_connectors::default_registry());
        let mut graph = None;
        for stmt in &stmts {
            // The text is the statement's SQL, part of the fingerprint.
            match session.execute(stmt, query, &|_| unreachable!("no SELECT")) {
                Ok(Outcome::Job(job)) => graph = Some(job.graph),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(graph.expect("one job"))
    };
    let insert = "INSERT INTO out SELECT device_id, MAX(temperature) FROM r GROUP BY device_id";
    let two = plan("2", "5", insert).expect("plans");
    let four = plan("4", "5", insert).expect("plans");
    let other = plan(
        "2",
        "5",
        "INSERT INTO out SELECT device_id, MIN(temperature) FROM r GROUP BY device_id",
    )
    .expect("plans");
    let fp = |g: &runnel_engine::graph::JobGraph| {
        g.checkpointing
            .as_ref()
            .expect("checkpoints")
            .fingerprint
            .clone()
    };
    assert_eq!(
        fp(&two),
        fp(&four),
        "parallelism is not part of the fingerprint"
    );
    assert_ne!(fp(&two), fp(&other), "another statement is");
    assert_eq!(two.tolerable_failed_checkpoints, 5);
    let Err(err) = plan("2", "many", insert) else {
        panic!("a count that is not a number is refused");
    };
    assert!(
        err.contains("tolerable-failed-checkpoints") && err.contains("many"),
        "{err}"
    );
}
