//! Constructors: every one hands back a ready segment (files open, size and end offset known,
//! indexes loaded or mappable on first use).

#[cfg(doc)]
use crate::error::Error;
use crate::error::{IoContext, Result};
use crate::format::{segment_file_name, SegmentFileKind, BATCH_HEADER_LEN};
use crate::fs::{File, FileSystem, OpenMode};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use super::cache::{LazyFile, MapCell};

use super::window::WindowReader;
use crate::config::LogConfig;

use super::{suffixed, Indexes, OffsetIndex, Segment, SegmentConfig, TimeIndex, WriteState};

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
        config: &LogConfig,
    ) -> Result<Segment> {
        Segment::create_with_suffix(fs, dir, base_offset, config.standalone_segment_config(), "")
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
        let allocated = super::write::next_allocation(0, 0, config.preallocate_bytes);
        if allocated > 0 {
            file.set_len(allocated).at(&log_path)?;
        }
        let mut seg = Segment::new(
            fs.clone(),
            dir,
            base_offset,
            (log_path, Some(file)),
            config,
            false,
        );
        seg.writer.get_mut().allocated = allocated;
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

    /// A segment over the `.log` at `log`'s path, open already or (`None`) opened by the first
    /// read.
    pub(super) fn new(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        log: (PathBuf, Option<Arc<dyn File>>),
        config: SegmentConfig,
        sealed: bool,
    ) -> Segment {
        let (log_path, file) = log;
        let lazy = LazyFile::new(fs.clone(), &log_path, file, sealed);
        Segment {
            fs,
            base_offset,
            log_path,
            index_path: segment_file_name(dir, base_offset, SegmentFileKind::OffsetIndex),
            time_index_path: segment_file_name(dir, base_offset, SegmentFileKind::TimeIndex),
            file: lazy.clone(),
            config,
            size: AtomicU64::new(0),
            pending_len: AtomicU64::new(0),
            pending_from: AtomicU64::new(u64::MAX),
            write_failed: AtomicBool::new(false),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            max_timestamp_known: AtomicBool::new(false),
            first_append_ms: AtomicI64::new(i64::MIN),
            last_append_ms: AtomicI64::new(i64::MIN),
            sealed: lazy.sealed.clone(),
            deleted: lazy.deleted.clone(),
            map: MapCell(lazy.clone()),
            map_limit: AtomicU64::new(0),
            indexes: lazy.indexes.clone(),
            lazy,
            writer: Mutex::new(WriteState {
                max_timestamp_offset: base_offset,
                ..WriteState::default()
            }),
            verified: Default::default(),
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
        config: &LogConfig,
    ) -> Result<Segment> {
        let config = config.standalone_segment_config();
        Segment::open_sealed_with(fs, dir, base_offset, next_offset, config)
    }

    /// [`open_sealed`](Self::open_sealed) with a partition's segment config.
    pub(crate) fn open_sealed_with(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        config: SegmentConfig,
    ) -> Result<Segment> {
        let log_path = segment_file_name(dir, base_offset, SegmentFileKind::Log);
        // The length only (a `stat`): the file is opened by the first read, through the cache.
        let len = fs.file_len(&log_path).at(&log_path)?;
        let seg = Segment::new(fs, dir, base_offset, (log_path, None), config, true);
        seg.size.store(len, Ordering::Release);
        seg.lazy.expect_len(len);
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
        config: &LogConfig,
    ) -> Result<Segment> {
        Segment::open_active_with(fs, dir, base_offset, config.standalone_segment_config())
    }

    /// [`open_active`](Self::open_active) with a partition's segment config.
    pub(crate) fn open_active_with(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: SegmentConfig,
    ) -> Result<Segment> {
        let log_path = segment_file_name(dir, base_offset, SegmentFileKind::Log);
        let file = fs.open(&log_path, OpenMode::ReadWrite).at(&log_path)?;
        let len = file.len().at(&log_path)?;
        let seg = Segment::new(
            fs.clone(),
            dir,
            base_offset,
            (log_path, Some(file)),
            config,
            false,
        );
        seg.size.store(len, Ordering::Release);
        seg.check_format()?;
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
        let allocated = super::write::next_allocation(len, len + 1, config.preallocate_bytes);
        if allocated > len {
            seg.file.set_len(allocated).at(&seg.log_path)?;
            seg.writer.lock().allocated = allocated;
        }
        Ok(seg)
    }

    /// Refuse a `.log` that starts with a batch of another format than Kafka's RecordBatch v2
    /// ([`Error::UnsupportedFormat`]), before anything misreads it.
    pub(super) fn check_format(&self) -> Result<()> {
        let len = self.file.len().at(&self.log_path)?;
        let mut head = vec![0u8; len.min(BATCH_HEADER_LEN as u64) as usize];
        self.file.read_exact_at(&mut head, 0).at(&self.log_path)?;
        match crate::format::describe_foreign_format(&head) {
            Some(found) => Err(crate::Error::UnsupportedFormat {
                path: self.log_path.clone(),
                found,
            }),
            None => Ok(()),
        }
    }

    /// For a segment opened from disk: time-based rolling counts from the first batch's maximum
    /// timestamp (as Kafka's `segment.ms` does), since its first append happened in an earlier run.
    pub(super) fn init_roll_time(&self) -> Result<()> {
        if self.size() == 0 {
            return Ok(());
        }
        let mut reader = WindowReader::new(self.source(), BATCH_HEADER_LEN, self.size());
        let h = reader.header_at(0, &self.log_path)?;
        self.first_append_ms
            .store(h.max_timestamp, Ordering::Release);
        Ok(())
    }
}
