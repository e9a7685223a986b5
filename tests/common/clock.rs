//! Virtual time for tests: a [`ManualClock`] that also tells the test when the code under test
//! reads it, so a test can move the clock once a wait has read its deadline instead of sleeping.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use topiclog::fs::FileSystem;
use topiclog::{Clock, Env, ManualClock};

/// How long (real time) a test waits for the code under test to read the clock before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A [`ManualClock`] counting the reads of its monotonic time (which every deadline is computed
/// from), in all and by thread. Clones share the time and the counts.
#[derive(Clone, Debug)]
pub struct TestClock {
    manual: ManualClock,
    reads: Arc<(Mutex<Reads>, Condvar)>,
}

#[derive(Debug, Default)]
struct Reads {
    total: u64,
    by_thread: HashMap<ThreadId, u64>,
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
        self.reads.0.lock().unwrap().total
    }

    /// How often `thread` read the monotonic time so far.
    pub fn reads_by(&self, thread: ThreadId) -> u64 {
        let reads = self.reads.0.lock().unwrap();
        reads.by_thread.get(&thread).copied().unwrap_or(0)
    }

    /// Block (real time, at most [`PATIENCE`]) until the monotonic time has been read more than
    /// `seen` times: after `seen = reads()` and starting a wait on another thread (when no other
    /// thread reads the clock), that wait has read its deadline once this returns (a timeout is
    /// counted from the first read).
    pub fn await_read_past(&self, seen: u64) {
        self.await_reads(|r| r.total > seen);
    }

    /// Block (real time, at most [`PATIENCE`]) until `thread` has read the monotonic time more
    /// than `seen` times.
    pub fn await_read_by(&self, thread: ThreadId, seen: u64) {
        self.await_reads(|r| r.by_thread.get(&thread).copied().unwrap_or(0) > seen);
    }

    fn await_reads(&self, done: impl Fn(&Reads) -> bool) {
        let (reads, cv) = &*self.reads;
        let give_up = Instant::now() + PATIENCE;
        let mut r = reads.lock().unwrap();
        while !done(&r) {
            let left = give_up.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the clock was not read within {PATIENCE:?}"
            );
            r = cv.wait_timeout(r, left).unwrap().0;
        }
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.manual.now_ms()
    }

    fn monotonic(&self) -> Duration {
        let now = self.manual.monotonic();
        let (reads, cv) = &*self.reads;
        let mut r = reads.lock().unwrap();
        r.total += 1;
        *r.by_thread.entry(thread::current().id()).or_default() += 1;
        cv.notify_all();
        now
    }

    fn wake_on_move(&self, wake: Weak<dyn Fn() + Send + Sync>) -> bool {
        self.manual.wake_on_move(wake)
    }
}

/// Run `wait` (which must time out after `timeout` of `clock`) on another thread, on virtual time:
/// once it has read its deadline (its thread's first read of the clock), move `clock` to just
/// before the deadline (`wait` must still be waiting after it looked at the clock again), then
/// past it; returns what `wait` returned and the real time it all took.
pub fn times_out<T: Send>(
    clock: &TestClock,
    timeout: Duration,
    wait: impl FnOnce() -> T + Send,
) -> (T, Duration) {
    let start = Instant::now();
    let r = thread::scope(|s| {
        let waiting = s.spawn(wait);
        let id = waiting.thread().id();
        clock.await_read_by(id, 0);
        let before = timeout.saturating_sub(Duration::from_millis(1));
        let seen = clock.reads_by(id);
        clock.advance(before);
        // Woken by the move, it looked at the clock again, and goes on waiting.
        clock.await_read_by(id, seen);
        assert!(
            !waiting.is_finished(),
            "returned before its timeout of {timeout:?}"
        );
        clock.advance(timeout - before);
        waiting.join().unwrap()
    });
    (r, start.elapsed())
}

/// `c.poll(timeout)` on virtual time (see [`times_out`]), expecting no records; returns the real
/// time it took.
pub fn poll_times_out(
    c: &mut topiclog::Consumer,
    clock: &TestClock,
    timeout: Duration,
) -> Duration {
    let (records, real) = times_out(clock, timeout, || c.poll(timeout));
    let records = records.unwrap();
    assert!(records.is_empty(), "{} records", records.len());
    real
}
