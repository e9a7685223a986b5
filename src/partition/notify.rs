//! Waking readers when records are published: tailers blocked in `wait_for`, and [`Notify`]
//! signals shared by consumers that watch many partitions.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::clock::ClockWaiter;

use super::{Inner, Partition};

/// A wake-up signal shared by several partitions: a consumer registers one with every partition it
/// reads ([`Partition::watch`]) and sleeps on it until any of them publishes new records (or
/// someone else, such as a group rebalance, calls [`notify`](Self::notify)).
#[derive(Debug, Default)]
pub struct Notify {
    seq: Mutex<u64>,
    cv: Condvar,
}

impl Notify {
    /// A new signal.
    pub fn new() -> Arc<Notify> {
        Arc::new(Notify::default())
    }

    /// The current sequence number: pass it to [`wait`](Self::wait) after checking for work, so a
    /// signal that arrives in between is not missed.
    pub fn seq(&self) -> u64 {
        *self.seq.lock()
    }

    /// Wake every waiter.
    pub fn notify(&self) {
        let mut s = self.seq.lock();
        *s += 1;
        self.cv.notify_all();
    }

    /// Sleep until the sequence number moves past `seen` or `deadline` passes; returns whether it
    /// moved.
    pub fn wait(&self, seen: u64, deadline: Instant) -> bool {
        let mut s = self.seq.lock();
        while *s == seen {
            if self.cv.wait_until(&mut s, deadline).timed_out() {
                return *s != seen;
            }
        }
        true
    }

    /// Sleep until the sequence number moves past `seen` or `timeout` passes (`None`: no
    /// timeout), or, rarely, a little earlier: callers re-read their clock and loop. Returns
    /// whether it moved.
    pub fn wait_timeout(&self, seen: u64, timeout: Option<Duration>) -> bool {
        let mut s = self.seq.lock();
        match timeout {
            Some(t) if *s == seen => {
                self.cv.wait_for(&mut s, t);
            }
            Some(_) => {}
            None => {
                while *s == seen {
                    self.cv.wait(&mut s);
                }
            }
        }
        *s != seen
    }
}

impl Partition {
    /// Block until a record at or past `offset` exists (that is, until the end offset exceeds
    /// `offset`), or `timeout` passes (by the log's clock: with a
    /// [`ManualClock`](crate::ManualClock), once the clock has moved past it). Returns whether
    /// data is there. Returns `false` at once if the partition is closed.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let inner = &*self.inner;
        if inner.visible_end.load(Ordering::SeqCst) > offset {
            return true;
        }
        // Registered before the deadline is read and before the checks below: a move of the
        // clock after that takes `tail` to wake this waiter, so it is not missed.
        let clock = {
            let inner = Arc::downgrade(&self.inner);
            ClockWaiter::new(self.inner.clock.clone(), move || {
                if let Some(inner) = inner.upgrade() {
                    let _g = inner.tail.lock();
                    inner.tail_cv.notify_all();
                }
            })
        };
        let deadline = clock.deadline_after(timeout);
        let mut guard = inner.tail.lock();
        inner.tail_waiters.fetch_add(1, Ordering::SeqCst);
        let found = loop {
            if inner.visible_end.load(Ordering::SeqCst) > offset {
                break true;
            }
            if inner.closed.load(Ordering::SeqCst) {
                break false;
            }
            if clock.wait_until(&inner.tail_cv, &mut guard, deadline) {
                break inner.visible_end.load(Ordering::SeqCst) > offset;
            }
        };
        inner.tail_waiters.fetch_sub(1, Ordering::SeqCst);
        found
    }

    /// Fire `notify` whenever records become visible (or durable) in this partition, until
    /// [`unwatch`](Self::unwatch) or `notify` is dropped. Lets one thread wait for data on many
    /// partitions at once. (The consumer's plumbing: [`Notify`](crate::internals::Notify) lives in
    /// [`internals`](crate::internals), outside the semver promise.)
    pub fn watch(&self, notify: &Arc<Notify>) {
        let mut w = self.inner.watchers.lock();
        w.retain(|x| x.strong_count() > 0);
        if !w.iter().any(|x| x.as_ptr() == Arc::as_ptr(notify)) {
            w.push(Arc::downgrade(notify));
        }
        self.inner.watcher_count.store(w.len(), Ordering::SeqCst);
    }

    /// Stop firing `notify`.
    pub fn unwatch(&self, notify: &Arc<Notify>) {
        let mut w = self.inner.watchers.lock();
        w.retain(|x| x.strong_count() > 0 && x.as_ptr() != Arc::as_ptr(notify));
        self.inner.watcher_count.store(w.len(), Ordering::SeqCst);
    }
}

impl Inner {
    /// Make offsets below `end` visible to readers and wake tailers.
    pub(super) fn publish(&self, end: u64) {
        self.visible_end.fetch_max(end, Ordering::SeqCst);
        self.notify_tailers();
    }

    pub(super) fn notify_tailers(&self) {
        if self.tail_waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.tail.lock();
            self.tail_cv.notify_all();
        }
        if self.watcher_count.load(Ordering::SeqCst) > 0 {
            let watchers = self.watchers.lock();
            for w in watchers.iter() {
                if let Some(n) = w.upgrade() {
                    n.notify();
                }
            }
        }
    }
}
