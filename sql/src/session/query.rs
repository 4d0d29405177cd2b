//! Query statements' ORDER BY and LIMIT: applied to the complete result
//! of a bounded query ([`crate::finish`]), or kept in the plan of an
//! unbounded one (a Top-N, a sort by time).

use arrow::datatypes::SchemaRef;

use super::{output_schema, QueryShape, Session};
use crate::error::{Result, SqlError};
use crate::finish::{split_finish, Finish, FinishClauses};
use crate::plan::Plan;

impl Session {
    /// The output of a query statement, planned but not started (and not
    /// recorded as a job): what a prepared statement reports.
    pub fn query_shape(&self, query: &sqlparser::ast::Query) -> Result<QueryShape> {
        let (plan, clauses) = self.plan_query_statement(query)?;
        let bounded = self.is_bounded(&plan);
        let schema = output_schema(&plan);
        self.check_finish(clauses.as_ref(), &schema, bounded)?;
        Ok(QueryShape {
            schema,
            updating: plan.updating,
            bounded,
        })
    }

    /// Plans a query statement. Its ORDER BY and LIMIT come back to be
    /// applied to the complete result of a bounded query; over an
    /// unbounded one, ORDER BY ... LIMIT n stays in the plan as a Top-N and
    /// ORDER BY the time attribute as a sort by time.
    pub(super) fn plan_query_statement(
        &self,
        query: &sqlparser::ast::Query,
    ) -> Result<(Plan, Option<FinishClauses>)> {
        let mut stripped = query.clone();
        let clauses = split_finish(&mut stripped);
        let mut plan = self.plan_checked(&stripped)?;
        if clauses
            .as_ref()
            .is_some_and(FinishClauses::is_streaming_order)
            && !self.is_bounded(&plan)
        {
            plan = self.plan_checked(query)?;
            plan.prune_all();
            return Ok((plan, None));
        }
        plan.prune_all();
        Ok((plan, clauses))
    }

    pub(super) fn check_finish(
        &self,
        clauses: Option<&FinishClauses>,
        schema: &SchemaRef,
        bounded: bool,
    ) -> Result<Option<Finish>> {
        let Some(clauses) = clauses else {
            return Ok(None);
        };
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let finish = clauses.resolve(&names)?;
        // LIMIT alone over an unbounded query peeks at a live table: the
        // first rows that arrive, then the query ends.
        if !bounded && (!finish.sort.is_empty() || finish.limit.is_none()) {
            return Err(SqlError::plan(
                "ORDER BY needs a bounded query (over files, materialized views or system tables); a continuous query never has its last row (LIMIT alone takes the first rows that arrive; ORDER BY ... LIMIT n keeps the top n, updating)",
                clauses.position,
            ));
        }
        Ok(Some(finish))
    }
}
