//! The IoT demo, built with the engine's Rust API (the SQL front end will
//! express the same pipeline in SQL).
//!
//! A deterministic generator plays 2,000 sensors in 5 regions reporting
//! temperature (°F) and humidity every 5 seconds of event time, with some
//! bad readings (missing device, 9999 °F) and some readings that arrive late.
//! The job drops invalid readings, converts to Celsius, and computes per
//! region: 1-minute tumbling averages and a 5-minute window sliding every
//! minute. Run with `cargo run --release -p runnel-engine --example iot`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use runnel_engine::aggregate::AggregateFunction as F;
use runnel_engine::error::Result;
use runnel_engine::expr::{BinaryOp, Expr, ScalarValue};
use runnel_engine::graph::{Exchange, JobGraph};
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::ops::filter_project::{FilterOperator, ProjectOperator};
use runnel_engine::ops::{AggregateCall, WindowAggregateSpec};
use runnel_engine::runtime::Job;
use runnel_engine::sink::PrintSink;
use runnel_engine::source::{Source, SourcePoll, SplitId, WatermarkStrategy};
use runnel_engine::window::WindowSpec;

const DEVICES: u64 = 2_000;
const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];
const READINGS_PER_DEVICE: u64 = 120; // 10 minutes at one reading per 5 s
const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn raw_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("device_id", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, false),
        Field::new("temperature_f", DataType::Float64, false),
        Field::new("humidity", DataType::Float64, false),
    ]))
}

/// Each subtask plays the devices `d % parallelism == subtask`, one split
/// per subtask, one batch per 5-second tick.
struct Sensors {
    devices: Vec<u64>,
    tick: u64,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

impl Source for Sensors {
    fn open(&mut self, task: &TaskInfo, _metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        Ok(vec![task.subtask as SplitId])
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        if self.tick >= READINGS_PER_DEVICE {
            return Ok(SourcePoll::Finished);
        }
        let tick = self.tick;
        self.tick += 1;
        let mut ts = Vec::new();
        let mut ids = Vec::new();
        let mut regions = Vec::new();
        let mut temps = Vec::new();
        let mut hums = Vec::new();
        for &d in &self.devices {
            let r = mix(d * 1_000_003 + tick);
            // 1% of readings arrive 2 minutes late: behind the watermark.
            let late = r.is_multiple_of(100);
            let t = START_MS + tick as i64 * 5_000 + (r % 5_000) as i64
                - if late { 120_000 } else { 0 };
            ts.push(t);
            ids.push(if r % 997 == 1 {
                None
            } else {
                Some(format!("sensor-{d:05}"))
            });
            regions.push(REGIONS[(d % REGIONS.len() as u64) as usize]);
            let base = 50.0 + (d % REGIONS.len() as u64) as f64 * 8.0 + (r % 200) as f64 / 10.0;
            temps.push(if r % 499 == 3 { 9999.0 } else { base });
            hums.push(30.0 + (r % 500) as f64 / 10.0);
        }
        let batch = RecordBatch::try_new(
            raw_schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(ts)),
                Arc::new(StringArray::from(ids)),
                Arc::new(StringArray::from(regions)),
                Arc::new(Float64Array::from(temps)),
                Arc::new(Float64Array::from(hums)),
            ],
        )?;
        Ok(SourcePoll::Batch { split: 0, batch })
    }
}

fn lit(v: f64) -> Expr {
    Expr::Literal(ScalarValue::Float64(v))
}

fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(l),
        right: Box::new(r),
    }
}

fn main() -> Result<()> {
    let parallelism = 2;
    let mut g = JobGraph::new();
    let sensors = g.add_source(
        "sensors",
        parallelism,
        Arc::new(|t: &TaskInfo| {
            let devices = (0..DEVICES)
                .filter(|d| *d as usize % t.parallelism == t.subtask)
                .collect();
            Ok(Box::new(Sensors { devices, tick: 0 }) as Box<dyn Source>)
        }),
        Some(WatermarkStrategy::bounded(0, Duration::from_secs(5))),
    );
    // Silver: device present and temperature in [-40, 150] °F.
    let valid = bin(
        BinaryOp::And,
        Expr::IsNotNull(Box::new(Expr::Column(1))),
        Expr::Between {
            expr: Box::new(Expr::Column(3)),
            low: Box::new(lit(-40.0)),
            high: Box::new(lit(150.0)),
            negated: false,
        },
    );
    let silver = g.add_operator(
        "validate",
        parallelism,
        Arc::new(move |_t: &TaskInfo| Ok(Box::new(FilterOperator::new(valid.clone())) as Box<_>)),
    );
    let celsius = bin(
        BinaryOp::Multiply,
        bin(BinaryOp::Minus, Expr::Column(3), lit(32.0)),
        lit(5.0 / 9.0),
    );
    let projection = vec![
        (Expr::Column(0), "event_time".to_string()),
        (Expr::Column(2), "region".to_string()),
        (celsius, "temperature_c".to_string()),
        (Expr::Column(4), "humidity".to_string()),
    ];
    let project = ProjectOperator::new(projection.clone(), &raw_schema())?;
    let silver_schema = project.schema();
    let to_celsius = g.add_operator(
        "to_celsius",
        parallelism,
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(ProjectOperator::new(projection.clone(), &raw_schema())?) as Box<_>)
        }),
    );
    let aggregates = vec![
        AggregateCall::new(F::Count, vec![], "readings"),
        AggregateCall::new(F::Avg, vec![Expr::Column(2)], "avg_temp_c"),
        AggregateCall::new(F::Max, vec![Expr::Column(2)], "max_temp_c"),
        AggregateCall::new(F::Avg, vec![Expr::Column(3)], "avg_humidity"),
    ];
    let gold = WindowAggregateSpec {
        window: WindowSpec::Tumble { size: 60_000 },
        time_column: 0,
        key_columns: vec![1],
        aggregates: aggregates.clone(),
        offset: 0,
        allowed_lateness: 0,
    };
    let sliding = WindowAggregateSpec {
        window: WindowSpec::Hop {
            slide: 60_000,
            size: 300_000,
        },
        time_column: 0,
        key_columns: vec![1],
        aggregates,
        offset: 0,
        allowed_lateness: 0,
    };
    let gold_op = g.add_operator(
        "gold_1min",
        parallelism,
        gold.factory(silver_schema.clone())?,
    );
    let hop_op = g.add_operator("sliding_5min", parallelism, sliding.factory(silver_schema)?);
    let gold_sink = g.add_operator(
        "print_gold",
        1,
        PrintSink::factory("gold: 1-minute averages by region"),
    );
    let hop_sink = g.add_operator(
        "print_hop",
        1,
        PrintSink::factory("sliding: 5-minute window every minute"),
    );
    g.connect(sensors, silver, Exchange::Forward)?;
    g.connect(silver, to_celsius, Exchange::Forward)?;
    g.connect(to_celsius, gold_op, Exchange::Hash(vec![1]))?;
    g.connect(to_celsius, hop_op, Exchange::Hash(vec![1]))?;
    g.connect(gold_op, gold_sink, Exchange::RoundRobin)?;
    g.connect(hop_op, hop_sink, Exchange::RoundRobin)?;

    println!("Plan:\n{}", g.explain()?);
    let started = Instant::now();
    let job = Job::start(g)?;
    while !job.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        eprintln!("progress: {}", job.progress());
    }
    let progress = job.progress();
    job.wait()?;
    println!(
        "done in {:.2?}: {progress} ({} readings generated; invalid readings were filtered before the windows)",
        started.elapsed(),
        DEVICES * READINGS_PER_DEVICE
    );
    Ok(())
}
