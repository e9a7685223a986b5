//! Regression: a commit for a topic name longer than the offsets record's `u16` length field
//! (65 535 bytes) was written with its length cut to 16 bits, so the offsets topic no longer
//! decoded and every group of the store failed at the next open. Such a commit is now refused
//! before anything is written.

use topiclog::{
    ConsumerConfig, Durability, Error, LogConfig, OffsetAndMetadata, Store, StoreOptions,
    TopicConfig, TopicPartition,
};

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

#[test]
fn a_commit_for_a_topic_name_too_long_for_the_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let c = store.consumer(ConsumerConfig::group("g")).unwrap();
    let ok = TopicPartition::new("t", 0);
    c.commit(&[(ok.clone(), OffsetAndMetadata::new(3))])
        .unwrap();
    for len in [u16::MAX as usize + 1, 70_000] {
        let long = TopicPartition::new("x".repeat(len), 0);
        let err = c
            .commit(&[
                (ok.clone(), OffsetAndMetadata::new(5)),
                (long, OffsetAndMetadata::new(1)),
            ])
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    }
    // The longest name the record holds is fine.
    let longest = TopicPartition::new("y".repeat(u16::MAX as usize), 0);
    c.commit(&[(longest.clone(), OffsetAndMetadata::new(9))])
        .unwrap();
    drop(c);
    store.close().unwrap();

    let store = Store::open_with(dir.path(), options()).unwrap();
    let c = store.consumer(ConsumerConfig::group("g")).unwrap();
    assert_eq!(
        c.committed(&ok).unwrap().map(|o| o.offset),
        Some(3),
        "nothing of the refused commit"
    );
    assert_eq!(c.committed(&longest).unwrap().map(|o| o.offset), Some(9));
    drop(c);
    store.close().unwrap();
}
