//! The operators and built-in functions an expression can apply: binary
//! operators, date-time fields and scalar function names.

use std::fmt;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Multiply,
    /// `/` (integer division truncates toward zero)
    Divide,
    /// `%`
    Modulo,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND` (three-valued)
    And,
    /// `OR` (three-valued)
    Or,
    /// `||` string concatenation
    StringConcat,
}

impl BinaryOp {
    /// True for `=`, `<>`, `<`, `<=`, `>`, `>=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Plus => "+",
            BinaryOp::Minus => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::StringConcat => "||",
        })
    }
}

/// A part of a date or time, for EXTRACT and DATE_TRUNC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnitField {
    /// Calendar year.
    Year,
    /// Quarter of the year, 1–4.
    Quarter,
    /// Month, 1–12.
    Month,
    /// ISO week, 1–53 (weeks start on Monday).
    Week,
    /// Day of the month.
    Day,
    /// Hour, 0–23.
    Hour,
    /// Minute, 0–59.
    Minute,
    /// Second, 0–59.
    Second,
    /// Milliseconds within the minute for EXTRACT; the millisecond for DATE_TRUNC.
    Millisecond,
    /// Day of the week, Sunday = 1 … Saturday = 7 (EXTRACT only).
    DayOfWeek,
    /// Day of the year, 1–366 (EXTRACT only).
    DayOfYear,
    /// Seconds since 1970-01-01 (EXTRACT only).
    Epoch,
}

/// A built-in scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarFunction {
    /// `LOWER(s)`
    Lower,
    /// `UPPER(s)`
    Upper,
    /// `TRIM(s [, chars])`: strips spaces (or `chars`) from both ends.
    Trim,
    /// `LTRIM(s [, chars])`
    Ltrim,
    /// `RTRIM(s [, chars])`
    Rtrim,
    /// `SUBSTRING(s, start [, len])`, 1-based, Flink rules (see functions docs).
    Substring,
    /// `CONCAT(a, b, ...)`: NULL when any argument is NULL.
    Concat,
    /// `CHAR_LENGTH(s)` in characters.
    CharLength,
    /// `REGEXP_REPLACE(s, pattern, replacement)`, all matches.
    RegexpReplace,
    /// `REPLACE(s, search, replacement)`: every occurrence of the text
    /// `search` (not a pattern).
    Replace,
    /// `REGEXP_EXTRACT(s, pattern [, group])`: the group (default 0, the
    /// whole match) of the first match; NULL without a match.
    RegexpExtract,
    /// `SPLIT_INDEX(s, separator, n)`: the n-th (0-based) piece of `s` split
    /// at every `separator`; NULL past the last piece or for a negative n.
    SplitIndex,
    /// `DATE_FORMAT(ts, pattern)`: the timestamp as text, with a Java
    /// (Flink) pattern such as `'yyyy-MM-dd HH:mm'`.
    DateFormat,
    /// `EXTRACT(field FROM ts)` as BIGINT.
    Extract(TimeUnitField),
    /// `DATE_TRUNC(field, ts)` as TIMESTAMP(3).
    DateTrunc(TimeUnitField),
    /// `ABS(x)`
    Abs,
    /// `ROUND(x [, digits])`, half away from zero.
    Round,
    /// `FLOOR(x)`
    Floor,
    /// `CEIL(x)`
    Ceil,
}

impl ScalarFunction {
    /// The SQL name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ScalarFunction::Lower => "LOWER",
            ScalarFunction::Upper => "UPPER",
            ScalarFunction::Trim => "TRIM",
            ScalarFunction::Ltrim => "LTRIM",
            ScalarFunction::Rtrim => "RTRIM",
            ScalarFunction::Substring => "SUBSTRING",
            ScalarFunction::Concat => "CONCAT",
            ScalarFunction::CharLength => "CHAR_LENGTH",
            ScalarFunction::RegexpReplace => "REGEXP_REPLACE",
            ScalarFunction::Replace => "REPLACE",
            ScalarFunction::RegexpExtract => "REGEXP_EXTRACT",
            ScalarFunction::SplitIndex => "SPLIT_INDEX",
            ScalarFunction::DateFormat => "DATE_FORMAT",
            ScalarFunction::Extract(_) => "EXTRACT",
            ScalarFunction::DateTrunc(_) => "DATE_TRUNC",
            ScalarFunction::Abs => "ABS",
            ScalarFunction::Round => "ROUND",
            ScalarFunction::Floor => "FLOOR",
            ScalarFunction::Ceil => "CEIL",
        }
    }
}
