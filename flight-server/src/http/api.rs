//! The console's JSON calls: the job list, one job's graph and
//! checkpoints, and statements from the SQL editor. Each runs as the
//! console session's user ([`super::login::caller`]): the job list holds
//! only the jobs the user may see, and a statement is checked as one sent
//! over Flight SQL by that user.
//!
//! `POST /api/sql` with `{"sql": "..."}` answers a finished result as one
//! JSON object `{"columns": [{"name", "type"}], "rows": [[...]], "bounded":
//! true}` (cells as text, NULL as null; at most [`MAX_ROWS`] rows, with
//! `"truncated": true` past them). A subscription (a query over an
//! unbounded source) streams newline-delimited JSON: a first line with
//! the columns, then one `{"rows": [...]}` line per batch as the job sends
//! it (the changelog as an `op` column for an updating query), a
//! `{"keepalive": true}` line after each quiet keep-alive interval, and a
//! last `{"end": ...}` line (at [`MAX_ROWS`] rows at most); closing the
//! request cancels the query's job, also that of a bounded query. A
//! statement that fails answers `{"error", "line", "column"}` with a 4xx
//! or 5xx status.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream;
use serde::Deserialize;
use serde_json::{json, Value};

use super::login::caller;
use super::{error, HttpState};
use crate::error::ServerError;
use crate::query::{Executed, JobGuard, QueryRun};
use crate::server::Server;

/// Rows a result or a subscription sends to the console at most.
pub const MAX_ROWS: usize = 10_000;

/// The jobs the caller may see, with their graphs, or the 401 answer.
async fn visible_jobs(
    state: Arc<HttpState>,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<Vec<crate::monitor::JobView>, Response> {
    let client = caller(&state, headers, addr).map_err(IntoResponse::into_response)?;
    Ok(
        tokio::task::spawn_blocking(move || state.job_views(&client.user))
            .await
            .unwrap_or_default(),
    )
}

pub(super) async fn jobs(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let views = match visible_jobs(state, &headers, addr).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // The list without graphs: a job's own call has those.
    let list: Vec<Value> = views
        .into_iter()
        .map(|mut v| {
            let checkpoint = v.graph.as_ref().and_then(|g| g.checkpoints.last().cloned());
            let operators = v.graph.as_ref().map_or(0, |g| g.operators.len());
            v.graph = None;
            let mut o = serde_json::to_value(&v).unwrap_or(Value::Null);
            o["last_checkpoint"] = serde_json::to_value(checkpoint).unwrap_or(Value::Null);
            o["operators"] = json!(operators);
            o
        })
        .collect();
    Json(json!({ "jobs": list })).into_response()
}

pub(super) async fn job(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let views = match visible_jobs(state, &headers, addr).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // A job the user may not see is as unknown as one that does not exist.
    match views.into_iter().find(|v| v.id == id) {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no job '{id}'")),
    }
}

/// The body of `POST /api/sql`.
#[derive(Deserialize)]
pub(super) struct Statement {
    sql: String,
}

pub(super) async fn sql(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(stmt): Json<Statement>,
) -> Response {
    let client = match caller(&state, &headers, addr) {
        Ok(c) => c,
        Err(u) => return u.into_response(),
    };
    let Some(server) = state.server().cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "runnel run has no SQL editor: the script's file holds its statements (runnel serve has one)",
        );
    };
    let executed = tokio::task::spawn_blocking({
        let server = Arc::clone(&server);
        move || server.execute_as(&client, &stmt.sql, &[])
    })
    .await;
    let executed = match executed {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return failure(e),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the statement's task failed: {e}"),
            )
        }
    };
    let result = match executed {
        Executed::Batch(b) => Ok(table(&b)),
        Executed::Query(mut run) if run.is_local() => {
            run.run_local(server.local_slots()).await.map(|b| table(&b))
        }
        Executed::Query(mut run) if run.bounded => match server.start_query(&mut run) {
            Ok(()) => {
                // A browser that goes away (or a Stop) drops this call: the
                // guard then cancels the query's job.
                let mut guard = JobGuard {
                    server: Arc::clone(&server),
                    job: run.job_id.clone(),
                    armed: true,
                };
                let result = match run.collect().await {
                    Ok(b) => server.job_result(&run.job_id).await.map(|()| table(&b)),
                    Err(e) => Err(e),
                };
                guard.armed = false;
                result
            }
            Err(e) => Err(e),
        },
        Executed::Query(mut run) => {
            return match server.start_query(&mut run) {
                Ok(()) => subscription(server, *run),
                Err(e) => failure(e),
            }
        }
    };
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => failure(e),
    }
}

/// A failed statement: its message and, for a SQL error, its position.
fn failure(e: ServerError) -> Response {
    let position = match &e {
        ServerError::Sql(s) => s.position(),
        _ => None,
    };
    let status = crate::flight_sql::codes::status(e);
    let code = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::Cancelled => StatusCode::CONFLICT,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut body = json!({ "error": status.message() });
    if let Some(p) = position.filter(|p| p.line > 0) {
        body["line"] = json!(p.line);
        body["column"] = json!(p.column);
    }
    (code, Json(body)).into_response()
}

/// The columns of a schema as the console shows them.
fn columns(schema: &arrow::datatypes::Schema) -> Value {
    schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect()
}

/// Up to `limit` rows of `batch`, each cell as text or null.
fn rows(batch: &RecordBatch, limit: usize) -> Vec<Value> {
    let options = FormatOptions::default();
    let formatters: Vec<Option<ArrayFormatter<'_>>> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
        .collect();
    (0..batch.num_rows().min(limit))
        .map(|i| {
            batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(c, f)| match f {
                    _ if c.is_null(i) => Value::Null,
                    Some(f) => Value::String(f.value(i).to_string()),
                    None => Value::String("?".into()),
                })
                .collect()
        })
        .collect()
}

/// A finished result.
fn table(batch: &RecordBatch) -> Value {
    json!({
        "columns": columns(batch.schema_ref()),
        "rows": rows(batch, MAX_ROWS),
        "bounded": true,
        "truncated": batch.num_rows() > MAX_ROWS,
    })
}

struct Streaming {
    run: QueryRun,
    guard: JobGuard,
    sent_columns: bool,
    sent_rows: usize,
    done: bool,
}

/// A subscription's rows as newline-delimited JSON, as its job sends them.
fn subscription(server: Arc<Server>, run: QueryRun) -> Response {
    let state = Streaming {
        guard: JobGuard {
            server,
            job: run.job_id.clone(),
            armed: true,
        },
        run,
        sent_columns: false,
        sent_rows: 0,
        done: false,
    };
    let lines = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if !st.sent_columns {
            st.sent_columns = true;
            let head = json!({
                "columns": columns(&st.run.schema),
                "bounded": false,
                "job_id": st.run.job_id,
            });
            return Some((line(&head), st));
        }
        let end = |st: &mut Streaming, why: Value| {
            st.done = true;
            line(&json!({ "end": why, "rows_sent": st.sent_rows }))
        };
        let keepalive = st.guard.server.config().keepalive;
        let next = match tokio::time::timeout(keepalive, st.run.next()).await {
            Ok(next) => next,
            // Nothing for a while: a line that finds out whether the
            // browser is still there (writing to a closed one fails, and
            // the dropped response cancels the job).
            Err(_elapsed) => return Some((line(&json!({ "keepalive": true })), st)),
        };
        let out = match next {
            Ok(Some(batch)) => {
                let left = MAX_ROWS - st.sent_rows;
                let rows = rows(&batch, left);
                st.sent_rows += rows.len();
                let mut text = line(&json!({ "rows": rows }));
                if st.sent_rows >= MAX_ROWS {
                    text.push_str(&end(&mut st, json!("row limit reached")));
                }
                text
            }
            Ok(None) if st.run.limit_reached() => end(&mut st, json!("LIMIT reached")),
            Ok(None) => {
                let result = st.guard.server.job_result(&st.run.job_id).await;
                st.guard.armed = false;
                match result {
                    Ok(()) => end(&mut st, json!("finished")),
                    Err(e) => end(&mut st, json!({ "error": e.to_string() })),
                }
            }
            Err(e) => end(&mut st, json!({ "error": e.to_string() })),
        };
        Some((out, st))
    });
    let body = Body::from_stream(futures::StreamExt::map(lines, |l| {
        Ok::<_, std::convert::Infallible>(l)
    }));
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn line(v: &Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}
