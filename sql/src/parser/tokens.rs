//! Working on the token stream: splitting a script into statements,
//! recognising words, and syntax errors that point at a token or at the
//! line and column sqlparser names in its message.

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Word};

use crate::error::{Position, SqlError};

/// True for whitespace and comments, which sqlparser skips.
pub(super) fn is_trivia(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

/// Splits at top-level semicolons, dropping empty statements.
pub(super) fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
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

/// The word a token is, if it is one.
pub(super) fn word(t: &TokenWithSpan) -> Option<&Word> {
    match &t.token {
        Token::Word(w) => Some(w),
        _ => None,
    }
}

/// True when `t` is the unquoted word `s`, in any case.
pub(super) fn is_word(t: &TokenWithSpan, s: &str) -> bool {
    word(t).is_some_and(|w| w.quote_style.is_none() && w.value.eq_ignore_ascii_case(s))
}

/// A syntax error at `span`.
pub(super) fn syntax(message: impl Into<String>, span: Span) -> SqlError {
    SqlError::Syntax {
        message: message.into(),
        position: Position::of(span),
    }
}

/// Turns a sqlparser error ("... at Line: 3, Column: 7") into a positioned one.
pub(super) fn from_parser_error(e: ParserError, fallback: Span) -> SqlError {
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
