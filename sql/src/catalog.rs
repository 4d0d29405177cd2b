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

use crate::binder::{interval_millis, sql_type_to_arrow};
use crate::error::{Position, Result, SqlError};
use crate::parser::CreateTable;

/// A table.
#[derive(Debug, Clone)]
pub struct TableEntry {
    /// Table, materialized view or system table.
    pub kind: TableKind,
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
    /// SQL functions (`CREATE FUNCTION`), by lower-case name.
    functions: BTreeMap<String, FunctionEntry>,
    /// Roles, grants and owners.
    access: crate::access::Grants,
}

/// A SQL function (`CREATE FUNCTION`), expanded where it is called (see
/// [`crate::functions`]).
#[derive(Debug, Clone)]
pub struct FunctionEntry {
    /// Its lower-case name.
    pub name: String,
    /// Parameter names and types, in order.
    pub params: Vec<(String, sqlparser::ast::DataType)>,
    /// The type it returns.
    pub returns: sqlparser::ast::DataType,
    /// Its body, over the parameters.
    pub body: sqlparser::ast::Expr,
}

/// The catalog key of a (possibly qualified) name, lower-case: the parts
/// after the catalog and `public` schema, joined by dots.
pub fn key_of(name: &ObjectName) -> String {
    let mut parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.to_lowercase())
        .collect();
    // BI tools qualify names with the catalog and schema they were given
    // by the metadata calls; user objects live in `runnel.public`, system
    // tables in `runnel.system`.
    if parts.len() > 1 && (parts[0] == CATALOG_NAME || parts[0] == "default_catalog") {
        parts.remove(0);
    }
    if parts.len() > 1 && (parts[0] == PUBLIC_SCHEMA || parts[0] == "default_database") {
        parts.remove(0);
    }
    parts.join(".")
}

/// The catalog key of a dotted name as the governance statements hold
/// it (`runnel.public.t` -> `t`, `system.jobs` -> `system.jobs`).
pub fn key_of_dotted(name: &str) -> String {
    let parts: Vec<ast::Ident> = name.split('.').map(ast::Ident::new).collect();
    key_of(&ObjectName::from(parts))
}

/// The name of the one catalog, as metadata calls report it.
pub const CATALOG_NAME: &str = "runnel";
/// The schema of user tables and views.
pub const PUBLIC_SCHEMA: &str = "public";
/// The schema of the server's system tables (`system.jobs`, ...).
pub const SYSTEM_SCHEMA: &str = "system";

/// What kind of object a table entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `CREATE TABLE`: bound to a connector.
    Table,
    /// `CREATE MATERIALIZED VIEW`: kept up to date by a job, readable as a
    /// bounded table of its current contents.
    MaterializedView,
    /// A table the server provides (`system.jobs`, ...).
    System,
}

impl TableKind {
    /// The table type reported to clients.
    pub fn type_name(self) -> &'static str {
        match self {
            TableKind::Table => "TABLE",
            TableKind::MaterializedView => "MATERIALIZED VIEW",
            TableKind::System => "SYSTEM TABLE",
        }
    }
}

pub fn position_of(name: &ObjectName) -> Position {
    Position::of(name.span())
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Roles, grants and owners.
    pub fn grants(&self) -> &crate::access::Grants {
        &self.access
    }

    /// Roles, grants and owners, to change.
    pub fn grants_mut(&mut self) -> &mut crate::access::Grants {
        &mut self.access
    }

    /// Looks up a table or view.
    pub fn get(&self, name: &ObjectName) -> Option<&Entry> {
        self.entries.get(&key_of(name)).map(|(_, e)| e)
    }

    /// The entry under a catalog key (lower case, see [`key_of`]).
    pub fn get_by_key(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key).map(|(_, e)| e)
    }

    /// Names as declared, sorted, with their kind.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.entries
            .values()
            .map(|(n, e)| {
                (
                    n.clone(),
                    match e {
                        Entry::Table(t) => t.kind.type_name(),
                        Entry::View(_) => "VIEW",
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

    /// Adds a table entry under a name from the SQL text (a materialized
    /// view); with `if_not_exists`, an existing name is left alone and the
    /// result is `false`.
    pub fn create_table_entry(
        &mut self,
        name: &ObjectName,
        entry: TableEntry,
        if_not_exists: bool,
    ) -> Result<bool> {
        if if_not_exists && self.entries.contains_key(&key_of(name)) {
            return Ok(false);
        }
        self.insert(name, Entry::Table(entry), false)?;
        Ok(true)
    }

    /// Adds a table built by the caller (a materialized view, a system
    /// table) under `name`, which may be qualified (`system.jobs`).
    pub fn insert_table(&mut self, name: &str, entry: TableEntry) -> Result<()> {
        let key = name.to_lowercase();
        if self.entries.contains_key(&key) {
            return Err(SqlError::plan(
                format!("'{name}' already exists"),
                Position::default(),
            ));
        }
        self.entries
            .insert(key, (name.to_string(), Entry::Table(entry)));
        Ok(())
    }

    /// Removes the entry with catalog key `key`, if any (undoing a
    /// creation whose job could not start).
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
        self.access.forget_object(key);
    }

    /// Every entry: display name and entry, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.values().map(|(n, e)| (n.as_str(), e))
    }

    fn insert(&mut self, name: &ObjectName, entry: Entry, if_not_exists: bool) -> Result<()> {
        let key = key_of(name);
        if key.contains('.') {
            return Err(SqlError::plan(
                format!("'{name}': tables and views can only be created in the schema '{PUBLIC_SCHEMA}'"),
                position_of(name),
            ));
        }
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
    /// Adds a checked SQL function; an existing one is replaced only with
    /// `or_replace`.
    pub fn create_function(
        &mut self,
        f: FunctionEntry,
        or_replace: bool,
        at: Position,
    ) -> Result<()> {
        if self.functions.contains_key(&f.name) && !or_replace {
            return Err(SqlError::plan(
                format!(
                    "function '{}' already exists; use CREATE OR REPLACE FUNCTION to change it",
                    f.name
                ),
                at,
            ));
        }
        self.functions.insert(f.name.clone(), f);
        Ok(())
    }

    /// Removes a SQL function.
    pub fn drop_function(&mut self, name: &ObjectName, if_exists: bool) -> Result<()> {
        let key = key_of(name);
        if self.functions.remove(&key).is_none() && !if_exists {
            return Err(SqlError::not_found(
                format!("function '{name}' does not exist"),
                position_of(name),
            ));
        }
        Ok(())
    }

    /// The SQL function of this lower-case name.
    pub fn function(&self, name: &str) -> Option<&FunctionEntry> {
        self.functions.get(name)
    }

    /// The SQL functions, by name.
    pub fn functions(&self) -> impl Iterator<Item = &FunctionEntry> {
        self.functions.values()
    }

    /// True when any SQL function is defined.
    pub fn has_functions(&self) -> bool {
        !self.functions.is_empty()
    }

    pub fn drop(&mut self, name: &ObjectName, view: bool, if_exists: bool) -> Result<()> {
        let key = key_of(name);
        match self.entries.get(&key) {
            None if if_exists => Ok(()),
            None => Err(SqlError::not_found(
                format!("'{name}' does not exist"),
                position_of(name),
            )),
            Some((_, Entry::Table(t))) if t.kind == TableKind::System => Err(SqlError::plan(
                format!("'{name}' is a system table and cannot be dropped"),
                position_of(name),
            )),
            Some((_, Entry::Table(t))) if t.kind == TableKind::MaterializedView && !view => {
                Err(SqlError::plan(
                    format!("'{name}' is a materialized view; use DROP VIEW"),
                    position_of(name),
                ))
            }
            Some((_, Entry::Table(t))) if view && t.kind != TableKind::MaterializedView => {
                Err(SqlError::plan(
                    format!("'{name}' is a table; use DROP TABLE"),
                    position_of(name),
                ))
            }
            Some((_, Entry::View(_))) if !view => Err(SqlError::plan(
                format!("'{name}' is a view; use DROP VIEW"),
                position_of(name),
            )),
            Some(_) => {
                self.entries.remove(&key);
                self.access.forget_object(&key);
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
            let mut field = Field::new(&c.name.value, t, c.nullable);
            if let Some(m) = &c.metadata {
                let key = m.key.clone().unwrap_or_else(|| c.name.value.clone());
                let mut md = std::collections::HashMap::from([(
                    runnel_engine::connector::METADATA_FIELD_KEY.to_string(),
                    key,
                )]);
                if m.is_virtual {
                    md.insert(
                        runnel_engine::connector::METADATA_VIRTUAL_KEY.to_string(),
                        "true".to_string(),
                    );
                }
                field = field.with_metadata(md);
            }
            fields.push(field);
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
                            crate::binder::flink_type_name(fields[idx].data_type())
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
        let mut partition_keys = Vec::new();
        for k in &ct.partitioned_by {
            let idx = find(k).ok_or_else(|| {
                SqlError::plan(
                    format!("PARTITIONED BY names unknown column '{}'", k.value),
                    Position::of(k.span),
                )
            })?;
            if partition_keys.contains(&idx) {
                return Err(SqlError::plan(
                    format!("PARTITIONED BY names column '{}' twice", k.value),
                    Position::of(k.span),
                ));
            }
            partition_keys.push(idx);
        }
        let descriptor = TableDescriptor {
            name: key_of(&ct.name),
            schema: Arc::new(Schema::new(fields)),
            options: ct.options.iter().cloned().collect(),
            watermark,
            primary_key,
            partition_keys,
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
                kind: TableKind::Table,
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
