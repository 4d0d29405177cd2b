//! Property: a window aggregate job over shuffled, late and duplicated input
//! emits exactly what a brute-force simulation computes from the raw rows.
//!
//! The oracle keeps every row (no slices, no accumulators): it assigns a row
//! directly to the windows it belongs to and, at the moment the row
//! arrives, keeps it only for the windows that have not fired yet (for
//! sessions: merges it with the open sessions of its key, or drops it when it
//! would open a session that has already ended). When the watermark passes a
//! window's end it computes the aggregates from the kept rows.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use runnel_engine::graph::{Exchange, JobGraph};
use runnel_engine::runtime::Job;
use runnel_engine::testing::MemorySinkHandle;
use runnel_engine::testing::{ScriptStep, ScriptedSource};
use runnel_engine::window::WindowSpec;

use crate::common::{batch, read_results, window_factory, Row, WindowResult};

/// One step of the input script: rows, then a watermark.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) rows: Vec<Row>,
    pub(crate) watermark: i64,
}

/// The expected window results and the number of rows dropped as late.
pub(crate) fn oracle(spec: WindowSpec, steps: &[Step]) -> (Vec<WindowResult>, u64) {
    let mut out = Vec::new();
    let mut late = 0u64;
    let mut wm = i64::MIN;
    match spec {
        WindowSpec::Session { gap } => {
            // Per key: open sessions as (start, end, rows tagged with their
            // arrival index, so merged sessions keep arrival order).
            type Open = BTreeMap<i64, Vec<(i64, i64, Vec<(usize, Row)>)>>;
            let close = |open: &mut Open, wm: i64, out: &mut Vec<WindowResult>| {
                for (key, sessions) in open.iter_mut() {
                    sessions.retain(|(s, e, rows)| {
                        if e - 1 <= wm {
                            let rows: Vec<Row> = rows.iter().map(|(_, r)| *r).collect();
                            out.push(WindowResult::compute(*key, *s, *e, &rows));
                            false
                        } else {
                            true
                        }
                    });
                }
            };
            let mut open: Open = BTreeMap::new();
            let mut arrival = 0usize;
            for step in steps {
                for &row in &step.rows {
                    arrival += 1;
                    let sessions = open.entry(row.1).or_default();
                    let (mut s, mut e) = (row.0, row.0 + gap);
                    let (touching, rest): (Vec<_>, Vec<_>) = sessions
                        .drain(..)
                        .partition(|(os, oe, _)| *os <= e && *oe >= s);
                    *sessions = rest;
                    if touching.is_empty() && e - 1 <= wm {
                        late += 1; // it would open a session that already ended
                        continue;
                    }
                    let mut rows = vec![(arrival, row)];
                    for (os, oe, orows) in touching {
                        s = s.min(os);
                        e = e.max(oe);
                        rows.extend(orows);
                    }
                    rows.sort_by_key(|(a, _)| *a);
                    sessions.push((s, e, rows));
                }
                if step.watermark > wm {
                    wm = step.watermark;
                    close(&mut open, wm, &mut out);
                }
            }
            close(&mut open, i64::MAX, &mut out);
        }
        _ => {
            // (key, start, end) -> rows kept, and whether it fired.
            let mut windows: BTreeMap<(i64, i64, i64), Vec<Row>> = BTreeMap::new();
            let fire = |windows: &mut BTreeMap<(i64, i64, i64), Vec<Row>>,
                        wm: i64,
                        out: &mut Vec<WindowResult>| {
                windows.retain(|&(k, s, e), rows| {
                    if e - 1 <= wm {
                        out.push(WindowResult::compute(k, s, e, rows));
                        false
                    } else {
                        true
                    }
                });
            };
            for step in steps {
                for &row in &step.rows {
                    let open: Vec<(i64, i64)> = spec
                        .windows_of(row.0)
                        .into_iter()
                        .filter(|w| w.1 - 1 > wm)
                        .collect();
                    if open.is_empty() {
                        late += 1;
                    }
                    for (s, e) in open {
                        windows.entry((row.1, s, e)).or_default().push(row);
                    }
                }
                if step.watermark > wm {
                    wm = step.watermark;
                    fire(&mut windows, wm, &mut out);
                }
            }
            fire(&mut windows, i64::MAX, &mut out);
        }
    }
    out.sort();
    (out, late)
}

/// Runs the same input through a job: one scripted source, a hash exchange
/// on the key, the window operator at `parallelism`, one sink.
fn run_job(spec: WindowSpec, steps: &[Step], parallelism: usize) -> (Vec<WindowResult>, u64) {
    let script: Vec<ScriptStep> = steps
        .iter()
        .flat_map(|s| {
            [
                ScriptStep::Batch(0, batch(&s.rows)),
                ScriptStep::Watermark(s.watermark),
            ]
        })
        .collect();
    let out = MemorySinkHandle::new();
    let mut g = JobGraph::new();
    let src = g.add_source("script", 1, ScriptedSource::factory(vec![script]), None);
    let factory = window_factory(spec);
    let agg = g.add_operator("window", parallelism, factory);
    let sink = g.add_operator("sink", 1, out.factory());
    g.connect(src, agg, Exchange::Hash(vec![1])).expect("edge");
    g.connect(agg, sink, Exchange::RoundRobin).expect("edge");
    let job = Job::start(g).expect("job starts");
    let metrics = job.metrics().to_vec();
    job.wait().expect("job runs");
    let late = metrics
        .iter()
        .map(|m| m.metrics.late_rows_dropped.load(Ordering::Relaxed))
        .sum();
    (read_results(&out.batches()), late)
}

pub(crate) fn window_spec() -> impl Strategy<Value = WindowSpec> {
    prop_oneof![
        (1i64..40).prop_map(|size| WindowSpec::Tumble { size }),
        (1i64..15, 1i64..5).prop_map(|(slide, n)| WindowSpec::Hop {
            slide,
            size: slide * n
        }),
        (1i64..15, 1i64..5).prop_map(|(step, n)| WindowSpec::Cumulate {
            step,
            size: step * n
        }),
        (1i64..25).prop_map(|gap| WindowSpec::Session { gap }),
    ]
}

/// Rows roughly in time order, then disturbed: local shuffles, rows moved
/// far back (late), and duplicates. Watermarks trail the newest row by a
/// random delay, so some rows are late and some are not.
pub(crate) fn input() -> impl Strategy<Value = Vec<Step>> {
    let row = (0i64..300, 0i64..6, prop::option::weighted(0.85, -50i64..50));
    (
        prop::collection::vec(row, 1..120),
        prop::collection::vec((0usize..6, 0i64..40, 0u8..10), 1..120),
    )
        .prop_map(|(mut rows, noise)| {
            rows.sort_by_key(|r| r.0);
            // Disturb: swap neighbours, move some rows much earlier in time
            // (they become late), and duplicate some.
            let mut disturbed: Vec<Row> = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                let (shift, back, kind) = noise[i % noise.len()];
                match kind {
                    0 => disturbed.push((r.0 - back * 3, r.1, r.2)),
                    1 => {
                        disturbed.push(*r);
                        disturbed.push(*r);
                    }
                    _ => disturbed.push(*r),
                }
                if shift > 0 && disturbed.len() > shift {
                    let n = disturbed.len();
                    disturbed.swap(n - 1, n - 1 - shift.min(n - 1));
                }
            }
            // Cut into batches of 1 to 8 rows, each followed by a watermark.
            let mut steps = Vec::new();
            let mut newest = i64::MIN;
            let mut i = 0;
            let mut k = 0;
            while i < disturbed.len() {
                let (len, delay, _) = noise[k % noise.len()];
                k += 1;
                let end = (i + len + 1).min(disturbed.len()).min(i + 8);
                let rows: Vec<Row> = disturbed[i..end].to_vec();
                newest = newest.max(rows.iter().map(|r| r.0).max().unwrap_or(i64::MIN));
                steps.push(Step {
                    rows,
                    watermark: newest - delay,
                });
                i = end;
            }
            steps
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn window_aggregate_matches_brute_force(spec in window_spec(), steps in input()) {
        let (expected, expected_late) = oracle(spec, &steps);
        for parallelism in [1, 4] {
            let (got, late) = run_job(spec, &steps, parallelism);
            prop_assert_eq!(late, expected_late, "late rows, {:?} at parallelism {}", spec, parallelism);
            let diff = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i));
            prop_assert!(
                diff.is_none(),
                "{:?} at parallelism {}: first difference at row {:?}: got {:?}, expected {:?} ({} vs {} rows)",
                spec, parallelism, diff, diff.and_then(|i| got.get(i)), diff.and_then(|i| expected.get(i)),
                got.len(), expected.len()
            );
        }
    }
}
