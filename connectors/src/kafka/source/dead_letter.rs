//! The dead-letter output of the Kafka source.

use std::time::Duration;

use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use runnel_engine::Result;

use super::{Rec, Tp};
use crate::kafka::{kafka_error, send_with_retry, DeliveryErrors, KafkaTable};

/// The producer that writes malformed records to the dead-letter topic:
/// the original key and value, plus headers naming where the record came
/// from and why it was rejected.
pub(super) struct DeadLetter {
    producer: BaseProducer<DeliveryErrors>,
    errors: DeliveryErrors,
}

impl DeadLetter {
    pub(super) fn new(t: &KafkaTable) -> Result<Self> {
        let errors = DeliveryErrors::default();
        let mut config = rdkafka::ClientConfig::new();
        if let Some(b) = t.properties.get("bootstrap.servers") {
            config.set("bootstrap.servers", b);
        }
        for (k, v) in &t.properties {
            if k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") {
                config.set(k, v);
            }
        }
        config.set("acks", "all");
        let producer = config
            .create_with_context(errors.clone())
            .map_err(|e| kafka_error("create the dead-letter producer", e))?;
        Ok(Self { producer, errors })
    }

    pub(super) fn send(&self, topic: &str, tp: &Tp, r: &Rec, why: &str) -> Result<()> {
        let partition = tp.1.to_string();
        let offset = r.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(rdkafka::message::Header {
                key: "runnel.error",
                value: Some(why),
            })
            .insert(rdkafka::message::Header {
                key: "runnel.source.topic",
                value: Some(&tp.0),
            })
            .insert(rdkafka::message::Header {
                key: "runnel.source.partition",
                value: Some(&partition),
            })
            .insert(rdkafka::message::Header {
                key: "runnel.source.offset",
                value: Some(&offset),
            });
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        send_with_retry(&self.producer, record)
            .map_err(|e| kafka_error(&format!("write to dead-letter topic '{topic}'"), e))
    }

    pub(super) fn serve(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until every dead-letter record is acknowledged.
    pub(super) fn flush(&self) -> Result<()> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| kafka_error("flush the dead-letter topic", e))?;
        self.errors.check("deliver a dead-letter record")
    }
}
