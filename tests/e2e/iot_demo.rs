//! The IoT demo script (`examples/iot/pipeline.sql`) run through the CLI's
//! code path on a smaller input, with its file outputs checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
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
        },
        false,
    )
    .expect("the demo runs");

    // Quarantine: every row's reason matches its fields.
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_time", ts(), true),
        Field::new("device_id", DataType::Utf8, true),
        Field::new("temperature", DataType::Float64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
    ]));
    let batches = read_dir_batches(&out.join("quarantine"), schema, true);
    let mut reasons = std::collections::BTreeSet::new();
    let mut rows = 0;
    for b in &batches {
        let device = b.column(1).as_string::<i32>();
        let temp = b.column(2).as_primitive::<arrow::datatypes::Float64Type>();
        let reason = b.column(4).as_string::<i32>();
        for i in 0..b.num_rows() {
            rows += 1;
            let r = reason.value(i);
            reasons.insert(r.to_string());
            match r {
                "missing device id" => assert!(device.is_null(i)),
                "malformed record" => assert!(!device.is_null(i) && temp.is_null(i)),
                "temperature out of range" => assert_eq!(temp.value(i), 9999.0),
                other => panic!("unexpected reason {other}"),
            }
        }
    }
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        vec![
            "malformed record",
            "missing device id",
            "temperature out of range"
        ]
    );
    // About 2% of 60,000 readings are bad (1% + 0.5% + 0.5%, minus outages).
    assert!((700..=1_700).contains(&rows), "{rows} quarantined rows");

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
