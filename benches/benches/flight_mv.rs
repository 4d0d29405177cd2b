//! Load on the Flight SQL server: many clients reading one materialized
//! view while its job keeps updating it.
//!
//! The bench starts a server in-process (anonymous access, data in a temp
//! directory), creates an unbounded `datagen` table of IoT readings and a
//! materialized view counting them per device and per one-minute window,
//! and waits until the view has rows. Then `RUNNEL_BENCH_CLIENTS` clients
//! (default 50; tokio tasks, each with a connection of its own) loop
//! `SELECT ... FROM the view` for `RUNNEL_BENCH_SECONDS` seconds (default
//! 20). One query is GetFlightInfo plus DoGet of the whole result; its
//! latency goes into the task's histogram (with its two calls in two more)
//! and the histograms are merged at the end.
//!
//! The datagen source runs at 20,000 rows/s with 200 devices reporting once
//! a second of event time, so event time advances 100 s per second of wall
//! time: a one-minute window closes about every 0.6 s and adds 200 rows to
//! the view. The view, and so every result, grows during the run (about
//! 330 rows/s); the report gives the mean result size next to the latencies.
//!
//! A failed query, a query that takes longer than 30 s and an empty result
//! all count as errors; the bench prints the first few, still writes its
//! report, and exits with status 1 when there was any.
//!
//! Output: a summary on stdout and the same figures as JSON in
//! `$CARGO_TARGET_DIR/flight-bench.json` (the workspace's `target/` when the
//! variable is unset).
//!
//! `RUNNEL_BENCH_QUERY` replaces the query (say, with `ORDER BY ... LIMIT
//! 10`), and `RUNNEL_BENCH_SNAPSHOT=0` runs every query as a job
//! (`snapshot_queries = false`) instead of from the view's snapshot.
//!
//! Run: `cargo bench -p runnel-benches --bench flight_mv`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::StreamExt;
use hdrhistogram::Histogram;
use runnel_flight::config::ServerConfig;
use runnel_flight::serve::start;
use tonic::transport::Channel;

type Client = FlightSqlServiceClient<Channel>;

const TABLE: &str = "CREATE TABLE readings (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE, WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND) WITH ('connector' = 'datagen', 'seed' = '7', 'iot.devices' = '200', 'iot.interval-ms' = '1000', 'rows-per-second' = '20000')";

const VIEW: &str = "CREATE MATERIALIZED VIEW per_device AS SELECT window_start, device_id, COUNT(*) AS readings, AVG(temperature) AS avg_temp FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, device_id";

/// What every client runs in a loop.
const QUERY: &str = "SELECT window_start, device_id, readings, avg_temp FROM per_device";

/// A query slower than this counts as an error.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Error messages kept for the report (the count covers all of them).
const KEPT_ERRORS: usize = 5;

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} must be a positive integer, not '{v}'")),
        Err(_) => Ok(default),
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runnel-bench-flight-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn report_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // The workspace's target directory: benches/ sits at its root.
            let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target.join("flight-bench.json")
}

async fn connect(addr: std::net::SocketAddr) -> Result<Client, String> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    Ok(FlightSqlServiceClient::new(channel))
}

/// GetFlightInfo, then DoGet of the whole result: the number of rows and
/// how long GetFlightInfo took.
async fn run(client: &mut Client, sql: &str) -> Result<(usize, Duration), String> {
    let started = Instant::now();
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| format!("GetFlightInfo: {e}"))?;
    let planned = started.elapsed();
    let mut rows = 0;
    for endpoint in &info.endpoint {
        let ticket = endpoint
            .ticket
            .clone()
            .ok_or("an endpoint without a ticket")?;
        let mut stream = client
            .do_get(ticket)
            .await
            .map_err(|e| format!("DoGet: {e}"))?;
        while let Some(batch) = stream.next().await {
            rows += batch.map_err(|e| format!("DoGet stream: {e}"))?.num_rows();
        }
    }
    Ok((rows, planned))
}

/// What one client measured.
struct ClientStats {
    /// Whole queries.
    latency_us: Histogram<u64>,
    /// Their GetFlightInfo part.
    info_us: Histogram<u64>,
    /// Their DoGet part.
    get_us: Histogram<u64>,
    rows: u64,
    errors: u64,
    messages: Vec<String>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn fail(stats: &mut ClientStats, message: String) {
    stats.errors += 1;
    if stats.messages.len() < KEPT_ERRORS {
        stats.messages.push(message);
    }
}

async fn client_loop(addr: std::net::SocketAddr, until: Instant, query: String) -> ClientStats {
    let mut stats = ClientStats {
        latency_us: histogram(),
        info_us: histogram(),
        get_us: histogram(),
        rows: 0,
        errors: 0,
        messages: Vec::new(),
    };
    let mut client = match connect(addr).await {
        Ok(c) => c,
        Err(e) => {
            fail(&mut stats, e);
            return stats;
        }
    };
    while Instant::now() < until {
        let started = Instant::now();
        let outcome = tokio::time::timeout(QUERY_TIMEOUT, run(&mut client, &query)).await;
        let took = started.elapsed();
        match outcome {
            Ok(Ok((0, _))) => fail(&mut stats, "an empty result".into()),
            Ok(Ok((rows, planned))) => {
                stats.latency_us.saturating_record(micros(took));
                stats.info_us.saturating_record(micros(planned));
                stats.get_us.saturating_record(micros(took - planned));
                stats.rows += rows as u64;
            }
            Ok(Err(e)) => {
                fail(&mut stats, e);
                // Do not spin on a server that fails fast.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => fail(&mut stats, format!("no result within {QUERY_TIMEOUT:?}")),
        }
    }
    stats
}

fn main() -> Result<(), String> {
    let clients = env_number("RUNNEL_BENCH_CLIENTS", 50)?;
    let seconds = env_number("RUNNEL_BENCH_SECONDS", 20)?;
    let query = std::env::var("RUNNEL_BENCH_QUERY").unwrap_or_else(|_| QUERY.to_string());
    let snapshot = std::env::var("RUNNEL_BENCH_SNAPSHOT").map_or(true, |v| v != "0");

    let dir = temp_dir();
    let mut config = ServerConfig::new(dir.join("data"));
    config.listen = "127.0.0.1:0"
        .parse()
        .map_err(|e| format!("bad address: {e}"))?;
    config.auth.allow_anonymous = true;
    config.checkpoint_interval = Duration::from_secs(5);
    config.snapshot_queries = snapshot;
    let server = start(config)?;
    let addr = server.addr;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?;

    let client_query = query.clone();
    let outcome = runtime.block_on(async move {
        let query = client_query;
        let mut admin = connect(addr).await?;
        run(&mut admin, TABLE).await?;
        run(&mut admin, VIEW).await?;
        // The view has rows once the first window closed.
        let deadline = Instant::now() + Duration::from_secs(30);
        let rows_at_start = loop {
            let (rows, _) = run(&mut admin, &query).await?;
            if rows > 0 {
                break rows;
            }
            if Instant::now() > deadline {
                return Err("the view had no rows after 30 s".to_string());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };

        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(client_loop(addr, until, query.clone())))
            .collect();
        let mut all = Vec::with_capacity(tasks.len());
        for task in tasks {
            all.push(
                task.await
                    .map_err(|e| format!("a client task failed: {e}"))?,
            );
        }
        let elapsed = started.elapsed();
        let (rows_at_end, _) = run(&mut admin, &query).await?;
        Ok::<_, String>((all, elapsed, rows_at_start, rows_at_end))
    });
    drop(runtime);
    let stopped = server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let (all, elapsed, rows_at_start, rows_at_end) = outcome?;
    stopped.map_err(|e| format!("the server did not stop cleanly: {e}"))?;

    let mut latency = histogram();
    let mut info = histogram();
    let mut get = histogram();
    let mut rows = 0u64;
    let mut errors = 0u64;
    let mut messages = Vec::new();
    for s in &all {
        for (all, one) in [
            (&mut latency, &s.latency_us),
            (&mut info, &s.info_us),
            (&mut get, &s.get_us),
        ] {
            all.add(one)
                .map_err(|e| format!("cannot merge histograms: {e:?}"))?;
        }
        rows += s.rows;
        errors += s.errors;
        for m in &s.messages {
            if messages.len() < KEPT_ERRORS {
                messages.push(m.clone());
            }
        }
    }
    let queries = latency.len();
    let secs = elapsed.as_secs_f64();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p90, p99) = (ms(&latency, 0.5), ms(&latency, 0.9), ms(&latency, 0.99));
    let max = latency.max() as f64 / 1000.0;
    let min = latency.min() as f64 / 1000.0;
    let (info50, info99) = (ms(&info, 0.5), ms(&info, 0.99));
    let (get50, get99) = (ms(&get, 0.5), ms(&get, 0.99));
    let mean_rows = if queries > 0 {
        rows as f64 / queries as f64
    } else {
        0.0
    };

    println!("Flight SQL load on a materialized view");
    println!("  clients:                {clients}");
    println!("  from snapshots:         {snapshot}");
    println!("  duration:               {secs:.1} s");
    println!("  queries:                {queries}");
    println!("  queries/s:              {:.1}", queries as f64 / secs);
    println!("  latency p50:            {p50:.2} ms");
    println!("  latency p90:            {p90:.2} ms");
    println!("  latency p99:            {p99:.2} ms");
    println!("  latency max:            {max:.2} ms");
    println!("  latency min:            {min:.2} ms");
    println!("  GetFlightInfo p50/p99:  {info50:.2} / {info99:.2} ms");
    println!("  DoGet p50/p99:          {get50:.2} / {get99:.2} ms");
    println!("  errors:                 {errors}");
    println!("  rows per result:        {mean_rows:.0} (mean)");
    println!("  view rows at start:     {rows_at_start}");
    println!("  view rows at end:       {rows_at_end}");
    for m in &messages {
        println!("  error:                  {m}");
    }

    let report = serde_json::json!({
        "clients": clients,
        "snapshot_queries": snapshot,
        "query": query,
        "duration_s": secs,
        "queries": queries,
        "queries_per_s": queries as f64 / secs,
        "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "max": max, "min": min },
        "get_flight_info_ms": { "p50": info50, "p99": info99 },
        "do_get_ms": { "p50": get50, "p99": get99 },
        "errors": errors,
        "error_samples": messages,
        "mean_rows_per_result": mean_rows,
        "view_rows_at_start": rows_at_start,
        "view_rows_at_end": rows_at_end,
    });
    let path = report_path();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("  report:                 {}", path.display());

    if errors > 0 {
        eprintln!("flight_mv: {errors} queries failed");
        std::process::exit(1);
    }
    Ok(())
}
