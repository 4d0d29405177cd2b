//! Built-in operators.

pub mod agg;
pub mod basic;
pub mod changelog_join;
pub mod expect;
pub mod filter_project;
pub mod group_agg;
pub mod interval_join;
pub mod late;
pub mod lookup_join;
pub mod normalize;
pub mod ordered;
pub mod over_agg;
pub mod retract_agg;
pub mod session;
pub mod stream_join;
pub mod temporal_join;
pub mod top_n;
pub mod window_agg;
pub mod window_join;

pub use agg::AggregateCall;
pub use basic::{ProcTimeOperator, UnionOperator};
pub use changelog_join::ChangelogJoin;
pub use expect::{ExpectCheck, ExpectCounts, ExpectOperator, ExpectSpec, Violation};
pub use group_agg::{GroupAggregate, GroupAggregateSpec};
pub use interval_join::{IntervalJoin, IntervalJoinSpec};
pub use lookup_join::{JoinKind, LookupJoin};
pub use normalize::{ChangelogNormalize, MaterializeSpec, NormalizeSpec, UpsertMaterialize};
pub use ordered::{RetractOver, RetractTopN};
pub use over_agg::{LagCall, OverAggregate, OverAggregateSpec, OverFrame};
pub use retract_agg::RetractAggregate;
pub use session::{SessionAggregate, SessionAggregateSpec};
pub use stream_join::{StreamJoin, StreamJoinSpec};
pub use temporal_join::{TemporalJoin, TemporalJoinSpec};
pub use top_n::{RankFunction, TopN, TopNSpec};
pub use window_agg::{WindowAggregate, WindowAggregateSpec};
pub use window_join::{WindowAssign, WindowJoin, WindowJoinSpec};
#[cfg(test)]
mod session_lateness_tests;
#[cfg(test)]
mod tests;
