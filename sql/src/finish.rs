//! ORDER BY and LIMIT of bounded queries.
//!
//! A streaming query has no last row, so the planner refuses ORDER BY and
//! LIMIT. A query over bounded tables (files, materialized views, system
//! tables) ends, and its caller (the Flight SQL server) can sort and cut
//! the complete result. [`split_finish`] takes the two clauses off a query
//! before it is planned; [`Finish::resolve`] checks them against the output
//! columns once the plan is known; [`Finish::apply`] runs them on the
//! collected result.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, lexsort_to_indices, take, SortColumn, SortOptions};
use arrow::datatypes::SchemaRef;
use sqlparser::ast::{self, Spanned};

use crate::error::{Position, Result, SqlError};

/// One ORDER BY key, resolved to an output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Index of the output column.
    pub column: usize,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS FIRST`; SQL's default is nulls last for ASC, first for DESC.
    pub nulls_first: bool,
}

/// What happens to the complete result of a bounded query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finish {
    /// Sort keys, most significant first.
    pub sort: Vec<SortKey>,
    /// `LIMIT n`.
    pub limit: Option<usize>,
    /// `OFFSET m`.
    pub offset: usize,
}

/// The ORDER BY and LIMIT clauses of a query, not yet resolved.
#[derive(Debug, Clone)]
pub struct FinishClauses {
    order_by: Option<ast::OrderBy>,
    limit: Option<ast::LimitClause>,
    /// Where the first of the clauses starts, for errors.
    pub position: Position,
}

/// Removes ORDER BY and LIMIT from `query`, returning them (`None` when the
/// query has neither).
pub fn split_finish(query: &mut ast::Query) -> Option<FinishClauses> {
    if query.order_by.is_none() && query.limit_clause.is_none() {
        return None;
    }
    let position = query
        .order_by
        .as_ref()
        .map(|o| Position::of(o.span()))
        .or_else(|| query.limit_clause.as_ref().map(|l| Position::of(l.span())))
        .unwrap_or_default();
    Some(FinishClauses {
        order_by: query.order_by.take(),
        limit: query.limit_clause.take(),
        position,
    })
}

impl FinishClauses {
    /// ORDER BY, with `LIMIT n` or without LIMIT, and no OFFSET: over an
    /// unbounded query the planner makes it a Top-N, or a sort by the
    /// time attribute (or says why not).
    pub fn is_streaming_order(&self) -> bool {
        self.order_by.is_some()
            && matches!(
                &self.limit,
                None | Some(ast::LimitClause::LimitOffset {
                    limit: Some(_),
                    offset: None,
                    ..
                })
            )
    }

    /// True when LIMIT is a `?` parameter (0 while a statement is only
    /// being described).
    pub fn limit_is_parameter(&self) -> bool {
        matches!(
            &self.limit,
            Some(ast::LimitClause::LimitOffset { limit: Some(ast::Expr::Value(v)), .. })
                if matches!(v.value, ast::Value::Placeholder(_))
        )
    }

    /// Resolves the clauses against the output column names.
    pub fn resolve(&self, columns: &[String]) -> Result<Finish> {
        self.resolve_with(|e| output_column(e, columns))
    }

    /// Resolves the clauses, each ORDER BY expression to an output column
    /// by `column`.
    pub fn resolve_with(&self, column: impl Fn(&ast::Expr) -> Result<usize>) -> Result<Finish> {
        let mut finish = Finish::default();
        if let Some(order_by) = &self.order_by {
            let ast::OrderByKind::Expressions(exprs) = &order_by.kind else {
                return Err(SqlError::plan(
                    "ORDER BY ALL is not supported; name the columns",
                    self.position,
                ));
            };
            for e in exprs {
                let column = column(&e.expr)?;
                let descending = match &e.options.sort {
                    None | Some(ast::OrderBySort::Asc) => false,
                    Some(ast::OrderBySort::Desc) => true,
                    Some(ast::OrderBySort::Using(_)) => {
                        return Err(SqlError::plan(
                            "ORDER BY ... USING is not supported; use ASC or DESC",
                            Position::of(e.expr.span()),
                        ))
                    }
                };
                finish.sort.push(SortKey {
                    column,
                    descending,
                    nulls_first: e.options.nulls_first.unwrap_or(descending),
                });
            }
        }
        match &self.limit {
            None => {}
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if let Some(e) = limit_by.first() {
                    return Err(SqlError::plan(
                        "LIMIT BY is not supported",
                        Position::of(e.span()),
                    ));
                }
                if let Some(l) = limit {
                    finish.limit = Some(count(l, "LIMIT")?);
                }
                if let Some(o) = offset {
                    finish.offset = count(&o.value, "OFFSET")?;
                }
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
                finish.offset = count(offset, "OFFSET")?;
                finish.limit = Some(count(limit, "LIMIT")?);
            }
        }
        Ok(finish)
    }
}

/// An ORDER BY expression as an output column: a name (qualified or not)
/// or a 1-based position.
pub(crate) fn output_column(expr: &ast::Expr, columns: &[String]) -> Result<usize> {
    let position = Position::of(expr.span());
    let by_name = |name: &str| {
        columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                SqlError::plan(
                    format!(
                        "ORDER BY column '{name}' is not an output column; output columns: {}",
                        columns.join(", ")
                    ),
                    position,
                )
            })
    };
    match expr {
        ast::Expr::Identifier(i) => by_name(&i.value),
        ast::Expr::CompoundIdentifier(parts) => {
            by_name(parts.last().map(|i| i.value.as_str()).unwrap_or_default())
        }
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => match n.parse::<usize>() {
                Ok(k) if (1..=columns.len()).contains(&k) => Ok(k - 1),
                _ => Err(SqlError::plan(
                    format!(
                        "ORDER BY position {n} is out of range: the query has {} columns",
                        columns.len()
                    ),
                    position,
                )),
            },
            _ => Err(SqlError::plan(
                "ORDER BY needs an output column name or position",
                position,
            )),
        },
        _ => Err(SqlError::plan(
            format!("ORDER BY supports output column names and positions, not the expression {expr}; select it with an alias and order by the alias"),
            position,
        )),
    }
}

fn count(expr: &ast::Expr, clause: &str) -> Result<usize> {
    if let ast::Expr::Value(v) = expr {
        if let ast::Value::Placeholder(_) = &v.value {
            return crate::binder::count_parameter(Position::of(v.span), clause);
        }
        if let ast::Value::Number(n, _) = &v.value {
            if let Ok(k) = n.parse::<usize>() {
                return Ok(k);
            }
        }
    }
    Err(SqlError::plan(
        format!("{clause} needs a whole number, not {expr}"),
        Position::of(expr.span()),
    ))
}

impl Finish {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.sort.is_empty() && self.limit.is_none() && self.offset == 0
    }

    /// Sorts and cuts the complete result.
    pub fn apply(&self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
        let all = concat_batches(schema, batches).map_err(engine)?;
        let all = if self.sort.is_empty() {
            all
        } else {
            let keys: Vec<SortColumn> = self
                .sort
                .iter()
                .map(|k| SortColumn {
                    values: Arc::clone(all.column(k.column)),
                    options: Some(SortOptions {
                        descending: k.descending,
                        nulls_first: k.nulls_first,
                    }),
                })
                .collect();
            let indices = lexsort_to_indices(&keys, None).map_err(engine)?;
            let columns = all
                .columns()
                .iter()
                .map(|c| take(c, &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(engine)?;
            RecordBatch::try_new(Arc::clone(schema), columns).map_err(engine)?
        };
        let start = self.offset.min(all.num_rows());
        let len = self.limit.unwrap_or(usize::MAX).min(all.num_rows() - start);
        Ok(all.slice(start, len))
    }
}

fn engine(e: arrow::error::ArrowError) -> SqlError {
    SqlError::Engine(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn clauses(sql: &str) -> FinishClauses {
        let stmts = crate::parser::parse_sql(sql).expect("parses");
        let crate::parser::Statement::Query(mut q) = stmts[0].statement.clone() else {
            panic!("not a query")
        };
        split_finish(&mut q).expect("has clauses")
    }

    fn batch() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some("a"),
                    None,
                    Some("c"),
                ])),
                Arc::new(Int64Array::from(vec![Some(2), Some(2), Some(9), None])),
            ],
        )
        .expect("batch");
        (schema, b)
    }

    fn names(b: &RecordBatch) -> Vec<Option<String>> {
        let a = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("strings");
        a.iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn sorts_by_name_and_position_with_sql_null_order() -> Result<()> {
        let (schema, b) = batch();
        let cols = vec!["name".to_string(), "n".to_string()];
        // n DESC puts the null first; ties on n broken by name ascending.
        let f = clauses("SELECT * FROM t ORDER BY n DESC, 1").resolve(&cols)?;
        let out = f.apply(&schema, std::slice::from_ref(&b))?;
        assert_eq!(
            names(&out),
            vec![Some("c".into()), None, Some("a".into()), Some("b".into())]
        );
        // Ascending puts nulls last.
        let f = clauses("SELECT * FROM t ORDER BY name").resolve(&cols)?;
        let out = f.apply(&schema, &[b])?;
        assert_eq!(names(&out)[3], None);
        Ok(())
    }

    #[test]
    fn limit_and_offset_cut_after_sorting() -> Result<()> {
        let (schema, b) = batch();
        let cols = vec!["name".to_string(), "n".to_string()];
        let f = clauses("SELECT * FROM t ORDER BY name LIMIT 2 OFFSET 1").resolve(&cols)?;
        assert_eq!(f.limit, Some(2));
        assert_eq!(f.offset, 1);
        let out = f.apply(&schema, std::slice::from_ref(&b))?;
        assert_eq!(names(&out), vec![Some("b".into()), Some("c".into())]);
        // An offset past the end gives no rows rather than an error.
        let f = clauses("SELECT * FROM t LIMIT 5 OFFSET 10").resolve(&cols)?;
        assert_eq!(f.apply(&schema, &[b])?.num_rows(), 0);
        Ok(())
    }

    #[test]
    fn unknown_columns_and_expressions_are_errors_with_positions() {
        let cols = vec!["name".to_string()];
        let err = clauses("SELECT name FROM t\nORDER BY nope")
            .resolve(&cols)
            .expect_err("unknown column");
        assert_eq!(err.position(), Some(Position::new(2, 10)));
        assert!(err.to_string().contains("'nope'"), "{err}");
        let err = clauses("SELECT name FROM t ORDER BY 3")
            .resolve(&cols)
            .expect_err("out of range");
        assert!(err.to_string().contains("out of range"), "{err}");
        let err = clauses("SELECT name FROM t ORDER BY name || 'x'")
            .resolve(&cols)
            .expect_err("expression");
        assert!(err.to_string().contains("alias"), "{err}");
    }
}
