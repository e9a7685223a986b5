//! Closing: cleanly (everything synced, the clean-shutdown marker left for the next open), or
//! as a crash would (`abandon`, for crash tests).

use std::sync::atomic::Ordering;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

use super::checkpoint::CleanShutdown;
use super::{Inner, Partition};

impl Partition {
    /// Stop using this partition as a process crash would, for crash tests: nothing more is
    /// written or synced (no clean-shutdown marker), every handle gets [`Error::Closed`]
    /// afterwards, and the directory lock is released so the directory can be opened again in
    /// this process. What the next open finds is what a `kill -9` would leave (a power loss too,
    /// on a [`SimFs`](crate::fs::SimFs) after its `crash`).
    #[doc(hidden)]
    pub fn abandon(&self) {
        let inner = &*self.inner;
        inner.closing.store(true, Ordering::Release);
        // Wait for a compaction pass and an appender to let go, as a crash would end them.
        let _cleaner = inner.cleaner.lock();
        let _w = inner.writer.lock();
        inner.closed.store(true, Ordering::SeqCst);
        inner.lock.lock().take();
        inner.notify_tailers();
    }

    /// Close cleanly: sync everything, write indexes, cut the preallocated tail and leave a
    /// clean-shutdown marker so the next open skips the rescan. Other clones get
    /// [`Error::Closed`] afterwards. Dropping the last clone closes too (ignoring errors).
    ///
    /// # Errors
    /// [`Error::Io`] if a sync or write fails; the next open then recovers as after a crash.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl Inner {
    pub(super) fn close(&self) -> Result<()> {
        // Stop a compaction pass at its next check, then wait for it.
        self.closing.store(true, Ordering::Release);
        let _cleaner = self.cleaner.lock();
        let w = self.writer.lock();
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Whatever happens below, the directory is free for the next opener afterwards.
        let _lock = self.lock.lock().take();
        // Tailers and watching consumers wake up and see the close.
        self.tail.notify(usize::MAX);
        for w in self.watchers.lock().iter() {
            if let Some(n) = w.upgrade() {
                n.notify();
            }
        }
        if self.poisoned.load(Ordering::Acquire) {
            // Leave no clean marker: the next open must re-read what really is on disk, and cut
            // what lies past the trusted end (the marker says where; written at the failure, tried
            // again here if that write failed).
            self.persist_trusted_end();
            if let Some(t) = &self.tail_page {
                t.closed(None);
            }
            return Ok(());
        }
        let result = (|| {
            let end = self.end_offset.load(Ordering::SeqCst);
            for seg in std::mem::take(&mut *self.unsynced_sealed.lock()) {
                seg.sync()?;
            }
            w.active.sync()?;
            w.active.flush_indexes(true)?;
            w.active.trim()?;
            {
                let mut st = self.sync.lock();
                st.synced = end;
                self.synced_hint.store(end, Ordering::Release);
            }
            self.release_pending(end);
            // The indexes were synced above, under the writer lock this holds.
            self.record_recovery_point(end, None)?;
            if w.tracks_producers {
                let now = self.clock.now_ms();
                let mut table = w.producers.clone();
                table.remove_expired(now, self.config().producer_id_expiration);
                table.write(&*self.fs, &self.dir, end)?;
            }
            // Last: what the next open may trust without rescanning, checked against the files.
            let cp = *self.checkpoint.lock();
            CleanShutdown {
                log_start_offset: cp.log_start_offset,
                end_offset: end,
                producers_from: cp.producers_from,
                active_base: w.active.base_offset(),
                active_size: w.active.size(),
            }
            .write(&*self.fs, &self.dir)
        })();
        if let Err(e) = &result {
            self.poison(e);
        }
        if let Some(t) = &self.tail_page {
            let end = self.visible_end.load(Ordering::SeqCst);
            t.closed(result.is_ok().then_some(end));
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
