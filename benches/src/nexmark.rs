//! The Nexmark harness: runs the query files of `benches/nexmark/` on the
//! `nexmark` generator (or on events written to a file), one after the
//! other in this process, and measures each run.
//!
//! What is measured, per query:
//! - wall-clock seconds from the job's start to its end (planning excluded);
//! - CPU seconds of this process over the same span (`/proc/self/stat`),
//!   so "events per second per core" is events / CPU seconds, the way
//!   Flink's nexmark project divides throughput by the cores it used;
//! - processing latency from latency markers
//!   ([`runnel_engine::runtime::JobHandle::latency`]);
//! - peak resident memory (`VmHWM`, reset before each query through
//!   `/proc/self/clear_refs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::json::writer::{JsonArray, WriterBuilder};
use runnel_engine::connector::TableDescriptor;
use runnel_engine::graph::NodeKind;
use runnel_engine::runtime::{ExchangeStats, Job, LatencySummary};
use runnel_engine::testing::MemorySinkHandle;
use runnel_engine::types::{is_updating, row_kinds, RowKind};
use runnel_sql::lower::SinkTarget;
use runnel_sql::parser::parse_sql;
use runnel_sql::plan::Plan;
use runnel_sql::session::{Outcome, SelectSink, Session};

/// The event stream's declaration, shared by every query.
pub const SOURCE_SQL: &str = include_str!("../nexmark/_source.sql");

/// The generator's options in [`SOURCE_SQL`], replaced to read a file.
const GENERATOR_OPTIONS: &str = "'connector' = 'nexmark', 'number-of-events' = '${EVENTS}'";

/// The Nexmark queries: name and file. A file whose first line starts with
/// `-- not yet:` holds the query as Flink runs it, and the reason Runnel
/// cannot run it yet.
pub const QUERIES: &[(&str, &str)] = &[
    ("q0", include_str!("../nexmark/q0.sql")),
    ("q1", include_str!("../nexmark/q1.sql")),
    ("q2", include_str!("../nexmark/q2.sql")),
    ("q3", include_str!("../nexmark/q3.sql")),
    ("q4", include_str!("../nexmark/q4.sql")),
    ("q5", include_str!("../nexmark/q5.sql")),
    ("q6", include_str!("../nexmark/q6.sql")),
    ("q7", include_str!("../nexmark/q7.sql")),
    ("q8", include_str!("../nexmark/q8.sql")),
    ("q9", include_str!("../nexmark/q9.sql")),
    ("q10", include_str!("../nexmark/q10.sql")),
    ("q11", include_str!("../nexmark/q11.sql")),
    ("q12", include_str!("../nexmark/q12.sql")),
    ("q13", include_str!("../nexmark/q13.sql")),
    ("q14", include_str!("../nexmark/q14.sql")),
    ("q15", include_str!("../nexmark/q15.sql")),
    ("q16", include_str!("../nexmark/q16.sql")),
    ("q17", include_str!("../nexmark/q17.sql")),
    ("q18", include_str!("../nexmark/q18.sql")),
    ("q19", include_str!("../nexmark/q19.sql")),
    ("q20", include_str!("../nexmark/q20.sql")),
    ("q21", include_str!("../nexmark/q21.sql")),
    ("q22", include_str!("../nexmark/q22.sql")),
];

/// Where the events come from.
#[derive(Debug, Clone)]
pub enum Events {
    /// The `nexmark` generator in the job, bounded by this many events.
    Generator(u64),
    /// JSON lines written by [`write_events`].
    File(PathBuf),
}

/// How to run the queries.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The events.
    pub events: Events,
    /// `'parallelism'`.
    pub parallelism: usize,
    /// Latency marker interval.
    pub latency_interval: Duration,
    /// Collect the query's output instead of discarding it, and write its
    /// final rows (an updating result with its changelog applied) as JSON
    /// lines to `<dir>/result.json`, to compare with another engine's.
    pub output_dir: Option<PathBuf>,
    /// More session options (`SET key = value`), e.g. to compare settings.
    pub options: Vec<(String, String)>,
}

/// What one query run measured.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The query's name.
    pub query: String,
    /// Events of the stream: rows read by the sources, divided by the
    /// number of sources when the query reads the events more than once.
    pub events: u64,
    /// Rows the sinks received.
    pub rows_out: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CPU seconds of the process (all threads) during the run, when known.
    pub cpu_seconds: Option<f64>,
    /// Processing latency, when a marker reached a sink.
    pub latency: Option<LatencySummary>,
    /// Peak resident set size of the process during the run, when known.
    pub peak_rss_bytes: Option<u64>,
    /// What crossed between subtasks: batches, their rows, and control
    /// messages (watermarks, barriers, markers, ends).
    pub exchange: Option<ExchangeStats>,
}

impl QueryResult {
    /// Events per second, wall clock.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    /// Events per CPU second.
    pub fn events_per_core_second(&self) -> Option<f64> {
        self.cpu_seconds
            .filter(|c| *c > 0.0)
            .map(|c| self.events as f64 / c)
    }

    /// Reads back what [`QueryResult::to_json`] wrote.
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        let ms = |key: &str| {
            v.get(key)
                .and_then(serde_json::Value::as_f64)
                .map(|x| Duration::from_secs_f64(x / 1e3))
        };
        let latency = match (v["latency_samples"].as_u64(), ms("latency_p50_ms")) {
            (Some(samples), Some(p50)) => Some(LatencySummary {
                samples,
                p50,
                p99: ms("latency_p99_ms")?,
                max: ms("latency_max_ms")?,
            }),
            _ => None,
        };
        Some(Self {
            query: v["query"].as_str()?.to_string(),
            events: v["events"].as_u64()?,
            rows_out: v["rows_out"].as_u64()?,
            seconds: v["seconds"].as_f64()?,
            cpu_seconds: v["cpu_seconds"].as_f64(),
            latency,
            peak_rss_bytes: v["peak_rss_bytes"].as_u64(),
            exchange: match (
                v["exchange_batches"].as_u64(),
                v["exchange_rows"].as_u64(),
                v["exchange_controls"].as_u64(),
            ) {
                (Some(batches), Some(rows), Some(controls)) => Some(ExchangeStats {
                    batches,
                    rows,
                    controls,
                }),
                _ => None,
            },
        })
    }

    /// The result as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        serde_json::json!({
            "query": self.query,
            "events": self.events,
            "rows_out": self.rows_out,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "events_per_second": self.events_per_second(),
            "events_per_second_per_core": self.events_per_core_second(),
            "latency_samples": self.latency.map(|l| l.samples),
            "latency_p50_ms": self.latency.map(|l| ms(l.p50)),
            "latency_p99_ms": self.latency.map(|l| ms(l.p99)),
            "latency_max_ms": self.latency.map(|l| ms(l.max)),
            "peak_rss_bytes": self.peak_rss_bytes,
            "exchange_batches": self.exchange.map(|e| e.batches),
            "exchange_rows": self.exchange.map(|e| e.rows),
            "exchange_controls": self.exchange.map(|e| e.controls),
        })
    }
}

/// Queries over the same events that are not part of Nexmark, for the
/// harness's other benchmarks; `--query all` does not include them.
pub const EXTRA_QUERIES: &[(&str, &str)] =
    &[("groupby-keys", include_str!("../nexmark/groupby_keys.sql"))];

/// The file of query `name`.
pub fn query_file(name: &str) -> Option<&'static str> {
    QUERIES
        .iter()
        .chain(EXTRA_QUERIES)
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// The reason a query file gives for not running yet.
pub fn not_yet(file: &str) -> Option<&str> {
    file.lines()
        .next()
        .and_then(|l| l.strip_prefix("-- not yet:"))
        .map(str::trim)
}

/// The whole script of `query` under `config`: the event stream, then the
/// query file.
pub fn script(query_file: &str, config: &RunConfig) -> Result<String, String> {
    if !SOURCE_SQL.contains(GENERATOR_OPTIONS) {
        return Err(
            "benches/nexmark/_source.sql no longer has the generator options the harness replaces"
                .into(),
        );
    }
    let source = match &config.events {
        Events::Generator(n) => SOURCE_SQL.replace("${EVENTS}", &n.to_string()),
        Events::File(path) => SOURCE_SQL.replace(
            GENERATOR_OPTIONS,
            &format!(
                "'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'",
                path.display().to_string().replace('\'', "''")
            ),
        ),
    };
    let mut query = match &config.output_dir {
        None => query_file.to_string(),
        Some(_) => bare_select(query_file)?,
    };
    if query.contains(SIDE_INPUT) {
        let path = side_input_file()?;
        query = query.replace(SIDE_INPUT, &path.display().to_string().replace('\'', "''"));
    }
    Ok(format!("{source}\n{query}"))
}

/// Where q10's files go in its query file (a fresh temporary directory
/// each run, removed after it).
pub const SINK_DIR: &str = "${SINK_DIR}";

/// Where q13's side input goes in its query file.
pub const SIDE_INPUT: &str = "${SIDE_INPUT}";

/// Keys in q13's side input: 0 to 9999, as in Flink's nexmark, which
/// joins `MOD(auction, 10000)`.
pub const SIDE_INPUT_KEYS: u64 = 10_000;

/// The side input of q13, a CSV file of `key,value` lines (the value is
/// the key's text), written once into the temporary directory.
pub fn side_input_file() -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join("runnel-nexmark-side-input.csv");
    let text: String = (0..SIDE_INPUT_KEYS).map(|k| format!("{k},{k}\n")).collect();
    let current = std::fs::read_to_string(&path).ok();
    if current.as_deref() != Some(text.as_str()) {
        // Written aside and renamed, so a concurrent reader never sees half.
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, &text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path)
}

/// The query file with its `INSERT INTO <sink>` turned into a bare SELECT.
fn bare_select(query_file: &str) -> Result<String, String> {
    let at = query_file
        .find("INSERT INTO ")
        .ok_or("the query file has no INSERT INTO")?;
    let rest = &query_file[at + "INSERT INTO ".len()..];
    let name_end = rest
        .find(char::is_whitespace)
        .ok_or("the query file's INSERT INTO names no table")?;
    Ok(format!("{}{}", &query_file[..at], &rest[name_end..]))
}

/// The final rows of a collected result, each a JSON array of its values
/// in column order: an updating result's changelog is applied, and an
/// append-only result is every row. Lines are sorted.
pub fn final_rows(batches: &[RecordBatch]) -> Result<Vec<String>, String> {
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for batch in batches {
        let (data, kinds) = if is_updating(batch.schema_ref()) {
            let kinds = row_kinds(batch).map_err(|e| e.to_string())?;
            let mut data = batch.clone();
            data.remove_column(data.num_columns() - 1);
            (data, Some(kinds))
        } else {
            (batch.clone(), None)
        };
        // Positional names: a result may have two columns of one name
        // (q20's two date_time columns), which JSON objects cannot hold.
        let fields: Vec<arrow::datatypes::Field> = data
            .schema_ref()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| f.as_ref().clone().with_name(format!("c{i}")))
            .collect();
        let data = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(fields)),
            data.columns().to_vec(),
        )
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        {
            let mut w = WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, JsonArray>(&mut buf);
            w.write(&data).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
        }
        let rows: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&buf).map_err(|e| e.to_string())?;
        let names: Vec<&String> = data
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name())
            .collect();
        for (i, mut row) in rows.into_iter().enumerate() {
            let row: Vec<serde_json::Value> = names
                .iter()
                .map(|n| row.remove(*n).unwrap_or(serde_json::Value::Null))
                .collect();
            let row = serde_json::Value::Array(row);
            let delta = match kinds.as_ref().map(|k| k[i]) {
                None | Some(RowKind::Insert) | Some(RowKind::UpdateAfter) => 1,
                Some(RowKind::UpdateBefore) | Some(RowKind::Delete) => -1,
            };
            *counts.entry(row.to_string()).or_default() += delta;
        }
    }
    let mut out = Vec::new();
    for (line, n) in counts {
        if n < 0 {
            return Err(format!(
                "the changelog retracts a row it never added: {line}"
            ));
        }
        out.extend(std::iter::repeat_n(line, n as usize));
    }
    Ok(out)
}

/// Where a bare SELECT goes when its output is not collected: nowhere.
fn blackhole(plan: &Plan) -> SinkTarget {
    let fields: Vec<_> = plan
        .scope
        .schema()
        .fields()
        .iter()
        .filter(|f| f.name() != runnel_engine::types::ROW_KIND_COLUMN)
        .map(|f| f.as_ref().clone())
        .collect();
    SinkTarget::Table(TableDescriptor {
        name: "select".into(),
        schema: Arc::new(arrow::datatypes::Schema::new(fields)),
        options: [("connector".to_string(), "blackhole".to_string())]
            .into_iter()
            .collect(),
        watermark: None,
        primary_key: vec![],
        partition_keys: vec![],
    })
}

/// Plans `sql` in a fresh session with `settings` (key, value) and runs its
/// one job to the end, measuring it as [`QueryResult`] named `name`.
pub fn run_script(
    name: &str,
    sql: &str,
    settings: &[(&str, String)],
    collect: Option<&MemorySinkHandle>,
) -> Result<QueryResult, String> {
    let collecting: Option<Box<SelectSink>> = collect.map(|handle| {
        let factory = handle.factory();
        Box::new(move |_: &Plan| SinkTarget::Operator {
            name: "collect".into(),
            factory: factory.clone(),
            parallelism: 1,
        }) as Box<SelectSink>
    });
    let select_sink: &SelectSink = collecting.as_deref().unwrap_or(&blackhole);
    let stmts = parse_sql(sql).map_err(|e| format!("{name}: {e}"))?;
    let mut session = Session::new(runnel_connectors::default_registry());
    for (key, value) in settings {
        let set = format!("SET '{key}' = '{value}'");
        let set = parse_sql(&set).map_err(|e| e.to_string())?;
        session
            .execute(&set[0], "", &blackhole)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    let mut job = None;
    for stmt in &stmts {
        match session
            .execute(stmt, "", select_sink)
            .map_err(|e| format!("{name}: {e}"))?
        {
            Outcome::Job(j) if job.is_none() => job = Some(j),
            Outcome::Job(_) => return Err(format!("{name}: the script starts more than one job")),
            _ => {}
        }
    }
    let job = job.ok_or_else(|| format!("{name}: the script starts no job"))?;
    if !job.bounded {
        return Err(format!("{name}: the job does not end by itself"));
    }
    // A query that reads the event table in several places (q5, q7, q8)
    // has one source per read; each reads every event, but the stream has
    // the events once, so the rate is per event of the stream.
    let scans = job
        .graph
        .nodes()
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Source { .. }))
        .count()
        .max(1) as u64;
    reset_peak_rss();
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let handle = Job::start(job.graph).map_err(|e| format!("{name}: {e}"))?;
    while !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
    let progress = handle.progress();
    let latency = handle.latency();
    let exchange = handle.exchange_stats();
    handle.wait().map_err(|e| format!("{name}: {e}"))?;
    Ok(QueryResult {
        query: name.to_string(),
        events: progress.rows_read / scans,
        rows_out: progress.rows_written,
        seconds,
        cpu_seconds: cpu,
        latency,
        peak_rss_bytes: peak_rss(),
        exchange: Some(exchange),
    })
}

/// Runs one query of [`QUERIES`].
pub fn run_query(name: &str, config: &RunConfig) -> Result<QueryResult, String> {
    let file = query_file(name).ok_or_else(|| {
        let known: Vec<&str> = QUERIES
            .iter()
            .chain(EXTRA_QUERIES)
            .map(|(n, _)| *n)
            .collect();
        format!("unknown query '{name}'; queries: {}", known.join(", "))
    })?;
    if let Some(reason) = not_yet(file) {
        return Err(format!("{name} does not run yet: {reason}"));
    }
    let mut sql = script(file, config)?;
    // q10 writes files: into a directory of its own, removed afterwards.
    let sink_dir = sql.contains(SINK_DIR).then(|| {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("runnel-nexmark-{name}-{}-{n}", std::process::id()))
    });
    if let Some(dir) = &sink_dir {
        let _ = std::fs::remove_dir_all(dir);
        sql = sql.replace(SINK_DIR, &dir.display().to_string().replace('\'', "''"));
    }
    let collect = config.output_dir.as_ref().map(|_| MemorySinkHandle::new());
    let mut options = vec![
        ("parallelism".to_string(), config.parallelism.to_string()),
        (
            "metrics.latency.interval".to_string(),
            config.latency_interval.as_millis().to_string(),
        ),
    ];
    options.extend(config.options.iter().cloned());
    let options: Vec<(&str, String)> = options
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let result = run_script(name, &sql, &options, collect.as_ref());
    if let Some(dir) = &sink_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let result = result?;
    if let (Some(dir), Some(handle)) = (&config.output_dir, &collect) {
        let lines = final_rows(&handle.batches())?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("result.json");
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(result)
}

/// Writes `events` Nexmark events as JSON lines into one file in `dir`
/// (one subtask, so the file is in event-time order); returns its path.
pub fn write_events(events: u64, dir: &Path) -> Result<PathBuf, String> {
    if dir.exists() {
        return Err(format!(
            "{} exists; the events go into a new directory",
            dir.display()
        ));
    }
    let source = SOURCE_SQL.replace("${EVENTS}", &events.to_string());
    let columns = source
        .split_once("CREATE TABLE nexmark (")
        .and_then(|(_, rest)| rest.split_once("WATERMARK FOR"))
        .map(|(cols, _)| cols.trim().trim_end_matches(','))
        .ok_or("cannot find the columns of the nexmark table in _source.sql")?;
    let sql = format!(
        "{source}\nCREATE TABLE nexmark_events ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\nINSERT INTO nexmark_events SELECT * FROM nexmark;\n",
        dir.display().to_string().replace('\'', "''")
    );
    run_script("events", &sql, &[("parallelism", "1".into())], None)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    match files.len() {
        1 => Ok(files.remove(0)),
        n => Err(format!(
            "expected one events file in {}, found {n}",
            dir.display()
        )),
    }
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): state is
    // field 3, utime and stime are fields 14 and 15, in clock ticks (100 a
    // second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Resets the peak resident set size of this process (Linux 4.0+).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process since the last reset.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A markdown table of `results`.
pub fn markdown(results: &[QueryResult], parallelism: usize) -> String {
    let mut out = String::from(
        "| query | events | rows out | parallelism | seconds | events/s | events/s per core (CPU s) | cores used | latency p50 | latency p99 | peak RSS | rows per exchanged batch | control messages |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {:.2} M | {} | {} | {} | {} | {} | {} | {} |\n",
            r.query,
            r.events,
            r.rows_out,
            parallelism,
            r.seconds,
            r.events_per_second() / 1e6,
            r.events_per_core_second()
                .map_or("-".into(), |v| format!("{:.2} M", v / 1e6)),
            r.cpu_seconds
                .map_or("-".into(), |c| format!("{:.2}", c / r.seconds.max(1e-9))),
            r.latency.map_or("-".into(), |l| ms(l.p50)),
            r.latency.map_or("-".into(), |l| ms(l.p99)),
            r.peak_rss_bytes
                .map_or("-".into(), |b| format!("{} MiB", b / (1 << 20))),
            r.exchange
                .filter(|e| e.batches > 0)
                .map_or("-".into(), |e| format!(
                    "{:.0}",
                    e.rows as f64 / e.batches as f64
                )),
            r.exchange.map_or("-".into(), |e| e.controls.to_string()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds().expect("Linux has /proc/self/stat");
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut x = 0u64;
        let mut now = before;
        while now < before + 0.05 && Instant::now() < give_up {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            now = cpu_seconds().expect("Linux has /proc/self/stat");
        }
        assert!(
            now >= before + 0.05,
            "busy for a minute, CPU time {before} -> {now}"
        );
    }

    #[test]
    fn a_result_reads_back_from_its_json() {
        // What a child process writes is what the parent reads.
        let r = QueryResult {
            query: "q16".into(),
            events: 1_000,
            rows_out: 7,
            seconds: 1.5,
            cpu_seconds: Some(2.25),
            latency: Some(LatencySummary {
                samples: 3,
                p50: Duration::from_millis(4),
                p99: Duration::from_millis(9),
                max: Duration::from_millis(12),
            }),
            peak_rss_bytes: Some(1 << 20),
            exchange: Some(ExchangeStats {
                batches: 10,
                rows: 9_000,
                controls: 40,
            }),
        };
        let back = QueryResult::from_json(&r.to_json()).expect("reads back");
        assert_eq!(back.to_json(), r.to_json());
        let without = QueryResult {
            latency: None,
            cpu_seconds: None,
            peak_rss_bytes: None,
            exchange: None,
            ..r
        };
        let back = QueryResult::from_json(&without.to_json()).expect("reads back");
        assert!(back.latency.is_none() && back.peak_rss_bytes.is_none());
    }

    #[test]
    fn peak_rss_is_read() {
        assert!(peak_rss().expect("Linux has VmHWM") > 0);
    }

    #[test]
    fn the_file_source_replaces_the_generator() {
        let config = RunConfig {
            events: Events::File(PathBuf::from("/tmp/ev.json")),
            parallelism: 2,
            latency_interval: Duration::from_millis(100),
            output_dir: Some(PathBuf::from("/tmp/out")),
            options: Vec::new(),
        };
        let sql = script(
            "CREATE TABLE s (a INT) WITH ('connector' = 'blackhole');\nINSERT INTO s\nSELECT 1;",
            &config,
        )
        .expect("script");
        assert!(sql.contains("'path' = '/tmp/ev.json'"));
        assert!(!sql.contains("'nexmark'"));
        assert!(
            sql.ends_with("WITH ('connector' = 'blackhole');\n\nSELECT 1;"),
            "{sql}"
        );
    }

    #[test]
    fn final_rows_keep_columns_of_the_same_name_apart() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("date_time", DataType::Int64, true),
            Field::new("date_time", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 3])),
                Arc::new(Int64Array::from(vec![Some(2), None])),
            ],
        )
        .expect("valid batch");
        assert_eq!(
            final_rows(&[batch]).expect("rows"),
            vec!["[1,2]".to_string(), "[3,null]".to_string()]
        );
    }

    #[test]
    fn final_rows_apply_the_changelog() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use runnel_engine::types::{row_kind_array, with_row_kind};
        let schema = Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]);
        let batch = RecordBatch::try_new(
            with_row_kind(&schema),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("a"),
                    Some("a"),
                    None,
                    Some("b"),
                ])),
                Arc::new(Int64Array::from(vec![1, 1, 2, 5, 1])),
                row_kind_array(&[
                    RowKind::Insert,
                    RowKind::UpdateBefore,
                    RowKind::UpdateAfter,
                    RowKind::Insert,
                    RowKind::Insert,
                ]),
            ],
        )
        .expect("batch");
        let retract_b = RecordBatch::try_new(
            with_row_kind(&schema),
            vec![
                Arc::new(StringArray::from(vec![Some("b")])),
                Arc::new(Int64Array::from(vec![1])),
                row_kind_array(&[RowKind::Delete]),
            ],
        )
        .expect("batch");
        let rows = final_rows(&[batch, retract_b.clone()]).expect("rows");
        assert_eq!(rows, vec![r#"["a",2]"#, r#"[null,5]"#]);
        // retracting what was never there is an error, not a silent drop
        assert!(final_rows(&[retract_b]).is_err());
    }
}
