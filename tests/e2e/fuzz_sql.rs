//! A fuzz target over the SQL front end: tokenizer, parser, binder,
//! planner and lowering, as the server runs them for any client's text.
//!
//! Two sources of input, both from proptest:
//!
//! * **grammar**: statements generated from a small grammar of Flink SQL
//!   (expressions of every operator and common functions, SELECT with
//!   WHERE / GROUP BY / HAVING, window table functions, INSERT, views);
//!   these must parse, and planning them either succeeds or fails with a
//!   positioned error;
//! * **mutated corpus**: the scripts in `tests/fuzz/corpus/` and the Nexmark
//!   query files, cut, repeated and spliced with hostile tokens.
//!
//! For every input: nothing panics (the work runs on a thread with the
//! server's statement stack, and a panic fails the case with its input),
//! and every error that names a position names one inside the text. The
//! number of cases is bounded (`RUNNEL_FUZZ_CASES`, 256 per property by
//! default) so that the suite stays fast; set it higher to fuzz longer.
//! Inputs that once failed are kept in `tests/proptest-regressions/` and
//! replayed first; add an interesting input to the corpus as a file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence};
use runnel_engine::connector::ConnectorRegistry;
use runnel_sql::error::SqlError;
use runnel_sql::lower::SinkTarget;
use runnel_sql::parser::parse_sql;
use runnel_sql::plan::Plan;
use runnel_sql::session::Session;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// The corpus, read once.
fn corpus() -> &'static [String] {
    static CORPUS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(read_corpus)
}

/// The corpus: our seed scripts and the Nexmark query files (each with the
/// shared source definitions in front).
fn read_corpus() -> Vec<String> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fuzz/corpus"))
        .expect("tests/fuzz/corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in files {
        out.push(String::from_utf8_lossy(&std::fs::read(&f).expect("corpus file")).into_owned());
    }
    let nexmark = repo().join("benches/nexmark");
    let source = std::fs::read_to_string(nexmark.join("_source.sql"))
        .expect("nexmark source")
        .replace("${EVENTS}", "1000");
    for q in 0..=22 {
        if let Ok(text) = std::fs::read_to_string(nexmark.join(format!("q{q}.sql"))) {
            out.push(format!("{source}\n{text}"));
        }
    }
    assert!(out.len() >= 6, "the corpus is missing files: {}", out.len());
    out
}

fn cases() -> u32 {
    std::env::var("RUNNEL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/fuzz_sql.txt",
        ))),
        ..Config::default()
    }
}

/// The table every generated statement reads.
const TABLE: &str = "CREATE TABLE t (a INT, b DOUBLE, s STRING, ts TIMESTAMP(3), \
     WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
     WITH ('connector' = 'datagen', 'number-of-rows' = '10');\n\
     CREATE TABLE sink_t (x BIGINT, y STRING) WITH ('connector' = 'blackhole');\n";

/// What went wrong with one input, if anything.
fn front_end(sql: &str) -> Result<(), String> {
    let text = sql.to_string();
    let worker = std::thread::Builder::new()
        .stack_size(runnel_flight::STATEMENT_STACK_BYTES)
        .spawn(move || plan_all(&text));
    match worker.map(|t| t.join()) {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("the front end panicked".into()),
        Err(e) => Err(format!("cannot start a thread: {e}")),
    }
}

/// Parses `sql` and plans each statement in a fresh session (planning
/// builds a job graph but starts nothing).
fn plan_all(sql: &str) -> Result<(), String> {
    let stmts = match parse_sql(sql) {
        Ok(s) => s,
        Err(e) => return check_error(sql, &e),
    };
    let registry: ConnectorRegistry = runnel_connectors::default_registry();
    let mut session = Session::new(registry);
    // A top-level SELECT goes to the console, as in `runnel run`.
    let sink: Arc<dyn Fn(&Plan) -> SinkTarget> = Arc::new(runnel_flight::cli::print_sink);
    for stmt in &stmts {
        if let Err(e) = session.execute(stmt, "", sink.as_ref()) {
            check_error(sql, &e)?;
        }
    }
    Ok(())
}

/// An error must say something, and a position it names must be in `sql`.
fn check_error(sql: &str, err: &SqlError) -> Result<(), String> {
    let message = err.to_string();
    if message.trim().is_empty() {
        return Err("an error with an empty message".into());
    }
    let Some(p) = err.position().filter(|p| !p.is_unknown()) else {
        return Ok(());
    };
    let lines: Vec<&str> = sql.split('\n').collect();
    let line = p.line as usize;
    if line == 0 || line > lines.len() {
        return Err(format!(
            "error at line {line} of a {}-line text: {message}",
            lines.len()
        ));
    }
    let width = lines[line - 1].chars().count();
    if p.column == 0 || p.column as usize > width + 1 {
        return Err(format!(
            "error at column {} of a {width}-character line {line}: {message}",
            p.column
        ));
    }
    Ok(())
}

// ------------------------------------------------------------- grammar

fn column() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("s"), Just("ts"), Just("t.a")].prop_map(String::from)
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        (-1e6f64..1e6).prop_map(|v| format!("{v:?}")),
        "[a-z' ]{0,6}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        Just("NULL".to_string()),
        Just("TRUE".to_string()),
        Just("INTERVAL '5' MINUTE".to_string()),
        Just("TIMESTAMP '2026-01-01 00:00:00'".to_string()),
        Just("?".to_string()),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![column(), literal()];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let ops = prop_oneof![
            Just("+"),
            Just("-"),
            Just("*"),
            Just("/"),
            Just("%"),
            Just("||"),
            Just("AND"),
            Just("OR"),
            Just("="),
            Just("<>"),
            Just("<"),
            Just(">="),
        ];
        let functions = prop_oneof![
            Just("UPPER"),
            Just("LOWER"),
            Just("ABS"),
            Just("COALESCE"),
            Just("CHAR_LENGTH"),
            Just("FLOOR"),
            Just("NO_SUCH_FUNCTION"),
        ];
        let types = prop_oneof![
            Just("INT"),
            Just("BIGINT"),
            Just("DOUBLE"),
            Just("STRING"),
            Just("BOOLEAN"),
            Just("TIMESTAMP(3)"),
        ];
        prop_oneof![
            (inner.clone(), ops, inner.clone()).prop_map(|(l, o, r)| format!("{l} {o} {r}")),
            inner.clone().prop_map(|e| format!("({e})")),
            inner.clone().prop_map(|e| format!("NOT {e}")),
            inner.clone().prop_map(|e| format!("- {e}")),
            inner.clone().prop_map(|e| format!("({e}) IS NULL")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l}) LIKE ({r})")),
            (functions, inner.clone()).prop_map(|(f, e)| format!("{f}({e})")),
            (inner.clone(), types).prop_map(|(e, t)| format!("CAST({e} AS {t})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, x, y)| format!("CASE WHEN {c} THEN {x} ELSE {y} END")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(e, l, h)| format!("({e}) BETWEEN ({l}) AND ({h})")),
        ]
    })
}

fn statement() -> impl Strategy<Value = String> {
    let select_list = || prop::collection::vec(expression(), 1..4).prop_map(|v| v.join(", "));
    let windows = prop_oneof![
        Just("TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)"),
        Just("HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '1' MINUTE)"),
        Just("CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' HOUR)"),
    ];
    let aggregates = prop_oneof![
        Just("COUNT(*)"),
        Just("SUM(b)"),
        Just("AVG(a)"),
        Just("MIN(s)"),
        Just("MAX(ts)"),
        Just("COUNT(DISTINCT s)"),
    ];
    prop_oneof![
        (select_list(), prop::option::of(expression()))
            .prop_map(|(l, w)| match w {
                Some(w) => format!("SELECT {l} FROM t WHERE {w}"),
                None => format!("SELECT {l} FROM t"),
            }),
        (column(), aggregates.clone(), prop::option::of(expression())).prop_map(
            |(c, agg, having)| match having {
                Some(h) => format!("SELECT {c}, {agg} FROM t GROUP BY {c} HAVING {h}"),
                None => format!("SELECT {c}, {agg} FROM t GROUP BY {c}"),
            }
        ),
        (windows, aggregates).prop_map(|(w, agg)| format!(
            "SELECT window_start, window_end, {agg} FROM TABLE({w}) GROUP BY window_start, window_end"
        )),
        (expression(), expression())
            .prop_map(|(x, y)| format!("INSERT INTO sink_t SELECT {x}, {y} FROM t")),
        select_list().prop_map(|l| format!("CREATE VIEW v AS SELECT {l} FROM t")),
        expression().prop_map(|e| format!("EXPLAIN SELECT {e} FROM t")),
    ]
}

// ---------------------------------------------------------- mutations

/// Tokens spliced into corpus scripts.
const HOSTILE: &[&str] = &[
    "(",
    ")",
    "'",
    "\"",
    "`",
    ";",
    ",",
    "?",
    "--",
    "/*",
    "*/",
    "\n",
    " + ",
    " || ",
    " OR ",
    " AND ",
    " NOT ",
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "TABLE",
    "DESCRIPTOR",
    "INTERVAL",
    "NULL",
    "CAST(",
    " AS ",
    "OVER (",
    "PARTITION BY",
    "99999999999999999999999",
    "1e400",
    "-9223372036854775808",
    "é",
    "\u{0}",
    "\u{feff}",
    "\\",
    "$",
    "::",
    "[",
    "]",
    "{",
    "}",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index, usize),
    Repeat(Index, usize, u8),
    Insert(Index, usize),
    Swap(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..60, 1u8..20).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        (any::<Index>(), 0..HOSTILE.len()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for m in mutations {
        let len = chars.len().max(1);
        match m {
            Mutation::Delete(i, n) => {
                let at = i.index(len).min(chars.len());
                let end = (at + n).min(chars.len());
                chars.drain(at..end);
            }
            Mutation::Repeat(i, n, k) => {
                let at = i.index(len).min(chars.len());
                let end = (at + n).min(chars.len());
                let piece: Vec<char> = chars[at..end].to_vec();
                for _ in 0..*k {
                    chars.splice(end..end, piece.iter().copied());
                }
            }
            Mutation::Insert(i, t) => {
                let at = i.index(len).min(chars.len());
                chars.splice(at..at, HOSTILE[*t].chars());
            }
            Mutation::Swap(i, j) => {
                if !chars.is_empty() {
                    let (a, b) = (i.index(chars.len()), j.index(chars.len()));
                    chars.swap(a, b);
                }
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_statements_parse_and_plan_or_fail_with_a_position(stmt in statement()) {
        let script = format!("{TABLE}{stmt};");
        prop_assert!(
            parse_sql(&script).is_ok(),
            "a statement of the grammar does not parse: {:?}",
            parse_sql(&script).err().map(|e| e.to_string())
        );
        if let Err(e) = front_end(&script) {
            return Err(TestCaseError::fail(format!("{e}\n--- input ---\n{script}")));
        }
    }

    #[test]
    fn mutated_corpus_scripts_never_crash_the_front_end(
        seed in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let corpus = corpus();
        let text = apply(&corpus[seed.index(corpus.len())], &mutations);
        if let Err(e) = front_end(&text) {
            return Err(TestCaseError::fail(format!("{e}\n--- input ---\n{text}")));
        }
    }
}

#[test]
fn every_corpus_script_goes_through_the_front_end() {
    for (i, text) in corpus().iter().enumerate() {
        front_end(text).unwrap_or_else(|e| panic!("corpus script {i}: {e}"));
    }
}
