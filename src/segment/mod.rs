//! Segments: one `.log` of record batches plus its sparse `.index` and `.timeindex`.
//!
//! These are the building blocks of a [`Partition`](crate::Partition), public for people building
//! their own log: [`Segment`], its [`OffsetIndex`] and [`TimeIndex`], the [`RecordBatch`] format
//! they store and the segment file names.
//!
//! A segment is *active* (the partition appends to it; its indexes live in memory; its file may be
//! preallocated past the data) or *sealed* (immutable; file trimmed to its data; read through a
//! read-only map, indexes mapped lazily).
//!
//! Concurrency: one writer at a time (the partition's append lock; the segment also serializes its
//! own writers), any number of readers. Readers see only bytes below the published `size`, which
//! is advanced after a batch is fully written, so they never observe a partial batch.

mod index_file;
mod offset_index;
mod time_index;
mod view;

pub use offset_index::{OffsetIndex, OffsetPosition};
pub use time_index::{TimeIndex, TimestampOffset};
pub use view::SegmentView;

pub use crate::format::{
    parse_segment_file_name, segment_file_name, BatchHeader, RecordBatch, Records, SegmentFileKind,
};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::error::{Error, IoContext, Result};
use crate::format::{crc_matches, peek_frame, Frame, BATCH_HEADER_LEN, MAX_BATCH_BYTES_LIMIT};
use crate::fs::{File, FileSystem, OpenMode};

/// How recovery treats an invalid batch that is *not* a torn tail (valid data follows it, or it
/// lies below the durable point).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recovery {
    /// Fail the open with [`Error::Corrupt`]: acknowledged data is damaged and a human should look.
    /// Torn tails from a crash are still cut silently (they were never acknowledged as durable).
    #[default]
    Strict,
    /// Cut the log at the first invalid batch, whatever follows, and report what was cut.
    TruncateCorrupt,
}

/// Settings a segment needs; the partition derives them from its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentConfig {
    /// Bytes of log between offset index entries. Kafka: `index.interval.bytes`. Default 4096.
    pub index_interval_bytes: u32,
    /// Maximum size of each index file; the segment must roll when one is full. Kafka:
    /// `segment.index.bytes`. Default 10 MiB.
    pub max_index_bytes: u32,
    /// Length to preallocate the active `.log` to (0 = no preallocation). Kafka: `preallocate`.
    pub preallocate_bytes: u64,
    /// Largest batch the partition accepts; bounds how far recovery looks for valid data past a
    /// damaged batch. Kafka: `max.message.bytes`.
    pub max_batch_bytes: u32,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            index_interval_bytes: 4096,
            max_index_bytes: 10 << 20,
            preallocate_bytes: 0,
            max_batch_bytes: 1 << 20,
        }
    }
}

/// What [`Segment::recover`] found.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentRecovery {
    /// Valid bytes kept.
    pub valid_bytes: u64,
    /// Bytes cut after the last valid batch (torn tail, garbage, or damage under
    /// [`Recovery::TruncateCorrupt`]); zero-filled preallocated space is not counted.
    pub truncated_bytes: u64,
    /// Whether the cut discarded bytes that were not a torn tail (only under
    /// [`Recovery::TruncateCorrupt`]).
    pub cut_corruption: bool,
    /// Offset after the last valid batch.
    pub next_offset: u64,
}

/// Indexes plus the bookkeeping that decides when to add entries.
#[derive(Debug)]
struct Indexes {
    offset: OffsetIndex,
    time: TimeIndex,
}

#[derive(Debug, Default)]
struct WriteState {
    /// Bytes appended since the last offset index entry.
    bytes_since_index: u64,
    /// Base offset of the batch in which the maximum timestamp was first reached.
    max_timestamp_offset: u64,
}

/// One segment of a partition's log: a `.log` of record batches plus its sparse `.index` and
/// `.timeindex`. *Active* (appended to; indexes in memory; file possibly preallocated) or *sealed*
/// (immutable, trimmed, read through a read-only map). One writer at a time, any number of readers;
/// readers see only bytes below the published size, so never a partial batch.
#[derive(Debug)]
pub struct Segment {
    fs: Arc<dyn FileSystem>,
    base_offset: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    file: Arc<dyn File>,
    config: SegmentConfig,
    /// Bytes of whole, valid batches; readers never look past it.
    size: AtomicU64,
    /// Offset after the last batch (for sealed segments opened from disk: the next segment's base).
    next_offset: AtomicU64,
    /// Largest record timestamp, `i64::MIN` when empty or not yet loaded.
    max_timestamp: AtomicI64,
    max_timestamp_known: AtomicBool,
    /// Wall-clock time (ms) of the first append in this process, `i64::MIN` if none yet.
    first_append_ms: AtomicI64,
    /// Wall-clock time (ms) of the last append in this process, `i64::MIN` if none yet.
    last_append_ms: AtomicI64,
    sealed: AtomicBool,
    /// Its files were deleted: readers holding it may still read, but nothing is written back.
    deleted: AtomicBool,
    map: OnceLock<Bytes>,
    /// `None` for a sealed segment whose indexes have not been mapped yet.
    indexes: RwLock<Option<Indexes>>,
    writer: Mutex<WriteState>,
}

/// Where a read's bytes come from.
enum Source<'a> {
    Mapped(&'a Bytes),
    File(&'a dyn File),
}

impl Segment {
    /// Create a new, empty, active segment in `dir`, replacing any stale files of the same name.
    /// The caller syncs `dir` to make the creation durable.
    ///
    /// # Errors
    /// [`Error::Io`] if the files cannot be created.
    pub fn create(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: SegmentConfig,
    ) -> Result<Segment> {
        Segment::create_with_suffix(fs, dir, base_offset, config, "")
    }

    /// [`create`](Self::create) with `suffix` appended to each file name (compaction writes its
    /// output as `<base>.log.cleaned` and friends, then renames them into place).
    pub(crate) fn create_with_suffix(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: SegmentConfig,
        suffix: &str,
    ) -> Result<Segment> {
        let log_path = suffixed(
            segment_file_name(dir, base_offset, SegmentFileKind::Log),
            suffix,
        );
        let file = fs.open(&log_path, OpenMode::Create).at(&log_path)?;
        file.set_len(0).at(&log_path)?;
        if config.preallocate_bytes > 0 {
            file.set_len(config.preallocate_bytes).at(&log_path)?;
        }
        let mut seg = Segment::new(fs.clone(), dir, base_offset, file, config, false);
        seg.log_path = log_path;
        seg.index_path = suffixed(seg.index_path, suffix);
        seg.time_index_path = suffixed(seg.time_index_path, suffix);
        let idx = Indexes {
            offset: OffsetIndex::create(
                fs.clone(),
                &seg.index_path,
                base_offset,
                config.max_index_bytes as usize,
            ),
            time: TimeIndex::create(
                fs,
                &seg.time_index_path,
                base_offset,
                config.max_index_bytes as usize,
            ),
        };
        *seg.indexes.write() = Some(idx);
        seg.max_timestamp_known.store(true, Ordering::Relaxed);
        Ok(seg)
    }

    fn new(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        file: Arc<dyn File>,
        config: SegmentConfig,
        sealed: bool,
    ) -> Segment {
        Segment {
            fs,
            base_offset,
            log_path: segment_file_name(dir, base_offset, SegmentFileKind::Log),
            index_path: segment_file_name(dir, base_offset, SegmentFileKind::OffsetIndex),
            time_index_path: segment_file_name(dir, base_offset, SegmentFileKind::TimeIndex),
            file,
            config,
            size: AtomicU64::new(0),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            max_timestamp_known: AtomicBool::new(false),
            first_append_ms: AtomicI64::new(i64::MIN),
            last_append_ms: AtomicI64::new(i64::MIN),
            sealed: AtomicBool::new(sealed),
            deleted: AtomicBool::new(false),
            map: OnceLock::new(),
            indexes: RwLock::new(None),
            writer: Mutex::new(WriteState {
                bytes_since_index: 0,
                max_timestamp_offset: base_offset,
            }),
        }
    }

    /// Open a sealed segment written by a clean run: its size is its file length, its indexes are
    /// mapped on first use (and rebuilt if they fail the sanity check). `next_offset` is the next
    /// segment's base offset, an upper bound on this segment's offsets.
    ///
    /// # Errors
    /// [`Error::Io`] if the `.log` cannot be opened.
    pub fn open_sealed(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        config: SegmentConfig,
    ) -> Result<Segment> {
        let log_path = segment_file_name(dir, base_offset, SegmentFileKind::Log);
        let file = fs.open(&log_path, OpenMode::Read).at(&log_path)?;
        let len = file.len().at(&log_path)?;
        let seg = Segment::new(fs, dir, base_offset, file, config, true);
        seg.size.store(len, Ordering::Release);
        seg.next_offset
            .store(next_offset.max(base_offset), Ordering::Release);
        Ok(seg)
    }

    /// Open the active segment after a clean shutdown: load its indexes (rebuilding them if they
    /// are missing or fail the sanity check), then read the batches after the last index entry to
    /// find the end offset and maximum timestamp.
    ///
    /// # Errors
    /// [`Error::Io`] on I/O failure; [`Error::Corrupt`] if the data after the last index entry is
    /// damaged.
    pub fn open_active(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: SegmentConfig,
    ) -> Result<Segment> {
        let log_path = segment_file_name(dir, base_offset, SegmentFileKind::Log);
        let file = fs.open(&log_path, OpenMode::ReadWrite).at(&log_path)?;
        let len = file.len().at(&log_path)?;
        let seg = Segment::new(fs.clone(), dir, base_offset, file, config, false);
        seg.size.store(len, Ordering::Release);
        let max = config.max_index_bytes as usize;
        let offset = OffsetIndex::load(fs.clone(), &seg.index_path, base_offset, max)?;
        let time = TimeIndex::load(fs, &seg.time_index_path, base_offset, max)?;
        let candidate = Indexes { offset, time };
        let offsets_ok = seg.offset_index_matches(&candidate.offset, len);
        *seg.indexes.write() = Some(candidate);
        // Indexes are derived data: anything suspicious is rebuilt from the log, never trusted.
        let ok = offsets_ok
            && seg.rescan_tail().is_ok()
            && seg.indexes.read().as_ref().is_some_and(|i| {
                seg.time_index_matches(&i.time, &i.offset, len, seg.next_offset())
            });
        if !ok {
            seg.rebuild_indexes()?;
            seg.flush_indexes(true)?;
        }
        seg.max_timestamp_known.store(true, Ordering::Relaxed);
        seg.init_roll_time()?;
        if config.preallocate_bytes > len {
            seg.file
                .set_len(config.preallocate_bytes)
                .at(&seg.log_path)?;
        }
        Ok(seg)
    }

    /// Open a segment for recovery: the caller must call [`recover`](Self::recover) next.
    ///
    /// # Errors
    /// [`Error::Io`] if the `.log` cannot be opened.
    pub fn open_for_recovery(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: SegmentConfig,
    ) -> Result<Segment> {
        let log_path = segment_file_name(dir, base_offset, SegmentFileKind::Log);
        let file = fs.open(&log_path, OpenMode::ReadWrite).at(&log_path)?;
        Ok(Segment::new(fs, dir, base_offset, file, config, false))
    }

    /// The offset of the segment's first record slot; also its file name.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Bytes of valid batches.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Whether the segment holds no batch.
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Offset after the last batch (for a sealed segment opened from disk, an upper bound).
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Whether the segment is sealed (immutable).
    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The largest record timestamp in the segment, `None` if it is empty.
    ///
    /// # Errors
    /// [`Error::Io`] if a sealed segment's time index must be loaded and cannot be.
    pub fn max_timestamp(&self) -> Result<Option<i64>> {
        if !self.max_timestamp_known.load(Ordering::Acquire) {
            let ts =
                self.with_indexes(|i| i.time.last_entry().map_or(i64::MIN, |e| e.timestamp))?;
            self.max_timestamp.fetch_max(ts, Ordering::AcqRel);
            self.max_timestamp_known.store(true, Ordering::Release);
        }
        let ts = self.max_timestamp.load(Ordering::Acquire);
        Ok((ts != i64::MIN || !self.is_empty()).then_some(ts))
    }

    /// Wall-clock time (ms) of the first append made to this segment by this process.
    pub fn first_append_ms(&self) -> Option<i64> {
        let t = self.first_append_ms.load(Ordering::Acquire);
        (t != i64::MIN).then_some(t)
    }

    /// Wall-clock time (ms) the segment last received data: the last append in this process, else
    /// the file's modification time where the file system keeps one. Retention uses it so that a
    /// record with a far-future timestamp cannot keep a segment forever.
    pub fn last_modified_ms(&self) -> Option<i64> {
        let t = self.last_append_ms.load(Ordering::Acquire);
        if t != i64::MIN {
            return Some(t);
        }
        self.file.modified_ms().ok().flatten()
    }

    /// For a segment opened from disk: time-based rolling counts from the first batch's maximum
    /// timestamp (as Kafka's `segment.ms` does), since its first append happened in an earlier run.
    fn init_roll_time(&self) -> Result<()> {
        if self.size() == 0 {
            return Ok(());
        }
        let mut reader = WindowReader::new(self.source(), BATCH_HEADER_LEN, self.size());
        let h = reader.header_at(0, &self.log_path)?;
        self.first_append_ms
            .store(h.max_timestamp, Ordering::Release);
        Ok(())
    }

    /// Whether an index is full, so the segment must roll before the next append.
    pub fn indexes_full(&self) -> bool {
        self.indexes
            .read()
            .as_ref()
            .is_some_and(|i| i.offset.is_full() || i.time.is_full())
    }

    /// Run `f` on the indexes, mapping a sealed segment's indexes first if needed.
    fn with_indexes<R>(&self, f: impl FnOnce(&Indexes) -> R) -> Result<R> {
        {
            let guard = self.indexes.read();
            if let Some(i) = guard.as_ref() {
                return Ok(f(i));
            }
        }
        let mut guard = self.indexes.write();
        if guard.is_none() {
            *guard = Some(self.load_sealed_indexes()?);
        }
        let guard = RwLockWriteGuard::downgrade(guard);
        match guard.as_ref() {
            Some(i) => Ok(f(i)),
            None => unreachable!("indexes loaded above"),
        }
    }

    fn load_sealed_indexes(&self) -> Result<Indexes> {
        let max = self.config.max_index_bytes as usize;
        let offset = OffsetIndex::map(self.fs.clone(), &self.index_path, self.base_offset, max)?;
        let time = TimeIndex::map(
            self.fs.clone(),
            &self.time_index_path,
            self.base_offset,
            max,
        )?;
        let size = self.size();
        if self.offset_index_matches(&offset, size)
            && self.time_index_matches(&time, &offset, size, self.next_offset())
        {
            return Ok(Indexes { offset, time });
        }
        // Damaged or missing: rebuild from the log and replace the files (by rename, so a map of
        // the old file held elsewhere stays valid).
        let (mut idx, _) = self.scan_build(size)?;
        if !self.deleted.load(Ordering::Acquire) {
            idx.offset.flush(true)?;
            idx.time.flush(true)?;
        }
        Ok(idx)
    }

    /// Cheap checks that an offset index describes this log: entries in bounds and increasing, the
    /// file present when the log has data, no entry at position 0 (the writer never makes one),
    /// and the last entry pointing at a batch with exactly that base offset.
    fn offset_index_matches(&self, offset: &OffsetIndex, size: u64) -> bool {
        if offset.sanity_check(size).is_err() {
            return false;
        }
        if size > 0 && !self.fs.exists(&self.index_path).unwrap_or(false) {
            // A failed lookup also means "rebuild": the index is derived data.
            return false;
        }
        if offset.entry(0).is_some_and(|e| e.position == 0) {
            return false;
        }
        if offset.is_empty() {
            return true;
        }
        let last = offset.last_entry();
        let mut reader = WindowReader::new(self.source(), BATCH_HEADER_LEN, size);
        matches!(reader.header_at(u64::from(last.position), &self.log_path),
            Ok(h) if h.base_offset == last.offset)
    }

    /// Cheap checks that a time index describes this log: increasing entries below `next_offset`,
    /// at least the final maximum-timestamp entry when the log has data, and the last entry naming a
    /// batch whose maximum timestamp is exactly that entry's timestamp.
    fn time_index_matches(
        &self,
        time: &TimeIndex,
        offset: &OffsetIndex,
        size: u64,
        next_offset: u64,
    ) -> bool {
        if time.sanity_check(next_offset).is_err() {
            return false;
        }
        let Some(last) = time.last_entry() else {
            return size == 0;
        };
        let mut pos = u64::from(offset.lookup(last.offset).position);
        let mut reader = WindowReader::new(self.source(), 64 << 10, size);
        while pos < size {
            let Ok(h) = reader.header_at(pos, &self.log_path) else {
                return false;
            };
            if h.base_offset == last.offset {
                if h.max_timestamp != last.timestamp {
                    return false;
                }
                // The last entry must hold the segment's maximum: a cut-back index would make the
                // segment look older than it is. Check the headers after it.
                pos += h.total_len() as u64;
                while pos < size {
                    let Ok(h) = reader.header_at(pos, &self.log_path) else {
                        return false;
                    };
                    if h.record_count > 0 && h.max_timestamp > last.timestamp {
                        return false;
                    }
                    pos += h.total_len() as u64;
                }
                return true;
            }
            if h.base_offset > last.offset {
                return false;
            }
            pos += h.total_len() as u64;
        }
        false
    }

    /// Empty indexes (to be filled by a scan) and the matching write bookkeeping.
    fn empty_indexes(&self) -> (Indexes, WriteState) {
        let max = self.config.max_index_bytes as usize;
        let idx = Indexes {
            offset: OffsetIndex::create(self.fs.clone(), &self.index_path, self.base_offset, max),
            time: TimeIndex::create(
                self.fs.clone(),
                &self.time_index_path,
                self.base_offset,
                max,
            ),
        };
        let ws = WriteState {
            bytes_since_index: 0,
            max_timestamp_offset: self.base_offset,
        };
        (idx, ws)
    }

    /// Scan `[0, limit)` and build fresh indexes (strict: any invalid batch is corruption).
    fn scan_build(&self, limit: u64) -> Result<(Indexes, WriteState)> {
        let (mut idx, mut ws) = self.empty_indexes();
        let mut max_ts = i64::MIN;
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let mut reader = WindowReader::new(self.source(), 1 << 20, limit);
        while pos < limit {
            let (h, _) = reader.batch_at(pos, &self.log_path, true)?;
            self.check_follows(&h, expected, pos)?;
            self.index_batch(&mut idx, &mut ws, &mut max_ts, &h, pos)
                .map_err(|e| self.index_error_is_damage(e, pos))?;
            pos += h.total_len() as u64;
            expected = h.next_offset();
        }
        if max_ts != i64::MIN {
            let _ = idx.time.append_final(max_ts, ws.max_timestamp_offset);
        }
        Ok((idx, ws))
    }

    /// Account a batch at `pos` in the indexes (the same rule on append, recovery and rebuild).
    fn index_batch(
        &self,
        idx: &mut Indexes,
        ws: &mut WriteState,
        max_ts: &mut i64,
        h: &BatchHeader,
        pos: u64,
    ) -> Result<()> {
        track_max_timestamp(ws, max_ts, h);
        // A full index takes no more entries (the partition rolls before appending to such a
        // segment; recovery under a smaller limit just indexes less). The final maximum-timestamp
        // entry may still go past the limit (`TimeIndex::append_final`).
        if ws.bytes_since_index >= u64::from(self.config.index_interval_bytes) {
            if !idx.offset.is_full() {
                idx.offset.append(h.base_offset, pos as u32)?;
            }
            if *max_ts != i64::MIN && !idx.time.is_full() {
                idx.time.append(*max_ts, ws.max_timestamp_offset)?;
            }
            ws.bytes_since_index = 0;
        }
        ws.bytes_since_index += h.total_len() as u64;
        Ok(())
    }

    fn source(&self) -> Source<'_> {
        if let Some(m) = self.map.get() {
            if m.len() as u64 >= self.size() {
                return Source::Mapped(m);
            }
        }
        if self.is_sealed() {
            if let Ok(m) = self.file.map_readonly(self.size()) {
                return Source::Mapped(self.map.get_or_init(|| m));
            }
        }
        Source::File(&*self.file)
    }

    /// Read the active segment through a shared map of `len` bytes (which may exceed the file)
    /// instead of `pread`, where the file system supports it. Reads stay below the published size;
    /// from now on the segment must be truncated by [`truncated_copy`](Self::truncated_copy), never
    /// in place. Returns whether the segment is now mapped.
    ///
    /// # Errors
    /// [`Error::Io`] if mapping fails.
    pub fn map_active(&self, len: u64) -> Result<bool> {
        if self.map.get().is_some() {
            return Ok(true);
        }
        match self.file.map_growing(len).at(&self.log_path)? {
            Some(m) => {
                let _ = self.map.set(m);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether reads go through a map (so the file must never be shrunk in place).
    pub fn is_mapped(&self) -> bool {
        self.map.get().is_some()
    }

    /// Append one encoded batch (base offset already assigned) at the end of the segment.
    ///
    /// The batch must follow the segment's last offset, and keep relative offsets and positions
    /// within `u32` (the partition rolls before that could happen).
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails: the batch is then not visible, and the caller must stop
    /// appending (the tail of the file is in an unknown state until recovery).
    /// [`Error::Corrupt`] if `batch` is not a well-formed batch header.
    pub fn append(&self, batch: &[u8], now_ms: i64) -> Result<()> {
        let h = BatchHeader::parse(batch)
            .map_err(|r| Error::corrupt(&self.log_path, self.size(), r))?;
        if self.is_sealed() {
            return Err(Error::io(
                &self.log_path,
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, "segment is sealed"),
            ));
        }
        let mut ws = self.writer.lock();
        let pos = self.size.load(Ordering::Acquire);
        let next = self.next_offset();
        if h.base_offset < next || h.last_offset() - self.base_offset > u64::from(u32::MAX) {
            return Err(Error::IndexAppend {
                path: self.log_path.clone(),
                reason: format!(
                    "batch at offset {} does not fit after offset {next}",
                    h.base_offset
                ),
            });
        }
        if pos + batch.len() as u64 > u64::from(u32::MAX) {
            return Err(Error::RecordTooLarge {
                size: batch.len(),
                max: (u64::from(u32::MAX) - pos) as usize,
            });
        }
        self.file.write_all_at(batch, pos).at(&self.log_path)?;
        let mut max_ts = self.max_timestamp.load(Ordering::Relaxed);
        if ws.bytes_since_index >= u64::from(self.config.index_interval_bytes) {
            // Only batches that get an index entry take the index lock readers use.
            let mut guard = self.indexes.write();
            let idx = guard.as_mut().ok_or_else(|| Error::IndexAppend {
                path: self.index_path.clone(),
                reason: "active segment has no loaded index".into(),
            })?;
            self.index_batch(idx, &mut ws, &mut max_ts, &h, pos)?;
        } else {
            track_max_timestamp(&mut ws, &mut max_ts, &h);
            ws.bytes_since_index += h.total_len() as u64;
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        if self.first_append_ms.load(Ordering::Relaxed) == i64::MIN {
            self.first_append_ms.store(now_ms, Ordering::Release);
        }
        self.last_append_ms.store(now_ms, Ordering::Release);
        self.next_offset.store(h.next_offset(), Ordering::Release);
        self.size.store(pos + batch.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Read whole batches starting with the one that contains `offset` (or the first batch after
    /// it, across a compaction gap), adding batches while the total stays within `max_bytes`. The
    /// first batch is returned even if it alone exceeds `max_bytes`, so a reader always progresses.
    /// Returns an empty vector if the segment has nothing at or after `offset`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a batch fails its checksum or framing; [`Error::Io`] on read failure.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<RecordBatch>> {
        let limit = self.size();
        let mut out = Vec::new();
        if limit == 0 || offset >= self.next_offset() {
            return Ok(out);
        }
        let window = max_bytes.clamp(4096, 1 << 20) + self.config.index_interval_bytes as usize;
        let mut reader = WindowReader::new(self.source(), window, limit);
        let (mut pos, mut expected) = self.start_position(offset, &mut reader)?;
        let mut total = 0usize;
        // The last batch skipped on its header's word, until a batch starting exactly where it
        // said it ends (or a served, checksummed one) vouches for that header.
        let mut unvouched: Option<(u64, BatchHeader)> = None;
        while pos < limit {
            let h = reader.header_at(pos, &self.log_path)?;
            self.check_follows(&h, expected, pos)?;
            if h.base_offset != expected {
                // A gap, which only compaction makes: the batch before it must really end where
                // its header says (a damaged length or offset would skip records silently), so
                // check its CRC, which covers both. A batch that starts exactly where the one
                // before it ends needs no check: damage to either header breaks that.
                if let Some((at, before)) = unvouched {
                    reader.verify(at, &before, &self.log_path)?;
                }
            }
            unvouched = None;
            expected = h.next_offset();
            let len = h.total_len();
            if h.next_offset() <= offset {
                unvouched = Some((pos, h));
                pos += len as u64;
                continue;
            }
            if !out.is_empty() && total + len > max_bytes {
                break;
            }
            let (_, batch) = reader.batch_at(pos, &self.log_path, true)?;
            if let Some(b) = batch {
                out.push(b);
            }
            total += len;
            pos += len as u64;
            if total >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// The first record at or after `start_offset` whose timestamp is `>= timestamp`, with its
    /// timestamp; `None` if the segment has none.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Io`] as for [`read`](Self::read).
    pub fn find_offset_by_timestamp(
        &self,
        timestamp: i64,
        start_offset: u64,
    ) -> Result<Option<TimestampOffset>> {
        match self.max_timestamp()? {
            Some(max) if max >= timestamp => {}
            _ => return Ok(None),
        }
        let limit = self.size();
        let entry = self.with_indexes(|i| i.time.lookup(timestamp))?;
        let mut reader = WindowReader::new(self.source(), 64 << 10, limit);
        // Starting at the entry skips every record before it, so the entry must be real: the
        // batch at its offset reached exactly its timestamp (that is how entries are made). A
        // damaged entry must never make the answer come late: then scan from the start.
        let trusted = entry.timestamp == i64::MIN
            || entry.offset <= start_offset
            || self.time_entry_matches(entry, limit, &mut reader)?;
        let from = if trusted {
            entry.offset.max(start_offset)
        } else {
            start_offset
        };
        let (mut pos, mut expected) = self.start_position(from, &mut reader)?;
        while pos < limit {
            // Every header is checked: its offsets and maximum timestamp decide what is skipped.
            let h = reader.verified_header_at(pos, &self.log_path)?;
            self.check_follows(&h, expected, pos)?;
            expected = h.next_offset();
            if h.next_offset() > from && h.max_timestamp >= timestamp && h.record_count > 0 {
                let (_, batch) = reader.batch_at(pos, &self.log_path, true)?;
                if let Some(b) = batch {
                    for r in b.records() {
                        if r.offset() >= from && r.timestamp() >= timestamp {
                            return Ok(Some(TimestampOffset {
                                timestamp: r.timestamp(),
                                offset: r.offset(),
                            }));
                        }
                    }
                }
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Where to start scanning for `offset`: the floor index entry's position, after checking that a
    /// batch with exactly the entry's base offset starts there (the writer only makes such
    /// entries). A damaged entry must never make a read skip records, so on a mismatch the scan
    /// starts at the beginning of the segment instead.
    ///
    /// Returns the position and the smallest base offset a batch there may have (the entry's
    /// offset, or the segment's base offset at position 0), for [`check_follows`](Self::check_follows).
    fn start_position(&self, offset: u64, reader: &mut WindowReader<'_>) -> Result<(u64, u64)> {
        let entry = self.with_indexes(|i| i.offset.lookup(offset))?;
        if entry.position == 0 {
            return Ok((0, self.base_offset));
        }
        match reader.header_at(u64::from(entry.position), &self.log_path) {
            Ok(h) if h.base_offset == entry.offset && entry.offset <= offset => {
                Ok((u64::from(entry.position), entry.offset))
            }
            _ => Ok((0, self.base_offset)),
        }
    }

    /// A batch at `pos` must start at or after `expected` (the end of the batch before it, the
    /// index entry it was found from, or the segment's base) and stay within the segment's `u32`
    /// relative offsets: otherwise its header is damaged, and trusting it would skip, repeat or
    /// misplace records.
    fn check_follows(&self, h: &BatchHeader, expected: u64, pos: u64) -> Result<()> {
        if h.base_offset < expected {
            return Err(Error::corrupt(
                &self.log_path,
                pos,
                format!(
                    "batch claims base offset {} where offset {expected} or later must follow",
                    h.base_offset
                ),
            ));
        }
        if h.last_offset() - self.base_offset > u64::from(u32::MAX) {
            return Err(Error::corrupt(
                &self.log_path,
                pos,
                format!(
                    "batch ends at offset {}, past the segment's range from {}",
                    h.last_offset(),
                    self.base_offset
                ),
            ));
        }
        Ok(())
    }

    /// An index that rejects an entry made from bytes read off the disk means the bytes are
    /// damaged (the writer never makes such entries): report the data, not the index.
    fn index_error_is_damage(&self, e: Error, pos: u64) -> Error {
        match e {
            Error::IndexAppend { reason, .. } => Error::corrupt(&self.log_path, pos, reason),
            e => e,
        }
    }

    /// Whether a batch based exactly at `entry.offset` exists and has exactly `entry.timestamp` as
    /// its maximum timestamp.
    fn time_entry_matches(
        &self,
        entry: TimestampOffset,
        limit: u64,
        reader: &mut WindowReader<'_>,
    ) -> Result<bool> {
        let (mut pos, _) = self.start_position(entry.offset, reader)?;
        while pos < limit {
            let Ok(h) = reader.verified_header_at(pos, &self.log_path) else {
                return Ok(false);
            };
            if h.base_offset >= entry.offset {
                return Ok(h.base_offset == entry.offset && h.max_timestamp == entry.timestamp);
            }
            pos += h.total_len() as u64;
        }
        Ok(false)
    }

    /// Byte position of the first batch whose last offset is `>= offset`, with that batch's base
    /// offset; `None` if every batch ends before `offset`.
    fn position_of(&self, offset: u64) -> Result<Option<(u64, u64)>> {
        let limit = self.size();
        let mut reader = WindowReader::new(self.source(), 64 << 10, limit);
        let (mut pos, mut expected) = self.start_position(offset, &mut reader)?;
        while pos < limit {
            let h = reader.verified_header_at(pos, &self.log_path)?;
            self.check_follows(&h, expected, pos)?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h.base_offset)));
            }
            expected = h.next_offset();
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Remove every batch whose last offset is `>= offset` (a batch containing `offset` goes
    /// whole, as in Kafka). Returns the new next offset. Only for an active segment.
    ///
    /// # Errors
    /// [`Error::Io`] if the segment is sealed or the file cannot be cut.
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        if self.is_sealed() || self.is_mapped() {
            return Err(Error::io(
                &self.log_path,
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "cannot truncate a sealed segment in place",
                ),
            ));
        }
        let _ws = self.writer.lock();
        let Some((pos, base)) = self.position_of(offset)? else {
            return Ok(self.next_offset());
        };
        // Publish the smaller size first so no reader looks at bytes being removed.
        self.size.store(pos, Ordering::Release);
        self.next_offset
            .store(base.max(self.base_offset), Ordering::Release);
        self.file.set_len(pos).at(&self.log_path)?;
        if self.config.preallocate_bytes > pos {
            // Make the cut durable before re-extending, or a crash could keep the old bytes
            // behind zeros and resurrect them.
            self.file.sync_all().at(&self.log_path)?;
            self.file
                .set_len(self.config.preallocate_bytes)
                .at(&self.log_path)?;
        }
        self.file.sync_all().at(&self.log_path)?;
        {
            let mut guard = self.indexes.write();
            if let Some(idx) = guard.as_mut() {
                idx.offset.truncate_to(base);
                idx.time.truncate_to(base);
            }
        }
        drop(_ws);
        self.rescan_tail()?;
        Ok(self.next_offset())
    }

    /// Recompute end offset, maximum timestamp and index bookkeeping by reading the batches after
    /// the last offset index entry.
    fn rescan_tail(&self) -> Result<()> {
        let mut ws = self.writer.lock();
        let limit = self.size();
        let mut guard = self.indexes.write();
        let Some(idx) = guard.as_mut() else {
            return Ok(());
        };
        let last = idx.offset.last_entry();
        let mut max_ts = idx.time.last_entry().map_or(i64::MIN, |e| e.timestamp);
        ws.max_timestamp_offset = idx.time.last_entry().map_or(self.base_offset, |e| e.offset);
        let mut pos = u64::from(last.position);
        let mut next = self.base_offset;
        let mut expected = if pos == 0 {
            self.base_offset
        } else {
            last.offset
        };
        let mut since = 0u64;
        let mut reader = WindowReader::new(self.source(), 1 << 20, limit);
        while pos < limit {
            // Verified: the end offset of the whole log comes from these headers.
            let h = reader.verified_header_at(pos, &self.log_path)?;
            self.check_follows(&h, expected, pos)?;
            expected = h.next_offset();
            if h.max_timestamp > max_ts && h.record_count > 0 {
                max_ts = h.max_timestamp;
                ws.max_timestamp_offset = h.base_offset;
            }
            since += h.total_len() as u64;
            next = h.next_offset();
            pos += h.total_len() as u64;
        }
        if pos != limit {
            return Err(Error::corrupt(
                &self.log_path,
                pos,
                "last batch extends past the end of the log",
            ));
        }
        ws.bytes_since_index = since;
        if limit > 0 {
            self.next_offset
                .store(next.max(last.offset), Ordering::Release);
        } else {
            self.next_offset.store(self.base_offset, Ordering::Release);
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        Ok(())
    }

    fn rebuild_indexes(&self) -> Result<()> {
        let (idx, ws) = self.scan_build(self.size())?;
        let mut w = self.writer.lock();
        *w = ws;
        *self.indexes.write() = Some(idx);
        drop(w);
        self.rescan_tail()
    }

    /// Scan the whole `.log`, verifying every batch (CRC and framing), rebuild both indexes, and cut
    /// the file after the last valid batch. `durable_offset` is the offset below which data is known
    /// to have been synced: an invalid batch below it, or one followed by valid data, is corruption
    /// rather than a torn tail, and fails under [`Recovery::Strict`].
    ///
    /// The file is synced afterwards, so everything kept is durable.
    ///
    /// # Errors
    /// [`Error::Corrupt`] under [`Recovery::Strict`] as above; [`Error::Io`] on I/O failure.
    pub fn recover(&self, durable_offset: u64, mode: Recovery) -> Result<SegmentRecovery> {
        let file_len = self.file.len().at(&self.log_path)?;
        let (mut idx, mut ws) = self.empty_indexes();
        let mut max_ts = i64::MIN;
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let mut cut_corruption = false;
        let mut reader = WindowReader::new(Source::File(&*self.file), 1 << 20, file_len);
        while pos < file_len {
            let mut backwards = false;
            let valid = match reader.batch_at(pos, &self.log_path, true) {
                Ok((h, _))
                    if h.base_offset >= expected
                        && h.last_offset() - self.base_offset <= u64::from(u32::MAX)
                        && pos + h.total_len() as u64 <= u64::from(u32::MAX) =>
                {
                    Some(h)
                }
                Ok(_) => {
                    // A checksummed batch whose offsets go backwards or overflow the segment is
                    // damage, never a torn write.
                    backwards = true;
                    None
                }
                Err(Error::Io { source, .. })
                    if source.kind() != std::io::ErrorKind::UnexpectedEof =>
                {
                    return Err(Error::Io {
                        path: self.log_path.clone(),
                        source,
                    })
                }
                Err(_) => None,
            };
            let Some(h) = valid else {
                // A torn write leaves a prefix of the batch the writer meant to put here, then
                // zeros (or the end of the file). Bytes that cannot be that are not a torn tail.
                let ours = !backwards && self.torn_batch_compatible(pos, expected, file_len)?;
                if !ours && pos == 0 {
                    // Not a single batch of ours: another format (a Kafka broker's segment, a
                    // later version's), or damage from the first byte. Never erase it.
                    return Err(Error::corrupt(
                        &self.log_path,
                        0,
                        "the file does not start with a topiclog record batch (another format, \
                         or damaged from its first byte); it was left untouched: move it out of \
                         the partition directory or restore it",
                    ));
                }
                let corrupt = !ours
                    || expected < durable_offset
                    || self.valid_batch_follows(pos, file_len)?;
                if corrupt {
                    if mode == Recovery::Strict {
                        return Err(Error::corrupt(
                            &self.log_path,
                            pos,
                            format!(
                                "invalid batch where offset {expected} was expected, with durable data at or after it \
                                 (durable point {durable_offset}); reopen with Recovery::TruncateCorrupt to cut here"
                            ),
                        ));
                    }
                    cut_corruption = true;
                }
                break;
            };
            self.index_batch(&mut idx, &mut ws, &mut max_ts, &h, pos)
                .map_err(|e| self.index_error_is_damage(e, pos))?;
            pos += h.total_len() as u64;
            expected = h.next_offset();
        }
        // Report the cut, but only look one maximum batch past it for non-zero bytes: the rest of
        // a preallocated file is zeros and reading it all would slow every recovery down. A cut
        // of damage (valid data was found after it, possibly past that window) always counts.
        let probe_end =
            file_len.min(pos + u64::from(self.config.max_batch_bytes) + BATCH_HEADER_LEN as u64);
        let truncated = if pos < file_len && (cut_corruption || !reader.is_zero(pos, probe_end)?) {
            file_len - pos
        } else {
            0
        };
        if pos < file_len {
            self.file.set_len(pos).at(&self.log_path)?;
            // Durable before re-extending (see `truncate_to`).
            self.file.sync_all().at(&self.log_path)?;
        }
        if self.config.preallocate_bytes > pos {
            self.file
                .set_len(self.config.preallocate_bytes)
                .at(&self.log_path)?;
        }
        self.file.sync_all().at(&self.log_path)?;
        *self.writer.lock() = ws;
        *self.indexes.write() = Some(idx);
        self.size.store(pos, Ordering::Release);
        self.next_offset.store(expected, Ordering::Release);
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.max_timestamp_known.store(true, Ordering::Release);
        self.init_roll_time()?;
        Ok(SegmentRecovery {
            valid_bytes: pos,
            truncated_bytes: truncated,
            cut_corruption,
            next_offset: expected,
        })
    }

    /// Whether the bytes at `pos` (where a batch based at `expected` was to be written) could be
    /// what a torn write of it left: zeros, or a header whose written bytes agree with such a
    /// batch (its base offset, the format version, a plausible length) and zeros where it was not
    /// written. Anything else is not a torn tail of this log.
    fn torn_batch_compatible(&self, pos: u64, expected: u64, file_len: u64) -> Result<bool> {
        use crate::format::{LENGTH_OFFSET, MIN_BATCH_LENGTH_FIELD, VERSION_OFFSET};
        let n = (file_len - pos).min(BATCH_HEADER_LEN as u64) as usize;
        let mut h = vec![0u8; n];
        self.file.read_exact_at(&mut h, pos).at(&self.log_path)?;
        let base = expected.to_le_bytes();
        let base_ok = h
            .iter()
            .zip(base)
            .all(|(&got, want)| got == want || got == 0);
        let version = h.get(VERSION_OFFSET).copied();
        let version_ok = version.is_none_or(|v| v == crate::format::BATCH_VERSION || v == 0);
        // The length is judged only when the header was written past it (the version byte is).
        let length_ok = match (h.get(LENGTH_OFFSET..LENGTH_OFFSET + 4), version) {
            (Some(l), Some(v)) if v != 0 => {
                let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]);
                (MIN_BATCH_LENGTH_FIELD..=MAX_BATCH_BYTES_LIMIT as u32).contains(&len)
            }
            _ => true,
        };
        Ok(base_ok && version_ok && length_ok)
    }

    /// After an invalid batch at `pos`: does a valid batch (CRC-checked, base offset included) start
    /// within one maximum batch length, with no all-zero 4 KiB page (an unwritten page of a torn
    /// write) before it? If so the invalid bytes are damage inside data that reached the disk.
    fn valid_batch_follows(&self, pos: u64, file_len: u64) -> Result<bool> {
        let span =
            (self.config.max_batch_bytes as u64 + 2 * BATCH_HEADER_LEN as u64).min(file_len - pos);
        let mut buf = vec![0u8; span as usize];
        self.file.read_exact_at(&mut buf, pos).at(&self.log_path)?;
        let buf = Bytes::from(buf);
        const PAGE: u64 = 4096;
        let mut next_page = pos.div_ceil(PAGE) * PAGE;
        for start in 1..buf.len() {
            let abs = pos + start as u64;
            // An all-zero page before any candidate: the torn-write signature. Stop looking.
            while next_page + PAGE <= abs {
                let s = (next_page - pos) as usize;
                if buf[s..s + PAGE as usize].iter().all(|&b| b == 0) {
                    return Ok(false);
                }
                next_page += PAGE;
            }
            let rest = &buf[start..];
            if let Frame::Batch(h) = peek_frame(rest) {
                if h.total_len() <= rest.len()
                    && RecordBatch::decode(buf.slice(start..start + h.total_len())).is_ok()
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Seal the segment: record the final time index entry, write and sync both indexes, cut the
    /// preallocated tail of the `.log`, and sync it. Afterwards the segment is immutable and read
    /// through a map.
    ///
    /// # Errors
    /// [`Error::Io`] on failure; the segment then stays active.
    pub fn seal(&self) -> Result<()> {
        self.seal_unsynced()?;
        self.sync()
    }

    /// Seal like [`seal`](Self::seal) but without syncing anything: the caller syncs the segment
    /// later (the partition does it off the append path, in its next group commit or background
    /// flush). The indexes are derived data, verified and rebuilt on open if they did not reach
    /// the disk.
    ///
    /// # Errors
    /// [`Error::Io`] on failure; the segment then stays active.
    pub fn seal_unsynced(&self) -> Result<()> {
        let ws = self.writer.lock();
        self.flush_indexes_locked(&ws, false)?;
        let size = self.size();
        if self.file.len().at(&self.log_path)? != size {
            self.file.set_len(size).at(&self.log_path)?;
        }
        self.sealed.store(true, Ordering::Release);
        Ok(())
    }

    /// Write the indexes (with the final maximum-timestamp entry) and optionally sync them.
    ///
    /// # Errors
    /// [`Error::Io`] on failure.
    pub fn flush_indexes(&self, sync: bool) -> Result<()> {
        let ws = self.writer.lock();
        self.flush_indexes_locked(&ws, sync)
    }

    fn flush_indexes_locked(&self, ws: &WriteState, sync: bool) -> Result<()> {
        let mut guard = self.indexes.write();
        if let Some(idx) = guard.as_mut() {
            let max_ts = self.max_timestamp.load(Ordering::Acquire);
            if max_ts != i64::MIN && idx.time.last_entry().is_none_or(|e| max_ts > e.timestamp) {
                idx.time.append_final(max_ts, ws.max_timestamp_offset)?;
            }
            idx.offset.flush(sync)?;
            idx.time.flush(sync)?;
        }
        Ok(())
    }

    /// Make the `.log`'s data durable (`fdatasync`).
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails. Never retry: treat the data as lost.
    pub fn sync(&self) -> Result<()> {
        if self.is_sealed() {
            // A segment sealed without syncing: its indexes (written unsynced) must be durable
            // before a recovery point past it makes the next open trust them, and the cut of its
            // preallocated tail must be too.
            self.flush_indexes(true)?;
            self.file.sync_all().at(&self.log_path)
        } else {
            self.file.sync_data().at(&self.log_path)
        }
    }

    /// Cut the preallocated tail of an active segment's `.log` (for a clean shutdown, so the next
    /// open can trust the file length).
    ///
    /// # Errors
    /// [`Error::Io`] on failure.
    pub fn trim(&self) -> Result<()> {
        let _ws = self.writer.lock();
        let size = self.size();
        if self.file.len().at(&self.log_path)? != size {
            self.file.set_len(size).at(&self.log_path)?;
        }
        self.file.sync_all().at(&self.log_path)
    }

    /// Copy the batches below `offset` into a fresh file that replaces this segment's `.log` by
    /// rename (never shrinking a file that may be mapped), and open the result as an active
    /// segment. Readers holding `self` keep reading the old file.
    ///
    /// # Errors
    /// [`Error::Io`] on failure.
    pub fn truncated_copy(&self, dir: &Path, offset: u64) -> Result<Segment> {
        let cut = self
            .position_of(offset)?
            .map_or(self.size(), |(pos, _)| pos);
        let mut tmp = self.log_path.as_os_str().to_owned();
        tmp.push(".truncating");
        let tmp = PathBuf::from(tmp);
        {
            let out = self.fs.open(&tmp, OpenMode::Create).at(&tmp)?;
            out.set_len(0).at(&tmp)?;
            let mut pos = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            while pos < cut {
                let n = ((cut - pos) as usize).min(buf.len());
                self.file
                    .read_exact_at(&mut buf[..n], pos)
                    .at(&self.log_path)?;
                out.write_all_at(&buf[..n], pos).at(&tmp)?;
                pos += n as u64;
            }
            out.sync_all().at(&tmp)?;
        }
        self.fs.rename(&tmp, &self.log_path).at(&self.log_path)?;
        // Indexes are rebuilt from the copied log and written by rename when flushed.
        let seg = Segment::open_for_recovery(self.fs.clone(), dir, self.base_offset, self.config)?;
        seg.recover(0, Recovery::TruncateCorrupt)?;
        seg.flush_indexes(true)?;
        self.fs.sync_dir(dir).at(dir)?;
        Ok(seg)
    }

    /// Delete the segment's files. Readers holding the segment keep reading it (open handles and
    /// maps survive the unlink). The caller syncs the directory.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be removed.
    pub fn delete(&self) -> Result<()> {
        // Under the index lock, so a reader loading indexes now cannot write them back after.
        let _guard = self.indexes.write();
        self.deleted.store(true, Ordering::Release);
        for path in [&self.log_path, &self.index_path, &self.time_index_path] {
            match self.fs.remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Ok(())
    }

    /// Map (and verify) a sealed segment's indexes now, so that readers holding the segment never
    /// need its index files again (they may be about to be deleted or replaced).
    ///
    /// # Errors
    /// [`Error::Io`]/[`Error::Corrupt`] if the indexes cannot be loaded or rebuilt.
    pub(crate) fn load_indexes(&self) -> Result<()> {
        self.with_indexes(|_| ())
    }

    /// Read-lock the indexes for inspection in tests and tools.
    #[doc(hidden)]
    pub fn index_entries(&self) -> Result<(Vec<OffsetPosition>, Vec<TimestampOffset>)> {
        self.with_indexes(|i| {
            (
                (0..i.offset.len())
                    .filter_map(|n| i.offset.entry(n))
                    .collect(),
                (0..i.time.len()).filter_map(|n| i.time.entry(n)).collect(),
            )
        })
    }
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn suffixed(path: PathBuf, suffix: &str) -> PathBuf {
    if suffix.is_empty() {
        return path;
    }
    let mut p = path.into_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

fn track_max_timestamp(ws: &mut WriteState, max_ts: &mut i64, h: &BatchHeader) {
    if h.max_timestamp > *max_ts && h.record_count > 0 {
        *max_ts = h.max_timestamp;
        ws.max_timestamp_offset = h.base_offset;
    }
}

/// Reads batch headers and batches through a window, refilling with one read per window, so a
/// scan over a file costs one `pread` per window rather than one per batch. Over a map it slices.
struct WindowReader<'a> {
    source: Source<'a>,
    window_len: usize,
    limit: u64,
    buf: Bytes,
    buf_start: u64,
}

impl<'a> WindowReader<'a> {
    fn new(source: Source<'a>, window_len: usize, limit: u64) -> Self {
        WindowReader {
            source,
            window_len,
            limit,
            buf: Bytes::new(),
            buf_start: 0,
        }
    }

    /// Make sure the window holds `[pos, end)` (file source only).
    fn fill(&mut self, pos: u64, end: u64, path: &Path) -> Result<()> {
        let Source::File(f) = &self.source else {
            return Ok(());
        };
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos >= self.buf_start && end <= buf_end {
            return Ok(());
        }
        let want = (self.window_len as u64)
            .max(end - pos)
            .min(self.limit - pos) as usize;
        let mut b = BytesMut::zeroed(want);
        let mut got = 0;
        while got < want {
            match f.read_at(&mut b[got..], pos + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        b.truncate(got);
        self.buf = b.freeze();
        self.buf_start = pos;
        Ok(())
    }

    /// `[pos, pos + len)` clipped to the limit and to what exists, as a range of `window()`.
    fn locate(&mut self, pos: u64, len: usize, path: &Path) -> Result<std::ops::Range<usize>> {
        let end = (pos + len as u64).min(self.limit);
        if pos >= end {
            return Ok(0..0);
        }
        self.fill(pos, end, path)?;
        let (base, avail) = match &self.source {
            Source::Mapped(m) => (0, m.len() as u64),
            Source::File(_) => (self.buf_start, self.buf_start + self.buf.len() as u64),
        };
        let e = end.min(avail);
        if pos >= e || pos < base {
            return Ok(0..0);
        }
        Ok((pos - base) as usize..(e - base) as usize)
    }

    fn window(&self) -> &Bytes {
        match &self.source {
            Source::Mapped(m) => m,
            Source::File(_) => &self.buf,
        }
    }

    /// Bytes `[pos, pos + len)`, clipped to the limit; `len` may be shorter than asked.
    fn bytes(&mut self, pos: u64, len: usize, path: &Path) -> Result<Bytes> {
        let r = self.locate(pos, len, path)?;
        Ok(self.window().slice(r))
    }

    /// The header of the batch at `pos`, structurally checked; the batch must end within the limit.
    fn header_at(&mut self, pos: u64, path: &Path) -> Result<BatchHeader> {
        let r = self.locate(pos, BATCH_HEADER_LEN, path)?;
        match peek_frame(&self.window()[r]) {
            Frame::Batch(h) if pos + h.total_len() as u64 <= self.limit => Ok(h),
            Frame::Batch(_) => Err(Error::corrupt(
                path,
                pos,
                "batch extends past the end of the log",
            )),
            Frame::ShortHeader => Err(Error::corrupt(path, pos, "truncated batch header")),
            Frame::Invalid(reason) => Err(Error::corrupt(path, pos, reason)),
        }
    }

    /// The header at `pos` after checking its whole batch's CRC, so that every field (offsets,
    /// length, timestamps) is what the writer wrote. Record framing is not checked.
    fn verified_header_at(&mut self, pos: u64, path: &Path) -> Result<BatchHeader> {
        let h = self.header_at(pos, path)?;
        self.verify(pos, &h, path)?;
        Ok(h)
    }

    /// Check the CRC of the batch at `pos` whose header is `h`.
    fn verify(&mut self, pos: u64, h: &BatchHeader, path: &Path) -> Result<()> {
        let b = self.bytes(pos, h.total_len(), path)?;
        if !crc_matches(&b, h) {
            return Err(Error::corrupt(path, pos, "batch CRC mismatch"));
        }
        Ok(())
    }

    /// The batch at `pos`, fully validated when `verify` (CRC and framing).
    fn batch_at(
        &mut self,
        pos: u64,
        path: &Path,
        verify: bool,
    ) -> Result<(BatchHeader, Option<RecordBatch>)> {
        let h = self.header_at(pos, path)?;
        let len = h.total_len();
        if len > MAX_BATCH_BYTES_LIMIT + BATCH_HEADER_LEN {
            return Err(Error::corrupt(path, pos, "batch too large"));
        }
        if !verify {
            return Ok((h, None));
        }
        let b = self.bytes(pos, len, path)?;
        if b.len() != len {
            return Err(Error::corrupt(
                path,
                pos,
                "batch extends past the end of the file",
            ));
        }
        match RecordBatch::decode(b) {
            Ok(batch) => Ok((h, Some(batch))),
            Err((at, reason)) => Err(Error::corrupt(path, pos + at as u64, reason)),
        }
    }

    /// Whether `[pos, end)` is all zeros (a preallocated, never-written tail).
    fn is_zero(&mut self, mut pos: u64, end: u64) -> Result<bool> {
        let Source::File(f) = &self.source else {
            return Ok(false);
        };
        let mut buf = vec![0u8; 1 << 20];
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            let got = f
                .read_at(&mut buf[..n], pos)
                .map_err(|e| Error::io(PathBuf::new(), e))?;
            if got == 0 {
                break;
            }
            if buf[..got].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            pos += got as u64;
        }
        Ok(true)
    }
}
