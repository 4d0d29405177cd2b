//! Helpers shared by the unit tests: building table descriptors, draining
//! sources by hand, resuming sources from a snapshot position, and driving
//! an operator through checkpoints with crash and restore.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use runnel_engine::connector::{SourceTable, TableDescriptor};
use runnel_engine::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorMetrics, TaskInfo, VecCollector,
};
use runnel_engine::source::{Source, SourcePoll, SplitId};
use runnel_engine::types::Barrier;
use runnel_engine::Result;
use runnel_state::{MemorySnapshot, MemoryStateBackend};

/// A table with these columns and options.
pub(crate) fn table(fields: Vec<Field>, options: &[(&str, &str)]) -> TableDescriptor {
    TableDescriptor {
        name: "t".into(),
        schema: Arc::new(Schema::new(fields)),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        watermark: None,
        primary_key: vec![],
        partition_keys: vec![],
    }
}

/// Subtask `subtask` of `parallelism`.
pub(crate) fn task(subtask: usize, parallelism: usize) -> TaskInfo {
    TaskInfo {
        operator_name: "test".into(),
        subtask,
        parallelism,
        max_parallelism: 128,
        checkpointing: false,
        memory_budget: None,
    }
}

/// Subtask `subtask` of `parallelism` of a job that takes checkpoints.
pub(crate) fn checkpoint_task(subtask: usize, parallelism: usize) -> TaskInfo {
    TaskInfo {
        operator_name: "sink".into(),
        checkpointing: true,
        memory_budget: None,
        ..task(subtask, parallelism)
    }
}

/// The values of the first column (BIGINT, NULLs left out) of `batches`,
/// sorted: the ids a test wrote, as a reader sees them.
pub(crate) fn sorted_ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("id is BIGINT")
                .iter()
                .flatten()
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_unstable();
    out
}

/// The ids of `r`, as [`sorted_ids`] returns them.
pub(crate) fn range(r: std::ops::Range<i64>) -> Vec<i64> {
    r.collect()
}

/// Every row of `batches` printed, in order.
pub(crate) fn rows_of(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(crate::print::format_rows(batch)?);
    }
    Ok(rows)
}

/// Polls `src` until `Finished`, or until it has returned `max_batches`
/// batches. Returns the batches and the splits it reported finished.
pub(crate) fn poll_batches(
    src: &mut dyn Source,
    max_batches: usize,
) -> Result<(Vec<RecordBatch>, Vec<SplitId>, bool)> {
    let mut batches = Vec::new();
    let mut finished = Vec::new();
    let mut polls = 0u64;
    while batches.len() < max_batches {
        polls += 1;
        assert!(polls < 10_000_000, "source never finished");
        match src.poll()? {
            SourcePoll::Batch { batch, .. } => batches.push(batch),
            SourcePoll::SplitFinished(split) => finished.push(split),
            SourcePoll::Finished => return Ok((batches, finished, true)),
            SourcePoll::Pending | SourcePoll::Watermark(_) => {}
        }
    }
    Ok((batches, finished, false))
}

/// For every cut point `k`: runs subtask `subtask` for `k` batches, takes
/// its position, resumes a fresh instance from it and runs that to the end.
/// Checks that the first run's rows followed by the resumed run's rows are
/// exactly the rows of an uninterrupted run, in order, and that the resumed
/// instance reports every split it opened as finished. Returns the number
/// of batches of the uninterrupted run (so callers can check that the cuts
/// fell inside files, not only between them).
pub(crate) fn check_resume_everywhere(
    source: &SourceTable,
    subtask: usize,
    parallelism: usize,
) -> Result<usize> {
    let task = task(subtask, parallelism);
    let metrics = Arc::new(OperatorMetrics::default());
    let mut whole = (source.factory)(&task)?;
    whole.open(&task, &metrics)?;
    let (all, _, done) = poll_batches(whole.as_mut(), usize::MAX)?;
    assert!(done);
    let expected = rows_of(&all)?;
    // One cut past the end too: a position taken after `Finished`.
    for k in 0..=all.len() + 1 {
        let mut first = (source.factory)(&task)?;
        first.open(&task, &metrics)?;
        let (head, _, _) = poll_batches(first.as_mut(), k)?;
        let position = first.snapshot_position()?;
        drop(first);

        let mut second = (source.factory)(&task)?;
        let mut open = second.open(&task, &metrics)?;
        second.restore_position(&position)?;
        let (tail, finished, done) = poll_batches(second.as_mut(), usize::MAX)?;
        assert!(done, "resumed source finishes");
        open.retain(|s| !finished.contains(s));
        assert!(open.is_empty(), "cut {k}: splits never finished: {open:?}");

        let mut got = rows_of(&head)?;
        got.extend(rows_of(&tail)?);
        assert_eq!(
            got.len(),
            expected.len(),
            "cut {k} of {}: row count",
            all.len()
        );
        let first_difference = got.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(
            first_difference,
            None,
            "cut {k} of {}: rows differ from row {first_difference:?} on",
            all.len()
        );
    }
    Ok(all.len())
}

/// Drives one operator by hand in a job that takes checkpoints, with a
/// state backend that can be snapshotted (a checkpoint) and restored into a
/// new instance (a recovery). Unlike the engine's `OperatorHarness`, the
/// task has `checkpointing: true` and checkpoints can be completed.
pub(crate) struct CheckpointHarness {
    op: Box<dyn Operator>,
    state: MemoryStateBackend,
    task: TaskInfo,
    metrics: Arc<OperatorMetrics>,
    out: VecCollector,
}

impl CheckpointHarness {
    /// Creates subtask `subtask` of `parallelism` from `factory` and opens
    /// it with the state of `snapshot` (empty for a first start).
    pub(crate) fn open(
        factory: &OperatorFactory,
        subtask: usize,
        parallelism: usize,
        snapshot: &MemorySnapshot,
    ) -> Result<Self> {
        let task = checkpoint_task(subtask, parallelism);
        let mut h = Self {
            op: factory(&task)?,
            state: MemoryStateBackend::restore(snapshot),
            task,
            metrics: Arc::new(OperatorMetrics::default()),
            out: VecCollector::default(),
        };
        let mut ctx = OperatorContext {
            task: &h.task,
            state: &mut h.state,
            metrics: &h.metrics,
        };
        h.op.open(&mut ctx)?;
        Ok(h)
    }

    /// Feeds one batch on input 0.
    pub(crate) fn batch(&mut self, batch: RecordBatch) -> Result<()> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        self.op.process_batch(0, batch, &mut ctx, &mut self.out)
    }

    /// Delivers barrier `id` and returns the state snapshot the runtime
    /// would store for that checkpoint.
    pub(crate) fn barrier(&mut self, id: u64) -> Result<MemorySnapshot> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        let barrier = Barrier {
            checkpoint_id: id,
            timestamp: 0,
            then_stop: false,
        };
        self.op.on_barrier(&barrier, &mut ctx)?;
        Ok(self.state.snapshot())
    }

    /// Reports checkpoint `id` complete.
    pub(crate) fn complete(&mut self, id: u64) -> Result<()> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        self.op.on_checkpoint_complete(id, &mut ctx)
    }

    /// Ends the input and returns the snapshot of the final checkpoint.
    pub(crate) fn end(&mut self) -> Result<MemorySnapshot> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        self.op.on_end(&mut ctx, &mut self.out)?;
        Ok(self.state.snapshot())
    }
}

/// What a bounded source produced, per subtask, and its shared counters.
pub(crate) struct Drained {
    pub(crate) batches: Vec<Vec<RecordBatch>>,
    pub(crate) metrics: Arc<OperatorMetrics>,
}

impl Drained {
    /// All batches of all subtasks.
    pub(crate) fn all(&self) -> Vec<RecordBatch> {
        self.batches.iter().flatten().cloned().collect()
    }

    /// Rows read by each subtask.
    pub(crate) fn per_subtask_rows(&self) -> Vec<usize> {
        self.batches
            .iter()
            .map(|b| b.iter().map(RecordBatch::num_rows).sum())
            .collect()
    }

    /// Total rows.
    pub(crate) fn rows(&self) -> usize {
        self.all().iter().map(RecordBatch::num_rows).sum()
    }

    /// Every row printed, sorted: a multiset that ignores order.
    pub(crate) fn sorted_rows(&self) -> Result<Vec<String>> {
        let mut rows = Vec::new();
        for batch in self.all() {
            rows.extend(crate::print::format_rows(&batch)?);
        }
        rows.sort();
        Ok(rows)
    }
}

/// Runs every subtask of `source` at `parallelism` to `Finished`, checking
/// that each finishes every split it opened.
pub(crate) fn drain(source: &SourceTable, parallelism: usize) -> Result<Drained> {
    let metrics = Arc::new(OperatorMetrics::default());
    let mut batches = Vec::new();
    for subtask in 0..parallelism {
        let task = task(subtask, parallelism);
        let mut src = (source.factory)(&task)?;
        let mut open = src.open(&task, &metrics)?;
        let mut mine = Vec::new();
        let mut polls = 0u64;
        loop {
            polls += 1;
            assert!(polls < 10_000_000, "source never finished");
            match src.poll()? {
                SourcePoll::Batch { split, batch } => {
                    assert!(open.contains(&split), "batch from unopened split {split}");
                    mine.push(batch);
                }
                SourcePoll::SplitFinished(split) => open.retain(|s| *s != split),
                SourcePoll::Finished => break,
                SourcePoll::Pending | SourcePoll::Watermark(_) => {}
            }
        }
        assert!(open.is_empty(), "splits left unfinished: {open:?}");
        batches.push(mine);
    }
    Ok(Drained { batches, metrics })
}

/// A fresh, empty directory under the system temp dir; removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "runnel-connectors-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir can be created");
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("test file can be written");
        path
    }

    /// Names in the directory, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("temp dir is readable")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
