//! Compaction run by the store: a compacted topic's partitions keep the latest value per key after
//! `Store::maintain` (on demand) or the background cleaner thread (every `cleaner_backoff`);
//! `delete` topics are never compacted; each topic's compaction settings are its `topic.conf`
//! overrides or the store defaults, and survive a reopen; a compacted topic's active segment
//! rolls by `max_compaction_lag`; closing the store while the cleaner runs is clean.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{
    CleanupPolicy, Deadline, Durability, Env, LogConfig, LogOverrides, ManualClock, Record, Store,
    StoreOptions, Topic, TopicConfig,
};

const NOW: i64 = 1_700_000_000_000;
const DEADLINE: Duration = Duration::from_secs(10);

fn env(fs: Arc<dyn FileSystem>, clock: &ManualClock) -> Env {
    Env {
        fs,
        clock: Arc::new(clock.clone()),
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 1024,
            preallocate: false,
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

fn compacted(partitions: u32) -> TopicConfig {
    TopicConfig {
        overrides: LogOverrides {
            cleanup_policy: Some(CleanupPolicy::Compact),
            ..LogOverrides::default()
        },
        ..TopicConfig::with_partitions(partitions)
    }
}

/// 200 updates over 10 keys to every partition, then a filler record so they are all sealed.
fn fill(topic: &Topic) -> Vec<BTreeMap<String, String>> {
    let mut latest = Vec::new();
    for p in 0..topic.partition_count() {
        let mut model = BTreeMap::new();
        for i in 0..200u32 {
            let key = format!("k{}", i % 10);
            let value = format!("{}-{p}-{i}", topic.name());
            topic
                .send_to(p, Record::new(value.clone()).with_key(key.clone()))
                .unwrap();
            model.insert(key, value);
        }
        let mut big = vec![b'f'; 900];
        big.extend_from_slice(b"end");
        topic
            .send_to(p, Record::new(big.clone()).with_key("filler"))
            .unwrap();
        topic
            .send_to(p, Record::new(big).with_key("filler"))
            .unwrap();
        latest.push(model);
    }
    latest
}

/// Key -> value of every record below the active segment, and the number of records there.
fn sealed_contents(topic: &Topic, p: u32) -> (BTreeMap<String, String>, usize) {
    let part = topic.partition(p).unwrap();
    let active = part.segments().last().unwrap().base_offset();
    let mut out = BTreeMap::new();
    let mut n = 0;
    let mut next = part.start_offset();
    while next < active {
        let b = part.read(next, 1 << 20).unwrap();
        for r in b.records().filter(|r| r.offset() < active) {
            let k = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
            if k != "filler" {
                out.insert(k, String::from_utf8(r.value().unwrap().to_vec()).unwrap());
                n += 1;
            }
        }
        next = b.next_offset();
    }
    (out, n)
}

fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &std::path::Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join("store"));
    f(Arc::new(SimFs::new(5)), std::path::Path::new("/sim/store"));
}

#[test]
fn maintain_compacts_compacted_topics_only() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let store = Store::open_with_env(dir, options(), env(fs.clone(), &clock)).unwrap();
        let table = store.create_topic("table", compacted(2)).unwrap();
        let events = store
            .create_topic("events", TopicConfig::with_partitions(1))
            .unwrap();
        let models = fill(&table);
        fill(&events);
        let events_before = sealed_contents(&events, 0).1;
        store.maintain().unwrap();
        for (p, model) in models.iter().enumerate() {
            let (got, n) = sealed_contents(&table, p as u32);
            assert_eq!(&got, model, "partition {p}");
            assert_eq!(n, model.len(), "one record per key in partition {p}");
        }
        assert_eq!(sealed_contents(&events, 0).1, events_before);
        // Survives a reopen.
        store.close().unwrap();
        let store = Store::open_with_env(dir, options(), env(fs.clone(), &clock)).unwrap();
        let table = store.topic("table").unwrap();
        for (p, model) in models.iter().enumerate() {
            assert_eq!(&sealed_contents(&table, p as u32).0, model);
        }
        store.close().unwrap();
    });
}

#[test]
fn topic_overrides_and_store_defaults_reach_the_policy_and_survive_reopen() {
    let clock = ManualClock::new(NOW);
    let fs: Arc<dyn FileSystem> = Arc::new(SimFs::new(9));
    let opts = || StoreOptions {
        log: LogConfig {
            delete_retention: Duration::from_secs(99),
            min_cleanable_dirty_ratio: 0.7,
            ..options().log
        },
        cleaner_buffer_bytes: 1 << 20,
        ..options()
    };
    let store = Store::open_with_env("/s", opts(), env(fs.clone(), &clock)).unwrap();
    let t = store
        .create_topic(
            "t",
            TopicConfig {
                overrides: LogOverrides {
                    min_cleanable_dirty_ratio: Some(0.1),
                    max_compaction_lag: Some(Deadline::After(Duration::from_secs(60))),
                    ..compacted(1).overrides
                },
                ..compacted(1)
            },
        )
        .unwrap();
    let check = |t: &Topic| {
        let c = t.compaction_policy();
        assert_eq!(c.delete_retention, Duration::from_secs(99));
        assert_eq!(c.min_cleanable_dirty_ratio, 0.1);
        assert_eq!(
            c.max_compaction_lag,
            Deadline::After(Duration::from_secs(60))
        );
        assert_eq!(c.map_budget_bytes, 1 << 20);
        // The active segment rolls by the maximum compaction lag at the latest.
        assert_eq!(
            t.config().roll_after(),
            Deadline::After(Duration::from_secs(60))
        );
    };
    check(&t);
    store.close().unwrap();
    let store = Store::open_with_env("/s", opts(), env(fs.clone(), &clock)).unwrap();
    check(&store.topic("t").unwrap());
    // A bad ratio is refused up front.
    let bad = store.create_topic(
        "bad",
        TopicConfig {
            overrides: LogOverrides {
                min_cleanable_dirty_ratio: Some(2.0),
                ..compacted(1).overrides
            },
            ..compacted(1)
        },
    );
    assert!(
        matches!(bad, Err(topiclog::Error::InvalidConfig { .. })),
        "{bad:?}"
    );
    store.close().unwrap();
}

#[test]
fn background_cleaner_compacts_without_being_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let store = Store::open_with_env(
        tmp.path(),
        StoreOptions {
            background_cleaner: true,
            cleaner_backoff: Duration::from_millis(20),
            ..options()
        },
        env(Arc::new(StdFs), &clock),
    )
    .unwrap();
    let table = store.create_topic("table", compacted(1)).unwrap();
    let models = fill(&table);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (got, n) = sealed_contents(&table, 0);
        if n == models[0].len() {
            assert_eq!(got, models[0]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner never compacted: {n} records"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(store.last_maintenance_error().map(|e| e.to_string()), None);
    store.close().unwrap();
}

#[test]
fn closing_the_store_while_the_cleaner_runs_is_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let opts = || StoreOptions {
        background_cleaner: true,
        cleaner_backoff: Duration::from_millis(1),
        ..options()
    };
    let real_env = || env(Arc::new(StdFs), &clock);
    for round in 0..5 {
        let store = Store::open_with_env(tmp.path(), opts(), real_env()).unwrap();
        let table = store.topic_or_create("table").unwrap();
        if round == 0 {
            store.delete_topic("table").unwrap();
            let t = store.create_topic("table", compacted(3)).unwrap();
            fill(&t);
        } else {
            fill(&table);
        }
        thread::sleep(Duration::from_millis(round * 3));
        store.close().unwrap();
        // Reopens cleanly with no leftover cleaner files.
        let store = Store::open_with_env(tmp.path(), opts(), real_env()).unwrap();
        let t = store.topic("table").unwrap();
        for p in t.partitions() {
            let names: Vec<_> = std::fs::read_dir(p.dir())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert!(
                !names
                    .iter()
                    .any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")),
                "{names:?}"
            );
            assert!(p.recovery_report().clean_shutdown);
        }
        store.close().unwrap();
    }
}
