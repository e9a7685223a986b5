//! A topic's life in a store: created, listed, reopened, deleted and re-created, with the errors
//! each step can give; and, on the crashable file system, topic creation, deletion and growth
//! interrupted by a power cut before every one of their mutating file-system operations: the next
//! open always succeeds and finds the topic either wholly before or wholly after the operation,
//! with no staging directory (`__creating.<n>`, `__deleting.<n>`) left behind.

mod common;

use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{CrashMode, Fault, FaultOp, FileSystem, SimFs, StdFs};
use topiclog::{
    key_partition, Env, Error, LogConfig, ManualClock, Record, RecordMetadata, Store, StoreOptions,
    Topic, TopicConfig,
};

use common::{record_views, RecordView};

fn env(fs: Arc<dyn FileSystem>) -> Env {
    Env {
        fs,
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            preallocate: false,
            segment_bytes: 1024,
            ..LogConfig::default()
        },
        background_maintenance: false,
        ..StoreOptions::default()
    }
}

/// Run `f` on the real file system (in a temp dir) and on the simulated one.
fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join("store"));
    f(Arc::new(SimFs::new(3)), Path::new("/sim/store"));
}

/// A record sent and where it landed.
#[derive(Clone, Debug)]
struct Sent {
    meta: RecordMetadata,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

/// Send `count` records tagged `tag` to `topic`: keyed single sends and batches of mixed keyed and
/// unkeyed records.
fn send_some(topic: &Topic, tag: &str, count: u64) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut i = 0;
    while i < count {
        let n = (1 + i % 4).min(count - i);
        let records: Vec<Record> = (i..i + n)
            .map(|j| {
                let r = Record::new(format!("{tag}-{j}-{}", "x".repeat((j % 7 * 20) as usize)));
                if j.is_multiple_of(3) {
                    r
                } else {
                    r.with_key(format!("{tag}-key-{}", j % 11))
                }
            })
            .collect();
        let metas = if n == 1 {
            vec![topic.send(records[0].clone()).unwrap()]
        } else {
            topic.send_batch(&records).unwrap()
        };
        for (r, meta) in records.iter().zip(metas) {
            sent.push(Sent {
                meta,
                key: r.key().map(|k| k.to_vec()),
                value: r.value().unwrap().to_vec(),
            });
        }
        i += n;
    }
    sent
}

/// Assert that `topic` holds exactly the records in `sent`, each at its metadata.
fn assert_holds_exactly(topic: &Topic, sent: &[Sent], what: &str) {
    for p in 0..topic.partition_count() {
        let expected: Vec<RecordView> = sent
            .iter()
            .filter(|s| s.meta.partition == p)
            .map(|s| RecordView {
                offset: s.meta.offset,
                timestamp: s.meta.timestamp,
                key: s.key.clone(),
                value: Some(s.value.clone()),
                headers: Vec::new(),
            })
            .collect();
        let partition = topic.partition(p).unwrap();
        assert_eq!(partition.start_offset(), 0, "{what}: partition {p} start");
        let actual = record_views(&partition, 0);
        assert_eq!(
            actual, expected,
            "{what}: partition {p} holds exactly what was sent"
        );
    }
}

/// Send one record to every partition and a keyed one, and read each back.
fn assert_usable(topic: &Topic, what: &str) {
    for p in 0..topic.partition_count() {
        let meta = topic
            .send_to(p, Record::new(format!("probe-{p}")))
            .unwrap_or_else(|e| panic!("{what}: send to partition {p}: {e}"));
        assert_eq!(meta.partition, p);
        let read = topic.partition(p).unwrap().read(meta.offset, 1 << 20);
        let read = read.unwrap_or_else(|e| panic!("{what}: read back from {p}: {e}"));
        let got = read.records().next().expect("the probe");
        assert_eq!(
            got.value().unwrap().as_ref(),
            format!("probe-{p}").as_bytes()
        );
    }
    let meta = topic
        .send(Record::new("keyed-probe").with_key("probe-key"))
        .unwrap_or_else(|e| panic!("{what}: keyed send: {e}"));
    assert_eq!(
        meta.partition,
        key_partition(b"probe-key", topic.partition_count())
    );
}

#[test]
fn create_list_reopen_delete_recreate() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert!(store.topics().is_empty());
        let a = store
            .create_topic("alpha", TopicConfig::with_partitions(2))
            .unwrap();
        let b = store
            .create_topic("beta", TopicConfig::with_partitions(1))
            .unwrap();
        let c = store
            .create_topic("Alpha.v2", TopicConfig::with_partitions(3))
            .unwrap();
        assert_eq!((a.name(), a.partition_count()), ("alpha", 2));
        assert_eq!(c.partition_count(), 3);
        assert_eq!(store.topics(), vec!["Alpha.v2", "alpha", "beta"]);
        let sent_a = send_some(&a, "alpha", 25);
        let sent_b = send_some(&b, "beta", 10);
        assert_holds_exactly(&a, &sent_a, "alpha before reopen");
        store.close().unwrap();

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["Alpha.v2", "alpha", "beta"]);
        let a = store.topic("alpha").unwrap();
        assert_eq!(a.partition_count(), 2);
        assert_eq!(store.topic("Alpha.v2").unwrap().partition_count(), 3);
        assert_holds_exactly(&a, &sent_a, "alpha after reopen");
        assert_holds_exactly(&store.topic("beta").unwrap(), &sent_b, "beta");

        store.delete_topic("alpha").unwrap();
        assert_eq!(store.topics(), vec!["Alpha.v2", "beta"]);
        assert!(
            !fs.exists(&dir.join("alpha")).unwrap(),
            "the topic directory is gone"
        );
        assert!(matches!(
            store.topic("alpha"),
            Err(Error::UnknownTopic { name }) if name == "alpha"
        ));
        store.close().unwrap();

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["Alpha.v2", "beta"]);
        assert!(!fs.exists(&dir.join("alpha")).unwrap());
        assert_holds_exactly(&store.topic("beta").unwrap(), &sent_b, "beta");

        // Re-created under the same name: a new, empty topic, nothing of the old one.
        let a = store
            .create_topic("alpha", TopicConfig::with_partitions(3))
            .unwrap();
        assert_eq!(a.partition_count(), 3);
        assert_eq!(a.end_offsets(), vec![0, 0, 0]);
        let sent_new = send_some(&a, "new", 9);
        assert_holds_exactly(&a, &sent_new, "re-created alpha");
        store.close().unwrap();

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let a = store.topic("alpha").unwrap();
        assert_eq!(a.partition_count(), 3);
        assert_holds_exactly(&a, &sent_new, "re-created alpha after reopen");
        store.close().unwrap();
    });
}

#[test]
fn delete_then_recreate_in_the_same_session_starts_empty() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let t = store
            .create_topic("events", TopicConfig::with_partitions(2))
            .unwrap();
        send_some(&t, "old", 30);
        store.delete_topic("events").unwrap();
        let t = store
            .create_topic("events", TopicConfig::with_partitions(2))
            .unwrap();
        assert_eq!(t.end_offsets(), vec![0, 0]);
        let sent = send_some(&t, "fresh", 7);
        assert_holds_exactly(&t, &sent, "re-created");
        store.close().unwrap();
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_holds_exactly(&store.topic("events").unwrap(), &sent, "after reopen");
        store.close().unwrap();
    });

    // And after a crash instead of a clean close: recovery must not bring the old data back.
    let fs = SimFs::new(5);
    let store = Store::open_with_env(STORE, options(), env(Arc::new(fs.clone()))).unwrap();
    let t = store
        .create_topic("events", TopicConfig::with_partitions(2))
        .unwrap();
    send_some(&t, "old", 30);
    store.delete_topic("events").unwrap();
    let t = store
        .create_topic("events", TopicConfig::with_partitions(2))
        .unwrap();
    let sent = send_some(&t, "fresh", 7);
    std::mem::forget(t);
    std::mem::forget(store);
    fs.crash(CrashMode::LoseUnsynced);
    let store = Store::open_with_env(STORE, options(), env(Arc::new(fs.clone()))).unwrap();
    assert_holds_exactly(&store.topic("events").unwrap(), &sent, "after a crash");
    store.close().unwrap();
}

#[test]
fn topic_or_create_creates_once_with_the_default_partition_count() {
    both_fs(|fs, dir| {
        let opts = StoreOptions {
            default_partitions: 3,
            ..options()
        };
        let store = Store::open_with_env(dir, opts.clone(), env(fs.clone())).unwrap();
        let t = store.topic_or_create("auto").unwrap();
        assert_eq!(t.partition_count(), 3);
        assert_eq!(
            t.config(),
            opts.resolve(&TopicConfig::with_partitions(3).overrides)
        );
        let sent = send_some(&t, "auto", 12);

        // The second call returns the same topic, data and all.
        let again = store.topic_or_create("auto").unwrap();
        assert_eq!(again.partition_count(), 3);
        assert_holds_exactly(&again, &sent, "topic_or_create on an existing topic");

        // An existing topic keeps its own partition count.
        store
            .create_topic("explicit", TopicConfig::with_partitions(5))
            .unwrap();
        assert_eq!(
            store.topic_or_create("explicit").unwrap().partition_count(),
            5
        );
        assert!(matches!(
            store.topic_or_create("bad/name"),
            Err(Error::InvalidTopicName { .. })
        ));
        assert_eq!(store.topics(), vec!["auto", "explicit"]);

        // Many threads racing to create the same topic all get it, and it is created once.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let t = store.topic_or_create("raced").unwrap();
                    t.send_to(0, Record::new(format!("from {i}"))).unwrap();
                    t.partition_count()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 3);
        }
        assert_eq!(store.topic("raced").unwrap().end_offsets()[0], 8);
        store.close().unwrap();

        let store = Store::open_with_env(dir, opts.clone(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["auto", "explicit", "raced"]);
        assert_holds_exactly(&store.topic_or_create("auto").unwrap(), &sent, "reopened");
        store.close().unwrap();
    });
}

#[test]
fn creating_an_existing_topic_fails_with_topic_exists() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let t = store
            .create_topic("dup", TopicConfig::with_partitions(2))
            .unwrap();
        let sent = send_some(&t, "dup", 10);
        for partitions in [2, 1, 4] {
            assert!(matches!(
                store.create_topic("dup", TopicConfig::with_partitions(partitions)),
                Err(Error::TopicExists { name }) if name == "dup"
            ));
        }
        // The failed creations changed nothing.
        assert_eq!(store.topic("dup").unwrap().partition_count(), 2);
        assert_holds_exactly(&t, &sent, "after the failed creations");
        store.close().unwrap();

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert!(matches!(
            store.create_topic("dup", TopicConfig::with_partitions(2)),
            Err(Error::TopicExists { name }) if name == "dup"
        ));
        assert_holds_exactly(&store.topic("dup").unwrap(), &sent, "after reopen");
        store.close().unwrap();
    });
}

#[test]
fn operations_on_a_missing_topic_fail_with_unknown_topic() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        store
            .create_topic("present", TopicConfig::with_partitions(1))
            .unwrap();
        let unknown = |r: topiclog::Result<()>, what: &str| match r {
            Err(Error::UnknownTopic { name }) => assert_eq!(name, "absent", "{what}"),
            other => panic!("{what}: expected UnknownTopic, got {other:?}"),
        };
        unknown(store.topic("absent").map(drop), "topic");
        unknown(store.delete_topic("absent"), "delete_topic");
        unknown(store.add_partitions("absent", 2), "add_partitions");
        // Names are case-sensitive.
        assert!(matches!(
            store.topic("PRESENT"),
            Err(Error::UnknownTopic { .. })
        ));
        store.delete_topic("present").unwrap();
        assert!(matches!(
            store.delete_topic("present"),
            Err(Error::UnknownTopic { .. })
        ));
        store.close().unwrap();
    });
}

#[test]
fn everything_fails_with_closed_after_store_close() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let t = store
            .create_topic("t", TopicConfig::with_partitions(2))
            .unwrap();
        let sent = send_some(&t, "t", 6);
        let clone = store.clone();
        store.close().unwrap();

        let closed = |r: topiclog::Result<()>, what: &str| {
            assert!(
                matches!(r, Err(Error::Closed { .. })),
                "{what}: expected Closed, got {r:?}"
            )
        };
        for s in [&store, &clone] {
            closed(s.topic("t").map(drop), "topic");
            closed(s.topic_or_create("t").map(drop), "topic_or_create existing");
            closed(s.topic_or_create("new").map(drop), "topic_or_create new");
            closed(
                s.create_topic("other", TopicConfig::with_partitions(1))
                    .map(drop),
                "create_topic",
            );
            closed(s.delete_topic("t"), "delete_topic");
            closed(s.add_partitions("t", 4), "add_partitions");
            closed(s.maintain(), "maintain");
        }
        closed(t.send(Record::new("late")).map(drop), "send");
        closed(t.send_to(1, Record::new("late")).map(drop), "send_to");
        closed(
            t.send_batch(&[Record::new("a"), Record::new("b").with_key("k")])
                .map(drop),
            "send_batch",
        );
        closed(
            t.partition(0)
                .unwrap()
                .append(Record::new("late"))
                .map(drop),
            "partition append",
        );

        // Nothing was written by the failed calls.
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["t"]);
        assert_holds_exactly(&store.topic("t").unwrap(), &sent, "after reopen");
        store.close().unwrap();
    });
}

#[test]
fn topic_handles_fail_with_closed_after_delete_topic() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let doomed = store
            .create_topic("doomed", TopicConfig::with_partitions(2))
            .unwrap();
        let other = store
            .create_topic("other", TopicConfig::with_partitions(2))
            .unwrap();
        send_some(&doomed, "d", 8);
        let partition = doomed.partition(1).unwrap();
        let clone = doomed.clone();
        store.delete_topic("doomed").unwrap();

        for (what, r) in [
            ("send", doomed.send(Record::new("x")).map(drop)),
            (
                "clone send",
                clone.send(Record::new("x").with_key("k")).map(drop),
            ),
            ("send_to", doomed.send_to(0, Record::new("x")).map(drop)),
            (
                "send_batch",
                doomed
                    .send_batch(&[Record::new("x"), Record::new("y")])
                    .map(drop),
            ),
            (
                "partition append",
                partition.append(Record::new("x")).map(drop),
            ),
        ] {
            assert!(
                matches!(r, Err(Error::Closed { .. })),
                "{what}: expected Closed, got {r:?}"
            );
        }
        // A new topic of the same name is not reachable through the old handles.
        let reborn = store
            .create_topic("doomed", TopicConfig::with_partitions(2))
            .unwrap();
        assert!(matches!(
            doomed.send(Record::new("x")),
            Err(Error::Closed { .. })
        ));
        assert_eq!(reborn.end_offsets(), vec![0, 0]);
        // Other topics are untouched.
        let sent = send_some(&other, "o", 4);
        assert_holds_exactly(&other, &sent, "other topic");
        store.close().unwrap();
    });
}

// ---- Crash safety of topic administration, at every mutating operation -------------------------

const STORE: &str = "/store";

/// A fresh simulated store holding a `keeper` topic with data (which must survive everything
/// untouched) and, if `with_subject`, a topic `subject` with `partitions` partitions and data.
struct Scenario {
    fs: SimFs,
    store: Store,
    keeper: Vec<Sent>,
    subject: Vec<Sent>,
}

fn scenario(seed: u64, with_subject: bool, partitions: u32) -> Scenario {
    let fs = SimFs::new(seed);
    let store = Store::open_with_env(STORE, options(), env(Arc::new(fs.clone()))).unwrap();
    let keeper = store
        .create_topic("keeper", TopicConfig::with_partitions(2))
        .unwrap();
    let keeper = send_some(&keeper, "keep", 12);
    let subject = if with_subject {
        let t = store
            .create_topic("subject", TopicConfig::with_partitions(partitions))
            .unwrap();
        // Enough data for several 1 KiB segments per partition.
        send_some(&t, "subj", 60)
    } else {
        Vec::new()
    };
    Scenario {
        fs,
        store,
        keeper,
        subject,
    }
}

/// Count the mutating operations `op` performs on a fresh scenario.
fn count_ops(with_subject: bool, partitions: u32, op: impl Fn(&Store)) -> u64 {
    let s = scenario(1, with_subject, partitions);
    let before = s.fs.mutating_ops();
    op(&s.store);
    let ops = s.fs.mutating_ops() - before;
    assert!(ops > 3, "the operation does real work ({ops} ops)");
    ops
}

/// Cut the power `n` operations into `op`, crash (alternating lost and torn unsynced writes) and
/// reopen. Returns the reopened store, whether `op` reported success, and the scenario's data.
fn interrupt(
    n: u64,
    with_subject: bool,
    partitions: u32,
    op: impl Fn(&Store) -> topiclog::Result<()>,
) -> (Store, SimFs, bool, Vec<Sent>, Vec<Sent>) {
    let s = scenario(1, with_subject, partitions);
    s.fs.power_cut_after(n);
    let ok = op(&s.store).is_ok();
    std::mem::forget(s.store);
    let mode = if n.is_multiple_of(2) {
        CrashMode::LoseUnsynced
    } else {
        CrashMode::Torn
    };
    s.fs.crash(mode);
    let store = Store::open_with_env(STORE, options(), env(Arc::new(s.fs.clone())))
        .unwrap_or_else(|e| panic!("cut after {n} ops ({mode:?}): reopen failed: {e}"));
    let mut entries = s.fs.read_dir(Path::new(STORE)).unwrap();
    entries.sort();
    assert!(
        entries
            .iter()
            .all(|e| ["LOCK", "keeper", "subject"].contains(&e.as_str())),
        "cut after {n} ops: the store directory holds {entries:?}"
    );
    assert_holds_exactly(
        &store.topic("keeper").unwrap(),
        &s.keeper,
        &format!("cut after {n} ops: keeper"),
    );
    (store, s.fs, ok, s.keeper, s.subject)
}

/// The partition directories present in a topic directory.
fn partition_dirs(fs: &SimFs, topic: &str) -> Vec<u32> {
    let mut dirs: Vec<u32> = fs
        .read_dir(&Path::new(STORE).join(topic))
        .unwrap()
        .into_iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    dirs.sort_unstable();
    dirs
}

#[test]
fn delete_topic_interrupted_at_every_op_leaves_all_or_nothing() {
    let total = count_ops(true, 3, |s| s.delete_topic("subject").unwrap());
    let (mut kept, mut gone) = (0, 0);
    for n in 0..=total {
        let what = format!("delete cut after {n} of {total} ops");
        let (store, fs, ok, _, subject) = interrupt(n, true, 3, |s| s.delete_topic("subject"));
        let subject_dir = Path::new(STORE).join("subject");
        if store.topics().contains(&"subject".to_owned()) {
            assert!(
                !ok,
                "{what}: delete_topic reported success, yet the topic is back"
            );
            let t = store.topic("subject").unwrap();
            assert_eq!(t.partition_count(), 3, "{what}");
            assert_holds_exactly(&t, &subject, &what);
            // And it can still be deleted.
            store.delete_topic("subject").unwrap();
            kept += 1;
        } else {
            assert!(
                !fs.exists(&subject_dir).unwrap(),
                "{what}: the topic is not listed but its directory is left: {:?}",
                fs.read_dir(&subject_dir)
            );
            gone += 1;
        }
        assert!(!fs.exists(&subject_dir).unwrap(), "{what}");
        // A topic re-created under the name starts empty.
        let t = store
            .create_topic("subject", TopicConfig::with_partitions(3))
            .unwrap();
        assert_eq!(t.end_offsets(), vec![0, 0, 0], "{what}: re-created");
        assert_eq!(store.topics(), vec!["keeper", "subject"], "{what}");
        store.close().unwrap();
    }
    eprintln!("delete_topic: {total} ops; kept {kept}, gone {gone}");
    assert!(kept > 0 && gone > 0, "kept {kept}, gone {gone}");
}

#[test]
fn create_topic_interrupted_at_every_op_leaves_all_or_nothing() {
    let create = |s: &Store| {
        s.create_topic("subject", TopicConfig::with_partitions(3))
            .map(drop)
    };
    let total = count_ops(false, 3, |s| create(s).unwrap());
    let (mut absent, mut present) = (0, 0);
    for n in 0..=total {
        let what = format!("create cut after {n} of {total} ops");
        let (store, fs, ok, _, _) = interrupt(n, false, 3, create);
        let subject_dir = Path::new(STORE).join("subject");
        if store.topics().contains(&"subject".to_owned()) {
            let t = store.topic("subject").unwrap();
            assert_eq!(t.partition_count(), 3, "{what}");
            assert_eq!(
                t.config(),
                options().resolve(&TopicConfig::with_partitions(3).overrides),
                "{what}"
            );
            assert_eq!(t.end_offsets(), vec![0, 0, 0], "{what}");
            assert_eq!(partition_dirs(&fs, "subject"), vec![0, 1, 2], "{what}");
            assert_usable(&t, &what);
            present += 1;
        } else {
            assert!(
                !ok,
                "{what}: create_topic reported success, yet the topic is gone"
            );
            assert!(
                !fs.exists(&subject_dir).unwrap(),
                "{what}: the topic is not listed but its directory is left: {:?}",
                fs.read_dir(&subject_dir)
            );
            assert!(matches!(
                store.topic("subject"),
                Err(Error::UnknownTopic { .. })
            ));
            let t = store
                .create_topic("subject", TopicConfig::with_partitions(3))
                .unwrap_or_else(|e| panic!("{what}: create again: {e}"));
            assert_usable(&t, &what);
            absent += 1;
        }
        store.close().unwrap();
    }
    eprintln!("create_topic: {total} ops; absent {absent}, present {present}");
    assert!(
        absent > 0 && present > 0,
        "absent {absent}, present {present}"
    );
}

#[test]
fn add_partitions_interrupted_at_every_op_leaves_old_or_new_count() {
    let grow = |s: &Store| s.add_partitions("subject", 5);
    let total = count_ops(true, 2, |s| grow(s).unwrap());
    let (mut old, mut new) = (0, 0);
    for n in 0..=total {
        let what = format!("add_partitions cut after {n} of {total} ops");
        let (store, fs, ok, _, subject) = interrupt(n, true, 2, grow);
        let t = store.topic("subject").unwrap();
        let count = t.partition_count();
        assert!(
            count == 2 || count == 5,
            "{what}: {count} partitions after the crash"
        );
        assert!(
            !ok || count == 5,
            "{what}: reported success, yet {count} partitions"
        );
        assert_eq!(t.partition_count(), count, "{what}");
        // No partition directory beyond the count is left behind.
        assert_eq!(
            partition_dirs(&fs, "subject"),
            (0..count).collect::<Vec<_>>(),
            "{what}"
        );
        assert_holds_exactly(&t, &subject, &what);
        assert_usable(&t, &what);
        if count == 2 {
            old += 1;
            store.add_partitions("subject", 5).unwrap();
            assert_usable(&store.topic("subject").unwrap(), &what);
        } else {
            new += 1;
        }
        store.close().unwrap();

        // Whatever survived is what the next clean open sees.
        let store = Store::open_with_env(STORE, options(), env(Arc::new(fs.clone()))).unwrap();
        assert_eq!(
            store.topic("subject").unwrap().partition_count(),
            5,
            "{what}"
        );
        store.close().unwrap();
    }
    eprintln!("add_partitions: {total} ops; old count {old}, new count {new}");
    assert!(old > 0 && new > 0, "old {old}, new {new}");
}

#[test]
fn uninterrupted_operations_survive_a_crash() {
    // What "reported success" promises above: an operation that returned Ok is durable.
    let (store, _, ok, _, _) = interrupt(u64::MAX / 2, true, 3, |s| s.delete_topic("subject"));
    assert!(ok);
    assert_eq!(store.topics(), vec!["keeper"]);
    store.close().unwrap();
    let (store, _, ok, _, _) = interrupt(u64::MAX / 2, false, 3, |s| {
        s.create_topic("subject", TopicConfig::with_partitions(3))
            .map(drop)
    });
    assert!(ok);
    assert_eq!(store.topic("subject").unwrap().partition_count(), 3);
    store.close().unwrap();
    let (store, _, ok, _, subject) =
        interrupt(u64::MAX / 2, true, 2, |s| s.add_partitions("subject", 5));
    assert!(ok);
    let t = store.topic("subject").unwrap();
    assert_eq!(t.partition_count(), 5);
    assert_holds_exactly(&t, &subject, "grown");
    store.close().unwrap();
}

// ---- Failed (not crashed) administration leaves a consistent store -----------------------------

/// A fault on every operation whose path contains `path_contains` and is of kind `op`.
fn fail_every(op: FaultOp, path_contains: &str) -> Fault {
    Fault {
        op,
        path_contains: Some(path_contains.to_owned()),
        nth: 0,
        kind: std::io::ErrorKind::Other,
        sticky: true,
    }
}

/// `add_partitions` that fails to persist the new count must not leave the topic routing records
/// to partitions that the next open deletes: every acknowledged send must survive a reopen, and
/// the topic must keep its old count.
#[test]
fn a_failed_add_partitions_changes_nothing() {
    let s = scenario(1, true, 2);
    let t = s.store.topic("subject").unwrap();
    s.fs.inject(fail_every(FaultOp::Rename, "topic.conf"));
    assert!(s.store.add_partitions("subject", 5).is_err());
    s.fs.clear_faults();

    // Acknowledged sends after the failure, wherever the topic routed them.
    let after = send_some(&t, "after", 40);
    let count_now = t.partition_count();
    s.store.close().unwrap();

    let store = Store::open_with_env(STORE, options(), env(Arc::new(s.fs.clone()))).unwrap();
    let reopened = store.topic("subject").unwrap();
    for sent in &after {
        let p = reopened.partition(sent.meta.partition).unwrap_or_else(|e| {
            panic!(
                "a send acknowledged at {:?} after the failed add_partitions is lost on reopen: {e}",
                sent.meta
            )
        });
        let read = p.read(sent.meta.offset, 1).unwrap();
        let got = read.records().next().expect("the acknowledged record");
        assert_eq!(got.value().unwrap().as_ref(), sent.value.as_slice());
    }
    assert_eq!(
        (count_now, t.partition_count()),
        (2, 2),
        "the failed add_partitions left the topic at its old count"
    );
    let mut all = s.subject.clone();
    all.extend(after);
    assert_holds_exactly(&reopened, &all, "after reopen");
    store.close().unwrap();
}

/// A `delete_topic` that fails before anything is removed can be retried, and what the store lists
/// afterwards is what it lists after a reopen.
#[test]
fn a_failed_delete_topic_can_be_retried() {
    let s = scenario(1, true, 3);
    // The first step, renaming the topic out of the way, fails: nothing changed.
    s.fs.inject(fail_every(FaultOp::Rename, "/store/subject"));
    assert!(s.store.delete_topic("subject").is_err());
    s.fs.clear_faults();
    let listed_after_failure = s.store.topics();
    assert_eq!(listed_after_failure, vec!["keeper", "subject"]);
    assert_holds_exactly(
        &s.store.topic("subject").unwrap(),
        &s.subject,
        "after the failed delete",
    );

    let retry = s.store.delete_topic("subject");
    assert!(
        retry.is_ok(),
        "retrying the failed delete_topic: {retry:?} (listed after the failure: \
         {listed_after_failure:?})"
    );
    assert_eq!(s.store.topics(), vec!["keeper"]);
    s.store.close().unwrap();
    let store = Store::open_with_env(STORE, options(), env(Arc::new(s.fs.clone()))).unwrap();
    assert_eq!(
        store.topics(),
        vec!["keeper"],
        "the deleted topic stays deleted"
    );
    store.close().unwrap();
}

/// A `delete_topic` whose file removal fails after the topic was renamed away reports the error,
/// the topic is gone all the same (the rename was durable), and the next open removes the files.
#[test]
fn a_delete_topic_whose_removal_fails_is_finished_by_the_next_open() {
    let s = scenario(1, true, 3);
    s.fs.inject(fail_every(FaultOp::Remove, "__deleting"));
    assert!(s.store.delete_topic("subject").is_err());
    s.fs.clear_faults();
    assert_eq!(s.store.topics(), vec!["keeper"]);
    let leftovers: Vec<String> =
        s.fs.read_dir(Path::new(STORE))
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with("__deleting."))
            .collect();
    assert_eq!(leftovers.len(), 1, "the renamed topic waits for removal");
    // The name is free at once.
    let t = s
        .store
        .create_topic("subject", TopicConfig::with_partitions(1))
        .unwrap();
    assert_eq!(t.end_offsets(), vec![0]);
    s.store.close().unwrap();
    let store = Store::open_with_env(STORE, options(), env(Arc::new(s.fs.clone()))).unwrap();
    assert_eq!(store.topics(), vec!["keeper", "subject"]);
    assert_eq!(store.topic("subject").unwrap().end_offsets(), vec![0]);
    assert!(
        !s.fs
            .read_dir(Path::new(STORE))
            .unwrap()
            .iter()
            .any(|n| n.starts_with("__")),
        "open removed the leftover"
    );
    store.close().unwrap();
}

/// A `create_topic` that fails leaves no topic behind, and the name can be created afterwards.
#[test]
fn a_failed_create_topic_leaves_nothing() {
    let s = scenario(1, false, 3);
    s.fs.inject(fail_every(FaultOp::Rename, "topic.conf"));
    assert!(s
        .store
        .create_topic("subject", TopicConfig::with_partitions(3))
        .is_err());
    s.fs.clear_faults();
    assert_eq!(s.store.topics(), vec!["keeper"]);
    assert!(matches!(
        s.store.topic("subject"),
        Err(Error::UnknownTopic { .. })
    ));
    let t = s
        .store
        .create_topic("subject", TopicConfig::with_partitions(3))
        .unwrap();
    let sent = send_some(&t, "second try", 10);
    s.store.close().unwrap();
    let store = Store::open_with_env(STORE, options(), env(Arc::new(s.fs.clone()))).unwrap();
    assert_eq!(store.topics(), vec!["keeper", "subject"]);
    assert_holds_exactly(&store.topic("subject").unwrap(), &sent, "created on retry");
    store.close().unwrap();
}
