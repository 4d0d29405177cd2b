//! Scalar functions: string, math and time functions.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::format::{Item, StrftimeItems};
use regex::Regex;

use super::coercion::{is_integer, is_numeric, is_string, is_stringifiable, numeric_self};
use super::kernels::cast_strict;
use super::temporal::{date_trunc, date_trunc_type, extract, format_timestamps, is_temporal};
use super::{ScalarFunction, Value};
use crate::error::Result;
use crate::{exec_err, plan_err};

fn is_text(t: &DataType) -> bool {
    is_string(t) || t == &DataType::Null
}

fn is_int(t: &DataType) -> bool {
    is_integer(t) || t == &DataType::Null
}

fn check_arity(func: &ScalarFunction, args: &[DataType], min: usize, max: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        plan_err!(
            "{} expects {expected} argument(s), got {}",
            func.name(),
            args.len()
        );
    }
    Ok(())
}

fn check_arg(
    func: &ScalarFunction,
    args: &[DataType],
    i: usize,
    ok: bool,
    expected: &str,
) -> Result<()> {
    if !ok {
        let got = args.get(i).map(|t| t.to_string()).unwrap_or_default();
        plan_err!(
            "argument {} of {} must be {expected}, got {got}",
            i + 1,
            func.name()
        );
    }
    Ok(())
}

/// Checks the argument types of `func` and returns its result type.
///
/// `round_digits` is ROUND's digit count when it is known before the rows
/// are (a literal), which decides the scale of ROUND of a DECIMAL as in
/// Flink; `None` otherwise.
pub(crate) fn return_type(
    func: &ScalarFunction,
    args: &[DataType],
    round_digits: Option<i64>,
) -> Result<DataType> {
    use ScalarFunction as F;
    let t = |i: usize| args.get(i).cloned().unwrap_or(DataType::Null);
    match func {
        F::Lower | F::Upper | F::CharLength => {
            check_arity(func, args, 1, 1)?;
            check_arg(func, args, 0, is_text(&t(0)), "a string")?;
            Ok(if matches!(func, F::CharLength) {
                DataType::Int32
            } else {
                DataType::Utf8
            })
        }
        F::Trim | F::Ltrim | F::Rtrim => {
            check_arity(func, args, 1, 2)?;
            for i in 0..args.len() {
                check_arg(func, args, i, is_text(&t(i)), "a string")?;
            }
            Ok(DataType::Utf8)
        }
        F::Substring => {
            check_arity(func, args, 2, 3)?;
            check_arg(func, args, 0, is_text(&t(0)), "a string")?;
            for i in 1..args.len() {
                check_arg(func, args, i, is_int(&t(i)), "an integer")?;
            }
            Ok(DataType::Utf8)
        }
        F::Concat => {
            if args.is_empty() {
                plan_err!("CONCAT expects at least one argument");
            }
            for (i, a) in args.iter().enumerate() {
                check_arg(
                    func,
                    args,
                    i,
                    is_stringifiable(a),
                    "convertible to a string",
                )?;
            }
            Ok(DataType::Utf8)
        }
        F::RegexpReplace | F::Replace => {
            check_arity(func, args, 3, 3)?;
            for i in 0..3 {
                check_arg(func, args, i, is_text(&t(i)), "a string")?;
            }
            Ok(DataType::Utf8)
        }
        F::RegexpExtract => {
            check_arity(func, args, 2, 3)?;
            for i in 0..2 {
                check_arg(func, args, i, is_text(&t(i)), "a string")?;
            }
            if args.len() == 3 {
                check_arg(func, args, 2, is_int(&t(2)), "an integer")?;
            }
            Ok(DataType::Utf8)
        }
        F::SplitIndex => {
            check_arity(func, args, 3, 3)?;
            for i in 0..2 {
                check_arg(func, args, i, is_text(&t(i)), "a string")?;
            }
            check_arg(func, args, 2, is_int(&t(2)), "an integer")?;
            Ok(DataType::Utf8)
        }
        F::DateFormat => {
            check_arity(func, args, 2, 2)?;
            check_arg(
                func,
                args,
                0,
                is_temporal(&t(0)) || t(0) == DataType::Null,
                "a timestamp or date",
            )?;
            check_arg(func, args, 1, is_text(&t(1)), "a string")?;
            Ok(DataType::Utf8)
        }
        F::Extract(_) => {
            check_arity(func, args, 1, 1)?;
            check_arg(func, args, 0, is_temporal(&t(0)), "a timestamp or date")?;
            Ok(DataType::Int64)
        }
        F::DateTrunc(field) => {
            check_arity(func, args, 1, 1)?;
            date_trunc_type(*field, &t(0))
        }
        F::Abs | F::Floor | F::Ceil => {
            check_arity(func, args, 1, 1)?;
            numeric_result(func, args)
        }
        F::Round => {
            check_arity(func, args, 1, 2)?;
            if args.len() == 2 {
                check_arg(func, args, 1, is_int(&t(1)), "an integer")?;
            }
            numeric_result(func, args)
        }
    }
    .map(|t| match (func, t) {
        (F::Floor | F::Ceil, DataType::Decimal128(p, s)) => floor_ceil_decimal(p, s),
        (F::Round, DataType::Decimal128(p, s)) => {
            let digits = if args.len() == 1 {
                Some(0)
            } else {
                round_digits
            };
            round_decimal(p, s, digits)
        }
        (_, t) => t,
    })
}

/// Flink's type of FLOOR and CEIL of a DECIMAL(p, s): no scale, and one
/// more integer digit (CEIL(9.1) = 10).
fn floor_ceil_decimal(p: u8, s: i8) -> DataType {
    if s <= 0 {
        return DataType::Decimal128(p, s);
    }
    let integer = i16::from(p) - i16::from(s) + 1;
    DataType::Decimal128(u8::try_from(integer.clamp(1, 38)).unwrap_or(38), 0)
}

/// Flink's type of ROUND(DECIMAL(p, s), d): the scale is `d` (0 for a
/// negative `d`; unchanged when `d` >= `s`), with one more integer digit
/// for rounding up (9.99 -> 10.0). With `d` unknown before the rows (not
/// a literal), the scale stays `s`.
fn round_decimal(p: u8, s: i8, digits: Option<i64>) -> DataType {
    let scale = match digits {
        Some(d) if d >= i64::from(s) => return DataType::Decimal128(p, s),
        Some(d) => d.max(0),
        None => i64::from(s),
    };
    let integer = i64::from(p) - i64::from(s) + 1;
    let precision = (integer + scale).clamp(1, 38);
    DataType::Decimal128(
        u8::try_from(precision).unwrap_or(38),
        i8::try_from(scale).unwrap_or(0),
    )
}

/// ROUND's digit count when the plan knows it: 0 without one, the value
/// of an integer literal, `None` otherwise (a column, an expression, NULL).
/// Planning ([`Expr::data_type`]) and evaluation both decide by this, so
/// the type a batch gets is always the planned one.
pub(crate) fn literal_round_digits(func: &ScalarFunction, args: &[super::Expr]) -> Option<i64> {
    use super::{Expr, ScalarValue};
    if !matches!(func, ScalarFunction::Round) {
        return None;
    }
    match args.get(1) {
        None => Some(0),
        Some(Expr::Literal(ScalarValue::Int32(d))) => Some(i64::from(*d)),
        Some(Expr::Literal(ScalarValue::Int64(d))) => Some(*d),
        Some(_) => None,
    }
}

fn numeric_result(func: &ScalarFunction, args: &[DataType]) -> Result<DataType> {
    let t = args.first().cloned().unwrap_or(DataType::Null);
    if t == DataType::Null {
        return Ok(DataType::Null);
    }
    check_arg(func, args, 0, is_numeric(&t), "numeric")?;
    match numeric_self(&t) {
        Some(r) => Ok(r),
        None => plan_err!("argument 1 of {} must be numeric, got {t}", func.name()),
    }
}

/// Validates literal arguments at plan time (a bad regular expression).
pub(crate) fn check_literal_args(
    func: &ScalarFunction,
    literal_args: &[Option<&super::ScalarValue>],
) -> Result<()> {
    match (func, literal_args.get(1)) {
        (
            ScalarFunction::RegexpReplace | ScalarFunction::RegexpExtract,
            Some(Some(super::ScalarValue::Utf8(p))),
        ) => {
            compile(p).map_err(|e| crate::error::EngineError::Plan(e.to_string()))?;
        }
        (ScalarFunction::DateFormat, Some(Some(super::ScalarValue::Utf8(p)))) => {
            java_date_pattern(p).map_err(|e| crate::error::EngineError::Plan(e.to_string()))?;
        }
        _ => {}
    }
    Ok(())
}

fn compile(pattern: &str) -> Result<Regex> {
    match Regex::new(pattern) {
        Ok(r) => Ok(r),
        Err(e) => exec_err!("invalid regular expression '{pattern}': {e}"),
    }
}

fn utf8(a: &ArrayRef) -> Result<ArrayRef> {
    cast_strict(a, &DataType::Utf8)
}

/// Applies a string → string function row by row; `None` from `f` is NULL.
fn map_strings(a: &ArrayRef, f: impl Fn(&str) -> Option<String>) -> Result<ArrayRef> {
    let a = utf8(a)?;
    let s = a.as_string::<i32>();
    let out: StringArray = s.iter().map(|v| v.and_then(&f)).collect();
    Ok(Arc::new(out))
}

/// Evaluates `func` on arguments already evaluated on the same `n` rows.
/// `round_digits`: see [`literal_round_digits`].
pub(crate) fn evaluate(
    func: &ScalarFunction,
    args: &[Value],
    n: usize,
    round_digits: Option<i64>,
) -> Result<ArrayRef> {
    use ScalarFunction as F;
    let types: Vec<DataType> = args.iter().map(|a| a.data_type().clone()).collect();
    let ret = return_type(func, &types, round_digits)?;
    if ret == DataType::Null {
        return Ok(arrow::array::new_null_array(&DataType::Null, n));
    }
    let arrays: Vec<ArrayRef> = args
        .iter()
        .map(|a| a.clone().into_array(n))
        .collect::<Result<_>>()?;
    let arg = |i: usize| -> Result<&ArrayRef> {
        match arrays.get(i) {
            Some(a) => Ok(a),
            None => Err(crate::error::EngineError::Internal(format!(
                "{} lost argument {i}",
                func.name()
            ))),
        }
    };
    match func {
        F::Lower => map_strings(arg(0)?, |s| Some(s.to_lowercase())),
        F::Upper => map_strings(arg(0)?, |s| Some(s.to_uppercase())),
        F::Trim | F::Ltrim | F::Rtrim => trim(func, &arrays),
        F::CharLength => {
            let a = utf8(arg(0)?)?;
            let out: Int32Array = a
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| i32::try_from(s.chars().count()).unwrap_or(i32::MAX)))
                .collect();
            Ok(Arc::new(out))
        }
        F::Substring => substring(&arrays),
        F::Concat => concat(&arrays, n),
        F::RegexpReplace => regexp_replace(args, &arrays),
        F::Replace => replace(&arrays),
        F::RegexpExtract => regexp_extract(args, &arrays),
        F::SplitIndex => split_index(&arrays),
        F::DateFormat => date_format(&arrays),
        F::Extract(field) => extract(*field, arg(0)?),
        F::DateTrunc(field) => date_trunc(*field, arg(0)?),
        F::Abs | F::Floor | F::Ceil | F::Round => math(func, &arrays, &ret),
    }
}

/// TRIM family; the optional second argument lists the characters to strip
/// (a space by default, as in SQL).
fn trim(func: &ScalarFunction, arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let s = utf8(&arrays[0])?;
    let s = s.as_string::<i32>();
    let chars = match arrays.get(1) {
        Some(c) => Some(utf8(c)?),
        None => None,
    };
    let chars = chars.as_ref().map(|c| c.as_string::<i32>());
    let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
    for i in 0..s.len() {
        let set: Vec<char> = match chars {
            Some(c) if c.is_null(i) => {
                b.append_null();
                continue;
            }
            Some(c) => c.value(i).chars().collect(),
            None => vec![' '],
        };
        if s.is_null(i) {
            b.append_null();
            continue;
        }
        let v = s.value(i);
        let strip = |c: char| set.contains(&c);
        b.append_value(match func {
            ScalarFunction::Ltrim => v.trim_start_matches(strip),
            ScalarFunction::Rtrim => v.trim_end_matches(strip),
            _ => v.trim_matches(strip),
        });
    }
    Ok(Arc::new(b.finish()))
}

/// The character range `SUBSTRING(s FROM pos [FOR len])` selects, on a
/// string of `chars` characters, following Flink: positions are 1-based,
/// position 0 acts as 1, a negative position counts from the end, a range
/// past either end is clipped, and a negative length gives NULL.
fn substring_range(chars: i64, pos: i64, len: Option<i64>) -> Option<(usize, usize)> {
    let start = match pos {
        p if p > 0 => p - 1,
        p if p < 0 => chars.saturating_add(p),
        _ => 0,
    };
    let end = match len {
        Some(l) if l < 0 => return None,
        Some(l) => start.saturating_add(l).min(chars),
        None => chars,
    };
    let start = start.max(0);
    let (s, e) = if start >= end { (0, 0) } else { (start, end) };
    Some((
        usize::try_from(s).unwrap_or(0),
        usize::try_from(e).unwrap_or(0),
    ))
}

fn substring(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let s = utf8(&arrays[0])?;
    let s = s.as_string::<i32>();
    let pos = cast_strict(&arrays[1], &DataType::Int64)?;
    let pos = pos.as_primitive::<Int64Type>();
    let len = match arrays.get(2) {
        Some(l) => Some(cast_strict(l, &DataType::Int64)?),
        None => None,
    };
    let len = len.as_ref().map(|l| l.as_primitive::<Int64Type>());
    let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
    for i in 0..s.len() {
        if s.is_null(i) || pos.is_null(i) || len.is_some_and(|l| l.is_null(i)) {
            b.append_null();
            continue;
        }
        let v = s.value(i);
        let chars = i64::try_from(v.chars().count()).unwrap_or(i64::MAX);
        match substring_range(chars, pos.value(i), len.map(|l| l.value(i))) {
            None => b.append_null(),
            Some((from, to)) => {
                let piece: String = v.chars().skip(from).take(to - from).collect();
                b.append_value(piece);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

/// CONCAT and `||`: NULL when any argument is NULL (Flink).
pub(crate) fn concat(arrays: &[ArrayRef], n: usize) -> Result<ArrayRef> {
    let strings: Vec<ArrayRef> = arrays.iter().map(utf8).collect::<Result<_>>()?;
    let views: Vec<&StringArray> = strings.iter().map(|a| a.as_string::<i32>()).collect();
    let mut b = StringBuilder::with_capacity(n, 0);
    let mut buf = String::new();
    'rows: for i in 0..n {
        buf.clear();
        for v in &views {
            if v.is_null(i) {
                b.append_null();
                continue 'rows;
            }
            buf.push_str(v.value(i));
        }
        b.append_value(&buf);
    }
    Ok(Arc::new(b.finish()))
}

/// REGEXP_REPLACE(s, pattern, replacement): replaces every match; `$1` in
/// the replacement refers to a capture group. A constant pattern is compiled
/// once per batch, varying patterns once per distinct value.
fn regexp_replace(args: &[Value], arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let s = utf8(&arrays[0])?;
    let s = s.as_string::<i32>();
    let pat = utf8(&arrays[1])?;
    let pat = pat.as_string::<i32>();
    let rep = utf8(&arrays[2])?;
    let rep = rep.as_string::<i32>();
    let constant = constant_regex(args.get(1))?;
    let mut cache: HashMap<String, Regex> = HashMap::new();
    let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
    for i in 0..s.len() {
        if s.is_null(i) || pat.is_null(i) || rep.is_null(i) {
            b.append_null();
            continue;
        }
        let re = row_regex(constant.as_ref(), &mut cache, pat.value(i))?;
        b.append_value(re.replace_all(s.value(i), rep.value(i)));
    }
    Ok(Arc::new(b.finish()))
}

/// `REPLACE(s, search, replacement)`: NULL when any argument is NULL.
fn replace(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let s = utf8(&arrays[0])?;
    let s = s.as_string::<i32>();
    let search = utf8(&arrays[1])?;
    let search = search.as_string::<i32>();
    let rep = utf8(&arrays[2])?;
    let rep = rep.as_string::<i32>();
    let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
    for i in 0..s.len() {
        if s.is_null(i) || search.is_null(i) || rep.is_null(i) {
            b.append_null();
            continue;
        }
        b.append_value(s.value(i).replace(search.value(i), rep.value(i)));
    }
    Ok(Arc::new(b.finish()))
}

/// A constant pattern argument compiled once, or `None` when it varies.
fn constant_regex(arg: Option<&Value>) -> Result<Option<Regex>> {
    let Some(Value::Scalar(p)) = arg else {
        return Ok(None);
    };
    let p = utf8(p)?;
    let p = p.as_string::<i32>();
    if p.is_empty() || p.is_null(0) {
        return Ok(None);
    }
    compile(p.value(0)).map(Some)
}

/// The regular expression of one row: the constant one, or the row's
/// pattern compiled once per distinct value.
fn row_regex<'a>(
    constant: Option<&'a Regex>,
    cache: &'a mut HashMap<String, Regex>,
    pattern: &str,
) -> Result<&'a Regex> {
    if let Some(re) = constant {
        return Ok(re);
    }
    if !cache.contains_key(pattern) {
        cache.insert(pattern.to_string(), compile(pattern)?);
    }
    match cache.get(pattern) {
        Some(re) => Ok(re),
        None => exec_err!("regular expression cache lost '{pattern}'"),
    }
}

/// REGEXP_EXTRACT(s, pattern [, group]) as Flink: the first match's group
/// (0, the default, is the whole match); NULL when nothing matches, the
/// group did not take part in the match, or the group does not exist.
fn regexp_extract(args: &[Value], arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let s = utf8(&arrays[0])?;
    let s = s.as_string::<i32>();
    let pat = utf8(&arrays[1])?;
    let pat = pat.as_string::<i32>();
    let group = match arrays.get(2) {
        Some(g) => Some(cast_strict(g, &DataType::Int64)?),
        None => None,
    };
    let group = group.as_ref().map(|g| g.as_primitive::<Int64Type>());
    let constant = constant_regex(args.get(1))?;
    let mut cache: HashMap<String, Regex> = HashMap::new();
    let mut b = StringBuilder::with_capacity(s.len(), 0);
    for i in 0..s.len() {
        if s.is_null(i) || pat.is_null(i) || group.is_some_and(|g| g.is_null(i)) {
            b.append_null();
            continue;
        }
        let re = row_regex(constant.as_ref(), &mut cache, pat.value(i))?;
        let g = group.map_or(0, |g| g.value(i));
        let piece = usize::try_from(g).ok().and_then(|g| {
            re.captures(s.value(i))
                .and_then(|c| c.get(g))
                .map(|m| m.as_str())
        });
        b.append_option(piece);
    }
    Ok(Arc::new(b.finish()))
}

/// SPLIT_INDEX(s, separator, n) as Flink: pieces between separators,
/// empty ones included; NULL for a piece past the end, a negative n or an
/// empty separator.
fn split_index(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let s = utf8(&arrays[0])?;
    let s = s.as_string::<i32>();
    let sep = utf8(&arrays[1])?;
    let sep = sep.as_string::<i32>();
    let n = cast_strict(&arrays[2], &DataType::Int64)?;
    let n = n.as_primitive::<Int64Type>();
    let mut b = StringBuilder::with_capacity(s.len(), 0);
    for i in 0..s.len() {
        if s.is_null(i) || sep.is_null(i) || n.is_null(i) || sep.value(i).is_empty() {
            b.append_null();
            continue;
        }
        let piece = usize::try_from(n.value(i))
            .ok()
            .and_then(|k| s.value(i).split(sep.value(i)).nth(k));
        b.append_option(piece);
    }
    Ok(Arc::new(b.finish()))
}

/// DATE_FORMAT(ts, pattern): each distinct pattern is translated once.
fn date_format(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let pat = utf8(&arrays[1])?;
    let pat = pat.as_string::<i32>();
    let mut cache: HashMap<&str, Vec<Item<'static>>> = HashMap::new();
    for p in pat.iter().flatten() {
        if !cache.contains_key(p) {
            let chrono_format = java_date_pattern(p)?;
            let items = match StrftimeItems::new(&chrono_format).parse_to_owned() {
                Ok(items) => items,
                Err(e) => exec_err!("date pattern '{p}': {e}"),
            };
            cache.insert(p, items);
        }
    }
    format_timestamps(&arrays[0], |i| {
        if pat.is_null(i) {
            return None;
        }
        cache.get(pat.value(i)).map(Vec::as_slice)
    })
}

/// Translates a Java date pattern (Flink's DATE_FORMAT) into a chrono
/// format string. Letters: `yyyy` `yy` `MM` `M` `MMM` `dd` `d` `HH` `H` `hh`
/// `h` `mm` `m` `ss` `s` `SSS` `a` `EEE`; text in single quotes is literal
/// (`''` is a quote); other letters are an error, other characters literal.
pub(crate) fn java_date_pattern(pattern: &str) -> Result<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            let Some(end) = chars[i + 1..].iter().position(|&x| x == '\'') else {
                exec_err!("unterminated quote in date pattern '{pattern}'");
            };
            for &x in &chars[i + 1..i + 1 + end] {
                if x == '%' {
                    out.push_str("%%");
                } else {
                    out.push(x);
                }
            }
            i += end + 2;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let spec = match (c, run) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            _ => exec_err!(
                "date pattern '{pattern}': '{}' is not supported (use y, M, d, H, h, m, s, SSS, a, E)",
                c.to_string().repeat(run)
            ),
        };
        out.push_str(spec);
        i += run;
    }
    Ok(out)
}

/// ABS, FLOOR, CEIL and ROUND. Integers are computed as BIGINT with checked
/// arithmetic and cast back, so `ABS(INT_MIN)` is an overflow error; floats
/// as DOUBLE. ROUND rounds half away from zero; a negative digit count rounds
/// to tens, hundreds, ...
fn math(func: &ScalarFunction, arrays: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    let x = &arrays[0];
    let digits = match arrays.get(1) {
        Some(d) => Some(cast_strict(d, &DataType::Int64)?),
        None => None,
    };
    let digits = digits.as_ref().map(|d| d.as_primitive::<Int64Type>());
    let digit_at = |i: usize| -> Option<i64> {
        match digits {
            None => Some(0),
            Some(d) if d.is_null(i) => None,
            Some(d) => Some(d.value(i)),
        }
    };
    if let DataType::Decimal128(_, scale) = ret {
        return decimal_math(func, x, ret, *scale, digit_at);
    }
    let out: ArrayRef = if is_integer(ret) {
        let v = cast_strict(x, &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        let mut out = Vec::with_capacity(v.len());
        for i in 0..v.len() {
            if v.is_null(i) {
                out.push(None);
                continue;
            }
            let x = v.value(i);
            let r = match func {
                ScalarFunction::Abs => x.checked_abs(),
                ScalarFunction::Round => match digit_at(i) {
                    None => {
                        out.push(None);
                        continue;
                    }
                    Some(d) => round_int(x, d),
                },
                _ => Some(x),
            };
            match r {
                Some(r) => out.push(Some(r)),
                None => exec_err!("numeric overflow in {} of {x}", func.name()),
            }
        }
        Arc::new(Int64Array::from(out))
    } else {
        let v = cast_strict(x, &DataType::Float64)?;
        let v = v.as_primitive::<Float64Type>();
        let out: Float64Array = (0..v.len())
            .map(|i| {
                if v.is_null(i) {
                    return None;
                }
                let x = v.value(i);
                Some(match func {
                    ScalarFunction::Abs => x.abs(),
                    ScalarFunction::Floor => x.floor(),
                    ScalarFunction::Ceil => x.ceil(),
                    _ => {
                        let d = digit_at(i)?;
                        let d = i32::try_from(d.clamp(-400, 400)).unwrap_or(0);
                        let f = 10f64.powi(d);
                        let r = (x * f).round() / f;
                        if r.is_finite() {
                            r
                        } else {
                            x
                        }
                    }
                })
            })
            .collect();
        Arc::new(out)
    };
    // Casting back to a narrower integer fails on values that do not fit.
    cast_strict(&out, ret).map_err(|e| match e {
        crate::error::EngineError::Execution(m) => crate::error::EngineError::Execution(format!(
            "numeric overflow in {}: {m}",
            func.name()
        )),
        other => other,
    })
}

/// ABS, FLOOR, CEIL and ROUND of a DECIMAL, exactly, on the unscaled
/// values at the argument's scale, rounding half away from zero; the
/// result is then brought to `ret`'s scale (`out_scale`), which drops only
/// digits already cleared, and checked against its precision.
fn decimal_math(
    func: &ScalarFunction,
    x: &ArrayRef,
    ret: &DataType,
    out_scale: i8,
    digit_at: impl Fn(usize) -> Option<i64>,
) -> Result<ArrayRef> {
    use arrow::datatypes::Decimal128Type;
    let scale = match x.data_type() {
        DataType::Decimal128(_, s) => (*s).max(out_scale),
        _ => out_scale,
    };
    let v = cast_strict(x, &DataType::Decimal128(38, scale))?;
    let v = v.as_primitive::<Decimal128Type>();
    let DataType::Decimal128(out_precision, _) = ret else {
        exec_err!("{} of a DECIMAL must give a DECIMAL", func.name());
    };
    let shift = 10i128.pow(u32::try_from(scale - out_scale).unwrap_or(0));
    let bound = 10i128.checked_pow(u32::from(*out_precision));
    // Clears the digits below 10^`cut` of `x` (`cut` in 0..=38), rounding
    // by `mode`: -1 down, 1 up, 0 half away from zero.
    let clear = |x: i128, cut: i64, mode: i8| -> Option<i128> {
        if cut <= 0 {
            return Some(x);
        }
        // Every digit cleared: a DECIMAL has at most 38.
        if cut > 38 {
            return Some(0);
        }
        let Some(f) = 10i128.checked_pow(u32::try_from(cut).ok()?) else {
            return Some(0);
        };
        let q = x.div_euclid(f);
        let r = x.rem_euclid(f);
        let q = match mode {
            -1 => q,
            1 if r > 0 => q.checked_add(1)?,
            1 => q,
            _ => {
                // Half away from zero, by the magnitude.
                let (qa, ra) = (x.abs() / f, x.abs() % f);
                let qa = if ra >= f - ra { qa.checked_add(1)? } else { qa };
                return qa.checked_mul(f).map(|m| if x < 0 { -m } else { m });
            }
        };
        q.checked_mul(f)
    };
    let mut out = Vec::with_capacity(v.len());
    for i in 0..v.len() {
        if v.is_null(i) {
            out.push(None);
            continue;
        }
        let x = v.value(i);
        let r = match func {
            ScalarFunction::Abs => x.checked_abs(),
            ScalarFunction::Floor => clear(x, i64::from(scale), -1),
            ScalarFunction::Ceil => clear(x, i64::from(scale), 1),
            _ => match digit_at(i) {
                None => {
                    out.push(None);
                    continue;
                }
                Some(d) => clear(x, i64::from(scale).saturating_sub(d), 0),
            },
        };
        match r.map(|r| r / shift) {
            Some(r) if bound.is_none_or(|b| r.abs() < b) => out.push(Some(r)),
            _ => exec_err!("numeric overflow in {} of a DECIMAL", func.name()),
        }
    }
    Ok(Arc::new(
        arrow::array::Decimal128Array::from(out).with_data_type(ret.clone()),
    ))
}

/// Rounds an integer to `-digits` decimal places, half away from zero.
fn round_int(x: i64, digits: i64) -> Option<i64> {
    if digits >= 0 {
        return Some(x);
    }
    if digits < -18 {
        return Some(0);
    }
    let f = 10i64.checked_pow(u32::try_from(-digits).ok()?)?;
    let q = x / f;
    let rem = x % f;
    let q = if rem.unsigned_abs() * 2 >= f.unsigned_abs() {
        q.checked_add(x.signum())?
    } else {
        q
    };
    q.checked_mul(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_ranges_follow_flink() {
        // 'hello' has 5 characters
        assert_eq!(substring_range(5, 1, Some(3)), Some((0, 3)));
        assert_eq!(substring_range(5, 0, Some(3)), Some((0, 3)));
        assert_eq!(substring_range(5, -3, None), Some((2, 5)));
        assert_eq!(substring_range(5, -7, Some(4)), Some((0, 2)));
        assert_eq!(substring_range(5, 9, Some(2)), Some((0, 0)));
        assert_eq!(substring_range(5, 2, Some(100)), Some((1, 5)));
        assert_eq!(substring_range(5, 2, Some(-1)), None);
        assert_eq!(substring_range(5, i64::MIN, Some(i64::MAX)), Some((0, 4)));
    }

    #[test]
    fn integer_rounding() {
        assert_eq!(round_int(15, -1), Some(20));
        assert_eq!(round_int(-15, -1), Some(-20));
        assert_eq!(round_int(14, -1), Some(10));
        assert_eq!(round_int(1234, 2), Some(1234));
        assert_eq!(round_int(i64::MAX, -1), None);
        assert_eq!(round_int(5, -19), Some(0));
    }

    /// Flink's result types of FLOOR, CEIL and ROUND of DECIMAL(p, s)
    /// (Flink's LogicalTypeMerging rules, worked out per case).
    #[test]
    fn decimal_rounding_types_follow_flink() {
        let d = DataType::Decimal128;
        assert_eq!(floor_ceil_decimal(10, 2), d(9, 0));
        assert_eq!(floor_ceil_decimal(7, 0), d(7, 0));
        assert_eq!(floor_ceil_decimal(38, 38), d(1, 0));
        assert_eq!(round_decimal(10, 2, Some(0)), d(9, 0));
        assert_eq!(round_decimal(10, 3, Some(1)), d(9, 1));
        assert_eq!(round_decimal(10, 3, Some(3)), d(10, 3));
        assert_eq!(round_decimal(10, 3, Some(7)), d(10, 3));
        assert_eq!(round_decimal(10, 3, Some(-2)), d(8, 0));
        assert_eq!(round_decimal(38, 10, Some(5)), d(34, 5));
        assert_eq!(round_decimal(38, 0, Some(-1)), d(38, 0));
        // A digit count known only per row keeps the scale.
        assert_eq!(round_decimal(10, 3, None), d(11, 3));
    }

    /// Rounding a DECIMAL moves its digits to the result's scale exactly,
    /// half away from zero, and fails past the result's precision.
    #[test]
    fn decimal_rounding_values() -> Result<()> {
        let x: ArrayRef = Arc::new(
            arrow::array::Decimal128Array::from(vec![Some(123_455), Some(-125_500), None])
                .with_precision_and_scale(7, 3)?,
        );
        let digits = |d: i64| Value::Scalar(Arc::new(Int64Array::from(vec![d])) as ArrayRef);
        let round = |d: i64| -> Result<ArrayRef> {
            evaluate(
                &ScalarFunction::Round,
                &[Value::Array(Arc::clone(&x)), digits(d)],
                3,
                Some(d),
            )
        };
        let values = |a: &ArrayRef| -> Vec<Option<i128>> {
            a.as_primitive::<arrow::datatypes::Decimal128Type>()
                .iter()
                .collect()
        };
        let two = round(2)?;
        assert_eq!(two.data_type(), &DataType::Decimal128(7, 2));
        assert_eq!(values(&two), vec![Some(12_346), Some(-12_550), None]);
        let tens = round(-1)?;
        assert_eq!(tens.data_type(), &DataType::Decimal128(5, 0));
        assert_eq!(values(&tens), vec![Some(120), Some(-130), None]);
        let floor = evaluate(
            &ScalarFunction::Floor,
            &[Value::Array(Arc::clone(&x))],
            3,
            None,
        )?;
        assert_eq!(floor.data_type(), &DataType::Decimal128(5, 0));
        assert_eq!(values(&floor), vec![Some(123), Some(-126), None]);
        // 999.5 in DECIMAL(4, 1) rounds to 1000, which DECIMAL(4, 0) holds;
        // the largest DECIMAL(38, 0) rounded to tens has 39 digits.
        let big: ArrayRef = Arc::new(
            arrow::array::Decimal128Array::from(vec![Some(9_995)])
                .with_precision_and_scale(4, 1)?,
        );
        let r = evaluate(&ScalarFunction::Round, &[Value::Array(big)], 1, Some(0))?;
        assert_eq!(values(&r), vec![Some(1000)]);
        let max: ArrayRef = Arc::new(
            arrow::array::Decimal128Array::from(vec![Some(10i128.pow(38) - 1)])
                .with_precision_and_scale(38, 0)?,
        );
        let err = evaluate(
            &ScalarFunction::Round,
            &[Value::Array(max), digits(-1)],
            1,
            Some(-1),
        );
        assert!(
            err.as_ref()
                .is_err_and(|e| e.to_string().contains("overflow")),
            "{err:?}"
        );
        Ok(())
    }
}
