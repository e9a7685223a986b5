//! A store never adopts someone else's directory: opening a non-empty directory that holds no
//! store fails with `Error::NotAStore` and changes nothing in it.

use topiclog::{Error, Store, TopicConfig};

#[test]
fn non_empty_foreign_directory_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    std::fs::create_dir_all(dir.join("Documents")).unwrap();
    std::fs::write(dir.join("Documents").join("notes.txt"), b"keep me").unwrap();
    match Store::open(&dir) {
        Err(Error::NotAStore { path }) => assert_eq!(path, dir),
        other => panic!("expected NotAStore, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(dir.join("Documents").join("notes.txt")).unwrap(),
        b"keep me"
    );
    assert!(!dir.join("LOCK").exists());
}

#[test]
fn empty_and_existing_store_directories_open() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let store = Store::open(&empty).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    store.close().unwrap();
    drop(store);
    // Now non-empty, but a store: it opens.
    let store = Store::open(&empty).unwrap();
    assert_eq!(store.topics(), vec!["t".to_string()]);
}

/// The `LOCK` file only guards against a second opener: a store whose lock file went missing (a
/// damage sweep deleted it) is still recognised by its topics and store files, and reopens whole;
/// the open recreates the lock.
#[test]
fn a_store_whose_lock_file_went_missing_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(&dir).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    t.send(topiclog::Record::new("kept")).unwrap();
    store.close().unwrap();
    drop((t, store));
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    let store = Store::open(&dir).unwrap();
    assert!(dir.join("LOCK").exists());
    let p = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), 1);
    // And a second opener is refused again.
    assert!(matches!(Store::open(&dir), Err(Error::AlreadyOpen { .. })));
}
