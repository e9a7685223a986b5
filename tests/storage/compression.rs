//! Compressed batches end to end: every codec built in is written as Kafka frames it, read back
//! transparently, chosen by the topic's `compression` over the appender's, rewritten by
//! compaction with the topic's codec, verified by recovery without decompressing, and a damaged
//! compressed payload is `Corrupt`, never a panic.

use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{FileSystem, SimFs};
use topiclog::internals::format::{crc32c, RECORDS_OFFSET};
use topiclog::segment::RecordBatch;
use topiclog::{
    CleanupPolicy, CompactionPolicy, Compression, CompressionType, Durability, Env, Error,
    LogConfig, ManualClock, Partition, Record,
};

const DIR: &str = "/p";
const T0: i64 = 1_700_000_000_000;

fn codecs() -> Vec<Compression> {
    [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .filter(|c| c.is_available())
    .collect()
}

fn env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(T0)),
    }
}

fn config(compression: CompressionType) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        preallocate: false,
        durability: Durability::None,
        compression,
        ..LogConfig::default()
    }
}

/// JSON-like, compressible records with keys, a tombstone, null and empty headers.
fn records(batch: u64, n: u64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let id = batch * 1000 + i;
            if i == 3 {
                return Record::tombstone(format!("user-{}", id - 1)).with_timestamp(T0 + id as i64);
            }
            Record::new(format!(
                "{{\"user_id\":{id},\"event\":\"page_view\",\"url\":\"/products/{}\",\"session\":\"s-{}\"}}",
                id % 17,
                id % 5
            ))
            .with_key(format!("user-{id}"))
            .with_timestamp(T0 + id as i64)
            .with_header("trace", bytes::Bytes::from(format!("t{id}")))
            .with_header("null", None)
        })
        .collect()
}

type View = (
    u64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn view_all(log: &Partition) -> Vec<View> {
    let mut out = Vec::new();
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let b = log.read(at, 1 << 20).unwrap();
        for r in b.records() {
            out.push((
                r.offset(),
                r.timestamp(),
                r.key().map(|k| k.to_vec()),
                r.value().map(|v| v.to_vec()),
                r.headers()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect(),
            ));
        }
        at = b.next_offset();
    }
    out
}

fn expected(batches: &[Vec<Record>]) -> Vec<View> {
    batches
        .iter()
        .flatten()
        .enumerate()
        .map(|(o, r)| {
            (
                o as u64,
                r.timestamp().unwrap(),
                r.key().map(|k| k.to_vec()),
                r.value().map(|v| v.to_vec()),
                r.headers()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
                    .collect(),
            )
        })
        .collect()
}

/// The codec bits of every batch in the partition's `.log` files, read from the raw bytes.
fn stored_codecs(fs: &SimFs) -> Vec<u16> {
    let mut out = Vec::new();
    let mut names: Vec<_> = fs
        .read_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    for name in names {
        let bytes = fs.read_file(&Path::new(DIR).join(name)).unwrap();
        let mut pos = 0;
        while pos + RECORDS_OFFSET <= bytes.len() {
            let len = u32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
            let attributes = u16::from_be_bytes(bytes[pos + 21..pos + 23].try_into().unwrap());
            if u32::from_be_bytes(bytes[pos + 57..pos + 61].try_into().unwrap()) > 0 {
                out.push(attributes & 7);
            }
            pos += 12 + len;
        }
    }
    out
}

#[test]
fn every_codec_round_trips_and_is_stored_compressed() {
    for codec in codecs() {
        let fs = SimFs::new(1);
        let log =
            Partition::open_with_env(DIR, config(CompressionType::Producer), env(&fs)).unwrap();
        let batches: Vec<Vec<Record>> = (0..20).map(|b| records(b, 50)).collect();
        for b in &batches {
            log.append_batch_compressed(b, codec, Durability::None)
                .unwrap();
        }
        assert_eq!(view_all(&log), expected(&batches), "{codec}");
        let on_disk: usize = log.segments().iter().map(|s| s.size() as usize).sum();
        let raw: usize = batches
            .iter()
            .map(|b| RecordBatch::build(b, 0, 0).unwrap().as_bytes().len())
            .sum();
        assert!(
            on_disk * 2 < raw,
            "{codec}: {on_disk} bytes on disk, {raw} uncompressed"
        );
        assert!(stored_codecs(&fs)
            .iter()
            .all(|&c| c == codec.attribute_bits()));
        // Closed and reopened cleanly, then after a crash (recovery checks every CRC without
        // decompressing; reads decompress).
        log.close().unwrap();
        let log =
            Partition::open_with_env(DIR, config(CompressionType::Producer), env(&fs)).unwrap();
        assert_eq!(view_all(&log), expected(&batches), "{codec} reopened");
        log.abandon();
        let log =
            Partition::open_with_env(DIR, config(CompressionType::Producer), env(&fs)).unwrap();
        assert!(!log.recovery_report().clean_shutdown);
        assert_eq!(view_all(&log), expected(&batches), "{codec} recovered");
        assert_eq!(
            log.offset_for_time(T0 + 10_010).unwrap().map(|t| t.offset),
            Some(10 * 50 + 10)
        );
        log.close().unwrap();
    }
}

/// Kafka's `compression.type` on the topic: `producer` keeps the appender's codec,
/// `uncompressed` and a codec override it.
#[test]
fn the_topic_setting_decides_the_stored_codec() {
    let Some(&codec) = codecs().first() else {
        return;
    };
    let other = codecs().last().copied().unwrap();
    for (setting, asked, stored) in [
        (CompressionType::Producer, codec, codec),
        (
            CompressionType::Producer,
            Compression::None,
            Compression::None,
        ),
        (CompressionType::Uncompressed, codec, Compression::None),
        (CompressionType::Codec(other), Compression::None, other),
        (CompressionType::Codec(other), codec, other),
    ] {
        let fs = SimFs::new(2);
        let log = Partition::open_with_env(DIR, config(setting), env(&fs)).unwrap();
        let batch = records(0, 20);
        log.append_batch_compressed(&batch, asked, Durability::None)
            .unwrap();
        // A plain append asks for nothing.
        log.append_batch(&records(1, 5)).unwrap();
        assert_eq!(view_all(&log), expected(&[batch, records(1, 5)]));
        let plain = setting.codec_for(Compression::None);
        assert_eq!(
            stored_codecs(&fs),
            vec![stored.attribute_bits(), plain.attribute_bits()],
            "{setting:?} asked {asked}"
        );
        log.close().unwrap();
    }
}

/// Compaction reads compressed batches and writes what survives with the topic's codec.
#[test]
fn compaction_rewrites_with_the_topic_codec() {
    for codec in codecs() {
        let fs = SimFs::new(3);
        let cfg = LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            segment_bytes: 4096,
            ..config(CompressionType::Codec(codec))
        };
        let log = Partition::open_with_env(DIR, cfg.clone(), env(&fs)).unwrap();
        let mut all = Vec::new();
        for round in 0..30u64 {
            let batch: Vec<Record> = (0..10u64)
                .map(|k| {
                    Record::new(format!(
                        "{{\"round\":{round},\"key\":{k},\"pad\":\"aaaaaaaaaaaa\"}}"
                    ))
                    .with_key(format!("k{k}"))
                    .with_timestamp(T0 + round as i64)
                })
                .collect();
            let info = log.append_batch(&batch).unwrap();
            for (i, r) in batch.iter().enumerate() {
                let o = info.base_offset + i as u64;
                all.push((r.key().unwrap().to_vec(), o));
            }
        }
        let policy = CompactionPolicy {
            min_cleanable_dirty_ratio: 0.0,
            ..CompactionPolicy::default()
        };
        let report = log.compact(T0 + 1000, &policy).unwrap();
        assert!(report.records_removed > 0, "{codec}: {report:?}");
        // The active segment is never cleaned (as in Kafka); below it only the latest record of
        // each key survives.
        let active = log.segments().last().unwrap().base_offset();
        assert!(active > 100, "{codec}: several segments were cleaned");
        let got: Vec<(Vec<u8>, u64)> = view_all(&log)
            .into_iter()
            .map(|(o, _, k, _, _)| (k.unwrap(), o))
            .collect();
        // (The cleaner's key map covers the cleanable part only, below the active segment.)
        let mut latest_below = std::collections::BTreeMap::new();
        for (k, o) in all.iter().filter(|(_, o)| *o < active) {
            latest_below.insert(k.clone(), *o);
        }
        let latest_offsets: std::collections::BTreeSet<u64> =
            latest_below.values().copied().collect();
        let want: Vec<(Vec<u8>, u64)> = all
            .into_iter()
            .filter(|(_, o)| *o >= active || latest_offsets.contains(o))
            .collect();
        assert_eq!(got, want, "{codec}");
        assert!(stored_codecs(&fs)
            .iter()
            .all(|&c| c == codec.attribute_bits()));
        log.close().unwrap();
    }
}

/// A compressed batch whose payload is damaged under a valid CRC (as a buggy writer could leave
/// it): recovery keeps it (it checks CRCs, not payloads), a read of it is `Corrupt`.
#[test]
fn a_damaged_compressed_payload_is_corrupt_on_read() {
    for codec in codecs() {
        let fs = SimFs::new(4);
        let log =
            Partition::open_with_env(DIR, config(CompressionType::Producer), env(&fs)).unwrap();
        log.append_batch_compressed(&records(0, 40), codec, Durability::None)
            .unwrap();
        log.close().unwrap();
        let path = Path::new(DIR).join("00000000000000000000.log");
        let mut bytes = fs.read_file(&path).unwrap();
        let len = bytes.len();
        for b in &mut bytes[RECORDS_OFFSET + 8..len - 8] {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        let crc = crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        fs.write_file(&path, &bytes);
        fs.remove_file(&Path::new(DIR).join(".clean_shutdown")).ok();
        let log =
            Partition::open_with_env(DIR, config(CompressionType::Producer), env(&fs)).unwrap();
        assert_eq!(log.end_offset(), 40, "{codec}: recovery keeps the batch");
        match log.read(0, 1 << 20) {
            Err(Error::Corrupt { .. }) => {}
            Ok(b) => panic!("{codec}: read {} records", b.records().count()),
            Err(e) => panic!("{codec}: {e:?}"),
        }
        log.close().unwrap();
    }
}

/// A codec this build leaves out is a configuration error, never a silently uncompressed batch.
#[test]
fn a_codec_that_is_not_built_in_is_refused() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        if codec.is_available() {
            continue;
        }
        let fs = SimFs::new(5);
        assert!(matches!(
            Partition::open_with_env(DIR, config(CompressionType::Codec(codec)), env(&fs)),
            Err(Error::InvalidConfig { .. })
        ));
        let log =
            Partition::open_with_env(DIR, config(CompressionType::Producer), env(&fs)).unwrap();
        assert!(matches!(
            log.append_batch_compressed(&records(0, 3), codec, Durability::None),
            Err(Error::InvalidConfig { .. })
        ));
        assert_eq!(log.end_offset(), 0);
        log.close().unwrap();
    }
}

/// A stored batch compressed with a codec this build leaves out (written by Kafka, or by a build
/// with the feature) is kept by recovery and refused on read as a configuration error naming
/// the feature, not as damage.
#[cfg(not(feature = "gzip"))]
#[test]
fn reading_a_batch_of_a_codec_left_out_names_the_feature() {
    let fs = SimFs::new(6);
    let log = Partition::open_with_env(DIR, config(CompressionType::Producer), env(&fs)).unwrap();
    log.append_batch(&records(0, 3)).unwrap();
    log.close().unwrap();
    let path = Path::new(DIR).join("00000000000000000000.log");
    let mut bytes = fs.read_file(&path).unwrap();
    // Mark it gzip (codec 1): the payload is then not gzip, but this build cannot tell.
    bytes[22] |= 1;
    let crc = crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    fs.write_file(&path, &bytes);
    let log = Partition::open_with_env(DIR, config(CompressionType::Producer), env(&fs)).unwrap();
    match log.read(0, 1 << 20) {
        Err(Error::InvalidConfig { reason, .. }) => assert!(reason.contains("gzip"), "{reason}"),
        other => panic!("{other:?}"),
    }
    log.close().unwrap();
}
