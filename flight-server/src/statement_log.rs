//! The statement log, `<data_dir>/statements.jsonl`, that lets the catalog
//! and the jobs survive a restart, and the job counter beside it.
//!
//! Every statement that changes the catalog or starts a long-running job
//! (`CREATE`, `DROP`, `GRANT`, `REVOKE`, roles, `INSERT INTO`, `CREATE
//! MATERIALIZED VIEW`, `STOP JOB`) is appended once it has succeeded, one
//! JSON object a line, with the user who ran it and, for a job, the
//! options of the client's session.
//! On start the server replays the log in order: each job gets the id it
//! had, so it finds its checkpoints in `<data_dir>/checkpoints/<job id>`
//! and resumes from the latest one; jobs that were stopped, or whose view
//! was dropped, are not started again. Ad-hoc queries are not logged and
//! take no checkpoints.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use runnel_engine::expr::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ServerError};
use crate::jobs::job_number;

/// One line of the statement log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    /// The statement.
    pub sql: String,
    /// The values bound to its `?` parameters (a prepared INSERT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<LoggedValue>,
    /// The job it started, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Jobs it ended (STOP JOB, DROP VIEW of a materialized view).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ends: Vec<String>,
    /// Who ran it (replayed as that user, who owns what it created);
    /// absent in logs written before users were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The client session's options when it started a job, replayed with
    /// it (older logs replay their `SET` entries instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<std::collections::BTreeMap<String, String>>,
}

/// A parameter value as the log keeps it: its type and its value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum LoggedValue {
    /// NULL.
    Null,
    /// BOOLEAN.
    Boolean(bool),
    /// INT.
    Int32(i32),
    /// BIGINT.
    Int64(i64),
    /// DOUBLE.
    Float64(f64),
    /// DECIMAL(precision, scale): the unscaled value as decimal text
    /// (JSON numbers cannot hold 128 bits).
    Decimal128(String, u8, i8),
    /// STRING.
    Utf8(String),
    /// DATE, days since 1970-01-01.
    Date32(i32),
    /// TIMESTAMP(3), milliseconds since the epoch.
    TimestampMillis(i64),
    /// A day-time interval in milliseconds.
    IntervalMillis(i64),
    /// A year-month interval in months.
    IntervalMonths(i32),
}

impl From<&ScalarValue> for LoggedValue {
    fn from(v: &ScalarValue) -> Self {
        match v {
            ScalarValue::Null => Self::Null,
            ScalarValue::Boolean(b) => Self::Boolean(*b),
            ScalarValue::Int32(n) => Self::Int32(*n),
            ScalarValue::Int64(n) => Self::Int64(*n),
            ScalarValue::Float64(f) => Self::Float64(*f),
            ScalarValue::Decimal128(n, p, s) => Self::Decimal128(n.to_string(), *p, *s),
            ScalarValue::Utf8(s) => Self::Utf8(s.clone()),
            ScalarValue::Date32(d) => Self::Date32(*d),
            ScalarValue::TimestampMillis(t) => Self::TimestampMillis(*t),
            ScalarValue::IntervalMillis(i) => Self::IntervalMillis(*i),
            ScalarValue::IntervalMonths(m) => Self::IntervalMonths(*m),
        }
    }
}

impl From<&LoggedValue> for ScalarValue {
    fn from(v: &LoggedValue) -> Self {
        match v {
            LoggedValue::Null => Self::Null,
            LoggedValue::Boolean(b) => Self::Boolean(*b),
            LoggedValue::Int32(n) => Self::Int32(*n),
            LoggedValue::Int64(n) => Self::Int64(*n),
            LoggedValue::Float64(f) => Self::Float64(*f),
            // A log the server wrote holds a valid number here.
            LoggedValue::Decimal128(n, p, s) => n
                .parse()
                .map_or(Self::Null, |n| Self::Decimal128(n, *p, *s)),
            LoggedValue::Utf8(s) => Self::Utf8(s.clone()),
            LoggedValue::Date32(d) => Self::Date32(*d),
            LoggedValue::TimestampMillis(t) => Self::TimestampMillis(*t),
            LoggedValue::IntervalMillis(i) => Self::IntervalMillis(*i),
            LoggedValue::IntervalMonths(m) => Self::IntervalMonths(*m),
        }
    }
}

/// What a replay found.
pub struct Replayed {
    /// The highest job number the log names (0 when none).
    pub logged_max: usize,
}

/// The statement log of one data directory.
pub struct StatementLog {
    dir: PathBuf,
    /// Replaying the log: nothing is logged again.
    replaying: AtomicBool,
}

impl StatementLog {
    /// The log of data directory `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            replaying: AtomicBool::new(false),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("statements.jsonl")
    }

    fn next_job_path(&self) -> PathBuf {
        self.dir.join("next-job")
    }

    /// True while the log is being replayed.
    pub fn replaying(&self) -> bool {
        self.replaying.load(Ordering::SeqCst)
    }

    /// Appends `entry` and syncs it to disk; nothing while replaying.
    pub fn append(&self, entry: &LogEntry) -> Result<()> {
        if self.replaying() {
            return Ok(());
        }
        let line = serde_json::to_string(entry).map_err(ServerError::Encode)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path())
            .and_then(|mut f| {
                writeln!(f, "{line}")?;
                Ok(f)
            })
            .map_err(|e| ServerError::io("write the statement log", e))?;
        f.flush()
            .and_then(|_| f.sync_data())
            .map_err(|e| ServerError::io("sync the statement log", e))
    }

    /// Reads the log, cutting off a torn last line.
    fn read(&self) -> Result<Vec<LogEntry>> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(ServerError::io(format!("read {}", path.display()), e)),
        };
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LogEntry>(line) {
                Ok(e) => entries.push(e),
                // A torn last line (a crash while appending) is dropped: the
                // statement had not been acknowledged.
                Err(_) if i + 1 == text.lines().count() => {}
                Err(source) => {
                    return Err(ServerError::LogLine {
                        path,
                        line: i + 1,
                        source,
                    })
                }
            }
        }
        if !text.is_empty() && !text.ends_with('\n') {
            // Cut the torn line off, or the next append would glue onto it.
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(keep as u64))
                .map_err(|e| ServerError::io(format!("repair {}", path.display()), e))?;
        }
        Ok(entries)
    }

    /// Replays the log: `run` gets each entry in order with the jobs that
    /// later entries ended (not to be started again). Nothing is logged
    /// while it runs.
    pub fn replay(&self, mut run: impl FnMut(&LogEntry, &BTreeSet<String>)) -> Result<Replayed> {
        let entries = self.read()?;
        let ended: BTreeSet<String> = entries.iter().flat_map(|e| e.ends.clone()).collect();
        let logged_max = entries
            .iter()
            .filter_map(|e| e.job.as_deref().and_then(job_number))
            .max()
            .unwrap_or(0);
        self.replaying.store(true, Ordering::SeqCst);
        for e in &entries {
            run(e, &ended);
        }
        self.replaying.store(false, Ordering::SeqCst);
        if !entries.is_empty() {
            eprintln!(
                "runnel: replayed {} statement(s) from {}",
                entries.len(),
                self.path().display()
            );
        }
        Ok(Replayed { logged_max })
    }

    /// The job number recorded at the last clean shutdown.
    pub fn recorded_next_job(&self) -> Option<usize> {
        std::fs::read_to_string(self.next_job_path())
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
    }

    /// Records the next job number (at shutdown), best effort.
    pub fn record_next_job(&self, n: usize) {
        let _ = std::fs::write(self.next_job_path(), n.to_string());
    }
}
