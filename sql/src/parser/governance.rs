//! The access-control statements, in Databricks' syntax: `CREATE ROLE`,
//! `DROP ROLE`, `GRANT role TO USER u`, `REVOKE role FROM USER u`,
//! `GRANT privileges ON kind name TO grantee`, `REVOKE ... FROM grantee`
//! and `SHOW GRANTS [ON kind name] [TO grantee]`. Parsed here on the
//! token stream (sqlparser knows neither MODIFY nor grants on a catalog).

use std::fmt;

use sqlparser::tokenizer::{Span, Token, TokenWithSpan};

use super::tokens::{is_word, syntax};
use crate::access::Privilege;
use crate::error::{Position, Result};

/// A name in a governance statement, with where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// As written; role names unquoted are lower-cased.
    pub name: String,
    /// Its position.
    pub position: Position,
}

/// The kind of object a privilege is granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `CATALOG`.
    Catalog,
    /// `SCHEMA`.
    Schema,
    /// `TABLE`.
    Table,
    /// `VIEW`.
    View,
}

impl ObjectKind {
    /// The SQL word.
    pub fn word(self) -> &'static str {
        match self {
            ObjectKind::Catalog => "CATALOG",
            ObjectKind::Schema => "SCHEMA",
            ObjectKind::Table => "TABLE",
            ObjectKind::View => "VIEW",
        }
    }
}

/// `ON kind name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTarget {
    /// The kind the statement names.
    pub kind: ObjectKind,
    /// The (possibly dotted) name.
    pub name: Named,
}

/// Whom a grant names: `ROLE r`, `USER u`, or a bare name (a role if one
/// has that name, else a user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GranteeName {
    /// `Some(true)` for `USER`, `Some(false)` for `ROLE`, `None` when bare.
    pub user: Option<bool>,
    /// The name.
    pub name: Named,
}

/// An access-control statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Governance {
    /// `CREATE ROLE [IF NOT EXISTS] r`.
    CreateRole {
        /// The role.
        role: Named,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `DROP ROLE [IF EXISTS] r`.
    DropRole {
        /// The role.
        role: Named,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// `GRANT r TO USER u` (`grant`) or `REVOKE r FROM USER u`.
    Membership {
        /// The role.
        role: Named,
        /// The user.
        user: Named,
        /// True for GRANT.
        grant: bool,
    },
    /// `GRANT privileges ON target TO grantee` (`grant`) or `REVOKE
    /// privileges ON target FROM grantee`.
    Privileges {
        /// The privileges (`ALL PRIVILEGES`: all of them).
        privileges: Vec<Privilege>,
        /// On what.
        on: GrantTarget,
        /// To or from whom.
        grantee: GranteeName,
        /// True for GRANT.
        grant: bool,
    },
    /// `SHOW LINEAGE table[.column]`.
    ShowLineage {
        /// The table, view or column.
        target: Named,
    },
    /// `SHOW GRANTS [ON target] [TO grantee]`.
    ShowGrants {
        /// Only grants on this.
        on: Option<GrantTarget>,
        /// Only grants to this.
        to: Option<GranteeName>,
    },
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            f.write_str(&self.name)
        } else {
            write!(f, "`{}`", self.name.replace('`', "``"))
        }
    }
}

impl fmt::Display for GranteeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.user {
            Some(true) => write!(f, "USER {}", self.name),
            Some(false) => write!(f, "ROLE {}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

impl fmt::Display for Governance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Governance::CreateRole {
                role,
                if_not_exists,
            } => {
                let ine = if *if_not_exists { "IF NOT EXISTS " } else { "" };
                write!(f, "CREATE ROLE {ine}{role}")
            }
            Governance::DropRole { role, if_exists } => {
                let ie = if *if_exists { "IF EXISTS " } else { "" };
                write!(f, "DROP ROLE {ie}{role}")
            }
            Governance::Membership { role, user, grant } => {
                if *grant {
                    write!(f, "GRANT {role} TO USER {user}")
                } else {
                    write!(f, "REVOKE {role} FROM USER {user}")
                }
            }
            Governance::Privileges {
                privileges,
                on,
                grantee,
                grant,
            } => {
                let names: Vec<&str> = privileges.iter().map(|p| p.name()).collect();
                let (verb, to) = if *grant {
                    ("GRANT", "TO")
                } else {
                    ("REVOKE", "FROM")
                };
                write!(
                    f,
                    "{verb} {} ON {} {} {to} {grantee}",
                    names.join(", "),
                    on.kind.word(),
                    on.name
                )
            }
            Governance::ShowLineage { target } => write!(f, "SHOW LINEAGE {target}"),
            Governance::ShowGrants { on, to } => {
                write!(f, "SHOW GRANTS")?;
                if let Some(on) = on {
                    write!(f, " ON {} {}", on.kind.word(), on.name)?;
                }
                if let Some(to) = to {
                    write!(f, " TO {to}")?;
                }
                Ok(())
            }
        }
    }
}

/// A governance statement from its significant tokens; `None` when the
/// tokens start another kind of statement.
pub(super) fn governance_statement(t: &[&TokenWithSpan]) -> Option<Result<Governance>> {
    let w = |i: usize, s: &str| t.get(i).is_some_and(|tok| is_word(tok, s));
    if w(0, "CREATE") && w(1, "ROLE") {
        return Some(create_or_drop_role(t, true));
    }
    if w(0, "DROP") && w(1, "ROLE") {
        return Some(create_or_drop_role(t, false));
    }
    if w(0, "GRANT") {
        return Some(grant_or_revoke(t, true));
    }
    if w(0, "REVOKE") {
        return Some(grant_or_revoke(t, false));
    }
    if w(0, "SHOW") && w(1, "GRANTS") {
        return Some(show_grants(t));
    }
    if w(0, "SHOW") && w(1, "LINEAGE") {
        let mut c = Cursor { t, i: 2 };
        c.eat("FOR");
        return Some(
            c.name("a table, view or table.column", true)
                .and_then(|target| c.end().map(|()| Governance::ShowLineage { target })),
        );
    }
    None
}

/// A cursor over the significant tokens.
pub(super) struct Cursor<'a> {
    pub(super) t: &'a [&'a TokenWithSpan],
    pub(super) i: usize,
}

impl Cursor<'_> {
    pub(super) fn span(&self) -> Span {
        self.t
            .get(self.i)
            .or(self.t.last())
            .map_or(Span::empty(), |t| t.span)
    }

    pub(super) fn peek_word(&self, s: &str) -> bool {
        self.t.get(self.i).is_some_and(|t| is_word(t, s))
    }

    pub(super) fn eat(&mut self, s: &str) -> bool {
        let hit = self.peek_word(s);
        if hit {
            self.i += 1;
        }
        hit
    }

    pub(super) fn expect(&mut self, s: &str, what: &str) -> Result<()> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(syntax(format!("expected {what}"), self.span()))
        }
    }

    pub(super) fn at_end(&self) -> bool {
        self.i >= self.t.len()
    }

    pub(super) fn end(&self) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(syntax(
                format!(
                    "expected the end of the statement, found {}",
                    self.t[self.i].token
                ),
                self.span(),
            ))
        }
    }

    /// A name, possibly dotted (`runnel.public.t`); `lower` lower-cases
    /// its unquoted parts.
    pub(super) fn name(&mut self, what: &str, lower: bool) -> Result<Named> {
        let position = Position::of(self.span());
        let mut parts = Vec::new();
        loop {
            match self.t.get(self.i).map(|t| &t.token) {
                Some(Token::Word(word)) => {
                    parts.push(if word.quote_style.is_none() && lower {
                        word.value.to_lowercase()
                    } else {
                        word.value.clone()
                    });
                    self.i += 1;
                }
                Some(Token::SingleQuotedString(s)) if parts.is_empty() => {
                    parts.push(s.clone());
                    self.i += 1;
                    break;
                }
                _ => return Err(syntax(format!("expected {what}"), self.span())),
            }
            if self.t.get(self.i).map(|t| &t.token) == Some(&Token::Period) {
                self.i += 1;
            } else {
                break;
            }
        }
        Ok(Named {
            name: parts.join("."),
            position,
        })
    }

    fn grantee(&mut self) -> Result<GranteeName> {
        let user = if self.eat("USER") {
            Some(true)
        } else if self.eat("ROLE") {
            Some(false)
        } else {
            None
        };
        let name = self.name("a role or user name", user != Some(true))?;
        Ok(GranteeName { user, name })
    }

    fn target(&mut self) -> Result<GrantTarget> {
        let kind = if self.eat("CATALOG") {
            ObjectKind::Catalog
        } else if self.eat("SCHEMA") || self.eat("DATABASE") {
            ObjectKind::Schema
        } else if self.eat("TABLE") {
            ObjectKind::Table
        } else if self.eat("VIEW") {
            ObjectKind::View
        } else {
            return Err(syntax(
                "expected CATALOG, SCHEMA, TABLE or VIEW after ON",
                self.span(),
            ));
        };
        let name = self.name(&format!("the {} name", kind.word()), true)?;
        Ok(GrantTarget { kind, name })
    }
}

fn create_or_drop_role(t: &[&TokenWithSpan], create: bool) -> Result<Governance> {
    let mut c = Cursor { t, i: 2 };
    let guard = if create {
        c.eat("IF") && {
            c.expect("NOT", "NOT EXISTS after IF")?;
            c.expect("EXISTS", "EXISTS after IF NOT")?;
            true
        }
    } else {
        c.eat("IF") && {
            c.expect("EXISTS", "EXISTS after IF")?;
            true
        }
    };
    let role = c.name("a role name", true)?;
    c.end()?;
    Ok(if create {
        Governance::CreateRole {
            role,
            if_not_exists: guard,
        }
    } else {
        Governance::DropRole {
            role,
            if_exists: guard,
        }
    })
}

/// `GRANT|REVOKE privileges ON ...` or `GRANT|REVOKE role TO|FROM USER u`.
fn grant_or_revoke(t: &[&TokenWithSpan], grant: bool) -> Result<Governance> {
    let mut c = Cursor { t, i: 1 };
    let link = if grant { "TO" } else { "FROM" };
    // A privilege list is followed by ON; a role by TO/FROM.
    let is_privileges = t.iter().skip(1).any(|tok| is_word(tok, "ON"));
    if !is_privileges {
        c.eat("ROLE");
        let role = c.name("a role name or privileges", true)?;
        c.expect(link, &format!("{link} USER after the role name"))?;
        c.expect(
            "USER",
            &format!("USER after {link} (roles are granted to users: {link} USER name)"),
        )?;
        let user = c.name("a user name", false)?;
        c.end()?;
        return Ok(Governance::Membership { role, user, grant });
    }
    let privileges = privileges(&mut c)?;
    c.expect("ON", "ON after the privileges")?;
    let on = c.target()?;
    c.expect(link, &format!("{link} and a role or user"))?;
    let grantee = c.grantee()?;
    c.end()?;
    Ok(Governance::Privileges {
        privileges,
        on,
        grantee,
        grant,
    })
}

fn privileges(c: &mut Cursor<'_>) -> Result<Vec<Privilege>> {
    if c.eat("ALL") {
        c.eat("PRIVILEGES");
        return Ok(Privilege::ALL.to_vec());
    }
    let mut out = Vec::new();
    loop {
        let span = c.span();
        let word = c.t.get(c.i).and_then(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Privilege::parse(&w.value),
            _ => None,
        });
        let Some(p) = word else {
            return Err(syntax(
                "expected a privilege: SELECT, INSERT, MODIFY, CREATE or ALL PRIVILEGES",
                span,
            ));
        };
        c.i += 1;
        if !out.contains(&p) {
            out.push(p);
        }
        if c.t.get(c.i).map(|t| &t.token) == Some(&Token::Comma) {
            c.i += 1;
        } else {
            return Ok(out);
        }
    }
}

fn show_grants(t: &[&TokenWithSpan]) -> Result<Governance> {
    let mut c = Cursor { t, i: 2 };
    let on = if c.eat("ON") { Some(c.target()?) } else { None };
    let to = if c.eat("TO") || c.eat("FOR") {
        Some(c.grantee()?)
    } else {
        None
    };
    c.end()?;
    Ok(Governance::ShowGrants { on, to })
}
