//! SQL type names both ways: the SQL types a statement writes
//! ([`sql_type_to_arrow`]) and the Flink names shown for Arrow types in
//! DESCRIBE, result metadata and error messages ([`flink_type_name`]).

use arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use runnel_engine::expr::{INTERVAL_MONTHS, INTERVAL_MS, TS_MS};
use sqlparser::ast;

use crate::error::{Position, Result, SqlError};

// Types
// ---------------------------------------------------------------------------

/// DECIMAL(p, s): precision 1 to 38, scale 0 to p.
fn decimal_type(info: &ast::ExactNumberInfo, position: Position) -> Result<DataType> {
    let (p, s) = match info {
        ast::ExactNumberInfo::None => (10, 0),
        ast::ExactNumberInfo::Precision(p) => (*p, 0),
        ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s as u64),
    };
    if !(1..=38).contains(&p) || s > p {
        return Err(SqlError::plan(
            format!("DECIMAL({p}, {s}) is not a valid type: the precision is 1 to 38 and the scale 0 to the precision"),
            position,
        ));
    }
    Ok(DataType::Decimal128(p as u8, s as i8))
}

/// SQL type → Arrow type; DECIMAL(p, s) is Arrow's exact `Decimal128(p, s)`
/// (DECIMAL alone is DECIMAL(10, 0), as in Flink), timestamps are
/// millisecond precision.
pub fn sql_type_to_arrow(t: &ast::DataType, position: Position) -> Result<DataType> {
    use ast::DataType as S;
    Ok(match t {
        S::TinyInt(_) => DataType::Int8,
        S::SmallInt(_) | S::Int2(_) | S::Int16 => DataType::Int16,
        S::Int(_) | S::Integer(_) | S::Int4(_) | S::Int32 => DataType::Int32,
        S::BigInt(_) | S::Int8(_) | S::Int64 => DataType::Int64,
        // FLOAT(p) with more than 24 bits of precision is a DOUBLE in SQL.
        S::Float(ast::ExactNumberInfo::Precision(p))
        | S::Float(ast::ExactNumberInfo::PrecisionAndScale(p, _))
            if *p > 24 =>
        {
            DataType::Float64
        }
        S::Float(_) | S::Real | S::Float4 | S::Float32 => DataType::Float32,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 => DataType::Float64,
        S::Decimal(info) | S::Numeric(info) | S::Dec(info) => decimal_type(info, position)?,
        S::BigDecimal(_) | S::BigNumeric(_) => DataType::Decimal128(38, 18),
        S::Boolean | S::Bool => DataType::Boolean,
        S::String(_)
        | S::Varchar(_)
        | S::Nvarchar(_)
        | S::Char(_)
        | S::Character(_)
        | S::CharVarying(_)
        | S::CharacterVarying(_)
        | S::Text => DataType::Utf8,
        S::Timestamp(_, _) | S::TimestampNtz(_) | S::Datetime(_) => TS_MS,
        S::Date => DataType::Date32,
        S::Bytes(_) | S::Varbinary(_) | S::Binary(_) | S::Bytea | S::Blob(_) => DataType::Binary,
        S::Custom(name, _) => {
            let n = name.to_string().to_ascii_uppercase();
            match n.as_str() {
                "TIMESTAMP_LTZ" | "TIMESTAMP_NTZ" => TS_MS,
                "STRING" => DataType::Utf8,
                "BYTES" => DataType::Binary,
                _ => {
                    return Err(SqlError::plan(
                        format!("unsupported data type {t}"),
                        position,
                    ))
                }
            }
        }
        other => {
            return Err(SqlError::plan(
                format!("unsupported data type {other}"),
                position,
            ))
        }
    })
}

/// Flink SQL type name for an Arrow type (for DESCRIBE and messages).
pub fn flink_type_name(t: &DataType) -> String {
    let precision = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    match t {
        DataType::Null => "NULL".to_string(),
        DataType::Boolean => "BOOLEAN".to_string(),
        DataType::Int8 => "TINYINT".to_string(),
        DataType::Int16 | DataType::UInt8 => "SMALLINT".to_string(),
        DataType::Int32 | DataType::UInt16 => "INT".to_string(),
        DataType::Int64 | DataType::UInt32 => "BIGINT".to_string(),
        DataType::UInt64 => "DECIMAL(20, 0)".to_string(),
        DataType::Float16 | DataType::Float32 => "FLOAT".to_string(),
        DataType::Float64 => "DOUBLE".to_string(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".to_string(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".to_string(),
        DataType::FixedSizeBinary(n) => format!("BINARY({n})"),
        DataType::Date32 | DataType::Date64 => "DATE".to_string(),
        DataType::Time32(u) | DataType::Time64(u) => format!("TIME({})", precision(u)),
        DataType::Timestamp(u, None) => format!("TIMESTAMP({})", precision(u)),
        DataType::Timestamp(u, Some(_)) => format!("TIMESTAMP_LTZ({})", precision(u)),
        DataType::Duration(_) | DataType::Interval(IntervalUnit::DayTime) => {
            "INTERVAL DAY TO SECOND(3)".to_string()
        }
        DataType::Interval(IntervalUnit::YearMonth) => "INTERVAL YEAR TO MONTH".to_string(),
        DataType::Interval(IntervalUnit::MonthDayNano) => "INTERVAL".to_string(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("ARRAY<{}>", flink_type_name(f.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => match &kv[..] {
                [k, v] => format!(
                    "MAP<{}, {}>",
                    flink_type_name(k.data_type()),
                    flink_type_name(v.data_type())
                ),
                _ => "MAP".to_string(),
            },
            _ => "MAP".to_string(),
        },
        DataType::Struct(fields) => format!(
            "ROW<{}>",
            fields
                .iter()
                .map(|f| format!("`{}` {}", f.name(), flink_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string().to_ascii_uppercase(),
    }
}

/// Rewrites Arrow type names in an engine message into the SQL names users
/// wrote, so "Utf8" reads as "STRING"; `column_types` adds the types of the
/// columns in scope, which may be nested or zoned.
pub(super) fn with_sql_type_names<'t>(
    message: &str,
    column_types: impl Iterator<Item = &'t DataType>,
) -> String {
    let mut types: Vec<DataType> = vec![
        TS_MS,
        INTERVAL_MS,
        INTERVAL_MONTHS,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float32,
        DataType::Float64,
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Boolean,
        DataType::Date32,
        DataType::Binary,
        DataType::Null,
    ];
    types.extend(column_types.cloned());
    let mut names: Vec<(String, String)> = types
        .iter()
        .map(|t| (t.to_string(), flink_type_name(t)))
        .collect();
    // Longer names first so a type whose name contains another's is
    // rewritten as a whole.
    names.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
    names.dedup();
    let mut out = message.to_string();
    for (arrow_name, sql_name) in names {
        out = replace_word(&out, &arrow_name, &sql_name);
    }
    out
}

/// Replaces whole-word occurrences of `from` (not preceded or followed by
/// an identifier character).
fn replace_word(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return text.to_string();
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let before_ok = !rest[..i].chars().next_back().is_some_and(is_word);
        let after = &rest[i + from.len()..];
        let after_ok = !after.chars().next().is_some_and(is_word);
        out.push_str(&rest[..i]);
        out.push_str(if before_ok && after_ok { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}
