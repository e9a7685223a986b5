//! A topic's configuration: its overrides are persisted in `topic.conf` and reopen unchanged; the
//! effective partition configuration is the overrides applied to the store defaults (so a changed
//! store default reaches every topic that did not override it); bad values are refused with
//! `Error::InvalidConfig`; a damaged `topic.conf` stops `Store::open` with
//! `Error::InvalidConfigFile` naming the file; and `add_partitions` only ever grows a topic.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use topiclog::fs::{FileSystem, OpenMode, SimFs, StdFs};
use topiclog::{
    CleanupPolicy, Durability, Error, ManualClock, Record, Recovery, Store, StoreOptions,
    TimestampType, TopicConfig, MAX_PARTITIONS,
};

const NOW: i64 = 1_700_000_000_000;

fn options(fs: Arc<dyn FileSystem>) -> StoreOptions {
    StoreOptions {
        file_system: fs,
        preallocate: false,
        segment_bytes: 4096,
        background_maintenance: false,
        clock: Arc::new(ManualClock::new(NOW)),
        ..StoreOptions::default()
    }
}

/// Run `f` on the real file system (in a temp dir) and on the simulated one.
fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join("store"));
    f(Arc::new(SimFs::new(21)), Path::new("/sim/store"));
}

/// A topic config overriding every setting.
fn every_override() -> TopicConfig {
    TopicConfig {
        partitions: 3,
        segment_bytes: Some(2048),
        segment_ms: Some(Duration::from_secs(3600)),
        index_interval_bytes: Some(100),
        max_index_bytes: Some(4096),
        max_batch_bytes: Some(5000),
        durability: Some(Durability::Interval(Duration::from_millis(250))),
        preallocate: Some(false),
        retention: Some(Duration::from_secs(60)),
        retention_bytes: Some(u64::MAX),
        cleanup_policy: Some(CleanupPolicy::CompactDelete),
        timestamp_type: Some(TimestampType::LogAppendTime),
        delete_retention: Some(Duration::from_secs(600)),
        min_compaction_lag: Some(Duration::from_secs(5)),
        max_compaction_lag: Some(Duration::from_secs(7200)),
        min_cleanable_dirty_ratio: Some(0.3),
    }
}

/// Replace the file at `path` with `bytes`, durably.
fn write_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) {
    let f = fs.open(path, OpenMode::Create).unwrap();
    f.set_len(0).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync_all().unwrap();
}

fn read_file(fs: &dyn FileSystem, path: &Path) -> Vec<u8> {
    let f = fs.open(path, OpenMode::Read).unwrap();
    let mut buf = vec![0; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

fn assert_invalid_config(r: topiclog::Result<()>, field: &str, what: &str) {
    match r {
        Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field, "{what}"),
        other => panic!("{what}: expected InvalidConfig({field}), got {other:?}"),
    }
}

#[test]
fn overrides_are_persisted_and_applied() {
    both_fs(|fs, dir| {
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        let all = store.create_topic("all", every_override()).unwrap();
        let never = TopicConfig {
            partitions: 2,
            segment_ms: Some(Duration::MAX),
            retention: Some(Duration::MAX),
            ..TopicConfig::default()
        };
        store.create_topic("never", never.clone()).unwrap();
        let some = TopicConfig {
            partitions: 1,
            durability: Some(Durability::None),
            ..TopicConfig::default()
        };
        store.create_topic("some", some.clone()).unwrap();
        assert_eq!(all.config(), every_override());

        // The overrides take effect: LogAppendTime stamps records with the store clock, and
        // max_batch_bytes refuses a larger record.
        let meta = all
            .send(Record::new("v").with_key("k").with_timestamp(5))
            .unwrap();
        assert_eq!(meta.timestamp, NOW);
        match all.send(Record::new(vec![0u8; 6000]).with_key("k")) {
            Err(Error::RecordTooLarge { max, .. }) => assert_eq!(max, 5000),
            other => panic!("expected RecordTooLarge, got {other:?}"),
        }
        store.close().unwrap();

        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        let all = store.topic("all").unwrap();
        assert_eq!(all.config(), every_override());
        assert_eq!(all.partition_count(), 3);
        let pc = all.partition_config();
        assert_eq!(pc.segment_bytes, 2048);
        assert_eq!(pc.segment_ms, Some(Duration::from_secs(3600)));
        assert_eq!(pc.index_interval_bytes, 100);
        assert_eq!(pc.max_index_bytes, 4096);
        assert_eq!(pc.max_batch_bytes, 5000);
        assert_eq!(
            pc.durability,
            Durability::Interval(Duration::from_millis(250))
        );
        assert!(!pc.preallocate);
        assert_eq!(pc.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(pc.recovery, Recovery::Strict);
        // Every partition runs with the effective configuration.
        for p in all.partitions() {
            assert_eq!(p.config().segment_bytes, 2048);
            assert_eq!(p.config().max_batch_bytes, 5000);
            assert_eq!(p.config().timestamp_type, TimestampType::LogAppendTime);
        }
        let read = all
            .partition(meta.partition)
            .unwrap()
            .read(meta.offset, 1 << 20);
        assert_eq!(read.unwrap().records().next().unwrap().timestamp(), NOW);

        // `Duration::MAX` means "never" and survives the round trip.
        let n = store.topic("never").unwrap();
        assert_eq!(n.config(), never);
        assert_eq!(n.partition_config().segment_ms, None);

        // Fields not overridden come from the store defaults.
        let defaults = options(fs.clone());
        let s = store.topic("some").unwrap();
        assert_eq!(s.config(), some);
        let pc = s.partition_config();
        assert_eq!(pc.durability, Durability::None);
        assert_eq!(pc.segment_bytes, defaults.segment_bytes);
        assert_eq!(pc.segment_ms, defaults.segment_ms);
        assert_eq!(pc.index_interval_bytes, defaults.index_interval_bytes);
        assert_eq!(pc.max_index_bytes, defaults.max_index_bytes);
        assert_eq!(pc.max_batch_bytes, defaults.max_batch_bytes);
        assert_eq!(pc.preallocate, defaults.preallocate);
        assert_eq!(pc.timestamp_type, defaults.timestamp_type);
        store.close().unwrap();
    });
}

#[test]
fn changed_store_defaults_reach_topics_that_did_not_override_them() {
    both_fs(|fs, dir| {
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        store
            .create_topic("plain", TopicConfig::with_partitions(2))
            .unwrap();
        store
            .create_topic(
                "pinned",
                TopicConfig {
                    partitions: 2,
                    segment_bytes: Some(2048),
                    durability: Some(Durability::Always),
                    timestamp_type: Some(TimestampType::CreateTime),
                    ..TopicConfig::default()
                },
            )
            .unwrap();
        store.close().unwrap();

        let changed = StoreOptions {
            segment_bytes: 8192,
            durability: Durability::EveryMessages(10),
            timestamp_type: TimestampType::LogAppendTime,
            max_batch_bytes: 3000,
            ..options(fs.clone())
        };
        let store = Store::open_with(dir, changed).unwrap();
        let plain = store.topic("plain").unwrap();
        assert_eq!(
            plain.config(),
            TopicConfig::with_partitions(2),
            "nothing persisted"
        );
        let pc = plain.partition_config();
        assert_eq!(pc.segment_bytes, 8192);
        assert_eq!(pc.durability, Durability::EveryMessages(10));
        assert_eq!(pc.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(pc.max_batch_bytes, 3000);
        assert_eq!(plain.partition(1).unwrap().config().segment_bytes, 8192);
        let meta = plain.send(Record::new("x").with_timestamp(1)).unwrap();
        assert_eq!(
            meta.timestamp, NOW,
            "the new default timestamp type applies"
        );

        let pinned = store.topic("pinned").unwrap();
        let pc = pinned.partition_config();
        assert_eq!(pc.segment_bytes, 2048);
        assert_eq!(pc.durability, Durability::Always);
        assert_eq!(pc.timestamp_type, TimestampType::CreateTime);
        // ...while what it did not pin follows the new default.
        assert_eq!(pc.max_batch_bytes, 3000);
        let meta = pinned.send(Record::new("x").with_timestamp(1)).unwrap();
        assert_eq!(meta.timestamp, 1);
        store.close().unwrap();
    });
}

#[test]
fn invalid_topic_configs_are_refused_and_create_nothing() {
    both_fs(|fs, dir| {
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        let before = fs.read_dir(dir).unwrap();
        let cases: Vec<(TopicConfig, &str)> = vec![
            (TopicConfig::with_partitions(0), "partitions"),
            (
                TopicConfig::with_partitions(MAX_PARTITIONS + 1),
                "partitions",
            ),
            (
                TopicConfig {
                    segment_bytes: Some(10),
                    ..TopicConfig::default()
                },
                "segment_bytes",
            ),
            (
                TopicConfig {
                    segment_bytes: Some(0),
                    ..TopicConfig::default()
                },
                "segment_bytes",
            ),
            (
                TopicConfig {
                    segment_bytes: Some(3 << 30),
                    ..TopicConfig::default()
                },
                "segment_bytes",
            ),
            (
                TopicConfig {
                    segment_ms: Some(Duration::ZERO),
                    ..TopicConfig::default()
                },
                "segment_ms",
            ),
            (
                TopicConfig {
                    retention: Some(Duration::ZERO),
                    ..TopicConfig::default()
                },
                "retention",
            ),
            (
                TopicConfig {
                    index_interval_bytes: Some(0),
                    ..TopicConfig::default()
                },
                "index_interval_bytes",
            ),
            (
                TopicConfig {
                    max_batch_bytes: Some(1),
                    ..TopicConfig::default()
                },
                "max_batch_bytes",
            ),
            (
                TopicConfig {
                    durability: Some(Durability::EveryMessages(0)),
                    ..TopicConfig::default()
                },
                "durability",
            ),
        ];
        for (config, field) in cases {
            let what = format!("{config:?}");
            assert_invalid_config(store.create_topic("t", config).map(drop), field, &what);
        }
        assert!(store.topics().is_empty());
        assert_eq!(fs.read_dir(dir).unwrap(), before, "nothing was created");
        store.close().unwrap();
    });
}

#[test]
fn invalid_store_options_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let base = || options(Arc::new(StdFs));
    let cases: Vec<(StoreOptions, &str)> = vec![
        (
            StoreOptions {
                default_partitions: 0,
                ..base()
            },
            "default_partitions",
        ),
        (
            StoreOptions {
                segment_bytes: 10,
                ..base()
            },
            "segment_bytes",
        ),
        (
            StoreOptions {
                maintenance_interval: Duration::ZERO,
                ..base()
            },
            "maintenance_interval",
        ),
        (
            StoreOptions {
                retention: Some(Duration::ZERO),
                ..base()
            },
            "retention",
        ),
    ];
    for (opts, field) in cases {
        assert_invalid_config(Store::open_with(&dir, opts).map(drop), field, field);
    }
    // None of the refusals left the directory locked.
    Store::open_with(&dir, base()).unwrap().close().unwrap();
}

#[test]
fn a_damaged_topic_conf_fails_open_naming_the_file() {
    both_fs(|fs, dir| {
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        let t = store
            .create_topic("orders", TopicConfig::with_partitions(2))
            .unwrap();
        let meta = t.send(Record::new("kept").with_key("k")).unwrap();
        store
            .create_topic("fine", TopicConfig::with_partitions(1))
            .unwrap();
        store.close().unwrap();
        let conf = dir.join("orders").join("topic.conf");
        let good = read_file(&*fs, &conf);

        let garbage: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        // (contents, line the error names, if the file is text with a bad line)
        let cases: Vec<(&str, Vec<u8>, Option<usize>)> = vec![
            ("random bytes", garbage, None),
            ("empty", Vec::new(), Some(0)),
            (
                "non-numeric partitions",
                b"format=1\npartitions=abc\n".to_vec(),
                Some(2),
            ),
            (
                "unknown key",
                b"format=1\npartitions=2\nsegment.megabytes=5\n".to_vec(),
                Some(3),
            ),
            ("missing partitions", b"format=1\n".to_vec(), Some(0)),
            ("missing format", b"partitions=2\n".to_vec(), Some(0)),
            (
                "zero partitions",
                b"format=1\npartitions=0\n".to_vec(),
                Some(0),
            ),
            (
                "not key=value",
                b"format=1\npartitions=2\ngarbage line\n".to_vec(),
                Some(3),
            ),
            (
                "truncated",
                b"# topiclog topic configuration\nformat=1\nparti".to_vec(),
                Some(3),
            ),
            (
                "a value the merged configuration refuses",
                b"format=1\npartitions=2\nsegment.bytes=10\n".to_vec(),
                Some(0),
            ),
        ];
        for (what, bytes, line) in cases {
            write_file(&*fs, &conf, &bytes);
            match Store::open_with(dir, options(fs.clone())) {
                Err(Error::InvalidConfigFile {
                    path,
                    line: l,
                    reason,
                }) => {
                    assert_eq!(path, conf, "{what}: the error names the file");
                    if let Some(line) = line {
                        assert_eq!(l, line, "{what}: line ({reason})");
                    }
                    let message = Error::InvalidConfigFile {
                        path: path.clone(),
                        line: l,
                        reason,
                    }
                    .to_string();
                    assert!(message.contains("topic.conf"), "{what}: {message}");
                }
                Err(e) => panic!("{what}: expected InvalidConfigFile, got {e}"),
                Ok(_) => panic!("{what}: open accepted a damaged topic.conf"),
            }
        }

        // The failed opens released the lock and deleted nothing: restoring the file brings the
        // topic back whole.
        write_file(&*fs, &conf, &good);
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["fine", "orders"]);
        let t = store.topic("orders").unwrap();
        assert_eq!(t.partition_count(), 2);
        let read = t
            .partition(meta.partition)
            .unwrap()
            .read(meta.offset, 1 << 20);
        assert_eq!(
            read.unwrap()
                .records()
                .next()
                .unwrap()
                .value()
                .unwrap()
                .as_ref(),
            b"kept"
        );
        store.close().unwrap();
    });
}

#[test]
fn add_partitions_only_grows_and_is_persisted() {
    both_fs(|fs, dir| {
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        let config = TopicConfig {
            partitions: 2,
            segment_bytes: Some(2048),
            durability: Some(Durability::None),
            ..TopicConfig::default()
        };
        let t = store.create_topic("grow", config.clone()).unwrap();
        let before: Vec<_> = (0..2)
            .map(|p| t.send_to(p, Record::new(format!("old-{p}"))).unwrap())
            .collect();

        for (count, what) in [(2, "equal"), (1, "smaller"), (0, "zero")] {
            assert_invalid_config(store.add_partitions("grow", count), "partitions", what);
        }
        assert_eq!(t.partition_count(), 2);

        store.add_partitions("grow", 5).unwrap();
        // The handle obtained before the growth sees it too.
        assert_eq!(t.partition_count(), 5);
        assert_eq!(store.topic("grow").unwrap().partition_count(), 5);
        let grown = TopicConfig {
            partitions: 5,
            ..config.clone()
        };
        assert_eq!(t.config(), grown, "the other overrides are kept");
        for p in 2..5 {
            let part = t.partition(p).unwrap();
            assert_eq!(part.end_offset(), 0);
            assert_eq!(
                part.config().segment_bytes,
                2048,
                "new partitions use the config"
            );
            assert_eq!(part.config().durability, Durability::None);
            t.send_to(p, Record::new(format!("new-{p}"))).unwrap();
        }
        assert!(matches!(
            t.send_to(5, Record::new("x")),
            Err(Error::InvalidPartition {
                partition: 5,
                partitions: 5,
                ..
            })
        ));
        for (count, what) in [(5, "equal after growth"), (3, "smaller after growth")] {
            assert_invalid_config(store.add_partitions("grow", count), "partitions", what);
        }
        assert_invalid_config(
            store.add_partitions("grow", MAX_PARTITIONS + 1),
            "partitions",
            "beyond the maximum",
        );
        assert_eq!(t.partition_count(), 5);
        store.close().unwrap();

        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        let t = store.topic("grow").unwrap();
        assert_eq!(t.partition_count(), 5);
        assert_eq!(t.config(), grown);
        assert_eq!(t.end_offsets(), vec![1, 1, 1, 1, 1]);
        for meta in before {
            let read = t
                .partition(meta.partition)
                .unwrap()
                .read(meta.offset, 1 << 20);
            assert_eq!(
                read.unwrap()
                    .records()
                    .next()
                    .unwrap()
                    .value()
                    .unwrap()
                    .as_ref(),
                format!("old-{}", meta.partition).as_bytes()
            );
        }
        store.add_partitions("grow", 6).unwrap();
        store.close().unwrap();
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        assert_eq!(store.topic("grow").unwrap().partition_count(), 6);
        store.close().unwrap();
    });
}
