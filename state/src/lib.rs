//! Keyed operator state for Runnel.
//!
//! The entry point is the [`StateBackend`] trait: named tables of ordered
//! byte keys and values, with point reads and writes, prefix scans and
//! snapshots. Operators keep hot state in their own memory and write it to a
//! backend at every checkpoint barrier; the backend is what survives.
//! [`MemoryStateBackend`] is the only implementation so far; a RocksDB backend
//! (one column family per table) is planned behind the same trait.
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
mod memory;

pub use checkpoint::{CheckpointInfo, CheckpointStore};
pub use key::{
    encode_key, encode_time, key_group_for_hash, key_group_range, subtask_for_key_group, KeyGroup,
    DEFAULT_MAX_PARALLELISM,
};
pub use memory::{MemorySnapshot, MemoryStateBackend};

/// Errors of the state layer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A table was used before it was registered with [`StateBackend::register_table`].
    #[error("state table '{0}' is not registered")]
    UnknownTable(String),
    /// Stored bytes could not be decoded: a bug or a damaged checkpoint.
    #[error("corrupt state in table '{table}': {reason}")]
    Corrupt { table: String, reason: String },
    /// The storage underneath failed (disk, RocksDB).
    #[error("state storage error: {0}")]
    Storage(String),
}

impl From<std::io::Error> for StateError {
    fn from(e: std::io::Error) -> Self {
        StateError::Storage(e.to_string())
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
/// their own. Writes need not be durable until [`StateBackend::snapshot`]
/// returns.
pub trait StateBackend: Send {
    /// Opens the table `name`, creating it if needed, and returns its handle.
    fn register_table(&mut self, name: &str) -> Result<TableId>;
    /// Reads one value.
    fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Writes one value, replacing what was there.
    fn put(&mut self, table: TableId, key: &[u8], value: &[u8]) -> Result<()>;
    /// Deletes one key; deleting a missing key is not an error.
    fn delete(&mut self, table: TableId, key: &[u8]) -> Result<()>;
    /// Deletes every key that starts with `prefix`.
    fn delete_prefix(&mut self, table: TableId, prefix: &[u8]) -> Result<()>;
    /// Scans the keys that start with `prefix`, in ascending byte order.
    fn scan_prefix<'a>(&'a self, table: TableId, prefix: &[u8]) -> Result<ScanIter<'a>>;
}
