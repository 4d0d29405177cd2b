//! Reading literal text: numbers and strings, `DATE '…'` dates, INTERVAL
//! values (single units, unit lists and ranges such as `DAY TO SECOND`) and
//! the time-unit names of EXTRACT, FLOOR ... TO and DATE_TRUNC.
//!
//! `TIMESTAMP '…'` text is read by the engine's
//! [`runnel_engine::time::parse_timestamp_millis`], shared with the
//! connectors, so a literal and a connector's start-time option accept the
//! same text.

use runnel_engine::expr::{ScalarValue, TimeUnitField};
use sqlparser::ast::{self, Spanned};

use crate::error::{Position, Result, SqlError};

/// The text of a character-string literal (not byte or hex strings).
pub(super) fn string_value(v: &ast::Value) -> Option<&str> {
    use ast::Value as V;
    match v {
        V::SingleQuotedString(s)
        | V::DoubleQuotedString(s)
        | V::TripleSingleQuotedString(s)
        | V::TripleDoubleQuotedString(s)
        | V::EscapedStringLiteral(s)
        | V::UnicodeStringLiteral(s)
        | V::NationalStringLiteral(s)
        | V::SingleQuotedRawStringLiteral(s)
        | V::DoubleQuotedRawStringLiteral(s)
        | V::TripleSingleQuotedRawStringLiteral(s)
        | V::TripleDoubleQuotedRawStringLiteral(s) => Some(s),
        V::DollarQuotedString(s) => Some(&s.value),
        _ => None,
    }
}

/// The value of a literal that is not typed by a keyword in front of it.
pub(super) fn literal(v: &ast::Value, pos: Position) -> Result<ScalarValue> {
    if let Some(s) = string_value(v) {
        return Ok(ScalarValue::Utf8(s.to_string()));
    }
    match v {
        ast::Value::Number(n, _) => number_literal(n, pos),
        ast::Value::Boolean(b) => Ok(ScalarValue::Boolean(*b)),
        ast::Value::Null => Ok(ScalarValue::Null),
        ast::Value::Placeholder(p) => Err(SqlError::plan(
            format!("query parameters ({p}) are not supported"),
            pos,
        )),
        other => Err(SqlError::plan(format!("unsupported literal {other}"), pos)),
    }
}

/// A number literal: INT when it fits, then BIGINT; `1.25` is an exact
/// DECIMAL(3, 2) as in Flink (an integer past BIGINT a DECIMAL(p, 0));
/// with an exponent (`1.5E3`) a DOUBLE.
pub(super) fn number_literal(text: &str, pos: Position) -> Result<ScalarValue> {
    let is_integer = text
        .strip_prefix('-')
        .unwrap_or(text)
        .chars()
        .all(|c| c.is_ascii_digit());
    if is_integer {
        if let Ok(v) = text.parse::<i64>() {
            return Ok(match i32::try_from(v) {
                Ok(small) => ScalarValue::Int32(small),
                Err(_) => ScalarValue::Int64(v),
            });
        }
    }
    if let Some(d) = decimal_literal(text) {
        return Ok(d);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(ScalarValue::Float64(v)),
        _ => Err(SqlError::plan(
            format!("invalid numeric literal {text}"),
            pos,
        )),
    }
}

/// `[-]digits[.digits]` as a DECIMAL: precision the significant digits
/// (at least the scale), scale the digits after the point; `None` for
/// other text or more than 38 digits.
fn decimal_literal(text: &str) -> Option<ScalarValue> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0').len();
    let scale = frac.len();
    let precision = significant.max(scale).max(1);
    if precision > 38 {
        return None;
    }
    let unscaled: i128 = digits.parse().ok()?;
    Some(ScalarValue::Decimal128(
        if negative { -unscaled } else { unscaled },
        u8::try_from(precision).ok()?,
        i8::try_from(scale).ok()?,
    ))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(super) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Counting years from March puts the leap day at the end of the year,
    // so the day of the year follows a fixed pattern per month.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn parse_digits(s: &str, min_len: usize, max_len: usize) -> Option<i64> {
    if s.len() < min_len || s.len() > max_len || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub(super) fn parse_date_days(text: &str) -> Option<i32> {
    let mut parts = text.trim().splitn(3, '-');
    let year = parse_digits(parts.next()?, 4, 4)?;
    let month = parse_digits(parts.next()?, 1, 2)?;
    let day = parse_digits(parts.next()?, 1, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    i32::try_from(days_from_civil(year, month, day)).ok()
}

/// An INTERVAL value: exact milliseconds or calendar months, which have no
/// fixed length.
pub(super) enum IntervalValue {
    Millis(i64),
    Months(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum IntervalUnitKind {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl IntervalUnitKind {
    fn from_field(f: &ast::DateTimeField) -> Option<Self> {
        use ast::DateTimeField as D;
        Some(match f {
            D::Year | D::Years => Self::Year,
            D::Month | D::Months => Self::Month,
            D::Week(None) | D::Weeks => Self::Week,
            D::Day | D::Days => Self::Day,
            D::Hour | D::Hours => Self::Hour,
            D::Minute | D::Minutes => Self::Minute,
            D::Second | D::Seconds => Self::Second,
            D::Millisecond | D::Milliseconds => Self::Millisecond,
            D::Custom(i) => return Self::from_name(&i.value),
            _ => return None,
        })
    }

    fn from_name(s: &str) -> Option<Self> {
        let s = s.to_ascii_uppercase();
        let singular = s.strip_suffix('S').unwrap_or(&s);
        Some(match singular {
            "YEAR" => Self::Year,
            "MONTH" => Self::Month,
            "WEEK" => Self::Week,
            "DAY" => Self::Day,
            "HOUR" => Self::Hour,
            "MINUTE" => Self::Minute,
            "SECOND" => Self::Second,
            "MILLISECOND" => Self::Millisecond,
            _ => return None,
        })
    }

    /// Milliseconds per unit, `None` for the calendar units.
    fn millis(self) -> Option<i64> {
        Some(match self {
            Self::Year | Self::Month => return None,
            Self::Week => 7 * 86_400_000,
            Self::Day => 86_400_000,
            Self::Hour => 3_600_000,
            Self::Minute => 60_000,
            Self::Second => 1_000,
            Self::Millisecond => 1,
        })
    }
}

/// The text of an interval's value: a quoted string or a (signed) number.
fn interval_text(e: &ast::Expr) -> Option<String> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => Some(n.clone()),
            other => string_value(other).map(str::to_string),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => interval_text(expr).map(|t| format!("-{t}")),
        ast::Expr::Nested(inner) => interval_text(inner),
        _ => None,
    }
}

/// `n * unit` where `n` may have a fraction (`1.5 SECOND`), rounded to whole
/// milliseconds.
fn scaled_millis(number: &str, unit_ms: i64) -> Option<i64> {
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let whole_v = if whole.is_empty() {
        0
    } else {
        parse_digits(whole, 1, 19)?
    };
    let mut ms = whole_v.checked_mul(unit_ms)?;
    if !fraction.is_empty() {
        if !fraction.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let f: f64 = format!("0.{fraction}").parse().ok()?;
        // Fractions below a millisecond are rounded: the engine is ms-precise.
        let extra = (f * unit_ms as f64).round() as i64;
        ms = ms.checked_add(extra)?;
    }
    Some(ms)
}

/// The value of an `INTERVAL` literal, with its sign applied.
pub(super) fn parse_interval(iv: &ast::Interval, pos: Position) -> Result<IntervalValue> {
    let bad = |detail: &str| SqlError::plan(format!("invalid INTERVAL literal: {detail}"), pos);
    let Some(text) = interval_text(&iv.value) else {
        return Err(bad(
            "the value must be a quoted string such as INTERVAL '5' SECOND",
        ));
    };
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let value = match (&iv.leading_field, &iv.last_field) {
        (None, _) => parse_unit_pairs(body).ok_or_else(|| {
            bad(&format!(
                "'{text}' has no unit; write for example INTERVAL '5' SECOND"
            ))
        })?,
        (Some(lead), None) => {
            let unit = IntervalUnitKind::from_field(lead)
                .ok_or_else(|| bad(&format!("unsupported unit {lead}")))?;
            single_unit(body, unit)
                .ok_or_else(|| bad(&format!("'{text}' is not a number of {lead}")))?
        }
        (Some(lead), Some(last)) => {
            let (Some(l), Some(t)) = (
                IntervalUnitKind::from_field(lead),
                IntervalUnitKind::from_field(last),
            ) else {
                return Err(bad(&format!("unsupported range {lead} TO {last}")));
            };
            range_value(body, l, t)
                .ok_or_else(|| bad(&format!("'{text}' does not match {lead} TO {last}")))?
        }
    };
    Ok(match value {
        IntervalValue::Millis(ms) if negative => IntervalValue::Millis(-ms),
        IntervalValue::Months(m) if negative => IntervalValue::Months(-m),
        v => v,
    })
}

fn single_unit(number: &str, unit: IntervalUnitKind) -> Option<IntervalValue> {
    match unit.millis() {
        Some(ms) => scaled_millis(number, ms).map(IntervalValue::Millis),
        None => {
            let n = i32::try_from(parse_digits(number, 1, 10)?).ok()?;
            let months = if unit == IntervalUnitKind::Year {
                n.checked_mul(12)?
            } else {
                n
            };
            Some(IntervalValue::Months(months))
        }
    }
}

/// `'5 seconds'`, `'1 day 2 hours'`: number/unit pairs written in the string.
fn parse_unit_pairs(body: &str) -> Option<IntervalValue> {
    let tokens: Vec<&str> = body.split_whitespace().collect();
    if tokens.is_empty() || !tokens.len().is_multiple_of(2) {
        return None;
    }
    let mut millis: Option<i64> = None;
    let mut months: Option<i32> = None;
    for pair in tokens.chunks(2) {
        let [n, u] = pair else { return None };
        match single_unit(n, IntervalUnitKind::from_name(u)?)? {
            IntervalValue::Millis(ms) => millis = Some(millis.unwrap_or(0).checked_add(ms)?),
            IntervalValue::Months(m) => months = Some(months.unwrap_or(0).checked_add(m)?),
        }
    }
    match (millis, months) {
        (Some(ms), None) => Some(IntervalValue::Millis(ms)),
        (None, Some(m)) => Some(IntervalValue::Months(m)),
        // A value mixing months with days has no single representation.
        _ => None,
    }
}

/// `'1-6' YEAR TO MONTH`, `'1:30' MINUTE TO SECOND`, `'2 03:04:05.5' DAY TO SECOND`.
fn range_value(
    body: &str,
    lead: IntervalUnitKind,
    last: IntervalUnitKind,
) -> Option<IntervalValue> {
    use IntervalUnitKind as U;
    if lead == U::Year && last == U::Month {
        let (y, m) = body.split_once('-')?;
        let years = i32::try_from(parse_digits(y.trim(), 1, 9)?).ok()?;
        let months = i32::try_from(parse_digits(m.trim(), 1, 2)?).ok()?;
        if months > 11 {
            return None;
        }
        return Some(IntervalValue::Months(
            years.checked_mul(12)?.checked_add(months)?,
        ));
    }
    const ORDER: [IntervalUnitKind; 4] = [U::Day, U::Hour, U::Minute, U::Second];
    let first = ORDER.iter().position(|u| *u == lead)?;
    let end = ORDER.iter().position(|u| *u == last)?;
    if end <= first {
        return None;
    }
    let parts: Vec<&str> = body.split([' ', ':']).filter(|p| !p.is_empty()).collect();
    let units = ORDER.get(first..=end)?;
    if parts.len() != units.len() {
        return None;
    }
    let mut total: i64 = 0;
    for (i, (part, unit)) in parts.iter().zip(units).enumerate() {
        let unit_ms = unit.millis()?;
        let is_last = i + 1 == units.len();
        let ms = if is_last && *unit == U::Second {
            scaled_millis(part, unit_ms)?
        } else {
            parse_digits(part, 1, 18)?.checked_mul(unit_ms)?
        };
        // Fields after the leading one are bounded by the next larger unit.
        if i > 0 {
            let limit = match unit {
                U::Hour => 24 * 3_600_000,
                _ => 60 * unit_ms,
            };
            if ms >= limit {
                return None;
            }
        }
        total = total.checked_add(ms)?;
    }
    Some(IntervalValue::Millis(total))
}

/// Parses an interval literal expression (`INTERVAL '5' SECOND`) into milliseconds; month and year intervals are an error.
pub fn interval_millis(expr: &ast::Expr) -> Result<i64> {
    let pos = Position::of(expr.span());
    match expr {
        ast::Expr::Interval(iv) => match parse_interval(iv, pos)? {
            IntervalValue::Millis(ms) => Ok(ms),
            IntervalValue::Months(_) => Err(SqlError::plan(
                "month and year intervals are not allowed here; use MILLISECOND, SECOND, MINUTE, HOUR or DAY",
                pos,
            )),
        },
        ast::Expr::Nested(inner) => interval_millis(inner),
        other => Err(SqlError::plan(
            format!("expected an INTERVAL literal such as INTERVAL '5' SECOND, got {other}"),
            pos,
        )),
    }
}

/// The time unit a date-time field names, for EXTRACT and FLOOR ... TO.
pub(super) fn time_unit(f: &ast::DateTimeField) -> Option<TimeUnitField> {
    use ast::DateTimeField as D;
    Some(match f {
        D::Year | D::Years => TimeUnitField::Year,
        D::Quarter => TimeUnitField::Quarter,
        D::Month | D::Months => TimeUnitField::Month,
        D::Week(None) | D::Weeks | D::IsoWeek => TimeUnitField::Week,
        D::Day | D::Days => TimeUnitField::Day,
        D::Hour | D::Hours => TimeUnitField::Hour,
        D::Minute | D::Minutes => TimeUnitField::Minute,
        D::Second | D::Seconds => TimeUnitField::Second,
        D::Millisecond | D::Milliseconds => TimeUnitField::Millisecond,
        D::Dow | D::DayOfWeek => TimeUnitField::DayOfWeek,
        D::Doy | D::DayOfYear => TimeUnitField::DayOfYear,
        D::Epoch => TimeUnitField::Epoch,
        D::Custom(i) => return unit_from_name(&i.value),
        _ => return None,
    })
}

/// The time unit a quoted name such as 'HOUR' stands for (DATE_TRUNC).
pub(super) fn unit_from_name(s: &str) -> Option<TimeUnitField> {
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "YEAR" => TimeUnitField::Year,
        "QUARTER" => TimeUnitField::Quarter,
        "MONTH" => TimeUnitField::Month,
        "WEEK" => TimeUnitField::Week,
        "DAY" => TimeUnitField::Day,
        "HOUR" => TimeUnitField::Hour,
        "MINUTE" => TimeUnitField::Minute,
        "SECOND" => TimeUnitField::Second,
        "MILLISECOND" => TimeUnitField::Millisecond,
        "DOW" | "DAYOFWEEK" => TimeUnitField::DayOfWeek,
        "DOY" | "DAYOFYEAR" => TimeUnitField::DayOfYear,
        "EPOCH" => TimeUnitField::Epoch,
        _ => return None,
    })
}

/// True for the units DATE_TRUNC / FLOOR(.. TO ..) accept.
pub(super) fn truncatable(u: TimeUnitField) -> bool {
    !matches!(
        u,
        TimeUnitField::DayOfWeek | TimeUnitField::DayOfYear | TimeUnitField::Epoch
    )
}
