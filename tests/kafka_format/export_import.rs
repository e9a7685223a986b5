//! `Store::export_kafka` and `Store::import_kafka` against the independent decoders: an export is
//! a Kafka log directory whose every file Kafka's layout describes, and an import of batches
//! built by kafka-protocol reads back like Kafka.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::records::Compression as KafkaCompression;
use topiclog::{
    Bytes, CleanupPolicy, CompactionPolicy, Durability, Error, KafkaImportOptions, LogOverrides,
    ProducerBatch, Record, Store, StoreOptions, TopicConfig,
};

use crate::common::{record_views, small_log, RecordView};
use crate::disk::{self, DecodedSegment};
use crate::expect::NOW_MS;
use crate::kafka_batches::{control_batch, empty_batch, rec, BatchSpec};
use crate::read_side::{assert_reads, expected_of, varied_batches};
use crate::spec;
use crate::write_side::every_kind_of_record;

/// A Kafka log-directory checkpoint file (`CheckpointFile`): version 0, an entry count, then
/// `topic partition offset` lines.
fn read_offset_checkpoint(path: &Path) -> BTreeMap<(String, u32), u64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{}: version", path.display());
    let count: usize = lines.next().unwrap().parse().unwrap();
    let entries: BTreeMap<(String, u32), u64> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{}: line {l:?}", path.display());
            (
                (f[0].to_owned(), f[1].parse().unwrap()),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(entries.len(), count, "{}: entry count", path.display());
    assert!(
        text.ends_with('\n'),
        "{}: lines end with a newline",
        path.display()
    );
    entries
}

/// The index files of every segment follow Kafka's rules (see `indexes`): whole big-endian
/// entries, offset entries at batch starts naming the batch's last offset, time entries strictly
/// increasing at the batch that first reached them.
fn assert_kafka_indexes(segments: &[DecodedSegment]) {
    for s in segments {
        let what = s.files.log_path.display().to_string();
        let index = s
            .files
            .index
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no .index"));
        for (rel, pos) in spec::parse_offset_index(index).unwrap() {
            let b = s.batches.iter().find(|b| b.position == pos as usize);
            let b =
                b.unwrap_or_else(|| panic!("{what}: index entry ({rel}, {pos}) not at a batch"));
            assert_eq!(
                s.files.base_offset as i64 + i64::from(rel),
                b.raw.last_offset(),
                "{what}: index entry at {pos}"
            );
        }
        let time_index = s
            .files
            .time_index
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no .timeindex"));
        let mut prev = i64::MIN;
        for (ts, rel) in spec::parse_time_index(time_index).unwrap() {
            assert!(ts > prev, "{what}: time index timestamps must increase");
            prev = ts;
            let offset = s.files.base_offset as i64 + i64::from(rel);
            let b = s
                .batches
                .iter()
                .find(|b| b.raw.last_offset() == offset)
                .unwrap_or_else(|| {
                    panic!("{what}: time entry ({ts}, {offset}) not a batch's last offset")
                });
            assert_eq!(
                b.raw.max_timestamp, ts,
                "{what}: time entry ({ts}, {offset})"
            );
        }
    }
}

#[test]
fn an_export_is_a_kafka_log_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        tmp.path().join("store"),
        StoreOptions {
            log: small_log(1024, 100),
            background_maintenance: false,
            background_cleaner: false,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let orders = store
        .create_topic("orders", TopicConfig::with_partitions(2))
        .unwrap();
    for p in 0..2 {
        let partition = orders.partition(p).unwrap();
        partition.append_batch(&every_kind_of_record()).unwrap();
        for i in 0..30 {
            let r = Record::new(format!("order {i} on {p}"))
                .with_key(format!("order-{i}"))
                .with_header("source", Bytes::from_static(b"test"));
            partition
                .append_idempotent(
                    &[r],
                    ProducerBatch {
                        producer_id: 3,
                        epoch: 0,
                        base_sequence: i,
                    },
                    Durability::None,
                )
                .unwrap();
        }
    }
    let compacted = store
        .create_topic(
            "state",
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    cleanup_policy: Some(CleanupPolicy::Compact),
                    ..LogOverrides::default()
                },
            },
        )
        .unwrap();
    let state = compacted.partition(0).unwrap();
    for i in 0..80 {
        state
            .append(Record::new(format!("v{i}")).with_key(format!("k{}", i % 6)))
            .unwrap();
    }
    let policy = CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    };
    assert!(state.compact(NOW_MS, &policy).unwrap().cleaned);
    let dest = tmp.path().join("kafka-logs");
    let report = store.export_kafka(&dest, &[]).unwrap();

    let recovery = read_offset_checkpoint(&dest.join("recovery-point-offset-checkpoint"));
    let log_start = read_offset_checkpoint(&dest.join("log-start-offset-checkpoint"));
    let replication = read_offset_checkpoint(&dest.join("replication-offset-checkpoint"));
    for (topic, partitions) in [("orders", 2), ("state", 1)] {
        let t = store.topic(topic).unwrap();
        for p in 0..partitions {
            let partition = t.partition(p).unwrap();
            let key = (topic.to_owned(), p);
            let exported = &report.partitions[&key];
            let dir = dest.join(format!("{topic}-{p}"));
            assert_eq!(exported.dir, dir);
            let segments = disk::decode_dir(&dir);
            let want = record_views(&partition, partition.start_offset());
            assert_eq!(disk::kafka_data_records(&segments), want, "{topic}-{p}");
            assert_kafka_indexes(&segments);
            let end = partition.end_offset();
            assert_eq!(exported.end_offset, end);
            assert_eq!(recovery[&key], end, "{topic}-{p}: recovery point");
            assert_eq!(replication[&key], end, "{topic}-{p}: high watermark");
            assert_eq!(
                log_start[&key],
                partition.start_offset(),
                "{topic}-{p}: log start"
            );
            // The last batch ends where the log ends.
            let last = disk::all_batches(&segments).last().unwrap();
            assert_eq!(last.raw.last_offset() + 1, end as i64, "{topic}-{p}");
            // leader-epoch-checkpoint (LeaderEpochCheckpointFile): version 0, a count, then
            // `epoch start-offset` lines; every batch carries the epoch in force at its offset.
            let text = std::fs::read_to_string(dir.join("leader-epoch-checkpoint")).unwrap();
            let mut lines = text.lines();
            assert_eq!(
                lines.next(),
                Some("0"),
                "{topic}-{p}: leader epoch checkpoint version"
            );
            let count: usize = lines.next().unwrap().parse().unwrap();
            let epochs: Vec<(i32, i64)> = lines
                .map(|l| {
                    let (e, o) = l.split_once(' ').unwrap();
                    (e.parse().unwrap(), o.parse().unwrap())
                })
                .collect();
            assert_eq!(epochs.len(), count);
            for b in disk::all_batches(&segments) {
                let in_force = epochs
                    .iter()
                    .rev()
                    .find(|(_, start)| *start <= b.raw.base_offset)
                    .map(|(e, _)| *e);
                if let Some(e) = in_force {
                    assert_eq!(
                        b.raw.partition_leader_epoch, e,
                        "{topic}-{p}: batch at {}",
                        b.raw.base_offset
                    );
                }
            }
        }
    }
    store.close().unwrap();
}

#[test]
fn an_import_of_kafka_batches_reads_like_kafka() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("kafka-logs");
    // orders-0: every kind of batch (producer 42 wrote sequences 0..=4); orders-1: what Kafka's
    // cleaner and leader changes leave (gaps, an empty batch, epochs) and a committed transaction.
    let varied = varied_batches(KafkaCompression::None);
    let compacted = vec![
        BatchSpec::new(
            0,
            vec![
                rec(NOW_MS, Some(b"k0"), Some(b"v0")),
                rec(NOW_MS + 2, Some(b"k2"), Some(b"v2")),
            ],
        )
        .offset_deltas(&[0, 2], 3)
        .leader_epoch(1),
        BatchSpec::new(5, vec![rec(NOW_MS + 5, Some(b"k5"), Some(b"v5"))])
            .producer(9, 0, 0)
            .transactional()
            .leader_epoch(2),
        control_batch(6, 9, 0, true, NOW_MS + 6).leader_epoch(2),
    ];
    let mut compacted_bytes: Vec<Vec<u8>> = compacted.iter().map(BatchSpec::encode).collect();
    compacted_bytes.push(empty_batch(7, 8, NOW_MS + 8));
    let tail = BatchSpec::new(9, vec![rec(NOW_MS + 9, Some(b"k9"), Some(b"v9"))]).leader_epoch(2);
    compacted_bytes.push(tail.encode());
    for (p, batches) in [
        (0, varied.iter().map(BatchSpec::encode).collect::<Vec<_>>()),
        (1, compacted_bytes),
    ] {
        let dir = src.join(format!("orders-{p}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), batches.concat()).unwrap();
    }
    let store = Store::open(tmp.path().join("store")).unwrap();
    // Kafka leaves gaps only by compaction: as a topic that does not compact (the default),
    // orders-1 is a log with records missing, and the import refuses it.
    match store.import_kafka(&src, &[]) {
        Err(Error::KafkaLogDir { path, .. }) => {
            assert!(path.starts_with(src.join("orders-1")), "{}", path.display())
        }
        other => panic!("{other:?}"),
    }
    assert!(
        store.topic("orders").is_err(),
        "a failed import leaves no topic"
    );
    let mut options = KafkaImportOptions::default();
    options.overrides.cleanup_policy = Some(CleanupPolicy::Compact);
    let report = store.import_kafka_with(&src, &[], &options).unwrap();
    assert_eq!(report.topics, ["orders"]);
    let orders = store.topic("orders").unwrap();
    assert_eq!(orders.partition_count(), 2);

    let p0 = orders.partition(0).unwrap();
    assert_reads(&p0, &expected_of(&varied), 11);
    let mut p1_expected: Vec<RecordView> = expected_of(&compacted);
    p1_expected.extend(expected_of(std::slice::from_ref(&tail)));
    let p1 = orders.partition(1).unwrap();
    assert_reads(&p1, &p1_expected, 10);

    // The import rebuilds the idempotent producers' state from the batches, as Kafka does
    // without snapshots: a retry of producer 42's last batch (sequences 2..=4) is a duplicate.
    let retry = p0
        .append_idempotent(
            &[
                Record::new("x").with_key("p"),
                // (A compacted topic takes keyed records only.)
                Record::new("y").with_key("r"),
                Record::new("z").with_key("q"),
            ],
            ProducerBatch {
                producer_id: 42,
                epoch: 1,
                base_sequence: 2,
            },
            Durability::None,
        )
        .unwrap();
    assert!(retry.duplicate, "{retry:?}");
    assert_eq!((retry.base_offset, retry.last_offset), (8, 10));
    // Appends continue after Kafka's end, in Kafka's format.
    assert_eq!(p1.append(Record::new("next").with_key("n")).unwrap(), 10);
    p1_expected.extend(record_views(&p1, 10));
    drop((p0, p1, orders));
    store.close().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let p1 = store.topic("orders").unwrap().partition(1).unwrap();
    assert_reads(&p1, &p1_expected, 11);
    store.close().unwrap();
}
