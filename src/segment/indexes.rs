//! The indexes: mapped lazily for a sealed segment, checked against the log before they are
//! trusted, and rebuilt from the log when a check fails (they are derived data).

use crate::error::{Error, Result};
use crate::format::{BatchHeader, BATCH_HEADER_LEN};
use parking_lot::RwLockWriteGuard;
use std::sync::atomic::Ordering;

use super::window::WindowReader;
use super::{
    track_max_timestamp, Indexes, OffsetIndex, OffsetPosition, Segment, TimeIndex, TimestampOffset,
    WriteState,
};

impl Segment {
    /// Run `f` on the indexes, mapping a sealed segment's indexes first if needed.
    pub(super) fn with_indexes<R>(&self, f: impl FnOnce(&Indexes) -> R) -> Result<R> {
        self.lazy.touch();
        {
            let guard = self.indexes.read();
            if let Some(i) = guard.as_ref() {
                return Ok(f(i));
            }
        }
        let mut guard = self.indexes.write();
        if guard.is_none() {
            *guard = Some(self.load_sealed_indexes()?);
        }
        let guard = RwLockWriteGuard::downgrade(guard);
        match guard.as_ref() {
            Some(i) => Ok(f(i)),
            None => unreachable!("indexes loaded above"),
        }
    }

    pub(super) fn load_sealed_indexes(&self) -> Result<Indexes> {
        let size = self.size();
        // Called under the index lock, which deletion takes to set the flag: unset, the index
        // files are still this segment's. Set, they may be gone or a replacement's: rebuild from
        // the log (held, or refused cleanly), never trust what is there now.
        if self.deleted.load(Ordering::SeqCst) {
            let (idx, _) = self.scan_build(size)?;
            return Ok(idx);
        }
        let max = self.config.max_index_bytes as usize;
        let offset = OffsetIndex::map(self.fs.clone(), &self.index_path, self.base_offset, max)?;
        let time = TimeIndex::map(
            self.fs.clone(),
            &self.time_index_path,
            self.base_offset,
            max,
        )?;
        if self.offset_index_matches(&offset, size)
            && self.time_index_matches(&time, &offset, size, self.next_offset())
        {
            return Ok(Indexes { offset, time });
        }
        // Damaged or missing: rebuild from the log and replace the files (by rename, so a map of
        // the old file held elsewhere stays valid).
        let (mut idx, _) = self.scan_build(size)?;
        if !self.deleted.load(Ordering::Acquire) {
            idx.offset.flush(true)?;
            idx.time.flush(true)?;
        }
        Ok(idx)
    }

    /// Cheap checks that an offset index describes this log: entries in bounds and increasing, the
    /// file present when the log has data, no entry at position 0 (the writer never makes one),
    /// and the last entry pointing at a batch with exactly that last offset (Kafka's rule).
    pub(super) fn offset_index_matches(&self, offset: &OffsetIndex, size: u64) -> bool {
        if offset.sanity_check(size).is_err() {
            return false;
        }
        if size > 0 && !self.fs.exists(&self.index_path).unwrap_or(false) {
            // A failed lookup also means "rebuild": the index is derived data.
            return false;
        }
        if offset.entry(0).is_some_and(|e| e.position == 0) {
            return false;
        }
        if offset.is_empty() {
            return true;
        }
        let last = offset.last_entry();
        let mut reader = WindowReader::new(self.source(), BATCH_HEADER_LEN, size);
        matches!(reader.header_at(u64::from(last.position), &self.log_path),
            Ok(h) if h.last_offset() == last.offset)
    }

    /// Cheap checks that a time index describes this log: increasing entries below `next_offset`,
    /// at least the final maximum-timestamp entry when the log has data, and the last entry naming a
    /// batch whose maximum timestamp is exactly that entry's timestamp.
    pub(super) fn time_index_matches(
        &self,
        time: &TimeIndex,
        offset: &OffsetIndex,
        size: u64,
        next_offset: u64,
    ) -> bool {
        if time.sanity_check(next_offset).is_err() {
            return false;
        }
        let Some(last) = time.last_entry() else {
            return size == 0;
        };
        let mut pos = u64::from(offset.lookup(last.offset).position);
        let mut reader = WindowReader::new(self.source(), 64 << 10, size);
        while pos < size {
            let Ok(h) = reader.header_at(pos, &self.log_path) else {
                return false;
            };
            if h.last_offset() == last.offset {
                if h.max_timestamp != last.timestamp {
                    return false;
                }
                // The last entry must hold the segment's maximum: a cut-back index would make the
                // segment look older than it is. Check the headers after it.
                pos += h.total_len() as u64;
                while pos < size {
                    let Ok(h) = reader.header_at(pos, &self.log_path) else {
                        return false;
                    };
                    if h.record_count > 0 && h.max_timestamp > last.timestamp {
                        return false;
                    }
                    pos += h.total_len() as u64;
                }
                return true;
            }
            if h.last_offset() > last.offset {
                return false;
            }
            pos += h.total_len() as u64;
        }
        false
    }

    /// Empty indexes (to be filled by a scan) and the matching write bookkeeping.
    pub(super) fn empty_indexes(&self) -> (Indexes, WriteState) {
        let max = self.config.max_index_bytes as usize;
        let idx = Indexes {
            offset: OffsetIndex::create(self.fs.clone(), &self.index_path, self.base_offset, max),
            time: TimeIndex::create(
                self.fs.clone(),
                &self.time_index_path,
                self.base_offset,
                max,
            ),
        };
        let ws = WriteState {
            max_timestamp_offset: self.base_offset,
            ..WriteState::default()
        };
        (idx, ws)
    }

    /// Scan `[0, limit)` and build fresh indexes (strict: any invalid batch is corruption).
    pub(super) fn scan_build(&self, limit: u64) -> Result<(Indexes, WriteState)> {
        let (mut idx, mut ws) = self.empty_indexes();
        let mut max_ts = i64::MIN;
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let mut reader = WindowReader::new(self.source(), 1 << 20, limit);
        while pos < limit {
            let h = reader.checked_header_at(pos, &self.log_path)?;
            self.check_follows(&h, expected, pos)?;
            self.index_batch(&mut idx, &mut ws, &mut max_ts, &h, pos)
                .map_err(|e| self.index_error_is_damage(e, pos))?;
            pos += h.total_len() as u64;
            expected = h.next_offset();
        }
        if max_ts != i64::MIN {
            let _ = idx.time.append_final(max_ts, ws.max_timestamp_offset);
        }
        Ok((idx, ws))
    }

    /// Account a batch at `pos` in the indexes (the same rule on append, recovery and rebuild),
    /// Kafka's (`LogSegment.append`/`recover`): once more than `index_interval_bytes` were written
    /// since the last entry, the next batch gets an offset entry (its last offset, its position)
    /// and the time index an entry for the maximum timestamp so far, if that grew.
    pub(super) fn index_batch(
        &self,
        idx: &mut Indexes,
        ws: &mut WriteState,
        max_ts: &mut i64,
        h: &BatchHeader,
        pos: u64,
    ) -> Result<()> {
        track_max_timestamp(ws, max_ts, h);
        // A full index takes no more entries (the partition rolls before appending to such a
        // segment; recovery under a smaller limit just indexes less). The final maximum-timestamp
        // entry may still go past the limit (`TimeIndex::append_final`).
        if ws.bytes_since_index > u64::from(self.config.index_interval_bytes) {
            if !idx.offset.is_full() {
                idx.offset.append(h.last_offset(), pos as u32)?;
            }
            if *max_ts != i64::MIN && !idx.time.is_full() {
                idx.time.append(*max_ts, ws.max_timestamp_offset)?;
            }
            ws.bytes_since_index = 0;
        }
        ws.bytes_since_index += h.total_len() as u64;
        Ok(())
    }

    /// An index that rejects an entry made from bytes read off the disk means the bytes are
    /// damaged (the writer never makes such entries): report the data, not the index.
    pub(super) fn index_error_is_damage(&self, e: Error, pos: u64) -> Error {
        match e {
            Error::IndexAppend { reason, .. } => Error::corrupt(&self.log_path, pos, reason),
            e => e,
        }
    }

    /// Recompute end offset, maximum timestamp and index bookkeeping by reading the batches after
    /// the last offset index entry.
    pub(super) fn rescan_tail(&self) -> Result<()> {
        let mut ws = self.writer.lock();
        let limit = self.size();
        let mut guard = self.indexes.write();
        let Some(idx) = guard.as_mut() else {
            return Ok(());
        };
        let last = idx.offset.last_entry();
        let mut max_ts = idx.time.last_entry().map_or(i64::MIN, |e| e.timestamp);
        ws.max_timestamp_offset = idx.time.last_entry().map_or(self.base_offset, |e| e.offset);
        let mut pos = u64::from(last.position);
        let mut next = self.base_offset;
        let mut since = 0u64;
        let mut reader = WindowReader::new(self.source(), 1 << 20, limit);
        // The batch at the last entry ends at the entry's offset (Kafka's rule); it starts where
        // its (checksummed) header says, which the batches after it must continue exactly.
        let mut expected = if pos == 0 {
            self.base_offset
        } else {
            let h = reader.verified_header_at(pos, &self.log_path)?;
            if h.last_offset() != last.offset {
                return Err(Error::corrupt(
                    &self.log_path,
                    pos,
                    format!(
                        "the offset index's last entry names offset {} but the batch there ends at {}",
                        last.offset,
                        h.last_offset()
                    ),
                ));
            }
            h.base_offset
        };
        while pos < limit {
            // Verified: the end offset of the whole log comes from these headers.
            let h = reader.verified_header_at(pos, &self.log_path)?;
            self.check_follows(&h, expected, pos)?;
            expected = h.next_offset();
            if h.max_timestamp > max_ts && h.record_count > 0 {
                max_ts = h.max_timestamp;
                ws.max_timestamp_offset = h.last_offset();
            }
            since += h.total_len() as u64;
            next = h.next_offset();
            pos += h.total_len() as u64;
        }
        if pos != limit {
            return Err(Error::corrupt(
                &self.log_path,
                pos,
                "last batch extends past the end of the log",
            ));
        }
        ws.bytes_since_index = since;
        if limit > 0 {
            self.next_offset
                .store(next.max(last.offset), Ordering::Release);
        } else {
            self.next_offset.store(self.base_offset, Ordering::Release);
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        Ok(())
    }

    pub(super) fn rebuild_indexes(&self) -> Result<()> {
        self.write_out()?;
        let (idx, mut ws) = self.scan_build(self.size())?;
        let mut w = self.writer.lock();
        ws.allocated = w.allocated;
        ws.zeroed = w.zeroed;
        *w = ws;
        *self.indexes.write() = Some(idx);
        drop(w);
        self.rescan_tail()
    }

    /// Map (and verify) a sealed segment's indexes now, so that readers holding the segment never
    /// need its index files again (they may be about to be deleted or replaced).
    ///
    /// # Errors
    /// [`Error::Io`]/[`Error::Corrupt`] if the indexes cannot be loaded or rebuilt.
    pub(crate) fn load_indexes(&self) -> Result<()> {
        self.with_indexes(|_| ())
    }

    /// Read-lock the indexes for inspection in tests and tools.
    #[doc(hidden)]
    pub fn index_entries(&self) -> Result<(Vec<OffsetPosition>, Vec<TimestampOffset>)> {
        self.with_indexes(|i| {
            (
                (0..i.offset.len())
                    .filter_map(|n| i.offset.entry(n))
                    .collect(),
                (0..i.time.len()).filter_map(|n| i.time.entry(n)).collect(),
            )
        })
    }
}
