//! Checkpoints on disk.
//!
//! A checkpoint is a directory `chk-<id>` under the job's checkpoint
//! directory, holding one entry per participant (an operator subtask's
//! state: a file of bytes or, from RocksDB, a directory of hard-linked SST
//! files; a source subtask's position) and a `_MANIFEST` written last: the file is
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

use crate::{Result, SnapshotData, StateError};

pub(crate) const MANIFEST: &str = "_MANIFEST";
pub(crate) const MAGIC: &str = "runnel-checkpoint 1";

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
    /// Participant names and sizes in bytes, for participants stored as one
    /// file.
    pub files: Vec<(String, u64)>,
    /// Participants stored as a directory (a RocksDB checkpoint): name,
    /// size, and the part of the size new in this checkpoint.
    pub dirs: Vec<(String, u64, u64)>,
}

impl CheckpointInfo {
    /// Total size in bytes, files shared with other checkpoints included.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum::<u64>() + self.dirs.iter().map(|d| d.1).sum::<u64>()
    }

    /// Bytes this checkpoint wrote: its files, and of its directories only
    /// the files the previous checkpoint did not share.
    pub fn new_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum::<u64>() + self.dirs.iter().map(|d| d.2).sum::<u64>()
    }
}

/// The checkpoints of one job.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    /// The checkpoints' directory; for a remote store, the local scratch
    /// directory (staging and working copies).
    root: PathBuf,
    retained: usize,
    /// Checkpoints on object storage, when the location is `s3://`.
    remote: Option<std::sync::Arc<crate::remote::RemoteCheckpoints>>,
}

fn io(context: &str, path: &Path, e: std::io::Error) -> StateError {
    StateError::storage(format!("{context} {}", path.display()), e)
}

/// FNV-1a, enough to notice a damaged file.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Participant names become file names; keep them to a safe alphabet.
pub(crate) fn file_name(name: &str) -> String {
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
            remote: None,
        }
    }

    /// The store at `location`: a local directory, or `s3://bucket/path`
    /// (see [`crate::remote`]), configured by `options` (`s3.*`), whose
    /// local scratch (staging, RocksDB working copies, downloaded
    /// checkpoints) goes to `scratch` or a directory of its own under the
    /// system's temporary directory.
    pub fn open(
        location: &str,
        retained: usize,
        options: &[(String, String)],
        scratch: Option<PathBuf>,
    ) -> Result<Self> {
        if !location.starts_with("s3://") {
            return Ok(Self::new(location, retained));
        }
        let remote = crate::remote::RemoteCheckpoints::open(location, options)?;
        let root = match scratch {
            Some(dir) => dir.join(
                crate::remote::default_scratch(location)
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            ),
            None => crate::remote::default_scratch(location),
        };
        Ok(Self {
            root,
            retained: retained.max(1),
            remote: Some(std::sync::Arc::new(remote)),
        })
    }

    /// Where the checkpoints are, as a user would name it.
    pub fn location(&self) -> String {
        match &self.remote {
            Some(r) => r.url().to_string(),
            None => self.root.display().to_string(),
        }
    }

    /// The remote store, when checkpoints are on object storage.
    pub fn remote(&self) -> Option<&crate::remote::RemoteCheckpoints> {
        self.remote.as_deref()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a participant writes a directory snapshot for checkpoint `id`
    /// (`None`: the end-of-input checkpoint, whose id is not known yet)
    /// before the checkpoint is written; [`CheckpointStore::write`] moves it.
    pub fn staging_path(&self, id: Option<u64>, name: &str) -> PathBuf {
        let bucket = id.map_or_else(|| "end".to_string(), |i| i.to_string());
        self.root
            .join("_staging")
            .join(bucket)
            .join(file_name(name))
    }

    /// A scratch directory for the working copies of state backends.
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("_work")
    }

    /// Deletes the staging and working areas, left over by a run that
    /// crashed; called before a job starts.
    pub fn clear_scratch(&self) -> Result<()> {
        for dir in [
            self.root.join("_staging"),
            self.work_dir(),
            self.root.join("_restore"),
        ] {
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(|e| io("clear", &dir, e))?;
            }
        }
        Ok(())
    }

    /// Writes checkpoint `id` with one entry per participant (bytes are
    /// written as a file, a staged directory is moved in), manifest last,
    /// then drops old checkpoints beyond the retained count.
    pub fn write(
        &self,
        id: u64,
        fingerprint: &str,
        finished: bool,
        entries: &[(String, SnapshotData)],
    ) -> Result<CheckpointInfo> {
        if let Some(remote) = &self.remote {
            let (files, dirs) = remote.write(id, fingerprint, finished, entries, self.retained)?;
            if let Err(e) = self.clear_staging_up_to(id) {
                eprintln!(
                    "[warn] checkpoint {id} is complete, but clearing its staging failed: {e}"
                );
            }
            return Ok(CheckpointInfo {
                id,
                dir: PathBuf::from(format!("{}/chk-{id}", remote.url())),
                fingerprint: fingerprint.to_string(),
                finished,
                files,
                dirs,
            });
        }
        let dir = self.root.join(format!("chk-{id}"));
        if dir.exists() {
            // Left over from a run that crashed before its manifest.
            fs::remove_dir_all(&dir).map_err(|e| io("clear", &dir, e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
        let mut manifest =
            format!("{MAGIC}\nid {id}\nfingerprint {fingerprint}\nfinished {finished}\n");
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for (name, data) in entries {
            let fname = file_name(name);
            let path = dir.join(&fname);
            match data {
                SnapshotData::Bytes(bytes) => {
                    write_synced(&path, bytes)?;
                    manifest.push_str(&format!(
                        "file {fname} {} {:016x}\n",
                        bytes.len(),
                        checksum(bytes)
                    ));
                    files.push((fname, bytes.len() as u64));
                }
                SnapshotData::Dir {
                    path: staged,
                    bytes,
                    new_bytes,
                } => {
                    fs::rename(staged, &path).map_err(|e| io("move", staged, e))?;
                    sync_tree(&path)?;
                    manifest.push_str(&format!("dir {fname} {bytes} {new_bytes}\n"));
                    dirs.push((fname, *bytes, *new_bytes));
                }
            }
        }
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        write_synced(&tmp, manifest.as_bytes())?;
        let final_path = dir.join(MANIFEST);
        fs::rename(&tmp, &final_path).map_err(|e| io("publish", &final_path, e))?;
        sync_dir(&dir)?;
        // The checkpoint is complete now; failing to tidy up older ones
        // must not fail it.
        if let Err(e) = self.retain().and_then(|()| self.clear_staging_up_to(id)) {
            eprintln!("[warn] checkpoint {id} is complete, but cleaning up older ones failed: {e}");
        }
        Ok(CheckpointInfo {
            id,
            dir,
            fingerprint: fingerprint.to_string(),
            finished,
            files,
            dirs,
        })
    }

    /// Removes staged snapshots of checkpoints up to `id` (moved into the
    /// checkpoint, or abandoned). The end-of-input bucket is left alone: a
    /// subtask may be writing its final snapshot there while a periodic
    /// checkpoint completes.
    fn clear_staging_up_to(&self, id: u64) -> Result<()> {
        let staging = self.root.join("_staging");
        let Ok(read) = fs::read_dir(&staging) else {
            return Ok(());
        };
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let stale = name.parse::<u64>().is_ok_and(|n| n <= id);
            if stale {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(|e| io("delete", &p, e))?;
            }
        }
        Ok(())
    }

    /// The directory of participant `name` in `checkpoint`, when it was
    /// stored as a directory; from object storage, downloaded first into
    /// the local scratch directory.
    pub fn dir_of(&self, checkpoint: &CheckpointInfo, name: &str) -> Result<Option<PathBuf>> {
        let fname = file_name(name);
        if !checkpoint.dirs.iter().any(|d| d.0 == fname) {
            return Ok(None);
        }
        let Some(remote) = &self.remote else {
            return Ok(Some(checkpoint.dir.join(fname)));
        };
        let local = self
            .root
            .join("_restore")
            .join(format!("chk-{}", checkpoint.id))
            .join(&fname);
        Ok(remote
            .download_dir(checkpoint.id, &fname, &local)?
            .then_some(local))
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<CheckpointInfo>> {
        Ok(self.complete()?.into_iter().next_back())
    }

    /// Complete checkpoints, oldest first.
    pub fn complete(&self) -> Result<Vec<CheckpointInfo>> {
        let mut out = Vec::new();
        if let Some(remote) = &self.remote {
            for id in remote.complete_ids()? {
                let Some(m) = remote.manifest(id)? else {
                    continue;
                };
                out.push(CheckpointInfo {
                    id,
                    dir: PathBuf::from(format!("{}/chk-{id}", remote.url())),
                    fingerprint: m.fingerprint,
                    finished: m.finished,
                    files: m.files.into_iter().map(|f| (f.0, f.1)).collect(),
                    dirs: m.dirs,
                });
            }
            return Ok(out);
        }
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
        if let Some(remote) = &self.remote {
            return remote.read(checkpoint.id, &fname);
        }
        if !checkpoint.files.iter().any(|f| f.0 == fname) {
            return Ok(None);
        }
        let path = checkpoint.dir.join(&fname);
        let bytes = fs::read(&path).map_err(|e| io("read", &path, e))?;
        let manifest = fs::read_to_string(checkpoint.dir.join(MANIFEST))
            .map_err(|e| io("read", &checkpoint.dir, e))?;
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
                // Manifest first: a crash halfway through leaves an
                // incomplete checkpoint (ignored), never a damaged one.
                let manifest = p.join(MANIFEST);
                if manifest.exists() {
                    fs::remove_file(&manifest).map_err(|e| io("delete", &manifest, e))?;
                }
                fs::remove_dir_all(&p).map_err(|e| io("delete", &p, e))?;
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
        dirs: Vec::new(),
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
            "dir" => {
                let mut p = rest.split(' ');
                let name = p.next().unwrap_or_default().to_string();
                let len = p.next().and_then(|l| l.parse().ok()).unwrap_or(0);
                let new = p.next().and_then(|l| l.parse().ok()).unwrap_or(0);
                if !dir.join(&name).is_dir() {
                    return Err(StateError::Corrupt {
                        table: dir.display().to_string(),
                        reason: format!("the manifest lists '{name}', which is missing"),
                    });
                }
                info.dirs.push((name, len, new));
            }
            _ => {}
        }
    }
    Ok(Some(info))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| io("create", path, e))?;
    f.write_all(bytes).map_err(|e| io("write", path, e))?;
    f.sync_all().map_err(|e| io("sync", path, e))
}

/// Syncs every file of a snapshot directory and the directory itself.
/// Hard-linked files were synced when first written; syncing them again is
/// cheap.
fn sync_tree(dir: &Path) -> Result<()> {
    let read = fs::read_dir(dir).map_err(|e| io("read", dir, e))?;
    for entry in read.flatten() {
        let p = entry.path();
        if p.is_file() {
            fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("sync", &p, e))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Makes the rename of the manifest durable.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync", dir, e))
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
                &[
                    ("op/0".into(), SnapshotData::Bytes(vec![id as u8; 3])),
                    ("src 0".into(), SnapshotData::Bytes(vec![])),
                ],
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
        store.write(
            1,
            "p",
            false,
            &[("a".into(), SnapshotData::Bytes(b"one".to_vec()))],
        )?;
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

    #[test]
    fn staged_directories_move_into_the_checkpoint() -> Result<()> {
        let root = temp("dirs");
        let store = CheckpointStore::new(&root, 1);
        let staged = store.staging_path(Some(1), "state-1-0");
        fs::create_dir_all(&staged)?;
        fs::write(staged.join("000001.sst"), b"sst bytes")?;
        // An abandoned snapshot of an older checkpoint, and one of the next.
        fs::create_dir_all(store.staging_path(Some(0), "state-1-0"))?;
        fs::create_dir_all(store.staging_path(Some(2), "state-1-0"))?;
        // A subtask ending while checkpoint 1 completes.
        fs::create_dir_all(store.staging_path(None, "state-1-1"))?;
        let info = store.write(
            1,
            "p",
            false,
            &[
                (
                    "state-1-0".into(),
                    SnapshotData::Dir {
                        path: staged.clone(),
                        bytes: 9,
                        new_bytes: 9,
                    },
                ),
                ("position-0-0".into(), SnapshotData::Bytes(vec![1, 2])),
            ],
        )?;
        assert!(!staged.exists());
        assert!(!store.staging_path(Some(0), "state-1-0").exists());
        assert!(store.staging_path(Some(2), "state-1-0").exists());
        assert!(store.staging_path(None, "state-1-1").exists());
        let latest = store.latest()?.expect("checkpoint 1");
        assert_eq!(latest, info);
        assert_eq!((latest.size(), latest.new_bytes()), (11, 11));
        let dir = store
            .dir_of(&latest, "state-1-0")?
            .expect("a directory entry");
        assert_eq!(fs::read(dir.join("000001.sst"))?, b"sst bytes");
        assert_eq!(store.dir_of(&latest, "position-0-0")?, None);
        assert_eq!(store.read(&latest, "position-0-0")?, Some(vec![1, 2]));
        // A manifest naming a directory that is gone is damage, not absence.
        fs::remove_dir_all(latest.dir.join("state-1-0"))?;
        assert!(matches!(store.latest(), Err(StateError::Corrupt { .. })));
        let _ = fs::remove_dir_all(&root);
        Ok(())
    }
}
