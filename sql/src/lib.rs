//! Runnel's SQL front end.
//!
//! The entry point is [`session::Session`]: it executes statements parsed by
//! [`parser::parse_sql`] (Flink's dialect on top of `sqlparser`) against a
//! [`catalog::Catalog`], and hands back the engine's
//! [`runnel_engine::graph::JobGraph`] for the caller to run. A query goes
//! SQL text -> [`parser`] -> [`planner::Planner`] (one file per clause) -> a
//! logical [`plan::Plan`] -> [`lower::lower`], where a plan becomes a
//! `JobGraph`. Scalar expressions are bound and type-checked by
//! [`binder::bind_expr`] against a [`binder::Scope`] of visible columns; the
//! binder also owns the SQL <-> Arrow type names ([`binder::flink_type_name`])
//! that DESCRIBE and the Flight SQL server show. Statements with `?`
//! parameters are described and run with bound values through
//! [`prepare`] ([`session::Session::prepare`]). Errors
//! ([`error::SqlError`]) carry the line and column of the SQL text. This
//! crate does not run jobs and knows no connector: it finds connectors by
//! name in the engine's registry.

pub mod access;
pub mod binder;
pub mod catalog;
pub mod error;
pub mod finish;
pub mod functions;
pub mod lineage;
pub mod lower;
pub mod parser;
pub mod plan;
pub mod planner;
pub mod prepare;
mod prune;
pub mod session;
