//! Scaffolding for tests and demos, kept apart from the operator author's
//! API: a harness that drives one operator by hand, a source that replays a
//! script, and in-memory sinks whose output a test reads back.
//!
//! The sinks and sources that real jobs use without an external system
//! ([`crate::sink::BlackholeSink`], [`crate::sink::PrintSink`]) stay with
//! the contracts in [`crate::sink`] and [`crate::source`].

mod harness;
mod memory_sink;
mod scripted_source;

pub use harness::OperatorHarness;
pub use memory_sink::{CommittedHandle, MemorySink, MemorySinkHandle, TransactionalMemorySink};
pub use scripted_source::{ScriptStep, ScriptedSource};
