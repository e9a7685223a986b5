//! Consumers on virtual time: with a [`ManualClock`](topiclog::ManualClock) as the store's clock,
//! a poll's timeout and a member's `max_poll_interval` pass when the test moves the clock, with
//! no real time passing.

use std::thread;
use std::time::{Duration, Instant};

use crate::common::clock::{poll_times_out, TestClock};
use topiclog::{
    AutoOffsetReset, Consumer, ConsumerConfig, Durability, LogConfig, Record, Store, StoreOptions,
    TopicConfig, TopicPartition,
};

const NOW: i64 = 1_700_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);
/// Generous bound (real time) for what takes milliseconds.
const PROMPT: Duration = Duration::from_secs(5);

fn store(clock: &TestClock) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        log: LogConfig {
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    };
    let store = Store::open_with_env(dir.path(), options, clock.env()).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    (dir, store)
}

fn member(store: &Store, name: &str, max_poll_interval: Duration) -> Consumer {
    let mut c = store
        .consumer(ConsumerConfig {
            client_id: name.into(),
            auto_offset_reset: AutoOffsetReset::Earliest,
            enable_auto_commit: false,
            max_poll_interval,
            ..ConsumerConfig::group("g")
        })
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    c
}

#[test]
fn an_hour_long_poll_times_out_when_the_clock_passes_it_with_no_real_time_passing() {
    let clock = TestClock::new(NOW);
    let (_dir, store) = store(&clock);
    let mut c = store.consumer(ConsumerConfig::default()).unwrap();
    c.assign(&[TopicPartition::new("t", 0), TopicPartition::new("t", 1)])
        .unwrap();
    let real = poll_times_out(&mut c, &clock, HOUR);
    assert!(real < PROMPT, "an hour of the clock took {real:?}");
    // A zero timeout does not wait at all, and data still wakes a waiting poll at once.
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    store
        .topic("t")
        .unwrap()
        .send_to(1, Record::new("x"))
        .unwrap();
    assert_eq!(c.poll(HOUR).unwrap().len(), 1);
}

#[test]
fn a_member_missing_max_poll_interval_is_removed_when_the_clock_passes_it() {
    let clock = TestClock::new(NOW);
    let (_dir, store) = store(&clock);
    let interval = Duration::from_secs(300);
    let mut slow = member(&store, "slow", interval);
    let mut other = member(&store, "other", HOUR);
    let start = Instant::now();
    while slow.assignment().len() != 1 || other.assignment().len() != 1 {
        slow.poll(Duration::ZERO).unwrap();
        other.poll(Duration::ZERO).unwrap();
        assert!(start.elapsed() < PROMPT, "the group did not settle");
    }
    let members = || store.describe_group("g").len();
    assert_eq!(members(), 2);

    // `slow` stops polling. Up to its interval it stays in the group, however often `other`
    // polls; a moment past it, `other`'s next poll removes it and takes everything.
    clock.advance(interval);
    other.poll(Duration::ZERO).unwrap();
    assert_eq!(members(), 2, "removed before its max_poll_interval passed");
    clock.advance(Duration::from_millis(1));
    let start = Instant::now();
    while other.assignment().len() != 2 {
        other.poll(Duration::ZERO).unwrap();
        assert!(
            start.elapsed() < PROMPT,
            "other never took slow's partition"
        );
    }
    assert_eq!(members(), 1, "slow was removed");
    assert!(
        start.elapsed() < PROMPT,
        "five minutes of the clock took {:?}",
        start.elapsed()
    );

    // Polling again, `slow` rejoins (as a new member) and gets a partition back; `other`, waiting
    // in a long poll meanwhile, is woken by the rebalance and gives it up.
    thread::scope(|s| {
        let seen = clock.reads();
        let waiting = s.spawn(|| other.poll(HOUR));
        clock.await_read_past(seen);
        let start = Instant::now();
        // (Until it polls, it still believes it owns what it owned.)
        slow.poll(Duration::ZERO).unwrap();
        while members() != 2 || slow.assignment().len() != 1 {
            slow.poll(Duration::ZERO).unwrap();
            assert!(start.elapsed() < PROMPT, "slow did not rejoin");
        }
        store
            .topic("t")
            .unwrap()
            .send_to(other_partition(&slow), Record::new("wake"))
            .unwrap();
        assert_eq!(waiting.join().unwrap().unwrap().len(), 1);
    });
    assert_eq!(members(), 2);
    assert_eq!(other.assignment().len() + slow.assignment().len(), 2);
}

/// The partition of `t` (of two) that `c` does not own.
fn other_partition(c: &Consumer) -> u32 {
    1 - c.assignment()[0].partition
}
