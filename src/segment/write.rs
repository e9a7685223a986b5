//! Changing a segment: appends, sealing, syncing, truncation, deletion.

use bytes::Bytes;

use crate::error::{Error, IoContext, Result};
use crate::format::{segment_file_name, BatchHeader, SegmentFileKind, MAX_SEGMENT_RELATIVE};
use crate::fs::remove_if_exists;
use crate::fs::{FileSystem, OpenMode};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{track_max_timestamp, Recovery, Segment, SegmentConfig, WriteState};

impl Segment {
    /// Read the active segment through a shared map of up to `len` bytes (which may exceed the
    /// file) instead of `pread`, where the file system supports it: mapped as far as the data
    /// needs, then in doubling steps as it grows (so the address space follows the data, not
    /// `len`). Reads stay below the published size;
    /// from now on the segment must be truncated by [`truncated_copy`](Self::truncated_copy), never
    /// in place. Returns whether the segment is now mapped.
    ///
    /// # Errors
    /// [`Error::Io`] if mapping fails.
    pub fn map_active(&self, len: u64) -> Result<bool> {
        if self.map.get().is_some() {
            return Ok(true);
        }
        // Only as much as the data needs now; reads map more as it grows (`grown_map`).
        self.map_limit.store(len, Ordering::Release);
        let need = self.size() + u64::from(self.config.max_batch_bytes);
        let first = super::cache::growing_map_len(need, len);
        match self.file.map_growing(first).at(&self.log_path)? {
            Some(m) => {
                let _ = self.map.set(m);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Append one encoded batch (base offset already assigned) at the end of the segment.
    ///
    /// The batch must follow the segment's last offset, and keep relative offsets and positions
    /// within `u32` (the partition rolls before that could happen).
    ///
    /// With a write buffer (`write_buffer_bytes` > 0), a batch smaller than the buffer is copied
    /// into it, and the buffer is written with one `pwrite` once it holds `write_buffer_bytes`
    /// (or before anything reads, syncs, seals, trims or cuts the file). A larger batch, or any
    /// batch without a buffer, is written at once.
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails: the batch is then not visible, and the caller must stop
    /// appending (the tail of the file is in an unknown state until recovery). If writing out the
    /// buffer fails, the batches it held are lost too, and every later append fails.
    /// [`Error::Corrupt`] if `batch` is not a well-formed batch header.
    pub fn append(&self, batch: &[u8], now_ms: i64) -> Result<()> {
        let h = BatchHeader::parse(batch)
            .map_err(|r| Error::corrupt(&self.log_path, self.appended_size(), r))?;
        if self.is_sealed() {
            return Err(Error::io(
                &self.log_path,
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, "segment is sealed"),
            ));
        }
        let mut ws = self.writer.lock();
        self.check_write_ok()?;
        let pos = self.size.load(Ordering::Acquire) + ws.pending.len() as u64;
        let next = self.next_offset();
        if !self.follows(h.base_offset, next)
            || h.last_offset() - self.base_offset > MAX_SEGMENT_RELATIVE
        {
            return Err(Error::IndexAppend {
                path: self.log_path.clone(),
                reason: format!(
                    "batch at offset {} does not fit after offset {next}",
                    h.base_offset
                ),
            });
        }
        if pos + batch.len() as u64 > MAX_SEGMENT_RELATIVE {
            return Err(Error::RecordTooLarge {
                size: batch.len(),
                max: MAX_SEGMENT_RELATIVE.saturating_sub(pos) as usize,
            });
        }
        let buffer = self.config.write_buffer_bytes as usize;
        // A batch of 64 KiB or more gains nothing from being copied into the buffer: one `pwrite`
        // of it costs little next to its bytes.
        let direct = batch.len() >= buffer.min(DIRECT_WRITE_BYTES);
        if direct {
            // Keep the file in order: what waits in the buffer goes first.
            self.write_out_locked(&mut ws)?;
            self.write_at(&mut ws, batch, pos)?;
        } else {
            if ws.pending.is_empty() {
                ws.pending.reserve(buffer);
                // Before the end is published: a reader that sees this batch's offsets also sees
                // that it must write the buffer out to read them.
                self.pending_from.store(h.base_offset, Ordering::Release);
            }
            ws.pending.extend_from_slice(batch);
        }
        let mut max_ts = self.max_timestamp.load(Ordering::Relaxed);
        if ws.bytes_since_index >= u64::from(self.config.index_interval_bytes) {
            // Only batches that get an index entry take the index lock readers use.
            let mut guard = self.indexes.write();
            let idx = guard.as_mut().ok_or_else(|| Error::IndexAppend {
                path: self.index_path.clone(),
                reason: "active segment has no loaded index".into(),
            })?;
            self.index_batch(idx, &mut ws, &mut max_ts, &h, pos)?;
        } else {
            track_max_timestamp(&mut ws, &mut max_ts, &h);
            ws.bytes_since_index += h.total_len() as u64;
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        if self.first_append_ms.load(Ordering::Relaxed) == i64::MIN {
            self.first_append_ms.store(now_ms, Ordering::Release);
        }
        self.last_append_ms.store(now_ms, Ordering::Release);
        self.next_offset.store(h.next_offset(), Ordering::Release);
        if direct {
            self.size.store(pos + batch.len() as u64, Ordering::Release);
        } else {
            self.pending_len
                .store(ws.pending.len() as u64, Ordering::Release);
            if ws.pending.len() >= buffer {
                self.write_out_locked(&mut ws)?;
            }
        }
        Ok(())
    }

    /// Refuse to write after a failed write-out (what the buffer held is lost).
    fn check_write_ok(&self) -> Result<()> {
        if self.write_failed.load(Ordering::Acquire) {
            return Err(Error::io(
                &self.log_path,
                std::io::Error::other(
                    "an earlier write of buffered appends to this segment failed; they are lost",
                ),
            ));
        }
        Ok(())
    }

    /// Write `bytes` at `pos`, growing the preallocated length first when they pass it. A failure
    /// stops every later write.
    fn write_at(&self, ws: &mut WriteState, bytes: &[u8], pos: u64) -> Result<()> {
        let end = pos + bytes.len() as u64;
        let result = (|| {
            if ws.allocated > 0 && end > ws.allocated {
                let grown = next_allocation(ws.allocated, end, self.config.preallocate_bytes);
                if grown > ws.allocated {
                    self.file.set_len(grown).at(&self.log_path)?;
                    ws.allocated = grown;
                }
            }
            self.file.write_all_at(bytes, pos).at(&self.log_path)
        })();
        if result.is_err() {
            self.write_failed.store(true, Ordering::Release);
        }
        result
    }

    /// Write the buffered batches to the file and publish them to readers.
    fn write_out_locked(&self, ws: &mut WriteState) -> Result<()> {
        if ws.pending.is_empty() {
            return Ok(());
        }
        self.check_write_ok()?;
        let pos = self.size.load(Ordering::Acquire);
        let pending = std::mem::take(&mut ws.pending);
        let result = self.write_at(ws, &pending, pos);
        ws.pending = pending;
        result?;
        let end = pos + ws.pending.len() as u64;
        ws.pending.clear();
        if ws.pending.capacity() > 2 * self.config.write_buffer_bytes as usize {
            // Keep the buffer of ordinary appends, not one grown for a rare large batch.
            ws.pending = Vec::new();
        }
        // The size first: a reader that sees the buffer empty must see its bytes in the file.
        self.size.store(end, Ordering::Release);
        self.pending_len.store(0, Ordering::Release);
        self.pending_from.store(u64::MAX, Ordering::Release);
        Ok(())
    }

    /// One past the last offset whose batch is in the file (not only in the write buffer).
    pub(crate) fn written_end(&self) -> u64 {
        // The next offset first: an append buffers its batch (setting `pending_from`) before it
        // moves the next offset, so a next offset seen here comes with its buffer state.
        let next = self.next_offset();
        next.min(self.pending_from.load(Ordering::Acquire))
    }

    /// Write out the write buffer, if it holds anything.
    ///
    /// # Errors
    /// [`Error::Io`] if the write fails (what the buffer held is then lost, and the segment takes
    /// no more appends).
    pub fn write_out(&self) -> Result<()> {
        if self.pending_from.load(Ordering::Acquire) == u64::MAX {
            return Ok(());
        }
        let mut ws = self.writer.lock();
        self.write_out_locked(&mut ws)
    }

    /// The batches of the write buffer from the one holding `offset` on, copied out of it: the
    /// first, then more while the total stays within `max_bytes`; empty when `offset` is past
    /// them all. `None` when the batch holding `offset` is not in the buffer (it lies below it, or
    /// was written out meanwhile): the file has it. Costs one atomic load then. Readers never
    /// write: a buffered append is visible at once without a `pwrite` from the reader.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the buffer does not hold well-formed batches (a bug, not damage).
    pub(crate) fn read_buffered(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Option<Vec<crate::format::RecordBatch>>> {
        if offset < self.pending_from.load(Ordering::Acquire) {
            return Ok(None);
        }
        let (bytes, at) = {
            let ws = self.writer.lock();
            if offset < self.pending_from.load(Ordering::Acquire) || ws.pending.is_empty() {
                return Ok(None);
            }
            let (mut pos, mut start) = (0usize, None);
            while let Some(rest) = ws.pending.get(pos..).filter(|r| !r.is_empty()) {
                let h = BatchHeader::parse(rest)
                    .map_err(|r| Error::corrupt(&self.log_path, self.size() + pos as u64, r))?;
                let len = h.total_len();
                match start {
                    None if h.next_offset() > offset => start = Some(pos),
                    Some(s) if pos - s + len > max_bytes => break,
                    _ => {}
                }
                pos += len;
                if start.is_some_and(|s| pos - s >= max_bytes) {
                    break;
                }
            }
            let Some(start) = start else {
                return Ok(Some(Vec::new()));
            };
            let bytes = ws.pending.get(start..pos).unwrap_or_default();
            (Bytes::copy_from_slice(bytes), self.size() + start as u64)
        };
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(rest) = bytes.get(pos..).filter(|r| !r.is_empty()) {
            let h = BatchHeader::parse(rest)
                .map_err(|r| Error::corrupt(&self.log_path, at + pos as u64, r))?;
            let end = (pos + h.total_len()).min(bytes.len());
            let batch = crate::format::RecordBatch::decode(bytes.slice(pos..end))
                .map_err(|(p, r)| Error::corrupt(&self.log_path, at + (pos + p) as u64, r))?;
            out.push(batch);
            pos = end;
        }
        Ok(Some(out))
    }

    /// The first record at or after `start_offset` with a timestamp `>= timestamp` in the write
    /// buffer: `Some(answer)` if the file still holds exactly `file_size` bytes (so the buffer
    /// holds everything after them), `None` if the buffer was written out since.
    pub(crate) fn find_buffered(
        &self,
        timestamp: i64,
        start_offset: u64,
        file_size: u64,
    ) -> Result<Option<Option<super::TimestampOffset>>> {
        let from = {
            let _ws = self.writer.lock();
            if self.size() != file_size {
                return Ok(None);
            }
            self.pending_from.load(Ordering::Acquire)
        };
        if from == u64::MAX {
            return Ok(Some(None));
        }
        let Some(batches) = self.read_buffered(from.max(start_offset), usize::MAX)? else {
            return Ok(None);
        };
        for b in &batches {
            for r in b.records() {
                if r.offset() >= start_offset && r.timestamp() >= timestamp {
                    return Ok(Some(Some(super::TimestampOffset {
                        timestamp: r.timestamp(),
                        offset: r.offset(),
                    })));
                }
            }
        }
        Ok(Some(None))
    }

    /// Remove every batch whose last offset is `>= offset` (a batch containing `offset` goes
    /// whole, as in Kafka). Returns the new next offset. Only for an active segment.
    ///
    /// # Errors
    /// [`Error::Io`] if the segment is sealed or the file cannot be cut.
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        if self.is_sealed() || self.is_mapped() {
            return Err(Error::io(
                &self.log_path,
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "cannot truncate a sealed segment in place",
                ),
            ));
        }
        self.write_out()?;
        let mut ws = self.writer.lock();
        let Some((pos, base)) = self.position_of(offset)? else {
            return Ok(self.next_offset());
        };
        // Publish the smaller size first so no reader looks at bytes being removed.
        self.size.store(pos, Ordering::Release);
        self.next_offset
            .store(base.max(self.base_offset), Ordering::Release);
        self.file.set_len(pos).at(&self.log_path)?;
        // What lay past the cut is a hole again when re-extended.
        ws.zeroed = 0;
        if ws.allocated > pos {
            // Make the cut durable before re-extending, or a crash could keep the old bytes
            // behind zeros and resurrect them.
            self.file.sync_all().at(&self.log_path)?;
            self.file.set_len(ws.allocated).at(&self.log_path)?;
        }
        self.file.sync_all().at(&self.log_path)?;
        {
            let mut guard = self.indexes.write();
            if let Some(idx) = guard.as_mut() {
                idx.offset.truncate_to(base);
                idx.time.truncate_to(base);
            }
        }
        drop(ws);
        self.rescan_tail()?;
        Ok(self.next_offset())
    }

    /// Seal the segment: record the final time index entry, write and sync both indexes, cut the
    /// preallocated tail of the `.log`, and sync it. Afterwards the segment is immutable and read
    /// through a map.
    ///
    /// # Errors
    /// [`Error::Io`] on failure; the segment then stays active.
    pub fn seal(&self) -> Result<()> {
        self.seal_unsynced()?;
        self.sync()
    }

    /// Seal like [`seal`](Self::seal) but without syncing anything: the caller syncs the segment
    /// later (the partition does it off the append path, in its next group commit or background
    /// flush). The indexes are derived data, verified and rebuilt on open if they did not reach
    /// the disk.
    ///
    /// # Errors
    /// [`Error::Io`] on failure; the segment then stays active.
    pub fn seal_unsynced(&self) -> Result<()> {
        let mut ws = self.writer.lock();
        self.write_out_locked(&mut ws)?;
        self.flush_indexes_locked(&ws, false)?;
        let size = self.size();
        if self.file.len().at(&self.log_path)? != size {
            self.file.set_len(size).at(&self.log_path)?;
        }
        self.sealed.store(true, Ordering::Release);
        Ok(())
    }

    /// Write the indexes (with the final maximum-timestamp entry) and optionally sync them.
    ///
    /// # Errors
    /// [`Error::Io`] on failure.
    pub fn flush_indexes(&self, sync: bool) -> Result<()> {
        let ws = self.writer.lock();
        self.flush_indexes_locked(&ws, sync)
    }

    pub(super) fn flush_indexes_locked(&self, ws: &WriteState, sync: bool) -> Result<()> {
        let mut guard = self.indexes.write();
        if let Some(idx) = guard.as_mut() {
            let max_ts = self.max_timestamp.load(Ordering::Acquire);
            if max_ts != i64::MIN && idx.time.last_entry().is_none_or(|e| max_ts > e.timestamp) {
                idx.time.append_final(max_ts, ws.max_timestamp_offset)?;
            }
            idx.offset.flush(sync)?;
            idx.time.flush(sync)?;
        }
        Ok(())
    }

    /// Make the index entries made so far durable, holding the writer lock only to write them to
    /// the page cache (appends never wait for the `fdatasync`s): what a partition does before it
    /// records a recovery point in its active segment, so that recovery after a crash rescans the
    /// segment only from the last entry below that point.
    ///
    /// # Errors
    /// [`Error::Io`] on a failed write or sync (the caller must not record the recovery point).
    pub(crate) fn sync_indexes(&self) -> Result<()> {
        let (offset, time) = {
            let _ws = self.writer.lock();
            let mut guard = self.indexes.write();
            let Some(idx) = guard.as_mut() else {
                return Ok(());
            };
            if idx.offset.is_mapped() {
                return Ok(()); // sealed: its files are final and synced with the segment
            }
            (idx.offset.write_for_sync()?, idx.time.write_for_sync()?)
        };
        for (len, path) in [(offset, &self.index_path), (time, &self.time_index_path)] {
            if len.is_some() {
                // By path: the file of an active segment's index is only ever written by path.
                let file = self.fs.open(path, OpenMode::Create).at(path)?;
                file.sync_data().at(path)?;
            }
        }
        let mut guard = self.indexes.write();
        if let Some(idx) = guard.as_mut() {
            if let Some(written) = offset {
                idx.offset.mark_synced(written);
            }
            if let Some(written) = time {
                idx.time.mark_synced(written);
            }
        }
        Ok(())
    }

    /// Make the `.log` durable, its length included (`fsync`), whatever its state: for a segment
    /// recovered without syncing that stays active.
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails.
    pub(crate) fn sync_log(&self) -> Result<()> {
        self.file.sync_all().at(&self.log_path)
    }

    /// Make the `.log`'s data durable (`fdatasync`).
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails. Never retry: treat the data as lost.
    pub fn sync(&self) -> Result<()> {
        let ws = self.writer.lock();
        // Sealing happens under the writer lock: decided under it, a roll cannot slip in between
        // (writing ahead into a sealed, trimmed file would leave zeros inside its length).
        if self.is_sealed() {
            drop(ws);
            // A segment sealed without syncing: its indexes (written unsynced) must be durable
            // before a recovery point past it makes the next open trust them, and the cut of its
            // preallocated tail must be too.
            self.flush_indexes(true)?;
            self.file.sync_all().at(&self.log_path)
        } else {
            let mut ws = ws;
            self.write_out_locked(&mut ws)?;
            self.zero_ahead(&mut ws)?;
            drop(ws);
            self.file.sync_data().at(&self.log_path)
        }
    }

    /// Before a sync of a preallocated active segment: make sure the bytes after the data (as many
    /// as the data, from 64 KiB to [`ZERO_AHEAD`]) are zeros really written to the file (not a
    /// hole), so that the syncs of
    /// the appends going there write only their data, not the allocation of new blocks too
    /// (measured on ext4: about 10% off each `fdatasync` of a small append, against a sparse
    /// preallocated file). Written at most once per half [`ZERO_AHEAD`] of data, and made
    /// durable by the sync that follows; appends that are never synced never pay for it.
    fn zero_ahead(&self, ws: &mut WriteState) -> Result<()> {
        let end = self.size.load(Ordering::Acquire);
        let cap = self.config.preallocate_bytes;
        // As far ahead as there is data already (at least 64 KiB, at most ZERO_AHEAD): a
        // near-empty partition takes 64 KiB of real blocks, not a whole MiB.
        let ahead = end.clamp(64 << 10, ZERO_AHEAD);
        if self.is_sealed() || cap == 0 || end >= cap || ws.zeroed >= end + ahead / 2 {
            return Ok(());
        }
        let from = ws.zeroed.max(end);
        let to = (end + ahead).min(cap);
        if to <= from {
            return Ok(());
        }
        let zeros = vec![0u8; (to - from) as usize];
        self.write_at(ws, &zeros, from)?;
        ws.zeroed = to;
        Ok(())
    }

    /// Cut the preallocated tail of an active segment's `.log` (for a clean shutdown, so the next
    /// open can trust the file length).
    ///
    /// # Errors
    /// [`Error::Io`] on failure.
    pub fn trim(&self) -> Result<()> {
        let mut ws = self.writer.lock();
        self.write_out_locked(&mut ws)?;
        let size = self.size();
        if self.file.len().at(&self.log_path)? != size {
            self.file.set_len(size).at(&self.log_path)?;
        }
        self.file.sync_all().at(&self.log_path)
    }

    /// Give the `.log` a fresh file with the same bytes (copy, sync, rename over it), so that a
    /// recovery that rescans it may cut it in place: maps of the old file, which readers holding
    /// `self` may still read, keep the old file and never see it shrink (which would raise SIGBUS).
    /// Nothing of `self` changes; what the write buffer holds is not written.
    ///
    /// # Errors
    /// [`Error::Io`] on failure (the old file is then still in place).
    pub fn detach_from_maps(&self) -> Result<()> {
        self.keep_for_readers()?;
        let len = self.file.len().at(&self.log_path)?;
        self.replace_with_prefix(len)
    }

    /// Copy the `.log`'s first `len` bytes into a fresh file (synced) and rename it over the
    /// `.log`: the old inode, and every map of it, stays as it was.
    fn replace_with_prefix(&self, len: u64) -> Result<()> {
        let mut tmp = self.log_path.as_os_str().to_owned();
        tmp.push(".truncating");
        let tmp = PathBuf::from(tmp);
        {
            let out = self.fs.open(&tmp, OpenMode::Create).at(&tmp)?;
            out.set_len(0).at(&tmp)?;
            let mut pos = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            while pos < len {
                let n = ((len - pos) as usize).min(buf.len());
                self.file
                    .read_exact_at(&mut buf[..n], pos)
                    .at(&self.log_path)?;
                out.write_all_at(&buf[..n], pos).at(&tmp)?;
                pos += n as u64;
            }
            out.sync_all().at(&tmp)?;
        }
        self.fs.rename(&tmp, &self.log_path).at(&self.log_path)
    }

    /// Copy the batches below `offset` into a fresh file that replaces this segment's `.log` by
    /// rename (never shrinking a file that may be mapped), and open the result as an active
    /// segment. Readers holding `self` keep reading the old file.
    ///
    /// # Errors
    /// [`Error::Io`] on failure.
    pub fn truncated_copy(&self, dir: &Path, offset: u64) -> Result<Segment> {
        self.write_out()?;
        // The segment cache (issue 13) may have closed the file: hold a map for readers first.
        self.keep_for_readers()?;
        let cut = self
            .position_of(offset)?
            .map_or(self.size(), |(pos, _)| pos);
        self.replace_with_prefix(cut)?;
        // Indexes are rebuilt from the copied log and written by rename when flushed.
        let config = SegmentConfig {
            recovery: Recovery::TruncateCorrupt,
            ..self.config
        };
        let (seg, _) = Segment::recover_segment(
            self.fs.clone(),
            dir,
            self.base_offset,
            config,
            0,
            true,
            &mut crate::progress::Meter::off(),
        )?;
        seg.flush_indexes(true)?;
        self.fs.sync_dir(dir).at(dir)?;
        Ok(seg)
    }

    /// Delete the files of the segment at `base_offset` in `dir` without opening it (what is
    /// missing already is fine). The caller syncs the directory.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be removed.
    pub(crate) fn delete_files(fs: &dyn FileSystem, dir: &Path, base_offset: u64) -> Result<()> {
        for kind in [
            SegmentFileKind::Log,
            SegmentFileKind::OffsetIndex,
            SegmentFileKind::TimeIndex,
        ] {
            remove_if_exists(fs, &segment_file_name(dir, base_offset, kind))?;
        }
        Ok(())
    }

    /// Delete the segment's files. Readers holding the segment keep reading it (open handles and
    /// maps survive the unlink). The caller syncs the directory.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be removed.
    pub fn delete(&self) -> Result<()> {
        // The segment cache (issue 13) may have closed the file: hold a map for readers first.
        self.keep_for_readers()?;
        // Under the index lock, so a reader loading indexes now cannot write them back after.
        let _guard = self.indexes.write();
        self.deleted.store(true, Ordering::Release);
        for path in [&self.log_path, &self.index_path, &self.time_index_path] {
            remove_if_exists(&*self.fs, path)?;
        }
        Ok(())
    }
}

/// First preallocation step of an active segment's file. Each later step doubles the file, by at
/// most [`PREALLOCATE_MAX_STEP`], never past the configured cap (`segment_bytes`): a near-empty
/// segment takes little space even where files cannot be sparse, and a growing one changes its
/// file length (which an `fdatasync` must then also commit) only once per step. Redpanda's
/// appender grows its files the same way.
pub(crate) const PREALLOCATE_FIRST_STEP: u64 = 256 << 10;
/// The largest preallocation step.
pub(crate) const PREALLOCATE_MAX_STEP: u64 = 64 << 20;

/// A batch at least this large is written at once (after what the write buffer holds), not
/// copied into the buffer.
pub(crate) const DIRECT_WRITE_BYTES: usize = 64 << 10;

/// How far past its data a synced, preallocated active segment keeps real zeros written (see
/// `Segment::zero_ahead`).
pub(crate) const ZERO_AHEAD: u64 = 1 << 20;

/// The length to preallocate a file of `current` bytes to so that it holds `needed` bytes, with
/// preallocation capped at `cap` (0: no preallocation, the file grows by its writes): `current`
/// itself when it already holds them or when they pass the cap.
pub(crate) fn next_allocation(current: u64, needed: u64, cap: u64) -> u64 {
    if cap == 0 || needed > cap || (needed <= current && current > 0) {
        return current;
    }
    let step = current.clamp(PREALLOCATE_FIRST_STEP, PREALLOCATE_MAX_STEP);
    needed.max(current + step).min(cap)
}

#[cfg(test)]
mod allocation_tests {
    use super::*;

    #[test]
    fn preallocation_starts_small_doubles_and_stops_at_its_step_and_cap() {
        let gib = 1 << 30;
        assert_eq!(next_allocation(0, 0, gib), PREALLOCATE_FIRST_STEP);
        assert_eq!(
            next_allocation(0, 0, 4096),
            4096,
            "capped by a small segment"
        );
        assert_eq!(next_allocation(256 << 10, 300 << 10, gib), 512 << 10);
        assert_eq!(next_allocation(512 << 10, 513 << 10, gib), 1 << 20);
        assert_eq!(next_allocation(64 << 20, 65 << 20, gib), 128 << 20);
        assert_eq!(
            next_allocation(512 << 20, 513 << 20, gib),
            576 << 20,
            "64 MiB steps"
        );
        assert_eq!(
            next_allocation(1000 << 20, 1001 << 20, gib),
            gib,
            "never past the cap"
        );
        assert_eq!(next_allocation(100, 5000, 0), 100, "no preallocation");
        assert_eq!(
            next_allocation(gib, gib + 1, gib),
            gib,
            "past the cap the writes grow it"
        );
        assert_eq!(
            next_allocation(1 << 20, 10 << 20, gib),
            10 << 20,
            "at least what is needed"
        );
        assert_eq!(
            next_allocation(1 << 20, 4096, gib),
            1 << 20,
            "already holds it"
        );
    }
}
