//! Waking readers when records are published: tailers blocked in `wait_for`, and [`Notify`]
//! signals shared by consumers that watch many partitions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::ClockWaiter;
use crate::wait::{Event, EventListener, Listener};

use super::{Inner, Partition};

/// A wake-up signal shared by several partitions: a consumer registers one with every partition it
/// reads ([`Partition::watch`]) and sleeps on it until any of them publishes new records (or
/// someone else, such as a group rebalance, calls [`notify`](Self::notify)). Blocking and async
/// waiters are woken by the same notification (an `event-listener` [`Event`]).
#[derive(Debug, Default)]
pub struct Notify {
    seq: AtomicU64,
    event: Event,
}

impl Notify {
    /// A new signal.
    pub fn new() -> Arc<Notify> {
        Arc::new(Notify::default())
    }

    /// The current sequence number: pass it to [`wait`](Self::wait) after checking for work, so a
    /// signal that arrives in between is not missed.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Wake every waiter.
    pub fn notify(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    /// A listener registered now, if the sequence number is still `seen` (else `None`: it moved).
    fn listen_unless_moved(&self, seen: u64) -> Option<EventListener> {
        if self.seq() != seen {
            return None;
        }
        let listener = self.event.listen();
        // Registered before this second look: a signal after it notifies the listener.
        (self.seq() == seen).then_some(listener)
    }

    /// Sleep until the sequence number moves past `seen` or `deadline` passes; returns whether it
    /// moved.
    pub fn wait(&self, seen: u64, deadline: Instant) -> bool {
        while let Some(listener) = self.listen_unless_moved(seen) {
            if listener.wait_deadline(deadline).is_none() {
                return self.seq() != seen;
            }
        }
        true
    }

    /// Sleep until the sequence number moves past `seen` or `timeout` passes (`None`: no
    /// timeout), or, rarely, a little earlier: callers re-read their clock and loop. Returns
    /// whether it moved.
    pub fn wait_timeout(&self, seen: u64, timeout: Option<Duration>) -> bool {
        if let Some(listener) = self.listen_unless_moved(seen) {
            match timeout {
                Some(t) => {
                    listener.wait_timeout(t);
                }
                None => {
                    listener.wait();
                }
            }
        }
        self.seq() != seen
    }

    /// Await a move of the sequence number past `seen`, or `deadline` by `clock` (whose moves,
    /// if it wakes its waiters, must call [`notify`](Self::notify)); resolves to whether it
    /// moved. Cancellation-safe.
    pub(crate) async fn changed(&self, seen: u64, clock: &ClockWaiter, deadline: Duration) -> bool {
        while let Some(listener) = self.listen_unless_moved(seen) {
            if clock.listen_until(listener, deadline).await {
                break;
            }
        }
        self.seq() != seen
    }
}

impl Partition {
    /// Block until a record at or past `offset` exists (that is, until the end offset exceeds
    /// `offset`), or `timeout` passes (by the log's clock: with a
    /// [`ManualClock`](crate::ManualClock), once the clock has moved past it). Returns whether
    /// data is there. Returns `false` at once if the partition is closed.
    ///
    /// [`wait_for_async`](Self::wait_for_async) is the same wait for async code.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        if self.inner.visible_end.load(Ordering::SeqCst) > offset {
            return true;
        }
        let clock = self.inner.tail_clock();
        let deadline = clock.deadline_after(timeout);
        loop {
            let listener = match self.inner.tail_state(offset) {
                Ok(listener) => listener,
                Err(found) => return found,
            };
            if clock.wait_listener(listener, deadline) {
                return self.inner.visible_end.load(Ordering::SeqCst) > offset;
            }
        }
    }

    /// [`wait_for`](Self::wait_for) for async code: resolves to `true` once a record at or past
    /// `offset` exists, `false` when `timeout` passes first (by the log's clock) or the partition
    /// is closed. It takes no thread while it waits: it is woken by the append that publishes the
    /// record (the same notification that wakes blocking waiters), and at its deadline by the
    /// process's timer thread. Cancellation-safe: dropping it only stops the wait. Works with any
    /// executor.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use topiclog::{Partition, Record};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl std::task::Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = Box::pin(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?;
    /// let writer = log.clone();
    /// let t = std::thread::spawn(move || writer.append(Record::new("hello")));
    /// // Tail the log from a task: woken by the append.
    /// assert!(block_on(log.wait_for_async(0, Duration::from_secs(10))));
    /// t.join().unwrap()?;
    /// assert!(!block_on(log.wait_for_async(1, Duration::from_millis(10))), "timed out");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn wait_for_async(&self, offset: u64, timeout: Duration) -> bool {
        if self.inner.visible_end.load(Ordering::SeqCst) > offset {
            return true;
        }
        let clock = self.inner.tail_clock();
        let deadline = clock.deadline_after(timeout);
        loop {
            let listener = match self.inner.tail_state(offset) {
                Ok(listener) => listener,
                Err(found) => return found,
            };
            if clock.listen_until(listener, deadline).await {
                return self.inner.visible_end.load(Ordering::SeqCst) > offset;
            }
        }
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
    /// A link to the log's clock whose moves wake this partition's tailers.
    fn tail_clock(self: &Arc<Self>) -> ClockWaiter {
        let inner = Arc::downgrade(self);
        ClockWaiter::new(self.clock.clone(), move || {
            if let Some(inner) = inner.upgrade() {
                inner.tail.notify(usize::MAX);
            }
        })
    }

    /// A tailer of `offset` must wait: a listener for the next publication, registered before
    /// the second look at the log end. `Err(found)` if it need not: a record at or past `offset`
    /// is there (`true`) or the partition is closed (`false`).
    fn tail_state(&self, offset: u64) -> Result<EventListener, bool> {
        let ready = || {
            if self.visible_end.load(Ordering::SeqCst) > offset {
                Some(true)
            } else if self.closed.load(Ordering::SeqCst) {
                Some(false)
            } else {
                None
            }
        };
        if let Some(found) = ready() {
            return Err(found);
        }
        let listener = self.tail.listen();
        match ready() {
            Some(found) => Err(found),
            None => Ok(listener),
        }
    }

    /// Make offsets below `end` visible to readers and wake tailers.
    pub(super) fn publish(&self, end: u64) {
        self.visible_end.fetch_max(end, Ordering::SeqCst);
        self.publish_tail();
        self.notify_tailers();
    }

    /// [`publish`](Self::publish) by an appender holding the append lock, which knows how far
    /// the active segment's file goes (`written`, see `Segment::written_end`), so the tail page
    /// costs no lock of the segment list on this path.
    pub(super) fn publish_written(&self, end: u64, written: u64) {
        self.visible_end.fetch_max(end, Ordering::SeqCst);
        self.publish_tail_to(written);
        self.notify_tailers();
    }

    /// Tell read-only processes how far they may read: the visible end, but not into what the
    /// active segment still holds in its write buffer (they read the file).
    pub(super) fn publish_tail(&self) {
        if self.tail_page.is_none() {
            return;
        }
        let written = self
            .segments
            .read()
            .last()
            .map_or(u64::MAX, |s| s.written_end());
        self.publish_tail_to(written);
    }

    /// [`publish_tail`](Self::publish_tail) where the active segment's file ends at `written`.
    fn publish_tail_to(&self, written: u64) {
        let Some(t) = &self.tail_page else { return };
        let visible = self.visible_end.load(Ordering::SeqCst);
        t.publish(visible.min(written), || {
            self.end_offset
                .load(Ordering::SeqCst)
                .min(self.visible_end.load(Ordering::SeqCst))
        });
    }

    /// Files below the end are about to be rewritten (truncation, in-place recovery).
    pub(super) fn tail_begin_change(&self) {
        if let Some(t) = &self.tail_page {
            t.begin_change();
        }
    }

    /// The rewrite is done: publish the log's new bounds exactly.
    pub(super) fn tail_end_change(&self) {
        if let Some(t) = &self.tail_page {
            let written = self
                .segments
                .read()
                .last()
                .map_or(u64::MAX, |s| s.written_end());
            let end = self.visible_end.load(Ordering::SeqCst).min(written);
            t.end_change(self.start_offset.load(Ordering::Acquire), end);
        }
    }

    /// Segment files were created, deleted or replaced.
    pub(super) fn tail_layout_changed(&self) {
        if let Some(t) = &self.tail_page {
            t.layout_changed();
        }
    }

    /// Wake every tailer (blocking or async) and watcher: records were published, or the
    /// partition closed.
    pub(super) fn notify_tailers(&self) {
        // Costs one fence and a load when nobody listens.
        self.tail.notify(usize::MAX);
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
