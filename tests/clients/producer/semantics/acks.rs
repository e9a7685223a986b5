//! What each `Acks` level promises when `wait()` returns.

use super::*;

#[test]
fn acks_none_completes_at_accept_without_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            acks: Acks::None,
            linger: HOUR,
            ..ProducerConfig::default()
        })
        .unwrap();
    let handles: Vec<_> = (0..10)
        .map(|i| {
            producer
                .send("t", Record::new(format!("v{i}")).with_timestamp(1_000 + i))
                .unwrap()
        })
        .collect();
    for (i, h) in handles.iter().enumerate() {
        // Done at once although nothing was appended (the linger is an hour).
        assert!(h.is_done());
        let m = h.wait_timeout(Duration::ZERO).unwrap().unwrap();
        assert!(!m.has_offset());
        assert_eq!(m.offset, u64::MAX);
        assert_eq!(m.partition, 0);
        assert_eq!(m.timestamp, 1_000 + i as i64, "the record's own timestamp");
    }
    assert_eq!(
        t.end_offsets(),
        vec![0],
        "nothing appended before the flush"
    );
    producer.flush().unwrap();
    assert_eq!(
        values(&t.partition(0).unwrap())
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        (0..10).map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
}

#[test]
fn acks_written_is_visible_to_readers_and_consumers_when_wait_returns() {
    let dir = tempfile::tempdir().unwrap();
    // Durable topics too: a Written ack must wait until the record is visible, and under
    // Durability::Always that is after its sync.
    let store = Store::open_with(dir.path(), options(Durability::None)).unwrap();
    let fast = store
        .create_topic("fast", TopicConfig::with_partitions(2))
        .unwrap();
    let synced = store
        .create_topic(
            "synced",
            TopicConfig {
                overrides: LogOverrides {
                    durability: Some(Durability::Always),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(1)
            },
        )
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: Duration::from_millis(2),
            ..config(Acks::Written)
        })
        .unwrap();
    let mut consumer = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            ..ConsumerConfig::default()
        })
        .unwrap();
    consumer
        .assign(&[
            topiclog::TopicPartition::new("fast", 0),
            topiclog::TopicPartition::new("fast", 1),
        ])
        .unwrap();
    for i in 0..50u32 {
        for (topic, t) in [("fast", &fast), ("synced", &synced)] {
            let value = format!("{topic}-{i}");
            let h = producer
                .send(topic, Record::new(value.clone()).with_key(format!("k{i}")))
                .unwrap();
            let m = h.wait().unwrap();
            assert!(m.has_offset());
            let p = t.partition(m.partition).unwrap();
            assert!(p.end_offset() > m.offset, "{value}: visible when acked");
            let read = p.read(m.offset, 1 << 16).unwrap();
            let r = read.records().next().unwrap();
            assert_eq!(r.offset(), m.offset);
            assert_eq!(r.value().unwrap().as_ref(), value.as_bytes());
            if topic == "synced" {
                assert!(
                    p.durable_offset() > m.offset,
                    "Always-topic record is synced"
                );
            }
        }
        // A consumer sees the acked record without waiting for anything else.
        let got = consumer.poll(Duration::ZERO).unwrap();
        assert_eq!(got.len(), 1, "round {i}");
        assert_eq!(
            got.iter().next().unwrap().value().unwrap().as_ref(),
            format!("fast-{i}").as_bytes()
        );
    }
}

#[test]
fn acks_durable_covers_the_record_when_wait_returns() {
    let dir = tempfile::tempdir().unwrap();
    // The topic itself never syncs: Durable acks must sync anyway.
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: Duration::from_millis(1),
            ..config(Acks::Durable)
        })
        .unwrap();
    for round in 0..20u32 {
        let handles: Vec<_> = (0..5)
            .map(|i| {
                producer
                    .send(
                        "t",
                        Record::new(format!("r{round}-{i}")).with_key(format!("{i}")),
                    )
                    .unwrap()
            })
            .collect();
        for h in &handles {
            let m = h.wait().unwrap();
            let p = t.partition(m.partition).unwrap();
            assert!(
                p.durable_offset() > m.offset,
                "durable offset {} does not cover {} in partition {}",
                p.durable_offset(),
                m.offset,
                m.partition
            );
        }
    }
    assert_eq!(t.end_offsets().iter().sum::<u64>(), 100);
}
