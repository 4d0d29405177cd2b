//! Expectations in the session: checked and kept when a table or view is
//! created or altered, applied to the rows an INSERT writes, and the
//! quarantine branches a writing job adds (the rows that violated a
//! `QUARANTINE` expectation, with the names of those they violated and
//! the time, into the quarantine table). The operator is
//! `runnel_engine::ops::ExpectOperator`; where views apply theirs is
//! `crate::planner::expect`.

use arrow::datatypes::{DataType, TimeUnit};
use runnel_engine::connector::TableDescriptor;
use runnel_engine::ops::Violation;
use sqlparser::ast;
use sqlparser::parser::Parser;

use super::Session;
use crate::access::{Privilege, Securable};
use crate::binder::{bind_expr, Scope, ScopeColumn};
use crate::catalog::{Entry, TableKind};
use crate::error::{Position, Result, SqlError};
use crate::lower::pruned_descriptor;
use crate::parser::{ExpectDecl, FlinkDialect};
use crate::plan::{Node, Plan};
use crate::planner::expect::{bind_check, Quarantine};
use crate::planner::sink::align_to_sink;

/// One row of `system.expectations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectationCount {
    /// The table or view.
    pub object: String,
    /// The expectation.
    pub name: String,
    /// `ON VIOLATION` (empty: keep and count).
    pub on_violation: &'static str,
    /// Rows that passed, since the server started.
    pub passed: u64,
    /// Rows that violated it.
    pub failed: u64,
}

impl Session {
    /// Checks `decls` against the columns of `scope` (boolean, unique
    /// names) and keeps them as the expectations of `object`.
    pub(super) fn set_expectations(
        &mut self,
        object: &str,
        scope: &Scope,
        decls: &[ExpectDecl],
    ) -> Result<()> {
        for (i, d) in decls.iter().enumerate() {
            if decls[..i].iter().any(|e| e.name == d.name) {
                return Err(SqlError::plan(
                    format!("expectation '{}' is declared twice", d.name),
                    d.position,
                ));
            }
            bind_check(d, scope, object)?;
        }
        if !decls.is_empty() {
            self.catalog.grants_mut().meta_mut(object).expectations = decls.to_vec();
        }
        Ok(())
    }

    /// The scope of a table's columns, for checking expectations.
    pub(super) fn table_scope(descriptor: &TableDescriptor) -> Scope {
        Scope::new(
            descriptor
                .schema
                .fields()
                .iter()
                .map(|f| ScopeColumn {
                    qualifier: None,
                    name: f.name().clone(),
                    data_type: f.data_type().clone(),
                    nullable: f.is_nullable(),
                })
                .collect(),
        )
    }

    /// Runs `plan_it` as the planning of a job that writes: expectations
    /// it meets count their rows, and the quarantine branches they need
    /// come back with its result.
    pub(super) fn planning_writes<T>(
        &self,
        plan_it: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Vec<Quarantine>)> {
        self.expect.begin_job(self.upcoming_job_id());
        let planned = plan_it();
        let quarantines = self.expect.end_job();
        Ok((planned?, quarantines))
    }

    /// The plans that write quarantined rows, each with its table.
    pub(super) fn quarantine_plans(
        &self,
        quarantines: Vec<Quarantine>,
    ) -> Result<Vec<(Plan, TableDescriptor, Position)>> {
        quarantines
            .into_iter()
            .map(|q| self.quarantine_plan(q))
            .collect()
    }

    fn quarantine_plan(&self, q: Quarantine) -> Result<(Plan, TableDescriptor, Position)> {
        let at = q.checks.first().map(|d| d.position).unwrap_or_default();
        let wanted = "its columns followed by `expectations STRING, quarantined_at TIMESTAMP(3)`";
        let table = match self.catalog.get_by_key(&q.table) {
            Some(Entry::Table(t)) if t.kind == TableKind::Table => t.clone(),
            _ => {
                return Err(SqlError::plan(
                    format!(
                        "'{}' quarantines rows into the table '{}', which does not exist; create it with {wanted}",
                        q.object, q.table
                    ),
                    at,
                ))
            }
        };
        // The expectations are the object's owner's policy: the owner
        // writes the quarantine table.
        if let Some(owner) = self.catalog.grants().owner(&q.object) {
            let who = self.principal_of(owner);
            let on = Securable::Object(q.table.clone());
            if !self.catalog.grants().allows(&who, Privilege::Insert, &on) {
                return Err(SqlError::denied(
                    format!(
                        "'{}' quarantines rows into '{}', where its owner '{owner}' may not INSERT",
                        q.object, q.table
                    ),
                    at,
                ));
            }
        }
        let ok = |d: &ExpectDecl| format!("COALESCE(({}), FALSE)", d.predicate);
        let all_ok: Vec<String> = q.checks.iter().map(ok).collect();
        let violated = parse(&format!("NOT ({})", all_ok.join(" AND ")), at)?;
        let names: Vec<String> = q
            .checks
            .iter()
            .map(|d| {
                format!(
                    "CASE WHEN {} THEN '' ELSE ',{}' END",
                    ok(d),
                    d.name.replace('\'', "''")
                )
            })
            .collect();
        let names = parse(
            &format!("SUBSTRING(CONCAT({}, ''), 2)", names.join(", ")),
            at,
        )?;
        let input = q.input;
        let scope = input.scope.clone();
        let predicate = bind_expr(&violated, &scope)?.expr;
        let names = bind_expr(&names, &scope)?;
        let mut exprs: Vec<(runnel_engine::expr::Expr, String)> = scope
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (runnel_engine::expr::col(i), c.name.clone()))
            .collect();
        exprs.push((names.expr, "expectations".into()));
        let mut projected = scope.clone();
        projected.columns.push(ScopeColumn {
            qualifier: None,
            name: "expectations".into(),
            data_type: DataType::Utf8,
            nullable: true,
        });
        let mut stamped = projected.clone();
        stamped.columns.push(ScopeColumn {
            qualifier: None,
            name: "quarantined_at".into(),
            data_type: DataType::Timestamp(TimeUnit::Millisecond, None),
            nullable: false,
        });
        let filtered = Plan {
            time_column: input.time_column,
            window: input.window,
            scope,
            updating: false,
            node: Node::Filter {
                input: Box::new(input),
                predicate,
            },
        };
        let project = Plan {
            time_column: filtered.time_column,
            window: filtered.window,
            scope: projected,
            updating: false,
            node: Node::Project {
                input: Box::new(filtered),
                exprs,
            },
        };
        let plan = Plan {
            time_column: None,
            window: None,
            scope: stamped,
            updating: false,
            node: Node::ProcTime {
                input: Box::new(project),
            },
        };
        let all: Vec<usize> = (0..table.descriptor.schema.fields().len()).collect();
        let descriptor = pruned_descriptor(&table.descriptor, &all);
        let mut plan = align_to_sink(plan, &descriptor, at).map_err(|e| {
            SqlError::plan(
                format!(
                    "the quarantine table '{}' of '{}' must have {wanted}: {e}",
                    q.table, q.object
                ),
                at,
            )
        })?;
        plan.prune_all();
        Ok((plan, descriptor, at))
    }

    /// Rows that passed and violated each expectation, since the server
    /// started (rows replayed after a restore count again).
    pub fn expectation_counts(&self) -> Vec<ExpectationCount> {
        let mut out = Vec::new();
        for (object, meta) in self.catalog.grants().all_meta() {
            for d in &meta.expectations {
                // Summed over the jobs that checked it.
                let (passed, failed) = self
                    .expect
                    .counts
                    .borrow()
                    .iter()
                    .filter(|((_, o, n), _)| o == object && *n == d.name)
                    .fold((0, 0), |(p, f), (_, c)| {
                        (
                            p + c.passed.load(std::sync::atomic::Ordering::Relaxed),
                            f + c.failed.load(std::sync::atomic::Ordering::Relaxed),
                        )
                    });
                out.push(ExpectationCount {
                    object: object.to_string(),
                    name: d.name.clone(),
                    on_violation: if d.mode == Violation::Warn {
                        ""
                    } else {
                        d.mode.sql()
                    },
                    passed,
                    failed,
                });
            }
        }
        out
    }
}

impl Session {
    /// The expectations job `job` checks, with what it counted: (object,
    /// expectation, passed, failed).
    pub fn job_expectation_counts(&self, job: &str) -> Vec<(String, String, u64, u64)> {
        self.job_expectation_counters(job)
            .into_iter()
            .map(|(o, n, c)| {
                (
                    o,
                    n,
                    c.passed.load(std::sync::atomic::Ordering::Relaxed),
                    c.failed.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// The live counters of the expectations job `job` checks: (object,
    /// expectation, counters), for readers on other threads.
    pub fn job_expectation_counters(
        &self,
        job: &str,
    ) -> Vec<(
        String,
        String,
        std::sync::Arc<runnel_engine::ops::ExpectCounts>,
    )> {
        self.expect
            .counts
            .borrow()
            .iter()
            .filter(|((j, _, _), _)| j == job)
            .map(|((_, o, n), c)| (o.clone(), n.clone(), std::sync::Arc::clone(c)))
            .collect()
    }
}

fn parse(sql: &str, at: Position) -> Result<ast::Expr> {
    Parser::new(&FlinkDialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::plan(format!("cannot build the quarantine condition: {e}"), at))
}
