//! Runnel benchmarks.
