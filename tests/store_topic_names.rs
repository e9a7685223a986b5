//! Topic names follow Kafka's rule as `validate_topic_name` documents it: 1 to 249 characters of
//! `[A-Za-z0-9._-]`, except `.` and `..`. Anything else is `Error::InvalidTopicName` and touches
//! nothing on disk; every valid name can be created, listed and reopened (a name can never escape
//! the store directory). The store's own files live where no topic can: names starting with `__`
//! (`__producer_ids`, `__consumer_offsets`, staging directories) and `LOCK` in any letter case are
//! refused with a reason saying so. Issue 9: a topic named `producer-ids` used to collide with the
//! producer id counter and break idempotent producers; the counter is now `__producer_ids`, and an
//! earlier version's `producer-ids` file is migrated so ids never go backwards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use topiclog::fs::{FileSystem, OpenMode, SimFs, StdFs};
use topiclog::limits::MAX_TOPIC_NAME_LEN;
use topiclog::{
    validate_topic_name, Acks, Env, Error, LogConfig, ProducerConfig, Record, Store, StoreOptions,
    TopicConfig,
};

fn env(fs: Arc<dyn FileSystem>) -> Env {
    Env::with_fs(fs)
}

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

/// Run `f` on the real file system (in a temp dir) and on the simulated one.
fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join("store"));
    f(Arc::new(SimFs::new(9)), Path::new("/sim/store"));
}

fn invalid_names() -> Vec<String> {
    vec![
        String::new(),
        ".".into(),
        "..".into(),
        "a/b".into(),
        "/abs".into(),
        "../escape".into(),
        "a\\b".into(),
        "x".repeat(MAX_TOPIC_NAME_LEN + 1),
        "tópico".into(),
        "a b".into(),
        " lead".into(),
        "a\0b".into(),
        "tab\there".into(),
        "new\nline".into(),
        "a:b".into(),
        "a*b".into(),
    ]
}

fn valid_names() -> Vec<String> {
    vec![
        "x".repeat(MAX_TOPIC_NAME_LEN),
        "a.b_c-D9".into(),
        // Only `.` and `..` themselves are reserved, not names made of dots.
        "...".into(),
        ".hidden".into(),
        "trailing.".into(),
        "-".into(),
        "_".into(),
        "0".into(),
        "UPPER".into(),
        "upper".into(),
        // The name of a file the store keeps in each topic directory.
        "topic.conf".into(),
        // Names close to the store's own.
        "_consumer_offsets".into(),
        "a__b".into(),
        "producer-ids".into(),
        "LOCK.v2".into(),
        "LOCKS".into(),
        "LOC".into(),
    ]
}

/// Every name the store keeps next to its topics, or reserves for that: refused as topic names.
fn store_level_names() -> Vec<&'static str> {
    vec![
        "LOCK",
        "lock",
        "Lock",
        "lOcK",
        "__producer_ids",
        "__producer_ids.tmp",
        "__consumer_offsets",
        "__creating.0",
        "__deleting.7",
        "__",
        "___",
        "__anything-later",
    ]
}

#[test]
fn validate_rejects_invalid_names() {
    assert_eq!(MAX_TOPIC_NAME_LEN, 249);
    for name in invalid_names() {
        match validate_topic_name(&name) {
            Err(Error::InvalidTopicName { name: n, reason }) => {
                assert_eq!(n, name);
                assert!(!reason.is_empty());
            }
            other => panic!("{name:?}: expected InvalidTopicName, got {other:?}"),
        }
    }
}

#[test]
fn validate_accepts_valid_names() {
    for name in valid_names() {
        validate_topic_name(&name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
}

#[test]
fn store_rejects_invalid_names_without_touching_the_disk() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let before = fs.read_dir(dir).unwrap();
        for name in invalid_names() {
            let invalid = |r: topiclog::Result<()>, what: &str| match r {
                Err(Error::InvalidTopicName { name: n, .. }) => assert_eq!(n, name, "{what}"),
                other => panic!("{what} {name:?}: expected InvalidTopicName, got {other:?}"),
            };
            invalid(
                store
                    .create_topic(&name, TopicConfig::with_partitions(1))
                    .map(drop),
                "create_topic",
            );
            invalid(store.topic_or_create(&name).map(drop), "topic_or_create");
        }
        assert!(store.topics().is_empty());
        assert_eq!(fs.read_dir(dir).unwrap(), before, "nothing was created");
        assert!(!fs.exists(&dir.join("a")).unwrap(), "a/b did not create a");
        assert!(!fs.exists(&dir.parent().unwrap().join("escape")).unwrap());
        store.close().unwrap();
    });
}

#[test]
fn store_creates_lists_and_reopens_every_valid_name() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        for (i, name) in valid_names().iter().enumerate() {
            let t = store
                .create_topic(name, TopicConfig::with_partitions(1))
                .unwrap_or_else(|e| panic!("create {name:?}: {e}"));
            assert_eq!(t.name(), name);
            t.send(Record::new(format!("value {i}")))
                .unwrap_or_else(|e| panic!("send to {name:?}: {e}"));
        }
        let mut expected = valid_names();
        expected.sort();
        assert_eq!(store.topics(), expected);
        store.close().unwrap();

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), expected);
        for (i, name) in valid_names().iter().enumerate() {
            let t = store.topic(name).unwrap();
            let read = t.partition(0).unwrap().read(0, 1 << 20).unwrap();
            let values: Vec<_> = read
                .records()
                .map(|r| r.value().unwrap().to_vec())
                .collect();
            assert_eq!(values, vec![format!("value {i}").into_bytes()], "{name:?}");
        }
        for name in valid_names() {
            store
                .delete_topic(&name)
                .unwrap_or_else(|e| panic!("delete {name:?}: {e}"));
        }
        assert!(store.topics().is_empty());
        store.close().unwrap();
        Store::open_with_env(dir, options(), env(fs.clone()))
            .unwrap()
            .close()
            .unwrap();
    });
}

/// The store keeps its lock file, `LOCK`, next to the topic directories, so `LOCK` is reserved in
/// every letter case (a case-insensitive file system takes `lock` for `LOCK`), as is every name
/// starting with `__`: creating such a topic is refused with `InvalidTopicName` and a reason that
/// says the name is reserved, and leaves the store's files alone.
#[test]
fn every_store_level_name_is_refused() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        // The store's files exist: the producer id counter and the offsets topic.
        let producer = store.producer(ProducerConfig::default()).unwrap();
        producer.close().unwrap();
        store
            .consumer(topiclog::ConsumerConfig::group("g"))
            .unwrap()
            .close()
            .unwrap();
        let before = fs.read_dir(dir).unwrap();
        assert!(before.contains(&"__producer_ids".to_string()), "{before:?}");
        assert!(
            before.contains(&"__consumer_offsets".to_string()),
            "{before:?}"
        );
        for name in store_level_names() {
            let check = |r: topiclog::Result<()>, what: &str| match r {
                Err(Error::InvalidTopicName { name: n, reason }) => {
                    assert_eq!(n, name, "{what}");
                    assert!(reason.contains("reserved"), "{what} {name:?}: {reason}");
                }
                other => panic!("{what} {name:?}: expected InvalidTopicName, got {other:?}"),
            };
            check(validate_topic_name(name), "validate_topic_name");
            check(
                store
                    .create_topic(name, TopicConfig::with_partitions(2))
                    .map(drop),
                "create_topic",
            );
            check(store.topic_or_create(name).map(drop), "topic_or_create");
            assert!(
                matches!(store.topic(name), Err(Error::UnknownTopic { .. })),
                "{name:?}"
            );
        }
        assert_eq!(fs.read_dir(dir).unwrap(), before, "nothing was touched");
        assert!(store.topics().is_empty());
        // The store still holds its directory lock, and still works.
        assert!(matches!(
            Store::open_with_env(dir, options(), env(fs.clone())),
            Err(Error::AlreadyOpen { .. })
        ));
        let producer = store.producer(ProducerConfig::default()).unwrap();
        assert_eq!(producer.producer_id(), Some(1));
        producer.close().unwrap();
        store.close().unwrap();
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert!(store.topics().is_empty(), "store files are not topics");
        store.close().unwrap();
    });
}

fn idempotent(store: &Store) -> topiclog::Producer {
    store
        .producer(ProducerConfig {
            acks: Acks::Durable,
            idempotent: true,
            linger: Duration::ZERO,
            ..ProducerConfig::default()
        })
        .unwrap()
}

/// Issue 9: a topic named `producer-ids` (the counter's old name) broke idempotent producers.
#[test]
fn a_topic_named_producer_ids_works_with_idempotent_producers() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let t = store
            .create_topic("producer-ids", TopicConfig::with_partitions(2))
            .unwrap();
        let mut ids = Vec::new();
        let mut sent = Vec::new();
        for round in 0..2 {
            let producer = idempotent(&store);
            ids.push(producer.producer_id().unwrap());
            for i in 0..5 {
                let value = format!("round {round} record {i}");
                let meta = producer
                    .send(
                        "producer-ids",
                        Record::new(value.clone()).with_key(format!("k{i}")),
                    )
                    .unwrap()
                    .wait()
                    .unwrap();
                sent.push((meta, value));
            }
            producer.close().unwrap();
        }
        assert!(ids[1] > ids[0], "{ids:?}");
        assert_eq!(t.end_offsets().iter().sum::<u64>(), 10);
        store.close().unwrap();

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["producer-ids"]);
        let producer = idempotent(&store);
        assert!(
            producer.producer_id().unwrap() > ids[1],
            "ids never go back"
        );
        producer.close().unwrap();
        let t = store.topic("producer-ids").unwrap();
        for (meta, value) in sent {
            let read = t
                .partition(meta.partition)
                .unwrap()
                .read(meta.offset, 1)
                .unwrap();
            let got = read.records().next().unwrap();
            assert_eq!(got.value().unwrap().as_ref(), value.as_bytes());
        }
        store.close().unwrap();
    });
}

/// A producer id counter file as earlier versions wrote it: next id `i64` LE, CRC-32 of it.
fn counter(next: i64) -> Vec<u8> {
    let mut b = next.to_le_bytes().to_vec();
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Replace the file at `path` with `bytes`, durably.
fn write_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) {
    let f = fs.open(path, OpenMode::Create).unwrap();
    f.set_len(0).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync_all().unwrap();
}

/// An earlier version's counter, `<store>/producer-ids`, is moved to `__producer_ids` at open
/// (keeping the larger of the two when both exist), so ids never go backwards and the name is
/// free for a topic. A damaged one is left for `Store::producer` to report.
#[test]
fn a_legacy_producer_ids_counter_is_migrated() {
    both_fs(|fs, dir| {
        Store::open_with_env(dir, options(), env(fs.clone()))
            .unwrap()
            .close()
            .unwrap();
        let legacy = dir.join("producer-ids");
        let current = dir.join("__producer_ids");
        write_file(&*fs, &legacy, &counter(42));
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert!(!fs.exists(&legacy).unwrap(), "migrated");
        assert!(fs.exists(&current).unwrap());
        let producer = store.producer(ProducerConfig::default()).unwrap();
        assert_eq!(producer.producer_id(), Some(42));
        producer.close().unwrap();
        store
            .create_topic("producer-ids", TopicConfig::with_partitions(1))
            .unwrap();
        store.close().unwrap();

        // Both present (a crash during the migration, or a downgrade and back): the larger wins.
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        store.delete_topic("producer-ids").unwrap();
        store.close().unwrap();
        write_file(&*fs, &legacy, &counter(7));
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let producer = store.producer(ProducerConfig::default()).unwrap();
        assert_eq!(
            producer.producer_id(),
            Some(43),
            "never below the current counter"
        );
        producer.close().unwrap();
        store.close().unwrap();
        write_file(&*fs, &legacy, &counter(1000));
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let producer = store.producer(ProducerConfig::default()).unwrap();
        assert_eq!(
            producer.producer_id(),
            Some(1000),
            "never below the legacy counter"
        );
        producer.close().unwrap();
        store.close().unwrap();

        // A damaged legacy counter: the store opens, and idempotent producers are refused
        // naming the file, as before.
        write_file(&*fs, &legacy, b"garbage");
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        match store.producer(ProducerConfig::default()) {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, legacy),
            other => panic!("expected Corrupt naming producer-ids, got {other:?}"),
        }
        assert!(fs.exists(&legacy).unwrap(), "left for a human");
        store.close().unwrap();
    });
}

#[test]
fn open_ignores_entries_that_are_not_topics() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        store
            .create_topic("real", TopicConfig::with_partitions(1))
            .unwrap();
        store.close().unwrap();
        // Things an operator might leave in the directory: directories whose names are not topic
        // names, and plain files whose names are.
        for junk in ["not a topic", "lost+found"] {
            fs.create_dir_all(&dir.join(junk)).unwrap();
            let f = fs
                .open(&dir.join(junk).join("keep"), topiclog::fs::OpenMode::Create)
                .unwrap();
            f.write_all_at(b"mine", 0).unwrap();
        }
        fs.open(&dir.join("README"), topiclog::fs::OpenMode::Create)
            .unwrap()
            .write_all_at(b"notes", 0)
            .unwrap();

        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["real"]);
        store.close().unwrap();
        for junk in ["not a topic/keep", "lost+found/keep", "README"] {
            assert!(fs.exists(&dir.join(junk)).unwrap(), "{junk} was left alone");
        }
    });
}

/// A topic an earlier version let be named `lock` (now reserved) still opens with its data.
#[test]
fn a_topic_an_earlier_version_named_lock_still_opens() {
    let fs = SimFs::new(3);
    let dir = Path::new("/s");
    let store = Store::open_with_env(dir, options(), env(Arc::new(fs.clone()))).unwrap();
    let t = store
        .create_topic("lock-to-be", TopicConfig::with_partitions(1))
        .unwrap();
    t.send(Record::new("kept")).unwrap();
    store.close().unwrap();
    fs.rename(&dir.join("lock-to-be"), &dir.join("lock"))
        .unwrap();
    fs.sync_dir(dir).unwrap();
    let store = Store::open_with_env(dir, options(), env(Arc::new(fs.clone()))).unwrap();
    assert_eq!(store.topics(), vec!["lock"]);
    let read = store
        .topic("lock")
        .unwrap()
        .partition(0)
        .unwrap()
        .read(0, 100);
    assert_eq!(read.unwrap().records().count(), 1);
    store.close().unwrap();
}
