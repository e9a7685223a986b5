//! Waiting, blocking or async, on one notification.
//!
//! Everything that waits for something another thread does (a tailer for new records, a consumer
//! for data or a group change, a `send` for buffer space) waits on an [`Event`] from the
//! `event-listener` crate: the thread that makes progress notifies it, and a waiter either blocks
//! its thread on a listener ([`ClockWaiter::wait_listener`]) or, in async code, awaits one
//! ([`ListenUntil`]). So a blocking and an async waiter are woken by the same notification, and
//! an async waiter costs no thread and no polling while it waits.
//!
//! Deadlines are read on the store's [`Clock`](crate::Clock). A clock that wakes its waiters as
//! it moves (a [`ManualClock`](crate::ManualClock)) notifies the waiter's event on every move;
//! with one that moves with real time, an async waiter whose deadline is finite is woken at it by
//! the process's timer thread ([`Timer`]: one thread for the whole process, started by the first
//! async wait with a deadline, sleeping until the earliest one). Blocking waiters need no timer:
//! they block for the time left.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub(crate) use event_listener::{Event, EventListener, Listener};
use parking_lot::{Condvar, Mutex};

use crate::clock::ClockWaiter;

/// The process's timer for async waits with a deadline: wakes each registered waker at its
/// instant, from one thread that sleeps until the earliest.
pub(crate) struct Timer {
    state: Mutex<TimerState>,
    cv: Condvar,
}

#[derive(Default)]
struct TimerState {
    /// Wakers by (instant, registration number): the number keeps equal instants apart.
    due: BTreeMap<(Instant, u64), Waker>,
    next: u64,
    /// The thread could not be started: registrations wake at once (their futures check their
    /// deadline each time they are polled, so they still end; they just spin).
    failed: bool,
}

/// A waker registered with the [`Timer`]; dropping it takes the registration back.
pub(crate) struct TimerEntry {
    key: (Instant, u64),
}

impl Drop for TimerEntry {
    fn drop(&mut self) {
        if let Some(timer) = TIMER.get() {
            timer.state.lock().due.remove(&self.key);
        }
    }
}

static TIMER: OnceLock<Timer> = OnceLock::new();

impl Timer {
    fn get() -> &'static Timer {
        TIMER.get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("topiclog-timer".into())
                .spawn(|| {
                    // The static is set before any registration reaches the thread's loop.
                    while TIMER.get().is_none() {
                        std::thread::yield_now();
                    }
                    if let Some(t) = TIMER.get() {
                        t.run();
                    }
                });
            Timer {
                state: Mutex::new(TimerState {
                    failed: spawned.is_err(),
                    ..TimerState::default()
                }),
                cv: Condvar::new(),
            }
        })
    }

    /// Wake `waker` at `at`, unless the returned entry is dropped first.
    pub(crate) fn register(at: Instant, waker: Waker) -> TimerEntry {
        let timer = Timer::get();
        let mut st = timer.state.lock();
        let key = (at, st.next);
        st.next += 1;
        if st.failed {
            drop(st);
            waker.wake();
            return TimerEntry { key };
        }
        let earliest = st.due.first_key_value().is_none_or(|(k, _)| key < *k);
        st.due.insert(key, waker);
        drop(st);
        if earliest {
            timer.cv.notify_one();
        }
        TimerEntry { key }
    }

    fn run(&self) {
        let mut st = self.state.lock();
        loop {
            let now = Instant::now();
            let mut woken = Vec::new();
            while let Some(entry) = st.due.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                woken.push(entry.remove());
            }
            if !woken.is_empty() {
                // Wakers run without the lock: one may register or drop an entry.
                drop(st);
                woken.into_iter().for_each(Waker::wake);
                st = self.state.lock();
                continue;
            }
            match st.due.first_key_value().map(|(k, _)| k.0) {
                Some(at) => {
                    self.cv.wait_until(&mut st, at);
                }
                None => self.cv.wait(&mut st),
            }
        }
    }
}

impl ClockWaiter {
    /// Block on `listener` until it is notified or, by this clock, `deadline` passes; returns
    /// whether the deadline has passed. Returns at once if it has.
    pub(crate) fn wait_listener(&self, listener: EventListener, deadline: Duration) -> bool {
        let now = self.now();
        if now >= deadline {
            return true;
        }
        match self.timeout(deadline) {
            // The clock notifies the listener's event as it moves.
            None => {
                listener.wait();
            }
            Some(left) => {
                listener.wait_timeout(left);
            }
        }
        self.now() >= deadline
    }

    /// Await `listener` until it is notified or, by this clock, `deadline` passes; resolves to
    /// whether the deadline has passed.
    pub(crate) fn listen_until(
        &self,
        listener: EventListener,
        deadline: Duration,
    ) -> ListenUntil<'_> {
        ListenUntil {
            clock: self,
            listener: Some(listener),
            deadline,
            timer: None,
        }
    }
}

/// The future of [`ClockWaiter::listen_until`]. Cancellation-safe: dropping it only stops the
/// wait.
pub(crate) struct ListenUntil<'a> {
    clock: &'a ClockWaiter,
    listener: Option<EventListener>,
    deadline: Duration,
    /// The timer's registration for the deadline, and the waker it wakes.
    timer: Option<(TimerEntry, Waker)>,
}

impl Future for ListenUntil<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = self.get_mut();
        if let Some(listener) = this.listener.as_mut() {
            if Pin::new(listener).poll(cx).is_ready() {
                this.listener = None;
            }
        }
        let now = this.clock.now();
        if this.listener.is_none() || now >= this.deadline {
            this.timer = None;
            return Poll::Ready(now >= this.deadline);
        }
        // A clock that wakes its waiters notifies the listener's event as it moves; one that
        // moves with real time needs the timer, unless the deadline is out of reach.
        if let Some(left) = this.clock.timeout(this.deadline) {
            if let Some(at) = Instant::now().checked_add(left) {
                let current = this
                    .timer
                    .as_ref()
                    .is_some_and(|(_, w)| w.will_wake(cx.waker()));
                if !current {
                    this.timer = None;
                    let entry = Timer::register(at, cx.waker().clone());
                    this.timer = Some((entry, cx.waker().clone()));
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;
    use crate::clock::{ManualClock, SystemClock};

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn wait_for_count(c: &Count, n: usize) {
        let start = Instant::now();
        while c.0.load(Ordering::SeqCst) < n {
            assert!(start.elapsed() < Duration::from_secs(10), "never woken");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_timer_wakes_at_the_deadline_and_not_a_dropped_entry() {
        let (fired, w1) = counting();
        let (dropped, w2) = counting();
        let start = Instant::now();
        let _keep = Timer::register(start + Duration::from_millis(30), w1);
        drop(Timer::register(start + Duration::from_millis(10), w2));
        wait_for_count(&fired, 1);
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(dropped.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_async_wait_ends_at_its_deadline_by_the_timer() {
        let event = Event::new();
        let clock = ClockWaiter::new(Arc::new(SystemClock), || {});
        let deadline = clock.deadline_after(Duration::from_millis(20));
        let mut fut = Box::pin(clock.listen_until(event.listen(), deadline));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        wait_for_count(&count, 1);
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(true));
    }

    #[test]
    fn an_async_wait_is_woken_by_a_notification_before_its_deadline() {
        let event = Event::new();
        let clock = ClockWaiter::new(Arc::new(SystemClock), || {});
        let deadline = clock.deadline_after(Duration::from_secs(60));
        let mut fut = Box::pin(clock.listen_until(event.listen(), deadline));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        event.notify(usize::MAX);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(false));
    }

    #[test]
    fn with_a_manual_clock_an_async_wait_ends_when_the_clock_passes_its_deadline() {
        let manual = ManualClock::new(0);
        let event = Arc::new(Event::new());
        let clock = {
            let event = event.clone();
            ClockWaiter::new(Arc::new(manual.clone()), move || {
                event.notify(usize::MAX);
            })
        };
        let deadline = clock.deadline_after(Duration::from_secs(5));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(clock.listen_until(event.listen(), deadline));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        manual.advance(Duration::from_secs(4));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken by the move");
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(false));
        let mut fut = Box::pin(clock.listen_until(event.listen(), deadline));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        manual.advance(Duration::from_secs(1));
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(true));
    }
}
