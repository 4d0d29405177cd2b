//! The service through a real Flight SQL client: prepared statements bind
//! their parameters as values, so text that looks like SQL stays data.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::FlightInfo;
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::config::ServerConfig;
use crate::serve::start;

type Client = FlightSqlServiceClient<Channel>;
type TestResult = Result<(), Box<dyn std::error::Error>>;

const INJECTION: &str = "'; DROP TABLE t; --";
const QUOTED: &str = "it's \"quoted\"";

async fn fetch(
    c: &mut Client,
    info: &FlightInfo,
) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error>> {
    let ticket = info
        .endpoint
        .first()
        .and_then(|e| e.ticket.clone())
        .ok_or("a ticket")?;
    Ok(c.do_get(ticket).await?.try_collect().await?)
}

/// Binds `values` (one STRING and one BIGINT) and runs the statement.
async fn run(
    c: &mut Client,
    stmt: &mut arrow_flight::sql::client::PreparedStatement<Channel>,
    s: &str,
    n: i64,
) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error>> {
    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("p1", DataType::Utf8, false),
            Field::new("p2", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec![s])),
            Arc::new(Int64Array::from(vec![n])),
        ],
    )?;
    stmt.set_parameters(params)?;
    let info = stmt.execute().await?;
    fetch(c, &info).await
}

fn strings(batches: &[RecordBatch], col: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column(col).as_string::<i32>();
            (0..a.len())
                .map(|i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn parameters_are_data_however_they_are_quoted() -> TestResult {
    let dir = std::env::temp_dir().join(format!("runnel-flight-params-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join("t.csv");
    std::fs::write(&csv, "name,n\na,1\n\"it's \"\"quoted\"\"\",2\n")?;
    let mut config = ServerConfig::new(dir.join("data"));
    config.listen = "127.0.0.1:0".parse()?;
    config.auth.allow_anonymous = true;
    // The anonymous user is no administrator: its tables live under
    // allowed roots.
    config.security.allowed_paths = vec![dir.display().to_string()];
    let server = start(config)?;
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async move {
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let mut c = FlightSqlServiceClient::new(channel);
        let create = format!(
            "CREATE TABLE t (name STRING, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'csv.ignore-first-line' = 'true')",
            csv.display()
        );
        let info = c.execute(create, None).await?;
        fetch(&mut c, &info).await?;

        // The parameters are typed from their places: a STRING in the
        // select list, the BIGINT of `n`.
        let mut stmt = c
            .prepare("SELECT ? AS s, name FROM t WHERE n = ?".into(), None)
            .await?;
        let types: Vec<DataType> = stmt
            .parameter_schema()?
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(types, vec![DataType::Utf8, DataType::Int64]);
        for (text, n) in [(INJECTION, 1), (QUOTED, 2)] {
            let rows = run(&mut c, &mut stmt, text, n).await?;
            assert_eq!(strings(&rows, 0), vec![text.to_string()], "{text}");
        }
        // The quoted text compared with a row that holds it.
        let rows = run(&mut c, &mut stmt, QUOTED, 2).await?;
        assert_eq!(strings(&rows, 1), vec![QUOTED.to_string()]);
        let mut by_name = c
            .prepare("SELECT n FROM t WHERE name = ? OR name = ?".into(), None)
            .await?;
        let params = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("p1", DataType::Utf8, false),
                Field::new("p2", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec![QUOTED])),
                Arc::new(StringArray::from(vec![INJECTION])),
            ],
        )?;
        by_name.set_parameters(params)?;
        let info = by_name.execute().await?;
        let rows = fetch(&mut c, &info).await?;
        let ns: Vec<i64> = rows
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ns, vec![2]);

        // Too few values is the client's mistake, with the count in it.
        let one = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("p1", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )?;
        by_name.set_parameters(one)?;
        let err = by_name.execute().await.err().ok_or("one value for two")?;
        let text = err.to_string();
        assert!(
            text.contains("the statement has 2 parameter(s) but 1 were bound"),
            "{text}"
        );

        // The table is still there, with both rows.
        let info = c.execute("SELECT name FROM t".into(), None).await?;
        let rows = fetch(&mut c, &info).await?;
        assert_eq!(strings(&rows, 0).len(), 2);
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}
