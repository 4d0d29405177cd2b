use super::*;

fn bob() -> Principal {
    Principal::new("bob", [])
}

#[test]
fn grants_on_a_schema_or_the_catalog_hold_for_its_objects() {
    let mut g = Grants::default();
    let t = Securable::Object("per_region".into());
    assert!(!g.allows(&bob(), Privilege::Select, &t));
    g.create_role("analysts");
    g.grant(Grant {
        on: Securable::Schema("public".into()),
        privilege: Privilege::Select,
        to: Grantee::Role("analysts".into()),
    });
    // The grant is to the role; bob is not yet a member.
    assert!(!g.allows(&bob(), Privilege::Select, &t));
    g.add_member("analysts", "bob");
    assert!(g.allows(&bob(), Privilege::Select, &t));
    // Not on the system schema, and not another privilege.
    assert!(!g.allows(&bob(), Privilege::Insert, &t));
    let on_catalog = Grant {
        on: Securable::Catalog,
        privilege: Privilege::Modify,
        to: Grantee::User("bob".into()),
    };
    g.grant(on_catalog.clone());
    // MODIFY includes INSERT.
    assert!(g.allows(&bob(), Privilege::Insert, &t));
    assert!(g.revoke(&on_catalog));
    assert!(!g.allows(&bob(), Privilege::Insert, &t));
    assert!(g.remove_member("analysts", "bob"));
    assert!(!g.allows(&bob(), Privilege::Select, &t));
}

#[test]
fn owners_and_admins_hold_every_privilege_and_dropping_forgets_grants() {
    let mut g = Grants::default();
    let t = Securable::Object("mine".into());
    g.set_owner("mine", "bob");
    assert!(g.allows(&bob(), Privilege::Modify, &t));
    assert!(!g.allows(&Principal::new("carol", []), Privilege::Select, &t));
    // Configured admins, and users granted the role in SQL.
    assert!(g.allows(
        &Principal::new("root", [ADMINS.to_string()]),
        Privilege::Select,
        &t
    ));
    g.add_member(ADMINS, "carol");
    assert!(g.is_admin(&Principal::new("carol", [])));
    g.grant(Grant {
        on: t.clone(),
        privilege: Privilege::Select,
        to: Grantee::User("dave".into()),
    });
    assert!(g.allows(&Principal::new("dave", []), Privilege::Select, &t));
    g.forget_object("mine");
    assert!(!g.allows(&Principal::new("dave", []), Privilege::Select, &t));
    assert!(!g.allows(&bob(), Privilege::Select, &t));
}

#[test]
fn every_user_may_create_in_public_and_read_system_tables_until_revoked() {
    let mut g = Grants::default();
    let public = Securable::Schema("public".into());
    assert!(g.allows(&bob(), Privilege::Create, &public));
    assert!(g.allows(
        &bob(),
        Privilege::Select,
        &Securable::Object("system.jobs".into())
    ));
    assert!(!g.allows(&bob(), Privilege::Create, &Securable::Catalog));
    g.revoke(&Grant {
        on: public.clone(),
        privilege: Privilege::Create,
        to: Grantee::Role(USERS.into()),
    });
    assert!(!g.allows(&bob(), Privilege::Create, &public));
}

#[test]
fn dropping_a_role_ends_its_members_grants() {
    let mut g = Grants::default();
    g.create_role("analysts");
    g.add_member("analysts", "bob");
    let t = Securable::Object("t".into());
    g.grant(Grant {
        on: t.clone(),
        privilege: Privilege::Select,
        to: Grantee::Role("analysts".into()),
    });
    assert!(g.allows(&bob(), Privilege::Select, &t));
    assert!(g.drop_role("analysts"));
    assert!(!g.allows(&bob(), Privilege::Select, &t));
    // A new role of that name starts empty.
    g.create_role("analysts");
    assert!(!g.roles_of(&bob()).contains("analysts"));
}

#[test]
fn paths_outside_the_allowed_roots_are_refused_also_through_dot_dot_and_links() {
    let dir = std::env::temp_dir().join(format!("runnel-access-{}", std::process::id()));
    let allowed = dir.join("landing");
    let data = allowed.join("data");
    std::fs::create_dir_all(&data).expect("dirs");
    let policy = ResourcePolicy {
        allowed_paths: vec![allowed.display().to_string(), "s3://lake/bronze".into()],
        denied_paths: vec![data.clone()],
        allowed_servers: vec!["127.0.0.1:9092".into()],
    };
    let ok = |p: &str| policy.refusal(&Resource::Path(p.to_string())).is_none();
    assert!(ok(&allowed.join("readings").display().to_string()));
    assert!(ok(&allowed.join("new/dir/not/yet").display().to_string()));
    assert!(!ok("/etc/passwd"));
    assert!(!ok(&allowed.join("../secret").display().to_string()));
    assert!(!ok(&data.join("statements.log").display().to_string()));
    let link = allowed.join("etc");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc", &link).expect("link");
    assert!(!ok(&link.join("passwd").display().to_string()));
    assert!(ok("s3://lake/bronze/readings"));
    assert!(!ok("s3://lake/bronzer"));
    assert!(!ok("s3://lake/bronze/../gold"));
    assert!(!ok("s3://other/bronze"));
    let server = |s: &str| policy.refusal(&Resource::Server(s.to_string())).is_none();
    assert!(server("127.0.0.1:9092"));
    assert!(!server("10.0.0.1:9092"));
    let why = policy
        .refusal(&Resource::AdminOption("properties.ssl.ca.location".into()))
        .expect("refused");
    assert!(why.contains("administrator"), "{why}");
    std::fs::remove_dir_all(&dir).expect("clean");
}
