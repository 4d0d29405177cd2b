//! Checkpoint cost, measured side by side in one run (not criterion: each
//! sample is a whole job of several seconds).
//!
//! A generator source (1 subtask) feeds a keyed, non-windowed aggregate
//! (COUNT, SUM by key; 2 subtasks) whose state holds every key, into a
//! blackhole. The same job runs with checkpoints off and with a checkpoint
//! every second to a local directory; the table shows both throughputs and
//! their ratio, and the duration, bytes written and total size of the last
//! checkpoint. Then one checkpoint is taken of a job holding 10 M keys.
//! State is on RocksDB (the default backend) with the default memory
//! budget; `RUNNEL_BENCH_BACKEND=hashmap` runs the in-memory backend.
//!
//! Last, restore time: a job over 1 M and then 10 M keys runs to its end
//! (its final checkpoint holds every key), and the same job is started
//! again from that checkpoint; the table shows the final checkpoint's size
//! and how long the restored run took (opening every subtask's state from
//! the checkpoint, then ending). With `RUNNEL_BENCH_S3_ENDPOINT` set (an
//! S3-protocol server, e.g. `python -m moto.server -p 9000`), the same runs
//! also checkpoint to `s3://runnel-bench/...` there and restore from it.
//!
//! Run: `cargo bench -p runnel-benches --bench checkpoint`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use runnel_engine::aggregate::AggregateFunction;
use runnel_engine::error::{EngineError, Result};
use runnel_engine::expr::Expr;
use runnel_engine::graph::{CheckpointConfig, Exchange, JobGraph, StateBackendKind};
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::ops::{AggregateCall, GroupAggregateSpec};
use runnel_engine::runtime::Job;
use runnel_engine::sink::BlackholeSink;
use runnel_engine::source::{Source, SourcePoll, SplitId};

const BATCH: u64 = 8192;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
    ]))
}

/// `rows` rows over `keys` keys (row i has key i * 7919 mod keys).
struct Keyed {
    rows: u64,
    keys: u64,
    emitted: u64,
}

impl Source for Keyed {
    fn open(&mut self, _t: &TaskInfo, _m: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        Ok(vec![0])
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        if self.emitted >= self.rows {
            return Ok(SourcePoll::Finished);
        }
        let end = (self.emitted + BATCH).min(self.rows);
        let keys: Vec<i64> = (self.emitted..end)
            .map(|i| (i.wrapping_mul(7919) % self.keys) as i64)
            .collect();
        let vals: Vec<f64> = (self.emitted..end).map(|i| (i % 100) as f64).collect();
        self.emitted = end;
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(keys)),
                Arc::new(Float64Array::from(vals)),
            ],
        )?;
        Ok(SourcePoll::Batch { split: 0, batch })
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        Ok(self.emitted.to_le_bytes().to_vec())
    }

    fn restore_position(&mut self, p: &[u8]) -> Result<()> {
        let b: [u8; 8] = p
            .try_into()
            .map_err(|_| EngineError::Internal("bad position".into()))?;
        self.emitted = u64::from_le_bytes(b);
        Ok(())
    }
}

fn graph(
    rows: u64,
    keys: u64,
    checkpoints: Option<(std::path::PathBuf, Duration)>,
) -> Result<JobGraph> {
    graph_with(rows, keys, checkpoints, Vec::new())
}

fn graph_with(
    rows: u64,
    keys: u64,
    checkpoints: Option<(std::path::PathBuf, Duration)>,
    storage_options: Vec<(String, String)>,
) -> Result<JobGraph> {
    let mut g = JobGraph::new();
    let src = g.add_source(
        "keyed",
        1,
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(Keyed {
                rows,
                keys,
                emitted: 0,
            }) as Box<dyn Source>)
        }),
        None,
    );
    let spec = GroupAggregateSpec {
        key_columns: vec![0],
        aggregates: vec![
            AggregateCall::new(AggregateFunction::Count, vec![], "n"),
            AggregateCall::new(AggregateFunction::Sum, vec![Expr::Column(1)], "total"),
        ],
        ttl: None,
        clock: Default::default(),
    };
    let agg = g.add_operator("aggregate", 2, spec.factory(schema())?);
    let sink = g.add_operator("blackhole", 2, BlackholeSink::factory());
    g.connect(src, agg, Exchange::Hash(vec![0]))?;
    g.connect(agg, sink, Exchange::Forward)?;
    if std::env::var("RUNNEL_BENCH_BACKEND").as_deref() == Ok("hashmap") {
        g.state.backend = StateBackendKind::HashMap;
    }
    g.checkpointing = checkpoints.map(|(dir, interval)| CheckpointConfig {
        dir,
        interval,
        retained: 2,
        fingerprint: "bench".into(),
        storage_options,
        restore_from: None,
    });
    Ok(g)
}

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("runnel-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn main() -> Result<()> {
    let rows = 20_000_000u64;
    println!("| keys | rows | checkpoints off (rows/s) | every 1 s (rows/s) | on / off time | checkpoints | last checkpoint | written | size | barrier pause p50 / p99 / max |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for keys in [100_000u64, 1_000_000] {
        let t = Instant::now();
        Job::run(graph(rows, keys, None)?)?;
        let off = t.elapsed();
        let dir = temp(&format!("on-{keys}"));
        let t = Instant::now();
        let job = Job::start(graph(
            rows,
            keys,
            Some((dir.clone(), Duration::from_secs(1))),
        )?)?;
        while !job.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stats = job.last_checkpoint();
        let pauses = job.barrier_pauses();
        job.wait()?;
        let on = t.elapsed();
        let rate = |d: Duration| rows as f64 / d.as_secs_f64();
        let (n, last_ms, last_mb, size_mb) = stats.map_or((0, 0, 0.0, 0.0), |s| {
            (
                s.completed,
                s.duration.as_millis(),
                s.bytes as f64 / 1e6,
                s.size as f64 / 1e6,
            )
        });
        let pause = pauses.map_or_else(
            || "-".to_string(),
            |p| {
                format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    p.p50.as_secs_f64() * 1e3,
                    p.p99.as_secs_f64() * 1e3,
                    p.max.as_secs_f64() * 1e3
                )
            },
        );
        println!(
            "| {keys} | {rows} | {:.2} M | {:.2} M | {:.2} | {n} | {last_ms} ms | {last_mb:.1} MB | {size_mb:.1} MB | {pause} |",
            rate(off) / 1e6,
            rate(on) / 1e6,
            on.as_secs_f64() / off.as_secs_f64(),
        );
        let _ = std::fs::remove_dir_all(dir);
    }
    // One checkpoint of 10 M keys: a source that pauses at the end so the
    // checkpoint is taken while every subtask still runs.
    let keys = 10_000_000u64;
    let dir = temp("10m");
    let job = Job::start(graph(
        keys,
        keys,
        Some((dir.clone(), Duration::from_secs(3600))),
    )?)?;
    // Wait until the source has emitted everything, then checkpoint before
    // the end of input (the final checkpoint would also do, but this keeps
    // the figure comparable with the periodic ones).
    let mut taken = None;
    for _ in 0..600 {
        let read: u64 = job
            .metrics()
            .iter()
            .filter(|m| m.is_source)
            .map(|m| {
                m.metrics
                    .rows_out
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum();
        if read >= keys * 9 / 10 {
            let t = Instant::now();
            taken = job
                .checkpoint(Duration::from_secs(600))
                .ok()
                .map(|_| t.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = job.last_checkpoint();
    job.wait()?;
    if let (Some(d), Some(s)) = (taken, stats) {
        println!(
            "\n10 M keys (9 M+ in state when taken): one checkpoint took {} ms, {:.1} MB written, {:.1} MB in all",
            d.as_millis(),
            s.bytes as f64 / 1e6,
            s.size as f64 / 1e6
        );
    } else {
        println!("\n10 M keys: the job ended before a checkpoint could be taken");
    }
    let _ = std::fs::remove_dir_all(dir);
    restore_times()
}

/// Creates `bucket` on the S3 server at `endpoint` (`http://host:port`).
fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    if let Ok(mut s) = std::net::TcpStream::connect(host) {
        let _ = write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
    }
}

fn restore_times() -> Result<()> {
    let s3 = std::env::var("RUNNEL_BENCH_S3_ENDPOINT").ok();
    let options = |endpoint: &str| {
        vec![
            ("s3.endpoint".to_string(), endpoint.to_string()),
            ("s3.access-key".to_string(), "bench".to_string()),
            ("s3.secret-key".to_string(), "bench".to_string()),
        ]
    };
    if let Some(e) = &s3 {
        create_bucket(e, "runnel-bench");
    }
    println!("\n| keys | checkpoints in | final checkpoint | size | restored run |");
    println!("|---|---|---|---|---|");
    for keys in [1_000_000u64, 10_000_000] {
        let mut places: Vec<(String, std::path::PathBuf, Vec<(String, String)>)> = vec![(
            "local disk".into(),
            temp(&format!("restore-{keys}")),
            Vec::new(),
        )];
        if let Some(e) = &s3 {
            places.push((
                "S3 (moto)".into(),
                std::path::PathBuf::from(format!(
                    "s3://runnel-bench/restore-{keys}-{}",
                    std::process::id()
                )),
                options(e),
            ));
        }
        for (name, dir, opts) in places {
            let every = Some((dir.clone(), Duration::from_secs(3600)));
            let job = Job::start(graph_with(keys, keys, every.clone(), opts.clone())?)?;
            while !job.is_finished() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let stats = job.last_checkpoint();
            job.wait()?;
            let t = Instant::now();
            Job::run(graph_with(keys, keys, every, opts)?)?;
            let restored = t.elapsed();
            let (ms, size) =
                stats.map_or((0, 0.0), |s| (s.duration.as_millis(), s.size as f64 / 1e6));
            println!(
                "| {keys} | {name} | {ms} ms | {size:.1} MB | {} ms |",
                restored.as_millis()
            );
            if !dir.starts_with("s3:") {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    Ok(())
}
