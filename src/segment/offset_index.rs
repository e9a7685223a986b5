//! The sparse offset index: relative offset (`u32`) → byte position in the `.log` (`u32`).

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{OffsetIndexEntry, OFFSET_INDEX_ENTRY_LEN};
use crate::fs::FileSystem;

use super::index_file::IndexFile;

/// One offset index entry: the batch starting at `position` in the `.log` holds offsets from
/// `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset.
    pub offset: u64,
    /// Byte position of the batch in the segment's `.log`.
    pub position: u32,
}

/// A sparse index from offsets to positions in a segment's `.log`, one entry per
/// `index_interval_bytes` of log. Lookups return the floor entry; callers scan batch headers from
/// there.
///
/// The active segment's index lives in memory and is appended to its file on flush; a sealed
/// segment's index is read through a read-only map.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use topiclog::{fs::SimFs, segment::OffsetIndex};
/// let fs = Arc::new(SimFs::new(1));
/// let mut index = OffsetIndex::create(fs, "p/00000000000000000100.index".as_ref(), 100, 1024);
/// index.append(100, 0).unwrap();
/// index.append(110, 4096).unwrap();
/// assert_eq!(index.lookup(105).position, 0);
/// assert_eq!(index.lookup(1000).offset, 110);
/// assert_eq!(index.lookup(7).offset, 100, "below the first entry: the segment start");
/// ```
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: u64,
    file: IndexFile,
}

impl OffsetIndex {
    /// A new empty index for the segment at `base_offset`, holding at most `max_index_bytes`
    /// of entries. Nothing is written until [`flush`](Self::flush).
    pub fn create(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> OffsetIndex {
        OffsetIndex {
            base_offset,
            file: IndexFile::empty(fs, path, OFFSET_INDEX_ENTRY_LEN, max_index_bytes),
        }
    }

    /// Load an index file into memory for appending. A trailing partial entry is dropped; run
    /// [`sanity_check`](Self::sanity_check) before trusting it.
    ///
    /// # Errors
    /// [`Error::Io`] if the file exists but cannot be read.
    pub fn load(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> Result<OffsetIndex> {
        Ok(OffsetIndex {
            base_offset,
            file: IndexFile::load(fs, path, OFFSET_INDEX_ENTRY_LEN, max_index_bytes, 0)?,
        })
    }

    /// Map a sealed index file read-only. A missing file maps as an empty index.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or mapped.
    pub fn map(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> Result<OffsetIndex> {
        Ok(OffsetIndex {
            base_offset,
            file: IndexFile::map(fs, path, OFFSET_INDEX_ENTRY_LEN, max_index_bytes)?,
        })
    }

    /// The base offset of the segment this index belongs to.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.file.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the index holds its maximum number of entries (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// The maximum number of entries.
    pub fn max_entries(&self) -> usize {
        self.file.max_entries()
    }

    /// Entry `i`, if it exists.
    pub fn entry(&self, i: usize) -> Option<OffsetPosition> {
        let e = self.stored(i)?;
        Some(OffsetPosition {
            // Overflow only with a base offset near u64::MAX: treat as no entry (damage).
            offset: self.base_offset.checked_add(u64::from(e.relative_offset))?,
            position: e.position,
        })
    }

    fn stored(&self, i: usize) -> Option<OffsetIndexEntry> {
        Some(OffsetIndexEntry::decode(
            self.file.entry(i)?.try_into().ok()?,
        ))
    }

    /// The last entry, or `(base_offset, 0)` when empty.
    pub fn last_entry(&self) -> OffsetPosition {
        self.len()
            .checked_sub(1)
            .and_then(|i| self.entry(i))
            .unwrap_or(OffsetPosition {
                offset: self.base_offset,
                position: 0,
            })
    }

    /// The entry with the largest offset `<= offset`, or `(base_offset, 0)` if there is none.
    pub fn lookup(&self, offset: u64) -> OffsetPosition {
        let start = OffsetPosition {
            offset: self.base_offset,
            position: 0,
        };
        match self.floor_slot(offset) {
            Some(i) => self.entry(i).unwrap_or(start),
            None => start,
        }
    }

    /// Index of the last entry with offset `<= offset`.
    fn floor_slot(&self, offset: u64) -> Option<usize> {
        if offset < self.base_offset {
            return None;
        }
        let rel = offset - self.base_offset;
        // Entries are sorted by offset: count those <= rel.
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.stored(mid).map_or(0, |e| e.relative_offset);
            if u64::from(e) <= rel {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Append an entry. Offsets and positions must both grow strictly.
    ///
    /// # Errors
    /// [`Error::IndexAppend`] if the entry is out of order, below the base offset, too far above it
    /// for a `u32` relative offset, or the index is full.
    pub fn append(&mut self, offset: u64, position: u32) -> Result<()> {
        let reject = |reason: String| Error::IndexAppend {
            path: self.file.path().to_owned(),
            reason,
        };
        if self.is_full() {
            return Err(reject(format!(
                "index is full ({} entries)",
                self.max_entries()
            )));
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
        if !self.is_empty() {
            let last = self.last_entry();
            if offset <= last.offset || position <= last.position {
                return Err(reject(format!(
                    "entry ({offset}, {position}) does not follow the last entry ({}, {})",
                    last.offset, last.position
                )));
            }
        }
        let e = OffsetIndexEntry {
            relative_offset: rel,
            position,
        };
        self.file.push(&e.encode());
        Ok(())
    }

    /// Remove every entry with offset `>= offset`.
    pub fn truncate_to(&mut self, offset: u64) {
        let keep = match offset.checked_sub(1) {
            Some(below) if offset > self.base_offset => self.floor_slot(below).map_or(0, |i| i + 1),
            _ => 0,
        };
        self.file.truncate_entries(keep);
    }

    /// Remove every entry.
    pub fn clear(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Check that entries grow strictly and that positions lie within a log of `log_len` bytes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first bad entry.
    pub fn sanity_check(&self, log_len: u64) -> Result<()> {
        let mut prev: Option<OffsetPosition> = None;
        for i in 0..self.len() {
            let Some(e) = self.entry(i) else {
                return Err(Error::corrupt(
                    self.file.path(),
                    (i * OFFSET_INDEX_ENTRY_LEN) as u64,
                    "index entry overflows the offset range",
                ));
            };
            let bad = |reason: &str| {
                Error::corrupt(
                    self.file.path(),
                    (i * OFFSET_INDEX_ENTRY_LEN) as u64,
                    reason,
                )
            };
            if u64::from(e.position) >= log_len.max(1) {
                return Err(bad("index entry points past the end of the log"));
            }
            if let Some(p) = prev {
                if e.offset <= p.offset || e.position <= p.position {
                    return Err(bad("index entries are not strictly increasing"));
                }
            } else if e.position != 0 && e.offset == self.base_offset {
                return Err(bad(
                    "first index entry at the base offset must be at position 0",
                ));
            }
            prev = Some(e);
        }
        Ok(())
    }

    /// Write entries not yet in the file; with `sync`, make the file durable.
    ///
    /// # Errors
    /// [`Error::Io`] on a failed write or sync.
    pub fn flush(&mut self, sync: bool) -> Result<()> {
        self.file.flush(sync)
    }

    /// Delete the index file.
    ///
    /// # Errors
    /// [`Error::Io`] if removal fails for a reason other than the file being absent.
    pub fn delete(&self) -> Result<()> {
        self.file.delete()
    }
}
