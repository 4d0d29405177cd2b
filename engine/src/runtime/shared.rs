//! What the job handle and every subtask of a job share: the cancel and stop
//! flags, the first error, and the latency histogram; and how often a
//! blocked thread looks at them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::metrics::LatencyHistogram;
use crate::error::EngineError;

/// How often blocked threads look at the cancel flag.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// State shared by the job handle and all subtasks.
#[derive(Debug, Default)]
pub(super) struct Shared {
    cancel: AtomicBool,
    pub(super) stop: AtomicBool,
    pub(super) error: Mutex<Option<EngineError>>,
    /// How long latency markers took from source to sink.
    pub(super) latency: Mutex<LatencyHistogram>,
    /// How long subtasks stopped processing at checkpoint barriers.
    pub(super) barrier_pause: Mutex<LatencyHistogram>,
    /// What the exchanges sent, added by each subtask as it ends.
    pub(super) exchange: ExchangeCounters,
}

/// Messages that crossed between subtasks (not within chains).
#[derive(Debug, Default)]
pub(super) struct ExchangeCounters {
    pub(super) batches: AtomicU64,
    pub(super) rows: AtomicU64,
    pub(super) controls: AtomicU64,
}

impl Shared {
    pub(super) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Records `err` unless a more telling error is already there, and tells
    /// every subtask to stop. A subtask that stops because another one failed
    /// reports `Cancelled`; the root cause wins over it.
    pub(super) fn fail(&self, err: EngineError) {
        if let Ok(mut slot) = self.error.lock() {
            let replace = match &*slot {
                None => true,
                Some(existing) => {
                    matches!(existing.root(), EngineError::Cancelled)
                        && !matches!(err.root(), EngineError::Cancelled)
                }
            };
            if replace {
                *slot = Some(err);
            }
        }
        self.cancel.store(true, Ordering::SeqCst);
    }
}
