//! A proptest oracle for changelog semantics through SQL: random inserts,
//! updates and deletes of two tables, written as Debezium JSON files, are
//! joined (INNER, LEFT, RIGHT, FULL) and aggregated over a join, at
//! parallelism 1 and 4. The rows each query's changelog leaves must equal
//! a computation here over the two tables' final contents. (Restores from
//! checkpoints are covered by the operator-level oracles in
//! `engine/src/ops/changelog_join.rs` and `retract_agg.rs`.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use runnel_sql::session::Session;

use crate::sql_harness::{execute, materialize};

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
    let mut tables: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
    let mut lines: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut next_id = 1;
    for c in changes {
        match *c {
            Change::Insert(s, k, v) => {
                let row = (next_id, k, v);
                next_id += 1;
                lines[s].push(format!(
                    r#"{{"before":null,"after":{},"op":"c"}}"#,
                    json(&row)
                ));
                tables[s].push(row);
            }
            Change::Update(s, n, k, v) if !tables[s].is_empty() => {
                let i = n % tables[s].len();
                let before = tables[s][i];
                let after = (before.0, k, v);
                lines[s].push(format!(
                    r#"{{"before":{},"after":{},"op":"u"}}"#,
                    json(&before),
                    json(&after)
                ));
                tables[s][i] = after;
            }
            Change::Delete(s, n) if !tables[s].is_empty() => {
                let i = n % tables[s].len();
                let row = tables[s].remove(i);
                lines[s].push(format!(
                    r#"{{"before":{},"after":null,"op":"d"}}"#,
                    json(&row)
                ));
            }
            _ => {}
        }
    }
    (tables, lines)
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
