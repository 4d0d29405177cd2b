//! `runnel-bench`: the Nexmark harness.
//!
//! ```text
//! runnel-bench nexmark [--query q0,q1|all] [--events N] [--parallelism N]
//!                      [--events-file FILE] [--latency-interval-ms N]
//!                      [--json FILE] [--markdown FILE] [--output-dir DIR]
//! runnel-bench nexmark-events --events N --out DIR
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
      runs Nexmark queries (default: all that run, 1000000 events, parallelism 2)
      on the nexmark generator, or on events written by nexmark-events;
      --output-dir writes the query's rows as JSON lines instead of discarding them
  runnel-bench nexmark-events --events N --out DIR
      writes N events as JSON lines into one file in the new directory DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("nexmark") => nexmark(&args[1..]),
        Some("nexmark-events") => nexmark_events(&args[1..]),
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
        let r = run_query(q, &config)?;
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
