//! Pacing of the generator sources (`'rows-per-second'`).

use std::time::Instant;

/// Lets a generator emit at most `rate` rows per second, counted from its
/// first poll. After a restore the clock starts again, so that the source
/// neither bursts to catch up on the time the job was down nor stalls.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// Rows per second of this subtask; `None` runs unpaced.
    rate: Option<f64>,
    /// The largest batch a poll may produce.
    max_batch: usize,
    /// When the clock started; `None` until the first poll after a (re)start.
    started: Option<Instant>,
    /// Rows emitted since the clock started.
    sent: u64,
}

impl Pacer {
    /// A pacer for `rate` rows per second and batches of at most `max_batch`.
    pub(crate) fn new(rate: Option<f64>, max_batch: usize) -> Self {
        Self {
            rate,
            max_batch,
            started: None,
            sent: 0,
        }
    }

    /// How many rows may be generated now; 0 means wait.
    pub(crate) fn budget(&mut self) -> usize {
        let Some(rate) = self.rate else {
            return self.max_batch;
        };
        let started = *self.started.get_or_insert_with(|| {
            self.sent = 0;
            Instant::now()
        });
        let allowed = (started.elapsed().as_secs_f64() * rate) as u64;
        let due = usize::try_from(allowed.saturating_sub(self.sent))
            .unwrap_or(self.max_batch)
            .min(self.max_batch);
        // Wait for about 10 ms worth of rows: a batch per row would cost
        // more in overhead than the rows themselves.
        let min_batch = ((rate / 100.0) as usize).clamp(1, self.max_batch);
        if due < min_batch {
            0
        } else {
            due
        }
    }

    /// Records that `rows` were emitted.
    pub(crate) fn sent(&mut self, rows: u64) {
        self.sent += rows;
    }

    /// Starts the clock again at the next poll (after a restore).
    pub(crate) fn restart(&mut self) {
        self.started = None;
    }
}
