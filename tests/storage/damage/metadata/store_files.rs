//! Store-level files: a damaged `__producer_ids` and undecodable offsets records (part 3 of the
//! module's scenarios).

use super::*;

const STORE: &str = "/s";
const GROUP: &str = "group-under-test";

fn store_env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(T0)),
    }
}

fn store_options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 4096,
            preallocate: false,
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

#[test]
fn damaged_producer_ids_is_a_clear_error() {
    let fs = SimFs::new(31);
    let store = Store::open_with_env(STORE, store_options(), store_env(&fs)).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let p = store.producer(ProducerConfig::default()).unwrap();
    assert_eq!(p.producer_id(), Some(0));
    p.close().unwrap();
    let path = Path::new(STORE).join("__producer_ids");
    let valid = fs.read_file(&path).unwrap();
    // docs/FORMAT.md: the envelope (magic `TLPI`, version, length, CRC) around the next id.
    assert_eq!(valid.len(), 21);

    // The counter as earlier versions wrote it (12 bytes: the next id, its CRC), still read.
    let counter = |v: i64| sealed(v.to_le_bytes().to_vec());
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for (layout, valid) in [("", valid.clone()), ("12-byte ", counter(1))] {
        for len in 0..valid.len() {
            cases.push((format!("{layout}cut to {len}"), valid[..len].to_vec()));
        }
        let mut long = valid.clone();
        long.push(0);
        cases.push((format!("{layout}a byte too many"), long));
        for bit in 0..valid.len() * 8 {
            let mut b = valid.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            cases.push((format!("{layout}bit {bit} flipped"), b));
        }
    }
    let mut rng = TestRng::new(0x1d5);
    for i in 0..64 {
        let len = if i < 8 { i } else { rng.below(4096) as usize };
        cases.push((format!("{len} random bytes"), rng.bytes(len)));
    }
    for v in [-1, i64::MIN, i64::MAX] {
        cases.push((format!("counter {v} with a valid CRC"), counter(v)));
    }
    for (what, data) in &cases {
        fs.write_file(&path, data);
        let err = match store.producer(ProducerConfig::default()) {
            Ok(p) => panic!("{what}: got producer id {:?}", p.producer_id()),
            Err(e) => e,
        };
        let message = err.to_string();
        match &err {
            Error::Corrupt {
                path: p, reason, ..
            } => {
                assert_eq!(p, &path, "{what}: {message}");
                assert!(
                    reason.contains("producer id counter") || data.len() > 64,
                    "{what}: {message}"
                );
            }
            // A file longer than any counter fails the size guard, an I/O-style error that still
            // names the file and says what is wrong.
            Error::Io { path: p, .. } if data.len() > 64 => {
                assert_eq!(p, &path, "{what}: {message}");
                assert!(message.contains("bytes"), "{what}: {message}");
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert!(message.contains("__producer_ids"), "{what}: {message}");
        // The damaged counter is left for a human, not silently reset or reused.
        assert_eq!(
            fs.read_file(&path).as_deref(),
            Some(data.as_slice()),
            "{what}"
        );
        // Everything else goes on: a producer that needs no id still sends.
        let plain = store
            .producer(ProducerConfig {
                idempotent: false,
                ..ProducerConfig::default()
            })
            .unwrap();
        assert_eq!(plain.producer_id(), None);
        plain
            .send("t", Record::new("v"))
            .unwrap()
            .wait()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        plain.close().unwrap();
    }
    // A valid counter works again; the last id is refused rather than wrapped.
    fs.write_file(&path, &valid);
    assert_eq!(
        store
            .producer(ProducerConfig::default())
            .unwrap()
            .producer_id(),
        Some(1)
    );
    fs.write_file(&path, &counter(i64::MAX - 1));
    assert_eq!(
        store
            .producer(ProducerConfig::default())
            .unwrap()
            .producer_id(),
        Some(i64::MAX - 1)
    );
    assert!(matches!(
        store.producer(ProducerConfig::default()),
        Err(Error::Corrupt { .. })
    ));
    store.close().unwrap();
}

/// Where a record's parts lie in the first batch of the offsets topic's log.
struct CommitRecord {
    /// The whole log file.
    bytes: Vec<u8>,
    /// Batch length field: the batch is `12 + len` bytes from 0.
    len: usize,
    /// First byte of the key (its version byte).
    key: usize,
    /// First byte of the value (its version byte).
    value: usize,
}

fn offsets_log() -> PathBuf {
    Path::new(STORE)
        .join("__consumer_offsets")
        .join("0")
        .join(seg_name(0, ".log"))
}

fn locate_commit(fs: &SimFs) -> CommitRecord {
    let bytes = fs.read_file(&offsets_log()).unwrap();
    let len = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let mut key_head = vec![1u8];
    key_head.extend_from_slice(&(GROUP.len() as u16).to_le_bytes());
    key_head.extend_from_slice(GROUP.as_bytes());
    let key = bytes[..12 + len]
        .windows(key_head.len())
        .position(|w| w == key_head.as_slice())
        .expect("the first batch holds the commit's key");
    // key = version | group len | group | topic len | "t" | partition u32
    let key_end = key + 1 + 2 + GROUP.len() + 2 + 1 + 4;
    // value = version | offset | time | metadata len | "meta": 25 bytes, Kafka's zig-zag varint
    // length (50) before it.
    assert_eq!(bytes[key_end], 50, "value length");
    let value = key_end + 1;
    assert_eq!(bytes[value], 1, "value version");
    assert_eq!(&bytes[value + 21..value + 25], b"meta");
    CommitRecord {
        bytes,
        len,
        key,
        value,
    }
}

/// Recompute the first batch's CRC: Kafka's CRC-32C of bytes[21..12 + len], big-endian at 17.
fn fix_crc(bytes: &mut [u8], len: usize) {
    let crc = topiclog::internals::format::crc32c(&bytes[21..12 + len]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn group_consumer(store: &Store) -> topiclog::Result<topiclog::Consumer> {
    store.consumer(ConsumerConfig {
        group_id: Some(GROUP.into()),
        enable_auto_commit: false,
        ..ConsumerConfig::default()
    })
}

/// A store whose offsets topic holds one commit of `GROUP` (then a second, valid one), closed.
fn store_with_commits() -> SimFs {
    let fs = SimFs::new(41);
    let store = Store::open_with_env(STORE, store_options(), store_env(&fs)).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    assert!(matches!(
        store.topic("__consumer_offsets"),
        Err(Error::UnknownTopic { .. })
    ));
    let c = group_consumer(&store).unwrap();
    let tp = TopicPartition::new("t", 0);
    for offset in [5, 9] {
        c.commit(&[(
            tp.clone(),
            OffsetAndMetadata {
                offset,
                metadata: "meta".into(),
                commit_timestamp: 0,
            },
        )])
        .unwrap();
    }
    // The offsets topic now exists on disk, and is still out of reach of the public API.
    assert!(matches!(
        store.topic("__consumer_offsets"),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        store.create_topic("__consumer_offsets", TopicConfig::with_partitions(1)),
        Err(Error::InvalidTopicName { .. })
    ));
    assert!(!store.topics().iter().any(|t| t.starts_with("__")));
    drop(c);
    store.close().unwrap();
    fs
}

/// Reopen the store over `log` (the offsets topic's log bytes) and load the offsets: `Ok` with
/// the committed offset of `t-0`, or the error.
fn load_offsets(fs: &SimFs, log: &[u8]) -> topiclog::Result<Option<u64>> {
    fs.write_file(&offsets_log(), log);
    let store = Store::open_with_env(STORE, store_options(), store_env(fs))?;
    let result = group_consumer(&store)
        .and_then(|c| c.committed(&TopicPartition::new("t", 0)))
        .map(|om| om.map(|om| om.offset));
    if result.is_err() {
        // The rest of the store works: its topics, and consumers without a group.
        store.topic("t").unwrap();
        store.consumer(ConsumerConfig::default()).unwrap();
    }
    store.close().unwrap();
    result
}

#[test]
fn undecodable_offsets_record_is_corrupt() {
    let fs = store_with_commits();
    let c = locate_commit(&fs);
    assert_eq!(load_offsets(&fs, &c.bytes).unwrap(), Some(9));
    let glen = GROUP.len();
    let cases: Vec<(&str, usize, Vec<u8>, &str)> = vec![
        ("key version 9", c.key, vec![9], "undecodable key"),
        (
            "group length u16::MAX",
            c.key + 1,
            vec![0xff, 0xff],
            "undecodable key",
        ),
        ("group not UTF-8", c.key + 3, vec![0xff], "undecodable key"),
        (
            "topic length 0",
            c.key + 3 + glen,
            vec![0, 0],
            "undecodable key",
        ),
        ("value version 9", c.value, vec![9], "undecodable value"),
        (
            "metadata length u32::MAX",
            c.value + 17,
            vec![0xff; 4],
            "undecodable value",
        ),
    ];
    for (what, at, patch, expected) in cases {
        let mut bytes = c.bytes.clone();
        bytes[at..at + patch.len()].copy_from_slice(&patch);
        fix_crc(&mut bytes, c.len);
        let err = match load_offsets(&fs, &bytes) {
            Ok(v) => panic!("{what}: loaded {v:?}"),
            Err(e) => e,
        };
        let message = err.to_string();
        match &err {
            // (`position` holds the record's offset, not a byte position: not checked here.)
            Error::Corrupt { path, reason, .. } => {
                assert!(
                    path.starts_with(Path::new(STORE).join("__consumer_offsets")),
                    "{what}: {message}"
                );
                assert!(reason.contains(expected), "{what}: {message}");
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert!(
            message.contains("offsets topic") && message.contains("__consumer_offsets"),
            "{what}: {message}"
        );
    }
    // Undamaged again, it loads.
    assert_eq!(load_offsets(&fs, &c.bytes).unwrap(), Some(9));
}

#[test]
fn bit_flips_in_offsets_records_with_a_valid_crc() {
    let fs = store_with_commits();
    let c = locate_commit(&fs);
    let mut rng = TestRng::new(0x0ff5);
    let mut outcomes = [0usize; 2];
    // Every byte of the records (framing included), each with a random bit flipped, and every
    // bit of the key.
    let mut flips: Vec<(usize, u8)> = (57..12 + c.len)
        .map(|at| (at, 1u8 << rng.below(8)))
        .collect();
    let key_len = 1 + 2 + GROUP.len() + 2 + 1 + 4;
    for at in c.key..c.key + key_len {
        flips.extend((0..8).map(|bit| (at, 1u8 << bit)));
    }
    for (at, mask) in flips {
        let mut bytes = c.bytes.clone();
        bytes[at] ^= mask;
        fix_crc(&mut bytes, c.len);
        match load_offsets(&fs, &bytes) {
            Ok(_) => outcomes[0] += 1,
            Err(Error::Corrupt { reason, .. }) if !reason.is_empty() => outcomes[1] += 1,
            Err(e) => panic!("byte {at} ^ {mask:#x}: expected Ok or Corrupt, got {e:?}"),
        }
    }
    assert!(outcomes[1] > 0, "{outcomes:?}");
}
