//! Projection pruning of a [`Plan`]: which columns of each scan the plan
//! above it uses, so that unused ones are not read.

use std::collections::BTreeSet;

use runnel_engine::expr::Expr;
use runnel_engine::ops::{AggregateCall, StreamJoinSpec, WindowJoinSpec};

use crate::plan::{Node, Plan};

impl Plan {
    /// Projection pruning: tells every scan which of its columns the plan
    /// above it uses, given that the consumer needs the output columns
    /// `needed`. Unused columns are then not read (for connectors that can
    /// skip them) and filled with placeholders, so column numbers above the
    /// scan stay as they are.
    pub fn prune(&mut self, needed: &BTreeSet<usize>) {
        match &mut self.node {
            Node::Scan {
                table, projection, ..
            } => {
                let physical = table.descriptor.schema.fields().len();
                let mut keep: BTreeSet<usize> =
                    needed.iter().copied().filter(|&c| c < physical).collect();
                // The event-time column drives the watermark even when unused.
                if let Some((t, _)) = table.descriptor.watermark {
                    keep.insert(t);
                }
                if keep.len() < physical {
                    *projection = Some(keep.into_iter().collect());
                }
            }
            Node::Filter { input, predicate } => {
                let mut n = needed.clone();
                predicate.columns(&mut n);
                input.prune(&n);
            }
            Node::Expect { input, spec } => {
                let mut n = needed.clone();
                for c in &spec.checks {
                    c.predicate.columns(&mut n);
                }
                input.prune(&n);
            }
            Node::Project { input, exprs } => {
                let mut n = BTreeSet::new();
                for (i, (e, _)) in exprs.iter().enumerate() {
                    if needed.contains(&i) {
                        e.columns(&mut n);
                    }
                }
                input.prune(&n);
            }
            Node::WindowTvf {
                input,
                time_column,
                partition,
                ..
            } => {
                let width = input.scope.columns.len();
                let mut n: BTreeSet<usize> =
                    needed.iter().copied().filter(|&c| c < width).collect();
                n.insert(*time_column);
                n.extend(partition.iter().copied());
                input.prune(&n);
            }
            Node::WindowAggregate { input, spec } => {
                let mut n: BTreeSet<usize> = spec.key_columns.iter().copied().collect();
                n.insert(spec.time_column);
                aggregate_columns(&spec.aggregates, &mut n);
                input.prune(&n);
            }
            Node::SessionAggregate { input, spec } => {
                let mut n: BTreeSet<usize> = spec.key_columns.iter().copied().collect();
                n.insert(spec.time_column);
                aggregate_columns(&spec.aggregates, &mut n);
                input.prune(&n);
            }
            Node::GroupAggregate { input, spec } => {
                let mut n: BTreeSet<usize> = spec.key_columns.iter().copied().collect();
                aggregate_columns(&spec.aggregates, &mut n);
                input.prune(&n);
            }
            Node::Union { inputs } => inputs.iter_mut().for_each(|i| i.prune(needed)),
            Node::WindowJoin {
                left,
                right,
                spec:
                    WindowJoinSpec {
                        left_keys,
                        right_keys,
                        residual,
                        ..
                    },
            }
            | Node::StreamJoin {
                left,
                right,
                spec:
                    StreamJoinSpec {
                        left_keys,
                        right_keys,
                        residual,
                        ..
                    },
            } => prune_join(
                left,
                right,
                [left_keys, right_keys],
                residual.as_ref(),
                needed,
            ),
            Node::TemporalJoin { left, right, spec } => {
                let mut keys = [spec.left_keys.clone(), spec.right_keys.clone()];
                keys[0].push(spec.times[0]);
                keys[1].push(spec.times[1]);
                prune_join(
                    left,
                    right,
                    [&keys[0], &keys[1]],
                    spec.residual.as_ref(),
                    needed,
                )
            }
            Node::IntervalJoin { left, right, spec } => {
                // The time columns are read by the join itself.
                let mut keys = [spec.left_keys.clone(), spec.right_keys.clone()];
                keys[0].push(spec.times[0]);
                keys[1].push(spec.times[1]);
                prune_join(
                    left,
                    right,
                    [&keys[0], &keys[1]],
                    spec.residual.as_ref(),
                    needed,
                )
            }
            Node::Normalize { input, .. } => {
                // The normalize keeps whole rows: every column is read.
                let all = (0..input.scope.columns.len()).collect();
                input.prune(&all);
            }
            Node::OverAggregate { input, spec } => {
                let mut n = input_columns(input, needed);
                over_columns(spec, &mut n);
                input.prune(&n);
            }
            Node::TopN { input, spec, .. } => {
                let mut n = input_columns(input, needed);
                n.extend(spec.partition_keys.iter().copied());
                n.extend(spec.order.iter().map(|(c, ..)| *c));
                input.prune(&n);
            }
            Node::LookupJoin {
                input, stream_keys, ..
            } => {
                let width = input.scope.columns.len();
                let mut n: BTreeSet<usize> =
                    needed.iter().copied().filter(|&c| c < width).collect();
                n.extend(stream_keys.iter().copied());
                input.prune(&n);
            }
            Node::ProcTime { input } => input.prune(&input_columns(input, needed)),
        }
    }
}

/// The input columns an OVER aggregation reads besides those it passes on.
fn over_columns(spec: &runnel_engine::ops::OverAggregateSpec, n: &mut BTreeSet<usize>) {
    n.extend(spec.partition_keys.iter().copied());
    n.insert(spec.time_column);
    n.extend(spec.order.iter().map(|(c, ..)| *c));
    aggregate_columns(&spec.aggregates, n);
    for lag in &spec.lags {
        lag.arg.columns(n);
        if let Some(d) = &lag.default {
            d.columns(n);
        }
    }
}

fn aggregate_columns(calls: &[AggregateCall], out: &mut BTreeSet<usize>) {
    for c in calls {
        c.args.iter().for_each(|a| a.columns(out));
        if let Some(f) = &c.filter {
            f.columns(out);
        }
    }
}

/// [`Plan::prune`] for the two sides of a join whose consumer needs the
/// output columns `needed`: each side keeps what is needed of its columns,
/// its keys, and what the residual condition reads.
fn prune_join(
    left: &mut Plan,
    right: &mut Plan,
    [left_keys, right_keys]: [&Vec<usize>; 2],
    residual: Option<&Expr>,
    needed: &BTreeSet<usize>,
) {
    // Column numbers of the join's output: the left side's data columns,
    // the right side's, then the changelog column when it updates.
    let width = left.scope.columns.len() - usize::from(left.updating);
    let right_width = right.scope.columns.len() - usize::from(right.updating);
    let mut all = needed.clone();
    if let Some(r) = residual {
        r.columns(&mut all);
    }
    let mut l: BTreeSet<usize> = all.iter().copied().filter(|&c| c < width).collect();
    l.extend(left_keys.iter().copied());
    let mut r: BTreeSet<usize> = all
        .iter()
        .filter(|&&c| c >= width && c < width + right_width)
        .map(|c| c - width)
        .collect();
    r.extend(right_keys.iter().copied());
    left.prune(&l);
    right.prune(&r);
}

/// The columns of `input` among `needed` (an operator that appends columns
/// to its input's passes the others through).
fn input_columns(input: &Plan, needed: &BTreeSet<usize>) -> BTreeSet<usize> {
    let width = input.scope.columns.len();
    needed.iter().copied().filter(|&c| c < width).collect()
}
