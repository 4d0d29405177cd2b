//! The logical plan: what a query computes, before it is lowered to the
//! engine's job graph.
//!
//! The plan is small: scans, filters, projections, window table functions,
//! window and group aggregates, unions, lookup joins and stream joins. Each
//! node knows its output columns, whether its stream is updating (carries
//! the changelog column), where its window columns are, and which column is
//! its event-time attribute (the column declared with a WATERMARK, while it
//! passes through unchanged). The planner ([`crate::planner`]) builds it,
//! [`crate::lower`] turns it into a `JobGraph`; this module also renders
//! the plan for EXPLAIN (pruning unused scan columns is in
//! [`crate::prune`]).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use runnel_engine::expr::Expr;
use runnel_engine::ops::{
    GroupAggregateSpec, IntervalJoinSpec, JoinKind, NormalizeSpec, OverAggregateSpec,
    SessionAggregateSpec, StreamJoinSpec, TemporalJoinSpec, TopNSpec, WindowAggregateSpec,
    WindowJoinSpec,
};
use runnel_engine::window::WindowSpec;

use crate::binder::Scope;
use crate::catalog::TableEntry;

/// A logical plan node with its output facts.
#[derive(Clone)]
pub struct Plan {
    /// What the node does.
    pub node: Node,
    /// Output columns (names, qualifiers, types).
    pub scope: Scope,
    /// True when the output carries the changelog column (last column).
    pub updating: bool,
    /// The event-time attribute among the output columns.
    pub time_column: Option<usize>,
    /// The `window_start` and `window_end` columns when every row belongs
    /// to one window (after a window TVF or a window aggregate, while those
    /// columns pass through unchanged): what window joins and cascaded
    /// window aggregates key on.
    pub window: Option<(usize, usize)>,
}

/// Plan nodes.
#[derive(Clone)]
pub enum Node {
    /// Read a table.
    Scan {
        /// The table.
        table: TableEntry,
        /// Physical columns the query uses (`None`: all), set by
        /// [`Plan::prune`].
        projection: Option<Vec<usize>>,
        /// The source sends processing-time watermarks (a window over a
        /// `PROCTIME()` column reads it) instead of the table's
        /// event-time ones.
        proctime_watermark: bool,
    },
    /// Appends a `PROCTIME()` column: the wall-clock time each row passed.
    ProcTime {
        /// Input (append-only).
        input: Box<Plan>,
    },
    /// Check rows against a table's or view's expectations: count them,
    /// drop or fail as the expectations say.
    Expect {
        /// Input.
        input: Box<Plan>,
        /// The bound expectations and their counters.
        spec: runnel_engine::ops::ExpectSpec,
    },
    /// Keep rows where the predicate is true.
    Filter {
        /// Input.
        input: Box<Plan>,
        /// Predicate over the input.
        predicate: Expr,
    },
    /// Compute columns.
    Project {
        /// Input.
        input: Box<Plan>,
        /// Output expressions over the input, with names.
        exprs: Vec<(Expr, String)>,
    },
    /// A window table function not yet consumed by a GROUP BY.
    WindowTvf {
        /// Input.
        input: Box<Plan>,
        /// The window.
        window: WindowSpec,
        /// Input time column.
        time_column: usize,
        /// SESSION's PARTITION BY columns.
        partition: Vec<usize>,
        /// Window offset in milliseconds (TUMBLE, HOP, CUMULATE).
        offset: i64,
    },
    /// TUMBLE / HOP / CUMULATE aggregate.
    WindowAggregate {
        /// Input.
        input: Box<Plan>,
        /// The operator's spec.
        spec: WindowAggregateSpec,
    },
    /// SESSION aggregate.
    SessionAggregate {
        /// Input.
        input: Box<Plan>,
        /// The operator's spec.
        spec: SessionAggregateSpec,
    },
    /// Non-windowed (updating) aggregate.
    GroupAggregate {
        /// Input.
        input: Box<Plan>,
        /// The operator's spec.
        spec: GroupAggregateSpec,
    },
    /// UNION ALL.
    Union {
        /// Inputs, all with the same column types.
        inputs: Vec<Plan>,
    },
    /// Two windowed streams joined window by window.
    WindowJoin {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// Keys, window columns and other conditions.
        spec: WindowJoinSpec,
    },
    /// Two streams joined on keys, every row kept (a regular join).
    StreamJoin {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// Keys and other conditions.
        spec: StreamJoinSpec,
    },
    /// Two streams joined on keys and a bounded distance between their
    /// event times.
    IntervalJoin {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// Keys, time bounds and other conditions.
        spec: IntervalJoinSpec,
    },
    /// An append-only stream joined with the version of a versioned table
    /// valid at each row's event time.
    TemporalJoin {
        /// The stream.
        left: Box<Plan>,
        /// The versioned table.
        right: Box<Plan>,
        /// Keys, time columns and other conditions.
        spec: TemporalJoinSpec,
    },
    /// An upsert stream (rows by key, deletes by key) turned into a full
    /// changelog by keeping each key's last row.
    Normalize {
        /// The upsert stream.
        input: Box<Plan>,
        /// Its key.
        spec: NormalizeSpec,
    },
    /// Aggregates OVER a ROWS or RANGE frame ordered by event time: each
    /// row with the aggregates of its frame, once the watermark passes it.
    OverAggregate {
        /// Input.
        input: Box<Plan>,
        /// The operator's spec.
        spec: OverAggregateSpec,
    },
    /// `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)`: the best rows
    /// per partition with their row number (a Top-N once a filter on the
    /// row number has set `spec.limit`; 0 until then).
    TopN {
        /// Input.
        input: Box<Plan>,
        /// The operator's spec.
        spec: TopNSpec,
        /// Where ROW_NUMBER() is, for errors.
        position: crate::error::Position,
    },
    /// Stream joined with a bounded table loaded in memory.
    LookupJoin {
        /// The stream.
        input: Box<Plan>,
        /// The table.
        table: TableEntry,
        /// Stream key columns.
        stream_keys: Vec<usize>,
        /// Table key columns.
        table_keys: Vec<usize>,
        /// INNER or LEFT.
        kind: JoinKind,
    },
}

impl Plan {
    /// Output schema (without qualifiers).
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.scope.schema())
    }

    /// The columns that identify a row of this updating plan's output
    /// (its upsert key): every `-U`/`+U` pair and every `-D` of a row
    /// carry the same values in them, and no two live rows share them.
    /// `None` when the planner cannot tell (joins, unions, anything
    /// computed). Aggregates are keyed by their GROUP BY columns, upsert
    /// tables and Debezium tables by their PRIMARY KEY.
    pub fn upsert_key(&self) -> Option<Vec<usize>> {
        match &self.node {
            Node::GroupAggregate { spec, .. } => Some((0..spec.key_columns.len()).collect()),
            // Corrected windows: keys, window_start, window_end.
            Node::WindowAggregate { spec, .. } if self.updating => {
                Some((0..spec.key_columns.len() + 2).collect())
            }
            Node::SessionAggregate { spec, .. } if self.updating => {
                Some((0..spec.key_columns.len() + 2).collect())
            }
            Node::Normalize { spec, .. } => Some(spec.key_columns.clone()),
            // Each change is of one rank of one partition; the first rank
            // of a partition is the partition's only row.
            // RANK and DENSE_RANK give equal rows one rank: no key.
            Node::TopN { spec, .. }
                if spec.function != runnel_engine::ops::RankFunction::RowNumber =>
            {
                None
            }
            Node::TopN { spec, input, .. } => {
                let mut key = spec.partition_keys.clone();
                if spec.limit != 1 {
                    // Without the rank nothing tells a partition's rows apart.
                    if !spec.rank_column {
                        return None;
                    }
                    key.push(crate::planner::data_width(input));
                }
                Some(key)
            }
            Node::Scan { table, .. }
                if self.updating && !table.descriptor.primary_key.is_empty() =>
            {
                Some(table.descriptor.primary_key.clone())
            }
            Node::Filter { input, .. } | Node::Expect { input, .. } => input.upsert_key(),
            Node::Project { input, exprs } => {
                let key = input.upsert_key()?;
                key.iter()
                    .map(|&k| {
                        exprs.iter().position(|(e, _)| match e {
                            Expr::Column(c) => *c == k,
                            Expr::Cast { expr, .. } => {
                                matches!(expr.as_ref(), Expr::Column(c) if *c == k)
                            }
                            _ => false,
                        })
                    })
                    .collect()
            }
            _ => None,
        }
    }

    /// Why this plan's output updates, naming the step that makes it:
    /// `None` for an append-only plan.
    pub fn updating_cause(&self) -> Option<String> {
        if !self.updating {
            return None;
        }
        let inputs: Vec<&Plan> = match &self.node {
            Node::GroupAggregate { .. } => {
                return Some(
                    "it aggregates without a window (GROUP BY over the whole stream)".into(),
                )
            }
            Node::WindowAggregate { spec, .. } if spec.allowed_lateness > 0 => {
                return Some(format!(
                    "its windows are corrected for rows up to {} ms late ('table.exec.emit.allow-lateness')",
                    spec.allowed_lateness
                ))
            }
            Node::SessionAggregate { spec, .. } if spec.allowed_lateness > 0 => {
                return Some(format!(
                    "its session windows are corrected for rows up to {} ms late ('table.exec.emit.allow-lateness')",
                    spec.allowed_lateness
                ))
            }
            Node::StreamJoin { spec, left, right } => {
                use runnel_engine::ops::JoinKind;
                let kind = match spec.kind {
                    JoinKind::Left => Some("LEFT"),
                    JoinKind::Right => Some("RIGHT"),
                    JoinKind::Full => Some("FULL"),
                    JoinKind::Inner => None,
                };
                if let Some(kind) = kind {
                    return Some(format!(
                        "its {kind} OUTER JOIN emits unmatched rows padded with NULLs and retracts them when a match arrives"
                    ));
                }
                vec![left.as_ref(), right.as_ref()]
            }
            Node::TopN { spec, .. } if !spec.rank_column && spec.partition_keys.is_empty() => {
                return Some(format!(
                    "it keeps the top {} rows of the stream (ORDER BY ... LIMIT {}), which change as rows arrive",
                    spec.limit, spec.limit
                ))
            }
            Node::TopN { spec, .. } => {
                return Some(format!(
                "it keeps the top {} rows per partition (ROW_NUMBER), which change as rows arrive",
                spec.limit
            ))
            }
            Node::Normalize { input, .. } => {
                if let Node::Scan { table, .. } = &input.node {
                    return Some(format!(
                        "it reads upsert-kafka table '{}', whose records replace and delete rows by key",
                        table.descriptor.name
                    ));
                }
                vec![input.as_ref()]
            }
            Node::Filter { input, .. }
            | Node::Expect { input, .. }
            | Node::Project { input, .. }
            | Node::WindowTvf { input, .. }
            | Node::WindowAggregate { input, .. }
            | Node::SessionAggregate { input, .. }
            | Node::OverAggregate { input, .. }
            | Node::ProcTime { input }
            | Node::LookupJoin { input, .. } => vec![input.as_ref()],
            Node::Union { inputs } => inputs.iter().collect(),
            Node::WindowJoin { left, right, .. }
            | Node::IntervalJoin { left, right, .. }
            | Node::TemporalJoin { left, right, .. } => vec![left.as_ref(), right.as_ref()],
            Node::Scan { table, .. } => {
                return Some(format!(
                    "it reads table '{}', whose rows are changes (debezium-json)",
                    table.descriptor.name
                ))
            }
        };
        inputs.into_iter().find_map(Plan::updating_cause)
    }

    /// [`Plan::prune`] for a plan whose every output column is consumed.
    pub fn prune_all(&mut self) {
        let n = (0..self.scope.columns.len()).collect();
        self.prune(&n);
    }

    /// The tables this plan reads as streams (not the build sides of joins).
    pub fn scanned_tables(&self) -> Vec<&TableEntry> {
        self.stream_scans().into_iter().map(|(t, _)| t).collect()
    }

    /// The scans of tables read as streams, with the columns each reads
    /// (`None`: all), in plan order.
    pub fn stream_scans(&self) -> Vec<(&TableEntry, Option<&[usize]>)> {
        match &self.node {
            Node::Scan {
                table, projection, ..
            } => vec![(table, projection.as_deref())],
            Node::Filter { input, .. }
            | Node::Expect { input, .. }
            | Node::Project { input, .. }
            | Node::WindowTvf { input, .. }
            | Node::WindowAggregate { input, .. }
            | Node::SessionAggregate { input, .. }
            | Node::GroupAggregate { input, .. }
            | Node::Normalize { input, .. }
            | Node::TopN { input, .. }
            | Node::OverAggregate { input, .. }
            | Node::ProcTime { input }
            | Node::LookupJoin { input, .. } => input.stream_scans(),
            Node::Union { inputs } => inputs.iter().flat_map(|i| i.stream_scans()).collect(),
            Node::WindowJoin { left, right, .. }
            | Node::StreamJoin { left, right, .. }
            | Node::IntervalJoin { left, right, .. }
            | Node::TemporalJoin { left, right, .. } => {
                let mut t = left.stream_scans();
                t.extend(right.stream_scans());
                t
            }
        }
    }

    /// A one-line-per-node description, indented by depth.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        self.describe_into(0, &mut out);
        out
    }

    fn describe_into(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        let cols: Vec<&str> = self.scope.columns.iter().map(|c| c.name.as_str()).collect();
        let kind = if self.updating {
            "updating"
        } else {
            "append-only"
        };
        let line = match &self.node {
            Node::Scan {
                table,
                projection,
                proctime_watermark,
            } => scan_line(table, projection.as_deref(), *proctime_watermark),
            Node::ProcTime { .. } => "ProcTime".to_string(),
            Node::Filter { predicate, .. } => format!("Filter {predicate}"),
            Node::Expect { spec, .. } => {
                let names: Vec<String> = spec
                    .checks
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.mode.sql()).trim().to_string())
                    .collect();
                format!("Expect {} [{}]", spec.object, names.join(", "))
            }
            Node::Project { .. } => "Project".to_string(),
            Node::WindowTvf { window, offset, .. } => match offset {
                0 => format!("WindowTvf {window:?}"),
                o => format!("WindowTvf {window:?} offset {o} ms"),
            },
            Node::WindowAggregate { spec, .. } => format!(
                "WindowAggregate {:?}{} keys {:?}{}",
                spec.window,
                match spec.offset {
                    0 => String::new(),
                    o => format!(" offset {o} ms"),
                },
                spec.key_columns,
                lateness_text(spec.allowed_lateness)
            ),
            Node::SessionAggregate { spec, .. } => format!(
                "SessionAggregate gap {} ms keys {:?}{}",
                spec.gap,
                spec.key_columns,
                lateness_text(spec.allowed_lateness)
            ),
            Node::GroupAggregate { spec, .. } => format!(
                "GroupAggregate keys {:?}{}",
                spec.key_columns,
                spec.ttl.map_or(String::new(), |d| format!(
                    " state TTL {} ms",
                    d.as_millis()
                ))
            ),
            Node::Union { .. } => "Union".to_string(),
            Node::StreamJoin { spec, .. } => format!(
                "Join{} keys {:?} = {:?}{}{}",
                match spec.kind {
                    JoinKind::Inner => "",
                    JoinKind::Left => " LEFT",
                    JoinKind::Right => " RIGHT",
                    JoinKind::Full => " FULL",
                },
                spec.left_keys,
                spec.right_keys,
                match &spec.residual {
                    Some(r) => format!(" and {r}"),
                    None => String::new(),
                },
                match spec.ttl {
                    [None, None] => String::new(),
                    [l, r] => format!(
                        " state TTL {} / {}",
                        l.map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
                        r.map_or("-".to_string(), |d| format!("{} ms", d.as_millis()))
                    ),
                }
            ),
            Node::IntervalJoin { spec, .. } => format!(
                "IntervalJoin {:?} keys {:?} = {:?}, {} <= left time - right time <= {} ms{}",
                spec.kind,
                spec.left_keys,
                spec.right_keys,
                spec.lower,
                spec.upper,
                match &spec.residual {
                    Some(r) => format!(" and {r}"),
                    None => String::new(),
                }
            ),
            Node::WindowJoin { spec, .. } => format!(
                "WindowJoin{} keys {:?} = {:?}{}",
                match spec.kind {
                    runnel_engine::ops::JoinKind::Inner => "",
                    runnel_engine::ops::JoinKind::Left => " LEFT",
                    runnel_engine::ops::JoinKind::Right => " RIGHT",
                    runnel_engine::ops::JoinKind::Full => " FULL",
                },
                spec.left_keys,
                spec.right_keys,
                match &spec.residual {
                    Some(r) => format!(" and {r}"),
                    None => String::new(),
                }
            ),
            Node::LookupJoin { table, kind, .. } => {
                format!("LookupJoin {kind:?} {}", table.descriptor.name)
            }
            Node::Normalize { spec, .. } => {
                format!("ChangelogNormalize keys {:?}", spec.key_columns)
            }
            Node::OverAggregate { spec, input } => over_line(spec, input.updating),
            Node::TopN { spec, .. } => format!(
                "TopN partition {:?} order {:?} (column, descending, nulls first) rows {}",
                spec.partition_keys, spec.order, spec.limit
            ),
            Node::TemporalJoin { spec, .. } => format!(
                "TemporalJoin {:?} keys {:?} = {:?} as of left time #{}",
                spec.kind, spec.left_keys, spec.right_keys, spec.times[0]
            ),
        };
        out.push_str(&format!("{pad}{line} -> [{}] ({kind})\n", cols.join(", ")));
        match &self.node {
            Node::Scan { .. } => {}
            Node::Filter { input, .. }
            | Node::Expect { input, .. }
            | Node::Project { input, .. }
            | Node::WindowTvf { input, .. }
            | Node::WindowAggregate { input, .. }
            | Node::SessionAggregate { input, .. }
            | Node::GroupAggregate { input, .. }
            | Node::Normalize { input, .. }
            | Node::TopN { input, .. }
            | Node::OverAggregate { input, .. }
            | Node::ProcTime { input }
            | Node::LookupJoin { input, .. } => input.describe_into(depth + 1, out),
            Node::Union { inputs } => inputs.iter().for_each(|i| i.describe_into(depth + 1, out)),
            Node::WindowJoin { left, right, .. }
            | Node::StreamJoin { left, right, .. }
            | Node::IntervalJoin { left, right, .. }
            | Node::TemporalJoin { left, right, .. } => {
                left.describe_into(depth + 1, out);
                right.describe_into(depth + 1, out);
            }
        }
    }
}

/// An engine error's message without its "invalid plan: " prefix. It lives
/// here because both the planner and lowering report the engine's
/// objections to a plan as errors at a position in the SQL text.
pub(crate) fn engine_message(e: &runnel_engine::EngineError) -> String {
    match e {
        runnel_engine::EngineError::Plan(m) => m.clone(),
        other => other.to_string(),
    }
}

/// How EXPLAIN shows an allowed lateness (nothing for none).
fn lateness_text(millis: i64) -> String {
    match millis {
        0 => String::new(),
        l => format!(" allowed lateness {l} ms"),
    }
}

/// How EXPLAIN shows an OVER aggregation (over an `updating` input or not).
fn over_line(spec: &OverAggregateSpec, updating: bool) -> String {
    format!(
        "OverAggregate partition {:?} {} {:?} [{}]",
        spec.partition_keys,
        match updating {
            true => format!("order {:?} (column, descending, nulls first)", spec.order),
            false => format!("by time #{}", spec.time_column),
        },
        spec.frame,
        spec.aggregates
            .iter()
            .map(|a| a.func.name())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// How EXPLAIN shows a scan.
fn scan_line(table: &TableEntry, projection: Option<&[usize]>, proctime: bool) -> String {
    let wm = if proctime {
        " with processing-time watermarks"
    } else {
        ""
    };
    match projection {
        Some(p) => format!("Scan {} reading columns {p:?}{wm}", table.descriptor.name),
        None => format!("Scan {}{wm}", table.descriptor.name),
    }
}
