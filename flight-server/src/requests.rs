//! Flight SQL requests by method: how many, how many failed, and a
//! latency histogram (time until the call's answer, or its stream,
//! starts), for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default, Clone)]
struct Method {
    count: u64,
    errors: u64,
    /// Calls at or under each bound (not cumulative here).
    buckets: [u64; BUCKETS.len()],
    seconds: f64,
}

/// The counts of every Flight method the server answered.
#[derive(Default)]
pub struct RequestStats {
    methods: Mutex<BTreeMap<&'static str, Method>>,
}

impl RequestStats {
    /// Records one call of `method` that took `elapsed`.
    pub fn record(&self, method: &'static str, elapsed: Duration, ok: bool) {
        let mut m = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(method).or_default();
        e.count += 1;
        e.errors += u64::from(!ok);
        let s = elapsed.as_secs_f64();
        e.seconds += s;
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            e.buckets[i] += 1;
        }
    }

    /// Appends the three families to a Prometheus text exposition.
    pub fn write(&self, out: &mut String) {
        let m = self
            .methods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let _ = writeln!(
            out,
            "# HELP runnel_flight_requests_total Flight SQL calls answered."
        );
        let _ = writeln!(out, "# TYPE runnel_flight_requests_total counter");
        for (name, e) in &m {
            let _ = writeln!(
                out,
                "runnel_flight_requests_total{{method=\"{name}\"}} {}",
                e.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP runnel_flight_request_errors_total Flight SQL calls answered with an error."
        );
        let _ = writeln!(out, "# TYPE runnel_flight_request_errors_total counter");
        for (name, e) in &m {
            let _ = writeln!(
                out,
                "runnel_flight_request_errors_total{{method=\"{name}\"}} {}",
                e.errors
            );
        }
        let _ = writeln!(out, "# HELP runnel_flight_request_duration_seconds Time until a Flight SQL call's answer starts.");
        let _ = writeln!(
            out,
            "# TYPE runnel_flight_request_duration_seconds histogram"
        );
        for (name, e) in &m {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(e.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "runnel_flight_request_duration_seconds_bucket{{method=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "runnel_flight_request_duration_seconds_bucket{{method=\"{name}\",le=\"+Inf\"}} {}",
                e.count
            );
            let _ = writeln!(
                out,
                "runnel_flight_request_duration_seconds_sum{{method=\"{name}\"}} {}",
                e.seconds
            );
            let _ = writeln!(
                out,
                "runnel_flight_request_duration_seconds_count{{method=\"{name}\"}} {}",
                e.count
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_the_count() {
        let s = RequestStats::default();
        s.record("do_get", Duration::from_millis(3), true);
        s.record("do_get", Duration::from_millis(300), false);
        s.record("do_get", Duration::from_secs(9), true);
        let mut out = String::new();
        s.write(&mut out);
        assert!(
            out.contains("runnel_flight_requests_total{method=\"do_get\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("runnel_flight_request_errors_total{method=\"do_get\"} 1"),
            "{out}"
        );
        assert!(out.contains("le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("le=\"0.5\"} 2\n"), "{out}");
        assert!(out.contains("le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("le=\"+Inf\"} 3\n"), "{out}");
    }
}
