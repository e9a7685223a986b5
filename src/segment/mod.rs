//! Segments: one `.log` of record batches plus its sparse `.index` and `.timeindex`.
//!
//! These are the building blocks of a [`Partition`](crate::Partition), public for people building
//! their own log: [`Segment`], its [`OffsetIndex`] and [`TimeIndex`] (two kinds of one [`Index`]),
//! the [`RecordBatch`] format they store and the segment file names.
//!
//! A segment is *active* (the partition appends to it; its indexes live in memory; its file may be
//! preallocated past the data) or *sealed* (immutable; file trimmed to its data; read through a
//! read-only map, indexes mapped lazily).
//!
//! A segment runs with the [`LogConfig`](crate::LogConfig) of its log, of which it uses the index
//! interval and size, preallocation (to `segment_bytes`), the largest batch and the recovery mode;
//! its file system is passed beside it, as everywhere.
//!
//! Concurrency: one writer at a time (the partition's append lock; the segment also serializes its
//! own writers), any number of readers. Readers see only bytes below the published `size`, which
//! is advanced after a batch is fully written, so they never observe a partial batch.
//!
//! # Layout of this module
//! - `open`: the constructors, each of which hands back a ready segment;
//! - `recover`: the constructor for after an unclean stop, and its rescan (torn tail or damage);
//! - `indexes`: loading the indexes, checking them against the log, rebuilding them;
//! - `read`: reads by offset and by timestamp;
//! - `write`: appending, sealing, syncing, truncating, deleting;
//! - `window`: the buffered reader every scan goes through;
//! - `index`: the index files themselves, one [`Index`] type over both entry kinds, kept in memory
//!   or mapped;
//! - `offset_index`, `time_index`: what tells the two kinds apart (lookups, append rules, checks);
//! - `view`: the read-only [`SegmentView`] a partition hands out.

mod cache;
mod index;
mod indexes;
mod offset_index;
mod open;
mod read;
mod recover;
mod time_index;
mod view;
mod window;
mod write;

#[doc(hidden)]
pub use cache::resident_segments;
pub use cache::{max_open_segments, set_max_open_segments, DEFAULT_MAX_OPEN_SEGMENTS};
pub use index::{Index, IndexEntry};
pub use offset_index::{OffsetIndex, OffsetPosition};
pub use time_index::{TimeIndex, TimestampOffset};
pub use view::SegmentView;

pub use crate::format::{
    parse_segment_file_name, segment_file_name, BatchHeader, RecordBatch, RecordRefs, Records,
    SegmentFileKind,
};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

#[cfg(doc)]
use crate::error::Error;
use crate::error::{IoContext, Result};
use crate::fs::{File, FileSystem};

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

/// What a segment needs from its [`LogConfig`](crate::LogConfig), derived once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentConfig {
    /// Bytes of log between offset index entries.
    pub index_interval_bytes: u32,
    /// Maximum size of each index file; the segment must roll when one is full.
    pub max_index_bytes: u32,
    /// Length to preallocate the active `.log` to (0 = no preallocation).
    pub preallocate_bytes: u64,
    /// Largest batch the partition accepts; bounds how far recovery looks for valid data past a
    /// damaged batch.
    pub max_batch_bytes: u32,
    /// Appends are gathered in memory up to this many bytes and written with one `pwrite`
    /// (0: each batch is written as it is appended).
    pub write_buffer_bytes: u32,
    /// What recovery does with damage that is not a torn tail.
    pub recovery: Recovery,
    /// Batches based below this offset may follow a gap in the offsets (a log compacted by Kafka
    /// drops whole batches); from it on, every batch starts exactly where the one before it ends,
    /// as topiclog writes them. 0 for a log topiclog wrote, and for a log Kafka wrote on a topic
    /// that does not compact (Kafka leaves gaps only by compaction).
    pub offset_gaps_below: u64,
    /// Batches based below this offset may carry any partition leader epoch (a log written by
    /// Kafka); from it on, epoch 0. 0 for a log topiclog wrote.
    pub kafka_epochs_below: u64,
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
    /// Bytes read and verified (the whole file for [`Segment::recover`]; after a crash, a
    /// partition rescans its segment holding the recovery point only from its last durable
    /// index entry).
    pub scanned_bytes: u64,
}

/// Indexes plus the bookkeeping that decides when to add entries.
#[derive(Debug)]
struct Indexes {
    offset: OffsetIndex,
    time: TimeIndex,
}

impl Indexes {
    /// Whether both are read-only maps of their files (so the cache may release them and map
    /// them again later).
    fn is_mapped(&self) -> bool {
        self.offset.is_mapped() && self.time.is_mapped()
    }
}

#[derive(Debug, Default)]
struct WriteState {
    /// Bytes appended since the last offset index entry.
    bytes_since_index: u64,
    /// Last offset of the batch in which the maximum timestamp was first reached: what the time
    /// index names (Kafka's rule).
    max_timestamp_offset: u64,
    /// Whole batches appended but not yet written to the file (write coalescing): they start at
    /// the published `size`. Written out when they reach `write_buffer_bytes`, and before
    /// anything reads, syncs, seals, trims or cuts the file.
    pending: Vec<u8>,
    /// Length the file has been preallocated to (0 when it is not preallocated).
    allocated: u64,
    /// The file holds zeros really written (not a hole) up to here, past the data: see
    /// `Segment::zero_ahead`. 0 when none were.
    zeroed: u64,
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
    /// The `.log` (a [`cache::LazyFile`]: opened on demand, released by the cache once sealed).
    file: Arc<dyn File>,
    /// The same handle, for what only the cache offers (maps of a sealed segment, residency).
    lazy: Arc<cache::LazyFile>,
    config: SegmentConfig,
    /// Bytes of whole, valid batches written to the file; readers never look past it.
    size: AtomicU64,
    /// Bytes of batches appended but still in the write buffer (`WriteState::pending`), after
    /// `size`.
    pending_len: AtomicU64,
    /// Base offset of the first batch in the write buffer, `u64::MAX` when it is empty: a read at
    /// or past it writes the buffer out first.
    pending_from: AtomicU64,
    /// A write-out of the buffer failed: what it held is lost, and nothing more is appended (the
    /// partition is poisoned and recovers from disk).
    write_failed: AtomicBool,
    /// Offset after the last batch (for sealed segments opened from disk: the next segment's base).
    next_offset: AtomicU64,
    /// Largest record timestamp, `i64::MIN` when empty or not yet loaded.
    max_timestamp: AtomicI64,
    max_timestamp_known: AtomicBool,
    /// Wall-clock time (ms) of the first append in this process, `i64::MIN` if none yet.
    first_append_ms: AtomicI64,
    /// Wall-clock time (ms) of the last append in this process, `i64::MIN` if none yet.
    last_append_ms: AtomicI64,
    /// Shared with `lazy`, which releases nothing of an active segment.
    sealed: Arc<AtomicBool>,
    /// Its files were deleted: readers holding it may still read, but nothing is written back.
    /// Set (under the index lock) before any file is removed; shared with `lazy`, which then
    /// refuses to reopen the `.log` by path.
    deleted: Arc<AtomicBool>,
    /// The active segment's growing map; a sealed segment's read-only map (released by the
    /// cache, mapped again by the next read).
    map: cache::MapCell,
    /// How far the active segment's growing map may reach (`map_active`'s length; 0: not mapped).
    map_limit: AtomicU64,
    /// `None` for a sealed segment whose indexes have not been mapped yet (or were released by
    /// the cache). Shared with `lazy`.
    indexes: Arc<RwLock<Option<Indexes>>>,
    writer: Mutex<WriteState>,
    /// Batches whose CRC this process has verified, so reads need not verify them again.
    verified: read::VerifiedBatches,
}

impl Segment {
    /// The offset of the segment's first record slot; also its file name.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Bytes of valid batches in the file, what readers see. An active segment may hold more,
    /// appended but not yet written out of its write buffer (see
    /// [`appended_size`](Self::appended_size)).
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Bytes of every batch appended: [`size`](Self::size) plus what waits in the write buffer.
    pub fn appended_size(&self) -> u64 {
        self.size() + self.pending_len.load(Ordering::Acquire)
    }

    /// Whether the segment holds no batch.
    pub fn is_empty(&self) -> bool {
        self.appended_size() == 0
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

    /// Whether an index is full, so the segment must roll before the next append.
    pub fn indexes_full(&self) -> bool {
        self.indexes
            .read()
            .as_ref()
            .is_some_and(|i| i.offset.is_full() || i.time.is_full())
    }

    /// Whether reads go through a map (so the file must never be shrunk in place).
    pub fn is_mapped(&self) -> bool {
        self.map.get().is_some()
    }

    /// Before its files are deleted or replaced: keep the `.log` readable for whoever holds the
    /// segment (a map, which needs no descriptor), however the cache treats it.
    ///
    /// # Errors
    /// [`Error::Io`] if the `.log` can be neither mapped nor opened: then delete nothing, or
    /// readers holding the segment would lose it.
    pub(super) fn keep_for_readers(&self) -> Result<()> {
        self.lazy.keep_for_readers(self.size()).at(&self.log_path)
    }

    /// Whether the `.log` of this segment is open or mapped now (for tests of the cache).
    #[cfg(test)]
    pub(crate) fn is_resident(&self) -> bool {
        self.lazy.is_open() || self.lazy.map_held()
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
        // Kafka's rule: the time index names the last offset of the batch with the maximum.
        ws.max_timestamp_offset = h.last_offset();
    }
}
