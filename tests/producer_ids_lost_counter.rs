//! A lost producer-id counter file must never make a new idempotent producer reuse an id a
//! partition still remembers: its first batch would be "recognised" as the old producer's and
//! acknowledged at the old record's offset while nothing new is stored. Ids are also checked
//! against what every partition remembers.

use std::time::Duration;

use topiclog::{Acks, LogConfig, ProducerConfig, Record, Store, StoreOptions, TopicConfig};

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 1 << 20,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

fn durable_producer(store: &Store) -> topiclog::Producer {
    store
        .producer(ProducerConfig {
            acks: Acks::Durable,
            idempotent: true,
            linger: Duration::ZERO,
            ..ProducerConfig::default()
        })
        .unwrap()
}

/// The store-level files that are neither topics nor the lock: the producer id counter.
fn counter_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().unwrap() != "LOCK")
        .collect()
}

#[test]
fn acknowledgement_after_a_lost_counter_names_a_written_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let old_id = {
        let store = Store::open_with(&dir, options()).unwrap();
        store
            .create_topic("t", TopicConfig::with_partitions(1))
            .unwrap();
        let producer = durable_producer(&store);
        let meta = producer
            .send("t", Record::new("old"))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(meta.offset, 0);
        let id = producer.producer_id().unwrap();
        producer.close().unwrap();
        store.close().unwrap();
        id
    };
    let files = counter_files(&dir);
    assert_eq!(files.len(), 1, "one counter file: {files:?}");
    std::fs::remove_file(&files[0]).unwrap();

    let store = Store::open_with(&dir, options()).unwrap();
    let producer = durable_producer(&store);
    assert!(
        producer.producer_id().unwrap() > old_id,
        "a new id, above the one the partition remembers"
    );
    let meta = producer
        .send("t", Record::new("new"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(
        meta.offset, 1,
        "the acknowledged record was written after the old one"
    );
    let p = store.topic("t").unwrap().partition(0).unwrap();
    let values: Vec<Vec<u8>> = p
        .read(0, 1 << 20)
        .unwrap()
        .records()
        .map(|r| r.value().unwrap().to_vec())
        .collect();
    assert_eq!(values, vec![b"old".to_vec(), b"new".to_vec()]);
    producer.close().unwrap();
    store.close().unwrap();
}
