//! The Nexmark query files run on the `nexmark` generator, with their
//! blackhole sinks replaced by JSON files whose rows are checked.

use std::path::{Path, PathBuf};

use runnel_flight::cli::{run_file, RunOptions};

const EVENTS: u64 = 50_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs `benches/nexmark/<query>.sql` with its sink writing JSON lines to a
/// temporary directory; returns the JSON lines it wrote.
fn run_query(query: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("runnel-nexmark-{query}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let source =
        std::fs::read_to_string(root().join("benches/nexmark/_source.sql")).expect("_source.sql");
    let body = std::fs::read_to_string(root().join(format!("benches/nexmark/{query}.sql")))
        .expect("query file");
    let sink = format!(
        "'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'",
        dir.display()
    );
    let sql = source.replace("${EVENTS}", &EVENTS.to_string())
        + &body.replace("'connector' = 'blackhole'", &sink);
    assert!(
        sql.contains(&dir.display().to_string()),
        "{query}.sql has no blackhole sink to replace"
    );
    let script = dir.with_extension("sql");
    std::fs::write(&script, sql).expect("write script");
    run_file(
        &script.display().to_string(),
        &RunOptions {
            parallelism: Some(2),
            checkpoint_dir: None,
        },
        false,
    )
    .unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut rows = Vec::new();
    for e in std::fs::read_dir(&dir).expect("output dir").flatten() {
        if !e.file_name().to_string_lossy().starts_with('.') {
            let text = std::fs::read_to_string(e.path()).expect("output file");
            rows.extend(text.lines().map(str::to_string));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&script);
    rows
}

fn field(row: &str, name: &str) -> Option<i64> {
    let start = row.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &row[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn q0_passes_every_bid_through() {
    // 46 of every 50 events are bids.
    assert_eq!(run_query("q0").len() as u64, EVENTS / 50 * 46);
}

#[test]
fn q2_selects_auctions_divisible_by_123() {
    let rows = run_query("q2");
    assert!(!rows.is_empty(), "some bids hit a selected auction");
    for r in &rows {
        let auction = field(r, "auction").expect("auction column");
        assert_eq!(auction % 123, 0, "{r}");
    }
}

#[test]
fn q11_sessions_count_every_bid_once() {
    let rows = run_query("q11");
    let total: i64 = rows
        .iter()
        .map(|r| field(r, "bid_count").expect("bid_count column"))
        .sum();
    assert_eq!(
        total as u64,
        EVENTS / 50 * 46,
        "every bid is in exactly one session"
    );
}
