//! Lowering a table read: the source with its watermark strategy (event
//! time, or processing time for windows over PROCTIME()), the columns it
//! reads when its connector can skip the others, and the PROCTIME columns.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use runnel_engine::connector::{parse_duration, TableDescriptor};
use runnel_engine::expr::{Expr, ScalarValue};
use runnel_engine::graph::NodeId;
use runnel_engine::operator::TaskInfo;
use runnel_engine::ops::filter_project::ProjectOperator;
use runnel_engine::ops::ProcTimeOperator;
use runnel_engine::source::WatermarkStrategy;

use super::{connect, unique, Lowerer};
use crate::catalog::TableEntry;
use crate::error::{Result, SqlError};

impl Lowerer<'_> {
    /// A source for `table`, reading only the columns `projection` when
    /// its connector can, followed by the steps that restore the full row.
    pub(super) fn lower_scan(
        &mut self,
        table: &TableEntry,
        projection: Option<&[usize]>,
        proctime_watermark: bool,
    ) -> Result<(NodeId, usize)> {
        let par = self.options.parallelism.max(1);
        let full = &table.descriptor;
        let connector = self
            .options
            .registry
            .resolve(full)
            .map_err(|e| self.err(e))?;
        // Read only the used columns when the connector can.
        let pruned = projection
            .filter(|_| connector.supports_projection(full))
            .map(|p| pruned_descriptor(full, p));
        let desc = pruned.as_ref().unwrap_or(full);
        let source = connector.source(desc).map_err(|e| self.err(e))?;
        self.sources += 1;
        if source.in_memory && source.bounded {
            self.memory_sources += 1;
        }
        let watermark = if proctime_watermark {
            Some(WatermarkStrategy::processing_time(
                self.options.clock.clone(),
            ))
        } else {
            self.watermark(desc)?
        };
        let spar = source.parallelism.unwrap_or(par);
        let name = unique(&mut self.names, &format!("source: {}", desc.name));
        let mut node = self.graph.add_source(name, spar, source.factory, watermark);
        if let (Some(p), Some(_)) = (projection, pruned.as_ref()) {
            // Put placeholders where the unread columns were, so
            // column numbers above the scan do not change.
            let exprs = padding_exprs(&full.schema, p);
            let read_schema = Arc::clone(&desc.schema);
            ProjectOperator::new(exprs.clone(), &read_schema).map_err(|e| self.err(e))?;
            let pad = self.graph.add_operator(
                unique(&mut self.names, "unpruned columns"),
                spar,
                Arc::new(move |_t: &TaskInfo| {
                    Ok(Box::new(ProjectOperator::new(exprs.clone(), &read_schema)?) as Box<_>)
                }),
            );
            connect(self.graph, node, spar, pad, spar, None)?;
            node = pad;
        }
        if !table.proctime.is_empty() {
            let pt = self.graph.add_operator(
                unique(&mut self.names, "proctime"),
                spar,
                ProcTimeOperator::factory(
                    &full.schema,
                    table.proctime.clone(),
                    self.options.clock.clone(),
                ),
            );
            connect(self.graph, node, spar, pt, spar, None)?;
            node = pt;
        }
        Ok((node, spar))
    }

    /// The watermark strategy of a table read as `desc`: its declared
    /// delay, and the idle timeout its `scan.idle-timeout` option sets.
    fn watermark(&self, desc: &TableDescriptor) -> Result<Option<WatermarkStrategy>> {
        Ok(match desc.watermark {
            Some((c, delay)) => {
                let mut s =
                    WatermarkStrategy::bounded(c, Duration::from_millis(delay.max(0) as u64));
                if let Some(t) = desc.option("scan.idle-timeout") {
                    s.idle_timeout = Some(parse_duration(t).ok_or_else(|| {
                        SqlError::plan(
                            format!(
                                "'scan.idle-timeout' must be a duration such as '30 s', not '{t}'"
                            ),
                            self.position,
                        )
                    })?);
                }
                Some(s)
            }
            None => None,
        })
    }
}

/// The descriptor of `table` with only the columns `projection`.
pub(crate) fn pruned_descriptor(table: &TableDescriptor, projection: &[usize]) -> TableDescriptor {
    let fields: Vec<Field> = projection
        .iter()
        .map(|&i| table.schema.field(i).clone())
        .collect();
    let position = |c: usize| projection.iter().position(|&p| p == c);
    TableDescriptor {
        name: table.name.clone(),
        schema: Arc::new(Schema::new(fields)),
        options: table.options.clone(),
        watermark: table
            .watermark
            .and_then(|(c, d)| position(c).map(|p| (p, d))),
        primary_key: table
            .primary_key
            .iter()
            .filter_map(|&k| position(k))
            .collect(),
        partition_keys: table
            .partition_keys
            .iter()
            .filter_map(|&k| position(k))
            .collect(),
    }
}

/// Expressions that rebuild the full row from the pruned one: read columns
/// in place, a typed placeholder (zero, empty string, NULL) elsewhere.
fn padding_exprs(full: &Schema, projection: &[usize]) -> Vec<(Expr, String)> {
    full.fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let e = match projection.iter().position(|&p| p == i) {
                Some(p) => Expr::Column(p),
                None => placeholder(f.data_type(), f.is_nullable()),
            };
            (e, f.name().clone())
        })
        .collect()
}

/// A constant of type `t`; non-null where the column is declared NOT NULL,
/// so that the batch still satisfies the schema. Its value is never read.
fn placeholder(t: &DataType, nullable: bool) -> Expr {
    let value = match t {
        _ if nullable => ScalarValue::Null,
        DataType::Boolean => ScalarValue::Boolean(false),
        DataType::Int32 => ScalarValue::Int32(0),
        DataType::Int64 => ScalarValue::Int64(0),
        DataType::Float64 => ScalarValue::Float64(0.0),
        DataType::Utf8 => ScalarValue::Utf8(String::new()),
        DataType::Timestamp(TimeUnit::Millisecond, _) => ScalarValue::TimestampMillis(0),
        _ => ScalarValue::Null,
    };
    Expr::Cast {
        expr: Box::new(Expr::Literal(value)),
        to: t.clone(),
    }
}
