//! Changing a segment: appends, sealing, syncing, truncation, deletion.

use crate::error::{Error, IoContext, Result};
use crate::format::{segment_file_name, BatchHeader, SegmentFileKind, MAX_SEGMENT_RELATIVE};
use crate::fs::remove_if_exists;
use crate::fs::{FileSystem, OpenMode};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{track_max_timestamp, Recovery, Segment, SegmentConfig, WriteState};

impl Segment {
    /// Read the active segment through a shared map of `len` bytes (which may exceed the file)
    /// instead of `pread`, where the file system supports it. Reads stay below the published size;
    /// from now on the segment must be truncated by [`truncated_copy`](Self::truncated_copy), never
    /// in place. Returns whether the segment is now mapped.
    ///
    /// # Errors
    /// [`Error::Io`] if mapping fails.
    pub fn map_active(&self, len: u64) -> Result<bool> {
        if self.map.get().is_some() {
            return Ok(true);
        }
        match self.file.map_growing(len).at(&self.log_path)? {
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
    /// # Errors
    /// [`Error::Io`] if the write fails: the batch is then not visible, and the caller must stop
    /// appending (the tail of the file is in an unknown state until recovery).
    /// [`Error::Corrupt`] if `batch` is not a well-formed batch header.
    pub fn append(&self, batch: &[u8], now_ms: i64) -> Result<()> {
        let h = BatchHeader::parse(batch)
            .map_err(|r| Error::corrupt(&self.log_path, self.size(), r))?;
        if self.is_sealed() {
            return Err(Error::io(
                &self.log_path,
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, "segment is sealed"),
            ));
        }
        let mut ws = self.writer.lock();
        let pos = self.size.load(Ordering::Acquire);
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
        self.file.write_all_at(batch, pos).at(&self.log_path)?;
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
        self.size.store(pos + batch.len() as u64, Ordering::Release);
        Ok(())
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
        let _ws = self.writer.lock();
        let Some((pos, base)) = self.position_of(offset)? else {
            return Ok(self.next_offset());
        };
        // Publish the smaller size first so no reader looks at bytes being removed.
        self.size.store(pos, Ordering::Release);
        self.next_offset
            .store(base.max(self.base_offset), Ordering::Release);
        self.file.set_len(pos).at(&self.log_path)?;
        if self.config.preallocate_bytes > pos {
            // Make the cut durable before re-extending, or a crash could keep the old bytes
            // behind zeros and resurrect them.
            self.file.sync_all().at(&self.log_path)?;
            self.file
                .set_len(self.config.preallocate_bytes)
                .at(&self.log_path)?;
        }
        self.file.sync_all().at(&self.log_path)?;
        {
            let mut guard = self.indexes.write();
            if let Some(idx) = guard.as_mut() {
                idx.offset.truncate_to(base);
                idx.time.truncate_to(base);
            }
        }
        drop(_ws);
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
        let ws = self.writer.lock();
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

    /// Make the `.log`'s data durable (`fdatasync`).
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails. Never retry: treat the data as lost.
    pub fn sync(&self) -> Result<()> {
        if self.is_sealed() {
            // A segment sealed without syncing: its indexes (written unsynced) must be durable
            // before a recovery point past it makes the next open trust them, and the cut of its
            // preallocated tail must be too.
            self.flush_indexes(true)?;
            self.file.sync_all().at(&self.log_path)
        } else {
            self.file.sync_data().at(&self.log_path)
        }
    }

    /// Cut the preallocated tail of an active segment's `.log` (for a clean shutdown, so the next
    /// open can trust the file length).
    ///
    /// # Errors
    /// [`Error::Io`] on failure.
    pub fn trim(&self) -> Result<()> {
        let _ws = self.writer.lock();
        let size = self.size();
        if self.file.len().at(&self.log_path)? != size {
            self.file.set_len(size).at(&self.log_path)?;
        }
        self.file.sync_all().at(&self.log_path)
    }

    /// Copy the batches below `offset` into a fresh file that replaces this segment's `.log` by
    /// rename (never shrinking a file that may be mapped), and open the result as an active
    /// segment. Readers holding `self` keep reading the old file.
    ///
    /// # Errors
    /// [`Error::Io`] on failure.
    pub fn truncated_copy(&self, dir: &Path, offset: u64) -> Result<Segment> {
        // The segment cache (issue 13) may have closed the file: hold a map for readers first.
        self.keep_for_readers()?;
        let cut = self
            .position_of(offset)?
            .map_or(self.size(), |(pos, _)| pos);
        let mut tmp = self.log_path.as_os_str().to_owned();
        tmp.push(".truncating");
        let tmp = PathBuf::from(tmp);
        {
            let out = self.fs.open(&tmp, OpenMode::Create).at(&tmp)?;
            out.set_len(0).at(&tmp)?;
            let mut pos = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            while pos < cut {
                let n = ((cut - pos) as usize).min(buf.len());
                self.file
                    .read_exact_at(&mut buf[..n], pos)
                    .at(&self.log_path)?;
                out.write_all_at(&buf[..n], pos).at(&tmp)?;
                pos += n as u64;
            }
            out.sync_all().at(&tmp)?;
        }
        self.fs.rename(&tmp, &self.log_path).at(&self.log_path)?;
        // Indexes are rebuilt from the copied log and written by rename when flushed.
        let config = SegmentConfig {
            recovery: Recovery::TruncateCorrupt,
            ..self.config
        };
        let (seg, _) = Segment::recover_segment(self.fs.clone(), dir, self.base_offset, config, 0)?;
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
