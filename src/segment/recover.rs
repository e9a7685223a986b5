//! Recovery after an unclean stop: rescan the `.log` (all of it, or from the last index entry
//! known durable), keep the longest valid prefix, cut a torn tail, and tell a torn tail from
//! damage.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, IoContext, Result};
use crate::format::{
    peek_frame, segment_file_name, validate_batch, Frame, SegmentFileKind, BATCH_HEADER_LEN,
    MAX_BATCH_BYTES_LIMIT, MAX_SEGMENT_RELATIVE,
};
use crate::fs::{FileSystem, OpenMode};
use crate::progress::Meter;

use super::window::{Source, WindowReader};
use crate::config::LogConfig;

use super::{
    Indexes, OffsetIndex, Recovery, Segment, SegmentConfig, SegmentRecovery, TimeIndex, WriteState,
};

/// A read's I/O failure (other than a short file) as an error; any other failure, which the bytes
/// read caused, as `None`.
fn only_io_errors<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Io { path, source }) if source.kind() != std::io::ErrorKind::UnexpectedEof => {
            Err(Error::Io { path, source })
        }
        Err(_) => Ok(None),
    }
}

/// Where a recovery scan begins: the indexes and bookkeeping as of the batch at `pos` (whose base
/// offset is `expected`), which the scan reads first.
struct ScanStart {
    idx: Indexes,
    ws: WriteState,
    max_ts: i64,
    pos: u64,
    expected: u64,
}

impl Segment {
    /// Open the segment at `base_offset` in `dir` after an unclean stop: scan the whole `.log`,
    /// verifying every batch (CRC and framing), rebuild both indexes, and cut the file after the
    /// last valid batch. `durable_offset` is the offset below which data is known to have been
    /// synced: an invalid batch below it, or one followed by valid data, is corruption rather than
    /// a torn tail, and fails under [`Recovery::Strict`] (the config's
    /// [`recovery`](crate::LogConfig::recovery)). Returns the active segment, ready for
    /// appends, and what the scan found.
    ///
    /// The file is synced afterwards, so everything kept is durable. The caller seals the segment
    /// if it is not the last of its log.
    ///
    /// # Examples
    /// A crash tore the last batch: recovery keeps the whole batches before it.
    /// ```
    /// use std::io::Write;
    /// use std::sync::Arc;
    /// use topiclog::fs::{FileSystem, StdFs};
    /// use topiclog::segment::{RecordBatch, Segment};
    /// use topiclog::{LogConfig, Record, Recovery};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    /// let config = LogConfig { preallocate: false, recovery: Recovery::Strict, ..LogConfig::default() };
    /// let segment = Segment::create(fs.clone(), dir.path(), 0, &config)?;
    /// segment.append(RecordBatch::build(&[Record::new("a")], 0, 0)?.as_bytes(), 0)?;
    /// let log = segment.log_path().to_owned();
    /// drop(segment);
    /// // The crash left the first half of the next batch.
    /// let next = RecordBatch::build(&[Record::new("b")], 1, 0)?;
    /// let half = &next.as_bytes()[..next.as_bytes().len() / 2];
    /// std::fs::OpenOptions::new().append(true).open(&log)?.write_all(half)?;
    ///
    /// let (segment, found) = Segment::recover(fs, dir.path(), 0, &config, 0)?;
    /// assert_eq!(segment.next_offset(), 1);
    /// assert_eq!(found.truncated_bytes, half.len() as u64);
    /// assert!(!found.cut_corruption);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] under [`Recovery::Strict`] as above, and under any mode for a `.log`
    /// that does not start with a batch of this format (left untouched); [`Error::Io`] on I/O
    /// failure.
    pub fn recover(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
        durable_offset: u64,
    ) -> Result<(Segment, SegmentRecovery)> {
        Segment::recover_segment(
            fs,
            dir,
            base_offset,
            config.standalone_segment_config(),
            durable_offset,
            true,
            &mut Meter::off(),
        )
    }

    /// [`recover`](Self::recover) with the segment's share of the config. Not `active`: the
    /// segment is to be sealed (its successor exists), so it is neither preallocated nor synced
    /// here: the caller syncs it (with others, side by side) before anything relies on it.
    /// `meter` hears how far into the file the scan is (its current part is this file).
    pub(crate) fn recover_segment(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: SegmentConfig,
        durable_offset: u64,
        active: bool,
        meter: &mut Meter<'_>,
    ) -> Result<(Segment, SegmentRecovery)> {
        let seg = Segment::open_unscanned(fs, dir, base_offset, config)?;
        let found = seg.rescan(durable_offset, config.recovery, active, meter)?;
        Ok((seg, found))
    }

    /// The segment at `base_offset` with its `.log` open for writing and nothing loaded: what a
    /// recovery scan fills in.
    fn open_unscanned(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: SegmentConfig,
    ) -> Result<Segment> {
        let log_path = segment_file_name(dir, base_offset, SegmentFileKind::Log);
        let file = fs.open(&log_path, OpenMode::ReadWrite).at(&log_path)?;
        Ok(Segment::new(
            fs,
            dir,
            base_offset,
            (log_path, Some(file)),
            config,
            false,
        ))
    }

    /// [`recover_segment`](Self::recover_segment), rescanning only what follows the last offset
    /// index entry below `durable_offset` when the index files allow it: every batch below
    /// `durable_offset` was synced before the recovery point that says so was written, and so were
    /// the index entries below it (see `Partition`'s `write_recovery_point`), so the rescan is
    /// bounded by what was appended since, plus at most one index interval.
    ///
    /// The index files are derived data and untrusted: the entries kept must be in bounds and
    /// increasing, the last one must name a batch that verifies (CRC) and ends exactly at its
    /// offset, and the last time index entry kept must be the maximum timestamp as of that batch.
    /// Anything else falls back to the full rescan, which rebuilds the indexes from the log.
    /// Damage to batches before the last entry kept is found when they are read (every batch's
    /// CRC is verified on its first read in a process), as for segments below the recovery point.
    pub(crate) fn recover_segment_from_index(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        config: SegmentConfig,
        durable_offset: u64,
        active: bool,
        meter: &mut Meter<'_>,
    ) -> Result<(Segment, SegmentRecovery)> {
        let seg = Segment::open_unscanned(fs, dir, base_offset, config)?;
        if let Some(start) = seg.durable_index_prefix(durable_offset)? {
            let found = seg.scan_from(start, durable_offset, config.recovery, active, meter)?;
            return Ok((seg, found));
        }
        let found = seg.rescan(durable_offset, config.recovery, active, meter)?;
        Ok((seg, found))
    }

    /// The index entries below `durable_offset` as the index files hold them, if they pass the
    /// checks of [`recover_segment_from_index`](Self::recover_segment_from_index), and where the
    /// scan goes on from: the batch of the last entry kept.
    fn durable_index_prefix(&self, durable_offset: u64) -> Result<Option<ScanStart>> {
        let file_len = self.file.len().at(&self.log_path)?;
        let max = self.config.max_index_bytes as usize;
        let mut offset =
            OffsetIndex::load(self.fs.clone(), &self.index_path, self.base_offset, max)?;
        offset.truncate_to(durable_offset);
        if offset.is_empty()
            || offset.sanity_check(file_len).is_err()
            || offset.entry(0).is_some_and(|e| e.position == 0)
        {
            return Ok(None);
        }
        let last = offset.last_entry();
        let mut time = TimeIndex::load(
            self.fs.clone(),
            &self.time_index_path,
            self.base_offset,
            max,
        )?;
        // Entries made at or before the batch of `last` (a later entry names a later batch: the
        // maximum grew there).
        time.truncate_to(last.offset.saturating_add(1));
        if time.sanity_check(last.offset.saturating_add(1)).is_err() {
            return Ok(None);
        }
        let mut reader = WindowReader::new(Source::File(&*self.file), BATCH_HEADER_LEN, file_len);
        let position = u64::from(last.position);
        let h = match only_io_errors(reader.checked_header_at(position, &self.log_path))? {
            Some(h) if h.last_offset() == last.offset && h.base_offset >= self.base_offset => h,
            _ => return Ok(None),
        };
        // The scan goes on with the maximum timestamp as of that batch: the last time entry kept
        // must name a batch with exactly that maximum, and no batch after it up to the one of
        // `last` may exceed it (which a cut-back or full time index would miss).
        let Some(max) = time.last_entry() else {
            return Ok(None);
        };
        let mut at = u64::from(offset.lookup(max.offset).position);
        let mut named = false;
        while at <= position {
            let Some(h) = only_io_errors(reader.header_at(at, &self.log_path))? else {
                return Ok(None);
            };
            if h.last_offset() == max.offset {
                named = h.max_timestamp == max.timestamp;
            } else if h.record_count > 0 && h.max_timestamp > max.timestamp {
                return Ok(None);
            }
            at += h.total_len() as u64;
        }
        if !named || at != position + h.total_len() as u64 {
            return Ok(None);
        }
        let ws = WriteState {
            max_timestamp_offset: max.offset,
            ..WriteState::default()
        };
        // The files may hold entries past `durable_offset` (written before a crash, naming data
        // that was lost): the next flush replaces them.
        offset.mark_for_replace();
        time.mark_for_replace();
        Ok(Some(ScanStart {
            idx: Indexes { offset, time },
            ws,
            max_ts: max.timestamp,
            pos: position,
            expected: h.base_offset,
        }))
    }

    /// The scan of [`recover`](Self::recover), on a segment just opened with nothing loaded: fills
    /// in its size, end offset, maximum timestamp and indexes.
    fn rescan(
        &self,
        durable_offset: u64,
        mode: Recovery,
        active: bool,
        meter: &mut Meter<'_>,
    ) -> Result<SegmentRecovery> {
        let (idx, ws) = self.empty_indexes();
        let start = ScanStart {
            idx,
            ws,
            max_ts: i64::MIN,
            pos: 0,
            expected: self.base_offset,
        };
        self.scan_from(start, durable_offset, mode, active, meter)
    }

    /// Verify every batch from `start` on, cut after the last valid one, and install the result
    /// (size, end offset, maximum timestamp, indexes). `active`: preallocate and sync the file (as
    /// the caller does for a segment to be sealed). `meter` hears the file position reached
    /// (one comparison per batch; it reports only every so many bytes).
    fn scan_from(
        &self,
        start: ScanStart,
        durable_offset: u64,
        mode: Recovery,
        active: bool,
        meter: &mut Meter<'_>,
    ) -> Result<SegmentRecovery> {
        let file_len = self.file.len().at(&self.log_path)?;
        let ScanStart {
            mut idx,
            mut ws,
            mut max_ts,
            mut pos,
            mut expected,
        } = start;
        let scanned_from = pos;
        let mut cut_corruption = false;
        let mut reader = WindowReader::new(Source::File(&*self.file), 1 << 20, file_len);
        while pos < file_len {
            meter.at(pos);
            let mut backwards = false;
            // CRC and framing; a compressed batch is not decompressed (reads check its records).
            let valid = match reader.checked_header_at(pos, &self.log_path) {
                Ok(h)
                    if self.follows(h.base_offset, expected)
                        && self.epoch_ok(h.base_offset, h.partition_leader_epoch)
                        && h.last_offset() - self.base_offset <= MAX_SEGMENT_RELATIVE
                        && pos + h.total_len() as u64 <= MAX_SEGMENT_RELATIVE =>
                {
                    Some(h)
                }
                Ok(_) => {
                    // A checksummed batch whose offsets do not continue the log or overflow the
                    // segment is damage, never a torn write.
                    backwards = true;
                    None
                }
                Err(Error::Io { source, .. })
                    if source.kind() != std::io::ErrorKind::UnexpectedEof =>
                {
                    return Err(Error::Io {
                        path: self.log_path.clone(),
                        source,
                    })
                }
                Err(_) => None,
            };
            let Some(h) = valid else {
                // A torn write leaves a prefix of the batch the writer meant to put here, then
                // zeros (or the end of the file). Bytes that cannot be that are not a torn tail.
                let ours = !backwards && self.torn_batch_compatible(pos, expected, file_len)?;
                if backwards && pos == 0 {
                    // A valid batch that cannot start this segment: never erase it.
                    return Err(Error::corrupt(
                        &self.log_path,
                        0,
                        format!(
                            "the first batch (a valid RecordBatch v2) does not start this segment: \
                             it must start at offset {} with partition leader epoch 0 (a log \
                             written by Kafka is adopted only from a directory topiclog never \
                             opened); it was left untouched",
                            self.base_offset
                        ),
                    ));
                }
                if !ours && pos == 0 {
                    // Not a single batch we read: another format (old Kafka, topiclog's
                    // pre-release one), or damage from the first byte. Never erase it.
                    self.check_format()?;
                    return Err(Error::corrupt(
                        &self.log_path,
                        0,
                        "the file does not start with a Kafka RecordBatch v2 (damaged from its \
                         first byte, or another format); it was left untouched: move it out of \
                         the partition directory or restore it",
                    ));
                }
                // A torn write leaves non-zero bytes only within the batch it was writing: its
                // header's bytes, and up to its length once the header got that far. Non-zero
                // bytes anywhere after that (to the end of the file: a sequential read of at most
                // the preallocated tail, whose holes are skipped unread) are not a torn tail.
                let (unexplained, unidentified) = if ours {
                    let explained = self.torn_batch_end(pos, file_len)?;
                    let unexplained = !reader.is_zero(explained, file_len)?;
                    // Not even a header of ours: the bytes that follow are unidentified.
                    (unexplained, unexplained && explained == pos)
                } else {
                    (false, false)
                };
                if unidentified && pos == 0 {
                    // Zeros, then data: cutting here would erase the file's whole content,
                    // none of it identified as ours (refused in any mode, as another format is).
                    return Err(Error::corrupt(
                        &self.log_path,
                        0,
                        "the file starts with zeros followed by data that is not a batch of \
                         this log: damaged from its first byte, not a torn \
                         write; it was left untouched: restore it, or move it out of the \
                         partition directory",
                    ));
                }
                let corrupt = !ours
                    || unexplained
                    || expected < durable_offset
                    || self.valid_batch_follows(pos, file_len)?;
                if corrupt {
                    if mode == Recovery::Strict {
                        return Err(Error::corrupt(
                            &self.log_path,
                            pos,
                            format!(
                                "invalid batch where offset {expected} was expected, with durable data at or after it \
                                 (durable point {durable_offset}); reopen with Recovery::TruncateCorrupt to cut here"
                            ),
                        ));
                    }
                    cut_corruption = true;
                }
                break;
            };
            self.index_batch(&mut idx, &mut ws, &mut max_ts, &h, pos)
                .map_err(|e| self.index_error_is_damage(e, pos))?;
            pos += h.total_len() as u64;
            expected = h.next_offset();
        }
        // Report the cut, but only look one maximum batch past it for non-zero bytes: the rest of
        // a preallocated file is zeros and reading it all would slow every recovery down. A cut
        // of damage (valid data was found after it, possibly past that window) always counts.
        let probe_end =
            file_len.min(pos + u64::from(self.config.max_batch_bytes) + BATCH_HEADER_LEN as u64);
        let truncated = if pos < file_len && (cut_corruption || !reader.is_zero(pos, probe_end)?) {
            file_len - pos
        } else {
            0
        };
        if pos < file_len {
            self.file.set_len(pos).at(&self.log_path)?;
            if active {
                // Durable before re-extending (see `truncate_to`).
                self.file.sync_all().at(&self.log_path)?;
            }
        }
        if active {
            ws.allocated =
                super::write::next_allocation(pos, pos + 1, self.config.preallocate_bytes);
            if ws.allocated > pos {
                self.file.set_len(ws.allocated).at(&self.log_path)?;
            }
            self.file.sync_all().at(&self.log_path)?;
        }
        *self.writer.lock() = ws;
        *self.indexes.write() = Some(idx);
        self.size.store(pos, Ordering::Release);
        self.next_offset.store(expected, Ordering::Release);
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.max_timestamp_known.store(true, Ordering::Release);
        self.init_roll_time()?;
        Ok(SegmentRecovery {
            valid_bytes: pos,
            truncated_bytes: truncated,
            cut_corruption,
            next_offset: expected,
            scanned_bytes: pos - scanned_from + truncated,
        })
    }

    /// Whether the bytes at `pos` (where a batch based at `expected` was to be written) could be
    /// what a torn write of it left: zeros, or a header whose written bytes agree with such a
    /// batch (its base offset, the magic, a plausible length) and zeros where it was not
    /// written. Anything else is not a torn tail of this log.
    pub(super) fn torn_batch_compatible(
        &self,
        pos: u64,
        expected: u64,
        file_len: u64,
    ) -> Result<bool> {
        use crate::format::{LENGTH_OFFSET, MAGIC, MAGIC_OFFSET, MIN_BATCH_LENGTH_FIELD};
        let n = (file_len - pos).min(BATCH_HEADER_LEN as u64) as usize;
        let mut h = vec![0u8; n];
        self.file.read_exact_at(&mut h, pos).at(&self.log_path)?;
        let base = expected.to_be_bytes();
        let base_ok = h
            .iter()
            .zip(base)
            .all(|(&got, want)| got == want || got == 0);
        let magic = h.get(MAGIC_OFFSET).copied();
        let magic_ok = magic.is_none_or(|m| m == MAGIC || m == 0);
        // The length is judged only when the header was written past it (the magic byte is).
        let length_ok = match (h.get(LENGTH_OFFSET..LENGTH_OFFSET + 4), magic) {
            (Some(l), Some(m)) if m != 0 => {
                let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
                (MIN_BATCH_LENGTH_FIELD..=MAX_BATCH_BYTES_LIMIT as u32).contains(&len)
            }
            _ => true,
        };
        Ok(base_ok && magic_ok && length_ok)
    }

    /// Where the bytes a torn write of the batch at `pos` can have left end (the bytes at `pos`
    /// are [`torn_batch_compatible`](Self::torn_batch_compatible)): `pos` if its header is all
    /// zeros (nothing of it reached the disk); the batch's end if its header got as far as the
    /// magic byte (so its length field was written, and judged plausible); else the end of the
    /// header bytes present. At most `file_len`.
    pub(super) fn torn_batch_end(&self, pos: u64, file_len: u64) -> Result<u64> {
        use crate::format::{LENGTH_OFFSET, MAGIC_OFFSET};
        let n = (file_len - pos).min(BATCH_HEADER_LEN as u64) as usize;
        let mut h = vec![0u8; n];
        self.file.read_exact_at(&mut h, pos).at(&self.log_path)?;
        if h.iter().all(|&b| b == 0) {
            return Ok(pos);
        }
        let end = match (h.get(LENGTH_OFFSET..LENGTH_OFFSET + 4), h.get(MAGIC_OFFSET)) {
            (Some(l), Some(&m)) if m != 0 => {
                let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
                pos + LENGTH_OFFSET as u64 + 4 + u64::from(len)
            }
            _ => pos + n as u64,
        };
        Ok(end.min(file_len))
    }

    /// After an invalid batch at `pos`: does a valid batch (CRC-checked) start
    /// within one maximum batch length, with no all-zero 4 KiB page (an unwritten page of a torn
    /// write) before it? If so the invalid bytes are damage inside data that reached the disk.
    pub(super) fn valid_batch_follows(&self, pos: u64, file_len: u64) -> Result<bool> {
        let span =
            (self.config.max_batch_bytes as u64 + 2 * BATCH_HEADER_LEN as u64).min(file_len - pos);
        let mut buf = vec![0u8; span as usize];
        self.file.read_exact_at(&mut buf, pos).at(&self.log_path)?;
        let buf = Bytes::from(buf);
        const PAGE: u64 = 4096;
        let mut next_page = pos.div_ceil(PAGE) * PAGE;
        for start in 1..buf.len() {
            let abs = pos + start as u64;
            // An all-zero page before any candidate: the torn-write signature. Stop looking.
            while next_page + PAGE <= abs {
                let s = (next_page - pos) as usize;
                if buf[s..s + PAGE as usize].iter().all(|&b| b == 0) {
                    return Ok(false);
                }
                next_page += PAGE;
            }
            let rest = &buf[start..];
            if let Frame::Batch(h) = peek_frame(rest) {
                if h.total_len() <= rest.len()
                    && validate_batch(&buf[start..start + h.total_len()]).is_ok()
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}
