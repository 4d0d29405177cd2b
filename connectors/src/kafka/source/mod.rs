//! The Kafka source.
//!
//! Every subtask owns a librdkafka consumer that is *assigned* its
//! partitions (no consumer-group rebalancing: the checkpoint, not the
//! group, is the source of truth for positions). Partition `p` of topic `t`
//! belongs to subtask `(fnv1a(t) + p) % parallelism`. Each partition is a
//! split, so watermarks are tracked per partition and an idle partition
//! stops holding the watermark back after `'scan.idle-timeout'`.
//!
//! Start offsets follow `'scan.startup.mode'` (earliest, latest, the
//! group's committed offsets, a timestamp lookup, or given offsets). The
//! position is the next offset of every owned partition that has one; a
//! partition still at the symbolic start of its log is left out and starts
//! the same way again after a restore. Rows count in the position only once
//! `poll` has returned them.
//!
//! Records are read in runs of up to `MAX_RUN` messages and decoded per
//! partition (see `format.rs`). A record that does not parse fails the job
//! with its topic, partition and offset, or is skipped and counted, or is
//! sent to the dead-letter topic; dead-letter records are flushed before a
//! position is snapshotted, so a checkpoint never covers a bad record whose
//! dead-letter copy could still be lost.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::source::{Source, SourceFactory, SourcePoll, SplitId};
use runnel_engine::{EngineError, Result};

use super::{kafka_error, KafkaTable, Startup, Topics};
use crate::position::{PositionReader, PositionWriter};

mod dead_letter;
mod decode;

use dead_letter::DeadLetter;

/// Messages gathered per poll before they are decoded.
const MAX_RUN: usize = 4096;
/// How long a metadata or offset request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const POSITION_VERSION: u8 = 1;
/// `PartState::next` of a partition assigned at the start of its log that
/// has returned nothing yet (kept in positions as is).
const AT_BEGINNING: i64 = -2;
/// How often a subtask measures its consumer lag (a watermark request per
/// partition), and how long each request may take.
const LAG_INTERVAL: Duration = Duration::from_secs(5);
const LAG_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) fn factory(table: Arc<KafkaTable>) -> SourceFactory {
    Arc::new(move |task: &TaskInfo| {
        Ok(Box::new(KafkaSource {
            t: Arc::clone(&table),
            subtask: task.subtask,
            parallelism: task.parallelism.max(1),
            consumer: None,
            metrics: None,
            parts: BTreeMap::new(),
            next_split: 0,
            restored: None,
            assigned: false,
            ready: VecDeque::new(),
            last_discovery: Instant::now(),
            lag_due: Instant::now(),
            lags: BTreeMap::new(),
            lag_turn: 0,
            dead_letter: None,
            pacer: crate::pacing::Pacer::new(
                table.max_rate.map(|r| r / task.parallelism.max(1) as f64),
                MAX_RUN,
            ),
        }) as Box<dyn Source>)
    })
}

/// The subtask that reads partition `partition` of `topic`.
pub(crate) fn owner(topic: &str, partition: i32, parallelism: usize) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in topic.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let p = u64::try_from(partition).unwrap_or(0);
    ((u64::from(h) + p) % parallelism as u64) as usize
}

type Tp = (String, i32);

#[derive(Debug)]
struct PartState {
    split: SplitId,
    /// Offset of the next record to return; -1 before the partition is
    /// assigned, [`AT_BEGINNING`] while it is at the symbolic start of its
    /// log with nothing returned yet.
    next: i64,
    /// Bounded mode: where the partition ends, known once the consumer
    /// reached its end (librdkafka's end-of-partition event). Brokers'
    /// high watermarks are not trusted for this: Tansu 0.6 reports them
    /// wrong, and transaction markers sit past the last record anyway.
    end: Option<i64>,
    finished: bool,
}

enum Ready {
    Batch {
        tp: Tp,
        next: i64,
        batch: RecordBatch,
    },
    Finished(SplitId),
}

/// One message, copied out of librdkafka's buffer.
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: Option<i64>,
    offset: i64,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

struct KafkaSource {
    t: Arc<KafkaTable>,
    subtask: usize,
    parallelism: usize,
    consumer: Option<BaseConsumer>,
    metrics: Option<Arc<OperatorMetrics>>,
    parts: BTreeMap<Tp, PartState>,
    next_split: u32,
    restored: Option<BTreeMap<Tp, i64>>,
    assigned: bool,
    ready: VecDeque<Ready>,
    last_discovery: Instant,
    /// When the consumer lag is next measured.
    lag_due: Instant,
    /// The last lag measured per partition, and whose turn is next.
    lags: BTreeMap<Tp, i64>,
    lag_turn: usize,
    dead_letter: Option<DeadLetter>,
    pacer: crate::pacing::Pacer,
}

impl KafkaSource {
    fn consumer(&self) -> Result<&BaseConsumer> {
        self.consumer
            .as_ref()
            .ok_or_else(|| EngineError::Internal("kafka source not opened".into()))
    }

    /// The partitions of this subtask that exist now, sorted.
    fn my_partitions(&self) -> Result<Vec<Tp>> {
        let consumer = self.consumer()?;
        let md = consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error("read the topic list", e))?;
        let mut found = Vec::new();
        let mut seen_topics = BTreeSet::new();
        for topic in md.topics() {
            if !self.t.topics.matches(topic.name()) {
                continue;
            }
            seen_topics.insert(topic.name().to_string());
            for p in topic.partitions() {
                if owner(topic.name(), p.id(), self.parallelism) == self.subtask {
                    found.push((topic.name().to_string(), p.id()));
                }
            }
        }
        if let Topics::List(list) = &self.t.topics {
            if let Some(missing) = list.iter().find(|t| !seen_topics.contains(*t)) {
                return Err(EngineError::Connector(format!(
                    "kafka: topic '{missing}' of table '{}' does not exist",
                    self.t.name
                )));
            }
        }
        found.sort();
        Ok(found)
    }

    fn add_partition(&mut self, tp: Tp) -> SplitId {
        // Unique across subtasks: subtask + k * parallelism.
        let split = self.subtask as u32 + self.next_split * self.parallelism as u32;
        self.next_split += 1;
        self.parts.insert(
            tp,
            PartState {
                split,
                next: -1,
                end: None,
                finished: false,
            },
        );
        split
    }

    /// Resolves where each of `tps` starts (`fresh`: discovered while
    /// running, which starts at the earliest offset) and assigns them.
    fn assign(&mut self, tps: &[Tp], fresh: bool) -> Result<()> {
        if tps.is_empty() {
            return Ok(());
        }
        let consumer = self
            .consumer
            .as_ref()
            .ok_or_else(|| EngineError::Internal("kafka source not opened".into()))?;
        let mut starts = BTreeMap::new();
        let mut group = BTreeMap::new();
        if !fresh && self.t.startup == Startup::GroupOffsets {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in tps {
                tpl.add_partition(t, *p);
            }
            let committed = consumer
                .committed_offsets(tpl, REQUEST_TIMEOUT)
                .map_err(|e| kafka_error("read the group's committed offsets", e))?;
            for e in committed.elements() {
                if let Offset::Offset(o) = e.offset() {
                    group.insert((e.topic().to_string(), e.partition()), o);
                }
            }
        }
        let mut by_time = BTreeMap::new();
        if let (false, Startup::Timestamp(ms)) = (fresh, &self.t.startup) {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in tps {
                tpl.add_partition_offset(t, *p, Offset::Offset(*ms))
                    .map_err(|e| kafka_error("look up offsets by time", e))?;
            }
            let found = consumer
                .offsets_for_times(tpl, REQUEST_TIMEOUT)
                .map_err(|e| kafka_error("look up offsets by time", e))?;
            for e in found.elements() {
                if let Offset::Offset(o) = e.offset() {
                    by_time.insert((e.topic().to_string(), e.partition()), o);
                }
            }
        }
        let reset_latest = self
            .t
            .properties
            .get("auto.offset.reset")
            .is_some_and(|v| matches!(v.as_str(), "latest" | "largest" | "end"));
        for tp in tps {
            let restored = self.restored.as_ref().and_then(|r| r.get(tp)).copied();
            // Only 'latest' needs the partition's end now: a checkpoint taken
            // before the first record must pin that point, not whatever the
            // end is after a restart. 'earliest' stays symbolic (the start of
            // the log is the same point either way).
            let latest = || -> Result<Offset> {
                let (_, high) = consumer
                    .fetch_watermarks(&tp.0, tp.1, REQUEST_TIMEOUT)
                    .map_err(|e| kafka_error(&format!("read the end of {}", show(tp)), e))?;
                Ok(Offset::Offset(high))
            };
            let start = match (restored, fresh, &self.t.startup) {
                (Some(AT_BEGINNING), _, _) => Offset::Beginning,
                (Some(next), _, _) => Offset::Offset(next),
                (None, true, _) | (None, false, Startup::Earliest) => Offset::Beginning,
                (None, false, Startup::Latest) => latest()?,
                (None, false, Startup::GroupOffsets) => match group.get(tp) {
                    Some(&o) => Offset::Offset(o),
                    None if reset_latest => latest()?,
                    None => Offset::Beginning,
                },
                (None, false, Startup::Timestamp(_)) => match by_time.get(tp) {
                    Some(&o) => Offset::Offset(o),
                    None => latest()?,
                },
                (None, false, Startup::Specific(m)) => m
                    .get(&tp.1)
                    .map_or(Offset::Beginning, |&o| Offset::Offset(o)),
            };
            let state = self
                .parts
                .get_mut(tp)
                .ok_or_else(|| EngineError::Internal("unknown partition".into()))?;
            state.next = match start {
                Offset::Offset(o) => o,
                _ => AT_BEGINNING,
            };
            starts.insert(tp.clone(), start);
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &starts {
            tpl.add_partition_offset(t, *p, *o)
                .map_err(|e| kafka_error("assign partitions", e))?;
        }
        consumer
            .incremental_assign(&tpl)
            .map_err(|e| kafka_error("assign partitions", e))?;
        self.queue_finished_partitions();
        Ok(())
    }

    /// Bounded mode: partitions whose next offset reached the end.
    /// They are unassigned, so the consumer stops fetching them.
    fn queue_finished_partitions(&mut self) {
        let mut done = TopicPartitionList::new();
        for (tp, state) in self.parts.iter_mut() {
            if let (false, Some(end)) = (state.finished, state.end) {
                if state.next >= end {
                    state.finished = true;
                    self.ready.push_back(Ready::Finished(state.split));
                    done.add_partition(&tp.0, tp.1);
                }
            }
        }
        if done.count() > 0 {
            if let Some(c) = &self.consumer {
                // Best effort: records fetched anyway are dropped in `fill`.
                let _ = c.incremental_unassign(&done);
            }
        }
    }

    fn discover(&mut self) -> Result<()> {
        self.last_discovery = Instant::now();
        let now = self.my_partitions()?;
        let new: Vec<Tp> = now
            .into_iter()
            .filter(|tp| !self.parts.contains_key(tp))
            .collect();
        for tp in &new {
            self.add_partition(tp.clone());
        }
        self.assign(&new, true)
    }

    /// Reads up to `MAX_RUN` messages and turns them into ready batches.
    fn fill(&mut self) -> Result<()> {
        let mut runs: BTreeMap<Tp, Vec<Rec>> = BTreeMap::new();
        let mut count = 0;
        let budget = self.pacer.budget();
        if budget == 0 {
            return Ok(());
        }
        let mut eof = Vec::new();
        {
            let consumer = self.consumer()?;
            while count < budget {
                let wait = if count == 0 {
                    Duration::from_millis(2)
                } else {
                    Duration::ZERO
                };
                match consumer.poll(wait) {
                    None => break,
                    Some(Err(KafkaError::PartitionEOF(p))) => eof.push(p),
                    Some(Err(e)) => {
                        // librdkafka reports transient broker trouble here
                        // and keeps retrying; a poll that sees one gives up
                        // this round.
                        eprintln!(
                            "kafka source '{}' subtask {}: {e}",
                            self.t.name, self.subtask
                        );
                        break;
                    }
                    Some(Ok(m)) => {
                        let headers = m
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        runs.entry((m.topic().to_string(), m.partition()))
                            .or_default()
                            .push(Rec {
                                key: m.key().map(<[u8]>::to_vec),
                                value: m.payload().map(<[u8]>::to_vec),
                                timestamp: m.timestamp().to_millis(),
                                offset: m.offset(),
                                headers,
                            });
                        count += 1;
                    }
                }
            }
        }
        self.pacer.sent(count as u64);
        for (tp, recs) in runs {
            let Some(state) = self.parts.get(&tp) else {
                continue;
            };
            // Bounded reads: nothing past a partition's end.
            let end = if state.finished {
                Some(i64::MIN)
            } else {
                state.end
            };
            let recs: Vec<Rec> = recs
                .into_iter()
                .filter(|r| end.is_none_or(|e| r.offset < e))
                .collect();
            let Some(last) = recs.last().map(|r| r.offset) else {
                continue;
            };
            let batch = self.decode_run(&tp, &recs)?;
            self.ready.push_back(Ready::Batch {
                tp,
                next: last + 1,
                batch,
            });
        }
        if self.t.bounded {
            // End of partition (bounded tables read one topic, so the
            // partition number is enough): the partition ends after what
            // was just queued for it.
            for p in eof {
                for (tp, state) in self.parts.iter_mut().filter(|(tp, _)| tp.1 == p) {
                    let queued = self
                        .ready
                        .iter()
                        .filter_map(|r| match r {
                            Ready::Batch { tp: t, next, .. } if t == tp => Some(*next),
                            _ => None,
                        })
                        .max();
                    let at = queued.unwrap_or(state.next);
                    state.end = Some(state.end.map_or(at, |e| e.min(at)));
                }
            }
            self.queue_finished_partitions();
        }
        Ok(())
    }
}

impl KafkaSource {
    /// Reads one subtask's offsets into `restored`. `strict`: the position
    /// is this subtask's own, so a partition owned by another is an error;
    /// otherwise (a rescale) such partitions are skipped.
    fn read_position(
        &mut self,
        position: &[u8],
        strict: bool,
        restored: &mut BTreeMap<Tp, i64>,
    ) -> Result<()> {
        let mut r = PositionReader::new("kafka source", position, POSITION_VERSION)?;
        let n = r.u32()?;
        for _ in 0..n {
            let topic = r.str()?;
            let partition = r.u32()? as i32;
            let next = r.u64()? as i64;
            if owner(&topic, partition, self.parallelism) != self.subtask {
                if !strict {
                    continue;
                }
                return Err(r.error(&format!(
                    "partition {partition} of topic '{topic}' belongs to another subtask at parallelism {}; restore with the parallelism the checkpoint was taken with",
                    self.parallelism
                )));
            }
            if !self.parts.contains_key(&(topic.clone(), partition))
                && self.t.topics.matches(&topic)
            {
                self.add_partition((topic.clone(), partition));
            }
            restored.insert((topic, partition), next);
        }
        Ok(())
    }
}

impl KafkaSource {
    /// Measures how far behind the end of its partitions this subtask is,
    /// into its metrics: one partition per call, in turn, so that each is
    /// measured about every [`LAG_INTERVAL`] and a call blocks the source
    /// for at most one request ([`LAG_TIMEOUT`]); partitions never measured
    /// yet go first. A request that fails keeps the partition's last figure
    /// and puts the next measurement off by a whole interval (the broker is
    /// unwell). A partition that has ended or is not assigned yet is left
    /// out. The end is the broker's high watermark, which for a
    /// transactional topic is past the last transaction's marker, so a
    /// caught-up reader there shows a lag of 1.
    fn measure_lag(&mut self) {
        let now = Instant::now();
        if now < self.lag_due {
            return;
        }
        let live: Vec<(&Tp, i64)> = self
            .parts
            .iter()
            .filter(|(_, s)| !s.finished && (s.next >= 0 || s.next == AT_BEGINNING))
            .map(|(tp, s)| (tp, s.next))
            .collect();
        self.lags.retain(|tp, _| live.iter().any(|(t, _)| *t == tp));
        let Some(&(tp, next)) = live
            .iter()
            .find(|(tp, _)| !self.lags.contains_key(*tp))
            .or_else(|| live.get(self.lag_turn % live.len().max(1)))
        else {
            self.lag_due = now + LAG_INTERVAL;
            return;
        };
        self.lag_turn = self.lag_turn.wrapping_add(1);
        let per_partition = LAG_INTERVAL / u32::try_from(live.len()).unwrap_or(u32::MAX).max(1);
        let Some(consumer) = &self.consumer else {
            return;
        };
        match consumer.fetch_watermarks(&tp.0, tp.1, LAG_TIMEOUT) {
            Ok((low, high)) => {
                let at = if next == AT_BEGINNING { low } else { next };
                let tp = tp.clone();
                self.lags.insert(tp, (high - at).max(0));
                // Partitions not measured yet go at once.
                self.lag_due = if self.lags.len() < live.len() {
                    now
                } else {
                    now + per_partition
                };
            }
            Err(_) => self.lag_due = now + LAG_INTERVAL,
        }
        if let Some(metrics) = &self.metrics {
            if let Ok(mut l) = metrics.partition_lag.lock() {
                *l = self
                    .lags
                    .iter()
                    .map(|((topic, p), lag)| (topic.clone(), *p, *lag))
                    .collect();
            }
        }
    }
}

fn show(tp: &Tp) -> String {
    format!("topic '{}' partition {}", tp.0, tp.1)
}

impl Source for KafkaSource {
    fn open(&mut self, _task: &TaskInfo, metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        self.metrics = Some(Arc::clone(metrics));
        let mut config = self.t.client_config();
        if !self.t.properties.contains_key("group.id") {
            // librdkafka wants a group id even for assigned partitions; it
            // is never used to commit.
            config.set("group.id", format!("runnel-{}", self.t.name));
        }
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "enable.partition.eof",
                if self.t.bounded { "true" } else { "false" },
            );
        if !self.t.properties.contains_key("isolation.level") {
            config.set("isolation.level", "read_committed");
        }
        let consumer: BaseConsumer = config.create().map_err(|e| {
            kafka_error(&format!("create a consumer for table '{}'", self.t.name), e)
        })?;
        self.consumer = Some(consumer);
        let parts = self.my_partitions()?;
        let splits = parts.into_iter().map(|tp| self.add_partition(tp)).collect();
        Ok(splits)
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        let mut restored = BTreeMap::new();
        self.read_position(position, true, &mut restored)?;
        self.restored = Some(restored);
        Ok(())
    }

    /// At another parallelism: every old subtask's offsets, of which this
    /// subtask keeps the partitions it owns now.
    fn restore_positions(&mut self, positions: &[Vec<u8>]) -> Result<()> {
        let mut restored = BTreeMap::new();
        for p in positions.iter().filter(|p| !p.is_empty()) {
            self.read_position(p, false, &mut restored)?;
        }
        self.restored = Some(restored);
        Ok(())
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        if let Some(d) = &self.dead_letter {
            d.flush()?;
        }
        let mut w = PositionWriter::new(POSITION_VERSION);
        let known: Vec<(&Tp, i64)> = self
            .parts
            .iter()
            .map(|(tp, s)| {
                let next = if s.next >= 0 || s.next == AT_BEGINNING {
                    s.next
                } else {
                    // Not assigned yet: keep what was restored, if anything.
                    self.restored
                        .as_ref()
                        .and_then(|r| r.get(tp))
                        .copied()
                        .unwrap_or(-1)
                };
                (tp, next)
            })
            .filter(|(_, n)| *n >= 0 || *n == AT_BEGINNING)
            .collect();
        w.u32(known.len() as u32);
        for (tp, next) in &known {
            w.str(&tp.0)?.u32(tp.1 as u32).u64(*next as u64);
        }
        if self.t.commit_offsets && self.t.properties.contains_key("group.id") && self.assigned {
            // For monitoring (consumer lag) only; the checkpoint is the truth.
            let mut tpl = TopicPartitionList::new();
            for (tp, next) in known.iter().filter(|(_, n)| *n >= 0) {
                let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(*next));
            }
            if let Ok(c) = self.consumer() {
                let _ = c.commit(&tpl, CommitMode::Async);
            }
        }
        Ok(w.finish())
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        if !self.assigned {
            self.assigned = true;
            let tps: Vec<Tp> = self.parts.keys().cloned().collect();
            self.assign(&tps, false)?;
        }
        self.measure_lag();
        if self.t.bounded && self.ready.is_empty() && self.parts.values().all(|s| s.finished) {
            if let Some(d) = &self.dead_letter {
                d.flush()?;
            }
            return Ok(SourcePoll::Finished);
        }
        if self.ready.is_empty() {
            if let Some(every) = self.t.discovery {
                if !self.t.bounded && self.last_discovery.elapsed() >= every {
                    self.discover()?;
                }
            }
            self.fill()?;
            if let Some(d) = &self.dead_letter {
                d.serve();
            }
        }
        match self.ready.pop_front() {
            Some(Ready::Batch { tp, next, batch }) => {
                let state = self
                    .parts
                    .get_mut(&tp)
                    .ok_or_else(|| EngineError::Internal("unknown partition".into()))?;
                state.next = next;
                let split = state.split;
                self.queue_finished_partitions();
                Ok(SourcePoll::Batch { split, batch })
            }
            Some(Ready::Finished(split)) => Ok(SourcePoll::SplitFinished(split)),
            None => {
                if self.t.bounded {
                    self.queue_finished_partitions();
                    if self.parts.values().all(|s| s.finished) && self.ready.is_empty() {
                        if let Some(d) = &self.dead_letter {
                            d.flush()?;
                        }
                        return Ok(SourcePoll::Finished);
                    }
                }
                Ok(SourcePoll::Pending)
            }
        }
    }
}
