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
//!
//! This file holds the service and its `FlightSqlService` methods; they
//! lean on the service's parts, none of which knows the service: `auth`
//! (the `Auth` gatekeeper: credentials, tokens and the handshake),
//! `prepared` (the `PreparedStatements` store and their parameters),
//! `stream` (results as Flight streams),
//! `codes` (server errors as gRPC statuses) and [`metadata`] (what BI
//! tools ask about).

mod auth;
pub(crate) mod codes;
mod guard;
pub(crate) mod login;
pub mod metadata;
mod prepared;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::Schema;
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
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, Ticket};
use prost::Message;
use runnel_engine::expr::ScalarValue;
use runnel_sql::catalog::{CATALOG_NAME, PUBLIC_SCHEMA, SYSTEM_SCHEMA};
use tonic::{Request, Response, Status, Streaming};

use self::auth::{Auth, HandshakeStream};
use self::codes::status;
pub use self::guard::Guarded;
use self::metadata::{
    annotate, primary_keys, primary_keys_schema, sql_info, with_remarks, xdbc_types,
};
use self::prepared::{read_params, PreparedStatements};
use self::stream::{batch_stream, metadata_stream, query_stream};
use crate::clients::Client;
use crate::query::Executed;
use crate::server::Server;

/// Results older than this that nobody fetched are dropped (and their
/// jobs, never started, are forgotten).
const RESULT_TTL: Duration = Duration::from_secs(600);

/// The Flight SQL service of one server.
#[derive(Clone)]
pub struct RunnelFlightSql {
    server: Arc<Server>,
    /// Results not fetched yet, by ticket handle: when made, for whom.
    results: Arc<Mutex<HashMap<String, (Instant, String, Executed)>>>,
    prepared: Arc<PreparedStatements>,
    auth: Arc<Auth>,
    next: Arc<AtomicU64>,
    sql_info: Arc<SqlInfoData>,
    xdbc: Arc<XdbcTypeInfoData>,
}

impl RunnelFlightSql {
    /// The service over `server`.
    pub fn new(server: Arc<Server>) -> std::io::Result<Self> {
        Ok(Self {
            auth: Arc::new(Auth::new(Arc::clone(&server))?),
            server,
            results: Arc::default(),
            prepared: Arc::default(),
            next: Arc::new(AtomicU64::new(1)),
            sql_info: Arc::new(sql_info()),
            xdbc: Arc::new(xdbc_types()),
        })
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

    async fn execute(
        &self,
        client: &Client,
        sql: String,
        params: Vec<ScalarValue>,
    ) -> Result<Executed, Status> {
        let server = Arc::clone(&self.server);
        let client = client.clone();
        tokio::task::spawn_blocking(move || server.execute_as(&client, &sql, &params))
            .await
            .map_err(|e| Status::internal(format!("the statement's task failed: {e}")))?
            .map_err(status)
    }

    /// Runs `sql` with `params` and returns the FlightInfo of its result.
    async fn statement_info(
        &self,
        client: &Client,
        sql: String,
        params: Vec<ScalarValue>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let mut executed = self.execute(client, sql, params).await?;
        let schema = match &mut executed {
            Executed::Batch(b) => annotate(&b.schema(), None),
            Executed::Query(q) => {
                // The stream carries the annotated schema too: drivers read
                // the type names from it.
                q.schema = annotate(&q.schema, None);
                Arc::clone(&q.schema)
            }
        };
        let handle = self.handle("result");
        {
            let mut results = self
                .results
                .lock()
                .map_err(|_| Status::internal("results lock poisoned"))?;
            results.retain(|_, (t, ..)| t.elapsed() < RESULT_TTL);
            results.insert(
                handle.clone(),
                (Instant::now(), client.user.clone(), executed),
            );
        }
        let ticket = TicketStatementQuery {
            statement_handle: handle.into_bytes().into(),
        };
        info(&schema, ticket.as_any(), descriptor)
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

#[tonic::async_trait]
impl FlightSqlService for RunnelFlightSql {
    type FlightService = RunnelFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        self.auth.handshake(&request, || self.handle("token")).await
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = self.auth.check(&request).await?;
        self.statement_info(&client, query.query, Vec::new(), request.into_inner())
            .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let client = self.auth.check(&request).await?;
        let (sql, params) = self.prepared.bound(
            &String::from_utf8_lossy(&cmd.prepared_statement_handle),
            &client.user,
        )?;
        self.statement_info(&client, sql, params, request.into_inner())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = self.auth.check(&request).await?;
        let handle = String::from_utf8_lossy(&ticket.statement_handle).to_string();
        let executed = {
            let mut results = self
                .results
                .lock()
                .map_err(|_| Status::internal("results lock poisoned"))?;
            // A ticket is its owner's: another user's call finds nothing
            // (and leaves it to its owner), as an unknown ticket.
            match results.get(&handle) {
                Some((_, owner, _)) if *owner == client.user => {
                    results.remove(&handle).map(|(.., e)| e)
                }
                _ => None,
            }
        }
        .ok_or_else(|| {
            Status::not_found("unknown ticket: results can be fetched once, within 10 minutes, by the user who ran the statement")
        })?;
        match executed {
            Executed::Batch(b) => batch_stream(b),
            Executed::Query(mut run) if run.is_local() => {
                let batch = run
                    .run_local(self.server.local_slots())
                    .await
                    .map_err(status)?;
                let batch = batch
                    .with_schema(Arc::clone(&run.schema))
                    .map_err(|e| Status::internal(e.to_string()))?;
                batch_stream(batch)
            }
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
        let client = self.auth.check(&request).await?;
        match self.execute(&client, ticket.query, Vec::new()).await? {
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
        let client = self.auth.check(&request).await?;
        let handle = self.handle("prepared");
        let described = self
            .prepared
            .create(&self.server, &client, &handle, query.query)
            .await?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: described.dataset_schema.into(),
            parameter_schema: described.parameter_schema.into(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let client = self.auth.check(&request).await?;
        self.prepared.close(
            &String::from_utf8_lossy(&query.prepared_statement_handle),
            &client.user,
        )
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let client = self.auth.check(&request).await?;
        let batches = read_params(request).await?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        self.prepared.bind(&handle, &client.user, batches)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.into_bytes().into()),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let client = self.auth.check(&request).await?;
        let batches = read_params(request).await?;
        let handle = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        // Each row of parameters runs the statement once.
        for (sql, params) in self.prepared.update_runs(&handle, &client.user, batches)? {
            if let Executed::Query(q) = self.execute(&client, sql, params).await? {
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
        self.auth.check(&request).await?;
        let schema = query.into_builder().schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.check(&request).await?;
        let mut b = query.into_builder();
        b.append(CATALOG_NAME);
        metadata_stream(b.build().map_err(|e| Status::internal(e.to_string()))?)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.auth.check(&request).await?;
        let schema = query.clone().into_builder().schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.check(&request).await?;
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
        self.auth.check(&request).await?;
        let schema = query.clone().into_builder().schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = self.auth.check(&request).await?;
        let tables = self.server.tables_for(&client).map_err(status)?;
        let mut b = query.into_builder();
        for t in &tables {
            let schema = annotate(&t.schema, Some((&t.schema_name, &t.table_name)));
            let schema = with_remarks(&schema, &t.meta);
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
        self.auth.check(&request).await?;
        let schema = query.into_builder().schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.check(&request).await?;
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
        self.auth.check(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.check(&request).await?;
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
        self.auth.check(&request).await?;
        info(&primary_keys_schema(), query.as_any(), request.into_inner())
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let client = self.auth.check(&request).await?;
        let tables = self.server.tables_for(&client).map_err(status)?;
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
        self.auth.check(&request).await?;
        let schema = query.into_builder(&self.xdbc).schema();
        info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.auth.check(&request).await?;
        let batch = query
            .into_builder(&self.xdbc)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        metadata_stream(batch)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
