//! The `runnel` command line and the Flight SQL server.
//!
//! [`cli::main`] is the binary's entry point: `runnel run FILE.sql` runs a
//! SQL script, `runnel explain FILE.sql` prints plans, and `runnel serve`
//! starts the Flight SQL server ([`serve::start`] starts it in-process).
//!
//! Where a Flight SQL statement becomes a job: the service
//! ([`flight_sql::RunnelFlightSql`]) hands the statement's text to
//! [`server::Server::execute`], which plans it in the shared session and,
//! in `Server::execute_one`, starts an `INSERT INTO` or `CREATE
//! MATERIALIZED VIEW` job at once, or returns a SELECT as a
//! [`query::QueryRun`] whose job starts when the client fetches the ticket
//! ([`server::Server::start_query`]). Both the server and `runnel run` keep
//! their jobs in a [`jobs::JobManager`], which owns each job's
//! [`jobs::JobStatus`].
//!
//! The map:
//! - [`cli`]: `runnel` commands; [`serve`]: the network server's start/stop;
//!   [`config`]: its configuration and password hashes.
//! - [`server`]: the core without the network (session, jobs, views);
//!   [`statement_log`]: the log replayed at start so jobs survive restarts;
//!   [`statements`]: cutting a script into statement texts.
//! - [`jobs`]: job states and the manager; [`query`]: a statement's result
//!   and a SELECT's rows.
//! - [`system`]: the contents of the system tables and the table list of
//!   the metadata calls; [`tables`]: the connectors that serve materialized
//!   views and system tables to queries; [`sinks`]: a query's sink into its
//!   client stream.
//! - [`flight_sql`]: the Flight SQL service (with `auth`, `prepared`
//!   statements, result `stream`s and [`flight_sql::metadata`] for BI
//!   tools); it maps [`error::ServerError`] to status codes in one place.
//! - `clients`: who sent a request and each client session's options;
//!   `session_setup`: the shared SQL session's connectors, users and
//!   allow-lists; `audit`: the audit log; `openlineage`: a job's run
//!   events; [`http`]: the HTTP port (`/metrics` and the web console,
//!   whose files are in `flight-server/console/`); [`monitor`]: a job's
//!   graph and subtask counters as the console and `/metrics` show them;
//!   `requests`: the Flight calls `/metrics` counts.
//!
//! Neither the server nor the CLI plans or runs anything themselves: the
//! SQL session (`runnel_sql`) plans, the engine (`runnel_engine`) runs.

pub mod audit;
pub mod cli;
pub mod clients;
pub mod config;
pub mod error;
pub mod flight_sql;
pub mod http;
pub mod jobs;
pub mod monitor;
pub mod openlineage;
pub mod query;
pub mod requests;
pub mod serve;
pub mod server;
mod session_setup;
pub mod sinks;
pub mod statement_log;
pub mod statements;
pub mod system;
pub mod tables;

/// The stack of every thread that parses, plans or runs statements: the
/// binary's main work, the server's request and blocking threads. SQL
/// expressions are bounded ([`runnel_sql::parser::MAX_EXPRESSION_DEPTH`]),
/// so walks over them are bounded too; this leaves room for that bound in
/// unoptimised builds as well. Only touched pages take memory.
pub const STATEMENT_STACK_BYTES: usize = 64 << 20;
