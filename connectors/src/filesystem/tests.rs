use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use runnel_engine::testing::OperatorHarness;
use runnel_engine::types::{row_kind_array, with_row_kind, RowKind};

use runnel_engine::operator::{OperatorFactory, OperatorMetrics};
use runnel_engine::source::SourcePoll;
use runnel_state::MemorySnapshot;

use super::*;
use crate::testutil::{
    check_resume_everywhere, drain, poll_batches, range, rows_of, sorted_ids, table, task,
    CheckpointHarness, Drained, TempDir,
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("v", DataType::Float64, true),
    ]
}

fn batch(ids: &[i64]) -> RecordBatch {
    let n = ids.len();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields())),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| (i % 3 != 0).then(|| format!("dev \"{i}\", x")))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMillisecondArray::from(
                ids.iter()
                    .map(|i| 1_767_225_600_000 + i * 1_250)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                (0..n)
                    .map(|i| (i % 4 != 1).then_some(i as f64 * 0.5))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("a valid batch")
}

fn fs_table(dir: &Path, format: &str, extra: &[(&str, &str)]) -> TableDescriptor {
    let path = dir.to_str().expect("utf-8 temp path").to_string();
    let mut options = vec![
        ("connector", "filesystem"),
        ("path", path.as_str()),
        ("format", format),
    ];
    options.extend_from_slice(extra);
    table(fields(), &options)
}

fn sink_harness(t: &TableDescriptor) -> Result<OperatorHarness> {
    let factory = FilesystemConnector.sink(t, false)?;
    OperatorHarness::new(factory(&task(0, 1))?)
}

fn read(t: &TableDescriptor, parallelism: usize) -> Result<Drained> {
    drain(&FilesystemConnector.source(t)?, parallelism)
}

fn sorted_rows(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let mut rows = Vec::new();
    for b in batches {
        rows.extend(crate::print::format_rows(b)?);
    }
    rows.sort();
    Ok(rows)
}

fn execution_error(t: &TableDescriptor) -> String {
    match read(t, 1) {
        Err(EngineError::Execution(msg)) => msg,
        Err(other) => panic!("expected an execution error, got {other}"),
        Ok(_) => panic!("expected the read to fail"),
    }
}

/// Writes two batches with a checkpoint between them, reads them back at
/// parallelism 2 and compares.
fn round_trip(format: &str, extra: &[(&str, &str)]) -> Result<()> {
    let dir = TempDir::new(format);
    let out = dir.path().join("out");
    let t = fs_table(&out, format, extra);
    let first = batch(&(0..10).collect::<Vec<_>>());
    let second = batch(&(10..15).collect::<Vec<_>>());
    let mut sink = sink_harness(&t)?;
    sink.batch(first.clone())?;
    sink.checkpoint(1)?;
    sink.batch(second.clone())?;
    sink.end()?;
    let ext = format;
    assert_eq!(
        std::fs::read_dir(&out)
            .expect("output dir exists")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect::<std::collections::BTreeSet<_>>(),
        [format!("part-0-0.{ext}"), format!("part-0-1.{ext}")]
            .into_iter()
            .collect(),
        "one file per checkpoint interval, no in-progress files left"
    );
    let back = read(&t, 2)?;
    assert_eq!(back.batches.len(), 2);
    assert!(back.batches.iter().all(|b| !b.is_empty()), "one file each");
    assert_eq!(back.sorted_rows()?, sorted_rows(&[first, second])?);
    Ok(())
}

#[test]
fn json_lines_round_trip() -> Result<()> {
    round_trip("json", &[])
}

#[test]
fn csv_round_trip_with_delimiter() -> Result<()> {
    round_trip("csv", &[("csv.field-delimiter", "|")])
}

#[test]
fn parquet_round_trip() -> Result<()> {
    round_trip("parquet", &[])
}

#[test]
fn json_source_reads_a_single_file_with_blank_lines_and_extra_fields() -> Result<()> {
    let dir = TempDir::new("json-file");
    let file = dir.file(
        "readings.json",
        "{\"id\": 1, \"name\": \"a\", \"t\": \"2026-01-01 00:00:05\", \"extra\": true}\n\
         \n\
         {\"id\": 2, \"v\": 2.5}",
    );
    let t = fs_table(&file, "json", &[]);
    let source = FilesystemConnector.source(&t)?;
    assert_eq!(source.parallelism, None, "a file may be shared by subtasks");
    let d = drain(&source, 1)?;
    assert_eq!(
        d.sorted_rows()?,
        vec![
            "+I[1, a, 2026-01-01T00:00:05, NULL]",
            "+I[2, NULL, NULL, 2.5]"
        ]
    );
    Ok(())
}

#[test]
fn csv_ignore_first_line_skips_the_header() -> Result<()> {
    let dir = TempDir::new("csv-header");
    dir.file(
        "a.csv",
        "id;name;t;v\n1;x;2026-01-01 00:00:00;1.5\n2;;2026-01-01T00:00:01;\n",
    );
    let t = fs_table(
        dir.path(),
        "csv",
        &[
            ("csv.field-delimiter", ";"),
            ("csv.ignore-first-line", "true"),
        ],
    );
    let d = read(&t, 1)?;
    assert_eq!(
        d.sorted_rows()?,
        vec![
            "+I[1, x, 2026-01-01T00:00:00, 1.5]",
            "+I[2, NULL, 2026-01-01T00:00:01, NULL]"
        ]
    );
    Ok(())
}

#[test]
fn malformed_json_fails_naming_file_and_line() {
    let dir = TempDir::new("json-bad");
    dir.file(
        "data.json",
        "{\"id\": 1}\n{\"id\": 2}\n{\"id\": \"two\"\n{\"id\": 4}\n",
    );
    let msg = execution_error(&fs_table(dir.path(), "json", &[]));
    assert!(msg.contains("data.json"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("JSON"), "{msg}");
}

#[test]
fn malformed_csv_fails_naming_file_and_line() {
    let dir = TempDir::new("csv-bad");
    dir.file(
        "data.csv",
        "1,a,2026-01-01 00:00:00,1.0\n2,b,not a time,2.0\n",
    );
    let msg = execution_error(&fs_table(dir.path(), "csv", &[]));
    assert!(msg.contains("data.csv") && msg.contains("line 2"), "{msg}");
}

#[test]
fn ignore_parse_errors_skips_and_counts() -> Result<()> {
    let dir = TempDir::new("json-skip");
    dir.file(
        "data.json",
        "{\"id\": 1}\n{\"id\": 2\n{\"id\": 3}\nnot json at all\n{\"id\": 5, \"v\": \"x\"}\n{\"id\": 6}\n",
    );
    let d = read(
        &fs_table(dir.path(), "json", &[("json.ignore-parse-errors", "true")]),
        1,
    )?;
    let ids: Vec<i64> = d
        .all()
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("id is BIGINT")
                .iter()
                .flatten()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids, vec![1, 3, 6]);
    assert_eq!(
        d.metrics.malformed_records.load(Ordering::Relaxed),
        3,
        "the truncated line, the garbage line and the wrong-typed line"
    );

    let dir = TempDir::new("csv-skip");
    dir.file("data.csv", "1,a,,\nx,b,,\n3,c,,\n");
    let d = read(
        &fs_table(dir.path(), "csv", &[("csv.ignore-parse-errors", "true")]),
        1,
    )?;
    assert_eq!(d.rows(), 2);
    assert_eq!(d.metrics.malformed_records.load(Ordering::Relaxed), 1);
    Ok(())
}

#[test]
fn large_file_parses_in_several_chunks() -> Result<()> {
    let dir = TempDir::new("json-large");
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!("{{\"id\": {i}}}\n"));
    }
    text.push_str("{\"id\": oops}\n");
    dir.file("big.json", &text);
    let msg = execution_error(&fs_table(dir.path(), "json", &[]));
    assert!(msg.contains("line 10001"), "{msg}");
    let d = read(
        &fs_table(dir.path(), "json", &[("json.ignore-parse-errors", "true")]),
        1,
    )?;
    assert_eq!(d.rows(), 10_000);
    assert!(d.batches[0].len() >= 3, "batches are bounded");
    Ok(())
}

#[test]
fn directory_listing_skips_hidden_and_staging_files() -> Result<()> {
    let dir = TempDir::new("listing");
    dir.file("b.json", "{\"id\": 2}\n");
    dir.file("a.json", "{\"id\": 1}\n");
    dir.file(".part-0-0.json.inprogress", "{\"id\": 3}\n");
    dir.file("_SUCCESS", "");
    std::fs::create_dir_all(dir.path().join("nested")).expect("nested dir");
    let files = list_files(dir.path()).expect("lists");
    let names: Vec<_> = files
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
        .collect();
    assert_eq!(names, vec!["a.json", "b.json"]);
    let d = read(&fs_table(dir.path(), "json", &[]), 1)?;
    assert_eq!(d.rows(), 2);
    Ok(())
}

#[test]
fn missing_path_is_a_connector_error() {
    let dir = TempDir::new("missing");
    let t = fs_table(&dir.path().join("nope"), "json", &[]);
    assert!(matches!(read(&t, 1), Err(EngineError::Connector(_))));
}

#[test]
fn sink_rejects_updating_streams() -> Result<()> {
    let dir = TempDir::new("updating");
    let t = fs_table(dir.path(), "json", &[]);
    match FilesystemConnector.sink(&t, true) {
        Err(EngineError::Plan(msg)) => assert!(msg.contains("append-only"), "{msg}"),
        Err(other) => panic!("expected a plan error, got {other}"),
        Ok(_) => panic!("an updating stream must be rejected"),
    }
    // And at run time, should a planner pass one anyway.
    let b = batch(&[1]);
    let mut columns = b.columns().to_vec();
    columns.push(row_kind_array(&[RowKind::Delete]));
    let updating = RecordBatch::try_new(with_row_kind(b.schema_ref()), columns)?;
    let mut sink = sink_harness(&t)?;
    assert!(sink.batch(updating).is_err());
    Ok(())
}

#[test]
fn in_progress_files_are_renamed_when_closed() -> Result<()> {
    let dir = TempDir::new("inprogress");
    let t = fs_table(dir.path(), "json", &[]);
    let mut sink = sink_harness(&t)?;
    sink.batch(batch(&[1, 2]))?;
    assert_eq!(dir.names(), vec![".part-0-0.json.inprogress"]);
    assert_eq!(read(&t, 1)?.rows(), 0, "readers do not see half files");
    sink.end()?;
    assert_eq!(dir.names(), vec!["part-0-0.json"]);
    assert_eq!(read(&t, 1)?.rows(), 2);

    // A second run continues the numbering instead of overwriting.
    let mut sink = sink_harness(&t)?;
    sink.checkpoint(1)?;
    sink.batch(batch(&[3]))?;
    sink.end()?;
    assert_eq!(dir.names(), vec!["part-0-0.json", "part-0-1.json"]);
    assert_eq!(read(&t, 1)?.rows(), 3);
    Ok(())
}

#[test]
fn bad_options_are_plan_errors() {
    let dir = TempDir::new("options");
    for (t, key) in [
        (fs_table(dir.path(), "xml", &[]), "'format'"),
        (
            fs_table(dir.path(), "csv", &[("csv.field-delimiter", "ab")]),
            "'csv.field-delimiter'",
        ),
        (
            fs_table(dir.path(), "json", &[("json.ignore-parse-errors", "yes")]),
            "'json.ignore-parse-errors'",
        ),
    ] {
        match FilesystemConnector.source(&t) {
            Err(EngineError::Plan(msg)) => assert!(msg.contains(key), "{msg}"),
            Err(other) => panic!("expected a plan error, got {other}"),
            Ok(_) => panic!("expected {key} to be rejected"),
        }
    }
}

// -- Checkpoints: source positions -------------------------------------------

/// `n` JSON lines with ids from `first`, a blank line every 1000 lines.
fn json_lines(first: i64, n: i64) -> String {
    let mut text = String::new();
    for i in first..first + n {
        text.push_str(&format!(
            "{{\"id\": {i}, \"name\": \"n{i}\", \"t\": \"2026-01-01 00:00:{:02}\", \"v\": {i}.5}}\n",
            i % 60
        ));
        if i % 1000 == 999 {
            text.push('\n');
        }
    }
    text
}

/// A directory of three JSON files, the first spanning several chunks and
/// holding a malformed line (skipped with `json.ignore-parse-errors`).
fn json_dir() -> TempDir {
    let dir = TempDir::new("resume-json");
    let mut first = json_lines(0, 6000);
    first.push_str("{\"id\": broken\n");
    first.push_str(&json_lines(6000, 4000));
    dir.file("a.json", &first);
    dir.file("b.json", &json_lines(10_000, 5));
    dir.file("c.json", &json_lines(20_000, 9000));
    dir
}

#[test]
fn json_source_resumes_exactly_after_every_batch() -> Result<()> {
    let dir = json_dir();
    let t = fs_table(dir.path(), "json", &[("json.ignore-parse-errors", "true")]);
    let source = FilesystemConnector.source(&t)?;
    let batches = check_resume_everywhere(&source, 0, 1)?;
    assert!(batches >= 6, "{batches} batches: cuts fall inside files");
    for subtask in 0..2 {
        check_resume_everywhere(&source, subtask, 2)?;
    }
    Ok(())
}

#[test]
fn csv_source_resumes_exactly_after_every_batch() -> Result<()> {
    let dir = TempDir::new("resume-csv");
    let mut text = String::from("id,name,t,v\n");
    for i in 0..10_000 {
        text.push_str(&format!("{i},n{i},2026-01-01 00:00:00,{i}.25\n"));
        if i % 777 == 0 {
            text.push('\n');
        }
    }
    let file = dir.file("data.csv", &text);
    let t = fs_table(&file, "csv", &[("csv.ignore-first-line", "true")]);
    let source = FilesystemConnector.source(&t)?;
    let batches = check_resume_everywhere(&source, 0, 1)?;
    assert!(batches >= 3, "{batches} batches");
    assert_eq!(read(&t, 1)?.rows(), 10_000, "the header is skipped once");
    Ok(())
}

#[test]
fn parquet_source_resumes_exactly_after_every_batch() -> Result<()> {
    let dir = TempDir::new("resume-parquet");
    let t = fs_table(dir.path(), "parquet", &[]);
    let mut sink = sink_harness(&t)?;
    sink.batch(batch(&(0..9000).collect::<Vec<_>>()))?;
    sink.checkpoint(1)?;
    sink.batch(batch(&(9000..9100).collect::<Vec<_>>()))?;
    sink.end()?;
    let source = FilesystemConnector.source(&t)?;
    let batches = check_resume_everywhere(&source, 0, 1)?;
    assert!(batches >= 4, "{batches} batches");
    Ok(())
}

/// A position taken inside `b.json` of [`json_dir`] at parallelism 1.
fn position_in_second_file(t: &TableDescriptor) -> Result<Vec<u8>> {
    let source = FilesystemConnector.source(t)?;
    let task = task(0, 1);
    let mut src = (source.factory)(&task)?;
    src.open(&task, &Arc::new(OperatorMetrics::default()))?;
    // a.json is three batches; the fourth is b.json's only one.
    let (batches, finished, _) = poll_batches(src.as_mut(), 3)?;
    assert_eq!(rows_of(&batches)?.len(), 10_000);
    assert!(finished.is_empty(), "a.json is not finished yet");
    src.snapshot_position()
}

fn restore_error(t: &TableDescriptor, position: &[u8]) -> Result<String> {
    let source = FilesystemConnector.source(t)?;
    let task = task(0, 1);
    let mut src = (source.factory)(&task)?;
    src.open(&task, &Arc::new(OperatorMetrics::default()))?;
    match src.restore_position(position) {
        Err(e) => Ok(e.to_string()),
        Ok(()) => panic!("the restore must fail"),
    }
}

#[test]
fn restore_fails_when_files_disappeared_or_changed() -> Result<()> {
    let dir = json_dir();
    let t = fs_table(dir.path(), "json", &[("json.ignore-parse-errors", "true")]);
    let position = position_in_second_file(&t)?;

    // The file being read is gone.
    std::fs::rename(dir.path().join("a.json"), dir.path().join(".a.json"))
        .expect("rename test file");
    let msg = restore_error(&t, &position)?;
    assert!(
        msg.contains("'a.json'") && msg.contains("no longer exists"),
        "{msg}"
    );
    std::fs::rename(dir.path().join(".a.json"), dir.path().join("a.json"))
        .expect("rename test file");

    // A file read earlier or later is gone: the listing changed.
    std::fs::remove_file(dir.path().join("c.json")).expect("remove test file");
    let msg = restore_error(&t, &position)?;
    assert!(
        msg.contains("changed") && msg.contains("3 files then, 2 now"),
        "{msg}"
    );

    // Same count, other names.
    dir.file("d.json", "{\"id\": 1}\n");
    let msg = restore_error(&t, &position)?;
    assert!(msg.contains("changed"), "{msg}");
    Ok(())
}

#[test]
fn restore_fails_on_damaged_positions_and_rewritten_files() -> Result<()> {
    let dir = json_dir();
    let t = fs_table(dir.path(), "json", &[("json.ignore-parse-errors", "true")]);
    let position = position_in_second_file(&t)?;
    let mut damaged = vec![
        vec![],
        vec![7],
        position[..position.len() - 3].to_vec(),
        [position.as_slice(), b"x"].concat(),
    ];
    let mut bad_tag = position.clone();
    // Version, files, names hash, splits, then the tag.
    bad_tag[25] = 5;
    damaged.push(bad_tag);
    for bytes in &damaged {
        let msg = restore_error(&t, bytes)?;
        assert!(msg.contains("filesystem"), "{msg}");
    }
    // Another parallelism puts the file in another subtask.
    let source = FilesystemConnector.source(&t)?;
    let other = task(1, 2);
    let mut src = (source.factory)(&other)?;
    src.open(&other, &Arc::new(OperatorMetrics::default()))?;
    let msg = src
        .restore_position(&position)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("not one of this subtask's splits"), "{msg}");
    // A file cut shorter than the position.
    dir.file("a.json", "{\"id\": 1}\n");
    let msg = restore_error(&t, &position)?;
    assert!(msg.contains("a.json") && msg.contains("bytes"), "{msg}");
    Ok(())
}

// -- Large files cut into line-aligned ranges ---------------------------------

/// JSON lines with ids `0..n`, lines of varying length, a blank line now
/// and then.
fn padded_lines(n: i64) -> String {
    let mut text = String::new();
    for i in 0..n {
        let pad = "x".repeat((i % 37) as usize);
        text.push_str(&format!("{{\"id\": {i}, \"name\": \"n{pad}\"}}\n"));
        if i % 101 == 0 {
            text.push('\n');
        }
    }
    text
}

#[test]
fn a_large_json_file_is_read_by_every_subtask_in_line_aligned_ranges() -> Result<()> {
    let dir = TempDir::new("split-json");
    let file = dir.file("big.json", &padded_lines(20_000));
    let len = std::fs::metadata(&file).expect("file exists").len();
    let t = fs_table(&file, "json", &[("source.split-size", "64kb")]);
    let listing = splits::plan(&FsOptions::from_table(&t)?)?;
    assert_eq!(
        listing.splits.len() as u64,
        len.div_ceil(64 << 10),
        "one split per 64 KiB"
    );
    let text = std::fs::read(&file).expect("read back");
    for pair in listing.splits.windows(2) {
        let start = pair[1].start as usize;
        assert_eq!(text[start - 1], b'\n', "a range starts at a line");
        assert_eq!(pair[0].end, Some(pair[1].start), "ranges touch");
    }
    for parallelism in [1, 3] {
        let d = read(&t, parallelism)?;
        let ids = sorted_ids(&d.all());
        assert_eq!(ids, (0..20_000).collect::<Vec<_>>(), "p={parallelism}");
        if parallelism == 3 {
            assert!(
                d.per_subtask_rows().iter().all(|n| *n > 5_000),
                "every subtask reads part of the file: {:?}",
                d.per_subtask_rows()
            );
        }
    }
    Ok(())
}

#[test]
fn a_split_json_file_resumes_exactly_in_every_subtask() -> Result<()> {
    let dir = TempDir::new("split-resume");
    let file = dir.file("big.json", &padded_lines(12_000));
    let t = fs_table(&file, "json", &[("source.split-size", "100kb")]);
    let source = FilesystemConnector.source(&t)?;
    for subtask in 0..2 {
        let batches = check_resume_everywhere(&source, subtask, 2)?;
        assert!(batches >= 2, "{batches} batches");
    }
    Ok(())
}

/// A subtask's ranges of one file are one split to its watermark: rows of
/// every range count under the subtask's first range of the file, which
/// finishes once, after the last. (Were each range its own split, the
/// ranges not yet started would hold the watermark back until the end, and
/// every window would stay open until then.)
#[test]
fn a_subtasks_ranges_of_one_file_are_one_split_for_watermarks() -> Result<()> {
    let dir = TempDir::new("split-watermark");
    let file = dir.file("big.json", &padded_lines(20_000));
    dir.file("small.json", "{\"id\": 1}\n");
    let t = fs_table(dir.path(), "json", &[("source.split-size", "64kb")]);
    let source = FilesystemConnector.source(&t)?;
    assert!(file.exists());
    for subtask in 0..2 {
        let task = task(subtask, 2);
        let mut src = (source.factory)(&task)?;
        let opened = src.open(&task, &Arc::new(OperatorMetrics::default()))?;
        let mut batch_splits = std::collections::BTreeSet::new();
        let mut finished = Vec::new();
        loop {
            match src.poll()? {
                SourcePoll::Batch { split, .. } => {
                    batch_splits.insert(split);
                }
                SourcePoll::SplitFinished(split) => finished.push(split),
                SourcePoll::Finished => break,
                SourcePoll::Pending | SourcePoll::Watermark(_) => {}
            }
        }
        // big.json's ranges are one split, small.json (split 0 or the
        // last) its own, for whichever subtask reads it.
        assert!(opened.len() <= 2, "subtask {subtask}: {opened:?}");
        assert_eq!(
            batch_splits.into_iter().collect::<Vec<_>>(),
            opened,
            "subtask {subtask}: rows count under the opened splits only"
        );
        finished.sort_unstable();
        assert_eq!(finished, opened, "subtask {subtask}: each finishes once");
    }
    Ok(())
}

#[test]
fn a_bad_line_in_a_later_range_is_named_by_its_line_in_the_file() -> Result<()> {
    let dir = TempDir::new("split-error");
    let mut text = padded_lines(5_000);
    text.push_str("{\"id\": oops}\n");
    let lines_before = text.matches('\n').count();
    text.push_str(&padded_lines(10));
    let file = dir.file("big.json", &text);
    let t = fs_table(&file, "json", &[("source.split-size", "16kb")]);
    let msg = match read(&t, 2) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the bad line must fail the read"),
    };
    assert!(
        msg.contains(&format!("at line {lines_before}:")),
        "line {lines_before} expected: {msg}"
    );
    Ok(())
}

#[test]
fn csv_is_split_without_quotes_and_read_whole_with_them() -> Result<()> {
    let dir = TempDir::new("split-csv");
    let mut plain = String::from("id,name,t,v\n");
    for i in 0..8_000 {
        plain.push_str(&format!("{i},n{i},2026-01-01 00:00:00,{i}.5\n"));
    }
    let file = dir.file("plain.csv", &plain);
    let options = [
        ("csv.ignore-first-line", "true"),
        ("source.split-size", "32kb"),
    ];
    let t = fs_table(&file, "csv", &options);
    assert!(splits::plan(&FsOptions::from_table(&t)?)?.splits.len() > 4);
    let d = read(&t, 2)?;
    assert_eq!(
        sorted_ids(&d.all()),
        (0..8_000).collect::<Vec<_>>(),
        "the header is skipped once, in the first range only"
    );

    // A quoted value with a line break: cutting could start mid-record.
    let mut quoted = plain.clone();
    quoted.push_str("8000,\"two\nlines\",2026-01-01 00:00:00,1.5\n");
    let file = dir.file("quoted.csv", &quoted);
    let t = fs_table(&file, "csv", &options);
    assert_eq!(splits::plan(&FsOptions::from_table(&t)?)?.splits.len(), 1);
    assert_eq!(sorted_ids(&read(&t, 2)?.all()).len(), 8_001);
    Ok(())
}

#[test]
fn split_size_option_is_checked() {
    let dir = TempDir::new("split-option");
    let file = dir.file("a.json", "{\"id\": 1}\n");
    let t = fs_table(&file, "json", &[("source.split-size", "lots")]);
    let msg = FilesystemConnector
        .source(&t)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("source.split-size") && msg.contains("'lots'"),
        "{msg}"
    );
}

// -- Checkpoints: the sink's two-phase commit --------------------------------

fn sink_factory(t: &TableDescriptor) -> Result<OperatorFactory> {
    FilesystemConnector.sink(t, false)
}

/// Opens subtask `subtask` of 2 with the state of `snapshot`.
fn open_sink(
    t: &TableDescriptor,
    subtask: usize,
    snapshot: &MemorySnapshot,
) -> Result<CheckpointHarness> {
    CheckpointHarness::open(&sink_factory(t)?, subtask, 2, snapshot)
}

fn ids(range: std::ops::Range<i64>) -> RecordBatch {
    batch(&range.collect::<Vec<_>>())
}

/// The ids a reader of the directory sees, sorted.
fn visible_ids(t: &TableDescriptor) -> Result<Vec<i64>> {
    Ok(sorted_ids(&read(t, 1)?.all()))
}

#[test]
fn two_phase_commit_publishes_on_completion_and_on_restore() -> Result<()> {
    let dir = TempDir::new("2pc-a");
    let t = fs_table(dir.path(), "json", &[]);
    let mut sink = open_sink(&t, 0, &MemorySnapshot::default())?;
    sink.batch(ids(0..5))?;
    assert_eq!(dir.names(), vec![".part-0-0.json.inprogress"]);
    sink.barrier(1)?;
    assert_eq!(dir.names(), vec![".part-0-0.json.staged"]);
    assert_eq!(
        visible_ids(&t)?,
        Vec::<i64>::new(),
        "staged files are hidden"
    );
    sink.complete(1)?;
    assert_eq!(dir.names(), vec!["part-0-0.json"]);
    assert_eq!(visible_ids(&t)?, range(0..5));

    sink.batch(ids(5..8))?;
    let after_barrier_2 = sink.barrier(2)?;
    assert_eq!(dir.names(), vec![".part-0-1.json.staged", "part-0-0.json"]);
    // Checkpoint 2 completed everywhere, but this subtask crashed before it
    // heard so.
    drop(sink);
    let mut sink = open_sink(&t, 0, &after_barrier_2)?;
    assert_eq!(dir.names(), vec!["part-0-0.json", "part-0-1.json"]);
    assert_eq!(
        visible_ids(&t)?,
        range(0..8),
        "checkpoint 2's rows exactly once"
    );

    // Numbering continues from the state.
    sink.batch(ids(8..9))?;
    sink.barrier(3)?;
    sink.complete(3)?;
    assert_eq!(
        dir.names(),
        vec!["part-0-0.json", "part-0-1.json", "part-0-2.json"]
    );
    assert_eq!(visible_ids(&t)?, range(0..9));
    Ok(())
}

#[test]
fn rows_after_the_last_checkpoint_are_discarded_on_restore() -> Result<()> {
    let dir = TempDir::new("2pc-b");
    let t = fs_table(dir.path(), "json", &[]);
    let mut sink = open_sink(&t, 0, &MemorySnapshot::default())?;
    sink.batch(ids(0..5))?;
    let checkpoint_1 = sink.barrier(1)?;
    sink.complete(1)?;
    // Checkpoint 2 is taken here but never completes; more rows follow.
    sink.batch(ids(5..10))?;
    sink.barrier(2)?;
    sink.batch(ids(10..12))?;
    assert_eq!(
        dir.names(),
        vec![
            ".part-0-1.json.staged",
            ".part-0-2.json.inprogress",
            "part-0-0.json"
        ]
    );
    drop(sink);

    let mut sink = open_sink(&t, 0, &checkpoint_1)?;
    assert_eq!(dir.names(), vec!["part-0-0.json"], "aborted files deleted");
    assert_eq!(
        visible_ids(&t)?,
        range(0..5),
        "exactly the rows up to checkpoint 1"
    );

    // The sources replay rows 5..12; each is written once.
    sink.batch(ids(5..12))?;
    sink.barrier(2)?;
    sink.complete(2)?;
    assert_eq!(dir.names(), vec!["part-0-0.json", "part-0-1.json"]);
    assert_eq!(visible_ids(&t)?, range(0..12));
    Ok(())
}

#[test]
fn publishing_is_idempotent() -> Result<()> {
    let dir = TempDir::new("2pc-c");
    let t = fs_table(dir.path(), "csv", &[]);
    let mut sink = open_sink(&t, 0, &MemorySnapshot::default())?;
    sink.batch(ids(0..3))?;
    let checkpoint_1 = sink.barrier(1)?;
    sink.complete(1)?;
    sink.complete(1)?;
    assert_eq!(dir.names(), vec!["part-0-0.csv"]);
    // A checkpoint without rows stages nothing; completing it is harmless.
    sink.barrier(2)?;
    sink.complete(2)?;
    drop(sink);
    // Restoring the snapshot that still lists the published file, twice.
    for _ in 0..2 {
        let mut sink = open_sink(&t, 0, &checkpoint_1)?;
        sink.complete(1)?;
        assert_eq!(dir.names(), vec!["part-0-0.csv"]);
        assert_eq!(visible_ids(&t)?, range(0..3));
    }
    Ok(())
}

#[test]
fn a_pending_file_that_vanished_is_an_error() -> Result<()> {
    let dir = TempDir::new("2pc-lost");
    let t = fs_table(dir.path(), "json", &[]);
    let mut sink = open_sink(&t, 0, &MemorySnapshot::default())?;
    sink.batch(ids(0..3))?;
    let checkpoint_1 = sink.barrier(1)?;
    drop(sink);
    std::fs::remove_file(dir.path().join(".part-0-0.json.staged")).expect("remove staged file");
    match open_sink(&t, 0, &checkpoint_1) {
        Err(EngineError::Connector(msg)) => assert!(msg.contains("part-0-0.json"), "{msg}"),
        Err(other) => panic!("expected a connector error, got {other}"),
        Ok(_) => panic!("a lost file of a completed checkpoint must be reported"),
    }
    Ok(())
}

#[test]
fn end_of_input_stages_until_the_final_checkpoint_completes() -> Result<()> {
    for format in ["json", "csv", "parquet"] {
        let dir = TempDir::new("2pc-d");
        let t = fs_table(dir.path(), format, &[]);
        let mut sink = open_sink(&t, 0, &MemorySnapshot::default())?;
        sink.batch(ids(0..4))?;
        sink.barrier(1)?;
        sink.complete(1)?;
        sink.batch(ids(4..9))?;
        let final_checkpoint = sink.end()?;
        assert_eq!(
            dir.names(),
            vec![
                format!(".part-0-1.{format}.staged"),
                format!("part-0-0.{format}")
            ]
        );
        assert_eq!(
            visible_ids(&t)?,
            range(0..4),
            "{format}: nothing new before completion"
        );
        // A regular checkpoint completing after the end of input does not
        // publish what the end staged: that belongs to the final checkpoint.
        sink.complete(1)?;
        assert_eq!(
            visible_ids(&t)?,
            range(0..4),
            "{format}: end output waits for the final checkpoint"
        );
        sink.complete(runnel_engine::types::Barrier::FINAL_CHECKPOINT)?;
        assert_eq!(
            dir.names(),
            vec![format!("part-0-0.{format}"), format!("part-0-1.{format}")]
        );
        assert_eq!(visible_ids(&t)?, range(0..9), "{format}");

        // A crash between the final snapshot and its completion: the
        // restore publishes, without duplicates.
        std::fs::rename(
            dir.path().join(format!("part-0-1.{format}")),
            dir.path().join(format!(".part-0-1.{format}.staged")),
        )
        .expect("un-publish");
        open_sink(&t, 0, &final_checkpoint)?;
        assert_eq!(visible_ids(&t)?, range(0..9), "{format}");
    }
    Ok(())
}

#[test]
fn restore_only_touches_this_subtasks_files() -> Result<()> {
    let dir = TempDir::new("2pc-subtasks");
    let t = fs_table(dir.path(), "json", &[]);
    let mut zero = open_sink(&t, 0, &MemorySnapshot::default())?;
    let mut one = open_sink(&t, 1, &MemorySnapshot::default())?;
    let start = zero.barrier(1)?;
    zero.batch(ids(0..2))?;
    one.batch(ids(2..4))?;
    one.barrier(2)?;
    one.batch(ids(4..6))?;
    dir.file(".part-10-0.json.inprogress", "{\"id\": 99}\n");
    dir.file(".part-0-0.csv.inprogress", "99,,,\n");
    dir.file("notes.txt", "keep me");
    drop(zero);
    open_sink(&t, 0, &start)?;
    assert_eq!(
        dir.names(),
        vec![
            ".part-0-0.csv.inprogress",
            ".part-1-0.json.staged",
            ".part-1-1.json.inprogress",
            ".part-10-0.json.inprogress",
            "notes.txt"
        ]
    );
    drop(one);
    Ok(())
}

// ------------------------------------------ bad data caught where it enters

/// The message of the read's failure, or the rows and malformed count.
fn read_lines(format: &str, text: &str, ignore: bool) -> std::result::Result<(usize, u64), String> {
    let dir = TempDir::new(&format!("{format}-strict"));
    dir.file(&format!("data.{format}"), text);
    let key = format!("{format}.ignore-parse-errors");
    let extra: Vec<(&str, &str)> = if ignore {
        vec![(key.as_str(), "true")]
    } else {
        vec![]
    };
    match read(&fs_table(dir.path(), format, &extra), 1) {
        Ok(d) => Ok((
            d.rows(),
            d.metrics.malformed_records.load(Ordering::Relaxed),
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn json_lines_take_exactly_one_object_per_line() {
    // Two objects on line 2.
    let two = "{\"id\": 1}\n{\"id\": 2} {\"id\": 3}\n{\"id\": 4}\n";
    let err = read_lines("json", two, false).expect_err("two values on a line");
    assert!(err.contains("data.json") && err.contains("line 2"), "{err}");
    assert!(err.contains("2 JSON values"), "{err}");
    assert_eq!(read_lines("json", two, true), Ok((2, 1)));
    // One object over lines 2 and 3.
    let spread = "{\"id\": 1}\n{\"id\":\n 2}\n{\"id\": 4}\n";
    let err = read_lines("json", spread, false).expect_err("an object over two lines");
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(read_lines("json", spread, true), Ok((2, 2)));
    // Both at once: as many values as lines, and still two bad records.
    let both = "{\"id\": 1} {\"id\": 2}\n{\"id\":\n 3}\n{\"id\": 4}\n";
    let err = read_lines("json", both, false).expect_err("both faults");
    assert!(
        err.contains("line 1") && err.contains("2 JSON values"),
        "{err}"
    );
    assert_eq!(read_lines("json", both, true), Ok((1, 3)));
}

#[test]
fn nul_bytes_make_a_record_malformed_in_every_text_format() {
    let json = "{\"id\": 1}\n{\"id\": 2, \"name\": \"a\u{0}b\"}\n";
    let err = read_lines("json", json, false).expect_err("NUL in JSON");
    assert!(err.contains("line 2") && err.contains("NUL"), "{err}");
    assert_eq!(read_lines("json", json, true), Ok((1, 1)));
    let csv = "1,a\u{0},,\n2,b,,\n";
    let err = read_lines("csv", csv, false).expect_err("NUL in CSV");
    assert!(err.contains("line 1") && err.contains("NUL"), "{err}");
    assert_eq!(read_lines("csv", csv, true), Ok((1, 1)));
}

#[test]
fn json_timestamps_no_date_matches_fail_at_the_source_with_their_line() {
    for bad in [i64::MAX.to_string(), i64::MIN.to_string()] {
        let text = format!("{{\"id\": 1, \"t\": 1000}}\n{{\"id\": 2, \"t\": {bad}}}\n");
        let err = read_lines("json", &text, false).expect_err("out of range");
        assert!(err.contains("data.json") && err.contains("line 2"), "{err}");
        assert!(err.contains("outside the range of timestamps"), "{err}");
        assert_eq!(read_lines("json", &text, true), Ok((1, 1)));
    }
}

#[test]
fn csv_values_may_hold_line_breaks_inside_quotes_and_round_trip() -> Result<()> {
    // Read: the quoted value of record 2 spans lines 2 and 3; record 3
    // starts on line 4, and its error names that line.
    // A quote inside an unquoted value is an ordinary character and opens
    // nothing: the next line is a record of its own.
    let stray = "1,12\" ruler,,\n2,b,,\n";
    assert_eq!(read_lines("csv", stray, false), Ok((2, 0)));
    let text = "1,plain,,\n2,\"two\nlines, \"\"quoted\"\"\",,\n3,x,not a time,\n";
    let err = read_lines("csv", text, false).expect_err("record 3 is bad");
    assert!(err.contains("line 4"), "{err}");
    assert_eq!(read_lines("csv", text, true), Ok((2, 1)));

    // Write, then read back: the sink quotes the line break and the source
    // reads the same value.
    let dir = TempDir::new("csv-newline");
    let t = fs_table(&dir.path().join("out"), "csv", &[]);
    let names = StringArray::from(vec![Some("one\ntwo"), Some("a,\"b\"\r\nc"), None]);
    let b = batch(&[1, 2, 3]);
    let mut columns = b.columns().to_vec();
    columns[1] = Arc::new(names);
    let written = RecordBatch::try_new(b.schema(), columns).expect("batch");
    let mut sink = sink_harness(&t)?;
    sink.batch(written.clone())?;
    sink.end()?;
    let back = read(&t, 1)?;
    assert_eq!(back.sorted_rows()?, sorted_rows(&[written])?);
    Ok(())
}

/// A Parquet file `data.parquet` in a new directory with one column.
fn parquet_file(name: &str, column: arrow::array::ArrayRef) -> TempDir {
    let dir = TempDir::new(name);
    let schema = Arc::new(Schema::new(vec![Field::new(
        "id",
        column.data_type().clone(),
        true,
    )]));
    let b = RecordBatch::try_new(Arc::clone(&schema), vec![column]).expect("batch");
    let file = std::fs::File::create(dir.path().join("data.parquet")).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&b).expect("write");
    w.close().expect("close");
    dir
}

fn parquet_table(dir: &Path, column: DataType) -> TableDescriptor {
    let path = dir.to_str().expect("utf-8").to_string();
    table(
        vec![Field::new("id", column, true)],
        &[
            ("connector", "filesystem"),
            ("path", path.as_str()),
            ("format", "parquet"),
        ],
    )
}

#[test]
fn parquet_columns_of_another_type_fail_naming_file_column_and_types() -> Result<()> {
    // Text read as DOUBLE.
    let dir = parquet_file(
        "pq-text",
        Arc::new(StringArray::from(vec!["1.5", "not a number"])),
    );
    let err = match read(&parquet_table(dir.path(), DataType::Float64), 1) {
        Err(e) => e.to_string(),
        Ok(d) => panic!("read {} rows of text as DOUBLE", d.rows()),
    };
    assert!(
        err.contains("data.parquet") && err.contains("'id'"),
        "{err}"
    );
    assert!(
        err.contains("STRING in the file but DOUBLE in the table"),
        "{err}"
    );
    // BIGINT beyond INT's range read as INT.
    let dir = parquet_file(
        "pq-narrow",
        Arc::new(Int64Array::from(vec![1, i64::from(i32::MAX) + 1])),
    );
    let err = match read(&parquet_table(dir.path(), DataType::Int32), 1) {
        Err(e) => e.to_string(),
        Ok(d) => panic!("read {} rows of BIGINT as INT", d.rows()),
    };
    assert!(
        err.contains("BIGINT in the file but INT in the table"),
        "{err}"
    );
    // A widening is applied: INT read as BIGINT and as DOUBLE.
    let dir = parquet_file(
        "pq-widen",
        Arc::new(arrow::array::Int32Array::from(vec![7, -8])),
    );
    let d = read(&parquet_table(dir.path(), DataType::Int64), 1)?;
    let ids: Vec<i64> = d
        .all()
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("BIGINT")
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ids, vec![7, -8]);
    assert_eq!(
        read(&parquet_table(dir.path(), DataType::Float64), 1)?.rows(),
        2
    );
    // Dictionary-encoded strings (pandas categoricals) read as STRING.
    let dict: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> =
        vec!["x", "y", "x"].into_iter().collect();
    let dir = parquet_file("pq-dict", Arc::new(dict));
    let d = read(&parquet_table(dir.path(), DataType::Utf8), 1)?;
    assert_eq!(d.rows(), 3);
    let mut got: Vec<String> = d
        .all()
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("STRING")
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    got.sort();
    assert_eq!(got, vec!["x", "x", "y"]);
    Ok(())
}

#[test]
fn a_nul_in_a_value_round_trips_through_json_and_is_refused_by_csv() -> Result<()> {
    let with_nul = |dir: &Path, format: &str| -> Result<(TableDescriptor, RecordBatch)> {
        let t = fs_table(&dir.join(format), format, &[]);
        let b = batch(&[1, 2]);
        let mut columns = b.columns().to_vec();
        columns[1] = Arc::new(StringArray::from(vec![Some("a\u{0}b"), Some("plain")]));
        Ok((t, RecordBatch::try_new(b.schema(), columns).expect("batch")))
    };
    let dir = TempDir::new("nul-sinks");
    // JSON escapes it (\u0000), and the source reads the same value back.
    let (t, written) = with_nul(dir.path(), "json")?;
    let mut sink = sink_harness(&t)?;
    sink.batch(written.clone())?;
    sink.end()?;
    assert_eq!(read(&t, 1)?.sorted_rows()?, sorted_rows(&[written])?);
    // CSV cannot carry it: the sink says so instead of writing a file its
    // source would reject.
    let (t, written) = with_nul(dir.path(), "csv")?;
    let mut sink = sink_harness(&t)?;
    let err = sink.batch(written).expect_err("NUL in CSV").to_string();
    assert!(
        err.contains("column 'name' of row 1") && err.contains("NUL"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_line_longer_than_the_limit_is_a_malformed_record_not_a_memory_sink() {
    // The test build's limit is 64 KiB (64 MiB in a real build).
    let long = format!("{{\"id\": 2, \"name\": \"{}\"}}", "x".repeat(200 << 10));
    let text = format!("{{\"id\": 1}}\n{long}\n{{\"id\": 3}}\n");
    let err = read_lines("json", &text, false).expect_err("too long");
    assert!(
        err.contains("line 2") && err.contains("longer than 65536 bytes"),
        "{err}"
    );
    assert_eq!(read_lines("json", &text, true), Ok((2, 1)));
    // Without any line break at all.
    let err = read_lines("csv", &"y".repeat(300 << 10), false).expect_err("too long");
    assert!(
        err.contains("line 1") && err.contains("longer than"),
        "{err}"
    );
}

// -- Rescaling: positions taken at one parallelism, restored at another -------

/// Every subtask of a run at `before` reads `cut` batches and takes its
/// position; the subtasks of a run at `after` resume from all of those
/// positions and read to the end. Together the two runs read every row of
/// the input exactly once, and every split a resumed subtask opened is
/// reported finished.
fn check_rescale(source: &SourceTable, before: usize, after: usize, cut: usize) -> Result<()> {
    let metrics = Arc::new(OperatorMetrics::default());
    let mut rows = Vec::new();
    let mut positions = Vec::new();
    for subtask in 0..before {
        let task = task(subtask, before);
        let mut first = (source.factory)(&task)?;
        first.open(&task, &metrics)?;
        let (head, _, _) = poll_batches(first.as_mut(), cut)?;
        rows.extend(rows_of(&head)?);
        positions.push(first.snapshot_position()?);
    }
    for subtask in 0..after {
        let task = task(subtask, after);
        let mut second = (source.factory)(&task)?;
        let mut open = second.open(&task, &metrics)?;
        second.restore_positions(&positions)?;
        let (tail, finished, done) = poll_batches(second.as_mut(), usize::MAX)?;
        assert!(
            done,
            "{before} -> {after}, cut {cut}: subtask {subtask} finishes"
        );
        open.retain(|s| !finished.contains(s));
        assert!(
            open.is_empty(),
            "{before} -> {after}, cut {cut}: splits never finished: {open:?}"
        );
        rows.extend(rows_of(&tail)?);
    }
    let mut expected = read_rows(source)?;
    expected.sort();
    rows.sort();
    assert_eq!(
        rows.len(),
        expected.len(),
        "{before} -> {after}, cut {cut}: rows"
    );
    assert!(
        rows == expected,
        "{before} -> {after}, cut {cut}: rows differ"
    );
    Ok(())
}

/// All rows of `source`, read by one subtask.
fn read_rows(source: &SourceTable) -> Result<Vec<String>> {
    let task = task(0, 1);
    let mut whole = (source.factory)(&task)?;
    whole.open(&task, &Arc::new(OperatorMetrics::default()))?;
    let (all, _, _) = poll_batches(whole.as_mut(), usize::MAX)?;
    rows_of(&all)
}

#[test]
fn file_positions_restore_at_another_parallelism_without_loss_or_repeats() -> Result<()> {
    // Three files, one of them cut into ranges, so that subtasks stop
    // inside ranges, between files and after their last split.
    let dir = json_dir();
    dir.file("d.json", &padded_lines(6000));
    let t = fs_table(
        dir.path(),
        "json",
        &[
            ("json.ignore-parse-errors", "true"),
            ("source.split-size", "64kb"),
        ],
    );
    let source = FilesystemConnector.source(&t)?;
    for (before, after) in [(1, 3), (2, 3), (3, 2), (4, 1), (2, 5)] {
        for cut in [0, 1, 2, 4, 7, 1000] {
            check_rescale(&source, before, after, cut)?;
        }
    }
    // Twice: a position written after a rescale (several splits under way)
    // restores again, at the same parallelism and at another one.
    let metrics = Arc::new(OperatorMetrics::default());
    let mut positions = Vec::new();
    for subtask in 0..2 {
        let task = task(subtask, 2);
        let mut src = (source.factory)(&task)?;
        src.open(&task, &metrics)?;
        poll_batches(src.as_mut(), 3)?;
        positions.push(src.snapshot_position()?);
    }
    let task = task(0, 1);
    let mut merged = (source.factory)(&task)?;
    merged.open(&task, &metrics)?;
    merged.restore_positions(&positions)?;
    let again = merged.snapshot_position()?;
    assert_eq!(
        again.first(),
        Some(&3),
        "several splits under way: a listed position"
    );
    let mut resumed = (source.factory)(&task)?;
    resumed.open(&task, &metrics)?;
    resumed.restore_position(&again)?;
    let (a, _, done_a) = poll_batches(resumed.as_mut(), usize::MAX)?;
    let (b, _, done_b) = poll_batches(merged.as_mut(), usize::MAX)?;
    assert!(done_a && done_b);
    assert_eq!(
        rows_of(&a)?,
        rows_of(&b)?,
        "the listed position resumes where it was"
    );
    Ok(())
}
