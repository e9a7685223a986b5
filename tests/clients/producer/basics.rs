//! The producer end to end: batching (fewer, larger batches on disk), per-partition order, acks,
//! back-pressure, and a consumer reading everything back.

use std::time::Duration;

use topiclog::{
    Acks, AutoOffsetReset, ConsumerConfig, Durability, Error, LogConfig, ProducerConfig, Record,
    Store, StoreOptions, TopicConfig,
};

fn store(dir: &std::path::Path) -> Store {
    Store::open_with(
        dir,
        StoreOptions {
            log: LogConfig {
                durability: Durability::None,
                ..LogConfig::default()
            },
            background_maintenance: false,
            background_cleaner: false,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn batches_and_orders_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            acks: Acks::Written,
            linger: Duration::from_millis(20),
            ..ProducerConfig::default()
        })
        .unwrap();
    let handles: Vec<_> = (0..3000)
        .map(|i| {
            producer
                .send(
                    "t",
                    Record::new(format!("{i:05}")).with_key(format!("k{}", i % 10)),
                )
                .unwrap()
        })
        .collect();
    producer.flush().unwrap();
    let mut batches = 0;
    for p in t.partitions() {
        let mut next = 0;
        let mut last_per_key = std::collections::HashMap::new();
        while next < p.end_offset() {
            let b = p.read(next, 1 << 20).unwrap();
            batches += b.batches().len();
            for r in b.records() {
                let k = r.key().unwrap().clone();
                let v: u32 = std::str::from_utf8(r.value().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                if let Some(prev) = last_per_key.insert(k, v) {
                    assert!(v > prev, "order within a key (and partition)");
                }
            }
            next = b.next_offset();
        }
    }
    assert!(batches < 100, "3000 records in {batches} batches");
    let m = handles[2999].wait().unwrap();
    assert!(m.has_offset());
    assert_eq!(t.end_offsets().iter().sum::<u64>(), 3000);
    // A consumer reads them all.
    let mut c = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            ..ConsumerConfig::group("g")
        })
        .unwrap();
    c.subscribe(&["t"]).unwrap();
    let mut n = 0;
    while n < 3000 {
        n += c.poll(Duration::from_secs(5)).unwrap().len();
    }
    assert_eq!(n, 3000);
    producer.close().unwrap();
    assert!(matches!(
        producer.send("t", Record::new("x")),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn acks_none_completes_at_once_and_durable_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let fire = store
        .producer(ProducerConfig {
            acks: Acks::None,
            linger: Duration::from_secs(3600),
            ..ProducerConfig::default()
        })
        .unwrap();
    let h = fire.send("t", Record::new("x")).unwrap();
    assert!(h.is_done());
    assert!(!h.wait().unwrap().has_offset());
    fire.flush().unwrap();
    assert_eq!(t.end_offsets(), vec![1]);
    let durable = store.producer(ProducerConfig::default()).unwrap();
    let h = durable.send("t", Record::new("y")).unwrap();
    let m = h.wait().unwrap();
    assert_eq!(m.offset, 1);
    assert!(t.partition(0).unwrap().durable_offset() >= 2);
}

#[test]
fn a_full_buffer_blocks_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            batch_bytes: 1 << 20,
            buffer_bytes: 1 << 20,
            linger: Duration::from_secs(3600),
            max_block: Duration::from_millis(100),
            ..ProducerConfig::default()
        })
        .unwrap();
    let big = vec![0u8; 100 << 10];
    let mut sent = 0;
    let err = loop {
        match producer.send("t", Record::new(big.clone())) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100);
    };
    assert!(matches!(err, Error::BufferFull { .. }), "{err:?}");
    assert!(sent >= 9);
    producer.flush().unwrap();
    drop(producer.send("t", Record::new(big)).unwrap());
}
