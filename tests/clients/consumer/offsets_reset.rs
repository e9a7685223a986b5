//! Where a consumer reads from and what it commits: `auto_offset_reset` with no commit and with a
//! commit that retention deleted; seek, position, pause and resume; manual assignment and its
//! commits; commit metadata across a reopen; auto-commit; lag reporting and group deletion;
//! `Isolation::ReadCommitted`; the reserved offsets topic; `poll` waking on new data; invalid
//! configurations and closed consumers.
//!
//! One ignored test pins a bug: a poll that fails on one partition loses records it had already
//! read from others.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clock::{poll_times_out, TestClock};
use topiclog::limits::MAX_METADATA_BYTES;
use topiclog::{
    AutoOffsetReset, Consumer, ConsumerConfig, Durability, Env, Error, Isolation, LogConfig,
    ManualClock, OffsetAndMetadata, Record, Retention, Store, StoreOptions, TopicConfig,
    TopicPartition,
};

const HOUR: Duration = Duration::from_secs(3600);
const NOW: i64 = 1_700_000_000_000;
/// Generous bound for "promptly" on a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

/// A store with topic `t` of `partitions` partitions holding `per_partition` records each.
fn setup(partitions: u32, per_partition: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    fill(&store, partitions, per_partition);
    (dir, store)
}

/// [`setup`] on virtual time: the store's clock moves only when the test moves it.
fn setup_virtual(partitions: u32, per_partition: u64) -> (tempfile::TempDir, Store, TestClock) {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(NOW);
    let store = Store::open_with_env(dir.path(), options(), clock.env()).unwrap();
    fill(&store, partitions, per_partition);
    (dir, store, clock)
}

fn fill(store: &Store, partitions: u32, per_partition: u64) {
    let t = store
        .create_topic("t", TopicConfig::with_partitions(partitions))
        .unwrap();
    for p in 0..partitions {
        for i in 0..per_partition {
            t.send_to(p, Record::new(format!("{p}-{i}"))).unwrap();
        }
    }
}

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn consumer(store: &Store, group: Option<&str>, reset: AutoOffsetReset) -> Consumer {
    store
        .consumer(ConsumerConfig {
            group_id: group.map(str::to_owned),
            auto_offset_reset: reset,
            enable_auto_commit: false,
            ..ConsumerConfig::default()
        })
        .unwrap()
}

/// Commit `offsets` of topic `t` for `group` through a manually assigned consumer (allowed: the
/// group has no members).
fn commit(store: &Store, group: &str, offsets: &[(u32, u64)]) {
    let c = consumer(store, Some(group), AutoOffsetReset::None);
    let offsets: Vec<_> = offsets
        .iter()
        .map(|&(p, o)| (tp(p), OffsetAndMetadata::new(o)))
        .collect();
    c.commit(&offsets).unwrap();
}

/// Poll until a poll returns nothing; every `(partition, offset)` returned, in order.
fn drain(c: &mut Consumer) -> Vec<(u32, u64)> {
    drain_within(c, Duration::from_millis(50))
}

/// [`drain`] on a store whose clock stands still: polls without waiting, until two in a row
/// return nothing (a poll that finds no position, or one out of range, resets it and returns
/// nothing when it has no time left to read from there: the next one does).
fn drain_now(c: &mut Consumer) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let records = c.poll(Duration::ZERO).unwrap();
        empty = if records.is_empty() { empty + 1 } else { 0 };
        out.extend(records.iter().map(|r| (r.partition(), r.offset())));
    }
    out
}

fn drain_within(c: &mut Consumer, timeout: Duration) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    loop {
        let records = c.poll(timeout).unwrap();
        if records.is_empty() {
            return out;
        }
        out.extend(records.iter().map(|r| (r.partition(), r.offset())));
    }
}

/// The offsets of `partition` among `got`.
fn offsets_of(got: &[(u32, u64)], partition: u32) -> Vec<u64> {
    got.iter()
        .filter(|(p, _)| *p == partition)
        .map(|&(_, o)| o)
        .collect()
}

fn range(from: u64, to: u64) -> Vec<u64> {
    (from..to).collect()
}

#[test]
fn auto_offset_reset_without_a_commit() {
    let (_dir, store) = setup(1, 10);
    let t = store.topic("t").unwrap();

    let mut earliest = consumer(&store, Some("e"), AutoOffsetReset::Earliest);
    earliest.assign(&[tp(0)]).unwrap();
    assert_eq!(earliest.position(&tp(0)).unwrap(), 0);
    assert_eq!(offsets_of(&drain(&mut earliest), 0), range(0, 10));

    let mut latest = consumer(&store, Some("l"), AutoOffsetReset::Latest);
    latest.assign(&[tp(0)]).unwrap();
    assert_eq!(latest.position(&tp(0)).unwrap(), 10);
    assert!(drain(&mut latest).is_empty());
    t.send(Record::new("new")).unwrap();
    assert_eq!(drain(&mut latest), [(0, 10)]);

    // The default is Latest, as in Kafka.
    assert_eq!(
        ConsumerConfig::default().auto_offset_reset,
        AutoOffsetReset::Latest
    );

    // None: no commit is an error, from position and from poll; a commit fixes it.
    let mut none = consumer(&store, Some("n"), AutoOffsetReset::None);
    none.assign(&[tp(0)]).unwrap();
    for r in [
        none.position(&tp(0)).map(|_| ()),
        none.poll(Duration::from_millis(10)).map(|_| ()),
    ] {
        match r {
            Err(Error::NoOffset { topic, partition }) => assert_eq!((&*topic, partition), ("t", 0)),
            other => panic!("expected NoOffset, got {other:?}"),
        }
    }
    commit(&store, "n", &[(0, 4)]);
    assert_eq!(none.position(&tp(0)).unwrap(), 4);
    assert_eq!(offsets_of(&drain(&mut none), 0), range(4, 11));

    // Subscribed, the same: the error comes from the poll that gets the assignment.
    let mut sub = consumer(&store, Some("n2"), AutoOffsetReset::None);
    sub.subscribe(&["t"]).unwrap();
    let start = Instant::now();
    loop {
        match sub.poll(Duration::from_millis(10)) {
            Err(Error::NoOffset { .. }) => break,
            Ok(r) => assert!(r.is_empty() && start.elapsed() < PROMPT, "no NoOffset"),
            Err(e) => panic!("{e}"),
        }
    }
    // A seek gives it a position.
    sub.seek(&tp(0), 8).unwrap();
    assert_eq!(offsets_of(&drain(&mut sub), 0), range(8, 11));
}

/// A committed offset that retention deleted: the position is out of range, and the policy
/// decides (Earliest: the log start; Latest: the end; None: `OffsetOutOfRange`).
#[test]
fn committed_offset_deleted_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let store = Store::open_with_env(
        dir.path(),
        StoreOptions {
            log: LogConfig {
                segment_bytes: 1024,
                preallocate: false,
                retention: Retention::After(HOUR),
                ..options().log
            },
            ..options()
        },
        Env {
            clock: Arc::new(clock.clone()),
            ..Env::default()
        },
    )
    .unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let p = t.partition(0).unwrap();
    for i in 0..30 {
        t.send(Record::new(vec![b'x'; 200]).with_key(format!("old-{i}")))
            .unwrap();
    }
    for group in ["e", "l", "n"] {
        commit(&store, group, &[(0, 2)]);
    }
    // Two hours on, five new records; retention drops every segment holding only old ones.
    clock.advance(2 * HOUR);
    for i in 0..5 {
        t.send(Record::new(vec![b'y'; 200]).with_key(format!("new-{i}")))
            .unwrap();
    }
    store.maintain().unwrap();
    let (start, end) = (p.start_offset(), p.end_offset());
    assert!(start > 2 && start < end, "[{start}, {end})");

    let mut earliest = consumer(&store, Some("e"), AutoOffsetReset::Earliest);
    earliest.assign(&[tp(0)]).unwrap();
    assert_eq!(offsets_of(&drain_now(&mut earliest), 0), range(start, end));

    let mut latest = consumer(&store, Some("l"), AutoOffsetReset::Latest);
    latest.assign(&[tp(0)]).unwrap();
    assert!(drain_now(&mut latest).is_empty());
    assert_eq!(latest.position(&tp(0)).unwrap(), end);
    t.send(Record::new("later")).unwrap();
    assert_eq!(drain_now(&mut latest), [(0, end)]);

    let mut none = consumer(&store, Some("n"), AutoOffsetReset::None);
    none.assign(&[tp(0)]).unwrap();
    match none.poll(Duration::from_millis(10)) {
        Err(Error::OffsetOutOfRange {
            requested,
            start: s,
            ..
        }) => assert_eq!((requested, s), (2, start)),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    // Committing a position in range (what an operator would do) lets it go on.
    none.seek(&tp(0), start + 1).unwrap();
    assert_eq!(
        offsets_of(&drain_now(&mut none), 0),
        range(start + 1, end + 1)
    );
}

/// The same through `delete_records` (the log start moves, segments stay) and subscribed
/// consumers.
#[test]
fn committed_offset_below_the_log_start_after_delete_records() {
    let (_dir, store) = setup(2, 20);
    let t = store.topic("t").unwrap();
    for group in ["e", "l", "n"] {
        commit(&store, group, &[(0, 3), (1, 15)]);
    }
    assert_eq!(t.partition(0).unwrap().delete_records(10).unwrap(), 10);

    // Subscribe and poll until assigned; the consumer and what those polls returned.
    let subscribed = |group: &str, reset| {
        let mut c = consumer(&store, Some(group), reset);
        c.subscribe(&["t"]).unwrap();
        let start = Instant::now();
        let mut got = Vec::new();
        while c.assignment().len() < 2 {
            assert!(start.elapsed() < PROMPT, "no assignment");
            let records = c.poll(Duration::from_millis(10)).unwrap();
            got.extend(records.iter().map(|r| (r.partition(), r.offset())));
        }
        got.extend(drain(&mut c));
        (c, got)
    };
    let (e, got) = subscribed("e", AutoOffsetReset::Earliest);
    assert_eq!(offsets_of(&got, 0), range(10, 20));
    assert_eq!(
        offsets_of(&got, 1),
        range(15, 20),
        "in range: the commit holds"
    );
    e.commit_sync().unwrap();
    assert_eq!(e.committed(&tp(0)).unwrap().unwrap().offset, 20);
    drop(e);

    let (mut l, got) = subscribed("l", AutoOffsetReset::Latest);
    assert_eq!(offsets_of(&got, 0), Vec::<u64>::new());
    assert_eq!(offsets_of(&got, 1), range(15, 20));
    assert_eq!(l.position(&tp(0)).unwrap(), 20);
    drop(l);

    let mut n = consumer(&store, Some("n"), AutoOffsetReset::None);
    n.subscribe(&["t"]).unwrap();
    let start = Instant::now();
    let err = loop {
        // Partition 1's records may come first; partition 0 must fail.
        match n.poll(Duration::from_millis(10)) {
            Ok(_) => assert!(start.elapsed() < PROMPT, "no OffsetOutOfRange"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            Error::OffsetOutOfRange {
                requested: 3,
                start: 10,
                end: 20
            }
        ),
        "{err:?}"
    );
}

#[test]
fn seek_position_pause_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..10i64 {
        t.send_to(0, Record::new("a").with_timestamp(1_000 + 10 * i))
            .unwrap();
        t.send_to(1, Record::new("b").with_timestamp(2_000 + 10 * i))
            .unwrap();
    }
    let mut c = consumer(&store, None, AutoOffsetReset::Earliest);
    c.assign(&[tp(0), tp(1)]).unwrap();
    assert_eq!(c.assignment(), [tp(0), tp(1)]);
    assert_eq!(c.position(&tp(0)).unwrap(), 0);

    c.seek(&tp(0), 5).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 5);
    let got = drain(&mut c);
    assert_eq!(offsets_of(&got, 0), range(5, 10));
    assert_eq!(offsets_of(&got, 1), range(0, 10));
    assert_eq!(c.position(&tp(0)).unwrap(), 10);

    // Back to the start of one partition only.
    c.seek_to_beginning(&[tp(1)]).unwrap();
    assert_eq!(
        (c.position(&tp(0)).unwrap(), c.position(&tp(1)).unwrap()),
        (10, 0)
    );
    assert_eq!(
        drain(&mut c),
        range(0, 10).into_iter().map(|o| (1, o)).collect::<Vec<_>>()
    );

    // All partitions (empty list) to the start, then to the end.
    c.seek_to_beginning(&[]).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 0);
    assert_eq!(c.position(&tp(1)).unwrap(), 0);
    c.seek_to_end(&[]).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 10);
    assert_eq!(c.position(&tp(1)).unwrap(), 10);
    assert!(drain(&mut c).is_empty());
    c.seek_to_beginning(&[]).unwrap();
    c.seek_to_end(&[tp(0)]).unwrap();
    assert_eq!(
        (c.position(&tp(0)).unwrap(), c.position(&tp(1)).unwrap()),
        (10, 0)
    );

    // By time: the first record at or after the timestamp, the end if none.
    c.seek_to_time(1_055).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 6);
    assert_eq!(c.position(&tp(1)).unwrap(), 0);
    c.seek_to_time(2_090).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 10);
    assert_eq!(c.position(&tp(1)).unwrap(), 9);
    c.seek_to_time(9_999).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 10);
    assert_eq!(c.position(&tp(1)).unwrap(), 10);
    c.seek_to_time(0).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 0);

    // Paused partitions stay assigned, keep their position and return nothing until resumed.
    c.seek_to_beginning(&[]).unwrap();
    c.pause(&[tp(0)]).unwrap();
    assert_eq!(c.paused(), [tp(0)]);
    assert_eq!(c.assignment(), [tp(0), tp(1)]);
    let got = drain(&mut c);
    assert_eq!(offsets_of(&got, 0), Vec::<u64>::new());
    assert_eq!(offsets_of(&got, 1), range(0, 10));
    assert_eq!(c.position(&tp(0)).unwrap(), 0);
    // Everything paused: poll waits out its timeout and returns nothing.
    c.pause(&[tp(1)]).unwrap();
    t.send_to(1, Record::new("while paused")).unwrap();
    assert!(c.poll(Duration::from_millis(100)).unwrap().is_empty());
    c.resume(&[tp(0), tp(1)]).unwrap();
    assert!(c.paused().is_empty());
    let got = drain(&mut c);
    assert_eq!(offsets_of(&got, 0), range(0, 10));
    assert_eq!(offsets_of(&got, 1), [10]);

    // A seek past the end is out of range when read: the reset policy applies (Earliest here).
    c.seek(&tp(0), 50).unwrap();
    assert_eq!(c.position(&tp(0)).unwrap(), 50);
    assert_eq!(offsets_of(&drain(&mut c), 0), range(0, 10));
}

#[test]
fn partitions_not_assigned_are_refused() {
    let (_dir, store) = setup(2, 3);
    let mut c = consumer(&store, Some("g"), AutoOffsetReset::Earliest);
    let not_assigned = |r: topiclog::Result<()>| match r {
        Err(Error::NotAssigned { topic, partition }) => assert_eq!((&*topic, partition), ("t", 1)),
        other => panic!("expected NotAssigned, got {other:?}"),
    };
    // Nothing assigned yet.
    not_assigned(c.position(&tp(1)).map(|_| ()));
    c.assign(&[tp(0)]).unwrap();
    not_assigned(c.position(&tp(1)).map(|_| ()));
    not_assigned(c.seek(&tp(1), 0));
    not_assigned(c.seek_to_beginning(&[tp(1)]));
    not_assigned(c.seek_to_end(&[tp(1)]));
    not_assigned(c.pause(&[tp(1)]));
    not_assigned(c.resume(&[tp(1)]));
    // Assigning what does not exist.
    assert!(matches!(
        c.assign(&[TopicPartition::new("nope", 0)]),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        c.assign(&[tp(2)]),
        Err(Error::InvalidPartition { partition: 2, .. })
    ));
    // A failed assign leaves the assignment as it was.
    assert_eq!(c.assignment(), [tp(0)]);
    // assign replaces the assignment.
    c.assign(&[tp(1)]).unwrap();
    assert_eq!(c.assignment(), [tp(1)]);
    assert!(matches!(
        c.position(&tp(0)),
        Err(Error::NotAssigned { partition: 0, .. })
    ));
    // Without a group there is nothing to commit to.
    let mut solo = consumer(&store, None, AutoOffsetReset::Earliest);
    solo.assign(&[tp(0)]).unwrap();
    drain(&mut solo);
    assert!(matches!(
        solo.commit_sync(),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        solo.committed(&tp(0)),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        solo.subscribe(&["t"]),
        Err(Error::InvalidConfig { .. })
    ));
}

/// A manually assigned consumer may commit to its group while nobody is subscribed in it, and is
/// refused while somebody is.
#[test]
fn manual_assignment_commits_only_while_the_group_has_no_members() {
    let (_dir, store) = setup(1, 10);
    let mut manual = consumer(&store, Some("g"), AutoOffsetReset::Earliest);
    manual.assign(&[tp(0)]).unwrap();
    assert_eq!(drain(&mut manual).len(), 10);
    manual.commit_sync().unwrap();
    assert_eq!(manual.committed(&tp(0)).unwrap().unwrap().offset, 10);

    let mut member = consumer(&store, Some("g"), AutoOffsetReset::Earliest);
    member.subscribe(&["t"]).unwrap();
    manual.seek(&tp(0), 4).unwrap();
    match manual.commit_sync() {
        Err(Error::CommitFailed { group, .. }) => assert_eq!(group, "g"),
        other => panic!("expected CommitFailed, got {other:?}"),
    }
    assert_eq!(manual.committed(&tp(0)).unwrap().unwrap().offset, 10);
    // Another group is not affected.
    let other = consumer(&store, Some("other"), AutoOffsetReset::Earliest);
    other.commit(&[(tp(0), OffsetAndMetadata::new(1))]).unwrap();

    member.close().unwrap();
    manual.commit_sync().unwrap();
    assert_eq!(manual.committed(&tp(0)).unwrap().unwrap().offset, 4);
    // Its stats count the two commits that went through and the one refused; its position (4)
    // is 6 behind the log end.
    let stats = manual.stats();
    assert_eq!((stats.commits, stats.commits_failed), (2, 1), "{stats:?}");
    assert_eq!(stats.records_consumed, 10);
    assert_eq!(stats.assigned_partitions, 1);
    assert_eq!(
        (stats.records_lag_max, stats.records_lag_total),
        (Some(6), 6)
    );
}

#[test]
fn commit_metadata_round_trips_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let opts = || StoreOptions { ..options() };
    let env = || Env {
        clock: Arc::new(clock.clone()),
        ..Env::default()
    };
    let store = Store::open_with_env(dir.path(), opts(), env()).unwrap();
    fill(&store, 2, 10);
    let c = consumer(&store, Some("g"), AutoOffsetReset::None);
    c.commit(&[
        (
            tp(0),
            OffsetAndMetadata {
                offset: 3,
                metadata: "first".into(),
                commit_timestamp: 0,
            },
        ),
        (
            tp(1),
            OffsetAndMetadata {
                offset: 7,
                metadata: "ünïcödé ✓".into(),
                commit_timestamp: 42,
            },
        ),
    ])
    .unwrap();
    clock.advance(Duration::from_secs(5));
    c.commit(&[(
        tp(0),
        OffsetAndMetadata {
            offset: 5,
            metadata: "second".into(),
            commit_timestamp: 0,
        },
    )])
    .unwrap();
    let expected0 = OffsetAndMetadata {
        offset: 5,
        metadata: "second".into(),
        commit_timestamp: NOW + 5_000,
    };
    let expected1 = OffsetAndMetadata {
        offset: 7,
        metadata: "ünïcödé ✓".into(),
        commit_timestamp: 42,
    };
    assert_eq!(c.committed(&tp(0)).unwrap(), Some(expected0.clone()));
    assert_eq!(c.committed(&tp(1)).unwrap(), Some(expected1.clone()));

    // Metadata longer than the limit is refused and changes nothing.
    let long = OffsetAndMetadata {
        offset: 9,
        metadata: "m".repeat(MAX_METADATA_BYTES + 1),
        commit_timestamp: 0,
    };
    assert!(matches!(
        c.commit(&[(tp(0), long)]),
        Err(Error::InvalidConfig { .. })
    ));
    let at_limit = OffsetAndMetadata {
        offset: 5,
        metadata: "m".repeat(MAX_METADATA_BYTES),
        commit_timestamp: 1,
    };
    c.commit(&[(tp(1), at_limit.clone())]).unwrap();
    c.commit(&[(tp(1), expected1.clone())]).unwrap();
    assert_eq!(c.committed(&tp(0)).unwrap(), Some(expected0.clone()));
    drop(c);
    store.close().unwrap();
    drop(store);

    let store = Store::open_with_env(dir.path(), opts(), env()).unwrap();
    let mut c = consumer(&store, Some("g"), AutoOffsetReset::None);
    assert_eq!(c.committed(&tp(0)).unwrap(), Some(expected0.clone()));
    assert_eq!(c.committed(&tp(1)).unwrap(), Some(expected1.clone()));
    let lag = store.group_lag("g").unwrap();
    assert_eq!(lag.len(), 2);
    assert_eq!(lag[0].committed, Some(expected0));
    assert_eq!(lag[1].committed, Some(expected1));
    // The group resumes there.
    c.assign(&[tp(0), tp(1)]).unwrap();
    let got = drain_now(&mut c);
    assert_eq!(offsets_of(&got, 0), range(5, 10));
    assert_eq!(offsets_of(&got, 1), range(7, 10));
    // Other groups have nothing.
    let other = consumer(&store, Some("h"), AutoOffsetReset::None);
    assert_eq!(other.committed(&tp(0)).unwrap(), None);
}

/// Auto-commit commits the positions of what `poll` already returned — every
/// `auto_commit_interval` (at the start of a later poll) and on close — never further.
#[test]
fn auto_commit_at_the_interval_and_on_close() {
    let (_dir, store, clock) = setup_virtual(1, 100);
    let auto = |group: &str, interval: Duration| {
        store
            .consumer(ConsumerConfig {
                auto_offset_reset: AutoOffsetReset::Earliest,
                enable_auto_commit: true,
                auto_commit_interval: interval,
                max_poll_records: 10,
                ..ConsumerConfig::group(group)
            })
            .unwrap()
    };
    let committed = |c: &Consumer| c.committed(&tp(0)).unwrap().map(|o| o.offset);
    assert!(ConsumerConfig::default().enable_auto_commit);

    // A long interval: nothing is committed while polling; close commits what was returned.
    let mut slow = auto("slow", HOUR);
    slow.subscribe(&["t"]).unwrap();
    let mut returned = 0;
    for _ in 0..3 {
        returned += slow.poll(PROMPT).unwrap().len();
        assert_eq!(committed(&slow), None);
    }
    assert_eq!(returned, 30);
    slow.close().unwrap();
    assert_eq!(
        consumer(&store, Some("slow"), AutoOffsetReset::None)
            .committed(&tp(0))
            .unwrap()
            .map(|o| o.offset),
        Some(30)
    );

    // A short interval: the next poll after it commits what the previous polls returned (not
    // what it is about to return).
    let mut fast = auto("fast", Duration::from_millis(200));
    fast.subscribe(&["t"]).unwrap();
    let first = fast.poll(PROMPT).unwrap();
    assert_eq!(
        first.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        range(0, 10)
    );
    assert_eq!(committed(&fast), None);
    clock.advance(Duration::from_millis(300));
    let second = fast.poll(PROMPT).unwrap();
    assert_eq!(
        second.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        range(10, 20)
    );
    assert_eq!(committed(&fast), Some(10));
    // Dropping closes, which commits.
    drop(fast);
    assert_eq!(
        consumer(&store, Some("fast"), AutoOffsetReset::None)
            .committed(&tp(0))
            .unwrap()
            .map(|o| o.offset),
        Some(20)
    );

    // A manually assigned consumer auto-commits to its group on close too.
    let mut manual = auto("manual", HOUR);
    manual.assign(&[tp(0)]).unwrap();
    assert_eq!(manual.poll(PROMPT).unwrap().len(), 10);
    manual.close().unwrap();
    assert_eq!(
        consumer(&store, Some("manual"), AutoOffsetReset::None)
            .committed(&tp(0))
            .unwrap()
            .map(|o| o.offset),
        Some(10)
    );
    // And nothing with auto-commit off.
    let mut off = consumer(&store, Some("off"), AutoOffsetReset::Earliest);
    off.assign(&[tp(0)]).unwrap();
    assert_eq!(drain_now(&mut off).len(), 100);
    off.close().unwrap();
    assert_eq!(
        consumer(&store, Some("off"), AutoOffsetReset::None)
            .committed(&tp(0))
            .unwrap(),
        None
    );
}

#[test]
fn group_lag_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    assert!(store.groups().unwrap().is_empty());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    for (p, n) in [(0, 10), (1, 20), (2, 30)] {
        for i in 0..n {
            t.send_to(p, Record::new(format!("{i}"))).unwrap();
        }
    }
    commit(&store, "g", &[(0, 4), (1, 25)]);
    let lag = store.group_lag("g").unwrap();
    let figures: Vec<_> = lag
        .iter()
        .map(|l| {
            (
                l.partition.clone(),
                l.end_offset,
                l.committed.as_ref().map(|c| c.offset),
                l.lag,
                l.owner.clone(),
            )
        })
        .collect();
    assert_eq!(
        figures,
        [
            (tp(0), Some(10), Some(4), Some(6), None),
            // Committed past the end: no negative lag.
            (tp(1), Some(20), Some(25), Some(0), None),
        ]
    );
    assert!(store.group_lag("unknown").unwrap().is_empty());

    // A member of g owning every partition; partition 2 has no commit.
    let mut member = consumer(&store, Some("g"), AutoOffsetReset::Earliest);
    member.subscribe(&["t"]).unwrap();
    let start = Instant::now();
    while member.assignment().len() < 3 {
        assert!(start.elapsed() < PROMPT, "no assignment");
        member.poll(Duration::from_millis(10)).unwrap();
    }
    let id = member.member_id().unwrap();
    let lag = store.group_lag("g").unwrap();
    assert_eq!(lag.len(), 3);
    assert!(
        lag.iter().all(|l| l.owner.as_deref() == Some(id.as_str())),
        "{lag:?}"
    );
    assert_eq!(
        (lag[2].end_offset, lag[2].committed.clone(), lag[2].lag),
        (Some(30), None, None)
    );
    // Consume everything and commit: no lag left.
    drain(&mut member);
    member.commit_sync().unwrap();
    let lag = store.group_lag("g").unwrap();
    assert_eq!(
        lag.iter().map(|l| l.lag).collect::<Vec<_>>(),
        [Some(0), Some(0), Some(0)]
    );
    // New records show as lag.
    t.send_to(2, Record::new("more")).unwrap();
    assert_eq!(store.group_lag("g").unwrap()[2].lag, Some(1));

    // groups(): groups with commits, and groups with members but no commits, sorted.
    let mut idle = consumer(&store, Some("b-idle"), AutoOffsetReset::Latest);
    idle.subscribe(&["t"]).unwrap();
    commit(&store, "a-done", &[(0, 1)]);
    assert_eq!(store.groups().unwrap(), ["a-done", "b-idle", "g"]);
    idle.close().unwrap();
    member.close().unwrap();
    assert_eq!(store.groups().unwrap(), ["a-done", "g"]);
    store.close().unwrap();
    drop(store);
    let store = Store::open_with(dir.path(), options()).unwrap();
    assert_eq!(store.groups().unwrap(), ["a-done", "g"]);
}

#[test]
fn delete_group_is_refused_while_members_exist() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    fill(&store, 2, 5);
    commit(&store, "g", &[(0, 2), (1, 3)]);
    let mut member = consumer(&store, Some("g"), AutoOffsetReset::Earliest);
    member.subscribe(&["t"]).unwrap();
    match store.delete_group("g") {
        Err(Error::CommitFailed { group, .. }) => assert_eq!(group, "g"),
        other => panic!("expected CommitFailed, got {other:?}"),
    }
    assert_eq!(store.group_lag("g").unwrap().len(), 2);
    member.close().unwrap();
    assert_eq!(store.delete_group("g").unwrap(), 2);
    assert!(store.group_lag("g").unwrap().is_empty());
    assert!(!store.groups().unwrap().contains(&"g".to_string()));
    assert_eq!(store.delete_group("g").unwrap(), 0);
    assert_eq!(store.delete_group("never").unwrap(), 0);
    store.close().unwrap();
    drop(store);

    // Deleted for good: a new member starts by its reset policy.
    let store = Store::open_with(dir.path(), options()).unwrap();
    assert!(store.groups().unwrap().is_empty());
    let mut c = consumer(&store, Some("g"), AutoOffsetReset::Earliest);
    assert_eq!(c.committed(&tp(0)).unwrap(), None);
    c.assign(&[tp(0), tp(1)]).unwrap();
    assert_eq!(drain(&mut c).len(), 10);
}

/// `Isolation::ReadCommitted` returns only durable records: with `Durability::None`, nothing
/// past `durable_offset()` until a flush; the flush wakes a waiting poll.
#[test]
fn read_committed_stops_at_the_durable_offset() {
    let (_dir, store) = setup(1, 0);
    let t = store.topic("t").unwrap();
    let p = t.partition(0).unwrap();
    for i in 0..5 {
        t.send(Record::new(format!("{i}"))).unwrap();
    }
    p.flush().unwrap();
    for i in 5..10 {
        t.send(Record::new(format!("{i}"))).unwrap();
    }
    assert_eq!((p.durable_offset(), p.end_offset()), (5, 10));

    let isolated = |isolation| {
        let mut c = store
            .consumer(ConsumerConfig {
                auto_offset_reset: AutoOffsetReset::Earliest,
                isolation,
                ..ConsumerConfig::default()
            })
            .unwrap();
        c.assign(&[tp(0)]).unwrap();
        c
    };
    let mut committed = isolated(Isolation::ReadCommitted);
    let got = drain(&mut committed);
    assert_eq!(offsets_of(&got, 0), range(0, 5));
    assert!(got.iter().all(|&(_, o)| o < p.durable_offset()));
    assert_eq!(committed.position(&tp(0)).unwrap(), 5);
    // A seek into the non-durable part returns nothing either.
    committed.seek(&tp(0), 7).unwrap();
    assert!(committed
        .poll(Duration::from_millis(50))
        .unwrap()
        .is_empty());
    committed.seek(&tp(0), 5).unwrap();

    let mut uncommitted = isolated(Isolation::ReadUncommitted);
    assert_eq!(offsets_of(&drain(&mut uncommitted), 0), range(0, 10));

    // Another thread flushes after 200 ms; the waiting poll returns the rest promptly.
    let flusher = {
        let p = p.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            p.flush().unwrap();
        })
    };
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < 5 {
        let records = committed.poll(Duration::from_secs(10)).unwrap();
        assert!(records.iter().all(|r| r.offset() < p.durable_offset()));
        got.extend(records.iter().map(|r| r.offset()));
        assert!(start.elapsed() < PROMPT, "the flush did not wake the poll");
    }
    assert_eq!(got, range(5, 10));
    flusher.join().unwrap();
}

/// Names starting with `__` are the store's own: `__consumer_offsets` exists once a group is
/// used, but is neither listed nor reachable as a topic.
#[test]
fn reserved_topic_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    fill(&store, 1, 3);
    for name in ["__x", "__consumer_offsets"] {
        assert!(
            matches!(
                store.create_topic(name, TopicConfig::with_partitions(1)),
                Err(Error::InvalidTopicName { .. })
            ),
            "{name}"
        );
        assert!(matches!(
            store.topic_or_create(name),
            Err(Error::InvalidTopicName { .. })
        ));
    }
    commit(&store, "g", &[(0, 1)]);
    let offsets = "__consumer_offsets";
    assert!(matches!(
        store.topic(offsets),
        Err(Error::UnknownTopic { .. })
    ));
    assert_eq!(store.topics(), ["t"]);
    assert!(matches!(
        store.delete_topic(offsets),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        store.add_partitions(offsets, 10),
        Err(Error::UnknownTopic { .. })
    ));
    let mut c = consumer(&store, None, AutoOffsetReset::Earliest);
    assert!(matches!(
        c.assign(&[TopicPartition::new(offsets, 0)]),
        Err(Error::UnknownTopic { .. })
    ));
    store.close().unwrap();
    drop(store);
    let store = Store::open_with(dir.path(), options()).unwrap();
    assert_eq!(store.topics(), ["t"]);
    assert!(matches!(
        store.topic(offsets),
        Err(Error::UnknownTopic { .. })
    ));
    assert_eq!(store.groups().unwrap(), ["g"]);
}

/// `poll` returns as soon as a record arrives on any assigned partition (not at its timeout), and
/// returns nothing once its timeout passes with nothing new.
#[test]
fn poll_wakes_on_new_data_and_times_out_without() {
    let (_dir, store, clock) = setup_virtual(4, 0);
    let t = store.topic("t").unwrap();
    for what in ["manual", "subscribed"] {
        // Latest: only what is sent from now on.
        let mut c = consumer(&store, Some(what), AutoOffsetReset::Latest);
        if what == "manual" {
            c.assign(&[tp(0), tp(1), tp(2), tp(3)]).unwrap();
        } else {
            c.subscribe(&["t"]).unwrap();
        }
        // Nothing there: empty after the timeout (of the store's clock), not before.
        let waited = poll_times_out(&mut c, &clock, Duration::from_millis(300));
        assert!(waited < PROMPT, "{what}: {waited:?}");

        for p in [3, 0] {
            // Sent once the poll is waiting (it has read its deadline); the clock stands still.
            let seen = clock.reads();
            let sender = {
                let (t, clock) = (t.clone(), clock.clone());
                thread::spawn(move || {
                    clock.await_read_past(seen);
                    t.send_to(p, Record::new("hello")).unwrap()
                })
            };
            let start = Instant::now();
            let records = c.poll(Duration::from_secs(10)).unwrap();
            let waited = start.elapsed();
            let sent = sender.join().unwrap();
            assert!(waited < PROMPT, "{what}: poll took {waited:?}");
            let got: Vec<_> = records
                .iter()
                .map(|r| (r.partition(), r.offset()))
                .collect();
            assert_eq!(got, [(p, sent.offset)], "{what}");
        }
    }
}

/// A poll that fails on one partition (here `OffsetOutOfRange` under `AutoOffsetReset::None`,
/// after retention passed its position) must not lose what it already read from the others.
/// `fetch` reads the partitions in turn, advancing each one's position as it collects its records,
/// then returns the error and drops the records collected: their positions stay advanced, so they
/// are never returned (and a later commit skips them for the group). Whether another partition is
/// read before the failing one depends on the fairness cursor, so both orders are tried.
#[test]
fn a_failing_poll_loses_no_records_of_other_partitions() {
    for bad in [0, 1] {
        let good = 1 - bad;
        let (_dir, store) = setup(2, 5);
        let t = store.topic("t").unwrap();
        let mut c = consumer(&store, None, AutoOffsetReset::None);
        c.assign(&[tp(0), tp(1)]).unwrap();
        c.seek_to_beginning(&[]).unwrap();
        let mut got = drain(&mut c);
        assert_eq!(got.len(), 10);
        for p in [0, 1] {
            for i in 5..10 {
                t.send_to(p, Record::new(format!("{p}-{i}"))).unwrap();
            }
        }
        // Retention passes the position (5) in `bad`: the next poll fails.
        t.partition(bad).unwrap().delete_records(8).unwrap();
        let start = Instant::now();
        loop {
            match c.poll(Duration::from_millis(50)) {
                Ok(records) => got.extend(records.iter().map(|r| (r.partition(), r.offset()))),
                Err(Error::OffsetOutOfRange { .. }) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(start.elapsed() < PROMPT, "no OffsetOutOfRange");
        }
        // The application handles it by going back to the start of that partition.
        c.seek_to_beginning(&[tp(bad)]).unwrap();
        got.extend(drain(&mut c));
        assert_eq!(offsets_of(&got, bad), [0, 1, 2, 3, 4, 8, 9]);
        assert_eq!(
            offsets_of(&got, good),
            range(0, 10),
            "records of partition {good} read by the failing poll were never returned"
        );
    }
}

#[test]
fn invalid_configs_and_closed_consumers_are_refused() {
    let (_dir, store) = setup(1, 1);
    let invalid = |config: ConsumerConfig, field: &str| match store.consumer(config) {
        Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
        other => panic!("{field}: expected InvalidConfig, got {other:?}"),
    };
    invalid(ConsumerConfig::group(""), "group_id");
    invalid(ConsumerConfig::group("g".repeat(256)), "group_id");
    let zero = |f: fn(&mut ConsumerConfig)| {
        let mut c = ConsumerConfig::group("g");
        f(&mut c);
        c
    };
    invalid(zero(|c| c.max_poll_records = 0), "max_poll_records");
    invalid(zero(|c| c.max_poll_bytes = 0), "max_poll_bytes");
    invalid(
        zero(|c| c.auto_commit_interval = Duration::ZERO),
        "auto_commit_interval",
    );
    invalid(
        zero(|c| c.max_poll_interval = Duration::ZERO),
        "max_poll_interval",
    );

    let mut c = consumer(&store, Some("g"), AutoOffsetReset::Earliest);
    c.subscribe(&["t"]).unwrap();
    c.close().unwrap();
    c.close().unwrap();
    assert!(store.describe_group("g").is_empty());
    assert!(matches!(
        c.poll(Duration::from_millis(10)),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(c.subscribe(&["t"]), Err(Error::Closed { .. })));
    assert!(matches!(c.assign(&[tp(0)]), Err(Error::Closed { .. })));
    store.close().unwrap();
    assert!(matches!(
        store.consumer(ConsumerConfig::group("g")),
        Err(Error::Closed { .. })
    ));
}
