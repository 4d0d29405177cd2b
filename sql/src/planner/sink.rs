//! The INSERT target: a query's columns matched to a sink table's, with
//! casts where the types differ but convert. Public because the session
//! applies it to a planned query before lowering.

use arrow::datatypes::DataType;
use runnel_engine::connector::TableDescriptor;
use runnel_engine::expr::Expr;
use runnel_engine::types::ROW_KIND_COLUMN;

use super::col;
use crate::binder::{Scope, ScopeColumn};
use crate::error::{Position, Result, SqlError};
use crate::plan::{Node, Plan};

/// Casts the query's columns to the sink's types where they differ but
/// convert (INT into BIGINT, ...); an error names the column otherwise.
pub fn align_to_sink(plan: Plan, sink: &TableDescriptor, position: Position) -> Result<Plan> {
    let sink_fields = sink.schema.fields();
    let data_cols: Vec<&ScopeColumn> = plan
        .scope
        .columns
        .iter()
        .filter(|c| c.name != ROW_KIND_COLUMN)
        .collect();
    if data_cols.len() != sink_fields.len() {
        return Err(SqlError::plan(
            format!(
                "the query produces {} columns but sink '{}' has {} ({})",
                data_cols.len(),
                sink.name,
                sink_fields.len(),
                sink_fields
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            position,
        ));
    }
    let needs_cast = data_cols
        .iter()
        .zip(sink_fields.iter())
        .any(|(c, f)| &c.data_type != f.data_type());
    if !needs_cast {
        return Ok(plan);
    }
    let mut exprs = Vec::new();
    let mut cols = Vec::new();
    for (i, (c, f)) in data_cols.iter().zip(sink_fields.iter()).enumerate() {
        let castable = arrow::compute::can_cast_types(&c.data_type, f.data_type())
            && !(matches!(c.data_type, DataType::Utf8) && f.data_type().is_numeric());
        if !castable {
            return Err(SqlError::plan(
                format!(
                    "column {} of the query is {} but sink column '{}' is {}",
                    i + 1,
                    crate::binder::flink_type_name(&c.data_type),
                    f.name(),
                    crate::binder::flink_type_name(f.data_type())
                ),
                position,
            ));
        }
        let e = if &c.data_type == f.data_type() {
            Expr::Column(i)
        } else {
            Expr::Cast {
                expr: Box::new(Expr::Column(i)),
                to: f.data_type().clone(),
            }
        };
        exprs.push((e, f.name().clone()));
        cols.push(col(f.name(), None, f.data_type().clone(), true));
    }
    if plan.updating {
        let rk = plan.scope.columns.len() - 1;
        exprs.push((Expr::Column(rk), ROW_KIND_COLUMN.to_string()));
        cols.push(col(ROW_KIND_COLUMN, None, DataType::Int8, false));
    }
    Ok(Plan {
        updating: plan.updating,
        time_column: None,
        window: None,
        scope: Scope::new(cols),
        node: Node::Project {
            input: Box::new(plan),
            exprs,
        },
    })
}
