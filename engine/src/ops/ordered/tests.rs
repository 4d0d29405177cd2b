//! Tests of Top-N and OVER over updating input: hand-worked changelogs and
//! oracles against a brute-force computation over the live rows, with a
//! restore from a checkpoint in the middle.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, Int8Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use proptest::prelude::*;

use super::{RetractOver, RetractTopN};
use crate::aggregate::AggregateFunction as F;
use crate::error::Result;
use crate::expr::Expr;
use crate::operator::Operator;
use crate::ops::agg::AggregateCall;
use crate::ops::over_agg::{OverAggregateSpec, OverFrame};
use crate::ops::top_n::{RankFunction, TopNSpec};
use crate::testing::OperatorHarness;
use crate::types::{row_kinds, with_row_kind, RowKind};

/// (k, v, name, _row_kind).
fn input() -> SchemaRef {
    with_row_kind(&Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
        Field::new("name", DataType::Utf8, false),
    ]))
}

/// One change: kind, k, v, name.
type Row<'a> = (RowKind, i64, Option<i64>, &'a str);

fn batch(rows: &[Row<'_>]) -> RecordBatch {
    RecordBatch::try_new(
        input(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(Int8Array::from_iter_values(rows.iter().map(|r| r.0 as i8))),
        ],
    )
    .expect("valid batch")
}

const I: RowKind = RowKind::Insert;
const D: RowKind = RowKind::Delete;
const UB: RowKind = RowKind::UpdateBefore;
const UA: RowKind = RowKind::UpdateAfter;

/// "kind name number" per output row: the rank (Top-N) or the aggregate
/// (OVER; `-` for NULL), the column after the input's three.
fn changes(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let kinds = row_kinds(b).expect("kinds");
        let numbers = b.column(3).as_primitive::<Int64Type>();
        for (i, k) in kinds.iter().enumerate() {
            let name = b.column(2).as_string::<i32>().value(i);
            let n = match numbers.is_valid(i) {
                true => numbers.value(i).to_string(),
                false => "-".into(),
            };
            out.push(format!("{} {name} {n}", k.short_string()));
        }
    }
    out
}

/// Applies a changelog to a multiset of "name number" lines; every count
/// must stay 0 or 1... or more for equal rows, never negative.
fn apply(live: &mut BTreeMap<String, i64>, lines: &[String]) {
    for line in lines {
        let (kind, row) = line.split_once(' ').expect("kind");
        let n = live.entry(row.to_string()).or_default();
        *n += if matches!(kind, "+I" | "+U") { 1 } else { -1 };
        assert!(*n >= 0, "retracted a row that was not there: {line}");
    }
    live.retain(|_, n| *n != 0);
}

fn top_spec(limit: usize, function: RankFunction) -> TopNSpec {
    TopNSpec {
        partition_keys: vec![0],
        // v DESC, NULLs last.
        order: vec![(1, true, false)],
        limit,
        rank_column: true,
        rank_name: "rn".into(),
        later_first: false,
        window_end: None,
        function,
    }
}

fn over_spec(n: u64) -> OverAggregateSpec {
    OverAggregateSpec {
        partition_keys: vec![0],
        time_column: 1,
        frame: OverFrame::Rows(n),
        aggregates: vec![AggregateCall::new(F::Sum, vec![Expr::Column(1)], "s")],
        // v ASC, NULLs first.
        order: vec![(1, false, true)],
        lags: Vec::new(),
    }
}

fn top_n(limit: usize, function: RankFunction) -> Box<dyn Operator> {
    Box::new(RetractTopN::new(top_spec(limit, function), &input()).expect("Top-N"))
}

fn over(n: u64) -> Box<dyn Operator> {
    Box::new(RetractOver::new(over_spec(n), &input()).expect("OVER"))
}

#[test]
fn a_retracted_top_row_lets_the_next_one_in() -> Result<()> {
    let mut h = OperatorHarness::new(top_n(2, RankFunction::RowNumber))?;
    h.batch(batch(&[
        (I, 1, Some(5), "a"),
        (I, 1, Some(3), "b"),
        (I, 1, Some(1), "c"),
    ]))?;
    assert_eq!(changes(&h.take_output()), ["+I a 1", "+I b 2"]);
    // a's aggregate drops from 5 to 2: b moves up, c comes in, a is third.
    h.batch(batch(&[(UB, 1, Some(5), "a"), (UA, 1, Some(2), "a")]))?;
    assert_eq!(
        changes(&h.take_output()),
        ["-U a 1", "+U b 1", "-U b 2", "+U c 2", "-U c 2", "+U a 2"]
    );
    // Deleting the first row: every rank moves; a row below the top
    // going away changes nothing; an unknown retraction is ignored.
    h.batch(batch(&[(D, 1, Some(3), "b"), (D, 1, Some(7), "zz")]))?;
    assert_eq!(
        changes(&h.take_output()),
        ["-U b 1", "+U a 1", "-U a 2", "+U c 2"]
    );
    h.batch(batch(&[(D, 1, Some(2), "a"), (D, 1, Some(1), "c")]))?;
    assert_eq!(
        changes(&h.take_output()),
        ["-U a 1", "+U c 1", "-D c 2", "-D c 1"]
    );
    Ok(())
}

#[test]
fn rank_over_updates_keeps_ties_together() -> Result<()> {
    let mut h = OperatorHarness::new(top_n(1, RankFunction::Rank))?;
    h.batch(batch(&[(I, 1, Some(5), "a"), (I, 1, Some(4), "b")]))?;
    assert_eq!(changes(&h.take_output()), ["+I a 1"]);
    // b rises to 5: a tie for rank 1.
    h.batch(batch(&[(UB, 1, Some(4), "b"), (UA, 1, Some(5), "b")]))?;
    assert_eq!(changes(&h.take_output()), ["+I b 1"]);
    h.batch(batch(&[(D, 1, Some(5), "a")]))?;
    assert_eq!(changes(&h.take_output()), ["-D a 1"]);
    Ok(())
}

#[test]
fn over_rows_frames_follow_insertions_and_retractions() -> Result<()> {
    // SUM(v) OVER (PARTITION BY k ORDER BY v ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    let mut h = OperatorHarness::new(over(1))?;
    h.batch(batch(&[
        (I, 1, Some(10), "a"),
        (I, 1, Some(30), "c"),
        (I, 2, Some(7), "x"),
    ]))?;
    assert_eq!(changes(&h.take_output()), ["+I a 10", "+I c 40", "+I x 7"]);
    // 20 goes between 10 and 30: its frame is 10 + 20; c's becomes 20 + 30.
    h.batch(batch(&[(I, 1, Some(20), "b")]))?;
    assert_eq!(changes(&h.take_output()), ["+I b 30", "-U c 40", "+U c 50"]);
    // a goes: b's frame is b alone; c's (b, c) is unchanged.
    h.batch(batch(&[(D, 1, Some(10), "a")]))?;
    assert_eq!(changes(&h.take_output()), ["-D a 10", "-U b 30", "+U b 20"]);
    // A NULL sorts first and adds nothing to a sum.
    h.batch(batch(&[(I, 1, None, "n")]))?;
    assert_eq!(changes(&h.take_output()), ["+I n -"]);
    Ok(())
}

#[test]
fn state_survives_a_restore() -> Result<()> {
    let mut h = OperatorHarness::new(over(1))?;
    h.batch(batch(&[(I, 1, Some(10), "a"), (I, 1, Some(30), "c")]))?;
    h.take_output();
    let snapshot = h.checkpoint(1)?;
    let mut h = OperatorHarness::restored(over(1), &snapshot)?;
    h.batch(batch(&[(D, 1, Some(10), "a")]))?;
    assert_eq!(changes(&h.take_output()), ["-D a 10", "-U c 40", "+U c 30"]);

    let mut h = OperatorHarness::new(top_n(1, RankFunction::RowNumber))?;
    h.batch(batch(&[(I, 1, Some(5), "a"), (I, 1, Some(3), "b")]))?;
    h.take_output();
    let snapshot = h.checkpoint(1)?;
    let mut h = OperatorHarness::restored(top_n(1, RankFunction::RowNumber), &snapshot)?;
    h.batch(batch(&[(D, 1, Some(5), "a")]))?;
    assert_eq!(changes(&h.take_output()), ["-U a 1", "+U b 1"]);
    Ok(())
}

#[test]
fn bad_specs_are_refused() {
    let mut s = over_spec(1);
    s.frame = OverFrame::Range(10);
    let e = RetractOver::new(s, &input()).expect_err("RANGE");
    assert!(e.to_string().contains("ROWS BETWEEN n PRECEDING"), "{e}");
    let e = RetractTopN::new(top_spec(0, RankFunction::RowNumber), &input()).expect_err("N = 0");
    assert!(e.to_string().contains("at least one row"), "{e}");
}

/// The live rows a random changelog leaves: (arrival, k, v, name), and the
/// changes themselves. Retractions take a live row (the first of its
/// equals) or, now and then, one that is not there.
fn changelog(
    ops: &[(u8, i64, Option<i64>, u8)],
) -> (
    Vec<(usize, i64, Option<i64>, String)>,
    Vec<(RowKind, i64, Option<i64>, String)>,
) {
    let mut live: Vec<(usize, i64, Option<i64>, String)> = Vec::new();
    let mut out = Vec::new();
    for (seq, &(op, k, v, name)) in ops.iter().enumerate() {
        let name = format!("r{}", name % 4);
        if op % 3 != 0 || live.is_empty() {
            out.push((if op % 2 == 0 { I } else { UA }, k, v, name.clone()));
            live.push((seq, k, v, name));
        } else if op % 7 == 0 {
            // Not there: ignored.
            out.push((D, k, Some(1000), name));
        } else {
            let pick = &live[usize::from(op) % live.len()];
            let (k, v, name) = (pick.1, pick.2, pick.3.clone());
            // Of equal rows, the first to arrive is the one that goes.
            let first = live
                .iter()
                .position(|r| (r.1, r.2, &r.3) == (k, v, &name))
                .expect("the row itself");
            live.remove(first);
            out.push((if op % 2 == 0 { D } else { UB }, k, v, name));
        }
    }
    (live, out)
}

/// Runs `changes` through `op` in chunks of `split`, checkpointing and
/// restoring before chunk `restore_at`; the output's live multiset.
fn run(
    make: &dyn Fn() -> Box<dyn Operator>,
    input: &[(RowKind, i64, Option<i64>, String)],
    split: usize,
    restore_at: usize,
) -> BTreeMap<String, i64> {
    let mut h = OperatorHarness::new(make()).expect("open");
    let mut live = BTreeMap::new();
    for (c, chunk) in input.chunks(split).enumerate() {
        if c == restore_at {
            let snapshot = h.checkpoint(c as u64 + 1).expect("checkpoint");
            h = OperatorHarness::restored(make(), &snapshot).expect("restore");
        }
        let rows: Vec<Row<'_>> = chunk
            .iter()
            .map(|(kind, k, v, n)| (*kind, *k, *v, n.as_str()))
            .collect();
        h.batch(batch(&rows)).expect("batch");
        apply(&mut live, &changes(&h.take_output()));
    }
    live
}

/// Each partition's live rows in order: `v` by `cmp`, then arrival.
fn sorted_partitions(
    live: &[(usize, i64, Option<i64>, String)],
    descending: bool,
) -> BTreeMap<i64, Vec<(Option<i64>, String)>> {
    let mut parts: BTreeMap<i64, Vec<(usize, Option<i64>, String)>> = BTreeMap::new();
    for (seq, k, v, name) in live {
        parts.entry(*k).or_default().push((*seq, *v, name.clone()));
    }
    parts
        .into_iter()
        .map(|(k, mut rows)| {
            rows.sort_by(|a, b| {
                // Option's order puts NULL first: ascending NULLS FIRST;
                // reversed, descending NULLS LAST.
                let by_v = if descending {
                    b.1.cmp(&a.1)
                } else {
                    a.1.cmp(&b.1)
                };
                by_v.then(a.0.cmp(&b.0))
            });
            (k, rows.into_iter().map(|(_, v, n)| (v, n)).collect())
        })
        .collect()
}

proptest! {
    #[test]
    fn top_n_over_updates_equals_the_top_of_the_live_rows(
        ops in prop::collection::vec((any::<u8>(), 0i64..3, prop::option::of(0i64..5), any::<u8>()), 1..80),
        limit in 1usize..4,
        split in 1usize..9,
        restore_at in 0usize..12,
        function in prop_oneof![Just(RankFunction::RowNumber), Just(RankFunction::Rank), Just(RankFunction::DenseRank)],
    ) {
        let (live, changes) = changelog(&ops);
        let got = run(&|| top_n(limit, function), &changes, split, restore_at);
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for rows in sorted_partitions(&live, true).values() {
            let mut numbers: Vec<usize> = Vec::new();
            let mut dense = 0;
            for (pos, (v, _)) in rows.iter().enumerate() {
                let tie = pos > 0 && rows[pos - 1].0 == *v;
                numbers.push(match function {
                    RankFunction::RowNumber => pos + 1,
                    RankFunction::Rank if tie => numbers[pos - 1],
                    RankFunction::Rank => pos + 1,
                    RankFunction::DenseRank => {
                        if !tie {
                            dense += 1;
                        }
                        dense
                    }
                });
            }
            for ((_, name), n) in rows.iter().zip(numbers) {
                if n <= limit {
                    *want.entry(format!("{name} {n}")).or_default() += 1;
                }
            }
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn over_rows_over_updates_equals_a_brute_force_sum(
        ops in prop::collection::vec((any::<u8>(), 0i64..3, prop::option::of(0i64..5), any::<u8>()), 1..80),
        preceding in 0u64..4,
        split in 1usize..9,
        restore_at in 0usize..12,
    ) {
        let (live, changes) = changelog(&ops);
        let got = run(&|| over(preceding), &changes, split, restore_at);
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for rows in sorted_partitions(&live, false).values() {
            for (pos, (_, name)) in rows.iter().enumerate() {
                let from = pos.saturating_sub(preceding as usize);
                let values: Vec<i64> = rows[from..=pos].iter().filter_map(|r| r.0).collect();
                let sum = match values.is_empty() {
                    true => "-".to_string(),
                    false => values.iter().sum::<i64>().to_string(),
                };
                *want.entry(format!("{name} {sum}")).or_default() += 1;
            }
        }
        prop_assert_eq!(got, want);
    }
}

#[test]
fn without_the_rank_only_rows_entering_and_leaving_change() -> Result<()> {
    let mut spec = top_spec(2, RankFunction::RowNumber);
    spec.rank_column = false;
    let mut h = OperatorHarness::new(Box::new(RetractTopN::new(spec, &input())?))?;
    let lines = |batches: &[RecordBatch]| -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            assert_eq!(b.num_columns(), 4, "k, v, name, _row_kind");
            for (i, k) in row_kinds(b).expect("kinds").iter().enumerate() {
                let name = b.column(2).as_string::<i32>().value(i);
                out.push(format!("{} {name}", k.short_string()));
            }
        }
        out
    };
    h.batch(batch(&[
        (I, 1, Some(5), "a"),
        (I, 1, Some(3), "b"),
        (I, 1, Some(1), "c"),
    ]))?;
    assert_eq!(lines(&h.take_output()), ["+I a", "+I b"]);
    // A new best row: b leaves, nothing is said of a moving to rank 2.
    h.batch(batch(&[(I, 1, Some(9), "d")]))?;
    assert_eq!(lines(&h.take_output()), ["-D b", "+I d"]);
    // d goes: b comes back.
    h.batch(batch(&[(D, 1, Some(9), "d")]))?;
    assert_eq!(lines(&h.take_output()), ["-D d", "+I b"]);
    Ok(())
}
