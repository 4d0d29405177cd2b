//! Runnel's connectors: the sources and sinks that tables bind to with
//! `'connector' = '...'`.
//!
//! The entry point is [`register_all`] (or [`default_registry`]), which adds
//! every connector of this crate to the engine's
//! [`ConnectorRegistry`]: [`datagen`] (a deterministic IoT sensor
//! generator), [`filesystem`] (JSON lines, CSV and Parquet files),
//! [`kafka`] (Kafka topics, and `upsert-kafka`), [`delta`] (Delta Lake
//! tables), [`print`] and [`blackhole`]. Each connector implements
//! [`runnel_engine::connector::Connector`] and turns a table's options into a
//! source or sink of the engine.
//!
//! Checkpoints: the `datagen` and `filesystem` sources can snapshot and
//! restore their read positions, and the `filesystem` sink commits its files
//! in two phases (staged at a barrier, published when the checkpoint
//! completes), so a job with checkpoints writes each row to files exactly
//! once. The `delta` sink commits the files of each checkpoint as one Delta
//! version with a `txn` action, and its source resumes from a version, file
//! and row. The `kafka` source keeps partition offsets in checkpoints and its
//! sink writes one Kafka transaction per completed checkpoint
//! (`'sink.delivery-guarantee' = 'exactly-once'`). `print` is at-least-once
//! and `blackhole` keeps nothing.
//!
//! The filesystem, Delta and Kafka sinks share one two-phase-commit
//! operator (`two_phase.rs`: the sink writes, pre-commits at a barrier and
//! commits; the operator keeps what was staged in its state and commits it
//! again after a restore), and `datagen` and `nexmark` share one generator
//! loop (`generator.rs`: pacing, the end of a bounded run, the checkpointed
//! cursor).
//!
//! This crate does not plan queries or check that a query's stream kind fits
//! a table beyond what a sink is told (`updating`); it does not coordinate
//! checkpoints (the runtime does), and it does not watch directories for new
//! files: file sources are bounded.

use std::sync::Arc;

use runnel_engine::connector::ConnectorRegistry;

pub mod blackhole;
pub mod datagen;
pub mod debezium;
pub mod delta;
pub mod filesystem;
mod generator;
mod json_fast;
pub mod kafka;
pub mod nexmark;
mod options;
mod pacing;
mod position;
pub mod print;
#[cfg(test)]
mod testutil;
pub mod text;
mod two_phase;

pub use blackhole::BlackholeConnector;
pub use datagen::DatagenConnector;
pub use delta::DeltaConnector;
pub use filesystem::FilesystemConnector;
pub use kafka::{KafkaConnector, UpsertKafkaConnector};
pub use print::PrintConnector;

/// Adds every connector of this crate to `registry`.
pub fn register_all(registry: &mut ConnectorRegistry) {
    registry.register(Arc::new(DatagenConnector));
    registry.register(Arc::new(DeltaConnector));
    registry.register(Arc::new(FilesystemConnector));
    registry.register(Arc::new(KafkaConnector));
    registry.register(Arc::new(UpsertKafkaConnector));
    registry.register(Arc::new(nexmark::NexmarkConnector));
    registry.register(Arc::new(PrintConnector));
    registry.register(Arc::new(BlackholeConnector));
}

/// A registry holding every connector of this crate.
pub fn default_registry() -> ConnectorRegistry {
    let mut registry = ConnectorRegistry::new();
    register_all(&mut registry);
    registry
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use runnel_engine::connector::TableDescriptor;
    use runnel_engine::EngineError;

    use super::*;

    fn table(options: &[(&str, &str)]) -> TableDescriptor {
        TableDescriptor {
            name: "t".into(),
            schema: Arc::new(Schema::new(vec![Field::new(
                "device_id",
                DataType::Utf8,
                true,
            )])),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            watermark: None,
            primary_key: vec![],
            partition_keys: vec![],
        }
    }

    #[test]
    fn registry_lists_all_connectors() {
        assert_eq!(
            default_registry().names(),
            vec![
                "blackhole",
                "datagen",
                "delta",
                "filesystem",
                "kafka",
                "nexmark",
                "print",
                "upsert-kafka"
            ]
        );
    }

    #[test]
    fn registry_rejects_unknown_datagen_option_listing_valid_ones() {
        let registry = default_registry();
        let err = registry
            .resolve(&table(&[("connector", "datagen"), ("rows-per-sec", "10")]))
            .err()
            .expect("an unknown option must be rejected");
        let EngineError::Plan(msg) = err else {
            panic!("expected a plan error, got {err}");
        };
        assert!(msg.contains("'rows-per-sec'"), "{msg}");
        assert!(msg.contains("rows-per-second"), "{msg}");
        assert!(msg.contains("iot.missing-device-rate"), "{msg}");
    }

    #[test]
    fn registry_accepts_known_options() {
        let registry = default_registry();
        let connector = registry
            .resolve(&table(&[
                ("connector", "datagen"),
                ("number-of-rows", "10"),
                ("iot.late-rate", "0.1"),
            ]))
            .expect("known options resolve");
        assert_eq!(connector.name(), "datagen");
    }
}
