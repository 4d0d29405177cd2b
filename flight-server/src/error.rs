//! The server's error type. Variants are sorted by who is at fault (the
//! client's statement or request, a job while it ran, the server's own
//! disk, a bug) and keep their typed cause; the Flight SQL layer turns them
//! into status codes in one place (`flight_sql::status`).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::error::ArrowError;
use runnel_engine::EngineError;
use runnel_sql::error::SqlError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    // -- The client's statement or request -------------------------------------
    /// A wrong statement (syntax, plan, unknown name), with line and column.
    #[error("{}", sql_message(.0))]
    Sql(#[source] SqlError),
    /// A request the server cannot take (an empty statement, a query sent
    /// as an update).
    #[error("{0}")]
    InvalidArgument(String),
    /// An unknown job, system table or query.
    #[error("{0}")]
    NotFound(String),

    // -- A job's end -----------------------------------------------------------
    /// The job was cancelled (its client went away, or its view was dropped).
    #[error("{id} was cancelled")]
    JobCancelled {
        /// The job's id.
        id: String,
    },
    /// The job failed while it ran.
    #[error("{id} failed: {source}")]
    JobFailed {
        /// The job's id.
        id: String,
        /// Why; shared with the job's status.
        #[source]
        source: Arc<EngineError>,
    },
    /// The engine refused or failed to run something (starting a job).
    #[error(transparent)]
    Engine(#[from] EngineError),

    // -- The server's own data directory -----------------------------------------
    /// Reading or writing the data directory failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done, as a verb phrase ("write the statement log").
        action: String,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the statement log does not decode.
    #[error("{}:{line}: {source}", path.display())]
    LogLine {
        /// The log file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },

    // -- Bugs ------------------------------------------------------------------
    /// A log entry does not encode.
    #[error("cannot encode the log entry: {0}")]
    Encode(#[source] serde_json::Error),
    /// Arrow failed on a result the server built itself.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// A broken invariant (a poisoned lock, a query started twice).
    #[error("{0}")]
    Internal(String),
}

impl ServerError {
    /// An I/O failure of the data directory while doing `action`.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        ServerError::Io {
            action: action.into(),
            source,
        }
    }
}

/// The engine's plan errors reach clients without the engine's prefix, as
/// the statement's own error.
fn sql_message(e: &SqlError) -> String {
    match e {
        SqlError::Engine(EngineError::Plan(m)) => m.clone(),
        e => e.to_string(),
    }
}

impl From<SqlError> for ServerError {
    fn from(e: SqlError) -> Self {
        match e {
            // A failure to run (not to plan) is the engine's, not the statement's.
            SqlError::Engine(e) if !matches!(e, EngineError::Plan(_)) => ServerError::Engine(e),
            e => ServerError::Sql(e),
        }
    }
}

/// Result alias of this crate's server.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;
