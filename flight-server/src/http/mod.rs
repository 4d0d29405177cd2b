//! The server's HTTP port (`--http-listen`, `http_listen`): `/metrics` in
//! Prometheus's text format, and the web console at `/` with the JSON
//! calls it makes under `/api/`. docs/observability.md describes both.
//!
//! - `prometheus`: the metrics page;
//! - `login`: console sessions (a cookie after a login with the server's
//!   users), and who a console request comes from;
//! - `api`: the job list, a job's graph and checkpoints, and statements
//!   run from the SQL editor;
//! - `assets`: the console's page, script and style sheet, built into
//!   the binary (no CDN, nothing fetched at run time).
//!
//! Nothing here waits on a job: the console reads counters that the jobs'
//! threads update atomically, and each statement from the editor is a job
//! of its own, so a slow or closed browser slows only its own query.

mod api;
mod assets;
mod login;
pub mod prometheus;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use self::login::ConsoleSessions;
pub use self::prometheus::metrics_text;
use crate::jobs::JobManager;
use crate::monitor::JobView;
use crate::server::Server;

/// Whose jobs the port shows.
enum Backend {
    /// `runnel serve`: its users log in; the SQL editor and the catalog
    /// work.
    Server(Arc<Server>),
    /// `runnel run --http-listen`: the script's jobs, shown without a
    /// login as the user who runs it (there are no other users); no SQL
    /// editor (the script's file is its statements).
    Script {
        jobs: Arc<Mutex<JobManager>>,
        user: String,
        expectations: ScriptExpectations,
    },
}

/// The expectation counters of a script's jobs, by job: (object,
/// expectation, counters), filled by `runnel run` as it starts each job.
pub type ScriptExpectations = Arc<
    Mutex<
        std::collections::BTreeMap<
            String,
            Vec<(String, String, Arc<runnel_engine::ops::ExpectCounts>)>,
        >,
    >,
>;

/// What every HTTP request may use.
pub struct HttpState {
    backend: Backend,
    sessions: ConsoleSessions,
    /// The address the port listens on.
    local: SocketAddr,
}

impl HttpState {
    /// The server, when the port is `runnel serve`'s.
    fn server(&self) -> Option<&Arc<Server>> {
        match &self.backend {
            Backend::Server(server) => Some(server),
            Backend::Script { .. } => None,
        }
    }

    /// The jobs `user` may see, with their graphs. Blocks briefly on the
    /// job list's lock: call it off the async threads.
    fn job_views(&self, user: &str) -> Vec<JobView> {
        match &self.backend {
            Backend::Server(server) => server.job_views(Some(user)),
            Backend::Script { jobs, user, .. } => {
                let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
                crate::monitor::views_with(&jobs, &|_| Some(user.clone()))
            }
        }
    }

    /// The metrics page.
    fn metrics(&self) -> String {
        match &self.backend {
            Backend::Server(server) => metrics_text(server),
            Backend::Script {
                jobs,
                user,
                expectations,
            } => {
                let counts = |id: &str| -> Vec<(String, String, u64, u64)> {
                    let all = expectations.lock().unwrap_or_else(|p| p.into_inner());
                    all.get(id)
                        .map(|c| {
                            c.iter()
                                .map(|(o, n, c)| {
                                    (
                                        o.clone(),
                                        n.clone(),
                                        c.passed.load(std::sync::atomic::Ordering::Relaxed),
                                        c.failed.load(std::sync::atomic::Ordering::Relaxed),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (metrics, views) = {
                    let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
                    let metrics: prometheus::JobMetrics = jobs
                        .iter()
                        .filter_map(|(id, j)| {
                            let p = j.progress()?;
                            Some((id.clone(), crate::system::job_metrics(&p), counts(id)))
                        })
                        .collect();
                    let views = crate::monitor::views_with(&jobs, &|_| Some(user.clone()));
                    (metrics, views)
                };
                let mut out = String::new();
                prometheus::jobs_text(&mut out, metrics, &views);
                out
            }
        }
    }
}

/// Serves `runnel serve`'s port on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, server: Arc<Server>) {
    run(listener, Backend::Server(server)).await
}

/// Serves the port of `runnel run --http-listen`: the script's `jobs`,
/// as `user`.
pub async fn serve_script(
    listener: tokio::net::TcpListener,
    jobs: Arc<Mutex<JobManager>>,
    user: String,
    expectations: ScriptExpectations,
) {
    run(
        listener,
        Backend::Script {
            jobs,
            user,
            expectations,
        },
    )
    .await
}

async fn run(listener: tokio::net::TcpListener, backend: Backend) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("runnel: the HTTP port is not served: {e}");
            return;
        }
    };
    let state = Arc::new(HttpState {
        backend,
        sessions: ConsoleSessions::default(),
        local,
    });
    let app = router(state);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        eprintln!("runnel: the HTTP port stopped: {e}");
    }
}

/// Every route of the port.
fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::file))
        .route("/api/login", post(login::login))
        .route("/api/logout", post(login::logout))
        .route("/api/me", get(login::me))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/sql", post(api::sql))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            loopback_names_only,
        ))
        .with_state(state)
}

/// On a loopback address, refuses requests whose `Host` is another name:
/// a web page whose name was made to point at 127.0.0.1 (DNS rebinding)
/// would otherwise reach a console without login (`runnel run`'s, or a
/// server's with anonymous access) from the user's browser.
async fn loopback_names_only(
    axum::extract::State(state): axum::extract::State<Arc<HttpState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.local.ip().is_loopback() {
        if let Some(host) = request.headers().get(header::HOST) {
            let host = host.to_str().unwrap_or("");
            let name = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(""),
                None => host.split(':').next().unwrap_or(""),
            };
            let known = name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !known {
                return error(
                    StatusCode::MISDIRECTED_REQUEST,
                    &format!(
                        "this port listens on {} and answers only to localhost or a loopback address, not '{name}'",
                        state.local
                    ),
                );
            }
        }
    }
    next.run(request).await
}

async fn metrics(axum::extract::State(state): axum::extract::State<Arc<HttpState>>) -> Response {
    let body = tokio::task::spawn_blocking(move || state.metrics())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!(
            "no page at {}; the console is at /, the metrics at /metrics",
            uri.path()
        ),
    )
}

/// An error as JSON: `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}
