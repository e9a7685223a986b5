//! A topic's configuration is resolved against the store defaults when the topic is created and
//! persisted whole in `topic.conf` (format 2, checksummed): it reopens unchanged whatever options
//! later opens pass (issue 9: a store default used to apply to every topic that left the field
//! unset, so reopening with the 7-day default retention deleted records a topic created with
//! "forever" had kept); a format 1 file of an earlier version is resolved once and rewritten; bad
//! values are refused with `Error::InvalidConfig`; a damaged `topic.conf` (checksum, truncation,
//! syntax, values) stops `Store::open` with `Error::InvalidConfigFile` naming the file and deletes
//! nothing; and `add_partitions` only ever grows a topic.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use topiclog::fs::{FileSystem, OpenMode};
use topiclog::limits::MAX_PARTITIONS;
use topiclog::{
    CleanupPolicy, CompressionType, Deadline, Durability, Env, Error, Limit, LogConfig,
    LogOverrides, ManualClock, Record, Recovery, Retention, Store, StoreOptions, TimestampType,
    TopicConfig,
};

const NOW: i64 = 1_700_000_000_000;

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            preallocate: false,
            segment_bytes: 4096,
            ..LogConfig::default()
        },
        background_maintenance: false,
        ..StoreOptions::default()
    }
}

fn env(fs: Arc<dyn FileSystem>) -> Env {
    Env {
        fs,
        clock: Arc::new(ManualClock::new(NOW)),
    }
}

/// Run `f` on the real file system (in a temp dir) and on the simulated one.
fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    crate::common::both_fs_at("store", 21, f)
}

/// A topic config overriding every setting.
fn every_override() -> TopicConfig {
    TopicConfig {
        partitions: 3,
        overrides: LogOverrides {
            segment_bytes: Some(2048),
            segment_ms: Some(Deadline::After(Duration::from_secs(3600))),
            index_interval_bytes: Some(100),
            max_index_bytes: Some(4096),
            max_batch_bytes: Some(5000),
            durability: Some(Durability::Interval(Duration::from_millis(250))),
            preallocate: Some(false),
            retention: Some(Retention::After(Duration::from_secs(60))),
            retention_bytes: Some(Limit::Unlimited),
            cleanup_policy: Some(CleanupPolicy::CompactDelete),
            timestamp_type: Some(TimestampType::LogAppendTime),
            delete_retention: Some(Duration::from_secs(600)),
            min_compaction_lag: Some(Duration::from_secs(5)),
            max_compaction_lag: Some(Deadline::After(Duration::from_secs(7200))),
            min_cleanable_dirty_ratio: Some(0.3),
            compression: Some(CompressionType::Uncompressed),
        },
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
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let all = store.create_topic("all", every_override()).unwrap();
        let never = TopicConfig {
            partitions: 2,
            overrides: LogOverrides {
                segment_ms: Some(Deadline::Never),
                retention: Some(Retention::Forever),
                ..LogOverrides::default()
            },
        };
        store.create_topic("never", never.clone()).unwrap();
        let some = TopicConfig {
            partitions: 1,
            overrides: LogOverrides {
                durability: Some(Durability::None),
                ..LogOverrides::default()
            },
        };
        store.create_topic("some", some.clone()).unwrap();
        assert_eq!(all.config(), options().resolve(&every_override().overrides));

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

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let all = store.topic("all").unwrap();
        assert_eq!(all.config(), options().resolve(&every_override().overrides));
        assert_eq!(all.partition_count(), 3);
        let pc = all.config();
        assert_eq!(pc.segment_bytes, 2048);
        assert_eq!(pc.segment_ms, Deadline::After(Duration::from_secs(3600)));
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

        // "Never" and "forever" survive the round trip.
        let defaults = options();
        let n = store.topic("never").unwrap();
        assert_eq!(n.config(), defaults.resolve(&never.overrides));
        assert_eq!(n.config().segment_ms, Deadline::Never);
        assert_eq!(n.config().retention, Retention::Forever);
        assert_eq!(n.partition(0).unwrap().config().segment_ms, Deadline::Never);

        // Fields not overridden come from the store defaults of the creating open.
        let s = store.topic("some").unwrap();
        assert_eq!(s.config(), defaults.resolve(&some.overrides));
        assert_eq!(s.config().durability, Durability::None);
        let pc = s.partition(0).unwrap().config();
        assert_eq!(pc.durability, Durability::None);
        assert_eq!(pc.segment_bytes, defaults.log.segment_bytes);
        assert_eq!(pc.segment_ms, defaults.log.segment_ms);
        assert_eq!(pc.index_interval_bytes, defaults.log.index_interval_bytes);
        assert_eq!(pc.max_index_bytes, defaults.log.max_index_bytes);
        assert_eq!(pc.max_batch_bytes, defaults.log.max_batch_bytes);
        assert_eq!(pc.preallocate, defaults.log.preallocate);
        assert_eq!(pc.timestamp_type, defaults.log.timestamp_type);
        store.close().unwrap();
    });
}

/// Every field of a created topic's config is set, from the overrides or from the store
/// defaults of the open that created it: it pins every override.
fn assert_resolved(topic: &topiclog::Topic, what: &str) {
    let config = TopicConfig {
        partitions: topic.partition_count(),
        overrides: topic.config().overrides(),
    };
    let TopicConfig {
        partitions,
        overrides:
            LogOverrides {
                segment_bytes,
                segment_ms,
                index_interval_bytes,
                max_index_bytes,
                max_batch_bytes,
                durability,
                preallocate,
                retention,
                retention_bytes,
                cleanup_policy,
                timestamp_type,
                delete_retention,
                min_compaction_lag,
                max_compaction_lag,
                min_cleanable_dirty_ratio,
                compression,
            },
    } = config;
    assert!(partitions > 0, "{what}");
    assert!(
        segment_bytes.is_some()
            && segment_ms.is_some()
            && index_interval_bytes.is_some()
            && max_index_bytes.is_some()
            && max_batch_bytes.is_some()
            && durability.is_some()
            && preallocate.is_some()
            && retention.is_some()
            && retention_bytes.is_some()
            && cleanup_policy.is_some()
            && timestamp_type.is_some()
            && delete_retention.is_some()
            && min_compaction_lag.is_some()
            && max_compaction_lag.is_some()
            && min_cleanable_dirty_ratio.is_some()
            && compression.is_some(),
        "{what}: {config:?}"
    );
}

#[test]
fn store_defaults_are_fixed_at_creation_and_later_opens_never_change_them() {
    both_fs(|fs, dir| {
        let creating = StoreOptions {
            log: LogConfig {
                retention: Retention::Forever,
                retention_bytes: Limit::Bytes(1 << 20),
                segment_ms: Deadline::Never,
                max_compaction_lag: Deadline::Never,
                delete_retention: Duration::from_micros(1500),
                ..options().log
            },
            ..options()
        };
        let store = Store::open_with_env(dir, creating.clone(), env(fs.clone())).unwrap();
        let plain = store
            .create_topic("plain", TopicConfig::with_partitions(2))
            .unwrap();
        let pinned_overrides = TopicConfig {
            partitions: 2,
            overrides: LogOverrides {
                segment_bytes: Some(2048),
                durability: Some(Durability::Always),
                timestamp_type: Some(TimestampType::CreateTime),
                ..LogOverrides::default()
            },
        };
        let pinned = store
            .create_topic("pinned", pinned_overrides.clone())
            .unwrap();
        let plain_config = plain.config();
        let pinned_config = pinned.config();
        assert_resolved(&plain, "plain");
        assert_resolved(&pinned, "pinned");
        assert_eq!(
            plain_config,
            creating.resolve(&TopicConfig::with_partitions(2).overrides)
        );
        assert_eq!(pinned_config, creating.resolve(&pinned_overrides.overrides));
        // The store defaults as they were, with "forever"/"never" spelled out and durations in
        // whole milliseconds (rounded up).
        assert_eq!(plain_config.retention, Retention::Forever);
        assert_eq!(plain_config.retention_bytes, Limit::Bytes(1 << 20));
        assert_eq!(plain_config.segment_ms, Deadline::Never);
        assert_eq!(plain_config.max_compaction_lag, Deadline::Never);
        assert_eq!(plain_config.delete_retention, Duration::from_millis(2));
        assert_eq!(plain_config.segment_bytes, 4096);
        assert_eq!(plain_config.durability, Durability::Always);
        assert_eq!(pinned_config.segment_bytes, 2048);
        store.close().unwrap();

        // Reopen with every topic default changed: the topics keep what they were created with.
        let changed = StoreOptions {
            log: LogConfig {
                segment_bytes: 8192,
                segment_ms: Deadline::After(Duration::from_secs(60)),
                durability: Durability::EveryMessages(10),
                timestamp_type: TimestampType::LogAppendTime,
                max_batch_bytes: 3000,
                retention: Retention::After(Duration::from_secs(3600)),
                retention_bytes: Limit::Unlimited,
                cleanup_policy: CleanupPolicy::Compact,
                delete_retention: Duration::from_secs(5),
                max_compaction_lag: Deadline::After(Duration::from_secs(120)),
                min_cleanable_dirty_ratio: 0.9,
                preallocate: true,
                index_interval_bytes: 99,
                max_index_bytes: 1200,
                ..options().log
            },
            ..options()
        };
        for round in 0..2 {
            let store = Store::open_with_env(dir, changed.clone(), env(fs.clone())).unwrap();
            let plain = store.topic("plain").unwrap();
            assert_eq!(plain.config(), plain_config, "round {round}");
            let pc = plain.config();
            assert_eq!(pc.segment_bytes, 4096);
            assert_eq!(pc.segment_ms, Deadline::Never);
            assert_eq!(pc.durability, Durability::Always);
            assert_eq!(pc.timestamp_type, TimestampType::CreateTime);
            assert_eq!(pc.max_batch_bytes, options().log.max_batch_bytes);
            assert!(!pc.cleanup_policy.compacts());
            assert_eq!(plain.config().cleanup_policy, CleanupPolicy::Delete);
            assert_eq!(
                plain.config().retention_policy().retention,
                Retention::Forever
            );
            assert_eq!(
                plain.config().retention_policy().retention_bytes,
                Limit::Bytes(1 << 20)
            );
            assert_eq!(plain.partition(1).unwrap().config().segment_bytes, 4096);
            let meta = plain.send(Record::new("x").with_timestamp(1)).unwrap();
            assert_eq!(meta.timestamp, 1, "CreateTime, as created");

            let pinned = store.topic("pinned").unwrap();
            assert_eq!(pinned.config(), pinned_config, "round {round}");
            assert_eq!(pinned.config().segment_bytes, 2048);
            assert_eq!(pinned.config().max_batch_bytes, pc.max_batch_bytes);

            // The store's own settings do apply: the compaction key map budget.
            assert_eq!(
                plain.compaction_policy().map_budget_bytes,
                changed.cleaner_buffer_bytes
            );
            if round == 0 {
                // ...and a topic created now takes the new defaults.
                let fresh = store
                    .create_topic("fresh", TopicConfig::with_partitions(1))
                    .unwrap();
                assert_eq!(
                    fresh.config(),
                    changed.resolve(&TopicConfig::with_partitions(1).overrides)
                );
                assert_eq!(fresh.config().segment_bytes, 8192);
            }
            store.close().unwrap();
        }
    });
}

/// Issue 9, reproduced: a store created with `retention: None` (keep forever) and records
/// timestamped 8 days ago, reopened with `Store::open` (default options: 7 days): `maintain()`
/// deleted every record. The topic's retention is fixed at creation.
#[test]
fn regression_reopening_with_default_options_keeps_a_forever_topic_forever() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let eight_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 8 * 24 * 3600 * 1000;
    let mut written = Vec::new();
    {
        let store = Store::open_with(
            &dir,
            StoreOptions {
                log: LogConfig {
                    retention: Retention::Forever,
                    segment_bytes: 4096,
                    preallocate: false,
                    ..LogConfig::default()
                },
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let t = store
            .create_topic("events", TopicConfig::with_partitions(1))
            .unwrap();
        for i in 0..200 {
            let value = format!("event {i} {}", "x".repeat(40));
            t.send(Record::new(value.clone()).with_timestamp(eight_days_ago + i))
                .unwrap();
            written.push(value);
        }
        assert!(
            t.partition(0).unwrap().segment_count() > 3,
            "several segments"
        );
        store.close().unwrap();
    }

    let store = Store::open(&dir).unwrap();
    store.maintain().unwrap();
    let p = store.topic("events").unwrap().partition(0).unwrap();
    assert_eq!(p.start_offset(), 0, "retention deleted records");
    let mut read = Vec::new();
    while (read.len() as u64) < p.end_offset() {
        let batches = p.read(read.len() as u64, 1 << 20).unwrap();
        read.extend(
            batches
                .records()
                .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap()),
        );
    }
    assert_eq!(read.len(), written.len());
    assert!(read == written, "every record reads back");
    store.close().unwrap();
}

/// The `topic.conf` of an earlier version (format 1: only the keys the topic overrode, no
/// checksum) is resolved once, against the options of the first open that reads it, and rewritten
/// as format 2; later opens keep that.
#[test]
fn a_format_1_topic_conf_is_resolved_once_and_rewritten() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let t = store
            .create_topic("old", TopicConfig::with_partitions(2))
            .unwrap();
        let meta = t.send(Record::new("kept").with_key("k")).unwrap();
        store.close().unwrap();
        let conf = dir.join("old").join("topic.conf");
        write_file(
            &*fs,
            &conf,
            b"# written by an earlier version\nformat=1\npartitions=2\nsegment.bytes=2048\n\
              retention.ms=-1\n",
        );

        let first = StoreOptions {
            log: LogConfig {
                durability: Durability::EveryMessages(7),
                retention_bytes: Limit::Bytes(123_456),
                ..options().log
            },
            ..options()
        };
        let store = Store::open_with_env(dir, first.clone(), env(fs.clone())).unwrap();
        let expected = first.resolve(&LogOverrides {
            segment_bytes: Some(2048),
            retention: Some(Retention::Forever),
            ..LogOverrides::default()
        });
        let t = store.topic("old").unwrap();
        assert_eq!(t.config(), expected);
        assert_eq!(t.partition_count(), 2);
        assert_eq!(t.config().durability, Durability::EveryMessages(7));
        let text = String::from_utf8(read_file(&*fs, &conf)).unwrap();
        assert!(text.contains("\nformat=2\n"), "{text}");
        assert!(text.contains("\ncrc32="), "{text}");
        let read = t
            .partition(meta.partition)
            .unwrap()
            .read(meta.offset, 1 << 20);
        assert_eq!(read.unwrap().records().count(), 1, "the data is untouched");
        store.close().unwrap();

        let store = Store::open_with_env(
            dir,
            StoreOptions {
                log: LogConfig {
                    durability: Durability::None,
                    retention_bytes: Limit::Unlimited,
                    ..options().log
                },
                ..options()
            },
            env(fs.clone()),
        )
        .unwrap();
        assert_eq!(store.topic("old").unwrap().config(), expected);
        store.close().unwrap();
    });
}

#[test]
fn invalid_topic_configs_are_refused_and_create_nothing() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let before = fs.read_dir(dir).unwrap();
        let cases: Vec<(TopicConfig, &str)> = vec![
            (TopicConfig::with_partitions(0), "partitions"),
            (
                TopicConfig::with_partitions(MAX_PARTITIONS + 1),
                "partitions",
            ),
            (
                TopicConfig {
                    overrides: LogOverrides {
                        segment_bytes: Some(10),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::default()
                },
                "segment_bytes",
            ),
            (
                TopicConfig {
                    overrides: LogOverrides {
                        segment_bytes: Some(0),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::default()
                },
                "segment_bytes",
            ),
            (
                TopicConfig {
                    overrides: LogOverrides {
                        segment_bytes: Some(3 << 30),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::default()
                },
                "segment_bytes",
            ),
            (
                TopicConfig {
                    overrides: LogOverrides {
                        segment_ms: Some(Deadline::After(Duration::ZERO)),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::default()
                },
                "segment_ms",
            ),
            (
                TopicConfig {
                    overrides: LogOverrides {
                        retention: Some(Retention::After(Duration::ZERO)),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::default()
                },
                "retention",
            ),
            (
                TopicConfig {
                    overrides: LogOverrides {
                        index_interval_bytes: Some(0),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::default()
                },
                "index_interval_bytes",
            ),
            (
                TopicConfig {
                    overrides: LogOverrides {
                        max_batch_bytes: Some(1),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::default()
                },
                "max_batch_bytes",
            ),
            (
                TopicConfig {
                    overrides: LogOverrides {
                        durability: Some(Durability::EveryMessages(0)),
                        ..LogOverrides::default()
                    },
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
    let base = || options();
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
                log: LogConfig {
                    segment_bytes: 10,
                    ..base().log
                },
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
                log: LogConfig {
                    retention: Retention::After(Duration::ZERO),
                    ..base().log
                },
                ..base()
            },
            "retention",
        ),
        (
            StoreOptions {
                cleaner_buffer_bytes: 100,
                ..base()
            },
            "cleaner_buffer_bytes",
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
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
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
            (
                "unknown format",
                b"format=3\npartitions=2\n".to_vec(),
                Some(1),
            ),
        ];
        // Format 2 (what the store writes): checksum, truncation, hand edits.
        let text = String::from_utf8(good.clone()).unwrap();
        let crc_at = text.rfind("crc32=").unwrap();
        let body_lines = text[..crc_at].lines().count();
        let mut cases: Vec<(String, Vec<u8>, Option<usize>)> = cases
            .into_iter()
            .map(|(w, b, l)| (w.to_string(), b, l))
            .collect();
        cases.push((
            "wrong checksum".into(),
            format!("{}crc32=00000000\n", &text[..crc_at]).into_bytes(),
            Some(body_lines + 1),
        ));
        cases.push((
            "checksum line cut off".into(),
            good[..crc_at].to_vec(),
            Some(0),
        ));
        cases.push((
            "a hand edit".into(),
            text.replace("\npartitions=2\n", "\npartitions=3\n")
                .into_bytes(),
            Some(body_lines + 1),
        ));
        for at in (0..good.len() - 1).step_by(7) {
            cases.push((
                format!("truncated to {at} bytes"),
                good[..at].to_vec(),
                None,
            ));
        }
        for (i, _) in good.iter().enumerate() {
            let mut b = good.clone();
            b[i] ^= 1 << (i % 8);
            cases.push((format!("bit {} of byte {i} flipped", i % 8), b, None));
        }
        for (what, bytes, line) in cases {
            write_file(&*fs, &conf, &bytes);
            match Store::open_with_env(dir, options(), env(fs.clone())) {
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
                Ok(store) => {
                    // Only a flip that cannot change a value is accepted: the case of a checksum
                    // hex digit, or the final newline turned into other white space.
                    let t = store.topic("orders").unwrap();
                    assert_eq!(t.partition_count(), 2, "{what}");
                    assert!(
                        bytes.len() == good.len()
                            && bytes[..crc_at] == good[..crc_at]
                            && String::from_utf8_lossy(&bytes[crc_at..])
                                .trim()
                                .eq_ignore_ascii_case(
                                    String::from_utf8_lossy(&good[crc_at..]).trim()
                                ),
                        "{what}: open accepted a damaged topic.conf"
                    );
                    store.close().unwrap();
                }
            }
        }

        // The failed opens released the lock and deleted nothing: restoring the file brings the
        // topic back whole.
        write_file(&*fs, &conf, &good);
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
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
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let config = TopicConfig {
            partitions: 2,
            overrides: LogOverrides {
                segment_bytes: Some(2048),
                durability: Some(Durability::None),
                ..LogOverrides::default()
            },
        };
        let t = store.create_topic("grow", config.clone()).unwrap();
        let created = t.config();
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
        let grown = created;
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

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
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
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topic("grow").unwrap().partition_count(), 6);
        store.close().unwrap();
    });
}
