//! The engine's error type.

use arrow::error::ArrowError;

/// Errors of the engine, sorted by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    // -- The user's query or data --------------------------------------------
    /// A job graph, expression or operator was built with arguments that
    /// cannot work (wrong types, unknown column, bad window sizes).
    #[error("invalid plan: {0}")]
    Plan(String),
    /// Evaluating the query on some row failed in a way SQL calls an error
    /// (division by zero, a string that does not cast).
    #[error("execution error: {0}")]
    Execution(String),

    // -- External systems -----------------------------------------------------
    /// The state backend failed.
    #[error(transparent)]
    State(#[from] runnel_state::StateError),
    /// A source or sink was given something it cannot work with (a missing
    /// file, a table that is not a Delta table, an option the system
    /// refuses), found while the job runs. Failures of the system itself
    /// are [`EngineError::External`].
    #[error("connector error: {0}")]
    Connector(String),
    /// An outside system (Kafka, Delta, a file system, an object store)
    /// failed. The cause is kept, with the system's name, what was being
    /// done and whether trying again may help. Build it with
    /// [`EngineError::external`].
    #[error("{system}: cannot {action}: {source}")]
    External {
        /// The outside system, as a user names it ("kafka", "delta", "file").
        system: &'static str,
        /// What was being done, as a verb phrase ("commit to 'out'").
        action: String,
        /// True when the failure may pass (a timeout, a broker that moved).
        retryable: bool,
        /// The system's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    // -- The job's life -------------------------------------------------------
    /// An operator of a job failed; the cause is kept.
    #[error("operator '{operator}' (subtask {subtask}) failed: {source}")]
    Operator {
        operator: String,
        subtask: usize,
        #[source]
        source: Box<EngineError>,
    },
    /// The job was cancelled before it finished.
    #[error("job cancelled")]
    Cancelled,

    // -- Bugs -------------------------------------------------------------------
    /// An Arrow kernel failed on data the engine built itself.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// A broken invariant inside the engine.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Returns early with [`EngineError::Plan`].
#[macro_export]
macro_rules! plan_err {
    ($($arg:tt)*) => { return Err($crate::error::EngineError::Plan(format!($($arg)*))) };
}

/// Returns early with [`EngineError::Execution`].
#[macro_export]
macro_rules! exec_err {
    ($($arg:tt)*) => { return Err($crate::error::EngineError::Execution(format!($($arg)*))) };
}

/// Returns early with [`EngineError::Internal`].
#[macro_export]
macro_rules! internal_err {
    ($($arg:tt)*) => { return Err($crate::error::EngineError::Internal(format!($($arg)*))) };
}

impl EngineError {
    /// An outside system's failure that keeps its cause.
    pub fn external(
        system: &'static str,
        action: impl Into<String>,
        retryable: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        EngineError::External {
            system,
            action: action.into(),
            retryable,
            source: source.into(),
        }
    }

    /// True when the failure came from outside and trying again may help.
    pub fn is_retryable(&self) -> bool {
        match self.root() {
            EngineError::External { retryable, .. } => *retryable,
            EngineError::State(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The innermost error, looking through [`EngineError::Operator`] wrappers.
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::Operator { source, .. } => source.root(),
            other => other,
        }
    }
}
