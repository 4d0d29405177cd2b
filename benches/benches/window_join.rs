//! Criterion benchmarks of the window join and the window-assign operator
//! on pre-built batches, one operator instance on one thread (per core).
//!
//! `window_join`: the left side is a stream of 8192-row batches, 1,000
//! distinct Int64 keys, event time advancing 1 ms every 100 rows, each row
//! tagged with its 10 s tumbling window; the right side has one row per
//! key and window (as a window aggregate's output would), sent just before
//! the watermark closes the window. Every left row finds one partner; the
//! join also checks `v >= w` on each pair. Throughput counts left rows.
//!
//! `window_assign_hop_2s_10s`: the same left rows without window columns,
//! each copied into its five HOP(2 s, 10 s) windows.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use runnel_engine::expr::{binary, col, BinaryOp};
use runnel_engine::operator::TaskInfo;
use runnel_engine::ops::{WindowAssign, WindowJoin, WindowJoinSpec};
use runnel_engine::testing::OperatorHarness;
use runnel_engine::window::WindowSpec;

const BATCH_ROWS: usize = 8192;
const BATCHES: usize = 200; // 1.6 M rows, 16 s of event time
const KEYS: i64 = 1_000;
const ROWS_PER_MS: i64 = 100;
const WINDOW: i64 = 10_000;

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn windowed(value: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("k", DataType::Int64, false),
        Field::new(value, DataType::Int64, false),
    ]))
}

fn plain() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", ts(), false),
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// (time, key, value) rows of one batch each.
fn rows() -> Vec<Vec<(i64, i64, i64)>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    (0..BATCHES)
        .map(|b| {
            (0..BATCH_ROWS)
                .map(|i| {
                    let t = (b * BATCH_ROWS + i) as i64 / ROWS_PER_MS;
                    (t, next() as i64 % KEYS, (next() % 10_000) as i64)
                })
                .collect()
        })
        .collect()
}

fn windowed_batch(value: &str, rows: &[(i64, i64, i64)]) -> RecordBatch {
    let end = |t: i64| t.div_euclid(WINDOW) * WINDOW + WINDOW;
    RecordBatch::try_new(
        windowed(value),
        vec![
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| end(r.0) - WINDOW).collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| end(r.0)).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("valid batch")
}

/// One step of the join's input: a batch on a side, or a watermark.
enum Step {
    Left(RecordBatch),
    Right(RecordBatch),
    Watermark(i64),
}

fn join_steps(rows: &[Vec<(i64, i64, i64)>]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut closed = 0;
    for batch in rows {
        steps.push(Step::Left(windowed_batch("v", batch)));
        let newest = batch[batch.len() - 1].0;
        // Close every window the watermark passes: its right rows first.
        while closed + WINDOW <= newest {
            let right: Vec<(i64, i64, i64)> = (0..KEYS).map(|k| (closed, k, 5_000)).collect();
            steps.push(Step::Right(windowed_batch("w", &right)));
            closed += WINDOW;
        }
        steps.push(Step::Watermark(newest - 1));
    }
    steps
}

fn run_join(h: &mut OperatorHarness, steps: &[Step]) -> usize {
    let mut emitted = 0;
    for s in steps {
        match s {
            Step::Left(b) => h.batch_on(0, b.clone()).expect("left batch"),
            Step::Right(b) => h.batch_on(1, b.clone()).expect("right batch"),
            Step::Watermark(w) => h.watermark(*w).expect("watermark"),
        }
        emitted += h
            .take_output()
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>();
    }
    h.watermark(i64::MAX).expect("final watermark");
    emitted
}

fn join_operator() -> OperatorHarness {
    let spec = WindowJoinSpec {
        left_keys: vec![0, 1, 2],
        right_keys: vec![0, 1, 2],
        left_window_end: 1,
        right_window_end: 1,
        residual: Some(binary(col(3), BinaryOp::GtEq, col(7))),
        kind: runnel_engine::ops::lookup_join::JoinKind::Inner,
        late_rows: false,
    };
    let op = WindowJoin::new(spec, &windowed("v"), &windowed("w")).expect("valid join");
    OperatorHarness::new(Box::new(op)).expect("operator opens")
}

fn assign_operator() -> OperatorHarness {
    let factory = WindowAssign::factory(
        WindowSpec::Hop {
            slide: 2_000,
            size: 10_000,
        },
        0,
        &plain(),
    )
    .expect("valid window");
    let task = TaskInfo {
        operator_name: "assign".into(),
        subtask: 0,
        parallelism: 1,
        max_parallelism: runnel_state::DEFAULT_MAX_PARALLELISM,
        checkpointing: false,
        memory_budget: None,
    };
    OperatorHarness::new(factory(&task).expect("operator")).expect("operator opens")
}

fn bench(c: &mut Criterion) {
    let rows = rows();
    let steps = join_steps(&rows);
    let plain_batches: Vec<RecordBatch> = rows
        .iter()
        .map(|batch| {
            RecordBatch::try_new(
                plain(),
                vec![
                    Arc::new(TimestampMillisecondArray::from(
                        batch.iter().map(|r| r.0).collect::<Vec<_>>(),
                    )),
                    Arc::new(Int64Array::from(
                        batch.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                    Arc::new(Int64Array::from(
                        batch.iter().map(|r| r.2).collect::<Vec<_>>(),
                    )),
                ],
            )
            .expect("valid batch")
        })
        .collect();
    let mut group = c.benchmark_group("window_join");
    group.sample_size(10);
    group.throughput(Throughput::Elements((BATCHES * BATCH_ROWS) as u64));
    group.bench_function("tumble_10s_1000_keys", |b| {
        b.iter_batched(
            join_operator,
            |mut h| black_box(run_join(&mut h, &steps)),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("window_assign_hop_2s_10s", |b| {
        b.iter_batched(
            assign_operator,
            |mut h| {
                let mut n = 0;
                for batch in &plain_batches {
                    h.batch(batch.clone()).expect("batch");
                    n += h
                        .take_output()
                        .iter()
                        .map(RecordBatch::num_rows)
                        .sum::<usize>();
                }
                black_box(n)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
