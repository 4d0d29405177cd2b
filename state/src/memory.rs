//! The in-memory state backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{prefix_end, Result, ScanIter, SnapshotData, StateBackend, StateError, TableId};

/// A [`StateBackend`] that keeps every table in an ordered map in memory.
///
/// Snapshots are copies of the maps, serialized whole into a checkpoint:
/// the `'hashmap'` backend of a job, and the backend of operator unit tests.
#[derive(Debug, Default)]
pub struct MemoryStateBackend {
    names: Vec<String>,
    tables: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
}

/// A frozen copy of a [`MemoryStateBackend`].
#[derive(Debug, Clone, Default)]
pub struct MemorySnapshot {
    tables: Arc<BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemorySnapshot {
    /// Number of entries over all tables.
    pub fn len(&self) -> usize {
        self.tables.values().map(BTreeMap::len).sum()
    }

    /// True when no table holds an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Serializes the snapshot: per table its name and entries, every
    /// string and byte string prefixed by its length (u32 little-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![1u8];
        let put = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        out.extend_from_slice(&(self.tables.len() as u32).to_le_bytes());
        for (name, map) in self.tables.iter() {
            put(&mut out, name.as_bytes());
            out.extend_from_slice(&(map.len() as u32).to_le_bytes());
            for (k, v) in map {
                put(&mut out, k);
                put(&mut out, v);
            }
        }
        out
    }

    /// Reads what [`MemorySnapshot::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Self> {
        let corrupt = |reason: &str| StateError::Corrupt {
            table: "snapshot".into(),
            reason: reason.into(),
        };
        let mut rest = bytes;
        let mut take = |n: usize| -> crate::Result<&[u8]> {
            if rest.len() < n {
                return Err(corrupt("truncated"));
            }
            let (a, b) = rest.split_at(n);
            rest = b;
            Ok(a)
        };
        if take(1)? != [1u8] {
            return Err(corrupt("unknown snapshot version"));
        }
        let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let tables = u32_at(take(4)?);
        let mut out = BTreeMap::new();
        for _ in 0..tables {
            let n = u32_at(take(4)?);
            let name = String::from_utf8(take(n)?.to_vec())
                .map_err(|_| corrupt("table name is not UTF-8"))?;
            let entries = u32_at(take(4)?);
            let mut map = BTreeMap::new();
            for _ in 0..entries {
                let k = u32_at(take(4)?);
                let key = take(k)?.to_vec();
                let v = u32_at(take(4)?);
                map.insert(key, take(v)?.to_vec());
            }
            out.insert(name, map);
        }
        Ok(Self {
            tables: Arc::new(out),
        })
    }
}

impl MemoryStateBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend holding the contents of `snapshot`; tables are registered
    /// again by name, as after a restart.
    pub fn restore(snapshot: &MemorySnapshot) -> Self {
        let mut backend = Self::new();
        for (name, map) in snapshot.tables.iter() {
            backend.names.push(name.clone());
            backend.tables.push(map.clone());
        }
        backend
    }

    /// Copies the current contents of every table.
    pub fn snapshot(&self) -> MemorySnapshot {
        let tables = self
            .names
            .iter()
            .cloned()
            .zip(self.tables.iter().cloned())
            .collect();
        MemorySnapshot {
            tables: Arc::new(tables),
        }
    }

    fn table_ref(&self, table: TableId) -> Result<&BTreeMap<Vec<u8>, Vec<u8>>> {
        self.tables
            .get(table.0)
            .ok_or_else(|| StateError::UnknownTable(format!("#{}", table.0)))
    }

    fn table_mut(&mut self, table: TableId) -> Result<&mut BTreeMap<Vec<u8>, Vec<u8>>> {
        self.tables
            .get_mut(table.0)
            .ok_or_else(|| StateError::UnknownTable(format!("#{}", table.0)))
    }
}

impl StateBackend for MemoryStateBackend {
    fn register_table(&mut self, name: &str) -> Result<TableId> {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(TableId(i));
        }
        self.names.push(name.to_string());
        self.tables.push(BTreeMap::new());
        Ok(TableId(self.tables.len() - 1))
    }

    fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table_ref(table)?.get(key).cloned())
    }

    fn put(&mut self, table: TableId, key: &[u8], value: &[u8]) -> Result<()> {
        self.table_mut(table)?.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, table: TableId, key: &[u8]) -> Result<()> {
        self.table_mut(table)?.remove(key);
        Ok(())
    }

    fn delete_prefix(&mut self, table: TableId, prefix: &[u8]) -> Result<()> {
        let map = self.table_mut(table)?;
        let keys: Vec<Vec<u8>> = match prefix_end(prefix) {
            Some(end) => map
                .range(prefix.to_vec()..end)
                .map(|(k, _)| k.clone())
                .collect(),
            None => map
                .range(prefix.to_vec()..)
                .map(|(k, _)| k.clone())
                .collect(),
        };
        for k in keys {
            map.remove(&k);
        }
        Ok(())
    }

    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn write_snapshot(&mut self, _staging: &std::path::Path) -> Result<SnapshotData> {
        Ok(SnapshotData::Bytes(self.snapshot().to_bytes()))
    }

    fn scan_prefix<'a>(&'a self, table: TableId, prefix: &[u8]) -> Result<ScanIter<'a>> {
        let map = self.table_ref(table)?;
        let iter: ScanIter<'a> = match prefix_end(prefix) {
            Some(end) => Box::new(
                map.range(prefix.to_vec()..end)
                    .map(|(k, v)| Ok((k.clone(), v.clone()))),
            ),
            None => Box::new(
                map.range(prefix.to_vec()..)
                    .map(|(k, v)| Ok((k.clone(), v.clone()))),
            ),
        };
        Ok(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_scan_and_delete() -> Result<()> {
        let mut b = MemoryStateBackend::new();
        let t = b.register_table("agg")?;
        b.put(t, b"a1", b"x")?;
        b.put(t, b"a2", b"y")?;
        b.put(t, b"b1", b"z")?;
        b.put(t, &[0xff, 0xff], b"edge")?;
        let keys: Vec<Vec<u8>> = b
            .scan_prefix(t, b"a")?
            .map(|r| r.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        assert_eq!(keys, vec![b"a1".to_vec(), b"a2".to_vec()]);
        assert_eq!(b.scan_prefix(t, &[0xff])?.count(), 1);
        b.delete_prefix(t, b"a")?;
        assert_eq!(b.get(t, b"a1")?, None);
        assert_eq!(b.get(t, b"b1")?, Some(b"z".to_vec()));
        Ok(())
    }

    #[test]
    fn snapshot_bytes_round_trip_and_reject_damage() -> Result<()> {
        let mut b = MemoryStateBackend::new();
        let t = b.register_table("agg")?;
        b.put(t, b"k1", b"v1")?;
        b.put(t, b"", b"empty key")?;
        let u = b.register_table("other")?;
        b.put(u, &[0xff; 3], &[])?;
        let bytes = b.snapshot().to_bytes();
        let back = MemorySnapshot::from_bytes(&bytes)?;
        let mut r = MemoryStateBackend::restore(&back);
        let t2 = r.register_table("agg")?;
        assert_eq!(r.get(t2, b"k1")?, Some(b"v1".to_vec()));
        assert_eq!(r.get(t2, b"")?, Some(b"empty key".to_vec()));
        let u2 = r.register_table("other")?;
        assert_eq!(r.get(u2, &[0xff; 3])?, Some(vec![]));
        for cut in 0..bytes.len() {
            assert!(
                MemorySnapshot::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        Ok(())
    }

    #[test]
    fn snapshot_is_isolated_from_later_writes() -> Result<()> {
        let mut b = MemoryStateBackend::new();
        let t = b.register_table("agg")?;
        b.put(t, b"k", b"1")?;
        let snap = b.snapshot();
        b.put(t, b"k", b"2")?;
        let mut restored = MemoryStateBackend::restore(&snap);
        let t2 = restored.register_table("agg")?;
        assert_eq!(restored.get(t2, b"k")?, Some(b"1".to_vec()));
        assert_eq!(b.get(t, b"k")?, Some(b"2".to_vec()));
        Ok(())
    }
}
