//! Retention run by the store: each topic's policy is its own override or the store default
//! (`Duration::MAX` / `u64::MAX` mean forever / unlimited); `Store::maintain` applies it on
//! demand; the background thread applies it once every `retention_check_interval` of the store's
//! clock; topics with cleanup policy `compact` are left alone by time and size retention, while
//! `compact,delete` topics are cleaned like `delete` ones. What retention deleted stays deleted
//! across a store reopen.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{
    CleanupPolicy, Durability, Env, Limit, LogConfig, LogOverrides, ManualClock, Record, Retention,
    RetentionPolicy, Store, StoreOptions, Topic, TopicConfig,
};

const NOW: i64 = 1_700_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Generous: background work on a loaded machine can be slow, but never this slow.
const DEADLINE: Duration = Duration::from_secs(10);
const RECORDS: u32 = 20;

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
            retention: Retention::After(7 * DAY),
            retention_bytes: Limit::Unlimited,
            ..LogConfig::default()
        },
        background_maintenance: false,
        ..StoreOptions::default()
    }
}

fn topic_config(partitions: u32) -> TopicConfig {
    TopicConfig::with_partitions(partitions)
}

/// `RECORDS` keyed records of about 200 bytes to every partition (three to a 1 KiB segment), stamped with
/// the store clock's time.
fn fill(topic: &Topic) {
    for p in 0..topic.partition_count() {
        for i in 0..RECORDS {
            let mut v = format!("{}-{p}-{i}:", topic.name()).into_bytes();
            v.resize(200, b'x');
            // Keyed: compacted topics refuse records without a key.
            topic
                .send_to(p, Record::new(v).with_key(format!("k{i}")))
                .unwrap();
        }
    }
}

fn segment_counts(topic: &Topic) -> Vec<usize> {
    topic
        .partitions()
        .iter()
        .map(|p| p.segment_count())
        .collect()
}

/// Nothing deleted: every partition still starts at 0 with all its segments.
fn assert_untouched(topic: &Topic, segments: &[usize], what: &str) {
    let n = topic.partition_count() as usize;
    assert_eq!(topic.start_offsets(), vec![0; n], "{what}: start offsets");
    assert_eq!(topic.end_offsets(), vec![u64::from(RECORDS); n], "{what}");
    assert_eq!(segment_counts(topic), segments, "{what}: segments");
}

/// Everything expired: every partition is one empty segment at its end offset.
fn assert_all_deleted(topic: &Topic, what: &str) {
    let n = topic.partition_count() as usize;
    assert_eq!(
        topic.start_offsets(),
        vec![u64::from(RECORDS); n],
        "{what}: start offsets"
    );
    assert_eq!(topic.end_offsets(), vec![u64::from(RECORDS); n], "{what}");
    assert_eq!(segment_counts(topic), vec![1; n], "{what}: segments");
}

fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn maintain_applies_each_topics_override_or_the_store_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let clock = ManualClock::new(NOW);
    let store = Store::open_with_env(&dir, options(), env(Arc::new(StdFs), &clock)).unwrap();
    let short = store
        .create_topic(
            "short",
            TopicConfig {
                overrides: LogOverrides {
                    retention: Some(Retention::After(HOUR)),
                    ..LogOverrides::default()
                },
                ..topic_config(2)
            },
        )
        .unwrap();
    let default = store.create_topic("default", topic_config(1)).unwrap();
    let sized = store
        .create_topic(
            "sized",
            TopicConfig {
                overrides: LogOverrides {
                    retention: Some(Retention::Forever),
                    retention_bytes: Some(Limit::Bytes(1)),
                    ..LogOverrides::default()
                },
                ..topic_config(1)
            },
        )
        .unwrap();
    assert_eq!(
        short.config().retention_policy(),
        RetentionPolicy {
            retention: Retention::After(HOUR),
            retention_bytes: Limit::Unlimited
        }
    );
    assert_eq!(
        default.config().retention_policy(),
        RetentionPolicy {
            retention: Retention::After(7 * DAY),
            retention_bytes: Limit::Unlimited
        }
    );
    assert_eq!(
        sized.config().retention_policy(),
        RetentionPolicy {
            retention: Retention::Forever,
            retention_bytes: Limit::Bytes(1)
        }
    );
    for t in [&short, &default, &sized] {
        fill(t);
    }
    let short_segments = segment_counts(&short);
    let default_segments = segment_counts(&default);
    assert!(short_segments.iter().all(|&n| n >= 3), "{short_segments:?}");
    let sized_active = sized
        .partition(0)
        .unwrap()
        .segments()
        .last()
        .unwrap()
        .base_offset();
    assert!(sized_active > 0);

    // Nothing is old yet; only the size limit bites: all but the active segment go.
    store.maintain().unwrap();
    assert_untouched(&short, &short_segments, "short, at once");
    assert_untouched(&default, &default_segments, "default, at once");
    assert_eq!(sized.start_offsets(), vec![sized_active]);
    assert_eq!(sized.partition(0).unwrap().segment_count(), 1);

    // Two hours on: the one-hour topic loses everything, the default (7 days) nothing.
    clock.advance(2 * HOUR);
    store.maintain().unwrap();
    assert_all_deleted(&short, "short after 2 h");
    assert_untouched(&default, &default_segments, "default after 2 h");

    // A week on: the default goes too.
    clock.advance(7 * DAY);
    store.maintain().unwrap();
    assert_all_deleted(&default, "default after a week");
    assert_eq!(store.last_maintenance_error().map(|e| e.to_string()), None);

    // What was deleted stays deleted across a reopen.
    drop((short, default, sized));
    store.close().unwrap();
    drop(store);
    let store = Store::open_with_env(&dir, options(), env(Arc::new(StdFs), &clock)).unwrap();
    assert_all_deleted(&store.topic("short").unwrap(), "short reopened");
    assert_all_deleted(&store.topic("default").unwrap(), "default reopened");
    assert_eq!(
        store.topic("sized").unwrap().start_offsets(),
        vec![sized_active]
    );
    store.close().unwrap();
}

/// The background thread applies retention once `retention_check_interval` has passed on the
/// store's clock, and not before; `maintain` applies it at once whatever the interval.
#[test]
fn background_maintenance_applies_retention_every_check_interval() {
    let clock = ManualClock::new(NOW);
    let fs = SimFs::new(3);
    let store = Store::open_with_env(
        "/store",
        StoreOptions {
            background_maintenance: true,
            maintenance_interval: Duration::from_millis(5),
            retention_check_interval: DAY,
            ..options()
        },
        env(Arc::new(fs), &clock),
    )
    .unwrap();
    let topic = store
        .create_topic(
            "t",
            TopicConfig {
                overrides: LogOverrides {
                    retention: Some(Retention::After(HOUR)),
                    ..LogOverrides::default()
                },
                ..topic_config(2)
            },
        )
        .unwrap();
    fill(&topic);
    let segments = segment_counts(&topic);

    // Past the retention but not the check interval: the thread runs, retention does not.
    clock.advance(2 * HOUR);
    thread::sleep(Duration::from_millis(200));
    assert_untouched(&topic, &segments, "before the check interval");

    // A day after the store opened, the next background pass applies it.
    clock.advance(DAY - 2 * HOUR);
    eventually("background retention", || {
        topic.start_offsets() == vec![u64::from(RECORDS); 2]
    });
    assert_all_deleted(&topic, "background retention");

    // New data; past its retention, but the last pass was less than a day ago.
    for p in 0..2 {
        topic.send_to(p, Record::new("late")).unwrap();
    }
    clock.advance(2 * HOUR);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(topic.start_offsets(), vec![u64::from(RECORDS); 2]);

    // `maintain` does not wait for the interval.
    store.maintain().unwrap();
    assert_eq!(topic.start_offsets(), vec![u64::from(RECORDS) + 1; 2]);
    assert_eq!(store.last_maintenance_error().map(|e| e.to_string()), None);
    store.close().unwrap();
}

/// With a short check interval the thread keeps applying retention as the clock moves.
#[test]
fn background_retention_repeats_as_time_passes() {
    let clock = ManualClock::new(NOW);
    let store = Store::open_with_env(
        "/store",
        StoreOptions {
            background_maintenance: true,
            maintenance_interval: Duration::from_millis(5),
            retention_check_interval: Duration::from_secs(60),
            ..options()
        },
        env(Arc::new(SimFs::new(4)), &clock),
    )
    .unwrap();
    let topic = store
        .create_topic(
            "t",
            TopicConfig {
                overrides: LogOverrides {
                    retention: Some(Retention::After(HOUR)),
                    ..LogOverrides::default()
                },
                ..topic_config(1)
            },
        )
        .unwrap();
    let p = topic.partition(0).unwrap();
    for round in 1..=3u64 {
        for _ in 0..10 {
            topic.send_to(0, Record::new(vec![b'r'; 300])).unwrap();
        }
        clock.advance(2 * HOUR);
        eventually(&format!("round {round}"), || p.start_offset() == 10 * round);
        assert_eq!(p.segment_count(), 1);
    }
    store.close().unwrap();
}

/// `compact` topics are not touched by time or size retention; `compact,delete` topics are.
#[test]
fn compact_topics_are_left_alone_by_retention() {
    let clock = ManualClock::new(NOW);
    let store =
        Store::open_with_env("/store", options(), env(Arc::new(SimFs::new(5)), &clock)).unwrap();
    let compact = store
        .create_topic(
            "compact",
            TopicConfig {
                overrides: LogOverrides {
                    cleanup_policy: Some(CleanupPolicy::Compact),
                    retention: Some(Retention::After(HOUR)),
                    retention_bytes: Some(Limit::Bytes(0)),
                    ..LogOverrides::default()
                },
                ..topic_config(2)
            },
        )
        .unwrap();
    let both = store
        .create_topic(
            "both",
            TopicConfig {
                overrides: LogOverrides {
                    cleanup_policy: Some(CleanupPolicy::CompactDelete),
                    retention: Some(Retention::After(HOUR)),
                    ..LogOverrides::default()
                },
                ..topic_config(2)
            },
        )
        .unwrap();
    fill(&compact);
    fill(&both);
    let compact_segments = segment_counts(&compact);

    store.maintain().unwrap();
    assert_untouched(&compact, &compact_segments, "compact, at once");
    clock.advance(100 * DAY);
    store.maintain().unwrap();
    assert_untouched(&compact, &compact_segments, "compact, 100 days on");
    let report = compact.apply_retention(clock_now(&clock)).unwrap();
    assert_eq!(report.segments_deleted, 0);
    assert_all_deleted(&both, "compact,delete");
    store.close().unwrap();
}

/// Kafka's `shouldDeleteStartOffsetBreachedSegmentsWhenPolicyDoesNotIncludeDelete`: even on a
/// `compact` topic, whole segments below a start offset moved by `delete_records` are removed by
/// maintenance (they are unreadable anyway), while time and size limits still do not apply.
#[test]
fn compact_topic_drops_segments_below_the_delete_records_start() {
    let clock = ManualClock::new(NOW);
    let store =
        Store::open_with_env("/store", options(), env(Arc::new(SimFs::new(6)), &clock)).unwrap();
    let compact = store
        .create_topic(
            "compact",
            TopicConfig {
                overrides: LogOverrides {
                    cleanup_policy: Some(CleanupPolicy::Compact),
                    retention: Some(Retention::After(HOUR)),
                    ..LogOverrides::default()
                },
                ..topic_config(1)
            },
        )
        .unwrap();
    fill(&compact);
    let p = compact.partition(0).unwrap();
    let bases: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert!(bases.len() >= 3, "{bases:?}");
    // Into the middle of the second segment.
    let start = bases[1] + 1;
    assert_eq!(p.delete_records(start).unwrap(), start);
    clock.advance(100 * DAY);
    store.maintain().unwrap();
    let after: Vec<u64> = p.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(
        after,
        bases[1..].to_vec(),
        "only the segment wholly below the start goes"
    );
    assert_eq!(p.start_offset(), start);
    store.close().unwrap();
}

/// `Duration::MAX` as a topic's retention means forever, and `u64::MAX` as its retention bytes
/// means unlimited, whatever the store defaults say; this holds after a reopen too.
#[test]
fn duration_max_keeps_records_forever() {
    let clock = ManualClock::new(NOW);
    let fs = SimFs::new(7);
    let opts = || StoreOptions {
        log: LogConfig {
            retention: Retention::After(HOUR),
            ..options().log
        },
        ..options()
    };
    let store = Store::open_with_env("/store", opts(), env(Arc::new(fs.clone()), &clock)).unwrap();
    let forever = store
        .create_topic(
            "forever",
            TopicConfig {
                overrides: LogOverrides {
                    retention: Some(Retention::Forever),
                    ..LogOverrides::default()
                },
                ..topic_config(2)
            },
        )
        .unwrap();
    let unlimited = store
        .create_topic(
            "unlimited",
            TopicConfig {
                overrides: LogOverrides {
                    retention: Some(Retention::Forever),
                    retention_bytes: Some(Limit::Unlimited),
                    ..LogOverrides::default()
                },
                ..topic_config(1)
            },
        )
        .unwrap();
    let default = store.create_topic("default", topic_config(1)).unwrap();
    assert_eq!(
        forever.config().retention_policy().retention,
        Retention::Forever
    );
    assert_eq!(
        unlimited.config().retention_policy(),
        RetentionPolicy::default()
    );
    assert_eq!(
        default.config().retention_policy().retention,
        Retention::After(HOUR)
    );
    for t in [&forever, &unlimited, &default] {
        fill(t);
    }
    let forever_segments = segment_counts(&forever);
    let unlimited_segments = segment_counts(&unlimited);

    clock.advance(100 * 365 * DAY);
    store.maintain().unwrap();
    assert_untouched(&forever, &forever_segments, "forever, a century on");
    assert_untouched(&unlimited, &unlimited_segments, "unlimited, a century on");
    assert_all_deleted(&default, "store default");
    drop((forever, unlimited, default));
    store.close().unwrap();
    drop(store);

    let store = Store::open_with_env("/store", opts(), env(Arc::new(fs.clone()), &clock)).unwrap();
    let forever = store.topic("forever").unwrap();
    assert_eq!(forever.config().retention, Retention::Forever);
    assert_eq!(
        forever.config().retention_policy().retention,
        Retention::Forever
    );
    clock.advance(100 * 365 * DAY);
    store.maintain().unwrap();
    assert_untouched(&forever, &forever_segments, "forever, reopened");
    store.close().unwrap();
}

fn clock_now(clock: &ManualClock) -> i64 {
    use topiclog::Clock;
    clock.now_ms()
}
