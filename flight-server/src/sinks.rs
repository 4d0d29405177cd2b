//! The sink of ad-hoc queries: batches go to the client's stream.

use std::sync::Arc;

use arrow::array::RecordBatch;
use runnel_engine::error::{EngineError, Result};
use runnel_engine::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use tokio::sync::mpsc;

/// A factory of sinks that send every non-empty batch into `tx`. When the
/// receiving side is gone (the client went away) the sink fails with
/// [`EngineError::Cancelled`], which ends the job.
pub fn channel_sink(tx: mpsc::Sender<RecordBatch>) -> OperatorFactory {
    Arc::new(move |_task: &TaskInfo| {
        Ok(Box::new(ChannelSink { tx: tx.clone() }) as Box<dyn Operator>)
    })
}

struct ChannelSink {
    tx: mpsc::Sender<RecordBatch>,
}

impl Operator for ChannelSink {
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
        // Engine threads are not async tasks, so blocking here is the
        // backpressure of a slow client.
        self.tx
            .blocking_send(batch)
            .map_err(|_| EngineError::Cancelled)
    }
}
