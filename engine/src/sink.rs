//! In-memory sinks for tests and demos. Sinks are operators without outputs.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;

use crate::error::{EngineError, Result};
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};

/// Batches received by a [`MemorySink`], shared by all its subtasks.
#[derive(Debug, Clone, Default)]
pub struct MemorySinkHandle(Arc<Mutex<Vec<RecordBatch>>>);

impl MemorySinkHandle {
    /// A new, empty handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything received so far (in arrival order per subtask).
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Total rows received.
    pub fn num_rows(&self) -> usize {
        self.batches().iter().map(RecordBatch::num_rows).sum()
    }

    /// A factory for sink subtasks that all append to this handle.
    pub fn factory(&self) -> OperatorFactory {
        let handle = self.clone();
        Arc::new(move |_task: &TaskInfo| {
            Ok(Box::new(MemorySink {
                handle: handle.clone(),
            }) as Box<dyn Operator>)
        })
    }
}

/// A sink that keeps every batch in memory.
#[derive(Debug)]
pub struct MemorySink {
    handle: MemorySinkHandle,
}

impl Operator for MemorySink {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.handle
            .0
            .lock()
            .map_err(|_| EngineError::Internal("memory sink lock poisoned".into()))?
            .push(batch);
        Ok(())
    }
}

/// A sink that drops everything (for benchmarks).
#[derive(Debug, Default)]
pub struct BlackholeSink;

impl BlackholeSink {
    /// A factory of blackhole sinks.
    pub fn factory() -> OperatorFactory {
        Arc::new(|_task: &TaskInfo| Ok(Box::new(BlackholeSink) as Box<dyn Operator>))
    }
}

impl Operator for BlackholeSink {
    fn process_batch(
        &mut self,
        _input: usize,
        _batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        Ok(())
    }
}

/// A sink that prints every batch as a table to standard output, prefixed
/// by a label (Flink's `print` connector, in table form).
#[derive(Debug)]
pub struct PrintSink {
    label: String,
}

impl PrintSink {
    /// A factory of print sinks with this label.
    pub fn factory(label: impl Into<String>) -> OperatorFactory {
        let label = label.into();
        Arc::new(move |_task: &TaskInfo| {
            Ok(Box::new(PrintSink {
                label: label.clone(),
            }) as Box<dyn Operator>)
        })
    }
}

impl Operator for PrintSink {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let table = arrow::util::pretty::pretty_format_batches(&[batch])?;
        // One write per batch so that tables of parallel subtasks do not interleave.
        println!("{}>\n{table}", self.label);
        Ok(())
    }
}
