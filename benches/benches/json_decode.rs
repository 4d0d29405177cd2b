//! Criterion benchmarks of decoding JSON lines into Arrow, per core.
//!
//! Input: 200,000 IoT readings as JSON lines (event time, device id,
//! temperature, humidity, status; about 120 bytes a line), decoded in runs
//! of 4,096 lines as the file source decodes them. Throughput is in bytes
//! of JSON.
//!
//! Cases:
//! - `arrow-json`: arrow's decoder alone (a tape of tokens, then columns).
//! - `arrow-json + line checks`: the same with the JSON-lines rules Runnel
//!   enforces (one object per line, no NUL), what the sources ran before.
//! - `runnel one-pass`: what the sources run now: one pass from bytes to
//!   Arrow builders, falling back to the above for anything unusual.
//! - `simd-json tape only`: simd-json's tokenizer over each line, building
//!   no column at all: a lower bound for a SIMD tokenizer feeding builders.
//! - `serde_json Value`: each line parsed into a `serde_json::Value`.

use std::hint::black_box;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runnel_connectors::text::RecordsDecoder;

const LINES: usize = 200_000;
const RUN: usize = 4_096;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("device_id", DataType::Utf8, true),
        Field::new("temperature", DataType::Float64, true),
        Field::new("humidity", DataType::Float64, true),
        Field::new("status", DataType::Utf8, true),
    ]))
}

/// Runs of `RUN` lines, each with its line count.
fn input() -> Vec<(Vec<u8>, usize)> {
    let statuses = ["active", "idle", "faulty"];
    let mut runs = Vec::new();
    let mut run = Vec::new();
    let mut lines = 0;
    for i in 0..LINES {
        let ms = i as u64 * 50;
        let line = format!(
            "{{\"event_time\":\"2026-01-01T{:02}:{:02}:{:02}.{:03}\",\"device_id\":\"device-{:04}\",\
             \"temperature\":{}.{},\"humidity\":{}.{},\"status\":\"{}\"}}\n",
            ms / 3_600_000 % 24,
            ms / 60_000 % 60,
            ms / 1_000 % 60,
            ms % 1_000,
            i % 200,
            40 + i % 60,
            i % 10,
            30 + i % 50,
            (i / 7) % 10,
            statuses[i % 3]
        );
        run.extend_from_slice(line.as_bytes());
        lines += 1;
        if lines == RUN {
            runs.push((std::mem::take(&mut run), lines));
            lines = 0;
        }
    }
    if lines > 0 {
        runs.push((run, lines));
    }
    runs
}

fn bench(c: &mut Criterion) {
    let runs = input();
    let bytes: usize = runs.iter().map(|(r, _)| r.len()).sum();
    let schema = schema();
    let mut group = c.benchmark_group("json_decode");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));

    group.bench_function("arrow-json", |b| {
        b.iter(|| {
            let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(&schema))
                .with_batch_size(RUN)
                .build_decoder()
                .expect("a decoder");
            let mut rows = 0;
            for (run, _) in &runs {
                decoder.decode(run).expect("decodes");
                rows += decoder
                    .flush()
                    .expect("flushes")
                    .map_or(0, |b| b.num_rows());
            }
            black_box(rows)
        })
    });
    group.bench_function("arrow-json + line checks", |b| {
        b.iter(|| {
            let mut decoder = RecordsDecoder::arrow_only(Arc::clone(&schema));
            let mut rows = 0;
            for (run, lines) in &runs {
                rows += decoder.decode(run, *lines).expect("decodes").num_rows();
            }
            black_box(rows)
        })
    });
    group.bench_function("runnel one-pass", |b| {
        b.iter(|| {
            let mut decoder = RecordsDecoder::new(Arc::clone(&schema), None);
            let mut rows = 0;
            for (run, lines) in &runs {
                rows += decoder.decode(run, *lines).expect("decodes").num_rows();
            }
            black_box(rows)
        })
    });
    group.bench_function("simd-json tape only", |b| {
        let mut scratch = Vec::new();
        b.iter(|| {
            let mut tokens = 0;
            for (run, _) in &runs {
                for line in run.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
                    scratch.clear();
                    scratch.extend_from_slice(line);
                    let tape = simd_json::to_tape(&mut scratch).expect("valid JSON");
                    tokens += tape.0.len();
                }
            }
            black_box(tokens)
        })
    });
    group.bench_function("serde_json Value", |b| {
        b.iter(|| {
            let mut values = 0;
            for (run, _) in &runs {
                for line in run.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
                    let v: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
                    values += usize::from(v.is_object());
                }
            }
            black_box(values)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
