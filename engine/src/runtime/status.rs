//! A job's status as users see it (`SHOW JOBS`, `system.jobs`): the
//! states a job passes through, with a failure's error inside. Whoever
//! runs jobs (the job manager of the `runnel` binary) sets it; the SQL
//! session reads it for `SHOW JOBS`.

use std::fmt;
use std::sync::Arc;

use crate::error::EngineError;

/// Where a job is in its life.
#[derive(Debug, Clone)]
pub enum JobStatus {
    /// Planned, not started (an ad-hoc query not fetched yet).
    Created,
    /// Its threads run.
    Running,
    /// Asked to stop; it takes its last checkpoint (the savepoint) and ends.
    Stopping,
    /// Stopped on request (or never started again, being stopped in the log).
    Stopped,
    /// Ended by itself: every source was read to its end.
    Finished,
    /// Cancelled: its client went away, or its view was dropped.
    Cancelled,
    /// Failed while starting or running.
    Failed(Arc<EngineError>),
}

impl JobStatus {
    /// The status word users see (without a failure's error).
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Stopping => "STOPPING",
            JobStatus::Stopped => "STOPPED",
            JobStatus::Finished => "FINISHED",
            JobStatus::Cancelled => "CANCELED",
            JobStatus::Failed(_) => "FAILED",
        }
    }
}

/// The status as users see it: the word, and for a failure `: <error>`.
impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobStatus::Failed(e) => write!(f, "FAILED: {e}"),
            other => f.write_str(other.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_users_know_them() {
        let words: Vec<String> = [
            JobStatus::Created,
            JobStatus::Running,
            JobStatus::Stopping,
            JobStatus::Stopped,
            JobStatus::Finished,
            JobStatus::Cancelled,
            JobStatus::Failed(Arc::new(EngineError::Execution("boom".into()))),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            words,
            [
                "CREATED",
                "RUNNING",
                "STOPPING",
                "STOPPED",
                "FINISHED",
                "CANCELED",
                "FAILED: execution error: boom"
            ]
        );
    }
}
