//! Every compression codec, both ways: topics and producers compressing with topiclog, decoded
//! (decompressed) by kafka-protocol; batches compressed by kafka-protocol (and sarama's
//! published vectors) read by topiclog. Each codec's tests build only with topiclog's Cargo
//! feature of the same name. The compressed payload is also checked against what Kafka's Java
//! readers accept: LZ4 as one frame with independent blocks and a valid header checksum
//! (`Lz4BlockInputStream`), snappy in xerial framing as Kafka's producer writes it (or raw),
//! gzip one member, zstd frames.

#![allow(dead_code)] // the helpers serve whichever codecs are built

use std::sync::Arc;

use kafka_protocol::records::Compression as KafkaCompression;
use topiclog::{
    CleanupPolicy, CompactionPolicy, Compression, CompressionType, LogConfig, ManualClock,
    ProducerConfig, Record, TopicConfig,
};

use crate::common::{manual_store_options, record_views, small_log};
use crate::disk::{self, codec_id, DecodedSegment};
use crate::expect::{assert_disk_matches, open_partition, Appended, NOW_MS};
use crate::read_side::{
    assert_reads, open_kafka_dir, varied_batches_read_back, write_kafka_log, LAYOUTS,
};
use crate::vectors::hex;
use crate::write_side::append_mixed_batches;

/// XXH32 (for the LZ4 frame descriptor's checksum byte).
pub fn xxh32(input: &[u8], seed: u32) -> u32 {
    const P1: u32 = 0x9E37_79B1;
    const P2: u32 = 0x85EB_CA77;
    const P3: u32 = 0xC2B2_AE3D;
    const P4: u32 = 0x27D4_EB2F;
    const P5: u32 = 0x1656_67B1;
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let round = |acc: u32, x: u32| {
        acc.wrapping_add(x.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    };
    let mut i = 0;
    let mut h = if input.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while i + 16 <= input.len() {
            for (j, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, u32_at(input, i + 4 * j));
            }
            i += 16;
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u32);
    while i + 4 <= input.len() {
        h = h
            .wrapping_add(u32_at(input, i).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        i += 4;
    }
    while i < input.len() {
        h = h
            .wrapping_add(u32::from(input[i]).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
        i += 1;
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

#[test]
fn xxh32_check_values() {
    assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
    assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
}

/// What Kafka's `Lz4BlockInputStream` requires of a batch's LZ4 payload: exactly one LZ4 frame
/// (magic 0x184D2204), FLG version 01 with the reserved bits clear and BLOCK_INDEPENDENCE set,
/// a BD naming a block size Kafka knows (64 KiB .. 4 MiB), the header checksum byte
/// `(xxh32(descriptor) >> 8) & 0xff`, blocks no larger than that size, then the end mark (and the
/// content checksum if flagged) — and nothing after it, since Kafka reads one frame only.
pub fn assert_kafka_lz4_frame(payload: &[u8], what: &str) {
    assert!(payload.len() >= 7, "{what}: lz4 payload too short");
    assert_eq!(
        &payload[..4],
        &[0x04, 0x22, 0x4D, 0x18],
        "{what}: lz4 frame magic"
    );
    let flg = payload[4];
    let bd = payload[5];
    assert_eq!(flg >> 6, 1, "{what}: FLG version must be 01");
    assert_eq!(
        flg & 0b11,
        0,
        "{what}: FLG reserved bits (Kafka rejects a dictionary id)"
    );
    assert!(
        flg & 0x20 != 0,
        "{what}: FLG BLOCK_INDEPENDENCE must be set (Kafka: 'Dependent block stream is unsupported')"
    );
    let block_checksum = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    assert_eq!(bd & 0x8F, 0, "{what}: BD reserved bits");
    let max_block = match (bd >> 4) & 0x7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        other => panic!("{what}: BD block size code {other} unknown to Kafka"),
    };
    let mut pos = 6;
    if content_size {
        pos += 8;
    }
    let hc = payload[pos];
    assert_eq!(
        hc,
        ((xxh32(&payload[4..pos], 0) >> 8) & 0xff) as u8,
        "{what}: frame descriptor checksum"
    );
    pos += 1;
    loop {
        let size = u32::from_le_bytes(payload[pos..pos + 4].try_into().unwrap());
        pos += 4;
        if size == 0 {
            break;
        }
        let len = (size & 0x7FFF_FFFF) as usize;
        assert!(len <= max_block, "{what}: block of {len} > max {max_block}");
        pos += len;
        if block_checksum {
            pos += 4;
        }
    }
    if content_checksum {
        pos += 4;
    }
    assert_eq!(
        pos,
        payload.len(),
        "{what}: bytes after the lz4 frame's end mark (Kafka reads one frame)"
    );
}

/// Kafka's producer writes snappy in xerial-snappy framing (`SnappyOutputStream`): the magic
/// header, version 1, compatible version 1, then (length `i32` BE, raw snappy block) chunks.
pub fn is_xerial_snappy(payload: &[u8]) -> bool {
    payload.starts_with(b"\x82SNAPPY\x00")
}

fn assert_xerial_chunks(payload: &[u8], what: &str) {
    assert_eq!(
        &payload[8..16],
        &[0, 0, 0, 1, 0, 0, 0, 1],
        "{what}: xerial versions"
    );
    let mut pos = 16;
    while pos < payload.len() {
        let len = u32::from_be_bytes(payload[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4 + len;
    }
    assert_eq!(
        pos,
        payload.len(),
        "{what}: xerial chunks run past the batch"
    );
}

/// Check each batch's compressed payload is what Kafka's readers take for `codec`.
pub fn assert_payloads(segments: &[DecodedSegment], codec: i16) {
    for b in disk::all_batches(segments) {
        let what = format!("batch at {}", b.raw.base_offset);
        if b.raw.records_count == 0 {
            // An empty batch (compaction's) has no records to compress: Kafka writes them
            // uncompressed too (`DefaultRecordBatch.writeEmptyHeader`).
            continue;
        }
        assert_eq!(b.raw.compression(), codec, "{what}: codec");
        let payload = b.raw.records_section();
        match codec {
            1 => assert_eq!(
                &payload[..3],
                &[0x1f, 0x8b, 0x08],
                "{what}: gzip member header"
            ),
            2 => {
                assert!(
                    is_xerial_snappy(payload),
                    "{what}: raw snappy; Kafka's producer writes xerial framing (Kafka's reader \
                     takes both)"
                );
                assert_xerial_chunks(payload, &what);
            }
            3 => {
                assert_kafka_lz4_frame(payload, &what);
                // What Kafka's Lz4BlockOutputStream writes: FLG(blockChecksum = false), 64 KiB.
                assert_eq!(
                    (payload[4], payload[5]),
                    (0x60, 0x40),
                    "{what}: FLG/BD as Kafka's producer writes them"
                );
            }
            4 => assert_eq!(
                &payload[..4],
                &[0x28, 0xB5, 0x2F, 0xFD],
                "{what}: zstd frame magic"
            ),
            _ => {}
        }
    }
}

fn kafka_codec(c: Compression) -> KafkaCompression {
    match c {
        Compression::Gzip => KafkaCompression::Gzip,
        Compression::Snappy => KafkaCompression::Snappy,
        Compression::Lz4 => KafkaCompression::Lz4,
        Compression::Zstd => KafkaCompression::Zstd,
        other => panic!("not a codec: {other:?}"),
    }
}

/// A topic compressing with `codec`: every batch on disk carries the codec, Kafka's decoder
/// decompresses it to what was appended, and the payload is what Kafka's readers accept.
pub fn topic_codec(codec: Compression) {
    let id = codec_id(kafka_codec(codec));
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let config = LogConfig {
        compression: CompressionType::Codec(codec),
        ..small_log(1024, 64)
    };
    let log = open_partition(&tmp.path().join("p0"), config.clone(), &clock);
    let mut appended = Appended {
        codec: id,
        ..Appended::default()
    };
    append_mixed_batches(&log, &mut appended, &clock);
    let segments = assert_disk_matches(&log, &appended);
    assert_payloads(&segments, id);
    log.close().unwrap();

    // Log-append time and idempotent batches, compressed.
    let tmp = tempfile::tempdir().unwrap();
    let log_append = LogConfig {
        timestamp_type: topiclog::TimestampType::LogAppendTime,
        ..config.clone()
    };
    let log = open_partition(&tmp.path().join("p0"), log_append, &clock);
    let mut appended = Appended {
        codec: id,
        ..Appended::default()
    };
    append_mixed_batches(&log, &mut appended, &clock);
    appended.append_idempotent(
        &log,
        &crate::write_side::every_kind_of_record(),
        topiclog::ProducerBatch {
            producer_id: 5,
            epoch: 2,
            base_sequence: 0,
        },
    );
    let segments = assert_disk_matches(&log, &appended);
    assert_payloads(&segments, id);
    log.close().unwrap();

    // Compaction keeps each batch's codec (Kafka's cleaner recompresses with it).
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..config
    };
    let log = open_partition(&tmp.path().join("p0"), config, &clock);
    for i in 0..60u32 {
        log.append_batch(&[
            Record::new(format!("v{i}")).with_key(format!("k{}", i % 5)),
            Record::new(format!("w{i}")).with_key(format!("j{}", i % 3)),
        ])
        .unwrap();
    }
    let policy = CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    };
    let report = log.compact(NOW_MS, &policy).unwrap();
    assert!(report.cleaned && report.records_removed > 0, "{report:?}");
    let segments = disk::decode_dir(log.dir());
    assert_eq!(
        disk::kafka_data_records(&segments),
        record_views(&log, log.start_offset())
    );
    assert_payloads(&segments, id);
    log.close().unwrap();
}

/// A producer compressing with `codec` (the topic keeping the producer's codec).
pub fn producer_codec(codec: Compression) {
    let id = codec_id(kafka_codec(codec));
    let tmp = tempfile::tempdir().unwrap();
    let store = topiclog::Store::open_with(tmp.path(), manual_store_options()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            compression: codec,
            ..ProducerConfig::default()
        })
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..200 {
        let r = Record::new(format!("value {i} value {i} value {i}")).with_key(format!("k{i}"));
        sent.push(producer.send("t", r.clone()).unwrap());
    }
    producer.flush().unwrap();
    for h in sent {
        h.wait().unwrap();
    }
    producer.close().unwrap();
    let partition = topic.partition(0).unwrap();
    let read_back = record_views(&partition, 0);
    let dir = partition.dir().to_path_buf();
    drop((partition, topic));
    // The store preallocates its active segments: read the files once it is closed.
    store.close().unwrap();
    let segments = disk::decode_dir(&dir);
    assert_eq!(disk::kafka_data_records(&segments), read_back);
    assert_eq!(read_back.len(), 200);
    assert_payloads(&segments, id);
}

// ---- sarama's compressed vectors (record_test.go): one record, key 01020304, value 050607,
// header 08090a = 0b0c, timestamp 1479847795000 + 5 -----------------------------------------

const SARAMA_GZIP: &str = concat!(
    "00000000000000000000005f",
    "0000000002",
    "e74acea5",
    "000100000000000001588dcd59380000000000000000000000000000000000000000000000000001",
    "1f8b080000096e8800ff001500eaff28000a00080102030406050607020608090a040b0c0300adc9586715000000",
);
const SARAMA_SNAPPY_RAW: &str = concat!(
    "000000000000000000000048",
    "0000000002",
    "15009f61",
    "000200000000000001588dcd59380000000000000000000000000000000000000000000000000001",
    "155028000a00080102030406050607020608090a040b0c",
);
const SARAMA_LZ4: &str = concat!(
    "000000000000000000000059",
    "0000000002",
    "a94a77c5",
    "000300000000000001588dcd59380000000000000000000000000000000000000000000000000001",
    "04224d186470b91500008028000a00080102030406050607020608090a040b0c000000000c3bef92",
);

/// sarama's compressed batch `v`, as a broker stores it (its LogValidator sets a create-time
/// batch's max timestamp to its largest record timestamp; sarama leaves it 0), read by topiclog.
pub fn sarama_vector(v: &str) {
    let mut bytes = hex(&v.replace(' ', ""));
    let raw = crate::spec::RawBatch::parse(&bytes).unwrap();
    assert_eq!(raw.computed_crc(), raw.crc);
    disk::kafka_decode_batch(&bytes).unwrap();
    let at = crate::spec::MAX_TIMESTAMP_OFFSET;
    bytes[at..at + 8].copy_from_slice(&1479847795005i64.to_be_bytes());
    crate::spec::fix_crc(&mut bytes);
    for layout in LAYOUTS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p0");
        write_kafka_log(&dir, &[bytes.clone()], layout);
        let log = open_kafka_dir(&dir, layout);
        let want = crate::common::RecordView {
            offset: 0,
            timestamp: 1479847795005,
            key: Some(vec![1, 2, 3, 4]),
            value: Some(vec![5, 6, 7]),
            headers: vec![("\u{8}\u{9}\u{a}".to_owned(), Some(vec![11, 12]))],
        };
        assert_reads(&log, &[want], 1);
        log.close().unwrap();
    }
}

macro_rules! codec_tests {
    ($feature:literal, $module:ident, $codec:expr, $kafka:expr) => {
        #[cfg(feature = $feature)]
        mod $module {
            use super::*;

            #[test]
            fn topic_batches_decode_with_kafka_protocol() {
                topic_codec($codec);
            }

            #[test]
            fn producer_batches_decode_with_kafka_protocol() {
                producer_codec($codec);
            }

            #[test]
            fn kafka_compressed_batches_read_back() {
                varied_batches_read_back($kafka);
            }
        }
    };
}

codec_tests!("gzip", gzip, Compression::Gzip, KafkaCompression::Gzip);
codec_tests!(
    "snappy",
    snappy,
    Compression::Snappy,
    KafkaCompression::Snappy
);
codec_tests!("lz4", lz4, Compression::Lz4, KafkaCompression::Lz4);
codec_tests!("zstd", zstd, Compression::Zstd, KafkaCompression::Zstd);

#[cfg(feature = "gzip")]
#[test]
fn sarama_gzip_vector_reads_back() {
    sarama_vector(SARAMA_GZIP);
}

#[cfg(feature = "snappy")]
#[test]
fn sarama_raw_snappy_vector_reads_back() {
    // Raw snappy (no xerial framing): Kafka's SnappyInputStream falls back to it.
    sarama_vector(SARAMA_SNAPPY_RAW);
}

#[cfg(feature = "lz4")]
#[test]
fn sarama_lz4_vector_reads_back() {
    sarama_vector(SARAMA_LZ4);
}

#[cfg(all(feature = "lz4", feature = "zstd"))]
#[test]
fn the_topic_compression_type_decides_the_stored_codec() {
    // Kafka's compression.type: `producer` keeps the appender's codec, `uncompressed` and a codec
    // override it (the broker recompresses).
    let cases = [
        (CompressionType::Producer, Compression::Lz4, 3),
        (CompressionType::Uncompressed, Compression::Lz4, 0),
        (
            CompressionType::Codec(Compression::Zstd),
            Compression::Lz4,
            4,
        ),
        (
            CompressionType::Codec(Compression::Lz4),
            Compression::None,
            3,
        ),
    ];
    for (topic, sent, stored) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let config = LogConfig {
            compression: topic,
            ..small_log(1 << 20, 4096)
        };
        let log = open_partition(&tmp.path().join("p0"), config, &clock);
        let records = crate::write_side::every_kind_of_record();
        log.append_batch_compressed(&records, sent, topiclog::Durability::None)
            .unwrap();
        let segments = disk::decode_dir(log.dir());
        assert_eq!(
            disk::kafka_data_records(&segments),
            record_views(&log, 0),
            "{topic:?} {sent:?}"
        );
        assert_payloads(&segments, stored);
        log.close().unwrap();
    }
}
