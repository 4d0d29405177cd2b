//! The Flight SQL server under input meant to hurt it: operator chains of
//! 100,000 terms, SQL text that is not UTF-8, several statements in one
//! request, floods of wrong passwords. Each gets a clear error with the
//! right status code, and the server keeps answering everyone else.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{Any, CommandStatementQuery, ProstMessageExt};
use arrow_flight::FlightDescriptor;
use arrow_flight::HandshakeRequest;
use base64::Engine as _;
use prost::Message;

use crate::flight::{
    connect, csv_table, fetch, has_code, ints, query, strings, with_server, Client,
};

/// `first op first op ... first`, `terms` times `first` in all.
fn chain(first: &str, op: &str, terms: usize) -> String {
    let mut s = String::with_capacity(terms * (first.len() + op.len()));
    s.push_str(first);
    for _ in 1..terms {
        s.push_str(op);
        s.push_str(first);
    }
    s
}

async fn expect_too_deep(c: &mut Client, sql: &str, what: &str) {
    let err = query(c, sql).await.expect_err(what);
    assert!(
        has_code(&err, tonic::Code::InvalidArgument),
        "{what}: {err}"
    );
    assert!(err.contains("too deep"), "{what}: {err}");
    assert!(err.contains("line 1, column"), "{what}: {err}");
}

#[test]
fn chains_of_100_000_terms_are_refused_and_the_server_keeps_serving() {
    with_server("long-chains", async |addr, dir| {
        let mut c = connect(addr).await;
        query(&mut c, &csv_table(&dir, &[("a", 1)]))
            .await
            .expect("create");
        const HUGE: usize = 100_000;
        for (first, op) in [
            ("n", " + "),
            ("n", " - "),
            ("n", " * "),
            ("name", " || "),
            ("n = 1", " OR "),
            ("n = 1", " AND "),
            ("n", " = "),
        ] {
            let sql = format!("SELECT {} FROM t", chain(first, op, HUGE));
            expect_too_deep(&mut c, &sql, &format!("a chain of {op}")).await;
            // The same chain inside a WHERE clause and inside parentheses.
            let sql = format!(
                "SELECT name FROM t WHERE ({}) IS NOT NULL",
                chain(first, op, HUGE)
            );
            expect_too_deep(&mut c, &sql, &format!("a WHERE chain of {op}")).await;
        }
        // 2,000 and 100,000 parameters: refused when prepared.
        for terms in [2_000, HUGE] {
            let sql = format!("SELECT n{} FROM t", " + ?".repeat(terms));
            let err = c
                .prepare(sql, None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
                .expect_err("too many parameters in one chain");
            assert!(has_code(&err, tonic::Code::InvalidArgument), "{err}");
            assert!(err.contains("too deep"), "{err}");
        }

        // Chains within the limit give the right answer.
        let rows = query(&mut c, &format!("SELECT {} FROM t", chain("n", " + ", 900)))
            .await
            .expect("900 terms of +");
        assert_eq!(ints(&rows, 0), vec![900]);
        let rows = query(
            &mut c,
            &format!("SELECT {} FROM t", chain("name", " || ", 900)),
        )
        .await
        .expect("900 terms of ||");
        assert_eq!(strings(&rows, 0), vec!["a".repeat(900)]);
        let ors = format!("{} OR n = 1", chain("n = 0", " OR ", 400));
        let rows = query(&mut c, &format!("SELECT name FROM t WHERE {ors}"))
            .await
            .expect("400 terms of OR");
        assert_eq!(strings(&rows, 0), vec!["a"]);
        let ands = format!("{} AND n = 0", chain("n = 1", " AND ", 400));
        let rows = query(&mut c, &format!("SELECT name FROM t WHERE {ands}"))
            .await
            .expect("400 terms of AND");
        assert!(strings(&rows, 0).is_empty());

        // A prepared chain of 800 parameters binds and adds up.
        let sql = format!("SELECT n{} FROM t", " + ?".repeat(800));
        let mut stmt = c.prepare(sql, None).await.expect("prepare 800 parameters");
        let fields: Vec<Field> = (1..=800)
            .map(|i| Field::new(format!("p{i}"), DataType::Int64, false))
            .collect();
        let columns = (1..=800)
            .map(|i| Arc::new(Int64Array::from(vec![i as i64])) as _)
            .collect();
        let params = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("params");
        stmt.set_parameters(params).expect("bind");
        let info = stmt.execute().await.expect("execute");
        let rows = fetch(&mut c, &info).await.expect("rows");
        assert_eq!(ints(&rows, 0), vec![1 + 800 * 801 / 2]);

        // Still up, and still answering.
        let rows = query(&mut c, "SELECT n FROM t").await.expect("alive");
        assert_eq!(ints(&rows, 0), vec![1]);
    });
}

#[test]
fn sql_that_is_not_utf8_is_an_invalid_argument_with_its_position() {
    with_server("not-utf8", async |addr, _dir| {
        let mut c = connect(addr).await;
        let token = c.token().cloned().expect("a token from the handshake");
        // CommandStatementQuery with field 1 (the query) holding bytes that
        // are not UTF-8; built by hand, since the client's types are
        // strings.
        let sql: &[u8] = b"SELECT name\nFROM t WHERE name = '\xc3\x28'";
        let mut value = vec![0x0a, sql.len() as u8];
        value.extend_from_slice(sql);
        let any = Any {
            type_url: CommandStatementQuery::type_url().to_string(),
            value: value.into(),
        };
        let mut request = tonic::Request::new(FlightDescriptor::new_cmd(any.encode_to_vec()));
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let err = c
            .inner_mut()
            .get_flight_info(request)
            .await
            .expect_err("not UTF-8");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(
            err.message().contains("line 2, column 22"),
            "{}",
            err.message()
        );
        let rows = query(&mut c, "SHOW TABLES").await.expect("alive");
        assert!(!rows.is_empty());
    });
}

#[test]
fn a_request_of_several_statements_is_refused_and_none_of_them_runs() {
    with_server("scripts", async |addr, dir| {
        let mut c = connect(addr).await;
        query(&mut c, &csv_table(&dir, &[("a", 1)]))
            .await
            .expect("create");
        let err = query(
            &mut c,
            "CREATE VIEW v AS SELECT name FROM t;\n  SELECT n FROM t",
        )
        .await
        .expect_err("two statements");
        assert!(has_code(&err, tonic::Code::InvalidArgument), "{err}");
        assert!(err.contains("holds 2"), "{err}");
        assert!(err.contains("line 2, column 3"), "{err}");
        // The first statement did not run either.
        let err = query(&mut c, "SELECT name FROM v")
            .await
            .expect_err("v was not created");
        assert!(err.contains("v"), "{err}");
        // One statement with a trailing semicolon is one statement.
        let rows = query(&mut c, "SELECT n FROM t;").await.expect("one");
        assert_eq!(ints(&rows, 0), vec![1]);
    });
}

/// A handshake with basic credentials; the server's status when refused.
async fn login(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = FlightServiceClient::new(channel);
    let hello = HandshakeRequest {
        protocol_version: 0,
        payload: Default::default(),
    };
    let mut request = tonic::Request::new(futures::stream::iter(vec![hello]));
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    request.metadata_mut().insert(
        "authorization",
        format!("Basic {credentials}").parse().expect("header"),
    );
    client.handshake(request).await.map(|_| ())
}

#[test]
fn wrong_passwords_back_off_and_logged_in_clients_keep_working() {
    with_server("login-flood", async |addr, dir| {
        let mut c = connect(addr).await;
        query(&mut c, &csv_table(&dir, &[("a", 1)]))
            .await
            .expect("create");
        // Three free failures, then a fourth that starts the back-off.
        for i in 0..4 {
            let err = login(addr, "alice", "wrong").await.expect_err("wrong");
            assert_eq!(
                err.code(),
                tonic::Code::Unauthenticated,
                "attempt {i}: {err}"
            );
        }
        // Now guesses are refused without a check.
        let err = login(addr, "alice", "wrong")
            .await
            .expect_err("backing off");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        assert!(err.message().contains("try again in"), "{err}");
        // Credentials that were verified before are no guess: alice still
        // gets in.
        login(addr, "alice", "secret")
            .await
            .expect("known credentials during the back-off");
        // Once the back-off has passed, a guess is checked again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let err = login(addr, "alice", "wrong").await.expect_err("wrong");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");

        // A flood from several tasks: each login fails fast (wrong password
        // or back-off), and the logged-in client's queries all succeed
        // meanwhile.
        let flood: Vec<_> = (0..4)
            .map(|t| {
                tokio::spawn(async move {
                    let mut codes = Vec::new();
                    for _ in 0..25 {
                        let err = login(addr, &format!("mallory{t}"), "guess")
                            .await
                            .expect_err("mallory has no account");
                        codes.push(err.code());
                    }
                    codes
                })
            })
            .collect();
        for _ in 0..20 {
            let rows = query(&mut c, "SELECT n FROM t")
                .await
                .expect("query during the flood");
            assert_eq!(ints(&rows, 0), vec![1]);
        }
        let mut codes = Vec::new();
        for f in flood {
            codes.extend(f.await.expect("flood task"));
        }
        assert_eq!(codes.len(), 100);
        assert!(
            codes.iter().all(|c| matches!(
                c,
                tonic::Code::Unauthenticated
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Unavailable
            )),
            "{codes:?}"
        );
        assert!(
            codes.contains(&tonic::Code::ResourceExhausted),
            "the flood never backed off: {codes:?}"
        );
    });
}

#[test]
fn a_client_cannot_ask_for_more_parallelism_than_the_server_allows() {
    with_server("max-parallelism", async |addr, _dir| {
        let mut c = connect(addr).await;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let limit = 4 * cores;
        let err = query(&mut c, &format!("SET 'parallelism' = '{}'", limit + 1))
            .await
            .expect_err("over the limit");
        assert!(has_code(&err, tonic::Code::InvalidArgument), "{err}");
        assert!(err.contains(&format!("at most {limit}")), "{err}");
        query(&mut c, &format!("SET 'parallelism' = '{limit}'"))
            .await
            .expect("at the limit");
    });
}
