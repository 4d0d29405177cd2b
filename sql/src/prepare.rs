//! Prepared statements on a [`Session`]: [`Session::prepare`] says what a
//! statement with `?` placeholders takes (one Arrow type per parameter, in
//! text order) and returns (its result's shape), and
//! [`Session::execute_with`] runs it with values bound into the plan as
//! typed literals. How a parameter gets its type is the binder's
//! `params` module's work; this file only picks the statements that may
//! hold parameters and checks that each has a value.

use arrow::datatypes::DataType;
use runnel_engine::expr::ScalarValue;

use crate::binder::{placeholder_positions, with_parameters, Parameters};
use crate::error::{Position, Result, SqlError};
use crate::parser::{Located, Statement};
use crate::session::{Outcome, QueryShape, SelectSink, Session};

/// What a prepared statement takes and gives.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The type of each `?` parameter, in the order they appear in the text.
    pub parameters: Vec<DataType>,
    /// The result's shape, for a query.
    pub shape: Option<QueryShape>,
}

impl Session {
    /// Describes `stmt` without running it: its parameters' types and,
    /// for a query, its result's shape.
    pub fn prepare(&self, stmt: &Located) -> Result<Prepared> {
        let positions = statement_placeholders(&stmt.statement);
        if positions.is_empty() {
            let shape = match &stmt.statement {
                Statement::Query(q) => Some(self.query_shape(q)?),
                _ => None,
            };
            return Ok(Prepared {
                parameters: Vec::new(),
                shape,
            });
        }
        check_takes_parameters(stmt)?;
        let params = Parameters::to_describe(positions);
        let (shape, params) = with_parameters(params, || self.describe_with(&stmt.statement));
        Ok(Prepared {
            parameters: params.types(),
            shape: shape?,
        })
    }

    /// Plans `statement` for its parameters' types (and a query's shape).
    fn describe_with(&self, statement: &Statement) -> Result<Option<QueryShape>> {
        match statement {
            Statement::Query(q) => self.query_shape(q).map(Some),
            Statement::Insert { table, query } => {
                self.require(
                    crate::access::Privilege::Insert,
                    &crate::access::Securable::Object(crate::catalog::key_of(table)),
                    crate::catalog::position_of(table),
                )?;
                self.plan_checked(query)?;
                Ok(None)
            }
            Statement::Explain(inner) => self.describe_with(inner).map(|_| None),
            _ => Ok(None),
        }
    }

    /// Executes `stmt` as [`Session::execute`] does, with `params` bound to
    /// its `?` placeholders in text order, one value each.
    pub fn execute_with(
        &mut self,
        stmt: &Located,
        text: &str,
        select_sink: &SelectSink,
        params: &[ScalarValue],
    ) -> Result<Outcome> {
        let positions = statement_placeholders(&stmt.statement);
        if positions.len() != params.len() {
            return Err(SqlError::plan(
                format!(
                    "the statement has {} parameter(s) but {} were bound",
                    positions.len(),
                    params.len()
                ),
                stmt.position,
            ));
        }
        if positions.is_empty() {
            return self.execute(stmt, text, select_sink);
        }
        check_takes_parameters(stmt)?;
        let params = Parameters::bound(positions, params.to_vec());
        with_parameters(params, || self.execute(stmt, text, select_sink)).0
    }
}

/// Where the `?` placeholders of `statement` stand, in text order.
pub fn statement_placeholders(statement: &Statement) -> Vec<Position> {
    match statement {
        Statement::Query(q)
        | Statement::Insert { query: q, .. }
        | Statement::CreateView { query: q, .. } => placeholder_positions(&**q),
        Statement::Explain(inner) => statement_placeholders(inner),
        _ => Vec::new(),
    }
}

/// Only statements that run once take parameters: a view keeps its
/// query, which would outlive the values.
fn check_takes_parameters(stmt: &Located) -> Result<()> {
    match &stmt.statement {
        Statement::Query(_) | Statement::Insert { .. } => Ok(()),
        Statement::Explain(inner) => check_takes_parameters(&Located {
            statement: (**inner).clone(),
            position: stmt.position,
        }),
        _ => Err(SqlError::plan(
            "query parameters (?) are only supported in queries and INSERT INTO",
            stmt.position,
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, Schema};
    use runnel_engine::connector::{ConnectorRegistry, TableDescriptor};

    use super::*;
    use crate::catalog::{TableEntry, TableKind};
    use crate::parser::parse_sql;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// Table `t (id BIGINT, name STRING, score DOUBLE)`.
    fn descriptor() -> TableDescriptor {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]));
        TableDescriptor {
            name: "t".into(),
            schema,
            options: Default::default(),
            watermark: None,
            primary_key: vec![],
            partition_keys: vec![],
        }
    }

    /// A session with table `t`.
    fn session() -> Result<Session> {
        let mut session = Session::new(ConnectorRegistry::new());
        let descriptor = descriptor();
        let name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new("t")]);
        session.catalog_mut().create_table_entry(
            &name,
            TableEntry {
                kind: TableKind::Table,
                descriptor,
                proctime: vec![],
            },
            false,
        )?;
        Ok(session)
    }

    fn prepared(sql: &str) -> Result<Prepared> {
        let stmts = parse_sql(sql)?;
        let stmt = stmts
            .first()
            .ok_or_else(|| SqlError::plan("no statement", Position::default()))?;
        session()?.prepare(stmt)
    }

    #[test]
    fn parameters_take_the_type_of_what_they_stand_beside() -> TestResult {
        let p = prepared("SELECT name FROM t WHERE id = ? AND name = ? AND score > ? + 1")?;
        assert_eq!(
            p.parameters,
            vec![DataType::Int64, DataType::Utf8, DataType::Int32]
        );
        let p = prepared("SELECT id FROM t WHERE ? < id AND name LIKE ? AND id IN (?, 2)")?;
        assert_eq!(
            p.parameters,
            vec![DataType::Int64, DataType::Utf8, DataType::Int64]
        );
        let p = prepared("SELECT id FROM t WHERE score BETWEEN ? AND ? AND CAST(? AS INT) = 1")?;
        assert_eq!(
            p.parameters,
            vec![DataType::Float64, DataType::Float64, DataType::Int32]
        );
        Ok(())
    }

    #[test]
    fn parameters_are_numbered_in_text_order_and_default_to_strings() -> TestResult {
        // WHERE is planned before the select list; the numbers follow the text.
        let p = prepared("SELECT ? AS s, id + ? AS n FROM t WHERE score = ? LIMIT ?")?;
        assert_eq!(
            p.parameters,
            vec![
                DataType::Utf8,
                DataType::Int64,
                DataType::Float64,
                DataType::Int64
            ]
        );
        let shape = p.shape.ok_or("a query has a shape")?;
        let fields: Vec<_> = shape
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("s".to_string(), DataType::Utf8),
                ("n".to_string(), DataType::Int64)
            ]
        );
        Ok(())
    }

    #[test]
    fn statements_without_parameters_prepare_as_before() -> TestResult {
        let p = prepared("SELECT name, id FROM t WHERE name = '?'")?;
        assert!(p.parameters.is_empty());
        assert_eq!(p.shape.ok_or("shape")?.schema.fields().len(), 2);
        let p = prepared("SHOW TABLES")?;
        assert!(p.parameters.is_empty() && p.shape.is_none());
        Ok(())
    }

    #[test]
    fn views_and_counts_that_do_not_match_are_refused() -> TestResult {
        let err = prepared("CREATE VIEW v AS SELECT id FROM t WHERE id = ?")
            .expect_err("a view keeps no values");
        assert!(
            err.to_string().contains("only supported in queries"),
            "{err}"
        );
        let mut s = session()?;
        let stmts = parse_sql("SELECT id FROM t WHERE id = ? AND name = ?")?;
        let sink = |_: &crate::plan::Plan| crate::lower::SinkTarget::Table(descriptor());
        let err = s
            .execute_with(&stmts[0], "", &sink, &[ScalarValue::Int64(1)])
            .err()
            .ok_or("one value for two parameters")?;
        assert!(
            err.to_string()
                .ends_with("the statement has 2 parameter(s) but 1 were bound"),
            "{err}"
        );
        Ok(())
    }
}
