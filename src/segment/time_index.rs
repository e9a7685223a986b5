//! The sparse time index: timestamp (`i64`) → relative offset (`u32`).

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::format::{TimeIndexEntry, TIME_INDEX_ENTRY_LEN};

use super::index::{sealed, Index, IndexEntry};

/// One time index entry: `timestamp` is the segment's maximum timestamp as first reached by the
/// batch whose **last** offset is `offset` (Kafka's rule: an entry names the last offset of that
/// batch, not its base), so every record in the batches before that one has a smaller timestamp.
/// Also the answer of a timestamp lookup, a record's timestamp and offset
/// ([`Segment::find_offset_by_timestamp`](crate::segment::Segment::find_offset_by_timestamp)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Timestamp in ms since the Unix epoch.
    pub timestamp: i64,
    /// Absolute offset.
    pub offset: u64,
}

impl IndexEntry for TimestampOffset {}

impl sealed::Entry for TimestampOffset {
    type Stored = TimeIndexEntry;
    const LEN: usize = TIME_INDEX_ENTRY_LEN;
    /// The final maximum-timestamp entry may go past the maximum (see `append_final`).
    const LOAD_SLACK: usize = 1;

    fn decode(bytes: &[u8]) -> Option<TimeIndexEntry> {
        Some(TimeIndexEntry::decode(bytes.try_into().ok()?))
    }

    fn encode(stored: TimeIndexEntry, out: &mut Vec<u8>) {
        out.extend_from_slice(&stored.encode());
    }

    fn from_stored(stored: TimeIndexEntry, base_offset: u64) -> Option<Self> {
        Some(TimestampOffset {
            timestamp: stored.timestamp,
            offset: base_offset.checked_add(u64::from(stored.relative_offset))?,
        })
    }
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
pub type TimeIndex = Index<TimestampOffset>;

impl Index<TimestampOffset> {
    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.last()
    }

    /// The entry with the largest timestamp `<= timestamp`; `(i64::MIN, base_offset)` if none.
    /// Every record in the batches before the one that ends at the returned offset has a
    /// timestamp below `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> TimestampOffset {
        self.floor(|e| e.timestamp <= timestamp)
            .unwrap_or(TimestampOffset {
                timestamp: i64::MIN,
                offset: self.base_offset(),
            })
    }

    /// Append an entry. The timestamp must grow strictly and the offset must not shrink; an entry
    /// whose timestamp equals the last one is ignored (it adds nothing).
    ///
    /// # Errors
    /// [`Error::IndexAppend`] if out of order, not within `u32` of the base offset, or full.
    pub fn append(&mut self, timestamp: i64, offset: u64) -> Result<()> {
        if let Some(last) = self.last_entry() {
            if timestamp == last.timestamp && offset >= last.offset {
                return Ok(());
            }
            if timestamp < last.timestamp || offset < last.offset {
                return Err(self.reject(format!(
                    "entry ({timestamp}, {offset}) does not follow the last entry ({}, {})",
                    last.timestamp, last.offset
                )));
            }
        }
        if self.is_full() {
            return Err(self.reject("index is full".into()));
        }
        let relative_offset = self.relative_offset(offset)?;
        self.push(TimeIndexEntry {
            timestamp,
            relative_offset,
        });
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
        let saved = self.max_entries();
        self.set_max_entries(saved + 1);
        let result = self.append(timestamp, offset);
        self.set_max_entries(saved);
        result
    }

    /// Remove every entry with offset `>= offset`.
    pub fn truncate_to(&mut self, offset: u64) {
        let mut keep = self.len();
        while keep > 0 && self.entry(keep - 1).is_some_and(|e| e.offset >= offset) {
            keep -= 1;
        }
        self.truncate_entries(keep);
    }

    /// Check that entries grow (timestamps strictly, offsets weakly) and stay below `next_offset`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first bad entry.
    pub fn sanity_check(&self, next_offset: u64) -> Result<()> {
        self.check_entries("time index entry overflows the offset range", |prev, e| {
            if e.offset >= next_offset.max(self.base_offset().saturating_add(1)) {
                return Err("time index entry points past the end of the segment");
            }
            match prev {
                Some(p) if e.timestamp <= p.timestamp || e.offset < p.offset => {
                    Err("time index entries are not increasing")
                }
                _ => Ok(()),
            }
        })
    }
}
