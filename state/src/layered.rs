//! Asynchronous snapshots: a backend whose writes land in memory first and
//! reach the backend underneath on a background thread.
//!
//! [`AsyncStateBackend`] wraps any [`StateBackend`]. The subtask's writes go
//! to an *active layer*, an ordered map per table plus the prefixes deleted
//! in it. [`StateBackend::snapshot_async`] seals the active layer (it moves
//! into a queue, nothing is copied) and hands it to the backend's writer
//! thread, which applies it to the backend underneath and then takes that
//! backend's snapshot (for RocksDB: flush the memtables, link a
//! checkpoint). The subtask goes on at once with a fresh active layer; the
//! caller waits on the returned [`PendingSnapshot`] only when it needs the
//! result (the checkpoint coordinator, before it writes the manifest).
//!
//! Reads look at the active layer, then the sealed layers from newest to
//! oldest, then the backend underneath: a sealed layer stays in the queue
//! until the writer has applied all of it, so a read never misses a write
//! whatever the writer has done so far. Layers are applied strictly in
//! order, so the backend underneath never holds a write newer than a layer
//! still queued, and a snapshot taken after applying layer N holds exactly
//! the writes made before the barrier that sealed N.
//!
//! Memory stays bounded: the active layer is also sealed (without a
//! snapshot) once it holds more than its size limit, and the subtask waits
//! when [`MAX_SEALED`] layers are queued, which is backpressure from the
//! writer to the subtask.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;

use crate::{PendingSnapshot, Result, ScanIter, SnapshotData, StateBackend, StateError, TableId};

/// Sealed layers that may wait for the writer before the subtask waits too.
pub const MAX_SEALED: usize = 3;

/// Writes the writer applies under one hold of the lock on the backend
/// underneath, so that a read by the subtask waits for at most one chunk.
const APPLY_CHUNK: usize = 65_536;

/// Bytes an entry costs in a layer besides its key and value (map node,
/// vectors): used for the size limit only.
const ENTRY_OVERHEAD: usize = 48;

type Entries = HashMap<Box<[u8]>, Option<Box<[u8]>>, ahash::RandomState>;

/// What one layer holds for one table.
///
/// Point writes and reads go to a hash map: a barrier that writes a
/// million changed groups must cost little per entry, and an ordered map
/// of byte strings costs a pointer chase per comparison. Ordered access
/// (prefix scans and prefix deletes) uses the keys sorted once, built
/// when first needed after new keys arrived; a key deleted since stays in
/// that list and is skipped, because the map is what decides.
#[derive(Debug, Default)]
struct TableLayer {
    /// Prefixes deleted in this layer, before any write in `entries`.
    cleared: Vec<Vec<u8>>,
    /// Writes (`Some`) and deletes (`None`) after the prefixes were deleted.
    entries: Entries,
    /// The keys of `entries` in byte order (and keys deleted since).
    sorted: OnceLock<Vec<Box<[u8]>>>,
}

impl TableLayer {
    /// What this layer says of `key`: `Some(value)` when it decides it
    /// (`Some(None)`: deleted), `None` when an older layer must be asked.
    fn lookup(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        if let Some(v) = self.entries.get(key) {
            return Some(v.as_deref());
        }
        if self.cleared.iter().any(|p| key.starts_with(p)) {
            return Some(None);
        }
        None
    }

    fn sorted(&self) -> &[Box<[u8]>] {
        self.sorted.get_or_init(|| {
            let mut keys: Vec<Box<[u8]>> = self.entries.keys().cloned().collect();
            keys.sort_unstable();
            keys
        })
    }

    /// The entries whose key starts with `prefix`, in key order.
    fn prefixed<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let keys = self.sorted();
        let from = keys.partition_point(|k| k.as_ref() < prefix);
        keys[from..]
            .iter()
            .take_while(move |k| k.starts_with(prefix))
            .filter_map(move |k| self.entries.get(k).map(|v| (k.as_ref(), v.as_deref())))
    }

    /// Records a write; returns the bytes it added to the layer.
    fn write(&mut self, key: Box<[u8]>, value: Option<Box<[u8]>>) -> isize {
        let added = (key.len() + value.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD) as isize;
        let klen = key.len();
        match self.entries.insert(key, value) {
            Some(old) => added - (klen + old.map_or(0, |o| o.len()) + ENTRY_OVERHEAD) as isize,
            None => {
                // A new key: the sorted list no longer has every key.
                self.sorted = OnceLock::new();
                added
            }
        }
    }
}

/// Writes made between two seals.
#[derive(Debug, Default)]
struct Layer {
    tables: Vec<TableLayer>,
    bytes: usize,
}

impl Layer {
    fn table(&self, t: TableId) -> Option<&TableLayer> {
        self.tables.get(t.0)
    }

    fn table_mut(&mut self, t: TableId) -> &mut TableLayer {
        if self.tables.len() <= t.0 {
            self.tables.resize_with(t.0 + 1, TableLayer::default);
        }
        &mut self.tables[t.0]
    }

    fn add_bytes(&mut self, delta: isize) {
        self.bytes = self.bytes.saturating_add_signed(delta);
    }
}

/// What the writer thread is asked to do, in order.
enum Job {
    /// Apply a sealed layer (the front of the queue).
    Apply,
    /// Apply a sealed layer, then snapshot the backend into `staging`.
    Snapshot(PathBuf, mpsc::Sender<Result<SnapshotData>>),
}

/// What the subtask and the writer share.
struct Shared {
    inner: Mutex<Box<dyn StateBackend>>,
    /// Sealed layers not yet fully applied, oldest first.
    sealed: RwLock<VecDeque<Arc<Layer>>>,
    /// Signalled when the writer drops a layer from `sealed`.
    drained: Condvar,
    drained_lock: Mutex<()>,
    /// The first failure of the writer; every later call reports it.
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn failure(&self) -> Option<StateError> {
        let failed = self.failed.lock().ok()?;
        failed
            .as_ref()
            .map(|m| StateError::Unavailable(format!("the state writer failed earlier: {m}")))
    }

    fn lock_inner(&self) -> Result<std::sync::MutexGuard<'_, Box<dyn StateBackend>>> {
        self.inner
            .lock()
            .map_err(|_| StateError::Unavailable("the state writer panicked".into()))
    }

    /// Applies the oldest sealed layer to the backend underneath, a chunk
    /// at a time, then drops it from the queue.
    fn apply_front(&self) -> Result<()> {
        let layer = self
            .sealed
            .read()
            .map_err(|_| StateError::Unavailable("the state writer panicked".into()))?
            .front()
            .cloned();
        let Some(layer) = layer else {
            return Ok(());
        };
        let mut guard = self.lock_inner()?;
        for (t, table) in layer.tables.iter().enumerate() {
            for p in &table.cleared {
                guard.delete_prefix(TableId(t), p)?;
            }
            // In key order, in chunks: one hold of the lock per chunk lets
            // a waiting read in between. The order is sorted here, over
            // borrowed keys, rather than with the layer's cached list,
            // which would copy every key.
            let mut sorted: Vec<(&[u8], Option<&[u8]>)> = table
                .entries
                .iter()
                .map(|(k, v)| (k.as_ref(), v.as_deref()))
                .collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut entries = sorted.into_iter().peekable();
            while entries.peek().is_some() {
                let mut chunk = entries.by_ref().take(APPLY_CHUNK);
                guard.write_sorted(TableId(t), &mut chunk)?;
                drop(guard);
                guard = self.lock_inner()?;
            }
        }
        drop(guard);
        if let Ok(mut sealed) = self.sealed.write() {
            sealed.pop_front();
        }
        let _g = self.drained_lock.lock();
        self.drained.notify_all();
        Ok(())
    }

    fn run(&self, jobs: mpsc::Receiver<Job>) {
        for job in jobs {
            let failed = self.failure();
            match job {
                Job::Apply => {
                    if failed.is_none() {
                        if let Err(e) = self.apply_front() {
                            self.record(&e);
                        }
                    }
                }
                Job::Snapshot(staging, reply) => {
                    // A layer that cannot be applied loses state: every
                    // later call fails. A snapshot that cannot be written
                    // fails only this checkpoint; the state is intact.
                    let result = match failed {
                        Some(e) => Err(e),
                        None => match self.apply_front() {
                            Err(e) => {
                                self.record(&e);
                                Err(e)
                            }
                            Ok(()) => self
                                .lock_inner()
                                .and_then(|mut b| b.write_snapshot(&staging)),
                        },
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn record(&self, e: &StateError) {
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert_with(|| e.to_string());
        }
        // Nothing more will be applied: wake a subtask waiting for room.
        let _g = self.drained_lock.lock();
        self.drained.notify_all();
    }
}

/// A [`StateBackend`] that takes snapshots on a background thread; see the
/// module docs.
pub struct AsyncStateBackend {
    shared: Arc<Shared>,
    active: Layer,
    names: Vec<String>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    /// The active layer is sealed once it holds this many bytes.
    seal_bytes: usize,
}

impl std::fmt::Debug for AsyncStateBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStateBackend")
            .field("tables", &self.names)
            .field("active_bytes", &self.active.bytes)
            .finish()
    }
}

impl AsyncStateBackend {
    /// Wraps `inner`; the active layer is sealed once it holds about
    /// `seal_bytes` bytes. `name` names the writer thread.
    pub fn new(inner: Box<dyn StateBackend>, seal_bytes: usize, name: &str) -> Result<Self> {
        let names = inner.table_names();
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            sealed: RwLock::new(VecDeque::new()),
            drained: Condvar::new(),
            drained_lock: Mutex::new(()),
            failed: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let worker = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name(format!("state-writer-{name}"))
            .spawn(move || worker.run(rx))
            .map_err(|e| StateError::storage("start the state writer thread", e))?;
        Ok(Self {
            shared,
            active: Layer::default(),
            names,
            jobs: Some(tx),
            writer: Some(writer),
            seal_bytes: seal_bytes.max(1 << 16),
        })
    }

    /// Bytes of sealed layers the writer has not applied yet plus the
    /// active layer: memory this wrapper holds.
    pub fn pending_bytes(&self) -> usize {
        let sealed: usize = self
            .shared
            .sealed
            .read()
            .map(|s| s.iter().map(|l| l.bytes).sum())
            .unwrap_or(0);
        sealed + self.active.bytes
    }

    /// Moves the active layer to the writer's queue and queues `job` for it,
    /// first waiting while the queue is full.
    fn seal(&mut self, job: Job) -> Result<()> {
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        {
            let mut g = self
                .shared
                .drained_lock
                .lock()
                .map_err(|_| StateError::Unavailable("the state writer panicked".into()))?;
            while self.shared.sealed.read().map(|s| s.len()).unwrap_or(0) >= MAX_SEALED
                && self.shared.failure().is_none()
            {
                g = self
                    .shared
                    .drained
                    .wait(g)
                    .map_err(|_| StateError::Unavailable("the state writer panicked".into()))?;
            }
        }
        if let Some(e) = self.shared.failure() {
            return Err(e);
        }
        let layer = std::mem::take(&mut self.active);
        self.shared
            .sealed
            .write()
            .map_err(|_| StateError::Unavailable("the state writer panicked".into()))?
            .push_back(Arc::new(layer));
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| StateError::Unavailable("the state writer has stopped".into()))
    }

    fn after_write(&mut self) -> Result<()> {
        if self.active.bytes >= self.seal_bytes {
            self.seal(Job::Apply)?;
        }
        Ok(())
    }

    /// The sealed layers, newest first, for a read.
    fn sealed_newest_first(&self) -> Vec<Arc<Layer>> {
        self.shared
            .sealed
            .read()
            .map(|s| s.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for AsyncStateBackend {
    fn drop(&mut self) {
        // The writer finishes what it was given, then the backend
        // underneath is dropped (and removes its working copy).
        self.jobs = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl StateBackend for AsyncStateBackend {
    fn register_table(&mut self, name: &str) -> Result<TableId> {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(TableId(i));
        }
        let id = self.shared.lock_inner()?.register_table(name)?;
        if id.0 != self.names.len() {
            return Err(StateError::Unavailable(format!(
                "table '{name}' got handle {} from the backend underneath, expected {}",
                id.0,
                self.names.len()
            )));
        }
        self.names.push(name.to_string());
        Ok(id)
    }

    fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(found) = self.active.table(table).and_then(|t| t.lookup(key)) {
            return Ok(found.map(<[u8]>::to_vec));
        }
        for layer in self.sealed_newest_first() {
            if let Some(found) = layer.table(table).and_then(|t| t.lookup(key)) {
                return Ok(found.map(<[u8]>::to_vec));
            }
        }
        self.shared.lock_inner()?.get(table, key)
    }

    fn put(&mut self, table: TableId, key: &[u8], value: &[u8]) -> Result<()> {
        let delta = self
            .active
            .table_mut(table)
            .write(key.into(), Some(value.into()));
        self.active.add_bytes(delta);
        self.after_write()
    }

    fn put_owned(&mut self, table: TableId, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let delta = self
            .active
            .table_mut(table)
            .write(key.into_boxed_slice(), Some(value.into_boxed_slice()));
        self.active.add_bytes(delta);
        self.after_write()
    }

    fn delete(&mut self, table: TableId, key: &[u8]) -> Result<()> {
        let delta = self.active.table_mut(table).write(key.into(), None);
        self.active.add_bytes(delta);
        self.after_write()
    }

    fn delete_prefix(&mut self, table: TableId, prefix: &[u8]) -> Result<()> {
        let t = self.active.table_mut(table);
        let doomed: Vec<Box<[u8]>> = t.prefixed(prefix).map(|(k, _)| k.into()).collect();
        let mut freed = 0usize;
        for k in doomed {
            // The sorted list keeps the key; the map no longer has it.
            if let Some(v) = t.entries.remove(&k) {
                freed += k.len() + v.map_or(0, |v| v.len()) + ENTRY_OVERHEAD;
            }
        }
        if !t.cleared.iter().any(|p| prefix.starts_with(p)) {
            t.cleared.retain(|p| !p.starts_with(prefix));
            t.cleared.push(prefix.to_vec());
        }
        self.active.bytes = self.active.bytes.saturating_sub(freed) + prefix.len();
        self.after_write()
    }

    fn scan_prefix<'a>(&'a self, table: TableId, prefix: &[u8]) -> Result<ScanIter<'a>> {
        let sealed = self.sealed_newest_first();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = {
            let inner = self.shared.lock_inner()?;
            let entries = inner
                .scan_prefix(table, prefix)?
                .collect::<Result<BTreeMap<_, _>>>()?;
            entries
        };
        // Oldest layer first, so that newer ones win.
        for layer in sealed
            .iter()
            .rev()
            .map(|l| l.table(table))
            .chain(std::iter::once(self.active.table(table)))
            .flatten()
        {
            for p in &layer.cleared {
                if p.starts_with(prefix) || prefix.starts_with(p) {
                    merged.retain(|k, _| !k.starts_with(p));
                }
            }
            for (k, v) in layer.prefixed(prefix) {
                match v {
                    Some(v) => merged.insert(k.to_vec(), v.to_vec()),
                    None => merged.remove(k),
                };
            }
        }
        Ok(Box::new(merged.into_iter().map(Ok)))
    }

    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn write_snapshot(&mut self, staging: &Path) -> Result<SnapshotData> {
        self.snapshot_async(staging)?.wait()
    }

    fn snapshot_async(&mut self, staging: &Path) -> Result<PendingSnapshot> {
        let (tx, rx) = mpsc::channel();
        self.seal(Job::Snapshot(staging.to_path_buf(), tx))?;
        Ok(PendingSnapshot::waiting(rx))
    }
}

impl Layer {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tables.iter().map(|t| t.entries.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStateBackend, RocksMemory, RocksStateBackend};

    fn keys(b: &dyn StateBackend, t: TableId, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        b.scan_prefix(t, prefix)
            .and_then(|i| i.collect::<Result<Vec<_>>>())
            .unwrap_or_else(|e| panic!("scan failed: {e}"))
    }

    /// The same operations on a plain backend and on the wrapped one give
    /// the same reads at every step, whatever the writer has applied.
    #[test]
    fn reads_see_every_write_whatever_the_writer_has_done() -> Result<()> {
        let mut plain = MemoryStateBackend::new();
        let mut wrapped = AsyncStateBackend::new(Box::new(MemoryStateBackend::new()), 1, "t")?;
        let tp = plain.register_table("a")?;
        let tw = wrapped.register_table("a")?;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..6000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = vec![(x % 4) as u8, ((x >> 8) % 16) as u8];
            match x % 11 {
                0 => {
                    plain.delete_prefix(tp, &key[..1])?;
                    wrapped.delete_prefix(tw, &key[..1])?;
                }
                1 | 2 => {
                    plain.delete(tp, &key)?;
                    wrapped.delete(tw, &key)?;
                }
                _ => {
                    let v = step.to_le_bytes();
                    plain.put(tp, &key, &v)?;
                    wrapped.put(tw, &key, &v)?;
                }
            }
            if step % 97 == 0 {
                let staging = std::env::temp_dir().join("unused");
                let _pending = wrapped.snapshot_async(&staging)?;
            }
            assert_eq!(plain.get(tp, &key)?, wrapped.get(tw, &key)?, "step {step}");
            if step % 13 == 0 {
                for p in [&[][..], &key[..1], &key[..]] {
                    assert_eq!(keys(&plain, tp, p), keys(&wrapped, tw, p), "step {step}");
                }
            }
        }
        Ok(())
    }

    /// A snapshot holds exactly the writes made before it was asked for,
    /// even when the subtask keeps writing while the writer works.
    #[test]
    fn snapshots_hold_the_writes_before_the_barrier_only() -> Result<()> {
        let root = std::env::temp_dir().join(format!("runnel-layered-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let rocks = RocksStateBackend::open(root.join("work"), RocksMemory::default())?;
        let mut b = AsyncStateBackend::new(Box::new(rocks), 1 << 20, "t")?;
        let t = b.register_table("agg")?;
        for i in 0..50_000u32 {
            b.put(t, &i.to_be_bytes(), b"before")?;
        }
        b.delete_prefix(t, &[0, 0])?; // keys 0..65535 with a zero high half
        b.put(t, &7u32.to_be_bytes(), b"kept")?;
        let pending = b.snapshot_async(&root.join("chk-1"))?;
        assert!(b.active.len() == 0, "the barrier moved the writes out");
        for i in 0..50_000u32 {
            b.put(t, &i.to_be_bytes(), b"after")?;
        }
        let SnapshotData::Dir { path, .. } = pending.wait()? else {
            panic!("RocksDB snapshots are directories");
        };
        assert_eq!(
            b.get(t, &9u32.to_be_bytes())?.as_deref(),
            Some(&b"after"[..])
        );
        let mut r =
            RocksStateBackend::restore(&path, root.join("restored"), RocksMemory::default())?;
        let rt = r.register_table("agg")?;
        assert_eq!(
            keys(&r, rt, &[]),
            vec![(7u32.to_be_bytes().to_vec(), b"kept".to_vec())]
        );
        drop(r);
        drop(b);
        let _ = std::fs::remove_dir_all(&root);
        Ok(())
    }

    /// A snapshot that cannot be written fails that checkpoint only: the
    /// state is intact and the next snapshot holds every write.
    #[test]
    fn a_failed_snapshot_is_reported_and_the_next_one_works() -> Result<()> {
        let root = std::env::temp_dir().join(format!("runnel-layered-f-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;
        // A file where the snapshot's parent directory must go.
        std::fs::write(root.join("blocker"), b"x")?;
        let rocks = RocksStateBackend::open(root.join("work"), RocksMemory::default())?;
        let mut b = AsyncStateBackend::new(Box::new(rocks), 1 << 20, "t")?;
        let t = b.register_table("agg")?;
        b.put(t, b"k", b"v")?;
        let err = b
            .snapshot_async(&root.join("blocker").join("chk-1"))?
            .wait()
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("blocker")),
            "{err:?}"
        );
        b.put(t, b"k2", b"v2")?;
        let SnapshotData::Dir { path, .. } = b.snapshot_async(&root.join("chk-2"))?.wait()? else {
            panic!("RocksDB snapshots are directories");
        };
        let mut r =
            RocksStateBackend::restore(&path, root.join("restored"), RocksMemory::default())?;
        let rt = r.register_table("agg")?;
        assert_eq!(
            keys(&r, rt, &[]),
            vec![
                (b"k".to_vec(), b"v".to_vec()),
                (b"k2".to_vec(), b"v2".to_vec())
            ]
        );
        drop(r);
        drop(b);
        let _ = std::fs::remove_dir_all(&root);
        Ok(())
    }
}
