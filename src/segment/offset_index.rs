//! The sparse offset index: relative offset (`u32`) → byte position in the `.log` (`u32`).

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::format::{OffsetIndexEntry, OFFSET_INDEX_ENTRY_LEN};

use super::index::{sealed, Index, IndexEntry};

/// One offset index entry, Kafka's: the batch starting at `position` in the `.log` ends at
/// `offset` (its last offset), so every offset above it lies at or after `position`. (A lookup
/// with nothing at or below the offset answers the segment's base offset and position 0.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset.
    pub offset: u64,
    /// Byte position of the batch in the segment's `.log`.
    pub position: u32,
}

impl IndexEntry for OffsetPosition {}

impl sealed::Entry for OffsetPosition {
    type Stored = OffsetIndexEntry;
    const LEN: usize = OFFSET_INDEX_ENTRY_LEN;
    const LOAD_SLACK: usize = 0;

    fn decode(bytes: &[u8]) -> Option<OffsetIndexEntry> {
        Some(OffsetIndexEntry::decode(bytes.try_into().ok()?))
    }

    fn encode(stored: OffsetIndexEntry, out: &mut Vec<u8>) {
        out.extend_from_slice(&stored.encode());
    }

    fn from_stored(stored: OffsetIndexEntry, base_offset: u64) -> Option<Self> {
        Some(OffsetPosition {
            offset: base_offset.checked_add(u64::from(stored.relative_offset))?,
            position: stored.position,
        })
    }
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
pub type OffsetIndex = Index<OffsetPosition>;

impl Index<OffsetPosition> {
    /// The last entry, or `(base_offset, 0)` when empty.
    pub fn last_entry(&self) -> OffsetPosition {
        self.last().unwrap_or(self.start())
    }

    /// The entry with the largest offset `<= offset`, or `(base_offset, 0)` if there is none.
    pub fn lookup(&self, offset: u64) -> OffsetPosition {
        offset
            .checked_sub(self.base_offset())
            .and_then(|rel| self.floor(|e| u64::from(e.relative_offset) <= rel))
            .unwrap_or(self.start())
    }

    /// Append an entry. Offsets and positions must both grow strictly.
    ///
    /// # Errors
    /// [`Error::IndexAppend`] if the entry is out of order, below the base offset, too far above it
    /// for a `u32` relative offset, or the index is full.
    pub fn append(&mut self, offset: u64, position: u32) -> Result<()> {
        if self.is_full() {
            return Err(self.reject(format!("index is full ({} entries)", self.max_entries())));
        }
        let relative_offset = self.relative_offset(offset)?;
        if !self.is_empty() {
            let last = self.last_entry();
            if offset <= last.offset || position <= last.position {
                return Err(self.reject(format!(
                    "entry ({offset}, {position}) does not follow the last entry ({}, {})",
                    last.offset, last.position
                )));
            }
        }
        self.push(OffsetIndexEntry {
            relative_offset,
            position,
        });
        Ok(())
    }

    /// Remove every entry with offset `>= offset`.
    pub fn truncate_to(&mut self, offset: u64) {
        let keep = offset.checked_sub(self.base_offset()).map_or(0, |rel| {
            self.partition_point(|e| u64::from(e.relative_offset) < rel)
        });
        self.truncate_entries(keep);
    }

    /// Check that entries grow strictly and that positions lie within a log of `log_len` bytes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first bad entry.
    pub fn sanity_check(&self, log_len: u64) -> Result<()> {
        self.check_entries("index entry overflows the offset range", |prev, e| {
            if u64::from(e.position) >= log_len.max(1) {
                return Err("index entry points past the end of the log");
            }
            match prev {
                Some(p) if e.offset <= p.offset || e.position <= p.position => {
                    Err("index entries are not strictly increasing")
                }
                None if e.position != 0 && e.offset == self.base_offset() => {
                    Err("first index entry at the base offset must be at position 0")
                }
                _ => Ok(()),
            }
        })
    }

    /// The segment's start: where a lookup below every entry begins.
    fn start(&self) -> OffsetPosition {
        OffsetPosition {
            offset: self.base_offset(),
            position: 0,
        }
    }
}
