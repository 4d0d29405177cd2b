//! The RocksDB state backend.
//!
//! One RocksDB instance per operator subtask, in a private working
//! directory; one column family per state table. The working directory is
//! scratch space: writes skip the write-ahead log, because durability comes
//! from checkpoints, not from the working copy. A snapshot flushes the
//! memtables and takes a RocksDB checkpoint into a new directory: SST files
//! are hard-linked (they are immutable), so consecutive checkpoints share
//! every file that did not change in between and a snapshot costs what was
//! written since the last one. A restore hard-links the checkpoint's SST
//! files into a fresh working directory and copies the few small files
//! RocksDB rewrites (MANIFEST, CURRENT, OPTIONS), so the checkpoint itself
//! is never modified.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IngestExternalFileOptions,
    IteratorMode, Options, ReadOptions, SstFileWriter, WriteBatch, WriteOptions, DB,
};

/// Below this many entries, [`StateBackend::write_sorted`] writes a batch
/// into the memtable; from it on, an SST file that RocksDB ingests.
const INGEST_FROM: usize = 4096;

use crate::{prefix_end, Result, ScanIter, SnapshotData, StateBackend, StateError, TableId};

/// RocksDB's own column family, always present; state tables never use it.
const DEFAULT_CF: &str = "default";

/// Memory RocksDB itself may use per instance, besides the operators'
/// caches.
#[derive(Debug, Clone, Copy)]
pub struct RocksMemory {
    /// Size of one memtable of one column family.
    pub write_buffer: usize,
    /// Size of the block cache shared by the instance's column families.
    pub block_cache: usize,
}

impl Default for RocksMemory {
    fn default() -> Self {
        Self {
            write_buffer: 16 << 20,
            block_cache: 32 << 20,
        }
    }
}

impl RocksMemory {
    /// A split of `budget` bytes: a quarter to memtables, a quarter to the
    /// block cache, within sane bounds (the rest is the operators' cache).
    pub fn within(budget: usize) -> Self {
        Self {
            write_buffer: (budget / 8).clamp(1 << 20, 64 << 20),
            block_cache: (budget / 4).clamp(4 << 20, 256 << 20),
        }
    }
}

/// A [`StateBackend`] on RocksDB; see the module docs.
pub struct RocksStateBackend {
    // Declared first so it is closed before the directory is removed.
    db: Option<DB>,
    dir: PathBuf,
    options: Options,
    names: Vec<String>,
    write: WriteOptions,
    /// SST files (name to size) of the last snapshot, to tell new bytes.
    last_files: HashMap<String, u64>,
    /// Numbers the SST files written for ingestion.
    ingested: u64,
}

impl std::fmt::Debug for RocksStateBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStateBackend")
            .field("dir", &self.dir)
            .field("tables", &self.names)
            .finish()
    }
}

fn storage(
    context: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
) -> StateError {
    StateError::storage(context, e)
}

/// Makes `dir` an empty directory, deleting what was there.
fn empty_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| storage(&format!("clear {}", dir.display()), e))?;
    }
    fs::create_dir_all(dir).map_err(|e| storage(&format!("create {}", dir.display()), e))
}

fn options(memory: RocksMemory) -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_write_buffer_size(memory.write_buffer);
    o.set_max_write_buffer_number(2);
    o.set_max_background_jobs(2);
    // Keep file handles bounded: a job has one instance per operator subtask.
    o.set_max_open_files(256);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(memory.block_cache));
    table.set_bloom_filter(10.0, false);
    // Index and filter blocks stay in the table readers' memory (about
    // 1.3 bytes a key for the filters) rather than in the block cache:
    // cached there, data blocks push them out and every point read loads
    // and verifies a whole filter again.
    table.set_cache_index_and_filter_blocks(false);
    o.set_block_based_table_factory(&table);
    o
}

impl RocksStateBackend {
    /// Opens an empty backend in `dir`, which is cleared first (it is a
    /// working directory, never a checkpoint).
    pub fn open(dir: impl Into<PathBuf>, memory: RocksMemory) -> Result<Self> {
        let dir = dir.into();
        empty_dir(&dir)?;
        Self::open_existing(dir, memory)
    }

    /// Opens a backend in `dir` holding a copy of the snapshot directory
    /// `checkpoint` (written by [`StateBackend::write_snapshot`]). `dir` is
    /// cleared first; the checkpoint is only read.
    pub fn restore(
        checkpoint: &Path,
        dir: impl Into<PathBuf>,
        memory: RocksMemory,
    ) -> Result<Self> {
        let dir = dir.into();
        empty_dir(&dir)?;
        let mut linked = HashMap::new();
        let entries = fs::read_dir(checkpoint)
            .map_err(|e| storage(&format!("read {}", checkpoint.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| storage("read checkpoint", e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let from = entry.path();
            let to = dir.join(&name);
            if name.ends_with(".sst") {
                // SST files never change once written: share them.
                if fs::hard_link(&from, &to).is_err() {
                    fs::copy(&from, &to)
                        .map_err(|e| storage(&format!("copy {}", from.display()), e))?;
                }
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                linked.insert(name, len);
            } else {
                fs::copy(&from, &to)
                    .map_err(|e| storage(&format!("copy {}", from.display()), e))?;
            }
        }
        let mut backend = Self::open_existing(dir, memory)?;
        backend.last_files = linked;
        Ok(backend)
    }

    fn open_existing(dir: PathBuf, memory: RocksMemory) -> Result<Self> {
        let opts = options(memory);
        let existing = DB::list_cf(&opts, &dir).unwrap_or_else(|_| vec![DEFAULT_CF.to_string()]);
        let cfs = existing
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(n, opts.clone()));
        let db = DB::open_cf_descriptors(&opts, &dir, cfs)
            .map_err(|e| storage(&format!("open RocksDB in {}", dir.display()), e))?;
        let names = existing.into_iter().filter(|n| n != DEFAULT_CF).collect();
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Ok(Self {
            db: Some(db),
            dir,
            options: opts,
            names,
            write,
            last_files: HashMap::new(),
            ingested: 0,
        })
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn db(&self) -> Result<&DB> {
        self.db
            .as_ref()
            .ok_or_else(|| StateError::Unavailable("the RocksDB instance is closed".into()))
    }

    fn cf(&self, table: TableId) -> Result<&rocksdb::ColumnFamily> {
        let name = self
            .names
            .get(table.0)
            .ok_or_else(|| StateError::UnknownTable(format!("#{}", table.0)))?;
        self.db()?
            .cf_handle(name)
            .ok_or_else(|| StateError::UnknownTable(name.clone()))
    }
}

impl Drop for RocksStateBackend {
    fn drop(&mut self) {
        // Close the instance, then drop the scratch copy; what must survive
        // lives in checkpoints.
        self.db = None;
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl StateBackend for RocksStateBackend {
    fn register_table(&mut self, name: &str) -> Result<TableId> {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(TableId(i));
        }
        if name == DEFAULT_CF {
            return Err(StateError::Unavailable(format!(
                "'{DEFAULT_CF}' is reserved and cannot name a state table"
            )));
        }
        let opts = self.options.clone();
        self.db
            .as_mut()
            .ok_or_else(|| StateError::Unavailable("the RocksDB instance is closed".into()))?
            .create_cf(name, &opts)
            .map_err(|e| storage(&format!("create column family '{name}'"), e))?;
        self.names.push(name.to_string());
        Ok(TableId(self.names.len() - 1))
    }

    fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self.cf(table)?;
        self.db()?
            .get_cf(cf, key)
            .map_err(|e| storage("get a RocksDB key", e))
    }

    fn put(&mut self, table: TableId, key: &[u8], value: &[u8]) -> Result<()> {
        let cf = self.cf(table)?;
        self.db()?
            .put_cf_opt(cf, key, value, &self.write)
            .map_err(|e| storage("put a RocksDB key", e))
    }

    fn write_sorted(
        &mut self,
        table: TableId,
        entries: &mut dyn Iterator<Item = (&[u8], Option<&[u8]>)>,
    ) -> Result<()> {
        // Small writes go through the memtable as one batch; large ones are
        // written as a sorted file RocksDB takes over (moved, not copied),
        // which skips the memtable and its flush.
        let mut head = Vec::with_capacity(INGEST_FROM);
        while head.len() < INGEST_FROM {
            match entries.next() {
                Some(e) => head.push(e),
                None => break,
            }
        }
        let cf = self.cf(table)?;
        let db = self.db()?;
        if head.len() < INGEST_FROM {
            let mut batch = WriteBatch::default();
            for (k, v) in head {
                match v {
                    Some(v) => batch.put_cf(cf, k, v),
                    None => batch.delete_cf(cf, k),
                }
            }
            return db
                .write_opt(batch, &self.write)
                .map_err(|e| storage("write a RocksDB batch", e));
        }
        self.ingested += 1;
        let path = self.dir.join(format!("ingest-{}.sst", self.ingested));
        let mut writer = SstFileWriter::create(&self.options);
        writer
            .open(&path)
            .map_err(|e| storage(&format!("create {}", path.display()), e))?;
        for (k, v) in head
            .into_iter()
            .chain(std::iter::from_fn(|| entries.next()))
        {
            match v {
                Some(v) => writer.put(k, v),
                None => writer.delete(k),
            }
            .map_err(|e| storage("write an SST file", e))?;
        }
        writer
            .finish()
            .map_err(|e| storage("finish an SST file", e))?;
        let mut opts = IngestExternalFileOptions::default();
        opts.set_move_files(true);
        let cf = self.cf(table)?;
        self.db()?
            .ingest_external_file_cf_opts(cf, &opts, vec![&path])
            .map_err(|e| storage("ingest an SST file into RocksDB", e))
    }

    fn delete(&mut self, table: TableId, key: &[u8]) -> Result<()> {
        let cf = self.cf(table)?;
        self.db()?
            .delete_cf_opt(cf, key, &self.write)
            .map_err(|e| storage("delete a RocksDB key", e))
    }

    fn delete_prefix(&mut self, table: TableId, prefix: &[u8]) -> Result<()> {
        let cf = self.cf(table)?;
        let db = self.db()?;
        match prefix_end(prefix) {
            Some(end) => db
                .delete_range_cf_opt(cf, prefix, &end, &self.write)
                .map_err(|e| storage("delete a RocksDB key range", e)),
            None => {
                // The prefix is empty or all 0xff bytes, so no key bounds the
                // range from above: delete up to a long run of 0xff, then
                // whatever sorts after that one key at a time.
                let mut far = prefix.to_vec();
                far.extend_from_slice(&[0xff; 64]);
                db.delete_range_cf_opt(cf, prefix, &far, &self.write)
                    .map_err(|e| storage("delete a RocksDB key range", e))?;
                let keys: Vec<Box<[u8]>> = db
                    .iterator_cf(cf, IteratorMode::From(&far, rocksdb::Direction::Forward))
                    .map(|r| r.map(|(k, _)| k))
                    .take_while(|r| r.as_ref().map_or(true, |k| k.starts_with(prefix)))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| storage("scan RocksDB keys", e))?;
                for k in keys {
                    db.delete_cf_opt(cf, &k, &self.write)
                        .map_err(|e| storage("delete a RocksDB key", e))?;
                }
                Ok(())
            }
        }
    }

    fn scan_prefix<'a>(&'a self, table: TableId, prefix: &[u8]) -> Result<ScanIter<'a>> {
        let cf = self.cf(table)?;
        let mut read = ReadOptions::default();
        if let Some(end) = prefix_end(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let owned = prefix.to_vec();
        let iter = self
            .db()?
            .iterator_cf_opt(
                cf,
                read,
                IteratorMode::From(prefix, rocksdb::Direction::Forward),
            )
            .map(|r| {
                r.map(|(k, v)| (k.into_vec(), v.into_vec()))
                    .map_err(|e| storage("scan RocksDB keys", e))
            })
            .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&owned)));
        Ok(Box::new(iter))
    }

    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn write_snapshot(&mut self, staging: &Path) -> Result<SnapshotData> {
        let db = self.db()?;
        // With the write-ahead log off, the memtables must reach SST files
        // before the checkpoint links them.
        for name in &self.names {
            if let Some(cf) = db.cf_handle(name) {
                db.flush_cf(cf).map_err(|e| storage("flush RocksDB", e))?;
            }
        }
        if staging.exists() {
            fs::remove_dir_all(staging)
                .map_err(|e| storage(&format!("clear {}", staging.display()), e))?;
        }
        if let Some(parent) = staging.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| storage(&format!("create {}", parent.display()), e))?;
        }
        Checkpoint::new(db)
            .and_then(|c| c.create_checkpoint(staging))
            .map_err(|e| storage("take a RocksDB checkpoint", e))?;
        let mut total = 0u64;
        let mut new_bytes = 0u64;
        let mut files = HashMap::new();
        for entry in
            fs::read_dir(staging).map_err(|e| storage(&format!("read {}", staging.display()), e))?
        {
            let entry = entry.map_err(|e| storage("read checkpoint", e))?;
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let name = entry.file_name().to_string_lossy().to_string();
            total += len;
            if name.ends_with(".sst") {
                if self.last_files.get(&name) != Some(&len) {
                    new_bytes += len;
                }
                files.insert(name, len);
            } else {
                new_bytes += len;
            }
        }
        self.last_files = files;
        Ok(SnapshotData::Dir {
            path: staging.to_path_buf(),
            bytes: total,
            new_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("runnel-rocks-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    fn keys(b: &dyn StateBackend, t: TableId, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        b.scan_prefix(t, prefix)?
            .map(|r| r.map(|(k, _)| k))
            .collect()
    }

    #[test]
    fn tables_are_column_families_with_ordered_prefix_scans() -> Result<()> {
        let root = temp("basic");
        let mut b = RocksStateBackend::open(root.join("work"), RocksMemory::default())?;
        let t = b.register_table("op/agg")?;
        let u = b.register_table("op/other")?;
        assert_eq!(b.register_table("op/agg")?, t);
        b.put(t, b"a2", b"y")?;
        b.put(t, b"a1", b"x")?;
        b.put(t, b"b1", b"z")?;
        b.put(t, &[0xff, 0xff], b"edge")?;
        b.put(u, b"a1", b"other table")?;
        assert_eq!(keys(&b, t, b"a")?, vec![b"a1".to_vec(), b"a2".to_vec()]);
        assert_eq!(keys(&b, t, &[0xff])?, vec![vec![0xff, 0xff]]);
        assert_eq!(b.get(u, b"a1")?, Some(b"other table".to_vec()));
        b.put(t, &[0xff; 70], b"longer than any range end")?;
        b.delete_prefix(t, b"a")?;
        b.delete_prefix(t, &[0xff])?;
        assert_eq!(keys(&b, t, b"")?, vec![b"b1".to_vec()]);
        b.put(u, &[0xff; 70], b"x")?;
        b.delete_prefix(u, &[])?;
        assert_eq!(keys(&b, u, b"")?, Vec::<Vec<u8>>::new());
        b.put(u, b"a1", b"other table")?;
        b.delete(t, b"b1")?;
        b.delete(t, b"never there")?;
        assert_eq!(b.get(t, b"b1")?, None);
        assert_eq!(b.get(u, b"a1")?, Some(b"other table".to_vec()));
        assert!(b.register_table("default").is_err());
        drop(b);
        assert!(!root.join("work").exists(), "the working copy is removed");
        let _ = fs::remove_dir_all(&root);
        Ok(())
    }

    #[test]
    fn snapshots_restore_exactly_and_share_unchanged_files() -> Result<()> {
        let root = temp("snap");
        let mut b = RocksStateBackend::open(root.join("work"), RocksMemory::default())?;
        let t = b.register_table("agg")?;
        // Values that do not compress away, so the data outweighs the
        // small files every checkpoint rewrites (MANIFEST, OPTIONS).
        let value = |i: u32| -> Vec<u8> {
            let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            (0..100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        for i in 0..20_000u32 {
            b.put(t, &i.to_be_bytes(), &value(i))?;
        }
        let SnapshotData::Dir {
            path: first,
            bytes,
            new_bytes,
        } = b.write_snapshot(&root.join("chk-1"))?
        else {
            panic!("RocksDB snapshots are directories");
        };
        assert!(bytes > 0 && new_bytes == bytes, "{bytes} {new_bytes}");
        // A few changes after the first snapshot.
        b.put(t, &5u32.to_be_bytes(), b"changed")?;
        b.delete(t, &6u32.to_be_bytes())?;
        let SnapshotData::Dir {
            path: second,
            bytes: bytes2,
            new_bytes: new2,
        } = b.write_snapshot(&root.join("chk-2"))?
        else {
            panic!("RocksDB snapshots are directories");
        };
        assert!(
            new2 * 4 < bytes2,
            "the second snapshot shares the first one's data: {new2} new of {bytes2}"
        );
        b.put(t, &7u32.to_be_bytes(), b"after the snapshot")?;
        drop(b);

        for (dir, five, six) in [
            (&first, value(5), Some(value(6))),
            (&second, b"changed".to_vec(), None),
        ] {
            let mut r = RocksStateBackend::restore(dir, root.join("restored"), Default::default())?;
            let t = r.register_table("agg")?;
            assert_eq!(r.table_names(), vec!["agg".to_string()]);
            assert_eq!(r.get(t, &5u32.to_be_bytes())?, Some(five));
            assert_eq!(r.get(t, &6u32.to_be_bytes())?, six);
            assert_eq!(r.get(t, &7u32.to_be_bytes())?, Some(value(7)));
            // Writing to the restored copy leaves the checkpoint as it was.
            r.put(t, &5u32.to_be_bytes(), b"later run")?;
            r.write_snapshot(&root.join("chk-3"))?;
        }
        let mut again = RocksStateBackend::restore(&first, root.join("again"), Default::default())?;
        let t = again.register_table("agg")?;
        assert_eq!(again.get(t, &5u32.to_be_bytes())?, Some(value(5)));
        assert_eq!(keys(&again, t, b"")?.len(), 20_000);
        drop(again);
        let _ = fs::remove_dir_all(&root);
        Ok(())
    }
}
