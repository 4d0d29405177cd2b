//! The server's HTTP port (`--http-listen`, `http_listen`): `/metrics` in
//! Prometheus's text format. Anything else is 404 (the web console is not
//! built yet). A small HTTP/1.1 responder of its own: one GET per
//! connection, answered and closed, so a slow or vanished scraper holds
//! only its own task, never the jobs.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::Server;

/// The longest request head read.
const MAX_HEAD: usize = 16 << 10;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let _ = answer(stream, &server).await;
        });
    }
}

async fn answer(mut stream: tokio::net::TcpStream, server: &Arc<Server>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            let s = Arc::clone(server);
            let body = tokio::task::spawn_blocking(move || metrics_text(&s))
                .await
                .unwrap_or_default();
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            format!("no page at {path}; the metrics are at /metrics\n"),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// One metric family: its name, type, help and samples (labels, value).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The server's metrics in Prometheus's text format.
pub fn metrics_text(server: &Server) -> String {
    let mut families = vec![
        family(
            "runnel_job_rows_read_total",
            "counter",
            "Rows the job's sources read.",
        ),
        family(
            "runnel_job_rows_written_total",
            "counter",
            "Rows the job's sinks wrote.",
        ),
        family(
            "runnel_job_late_rows_dropped_total",
            "counter",
            "Rows dropped as later than the watermark.",
        ),
        family(
            "runnel_job_malformed_records_total",
            "counter",
            "Records the job's sources could not decode.",
        ),
        family(
            "runnel_job_watermark_milliseconds",
            "gauge",
            "The job's lowest watermark, in milliseconds since the epoch.",
        ),
        family(
            "runnel_job_checkpoints_completed_total",
            "counter",
            "Checkpoints the job completed.",
        ),
        family(
            "runnel_job_last_checkpoint_duration_seconds",
            "gauge",
            "How long the job's last checkpoint took.",
        ),
        family(
            "runnel_job_last_checkpoint_size_bytes",
            "gauge",
            "The size of the job's last checkpoint.",
        ),
        family(
            "runnel_expectation_passed_rows_total",
            "counter",
            "Rows that passed an expectation, per job.",
        ),
        family(
            "runnel_expectation_failed_rows_total",
            "counter",
            "Rows that violated an expectation, per job.",
        ),
    ];
    for (job, metrics, expectations) in server.job_metrics() {
        let l = format!("job_id=\"{}\"", label(&job));
        for (name, value) in metrics {
            let (index, value) = match name {
                "rows_read" => (0, value),
                "rows_written" => (1, value),
                "late_rows_dropped" => (2, value),
                "malformed_records" => (3, value),
                "watermark_ms" => (4, value),
                "checkpoints_completed" => (5, value),
                "last_checkpoint_duration_ms" => (6, value / 1e3),
                "last_checkpoint_size_bytes" => (7, value),
                _ => continue,
            };
            families[index].samples.push((l.clone(), value));
        }
        for (table, name, passed, failed) in expectations {
            let l = format!(
                "{l},table=\"{}\",expectation=\"{}\"",
                label(&table),
                label(&name)
            );
            families[8].samples.push((l.clone(), passed as f64));
            families[9].samples.push((l, failed as f64));
        }
    }
    let mut out = String::new();
    server.requests().write(&mut out);
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, value) in f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", f.name);
        }
    }
    out
}

fn family(name: &'static str, kind: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind,
        help,
        samples: Vec::new(),
    }
}
