//! Helpers shared by the unit tests: building table descriptors and
//! draining sources by hand.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use runnel_engine::connector::{SourceTable, TableDescriptor};
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::source::SourcePoll;
use runnel_engine::Result;

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
