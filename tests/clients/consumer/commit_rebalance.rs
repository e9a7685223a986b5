//! A rebalance never completes under a commit that takes a partition's offset with it (issue 10):
//! commits run without the group lock, so a member can be removed from its group while its commit
//! waits for the offsets topic's fsync; the next generation then waits for that commit, and the
//! partition's new owner starts from exactly the offset it committed.
//!
//! - `a_rebalance_waits_for_the_commit_of_a_member_removed_meanwhile`: a member's commit is held
//!   in its fsync past its `max_poll_interval` (on virtual time: the test moves the store's
//!   clock); the other member's polls remove it and start a
//!   rebalance, which does not complete (the partition goes to nobody) until the commit returns;
//!   then the new owner reads from the committed offset. Fails before the fix (the other member's
//!   poll blocked on the group lock for as long as the fsync took).
//! - `members_joining_leaving_and_stalling_while_committing_lose_no_commit`: members commit after
//!   every poll while some syncs take longer than `max_poll_interval`, members stall, leave and
//!   rejoin; every new owner of a partition starts exactly at the last successful commit
//!   attempted before it started, and the last successful commit is what the store holds, also
//!   after reopening.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::sync_gate::{GatedFs, SyncGate};
use crate::common::{manual_store_options, TestRng};
use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{
    AssignmentStrategy, AutoOffsetReset, Clock, Consumer, ConsumerConfig, Env, Error, ManualClock,
    OffsetAndMetadata, RebalanceListener, Record, Store, StoreOptions, TopicConfig, TopicPartition,
};

const TOPIC: &str = "t";
const GROUP: &str = "g";
const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Generous bound for things that take milliseconds.
const PROMPTLY: Duration = Duration::from_secs(5);
const PATIENT: Duration = Duration::from_secs(60);
const STRATEGIES: [AssignmentStrategy; 2] = [
    AssignmentStrategy::Range,
    AssignmentStrategy::CooperativeSticky,
];

fn options() -> StoreOptions {
    let mut options = manual_store_options();
    // Preallocated segments are whole buffers in the simulated file system.
    options.log.preallocate = false;
    options
}

fn env(inner: Arc<dyn FileSystem>, gate: &Arc<SyncGate>) -> Env {
    Env::with_fs(Arc::new(GatedFs::new(inner, OFFSETS_TOPIC, gate.clone())))
}

/// [`env`] on virtual time: the store's clock moves only when the test moves it.
fn env_on(inner: Arc<dyn FileSystem>, gate: &Arc<SyncGate>, clock: &ManualClock) -> Env {
    Env {
        clock: Arc::new(clock.clone()),
        ..env(inner, gate)
    }
}

fn member(
    store: &Store,
    name: &str,
    strategy: AssignmentStrategy,
    max_poll_interval: Duration,
) -> Consumer {
    let mut c = store
        .consumer(ConsumerConfig {
            client_id: name.into(),
            auto_offset_reset: AutoOffsetReset::Earliest,
            enable_auto_commit: false,
            assignment_strategy: strategy,
            max_poll_interval,
            max_poll_records: 5,
            ..ConsumerConfig::group(GROUP)
        })
        .unwrap();
    c.subscribe(&[TOPIC]).unwrap();
    c
}

#[test]
fn a_rebalance_waits_for_the_commit_of_a_member_removed_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    for strategy in STRATEGIES {
        let backends: [(Arc<dyn FileSystem>, &Path); 2] = [
            (
                Arc::new(StdFs::new()),
                &tmp.path().join(format!("{strategy:?}")),
            ),
            (Arc::new(SimFs::new(11)), Path::new("/sim/store")),
        ];
        for (inner, dir) in backends {
            let gate = SyncGate::new();
            let clock = ManualClock::new(1_700_000_000_000);
            let store = Store::open_with_env(dir, options(), env_on(inner, &gate, &clock)).unwrap();
            removed_member_commit_lands_before_the_new_owner_starts(
                &store, &gate, &clock, strategy,
            );
            store.close().unwrap();
        }
    }
}

fn removed_member_commit_lands_before_the_new_owner_starts(
    store: &Store,
    gate: &SyncGate,
    clock: &ManualClock,
    strategy: AssignmentStrategy,
) {
    let t = store
        .create_topic(TOPIC, TopicConfig::with_partitions(2))
        .unwrap();
    for p in 0..2 {
        for i in 0..10 {
            t.send_to(p, Record::new(format!("{p}-{i}"))).unwrap();
        }
    }
    // a misses its max_poll_interval while its commit is held; b never does.
    let slow = Duration::from_millis(300);
    let mut a = member(store, "a", strategy, slow);
    let mut b = member(store, "b", strategy, PATIENT);
    let start = Instant::now();
    while a.assignment().len() != 1 || b.assignment().len() != 1 {
        a.poll(Duration::ZERO).unwrap();
        b.poll(Duration::ZERO).unwrap();
        assert!(start.elapsed() < PROMPTLY, "the group did not settle");
    }
    let tp_a = a.assignment()[0].clone();
    a.commit(&[(tp_a.clone(), OffsetAndMetadata::new(5))])
        .unwrap();

    gate.hold_next();
    thread::scope(|s| {
        let mine = tp_a.clone();
        let a_side = s.spawn(move || {
            let r = a.commit(&[(mine, OffsetAndMetadata::new(7))]);
            (r, a)
        });
        assert!(gate.wait_until_held(PROMPTLY), "a's commit never synced");
        // b's polls remove a (after `slow` of the store's clock, which moves 10 ms per poll of
        // b) and start a rebalance that gives b a's partition; it must not complete while a's
        // commit is in flight.
        let held_from = Instant::now();
        let mut removed_at = None;
        let since = |at: Duration| clock.monotonic().saturating_sub(at);
        while removed_at.is_none_or(|at| since(at) < slow) {
            b.poll(Duration::ZERO).unwrap();
            clock.advance(Duration::from_millis(10));
            assert!(
                gate.holding(),
                "{strategy:?}: b's poll waited for a's commit to finish its fsync"
            );
            assert!(
                !b.assignment().contains(&tp_a),
                "{strategy:?}: b took {tp_a} while a's commit of it was in flight"
            );
            if removed_at.is_none() && store.describe_group(GROUP).len() == 1 {
                removed_at = Some(clock.monotonic());
            }
            assert!(
                held_from.elapsed() < PROMPTLY,
                "{strategy:?}: a was not removed from the group"
            );
        }
        gate.release();
        let (committed, a) = a_side.join().unwrap();
        // The commit passed its check and nobody else owned the partition until it was done.
        committed.unwrap();
        drop(a);
    });

    let start = Instant::now();
    let mut read = Vec::new();
    while read.len() < 3 {
        for r in &b.poll(Duration::ZERO).unwrap() {
            if r.topic_partition() == tp_a {
                read.push(r.offset());
            }
        }
        assert!(start.elapsed() < PROMPTLY, "b never read {tp_a}: {read:?}");
    }
    assert_eq!(
        read,
        [7, 8, 9],
        "{strategy:?}: the new owner starts at the commit"
    );
    assert_eq!(b.committed(&tp_a).unwrap().unwrap().offset, 7);
}

// ---- Stress ------------------------------------------------------------------------------------

const PARTITIONS: u32 = 6;
const MEMBERS: u64 = 4;
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(120);
const RUN_FOR: Duration = Duration::from_millis(2500);

#[derive(Clone, Debug)]
enum Event {
    /// A member started owning `partition`; its first record (or position) was `at`.
    Start {
        member: String,
        partition: u32,
        at: u64,
    },
    /// A commit is about to be made.
    Attempt { id: u64, offsets: Vec<(u32, u64)> },
    /// How it ended.
    Outcome { id: u64, ok: bool },
}

#[derive(Default)]
struct History {
    events: Mutex<Vec<Event>>,
    next_commit: AtomicU64,
    lost: AtomicU64,
    refused: AtomicU64,
}

impl History {
    fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }
}

/// Collects the partitions each rebalance hands this member, for the member's thread.
struct Fresh {
    assigned: Arc<Mutex<Vec<TopicPartition>>>,
    history: Arc<History>,
}

impl RebalanceListener for Fresh {
    fn on_assigned(&mut self, _: &Consumer, partitions: &[TopicPartition]) {
        let mut a = self.assigned.lock().unwrap();
        a.extend(partitions.iter().cloned());
    }
    fn on_revoked(&mut self, _: &Consumer, partitions: &[TopicPartition]) {
        self.assigned
            .lock()
            .unwrap()
            .retain(|tp| !partitions.contains(tp));
    }
    fn on_lost(&mut self, c: &Consumer, partitions: &[TopicPartition]) {
        self.history.lost.fetch_add(1, Ordering::Relaxed);
        self.on_revoked(c, partitions);
    }
}

fn run_member(
    store: &Store,
    strategy: AssignmentStrategy,
    n: u64,
    stop: &AtomicBool,
    history: &Arc<History>,
) {
    let mut rng = TestRng::new(1000 + n);
    let mut session = 0;
    while !stop.load(Ordering::Relaxed) {
        session += 1;
        let name = format!("m{n}.{session}");
        let assigned = Arc::new(Mutex::new(Vec::new()));
        let mut c = store
            .consumer(ConsumerConfig {
                client_id: name.clone(),
                auto_offset_reset: AutoOffsetReset::Earliest,
                enable_auto_commit: false,
                assignment_strategy: strategy,
                max_poll_interval: MAX_POLL_INTERVAL,
                max_poll_records: 5,
                ..ConsumerConfig::group(GROUP)
            })
            .unwrap();
        c.subscribe_with(
            &[TOPIC],
            Some(Box::new(Fresh {
                assigned: assigned.clone(),
                history: history.clone(),
            })),
        )
        .unwrap();
        // Where each partition's next record must be, in this member's current ownership of it.
        let mut expected: BTreeMap<u32, u64> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) && rng.below(60) != 0 {
            let records = c.poll(Duration::from_millis(10)).unwrap();
            let fresh: Vec<TopicPartition> = std::mem::take(&mut *assigned.lock().unwrap());
            for tp in fresh {
                if !c.assignment().contains(&tp) {
                    continue;
                }
                let at = match records.records_for(&tp).next() {
                    Some(r) => r.offset(),
                    None => c.position(&tp).unwrap(),
                };
                history.push(Event::Start {
                    member: name.clone(),
                    partition: tp.partition,
                    at,
                });
                expected.insert(tp.partition, at);
            }
            for r in &records {
                let next = expected
                    .get_mut(&r.partition())
                    .unwrap_or_else(|| panic!("{name}: a record of a partition it never started"));
                assert_eq!(
                    r.offset(),
                    *next,
                    "{name}: a gap or repeat in one ownership"
                );
                *next += 1;
            }
            if rng.below(80) == 0 {
                // Miss max_poll_interval: the group removes this member.
                thread::sleep(MAX_POLL_INTERVAL + Duration::from_millis(30));
            }
            let mut offsets = Vec::new();
            for tp in c.assignment() {
                let at = c.position(&tp).unwrap();
                offsets.push((tp, OffsetAndMetadata::new(at)));
            }
            if offsets.is_empty() {
                continue;
            }
            let id = history.next_commit.fetch_add(1, Ordering::Relaxed);
            history.push(Event::Attempt {
                id,
                offsets: offsets
                    .iter()
                    .map(|(tp, o)| (tp.partition, o.offset))
                    .collect(),
            });
            let result = c.commit(&offsets);
            history.push(Event::Outcome {
                id,
                ok: result.is_ok(),
            });
            match result {
                Ok(()) => {}
                Err(Error::CommitFailed { .. }) => {
                    history.refused.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => panic!("{name}: commit: {e}"),
            }
        }
        c.close().unwrap();
    }
}

/// Every start is at the last successful commit attempted before it; returns the last successful
/// commit of each partition.
fn check(events: &[Event]) -> BTreeMap<u32, u64> {
    let ok: BTreeMap<u64, bool> = events
        .iter()
        .filter_map(|e| match e {
            Event::Outcome { id, ok } => Some((*id, *ok)),
            _ => None,
        })
        .collect();
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Attempt { id, offsets } if ok.get(id) == Some(&true) => {
                last.extend(offsets.iter().copied());
            }
            Event::Start {
                member,
                partition,
                at,
            } => {
                let committed = last.get(partition).copied().unwrap_or(0);
                assert_eq!(
                    *at,
                    committed,
                    "{member} started {TOPIC}-{partition} at {at}, but the last successful commit \
                     before it was {committed} (event {i}; the 30 events before: {:#?})",
                    &events[i.saturating_sub(30)..i]
                );
            }
            _ => {}
        }
    }
    last
}

#[test]
fn members_joining_leaving_and_stalling_while_committing_lose_no_commit() {
    for strategy in STRATEGIES {
        let sim = SimFs::new(12);
        let gate = SyncGate::new();
        let mut rng = TestRng::new(99);
        // Most syncs are quick; one in twelve outlasts max_poll_interval.
        gate.set_delay(move || {
            if rng.below(12) == 0 {
                MAX_POLL_INTERVAL + Duration::from_millis(60)
            } else {
                Duration::from_micros(rng.below(2000))
            }
        });
        let dir = Path::new("/sim/store");
        let store =
            Store::open_with_env(dir, options(), env(Arc::new(sim.clone()), &gate)).unwrap();
        let t = store
            .create_topic(TOPIC, TopicConfig::with_partitions(PARTITIONS))
            .unwrap();
        for p in 0..PARTITIONS {
            let batch: Vec<Record> = (0..3000).map(|i| Record::new(format!("{i}"))).collect();
            t.partition(p).unwrap().append_batch(&batch).unwrap();
        }
        let history = Arc::new(History::default());
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            for n in 0..MEMBERS {
                let (store, stop, history) = (&store, &stop, &history);
                s.spawn(move || run_member(store, strategy, n, stop, history));
            }
            thread::sleep(RUN_FOR);
            stop.store(true, Ordering::Relaxed);
        });
        let events = history.events.lock().unwrap().clone();
        let last = check(&events);
        let starts = events
            .iter()
            .filter(|e| matches!(e, Event::Start { .. }))
            .count();
        let (lost, refused) = (
            history.lost.load(Ordering::Relaxed),
            history.refused.load(Ordering::Relaxed),
        );
        let commits = history.next_commit.load(Ordering::Relaxed);
        eprintln!(
            "{strategy:?}: {commits} commits ({refused} refused), {starts} ownerships started, \
             {lost} members removed for missing max_poll_interval"
        );
        assert!(
            commits > 50 && starts > 2 * PARTITIONS as usize && lost > 0,
            "{strategy:?}: too little happened to test anything"
        );
        let committed = |store: &Store| -> BTreeMap<u32, u64> {
            store
                .group_lag(GROUP)
                .unwrap()
                .into_iter()
                .filter_map(|l| Some((l.partition.partition, l.committed?.offset)))
                .collect()
        };
        assert_eq!(committed(&store), last, "{strategy:?}: the store's commits");
        store.close().unwrap();
        let store = Store::open_with_env(dir, options(), env(Arc::new(sim), &gate)).unwrap();
        assert_eq!(
            committed(&store),
            last,
            "{strategy:?}: the commits after reopening"
        );
        store.close().unwrap();
    }
}
