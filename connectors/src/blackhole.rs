//! `blackhole`: a sink that drops every row, for benchmarks and for running
//! a query only for its side effects (metrics, checkpoints).

use std::sync::Arc;

use arrow::array::RecordBatch;
use runnel_engine::connector::{Connector, SourceTable, TableDescriptor};
use runnel_engine::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use runnel_engine::{EngineError, Result};

/// The `blackhole` connector (sink only; accepts updating streams).
#[derive(Debug, Default, Clone, Copy)]
pub struct BlackholeConnector;

impl Connector for BlackholeConnector {
    fn name(&self) -> &'static str {
        "blackhole"
    }

    fn options(&self) -> &'static [&'static str] {
        &[]
    }

    fn source(&self, table: &TableDescriptor) -> Result<SourceTable> {
        Err(EngineError::Plan(format!(
            "connector 'blackhole' of table '{}' can only be written, not read",
            table.name
        )))
    }

    fn sink(&self, _table: &TableDescriptor, _updating: bool) -> Result<OperatorFactory> {
        Ok(Arc::new(|_task: &TaskInfo| {
            Ok(Box::new(BlackholeSink) as Box<dyn Operator>)
        }))
    }
}

/// One subtask of the blackhole sink. It keeps nothing, so it needs
/// nothing from checkpoints.
#[derive(Debug)]
struct BlackholeSink;

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
