//! Runnel's SQL front end (being built).
//!
//! Entry points will be the parser (Flink SQL dialect on top of
//! `sqlparser`), the catalog, and the planner that lowers queries to the
//! engine's [`runnel_engine::graph::JobGraph`]. Errors ([`error::SqlError`])
//! carry the line and column of the SQL text.

pub mod bind_expr;
pub mod catalog;
pub mod error;
pub mod parser;
pub mod planner;
pub mod session;
