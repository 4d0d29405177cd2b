//! OpenLineage run events of a job: START when it starts, and COMPLETE,
//! FAIL or ABORT when it ends, each with the job's inputs, outputs and
//! the column-lineage facet of every output, appended as a JSON line to
//! the file `'openlineage.file'` names and/or posted to the `http://` URL
//! `'openlineage.url'` names. A failure to deliver an event is reported
//! on stderr; the job goes on.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use runnel_sql::lineage::Derivation;
use runnel_sql::session::OpenLineageSpec;
use serde_json::{json, Value};

/// The namespace of Runnel's jobs and tables in events.
pub const NAMESPACE: &str = "runnel";
/// What produced the events.
const PRODUCER: &str = "https://github.com/runnel-dev/runnel";
const RUN_EVENT_SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const COLUMN_LINEAGE_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet";
const SQL_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet";
const ERROR_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";

/// The events of one run of a job.
#[derive(Debug, Clone)]
pub struct RunEvents {
    spec: OpenLineageSpec,
    run_id: String,
}

impl RunEvents {
    /// A new run (a fresh run id) of the job `spec` describes.
    pub fn new(spec: OpenLineageSpec) -> Self {
        Self {
            spec,
            run_id: uuid_v4(),
        }
    }

    /// Sends `event_type` (START, COMPLETE, FAIL, ABORT); `error` for FAIL.
    pub fn send(&self, event_type: &str, error: Option<&str>) {
        let event = self.event(event_type, error);
        let line = event.to_string();
        if let Some(path) = &self.spec.file {
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = written {
                eprintln!("runnel: cannot write the OpenLineage event to {path}: {e}");
            }
        }
        if let Some(url) = &self.spec.url {
            if let Err(e) = post(url, &line) {
                eprintln!("runnel: cannot post the OpenLineage event to {url}: {e}");
            }
        }
    }

    /// The event as JSON.
    pub fn event(&self, event_type: &str, error: Option<&str>) -> Value {
        let mut inputs: Vec<String> = self
            .spec
            .rows
            .iter()
            .map(|r| r.source_table.clone())
            .collect();
        inputs.sort();
        inputs.dedup();
        // Direct lineage per column; filter and join columns, which every
        // column of an output depends on, once per output (the facet's
        // dataset-level `dataset` list).
        let mut outputs: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
        let mut indirect: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in &self.spec.rows {
            let (kind, subtype) = match r.derivation {
                Derivation::Copied => ("DIRECT", "IDENTITY"),
                Derivation::Computed => ("DIRECT", "TRANSFORMATION"),
                Derivation::Aggregated => ("DIRECT", "AGGREGATION"),
                Derivation::FilteredOn => ("INDIRECT", "FILTER"),
                Derivation::JoinedOn => ("INDIRECT", "JOIN"),
            };
            let field = json!({
                "namespace": NAMESPACE,
                "name": r.source_table,
                "field": r.source_column,
                "transformations": [{"type": kind, "subtype": subtype}],
            });
            let columns = outputs.entry(r.target_table.clone()).or_default();
            if kind == "DIRECT" {
                columns
                    .entry(r.target_column.clone())
                    .or_default()
                    .push(field);
            } else {
                let list = indirect.entry(r.target_table.clone()).or_default();
                if !list.contains(&field) {
                    list.push(field);
                }
            }
        }
        let outputs: Vec<Value> = outputs
            .into_iter()
            .map(|(table, fields)| {
                let dataset = indirect.remove(&table).unwrap_or_default();
                let fields: serde_json::Map<String, Value> = fields
                    .into_iter()
                    .map(|(col, input_fields)| (col, json!({ "inputFields": input_fields })))
                    .collect();
                json!({
                    "namespace": NAMESPACE,
                    "name": table,
                    "outputFacets": {},
                    "facets": {
                        "columnLineage": {
                            "_producer": PRODUCER,
                            "_schemaURL": COLUMN_LINEAGE_SCHEMA,
                            "fields": fields,
                            "dataset": dataset,
                        }
                    }
                })
            })
            .collect();
        let mut run_facets = serde_json::Map::new();
        if let Some(message) = error {
            run_facets.insert(
                "errorMessage".into(),
                json!({
                    "_producer": PRODUCER,
                    "_schemaURL": ERROR_SCHEMA,
                    "message": message,
                    "programmingLanguage": "SQL",
                }),
            );
        }
        json!({
            "eventType": event_type,
            "eventTime": now_rfc3339(),
            "producer": PRODUCER,
            "schemaURL": RUN_EVENT_SCHEMA,
            "run": { "runId": self.run_id, "facets": run_facets },
            "job": {
                "namespace": NAMESPACE,
                "name": self.spec.job,
                "facets": {
                    "sql": { "_producer": PRODUCER, "_schemaURL": SQL_SCHEMA, "query": self.spec.sql }
                }
            },
            "inputs": inputs
                .iter()
                .map(|t| json!({"namespace": NAMESPACE, "name": t, "facets": {}, "inputFacets": {}}))
                .collect::<Vec<_>>(),
            "outputs": outputs,
        })
    }
}

/// A random (version 4) UUID.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn now_rfc3339() -> String {
    rfc3339(crate::audit::now_ms())
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// POSTs `body` as JSON to a plain `http://host[:port]/path` URL and
/// checks for a 2xx answer.
fn post(url: &str, body: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = std::net::TcpStream::connect(&address).map_err(|e| e.to_string())?;
    let timeout = Some(Duration::from_secs(5));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(timeout)
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = stream.take(4096).read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer);
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(format!(
            "the server answered '{}'",
            status.lines().next().unwrap_or("")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_run_ids_have_the_forms_the_spec_asks_for() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
        assert_eq!(rfc3339(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_533_051_715), "2026-12-06T04:57:31.715Z");
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "{id}");
        assert!("89ab".contains(&id[19..20]), "{id}");
    }
}
