//! Time sources. Everything time-based reads the time through a [`Clock`] (the store's: partition
//! timestamps and retention, the consumer's poll timeout and auto-commit interval, the group
//! coordinator's `max_poll_interval`, the producer's linger and `max_block`), and waits for its
//! deadlines through it, so a test with a [`ManualClock`] moves time instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, MutexGuard};

/// What a clock calls to wake a waiter (see [`Clock::wake_on_move`]).
pub(crate) type ClockWake = dyn Fn() + Send + Sync;

/// A source of time: wall-clock time for timestamps, and monotonic time for intervals and
/// deadlines, which waiters block on.
///
/// A waiter blocked until a deadline of a clock re-reads [`monotonic`](Self::monotonic) when it
/// wakes. A clock that moves with real time lets waiters block for the time left (the default);
/// a clock that moves only when told to ([`ManualClock`]) wakes them instead, through
/// [`wake_on_move`](Self::wake_on_move), each time it moves.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in ms since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Now, for intervals and deadlines: the time since an origin fixed for the clock's life.
    /// It never goes back.
    ///
    /// Default: [`now_ms`](Self::now_ms) read as a time since the epoch (zero before it), for a
    /// clock whose wall time never goes back.
    fn monotonic(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms()).unwrap_or(0))
    }

    /// Call `wake` each time this clock moves, for as long as `wake` lives; returns whether the
    /// clock does that. `false` (the default, and [`SystemClock`]'s) is for a clock that moves
    /// with real time: its waiters block for the time left instead. A clock returning `true`
    /// must call every live `wake` after each move (without holding a lock a `wake` might need),
    /// or its waiters sleep past their deadlines.
    fn wake_on_move(&self, wake: Weak<dyn Fn() + Send + Sync>) -> bool {
        let _ = wake;
        false
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    fn monotonic(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that moves only when told to; clones share the same time. Every move wakes the
/// waiters blocked on one of its deadlines (a consumer's `poll`, a producer's linger, a
/// `SendHandle::wait_timeout`, ...), which see whether their deadline passed.
///
/// # Examples
/// ```
/// use topiclog::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(std::time::Duration::from_secs(2));
/// assert_eq!(clock.now_ms(), 3_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<ManualTime>);

#[derive(Debug, Default)]
struct ManualTime {
    /// Wall time, ms since the epoch.
    wall_ms: AtomicI64,
    /// Monotonic time, ns since the clock was made.
    monotonic_ns: AtomicU64,
    /// The sub-millisecond part of the wall time; its lock serializes moves.
    sub_ms_ns: Mutex<u64>,
    waiters: Mutex<Vec<Weak<ClockWake>>>,
}

const NANOS_PER_MS: u64 = 1_000_000;

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        let clock = ManualClock::default();
        clock.0.wall_ms.store(now_ms, Ordering::SeqCst);
        clock
    }

    /// Set the wall time. Setting it back does not move monotonic time (which never goes back);
    /// setting it forward moves both.
    pub fn set(&self, now_ms: i64) {
        {
            let mut sub = self.0.sub_ms_ns.lock();
            let before = self.0.wall_ms.swap(now_ms, Ordering::SeqCst);
            *sub = 0;
            let forward = u64::try_from(now_ms.saturating_sub(before)).unwrap_or(0);
            self.add_monotonic(forward.saturating_mul(NANOS_PER_MS));
        }
        self.wake_waiters();
    }

    /// Move the time forward (wall and monotonic; fractions of a millisecond add up).
    pub fn advance(&self, by: Duration) {
        {
            let mut sub = self.0.sub_ms_ns.lock();
            let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            let total = *sub + ns % NANOS_PER_MS;
            let ms = ns / NANOS_PER_MS + total / NANOS_PER_MS;
            *sub = total % NANOS_PER_MS;
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            let wall = self.0.wall_ms.load(Ordering::SeqCst).saturating_add(ms);
            self.0.wall_ms.store(wall, Ordering::SeqCst);
            self.add_monotonic(ns);
        }
        self.wake_waiters();
    }

    fn add_monotonic(&self, ns: u64) {
        let m = self
            .0
            .monotonic_ns
            .load(Ordering::SeqCst)
            .saturating_add(ns);
        self.0.monotonic_ns.store(m, Ordering::SeqCst);
    }

    /// Call every live waiter, with no lock of this clock held (a waiter takes its own locks, and
    /// may register again meanwhile).
    fn wake_waiters(&self) {
        let live: Vec<Arc<ClockWake>> = {
            let mut waiters = self.0.waiters.lock();
            waiters.retain(|w| w.strong_count() > 0);
            waiters.iter().filter_map(Weak::upgrade).collect()
        };
        for wake in live {
            wake();
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.wall_ms.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.0.monotonic_ns.load(Ordering::SeqCst))
    }

    fn wake_on_move(&self, wake: Weak<dyn Fn() + Send + Sync>) -> bool {
        let mut waiters = self.0.waiters.lock();
        waiters.retain(|w| w.strong_count() > 0);
        waiters.push(wake);
        true
    }
}

/// A waiter's link to a clock: reads its monotonic time, and blocks until one of its deadlines,
/// for the time left (a clock that moves with real time) or until the clock moves (one that
/// wakes its waiters: then the wake function given to [`new`](Self::new) runs on every move).
pub(crate) struct ClockWaiter {
    clock: Arc<dyn Clock>,
    /// Registered with the clock (which holds it weakly) if it wakes its waiters.
    wake: Option<Arc<ClockWake>>,
}

impl fmt::Debug for ClockWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClockWaiter")
            .field("clock", &self.clock)
            .field("woken", &self.wake.is_some())
            .finish()
    }
}

impl ClockWaiter {
    /// Link to `clock`; `wake` is what wakes this waiter (it must take the lock the waiter
    /// checks its deadline under, or signal through a sequence number, so no move is missed).
    pub(crate) fn new(clock: Arc<dyn Clock>, wake: impl Fn() + Send + Sync + 'static) -> Self {
        let wake: Arc<ClockWake> = Arc::new(wake);
        let woken = clock.wake_on_move(Arc::downgrade(&wake));
        ClockWaiter {
            clock,
            wake: woken.then_some(wake),
        }
    }

    /// Whether the clock wakes this waiter as it moves (a clock that moves only when told to).
    pub(crate) fn wakes_waiters(&self) -> bool {
        self.wake.is_some()
    }

    /// The clock's monotonic time.
    pub(crate) fn now(&self) -> Duration {
        self.clock.monotonic()
    }

    /// `timeout` from now (a timeout too long to represent is as good as forever).
    pub(crate) fn deadline_after(&self, timeout: Duration) -> Duration {
        self.now().saturating_add(timeout)
    }

    /// How long to block, waiting for `deadline`, before reading the clock again: the time left
    /// (zero if none), or `None` to block until woken, when the clock wakes this waiter as it
    /// moves.
    pub(crate) fn timeout(&self, deadline: Duration) -> Option<Duration> {
        match self.wake {
            Some(_) => None,
            None => Some(deadline.saturating_sub(self.now())),
        }
    }

    /// Block on `cv` (releasing `guard`) until it is notified or, by this clock, `deadline`
    /// passes; returns whether the deadline has passed. Returns at once if it has.
    pub(crate) fn wait_until<T>(
        &self,
        cv: &Condvar,
        guard: &mut MutexGuard<'_, T>,
        deadline: Duration,
    ) -> bool {
        let now = self.now();
        if now >= deadline {
            return true;
        }
        match self.wake {
            Some(_) => cv.wait(guard),
            None => {
                cv.wait_for(guard, deadline - now);
            }
        }
        self.now() >= deadline
    }
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time with milliseconds
/// (`2026-12-07T23:10:00.123Z`), for messages; proleptic Gregorian calendar (Howard Hinnant's
/// days-to-civil algorithm).
pub(crate) fn format_utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times_format_as_rfc_3339() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00.000Z");
        // 2026-12-07T23:10:00.123Z, and a leap day.
        assert_eq!(
            super::format_utc(1_796_685_000_123),
            "2026-12-07T23:10:00.123Z"
        );
        assert_eq!(
            super::format_utc(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(super::format_utc(-1), "1969-12-31T23:59:59.999Z");
    }

    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// A lock and condition variable a waiter blocks on, and the clock's wake function for it.
    fn waiter(clock: Arc<dyn Clock>) -> (Arc<(Mutex<()>, Condvar)>, ClockWaiter) {
        let state = Arc::new((Mutex::new(()), Condvar::new()));
        let weak = Arc::downgrade(&state);
        let waiter = ClockWaiter::new(clock, move || {
            if let Some(s) = weak.upgrade() {
                let _g = s.0.lock();
                s.1.notify_all();
            }
        });
        (state, waiter)
    }

    #[test]
    fn a_manual_clock_wakes_a_waiter_when_it_moves_past_the_deadline_not_before() {
        let clock = ManualClock::new(1_000);
        let (tx, rx) = mpsc::channel();
        let blocked = {
            let clock = clock.clone();
            thread::spawn(move || {
                let (state, w) = waiter(Arc::new(clock));
                assert!(w.wakes_waiters());
                let deadline = w.deadline_after(Duration::from_secs(10));
                let mut g = state.0.lock();
                tx.send(None).unwrap();
                // Each wake-up before the deadline is reported, with the time it saw.
                while !w.wait_until(&state.1, &mut g, deadline) {
                    tx.send(Some(w.now())).unwrap();
                }
                w.now()
            })
        };
        // Registered (its deadline read) before this: no move below is missed.
        assert_eq!(rx.recv().unwrap(), None);
        let real = Duration::from_secs(5);
        clock.advance(Duration::from_secs(9));
        assert_eq!(
            rx.recv_timeout(real).unwrap(),
            Some(Duration::from_secs(9)),
            "woken by the move, its deadline not passed"
        );
        assert!(!blocked.is_finished());
        clock.advance(Duration::from_millis(999));
        assert_eq!(
            rx.recv_timeout(real).unwrap(),
            Some(Duration::from_millis(9_999))
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(blocked.join().unwrap(), Duration::from_secs(10));
        assert!(
            rx.try_recv().is_err(),
            "no wake-up reported past the deadline"
        );
        assert_eq!(clock.now_ms(), 11_000);
    }

    #[test]
    fn a_manual_clock_set_back_does_not_move_monotonic_time() {
        let clock = ManualClock::new(5_000);
        clock.set(4_000);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.set(6_000);
        assert_eq!(clock.monotonic(), Duration::from_secs(2));
        clock.advance(Duration::from_micros(1_500));
        assert_eq!(clock.now_ms(), 6_001);
        clock.advance(Duration::from_micros(500));
        assert_eq!(clock.now_ms(), 6_002, "fractions of a millisecond add up");
        assert_eq!(clock.monotonic(), Duration::from_millis(2_002));
    }

    #[test]
    fn the_system_clock_blocks_for_the_time_left() {
        let (state, w) = waiter(Arc::new(SystemClock));
        assert!(!w.wakes_waiters());
        let start = Instant::now();
        let deadline = w.deadline_after(Duration::from_millis(30));
        let mut g = state.0.lock();
        while !w.wait_until(&state.1, &mut g, deadline) {}
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(w.now() >= deadline);
    }
}
