//! Unit tests of the aggregate operators, each against hand-computed results.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{
    Array, Int64Array, Int8Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::aggregate::AggregateFunction as F;
use crate::error::Result;
use crate::expr::Expr;
use crate::ops::{
    AggregateCall, GroupAggregate, GroupAggregateSpec, SessionAggregate, SessionAggregateSpec,
};
use crate::ops::{WindowAggregate, WindowAggregateSpec};
use crate::testing::OperatorHarness;
use crate::window::WindowSpec;

/// (ts, k, v), the input of the aggregate tests.
pub(super) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

pub(super) fn batch(rows: &[(i64, &str, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("valid batch")
}

fn calls() -> Vec<AggregateCall> {
    vec![
        AggregateCall::new(F::Count, vec![], "cnt"),
        AggregateCall::new(F::Sum, vec![Expr::Column(2)], "total"),
    ]
}

/// (key, window_start, window_end, count, sum) of window outputs, sorted.
fn window_rows(batches: &[RecordBatch]) -> Vec<(String, i64, i64, i64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let k = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("k");
        let s = b
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("start");
        let e = b
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("end");
        let c = b
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cnt");
        let t = b
            .column(4)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("sum");
        for i in 0..b.num_rows() {
            out.push((
                k.value(i).to_string(),
                s.value(i),
                e.value(i),
                c.value(i),
                t.value(i),
            ));
        }
    }
    out.sort();
    out
}

fn window_op(window: WindowSpec) -> Result<Box<WindowAggregate>> {
    window_op_with(window, calls())
}

fn window_op_with(
    window: WindowSpec,
    aggregates: Vec<AggregateCall>,
) -> Result<Box<WindowAggregate>> {
    let spec = WindowAggregateSpec {
        window,
        time_column: 0,
        key_columns: vec![1],
        aggregates,
        offset: 0,
        allowed_lateness: 0,
    };
    Ok(Box::new(WindowAggregate::new(spec, &schema())?))
}

/// FIRST_VALUE and LAST_VALUE of `v`: both BIGINT, like COUNT and SUM, so
/// [`window_rows`] reads them too; their results depend on arrival order.
fn first_last() -> Vec<AggregateCall> {
    vec![
        AggregateCall::new(F::FirstValue, vec![Expr::Column(2)], "first_v"),
        AggregateCall::new(F::LastValue, vec![Expr::Column(2)], "last_v"),
    ]
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn tumble_emits_each_window_once_and_drops_late_rows() -> Result<()> {
    let mut h = OperatorHarness::new(window_op(WindowSpec::Tumble { size: 10 })?)?;
    h.batch(batch(&[
        (1, "a", 1),
        (9, "a", 2),
        (10, "a", 4),
        (3, "b", 8),
    ]))?;
    h.watermark(8)?;
    assert!(
        h.take_output().is_empty(),
        "window [0,10) must wait for watermark 9"
    );
    h.watermark(9)?;
    assert_eq!(
        window_rows(&h.take_output()),
        vec![(s("a"), 0, 10, 2, 3), (s("b"), 0, 10, 1, 8)]
    );
    // Late for [0,10); on time for [10,20).
    h.batch(batch(&[(5, "a", 100), (15, "a", 16)]))?;
    assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
    h.watermark(100)?;
    assert_eq!(window_rows(&h.take_output()), vec![(s("a"), 10, 20, 2, 20)]);
    h.watermark(200)?;
    assert!(h.take_output().is_empty(), "windows fire only once");
    Ok(())
}

/// Rows with their kind: (kind, key, start, end, count, sum).
fn kinded_window_rows(batches: &[RecordBatch]) -> Vec<(String, String, i64, i64, i64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let kinds = crate::types::row_kinds(b).expect("a row kind column");
        let rows = window_rows(std::slice::from_ref(b));
        // window_rows sorts; one key per batch row keeps them apart here.
        assert!(b.num_rows() <= 1 || rows.windows(2).all(|w| w[0].0 != w[1].0));
        let keys = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("keys");
        for (i, kind) in kinds.iter().enumerate() {
            let r = rows
                .iter()
                .find(|r| r.0 == keys.value(i))
                .expect("the row")
                .clone();
            out.push((format!("{kind:?}"), r.0, r.1, r.2, r.3, r.4));
        }
    }
    out.sort();
    out
}

#[test]
fn allowed_lateness_corrects_a_fired_window_across_a_restore() -> Result<()> {
    let op = || -> Result<Box<WindowAggregate>> {
        let spec = WindowAggregateSpec {
            window: WindowSpec::Tumble { size: 10 },
            time_column: 0,
            key_columns: vec![1],
            aggregates: calls(),
            offset: 0,
            allowed_lateness: 20,
        };
        Ok(Box::new(WindowAggregate::new(spec, &schema())?))
    };
    let mut h = OperatorHarness::new(op()?)?;
    h.batch(batch(&[(1, "a", 1), (3, "b", 8)]))?;
    h.watermark(9)?;
    assert_eq!(
        kinded_window_rows(&h.take_output()),
        vec![
            (s("Insert"), s("a"), 0, 10, 1, 1),
            (s("Insert"), s("b"), 0, 10, 1, 8)
        ]
    );
    let snapshot = h.checkpoint(1)?;
    let mut h = OperatorHarness::restored(op()?, &snapshot)?;
    // Within the 20 ms: a's result changes, c is new to the window.
    h.batch(batch(&[(5, "a", 100), (6, "c", 7)]))?;
    assert_eq!(
        kinded_window_rows(&h.take_output()),
        vec![
            (s("Insert"), s("c"), 0, 10, 1, 7),
            (s("UpdateAfter"), s("a"), 0, 10, 2, 101),
            (s("UpdateBefore"), s("a"), 0, 10, 1, 1),
        ]
    );
    assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(
        h.state_entries(),
        3,
        "the fired window's groups a and b, kept, and the meta entry"
    );
    // At 29 the window [0,10) is closed for good: its state goes, the
    // next row for it is late.
    h.watermark(29)?;
    assert!(h.take_output().is_empty(), "a window fires once");
    h.batch(batch(&[(2, "a", 5)]))?;
    assert!(h.take_output().is_empty());
    assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
    assert_eq!(h.state_entries(), 1, "only the meta entry is left");
    Ok(())
}

#[test]
fn hop_counts_a_partly_late_row_in_the_windows_still_open() -> Result<()> {
    // size 15, slide 5: ts 7 belongs to [-5,10), [0,15), [5,20).
    let mut h = OperatorHarness::new(window_op(WindowSpec::Hop { slide: 5, size: 15 })?)?;
    h.batch(batch(&[(1, "a", 1)]))?;
    h.watermark(9)?;
    assert_eq!(
        window_rows(&h.take_output()),
        vec![(s("a"), -10, 5, 1, 1), (s("a"), -5, 10, 1, 1)]
    );
    h.batch(batch(&[(7, "a", 10)]))?;
    assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 0);
    h.watermark(1_000)?;
    assert_eq!(
        window_rows(&h.take_output()),
        vec![(s("a"), 0, 15, 2, 11), (s("a"), 5, 20, 1, 10)]
    );
    Ok(())
}

#[test]
fn cumulate_windows_grow_by_step() -> Result<()> {
    let mut h = OperatorHarness::new(window_op(WindowSpec::Cumulate { step: 5, size: 15 })?)?;
    h.batch(batch(&[
        (1, "a", 1),
        (6, "a", 2),
        (12, "a", 4),
        (16, "a", 8),
    ]))?;
    h.watermark(1_000)?;
    assert_eq!(
        window_rows(&h.take_output()),
        vec![
            (s("a"), 0, 5, 1, 1),
            (s("a"), 0, 10, 2, 3),
            (s("a"), 0, 15, 3, 7),
            (s("a"), 15, 20, 1, 8),
            (s("a"), 15, 25, 1, 8),
            (s("a"), 15, 30, 1, 8)
        ]
    );
    Ok(())
}

#[test]
fn window_state_survives_a_checkpoint_and_restore() -> Result<()> {
    let spec = WindowSpec::Hop { slide: 5, size: 15 };
    let first = [(1, "a", 1), (6, "b", 2), (7, "a", 3)];
    let second = [(12, "a", 4), (13, "b", 5), (21, "a", 6)];
    let mut whole = OperatorHarness::new(window_op(spec)?)?;
    whole.batch(batch(&first))?;
    whole.watermark(5)?;
    whole.batch(batch(&second))?;
    whole.watermark(1_000)?;
    let mut expected = window_rows(&whole.take_output());

    let mut a = OperatorHarness::new(window_op(spec)?)?;
    a.batch(batch(&first))?;
    a.watermark(5)?;
    let before_restore = window_rows(&a.take_output());
    let snapshot = a.checkpoint(1)?;
    drop(a);
    let mut b = OperatorHarness::restored(window_op(spec)?, &snapshot)?;
    b.batch(batch(&second))?;
    b.watermark(1_000)?;
    let mut got = before_restore;
    got.extend(window_rows(&b.take_output()));
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert!(!expected.is_empty());
    Ok(())
}

fn session_op(gap: i64) -> Result<Box<SessionAggregate>> {
    let spec = SessionAggregateSpec {
        gap,
        time_column: 0,
        key_columns: vec![1],
        aggregates: calls(),
        late_rows: false,
        allowed_lateness: 0,
    };
    Ok(Box::new(SessionAggregate::new(spec, &schema())?))
}

#[test]
fn sessions_merge_when_a_row_bridges_them() -> Result<()> {
    let mut h = OperatorHarness::new(session_op(3)?)?;
    h.batch(batch(&[(0, "a", 1), (5, "a", 2), (0, "b", 7)]))?;
    // [0,3) and [5,8) for a; row 3 opens [3,6), touching both.
    h.batch(batch(&[(3, "a", 4)]))?;
    h.watermark(6)?;
    assert_eq!(window_rows(&h.take_output()), vec![(s("b"), 0, 3, 1, 7)]);
    h.watermark(7)?;
    assert_eq!(window_rows(&h.take_output()), vec![(s("a"), 0, 8, 3, 7)]);
    // A late row that starts a new, already closed session is dropped.
    h.batch(batch(&[(1, "a", 50)]))?;
    assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
    // Within one batch: [20,23) stays apart from [25,28) (no touch), and
    // 27's window [27,30) bridges [25,28) and [30,33).
    h.batch(batch(&[
        (20, "a", 1),
        (30, "a", 2),
        (25, "a", 4),
        (27, "a", 8),
    ]))?;
    h.watermark(100)?;
    assert_eq!(
        window_rows(&h.take_output()),
        vec![(s("a"), 20, 23, 1, 1), (s("a"), 25, 33, 3, 14)]
    );
    Ok(())
}

#[test]
fn session_state_survives_a_checkpoint_and_restore() -> Result<()> {
    let mut a = OperatorHarness::new(session_op(10)?)?;
    a.batch(batch(&[(0, "a", 1), (100, "b", 2)]))?;
    let snap = a.checkpoint(1)?;
    let mut b = OperatorHarness::restored(session_op(10)?, &snap)?;
    b.batch(batch(&[(5, "a", 10), (50, "a", 20)]))?;
    b.watermark(1_000)?;
    assert_eq!(
        window_rows(&b.take_output()),
        vec![
            (s("a"), 0, 15, 2, 11),
            (s("a"), 50, 60, 1, 20),
            (s("b"), 100, 110, 1, 2)
        ]
    );
    Ok(())
}

fn group_op() -> Result<Box<GroupAggregate>> {
    let spec = GroupAggregateSpec {
        key_columns: vec![1],
        aggregates: vec![
            AggregateCall::new(F::Count, vec![], "cnt"),
            AggregateCall::new(F::Avg, vec![Expr::Column(2)], "avg_v"),
        ],
        ttl: None,
        clock: Default::default(),
    };
    Ok(Box::new(GroupAggregate::new(spec, &schema())?))
}

/// (row kind, key, count, avg) of changelog output, in emission order.
fn changelog(batches: &[RecordBatch]) -> Vec<(i8, String, i64, f64)> {
    let mut out = Vec::new();
    for b in batches {
        let k = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("k");
        let c = b
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cnt");
        // AVG of BIGINT is a BIGINT, as in Flink.
        let a = b
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("avg");
        let kind = b
            .column(3)
            .as_any()
            .downcast_ref::<Int8Array>()
            .expect("kind");
        for i in 0..b.num_rows() {
            out.push((
                kind.value(i),
                k.value(i).to_string(),
                c.value(i),
                a.value(i) as f64,
            ));
        }
    }
    out
}

#[test]
fn group_aggregate_emits_insert_then_retract_and_update() -> Result<()> {
    let mut h = OperatorHarness::new(group_op()?)?;
    h.batch(batch(&[(0, "a", 2), (0, "b", 5), (0, "a", 4)]))?;
    assert_eq!(
        changelog(&h.take_output()),
        vec![(0, s("a"), 2, 3.0), (0, s("b"), 1, 5.0)]
    );
    h.batch(batch(&[(0, "a", 9), (0, "c", 1)]))?;
    assert_eq!(
        changelog(&h.take_output()),
        vec![
            (1, s("a"), 2, 3.0),
            (2, s("a"), 3, 5.0),
            (0, s("c"), 1, 1.0)
        ]
    );
    let snap = h.checkpoint(1)?;
    let mut r = OperatorHarness::restored(group_op()?, &snap)?;
    r.batch(batch(&[(0, "b", 7)]))?;
    assert_eq!(
        changelog(&r.take_output()),
        vec![(1, s("b"), 1, 5.0), (2, s("b"), 2, 6.0)]
    );
    Ok(())
}

#[test]
fn null_keys_group_together_and_null_times_are_dropped() -> Result<()> {
    let b = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1),
                Some(2),
                None,
            ])),
            Arc::new(StringArray::from(vec![None, None, Some("x")])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ],
    )?;
    let mut h = OperatorHarness::new(window_op(WindowSpec::Tumble { size: 10 })?)?;
    h.batch(b)?;
    h.watermark(100)?;
    let out = h.take_output();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].num_rows(), 1);
    assert!(out[0].column(0).is_null(0));
    let cnt = out[0]
        .column(3)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("cnt");
    let sum = out[0]
        .column(4)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("sum");
    assert_eq!(
        (cnt.value(0), sum.value(0)),
        (2, 1),
        "COUNT(*) counts the NULL value, SUM skips it"
    );
    assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
    Ok(())
}

#[test]
fn plan_errors_are_clear() {
    let bad = WindowAggregateSpec {
        window: WindowSpec::Hop { slide: 7, size: 10 },
        time_column: 0,
        key_columns: vec![1],
        aggregates: calls(),
        offset: 0,
        allowed_lateness: 0,
    };
    let err = WindowAggregate::new(bad, &schema())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("whole multiple"), "{err}");
    let bad = WindowAggregateSpec {
        window: WindowSpec::Tumble { size: 10 },
        time_column: 0,
        key_columns: vec![1],
        aggregates: vec![AggregateCall::new(F::Sum, vec![Expr::Column(1)], "s")],
        offset: 0,
        allowed_lateness: 0,
    };
    let err = WindowAggregate::new(bad, &schema())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("SUM"), "{err}");
}

/// Rows over `keys` keys spread over event times 0..`span`, mostly in time
/// order with some disorder, in batches of 9.
fn spread_rows(n: usize, keys: usize, span: i64) -> Vec<Vec<(i64, String, i64)>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rows: Vec<(i64, String, i64)> = (0..n)
        .map(|i| {
            let base = i as i64 * span / n as i64;
            let ts = (base - (next() % 6) as i64).max(0);
            let key = format!("k{}", next() % keys as u64);
            (ts, key, (next() % 100) as i64)
        })
        .collect();
    rows.chunks(9).map(<[_]>::to_vec).collect()
}

fn as_refs(rows: &[(i64, String, i64)]) -> Vec<(i64, &str, i64)> {
    rows.iter().map(|(t, k, v)| (*t, k.as_str(), *v)).collect()
}

/// Runs a window aggregate over `batches` with a watermark 8 behind the
/// largest time after every third batch. `budget` is the memory budget;
/// every `barrier_every` batches (0: never) a checkpoint is taken, and when
/// `restore` is set the operator is rebuilt from it. Returns the windows
/// and whether the backend held entries before the first checkpoint.
fn run_windows(
    spec: WindowSpec,
    aggregates: fn() -> Vec<AggregateCall>,
    batches: &[Vec<(i64, String, i64)>],
    budget: Option<usize>,
    barrier_every: usize,
    restore: bool,
) -> Result<(Vec<(String, i64, i64, i64, i64)>, bool)> {
    let mut h = OperatorHarness::new(window_op_with(spec, aggregates())?)?;
    h.set_memory_budget(budget);
    let mut out = Vec::new();
    let mut max_ts = 0;
    let mut spilled_early = false;
    for (i, b) in batches.iter().enumerate() {
        h.batch(batch(&as_refs(b)))?;
        max_ts = b.iter().map(|r| r.0).max().unwrap_or(0).max(max_ts);
        if i % 3 == 2 {
            h.watermark(max_ts - 8)?;
        }
        if barrier_every > 0 && i % barrier_every == barrier_every - 1 {
            let snapshot = h.checkpoint(i as u64 + 1)?;
            if restore {
                out.extend(h.take_output());
                h = OperatorHarness::restored(window_op_with(spec, aggregates())?, &snapshot)?;
                h.set_memory_budget(budget);
            }
        } else if i < barrier_every || barrier_every == 0 {
            spilled_early |= h.state_entries() > 0;
        }
    }
    h.watermark(max_ts + 1_000)?;
    out.extend(h.take_output());
    // Every window has fired: only the bookkeeping entry may remain.
    h.checkpoint(u64::MAX)?;
    assert!(
        h.state_entries() <= 1,
        "{spec:?}: {} entries left",
        h.state_entries()
    );
    Ok((window_rows(&out), spilled_early))
}

#[test]
fn windows_are_the_same_with_spills_flushes_and_restores() -> Result<()> {
    let batches = spread_rows(600, 40, 120);
    let specs = [
        WindowSpec::Tumble { size: 10 },
        WindowSpec::Hop { slide: 5, size: 15 },
        WindowSpec::Cumulate { step: 5, size: 20 },
    ];
    let aggregates: [fn() -> Vec<AggregateCall>; 2] = [calls, first_last];
    for (spec, aggs) in specs
        .iter()
        .flat_map(|s| aggregates.iter().map(move |a| (*s, *a)))
    {
        let (plain, spilled) = run_windows(spec, aggs, &batches, None, 0, false)?;
        assert!(!spilled, "no budget, no checkpoint: state stays in memory");
        assert!(plain.len() > 100, "{spec:?}: {} windows", plain.len());
        // A budget of one byte spills after every batch.
        let (tiny, spilled) = run_windows(spec, aggs, &batches, Some(1), 0, false)?;
        assert!(spilled, "{spec:?}: a one-byte budget spills");
        assert_eq!(tiny, plain, "{spec:?} with spills");
        let (flushed, _) = run_windows(spec, aggs, &batches, None, 4, false)?;
        assert_eq!(flushed, plain, "{spec:?} with checkpoints");
        let (both, _) = run_windows(spec, aggs, &batches, Some(300), 5, true)?;
        assert_eq!(
            both, plain,
            "{spec:?} with spills, checkpoints and restores"
        );
    }
    Ok(())
}

#[test]
fn group_aggregate_changelog_is_the_same_when_its_cache_is_evicted() -> Result<()> {
    let batches = spread_rows(500, 30, 10);
    let run =
        |budget: Option<usize>, restore_every: usize| -> Result<Vec<(i8, String, i64, f64)>> {
            let mut h = OperatorHarness::new(group_op()?)?;
            h.set_memory_budget(budget);
            let mut out = Vec::new();
            for (i, b) in batches.iter().enumerate() {
                h.batch(batch(&as_refs(b)))?;
                if restore_every > 0 && i % restore_every == restore_every - 1 {
                    let snapshot = h.checkpoint(i as u64 + 1)?;
                    out.extend(h.take_output());
                    h = OperatorHarness::restored(group_op()?, &snapshot)?;
                    h.set_memory_budget(budget);
                }
            }
            out.extend(h.take_output());
            Ok(changelog(&out))
        };
    let plain = run(None, 0)?;
    // Every key's first row is an insert, its later rows retract and update.
    assert_eq!(plain.iter().filter(|r| r.0 == 0).count(), 30);
    let retractions = plain.iter().filter(|r| r.0 == 1).count();
    assert!(retractions > 100);
    assert_eq!(plain.iter().filter(|r| r.0 == 2).count(), retractions);
    assert_eq!(run(Some(1), 0)?, plain, "evicted after every batch");
    assert_eq!(run(Some(500), 7)?, plain, "evictions and restores");
    assert_eq!(run(None, 3)?, plain, "restores only");
    Ok(())
}

#[test]
fn group_aggregate_evicts_cold_groups_first_and_keeps_the_hot_ones() -> Result<()> {
    // Ten hot keys in every batch, plus 100 cold keys each seen once.
    let row = |k: &str, v: i64| (v, k.to_string(), v);
    let batches: Vec<Vec<(i64, String, i64)>> = (0..100)
        .map(|i| {
            let mut b: Vec<_> = (0..10).map(|h| row(&format!("hot{h}"), i)).collect();
            b.push(row(&format!("cold{i}"), i));
            b
        })
        .collect();
    let run = |budget: Option<usize>| -> Result<(Vec<(i8, String, i64, f64)>, u64, usize)> {
        let mut h = OperatorHarness::new(group_op()?)?;
        h.set_memory_budget(budget);
        for b in &batches {
            h.batch(batch(&as_refs(b)))?;
        }
        let spills = h
            .metrics()
            .state_spills
            .load(std::sync::atomic::Ordering::Relaxed);
        let entries = h.state_entries();
        Ok((changelog(&h.take_output()), spills, entries))
    };
    let (plain, no_spills, _) = run(None)?;
    assert_eq!(no_spills, 0);
    // A budget below the ten hot groups alone: the cold ones are written
    // out, the hot ones stay, and evictions do not run at every batch.
    let (tight, spills, written) = run(Some(1))?;
    assert_eq!(tight, plain);
    assert!(spills >= 1, "never evicted");
    assert!(spills < 50, "evicted at {spills} of 100 batches");
    // The cold groups were written (with the meta entry), except those of
    // the latest batches; the hot ones never left memory.
    assert!(written >= 50, "only {written} entries written");
    Ok(())
}
