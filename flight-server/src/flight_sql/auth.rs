//! Who may call: basic credentials (user name and password, checked
//! against the configuration's hashes) or the bearer token the handshake
//! gave; anonymous calls only where the configuration allows them. On a
//! server that allows them, a bearer token it does not know (SQLAlchemy
//! sends `Bearer None` when it has none) is an anonymous call too.
//!
//! Passwords are checked off the request threads, with a back-off for
//! repeated failures (`login`); credentials that were verified once are
//! remembered (in memory, the user name and password), so clients that
//! send them on every call pay for one check, and a user that someone else
//! is guessing for (which backs the user name off) still gets in with the
//! password that worked before.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures::{stream, Stream};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use arrow_flight::{HandshakeRequest, HandshakeResponse};

use crate::clients::Client;
use crate::server::{Server, ANONYMOUS};

/// The reply stream of a handshake.
pub(super) type HandshakeStream =
    Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// Verified basic-credential headers remembered at most.
const REMEMBERED_LOGINS: usize = 1_024;

/// The service's gatekeeper: the server's users and the bearer tokens
/// handed out by handshakes.
pub(super) struct Auth {
    server: Arc<Server>,
    /// Token -> user name.
    tokens: Mutex<HashMap<String, String>>,
    /// Credentials (user name and password) verified before.
    verified: Mutex<HashSet<(String, String)>>,
}

/// What a call says about its caller.
struct Caller {
    authorization: Option<String>,
    address: Option<IpAddr>,
}

impl Caller {
    fn of<T>(request: &Request<T>) -> Self {
        Caller {
            authorization: request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            address: request.remote_addr().map(|a| a.ip()),
        }
    }
}

fn has_scheme(header: &str, scheme: &str) -> bool {
    header.len() > scheme.len() && header[..scheme.len()].eq_ignore_ascii_case(scheme)
}

impl Auth {
    /// Checks callers against the users of `server`'s configuration.
    pub(super) fn new(server: Arc<Server>) -> std::io::Result<Self> {
        Ok(Self {
            server,
            tokens: Mutex::default(),
            verified: Mutex::default(),
        })
    }

    fn allow_anonymous(&self) -> bool {
        self.server.config().auth.allow_anonymous
    }

    /// Checks the caller's credentials: a bearer token from the handshake,
    /// or basic credentials on the call itself. The client it names: the
    /// user, and the session (the token; one per user for clients that
    /// send credentials on every call; one for anonymous callers).
    pub(super) fn check<T>(
        &self,
        request: &Request<T>,
    ) -> impl Future<Output = Result<Client, Status>> + Send + '_ {
        let caller = Caller::of(request);
        async move {
            let client = |user: String, session: String| Client {
                user,
                session,
                address: caller.address,
            };
            match caller.authorization.as_deref() {
                Some(h) if has_scheme(h, "bearer ") => {
                    let token = h[7..].trim();
                    let user = self
                        .tokens
                        .lock()
                        .ok()
                        .and_then(|t| t.get(token).cloned());
                    match user {
                        Some(user) => Ok(client(user, format!("token:{token}"))),
                        None if self.allow_anonymous() => {
                            Ok(client(ANONYMOUS.into(), "anonymous".into()))
                        }
                        None => Err(Status::unauthenticated(
                            "the bearer token is not valid on this server (it restarted, or the token is wrong); log in again",
                        )),
                    }
                }
                Some(h) if has_scheme(h, "basic ") => {
                    let user = self.basic(h, caller.address).await?;
                    let session = format!("basic:{user}");
                    Ok(client(user, session))
                }
                Some(_) => Err(Status::unauthenticated(
                    "unsupported authorization header; use basic credentials or the bearer token from the handshake",
                )),
                None if self.allow_anonymous() => Ok(client(ANONYMOUS.into(), "anonymous".into())),
                None => Err(Status::unauthenticated(
                    "authentication required: log in with a user name and password",
                )),
            }
        }
    }

    /// Verifies `Basic base64(user:password)`; the user name.
    async fn basic(&self, header: &str, address: Option<IpAddr>) -> Result<String, Status> {
        let credentials = decode_basic(header)?;
        if self.verified.lock().is_ok_and(|v| v.contains(&credentials)) {
            return Ok(credentials.0);
        }
        let (user, password) = &credentials;
        let ok = self.server.logins().check(user, password, address).await?;
        self.server.audit().login(user, address, ok);
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                if v.len() >= REMEMBERED_LOGINS {
                    // Make room by forgetting one (any) entry, not all.
                    if let Some(old) = v.iter().next().cloned() {
                        v.remove(&old);
                    }
                }
                v.insert(credentials.clone());
            }
            Ok(credentials.0)
        } else {
            Err(Status::unauthenticated("wrong user name or password"))
        }
    }

    /// The handshake: checks basic credentials (or allows an anonymous
    /// caller) and answers with a bearer token, made by `new_token`, for
    /// later calls.
    pub(super) fn handshake<'a>(
        &'a self,
        request: &Request<Streaming<HandshakeRequest>>,
        new_token: impl FnOnce() -> String + Send + 'a,
    ) -> impl Future<Output = Result<Response<HandshakeStream>, Status>> + Send + 'a {
        let caller = Caller::of(request);
        async move {
            let user = match caller.authorization.as_deref() {
                Some(h) if has_scheme(h, "basic ") => self.basic(h, caller.address).await?,
                None if self.allow_anonymous() => {
                    self.server.audit().login(ANONYMOUS, caller.address, true);
                    ANONYMOUS.to_string()
                }
                _ => {
                    return Err(Status::unauthenticated(
                        "log in with basic credentials (user name and password)",
                    ))
                }
            };
            let token = new_token();
            self.tokens
                .lock()
                .map_err(|_| Status::internal("tokens lock poisoned"))?
                .insert(token.clone(), user);
            let reply = HandshakeResponse {
                protocol_version: 0,
                payload: token.clone().into_bytes().into(),
            };
            let mut response: Response<HandshakeStream> =
                Response::new(Box::pin(stream::iter(vec![Ok(reply)])));
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Status::internal("cannot encode the token"))?;
            response.metadata_mut().insert("authorization", value);
            Ok(response)
        }
    }
}

/// The user name and password of `Basic base64(user:password)`.
fn decode_basic(header: &str) -> Result<(String, String), Status> {
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
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode_with_and_without_padding() {
        let dir = std::env::temp_dir().join(format!("runnel-basic-{}", std::process::id()));
        let mut config = crate::config::ServerConfig::new(&dir);
        config.auth.users.push(crate::config::User {
            name: "bob".into(),
            password_hash: crate::config::hash_password("pw").expect("hash"),
            roles: vec![],
        });
        let server = Server::open(config).expect("server");
        let svc = Auth::new(server).expect("auth");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        // "bob:pw" is 6 bytes: no padding either way; "bob:pw1" needs one
        // '=', which ADBC leaves out.
        for (padded, unpadded) in [("Ym9iOnB3", "Ym9iOnB3"), ("Ym9iOnB3MQ==", "Ym9iOnB3MQ")] {
            let ok = rt.block_on(svc.basic(&format!("Basic {padded}"), None));
            let also = rt.block_on(svc.basic(&format!("Basic {unpadded}"), None));
            assert_eq!(ok.is_ok(), also.is_ok(), "{padded} vs {unpadded}");
        }
        assert_eq!(
            rt.block_on(svc.basic("Basic Ym9iOnB3", None))
                .expect("bob:pw"),
            "bob"
        );
        let err = rt
            .block_on(svc.basic("Basic Ym9iOnB3MQ", None))
            .expect_err("bob:pw1 is wrong");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert_eq!(err.message(), "wrong user name or password");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
