//! Consumer groups under rebalances, with every member polling on its own thread (a `Consumer` is
//! `Send`, one per thread): once stable, the assignment is disjoint, complete and balanced, and
//! agrees with `describe_group`; members joining, closing and being dropped rebalance the group
//! under every strategy, with the listener's `on_revoked` able to commit; under the cooperative
//! strategy a join moves only the partitions it must; a member that stops polling for
//! `max_poll_interval` is removed, its commits are refused and it gets `on_lost` when it polls
//! again; partitions added to a subscribed topic are picked up; a member with another strategy is
//! refused; and, with producers running and members joining, closing, being dropped and stalling
//! past `max_poll_interval`, no record is delivered again after a successful commit covered it.
//!
//! Two tests pin a bug found here, now fixed: a member still on the previous generation (it
//! completed a rebalance by revoking and has not polled since) was asked to revoke for the next
//! one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use topiclog::{
    AssignmentStrategy, AutoOffsetReset, Consumer, ConsumerConfig, Durability, Error, LogConfig,
    RebalanceListener, Record, Store, StoreOptions, TopicConfig, TopicPartition,
};

const TOPIC: &str = "t";
const GROUP: &str = "g";
/// Generous: a rebalance takes a few polls of 20 ms; a loaded machine is slower, never this slow.
const DEADLINE: Duration = Duration::from_secs(20);
/// Long enough that no member is removed for being slow unless a test means it.
const PATIENT: Duration = Duration::from_secs(60);

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

fn config(strategy: AssignmentStrategy, max_poll_interval: Duration) -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest,
        enable_auto_commit: false,
        assignment_strategy: strategy,
        max_poll_interval,
        max_poll_records: 50,
        ..ConsumerConfig::group(GROUP)
    }
}

/// A store with topic `t` of `partitions` partitions holding `per_partition` records in each.
fn setup(partitions: u32, per_partition: u32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    let t = store
        .create_topic(TOPIC, TopicConfig::with_partitions(partitions))
        .unwrap();
    for p in 0..partitions {
        for i in 0..per_partition {
            t.send_to(p, Record::new(format!("{p}-{i}"))).unwrap();
        }
    }
    (dir, store)
}

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

fn set(ps: &[u32]) -> BTreeSet<TopicPartition> {
    ps.iter().map(|&p| tp(p)).collect()
}

fn all(partitions: u32) -> BTreeSet<TopicPartition> {
    (0..partitions).map(tp).collect()
}

fn sorted(ps: &[TopicPartition]) -> BTreeSet<TopicPartition> {
    ps.iter().cloned().collect()
}

/// How a commit went.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Commit {
    Ok,
    /// [`Error::CommitFailed`].
    Refused,
    Other(String),
}

fn commit_outcome(r: topiclog::Result<()>) -> Commit {
    match r {
        Ok(()) => Commit::Ok,
        Err(Error::CommitFailed { .. }) => Commit::Refused,
        Err(e) => Commit::Other(e.to_string()),
    }
}

/// A listener callback, with the outcome of the `commit_sync` the listener made inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Assigned(BTreeSet<TopicPartition>),
    Revoked(BTreeSet<TopicPartition>, Commit),
    Lost(BTreeSet<TopicPartition>, Commit),
}

/// One record processed by one member, and whether the commit after its batch succeeded.
#[derive(Clone, Debug)]
struct Processed {
    member: String,
    tp: TopicPartition,
    offset: u64,
    /// Taken from [`Log::seq`] just before the `poll` that returned the record.
    poll_start: u64,
    /// Taken from [`Log::seq`] just after the commit that followed processing returned.
    commit_end: u64,
    committed: Option<Commit>,
}

/// Every record processed by any member, and a global clock to order polls and commits.
#[derive(Default)]
struct Log {
    entries: Mutex<Vec<Processed>>,
    seq: AtomicU64,
}

impl Log {
    fn tick(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }
    fn len(&self) -> usize {
        lock(&self.entries).len()
    }
    fn entries(&self) -> Vec<Processed> {
        lock(&self.entries).clone()
    }
}

/// What a member thread publishes after each poll.
#[derive(Default)]
struct Shared {
    member_id: Option<String>,
    assignment: BTreeSet<TopicPartition>,
    polls: u64,
    last_commit: Option<Commit>,
    events: Vec<Event>,
    /// Set while holding a polled batch unprocessed (see [`Cmd::StallNextBatch`]).
    stalled_with: Option<usize>,
    /// How the commit of the batch held by the stall went.
    stalled_commit: Option<Commit>,
    close: Option<Commit>,
    error: Option<String>,
}

/// Records every callback; `on_revoked` and `on_lost` commit first, as real listeners do.
struct Recorder(Arc<Mutex<Shared>>);

impl RebalanceListener for Recorder {
    fn on_revoked(&mut self, consumer: &Consumer, partitions: &[TopicPartition]) {
        let commit = commit_outcome(consumer.commit_sync());
        let event = Event::Revoked(sorted(partitions), commit);
        lock(&self.0).events.push(event);
    }
    fn on_assigned(&mut self, _consumer: &Consumer, partitions: &[TopicPartition]) {
        let event = Event::Assigned(sorted(partitions));
        lock(&self.0).events.push(event);
    }
    fn on_lost(&mut self, consumer: &Consumer, partitions: &[TopicPartition]) {
        let commit = commit_outcome(consumer.commit_sync());
        let event = Event::Lost(sorted(partitions), commit);
        lock(&self.0).events.push(event);
    }
}

enum Cmd {
    /// Stop polling until [`Cmd::Resume`] (commands are still served).
    Hold,
    Resume,
    /// After the next poll that returns records, hold them unprocessed until [`Cmd::Resume`], then
    /// process and commit them: a zombie finishing its work after the group moved on.
    StallNextBatch,
    /// `commit_sync` now and say how it went.
    Commit(Sender<Commit>),
    Close,
    Drop,
}

/// A group member polling on its own thread: poll, process (log) the records, `commit_sync`.
struct Member {
    name: String,
    tx: Sender<Cmd>,
    shared: Arc<Mutex<Shared>>,
    handle: Option<JoinHandle<()>>,
}

impl Member {
    /// Subscribe here (so members join in the order they are spawned), then poll on a new thread.
    fn spawn(store: &Store, name: &str, config: ConsumerConfig, log: &Arc<Log>) -> Member {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut consumer = store
            .consumer(ConsumerConfig {
                client_id: name.into(),
                ..config
            })
            .unwrap();
        consumer
            .subscribe_with(&[TOPIC], Some(Box::new(Recorder(shared.clone()))))
            .unwrap();
        lock(&shared).member_id = consumer.member_id();
        let (tx, rx) = mpsc::channel();
        let (s, log, who) = (shared.clone(), log.clone(), name.to_owned());
        let handle = thread::Builder::new()
            .name(name.into())
            .spawn(move || run(consumer, &who, &rx, &s, &log))
            .unwrap();
        Member {
            name: name.into(),
            tx,
            shared,
            handle: Some(handle),
        }
    }

    fn send(&self, cmd: Cmd) {
        self.tx.send(cmd).expect("member thread is gone");
    }

    fn commit(&self) -> Commit {
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Commit(tx));
        rx.recv_timeout(DEADLINE).expect("commit reply")
    }

    /// Close on the member's thread and wait for it; returns how the close's commit went.
    fn close(mut self) -> Commit {
        self.send(Cmd::Close);
        self.join();
        let s = lock(&self.shared);
        s.close.clone().expect("close outcome")
    }

    /// Drop the consumer on its thread (no explicit close) and wait for it.
    fn drop_consumer(mut self) {
        self.send(Cmd::Drop);
        self.join();
    }

    fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            h.join().expect("member thread panicked");
        }
        if let Some(e) = &lock(&self.shared).error {
            panic!("{}: {e}", self.name);
        }
    }

    fn member_id(&self) -> String {
        lock(&self.shared).member_id.clone().unwrap()
    }

    fn polls(&self) -> u64 {
        lock(&self.shared).polls
    }

    fn events(&self) -> Vec<Event> {
        lock(&self.shared).events.clone()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // A test that failed midway: let the thread end (dropping its consumer).
        let _ = self.tx.send(Cmd::Drop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The member loop. Never holds the shared lock across `poll`/`close` (the listener takes it).
fn run(mut c: Consumer, who: &str, rx: &Receiver<Cmd>, s: &Mutex<Shared>, log: &Log) {
    let mut held = false;
    let mut stall_next = false;
    loop {
        loop {
            let cmd = if held {
                match rx.recv() {
                    Ok(cmd) => cmd,
                    Err(_) => return,
                }
            } else {
                match rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            };
            match cmd {
                Cmd::Hold => held = true,
                Cmd::Resume => held = false,
                Cmd::StallNextBatch => stall_next = true,
                Cmd::Commit(reply) => {
                    let _ = reply.send(commit_outcome(c.commit_sync()));
                }
                Cmd::Close => {
                    let outcome = commit_outcome(c.close());
                    let mut st = lock(s);
                    st.close = Some(outcome);
                    st.assignment.clear();
                    return;
                }
                Cmd::Drop => {
                    drop(c);
                    lock(s).assignment.clear();
                    return;
                }
            }
        }
        let poll_start = log.tick();
        let records = match c.poll(Duration::from_millis(20)) {
            Ok(r) => r,
            Err(e) => {
                lock(s).error = Some(format!("poll: {e}"));
                return;
            }
        };
        let stalled = stall_next && !records.is_empty();
        if stalled {
            // Hold the batch, not polling, until told to go on.
            stall_next = false;
            lock(s).stalled_with = Some(records.len());
            loop {
                match rx.recv() {
                    Ok(Cmd::Resume) => break,
                    Ok(Cmd::Commit(reply)) => {
                        let _ = reply.send(commit_outcome(c.commit_sync()));
                    }
                    Ok(_) => panic!("{who}: only Resume or Commit while stalled"),
                    Err(_) => return,
                }
            }
        }
        // Process (log every record), then commit what was processed.
        let first = {
            let mut l = lock(&log.entries);
            let first = l.len();
            l.extend(records.iter().map(|r| Processed {
                member: who.to_owned(),
                tp: r.topic_partition(),
                offset: r.offset(),
                poll_start,
                commit_end: u64::MAX,
                committed: None,
            }));
            first
        };
        let commit = commit_outcome(c.commit_sync());
        let commit_end = log.tick();
        if !records.is_empty() {
            let mut l = lock(&log.entries);
            for p in &mut l[first..first + records.len()] {
                p.committed = Some(commit.clone());
                p.commit_end = commit_end;
            }
        }
        let mut st = lock(s);
        if stalled {
            st.stalled_commit = Some(commit.clone());
        }
        st.polls += 1;
        st.assignment = c.assignment().into_iter().collect();
        st.member_id = c.member_id();
        st.last_commit = Some(commit);
    }
}

/// Lock, ignoring poison: a failed assertion elsewhere must not cascade into every thread.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_log() -> Arc<Log> {
    Arc::new(Log::default())
}

fn describe(store: &Store) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    store
        .describe_group(GROUP)
        .into_iter()
        .map(|d| (d.member_id, sorted(&d.assignment)))
        .collect()
}

/// The members' published assignments, if the group is settled on them: `describe_group` lists
/// exactly these members with exactly these assignments, every member holds its equal share, all
/// of the topic's partitions are covered, and each member's last commit succeeded (so it holds the
/// current generation).
fn settled(
    store: &Store,
    members: &[&Member],
    partitions: u32,
) -> Option<Vec<BTreeSet<TopicPartition>>> {
    let described = describe(store);
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for m in members {
        let s = lock(&m.shared);
        if let Some(e) = &s.error {
            panic!("{}: {e}", m.name);
        }
        let id = s.member_id.clone()?;
        if s.last_commit != Some(Commit::Ok)
            || described.get(&id) != Some(&s.assignment)
            || s.assignment.len() != (partitions as usize) / members.len()
        {
            return None;
        }
        ids.insert(id);
        out.push(s.assignment.clone());
    }
    let union: BTreeSet<TopicPartition> = out.iter().flatten().cloned().collect();
    let keys: BTreeSet<String> = described.keys().cloned().collect();
    (keys == ids && union == all(partitions)).then_some(out)
}

/// Wait until the group is settled (see [`settled`]) and stays so while every member polls twice
/// more; returns each member's assignment.
fn wait_stable(
    store: &Store,
    members: &[&Member],
    partitions: u32,
) -> Vec<BTreeSet<TopicPartition>> {
    let start = Instant::now();
    loop {
        if let Some(first) = settled(store, members, partitions) {
            let polls: Vec<u64> = members.iter().map(|m| m.polls()).collect();
            while members.iter().zip(&polls).any(|(m, &p)| m.polls() < p + 2) {
                assert!(start.elapsed() < DEADLINE, "members stopped polling");
                thread::sleep(Duration::from_millis(2));
            }
            if settled(store, members, partitions).as_ref() == Some(&first) {
                return first;
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the group did not settle within {DEADLINE:?}: described {:?}; members {:?}",
            describe(store),
            members
                .iter()
                .map(|m| {
                    let s = lock(&m.shared);
                    (
                        m.name.clone(),
                        s.member_id.clone(),
                        s.assignment.clone(),
                        s.last_commit.clone(),
                    )
                })
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The listener calls a member should have seen, moving through `history` (its successive stable
/// assignments) and then leaving: eager strategies revoke everything at every rebalance and assign
/// everything anew; the cooperative one revokes only what moves away and assigns only what is new.
/// Every `on_revoked` commit succeeds: the member still owns the partitions.
fn expected_events(
    strategy: AssignmentStrategy,
    history: &[BTreeSet<TopicPartition>],
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut prev = BTreeSet::new();
    for next in history.iter().chain([&BTreeSet::new()]) {
        if strategy.is_cooperative() {
            let gone: BTreeSet<_> = prev.difference(next).cloned().collect();
            let added: BTreeSet<_> = next.difference(&prev).cloned().collect();
            if !gone.is_empty() {
                out.push(Event::Revoked(gone, Commit::Ok));
            }
            if !added.is_empty() {
                out.push(Event::Assigned(added));
            }
        } else {
            if !prev.is_empty() {
                out.push(Event::Revoked(prev.clone(), Commit::Ok));
            }
            if !next.is_empty() {
                out.push(Event::Assigned(next.clone()));
            }
        }
        prev = next.clone();
    }
    out
}

/// Three members join one by one, then one closes and one is dropped.
fn join_and_leave(strategy: AssignmentStrategy) {
    let (_dir, store) = setup(6, 20);
    let log = new_log();
    let cfg = config(strategy, PATIENT);
    let m1 = Member::spawn(&store, "m1", cfg.clone(), &log);
    let a1 = wait_stable(&store, &[&m1], 6);
    assert_eq!(a1[0], all(6));

    let m2 = Member::spawn(&store, "m2", cfg.clone(), &log);
    let a2 = wait_stable(&store, &[&m1, &m2], 6);
    let m3 = Member::spawn(&store, "m3", cfg.clone(), &log);
    let a3 = wait_stable(&store, &[&m1, &m2, &m3], 6);
    match strategy {
        AssignmentStrategy::Range => {
            assert_eq!(a2, [set(&[0, 1, 2]), set(&[3, 4, 5])]);
            assert_eq!(a3, [set(&[0, 1]), set(&[2, 3]), set(&[4, 5])]);
        }
        AssignmentStrategy::RoundRobin => {
            assert_eq!(a2, [set(&[0, 2, 4]), set(&[1, 3, 5])]);
            assert_eq!(a3, [set(&[0, 3]), set(&[1, 4]), set(&[2, 5])]);
        }
        AssignmentStrategy::CooperativeSticky => {
            // Each join takes only what the newcomer needs from the others.
            assert!(a2[0].is_subset(&a1[0]), "{a1:?} -> {a2:?}");
            assert!(a3[0].is_subset(&a2[0]), "{a2:?} -> {a3:?}");
            assert!(a3[1].is_subset(&a2[1]), "{a2:?} -> {a3:?}");
        }
        other => panic!("no expected assignments written for {other:?}"),
    }
    // The members saw exactly the callbacks of their moves so far (nothing else revoked).
    let so_far = |history: &[BTreeSet<TopicPartition>]| {
        let mut e = expected_events(strategy, history);
        // Leave out the final revocation of leaving: the members are still here.
        e.pop_if(|e| matches!(e, Event::Revoked(..)));
        e
    };
    assert_eq!(
        m1.events(),
        so_far(&[a1[0].clone(), a2[0].clone(), a3[0].clone()])
    );
    assert_eq!(m2.events(), so_far(&[a2[1].clone(), a3[1].clone()]));
    assert_eq!(m3.events(), so_far(&[a3[2].clone()]));

    // m3 closes: its on_revoked commits, and the other two take its partitions.
    let m3_events_before = m3.events();
    let m3_id = m3.member_id();
    let shared3 = m3.shared.clone();
    assert_eq!(m3.close(), Commit::Ok);
    assert_eq!(
        lock(&shared3).events[m3_events_before.len()..],
        [Event::Revoked(a3[2].clone(), Commit::Ok)]
    );
    let a4 = wait_stable(&store, &[&m1, &m2], 6);
    assert!(!describe(&store).contains_key(&m3_id));
    match strategy {
        AssignmentStrategy::Range => assert_eq!(a4, [set(&[0, 1, 2]), set(&[3, 4, 5])]),
        AssignmentStrategy::RoundRobin => assert_eq!(a4, [set(&[0, 2, 4]), set(&[1, 3, 5])]),
        AssignmentStrategy::CooperativeSticky => {
            assert!(
                a4[0].is_superset(&a3[0]) && a4[1].is_superset(&a3[1]),
                "{a3:?} -> {a4:?}"
            );
        }
        other => panic!("no expected assignments written for {other:?}"),
    }

    // m2 is dropped without close: same as a close.
    let shared2 = m2.shared.clone();
    m2.drop_consumer();
    let a5 = wait_stable(&store, &[&m1], 6);
    assert_eq!(a5[0], all(6));
    assert_eq!(
        lock(&shared2).events,
        expected_events(strategy, &[a2[1].clone(), a3[1].clone(), a4[1].clone()])
    );
    assert_eq!(
        lock(&shared3).events,
        expected_events(strategy, &[a3[2].clone()])
    );
    let shared1 = m1.shared.clone();
    assert_eq!(m1.close(), Commit::Ok);
    assert_eq!(
        lock(&shared1).events,
        expected_events(
            strategy,
            &[
                a1[0].clone(),
                a2[0].clone(),
                a3[0].clone(),
                a4[0].clone(),
                a5[0].clone()
            ]
        )
    );
    assert!(store.describe_group(GROUP).is_empty());

    // Every record was processed once (no `on_revoked` commit failed, so nothing was redelivered),
    // and the group committed the end of every partition.
    let log = log.entries();
    let processed: BTreeSet<(u32, u64)> = log.iter().map(|p| (p.tp.partition, p.offset)).collect();
    assert_eq!(processed.len(), 120);
    assert_eq!(log.len(), 120, "a record was delivered twice");
    for l in store.group_lag(GROUP).unwrap() {
        assert_eq!(l.lag, Some(0), "{l:?}");
    }
}

#[test]
fn range_join_and_leave() {
    join_and_leave(AssignmentStrategy::Range);
}

#[test]
fn round_robin_join_and_leave() {
    join_and_leave(AssignmentStrategy::RoundRobin);
}

#[test]
fn cooperative_sticky_join_and_leave_moves_only_what_it_must() {
    join_and_leave(AssignmentStrategy::CooperativeSticky);
}

/// A member that stops polling for `max_poll_interval` is removed and its partitions go to the
/// others; its commit is then refused; when it polls again it gets `on_lost` (whose commit is
/// refused too) and rejoins as a new member.
#[test]
fn member_missing_max_poll_interval_is_removed_and_rejoins() {
    let (_dir, store) = setup(6, 20);
    let log = new_log();
    let strategy = AssignmentStrategy::CooperativeSticky;
    // Only the slow member has a short interval: the others are never removed for a slow poll.
    let interval = |name: &str| {
        if name == "m2" {
            Duration::from_millis(300)
        } else {
            PATIENT
        }
    };
    let members: Vec<Member> = ["m1", "m2", "m3"]
        .into_iter()
        .map(|name| Member::spawn(&store, name, config(strategy, interval(name)), &log))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    let before = wait_stable(&store, &refs, 6);
    let slow = &members[1];
    let slow_id = slow.member_id();
    let slow_owned = before[1].clone();
    let events_before = slow.events().len();

    slow.send(Cmd::Hold);
    wait_until("the slow member is removed", || {
        !describe(&store).contains_key(&slow_id)
    });
    // The others take over its partitions.
    let others = [&members[0], &members[2]];
    let after = wait_stable(&store, &others, 6);
    let taken: BTreeSet<_> = after.iter().flatten().cloned().collect();
    assert!(slow_owned.is_subset(&taken));
    // Its commit is refused: it no longer owns anything.
    assert_eq!(slow.commit(), Commit::Refused);
    assert_eq!(
        slow.events().len(),
        events_before,
        "no callback until it polls"
    );

    // Polling again: on_lost (its commit there is refused too), then it rejoins as a new member.
    slow.send(Cmd::Resume);
    let again = wait_stable(&store, &refs, 6);
    assert_ne!(slow.member_id(), slow_id, "it rejoined as a new member");
    assert_eq!(
        slow.events()[events_before..],
        [
            Event::Lost(slow_owned, Commit::Refused),
            Event::Assigned(again[1].clone())
        ]
    );
    for m in members {
        assert_eq!(m.close(), Commit::Ok);
    }
}

/// `store.add_partitions` on a subscribed topic: the group spreads the new partitions too, and
/// their records are consumed by their owners.
#[test]
fn new_partitions_are_picked_up() {
    let (_dir, store) = setup(6, 5);
    let log = new_log();
    let cfg = config(AssignmentStrategy::CooperativeSticky, PATIENT);
    let members: Vec<Member> = (1..=3)
        .map(|i| Member::spawn(&store, &format!("m{i}"), cfg.clone(), &log))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_stable(&store, &refs, 6);
    store.add_partitions(TOPIC, 9).unwrap();
    let after = wait_stable(&store, &refs, 9);
    let t = store.topic(TOPIC).unwrap();
    for p in 6..9 {
        for i in 0..4 {
            t.send_to(p, Record::new(format!("new-{p}-{i}"))).unwrap();
        }
    }
    let distinct = |log: &[Processed]| {
        log.iter()
            .map(|p| (p.tp.partition, p.offset))
            .collect::<BTreeSet<_>>()
            .len()
    };
    wait_until("records of the new partitions are consumed", || {
        distinct(&log.entries()) == 6 * 5 + 3 * 4
    });
    for r in log.entries().iter().filter(|r| r.tp.partition >= 6) {
        let owner = members.iter().position(|m| m.name == r.member).unwrap();
        assert!(
            after[owner].contains(&r.tp),
            "{r:?} by a non-owner; {after:?}"
        );
    }
    for m in members {
        assert_eq!(m.close(), Commit::Ok);
    }
}

/// Every member of a group must use the group's strategy; `describe_group` lists the members with
/// their subscriptions and assignments.
#[test]
fn another_strategy_is_refused_and_describe_group_shows_members() {
    let (_dir, store) = setup(6, 0);
    let range = |name: &str| {
        let mut c = store
            .consumer(ConsumerConfig {
                client_id: name.into(),
                ..config(AssignmentStrategy::Range, PATIENT)
            })
            .unwrap();
        c.subscribe(&[TOPIC]).unwrap();
        c
    };
    let mut c1 = range("one");
    let mut other = store
        .consumer(config(AssignmentStrategy::RoundRobin, PATIENT))
        .unwrap();
    match other.subscribe(&[TOPIC]) {
        Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "assignment_strategy"),
        r => panic!("expected InvalidConfig, got {r:?}"),
    }
    assert_eq!(other.member_id(), None);
    assert!(other.assignment().is_empty());
    let mut c2 = range("two");
    let start = Instant::now();
    while c1.assignment().len() + c2.assignment().len() < 6 || c1.assignment().len() != 3 {
        assert!(start.elapsed() < DEADLINE, "no assignment");
        c1.poll(Duration::from_millis(10)).unwrap();
        c2.poll(Duration::from_millis(10)).unwrap();
    }
    let d = store.describe_group(GROUP);
    assert_eq!(d.len(), 2, "{d:?}");
    let id1 = c1.member_id().unwrap();
    let id2 = c2.member_id().unwrap();
    assert!(
        id1.starts_with("one-") && id2.starts_with("two-"),
        "{id1} {id2}"
    );
    let by_id: BTreeMap<_, _> = d.iter().map(|m| (m.member_id.clone(), m)).collect();
    assert_eq!(by_id[&id1].topics, vec![TOPIC.to_string()]);
    assert_eq!(sorted(&by_id[&id1].assignment), set(&[0, 1, 2]));
    assert_eq!(sorted(&by_id[&id2].assignment), set(&[3, 4, 5]));
    assert_eq!(sorted(&c1.assignment()), set(&[0, 1, 2]));
    assert!(store.describe_group("nobody").is_empty());

    // Once every member has left, the group may change strategy.
    c1.close().unwrap();
    drop(c2);
    assert!(store.describe_group(GROUP).is_empty());
    other.subscribe(&[TOPIC]).unwrap();
    assert!(other.member_id().is_some());
}

/// Stops the producers when dropped, also when an assertion fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The producers keep writing while members process and `commit_sync` after every poll; members
/// join, close, are dropped, and one stalls past `max_poll_interval` holding a batch it then
/// processes as a zombie. Every record is processed at least once, and no record is delivered
/// again once a successful commit covered it: the new owner starts after it, and a zombie's commit
/// fails.
#[test]
fn no_record_is_delivered_again_after_a_successful_commit() {
    let (_dir, store) = setup(6, 0);
    let log = new_log();
    let strategy = AssignmentStrategy::CooperativeSticky;
    // m2 becomes the zombie; the others may miss their (longer) interval on a loaded machine,
    // which only adds to the churn.
    let spawn = |name: &str| {
        let interval = Duration::from_millis(if name == "m2" { 300 } else { 1000 });
        Member::spawn(&store, name, config(strategy, interval), &log)
    };
    let t = store.topic(TOPIC).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_failure = StopOnDrop(stop.clone());
    let producers: Vec<JoinHandle<()>> = (0..2)
        .map(|n| {
            let (t, stop) = (t.clone(), stop.clone());
            thread::spawn(move || {
                for i in 0..20_000u32 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    t.send_to(i % 6, Record::new(format!("{n}-{i}"))).unwrap();
                    if i % 6 == 5 {
                        thread::sleep(Duration::from_millis(3));
                    }
                }
            })
        })
        .collect();
    let progress = |more: usize| {
        let target = log.len() + more;
        wait_until("processing progresses", || log.len() >= target);
    };

    let mut members: BTreeMap<&str, Member> = BTreeMap::new();
    for name in ["m1", "m2", "m3"] {
        members.insert(name, spawn(name));
    }
    progress(300);
    members.insert("m4", spawn("m4"));
    progress(300);

    // m2 polls a batch, then stalls past max_poll_interval; the group moves on without it.
    let zombie = &members["m2"];
    zombie.send(Cmd::StallNextBatch);
    wait_until("m2 holds a batch", || {
        lock(&zombie.shared).stalled_with.is_some()
    });
    let zombie_id = zombie.member_id();
    wait_until("m2 is removed", || {
        !describe(&store).contains_key(&zombie_id)
    });
    progress(200);
    zombie.send(Cmd::Resume);
    wait_until("m2 processed its stale batch", || {
        lock(&zombie.shared).stalled_commit.is_some()
    });
    let stalled_commit = lock(&zombie.shared).stalled_commit.clone();
    assert_eq!(
        stalled_commit,
        Some(Commit::Refused),
        "a zombie's commit must fail"
    );
    progress(200);

    members.remove("m1").unwrap().close();
    progress(200);
    members.remove("m3").unwrap().drop_consumer();
    members.insert("m5", spawn("m5"));
    progress(300);
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().unwrap();
    }

    // Everything is processed eventually.
    let ends = t.end_offsets();
    let total: u64 = ends.iter().sum();
    wait_until("every record is processed", || {
        let seen: BTreeSet<(u32, u64)> = log
            .entries()
            .iter()
            .map(|p| (p.tp.partition, p.offset))
            .collect();
        seen.len() as u64 == total
    });
    for (_, m) in std::mem::take(&mut members) {
        m.close();
    }

    let log = log.entries();
    for p in &log {
        assert!(
            p.offset < ends[p.tp.partition as usize],
            "{p:?} past the end"
        );
        assert!(
            matches!(p.committed, Some(Commit::Ok | Commit::Refused)),
            "{p:?}"
        );
    }
    // For every record, the end of the first successful commit that followed its processing; no
    // poll that started after that may return the record again, to anyone.
    let mut covered: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for p in log.iter().filter(|p| p.committed == Some(Commit::Ok)) {
        let c = covered
            .entry((p.tp.partition, p.offset))
            .or_insert(u64::MAX);
        *c = (*c).min(p.commit_end);
    }
    let violations: Vec<&Processed> = log
        .iter()
        .filter(|p| {
            covered
                .get(&(p.tp.partition, p.offset))
                .is_some_and(|&c| p.poll_start > c)
        })
        .collect();
    assert!(
        violations.is_empty(),
        "{} records delivered again after a successful commit covered them, e.g. {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    let refused = log
        .iter()
        .filter(|p| p.committed == Some(Commit::Refused))
        .count();
    eprintln!(
        "{total} records, {} processings, {refused} under a refused commit",
        log.len()
    );
    assert!(refused > 0, "the zombie's batch was refused");
}

/// A member that completes a cooperative rebalance by revoking, and gets records in the same
/// `poll`, keeps the old generation until its next poll. If the next rebalance starts before that
/// poll (here: a third member joins), the member is asked to revoke while still on the old
/// generation, and the `commit_sync` in its `on_revoked` is refused, although the member owns the
/// partitions in the current generation and the docs promise the commit works there. (With
/// auto-commit, the commit before the revocation is refused the same way, silently.) The records
/// it processed since its last commit are then delivered again to the new owner.
#[test]
fn on_revoked_can_commit_after_back_to_back_cooperative_rebalances() {
    let (_dir, store) = setup(6, 100);
    let cfg = ConsumerConfig {
        max_poll_records: 5,
        ..config(AssignmentStrategy::CooperativeSticky, PATIENT)
    };
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut a = store.consumer(cfg.clone()).unwrap();
    a.subscribe_with(&[TOPIC], Some(Box::new(Recorder(shared.clone()))))
        .unwrap();
    assert!(!a.poll(DEADLINE).unwrap().is_empty());
    assert_eq!(sorted(&a.assignment()), all(6));
    a.commit_sync().unwrap();

    // b joins: a's next poll revokes three partitions (its on_revoked commit works), which
    // completes the rebalance, and returns records of the three it keeps.
    let mut b = store.consumer(cfg.clone()).unwrap();
    b.subscribe(&[TOPIC]).unwrap();
    assert!(!a.poll(DEADLINE).unwrap().is_empty());
    assert_eq!(a.assignment().len(), 3);
    assert_eq!(
        store
            .describe_group(GROUP)
            .iter()
            .find(|d| Some(&d.member_id) == a.member_id().as_ref())
            .map(|d| sorted(&d.assignment)),
        Some(sorted(&a.assignment())),
        "a owns these three in the group's current generation"
    );

    // c joins before a polls again: a must give up one more partition.
    let mut c = store.consumer(cfg).unwrap();
    c.subscribe(&[TOPIC]).unwrap();
    let start = Instant::now();
    while a.assignment().len() != 2 || b.assignment().len() != 2 || c.assignment().len() != 2 {
        assert!(start.elapsed() < DEADLINE, "no balanced assignment");
        for consumer in [&mut a, &mut b, &mut c] {
            consumer.poll(Duration::from_millis(10)).unwrap();
        }
    }
    let events = lock(&shared).events.clone();
    let revoked: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Revoked(..)))
        .collect();
    assert_eq!(revoked.len(), 2, "{events:?}");
    for e in revoked {
        assert!(
            matches!(e, Event::Revoked(_, Commit::Ok)),
            "on_revoked could not commit partitions it still owned: {events:?}"
        );
    }
}

/// The same stale generation under an eager strategy: a member that revoked everything and has
/// not yet picked up its new assignment is asked to revoke the partitions of that assignment, so
/// its `on_revoked` is called for partitions it never had (no `on_assigned` for them, nothing in
/// `assignment()`).
#[test]
fn on_revoked_names_only_partitions_the_member_owns() {
    let (_dir, store) = setup(6, 100);
    let cfg = config(AssignmentStrategy::Range, PATIENT);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut a = store.consumer(cfg.clone()).unwrap();
    a.subscribe_with(&[TOPIC], Some(Box::new(Recorder(shared.clone()))))
        .unwrap();
    assert!(!a.poll(DEADLINE).unwrap().is_empty());
    let mut b = store.consumer(cfg.clone()).unwrap();
    b.subscribe(&[TOPIC]).unwrap();
    // a revokes everything, completing the rebalance, and takes up its share in the same poll
    // (it asks the coordinator again after rejoining).
    a.poll(Duration::ZERO).unwrap();
    assert_eq!(a.assignment().len(), 3);
    let mut c = store.consumer(cfg).unwrap();
    c.subscribe(&[TOPIC]).unwrap();
    let start = Instant::now();
    while a.assignment().len() != 2 || b.assignment().len() != 2 || c.assignment().len() != 2 {
        assert!(start.elapsed() < DEADLINE, "no balanced assignment");
        for consumer in [&mut a, &mut b, &mut c] {
            consumer.poll(Duration::from_millis(10)).unwrap();
        }
    }
    // Every revocation names partitions assigned (and not yet revoked) before it.
    let events = lock(&shared).events.clone();
    let mut owned = BTreeSet::new();
    for e in &events {
        match e {
            Event::Assigned(ps) => owned.extend(ps.iter().cloned()),
            Event::Revoked(ps, _) | Event::Lost(ps, _) => {
                assert!(
                    ps.is_subset(&owned),
                    "revoked {ps:?} while owning {owned:?}: {events:?}"
                );
                owned.retain(|tp| !ps.contains(tp));
            }
        }
    }
}
