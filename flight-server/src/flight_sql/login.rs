//! What keeps wrong-password floods from slowing the server: a back-off
//! per user name and per client address, and one thread of its own for
//! password hashes.
//!
//! Checking a password is deliberately slow (argon2). Run on the threads
//! that serve requests, a few clients sending wrong passwords in a loop
//! would take the CPU from everyone else. So:
//!
//! * every password is checked on the [`PasswordChecker`]'s one thread,
//!   with a short queue; when the queue is full the login is refused at
//!   once (UNAVAILABLE) instead of waiting;
//! * after [`FREE_FAILURES`] failed logins in a row for a user name or
//!   from an address, further logins for it are refused without checking
//!   anything (RESOURCE_EXHAUSTED, saying when to retry) for a back-off
//!   that doubles with each further failure, from [`FIRST_BACKOFF`] up to
//!   [`MAX_BACKOFF`]. A successful login clears both.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tonic::Status;

use crate::config::ServerConfig;

/// Failed logins in a row that are allowed before any back-off.
pub const FREE_FAILURES: u32 = 3;
/// The back-off after the first failure past [`FREE_FAILURES`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Password checks that may wait for the checker thread.
const QUEUE: usize = 16;
/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

/// Who a back-off applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    until: Option<Instant>,
}

/// Failed logins per user name and per client address.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<Key, Failures>>,
}

impl Backoff {
    fn keys(user: &str, addr: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::User(user.to_string())];
        keys.extend(addr.map(Key::Address));
        keys
    }

    /// RESOURCE_EXHAUSTED while `user` or `addr` is backing off.
    pub fn admit(&self, user: &str, addr: Option<IpAddr>) -> Result<(), Status> {
        let now = Instant::now();
        let map = self
            .failures
            .lock()
            .map_err(|_| Status::internal("login back-off lock poisoned"))?;
        for key in Self::keys(user, addr) {
            if let Some(until) = map.get(&key).and_then(|f| f.until) {
                if until > now {
                    let who = match key {
                        Key::User(u) => format!("user '{u}'"),
                        Key::Address(a) => format!("address {a}"),
                    };
                    return Err(Status::resource_exhausted(format!(
                        "too many failed logins for {who}; try again in {:.1} s",
                        (until - now).as_secs_f64()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Records a failed login; further ones back off past the free ones.
    pub fn failed(&self, user: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= SWEEP_AT {
            map.retain(|_, f| f.until.is_some_and(|u| u > now));
        }
        for key in Self::keys(user, addr) {
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                until: None,
            });
            f.count = f.count.saturating_add(1);
            if f.count > FREE_FAILURES {
                let doublings = (f.count - FREE_FAILURES - 1).min(16);
                let wait = FIRST_BACKOFF
                    .saturating_mul(1 << doublings)
                    .min(MAX_BACKOFF);
                f.until = Some(now + wait);
            }
        }
    }

    /// A successful login clears the user's and the address's failures.
    pub fn succeeded(&self, user: &str, addr: Option<IpAddr>) {
        if let Ok(mut map) = self.failures.lock() {
            for key in Self::keys(user, addr) {
                map.remove(&key);
            }
        }
    }
}

struct Check {
    user: String,
    password: String,
    reply: oneshot::Sender<bool>,
}

/// Checks passwords on a thread of its own.
pub struct PasswordChecker {
    queue: SyncSender<Check>,
}

impl PasswordChecker {
    /// Starts the checker thread over the users of `config`; it ends when
    /// the checker is dropped.
    pub fn start(config: ServerConfig) -> std::io::Result<Self> {
        let (queue, rx) = sync_channel::<Check>(QUEUE);
        std::thread::Builder::new()
            .name("runnel-password-check".into())
            .spawn(move || {
                for check in rx {
                    let ok = config.verify(&check.user, &check.password);
                    let _ = check.reply.send(ok);
                }
            })?;
        Ok(Self { queue })
    }

    /// True when `user` may log in with `password`; UNAVAILABLE when too
    /// many checks are waiting already.
    pub async fn verify(&self, user: &str, password: &str) -> Result<bool, Status> {
        let (reply, answer) = oneshot::channel();
        let check = Check {
            user: user.to_string(),
            password: password.to_string(),
            reply,
        };
        match self.queue.try_send(check) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Status::unavailable(
                    "too many logins are being checked; try again shortly",
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(Status::internal("the password checker has stopped"))
            }
        }
        answer
            .await
            .map_err(|_| Status::internal("the password checker has stopped"))
    }
}

/// The one door every password goes through, whichever service it came
/// to (Flight SQL's handshake and calls, the web console's login): one
/// checker thread and one back-off, so that neither service gives a
/// guesser a second set of free attempts.
pub struct Logins {
    checker: PasswordChecker,
    backoff: Backoff,
}

impl Logins {
    /// Starts the checker over the users of `config`.
    pub fn start(config: ServerConfig) -> std::io::Result<Self> {
        Ok(Self {
            checker: PasswordChecker::start(config)?,
            backoff: Backoff::default(),
        })
    }

    /// True when `user` may log in with `password` from `addr`; an error
    /// while `user` or `addr` backs off (RESOURCE_EXHAUSTED) or too many
    /// checks wait (UNAVAILABLE). Failures and successes feed the back-off.
    pub async fn check(
        &self,
        user: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<bool, Status> {
        self.backoff.admit(user, addr)?;
        let ok = self.checker.verify(user, password).await?;
        if ok {
            self.backoff.succeeded(user, addr);
        } else {
            self.backoff.failed(user, addr);
        }
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_back_off_by_user_and_by_address() {
        let b = Backoff::default();
        let here: IpAddr = "10.0.0.1".parse().expect("ip");
        let there: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..FREE_FAILURES {
            assert!(b.admit("alice", Some(here)).is_ok());
            b.failed("alice", Some(here));
        }
        // The free failures are used up, but none backs off yet.
        assert!(b.admit("alice", Some(here)).is_ok());
        b.failed("alice", Some(here));
        let err = b.admit("alice", Some(there)).expect_err("user backs off");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("user 'alice'"), "{}", err.message());
        let err = b.admit("bob", Some(here)).expect_err("address backs off");
        assert!(
            err.message().contains("address 10.0.0.1"),
            "{}",
            err.message()
        );
        assert!(b.admit("bob", Some(there)).is_ok());
        b.succeeded("alice", Some(here));
        assert!(b.admit("alice", Some(here)).is_ok());
    }

    #[test]
    fn the_back_off_doubles_up_to_its_cap() {
        let wait_after = |n: u32| {
            let b = Backoff::default();
            for _ in 0..n {
                b.failed("u", None);
            }
            let map = b.failures.lock().expect("lock");
            map.get(&Key::User("u".into()))
                .and_then(|f| f.until)
                .map(|u| u.saturating_duration_since(Instant::now()))
        };
        assert_eq!(wait_after(FREE_FAILURES), None);
        let first = wait_after(FREE_FAILURES + 1).expect("backs off");
        let second = wait_after(FREE_FAILURES + 2).expect("backs off");
        assert!(
            first <= FIRST_BACKOFF && first > FIRST_BACKOFF / 2,
            "{first:?}"
        );
        assert!(
            second > FIRST_BACKOFF && second <= FIRST_BACKOFF * 2,
            "{second:?}"
        );
        let capped = wait_after(FREE_FAILURES + 40).expect("backs off");
        assert!(
            capped <= MAX_BACKOFF && capped > MAX_BACKOFF / 2,
            "{capped:?}"
        );
    }
}
