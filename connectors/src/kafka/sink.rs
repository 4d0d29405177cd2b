//! The Kafka sink (`kafka` and `upsert-kafka`).
//!
//! `none` sends and forgets; `at-least-once` waits at every barrier (and at
//! the end) until the broker acknowledged every record sent before it.
//!
//! `exactly-once` (docs/kafka.md has the whole argument): librdkafka cannot
//! take over a transaction another producer opened, so no transaction is
//! ever left open across a checkpoint. Rows are encoded as they arrive and
//! kept in memory; at a barrier they are written into the operator state
//! under the checkpoint id, so they are part of that checkpoint. When the
//! checkpoint completes, one transactional producer per subtask
//! (`transactional.id` = prefix + subtask) writes every staged entry up to
//! it in one transaction, and in the same transaction commits an offset for
//! the consumer group `<prefix>-<lineage>-<subtask>` (the lineage is drawn
//! when the job starts without state and kept in its checkpoints): offset
//! = the checkpoint id. The broker makes records and that marker
//! visible together, so after a crash the restored subtask reads the
//! marker and knows exactly which staged entries are already in the topic:
//! those are dropped, the rest are written again in a new transaction.
//! Starting the new producer (`init_transactions`) fences the old one and
//! aborts whatever it left open.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMillisecondType;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_engine::operator::{OperatorContext, OperatorFactory, TaskInfo};
use runnel_engine::types::{row_kinds, RowKind};
use runnel_engine::{EngineError, Result};
use runnel_state::TableId;

use super::{kafka_error, send_with_retry, Delivery, DeliveryErrors, KafkaTable, Meta};
use crate::two_phase::{self, Committed, Staged, TwoPhaseSink};

/// How long a transaction step or a flush may take before the job fails.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn factory(t: Arc<KafkaTable>, updating: bool) -> Result<OperatorFactory> {
    let topic = t.sink_topic()?.to_string();
    let mut timestamp_column = None;
    for &(i, meta) in &t.metadata {
        match meta {
            Meta::Timestamp => timestamp_column = Some(i),
            other => {
                return Err(EngineError::Plan(format!(
                    "metadata column '{}' of table '{}' ({other:?}) cannot be written; declare it VIRTUAL or leave it out of the sink table",
                    t.schema.field(i).name(),
                    t.name
                )))
            }
        }
    }
    if t.delivery == Delivery::ExactlyOnce && t.transactional_id_prefix.is_none() {
        return Err(EngineError::Plan(format!(
            "table '{}' has 'sink.delivery-guarantee' = 'exactly-once', which needs 'sink.transactional-id-prefix' (unique to this job)",
            t.name
        )));
    }
    Ok(two_phase::factory(move |_task: &TaskInfo| {
        Ok(KafkaSink {
            t: Arc::clone(&t),
            topic: topic.clone(),
            updating,
            timestamp_column,
            producer: None,
            errors: DeliveryErrors::default(),
            open: Vec::new(),
            meta: None,
            lineage: String::new(),
            marker: None,
        })
    }))
}

/// One encoded record.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OutRecord {
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) timestamp: Option<i64>,
}

/// The consumer-group handle the exactly-once marker is committed with.
struct Marker {
    group: String,
    consumer: BaseConsumer,
    metadata: ConsumerGroupMetadata,
}

struct KafkaSink {
    t: Arc<KafkaTable>,
    topic: String,
    updating: bool,
    timestamp_column: Option<usize>,
    producer: Option<BaseProducer<DeliveryErrors>>,
    errors: DeliveryErrors,
    /// Exactly-once: records since the last barrier.
    open: Vec<OutRecord>,
    /// Exactly-once: the table that keeps the lineage.
    meta: Option<TableId>,
    lineage: String,
    marker: Option<Marker>,
}

impl KafkaSink {
    fn producer(&self) -> Result<&BaseProducer<DeliveryErrors>> {
        self.producer
            .as_ref()
            .ok_or_else(|| EngineError::Internal("kafka sink not opened".into()))
    }

    /// Turns rows into records: key and value bytes and the timestamp.
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<OutRecord>> {
        let t = &self.t;
        let kinds = if self.updating {
            Some(row_kinds(batch)?)
        } else {
            None
        };
        let project = |cols: &[usize], schema: &arrow::datatypes::SchemaRef| {
            let arrays = cols.iter().map(|&i| batch.column(i).clone()).collect();
            RecordBatch::try_new(Arc::clone(schema), arrays)
        };
        let values = t
            .value_format
            .encode(&project(&t.value_columns, &t.value_schema)?)?;
        let keys = match t.key_format {
            Some(f) => Some(f.encode(&project(&t.key_columns, &t.key_schema)?)?),
            None => None,
        };
        let times = self.timestamp_column.map(|i| {
            batch
                .column(i)
                .as_primitive::<TimestampMillisecondType>()
                .clone()
        });
        let mut out = Vec::with_capacity(batch.num_rows());
        for (row, value) in values.into_iter().enumerate() {
            let value = match kinds.as_ref().map(|k| k[row]) {
                None | Some(RowKind::Insert) | Some(RowKind::UpdateAfter) => Some(value),
                // A delete is a tombstone: the key and no value.
                Some(RowKind::Delete) => None,
                // An update's old row needs no record when its new row,
                // under the same key, comes next. Alone (a filter let the
                // old row through and dropped the new one), the key's row
                // is gone: a tombstone.
                Some(RowKind::UpdateBefore) => {
                    let replaced = kinds
                        .as_ref()
                        .and_then(|k| k.get(row + 1))
                        .is_some_and(|k| *k == RowKind::UpdateAfter)
                        && keys
                            .as_ref()
                            .is_some_and(|k| k.get(row + 1) == Some(&k[row]));
                    if replaced {
                        continue;
                    }
                    None
                }
            };
            out.push(OutRecord {
                key: keys.as_ref().map(|k| k[row].clone()),
                value,
                timestamp: times
                    .as_ref()
                    .and_then(|ts| ts.is_valid(row).then(|| ts.value(row))),
            });
        }
        Ok(out)
    }

    fn send(&self, r: &OutRecord) -> Result<()> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        send_with_retry(self.producer()?, record)
            .map_err(|e| kafka_error(&format!("write to topic '{}'", self.topic), e))
    }

    fn flush(&self) -> Result<()> {
        self.producer()?
            .flush(KAFKA_TIMEOUT)
            .map_err(|e| kafka_error(&format!("flush topic '{}'", self.topic), e))?;
        self.errors
            .check(&format!("deliver a record to topic '{}'", self.topic))
    }

    /// Exactly-once: the newest checkpoint id whose records are in the
    /// topic, from the marker committed with them.
    fn committed_checkpoint(&self) -> Result<Option<u64>> {
        let marker = self.marker()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, 0);
        let committed = marker
            .consumer
            .committed_offsets(tpl, KAFKA_TIMEOUT)
            .map_err(|e| {
                kafka_error(
                    &format!("read the commit marker of group '{}'", marker.group),
                    e,
                )
            })?;
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                return Ok(Some(from_marker(o)));
            }
        }
        Ok(None)
    }

    fn marker(&self) -> Result<&Marker> {
        self.marker
            .as_ref()
            .ok_or_else(|| EngineError::Internal("kafka sink has no marker group".into()))
    }

    /// Exactly-once: writes staged `entries` in one transaction together
    /// with the marker of the newest.
    fn publish(&mut self, entries: &[Staged]) -> Result<()> {
        let Some(newest) = entries.last().map(|e| e.id) else {
            return Ok(());
        };
        let producer = self.producer()?;
        let txn = |e| {
            kafka_error(
                &format!("commit a transaction on topic '{}'", self.topic),
                e,
            )
        };
        producer.begin_transaction().map_err(txn)?;
        for entry in entries {
            for r in decode_records(&entry.bytes)? {
                self.send(&r)?;
            }
        }
        let marker = self.marker()?;
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&self.topic, 0, Offset::Offset(to_marker(newest)))
            .map_err(txn)?;
        producer
            .send_offsets_to_transaction(&offsets, &marker.metadata, KAFKA_TIMEOUT)
            .map_err(txn)?;
        producer.commit_transaction(KAFKA_TIMEOUT).map_err(txn)?;
        self.errors
            .check(&format!("deliver a record to topic '{}'", self.topic))
    }

    /// Exactly-once: the records since the last barrier, as a staged entry.
    fn stage(&mut self, id: u64) -> Option<Staged> {
        if self.open.is_empty() {
            return None;
        }
        let bytes = encode_records(&self.open);
        self.open.clear();
        Some(Staged { id, bytes })
    }

    /// Opens the consumer handle of the marker group of `lineage`.
    fn connect_marker(&mut self, lineage: String, subtask: usize) -> Result<()> {
        let prefix = self.t.transactional_id_prefix.clone().unwrap_or_default();
        // The lineage is in the group's name rather than in the offset's
        // metadata string, which some brokers (Tansu 0.6) drop.
        let group = format!("{prefix}-{lineage}-{subtask}");
        let mut config = self.t.client_config();
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| kafka_error("create the marker consumer", e))?;
        let metadata = consumer.group_metadata().ok_or_else(|| {
            EngineError::Internal("the marker consumer has no group metadata".into())
        })?;
        self.lineage = lineage;
        self.marker = Some(Marker {
            group,
            consumer,
            metadata,
        });
        Ok(())
    }

    fn open_exactly_once(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        if !ctx.task.checkpointing {
            return Err(EngineError::Plan(format!(
                "table '{}' has 'sink.delivery-guarantee' = 'exactly-once', which commits a Kafka transaction per checkpoint; \
                 enable checkpoints (SET 'execution.checkpointing.interval' = '10 s') or use 'at-least-once'",
                self.t.name
            )));
        }
        let meta = ctx
            .state
            .register_table(&format!("{}/meta", ctx.task.operator_name))?;
        self.meta = Some(meta);
        let lineage = match ctx.state.get(meta, b"lineage")? {
            Some(l) => String::from_utf8_lossy(&l).into_owned(),
            None => new_lineage(ctx, meta)?,
        };
        self.connect_marker(lineage, ctx.task.subtask)?;
        self.producer()?
            .init_transactions(KAFKA_TIMEOUT)
            .map_err(|e| kafka_error("start the transactional producer", e))
    }

    /// Exactly-once, after a restore: the marker says which restored
    /// entries already reached the topic; writes the others.
    fn restore_exactly_once(
        &mut self,
        entries: Vec<Staged>,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<()> {
        let done = self.committed_checkpoint()?;
        let mut todo = entries;
        if let Some(done) = done {
            todo.retain(|e| e.id > done);
            if done == u64::MAX {
                // The final checkpoint of a stopped run was committed, and
                // this run resumes from it: its checkpoint ids are below
                // the marker, so it needs a marker group of its own.
                let meta = self
                    .meta
                    .ok_or_else(|| EngineError::Internal("kafka sink not opened".into()))?;
                let lineage = new_lineage(ctx, meta)?;
                self.connect_marker(lineage, ctx.task.subtask)?;
            }
        }
        self.publish(&todo)
    }
}

impl TwoPhaseSink for KafkaSink {
    fn staged_table(&self) -> &'static str {
        "staged"
    }

    fn open(&mut self, ctx: &mut OperatorContext<'_>) -> Result<()> {
        let mut config = self.t.client_config();
        if self.t.delivery == Delivery::ExactlyOnce {
            let prefix = self.t.transactional_id_prefix.clone().unwrap_or_default();
            config.set("transactional.id", format!("{prefix}-{}", ctx.task.subtask));
        } else {
            // Acknowledged by every replica, and retries that cannot
            // duplicate or reorder (librdkafka's default is off, Kafka's
            // Java client's on).
            if !self.t.properties.contains_key("acks") {
                config.set("acks", "all");
            }
            let acks_all = self
                .t
                .properties
                .get("acks")
                .is_none_or(|a| matches!(a.as_str(), "all" | "-1"));
            if acks_all && !self.t.properties.contains_key("enable.idempotence") {
                config.set("enable.idempotence", "true");
            }
        }
        let producer = config
            .create_with_context(self.errors.clone())
            .map_err(|e| {
                kafka_error(&format!("create a producer for table '{}'", self.t.name), e)
            })?;
        self.producer = Some(producer);
        if self.t.delivery == Delivery::ExactlyOnce {
            self.open_exactly_once(ctx)?;
        }
        Ok(())
    }

    fn write(&mut self, batch: RecordBatch, _ctx: &mut OperatorContext<'_>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let records = self.encode(&batch)?;
        if self.t.delivery == Delivery::ExactlyOnce {
            self.open.extend(records);
            return Ok(());
        }
        for r in &records {
            self.send(r)?;
        }
        self.producer()?.poll(Duration::ZERO);
        self.errors
            .check(&format!("deliver a record to topic '{}'", self.topic))
    }

    fn pre_commit(
        &mut self,
        checkpoint_id: u64,
        _ctx: &mut OperatorContext<'_>,
    ) -> Result<Option<Staged>> {
        match self.t.delivery {
            Delivery::ExactlyOnce => Ok(self.stage(checkpoint_id)),
            Delivery::AtLeastOnce => self.flush().map(|()| None),
            // Sent and forgotten, at the end of input too.
            Delivery::None if checkpoint_id == runnel_engine::types::Barrier::FINAL_CHECKPOINT => {
                self.flush().map(|()| None)
            }
            Delivery::None => Ok(None),
        }
    }

    fn commit(&mut self, _checkpoint_id: u64, entries: Vec<Staged>) -> Result<Committed> {
        self.publish(&entries)?;
        Ok(Committed::Published)
    }

    fn restore(
        &mut self,
        entries: Vec<Staged>,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<Committed> {
        if self.t.delivery == Delivery::ExactlyOnce {
            self.restore_exactly_once(entries, ctx)?;
        }
        Ok(Committed::Published)
    }

    /// Exactly-once after a rescale: old subtask `origin`'s marker group
    /// (its lineage is in the `meta@<origin>` table) says which of its
    /// entries reached the topic; this subtask's producer writes the rest
    /// in one transaction that moves that marker, so a crash before this
    /// run's first checkpoint cannot write them twice. An old subtask whose
    /// transactional id no subtask uses any more is fenced first, which
    /// aborts a transaction it may have left open (it would hold back
    /// every read_committed reader until it timed out).
    fn restore_other(
        &mut self,
        origin: usize,
        entries: Vec<Staged>,
        ctx: &mut OperatorContext<'_>,
    ) -> Result<Committed> {
        if self.t.delivery != Delivery::ExactlyOnce {
            return Ok(Committed::Published);
        }
        let prefix = self.t.transactional_id_prefix.clone().unwrap_or_default();
        if origin >= ctx.task.parallelism {
            let mut config = self.t.client_config();
            config.set("transactional.id", format!("{prefix}-{origin}"));
            let fence: BaseProducer = config
                .create()
                .map_err(|e| kafka_error("create a producer to fence an old subtask", e))?;
            fence.init_transactions(KAFKA_TIMEOUT).map_err(|e| {
                kafka_error(&format!("fence transactional id '{prefix}-{origin}'"), e)
            })?;
        }
        let meta = ctx
            .state
            .register_table(&format!("{}/meta@{origin}", ctx.task.operator_name))?;
        let Some(lineage) = ctx.state.get(meta, b"lineage")? else {
            // The old subtask never started exactly-once output.
            return if entries.is_empty() {
                Ok(Committed::Published)
            } else {
                Err(EngineError::Plan(format!(
                    "corrupt checkpoint state of Kafka sink '{}': subtask {origin} staged output \
                     but has no lineage",
                    self.t.name
                )))
            };
        };
        let own = (self.marker.take(), std::mem::take(&mut self.lineage));
        let result = (|| {
            self.connect_marker(String::from_utf8_lossy(&lineage).into_owned(), origin)?;
            let done = self.committed_checkpoint()?;
            let todo: Vec<Staged> = entries
                .into_iter()
                .filter(|e| done.is_none_or(|d| e.id > d))
                .collect();
            self.publish(&todo)
        })();
        self.marker = own.0;
        self.lineage = own.1;
        result.map(|()| Committed::Published)
    }
}

/// Draws a lineage and keeps it in the sink's state.
fn new_lineage(ctx: &mut OperatorContext<'_>, meta: TableId) -> Result<String> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| EngineError::Internal(format!("no randomness: {e}")))?;
    let lineage = format!("runnel-{:016x}", u64::from_be_bytes(raw));
    ctx.state.put(meta, b"lineage", lineage.as_bytes())?;
    Ok(lineage)
}

/// A checkpoint id as a marker offset (offsets are signed; the final
/// checkpoint's id is `u64::MAX`).
fn to_marker(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn from_marker(offset: i64) -> u64 {
    if offset == i64::MAX {
        u64::MAX
    } else {
        u64::try_from(offset).unwrap_or(0)
    }
}

/// Staged records: per record a flag byte (bit 0 key, bit 1 value, bit 2
/// timestamp), then the present parts (lengths as big-endian u32).
pub(super) fn encode_records(records: &[OutRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let flags = u8::from(r.key.is_some())
            | (u8::from(r.value.is_some()) << 1)
            | (u8::from(r.timestamp.is_some()) << 2);
        out.push(flags);
        for part in [&r.key, &r.value].into_iter().flatten() {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        if let Some(ts) = r.timestamp {
            out.extend_from_slice(&ts.to_be_bytes());
        }
    }
    out
}

pub(super) fn decode_records(mut bytes: &[u8]) -> Result<Vec<OutRecord>> {
    let corrupt = || EngineError::Internal("a staged kafka entry is damaged".into());
    let take = |n: usize, bytes: &mut &[u8]| -> Result<Vec<u8>> {
        if bytes.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head.to_vec())
    };
    let mut out = Vec::new();
    while let Some((&flags, rest)) = bytes.split_first() {
        bytes = rest;
        let part = |present: bool, bytes: &mut &[u8]| -> Result<Option<Vec<u8>>> {
            if !present {
                return Ok(None);
            }
            let len = take(4, bytes)?;
            let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupt())?) as usize;
            take(len, bytes).map(Some)
        };
        let key = part(flags & 1 != 0, &mut bytes)?;
        let value = part(flags & 2 != 0, &mut bytes)?;
        let timestamp = if flags & 4 != 0 {
            let raw = take(8, &mut bytes)?;
            Some(i64::from_be_bytes(raw.try_into().map_err(|_| corrupt())?))
        } else {
            None
        };
        out.push(OutRecord {
            key,
            value,
            timestamp,
        });
    }
    Ok(out)
}
