//! Who may call: basic credentials (user name and password, checked
//! against the configuration's hashes) or the bearer token the handshake
//! gave; anonymous calls only where the configuration allows them.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures::{stream, Stream};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use arrow_flight::{HandshakeRequest, HandshakeResponse};

use crate::server::Server;

/// The reply stream of a handshake.
pub(super) type HandshakeStream =
    Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// The service's gatekeeper: the server's users and the bearer tokens
/// handed out by handshakes.
pub(super) struct Auth {
    server: Arc<Server>,
    /// Token -> user name.
    tokens: Mutex<HashMap<String, String>>,
}

impl Auth {
    /// Checks callers against the users of `server`'s configuration.
    pub(super) fn new(server: Arc<Server>) -> Self {
        Self {
            server,
            tokens: Mutex::default(),
        }
    }

    /// Checks the caller's credentials: a bearer token from the handshake,
    /// or basic credentials on the call itself.
    pub(super) fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
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

    /// The handshake: checks basic credentials (or allows an anonymous
    /// caller) and answers with a bearer token, made by `new_token`, for
    /// later calls.
    pub(super) fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
        new_token: impl FnOnce() -> String,
    ) -> Result<Response<HandshakeStream>, Status> {
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
        });
        let server = Server::open(config).expect("server");
        let svc = Auth::new(server);
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
}
