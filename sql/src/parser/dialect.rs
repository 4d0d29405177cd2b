//! [`FlinkDialect`]: sqlparser's generic dialect with the syntax Flink adds
//! to expressions, notably `TABLE name [PARTITION BY cols]` as the first
//! argument of the window table functions.

use sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName,
};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

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

    /// `SELECT /*+ STATE_TTL('o' = '1d') */ ...`: Flink's query hints.
    fn supports_comment_optimizer_hint(&self) -> bool {
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

/// Parses `TABLE name [PARTITION BY ...]` into a call of [`TABLE_ARGUMENT`].
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
    Ok(call_expr(TABLE_ARGUMENT, args))
}

/// The plain call `name(args...)` as sqlparser's AST writes it.
pub fn call_expr(name: &str, args: Vec<FunctionArg>) -> Expr {
    Expr::Function(ast::Function {
        name: ObjectName::from(vec![Ident::new(name)]),
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
    })
}

/// Name of the call that stands for a `TABLE name` argument.
pub const TABLE_ARGUMENT: &str = "TABLE";
