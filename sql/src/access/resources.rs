//! What tables may reach outside the engine: the server's allow-lists of
//! paths and servers, checked when a user who is not an administrator
//! creates a table. Connectors name what a table touches
//! ([`Resource`], from `Connector::resources`).

use std::path::{Component, Path, PathBuf};

pub use runnel_engine::connector::Resource;

/// The allow-lists of `[security]` in the server's configuration.
#[derive(Debug, Clone, Default)]
pub struct ResourcePolicy {
    /// Local directories (and object-store prefixes such as
    /// `s3://bucket/landing/`) under which tables may read and write.
    pub allowed_paths: Vec<String>,
    /// Places no table of a non-administrator may reach even under an
    /// allowed root: the server's data directory (statement log, audit
    /// log, checkpoints).
    pub denied_paths: Vec<PathBuf>,
    /// `host:port` of Kafka brokers tables may connect to.
    pub allowed_servers: Vec<String>,
}

impl ResourcePolicy {
    /// Why `resource` is refused, or `None` when the policy allows it.
    pub fn refusal(&self, resource: &Resource) -> Option<String> {
        match resource {
            Resource::Path(p) => self.path_refusal(p),
            Resource::Server(s) => {
                let wanted = s.trim().to_ascii_lowercase();
                if self
                    .allowed_servers
                    .iter()
                    .any(|a| a.trim().eq_ignore_ascii_case(&wanted))
                {
                    None
                } else {
                    Some(format!(
                        "the server '{s}' is not in the server's allowed servers ({}); an administrator can add it to [security] allowed_servers",
                        list(&self.allowed_servers)
                    ))
                }
            }
            Resource::Endpoint(url) => match endpoint_host_port(url) {
                Some(hp) => self.refusal(&Resource::Server(hp)),
                None => Some(format!(
                    "the endpoint '{url}' is not a plain http(s)://host:port URL"
                )),
            },
            // Shared data is checked against the catalog by the session.
            Resource::Topic(_) => None,
            Resource::AdminOption(key) => Some(format!(
                "the option '{key}' may only be set by an administrator"
            )),
        }
    }

    fn path_refusal(&self, path: &str) -> Option<String> {
        let refused = || {
            Some(format!(
                "the path '{path}' is not under the server's allowed paths ({}); an administrator can add a root to [security] allowed_paths",
                list(&self.allowed_paths)
            ))
        };
        // Forms that connectors would read differently from this check:
        // percent-encoding (`%2e%2e`), backslashes, a leading `~`.
        if path.contains('%') || path.contains('\\') || path.starts_with('~') {
            return Some(format!(
                "the path '{path}' has a character tables of users who are not administrators may not use (%, \\ or a leading ~)"
            ));
        }
        let lower = path.to_ascii_lowercase();
        let local = if lower.starts_with("file:") {
            let rest = &path["file:".len()..];
            let rest = rest
                .strip_prefix("//localhost")
                .or_else(|| rest.strip_prefix("//"))
                .unwrap_or(rest);
            if !rest.starts_with('/') {
                return refused();
            }
            rest.to_string()
        } else if let Some((_, rest)) = path.split_once("://") {
            // An object-store URI: under an allowed prefix, compared by
            // whole path segments.
            if rest.split('/').skip(1).any(|seg| seg == ".." || seg == ".") {
                return refused();
            }
            let ok = self.allowed_paths.iter().any(|root| {
                let root = root.trim_end_matches('/');
                root.contains("://") && (path == root || path.starts_with(&format!("{root}/")))
            });
            return if ok { None } else { refused() };
        } else {
            path.to_string()
        };
        // `..` is refused rather than applied: after a symbolic link it
        // leads somewhere the text does not say.
        if Path::new(&local)
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            return Some(format!(
                "the path '{path}' has a '..' component, which tables of users who are not administrators may not use"
            ));
        }
        let resolved = resolve(Path::new(&local));
        if self
            .denied_paths
            .iter()
            .any(|d| resolved.starts_with(resolve(d)))
        {
            return Some(format!(
                "the path '{path}' lies in the server's data directory, which tables cannot read or write"
            ));
        }
        let ok = self
            .allowed_paths
            .iter()
            .filter(|root| !root.contains("://"))
            .any(|root| resolved.starts_with(resolve(Path::new(root))));
        if ok {
            None
        } else {
            refused()
        }
    }
}

/// The `host:port` of a plain `http(s)://host[:port][/path]` URL (the
/// scheme's port when none is written); `None` for anything with user
/// information, backslashes, spaces or escapes, which clients may read
/// differently.
pub(crate) fn endpoint_host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.contains(['@', '\\', ' ', '\t', '%']) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.starts_with('[') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()?),
        None => (authority, default_port),
    };
    if host.is_empty() {
        return None;
    }
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// True when one of two paths (or URIs) lies inside the other.
pub fn paths_overlap(a: &str, b: &str) -> bool {
    let norm = |p: &str| -> String {
        if p.contains("://") && !p.to_ascii_lowercase().starts_with("file:") {
            p.trim_end_matches('/').to_string()
        } else {
            let local = p
                .strip_prefix("file://localhost")
                .or_else(|| p.strip_prefix("file://"))
                .or_else(|| p.strip_prefix("file:"))
                .unwrap_or(p);
            resolve(Path::new(local)).display().to_string()
        }
    };
    let (a, b) = (norm(a), norm(b));
    let inside =
        |x: &str, y: &str| x == y || x.starts_with(&format!("{}/", y.trim_end_matches('/')));
    inside(&a, &b) || inside(&b, &a)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none are configured".to_string()
    } else {
        items.join(", ")
    }
}

/// `path` made absolute, with `.` and `..` applied and the symbolic links
/// of its longest existing prefix followed, so that neither `..` nor a
/// link leads out of an allowed root.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut clean = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    // Follow links on the longest prefix that exists; the rest is appended
    // as written (a sink's directory may not exist yet).
    let mut existing = clean.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return clean,
        }
    }
}
