//! Where a starting job's state comes from: the newest checkpoint of the
//! same plan, the working directories of RocksDB state, and each operator
//! subtask's state backend, restored or empty.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use runnel_state::{
    copy_all, key_group_range, AsyncStateBackend, CheckpointInfo, CheckpointStore, MemorySnapshot,
    MemoryStateBackend, RocksMemory, RocksStateBackend, StateBackend, TableId,
};

use crate::error::{EngineError, Result};
use crate::graph::{JobGraph, NodeId, StateBackendKind, StateConfig};
use crate::operator::StateLayout;

/// Where a source subtask resumes.
#[derive(Debug, Default)]
pub(super) enum Resume {
    /// From the start.
    #[default]
    Fresh,
    /// From its own position in a checkpoint of the same parallelism.
    Same(Vec<u8>),
    /// From the positions of every subtask of a checkpoint taken at
    /// another parallelism (in old subtask order): the source takes the
    /// splits it owns now.
    Rescaled(Vec<Vec<u8>>),
}

/// A starting job's checkpoint store, the checkpoint it resumes from, and
/// where its RocksDB working copies go.
pub(super) struct Restore {
    /// Where checkpoints go; `None` without checkpointing.
    pub(super) store: Option<CheckpointStore>,
    /// The newest complete checkpoint of the same plan, if any.
    pub(super) restored: Option<CheckpointInfo>,
    /// Where `restored` is read from: `store`, or the savepoint's store
    /// (`'execution.savepoint.path'`) for a job that has no checkpoint of
    /// its own yet.
    from: Option<CheckpointStore>,
    /// The working directory of the state entry of this name.
    work_path: Box<dyn Fn(&str) -> PathBuf>,
}

impl Restore {
    /// Finds the checkpoint to resume from (refusing one taken by another
    /// plan) and decides where working copies of state go.
    pub(super) fn open(graph: &JobGraph) -> Result<Self> {
        // Resume from the newest complete checkpoint of the same plan.
        let (store, restored, from) = match &graph.checkpointing {
            None => (None, None, None),
            Some(c) => {
                let location = c.dir.to_str().ok_or_else(|| {
                    EngineError::Plan(format!(
                        "the checkpoint directory {} is not valid UTF-8",
                        c.dir.display()
                    ))
                })?;
                let store = CheckpointStore::open(
                    location,
                    c.retained,
                    &c.storage_options,
                    graph.state.local_dir.clone(),
                )?;
                let mut from = store.clone();
                let mut latest = store.latest()?;
                let mut location = c.dir.display().to_string();
                // A new job started from another job's savepoint (Flink's
                // 'execution.savepoint.path'); once it has checkpoints of
                // its own, it restarts from those.
                if let (None, Some(savepoint)) = (&latest, &c.restore_from) {
                    let (other, found) = savepoint_store(savepoint, c)?;
                    location = savepoint.display().to_string();
                    latest = Some(found);
                    from = other;
                }
                if let Some(cp) = &latest {
                    if cp.fingerprint != c.fingerprint {
                        return Err(EngineError::Plan(format!(
                            "the checkpoints in {location} were taken by a different query; \
                             use another checkpoint directory or delete this one"
                        )));
                    }
                }
                (Some(store), latest, Some(from))
            }
        };
        let work_path = work_path(graph, store.as_ref())?;
        Ok(Self {
            store,
            restored,
            from,
            work_path,
        })
    }

    /// The bytes of entry `name` in the checkpoint resumed from, if any.
    pub(super) fn read_entry(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match (&self.from, &self.restored) {
            (Some(st), Some(cp)) => Ok(st.read(cp, name)?),
            _ => Ok(None),
        }
    }

    /// The local directory of entry `name` of the checkpoint resumed from
    /// (downloaded first from object storage), when it is a directory.
    fn dir_of(&self, name: &str) -> Result<Option<PathBuf>> {
        match (&self.from, &self.restored) {
            (Some(st), Some(cp)) => Ok(st.dir_of(cp, name)?),
            _ => Ok(None),
        }
    }

    /// The parallelism `node` had in the checkpoint resumed from, counted
    /// from its entries; `None` without one (or when it has no entry).
    pub(super) fn old_parallelism(&self, node: NodeId) -> Option<usize> {
        let cp = self.restored.as_ref()?;
        let state = format!("state-{node}-");
        let position = format!("position-{node}-");
        let n = cp
            .files
            .iter()
            .map(|f| &f.0)
            .chain(cp.dirs.iter().map(|d| &d.0))
            .filter(|name| name.starts_with(&state) || name.starts_with(&position))
            .count();
        (n > 0).then_some(n)
    }

    /// Where source subtask `subtask` of `node` resumes.
    pub(super) fn resume(
        &self,
        node: NodeId,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Resume> {
        match self.old_parallelism(node) {
            None => Ok(Resume::Fresh),
            Some(old) if old == parallelism => Ok(self
                .read_entry(&position_entry_name(node, subtask))?
                .map_or(Resume::Fresh, Resume::Same)),
            Some(old) => {
                let mut all = Vec::with_capacity(old);
                for i in 0..old {
                    all.push(
                        self.read_entry(&position_entry_name(node, i))?
                            .unwrap_or_default(),
                    );
                }
                Ok(Resume::Rescaled(all))
            }
        }
    }

    /// Opens the state backend of operator subtask `subtask` of `node`
    /// (its state entry is `name`), restored when the checkpoint resumed
    /// from has it; when that checkpoint was taken at another parallelism,
    /// the state is redistributed as `layout` says.
    pub(super) fn operator_state(
        &self,
        config: &StateConfig,
        node: NodeId,
        (subtask, parallelism): (usize, usize),
        layout: StateLayout,
        operator: &str,
        max_parallelism: u16,
    ) -> Result<Box<dyn StateBackend>> {
        let name = state_entry_name(node, subtask);
        let state = match self.old_parallelism(node) {
            Some(old) if old != parallelism => self.rescaled_state(
                config,
                &name,
                node,
                (subtask, parallelism, old),
                layout,
                operator,
                max_parallelism,
            )?,
            _ => open_state(
                config,
                (self.work_path)(&name),
                self.dir_of(&name)?,
                self.read_entry(&name)?,
            )?,
        };
        if self.store.is_none() {
            return Ok(state);
        }
        // With checkpoints, snapshots are written by a background writer
        // while the subtask goes on (see runnel_state::AsyncStateBackend).
        // Its layer of recent writes is sealed at a quarter of the memory
        // budget, within 8 to 64 MB.
        let seal = (config.memory_budget / 4).clamp(8 << 20, 64 << 20);
        Ok(Box::new(AsyncStateBackend::new(state, seal, &name)?))
    }

    /// The state of old subtask `i` of `node`, opened read-only in a
    /// scratch directory.
    fn old_state(
        &self,
        config: &StateConfig,
        node: NodeId,
        i: usize,
        new_name: &str,
    ) -> Result<Box<dyn StateBackend>> {
        let old_name = state_entry_name(node, i);
        open_state(
            config,
            (self.work_path)(&format!("{new_name}.from-{i}")),
            self.dir_of(&old_name)?,
            self.read_entry(&old_name)?,
        )
    }

    /// Builds a new subtask's state from a checkpoint taken at parallelism
    /// `old`; see [`StateLayout`] for what goes where.
    #[allow(clippy::too_many_arguments)]
    fn rescaled_state(
        &self,
        config: &StateConfig,
        name: &str,
        node: NodeId,
        (subtask, parallelism, old): (usize, usize, usize),
        layout: StateLayout,
        operator: &str,
        max_parallelism: u16,
    ) -> Result<Box<dyn StateBackend>> {
        let mut target = open_state(config, (self.work_path)(name), None, None)?;
        match layout {
            StateLayout::KeyGroups => {
                let mine = key_group_range(subtask, parallelism, max_parallelism);
                for i in 0..old {
                    let theirs = key_group_range(i, old, max_parallelism);
                    let (from, to) = (mine.start.max(theirs.start), mine.end.min(theirs.end));
                    if from >= to {
                        continue;
                    }
                    let mut source = self.old_state(config, node, i, name)?;
                    for table in source.table_names() {
                        let src = source.register_table(&table)?;
                        let dst = target.register_table(&table)?;
                        for kg in from..to {
                            let prefix = (kg as u16).to_be_bytes();
                            copy_prefix(source.as_ref(), src, target.as_mut(), dst, &prefix, None)?;
                        }
                        // Bookkeeping, tagged with the old subtask.
                        let tag = (i as u32).to_be_bytes();
                        copy_prefix(
                            source.as_ref(),
                            src,
                            target.as_mut(),
                            dst,
                            &[0xff, 0xff],
                            Some(&tag),
                        )?;
                    }
                }
            }
            StateLayout::Union => {
                for (k, i) in (subtask..old).step_by(parallelism.max(1)).enumerate() {
                    let mut source = self.old_state(config, node, i, name)?;
                    for table in source.table_names() {
                        let src = source.register_table(&table)?;
                        let renamed = if k == 0 {
                            table.clone()
                        } else {
                            format!("{table}@{i}")
                        };
                        let dst = target.register_table(&renamed)?;
                        copy_prefix(source.as_ref(), src, target.as_mut(), dst, &[], None)?;
                    }
                }
            }
            StateLayout::Fixed => {
                for i in 0..old {
                    let mut source = self.old_state(config, node, i, name)?;
                    for table in source.table_names() {
                        let t = source.register_table(&table)?;
                        if source.scan_prefix(t, &[])?.next().is_some() {
                            return Err(EngineError::Plan(format!(
                                "operator '{operator}' cannot be restored at parallelism \
                                 {parallelism}: the checkpoint was taken at parallelism {old} \
                                 and this operator's state cannot be split or combined; \
                                 resume with parallelism {old}"
                            )));
                        }
                    }
                }
            }
        }
        Ok(target)
    }
}

/// Copies the entries of `from` that start with `prefix` into `to`, each
/// key followed by `tag` when given; written in sorted runs.
fn copy_prefix(
    from: &dyn StateBackend,
    src: TableId,
    to: &mut dyn StateBackend,
    dst: TableId,
    prefix: &[u8],
    tag: Option<&[u8]>,
) -> Result<()> {
    let mut run: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for entry in from.scan_prefix(src, prefix)? {
        let (mut k, v) = entry?;
        if let Some(tag) = tag {
            k.extend_from_slice(tag);
        }
        run.push((k, v));
    }
    let mut iter = run.iter().map(|(k, v)| (k.as_slice(), Some(v.as_slice())));
    to.write_sorted(dst, &mut iter)?;
    Ok(())
}

/// The store of a savepoint and the checkpoint in it to start from:
/// `savepoint` is a job's checkpoint directory (its newest complete
/// checkpoint) or one `chk-<id>` directory in it.
fn savepoint_store(
    savepoint: &std::path::Path,
    c: &crate::graph::CheckpointConfig,
) -> Result<(CheckpointStore, CheckpointInfo)> {
    let text = savepoint.to_str().ok_or_else(|| {
        EngineError::Plan(format!(
            "the savepoint path {} is not valid UTF-8",
            savepoint.display()
        ))
    })?;
    let text = text.trim_end_matches('/');
    let (dir, id) = match text.rsplit_once('/') {
        Some((parent, last)) => match last
            .strip_prefix("chk-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(id) => (parent, Some(id)),
            None => (text, None),
        },
        None => (text, None),
    };
    // Read only: never retained or written to by this job.
    let store = CheckpointStore::open(dir, usize::MAX, &c.storage_options, None)?;
    let complete = store.complete()?;
    let found = match id {
        Some(id) => complete.into_iter().find(|cp| cp.id == id),
        None => complete.into_iter().next_back(),
    };
    let found = found.ok_or_else(|| {
        EngineError::Plan(format!(
            "'execution.savepoint.path' = '{text}' holds no complete checkpoint{}",
            id.map(|i| format!(" {i}")).unwrap_or_default()
        ))
    })?;
    Ok((store, found))
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
