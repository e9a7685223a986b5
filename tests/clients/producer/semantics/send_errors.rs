//! The errors `send` reports: missing key, too large, bad partition, unknown topic, full buffer.

use super::*;

#[test]
fn keyless_records_to_a_compacted_topic_fail_with_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let mut topics = Vec::new();
    for (name, policy) in [
        ("compact", CleanupPolicy::Compact),
        ("compact-delete", CleanupPolicy::CompactDelete),
    ] {
        let t = store
            .create_topic(
                name,
                TopicConfig {
                    overrides: LogOverrides {
                        cleanup_policy: Some(policy),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::with_partitions(2)
                },
            )
            .unwrap();
        topics.push((name, t));
    }
    let plain = store
        .create_topic("plain", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    for (name, t) in &topics {
        match producer.send(name, Record::new("no key")) {
            Err(Error::MissingKey { topic }) => assert_eq!(topic, *name),
            other => panic!("{name}: expected MissingKey, got {other:?}"),
        }
        match producer.send_to(name, 1, Record::new("no key")) {
            Err(Error::MissingKey { topic }) => assert_eq!(topic, *name),
            other => panic!("{name}: expected MissingKey from send_to, got {other:?}"),
        }
        // Keyed records and tombstones are accepted.
        let keyed = producer.send(name, Record::new("v").with_key("k")).unwrap();
        let tomb = producer
            .send_to(name, 0, Record::tombstone("gone"))
            .unwrap();
        producer.flush().unwrap();
        keyed.wait().unwrap();
        tomb.wait().unwrap();
        assert_eq!(
            t.end_offsets().iter().sum::<u64>(),
            2,
            "{name}: the keyless records were not stored"
        );
    }
    // A topic that does not compact takes keyless records.
    let h = producer.send("plain", Record::new("no key")).unwrap();
    producer.flush().unwrap();
    assert_eq!(h.wait().unwrap().offset, 0);
    assert_eq!(plain.end_offsets(), vec![1]);
}

/// Probe `make(len)` for `len` in `lens` against a topic whose batches are at most `max` bytes:
/// the accepted lengths must be a prefix of `lens`, every rejection a `RecordTooLarge` naming
/// `max`. Returns the accepted `(len, handle)`s.
fn probe_record_sizes(
    producer: &Producer,
    topic: &str,
    max: usize,
    lens: std::ops::Range<usize>,
    make: impl Fn(usize) -> Record,
) -> Vec<(usize, SendHandle)> {
    let mut accepted = Vec::new();
    let mut first_rejected = None;
    for len in lens {
        match producer.send(topic, make(len)) {
            Ok(h) => {
                assert!(
                    first_rejected.is_none(),
                    "{len} accepted although {first_rejected:?} was rejected"
                );
                accepted.push((len, h));
            }
            Err(Error::RecordTooLarge { size, max: m }) => {
                assert_eq!(m, max, "{len}: the topic's limit");
                assert!(size > max, "{len}: rejected with size {size} <= {max}");
                first_rejected.get_or_insert(len);
            }
            Err(e) => panic!("{len}: {e}"),
        }
    }
    assert!(first_rejected.is_some(), "nothing was too large");
    accepted
}

#[test]
fn a_record_too_large_for_the_topic_fails_at_send_and_one_that_fits_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    const MAX: usize = 1024;
    let t = store
        .create_topic(
            "small",
            TopicConfig {
                overrides: LogOverrides {
                    max_batch_bytes: Some(MAX as u32),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(1)
            },
        )
        .unwrap();
    // The producer's own batch size does not matter: the topic's limit does.
    for (round, batch_bytes) in [64 << 10, 1].into_iter().enumerate() {
        let producer = store
            .producer(ProducerConfig {
                linger: HOUR,
                batch_bytes,
                ..config(Acks::Written)
            })
            .unwrap();
        // Plain values, then records with a key, headers and an extreme timestamp.
        let plain = probe_record_sizes(&producer, "small", MAX, 800..1100, |len| {
            Record::new(vec![b'p'; len])
        });
        let rich = probe_record_sizes(&producer, "small", MAX, 800..1100, |len| {
            Record::new(vec![b'r'; len])
                .with_key("0123456789")
                .with_header("h1", Bytes::from("header value"))
                .with_header("h2", None)
                .with_timestamp(i64::MAX)
        });
        // The producer may keep a margin (it bounds the encoded size from above), but not much.
        let (largest_plain, _) = plain.last().unwrap();
        let (largest_rich, _) = rich.last().unwrap();
        assert!(
            *largest_plain >= MAX - 128,
            "largest plain value {largest_plain}"
        );
        assert!(
            *largest_rich >= MAX - 160,
            "largest rich value {largest_rich}"
        );
        // Too large for send_to as well; nothing was buffered for the rejections.
        assert!(matches!(
            producer.send_to("small", 0, Record::new(vec![0u8; MAX])),
            Err(Error::RecordTooLarge { max: MAX, .. })
        ));
        producer.flush().unwrap();
        // Every accepted record, including the ones right at the boundary, was appended.
        let p = t.partition(0).unwrap();
        for (len, h) in plain.iter().chain(&rich) {
            let m = h
                .wait()
                .unwrap_or_else(|e| panic!("round {round}: {len}-byte value accepted but: {e}"));
            let read = p.read(m.offset, 1).unwrap();
            let batch = &read.batches()[0];
            assert!(
                batch.as_bytes().len() <= MAX,
                "{len}: stored a {}-byte batch",
                batch.as_bytes().len()
            );
            let r = batch.records().find(|r| r.offset() == m.offset).unwrap();
            assert_eq!(r.value().unwrap().len(), *len);
        }
        // The producer keeps working after the rejections.
        let h = producer.send("small", Record::new("small")).unwrap();
        producer.flush().unwrap();
        assert_eq!(h.wait().unwrap().offset + 1, p.end_offset());
    }
}

#[test]
fn records_that_fit_are_never_batched_past_the_topic_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    const MAX: usize = 1024;
    let t = store
        .create_topic(
            "t",
            TopicConfig {
                overrides: LogOverrides {
                    max_batch_bytes: Some(MAX as u32),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(2)
            },
        )
        .unwrap();
    // batch_bytes far above the topic's limit, an hour of linger: only the limit splits batches.
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 64 << 10,
            ..config(Acks::Written)
        })
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..600usize {
        // 400 ..= 490-byte values (and some keys and headers), with timestamps far apart, so
        // the timestamp deltas take the longest varints.
        let len = 400 + (i * 37) % 91;
        let tag = format!("{i:04}");
        let mut value = tag.clone().into_bytes();
        value.resize(len, b'.');
        let mut r = Record::new(value).with_timestamp(if i % 2 == 0 { i64::MAX } else { 0 });
        if i % 3 == 0 {
            r = r.with_key(format!("key-{i}"));
        }
        if i % 4 == 0 {
            r = r.with_header("trace", Bytes::from(tag.clone()));
        }
        let h = producer.send_to("t", (i % 2) as u32, r).unwrap();
        sent.push((tag, h));
    }
    producer.flush().unwrap();
    for (tag, h) in &sent {
        h.wait().unwrap_or_else(|e| panic!("{tag}: {e}"));
    }
    let mut multi = 0;
    for (pi, p) in t.partitions().iter().enumerate() {
        let batches = stored_batches(p);
        for (header, len) in &batches {
            assert!(
                *len <= MAX,
                "batch at {} of {} records is {len} bytes",
                header.base_offset,
                header.record_count
            );
            if header.record_count > 1 {
                multi += 1;
            }
        }
        assert_eq!(
            batches
                .iter()
                .map(|(h, _)| u64::from(h.record_count))
                .sum::<u64>(),
            300
        );
        // Every record is stored, in send order.
        let tags: Vec<String> = values(p)
            .into_iter()
            .map(|(_, v)| v[..4].to_owned())
            .collect();
        let expected: Vec<String> = (0..600)
            .filter(|i| i % 2 == pi)
            .map(|i| format!("{i:04}"))
            .collect();
        assert_eq!(tags, expected);
    }
    assert!(multi > 0, "records that fit together are still batched");
}

#[test]
fn invalid_partitions_and_unknown_topics_fail_at_send() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    for p in [3, 4, u32::MAX] {
        match producer.send_to("t", p, Record::new("x")) {
            Err(Error::InvalidPartition {
                topic,
                partition,
                partitions,
            }) => assert_eq!((topic.as_str(), partition, partitions), ("t", p, 3)),
            other => panic!("partition {p}: expected InvalidPartition, got {other:?}"),
        }
    }
    for result in [
        producer.send("missing", Record::new("x")),
        producer.send_to("missing", 0, Record::new("x")),
    ] {
        match result {
            Err(Error::UnknownTopic { name }) => assert_eq!(name, "missing"),
            other => panic!("expected UnknownTopic, got {other:?}"),
        }
    }
    // Nothing was buffered for the failures, and the producer still works.
    let h = producer.send_to("t", 2, Record::new("ok")).unwrap();
    producer.flush().unwrap();
    let m = h.wait().unwrap();
    assert_eq!((m.partition, m.offset), (2, 0));
    assert_eq!(t.end_offsets(), vec![0, 0, 1]);
}

#[test]
fn a_full_buffer_fails_after_max_block_and_frees_up_on_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    const BUFFER: usize = 1000;
    const MAX_BLOCK: Duration = Duration::from_millis(200);
    // The batch is as large as the buffer: it can never fill before the buffer does, so nothing
    // is appended before the flush.
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: BUFFER,
            buffer_bytes: BUFFER,
            max_block: MAX_BLOCK,
            ..config(Acks::Written)
        })
        .unwrap();
    let record = |i: usize| Record::new(format!("{i:0100}"));
    let mut handles = Vec::new();
    let err = loop {
        match producer.send("t", record(handles.len())) {
            Ok(h) => handles.push(h),
            Err(e) => break e,
        }
        assert!(handles.len() < BUFFER / 100, "never reported a full buffer");
    };
    assert!(!handles.is_empty());
    // That send waited max_block for space (nothing could free it), then failed.
    let blocked = Instant::now();
    match producer.send("t", record(handles.len())) {
        Err(Error::BufferFull { buffered, limit }) => {
            assert_eq!(limit, BUFFER);
            assert!(buffered <= BUFFER && buffered > BUFFER / 2, "{buffered}");
        }
        other => panic!("expected BufferFull, got {other:?}"),
    }
    assert!(
        blocked.elapsed() >= MAX_BLOCK,
        "failed after {:?}, before max_block",
        blocked.elapsed()
    );
    assert!(
        matches!(err, Error::BufferFull { limit: BUFFER, .. }),
        "{err:?}"
    );
    assert!(handles.iter().all(|h| !h.is_done()));
    assert_eq!(t.end_offsets(), vec![0]);
    // The stats show the buffer full and the two waits of max_block; nothing sent yet.
    let stats = producer.stats();
    assert!(stats.buffered_bytes > (BUFFER / 2) as u64, "{stats:?}");
    assert!(stats.buffer_wait >= 2 * MAX_BLOCK, "{stats:?}");
    assert_eq!((stats.batches_sent, stats.records_sent), (0, 0));

    // A flush empties the buffer: sends succeed again.
    producer.flush().unwrap();
    wait_all(&handles);
    let n = handles.len() as u64;
    let h = producer.send("t", record(handles.len())).unwrap();
    producer.flush().unwrap();
    assert_eq!(h.wait().unwrap().offset, n);
    let stats = producer.stats();
    assert_eq!(stats.records_sent, n + 1);
    assert_eq!(stats.batches_sent, 2);
    assert_eq!((stats.buffered_bytes, stats.records_failed), (0, 0));
    assert!(stats.bytes_sent > 100 * (n + 1), "{stats:?}");

    // A send blocked on a full buffer goes through as soon as another thread's flush frees it.
    let mut more = Vec::new();
    while let Ok(h) = producer.send("t", record(0)) {
        more.push(h);
    }
    let patient = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: BUFFER,
            buffer_bytes: BUFFER,
            max_block: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let mut patient_handles = Vec::new();
    while patient_handles.len() < more.len() {
        patient_handles.push(patient.send("t", record(0)).unwrap());
    }
    let flusher = patient.clone();
    let flush = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        flusher.flush().unwrap();
    });
    // Blocks (an hour at most) until the flush frees the buffer.
    let h = patient.send("t", record(1)).unwrap();
    flush.join().unwrap();
    patient.flush().unwrap();
    producer.flush().unwrap();
    wait_all(&more);
    wait_all(&patient_handles);
    h.wait().unwrap();
    assert_eq!(t.end_offsets(), vec![n + 1 + more.len() as u64 * 2 + 1]);
}
