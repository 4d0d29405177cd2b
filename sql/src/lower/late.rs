//! Lowering the operators that drop late rows (window aggregates, OVER
//! aggregates, window Top-N) and, when the session names a late-data
//! table, the split in front of each and the sink their late rows share
//! (see runnel_engine::ops::late).

use std::collections::HashMap;
use std::sync::Arc;

use runnel_engine::connector::TableDescriptor;
use runnel_engine::graph::{JobGraph, NodeId};
use runnel_engine::operator::OperatorFactory;
use runnel_engine::ops::late::LateRule;
use runnel_engine::ops::{
    OverAggregateSpec, SessionAggregateSpec, TopNSpec, UnionOperator, WindowAggregateSpec,
};
use runnel_engine::window::WindowSpec;

use super::{connect, unique, LowerOptions, Lowerer};
use crate::error::{Position, Result, SqlError};
use crate::plan::{engine_message, Plan};

impl Lowerer<'_> {
    /// A TUMBLE, HOP or CUMULATE window aggregate.
    pub(super) fn lower_window_aggregate(
        &mut self,
        input: &Plan,
        spec: &WindowAggregateSpec,
    ) -> Result<(NodeId, usize)> {
        let factory = spec
            .clone()
            .factory(input.schema())
            .map_err(|e| self.err(e))?;
        let kind = match spec.window {
            WindowSpec::Tumble { .. } => "tumble",
            WindowSpec::Hop { .. } => "hop",
            WindowSpec::Cumulate { .. } => "cumulate",
            WindowSpec::Session { .. } => "session",
        };
        if self.options.late_table.is_some() {
            let rule = LateRule::Window {
                window: spec.window,
                offset: spec.offset,
                lateness: spec.allowed_lateness,
            };
            return self.lower_keyed_with_late_rows(
                input,
                &format!("{kind} window aggregate"),
                &spec.key_columns,
                factory,
                (rule, spec.time_column),
            );
        }
        self.lower_keyed(
            input,
            &format!("{kind} window aggregate"),
            &spec.key_columns,
            factory,
        )
    }

    /// A SESSION window aggregate. With a late-data table it reports its
    /// late rows in its own output (whether a row is late depends on the
    /// sessions it holds), and two operators behind it part them from its
    /// results.
    pub(super) fn lower_session_aggregate(
        &mut self,
        input: &Plan,
        spec: &SessionAggregateSpec,
    ) -> Result<(NodeId, usize)> {
        let name = "session window aggregate";
        let mut spec = spec.clone();
        spec.late_rows = self.options.late_table.is_some();
        let factory = spec
            .clone()
            .factory(input.schema())
            .map_err(|e| self.err(e))?;
        let lowered = self.lower_keyed(input, name, &spec.key_columns, factory)?;
        let results = spec
            .output_schema(&input.schema())
            .map_err(|e| self.err(e))?;
        self.part_late_rows(lowered, spec.late_rows, results)
    }

    /// Behind an operator that reports its own late rows (`reports`), the
    /// two operators that part its `results` from its late rows, which
    /// join the late-data table's branches; the node its results leave.
    pub(super) fn part_late_rows(
        &mut self,
        (op, par): (NodeId, usize),
        reports: bool,
        results: arrow::datatypes::SchemaRef,
    ) -> Result<(NodeId, usize)> {
        use runnel_engine::ops::late::{LateOfMarked, OnTimeOfMarked};
        if !reports {
            return Ok((op, par));
        }
        let op_name = self.graph.nodes()[op].name.clone();
        let on_time = self.graph.add_operator(
            unique(&mut self.names, &format!("on time: {op_name}")),
            par,
            OnTimeOfMarked::factory(results),
        );
        connect(self.graph, op, par, on_time, par, None)?;
        let late = self.graph.add_operator(
            unique(&mut self.names, &format!("late rows: {op_name}")),
            par,
            LateOfMarked::factory(op_name),
        );
        connect(self.graph, op, par, late, par, None)?;
        self.late.push((late, par));
        Ok((on_time, par))
    }

    /// An OVER aggregate.
    pub(super) fn lower_over_aggregate(
        &mut self,
        input: &Plan,
        spec: &OverAggregateSpec,
    ) -> Result<(NodeId, usize)> {
        let factory = spec
            .clone()
            .factory(input.schema())
            .map_err(|e| self.err(e))?;
        // Over an updating input nothing is late (no event time).
        if self.options.late_table.is_some() && !input.updating {
            return self.lower_keyed_with_late_rows(
                input,
                "over aggregate",
                &spec.partition_keys,
                factory,
                (LateRule::AtOrBefore, spec.time_column),
            );
        }
        self.lower_keyed(input, "over aggregate", &spec.partition_keys, factory)
    }

    /// A Top-N (or deduplication, or window Top-N).
    pub(super) fn lower_top_n(
        &mut self,
        input: &Plan,
        spec: &TopNSpec,
        position: Position,
    ) -> Result<(NodeId, usize)> {
        if spec.limit == 0 {
            return Err(SqlError::plan(
                "ROW_NUMBER() is supported as Flink's Top-N: filter on its result in \
                 the enclosing query (WHERE rn <= 10, rn < 10 or rn = 1)",
                position,
            ));
        }
        let factory = spec
            .clone()
            .factory(input.schema())
            .map_err(|e| self.err(e))?;
        if let (Some(_), Some(end)) = (&self.options.late_table, spec.window_end) {
            return self.lower_keyed_with_late_rows(
                input,
                "window top-n",
                &spec.partition_keys,
                factory,
                (LateRule::WindowEnd, end),
            );
        }
        self.lower_keyed(input, "top-n", &spec.partition_keys, factory)
    }

    /// [`Self::lower_keyed`] for an operator that drops late rows, when
    /// they go to the late-data table: a split behind the exchange marks
    /// them by the operator's rule over its time column, the others go on
    /// to the operator (see runnel_engine::ops::late).
    pub(super) fn lower_keyed_with_late_rows(
        &mut self,
        input: &Plan,
        name: &str,
        keys: &[usize],
        factory: OperatorFactory,
        (rule, time_column): (LateRule, usize),
    ) -> Result<(NodeId, usize)> {
        use runnel_engine::ops::late::{LateRows, LateSplit, OnTime};
        let (n, p) = self.lower(input)?;
        let par = self.keyed_parallelism(keys);
        let schema = input.schema();
        let name = unique(&mut self.names, name);
        let split = self.graph.add_operator(
            unique(&mut self.names, &format!("late split: {name}")),
            par,
            LateSplit::factory(rule, time_column, &schema),
        );
        connect(self.graph, n, p, split, par, Some(keys.to_vec()))?;
        let on_time = self.graph.add_operator(
            unique(&mut self.names, &format!("on time: {name}")),
            par,
            OnTime::factory(Arc::clone(&schema)),
        );
        connect(self.graph, split, par, on_time, par, None)?;
        let late = self.graph.add_operator(
            unique(&mut self.names, &format!("late rows: {name}")),
            par,
            LateRows::factory(name.clone(), schema, time_column),
        );
        connect(self.graph, split, par, late, par, None)?;
        self.late.push((late, par));
        let op = self.graph.add_operator(name, par, factory);
        connect(self.graph, on_time, par, op, par, None)?;
        Ok((op, par))
    }
}

/// Gathers every split's late rows (`late`: node and parallelism) into the
/// late-data table `desc`.
pub(super) fn sink_late_rows(
    graph: &mut JobGraph,
    names: &mut HashMap<String, usize>,
    late: Vec<(NodeId, usize)>,
    desc: &TableDescriptor,
    options: &LowerOptions,
    position: Position,
) -> Result<()> {
    if late.is_empty() {
        return Ok(());
    }
    let connector = options
        .registry
        .resolve(desc)
        .map_err(|e| SqlError::plan(engine_message(&e), position))?;
    let factory = connector
        .sink(desc, false)
        .map_err(|e| SqlError::plan(engine_message(&e), position))?;
    let par = options.parallelism.max(1);
    let union = graph.add_operator(unique(names, "late rows"), par, UnionOperator::factory());
    for (node, p) in late {
        connect(graph, node, p, union, par, None)?;
    }
    let sink = graph.add_operator(unique(names, &format!("sink: {}", desc.name)), par, factory);
    connect(graph, union, par, sink, par, None)
}
