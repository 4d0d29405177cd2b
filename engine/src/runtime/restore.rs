//! Where a starting job's state comes from: the newest checkpoint of the
//! same plan, the working directories of RocksDB state, and each operator
//! subtask's state backend, restored or empty.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use runnel_state::{
    copy_all, CheckpointInfo, CheckpointStore, MemorySnapshot, MemoryStateBackend, RocksMemory,
    RocksStateBackend, StateBackend,
};

use crate::error::{EngineError, Result};
use crate::graph::{JobGraph, NodeId, StateBackendKind, StateConfig};

/// A starting job's checkpoint store, the checkpoint it resumes from, and
/// where its RocksDB working copies go.
pub(super) struct Restore {
    /// Where checkpoints go; `None` without checkpointing.
    pub(super) store: Option<CheckpointStore>,
    /// The newest complete checkpoint of the same plan, if any.
    pub(super) restored: Option<CheckpointInfo>,
    /// The working directory of the state entry of this name.
    work_path: Box<dyn Fn(&str) -> PathBuf>,
}

impl Restore {
    /// Finds the checkpoint to resume from (refusing one taken by another
    /// plan) and decides where working copies of state go.
    pub(super) fn open(graph: &JobGraph) -> Result<Self> {
        // Resume from the newest complete checkpoint of the same plan.
        let (store, restored) = match &graph.checkpointing {
            None => (None, None),
            Some(c) => {
                let store = CheckpointStore::new(&c.dir, c.retained);
                let latest = store.latest()?;
                if let Some(cp) = &latest {
                    if cp.fingerprint != c.fingerprint {
                        return Err(EngineError::Plan(format!(
                            "the checkpoints in {} were taken by a different query; \
                             use another checkpoint directory or delete this one",
                            c.dir.display()
                        )));
                    }
                }
                (Some(store), latest)
            }
        };
        let work_path = work_path(graph, store.as_ref())?;
        Ok(Self {
            store,
            restored,
            work_path,
        })
    }

    /// The bytes of entry `name` in the checkpoint resumed from, if any.
    pub(super) fn read_entry(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match (&self.store, &self.restored) {
            (Some(st), Some(cp)) => Ok(st.read(cp, name)?),
            _ => Ok(None),
        }
    }

    /// Opens the state backend of the operator subtask whose state entry
    /// is `name`, restored when the checkpoint resumed from has it.
    pub(super) fn operator_state(
        &self,
        config: &StateConfig,
        name: &str,
    ) -> Result<Box<dyn StateBackend>> {
        open_state(
            config,
            (self.work_path)(name),
            self.restored
                .as_ref()
                .zip(self.store.as_ref())
                .and_then(|(cp, st)| st.dir_of(cp, name)),
            self.read_entry(name)?,
        )
    }
}

/// Working copies of RocksDB state: inside the checkpoint directory (so
/// checkpoints can hard-link them), else private temporary directories
/// named after the process and job, one per subtask, so that each is
/// removed whole when its subtask ends.
fn work_path(
    graph: &JobGraph,
    store: Option<&CheckpointStore>,
) -> Result<Box<dyn Fn(&str) -> PathBuf>> {
    Ok(match store {
        Some(st) => {
            st.clear_scratch()?;
            let root = st.work_dir();
            Box::new(move |name: &str| root.join(name))
        }
        None => {
            static JOBS: AtomicUsize = AtomicUsize::new(0);
            let base = graph
                .state
                .local_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir);
            let prefix = format!(
                "runnel-state-{}-{}",
                std::process::id(),
                JOBS.fetch_add(1, Ordering::Relaxed)
            );
            Box::new(move |name: &str| base.join(format!("{prefix}-{name}")))
        }
    })
}

/// Name of an operator subtask's state in a checkpoint.
pub(super) fn state_entry_name(node: NodeId, subtask: usize) -> String {
    format!("state-{node}-{subtask}")
}

/// Name of a source subtask's position in a checkpoint.
pub(super) fn position_entry_name(node: NodeId, subtask: usize) -> String {
    format!("position-{node}-{subtask}")
}

/// Opens the state backend of one operator subtask: restored from the
/// checkpoint's directory (`dir`, a RocksDB checkpoint) or bytes (`bytes`,
/// the in-memory backend's), converted when the checkpoint was written by
/// the other kind of backend, or empty.
fn open_state(
    config: &StateConfig,
    work: PathBuf,
    dir: Option<PathBuf>,
    bytes: Option<Vec<u8>>,
) -> Result<Box<dyn StateBackend>> {
    let memory = RocksMemory::within(config.memory_budget);
    let state: Box<dyn StateBackend> = match (config.backend, dir, bytes) {
        (StateBackendKind::RocksDb, Some(dir), _) => {
            Box::new(RocksStateBackend::restore(&dir, work, memory)?)
        }
        (StateBackendKind::RocksDb, None, Some(bytes)) => {
            let mut from = MemoryStateBackend::restore(&MemorySnapshot::from_bytes(&bytes)?);
            let mut to = RocksStateBackend::open(work, memory)?;
            copy_all(&mut from, &mut to)?;
            Box::new(to)
        }
        (StateBackendKind::RocksDb, None, None) => Box::new(RocksStateBackend::open(work, memory)?),
        (StateBackendKind::HashMap, Some(dir), _) => {
            let mut from = RocksStateBackend::restore(&dir, work, memory)?;
            let mut to = MemoryStateBackend::new();
            copy_all(&mut from, &mut to)?;
            Box::new(to)
        }
        (StateBackendKind::HashMap, None, Some(bytes)) => Box::new(MemoryStateBackend::restore(
            &MemorySnapshot::from_bytes(&bytes)?,
        )),
        (StateBackendKind::HashMap, None, None) => Box::new(MemoryStateBackend::new()),
    };
    Ok(state)
}
