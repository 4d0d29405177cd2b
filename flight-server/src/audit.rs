//! The audit log, `<data_dir>/audit.jsonl`: one JSON object a line for
//! every login (successful or failed) and every statement (with its
//! outcome: done, denied, failed), with the time, the user, the client's
//! address, the action, the objects it touched and the outcome. The file
//! is only ever appended to; it survives restarts and is readable, by
//! administrators only, as `system.access.audit`.
//!
//! Values that could be secrets are not written: the values bound to a
//! prepared statement's parameters are replaced by their count, and the
//! options of a `CREATE TABLE` whose names speak of a password, secret or
//! key are written as `'***'`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use runnel_sql::parser::{Located, Statement};
use serde::{Deserialize, Serialize};

use crate::clients::Client;
use crate::error::{Result, ServerError};
use runnel_engine::expr::ScalarValue;

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// Milliseconds since the epoch.
    pub time_ms: i64,
    /// Who (the name given, for a failed login).
    pub user: String,
    /// The client's address, when known.
    #[serde(default)]
    pub address: Option<String>,
    /// `LOGIN`, or the statement's kind (`SELECT`, `CREATE TABLE`,
    /// `GRANT`, ...).
    pub action: String,
    /// The statement, with secrets masked (empty for logins).
    #[serde(default)]
    pub statement: String,
    /// The tables and views it touched (catalog keys).
    #[serde(default)]
    pub objects: Vec<String>,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    /// Why it was denied or failed.
    #[serde(default)]
    pub detail: String,
}

/// The audit log of one data directory.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl AuditLog {
    /// The log in `data_dir` (created on the first record).
    pub fn new(data_dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            path: data_dir.join("audit.jsonl"),
            file: Mutex::new(None),
        })
    }

    /// Appends `record`. A record that cannot be written is reported on
    /// stderr; the request itself goes on.
    pub fn record(&self, record: &AuditRecord) {
        let Ok(line) = serde_json::to_string(record) else {
            return;
        };
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(f) => *guard = Some(f),
                Err(e) => {
                    eprintln!(
                        "runnel: cannot open the audit log {}: {e}",
                        self.path.display()
                    );
                    return;
                }
            }
        }
        if let Some(f) = guard.as_mut() {
            if let Err(e) = writeln!(f, "{line}").and_then(|()| f.flush()) {
                eprintln!(
                    "runnel: cannot write the audit log {}: {e}",
                    self.path.display()
                );
            }
        }
    }

    /// A login attempt.
    pub fn login(&self, user: &str, address: Option<std::net::IpAddr>, ok: bool) {
        self.record(&AuditRecord {
            time_ms: now_ms(),
            user: user.to_string(),
            address: address.map(|a| a.to_string()),
            action: "LOGIN".into(),
            statement: String::new(),
            objects: vec![],
            outcome: if ok { "ok" } else { "failed" }.into(),
            detail: if ok {
                String::new()
            } else {
                "wrong user name or password".into()
            },
        });
    }

    /// A statement's record: what it did and how it ended.
    pub fn statement(
        &self,
        client: &Client,
        action: &str,
        statement: &str,
        objects: Vec<String>,
        result: &std::result::Result<(), &ServerError>,
        params: &[ScalarValue],
    ) {
        let (outcome, detail) = match result {
            Ok(()) => ("ok", String::new()),
            Err(ServerError::Sql(e @ runnel_sql::error::SqlError::PermissionDenied { .. })) => {
                ("denied", e.to_string())
            }
            Err(e) => ("failed", e.to_string()),
        };
        let statement = if params.is_empty() {
            statement.to_string()
        } else {
            // The values bound to parameters are not written.
            format!("{statement} -- {} parameter value(s) masked", params.len())
        };
        self.record(&AuditRecord {
            time_ms: now_ms(),
            user: client.user.clone(),
            address: client.address.map(|a| a.to_string()),
            action: action.to_string(),
            statement,
            objects,
            outcome: outcome.to_string(),
            detail,
        });
    }

    /// Every record, oldest first (a torn last line is skipped).
    pub fn read(&self) -> Result<Vec<AuditRecord>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(ServerError::io("read the audit log", e)),
        };
        let mut out = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| ServerError::io("read the audit log", e))?;
            if let Ok(r) = serde_json::from_str::<AuditRecord>(&line) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// The columns of `system.access.audit`.
pub fn audit_schema() -> SchemaRef {
    let utf8 = |n: &str, nullable: bool| Field::new(n, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        utf8("user_name", false),
        utf8("client_address", true),
        utf8("action", false),
        utf8("statement", false),
        utf8("objects", false),
        utf8("outcome", false),
        utf8("detail", false),
    ]))
}

/// The records as the rows of `system.access.audit`.
pub fn audit_rows(records: &[AuditRecord]) -> Result<RecordBatch> {
    let s = |f: &dyn Fn(&AuditRecord) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(records.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(
            records.iter().map(|r| r.time_ms),
        )),
        s(&|r| r.user.clone()),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.address.clone()),
        )),
        s(&|r| r.action.clone()),
        s(&|r| r.statement.clone()),
        s(&|r| r.objects.join(", ")),
        s(&|r| r.outcome.clone()),
        s(&|r| r.detail.clone()),
    ];
    Ok(RecordBatch::try_new(audit_schema(), columns)?)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The statement as the audit log keeps it: a `CREATE TABLE` with the
/// values of secret-looking options masked; other statements as written
/// (bound parameter values never appear in the text).
pub fn masked_statement(stmt: &Located, text: &str) -> String {
    match &stmt.statement {
        Statement::CreateTable(ct) => {
            let mut ct = (**ct).clone();
            for (k, v) in &mut ct.options {
                if is_secret_option(k) {
                    *v = "***".into();
                }
            }
            ct.to_string()
        }
        Statement::Set { key, .. } if is_secret_option(key) => format!("SET '{key}' = '***'"),
        _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "access-key",
        "access_key",
        "token",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_secrets_are_masked() {
        let dir = std::env::temp_dir().join(format!("runnel-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let log = AuditLog::new(&dir);
        log.login("bob", None, false);
        drop(log);
        let log = AuditLog::new(&dir);
        log.login("bob", Some([127, 0, 0, 1].into()), true);
        let got = log.read().expect("read");
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].outcome.as_str(), got[1].outcome.as_str()),
            ("failed", "ok")
        );
        assert_eq!(got[1].address.as_deref(), Some("127.0.0.1"));
        let sql = "CREATE TABLE t (a STRING) WITH ('connector' = 'delta', 'path' = 's3://b/t', 's3.secret-key' = 'hunter2', 'properties.sasl.password' = 'pw')";
        let stmt = runnel_sql::parser::parse_sql(sql).expect("parse").remove(0);
        let masked = masked_statement(&stmt, sql);
        assert!(
            !masked.contains("hunter2") && !masked.contains("'pw'"),
            "{masked}"
        );
        assert!(masked.contains("'s3://b/t'"), "{masked}");
        let batch = audit_rows(&got).expect("rows");
        assert_eq!(batch.num_rows(), 2);
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
