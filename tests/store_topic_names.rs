//! Topic names follow Kafka's rule as `validate_topic_name` documents it: 1 to 249 characters of
//! `[A-Za-z0-9._-]`, except `.` and `..`. Anything else is `Error::InvalidTopicName` and touches
//! nothing on disk; every valid name can be created, listed and reopened (a name can never escape
//! the store directory), except `LOCK`, which the store reserves for its lock file.

use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{
    validate_topic_name, Error, Record, Store, StoreOptions, TopicConfig, MAX_TOPIC_NAME_LEN,
};

fn options(fs: Arc<dyn FileSystem>) -> StoreOptions {
    StoreOptions {
        file_system: fs,
        preallocate: false,
        segment_bytes: 4096,
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
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
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
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
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

        let store = Store::open_with(dir, options(fs.clone())).unwrap();
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
        Store::open_with(dir, options(fs.clone()))
            .unwrap()
            .close()
            .unwrap();
    });
}

/// The store keeps its lock file, `LOCK`, next to the topic directories, so `LOCK` is reserved:
/// creating a topic of that name is refused with `InvalidTopicName` and leaves the store's lock
/// alone.
#[test]
fn the_lock_file_name_is_reserved() {
    both_fs(|fs, dir| {
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        let before = fs.read_dir(dir).unwrap();
        for result in [
            store
                .create_topic("LOCK", TopicConfig::with_partitions(2))
                .map(drop),
            store.topic_or_create("LOCK").map(drop),
        ] {
            match result {
                Err(Error::InvalidTopicName { name, reason }) => {
                    assert_eq!(name, "LOCK");
                    assert!(reason.contains("reserved"), "{reason}");
                }
                other => panic!("expected InvalidTopicName, got {other:?}"),
            }
        }
        assert!(matches!(
            store.topic("LOCK"),
            Err(Error::UnknownTopic { .. })
        ));
        assert_eq!(fs.read_dir(dir).unwrap(), before, "nothing was touched");
        assert!(!fs.is_dir(&dir.join("LOCK")).unwrap());
        // The store still holds its directory lock, and still works.
        assert!(matches!(
            Store::open_with(dir, options(fs.clone())),
            Err(Error::AlreadyOpen { .. })
        ));
        // Names that merely resemble it are ordinary names.
        for name in ["lock", "LOCK.v2", "LOCKS"] {
            store
                .create_topic(name, TopicConfig::with_partitions(1))
                .unwrap_or_else(|e| panic!("{name:?}: {e}"))
                .send(Record::new("v"))
                .unwrap();
        }
        store.close().unwrap();
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["LOCK.v2", "LOCKS", "lock"]);
        store.close().unwrap();
    });
}

#[test]
fn open_ignores_entries_that_are_not_topics() {
    both_fs(|fs, dir| {
        let store = Store::open_with(dir, options(fs.clone())).unwrap();
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

        let store = Store::open_with(dir, options(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["real"]);
        store.close().unwrap();
        for junk in ["not a topic/keep", "lost+found/keep", "README"] {
            assert!(fs.exists(&dir.join(junk)).unwrap(), "{junk} was left alone");
        }
    });
}
