//! The columns an expression can see: a [`Scope`] lists them in input order
//! and resolves plain and qualified names to a column index, with messages
//! that list what exists or say which tables make a name ambiguous.

use arrow::datatypes::{DataType, Field, Schema};
use sqlparser::ast;

use crate::error::{Position, Result, SqlError};

/// One column visible to an expression.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    /// Table name or alias the column can be qualified with.
    pub qualifier: Option<String>,
    /// Column name.
    pub name: String,
    /// Arrow type of the column.
    pub data_type: DataType,
    /// Whether the column may hold NULL.
    pub nullable: bool,
}

/// The columns an expression can see, in input order (index = position in the input batch).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The visible columns.
    pub columns: Vec<ScopeColumn>,
}

/// How many column names an "unknown column" message lists.
const MAX_LISTED_COLUMNS: usize = 10;

impl Scope {
    /// A scope over `columns`.
    pub fn new(columns: Vec<ScopeColumn>) -> Self {
        Self { columns }
    }

    /// Resolves `name` or `qualifier.name` case-insensitively to a column index.
    pub fn resolve(&self, idents: &[ast::Ident]) -> Result<usize> {
        let position = idents
            .first()
            .map(|i| Position::of(i.span))
            .unwrap_or_default();
        let Some((name, prefix)) = idents.split_last() else {
            return Err(SqlError::plan("empty column reference", position));
        };
        // Only the part right before the column name can be a table alias;
        // catalog and database parts in front of it are ignored.
        let qualifier = prefix.last();
        let full = idents
            .iter()
            .map(|i| i.value.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let matches: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name.eq_ignore_ascii_case(&name.value))
            .filter(|(_, c)| match qualifier {
                None => true,
                Some(q) => c
                    .qualifier
                    .as_deref()
                    .is_some_and(|cq| cq.eq_ignore_ascii_case(&q.value)),
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(SqlError::plan(
                format!(
                    "unknown column '{full}'; available columns: {}",
                    self.listed_names()
                ),
                position,
            )),
            many => {
                let owners = many
                    .iter()
                    .filter_map(|i| self.columns.get(*i))
                    .map(|c| c.qualifier.as_deref().unwrap_or("<unqualified>"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(SqlError::plan(
                    format!(
                        "column '{full}' is ambiguous (it exists in {owners}); qualify it with a table name or alias"
                    ),
                    position,
                ))
            }
        }
    }

    fn listed_names(&self) -> String {
        if self.columns.is_empty() {
            return "(none)".to_string();
        }
        let mut s = self
            .columns
            .iter()
            .take(MAX_LISTED_COLUMNS)
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if self.columns.len() > MAX_LISTED_COLUMNS {
            s.push_str(&format!(
                ", … ({} more)",
                self.columns.len() - MAX_LISTED_COLUMNS
            ));
        }
        s
    }

    /// The Arrow schema of the input, fields named by column name.
    pub fn schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        )
    }
}
