//! Configuration of `runnel serve`: a TOML file, then environment
//! variables, then command-line flags, each overriding the one before.
//!
//! ```toml
//! listen = "127.0.0.1:50051"
//! http_listen = "127.0.0.1:8081"   # /metrics (Prometheus); "off" for none
//! data_dir = "runnel-data"
//! parallelism = 2
//! max_parallelism = 8       # the most a client's SET 'parallelism' may ask
//!                           # (default: 4 per core, at least parallelism)
//! checkpoint_interval = "10 s"
//! keepalive = "5 s"
//! snapshot_queries = true   # SELECTs over views and system tables run
//!                           # from snapshots, without a job
//!
//! [auth]
//! allow_anonymous = false
//! [[auth.users]]
//! name = "alice"
//! password_hash = "$argon2id$v=19$..."   # from `runnel hash-password`
//! roles = ["admins"]                      # administrators
//!
//! [security]                # what tables of non-administrators may reach
//! allowed_paths = ["/srv/landing", "s3://lake/bronze"]
//! allowed_servers = ["127.0.0.1:9092"]   # Kafka brokers, S3 endpoints
//!
//! [tls]
//! cert = "server.pem"
//! key = "server.key"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;

/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "RUNNEL_CONFIG";
/// Environment variable overriding `listen`.
pub const ENV_LISTEN: &str = "RUNNEL_LISTEN";
/// Environment variable overriding `data_dir`.
pub const ENV_DATA_DIR: &str = "RUNNEL_DATA_DIR";

/// One user who may log in.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Argon2 hash in PHC form, as printed by `runnel hash-password`.
    pub password_hash: String,
    /// Roles the user holds from the start (`admins` makes an
    /// administrator); more can be granted in SQL.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `[security]`: what tables created by users who are not administrators
/// may reach outside the engine.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Directories and object-store prefixes under which tables may read
    /// and write (the data directory never counts).
    #[serde(default)]
    pub allowed_paths: Vec<String>,
    /// `host:port` of Kafka brokers and S3 endpoints tables may use.
    #[serde(default)]
    pub allowed_servers: Vec<String>,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Accept calls without credentials (for a laptop, never a shared
    /// machine).
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Users and their password hashes.
    #[serde(default)]
    pub users: Vec<User>,
}

/// `[tls]`: PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The file's shape; every field optional so that flags can fill them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    http_listen: Option<String>,
    data_dir: Option<PathBuf>,
    parallelism: Option<usize>,
    max_parallelism: Option<usize>,
    checkpoint_interval: Option<String>,
    keepalive: Option<String>,
    snapshot_queries: Option<bool>,
    #[serde(default)]
    auth: AuthConfig,
    #[serde(default)]
    security: SecurityConfig,
    tls: Option<TlsConfig>,
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address of the HTTP port (`/metrics`); `None`: no HTTP port.
    pub http_listen: Option<SocketAddr>,
    /// Catalog, job list and checkpoints live here.
    pub data_dir: PathBuf,
    /// Default parallelism of jobs.
    pub parallelism: usize,
    /// The highest parallelism a client may `SET`; `None`: four per core,
    /// and at least `parallelism`.
    pub max_parallelism: Option<usize>,
    /// Checkpoint interval of the jobs the server runs.
    pub checkpoint_interval: Duration,
    /// How often an idle subscription gets an empty batch.
    pub keepalive: Duration,
    /// Bounded SELECTs that read only materialized views and system
    /// tables run from their in-memory snapshots on the request's thread,
    /// without starting a job (true by default; false runs every query as
    /// a job, for comparison).
    pub snapshot_queries: bool,
    /// Who may log in.
    pub auth: AuthConfig,
    /// What tables of non-administrators may reach.
    pub security: SecurityConfig,
    /// TLS, when configured.
    pub tls: Option<TlsConfig>,
}

impl ServerConfig {
    /// Defaults: 127.0.0.1:50051, `./runnel-data`, parallelism 1,
    /// checkpoints every 10 s, keep-alive every 5 s, no users.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_listen: None,
            data_dir: data_dir.into(),
            parallelism: 1,
            max_parallelism: None,
            checkpoint_interval: Duration::from_secs(10),
            keepalive: Duration::from_secs(5),
            snapshot_queries: true,
            auth: AuthConfig::default(),
            security: SecurityConfig::default(),
            tls: None,
        }
    }

    /// Reads the configuration: the file (from `--config`, else
    /// `RUNNEL_CONFIG`), then `RUNNEL_LISTEN` / `RUNNEL_DATA_DIR`, then the
    /// flags. `env` looks up environment variables (injected for tests).
    pub fn from_args(
        args: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut flags = Flags::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--config" | "-c" => flags.config = Some(PathBuf::from(value(a)?)),
                "--listen" | "-l" => flags.listen = Some(value(a)?),
                "--http-listen" => flags.http_listen = Some(value(a)?),
                "--data-dir" | "-d" => flags.data_dir = Some(PathBuf::from(value(a)?)),
                "--parallelism" | "-p" => {
                    flags.parallelism = Some(
                        value(a)?
                            .parse()
                            .ok()
                            .filter(|n: &usize| *n > 0)
                            .ok_or("--parallelism needs a positive number")?,
                    )
                }
                "--allow-anonymous" => flags.allow_anonymous = true,
                "--allow-path" => flags.allowed_paths.push(PathBuf::from(value(a)?)),
                other => return Err(format!("unknown argument '{other}'")),
            }
        }
        let config_path = flags
            .config
            .clone()
            .or_else(|| env(ENV_CONFIG).map(PathBuf::from));
        let (file, base) = match &config_path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read the configuration {}: {e}", p.display()))?;
                let file: FileConfig =
                    toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
                (file, p.parent().map(Path::to_path_buf))
            }
            None => (FileConfig::default(), None),
        };
        // Relative paths in the file are relative to the file.
        let relative = |p: PathBuf| match &base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        };
        let mut config = ServerConfig::new("runnel-data");
        // `runnel serve` has its HTTP port unless told otherwise.
        config.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 8081)));
        if let Some(l) = &file.listen {
            config.listen = parse_listen(l)?;
        }
        if let Some(h) = file.http_listen.as_ref().or(flags.http_listen.as_ref()) {
            let h = flags.http_listen.as_ref().unwrap_or(h);
            config.http_listen = if h.eq_ignore_ascii_case("off") {
                None
            } else {
                Some(parse_listen(h)?)
            };
        }
        if let Some(d) = file.data_dir {
            config.data_dir = relative(d);
        }
        if let Some(p) = file.parallelism {
            if p == 0 {
                return Err("parallelism must be positive".into());
            }
            config.parallelism = p;
        }
        if let Some(m) = file.max_parallelism {
            if m == 0 {
                return Err("max_parallelism must be positive".into());
            }
            config.max_parallelism = Some(m);
        }
        if let Some(i) = &file.checkpoint_interval {
            config.checkpoint_interval = duration(i, "checkpoint_interval")?;
        }
        if let Some(k) = &file.keepalive {
            config.keepalive = duration(k, "keepalive")?;
        }
        if let Some(s) = file.snapshot_queries {
            config.snapshot_queries = s;
        }
        config.auth = file.auth;
        config.security = file.security;
        // Relative roots in the file are relative to the file.
        for p in &mut config.security.allowed_paths {
            if !p.contains("://") {
                *p = relative(PathBuf::from(&*p)).display().to_string();
            }
        }
        config
            .security
            .allowed_paths
            .extend(flags.allowed_paths.iter().map(|p| p.display().to_string()));
        config.tls = file.tls.map(|t| TlsConfig {
            cert: relative(t.cert),
            key: relative(t.key),
        });
        if let Some(l) = env(ENV_LISTEN) {
            config.listen = parse_listen(&l)?;
        }
        if let Some(d) = env(ENV_DATA_DIR) {
            config.data_dir = PathBuf::from(d);
        }
        if let Some(l) = &flags.listen {
            config.listen = parse_listen(l)?;
        }
        if let Some(d) = flags.data_dir {
            config.data_dir = d;
        }
        if let Some(p) = flags.parallelism {
            config.parallelism = p;
        }
        if flags.allow_anonymous {
            config.auth.allow_anonymous = true;
        }
        config.check()?;
        Ok(config)
    }

    /// Refuses a configuration nobody could use.
    pub fn check(&self) -> Result<(), String> {
        if self.max_parallelism.is_some_and(|m| m < self.parallelism) {
            return Err(format!(
                "max_parallelism ({}) is below parallelism ({})",
                self.max_parallelism.unwrap_or_default(),
                self.parallelism
            ));
        }
        if self.auth.users.is_empty() && !self.auth.allow_anonymous {
            return Err("no users are configured: add [[auth.users]] with a name and a password_hash (from `runnel hash-password`) to the configuration, or pass --allow-anonymous for a server only you can reach".into());
        }
        for u in &self.auth.users {
            PasswordHash::new(&u.password_hash).map_err(|e| {
                format!(
                    "the password_hash of user '{}' is not an argon2 hash ({e}); make one with `runnel hash-password`",
                    u.name
                )
            })?;
        }
        Ok(())
    }

    /// The highest parallelism a client may `SET`.
    pub fn parallelism_limit(&self) -> usize {
        self.max_parallelism.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (4 * cores).max(self.parallelism)
        })
    }

    /// The roles the configuration gives `user` (none for an unknown
    /// user, such as `anonymous`).
    pub fn roles_of(&self, user: &str) -> Vec<String> {
        self.auth
            .users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.roles.iter().map(|r| r.to_lowercase()).collect())
            .unwrap_or_default()
    }

    /// True when `name` may log in with `password`.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        self.auth.users.iter().any(|u| {
            u.name == name
                && PasswordHash::new(&u.password_hash).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
        })
    }
}

#[derive(Default)]
struct Flags {
    config: Option<PathBuf>,
    listen: Option<String>,
    http_listen: Option<String>,
    data_dir: Option<PathBuf>,
    parallelism: Option<usize>,
    allow_anonymous: bool,
    allowed_paths: Vec<PathBuf>,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an address to listen on, such as 127.0.0.1:50051"))
}

fn duration(s: &str, key: &str) -> Result<Duration, String> {
    runnel_engine::connector::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{key} must be a duration such as '10 s', not '{s}'"))
}

/// Hashes a password for the configuration (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for the salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("runnel-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let hash = hash_password("s3cret")?;
        let file = dir.join("runnel.toml");
        std::fs::write(
            &file,
            format!(
                "listen = \"127.0.0.1:1111\"\ndata_dir = \"data\"\nkeepalive = \"2 s\"\n[[auth.users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let path = file.display().to_string();
        let no_env = |_: &str| None;
        let c = ServerConfig::from_args(&args(&["--config", &path]), &no_env)?;
        assert_eq!(c.listen.port(), 1111);
        assert_eq!(c.data_dir, dir.join("data"));
        assert_eq!(c.keepalive, Duration::from_secs(2));
        let env = |k: &str| (k == ENV_LISTEN).then(|| "127.0.0.1:2222".to_string());
        let c = ServerConfig::from_args(&args(&["--config", &path]), &env)?;
        assert_eq!(c.listen.port(), 2222);
        let c = ServerConfig::from_args(
            &args(&["--config", &path, "--listen", "127.0.0.1:3333"]),
            &env,
        )?;
        assert_eq!(c.listen.port(), 3333);
        assert!(c.verify("alice", "s3cret"));
        assert!(!c.verify("alice", "wrong"));
        assert!(!c.verify("bob", "s3cret"));
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(())
    }

    #[test]
    fn a_server_without_users_needs_anonymous_access_turned_on() {
        let no_env = |_: &str| None;
        let err = ServerConfig::from_args(&[], &no_env).expect_err("no users");
        assert!(err.contains("--allow-anonymous"), "{err}");
        assert!(ServerConfig::from_args(&args(&["--allow-anonymous"]), &no_env).is_ok());
        let err = ServerConfig::from_args(&args(&["--bogus"]), &no_env).expect_err("bad flag");
        assert!(err.contains("--bogus"), "{err}");
    }

    #[test]
    fn the_http_port_defaults_to_8081_and_can_be_moved_or_turned_off() {
        let no_env = |_: &str| None;
        let c = ServerConfig::from_args(&args(&["--allow-anonymous"]), &no_env).expect("config");
        assert_eq!(c.http_listen, Some("127.0.0.1:8081".parse().expect("addr")));
        let c = ServerConfig::from_args(
            &args(&["--allow-anonymous", "--http-listen", "127.0.0.1:9999"]),
            &no_env,
        )
        .expect("config");
        assert_eq!(c.http_listen, Some("127.0.0.1:9999".parse().expect("addr")));
        let c = ServerConfig::from_args(
            &args(&["--allow-anonymous", "--http-listen", "off"]),
            &no_env,
        )
        .expect("config");
        assert_eq!(c.http_listen, None);
        let err = ServerConfig::from_args(
            &args(&["--allow-anonymous", "--http-listen", "nope"]),
            &no_env,
        )
        .expect_err("bad address");
        assert!(err.contains("'nope'"), "{err}");
        // Programs that build a configuration get no HTTP port unless asked.
        assert_eq!(ServerConfig::new("d").http_listen, None);
    }
}
