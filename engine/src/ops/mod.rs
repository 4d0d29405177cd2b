//! Built-in operators.

pub mod agg;
pub mod filter_project;
pub mod window_agg;

pub use agg::AggregateCall;
pub use window_agg::{WindowAggregate, WindowAggregateSpec};
