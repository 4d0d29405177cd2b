//! `runnel-bench`: the Nexmark harness.
//!
//! ```text
//! runnel-bench nexmark [--query q0,q1|all] [--events N] [--parallelism N]
//!                      [--events-file FILE] [--latency-interval-ms N]
//!                      [--json FILE] [--markdown FILE] [--output-dir DIR]
//!                      [--set key=value]...
//! runnel-bench nexmark-events --events N --out DIR
//! runnel-bench nexmark-scaling [--query q15,q16,groupby-keys] [--events N]
//!                              [--factors 1,2,4] [--parallelism N] [--json FILE]
//!                              [--set key=value]...
//! ```
//!
//! Build it in release mode: `cargo run --release -p runnel-benches --bin
//! runnel-bench -- nexmark --query all`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use runnel_benches::nexmark::{
    markdown, not_yet, run_query, write_events, Events, QueryResult, RunConfig, QUERIES,
};

const USAGE: &str = "usage:
  runnel-bench nexmark [--query q0,q1|all] [--events N] [--parallelism N]
                       [--events-file FILE] [--latency-interval-ms N]
                       [--json FILE] [--markdown FILE] [--output-dir DIR]
                       [--set key=value]...
      runs Nexmark queries (default: all that run, 1000000 events, parallelism 2)
      on the nexmark generator, or on events written by nexmark-events;
      --output-dir writes the query's rows as JSON lines instead of discarding them;
      --set adds a session option (SET 'key' = 'value') before each query
  runnel-bench nexmark-events --events N --out DIR
      writes N events as JSON lines into one file in the new directory DIR
  runnel-bench nexmark-scaling [--query q15,q16,groupby-keys] [--events N]
                               [--factors 1,2,4] [--parallelism N] [--json FILE]
                               [--set key=value]...
      runs each query at each multiple of N events (default 2500000,
      parallelism 1) and prints the time per event and peak memory at each
      size (--set as for nexmark, e.g. table.exec.state.ttl=1s)
With several queries, each runs in a process of its own, so that its peak
memory is its own.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("nexmark") => nexmark(&args[1..]),
        Some("nexmark-events") => nexmark_events(&args[1..]),
        Some("nexmark-scaling") => nexmark_scaling(&args[1..]),
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runnel-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs; every name must be in `known`.
fn options(args: &[String], known: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let key = name
            .strip_prefix("--")
            .filter(|k| known.contains(k))
            .ok_or_else(|| format!("unknown argument '{name}'\n{USAGE}"))?;
        let value = it
            .next()
            .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
        out.push((key.to_string(), value.clone()));
    }
    Ok(out)
}

fn number(name: &str, value: &str) -> Result<u64, String> {
    value
        .replace('_', "")
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("--{name} must be a positive whole number, not '{value}'"))
}

fn nexmark(args: &[String]) -> Result<(), String> {
    let mut queries: Vec<String> = Vec::new();
    let mut events = 1_000_000;
    let mut parallelism = 2;
    let mut file = None;
    let mut latency_ms = 100;
    let mut json = None;
    let mut md = None;
    let mut output_dir = None;
    let mut settings = Vec::new();
    for (key, value) in options(
        args,
        &[
            "query",
            "events",
            "parallelism",
            "events-file",
            "latency-interval-ms",
            "json",
            "markdown",
            "output-dir",
            "set",
        ],
    )? {
        match key.as_str() {
            "query" => queries.extend(value.split(',').map(|q| q.trim().to_string())),
            "events" => events = number(&key, &value)?,
            "parallelism" => parallelism = number(&key, &value)? as usize,
            "events-file" => file = Some(PathBuf::from(value)),
            "latency-interval-ms" => latency_ms = number(&key, &value)?,
            "json" => json = Some(PathBuf::from(value)),
            "markdown" => md = Some(PathBuf::from(value)),
            "set" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--set takes key=value, not '{value}'"))?;
                settings.push((k.trim().to_string(), v.trim().to_string()));
            }
            _ => output_dir = Some(PathBuf::from(value)),
        }
    }
    if queries.is_empty() || queries.iter().any(|q| q == "all") {
        queries = QUERIES.iter().map(|(n, _)| n.to_string()).collect();
    }
    let config = RunConfig {
        events: match file {
            Some(f) => Events::File(f),
            None => Events::Generator(events),
        },
        parallelism,
        latency_interval: Duration::from_millis(latency_ms),
        output_dir,
        options: settings,
    };
    let mut results: Vec<QueryResult> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for q in &queries {
        if let Some(reason) = QUERIES
            .iter()
            .find(|(n, _)| n == q)
            .and_then(|(_, f)| not_yet(f))
        {
            skipped.push((q.clone(), reason.to_string()));
            continue;
        }
        eprintln!("[nexmark] {q}: running");
        let r = if queries.len() > 1 {
            run_in_child(q, &config)?
        } else {
            run_query(q, &config)?
        };
        eprintln!(
            "[nexmark] {q}: {} events in {:.2} s, {:.2} M events/s",
            r.events,
            r.seconds,
            r.events_per_second() / 1e6
        );
        results.push(r);
    }
    let table = markdown(&results, parallelism);
    print!("{table}");
    for (q, reason) in &skipped {
        println!("{q}: not run: {reason}");
    }
    if let Some(path) = md {
        std::fs::write(&path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = json {
        let doc = serde_json::json!({
            "parallelism": parallelism,
            "events_source": match &config.events {
                Events::Generator(_) => "generator".to_string(),
                Events::File(f) => f.display().to_string(),
            },
            "results": results.iter().map(QueryResult::to_json).collect::<Vec<_>>(),
            "not_run": skipped
                .iter()
                .map(|(q, r)| serde_json::json!({"query": q, "reason": r}))
                .collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs one query in a process of its own (this binary, one `--query`),
/// so that its peak memory is its own: the allocator keeps what an earlier
/// query freed, and a peak measured in one process would include it.
fn run_in_child(query: &str, config: &RunConfig) -> Result<QueryResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let json =
        std::env::temp_dir().join(format!("runnel-bench-{}-{query}.json", std::process::id()));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("nexmark")
        .args(["--query", query])
        .args(["--parallelism", &config.parallelism.to_string()])
        .args([
            "--latency-interval-ms",
            &config.latency_interval.as_millis().max(1).to_string(),
        ])
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::null());
    match &config.events {
        Events::Generator(n) => cmd.args(["--events", &n.to_string()]),
        Events::File(f) => cmd.arg("--events-file").arg(f),
    };
    if let Some(dir) = &config.output_dir {
        cmd.arg("--output-dir").arg(dir);
    }
    for (k, v) in &config.options {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {query} in a child process: {e}"))?;
    if !status.success() {
        return Err(format!("{query} failed ({status})"));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
    let _ = std::fs::remove_file(&json);
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    doc["results"]
        .get(0)
        .and_then(QueryResult::from_json)
        .ok_or_else(|| format!("{query} wrote no result"))
}

/// `nexmark-scaling`: each query at 1x, 2x, 4x (`--factors`) the events,
/// each run in a process of its own; the time per event at each size shows
/// whether the cost grows linearly.
fn nexmark_scaling(args: &[String]) -> Result<(), String> {
    let mut queries = vec![
        "q15".to_string(),
        "q16".to_string(),
        "groupby-keys".to_string(),
    ];
    let mut events = 2_500_000u64;
    let mut factors = vec![1u64, 2, 4];
    let mut parallelism = 1usize;
    let mut json = None;
    let mut settings = Vec::new();
    for (key, value) in options(
        args,
        &["query", "events", "factors", "parallelism", "json", "set"],
    )? {
        match key.as_str() {
            "set" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--set takes key=value, not '{value}'"))?;
                settings.push((k.trim().to_string(), v.trim().to_string()));
            }
            "query" => queries = value.split(',').map(|q| q.trim().to_string()).collect(),
            "events" => events = number(&key, &value)?,
            "factors" => {
                factors = value
                    .split(',')
                    .map(|f| number(&key, f.trim()))
                    .collect::<Result<_, _>>()?
            }
            "parallelism" => parallelism = number(&key, &value)? as usize,
            _ => json = Some(PathBuf::from(value)),
        }
    }
    let mut rows = Vec::new();
    let mut table = String::from(
        "| query | events | seconds | µs per event | per event vs 1x | peak RSS MiB |\n|---|---|---|---|---|---|\n",
    );
    for q in &queries {
        let mut base: Option<f64> = None;
        for f in &factors {
            let config = RunConfig {
                events: Events::Generator(events * f),
                parallelism,
                latency_interval: Duration::from_millis(100),
                output_dir: None,
                options: settings.clone(),
            };
            eprintln!("[scaling] {q} at {}x ({} events)", f, events * f);
            let r = run_in_child(q, &config)?;
            let per_event_us = r.seconds * 1e6 / r.events.max(1) as f64;
            let ratio = per_event_us / *base.get_or_insert(per_event_us);
            table.push_str(&format!(
                "| {q} | {} | {:.2} | {:.3} | {:.2} | {} |\n",
                r.events,
                r.seconds,
                per_event_us,
                ratio,
                r.peak_rss_bytes
                    .map_or("-".to_string(), |b| (b >> 20).to_string())
            ));
            let mut j = r.to_json();
            j["factor"] = serde_json::json!(f);
            j["us_per_event"] = serde_json::json!(per_event_us);
            rows.push(j);
        }
    }
    print!("{table}");
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "parallelism": parallelism,
            "results": rows,
        }))
        .map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn nexmark_events(args: &[String]) -> Result<(), String> {
    let mut events = None;
    let mut out = None;
    for (key, value) in options(args, &["events", "out"])? {
        match key.as_str() {
            "events" => events = Some(number(&key, &value)?),
            _ => out = Some(PathBuf::from(value)),
        }
    }
    let (Some(events), Some(out)) = (events, out) else {
        return Err(format!("nexmark-events needs --events and --out\n{USAGE}"));
    };
    let file = write_events(events, &out)?;
    println!("{}", file.display());
    Ok(())
}
