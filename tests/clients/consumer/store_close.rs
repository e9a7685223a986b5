//! A consumer outliving its store's `close()` fails with `Error::Closed` naming the store
//! directory: a `poll` blocked on another thread returns promptly (well under its timeout, even
//! `Duration::MAX`) — whether the consumer reads partitions, belongs to a group, or reads nothing —
//! and every later
//! `poll`, commit, seek or position call fails at once; closing or dropping it does not hang.
//!
//! The store runs on virtual time (its clock stands still): a poll waits until the close, not
//! until a timeout.

use crate::common;

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clock::TestClock;
use topiclog::{
    AutoOffsetReset, Consumer, ConsumerConfig, Error, OffsetAndMetadata, Result, Store,
    TopicPartition,
};

/// What a poll blocked on another thread is given: far longer than any test should take.
const LONG: Duration = Duration::from_secs(30);
/// "Promptly": generous for a loaded machine, a fraction of `LONG`.
const PROMPT: Duration = Duration::from_secs(5);

/// A store with topic `t` (two partitions, one record each), and its clock.
fn setup() -> (tempfile::TempDir, Store, TestClock) {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(1_700_000_000_000);
    let store =
        Store::open_with_env(dir.path(), common::manual_store_options(), clock.env()).unwrap();
    let t = store
        .create_topic("t", topiclog::TopicConfig::with_partitions(2))
        .unwrap();
    for p in 0..2 {
        t.send_to(p, topiclog::Record::new("v0")).unwrap();
    }
    (dir, store, clock)
}

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

/// Auto-commit off: no commit attempt runs into the closed offsets topic, so only the consumer's
/// own check can notice the close.
fn config() -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest,
        enable_auto_commit: false,
        ..ConsumerConfig::group("g")
    }
}

fn assert_closed<T: std::fmt::Debug>(r: Result<T>, dir: &Path, what: &str) {
    match r {
        Err(Error::Closed { path }) => assert_eq!(path, dir, "{what}"),
        other => panic!("{what}: expected Closed, got {other:?}"),
    }
}

/// Read everything there is (once assigned, every position at its partition's end), so the next
/// poll blocks.
fn drain(store: &Store, c: &mut Consumer) {
    let t = store.topic("t").unwrap();
    let begun = Instant::now();
    loop {
        c.poll(Duration::ZERO).unwrap();
        let assigned = c.assignment();
        let at_end = |tp: &TopicPartition| {
            c.position(tp).unwrap() == t.partition(tp.partition).unwrap().end_offset()
        };
        if !assigned.is_empty() && assigned.iter().all(at_end) {
            return;
        }
        assert!(begun.elapsed() < PROMPT, "not drained: {assigned:?}");
    }
}

/// Block `c` in `poll(timeout)` on another thread, close the store, and check the poll returns
/// `Closed` promptly. Returns the consumer.
fn close_under_blocked_poll(
    store: &Store,
    clock: &TestClock,
    mut c: Consumer,
    timeout: Duration,
) -> Consumer {
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
    store.close().unwrap();
    let (c, r, took) = poller.join().unwrap();
    assert_closed(r, store.dir(), "the blocked poll");
    assert!(took < PROMPT, "the blocked poll took {took:?} to notice");
    c
}

#[test]
fn store_close_ends_a_blocked_poll_of_assigned_partitions() {
    let (_dir, store, clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    c.assign(&[tp(0), tp(1)]).unwrap();
    drain(&store, &mut c);
    close_under_blocked_poll(&store, &clock, c, LONG);
}

#[test]
fn store_close_ends_a_blocked_poll_of_a_group_member() {
    let (_dir, store, clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    drain(&store, &mut c);
    assert_eq!(c.assignment().len(), 2);
    close_under_blocked_poll(&store, &clock, c, LONG);
}

#[test]
fn store_close_ends_a_blocked_poll_of_a_consumer_with_nothing_assigned() {
    let (_dir, store, clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    c.assign(&[]).unwrap();
    close_under_blocked_poll(&store, &clock, c, LONG);
}

#[test]
fn store_close_ends_a_poll_without_timeout() {
    let (_dir, store, clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    c.assign(&[tp(0), tp(1)]).unwrap();
    drain(&store, &mut c);
    // `Duration::MAX`: block until records arrive (it used to overflow the deadline and panic).
    close_under_blocked_poll(&store, &clock, c, Duration::MAX);
}

#[test]
fn every_call_after_store_close_fails_with_closed_at_once() {
    let (_dir, store, _clock) = setup();
    let mut c = store.consumer(config()).unwrap();
    c.assign(&[tp(0), tp(1)]).unwrap();
    drain(&store, &mut c);
    store.close().unwrap();
    let dir = store.dir();
    for _ in 0..3 {
        let begun = Instant::now();
        assert_closed(c.poll(LONG), dir, "poll");
        assert!(
            begun.elapsed() < PROMPT,
            "poll waited {:?}",
            begun.elapsed()
        );
    }
    assert_closed(c.commit_sync(), dir, "commit_sync");
    assert_closed(
        c.commit(&[(tp(0), OffsetAndMetadata::new(1))]),
        dir,
        "commit",
    );
    assert_closed(c.committed(&tp(0)), dir, "committed");
    assert_closed(c.position(&tp(0)), dir, "position");
    assert_closed(c.seek(&tp(0), 0), dir, "seek");
    assert_closed(c.seek_to_beginning(&[]), dir, "seek_to_beginning");
    assert_closed(c.seek_to_end(&[]), dir, "seek_to_end");
    assert_closed(c.seek_to_time(0), dir, "seek_to_time");
    assert_closed(c.pause(&[tp(0)]), dir, "pause");
    assert_closed(c.resume(&[tp(0)]), dir, "resume");
    assert_closed(c.subscribe(&["t"]), dir, "subscribe");
    assert_closed(c.assign(&[tp(0)]), dir, "assign");
}

#[test]
fn a_consumer_on_a_closed_store_closes_and_drops_without_hanging() {
    let (_dir, store, _clock) = setup();
    let auto_commit = ConsumerConfig {
        enable_auto_commit: true,
        ..config()
    };
    let mut member = store.consumer(auto_commit.clone()).unwrap();
    member.subscribe(&["t"]).unwrap();
    drain(&store, &mut member);
    let mut assigned = store.consumer(auto_commit).unwrap();
    assigned.assign(&[tp(0)]).unwrap();
    assert!(!assigned.poll(Duration::from_secs(1)).unwrap().is_empty());
    store.close().unwrap();
    let begun = Instant::now();
    // Their auto-commits cannot be made: close says so, and the consumer is closed anyway.
    assert_closed(member.close(), store.dir(), "close of a group member");
    assert!(store.describe_group("g").is_empty(), "it left the group");
    drop(assigned);
    assert!(begun.elapsed() < PROMPT);
}
