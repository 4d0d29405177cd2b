//! FROM: a table, a view or CTE (planned in place, with a guard against
//! one that refers to itself), a subquery, or a window table function,
//! followed by its joins.

use sqlparser::ast;

use super::{first_words, pos, requalify, table_scope, Planner};
use crate::binder::Scope;
use crate::catalog::{key_of, position_of, Entry};
use crate::error::{Result, SqlError};
use crate::plan::{Node, Plan};
use runnel_engine::types::ROW_KIND_COLUMN;

impl Planner<'_> {
    pub(super) fn plan_from(&mut self, from: &ast::TableWithJoins) -> Result<Plan> {
        let mut plan = self.plan_table_factor(&from.relation)?;
        for join in &from.joins {
            plan = self.plan_join(plan, join)?;
        }
        Ok(plan)
    }

    pub(super) fn plan_table_factor(&mut self, factor: &ast::TableFactor) -> Result<Plan> {
        match factor {
            ast::TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    return Err(SqlError::plan(
                        "table arguments are not supported",
                        position_of(name),
                    ));
                }
                let qualifier = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or_else(|| key_of(name));
                self.plan_named(name, &qualifier)
            }
            ast::TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut plan = self.plan_query(subquery)?;
                if let Some(a) = alias {
                    requalify(&mut plan.scope, &a.name.value);
                }
                Ok(plan)
            }
            ast::TableFactor::TableFunction { expr, alias } => {
                let mut plan = self.plan_window_tvf(expr)?;
                if let Some(a) = alias {
                    requalify(&mut plan.scope, &a.name.value);
                }
                Ok(plan)
            }
            other => Err(SqlError::plan(
                format!(
                    "{} is not supported in FROM",
                    first_words(&other.to_string())
                ),
                pos(other),
            )),
        }
    }

    pub(super) fn plan_named(&mut self, name: &ast::ObjectName, qualifier: &str) -> Result<Plan> {
        let key = key_of(name);
        if let Some(q) = self.ctes.get(&key).cloned() {
            if self.expanding.contains(&key) {
                return Err(SqlError::plan(
                    format!("'{name}' refers to itself"),
                    position_of(name),
                ));
            }
            self.expanding.push(key);
            let mut plan = self.plan_query(&q);
            self.expanding.pop();
            if let Ok(p) = plan.as_mut() {
                requalify(&mut p.scope, qualifier);
            }
            return plan;
        }
        match self.catalog.get(name) {
            Some(Entry::Table(t)) => {
                self.record_read(name);
                let mut scope = table_scope(t, qualifier);
                // A table of changes (Debezium JSON) is an updating stream.
                let updating = is_changelog_table(t);
                if updating {
                    if !t.proctime.is_empty() {
                        return Err(SqlError::plan(
                            format!(
                                "table '{name}' reads changes; PROCTIME() columns on it are not supported yet"
                            ),
                            position_of(name),
                        ));
                    }
                    let mut columns = scope.columns;
                    columns.push(crate::binder::ScopeColumn {
                        qualifier: None,
                        name: ROW_KIND_COLUMN.to_string(),
                        data_type: arrow::datatypes::DataType::Int8,
                        nullable: false,
                    });
                    scope = Scope::new(columns);
                }
                let table = self.reader_table(t);
                let scan = Plan {
                    node: Node::Scan {
                        table,
                        projection: None,
                        proctime_watermark: false,
                    },
                    time_column: t.descriptor.watermark.map(|w| w.0),
                    window: None,
                    scope,
                    updating,
                };
                if !is_upsert_table(t) {
                    return self.apply_policies(scan, &key, position_of(name));
                }
                // An upsert-kafka topic says what each key's row is now:
                // a normalize keyed by the primary key makes the retractions.
                let normalized = Plan {
                    time_column: scan.time_column,
                    window: None,
                    scope: scan.scope.clone(),
                    updating: true,
                    node: Node::Normalize {
                        spec: runnel_engine::ops::NormalizeSpec {
                            key_columns: t.descriptor.primary_key.clone(),
                        },
                        input: Box::new(scan),
                    },
                };
                self.apply_policies(normalized, &key, position_of(name))
            }
            Some(Entry::View(v)) => {
                if self.expanding.contains(&key) {
                    return Err(SqlError::plan(
                        format!("view '{name}' refers to itself"),
                        position_of(name),
                    ));
                }
                self.record_read(name);
                self.views.push(key.clone());
                self.expanding.push(key);
                let saved = std::mem::take(&mut self.ctes);
                let mut plan = self.plan_query(&v.query);
                self.ctes = saved;
                self.expanding.pop();
                self.views.pop();
                if let (Ok(p), Some(state)) = (plan.as_ref(), self.expect) {
                    let checked = super::expect::apply_expectations(
                        self.catalog,
                        state,
                        p.clone(),
                        &key_of(name),
                        position_of(name),
                    );
                    plan = checked;
                }
                if let Ok(p) = plan.as_mut() {
                    requalify(&mut p.scope, qualifier);
                }
                plan
            }
            None => {
                let known: Vec<String> = self.catalog.list().into_iter().map(|(n, _)| n).collect();
                Err(SqlError::not_found(
                    format!(
                        "unknown table '{name}'{}",
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!("; known tables and views: {}", known.join(", "))
                        }
                    ),
                    position_of(name),
                ))
            }
        }
    }
}

/// True when `t` reads a changelog (`'format'` or `'value.format'` is
/// `debezium-json`, or an `upsert-kafka` table): its scan carries the
/// changelog column.
pub(crate) fn is_changelog_table(t: &crate::catalog::TableEntry) -> bool {
    is_upsert_table(t)
        || ["format", "value.format"].iter().any(|k| {
            t.descriptor
                .option(k)
                .is_some_and(|f| f.eq_ignore_ascii_case("debezium-json"))
        })
}

/// True when `t` is an `upsert-kafka` table: read, it is an upsert stream.
pub(crate) fn is_upsert_table(t: &crate::catalog::TableEntry) -> bool {
    t.descriptor
        .option("connector")
        .is_some_and(|c| c.eq_ignore_ascii_case("upsert-kafka"))
}
