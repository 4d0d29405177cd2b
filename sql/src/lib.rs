//! Runnel's SQL front end.
//!
//! The entry point is [`session::Session`]: it executes statements parsed by
//! [`parser::parse_sql`] (Flink's dialect on top of `sqlparser`) against a
//! [`catalog::Catalog`], and hands back the engine's
//! [`runnel_engine::graph::JobGraph`] for the caller to run. A query goes
//! SQL text -> [`parser`] -> [`planner::Planner`] (one file per clause,
//! expressions bound by [`bind_expr`]) -> a logical [`plan::Plan`] ->
//! [`lower::lower`], where a plan becomes a `JobGraph`. Errors
//! ([`error::SqlError`]) carry the line and column of the SQL text. This
//! crate does not run jobs and knows no connector: it finds connectors by
//! name in the engine's registry.

pub mod bind_expr;
pub mod catalog;
pub mod error;
pub mod finish;
pub mod lower;
pub mod parser;
pub mod plan;
pub mod planner;
pub mod session;
