//! What executing a statement gives: a finished batch, or a planned
//! SELECT ([`QueryRun`]) whose job starts when its rows are fetched. A
//! bounded query is collected, its changelog folded and ORDER BY / LIMIT
//! applied; an unbounded one streams its batches, with the changelog as an
//! `op` column when the query is updating.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use runnel_engine::graph::JobGraph;
use runnel_engine::types::{row_kinds, ROW_KIND_COLUMN};
use runnel_sql::finish::Finish;
use runnel_sql::session::PreparedJob;
use tokio::sync::{mpsc, Semaphore};

use crate::error::{Result, ServerError};
use crate::tables::fold_changelog;

/// What executing a statement gave.
pub enum Executed {
    /// A finished result (DDL message, job id, SHOW, DESCRIBE, EXPLAIN).
    Batch(RecordBatch),
    /// A planned SELECT, started when its rows are fetched.
    Query(Box<QueryRun>),
}

/// A SELECT waiting to be fetched.
pub struct QueryRun {
    /// Its job id.
    pub job_id: String,
    /// The schema of the stream the client receives.
    pub schema: SchemaRef,
    /// True when it ends by itself (then the result is complete, sorted
    /// and limited; otherwise it is a subscription).
    pub bounded: bool,
    updating: bool,
    /// True when it reads only in-memory tables and runs on the caller's
    /// thread ([`runnel_engine::runtime::run_local`]) rather than as a job.
    local: bool,
    finish: Option<Finish>,
    graph: Option<JobGraph>,
    rx: mpsc::Receiver<RecordBatch>,
    /// The query's own columns (without `op`).
    columns: SchemaRef,
    /// For a subscription with `LIMIT n [OFFSET m]`: rows still to skip
    /// and rows still to send.
    window: Option<(usize, usize)>,
}

impl QueryRun {
    /// The query of `job`, whose sink sends into `rx`.
    pub(crate) fn new(job: PreparedJob, rx: mpsc::Receiver<RecordBatch>) -> Self {
        let schema = if !job.bounded && job.updating {
            with_op(&job.schema)
        } else {
            Arc::clone(&job.schema)
        };
        let window = match &job.finish {
            Some(f) if !job.bounded => f.limit.map(|n| (f.offset, n)),
            _ => None,
        };
        QueryRun {
            window,
            job_id: job.id,
            schema,
            bounded: job.bounded,
            updating: job.updating,
            local: false,
            finish: job.finish,
            graph: Some(job.graph),
            rx,
            columns: job.schema,
        }
    }

    /// A bounded query over in-memory tables only, run by
    /// [`QueryRun::run_local`] instead of as a job.
    pub(crate) fn local(job: PreparedJob, rx: mpsc::Receiver<RecordBatch>) -> Self {
        let mut run = Self::new(job, rx);
        run.local = true;
        run
    }

    /// True for a query that [`QueryRun::run_local`] runs.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Runs a local query on a blocking thread while collecting its rows
    /// here; the complete result, as [`QueryRun::collect`] gives it. It
    /// waits for one of `slots` first, which bounds how many local queries
    /// run at once, and it stops if this future is dropped (the client went
    /// away).
    pub async fn run_local(&mut self, slots: &Semaphore) -> Result<RecordBatch> {
        let _slot = slots
            .acquire()
            .await
            .map_err(|_| ServerError::Internal("the server is stopping".into()))?;
        let graph = self
            .graph
            .take()
            .ok_or_else(|| ServerError::Internal("the query was already started".into()))?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _stop_if_dropped = CancelOnDrop(Arc::clone(&cancel));
        let job =
            tokio::task::spawn_blocking(move || runnel_engine::runtime::run_local(&graph, &cancel));
        let collected = self.collect().await;
        match job.await {
            Ok(Ok(())) => collected,
            Ok(Err(e)) => Err(ServerError::JobFailed {
                id: self.job_id.clone(),
                source: Arc::new(e),
            }),
            Err(e) => Err(ServerError::Internal(format!(
                "the query's task failed: {e}"
            ))),
        }
    }

    /// The job graph to start; `None` once started.
    pub(crate) fn take_graph(&mut self) -> Option<JobGraph> {
        self.graph.take()
    }

    /// Receives the next batch of the query's sink, in the form the client
    /// receives: the changelog as an `op` column for subscriptions to an
    /// updating query. `None` once the job has ended.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>> {
        if self.limit_reached() {
            return Ok(None);
        }
        let Some(batch) = self.rx.recv().await else {
            return Ok(None);
        };
        let batch = if self.updating {
            changelog_with_op(&self.schema, &batch)?
        } else {
            batch.with_schema(Arc::clone(&self.schema))?
        };
        // LIMIT over a subscription: skip the offset, then send at most
        // the limit.
        let Some((skip, left)) = &mut self.window else {
            return Ok(Some(batch));
        };
        let dropped = (*skip).min(batch.num_rows());
        *skip -= dropped;
        let take = (*left).min(batch.num_rows() - dropped);
        *left -= take;
        Ok(Some(batch.slice(dropped, take)))
    }

    /// True when a subscription with LIMIT has sent its rows: it ends
    /// there, and its job is cancelled.
    pub fn limit_reached(&self) -> bool {
        self.window.is_some_and(|(_, left)| left == 0)
    }

    /// Collects a bounded query to its end and returns the final result:
    /// the changelog folded into rows, then ORDER BY and LIMIT.
    pub async fn collect(&mut self) -> Result<RecordBatch> {
        let mut batches = Vec::new();
        while let Some(b) = self.rx.recv().await {
            batches.push(b);
        }
        let rows = if self.updating {
            fold_changelog(&self.columns, &batches)?
        } else {
            let batches: Vec<RecordBatch> = batches
                .into_iter()
                .map(|b| b.with_schema(Arc::clone(&self.columns)))
                .collect::<std::result::Result<_, _>>()?;
            arrow::compute::concat_batches(&self.columns, &batches)?
        };
        match &self.finish {
            Some(f) => Ok(f.apply(&self.columns, &[rows])?),
            None => Ok(rows),
        }
    }
}

/// Cancels a query's job when dropped while `armed`: the Flight stream or
/// console request that fetched its rows went away before the end (the
/// client cancelled, closed, or stopped reading). Disarmed once the job has
/// ended by itself.
pub(crate) struct JobGuard {
    pub(crate) server: Arc<crate::server::Server>,
    pub(crate) job: String,
    pub(crate) armed: bool,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if self.armed {
            self.server.cancel_job(&self.job);
        }
    }
}

/// Sets its flag when dropped: a local query whose caller is gone stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `op` followed by the query's columns.
pub(crate) fn with_op(schema: &SchemaRef) -> SchemaRef {
    let mut fields = vec![Field::new("op", DataType::Utf8, false)];
    fields.extend(schema.fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(fields))
}

fn changelog_with_op(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let kinds = row_kinds(batch)?;
    let op: ArrayRef = Arc::new(StringArray::from_iter_values(
        kinds.iter().map(|k| k.short_string()),
    ));
    let mut columns = vec![op];
    for (i, f) in batch.schema().fields().iter().enumerate() {
        if f.name() != ROW_KIND_COLUMN {
            columns.push(Arc::clone(batch.column(i)));
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
