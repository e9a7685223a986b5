//! A read-only view of a partition's segment, for inspection.

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::format::RecordBatch;

use super::{OffsetPosition, Segment, TimestampOffset};

/// A read-only view of one of a partition's segments, as [`Partition::segments`] hands them out.
///
/// It describes the segment (base and end offset, size, maximum timestamp, file paths) and can
/// read it, but cannot change it: appending, truncating, recovering, sealing or deleting a live
/// segment is the partition's job alone. A view keeps the segment's open file (and map) alive,
/// so it stays readable after retention or compaction deletes the files.
///
/// [`Partition::segments`]: crate::Partition::segments
///
/// # Examples
/// ```
/// use topiclog::{Partition, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path())?;
/// log.append(Record::new("a"))?;
/// let segments = log.segments();
/// assert_eq!(segments.len(), 1);
/// assert_eq!((segments[0].base_offset(), segments[0].end_offset()), (0, 1));
/// assert!(segments[0].log_path().ends_with("00000000000000000000.log"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A view has no mutators: deleting the live active segment through it (which once lost an
/// acknowledged record after the next reopen) does not compile.
/// ```compile_fail
/// # use topiclog::Partition;
/// # let dir = tempfile::tempdir().unwrap();
/// let log = Partition::open(dir.path()).unwrap();
/// log.segments().last().unwrap().delete().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct SegmentView {
    segment: Arc<Segment>,
}

impl SegmentView {
    pub(crate) fn new(segment: Arc<Segment>) -> SegmentView {
        SegmentView { segment }
    }

    /// The offset of the segment's first record slot (its file name).
    pub fn base_offset(&self) -> u64 {
        self.segment.base_offset()
    }

    /// The offset after the segment's last batch. For a sealed segment opened from disk and not
    /// read yet, the next segment's base offset (where it ends, by the log's invariant).
    pub fn end_offset(&self) -> u64 {
        self.segment.next_offset()
    }

    /// Bytes of whole batches in the `.log`.
    pub fn size(&self) -> u64 {
        self.segment.size()
    }

    /// Whether the segment holds no batch.
    pub fn is_empty(&self) -> bool {
        self.segment.is_empty()
    }

    /// Whether the segment is sealed (no longer appended to).
    pub fn is_sealed(&self) -> bool {
        self.segment.is_sealed()
    }

    /// The largest record timestamp, `None` if the segment holds no record.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if a sealed segment's time index cannot be loaded.
    pub fn max_timestamp(&self) -> Result<Option<i64>> {
        self.segment.max_timestamp()
    }

    /// Wall-clock time (ms) the segment last received data (see
    /// [`Segment::last_modified_ms`]); retention ages segments by it.
    pub fn last_modified_ms(&self) -> Option<i64> {
        self.segment.last_modified_ms()
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        self.segment.log_path()
    }

    /// Path of the `.index` file.
    pub fn index_path(&self) -> &Path {
        &self.segment.index_path
    }

    /// Path of the `.timeindex` file.
    pub fn time_index_path(&self) -> &Path {
        &self.segment.time_index_path
    }

    /// Read whole batches from this segment alone, as [`Segment::read`] does (no visibility
    /// rule: under [`Durability::Always`](crate::Durability::Always) this may include batches
    /// still waiting for their sync; use [`Partition::read`](crate::Partition::read) for that).
    ///
    /// # Errors
    /// As [`Segment::read`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<RecordBatch>> {
        self.segment.read(offset, max_bytes)
    }

    /// The segment itself (the cache's unit tests).
    #[cfg(test)]
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// The index entries, for inspection in tests and tools.
    #[doc(hidden)]
    pub fn index_entries(&self) -> Result<(Vec<OffsetPosition>, Vec<TimestampOffset>)> {
        self.segment.index_entries()
    }
}
