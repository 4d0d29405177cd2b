//! The Flink SQL dialect: `sqlparser` plus the syntax Flink adds.
//!
//! Most statements are parsed by `sqlparser` with [`FlinkDialect`], which
//! accepts aggregate FILTER clauses, `FOR SYSTEM_TIME AS OF`, backquoted
//! identifiers, and `TABLE name [PARTITION BY cols]` as an argument of the
//! window table functions (it becomes a call `TABLE(name, cols...)`).
//! What sqlparser has no hook for is handled on the token stream before it
//! parses, keeping every token's original position so errors still point
//! into the user's text:
//!
//! * `WATERMARK FOR col AS expr`, computed columns `name AS PROCTIME()` and
//!   `METADATA` column clauses inside `CREATE TABLE (...)`, and a
//!   `PARTITIONED BY (...)` after it, are cut out and parsed on their own;
//! * an expression deeper than [`MAX_EXPRESSION_DEPTH`] is refused
//!   before any tree is built (`depth`), so no later walk runs out of
//!   stack;
//! * `SHOW JOBS` and `STOP JOB 'id' [WITH SAVEPOINT]` are recognised
//!   before sqlparser sees them, and so are the access-control statements
//!   (`governance`: roles, GRANT, REVOKE, SHOW GRANTS).
//!
//! The files of this folder: `dialect` (the [`FlinkDialect`]), `statement`
//! (the statement types and how they print), `tokens` (token helpers and
//! positioned syntax errors), `table_extras` (the CREATE TABLE parts cut
//! out of the token stream) and `convert` (sqlparser's AST to ours).

mod alter;
mod convert;
mod depth;
mod dialect;
pub(crate) mod expect;
mod governance;
mod statement;
mod table_extras;
mod tokens;

#[cfg(test)]
mod tests;

use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Tokenizer};

use crate::error::{Position, Result, SqlError};
use convert::convert;
use table_extras::{cut_table_extras, TableExtras};
use tokens::{from_parser_error, is_trivia, is_word, split_statements, syntax};

pub use alter::{AlterAction, AlterTable};
pub use depth::MAX_EXPRESSION_DEPTH;
pub use dialect::{call_expr, FlinkDialect, TABLE_ARGUMENT};
pub use expect::ExpectDecl;
pub use governance::{Governance, GrantTarget, GranteeName, Named, ObjectKind};
pub use statement::{ColumnDecl, CreateFunction, CreateTable, Located, MetadataDecl, Statement};

/// Parses a script of `;`-separated statements.
pub fn parse_sql(sql: &str) -> Result<Vec<Located>> {
    let dialect = FlinkDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| SqlError::Syntax {
            message: e.message.clone(),
            position: Position::new(e.location.line, e.location.column),
        })?;
    let mut out = Vec::new();
    let mut pieces = split_statements(tokens).into_iter();
    while let Some(stmt_tokens) = pieces.next() {
        let position = first_position(&stmt_tokens);
        let statement = match statement_set_start(&stmt_tokens) {
            Some((explain, after_begin)) => {
                let set = statement_set(after_begin, &mut pieces, position)?;
                if explain {
                    Statement::Explain(Box::new(set))
                } else {
                    set
                }
            }
            None => parse_one(stmt_tokens)?,
        };
        out.push(Located {
            statement,
            position,
        });
    }
    Ok(out)
}

/// Where the first significant token of `tokens` is.
fn first_position(tokens: &[TokenWithSpan]) -> Position {
    tokens
        .iter()
        .find(|t| !is_trivia(&t.token))
        .map(|t| Position::of(t.span))
        .unwrap_or_default()
}

/// When `tokens` open a statement set (`EXECUTE STATEMENT SET BEGIN ...`
/// or `BEGIN STATEMENT SET`, either after `EXPLAIN`), whether `EXPLAIN`
/// came first and the tokens after the opening words.
fn statement_set_start(tokens: &[TokenWithSpan]) -> Option<(bool, Vec<TokenWithSpan>)> {
    // EXPLAIN, four opening words and the first token after them.
    let mut significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !is_trivia(&tokens[i].token))
        .take(6)
        .collect();
    let explain = significant
        .first()
        .is_some_and(|&i| is_word(&tokens[i], "EXPLAIN"));
    if explain {
        significant.remove(0);
    }
    let words = |list: &[&str]| {
        list.len() <= significant.len()
            && list
                .iter()
                .zip(&significant)
                .all(|(w, &i)| is_word(&tokens[i], w))
    };
    let opening = if words(&["EXECUTE", "STATEMENT", "SET", "BEGIN"]) {
        4
    } else if words(&["BEGIN", "STATEMENT", "SET"]) {
        3
    } else {
        return None;
    };
    let rest = significant.get(opening).map_or(tokens.len(), |&i| i);
    Some((explain, tokens[rest..].to_vec()))
}

/// The INSERTs of a statement set up to its `END`: the first may share a
/// piece with the opening words, the others are the following pieces.
fn statement_set(
    first: Vec<TokenWithSpan>,
    pieces: &mut impl Iterator<Item = Vec<TokenWithSpan>>,
    opened: Position,
) -> Result<Statement> {
    let mut inserts = Vec::new();
    let mut next = Some(first).filter(|t| t.iter().any(|t| !is_trivia(&t.token)));
    loop {
        let Some(piece) = next.take().or_else(|| pieces.next()) else {
            return Err(SqlError::Syntax {
                message: format!(
                    "the statement set opened at line {}, column {} has no END",
                    opened.line, opened.column
                ),
                position: opened,
            });
        };
        let significant: Vec<&TokenWithSpan> =
            piece.iter().filter(|t| !is_trivia(&t.token)).collect();
        if significant.len() == 1 && is_word(significant[0], "END") {
            break;
        }
        let position = first_position(&piece);
        let statement = parse_one(piece)?;
        if !matches!(statement, Statement::Insert { .. }) {
            return Err(SqlError::Syntax {
                message: format!(
                    "a statement set holds only INSERT INTO statements, each ended by ';', and \
                     closes with END; found {}",
                    statement.kind()
                ),
                position,
            });
        }
        inserts.push(Located {
            statement,
            position,
        });
    }
    if inserts.is_empty() {
        return Err(SqlError::Syntax {
            message: "the statement set holds no INSERT INTO statement".into(),
            position: opened,
        });
    }
    Ok(Statement::StatementSet(inserts))
}

/// Parses exactly one statement.
pub fn parse_statement(sql: &str) -> Result<Statement> {
    let mut all = parse_sql(sql)?;
    match all.len() {
        1 => Ok(all.remove(0).statement),
        n => Err(SqlError::Syntax {
            message: format!("expected one statement, found {n}"),
            position: Position::new(1, 1),
        }),
    }
}

/// Parses the tokens of one statement: Runnel's own statements here, the
/// rest with sqlparser after the Flink parts of a CREATE TABLE are cut out.
fn parse_one(tokens: Vec<TokenWithSpan>) -> Result<Statement> {
    depth::check_depth(&tokens)?;
    let significant: Vec<&TokenWithSpan> = tokens.iter().filter(|t| !is_trivia(&t.token)).collect();
    let first_span = significant.first().map(|t| t.span).unwrap_or(Span::empty());
    if let Some(own) = job_statement(&significant, first_span) {
        return own;
    }
    if let Some(g) = governance::governance_statement(&significant) {
        return g.map(|g| Statement::Governance(Box::new(g)));
    }
    if let Some(a) = alter::alter_statement(&significant) {
        return a.map(|a| Statement::Alter(Box::new(a)));
    }
    // EXPLAIN of our own statements is not needed: sqlparser handles
    // EXPLAIN SELECT / EXPLAIN INSERT.
    let is_create_table = significant.len() >= 2
        && is_word(significant[0], "CREATE")
        && (is_word(significant[1], "TABLE")
            || (is_word(significant[1], "TEMPORARY")
                && significant.get(2).is_some_and(|t| is_word(t, "TABLE"))));
    // Errors at the end of the input carry no location: point after the last token.
    // sqlparser reads `CREATE FUNCTION ... RETURN expr` only in its generic
    // dialect; the function's body is a plain expression, which both read
    // alike.
    let is_create_function = {
        let words: Vec<&&TokenWithSpan> = significant
            .iter()
            .filter(|t| !is_word(t, "OR") && !is_word(t, "REPLACE") && !is_word(t, "TEMPORARY"))
            .take(2)
            .collect();
        words.len() == 2 && is_word(words[0], "CREATE") && is_word(words[1], "FUNCTION")
    };
    if is_create_function {
        // Flink's `CREATE FUNCTION f AS 'com.example.F'` names Java code.
        let at = significant.iter().position(|t| is_word(t, "FUNCTION"));
        if let Some(as_word) = at
            .and_then(|i| significant.get(i + 2))
            .filter(|t| is_word(t, "AS"))
        {
            return Err(syntax(
                "functions implemented in another language (AS '...') are not supported; a function is written CREATE FUNCTION name(param TYPE, ...) RETURNS TYPE RETURN expression",
                as_word.span,
            ));
        }
    }
    let end_span = significant
        .last()
        .map_or(first_span, |t| Span::new(t.span.end, t.span.end));
    let (tokens, extras) = if is_create_table {
        cut_table_extras(tokens)?
    } else {
        let (tokens, expectations) = expect::cut_view_expectations(tokens)?;
        (
            tokens,
            TableExtras {
                expectations,
                ..TableExtras::default()
            },
        )
    };
    let generic = sqlparser::dialect::GenericDialect {};
    let dialect = FlinkDialect;
    let mut parser = if is_create_function {
        Parser::new(&generic).with_tokens_with_locations(tokens)
    } else {
        Parser::new(&dialect).with_tokens_with_locations(tokens)
    };
    let stmt = parser
        .parse_statement()
        .map_err(|e| from_parser_error(e, end_span))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(syntax(
            format!("expected the end of the statement, found {}", next.token),
            next.span,
        ));
    }
    convert(stmt, extras, first_span)
}

/// `SHOW JOBS` and `STOP JOB 'id' [WITH SAVEPOINT]`, which sqlparser does
/// not know; `None` for any other statement.
fn job_statement(significant: &[&TokenWithSpan], first_span: Span) -> Option<Result<Statement>> {
    if significant.len() == 2 && is_word(significant[0], "SHOW") && is_word(significant[1], "JOBS")
    {
        return Some(Ok(Statement::ShowJobs));
    }
    if !(significant.len() >= 2
        && is_word(significant[0], "STOP")
        && is_word(significant[1], "JOB"))
    {
        return None;
    }
    let id = match significant.get(2).map(|t| &t.token) {
        Some(Token::SingleQuotedString(s)) => s.clone(),
        _ => {
            return Some(Err(syntax(
                "expected a quoted job id after STOP JOB",
                significant.get(2).map_or(first_span, |t| t.span),
            )))
        }
    };
    let savepoint = match &significant[3..] {
        [] => false,
        [w, s] if is_word(w, "WITH") && is_word(s, "SAVEPOINT") => true,
        [t, ..] => {
            return Some(Err(syntax(
                "expected WITH SAVEPOINT or the end of the statement",
                t.span,
            )))
        }
    };
    Some(Ok(Statement::StopJob { id, savepoint }))
}
