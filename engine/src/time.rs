//! Reading a point in time from text, the one way both SQL `TIMESTAMP '…'`
//! literals and connector options (start times, startup offsets) do it.
//!
//! Timestamps are UTC wall-clock time at millisecond precision (Flink's
//! `TIMESTAMP(3)`): digits after the milliseconds are dropped, not rounded.

use chrono::{NaiveDate, NaiveDateTime};

/// The layouts a timestamp may be written in. The forms without seconds
/// come last so that a full time is never read as a shorter one.
const LAYOUTS: [&str; 5] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
];

/// Parses epoch milliseconds or `YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][Z]` (UTC) into milliseconds since the epoch.
pub fn parse_timestamp_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    LAYOUTS
        .iter()
        .find_map(|layout| {
            NaiveDateTime::parse_from_str(text, layout)
                .ok()
                .or_else(|| {
                    NaiveDate::parse_from_str(text, layout)
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })
        })
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Where operators read processing (wall-clock) time, for state TTL.
///
/// Jobs use the system clock. Tests use a manual clock that they move
/// themselves, so that expiry happens at the step they choose.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// A time in milliseconds since the epoch, set by whoever holds it.
    Manual(std::sync::Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    /// A manual clock at `millis`.
    pub fn manual(millis: i64) -> Self {
        Clock::Manual(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
            millis,
        )))
    }

    /// The time now, in milliseconds since the epoch.
    pub fn now_millis(&self) -> i64 {
        match self {
            Clock::System => chrono::Utc::now().timestamp_millis(),
            Clock::Manual(t) => t.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// Moves a manual clock to `millis` (a system clock ignores it).
    pub fn set_millis(&self, millis: i64) {
        if let Clock::Manual(t) = self {
            t.store(millis, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01 00:00:00 UTC.
    const NEW_YEAR_2026: i64 = 1_767_225_600_000;
    /// 2026-01-01 10:15:30.250 UTC.
    const MORNING: i64 = NEW_YEAR_2026 + 10 * 3_600_000 + 15 * 60_000 + 30_250;

    /// Inputs the connectors' option parser accepted before the two parsers
    /// became this one.
    #[test]
    fn accepts_what_connector_options_accepted() {
        let cases = [
            ("0", 0),
            ("-1000", -1000),
            (" 1767225600000 ", NEW_YEAR_2026),
            ("2026-01-01 00:00:00", NEW_YEAR_2026),
            ("2026-01-01T00:00:01.5", NEW_YEAR_2026 + 1_500),
            ("2026-01-01", NEW_YEAR_2026),
            ("2026-01-01Z", NEW_YEAR_2026),
            ("2026-01-01T10:15:30.250Z", MORNING),
            ("2026-03-01 12:00:00", 1_772_366_400_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_timestamp_millis(text), Some(ms), "{text}");
        }
    }

    /// Inputs the SQL binder's `TIMESTAMP '…'` parser accepted before the
    /// two parsers became this one.
    #[test]
    fn accepts_what_sql_timestamp_literals_accepted() {
        let cases = [
            ("2026-01-01 10:15:30.25", MORNING),
            ("2026-01-01 10:15:30.250", MORNING),
            ("2026-01-01 10:15:30.250999", MORNING),
            ("2026-01-01 10:15:30.250999999", MORNING),
            ("2026-01-01T10:15:30.250", MORNING),
            ("2026-01-01", NEW_YEAR_2026),
            ("2026-1-1", NEW_YEAR_2026),
            ("2026-01-01 10:15", MORNING - 30_250),
            ("2026-01-01T10:15", MORNING - 30_250),
            ("2026-01-01 1:2:3", NEW_YEAR_2026 + 3_723_000),
            ("2026-01-01   10:15:30.25", MORNING),
            ("  2026-01-01 10:15:30.25  ", MORNING),
            ("2024-02-29T00:00:00", 1_709_164_800_000),
            ("1969-12-31 23:59:59.999", -1),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_timestamp_millis(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn rejects_what_neither_accepted() {
        for text in [
            "",
            "yesterday",
            "2026-02-30 00:00:00",
            "2026-13-01",
            "2026-01-01 24:00:00",
            "2026-01-01 10:60",
            "2026-01-01 10:15:30.",
            "2026-01-01T",
            "2026-01-01 10",
        ] {
            assert_eq!(parse_timestamp_millis(text), None, "{text}");
        }
    }
}
