//! The `runnel` command-line tool's logic (the binary only calls [`main`]).
//!
//! `runnel run FILE.sql` executes a script: DDL builds the catalog, each
//! `INSERT INTO` or `SELECT` starts a job, and the tool waits until every
//! job has finished (bounded sources) or Ctrl-C, showing a progress line.
//! `runnel explain FILE.sql` prints the plan of every query instead.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_engine::connector::TableDescriptor;
use runnel_engine::EngineError;
use runnel_sql::error::{Position, SqlError};
use runnel_sql::lower::SinkTarget;
use runnel_sql::parser::{parse_sql, Located, Statement};
use runnel_sql::plan::Plan;
use runnel_sql::session::{Outcome, PreparedJob, Session};

use crate::jobs::{JobManager, JobStatus};
use crate::statements::statement_text;

const USAGE: &str = "usage:
  runnel run FILE.sql [--parallelism N] [--checkpoint-dir DIR]
                                            run the statements of FILE.sql; with a
                                            checkpoint directory, jobs take checkpoints
                                            and resume from the latest one there
  runnel run FILE.sql --restore DIR         the same: resume from the checkpoints in DIR
  runnel run FILE.sql --http-listen HOST:PORT
                                            also serve /metrics and the web console of the
                                            script's jobs there (no login: bind it to
                                            127.0.0.1 unless others may see them)
  runnel explain FILE.sql                   print the plan of every query in FILE.sql
  runnel serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR]
               [--parallelism N] [--allow-anonymous] [--allow-path DIR]
               [--http-listen HOST:PORT|off]
                                            serve Flight SQL (default 127.0.0.1:50051);
                                            RUNNEL_CONFIG, RUNNEL_LISTEN and RUNNEL_DATA_DIR
                                            set the same from the environment
  runnel hash-password                      read a password from standard input and print
                                            its hash for the configuration's [[auth.users]]
  runnel --version";

/// Runs the command line `args` (without the program name).
pub fn main(args: Vec<String>) -> ExitCode {
    let result = match args.first().map(String::as_str) {
        Some("--version") | Some("version") => {
            println!("runnel {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("run") => cli_file(&args).and_then(|(file, o)| run_file(&file, &o, false)),
        Some("explain") => cli_file(&args).and_then(|(file, o)| run_file(&file, &o, true)),
        Some("serve") if args.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("serve") => crate::serve::serve_cli(&args[1..]),
        Some("hash-password") => hash_password_cli(),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// `runnel hash-password`: one line from standard input, hashed.
fn hash_password_cli() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    println!("{}", crate::config::hash_password(password)?);
    Ok(())
}

/// Command-line settings of `run` and `explain`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--parallelism N`.
    pub parallelism: Option<usize>,
    /// `--checkpoint-dir DIR` / `--restore DIR`.
    pub checkpoint_dir: Option<String>,
    /// `--http-listen HOST:PORT`: where to serve `/metrics` and the console.
    pub http_listen: Option<std::net::SocketAddr>,
}

fn cli_file(args: &[String]) -> Result<(String, RunOptions), String> {
    let file = args.get(1).cloned().ok_or_else(|| USAGE.to_string())?;
    let mut options = RunOptions::default();
    let mut rest = args[2..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--parallelism" | "-p" => {
                let v = rest
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n: &usize| *n > 0);
                options.parallelism = Some(v.ok_or("--parallelism needs a positive number")?);
            }
            "--checkpoint-dir" | "--restore" => {
                let dir = rest
                    .next()
                    .ok_or_else(|| format!("{a} needs a directory"))?;
                options.checkpoint_dir = Some(dir.clone());
            }
            "--http-listen" => {
                let addr = rest
                    .next()
                    .ok_or("--http-listen needs HOST:PORT, e.g. 127.0.0.1:8081")?;
                let parsed = addr.parse().map_err(|_| {
                    format!("--http-listen: '{addr}' is not HOST:PORT (e.g. 127.0.0.1:8081)")
                })?;
                options.http_listen = Some(parsed);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok((file, options))
}

/// Renders an error with the file, line and column, the offending line and a caret.
pub fn render_error(file: &str, sql: &str, err: &SqlError) -> String {
    let Some(pos) = err.position().filter(|p| !p.is_unknown()) else {
        return format!("{file}: {err}");
    };
    let line = sql
        .lines()
        .nth(pos.line.saturating_sub(1) as usize)
        .unwrap_or("");
    let (shown, caret_at) = excerpt(line, pos.column.saturating_sub(1) as usize);
    let caret = " ".repeat(caret_at);
    format!(
        "{file}:{}:{}: {err}\n  {shown}\n  {caret}^",
        pos.line, pos.column
    )
}

/// Characters of context shown on each side of an error's column.
const EXCERPT_CONTEXT: usize = 60;

/// The part of `line` around character `column` (0-based), cut with `...`
/// when the line is long, and where the column falls in it.
fn excerpt(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let start = column.saturating_sub(EXCERPT_CONTEXT);
    let end = (column + EXCERPT_CONTEXT).min(chars.len());
    if start == 0 && end == chars.len() {
        return (line.to_string(), column);
    }
    let mut shown = String::new();
    let mut caret_at = column - start;
    if start > 0 {
        shown.push_str("...");
        caret_at += 3;
    }
    shown.extend(&chars[start..end.max(start)]);
    if end < chars.len() {
        shown.push_str("...");
    }
    (shown, caret_at)
}

/// Where a bare SELECT of `runnel run` goes: the `print` connector.
pub fn print_sink(plan: &Plan) -> SinkTarget {
    let schema = Arc::new(plan.scope.schema());
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != runnel_engine::types::ROW_KIND_COLUMN)
        .map(|f| f.as_ref().clone())
        .collect();
    SinkTarget::Table(TableDescriptor {
        name: "select".into(),
        schema: Arc::new(arrow::datatypes::Schema::new(fields)),
        options: [("connector".to_string(), "print".to_string())]
            .into_iter()
            .collect(),
        watermark: None,
        primary_key: vec![],
        partition_keys: vec![],
    })
}

/// Executes (or, with `explain_only`, explains) the statements of `file`
/// and waits for the jobs; the error is the text to show the user.
pub fn run_file(file: &str, options: &RunOptions, explain_only: bool) -> Result<(), String> {
    let sql = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let stmts = parse_sql(&sql).map_err(|e| render_error(file, &sql, &e))?;
    let mut session = Session::new(runnel_connectors::default_registry());
    if let Some(p) = options.parallelism {
        session
            .set_option("parallelism", &p.to_string(), Position::default())
            .map_err(|e| e.to_string())?;
    }
    if let Some(d) = &options.checkpoint_dir {
        session
            .set_option("state.checkpoints.dir", d, Position::default())
            .map_err(|e| e.to_string())?;
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        // A second Ctrl-C while stopping kills the process the usual way.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let jobs = Arc::new(Mutex::new(JobManager::new()));
    let expectations = crate::http::ScriptExpectations::default();
    let _http = match options.http_listen {
        Some(addr) if !explain_only => Some(serve_console(
            addr,
            Arc::clone(&jobs),
            Arc::clone(&expectations),
        )?),
        _ => None,
    };
    for (i, stmt) in stmts.iter().enumerate() {
        let text = statement_text(&sql, &stmts, i);
        let stmt = if explain_only
            && matches!(
                stmt.statement,
                Statement::Insert { .. } | Statement::Query(_) | Statement::StatementSet(_)
            ) {
            Located {
                statement: Statement::Explain(Box::new(stmt.statement.clone())),
                position: stmt.position,
            }
        } else {
            stmt.clone()
        };
        let outcome = session
            .execute(&stmt, text, &print_sink)
            .map_err(|e| render_error(file, &sql, &e))?;
        match outcome {
            Outcome::Message(m) => eprintln!("[ok] {m}"),
            Outcome::Rows(batch) => {
                let table = arrow::util::pretty::pretty_format_batches(&[batch])
                    .map_err(|e| e.to_string())?;
                println!("{table}");
            }
            Outcome::Explain(text) => println!("{text}"),
            Outcome::Job(job) => {
                if job.finish.is_some() {
                    return Err(render_error(
                        file,
                        &sql,
                        &SqlError::plan(
                            "runnel run prints rows as they arrive, so ORDER BY and LIMIT are not applied here; run the query over Flight SQL (runnel serve), which sorts bounded results",
                            stmt.position,
                        ),
                    ));
                }
                let id = job.id.clone();
                start_job(file, &mut lock(&jobs), *job)?;
                expectations
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), session.job_expectation_counters(&id));
            }
            Outcome::StopJob { id, savepoint } => {
                if savepoint && session.option("state.checkpoints.dir").is_none() {
                    eprintln!("[warn] {id} takes no checkpoints (set 'state.checkpoints.dir'); stopping it without a savepoint");
                } else if savepoint {
                    eprintln!("[job] stopping {id}; the checkpoint it takes as it stops is the savepoint to resume from");
                }
                lock(&jobs).stop(&id);
            }
        }
    }
    wait_all(&jobs, &interrupted)
}

fn lock(jobs: &Mutex<JobManager>) -> std::sync::MutexGuard<'_, JobManager> {
    jobs.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `/metrics` and the console of the script's jobs on `addr`, on a
/// thread of its own, until the returned runtime is dropped.
fn serve_console(
    addr: std::net::SocketAddr,
    jobs: Arc<Mutex<JobManager>>,
    expectations: crate::http::ScriptExpectations,
) -> Result<tokio::runtime::Runtime, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("runnel-http")
        .build()
        .map_err(|e| format!("cannot start the HTTP port: {e}"))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| format!("cannot listen for HTTP on {addr}: {e}"))?;
    let at = listener
        .local_addr()
        .map_err(|e| format!("cannot read the HTTP address: {e}"))?;
    let user = std::env::var("USER").unwrap_or_else(|_| "local".into());
    runtime.spawn(crate::http::serve_script(
        listener,
        jobs,
        user,
        expectations,
    ));
    eprintln!("[http] console at http://{at}/ and metrics at http://{at}/metrics");
    Ok(runtime)
}

/// Starts a planned job and says so, and where it resumes from.
fn start_job(file: &str, jobs: &mut JobManager, job: PreparedJob) -> Result<(), String> {
    jobs.add(&job);
    let handle = jobs
        .start(&job.id, job.graph)
        .map_err(|e| format!("{file}: cannot start {}: {e}", job.id))?;
    eprintln!("[job] {} started: {}", job.id, job.statement);
    match handle.restored_from() {
        Some(cp) if cp.finished => eprintln!(
            "[job] {} had already finished (checkpoint {} in {}); nothing is read again",
            job.id,
            cp.id,
            cp.dir.display()
        ),
        Some(cp) => eprintln!(
            "[job] {} resumes from checkpoint {} in {}",
            job.id,
            cp.id,
            cp.dir.display()
        ),
        None => {}
    }
    Ok(())
}

/// Waits for every job, printing a progress line; Ctrl-C stops them.
fn wait_all(shared: &Mutex<JobManager>, interrupted: &AtomicBool) -> Result<(), String> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut stopping = false;
    let mut failures = Vec::new();
    loop {
        // Short naps, so that a script ends as soon as its jobs do.
        std::thread::sleep(Duration::from_millis(5));
        // Held for one round: the console reads the jobs in between.
        let mut jobs = lock(shared);
        if jobs.running().is_empty() {
            break;
        }
        if interrupted.load(Ordering::SeqCst) && !stopping {
            stopping = true;
            let ids: Vec<String> = jobs
                .running()
                .iter()
                .map(|(id, _)| id.to_string())
                .collect();
            eprintln!("\n[stop] Ctrl-C: stopping {} job(s)", ids.len());
            for id in &ids {
                jobs.stop(id);
            }
        }
        let interval = if tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(2)
        };
        if last_print.elapsed() >= interval {
            last_print = Instant::now();
            let line: Vec<String> = jobs
                .running()
                .iter()
                .map(|(id, h)| format!("[{id}] {}", h.progress()))
                .collect();
            if tty {
                eprint!("\r\x1b[2K{} ({:.0?})", line.join("  "), started.elapsed());
            } else {
                eprintln!("{} ({:.0?})", line.join("  "), started.elapsed());
            }
        }
        let clear = if tty { "\r\x1b[2K" } else { "" };
        for id in jobs.reap_all() {
            let Some(job) = jobs.get(&id) else {
                continue;
            };
            let error = match job.status() {
                JobStatus::Failed(e) => Some(e.to_string()),
                // Nothing here cancels a job, so an engine-side
                // cancellation is a failure to report.
                JobStatus::Cancelled => Some(EngineError::Cancelled.to_string()),
                _ => None,
            };
            match error {
                None => {
                    let progress = job.progress().map(|p| p.to_string()).unwrap_or_default();
                    // Ctrl-C stops jobs without draining their open windows.
                    let how = if stopping { "stopped" } else { "finished" };
                    eprintln!("{clear}[job] {id} {how}: {progress}");
                }
                Some(e) => {
                    eprintln!("{clear}[job] {id} failed: {e}");
                    failures.push(format!("{id}: {e}"));
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} job(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_around_the_error() {
        let line = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let (shown, caret) = excerpt(&line, 500);
        assert_eq!(shown.chars().nth(caret), Some('X'));
        assert!(
            shown.starts_with("...") && shown.ends_with("..."),
            "{shown}"
        );
        assert_eq!(shown.len(), 3 + 2 * EXCERPT_CONTEXT + 3);
        let (shown, caret) = excerpt("SELECT x", 7);
        assert_eq!((shown.as_str(), caret), ("SELECT x", 7));
    }

    #[test]
    fn errors_show_file_line_column_and_a_caret() {
        let sql =
            "CREATE TABLE t (a INT) WITH ('connector' = 'blackhole');\nSELECT a,\n       b FROM t;";
        let stmts = parse_sql(sql).expect("parses");
        let mut session = Session::new(runnel_connectors::default_registry());
        session
            .execute(&stmts[0], "", &print_sink)
            .map(|_| ())
            .expect("create");
        let err = match session.execute(&stmts[1], "", &print_sink) {
            Err(e) => e,
            Ok(_) => panic!("expected an unknown column error"),
        };
        let text = render_error("q.sql", sql, &err);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("q.sql:3:8: "), "{text}");
        assert!(lines[0].contains("unknown column 'b'"), "{text}");
        assert_eq!(lines[1], "         b FROM t;");
        assert_eq!(lines[2], "         ^");
    }
}
