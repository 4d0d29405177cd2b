//! How a [`ServerError`] reaches a Flight SQL client: one gRPC code per
//! kind of fault, with the error's own message.

use runnel_engine::EngineError;
use runnel_sql::error::SqlError;
use tonic::{Code, Status};

use crate::error::ServerError;

/// Maps server errors to gRPC codes, by who is at fault: the client's
/// statement or request, a cancellation, an outside system that may
/// recover, or the server itself. The message is the error's own.
pub(super) fn status(e: ServerError) -> Status {
    let code = match &e {
        ServerError::Sql(SqlError::NotFound { .. }) | ServerError::NotFound(_) => Code::NotFound,
        ServerError::Sql(_) | ServerError::InvalidArgument(_) => Code::InvalidArgument,
        ServerError::JobCancelled { .. } => Code::Cancelled,
        ServerError::JobFailed { source, .. } => engine_code(source),
        ServerError::Engine(e) => engine_code(e),
        ServerError::Io { .. }
        | ServerError::LogLine { .. }
        | ServerError::Encode(_)
        | ServerError::Arrow(_)
        | ServerError::Internal(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// The gRPC code of an engine error.
fn engine_code(e: &EngineError) -> Code {
    match e.root() {
        EngineError::Plan(_) => Code::InvalidArgument,
        EngineError::Cancelled => Code::Cancelled,
        _ if e.is_retryable() => Code::Unavailable,
        _ => Code::Internal,
    }
}
