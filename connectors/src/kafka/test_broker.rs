//! A Kafka-protocol broker process for tests and benchmarks: Tansu 0.6
//! with in-memory storage, installed by `scripts/kafka-broker.sh` (or the
//! binary named by `RUNNEL_TANSU`), listening on 127.0.0.1 on a free port.
//! The broker is killed when the handle is dropped.
//!
//! Known limits of this broker (checked by hand against Tansu 0.6.0):
//! read_committed consumers do not skip records of *aborted* transactions
//! (records of open transactions are hidden); offset metadata strings are
//! dropped; ListOffsets "latest" is wrong; partitions cannot be added.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

/// A running broker.
#[derive(Debug)]
pub struct TestBroker {
    child: Child,
    port: u16,
}

impl TestBroker {
    /// Starts a broker; panics with a hint when the binary is missing.
    pub fn start() -> Self {
        let bin = broker_binary();
        // Ask the OS for a free port, then hand it to the broker. Tansu exits
        // with status 0 when the port is taken, so liveness is checked below.
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free local port");
            let url = format!("tcp://127.0.0.1:{port}");
            let mut child = Command::new(&bin)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                    "--storage-engine",
                    "memory://tansu/",
                    "--cluster-id",
                    "runnel-test",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the test broker {} did not start", bin.display());
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("admin client");
        let results = futures::executor::block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker binary: `RUNNEL_TANSU`, or what `scripts/kafka-broker.sh`
/// installed.
fn broker_binary() -> PathBuf {
    if let Ok(p) = std::env::var("RUNNEL_TANSU") {
        return PathBuf::from(p);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("kafka-broker.sh");
    let out = Command::new(&script)
        .arg("install")
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} install failed; the Kafka tests need the Tansu broker it installs",
        script.display()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A record read back by [`read_topic`].
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` for a tombstone).
    pub value: Option<Vec<u8>>,
    /// Record timestamp (ms).
    pub timestamp: Option<i64>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Everything in `topic` now, as a read_committed consumer sees it, read to
/// the end of every partition; sorted by (partition, offset). Panics after
/// two minutes without reaching every end.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<ReadRecord> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::{Headers, Message};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "runnel-test-reader")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let n = md.topics()[0].partitions().len();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..n as i32 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut eof = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // A transaction's commit markers reach its partitions after the
    // producer's commit returns, so a read_committed reader can meet the
    // end of a partition (its last stable offset) before a committed
    // transaction: a partition counts as read once the reader's position
    // is its high watermark (past every marker), or once it has stopped
    // short of it for `settle` (a transaction really left open).
    let settle = Duration::from_secs(15);
    let mut all_seen: Option<Instant> = None;
    loop {
        if eof.len() == n {
            let since = *all_seen.get_or_insert_with(Instant::now);
            let positions = c.position().expect("positions");
            let caught_up = (0..n as i32).all(|p| {
                // A failed watermark query proves nothing: not caught up
                // (taking it for 0 once ended a read of a busy broker early).
                let Ok((_, high)) = c.fetch_watermarks(topic, p, Duration::from_secs(10)) else {
                    return false;
                };
                let at = positions
                    .find_partition(topic, p)
                    .and_then(|e| match e.offset() {
                        rdkafka::Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(0);
                at >= high
            });
            if caught_up || since.elapsed() > settle {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(ReadRecord {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                timestamp: m.timestamp().to_millis(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    assert_eq!(
        eof.len(),
        n,
        "reached the end of every partition of {topic}"
    );
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}
