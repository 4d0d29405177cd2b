//! Who sent a request ([`Client`]) and the state each client session
//! keeps between its requests ([`ClientSessions`]: its `SET` options).
//! The catalog, the jobs and the views are the server's, shared by every
//! client; what a client may see and do in them is decided per statement
//! by the SQL session's access checks (docs/governance.md).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

/// Client sessions remembered at most; past it, the least recently used
/// one is forgotten (its next request starts from the server's options).
const MAX_SESSIONS: usize = 10_000;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The logged-in user (`anonymous` without credentials).
    pub user: String,
    /// The session the request belongs to: the bearer token of the
    /// client's handshake, or one per user for clients that send their
    /// credentials with every call.
    pub session: String,
    /// Where the request came from.
    pub address: Option<IpAddr>,
}

impl Client {
    /// A caller inside the server process (tests, tools) as `user`.
    pub fn local(user: &str) -> Self {
        Self {
            user: user.to_string(),
            session: format!("local:{user}"),
            address: None,
        }
    }
}

/// The options of each client session.
#[derive(Default)]
pub struct ClientSessions {
    inner: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    /// Session -> (last use, options).
    options: HashMap<String, (u64, BTreeMap<String, String>)>,
    clock: u64,
}

impl ClientSessions {
    /// The options of `session`, or `base` for a new one.
    pub fn options(
        &self,
        session: &str,
        base: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.options
            .get(session)
            .map_or_else(|| base.clone(), |(_, o)| o.clone())
    }

    /// Keeps `options` as `session`'s.
    pub fn store(&self, session: &str, options: BTreeMap<String, String>) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.clock += 1;
        let now = s.clock;
        if s.options.len() >= MAX_SESSIONS && !s.options.contains_key(session) {
            if let Some(oldest) = s
                .options
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            {
                s.options.remove(&oldest);
            }
        }
        s.options.insert(session.to_string(), (now, options));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_keeps_its_own_options() {
        let sessions = ClientSessions::default();
        let base: BTreeMap<String, String> = [("parallelism".to_string(), "1".to_string())].into();
        let mut a = sessions.options("a", &base);
        a.insert("parallelism".into(), "4".into());
        sessions.store("a", a);
        assert_eq!(sessions.options("a", &base)["parallelism"], "4");
        assert_eq!(sessions.options("b", &base)["parallelism"], "1");
    }
}
