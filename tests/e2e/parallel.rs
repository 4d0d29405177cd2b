//! A multi-threaded job must produce the same multiset of rows as the same
//! job on one thread.

use std::sync::Arc;
use std::time::Duration;

use runnel_engine::error::Result;
use runnel_engine::expr::{BinaryOp, Expr, ScalarValue};
use runnel_engine::graph::{Exchange, JobGraph};
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::ops::filter_project::FilterOperator;
use runnel_engine::ops::{SessionAggregateSpec, WindowAggregateSpec};
use runnel_engine::runtime::Job;
use runnel_engine::source::{Source, SourcePoll, SplitId, WatermarkStrategy};
use runnel_engine::testing::MemorySinkHandle;
use runnel_engine::window::WindowSpec;

use crate::common::{all_aggregates, batch, read_results, schema, Row, WindowResult};

const SPLITS: u32 = 8;
const ROWS_PER_SPLIT: i64 = 3_000;

/// Deterministic splits: split `s` yields rows in time order; a subtask
/// reads the splits `s % parallelism == subtask`, interleaving them.
struct SplitSource {
    splits: Vec<(SplitId, i64)>,
    turn: usize,
}

impl Source for SplitSource {
    fn open(&mut self, _task: &TaskInfo, _metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        Ok(self.splits.iter().map(|s| s.0).collect())
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        if self.splits.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        let i = self.turn % self.splits.len();
        self.turn += 1;
        let (split, next) = self.splits[i];
        if next >= ROWS_PER_SPLIT {
            self.splits.remove(i);
            return Ok(SourcePoll::SplitFinished(split));
        }
        let end = (next + 97).min(ROWS_PER_SPLIT);
        let rows: Vec<Row> = (next..end)
            .map(|n| {
                let ts = n * 10 + i64::from(split);
                let key = (n * 31 + i64::from(split) * 7) % 50;
                let value = if n % 13 == 0 {
                    None
                } else {
                    Some((n * 17 + i64::from(split)) % 101 - 50)
                };
                (ts, key, value)
            })
            .collect();
        self.splits[i].1 = end;
        Ok(SourcePoll::Batch {
            split,
            batch: batch(&rows),
        })
    }
}

fn run(parallelism: usize) -> Result<(Vec<WindowResult>, Vec<WindowResult>)> {
    let tumbles = MemorySinkHandle::new();
    let sessions = MemorySinkHandle::new();
    let mut g = JobGraph::new();
    let src = g.add_source(
        "splits",
        parallelism,
        Arc::new(move |t: &TaskInfo| {
            let splits = (0..SPLITS)
                .filter(|s| *s as usize % t.parallelism == t.subtask)
                .map(|s| (s, 0))
                .collect();
            Ok(Box::new(SplitSource { splits, turn: 0 }) as Box<dyn Source>)
        }),
        Some(WatermarkStrategy::bounded(0, Duration::from_millis(0))),
    );
    // WHERE v IS NULL OR v <> 7
    let pred = Expr::Binary {
        op: BinaryOp::Or,
        left: Box::new(Expr::IsNull(Box::new(Expr::Column(2)))),
        right: Box::new(Expr::Binary {
            op: BinaryOp::NotEq,
            left: Box::new(Expr::Column(2)),
            right: Box::new(Expr::Literal(ScalarValue::Int64(7))),
        }),
    };
    let filter = g.add_operator(
        "filter",
        parallelism,
        Arc::new(move |_t: &TaskInfo| Ok(Box::new(FilterOperator::new(pred.clone())) as Box<_>)),
    );
    let hop = WindowAggregateSpec {
        window: WindowSpec::Hop {
            slide: 500,
            size: 2_000,
        },
        time_column: 0,
        key_columns: vec![1],
        aggregates: all_aggregates(),
        offset: 0,
        allowed_lateness: 0,
    };
    let session = SessionAggregateSpec {
        gap: 300,
        time_column: 0,
        key_columns: vec![1],
        aggregates: all_aggregates(),
        late_rows: false,
        allowed_lateness: 0,
    };
    let hop_op = g.add_operator("hop", parallelism, hop.factory(schema())?);
    let session_op = g.add_operator("session", parallelism, session.factory(schema())?);
    let hop_sink = g.add_operator("hop_sink", parallelism, tumbles.factory());
    let session_sink = g.add_operator("session_sink", 1, sessions.factory());
    g.connect(src, filter, Exchange::Forward)?;
    g.connect(filter, hop_op, Exchange::Hash(vec![1]))?;
    g.connect(filter, session_op, Exchange::Hash(vec![1]))?;
    g.connect(hop_op, hop_sink, Exchange::Forward)?;
    g.connect(session_op, session_sink, Exchange::RoundRobin)?;
    let job = Job::start(g)?;
    job.wait()?;
    Ok((
        order_insensitive(read_results(&tumbles.batches())),
        order_insensitive(read_results(&sessions.batches())),
    ))
}

/// Rows reach a key from several source subtasks in an order that depends
/// on thread timing, so FIRST_VALUE and LAST_VALUE (arrival order) are left
/// out of the comparison; everything else must match exactly (floats are
/// rounded to 6 decimals by `read_results`).
fn order_insensitive(mut rows: Vec<WindowResult>) -> Vec<WindowResult> {
    for r in &mut rows {
        r.first_v = None;
        r.last_v = None;
    }
    rows.sort();
    rows
}

#[test]
fn four_threads_give_the_same_multiset_as_one() -> Result<()> {
    let (hop1, session1) = run(1)?;
    let (hop4, session4) = run(4)?;
    // Times span 30 s: 63 hop windows, each with all 50 keys.
    assert_eq!(hop1.len(), 63 * 50, "hop rows");
    assert!(!session1.is_empty());
    assert_eq!(first_difference(&hop1, &hop4), None, "hop results differ");
    assert_eq!(
        first_difference(&session1, &session4),
        None,
        "session results differ"
    );
    Ok(())
}

/// The first row where two sorted result lists differ (short failure output).
fn first_difference(a: &[WindowResult], b: &[WindowResult]) -> Option<String> {
    if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
        return Some(format!("row {i}: {:?} vs {:?}", a[i], b[i]));
    }
    (a.len() != b.len()).then(|| format!("{} rows vs {} rows", a.len(), b.len()))
}
