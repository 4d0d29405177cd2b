//! Results as Flight streams: a finished batch in slices small enough for
//! gRPC, and a query's rows as its job sends them. A query whose stream is
//! dropped before its end (the client cancelled or went away) has its job
//! cancelled.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::utils::batches_to_flight_data;
use arrow_flight::{FlightData, SchemaAsIpc};
use futures::{stream, Stream, StreamExt};
use tonic::{Response, Status};

use super::codes::status;
use super::metadata::annotate;
use crate::query::{JobGuard, QueryRun};
use crate::server::Server;

/// Rows per Flight message of a finished result.
const ROWS_PER_MESSAGE: usize = 8192;

/// The stream of a DoGet answer.
pub(super) type DoGetStream =
    Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// The Flight messages of a schema.
pub(super) fn schema_message(schema: &Schema) -> FlightData {
    SchemaAsIpc::new(schema, &IpcWriteOptions::default()).into()
}

/// The Flight messages of one batch (no schema message), in slices small
/// enough for gRPC. Empty batches are sent too (keep-alives).
fn batch_messages(batch: &RecordBatch) -> Result<Vec<FlightData>, Status> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let len = ROWS_PER_MESSAGE.min(batch.num_rows() - offset);
        let slice = batch.slice(offset, len);
        let mut data = batches_to_flight_data(batch.schema_ref(), vec![slice])
            .map_err(|e| Status::internal(format!("cannot encode a batch: {e}")))?;
        out.extend(data.drain(1..));
        offset += len;
        if offset >= batch.num_rows() {
            return Ok(out);
        }
    }
}

/// A finished result as a stream.
pub(super) fn batch_stream(batch: RecordBatch) -> Result<Response<DoGetStream>, Status> {
    let schema = annotate(&batch.schema(), None);
    let batch = batch
        .with_schema(Arc::clone(&schema))
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut messages = vec![schema_message(&schema)];
    messages.extend(batch_messages(&batch)?);
    Ok(Response::new(Box::pin(stream::iter(
        messages.into_iter().map(Ok),
    ))))
}

/// A metadata result, whose schema is fixed by the protocol.
pub(super) fn metadata_stream(batch: RecordBatch) -> Result<Response<DoGetStream>, Status> {
    let mut messages = vec![schema_message(batch.schema_ref())];
    messages.extend(batch_messages(&batch)?);
    Ok(Response::new(Box::pin(stream::iter(
        messages.into_iter().map(Ok),
    ))))
}

struct QueryStream {
    run: QueryRun,
    guard: JobGuard,
    keepalive: Duration,
    sent_schema: bool,
    done: bool,
}

pub(super) fn query_stream(server: Arc<Server>, mut run: QueryRun) -> Result<DoGetStream, Status> {
    server.start_query(&mut run).map_err(status)?;
    let state = QueryStream {
        guard: JobGuard {
            server: Arc::clone(&server),
            job: run.job_id.clone(),
            armed: true,
        },
        keepalive: server.config().keepalive,
        run,
        sent_schema: false,
        done: false,
    };
    let s = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if !st.sent_schema {
            st.sent_schema = true;
            let first = vec![Ok(schema_message(&st.run.schema))];
            return Some((first, st));
        }
        let schema = Arc::clone(&st.run.schema);
        let out: Result<Vec<FlightData>, Status> = if st.run.bounded {
            st.done = true;
            match st.run.collect().await {
                Ok(batch) => match st.guard.server.job_result(&st.run.job_id).await {
                    Ok(()) => batch
                        .with_schema(schema)
                        .map_err(|e| Status::internal(e.to_string()))
                        .and_then(|b| batch_messages(&b)),
                    Err(e) => Err(status(e)),
                },
                Err(e) => Err(status(e)),
            }
        } else {
            match tokio::time::timeout(st.keepalive, st.run.next()).await {
                Err(_elapsed) => batch_messages(&RecordBatch::new_empty(schema)),
                Ok(Ok(Some(batch))) => batch_messages(&batch),
                Ok(Ok(None)) if st.run.limit_reached() => {
                    // LIMIT reached: the stream ends, and dropping the
                    // armed guard cancels the job.
                    st.done = true;
                    st.guard.server.cancel_job(&st.run.job_id);
                    Ok(vec![])
                }
                Ok(Ok(None)) => {
                    st.done = true;
                    match st.guard.server.job_result(&st.run.job_id).await {
                        Ok(()) => Ok(vec![]),
                        Err(e) => Err(status(e)),
                    }
                }
                Ok(Err(e)) => {
                    st.done = true;
                    Err(status(e))
                }
            }
        };
        if st.done {
            // The job has ended; nothing to cancel.
            st.guard.armed = false;
        }
        let items = match out {
            Ok(messages) => messages.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        Some((items, st))
    })
    .flat_map(stream::iter);
    Ok(Box::pin(s))
}
