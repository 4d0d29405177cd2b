//! Where expectations enter a plan: an `Expect` node over the rows written
//! to a table (by the session, at INSERT) or read through a view (by the
//! planner, where the view is expanded). While a writing job is planned,
//! the first `Expect` of each table or view counts its rows (the counters
//! live in [`ExpectState`] and feed `system.expectations`) and, when it
//! has `QUARANTINE` expectations, asks for a quarantine branch; other
//! copies of it in the same job (a view read twice) only filter. Queries
//! that write nothing filter and fail as the expectations say, but count
//! and quarantine nothing.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::DataType;
use runnel_engine::ops::{ExpectCheck, ExpectCounts, ExpectSpec, Violation};
use runnel_engine::types::ROW_KIND_COLUMN;

use crate::binder::{bind_expr, Scope};
use crate::catalog::Catalog;
use crate::error::{Position, Result, SqlError};
use crate::parser::ExpectDecl;
use crate::plan::{Node, Plan};

/// Rows of a table or view that violated its `QUARANTINE` expectations
/// go to a quarantine table: the session plans that branch from this.
#[derive(Clone)]
pub struct Quarantine {
    /// The table or view.
    pub object: String,
    /// The rows before the expectations.
    pub input: Plan,
    /// The quarantine table (catalog key).
    pub table: String,
    /// The `QUARANTINE` expectations.
    pub checks: Vec<ExpectDecl>,
}

/// The session's expectation bookkeeping.
#[derive(Default)]
pub struct ExpectState {
    /// `Some` while a writing job is planned: the objects whose
    /// expectations it already counts.
    pub claims: RefCell<Option<BTreeSet<String>>>,
    /// Quarantine branches the job being planned needs.
    pub quarantines: RefCell<Vec<Quarantine>>,
    /// The id of the job being planned.
    pub job: RefCell<String>,
    /// Counters by (job, object, expectation).
    pub counts: RefCell<BTreeMap<(String, String, String), Arc<ExpectCounts>>>,
}

impl ExpectState {
    /// Starts planning job `job`, which writes.
    pub fn begin_job(&self, job: String) {
        *self.claims.borrow_mut() = Some(BTreeSet::new());
        self.quarantines.borrow_mut().clear();
        *self.job.borrow_mut() = job;
    }

    /// Ends it; the quarantine branches it asked for.
    pub fn end_job(&self) -> Vec<Quarantine> {
        *self.claims.borrow_mut() = None;
        std::mem::take(&mut *self.quarantines.borrow_mut())
    }
}

/// The default quarantine table of `object`.
pub fn quarantine_table(object: &str, decl: &ExpectDecl) -> String {
    decl.into
        .clone()
        .unwrap_or_else(|| format!("{}_quarantine", object.replace('.', "_")))
}

/// `plan` with the expectations of `object` (a table written or a view
/// read) applied; `plan` unchanged when it has none.
pub fn apply_expectations(
    catalog: &Catalog,
    state: &ExpectState,
    plan: Plan,
    object: &str,
    at: Position,
) -> Result<Plan> {
    let Some(decls) = catalog
        .grants()
        .meta(object)
        .map(|m| m.expectations.clone())
        .filter(|e| !e.is_empty())
    else {
        return Ok(plan);
    };
    let scope = data_scope(&plan.scope);
    let mut checks = Vec::with_capacity(decls.len());
    for d in &decls {
        checks.push(ExpectCheck {
            name: d.name.clone(),
            predicate: bind_check(d, &scope, object)?,
            mode: d.mode,
        });
    }
    let claimed = state
        .claims
        .borrow_mut()
        .as_mut()
        .is_some_and(|c| c.insert(object.to_string()));
    let counts = claimed.then(|| {
        let mut registry = state.counts.borrow_mut();
        let job = state.job.borrow().clone();
        decls
            .iter()
            .map(|d| {
                Arc::clone(
                    registry
                        .entry((job.clone(), object.to_string(), d.name.clone()))
                        .or_default(),
                )
            })
            .collect()
    });
    let quarantined: Vec<ExpectDecl> = decls
        .iter()
        .filter(|d| d.mode == Violation::Quarantine)
        .cloned()
        .collect();
    if claimed && !quarantined.is_empty() {
        if plan.updating {
            return Err(SqlError::plan(
                format!("'{object}' has QUARANTINE expectations, which need an append-only stream; this one has updates (use DROP ROW or FAIL UPDATE)"),
                at,
            ));
        }
        // One branch per quarantine table, with the expectations that
        // send rows there.
        let mut by_table: BTreeMap<String, Vec<ExpectDecl>> = BTreeMap::new();
        for d in quarantined {
            by_table
                .entry(quarantine_table(object, &d))
                .or_default()
                .push(d);
        }
        for (table, checks) in by_table {
            state.quarantines.borrow_mut().push(Quarantine {
                object: object.to_string(),
                input: plan.clone(),
                table,
                checks,
            });
        }
    }
    let columns = plan.scope.columns.iter().map(|c| c.name.clone()).collect();
    Ok(Plan {
        time_column: plan.time_column,
        window: plan.window,
        scope: plan.scope.clone(),
        updating: plan.updating,
        node: Node::Expect {
            input: Box::new(plan),
            spec: ExpectSpec {
                object: object.to_string(),
                checks,
                counts,
                columns,
            },
        },
    })
}

/// The columns an expectation sees (not the changelog column).
fn data_scope(scope: &Scope) -> Scope {
    let mut s = scope.clone();
    for c in &mut s.columns {
        if c.name == ROW_KIND_COLUMN {
            // Still at its index, but not nameable.
            c.name = format!("${ROW_KIND_COLUMN}");
        }
    }
    s
}

/// Binds an expectation over `scope`; it must be boolean.
pub fn bind_check(
    d: &ExpectDecl,
    scope: &Scope,
    object: &str,
) -> Result<runnel_engine::expr::Expr> {
    let bound = bind_expr(&d.predicate, scope).map_err(|e| {
        SqlError::plan(
            format!("expectation '{}' of '{object}': {e}", d.name),
            d.position,
        )
    })?;
    if !matches!(bound.data_type, DataType::Boolean | DataType::Null) {
        return Err(SqlError::plan(
            format!(
                "expectation '{}' must be a boolean condition, but ({}) is {}",
                d.name,
                d.predicate,
                crate::binder::flink_type_name(&bound.data_type)
            ),
            d.position,
        ));
    }
    Ok(bound.expr)
}
