//! How a [`ServerError`] reaches a Flight SQL client: one gRPC code per
//! kind of fault, with the error's own message.

use runnel_engine::EngineError;
use runnel_sql::error::SqlError;
use tonic::{Code, Status};

use crate::error::ServerError;

/// Maps server errors to gRPC codes, by who is at fault: the client's
/// statement or request, a cancellation, an outside system that may
/// recover, or the server itself. The message is the error's own.
pub(crate) fn status(e: ServerError) -> Status {
    let code = match &e {
        ServerError::Sql(SqlError::NotFound { .. }) | ServerError::NotFound(_) => Code::NotFound,
        ServerError::Sql(SqlError::PermissionDenied { .. }) => Code::PermissionDenied,
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

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_sql::error::Position;

    #[test]
    fn each_kind_of_fault_has_its_code_and_keeps_its_message() {
        let at = Position::new(2, 3);
        let plan: ServerError = SqlError::plan("unknown column 'b'", at).into();
        let s = status(plan);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "error at line 2, column 3: unknown column 'b'");
        // The engine's plan errors read as the statement's own.
        let engine_plan: ServerError = SqlError::Engine(EngineError::Plan("bad".into())).into();
        let s = status(engine_plan);
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "bad"));
        let missing: ServerError = SqlError::not_found("no table 't'", at).into();
        assert_eq!(status(missing).code(), Code::NotFound);
        let retry = EngineError::external("kafka", "poll 'in'", true, "broker moved");
        let failed = ServerError::JobFailed {
            id: "job-1".into(),
            source: std::sync::Arc::new(retry),
        };
        let s = status(failed);
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(
            s.message(),
            "job-1 failed: kafka: cannot poll 'in': broker moved"
        );
        let run: ServerError = SqlError::Engine(EngineError::Internal("x".into())).into();
        assert_eq!(status(run).code(), Code::Internal);
        let cancelled = status(ServerError::JobCancelled { id: "job-2".into() });
        assert_eq!(
            (cancelled.code(), cancelled.message()),
            (Code::Cancelled, "job-2 was cancelled")
        );
    }
}
