//! Criterion benchmarks of the keyed window aggregate on pre-built batches.
//!
//! Input: 8192-row batches, 1,000 distinct Int64 keys, a Float64 value, and
//! event time advancing 1 ms every 100 rows (100,000 events per second of
//! event time). Each batch is followed by a watermark at its newest time, as
//! a source with no out-of-orderness would send. One operator instance on
//! one thread: the figures are per core.
//!
//! Cases: TUMBLE(10 s) and HOP(slide 1 s, size 60 s), both computing
//! COUNT(*), SUM(v), AVG(v) grouped by the key.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use runnel_engine::aggregate::AggregateFunction;
use runnel_engine::expr::Expr;
use runnel_engine::ops::{AggregateCall, WindowAggregate, WindowAggregateSpec};
use runnel_engine::testing::OperatorHarness;
use runnel_engine::window::WindowSpec;

const BATCH_ROWS: usize = 8192;
const BATCHES: usize = 400; // 3.3 M rows, 33 s of event time
const KEYS: i64 = 1_000;
const ROWS_PER_MS: i64 = 100;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
    ]))
}

fn batches() -> Vec<(RecordBatch, i64)> {
    // A fixed linear congruential sequence: keys look random, runs repeat.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    (0..BATCHES)
        .map(|b| {
            let first = (b * BATCH_ROWS) as i64;
            let ts: Vec<i64> = (0..BATCH_ROWS as i64)
                .map(|i| (first + i) / ROWS_PER_MS)
                .collect();
            let keys: Vec<i64> = (0..BATCH_ROWS).map(|_| next() as i64 % KEYS).collect();
            let vals: Vec<f64> = (0..BATCH_ROWS)
                .map(|_| (next() % 10_000) as f64 / 100.0)
                .collect();
            let newest = ts[BATCH_ROWS - 1];
            let batch = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(TimestampMillisecondArray::from(ts)),
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Float64Array::from(vals)),
                ],
            )
            .expect("valid batch");
            (batch, newest)
        })
        .collect()
}

fn operator(window: WindowSpec) -> OperatorHarness {
    let spec = WindowAggregateSpec {
        window,
        time_column: 0,
        key_columns: vec![1],
        aggregates: vec![
            AggregateCall::new(AggregateFunction::Count, vec![], "cnt"),
            AggregateCall::new(AggregateFunction::Sum, vec![Expr::Column(2)], "sum_v"),
            AggregateCall::new(AggregateFunction::Avg, vec![Expr::Column(2)], "avg_v"),
        ],
        offset: 0,
        allowed_lateness: 0,
    };
    let op = WindowAggregate::new(spec, &schema()).expect("valid aggregate");
    OperatorHarness::new(Box::new(op)).expect("operator opens")
}

fn run(h: &mut OperatorHarness, input: &[(RecordBatch, i64)]) -> usize {
    let mut emitted = 0;
    for (batch, newest) in input {
        h.batch(batch.clone()).expect("batch");
        h.watermark(*newest - 1).expect("watermark");
        emitted += h
            .take_output()
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>();
    }
    emitted
}

fn bench(c: &mut Criterion) {
    let input = batches();
    let mut group = c.benchmark_group("window_aggregate");
    group.sample_size(10);
    group.throughput(Throughput::Elements((BATCHES * BATCH_ROWS) as u64));
    let cases = [
        ("tumble_10s", WindowSpec::Tumble { size: 10_000 }),
        (
            "hop_1s_60s",
            WindowSpec::Hop {
                slide: 1_000,
                size: 60_000,
            },
        ),
    ];
    for (name, window) in cases {
        group.bench_function(name, |b| {
            b.iter_batched(
                || operator(window),
                |mut h| black_box(run(&mut h, &input)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
