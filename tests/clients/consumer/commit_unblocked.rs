//! A commit does not hold its group while it waits for the offsets topic's fsync (issue 10): while
//! one member's `commit_sync` is held in its fsync, another member's `poll` returns and its
//! `commit_sync` appends (and then waits for the fsync, which it shares); four members committing
//! at once cost two fsyncs, not four. Both fail before the fix (the group lock was held across the
//! fsync, so the other members blocked on it). On both file systems.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::sync_gate::{GatedFs, SyncGate};
use crate::common::{manual_store_options, TestRng};
use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{
    AssignmentStrategy, AutoOffsetReset, Consumer, ConsumerConfig, Env, Record, Store, TopicConfig,
    TopicPartition,
};

const TOPIC: &str = "t";
const GROUP: &str = "g";
const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Generous bound for things that take milliseconds.
const PROMPTLY: Duration = Duration::from_secs(5);

/// Run `f` on a store over the real file system and over the simulated one, with the offsets
/// topic's segment syncs under `gate`.
fn on_both(f: impl Fn(&Store, &SyncGate)) {
    let tmp = tempfile::tempdir().unwrap();
    let backends: [(Arc<dyn FileSystem>, &Path); 2] = [
        (Arc::new(StdFs::new()), tmp.path()),
        (Arc::new(SimFs::new(10)), Path::new("/sim/store")),
    ];
    for (inner, dir) in backends {
        let gate = SyncGate::new();
        let mut options = manual_store_options();
        // Preallocated segments are whole buffers in the simulated file system.
        options.log.preallocate = false;
        let store = Store::open_with_env(
            dir,
            options,
            Env::with_fs(Arc::new(GatedFs::new(inner, OFFSETS_TOPIC, gate.clone()))),
        )
        .unwrap();
        f(&store, &gate);
        store.close().unwrap();
    }
}

/// `n` members subscribed to a topic of `n` partitions holding 10 records each, polled until each
/// owns one partition and has read it to the end.
fn settled_members(store: &Store, n: u32) -> Vec<Consumer> {
    let t = store
        .create_topic(TOPIC, TopicConfig::with_partitions(n))
        .unwrap();
    for p in 0..n {
        for i in 0..10 {
            t.send_to(p, Record::new(format!("{p}-{i}"))).unwrap();
        }
    }
    let mut members: Vec<Consumer> = (0..n)
        .map(|i| {
            let mut c = store
                .consumer(ConsumerConfig {
                    client_id: format!("m{i}"),
                    auto_offset_reset: AutoOffsetReset::Earliest,
                    enable_auto_commit: false,
                    assignment_strategy: AssignmentStrategy::CooperativeSticky,
                    ..ConsumerConfig::group(GROUP)
                })
                .unwrap();
            c.subscribe(&[TOPIC]).unwrap();
            c
        })
        .collect();
    let start = Instant::now();
    loop {
        for c in &mut members {
            c.poll(Duration::from_millis(2)).unwrap();
        }
        let settled = members.iter_mut().all(|c| {
            let owned = c.assignment();
            owned.len() == 1 && c.position(&owned[0]).unwrap() == 10
        });
        let described: usize = store
            .describe_group(GROUP)
            .iter()
            .map(|d| d.assignment.len())
            .sum();
        if settled && described == n as usize {
            return members;
        }
        assert!(start.elapsed() < PROMPTLY * 4, "the group did not settle");
    }
}

/// Commit offset `at` for the one partition `c` owns.
fn commit_at(c: &Consumer, at: u64) -> topiclog::Result<()> {
    let tp = c.assignment()[0].clone();
    c.commit(&[(tp, topiclog::OffsetAndMetadata::new(at))])
}

fn owned(c: &Consumer) -> TopicPartition {
    c.assignment()[0].clone()
}

#[test]
fn poll_and_commit_proceed_while_a_commit_waits_for_its_fsync() {
    on_both(|store, gate| {
        let mut members = settled_members(store, 2);
        let mut b = members.pop().unwrap();
        let a = members.pop().unwrap();
        let (tp_a, tp_b) = (owned(&a), owned(&b));
        let (writes, syncs) = (gate.writes(), gate.syncs());
        gate.hold_next();
        thread::scope(|s| {
            let a_commit = s.spawn(move || (a.commit_sync(), a));
            assert!(gate.wait_until_held(PROMPTLY), "a's commit never synced");
            let b_side = s.spawn(move || {
                // Returns at once: nothing to read, and the group lock is free.
                let polled = b.poll(Duration::ZERO).map(|r| r.len());
                let polled_while_held = gate.holding();
                let committed = b.commit_sync();
                (polled, polled_while_held, committed, b)
            });
            // b's commit appends while a's fsync is still held; it then waits for the sync.
            let appended = gate.wait_for_writes(writes + 2, PROMPTLY);
            let appended_while_held = gate.holding();
            gate.release();
            let (polled, polled_while_held, b_committed, b) = b_side.join().unwrap();
            let (a_committed, a) = a_commit.join().unwrap();
            assert_eq!(polled.unwrap(), 0);
            assert!(
                polled_while_held,
                "b's poll waited for a's commit to finish its fsync"
            );
            assert!(
                appended && appended_while_held,
                "b's commit did not append while a's commit waited for its fsync"
            );
            a_committed.unwrap();
            b_committed.unwrap();
            assert_eq!(gate.writes(), writes + 2);
            assert_eq!(gate.syncs(), syncs + 2, "a's fsync, then b's");
            assert_eq!(a.committed(&tp_a).unwrap().unwrap().offset, 10);
            assert_eq!(b.committed(&tp_b).unwrap().unwrap().offset, 10);
        });
    });
}

#[test]
fn concurrent_commits_of_one_group_share_an_fsync() {
    on_both(|store, gate| {
        let mut members = settled_members(store, 4).into_iter();
        let mut rng = TestRng::new(4);
        let offsets: Vec<u64> = (0..4).map(|_| 1 + rng.below(9)).collect();
        let (writes, syncs) = (gate.writes(), gate.syncs());
        gate.hold_next();
        let members: Vec<Consumer> = thread::scope(|s| {
            let (c, at) = (members.next().unwrap(), offsets[0]);
            let first = s.spawn(move || (commit_at(&c, at), c));
            assert!(
                gate.wait_until_held(PROMPTLY),
                "the first commit never synced"
            );
            let rest: Vec<_> = members
                .zip(&offsets[1..])
                .map(|(c, &at)| s.spawn(move || (commit_at(&c, at), c)))
                .collect();
            // The three others append while the first one's fsync is held, then one sync
            // covers them all.
            let appended = gate.wait_for_writes(writes + 4, PROMPTLY);
            let appended_while_held = gate.holding();
            let appended_count = gate.writes() - writes;
            gate.release();
            let all: Vec<Consumer> = std::iter::once(first)
                .chain(rest)
                .map(|h| {
                    let (result, c) = h.join().unwrap();
                    result.unwrap();
                    c
                })
                .collect();
            assert!(
                appended && appended_while_held,
                "the other members' commits waited for the first one's fsync before appending \
                 ({appended_count} of 4 had appended)"
            );
            all
        });
        assert_eq!(gate.writes(), writes + 4, "one append per commit");
        assert_eq!(
            gate.syncs(),
            syncs + 2,
            "the first commit's fsync, then one for the three that queued behind it"
        );
        for (c, at) in members.iter().zip(&offsets) {
            assert_eq!(c.committed(&owned(c)).unwrap().unwrap().offset, *at);
        }
    });
}
