//! Tags, comments, column masks and row filters, in Databricks' syntax:
//!
//! * `ALTER TABLE t [ALTER COLUMN c] SET TAGS ('k' = 'v', ...)` and
//!   `UNSET TAGS ('k', ...)` (also `ALTER VIEW`);
//! * `ALTER TABLE t ALTER COLUMN c SET MASK f` / `DROP MASK`;
//! * `ALTER TABLE t SET ROW FILTER f ON (c, ...)` / `DROP ROW FILTER`;
//! * `ALTER TABLE t ALTER COLUMN c COMMENT 'text'` and `COMMENT ON TABLE
//!   t | COLUMN t.c IS 'text' | NULL`.

use std::fmt;

use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::governance::{Cursor, Named};
use super::tokens::{is_word, syntax};
use crate::error::Result;

/// What an ALTER TABLE (or COMMENT ON) changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterAction {
    /// `SET TAGS (...)`.
    SetTags(Vec<(String, String)>),
    /// `UNSET TAGS (...)`.
    UnsetTags(Vec<String>),
    /// `SET MASK f` (a column).
    SetMask(Named),
    /// `DROP MASK` (a column).
    DropMask,
    /// `SET ROW FILTER f ON (cols)`.
    SetRowFilter(Named, Vec<Named>),
    /// `DROP ROW FILTER`.
    DropRowFilter,
    /// A comment; `None` removes it.
    Comment(Option<String>),
    /// `ADD CONSTRAINT name EXPECT (...) ...`.
    AddExpectation(Box<super::expect::ExpectDecl>),
    /// `DROP CONSTRAINT name`.
    DropExpectation(Named),
}

/// `ALTER TABLE` / `ALTER VIEW` / `COMMENT ON`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterTable {
    /// The table or view.
    pub table: Named,
    /// The column, for column tags, masks and comments.
    pub column: Option<Named>,
    /// What changes.
    pub action: AlterAction,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl fmt::Display for AlterTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let AlterAction::Comment(text) = &self.action {
            let text = text.as_deref().map_or("NULL".to_string(), quote);
            return match &self.column {
                Some(c) => write!(f, "COMMENT ON COLUMN {}.{c} IS {text}", self.table),
                None => write!(f, "COMMENT ON TABLE {} IS {text}", self.table),
            };
        }
        write!(f, "ALTER TABLE {}", self.table)?;
        if let Some(c) = &self.column {
            write!(f, " ALTER COLUMN {c}")?;
        }
        match &self.action {
            AlterAction::SetTags(tags) => {
                let t: Vec<String> = tags
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                write!(f, " SET TAGS ({})", t.join(", "))
            }
            AlterAction::UnsetTags(keys) => {
                let k: Vec<String> = keys.iter().map(|k| quote(k)).collect();
                write!(f, " UNSET TAGS ({})", k.join(", "))
            }
            AlterAction::SetMask(func) => write!(f, " SET MASK {func}"),
            AlterAction::DropMask => write!(f, " DROP MASK"),
            AlterAction::SetRowFilter(func, cols) => {
                let c: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
                write!(f, " SET ROW FILTER {func} ON ({})", c.join(", "))
            }
            AlterAction::DropRowFilter => write!(f, " DROP ROW FILTER"),
            AlterAction::AddExpectation(e) => write!(f, " ADD {e}"),
            AlterAction::DropExpectation(n) => write!(f, " DROP CONSTRAINT {n}"),
            AlterAction::Comment(_) => Ok(()),
        }
    }
}

/// An ALTER TABLE / ALTER VIEW / COMMENT ON statement from its
/// significant tokens; `None` for other statements.
pub(super) fn alter_statement(t: &[&TokenWithSpan]) -> Option<Result<AlterTable>> {
    let w = |i: usize, s: &str| t.get(i).is_some_and(|tok| is_word(tok, s));
    if w(0, "ALTER") && (w(1, "TABLE") || w(1, "VIEW")) {
        return Some(alter(t));
    }
    if w(0, "COMMENT") && w(1, "ON") {
        return Some(comment_on(t));
    }
    None
}

fn alter(t: &[&TokenWithSpan]) -> Result<AlterTable> {
    let mut c = Cursor { t, i: 2 };
    let table = c.name("a table name", true)?;
    let column = if c.eat("ALTER") {
        c.eat("COLUMN");
        Some(c.name("a column name", true)?)
    } else {
        None
    };
    let action = if column.is_none() && c.peek_word("ADD") {
        if !c.t.get(c.i + 1).is_some_and(|t| is_word(t, "CONSTRAINT")) {
            c.i += 1;
            return Err(syntax(
                "Runnel's ALTER TABLE adds only expectations: ADD CONSTRAINT name EXPECT (predicate) [ON VIOLATION ...]",
                c.span(),
            ));
        }
        let refs = &c.t[c.i + 1..];
        c.i = c.t.len();
        AlterAction::AddExpectation(Box::new(super::expect::parse_expectation(refs)?))
    } else if column.is_none()
        && c.peek_word("DROP")
        && c.t.get(c.i + 1).is_some_and(|t| is_word(t, "CONSTRAINT"))
    {
        c.i += 2;
        AlterAction::DropExpectation(c.name("the constraint's name", true)?)
    } else if c.eat("SET") {
        if c.eat("TAGS") {
            AlterAction::SetTags(
                tag_list(&mut c, true)?
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect(),
            )
        } else if column.is_some() && c.eat("MASK") {
            AlterAction::SetMask(c.name("a mask function's name", true)?)
        } else if column.is_none() && c.eat("ROW") {
            c.expect("FILTER", "FILTER after SET ROW")?;
            let func = c.name("a row filter function's name", true)?;
            c.expect("ON", "ON (columns) after the row filter's function")?;
            let cols = paren_names(&mut c)?;
            AlterAction::SetRowFilter(func, cols)
        } else {
            return Err(syntax(
                if column.is_some() {
                    "expected TAGS or MASK after SET"
                } else {
                    "expected TAGS or ROW FILTER after SET"
                },
                c.span(),
            ));
        }
    } else if c.eat("UNSET") {
        c.expect("TAGS", "TAGS after UNSET")?;
        AlterAction::UnsetTags(
            tag_list(&mut c, false)?
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
        )
    } else if c.eat("DROP") {
        if column.is_some() && c.eat("MASK") {
            AlterAction::DropMask
        } else if column.is_none() && c.eat("ROW") {
            c.expect("FILTER", "FILTER after DROP ROW")?;
            AlterAction::DropRowFilter
        } else {
            return Err(syntax(
                if column.is_some() {
                    "expected MASK after DROP"
                } else {
                    "expected ROW FILTER after DROP"
                },
                c.span(),
            ));
        }
    } else if column.is_some() && c.eat("COMMENT") {
        AlterAction::Comment(comment_text(&mut c)?)
    } else {
        return Err(syntax(
            "expected SET TAGS, UNSET TAGS, ALTER COLUMN, SET ROW FILTER or DROP ROW FILTER (Runnel's ALTER TABLE changes tags, comments, masks and row filters)",
            c.span(),
        ));
    };
    c.end()?;
    Ok(AlterTable {
        table,
        column,
        action,
    })
}

/// `COMMENT ON TABLE t IS '...'` / `COMMENT ON COLUMN t.c IS '...'`.
fn comment_on(t: &[&TokenWithSpan]) -> Result<AlterTable> {
    let mut c = Cursor { t, i: 2 };
    let on_column = if c.eat("TABLE") || c.eat("VIEW") {
        false
    } else if c.eat("COLUMN") {
        true
    } else {
        return Err(syntax(
            "expected TABLE, VIEW or COLUMN after COMMENT ON",
            c.span(),
        ));
    };
    let name = c.name(
        if on_column {
            "table.column"
        } else {
            "a table name"
        },
        true,
    )?;
    let (table, column) = if on_column {
        let Some((table, column)) = name.name.rsplit_once('.') else {
            return Err(syntax(
                "COMMENT ON COLUMN names the column as table.column",
                c.span(),
            ));
        };
        (
            Named {
                name: table.to_string(),
                position: name.position,
            },
            Some(Named {
                name: column.to_string(),
                position: name.position,
            }),
        )
    } else {
        (name, None)
    };
    c.expect("IS", "IS 'text' (or IS NULL)")?;
    let text = if c.eat("NULL") {
        None
    } else {
        comment_text(&mut c)?
    };
    c.end()?;
    Ok(AlterTable {
        table,
        column,
        action: AlterAction::Comment(text),
    })
}

fn string(c: &mut Cursor<'_>, what: &str) -> Result<String> {
    match c.t.get(c.i).map(|t| &t.token) {
        Some(Token::SingleQuotedString(s)) => {
            c.i += 1;
            Ok(s.clone())
        }
        _ => Err(syntax(
            format!("expected {what} as a quoted string"),
            c.span(),
        )),
    }
}

fn comment_text(c: &mut Cursor<'_>) -> Result<Option<String>> {
    Ok(Some(string(c, "the comment")?))
}

fn punct(c: &mut Cursor<'_>, token: &Token, what: &str) -> Result<()> {
    if c.t.get(c.i).map(|t| &t.token) == Some(token) {
        c.i += 1;
        Ok(())
    } else {
        Err(syntax(format!("expected {what}"), c.span()))
    }
}

/// `('k' = 'v', ...)` (`with_values`) or `('k', ...)`.
fn tag_list(c: &mut Cursor<'_>, with_values: bool) -> Result<Vec<(String, Option<String>)>> {
    punct(c, &Token::LParen, "( before the tags")?;
    let mut out = Vec::new();
    loop {
        let key = string(c, "a tag name")?;
        let value = if with_values {
            punct(c, &Token::Eq, "= and the tag's value")?;
            Some(string(c, "the tag's value")?)
        } else {
            None
        };
        out.push((key, value));
        if c.t.get(c.i).map(|t| &t.token) == Some(&Token::Comma) {
            c.i += 1;
            continue;
        }
        punct(c, &Token::RParen, ", or ) after a tag")?;
        return Ok(out);
    }
}

fn paren_names(c: &mut Cursor<'_>) -> Result<Vec<Named>> {
    punct(c, &Token::LParen, "( before the columns")?;
    let mut out = vec![c.name("a column name", true)?];
    while c.t.get(c.i).map(|t| &t.token) == Some(&Token::Comma) {
        c.i += 1;
        out.push(c.name("a column name", true)?);
    }
    punct(c, &Token::RParen, ") after the columns")?;
    Ok(out)
}
