//! Running a small bounded job on the caller's thread.
//!
//! A query over tables the process already holds in memory (a materialized
//! view's snapshot, a system table) needs none of what [`super::Job`]
//! sets up: no threads, channels, checkpoints or RocksDB. [`run_local`]
//! runs such a graph in one thread with one instance of every operator
//! (one per subtask for sources, which split their input by subtask) and
//! state in memory, pushing batches from node to node in the order the
//! graph's edges give.
//!
//! Time: sources are read to their end, and only then does every operator
//! see the end-of-input watermark, in topological order, followed by
//! `on_end`. No row is late, as when a bounded table is read as a batch.
//! Watermarks a source emits on its own are not passed on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use runnel_state::MemoryStateBackend;

use crate::error::{EngineError, Result};
use crate::graph::{JobGraph, NodeId, NodeKind};
use crate::operator::{Operator, OperatorContext, OperatorMetrics, TaskInfo, VecCollector};
use crate::source::{Source, SourcePoll};
use crate::types::EventTime;

/// Polls of a source that returned nothing before the run gives up: an
/// in-memory source has its rows at once.
const MAX_PENDING_POLLS: usize = 10_000;

struct LocalOperator {
    op: Box<dyn Operator>,
    state: MemoryStateBackend,
    task: TaskInfo,
    metrics: Arc<OperatorMetrics>,
}

impl LocalOperator {
    /// Calls `f` with the operator and its context; an error names the
    /// operator.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut dyn Operator, &mut OperatorContext<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut ctx = OperatorContext {
            task: &self.task,
            state: &mut self.state,
            metrics: &self.metrics,
        };
        f(self.op.as_mut(), &mut ctx)
            .map_err(|e| EngineError::Execution(format!("{}: {e}", self.task.operator_name)))
    }
}

enum Instance {
    /// One instance per subtask the graph gives the source, read one after
    /// the other: each reads its share of the splits.
    Source(Vec<Box<dyn Source>>),
    Operator(Box<LocalOperator>),
}

/// Runs the bounded `graph` to its end on this thread, every node with
/// one instance and its state in memory. Errors name the node, as a job's
/// do. Setting `cancel` stops it between two batches with
/// [`EngineError::Cancelled`].
pub fn run_local(graph: &JobGraph, cancel: &AtomicBool) -> Result<()> {
    graph.validate()?;
    let order = graph.topological_order()?;
    let mut instances: Vec<Option<Instance>> = Vec::with_capacity(graph.nodes().len());
    for node in graph.nodes() {
        let task = TaskInfo {
            operator_name: node.name.clone(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: graph.max_parallelism,
            checkpointing: false,
            memory_budget: None,
        };
        let metrics = Arc::new(OperatorMetrics::default());
        let named = |e: EngineError| EngineError::Execution(format!("{}: {e}", node.name));
        let instance = match &node.kind {
            NodeKind::Source { factory, .. } => {
                let n = node.parallelism.max(1);
                let mut subtasks = Vec::with_capacity(n);
                for subtask in 0..n {
                    let task = TaskInfo {
                        subtask,
                        parallelism: n,
                        ..task.clone()
                    };
                    let mut source = factory(&task).map_err(named)?;
                    source.open(&task, &metrics).map_err(named)?;
                    subtasks.push(source);
                }
                Instance::Source(subtasks)
            }
            NodeKind::Operator { factory } => {
                let mut local = Box::new(LocalOperator {
                    op: factory(&task).map_err(named)?,
                    state: MemoryStateBackend::new(),
                    task,
                    metrics,
                });
                local.call(|op, ctx| op.open(ctx))?;
                Instance::Operator(local)
            }
        };
        instances.push(Some(instance));
    }
    let mut run = LocalRun {
        graph,
        instances,
        queue: VecDeque::new(),
        cancel,
    };
    for &id in &order {
        run.read_source(id)?;
    }
    for &id in &order {
        run.drain()?;
        run.finish(id)?;
    }
    run.drain()
}

struct LocalRun<'g> {
    graph: &'g JobGraph,
    instances: Vec<Option<Instance>>,
    /// Batches on their way: (receiving node, its input number, batch).
    queue: VecDeque<(NodeId, usize, RecordBatch)>,
    cancel: &'g AtomicBool,
}

impl LocalRun<'_> {
    fn name(&self, id: NodeId) -> &str {
        self.graph.nodes().get(id).map_or("?", |n| n.name.as_str())
    }

    fn named(&self, id: NodeId) -> impl Fn(EngineError) -> EngineError + '_ {
        move |e| EngineError::Execution(format!("{}: {e}", self.name(id)))
    }

    /// Sends what node `from` emitted along each of its edges.
    fn emit(&mut self, from: NodeId, batches: Vec<RecordBatch>) {
        let edges = self.graph.outputs_of(from);
        for batch in batches {
            for e in &edges {
                self.queue.push_back((e.to, e.input, batch.clone()));
            }
        }
    }

    /// Reads source `id` (if it is one) to its end.
    fn read_source(&mut self, id: NodeId) -> Result<()> {
        let Some(Some(Instance::Source(subtasks))) = self.instances.get_mut(id) else {
            return Ok(());
        };
        let mut pending = 0;
        let mut out = Vec::new();
        for source in subtasks.iter_mut() {
            loop {
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(EngineError::Cancelled);
                }
                let polled = source.poll();
                match polled {
                    Ok(SourcePoll::Batch { batch, .. }) => {
                        if batch.num_rows() > 0 {
                            out.push(batch);
                        }
                    }
                    Ok(SourcePoll::Watermark(_)) | Ok(SourcePoll::SplitFinished(_)) => {}
                    Ok(SourcePoll::Pending) => {
                        pending += 1;
                        if pending > MAX_PENDING_POLLS {
                            return Err(EngineError::Internal(format!(
                                "{}: an in-memory source kept answering 'pending'",
                                self.name(id)
                            )));
                        }
                        std::thread::yield_now();
                    }
                    Ok(SourcePoll::Finished) => break,
                    Err(e) => return Err((self.named(id))(e)),
                }
            }
        }
        self.emit(id, out);
        Ok(())
    }

    /// Delivers every queued batch, and what delivering them emits.
    fn drain(&mut self) -> Result<()> {
        while let Some((to, input, batch)) = self.queue.pop_front() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            let mut out = VecCollector::default();
            if let Some(Some(Instance::Operator(local))) = self.instances.get_mut(to) {
                local.call(|op, ctx| op.process_batch(input, batch, ctx, &mut out))?;
            }
            self.emit(to, out.batches);
        }
        Ok(())
    }

    /// Node `id`'s inputs have all ended: the final watermark, then the end.
    fn finish(&mut self, id: NodeId) -> Result<()> {
        let mut out = VecCollector::default();
        if let Some(Some(Instance::Operator(local))) = self.instances.get_mut(id) {
            local.call(|op, ctx| {
                op.on_watermark(EventTime::MAX, ctx, &mut out)?;
                op.on_end(ctx, &mut out)
            })?;
        }
        // Dropping the instance ends it (a sink closes its channel).
        if let Some(slot) = self.instances.get_mut(id) {
            *slot = None;
        }
        self.emit(id, out.batches);
        Ok(())
    }
}
