//! The Flight SQL service: authentication, statements, prepared
//! statements, subscriptions and metadata, on top of [`Server`].
//!
//! Every statement is executed when the client asks for its FlightInfo
//! (DDL and job submission take effect then); the result waits under a
//! one-shot ticket. A SELECT's job starts when the ticket is fetched: a
//! bounded query is collected, folded, sorted and sent; an unbounded one
//! becomes a subscription whose stream stays open, sending each batch as
//! the sink receives it and an empty batch every keep-alive period while
//! idle, until the job ends or the client cancels, which cancels the job.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::utils::batches_to_flight_data;
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use base64::Engine as _;
use futures::{stream, Stream, StreamExt, TryStreamExt};
use prost::Message;
use runnel_sql::catalog::{CATALOG_NAME, PUBLIC_SCHEMA, SYSTEM_SCHEMA};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::metadata::{annotate, primary_keys, primary_keys_schema, sql_info, xdbc_types};
use crate::server::{Executed, QueryRun, Server, ServerError};

/// Results older than this that nobody fetched are dropped (and their
/// jobs, never started, are forgotten).
const RESULT_TTL: Duration = Duration::from_secs(600);

/// Rows per Flight message of a finished result.
const ROWS_PER_MESSAGE: usize = 8192;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

struct PreparedEntry {
    sql: String,
    placeholders: usize,
    params: Option<RecordBatch>,
}

/// The Flight SQL service of one server.
#[derive(Clone)]
pub struct RunnelFlightSql {
    server: Arc<Server>,
    results: Arc<Mutex<HashMap<String, (Instant, Executed)>>>,
    prepared: Arc<Mutex<HashMap<String, PreparedEntry>>>,
    tokens: Arc<Mutex<HashMap<String, String>>>,
    next: Arc<AtomicU64>,
    sql_info: Arc<SqlInfoData>,
    xdbc: Arc<XdbcTypeInfoData>,
}

impl RunnelFlightSql {
    /// The service over `server`.
    pub fn new(server: Arc<Server>) -> Self {
        Self {
            server,
            results: Arc::default(),
            prepared: Arc::default(),
            tokens: Arc::default(),
            next: Arc::new(AtomicU64::new(1)),
            sql_info: Arc::new(sql_info()),
            xdbc: Arc::new(xdbc_types()),
        }
    }

    fn handle(&self, prefix: &str) -> String {
        let mut r = [0u8; 8];
        // The counter keeps handles unique; the random part keeps them
        // unguessable to other clients.
        let _ = getrandom::fill(&mut r);
        format!(
            "{prefix}-{}-{:016x}",
            self.next.fetch_add(1, Ordering::Relaxed),
            u64::from_le_bytes(r)
        )
    }

    /// Checks the caller's credentials: a bearer token from the handshake,
    /// or basic credentials on the call itself.
    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match header {
            Some(h) if h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ") => {
                let known = self
                    .tokens
                    .lock()
                    .map(|t| t.contains_key(h[7..].trim()))
                    .unwrap_or(false);
                if known {
                    Ok(())
                } else {
                    Err(Status::unauthenticated(
                        "the bearer token is not valid on this server (it restarted, or the token is wrong); log in again",
                    ))
                }
            }
            Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => {
                self.basic(h).map(|_| ())
            }
            Some(_) => Err(Status::unauthenticated(
                "unsupported authorization header; use basic credentials or the bearer token from the handshake",
            )),
            None if self.server.config().auth.allow_anonymous => Ok(()),
            None => Err(Status::unauthenticated(
                "authentication required: log in with a user name and password",
            )),
        }
    }

    /// Verifies `Basic base64(user:password)`; the user name.
    fn basic(&self, header: &str) -> Result<String, Status> {
        // Some clients (ADBC's Go driver) leave out the `=` padding.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = lenient
            .decode(header[6..].trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Status::unauthenticated("malformed basic credentials"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| Status::unauthenticated("malformed basic credentials"))?;
        if self.server.config().verify(user, password) {
            Ok(user.to_string())
        } else {
            Err(Status::unauthenticated("wrong user name or password"))
        }
    }

    async fn execute(&self, sql: String) -> Result<Executed, Status> {
        let server = Arc::clone(&self.server);
        tokio::task::spawn_blocking(move || server.execute(&sql))
            .await
            .map_err(|e| Status::internal(format!("the statement's task failed: {e}")))?
            .map_err(status)
    }

    /// Runs `sql` and returns the FlightInfo of its result.
    async fn statement_info(
        &self,
        sql: String,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let executed = self.execute(sql).await?;
        let schema = match &executed {
            Executed::Batch(b) => annotate(&b.schema(), None),
            Executed::Query(q) => Arc::clone(&q.schema),
        };
        let handle = self.handle("result");
        {
            let mut results = self
                .results
                .lock()
                .map_err(|_| Status::internal("results lock poisoned"))?;
            results.retain(|_, (t, _)| t.elapsed() < RESULT_TTL);
            results.insert(handle.clone(), (Instant::now(), executed));
        }
        let ticket = TicketStatementQuery {
            statement_handle: handle.into_bytes().into(),
        };
        info(&schema, ticket.as_any(), descriptor)
    }

    /// The SQL of a prepared statement with its bound parameters.
    fn bound_sql(&self, handle: &[u8]) -> Result<String, Status> {
        let prepared = self
            .prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements lock poisoned"))?;
        let entry = prepared
            .get(&String::from_utf8_lossy(handle).to_string())
            .ok_or_else(|| Status::not_found("unknown or closed prepared statement"))?;
        substitute(&entry.sql, entry.placeholders, entry.params.as_ref(), 0)
    }
}

/// Maps server errors to gRPC codes.
fn status(e: ServerError) -> Status {
    match e {
        ServerError::InvalidArgument(m) => Status::invalid_argument(m),
        ServerError::NotFound(m) => Status::not_found(m),
        ServerError::Cancelled(m) => Status::cancelled(m),
        ServerError::Internal(m) => Status::internal(m),
    }
}

fn info(
    schema: &Schema,
    ticket: Any,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec()));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor)
        .with_total_records(-1)
        .with_total_bytes(-1);
    Ok(Response::new(info))
}

/// The Flight messages of a schema.
fn schema_message(schema: &Schema) -> FlightData {
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
fn batch_stream(batch: RecordBatch) -> Result<Response<DoGetStream>, Status> {
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
fn metadata_stream(batch: RecordBatch) -> Result<Response<DoGetStream>, Status> {
    let mut messages = vec![schema_message(batch.schema_ref())];
    messages.extend(batch_messages(&batch)?);
    Ok(Response::new(Box::pin(stream::iter(
        messages.into_iter().map(Ok),
    ))))
}

/// Cancels a query's job when its stream is dropped before the end (the
/// client cancelled or went away).
struct CancelOnDrop {
    server: Arc<Server>,
    job: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.server.cancel_job(&self.job);
        }
    }
}

struct QueryStream {
    run: QueryRun,
    guard: CancelOnDrop,
    keepalive: Duration,
    sent_schema: bool,
    done: bool,
}

fn query_stream(server: Arc<Server>, mut run: QueryRun) -> Result<DoGetStream, Status> {
    server.start_query(&mut run).map_err(status)?;
    let state = QueryStream {
        guard: CancelOnDrop {
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

/// Positions of the `?` placeholders of `sql` (outside strings, quoted
/// identifiers and comments), as byte offsets.
pub fn placeholders(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        // A doubled quote is an escaped quote.
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'?' => out.push(i),
            _ => {}
        }
        i += 1;
    }
    out
}

/// `sql` with its placeholders replaced by the values of row `row` of
/// `params`, as SQL literals.
pub fn substitute(
    sql: &str,
    count: usize,
    params: Option<&RecordBatch>,
    row: usize,
) -> Result<String, Status> {
    if count == 0 {
        return Ok(sql.to_string());
    }
    let params = params.ok_or_else(|| {
        Status::invalid_argument(format!(
            "the statement has {count} parameter(s) but none were bound"
        ))
    })?;
    if params.num_columns() != count {
        return Err(Status::invalid_argument(format!(
            "the statement has {count} parameter(s) but {} were bound",
            params.num_columns()
        )));
    }
    let mut out = String::with_capacity(sql.len() + 16 * count);
    let mut last = 0;
    for (k, pos) in placeholders(sql).into_iter().enumerate() {
        out.push_str(&sql[last..pos]);
        out.push_str(&literal(params.column(k), row)?);
        last = pos + 1;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// One value as a SQL literal.
fn literal(array: &ArrayRef, row: usize) -> Result<String, Status> {
    use arrow::array::AsArray;
    use arrow::datatypes::*;
    if row >= array.len() || array.is_null(row) {
        return Ok("NULL".into());
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(match array.data_type() {
        DataType::Boolean => {
            if array.as_boolean().value(row) {
                "TRUE".into()
            } else {
                "FALSE".into()
            }
        }
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float32 | DataType::Float64 => {
            let v = if array.data_type() == &DataType::Float32 {
                f64::from(array.as_primitive::<Float32Type>().value(row))
            } else {
                array.as_primitive::<Float64Type>().value(row)
            };
            if !v.is_finite() {
                return Err(Status::invalid_argument(format!(
                    "parameter value {v} has no SQL literal"
                )));
            }
            // A literal with an exponent is a DOUBLE, not a DECIMAL.
            format!("{v:e}")
        }
        DataType::Utf8 => quote(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => quote(array.as_string::<i64>().value(row)),
        DataType::Utf8View => quote(array.as_string_view().value(row)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .ok_or_else(|| Status::invalid_argument("date parameter out of range"))?;
            format!("DATE '{date}'")
        }
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row) * 1000,
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row) / 1000
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000
                }
            };
            let t = chrono::DateTime::from_timestamp_millis(v)
                .ok_or_else(|| Status::invalid_argument("timestamp parameter out of range"))?;
            format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.3f"))
        }
        other => {
            return Err(Status::invalid_argument(format!(
                "parameters of type {other} are not supported"
            )))
        }
    })
}

/// Reads the parameter batches of a DoPut.
async fn read_params(
    request: Request<PeekableFlightDataStream>,
) -> Result<Vec<RecordBatch>, Status> {
    // The first message may carry only the descriptor (no parameters).
    let stream = request
        .into_inner()
        .try_filter(|d| futures::future::ready(!d.data_header.is_empty()))
        .map_err(|e| e.into());
    FlightRecordBatchStream::new_from_flight_data(stream)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))
}

fn encode_schema(schema: &Schema) -> Result<Vec<u8>, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    let IpcMessage(bytes) = message.map_err(|e| Status::internal(e.to_string()))?;
    Ok(bytes.to_vec())
}

#[tonic::async_trait]
impl FlightSqlService for RunnelFlightSql {
    type FlightService = RunnelFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let user = match header {
            Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => self.basic(&h)?,
            None if self.server.config().auth.allow_anonymous => "anonymous".to_string(),
            _ => {
                return Err(Status::unauthenticated(
                    "log in with basic credentials (user name and password)",
                ))
            }
        };
        let token = self.handle("token");
        self.tokens
            .lock()
            .map_err(|_| Status::internal("tokens lock poisoned"))?
            .insert(token.clone(), user);
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(stream::iter(vec![Ok(reply)])));
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("cannot encode the token"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        self.statement_info(query.query, request.into_inner()).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let sql = self.bound_sql(&cmd.prepared_statement_handle)?;
        self.statement_info(sql, request.into_inner()).await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let handle = String::from_utf8_lossy(&ticket.statement_handle).to_string();
        let executed = self
            .results
            .lock()
            .map_err(|_| Status::internal("results lock poisoned"))?
            .remove(&handle)
            .map(|(_, e)| e)
            .ok_or_else(|| {
                Status::not_found("unknown ticket: results can be fetched once, within 10 minutes")
            })?;
        match executed {
            Executed::Batch(b) => batch_stream(b),
            Executed::Query(run) => {
                Ok(Response::new(query_stream(Arc::clone(&self.server), *run)?))
            }
        }
    }

    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.check(&request)?;
        match self.execute(ticket.query).await? {
            Executed::Batch(_) => Ok(0),
            Executed::Query(q) => {
                self.server.forget_query(&q.job_id);
                Err(Status::invalid_argument(
                    "a query returns rows; execute it as a query, not as an update",
                ))
            }
        }
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.check(&request)?;
        let sql = query.query;
        let count = placeholders(&sql).len();
        // The schema is planned with NULL for every parameter.
        let probe = {
            let mut s = String::with_capacity(sql.len());
            let mut last = 0;
            for pos in placeholders(&sql) {
                s.push_str(&sql[last..pos]);
                s.push_str("NULL");
                last = pos + 1;
            }
            s.push_str(&sql[last..]);
            s
        };
        let server = Arc::clone(&self.server);
        let dataset = tokio::task::spawn_blocking(move || server.describe(&probe))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status)?;
        let dataset = dataset
            .map(|s| annotate(&s, None))
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let params = Schema::new(
            (1..=count)
                .map(|i| Field::new(format!("p{i}"), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let handle = self.handle("prepared");
        self.prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements lock poisoned"))?
            .insert(
                handle.clone(),
                PreparedEntry {
                    sql,
                    placeholders: count,
                    params: None,
                },
            );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: encode_schema(&dataset)?.into(),
            parameter_schema: encode_schema(&params)?.into(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.check(&request)?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        self.prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements lock poisoned"))?
            .remove(&handle)
            .map(|_| ())
            .ok_or_else(|| Status::not_found("unknown or already closed prepared statement"))
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.check(&request)?;
        let batches = read_params(request).await?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        let mut prepared = self
            .prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements lock poisoned"))?;
        let entry = prepared
            .get_mut(&handle)
            .ok_or_else(|| Status::not_found("unknown or closed prepared statement"))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "a query takes one row of parameters, not {rows}"
            )));
        }
        entry.params = batches.into_iter().find(|b| b.num_rows() > 0);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.into_bytes().into()),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.check(&request)?;
        let batches = read_params(request).await?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        let (sql, count, stored) = {
            let prepared = self
                .prepared
                .lock()
                .map_err(|_| Status::internal("prepared statements lock poisoned"))?;
            let e = prepared
                .get(&handle)
                .ok_or_else(|| Status::not_found("unknown or closed prepared statement"))?;
            (e.sql.clone(), e.placeholders, e.params.clone())
        };
        // Each row of parameters runs the statement once.
        let mut statements = Vec::new();
        let bound: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        if bound.is_empty() {
            statements.push(substitute(&sql, count, stored.as_ref(), 0)?);
        }
        for b in &bound {
            for row in 0..b.num_rows() {
                statements.push(substitute(&sql, count, Some(b), row)?);
            }
        }
        for s in statements {
            if let Executed::Query(q) = self.execute(s).await? {
                self.server.forget_query(&q.job_id);
                return Err(Status::invalid_argument(
                    "a query returns rows; execute it as a query, not as an update",
                ));
            }
        }
        Ok(0)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.into_builder().schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let mut b = query.into_builder();
        b.append(CATALOG_NAME);
        metadata_stream(b.build().map_err(|e| Status::internal(e.to_string()))?)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let mut b = query.into_builder();
        b.append(CATALOG_NAME, PUBLIC_SCHEMA);
        b.append(CATALOG_NAME, SYSTEM_SCHEMA);
        metadata_stream(b.build().map_err(|e| Status::internal(e.to_string()))?)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder().schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let tables = self.server.tables().map_err(status)?;
        let mut b = query.into_builder();
        for t in &tables {
            let schema = annotate(&t.schema, Some((&t.schema_name, &t.table_name)));
            b.append(
                CATALOG_NAME,
                &t.schema_name,
                &t.table_name,
                t.table_type,
                &schema,
            )
            .map_err(|e| Status::internal(e.to_string()))?;
        }
        metadata_stream(b.build().map_err(|e| Status::internal(e.to_string()))?)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.into_builder().schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let mut b = query.into_builder();
        for t in ["MATERIALIZED VIEW", "SYSTEM TABLE", "TABLE", "VIEW"] {
            b.append(t);
        }
        metadata_stream(b.build().map_err(|e| Status::internal(e.to_string()))?)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        metadata_stream(batch)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        info(&primary_keys_schema(), query.as_any(), request.into_inner())
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let tables = self.server.tables().map_err(status)?;
        let batch = primary_keys(
            &tables,
            query.catalog.as_deref(),
            query.db_schema.as_deref(),
            &query.table,
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        metadata_stream(batch)
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = query.into_builder(&self.xdbc).schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let batch = query
            .into_builder(&self.xdbc)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        metadata_stream(batch)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};

    #[test]
    fn basic_credentials_decode_with_and_without_padding() {
        let dir = std::env::temp_dir().join(format!("runnel-basic-{}", std::process::id()));
        let mut config = crate::config::ServerConfig::new(&dir);
        config.auth.users.push(crate::config::User {
            name: "bob".into(),
            password_hash: crate::config::hash_password("pw").expect("hash"),
        });
        let server = Server::open(config).expect("server");
        let svc = RunnelFlightSql::new(server);
        // "bob:pw" is 6 bytes: no padding either way; "bob:pw1" needs one
        // '=', which ADBC leaves out.
        for (padded, unpadded) in [("Ym9iOnB3", "Ym9iOnB3"), ("Ym9iOnB3MQ==", "Ym9iOnB3MQ")] {
            let ok = svc.basic(&format!("Basic {padded}"));
            let also = svc.basic(&format!("Basic {unpadded}"));
            assert_eq!(ok.is_ok(), also.is_ok(), "{padded} vs {unpadded}");
        }
        assert_eq!(svc.basic("Basic Ym9iOnB3").expect("bob:pw"), "bob");
        let err = svc.basic("Basic Ym9iOnB3MQ").expect_err("bob:pw1 is wrong");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert_eq!(err.message(), "wrong user name or password");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn placeholders_skip_strings_identifiers_and_comments() {
        let sql = "SELECT '?', `a?` -- ?\n FROM t /* ? */ WHERE a = ? AND b = '''?' AND c = ?";
        let p = placeholders(sql);
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|&i| &sql[i..=i] == "?"));
    }

    #[test]
    fn parameters_become_literals() -> Result<(), Status> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(7)])),
                Arc::new(StringArray::from(vec![Some("it's")])),
                Arc::new(Float64Array::from(vec![None])),
            ],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        let sql = substitute(
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?",
            3,
            Some(&batch),
            0,
        )?;
        assert_eq!(
            sql,
            "SELECT * FROM t WHERE a = 7 AND b = 'it''s' AND c = NULL"
        );
        let err = substitute("SELECT ?", 1, None, 0).expect_err("unbound");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        Ok(())
    }
}
