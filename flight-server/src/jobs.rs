//! The jobs a process runs and their states: [`JobManager`] starts, stops,
//! cancels and reaps them and owns each one's [`JobStatus`]. Both `runnel
//! run` (the CLI) and `runnel serve` (the server) run their jobs through it.
//!
//! The status type itself is the engine's ([`JobStatus`]); the manager
//! shares each job's status cell with the SQL session, which reads it for
//! `SHOW JOBS`, so `SHOW JOBS` and `system.jobs` always agree.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_engine::graph::JobGraph;
pub use runnel_engine::runtime::JobStatus;
use runnel_engine::runtime::{Job, JobHandle, Progress};
use runnel_engine::EngineError;
use runnel_sql::session::{JobKind, PreparedJob};

use crate::monitor::GraphView;

/// One job the manager knows.
pub struct ManagedJob {
    statement: String,
    kind: JobKind,
    /// Shared with the SQL session, which shows it in `SHOW JOBS`.
    status: Arc<Mutex<JobStatus>>,
    handle: Option<JobHandle>,
    /// Counters when the job ended (`Some` once it has ended).
    last: Option<Progress>,
    cancelled: bool,
    /// When the job was planned.
    created: Instant,
    /// Its OpenLineage run events, when the session asked for them.
    lineage: Option<crate::openlineage::RunEvents>,
    /// Its graph as it ended (`Some` once it has ended).
    last_graph: Option<Arc<GraphView>>,
    /// When it was found ended.
    ended: Option<Instant>,
}

impl ManagedJob {
    /// The statement, as `SHOW JOBS` shows it.
    pub fn statement(&self) -> &str {
        &self.statement
    }

    /// What the job writes to.
    pub fn kind(&self) -> &JobKind {
        &self.kind
    }

    /// Its status.
    pub fn status(&self) -> JobStatus {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// True while its threads run (started and not reaped).
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    /// Its counters: live while it runs, final once it has ended, `None`
    /// if it never ran.
    pub fn progress(&self) -> Option<Progress> {
        match (&self.handle, &self.last) {
            (Some(h), _) => Some(h.progress()),
            (None, last) => *last,
        }
    }

    /// Its operators, edges and checkpoints: live while it runs, as they
    /// were when it ended after that, `None` if it never ran.
    pub fn graph(&self) -> Option<Arc<GraphView>> {
        match (&self.handle, &self.last_graph) {
            (Some(h), _) => Some(Arc::new(crate::monitor::capture(h))),
            (None, last) => last.clone(),
        }
    }

    /// Time from its planning to now, or to its end once it has ended.
    pub fn age(&self) -> Duration {
        self.ended
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(self.created)
    }

    fn set_status(&mut self, status: JobStatus) {
        match self.status.lock() {
            Ok(mut s) => *s = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
    }

    /// Waits for the threads of a job that has ended and records how it
    /// ended; false when it has not ended (or was reaped before).
    fn reap(&mut self) -> bool {
        if !self.handle.as_ref().is_some_and(JobHandle::is_finished) {
            return false;
        }
        let Some(h) = self.handle.take() else {
            return false;
        };
        self.last = Some(h.progress());
        self.last_graph = Some(Arc::new(crate::monitor::capture(&h)));
        self.ended = Some(Instant::now());
        let status = match h.wait() {
            Ok(()) if self.cancelled => JobStatus::Cancelled,
            Ok(()) if matches!(self.status(), JobStatus::Stopping) => JobStatus::Stopped,
            Ok(()) => JobStatus::Finished,
            Err(EngineError::Cancelled) => JobStatus::Cancelled,
            Err(e) => JobStatus::Failed(Arc::new(e)),
        };
        if let Some(events) = &self.lineage {
            match &status {
                JobStatus::Failed(e) => events.send("FAIL", Some(&e.to_string())),
                JobStatus::Cancelled => events.send("ABORT", None),
                _ => events.send("COMPLETE", None),
            }
        }
        self.set_status(status);
        true
    }
}

/// Ended ad-hoc queries kept in the job list.
const KEPT_QUERIES: usize = 200;

/// A query planned but never fetched is forgotten after this long (its
/// result expires after ten minutes).
const UNFETCHED_QUERY_TTL: Duration = Duration::from_secs(15 * 60);

/// The jobs of one process, by id.
#[derive(Default)]
pub struct JobManager {
    jobs: BTreeMap<String, ManagedJob>,
}

impl JobManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a job the session planned, not started yet.
    pub fn add(&mut self, job: &PreparedJob) {
        let mut entry = ManagedJob {
            statement: job.statement.clone(),
            kind: job.kind.clone(),
            status: Arc::clone(&job.status),
            handle: None,
            last: None,
            cancelled: false,
            created: Instant::now(),
            lineage: job
                .openlineage
                .clone()
                .map(crate::openlineage::RunEvents::new),
            last_graph: None,
            ended: None,
        };
        entry.set_status(JobStatus::Created);
        self.jobs.insert(job.id.clone(), entry);
    }

    /// Job `id`.
    pub fn get(&self, id: &str) -> Option<&ManagedJob> {
        self.jobs.get(id)
    }

    /// Every job, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ManagedJob)> {
        self.jobs.iter()
    }

    /// The running jobs' ids and handles, in the order they were planned.
    pub fn running(&self) -> Vec<(&str, &JobHandle)> {
        let mut out: Vec<(&str, &JobHandle)> = self
            .jobs
            .iter()
            .filter_map(|(id, j)| j.handle.as_ref().map(|h| (id.as_str(), h)))
            .collect();
        out.sort_by_key(|(id, _)| job_number(id));
        out
    }

    /// Starts job `id` (added before) on `graph` and returns its handle.
    pub fn start(&mut self, id: &str, graph: JobGraph) -> Result<&JobHandle, EngineError> {
        let job = self
            .jobs
            .get_mut(id)
            .ok_or_else(|| EngineError::Internal(format!("{id} was never planned")))?;
        let handle = Job::start(graph)?;
        job.set_status(JobStatus::Running);
        if let Some(events) = &job.lineage {
            events.send("START", None);
        }
        Ok(job.handle.insert(handle))
    }

    /// Attaches the handle of job `id`, started by the caller (without
    /// holding whatever guards this manager). A job forgotten meanwhile is
    /// cancelled and `false` returned.
    pub fn attach(&mut self, id: &str, handle: JobHandle) -> bool {
        match self.jobs.get_mut(id) {
            Some(job) => {
                job.set_status(JobStatus::Running);
                job.handle = Some(handle);
                true
            }
            None => {
                handle.cancel();
                false
            }
        }
    }

    /// Records that job `id` could not start.
    pub fn fail(&mut self, id: &str, error: EngineError) {
        if let Some(job) = self.jobs.get_mut(id) {
            if let Some(events) = &job.lineage {
                events.send("FAIL", Some(&error.to_string()));
            }
            job.set_status(JobStatus::Failed(Arc::new(error)));
        }
    }

    /// Records that job `id` is not started because it was stopped before
    /// (a replayed job that a later statement stopped).
    pub fn mark_stopped(&mut self, id: &str) {
        if let Some(job) = self.jobs.get_mut(id) {
            job.set_status(JobStatus::Stopped);
        }
    }

    /// Asks job `id` to stop (taking a savepoint where it checkpoints):
    /// `Some(true)` when it was running, `Some(false)` when it was not,
    /// `None` for an unknown job.
    pub fn stop(&mut self, id: &str) -> Option<bool> {
        let job = self.jobs.get_mut(id)?;
        let Some(h) = &job.handle else {
            return Some(false);
        };
        h.stop();
        job.set_status(JobStatus::Stopping);
        Some(true)
    }

    /// Cancels job `id` if it runs.
    pub fn cancel(&mut self, id: &str) {
        if let Some(job) = self.jobs.get_mut(id) {
            if let Some(h) = &job.handle {
                h.cancel();
                job.cancelled = true;
            }
        }
    }

    /// Cancels the jobs that keep materialized view `view` up to date; the
    /// ids of every such job, running or not.
    pub fn cancel_view(&mut self, view: &str) -> Vec<String> {
        let kind = JobKind::MaterializedView(view.to_string());
        let ids: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.kind == kind)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.cancel(id);
        }
        ids
    }

    /// Reaps job `id` if its threads have ended; true when it ended now.
    pub fn reap(&mut self, id: &str) -> bool {
        self.jobs.get_mut(id).is_some_and(ManagedJob::reap)
    }

    /// Reaps every job whose threads have ended; the ids that ended now,
    /// in the order the jobs were planned.
    pub fn reap_all(&mut self) -> Vec<String> {
        let mut ended: Vec<String> = self
            .jobs
            .iter_mut()
            .filter_map(|(id, j)| j.reap().then(|| id.clone()))
            .collect();
        ended.sort_by_key(|id| job_number(id));
        ended
    }

    /// Forgets job `id` unless it runs; true when it was forgotten.
    pub fn forget_unless_running(&mut self, id: &str) -> bool {
        if self.jobs.get(id).is_some_and(|j| j.handle.is_none()) {
            self.jobs.remove(id);
            return true;
        }
        false
    }

    /// Forgets job `id`; a running one is cancelled as its handle drops.
    pub fn forget(&mut self, id: &str) {
        self.jobs.remove(id);
    }

    /// Forgets ended ad-hoc queries, oldest first, beyond the newest 200,
    /// so that the job list does not grow without bound, and queries
    /// planned but never fetched once their result has expired. The ids
    /// forgotten.
    pub fn prune_queries(&mut self) -> Vec<String> {
        let mut ended: Vec<(usize, String)> = Vec::new();
        let mut expired = Vec::new();
        for (id, j) in &self.jobs {
            if j.kind != JobKind::Select || j.handle.is_some() {
                continue;
            }
            if j.last.is_some() {
                ended.push((job_number(id).unwrap_or(0), id.clone()));
            } else if j.created.elapsed() > UNFETCHED_QUERY_TTL {
                expired.push(id.clone());
            }
        }
        ended.sort();
        let excess = ended.len().saturating_sub(KEPT_QUERIES);
        let mut forgotten: Vec<String> = ended.into_iter().take(excess).map(|(_, id)| id).collect();
        forgotten.extend(expired);
        for id in &forgotten {
            self.jobs.remove(id);
        }
        forgotten
    }

    /// Takes the handles of every running job (to stop them at shutdown).
    pub fn take_running(&mut self) -> Vec<(String, JobHandle)> {
        self.jobs
            .iter_mut()
            .filter_map(|(id, j)| j.handle.take().map(|h| (id.clone(), h)))
            .collect()
    }
}

/// The number of a job id (`job-<n>`).
pub fn job_number(id: &str) -> Option<usize> {
    id.strip_prefix("job-")?.parse().ok()
}
