//! Reads: batches from an offset, the first record at a timestamp, and the checks that keep a
//! damaged header or index entry from making a read skip or repeat records.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::format::{BatchHeader, BatchSpan, RecordBatch, MAX_SEGMENT_RELATIVE};

use super::window::WindowReader;
use super::{OffsetPosition, Segment, TimestampOffset};

impl Segment {
    /// Read whole batches starting with the one that contains `offset` (or the first batch after
    /// it, across a compaction gap), adding batches while the total stays within `max_bytes`. The
    /// first batch is returned even if it alone exceeds `max_bytes`, so a reader always progresses.
    /// Returns an empty vector if the segment has nothing at or after `offset`.
    ///
    /// Each batch's CRC is verified the first time this `Segment` serves it and remembered (see
    /// `VerifiedBatches` in this module for the exact guarantee); its records' framing is checked
    /// on every read.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a batch fails its checksum or framing; [`Error::Io`] on read failure.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.read_into(offset, max_bytes, true, &mut out)?;
        Ok(out)
    }

    /// [`read`](Self::read) into `out`; with `check_framing` false the batches' records are not
    /// checked here (their CRC is), and must be read through [`RecordBatch::iter`], which
    /// checks each record as it parses it.
    pub(crate) fn read_into(
        &self,
        offset: u64,
        max_bytes: usize,
        check_framing: bool,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        // Batches still in the write buffer are copied out of it (checked whole).
        if let Some(batches) = self.read_buffered(offset, max_bytes)? {
            out.extend(batches);
            return Ok(());
        }
        // Before the size is loaded: see `VerifiedBatches`.
        let ticket = self.verified.ticket(|| self.size());
        let limit = self.size();
        if limit == 0 || offset >= self.next_offset() {
            return Ok(());
        }
        let first = out.len();
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
                    if self.verified.lookup(at, &before).is_none() {
                        reader.verify_span(at, &before, &self.log_path)?;
                        self.verified.record(ticket, at, &before, None);
                    }
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
            if out.len() > first && total + len > max_bytes {
                break;
            }
            let known = self.verified.lookup(pos, &h);
            let vouched = known.is_some();
            let mut batch = reader.served_batch(pos, &h, vouched, check_framing, &self.log_path)?;
            // A read that starts inside the batch: where every 4th record starts lets it jump
            // near its record instead of walking every length field before it (each a cache
            // miss in a batch not read lately). Found once per batch, while it is in cache (its
            // CRC was just computed), and remembered with its CRC.
            let wants_marks = h.base_offset < offset && batch.markable();
            match known {
                Some(Some(marks)) if wants_marks => batch.set_marks(marks),
                Some(_) if wants_marks => {
                    if let Some(m) = batch.compute_marks() {
                        self.verified.set_marks(ticket, pos, &h, m.clone());
                        batch.set_marks(m);
                    }
                }
                Some(_) => {}
                None => {
                    let marks = if wants_marks {
                        batch.compute_marks()
                    } else {
                        None
                    };
                    self.verified.record(ticket, pos, &h, marks.clone());
                    if let Some(m) = marks {
                        batch.set_marks(m);
                    }
                }
            }
            out.push(batch);
            total += len;
            pos += len as u64;
            if total >= max_bytes {
                break;
            }
        }
        Ok(())
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
        let (entry, next) = self.with_indexes(|i| {
            let index = &i.offset;
            let Some(rel) = offset.checked_sub(index.base_offset()) else {
                return (index.lookup(offset), None);
            };
            // Entries at or below `offset`; the one after them (if any) names a batch ending
            // past `offset`.
            let n = index.partition_point(|e| u64::from(e.relative_offset) <= rel);
            // The floor entry from the same search (what `lookup` would find).
            let floor = n.checked_sub(1).and_then(|i| index.entry(i));
            let floor = floor.unwrap_or(OffsetPosition {
                offset: index.base_offset(),
                position: 0,
            });
            (floor, index.entry(n))
        })?;
        // A batch larger than twice the index interval has an entry of its own, and the entry
        // after the floor's is then usually the batch holding `offset`: start there if it holds
        // it (one header read; the floor's batch would be a second, in another place). The same
        // checks as for the floor entry: a batch ending exactly at the entry's offset starts
        // there, and it must begin at or before `offset`, so nothing before `offset` is skipped.
        if let Some(next) = next {
            let interval = u64::from(self.config.index_interval_bytes);
            if u64::from(next.position).saturating_sub(u64::from(entry.position)) > 2 * interval {
                if let Ok(h) = reader.header_at(u64::from(next.position), &self.log_path) {
                    if h.last_offset() == next.offset && h.base_offset <= offset {
                        return Ok((u64::from(next.position), h.base_offset));
                    }
                }
            }
        }
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
    /// of the log written by Kafka (below `kafka_epochs_below`) may hold any. Kafka's CRC does not
    /// cover the epoch either, so this is what checks it.
    pub(super) fn epoch_ok(&self, base_offset: u64, epoch: i32) -> bool {
        epoch == 0 || base_offset < self.config.kafka_epochs_below
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
    ///
    /// Its callers cut the segment at the position it returns (`truncate_to` in place,
    /// `truncated_copy` into a new file): so it fences the cache of verified batches there
    /// first (see [`VerifiedBatches`]).
    pub(super) fn position_of(&self, offset: u64) -> Result<Option<(u64, u64)>> {
        let found = self.scan_position_of(offset)?;
        if let Some((pos, _)) = found {
            self.verified.fence(pos);
        }
        Ok(found)
    }

    fn scan_position_of(&self, offset: u64) -> Result<Option<(u64, u64)>> {
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

/// Most batches one segment's cache remembers: about 3 MiB at most. Past it, further batches are
/// verified on every read (as before there was a cache), which is slower but no less safe.
const MAX_VERIFIED_BATCHES: usize = 1 << 17;

/// The batches of one [`Segment`] whose CRC-32C this process has verified, by file position, so
/// that reads verify each batch once per process rather than on every read (Kafka's broker does
/// not check CRCs on fetch at all; its consumers check every batch they receive).
///
/// # The guarantee
/// A read serves a batch at position `p` without recomputing its CRC only if this process
/// computed the CRC of the bytes at `p` (and found it matching) through this same `Segment`
/// object, and those bytes are the ones being served now, which holds because:
/// - a segment's bytes below its published size never change in place, except through
///   `truncate_to` on an active, unmapped segment, which cuts the file at a batch boundary found
///   by `position_of` and lets later appends write new bytes from there. `position_of` fences the
///   cache first ([`fence`](Self::fence)): it forgets every batch at or after the cut, and until
///   a reader has seen the segment's size at or below the cut (the truncation published), nothing
///   at or past the cut is remembered, and nothing is remembered by a read that began before the
///   fence or its lifting (each read takes a [`ticket`](Self::ticket), the cache's generation,
///   before it loads the size it reads up to). So no entry ever vouches for bytes written after
///   a truncation on the word of a check made before it;
/// - compaction, retention, recovery and `truncated_copy` replace a segment by a new `Segment`
///   object (a new file), with an empty cache; readers holding the old one read the old file;
/// - an entry also holds the batch's length and stored CRC, and vouches only for a batch whose
///   header still carries both.
///
/// An entry may also hold where every 4th record of the batch starts, found by stepping over the
/// records' length fields in the bytes the CRC was verified on: it is trusted exactly as far as
/// the CRC is, and only saves a read those steps (the records served are parsed and checked as
/// always).
///
/// Not covered (by design, as in Kafka): bytes that change on disk behind the process's back
/// after their CRC was verified. A new process (or a reopened partition) verifies again.
#[derive(Default)]
pub(crate) struct VerifiedBatches {
    inner: RwLock<Verified>,
}

#[derive(Default)]
struct Verified {
    /// Changes whenever a fence is set or lifted: a read that began under another generation
    /// records nothing.
    generation: u64,
    /// A cut position announced by `position_of`: no batch ending past it is recorded until the
    /// truncation has been seen published.
    fence: Option<u64>,
    /// Position -> what was verified there.
    batches: HashMap<u64, Entry, BuildHasherDefault<PositionHasher>>,
    /// Bytes of record marks held, at most [`MAX_MARK_BYTES`].
    mark_bytes: usize,
}

/// A verified batch: its length field and stored CRC, and where every 4th of its records starts
/// (`format::record_marks`), once a read needed it.
struct Entry {
    length: u32,
    crc: u32,
    marks: Option<Arc<[u32]>>,
}

/// Most bytes of record marks one segment's cache holds (4 bytes per 4 records): past it, reads
/// walk the records' length fields from the batch's start, as without marks.
const MAX_MARK_BYTES: usize = 4 << 20;

impl std::fmt::Debug for VerifiedBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.inner.read();
        f.debug_struct("VerifiedBatches")
            .field("batches", &v.batches.len())
            .field("fence", &v.fence)
            .finish()
    }
}

impl VerifiedBatches {
    /// The generation a read records under; taken before the read loads the segment's size,
    /// which `size` loads. Lifts a fence whose truncation the size shows published.
    pub(crate) fn ticket(&self, size: impl Fn() -> u64) -> u64 {
        let (generation, fence) = {
            let v = self.inner.read();
            (v.generation, v.fence)
        };
        let Some(cut) = fence else {
            return generation;
        };
        if size() > cut {
            return generation;
        }
        let mut v = self.inner.write();
        if v.fence == Some(cut) {
            v.fence = None;
            v.generation += 1;
        }
        v.generation
    }

    /// `Some` if the batch at `pos` with span `s` was verified by this process, holding its
    /// record marks if known.
    pub(crate) fn lookup(&self, pos: u64, s: &BatchSpan) -> Option<Option<Arc<[u32]>>> {
        let v = self.inner.read();
        let e = v.batches.get(&pos)?;
        (e.length == s.length && e.crc == s.crc).then(|| e.marks.clone())
    }

    /// Remember the record marks of the verified batch at `pos` with span `s`, found from its
    /// bytes by a read that took `ticket` (under the same rules as [`record`](Self::record)).
    pub(crate) fn set_marks(&self, ticket: u64, pos: u64, s: &BatchSpan, marks: Arc<[u32]>) {
        let mut v = self.inner.write();
        let bytes = mark_bytes(&marks);
        if v.generation != ticket || v.mark_bytes + bytes > MAX_MARK_BYTES {
            return;
        }
        let Some(e) = v.batches.get_mut(&pos) else {
            return;
        };
        if e.length != s.length || e.crc != s.crc || e.marks.is_some() {
            return;
        }
        e.marks = Some(marks);
        v.mark_bytes += bytes;
    }

    /// Remember that the batch at `pos` with span `s` matched its CRC, checked by a read that
    /// took `ticket` before loading the size it read up to.
    /// With `marks`, the batch's record marks found from the same bytes.
    pub(crate) fn record(&self, ticket: u64, pos: u64, s: &BatchSpan, marks: Option<Arc<[u32]>>) {
        let mut v = self.inner.write();
        if v.generation != ticket
            || v.batches.len() >= MAX_VERIFIED_BATCHES
            || v.fence.is_some_and(|cut| pos + s.total_len() as u64 > cut)
        {
            return;
        }
        let marks = marks.filter(|m| v.mark_bytes + mark_bytes(m) <= MAX_MARK_BYTES);
        v.mark_bytes += marks.as_ref().map_or(0, mark_bytes);
        let old = v.batches.insert(
            pos,
            Entry {
                length: s.length,
                crc: s.crc,
                marks,
            },
        );
        // (Two reads may record the same batch.)
        v.mark_bytes -= old.and_then(|e| e.marks).as_ref().map_or(0, mark_bytes);
    }

    /// The segment is about to be cut at `pos`: forget what lies at or after it, and record
    /// nothing there until the cut is published (see the type's documentation).
    pub(crate) fn fence(&self, pos: u64) {
        let mut v = self.inner.write();
        v.batches.retain(|&p, _| p < pos);
        v.mark_bytes = v
            .batches
            .values()
            .map(|e| e.marks.as_ref().map_or(0, mark_bytes))
            .sum();
        v.fence = Some(v.fence.map_or(pos, |f| f.min(pos)));
        v.generation += 1;
    }

    /// Number of batches remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.read().batches.len()
    }
}

/// Bytes `marks` holds, counted against [`MAX_MARK_BYTES`].
fn mark_bytes(marks: &Arc<[u32]>) -> usize {
    marks.len() * 4 + 16
}

/// A hash of batch positions (`u64`s, unique per segment, chosen by the writer): one multiply,
/// no need for SipHash's resistance to chosen keys.
#[derive(Default)]
struct PositionHasher(u64);

impl Hasher for PositionHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        let h = (v ^ self.0.rotate_left(5)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::format::{crc32c, RecordBatch, BATCH_PREFIX_LEN, CRC_OFFSET, RECORDS_OFFSET};
    use crate::fs::{FileSystem, SimFs};
    use crate::segment::Segment;
    use crate::{LogConfig, Record};

    fn segment() -> Segment {
        let fs: Arc<dyn FileSystem> = Arc::new(SimFs::new(1));
        let dir = Path::new("/s");
        fs.create_dir_all(dir).unwrap();
        let config = LogConfig {
            preallocate: false,
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        Segment::create(fs, dir, 0, &config).unwrap()
    }

    fn batch(base: u64, tag: &str) -> Vec<u8> {
        let records: Vec<Record> = (0..3).map(|i| Record::new(format!("{tag}{i}"))).collect();
        RecordBatch::build(&records, base, 1_000)
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    fn values(seg: &Segment, offset: u64, check_framing: bool) -> crate::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        seg.read_into(offset, 1 << 20, check_framing, &mut out)?;
        let mut values = Vec::new();
        for (i, b) in out.iter().enumerate() {
            let it = if i == 0 {
                b.iter_from(offset)
            } else {
                b.iter()
            };
            for r in it {
                values.push(r?.value().unwrap().to_vec());
            }
        }
        Ok(values)
    }

    /// Flip a bit of the last value byte of the batch at `pos` (length `len`) on disk, behind
    /// the segment's back: its stored CRC no longer matches (flipping it again repairs it).
    fn damage(seg: &Segment, pos: u64, len: usize) {
        // The last record ends with its value's last byte and a header count of 0.
        let at = pos + len as u64 - 2;
        let mut b = [0u8];
        seg.file.read_at(&mut b, at).unwrap();
        seg.file.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    }

    /// A batch's CRC is verified once per `Segment`: a second read is vouched for by the cache
    /// (so a byte changed on disk behind the process's back after the check is not seen again,
    /// as documented), and a new `Segment` over the same file verifies afresh.
    #[test]
    fn a_verified_batch_is_not_verified_again_but_a_new_segment_verifies() {
        let seg = segment();
        let b0 = batch(0, "a");
        seg.append(&b0, 0).unwrap();
        assert_eq!(values(&seg, 0, true).unwrap().len(), 3);
        assert_eq!(seg.verified.len(), 1);
        damage(&seg, 0, b0.len());
        assert!(
            values(&seg, 1, false).is_ok(),
            "vouched for by this process"
        );
        let fresh = Segment::new(
            seg.fs.clone(),
            Path::new("/s"),
            0,
            (seg.log_path.clone(), Some(seg.file.clone())),
            seg.config,
            false,
        );
        fresh
            .size
            .store(seg.size(), std::sync::atomic::Ordering::Release);
        fresh
            .next_offset
            .store(seg.next_offset(), std::sync::atomic::Ordering::Release);
        let err = values(&fresh, 0, false).unwrap_err();
        assert!(err.to_string().contains("CRC"), "{err}");
    }

    /// After `truncate_to` and new appends at the same position, a read verifies the new bytes:
    /// the cache entry for the batch that was cut is gone (here the batch appended again is
    /// byte for byte the one cut, so an entry would match its length and CRC; its payload is
    /// then damaged on disk, and the read must see it).
    #[test]
    fn after_a_truncation_the_new_bytes_are_verified_not_vouched_for() {
        let seg = segment();
        let b0 = batch(0, "a");
        let b1 = batch(3, "b");
        seg.append(&b0, 0).unwrap();
        seg.append(&b1, 0).unwrap();
        assert_eq!(values(&seg, 0, false).unwrap().len(), 6);
        assert_eq!(seg.verified.len(), 2);
        assert_eq!(seg.truncate_to(3).unwrap(), 3);
        assert_eq!(seg.verified.len(), 1, "the cut batch is forgotten");
        seg.append(&b1, 0).unwrap();
        damage(&seg, b0.len() as u64, b1.len());
        for check_framing in [false, true] {
            let err = values(&seg, 3, check_framing).unwrap_err();
            assert!(err.to_string().contains("CRC"), "{err}");
        }

        damage(&seg, b0.len() as u64, b1.len());
        // Truncate again; once a read has seen the cut published, new batches are remembered
        // again, and a read from before the cut never adds an entry past it.
        assert_eq!(seg.truncate_to(3).unwrap(), 3);
        assert_eq!(values(&seg, 0, false).unwrap().len(), 3);
        let b2 = batch(3, "c");
        seg.append(&b2, 0).unwrap();
        assert_eq!(
            values(&seg, 3, false).unwrap(),
            [b"c0".to_vec(), b"c1".to_vec(), b"c2".to_vec()]
        );
        assert_eq!(seg.verified.len(), 2);
    }

    /// A CRC-valid batch whose records are damaged (a crafted file): the lazy read serves it,
    /// and its iterator returns the error; the checked read refuses it.
    #[test]
    fn framing_damage_in_a_crc_valid_batch_is_an_error_through_the_lazy_path() {
        let seg = segment();
        let mut b = batch(0, "a");
        // The first record's value length: one more than it holds, then a fresh CRC.
        let value_len_at = RECORDS_OFFSET + 1 + 1 + 1 + 1 + 1;
        b[value_len_at] += 2;
        let crc = crc32c(&b[BATCH_PREFIX_LEN..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(RecordBatch::decode(Bytes::from(b.clone())).is_err());
        seg.append(&b, 0).unwrap();
        assert!(values(&seg, 0, true).is_err());
        let mut out = Vec::new();
        seg.read_into(0, 1 << 20, false, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let items: Vec<_> = out[0].iter().collect();
        assert!(
            matches!(items.last(), Some(Err(crate::Error::Corrupt { .. }))),
            "{items:?}"
        );
    }
}
