//! A source that replays a fixed script of batches, watermarks and pauses,
//! so that a test decides exactly what arrives in which order.

use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::error::Result;
use crate::operator::{OperatorMetrics, TaskInfo};
use crate::source::{Source, SourceFactory, SourcePoll, SplitId};
use crate::types::EventTime;

/// One scripted step of a [`ScriptedSource`].
#[derive(Debug, Clone)]
pub enum ScriptStep {
    /// Emit rows on the given split.
    Batch(SplitId, RecordBatch),
    /// Emit an explicit watermark.
    Watermark(EventTime),
    /// Return `Pending` this many times (lets time pass for idleness tests).
    Pause(u32),
}

/// A bounded source that replays a fixed script per subtask: the factory
/// gives subtask `i` the script `scripts[i]`. Used by tests to control
/// exactly which rows and watermarks arrive in which order.
#[derive(Debug)]
pub struct ScriptedSource {
    steps: std::vec::IntoIter<ScriptStep>,
    splits: Vec<SplitId>,
    pausing: u32,
    /// Steps taken so far: the position for checkpoints.
    taken: u64,
}

impl ScriptedSource {
    /// A factory that hands `scripts[subtask]` to each subtask (an empty
    /// script for subtasks past the end).
    pub fn factory(scripts: Vec<Vec<ScriptStep>>) -> SourceFactory {
        let scripts = Arc::new(scripts);
        Arc::new(move |task: &TaskInfo| {
            let steps = scripts.get(task.subtask).cloned().unwrap_or_default();
            let mut splits: Vec<SplitId> = steps
                .iter()
                .filter_map(|s| match s {
                    ScriptStep::Batch(split, _) => Some(*split),
                    _ => None,
                })
                .collect();
            splits.sort_unstable();
            splits.dedup();
            Ok(Box::new(ScriptedSource {
                steps: steps.into_iter(),
                splits,
                pausing: 0,
                taken: 0,
            }) as Box<dyn Source>)
        })
    }

    /// The schema-less convenience: one subtask, one split, batches only.
    pub fn single(batches: Vec<RecordBatch>) -> SourceFactory {
        Self::factory(vec![batches
            .into_iter()
            .map(|b| ScriptStep::Batch(0, b))
            .collect()])
    }
}

impl Source for ScriptedSource {
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        Ok(self.taken.to_le_bytes().to_vec())
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        let bytes: [u8; 8] = position.try_into().map_err(|_| {
            crate::error::EngineError::Internal("a scripted source position is 8 bytes".into())
        })?;
        let n = u64::from_le_bytes(bytes);
        for _ in 0..n {
            self.steps.next();
        }
        self.taken = n;
        Ok(())
    }

    fn open(&mut self, _task: &TaskInfo, _metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        Ok(self.splits.clone())
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        if self.pausing > 0 {
            self.pausing -= 1;
            return Ok(SourcePoll::Pending);
        }
        self.taken += 1;
        Ok(match self.steps.next() {
            Some(ScriptStep::Batch(split, batch)) => SourcePoll::Batch { split, batch },
            Some(ScriptStep::Watermark(wm)) => SourcePoll::Watermark(wm),
            Some(ScriptStep::Pause(n)) => {
                self.pausing = n;
                SourcePoll::Pending
            }
            None => SourcePoll::Finished,
        })
    }
}
