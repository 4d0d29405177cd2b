//! A sqllogictest-style harness for streaming SQL: `tests/sql/*.slt`.
//!
//! Records, separated by blank lines:
//!
//! ```text
//! statement ok                 -- run a statement; INSERT jobs run to the end
//! CREATE TABLE ...
//!
//! statement error <text>       -- the statement (or its job) fails with an
//! SELECT ...                      error whose message contains <text>
//!
//! data <id>                    -- rows for tables declared with
//! 2026-01-01 00:00:01, a, 1.5     'connector' = 'values', 'data-id' = '<id>':
//! WATERMARK 2026-01-01 00:01:00   comma-separated values (NULL for null);
//! 2026-01-01 00:00:02, b, NULL    WATERMARK lines advance event time
//!
//! query                        -- run a SELECT to the end; compare its rows
//! SELECT ...                      (sorted, comma-separated, NULL for null;
//! ----                            updating results start with +I/-U/+U/-D)
//! a, 1
//!
//! query materialized           -- the same, comparing the rows an updating
//! SELECT ...                      result leaves once its changelog is
//! ----                            applied (where the order of two inputs
//!                                 decides the changes but not the result)
//! a, 1
//!
//! sink <id>                    -- rows an INSERT wrote into a 'values' sink
//! ----
//! ...
//! ```
//!
//! Consecutive data rows form one batch; each batch and each WATERMARK line
//! is one step of the source, so a file controls exactly which rows arrive
//! before which watermark. With `RUNNEL_SLT_COMPLETE=1` the harness writes
//! the actual results into the expected sections (review the diff).
//!
//! Processing time: a file whose data blocks have `CLOCK <timestamp>`
//! lines runs on a manual clock (state TTL and lookup refresh read it).
//! Every values source of a job stops at its next CLOCK line; once all
//! have, the harness takes a checkpoint (its barrier follows every row
//! sent so far through every operator, so all of them are processed), sets
//! the clock to the line's time and lets the sources go on. So each row is
//! processed at the time of the CLOCK line above it, whatever order the
//! runtime interleaves the sources in; every data block a job reads needs
//! the same number of CLOCK lines. Before the first, the clock is at 0.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use runnel_engine::connector::{Connector, SourceTable, TableDescriptor};
use runnel_engine::error::{EngineError, Result as EngineResult};
use runnel_engine::operator::{OperatorFactory, OperatorMetrics, TaskInfo};
use runnel_engine::runtime::{Job, JobStatus};
use runnel_engine::source::{Source, SourcePoll, SplitId};
use runnel_engine::testing::MemorySinkHandle;
use runnel_engine::types::{row_kinds, ROW_KIND_COLUMN};
use runnel_sql::lower::SinkTarget;
use runnel_sql::parser::parse_sql;
use runnel_sql::session::{Outcome, Session};

/// One step of a `data` block.
#[derive(Debug, Clone)]
enum DataStep {
    Rows(Vec<Vec<Option<String>>>),
    Watermark(String),
    /// Processing time moves to this timestamp (see the module docs).
    Clock(String),
}

/// Data blocks and sink outputs of the file being run, by id.
#[derive(Default)]
struct Store {
    data: HashMap<String, Vec<DataStep>>,
    sinks: HashMap<String, MemorySinkHandle>,
    /// The manual clock of a file with CLOCK lines.
    clock: Option<Arc<ClockSync>>,
}

/// The manual clock of a file and the values sources that wait at CLOCK
/// lines for it to move.
struct ClockSync {
    clock: runnel_engine::time::Clock,
    /// Source subtasks stopped at a CLOCK line.
    parked: std::sync::atomic::AtomicUsize,
    /// CLOCK lines passed (by every source).
    phase: std::sync::atomic::AtomicUsize,
    /// The time of the CLOCK line the sources stopped at.
    next: std::sync::atomic::AtomicI64,
}

thread_local! {
    /// The clock of the file this thread runs (for its jobs).
    static CLOCK_SYNC: std::cell::RefCell<Option<Arc<ClockSync>>> =
        const { std::cell::RefCell::new(None) };
}

/// Milliseconds since the epoch of a timestamp written in a data block.
fn timestamp_millis(text: &str) -> EngineResult<i64> {
    let ts = cast_text(
        &[Some(text.to_string())],
        &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
    )?;
    Ok(runnel_engine::types::event_time_millis(&ts)?.value(0))
}

fn store() -> &'static Mutex<HashMap<String, Store>> {
    static STORE: OnceLock<Mutex<HashMap<String, Store>>> = OnceLock::new();
    STORE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The `values` connector of the harness: reads `data` blocks, writes to
/// memory. `'data-id'` names the block; the store is per test file.
struct ValuesConnector {
    file: String,
}

impl Connector for ValuesConnector {
    fn name(&self) -> &'static str {
        "values"
    }

    fn options(&self) -> &'static [&'static str] {
        &["data-id"]
    }

    fn source(&self, table: &TableDescriptor) -> EngineResult<SourceTable> {
        let id = table.required("data-id")?.to_string();
        let steps = store()
            .lock()
            .map_err(|_| EngineError::Internal("store".into()))?
            .get(&self.file)
            .and_then(|s| s.data.get(&id).cloned())
            .ok_or_else(|| EngineError::Plan(format!("no data block '{id}'")))?;
        let sync = store()
            .lock()
            .map_err(|_| EngineError::Internal("store".into()))?
            .get(&self.file)
            .and_then(|s| s.clock.clone());
        let schema = Arc::clone(&table.schema);
        let factory = Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(ValuesSource {
                steps: steps.clone().into_iter(),
                schema: Arc::clone(&schema),
                sync: sync.clone(),
                clocks_passed: 0,
                waiting: false,
                taken: 0,
            }) as Box<dyn Source>)
        });
        Ok(SourceTable {
            factory,
            bounded: true,
            parallelism: Some(1),
            in_memory: false,
        })
    }

    fn sink(&self, table: &TableDescriptor, _updating: bool) -> EngineResult<OperatorFactory> {
        let id = table.required("data-id")?.to_string();
        let handle = MemorySinkHandle::new();
        store()
            .lock()
            .map_err(|_| EngineError::Internal("store".into()))?
            .entry(self.file.clone())
            .or_default()
            .sinks
            .insert(id, handle.clone());
        Ok(handle.factory())
    }
}

struct ValuesSource {
    steps: std::vec::IntoIter<DataStep>,
    schema: SchemaRef,
    sync: Option<Arc<ClockSync>>,
    /// CLOCK lines this source has reached.
    clocks_passed: usize,
    /// Stopped at a CLOCK line until the clock has moved.
    waiting: bool,
    /// Steps taken (the checkpoint position; the harness takes checkpoints
    /// only to move the clock and never restores one).
    taken: u64,
}

impl Source for ValuesSource {
    fn snapshot_position(&mut self) -> EngineResult<Vec<u8>> {
        Ok(self.taken.to_be_bytes().to_vec())
    }

    fn open(
        &mut self,
        _task: &TaskInfo,
        _metrics: &Arc<OperatorMetrics>,
    ) -> EngineResult<Vec<SplitId>> {
        Ok(vec![0])
    }

    fn poll(&mut self) -> EngineResult<SourcePoll> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.waiting {
            let moved = self
                .sync
                .as_ref()
                .is_some_and(|s| s.phase.load(SeqCst) >= self.clocks_passed);
            if !moved {
                return Ok(SourcePoll::Pending);
            }
            self.waiting = false;
        }
        let step = self.steps.next();
        self.taken += 1;
        match step {
            None => Ok(SourcePoll::Finished),
            Some(DataStep::Clock(t)) => {
                let sync = self.sync.as_ref().ok_or_else(|| {
                    EngineError::Internal("a CLOCK line without the file's clock".into())
                })?;
                sync.next.store(timestamp_millis(&t)?, SeqCst);
                self.clocks_passed += 1;
                self.waiting = true;
                sync.parked.fetch_add(1, SeqCst);
                Ok(SourcePoll::Pending)
            }
            Some(DataStep::Watermark(t)) => {
                let ts = cast_text(
                    &[Some(t.clone())],
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                )?;
                let v = runnel_engine::types::event_time_millis(&ts)?;
                Ok(SourcePoll::Watermark(v.value(0)))
            }
            Some(DataStep::Rows(rows)) => {
                let mut cols = Vec::new();
                for (i, f) in self.schema.fields().iter().enumerate() {
                    let texts: Vec<Option<String>> =
                        rows.iter().map(|r| r.get(i).cloned().flatten()).collect();
                    cols.push(cast_text(&texts, f.data_type())?);
                }
                Ok(SourcePoll::Batch {
                    split: 0,
                    batch: RecordBatch::try_new(Arc::clone(&self.schema), cols)?,
                })
            }
        }
    }
}

fn cast_text(texts: &[Option<String>], to: &DataType) -> EngineResult<ArrayRef> {
    let strings = StringArray::from(texts.to_vec());
    let opts = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    Ok(arrow::compute::cast_with_options(&strings, to, &opts)?)
}

/// One record of a file, with the line it starts on.
#[derive(Debug, Clone)]
enum Record {
    Statement {
        sql: String,
        error: Option<String>,
    },
    Query {
        sql: String,
        expected: Vec<String>,
        error: Option<String>,
        /// `query materialized`: compare the rows the changelog leaves.
        materialized: bool,
    },
    Data {
        id: String,
        steps: Vec<DataStep>,
    },
    Sink {
        id: String,
        expected: Vec<String>,
    },
}

fn parse_file(text: &str) -> Vec<(usize, Record)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.trim().is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let header = line.trim().to_string();
        i += 1;
        let mut body = Vec::new();
        let mut expected = Vec::new();
        let mut in_expected = false;
        while i < lines.len() && !lines[i].trim().is_empty() {
            if lines[i].trim() == "----" {
                in_expected = true;
            } else if in_expected {
                expected.push(lines[i].trim().to_string());
            } else {
                body.push(lines[i]);
            }
            i += 1;
        }
        let sql = body.join("\n");
        let rec = if let Some(rest) = header.strip_prefix("statement error") {
            Record::Statement {
                sql,
                error: Some(rest.trim().to_string()),
            }
        } else if header == "statement ok" {
            Record::Statement { sql, error: None }
        } else if let Some(rest) = header.strip_prefix("query error") {
            Record::Query {
                sql,
                expected,
                error: Some(rest.trim().to_string()),
                materialized: false,
            }
        } else if header == "query" || header == "query materialized" {
            Record::Query {
                sql,
                expected,
                error: None,
                materialized: header.ends_with("materialized"),
            }
        } else if let Some(id) = header.strip_prefix("data ") {
            let mut steps = Vec::new();
            for l in &body {
                if let Some(t) = l.trim().strip_prefix("WATERMARK ") {
                    steps.push(DataStep::Watermark(t.trim().to_string()));
                    continue;
                }
                if let Some(t) = l.trim().strip_prefix("CLOCK ") {
                    steps.push(DataStep::Clock(t.trim().to_string()));
                    continue;
                }
                let row: Vec<Option<String>> = l
                    .split(',')
                    .map(|v| {
                        let v = v.trim();
                        (!v.eq_ignore_ascii_case("NULL")).then(|| v.to_string())
                    })
                    .collect();
                match steps.last_mut() {
                    Some(DataStep::Rows(rows)) => rows.push(row),
                    _ => steps.push(DataStep::Rows(vec![row])),
                }
            }
            Record::Data {
                id: id.trim().to_string(),
                steps,
            }
        } else if let Some(id) = header.strip_prefix("sink ") {
            Record::Sink {
                id: id.trim().to_string(),
                expected,
            }
        } else {
            panic!("line {start}: unknown record '{header}'");
        };
        out.push((start, rec));
    }
    out
}

/// The rows a changelog (sorted lines that start with `+I, `, `-U, `,
/// `+U, ` or `-D, `) leaves, sorted; an error when it retracts a row it
/// never added.
pub(crate) fn materialize(changes: Vec<String>) -> Result<Vec<String>, String> {
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for c in &changes {
        let (delta, row) = match c.split_once(", ").map(|(k, r)| (k, r.to_string())) {
            Some(("+I" | "+U", row)) => (1, row),
            Some(("-U" | "-D", row)) => (-1, row),
            _ => match c.as_str() {
                "+I" | "+U" => (1, String::new()),
                "-U" | "-D" => (-1, String::new()),
                _ => return Err(format!("'{c}' is not a changelog row")),
            },
        };
        *counts.entry(row).or_insert(0) += delta;
    }
    let mut out = Vec::new();
    for (row, n) in counts {
        if n < 0 {
            return Err(format!(
                "the changelog retracts '{row}' {} more times than it adds it",
                -n
            ));
        }
        out.extend(std::iter::repeat_n(row, n as usize));
    }
    Ok(out)
}

/// Rows as sorted text lines.
pub(crate) fn format_rows(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let updating = b
            .schema()
            .fields()
            .last()
            .is_some_and(|f| f.name() == ROW_KIND_COLUMN);
        let kinds = if updating { row_kinds(b).ok() } else { None };
        let n = if updating {
            b.num_columns() - 1
        } else {
            b.num_columns()
        };
        let fmts: Vec<ArrayFormatter<'_>> = b.columns()[..n]
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formattable"))
            .collect();
        for i in 0..b.num_rows() {
            let mut cells: Vec<String> = fmts.iter().map(|f| f.value(i).to_string()).collect();
            if let Some(k) = &kinds {
                cells.insert(0, k[i].short_string().to_string());
            }
            out.push(cells.join(", ").trim_end().to_string());
        }
    }
    out.sort();
    out
}

fn run_job(job: runnel_sql::session::PreparedJob) -> Result<(), String> {
    let set = |s: JobStatus| {
        if let Ok(mut g) = job.status.lock() {
            *g = s;
        }
    };
    let sync = CLOCK_SYNC.with(|c| c.borrow().clone());
    let mut graph = job.graph;
    // With CLOCK lines: checkpoints (into a directory of their own) make
    // sure every row before a CLOCK line is processed before time moves.
    let checkpoints = sync.as_ref().map(|_| {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("runnel-slt-clock-{}-{n}", std::process::id()))
    });
    if let Some(dir) = &checkpoints {
        graph.checkpointing = Some(runnel_engine::graph::CheckpointConfig {
            dir: dir.clone(),
            interval: Duration::from_secs(3600),
            retained: 2,
            fingerprint: "slt-clock".into(),
            storage_options: Vec::new(),
            restore_from: None,
        });
    }
    let source_subtasks: usize = graph
        .nodes()
        .iter()
        .filter(|n| matches!(n.kind, runnel_engine::graph::NodeKind::Source { .. }))
        .map(|n| n.parallelism)
        .sum();
    // Each job starts with the clock at 0, before its first CLOCK line.
    if let Some(s) = &sync {
        s.parked.store(0, std::sync::atomic::Ordering::SeqCst);
        s.phase.store(0, std::sync::atomic::Ordering::SeqCst);
        s.clock.set_millis(0);
    }
    let handle = Job::start(graph).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle.is_finished() {
        if Instant::now() > deadline {
            handle.cancel();
            return Err(format!("{} did not finish within 60 s", job.id));
        }
        if let Some(s) = &sync {
            use std::sync::atomic::Ordering::SeqCst;
            if s.parked.load(SeqCst) == source_subtasks {
                if let Err(e) = handle.checkpoint(Duration::from_secs(10)) {
                    handle.cancel();
                    let job_error = handle.wait().err().map(|e| format!("; the job: {e}"));
                    return Err(format!(
                        "cannot move the clock: {e}{} (does every data block the job reads have the same CLOCK lines?)",
                        job_error.unwrap_or_default()
                    ));
                }
                s.clock.set_millis(s.next.load(SeqCst));
                s.parked.store(0, SeqCst);
                s.phase.fetch_add(1, SeqCst);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if let Some(dir) = &checkpoints {
        let _ = std::fs::remove_dir_all(dir);
    }
    match handle.wait() {
        Ok(()) => {
            set(JobStatus::Finished);
            Ok(())
        }
        Err(e) => {
            let message = e.to_string();
            set(JobStatus::Failed(Arc::new(e)));
            Err(message)
        }
    }
}

/// Runs one statement; for a query, returns its rows.
pub(crate) fn execute(session: &mut Session, sql: &str) -> Result<Vec<String>, String> {
    let stmts = parse_sql(sql).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for stmt in &stmts {
        let sink = MemorySinkHandle::new();
        let target = sink.clone();
        let outcome = session
            .execute(stmt, sql, &move |_plan| SinkTarget::Operator {
                name: "collect".into(),
                factory: target.factory(),
                parallelism: 1,
            })
            .map_err(|e| e.to_string())?;
        match outcome {
            Outcome::Job(job) => {
                run_job(*job)?;
                rows = format_rows(&sink.batches());
            }
            Outcome::Rows(batch) => rows = format_rows(&[batch]),
            Outcome::Explain(text) => {
                rows = text
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            }
            Outcome::Message(_) | Outcome::StopJob { .. } => {}
        }
    }
    Ok(rows)
}

/// Runs one .slt file; returns failures (or rewrites it in complete mode).
fn run_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("readable .slt file");
    let file = path.display().to_string();
    let complete = std::env::var("RUNNEL_SLT_COMPLETE").is_ok_and(|v| v == "1");
    if let Ok(mut s) = store().lock() {
        s.insert(file.clone(), Store::default());
    }
    let mut registry = runnel_connectors::default_registry();
    registry.register(Arc::new(ValuesConnector { file: file.clone() }));
    let mut session = Session::new(registry);
    let records = parse_file(&text);
    let uses_clock = records.iter().any(|(_, r)| {
        matches!(r, Record::Data { steps, .. } if steps.iter().any(|s| matches!(s, DataStep::Clock(_))))
    });
    let sync = uses_clock.then(|| {
        let clock = runnel_engine::time::Clock::manual(0);
        session.set_clock(clock.clone());
        Arc::new(ClockSync {
            clock,
            parked: Default::default(),
            phase: Default::default(),
            next: Default::default(),
        })
    });
    if let Ok(mut s) = store().lock() {
        s.entry(file.clone()).or_default().clock = sync.clone();
    }
    CLOCK_SYNC.with(|c| *c.borrow_mut() = sync);
    let mut failures = Vec::new();
    let mut completed: Vec<(usize, Record)> = Vec::new();
    for (line, rec) in records {
        let fail = |msg: String| format!("{file}:{line}: {msg}");
        match &rec {
            Record::Data { id, steps } => {
                if let Ok(mut s) = store().lock() {
                    s.entry(file.clone())
                        .or_default()
                        .data
                        .insert(id.clone(), steps.clone());
                }
            }
            Record::Statement { sql, error } => match (execute(&mut session, sql), error) {
                (Ok(_), None) => {}
                (Ok(_), Some(e)) => failures.push(fail(format!(
                    "expected an error containing '{e}', but it succeeded"
                ))),
                (Err(got), None) => failures.push(fail(format!("unexpected error: {got}"))),
                (Err(got), Some(e)) if !got.contains(e.as_str()) => failures.push(fail(format!(
                    "expected an error containing '{e}', got: {got}"
                ))),
                (Err(_), Some(_)) => {}
            },
            Record::Query {
                sql,
                expected,
                error,
                materialized,
            } => match (
                execute(&mut session, sql).and_then(|rows| {
                    if *materialized {
                        materialize(rows)
                    } else {
                        Ok(rows)
                    }
                }),
                error,
            ) {
                (Ok(rows), None) => {
                    if complete {
                        completed.push((
                            line,
                            Record::Query {
                                sql: sql.clone(),
                                expected: rows,
                                error: None,
                                materialized: *materialized,
                            },
                        ));
                        continue;
                    }
                    if &rows != expected {
                        failures.push(fail(format!(
                            "query results differ\nexpected:\n  {}\ngot:\n  {}",
                            expected.join("\n  "),
                            rows.join("\n  ")
                        )));
                    }
                }
                (Ok(_), Some(e)) => failures.push(fail(format!(
                    "expected an error containing '{e}', but it succeeded"
                ))),
                (Err(got), None) => failures.push(fail(format!("unexpected error: {got}"))),
                (Err(got), Some(e)) if !got.contains(e.as_str()) => failures.push(fail(format!(
                    "expected an error containing '{e}', got: {got}"
                ))),
                (Err(_), Some(_)) => {}
            },
            Record::Sink { id, expected } => {
                let rows = store().lock().ok().and_then(|s| {
                    s.get(&file)
                        .and_then(|f| f.sinks.get(id))
                        .map(|h| format_rows(&h.batches()))
                });
                match rows {
                    None => failures.push(fail(format!("no sink '{id}' was written"))),
                    Some(rows) if complete => {
                        completed.push((
                            line,
                            Record::Sink {
                                id: id.clone(),
                                expected: rows,
                            },
                        ));
                        continue;
                    }
                    Some(rows) if &rows != expected => failures.push(fail(format!(
                        "sink rows differ\nexpected:\n  {}\ngot:\n  {}",
                        expected.join("\n  "),
                        rows.join("\n  ")
                    ))),
                    Some(_) => {}
                }
            }
        }
        completed.push((line, rec));
    }
    if complete {
        rewrite(path, &text, &completed);
    }
    failures
}

/// Replaces the expected sections of query and sink records.
fn rewrite(path: &Path, text: &str, records: &[(usize, Record)]) {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    for (start, rec) in records {
        let start = start - 1;
        while i < start {
            out.push(lines[i].to_string());
            i += 1;
        }
        // Copy the record up to its "----" (or its end), then the new rows.
        let mut j = start;
        while j < lines.len() && !lines[j].trim().is_empty() && lines[j].trim() != "----" {
            out.push(lines[j].to_string());
            j += 1;
        }
        let rows = match rec {
            Record::Query {
                expected,
                error: None,
                ..
            }
            | Record::Sink { expected, .. } => Some(expected),
            _ => None,
        };
        if let Some(rows) = rows {
            out.push("----".into());
            out.extend(rows.iter().cloned());
        } else {
            while j < lines.len() && !lines[j].trim().is_empty() {
                out.push(lines[j].to_string());
                j += 1;
            }
        }
        while j < lines.len() && !lines[j].trim().is_empty() {
            j += 1;
        }
        i = j;
    }
    while i < lines.len() {
        out.push(lines[i].to_string());
        i += 1;
    }
    std::fs::write(path, out.join("\n") + "\n").expect("rewrite .slt file");
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sql exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    // RUNNEL_SLT_FILE=name runs only the files whose name contains it.
    if let Ok(only) = std::env::var("RUNNEL_SLT_FILE") {
        files.retain(|p| p.to_string_lossy().contains(&only));
    }
    files.sort();
    files
}

#[test]
fn sql_logic_tests() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for f in &files {
        failures.extend(run_file(f));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
