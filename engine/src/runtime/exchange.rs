//! The edges between chains: where a subtask's output goes (forward,
//! broadcast, round-robin or hash exchange), how a hash exchange coalesces
//! rows per receiver, and the wiring of channels per pair of communicating
//! subtasks. The channels themselves come from the transport
//! (`transport.rs`).
//!
//! Coalescing: a hash exchange splits every batch among the receivers, so
//! at parallelism p each receiver would get a batch of about 1/p of the
//! rows. Instead, each receiver's rows are gathered (as row numbers into
//! the batches they came from) until there are [`COALESCE_ROWS`] of them,
//! and then copied into one batch in one go. Gathered rows are also sent
//! when a control message (watermark, barrier, latency marker, end) must
//! follow them, when the subtask has nothing more to read, and when the
//! oldest has waited the job's buffer timeout (`'execution.buffer-timeout'`),
//! so coalescing adds at most that much latency.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::interleave_record_batch;
use runnel_state::{key_group_for_hash, subtask_for_key_group};

use super::metrics::{batch_bytes, TaskMetrics};
use super::shared::Shared;
use super::transport::{local_channels, ChannelReceiver, ChannelSender};
use crate::error::{EngineError, Result};
use crate::graph::{Exchange, JobGraph, NodeId};
use crate::keys::{hash_key, KeyEncoder};
use crate::types::Message;

/// Rows a hash exchange gathers for one receiver before it sends them.
pub(super) const COALESCE_ROWS: usize = 1024;

/// Rows gathered for the receivers of a hash exchange, not yet sent.
#[derive(Default)]
struct Gathered {
    /// The batches the rows come from.
    batches: Vec<RecordBatch>,
    /// Per receiver: (batch, row) of each gathered row.
    rows: Vec<Vec<(usize, usize)>>,
    /// When the oldest gathered row arrived.
    since: Option<Instant>,
}

impl Gathered {
    fn is_empty(&self) -> bool {
        self.rows.iter().all(Vec::is_empty)
    }
}

/// One outgoing edge of a subtask.
pub(super) struct OutEdge {
    exchange: Exchange,
    /// Sender per receiving subtask (`None` where the exchange sends nothing).
    targets: Vec<Option<Box<dyn ChannelSender>>>,
    encoder: Option<KeyEncoder>,
    /// Next receiver for round-robin (and for latency markers).
    next: usize,
    max_parallelism: u16,
    gathered: Gathered,
}

/// Messages and rows a router sent, published to the job when it is done,
/// and the subtask's clock, which a send into a full channel marks as a
/// wait (backpressure).
#[derive(Debug, Default)]
struct Sent {
    batches: u64,
    rows: u64,
    controls: u64,
    /// Bytes of the batches not yet added to the subtask's [`TaskMetrics`].
    bytes: u64,
    task: Arc<TaskMetrics>,
}

impl OutEdge {
    fn send_to(&self, target: usize, msg: Message, shared: &Shared, sent: &mut Sent) -> Result<()> {
        let Some(Some(tx)) = self.targets.get(target) else {
            return Ok(());
        };
        match &msg {
            Message::Batch(b) => {
                sent.batches += 1;
                sent.rows += b.num_rows() as u64;
                sent.bytes += batch_bytes(b);
            }
            _ => sent.controls += 1,
        }
        // A send into a full channel waits: that wait is backpressure.
        tx.send(msg, &|| shared.cancelled(), &sent.task)
    }

    /// Sends `batch` as the exchange says: to the one forward target, to
    /// every target (broadcast), to the next target in turn (round-robin),
    /// or, for a hash exchange, each row to the subtask that owns its key
    /// group (gathered, see the module docs).
    fn send_batch(
        &mut self,
        batch: RecordBatch,
        shared: &Shared,
        timeout: Duration,
        sent: &mut Sent,
    ) -> Result<()> {
        match &self.exchange {
            Exchange::Forward | Exchange::Broadcast => {
                for t in 0..self.targets.len() {
                    self.send_to(t, Message::Batch(batch.clone()), shared, sent)?;
                }
                Ok(())
            }
            Exchange::RoundRobin => {
                let n = self.targets.len();
                for _ in 0..n {
                    let i = self.next % n;
                    self.next = self.next.wrapping_add(1);
                    if self.targets[i].is_some() {
                        return self.send_to(i, Message::Batch(batch), shared, sent);
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
                self.gather(batch, per_target, shared, timeout, sent)
            }
        }
    }

    /// Adds a batch's rows, split by receiver, to what is gathered; sends
    /// what is due.
    fn gather(
        &mut self,
        batch: RecordBatch,
        per_target: Vec<Vec<u32>>,
        shared: &Shared,
        timeout: Duration,
        sent: &mut Sent,
    ) -> Result<()> {
        let n = self.targets.len();
        if self.gathered.rows.len() != n {
            self.gathered.rows = vec![Vec::new(); n];
        }
        let rows = batch.num_rows();
        // A receiver that gets the whole batch, or enough rows with nothing
        // gathered before, takes its rows straight away.
        let mut keep = false;
        for (t, idx) in per_target.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            if self.gathered.rows[t].is_empty() && idx.len() >= COALESCE_ROWS.min(rows) {
                let part = if idx.len() == rows {
                    batch.clone()
                } else {
                    arrow::compute::take_record_batch(&batch, &UInt32Array::from(idx.clone()))?
                };
                self.send_to(t, Message::Batch(part), shared, sent)?;
            } else {
                keep = true;
            }
        }
        if keep {
            if self.gathered.is_empty() {
                // Nothing refers to the batches kept so far.
                self.gathered.batches.clear();
                self.gathered.since = None;
            }
            let b = self.gathered.batches.len();
            self.gathered.batches.push(batch);
            self.gathered.since.get_or_insert_with(Instant::now);
            for (t, idx) in per_target.iter().enumerate() {
                let mine = &mut self.gathered.rows[t];
                if idx.is_empty() || (mine.is_empty() && idx.len() >= COALESCE_ROWS.min(rows)) {
                    continue;
                }
                mine.extend(idx.iter().map(|&r| (b, r as usize)));
                if mine.len() >= COALESCE_ROWS {
                    self.flush_target(t, shared, sent)?;
                }
            }
        }
        if self
            .gathered
            .since
            .is_some_and(|since| since.elapsed() >= timeout)
        {
            self.flush(shared, sent)?;
        }
        Ok(())
    }

    /// Sends the rows gathered for receiver `t` as one batch.
    fn flush_target(&mut self, t: usize, shared: &Shared, sent: &mut Sent) -> Result<()> {
        let rows = std::mem::take(&mut self.gathered.rows[t]);
        if rows.is_empty() {
            return Ok(());
        }
        let sources: Vec<&RecordBatch> = self.gathered.batches.iter().collect();
        let batch = interleave_record_batch(&sources, &rows)?;
        self.send_to(t, Message::Batch(batch), shared, sent)
    }

    /// Sends everything gathered.
    fn flush(&mut self, shared: &Shared, sent: &mut Sent) -> Result<()> {
        for t in 0..self.gathered.rows.len() {
            self.flush_target(t, shared, sent)?;
        }
        self.gathered.batches.clear();
        self.gathered.since = None;
        Ok(())
    }

    /// Sends a control message after what is gathered: to every receiver,
    /// or a latency marker to one (it measures one path, as in Flink).
    fn send_control(&mut self, msg: &Message, shared: &Shared, sent: &mut Sent) -> Result<()> {
        self.flush(shared, sent)?;
        if let Message::LatencyMarker(_) = msg {
            let n = self.targets.len();
            for _ in 0..n {
                let i = self.next % n;
                self.next = self.next.wrapping_add(1);
                if self.targets[i].is_some() {
                    return self.send_to(i, msg.clone(), shared, sent);
                }
            }
            return Ok(());
        }
        for t in 0..self.targets.len() {
            self.send_to(t, msg.clone(), shared, sent)?;
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
    /// The longest a gathered row waits (`'execution.buffer-timeout'`).
    pub(super) buffer_timeout: Duration,
    sent: Sent,
    /// The subtask's time and bytes.
    pub(super) task: Arc<TaskMetrics>,
}

impl Router {
    pub(super) fn send_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        for e in &mut self.edges {
            e.send_batch(batch.clone(), &shared, self.buffer_timeout, &mut self.sent)?;
        }
        self.publish();
        Ok(())
    }

    pub(super) fn send_control(&mut self, msg: Message) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        for e in &mut self.edges {
            e.send_control(&msg, &shared, &mut self.sent)?;
        }
        self.publish();
        Ok(())
    }

    /// Adds the bytes sent since the last call to the subtask's counters.
    fn publish(&mut self) {
        let bytes = std::mem::take(&mut self.sent.bytes);
        if bytes > 0 {
            self.task.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Sends the rows of every edge whose oldest gathered row has waited
    /// the buffer timeout. Called between messages, so that rows gathered
    /// for an edge that gets no more batches do not wait for the next
    /// control message while the subtask is kept busy by others.
    pub(super) fn flush_expired(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let timeout = self.buffer_timeout;
        for e in &mut self.edges {
            if e.gathered
                .since
                .is_some_and(|since| since.elapsed() >= timeout)
            {
                e.flush(&shared, &mut self.sent)?;
            }
        }
        self.publish();
        Ok(())
    }

    /// Sends every row gathered so far (the subtask is about to wait).
    pub(super) fn flush(&mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        for e in &mut self.edges {
            e.flush(&shared, &mut self.sent)?;
        }
        self.publish();
        Ok(())
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let c = &self.shared.exchange;
        c.batches.fetch_add(self.sent.batches, Ordering::Relaxed);
        c.rows.fetch_add(self.sent.rows, Ordering::Relaxed);
        c.controls.fetch_add(self.sent.controls, Ordering::Relaxed);
    }
}

/// What flows into one subtask: its channels, and for each channel the
/// input (edge) of the chain's first operator it belongs to.
pub(super) struct Inbound {
    pub(super) receiver: Box<dyn ChannelReceiver>,
    pub(super) input_of: Vec<usize>,
}

/// The channels of a job before its subtasks take their ends.
pub(super) struct Wiring {
    /// The chain of every node.
    chain_of: Vec<usize>,
    /// `outputs[node][subtask]`: the edges leaving that subtask.
    outputs: Vec<Vec<Vec<OutEdge>>>,
    /// `inputs[chain][subtask]`: what flows into that subtask.
    inputs: Vec<Vec<Option<Inbound>>>,
    buffer_timeout: Duration,
}

impl Wiring {
    /// Creates a channel for every pair of subtasks that an edge between
    /// two chains connects (only equal subtask indexes for a forward edge).
    /// Chained edges need none: those operators call each other directly.
    pub(super) fn new(graph: &JobGraph, chains: &[Vec<NodeId>]) -> Self {
        let nodes = graph.nodes();
        let mut chain_of = vec![0usize; nodes.len()];
        for (c, chain) in chains.iter().enumerate() {
            for &n in chain {
                chain_of[n] = c;
            }
        }
        let crossing: Vec<_> = graph
            .edges()
            .iter()
            .filter(|e| !graph.is_chained(e))
            .collect();
        // Every channel, in one order: (edge, sending j, receiving i).
        let mut channels = Vec::new();
        for (k, e) in crossing.iter().enumerate() {
            let (pf, pt) = (nodes[e.from].parallelism, nodes[e.to].parallelism);
            for j in 0..pf {
                for i in 0..pt {
                    if e.exchange != Exchange::Forward || i == j {
                        channels.push((k, j, i));
                    }
                }
            }
        }
        // The channels into each receiving subtask, made together.
        let mut ends: Vec<Vec<Vec<Option<Box<dyn ChannelSender>>>>> = Vec::new();
        let mut inputs: Vec<Vec<Option<Inbound>>> = Vec::new();
        for c in chains {
            let par = nodes[c[0]].parallelism;
            let mut chain_ends = Vec::with_capacity(par);
            let mut chain_inputs = Vec::with_capacity(par);
            for i in 0..par {
                let mine: Vec<usize> = channels
                    .iter()
                    .filter(|(k, _, to)| *to == i && chain_of[crossing[*k].to] == chain_of[c[0]])
                    .map(|(k, ..)| crossing[*k].input)
                    .collect();
                let (senders, receiver) = local_channels(mine.len(), graph.channel_capacity.max(1));
                chain_ends.push(senders.into_iter().map(Some).collect::<Vec<_>>());
                chain_inputs.push(Some(Inbound {
                    receiver,
                    input_of: mine,
                }));
            }
            ends.push(chain_ends);
            inputs.push(chain_inputs);
        }
        let mut taken: Vec<Vec<usize>> = ends.iter().map(|c| vec![0; c.len()]).collect();
        let mut outputs: Vec<Vec<Vec<OutEdge>>> = nodes
            .iter()
            .map(|n| (0..n.parallelism).map(|_| Vec::new()).collect())
            .collect();
        for (k, e) in crossing.iter().enumerate() {
            let (pf, pt) = (nodes[e.from].parallelism, nodes[e.to].parallelism);
            let to_chain = chain_of[e.to];
            let mut senders: Vec<Vec<Option<Box<dyn ChannelSender>>>> =
                (0..pf).map(|_| (0..pt).map(|_| None).collect()).collect();
            for &(_, j, i) in channels.iter().filter(|(kk, ..)| *kk == k) {
                let slot = taken[to_chain][i];
                taken[to_chain][i] += 1;
                senders[j][i] = ends[to_chain][i][slot].take();
            }
            for (j, targets) in senders.into_iter().enumerate() {
                outputs[e.from][j].push(OutEdge {
                    exchange: e.exchange.clone(),
                    targets,
                    encoder: None,
                    next: j,
                    max_parallelism: graph.max_parallelism,
                    gathered: Gathered::default(),
                });
            }
        }
        Self {
            chain_of,
            outputs,
            inputs,
            buffer_timeout: graph.buffer_timeout,
        }
    }

    /// The router of subtask `subtask` of the chain whose last node is
    /// `tail`.
    pub(super) fn router(
        &mut self,
        tail: NodeId,
        subtask: usize,
        shared: Arc<Shared>,
        task: Arc<TaskMetrics>,
    ) -> Router {
        Router {
            edges: std::mem::take(&mut self.outputs[tail][subtask]),
            shared,
            buffer_timeout: self.buffer_timeout,
            sent: Sent {
                task: Arc::clone(&task),
                ..Sent::default()
            },
            task,
        }
    }

    /// What flows into subtask `subtask` of the chain whose first node is
    /// `head`.
    pub(super) fn inputs(&mut self, head: NodeId, subtask: usize) -> Result<Inbound> {
        self.inputs[self.chain_of[head]][subtask]
            .take()
            .ok_or_else(|| EngineError::Internal("a subtask's inputs were taken twice".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn keys(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    /// A hash exchange on column 0 to `receivers` local channels of
    /// `capacity` messages, and the receiving ends.
    fn hash_edge(receivers: usize, capacity: usize) -> (OutEdge, Vec<Box<dyn ChannelReceiver>>) {
        let mut targets = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..receivers {
            let (mut senders, rx) = local_channels(1, capacity);
            targets.push(senders.pop());
            ends.push(rx);
        }
        let edge = OutEdge {
            exchange: Exchange::Hash(vec![0]),
            targets,
            encoder: None,
            next: 0,
            max_parallelism: 128,
            gathered: Gathered::default(),
        };
        (edge, ends)
    }

    /// A hash exchange of many small batches to three receivers: every row
    /// reaches the receiver that owns its key, in the order it was sent,
    /// in batches of about `COALESCE_ROWS` rows rather than one per input
    /// batch and receiver.
    #[test]
    fn a_hash_exchange_gathers_rows_per_receiver_in_order() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let receivers = 3;
        let (mut edge, mut ends) = hash_edge(receivers, 10_000);
        let shared = Shared::default();
        let mut sent = Sent::default();
        let (mut all, mut next, mut seed) = (Vec::new(), 0i64, 7u64);
        while next < 200_000 {
            // Batches of 1 to 4,000 rows, mostly small; keys spread over the
            // receivers, some repeated, or all one key.
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let size = match (seed >> 33) % 4 {
                0 => 1 + (seed >> 40) % 4_000,
                _ => 1 + (seed >> 40) % 400,
            } as i64;
            // Now and then a batch of one hot key: one receiver gets it all.
            let hot = ((seed >> 20) % 3 == 0).then_some(((seed >> 24) % 5) as i64);
            let batch_keys: Vec<i64> = (0..size)
                .map(|i| hot.unwrap_or((next + i) % 7_001))
                .collect();
            next += size;
            all.extend(batch_keys.iter().copied());
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(batch_keys))],
            )?;
            edge.send_batch(batch, &shared, Duration::from_secs(3600), &mut sent)?;
        }
        edge.send_control(&Message::End, &shared, &mut sent)?;
        drop(edge);

        // Where each key belongs, row by row.
        let encoder = KeyEncoder::new(&schema, &[0])?;
        let owner = |k: i64| -> Result<usize> {
            let one = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(vec![k]))],
            )?;
            let routed = route_by_key(&encoder, &one, receivers, 128)?;
            Ok(routed
                .iter()
                .position(|r| !r.is_empty())
                .unwrap_or(usize::MAX))
        };
        let mut total_batches = 0;
        for (t, rx) in ends.iter_mut().enumerate() {
            let mut got = Vec::new();
            let mut batches = 0;
            loop {
                match rx.try_recv(&[true])? {
                    Some((_, Message::Batch(b))) => {
                        batches += 1;
                        got.extend(keys(&b));
                    }
                    Some((_, Message::End)) => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
            let mut expected = Vec::new();
            for &k in &all {
                if owner(k)? == t {
                    expected.push(k);
                }
            }
            assert_eq!(got, expected, "receiver {t}: its rows, in order");
            // Only a batch whose rows all belong here, or that brings at
            // least COALESCE_ROWS of them, is sent without gathering.
            assert!(
                batches <= expected.len() / 300,
                "receiver {t}: {batches} batches for {} rows",
                expected.len()
            );
            total_batches += batches;
        }
        assert_eq!(sent.batches, total_batches as u64);
        assert_eq!(sent.rows, all.len() as u64);
        Ok(())
    }

    /// Gathered rows go out when the buffer timeout has passed, and before
    /// any control message, so no row waits behind a watermark.
    #[test]
    fn gathered_rows_leave_on_timeout_and_before_control_messages() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let (mut edge, mut ends) = hash_edge(2, 100);
        let rx = &mut ends[0];
        let shared = Shared::default();
        let mut sent = Sent::default();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from((0..100).collect::<Vec<i64>>()))],
        )?;
        let hour = Duration::from_secs(3600);
        edge.send_batch(batch.clone(), &shared, hour, &mut sent)?;
        assert!(rx.try_recv(&[true])?.is_none(), "held while young");
        edge.send_control(
            &Message::Watermark(crate::types::Watermark::EventTime(5)),
            &shared,
            &mut sent,
        )?;
        let first = rx.try_recv(&[true])?;
        assert!(
            matches!(&first, Some((_, Message::Batch(b))) if b.num_rows() > 0),
            "rows before the watermark: {first:?}"
        );
        assert!(matches!(
            rx.try_recv(&[true])?,
            Some((_, Message::Watermark(_)))
        ));
        // A zero timeout sends at once.
        edge.send_batch(batch, &shared, Duration::ZERO, &mut sent)?;
        let next = rx.try_recv(&[true])?;
        assert!(
            matches!(&next, Some((_, Message::Batch(b))) if b.num_rows() > 0),
            "{next:?}"
        );
        Ok(())
    }

    /// One receiver sending its gathered rows must keep the batches that
    /// rows gathered for the others (before or after, in the same batch)
    /// refer to.
    #[test]
    fn one_receivers_flush_keeps_what_the_others_gathered() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let encoder = KeyEncoder::new(&schema, &[0])?;
        let probe = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from((0..64).collect::<Vec<i64>>()))],
        )?;
        let routed = route_by_key(&encoder, &probe, 2, 128)?;
        let (a, b) = (i64::from(routed[0][0]), i64::from(routed[1][0]));
        let (mut edge, mut rxs) = hash_edge(2, 100);
        let shared = Shared::default();
        let mut sent = Sent::default();
        let hour = Duration::from_secs(3600);
        let batch = |n_a: usize, n_b: usize| {
            let mut keys = vec![a; n_a];
            keys.extend(vec![b; n_b]);
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(keys))])
        };
        // 600 a and 10 b gathered; 1,100 b send b's 1,110; then 500 a
        // send a's 1,100 while 5 more b are gathered behind them.
        for (n_a, n_b) in [(600, 10), (0, 1_100), (500, 5)] {
            edge.send_batch(batch(n_a, n_b)?, &shared, hour, &mut sent)?;
        }
        edge.send_control(&Message::End, &shared, &mut sent)?;
        for (t, (key, total)) in [(a, 1_100usize), (b, 1_115)].into_iter().enumerate() {
            let mut got = Vec::new();
            while let Some((_, Message::Batch(batch))) = rxs[t].try_recv(&[true])? {
                got.extend(keys(&batch));
            }
            assert_eq!(got, vec![key; total], "receiver {t}");
        }
        Ok(())
    }

    /// Rows gathered for an edge that gets no more batches leave once they
    /// have waited the buffer timeout, when the router is asked between
    /// messages; younger rows stay.
    #[test]
    fn expired_rows_leave_between_messages() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let (edge, mut ends) = hash_edge(2, 100);
        let rx = &mut ends[0];
        let mut router = Router {
            edges: vec![edge],
            shared: Arc::new(Shared::default()),
            buffer_timeout: Duration::from_millis(50),
            sent: Sent::default(),
            task: Arc::default(),
        };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from((0..100).collect::<Vec<i64>>()))],
        )?;
        router.send_batch(batch)?;
        router.flush_expired()?;
        assert!(rx.try_recv(&[true])?.is_none(), "young rows stay");
        std::thread::sleep(Duration::from_millis(60));
        router.flush_expired()?;
        assert!(
            matches!(rx.try_recv(&[true])?, Some((_, Message::Batch(b))) if b.num_rows() > 0),
            "expired rows left"
        );
        Ok(())
    }
}
