//! Runnel's benchmarks.
//!
//! The criterion micro-benchmarks live in `benches/` (run them with
//! `cargo bench -p runnel-benches`); figures and how they were measured are in
//! `benches/README.md`. The Nexmark harness ([`nexmark`], and the
//! `runnel-bench` binary) runs the query files of `nexmark/`.

pub mod nexmark;
