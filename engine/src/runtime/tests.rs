//! Whole jobs on the runtime: exchanges, failure and cancellation,
//! backpressure, latency markers, barrier alignment and idle splits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::{Job, JobHandle};
use crate::aggregate::AggregateFunction;
use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::graph::{Exchange, JobGraph};
use crate::operator::{Collector, Operator, OperatorContext, OperatorMetrics, TaskInfo};
use crate::ops::{AggregateCall, WindowAggregateSpec};
use crate::source::{Source, SourcePoll, SplitId, WatermarkStrategy};
use crate::testing::{MemorySinkHandle, ScriptStep, ScriptedSource};
use crate::types::Barrier;
use crate::window::WindowSpec;

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

fn batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
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
    .expect("valid batch")
}

fn sum_by_key_window(out: &MemorySinkHandle) -> Vec<(i64, i64, i64, i64)> {
    let mut rows = Vec::new();
    for b in out.batches() {
        let k = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("k");
        let s = b
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("start");
        let c = b
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("count");
        let v = b
            .column(4)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("sum");
        for i in 0..b.num_rows() {
            rows.push((k.value(i), s.value(i), c.value(i), v.value(i)));
        }
    }
    rows.sort_unstable();
    rows
}

fn windowed_job(
    scripts: Vec<Vec<ScriptStep>>,
    par: usize,
    out: &MemorySinkHandle,
) -> Result<JobGraph> {
    let sources = scripts.len();
    windowed_job_over(ScriptedSource::factory(scripts), sources, par, out)
}

/// COUNT and SUM(v) per key `k` in 10 ms tumbling windows over `sources`
/// subtasks of `factory`, at parallelism `par`, into `out`.
fn windowed_job_over(
    factory: crate::source::SourceFactory,
    sources: usize,
    par: usize,
    out: &MemorySinkHandle,
) -> Result<JobGraph> {
    let mut g = JobGraph::new();
    let src = g.add_source(
        "src",
        sources,
        factory,
        Some(WatermarkStrategy::bounded(0, Duration::ZERO)),
    );
    let spec = WindowAggregateSpec {
        window: WindowSpec::Tumble { size: 10 },
        time_column: 0,
        key_columns: vec![1],
        aggregates: vec![
            AggregateCall::new(AggregateFunction::Count, vec![], "c"),
            AggregateCall::new(AggregateFunction::Sum, vec![Expr::Column(2)], "s"),
        ],
        offset: 0,
        allowed_lateness: 0,
    };
    let agg = g.add_operator("agg", par, spec.factory(schema())?);
    let sink = g.add_operator("sink", 1, out.factory());
    g.connect(src, agg, Exchange::Hash(vec![1]))?;
    g.connect(agg, sink, Exchange::RoundRobin)?;
    Ok(g)
}

#[test]
fn bounded_job_runs_to_completion_with_hash_exchange() -> Result<()> {
    let split = |s: SplitId, rows: &[(i64, i64, i64)]| ScriptStep::Batch(s, batch(rows));
    let scripts = vec![
        vec![split(0, &[(1, 1, 10), (2, 2, 20)]), split(0, &[(11, 1, 1)])],
        vec![
            split(1, &[(3, 1, 5), (12, 2, 7)]),
            split(1, &[(25, 3, 100)]),
        ],
    ];
    let out = MemorySinkHandle::new();
    Job::run(windowed_job(scripts, 3, &out)?)?;
    assert_eq!(
        sum_by_key_window(&out),
        vec![
            (1, 0, 2, 15),
            (1, 10, 1, 1),
            (2, 0, 1, 20),
            (2, 10, 1, 7),
            (3, 20, 1, 100)
        ]
    );
    Ok(())
}

/// Fails on the first batch that holds a value of 13.
struct Unlucky {
    panic: bool,
}

impl Operator for Unlucky {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let v = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("v");
        if v.iter().any(|x| x == Some(13)) {
            if self.panic {
                panic!("thirteen");
            }
            return Err(EngineError::Execution("unlucky value 13".into()));
        }
        out.collect(batch)
    }
}

/// An unbounded source of one-row batches, counting what it emitted.
struct Endless {
    emitted: Arc<AtomicU64>,
    value: i64,
}

impl Source for Endless {
    fn open(&mut self, _task: &TaskInfo, _metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        Ok(vec![0])
    }
    fn poll(&mut self) -> Result<SourcePoll> {
        self.emitted.fetch_add(1, Ordering::SeqCst);
        Ok(SourcePoll::Batch {
            split: 0,
            batch: batch(&[(1, 1, self.value)]),
        })
    }
}

fn endless(emitted: &Arc<AtomicU64>, value: i64) -> crate::source::SourceFactory {
    let emitted = Arc::clone(emitted);
    Arc::new(move |_t: &TaskInfo| {
        Ok(Box::new(Endless {
            emitted: Arc::clone(&emitted),
            value,
        }) as Box<dyn Source>)
    })
}

#[test]
fn failing_operator_stops_the_job_with_its_error() -> Result<()> {
    for panic in [false, true] {
        // Unbounded sources on other subtasks must stop too, not hang.
        let emitted = Arc::new(AtomicU64::new(0));
        let mut g = JobGraph::new();
        let src = g.add_source("src", 2, endless(&emitted, 13), None);
        let op = g.add_operator(
            "unlucky",
            2,
            Arc::new(move |_t: &TaskInfo| Ok(Box::new(Unlucky { panic }) as Box<dyn Operator>)),
        );
        let sink = g.add_operator("sink", 1, MemorySinkHandle::new().factory());
        g.connect(src, op, Exchange::RoundRobin)?;
        g.connect(op, sink, Exchange::RoundRobin)?;
        let err = Job::run(g)
            .err()
            .ok_or_else(|| EngineError::Internal("job should fail".into()))?;
        let text = err.to_string();
        if panic {
            assert!(text.contains("panicked: thirteen"), "{text}");
        } else {
            assert!(
                text.contains("operator 'unlucky'") && text.contains("unlucky value 13"),
                "{text}"
            );
        }
    }
    Ok(())
}

#[test]
fn stop_ends_an_unbounded_job_and_cancel_reports_cancelled() -> Result<()> {
    let emitted = Arc::new(AtomicU64::new(0));
    let out = MemorySinkHandle::new();
    let mut g = JobGraph::new();
    let src = g.add_source("src", 1, endless(&emitted, 1), None);
    let sink = g.add_operator("sink", 1, out.factory());
    g.connect(src, sink, Exchange::Forward)?;
    let job = Job::start(g.clone())?;
    while out.num_rows() < 10 {
        std::thread::sleep(Duration::from_millis(1));
    }
    job.stop();
    job.wait()?;
    assert!(out.num_rows() >= 10);

    let job = Job::start(g)?;
    job.cancel();
    assert!(matches!(job.wait(), Err(EngineError::Cancelled)));
    Ok(())
}

/// Subtask 0 reads rows at 1..4 and then waits; subtask 1 reads a row at 2,
/// then takes 400 ms over a row at 100 (the job is stopped meanwhile).
struct Staged {
    subtask: usize,
    polls: u32,
}

impl Source for Staged {
    fn open(&mut self, task: &TaskInfo, _metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        self.subtask = task.subtask;
        Ok(vec![task.subtask as SplitId])
    }
    fn poll(&mut self) -> Result<SourcePoll> {
        self.polls += 1;
        let split = self.subtask as SplitId;
        match (self.subtask, self.polls) {
            (0, 1) => Ok(SourcePoll::Batch {
                split,
                batch: batch(&[(1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 1, 1)]),
            }),
            (1, 1) => Ok(SourcePoll::Batch {
                split,
                batch: batch(&[(2, 1, 10)]),
            }),
            (1, 2) => {
                std::thread::sleep(Duration::from_millis(400));
                Ok(SourcePoll::Batch {
                    split,
                    batch: batch(&[(100, 1, 100)]),
                })
            }
            _ => {
                std::thread::sleep(Duration::from_millis(1));
                Ok(SourcePoll::Pending)
            }
        }
    }
}

/// A stopped source's end says nothing about event time: it keeps holding
/// the watermark back, so a source still running when the job stops cannot
/// fire a window the stopped one has not finished (the savepoint would hold
/// that partial window, and a resumed job would drop the rest as late).
#[test]
fn a_stopped_source_keeps_holding_the_watermark_back() -> Result<()> {
    let out = MemorySinkHandle::new();
    let staged = Arc::new(|_t: &TaskInfo| {
        Ok(Box::new(Staged {
            subtask: 0,
            polls: 0,
        }) as Box<dyn Source>)
    });
    let mut g = windowed_job_over(staged, 2, 1, &out)?;
    g.watermark_interval = Duration::ZERO;
    let job = Job::start(g)?;
    // Both first batches are read; subtask 1 is inside its slow poll.
    std::thread::sleep(Duration::from_millis(150));
    job.stop();
    job.wait()?;
    // Subtask 0 stopped at 4: the window [0, 10) must not have fired
    // (before, its end let subtask 1's watermark of 100 through).
    assert_eq!(sum_by_key_window(&out), vec![]);
    Ok(())
}

/// A sink that blocks until released, to test backpressure.
struct Gate(Arc<AtomicBool>);

impl Operator for Gate {
    fn process_batch(
        &mut self,
        _input: usize,
        _batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        while !self.0.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

#[test]
fn a_blocked_sink_backpressures_the_source() -> Result<()> {
    let emitted = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicBool::new(false));
    let mut g = JobGraph::new();
    g.channel_capacity = 2;
    let src = g.add_source("src", 1, endless(&emitted, 1), None);
    let gate = Arc::clone(&open);
    let sink = g.add_operator(
        "sink",
        1,
        Arc::new(move |_t: &TaskInfo| Ok(Box::new(Gate(Arc::clone(&gate))) as Box<dyn Operator>)),
    );
    g.connect(src, sink, Exchange::RoundRobin)?;
    let job = Job::start(g)?;
    std::thread::sleep(Duration::from_millis(300));
    // One batch held by the sink, two in the channel, one being sent.
    let seen = emitted.load(Ordering::SeqCst);
    assert!(
        seen <= 4,
        "source ran ahead of a blocked sink: {seen} batches"
    );
    open.store(true, Ordering::SeqCst);
    while emitted.load(Ordering::SeqCst) < seen + 100 {
        std::thread::sleep(Duration::from_millis(1));
    }
    job.stop();
    job.wait()
}

/// A sink that takes `delay` per batch.
struct Slow(Duration);

impl Operator for Slow {
    fn process_batch(
        &mut self,
        _input: usize,
        _batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        std::thread::sleep(self.0);
        Ok(())
    }
}

fn slow_sink_job(latency_interval: Option<Duration>) -> Result<JobHandle> {
    let emitted = Arc::new(AtomicU64::new(0));
    let mut g = JobGraph::new();
    g.channel_capacity = 4;
    g.latency_interval = latency_interval;
    let src = g.add_source("src", 1, endless(&emitted, 1), None);
    let sink = g.add_operator(
        "sink",
        1,
        Arc::new(|_t: &TaskInfo| Ok(Box::new(Slow(Duration::from_millis(5))) as Box<dyn Operator>)),
    );
    g.connect(src, sink, Exchange::RoundRobin)?;
    Job::start(g)
}

#[test]
fn latency_markers_wait_behind_the_rows_ahead_of_them() -> Result<()> {
    let job = slow_sink_job(Some(Duration::from_millis(1)))?;
    let give_up = Instant::now() + Duration::from_secs(60);
    let summary = loop {
        match job.latency() {
            Some(l) if l.samples >= 5 => break l,
            _ if Instant::now() > give_up => panic!("fewer than 5 markers reached the sink"),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    job.stop();
    job.wait()?;
    // The source is backpressured by a sink that sleeps 5 ms a batch,
    // so each marker queues behind at least one such batch.
    assert!(summary.p50 >= Duration::from_millis(5), "{summary:?}");
    assert!(summary.p50 <= summary.p99 && summary.p99 <= summary.max);

    // Without an interval no marker is sent.
    let job = slow_sink_job(None)?;
    while job.progress().rows_written < 10 {
        assert!(Instant::now() < give_up, "the second job wrote nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(job.latency(), None);
    assert!(!job.progress().to_string().contains("latency"));
    job.stop();
    job.wait()
}

/// A sink that sleeps 5 ms a batch behind a fast source: the source's
/// thread is mostly backpressured, the sink's mostly busy, and the bytes
/// the source sent are the bytes the sink received.
#[test]
fn task_times_show_who_waits_for_whom() -> Result<()> {
    let job = slow_sink_job(None)?;
    std::thread::sleep(Duration::from_millis(600));
    let task = |name: &str| {
        let m = job
            .metrics()
            .iter()
            .find(|m| m.name == name)
            .expect("subtask");
        (m.task.times(), Arc::clone(&m.task))
    };
    let (src, src_task) = task("src");
    let (sink, sink_task) = task("sink");
    assert_eq!(job.topology(), &[(0, 1, "ROUND_ROBIN".to_string())]);
    job.stop();
    job.wait()?;
    let share = |part: Duration, t: super::TaskTimes| {
        part.as_secs_f64() / (t.busy + t.backpressured + t.idle).as_secs_f64()
    };
    assert!(share(src.backpressured, src) > 0.5, "source {src:?}");
    assert!(share(sink.busy, sink) > 0.5, "sink {sink:?}");
    assert!(share(sink.backpressured, sink) < 0.1, "sink {sink:?}");
    let sent = src_task.bytes_out.load(Ordering::Relaxed);
    let received = sink_task.bytes_in.load(Ordering::Relaxed);
    // Three Int64/timestamp columns of at least one row per batch.
    assert!(received >= 24, "{received} bytes received");
    assert_eq!(sent, received, "every batch sent was received");
    assert_eq!(
        sink_task.bytes_out.load(Ordering::Relaxed),
        0,
        "a sink sends nothing"
    );
    Ok(())
}

/// Counts barriers and checks that no batch of a checkpoint's next epoch
/// is processed before the barrier is aligned.
struct BarrierProbe {
    barriers: Arc<AtomicU64>,
}

impl Operator for BarrierProbe {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        out.collect(batch)
    }
    fn on_barrier(&mut self, _b: &Barrier, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        self.barriers.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn checkpoints_align_barriers_across_inputs() -> Result<()> {
    let emitted = Arc::new(AtomicU64::new(0));
    let barriers = Arc::new(AtomicU64::new(0));
    let mut g = JobGraph::new();
    let a = g.add_source("a", 2, endless(&emitted, 1), None);
    let b = g.add_source("b", 1, endless(&emitted, 2), None);
    let probe_barriers = Arc::clone(&barriers);
    let union = g.add_operator(
        "union",
        2,
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(BarrierProbe {
                barriers: Arc::clone(&probe_barriers),
            }) as Box<dyn Operator>)
        }),
    );
    let sink = g.add_operator("sink", 1, crate::sink::BlackholeSink::factory());
    g.connect(a, union, Exchange::RoundRobin)?;
    g.connect(b, union, Exchange::Broadcast)?;
    g.connect(union, sink, Exchange::RoundRobin)?;
    let job = Job::start(g)?;
    assert_eq!(job.checkpoint(Duration::from_secs(30))?, 1);
    assert_eq!(
        barriers.load(Ordering::SeqCst),
        2,
        "each union subtask snapshots once"
    );
    assert_eq!(job.checkpoint(Duration::from_secs(30))?, 2);
    let stats = job
        .last_checkpoint()
        .ok_or_else(|| EngineError::Internal("no stats".into()))?;
    assert_eq!((stats.id, stats.completed), (2, 2));
    assert!(job.progress().to_string().contains("checkpoint 2 ("));
    assert_eq!(barriers.load(Ordering::SeqCst), 4);
    job.stop();
    job.wait()
}

#[test]
fn an_idle_split_stops_holding_back_the_watermark() -> Result<()> {
    // Split 1 goes quiet at time 5 while split 0 moves on to 100. After
    // the idle timeout the watermark follows split 0 alone, window
    // [0, 10) fires, and a row for it arriving later on split 1 is late.
    let run = |idle: Option<Duration>| -> Result<(Vec<(i64, i64, i64, i64)>, u64)> {
        // Split 0 keeps producing every ~25 ms for 400 ms; split 1 is
        // silent for that long, then sends a row for window [0, 10).
        let mut script = vec![
            ScriptStep::Batch(0, batch(&[(1, 1, 1), (5, 1, 1)])),
            ScriptStep::Batch(1, batch(&[(2, 1, 1), (5, 1, 1)])),
        ];
        for t in 100..116 {
            script.push(ScriptStep::Batch(0, batch(&[(t, 1, 1)])));
            script.push(ScriptStep::Pause(25));
        }
        script.push(ScriptStep::Batch(1, batch(&[(3, 1, 1)])));
        let out = MemorySinkHandle::new();
        let mut g = JobGraph::new();
        let mut strategy = WatermarkStrategy::bounded(0, Duration::ZERO);
        strategy.idle_timeout = idle;
        let src = g.add_source(
            "src",
            1,
            ScriptedSource::factory(vec![script]),
            Some(strategy),
        );
        let spec = WindowAggregateSpec {
            window: WindowSpec::Tumble { size: 10 },
            time_column: 0,
            key_columns: vec![1],
            aggregates: vec![
                AggregateCall::new(AggregateFunction::Count, vec![], "c"),
                AggregateCall::new(AggregateFunction::Sum, vec![Expr::Column(2)], "s"),
            ],
            offset: 0,
            allowed_lateness: 0,
        };
        let agg = g.add_operator("agg", 1, spec.factory(schema())?);
        let sink = g.add_operator("sink", 1, out.factory());
        g.connect(src, agg, Exchange::Forward)?;
        g.connect(agg, sink, Exchange::Forward)?;
        let job = Job::start(g)?;
        let metrics = job.metrics().to_vec();
        job.wait()?;
        let late = metrics
            .iter()
            .map(|m| m.metrics.late_rows_dropped.load(Ordering::Relaxed))
            .sum();
        Ok((sum_by_key_window(&out), late))
    };
    let (rows, late) = run(Some(Duration::from_millis(150)))?;
    assert_eq!(rows, vec![(1, 0, 4, 4), (1, 100, 10, 10), (1, 110, 6, 6)]);
    assert_eq!(late, 1);
    // Without the timeout split 1 holds the watermark at 4 and the row counts.
    let (rows, late) = run(None)?;
    assert_eq!(rows, vec![(1, 0, 5, 5), (1, 100, 10, 10), (1, 110, 6, 6)]);
    assert_eq!(late, 0);
    Ok(())
}

#[test]
fn a_bounded_job_run_locally_gives_what_the_threaded_run_gives() -> Result<()> {
    let split = |s: SplitId, rows: &[(i64, i64, i64)]| ScriptStep::Batch(s, batch(rows));
    let scripts = || {
        vec![
            vec![split(0, &[(1, 1, 10), (2, 2, 20)]), split(0, &[(11, 1, 1)])],
            vec![
                split(1, &[(3, 1, 5), (12, 2, 7)]),
                split(1, &[(25, 3, 100)]),
            ],
        ]
    };
    let threaded = MemorySinkHandle::new();
    Job::run(windowed_job(scripts(), 3, &threaded)?)?;
    let local = MemorySinkHandle::new();
    let never = std::sync::atomic::AtomicBool::new(false);
    super::run_local(&windowed_job(scripts(), 3, &local)?, &never)?;
    assert_eq!(sum_by_key_window(&local), sum_by_key_window(&threaded));
    assert_eq!(sum_by_key_window(&local).len(), 5);
    Ok(())
}

#[test]
fn a_local_run_stops_when_cancelled() -> Result<()> {
    // An endless source would never end; the flag stops it.
    let emitted = Arc::new(AtomicU64::new(0));
    let mut g = JobGraph::new();
    let src = g.add_source("src", 1, endless(&emitted, 1), None);
    let out = MemorySinkHandle::new();
    let sink = g.add_operator("sink", 1, out.factory());
    g.connect(src, sink, Exchange::Forward)?;
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let counted = Arc::clone(&emitted);
    let canceller = std::thread::spawn(move || {
        while counted.load(Ordering::SeqCst) < 1_000 {
            std::thread::yield_now();
        }
        flag.store(true, Ordering::SeqCst);
    });
    let result = super::run_local(&g, &cancel);
    canceller.join().expect("canceller");
    assert!(matches!(result, Err(EngineError::Cancelled)), "{result:?}");
    Ok(())
}

/// Emits each batch when two more have arrived (the rest at the end of
/// time), like an operator that pairs new rows with kept older ones; says
/// its output lags by `delay`.
struct TwoBehind {
    held: std::collections::VecDeque<RecordBatch>,
    delay: crate::types::EventTime,
}

impl Operator for TwoBehind {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        self.held.push_back(batch);
        if self.held.len() > 2 {
            if let Some(oldest) = self.held.pop_front() {
                out.collect(oldest)?;
            }
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: crate::types::EventTime,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if watermark == crate::types::EventTime::MAX {
            for held in self.held.drain(..) {
                out.collect(held)?;
            }
        }
        Ok(())
    }

    fn watermark_delay(&self) -> crate::types::EventTime {
        self.delay
    }
}

#[test]
fn an_operator_that_emits_older_rows_holds_the_watermark_back() -> Result<()> {
    // The row at 8 reaches the window aggregate after the watermark 12 has
    // closed its window (it comes out when the row at 13 arrives): late,
    // unless the operator before the aggregate holds the watermark back.
    let run = |delay: i64, chained: bool| -> Result<(Vec<(i64, i64, i64, i64)>, u64)> {
        let script = vec![
            ScriptStep::Batch(0, batch(&[(8, 1, 1)])),
            ScriptStep::Pause(20),
            ScriptStep::Batch(0, batch(&[(12, 1, 2)])),
            ScriptStep::Pause(20),
            ScriptStep::Batch(0, batch(&[(13, 1, 4)])),
        ];
        let out = MemorySinkHandle::new();
        let mut g = JobGraph::new();
        // A watermark after every batch.
        g.watermark_interval = Duration::ZERO;
        let src = g.add_source(
            "src",
            1,
            ScriptedSource::factory(vec![script]),
            Some(WatermarkStrategy::bounded(0, Duration::ZERO)),
        );
        let behind = g.add_operator(
            "two behind",
            1,
            Arc::new(move |_t: &TaskInfo| {
                Ok(Box::new(TwoBehind {
                    held: Default::default(),
                    delay,
                }) as Box<dyn Operator>)
            }),
        );
        let spec = WindowAggregateSpec {
            window: WindowSpec::Tumble { size: 10 },
            time_column: 0,
            key_columns: vec![1],
            aggregates: vec![
                AggregateCall::new(AggregateFunction::Count, vec![], "c"),
                AggregateCall::new(AggregateFunction::Sum, vec![Expr::Column(2)], "s"),
            ],
            offset: 0,
            allowed_lateness: 0,
        };
        let agg = g.add_operator("agg", 1, spec.factory(schema())?);
        let sink = g.add_operator("sink", 1, out.factory());
        g.connect(src, behind, Exchange::Forward)?;
        // In one chain, or across an exchange.
        let edge = if chained {
            Exchange::Forward
        } else {
            Exchange::Hash(vec![1])
        };
        g.connect(behind, agg, edge)?;
        g.connect(agg, sink, Exchange::Forward)?;
        let job = Job::start(g)?;
        let metrics = job.metrics().to_vec();
        job.wait()?;
        let late = metrics
            .iter()
            .map(|m| m.metrics.late_rows_dropped.load(Ordering::Relaxed))
            .sum();
        Ok((sum_by_key_window(&out), late))
    };
    for chained in [true, false] {
        let (rows, late) = run(0, chained)?;
        assert_eq!(rows, vec![(1, 10, 2, 6)], "chained: {chained}");
        assert_eq!(late, 1);
        let (rows, late) = run(10, chained)?;
        assert_eq!(
            rows,
            vec![(1, 0, 1, 1), (1, 10, 2, 6)],
            "chained: {chained}"
        );
        assert_eq!(late, 0);
    }
    Ok(())
}
