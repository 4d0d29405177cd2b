//! `ALTER TABLE` for governance (tags, comments, column masks, row
//! filters) and `COMMENT ON`: checked here (the object and column exist,
//! the user owns the object, a mask or filter function has the right
//! types) and kept in the catalog's access record. The planner applies
//! masks and row filters to every read ([`crate::planner`]'s
//! `apply_policies`).

use arrow::datatypes::DataType;

use super::{Outcome, Session};
use crate::access::ObjectMeta;
use crate::binder::{flink_type_name, sql_type_to_arrow};
use crate::catalog::{Entry, TableKind};
use crate::error::{Position, Result, SqlError};
use crate::parser::{AlterAction, AlterTable, Named};

impl Session {
    /// Runs an `ALTER TABLE` / `COMMENT ON` statement.
    pub(super) fn alter(&mut self, a: &AlterTable, _position: Position) -> Result<Outcome> {
        let key = object_key(&a.table);
        let columns = self.object_columns(&a.table)?;
        self.require_owner(&key, "alter", a.table.position)?;
        let column = match &a.column {
            Some(c) => {
                let found = columns
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&c.name))
                    .ok_or_else(|| {
                        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
                        SqlError::not_found(
                            format!(
                                "'{}' has no column '{}'; its columns: {}",
                                a.table.name,
                                c.name,
                                names.join(", ")
                            ),
                            c.position,
                        )
                    })?;
                Some(found.clone())
            }
            None => None,
        };
        let is_table = matches!(
            self.catalog.get_by_key(&key),
            Some(Entry::Table(t)) if t.kind == TableKind::Table
        );
        match &a.action {
            AlterAction::SetMask(_) | AlterAction::SetRowFilter(..) if !is_table => {
                return Err(SqlError::plan(
                    format!(
                        "'{}' is not a table: masks and row filters are set on tables (a view reads them through its table)",
                        a.table.name
                    ),
                    a.table.position,
                ));
            }
            AlterAction::SetMask(f) => {
                let Some((name, ty)) = column.clone() else {
                    return Err(SqlError::plan(
                        "SET MASK needs ALTER COLUMN",
                        a.table.position,
                    ));
                };
                self.check_function(
                    f,
                    std::slice::from_ref(&ty),
                    Some(&ty),
                    &format!("a mask of column '{name}'"),
                )?;
            }
            AlterAction::AddExpectation(d) => {
                let scope = crate::binder::Scope::new(
                    columns
                        .iter()
                        .map(|(n, t)| crate::binder::ScopeColumn {
                            qualifier: None,
                            name: n.clone(),
                            data_type: t.clone(),
                            nullable: true,
                        })
                        .collect(),
                );
                crate::planner::expect::bind_check(d, &scope, &key)?;
                let taken = self
                    .catalog
                    .grants()
                    .meta(&key)
                    .is_some_and(|m| m.expectations.iter().any(|e| e.name == d.name));
                if taken {
                    return Err(SqlError::plan(
                        format!("'{}' already has an expectation '{}'", a.table.name, d.name),
                        d.position,
                    ));
                }
            }
            AlterAction::DropExpectation(n) => {
                let known = self
                    .catalog
                    .grants()
                    .meta(&key)
                    .is_some_and(|m| m.expectations.iter().any(|e| e.name == n.name));
                if !known {
                    return Err(SqlError::not_found(
                        format!("'{}' has no expectation '{}'", a.table.name, n.name),
                        n.position,
                    ));
                }
            }
            AlterAction::SetRowFilter(f, cols) => {
                let mut types = Vec::new();
                for c in cols {
                    let ty = columns
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&c.name))
                        .map(|(_, t)| t.clone())
                        .ok_or_else(|| {
                            SqlError::not_found(
                                format!("'{}' has no column '{}'", a.table.name, c.name),
                                c.position,
                            )
                        })?;
                    types.push(ty);
                }
                self.check_function(f, &types, Some(&DataType::Boolean), "a row filter")?;
            }
            _ => {}
        }
        let meta = self.catalog.grants_mut().meta_mut(&key);
        let message = apply(
            meta,
            column.as_ref().map(|(n, _)| n.to_lowercase()),
            &a.action,
        );
        Ok(Outcome::Message(format!("{message} on {}", a.table.name)))
    }

    /// A materialized view's columns copied from a masked column keep its
    /// mask, and a row filter whose columns all reach the view keeps
    /// filtering it: the view's rows are computed once, by its owner's
    /// job, and these make each reader see them as the tables' policies
    /// say. (Computed and aggregated columns are not masked again.)
    pub(super) fn inherit_policies(&mut self, view: &str, query: &sqlparser::ast::Query) {
        // Planned past the owner's own masks, which would make every
        // masked column look computed.
        let Ok(plan) = self.planner().without_policies().plan_query(query) else {
            return;
        };
        let plan = &plan;
        let lineage = crate::lineage::lineage(plan);
        let names: Vec<(String, DataType)> = plan
            .scope
            .columns
            .iter()
            .filter(|c| c.name != runnel_engine::types::ROW_KIND_COLUMN)
            .map(|c| (c.name.to_lowercase(), c.data_type.clone()))
            .collect();
        // Source column -> the view's column that copies it.
        let mut copies: Vec<((String, String), usize)> = Vec::new();
        for (i, origins) in lineage.columns.iter().enumerate() {
            for (src, d) in origins {
                if *d == crate::lineage::Derivation::Copied {
                    copies.push((src.clone(), i));
                }
            }
        }
        let mut inherited = ObjectMeta::default();
        for ((table, column), i) in &copies {
            let Some(meta) = self.catalog.grants().meta(table) else {
                continue;
            };
            let Some(mask) = meta.columns.get(column).and_then(|c| c.mask.clone()) else {
                continue;
            };
            let (name, ty) = &names[*i];
            let fits = self.catalog.function(&mask).is_some_and(|f| {
                f.params.len() == 1
                    && sql_type_to_arrow(&f.params[0].1, Position::default())
                        .ok()
                        .as_ref()
                        == Some(ty)
            });
            if fits {
                inherited.columns.entry(name.clone()).or_default().mask = Some(mask);
            }
        }
        let tables: std::collections::BTreeSet<&String> =
            copies.iter().map(|((t, _), _)| t).collect();
        for table in tables {
            let Some((f, cols)) = self
                .catalog
                .grants()
                .meta(table)
                .and_then(|m| m.row_filter.clone())
            else {
                continue;
            };
            let mapped: Option<Vec<String>> = cols
                .iter()
                .map(|c| {
                    copies
                        .iter()
                        .find(|((t, col), _)| t == table && col == c)
                        .map(|(_, i)| names[*i].0.clone())
                })
                .collect();
            if let Some(mapped) = mapped {
                inherited.row_filter = Some((f, mapped));
            }
        }
        if inherited != ObjectMeta::default() {
            let meta = self.catalog.grants_mut().meta_mut(view);
            for (c, m) in inherited.columns {
                meta.columns.entry(c).or_default().mask = m.mask;
            }
            if inherited.row_filter.is_some() {
                meta.row_filter = inherited.row_filter;
            }
        }
    }

    /// The columns (name, type) of a table or view.
    fn object_columns(&self, table: &Named) -> Result<Vec<(String, DataType)>> {
        let key = object_key(table);
        match self.catalog.get_by_key(&key) {
            Some(Entry::Table(t)) => Ok(t
                .descriptor
                .schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()),
            Some(Entry::View(v)) => {
                let shape = self.query_shape(&v.query)?;
                Ok(shape
                    .schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone()))
                    .collect())
            }
            None => Err(SqlError::not_found(
                format!("unknown table or view '{}'", table.name),
                table.position,
            )),
        }
    }

    /// Checks that SQL function `f` takes `params` and returns `returns`.
    fn check_function(
        &self,
        f: &Named,
        params: &[DataType],
        returns: Option<&DataType>,
        what: &str,
    ) -> Result<()> {
        let Some(def) = self.catalog.function(&f.name.to_lowercase()) else {
            return Err(SqlError::not_found(
                format!(
                    "unknown function '{}'; create it first: CREATE FUNCTION {}(...) RETURNS ... RETURN ...",
                    f.name, f.name
                ),
                f.position,
            ));
        };
        let declared: Vec<DataType> = def
            .params
            .iter()
            .map(|(_, t)| sql_type_to_arrow(t, f.position))
            .collect::<Result<_>>()?;
        let result = sql_type_to_arrow(&def.returns, f.position)?;
        let names = |ts: &[DataType]| -> String {
            ts.iter()
                .map(flink_type_name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if declared != params || returns.is_some_and(|r| *r != result) {
            return Err(SqlError::plan(
                format!(
                    "function '{}' takes ({}) and returns {}; {what} must take ({}) and return {}",
                    f.name,
                    names(&declared),
                    flink_type_name(&result),
                    names(params),
                    returns.map_or("anything".to_string(), flink_type_name),
                ),
                f.position,
            ));
        }
        Ok(())
    }
}

/// The catalog key of a name in an ALTER statement.
fn object_key(n: &Named) -> String {
    crate::catalog::key_of_dotted(&n.name)
}

/// Applies `action` to `meta`; what was done, in a few words.
fn apply(meta: &mut ObjectMeta, column: Option<String>, action: &AlterAction) -> String {
    let (tags, comment) = match &column {
        Some(c) => {
            let m = meta.columns.entry(c.clone()).or_default();
            (&mut m.tags, &mut m.comment)
        }
        None => (&mut meta.tags, &mut meta.comment),
    };
    match action {
        AlterAction::SetTags(t) => {
            tags.extend(t.iter().cloned());
            "set tags".into()
        }
        AlterAction::UnsetTags(keys) => {
            for k in keys {
                tags.remove(k);
            }
            "unset tags".into()
        }
        AlterAction::Comment(text) => {
            *comment = text.clone();
            "set the comment".into()
        }
        AlterAction::SetMask(f) => {
            if let Some(c) = column {
                meta.columns.entry(c).or_default().mask = Some(f.name.to_lowercase());
            }
            "set the mask".into()
        }
        AlterAction::DropMask => {
            if let Some(c) = column {
                meta.columns.entry(c).or_default().mask = None;
            }
            "dropped the mask".into()
        }
        AlterAction::SetRowFilter(f, cols) => {
            meta.row_filter = Some((
                f.name.to_lowercase(),
                cols.iter().map(|c| c.name.to_lowercase()).collect(),
            ));
            "set the row filter".into()
        }
        AlterAction::DropRowFilter => {
            meta.row_filter = None;
            "dropped the row filter".into()
        }
        AlterAction::AddExpectation(d) => {
            meta.expectations.push((**d).clone());
            format!("added expectation {}", d.name)
        }
        AlterAction::DropExpectation(n) => {
            meta.expectations.retain(|e| e.name != n.name);
            format!("dropped expectation {}", n.name)
        }
    }
}
