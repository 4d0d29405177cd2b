//! How the server's one SQL session is set up: its connectors (with the
//! materialized views and system tables), the users it knows, the
//! allow-lists of `[security]`, the options of the configuration and the
//! system tables in its catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use runnel_engine::connector::ConnectorRegistry;
use runnel_engine::EngineError;
use runnel_sql::access::{ResourcePolicy, ADMINS};
use runnel_sql::error::Position;
use runnel_sql::session::Session;

use crate::config::ServerConfig;
use crate::server::{Server, ANONYMOUS, LOCAL_ADMIN};
use crate::system;
use crate::tables::{SystemConnector, ViewConnector, Views};

/// The server's session: its connectors (with views and system tables),
/// the settings of its configuration, and the system tables in its catalog.
pub(crate) fn new_session(config: &ServerConfig, views: &Views, server: Weak<Server>) -> Session {
    let mut registry: ConnectorRegistry = runnel_connectors::default_registry();
    registry.register(Arc::new(ViewConnector::new(views.clone())));
    registry.register(Arc::new(SystemConnector::new(Arc::new(
        move |name: &str, user: &str| {
            let server = server.upgrade().ok_or(EngineError::Cancelled)?;
            server
                .system_rows(name, user)
                .map_err(|e| EngineError::Execution(e.to_string()))
        },
    ))));
    let mut session = Session::new(registry);
    session.set_parallelism_limit(config.parallelism_limit());
    let mut users: BTreeMap<String, BTreeSet<String>> = config
        .auth
        .users
        .iter()
        .map(|u| {
            (
                u.name.clone(),
                config.roles_of(&u.name).into_iter().collect(),
            )
        })
        .collect();
    users
        .entry(LOCAL_ADMIN.to_string())
        .or_insert_with(|| [ADMINS.to_string()].into());
    if config.auth.allow_anonymous {
        users.entry(ANONYMOUS.to_string()).or_default();
    }
    session.set_users(users);
    session.set_resource_policy(ResourcePolicy {
        allowed_paths: config.security.allowed_paths.clone(),
        denied_paths: vec![config.data_dir.clone()],
        allowed_servers: config.security.allowed_servers.clone(),
    });
    for (k, v) in [
        (
            "state.checkpoints.dir",
            config.data_dir.join("checkpoints").display().to_string(),
        ),
        (
            "execution.checkpointing.interval",
            format!("{} ms", config.checkpoint_interval.as_millis()),
        ),
        ("parallelism", config.parallelism.to_string()),
    ] {
        let _ = session.set_option(k, &v, Position::default());
    }
    system::register(&mut session);
    session
}
