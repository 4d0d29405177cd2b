//! Keyed operator state for Runnel.
//!
//! The entry point is the [`StateBackend`] trait: named tables of ordered
//! byte keys and values, with point reads and writes, prefix scans and
//! snapshots. Operators keep hot state in their own memory and write it to a
//! backend at every checkpoint barrier; the backend is what survives.
//! [`RocksStateBackend`] keeps each table in a RocksDB column family and
//! snapshots by RocksDB checkpoint (hard-linked SST files);
//! [`MemoryStateBackend`] keeps ordered maps and snapshots by copying them.
//! [`CheckpointStore`] writes checkpoints to disk (`chk-<id>` directories with
//! a manifest written last) and finds the latest complete one.
//!
//! Keys follow one layout, described in [`key`]: the key group first (so a
//! range of key groups can move between subtasks), then a fixed-width
//! namespace such as a window end, then the operator's key. This crate knows
//! nothing of Arrow or of the engine's operators, and it does not coordinate
//! checkpoints (the engine's coordinator does): it stores what it is given.

pub mod checkpoint;
pub mod key;
mod layered;
mod memory;
pub mod remote;
mod rocks;

pub use checkpoint::{CheckpointInfo, CheckpointStore};
pub use key::{
    encode_key, encode_time, key_group_for_hash, key_group_range, subtask_for_key_group, KeyGroup,
    DEFAULT_MAX_PARALLELISM,
};
pub use layered::{AsyncStateBackend, MAX_SEALED};
pub use memory::{MemorySnapshot, MemoryStateBackend};
pub use rocks::{RocksMemory, RocksStateBackend};

use std::path::{Path, PathBuf};

/// What [`StateBackend::write_snapshot`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotData {
    /// The whole state as bytes (the in-memory backend).
    Bytes(Vec<u8>),
    /// A directory the backend wrote (a RocksDB checkpoint).
    Dir {
        /// Where it is.
        path: PathBuf,
        /// Size of all its files.
        bytes: u64,
        /// Size of the files the previous snapshot of the same backend did
        /// not have: what this snapshot cost to write.
        new_bytes: u64,
    },
}

/// Errors of the state layer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A table was used before it was registered with [`StateBackend::register_table`].
    #[error("state table '{0}' is not registered")]
    UnknownTable(String),
    /// Stored bytes could not be decoded: a bug or a damaged checkpoint.
    #[error("corrupt state in table '{table}': {reason}")]
    Corrupt { table: String, reason: String },
    /// The storage underneath failed (disk, RocksDB); the cause is kept
    /// with what was being done.
    #[error("state storage: cannot {action}: {source}")]
    Storage {
        /// What was being done, as a verb phrase ("write checkpoint 3").
        action: String,
        /// The storage's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The storage is in a state this call cannot use (closed, a checkpoint
    /// that does not exist); nothing underneath failed.
    #[error("state storage: {0}")]
    Unavailable(String),
}

impl StateError {
    /// A failure of the storage underneath that keeps its cause.
    pub fn storage(
        action: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StateError::Storage {
            action: action.into(),
            source: source.into(),
        }
    }

    /// True when trying again may help: an I/O failure that may pass
    /// (interrupted, timed out, would block).
    pub fn is_retryable(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            StateError::Storage { source, .. } => {
                source.downcast_ref::<std::io::Error>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::TimedOut | ErrorKind::WouldBlock
                    )
                })
            }
            _ => false,
        }
    }
}

impl From<std::io::Error> for StateError {
    fn from(e: std::io::Error) -> Self {
        StateError::storage("use the local file system", e)
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, StateError>;

/// Handle of a registered state table, valid for the backend that issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableId(pub usize);

/// Iterator over the entries of a prefix scan, in ascending key order.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// Storage for the keyed state of the operators of one subtask.
///
/// Calls come from the subtask's own thread only; a backend is never shared
/// between threads while a job runs, so implementations need no locking of
/// their own. Writes need not be durable until [`StateBackend::write_snapshot`]
/// returns.
pub trait StateBackend: Send {
    /// Opens the table `name`, creating it if needed, and returns its handle.
    fn register_table(&mut self, name: &str) -> Result<TableId>;
    /// Reads one value.
    fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Writes one value, replacing what was there.
    fn put(&mut self, table: TableId, key: &[u8], value: &[u8]) -> Result<()>;
    /// [`StateBackend::put`] of buffers the caller gives up, which a
    /// backend that keeps them in memory stores without copying.
    fn put_owned(&mut self, table: TableId, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.put(table, &key, &value)
    }
    /// Writes many entries of one table, given in ascending key order
    /// (`None`: delete the key). A backend may write them more cheaply
    /// than one at a time (RocksDB: as one SST file it ingests).
    fn write_sorted(
        &mut self,
        table: TableId,
        entries: &mut dyn Iterator<Item = (&[u8], Option<&[u8]>)>,
    ) -> Result<()> {
        for (k, v) in entries {
            match v {
                Some(v) => self.put(table, k, v)?,
                None => self.delete(table, k)?,
            }
        }
        Ok(())
    }
    /// Deletes one key; deleting a missing key is not an error.
    fn delete(&mut self, table: TableId, key: &[u8]) -> Result<()>;
    /// Deletes every key that starts with `prefix`.
    fn delete_prefix(&mut self, table: TableId, prefix: &[u8]) -> Result<()>;
    /// Scans the keys that start with `prefix`, in ascending byte order.
    fn scan_prefix<'a>(&'a self, table: TableId, prefix: &[u8]) -> Result<ScanIter<'a>>;
    /// Names of the tables registered (or restored) so far.
    fn table_names(&self) -> Vec<String>;
    /// Makes the current contents of every table durable as a snapshot.
    /// A backend that writes files creates the directory `staging` (which
    /// does not exist yet) for them; others return the bytes.
    fn write_snapshot(&mut self, staging: &Path) -> Result<SnapshotData>;
    /// Pins the current contents of every table as a snapshot and returns
    /// at once; the snapshot is written while the caller goes on, and
    /// [`PendingSnapshot::wait`] gives it. Writes made after this call are
    /// not in it. The default writes it before returning.
    fn snapshot_async(&mut self, staging: &Path) -> Result<PendingSnapshot> {
        Ok(PendingSnapshot::ready(self.write_snapshot(staging)))
    }
}

/// A snapshot being written: [`StateBackend::snapshot_async`]'s result.
#[derive(Debug)]
pub struct PendingSnapshot(Pending);

#[derive(Debug)]
enum Pending {
    Ready(Result<SnapshotData>),
    Waiting(std::sync::mpsc::Receiver<Result<SnapshotData>>),
}

impl PendingSnapshot {
    /// A snapshot already written (or failed).
    pub fn ready(result: Result<SnapshotData>) -> Self {
        PendingSnapshot(Pending::Ready(result))
    }

    /// A snapshot another thread is writing and will send.
    pub fn waiting(rx: std::sync::mpsc::Receiver<Result<SnapshotData>>) -> Self {
        PendingSnapshot(Pending::Waiting(rx))
    }

    /// Waits until the snapshot is durable.
    pub fn wait(self) -> Result<SnapshotData> {
        match self.0 {
            Pending::Ready(r) => r,
            Pending::Waiting(rx) => rx.recv().unwrap_or_else(|_| {
                Err(StateError::Unavailable(
                    "the state writer stopped before the snapshot was written".into(),
                ))
            }),
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix`,
/// or `None` when there is none (the prefix is empty or all 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Copies every entry of every table of `from` into `to` (used when a job
/// restores a checkpoint written by another kind of backend).
pub fn copy_all(from: &mut dyn StateBackend, to: &mut dyn StateBackend) -> Result<()> {
    for name in from.table_names() {
        let src = from.register_table(&name)?;
        let dst = to.register_table(&name)?;
        for entry in from.scan_prefix(src, &[])? {
            let (k, v) = entry?;
            to.put(dst, &k, &v)?;
        }
    }
    Ok(())
}
