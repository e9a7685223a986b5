//! Virtual time for tests: a [`ManualClock`] that also tells the test when the code under test
//! reads it, so a test can move the clock once a wait has read its deadline instead of sleeping.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use topiclog::fs::FileSystem;
use topiclog::{Clock, Env, ManualClock};

/// How long (real time) a test waits for the code under test to read the clock before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A [`ManualClock`] counting the reads of its monotonic time (which every deadline is computed
/// from). Clones share the time and the count.
#[derive(Clone, Debug)]
pub struct TestClock {
    manual: ManualClock,
    reads: Arc<(Mutex<u64>, Condvar)>,
}

impl TestClock {
    /// A clock reading `now_ms` (wall time).
    pub fn new(now_ms: i64) -> TestClock {
        TestClock {
            manual: ManualClock::new(now_ms),
            reads: Arc::default(),
        }
    }

    /// The underlying manual clock.
    pub fn manual(&self) -> &ManualClock {
        &self.manual
    }

    /// The real file system with this clock.
    pub fn env(&self) -> Env {
        Env {
            clock: Arc::new(self.clone()),
            ..Env::default()
        }
    }

    /// `fs` with this clock.
    pub fn env_with_fs(&self, fs: Arc<dyn FileSystem>) -> Env {
        Env {
            fs,
            clock: Arc::new(self.clone()),
        }
    }

    /// Move the time forward (waking every waiter).
    pub fn advance(&self, by: Duration) {
        self.manual.advance(by);
    }

    /// How often the monotonic time was read so far.
    pub fn reads(&self) -> u64 {
        *self.reads.0.lock().unwrap()
    }

    /// Block (real time, at most [`PATIENCE`]) until the monotonic time has been read more than
    /// `seen` times: after `seen = reads()` and starting a wait on another thread, that wait has
    /// read its deadline once this returns (a timeout is counted from the first read).
    pub fn await_read_past(&self, seen: u64) {
        let (count, cv) = &*self.reads;
        let give_up = Instant::now() + PATIENCE;
        let mut n = count.lock().unwrap();
        while *n <= seen {
            let left = give_up.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the clock was not read within {PATIENCE:?}"
            );
            n = cv.wait_timeout(n, left).unwrap().0;
        }
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.manual.now_ms()
    }

    fn monotonic(&self) -> Duration {
        let now = self.manual.monotonic();
        let (count, cv) = &*self.reads;
        *count.lock().unwrap() += 1;
        cv.notify_all();
        now
    }

    fn wake_on_move(&self, wake: Weak<dyn Fn() + Send + Sync>) -> bool {
        self.manual.wake_on_move(wake)
    }
}

/// `c.poll(timeout)` on virtual time, expecting no records: polls on another thread, and once the
/// poll has read its deadline moves `clock` to just before it (the poll must still be waiting),
/// then past it (the poll must return, empty). Returns the real time it took.
pub fn poll_times_out(
    c: &mut topiclog::Consumer,
    clock: &TestClock,
    timeout: Duration,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        let seen = clock.reads();
        let polling = s.spawn(|| c.poll(timeout));
        clock.await_read_past(seen);
        let before = timeout.saturating_sub(Duration::from_millis(1));
        let seen = clock.reads();
        clock.advance(before);
        // Woken by the move, it looked at the clock again, and goes on waiting.
        clock.await_read_past(seen);
        assert!(
            !polling.is_finished(),
            "the poll returned before its timeout of {timeout:?}"
        );
        clock.advance(timeout - before);
        let records = polling.join().unwrap().unwrap();
        assert!(records.is_empty(), "{} records", records.len());
    });
    start.elapsed()
}
