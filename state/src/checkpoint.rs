//! Checkpoints on disk.
//!
//! A checkpoint is a directory `chk-<id>` under the job's checkpoint
//! directory, holding one file per participant (an operator subtask's state,
//! a source subtask's position) and a `_MANIFEST` written last: the file is
//! written under a temporary name, synced, and renamed, and the directory is
//! synced, so a checkpoint without a manifest is incomplete and is ignored
//! (and deleted) by the next run. The manifest lists every file with its
//! length and checksum, the plan's fingerprint, and whether the checkpoint
//! is the final one of a job that ran to its end.
//!
//! Only the newest `retained` complete checkpoints are kept.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Result, StateError};

const MANIFEST: &str = "_MANIFEST";
const MAGIC: &str = "runnel-checkpoint 1";

/// A complete checkpoint found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Checkpoint id.
    pub id: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// The plan fingerprint it was taken with.
    pub fingerprint: String,
    /// True for the final checkpoint of a job whose input ended.
    pub finished: bool,
    /// Participant names and sizes in bytes.
    pub files: Vec<(String, u64)>,
}

impl CheckpointInfo {
    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }
}

/// The checkpoints of one job.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    root: PathBuf,
    retained: usize,
}

fn io(context: &str, path: &Path, e: std::io::Error) -> StateError {
    StateError::Storage(format!("{context} {}: {e}", path.display()))
}

/// FNV-1a, enough to notice a damaged file.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Participant names become file names; keep them to a safe alphabet.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl CheckpointStore {
    /// The store under `root` (created when the first checkpoint is written).
    pub fn new(root: impl Into<PathBuf>, retained: usize) -> Self {
        Self {
            root: root.into(),
            retained: retained.max(1),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes checkpoint `id` with `(name, bytes)` per participant, manifest
    /// last, then drops old checkpoints beyond the retained count.
    pub fn write(
        &self,
        id: u64,
        fingerprint: &str,
        finished: bool,
        entries: &[(String, Vec<u8>)],
    ) -> Result<CheckpointInfo> {
        let dir = self.root.join(format!("chk-{id}"));
        if dir.exists() {
            // Left over from a run that crashed before its manifest.
            fs::remove_dir_all(&dir).map_err(|e| io("cannot clear", &dir, e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        let mut manifest =
            format!("{MAGIC}\nid {id}\nfingerprint {fingerprint}\nfinished {finished}\n");
        let mut files = Vec::new();
        for (name, bytes) in entries {
            let fname = file_name(name);
            let path = dir.join(&fname);
            write_synced(&path, bytes)?;
            manifest.push_str(&format!(
                "file {fname} {} {:016x}\n",
                bytes.len(),
                checksum(bytes)
            ));
            files.push((fname, bytes.len() as u64));
        }
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        write_synced(&tmp, manifest.as_bytes())?;
        let final_path = dir.join(MANIFEST);
        fs::rename(&tmp, &final_path).map_err(|e| io("cannot publish", &final_path, e))?;
        sync_dir(&dir)?;
        self.retain()?;
        Ok(CheckpointInfo {
            id,
            dir,
            fingerprint: fingerprint.to_string(),
            finished,
            files,
        })
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<CheckpointInfo>> {
        Ok(self.complete()?.into_iter().next_back())
    }

    /// Complete checkpoints, oldest first.
    pub fn complete(&self) -> Result<Vec<CheckpointInfo>> {
        let mut out = Vec::new();
        let Ok(read) = fs::read_dir(&self.root) else {
            return Ok(out);
        };
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = name
                .strip_prefix("chk-")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if let Some(info) = read_manifest(&entry.path(), id)? {
                out.push(info);
            }
        }
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// The bytes of participant `name` in `checkpoint`, checked against the
    /// manifest; `None` when the checkpoint has no such participant.
    pub fn read(&self, checkpoint: &CheckpointInfo, name: &str) -> Result<Option<Vec<u8>>> {
        let fname = file_name(name);
        if !checkpoint.files.iter().any(|f| f.0 == fname) {
            return Ok(None);
        }
        let path = checkpoint.dir.join(&fname);
        let bytes = fs::read(&path).map_err(|e| io("cannot read", &path, e))?;
        let manifest = fs::read_to_string(checkpoint.dir.join(MANIFEST))
            .map_err(|e| io("cannot read", &checkpoint.dir, e))?;
        let expected = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("file "))
            .find_map(|l| {
                let mut p = l.split(' ');
                (p.next() == Some(fname.as_str()))
                    .then(|| p.nth(1).map(str::to_string))
                    .flatten()
            });
        if expected.as_deref() != Some(format!("{:016x}", checksum(&bytes)).as_str()) {
            return Err(StateError::Corrupt {
                table: path.display().to_string(),
                reason: "checksum does not match the manifest".into(),
            });
        }
        Ok(Some(bytes))
    }

    /// Deletes incomplete checkpoint directories and all but the newest
    /// `retained` complete ones.
    fn retain(&self) -> Result<()> {
        let complete = self.complete()?;
        let keep: Vec<u64> = complete
            .iter()
            .rev()
            .take(self.retained)
            .map(|c| c.id)
            .collect();
        let newest = keep.first().copied().unwrap_or(0);
        let Ok(read) = fs::read_dir(&self.root) else {
            return Ok(());
        };
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = name
                .strip_prefix("chk-")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            // Incomplete directories newer than the newest complete one may
            // be a checkpoint being written; older ones are abandoned.
            if !keep.contains(&id) && id < newest {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(|e| io("cannot delete", &p, e))?;
            }
        }
        Ok(())
    }
}

fn read_manifest(dir: &Path, id: u64) -> Result<Option<CheckpointInfo>> {
    let Ok(text) = fs::read_to_string(dir.join(MANIFEST)) else {
        return Ok(None);
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(StateError::Corrupt {
            table: dir.display().to_string(),
            reason: "not a Runnel checkpoint manifest".into(),
        });
    }
    let mut info = CheckpointInfo {
        id,
        dir: dir.to_path_buf(),
        fingerprint: String::new(),
        finished: false,
        files: Vec::new(),
    };
    for line in lines {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "fingerprint" => info.fingerprint = rest.to_string(),
            "finished" => info.finished = rest == "true",
            "file" => {
                let mut p = rest.split(' ');
                let name = p.next().unwrap_or_default().to_string();
                let len = p.next().and_then(|l| l.parse().ok()).unwrap_or(0);
                info.files.push((name, len));
            }
            _ => {}
        }
    }
    Ok(Some(info))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| io("cannot create", path, e))?;
    f.write_all(bytes)
        .map_err(|e| io("cannot write", path, e))?;
    f.sync_all().map_err(|e| io("cannot sync", path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Makes the rename of the manifest durable.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("runnel-chk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn write_read_latest_and_retention() -> Result<()> {
        let root = temp("basic");
        let store = CheckpointStore::new(&root, 2);
        assert_eq!(store.latest()?, None);
        for id in 1..=4u64 {
            store.write(
                id,
                "plan-a",
                false,
                &[("op/0".into(), vec![id as u8; 3]), ("src 0".into(), vec![])],
            )?;
        }
        let all = store.complete()?;
        assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), vec![3, 4]);
        let latest = store.latest()?.expect("a checkpoint");
        assert_eq!(latest.fingerprint, "plan-a");
        assert_eq!(store.read(&latest, "op/0")?, Some(vec![4, 4, 4]));
        assert_eq!(store.read(&latest, "src 0")?, Some(vec![]));
        assert_eq!(store.read(&latest, "missing")?, None);
        let _ = fs::remove_dir_all(&root);
        Ok(())
    }

    #[test]
    fn a_checkpoint_without_manifest_is_ignored_and_damage_is_detected() -> Result<()> {
        let root = temp("partial");
        let store = CheckpointStore::new(&root, 3);
        store.write(1, "p", false, &[("a".into(), b"one".to_vec())])?;
        // A crash while writing checkpoint 2: files but no manifest.
        fs::create_dir_all(root.join("chk-2"))?;
        fs::write(root.join("chk-2").join("a"), b"two")?;
        let latest = store.latest()?.expect("checkpoint 1");
        assert_eq!(latest.id, 1);
        fs::write(latest.dir.join("a"), b"ONE")?;
        assert!(matches!(
            store.read(&latest, "a"),
            Err(StateError::Corrupt { .. })
        ));
        // Writing 3 clears the abandoned 2.
        store.write(3, "p", true, &[])?;
        assert!(!root.join("chk-2").exists());
        assert!(store.latest()?.is_some_and(|c| c.finished));
        let _ = fs::remove_dir_all(&root);
        Ok(())
    }
}
