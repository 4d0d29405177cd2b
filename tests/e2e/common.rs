//! Shared helpers: the test schema, batches, and reading results back.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use runnel_engine::aggregate::AggregateFunction as F;
use runnel_engine::expr::{BinaryOp, Expr, ScalarValue};
use runnel_engine::operator::OperatorFactory;
use runnel_engine::ops::{AggregateCall, SessionAggregateSpec, WindowAggregateSpec};
use runnel_engine::window::WindowSpec;

/// `(ts, key, value)` rows; `value` may be NULL.
pub type Row = (i64, i64, Option<i64>);

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
    ]))
}

pub fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("test batch matches its schema")
}

/// The aggregates every window test computes, in output order.
pub fn all_aggregates() -> Vec<AggregateCall> {
    let v = || Expr::Column(2);
    let positive = Expr::Binary {
        op: BinaryOp::Gt,
        left: Box::new(v()),
        right: Box::new(Expr::Literal(ScalarValue::Int64(0))),
    };
    vec![
        AggregateCall::new(F::Count, vec![], "cnt_all"),
        AggregateCall::new(F::Count, vec![v()], "cnt_v"),
        AggregateCall::new(F::Sum, vec![v()], "sum_v"),
        AggregateCall::new(F::Min, vec![v()], "min_v"),
        AggregateCall::new(F::Max, vec![v()], "max_v"),
        AggregateCall::new(F::Avg, vec![v()], "avg_v"),
        AggregateCall::new(F::FirstValue, vec![v()], "first_v"),
        AggregateCall::new(F::LastValue, vec![v()], "last_v"),
        AggregateCall::new(F::CountDistinct, vec![v()], "distinct_v"),
        AggregateCall::new(F::StddevSamp, vec![v()], "stddev_v"),
        AggregateCall::new(F::VarPop, vec![v()], "var_pop_v"),
        AggregateCall::new(F::Sum, vec![v()], "sum_pos").with_filter(positive),
    ]
}

/// The window operator for `spec` computing [`all_aggregates`] grouped by
/// the key column, over [`schema`].
pub fn window_factory(spec: WindowSpec) -> OperatorFactory {
    match spec {
        WindowSpec::Session { gap } => SessionAggregateSpec {
            gap,
            time_column: 0,
            key_columns: vec![1],
            aggregates: all_aggregates(),
            late_rows: false,
            allowed_lateness: 0,
        }
        .factory(schema()),
        window => WindowAggregateSpec {
            window,
            time_column: 0,
            key_columns: vec![1],
            aggregates: all_aggregates(),
            offset: 0,
            allowed_lateness: 0,
        }
        .factory(schema()),
    }
    .expect("valid aggregate")
}

/// One output row of a window aggregate with [`all_aggregates`]; floats are
/// rounded to 6 decimals so that results compare exactly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WindowResult {
    pub key: i64,
    pub start: i64,
    pub end: i64,
    pub cnt_all: i64,
    pub cnt_v: i64,
    pub sum_v: Option<i64>,
    pub min_v: Option<i64>,
    pub max_v: Option<i64>,
    pub avg_v: Option<i64>,
    pub first_v: Option<i64>,
    pub last_v: Option<i64>,
    pub distinct_v: i64,
    pub stddev_v: Option<i64>,
    pub var_pop_v: Option<i64>,
    pub sum_pos: Option<i64>,
}

pub fn round6(x: f64) -> i64 {
    (x * 1e6).round() as i64
}

impl WindowResult {
    /// Computes the row by brute force over the rows of one window, in
    /// arrival order.
    pub fn compute(key: i64, start: i64, end: i64, rows: &[Row]) -> Self {
        let vals: Vec<i64> = rows.iter().filter_map(|r| r.2).collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<i64>() as f64 / n;
        let ss: f64 = vals.iter().map(|&x| (x as f64 - mean).powi(2)).sum();
        let mut distinct = vals.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let pos: Vec<i64> = vals.iter().copied().filter(|&x| x > 0).collect();
        WindowResult {
            key,
            start,
            end,
            cnt_all: rows.len() as i64,
            cnt_v: vals.len() as i64,
            sum_v: (!vals.is_empty()).then(|| vals.iter().sum()),
            min_v: vals.iter().copied().min(),
            max_v: vals.iter().copied().max(),
            // AVG of BIGINT is a BIGINT, truncated toward zero (as Flink).
            avg_v: (!vals.is_empty()).then(|| {
                let sum: i128 = vals.iter().map(|&x| i128::from(x)).sum();
                round6((sum / vals.len() as i128) as f64)
            }),
            first_v: vals.first().copied(),
            last_v: vals.last().copied(),
            distinct_v: distinct.len() as i64,
            stddev_v: (vals.len() >= 2).then(|| round6((ss / (n - 1.0)).sqrt())),
            var_pop_v: (!vals.is_empty()).then(|| round6(ss / n)),
            sum_pos: (!pos.is_empty()).then(|| pos.iter().sum()),
        }
    }
}

fn ints(b: &RecordBatch, c: usize) -> &Int64Array {
    b.column(c)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("an Int64 column")
}

fn opt_int(b: &RecordBatch, c: usize, i: usize) -> Option<i64> {
    let a = ints(b, c);
    (!a.is_null(i)).then(|| a.value(i))
}

fn opt_float(b: &RecordBatch, c: usize, i: usize) -> Option<i64> {
    let a = b
        .column(c)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("a Float64 column");
    (!a.is_null(i)).then(|| round6(a.value(i)))
}

/// Reads window aggregate output (key, window_start, window_end, then
/// [`all_aggregates`]) back into rows, sorted.
pub fn read_results(batches: &[RecordBatch]) -> Vec<WindowResult> {
    let mut out = Vec::new();
    for b in batches {
        let ts = |c: usize| {
            b.column(c)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .expect("a timestamp")
        };
        for i in 0..b.num_rows() {
            out.push(WindowResult {
                key: ints(b, 0).value(i),
                start: ts(1).value(i),
                end: ts(2).value(i),
                cnt_all: ints(b, 3).value(i),
                cnt_v: ints(b, 4).value(i),
                sum_v: opt_int(b, 5, i),
                min_v: opt_int(b, 6, i),
                max_v: opt_int(b, 7, i),
                avg_v: opt_int(b, 8, i).map(|v| round6(v as f64)),
                first_v: opt_int(b, 9, i),
                last_v: opt_int(b, 10, i),
                distinct_v: ints(b, 11).value(i),
                stddev_v: opt_float(b, 12, i),
                var_pop_v: opt_float(b, 13, i),
                sum_pos: opt_int(b, 14, i),
            });
        }
    }
    out.sort();
    out
}
