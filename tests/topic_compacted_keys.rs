//! A compacted topic keeps records by key, so records without a key are refused before anything
//! is written (as Kafka does); other topics take them.

use topiclog::{CleanupPolicy, Error, LogOverrides, Record, Store, TopicConfig};

#[test]
fn keyless_records_are_refused_on_compacted_topics_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s")).unwrap();
    for policy in [CleanupPolicy::Compact, CleanupPolicy::CompactDelete] {
        let name = format!("t-{policy:?}");
        let topic = store
            .create_topic(
                &name,
                TopicConfig {
                    partitions: 2,
                    overrides: LogOverrides {
                        cleanup_policy: Some(policy),
                        ..LogOverrides::default()
                    },
                },
            )
            .unwrap();
        let missing =
            |r: topiclog::Result<_>| matches!(r, Err(Error::MissingKey { topic }) if topic == name);
        assert!(missing(topic.send(Record::new("no key")).map(|_| ())));
        assert!(missing(topic.send_to(1, Record::new("no key")).map(|_| ())));
        // One keyless record refuses the whole call: nothing is written anywhere.
        assert!(missing(
            topic
                .send_batch(&[Record::new("v").with_key("k"), Record::new("no key")])
                .map(|_| ())
        ));
        assert_eq!(topic.end_offsets(), vec![0, 0]);
        // Keyed records and tombstones are fine.
        topic.send(Record::new("v").with_key("k")).unwrap();
        topic.send(Record::tombstone("k")).unwrap();
        assert_eq!(topic.end_offsets().iter().sum::<u64>(), 2);
    }
    let plain = store
        .create_topic("plain", TopicConfig::with_partitions(1))
        .unwrap();
    plain.send(Record::new("no key")).unwrap();
}

/// The check lives in the partition, the one place every path goes through: a partition handle
/// taken from a compacted topic refuses keyless records too (compaction used to drop them
/// silently), and so does a standalone partition configured as compacted.
#[test]
fn keyless_records_are_refused_through_partition_handles() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s")).unwrap();
    let topic = store
        .create_topic(
            "c",
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    cleanup_policy: Some(CleanupPolicy::Compact),
                    ..LogOverrides::default()
                },
            },
        )
        .unwrap();
    let p = topic.partition(0).unwrap();
    assert!(matches!(
        p.append(Record::new("no key")),
        Err(Error::MissingKey { .. })
    ));
    assert!(matches!(
        p.append_batch(&[Record::new("v").with_key("k"), Record::new("no key")]),
        Err(Error::MissingKey { .. })
    ));
    assert_eq!(p.end_offset(), 0, "nothing was written");
    p.append(Record::new("v").with_key("k")).unwrap();
    store.close().unwrap();

    let dir = tmp.path().join("standalone");
    let log = topiclog::Partition::open_with(
        &dir,
        topiclog::LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..topiclog::LogConfig::default()
        },
    )
    .unwrap();
    match log.append(Record::new("no key")) {
        Err(Error::MissingKey { topic }) => assert!(topic.contains("standalone"), "{topic}"),
        other => panic!("expected MissingKey, got {other:?}"),
    }
    // Turning the requirement off (a topic altered to `delete`) takes effect at once.
    log.set_config(topiclog::LogConfig {
        cleanup_policy: CleanupPolicy::Delete,
        ..log.config()
    })
    .unwrap();
    assert_eq!(log.append(Record::new("no key")).unwrap(), 0);
}
