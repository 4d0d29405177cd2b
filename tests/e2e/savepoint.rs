//! Savepoints as the way to change a job: a job stopped with a savepoint
//! and the same INSERT submitted again with another parallelism and
//! `'execution.savepoint.path'` (Flink's way), in process.

use std::time::Duration;

use runnel_engine::runtime::Job;
use runnel_sql::session::{Outcome, Session};

fn temp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("runnel-sp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn csv_rows(dir: &std::path::Path) -> Vec<String> {
    let mut rows = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("readable output");
        rows.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    rows.sort();
    rows
}

/// Plans `sql` (SET, CREATE and one INSERT) in a fresh session and starts
/// the job; `text` is the INSERT's text (part of the fingerprint).
fn start_job(sql: &str, text: &str) -> runnel_engine::runtime::JobHandle {
    let stmts = runnel_sql::parser::parse_sql(sql).expect("parses");
    let mut session = Session::new(runnel_connectors::default_registry());
    let mut graph = None;
    for stmt in &stmts {
        if let Outcome::Job(job) = session
            .execute(stmt, text, &|_| unreachable!("no SELECT"))
            .expect("plans")
        {
            graph = Some(job.graph);
        }
    }
    Job::start(graph.expect("one job")).expect("starts")
}

/// Flink's way to change a job's parallelism: stop it with a savepoint,
/// then submit the same INSERT with another parallelism and
/// `'execution.savepoint.path'` naming the old job's checkpoints. The new
/// job (its own checkpoint directory) starts from the savepoint: file
/// splits, key groups of the window aggregate and the sink's staged
/// commits move from 2 subtasks to 3, and the output equals a run that was
/// never stopped. A savepoint of another query is refused.
#[test]
fn a_job_resumes_from_another_jobs_savepoint_at_another_parallelism() {
    let root = temp("savepoint");
    std::fs::create_dir_all(&root).expect("temp dir");
    let input = root.join("in.json");
    let mut text = String::new();
    for i in 0..400_000u64 {
        text.push_str(&format!(
            "{{\"t\": \"2026-01-01 00:{:02}:{:02}\", \"k\": \"k{}\", \"v\": {}}}\n",
            (i / 5000) % 60,
            (i / 100) % 60,
            i % 97,
            i % 13
        ));
    }
    std::fs::write(&input, text).expect("write input");
    let ddl = |out: &std::path::Path| {
        format!(
            "CREATE TABLE r (t TIMESTAMP(3), k STRING, v BIGINT,
               WATERMARK FOR t AS t - INTERVAL '1' MINUTE)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json',
                   'source.split-size' = '1mb');
             CREATE TABLE out (k STRING, window_start TIMESTAMP(3), n BIGINT, s BIGINT)
             WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
            input.display(),
            out.display()
        )
    };
    let insert = "INSERT INTO out SELECT k, window_start, COUNT(*), SUM(v)
        FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '5' MINUTE))
        GROUP BY k, window_start, window_end";
    let expected_dir = root.join("expected");
    start_job(&format!("{}{insert};", ddl(&expected_dir)), insert)
        .wait()
        .expect("reference run");
    let expected = csv_rows(&expected_dir);
    assert_eq!(expected.len(), 97 * 12, "reference rows");

    let out = root.join("out");
    let first = start_job(
        &format!(
            "SET 'parallelism' = '2';
             SET 'state.checkpoints.dir' = '{}';
             {}{insert};",
            root.join("ckpt-a").display(),
            ddl(&out)
        ),
        insert,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !first.is_finished(),
        "the first run is still reading when stopped"
    );
    first.stop();
    first.wait().expect("stopped with a savepoint");
    let savepoint = root.join("ckpt-a").join("job-1");
    let published = csv_rows(&out).len();
    assert!(published < expected.len(), "the first run stopped early");

    let resume = |query: &str| {
        format!(
            "SET 'parallelism' = '3';
             SET 'state.checkpoints.dir' = '{}';
             SET 'execution.savepoint.path' = '{}';
             {}{query};",
            root.join("ckpt-b").display(),
            savepoint.display(),
            ddl(&out)
        )
    };
    // Another query: its fingerprint does not match the savepoint's.
    let other = "INSERT INTO out SELECT k, window_start, COUNT(*), MAX(v)
        FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '5' MINUTE))
        GROUP BY k, window_start, window_end";
    let stmts = runnel_sql::parser::parse_sql(&resume(other)).expect("parses");
    let mut session = Session::new(runnel_connectors::default_registry());
    let mut refused = None;
    for stmt in &stmts {
        if let Ok(Outcome::Job(job)) = session.execute(stmt, other, &|_| unreachable!()) {
            refused = Some(Job::start(job.graph).err().map(|e| e.to_string()));
        }
    }
    let refused = refused
        .flatten()
        .expect("another query's job does not start");
    assert!(refused.contains("different query"), "{refused}");

    start_job(&resume(insert), insert)
        .wait()
        .expect("the resumed run");
    let got = csv_rows(&out);
    assert_eq!(
        got.len(),
        expected.len(),
        "rows (first run published {published})"
    );
    assert!(got == expected, "the output equals an uninterrupted run's");
    let _ = std::fs::remove_dir_all(&root);
}
