//! The bounded file source.
//!
//! JSON and CSV files are read in chunks of lines that are parsed in one go;
//! only a chunk that fails is parsed again line by line, to name the bad
//! line or to skip it, so clean files stay on the fast path. A chunk's
//! buffer and the arrow decoder are kept from one chunk to the next.
//!
//! The input is cut into splits ([`super::splits`]): whole files, or
//! line-aligned byte ranges of a large JSON-lines or CSV file, so that all
//! source subtasks read one big file together. Split `i` goes to subtask
//! `i % parallelism`.
//!
//! Checkpoints: a subtask's position names the split it is in (its index,
//! its file's name and where the split starts) and how far into it the
//! emitted rows reach: a byte offset and the lines read since the split's
//! start for JSON and CSV, a row count for Parquet. Splits with a smaller
//! index are done. The listing's size, a hash of its names and the number
//! of splits are kept too, because the assignment of splits to subtasks
//! depends on all of them: a restore into a directory whose files changed
//! fails instead of re-reading or skipping rows. See
//! [`FileSource::snapshot_position`] for the encoding.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use runnel_engine::operator::{OperatorMetrics, TaskInfo};
use runnel_engine::source::{Source, SourceFactory, SourcePoll, SplitId};
use runnel_engine::{EngineError, Result};

use super::lines::{decode_lines, read_chunk, Chunk, CHUNK_LINES};
use super::parquet_types::{conform_parquet, implicit_cast, sql_type};
use super::partitions::{OutputColumn, PartitionedOutput};
use super::splits::{self, FileSplit, Listing};
use super::{io_error, Format, FsOptions};
use crate::position::{PositionReader, PositionWriter};
use crate::text::RecordsDecoder;

/// Format version of [`FileSource`] positions (version 1, from before
/// files were cut into ranges, is still read; see `restore_position`).
const POSITION_VERSION: u8 = 2;
/// Format version of a position that lists every split not yet done with
/// its progress: written when a subtask has more than one split under way,
/// which only a restore at another parallelism makes.
const POSITION_VERSION_LIST: u8 = 3;
/// Position tag: every split of the subtask is done.
const TAG_DONE: u8 = 0;
/// Position tag: reading (or about to read) one split.
const TAG_IN_SPLIT: u8 = 1;

/// A factory of file source subtasks. The listing and its splits are made
/// once, by the first subtask that opens, and shared by the others.
pub(super) fn factory(options: Arc<FsOptions>, schema: SchemaRef) -> SourceFactory {
    // A partitioned table's files hold the other columns; the partition
    // columns come from the directories.
    let (schema, output) = if options.partition_columns.is_empty() {
        (schema, None)
    } else {
        let is_partition = |name: &str| options.partition_columns.iter().any(|p| p == name);
        let data: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| !is_partition(schema.field(i).name()))
            .collect();
        let decoded = Arc::new(schema.project(&data).unwrap_or_else(|_| (*schema).clone()));
        let mut next = 0;
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                if is_partition(f.name()) {
                    OutputColumn::Partition(f.name().clone())
                } else {
                    next += 1;
                    OutputColumn::Data(next - 1)
                }
            })
            .collect();
        (
            decoded,
            Some(Arc::new(PartitionedOutput {
                schema: Arc::clone(&schema),
                columns,
            })),
        )
    };
    let listing: Arc<Mutex<Option<Arc<Listing>>>> = Arc::default();
    Arc::new(move |task: &TaskInfo| {
        let listing = {
            let mut cached = listing.lock().unwrap_or_else(|p| p.into_inner());
            match cached.as_ref() {
                Some(l) => Arc::clone(l),
                None => Arc::clone(cached.insert(Arc::new(splits::plan(&options)?))),
            }
        };
        let parallelism = task.parallelism.max(1);
        let mine: VecDeque<(SplitId, Arc<FileSplit>)> = listing
            .splits
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == task.subtask)
            .map(|(i, s)| (SplitId::try_from(i).unwrap_or(SplitId::MAX), Arc::clone(s)))
            .collect();
        // The ranges of one file that a subtask reads are one split to its
        // watermark (see `FileSource::watermark_split`).
        let mut watermark_split = std::collections::HashMap::new();
        let mut first_of_file = std::collections::HashMap::new();
        for (id, split) in &mine {
            let first = *first_of_file.entry(split.file).or_insert(*id);
            watermark_split.insert(*id, first);
        }
        let mut splits: Vec<SplitId> = first_of_file.into_values().collect();
        splits.sort_unstable();
        Ok(Box::new(FileSource {
            options: Arc::clone(&options),
            schema: Arc::clone(&schema),
            output: output.clone(),
            splits,
            watermark_split,
            pending: mine,
            current: None,
            metrics: Arc::new(OperatorMetrics::default()),
            listing,
            done_before_restore: VecDeque::new(),
            starts: std::collections::HashMap::new(),
            subtask: task.subtask,
            parallelism,
            decoder: RecordsDecoder::new(options.wire_schema(&schema), options.csv_delimiter()),
            chunk: Chunk::default(),
        }) as Box<dyn Source>)
    })
}

/// One subtask of the file source: reads its splits one after the other.
struct FileSource {
    options: Arc<FsOptions>,
    /// What the files hold (for a partitioned table, without the
    /// partition columns).
    schema: SchemaRef,
    /// A partitioned table's rows, made from the files' and the
    /// directories' values.
    output: Option<Arc<PartitionedOutput>>,
    /// The splits the watermark generator tracks: one per file.
    splits: Vec<SplitId>,
    /// For each split this subtask reads, the split its rows count under
    /// for watermarks: the subtask's first range of the same file. A
    /// subtask reads a file's ranges in file order, so its watermark
    /// follows the file as one reader of the whole file would (rows are
    /// late only where they would be late to that reader), and a range
    /// not yet started neither holds the watermark back nor lets it jump.
    watermark_split: std::collections::HashMap<SplitId, SplitId>,
    pending: VecDeque<(SplitId, Arc<FileSplit>)>,
    current: Option<OpenFile>,
    metrics: Arc<OperatorMetrics>,
    /// Every split of the source (all subtasks).
    listing: Arc<Listing>,
    /// Splits a restore skipped as already read; announced finished by the
    /// first polls, since `open` had reported them as open.
    done_before_restore: VecDeque<SplitId>,
    /// Pending splits that start past their beginning (the two progress
    /// numbers of a position): after a restore at another parallelism, a
    /// subtask may take over several splits that old subtasks had begun.
    starts: std::collections::HashMap<SplitId, (u64, u64)>,
    subtask: usize,
    parallelism: usize,
    /// The JSON or CSV decoder, kept from chunk to chunk.
    decoder: RecordsDecoder,
    /// The buffer chunks are read into, kept from chunk to chunk.
    chunk: Chunk,
}

impl FileSource {
    /// The split that rows of `id` count under for watermarks.
    fn counted_as(&self, id: SplitId) -> SplitId {
        self.watermark_split.get(&id).copied().unwrap_or(id)
    }

    fn position_error(&self, why: String) -> EngineError {
        EngineError::Connector(format!(
            "cannot resume reading '{}' from the checkpoint: {why}",
            self.options.path.display()
        ))
    }

    /// Checks that a position's description of the input matches the
    /// input now.
    fn check_listing(&self, files: u64, names_hash: u64, splits: Option<u64>) -> Result<()> {
        let listing = &self.listing;
        if files != listing.names.len() as u64 || names_hash != listing.names_hash {
            return Err(self.position_error(format!(
                "the set of files changed since the checkpoint ({files} files then, {} now); \
                 files are assigned to subtasks by their place in the sorted listing, so the \
                 job cannot resume where it stopped",
                listing.names.len()
            )));
        }
        if let Some(splits) = splits.filter(|n| *n != listing.splits.len() as u64) {
            return Err(self.position_error(format!(
                "the files were cut into {splits} splits then and {} now (did a file grow \
                 or shrink?); splits are assigned to subtasks by their place, so the job \
                 cannot resume where it stopped",
                listing.splits.len()
            )));
        }
        Ok(())
    }
}

impl FileSource {
    /// A version 3 position: `[3, files: u64, names hash: u64, splits:
    /// u64, n: u32]`, then for each of the subtask's splits not yet done
    /// `[split: u32, file name, split start: u64, a: u64, b: u64]` (the
    /// progress numbers as in version 2). Splits of the subtask it does
    /// not list are done.
    fn snapshot_list(&mut self) -> Result<Vec<u8>> {
        let mut under_way: Vec<(SplitId, Arc<FileSplit>, (u64, u64))> = Vec::new();
        if let Some(file) = &self.current {
            under_way.push((file.id, Arc::clone(&file.split), file.reader.progress()));
        }
        for (id, split) in &self.pending {
            let at = self.starts.get(id).copied().unwrap_or((0, 0));
            under_way.push((*id, Arc::clone(split), at));
        }
        let mut w = PositionWriter::new(POSITION_VERSION_LIST);
        w.u64(self.listing.names.len() as u64)
            .u64(self.listing.names_hash)
            .u64(self.listing.splits.len() as u64)
            .u32(under_way.len() as u32);
        for (id, split, (a, b)) in under_way {
            w.u32(id).str(&split.name)?.u64(split.start).u64(a).u64(b);
        }
        Ok(w.finish())
    }

    /// The splits a position of old subtask `subtask` (of `parallelism`)
    /// had not finished, with their progress; every other split of that
    /// subtask is done. Reads versions 1 to 3.
    fn splits_under_way(
        &self,
        position: &[u8],
        subtask: usize,
        parallelism: usize,
    ) -> Result<std::collections::HashMap<SplitId, (u64, u64)>> {
        let parallelism = parallelism.max(1);
        let theirs = || {
            (0..self.listing.splits.len())
                .filter(move |i| i % parallelism == subtask)
                .map(|i| SplitId::try_from(i).unwrap_or(SplitId::MAX))
        };
        let check = |id: SplitId, name: &str, start: u64| -> Result<()> {
            let found = self.listing.splits.get(id as usize);
            if !found.is_some_and(|s| s.name == name && s.start == start) {
                return Err(self.position_error(format!(
                    "split {id} (file '{name}' from byte {start}) is not split {id} of the \
                     input now"
                )));
            }
            if id as usize % parallelism != subtask {
                return Err(self.position_error(format!(
                    "split {id} was not read by subtask {subtask} of {parallelism}"
                )));
            }
            Ok(())
        };
        let mut open = std::collections::HashMap::new();
        if position.first() == Some(&POSITION_VERSION_LIST) {
            let mut r = PositionReader::new("filesystem", position, POSITION_VERSION_LIST)?;
            let files = r.u64()?;
            let names_hash = r.u64()?;
            let splits = r.u64()?;
            self.check_listing(files, names_hash, Some(splits))?;
            for _ in 0..r.u32()? {
                let id = r.u32()?;
                let name = r.str()?;
                let start = r.u64()?;
                let at = (r.u64()?, r.u64()?);
                check(id, &name, start)?;
                open.insert(id, at);
            }
            r.finish()?;
            return Ok(open);
        }
        let (files, names_hash, splits, at) = match position.first() {
            Some(1) => read_position_v1(position)?,
            _ => read_position(position)?,
        };
        self.check_listing(files, names_hash, splits)?;
        if splits.is_none() && self.listing.splits.iter().any(|s| !s.is_whole_file()) {
            return Err(self.position_error(
                "the checkpoint was written by a version of Runnel that read every file whole, \
                 and this one cuts a large file into ranges; set 'source.split-size' larger \
                 than the largest file to resume it"
                    .into(),
            ));
        }
        if let Some((id, name, start, a, b)) = at {
            check(id, &name, start)?;
            for other in theirs().filter(|other| *other >= id) {
                open.insert(other, if other == id { (a, b) } else { (0, 0) });
            }
        }
        Ok(open)
    }

    /// Keeps the pending splits in `open`, each to start where it says,
    /// and drops the others as done; a file none of whose ranges is left
    /// is announced finished by the first polls.
    fn take_over(&mut self, open: &std::collections::HashMap<SplitId, (u64, u64)>) {
        self.current = None;
        self.done_before_restore.clear();
        self.starts.clear();
        let pending = std::mem::take(&mut self.pending);
        for (id, split) in pending {
            if let Some(&at) = open.get(&id) {
                if at != (0, 0) {
                    self.starts.insert(id, at);
                }
                self.pending.push_back((id, split));
            }
        }
        for &w in &self.splits {
            let left = self.pending.iter().any(|(id, _)| self.counted_as(*id) == w);
            if !left {
                self.done_before_restore.push_back(w);
            }
        }
    }
}

impl Source for FileSource {
    fn open(&mut self, _task: &TaskInfo, metrics: &Arc<OperatorMetrics>) -> Result<Vec<SplitId>> {
        self.metrics = Arc::clone(metrics);
        Ok(self.splits.clone())
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        if let Some(split) = self.done_before_restore.pop_front() {
            return Ok(SourcePoll::SplitFinished(split));
        }
        let file = match self.current.as_mut() {
            Some(file) => file,
            None => {
                let Some((id, split)) = self.pending.pop_front() else {
                    return Ok(SourcePoll::Finished);
                };
                let start = self.starts.remove(&id).unwrap_or((0, 0));
                let opened = OpenFile::open(id, split, &self.options, &self.schema, start)?;
                self.current.insert(opened)
            }
        };
        let read = file.next_batch(
            &self.options,
            &self.schema,
            &self.metrics,
            &mut self.decoder,
            &mut self.chunk,
        )?;
        let id = file.id;
        let split = Arc::clone(&file.split);
        let counted = self.counted_as(id);
        match read {
            Some(batch) if batch.num_rows() > 0 => Ok(SourcePoll::Batch {
                split: counted,
                batch: match &self.output {
                    Some(o) => o.rows(batch, &split)?,
                    None => batch,
                },
            }),
            // Every record of the chunk was skipped; more may follow.
            Some(_) => Ok(SourcePoll::Pending),
            None => {
                self.current = None;
                // The file goes on in this subtask's next range.
                let next = self.pending.front().map(|(id, _)| self.counted_as(*id));
                if next == Some(counted) {
                    return Ok(SourcePoll::Pending);
                }
                Ok(SourcePoll::SplitFinished(counted))
            }
        }
    }

    /// Version 2, big-endian: `[2, files in the listing: u64, hash of
    /// their names: u64, splits: u64, tag: u8]`, then for tag 1 (in a
    /// split) `[split: u32, file name: u32 length + UTF-8, split start:
    /// u64, a: u64, b: u64]`; tag 0 means every split of the subtask is
    /// done. For JSON and CSV `a` is the byte offset in the file after the
    /// last line consumed and `b` the number of lines consumed since the
    /// split's start (so error messages keep true line numbers); for
    /// Parquet `a` is the number of rows emitted and `b` is 0. A split not
    /// yet opened has `a = b = 0`.
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        if !self.starts.is_empty() {
            return self.snapshot_list();
        }
        let mut w = PositionWriter::new(POSITION_VERSION);
        w.u64(self.listing.names.len() as u64)
            .u64(self.listing.names_hash)
            .u64(self.listing.splits.len() as u64);
        let (id, split, a, b) = match (&self.current, self.pending.front()) {
            (Some(file), _) => {
                let (a, b) = file.reader.progress();
                (file.id, &file.split, a, b)
            }
            (None, Some((id, split))) => (*id, split, 0, 0),
            (None, None) => return Ok(w.u8(TAG_DONE).finish()),
        };
        w.u8(TAG_IN_SPLIT)
            .u32(id)
            .str(&split.name)?
            .u64(split.start)
            .u64(a)
            .u64(b);
        Ok(w.finish())
    }

    fn restore_positions(&mut self, positions: &[Vec<u8>]) -> Result<()> {
        let old = positions.len();
        let mut open: std::collections::HashMap<SplitId, (u64, u64)> =
            std::collections::HashMap::new();
        for (i, position) in positions.iter().enumerate() {
            if position.is_empty() {
                return Err(self.position_error(format!(
                    "subtask {i} of the {old} that took the checkpoint left no position"
                )));
            }
            open.extend(self.splits_under_way(position, i, old)?);
        }
        self.take_over(&open);
        Ok(())
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<()> {
        if position.first() == Some(&POSITION_VERSION_LIST) {
            let open = self.splits_under_way(position, self.subtask, self.parallelism)?;
            self.take_over(&open);
            return Ok(());
        }
        let (files, names_hash, splits, at) = match position.first() {
            Some(1) => read_position_v1(position)?,
            _ => read_position(position)?,
        };
        if let Some((_, name, ..)) = &at {
            if !self.listing.names.contains(name) {
                return Err(self.position_error(format!(
                    "the file '{name}' it was reading no longer exists (or is hidden now)"
                )));
            }
        }
        self.check_listing(files, names_hash, splits)?;
        if splits.is_none() && self.listing.splits.iter().any(|s| !s.is_whole_file()) {
            return Err(self.position_error(
                "the checkpoint was written by a version of Runnel that read every file whole, \
                 and this one cuts a large file into ranges; set 'source.split-size' larger \
                 than the largest file to resume it"
                    .into(),
            ));
        }
        self.current = None;
        self.done_before_restore.clear();
        // Splits before the one the position is in are done (all of them
        // when it says the subtask was done).
        let done_below = at.as_ref().map_or(SplitId::MAX, |(id, ..)| *id);
        // Files whose ranges are all done are announced finished; the file
        // the position is in is not.
        let going_on = at.as_ref().map(|(id, ..)| self.counted_as(*id));
        while let Some((id, _)) = self.pending.front() {
            if at.is_some() && *id >= done_below {
                break;
            }
            let counted = self.counted_as(*id);
            if Some(counted) != going_on && !self.done_before_restore.contains(&counted) {
                self.done_before_restore.push_back(counted);
            }
            self.pending.pop_front();
        }
        let Some((id, name, start, a, b)) = at else {
            return Ok(());
        };
        let Some(split) = self
            .pending
            .front()
            .filter(|(front, split)| *front == id && split.name == name && split.start == start)
            .map(|(_, split)| Arc::clone(split))
        else {
            return Err(self.position_error(format!(
                "split {id} (file '{name}' from byte {start}) is not one of this subtask's \
                 splits; was the parallelism changed?"
            )));
        };
        if (a, b) != (0, 0) {
            self.pending.pop_front();
            let opened = OpenFile::open(id, split, &self.options, &self.schema, (a, b))?;
            self.current = Some(opened);
        }
        Ok(())
    }
}

/// Where a position says a subtask was: split id, file name, split start,
/// and the two progress numbers.
type At = Option<(SplitId, String, u64, u64, u64)>;

/// Reads a version 2 position: files, names hash, splits and where.
fn read_position(position: &[u8]) -> Result<(u64, u64, Option<u64>, At)> {
    let mut r = PositionReader::new("filesystem", position, POSITION_VERSION)?;
    let files = r.u64()?;
    let names_hash = r.u64()?;
    let splits = r.u64()?;
    let at = match r.u8()? {
        TAG_DONE => None,
        TAG_IN_SPLIT => {
            let id = r.u32()?;
            let name = r.str()?;
            Some((id, name, r.u64()?, r.u64()?, r.u64()?))
        }
        tag => return Err(r.error(&format!("unknown tag {tag}"))),
    };
    r.finish()?;
    Ok((files, names_hash, Some(splits), at))
}

/// Reads a version 1 position, written when every file was one split:
/// `[1, files: u64, names hash: u64, tag: u8]`, then for tag 1 `[file
/// index: u32, name, a: u64, b: u64]`, where `b` is the file's line
/// number (the same as lines since the start of a whole-file split).
fn read_position_v1(position: &[u8]) -> Result<(u64, u64, Option<u64>, At)> {
    let mut r = PositionReader::new("filesystem", position, 1)?;
    let files = r.u64()?;
    let names_hash = r.u64()?;
    let at = match r.u8()? {
        TAG_DONE => None,
        TAG_IN_SPLIT => {
            let id = r.u32()?;
            let name = r.str()?;
            Some((id, name, 0, r.u64()?, r.u64()?))
        }
        tag => return Err(r.error(&format!("unknown tag {tag}"))),
    };
    r.finish()?;
    Ok((files, names_hash, None, at))
}

/// A split being read.
struct OpenFile {
    id: SplitId,
    split: Arc<FileSplit>,
    reader: FileReader,
    /// Lines before the split's start, counted when an error message first
    /// needs a line number.
    lines_before: Option<u64>,
}

enum FileReader {
    /// JSON lines or CSV, limited to the split's range: `offset` is the
    /// byte offset in the file and `line` counts the lines consumed since
    /// the split's start.
    Lines {
        input: BufReader<std::io::Take<File>>,
        offset: u64,
        line: u64,
    },
    /// Parquet, with the file's column index of each table column, and the
    /// number of rows returned so far.
    Parquet {
        reader: ParquetRecordBatchReader,
        columns: Vec<String>,
        rows: u64,
    },
}

impl FileReader {
    /// The two numbers a position records for this reader.
    fn progress(&self) -> (u64, u64) {
        match self {
            FileReader::Lines { offset, line, .. } => (*offset, *line),
            FileReader::Parquet { rows, .. } => (*rows, 0),
        }
    }
}

impl OpenFile {
    /// Opens a split, skipping what `resume` (a position's `a` and `b`, see
    /// [`FileSource::snapshot_position`]) says was already read.
    fn open(
        id: SplitId,
        split: Arc<FileSplit>,
        options: &FsOptions,
        schema: &SchemaRef,
        resume: (u64, u64),
    ) -> Result<Self> {
        let path = &split.path;
        let mut file = File::open(path).map_err(|e| io_error(path, "open", e))?;
        let reader = match options.format {
            Format::Json | Format::Csv => {
                let (resumed, line) = resume;
                let offset = resumed.max(split.start);
                if offset > 0 {
                    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                    if offset > len {
                        return Err(EngineError::Connector(format!(
                            "cannot resume reading '{}' at byte {offset}: the file has only \
                             {len} bytes now (was it rewritten since the checkpoint?)",
                            path.display()
                        )));
                    }
                    file.seek(SeekFrom::Start(offset))
                        .map_err(|e| io_error(path, "seek in", e))?;
                }
                let limit = split.end.map_or(u64::MAX, |end| end.saturating_sub(offset));
                FileReader::Lines {
                    input: BufReader::with_capacity(1 << 20, file.take(limit)),
                    offset,
                    line,
                }
            }
            Format::Parquet => open_parquet(file, path, schema, resume.0)?,
        };
        Ok(Self {
            id,
            lines_before: (split.start == 0).then_some(0),
            split,
            reader,
        })
    }

    /// The next batch, or `None` at the end of the split.
    fn next_batch(
        &mut self,
        options: &FsOptions,
        schema: &SchemaRef,
        metrics: &OperatorMetrics,
        decoder: &mut RecordsDecoder,
        chunk: &mut Chunk,
    ) -> Result<Option<RecordBatch>> {
        let path = &self.split.path;
        match &mut self.reader {
            FileReader::Lines {
                input,
                offset,
                line,
            } => {
                let header = self.split.start == 0;
                chunk.clear();
                read_chunk(input, offset, line, options, header, chunk)
                    .map_err(|e| io_error(path, "read", e))?;
                if chunk.lines.is_empty() {
                    return Ok(None);
                }
                let rows = chunk.lines.len();
                if chunk.oversized.is_empty() {
                    if let Ok(batch) = decoder
                        .decode(&chunk.bytes, rows)
                        .and_then(|b| options.finish(schema, b))
                    {
                        return Ok(Some(batch));
                    }
                }
                let before = match self.lines_before {
                    Some(n) => n,
                    None => *self.lines_before.insert(
                        splits::lines_before(path, self.split.start)
                            .map_err(|e| io_error(path, "read", e))?,
                    ),
                };
                decode_lines(chunk, before, options, schema, path, metrics).map(Some)
            }
            FileReader::Parquet {
                reader,
                columns,
                rows,
            } => match reader.next() {
                None => Ok(None),
                Some(Err(e)) => Err(EngineError::Execution(format!(
                    "cannot read Parquet file '{}': {e}",
                    path.display()
                ))),
                Some(Ok(batch)) => {
                    *rows += batch.num_rows() as u64;
                    conform_parquet(&batch, columns, schema)
                        .map(Some)
                        .map_err(|e| {
                            EngineError::Execution(format!(
                                "Parquet file '{}' does not fit the table: {e}",
                                path.display()
                            ))
                        })
                }
            },
        }
    }
}

/// Opens a Parquet file, reading only the table's columns (found by name),
/// from row `skip` on.
fn open_parquet(file: File, path: &Path, schema: &SchemaRef, skip: u64) -> Result<FileReader> {
    let not_parquet = |e: parquet::errors::ParquetError| {
        EngineError::Execution(format!(
            "cannot read Parquet file '{}': {e}",
            path.display()
        ))
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(not_parquet)?;
    let file_schema = Arc::clone(builder.schema());
    let mut indices = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let found = file_schema
            .fields()
            .iter()
            .position(|f| f.name() == field.name())
            .or_else(|| {
                file_schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(field.name()))
            });
        let Some(index) = found else {
            return Err(EngineError::Execution(format!(
                "Parquet file '{}' has no column '{}'; its columns: {}",
                path.display(),
                field.name(),
                file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let file_type = file_schema.field(index).data_type();
        if !implicit_cast(file_type, field.data_type()) {
            return Err(EngineError::Execution(format!(
                "Parquet file '{}': column '{}' is {} in the file but {} in the table, and \
                 {} does not convert to {} implicitly; declare the column as {}, or read it \
                 as it is and CAST it in the query",
                path.display(),
                field.name(),
                sql_type(file_type),
                sql_type(field.data_type()),
                sql_type(file_type),
                sql_type(field.data_type()),
                sql_type(file_type),
            )));
        }
        indices.push(index);
        columns.push(file_schema.field(index).name().clone());
    }
    let total = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    if skip > total {
        return Err(EngineError::Connector(format!(
            "cannot resume reading Parquet file '{}' after row {skip}: it has only {total} rows \
             now (was it rewritten since the checkpoint?)",
            path.display()
        )));
    }
    let skip_rows = usize::try_from(skip).map_err(|_| {
        EngineError::Connector(format!(
            "cannot skip {skip} rows of '{}' on this platform",
            path.display()
        ))
    })?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let mut builder = builder.with_projection(mask).with_batch_size(CHUNK_LINES);
    if skip_rows > 0 {
        builder = builder.with_offset(skip_rows);
    }
    let reader = builder.build().map_err(not_parquet)?;
    Ok(FileReader::Parquet {
        reader,
        columns,
        rows: skip,
    })
}
