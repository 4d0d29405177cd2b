//! The query level: WITH (CTEs), UNION ALL, and ORDER BY ... LIMIT n,
//! which over a stream is a Top-N of the whole stream (as in Flink); ORDER
//! BY alone and LIMIT alone are refused (a stream has no last row to sort
//! or count to; the server peeks at a live query's first rows itself).

use arrow::datatypes::DataType;
use sqlparser::ast::{self, SetExpr};

use super::{first_words, pos, Planner};
use crate::error::{Position, Result, SqlError};
use crate::plan::{Node, Plan};

impl Planner<'_> {
    /// Plans a query.
    pub fn plan_query(&mut self, query: &ast::Query) -> Result<Plan> {
        if query.order_by.is_some() || query.limit_clause.is_some() {
            return self.plan_sorted_query(query);
        }
        // Calls of SQL functions are expanded before anything else.
        let expanded = crate::functions::expand_query(self.catalog, query)?;
        let query = expanded.as_ref().unwrap_or(query);
        // current_user() and is_member() answer for the reader, also
        // inside views and SQL functions (a column mask).
        let substituted = match &self.identity {
            Some((user, roles)) => crate::access::substitute_identity(query, user, roles)?,
            None => None,
        };
        let query = substituted.as_ref().unwrap_or(query);
        let saved = self.ctes.clone();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes
                    .insert(cte.alias.name.value.to_lowercase(), (*cte.query).clone());
            }
        }
        let plan = self.plan_set_expr(&query.body);
        self.ctes = saved;
        plan
    }

    /// A query with ORDER BY or LIMIT: `ORDER BY ... LIMIT n` is a Top-N
    /// of the whole stream without the row number (an updating result);
    /// anything else is refused.
    fn plan_sorted_query(&mut self, query: &ast::Query) -> Result<Plan> {
        let mut body = query.clone();
        let Some(clauses) = crate::finish::split_finish(&mut body) else {
            return self.plan_query(&body);
        };
        let plan = self.plan_query(&body)?;
        let width = super::data_width(&plan);
        let names: Vec<String> = plan.scope.columns[..width]
            .iter()
            .map(|c| c.name.clone())
            .collect();
        // Positions count output columns; names may be qualified (`b.x`).
        let finish = clauses.resolve_with(|e| match e {
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => {
                let c = super::resolve_column(e, &plan.scope)?;
                match c < width {
                    true => Ok(c),
                    false => Err(SqlError::plan(
                        format!("ORDER BY cannot use the changelog column {e}"),
                        pos(e),
                    )),
                }
            }
            _ => crate::finish::output_column(e, &names),
        })?;
        // `LIMIT ?` while the statement is only described: any N will do.
        let limit = match finish.limit {
            Some(0) if clauses.limit_is_parameter() => Some(1),
            other => other,
        };
        match limit {
            _ if finish.offset > 0 => Err(SqlError::plan(
                "OFFSET is not supported on streaming queries",
                clauses.position,
            )),
            Some(0) => Err(SqlError::plan("LIMIT 0 keeps no rows", clauses.position)),
            Some(n) if !finish.sort.is_empty() => {
                super::rank::top_n_query(plan, &finish.sort, n, clauses.position)
            }
            Some(_) => Err(SqlError::plan(
                "LIMIT without ORDER BY is not supported on streaming queries (ORDER BY ... \
                 LIMIT n keeps the top n rows, updating as they change)",
                clauses.position,
            )),
            None => match finish.sort.as_slice() {
                // ORDER BY the time attribute: rows in time order as the
                // watermark passes them (Flink's temporal sort).
                [k] if !k.descending && !plan.updating && plan.time_column == Some(k.column) => {
                    Ok(super::rank::time_sort(plan, k.column))
                }
                _ => Err(SqlError::plan(
                    "ORDER BY on a streaming query needs a LIMIT (ORDER BY ... LIMIT n keeps the \
                     top n rows, updating as they change) or must be the time attribute \
                     alone, ascending (rows in time order as the watermark passes them); a \
                     continuous query never has its last row to sort",
                    clauses.position,
                )),
            },
        }
    }

    fn plan_set_expr(&mut self, body: &SetExpr) -> Result<Plan> {
        match body {
            SetExpr::Select(select) => self.plan_select(select),
            SetExpr::Query(q) => self.plan_query(q),
            SetExpr::SetOperation {
                op: ast::SetOperator::Union,
                set_quantifier,
                left,
                right,
            } => {
                if !matches!(set_quantifier, ast::SetQuantifier::All) {
                    return Err(SqlError::plan(
                        "only UNION ALL is supported (UNION without ALL removes duplicates, which needs state)",
                        pos(body),
                    ));
                }
                let l = self.plan_set_expr(left)?;
                let r = self.plan_set_expr(right)?;
                union(vec![l, r], pos(body))
            }
            other => Err(SqlError::plan(
                format!("{} is not supported here", first_words(&other.to_string())),
                pos(other),
            )),
        }
    }
}

/// UNION ALL of `inputs`, which must have the same column types and be
/// all append-only or all updating.
fn union(inputs: Vec<Plan>, position: Position) -> Result<Plan> {
    let data = |p: &Plan| -> Vec<DataType> {
        let n = p.scope.columns.len() - usize::from(p.updating);
        p.scope.columns[..n]
            .iter()
            .map(|c| c.data_type.clone())
            .collect()
    };
    let first = &inputs[0];
    for other in &inputs[1..] {
        let (a, b) = (data(first), data(other));
        let (a, b): (Vec<&DataType>, Vec<&DataType>) = (a.iter().collect(), b.iter().collect());
        if a != b {
            let fmt = |v: &[&DataType]| {
                v.iter()
                    .map(|t| crate::binder::flink_type_name(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(SqlError::plan(
                format!(
                    "UNION ALL inputs have different column types: ({}) and ({})",
                    fmt(&a),
                    fmt(&b)
                ),
                position,
            ));
        }
    }
    // With one updating input the union updates: append-only inputs get
    // the changelog column, every row an insert.
    let updating = inputs.iter().any(|p| p.updating);
    let inputs: Vec<Plan> = if updating {
        inputs.into_iter().map(with_inserts).collect()
    } else {
        inputs
    };
    let first = &inputs[0];
    let time_column = first
        .time_column
        .filter(|t| inputs.iter().all(|p| p.time_column == Some(*t)));
    let window = first
        .window
        .filter(|w| inputs.iter().all(|p| p.window == Some(*w)));
    let mut scope = first.scope.clone();
    for c in &mut scope.columns {
        c.qualifier = None;
        c.nullable = inputs.iter().any(|p| {
            p.scope
                .columns
                .iter()
                .find(|x| x.name == c.name)
                .is_none_or(|x| x.nullable)
        });
    }
    Ok(Plan {
        window,
        node: Node::Union { inputs },
        scope,
        updating,
        time_column,
    })
}

/// `plan` as an updating stream: unchanged when it updates, else every row
/// an insert (`+I`) in an added changelog column.
fn with_inserts(plan: Plan) -> Plan {
    if plan.updating {
        return plan;
    }
    let mut exprs: Vec<(runnel_engine::expr::Expr, String)> = plan
        .scope
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (runnel_engine::expr::Expr::Column(i), c.name.clone()))
        .collect();
    exprs.push((
        runnel_engine::expr::Expr::Cast {
            expr: Box::new(runnel_engine::expr::Expr::Literal(
                runnel_engine::expr::ScalarValue::Int32(
                    runnel_engine::types::RowKind::Insert as i32,
                ),
            )),
            to: DataType::Int8,
        },
        runnel_engine::types::ROW_KIND_COLUMN.to_string(),
    ));
    let mut columns = plan.scope.columns.clone();
    columns.push(crate::binder::ScopeColumn {
        qualifier: None,
        name: runnel_engine::types::ROW_KIND_COLUMN.to_string(),
        data_type: DataType::Int8,
        nullable: false,
    });
    Plan {
        time_column: plan.time_column,
        window: plan.window,
        updating: true,
        scope: crate::binder::Scope::new(columns),
        node: Node::Project {
            input: Box::new(plan),
            exprs,
        },
    }
}
