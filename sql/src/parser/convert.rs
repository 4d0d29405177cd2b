//! From sqlparser's AST to Runnel's [`Statement`]: CREATE TABLE columns,
//! keys and `WITH ('key' = 'value')` options, views, INSERT, DROP, SET and
//! the other statements Runnel runs, with a positioned error for the rest.

use sqlparser::ast::{self, ColumnOption, Expr, Ident};
use sqlparser::tokenizer::Span;

use super::statement::{ColumnDecl, CreateTable, Statement};
use super::table_extras::TableExtras;
use super::tokens::syntax;
use crate::error::{Position, Result};

/// Turns sqlparser's statement into ours, rejecting what Runnel does not
/// support; `extras` are the CREATE TABLE parts cut out before parsing.
pub(super) fn convert(stmt: ast::Statement, extras: TableExtras, span: Span) -> Result<Statement> {
    use ast::Statement as S;
    let unsupported = |what: &str| syntax(format!("{what} is not supported"), span);
    Ok(match stmt {
        S::CreateTable(ct) => create_table(ct, extras, span)?,
        S::CreateView(cv) => Statement::CreateView {
            name: cv.name,
            query: cv.query,
            materialized: cv.materialized,
            if_not_exists: cv.if_not_exists,
            expectations: extras.expectations,
        },
        S::Insert(ins) => {
            let table = match ins.table {
                ast::TableObject::TableName(n) => n,
                _ => return Err(unsupported("INSERT INTO a table function")),
            };
            let query = ins
                .source
                .ok_or_else(|| unsupported("INSERT without a query"))?;
            Statement::Insert { table, query }
        }
        S::Query(q) => Statement::Query(q),
        S::Drop {
            object_type,
            if_exists,
            names,
            ..
        } => match object_type {
            ast::ObjectType::Table => Statement::Drop {
                names,
                if_exists,
                view: false,
            },
            ast::ObjectType::View | ast::ObjectType::MaterializedView => Statement::Drop {
                names,
                if_exists,
                view: true,
            },
            other => return Err(unsupported(&format!("DROP {other}"))),
        },
        S::CreateFunction(cf) => create_function(cf, span)?,
        S::DropFunction(df) => match df.func_desc.as_slice() {
            [one] => Statement::DropFunction {
                name: one.name.clone(),
                if_exists: df.if_exists,
            },
            _ => return Err(syntax("DROP FUNCTION drops one function at a time", span)),
        },
        S::ShowTables { .. } => Statement::ShowTables,
        S::ExplainTable { table_name, .. } => Statement::Describe(table_name),
        S::Explain { statement, .. } => {
            Statement::Explain(Box::new(convert(*statement, TableExtras::default(), span)?))
        }
        S::Set(ast::Set::SingleAssignment {
            variable, values, ..
        }) => {
            let key = variable.to_string().trim_matches('\'').to_string();
            let value = match values.as_slice() {
                [v] => option_text(v)
                    .ok_or_else(|| syntax("SET needs a quoted value: SET 'key' = 'value'", span))?,
                _ => return Err(syntax("SET needs one value: SET 'key' = 'value'", span)),
            };
            Statement::Set { key, value }
        }
        other => {
            let text = other.to_string();
            let head: String = text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            return Err(syntax(
                format!("the statement {head} ... is not supported"),
                span,
            ));
        }
    })
}

/// `CREATE FUNCTION name(p TYPE, ...) RETURNS TYPE RETURN expr`, the SQL
/// functions Runnel has (Flink's `CREATE FUNCTION f AS 'class'` names Java
/// code, which Runnel cannot run).
fn create_function(cf: ast::CreateFunction, span: Span) -> Result<Statement> {
    let form = "a function is written CREATE FUNCTION name(param TYPE, ...) RETURNS TYPE RETURN expression";
    let body = match cf.function_body {
        Some(ast::CreateFunctionBody::Return(e)) => e,
        Some(ast::CreateFunctionBody::AsBeforeOptions { .. })
        | Some(ast::CreateFunctionBody::AsAfterOptions(_)) => {
            return Err(syntax(
                format!(
                "functions implemented in another language (AS '...') are not supported; {form}"
            ),
                span,
            ))
        }
        _ => return Err(syntax(form, span)),
    };
    let returns = match cf.return_type {
        Some(ast::FunctionReturnType::DataType(t)) => t,
        _ => return Err(syntax(format!("RETURNS TYPE is missing; {form}"), span)),
    };
    let mut params = Vec::new();
    for a in cf.args.unwrap_or_default() {
        let Some(name) = a.name else {
            return Err(syntax(
                format!("every parameter needs a name; {form}"),
                span,
            ));
        };
        if a.default_expr.is_some() || a.mode.is_some() {
            return Err(syntax(
                format!("parameter '{name}': defaults and IN/OUT modes are not supported; {form}"),
                name.span,
            ));
        }
        params.push((name, a.data_type));
    }
    Ok(Statement::CreateFunction(Box::new(
        super::statement::CreateFunction {
            name: cf.name,
            params,
            returns,
            body,
            or_replace: cf.or_replace,
        },
    )))
}

/// `CREATE TABLE`, with the Flink parts sqlparser did not see.
fn create_table(ct: ast::CreateTable, extras: TableExtras, span: Span) -> Result<Statement> {
    let mut primary_key = Vec::new();
    let columns = column_decls(ct.columns, &extras, &mut primary_key)?;
    primary_key_constraints(ct.constraints, span, &mut primary_key)?;
    let comment = extras.comment.clone().or(ct.comment.map(|c| match c {
        ast::CommentDef::WithEq(s) | ast::CommentDef::WithoutEq(s) => s,
    }));
    let options = table_options(ct.table_options, span)?;
    Ok(Statement::CreateTable(Box::new(CreateTable {
        expectations: extras.expectations.clone(),
        comment,
        name: ct.name,
        if_not_exists: ct.if_not_exists,
        columns,
        proctime_columns: extras.proctime,
        watermark: extras.watermark,
        primary_key,
        partitioned_by: extras.partitioned_by,
        options,
        position: Position::of(span),
    })))
}

/// The physical columns; a column-level `PRIMARY KEY` adds to `primary_key`.
fn column_decls(
    defs: Vec<ast::ColumnDef>,
    extras: &TableExtras,
    primary_key: &mut Vec<Ident>,
) -> Result<Vec<ColumnDecl>> {
    let mut columns = Vec::new();
    for c in defs {
        let mut nullable = true;
        let mut comment = None;
        for o in &c.options {
            match &o.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Comment(text) => comment = Some(text.clone()),
                ColumnOption::Null => {}
                ColumnOption::PrimaryKey(_) => primary_key.push(c.name.clone()),
                other => {
                    return Err(syntax(
                        format!("column option {other} is not supported"),
                        c.name.span,
                    ))
                }
            }
        }
        let metadata = extras
            .metadata
            .iter()
            .find(|(n, _)| *n == c.name.value.to_lowercase())
            .map(|(_, d)| d.clone());
        columns.push(ColumnDecl {
            name: c.name,
            data_type: c.data_type,
            nullable,
            metadata,
            comment,
        });
    }
    Ok(columns)
}

/// Adds the columns of a table-level `PRIMARY KEY (...)` to `primary_key`;
/// other constraints are not supported.
fn primary_key_constraints(
    constraints: Vec<ast::TableConstraint>,
    span: Span,
    primary_key: &mut Vec<Ident>,
) -> Result<()> {
    for k in constraints {
        match k {
            ast::TableConstraint::PrimaryKey(pk) => {
                primary_key.extend(pk.columns.iter().filter_map(|c| match &c.column.expr {
                    Expr::Identifier(i) => Some(i.clone()),
                    _ => None,
                }));
            }
            other => {
                return Err(syntax(
                    format!("table constraint {other} is not supported"),
                    span,
                ))
            }
        }
    }
    Ok(())
}

/// `WITH ('key' = 'value', ...)`, in order.
fn table_options(
    table_options: ast::CreateTableOptions,
    span: Span,
) -> Result<Vec<(String, String)>> {
    let list = match table_options {
        ast::CreateTableOptions::None => Vec::new(),
        ast::CreateTableOptions::With(v) => v,
        _ => {
            return Err(syntax(
                "this form of table options (use WITH ('key' = 'value')) is not supported",
                span,
            ))
        }
    };
    let mut options = Vec::new();
    for o in list {
        match o {
            ast::SqlOption::KeyValue { key, value } => {
                let v = option_text(&value).ok_or_else(|| {
                    syntax(
                        format!("option '{}' needs a quoted string value", key.value),
                        key.span,
                    )
                })?;
                options.push((key.value, v));
            }
            other => return Err(syntax(format!("option {other} is not supported"), span)),
        }
    }
    Ok(options)
}

/// The text of an option or SET value: a quoted string, a number, a
/// boolean or a bare word.
fn option_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                Some(s.clone())
            }
            ast::Value::Number(n, _) => Some(n.clone()),
            ast::Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        Expr::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}
