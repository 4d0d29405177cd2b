//! The Flight SQL server through arrow-flight's own `FlightSqlServiceClient`:
//! statements, errors and their codes, authentication, prepared statements,
//! subscriptions, metadata, TLS, and a restart that keeps the catalog, the
//! views and the jobs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimestampMillisecondType};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetPrimaryKeys, CommandGetTables, SqlInfo};
use arrow_flight::FlightInfo;
use futures::{StreamExt, TryStreamExt};
use runnel_flight::config::{hash_password, ServerConfig, TlsConfig, User};
use runnel_flight::serve::{start, ServerHandle};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

pub(crate) type Client = FlightSqlServiceClient<Channel>;

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "runnel-flight-{name}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub(crate) fn config(dir: &Path) -> ServerConfig {
    let mut c = ServerConfig::new(dir.join("data"));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.keepalive = Duration::from_millis(300);
    c.checkpoint_interval = Duration::from_millis(500);
    c.auth.users.push(User {
        name: "alice".into(),
        password_hash: hash_password("secret").expect("hash"),
        roles: vec![],
    });
    // alice is no administrator: her tables live under the test's
    // directory (its data directory stays out of reach).
    c.security.allowed_paths = vec![dir.display().to_string()];
    c
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub(crate) async fn connect(addr: std::net::SocketAddr) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake("alice", "secret").await.expect("log in");
    client
}

/// Runs `test` against a server with the test configuration in a fresh
/// directory, then stops the server and removes the directory.
pub(crate) fn with_server(name: &str, test: impl AsyncFnOnce(std::net::SocketAddr, PathBuf)) {
    let dir = temp_dir(name);
    let server = start(config(&dir)).expect("server");
    runtime().block_on(test(server.addr, dir.clone()));
    server.stop().expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}

pub(crate) async fn fetch(
    client: &mut Client,
    info: &FlightInfo,
) -> Result<Vec<RecordBatch>, String> {
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        out.push(b.map_err(|e| e.to_string())?);
    }
    // The FlightInfo promised the schema the stream delivered.
    let promised = info
        .clone()
        .try_decode_schema()
        .map_err(|e| e.to_string())?;
    if let Some(b) = out.first() {
        if b.schema().as_ref() != &promised {
            return Err(format!(
                "FlightInfo schema {promised:?} differs from the stream's {:?}",
                b.schema()
            ));
        }
    }
    Ok(out)
}

pub(crate) async fn query(client: &mut Client, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| e.to_string())?;
    fetch(client, &info).await
}

/// True when the client's error text carries the gRPC `code` (clients
/// print either its name or its description).
pub(crate) fn has_code(err: &str, code: tonic::Code) -> bool {
    err.contains(&format!("{code:?}")) || err.contains(code.description())
}

pub(crate) fn strings(batches: &[RecordBatch], col: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = arrow::compute::cast(b.column(col), &DataType::Utf8).expect("cast");
            let s = a.as_string::<i32>();
            (0..s.len())
                .map(|i| s.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(crate) fn ints(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = arrow::compute::cast(b.column(col), &DataType::Int64).expect("cast");
            a.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}

/// A CSV of (name, n) rows and the table over it.
pub(crate) fn csv_table(dir: &Path, rows: &[(&str, i64)]) -> String {
    let path = dir.join("t.csv");
    let mut text = String::from("name,n\n");
    for (name, n) in rows {
        text.push_str(&format!("{name},{n}\n"));
    }
    std::fs::write(&path, text).expect("csv");
    format!(
        "CREATE TABLE t (name STRING, n BIGINT, PRIMARY KEY (name) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'csv.ignore-first-line' = 'true')",
        path.display()
    )
}

const ROWS: &[(&str, i64)] = &[("a", 1), ("b", 2), ("a", 3), ("c", 5), ("b", 7), ("d", 11)];

async fn wait_for_status(client: &mut Client, job: &str, wanted: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = query(
            client,
            &format!("SELECT status FROM system.jobs WHERE job_id = '{job}'"),
        )
        .await
        .expect("system.jobs");
        let status = strings(&rows, 0).pop().unwrap_or_default();
        if wanted.iter().any(|w| status == *w) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn statements_batch_queries_and_error_codes() {
    with_server("statements", async |addr, dir| {
        let mut c = connect(addr).await;
        let created = query(&mut c, &csv_table(&dir, ROWS)).await.expect("create");
        assert_eq!(strings(&created, 0), vec!["created table t"]);

        // GROUP BY over a bounded table: final values, sorted, limited.
        let rows = query(
            &mut c,
            "SELECT name, SUM(n) AS total FROM t GROUP BY name ORDER BY total DESC LIMIT 3",
        )
        .await
        .expect("aggregate");
        let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
        for (name, n) in ROWS {
            *expected.entry(name).or_default() += n;
        }
        let mut sorted: Vec<(&str, i64)> = expected.into_iter().collect();
        sorted.sort_by_key(|r| std::cmp::Reverse(r.1));
        sorted.truncate(3);
        assert_eq!(
            strings(&rows, 0),
            sorted.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        assert_eq!(
            ints(&rows, 1),
            sorted.iter().map(|r| r.1).collect::<Vec<_>>()
        );

        // ORDER BY position with OFFSET.
        let rows = query(&mut c, "SELECT n FROM t ORDER BY 1 LIMIT 2 OFFSET 1")
            .await
            .expect("offset");
        let mut ns: Vec<i64> = ROWS.iter().map(|r| r.1).collect();
        ns.sort();
        assert_eq!(ints(&rows, 0), ns[1..3].to_vec());

        // The system tables know the table and its columns.
        let rows = query(
            &mut c,
            "SELECT table_name, table_type FROM system.tables WHERE table_schema = 'public'",
        )
        .await
        .expect("system.tables");
        assert_eq!(strings(&rows, 0), vec!["t"]);
        assert_eq!(strings(&rows, 1), vec!["TABLE"]);
        let rows = query(&mut c, "SELECT column_name, data_type, ordinal_position FROM system.columns WHERE table_name = 't' ORDER BY ordinal_position")
            .await
            .expect("system.columns");
        assert_eq!(strings(&rows, 0), vec!["name", "n"]);
        assert_eq!(strings(&rows, 1), vec!["STRING", "BIGINT"]);

        // Errors: position and code.
        let err = query(&mut c, "SELECT name,\n  nope FROM t")
            .await
            .expect_err("unknown column");
        assert!(
            has_code(&err, tonic::Code::InvalidArgument) && err.contains("line 2, column 3"),
            "{err}"
        );
        let err = query(&mut c, "SELEC 1").await.expect_err("syntax");
        assert!(
            has_code(&err, tonic::Code::InvalidArgument) && err.contains("line 1, column 1"),
            "{err}"
        );
        let err = query(&mut c, "SELECT * FROM missing_table")
            .await
            .expect_err("unknown table");
        assert!(
            has_code(&err, tonic::Code::NotFound) && err.contains("missing_table"),
            "{err}"
        );
        let err = query(&mut c, "SELECT name FROM t ORDER BY name")
            .await
            .map(|_| ())
            .err();
        assert_eq!(err, None, "ORDER BY on a bounded query works");
        let err = query(&mut c, "CREATE TABLE g (x INT) WITH ('connector' = 'nope')")
            .await
            .expect_err("unknown connector");
        assert!(err.contains("unknown connector 'nope'"), "{err}");
        assert!(has_code(&err, tonic::Code::InvalidArgument), "{err}");
    });
}

/// A statement set sent as one request is one job (kind STATEMENT SET,
/// both tables as its target) that fills both sinks.
#[test]
fn a_statement_set_is_one_request_and_one_job() {
    with_server("statement-set", async |addr, dir| {
        let mut c = connect(addr).await;
        query(&mut c, &csv_table(&dir, ROWS)).await.expect("create");
        for name in ["small", "large"] {
            let sql = format!(
                "CREATE TABLE {name} (name STRING, n BIGINT) WITH ('connector' = 'filesystem', \
                 'path' = '{}', 'format' = 'json')",
                dir.join(name).display()
            );
            query(&mut c, &sql).await.expect("create sink");
        }
        let started = query(
            &mut c,
            "EXECUTE STATEMENT SET BEGIN\n\
             INSERT INTO small SELECT name, n FROM t WHERE n < 5;\n\
             INSERT INTO large SELECT name, n FROM t WHERE n >= 5;\n\
             END;",
        )
        .await
        .expect("the statement set starts");
        let job = strings(&started, 0).pop().expect("a job id");
        assert_eq!(
            wait_for_status(&mut c, &job, &["FINISHED"]).await,
            "FINISHED"
        );
        let rows = query(
            &mut c,
            &format!("SELECT kind, target FROM system.jobs WHERE job_id = '{job}'"),
        )
        .await
        .expect("system.jobs");
        assert_eq!(strings(&rows, 0), ["STATEMENT SET"]);
        assert_eq!(strings(&rows, 1), ["small, large"]);
        for (table, keep) in [("small", true), ("large", false)] {
            let rows = query(&mut c, &format!("SELECT n FROM {table} ORDER BY n"))
                .await
                .expect("read the sink back");
            let expected: Vec<i64> = {
                let mut v: Vec<i64> = ROWS
                    .iter()
                    .map(|r| r.1)
                    .filter(|n| (*n < 5) == keep)
                    .collect();
                v.sort();
                v
            };
            assert_eq!(ints(&rows, 0), expected, "{table}");
        }
    });
}

#[test]
fn credentials_are_checked_on_every_call() {
    with_server("auth", async |addr, _dir| {
        let channel = Channel::from_shared(format!("http://{}", addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut c = FlightSqlServiceClient::new(channel);
        let err = c
            .handshake("alice", "wrong")
            .await
            .expect_err("wrong password");
        assert!(
            has_code(&err.to_string(), tonic::Code::Unauthenticated),
            "{err}"
        );
        let err = c
            .handshake("mallory", "secret")
            .await
            .expect_err("unknown user");
        assert!(
            has_code(&err.to_string(), tonic::Code::Unauthenticated),
            "{err}"
        );
        // No token at all.
        let err = c
            .execute("SELECT 1".into(), None)
            .await
            .expect_err("anonymous");
        assert!(
            has_code(&err.to_string(), tonic::Code::Unauthenticated),
            "{err}"
        );
        // A made-up token.
        c.set_token("token-1-0000000000000000".into());
        let err = c
            .execute("SHOW TABLES".into(), None)
            .await
            .expect_err("forged token");
        assert!(
            has_code(&err.to_string(), tonic::Code::Unauthenticated),
            "{err}"
        );
        // The right password gives a token that works.
        c.clear_token();
        c.handshake("alice", "secret").await.expect("log in");
        let info = c.execute("SHOW TABLES".into(), None).await.expect("info");
        let rows = fetch(&mut c, &info).await.expect("show tables");
        assert!(strings(&rows, 0).contains(&"system.jobs".to_string()));
    });
}

#[test]
fn prepared_statements_bind_parameters_and_run_ddl_as_updates() {
    with_server("prepared", async |addr, dir| {
        let mut c = connect(addr).await;
        query(&mut c, &csv_table(&dir, ROWS)).await.expect("create");
        let mut stmt = c
            .prepare("SELECT name, n FROM t WHERE n > ? ORDER BY n".into(), None)
            .await
            .expect("prepare");
        let names: Vec<String> = stmt
            .dataset_schema()
            .expect("schema")
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, vec!["name", "n"]);
        assert_eq!(stmt.parameter_schema().expect("params").fields().len(), 1);
        for threshold in [2i64, 6] {
            let params = RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("p1", DataType::Int64, false)])),
                vec![Arc::new(Int64Array::from(vec![threshold]))],
            )
            .expect("params");
            stmt.set_parameters(params).expect("bind");
            let info = stmt.execute().await.expect("execute");
            let rows = fetch(&mut c, &info).await.expect("rows");
            let mut expected: Vec<i64> = ROWS
                .iter()
                .map(|r| r.1)
                .filter(|n| *n > threshold)
                .collect();
            expected.sort();
            assert_eq!(ints(&rows, 1), expected, "n > {threshold}");
        }
        stmt.close().await.expect("close");

        // LIMIT ? of a streaming Top-N: prepared before it has a value.
        let mut top = c
            .prepare(
                "SELECT name, n FROM (SELECT name, n FROM t ORDER BY n DESC LIMIT ?)".into(),
                None,
            )
            .await
            .expect("prepare a Top-N with LIMIT ?");
        let params = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("p1", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![2i64]))],
        )
        .expect("params");
        top.set_parameters(params).expect("bind");
        let info = top.execute().await.expect("execute");
        let rows = fetch(&mut c, &info).await.expect("rows");
        let mut got = ints(&rows, 1);
        got.sort();
        let mut all: Vec<i64> = ROWS.iter().map(|r| r.1).collect();
        all.sort();
        assert_eq!(got, all[all.len() - 2..].to_vec(), "the two largest n");
        top.close().await.expect("close");

        // DDL prepares with an empty result schema and runs as an update.
        let mut ddl = c
            .prepare(
                "CREATE VIEW big AS SELECT name FROM t WHERE n > 4".into(),
                None,
            )
            .await
            .expect("prepare ddl");
        assert!(ddl.dataset_schema().expect("schema").fields().is_empty());
        ddl.execute_update().await.expect("update");
        let rows = query(&mut c, "SELECT name FROM big ORDER BY name")
            .await
            .expect("view");
        let mut expected: Vec<String> = ROWS
            .iter()
            .filter(|r| r.1 > 4)
            .map(|r| r.0.to_string())
            .collect();
        expected.sort();
        assert_eq!(strings(&rows, 0), expected);
    });
}

const READINGS: &str = "CREATE TABLE readings (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE, WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND) WITH ('connector' = 'datagen', 'seed' = '7', 'iot.devices' = '20', 'iot.interval-ms' = '1000', 'rows-per-second' = 'RATE')";

/// Starts a continuous query and returns its open stream.
async fn subscribe(c: &mut Client, sql: &str) -> arrow_flight::decode::FlightRecordBatchStream {
    let info = c.execute(sql.into(), None).await.expect("subscribe");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    c.do_get(ticket).await.expect("stream")
}

const WINDOWS: &str = "SELECT window_start, COUNT(*) AS readings FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) GROUP BY window_start, window_end";

#[test]
fn a_subscription_receives_windows_as_they_close_until_cancelled() {
    with_server("subscribe", async |addr, _dir| {
        let mut c = connect(addr).await;
        query(&mut c, &READINGS.replace("RATE", "2000"))
            .await
            .expect("create");
        let mut stream = subscribe(&mut c, WINDOWS).await;
        let mut windows = Vec::new();
        while windows.len() < 3 {
            let batch = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("a window within 30 s")
                .expect("stream open")
                .expect("batch");
            let starts = batch.column(0).as_primitive::<TimestampMillisecondType>();
            let counts = batch.column(1).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                windows.push((starts.value(i), counts.value(i)));
            }
        }
        // 20 devices, one reading a second each: 200 readings per 10 s, in
        // consecutive windows.
        for w in windows.windows(2) {
            assert_eq!(w[1].0 - w[0].0, 10_000, "{windows:?}");
        }
        assert!(windows.iter().all(|w| w.1 == 200), "{windows:?}");
        let job = strings(
            &query(&mut c, "SELECT job_id FROM system.jobs WHERE kind = 'SELECT' AND status = 'RUNNING' AND statement LIKE '%TUMBLE%' AND statement NOT LIKE '%system.jobs%'")
                .await
                .expect("jobs"),
            0,
        );
        assert_eq!(job.len(), 1, "{job:?}");
        // Closing the stream cancels the query's job.
        drop(stream);
        let status = wait_for_status(&mut c, &job[0], &["CANCELED"]).await;
        assert_eq!(status, "CANCELED");

        // A slow source: no window closes for minutes, but the stream gets
        // keep-alive batches (empty) every 300 ms.
        query(&mut c, "DROP TABLE readings").await.expect("drop");
        query(&mut c, &READINGS.replace("RATE", "1"))
            .await
            .expect("slow table");
        let mut stream = subscribe(&mut c, WINDOWS).await;
        let started = Instant::now();
        let mut empty = 0;
        while empty < 3 && started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(b)) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                let b = b.expect("batch");
                assert_eq!(b.num_rows(), 0, "no window can have closed");
                empty += 1;
            }
        }
        assert_eq!(empty, 3, "keep-alive batches");
    });
}

#[test]
fn stopping_the_server_ends_open_subscriptions() {
    let dir = temp_dir("stop");
    let server = start(config(&dir)).expect("server");
    let addr = server.addr;
    runtime().block_on(async move {
        let mut c = connect(addr).await;
        query(&mut c, &READINGS.replace("RATE", "1"))
            .await
            .expect("create");
        let mut stream = subscribe(&mut c, WINDOWS).await;
        // A keep-alive shows the subscription is open.
        let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        assert!(matches!(first, Ok(Some(Ok(_)))), "no keep-alive");
        let started = Instant::now();
        let stopping = tokio::task::spawn_blocking(move || server.stop());
        // The subscription ends because its job stopped, instead of
        // holding the server's shutdown up forever.
        let mut ended = false;
        while let Ok(next) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            if !matches!(next, Some(Ok(_))) {
                ended = true;
                break;
            }
        }
        assert!(ended, "the subscription outlived the server's shutdown");
        stopping.await.expect("join").expect("stop");
        assert!(started.elapsed() < Duration::from_secs(30));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metadata_calls_describe_the_catalog() {
    with_server("metadata", async |addr, dir| {
        let mut c = connect(addr).await;
        query(&mut c, &csv_table(&dir, ROWS)).await.expect("create");
        let info = c
            .get_tables(CommandGetTables {
                catalog: None,
                db_schema_filter_pattern: Some("public".into()),
                table_name_filter_pattern: None,
                table_types: vec![],
                include_schema: true,
            })
            .await
            .expect("tables");
        let rows = fetch(&mut c, &info).await.expect("tables rows");
        assert_eq!(strings(&rows, 2), vec!["t"]);
        let schema_bytes = rows[0].column(4).as_binary::<i32>().value(0).to_vec();
        let schema =
            arrow::ipc::convert::try_schema_from_ipc_buffer(&schema_bytes).expect("schema");
        assert_eq!(schema.field(1).name(), "n");
        assert_eq!(schema.field(1).data_type(), &DataType::Int64);
        assert_eq!(
            schema.field(1).metadata()["ARROW:FLIGHT:SQL:TYPE_NAME"],
            "BIGINT"
        );
        let info = c
            .get_primary_keys(CommandGetPrimaryKeys {
                catalog: None,
                db_schema: None,
                table: "t".into(),
            })
            .await
            .expect("keys");
        let rows = fetch(&mut c, &info).await.expect("keys rows");
        assert_eq!(strings(&rows, 3), vec!["name"]);
        let info = c
            .get_sql_info(vec![
                SqlInfo::FlightSqlServerName,
                SqlInfo::SqlIdentifierQuoteChar,
            ])
            .await
            .expect("sql info");
        let rows = fetch(&mut c, &info).await.expect("sql info rows");
        assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
        let info = c.get_table_types().await.expect("types");
        let types = strings(&fetch(&mut c, &info).await.expect("types rows"), 0);
        for t in ["TABLE", "VIEW", "MATERIALIZED VIEW", "SYSTEM TABLE"] {
            assert!(types.contains(&t.to_string()), "{types:?}");
        }
    });
}

#[test]
fn tls_serves_encrypted_clients_only() {
    let dir = temp_dir("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(dir.join("server.pem"), cert.cert.pem()).expect("write cert");
    std::fs::write(dir.join("server.key"), cert.signing_key.serialize_pem()).expect("write key");
    let mut cfg = config(&dir);
    cfg.tls = Some(TlsConfig {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    });
    let server = start(cfg).expect("server");
    runtime().block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(cert.cert.pem()))
            .domain_name("localhost");
        let channel = Channel::from_shared(format!("https://{}", server.addr))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect with TLS");
        let mut c = FlightSqlServiceClient::new(channel);
        c.handshake("alice", "secret")
            .await
            .expect("log in over TLS");
        let rows = query(&mut c, "SHOW TABLES").await.expect("query over TLS");
        assert!(!rows.is_empty());
        // A plaintext client gets nowhere.
        let plain = Channel::from_shared(format!("http://{}", server.addr))
            .expect("uri")
            .connect()
            .await;
        if let Ok(channel) = plain {
            let mut c = FlightSqlServiceClient::new(channel);
            assert!(c.handshake("alice", "secret").await.is_err());
        }
    });
    server.stop().expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The windows of the `w` view: start → count.
async fn view_windows(c: &mut Client) -> BTreeMap<i64, i64> {
    let rows = query(c, "SELECT window_start, readings FROM w")
        .await
        .expect("view");
    let mut out = BTreeMap::new();
    for b in &rows {
        let s = b.column(0).as_primitive::<TimestampMillisecondType>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert!(
                out.insert(s.value(i), n.value(i)).is_none(),
                "window {} twice",
                s.value(i)
            );
        }
    }
    out
}

#[test]
fn the_catalog_views_and_jobs_survive_a_restart() {
    let dir = temp_dir("restart");
    let server: ServerHandle = start(config(&dir)).expect("server");
    let (totals, windows_before, job) = runtime().block_on(async {
        let mut c = connect(server.addr).await;
        query(&mut c, &csv_table(&dir, ROWS)).await.expect("create");
        query(
            &mut c,
            "CREATE VIEW small AS SELECT name, n FROM t WHERE n < 5",
        )
        .await
        .expect("view");
        let created = query(
            &mut c,
            "CREATE MATERIALIZED VIEW totals AS SELECT name, SUM(n) AS total FROM t GROUP BY name",
        )
        .await
        .expect("mv");
        let totals_job = strings(&created, 0)[0].clone();
        assert_eq!(
            wait_for_status(&mut c, &totals_job, &["FINISHED"]).await,
            "FINISHED"
        );
        let totals = query(&mut c, "SELECT name, total FROM totals ORDER BY name")
            .await
            .expect("totals");
        query(&mut c, &READINGS.replace("RATE", "2000"))
            .await
            .expect("readings");
        let created = query(&mut c, &format!("CREATE MATERIALIZED VIEW w AS {WINDOWS}"))
            .await
            .expect("window view");
        let job = strings(&created, 0)[0].clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut windows = view_windows(&mut c).await;
        while windows.len() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            windows = view_windows(&mut c).await;
        }
        assert!(windows.len() >= 3, "{windows:?}");
        (
            strings(&totals, 0)
                .into_iter()
                .zip(ints(&totals, 1))
                .collect::<Vec<_>>(),
            windows,
            job,
        )
    });
    // Stopping the server stops the jobs with a savepoint.
    server.stop().expect("stop");

    let server = start(config(&dir)).expect("restarted server");
    runtime().block_on(async {
        let mut c = connect(server.addr).await;
        let rows = query(&mut c, "SELECT table_name, table_type FROM system.tables WHERE table_schema = 'public' ORDER BY table_name")
            .await
            .expect("tables");
        assert_eq!(strings(&rows, 0), vec!["readings", "small", "t", "totals", "w"]);
        assert_eq!(
            strings(&rows, 1),
            vec!["TABLE", "VIEW", "TABLE", "MATERIALIZED VIEW", "MATERIALIZED VIEW"]
        );
        // The finished view kept its contents.
        let rows = query(&mut c, "SELECT name, total FROM totals ORDER BY name").await.expect("totals");
        assert_eq!(strings(&rows, 0).into_iter().zip(ints(&rows, 1)).collect::<Vec<_>>(), totals);
        // The plain view still plans.
        let rows = query(&mut c, "SELECT n FROM small ORDER BY n").await.expect("small");
        let mut expected: Vec<i64> = ROWS.iter().map(|r| r.1).filter(|n| *n < 5).collect();
        expected.sort();
        assert_eq!(ints(&rows, 0), expected);
        // The window view's job resumed under its old id, from its savepoint:
        // it keeps every window it had, adds new ones, and counts no
        // reading twice.
        assert_eq!(wait_for_status(&mut c, &job, &["RUNNING"]).await, "RUNNING");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut windows = view_windows(&mut c).await;
        while windows.len() < windows_before.len() + 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            windows = view_windows(&mut c).await;
        }
        assert!(windows.len() >= windows_before.len() + 3, "no new windows: {windows:?}");
        for (start, count) in &windows_before {
            assert_eq!(windows.get(start), Some(count), "window {start} changed");
        }
        let starts: Vec<i64> = windows.keys().copied().collect();
        assert!(starts.windows(2).all(|w| w[1] - w[0] == 10_000), "{starts:?}");
        assert!(windows.values().all(|n| *n == 200), "{windows:?}");
    });
    server.stop().expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn anonymous_access_is_off_unless_configured() {
    let dir = temp_dir("anonymous");
    let mut cfg = config(&dir);
    cfg.auth.users.clear();
    assert!(cfg.check().is_err());
    cfg.auth.allow_anonymous = true;
    let server = start(cfg).expect("server");
    runtime().block_on(async {
        let channel = Channel::from_shared(format!("http://{}", server.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut c = FlightSqlServiceClient::new(channel);
        let info = c
            .execute("SHOW TABLES".into(), None)
            .await
            .expect("anonymous query");
        let rows = fetch(&mut c, &info).await.expect("rows");
        let tables: Vec<String> = rows
            .iter()
            .flat_map(|b| {
                let s = b.column(0).as_string::<i32>();
                (0..s.len())
                    .map(|i| s.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(tables.contains(&"system.metrics".to_string()), "{tables:?}");
        // SQLAlchemy's driver sends "Bearer None" when it has no token: on a
        // server that allows anonymous access that is an anonymous call.
        c.set_token("None".into());
        let info = c
            .execute("SHOW TABLES".into(), None)
            .await
            .expect("a token the server does not know, with anonymous access on");
        assert!(!fetch(&mut c, &info).await.expect("rows").is_empty());
        // A result is fetched once; its ticket is then unknown.
        let again = match c
            .do_get(info.endpoint[0].ticket.clone().expect("ticket"))
            .await
        {
            Ok(s) => s
                .try_collect::<Vec<_>>()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let err = again.expect_err("second fetch");
        assert!(has_code(&err, tonic::Code::NotFound), "{err}");
    });
    server.stop().expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
