//! Built-in operators.

pub mod agg;
pub mod filter_project;
pub mod group_agg;
pub mod session;
pub mod window_agg;

pub use agg::AggregateCall;
pub use group_agg::{GroupAggregate, GroupAggregateSpec};
pub use session::{SessionAggregate, SessionAggregateSpec};
pub use window_agg::{WindowAggregate, WindowAggregateSpec};
#[cfg(test)]
mod tests;
