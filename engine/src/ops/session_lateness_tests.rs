//! Allowed lateness of SESSION windows: corrections of fired sessions,
//! hand-worked.

use std::sync::atomic::Ordering;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};

use crate::aggregate::AggregateFunction as F;
use crate::error::Result;
use crate::expr::Expr;
use crate::ops::tests::{batch, schema};
use crate::ops::{AggregateCall, SessionAggregate, SessionAggregateSpec};
use crate::testing::OperatorHarness;
use crate::types::row_kinds;

/// gap 10 ms; COUNT(*) and SUM(v) per key k.
fn op(lateness: i64) -> Box<SessionAggregate> {
    let spec = SessionAggregateSpec {
        gap: 10,
        time_column: 0,
        key_columns: vec![1],
        aggregates: vec![
            AggregateCall::new(F::Count, vec![], "n"),
            AggregateCall::new(F::Sum, vec![Expr::Column(2)], "total"),
        ],
        late_rows: false,
        allowed_lateness: lateness,
    };
    Box::new(SessionAggregate::new(spec, &schema()).expect("operator"))
}

/// "kind key [start,end) count sum" per output row, in output order.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let kinds = row_kinds(b).expect("updating output");
        for (i, kind) in kinds.iter().enumerate() {
            out.push(format!(
                "{} {} [{},{}) {} {}",
                kind.short_string(),
                b.column(0).as_string::<i32>().value(i),
                b.column(1)
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i),
                b.column(2)
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i),
                b.column(3).as_primitive::<Int64Type>().value(i),
                b.column(4).as_primitive::<Int64Type>().value(i),
            ));
        }
    }
    out
}

#[test]
fn a_late_row_corrects_a_fired_session_until_the_lateness_passes() -> Result<()> {
    let mut h = OperatorHarness::new(op(20))?;
    h.batch(batch(&[(0, "a", 1)]))?;
    h.watermark(15)?;
    assert_eq!(rows(&h.take_output()), ["+I a [0,10) 1 1"]);
    // 5 extends the session to [0,15): its bounds change, so the old row
    // is deleted and the new one inserted at once (it has ended too).
    h.batch(batch(&[(5, "a", 2)]))?;
    assert_eq!(
        rows(&h.take_output()),
        ["-D a [0,10) 1 1", "+I a [0,15) 2 3"]
    );
    // 2 falls inside: same bounds, an update.
    h.batch(batch(&[(2, "a", 4)]))?;
    assert_eq!(
        rows(&h.take_output()),
        ["-U a [0,15) 2 3", "+U a [0,15) 3 7"]
    );
    // A new session that ended within the lateness comes out at once.
    h.batch(batch(&[(1, "b", 8)]))?;
    assert_eq!(rows(&h.take_output()), ["+I b [1,11) 1 8"]);
    // At 34 = 14 + 20 session a is dropped: a row reaching it is late.
    h.watermark(34)?;
    h.batch(batch(&[(3, "a", 16)]))?;
    assert!(h.take_output().is_empty());
    assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
    Ok(())
}

#[test]
fn a_late_row_that_bridges_a_fired_and_an_open_session_reopens_it() -> Result<()> {
    let mut h = OperatorHarness::new(op(100))?;
    h.batch(batch(&[(0, "a", 1), (20, "a", 2)]))?;
    h.watermark(15)?;
    assert_eq!(rows(&h.take_output()), ["+I a [0,10) 1 1"]);
    // 10 touches [0,10) and [20,30): one session [0,30), open until 29.
    h.batch(batch(&[(10, "a", 4)]))?;
    assert_eq!(rows(&h.take_output()), ["-D a [0,10) 1 1"]);
    h.watermark(29)?;
    assert_eq!(rows(&h.take_output()), ["+I a [0,30) 3 7"]);
    Ok(())
}

#[test]
fn fired_sessions_are_corrected_after_a_restore() -> Result<()> {
    let mut h = OperatorHarness::new(op(50))?;
    h.batch(batch(&[(0, "a", 1), (40, "a", 2)]))?;
    h.watermark(20)?;
    assert_eq!(rows(&h.take_output()), ["+I a [0,10) 1 1"]);
    let snapshot = h.checkpoint(1)?;
    let mut h = OperatorHarness::restored(op(50), &snapshot)?;
    // The fired session is known to have fired; the open one fires later.
    h.batch(batch(&[(3, "a", 10)]))?;
    assert_eq!(
        rows(&h.take_output()),
        ["-D a [0,10) 1 1", "+I a [0,13) 2 11"]
    );
    h.watermark(60)?;
    assert_eq!(rows(&h.take_output()), ["+I a [40,50) 1 2"]);
    Ok(())
}

#[test]
fn without_lateness_the_output_is_append_only() -> Result<()> {
    let op = op(0);
    assert!(!crate::types::is_updating(&op.schema()));
    let mut h = OperatorHarness::new(op)?;
    h.batch(batch(&[(0, "a", 1)]))?;
    h.watermark(15)?;
    h.batch(batch(&[(5, "a", 2)]))?;
    let out = h.take_output();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert_eq!(h.metrics().late_rows_dropped.load(Ordering::Relaxed), 1);
    Ok(())
}
