//! Runnel's engine: the data model, the operator contract, the job graph and
//! the multithreaded runtime that executes it.
//!
//! The entry points are [`graph::JobGraph`] (build a DAG of sources,
//! operators and sinks with exchanges between them) and
//! [`runtime::Job::start`] (expand it into subtasks on OS threads and run
//! it; with a checkpoint directory it takes checkpoints through the
//! coordinator in [`checkpoint`] and resumes from them). Operators implement
//! [`operator::Operator`]. Built in are expression
//! evaluation on Arrow arrays ([`expr`]), aggregate functions
//! ([`aggregate`]), window assignment ([`window`]), the keyed window and
//! non-windowed aggregate operators ([`ops`]) and event-time watermarks
//! ([`watermark`]).
//!
//! The engine does not parse SQL (that is `runnel-sql`), does not talk to
//! external systems (that is `runnel-connectors`; the engine only has
//! in-memory sources and sinks for tests and demos), and does not decide how
//! checkpoints are stored on disk (that is `runnel-state`).

pub mod aggregate;
pub mod checkpoint;
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
