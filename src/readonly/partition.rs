//! A partition read by a process that is not its writer: [`ReadOnlyPartition`].

use std::fs::File;
#[cfg(unix)]
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::{
    parse_segment_file_name, peek_span, segment_file_name, BatchSpan, RecordBatch, SegmentFileKind,
    SPAN_LEN,
};
use crate::fs::{LockHolder, StdFs};
use crate::partition::Batches;
use crate::tail::{TailReader, TailState, STATE_CLOSED, STATE_OPEN, TAIL_FILE};

/// How long a reader waits for a writer's rewrite of its files (a truncation, an in-place
/// recovery, the recovery at its open) before it reports the partition busy.
const REWRITE_WAIT: Duration = Duration::from_secs(5);
/// How much a scan reads from a segment file at once.
const CHUNK: usize = 64 << 10;
/// The largest `.index` a reader reads to find where to start in a sealed segment.
const MAX_INDEX_BYTES: u64 = 64 << 20;
/// The largest batch a reader accepts (a damaged length must not make it allocate more).
const MAX_BATCH: usize = 256 << 20;

/// A partition of a store that another process may be writing, opened to read only
/// ([`ReadOnlyStore::partition`](crate::ReadOnlyStore::partition), or
/// [`open`](Self::open) on a partition directory).
///
/// It takes no lock and writes nothing: the writer goes on as if it were not there. It reads
/// what the writer has made visible to other processes (see [`end_offset`](Self::end_offset)),
/// from the files with positional reads (never a memory map of a segment, which a truncation by
/// the writer could turn into a SIGBUS), checks every batch's CRC, and retries a read that
/// overlapped a truncation by the writer. Cloning is cheap; clones share their caches.
///
/// # Examples
/// ```
/// use topiclog::{Partition, ReadOnlyPartition, Record};
/// let dir = tempfile::tempdir()?;
/// let writer = Partition::open(dir.path())?;
/// writer.append(Record::new("hello"))?;
/// // Another process (or this one) follows the log without taking the writer's lock.
/// let reader = ReadOnlyPartition::open(dir.path())?;
/// assert_eq!(reader.end_offset()?, 1);
/// let batches = reader.read(0, 1 << 20)?;
/// assert_eq!(batches.records().next().unwrap().value().unwrap(), "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ReadOnlyPartition {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// The writer's tail page and the identity of its file, mapped once seen.
    tail: Mutex<Option<(Arc<TailReader>, FileId)>>,
    /// The segment files last listed, with the layout generation they were listed under.
    listing: Mutex<Option<(u64, Arc<Vec<u64>>)>>,
    /// Where the last read stopped: `(segment base, file identity, offset, position)`.
    cursor: Mutex<Option<Cursor>>,
}

/// A file's identity: device and inode.
type FileId = (u64, u64);

#[derive(Clone, Copy, Debug)]
struct Cursor {
    base: u64,
    file: (u64, u64),
    offset: u64,
    position: u64,
}

/// A segment file of a [`ReadOnlyPartition`]: see [`ReadOnlyPartition::segments`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// The first offset it may hold (its file name).
    pub base_offset: u64,
    /// Its size on disk.
    pub size_bytes: u64,
}

/// What bounds a read: the log's offsets, and how to tell that the writer rewrote files meanwhile.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    start: u64,
    end: u64,
    /// The tail page's state (`None`: no live page; the files are all there is).
    tail: Option<TailState>,
}

/// Why one attempt at a read did not finish: the files moved under it (retry), or an error.
enum Attempt {
    Retry,
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

impl ReadOnlyPartition {
    /// Open the partition directory `dir` to read only.
    ///
    /// # Errors
    /// [`Error::Io`] of kind `NotFound` if `dir` is not there or holds no segment and no
    /// topiclog file; other [`Error::Io`]s.
    pub fn open(dir: impl AsRef<Path>) -> Result<ReadOnlyPartition> {
        let dir = dir.as_ref().to_owned();
        let meta = std::fs::metadata(&dir).map_err(|e| Error::io(&dir, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                &dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a partition directory"),
            ));
        }
        let p = ReadOnlyPartition {
            inner: Arc::new(Inner {
                dir,
                tail: Mutex::new(None),
                listing: Mutex::new(None),
                cursor: Mutex::new(None),
            }),
        };
        if p.list_segments()?.is_empty() && !p.inner.dir.join(crate::partition::LOCK_FILE).exists()
        {
            return Err(Error::io(
                &p.inner.dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no segment and no writer ever opened it: not a partition directory",
                ),
            ));
        }
        Ok(p)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The first offset still in the log.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn start_offset(&self) -> Result<u64> {
        Ok(self.bounds()?.start)
    }

    /// One past the last record this reader may read: what the writer has made visible and
    /// written to the file. Under [`Durability::Always`](crate::Durability::Always) that is only
    /// what is on disk, so no reader sees a record a crash could take back; a record still in
    /// the writer's write buffer (`write_buffer_bytes`) is seen once the buffer is written out.
    /// Without a live writer, the end of the valid batches in the files.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn end_offset(&self) -> Result<u64> {
        Ok(self.bounds()?.end)
    }

    /// The segment files now, oldest first: base offset and size in bytes (of the active
    /// segment, including any preallocated space the writer has not filled yet).
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be listed.
    pub fn segments(&self) -> Result<Vec<SegmentFile>> {
        let mut out = Vec::new();
        for base_offset in self.list_segments()? {
            let path = segment_file_name(&self.inner.dir, base_offset, SegmentFileKind::Log);
            match std::fs::metadata(&path) {
                Ok(m) => out.push(SegmentFile {
                    base_offset,
                    size_bytes: m.len(),
                }),
                // Deleted by retention since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Ok(out)
    }

    /// The first offset whose record has a timestamp at or after `timestamp` (Kafka's
    /// `offsetsForTimes`), scanning the batches from the start; `None` if no record is that
    /// late. Batches whose largest timestamp is earlier are stepped over without decoding their
    /// records.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn offset_for_time(&self, timestamp: i64) -> Result<Option<u64>> {
        let mut next = self.start_offset()?;
        loop {
            let batches = match self.read(next, 1 << 20) {
                Ok(b) => b,
                // Retention moved the start meanwhile.
                Err(Error::OffsetOutOfRange { start, end, .. }) if next < start && start <= end => {
                    next = start;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if batches.is_empty() {
                return Ok(None);
            }
            for batch in batches.batches() {
                if batch.max_timestamp() < timestamp {
                    continue;
                }
                if let Some(r) = batch
                    .records()
                    .find(|r| r.offset() >= next && r.timestamp() >= timestamp)
                {
                    return Ok(Some(r.offset()));
                }
            }
            next = batches.next_offset();
        }
    }

    /// Who holds the partition for writing now, if anyone (`pid: None`: a handle in this
    /// process).
    ///
    /// # Errors
    /// [`Error::Io`] if the lock file cannot be looked at.
    pub fn writer(&self) -> Result<Option<LockHolder>> {
        let path = self.inner.dir.join(crate::partition::LOCK_FILE);
        StdFs::lock_holder(&path).map_err(|e| Error::io(&path, e))
    }

    /// Whole batches from the one holding `offset` (or the first record after it that
    /// compaction left) on, while they fit in `max_bytes` (at least one), every one CRC-checked:
    /// as [`Partition::read`](crate::Partition::read).
    ///
    /// # Errors
    /// - [`Error::OffsetOutOfRange`] if `offset` is below the start or past the end;
    /// - [`Error::Corrupt`] for a batch that fails its checks;
    /// - [`Error::Io`] (of kind `WouldBlock`, retriable) if the writer keeps rewriting the files
    ///   (a truncation or recovery that does not finish within seconds); other [`Error::Io`]s,
    ///   `NotFound` when the partition was deleted.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Batches> {
        let mut last = None;
        for attempt in 0..16u64 {
            if attempt > 0 {
                // The writer is busy with the files (a compaction pass, a rewrite): give it a
                // moment, longer each time.
                std::thread::sleep(Duration::from_millis(attempt));
            }
            let bounds = self.bounds()?;
            if offset < bounds.start || offset > bounds.end {
                return Err(Error::OffsetOutOfRange {
                    requested: offset,
                    start: bounds.start,
                    end: bounds.end,
                });
            }
            if offset == bounds.end {
                return Ok(Batches::from_parts(offset, Vec::new(), offset));
            }
            let result = self.read_files(offset, max_bytes, &bounds);
            // A read that overlapped a rewrite by the writer may have mixed old and new files.
            if self.rewritten_since(&bounds) {
                continue;
            }
            match result {
                Ok(b) => return Ok(b),
                Err(Attempt::Retry) => {
                    *self.inner.listing.lock() = None;
                    continue;
                }
                Err(Attempt::Failed(e)) => last = Some(e),
            }
            break;
        }
        Err(last.unwrap_or_else(|| {
            Error::io(
                &self.inner.dir,
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "the writer keeps changing the partition's files under the read; try again",
                ),
            )
        }))
    }

    /// Wait until a record at or past `offset` is there to read, or `timeout` passes: whether
    /// one is. The writer wakes waiters in other processes at once on Linux (a futex in its
    /// tail page; while nobody waited on its last wake-up it makes the call at most once a
    /// millisecond), and the reader looks again every 2 ms at the latest; elsewhere, and before
    /// any writer of this version opened the partition, it looks every few milliseconds.
    ///
    /// # Errors
    /// As [`end_offset`](Self::end_offset).
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let tail = self.tail_page()?;
            let seen = tail.as_ref().map(|t| t.wake_count());
            if self.bounds()?.end > offset {
                return Ok(true);
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(1),
            };
            if left.is_zero() {
                return Ok(false);
            }
            // Bounded, so a writer that appears (or a page replaced by a new topic) is found.
            let nap = left.min(Duration::from_millis(200));
            match (tail, seen) {
                (Some(t), Some(seen)) => t.wait_changed(seen, nap),
                _ => std::thread::sleep(nap.min(Duration::from_millis(5))),
            }
        }
    }

    /// The base offsets of the segment files in the directory, sorted.
    fn list_segments(&self) -> Result<Vec<u64>> {
        let dir = &self.inner.dir;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name();
            if let Some((base, SegmentFileKind::Log)) =
                name.to_str().and_then(parse_segment_file_name)
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        Ok(bases)
    }

    /// The segment listing for layout generation `layout` (listed again when the writer
    /// changed the files since).
    fn listing(&self, layout: Option<u64>) -> Result<Arc<Vec<u64>>> {
        let mut cached = self.inner.listing.lock();
        if let (Some((at, list)), Some(layout)) = (&*cached, layout) {
            if *at == layout {
                return Ok(list.clone());
            }
        }
        let list = Arc::new(self.list_segments()?);
        if let Some(layout) = layout {
            *cached = Some((layout, list.clone()));
        }
        Ok(list)
    }

    /// The writer's tail page, mapped (again if the file was replaced, as when the topic was
    /// deleted and created anew); `None` if there is none.
    fn tail_page(&self) -> Result<Option<Arc<TailReader>>> {
        let path = self.inner.dir.join(TAIL_FILE);
        let id = match std::fs::metadata(&path) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.inner.dir.exists() {
                    return Err(Error::io(
                        &self.inner.dir,
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "the partition is gone (its topic was deleted)",
                        ),
                    ));
                }
                *self.inner.tail.lock() = None;
                return Ok(None);
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut tail = self.inner.tail.lock();
        if let Some((t, at)) = &*tail {
            if *at == id {
                return Ok(Some(t.clone()));
            }
        }
        *self.inner.listing.lock() = None;
        *self.inner.cursor.lock() = None;
        let page = TailReader::open(&self.inner.dir)
            .map_err(|e| Error::io(&path, e))?
            .map(Arc::new);
        *tail = page.clone().map(|t| (t, id));
        Ok(page)
    }

    /// The log's bounds now: from the writer's tail page (waiting out a rewrite of its files),
    /// or from the files when no writer of this version ever opened the partition.
    fn bounds(&self) -> Result<Bounds> {
        let Some(tail) = self.tail_page()? else {
            return self.bounds_from_files();
        };
        let waited = Instant::now();
        loop {
            let s = tail.state();
            if s.state != STATE_OPEN && s.state != STATE_CLOSED {
                return self.bounds_from_files();
            }
            if !s.changing() {
                return Ok(Bounds {
                    start: s.start,
                    end: s.end,
                    tail: Some(s),
                });
            }
            // A rewrite is under way, or its writer died in it: then the files are what is left.
            if self.writer()?.is_none() {
                return self.bounds_from_files();
            }
            if waited.elapsed() > REWRITE_WAIT {
                return Err(Error::io(
                    &self.inner.dir,
                    std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        "the writer is truncating or recovering the partition; try again",
                    ),
                ));
            }
            let seen = tail.wake_count();
            if tail.state().seq == s.seq {
                tail.wait_changed(seen, Duration::from_millis(10));
            }
        }
    }

    /// Whether the writer rewrote files since `bounds` were taken (so a read may have mixed
    /// them).
    fn rewritten_since(&self, bounds: &Bounds) -> bool {
        let Some(before) = bounds.tail else {
            return false;
        };
        let now = self.inner.tail.lock().as_ref().map(|(t, _)| t.state());
        now.is_none_or(|s| s.seq != before.seq || s.session != before.session)
    }

    /// Bounds read from the files alone: the start from the checkpoint (or the first segment),
    /// the end after the last valid batch of the last segment.
    fn bounds_from_files(&self) -> Result<Bounds> {
        let list = self.list_segments()?;
        let first = list.first().copied().unwrap_or(0);
        let start = crate::partition::read_checkpoint(&crate::fs::StdFs, &self.inner.dir)?
            .map_or(first, |cp| cp.log_start_offset.max(first));
        let Some(&last) = list.last() else {
            return Ok(Bounds {
                start,
                end: start,
                tail: None,
            });
        };
        let path = segment_file_name(&self.inner.dir, last, SegmentFileKind::Log);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut scan = Scan::new(&file, &path, 0);
        let mut end = last;
        // A batch cut short or failing its CRC is where a crashed writer's torn tail begins.
        while let Some(span) = scan.next_span()? {
            match scan.take(span.total_len()) {
                Ok(bytes) if RecordBatch::decode(bytes.clone()).is_ok() => {
                    end = span.last_offset() + 1;
                }
                _ => break,
            }
        }
        Ok(Bounds {
            start: start.min(end),
            end,
            tail: None,
        })
    }

    /// One attempt at a read within `bounds`.
    fn read_files(
        &self,
        offset: u64,
        max_bytes: usize,
        bounds: &Bounds,
    ) -> std::result::Result<Batches, Attempt> {
        let mut list = self.listing(bounds.tail.map(|t| t.layout))?;
        let Some(mut i) = list.iter().rposition(|&b| b <= offset) else {
            // Below every segment: retention removed it after the bounds were taken.
            return Err(Attempt::Retry);
        };
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut size = 0usize;
        let mut expected: Option<u64> = None;
        let mut relisted = 0;
        loop {
            let base = list[i];
            let path = segment_file_name(&self.inner.dir, base, SegmentFileKind::Log);
            let file = match File::open(&path) {
                Ok(f) => f,
                // Deleted or replaced since it was listed (compaction merges segments, retention
                // deletes them): list again and go on from where this read got to, in whichever
                // segment holds it now (offsets never change, only files).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && relisted < 8 => {
                    relisted += 1;
                    let resume = expected.unwrap_or(offset);
                    list = Arc::new(self.list_segments()?);
                    *self.inner.listing.lock() = None;
                    match list.iter().rposition(|&b| b <= resume) {
                        Some(j) => {
                            i = j;
                            continue;
                        }
                        None => return Err(Attempt::Retry),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Attempt::Retry),
                Err(e) => return Err(Error::io(&path, e).into()),
            };
            let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
            let id = (meta.dev(), meta.ino());
            // Where this segment's scan picks up: the requested offset, or after the batches
            // already taken (a segment listed again may begin below them).
            let resume = expected.unwrap_or(offset);
            let from = resume;
            let (position, at_position) =
                self.start_position(base, id, &file, from, i + 1 < list.len());
            let mut scan = Scan::new(&file, &path, position);
            let mut stopped = None;
            // The offset the next batch must start at: batches follow each other without gaps
            // (compaction leaves empty batches), except in a log adopted from Kafka.
            let mut next_expected = at_position;
            while let Some(span) = scan.next_span()? {
                if span.base_offset >= bounds.end {
                    break;
                }
                if span.base_offset != next_expected
                    && (span.base_offset < next_expected || span.base_offset > self.gaps_below())
                {
                    return Err(Error::corrupt(
                        &path,
                        scan.position,
                        format!(
                            "batch at offset {} where offset {next_expected} was due",
                            span.base_offset
                        ),
                    )
                    .into());
                }
                next_expected = span.last_offset() + 1;
                let at = scan.position;
                if span.last_offset() < resume {
                    scan.skip(span.total_len());
                    continue;
                }
                let bytes = scan.take(span.total_len())?;
                let batch = RecordBatch::decode(bytes)
                    .map_err(|(pos, why)| Error::corrupt(&path, at + pos as u64, why))?;
                expected = Some(batch.next_offset());
                if batches.is_empty() && !batch.holds_records_from(offset) {
                    // Compaction or a control batch left nothing at or after `offset` here.
                    stopped = Some((batch.next_offset(), scan.position));
                    continue;
                }
                size += batch.as_bytes().len();
                stopped = Some((batch.next_offset(), scan.position));
                batches.push(batch);
                if size >= max_bytes {
                    break;
                }
            }
            if let Some((next, position)) = stopped {
                *self.inner.cursor.lock() = Some(Cursor {
                    base,
                    file: id,
                    offset: next,
                    position,
                });
            }
            let reached = expected.unwrap_or(offset);
            if size >= max_bytes || reached >= bounds.end {
                break;
            }
            // This segment holds nothing more below the end: on to the next one, which must
            // begin where this one's data ended (a missing or unreadable batch is damage, never
            // a silent hole).
            if let Some(&next_base) = list.get(i + 1) {
                if next_expected != next_base
                    && (next_expected > next_base || next_base > self.gaps_below())
                {
                    return Err(Error::corrupt(
                        &path,
                        scan.position,
                        format!(
                            "the segment's batches end at offset {next_expected}, but the next                              segment begins at {next_base}: a batch is missing or damaged"
                        ),
                    )
                    .into());
                }
                i += 1;
                continue;
            }
            // The end lies past the last segment listed: a roll happened since, or the data
            // below the end the writer published is damaged.
            if self.list_segments()?.last().is_some_and(|&b| b > base) {
                return Err(Attempt::Retry);
            }
            return Err(Error::corrupt(
                &path,
                scan.position,
                format!(
                    "the log's batches end at offset {next_expected}, below the end {} its \
                     writer made visible: a batch is missing or damaged",
                    bounds.end
                ),
            )
            .into());
        }
        let next_if_empty = if batches.is_empty() {
            bounds.end
        } else {
            offset
        };
        Ok(Batches::from_parts(offset, batches, next_if_empty))
    }

    /// Below which offset a gap between batches is Kafka's compaction's, not damage: in a log
    /// adopted from Kafka as compacted (`kafka-adopted`), where Kafka's log ended; 0 otherwise
    /// (a marker that does not decode allows nothing).
    fn gaps_below(&self) -> u64 {
        crate::partition::read_adopted(&StdFs, &self.inner.dir)
            .ok()
            .flatten()
            .filter(|a| a.compacted)
            .map_or(0, |a| a.gaps_below)
    }

    /// Where to start scanning segment `base` (file `id`) for `offset`, and the offset of the
    /// batch there: where the last read stopped, else the sealed segment's index entry below it
    /// (if it checks out), else the start of the file.
    fn start_position(
        &self,
        base: u64,
        id: FileId,
        file: &File,
        offset: u64,
        sealed: bool,
    ) -> (u64, u64) {
        if let Some(c) = *self.inner.cursor.lock() {
            if c.base == base && c.file == id && c.offset <= offset {
                // At the end of the file's data (nothing after it yet), or at a batch there.
                let at_end = file.metadata().is_ok_and(|m| m.len() <= c.position);
                if at_end || peek_at(file, c.position).is_some_and(|s| s.base_offset == c.offset) {
                    return (c.position, c.offset);
                }
            }
        }
        if sealed {
            if let Some(found) = self.index_position(base, file, offset) {
                return found;
            }
        }
        (0, base)
    }

    /// From the sealed segment's `.index`: the position of the last indexed batch that ends
    /// below `offset`, if the entry matches the batch found there.
    fn index_position(&self, base: u64, file: &File, offset: u64) -> Option<(u64, u64)> {
        let path = segment_file_name(&self.inner.dir, base, SegmentFileKind::OffsetIndex);
        // An index is at most `segment.index.bytes` (10 MiB by default); a larger file is not
        // one to trust, nor to read whole.
        if std::fs::metadata(&path).ok()?.len() > MAX_INDEX_BYTES {
            return None;
        }
        let bytes = std::fs::read(path).ok()?;
        let entries: Vec<(u64, u64)> = bytes
            .chunks_exact(8)
            .map(|e| {
                let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
                let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                (base + u64::from(rel), u64::from(pos))
            })
            .take_while(|&(o, p)| o > base || p == 0)
            .collect();
        let i = entries.partition_point(|&(last, _)| last < offset);
        let (last, position) = *entries.get(i.checked_sub(1)?)?;
        let span = peek_at(file, position)?;
        (span.last_offset() == last).then_some((position, span.base_offset))
    }
}

/// The batch header span at `position` of `file`, if one is there.
fn peek_at(file: &File, position: u64) -> Option<BatchSpan> {
    let mut head = [0u8; SPAN_LEN];
    file.read_exact_at(&mut head, position).ok()?;
    peek_span(&head).ok()
}

/// A forward scan of a segment file's batches, read in chunks.
struct Scan<'a> {
    file: &'a File,
    path: &'a Path,
    /// The file's length when last looked at: no read (and no buffer) goes past it, so a
    /// damaged length field cannot make the reader allocate more than the file holds.
    len: u64,
    /// File position of `buf[at]`.
    position: u64,
    buf: Bytes,
    at: usize,
}

impl<'a> Scan<'a> {
    fn new(file: &'a File, path: &'a Path, position: u64) -> Scan<'a> {
        Scan {
            file,
            path,
            len: 0,
            position,
            buf: Bytes::new(),
            at: 0,
        }
    }

    /// Make at least `n` bytes from the current position available, if the file has them.
    fn fill(&mut self, n: usize) -> Result<bool> {
        if self.buf.len() - self.at >= n {
            return Ok(true);
        }
        if self.position + n as u64 > self.len {
            // The active segment may have grown since.
            self.len = self
                .file
                .metadata()
                .map_err(|e| Error::io(self.path, e))?
                .len();
            if self.position + n as u64 > self.len {
                return Ok(false);
            }
        }
        let left = usize::try_from(self.len - self.position).unwrap_or(usize::MAX);
        let want = n.max(CHUNK).min(left);
        let mut v = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut v[got..], self.position + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(self.path, e)),
            }
        }
        v.truncate(got);
        self.buf = Bytes::from(v);
        self.at = 0;
        Ok(got >= n)
    }

    /// The next batch's header span, or `None` where the data ends (end of file, preallocated
    /// zeros, bytes a writer has not finished).
    fn next_span(&mut self) -> Result<Option<BatchSpan>> {
        if !self.fill(SPAN_LEN)? {
            return Ok(None);
        }
        let Ok(span) = peek_span(&self.buf[self.at..]) else {
            return Ok(None);
        };
        if span.total_len() > MAX_BATCH || span.total_len() < SPAN_LEN {
            return Ok(None);
        }
        Ok(Some(span))
    }

    fn skip(&mut self, n: usize) {
        let in_buf = (self.buf.len() - self.at).min(n);
        self.at += in_buf;
        self.position += n as u64;
        if in_buf < n {
            self.buf = Bytes::new();
            self.at = 0;
        }
    }

    /// The next `n` bytes (a whole batch), zero-copy from the chunk when it holds them.
    fn take(&mut self, n: usize) -> Result<Bytes> {
        if !self.fill(n)? {
            return Err(Error::corrupt(
                self.path,
                self.position,
                "batch runs past the end of the file",
            ));
        }
        let bytes = self.buf.slice(self.at..self.at + n);
        self.at += n;
        self.position += n as u64;
        Ok(bytes)
    }
}
