//! Errors of the SQL layer: every user-facing error carries the position in
//! the SQL text it is about.

use runnel_engine::EngineError;

/// A 1-based line and column in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Line, from 1 (0 when unknown).
    pub line: u64,
    /// Column, from 1 (0 when unknown).
    pub column: u64,
}

impl Position {
    /// A position.
    pub fn new(line: u64, column: u64) -> Self {
        Self { line, column }
    }

    /// From a sqlparser span's start.
    pub fn of(span: sqlparser::tokenizer::Span) -> Self {
        Self {
            line: span.start.line,
            column: span.start.column,
        }
    }

    /// True when the parser did not know where the node came from.
    pub fn is_unknown(&self) -> bool {
        self.line == 0
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Errors of the SQL layer, sorted by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text does not parse.
    #[error("syntax error at {position}: {message}")]
    Syntax { message: String, position: Position },
    /// The statement parses but is wrong: unknown table or column, a type
    /// mismatch, an unsupported construct.
    #[error("error at {position}: {message}")]
    Plan { message: String, position: Position },
    /// The statement names a table, view or job that does not exist.
    #[error("error at {position}: {message}")]
    NotFound { message: String, position: Position },
    /// The user may not do what the statement asks: the message names the
    /// privilege and the object.
    #[error("permission denied at {position}: {message}")]
    PermissionDenied { message: String, position: Position },
    /// The engine rejected the plan or failed to run it.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl SqlError {
    /// A plan error at `position`.
    pub fn plan(message: impl Into<String>, position: Position) -> Self {
        SqlError::Plan {
            message: message.into(),
            position,
        }
    }

    /// A "no such table, view or job" error at `position`.
    pub fn not_found(message: impl Into<String>, position: Position) -> Self {
        SqlError::NotFound {
            message: message.into(),
            position,
        }
    }

    /// A "permission denied" error at `position`.
    pub fn denied(message: impl Into<String>, position: Position) -> Self {
        SqlError::PermissionDenied {
            message: message.into(),
            position,
        }
    }

    /// The position the error is about, when it has one.
    pub fn position(&self) -> Option<Position> {
        match self {
            SqlError::Syntax { position, .. }
            | SqlError::Plan { position, .. }
            | SqlError::NotFound { position, .. }
            | SqlError::PermissionDenied { position, .. } => Some(*position),
            SqlError::Engine(_) => None,
        }
    }
}

/// Result alias for the SQL layer.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
