//! Runnel's engine: the data model, the operator contract, the job graph and
//! the multithreaded runtime that executes it.
//!
//! The entry points are [`graph::JobGraph`] (build a DAG of sources,
//! operators and sinks with exchanges between them) and
//! [`runtime::Job::start`] (expand it into subtasks on OS threads and run
//! it; with a checkpoint directory it takes checkpoints through the
//! runtime's checkpoint coordinator and resumes from them). Operators
//! implement [`operator::Operator`]; sources implement [`source::Source`].
//! Built in are expression evaluation on Arrow arrays ([`expr`]), aggregate
//! functions ([`aggregate`]), window assignment ([`window`]), the keyed
//! window and non-windowed aggregate operators ([`ops`]), event-time
//! watermarks ([`watermark`]) and sinks that need no external system
//! ([`sink`]).
//!
//! Inside [`runtime`], `exchange.rs` routes batches between subtasks (a
//! hash exchange's rows in `route_by_key`), `chain.rs` runs one subtask's
//! chained operators and aligns barriers (`run_operator`), `source_task.rs`
//! runs a source subtask, and `coordinator.rs` takes checkpoints.
//! Scaffolding for tests and demos (an operator harness, a scripted source,
//! in-memory sinks) is in [`testing`], apart from the operator author's API.
//!
//! The engine does not parse SQL (that is `runnel-sql`), does not talk to
//! external systems (that is `runnel-connectors`), and does not decide how
//! checkpoints are stored on disk (that is `runnel-state`).

pub mod aggregate;
pub mod connector;
pub mod error;
pub mod expr;
pub mod graph;
pub mod keys;
pub mod operator;
pub mod ops;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod testing;
pub mod time;
pub mod types;
pub mod watermark;
pub mod window;

pub use error::{EngineError, Result};
