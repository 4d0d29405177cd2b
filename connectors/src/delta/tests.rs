//! Unit tests of the Delta sink's commit protocol and of the Delta source,
//! on real tables in temporary directories. Tables are read back through
//! the log (`deltalake`) and through this crate's source; the independent
//! readers (DuckDB, the Python `deltalake` package) are in tests/e2e.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use runnel_engine::connector::{Connector, TableDescriptor};
use runnel_engine::operator::{OperatorFactory, OperatorMetrics};
use runnel_engine::source::Source;
use runnel_engine::testing::OperatorHarness;
use runnel_engine::types::Barrier;
use runnel_engine::types::{row_kind_array, with_row_kind, RowKind};
use runnel_engine::{EngineError, Result};
use runnel_state::MemorySnapshot;

use super::*;
use crate::testutil::{
    drain, poll_batches, range, sorted_ids, table, task, CheckpointHarness, TempDir,
};

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]
}

fn delta_table(dir: &Path, extra: &[(&str, &str)]) -> TableDescriptor {
    let path = dir.to_str().expect("utf-8 temp path").to_string();
    let mut options = vec![("connector", "delta"), ("path", path.as_str())];
    options.extend_from_slice(extra);
    table(fields(), &options)
}

fn partitioned(dir: &Path) -> TableDescriptor {
    let mut t = delta_table(dir, &[]);
    t.partition_keys = vec![1];
    t
}

/// Rows `ids`, region "eu" for even ids and "us" for odd ones, ts = id s.
fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields())),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| if i % 2 == 0 { "eu" } else { "us" })
                    .collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMillisecondArray::from(
                ids.iter().map(|i| i * 1000).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("valid batch")
}

fn sink(t: &TableDescriptor) -> Result<OperatorFactory> {
    DeltaConnector.sink(t, false)
}

/// The ids a reader of the table sees (through the Delta source), sorted.
fn visible_ids(t: &TableDescriptor) -> Result<Vec<i64>> {
    Ok(sorted_ids(&drain(&DeltaConnector.source(t)?, 1)?.all()))
}

/// The table's latest version.
fn version(dir: &Path) -> Result<u64> {
    let t = delta_table(dir, &[]);
    let options = DeltaOptions::from_table(&t)?;
    let table = options.load_latest()?.expect("a table exists");
    Ok(table.version().expect("loaded"))
}

/// Every `txn` action in the log, in version order: (app id, version).
fn txns(dir: &Path) -> Vec<(String, i64)> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("_delta_log"))
        .expect("log exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let text = std::fs::read_to_string(&p).expect("log entry readable");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("log line is JSON");
            if let Some(t) = v.get("txn") {
                out.push((
                    t["appId"].as_str().expect("appId").to_string(),
                    t["version"].as_i64().expect("version"),
                ));
            }
        }
    }
    out
}

/// Parquet files under `dir` (recursively), excluding the log.
fn parquet_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("readable").flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("_delta_log") {
            n += parquet_files(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            n += 1;
        }
    }
    n
}

#[test]
fn one_version_per_checkpoint_across_subtasks_with_a_txn() -> Result<()> {
    let dir = TempDir::new("delta-commit");
    let t = delta_table(dir.path(), &[]);
    let factory = sink(&t)?;
    let empty = MemorySnapshot::default();
    let mut a = CheckpointHarness::open(&factory, 0, 2, &empty)?;
    let mut b = CheckpointHarness::open(&factory, 1, 2, &empty)?;
    assert_eq!(version(dir.path())?, 0, "the table is created empty");
    a.batch(rows(0..5))?;
    b.batch(rows(5..8))?;
    a.barrier(1)?;
    b.barrier(1)?;
    assert_eq!(
        visible_ids(&t)?,
        Vec::<i64>::new(),
        "files are not committed at the barrier"
    );
    a.complete(1)?;
    assert_eq!(
        version(dir.path())?,
        0,
        "one subtask's report does not commit"
    );
    b.complete(1)?;
    assert_eq!(
        version(dir.path())?,
        1,
        "the last report commits one version"
    );
    assert_eq!(visible_ids(&t)?, range(0..8));
    // A checkpoint without rows commits nothing.
    a.barrier(2)?;
    b.barrier(2)?;
    a.complete(2)?;
    b.complete(2)?;
    assert_eq!(version(dir.path())?, 1);
    a.batch(rows(8..9))?;
    a.barrier(3)?;
    b.barrier(3)?;
    b.complete(3)?;
    a.complete(3)?;
    assert_eq!(version(dir.path())?, 2);
    assert_eq!(visible_ids(&t)?, range(0..9));
    let txns = txns(dir.path());
    assert_eq!(txns.len(), 2, "{txns:?}");
    assert!(txns[0].0.starts_with("runnel-"), "{txns:?}");
    assert_eq!(txns[0].0, txns[1].0, "one lineage");
    assert_eq!(
        (txns[0].1, txns[1].1),
        (1, 3),
        "versions are checkpoint ids"
    );
    Ok(())
}

#[test]
fn a_subtask_a_round_ahead_does_not_take_the_others_files_along() -> Result<()> {
    // The sink's subtasks hear of completed checkpoints at different
    // times: subtask A reports checkpoint 1, passes barrier 2 and reports 2
    // before subtask B reports 1.
    let dir = TempDir::new("delta-interleaved");
    let t = delta_table(dir.path(), &[]);
    let factory = sink(&t)?;
    let empty = MemorySnapshot::default();
    let mut a = CheckpointHarness::open(&factory, 0, 2, &empty)?;
    let mut b = CheckpointHarness::open(&factory, 1, 2, &empty)?;
    a.batch(rows(0..2))?;
    b.batch(rows(2..4))?;
    a.barrier(1)?;
    b.barrier(1)?;
    a.complete(1)?;
    a.batch(rows(4..6))?;
    a.barrier(2)?;
    b.batch(rows(6..8))?;
    b.barrier(2)?;
    a.complete(2)?;
    b.complete(1)?;
    assert_eq!(
        visible_ids(&t)?,
        range(0..4),
        "round 1 commits round 1 only"
    );
    b.complete(2)?;
    assert_eq!(
        visible_ids(&t)?,
        range(0..8),
        "round 2 has both subtasks' files"
    );
    let versions: Vec<i64> = txns(dir.path()).iter().map(|t| t.1).collect();
    assert_eq!(versions, vec![1, 2]);
    Ok(())
}

#[test]
fn a_job_resumed_from_its_final_checkpoint_and_ended_again_commits_again() -> Result<()> {
    let dir = TempDir::new("delta-resume-end");
    let t = delta_table(dir.path(), &[]);
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &MemorySnapshot::default())?;
    s.batch(rows(0..2))?;
    s.end()?;
    let final_state = s.barrier(Barrier::FINAL_CHECKPOINT)?;
    s.complete(Barrier::FINAL_CHECKPOINT)?;
    assert_eq!(
        visible_ids(&t)?,
        range(0..2),
        "the final completion commits"
    );
    drop(s);
    // Stopped with a savepoint, resumed, stopped again before any periodic
    // checkpoint: the second end must not reuse the first one's key.
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &final_state)?;
    s.batch(rows(2..5))?;
    s.end()?;
    s.barrier(Barrier::FINAL_CHECKPOINT)?;
    s.complete(Barrier::FINAL_CHECKPOINT)?;
    assert_eq!(visible_ids(&t)?, range(0..5));
    let versions: Vec<i64> = txns(dir.path()).iter().map(|t| t.1).collect();
    assert_eq!(versions, vec![1, 2]);
    Ok(())
}

#[test]
fn a_job_graph_started_again_in_process_starts_clean() -> Result<()> {
    // The same factory (a cloned job graph) runs twice in one process.
    let dir = TempDir::new("delta-rerun");
    let t = delta_table(dir.path(), &[]);
    let factory = sink(&t)?;
    let mut s = CheckpointHarness::open(&factory, 0, 1, &MemorySnapshot::default())?;
    for id in 1..=3 {
        s.batch(rows(id..id + 1))?;
        s.barrier(id as u64)?;
        s.complete(id as u64)?;
    }
    drop(s);
    let mut s = CheckpointHarness::open(&factory, 0, 1, &MemorySnapshot::default())?;
    s.batch(rows(10..11))?;
    s.barrier(1)?;
    s.complete(1)?;
    assert_eq!(visible_ids(&t)?, vec![1, 2, 3, 10]);
    Ok(())
}

#[test]
fn restore_commits_what_the_crash_left_once() -> Result<()> {
    let dir = TempDir::new("delta-restore");
    let t = delta_table(dir.path(), &[]);
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &MemorySnapshot::default())?;
    s.batch(rows(0..4))?;
    let checkpoint_1 = s.barrier(1)?;
    // Checkpoint 1 completed, but the process died before the commit.
    drop(s);
    assert_eq!(visible_ids(&t)?, Vec::<i64>::new());
    for attempt in 0..2 {
        // A new process (new factory) restores checkpoint 1: the first
        // attempt commits, the second finds the txn and skips.
        let s = CheckpointHarness::open(&sink(&t)?, 0, 1, &checkpoint_1)?;
        assert_eq!(version(dir.path())?, 1, "attempt {attempt}");
        assert_eq!(visible_ids(&t)?, range(0..4), "attempt {attempt}");
        drop(s);
    }
    // Completing checkpoint 1 again after the restore does not add it twice.
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &checkpoint_1)?;
    s.complete(1)?;
    s.batch(rows(4..6))?;
    s.barrier(2)?;
    s.complete(2)?;
    assert_eq!(visible_ids(&t)?, range(0..6));
    assert_eq!(version(dir.path())?, 2);
    Ok(())
}

#[test]
fn files_written_after_the_restored_checkpoint_are_never_referenced() -> Result<()> {
    let dir = TempDir::new("delta-orphans");
    let t = delta_table(dir.path(), &[]);
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &MemorySnapshot::default())?;
    s.batch(rows(0..5))?;
    let checkpoint_1 = s.barrier(1)?;
    s.complete(1)?;
    // Checkpoint 2's barrier passes but it never completes; more rows follow.
    s.batch(rows(5..10))?;
    s.barrier(2)?;
    s.batch(rows(10..12))?;
    drop(s);
    let orphans = parquet_files(dir.path());
    assert_eq!(orphans, 2, "checkpoint 1's file and checkpoint 2's");

    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &checkpoint_1)?;
    assert_eq!(
        visible_ids(&t)?,
        range(0..5),
        "exactly the rows up to checkpoint 1"
    );
    // The sources replay rows 5..12; each is committed once.
    s.batch(rows(5..12))?;
    s.barrier(2)?;
    s.complete(2)?;
    assert_eq!(visible_ids(&t)?, range(0..12));
    assert_eq!(version(dir.path())?, 2);
    Ok(())
}

#[test]
fn a_fresh_run_starts_a_new_lineage() -> Result<()> {
    let dir = TempDir::new("delta-lineage");
    let t = delta_table(dir.path(), &[]);
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &MemorySnapshot::default())?;
    for (i, id) in (1..=3).enumerate() {
        s.batch(rows(i as i64..i as i64 + 1))?;
        s.barrier(id)?;
        s.complete(id)?;
    }
    drop(s);
    // A second run of the query without a checkpoint: its checkpoint ids
    // start at 1 again and must not be taken for the first run's.
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &MemorySnapshot::default())?;
    s.batch(rows(10..12))?;
    s.barrier(1)?;
    s.complete(1)?;
    assert_eq!(visible_ids(&t)?, vec![0, 1, 2, 10, 11]);
    let txns = txns(dir.path());
    assert_eq!(txns.len(), 4);
    assert_ne!(txns[0].0, txns[3].0, "a new run has a new app id");
    Ok(())
}

#[test]
fn end_of_input_commits_under_the_next_id() -> Result<()> {
    let dir = TempDir::new("delta-end");
    let t = delta_table(dir.path(), &[]);
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &MemorySnapshot::default())?;
    s.batch(rows(0..2))?;
    s.barrier(4)?;
    s.complete(4)?;
    s.batch(rows(2..3))?;
    s.end()?;
    let final_state = s.barrier(Barrier::FINAL_CHECKPOINT)?;
    assert_eq!(visible_ids(&t)?, range(0..2), "staged at the final barrier");
    drop(s);
    // A crash after the final checkpoint, before its commit.
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &final_state)?;
    s.complete(Barrier::FINAL_CHECKPOINT)?;
    assert_eq!(visible_ids(&t)?, range(0..3));
    let versions: Vec<i64> = txns(dir.path()).iter().map(|t| t.1).collect();
    assert_eq!(versions, vec![4, 5]);
    Ok(())
}

#[test]
fn without_checkpoints_files_are_committed_at_the_end() -> Result<()> {
    let dir = TempDir::new("delta-plain");
    let t = delta_table(dir.path(), &[]);
    let mut h = OperatorHarness::new(sink(&t)?(&task(0, 1))?)?;
    h.batch(rows(0..3))?;
    assert_eq!(visible_ids(&t)?, Vec::<i64>::new());
    h.end()?;
    assert_eq!(visible_ids(&t)?, range(0..3));
    assert!(
        txns(dir.path()).is_empty(),
        "no lineage without checkpoints"
    );
    Ok(())
}

#[test]
fn partitioned_tables_have_one_directory_per_value_and_read_back() -> Result<()> {
    let dir = TempDir::new("delta-parts");
    let t = partitioned(dir.path());
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &MemorySnapshot::default())?;
    s.batch(rows(0..6))?;
    s.barrier(1)?;
    s.complete(1)?;
    assert!(dir.path().join("region=eu").is_dir());
    assert!(dir.path().join("region=us").is_dir());
    let batches = drain(&DeltaConnector.source(&t)?, 1)?.all();
    let mut seen: Vec<(i64, String, i64)> = Vec::new();
    for b in &batches {
        let id = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id");
        let region = b
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("region");
        let ts = b
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("ts comes back as TIMESTAMP(3)");
        for i in 0..b.num_rows() {
            seen.push((id.value(i), region.value(i).to_string(), ts.value(i)));
        }
    }
    seen.sort();
    let expected: Vec<(i64, String, i64)> = (0..6)
        .map(|i| {
            (
                i,
                if i % 2 == 0 { "eu" } else { "us" }.to_string(),
                i * 1000,
            )
        })
        .collect();
    assert_eq!(seen, expected);
    // Declaring another partitioning for the existing table is an error.
    let err = sink(&delta_table(dir.path(), &[]))
        .and_then(|f| CheckpointHarness::open(&f, 0, 1, &MemorySnapshot::default()).map(|_| ()));
    assert!(
        err.is_ok(),
        "no PARTITIONED BY takes the table's partitioning"
    );
    let mut other = delta_table(dir.path(), &[]);
    other.partition_keys = vec![0];
    let err = CheckpointHarness::open(&sink(&other)?, 0, 1, &MemorySnapshot::default())
        .err()
        .expect("another partitioning is refused");
    assert!(err.to_string().contains("partitioned by (region)"), "{err}");
    Ok(())
}

#[test]
fn a_table_with_other_columns_is_refused_unless_evolution_adds_them() -> Result<()> {
    let dir = TempDir::new("delta-schema");
    let t = delta_table(dir.path(), &[]);
    let mut s = CheckpointHarness::open(&sink(&t)?, 0, 1, &MemorySnapshot::default())?;
    s.batch(rows(0..2))?;
    s.barrier(1)?;
    s.complete(1)?;
    drop(s);
    let path = dir.path().to_str().expect("utf-8").to_string();
    let wider = |extra: &[(&str, &str)]| {
        let mut f = fields();
        f.push(Field::new("note", DataType::Utf8, true));
        let mut options = vec![("connector", "delta"), ("path", path.as_str())];
        options.extend_from_slice(extra);
        table(f, &options)
    };
    let err = CheckpointHarness::open(&sink(&wider(&[]))?, 0, 1, &MemorySnapshot::default())
        .err()
        .expect("a new column is refused by default");
    assert!(
        err.to_string()
            .contains("column 'note' is not in the table")
            && err.to_string().contains("sink.schema-evolution"),
        "{err}"
    );
    // A column of another type is refused even with evolution.
    let mut f = fields();
    f[0] = Field::new("id", DataType::Utf8, false);
    let retyped = table(f, &[("connector", "delta"), ("path", path.as_str())]);
    let err = CheckpointHarness::open(&sink(&retyped)?, 0, 1, &MemorySnapshot::default())
        .err()
        .expect("a new type is refused");
    assert!(
        err.to_string()
            .contains("column 'id' is Int64 in the table"),
        "{err}"
    );

    let evolving = wider(&[("sink.schema-evolution", "true")]);
    let mut s = CheckpointHarness::open(&sink(&evolving)?, 0, 1, &MemorySnapshot::default())?;
    let base = rows(2..3);
    let mut columns = base.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec!["new"])));
    s.batch(RecordBatch::try_new(Arc::clone(&evolving.schema), columns)?)?;
    s.barrier(1)?;
    s.complete(1)?;
    // Old files read the new column as NULL.
    let batches = drain(&DeltaConnector.source(&evolving)?, 1)?.all();
    let mut notes: Vec<(i64, Option<String>)> = Vec::new();
    for b in &batches {
        let id = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id");
        let note = b
            .column(3)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("note");
        for i in 0..b.num_rows() {
            notes.push((
                id.value(i),
                note.is_valid(i).then(|| note.value(i).to_string()),
            ));
        }
    }
    notes.sort();
    assert_eq!(
        notes,
        vec![(0, None), (1, None), (2, Some("new".to_string()))]
    );
    Ok(())
}

#[test]
fn updating_streams_are_refused_or_written_as_a_changelog() -> Result<()> {
    let dir = TempDir::new("delta-updating");
    let t = delta_table(dir.path(), &[]);
    let err = DeltaConnector
        .sink(&t, true)
        .err()
        .expect("refused by default");
    let EngineError::Plan(msg) = err else {
        panic!("a plan error");
    };
    assert!(msg.contains("'sink.updating-mode' = 'changelog'"), "{msg}");

    let t = delta_table(dir.path(), &[("sink.updating-mode", "changelog")]);
    let factory = DeltaConnector.sink(&t, true)?;
    let mut s = CheckpointHarness::open(&factory, 0, 1, &MemorySnapshot::default())?;
    let base = rows(0..2);
    let mut columns = base.columns().to_vec();
    columns.push(Arc::new(row_kind_array(&[
        RowKind::Insert,
        RowKind::Delete,
    ])));
    s.batch(RecordBatch::try_new(
        with_row_kind(&base.schema()),
        columns,
    )?)?;
    s.barrier(1)?;
    s.complete(1)?;
    let mut f = fields();
    f.push(Field::new("_row_kind", DataType::Utf8, false));
    let reader = table(
        f,
        &[
            ("connector", "delta"),
            ("path", dir.path().to_str().expect("utf-8")),
        ],
    );
    let batches = drain(&DeltaConnector.source(&reader)?, 1)?.all();
    let mut kinds: Vec<(i64, String)> = Vec::new();
    for b in &batches {
        let id = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id");
        let kind = b
            .column(3)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("kind");
        for i in 0..b.num_rows() {
            kinds.push((id.value(i), kind.value(i).to_string()));
        }
    }
    kinds.sort();
    assert_eq!(kinds, vec![(0, "+I".to_string()), (1, "-D".to_string())]);
    Ok(())
}

/// Commits `ids` as one version through a sink without checkpoints.
fn append(t: &TableDescriptor, ids: std::ops::Range<i64>) -> Result<()> {
    let mut h = OperatorHarness::new(sink(t)?(&task(0, 1))?)?;
    h.batch(rows(ids))?;
    h.end()?;
    Ok(())
}

#[test]
fn bounded_reads_take_a_version_or_a_timestamp() -> Result<()> {
    let dir = TempDir::new("delta-versions");
    let t = delta_table(dir.path(), &[]);
    append(&t, 0..3)?; // version 1 (0 creates the table)
    append(&t, 3..5)?; // version 2
    assert_eq!(visible_ids(&t)?, range(0..5));
    let v1 = delta_table(dir.path(), &[("scan.version", "1")]);
    assert_eq!(visible_ids(&v1)?, range(0..3));
    let v0 = delta_table(dir.path(), &[("scan.version", "0")]);
    assert_eq!(visible_ids(&v0)?, Vec::<i64>::new());
    let v9 = delta_table(dir.path(), &[("scan.version", "9")]);
    assert!(
        visible_ids(&v9).is_err(),
        "a version that does not exist is an error"
    );
    let future = delta_table(dir.path(), &[("scan.timestamp", "2999-01-01 00:00:00")]);
    assert_eq!(
        visible_ids(&future)?,
        range(0..5),
        "a time after the last commit reads it"
    );
    let missing = delta_table(&dir.path().join("nothing-here"), &[]);
    let err = visible_ids(&missing).expect_err("no table");
    assert!(err.to_string().contains("no Delta table"), "{err}");
    Ok(())
}

#[test]
fn a_stream_picks_up_new_versions_and_resumes_from_its_position() -> Result<()> {
    let dir = TempDir::new("delta-stream");
    let t = delta_table(dir.path(), &[]);
    append(&t, 0..3)?;
    let streaming = delta_table(
        dir.path(),
        &[("mode", "streaming"), ("scan.poll-interval", "1 ms")],
    );
    let source = DeltaConnector.source(&streaming)?;
    assert!(!source.bounded);
    let metrics = Arc::new(OperatorMetrics::default());
    let info = task(0, 1);
    let mut src = (source.factory)(&info)?;
    src.open(&info, &metrics)?;
    let poll_for = |src: &mut dyn Source, n: usize| -> Result<Vec<RecordBatch>> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while got.iter().map(RecordBatch::num_rows).sum::<usize>() < n {
            assert!(std::time::Instant::now() < deadline, "stream stalled");
            let (b, _, done) = poll_batches(src, 1)?;
            assert!(!done, "a stream does not finish");
            got.extend(b);
        }
        Ok(got)
    };
    assert_eq!(sorted_ids(&poll_for(src.as_mut(), 3)?), range(0..3));
    append(&t, 3..6)?;
    append(&t, 6..8)?;
    assert_eq!(sorted_ids(&poll_for(src.as_mut(), 5)?), range(3..8));
    let position = src.snapshot_position()?;
    append(&t, 8..10)?;
    drop(src);
    // A new instance resumes after row 7 and sees the commit made since.
    let mut src = (source.factory)(&info)?;
    src.open(&info, &metrics)?;
    src.restore_position(&position)?;
    assert_eq!(sorted_ids(&poll_for(src.as_mut(), 2)?), range(8..10));
    Ok(())
}

#[test]
fn options_are_checked() {
    let dir = TempDir::new("delta-options");
    for (key, value, expect) in [
        ("sink.target-file-size", "lots", "must be a size"),
        ("sink.rollover-interval", "0 s", "longer than zero"),
        (
            "sink.updating-mode",
            "merge",
            "'reject', 'changelog' or 'upsert'",
        ),
        ("mode", "continuous", "'batch' or 'streaming'"),
        ("scan.timestamp", "yesterday", "must be a time"),
    ] {
        let t = delta_table(dir.path(), &[(key, value)]);
        let err = DeltaOptions::from_table(&t).expect_err("refused");
        assert!(err.to_string().contains(expect), "{key}: {err}");
    }
    assert_eq!(
        runnel_engine::graph::parse_byte_size("64MB"),
        Some(64 << 20)
    );
    assert_eq!(
        runnel_engine::graph::parse_byte_size("1 gib"),
        Some(1 << 30)
    );
    assert_eq!(runnel_engine::graph::parse_byte_size("4096"), Some(4096));
    let t = delta_table(dir.path(), &[("mode", "streaming")]);
    let err = DeltaConnector
        .sink(&t, false)
        .err()
        .expect("source option on a sink");
    assert!(err.to_string().contains("is a source option"), "{err}");
}

/// A table keyed by `id` (upsert mode by default), partitioned by region
/// when `partitioned`.
fn keyed(dir: &Path, partitioned: bool) -> TableDescriptor {
    let mut t = delta_table(dir, &[]);
    t.primary_key = vec![0];
    if partitioned {
        t.partition_keys = vec![1];
    }
    t
}

/// Changes of rows (id, region) with the given kinds, ts = id s.
fn changes(rows: &[(i64, &str, RowKind)]) -> RecordBatch {
    let base = RecordBatch::try_new(
        Arc::new(Schema::new(fields())),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.0 * 1000).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("valid batch");
    let mut columns = base.columns().to_vec();
    columns.push(row_kind_array(
        &rows.iter().map(|r| r.2).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(with_row_kind(&base.schema()), columns).expect("valid batch")
}

/// (id, region) of every row a reader of the table sees, sorted.
fn visible_rows(t: &TableDescriptor) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    for b in drain(&DeltaConnector.source(t)?, 1)?.all() {
        let id = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id");
        let region = b
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("region");
        for i in 0..b.num_rows() {
            out.push((id.value(i), region.value(i).to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// The actions of log entry `version`: (kind, path) for add and remove.
fn file_actions(dir: &Path, version: u64) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join(format!("_delta_log/{version:020}.json")))
        .expect("log entry");
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        for kind in ["add", "remove"] {
            if let Some(a) = v.get(kind) {
                out.push((
                    kind.to_string(),
                    a["path"].as_str().expect("path").to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn upsert_mode_keeps_the_newest_row_per_key_one_version_per_checkpoint() -> Result<()> {
    use RowKind::*;
    for partitioned in [false, true] {
        let dir = TempDir::new("delta-upsert");
        let t = keyed(dir.path(), partitioned);
        assert!(DeltaConnector.writes_upserts(&t));
        let factory = DeltaConnector.sink(&t, true)?;
        let empty = MemorySnapshot::default();
        let mut a = CheckpointHarness::open(&factory, 0, 2, &empty)?;
        let mut b = CheckpointHarness::open(&factory, 1, 2, &empty)?;
        a.batch(changes(&[
            (0, "eu", Insert),
            (1, "us", Insert),
            (2, "eu", Insert),
        ]))?;
        b.batch(changes(&[(3, "us", Insert), (4, "eu", Insert)]))?;
        // The same key twice in one interval: the newest wins.
        b.batch(changes(&[(4, "eu", UpdateBefore), (4, "us", UpdateAfter)]))?;
        a.barrier(1)?;
        b.barrier(1)?;
        a.complete(1)?;
        assert_eq!(version(dir.path())?, 0, "waits for the other subtask");
        b.complete(1)?;
        assert_eq!(version(dir.path())?, 1);
        let v1 = vec![
            (0, "eu".to_string()),
            (1, "us".into()),
            (2, "eu".into()),
            (3, "us".into()),
            (4, "us".into()),
        ];
        assert_eq!(visible_rows(&t)?, v1, "partitioned: {partitioned}");

        // Checkpoint 2: an update that moves id 1 to another region (and
        // partition), a delete, an insert, and a delete of a key that was
        // never written.
        a.batch(changes(&[
            (1, "us", UpdateBefore),
            (1, "eu", UpdateAfter),
            (2, "eu", Delete),
            (9, "zz", Delete),
        ]))?;
        // An old row alone (a filter dropped the new one): a delete.
        b.batch(changes(&[(7, "us", Insert), (3, "us", UpdateBefore)]))?;
        a.barrier(2)?;
        b.barrier(2)?;
        a.complete(2)?;
        b.complete(2)?;
        assert_eq!(version(dir.path())?, 2);
        assert_eq!(
            visible_rows(&t)?,
            vec![
                (0, "eu".to_string()),
                (1, "eu".into()),
                (4, "us".into()),
                (7, "us".into())
            ],
            "partitioned: {partitioned}"
        );
        let actions = file_actions(dir.path(), 2);
        assert!(
            actions.iter().any(|(k, _)| k == "remove"),
            "files with changed keys are replaced: {actions:?}"
        );
        let (_, app) = txns(dir.path()).pop().expect("a txn");
        assert_eq!(app, 2);

        // A checkpoint without changes commits nothing.
        a.barrier(3)?;
        b.barrier(3)?;
        a.complete(3)?;
        b.complete(3)?;
        assert_eq!(version(dir.path())?, 2);

        // Deleting every row leaves an empty table.
        a.batch(changes(&[
            (0, "eu", Delete),
            (1, "eu", Delete),
            (3, "us", Delete),
            (4, "us", Delete),
            (7, "us", Delete),
        ]))?;
        for s in [&mut a, &mut b] {
            s.end()?;
            s.barrier(Barrier::FINAL_CHECKPOINT)?;
        }
        a.complete(Barrier::FINAL_CHECKPOINT)?;
        b.complete(Barrier::FINAL_CHECKPOINT)?;
        assert_eq!(visible_rows(&t)?, Vec::<(i64, String)>::new());
    }
    Ok(())
}

#[test]
fn upsert_changes_staged_before_a_crash_are_merged_once() -> Result<()> {
    use RowKind::*;
    let dir = TempDir::new("delta-upsert-restore");
    let t = keyed(dir.path(), false);
    let factory = DeltaConnector.sink(&t, true)?;
    let mut s = CheckpointHarness::open(&factory, 0, 1, &MemorySnapshot::default())?;
    s.batch(changes(&[(1, "us", Insert), (2, "eu", Insert)]))?;
    s.barrier(1)?;
    s.complete(1)?;
    s.batch(changes(&[
        (1, "us", UpdateBefore),
        (1, "xx", UpdateAfter),
        (2, "eu", Delete),
    ]))?;
    let checkpoint_2 = s.barrier(2)?;
    // Checkpoint 2 completed, the process died before the merge.
    drop(s);
    assert_eq!(
        visible_rows(&t)?,
        vec![(1, "us".to_string()), (2, "eu".into())]
    );
    for attempt in 0..2 {
        let s = CheckpointHarness::open(&DeltaConnector.sink(&t, true)?, 0, 1, &checkpoint_2)?;
        assert_eq!(version(dir.path())?, 2, "attempt {attempt}");
        assert_eq!(
            visible_rows(&t)?,
            vec![(1, "xx".to_string())],
            "attempt {attempt}"
        );
        drop(s);
    }
    // A checkpoint of the other mode does not restore into this one.
    let t2 = delta_table(dir.path(), &[]);
    let err = CheckpointHarness::open(&DeltaConnector.sink(&t2, false)?, 0, 1, &checkpoint_2)
        .err()
        .expect("mode changed");
    assert!(err.to_string().contains("staged in upsert mode"), "{err}");
    Ok(())
}

#[test]
fn upsert_mode_without_checkpoints_merges_at_the_end_and_dedups_appends() -> Result<()> {
    let dir = TempDir::new("delta-upsert-nockpt");
    let t = keyed(dir.path(), false);
    // An append-only stream into a keyed table: one row per key, the last.
    let factory = DeltaConnector.sink(&t, false)?;
    let mut h = OperatorHarness::new(factory(&task(0, 1))?)?;
    h.batch(rows(0..4))?;
    let mut again = rows(2..6);
    let region: Arc<dyn Array> = Arc::new(StringArray::from(vec!["new"; 4]));
    let mut columns = again.columns().to_vec();
    columns[1] = region;
    again = RecordBatch::try_new(again.schema(), columns)?;
    h.batch(again)?;
    h.end()?;
    assert_eq!(
        visible_rows(&t)?,
        vec![
            (0, "eu".to_string()),
            (1, "us".into()),
            (2, "new".into()),
            (3, "new".into()),
            (4, "new".into()),
            (5, "new".into())
        ]
    );
    Ok(())
}

#[test]
fn upsert_mode_needs_a_primary_key() {
    let dir = TempDir::new("delta-upsert-nokey");
    let t = delta_table(dir.path(), &[("sink.updating-mode", "upsert")]);
    let err = DeltaConnector.sink(&t, true).err().expect("no key");
    assert!(err.to_string().contains("needs a PRIMARY KEY"), "{err}");
    assert!(!DeltaConnector.writes_upserts(&delta_table(dir.path(), &[])));
    let mut t = delta_table(dir.path(), &[("sink.updating-mode", "changelog")]);
    t.primary_key = vec![0];
    assert!(!DeltaConnector.writes_upserts(&t), "changelog mode stays");
}
