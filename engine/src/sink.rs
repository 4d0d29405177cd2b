//! Sinks that need no external system: one that drops everything and one
//! that prints. Sinks are operators without outputs; the in-memory sinks
//! that tests read back are in [`crate::testing`].

use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::error::Result;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};

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
