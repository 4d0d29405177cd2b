//! Starting and stopping the Flight SQL server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::config::ServerConfig;
use crate::flight_sql::{Guarded, RunnelFlightSql};
use crate::server::Server;

/// How long running jobs get to take their savepoint when the server stops.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A server running in the background (for tests and benchmarks).
pub struct ServerHandle {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The HTTP port's address (`/metrics`), when it has one.
    pub http_addr: Option<SocketAddr>,
    /// The server's state.
    pub server: Arc<Server>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl ServerHandle {
    /// Stops serving, stops the jobs (with savepoints) and waits.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| "the server thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Opens the data directory and starts serving on a thread of its own.
pub fn start(config: ServerConfig) -> Result<ServerHandle, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(crate::STATEMENT_STACK_BYTES)
        .enable_all()
        .thread_name("runnel-flight")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.listen))
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let http = match config.http_listen {
        Some(h) => {
            let l = runtime
                .block_on(tokio::net::TcpListener::bind(h))
                .map_err(|e| format!("cannot listen for HTTP on {h}: {e} (set http_listen, or --http-listen off)"))?;
            let at = l
                .local_addr()
                .map_err(|e| format!("cannot read the HTTP address: {e}"))?;
            Some((l, at))
        }
        None => None,
    };
    // Read the certificate before anything starts, so that a bad one is
    // an error at start rather than a server that never serves.
    let identity = match &config.tls {
        None => None,
        Some(tls) => {
            let cert = std::fs::read(&tls.cert)
                .map_err(|e| format!("cannot read the certificate {}: {e}", tls.cert.display()))?;
            let key = std::fs::read(&tls.key)
                .map_err(|e| format!("cannot read the private key {}: {e}", tls.key.display()))?;
            Some(Identity::from_pem(cert, key))
        }
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(identity) = identity {
        // rustls is built with two crypto providers in this binary (ring for
        // tonic, aws-lc-rs through the Delta connector's object store), so
        // it cannot pick one by itself: use ring, process-wide. An error
        // means a provider was installed already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("bad TLS configuration: {e}"))?;
    }
    let server = Server::open(config).map_err(|e| e.to_string())?;
    let http_addr = http.as_ref().map(|(_, at)| *at);
    if let Some((l, _)) = http {
        runtime.spawn(crate::http::serve(l, Arc::clone(&server)));
    }
    let (tx, rx) = oneshot::channel::<()>();
    let s = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("runnel-serve".into())
        .stack_size(crate::STATEMENT_STACK_BYTES)
        .spawn(move || {
            let stopping = Arc::clone(&s);
            let result =
                runtime.block_on(serve_on(builder, Arc::clone(&s), listener, async move {
                    let _ = rx.await;
                    // Stop the jobs first: their subscriptions then end, and
                    // the server can finish its open streams and return.
                    let _ =
                        tokio::task::spawn_blocking(move || stopping.shutdown(STOP_TIMEOUT)).await;
                }));
            s.shutdown(STOP_TIMEOUT);
            runtime.shutdown_timeout(Duration::from_secs(5));
            result
        })
        .map_err(|e| format!("cannot start the server thread: {e}"))?;
    Ok(ServerHandle {
        addr,
        http_addr,
        server,
        stop: Some(tx),
        thread: Some(thread),
    })
}

/// Serves until `shutdown` completes.
async fn serve_on(
    mut builder: tonic::transport::Server,
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), String> {
    let service = RunnelFlightSql::new(Arc::clone(&server))
        .map_err(|e| format!("cannot start the password checker: {e}"))?;
    let service = FlightServiceServer::new(Guarded(service, Arc::clone(server.requests())))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    builder
        .add_service(service)
        // Without TCP_NODELAY small answers wait for a delayed ACK (about
        // 40 ms each), which dominated query latency.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| format!("the server failed: {e}"))
}

/// `runnel serve`: serves until Ctrl-C or SIGTERM, then stops the jobs
/// with savepoints.
pub fn serve_cli(args: &[String]) -> Result<(), String> {
    let env = |k: &str| std::env::var(k).ok();
    let config = ServerConfig::from_args(args, &env)?;
    let data_dir = config.data_dir.clone();
    let tls = config.tls.is_some();
    let handle = start(config)?;
    eprintln!(
        "runnel: Flight SQL server listening on {}{} (data in {})",
        handle.addr,
        if tls { " with TLS" } else { "" },
        data_dir.display()
    );
    if let Some(h) = handle.http_addr {
        eprintln!("runnel: metrics at http://{h}/metrics");
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let _ = rx.recv();
    eprintln!("runnel: stopping; running jobs take a savepoint");
    handle.stop()?;
    eprintln!("runnel: stopped");
    Ok(())
}
