//! Durability: group commit (one `fdatasync` for every append waiting on it), flushes, and the
//! recovery point written to the checkpoint.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

#[cfg(doc)]
use crate::error::Error;
use crate::error::{IoContext, Result};

use crate::config::Durability;

use super::{Inner, Partition};

impl Partition {
    /// Make every appended record durable now, whatever the configured durability: one
    /// `fdatasync` of the active segment when nothing else changed (segments rolled since the
    /// last sync, and the directory entries of new ones, are synced first), shared with any
    /// concurrent sync, so that "append buffered, flush per batch" costs what
    /// [`Durability::Always`] does.
    ///
    /// The recovery point in the checkpoint follows off this path, as in Kafka: at once when the
    /// sync made rolled segments durable, else within
    /// [`recovery_point_interval`](crate::LogConfig::recovery_point_interval), and at close (see
    /// [`flush_if_due`](Self::flush_if_due)). Everything `flush` returned for survives a crash
    /// either way; the recovery point only decides whether damage found later in records synced
    /// since is reported or cut like a torn tail.
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails (the partition is then poisoned); [`Error::Poisoned`].
    pub fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let end = inner.end_offset.load(Ordering::SeqCst);
        inner.sync_to(end)
    }

    /// How many group commits (each one `fdatasync` of the active segment, shared by every append
    /// and flush waiting for it) this handle's partition made since it was opened. With
    /// [`Durability::Always`] and concurrent appenders, appends divided by this is how many
    /// appends each `fdatasync` carried.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Partition, Record};
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?; // Durability::Always
    /// log.append(Record::new("a"))?;
    /// log.append(Record::new("b"))?;
    /// assert_eq!(log.sync_count(), 2, "one fdatasync per append without concurrency");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync_count(&self) -> u64 {
        self.inner.sync.lock().rounds
    }

    /// [`flush`](Self::flush), then record the recovery point in the checkpoint at once (an atomic
    /// replace: two fsyncs and a directory sync), so that recovery after a crash treats damage to
    /// any record synced so far as damage, never as a torn tail. What [`Topic::flush`] and
    /// [`Store::flush`] do for each partition, and what compaction does before it reads.
    ///
    /// [`Topic::flush`]: crate::Topic::flush
    /// [`Store::flush`]: crate::Store::flush
    ///
    /// # Errors
    /// As [`flush`](Self::flush); the partition is poisoned if the checkpoint cannot be written.
    pub fn flush_checkpoint(&self) -> Result<()> {
        self.flush()?;
        let inner = &*self.inner;
        let durable = inner
            .sync
            .lock()
            .synced
            .min(inner.end_offset.load(Ordering::SeqCst));
        inner
            .write_recovery_point(durable)
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
        // Appends waiting in the write buffer go to the file (the OS page cache) at least once per
        // maintenance tick, which bounds what a process crash can take of them.
        let active = inner.writer.lock().active.clone();
        active.write_out().inspect_err(|e| inner.poison(e))?;
        inner.publish_tail();
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
            inner.sync_to(end)?;
            inner
                .write_recovery_point(end)
                .inspect_err(|e| inner.poison(e))?;
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

    /// Record `point` (everything below it synced) as the recovery point, after making the active
    /// segment's index entries durable (without holding the append lock across their syncs), so
    /// that recovery after a crash rescans that segment only from its last entry below the point.
    ///
    /// Does nothing while a truncation runs, or if one ran since `point` was read: it lowers the
    /// recovery point itself, and a point from before it would vouch for offsets it rewrote.
    pub(super) fn write_recovery_point(&self, point: u64) -> Result<()> {
        let truncations = self.truncations.load(Ordering::SeqCst);
        if truncations % 2 == 1 {
            return Ok(());
        }
        let point = point.min(self.sync.lock().synced);
        let active = self.writer.lock().active.clone();
        if point > active.base_offset() {
            active.sync_indexes()?;
        }
        self.record_recovery_point(point, Some(truncations))
    }

    /// Write `point` as the recovery point; the caller made the index entries below it durable.
    /// With `truncations`, only if no truncation started since that count was read.
    pub(super) fn record_recovery_point(&self, point: u64, truncations: Option<u64>) -> Result<()> {
        let start = self.start_offset.load(Ordering::Acquire);
        let mut cp = self.checkpoint.lock();
        // Under the checkpoint lock, which a truncation takes (after counting itself) to lower
        // the recovery point: it either saw no truncation, or the truncation lowers after it.
        if truncations.is_some_and(|t| t != self.truncations.load(Ordering::SeqCst)) {
            return Ok(());
        }
        let mut next = *cp;
        next.log_start_offset = start;
        next.recovery_point = point;
        if next != *cp {
            next.write(&*self.fs, &self.dir)?;
            *cp = next;
        }
        drop(cp);
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
            // Adaptive group commit (PostgreSQL's `commit_delay`, MySQL's
            // `binlog_group_commit_sync_delay`, without a fixed delay): the writers the last
            // sync released are appending again right now; let them queue up behind this one
            // (yielding, for at most half the last sync's time and 200 µs) so that one fdatasync
            // carries every durable append under way (at least as many as the last one did)
            // instead of the first alone. A lone writer never waits.
            let want = st
                .last_round_appends
                .max(self.durable_appends.load(Ordering::Acquire));
            let queued = || self.pending.lock().len();
            if want > 1 && queued() < want {
                let budget = (st.last_sync_time / 2).min(Duration::from_micros(200));
                let deadline = Instant::now() + budget;
                while queued() < want && Instant::now() < deadline {
                    MutexGuard::unlocked(&mut st, std::thread::yield_now);
                }
            }
            st.last_round_appends = queued();
            let carried = st.last_round_appends as u64;
            let generation = st.generation;
            drop(st);
            let started = Instant::now();
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
                    st.rounds += 1;
                    st.last_sync_time = started.elapsed();
                    self.counters.sync_done(st.last_sync_time, carried);
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
