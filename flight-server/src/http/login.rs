//! Console sessions. `POST /api/login` with `{"user", "password"}` checks
//! the password against the server's users (the same checker thread and
//! back-off as Flight SQL logins, and the same audit log) and answers with
//! a `runnel_session` cookie (HttpOnly, SameSite=Strict). Every `/api/`
//! call then runs as that user, in a client session of its own, so the
//! console sees and may do exactly what a Flight SQL client of that user
//! may. Without the cookie an `/api/` call is 401, unless the server
//! allows anonymous clients (`allow_anonymous`), which the console then
//! is too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{error, Backend, HttpState};
use crate::clients::Client;
use crate::server::ANONYMOUS;

/// The cookie that carries a console session.
const COOKIE: &str = "runnel_session";
/// A session unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; past it the least recently used goes.
const MAX_SESSIONS: usize = 10_000;

/// The logged-in console sessions: token -> (user, last use).
#[derive(Default)]
pub struct ConsoleSessions {
    by_token: Mutex<HashMap<String, (String, Instant)>>,
}

impl ConsoleSessions {
    /// Starts a session for `user`; returns its token.
    fn open(&self, user: &str) -> std::io::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, used)| now.duration_since(*used) < IDLE);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(token.clone(), (user.to_string(), now));
        Ok(token)
    }

    /// The user of session `token`, if it is live; marks it used.
    fn user(&self, token: &str) -> Option<String> {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let entry = map.get_mut(token)?;
        if now.duration_since(entry.1) >= IDLE {
            map.remove(token);
            return None;
        }
        entry.1 = now;
        Some(entry.0.clone())
    }

    fn close(&self, token: &str) {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(token);
    }
}

/// The session token of a request's cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_string())
        })
}

/// Who a console request comes from, or the 401 answer.
pub(super) fn caller(
    state: &HttpState,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<Client, Unauthorized> {
    let server = match &state.backend {
        Backend::Server(server) => server,
        Backend::Script { user, .. } => {
            return Ok(Client {
                user: user.clone(),
                session: "console:script".into(),
                address: Some(addr.ip()),
            })
        }
    };
    if let Some(t) = token(headers) {
        if let Some(user) = state.sessions.user(&t) {
            return Ok(Client {
                user,
                session: format!("console:{t}"),
                address: Some(addr.ip()),
            });
        }
    }
    if server.config().auth.allow_anonymous {
        return Ok(Client {
            user: ANONYMOUS.to_string(),
            session: format!("console:anonymous:{}", addr.ip()),
            address: Some(addr.ip()),
        });
    }
    Err(Unauthorized)
}

/// A console call without a session: 401.
pub(super) struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        error(
            StatusCode::UNAUTHORIZED,
            "log in first: this call needs a console session",
        )
    }
}

/// The body of `POST /api/login`.
#[derive(Deserialize)]
pub(super) struct Credentials {
    user: String,
    password: String,
}

pub(super) async fn login(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(c): Json<Credentials>,
) -> Response {
    let ip = Some(addr.ip());
    let Backend::Server(server) = &state.backend else {
        return error(
            StatusCode::NOT_FOUND,
            "runnel run has no login: its console shows the script's jobs",
        );
    };
    let ok = match server.logins().check(&c.user, &c.password, ip).await {
        Ok(ok) => ok,
        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
            return error(StatusCode::TOO_MANY_REQUESTS, s.message())
        }
        Err(s) => return error(StatusCode::SERVICE_UNAVAILABLE, s.message()),
    };
    server.audit().login(&c.user, ip, ok);
    if !ok {
        return error(StatusCode::UNAUTHORIZED, "wrong user name or password");
    }
    let token = match state.sessions.open(&c.user) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
        )],
        Json(serde_json::json!({ "user": c.user })),
    )
        .into_response()
}

pub(super) async fn logout(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Some(t) = token(&headers) {
        state.sessions.close(&t);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Json(serde_json::json!({ "user": null })),
    )
        .into_response()
}

/// Who the console is logged in as: `{"user", "anonymous"}`, or 401.
pub(super) async fn me(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match caller(&state, &headers, addr) {
        Ok(c) => Json(serde_json::json!({
            "user": c.user,
            "anonymous": c.user == ANONYMOUS,
            // runnel run's console: no login, no editor, no catalog.
            "script": state.server().is_none(),
        }))
        .into_response(),
        Err(u) => u.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_until_it_is_closed() {
        let s = ConsoleSessions::default();
        let t = s.open("alice").expect("token");
        assert_eq!(t.len(), 64);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("theme=dark; {COOKIE}={t}").parse().expect("header"),
        );
        let found = token(&h).expect("cookie");
        assert_eq!(s.user(&found).as_deref(), Some("alice"));
        assert_eq!(s.user("not-a-token"), None);
        s.close(&found);
        assert_eq!(s.user(&found), None);
    }
}
