//! Kafka's encoder writes, topiclog reads: batches built by kafka-protocol written as
//! `00000000000000000000.log` in an empty directory (no index files, no checkpoint: what a Kafka
//! partition directory holds), opened with `Partition::open`, read back whole.

use std::path::Path;

use kafka_protocol::records::Compression;
use topiclog::{CleanupPolicy, Durability, LogConfig, Partition, ProducerBatch, Record};

use crate::common::{record_views, RecordView};
use crate::disk;
use crate::expect::NOW_MS;
use crate::kafka_batches::{control_batch, empty_batch, rec, BatchSpec};
use crate::spec;

/// How Kafka's segment files are handed to topiclog.
#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// Kafka's files in place of the segments of an empty topiclog partition that then crashed:
    /// its checkpoint says nothing is durable yet, so open rescans (validates) them.
    AfterCrash,
    /// Kafka's files alone in a fresh directory: adopting a Kafka partition directory.
    Bare,
}

/// Both layouts, the one that needs no adoption first (so a refusal to adopt does not hide
/// what reading Kafka's batches does).
pub const LAYOUTS: [Layout; 2] = [Layout::AfterCrash, Layout::Bare];

/// Write segments `(base offset, bytes)` as a partition directory laid out as `layout` says.
pub fn write_kafka_segments(dir: &Path, segments: &[(u64, Vec<u8>)], layout: Layout) {
    std::fs::create_dir_all(dir).unwrap();
    if let Layout::AfterCrash = layout {
        Partition::open(dir).unwrap().close().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "checkpoint" {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
    for (base, bytes) in segments {
        std::fs::write(dir.join(format!("{base:020}.log")), bytes).unwrap();
    }
}

/// Write `batches` (already encoded) as the first segment, `00000000000000000000.log`.
pub fn write_kafka_log(dir: &Path, batches: &[Vec<u8>], layout: Layout) {
    write_kafka_segments(dir, &[(0, batches.concat())], layout);
}

/// Open a directory written by [`write_kafka_segments`].
pub fn open_kafka_dir(dir: &Path, layout: Layout) -> Partition {
    Partition::open(dir).unwrap_or_else(|e| {
        panic!("{layout:?}: topiclog refuses a partition directory holding Kafka's .log files: {e}")
    })
}

/// Open a directory written by [`write_kafka_segments`] as a compacted topic's partition (Kafka
/// leaves gaps in the offsets only by compaction); first check that as a partition of a topic
/// that does not compact it is refused as damage.
pub fn open_compacted_kafka_dir(dir: &Path, layout: Layout) -> Partition {
    match Partition::open(dir) {
        Err(topiclog::Error::Corrupt { .. }) => {}
        Ok(log) => panic!(
            "{layout:?}: a log with gaps opened as a topic that does not compact, end {}",
            log.end_offset()
        ),
        Err(e) => panic!("{layout:?}: {e}"),
    }
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    };
    Partition::open_with(dir, config).unwrap_or_else(|e| {
        panic!("{layout:?}: topiclog refuses a compacted Kafka partition directory: {e}")
    })
}

/// Every record of `log`, and that reads at each offset from the start to the end return what a
/// Kafka fetch would: the first record at or after it.
pub fn assert_reads(log: &Partition, expected: &[RecordView], end: u64) {
    assert_eq!(log.end_offset(), end, "end offset");
    assert_eq!(record_views(log, 0), expected, "records read back");
    for offset in 0..end {
        // As a consumer: read, and past a batch without records here (an empty batch), go on.
        let mut next = offset;
        let mut first = None;
        while next < end {
            let batches = log.read(next, 1).unwrap();
            if let Some(r) = batches.records().next() {
                first = Some(r.offset());
                break;
            }
            assert!(
                batches.next_offset() > next,
                "a read at {next} must move on"
            );
            next = batches.next_offset();
        }
        let want = expected
            .iter()
            .find(|r| r.offset >= offset)
            .map(|r| r.offset);
        assert_eq!(first, want, "first record read at offset {offset}");
    }
}

/// The records of `specs`, as a consumer reads them.
pub fn expected_of(specs: &[BatchSpec]) -> Vec<RecordView> {
    specs.iter().flat_map(BatchSpec::expected).collect()
}

/// Batches of every kind of field kafka-protocol can write, at offsets 0..11.
pub fn varied_batches(compression: Compression) -> Vec<BatchSpec> {
    vec![
        BatchSpec::new(
            0,
            vec![
                rec(NOW_MS, Some(b"a"), Some(b"1"))
                    .header("x", Some(b"y"))
                    .header("null", None)
                    .header("empty", Some(b"")),
                rec(NOW_MS - 5, None, Some(b"null key")),
                rec(NOW_MS + 3, Some(b"c"), None),
            ],
        ),
        BatchSpec::new(
            3,
            vec![
                rec(NOW_MS + 10, Some(b"p"), Some(b"idempotent 0")),
                rec(NOW_MS + 11, Some(b"q"), Some(b"idempotent 1")),
            ],
        )
        .producer(42, 1, 0),
        BatchSpec::new(
            5,
            vec![
                rec(NOW_MS + 20, Some(b"l"), Some(b"log append 0")),
                rec(NOW_MS + 15, Some(b"m"), Some(b"log append 1")),
            ],
        )
        .log_append_time(NOW_MS + 1000),
        BatchSpec::new(7, vec![rec(NOW_MS + 30, Some(b""), Some(b""))]),
        BatchSpec::new(
            8,
            vec![
                rec(NOW_MS + 40, Some(b"p"), Some(&[0xffu8; 300]))
                    .header("h\u{e9}", Some(&[1u8; 200])),
                rec(NOW_MS + 41, None, None),
                rec(NOW_MS + 42, Some(&[0u8; 150]), Some(b"z")),
            ],
        )
        .producer(42, 1, 2),
    ]
    .into_iter()
    .map(|b| b.compression(compression))
    .collect()
}

/// Write the varied batches with `compression` and read them back through topiclog.
pub fn varied_batches_read_back(compression: Compression) {
    let specs = varied_batches(compression);
    let encoded: Vec<Vec<u8>> = specs.iter().map(BatchSpec::encode).collect();
    // kafka-protocol reads its own batches back (a sanity check of the fixture).
    assert_eq!(
        disk::kafka_decode_log(&encoded.concat()).unwrap().len(),
        specs.len()
    );
    for layout in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_log(&dir, &encoded, layout);
        let expected = expected_of(&specs);
        let log = open_kafka_dir(&dir, layout);
        assert_reads(&log, &expected, 11);
        // Appends continue after Kafka's batches, and the log is still Kafka's format.
        let next = log.append(Record::new("after").with_key("k")).unwrap();
        assert_eq!(next, 11, "{layout:?}");
        log.close().unwrap();
        let log = open_kafka_dir(&dir, layout);
        assert_eq!(log.end_offset(), 12, "{layout:?}");
        let mut expected = expected;
        expected.push(record_views(&log, 11).remove(0));
        assert_reads(&log, &expected, 12);
        log.close().unwrap();
        let segments = disk::decode_dir(&dir);
        assert_eq!(disk::kafka_data_records(&segments), expected, "{layout:?}");
        // The rebuilt indexes are Kafka's: whole entries pointing at batch starts.
        for s in &segments {
            let index = s.files.index.as_ref().expect("an .index was built");
            for (rel, pos) in spec::parse_offset_index(index).unwrap() {
                let b = s.batches.iter().find(|b| b.position == pos as usize);
                let b = b.unwrap_or_else(|| panic!("index entry ({rel}, {pos}) not at a batch"));
                let offset = s.files.base_offset as i64 + i64::from(rel);
                assert!(b.raw.base_offset <= offset && offset <= b.raw.last_offset());
            }
            let time_index = s.files.time_index.as_ref().expect("a .timeindex was built");
            spec::parse_time_index(time_index).unwrap();
        }
    }
}

#[test]
fn kafka_encoded_batches_read_back_identically() {
    varied_batches_read_back(Compression::None);
}

#[test]
fn adopted_log_keeps_idempotent_producer_state() {
    // Only a bare Kafka directory: an emptied topiclog partition's checkpoint says no producer
    // ever wrote there.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p0");
    let specs = varied_batches(Compression::None);
    let encoded: Vec<Vec<u8>> = specs.iter().map(BatchSpec::encode).collect();
    write_kafka_log(&dir, &encoded, Layout::Bare);
    let log = open_kafka_dir(&dir, Layout::Bare);
    // Producer 42 (epoch 1) wrote sequences 0..=4 (batches at 3 and 8): a retry of its last batch
    // is a duplicate, as Kafka's producer state rebuilt from the log says.
    let last = [
        Record::new("x").with_key("p"),
        Record::new("y"),
        Record::new("z").with_key("q"),
    ];
    let retry = log
        .append_idempotent(
            &last,
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
    let next = log
        .append_idempotent(
            &[Record::new("next")],
            ProducerBatch {
                producer_id: 42,
                epoch: 1,
                base_sequence: 5,
            },
            Durability::None,
        )
        .unwrap();
    assert!(!next.duplicate);
    assert_eq!(next.base_offset, 11);
    log.close().unwrap();
}

/// A transaction: two records, then the marker, then a plain batch.
fn transaction(commit: bool) -> Vec<BatchSpec> {
    vec![
        BatchSpec::new(
            0,
            vec![
                rec(NOW_MS, Some(b"t1"), Some(b"in txn 1")),
                rec(NOW_MS + 1, Some(b"t2"), Some(b"in txn 2")),
            ],
        )
        .producer(9, 0, 0)
        .transactional(),
        control_batch(2, 9, 0, commit, NOW_MS + 2),
        BatchSpec::new(3, vec![rec(NOW_MS + 3, Some(b"after"), Some(b"plain"))]),
    ]
}

#[test]
fn transaction_markers_are_never_returned_as_records() {
    for layout in LAYOUTS {
        for commit in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("p0");
            let specs = transaction(commit);
            let encoded: Vec<Vec<u8>> = specs.iter().map(BatchSpec::encode).collect();
            let marker = spec::RawBatch::parse(&encoded[1]).unwrap();
            assert!(marker.is_control() && marker.is_transactional());
            assert_eq!(marker.base_sequence, -1);
            write_kafka_log(&dir, &encoded, layout);
            let log = open_kafka_dir(&dir, layout);
            // Kafka's read_uncommitted consumer sees 0, 1 and 3 (the marker at 2 is skipped;
            // an aborted transaction's records are filtered only under read_committed).
            let mut expected = expected_of(&specs);
            assert_eq!(
                expected.iter().map(|r| r.offset).collect::<Vec<_>>(),
                [0, 1, 3]
            );
            assert_reads(&log, &expected, 4);
            assert_eq!(
                log.append(Record::new("next")).unwrap(),
                4,
                "{layout:?} commit={commit}"
            );
            expected.extend(record_views(&log, 4));
            assert_reads(&log, &expected, 5);
            log.close().unwrap();
        }
    }
}

#[test]
fn batches_with_offset_gaps_read_like_a_compacted_kafka_log() {
    // As Kafka's cleaner leaves them: a batch that lost records 1 and 3 but keeps its last
    // offset 3, a batch at 5, an empty batch covering 7..=9, and a batch at 10.
    let first = BatchSpec::new(
        0,
        vec![
            rec(NOW_MS, Some(b"k0"), Some(b"v0")),
            rec(NOW_MS + 2, Some(b"k2"), Some(b"v2")),
        ],
    )
    .offset_deltas(&[0, 2], 3);
    let second = BatchSpec::new(
        5,
        vec![
            rec(NOW_MS + 5, Some(b"k5"), Some(b"v5")),
            rec(NOW_MS + 6, Some(b"k6"), None),
        ],
    );
    let last = BatchSpec::new(10, vec![rec(NOW_MS + 10, Some(b"k10"), Some(b"v10"))]);
    let encoded = vec![
        first.encode(),
        second.encode(),
        empty_batch(7, 9, NOW_MS + 9),
        last.encode(),
    ];
    for b in &encoded {
        disk::kafka_decode_batch(b).unwrap();
    }
    let expected = expected_of(&[first, second, last]);
    assert_eq!(
        expected.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 2, 5, 6, 10]
    );
    // Only when adopting a Kafka directory: in a log topiclog wrote, batches follow each other
    // exactly (topiclog's compaction writes empty batches over what it drops) and a gap is damage.
    {
        let layout = Layout::Bare;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_log(&dir, &encoded, layout);
        let log = open_compacted_kafka_dir(&dir, layout);
        assert_reads(&log, &expected, 11);
        assert_eq!(log.append(Record::new("next").with_key("n")).unwrap(), 11);
        log.close().unwrap();
    }
}

#[test]
fn a_gap_between_segments_reads_like_kafka() {
    // Kafka's cleaner leaves gaps between segments too: here the first segment's last batch
    // ends at 4, the next segment is named 7 and its first batch starts at 8.
    let a = BatchSpec::new(2, vec![rec(NOW_MS, Some(b"a"), Some(b"a"))]);
    let b = BatchSpec::new(4, vec![rec(NOW_MS + 1, Some(b"b"), Some(b"b"))]);
    let c = BatchSpec::new(8, vec![rec(NOW_MS + 2, Some(b"c"), Some(b"c"))]);
    let segments = [(0, [a.encode(), b.encode()].concat()), (7, c.encode())];
    let expected = expected_of(&[a, b, c]);
    {
        let layout = Layout::Bare;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_segments(&dir, &segments, layout);
        let log = open_compacted_kafka_dir(&dir, layout);
        assert_reads(&log, &expected, 9);
        log.close().unwrap();
    }
}

#[test]
fn partition_leader_epochs_above_zero_read_like_kafka() {
    // Every Kafka broker stamps its leader epoch on the batches it appends (epochs only grow, and
    // the CRC leaves the field out): a real Kafka log has epochs above 0.
    let specs = vec![
        BatchSpec::new(0, vec![rec(NOW_MS, Some(b"a"), Some(b"epoch 0"))]),
        BatchSpec::new(1, vec![rec(NOW_MS + 1, Some(b"b"), Some(b"epoch 3"))]).leader_epoch(3),
        BatchSpec::new(2, vec![rec(NOW_MS + 2, Some(b"c"), Some(b"epoch 3"))]).leader_epoch(3),
    ];
    let encoded: Vec<Vec<u8>> = specs.iter().map(BatchSpec::encode).collect();
    let expected = expected_of(&specs);
    // Only when adopting a Kafka directory: topiclog writes epoch 0 and takes another epoch in
    // its own log as damage (the CRC does not cover the field).
    {
        let layout = Layout::Bare;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_log(&dir, &encoded, layout);
        let log = open_kafka_dir(&dir, layout);
        assert_reads(&log, &expected, 3);
        log.close().unwrap();
    }
}

/// Kafka's index entries for `batches` laid out from position 0: an offset entry (last offset,
/// position) and a time entry (max timestamp so far, last offset) for every batch but the first,
/// as `LogSegment.append` writes them with `index.interval.bytes` 0.
fn kafka_indexes(batches: &[Vec<u8>], base: i64) -> (Vec<u8>, Vec<u8>) {
    let mut index = Vec::new();
    let mut time_index = Vec::new();
    let mut pos = 0usize;
    let mut max_ts = i64::MIN;
    for (i, b) in batches.iter().enumerate() {
        let raw = spec::RawBatch::parse(b).unwrap();
        if i > 0 {
            index.extend_from_slice(&((raw.last_offset() - base) as i32).to_be_bytes());
            index.extend_from_slice(&(pos as i32).to_be_bytes());
        }
        if raw.max_timestamp > max_ts {
            max_ts = raw.max_timestamp;
            if i > 0 {
                time_index.extend_from_slice(&max_ts.to_be_bytes());
                time_index.extend_from_slice(&((raw.last_offset() - base) as i32).to_be_bytes());
            }
        }
        pos += b.len();
    }
    (index, time_index)
}

#[test]
fn a_kafka_directory_with_all_its_files_is_adopted() {
    // What a Kafka broker that stopped without a clean shutdown leaves: index files preallocated
    // with zeros past their entries, producer snapshots, the transaction index, the leader epoch
    // checkpoint and partition.metadata.
    let specs = varied_batches(Compression::None);
    let encoded: Vec<Vec<u8>> = specs.iter().map(BatchSpec::encode).collect();
    let (mut index, mut time_index) = kafka_indexes(&encoded, 0);
    index.resize(index.len() + 8 * 64, 0);
    time_index.resize(time_index.len() + 12 * 64, 0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    write_kafka_log(&dir, &encoded, Layout::Bare);
    let others: [(&str, &[u8]); 6] = [
        ("00000000000000000000.index", &index),
        ("00000000000000000000.timeindex", &time_index),
        ("00000000000000000000.txnindex", b""),
        ("00000000000000000011.snapshot", &[0, 1, 0, 0, 0, 0]),
        ("leader-epoch-checkpoint", b"0\n1\n0 0\n"),
        (
            "partition.metadata",
            b"version: 0\ntopic_id: 7AuZgmZsQ_-5PCpkYNv6GQ\n",
        ),
    ];
    for (name, bytes) in others {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let log = open_kafka_dir(&dir, Layout::Bare);
    let expected = expected_of(&specs);
    assert_reads(&log, &expected, 11);
    for ts in [NOW_MS - 10, NOW_MS + 12, NOW_MS + 41, NOW_MS + 1000] {
        let want = expected
            .iter()
            .find(|r| r.timestamp >= ts)
            .map(|r| r.offset);
        let got = log.offset_for_time(ts).unwrap().map(|t| t.offset);
        assert_eq!(got, want, "offset_for_time({ts})");
    }
    log.close().unwrap();
    let log = open_kafka_dir(&dir, Layout::Bare);
    assert_reads(&log, &expected, 11);
    log.close().unwrap();
    // Kafka's own files that topiclog has no use for stay as they were.
    for (name, bytes) in &others[2..] {
        assert_eq!(
            std::fs::read(dir.join(name)).ok().as_deref(),
            Some(*bytes),
            "{name} after adoption"
        );
    }
}
