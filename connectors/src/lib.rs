//! Runnel's sources and sinks (not built yet).
//!
//! Connectors will register themselves by name (`'connector' = 'kafka'`) in a
//! registry the engine defines: datagen, filesystem, Kafka, Delta, print,
//! blackhole. Today the engine's own in-memory sources and sinks
//! ([`runnel_engine::source`], [`runnel_engine::sink`]) are all there is.
