//! The catalog: tables and views by name.
//!
//! Names are case-insensitive (stored lower-case), as in Flink's default
//! catalog. A table is a [`TableDescriptor`] (schema, options, watermark)
//! plus its processing-time columns; a view is a query kept as parsed.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use runnel_engine::connector::{ConnectorRegistry, TableDescriptor};
use sqlparser::ast::Spanned;
use sqlparser::ast::{self, Expr, ObjectName};

use crate::bind_expr::{interval_millis, sql_type_to_arrow};
use crate::error::{Position, Result, SqlError};
use crate::parser::CreateTable;

/// A table.
#[derive(Debug, Clone)]
pub struct TableEntry {
    /// Schema, options, watermark.
    pub descriptor: TableDescriptor,
    /// `name AS PROCTIME()` columns, appended after the physical columns.
    pub proctime: Vec<String>,
}

/// A view.
#[derive(Debug, Clone)]
pub struct ViewEntry {
    /// Its query.
    pub query: ast::Query,
    /// `CREATE MATERIALIZED VIEW`.
    pub materialized: bool,
}

/// A catalog object.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A table.
    Table(TableEntry),
    /// A view.
    View(Box<ViewEntry>),
}

/// Tables and views of a session.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: BTreeMap<String, (String, Entry)>,
}

/// The catalog key of a (possibly qualified) name: its last part, lower-case.
pub fn key_of(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_lowercase())
        .unwrap_or_default()
}

/// Where a name appears in the text.
pub fn position_of(name: &ObjectName) -> Position {
    Position::of(name.span())
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks up a table or view.
    pub fn get(&self, name: &ObjectName) -> Option<&Entry> {
        self.entries.get(&key_of(name)).map(|(_, e)| e)
    }

    /// Names as declared, sorted, with their kind.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.entries
            .values()
            .map(|(n, e)| {
                (
                    n.clone(),
                    if matches!(e, Entry::Table(_)) {
                        "TABLE"
                    } else {
                        "VIEW"
                    },
                )
            })
            .collect()
    }

    /// Adds a view.
    pub fn create_view(
        &mut self,
        name: &ObjectName,
        view: ViewEntry,
        if_not_exists: bool,
    ) -> Result<()> {
        self.insert(name, Entry::View(Box::new(view)), if_not_exists)
    }

    fn insert(&mut self, name: &ObjectName, entry: Entry, if_not_exists: bool) -> Result<()> {
        let key = key_of(name);
        if self.entries.contains_key(&key) {
            if if_not_exists {
                return Ok(());
            }
            return Err(SqlError::plan(
                format!("'{name}' already exists"),
                position_of(name),
            ));
        }
        let display = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.clone())
            .unwrap_or_default();
        self.entries.insert(key, (display, entry));
        Ok(())
    }

    /// Removes a table or view; `view` says which kind the statement named.
    pub fn drop(&mut self, name: &ObjectName, view: bool, if_exists: bool) -> Result<()> {
        let key = key_of(name);
        match self.entries.get(&key) {
            None if if_exists => Ok(()),
            None => Err(SqlError::plan(
                format!("'{name}' does not exist"),
                position_of(name),
            )),
            Some((_, Entry::Table(_))) if view => Err(SqlError::plan(
                format!("'{name}' is a table; use DROP TABLE"),
                position_of(name),
            )),
            Some((_, Entry::View(_))) if !view => Err(SqlError::plan(
                format!("'{name}' is a view; use DROP VIEW"),
                position_of(name),
            )),
            Some(_) => {
                self.entries.remove(&key);
                Ok(())
            }
        }
    }

    /// Adds a table after checking its types, watermark and connector
    /// options (against `registry`).
    pub fn create_table(&mut self, ct: &CreateTable, registry: &ConnectorRegistry) -> Result<()> {
        let mut fields = Vec::new();
        for c in &ct.columns {
            let t = sql_type_to_arrow(&c.data_type, Position::of(c.name.span))?;
            if fields
                .iter()
                .any(|f: &Field| f.name().eq_ignore_ascii_case(&c.name.value))
            {
                return Err(SqlError::plan(
                    format!("duplicate column '{}'", c.name.value),
                    Position::of(c.name.span),
                ));
            }
            fields.push(Field::new(&c.name.value, t, c.nullable));
        }
        let find = |ident: &ast::Ident| {
            fields
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(&ident.value))
        };
        let watermark = match &ct.watermark {
            None => None,
            Some((col, expr)) => {
                let idx = find(col).ok_or_else(|| {
                    SqlError::plan(
                        format!("WATERMARK FOR names unknown column '{}'", col.value),
                        Position::of(col.span),
                    )
                })?;
                if !matches!(
                    fields[idx].data_type(),
                    DataType::Timestamp(TimeUnit::Millisecond, _)
                ) {
                    return Err(SqlError::plan(
                        format!(
                            "the watermark column '{}' must be TIMESTAMP(3), not {}",
                            col.value,
                            crate::bind_expr::flink_type_name(fields[idx].data_type())
                        ),
                        Position::of(col.span),
                    ));
                }
                Some((idx, watermark_delay(col, expr)?))
            }
        };
        let mut primary_key = Vec::new();
        for k in &ct.primary_key {
            primary_key.push(find(k).ok_or_else(|| {
                SqlError::plan(
                    format!("PRIMARY KEY names unknown column '{}'", k.value),
                    Position::of(k.span),
                )
            })?);
        }
        let descriptor = TableDescriptor {
            name: key_of(&ct.name),
            schema: Arc::new(Schema::new(fields)),
            options: ct.options.iter().cloned().collect(),
            watermark,
            primary_key,
        };
        registry.resolve(&descriptor).map_err(|e| {
            SqlError::plan(
                e.to_string()
                    .trim_start_matches("invalid plan: ")
                    .to_string(),
                ct.position,
            )
        })?;
        let proctime = ct
            .proctime_columns
            .iter()
            .map(|p| p.value.clone())
            .collect();
        self.insert(
            &ct.name,
            Entry::Table(TableEntry {
                descriptor,
                proctime,
            }),
            ct.if_not_exists,
        )
    }
}

/// `col` or `col - INTERVAL ...`: the watermark delay in milliseconds.
fn watermark_delay(col: &ast::Ident, expr: &Expr) -> Result<i64> {
    let is_col =
        |e: &Expr| matches!(e, Expr::Identifier(i) if i.value.eq_ignore_ascii_case(&col.value));
    match expr {
        e if is_col(e) => Ok(0),
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Minus,
            right,
        } if is_col(left) => {
            let ms = interval_millis(right)?;
            if ms < 0 {
                return Err(SqlError::plan(
                    "the watermark delay must not be negative",
                    Position::of(right.span()),
                ));
            }
            Ok(ms)
        }
        other => Err(SqlError::plan(
            format!(
                "a watermark must be '{0}' or '{0} - INTERVAL ...'; found {other}",
                col.value
            ),
            Position::of(other.span()),
        )),
    }
}
