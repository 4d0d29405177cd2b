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
    /// A source or sink's external system failed.
    #[error("connector error: {0}")]
    Connector(String),

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
    /// The innermost error, looking through [`EngineError::Operator`] wrappers.
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::Operator { source, .. } => source.root(),
            other => other,
        }
    }
}
