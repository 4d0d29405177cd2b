//! A budget on how deep a statement's expressions may be, checked on the
//! token stream before anything builds a tree.
//!
//! sqlparser refuses deep nesting of parentheses, but it parses a chain
//! of binary operators (`1 + 1 + ... + 1`, `a OR b OR ...`) in a loop and
//! returns a left-deep tree as deep as the chain is long. Every later walk
//! over that tree (our conversion, the binder, the planner, the evaluator,
//! even dropping it) recurses once per level, so a few kilobytes of SQL
//! could overflow a thread's stack and abort the process. Counting here,
//! before the tree exists, keeps every later walk within
//! [`MAX_EXPRESSION_DEPTH`] levels.
//!
//! The count is an upper bound of the tree's depth: each operator token
//! adds one to the chain it is in, a comma or a clause keyword starts a
//! new chain, and a parenthesised group adds its own deepest chain (plus
//! one for the group) to the chain around it.

use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::tokens::{syntax, word};
use crate::error::SqlError;

/// The deepest expression a statement may hold, in operators along one
/// path from the root to a leaf.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// Words that start a new expression at the same level: the chains before
/// and after them are siblings, not one chain.
const CLAUSE_WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "HAVING",
    "ORDER",
    "LIMIT",
    "ON",
    "JOIN",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "UNION",
    "VALUES",
    "WINDOW",
    "PARTITION",
    "QUALIFY",
    "OFFSET",
    "INSERT",
    "INTO",
];

/// Words that combine two operands, as operators do.
const OPERATOR_WORDS: &[&str] = &[
    "AND", "OR", "NOT", "IS", "LIKE", "ILIKE", "SIMILAR", "BETWEEN", "IN", "AT", "COLLATE",
    "OVERLAPS",
];

#[derive(Default)]
struct Level {
    /// Depth of the chain being read at this level.
    current: usize,
    /// The deepest chain this level has held so far.
    deepest: usize,
}

/// Refuses a statement whose expressions could be deeper than
/// [`MAX_EXPRESSION_DEPTH`], pointing at the operator that passes it.
pub(super) fn check_depth(tokens: &[TokenWithSpan]) -> Result<(), SqlError> {
    let mut levels = vec![Level::default()];
    // The sum of `current` over `levels`: the depth at the token being read.
    let mut total = 0usize;
    for t in tokens {
        match &t.token {
            Token::LParen | Token::LBracket => {
                levels.push(Level {
                    current: 1,
                    deepest: 1,
                });
                total += 1;
            }
            Token::RParen | Token::RBracket if levels.len() > 1 => {
                let child = levels.pop().unwrap_or_default();
                total -= child.current;
                if let Some(parent) = levels.last_mut() {
                    parent.current += child.deepest;
                    parent.deepest = parent.deepest.max(parent.current);
                    total += child.deepest;
                }
            }
            // An unmatched closing bracket: sqlparser reports it.
            Token::RParen | Token::RBracket => {}
            Token::Comma | Token::SemiColon => {
                if let Some(level) = levels.last_mut() {
                    total -= level.current;
                    level.current = 0;
                }
            }
            token if is_operator(token) || is_word_in(t, OPERATOR_WORDS) => {
                if let Some(level) = levels.last_mut() {
                    level.current += 1;
                    level.deepest = level.deepest.max(level.current);
                    total += 1;
                }
            }
            Token::Word(_) if is_word_in(t, CLAUSE_WORDS) => {
                if let Some(level) = levels.last_mut() {
                    total -= level.current;
                    level.current = 0;
                }
            }
            _ => {}
        }
        if total > MAX_EXPRESSION_DEPTH {
            return Err(syntax(
                format!(
                    "the expression is too deep: more than {MAX_EXPRESSION_DEPTH} operators \
                     along one chain here; split it into several columns or views, or write \
                     a long OR of equalities as IN (...)"
                ),
                t.span,
            ));
        }
    }
    Ok(())
}

fn is_word_in(t: &TokenWithSpan, words: &[&str]) -> bool {
    word(t).is_some_and(|w| {
        w.quote_style.is_none() && words.iter().any(|k| w.value.eq_ignore_ascii_case(k))
    })
}

/// Operator tokens: every symbol that is not a literal, a name, a
/// bracket or a separator.
fn is_operator(token: &Token) -> bool {
    !matches!(
        token,
        Token::EOF
            | Token::Word(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Whitespace(_)
            | Token::Placeholder(_)
            | Token::Period
            | Token::Colon
            | Token::LBrace
            | Token::RBrace
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_sql;

    fn chain(op: &str, terms: usize) -> String {
        let mut s = String::from("SELECT 1");
        for _ in 1..terms {
            s.push_str(op);
            s.push('1');
        }
        s.push_str(" FROM t");
        s
    }

    #[test]
    fn a_chain_within_the_budget_parses() {
        let sql = chain(" + ", MAX_EXPRESSION_DEPTH - 10);
        assert_eq!(parse_sql(&sql).expect("parses").len(), 1);
    }

    #[test]
    fn a_chain_past_the_budget_is_refused_at_the_operator_that_passes_it() {
        let sql = chain(" + ", MAX_EXPRESSION_DEPTH + 10);
        let err = parse_sql(&sql).expect_err("too deep").to_string();
        assert!(err.contains("too deep"), "{err}");
        // "SELECT 1" (8 characters) then " + 1" per term: the k-th '+' is
        // at column 8 + 4 * (k - 1) + 2, and the 1001st passes the budget.
        assert!(err.contains("line 1, column 4010"), "{err}");
    }

    #[test]
    fn many_short_expressions_are_not_one_chain() {
        let items: Vec<String> = (0..3_000).map(|i| format!("a + {i}")).collect();
        let sql = format!("SELECT {} FROM t WHERE a = 1 AND b = 2", items.join(", "));
        assert_eq!(parse_sql(&sql).expect("parses").len(), 1);
        let list: Vec<String> = (0..5_000).map(|i| i.to_string()).collect();
        let sql = format!("SELECT a FROM t WHERE a IN ({})", list.join(", "));
        assert_eq!(parse_sql(&sql).expect("parses").len(), 1);
    }

    #[test]
    fn nested_groups_add_their_depth_to_the_chain_around_them() {
        // 20 groups nested to the left, each with a chain of 60: 1,200
        // levels in all although no chain alone passes the budget.
        let mut expr = String::from("1");
        for _ in 0..20 {
            expr = format!("({expr}{})", " + 1".repeat(60));
        }
        let sql = format!("SELECT {expr} FROM t");
        let err = parse_sql(&sql).expect_err("too deep").to_string();
        assert!(err.contains("too deep"), "{err}");
    }
}
