//! Printing expressions (for EXPLAIN) and listing the columns they read.

use std::collections::BTreeSet;
use std::fmt;

use super::{Expr, ScalarValue};

impl fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScalarValue::Null => write!(f, "NULL"),
            ScalarValue::Boolean(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            ScalarValue::Int32(v) => write!(f, "{v}"),
            ScalarValue::Int64(v) => write!(f, "{v}"),
            ScalarValue::Float64(v) => write!(f, "{v:?}"),
            ScalarValue::Decimal128(v, _, s) => write!(f, "{}", decimal_text(*v, *s)),
            ScalarValue::Utf8(s) => write!(f, "'{}'", s.replace('\'', "''")),
            ScalarValue::Date32(d) => write!(f, "DATE({d})"),
            ScalarValue::TimestampMillis(t) => match chrono::DateTime::from_timestamp_millis(*t) {
                Some(d) => write!(f, "TIMESTAMP '{}'", d.format("%Y-%m-%d %H:%M:%S%.3f")),
                None => write!(f, "TIMESTAMP({t})"),
            },
            ScalarValue::IntervalMillis(ms) => write!(f, "INTERVAL '{ms}' MILLISECOND"),
            ScalarValue::IntervalMonths(m) => write!(f, "INTERVAL '{m}' MONTH"),
        }
    }
}

impl fmt::Display for Expr {
    /// SQL-like text; column `i` of the input prints as `#i`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(i) => write!(f, "#{i}"),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Binary { op, left, right } => write!(f, "({left} {op} {right})"),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Negative(e) => write!(f, "-{e}"),
            Expr::IsNull(e) => write!(f, "{e} IS NULL"),
            Expr::IsNotNull(e) => write!(f, "{e} IS NOT NULL"),
            Expr::Case {
                operand,
                when_then,
                else_expr,
            } => {
                write!(f, "CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (w, t) in when_then {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(e) = else_expr {
                    write!(f, " ELSE {e}")?;
                }
                write!(f, " END")
            }
            Expr::Cast { expr, to } => write!(f, "CAST({expr} AS {to})"),
            Expr::TryCast { expr, to } => write!(f, "TRY_CAST({expr} AS {to})"),
            Expr::Coalesce(args) => write!(f, "COALESCE({})", join(args)),
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                write!(
                    f,
                    "{expr} {}BETWEEN {low} AND {high}",
                    if *negated { "NOT " } else { "" }
                )
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                write!(
                    f,
                    "{expr} {}IN ({})",
                    if *negated { "NOT " } else { "" },
                    join(list)
                )
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => write!(
                f,
                "{expr} {}{} {pattern}",
                if *negated { "NOT " } else { "" },
                if *case_insensitive { "ILIKE" } else { "LIKE" }
            ),
            Expr::Function { func, args } => write!(f, "{}({})", func.name(), join(args)),
        }
    }
}

fn join(exprs: &[Expr]) -> String {
    exprs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Expr {
    /// Adds the input columns this expression reads to `out`.
    pub fn columns(&self, out: &mut BTreeSet<usize>) {
        match self {
            Expr::Column(i) => {
                out.insert(*i);
            }
            Expr::Literal(_) => {}
            Expr::Binary { left, right, .. } => {
                left.columns(out);
                right.columns(out);
            }
            Expr::Not(e) | Expr::Negative(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => {
                e.columns(out)
            }
            Expr::Cast { expr, .. } | Expr::TryCast { expr, .. } => expr.columns(out),
            Expr::Case {
                operand,
                when_then,
                else_expr,
            } => {
                if let Some(o) = operand {
                    o.columns(out);
                }
                for (w, t) in when_then {
                    w.columns(out);
                    t.columns(out);
                }
                if let Some(e) = else_expr {
                    e.columns(out);
                }
            }
            Expr::Coalesce(args) | Expr::Function { args, .. } => {
                args.iter().for_each(|a| a.columns(out))
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                expr.columns(out);
                low.columns(out);
                high.columns(out);
            }
            Expr::InList { expr, list, .. } => {
                expr.columns(out);
                list.iter().for_each(|a| a.columns(out));
            }
            Expr::Like { expr, pattern, .. } => {
                expr.columns(out);
                pattern.columns(out);
            }
        }
    }
}

/// The text of an unscaled decimal `v` with scale `s`: `125`, 2 -> `1.25`.
pub(crate) fn decimal_text(v: i128, s: i8) -> String {
    if s <= 0 {
        let zeros = "0".repeat(s.unsigned_abs() as usize);
        return format!("{v}{zeros}");
    }
    let digits = v.unsigned_abs().to_string();
    let s = s as usize;
    let padded = format!("{digits:0>width$}", width = s + 1);
    let (int, frac) = padded.split_at(padded.len() - s);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::BinaryOp;

    #[test]
    fn prints_sql_like_text_and_lists_columns() {
        let e = Expr::Binary {
            op: BinaryOp::And,
            left: Box::new(Expr::IsNotNull(Box::new(Expr::Column(1)))),
            right: Box::new(Expr::InList {
                expr: Box::new(Expr::Column(4)),
                list: vec![Expr::Literal(ScalarValue::Utf8("it's".into()))],
                negated: true,
            }),
        };
        assert_eq!(e.to_string(), "(#1 IS NOT NULL AND #4 NOT IN ('it''s'))");
        let mut cols = BTreeSet::new();
        e.columns(&mut cols);
        assert_eq!(cols.into_iter().collect::<Vec<_>>(), vec![1, 4]);
    }

    #[test]
    fn decimal_text_places_the_point() {
        assert_eq!(super::decimal_text(125, 2), "1.25");
        assert_eq!(super::decimal_text(-5, 3), "-0.005");
        assert_eq!(super::decimal_text(7, 0), "7");
        assert_eq!(super::decimal_text(7, -2), "700");
    }
}
