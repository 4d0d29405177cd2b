//! Option parsing shared by the connectors; every failure is a plan error
//! that names the option and the table, since options come from DDL.

use runnel_engine::connector::TableDescriptor;
use runnel_engine::{EngineError, Result};

/// Start times and startup timestamps in options are read like SQL
/// `TIMESTAMP` literals.
pub(crate) use runnel_engine::time::parse_timestamp_millis;

/// A plan error about `key` of `table`.
pub(crate) fn bad_option(table: &TableDescriptor, key: &str, why: &str) -> EngineError {
    EngineError::Plan(format!("option '{key}' of table '{}' {why}", table.name))
}

/// A fraction in `[0, 1]`, `default` when absent.
pub(crate) fn rate_option(table: &TableDescriptor, key: &str, default: f64) -> Result<f64> {
    let Some(raw) = table.option(key) else {
        return Ok(default);
    };
    match raw.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(bad_option(
            table,
            key,
            &format!("must be a fraction between 0 and 1, not '{raw}'"),
        )),
    }
}

/// A whole number of at least `min`, `default` when absent.
pub(crate) fn min_u64_option(
    table: &TableDescriptor,
    key: &str,
    default: u64,
    min: u64,
) -> Result<u64> {
    let v = table.u64_option(key, default)?;
    if v < min {
        return Err(bad_option(
            table,
            key,
            &format!("must be at least {min}, not {v}"),
        ));
    }
    Ok(v)
}

/// A single-byte delimiter; `\t` may be written as the two characters `\t`.
pub(crate) fn delimiter_option(table: &TableDescriptor, key: &str, default: u8) -> Result<u8> {
    match table.option(key) {
        None => Ok(default),
        Some("\\t") => Ok(b'\t'),
        Some(v) if v.len() == 1 && v.is_ascii() => Ok(v.as_bytes()[0]),
        Some(v) => Err(bad_option(
            table,
            key,
            &format!("must be a single ASCII character, not '{v}'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_both_forms() {
        assert_eq!(parse_timestamp_millis("0"), Some(0));
        assert_eq!(
            parse_timestamp_millis("2026-01-01 00:00:00"),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            parse_timestamp_millis("2026-01-01T00:00:01.5"),
            Some(1_767_225_601_500)
        );
        assert_eq!(
            parse_timestamp_millis("2026-01-01"),
            Some(1_767_225_600_000)
        );
        assert_eq!(parse_timestamp_millis("yesterday"), None);
    }
}
