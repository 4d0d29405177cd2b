//! The `runnel` command line and the Flight SQL server.
//!
//! [`cli::main`] is the binary's entry point: `runnel run FILE.sql` runs a
//! SQL script, `runnel explain FILE.sql` prints plans, and `runnel serve`
//! starts the Flight SQL server ([`serve::start`] starts it in-process).
//! The server's core, without the network, is [`server::Server`]: one
//! shared SQL session, the jobs it started, materialized views and system
//! tables, and the statement log that survives restarts. [`service`] maps
//! Flight SQL calls onto it, with authentication; [`metadata`] holds what
//! BI tools ask about (SQL info, type info, column metadata).

pub mod cli;
pub mod config;
pub mod metadata;
pub mod serve;
pub mod server;
pub mod service;
pub mod sinks;
pub mod tables;
