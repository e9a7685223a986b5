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
