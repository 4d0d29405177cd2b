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

/// The `host:port` of an endpoint URL (`http://127.0.0.1:9000/` ->
/// `127.0.0.1:9000`), for allow-lists of servers; the scheme's default
/// port when none is written.
pub(crate) fn host_port(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']');
    if has_port {
        authority.to_ascii_lowercase()
    } else {
        let port = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        format!("{}:{port}", authority.to_ascii_lowercase())
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

    #[test]
    fn host_port_of_endpoint_urls() {
        assert_eq!(super::host_port("http://127.0.0.1:9000/"), "127.0.0.1:9000");
        assert_eq!(
            super::host_port("https://S3.example.com"),
            "s3.example.com:443"
        );
        assert_eq!(super::host_port("http://u:p@minio:9000/x"), "minio:9000");
    }
}
