//! Producer ids, and topics deleted and recreated under a producer.

use super::*;

#[test]
fn idempotent_producer_ids_are_unique_across_producers_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = BTreeSet::new();
    let one_thread = |idempotent| ProducerConfig {
        idempotent,
        max_in_flight: 1,
        linger: HOUR,
        ..config(Acks::Written)
    };
    {
        let store = store(dir.path());
        let t = store
            .create_topic("t", TopicConfig::with_partitions(1))
            .unwrap();
        let producers: Vec<Producer> = (0..5)
            .map(|_| store.producer(one_thread(true)).unwrap())
            .collect();
        for p in &producers {
            let id = p.producer_id().expect("idempotent by default");
            assert!(id >= 0, "{id}");
            assert!(ids.insert(id), "id {id} given twice");
            assert_eq!(p.clone().producer_id(), Some(id), "clones share the id");
        }
        let plain = store.producer(one_thread(false)).unwrap();
        assert_eq!(plain.producer_id(), None);

        // Batches carry their producer's id (and sequence numbers); the plain producer's do not.
        for p in [&producers[0], &plain, &producers[4], &producers[0]] {
            drop(p.send("t", Record::new("x")).unwrap());
            p.flush().unwrap();
        }
        let stamps: Vec<(i64, i32)> = stored_batches(&t.partition(0).unwrap())
            .iter()
            .map(|(h, _)| (h.producer_id, h.base_sequence))
            .collect();
        let (id0, id4) = (
            producers[0].producer_id().unwrap(),
            producers[4].producer_id().unwrap(),
        );
        assert_eq!(stamps, vec![(id0, 0), (-1, -1), (id4, 0), (id0, 1)]);
        drop((producers, plain));
        store.close().unwrap();
    }
    // After a reopen, and from several threads at once: still never an id given before.
    for reopen in 0..2 {
        let store = store(dir.path());
        let fresh: Vec<i64> = std::thread::scope(|s| {
            let joins: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..5)
                            .map(|_| {
                                let p = store.producer(one_thread(true)).unwrap();
                                p.producer_id().unwrap()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            joins.into_iter().flat_map(|j| j.join().unwrap()).collect()
        });
        assert_eq!(fresh.len(), 20);
        for id in fresh {
            assert!(id >= 0, "{id}");
            assert!(ids.insert(id), "reopen {reopen}: id {id} given twice");
        }
        assert_eq!(
            store.producer(one_thread(false)).unwrap().producer_id(),
            None
        );
        store.close().unwrap();
    }
    assert_eq!(ids.len(), 45);
}

#[test]
fn a_deleted_and_recreated_topic_is_sent_to_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let old = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let mut first = Vec::new();
    for i in 0..30u32 {
        let v = format!("old-{i}");
        let h = if i % 3 == 0 {
            producer.send_to("t", 2, Record::new(v.clone()))
        } else {
            producer.send("t", Record::new(v.clone()).with_key(format!("k{i}")))
        }
        .unwrap();
        first.push((v, h));
    }
    producer.flush().unwrap();
    assert_stored_in_send_order(&old, &first);

    store.delete_topic("t").unwrap();
    assert!(matches!(
        producer.send("t", Record::new("x")),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        producer.send_to("t", 0, Record::new("x")),
        Err(Error::UnknownTopic { .. })
    ));

    // Recreated with fewer partitions: the producer sees the new topic, not its memory of the
    // old one (partition count, offsets, sequence numbers).
    let new = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    match producer.send_to("t", 2, Record::new("x")) {
        Err(Error::InvalidPartition { partitions, .. }) => assert_eq!(partitions, 2),
        other => panic!("expected InvalidPartition, got {other:?}"),
    }
    let mut second = Vec::new();
    for i in 0..40u32 {
        let v = format!("new-{i}");
        let h = if i % 4 == 0 {
            producer.send_to("t", 1, Record::new(v.clone()))
        } else {
            producer.send("t", Record::new(v.clone()).with_key(format!("k{i}")))
        }
        .unwrap();
        second.push((v, h));
    }
    producer.flush().unwrap();
    for (v, h) in &second {
        let m = h.wait().unwrap_or_else(|e| panic!("{v}: {e}"));
        assert!(m.partition < 2, "{v}");
    }
    assert_stored_in_send_order(&new, &second);
    assert_eq!(new.end_offsets().iter().sum::<u64>(), 40);
}

#[test]
fn a_record_sent_after_recreation_is_not_caught_in_a_batch_open_for_the_deleted_topic() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    // Open batches for the old topic (an hour of linger), on partitions 0 and 1.
    let before: Vec<SendHandle> = (0..2)
        .map(|p| producer.send_to("t", p, Record::new("before")).unwrap())
        .collect();
    store.delete_topic("t").unwrap();
    let new = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let after = producer.send_to("t", 0, Record::new("after")).unwrap();
    let keyed = producer
        .send("t", Record::new("after-keyed").with_key("k"))
        .unwrap();
    producer.flush().unwrap();
    for h in &before {
        // Sent to a topic that is gone: done, and not stored in the new topic.
        assert!(h.is_done());
        assert!(h.wait().is_err(), "{:?}", h.wait());
    }
    let m = after.wait().expect("sent after the recreation");
    assert_eq!((m.partition, m.offset), (0, 0));
    assert_eq!(keyed.wait().unwrap().offset, 1);
    assert_eq!(
        values(&new.partition(0).unwrap()),
        vec![(0, "after".to_owned()), (1, "after-keyed".to_owned())]
    );
}

/// The producer caches what it looked up of a topic; a change of the topic's config or partition
/// count applies to the very next send.
#[test]
fn a_topic_config_or_partition_change_applies_to_the_next_send() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store.producer(config(Acks::Written)).unwrap();
    producer
        .send("t", Record::new("keyless"))
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(
        producer.send_to("t", 2, Record::new("x")),
        Err(Error::InvalidPartition { partitions: 2, .. })
    ));

    store.add_partitions("t", 3).unwrap();
    producer
        .send_to("t", 2, Record::new("to the new partition"))
        .unwrap()
        .wait()
        .unwrap();

    store
        .alter_topic_config("t", |c| {
            c.overrides.cleanup_policy = Some(topiclog::CleanupPolicy::Compact);
            c.overrides.max_batch_bytes = Some(200);
        })
        .unwrap();
    assert!(matches!(
        producer.send("t", Record::new("keyless")),
        Err(Error::MissingKey { .. })
    ));
    assert!(matches!(
        producer.send("t", Record::new(vec![0u8; 300]).with_key("k")),
        Err(Error::RecordTooLarge { max: 200, .. })
    ));
    producer
        .send("t", Record::new("small").with_key("k"))
        .unwrap()
        .wait()
        .unwrap();
    store.close().unwrap();
    assert!(matches!(
        producer.send("t", Record::new("x").with_key("k")),
        Err(Error::Closed { .. })
    ));
}
