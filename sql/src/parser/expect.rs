//! Expectations, in Delta Live Tables' syntax with Runnel's quarantine:
//! `CONSTRAINT name EXPECT (predicate) [ON VIOLATION {DROP ROW | FAIL
//! UPDATE | QUARANTINE [INTO table]}]`, as an element of `CREATE TABLE` or
//! `CREATE [MATERIALIZED] VIEW v (...) AS`, or after `ALTER TABLE|VIEW t
//! ADD`.

use std::fmt;

use runnel_engine::ops::Violation;
use sqlparser::ast;
use sqlparser::tokenizer::{Span, Token, TokenWithSpan};

use super::table_extras::parse_expr_tokens;
use super::tokens::{is_word, syntax, word};
use crate::error::{Position, Result};

/// One expectation as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectDecl {
    /// Its name (lower case unless quoted).
    pub name: String,
    /// The predicate.
    pub predicate: ast::Expr,
    /// What a violation does.
    pub mode: Violation,
    /// `QUARANTINE INTO table`: where violating rows go (default
    /// `<table>_quarantine`).
    pub into: Option<String>,
    /// Where the constraint starts.
    pub position: Position,
}

impl fmt::Display for ExpectDecl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CONSTRAINT {} EXPECT ({})", self.name, self.predicate)?;
        if self.mode != Violation::Warn {
            write!(f, " ON VIOLATION {}", self.mode.sql())?;
        }
        if let Some(t) = &self.into {
            write!(f, " INTO {t}")?;
        }
        Ok(())
    }
}

/// Parses `CONSTRAINT name EXPECT (...) [ON VIOLATION ...]` from exactly
/// these significant tokens.
pub(super) fn parse_expectation(t: &[&TokenWithSpan]) -> Result<ExpectDecl> {
    let span_at = |i: usize| t.get(i).or(t.last()).map_or(Span::empty(), |x| x.span);
    let position = Position::of(span_at(0));
    let name = match t.get(1).and_then(|x| word(x)) {
        Some(w) if w.quote_style.is_none() => w.value.to_lowercase(),
        Some(w) => w.value.clone(),
        None => {
            return Err(syntax(
                "expected the expectation's name after CONSTRAINT",
                span_at(1),
            ))
        }
    };
    if !t.get(2).is_some_and(|x| is_word(x, "EXPECT")) {
        return Err(syntax(
            "expected EXPECT (predicate) after the name",
            span_at(2),
        ));
    }
    if t.get(3).map(|x| &x.token) != Some(&Token::LParen) {
        return Err(syntax(
            "expected ( and the predicate after EXPECT",
            span_at(3),
        ));
    }
    // The predicate: up to the matching parenthesis.
    let mut depth = 0usize;
    let mut close = None;
    for (i, x) in t.iter().enumerate().skip(3) {
        match x.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return Err(syntax("the predicate's ( is not closed", span_at(3)));
    };
    if close == 4 {
        return Err(syntax("expected a predicate inside EXPECT ( )", span_at(4)));
    }
    let tokens: Vec<TokenWithSpan> = t[4..close].iter().map(|x| (*x).clone()).collect();
    let predicate = parse_expr_tokens(tokens, span_at(4))?;
    let rest = &t[close + 1..];
    let w = |i: usize, s: &str| rest.get(i).is_some_and(|x| is_word(x, s));
    let at = |i: usize| rest.get(i).map_or(span_at(close), |x| x.span);
    let (mode, into, used) = if rest.is_empty() {
        (Violation::Warn, None, 0)
    } else if !(w(0, "ON") && w(1, "VIOLATION")) {
        return Err(syntax("expected ON VIOLATION after the predicate", at(0)));
    } else if w(2, "DROP") && w(3, "ROW") {
        (Violation::Drop, None, 4)
    } else if w(2, "FAIL") && w(3, "UPDATE") {
        (Violation::Fail, None, 4)
    } else if w(2, "FAIL") {
        (Violation::Fail, None, 3)
    } else if w(2, "QUARANTINE") && w(3, "INTO") {
        let table = rest
            .get(4)
            .and_then(|x| word(x))
            .map(|w| w.value.to_lowercase());
        match table {
            Some(table) => (Violation::Quarantine, Some(table), 5),
            None => {
                return Err(syntax(
                    "expected the quarantine table's name after INTO",
                    at(4),
                ))
            }
        }
    } else if w(2, "QUARANTINE") {
        (Violation::Quarantine, None, 3)
    } else {
        return Err(syntax(
            "expected DROP ROW, FAIL UPDATE or QUARANTINE after ON VIOLATION",
            at(2),
        ));
    };
    if let Some(extra) = rest.get(used) {
        return Err(syntax(
            format!("unexpected {} after the expectation", extra.token),
            extra.span,
        ));
    }
    Ok(ExpectDecl {
        name,
        predicate,
        mode,
        into,
        position,
    })
}

/// For `CREATE [MATERIALIZED] VIEW name (CONSTRAINT ..., ...) AS ...`: the
/// tokens without the parenthesized expectations, and the expectations.
/// Any other statement comes back as it was.
pub(super) fn cut_view_expectations(
    tokens: Vec<TokenWithSpan>,
) -> Result<(Vec<TokenWithSpan>, Vec<ExpectDecl>)> {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&i| !super::tokens::is_trivia(&tokens[i].token))
        .collect();
    let w = |k: usize, s: &str| sig.get(k).is_some_and(|&i| is_word(&tokens[i], s));
    if !w(0, "CREATE") {
        return Ok((tokens, vec![]));
    }
    let Some(view_at) = (1..sig.len().min(5)).find(|&k| w(k, "VIEW")) else {
        return Ok((tokens, vec![]));
    };
    // The name (possibly dotted, possibly after IF NOT EXISTS), then `(`.
    let mut k = view_at + 1;
    if w(k, "IF") {
        k += 3;
    }
    k += 1;
    while sig
        .get(k)
        .is_some_and(|&i| tokens[i].token == Token::Period)
    {
        k += 2;
    }
    let Some(&open) = sig.get(k) else {
        return Ok((tokens, vec![]));
    };
    if tokens[open].token != Token::LParen || !w(k + 1, "CONSTRAINT") {
        return Ok((tokens, vec![]));
    }
    let mut depth = 0usize;
    let mut element: Vec<&TokenWithSpan> = Vec::new();
    let mut out = Vec::new();
    let mut close = None;
    for &i in &sig[k..] {
        let tok = &tokens[i];
        match tok.token {
            Token::LParen => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            Token::Comma if depth == 1 => {
                out.push(parse_expectation(&element)?);
                element.clear();
                continue;
            }
            _ => {}
        }
        element.push(tok);
    }
    let Some(close) = close else {
        return Err(syntax("the view's ( is not closed", tokens[open].span));
    };
    if !element.is_empty() {
        out.push(parse_expectation(&element)?);
    }
    let kept = tokens
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i < open || *i > close)
        .map(|(_, t)| t)
        .collect();
    Ok((kept, out))
}
