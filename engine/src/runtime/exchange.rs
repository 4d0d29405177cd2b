//! The edges between chains: bounded channels wired per pair of
//! communicating subtasks, and how a subtask sends on them (forward,
//! broadcast, round-robin or hash exchange).

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use crossbeam::channel::{self, Receiver, SendTimeoutError, Sender};
use runnel_state::{key_group_for_hash, subtask_for_key_group};

use super::shared::{Shared, POLL_INTERVAL};
use crate::error::{EngineError, Result};
use crate::graph::{Exchange, JobGraph, NodeId};
use crate::keys::{hash_key, KeyEncoder};
use crate::types::Message;

/// Sends with periodic looks at the cancel flag.
fn send(tx: &Sender<Message>, msg: Message, shared: &Shared) -> Result<()> {
    let mut msg = msg;
    loop {
        match tx.send_timeout(msg, POLL_INTERVAL) {
            Ok(()) => return Ok(()),
            Err(SendTimeoutError::Timeout(m)) => {
                if shared.cancelled() {
                    return Err(EngineError::Cancelled);
                }
                msg = m;
            }
            // The receiver is gone: it failed or was cancelled.
            Err(SendTimeoutError::Disconnected(_)) => return Err(EngineError::Cancelled),
        }
    }
}

/// One outgoing edge of a subtask.
pub(super) struct OutEdge {
    exchange: Exchange,
    /// Sender per receiving subtask (`None` where the exchange sends nothing).
    targets: Vec<Option<Sender<Message>>>,
    encoder: Option<KeyEncoder>,
    /// Next receiver for round-robin.
    next: usize,
    max_parallelism: u16,
}

impl OutEdge {
    /// Sends `batch` as the exchange says: to the one forward target, to
    /// every target (broadcast), to the next target in turn (round-robin),
    /// or, for a hash exchange, each row to the subtask that owns its key
    /// group.
    fn send_batch(&mut self, batch: RecordBatch, shared: &Shared) -> Result<()> {
        match &self.exchange {
            Exchange::Forward => {
                for tx in self.targets.iter().flatten() {
                    send(tx, Message::Batch(batch.clone()), shared)?;
                }
                Ok(())
            }
            Exchange::Broadcast => {
                for tx in self.targets.iter().flatten() {
                    send(tx, Message::Batch(batch.clone()), shared)?;
                }
                Ok(())
            }
            Exchange::RoundRobin => {
                let n = self.targets.len();
                for _ in 0..n {
                    let i = self.next % n;
                    self.next = self.next.wrapping_add(1);
                    if let Some(tx) = &self.targets[i] {
                        return send(tx, Message::Batch(batch), shared);
                    }
                }
                Ok(())
            }
            Exchange::Hash(cols) => {
                if self.encoder.is_none() {
                    self.encoder = Some(KeyEncoder::new(batch.schema_ref(), cols)?);
                }
                let Some(encoder) = &self.encoder else {
                    return Err(EngineError::Internal("key encoder missing".into()));
                };
                let per_target =
                    route_by_key(encoder, &batch, self.targets.len(), self.max_parallelism)?;
                for (t, idx) in per_target.into_iter().enumerate() {
                    if idx.is_empty() {
                        continue;
                    }
                    let part = if idx.len() == batch.num_rows() {
                        batch.clone()
                    } else {
                        arrow::compute::take_record_batch(&batch, &UInt32Array::from(idx))?
                    };
                    if let Some(tx) = &self.targets[t] {
                        send(tx, Message::Batch(part), shared)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn send_control(&self, msg: &Message, shared: &Shared) -> Result<()> {
        for tx in self.targets.iter().flatten() {
            send(tx, msg.clone(), shared)?;
        }
        Ok(())
    }
}

/// Where a hash exchange routes each row of `batch`: the row's key is
/// hashed to a key group, and each key group belongs to one of the
/// `receivers` subtasks (the same split as the state's, so a key's rows
/// meet its state). Returns the row indexes for each receiving subtask.
fn route_by_key(
    encoder: &KeyEncoder,
    batch: &RecordBatch,
    receivers: usize,
    max_parallelism: u16,
) -> Result<Vec<Vec<u32>>> {
    let rows = encoder.encode(batch)?;
    let mut per_target: Vec<Vec<u32>> = vec![Vec::new(); receivers];
    for (i, row) in rows.iter().enumerate() {
        let kg = key_group_for_hash(hash_key(row.as_ref()), max_parallelism);
        per_target[subtask_for_key_group(kg, receivers, max_parallelism)].push(i as u32);
    }
    Ok(per_target)
}

/// The outgoing edges of a chain's last operator.
pub(super) struct Router {
    pub(super) edges: Vec<OutEdge>,
    pub(super) shared: Arc<Shared>,
}

impl Router {
    pub(super) fn send_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        for e in &mut self.edges {
            e.send_batch(batch.clone(), &shared)?;
        }
        Ok(())
    }

    pub(super) fn send_control(&self, msg: Message) -> Result<()> {
        for e in &self.edges {
            e.send_control(&msg, &self.shared)?;
        }
        Ok(())
    }
}

/// The channels of a job before its subtasks take their ends.
pub(super) struct Wiring {
    /// The chain of every node.
    chain_of: Vec<usize>,
    /// `outputs[node][subtask]`: the edges leaving that subtask.
    outputs: Vec<Vec<Vec<OutEdge>>>,
    /// `inputs[chain][subtask]`: its input channels, with the input index
    /// of the edge that each belongs to.
    inputs: Vec<Vec<Vec<(usize, Receiver<Message>)>>>,
}

impl Wiring {
    /// Creates a bounded channel for every pair of subtasks that an edge
    /// between two chains connects (only equal subtask indexes for a
    /// forward edge). Chained edges need none: those operators call each
    /// other directly.
    pub(super) fn new(graph: &JobGraph, chains: &[Vec<NodeId>]) -> Self {
        let nodes = graph.nodes();
        let mut chain_of = vec![0usize; nodes.len()];
        for (c, chain) in chains.iter().enumerate() {
            for &n in chain {
                chain_of[n] = c;
            }
        }

        // Channels for every edge that crosses chains.
        // outputs[node][subtask] -> Vec<OutEdge>; inputs[chain][subtask] -> Vec<(input, Receiver)>
        let mut outputs: Vec<Vec<Vec<OutEdge>>> = nodes
            .iter()
            .map(|n| (0..n.parallelism).map(|_| Vec::new()).collect())
            .collect();
        let mut inputs: Vec<Vec<Vec<(usize, Receiver<Message>)>>> = chains
            .iter()
            .map(|c| (0..nodes[c[0]].parallelism).map(|_| Vec::new()).collect())
            .collect();
        for e in graph.edges().iter().filter(|e| !graph.is_chained(e)) {
            let (pf, pt) = (nodes[e.from].parallelism, nodes[e.to].parallelism);
            let mut senders: Vec<Vec<Option<Sender<Message>>>> = vec![vec![None; pt]; pf];
            for (j, row) in senders.iter_mut().enumerate() {
                for (i, slot) in row.iter_mut().enumerate() {
                    if e.exchange == Exchange::Forward && i != j {
                        continue;
                    }
                    let (tx, rx) = channel::bounded(graph.channel_capacity.max(1));
                    *slot = Some(tx);
                    inputs[chain_of[e.to]][i].push((e.input, rx));
                }
            }
            for (j, targets) in senders.into_iter().enumerate() {
                outputs[e.from][j].push(OutEdge {
                    exchange: e.exchange.clone(),
                    targets,
                    encoder: None,
                    next: j,
                    max_parallelism: graph.max_parallelism,
                });
            }
        }
        Self {
            chain_of,
            outputs,
            inputs,
        }
    }

    /// The router of subtask `subtask` of the chain whose last node is
    /// `tail`.
    pub(super) fn router(&mut self, tail: NodeId, subtask: usize, shared: Arc<Shared>) -> Router {
        Router {
            edges: std::mem::take(&mut self.outputs[tail][subtask]),
            shared,
        }
    }

    /// The input channels of subtask `subtask` of the chain whose first
    /// node is `head`.
    pub(super) fn inputs(
        &mut self,
        head: NodeId,
        subtask: usize,
    ) -> Vec<(usize, Receiver<Message>)> {
        std::mem::take(&mut self.inputs[self.chain_of[head]][subtask])
    }
}
