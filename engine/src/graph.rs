//! The job graph: the DAG of sources, operators and sinks that a planner
//! builds and the runtime executes.

use std::fmt::Write as _;

use crate::error::{EngineError, Result};
use crate::operator::OperatorFactory;
use crate::source::{SourceFactory, WatermarkStrategy};

/// Index of a node in its [`JobGraph`].
pub type NodeId = usize;

/// How rows travel along an edge between the subtasks of two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// Subtask `i` sends to subtask `i` only; both nodes have the same
    /// parallelism. Forward edges between single-input, single-output nodes
    /// are chained: both run in one thread with no channel between them.
    Forward,
    /// Rows are routed by the hash of these columns (of the sender's
    /// output), through key groups, so equal keys meet in one subtask.
    Hash(Vec<usize>),
    /// Every subtask receives every row.
    Broadcast,
    /// Whole batches are spread over the receivers in turn.
    RoundRobin,
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exchange::Forward => write!(f, "FORWARD"),
            Exchange::Hash(cols) => write!(f, "HASH{cols:?}"),
            Exchange::Broadcast => write!(f, "BROADCAST"),
            Exchange::RoundRobin => write!(f, "ROUND_ROBIN"),
        }
    }
}

/// What a node runs.
#[derive(Clone)]
pub enum NodeKind {
    /// A source, optionally with a watermark strategy.
    Source {
        /// Creates one source instance per subtask.
        factory: SourceFactory,
        /// How watermarks are generated; `None` when the source emits them itself.
        watermark: Option<WatermarkStrategy>,
    },
    /// An operator or a sink (an operator with no outgoing edge).
    Operator {
        /// Creates one operator instance per subtask.
        factory: OperatorFactory,
    },
}

/// A node of the graph.
#[derive(Clone)]
pub struct Node {
    /// Index in the graph.
    pub id: NodeId,
    /// Name shown in plans, metrics and errors.
    pub name: String,
    /// Number of parallel subtasks.
    pub parallelism: usize,
    /// What it runs.
    pub kind: NodeKind,
}

/// An edge of the graph.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Sending node.
    pub from: NodeId,
    /// Receiving node.
    pub to: NodeId,
    /// Routing between their subtasks.
    pub exchange: Exchange,
    /// Input number at the receiver (order in which edges into `to` were added).
    pub input: usize,
}

/// A DAG of sources, operators and sinks.
///
/// Build it with [`JobGraph::add_source`], [`JobGraph::add_operator`] and
/// [`JobGraph::connect`]; run it with [`crate::runtime::Job::start`].
#[derive(Clone)]
pub struct JobGraph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    /// Number of key groups (the upper bound for any node's parallelism).
    pub max_parallelism: u16,
    /// Capacity, in batches, of each channel between subtasks; a full
    /// channel blocks the sender (backpressure).
    pub channel_capacity: usize,
    /// Periodic checkpoints and recovery; `None` runs without.
    pub checkpointing: Option<CheckpointConfig>,
    /// Where operator state lives.
    pub state: StateConfig,
    /// How often each source subtask sends a latency marker behind its
    /// rows (`'metrics.latency.interval'`); `None` sends none. See
    /// [`crate::runtime::JobHandle::latency`].
    pub latency_interval: Option<std::time::Duration>,
    /// The longest a row waits in a hash exchange to be sent with others
    /// to the same subtask (`'execution.buffer-timeout'`).
    pub buffer_timeout: std::time::Duration,
    /// Failed checkpoints in a row a job survives
    /// (`'execution.checkpointing.tolerable-failed-checkpoints'`); one
    /// more fails the job.
    pub tolerable_failed_checkpoints: u32,
    /// How often a source subtask sends a watermark it generated
    /// (`'pipeline.auto-watermark-interval'`); zero sends one after every
    /// batch that advances it.
    pub watermark_interval: std::time::Duration,
    /// True when every source reads memory the process holds (see
    /// [`crate::connector::SourceTable::in_memory`]) and the job is
    /// bounded: it can run with [`crate::runtime::run_local`].
    pub in_memory: bool,
}

/// The kind of state backend (`'state.backend.type'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateBackendKind {
    /// RocksDB, one instance per operator subtask (`'rocksdb'`, the default).
    RocksDb,
    /// Ordered maps in memory (`'hashmap'`): state must fit in memory.
    HashMap,
}

/// Where operator state lives, and how much of it may stay in memory.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// The backend.
    pub backend: StateBackendKind,
    /// Bytes of state each stateful operator subtask may cache in memory
    /// before it spills to RocksDB (`'state.backend.memory-budget'`).
    pub memory_budget: usize,
    /// Directory for RocksDB working copies of a job without checkpoints
    /// (`'state.backend.rocksdb.localdir'`); the system's temporary
    /// directory by default. Jobs with checkpoints use `_work` in their
    /// checkpoint directory, so that checkpoints can hard-link its files.
    pub local_dir: Option<std::path::PathBuf>,
}

/// Parses a size: `'128MB'`, `'64 mb'`, `'1 GiB'`, `'512kb'` or plain bytes
/// (units are powers of 1024).
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "b" => 1,
        "kb" | "kib" | "k" => 1 << 10,
        "mb" | "mib" | "m" => 1 << 20,
        "gb" | "gib" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Default [`StateConfig::memory_budget`]: 512 MiB per operator subtask.
pub const DEFAULT_MEMORY_BUDGET: usize = 512 << 20;

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            backend: StateBackendKind::RocksDb,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            local_dir: None,
        }
    }
}

impl StateConfig {
    /// The budget operators must keep to: only RocksDB can take what they
    /// spill.
    pub fn spill_budget(&self) -> Option<usize> {
        match self.backend {
            StateBackendKind::RocksDb => Some(self.memory_budget),
            StateBackendKind::HashMap => None,
        }
    }
}

/// How a job takes checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Directory of this job's checkpoints (`chk-<id>` subdirectories). If it
    /// holds a complete checkpoint of the same plan, the job resumes from it.
    pub dir: std::path::PathBuf,
    /// Time between checkpoints (`'execution.checkpointing.interval'`).
    pub interval: std::time::Duration,
    /// Complete checkpoints to keep (`'state.checkpoints.num-retained'`).
    pub retained: usize,
    /// Identifies the plan; a checkpoint of a different plan is not restored.
    pub fingerprint: String,
    /// Options of the checkpoint storage when `dir` is `s3://bucket/path`
    /// (`s3.endpoint`, `s3.access-key`, ...; see `runnel_state::remote`).
    pub storage_options: Vec<(String, String)>,
    /// A savepoint to start from when `dir` holds no checkpoint yet
    /// (`'execution.savepoint.path'`): another job's checkpoint directory
    /// or one `chk-<id>` in it.
    pub restore_from: Option<std::path::PathBuf>,
}

impl Default for JobGraph {
    fn default() -> Self {
        Self::new()
    }
}

/// Options of a checkpoint directory on S3 (Flink's names).
pub use runnel_state::remote::S3_OPTIONS as CHECKPOINT_STORAGE_OPTIONS;

/// Default [`JobGraph::tolerable_failed_checkpoints`]: a storage hiccup
/// costs a checkpoint, not the job; four failures in a row fail it.
pub const DEFAULT_TOLERABLE_FAILED_CHECKPOINTS: u32 = 3;

/// Default [`JobGraph::buffer_timeout`]: 5 ms (Flink's network buffer
/// timeout is 100 ms; ours is kept well under the latency we aim for).
pub const DEFAULT_BUFFER_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(5);

/// Default [`JobGraph::watermark_interval`]: 200 ms, as Flink's.
pub const DEFAULT_WATERMARK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

impl JobGraph {
    /// An empty graph with default settings.
    pub fn new() -> Self {
        Self {
            nodes: Vec::new(),
            edges: Vec::new(),
            max_parallelism: runnel_state::DEFAULT_MAX_PARALLELISM,
            state: StateConfig::default(),
            channel_capacity: 8,
            checkpointing: None,
            latency_interval: None,
            buffer_timeout: DEFAULT_BUFFER_TIMEOUT,
            tolerable_failed_checkpoints: DEFAULT_TOLERABLE_FAILED_CHECKPOINTS,
            watermark_interval: DEFAULT_WATERMARK_INTERVAL,
            in_memory: false,
        }
    }

    /// Adds a source node.
    pub fn add_source(
        &mut self,
        name: impl Into<String>,
        parallelism: usize,
        factory: SourceFactory,
        watermark: Option<WatermarkStrategy>,
    ) -> NodeId {
        self.push(
            name.into(),
            parallelism,
            NodeKind::Source { factory, watermark },
        )
    }

    /// Adds an operator (or sink) node.
    pub fn add_operator(
        &mut self,
        name: impl Into<String>,
        parallelism: usize,
        factory: OperatorFactory,
    ) -> NodeId {
        self.push(name.into(), parallelism, NodeKind::Operator { factory })
    }

    fn push(&mut self, name: String, parallelism: usize, kind: NodeKind) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            id,
            name,
            parallelism: parallelism.max(1),
            kind,
        });
        id
    }

    /// Connects `from`'s output to a new input of `to`.
    pub fn connect(&mut self, from: NodeId, to: NodeId, exchange: Exchange) -> Result<()> {
        let (Some(f), Some(t)) = (self.nodes.get(from), self.nodes.get(to)) else {
            return Err(EngineError::Plan(format!(
                "edge {from} -> {to} names a node that does not exist"
            )));
        };
        if matches!(t.kind, NodeKind::Source { .. }) {
            return Err(EngineError::Plan(format!(
                "source '{}' cannot have an input",
                t.name
            )));
        }
        if exchange == Exchange::Forward && f.parallelism != t.parallelism {
            return Err(EngineError::Plan(format!(
                "a FORWARD edge needs equal parallelism, but '{}' has {} and '{}' has {}; use ROUND_ROBIN or HASH",
                f.name, f.parallelism, t.name, t.parallelism
            )));
        }
        let input = self.edges.iter().filter(|e| e.to == to).count();
        self.edges.push(Edge {
            from,
            to,
            exchange,
            input,
        });
        Ok(())
    }

    /// The nodes, by id.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The edges, in the order they were added.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Edges into `node`, ordered by input number.
    pub fn inputs_of(&self, node: NodeId) -> Vec<&Edge> {
        let mut v: Vec<&Edge> = self.edges.iter().filter(|e| e.to == node).collect();
        v.sort_by_key(|e| e.input);
        v
    }

    /// Edges out of `node`.
    pub fn outputs_of(&self, node: NodeId) -> Vec<&Edge> {
        self.edges.iter().filter(|e| e.from == node).collect()
    }

    /// Checks that the graph can run: at least one source, every operator
    /// has an input, no cycle, parallelism within the key-group count.
    pub fn validate(&self) -> Result<()> {
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Source { .. }))
        {
            return Err(EngineError::Plan("the job has no source".into()));
        }
        for n in &self.nodes {
            if matches!(n.kind, NodeKind::Operator { .. }) && self.inputs_of(n.id).is_empty() {
                return Err(EngineError::Plan(format!(
                    "operator '{}' has no input",
                    n.name
                )));
            }
            if n.parallelism > usize::from(self.max_parallelism) {
                return Err(EngineError::Plan(format!(
                    "'{}' has parallelism {} but the job has only {} key groups",
                    n.name, n.parallelism, self.max_parallelism
                )));
            }
        }
        self.topological_order().map(|_| ())
    }

    /// Node ids with every node after all of its inputs.
    pub fn topological_order(&self) -> Result<Vec<NodeId>> {
        let mut indegree: Vec<usize> = vec![0; self.nodes.len()];
        for e in &self.edges {
            indegree[e.to] += 1;
        }
        let mut ready: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&n| indegree[n] == 0)
            .collect();
        ready.reverse();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(n) = ready.pop() {
            order.push(n);
            for e in self.edges.iter().filter(|e| e.from == n) {
                indegree[e.to] -= 1;
                if indegree[e.to] == 0 {
                    ready.push(e.to);
                }
            }
        }
        if order.len() != self.nodes.len() {
            return Err(EngineError::Plan("the job graph has a cycle".into()));
        }
        Ok(order)
    }

    /// True when the edge `e` joins its nodes into one chain (one thread).
    pub fn is_chained(&self, e: &Edge) -> bool {
        e.exchange == Exchange::Forward
            && self.nodes[e.from].parallelism == self.nodes[e.to].parallelism
            && self.outputs_of(e.from).len() == 1
            && self.inputs_of(e.to).len() == 1
    }

    /// Maximal chains of nodes, each run by one thread per subtask, in
    /// topological order of their heads.
    pub fn chains(&self) -> Result<Vec<Vec<NodeId>>> {
        let order = self.topological_order()?;
        let mut chained_into = vec![false; self.nodes.len()];
        for e in &self.edges {
            if self.is_chained(e) {
                chained_into[e.to] = true;
            }
        }
        let mut chains = Vec::new();
        for head in order.into_iter().filter(|&n| !chained_into[n]) {
            let mut chain = vec![head];
            let mut cur = head;
            loop {
                let outs = self.outputs_of(cur);
                match outs.as_slice() {
                    [e] if self.is_chained(e) => {
                        chain.push(e.to);
                        cur = e.to;
                    }
                    _ => break,
                }
            }
            chains.push(chain);
        }
        Ok(chains)
    }

    /// A readable plan: one line per chain with its nodes, parallelism and
    /// the exchanges that feed it.
    pub fn explain(&self) -> Result<String> {
        self.describe(true)
    }

    /// [`JobGraph::explain`] without the parallelism: what a checkpoint's
    /// fingerprint covers, so that a checkpoint restores at another
    /// parallelism (key groups move; see `runtime::restore`).
    pub fn shape(&self) -> Result<String> {
        self.describe(false)
    }

    fn describe(&self, parallelism: bool) -> Result<String> {
        let chains = self.chains()?;
        let mut out = String::new();
        for (i, chain) in chains.iter().enumerate() {
            let names: Vec<String> = chain
                .iter()
                .map(|&n| {
                    let node = &self.nodes[n];
                    let kind = match node.kind {
                        NodeKind::Source { .. } => "source",
                        NodeKind::Operator { .. } if self.outputs_of(n).is_empty() => "sink",
                        NodeKind::Operator { .. } => "operator",
                    };
                    format!("{} [{kind}]", node.name)
                })
                .collect();
            if parallelism {
                let par = self.nodes[chain[0]].parallelism;
                let _ = writeln!(out, "chain {i} (parallelism {par}): {}", names.join(" -> "));
            } else {
                let _ = writeln!(out, "chain {i}: {}", names.join(" -> "));
            }
            for e in self.inputs_of(chain[0]) {
                let _ = writeln!(out, "  <- {} via {}", self.nodes[e.from].name, e.exchange);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sink::BlackholeSink;
    use crate::testing::ScriptedSource;

    fn op() -> OperatorFactory {
        BlackholeSink::factory()
    }

    #[test]
    fn forward_edges_chain_and_exchanges_cut() -> Result<()> {
        let mut g = JobGraph::new();
        let s = g.add_source("src", 2, ScriptedSource::single(vec![]), None);
        let f = g.add_operator("filter", 2, op());
        let a = g.add_operator("agg", 4, op());
        let k = g.add_operator("sink", 4, op());
        g.connect(s, f, Exchange::Forward)?;
        g.connect(f, a, Exchange::Hash(vec![0]))?;
        g.connect(a, k, Exchange::Forward)?;
        assert_eq!(g.chains()?, vec![vec![s, f], vec![a, k]]);
        let text = g.explain()?;
        assert!(text.contains("src [source] -> filter [operator]"), "{text}");
        assert!(text.contains("<- filter via HASH[0]"), "{text}");
        Ok(())
    }

    #[test]
    fn fan_out_and_fan_in_are_not_chained() -> Result<()> {
        let mut g = JobGraph::new();
        let s = g.add_source("src", 1, ScriptedSource::single(vec![]), None);
        let a = g.add_operator("a", 1, op());
        let b = g.add_operator("b", 1, op());
        let u = g.add_operator("union", 1, op());
        g.connect(s, a, Exchange::Forward)?;
        g.connect(s, b, Exchange::Forward)?;
        g.connect(a, u, Exchange::Forward)?;
        g.connect(b, u, Exchange::Forward)?;
        assert_eq!(g.chains()?.len(), 4);
        assert_eq!(
            g.inputs_of(u).iter().map(|e| e.input).collect::<Vec<_>>(),
            vec![0, 1]
        );
        Ok(())
    }

    #[test]
    fn invalid_graphs_are_rejected() {
        let mut g = JobGraph::new();
        let s = g.add_source("src", 2, ScriptedSource::single(vec![]), None);
        let a = g.add_operator("a", 3, op());
        let err = g
            .connect(s, a, Exchange::Forward)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("equal parallelism"), "{err}");
        let b = g.add_operator("b", 1, Arc::clone(&op()));
        let _ = b;
        let err = g
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("has no input"), "{err}");
        let mut g = JobGraph::new();
        let x = g.add_operator("x", 1, op());
        let y = g.add_operator("y", 1, op());
        let _ = g.add_source("s", 1, ScriptedSource::single(vec![]), None);
        assert!(g.connect(x, y, Exchange::Forward).is_ok());
        assert!(g.connect(y, x, Exchange::Forward).is_ok());
        let err = g
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("cycle"), "{err}");
    }
}
