//! Truncation: removing every record from an offset on.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

use super::cleaner_checkpoint::CleanerCheckpoint;
use super::producer_state::ProducerTable;
use super::{map_active, Inner, Partition, Writer};

impl Partition {
    /// Remove every record at or after `offset`. A batch that contains `offset` is removed whole
    /// (as in Kafka), so the new end offset can be below `offset`; it is returned. Truncating at or
    /// past the end is a no-op. If the cut would fall below the log start offset (the batch
    /// holding `offset` straddles it), the log goes on empty at the start offset, like Kafka's
    /// `truncateFullyAndStartAt`.
    ///
    /// On a compacted log, truncation does not bring back values compaction removed because a
    /// newer value of the key followed, even if that newer value is now truncated.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the start offset; [`Error::Poisoned`]/[`Error::Closed`];
    /// [`Error::Io`] (which poisons the partition).
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        let inner = &*self.inner;
        let mut cleaner = inner.cleaner.lock();
        let mut w = inner.writer.lock();
        inner.check_writable()?;
        let end = inner.end_offset.load(Ordering::SeqCst);
        let start = inner.start_offset.load(Ordering::Acquire);
        if offset >= end {
            return Ok(end);
        }
        if offset < start {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        inner
            .truncate_locked(&mut w, &mut cleaner, offset)
            .inspect_err(|e| inner.poison(e))
    }
}

impl Inner {
    pub(super) fn truncate_locked(
        &self,
        w: &mut Writer,
        cleaner: &mut CleanerCheckpoint,
        offset: u64,
    ) -> Result<u64> {
        // Odd while it runs: a recovery point read before it must not be written after it.
        self.truncations.fetch_add(1, Ordering::SeqCst);
        self.tail_begin_change();
        let result = self.cut_locked(w, cleaner, offset);
        if result.is_err() {
            // The segment may already have cut its published size: never advertise offsets
            // that reads can no longer find.
            let left = w.active.next_offset();
            self.end_offset.fetch_min(left, Ordering::SeqCst);
            self.visible_end.fetch_min(left, Ordering::SeqCst);
        }
        self.tail_end_change();
        self.truncations.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn cut_locked(
        &self,
        w: &mut Writer,
        cleaner: &mut CleanerCheckpoint,
        offset: u64,
    ) -> Result<u64> {
        // Rare: settle rolled segments first rather than track which of them survive.
        for seg in std::mem::take(&mut *self.unsynced_sealed.lock()) {
            seg.sync()?;
        }
        let segments = self.segments.read().clone();
        let keep = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        let target = segments[keep].clone();
        // Lower the recovery point before cutting anything, so a crash mid-truncation rescans
        // the cut region instead of judging its zeros to be damage below the durable point.
        self.update_checkpoint(|cp| {
            cp.recovery_point = cp.recovery_point.min(target.base_offset());
        })?;
        // The cleaner forgets what it knew about the cut offsets.
        {
            let mut next = cleaner.clone();
            // The batch holding `offset` goes whole, so the cut can land anywhere in the target
            // segment: forget from its base.
            if next.truncate(target.base_offset()) {
                next.write(&*self.fs, &self.dir)?;
                *cleaner = next;
            }
        }
        // Newest first, each made durable before the next: a crash leaves a prefix of segments.
        for seg in segments[keep + 1..].iter().rev() {
            seg.delete()?;
            self.fs.sync_dir(&self.dir).at(&self.dir)?;
        }
        let active = if target.is_sealed() || target.is_mapped() {
            let seg = Arc::new(target.truncated_copy(&self.dir, offset)?);
            map_active(&self.config(), &seg);
            seg
        } else {
            target.truncate_to(offset)?;
            target
        };
        self.fs.sync_dir(&self.dir).at(&self.dir)?;
        let new_end = active.next_offset();
        {
            let mut list = segments[..keep].to_vec();
            list.push(active.clone());
            *self.segments.write() = Arc::new(list);
        }
        w.active = active;
        self.end_offset.store(new_end, Ordering::SeqCst);
        if w.tracks_producers {
            // Forget the cut batches; on disk, restart from an empty snapshot at the log start
            // (the next unclean open rescans), since what is left need not be durable yet.
            w.producers.truncate(new_end);
            *self.pending_snapshot.lock() = None;
            w.snapshot_wanted = false;
            let start = self.start_offset.load(Ordering::Acquire);
            ProducerTable::default().write(&*self.fs, &self.dir, start)?;
        }
        {
            let mut st = self.sync.lock();
            st.synced = st.synced.min(new_end);
            st.generation += 1;
            self.synced_hint.store(st.synced, Ordering::Release);
        }
        // Truncation is the one place visibility moves backwards.
        let mut pending = self.pending.lock();
        pending.retain(|&base, _| base < new_end);
        let visible = pending
            .keys()
            .next()
            .copied()
            .unwrap_or(new_end)
            .min(new_end);
        self.visible_end.store(visible, Ordering::SeqCst);
        drop(pending);
        let start = self.start_offset.load(Ordering::Acquire);
        self.update_checkpoint(|cp| {
            cp.log_start_offset = start;
            cp.recovery_point = cp.recovery_point.min(new_end);
        })?;
        if new_end < start {
            // The batch holding `offset` straddled the log start (or compaction left a gap down
            // to it): all that is left lies below the start. Go on with an empty segment at the
            // start offset, as Kafka's truncateFullyAndStartAt does, so offsets never go below
            // the start; the segments below it go with the next retention pass (or open).
            self.end_offset.store(start, Ordering::SeqCst);
            self.roll(w)?;
            self.publish(start);
            return Ok(start);
        }
        Ok(new_end)
    }
}
