//! The statements of Runnel's SQL as the parser hands them on: sqlparser's
//! AST where it fits, own types for what Flink adds (`CREATE TABLE` with
//! watermarks, computed PROCTIME and METADATA columns, `SHOW JOBS`,
//! `STOP JOB`). Their `Display` prints them back as parseable SQL.

use std::fmt;

use sqlparser::ast::{self, Expr, Ident, ObjectName};

use crate::error::Position;

/// A column of `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDecl {
    /// Column name.
    pub name: Ident,
    /// Declared SQL type.
    pub data_type: ast::DataType,
    /// False with `NOT NULL`.
    pub nullable: bool,
    /// `METADATA [FROM 'key'] [VIRTUAL]`: the column is filled from (or
    /// written to) the connector's metadata instead of the record body.
    pub metadata: Option<MetadataDecl>,
    /// `COMMENT 'text'`.
    pub comment: Option<String>,
}

/// The `METADATA` clause of a column (Flink's syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataDecl {
    /// The key after `FROM`; the column name when absent.
    pub key: Option<String>,
    /// `VIRTUAL`: read-only, not part of what a sink writes.
    pub is_virtual: bool,
}

/// `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// Table name.
    pub name: ObjectName,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// Physical columns.
    pub columns: Vec<ColumnDecl>,
    /// `name AS PROCTIME()` computed columns.
    pub proctime_columns: Vec<Ident>,
    /// `WATERMARK FOR col AS expr`.
    pub watermark: Option<(Ident, Expr)>,
    /// `PRIMARY KEY (...) NOT ENFORCED`.
    pub primary_key: Vec<Ident>,
    /// `PARTITIONED BY (...)` columns.
    pub partitioned_by: Vec<Ident>,
    /// `WITH ('k' = 'v', ...)`, in order.
    pub options: Vec<(String, String)>,
    /// The table's `COMMENT 'text'`.
    pub comment: Option<String>,
    /// `CONSTRAINT name EXPECT (...)`: checked on every row written.
    pub expectations: Vec<super::expect::ExpectDecl>,
    /// Where the statement starts.
    pub position: Position,
}

/// A statement of Runnel's SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE TABLE`.
    CreateTable(Box<CreateTable>),
    /// `CREATE [TEMPORARY] VIEW` / `CREATE MATERIALIZED VIEW`.
    CreateView {
        /// View name.
        name: ObjectName,
        /// Its query.
        query: Box<ast::Query>,
        /// `MATERIALIZED`.
        materialized: bool,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// `(CONSTRAINT name EXPECT (...), ...)`: checked on every row read
        /// through the view.
        expectations: Vec<super::expect::ExpectDecl>,
    },
    /// `INSERT INTO sink SELECT ...`.
    Insert {
        /// The sink table.
        table: ObjectName,
        /// The query.
        query: Box<ast::Query>,
    },
    /// A query.
    Query(Box<ast::Query>),
    /// `DROP TABLE|VIEW [IF EXISTS] name`.
    Drop {
        /// Names.
        names: Vec<ObjectName>,
        /// `IF EXISTS`.
        if_exists: bool,
        /// True for views.
        view: bool,
    },
    /// `SHOW TABLES`.
    ShowTables,
    /// `SHOW JOBS`.
    ShowJobs,
    /// `DESCRIBE name`.
    Describe(ObjectName),
    /// `EXPLAIN statement`.
    Explain(Box<Statement>),
    /// `SET 'key' = 'value'`.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `EXECUTE STATEMENT SET BEGIN INSERT ...; INSERT ...; END` (or
    /// `BEGIN STATEMENT SET; ... END;`): INSERTs run as one job that reads
    /// each source once. Every inner statement is a [`Statement::Insert`].
    StatementSet(Vec<Located>),
    /// `CREATE [OR REPLACE] FUNCTION name(p TYPE, ...) RETURNS TYPE
    /// RETURN expr`: a SQL function, expanded where it is called.
    CreateFunction(Box<CreateFunction>),
    /// `DROP FUNCTION [IF EXISTS] name`.
    DropFunction {
        /// The function.
        name: ObjectName,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// `CREATE ROLE`, `GRANT`, `REVOKE`, `SHOW GRANTS`, ...
    Governance(Box<super::governance::Governance>),
    /// `ALTER TABLE` tags, masks, row filters, comments; `COMMENT ON`.
    Alter(Box<super::alter::AlterTable>),
    /// `STOP JOB 'id' [WITH SAVEPOINT]`.
    StopJob {
        /// Job id.
        id: String,
        /// `WITH SAVEPOINT`.
        savepoint: bool,
    },
}

impl Statement {
    /// What kind of statement this is, in a few words (`CREATE TABLE`,
    /// `SELECT`, ...), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Statement::CreateTable(_) => "CREATE TABLE",
            Statement::CreateView {
                materialized: true, ..
            } => "CREATE MATERIALIZED VIEW",
            Statement::CreateView { .. } => "CREATE VIEW",
            Statement::Insert { .. } => "INSERT INTO",
            Statement::Query(_) => "a query",
            Statement::Drop { .. } => "DROP",
            Statement::ShowTables => "SHOW TABLES",
            Statement::ShowJobs => "SHOW JOBS",
            Statement::Describe(_) => "DESCRIBE",
            Statement::Explain(_) => "EXPLAIN",
            Statement::Set { .. } => "SET",
            Statement::StatementSet(_) => "a statement set",
            Statement::StopJob { .. } => "STOP JOB",
            Statement::Alter(a) => match a.action {
                super::alter::AlterAction::Comment(_) => "COMMENT",
                _ => "ALTER TABLE",
            },
            Statement::Governance(g) => match **g {
                super::governance::Governance::CreateRole { .. } => "CREATE ROLE",
                super::governance::Governance::DropRole { .. } => "DROP ROLE",
                super::governance::Governance::Membership { grant: true, .. }
                | super::governance::Governance::Privileges { grant: true, .. } => "GRANT",
                super::governance::Governance::Membership { .. }
                | super::governance::Governance::Privileges { .. } => "REVOKE",
                super::governance::Governance::ShowGrants { .. } => "SHOW GRANTS",
                super::governance::Governance::ShowLineage { .. } => "SHOW LINEAGE",
            },
            Statement::CreateFunction(_) => "CREATE FUNCTION",
            Statement::DropFunction { .. } => "DROP FUNCTION",
        }
    }
}

/// One statement with where it starts in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// The statement.
    pub statement: Statement,
    /// Its first token's position.
    pub position: Position,
}

impl fmt::Display for CreateTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CREATE TABLE {}{} (",
            if self.if_not_exists {
                "IF NOT EXISTS "
            } else {
                ""
            },
            self.name
        )?;
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let metadata = match &c.metadata {
                    None => String::new(),
                    Some(m) => format!(
                        " METADATA{}{}",
                        m.key
                            .as_ref()
                            .map(|k| format!(" FROM '{}'", k.replace('\'', "''")))
                            .unwrap_or_default(),
                        if m.is_virtual { " VIRTUAL" } else { "" }
                    ),
                };
                let comment = c
                    .comment
                    .as_ref()
                    .map(|t| format!(" COMMENT '{}'", t.replace('\'', "''")))
                    .unwrap_or_default();
                format!(
                    "{} {}{}{metadata}{comment}",
                    c.name,
                    c.data_type,
                    if c.nullable { "" } else { " NOT NULL" }
                )
            })
            .collect();
        parts.extend(
            self.proctime_columns
                .iter()
                .map(|p| format!("{p} AS PROCTIME()")),
        );
        if let Some((col, expr)) = &self.watermark {
            parts.push(format!("WATERMARK FOR {col} AS {expr}"));
        }
        parts.extend(self.expectations.iter().map(|e| e.to_string()));
        if !self.primary_key.is_empty() {
            let keys: Vec<String> = self.primary_key.iter().map(|k| k.to_string()).collect();
            parts.push(format!("PRIMARY KEY ({}) NOT ENFORCED", keys.join(", ")));
        }
        write!(f, "{})", parts.join(", "))?;
        if let Some(c) = &self.comment {
            write!(f, " COMMENT '{}'", c.replace('\'', "''"))?;
        }
        if !self.partitioned_by.is_empty() {
            let cols: Vec<String> = self.partitioned_by.iter().map(|c| c.to_string()).collect();
            write!(f, " PARTITIONED BY ({})", cols.join(", "))?;
        }
        if !self.options.is_empty() {
            let opts: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| format!("'{k}' = '{}'", v.replace('\'', "''")))
                .collect();
            write!(f, " WITH ({})", opts.join(", "))?;
        }
        Ok(())
    }
}

/// A SQL function: `CREATE FUNCTION name(p TYPE, ...) RETURNS TYPE RETURN
/// expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFunction {
    /// The function's name.
    pub name: ObjectName,
    /// Its parameters, in order.
    pub params: Vec<(Ident, ast::DataType)>,
    /// The type it returns.
    pub returns: ast::DataType,
    /// Its body, over the parameters.
    pub body: Expr,
    /// `OR REPLACE`.
    pub or_replace: bool,
}

impl fmt::Display for CreateFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(n, t)| format!("{n} {t}"))
            .collect();
        write!(
            f,
            "CREATE {}FUNCTION {}({}) RETURNS {} RETURN {}",
            if self.or_replace { "OR REPLACE " } else { "" },
            self.name,
            params.join(", "),
            self.returns,
            self.body
        )
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CreateTable(ct) => write!(f, "{ct}"),
            Statement::CreateView {
                name,
                query,
                materialized,
                if_not_exists,
                expectations,
            } => {
                let checks = if expectations.is_empty() {
                    String::new()
                } else {
                    let e: Vec<String> = expectations.iter().map(|e| e.to_string()).collect();
                    format!(" ({})", e.join(", "))
                };
                write!(
                    f,
                    "CREATE {}VIEW {}{name}{checks} AS {query}",
                    if *materialized { "MATERIALIZED " } else { "" },
                    if *if_not_exists { "IF NOT EXISTS " } else { "" }
                )
            }
            Statement::Insert { table, query } => write!(f, "INSERT INTO {table} {query}"),
            Statement::Query(q) => write!(f, "{q}"),
            Statement::Drop {
                names,
                if_exists,
                view,
            } => {
                let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                write!(
                    f,
                    "DROP {} {}{}",
                    if *view { "VIEW" } else { "TABLE" },
                    if *if_exists { "IF EXISTS " } else { "" },
                    names.join(", ")
                )
            }
            Statement::ShowTables => write!(f, "SHOW TABLES"),
            Statement::ShowJobs => write!(f, "SHOW JOBS"),
            Statement::Describe(n) => write!(f, "DESCRIBE {n}"),
            Statement::Explain(s) => write!(f, "EXPLAIN {s}"),
            Statement::Set { key, value } => write!(f, "SET '{key}' = '{value}'"),
            Statement::StatementSet(inserts) => {
                writeln!(f, "EXECUTE STATEMENT SET BEGIN")?;
                for i in inserts {
                    writeln!(f, "{};", i.statement)?;
                }
                write!(f, "END")
            }
            Statement::CreateFunction(cf) => write!(f, "{cf}"),
            Statement::DropFunction { name, if_exists } => write!(
                f,
                "DROP FUNCTION {}{name}",
                if *if_exists { "IF EXISTS " } else { "" }
            ),
            Statement::Governance(g) => write!(f, "{g}"),
            Statement::Alter(a) => write!(f, "{a}"),
            Statement::StopJob { id, savepoint } => {
                write!(
                    f,
                    "STOP JOB '{id}'{}",
                    if *savepoint { " WITH SAVEPOINT" } else { "" }
                )
            }
        }
    }
}
