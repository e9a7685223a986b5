//! `Store::alter_topic_config` (Kafka's `incrementalAlterConfigs`) is the one way to change an
//! existing topic's config: the change is validated (a refused change leaves the old config on
//! disk and live), persisted durably before it applies, applied live to the topic's policies and
//! every partition, and kept across reopens whatever options they pass. A power cut at any of its
//! file-system operations reopens with either the old or the new config, never anything else.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use topiclog::fs::{CrashMode, FileSystem, OpenMode, SimFs, StdFs};
use topiclog::{
    CleanupPolicy, Deadline, Durability, Env, Error, Limit, LogConfig, ManualClock, Record,
    Retention, Store, StoreOptions, TopicConfig,
};

const NOW: i64 = 1_700_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            preallocate: false,
            segment_bytes: 1024,
            retention: Retention::Forever,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

/// Options whose every topic default differs from [`options`]: a reopen with them must not
/// change an existing topic.
fn other_options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 4096,
            retention: Retention::After(Duration::from_secs(60)),
            retention_bytes: Limit::Bytes(1),
            cleanup_policy: CleanupPolicy::Delete,
            durability: Durability::None,
            max_batch_bytes: 2000,
            ..options().log
        },
        ..options()
    }
}

fn env(fs: Arc<dyn FileSystem>, clock: &ManualClock) -> Env {
    Env {
        fs,
        clock: Arc::new(clock.clone()),
    }
}

/// Run `f` on the real file system (in a temp dir) and on the simulated one.
fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join("store"));
    f(Arc::new(SimFs::new(23)), Path::new("/sim/store"));
}

fn read_file(fs: &dyn FileSystem, path: &Path) -> Vec<u8> {
    let f = fs.open(path, OpenMode::Read).unwrap();
    let mut buf = vec![0; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

/// Send `count` keyed records timestamped `ts` to every partition of `topic`.
fn fill(store: &Store, topic: &str, count: u32, ts: i64) {
    let t = store.topic(topic).unwrap();
    for p in 0..t.partition_count() {
        for i in 0..count {
            let r = Record::new(format!("{p}-{i}-{}", "v".repeat(50)))
                .with_key(format!("key-{}", i % 5))
                .with_timestamp(ts);
            t.send_to(p, r).unwrap();
        }
    }
}

#[test]
fn alter_changes_retention_and_cleanup_policy_durably_and_live() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let store = Store::open_with_env(dir, options(), env(fs.clone(), &clock)).unwrap();
        let t = store
            .create_topic("events", TopicConfig::with_partitions(2))
            .unwrap();
        assert_eq!(t.config().retention, Retention::Forever);
        fill(&store, "events", 40, NOW - 2 * 3600 * 1000);
        store.maintain().unwrap();
        assert_eq!(t.start_offsets(), vec![0, 0], "kept forever");

        // Retention: applies on the next maintenance pass.
        let altered = store
            .alter_topic_config("events", |c| {
                c.overrides.retention = Some(Retention::After(HOUR))
            })
            .unwrap();
        assert_eq!(altered.retention, Retention::After(HOUR));
        assert_eq!(t.config(), altered, "the handle sees the change");
        assert_eq!(store.topic("events").unwrap().config(), altered);
        assert_eq!(
            t.config().retention_policy().retention,
            Retention::After(HOUR)
        );
        store.maintain().unwrap();
        for (p, start) in t.start_offsets().into_iter().enumerate() {
            assert!(start > 0, "partition {p}: retention applied live");
        }

        // Cleanup policy: keyless records are refused from now on, by the topic and by each
        // partition handle.
        let partition = t.partition(1).unwrap();
        partition
            .append(Record::new("keyless, still fine"))
            .unwrap();
        let altered = store
            .alter_topic_config("events", |c| {
                c.overrides.cleanup_policy = Some(CleanupPolicy::Compact)
            })
            .unwrap();
        assert_eq!(
            altered.retention,
            Retention::After(HOUR),
            "the earlier change is kept"
        );
        assert_eq!(t.config().cleanup_policy, CleanupPolicy::Compact);
        assert!(partition.config().cleanup_policy.compacts());
        assert!(matches!(
            t.send(Record::new("no key")),
            Err(Error::MissingKey { .. })
        ));
        assert!(matches!(
            partition.append(Record::new("no key")),
            Err(Error::MissingKey { .. })
        ));
        t.send(Record::new("keyed").with_key("k")).unwrap();
        store.close().unwrap();

        // Reopened with different defaults: the altered config stays.
        for round in 0..2 {
            let store =
                Store::open_with_env(dir, other_options(), env(fs.clone(), &clock)).unwrap();
            let t = store.topic("events").unwrap();
            assert_eq!(t.config(), altered, "round {round}");
            assert_eq!(t.config().cleanup_policy, CleanupPolicy::Compact);
            assert_eq!(t.config().segment_bytes, 1024);
            assert!(matches!(
                t.send(Record::new("no key")),
                Err(Error::MissingKey { .. })
            ));
            store.close().unwrap();
        }
    });
}

#[test]
fn alter_reaches_every_partition_and_partitions_added_later() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let store = Store::open_with_env(dir, options(), env(fs.clone(), &clock)).unwrap();
        let t = store
            .create_topic("t", TopicConfig::with_partitions(3))
            .unwrap();
        let config = store
            .alter_topic_config("t", |c| {
                c.overrides.max_batch_bytes = Some(500);
                c.overrides.segment_bytes = Some(2048);
                c.overrides.durability = Some(Durability::EveryMessages(3));
            })
            .unwrap();
        for p in t.partitions() {
            assert_eq!(p.config().max_batch_bytes, 500);
            assert_eq!(p.config().segment_bytes, 2048);
            assert_eq!(p.config().durability, Durability::EveryMessages(3));
        }
        assert_eq!(t.config().max_batch_bytes, 500);
        assert!(matches!(
            t.send_to(2, Record::new(vec![0u8; 600])),
            Err(Error::RecordTooLarge { max: 500, .. })
        ));
        store.add_partitions("t", 5).unwrap();
        assert_eq!(t.config(), config);
        assert_eq!(t.partition_count(), 5);
        for p in t.partitions() {
            assert_eq!(p.config().max_batch_bytes, 500, "{:?}", p.dir());
        }
        store.close().unwrap();
        let store = Store::open_with_env(dir, other_options(), env(fs.clone(), &clock)).unwrap();
        for p in store.topic("t").unwrap().partitions() {
            assert_eq!(p.config().max_batch_bytes, 500);
            assert_eq!(p.config().durability, Durability::EveryMessages(3));
        }
        store.close().unwrap();
    });
}

#[test]
fn a_field_set_to_none_takes_the_store_default_of_this_open() {
    let clock = ManualClock::new(NOW);
    let fs: Arc<dyn FileSystem> = Arc::new(SimFs::new(5));
    let store = Store::open_with_env("/s", options(), env(fs.clone(), &clock)).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    store.close().unwrap();
    let other = other_options();
    let store = Store::open_with_env("/s", other.clone(), env(fs.clone(), &clock)).unwrap();
    let config = store
        .alter_topic_config("t", |c| {
            c.overrides.retention = None;
            c.overrides.max_batch_bytes = None;
        })
        .unwrap();
    assert_eq!(config.retention, Retention::After(Duration::from_secs(60)));
    assert_eq!(config.max_batch_bytes, 2000);
    assert_eq!(config.segment_bytes, 1024, "untouched fields stay");
    store.close().unwrap();
}

#[test]
fn bad_changes_are_refused_and_the_old_config_stays_on_disk_and_live() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let store = Store::open_with_env(dir, options(), env(fs.clone(), &clock)).unwrap();
        let t = store
            .create_topic("t", TopicConfig::with_partitions(2))
            .unwrap();
        let conf = dir.join("t").join("topic.conf");
        let before_config = t.config();
        let before_bytes = read_file(&*fs, &conf);
        type Change = Box<dyn FnOnce(&mut TopicConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("partitions", Box::new(|c| c.partitions = 4)),
            ("partitions", Box::new(|c| c.partitions = 1)),
            (
                "retention",
                Box::new(|c| c.overrides.retention = Some(Retention::After(Duration::ZERO))),
            ),
            (
                "segment_bytes",
                Box::new(|c| c.overrides.segment_bytes = Some(10)),
            ),
            (
                "segment_ms",
                Box::new(|c| c.overrides.segment_ms = Some(Deadline::After(Duration::ZERO))),
            ),
            (
                "durability",
                Box::new(|c| c.overrides.durability = Some(Durability::EveryMessages(0))),
            ),
            (
                "max_batch_bytes",
                Box::new(|c| c.overrides.max_batch_bytes = Some(1)),
            ),
            (
                "min_cleanable_dirty_ratio",
                Box::new(|c| c.overrides.min_cleanable_dirty_ratio = Some(1.5)),
            ),
            (
                "max_compaction_lag",
                Box::new(|c| {
                    c.overrides.min_compaction_lag = Some(HOUR);
                    c.overrides.max_compaction_lag = Some(Deadline::After(Duration::from_secs(60)));
                }),
            ),
        ];
        for (field, change) in cases {
            match store.alter_topic_config("t", change) {
                Err(Error::InvalidConfig { field: f, reason }) => {
                    assert_eq!(f, field, "{reason}");
                    if field == "partitions" {
                        assert!(reason.contains("add_partitions"), "{reason}");
                    }
                }
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
            assert_eq!(t.config(), before_config, "{field}: live config kept");
            assert_eq!(read_file(&*fs, &conf), before_bytes, "{field}: file kept");
            for p in t.partitions() {
                assert_eq!(p.config().segment_bytes, 1024, "{field}");
                assert_ne!(p.config().max_batch_bytes, 1, "{field}");
            }
        }
        for name in ["__consumer_offsets", "absent"] {
            assert!(
                matches!(
                    store.alter_topic_config(name, |c| c.overrides.retention =
                        Some(Retention::After(HOUR))),
                    Err(Error::UnknownTopic { .. })
                ),
                "{name}"
            );
        }
        // The offsets topic exists, and stays out of reach.
        store
            .consumer(topiclog::ConsumerConfig::group("g"))
            .unwrap()
            .close()
            .unwrap();
        assert!(matches!(
            store.alter_topic_config("__consumer_offsets", |c| c.overrides.retention =
                Some(Retention::After(HOUR))),
            Err(Error::UnknownTopic { .. })
        ));
        // An unchanged config writes nothing.
        assert_eq!(
            store.alter_topic_config("t", |_| {}).unwrap(),
            before_config
        );
        assert_eq!(read_file(&*fs, &conf), before_bytes);
        let clone = store.clone();
        store.close().unwrap();
        assert!(matches!(
            clone.alter_topic_config("t", |c| c.overrides.retention =
                Some(Retention::After(HOUR))),
            Err(Error::Closed { .. })
        ));
        let store = Store::open_with_env(dir, options(), env(fs.clone(), &clock)).unwrap();
        assert_eq!(store.topic("t").unwrap().config(), before_config);
        store.close().unwrap();
    });
}

// ---- Crash safety: a power cut at every operation of an alter ----------------------------------

const STORE: &str = "/store";

fn scenario(clock: &ManualClock) -> (SimFs, Store, LogConfig) {
    let fs = SimFs::new(11);
    let store = Store::open_with_env(STORE, options(), env(Arc::new(fs.clone()), clock)).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    fill(&store, "t", 20, NOW);
    let config = t.config();
    (fs, store, config)
}

fn change(c: &mut TopicConfig) {
    c.overrides.retention = Some(Retention::After(HOUR));
    c.overrides.cleanup_policy = Some(CleanupPolicy::CompactDelete);
    c.overrides.segment_bytes = Some(4096);
}

#[test]
fn alter_interrupted_at_every_op_leaves_the_old_or_the_new_config() {
    let clock = ManualClock::new(NOW);
    let (fs, store, _) = scenario(&clock);
    let before = fs.mutating_ops();
    let new = store.alter_topic_config("t", change).unwrap();
    let total = fs.mutating_ops() - before;
    assert!(total >= 4, "write, sync, rename, sync dir: {total}");
    store.close().unwrap();

    let (mut old_seen, mut new_seen) = (0, 0);
    for n in 0..=total + 1 {
        let (fs, store, old) = scenario(&clock);
        fs.power_cut_after(n);
        let ok = store.alter_topic_config("t", change).is_ok();
        std::mem::forget(store);
        fs.crash(if n % 2 == 0 {
            CrashMode::LoseUnsynced
        } else {
            CrashMode::Torn
        });
        let store = Store::open_with_env(STORE, options(), env(Arc::new(fs.clone()), &clock))
            .unwrap_or_else(|e| panic!("cut after {n} of {total} ops: reopen failed: {e}"));
        let t = store.topic("t").unwrap();
        let config = t.config();
        if config == new {
            assert_eq!(t.config().cleanup_policy, CleanupPolicy::CompactDelete);
            new_seen += 1;
        } else {
            assert_eq!(config, old, "cut after {n} of {total} ops");
            assert!(
                !ok,
                "cut after {n}: reported success, yet the old config is back"
            );
            old_seen += 1;
        }
        assert_eq!(t.end_offsets(), vec![20, 20], "cut after {n}: data kept");
        let entries = fs.read_dir(&Path::new(STORE).join("t")).unwrap();
        assert!(
            !entries.iter().any(|e| e.ends_with(".tmp")),
            "cut after {n}: {entries:?}"
        );
        store.close().unwrap();
    }
    eprintln!("alter: {total} ops; old {old_seen}, new {new_seen}");
    assert!(old_seen > 0 && new_seen > 0);
}
