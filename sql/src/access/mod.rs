//! Access control: who is running a statement ([`Principal`]), what they
//! may do to which object ([`Privilege`] on a [`Securable`]), and the
//! catalog's record of roles, role members, grants and owners
//! ([`Grants`]). The model follows Unity Catalog's (docs/governance.md):
//! privileges granted on the catalog or a schema hold for every object in
//! it, the owner of an object (its creator) holds every privilege on it,
//! and members of the `admins` role may do everything.
//!
//! The checks themselves run in the session at planning
//! ([`crate::session::Session`]); this module only answers "may this
//! principal do that".

mod identity;
mod resources;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use identity::substitute_identity;
pub use resources::{paths_overlap, resolve, Resource, ResourcePolicy};

use crate::catalog::{CATALOG_NAME, PUBLIC_SCHEMA, SYSTEM_SCHEMA};

/// The role whose members are administrators; it exists from the start.
pub const ADMINS: &str = "admins";
/// The role every user is a member of (Unity Catalog's "account users").
pub const USERS: &str = "users";
/// Objects only administrators may read, whatever is granted.
pub const ADMIN_ONLY: &[&str] = &["system.access.audit"];

/// Who runs a statement: a user and the roles the server's configuration
/// gives them (roles granted in SQL are added from the catalog's
/// [`Grants`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's name.
    pub user: String,
    /// Roles from the configuration.
    pub roles: BTreeSet<String>,
}

impl Principal {
    /// A user with these configured roles.
    pub fn new(user: impl Into<String>, roles: impl IntoIterator<Item = String>) -> Self {
        Self {
            user: user.into(),
            roles: roles.into_iter().collect(),
        }
    }

    /// The local administrator `runnel run` runs as: the operating
    /// system's user name (`USER`), or `local`.
    pub fn local_admin() -> Self {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "local".to_string());
        Self::new(user, [ADMINS.to_string()])
    }
}

/// A privilege. `ALL PRIVILEGES` grants each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// Read the rows of a table or view.
    Select,
    /// Append rows (`INSERT INTO`).
    Insert,
    /// Change a table's rows; includes `INSERT`.
    Modify,
    /// Create tables, views and functions in a schema (or in any schema
    /// of the catalog).
    Create,
}

impl Privilege {
    /// Every privilege, for `ALL PRIVILEGES`.
    pub const ALL: [Privilege; 4] = [
        Privilege::Select,
        Privilege::Insert,
        Privilege::Modify,
        Privilege::Create,
    ];

    /// The privilege named `word` (any case).
    pub fn parse(word: &str) -> Option<Self> {
        match word.to_ascii_uppercase().as_str() {
            "SELECT" => Some(Privilege::Select),
            "INSERT" => Some(Privilege::Insert),
            "MODIFY" => Some(Privilege::Modify),
            "CREATE" => Some(Privilege::Create),
            _ => None,
        }
    }

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Modify => "MODIFY",
            Privilege::Create => "CREATE",
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a privilege is granted on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Securable {
    /// The one catalog (`runnel`).
    Catalog,
    /// A schema: `public` or `system`.
    Schema(String),
    /// A table or view, by catalog key (`per_region`, `system.jobs`).
    Object(String),
}

impl Securable {
    /// The schema an object key lives in.
    pub fn schema_of(key: &str) -> &'static str {
        match key.split_once('.') {
            Some((SYSTEM_SCHEMA, _)) => SYSTEM_SCHEMA,
            _ => PUBLIC_SCHEMA,
        }
    }

    /// This securable and every one it lies in (object, schema, catalog).
    fn with_parents(&self) -> Vec<Securable> {
        match self {
            Securable::Catalog => vec![Securable::Catalog],
            Securable::Schema(s) => vec![Securable::Schema(s.clone()), Securable::Catalog],
            Securable::Object(key) => vec![
                Securable::Object(key.clone()),
                Securable::Schema(Securable::schema_of(key).to_string()),
                Securable::Catalog,
            ],
        }
    }

    /// How SHOW GRANTS and error messages name it; `kind` is the object's
    /// kind (`TABLE`, `VIEW`) where known.
    pub fn describe(&self, kind: &str) -> String {
        match self {
            Securable::Catalog => format!("CATALOG {CATALOG_NAME}"),
            Securable::Schema(s) => format!("SCHEMA {s}"),
            Securable::Object(k) => format!("{kind} {k}"),
        }
    }
}

/// Who a privilege is granted to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grantee {
    /// A role and, through it, its members.
    Role(String),
    /// One user.
    User(String),
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Role(r) => write!(f, "ROLE {r}"),
            Grantee::User(u) => write!(f, "USER {u}"),
        }
    }
}

/// One grant, as SHOW GRANTS lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// On what.
    pub on: Securable,
    /// Which privilege.
    pub privilege: Privilege,
    /// To whom.
    pub to: Grantee,
}

/// Comments, tags, masks and the row filter of a table or view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `COMMENT ON TABLE`.
    pub comment: Option<String>,
    /// Table tags.
    pub tags: BTreeMap<String, String>,
    /// By lower-case column name.
    pub columns: BTreeMap<String, ColumnMeta>,
    /// `SET ROW FILTER f ON (cols)`: the function and its columns.
    pub row_filter: Option<(String, Vec<String>)>,
    /// Expectations (`CONSTRAINT name EXPECT ...`): on a table, checked on
    /// every row written to it; on a view, on every row read through it.
    pub expectations: Vec<crate::parser::ExpectDecl>,
}

/// Comment, tags and mask of a column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMeta {
    /// `COMMENT`.
    pub comment: Option<String>,
    /// Column tags.
    pub tags: BTreeMap<String, String>,
    /// `SET MASK f`: the function every read goes through.
    pub mask: Option<String>,
}

/// Roles, their members, grants and owners: the catalog's access record.
#[derive(Debug, Clone)]
pub struct Grants {
    /// Roles created with CREATE ROLE, and the two built-in ones.
    roles: BTreeSet<String>,
    /// Role -> users granted it in SQL.
    members: BTreeMap<String, BTreeSet<String>>,
    grants: BTreeSet<Grant>,
    /// Object key -> the user who created it.
    owners: BTreeMap<String, String>,
    /// Object key -> its comments, tags, masks and row filter.
    meta: BTreeMap<String, ObjectMeta>,
    /// SQL function name -> the user who created it (apart from objects:
    /// a view may not take a function's place).
    function_owners: BTreeMap<String, String>,
}

impl Default for Grants {
    /// The built-in roles, and the grants every new catalog starts with:
    /// every user may create objects in `public` and read the system
    /// tables, as Databricks' default schema allows its workspace users.
    fn default() -> Self {
        let mut g = Grants {
            roles: [ADMINS, USERS].iter().map(|r| r.to_string()).collect(),
            members: BTreeMap::new(),
            grants: BTreeSet::new(),
            owners: BTreeMap::new(),
            meta: BTreeMap::new(),
            function_owners: BTreeMap::new(),
        };
        g.grants.insert(Grant {
            on: Securable::Schema(PUBLIC_SCHEMA.into()),
            privilege: Privilege::Create,
            to: Grantee::Role(USERS.into()),
        });
        g.grants.insert(Grant {
            on: Securable::Schema(SYSTEM_SCHEMA.into()),
            privilege: Privilege::Select,
            to: Grantee::Role(USERS.into()),
        });
        g
    }
}

impl Grants {
    /// Every role `p` holds: configured, granted in SQL, and `users`.
    pub fn roles_of(&self, p: &Principal) -> BTreeSet<String> {
        let mut roles = p.roles.clone();
        roles.insert(USERS.to_string());
        for (role, users) in &self.members {
            if users.contains(&p.user) {
                roles.insert(role.clone());
            }
        }
        roles
    }

    /// True when `p` is an administrator.
    pub fn is_admin(&self, p: &Principal) -> bool {
        self.roles_of(p).contains(ADMINS)
    }

    /// The owner of an object, when one is recorded.
    pub fn owner(&self, key: &str) -> Option<&str> {
        self.owners.get(key).map(String::as_str)
    }

    /// Records `user` as the owner of the object `key`.
    pub fn set_owner(&mut self, key: &str, user: &str) {
        self.owners.insert(key.to_string(), user.to_string());
    }

    /// Forgets an object that was dropped: its owner and every grant on
    /// it (a new object of the same name starts with none).
    pub fn forget_object(&mut self, key: &str) {
        self.owners.remove(key);
        self.meta.remove(key);
        self.grants
            .retain(|g| g.on != Securable::Object(key.to_string()));
    }

    /// True when `p` may use `privilege` on `on`: an administrator, the
    /// object's owner, or a grant on it or on what holds it, to the user or
    /// one of their roles. MODIFY includes INSERT.
    pub fn allows(&self, p: &Principal, privilege: Privilege, on: &Securable) -> bool {
        let roles = self.roles_of(p);
        if roles.contains(ADMINS) {
            return true;
        }
        if matches!(on, Securable::Object(key) if ADMIN_ONLY.contains(&key.as_str())) {
            return false;
        }
        if let Securable::Object(key) = on {
            if self.owner(key) == Some(p.user.as_str()) {
                return true;
            }
        }
        let wanted: &[Privilege] = match privilege {
            Privilege::Insert => &[Privilege::Insert, Privilege::Modify],
            Privilege::Select => &[Privilege::Select],
            Privilege::Modify => &[Privilege::Modify],
            Privilege::Create => &[Privilege::Create],
        };
        on.with_parents().iter().any(|s| {
            self.grants.iter().any(|g| {
                &g.on == s
                    && wanted.contains(&g.privilege)
                    && match &g.to {
                        Grantee::User(u) => *u == p.user,
                        Grantee::Role(r) => roles.contains(r),
                    }
            })
        })
    }

    /// The owner of SQL function `name`.
    pub fn function_owner(&self, name: &str) -> Option<&str> {
        self.function_owners.get(name).map(String::as_str)
    }

    /// Records `user` as the owner of SQL function `name`.
    pub fn set_function_owner(&mut self, name: &str, user: &str) {
        self.function_owners
            .insert(name.to_string(), user.to_string());
    }

    /// Forgets a dropped function's owner.
    pub fn forget_function(&mut self, name: &str) {
        self.function_owners.remove(name);
    }

    /// The comments, tags, masks and row filter of `key`, if any.
    pub fn meta(&self, key: &str) -> Option<&ObjectMeta> {
        self.meta.get(key)
    }

    /// The comments, tags, masks and row filter of `key`, to change.
    pub fn meta_mut(&mut self, key: &str) -> &mut ObjectMeta {
        self.meta.entry(key.to_string()).or_default()
    }

    /// Every object's metadata, by key.
    pub fn all_meta(&self) -> impl Iterator<Item = (&str, &ObjectMeta)> {
        self.meta.iter().map(|(k, m)| (k.as_str(), m))
    }

    /// Where function `name` is used as a mask or row filter
    /// (`table.column` or `table`), if anywhere.
    pub fn function_use(&self, name: &str) -> Option<String> {
        self.meta.iter().find_map(|(table, m)| {
            if m.row_filter.as_ref().is_some_and(|(f, _)| f == name) {
                return Some(format!("the row filter of '{table}'"));
            }
            m.columns
                .iter()
                .find(|(_, c)| c.mask.as_deref() == Some(name))
                .map(|(col, _)| format!("the mask of '{table}.{col}'"))
        })
    }

    /// True when `role` exists.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// The roles, sorted.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(String::as_str)
    }

    /// Adds a role; false when it existed.
    pub fn create_role(&mut self, role: &str) -> bool {
        self.roles.insert(role.to_string())
    }

    /// Removes a role with its members and grants; false when it did not
    /// exist.
    pub fn drop_role(&mut self, role: &str) -> bool {
        self.members.remove(role);
        self.grants
            .retain(|g| g.to != Grantee::Role(role.to_string()));
        self.roles.remove(role)
    }

    /// Makes `user` a member of `role`.
    pub fn add_member(&mut self, role: &str, user: &str) {
        self.members
            .entry(role.to_string())
            .or_default()
            .insert(user.to_string());
    }

    /// Ends `user`'s membership of `role`; false when there was none.
    pub fn remove_member(&mut self, role: &str, user: &str) -> bool {
        self.members.get_mut(role).is_some_and(|m| m.remove(user))
    }

    /// Members of roles granted in SQL: (role, user), sorted.
    pub fn memberships(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members
            .iter()
            .flat_map(|(r, us)| us.iter().map(move |u| (r.as_str(), u.as_str())))
    }

    /// Records a grant; false when it was already there.
    pub fn grant(&mut self, grant: Grant) -> bool {
        self.grants.insert(grant)
    }

    /// Removes a grant; false when there was none.
    pub fn revoke(&mut self, grant: &Grant) -> bool {
        self.grants.remove(grant)
    }

    /// Every grant, sorted.
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }
}

#[cfg(test)]
mod tests;
