//! Checkpoints and Delta tables on object storage, against a real
//! S3-protocol server: moto's server mode (from PyPI, in the tests' venv),
//! started on 127.0.0.1 by each test. The Delta kill test on S3 is in
//! `kill` (it reuses that module's machinery); here, what happens when the
//! server stops answering in the middle of a job.
//!
//! moto is chosen because it is pure Python (pip-installed with the other
//! test clients, no binary to build), keeps its objects in memory, and
//! honours conditional puts, which Delta commits on S3 rely on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runnel_engine::runtime::Job;
use runnel_sql::session::{Outcome, Session};
use runnel_state::CheckpointStore;

/// A moto S3 server on 127.0.0.1, stopped when dropped.
pub struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts a server and creates `bucket` in it.
    pub fn start(bucket: &str) -> Self {
        let python = crate::delta::python();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto's S3 server");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start listening");
            std::thread::sleep(Duration::from_millis(100));
        }
        server.create_bucket(bucket);
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `s3.*` options of a table or a session for this server.
    pub fn options(&self) -> Vec<(String, String)> {
        vec![
            ("s3.endpoint".into(), self.endpoint()),
            ("s3.access-key".into(), "runnel".into()),
            ("s3.secret-key".into(), "runnel-secret".into()),
        ]
    }

    /// The options as `SET` statements.
    pub fn set_statements(&self) -> String {
        self.options()
            .iter()
            .map(|(k, v)| format!("SET '{k}' = '{v}';\n"))
            .collect()
    }

    /// The options as a table's WITH entries (with a leading comma).
    pub fn with_options(&self) -> String {
        self.options()
            .iter()
            .map(|(k, v)| format!(", '{k}' = '{v}'"))
            .collect()
    }

    /// The environment the Python readers use for this server.
    pub fn reader_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), "runnel".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "runnel-secret".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the server process: a server
    /// that accepts connections and answers nothing, as a hung one does.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("runnel-s3-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// Plans the one INSERT of `sql` and returns its job graph.
fn plan(sql: &str) -> runnel_engine::graph::JobGraph {
    let stmts = runnel_sql::parser::parse_sql(sql).expect("parses");
    let mut session = Session::new(runnel_connectors::default_registry());
    let mut graph = None;
    for stmt in &stmts {
        if let Outcome::Job(job) = session
            .execute(stmt, "INSERT", &|_| unreachable!("no SELECT"))
            .expect("plans")
        {
            graph = Some(job.graph);
        }
    }
    graph.expect("one job")
}

fn script(server: Option<&S3Server>, out: &std::path::Path) -> String {
    let (sets, pacing) = match server {
        Some(s) => (
            format!(
                "{}SET 'state.checkpoints.dir' = 's3://runnel-hang/ckpt';
SET 'execution.checkpointing.interval' = '300 ms';
SET 's3.request-timeout' = '1 s';
SET 'execution.checkpointing.tolerable-failed-checkpoints' = '1000';
",
                s.set_statements()
            ),
            "'rows-per-second' = '4000',",
        ),
        None => (String::new(), ""),
    };
    format!(
        "{sets}SET 'parallelism' = '2';
CREATE TABLE readings (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
WITH ('connector' = 'datagen', 'number-of-rows' = '36000', {pacing}
  'iot.devices' = '50', 'iot.interval-ms' = '1000', 'seed' = '5');
CREATE TABLE out (device_id STRING, window_start TIMESTAMP(3), n BIGINT, hi DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
INSERT INTO out SELECT device_id, window_start, COUNT(*), MAX(temperature)
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY device_id, window_start, window_end;
",
        out.display()
    )
}

fn csv_rows(dir: &std::path::Path) -> Vec<String> {
    let mut rows = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("readable output");
        rows.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    rows.sort();
    rows
}

/// The S3 server stops answering for a while in the middle of a job that
/// checkpoints to it every 300 ms: the checkpoints of that time fail (each
/// request gives up after 1 s) and are retried by the next ones, the job
/// keeps processing and ends with every row once, and no manifest in the
/// bucket lists an object that is not there.
#[test]
fn a_hung_s3_server_fails_checkpoints_and_the_job_goes_on() {
    let expected_dir = temp("expected");
    Job::run(plan(&script(None, &expected_dir))).expect("reference run");
    let expected = csv_rows(&expected_dir);
    assert_eq!(expected.len(), 50 * (36_000 / 50 / 60), "reference rows");

    let server = S3Server::start("runnel-hang");
    let out = temp("out");
    let graph = plan(&script(Some(&server), &out));
    let location = graph
        .checkpointing
        .as_ref()
        .map(|c| c.dir.display().to_string())
        .expect("checkpoints");
    let job = Job::start(graph).expect("starts");
    let read = || -> u64 {
        job.metrics()
            .iter()
            .filter(|m| m.is_source)
            .map(|m| {
                m.metrics
                    .rows_out
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    };
    let completed = || job.last_checkpoint().map_or(0, |s| s.completed);
    let failed = || job.last_checkpoint().map_or(0, |s| s.failed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed() < 2 {
        assert!(Instant::now() < deadline, "no checkpoint completed on S3");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.signal("STOP");
    let before = (read(), completed());
    let hung_until = Instant::now() + Duration::from_millis(3_500);
    while Instant::now() < hung_until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let during = (read(), completed(), failed());
    server.signal("CONT");
    while !job.is_finished() {
        assert!(Instant::now() < deadline, "the job did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = job.last_checkpoint().expect("checkpoint stats");
    job.wait().expect("the job ends well");
    assert!(
        during.2 >= 1,
        "a checkpoint failed while the server hung: {during:?}"
    );
    assert!(
        during.0 > before.0,
        "the job kept reading while the server hung"
    );
    assert!(
        last.completed > during.1,
        "checkpoints completed again after the server came back ({} then {})",
        during.1,
        last.completed
    );
    let store = CheckpointStore::open(&location, 3, &server.options(), None).expect("store");
    let remote = store.remote().expect("an S3 store");
    assert_eq!(
        remote.missing_objects().expect("list the bucket"),
        Vec::<String>::new(),
        "manifests list only objects that exist"
    );
    assert!(store.latest().expect("latest").is_some_and(|c| c.finished));
    let got = csv_rows(&out);
    assert_eq!(got.len(), expected.len(), "rows");
    assert!(got == expected, "the output equals an uninterrupted run's");
    for p in [expected_dir, out] {
        let _ = std::fs::remove_dir_all(p);
    }
}
