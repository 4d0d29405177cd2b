//! Checkpoints on object storage (S3 and servers that speak its protocol).
//!
//! [`s3_store`] builds a client from Flink's option names (`s3.endpoint`,
//! `s3.access-key`, `s3.secret-key`, `s3.path.style.access`, `s3.region`)
//! on top of the `AWS_*` environment variables. [`RemoteCheckpoints`] keeps
//! a job's checkpoints under an `s3://bucket/prefix`:
//!
//! ```text
//! <prefix>/chk-<id>/_MANIFEST              written last: the checkpoint exists when it does
//! <prefix>/chk-<id>/<entry>                a participant stored as bytes (positions, ...)
//! <prefix>/chk-<id>/<entry>/<file>         RocksDB's small files (MANIFEST, CURRENT, OPTIONS)
//! <prefix>/shared/<entry>/<id>-<file.sst>  SST files, uploaded once, shared by reference
//! ```
//!
//! An SST file never changes once RocksDB wrote it, so a checkpoint uploads
//! only the SST files the previous one did not reference, and its manifest
//! lists, for every file of every directory entry, the object that holds
//! it. The upload key carries the id of the checkpoint that first uploaded
//! it, so a file that RocksDB writes again under an old name (after a
//! restore from an older checkpoint) never overwrites one another manifest
//! references. Retention deletes a checkpoint's manifest before its own
//! objects, then every shared object that no retained manifest lists.
//!
//! Object stores are asynchronous; these calls block on a small runtime of
//! their own, from a thread of their own when the caller is already inside
//! a runtime, so they can be made from any thread.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use crate::{Result, SnapshotData, StateError};

/// Option names (Flink's) this module reads, with what each sets.
pub const S3_OPTIONS: &[&str] = &[
    "s3.endpoint",
    "s3.access-key",
    "s3.secret-key",
    "s3.region",
    "s3.path.style.access",
    "s3.request-timeout",
];

fn storage(
    action: impl Into<String>,
    e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
) -> StateError {
    StateError::storage(action, e)
}

/// `s3://bucket/some/prefix` split into bucket and prefix (no slashes at
/// either end); `None` when `location` is not an `s3://` URL.
pub fn parse_s3_url(location: &str) -> Option<(String, String)> {
    let rest = location.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// A client for `bucket` from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, ...) and then
/// `options`, which win: see [`S3_OPTIONS`]. Requests fail after a few
/// retries within `s3.request-timeout` (default 60 s: a whole SST file is one request) rather than the
/// minutes a client waits by default, so that a checkpoint against an
/// unreachable server fails and is retried by the next one. Writes that
/// must not overwrite (a Delta commit) use S3's conditional put.
pub fn s3_store(bucket: &str, options: &[(String, String)]) -> Result<Arc<dyn ObjectStore>> {
    let get = |k: &str| {
        options
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim())
    };
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        b = b.with_region("us-east-1");
    }
    // object_store's own names (`aws_endpoint`, ...; a Delta table's
    // `'storage.*'` options) are taken too; Flink's names below win.
    for (k, v) in options {
        if let Ok(key) = k.parse::<AmazonS3ConfigKey>() {
            b = b.with_config(key, v.trim());
        }
    }
    let mut allow_http = options
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("allow_http") && v.trim() == "true");
    if let Some(endpoint) = get("s3.endpoint") {
        allow_http |= endpoint.starts_with("http://");
        b = b.with_endpoint(endpoint);
    } else if let Some(endpoint) = options
        .iter()
        .find(|(k, _)| {
            matches!(
                k.parse::<AmazonS3ConfigKey>(),
                Ok(AmazonS3ConfigKey::Endpoint)
            )
        })
        .map(|(_, v)| v.trim().to_string())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT").ok())
    {
        allow_http |= endpoint.starts_with("http://");
        b = b.with_endpoint(endpoint);
    }
    if let Some(v) = get("s3.access-key") {
        b = b.with_config(AmazonS3ConfigKey::AccessKeyId, v);
    }
    if let Some(v) = get("s3.secret-key") {
        b = b.with_config(AmazonS3ConfigKey::SecretAccessKey, v);
    }
    if let Some(v) = get("s3.region") {
        b = b.with_region(v);
    }
    if let Some(v) = get("s3.path.style.access") {
        let path_style = match v.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(StateError::Unavailable(format!(
                    "'s3.path.style.access' must be 'true' or 'false', not '{v}'"
                )))
            }
        };
        b = b.with_virtual_hosted_style_request(!path_style);
    }
    let timeout = match get("s3.request-timeout") {
        None => Duration::from_secs(60),
        Some(v) => parse_duration(v).ok_or_else(|| {
            StateError::Unavailable(format!(
                "'s3.request-timeout' must be a duration such as '10 s', not '{v}'"
            ))
        })?,
    };
    let client = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_timeout(timeout)
        .with_connect_timeout(timeout.min(Duration::from_secs(5)));
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: timeout,
        ..RetryConfig::default()
    };
    let store = b
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| storage(format!("configure S3 for bucket '{bucket}'"), e))?;
    Ok(Arc::new(store))
}

/// `'10 s'`, `'500 ms'`, `'2 min'`, `'10s'`: a whole number and a unit.
fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit.trim().to_ascii_lowercase().as_str() {
        "ms" | "milli" | "millis" | "milliseconds" => Some(Duration::from_millis(n)),
        "s" | "sec" | "secs" | "second" | "seconds" => Some(Duration::from_secs(n)),
        "min" | "mins" | "minute" | "minutes" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

/// Runs object-store futures to completion from blocking code.
#[derive(Debug)]
struct Blocking(tokio::runtime::Runtime);

impl Blocking {
    fn new() -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("runnel-object-store")
            .enable_all()
            .build()
            .map(Blocking)
            .map_err(|e| storage("start the object store runtime", e))
    }

    /// Runs the future `make` returns; `make` is called on the thread that
    /// blocks on it.
    fn run<F>(&self, make: impl FnOnce() -> F + Send) -> F::Output
    where
        F: Future,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.0.block_on(make());
        }
        // Inside a runtime, blocking on another one from this thread would
        // panic: block on a thread of our own.
        std::thread::scope(|s| match s.spawn(|| self.0.block_on(make())).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}

/// One file of a directory entry of a remote checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The directory entry (participant) it belongs to.
    pub entry: String,
    /// Its name inside the directory.
    pub file: String,
    /// Its size.
    pub len: u64,
    /// The object holding it, relative to the checkpoints' prefix.
    pub key: String,
}

/// A job's checkpoints under an `s3://` prefix; see the module docs.
#[derive(Debug)]
pub struct RemoteCheckpoints {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    rt: Blocking,
    /// SST files of the last checkpoint written (or restored), by entry,
    /// name and size: uploaded already, so the next checkpoint refers to
    /// them instead of uploading them again.
    uploaded: Mutex<HashMap<(String, String, u64), String>>,
}

/// What a remote manifest says.
#[derive(Debug, Clone)]
pub(crate) struct RemoteManifest {
    pub(crate) fingerprint: String,
    pub(crate) finished: bool,
    /// Byte entries: name, length, checksum.
    pub(crate) files: Vec<(String, u64, u64)>,
    /// Directory entries: name, size, new bytes.
    pub(crate) dirs: Vec<(String, u64, u64)>,
    pub(crate) parts: Vec<RemoteFile>,
}

impl RemoteCheckpoints {
    /// The checkpoints at `url` (`s3://bucket/prefix`).
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Self> {
        let (bucket, prefix) = parse_s3_url(url).ok_or_else(|| {
            StateError::Unavailable(format!("'{url}' is not an s3://bucket/path location"))
        })?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            store: s3_store(&bucket, options)?,
            prefix,
            rt: Blocking::new()?,
            uploaded: Mutex::new(HashMap::new()),
        })
    }

    /// The location, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn what(&self, verb: &str, key: &str) -> String {
        format!("{verb} {}/{key}", self.url)
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(key);
        self.rt
            .run(|| self.store.put(&path, PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| storage(self.what("upload", key), e))
    }

    fn put_file(&self, key: &str, local: &Path) -> Result<()> {
        let bytes =
            std::fs::read(local).map_err(|e| storage(format!("read {}", local.display()), e))?;
        self.put(key, bytes)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        let got = self.rt.run(|| async {
            match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| storage(self.what("download", key), e))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match self.rt.run(|| self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage(self.what("delete", key), e)),
        }
    }

    /// Keys (relative to the prefix) under `dir`, recursively.
    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.path(dir);
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .run(|| self.store.list(Some(&path)).try_collect())
            .map_err(|e| storage(self.what("list", dir), e))?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(str::to_string))
            .collect())
    }

    /// Uploads checkpoint `id`: every entry, then the manifest; then drops
    /// checkpoints beyond the newest `retained` and unreferenced shared
    /// files. Staged directories are removed once uploaded.
    pub fn write(
        &self,
        id: u64,
        fingerprint: &str,
        finished: bool,
        entries: &[(String, SnapshotData)],
        retained: usize,
    ) -> Result<(Vec<(String, u64)>, Vec<(String, u64, u64)>)> {
        let chk = format!("chk-{id}");
        let mut manifest = format!(
            "{}\nid {id}\nfingerprint {fingerprint}\nfinished {finished}\n",
            crate::checkpoint::MAGIC
        );
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut referenced = HashMap::new();
        let uploaded = self.uploaded.lock().map(|u| u.clone()).unwrap_or_default();
        for (name, data) in entries {
            let fname = crate::checkpoint::file_name(name);
            match data {
                SnapshotData::Bytes(bytes) => {
                    self.put(&format!("{chk}/{fname}"), bytes.clone())?;
                    manifest.push_str(&format!(
                        "file {fname} {} {:016x}\n",
                        bytes.len(),
                        crate::checkpoint::checksum(bytes)
                    ));
                    files.push((fname, bytes.len() as u64));
                }
                SnapshotData::Dir { path, bytes, .. } => {
                    let mut parts = Vec::new();
                    let mut new_bytes = 0u64;
                    let mut listing: Vec<(String, u64)> = std::fs::read_dir(path)
                        .map_err(|e| storage(format!("read {}", path.display()), e))?
                        .flatten()
                        .map(|e| {
                            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                            (e.file_name().to_string_lossy().to_string(), len)
                        })
                        .collect();
                    listing.sort();
                    for (file, len) in listing {
                        let local = path.join(&file);
                        let ident = (fname.clone(), file.clone(), len);
                        let key = if file.ends_with(".sst") {
                            match uploaded.get(&ident) {
                                Some(key) => key.clone(),
                                None => {
                                    let key = format!("shared/{fname}/{id}-{file}");
                                    self.put_file(&key, &local)?;
                                    new_bytes += len;
                                    key
                                }
                            }
                        } else {
                            let key = format!("{chk}/{fname}/{file}");
                            self.put_file(&key, &local)?;
                            new_bytes += len;
                            key
                        };
                        if file.ends_with(".sst") {
                            referenced.insert(ident, key.clone());
                        }
                        parts.push(format!("part {fname} {file} {len} {key}\n"));
                    }
                    manifest.push_str(&format!("dir {fname} {bytes} {new_bytes}\n"));
                    for p in parts {
                        manifest.push_str(&p);
                    }
                    dirs.push((fname, *bytes, new_bytes));
                }
            }
        }
        self.put(
            &format!("{chk}/{}", crate::checkpoint::MANIFEST),
            manifest.into_bytes(),
        )?;
        if let Ok(mut u) = self.uploaded.lock() {
            *u = referenced;
        }
        // Uploaded: the local copies are scratch now.
        for (_, data) in entries {
            if let SnapshotData::Dir { path, .. } = data {
                let _ = std::fs::remove_dir_all(path);
            }
        }
        // The checkpoint is complete; tidying up must not fail it.
        if let Err(e) = self.retain(retained) {
            eprintln!(
                "[warn] checkpoint {id} is complete, but cleaning up older ones in {} failed: {e}",
                self.url
            );
        }
        Ok((files, dirs))
    }

    /// Ids of the checkpoints that have a manifest, oldest first.
    pub(crate) fn complete_ids(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = self
            .list("")?
            .iter()
            .filter_map(|k| {
                let (dir, rest) = k.split_once('/')?;
                (rest == crate::checkpoint::MANIFEST)
                    .then(|| dir.strip_prefix("chk-")?.parse().ok())
                    .flatten()
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The manifest of checkpoint `id`; `None` when it has none.
    pub(crate) fn manifest(&self, id: u64) -> Result<Option<RemoteManifest>> {
        let key = format!("chk-{id}/{}", crate::checkpoint::MANIFEST);
        let Some(bytes) = self.get(&key)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StateError::Corrupt {
            table: format!("{}/{key}", self.url),
            reason,
        };
        let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some(crate::checkpoint::MAGIC) {
            return Err(corrupt("not a Runnel checkpoint manifest".into()));
        }
        let mut m = RemoteManifest {
            fingerprint: String::new(),
            finished: false,
            files: Vec::new(),
            dirs: Vec::new(),
            parts: Vec::new(),
        };
        for line in lines {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            let f: Vec<&str> = rest.split(' ').collect();
            let num = |i: usize| -> Result<u64> {
                f.get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| corrupt(format!("bad line '{line}'")))
            };
            match kind {
                "fingerprint" => m.fingerprint = rest.to_string(),
                "finished" => m.finished = rest == "true",
                "file" => {
                    let sum = f
                        .get(2)
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or_else(|| corrupt(format!("bad line '{line}'")))?;
                    m.files.push((f[0].to_string(), num(1)?, sum));
                }
                "dir" => m.dirs.push((f[0].to_string(), num(1)?, num(2)?)),
                "part" => {
                    if f.len() != 4 {
                        return Err(corrupt(format!("bad line '{line}'")));
                    }
                    m.parts.push(RemoteFile {
                        entry: f[0].to_string(),
                        file: f[1].to_string(),
                        len: num(2)?,
                        key: f[3].to_string(),
                    });
                }
                _ => {}
            }
        }
        Ok(Some(m))
    }

    /// The bytes of entry `name` of checkpoint `id`, checked against its
    /// manifest's checksum.
    pub(crate) fn read(&self, id: u64, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(m) = self.manifest(id)? else {
            return Ok(None);
        };
        let Some((_, _, sum)) = m.files.iter().find(|f| f.0 == name) else {
            return Ok(None);
        };
        let key = format!("chk-{id}/{name}");
        let bytes = self.get(&key)?.ok_or_else(|| StateError::Corrupt {
            table: format!("{}/{key}", self.url),
            reason: "the manifest lists it, but it is missing".into(),
        })?;
        if crate::checkpoint::checksum(&bytes) != *sum {
            return Err(StateError::Corrupt {
                table: format!("{}/{key}", self.url),
                reason: "checksum does not match the manifest".into(),
            });
        }
        Ok(Some(bytes))
    }

    /// Downloads directory entry `name` of checkpoint `id` into `local`
    /// (made empty first). Its SST files count as uploaded for the next
    /// checkpoint: a restored RocksDB instance keeps them.
    pub(crate) fn download_dir(&self, id: u64, name: &str, local: &Path) -> Result<bool> {
        let Some(m) = self.manifest(id)? else {
            return Ok(false);
        };
        if !m.dirs.iter().any(|d| d.0 == name) {
            return Ok(false);
        }
        if local.exists() {
            std::fs::remove_dir_all(local)
                .map_err(|e| storage(format!("clear {}", local.display()), e))?;
        }
        std::fs::create_dir_all(local)
            .map_err(|e| storage(format!("create {}", local.display()), e))?;
        let mut seeded = Vec::new();
        for part in m.parts.iter().filter(|p| p.entry == name) {
            let bytes = self.get(&part.key)?.ok_or_else(|| StateError::Corrupt {
                table: format!("{}/{}", self.url, part.key),
                reason: format!("checkpoint {id} lists it, but it is missing"),
            })?;
            if bytes.len() as u64 != part.len {
                return Err(StateError::Corrupt {
                    table: format!("{}/{}", self.url, part.key),
                    reason: format!("{} bytes, the manifest says {}", bytes.len(), part.len),
                });
            }
            let to = local.join(&part.file);
            std::fs::write(&to, bytes)
                .map_err(|e| storage(format!("write {}", to.display()), e))?;
            if part.file.ends_with(".sst") {
                seeded.push((
                    (part.entry.clone(), part.file.clone(), part.len),
                    part.key.clone(),
                ));
            }
        }
        if let Ok(mut u) = self.uploaded.lock() {
            u.extend(seeded);
        }
        Ok(true)
    }

    /// Keeps the newest `retained` complete checkpoints: deletes older
    /// manifests first, then their objects, then shared files no kept
    /// manifest lists.
    fn retain(&self, retained: usize) -> Result<()> {
        let ids = self.complete_ids()?;
        let keep: Vec<u64> = ids.iter().rev().take(retained.max(1)).copied().collect();
        let Some(&newest) = keep.first() else {
            return Ok(());
        };
        let all = self.list("")?;
        let mut chk_dirs: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for key in &all {
            if let Some(id) = key
                .split_once('/')
                .and_then(|(d, _)| d.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                chk_dirs.entry(id).or_default().push(key.clone());
            }
        }
        for (id, keys) in &chk_dirs {
            // Incomplete ones newer than the newest complete checkpoint may
            // be being written.
            if keep.contains(id) || *id > newest {
                continue;
            }
            self.delete(&format!("chk-{id}/{}", crate::checkpoint::MANIFEST))?;
            for k in keys {
                self.delete(k)?;
            }
        }
        let mut referenced = std::collections::HashSet::new();
        for id in &keep {
            if let Some(m) = self.manifest(*id)? {
                referenced.extend(m.parts.into_iter().map(|p| p.key));
            }
        }
        for key in all.iter().filter(|k| k.starts_with("shared/")) {
            if !referenced.contains(key) {
                self.delete(key)?;
            }
        }
        Ok(())
    }

    /// Every object a complete checkpoint lists and the store lacks: empty
    /// unless something deleted what it should not have (for tests and
    /// for checking a bucket by hand).
    pub fn missing_objects(&self) -> Result<Vec<String>> {
        let present: std::collections::HashSet<String> = self.list("")?.into_iter().collect();
        let mut missing = Vec::new();
        for id in self.complete_ids()? {
            if let Some(m) = self.manifest(id)? {
                for p in m.parts {
                    if !present.contains(&p.key) {
                        missing.push(p.key);
                    }
                }
                for (name, ..) in m.files {
                    let key = format!("chk-{id}/{name}");
                    if !present.contains(&key) {
                        missing.push(key);
                    }
                }
            }
        }
        Ok(missing)
    }
}

/// Where a remote store keeps its local scratch (staging and RocksDB
/// working copies) when no directory is given: one per location, under
/// the system's temporary directory.
pub fn default_scratch(url: &str) -> PathBuf {
    let h = crate::checkpoint::checksum(url.as_bytes());
    std::env::temp_dir().join(format!("runnel-checkpoints-{h:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_and_durations_parse() {
        assert_eq!(
            parse_s3_url("s3://bucket/a/b/"),
            Some(("bucket".into(), "a/b".into()))
        );
        assert_eq!(
            parse_s3_url("s3://bucket"),
            Some(("bucket".into(), String::new()))
        );
        assert_eq!(parse_s3_url("s3:///x"), None);
        assert_eq!(parse_s3_url("/local/dir"), None);
        assert_eq!(parse_duration("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2 min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }

    #[test]
    fn bad_s3_options_are_refused_with_their_name() {
        let opts = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let err = s3_store("b", &opts("s3.path.style.access", "maybe"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("s3.path.style.access") && err.contains("maybe"),
            "{err}"
        );
        let err = s3_store("b", &opts("s3.request-timeout", "forever"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("s3.request-timeout"), "{err}");
    }
}
