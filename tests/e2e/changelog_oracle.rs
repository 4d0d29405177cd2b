//! A proptest oracle for changelog semantics through SQL: random inserts,
//! updates and deletes of two tables, written as Debezium JSON files, are
//! joined (INNER, LEFT, RIGHT, FULL) and aggregated over a join, at
//! parallelism 1 and 4. The rows each query's changelog leaves must equal
//! a computation here over the two tables' final contents.
//!
//! Restores: the same changes, produced to one Kafka topic of the test
//! broker and read paced, go through the same queries at parallelism 4
//! into a two-phase sink; the job is cancelled after a few checkpoints (a crash),
//! a random complete checkpoint is restored, and the output published up
//! to it plus the restored run's must leave the same rows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use arrow::array::RecordBatch;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use runnel_connectors::kafka::test_broker::TestBroker;
use runnel_engine::graph::CheckpointConfig;
use runnel_engine::runtime::Job;
use runnel_engine::testing::CommittedHandle;
use runnel_sql::lower::SinkTarget;
use runnel_sql::parser::parse_sql;
use runnel_sql::session::{Outcome, Session};
use runnel_state::CheckpointStore;

use crate::sql_harness::{execute, format_rows, materialize};

/// A row: id (unique per table), join key, value.
type Row = (i64, Option<i64>, i64);

/// One change: on a side, insert a row, or update or delete the `n`-th
/// current row (modulo the table's size).
#[derive(Debug, Clone)]
enum Change {
    Insert(usize, Option<i64>, i64),
    Update(usize, usize, Option<i64>, i64),
    Delete(usize, usize),
}

fn changes() -> impl Strategy<Value = Vec<Change>> {
    let key = prop::option::weighted(0.9, 0i64..4);
    prop::collection::vec(
        prop_oneof![
            5 => (0usize..2, key.clone(), 0i64..6).prop_map(|(s, k, v)| Change::Insert(s, k, v)),
            2 => (0usize..2, 0usize..50, key, 0i64..6).prop_map(|(s, n, k, v)| Change::Update(s, n, k, v)),
            2 => (0usize..2, 0usize..50).prop_map(|(s, n)| Change::Delete(s, n)),
        ],
        1..40,
    )
}

fn json(r: &Row) -> String {
    let k = r.1.map_or("null".to_string(), |k| k.to_string());
    format!(r#"{{"id":{},"k":{k},"v":{}}}"#, r.0, r.2)
}

/// Applies `changes`; returns each table's final rows and Debezium lines.
fn apply(changes: &[Change]) -> ([Vec<Row>; 2], [Vec<String>; 2]) {
    let (tables, lines, _) = apply_merged(changes);
    (tables, lines)
}

/// A Debezium envelope of `before` and `after` rows, each with column
/// `side` when `side` is given.
fn envelope(before: Option<&Row>, after: Option<&Row>, op: &str, side: Option<usize>) -> String {
    let row = |r: Option<&Row>| match (r, side) {
        (None, _) => "null".to_string(),
        (Some(r), None) => json(r),
        (Some(r), Some(s)) => {
            let j = json(r);
            format!("{},\"side\":{s}}}", &j[..j.len() - 1])
        }
    };
    format!(
        r#"{{"before":{},"after":{},"op":"{op}"}}"#,
        row(before),
        row(after)
    )
}

/// [`apply`], and every change in order in one list, each row with its
/// table as column `side` (0 left, 1 right).
fn apply_merged(changes: &[Change]) -> ([Vec<Row>; 2], [Vec<String>; 2], Vec<String>) {
    let mut tables: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
    let mut lines: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut merged = Vec::new();
    let mut next_id = 1;
    for c in changes {
        let (s, before, after, op) = match *c {
            Change::Insert(s, k, v) => {
                let row = (next_id, k, v);
                next_id += 1;
                tables[s].push(row);
                (s, None, Some(row), "c")
            }
            Change::Update(s, n, k, v) if !tables[s].is_empty() => {
                let i = n % tables[s].len();
                let before = tables[s][i];
                let after = (before.0, k, v);
                tables[s][i] = after;
                (s, Some(before), Some(after), "u")
            }
            Change::Delete(s, n) if !tables[s].is_empty() => {
                let i = n % tables[s].len();
                let row = tables[s].remove(i);
                (s, Some(row), None, "d")
            }
            _ => continue,
        };
        lines[s].push(envelope(before.as_ref(), after.as_ref(), op, None));
        merged.push(envelope(before.as_ref(), after.as_ref(), op, Some(s)));
    }
    (tables, lines, merged)
}

/// `l.id, l.v, r.id, r.v` of the join of the final tables.
fn join(kind: &str, t: &[Vec<Row>; 2]) -> Vec<String> {
    let meets = |l: &Row, r: &Row| l.1.is_some() && l.1 == r.1;
    let mut out = Vec::new();
    for l in &t[0] {
        let mut any = false;
        for r in &t[1] {
            if meets(l, r) {
                any = true;
                out.push(format!("{}, {}, {}, {}", l.0, l.2, r.0, r.2));
            }
        }
        if !any && (kind == "LEFT" || kind == "FULL") {
            out.push(format!("{}, {}, NULL, NULL", l.0, l.2));
        }
    }
    if kind == "RIGHT" || kind == "FULL" {
        for r in &t[1] {
            if !t[0].iter().any(|l| meets(l, r)) {
                out.push(format!("NULL, NULL, {}, {}", r.0, r.2));
            }
        }
    }
    out.sort();
    out
}

/// `k, COUNT(*), SUM(l.v), MAX(r.v)` per key of the inner join.
fn aggregate(t: &[Vec<Row>; 2]) -> Vec<String> {
    let mut groups: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for l in &t[0] {
        for r in &t[1] {
            if let (Some(k), true) = (l.1, l.1 == r.1) {
                let g = groups.entry(k).or_insert((0, 0, i64::MIN));
                g.0 += 1;
                g.1 += l.2;
                g.2 = g.2.max(r.2);
            }
        }
    }
    let mut out: Vec<String> = groups
        .iter()
        .map(|(k, (n, s, m))| format!("{k}, {n}, {s}, {m}"))
        .collect();
    out.sort();
    out
}

fn dir(case: u64) -> PathBuf {
    std::env::temp_dir().join(format!(
        "runnel-changelog-oracle-{}-{case}",
        std::process::id()
    ))
}

/// Runs `query` over the two tables at `parallelism`; the rows its
/// changelog leaves.
fn run(files: &[PathBuf; 2], parallelism: usize, query: &str) -> Result<Vec<String>, String> {
    let mut session = Session::new(runnel_connectors::default_registry());
    let mut setup = format!("SET 'parallelism' = '{parallelism}';\n");
    for (name, file) in ["lt", "rt"].iter().zip(files) {
        setup.push_str(&format!(
            "CREATE TABLE {name} (id BIGINT, k BIGINT, v BIGINT) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'debezium-json');\n",
            file.display()
        ));
    }
    execute(&mut session, &setup)?;
    let mut rows = materialize(execute(&mut session, query)?)?;
    rows.sort();
    Ok(rows)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn joins_and_aggregates_over_changes_leave_the_rows_of_the_final_tables(
        changes in changes(),
        case in any::<u64>(),
    ) {
        let (tables, lines) = apply(&changes);
        let d = dir(case);
        std::fs::create_dir_all(&d).expect("temp dir");
        let files = [d.join("left.json"), d.join("right.json")];
        for (f, l) in files.iter().zip(&lines) {
            std::fs::write(f, l.join("\n") + "\n").expect("write changes");
        }
        for parallelism in [1, 4] {
            for kind in ["INNER", "LEFT", "RIGHT", "FULL"] {
                let q = format!(
                    "SELECT l.id, l.v, r.id, r.v FROM lt l {kind} JOIN rt r ON l.k = r.k"
                );
                let got = run(&files, parallelism, &q);
                prop_assert_eq!(got, Ok(join(kind, &tables)), "{} at parallelism {}", kind, parallelism);
            }
            let q = "SELECT l.k, COUNT(*), SUM(l.v), MAX(r.v) FROM lt l JOIN rt r ON l.k = r.k GROUP BY l.k";
            prop_assert_eq!(run(&files, parallelism, q), Ok(aggregate(&tables)), "aggregate at parallelism {}", parallelism);
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// The two tables of the restore oracle: one topic holds the changes of
/// both (column `side`), so that both scans end together (no checkpoint
/// is taken once a source has ended).
const LEFT: &str = "(SELECT id, k, v FROM lt WHERE side = 0)";
const RIGHT: &str = "(SELECT id, k, v FROM rt WHERE side = 1)";

/// The queries of the restore oracle, with the rows they must leave.
fn restore_queries(tables: &[Vec<Row>; 2]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = ["INNER", "LEFT", "FULL"]
        .iter()
        .map(|kind| {
            (
                format!(
                    "SELECT l.id, l.v, r.id, r.v FROM {LEFT} l {kind} JOIN {RIGHT} r ON l.k = r.k"
                ),
                join(kind, tables),
            )
        })
        .collect();
    out.push((
        format!("SELECT l.k, COUNT(*), SUM(l.v), MAX(r.v) FROM {LEFT} l JOIN {RIGHT} r ON l.k = r.k GROUP BY l.k"),
        aggregate(tables),
    ));
    out
}

/// Plans `query` over `topic` (tables `lt` and `rt`, each read by one
/// subtask) at parallelism 4, into `sink`, checkpointing into `dir`.
fn restore_job(
    bootstrap: &str,
    topic: &str,
    query: &str,
    sink: &CommittedHandle,
    dir: &std::path::Path,
) -> Result<runnel_engine::graph::JobGraph, String> {
    let mut session = Session::new(runnel_connectors::default_registry());
    let mut setup = "SET 'parallelism' = '4';\n".to_string();
    for name in ["lt", "rt"] {
        setup.push_str(&format!(
            "CREATE TABLE {name} (id BIGINT, k BIGINT, v BIGINT, side INT) WITH ('connector' = 'kafka', \
             'topic' = '{topic}', 'properties.bootstrap.servers' = '{bootstrap}', \
             'format' = 'debezium-json', 'scan.startup.mode' = 'earliest-offset', \
             'scan.bounded.mode' = 'latest-offset', 'scan.max-records-per-second' = '150', \
             'scan.parallelism' = '1');\n"
        ));
    }
    execute(&mut session, &setup)?;
    let stmts = parse_sql(query).map_err(|e| e.to_string())?;
    let stmt = stmts.first().ok_or("no statement")?;
    let target = sink.clone();
    let outcome = session
        .execute(stmt, query, &move |_plan| SinkTarget::Operator {
            name: "collect".into(),
            factory: target.factory(),
            parallelism: 2,
        })
        .map_err(|e| e.to_string())?;
    let Outcome::Job(job) = outcome else {
        return Err("the query did not make a job".into());
    };
    let mut graph = job.graph;
    graph.checkpointing = Some(CheckpointConfig {
        dir: dir.to_path_buf(),
        interval: Duration::from_secs(3600),
        retained: 1000,
        fingerprint: "changelog-restore-oracle".into(),
        storage_options: Vec::new(),
        restore_from: None,
    });
    Ok(graph)
}

/// Runs `query`, crashes it after some checkpoints, restores the one
/// `pick` chooses and returns the rows of what was published, and the id
/// of the checkpoint restored (0: none completed).
fn crash_and_restore(
    bootstrap: &str,
    topic: &str,
    query: &str,
    dir: &std::path::Path,
    pick: prop::sample::Index,
) -> Result<(Vec<String>, u64), String> {
    let _ = std::fs::remove_dir_all(dir);
    let first = CommittedHandle::new();
    let job = Job::start(restore_job(bootstrap, topic, query, &first, dir)?)
        .map_err(|e| e.to_string())?;
    for _ in 0..4 {
        if job.is_finished() {
            break;
        }
        let _ = job.checkpoint(Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    job.cancel();
    let _ = job.wait();
    let store = CheckpointStore::new(dir, 1000);
    let complete = store.complete().map_err(|e| e.to_string())?;
    let chosen = (!complete.is_empty()).then(|| complete[pick.index(complete.len())].clone());
    for c in complete
        .iter()
        .filter(|c| chosen.as_ref().is_some_and(|k| c.id > k.id))
    {
        std::fs::remove_dir_all(&c.dir).map_err(|e| e.to_string())?;
    }
    let second = CommittedHandle::new();
    Job::run(restore_job(bootstrap, topic, query, &second, dir)?).map_err(|e| e.to_string())?;
    // Published up to checkpoint k: what was staged at barriers up to k,
    // by the first run or (after the crash) by the restore.
    let k = chosen.map_or(0, |c| c.id);
    let mut staged: BTreeMap<(usize, u64), Vec<RecordBatch>> = BTreeMap::new();
    for (subtask, at, b) in first.entries() {
        if at <= k {
            staged.entry((subtask, at)).or_default().push(b);
        }
    }
    let mut restored: BTreeMap<(usize, u64), Vec<RecordBatch>> = BTreeMap::new();
    for (subtask, at, b) in second.entries() {
        restored.entry((subtask, at)).or_default().push(b);
    }
    staged.extend(restored);
    let batches: Vec<RecordBatch> = staged.into_values().flatten().collect();
    let mut rows = materialize(format_rows(&batches))?;
    rows.sort();
    Ok((rows, k))
}

/// After a crash and a restore of any checkpoint, at parallelism 4, each
/// query's changelog still leaves the rows of the final tables.
#[test]
fn joins_and_aggregates_over_changes_survive_a_restore_of_any_checkpoint() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    let mut runner = TestRunner::new(Config::with_cases(6));
    let case = std::sync::atomic::AtomicU32::new(0);
    let restores = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(
        &(changes(), any::<prop::sample::Index>()),
        |(changes, pick)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (tables, _, lines) = apply_merged(&changes);
            let topic = format!("changes-{case}");
            broker.create_topic(&topic, 1);
            for line in &lines {
                producer
                    .send(
                        BaseRecord::<str, str>::to(&topic)
                            .payload(line)
                            .partition(0),
                    )
                    .map_err(|(e, _)| e)
                    .expect("send");
            }
            producer.flush(Duration::from_secs(10)).expect("flush");
            let dir = dir(u64::from(case) + 1_000_000);
            for (query, expected) in restore_queries(&tables) {
                let got = crash_and_restore(&bootstrap, &topic, &query, &dir, pick);
                if let Ok((_, k)) = &got {
                    if *k > 0 {
                        restores.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                prop_assert_eq!(got.map(|(rows, _)| rows), Ok(expected), "{}", query);
            }
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The runs are paced so that checkpoints complete while they read.
    assert!(
        restores.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no run was restored from a checkpoint"
    );
}
