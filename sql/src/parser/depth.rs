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
//! The count follows the operators' precedence: a chain of one class (say
//! `a AND b AND c`) is as deep as its operators plus its deepest operand,
//! and its operands are chains of tighter classes (`x = 1`), so 500
//! conditions joined by AND are about 501 deep, not 1,000. A comma or a
//! clause keyword ends an expression; a bracketed group or a CASE adds its
//! own depth (plus one) as an operand of the expression around it. The
//! result bounds the depth of the tree sqlparser builds. Chains of set
//! operations and joins, which sqlparser also builds in a loop, are counted
//! over the whole statement against the same limit.

use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::tokens::{is_word, syntax, word};
use crate::error::SqlError;

/// The deepest expression a statement may hold, in operators along one
/// path from the root to a leaf; also the most set operations (`UNION`,
/// `EXCEPT`, `INTERSECT`) and joins one statement may chain.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// Precedence classes of binary operators, loosest first. A chain of one
/// class is as deep as its operators plus its deepest operand, and its
/// operands are chains of tighter classes.
const CLASSES: usize = 9;

/// Words that start a new expression at the same level: the expressions
/// before and after them are siblings, not one chain.
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
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "MINUS",
    "VALUES",
    "WINDOW",
    "PARTITION",
    "QUALIFY",
    "OFFSET",
    "INSERT",
    "INTO",
];

/// Words that chain statements or tables into a tree one level deeper
/// each: counted over the whole statement.
const CHAIN_WORDS: &[&str] = &["UNION", "EXCEPT", "INTERSECT", "MINUS", "JOIN"];

/// Operator words and their precedence class.
const OPERATOR_WORDS: &[(&str, usize)] = &[
    ("OR", 0),
    ("XOR", 1),
    ("AND", 2),
    ("NOT", 3),
    ("IS", 4),
    ("LIKE", 4),
    ("ILIKE", 4),
    ("SIMILAR", 4),
    ("REGEXP", 4),
    ("RLIKE", 4),
    ("IN", 4),
    ("BETWEEN", 4),
    ("MEMBER", 4),
    ("OVERLAPS", 4),
    ("DIV", 8),
    ("MOD", 8),
    ("AT", 8),
    ("COLLATE", 8),
    ("OPERATOR", 8),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Opener {
    Statement,
    Bracket,
    Case,
}

/// One nesting level: the statement, a bracketed group or a CASE.
struct Level {
    opener: Opener,
    /// Depth of the levels around this one where it was opened.
    base: usize,
    /// Operators in the open chain of each class.
    count: [usize; CLASSES],
    /// Deepest finished operand of the open chain of each class.
    sub: [usize; CLASSES],
    /// Deepest expression finished at this level.
    deepest: usize,
}

impl Level {
    fn new(opener: Opener, base: usize) -> Self {
        Level {
            opener,
            base,
            count: [0; CLASSES],
            sub: [0; CLASSES],
            deepest: 0,
        }
    }

    /// Depth of the expression being read at this level.
    fn depth(&self) -> usize {
        let mut d = 0;
        for c in (0..CLASSES).rev() {
            d = self.count[c] + self.sub[c].max(d);
        }
        d
    }

    /// An operator of class `class`: the chains of tighter classes before
    /// it are one finished operand of its chain.
    fn operator(&mut self, class: usize) {
        let mut d = 0;
        for q in (class + 1..CLASSES).rev() {
            d = self.count[q] + self.sub[q].max(d);
            self.count[q] = 0;
            self.sub[q] = 0;
        }
        self.sub[class] = self.sub[class].max(d);
        self.count[class] += 1;
    }

    /// A finished group `depth` deep stands as an operand here.
    fn operand(&mut self, depth: usize) {
        let tightest = CLASSES - 1;
        self.sub[tightest] = self.sub[tightest].max(depth);
    }

    /// The expression ends (a comma, a clause keyword).
    fn separate(&mut self) {
        self.deepest = self.deepest.max(self.depth());
        self.count = [0; CLASSES];
        self.sub = [0; CLASSES];
    }

    /// How deep this level's group is, as an operand of the level around.
    fn finished(&self) -> usize {
        self.deepest.max(self.depth()) + 1
    }
}

/// Refuses a statement whose expressions could be deeper than
/// [`MAX_EXPRESSION_DEPTH`], pointing at the token that passes it.
pub(super) fn check_depth(tokens: &[TokenWithSpan]) -> Result<(), SqlError> {
    let mut levels = vec![Level::new(Opener::Statement, 0)];
    let mut chained = 0usize;
    for t in tokens {
        let Some(level) = levels.last_mut() else {
            break;
        };
        let opener = level.opener;
        match &t.token {
            Token::LParen | Token::LBracket => {
                let base = level.base + level.depth() + 1;
                levels.push(Level::new(Opener::Bracket, base));
            }
            Token::RParen | Token::RBracket if opener == Opener::Bracket => close(&mut levels),
            Token::Word(_) if is_word(t, "CASE") => {
                let base = level.base + level.depth() + 1;
                levels.push(Level::new(Opener::Case, base));
            }
            Token::Word(_) if is_word(t, "END") && opener == Opener::Case => close(&mut levels),
            Token::Comma | Token::SemiColon => level.separate(),
            Token::Word(_) if is_word_in(t, CLAUSE_WORDS) => {
                level.separate();
                if is_word_in(t, CHAIN_WORDS) {
                    chained += 1;
                    if chained > MAX_EXPRESSION_DEPTH {
                        return Err(syntax(
                            format!(
                                "the statement chains more than {MAX_EXPRESSION_DEPTH} set \
                                 operations and joins; split it into views"
                            ),
                            t.span,
                        ));
                    }
                }
            }
            token => {
                if let Some(class) = class_of(t, token) {
                    level.operator(class);
                }
            }
        }
        if let Some(level) = levels.last() {
            if level.base + level.depth() > MAX_EXPRESSION_DEPTH {
                return Err(syntax(
                    format!(
                        "the expression is too deep: more than {MAX_EXPRESSION_DEPTH} nested \
                         operations here; split it into several columns or views, or write a \
                         long OR of equalities as IN (...)"
                    ),
                    t.span,
                ));
            }
        }
    }
    Ok(())
}

/// Closes the innermost level; its depth stands as an operand in the
/// level around it.
fn close(levels: &mut Vec<Level>) {
    if levels.len() > 1 {
        if let Some(child) = levels.pop() {
            if let Some(parent) = levels.last_mut() {
                parent.operand(child.finished());
            }
        }
    }
}

fn is_word_in(t: &TokenWithSpan, words: &[&str]) -> bool {
    word(t).is_some_and(|w| {
        w.quote_style.is_none() && words.iter().any(|k| w.value.eq_ignore_ascii_case(k))
    })
}

/// The precedence class of an operator token; `None` for anything else.
fn class_of(t: &TokenWithSpan, token: &Token) -> Option<usize> {
    if let Some(w) = word(t) {
        if w.quote_style.is_some() {
            return None;
        }
        return OPERATOR_WORDS
            .iter()
            .find(|(k, _)| w.value.eq_ignore_ascii_case(k))
            .map(|(_, class)| *class);
    }
    Some(match token {
        Token::EOF
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
        | Token::LParen
        | Token::RParen
        | Token::LBracket
        | Token::RBracket
        | Token::Comma
        | Token::SemiColon => return None,
        Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Spaceship => 4,
        Token::Pipe => 5,
        Token::Caret | Token::Ampersand | Token::ShiftLeft | Token::ShiftRight => 6,
        Token::Plus | Token::Minus | Token::StringConcat => 7,
        // *, /, % and every other symbolic operator bind tightest.
        _ => 8,
    })
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

    fn too_deep(sql: &str) -> bool {
        parse_sql(sql).err().is_some_and(|e| {
            e.to_string().contains("too deep") || e.to_string().contains("chains more")
        })
    }

    #[test]
    fn conditions_joined_by_and_count_once_each() {
        // 900 comparisons joined by AND are about 900 deep, not 1,800.
        let conditions: Vec<String> = (0..900).map(|i| format!("c{i} = {i}")).collect();
        let sql = format!("SELECT a FROM t WHERE {}", conditions.join(" AND "));
        assert_eq!(parse_sql(&sql).expect("parses").len(), 1);
        let conditions: Vec<String> = (0..1_100).map(|i| format!("c{i} = {i}")).collect();
        assert!(too_deep(&format!(
            "SELECT a FROM t WHERE {}",
            conditions.join(" AND ")
        )));
    }

    #[test]
    fn case_expressions_and_word_operators_do_not_escape_the_count() {
        let case = "CASE WHEN TRUE THEN 1 END";
        let sql = format!("SELECT 1 + {} FROM t", vec![case; 1_200].join(" + "));
        assert!(too_deep(&sql), "a chain of CASE expressions");
        for op in [" XOR ", " REGEXP ", " DIV "] {
            assert!(too_deep(&chain(op, 1_200)), "a chain of{op}");
        }
        let unions = vec!["SELECT 1 FROM t"; 1_200].join(" UNION ALL ");
        assert!(too_deep(&unions), "a chain of UNION ALL");
        let excepts = vec!["SELECT 1 FROM t"; 1_200].join(" EXCEPT ");
        assert!(too_deep(&excepts), "a chain of EXCEPT");
        // A CASE inside an expression is one operand, however long.
        let whens: Vec<String> = (0..2_000)
            .map(|i| format!("WHEN a = {i} THEN {i}"))
            .collect();
        let sql = format!("SELECT 1 + CASE {} END + 2 FROM t", whens.join(" "));
        assert_eq!(parse_sql(&sql).expect("parses").len(), 1);
    }
}
