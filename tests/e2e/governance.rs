//! Access control in a SQL session with the real connectors: an
//! administrator and two users, roles, grants on tables, views and
//! schemas, views read with their owner's rights, masks written with
//! `is_member`, and the allow-lists of paths and servers. (The same over
//! Flight SQL from ADBC is tests/python/test_governance.py.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use runnel_sql::access::{Principal, ResourcePolicy};
use runnel_sql::session::Session;

use crate::sql_harness::execute;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runnel-gov-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A session that knows `root` (admin), `bob` and `carol`, with tables
/// allowed under `allowed` and the data directory `data` refused.
fn session(allowed: &Path, data: &Path) -> Session {
    let mut s = Session::new(runnel_connectors::default_registry());
    let users: BTreeMap<String, BTreeSet<String>> =
        [("root", vec!["admins"]), ("bob", vec![]), ("carol", vec![])]
            .into_iter()
            .map(|(u, r)| (u.to_string(), r.into_iter().map(str::to_string).collect()))
            .collect();
    s.set_users(users);
    s.set_resource_policy(ResourcePolicy {
        allowed_paths: vec![allowed.display().to_string()],
        denied_paths: vec![data.to_path_buf()],
        allowed_servers: vec!["127.0.0.1:9092".into()],
    });
    s.set_parallelism_limit(4);
    as_user(&mut s, "root");
    execute(&mut s, "SET 'parallelism' = '1'").expect("set");
    s
}

fn as_user(s: &mut Session, user: &str) {
    let roles: Vec<String> = if user == "root" {
        vec!["admins".into()]
    } else {
        vec![]
    };
    s.set_principal(Principal::new(user, roles));
}

/// Runs `sql` as `user`.
fn run(s: &mut Session, user: &str, sql: &str) -> Result<Vec<String>, String> {
    as_user(s, user);
    execute(s, sql)
}

fn denied(result: Result<Vec<String>, String>) -> String {
    let e = result.expect_err("should be denied");
    assert!(e.starts_with("permission denied"), "{e}");
    e
}

fn readings(dir: &Path) -> String {
    let file = dir.join("readings").join("r.csv");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
    std::fs::write(&file, "d1,eu,20.5\nd2,us,30.0\nd3,eu,25.5\n").expect("write");
    format!(
        "CREATE TABLE readings (device_id STRING, region STRING, temperature DOUBLE) \
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        file.parent().expect("parent").display()
    )
}

#[test]
fn grants_decide_who_reads_and_views_read_with_their_owners_rights() {
    let dir = temp_dir("grants");
    let data = dir.join("data");
    let mut s = session(&dir, &data);
    run(&mut s, "root", &readings(&dir)).expect("create");
    // Not granted: bob may not read it, and is told what he lacks.
    let e = denied(run(&mut s, "bob", "SELECT device_id FROM readings"));
    assert!(
        e.contains("user 'bob' does not have SELECT on TABLE readings"),
        "{e}"
    );
    assert!(e.contains("line 1, column 23"), "{e}");
    // A role, a grant to it, and bob in it.
    run(&mut s, "root", "CREATE ROLE analysts").expect("role");
    run(&mut s, "root", "GRANT SELECT ON TABLE readings TO analysts").expect("grant");
    denied(run(&mut s, "bob", "SELECT device_id FROM readings"));
    run(&mut s, "root", "GRANT analysts TO USER bob").expect("member");
    let rows = run(&mut s, "bob", "SELECT device_id FROM readings").expect("read");
    assert_eq!(rows.len(), 3);
    // SELECT is not INSERT.
    run(
        &mut s,
        "root",
        &format!(
            "CREATE TABLE out_t (device_id STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
            dir.join("out").display()
        ),
    )
    .expect("out");
    let e = denied(run(
        &mut s,
        "bob",
        "INSERT INTO out_t SELECT device_id FROM readings",
    ));
    assert!(e.contains("INSERT on TABLE out_t"), "{e}");
    // carol may not read it, but bob's view of it: the view reads with
    // bob's rights once carol may read the view.
    run(
        &mut s,
        "bob",
        "CREATE VIEW eu AS SELECT device_id, temperature FROM readings WHERE region = 'eu'",
    )
    .expect("bob's view");
    denied(run(&mut s, "carol", "SELECT * FROM eu"));
    run(&mut s, "bob", "GRANT SELECT ON VIEW eu TO USER carol").expect("bob grants");
    // Only administrators are told who the users are.
    let e = run(&mut s, "bob", "GRANT SELECT ON VIEW eu TO USER nobody").expect_err("unknown");
    assert!(
        e.contains("unknown user 'nobody'") && !e.contains("root"),
        "{e}"
    );
    let rows = run(&mut s, "carol", "SELECT device_id FROM eu").expect("carol reads");
    assert_eq!(rows.len(), 2);
    denied(run(&mut s, "carol", "SELECT * FROM readings"));
    // Revoking bob's role cuts carol off too (the view has no rights of
    // its own), naming the view.
    run(&mut s, "root", "REVOKE analysts FROM USER bob").expect("revoke");
    let e = denied(run(&mut s, "carol", "SELECT device_id FROM eu"));
    assert!(e.contains("through view 'eu'"), "{e}");
    // carol cannot grant on bob's view, nor drop it.
    denied(run(
        &mut s,
        "carol",
        "GRANT SELECT ON VIEW eu TO USER carol",
    ));
    denied(run(&mut s, "carol", "DROP VIEW eu"));
    // SHOW GRANTS: root sees all; carol her own.
    let all = run(&mut s, "root", "SHOW GRANTS").expect("show");
    assert!(
        all.iter()
            .any(|r| r.contains("ROLE analysts") && r.contains("readings")),
        "{all:?}"
    );
    let hers = run(&mut s, "carol", "SHOW GRANTS").expect("show");
    assert!(hers.iter().all(|r| !r.contains("analysts")), "{hers:?}");
    assert!(hers.iter().any(|r| r.contains("USER carol")), "{hers:?}");
    // A schema-wide grant covers tables made later.
    run(
        &mut s,
        "root",
        "GRANT SELECT ON SCHEMA public TO USER carol",
    )
    .expect("schema");
    assert_eq!(
        run(&mut s, "carol", "SELECT device_id FROM readings")
            .expect("read")
            .len(),
        3
    );
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[test]
fn masks_answer_for_the_reader_and_bad_grants_are_clear_errors() {
    let dir = temp_dir("masks");
    let data = dir.join("data");
    let mut s = session(&dir, &data);
    run(&mut s, "root", &readings(&dir)).expect("create");
    run(
        &mut s,
        "root",
        "CREATE FUNCTION mask_id(x STRING) RETURNS STRING RETURN CASE WHEN is_member('admins') THEN x ELSE '***' END",
    )
    .expect("function");
    run(
        &mut s,
        "root",
        "CREATE VIEW masked AS SELECT mask_id(device_id) AS device_id, current_user() AS reader FROM readings",
    )
    .expect("view");
    run(&mut s, "root", "GRANT SELECT ON VIEW masked TO USER bob").expect("grant");
    let admin = run(&mut s, "root", "SELECT device_id, reader FROM masked").expect("root");
    assert!(
        admin.iter().any(|r| r.contains("d1") && r.contains("root")),
        "{admin:?}"
    );
    let bob = run(&mut s, "bob", "SELECT device_id, reader FROM masked").expect("bob");
    assert_eq!(bob.len(), 3);
    assert!(
        bob.iter().all(|r| r.contains("***") && r.contains("bob")),
        "{bob:?}"
    );
    assert!(bob.iter().all(|r| !r.contains("d1")), "{bob:?}");
    // Bad input: unknown object, role, user; CREATE on a table; a
    // non-admin making roles.
    let e = run(&mut s, "root", "GRANT SELECT ON TABLE nope TO USER bob").expect_err("unknown");
    assert!(
        e.contains("unknown table 'nope'") && e.contains("column 23"),
        "{e}"
    );
    let e = run(&mut s, "root", "GRANT SELECT ON TABLE readings TO ghosts").expect_err("role");
    assert!(e.contains("unknown role or user 'ghosts'"), "{e}");
    let e = run(&mut s, "root", "GRANT admins TO USER mallory").expect_err("user");
    assert!(e.contains("unknown user 'mallory'"), "{e}");
    let e = run(&mut s, "root", "GRANT CREATE ON TABLE readings TO USER bob").expect_err("create");
    assert!(
        e.contains("CREATE is granted on a CATALOG or SCHEMA"),
        "{e}"
    );
    let e = run(&mut s, "root", "GRANT SELECT ON VIEW readings TO USER bob").expect_err("kind");
    assert!(e.contains("'readings' is a table, not a VIEW"), "{e}");
    denied(run(&mut s, "bob", "CREATE ROLE mine"));
    denied(run(&mut s, "bob", "GRANT admins TO USER bob"));
    let e = run(
        &mut s,
        "root",
        "GRANT SELECTS ON TABLE readings TO USER bob",
    )
    .expect_err("word");
    assert!(e.starts_with("syntax error at line 1, column 7"), "{e}");
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[test]
fn tables_of_users_reach_only_the_allowed_paths_and_servers() {
    let dir = temp_dir("paths");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data");
    let mut s = session(&dir, &data);
    let table = |name: &str, path: &str| {
        format!(
            "CREATE TABLE {name} (line STRING) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')"
        )
    };
    let e = denied(run(&mut s, "bob", &table("pw", "/etc/passwd")));
    assert!(
        e.contains("'/etc/passwd' is not under the server's allowed paths"),
        "{e}"
    );
    let sneaky = format!("{}/../../etc", dir.display());
    denied(run(&mut s, "bob", &table("pw2", &sneaky)));
    let e = denied(run(
        &mut s,
        "bob",
        &table("log", &data.display().to_string()),
    ));
    assert!(e.contains("data directory"), "{e}");
    // Nothing was created by the refusals.
    assert!(run(&mut s, "root", "SELECT * FROM pw").is_err());
    let ok = dir.join("landing");
    run(&mut s, "bob", &table("mine", &ok.display().to_string())).expect("allowed");
    // The administrator is not limited.
    run(&mut s, "root", &table("etc", "/etc/hostname")).expect("admin");
    // Kafka: brokers from the allow-list, and no property that reads a
    // file or runs a command.
    let kafka = |servers: &str, extra: &str| {
        format!(
            "CREATE TABLE k (v STRING) WITH ('connector' = 'kafka', 'topic' = 't', \
             'properties.bootstrap.servers' = '{servers}', 'format' = 'json'{extra})"
        )
    };
    let e = denied(run(&mut s, "bob", &kafka("10.1.2.3:9092", "")));
    assert!(
        e.contains("'10.1.2.3:9092' is not in the server's allowed servers"),
        "{e}"
    );
    let e = denied(run(
        &mut s,
        "bob",
        &kafka(
            "127.0.0.1:9092",
            ", 'properties.sasl.kerberos.kinit.cmd' = 'touch /tmp/x'",
        ),
    ));
    assert!(e.contains("may only be set by an administrator"), "{e}");
    run(&mut s, "bob", &kafka("127.0.0.1:9092", "")).expect("allowed broker");
    // A checkpoint directory is a path too.
    denied(run(
        &mut s,
        "bob",
        "SET 'state.checkpoints.dir' = '/etc/cp'",
    ));
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[test]
fn row_filters_masks_tags_and_comments() {
    let dir = temp_dir("policies");
    let data = dir.join("data");
    let mut s = session(&dir, &data);
    run(&mut s, "root", &readings(&dir)).expect("create");
    run(&mut s, "root", "GRANT SELECT ON TABLE readings TO USER bob").expect("grant");
    run(
        &mut s,
        "root",
        "CREATE FUNCTION eu_only(r STRING) RETURNS BOOLEAN RETURN is_member('admins') OR r = 'eu'",
    )
    .expect("filter fn");
    run(
        &mut s,
        "root",
        "CREATE FUNCTION hide(x STRING) RETURNS STRING RETURN CASE WHEN is_member('admins') THEN x ELSE CONCAT(SUBSTRING(x, 1, 1), '*') END",
    )
    .expect("mask fn");
    run(
        &mut s,
        "root",
        "ALTER TABLE readings SET ROW FILTER eu_only ON (region)",
    )
    .expect("filter");
    run(
        &mut s,
        "root",
        "ALTER TABLE readings ALTER COLUMN device_id SET MASK hide",
    )
    .expect("mask");
    // bob: only eu rows, device ids masked; in a view of his, in an
    // aggregate, and in a WHERE on the masked column (which sees the
    // masked value).
    let rows = run(&mut s, "bob", "SELECT device_id, region FROM readings").expect("bob");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.contains("d*") && r.contains("eu")),
        "{rows:?}"
    );
    let hit = run(
        &mut s,
        "bob",
        "SELECT region FROM readings WHERE device_id = 'd1'",
    )
    .expect("where");
    assert!(
        hit.is_empty(),
        "filtering on the raw value leaks it: {hit:?}"
    );
    run(
        &mut s,
        "bob",
        "CREATE VIEW bobs AS SELECT device_id FROM readings",
    )
    .expect("view");
    let via_view = run(&mut s, "bob", "SELECT device_id FROM bobs").expect("view read");
    assert_eq!(via_view.len(), 2);
    assert!(via_view.iter().all(|r| r.contains("d*")), "{via_view:?}");
    // root sees everything.
    let all = run(&mut s, "root", "SELECT device_id FROM readings").expect("root");
    assert_eq!(all.len(), 3);
    assert!(all.iter().any(|r| r.contains("d2")), "{all:?}");
    // Wrong types are refused with the types named.
    let e = run(
        &mut s,
        "root",
        "ALTER TABLE readings ALTER COLUMN temperature SET MASK hide",
    )
    .expect_err("type");
    assert!(
        e.contains("takes (STRING) and returns STRING") && e.contains("(DOUBLE)"),
        "{e}"
    );
    let e = run(
        &mut s,
        "root",
        "ALTER TABLE readings SET ROW FILTER hide ON (region)",
    )
    .expect_err("bool");
    assert!(e.contains("return BOOLEAN"), "{e}");
    // A function in use cannot be dropped; only the owner alters.
    let e = run(&mut s, "root", "DROP FUNCTION hide").expect_err("in use");
    assert!(e.contains("mask of 'readings.device_id'"), "{e}");
    denied(run(
        &mut s,
        "bob",
        "ALTER TABLE readings ALTER COLUMN device_id DROP MASK",
    ));
    // Tags and comments.
    run(
        &mut s,
        "root",
        "ALTER TABLE readings SET TAGS ('sensitivity' = 'low', 'layer' = 'bronze')",
    )
    .expect("tags");
    run(
        &mut s,
        "root",
        "ALTER TABLE readings ALTER COLUMN device_id SET TAGS ('pii' = 'true')",
    )
    .expect("col tags");
    run(&mut s, "root", "ALTER TABLE readings UNSET TAGS ('layer')").expect("unset");
    run(
        &mut s,
        "root",
        "COMMENT ON COLUMN readings.temperature IS 'degrees Celsius'",
    )
    .expect("comment");
    let meta = s
        .catalog()
        .grants()
        .meta("readings")
        .cloned()
        .expect("meta");
    assert_eq!(
        meta.tags.iter().collect::<Vec<_>>(),
        vec![(&"sensitivity".to_string(), &"low".to_string())]
    );
    assert_eq!(meta.columns["device_id"].tags["pii"], "true");
    assert_eq!(
        meta.columns["temperature"].comment.as_deref(),
        Some("degrees Celsius")
    );
    // Dropping the mask shows bob the raw values again.
    run(
        &mut s,
        "root",
        "ALTER TABLE readings ALTER COLUMN device_id DROP MASK",
    )
    .expect("drop mask");
    run(&mut s, "root", "ALTER TABLE readings DROP ROW FILTER").expect("drop filter");
    assert_eq!(
        run(&mut s, "bob", "SELECT device_id FROM readings")
            .expect("raw")
            .len(),
        3
    );
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[test]
fn identity_functions_policy_functions_and_shared_data_cannot_be_taken_over() {
    let dir = temp_dir("takeover");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data");
    let mut s = session(&dir, &data);
    run(&mut s, "root", &readings(&dir)).expect("create");
    // Nobody shadows is_member() or current_user() with a function.
    for f in [
        "is_member(r STRING) RETURNS BOOLEAN RETURN TRUE",
        "current_user() RETURNS STRING RETURN 'root'",
    ] {
        let e = run(&mut s, "bob", &format!("CREATE FUNCTION {f}")).expect_err("reserved");
        assert!(e.contains("is a built-in function"), "{e}");
    }
    // A mask's function, even bob's own, is changed by administrators only.
    run(
        &mut s,
        "bob",
        "CREATE FUNCTION star(x STRING) RETURNS STRING RETURN '*'",
    )
    .expect("fn");
    run(
        &mut s,
        "root",
        "ALTER TABLE readings ALTER COLUMN device_id SET MASK star",
    )
    .expect("mask");
    let e = denied(run(
        &mut s,
        "bob",
        "CREATE OR REPLACE FUNCTION star(x STRING) RETURNS STRING RETURN x",
    ));
    assert!(e.contains("a mask or row filter calls it"), "{e}");
    // A second table over the same files would read past the grants.
    let same = format!(
        "CREATE TABLE r2 (device_id STRING, region STRING, temperature DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
        dir.join("readings").display()
    );
    let e = denied(run(&mut s, "bob", &same));
    assert!(e.contains("the data of table 'readings'"), "{e}");
    let inner = same
        .replace("/readings'", "/readings/sub'")
        .replace("r2", "r3");
    denied(run(&mut s, "bob", &inner));
    // Paths written so that a connector would read them differently.
    let d = dir.display();
    for path in [
        format!("{d}/%2e%2e/etc"),
        format!("{d}/a/../../etc"),
        "file://localhost/etc/passwd".to_string(),
        "FILE:/etc/passwd".to_string(),
        "~/secrets".to_string(),
        format!("{d}\\..\\etc"),
    ] {
        let sql = format!(
            "CREATE TABLE p (line STRING) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')"
        );
        denied(run(&mut s, "bob", &sql));
    }
    // Endpoints with user information or backslashes, topic patterns and
    // other users' topics.
    let delta = |endpoint: &str| {
        format!(
            "CREATE TABLE dl (a STRING) WITH ('connector' = 'delta', 'path' = '{}', 's3.endpoint' = '{endpoint}')",
            dir.join("lake").display()
        )
    };
    let e = denied(run(
        &mut s,
        "bob",
        &delta("http://evil:80\\@127.0.0.1:9092"),
    ));
    assert!(e.contains("is not a plain http(s)://host:port URL"), "{e}");
    let kafka = |name: &str, topic: &str| {
        format!(
            "CREATE TABLE {name} (v STRING) WITH ('connector' = 'kafka', {topic}, \
             'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json')"
        )
    };
    run(&mut s, "root", &kafka("orders", "'topic' = 'orders'")).expect("root's topic");
    let e = denied(run(&mut s, "bob", &kafka("mine", "'topic' = 'orders'")));
    assert!(e.contains("the data of table 'orders'"), "{e}");
    denied(run(
        &mut s,
        "bob",
        &kafka("any", "'topic-pattern' = 'ord.*'"),
    ));
    run(&mut s, "bob", &kafka("mine", "'topic' = 'bobs'")).expect("a topic of his own");
    std::fs::remove_dir_all(&dir).expect("clean");
}

/// A table with a mask or row filter on the lookup side of a join: the
/// filter drops its rows (INNER), masks apply to its columns of the joined
/// rows but not to a LEFT join's padding, and a masked lookup key is
/// refused (the join would match its raw values).
#[test]
fn lookup_joins_apply_the_tables_masks_and_row_filters() {
    let dir = temp_dir("lookup-policies");
    let data = dir.join("data");
    let mut s = session(&dir, &data);
    run(&mut s, "root", &readings(&dir)).expect("create readings");
    let events = dir.join("events");
    std::fs::create_dir_all(&events).expect("dir");
    std::fs::write(events.join("e.csv"), "d1\nd2\nd4\n").expect("write");
    run(
        &mut s,
        "root",
        &format!(
            "CREATE TABLE events (device STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
            events.display()
        ),
    )
    .expect("create events");
    for t in ["readings", "events"] {
        run(
            &mut s,
            "root",
            &format!("GRANT SELECT ON TABLE {t} TO USER bob"),
        )
        .expect("grant");
    }
    run(
        &mut s,
        "root",
        "CREATE FUNCTION eu_only(r STRING) RETURNS BOOLEAN RETURN is_member('admins') OR r = 'eu'",
    )
    .expect("filter fn");
    run(
        &mut s,
        "root",
        "CREATE FUNCTION stars(x STRING) RETURNS STRING RETURN CASE WHEN is_member('admins') THEN x ELSE '***' END",
    )
    .expect("mask fn");
    run(
        &mut s,
        "root",
        "ALTER TABLE readings SET ROW FILTER eu_only ON (region)",
    )
    .expect("filter");
    run(
        &mut s,
        "root",
        "ALTER TABLE readings ALTER COLUMN region SET MASK stars",
    )
    .expect("mask");
    let inner = "SELECT e.device, r.region FROM events e JOIN readings r ON e.device = r.device_id";
    let left =
        "SELECT e.device, r.region FROM events e LEFT JOIN readings r ON e.device = r.device_id";
    let explain = run(&mut s, "bob", &format!("EXPLAIN {inner}")).expect("explain");
    assert!(
        explain.iter().any(|l| l.starts_with("LookupJoin")),
        "{explain:?}"
    );
    // bob: d2 (us) is filtered out, d4 matches nothing, d1's region masked.
    assert_eq!(run(&mut s, "bob", inner).expect("inner"), ["d1, ***"]);
    // root sees the raw rows.
    assert_eq!(
        run(&mut s, "root", inner).expect("root"),
        ["d1, eu", "d2, us"]
    );
    // A filtered row would have to leave its stream row padded.
    let e = run(&mut s, "bob", left).expect_err("left with a row filter");
    assert!(e.contains("LEFT lookup join"), "{e}");
    run(&mut s, "root", "ALTER TABLE readings DROP ROW FILTER").expect("drop filter");
    // Padding stays NULL; matched rows are masked.
    assert_eq!(
        run(&mut s, "bob", left).expect("left"),
        ["d1, ***", "d2, ***", "d4, NULL"]
    );
    // A masked key would be matched by its raw values: refused.
    run(
        &mut s,
        "root",
        "ALTER TABLE readings ALTER COLUMN device_id SET MASK stars",
    )
    .expect("key mask");
    let e = run(&mut s, "bob", inner).expect_err("masked key");
    assert!(
        e.contains("lookup key 'device_id' of 'readings' has a mask"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).expect("clean");
}
