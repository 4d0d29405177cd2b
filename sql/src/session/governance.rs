//! Access control in the session: who runs its statements, the checks
//! each statement passes at planning, and the access-control statements
//! themselves (roles, GRANT, REVOKE, SHOW GRANTS). The model is in
//! [`crate::access`]; docs/governance.md explains it.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast;

use super::{rows, Outcome, Session};
use crate::access::{Grant, Grantee, Principal, Privilege, ResourcePolicy, Securable, ADMINS};
use crate::catalog::{key_of, Entry, TableKind, CATALOG_NAME, PUBLIC_SCHEMA, SYSTEM_SCHEMA};
use crate::error::{Position, Result, SqlError};
use crate::parser::{Governance, GrantTarget, GranteeName, Named, ObjectKind};
use crate::plan::Plan;

/// Session options that name a path on the server: set only by
/// administrators, or under the allowed paths.
const PATH_OPTIONS: &[&str] = &[
    super::lineage::OPENLINEAGE_FILE_OPTION,
    "state.checkpoints.dir",
    "state.backend.rocksdb.localdir",
    "execution.savepoint.path",
];

/// Who the session's statements run as, and what the server allows.
#[derive(Debug, Clone)]
pub(super) struct AccessContext {
    /// The current user.
    pub principal: Principal,
    /// Users the server knows, with their configured roles (GRANT ... TO
    /// USER names one of them; a view owner's roles come from here).
    pub users: BTreeMap<String, BTreeSet<String>>,
    /// Allow-lists for tables of non-administrators; `None`: no limits
    /// (`runnel run`, where the user is the machine's).
    pub resources: Option<ResourcePolicy>,
    /// Replaying the server's log: the statements passed their checks
    /// when they first ran, so none are made again; they are planned
    /// with their user's own roles all the same.
    pub replaying: bool,
}

impl Default for AccessContext {
    fn default() -> Self {
        let principal = Principal::local_admin();
        let users = [(principal.user.clone(), principal.roles.clone())]
            .into_iter()
            .collect();
        Self {
            principal,
            users,
            resources: None,
            replaying: false,
        }
    }
}

impl Session {
    /// Runs the following statements as `principal`.
    pub fn set_principal(&mut self, principal: Principal) {
        self.access.principal = principal;
    }

    /// Who the statements run as.
    pub fn principal(&self) -> &Principal {
        &self.access.principal
    }

    /// The users the server knows, with their configured roles.
    pub fn set_users(&mut self, users: BTreeMap<String, BTreeSet<String>>) {
        self.access.users = users;
    }

    /// Limits the paths and servers tables of non-administrators reach.
    pub fn set_resource_policy(&mut self, policy: ResourcePolicy) {
        self.access.resources = Some(policy);
    }

    /// True when the current user is an administrator (or a logged
    /// statement is being replayed).
    pub fn is_admin(&self) -> bool {
        self.access.replaying || self.catalog.grants().is_admin(&self.access.principal)
    }

    /// Marks the statements that follow as replayed from the server's log
    /// (no access checks; see [`AccessContext`]).
    pub fn set_replaying(&mut self, replaying: bool) {
        self.access.replaying = replaying;
    }

    /// The current user's roles (configured, granted, `users`).
    pub fn current_roles(&self) -> BTreeSet<String> {
        self.catalog.grants().roles_of(&self.access.principal)
    }

    /// The principal a view's owner reads as.
    fn owner_principal(&self, user: &str) -> Principal {
        let roles = self.access.users.get(user).cloned().unwrap_or_default();
        Principal::new(user, roles)
    }

    /// Fails unless `who` holds `privilege` on `on`.
    fn require_as(
        &self,
        who: &Principal,
        privilege: Privilege,
        on: &Securable,
        position: Position,
    ) -> Result<()> {
        if let Securable::Object(key) = on {
            self.touch(key);
        }
        if self.access.replaying || self.catalog.grants().allows(who, privilege, on) {
            return Ok(());
        }
        Err(SqlError::denied(
            format!(
                "user '{}' does not have {privilege} on {}",
                who.user,
                self.describe_securable(on)
            ),
            position,
        ))
    }

    /// Fails unless the current user holds `privilege` on `on`.
    pub(crate) fn require(
        &self,
        privilege: Privilege,
        on: &Securable,
        position: Position,
    ) -> Result<()> {
        self.require_as(&self.access.principal, privilege, on, position)
    }

    /// Fails unless the current user owns the object `key` or is an
    /// administrator (dropping, granting on it).
    pub(super) fn require_owner(&self, key: &str, what: &str, position: Position) -> Result<()> {
        self.touch(key);
        let g = self.catalog.grants();
        if self.is_admin() || g.owner(key) == Some(&self.access.principal.user) {
            return Ok(());
        }
        Err(SqlError::denied(
            format!(
                "user '{}' may not {what} '{key}': only its owner{} or an administrator may",
                self.access.principal.user,
                g.owner(key)
                    .map(|o| format!(" ('{o}')"))
                    .unwrap_or_default()
            ),
            position,
        ))
    }

    /// Notes that the statement being run touches the object `key` (for
    /// the audit log).
    fn touch(&self, key: &str) {
        let mut t = self.touched.borrow_mut();
        if !t.iter().any(|k| k == key) {
            t.push(key.to_string());
        }
    }

    /// The objects the statements since the last call touched, and
    /// forgets them.
    pub fn take_touched(&self) -> Vec<String> {
        std::mem::take(&mut *self.touched.borrow_mut())
    }

    /// How messages name a securable: `TABLE t`, `VIEW v`, `SCHEMA s`.
    fn describe_securable(&self, on: &Securable) -> String {
        let kind = match on {
            Securable::Object(key) => match self.catalog.get_by_key(key) {
                Some(Entry::View(_)) => "VIEW",
                Some(Entry::Table(t)) if t.kind == TableKind::MaterializedView => "VIEW",
                _ => "TABLE",
            },
            _ => "",
        };
        on.describe(kind)
    }

    /// Plans `query` and checks SELECT on everything it reads: what it
    /// names, as the current user; what a view reads, as the view's owner.
    pub(crate) fn plan_checked(&self, query: &ast::Query) -> Result<Plan> {
        let mut planner = self.planner();
        let plan = planner.plan_query(query)?;
        let reads = planner.reads().to_vec();
        for read in &reads {
            let on = Securable::Object(read.key.clone());
            let owner = read
                .via
                .as_deref()
                .and_then(|v| self.catalog.grants().owner(v));
            match owner {
                Some(owner) => {
                    let who = self.owner_principal(owner);
                    self.require_as(&who, Privilege::Select, &on, read.position)
                        .map_err(|e| through_view(e, read.via.as_deref()))?;
                }
                None => self.require(Privilege::Select, &on, read.position)?,
            }
        }
        // Every table the plan scans was seen by the checks above.
        for scanned in plan.scanned_tables() {
            if !reads.iter().any(|r| r.key == scanned.descriptor.name) {
                return Err(SqlError::denied(
                    format!(
                        "the query reads '{}' in a way the access checks do not cover",
                        scanned.descriptor.name
                    ),
                    Position::default(),
                ));
            }
        }
        Ok(plan)
    }

    /// Checks that the current user may create an object in `public`
    /// (CREATE on the schema or the catalog).
    pub(super) fn check_create(&self, position: Position) -> Result<()> {
        self.require(
            Privilege::Create,
            &Securable::Schema(PUBLIC_SCHEMA.into()),
            position,
        )
    }

    /// Checks what a new table reaches outside the engine against the
    /// server's allow-lists (administrators are not limited).
    pub(super) fn check_resources(
        &self,
        descriptor: &runnel_engine::connector::TableDescriptor,
        position: Position,
    ) -> Result<()> {
        let Some(policy) = &self.access.resources else {
            return Ok(());
        };
        if self.is_admin() {
            return Ok(());
        }
        use crate::access::Resource;
        let Ok(connector) = self.registry.resolve(descriptor) else {
            return Ok(()); // creating the table reports the bad connector
        };
        let resources = connector.resources(descriptor);
        for r in &resources {
            if let Some(why) = policy.refusal(r) {
                return Err(SqlError::denied(
                    format!("table '{}': {why}", descriptor.name),
                    position,
                ));
            }
        }
        // Data that another user's table holds is reached through that
        // table (and its grants, masks and expectations), not a second one.
        for (other, theirs) in self.table_resources() {
            if self.catalog.grants().owner(&other) == Some(self.access.principal.user.as_str()) {
                continue;
            }
            let shared = resources.iter().any(|mine| {
                theirs.iter().any(|t| match (mine, t) {
                    (Resource::Path(a), Resource::Path(b)) => crate::access::paths_overlap(a, b),
                    (Resource::Topic(a), Resource::Topic(b)) => a == b,
                    _ => false,
                })
            });
            if shared {
                return Err(SqlError::denied(
                    format!(
                        "table '{}' would read or write the data of table '{other}', which belongs to another user; ask for a grant on '{other}' instead",
                        descriptor.name
                    ),
                    position,
                ));
            }
        }
        Ok(())
    }

    /// The outside resources of every table in the catalog.
    fn table_resources(&self) -> Vec<(String, Vec<crate::access::Resource>)> {
        self.catalog
            .entries()
            .filter_map(|(_, e)| match e {
                Entry::Table(t) if t.kind == TableKind::Table => {
                    let c = self.registry.resolve(&t.descriptor).ok()?;
                    Some((t.descriptor.name.clone(), c.resources(&t.descriptor)))
                }
                _ => None,
            })
            .collect()
    }

    /// Checks `SET key = value` for a non-administrator: options naming a
    /// path on the server must lie under the allowed paths.
    pub(super) fn check_option(&self, key: &str, value: &str, position: Position) -> Result<()> {
        use crate::access::Resource;
        let resource = if PATH_OPTIONS.contains(&key) {
            Resource::Path(value.to_string())
        } else if key == "s3.endpoint" || key == super::lineage::OPENLINEAGE_URL_OPTION {
            // Checkpoint storage's endpoint.
            Resource::Endpoint(value.to_string())
        } else {
            return Ok(());
        };
        let Some(policy) = &self.access.resources else {
            return Ok(());
        };
        if self.is_admin() || (key == "execution.savepoint.path" && self.owns_checkpoint(value)) {
            return Ok(());
        }
        match policy.refusal(&resource) {
            Some(why) => Err(SqlError::denied(format!("'{key}': {why}"), position)),
            None => Ok(()),
        }
    }

    /// True when `path` lies in the checkpoint directory of a job the
    /// current user started (resuming one's own job from its savepoint).
    fn owns_checkpoint(&self, path: &str) -> bool {
        let Some(root) = self.option("state.checkpoints.dir") else {
            return false;
        };
        let root = crate::access::resolve(std::path::Path::new(root));
        let path = crate::access::resolve(std::path::Path::new(path));
        let Ok(rest) = path.strip_prefix(&root) else {
            return false;
        };
        let Some(job) = rest.components().next() else {
            return false;
        };
        let job = job.as_os_str().to_string_lossy();
        self.jobs
            .iter()
            .any(|j| j.0 == job && j.3 == self.access.principal.user)
    }

    /// Records the current user as the owner of a new object.
    pub(super) fn own(&mut self, key: &str) {
        self.touch(key);
        let user = self.access.principal.user.clone();
        // Statements replayed from logs that predate users own nothing.
        if !user.is_empty() {
            self.catalog.grants_mut().set_owner(key, &user);
        }
    }

    /// Records the current user as the owner of SQL function `name`.
    pub(super) fn own_function(&mut self, name: &str) {
        let user = self.access.principal.user.clone();
        if !user.is_empty() {
            self.catalog.grants_mut().set_function_owner(name, &user);
        }
    }

    /// Fails unless the current user may replace or drop SQL function
    /// `name`: its owner or an administrator, and for a function that a
    /// mask or row filter calls (directly or through other functions),
    /// only an administrator.
    pub(super) fn require_function_owner(
        &self,
        name: &str,
        what: &str,
        position: Position,
    ) -> Result<()> {
        if self.is_admin() {
            return Ok(());
        }
        if self.policy_functions().contains(name) {
            return Err(SqlError::denied(
                format!(
                    "user '{}' may not {what} function '{name}': a mask or row filter calls it, so only an administrator may",
                    self.access.principal.user
                ),
                position,
            ));
        }
        let owner = self.catalog.grants().function_owner(name);
        if owner == Some(self.access.principal.user.as_str()) {
            return Ok(());
        }
        Err(SqlError::denied(
            format!(
                "user '{}' may not {what} function '{name}': only its owner{} or an administrator may",
                self.access.principal.user,
                owner.map(|o| format!(" ('{o}')")).unwrap_or_default()
            ),
            position,
        ))
    }

    /// The SQL functions masks and row filters call, directly or through
    /// other SQL functions.
    pub(super) fn policy_functions(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = Vec::new();
        for (_, m) in self.catalog.grants().all_meta() {
            todo.extend(m.row_filter.iter().map(|(f, _)| f.clone()));
            todo.extend(m.columns.values().filter_map(|c| c.mask.clone()));
        }
        while let Some(f) = todo.pop() {
            if !out.insert(f.clone()) {
                continue;
            }
            let Some(def) = self.catalog.function(&f) else {
                continue;
            };
            let _ = sqlparser::ast::visit_expressions(&def.body, |e| {
                if let sqlparser::ast::Expr::Function(call) = e {
                    let name = key_of(&call.name);
                    if self.catalog.function(&name).is_some() {
                        todo.push(name);
                    }
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
        }
        out
    }

    /// True when the current user may read the object `key` (for SHOW
    /// TABLES).
    pub fn may_read(&self, key: &str) -> bool {
        self.may_read_as(&self.access.principal, key)
    }

    /// True when `who` may read the object `key`.
    pub fn may_read_as(&self, who: &Principal, key: &str) -> bool {
        self.catalog
            .grants()
            .allows(who, Privilege::Select, &Securable::Object(key.to_string()))
    }

    /// The output columns of a view's query, planned without access
    /// checks: what the catalog shows of a view its reader may see.
    pub fn view_schema(&self, query: &ast::Query) -> Result<arrow::datatypes::SchemaRef> {
        let plan = self.planner().plan_query(query)?;
        Ok(super::output_schema(&plan))
    }

    /// The principal of a user the server knows (its configured roles).
    pub fn principal_of(&self, user: &str) -> Principal {
        self.owner_principal(user)
    }

    /// The user who started job `id`.
    pub fn job_owner(&self, id: &str) -> Option<&str> {
        self.jobs.iter().find(|j| j.0 == id).map(|j| j.3.as_str())
    }

    /// `CREATE ROLE`, `GRANT`, `REVOKE`, `SHOW GRANTS`, ...
    pub(super) fn governance(&mut self, g: &Governance, position: Position) -> Result<Outcome> {
        let admin_only = |what: &str| {
            SqlError::denied(
                format!(
                    "user '{}' may not {what}: only administrators (role '{ADMINS}') may",
                    self.access.principal.user
                ),
                position,
            )
        };
        match g {
            Governance::ShowGrants { on, to } => self.show_grants(on.as_ref(), to.as_ref()),
            Governance::ShowLineage { target } => self.show_lineage(target),
            Governance::CreateRole {
                role,
                if_not_exists,
            } => {
                if !self.is_admin() {
                    return Err(admin_only("create roles"));
                }
                if self.access.users.contains_key(&role.name)
                    && !self.catalog.grants().has_role(&role.name)
                {
                    return Err(SqlError::plan(
                        format!(
                            "'{}' is a user's name; a role needs a name of its own",
                            role.name
                        ),
                        role.position,
                    ));
                }
                let created = self.catalog.grants_mut().create_role(&role.name);
                if !created && !if_not_exists {
                    return Err(SqlError::plan(
                        format!("role '{}' already exists", role.name),
                        role.position,
                    ));
                }
                Ok(Outcome::Message(format!("created role {}", role.name)))
            }
            Governance::DropRole { role, if_exists } => {
                if !self.is_admin() {
                    return Err(admin_only("drop roles"));
                }
                if role.name == ADMINS || role.name == crate::access::USERS {
                    return Err(SqlError::plan(
                        format!("'{}' is a built-in role and cannot be dropped", role.name),
                        role.position,
                    ));
                }
                if !self.catalog.grants_mut().drop_role(&role.name) && !if_exists {
                    return Err(self.unknown_role(role));
                }
                Ok(Outcome::Message(format!("dropped role {}", role.name)))
            }
            Governance::Membership { role, user, grant } => {
                if !self.is_admin() {
                    return Err(admin_only("grant or revoke roles"));
                }
                if !self.catalog.grants().has_role(&role.name) {
                    return Err(self.unknown_role(role));
                }
                if role.name == crate::access::USERS {
                    return Err(SqlError::plan(
                        "every user is a member of 'users'; it is not granted",
                        role.position,
                    ));
                }
                self.check_user(user)?;
                if *grant {
                    self.catalog.grants_mut().add_member(&role.name, &user.name);
                    Ok(Outcome::Message(format!(
                        "granted {} to {}",
                        role.name, user.name
                    )))
                } else {
                    let configured = self
                        .access
                        .users
                        .get(&user.name)
                        .is_some_and(|r| r.contains(&role.name));
                    if !self
                        .catalog
                        .grants_mut()
                        .remove_member(&role.name, &user.name)
                    {
                        let why = if configured {
                            " (the server's configuration gives it; change it there)"
                        } else {
                            ""
                        };
                        return Err(SqlError::plan(
                            format!(
                                "user '{}' was not granted role '{}'{why}",
                                user.name, role.name
                            ),
                            user.position,
                        ));
                    }
                    Ok(Outcome::Message(format!(
                        "revoked {} from {}",
                        role.name, user.name
                    )))
                }
            }
            Governance::Privileges {
                privileges,
                on,
                grantee,
                grant,
            } => self.grant_privileges(privileges, on, grantee, *grant),
        }
    }

    fn unknown_role(&self, role: &Named) -> SqlError {
        SqlError::not_found(
            format!("unknown role '{}'{}", role.name, self.known_roles()),
            role.position,
        )
    }

    /// "; roles: ..." for an administrator; nothing for other users, who
    /// are not told the server's roles.
    fn known_roles(&self) -> String {
        if !self.is_admin() {
            return String::new();
        }
        let known: Vec<&str> = self.catalog.grants().role_names().collect();
        format!("; roles: {}", known.join(", "))
    }

    fn check_user(&self, user: &Named) -> Result<()> {
        if self.access.users.contains_key(&user.name) {
            return Ok(());
        }
        // Only administrators are told who the users are.
        let known = if self.is_admin() {
            let names: Vec<&str> = self.access.users.keys().map(String::as_str).collect();
            format!("; the server's users: {}", names.join(", "))
        } else {
            String::new()
        };
        Err(SqlError::not_found(
            format!("unknown user '{}'{known}", user.name),
            user.position,
        ))
    }

    /// The securable a GRANT or SHOW GRANTS names, checked to exist with
    /// the kind written.
    fn securable(&self, on: &GrantTarget) -> Result<Securable> {
        let name = &on.name;
        match on.kind {
            ObjectKind::Catalog => {
                if name.name != CATALOG_NAME {
                    return Err(SqlError::not_found(
                        format!(
                            "unknown catalog '{}'; the catalog is '{CATALOG_NAME}'",
                            name.name
                        ),
                        name.position,
                    ));
                }
                Ok(Securable::Catalog)
            }
            ObjectKind::Schema => {
                let schema = name
                    .name
                    .strip_prefix(&format!("{CATALOG_NAME}."))
                    .unwrap_or(&name.name);
                if schema != PUBLIC_SCHEMA && schema != SYSTEM_SCHEMA {
                    return Err(SqlError::not_found(
                        format!(
                            "unknown schema '{}'; the schemas are '{PUBLIC_SCHEMA}' and '{SYSTEM_SCHEMA}'",
                            name.name
                        ),
                        name.position,
                    ));
                }
                Ok(Securable::Schema(schema.to_string()))
            }
            ObjectKind::Table | ObjectKind::View => {
                let key = crate::catalog::key_of_dotted(&name.name);
                let is_view = match self.catalog.get_by_key(&key) {
                    None => {
                        return Err(SqlError::not_found(
                            format!("unknown {} '{}'", on.kind.word().to_lowercase(), name.name),
                            name.position,
                        ))
                    }
                    Some(Entry::View(_)) => true,
                    Some(Entry::Table(t)) => t.kind == TableKind::MaterializedView,
                };
                let table_like = !matches!(self.catalog.get_by_key(&key), Some(Entry::View(_)));
                let fits = match on.kind {
                    ObjectKind::View => is_view,
                    _ => table_like,
                };
                if !fits {
                    let is = if is_view { "a view" } else { "a table" };
                    return Err(SqlError::plan(
                        format!("'{}' is {is}, not a {}", name.name, on.kind.word()),
                        name.position,
                    ));
                }
                Ok(Securable::Object(key))
            }
        }
    }

    /// Whom a grant names: a role of that name, else a user.
    fn grantee(&self, g: &GranteeName) -> Result<Grantee> {
        let is_role = self.catalog.grants().has_role(&g.name.name);
        match g.user {
            Some(true) => {
                self.check_user(&g.name)?;
                Ok(Grantee::User(g.name.name.clone()))
            }
            Some(false) if is_role => Ok(Grantee::Role(g.name.name.clone())),
            Some(false) => Err(self.unknown_role(&g.name)),
            None if is_role => Ok(Grantee::Role(g.name.name.clone())),
            None if self.access.users.contains_key(&g.name.name) => {
                Ok(Grantee::User(g.name.name.clone()))
            }
            None => Err(SqlError::not_found(
                format!(
                    "unknown role or user '{}'{}",
                    g.name.name,
                    self.known_roles()
                ),
                g.name.position,
            )),
        }
    }

    fn grant_privileges(
        &mut self,
        privileges: &[Privilege],
        on: &GrantTarget,
        grantee: &GranteeName,
        grant: bool,
    ) -> Result<Outcome> {
        let securable = self.securable(on)?;
        let to = self.grantee(grantee)?;
        match &securable {
            Securable::Object(key) => {
                let verb = if grant { "grant on" } else { "revoke on" };
                self.require_owner(key, verb, on.name.position)?;
                if privileges == [Privilege::Create] {
                    return Err(SqlError::plan(
                        "CREATE is granted on a CATALOG or SCHEMA, not on a table or view",
                        on.name.position,
                    ));
                }
            }
            _ if !self.is_admin() => {
                return Err(SqlError::denied(
                    format!(
                        "user '{}' may not grant on {}: only administrators may",
                        self.access.principal.user,
                        self.describe_securable(&securable)
                    ),
                    on.name.position,
                ))
            }
            _ => {}
        }
        let mut changed = 0;
        for &privilege in privileges {
            // CREATE on a table means nothing; ALL PRIVILEGES on a table
            // is its other privileges.
            if privilege == Privilege::Create && matches!(securable, Securable::Object(_)) {
                continue;
            }
            let g = Grant {
                on: securable.clone(),
                privilege,
                to: to.clone(),
            };
            let done = if grant {
                self.catalog.grants_mut().grant(g)
            } else {
                self.catalog.grants_mut().revoke(&g)
            };
            changed += usize::from(done);
        }
        let names: Vec<&str> = privileges.iter().map(|p| p.name()).collect();
        let (verb, link) = if grant {
            ("granted", "to")
        } else {
            ("revoked", "from")
        };
        Ok(Outcome::Message(format!(
            "{verb} {} on {} {link} {to}{}",
            names.join(", "),
            self.describe_securable(&securable),
            if changed == 0 { " (no change)" } else { "" }
        )))
    }

    /// `SHOW GRANTS`: one row per grant (principal, privilege, object
    /// type, object) and per role membership. Administrators see every
    /// grant; other users those to themselves or their roles and those on
    /// objects they own.
    fn show_grants(&self, on: Option<&GrantTarget>, to: Option<&GranteeName>) -> Result<Outcome> {
        let on = on.map(|t| self.securable(t)).transpose()?;
        let to = to.map(|g| self.grantee(g)).transpose()?;
        let g = self.catalog.grants();
        let me = &self.access.principal;
        let admin = g.is_admin(me);
        let my_roles = g.roles_of(me);
        let visible = |grantee: &Grantee, object: Option<&str>| {
            admin
                || match grantee {
                    Grantee::User(u) => *u == me.user,
                    Grantee::Role(r) => my_roles.contains(r),
                }
                || object.is_some_and(|k| g.owner(k) == Some(me.user.as_str()))
        };
        let mut out: [Vec<String>; 4] = Default::default();
        for grant in g.grants() {
            let object = match &grant.on {
                Securable::Object(k) => Some(k.as_str()),
                _ => None,
            };
            if on.as_ref().is_some_and(|o| *o != grant.on)
                || to.as_ref().is_some_and(|t| *t != grant.to)
                || !visible(&grant.to, object)
            {
                continue;
            }
            let described = self.describe_securable(&grant.on);
            let (kind, name) = described.split_once(' ').unwrap_or(("", &described));
            out[0].push(grant.to.to_string());
            out[1].push(grant.privilege.name().to_string());
            out[2].push(kind.to_string());
            out[3].push(name.to_string());
        }
        if on.is_none() {
            for (role, user) in g.memberships() {
                let grantee = Grantee::User(user.to_string());
                if to.as_ref().is_some_and(|t| *t != grantee) || !visible(&grantee, None) {
                    continue;
                }
                out[0].push(grantee.to_string());
                out[1].push("MEMBER".to_string());
                out[2].push("ROLE".to_string());
                out[3].push(role.to_string());
            }
        }
        let [principal, privilege, kind, object] = out;
        rows(&[
            ("principal", principal),
            ("privilege", privilege),
            ("object_type", kind),
            ("object_key", object),
        ])
    }
}

/// A denial of a read inside a view, saying through which view.
fn through_view(e: SqlError, view: Option<&str>) -> SqlError {
    match (e, view) {
        (SqlError::PermissionDenied { message, position }, Some(v)) => SqlError::denied(
            format!("{message} (read through view '{v}', which runs with its owner's rights)"),
            position,
        ),
        (e, _) => e,
    }
}
