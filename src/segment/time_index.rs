//! The sparse time index: timestamp (`i64`) → relative offset (`u32`).

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{TimeIndexEntry, TIME_INDEX_ENTRY_LEN};
use crate::fs::FileSystem;

use super::index_file::IndexFile;

/// One time index entry: every record before `offset` in the segment has a timestamp below
/// `timestamp`, and the batch at `offset` is where the segment's maximum timestamp first reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Timestamp in ms since the Unix epoch.
    pub timestamp: i64,
    /// Absolute offset.
    pub offset: u64,
}

/// A sparse index from timestamps to offsets. An entry is added (at most once per
/// `index_interval_bytes` of log) when the segment's maximum timestamp has grown, so entries grow
/// strictly in both fields even when record timestamps arrive out of order.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use topiclog::{fs::SimFs, segment::TimeIndex};
/// let fs = Arc::new(SimFs::new(1));
/// let mut index = TimeIndex::create(fs, "p/00000000000000000000.timeindex".as_ref(), 0, 1200);
/// index.append(1_000, 0).unwrap();
/// index.append(2_000, 50).unwrap();
/// assert_eq!(index.lookup(1_500).offset, 0);
/// assert_eq!(index.lookup(2_000).offset, 50);
/// assert_eq!(index.lookup(10).offset, 0, "before the first entry: the segment start");
/// ```
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: u64,
    file: IndexFile,
}

impl TimeIndex {
    /// A new empty index. Nothing is written until [`flush`](Self::flush).
    pub fn create(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> TimeIndex {
        TimeIndex {
            base_offset,
            file: IndexFile::empty(fs, path, TIME_INDEX_ENTRY_LEN, max_index_bytes),
        }
    }

    /// Load an index file into memory for appending.
    ///
    /// # Errors
    /// [`Error::Io`] if the file exists but cannot be read.
    pub fn load(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> Result<TimeIndex> {
        Ok(TimeIndex {
            base_offset,
            file: IndexFile::load(fs, path, TIME_INDEX_ENTRY_LEN, max_index_bytes, 1)?,
        })
    }

    /// Map a sealed index file read-only.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or mapped.
    pub fn map(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> Result<TimeIndex> {
        Ok(TimeIndex {
            base_offset,
            file: IndexFile::map(fs, path, TIME_INDEX_ENTRY_LEN, max_index_bytes)?,
        })
    }

    /// The base offset of the segment.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.file.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The maximum number of entries.
    pub fn max_entries(&self) -> usize {
        self.file.max_entries()
    }

    /// Whether the index is full (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// Entry `i`.
    pub fn entry(&self, i: usize) -> Option<TimestampOffset> {
        let e = self.stored(i)?;
        Some(TimestampOffset {
            timestamp: e.timestamp,
            // Overflow only with a base offset near u64::MAX: treat as no entry (damage).
            offset: self.base_offset.checked_add(u64::from(e.relative_offset))?,
        })
    }

    fn stored(&self, i: usize) -> Option<TimeIndexEntry> {
        Some(TimeIndexEntry::decode(self.file.entry(i)?.try_into().ok()?))
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.len().checked_sub(1).and_then(|i| self.entry(i))
    }

    /// The entry with the largest timestamp `<= timestamp`; `(i64::MIN, base_offset)` if none.
    /// Every record before the returned offset has a timestamp below `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> TimestampOffset {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ts = self.stored(mid).map_or(i64::MIN, |e| e.timestamp);
            if ts <= timestamp {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
            .and_then(|i| self.entry(i))
            .unwrap_or(TimestampOffset {
                timestamp: i64::MIN,
                offset: self.base_offset,
            })
    }

    /// Append an entry. The timestamp must grow strictly and the offset must not shrink; an entry
    /// whose timestamp equals the last one is ignored (it adds nothing).
    ///
    /// # Errors
    /// [`Error::IndexAppend`] if out of order, not within `u32` of the base offset, or full.
    pub fn append(&mut self, timestamp: i64, offset: u64) -> Result<()> {
        let reject = |reason: String| Error::IndexAppend {
            path: self.file.path().to_owned(),
            reason,
        };
        if let Some(last) = self.last_entry() {
            if timestamp == last.timestamp && offset >= last.offset {
                return Ok(());
            }
            if timestamp < last.timestamp || offset < last.offset {
                return Err(reject(format!(
                    "entry ({timestamp}, {offset}) does not follow the last entry ({}, {})",
                    last.timestamp, last.offset
                )));
            }
        }
        if self.is_full() {
            return Err(reject("index is full".into()));
        }
        let rel = offset
            .checked_sub(self.base_offset)
            .and_then(|r| u32::try_from(r).ok())
            .ok_or_else(|| {
                reject(format!(
                    "offset {offset} not within u32 of base {}",
                    self.base_offset
                ))
            })?;
        let e = TimeIndexEntry {
            timestamp,
            relative_offset: rel,
        };
        self.file.push(&e.encode());
        Ok(())
    }

    /// Append the segment's final maximum-timestamp entry (written when it is sealed), even when
    /// the index is full: like Kafka's, a time index may hold one entry more than its maximum, so
    /// a sealed segment's maximum timestamp is always its last entry.
    ///
    /// # Errors
    /// [`Error::IndexAppend`] if out of order or not within `u32` of the base offset.
    pub fn append_final(&mut self, timestamp: i64, offset: u64) -> Result<()> {
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp && offset >= last.offset {
                return Ok(());
            }
        }
        let saved = self.file.max_entries();
        self.file.set_max_entries(saved + 1);
        let result = self.append(timestamp, offset);
        self.file.set_max_entries(saved);
        result
    }

    /// Remove every entry with offset `>= offset`.
    pub fn truncate_to(&mut self, offset: u64) {
        let mut keep = self.len();
        while keep > 0 && self.entry(keep - 1).is_some_and(|e| e.offset >= offset) {
            keep -= 1;
        }
        self.file.truncate_entries(keep);
    }

    /// Remove every entry.
    pub fn clear(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Check that entries grow (timestamps strictly, offsets weakly) and stay below `next_offset`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first bad entry.
    pub fn sanity_check(&self, next_offset: u64) -> Result<()> {
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..self.len() {
            let Some(e) = self.entry(i) else {
                return Err(Error::corrupt(
                    self.file.path(),
                    (i * TIME_INDEX_ENTRY_LEN) as u64,
                    "time index entry overflows the offset range",
                ));
            };
            let bad = |reason: &str| {
                Error::corrupt(self.file.path(), (i * TIME_INDEX_ENTRY_LEN) as u64, reason)
            };
            if e.offset >= next_offset.max(self.base_offset + 1) {
                return Err(bad("time index entry points past the end of the segment"));
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.offset < p.offset {
                    return Err(bad("time index entries are not increasing"));
                }
            }
            prev = Some(e);
        }
        Ok(())
    }

    /// Write entries not yet in the file; with `sync`, make it durable.
    ///
    /// # Errors
    /// [`Error::Io`] on a failed write or sync.
    pub fn flush(&mut self, sync: bool) -> Result<()> {
        self.file.flush(sync)
    }

    /// Delete the index file.
    ///
    /// # Errors
    /// [`Error::Io`] if removal fails for a reason other than absence.
    pub fn delete(&self) -> Result<()> {
        self.file.delete()
    }
}
