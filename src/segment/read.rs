//! Reads: batches from an offset, the first record at a timestamp, and the checks that keep a
//! damaged header or index entry from making a read skip or repeat records.

use crate::error::{Error, Result};
use crate::format::{BatchHeader, BatchSpan, RecordBatch, MAX_SEGMENT_RELATIVE};

use super::window::WindowReader;
use super::{Segment, TimestampOffset};

impl Segment {
    /// Read whole batches starting with the one that contains `offset` (or the first batch after
    /// it, across a compaction gap), adding batches while the total stays within `max_bytes`. The
    /// first batch is returned even if it alone exceeds `max_bytes`, so a reader always progresses.
    /// Returns an empty vector if the segment has nothing at or after `offset`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a batch fails its checksum or framing; [`Error::Io`] on read failure.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<RecordBatch>> {
        if let Some(batches) = self.read_buffered(offset, max_bytes)? {
            return Ok(batches);
        }
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
        let mut unvouched: Option<(u64, BatchSpan)> = None;
        while pos < limit {
            // Only the fields that step over a batch; a served batch is parsed and checked whole.
            let h = reader.span_at(pos, &self.log_path)?;
            self.check_position(
                h.base_offset,
                h.last_offset(),
                h.partition_leader_epoch,
                expected,
                pos,
            )?;
            if h.base_offset != expected {
                // A gap, which only a log compacted by Kafka has (`check_follows` refuses it
                // elsewhere): the batch before it must really end where its header says (a
                // damaged length or offset delta would skip records silently), so check its CRC,
                // which covers the offset delta and, through the bytes it spans, the length.
                if let Some((at, before)) = unvouched {
                    reader.verify_span(at, &before, &self.log_path)?;
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
        // The file up to its size, then the write buffer; if the buffer was written out between
        // the two, what moved is searched again.
        for _ in 0..3 {
            let limit = self.size();
            if let Some(found) = self.find_in_file(timestamp, start_offset, limit)? {
                return Ok(Some(found));
            }
            if let Some(found) = self.find_buffered(timestamp, start_offset, limit)? {
                return Ok(found);
            }
        }
        self.write_out()?;
        self.find_in_file(timestamp, start_offset, self.size())
    }

    /// [`find_offset_by_timestamp`](Self::find_offset_by_timestamp) in the file's first `limit`
    /// bytes.
    fn find_in_file(
        &self,
        timestamp: i64,
        start_offset: u64,
        limit: u64,
    ) -> Result<Option<TimestampOffset>> {
        let entry = self.with_indexes(|i| i.time.lookup(timestamp))?;
        let mut reader = WindowReader::new(self.source(), 64 << 10, limit);
        // Starting at the entry's batch skips every record before it, so the entry must be real:
        // the batch ending at its offset reached exactly its timestamp (that is how entries are
        // made; earlier batches stayed below it). A damaged entry must never make the answer come
        // late: then scan from the start.
        let from = if entry.timestamp == i64::MIN || entry.offset <= start_offset {
            start_offset
        } else {
            match self.time_entry_batch(entry, limit, &mut reader)? {
                Some(base) => base.max(start_offset),
                None => start_offset,
            }
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
    /// batch ending exactly at the entry's offset starts there (Kafka's writer makes entries of a
    /// batch's last offset and position). A damaged entry must never make a read skip records, so
    /// on a mismatch the scan starts at the beginning of the segment instead.
    ///
    /// Returns the position and the base offset the batch there has (or the segment's base offset
    /// at position 0), for [`check_follows`](Self::check_follows).
    pub(super) fn start_position(
        &self,
        offset: u64,
        reader: &mut WindowReader<'_>,
    ) -> Result<(u64, u64)> {
        let entry = self.with_indexes(|i| i.offset.lookup(offset))?;
        if entry.position == 0 {
            return Ok((0, self.base_offset));
        }
        match reader.header_at(u64::from(entry.position), &self.log_path) {
            Ok(h) if h.last_offset() == entry.offset && entry.offset <= offset => {
                Ok((u64::from(entry.position), h.base_offset))
            }
            _ => Ok((0, self.base_offset)),
        }
    }

    /// A batch at `pos` must start exactly at `expected` (the end of the batch before it, the
    /// batch at the index entry it was found from, or the segment's base) — or after it, in the
    /// part of a log compacted by Kafka, which leaves gaps — and stay within the segment's
    /// `int32` relative offsets: otherwise its header is damaged, and trusting it would skip,
    /// repeat or misplace records. (Kafka's CRC does not cover the base offset: this continuity is
    /// what checks it.)
    pub(super) fn check_follows(&self, h: &BatchHeader, expected: u64, pos: u64) -> Result<()> {
        self.check_position(
            h.base_offset,
            h.last_offset(),
            h.partition_leader_epoch,
            expected,
            pos,
        )
    }

    /// [`check_follows`](Self::check_follows) on the fields it checks.
    pub(super) fn check_position(
        &self,
        base_offset: u64,
        last_offset: u64,
        epoch: i32,
        expected: u64,
        pos: u64,
    ) -> Result<()> {
        if !self.follows(base_offset, expected) {
            return Err(Error::corrupt(
                &self.log_path,
                pos,
                format!(
                    "batch claims base offset {base_offset} where offset {expected} must follow"
                ),
            ));
        }
        if !self.epoch_ok(base_offset, epoch) {
            return Err(Error::corrupt(
                &self.log_path,
                pos,
                format!("batch claims partition leader epoch {epoch}; this log's batches have 0"),
            ));
        }
        if last_offset - self.base_offset > MAX_SEGMENT_RELATIVE {
            return Err(Error::corrupt(
                &self.log_path,
                pos,
                format!(
                    "batch ends at offset {last_offset}, past the segment's range from {}",
                    self.base_offset
                ),
            ));
        }
        Ok(())
    }

    /// Whether a batch based at `base` may follow one that ends before `expected`: exactly at it,
    /// or after a gap in a part of the log that Kafka compacted.
    pub(super) fn follows(&self, base: u64, expected: u64) -> bool {
        base == expected || (base > expected && base < self.config.offset_gaps_below)
    }

    /// Whether `h`'s partition leader epoch is one this log could hold: topiclog writes 0; a part
    /// of the log written by Kafka (below `offset_gaps_below`) may hold any. Kafka's CRC does not
    /// cover the epoch either, so this is what checks it.
    pub(super) fn epoch_ok(&self, base_offset: u64, epoch: i32) -> bool {
        epoch == 0 || base_offset < self.config.offset_gaps_below
    }

    /// The base offset of the batch that ends exactly at `entry.offset` and has exactly
    /// `entry.timestamp` as its maximum timestamp; `None` if there is no such batch.
    pub(super) fn time_entry_batch(
        &self,
        entry: TimestampOffset,
        limit: u64,
        reader: &mut WindowReader<'_>,
    ) -> Result<Option<u64>> {
        let (mut pos, _) = self.start_position(entry.offset, reader)?;
        while pos < limit {
            let Ok(h) = reader.verified_header_at(pos, &self.log_path) else {
                return Ok(None);
            };
            if h.last_offset() >= entry.offset {
                let matches = h.last_offset() == entry.offset && h.max_timestamp == entry.timestamp;
                return Ok(matches.then_some(h.base_offset));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Byte position of the first batch whose last offset is `>= offset`, with that batch's base
    /// offset; `None` if every batch ends before `offset`.
    pub(super) fn position_of(&self, offset: u64) -> Result<Option<(u64, u64)>> {
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
}
