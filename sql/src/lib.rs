//! Runnel's SQL front end (not built yet).
//!
//! This crate will own the Flink-compatible dialect, the catalog, the binder,
//! the logical plan and its lowering to the engine's [`runnel_engine::graph::JobGraph`].
//! Today it holds nothing but this paragraph; the engine's Rust job graph
//! API is what the planner will target.
