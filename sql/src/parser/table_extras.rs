//! Flink's additions to `CREATE TABLE` that sqlparser cannot parse:
//! `WATERMARK FOR col AS expr`, computed columns `name AS PROCTIME()`,
//! `METADATA [FROM 'key'] [VIRTUAL]` column clauses and `PARTITIONED BY
//! (...)`. They are cut out of the token stream before sqlparser parses the
//! rest, and parsed here on their own; every token keeps its position.

use sqlparser::ast::{Expr, Ident};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span, Token, TokenWithSpan};

use super::dialect::FlinkDialect;
use super::statement::MetadataDecl;
use super::tokens::{from_parser_error, is_trivia, is_word, syntax, word};
use crate::error::Result;

/// What [`cut_table_extras`] takes out of a CREATE TABLE.
#[derive(Debug, Default)]
pub(super) struct TableExtras {
    pub(super) watermark: Option<(Ident, Expr)>,
    pub(super) proctime: Vec<Ident>,
    pub(super) partitioned_by: Vec<Ident>,
    /// The table's `COMMENT 'text'` (Flink's place: after the columns,
    /// before PARTITIONED BY and WITH).
    pub(super) comment: Option<String>,
    /// `CONSTRAINT name EXPECT (...) ON VIOLATION ...` elements.
    pub(super) expectations: Vec<super::expect::ExpectDecl>,
    /// Column name (lower case) -> its METADATA clause.
    pub(super) metadata: Vec<(String, MetadataDecl)>,
}

/// Token index ranges to take out of a CREATE TABLE.
#[derive(Debug, Default)]
struct Cuts {
    /// Whole elements of the column list, dropped with a comma next to them.
    elements: Vec<(usize, usize)>,
    /// Parts of elements (METADATA clauses) and the PARTITIONED BY clause,
    /// dropped without a comma.
    ranges: Vec<(usize, usize)>,
}

/// Removes `WATERMARK FOR ... AS ...` and `name AS PROCTIME()` elements from
/// the column list of a CREATE TABLE (with the comma before them) and parses
/// them separately.
pub(super) fn cut_table_extras(
    tokens: Vec<TokenWithSpan>,
) -> Result<(Vec<TokenWithSpan>, TableExtras)> {
    let mut extras = TableExtras::default();
    let mut cuts = Cuts::default();
    let (elements, list_end) = column_list_elements(&tokens);
    for &(s, e) in &elements {
        cut_element(&tokens, s, e, &mut extras, &mut cuts)?;
    }
    let mut after_list = list_end.map(|end| end + 1);
    if let Some((range, text)) = after_list.and_then(|from| table_comment(&tokens, from)) {
        extras.comment = Some(text);
        cuts.ranges.push(range);
        after_list = Some(range.1);
    }
    let partition_clause = match after_list {
        Some(from) => cut_partitioned_by(&tokens, from, &mut extras)?,
        None => None,
    };
    cuts.ranges.extend(partition_clause);
    if cuts.elements.is_empty() && cuts.ranges.is_empty() {
        return Ok((tokens, extras));
    }
    Ok((drop_cuts(tokens, &cuts), extras))
}

/// The token ranges of the elements inside the first top-level
/// parentheses, and the index of the `)` that closes them.
fn column_list_elements(tokens: &[TokenWithSpan]) -> (Vec<(usize, usize)>, Option<usize>) {
    let mut depth = 0usize;
    let mut elements: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    for (i, t) in tokens.iter().enumerate() {
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
                    return (elements, Some(i));
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
    (elements, None)
}

/// Takes a WATERMARK, a PROCTIME column or a METADATA clause out of the
/// column-list element `tokens[s..e]`, if it is one.
fn cut_element(
    tokens: &[TokenWithSpan],
    s: usize,
    e: usize,
    extras: &mut TableExtras,
    cuts: &mut Cuts,
) -> Result<()> {
    let sig: Vec<usize> = (s..e).filter(|&i| !is_trivia(&tokens[i].token)).collect();
    let Some(&first) = sig.first() else {
        return Ok(());
    };
    if is_word(&tokens[first], "CONSTRAINT")
        && sig.get(2).is_some_and(|&i| is_word(&tokens[i], "EXPECT"))
    {
        let refs: Vec<&TokenWithSpan> = sig.iter().map(|&i| &tokens[i]).collect();
        extras
            .expectations
            .push(super::expect::parse_expectation(&refs)?);
        cuts.elements.push((s, e));
    } else if is_word(&tokens[first], "WATERMARK")
        && sig.get(1).is_some_and(|&i| is_word(&tokens[i], "FOR"))
    {
        let watermark = parse_watermark(tokens, &sig)?;
        if extras.watermark.is_some() {
            return Err(syntax(
                "a table can have only one WATERMARK",
                tokens[first].span,
            ));
        }
        extras.watermark = Some(watermark);
        cuts.elements.push((s, e));
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
        cuts.elements.push((s, e));
    } else if let Some(k) = sig
        .iter()
        .skip(2)
        .position(|&i| is_word(&tokens[i], "METADATA"))
    {
        let at = sig[k + 2];
        let decl = parse_metadata_clause(tokens, &sig[k + 2..])?;
        if let Some(w) = word(&tokens[first]) {
            extras.metadata.push((w.value.to_lowercase(), decl));
        }
        cuts.ranges.push((at, e));
    }
    Ok(())
}

/// Parses `WATERMARK FOR col AS expr`; `sig` are the significant token
/// indexes of the element, starting at `WATERMARK`.
fn parse_watermark(tokens: &[TokenWithSpan], sig: &[usize]) -> Result<(Ident, Expr)> {
    let first = sig[0];
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
    let expr_tokens: Vec<TokenWithSpan> = sig[4..].iter().map(|&i| tokens[i].clone()).collect();
    if expr_tokens.is_empty() {
        return Err(syntax(
            "expected the watermark expression after AS",
            tokens[sig[3]].span,
        ));
    }
    let expr = parse_expr_tokens(expr_tokens, tokens[sig[3]].span)?;
    Ok((col, expr))
}

/// The tokens without the cut ranges; each removed element goes together
/// with the comma before it (or after it, when it is the first element).
fn drop_cuts(tokens: Vec<TokenWithSpan>, cuts: &Cuts) -> Vec<TokenWithSpan> {
    let mut drop = vec![false; tokens.len()];
    for &(s, e) in &cuts.ranges {
        for d in drop.iter_mut().take(e).skip(s) {
            *d = true;
        }
    }
    for &(s, e) in &cuts.elements {
        for d in drop.iter_mut().take(e).skip(s) {
            *d = true;
        }
        if s > 0 && matches!(tokens[s - 1].token, Token::Comma) {
            drop[s - 1] = true;
        } else if e < tokens.len() && matches!(tokens[e].token, Token::Comma) {
            drop[e] = true;
        }
    }
    tokens
        .into_iter()
        .zip(drop)
        .filter(|(_, d)| !d)
        .map(|(t, _)| t)
        .collect()
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

/// `COMMENT 'text'` when it is the first thing from token `from` on: its
/// token range and text.
fn table_comment(tokens: &[TokenWithSpan], from: usize) -> Option<((usize, usize), String)> {
    let mut sig = (from..tokens.len()).filter(|&i| !is_trivia(&tokens[i].token));
    let first = sig.next()?;
    let text_at = sig.next()?;
    if !is_word(&tokens[first], "COMMENT") {
        return None;
    }
    match &tokens[text_at].token {
        Token::SingleQuotedString(s) => Some(((first, text_at + 1), s.clone())),
        _ => None,
    }
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

/// Parses an expression (a watermark's, an expectation's) from its own
/// tokens.
pub(super) fn parse_expr_tokens(tokens: Vec<TokenWithSpan>, fallback: Span) -> Result<Expr> {
    let dialect = FlinkDialect;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let expr = parser
        .parse_expr()
        .map_err(|e| from_parser_error(e, fallback))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(syntax(
            format!("unexpected {} in the expression", next.token),
            next.span,
        ));
    }
    Ok(expr)
}
