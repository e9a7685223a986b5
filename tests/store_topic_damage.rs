//! A topic directory is never garbage to collect: creation and deletion never leave one without a
//! valid `topic.conf` (they go through `__creating.<n>` / `__deleting.<n>` staging directories), so
//! at open a topic directory holding partitions but no `topic.conf` is damage, reported with
//! `Error::InvalidConfigFile` naming the file, and nothing is deleted (issue 9: the whole topic
//! directory used to be removed, data included, and for `__consumer_offsets` every commit). The
//! same for partition directories the config does not account for: one beyond the partition count
//! that holds records, or one the count lists that is missing, is `Error::Corrupt` naming it. An
//! unused partition directory an interrupted `add_partitions` left is still removed, and
//! directories that are not topiclog's are still left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use topiclog::fs::{FileSystem, OpenMode, SimFs, StdFs};
use topiclog::{
    ConsumerConfig, Env, Error, LogConfig, ManualClock, OffsetAndMetadata, Record, Store,
    StoreOptions, TopicConfig, TopicPartition,
};

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
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

/// Run `f` on the real file system (in a temp dir) and on the simulated one.
fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join("store"));
    f(Arc::new(SimFs::new(17)), Path::new("/sim/store"));
}

/// Every file under `dir` with its content, and every directory (as `None`).
fn tree(fs: &dyn FileSystem, dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for name in fs.read_dir(dir).unwrap() {
        let path = dir.join(&name);
        if fs.is_dir(&path).unwrap() {
            out.insert(path.clone(), None);
            out.extend(tree(fs, &path));
        } else {
            let f = fs.open(&path, OpenMode::Read).unwrap();
            let mut buf = vec![0; f.len().unwrap() as usize];
            f.read_exact_at(&mut buf, 0).unwrap();
            out.insert(path, Some(buf));
        }
    }
    out
}

fn read_file(fs: &dyn FileSystem, path: &Path) -> Vec<u8> {
    let f = fs.open(path, OpenMode::Read).unwrap();
    let mut buf = vec![0; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

/// Replace the file at `path` with `bytes`, durably.
fn write_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) {
    let f = fs.open(path, OpenMode::Create).unwrap();
    f.set_len(0).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync_all().unwrap();
}

/// A store holding topic `orders` (3 partitions, several segments each).
fn store_with_orders(fs: &Arc<dyn FileSystem>, dir: &Path) -> Vec<(u32, u64)> {
    let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
    let t = store
        .create_topic("orders", TopicConfig::with_partitions(3))
        .unwrap();
    let metas: Vec<(u32, u64)> = (0..90)
        .map(|i| {
            let m = t
                .send_to(i % 3, Record::new(format!("order {i} {}", "x".repeat(60))))
                .unwrap();
            (m.partition, m.offset)
        })
        .collect();
    store.close().unwrap();
    metas
}

fn assert_orders_intact(store: &Store, metas: &[(u32, u64)]) {
    let t = store.topic("orders").unwrap();
    assert_eq!(t.partition_count(), 3);
    for &(p, offset) in metas {
        let read = t.partition(p).unwrap().read(offset, 1).unwrap();
        let got = read.records().next().unwrap();
        assert_eq!(got.offset(), offset);
        let value = String::from_utf8(got.value().unwrap().to_vec()).unwrap();
        assert!(value.starts_with("order "), "{value}");
    }
}

/// Issue 9: a missing `topic.conf` made the next open delete the topic directory, data included.
#[test]
fn a_missing_topic_conf_fails_open_and_deletes_nothing() {
    both_fs(|fs, dir| {
        let metas = store_with_orders(&fs, dir);
        let conf = dir.join("orders").join("topic.conf");
        let good = read_file(&*fs, &conf);
        fs.remove_file(&conf).unwrap();
        fs.sync_dir(&dir.join("orders")).unwrap();
        let before = tree(&*fs, &dir.join("orders"));

        for attempt in 0..2 {
            match Store::open_with_env(dir, options(), env(fs.clone())) {
                Err(Error::InvalidConfigFile { path, reason, .. }) => {
                    assert_eq!(path, conf, "the error names the file");
                    assert!(reason.contains("missing"), "{reason}");
                }
                Err(e) => panic!("attempt {attempt}: expected InvalidConfigFile, got {e}"),
                Ok(_) => panic!("attempt {attempt}: open accepted a topic without topic.conf"),
            }
            assert_eq!(
                tree(&*fs, &dir.join("orders")),
                before,
                "attempt {attempt}: nothing was deleted or changed"
            );
        }

        // Restoring the file brings the topic back whole.
        write_file(&*fs, &conf, &good);
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["orders"]);
        assert_orders_intact(&store, &metas);
        store.close().unwrap();
    });
}

/// The same for the offsets topic: a missing `__consumer_offsets/topic.conf` used to delete every
/// committed offset.
#[test]
fn a_missing_consumer_offsets_conf_fails_open_and_keeps_every_commit() {
    both_fs(|fs, dir| {
        let tp = TopicPartition::new("orders", 1);
        store_with_orders(&fs, dir);
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let mut consumer = store.consumer(ConsumerConfig::group("billing")).unwrap();
        consumer.assign(std::slice::from_ref(&tp)).unwrap();
        consumer
            .commit(&[(tp.clone(), OffsetAndMetadata::new(17))])
            .unwrap();
        consumer.close().unwrap();
        store.close().unwrap();

        let offsets = dir.join("__consumer_offsets");
        let conf = offsets.join("topic.conf");
        let good = read_file(&*fs, &conf);
        fs.remove_file(&conf).unwrap();
        fs.sync_dir(&offsets).unwrap();
        let before = tree(&*fs, &offsets);
        match Store::open_with_env(dir, options(), env(fs.clone())) {
            Err(Error::InvalidConfigFile { path, .. }) => assert_eq!(path, conf),
            Err(e) => panic!("expected InvalidConfigFile, got {e}"),
            Ok(_) => panic!("open accepted an offsets topic without topic.conf"),
        }
        assert_eq!(tree(&*fs, &offsets), before, "nothing was deleted");

        write_file(&*fs, &conf, &good);
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let consumer = store.consumer(ConsumerConfig::group("billing")).unwrap();
        assert_eq!(consumer.committed(&tp).unwrap().map(|c| c.offset), Some(17));
        drop(consumer);
        store.close().unwrap();
    });
}

/// `topic.conf` with `partitions` changed (and its checksum, if it has one, recomputed, as a
/// restored old copy or a hand edit would have it).
fn conf_with_partitions(text: &str, from: u32, to: u32) -> Vec<u8> {
    let body_end = text.rfind("crc32=").unwrap_or(text.len());
    let body = text[..body_end].replace(
        &format!("\npartitions={from}\n"),
        &format!("\npartitions={to}\n"),
    );
    if body_end == text.len() {
        return body.into_bytes();
    }
    format!("{body}crc32={:08x}\n", crc32fast::hash(body.as_bytes())).into_bytes()
}

/// A partition directory beyond the count `topic.conf` lists is removed at open only if it never
/// held a record (what an interrupted `add_partitions` leaves); with records it is damage.
#[test]
fn an_extra_partition_with_records_fails_open_and_is_kept() {
    both_fs(|fs, dir| {
        let metas = store_with_orders(&fs, dir);
        let conf = dir.join("orders").join("topic.conf");
        let good = read_file(&*fs, &conf);
        let text = String::from_utf8(good.clone()).unwrap();
        write_file(&*fs, &conf, &conf_with_partitions(&text, 3, 2));
        let before = tree(&*fs, &dir.join("orders"));
        match Store::open_with_env(dir, options(), env(fs.clone())) {
            Err(Error::Corrupt { path, reason, .. }) => {
                assert_eq!(path, dir.join("orders").join("2"), "{reason}");
                assert!(reason.contains("holds records"), "{reason}");
            }
            Err(e) => panic!("expected Corrupt naming the partition, got {e}"),
            Ok(_) => panic!("open accepted (and would delete) a partition holding records"),
        }
        assert_eq!(tree(&*fs, &dir.join("orders")), before, "nothing deleted");

        write_file(&*fs, &conf, &good);
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_orders_intact(&store, &metas);
        store.close().unwrap();
    });
}

#[test]
fn an_unused_extra_partition_is_removed_at_open() {
    both_fs(|fs, dir| {
        let metas = store_with_orders(&fs, dir);
        let topic_dir = dir.join("orders");
        // What an interrupted add_partitions leaves: partitions opened but never written, one
        // with a preallocated (zero-filled) log, one with an empty log.
        fs.create_dir_all(&topic_dir.join("3")).unwrap();
        write_file(
            &*fs,
            &topic_dir.join("3").join("00000000000000000000.log"),
            &[0; 4096],
        );
        fs.create_dir_all(&topic_dir.join("4")).unwrap();
        write_file(
            &*fs,
            &topic_dir.join("4").join("00000000000000000000.log"),
            &[],
        );
        fs.sync_dir(&topic_dir).unwrap();
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert!(!fs.exists(&topic_dir.join("3")).unwrap());
        assert!(!fs.exists(&topic_dir.join("4")).unwrap());
        assert_orders_intact(&store, &metas);
        store.close().unwrap();
    });
}

/// A partition directory the config lists but which is gone is damage: reopening it empty would
/// silently lose its records.
#[test]
fn a_missing_partition_directory_fails_open() {
    both_fs(|fs, dir| {
        store_with_orders(&fs, dir);
        let missing = dir.join("orders").join("1");
        fs.remove_dir_all(&missing).unwrap();
        fs.sync_dir(&dir.join("orders")).unwrap();
        match Store::open_with_env(dir, options(), env(fs.clone())) {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, missing),
            Err(e) => panic!("expected Corrupt naming the partition, got {e}"),
            Ok(_) => panic!("open re-created a lost partition empty"),
        }
        assert!(!fs.exists(&missing).unwrap(), "nothing re-created");
    });
}

/// Directories that are not topiclog's stay untouched and are not topics: an empty one, one with
/// only files topiclog never writes, and names in the store's reserved `__` namespace other than
/// its own (kept for later versions). Creating a topic of such a name is refused (the old code
/// removed the directory, taking it for a leftover).
#[test]
fn directories_that_are_not_topics_are_left_alone() {
    both_fs(|fs, dir| {
        let metas = store_with_orders(&fs, dir);
        fs.create_dir_all(&dir.join("empty")).unwrap();
        fs.create_dir_all(&dir.join("notes")).unwrap();
        write_file(&*fs, &dir.join("notes").join("todo.txt"), b"mine");
        write_file(&*fs, &dir.join("notes").join("topic.conf.tmp"), b"x");
        fs.create_dir_all(&dir.join("__later").join("0")).unwrap();
        write_file(&*fs, &dir.join("__later").join("topic.conf"), b"format=9\n");
        write_file(&*fs, &dir.join("__producer_ids.tmp"), b"half");
        fs.sync_dir(dir).unwrap();
        let before = tree(&*fs, dir);
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert_eq!(store.topics(), vec!["orders"]);
        assert_orders_intact(&store, &metas);
        // Creating a topic over one of them is refused, not a reason to remove it.
        for name in ["notes", "empty"] {
            match store.create_topic(name, TopicConfig::with_partitions(1)) {
                Err(Error::Io { path, source }) => {
                    assert_eq!(path, dir.join(name));
                    assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
                }
                other => panic!("{name}: expected AlreadyExists, got {other:?}"),
            }
        }
        let after = tree(&*fs, dir);
        for path in before.keys() {
            let orders = path.starts_with(dir.join("orders"));
            if !orders && path.file_name().unwrap() != "LOCK" {
                assert_eq!(after.get(path), before.get(path), "{path:?} untouched");
            }
        }
        store.close().unwrap();
    });
}
