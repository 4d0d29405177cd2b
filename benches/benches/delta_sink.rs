//! Writing to Delta Lake against writing the same rows as plain Parquet
//! files, side by side in one run (not criterion: each sample is a whole
//! job of several seconds).
//!
//! Each job is built from SQL as `runnel run` does: a session with the
//! default connectors, parallelism `RUNNEL_BENCH_PARALLELISM` (default 2),
//! a checkpoint every second into a fresh directory, a bounded `datagen`
//! table of `RUNNEL_BENCH_ROWS` IoT readings (default 20,000,000; six
//! columns: a timestamp, three strings, two doubles) and
//! `INSERT INTO sink SELECT ... FROM readings`. The sinks:
//!
//! * `delta`: `'connector' = 'delta'` into a fresh directory (the table is
//!   created by the job; one Delta version per checkpoint);
//! * `parquet`: `'connector' = 'filesystem', 'format' = 'parquet'` into a
//!   fresh directory (two-phase commit of files per checkpoint);
//! * `blackhole`: the same source and query with nothing written, for the
//!   cost of generating the rows.
//!
//! `RUNNEL_BENCH_ROUNDS` rounds (default 3) run the three in turn, so that
//! noise from the (shared) machine falls on all of them. A job's time runs
//! from `Job::start` to the end of `wait`: start-up, the Delta table's
//! creation and the final checkpoint's commit included. The Delta commit
//! latencies come from the connector's own timing of each commit
//! (`DeltaConnector::take_commit_latencies`); the commits are checked
//! against the versions found in `_delta_log/`, and the rows against the
//! `numRecords` of the committed files.
//!
//! Output: a summary on stdout and the same figures as JSON in
//! `$CARGO_TARGET_DIR/delta-sink-bench.json` (the workspace's `target/` when
//! the variable is unset).
//!
//! Run: `cargo bench -p runnel-benches --bench delta_sink`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runnel_connectors::DeltaConnector;
use runnel_engine::runtime::Job;
use runnel_sql::lower::SinkTarget;
use runnel_sql::parser::parse_sql;
use runnel_sql::plan::Plan;
use runnel_sql::session::{Outcome, Session};

const COLUMNS: &str = "event_time TIMESTAMP(3), device_id STRING, region STRING, \
                       temperature DOUBLE, humidity DOUBLE, status STRING";

const SELECT: &str =
    "SELECT event_time, device_id, region, temperature, humidity, status FROM readings";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Delta,
    Parquet,
    Blackhole,
}

impl Case {
    const ALL: [Case; 3] = [Case::Delta, Case::Parquet, Case::Blackhole];

    fn name(self) -> &'static str {
        match self {
            Case::Delta => "delta",
            Case::Parquet => "parquet",
            Case::Blackhole => "blackhole",
        }
    }

    fn sink_options(self, path: &Path) -> String {
        let path = path.display().to_string().replace('\'', "''");
        match self {
            Case::Delta => format!("'connector' = 'delta', 'path' = '{path}'"),
            Case::Parquet => {
                format!("'connector' = 'filesystem', 'path' = '{path}', 'format' = 'parquet'")
            }
            Case::Blackhole => "'connector' = 'blackhole'".to_string(),
        }
    }
}

/// What one job measured.
struct RunStats {
    case: Case,
    round: u64,
    elapsed: Duration,
    rows_written: u64,
    checkpoints: u64,
    /// Data files visible in the output (Delta: referenced by the log).
    files: u64,
    bytes: u64,
    /// Delta only.
    versions: u64,
    committed_rows: Option<u64>,
    commits: Vec<Duration>,
}

impl RunStats {
    fn rows_per_s(&self, rows: u64) -> f64 {
        rows as f64 / self.elapsed.as_secs_f64()
    }
}

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} must be a positive integer, not '{v}'")),
        Err(_) => Ok(default),
    }
}

fn report_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // The workspace's target directory: benches/ sits at its root.
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target.join("delta-sink-bench.json")
}

/// Top-level SELECTs are not used here; INSERT never calls this.
fn no_select(_plan: &Plan) -> SinkTarget {
    SinkTarget::Operator {
        name: "unused".into(),
        factory: runnel_engine::sink::BlackholeSink::factory(),
        parallelism: 1,
    }
}

fn execute(session: &mut Session, sql: &str) -> Result<Option<Outcome>, String> {
    let stmts = parse_sql(sql).map_err(|e| format!("{sql}: {e}"))?;
    let mut last = None;
    for stmt in &stmts {
        last = Some(
            session
                .execute(stmt, sql, &no_select)
                .map_err(|e| format!("{sql}: {e}"))?,
        );
    }
    Ok(last)
}

/// Runs one job writing `rows` rows into `case`'s sink under `dir`.
fn run(
    case: Case,
    round: u64,
    rows: u64,
    parallelism: u64,
    dir: &Path,
) -> Result<RunStats, String> {
    let table_dir = dir.join("table");
    let checkpoints = dir.join("checkpoints");
    let mut session = Session::new(runnel_connectors::default_registry());
    for set in [
        format!("SET 'parallelism' = '{parallelism}'"),
        "SET 'execution.checkpointing.interval' = '1 s'".to_string(),
        format!(
            "SET 'state.checkpoints.dir' = '{}'",
            checkpoints.display().to_string().replace('\'', "''")
        ),
    ] {
        execute(&mut session, &set)?;
    }
    execute(
        &mut session,
        &format!(
            "CREATE TABLE readings ({COLUMNS}) WITH ('connector' = 'datagen', 'seed' = '7', \
             'number-of-rows' = '{rows}')"
        ),
    )?;
    execute(
        &mut session,
        &format!(
            "CREATE TABLE sink ({COLUMNS}) WITH ({})",
            case.sink_options(&table_dir)
        ),
    )?;
    let Some(Outcome::Job(job)) = execute(&mut session, &format!("INSERT INTO sink {SELECT}"))?
    else {
        return Err("INSERT INTO did not produce a job".into());
    };
    if case == Case::Delta {
        // Commits of earlier runs.
        let _ = DeltaConnector::take_commit_latencies();
    }
    let started = Instant::now();
    let handle = Job::start(job.graph).map_err(|e| format!("cannot start the job: {e}"))?;
    while !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let progress = handle.progress();
    handle
        .wait()
        .map_err(|e| format!("the {} job failed: {e}", case.name()))?;
    let elapsed = started.elapsed();
    let commits = if case == Case::Delta {
        DeltaConnector::take_commit_latencies()
    } else {
        Vec::new()
    };
    if progress.rows_written != rows {
        return Err(format!(
            "the {} sink received {} rows, not {rows}",
            case.name(),
            progress.rows_written
        ));
    }
    let mut stats = RunStats {
        case,
        round,
        elapsed,
        rows_written: progress.rows_written,
        checkpoints: progress.checkpoint.map_or(0, |c| c.completed),
        files: 0,
        bytes: 0,
        versions: 0,
        committed_rows: None,
        commits,
    };
    match case {
        Case::Delta => read_delta_log(&table_dir, &mut stats)?,
        Case::Parquet => {
            for (name, len) in files(&table_dir)? {
                if name.ends_with(".parquet") && !name.starts_with(['.', '_']) {
                    stats.files += 1;
                    stats.bytes += len;
                }
            }
        }
        Case::Blackhole => {}
    }
    Ok(stats)
}

/// Regular files under `dir` (recursively, `_delta_log` aside): name and
/// size.
fn files(dir: &Path) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let meta = entry
            .metadata()
            .map_err(|e| format!("cannot stat {}: {e}", entry.path().display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if meta.is_dir() && name != "_delta_log" {
            out.extend(files(&entry.path())?);
        } else if meta.is_file() {
            out.push((name, meta.len()));
        }
    }
    Ok(out)
}

/// Versions after the table's creation, and the files and rows their `add`
/// actions reference.
fn read_delta_log(table: &Path, stats: &mut RunStats) -> Result<(), String> {
    let log = table.join("_delta_log");
    let mut rows = Some(0u64);
    for (name, _) in files(&log)? {
        let Some(version) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        if version == 0 {
            // The table's creation (protocol and metadata).
            continue;
        }
        stats.versions += 1;
        let path = log.join(&name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let action: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
            let Some(add) = action.get("add") else {
                continue;
            };
            stats.files += 1;
            stats.bytes += add.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            let records = add
                .get("stats")
                .and_then(|s| s.as_str())
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|s| s.get("numRecords").and_then(|n| n.as_u64()));
            rows = match (rows, records) {
                (Some(r), Some(n)) => Some(r + n),
                _ => None,
            };
        }
    }
    stats.committed_rows = rows;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Nearest-rank quantile of sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<(), String> {
    let rows = env_number("RUNNEL_BENCH_ROWS", 20_000_000)?;
    let rounds = env_number("RUNNEL_BENCH_ROUNDS", 3)?;
    let parallelism = env_number("RUNNEL_BENCH_PARALLELISM", 2)?;

    let base = std::env::temp_dir().join(format!("runnel-bench-delta-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);

    println!(
        "Delta sink vs filesystem Parquet sink: {rows} rows, parallelism {parallelism}, \
         a checkpoint every 1 s, {rounds} rounds"
    );
    println!("| round | sink | seconds | rows/s | checkpoints | commits | files | MB |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut all: Vec<RunStats> = Vec::new();
    for round in 1..=rounds {
        for case in Case::ALL {
            let dir = base.join(format!("{}-{round}", case.name()));
            let outcome = run(case, round, rows, parallelism, &dir);
            let _ = std::fs::remove_dir_all(&dir);
            let stats = outcome?;
            if case == Case::Delta {
                if stats.commits.len() as u64 != stats.versions {
                    return Err(format!(
                        "round {round}: {} commits timed but {} versions in the Delta log",
                        stats.commits.len(),
                        stats.versions
                    ));
                }
                if let Some(n) = stats.committed_rows.filter(|n| *n != rows) {
                    return Err(format!(
                        "round {round}: the Delta log references {n} rows, not {rows}"
                    ));
                }
            }
            let dash = |n: u64, show: bool| if show { n.to_string() } else { "-".into() };
            println!(
                "| {round} | {} | {:.2} | {:.2} M | {} | {} | {} | {} |",
                case.name(),
                stats.elapsed.as_secs_f64(),
                stats.rows_per_s(rows) / 1e6,
                stats.checkpoints,
                dash(stats.commits.len() as u64, case == Case::Delta),
                dash(stats.files, case != Case::Blackhole),
                if case == Case::Blackhole {
                    "-".to_string()
                } else {
                    format!("{:.1}", stats.bytes as f64 / 1e6)
                },
            );
            all.push(stats);
        }
    }
    let _ = std::fs::remove_dir_all(&base);

    let rate = |case: Case| {
        median(
            all.iter()
                .filter(|s| s.case == case)
                .map(|s| s.rows_per_s(rows))
                .collect(),
        )
    };
    let (delta, parquet, blackhole) = (
        rate(Case::Delta),
        rate(Case::Parquet),
        rate(Case::Blackhole),
    );
    // Per round, as the rounds share the machine's noise.
    let round_ratios: Vec<f64> = (1..=rounds)
        .filter_map(|r| {
            let of = |case: Case| {
                all.iter()
                    .find(|s| s.round == r && s.case == case)
                    .map(|s| s.rows_per_s(rows))
            };
            Some(of(Case::Delta)? / of(Case::Parquet)?)
        })
        .collect();
    let mut commits: Vec<Duration> = all.iter().flat_map(|s| s.commits.clone()).collect();
    commits.sort();
    let (p50, p99, max) = (
        quantile(&commits, 0.5),
        quantile(&commits, 0.99),
        commits.last().copied().unwrap_or_default(),
    );
    let mean = if commits.is_empty() {
        Duration::ZERO
    } else {
        commits.iter().sum::<Duration>() / commits.len() as u32
    };
    let delta_runs: Vec<&RunStats> = all.iter().filter(|s| s.case == Case::Delta).collect();
    let delta_checkpoints: u64 = delta_runs.iter().map(|s| s.checkpoints).sum();

    println!();
    println!("  rows/s, median of {rounds}:");
    println!("    delta:                {:.2} M", delta / 1e6);
    println!("    parquet:              {:.2} M", parquet / 1e6);
    println!("    blackhole:            {:.2} M", blackhole / 1e6);
    println!(
        "  delta / parquet:        {:.2} (median rates); per round: {}",
        delta / parquet,
        round_ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  delta commits:          {} over {} checkpoints ({} runs)",
        commits.len(),
        delta_checkpoints,
        delta_runs.len()
    );
    println!(
        "  commit latency:         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms",
        ms(p50),
        ms(p99),
        ms(max),
        ms(mean)
    );

    let runs: Vec<serde_json::Value> = all
        .iter()
        .map(|s| {
            serde_json::json!({
                "round": s.round,
                "sink": s.case.name(),
                "seconds": s.elapsed.as_secs_f64(),
                "rows_per_s": s.rows_per_s(rows),
                "rows_written": s.rows_written,
                "checkpoints": s.checkpoints,
                "files": s.files,
                "bytes": s.bytes,
                "delta_versions": s.versions,
                "delta_committed_rows": s.committed_rows,
                "commit_ms": s.commits.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let report = serde_json::json!({
        "rows": rows,
        "rounds": rounds,
        "parallelism": parallelism,
        "checkpoint_interval_s": 1,
        "median_rows_per_s": { "delta": delta, "parquet": parquet, "blackhole": blackhole },
        "delta_over_parquet": delta / parquet,
        "delta_over_parquet_per_round": round_ratios,
        "delta_commits": commits.len(),
        "delta_checkpoints": delta_checkpoints,
        "commit_latency_ms": { "p50": ms(p50), "p99": ms(p99), "max": ms(max), "mean": ms(mean) },
        "runs": runs,
    });
    let path = report_path();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("  report:                 {}", path.display());
    Ok(())
}
