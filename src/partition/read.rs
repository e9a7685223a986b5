//! Reading: batches from an offset (across segments and compaction gaps), offsets by timestamp.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{RecordBatch, StoredRecord};
use crate::segment::TimestampOffset;

use super::Partition;

/// The result of a read: whole batches in offset order.
///
/// A read at an offset in the middle of a batch returns that whole batch;
/// [`records`](Self::records) skips the records below the requested offset.
#[derive(Clone, Debug, Default)]
pub struct Batches {
    requested: u64,
    batches: Vec<RecordBatch>,
    /// Where to read next when `batches` is empty: the requested offset, or the end offset when
    /// compaction left nothing between them.
    next_if_empty: u64,
}

impl Batches {
    /// The batches, as stored.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Whether nothing was read (the offset is the log end).
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Total bytes of the batches.
    pub fn size_bytes(&self) -> usize {
        self.batches.iter().map(|b| b.as_bytes().len()).sum()
    }

    /// The records at or after the requested offset, in offset order.
    pub fn records(&self) -> impl Iterator<Item = StoredRecord> + '_ {
        let from = self.requested;
        self.batches
            .iter()
            .flat_map(|b| b.records())
            .filter(move |r| r.offset() >= from)
    }

    /// The offset to read next: after the last batch; if there is none, the requested offset
    /// (it was the end), or the end offset if compaction removed every record in between.
    pub fn next_offset(&self) -> u64 {
        self.batches
            .last()
            .map_or(self.next_if_empty, |b| b.next_offset())
    }
}

impl IntoIterator for Batches {
    type Item = RecordBatch;
    type IntoIter = std::vec::IntoIter<RecordBatch>;
    fn into_iter(self) -> Self::IntoIter {
        self.batches.into_iter()
    }
}

impl Partition {
    /// Read whole batches starting with the one containing `offset`, up to about `max_bytes` (at
    /// least one batch is returned if any exists, however large). Reading at the end offset
    /// returns an empty result; use [`wait_for`](Self::wait_for) to block for more.
    ///
    /// Every batch's CRC is verified; records are zero-copy slices.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the start or past the end offset; [`Error::Corrupt`] if a
    /// batch fails verification.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Batches> {
        let inner = &*self.inner;
        let end = inner.visible_end.load(Ordering::SeqCst);
        let start = inner.start_offset.load(Ordering::Acquire);
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        let mut out = Batches {
            requested: offset,
            batches: Vec::new(),
            next_if_empty: offset,
        };
        if offset == end {
            return Ok(out);
        }
        let segments = inner.segments.read().clone();
        // Retention moves the start offset before it drops segments from the list: if this
        // snapshot already lacks them, the start offset says so.
        let start = inner.start_offset.load(Ordering::Acquire);
        if offset < start {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        let mut i = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        // Where to look next: moves past batches that hold nothing at or after `offset`
        // (compaction keeps a batch's offset range, so the batch holding `offset` may hold only
        // records below it, or none), so that the first surviving record >= `offset` is found
        // whenever one exists, in this segment or a later one.
        let mut at = offset;
        while let Some(seg) = segments.get(i) {
            // Every segment ends exactly where the next begins, the last at the end offset.
            let seg_end = segments
                .get(i + 1)
                .map_or(end, |n| n.base_offset().min(end));
            if at >= seg_end {
                i += 1;
                continue;
            }
            let mut batches = seg.read(at, max_bytes)?;
            // The segment may hold batches that are written but not yet visible.
            batches.retain(|b| b.base_offset() < end);
            let Some(last) = batches.last() else {
                if !Arc::ptr_eq(&segments, &inner.segments.read()) {
                    // A truncation replaced the segments after this read began (a retention pass
                    // or compaction swap never removes offsets above the start): read again.
                    return self.read(offset, max_bytes);
                }
                return Err(Error::corrupt(
                    seg.log_path(),
                    seg.size(),
                    format!(
                        "the segment holds no batch at or after offset {at}, but it must reach \
                         offset {seg_end} (where the next segment or the log ends): data is missing"
                    ),
                ));
            };
            let next = last.next_offset();
            match batches.iter().position(|b| holds_records_from(b, offset)) {
                Some(first) => {
                    batches.drain(..first);
                    out.batches = batches;
                    return Ok(out);
                }
                None => at = next,
            }
        }
        // Nothing from `offset` to the end: compaction removed every record in between.
        out.next_if_empty = end;
        Ok(out)
    }

    /// The first record whose timestamp is `>= timestamp`, as `(timestamp, offset)`; `None` if no
    /// record has such a timestamp (including when the log is empty).
    ///
    /// With out-of-order timestamps this is the first such record *in offset order*, as in Kafka's
    /// `ListOffsets`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Io`] if the data cannot be read.
    pub fn offset_for_time(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let start = self.start_offset();
        let end = self.end_offset();
        let segments = self.inner.segments.read().clone();
        for seg in segments.iter() {
            if seg.next_offset() <= start {
                continue;
            }
            if let Some(found) = seg.find_offset_by_timestamp(timestamp, start)? {
                return Ok((found.offset < end).then_some(found));
            }
        }
        Ok(None)
    }
}

/// Whether `batch` holds a record at or after `offset`.
fn holds_records_from(batch: &RecordBatch, offset: u64) -> bool {
    batch.record_count() > 0
        && (batch.base_offset() >= offset || batch.records().any(|r| r.offset() >= offset))
}
