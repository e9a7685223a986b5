//! `ConsumerWaker::wakeup` (Kafka's `KafkaConsumer.wakeup()`): from another thread it makes a
//! blocked `poll` return `Error::Wakeup` promptly (well under its timeout, even `Duration::MAX`);
//! called while no poll blocks, the next poll fails once, however many calls were made, and polls
//! after it work; no record is lost or delivered twice (an interrupted poll moves no position, and
//! a wakeup that arrives after a poll found records lets that poll return them); calls that do not
//! wait are not interrupted.
//!
//! The store runs on virtual time (its clock moves only when a test moves it).

use crate::common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clock::{poll_times_out, TestClock};
use topiclog::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerWaker, Error, RebalanceListener, Record,
    Store, TopicPartition,
};

/// What a blocked poll is given: far longer than any test should take.
const LONG: Duration = Duration::from_secs(30);
/// "Promptly": generous for a loaded machine, a fraction of `LONG`.
const PROMPT: Duration = Duration::from_secs(5);
const RECORDS: u64 = 20;

/// A store with topic `t` (one partition) holding `RECORDS` records, and its clock.
fn setup() -> (tempfile::TempDir, Store, TestClock) {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(1_700_000_000_000);
    let store =
        Store::open_with_env(dir.path(), common::manual_store_options(), clock.env()).unwrap();
    let t = store
        .create_topic("t", topiclog::TopicConfig::with_partitions(1))
        .unwrap();
    for i in 0..RECORDS {
        t.send_to(0, Record::new(format!("v{i}"))).unwrap();
    }
    (dir, store, clock)
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn config() -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest,
        enable_auto_commit: false,
        max_poll_records: 5,
        ..ConsumerConfig::group("g")
    }
}

/// Read everything there is (once assigned, the position at the end), so the next poll blocks;
/// returns the offsets read.
fn drain(store: &Store, c: &mut Consumer) -> Vec<u64> {
    let end = store.topic("t").unwrap().partition(0).unwrap().end_offset();
    let mut offsets = Vec::new();
    let begun = Instant::now();
    loop {
        let records = c.poll(Duration::ZERO).unwrap();
        offsets.extend(records.iter().map(|r| r.offset()));
        if c.assignment() == [tp()] && c.position(&tp()).unwrap() == end {
            return offsets;
        }
        assert!(begun.elapsed() < PROMPT, "not drained: {offsets:?}");
    }
}

/// Block `c` in `poll(timeout)` on another thread, call `wakeup`, and check the poll returns
/// `Wakeup` promptly. Returns the consumer.
fn wake_blocked_poll(clock: &TestClock, mut c: Consumer, timeout: Duration) -> Consumer {
    let waker = c.waker();
    let (started, started_rx) = mpsc::channel();
    let poller = thread::spawn(move || {
        started.send(()).unwrap();
        let begun = Instant::now();
        let r = c.poll(timeout);
        (c, r, begun.elapsed())
    });
    started_rx.recv().unwrap();
    // Into its wait: it read its deadline, found nothing, and read the clock again to see the
    // deadline had not passed (the clock stands still: it waits until woken).
    clock.await_read_by(poller.thread().id(), 1);
    waker.wakeup();
    let (c, r, took) = poller.join().unwrap();
    assert!(
        matches!(r, Err(Error::Wakeup)),
        "expected Wakeup, got {r:?}"
    );
    assert!(took < PROMPT, "the blocked poll took {took:?} to wake");
    c
}

#[test]
fn wakeup_interrupts_a_blocked_poll_promptly() {
    let (_dir, store, clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    c.assign(&[tp()]).unwrap();
    assert_eq!(drain(&store, &mut c), (0..RECORDS).collect::<Vec<_>>());
    let mut c = wake_blocked_poll(&clock, c, LONG);
    // Consumed: the next poll works, and sees new records.
    poll_times_out(&mut c, &clock, Duration::from_millis(50));
    store
        .topic("t")
        .unwrap()
        .send_to(0, Record::new("new"))
        .unwrap();
    let records = c.poll(LONG).unwrap();
    assert_eq!(records.iter().next().map(|r| r.offset()), Some(RECORDS));
    // A waker outliving its consumer is harmless.
    let waker = c.waker();
    drop(c);
    waker.wakeup();
}

#[test]
fn wakeup_interrupts_a_group_members_poll_without_timeout() {
    let (_dir, store, clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert_eq!(drain(&store, &mut c).len() as u64, RECORDS);
    let mut c = wake_blocked_poll(&clock, c, Duration::MAX);
    poll_times_out(&mut c, &clock, Duration::from_millis(50));
    assert_eq!(c.assignment(), vec![tp()], "still a member");
}

#[test]
fn wakeup_before_poll_fails_the_next_poll_once_and_loses_nothing() {
    let (_dir, store, _clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    c.assign(&[tp()]).unwrap();
    let first = c.poll(LONG).unwrap();
    assert_eq!(
        first.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        (0..5).collect::<Vec<_>>()
    );
    let waker = c.waker();
    waker.wakeup();
    waker.clone().wakeup();
    // Calls that do not wait are not interrupted (and do not consume the wakeup).
    c.commit_sync().unwrap();
    assert_eq!(c.position(&tp()).unwrap(), 5);
    let begun = Instant::now();
    assert!(matches!(c.poll(LONG), Err(Error::Wakeup)));
    assert!(begun.elapsed() < PROMPT);
    assert_eq!(
        c.position(&tp()).unwrap(),
        5,
        "the interrupted poll moved on"
    );
    // Once: the records come next, none skipped.
    let mut rest = drain(&store, &mut c);
    rest.sort_unstable();
    assert_eq!(rest, (5..RECORDS).collect::<Vec<_>>());
}

/// Calls `wakeup` from inside `poll` (when partitions are assigned), after the poll checked for
/// a wakeup and before it reads: the records it then finds must not be lost.
struct WakeOnAssign(ConsumerWaker);

impl RebalanceListener for WakeOnAssign {
    fn on_assigned(&mut self, _consumer: &Consumer, _partitions: &[TopicPartition]) {
        self.0.wakeup();
    }
}

#[test]
fn a_wakeup_during_a_poll_that_finds_records_fails_the_next_poll() {
    let (_dir, store, _clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    let waker = c.waker();
    c.subscribe_with(&["t"], Some(Box::new(WakeOnAssign(waker))))
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.is_empty() {
        assert!(Instant::now() < deadline, "never assigned");
        got.extend(
            c.poll(Duration::from_millis(100))
                .unwrap()
                .iter()
                .map(|r| r.offset()),
        );
    }
    assert_eq!(
        got,
        (0..5).collect::<Vec<_>>(),
        "the poll returned its records"
    );
    assert!(matches!(c.poll(LONG), Err(Error::Wakeup)));
    got.extend(drain(&store, &mut c));
    assert_eq!(got, (0..RECORDS).collect::<Vec<_>>());
}
