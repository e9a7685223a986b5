//! topiclog writes, Kafka's decoders read: logs written through topiclog's public API, decoded
//! from disk by kafka-protocol and by the independent header parser, every field compared with
//! what was appended and with what topiclog's own reads return.

use std::sync::Arc;
use std::time::Duration;

use topiclog::{
    Bytes, CleanupPolicy, CompactionPolicy, LogConfig, ManualClock, Partition, ProducerBatch,
    ProducerConfig, Record, TimestampType, TopicConfig,
};

use crate::common::{manual_store_options, record_views, small_log, RecordView};
use crate::disk::{self, kafka_decode_batch, kafka_decode_log};
use crate::expect::{assert_disk_matches, open_partition, Appended, NOW_MS};
use crate::spec;

/// One batch with every kind of field Kafka's record has: headers with values, null values and
/// empty values; a null key, an empty key; an empty value, a tombstone; timestamps out of order
/// (negative timestamp deltas, a base timestamp that is not the smallest).
pub fn every_kind_of_record() -> Vec<Record> {
    vec![
        Record::new("v0")
            .with_key("k0")
            .with_timestamp(NOW_MS - 500)
            .with_header("h-value", Bytes::from_static(b"x"))
            .with_header("h-null", None::<Bytes>)
            .with_header("h-empty", Bytes::new())
            .with_header(
                "h-utf8-\u{e9}\u{4e2d}",
                Bytes::from_static(&[0, 0xff, 0x80]),
            ),
        Record::new("null key").with_timestamp(NOW_MS - 900),
        Record::new("")
            .with_key("empty value")
            .with_timestamp(NOW_MS - 100),
        Record::tombstone("k0").with_timestamp(NOW_MS - 100),
        Record::new("empty key").with_key("").with_timestamp(NOW_MS),
    ]
}

/// Append a mix of batches to `log` that rolls it several times (with 1 KiB segments):
/// every kind of record, records without a timestamp (they get the clock's time), multi-byte
/// length varints, a batch larger than a segment, and many small batches.
pub fn append_mixed_batches(log: &Partition, appended: &mut Appended, clock: &ManualClock) {
    appended.append(log, &every_kind_of_record());
    clock.advance(Duration::from_millis(7));
    appended.append(
        log,
        &[
            Record::new(vec![7u8; 300]).with_key(vec![1u8; 200]),
            Record::new(vec![8u8; 130]).with_header("h", Bytes::from(vec![9u8; 129])),
        ],
    );
    appended.append(
        log,
        &[Record::new(vec![5u8; 5000])
            .with_key("big")
            .with_timestamp(NOW_MS + 10)],
    );
    for i in 0..40u32 {
        clock.advance(Duration::from_millis(3));
        let n = 1 + (i % 3);
        let records: Vec<Record> = (0..n)
            .map(|j| {
                let mut r =
                    Record::new(format!("value-{i}-{j}")).with_key(format!("key-{}", i % 7));
                if j % 2 == 0 {
                    r = r.with_timestamp(NOW_MS + i64::from(i) * 10 - i64::from(j));
                }
                if i % 4 == 0 {
                    r = r.with_header(format!("h{j}"), Bytes::from(format!("hv{i}")));
                }
                r
            })
            .collect();
        appended.append(log, &records);
    }
}

#[test]
fn records_of_every_kind_decode_with_kafka_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open_partition(&tmp.path().join("p0"), small_log(1024, 64), &clock);
    let mut appended = Appended::default();
    append_mixed_batches(&log, &mut appended, &clock);
    assert!(log.segment_count() >= 4, "the test wants several segments");
    let segments = assert_disk_matches(&log, &appended);
    assert!(segments.len() >= 4);
    for s in &segments {
        let name = s.files.log_path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, format!("{:020}.log", s.files.base_offset));
    }
    // The same after a clean close and a reopen (which may rewrite nothing in the .log files).
    log.close().unwrap();
    let log = open_partition(&tmp.path().join("p0"), small_log(1024, 64), &clock);
    assert_disk_matches(&log, &appended);
    log.close().unwrap();
}

#[test]
fn log_append_time_batches_carry_the_append_time() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..small_log(1024, 64)
    };
    let log = open_partition(&tmp.path().join("p0"), config, &clock);
    let mut appended = Appended::default();
    append_mixed_batches(&log, &mut appended, &clock);
    let segments = assert_disk_matches(&log, &appended);
    for b in disk::all_batches(&segments) {
        assert!(
            b.raw.is_log_append_time(),
            "batch at {}: attributes bit 3 (timestamp type) must be set",
            b.raw.base_offset
        );
        for r in &b.kafka.records {
            assert_eq!(
                r.timestamp_type,
                kafka_protocol::records::TimestampType::LogAppend
            );
        }
    }
    log.close().unwrap();
}

#[test]
fn idempotent_batches_carry_producer_id_epoch_and_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open_partition(&tmp.path().join("p0"), small_log(1024, 64), &clock);
    let mut appended = Appended::default();
    let mut seq = 0;
    for i in 0..12 {
        let n = 1 + i % 4;
        let records: Vec<Record> = (0..n)
            .map(|j| Record::new(format!("p7-{i}-{j}")).with_key(format!("k{j}")))
            .collect();
        let batch = ProducerBatch {
            producer_id: 7,
            epoch: 3,
            base_sequence: seq,
        };
        appended.append_idempotent(&log, &records, batch);
        // A retry of the same batch is a duplicate: nothing is written.
        if i == 5 {
            let again = log
                .append_idempotent(&records, batch, topiclog::Durability::None)
                .unwrap();
            assert!(again.duplicate);
        }
        seq += n;
        // Another producer and a plain append in between.
        if i % 3 == 0 {
            appended.append_idempotent(
                &log,
                &[Record::new(format!("p1234567890123-{i}"))],
                ProducerBatch {
                    producer_id: 1_234_567_890_123,
                    epoch: i16::MAX,
                    base_sequence: i / 3,
                },
            );
            appended.append(&log, &[Record::new("plain").with_key("plain")]);
        }
        clock.advance(Duration::from_millis(1));
    }
    assert!(log.segment_count() >= 2);
    assert_disk_matches(&log, &appended);
    log.close().unwrap();
}

#[test]
fn producer_with_idempotence_writes_its_id_epoch_and_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let store = topiclog::Store::open_with(tmp.path(), manual_store_options()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            idempotent: true,
            ..ProducerConfig::default()
        })
        .unwrap();
    let mut handles = Vec::new();
    for round in 0..5 {
        for i in 0..20 {
            let r = Record::new(format!("v{round}-{i}"))
                .with_key(format!("key{i}"))
                .with_header("round", Bytes::from(format!("{round}")));
            handles.push((r.clone(), producer.send("t", r).unwrap()));
        }
        producer.flush().unwrap();
    }
    let pid = producer
        .producer_id()
        .expect("an idempotent producer has an id");
    assert!(pid >= 0);
    let mut sent: Vec<Vec<(u64, Record)>> = vec![Vec::new(); 2];
    for (r, h) in handles {
        let meta = h.wait().unwrap();
        sent[meta.partition as usize].push((meta.offset, r));
    }
    producer.close().unwrap();
    // The store preallocates its active segments: read the files once it is closed.
    let mut dirs = Vec::new();
    let mut read_back = Vec::new();
    for p in 0..2 {
        let partition = topic.partition(p).unwrap();
        dirs.push(partition.dir().to_path_buf());
        read_back.push(record_views(&partition, 0));
    }
    drop(topic);
    store.close().unwrap();
    for (p, sent) in sent.iter_mut().enumerate() {
        sent.sort_by_key(|(o, _)| *o);
        let segments = disk::decode_dir(&dirs[p]);
        let decoded = disk::kafka_data_records(&segments);
        assert_eq!(decoded, read_back[p], "partition {p}");
        assert_eq!(decoded.len(), sent.len(), "partition {p}");
        for (d, (offset, r)) in decoded.iter().zip(sent.iter()) {
            assert_eq!(d.offset, *offset);
            assert_eq!(d.key.as_deref(), r.key().map(|k| &k[..]));
            assert_eq!(d.value.as_deref(), r.value().map(|v| &v[..]));
        }
        // Kafka's idempotence rules: one producer id and epoch; each batch's base sequence
        // continues the previous batch's last sequence (per partition, from 0); every record's
        // sequence is the base sequence plus its offset delta.
        let mut next_seq = 0i32;
        let mut epoch = None;
        for b in disk::all_batches(&segments) {
            let raw = &b.raw;
            assert_eq!(raw.producer_id, pid, "partition {p}: producer id");
            assert!(raw.producer_epoch >= 0, "partition {p}: producer epoch");
            assert_eq!(*epoch.get_or_insert(raw.producer_epoch), raw.producer_epoch);
            assert_eq!(raw.base_sequence, next_seq, "partition {p}: base sequence");
            for r in &b.kafka.records {
                assert_eq!(
                    r.sequence,
                    raw.base_sequence + (r.offset - raw.base_offset) as i32
                );
            }
            next_seq = raw.base_sequence + raw.last_offset_delta + 1;
            assert_eq!(raw.partition_leader_epoch, 0);
            assert!(!raw.is_transactional() && !raw.is_control());
        }
    }
}

#[test]
fn compacted_log_decodes_and_matches_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..small_log(1024, 64)
    };
    let log = open_partition(&tmp.path().join("p0"), config, &clock);
    let mut appended = Appended::default();
    for i in 0..120u32 {
        let key = format!("key-{}", i % 9);
        let r = if i % 13 == 5 {
            Record::tombstone(key.clone())
        } else {
            Record::new(format!("value-{i}")).with_key(key.clone())
        };
        let r = r.with_header(format!("h{}", i % 2), Bytes::from(format!("{i}")));
        if i % 5 == 0 {
            // An idempotent batch of two records.
            appended.append_idempotent(
                &log,
                &[
                    r,
                    Record::new(format!("second-{i}")).with_key(format!("key-{}", (i + 4) % 9)),
                ],
                ProducerBatch {
                    producer_id: 99,
                    epoch: 0,
                    base_sequence: (i / 5 * 2) as i32,
                },
            );
        } else {
            appended.append(&log, &[r]);
        }
        clock.advance(Duration::from_millis(2));
    }
    assert!(log.segment_count() >= 4);
    let policy = CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    };
    let report = log.compact(clock_now(&clock), &policy).unwrap();
    assert!(report.cleaned && report.records_removed > 0, "{report:?}");
    check_compacted(&log, &appended);
    // A second pass, past the delete retention: the tombstones go too.
    clock.advance(policy.delete_retention + Duration::from_secs(1));
    log.append(Record::new("roll").with_key("key-0")).unwrap();
    let report = log.compact(clock_now(&clock), &policy).unwrap();
    assert!(report.cleaned, "{report:?}");
    let segments = check_compacted(&log, &appended);
    // Compaction keeps producer fields: a batch with records of producer 99 still says so.
    for b in disk::all_batches(&segments) {
        if b.kafka
            .records
            .iter()
            .any(|r| r.value.as_ref().is_some_and(|v| v.starts_with(b"second-")))
        {
            assert_eq!(b.raw.producer_id, 99, "batch at {}", b.raw.base_offset);
        }
    }
    log.close().unwrap();
}

fn clock_now(clock: &ManualClock) -> i64 {
    use topiclog::Clock;
    clock.now_ms()
}

/// A compacted log: Kafka's decoders read every segment, see what topiclog's reads return, and
/// every record they see is the one appended at that offset.
fn check_compacted(log: &Partition, appended: &Appended) -> Vec<disk::DecodedSegment> {
    let segments = disk::decode_dir(log.dir());
    crate::expect::assert_reads_return_disk_batches(log, &segments);
    let decoded = disk::kafka_data_records(&segments);
    let read_back = record_views(log, log.start_offset());
    assert_eq!(decoded, read_back, "kafka-protocol vs topiclog's reads");
    let by_offset: std::collections::HashMap<u64, &RecordView> =
        appended.records.iter().map(|r| (r.offset, r)).collect();
    let mut removed = 0;
    for d in decoded.iter() {
        if let Some(want) = by_offset.get(&d.offset) {
            assert_eq!(&d, want, "record at {} after compaction", d.offset);
        }
    }
    for r in &appended.records {
        if !decoded.iter().any(|d| d.offset == r.offset) {
            removed += 1;
        }
    }
    assert!(removed > 0, "compaction removed records");
    for b in disk::all_batches(&segments) {
        assert!(!b.raw.is_transactional() && !b.raw.is_control());
        assert_eq!(b.raw.partition_leader_epoch, 0);
        if b.raw.producer_id == -1 {
            assert_eq!((b.raw.producer_epoch, b.raw.base_sequence), (-1, -1));
        }
    }
    segments
}

#[test]
fn kafka_protocol_rejects_a_corrupted_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open_partition(&tmp.path().join("p0"), small_log(1 << 20, 4096), &clock);
    let mut appended = Appended::default();
    appended.append(&log, &every_kind_of_record());
    appended.append(&log, &[Record::new("second batch").with_key("k")]);
    log.close().unwrap();
    let files = disk::segment_files(&tmp.path().join("p0"));
    let bytes = &files[0].log;
    assert_eq!(kafka_decode_log(bytes).unwrap().len(), 2);
    let first = spec::RawBatch::parse(bytes).unwrap();
    let len = first.bytes.len();
    // Every byte the CRC covers (attributes to the end): one flipped bit and kafka-protocol says
    // the CRC failed. (Proves CRC checking is on: the corrupt batches are otherwise decodable.)
    for pos in spec::ATTRIBUTES_OFFSET..len {
        let mut copy = first.bytes.clone();
        copy[pos] ^= 0x10;
        let err = kafka_decode_batch(&copy).expect_err(&format!("byte {pos} flipped"));
        assert!(
            err.contains("Cyclic redundancy check failed"),
            "byte {pos} flipped: {err}"
        );
    }
    // Fixing the CRC makes the same damage decodable for kafka-protocol (for a byte in a value),
    // so it was the CRC check that refused it.
    let mut copy = first.bytes.clone();
    copy[len - 3] ^= 0x10;
    spec::fix_crc(&mut copy);
    kafka_decode_batch(&copy).unwrap();
    // Kafka's CRC does not cover the base offset, length, partition leader epoch or magic:
    // a broker rewrites the leader epoch in place (`setPartitionLeaderEpoch`) and the batch stays valid.
    let mut copy = first.bytes.clone();
    spec::set_partition_leader_epoch(&mut copy, 77);
    let set = kafka_decode_batch(&copy).unwrap();
    assert_eq!(set.records[0].partition_leader_epoch, 77);
    // And a corrupted copy of the whole file is refused at the damaged batch.
    let mut file = bytes.clone();
    file[len + spec::RECORDS_OFFSET + 2] ^= 1;
    assert!(kafka_decode_log(&file).is_err());
}

#[test]
fn preallocated_segments_hold_only_batches_once_closed() {
    // Kafka (log.preallocate) trims a preallocated segment when it is rolled or closed: a .log
    // holds nothing but batches, so Kafka's reader meets no zero tail.
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let config = LogConfig {
        preallocate: true,
        ..small_log(1024, 64)
    };
    let log = open_partition(&tmp.path().join("p0"), config, &clock);
    let mut appended = Appended::default();
    append_mixed_batches(&log, &mut appended, &clock);
    log.close().unwrap();
    let segments = disk::decode_dir(&tmp.path().join("p0"));
    assert_eq!(disk::kafka_data_records(&segments), appended.records);
    crate::expect::assert_batch_headers(&segments, &appended);
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
fn kafka_increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

#[test]
fn idempotent_sequences_wrap_like_kafka() {
    // DefaultRecordBatchTest.buildDefaultRecordBatchWithSequenceWrapAround: base sequence
    // i32::MAX - 1 and three records make the last sequence 0; the next batch starts at 1.
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open_partition(&tmp.path().join("p0"), small_log(1 << 20, 4096), &clock);
    let mut appended = Appended::default();
    let p = |base_sequence| ProducerBatch {
        producer_id: 23423,
        epoch: 145,
        base_sequence,
    };
    let three: Vec<Record> = ["a", "b", "c"].iter().map(|v| Record::new(*v)).collect();
    appended.append_idempotent(&log, &three, p(i32::MAX - 1));
    assert_eq!(kafka_increment_sequence(i32::MAX - 1, 2), 0);
    let retry = log
        .append_idempotent(&three, p(i32::MAX - 1), topiclog::Durability::None)
        .unwrap();
    assert!(
        retry.duplicate,
        "a retry of the wrapping batch is a duplicate"
    );
    appended.append_idempotent(&log, &[Record::new("d")], p(1));
    let segments = assert_disk_matches(&log, &appended);
    let batches: Vec<_> = disk::all_batches(&segments).collect();
    assert_eq!(batches[0].raw.base_sequence, i32::MAX - 1);
    assert_eq!(
        kafka_increment_sequence(
            batches[0].raw.base_sequence,
            batches[0].raw.last_offset_delta
        ),
        0
    );
    assert_eq!(batches[1].raw.base_sequence, 1);
    log.close().unwrap();
}
