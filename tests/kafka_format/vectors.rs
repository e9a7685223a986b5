//! Published test vectors: CRC-32C check values, Kafka's varint/varlong encodings
//! (`ByteUtilsTest.java`), batches written by a real Kafka 0.11 broker (kept as test data by
//! kafka-python, `test/record/test_records.py`) and a batch from sarama's `record_test.go`.
//! Each vector first validates the independent parser, then is checked against topiclog: the
//! varints in topiclog's own `.log` files, and topiclog reading the broker's bytes.

use std::sync::Arc;

use topiclog::{ManualClock, Record};

use crate::common::{small_log, RecordView};
use crate::disk::{self, kafka_decode_batch};
use crate::expect::{open_partition, Appended, NOW_MS};
use crate::read_side::{assert_reads, open_kafka_dir, write_kafka_log, Layout, LAYOUTS};
use crate::spec::{self, RawBatch};

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn crc32c_check_values() {
    // The CRC catalogue's check value for CRC-32C, and kafka-python's vectors (test_util.py).
    assert_eq!(spec::crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(spec::crc32c(b""), 0);
    assert_eq!(spec::crc32c(b"a"), 0xC1D0_4330);
}

/// `ByteUtilsTest.testVarintSerde` (value, encoding).
const VARINTS: &[(i32, &[u8])] = &[
    (0, &[0x00]),
    (-1, &[0x01]),
    (1, &[0x02]),
    (63, &[0x7E]),
    (-64, &[0x7F]),
    (64, &[0x80, 0x01]),
    (-65, &[0x81, 0x01]),
    (8191, &[0xFE, 0x7F]),
    (-8192, &[0xFF, 0x7F]),
    (8192, &[0x80, 0x80, 0x01]),
    (-8193, &[0x81, 0x80, 0x01]),
    (1048575, &[0xFE, 0xFF, 0x7F]),
    (-1048576, &[0xFF, 0xFF, 0x7F]),
    (1048576, &[0x80, 0x80, 0x80, 0x01]),
    (-1048577, &[0x81, 0x80, 0x80, 0x01]),
    (134217727, &[0xFE, 0xFF, 0xFF, 0x7F]),
    (-134217728, &[0xFF, 0xFF, 0xFF, 0x7F]),
    (134217728, &[0x80, 0x80, 0x80, 0x80, 0x01]),
    (-134217729, &[0x81, 0x80, 0x80, 0x80, 0x01]),
    (i32::MAX, &[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
    (i32::MIN, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
];

/// `ByteUtilsTest.testVarlongSerde` (value, encoding), beyond the int range.
const VARLONGS: &[(i64, &[u8])] = &[
    (17179869183, &[0xFE, 0xFF, 0xFF, 0xFF, 0x7F]),
    (-17179869184, &[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
    (17179869184, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
    (-17179869185, &[0x81, 0x80, 0x80, 0x80, 0x80, 0x01]),
    (2199023255551, &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
    (-2199023255552, &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
    (2199023255552, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
    (-2199023255553, &[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
    (281474976710655, &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
    (
        -281474976710656,
        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
    ),
    (
        281474976710656,
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    ),
    (
        -281474976710657,
        &[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    ),
    (
        36028797018963967,
        &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
    ),
    (
        -36028797018963968,
        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
    ),
    (
        i64::MAX,
        &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
    ),
    (
        i64::MIN,
        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
    ),
];

/// Every (value, encoding) pair, as varlongs (an int's varint is its varlong).
fn all_varlongs() -> Vec<(i64, Vec<u8>)> {
    VARINTS
        .iter()
        .map(|&(v, e)| (i64::from(v), e.to_vec()))
        .chain(VARLONGS.iter().map(|&(v, e)| (v, e.to_vec())))
        .collect()
}

#[test]
fn independent_varints_match_kafka_vectors() {
    for &(v, e) in VARINTS {
        let mut out = Vec::new();
        spec::write_varint(v, &mut out);
        assert_eq!(out, e, "varint {v}");
        let mut pos = 0;
        assert_eq!(spec::read_varint(e, &mut pos).unwrap(), v);
        assert_eq!(pos, e.len());
    }
    for (v, e) in all_varlongs() {
        let mut out = Vec::new();
        spec::write_varlong(v, &mut out);
        assert_eq!(out, e, "varlong {v}");
        let mut pos = 0;
        assert_eq!(spec::read_varlong(&e, &mut pos).unwrap(), v);
        assert_eq!(pos, e.len());
    }
    // ByteUtilsTest.testInvalidVarint / testInvalidVarlong: one byte too many.
    let mut pos = 0;
    assert!(spec::read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], &mut pos).is_err());
    let mut pos = 0;
    assert!(spec::read_varlong(
        &[0xFF; 10]
            .iter()
            .chain(&[0x01])
            .copied()
            .collect::<Vec<_>>(),
        &mut pos
    )
    .is_err());
}

/// The varlong Kafka writes for `v`, from the vectors (or the independent encoder for values
/// between them, which the vectors validated).
fn kafka_varlong(v: i64) -> Vec<u8> {
    if let Some((_, e)) = all_varlongs().into_iter().find(|(x, _)| *x == v) {
        return e;
    }
    let mut out = Vec::new();
    spec::write_varlong(v, &mut out);
    out
}

#[test]
fn topiclog_writes_kafka_varints() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open_partition(&tmp.path().join("p0"), small_log(1 << 30, 4096), &clock);
    let mut appended = Appended::default();
    // Timestamp deltas: a record at `base`, then one at `base + d` for every vector value d that
    // keeps the timestamp positive (whichever of the two the batch's base timestamp is, the
    // other's delta is ±d).
    let base = 1i64 << 49;
    let mut deltas_wanted = Vec::new();
    for (d, _) in all_varlongs() {
        if d.unsigned_abs() < (1 << 48) + 2 {
            deltas_wanted.push(d);
            appended.append(
                &log,
                &[
                    Record::new("t0").with_key("k").with_timestamp(base),
                    Record::new("t1").with_key("k").with_timestamp(base + d),
                ],
            );
        }
    }
    // Key lengths 0, 63, 64, 8191 and 8192 and a null key (-1).
    let key_lengths = [0usize, 63, 64, 8191, 8192];
    let keys: Vec<Record> = key_lengths
        .iter()
        .map(|&n| {
            Record::new("v")
                .with_key(vec![b'k'; n])
                .with_timestamp(NOW_MS)
        })
        .chain([Record::new("null key").with_timestamp(NOW_MS)])
        .collect();
    appended.append(&log, &keys);
    // Offset deltas up to 8192: one batch of 8193 records.
    let many: Vec<Record> = (0..8193)
        .map(|_| Record::new("").with_timestamp(NOW_MS))
        .collect();
    appended.append(&log, &many);

    let segments = crate::expect::assert_disk_matches(&log, &appended);
    let batches: Vec<_> = disk::all_batches(&segments).collect();
    let mut deltas_seen = Vec::new();
    for b in &batches {
        let section = b.raw.records_section();
        for r in b.raw.records().unwrap() {
            let ts = &section[r.timestamp_delta_bytes.clone()];
            assert_eq!(
                ts,
                kafka_varlong(r.timestamp_delta),
                "timestamp delta {}",
                r.timestamp_delta
            );
            deltas_seen.push(r.timestamp_delta.abs());
            let od = &section[r.offset_delta_bytes.clone()];
            assert_eq!(
                od,
                kafka_varlong(i64::from(r.offset_delta)),
                "offset delta {}",
                r.offset_delta
            );
            let key_len = r.key.as_ref().map_or(-1, |k| k.len() as i64);
            let kl = &section[r.key_length_bytes.clone()];
            assert_eq!(kl, kafka_varlong(key_len), "key length {key_len}");
            let mut pos = r.start;
            let _ = spec::read_varint(section, &mut pos).unwrap();
            assert_eq!(
                &section[r.start..pos],
                kafka_varlong(i64::from(r.length)),
                "record length"
            );
        }
    }
    for d in deltas_wanted {
        assert!(
            deltas_seen.contains(&d.abs()),
            "timestamp delta ±{d} was written"
        );
    }
    // The vectors that matter most, spelled out.
    let keyed = batches.iter().find(|b| b.raw.records_count == 6).unwrap();
    let section = keyed.raw.records_section();
    let key_varints: Vec<&[u8]> = keyed
        .raw
        .records()
        .unwrap()
        .iter()
        .map(|r| &section[r.key_length_bytes.clone()])
        .collect();
    assert_eq!(
        key_varints,
        [
            &[0x00][..],
            &[0x7E],
            &[0x80, 0x01],
            &[0xFE, 0x7F],
            &[0x80, 0x80, 0x01],
            &[0x01]
        ]
    );
    let big = batches
        .iter()
        .find(|b| b.raw.records_count == 8193)
        .unwrap();
    let section = big.raw.records_section();
    let records = big.raw.records().unwrap();
    for (i, want) in [
        (63, &[0x7E][..]),
        (64, &[0x80, 0x01]),
        (8191, &[0xFE, 0x7F]),
        (8192, &[0x80, 0x80, 0x01]),
    ] {
        assert_eq!(
            &section[records[i].offset_delta_bytes.clone()],
            want,
            "offset delta {i}"
        );
    }
    log.close().unwrap();
}

// ---- Batches written by a real Kafka 0.11 broker (kafka-python's test data) --------------------

/// Offset 0, value "123", no key, partition leader epoch 1.
const KAFKA_0_11_BATCH_0: &str = concat!(
    "00000000000000000000003b", // base offset, length
    "0000000102",               // leader epoch, magic
    "0318a270",                 // CRC
    "0000000000000000015dff7b063c0000015dff7b063cffffffffffffffffffffffffffff00000001",
    "12000000010631323300", // records
);
/// Offsets 1 and 2, empty values, leader epoch 2; the second record's timestamp delta is 168.
const KAFKA_0_11_BATCH_1: &str = concat!(
    "000000000000000100000040",
    "0000000202",
    "c85cbd23",
    "0000000000010000015dff7cdd6c0000015dff7cde14ffffffffffffffffffffffffffff00000002",
    "0c0000000100000e00d00202010000",
);
/// Offset 3, value "123", leader epoch 2.
const KAFKA_0_11_BATCH_3: &str = concat!(
    "00000000000000030000003b",
    "0000000202",
    "2e0b85b7",
    "0000000000000000015dff7ce79d0000015dff7ce79dffffffffffffffffffffffffffff00000001",
    "12000000010631323300",
);
/// Offset 0 of another log: value "hdr", header hkey=hval.
const KAFKA_HEADER_BATCH: &str = concat!(
    "000000000000000000000045",
    "0000000002",
    "5cd8ef52",
    "0000000000000000016585b6f3c10000016585b6f3c1ffffffffffffffffffffffffffff00000001",
    "2600000001066864720208686b6579086876616c",
);
/// sarama's "uncompressed record" (`record_test.go`): key 01020304, value 050607, header
/// key 08090a = 0b0c, timestamp 1479847795000 + 5, producer id/epoch/sequence 0.
pub const SARAMA_UNCOMPRESSED: &str = concat!(
    "000000000000000000000046",
    "0000000002",
    "547961fd",
    "000000000000000001588dcd59380000000000000000000000000000000000000000000000000001",
    "28000a00080102030406050607020608090a040b0c",
);

fn vector(s: &str) -> Vec<u8> {
    hex(&s.replace(' ', ""))
}

fn view(offset: u64, timestamp: i64, value: &[u8]) -> RecordView {
    RecordView {
        offset,
        timestamp,
        key: None,
        value: Some(value.to_vec()),
        headers: Vec::new(),
    }
}

#[test]
fn kafka_broker_batches_parse_independently() {
    let b0 = RawBatch::parse(&vector(KAFKA_0_11_BATCH_0)).unwrap();
    assert_eq!(b0.crc, 0x0318_a270);
    assert_eq!(b0.computed_crc(), b0.crc);
    assert_eq!(
        (
            b0.base_offset,
            b0.partition_leader_epoch,
            b0.magic,
            b0.records_count
        ),
        (0, 1, 2, 1)
    );
    assert_eq!(
        (b0.base_timestamp, b0.max_timestamp),
        (1503229838908, 1503229838908)
    );
    assert_eq!(
        (b0.producer_id, b0.producer_epoch, b0.base_sequence),
        (-1, -1, -1)
    );
    let r = b0.records().unwrap();
    assert_eq!(
        (r[0].key.clone(), r[0].value.clone()),
        (None, Some(b"123".to_vec()))
    );
    let b1 = RawBatch::parse(&vector(KAFKA_0_11_BATCH_1)).unwrap();
    assert_eq!(b1.computed_crc(), b1.crc);
    let r = b1.records().unwrap();
    assert_eq!(r[1].timestamp_delta, 168);
    assert_eq!(b1.base_timestamp + 168, b1.max_timestamp);
    for v in [KAFKA_0_11_BATCH_3, KAFKA_HEADER_BATCH, SARAMA_UNCOMPRESSED] {
        let b = RawBatch::parse(&vector(v)).unwrap();
        assert_eq!(b.computed_crc(), b.crc, "{v}");
        b.records().unwrap();
        kafka_decode_batch(&b.bytes).unwrap();
    }
}

/// The real broker's three batches (offsets 0..=3), with their leader epochs as written (1, 2, 2)
/// or set to 0 (outside the CRC, as a broker rewrites them).
fn broker_log(zero_epochs: bool) -> Vec<Vec<u8>> {
    [KAFKA_0_11_BATCH_0, KAFKA_0_11_BATCH_1, KAFKA_0_11_BATCH_3]
        .iter()
        .map(|v| {
            let mut b = vector(v);
            if zero_epochs {
                spec::set_partition_leader_epoch(&mut b, 0);
            }
            b
        })
        .collect()
}

fn broker_records() -> Vec<RecordView> {
    vec![
        view(0, 1503229838908, b"123"),
        view(1, 1503229959532, b""),
        view(2, 1503229959700, b""),
        view(3, 1503229962141, b"123"),
    ]
}

#[test]
fn topiclog_reads_a_kafka_broker_log_with_epochs_zeroed() {
    // Everything of the broker's bytes but the leader epochs (which a log topiclog wrote has at 0).
    for layout in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_log(&dir, &broker_log(true), layout);
        let log = open_kafka_dir(&dir, layout);
        assert_reads(&log, &broker_records(), 4);
        let hit = log.offset_for_time(1503229959600).unwrap().unwrap();
        assert_eq!(
            (hit.offset, hit.timestamp),
            (2, 1503229959700),
            "{layout:?}"
        );
        log.close().unwrap();
    }
}

#[test]
fn topiclog_reads_a_kafka_broker_log() {
    // Adopting the broker's directory as it was: leader epochs 1 and 2.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p0");
    write_kafka_log(&dir, &broker_log(false), Layout::Bare);
    let log = open_kafka_dir(&dir, Layout::Bare);
    assert_reads(&log, &broker_records(), 4);
    log.close().unwrap();
}

#[test]
fn topiclog_reads_a_kafka_batch_with_headers() {
    for layout in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_log(&dir, &[vector(KAFKA_HEADER_BATCH)], layout);
        let log = open_kafka_dir(&dir, layout);
        let mut hdr = view(0, 1535546684353, b"hdr");
        hdr.headers = vec![("hkey".to_owned(), Some(b"hval".to_vec()))];
        assert_reads(&log, &[hdr], 1);
        log.close().unwrap();
    }
}

fn sarama_record() -> RecordView {
    RecordView {
        offset: 0,
        timestamp: 1479847795005,
        key: Some(vec![1, 2, 3, 4]),
        value: Some(vec![5, 6, 7]),
        headers: vec![("\u{8}\u{9}\u{a}".to_owned(), Some(vec![11, 12]))],
    }
}

#[test]
fn topiclog_reads_sarama_batch_as_a_broker_stores_it() {
    // sarama's batch as a client sends it has max timestamp 0; a broker's LogValidator sets the
    // max timestamp of a create-time batch to its largest record timestamp before appending.
    let mut bytes = vector(SARAMA_UNCOMPRESSED);
    let at = spec::MAX_TIMESTAMP_OFFSET;
    bytes[at..at + 8].copy_from_slice(&1479847795005i64.to_be_bytes());
    spec::fix_crc(&mut bytes);
    for layout in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_log(&dir, std::slice::from_ref(&bytes), layout);
        let log = open_kafka_dir(&dir, layout);
        assert_reads(&log, &[sarama_record()], 1);
        log.close().unwrap();
    }
}

#[test]
fn topiclog_reads_sarama_batch_as_sent() {
    // Kafka's reader (DefaultRecordBatch.ensureValid: size and CRC) and kafka-protocol take the
    // batch as it is, max timestamp 0 below its base timestamp included. Both layouts are tried
    // before failing, so the failure says what each did.
    let mut outcomes = Vec::new();
    for layout in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_log(&dir, &[vector(SARAMA_UNCOMPRESSED)], layout);
        let outcome = match topiclog::Partition::open(&dir) {
            Ok(log) => {
                let got = (log.end_offset(), crate::common::record_views(&log, 0));
                let report = log.recovery_report();
                log.close().unwrap();
                if got == (1, vec![sarama_record()]) {
                    continue;
                }
                format!(
                    "opened with end offset {} and {} records ({} bytes truncated by recovery)",
                    got.0,
                    got.1.len(),
                    report.bytes_truncated
                )
            }
            Err(e) => format!("refused: {e}"),
        };
        outcomes.push(format!("{layout:?}: {outcome}"));
    }
    assert!(outcomes.is_empty(), "{outcomes:#?}");
}
