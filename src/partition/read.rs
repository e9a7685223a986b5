//! Reading: batches from an offset (across segments and compaction gaps), offsets by timestamp.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{RecordBatch, RecordRef, RecordRefs, StoredRecord};
use crate::segment::{Segment, TimestampOffset};

use super::{stats, Partition};

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
    /// Batches read at `requested`; `next_if_empty` is where to read next if there are none.
    pub(crate) fn from_parts(
        requested: u64,
        batches: Vec<RecordBatch>,
        next_if_empty: u64,
    ) -> Batches {
        Batches {
            requested,
            batches,
            next_if_empty,
        }
    }

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

    /// The records at or after the requested offset, in offset order, borrowed (see
    /// [`RecordRef`]): no allocation or reference counting per record. The batches were checked
    /// whole when read, so no item is an `Err` here; the records below the requested offset are
    /// stepped over by their length fields.
    pub fn iter(&self) -> BatchRecordRefs<'_> {
        BatchRecordRefs::new(&self.batches, self.requested)
    }

    /// The offset to read next: after the last batch; if there is none, the requested offset
    /// (it was the end), or the end offset if compaction removed every record in between.
    pub fn next_offset(&self) -> u64 {
        self.batches
            .last()
            .map_or(self.next_if_empty, |b| b.next_offset())
    }
}

/// The result of [`Partition::read_lazy`]: whole batches in offset order, each CRC-verified
/// (once per process, see [`Partition::read_lazy`]) but with their records checked only as
/// [`iter`](Self::iter) parses them, so a scan parses each record once.
///
/// It hands out no [`RecordBatch`] (whose owned [`records`](RecordBatch::records) could not
/// report damage): use [`iter`](Self::iter), or [`into_checked`](Self::into_checked) for a
/// [`Batches`].
///
/// # Examples
/// ```
/// use topiclog::{Partition, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path())?;
/// log.append_batch(&[Record::new("a"), Record::new("b"), Record::new("c")])?;
/// let batches = log.read_lazy(1, 1 << 20)?;
/// let mut values = Vec::new();
/// for r in batches.iter() {
///     values.push(r?.value().unwrap().to_vec());
/// }
/// assert_eq!(values, [b"b".to_vec(), b"c".to_vec()]);
/// assert_eq!(batches.next_offset(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct LazyBatches {
    inner: Batches,
}

impl LazyBatches {
    /// The records at or after the requested offset, in offset order, borrowed; each record is
    /// parsed once and checked as it is (see [`RecordBatch::iter`]). The records below the
    /// requested offset are stepped over by their length fields, not decoded. Damage is one
    /// `Err` item, after which the iterator ends.
    pub fn iter(&self) -> BatchRecordRefs<'_> {
        self.inner.iter()
    }

    /// Whether nothing was read (the offset is the log end).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.inner.batches.len()
    }

    /// Total bytes of the batches.
    pub fn size_bytes(&self) -> usize {
        self.inner.size_bytes()
    }

    /// The offset to read next, as [`Batches::next_offset`].
    pub fn next_offset(&self) -> u64 {
        self.inner.next_offset()
    }

    /// Check every record's framing and hand back the [`Batches`] that
    /// [`Partition::read`] would have returned.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a batch's records are damaged.
    pub fn into_checked(self) -> Result<Batches> {
        for b in &self.inner.batches {
            for r in b.iter() {
                r?;
            }
        }
        Ok(self.inner)
    }
}

/// Iterator over the records of [`Batches`] or [`LazyBatches`] from the requested offset, as
/// [`RecordRef`]s (see [`RecordBatch::iter`]).
#[derive(Clone, Debug)]
pub struct BatchRecordRefs<'a> {
    rest: std::slice::Iter<'a, RecordBatch>,
    current: Option<RecordRefs<'a>>,
}

impl<'a> BatchRecordRefs<'a> {
    fn new(batches: &'a [RecordBatch], from: u64) -> Self {
        let mut rest = batches.iter();
        // Only the first batch can hold records below the requested offset: each later one
        // starts past the batch before it.
        let current = rest.next().map(|b| b.iter_from(from));
        BatchRecordRefs { rest, current }
    }
}

impl<'a> Iterator for BatchRecordRefs<'a> {
    type Item = Result<RecordRef<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.current.as_mut()?.next() {
                return Some(r);
            }
            self.current = self.rest.next().map(RecordBatch::iter);
        }
    }
}

impl std::iter::FusedIterator for BatchRecordRefs<'_> {}

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
    /// Every batch's CRC is verified, at least once per process (a segment remembers the batches
    /// it verified: see [`read_lazy`](Self::read_lazy)), and every record's framing is checked
    /// before this returns; records are zero-copy slices. [`read_lazy`](Self::read_lazy) is
    /// faster: it checks records as they are iterated, each parsed once, and hands them out
    /// borrowed.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the start or past the end offset; [`Error::Corrupt`] if a
    /// batch fails verification.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Batches> {
        self.read_checked(offset, max_bytes, true)
    }

    /// [`read`](Self::read) for scans and point reads: the same batches, each CRC-verified, but
    /// with their records' framing checked as [`LazyBatches::iter`] parses them rather than up
    /// front, so every record is parsed once, and records below `offset` are stepped over
    /// unparsed. The fastest way to read.
    ///
    /// CRCs: every batch served is verified at least once per process. A segment remembers the
    /// batches whose CRC it verified (by position, length and stored CRC; forgotten when a
    /// truncation cuts the segment there; a compacted, truncated or reopened segment is a new
    /// segment with nothing remembered), and reads, this one and [`read`](Self::read), do not
    /// verify those again. Kafka's broker does not check CRCs on fetch at all.
    ///
    /// # Errors
    /// As [`read`](Self::read), except that damage inside a CRC-valid batch's records is reported
    /// by [`LazyBatches::iter`] instead.
    pub fn read_lazy(&self, offset: u64, max_bytes: usize) -> Result<LazyBatches> {
        self.read_checked(offset, max_bytes, false)
            .map(|inner| LazyBatches { inner })
    }

    /// [`read`](Self::read), the records' framing checked up front when `check_framing`.
    fn read_checked(&self, offset: u64, max_bytes: usize, check_framing: bool) -> Result<Batches> {
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
        if offset == end {
            return Ok(Batches {
                requested: offset,
                batches: Vec::new(),
                next_if_empty: offset,
            });
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
        self.read_snapshot(offset, max_bytes, end, &segments, check_framing)
    }

    /// [`read`](Self::read) from `segments`, a snapshot of the segment list taken after `end`
    /// was read (so it may hold batches past `end`, appended and even compacted since).
    fn read_snapshot(
        &self,
        offset: u64,
        max_bytes: usize,
        end: u64,
        segments: &Arc<Vec<Arc<Segment>>>,
        check_framing: bool,
    ) -> Result<Batches> {
        let inner = &*self.inner;
        let mut out = Batches {
            requested: offset,
            batches: Vec::new(),
            next_if_empty: offset,
        };
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
            let mut batches = Vec::new();
            seg.read_into(at, max_bytes, check_framing, &mut batches)?;
            let holds_any = !batches.is_empty();
            // The segment may hold batches that are written but not yet visible.
            batches.retain(|b| b.base_offset() < end);
            let Some(last) = batches.last() else {
                if holds_any {
                    // Its batches from `at` on all start at or after `end`: the records between
                    // were compacted away (after `end` was read, the snapshot can hold a segment
                    // cleaned since, whose first surviving batch lies past `end`). Nothing is
                    // visible from `offset` to the end.
                    break;
                }
                if i + 1 < segments.len() && seg_end <= inner.offset_gaps_below {
                    // A gap between segments that Kafka's compaction left, in the part of the
                    // log Kafka wrote: go on with the next segment.
                    at = seg_end;
                    i += 1;
                    continue;
                }
                if !Arc::ptr_eq(segments, &inner.segments.read()) {
                    // A truncation replaced the segments after this read began (a retention pass
                    // or compaction swap never removes offsets above the start): read again.
                    return self.read_checked(offset, max_bytes, check_framing);
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
            match batches.iter().position(|b| b.holds_records_from(offset)) {
                Some(first) => {
                    batches.drain(..first);
                    let c = &inner.counters;
                    stats::add(&c.batches_read, batches.len() as u64);
                    let records = batches.iter().map(|b| u64::from(b.record_count())).sum();
                    stats::add(&c.records_read, records);
                    let bytes = batches.iter().map(|b| b.as_bytes().len() as u64).sum();
                    stats::add(&c.bytes_read, bytes);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::config::{Deadline, Durability, LogConfig};
    use crate::env::Env;
    use crate::fs::SimFs;
    use crate::partition::{CompactionPolicy, Partition};
    use crate::{ManualClock, Record};

    /// Regression: a read whose end offset was read before an append and a compaction pass
    /// cleaned the head of a segment (so its snapshot's segment starts with a batch past that
    /// end) returned `Corrupt` ("the segment holds no batch at or after ..."), found by
    /// `compaction::crash::readers_keep_reading_correct_data_across_swaps` under load.
    #[test]
    fn a_stale_end_inside_a_compacted_away_head_reads_nothing_instead_of_corrupt() {
        let config = LogConfig {
            segment_bytes: 1024,
            segment_ms: Deadline::Never,
            durability: Durability::None,
            preallocate: false,
            ..LogConfig::default()
        };
        let env = Env {
            fs: Arc::new(SimFs::new(1)),
            clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        };
        let log = Partition::open_with_env("/p", config, env).unwrap();
        let record = |o: u64| Record::new(format!("value-{o}")).with_key(format!("k{}", o % 4));
        // Segment 0 ends, and a second segment fills with the same four keys: the head of the
        // second segment is superseded within it.
        let mut o = 0;
        while log.segment_count() < 2 {
            assert_eq!(log.append(record(o)).unwrap(), o);
            o += 1;
        }
        let second = log.segments()[1].base_offset();
        let stale_end = second + 2; // an end read when the second segment held two records
        while log.segment_count() < 3 {
            assert_eq!(log.append(record(o)).unwrap(), o);
            o += 1;
        }
        let policy = CompactionPolicy {
            min_cleanable_dirty_ratio: 0.0,
            ..CompactionPolicy::default()
        };
        log.compact(1_700_000_000_000, &policy).unwrap();
        let segments = log.inner.segments.read().clone();
        let cleaned = segments
            .iter()
            .find(|s| s.base_offset() <= second && second < s.next_offset())
            .unwrap();
        // (The compacted-away head is an empty batch now, which keeps the offsets contiguous.)
        let first = cleaned
            .read(second, 1 << 20)
            .unwrap()
            .iter()
            .flat_map(|b| b.records())
            .next()
            .unwrap()
            .offset();
        assert!(
            first >= stale_end,
            "the head of the segment was compacted away"
        );

        let got = log
            .read_snapshot(second, 1 << 20, stale_end, &segments, true)
            .unwrap();
        assert!(got.is_empty());
        assert_eq!(
            got.next_offset(),
            stale_end,
            "nothing visible up to the end"
        );
        // The current end still reads what survived.
        let now = log.read(second, 1 << 20).unwrap();
        assert_eq!(now.records().next().unwrap().offset(), first);
    }
}
