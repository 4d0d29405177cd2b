//! Property: a job killed after any complete checkpoint and restored from
//! it produces, together with what the first run had published up to that
//! checkpoint, exactly the output of a run that never failed.
//!
//! The first run takes checkpoints while it runs and is then cancelled (a
//! crash: no further commit). A checkpoint is picked at random, newer ones
//! are deleted as if they had never completed, and a second run restores
//! from it. The sink is two-phase (staged at the barrier, published when
//! the checkpoint completes, re-published on restore), so the output up to
//! the chosen checkpoint is what was staged at barriers up to it. A second
//! property restores at another parallelism (rescaling).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use arrow::array::RecordBatch;
use proptest::prelude::*;
use runnel_engine::graph::{CheckpointConfig, Exchange, JobGraph};
use runnel_engine::operator::OperatorFactory;
use runnel_engine::runtime::Job;
use runnel_engine::testing::{CommittedHandle, MemorySinkHandle};
use runnel_engine::testing::{ScriptStep, ScriptedSource};
use runnel_engine::window::WindowSpec;
use runnel_state::CheckpointStore;

use crate::common::{batch, read_results, window_factory};
use crate::window_oracle::{input, window_spec, Step};

fn graph(
    spec: WindowSpec,
    steps: &[Step],
    sink: OperatorFactory,
    checkpoints: Option<PathBuf>,
    parallelism: usize,
) -> JobGraph {
    // A pause after each step keeps the job running long enough to take
    // checkpoints in between.
    let script: Vec<ScriptStep> = steps
        .iter()
        .flat_map(|s| {
            [
                ScriptStep::Batch(0, batch(&s.rows)),
                ScriptStep::Watermark(s.watermark),
                ScriptStep::Pause(2),
            ]
        })
        .collect();
    let mut g = JobGraph::new();
    let src = g.add_source("script", 1, ScriptedSource::factory(vec![script]), None);
    let factory = window_factory(spec);
    let agg = g.add_operator("window", parallelism, factory);
    let out = g.add_operator("sink", parallelism, sink);
    g.connect(src, agg, Exchange::Hash(vec![1])).expect("edge");
    g.connect(agg, out, Exchange::Forward).expect("edge");
    g.checkpointing = checkpoints.map(|dir| CheckpointConfig {
        dir,
        interval: Duration::from_secs(3600),
        retained: 1000,
        fingerprint: "recovery-test".into(),
        storage_options: Vec::new(),
        restore_from: None,
    });
    g
}

fn temp_dir(case: u64) -> PathBuf {
    // Unique per call: the two properties run at once and draw the same cases.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!(
        "runnel-recovery-{}-{call}-{case}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `parallelism`: of the window aggregate and the sink in the first run and
/// in the restored one (a rescale when they differ).
fn run_case(
    spec: WindowSpec,
    steps: &[Step],
    pick: prop::sample::Index,
    case: u64,
    parallelism: (usize, usize),
) -> Result<(), TestCaseError> {
    let expected_sink = MemorySinkHandle::new();
    Job::run(graph(spec, steps, expected_sink.factory(), None, 2))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let expected = read_results(&expected_sink.batches());

    let dir = temp_dir(case);
    let first = CommittedHandle::new();
    let job = Job::start(graph(
        spec,
        steps,
        first.factory(),
        Some(dir.clone()),
        parallelism.0,
    ))
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    // Checkpoint a few times while it runs, then crash it.
    for _ in 0..4 {
        if job.is_finished() {
            break;
        }
        let _ = job.checkpoint(Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(15));
    }
    job.cancel();
    let _ = job.wait();

    let store = CheckpointStore::new(&dir, 1000);
    let complete = store
        .complete()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    if complete.is_empty() {
        // Crashed before the first checkpoint: the restart starts over and
        // the first run must have published nothing.
        prop_assert!(first.entries().is_empty());
    }
    let chosen = (!complete.is_empty()).then(|| complete[pick.index(complete.len())].clone());
    for c in complete
        .iter()
        .filter(|c| chosen.as_ref().is_some_and(|k| c.id > k.id))
    {
        std::fs::remove_dir_all(&c.dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let second = CommittedHandle::new();
    Job::run(graph(
        spec,
        steps,
        second.factory(),
        Some(dir.clone()),
        parallelism.1,
    ))
    .map_err(|e| TestCaseError::fail(e.to_string()))?;

    // Output up to checkpoint k is what was staged at barriers up to k:
    // published by the first run, or (if the crash came first) by the
    // second run's restore. Staged entries are identified by (subtask,
    // staging checkpoint), so one published by both runs counts once.
    let k = chosen.map_or(0, |c| c.id);
    let mut committed: BTreeMap<(usize, u64), Vec<RecordBatch>> = BTreeMap::new();
    let by_entry = |h: &CommittedHandle| {
        let mut m: BTreeMap<(usize, u64), Vec<RecordBatch>> = BTreeMap::new();
        for (subtask, staged_at, b) in h.entries() {
            m.entry((subtask, staged_at)).or_default().push(b);
        }
        m
    };
    committed.extend(
        by_entry(&first)
            .into_iter()
            .filter(|((_, staged_at), _)| *staged_at <= k),
    );
    committed.extend(by_entry(&second));
    let batches: Vec<RecordBatch> = committed.into_values().flatten().collect();
    let got = read_results(&batches);
    let _ = std::fs::remove_dir_all(&dir);
    prop_assert_eq!(
        got.len(),
        expected.len(),
        "rows after restoring checkpoint {} of {:?}",
        k,
        complete.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    prop_assert!(
        got == expected,
        "different rows after restoring checkpoint {}",
        k
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn restoring_any_checkpoint_gives_the_uninterrupted_output(
        spec in window_spec(),
        steps in input(),
        pick in any::<prop::sample::Index>(),
        case in any::<u64>(),
    ) {
        run_case(spec, &steps, pick, case, (2, 2))?;
    }

    /// The same after restoring at another parallelism: key groups move
    /// between window subtasks, and the sink subtasks take over the
    /// staged commits of the old ones.
    #[test]
    fn restoring_at_another_parallelism_gives_the_uninterrupted_output(
        spec in window_spec(),
        steps in input(),
        pick in any::<prop::sample::Index>(),
        case in any::<u64>(),
        before in 1usize..5,
        after in 1usize..5,
    ) {
        run_case(spec, &steps, pick, case, (before, after))?;
    }
}
