//! Tests of the aggregate accumulators.
