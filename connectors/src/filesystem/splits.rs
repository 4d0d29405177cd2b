//! How a file source's input is cut into splits, the units that source
//! subtasks share out (split `i` goes to subtask `i % parallelism`).
//!
//! A JSON-lines or CSV file larger than the split size
//! (`'source.split-size'`, 32 MiB by default) is cut into byte ranges that
//! each begin at the start of a line, so that every subtask reads part of
//! one big file. A range's start is found by looking for the first line
//! break at or after a multiple of the split size; its end is the next
//! range's start, and the last range reads to the end of the file.
//!
//! A CSV file that holds a double quote is not cut: a quoted value may hold
//! a line break, and only reading from the start tells a record's line
//! break from one inside a value. Parquet files are one split each. The
//! splits depend only on the files (names, sizes and contents), not on the
//! parallelism.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_engine::Result;

use super::{io_error, Format, FsOptions};

/// Default of `'source.split-size'`.
pub(super) const DEFAULT_SPLIT_BYTES: u64 = 32 << 20;

/// One split: a byte range of one file, or a whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileSplit {
    pub(super) path: PathBuf,
    /// The file's name, as positions record it.
    pub(super) name: String,
    /// Index of the file in the listing.
    pub(super) file: usize,
    /// Offset of the range's first byte (the start of a line).
    pub(super) start: u64,
    /// Offset just past the range's last line; `None` reads to the end of
    /// the file (the last range, or a whole file).
    pub(super) end: Option<u64>,
    /// The partition values of the file's directory (`name=value` parts
    /// under the table's directory); empty for an unpartitioned table.
    pub(super) partition: Arc<Vec<(String, Option<String>)>>,
}

impl FileSplit {
    /// True when this split is a whole file.
    pub(super) fn is_whole_file(&self) -> bool {
        self.start == 0 && self.end.is_none()
    }
}

/// Every split of a source's input, in order, and what identifies the
/// input in a checkpoint.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) splits: Vec<Arc<FileSplit>>,
    /// Names of the listed files, by index.
    pub(super) names: Vec<String>,
    /// [`hash_names`] of `names`.
    pub(super) names_hash: u64,
}

/// Lists the files at the source's path and cuts them into splits.
pub(super) fn plan(options: &FsOptions) -> Result<Listing> {
    let (files, names, partitions) = if options.partition_columns.is_empty() {
        let files = list_files(&options.path)
            .map_err(|e| io_error(&options.path, "list the files of", e))?;
        let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
        // One shared empty list: no file has partition values.
        let none = Arc::new(Vec::new());
        let partitions = files.iter().map(|_| Arc::clone(&none)).collect();
        (files, names, partitions)
    } else {
        // Files in partition directories, named by their relative path.
        let found = list_partitioned(&options.path)
            .map_err(|e| io_error(&options.path, "list the files of", e))?;
        let mut files = Vec::with_capacity(found.len());
        let mut names = Vec::with_capacity(found.len());
        let mut partitions = Vec::with_capacity(found.len());
        for (path, name, partition) in found {
            files.push(path);
            names.push(name);
            partitions.push(Arc::new(partition));
        }
        (files, names, partitions)
    };
    let mut splits = Vec::new();
    for (file, path) in files.into_iter().enumerate() {
        let starts = split_starts(&path, options).map_err(|e| io_error(&path, "read", e))?;
        for (k, &start) in starts.iter().enumerate() {
            splits.push(Arc::new(FileSplit {
                path: path.clone(),
                name: names[file].clone(),
                file,
                start,
                end: starts.get(k + 1).copied(),
                partition: Arc::clone(&partitions[file]),
            }));
        }
    }
    Ok(Listing {
        splits,
        names_hash: hash_names(&names),
        names,
    })
}

/// Where the ranges of one file begin (always with 0).
fn split_starts(path: &Path, options: &FsOptions) -> std::io::Result<Vec<u64>> {
    let len = std::fs::metadata(path)?.len();
    let size = options.split_bytes.max(1);
    if options.format == Format::Parquet || len <= size {
        return Ok(vec![0]);
    }
    let mut file = File::open(path)?;
    if options.format == Format::Csv && holds_quote(&mut file)? {
        return Ok(vec![0]);
    }
    let mut starts = vec![0u64];
    let mut candidate = size;
    while candidate < len {
        let start = line_start_at_or_after(&mut file, candidate)?;
        if start >= len {
            break;
        }
        if start > starts.last().copied().unwrap_or(0) {
            starts.push(start);
        }
        // A line longer than the split size moves the next candidate on.
        candidate = (start / size + 1) * size;
    }
    Ok(starts)
}

/// The offset of the first line that starts at or after `at` (the file's
/// length when no line does).
fn line_start_at_or_after(file: &mut File, at: u64) -> std::io::Result<u64> {
    // A line starts at `at` when the byte before it is a line break.
    file.seek(SeekFrom::Start(at - 1))?;
    let mut input = BufReader::with_capacity(64 << 10, &mut *file);
    let mut offset = at - 1;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(offset);
        }
        if let Some(i) = memchr::memchr(b'\n', available) {
            return Ok(offset + i as u64 + 1);
        }
        let n = available.len();
        offset += n as u64;
        input.consume(n);
    }
}

/// Whether the file holds a double quote anywhere.
fn holds_quote(file: &mut File) -> std::io::Result<bool> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        if memchr::memchr(b'"', &buf[..n]).is_some() {
            return Ok(true);
        }
    }
}

/// The number of line breaks before byte `end` of the file: the line
/// number that a range starting there counts from. Read only when an error
/// message needs a line number.
pub(super) fn lines_before(path: &Path, end: u64) -> std::io::Result<u64> {
    let mut input = File::open(path)?.take(end);
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

/// The last component of `path`, as the name a position records.
/// The files a source at `path` reads: `path` itself when it is a file,
/// otherwise the regular files in the directory, sorted by name, without
/// hidden and staging files (names starting with `.` or `_`).
pub fn list_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if std::fs::metadata(path)?.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let visible = name
            .to_str()
            .is_some_and(|n| !n.starts_with('.') && !n.starts_with('_'));
        // metadata() follows symlinks, so a link to a file counts as a file.
        if visible && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The files of a partitioned table under `root`: in `name=value`
/// directories (any depth; hidden ones and others skipped) and in `root`
/// itself, sorted by relative path, each with that path and its partition
/// values.
#[allow(clippy::type_complexity)]
fn list_partitioned(
    root: &Path,
) -> std::io::Result<Vec<(PathBuf, String, Vec<(String, Option<String>)>)>> {
    let mut out = Vec::new();
    for (dir, name) in super::partitions::files_under(root, true)? {
        // Hidden and staging files are not the table's rows.
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let partition = super::partitions::parse_dir(Path::new(&dir)).unwrap_or_default();
        let path = root.join(&dir).join(&name);
        let relative = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        out.push((path, relative, partition));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
}

/// FNV-1a over the names (each ended by a NUL): a stable fingerprint of a
/// listing, independent of the std hasher's per-release changes.
pub(super) fn hash_names(names: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        for b in name.as_bytes().iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
