//! Parser tests: statements parse to the expected shape, print back to
//! text that parses the same, and errors name a line and column.

use super::*;

fn one(sql: &str) -> Statement {
    parse_statement(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// What we parse, we print back so that it parses to the same statement.
fn round_trip(sql: &str) -> Statement {
    let first = one(sql);
    let printed = first.to_string();
    let again = one(&printed);
    assert_eq!(
        strip_spans(&again),
        strip_spans(&first),
        "printed as: {printed}"
    );
    first
}

/// Statements compare with their spans; print/parse changes positions,
/// so compare the printed forms of both instead.
fn strip_spans(s: &Statement) -> String {
    s.to_string()
}

#[test]
fn create_table_with_watermark_proctime_and_key() {
    let sql = "CREATE TABLE readings (\n  event_time TIMESTAMP(3),\n  device_id STRING NOT NULL,\n  temperature DOUBLE,\n  proc_time AS PROCTIME(),\n  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND,\n  PRIMARY KEY (device_id) NOT ENFORCED\n) WITH ('connector' = 'datagen', 'number-of-rows' = '10')";
    let Statement::CreateTable(ct) = round_trip(sql) else {
        panic!("not a CREATE TABLE")
    };
    assert_eq!(ct.columns.len(), 3);
    assert!(!ct.columns[1].nullable);
    assert_eq!(ct.proctime_columns[0].value, "proc_time");
    let (col, expr) = ct.watermark.expect("watermark");
    assert_eq!(col.value, "event_time");
    assert_eq!(expr.to_string(), "event_time - INTERVAL '5' SECOND");
    assert_eq!(ct.primary_key[0].value, "device_id");
    assert_eq!(
        ct.options,
        vec![
            ("connector".into(), "datagen".into()),
            ("number-of-rows".into(), "10".into())
        ]
    );
}

#[test]
fn create_table_partitioned_by_round_trips() {
    let sql = "CREATE TABLE t (region STRING, day STRING, n INT) PARTITIONED BY (region, day) WITH ('connector' = 'delta', 'path' = '/x')";
    let Statement::CreateTable(ct) = round_trip(sql) else {
        panic!("not a CREATE TABLE")
    };
    let cols: Vec<&str> = ct.partitioned_by.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(cols, vec!["region", "day"]);
    assert_eq!(ct.options.len(), 2);
    let err =
        parse_statement("CREATE TABLE t (a INT) PARTITIONED (a)").expect_err("BY is required");
    assert!(
        err.to_string().contains("expected BY after PARTITIONED"),
        "{err}"
    );
}

#[test]
fn metadata_columns_parse_and_round_trip() {
    let sql = "CREATE TABLE k (v STRING, ts TIMESTAMP(3) METADATA FROM 'timestamp', \
               part INT METADATA FROM 'partition' VIRTUAL, `offset` BIGINT METADATA VIRTUAL, \
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'kafka')";
    let Statement::CreateTable(ct) = round_trip(sql) else {
        panic!("not a CREATE TABLE")
    };
    let md: Vec<Option<(Option<&str>, bool)>> = ct
        .columns
        .iter()
        .map(|c| {
            c.metadata
                .as_ref()
                .map(|m| (m.key.as_deref(), m.is_virtual))
        })
        .collect();
    assert_eq!(
        md,
        vec![
            None,
            Some((Some("timestamp"), false)),
            Some((Some("partition"), true)),
            Some((None, true)),
        ]
    );
    assert!(ct.watermark.is_some());
    let err = parse_statement("CREATE TABLE k (a INT,\n  ts TIMESTAMP(3) METADATA FROM timestamp)")
        .expect_err("the key must be quoted");
    let text = err.to_string();
    assert!(text.contains("quoted metadata key"), "{text}");
    assert!(text.contains("line 2"), "{text}");
    let err = parse_statement("CREATE TABLE k (ts TIMESTAMP(3) METADATA VIRTUAL extra)")
        .expect_err("junk after VIRTUAL");
    assert!(err.to_string().contains("found extra"), "{err}");
}

#[test]
fn window_table_functions_parse_and_round_trip() {
    for sql in [
        "SELECT window_start, region, COUNT(*) FILTER (WHERE temperature > 90) AS hot FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' HOUR)) GROUP BY window_start, window_end, region",
        "SELECT * FROM TABLE(HOP(TABLE readings, DESCRIPTOR(event_time), INTERVAL '5' MINUTE, INTERVAL '15' MINUTE))",
        "SELECT * FROM TABLE(CUMULATE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '1' HOUR))",
        "SELECT * FROM TABLE(SESSION(TABLE readings PARTITION BY device_id, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))",
        "SELECT * FROM TABLE(SESSION(TABLE readings PARTITION BY (device_id, region), DESCRIPTOR(event_time), INTERVAL '5' MINUTE))",
    ] {
        let Statement::Query(q) = round_trip(sql) else { panic!("not a query: {sql}") };
        let text = q.to_string();
        assert!(text.contains("TABLE(readings"), "{text}");
    }
}

#[test]
fn other_statements() {
    assert!(matches!(round_trip("SHOW JOBS"), Statement::ShowJobs));
    assert!(matches!(round_trip("SHOW TABLES"), Statement::ShowTables));
    assert_eq!(
        round_trip("STOP JOB 'j1' WITH SAVEPOINT"),
        Statement::StopJob {
            id: "j1".into(),
            savepoint: true
        }
    );
    assert_eq!(
        round_trip("SET 'parallelism' = '4'"),
        Statement::Set {
            key: "parallelism".into(),
            value: "4".into()
        }
    );
    assert!(matches!(
        round_trip("DESCRIBE readings"),
        Statement::Describe(_)
    ));
    assert!(matches!(
        round_trip("EXPLAIN INSERT INTO s SELECT * FROM t"),
        Statement::Explain(_)
    ));
    assert!(matches!(
        round_trip("CREATE MATERIALIZED VIEW mv AS SELECT a FROM t"),
        Statement::CreateView {
            materialized: true,
            ..
        }
    ));
    assert!(matches!(
        round_trip("DROP VIEW IF EXISTS v"),
        Statement::Drop {
            view: true,
            if_exists: true,
            ..
        }
    ));
    // sqlparser prints the alias before FOR SYSTEM_TIME, which it does
    // not parse back, so this one is only parsed.
    assert!(matches!(
        one("SELECT s.a, d.region FROM s JOIN devices FOR SYSTEM_TIME AS OF s.proc_time AS d ON s.id = d.id"),
        Statement::Query(_)
    ));
    let script = parse_sql("CREATE TABLE a (x INT) WITH ('connector'='blackhole');\n\n;SELECT 1;")
        .expect("script");
    assert_eq!(script.len(), 2);
    assert_eq!(script[1].position, Position::new(3, 2));
}

#[test]
fn syntax_errors_name_line_and_column() {
    let err = parse_sql("SELECT a\nFROM t\nWHERE a >").expect_err("error");
    assert_eq!(err.position(), Some(Position::new(3, 10)), "{err}");
    let err =
        parse_sql("CREATE TABLE t (ts TIMESTAMP(3),\n  WATERMARK FOR ts ts - INTERVAL '1' SECOND)")
            .expect_err("error");
    assert_eq!(err.position(), Some(Position::new(2, 20)), "{err}");
    assert!(err.to_string().contains("expected AS"), "{err}");
    let err = parse_sql("STOP JOB 42").expect_err("error");
    assert!(err.to_string().contains("quoted job id"), "{err}");
    let err = parse_sql("SELECT 1 2").expect_err("error");
    assert_eq!(err.position(), Some(Position::new(1, 10)), "{err}");
}

#[test]
fn statement_sets_parse_in_both_forms_and_round_trip() {
    let execute = "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT x FROM t; \
                   INSERT INTO b SELECT y FROM t; END;";
    let begin = "BEGIN STATEMENT SET;\nINSERT INTO a SELECT x FROM t;\nINSERT INTO b SELECT y FROM t;\nEND;";
    for sql in [execute, begin] {
        let Statement::StatementSet(inserts) = round_trip(sql) else {
            panic!("not a statement set: {sql}")
        };
        let targets: Vec<String> = inserts
            .iter()
            .map(|i| match &i.statement {
                Statement::Insert { table, .. } => table.to_string(),
                other => panic!("not an INSERT: {other}"),
            })
            .collect();
        assert_eq!(targets, ["a", "b"]);
    }
    // Each INSERT keeps its own position: the second starts on line 3.
    let all = parse_sql(begin).expect("parses");
    let Statement::StatementSet(inserts) = &all[0].statement else {
        panic!("not a statement set")
    };
    assert_eq!(
        (inserts[1].position.line, inserts[1].position.column),
        (3, 1)
    );
    // Statements after END are statements of their own.
    let all = parse_sql(&format!("{execute} SHOW JOBS")).expect("parses");
    assert_eq!(all.len(), 2);
    assert!(matches!(all[1].statement, Statement::ShowJobs));
    assert!(matches!(
        &parse_sql(&format!("EXPLAIN {execute}")).expect("parses")[0].statement,
        Statement::Explain(inner) if matches!(**inner, Statement::StatementSet(_))
    ));
}

#[test]
fn statement_set_errors_point_at_the_statement() {
    let err =
        parse_sql("EXECUTE STATEMENT SET BEGIN\nINSERT INTO a SELECT 1;\nDROP TABLE t;\nEND;")
            .expect_err("DROP in a set");
    let text = err.to_string();
    assert!(
        text.contains("only INSERT INTO") && text.contains("DROP"),
        "{text}"
    );
    assert!(text.contains("line 3, column 1"), "{text}");
    let err = parse_sql("BEGIN STATEMENT SET; INSERT INTO a SELECT 1;").expect_err("no END");
    assert!(err.to_string().contains("has no END"), "{err}");
    let err = parse_sql("EXECUTE STATEMENT SET BEGIN END;").expect_err("empty");
    assert!(err.to_string().contains("no INSERT INTO"), "{err}");
}

#[test]
fn governance_statements_round_trip() {
    for sql in [
        "CREATE ROLE analysts",
        "CREATE ROLE IF NOT EXISTS analysts",
        "DROP ROLE IF EXISTS analysts",
        "GRANT analysts TO USER bob",
        "REVOKE analysts FROM USER `bob@example.com`",
        "GRANT SELECT, INSERT ON TABLE per_region TO analysts",
        "REVOKE MODIFY ON SCHEMA public FROM ROLE analysts",
        "GRANT CREATE ON CATALOG runnel TO USER carol",
        "SHOW GRANTS ON VIEW v TO USER bob",
        "ALTER TABLE readings SET TAGS ('sensitivity' = 'low', 'owner' = 'it''s')",
        "ALTER TABLE readings ALTER COLUMN device_id UNSET TAGS ('pii')",
        "ALTER TABLE readings ALTER COLUMN device_id SET MASK mask_id",
        "ALTER TABLE readings ALTER COLUMN device_id DROP MASK",
        "ALTER TABLE readings SET ROW FILTER eu_only ON (region, device_id)",
        "ALTER TABLE readings DROP ROW FILTER",
        "COMMENT ON TABLE readings IS 'raw'",
        "COMMENT ON COLUMN readings.temperature IS NULL",
    ] {
        round_trip(sql);
    }
    let Statement::Governance(g) = one("GRANT ALL PRIVILEGES ON TABLE t TO analysts") else {
        panic!("not a grant")
    };
    let Governance::Privileges { privileges, .. } = *g else {
        panic!("not privileges")
    };
    assert_eq!(privileges.len(), 4);
}

#[test]
fn comments_in_create_table_are_kept() {
    let ct = match round_trip(
        "CREATE TABLE t (a STRING COMMENT 'the a', b INT) COMMENT 'a table' WITH ('connector' = 'datagen')",
    ) {
        Statement::CreateTable(ct) => ct,
        _ => panic!("not a CREATE TABLE"),
    };
    assert_eq!(ct.columns[0].comment.as_deref(), Some("the a"));
    assert_eq!(ct.comment.as_deref(), Some("a table"));
}

#[test]
fn governance_errors_point_at_the_token() {
    for (sql, at, what) in [
        (
            "GRANT SELECT ON TABLES t TO x",
            (1, 17),
            "CATALOG, SCHEMA, TABLE or VIEW",
        ),
        ("GRANT analysts TO bob", (1, 19), "USER after TO"),
        ("ALTER TABLE t ADD COLUMN c INT", (1, 19), "ADD CONSTRAINT"),
        ("ALTER TABLE t RENAME TO u", (1, 15), "SET TAGS"),
        ("ALTER TABLE t SET TAGS ('a' 'b')", (1, 29), "="),
        ("COMMENT ON COLUMN t IS 'x'", (1, 21), "table.column"),
    ] {
        let e = parse_statement(sql).expect_err(sql);
        let p = e.position().expect("position");
        assert_eq!((p.line, p.column), at, "{sql}: {e}");
        assert!(e.to_string().contains(what), "{sql}: {e}");
    }
}
