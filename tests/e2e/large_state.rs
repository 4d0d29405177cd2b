//! State larger than the memory budget: a tumbling-window aggregate over 1
//! million distinct keys (each seen twice, the second time in a different
//! order) with an 8 MB budget per operator subtask (about a tenth of its
//! state), on RocksDB, with a checkpoint every second. The operators must
//! spill, and every key's window must come out once with the count and sum
//! computed here from the generator's rule.
//!
//! `RUNNEL_LARGE_STATE_KEYS` and `RUNNEL_LARGE_STATE_BUDGET_MB` change the
//! scale: `5000000` and `64` is the example (several minutes in a
//! debug build, where RocksDB is compiled without optimization; the suite
//! runs the smaller case with a budget as tight relative to the state).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use runnel_engine::aggregate::AggregateFunction;
use runnel_engine::error::{EngineError, Result};
use runnel_engine::expr::Expr;
use runnel_engine::graph::{CheckpointConfig, Exchange, JobGraph, StateBackendKind};
use runnel_engine::operator::{Collector, Operator, OperatorContext, OperatorMetrics, TaskInfo};
use runnel_engine::ops::{AggregateCall, WindowAggregateSpec};
use runnel_engine::runtime::Job;
use runnel_engine::source::{Source, SourcePoll, SplitId, WatermarkStrategy};
use runnel_engine::window::WindowSpec;

const BATCH: u64 = 8192;
/// Window size; every row's time (below 50 s) is in the first window.
const WINDOW_MS: i64 = 60_000;

fn keys() -> u64 {
    std::env::var("RUNNEL_LARGE_STATE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn budget() -> usize {
    std::env::var("RUNNEL_LARGE_STATE_BUDGET_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(8)
        << 20
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// The key of row `i` of `2 * keys`: the first pass visits keys in order,
/// the second in a scrambled order (a stride coprime with `keys`, so every
/// key comes once).
fn key_of(i: u64, keys: u64) -> u64 {
    if i < keys {
        i
    } else {
        ((i - keys) * stride(keys)) % keys
    }
}

/// An odd stride coprime with `keys`.
fn stride(keys: u64) -> u64 {
    let mut s = 7_919u64;
    while gcd(s, keys) != 1 {
        s += 2;
    }
    s
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The value of row `i` with key `k`.
fn value_of(i: u64, k: u64) -> i64 {
    (k % 1000) as i64 + if i < keys() { 1 } else { 2 }
}

struct Generator {
    keys: u64,
    next: u64,
}

impl Source for Generator {
    fn open(&mut self, _t: &TaskInfo, _m: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        Ok(vec![0])
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        let total = 2 * self.keys;
        if self.next >= total {
            return Ok(SourcePoll::Finished);
        }
        let end = (self.next + BATCH).min(total);
        let ks: Vec<u64> = (self.next..end).map(|i| key_of(i, self.keys)).collect();
        let ts: Vec<i64> = (self.next..end).map(|i| (i % 50_000) as i64).collect();
        let vs: Vec<i64> = (self.next..end)
            .zip(&ks)
            .map(|(i, &k)| value_of(i, k))
            .collect();
        self.next = end;
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(ts)),
                Arc::new(Int64Array::from(
                    ks.iter().map(|&k| k as i64).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(vs)),
            ],
        )?;
        Ok(SourcePoll::Batch { split: 0, batch })
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        Ok(self.next.to_le_bytes().to_vec())
    }

    fn restore_position(&mut self, p: &[u8]) -> Result<()> {
        let b: [u8; 8] = p
            .try_into()
            .map_err(|_| EngineError::Internal("bad position".into()))?;
        self.next = u64::from_le_bytes(b);
        Ok(())
    }
}

/// What the checking sink saw.
#[derive(Debug, Default)]
struct Seen {
    rows: u64,
    /// Rows whose window, count or sum is not what the generator implies.
    wrong: Vec<String>,
    /// Each key's row count (a key must come exactly once).
    per_key: Vec<u8>,
}

/// Checks every window row against the generator's rule as it arrives, so
/// the test holds counters rather than 5 million rows.
struct CheckingSink {
    seen: Arc<Mutex<Seen>>,
    keys: u64,
}

impl Operator for CheckingSink {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        let col = |i: usize| batch.column(i).as_any();
        let (Some(k), Some(start), Some(count), Some(sum)) = (
            col(0).downcast_ref::<Int64Array>(),
            col(1).downcast_ref::<TimestampMillisecondArray>(),
            col(3).downcast_ref::<Int64Array>(),
            col(4).downcast_ref::<Int64Array>(),
        ) else {
            return Err(EngineError::Internal("unexpected output columns".into()));
        };
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| EngineError::Internal("poisoned".into()))?;
        if seen.per_key.is_empty() {
            seen.per_key = vec![0; self.keys as usize];
        }
        for i in 0..batch.num_rows() {
            seen.rows += 1;
            let key = k.value(i) as u64;
            // Each key has one row from each pass: values k%1000+1 and k%1000+2.
            let expected_sum = 2 * (key % 1000) as i64 + 3;
            if start.value(i) != 0 || count.value(i) != 2 || sum.value(i) != expected_sum {
                if seen.wrong.len() < 10 {
                    seen.wrong.push(format!(
                        "key {key}: start {} count {} sum {} (expected 0, 2, {expected_sum})",
                        start.value(i),
                        count.value(i),
                        sum.value(i)
                    ));
                }
                continue;
            }
            match seen.per_key.get_mut(key as usize) {
                Some(n) => *n = n.saturating_add(1),
                None => seen.wrong.push(format!("key {key} out of range")),
            }
        }
        Ok(())
    }
}

#[test]
fn state_ten_times_the_memory_budget_spills_and_stays_exact() -> Result<()> {
    let keys = keys();
    let dir = std::env::temp_dir().join(format!("runnel-large-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let seen = Arc::new(Mutex::new(Seen::default()));

    let mut g = JobGraph::new();
    let src = g.add_source(
        "generator",
        1,
        Arc::new(move |_t: &TaskInfo| Ok(Box::new(Generator { keys, next: 0 }) as Box<dyn Source>)),
        Some(WatermarkStrategy::bounded(0, Duration::from_secs(1))),
    );
    let spec = WindowAggregateSpec {
        window: WindowSpec::Tumble { size: WINDOW_MS },
        time_column: 0,
        key_columns: vec![1],
        aggregates: vec![
            AggregateCall::new(AggregateFunction::Count, vec![], "n"),
            AggregateCall::new(AggregateFunction::Sum, vec![Expr::Column(2)], "total"),
        ],
        offset: 0,
        allowed_lateness: 0,
    };
    let agg = g.add_operator("window", 2, spec.factory(schema())?);
    let sink_seen = Arc::clone(&seen);
    let sink = g.add_operator(
        "check",
        1,
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(CheckingSink {
                seen: Arc::clone(&sink_seen),
                keys,
            }) as Box<dyn Operator>)
        }),
    );
    g.connect(src, agg, Exchange::Hash(vec![1]))?;
    g.connect(agg, sink, Exchange::Hash(vec![0]))?;
    g.state.backend = StateBackendKind::RocksDb;
    g.state.memory_budget = budget();
    g.checkpointing = Some(CheckpointConfig {
        dir: dir.clone(),
        interval: Duration::from_secs(1),
        retained: 2,
        fingerprint: "large-state".into(),
        storage_options: Vec::new(),
        restore_from: None,
    });

    let job = Job::start(g)?;
    let metrics: Vec<Arc<OperatorMetrics>> = job
        .metrics()
        .iter()
        .map(|m| Arc::clone(&m.metrics))
        .collect();
    while !job.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let checkpoints = job.last_checkpoint().map_or(0, |c| c.completed);
    job.wait()?;
    let spills: u64 = metrics
        .iter()
        .map(|m| m.state_spills.load(Ordering::Relaxed))
        .sum();
    let seen = seen
        .lock()
        .map_err(|_| EngineError::Internal("poisoned".into()))?;
    assert!(seen.wrong.is_empty(), "wrong rows: {:?}", seen.wrong);
    assert_eq!(seen.rows, keys, "one window row per key");
    let missing = seen.per_key.iter().filter(|&&n| n != 1).count();
    assert_eq!(missing, 0, "keys without exactly one row");
    // Each of the two subtasks holds keys / 2 groups of over 100 bytes in
    // memory; at twice the budget or more they must have spilled, and the
    // periodic checkpoints (every second, on a run of many seconds) must
    // have snapshotted the spilled state besides the final one.
    if keys / 2 * 100 >= 2 * budget() as u64 {
        assert!(spills >= 2, "spills: {spills}");
        assert!(checkpoints >= 2, "checkpoints completed: {checkpoints}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
