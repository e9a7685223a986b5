//! Durability: group commit (one `fdatasync` for every append waiting on it), flushes, and the
//! recovery point written to the checkpoint.

use std::sync::atomic::Ordering;

#[cfg(doc)]
use crate::error::Error;
use crate::error::{IoContext, Result};

use crate::config::Durability;

use super::{Inner, Partition};

impl Partition {
    /// Make every appended record durable now and record the recovery point, whatever the
    /// configured durability.
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails (the partition is then poisoned); [`Error::Poisoned`].
    pub fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let end = inner.end_offset.load(Ordering::SeqCst);
        inner.sync_to(end)?;
        inner
            .write_recovery_point(end)
            .inspect_err(|e| inner.poison(e))
    }

    /// Periodic maintenance: under [`Durability::Interval`], sync if the interval has passed and
    /// data is unsynced. Returns whether it synced. A background task calls this periodically.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn flush_if_due(&self) -> Result<bool> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let config = inner.config();
        let now = inner.clock.now_ms();
        if let Some((offset, mut table)) = inner.pending_snapshot.lock().take() {
            table.remove_expired(now, config.producer_id_expiration);
            table
                .write(&*inner.fs, &inner.dir, offset)
                .inspect_err(|e| inner.poison(e))?;
        }
        // Idle producers expire (looked for at most once a minute of the partition's clock; an
        // append from an expired one is taken as new at once either way).
        let last_expiry = inner.last_expiry_ms.load(Ordering::Acquire);
        if now.saturating_sub(last_expiry) >= 60_000 {
            inner.last_expiry_ms.store(now, Ordering::Release);
            let mut w = inner.writer.lock();
            if !w.producers.is_empty() {
                w.producers
                    .remove_expired(now, config.producer_id_expiration);
            }
        }
        let since_sync = now.saturating_sub(inner.last_sync_ms.load(Ordering::Acquire));
        let due = match config.durability {
            Durability::Interval(d) => since_sync >= d.as_millis() as i64,
            Durability::Always | Durability::None | Durability::EveryMessages(_) => false,
        };
        let end = inner.end_offset.load(Ordering::SeqCst);
        let synced = inner.sync.lock().synced;
        // Rolled segments are synced in the background, like Kafka's flush of a rolled segment,
        // so the recovery point keeps up even when appends do not sync.
        let rolled = !inner.unsynced_sealed.lock().is_empty();
        if (due && synced < end) || rolled {
            self.flush()?;
            return Ok(true);
        }
        // Group commits made records durable: record that in the checkpoint, at once when they
        // made sealed segments durable, otherwise every `recovery_point_interval`. Recovery
        // treats damage below the recovery point as damage, never as a torn tail to cut.
        let active_base = inner.writer.lock().active.base_offset();
        let recovery_point = inner.checkpoint.lock().recovery_point;
        let durable = synced.min(end);
        let interval =
            i64::try_from(config.recovery_point_interval.as_millis()).unwrap_or(i64::MAX);
        let since = now.saturating_sub(inner.last_recovery_point_ms.load(Ordering::Acquire));
        let sealed_durable = recovery_point < active_base && synced >= active_base;
        if durable > recovery_point && (sealed_durable || since >= interval) {
            inner
                .write_recovery_point(durable)
                .inspect_err(|e| inner.poison(e))?;
        }
        Ok(false)
    }
}

impl Inner {
    /// Everything below `synced` is durable: appends waiting for it are done; publish up to the
    /// next one still waiting (or the log end).
    pub(super) fn release_pending(&self, synced: u64) {
        let mut pending = self.pending.lock();
        while let Some((&base, &end)) = pending.iter().next() {
            if end > synced {
                break;
            }
            pending.remove(&base);
        }
        let visible = pending
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.end_offset.load(Ordering::SeqCst));
        drop(pending);
        self.publish(visible);
    }

    pub(super) fn write_recovery_point(&self, point: u64) -> Result<()> {
        let start = self.start_offset.load(Ordering::Acquire);
        self.update_checkpoint(|cp| {
            cp.log_start_offset = start;
            cp.recovery_point = point;
        })?;
        self.last_recovery_point_ms
            .store(self.clock.now_ms(), Ordering::Release);
        Ok(())
    }

    /// Wait until every offset below `target` is durable, syncing as the group-commit leader if
    /// no sync is in flight.
    pub(super) fn sync_to(&self, target: u64) -> Result<()> {
        // Nothing past the log end can become durable (a caller's stale offset must not spin).
        let target = target.min(self.end_offset.load(Ordering::SeqCst));
        let mut st = self.sync.lock();
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                return Err(self.poison_error());
            }
            if st.synced >= target {
                return Ok(());
            }
            if st.leader {
                self.sync_done.wait(&mut st);
                continue;
            }
            st.leader = true;
            let generation = st.generation;
            drop(st);
            // Under the append lock, so no roll or append slips in: everything below `end` is in
            // `active` or in a sealed segment that is either already synced or in `sealed`.
            let (end, active, sealed, snapshot, dir_unsynced) = {
                let mut w = self.writer.lock();
                let sealed = std::mem::take(&mut *self.unsynced_sealed.lock());
                let dir_unsynced = self.dir_unsynced.swap(false, Ordering::SeqCst);
                // A producer snapshot as of `end`, valid once this sync succeeds.
                let snapshot = std::mem::take(&mut w.snapshot_wanted).then(|| w.producers.clone());
                (
                    self.end_offset.load(Ordering::SeqCst),
                    w.active.clone(),
                    sealed,
                    snapshot,
                    dir_unsynced,
                )
            };
            // Rolled segments' data, then the directory entries of the segments created since
            // the last sync, then the active segment.
            let result = sealed
                .iter()
                .try_for_each(|seg| seg.sync())
                .and_then(|()| {
                    if dir_unsynced {
                        self.fs.sync_dir(&self.dir).at(&self.dir)
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| active.sync());
            st = self.sync.lock();
            st.leader = false;
            match result {
                Ok(()) => {
                    if let Some(table) = snapshot.filter(|_| st.generation == generation) {
                        *self.pending_snapshot.lock() = Some((end, table));
                    }
                    if st.generation == generation {
                        st.synced = st.synced.max(end);
                        self.synced_hint.store(st.synced, Ordering::Release);
                        self.release_pending(st.synced);
                    }
                    self.last_sync_ms
                        .store(self.clock.now_ms(), Ordering::Release);
                    self.sync_done.notify_all();
                }
                Err(e) => {
                    self.sync_done.notify_all();
                    // After a failed fsync nothing written since the last good one can be
                    // vouched for (the kernel may have dropped the dirty pages).
                    let last_good = st.synced;
                    drop(st);
                    self.poison_at(&e, last_good);
                    return Err(e);
                }
            }
        }
    }
}
