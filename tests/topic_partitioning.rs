//! Which partition a record lands in: Kafka's murmur2 key hash (bit for bit), explicit partitions,
//! sticky spreading of unkeyed records, a custom `Partitioner`, and the metadata `send_batch`
//! returns for each record.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use topiclog::fs::SimFs;
use topiclog::internals::murmur2;
use topiclog::{
    key_partition, Bytes, DefaultPartitioner, Env, Error, LogConfig, LogOverrides, ManualClock,
    Partitioner, Record, RecordMetadata, Store, StoreOptions, TimestampType, Topic, TopicConfig,
};

const NOW: i64 = 1_700_000_000_000;
const STORE: &str = "/store";

fn env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(NOW)),
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            preallocate: false,
            segment_bytes: 64 << 10,
            ..LogConfig::default()
        },
        background_maintenance: false,
        ..StoreOptions::default()
    }
}

fn seeded(sticky_batch_bytes: usize, seed: u64) -> Option<Arc<dyn Partitioner>> {
    Some(Arc::new(DefaultPartitioner::with_seed(
        sticky_batch_bytes,
        seed,
    )))
}

/// The record stored at `meta`, as a `Record`.
fn stored_at(topic: &Topic, meta: RecordMetadata) -> (Record, i64) {
    let p = topic.partition(meta.partition).unwrap();
    let read = p.read(meta.offset, 1).unwrap();
    let r = read
        .records()
        .next()
        .unwrap_or_else(|| panic!("nothing at {meta:?}"));
    assert_eq!(r.offset(), meta.offset);
    (r.to_record(), r.timestamp())
}

#[test]
fn murmur2_matches_kafka_test_vectors() {
    // Kafka's UtilsTest.testMurmur2.
    let vectors: [(&str, i32); 6] = [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        ("abc", 479_470_107),
    ];
    for (input, expected) in vectors {
        assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
    }
}

#[test]
fn key_partition_is_kafkas_positive_hash_modulo_count() {
    for (key, hash) in [("21", -973_932_308i32), ("abc", 479_470_107)] {
        for n in [1u32, 2, 3, 7, 10, 64, 1000] {
            assert_eq!(
                key_partition(key.as_bytes(), n),
                (hash as u32 & 0x7fff_ffff) % n,
                "{key:?} over {n}"
            );
        }
    }
    // A negative hash is masked, not negated: "21" hashes to -973932308, whose low 31 bits are
    // 1173551340.
    assert_eq!(key_partition(b"21", 1_000_000_000), 173_551_340);
    for n in 1..50 {
        assert!(key_partition(b"any key", n) < n);
    }
}

#[test]
fn keyed_sends_land_on_the_key_partition() {
    let fs = SimFs::new(1);
    let store = Store::open_with_env(STORE, options(), env(&fs)).unwrap();
    let t = store
        .create_topic("keyed", TopicConfig::with_partitions(6))
        .unwrap();
    let key = |i: u32| format!("user-{}", i % 40);
    for i in 0..120u32 {
        let record = Record::new(format!("v{i}")).with_key(key(i));
        let meta = t.send(record.clone()).unwrap();
        assert_eq!(
            meta.partition,
            key_partition(key(i).as_bytes(), 6),
            "send {i}"
        );
        assert_eq!(stored_at(&t, meta).0, record.with_timestamp(NOW));
    }
    let batch: Vec<Record> = (0..120u32)
        .map(|i| Record::new(format!("b{i}")).with_key(key(i)))
        .collect();
    let metas = t.send_batch(&batch).unwrap();
    for (i, (record, meta)) in batch.iter().zip(metas).enumerate() {
        assert_eq!(
            meta.partition,
            key_partition(key(i as u32).as_bytes(), 6),
            "batch record {i}"
        );
        assert_eq!(stored_at(&t, meta).0, record.clone().with_timestamp(NOW));
    }
    // Every partition got some of the 40 keys.
    assert!(
        t.end_offsets().iter().all(|&e| e > 0),
        "{:?}",
        t.end_offsets()
    );
    store.close().unwrap();
}

#[test]
fn a_key_keeps_its_partition_across_reopen() {
    let fs = SimFs::new(2);
    let keys: Vec<String> = (0..50).map(|i| format!("order-{i}")).collect();
    let first: Vec<u32> = {
        let store = Store::open_with_env(
            STORE,
            StoreOptions {
                partitioner: seeded(100, 1),
                ..options()
            },
            env(&fs),
        )
        .unwrap();
        let t = store
            .create_topic("orders", TopicConfig::with_partitions(5))
            .unwrap();
        let metas: Vec<u32> = keys
            .iter()
            .map(|k| {
                t.send(Record::new("first").with_key(k.clone()))
                    .unwrap()
                    .partition
            })
            .collect();
        store.close().unwrap();
        metas
    };
    // A different partitioner seed only changes where unkeyed records go.
    let store = Store::open_with_env(
        STORE,
        StoreOptions {
            partitioner: seeded(100, 999),
            ..options()
        },
        env(&fs),
    )
    .unwrap();
    let t = store.topic("orders").unwrap();
    let records: Vec<Record> = keys
        .iter()
        .map(|k| Record::new("second").with_key(k.clone()))
        .collect();
    let again: Vec<u32> = t
        .send_batch(&records)
        .unwrap()
        .iter()
        .map(|m| m.partition)
        .collect();
    assert_eq!(again, first);
    for (k, p) in keys.iter().zip(&first) {
        assert_eq!(*p, key_partition(k.as_bytes(), 5));
    }
    store.close().unwrap();
}

/// Like Kafka: the key hash is taken modulo the current partition count, so growing a topic
/// moves some keys to other partitions; records already written stay where they are.
#[test]
fn after_add_partitions_keys_map_by_the_new_count_and_some_move() {
    let fs = SimFs::new(3);
    let store = Store::open_with_env(STORE, options(), env(&fs)).unwrap();
    let t = store
        .create_topic("grown", TopicConfig::with_partitions(3))
        .unwrap();
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    let before: Vec<RecordMetadata> = keys
        .iter()
        .map(|k| t.send(Record::new("before").with_key(k.clone())).unwrap())
        .collect();
    store.add_partitions("grown", 7).unwrap();

    let mut moved = 0;
    for (k, old) in keys.iter().zip(&before) {
        let meta = t.send(Record::new("after").with_key(k.clone())).unwrap();
        assert_eq!(meta.partition, key_partition(k.as_bytes(), 7), "{k}");
        if meta.partition != old.partition {
            moved += 1;
        }
        // The old record is still where it was written.
        let (record, _) = stored_at(&t, *old);
        assert_eq!(record.value().unwrap().as_ref(), b"before");
    }
    assert!(moved > 0, "growing 3 -> 7 moves some of 60 keys");
    assert!(moved < keys.len(), "and keeps others");
    store.close().unwrap();

    // The mapping by the new count survives a reopen.
    let store = Store::open_with_env(STORE, options(), env(&fs)).unwrap();
    let t = store.topic("grown").unwrap();
    for k in &keys {
        let meta = t.send(Record::new("reopened").with_key(k.clone())).unwrap();
        assert_eq!(meta.partition, key_partition(k.as_bytes(), 7));
    }
    store.close().unwrap();
}

#[test]
fn an_explicit_partition_wins_over_the_key_and_is_range_checked() {
    let fs = SimFs::new(4);
    let store = Store::open_with_env(STORE, options(), env(&fs)).unwrap();
    let t = store
        .create_topic("explicit", TopicConfig::with_partitions(4))
        .unwrap();
    let key = "some-key";
    let natural = key_partition(key.as_bytes(), 4);
    for p in 0..4 {
        let record = Record::new(format!("to {p}")).with_key(key);
        let meta = t.send_to(p, record.clone()).unwrap();
        assert_eq!(
            meta.partition, p,
            "send_to({p}) with a key that hashes to {natural}"
        );
        assert_eq!(stored_at(&t, meta).0, record.with_timestamp(NOW));
    }
    for p in [4, 5, u32::MAX] {
        match t.send_to(p, Record::new("nowhere").with_key(key)) {
            Err(Error::InvalidPartition {
                topic,
                partition,
                partitions,
            }) => {
                assert_eq!((topic.as_str(), partition, partitions), ("explicit", p, 4));
            }
            other => panic!("send_to({p}): expected InvalidPartition, got {other:?}"),
        }
        assert!(matches!(
            t.partition(p),
            Err(Error::InvalidPartition { .. })
        ));
    }
    assert_eq!(
        t.end_offsets(),
        vec![1, 1, 1, 1],
        "the refused sends wrote nothing"
    );
    store.close().unwrap();
}

/// The partitions chosen for `metas`, collapsed into runs of (partition, length).
fn runs(metas: &[RecordMetadata]) -> Vec<(u32, usize)> {
    let mut out: Vec<(u32, usize)> = Vec::new();
    for m in metas {
        match out.last_mut() {
            Some((p, n)) if *p == m.partition => *n += 1,
            _ => out.push((m.partition, 1)),
        }
    }
    out
}

#[test]
fn unkeyed_batches_stick_to_a_partition_then_spread_evenly() {
    let fs = SimFs::new(5);
    // 100-byte values with a 1000-byte sticky batch: a new partition every 10 records.
    let store = Store::open_with_env(
        STORE,
        StoreOptions {
            partitioner: seeded(1000, 42),
            ..options()
        },
        env(&fs),
    )
    .unwrap();
    let t = store
        .create_topic("unkeyed", TopicConfig::with_partitions(4))
        .unwrap();
    let mut metas = Vec::new();
    for b in 0..400u32 {
        let batch: Vec<Record> = (0..7u32)
            .map(|i| Record::new(format!("{b:05}-{i}-{}", "v".repeat(92))))
            .collect();
        assert!(batch.iter().all(|r| r.value().unwrap().len() == 100));
        let got = t.send_batch(&batch).unwrap();
        assert_eq!(got.len(), batch.len());
        for (record, meta) in batch.iter().zip(&got) {
            assert_eq!(stored_at(&t, *meta).0, record.clone().with_timestamp(NOW));
        }
        metas.extend(got);
    }
    let runs = runs(&metas);
    let (last, whole) = runs.split_last().unwrap();
    for (i, &(p, n)) in whole.iter().enumerate() {
        assert_eq!(
            n, 10,
            "run {i} on partition {p}: sticky for exactly 1000 bytes"
        );
    }
    assert!(last.1 <= 10);
    // A run ends by moving to a different partition.
    for w in runs.windows(2) {
        assert_ne!(w[0].0, w[1].0);
    }
    let mut counts = [0usize; 4];
    for m in &metas {
        counts[m.partition as usize] += 1;
    }
    // 2800 records: 700 each on average.
    for c in counts {
        assert!((500..=900).contains(&c), "uneven spread: {counts:?}");
    }
    assert_eq!(
        t.end_offsets().iter().sum::<u64>(),
        2800,
        "{:?}",
        t.end_offsets()
    );
    store.close().unwrap();
}

#[test]
fn the_store_sticky_batch_bytes_drives_the_default_partitioner() {
    let fs = SimFs::new(6);
    let store = Store::open_with_env(
        STORE,
        StoreOptions {
            sticky_batch_bytes: 500,
            ..options()
        },
        env(&fs),
    )
    .unwrap();
    let t = store
        .create_topic("sticky", TopicConfig::with_partitions(3))
        .unwrap();
    let metas: Vec<RecordMetadata> = (0..200)
        .map(|i| t.send(Record::new(format!("{i:0100}"))).unwrap())
        .collect();
    let runs = runs(&metas);
    let (_, whole) = runs.split_last().unwrap();
    assert!(whole.len() >= 30, "{runs:?}");
    for &(p, n) in whole {
        assert_eq!(n, 5, "500 bytes of 100-byte values on partition {p}");
    }
    store.close().unwrap();
}

/// One question put to a partitioner: topic, key, value length, partition count.
type Asked = (String, Option<Vec<u8>>, usize, u32);

/// Sends everything to the last partition and remembers what it was asked.
#[derive(Debug, Default)]
struct ToLast {
    calls: AtomicUsize,
    asked: Mutex<Vec<Asked>>,
}

impl Partitioner for ToLast {
    fn partition(&self, topic: &str, key: Option<&[u8]>, value_len: usize, partitions: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.asked.lock().unwrap().push((
            topic.to_owned(),
            key.map(<[u8]>::to_vec),
            value_len,
            partitions,
        ));
        partitions - 1
    }
}

#[test]
fn a_custom_partitioner_is_used_when_set() {
    let fs = SimFs::new(7);
    let custom = Arc::new(ToLast::default());
    let store = Store::open_with_env(
        STORE,
        StoreOptions {
            partitioner: Some(custom.clone()),
            ..options()
        },
        env(&fs),
    )
    .unwrap();
    let t = store
        .create_topic("custom", TopicConfig::with_partitions(5))
        .unwrap();
    let m = t.send(Record::new("abc").with_key("key-1")).unwrap();
    assert_eq!(m.partition, 4);
    assert_ne!(
        key_partition(b"key-1", 5),
        4,
        "the key alone would go elsewhere"
    );
    let metas = t
        .send_batch(&[
            Record::new("unkeyed"),
            Record::new("keyed").with_key("k2"),
            Record::tombstone("gone"),
        ])
        .unwrap();
    assert!(metas.iter().all(|m| m.partition == 4), "{metas:?}");
    assert_eq!(custom.calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        custom.asked.lock().unwrap().as_slice(),
        &[
            ("custom".to_owned(), Some(b"key-1".to_vec()), 3, 5),
            ("custom".to_owned(), None, 7, 5),
            ("custom".to_owned(), Some(b"k2".to_vec()), 5, 5),
            ("custom".to_owned(), Some(b"gone".to_vec()), 0, 5),
        ]
    );
    // An explicit partition does not consult the partitioner.
    assert_eq!(t.send_to(1, Record::new("x")).unwrap().partition, 1);
    assert_eq!(custom.calls.load(Ordering::SeqCst), 4);
    assert_eq!(t.end_offsets(), vec![0, 1, 0, 0, 4]);

    // After growth the partitioner is told the new count.
    store.add_partitions("custom", 8).unwrap();
    assert_eq!(t.send(Record::new("y")).unwrap().partition, 7);
    assert_eq!(custom.asked.lock().unwrap().last().unwrap().3, 8);
    store.close().unwrap();
}

#[test]
fn send_batch_returns_metadata_in_input_order() {
    let fs = SimFs::new(8);
    let store = Store::open_with_env(
        STORE,
        StoreOptions {
            partitioner: seeded(300, 7),
            ..options()
        },
        env(&fs),
    )
    .unwrap();
    let create_time = store
        .create_topic("create", TopicConfig::with_partitions(5))
        .unwrap();
    let append_time = store
        .create_topic(
            "append",
            TopicConfig {
                partitions: 5,
                overrides: LogOverrides {
                    timestamp_type: Some(TimestampType::LogAppendTime),
                    ..LogOverrides::default()
                },
            },
        )
        .unwrap();
    // Keyed and unkeyed, with and without timestamps and headers, tombstones, several batches.
    let record = |b: u32, i: u32| {
        let mut r = Record::new(format!("b{b}-r{i}-{}", "p".repeat((i * 13 % 90) as usize)));
        if !i.is_multiple_of(3) {
            r = r.with_key(format!("key-{}", (b * 7 + i) % 23));
        }
        if i % 4 == 1 {
            r = r.with_timestamp(1_000 + i64::from(b * 100 + i));
        }
        if i % 5 == 2 {
            r = r
                .with_header("h", Bytes::from(format!("{b}/{i}")))
                .with_header("n", None);
        }
        if i % 11 == 10 {
            r = Record::tombstone(format!("dead-{b}-{i}"));
        }
        r
    };
    for topic in [&create_time, &append_time] {
        let log_append = topic.name() == "append";
        let mut seen = std::collections::HashSet::new();
        let mut next = vec![0u64; 5];
        for b in 0..30u32 {
            let batch: Vec<Record> = (0..1 + b % 17).map(|i| record(b, i)).collect();
            let metas = topic.send_batch(&batch).unwrap();
            assert_eq!(metas.len(), batch.len());
            for (i, (r, meta)) in batch.iter().zip(&metas).enumerate() {
                let what = format!("{} batch {b} record {i}: {meta:?}", topic.name());
                assert!(meta.partition < 5, "{what}");
                if let Some(k) = r.key() {
                    assert_eq!(meta.partition, key_partition(k, 5), "{what}");
                }
                // Per partition, records of a batch take consecutive offsets in input order.
                assert_eq!(meta.offset, next[meta.partition as usize], "{what}");
                next[meta.partition as usize] += 1;
                assert!(seen.insert((meta.partition, meta.offset)), "{what}: reused");
                let expected_ts = match (log_append, r.timestamp()) {
                    (false, Some(ts)) => ts,
                    _ => NOW,
                };
                assert_eq!(meta.timestamp, expected_ts, "{what}");
                let (stored, stored_ts) = stored_at(topic, *meta);
                assert_eq!(stored_ts, meta.timestamp, "{what}: timestamp as stored");
                assert_eq!(stored.key(), r.key(), "{what}");
                assert_eq!(stored.value(), r.value(), "{what}");
                assert_eq!(stored.headers(), r.headers(), "{what}");
            }
        }
        assert_eq!(topic.end_offsets(), next);
    }
    store.close().unwrap();
}
