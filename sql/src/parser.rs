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
//! * `WATERMARK FOR col AS expr` and computed columns `name AS PROCTIME()`
//!   inside `CREATE TABLE (...)` are cut out and parsed on their own;
//! * `SHOW JOBS` and `STOP JOB 'id' [WITH SAVEPOINT]` are recognised
//!   before sqlparser sees them.

use std::fmt;

use sqlparser::ast::{
    self, ColumnOption, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName,
};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Tokenizer, Word};

use crate::error::{Position, Result, SqlError};

/// sqlparser's generic dialect with Flink's additions.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect {}.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect {}.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser<'_>) -> Option<Result<Expr, ParserError>> {
        // `TABLE name [PARTITION BY a | PARTITION BY (a, b)]` as the first
        // argument of TUMBLE/HOP/CUMULATE/SESSION.
        if !parser.peek_keyword(Keyword::TABLE) {
            return None;
        }
        if !matches!(parser.peek_nth_token(1).token, Token::Word(_)) {
            return None;
        }
        Some(parse_table_argument(parser))
    }
}

fn parse_table_argument(parser: &mut Parser<'_>) -> Result<Expr, ParserError> {
    parser.expect_keyword(Keyword::TABLE)?;
    let name = parser.parse_object_name(false)?;
    let mut args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(
        Expr::CompoundIdentifier(
            name.0
                .iter()
                .filter_map(|p| p.as_ident().cloned())
                .collect(),
        ),
    ))];
    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        let keys = if parser.consume_token(&Token::LParen) {
            let keys = parser.parse_comma_separated(Parser::parse_expr)?;
            parser.expect_token(&Token::RParen)?;
            keys
        } else {
            vec![parser.parse_expr()?]
        };
        args.extend(
            keys.into_iter()
                .map(|k| FunctionArg::Unnamed(FunctionArgExpr::Expr(k))),
        );
    }
    Ok(Expr::Function(ast::Function {
        name: ObjectName::from(vec![Ident::new(TABLE_ARGUMENT)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

/// Name of the call that stands for a `TABLE name` argument.
pub const TABLE_ARGUMENT: &str = "TABLE";

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
    /// `STOP JOB 'id' [WITH SAVEPOINT]`.
    StopJob {
        /// Job id.
        id: String,
        /// `WITH SAVEPOINT`.
        savepoint: bool,
    },
}

/// One statement with where it starts in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// The statement.
    pub statement: Statement,
    /// Its first token's position.
    pub position: Position,
}

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
    for stmt_tokens in split_statements(tokens) {
        let position = stmt_tokens
            .iter()
            .find(|t| !is_trivia(&t.token))
            .map(|t| Position::of(t.span))
            .unwrap_or_default();
        out.push(Located {
            statement: parse_one(stmt_tokens)?,
            position,
        });
    }
    Ok(out)
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

fn is_trivia(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

/// Splits at top-level semicolons, dropping empty statements.
fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for t in tokens {
        match t.token {
            Token::SemiColon => {
                if cur.iter().any(|t: &TokenWithSpan| !is_trivia(&t.token)) {
                    out.push(std::mem::take(&mut cur));
                } else {
                    cur.clear();
                }
            }
            Token::EOF => {}
            _ => cur.push(t),
        }
    }
    if cur.iter().any(|t| !is_trivia(&t.token)) {
        out.push(cur);
    }
    out
}

fn word(t: &TokenWithSpan) -> Option<&Word> {
    match &t.token {
        Token::Word(w) => Some(w),
        _ => None,
    }
}

fn is_word(t: &TokenWithSpan, s: &str) -> bool {
    word(t).is_some_and(|w| w.quote_style.is_none() && w.value.eq_ignore_ascii_case(s))
}

fn syntax(message: impl Into<String>, span: Span) -> SqlError {
    SqlError::Syntax {
        message: message.into(),
        position: Position::of(span),
    }
}

/// Turns a sqlparser error ("... at Line: 3, Column: 7") into a positioned one.
fn from_parser_error(e: ParserError, fallback: Span) -> SqlError {
    let text = match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => "statement is nested too deeply".to_string(),
    };
    let (message, position) = match text.rfind(" at Line: ") {
        Some(i) => {
            let tail = &text[i + " at Line: ".len()..];
            let mut parts = tail.split(", Column: ");
            let line = parts.next().and_then(|l| l.trim().parse().ok());
            let col = parts.next().and_then(|c| c.trim().parse().ok());
            match (line, col) {
                // sqlparser reports EOF at a made-up location; use the fallback.
                (Some(l), Some(c)) if !text.contains("found: EOF") && l > 0 => {
                    (text[..i].to_string(), Position::new(l, c))
                }
                (Some(_), Some(_)) => (text[..i].to_string(), Position::of(fallback)),
                _ => (text.clone(), Position::of(fallback)),
            }
        }
        None => (text, Position::of(fallback)),
    };
    SqlError::Syntax { message, position }
}

fn parse_one(tokens: Vec<TokenWithSpan>) -> Result<Statement> {
    let significant: Vec<&TokenWithSpan> = tokens.iter().filter(|t| !is_trivia(&t.token)).collect();
    let first_span = significant.first().map(|t| t.span).unwrap_or(Span::empty());
    // SHOW JOBS
    if significant.len() == 2 && is_word(significant[0], "SHOW") && is_word(significant[1], "JOBS")
    {
        return Ok(Statement::ShowJobs);
    }
    // STOP JOB 'id' [WITH SAVEPOINT]
    if significant.len() >= 2 && is_word(significant[0], "STOP") && is_word(significant[1], "JOB") {
        let id = match significant.get(2).map(|t| &t.token) {
            Some(Token::SingleQuotedString(s)) => s.clone(),
            _ => {
                return Err(syntax(
                    "expected a quoted job id after STOP JOB",
                    significant.get(2).map_or(first_span, |t| t.span),
                ))
            }
        };
        let savepoint = match &significant[3..] {
            [] => false,
            [w, s] if is_word(w, "WITH") && is_word(s, "SAVEPOINT") => true,
            [t, ..] => {
                return Err(syntax(
                    "expected WITH SAVEPOINT or the end of the statement",
                    t.span,
                ))
            }
        };
        return Ok(Statement::StopJob { id, savepoint });
    }
    // EXPLAIN of our own statements is not needed: sqlparser handles
    // EXPLAIN SELECT / EXPLAIN INSERT.
    let is_create_table = significant.len() >= 2
        && is_word(significant[0], "CREATE")
        && (is_word(significant[1], "TABLE")
            || (is_word(significant[1], "TEMPORARY")
                && significant.get(2).is_some_and(|t| is_word(t, "TABLE"))));
    // Errors at the end of the input carry no location: point after the last token.
    let end_span = significant
        .last()
        .map_or(first_span, |t| Span::new(t.span.end, t.span.end));
    let (tokens, extras) = if is_create_table {
        cut_table_extras(tokens)?
    } else {
        (tokens, TableExtras::default())
    };
    let dialect = FlinkDialect;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
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

/// What [`cut_table_extras`] takes out of a CREATE TABLE.
#[derive(Debug, Default)]
struct TableExtras {
    watermark: Option<(Ident, Expr)>,
    proctime: Vec<Ident>,
    partitioned_by: Vec<Ident>,
    /// Column name (lower case) -> its METADATA clause.
    metadata: Vec<(String, MetadataDecl)>,
}

/// Removes `WATERMARK FOR ... AS ...` and `name AS PROCTIME()` elements from
/// the column list of a CREATE TABLE (with the comma before them) and parses
/// them separately.
fn cut_table_extras(tokens: Vec<TokenWithSpan>) -> Result<(Vec<TokenWithSpan>, TableExtras)> {
    let mut extras = TableExtras::default();
    // Element boundaries inside the top-level parentheses.
    let mut depth = 0usize;
    let mut elements: Vec<(usize, usize)> = Vec::new(); // token index ranges
    let mut start: Option<usize> = None;
    let mut list_done = false;
    let mut list_end = None;
    for (i, t) in tokens.iter().enumerate() {
        if list_done {
            break;
        }
        match t.token {
            Token::LParen => {
                depth += 1;
                if depth == 1 {
                    start = Some(i + 1);
                    continue;
                }
            }
            Token::RParen => {
                if depth == 1 {
                    if let Some(s) = start.take() {
                        elements.push((s, i));
                    }
                    list_done = true;
                    list_end = Some(i);
                }
                depth = depth.saturating_sub(1);
            }
            Token::Comma if depth == 1 => {
                if let Some(s) = start {
                    elements.push((s, i));
                }
                start = Some(i + 1);
            }
            _ => {}
        }
    }
    let mut remove: Vec<(usize, usize)> = Vec::new();
    // Parts of elements to drop without a comma (METADATA clauses).
    let mut cut_ranges: Vec<(usize, usize)> = Vec::new();
    for &(s, e) in &elements {
        let sig: Vec<usize> = (s..e).filter(|&i| !is_trivia(&tokens[i].token)).collect();
        let Some(&first) = sig.first() else { continue };
        if is_word(&tokens[first], "WATERMARK")
            && sig.get(1).is_some_and(|&i| is_word(&tokens[i], "FOR"))
        {
            let col_tok = sig.get(2).map(|&i| &tokens[i]);
            let col = match col_tok.and_then(word) {
                Some(w) => Ident {
                    value: w.value.clone(),
                    quote_style: w.quote_style,
                    span: col_tok.map_or(Span::empty(), |t| t.span),
                },
                None => {
                    return Err(syntax(
                        "expected a column name after WATERMARK FOR",
                        col_tok.map_or(tokens[first].span, |t| t.span),
                    ))
                }
            };
            if !sig.get(3).is_some_and(|&i| is_word(&tokens[i], "AS")) {
                return Err(syntax(
                    "expected AS after WATERMARK FOR column",
                    sig.get(3).map_or(tokens[first].span, |&i| tokens[i].span),
                ));
            }
            let expr_tokens: Vec<TokenWithSpan> =
                sig[4..].iter().map(|&i| tokens[i].clone()).collect();
            if expr_tokens.is_empty() {
                return Err(syntax(
                    "expected the watermark expression after AS",
                    tokens[sig[3]].span,
                ));
            }
            let expr = parse_expr_tokens(expr_tokens, tokens[sig[3]].span)?;
            if extras.watermark.is_some() {
                return Err(syntax(
                    "a table can have only one WATERMARK",
                    tokens[first].span,
                ));
            }
            extras.watermark = Some((col, expr));
            remove.push((s, e));
        } else if sig.len() >= 5
            && word(&tokens[first]).is_some()
            && is_word(&tokens[sig[1]], "AS")
            && is_word(&tokens[sig[2]], "PROCTIME")
            && matches!(tokens[sig[3]].token, Token::LParen)
            && matches!(tokens[sig[4]].token, Token::RParen)
            && sig.len() == 5
        {
            let w = word(&tokens[first]).map(|w| (w.value.clone(), w.quote_style));
            if let Some((value, quote_style)) = w {
                extras.proctime.push(Ident {
                    value,
                    quote_style,
                    span: tokens[first].span,
                });
            }
            remove.push((s, e));
        } else if let Some(k) = sig
            .iter()
            .skip(2)
            .position(|&i| is_word(&tokens[i], "METADATA"))
        {
            let at = sig[k + 2];
            let decl = parse_metadata_clause(&tokens, &sig[k + 2..])?;
            if let Some(w) = word(&tokens[first]) {
                extras.metadata.push((w.value.to_lowercase(), decl));
            }
            cut_ranges.push((at, e));
        }
    }
    let partition_clause = match list_end {
        Some(end) => cut_partitioned_by(&tokens, end + 1, &mut extras)?,
        None => None,
    };
    if remove.is_empty() && partition_clause.is_none() && cut_ranges.is_empty() {
        return Ok((tokens, extras));
    }
    // Drop each removed element together with the comma before it (or after
    // it, when it is the first element).
    let mut drop = vec![false; tokens.len()];
    for (s, e) in partition_clause.into_iter().chain(cut_ranges) {
        for d in drop.iter_mut().take(e).skip(s) {
            *d = true;
        }
    }
    for &(s, e) in &remove {
        for d in drop.iter_mut().take(e).skip(s) {
            *d = true;
        }
        if s > 0 && matches!(tokens[s - 1].token, Token::Comma) {
            drop[s - 1] = true;
        } else if e < tokens.len() && matches!(tokens[e].token, Token::Comma) {
            drop[e] = true;
        }
    }
    let kept = tokens
        .into_iter()
        .zip(drop)
        .filter(|(_, d)| !d)
        .map(|(t, _)| t)
        .collect();
    Ok((kept, extras))
}

/// Parses `METADATA [FROM 'key'] [VIRTUAL]`; `sig` are the significant
/// token indexes from `METADATA` to the end of the column element.
fn parse_metadata_clause(tokens: &[TokenWithSpan], sig: &[usize]) -> Result<MetadataDecl> {
    let mut decl = MetadataDecl {
        key: None,
        is_virtual: false,
    };
    let mut k = 1;
    if sig.get(k).is_some_and(|&i| is_word(&tokens[i], "FROM")) {
        match sig.get(k + 1).map(|&i| &tokens[i].token) {
            Some(Token::SingleQuotedString(key)) => decl.key = Some(key.clone()),
            _ => {
                return Err(syntax(
                    "expected a quoted metadata key after METADATA FROM, as in METADATA FROM 'timestamp'",
                    sig.get(k + 1).map_or(tokens[sig[k]].span, |&i| tokens[i].span),
                ))
            }
        }
        k += 2;
    }
    if sig.get(k).is_some_and(|&i| is_word(&tokens[i], "VIRTUAL")) {
        decl.is_virtual = true;
        k += 1;
    }
    if let Some(&i) = sig.get(k) {
        return Err(syntax(
            format!(
                "expected FROM 'key', VIRTUAL or the end of the column after METADATA, found {}",
                tokens[i].token
            ),
            tokens[i].span,
        ));
    }
    Ok(decl)
}

/// Parses `PARTITIONED BY (a, b)` when it follows the column list (from
/// token `from` on) into `extras`, and returns the token range it spans.
fn cut_partitioned_by(
    tokens: &[TokenWithSpan],
    from: usize,
    extras: &mut TableExtras,
) -> Result<Option<(usize, usize)>> {
    let sig: Vec<usize> = (from..tokens.len())
        .filter(|&i| !is_trivia(&tokens[i].token))
        .collect();
    let Some(&first) = sig.first() else {
        return Ok(None);
    };
    if !is_word(&tokens[first], "PARTITIONED") {
        return Ok(None);
    }
    if !sig.get(1).is_some_and(|&i| is_word(&tokens[i], "BY")) {
        return Err(syntax(
            "expected BY after PARTITIONED",
            sig.get(1).map_or(tokens[first].span, |&i| tokens[i].span),
        ));
    }
    let open = sig.get(2).copied();
    if !open.is_some_and(|i| matches!(tokens[i].token, Token::LParen)) {
        return Err(syntax(
            "expected a parenthesized column list after PARTITIONED BY",
            open.map_or(tokens[sig[1]].span, |i| tokens[i].span),
        ));
    }
    let mut k = 3;
    loop {
        let Some(&i) = sig.get(k) else {
            return Err(syntax(
                "unterminated PARTITIONED BY column list",
                tokens[sig[k - 1]].span,
            ));
        };
        let Some(w) = word(&tokens[i]) else {
            return Err(syntax(
                format!(
                    "expected a column name in PARTITIONED BY, found {}",
                    tokens[i].token
                ),
                tokens[i].span,
            ));
        };
        extras.partitioned_by.push(Ident {
            value: w.value.clone(),
            quote_style: w.quote_style,
            span: tokens[i].span,
        });
        match sig.get(k + 1).map(|&j| (&tokens[j].token, j)) {
            Some((Token::Comma, _)) => k += 2,
            Some((Token::RParen, j)) => return Ok(Some((first, j + 1))),
            Some((other, j)) => {
                return Err(syntax(
                    format!("expected ',' or ')' in PARTITIONED BY, found {other}"),
                    tokens[j].span,
                ))
            }
            None => {
                return Err(syntax(
                    "unterminated PARTITIONED BY column list",
                    tokens[i].span,
                ))
            }
        }
    }
}

fn parse_expr_tokens(tokens: Vec<TokenWithSpan>, fallback: Span) -> Result<Expr> {
    let dialect = FlinkDialect;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let expr = parser
        .parse_expr()
        .map_err(|e| from_parser_error(e, fallback))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(syntax(
            format!("unexpected {} in the watermark expression", next.token),
            next.span,
        ));
    }
    Ok(expr)
}

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

fn convert(stmt: ast::Statement, extras: TableExtras, span: Span) -> Result<Statement> {
    use ast::Statement as S;
    let unsupported = |what: &str| syntax(format!("{what} is not supported"), span);
    Ok(match stmt {
        S::CreateTable(ct) => {
            let mut columns = Vec::new();
            let mut primary_key = Vec::new();
            for c in ct.columns {
                let mut nullable = true;
                for o in &c.options {
                    match &o.option {
                        ColumnOption::NotNull => nullable = false,
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
                });
            }
            for k in ct.constraints {
                match k {
                    ast::TableConstraint::PrimaryKey(pk) => {
                        primary_key.extend(pk.columns.iter().filter_map(
                            |c| match &c.column.expr {
                                Expr::Identifier(i) => Some(i.clone()),
                                _ => None,
                            },
                        ));
                    }
                    other => {
                        return Err(syntax(
                            format!("table constraint {other} is not supported"),
                            span,
                        ))
                    }
                }
            }
            let mut options = Vec::new();
            let list = match ct.table_options {
                ast::CreateTableOptions::None => Vec::new(),
                ast::CreateTableOptions::With(v) => v,
                _ => {
                    return Err(unsupported(
                        "this form of table options (use WITH ('key' = 'value'))",
                    ))
                }
            };
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
            Statement::CreateTable(Box::new(CreateTable {
                name: ct.name,
                if_not_exists: ct.if_not_exists,
                columns,
                proctime_columns: extras.proctime,
                watermark: extras.watermark,
                primary_key,
                partitioned_by: extras.partitioned_by,
                options,
                position: Position::of(span),
            }))
        }
        S::CreateView(cv) => Statement::CreateView {
            name: cv.name,
            query: cv.query,
            materialized: cv.materialized,
            if_not_exists: cv.if_not_exists,
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
                format!(
                    "{} {}{}{metadata}",
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
        if !self.primary_key.is_empty() {
            let keys: Vec<String> = self.primary_key.iter().map(|k| k.to_string()).collect();
            parts.push(format!("PRIMARY KEY ({}) NOT ENFORCED", keys.join(", ")));
        }
        write!(f, "{})", parts.join(", "))?;
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

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CreateTable(ct) => write!(f, "{ct}"),
            Statement::CreateView {
                name,
                query,
                materialized,
                if_not_exists,
            } => write!(
                f,
                "CREATE {}VIEW {}{name} AS {query}",
                if *materialized { "MATERIALIZED " } else { "" },
                if *if_not_exists { "IF NOT EXISTS " } else { "" }
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        parse_statement(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// What we parse, we print back so that it parses to the same statement.
    fn round_trip(sql: &str) -> Statement {
        let first = one(sql);
        let printed = first.to_string();
        let again = one(&printed);
        assert_eq!(
            strip_spans(&again),
            strip_spans(&first),
            "printed as: {printed}"
        );
        first
    }

    /// Statements compare with their spans; print/parse changes positions,
    /// so compare the printed forms of both instead.
    fn strip_spans(s: &Statement) -> String {
        s.to_string()
    }

    #[test]
    fn create_table_with_watermark_proctime_and_key() {
        let sql = "CREATE TABLE readings (\n  event_time TIMESTAMP(3),\n  device_id STRING NOT NULL,\n  temperature DOUBLE,\n  proc_time AS PROCTIME(),\n  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND,\n  PRIMARY KEY (device_id) NOT ENFORCED\n) WITH ('connector' = 'datagen', 'number-of-rows' = '10')";
        let Statement::CreateTable(ct) = round_trip(sql) else {
            panic!("not a CREATE TABLE")
        };
        assert_eq!(ct.columns.len(), 3);
        assert!(!ct.columns[1].nullable);
        assert_eq!(ct.proctime_columns[0].value, "proc_time");
        let (col, expr) = ct.watermark.expect("watermark");
        assert_eq!(col.value, "event_time");
        assert_eq!(expr.to_string(), "event_time - INTERVAL '5' SECOND");
        assert_eq!(ct.primary_key[0].value, "device_id");
        assert_eq!(
            ct.options,
            vec![
                ("connector".into(), "datagen".into()),
                ("number-of-rows".into(), "10".into())
            ]
        );
    }

    #[test]
    fn create_table_partitioned_by_round_trips() {
        let sql = "CREATE TABLE t (region STRING, day STRING, n INT) PARTITIONED BY (region, day) WITH ('connector' = 'delta', 'path' = '/x')";
        let Statement::CreateTable(ct) = round_trip(sql) else {
            panic!("not a CREATE TABLE")
        };
        let cols: Vec<&str> = ct.partitioned_by.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(cols, vec!["region", "day"]);
        assert_eq!(ct.options.len(), 2);
        let err =
            parse_statement("CREATE TABLE t (a INT) PARTITIONED (a)").expect_err("BY is required");
        assert!(
            err.to_string().contains("expected BY after PARTITIONED"),
            "{err}"
        );
    }

    #[test]
    fn metadata_columns_parse_and_round_trip() {
        let sql = "CREATE TABLE k (v STRING, ts TIMESTAMP(3) METADATA FROM 'timestamp', \
                   part INT METADATA FROM 'partition' VIRTUAL, `offset` BIGINT METADATA VIRTUAL, \
                   WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'kafka')";
        let Statement::CreateTable(ct) = round_trip(sql) else {
            panic!("not a CREATE TABLE")
        };
        let md: Vec<Option<(Option<&str>, bool)>> = ct
            .columns
            .iter()
            .map(|c| {
                c.metadata
                    .as_ref()
                    .map(|m| (m.key.as_deref(), m.is_virtual))
            })
            .collect();
        assert_eq!(
            md,
            vec![
                None,
                Some((Some("timestamp"), false)),
                Some((Some("partition"), true)),
                Some((None, true)),
            ]
        );
        assert!(ct.watermark.is_some());
        let err =
            parse_statement("CREATE TABLE k (a INT,\n  ts TIMESTAMP(3) METADATA FROM timestamp)")
                .expect_err("the key must be quoted");
        let text = err.to_string();
        assert!(text.contains("quoted metadata key"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        let err = parse_statement("CREATE TABLE k (ts TIMESTAMP(3) METADATA VIRTUAL extra)")
            .expect_err("junk after VIRTUAL");
        assert!(err.to_string().contains("found extra"), "{err}");
    }

    #[test]
    fn window_table_functions_parse_and_round_trip() {
        for sql in [
            "SELECT window_start, region, COUNT(*) FILTER (WHERE temperature > 90) AS hot FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' HOUR)) GROUP BY window_start, window_end, region",
            "SELECT * FROM TABLE(HOP(TABLE readings, DESCRIPTOR(event_time), INTERVAL '5' MINUTE, INTERVAL '15' MINUTE))",
            "SELECT * FROM TABLE(CUMULATE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '1' HOUR))",
            "SELECT * FROM TABLE(SESSION(TABLE readings PARTITION BY device_id, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))",
            "SELECT * FROM TABLE(SESSION(TABLE readings PARTITION BY (device_id, region), DESCRIPTOR(event_time), INTERVAL '5' MINUTE))",
        ] {
            let Statement::Query(q) = round_trip(sql) else { panic!("not a query: {sql}") };
            let text = q.to_string();
            assert!(text.contains("TABLE(readings"), "{text}");
        }
    }

    #[test]
    fn other_statements() {
        assert!(matches!(round_trip("SHOW JOBS"), Statement::ShowJobs));
        assert!(matches!(round_trip("SHOW TABLES"), Statement::ShowTables));
        assert_eq!(
            round_trip("STOP JOB 'j1' WITH SAVEPOINT"),
            Statement::StopJob {
                id: "j1".into(),
                savepoint: true
            }
        );
        assert_eq!(
            round_trip("SET 'parallelism' = '4'"),
            Statement::Set {
                key: "parallelism".into(),
                value: "4".into()
            }
        );
        assert!(matches!(
            round_trip("DESCRIBE readings"),
            Statement::Describe(_)
        ));
        assert!(matches!(
            round_trip("EXPLAIN INSERT INTO s SELECT * FROM t"),
            Statement::Explain(_)
        ));
        assert!(matches!(
            round_trip("CREATE MATERIALIZED VIEW mv AS SELECT a FROM t"),
            Statement::CreateView {
                materialized: true,
                ..
            }
        ));
        assert!(matches!(
            round_trip("DROP VIEW IF EXISTS v"),
            Statement::Drop {
                view: true,
                if_exists: true,
                ..
            }
        ));
        // sqlparser prints the alias before FOR SYSTEM_TIME, which it does
        // not parse back, so this one is only parsed.
        assert!(matches!(
            one("SELECT s.a, d.region FROM s JOIN devices FOR SYSTEM_TIME AS OF s.proc_time AS d ON s.id = d.id"),
            Statement::Query(_)
        ));
        let script =
            parse_sql("CREATE TABLE a (x INT) WITH ('connector'='blackhole');\n\n;SELECT 1;")
                .expect("script");
        assert_eq!(script.len(), 2);
        assert_eq!(script[1].position, Position::new(3, 2));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse_sql("SELECT a\nFROM t\nWHERE a >").expect_err("error");
        assert_eq!(err.position(), Some(Position::new(3, 10)), "{err}");
        let err = parse_sql(
            "CREATE TABLE t (ts TIMESTAMP(3),\n  WATERMARK FOR ts ts - INTERVAL '1' SECOND)",
        )
        .expect_err("error");
        assert_eq!(err.position(), Some(Position::new(2, 20)), "{err}");
        assert!(err.to_string().contains("expected AS"), "{err}");
        let err = parse_sql("STOP JOB 42").expect_err("error");
        assert!(err.to_string().contains("quoted job id"), "{err}");
        let err = parse_sql("SELECT 1 2").expect_err("error");
        assert_eq!(err.position(), Some(Position::new(1, 10)), "{err}");
    }
}
