//! The fuzz targets' seed corpora (`fuzz/seeds/<target>/`), run as ordinary tests.
//!
//! The checks live in `fuzz/src/lib.rs`, shared with the cargo-fuzz targets in `fuzz/` (see
//! `fuzz/README.md`). Inputs that once crashed a target go into the seeds too, so they stay fixed;
//! regression inputs are named `regression-<what it found>`.
//!
//! Regenerate the seeds with
//! `cargo test --test storage -- --ignored fuzz_seeds::regenerate_seed_corpora` (they are committed).

use crate::fuzz_checks;

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::fuzz_checks::{checkpoint_bytes, fix_crcs, pristine, set_base_offset, Pristine};
use topiclog::internals::format::meta::{
    AdoptedLog, CachedBatch, Checkpoint, CleanShutdown, CleanerCheckpoint, Decode, Encode, Horizon,
    OffsetCommitKey, OffsetCommitValue, ProducerIdCounter, ProducerSnapshot, SnapshotProducer,
};
use topiclog::internals::format::{BATCH_PREFIX_LEN, CRC_OFFSET};
use topiclog::segment::RecordBatch;
use topiclog::segment::{segment_file_name, SegmentFileKind};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Run every file in `fuzz/<kind>/<target>/` through `check`; returns how many ran.
fn run_dir(kind: &str, target: &str, check: fn(&[u8])) -> usize {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in &paths {
        let data = std::fs::read(path).expect("read a seed");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            eprintln!("{target}: input {} failed", path.display());
            resume_unwind(panic);
        }
    }
    paths.len()
}

#[test]
fn batch_decode_seeds() {
    let n = run_dir("seeds", "batch_decode", fuzz_checks::batch_decode);
    assert!(n >= 5, "only {n} seeds in fuzz/seeds/batch_decode");
}

#[test]
fn index_load_seeds() {
    let n = run_dir("seeds", "index_load", fuzz_checks::index_load);
    assert!(n >= 5, "only {n} seeds in fuzz/seeds/index_load");
}

#[test]
fn meta_decode_seeds() {
    let n = run_dir("seeds", "meta_decode", fuzz_checks::meta_decode);
    assert!(n >= 5, "only {n} seeds in fuzz/seeds/meta_decode");
}

#[test]
fn segment_recover_seeds() {
    let n = run_dir("seeds", "segment_recover", fuzz_checks::segment_recover);
    assert!(n >= 5, "only {n} seeds in fuzz/seeds/segment_recover");
}

#[test]
fn decompress_seeds() {
    let n = run_dir("seeds", "decompress", fuzz_checks::decompress);
    assert!(n >= 5, "only {n} seeds in fuzz/seeds/decompress");
}

// ---- Seed generation ----------------------------------------------------------------------------

fn write_seeds(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = fuzz_dir().join("seeds").join(target);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).expect("write a seed");
    }
}

fn file(p: &Pristine, base: u64, kind: SegmentFileKind) -> &[u8] {
    let path = segment_file_name(Path::new(fuzz_checks::DIR), base, kind);
    p.files
        .iter()
        .find(|(f, _)| *f == path)
        .map(|(_, data)| &data[..])
        .expect("a pristine segment file")
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn batch_decode_seeds_gen(p: &Pristine) -> Vec<(&'static str, Vec<u8>)> {
    let names = [
        "valid-key-headers",
        "valid-tombstone",
        "valid-three-records",
        "valid-empty-value-null-record",
        "valid-large-value",
        "valid-old-timestamp",
    ];
    let mut seeds: Vec<(&str, Vec<u8>)> = names
        .iter()
        .zip(&p.batches)
        .map(|(n, b)| (*n, b.clone()))
        .collect();
    let mut high = p.batches[0].clone();
    // Kafka's offsets are int64: the highest base offset a one-record batch can have.
    set_base_offset(&mut high, i64::MAX as u64 - 1);
    seeds.push(("valid-high-base-offset", high));
    // A batch with no records: a header only (length 49, last offset delta 0, record count 0).
    let mut empty = p.batches[0][..61].to_vec();
    empty[8..12].copy_from_slice(&49u32.to_be_bytes());
    empty[23..27].copy_from_slice(&0u32.to_be_bytes());
    empty[57..61].copy_from_slice(&0u32.to_be_bytes());
    fix_crcs(&mut empty);
    seeds.push(("valid-no-records", empty));
    // Compressed batches, with every codec this build has (the fuzzer then damages their
    // streams under a fixed CRC).
    let records: Vec<topiclog::Record> = (0..8)
        .map(|i| {
            topiclog::Record::new(format!("{{\"n\":{i},\"pad\":\"xxxxxxxxxxxx\"}}"))
                .with_key(format!("k{i}"))
                .with_header("h", None)
        })
        .collect();
    for (name, codec) in [
        ("valid-gzip", topiclog::Compression::Gzip),
        ("valid-snappy", topiclog::Compression::Snappy),
        ("valid-lz4", topiclog::Compression::Lz4),
        ("valid-zstd", topiclog::Compression::Zstd),
    ] {
        if codec.is_available() {
            let batch = RecordBatch::build_compressed(&records, 100, 1_700_000_000_000, codec);
            seeds.push((name, batch.unwrap().as_bytes().to_vec()));
        }
    }
    let b = &p.batches[2];
    seeds.push(("truncated", b[..b.len() - 3].to_vec()));
    seeds.push(("truncated-header", b[..40].to_vec()));
    let mut flipped = b.clone();
    flipped[BATCH_PREFIX_LEN + 30] ^= 0x04;
    seeds.push(("bit-flip", flipped));
    let mut bad_crc = b.clone();
    bad_crc[CRC_OFFSET] ^= 0x80;
    seeds.push(("bit-flip-in-crc", bad_crc));
    seeds.push((
        "two-batches",
        [&p.batches[0][..], &p.batches[1][..]].concat(),
    ));
    seeds.push(("garbage", noise(1, 120)));
    seeds.push(("empty", Vec::new()));
    seeds
}

fn index_load_seed(knobs: u8, offset_index: &[u8], time_index: &[u8]) -> Vec<u8> {
    assert!(offset_index.len().is_multiple_of(4) && offset_index.len() / 4 <= 255);
    let mut s = vec![knobs, (offset_index.len() / 4) as u8];
    s.extend_from_slice(offset_index);
    s.extend_from_slice(time_index);
    s
}

fn index_load_seeds_gen(p: &Pristine) -> Vec<(&'static str, Vec<u8>)> {
    let bases = &p.segment_bases;
    let last = *bases.last().expect("segments");
    let idx = |b| file(p, b, SegmentFileKind::OffsetIndex);
    let tidx = |b| file(p, b, SegmentFileKind::TimeIndex);
    let mut cut = idx(bases[0]).to_vec();
    cut.truncate(cut.len() - 4);
    let mut zeroed = idx(bases[1]).to_vec();
    zeroed.iter_mut().skip(8).for_each(|b| *b = 0);
    vec![
        (
            "valid-first-segment",
            index_load_seed(0x00, idx(bases[0]), tidx(bases[0])),
        ),
        (
            "valid-second-segment",
            index_load_seed(0x18, idx(bases[1]), tidx(bases[1])),
        ),
        (
            "valid-active-segment",
            index_load_seed(0x2a, idx(last), tidx(last)),
        ),
        (
            "other-segments-index-everywhere",
            index_load_seed(0x31, idx(bases[1]), tidx(bases[1])),
        ),
        (
            "partial-entry",
            index_load_seed(0x24, &cut, &tidx(last)[..5]),
        ),
        ("zeroed-entries", index_load_seed(0x10, &zeroed, &[0; 24])),
        (
            "garbage",
            index_load_seed(0x30, &noise(2, 64), &noise(3, 60)),
        ),
        (
            "garbage-small-max-index",
            index_load_seed(0x6c, &noise(4, 40), &noise(5, 36)),
        ),
        ("empty-indexes", index_load_seed(0x30, &[], &[])),
        ("missing-indexes", vec![0x30, 0x01]),
        ("empty", Vec::new()),
    ]
}

fn segment_recover_seeds_gen(p: &Pristine) -> Vec<(&'static str, Vec<u8>)> {
    let seed = |k0: u8, k1: u8, body: &[u8]| [&[k0, k1][..], body].concat();
    // Batches continuing after three prefix batches.
    let after = |n: usize| {
        let mut next = p.batches[..3]
            .iter()
            .map(|b| {
                topiclog::segment::BatchHeader::parse(b)
                    .expect("batch")
                    .last_offset_delta as u64
                    + 1
            })
            .sum::<u64>();
        let mut out = Vec::new();
        for b in &p.batches[3..3 + n] {
            let mut b = b.clone();
            set_base_offset(&mut b, next);
            next += topiclog::segment::BatchHeader::parse(&b)
                .expect("batch")
                .last_offset_delta as u64
                + 1;
            out.extend_from_slice(&b);
        }
        out
    };
    let valid = after(3);
    let first_len = p.batches[3].len();
    let mut torn = valid.clone();
    torn.truncate(valid.len() - 10);
    let mut flipped = valid.clone();
    flipped[first_len + 30] ^= 0x10;
    let zero_tail = [&valid[..], &[0u8; 300][..]].concat();
    let garbage_tail = [&valid[..], &noise(6, 80)[..]].concat();
    let mut crafted = valid.clone();
    crafted[40] ^= 0xff; // producer id: the CRC is fixed up by knob bit 2
    vec![
        ("empty", Vec::new()),
        ("prefix-only", seed(0x03, 0x00, &[])),
        ("valid-log", seed(0x83, 0x00, &valid)),
        ("torn-tail", seed(0x03, 0x00, &torn)),
        ("zero-tail-preallocated", seed(0x0b, 0x00, &zero_tail)),
        ("garbage-tail", seed(0x03, 0x00, &garbage_tail)),
        ("flipped-bit-then-valid", seed(0x03, 0x00, &flipped)),
        ("flipped-bit-durable", seed(0x23, 0x04, &flipped)),
        ("torn-below-recovery-point", seed(0x23, 0x4c, &torn)),
        ("crc-fixed-crafted", seed(0x07, 0x00, &crafted)),
        ("two-segments-clean", seed(0x43, 0x00, &valid)),
        (
            "two-segments-garbage-first",
            seed(0x43, 0x00, &garbage_tail),
        ),
        (
            "two-segments-first-trusted",
            seed(0x63, 0x0f, &garbage_tail),
        ),
        ("damaged-checkpoint", seed(0x33, 0x05, &torn)),
        (
            "zeros-checkpoint-small-batches",
            seed(0x1b, 0x80, &zero_tail),
        ),
        ("garbage", seed(0x00, 0x00, &noise(7, 200))),
    ]
}

/// The body of an envelope of the current version (between the length field and the CRC).
fn body(file: &[u8]) -> &[u8] {
    &file[9..file.len() - 4]
}

/// `[knobs, file..]`: knobs pick the envelope (bits 0-2: checkpoint, clean-shutdown marker,
/// cleaner checkpoint, producer snapshot, producer id counter) and its version (bits 3-5: the
/// current one, then the legacy ones, then an unknown one) for the second pass.
fn meta_seed(knobs: u8, file: &[u8]) -> Vec<u8> {
    [&[knobs][..], file].concat()
}

fn meta_decode_seeds_gen(p: &Pristine) -> Vec<(&'static str, Vec<u8>)> {
    let named = |name: &str| {
        p.files
            .iter()
            .find(|(f, _)| f.file_name().is_some_and(|n| n == name))
            .map(|(_, data)| data.clone())
            .unwrap_or_else(|| panic!("the pristine partition has a {name}"))
    };
    let checkpoint = named("checkpoint");
    let marker = named(".clean_shutdown");
    let cleaner = CleanerCheckpoint {
        first_dirty: 500,
        swap: Some((100, 400)),
        horizons: vec![
            Horizon {
                end: 100,
                horizon_ms: i64::MIN,
                tombstones: 0,
            },
            Horizon {
                end: 500,
                horizon_ms: 1_700_000_000_000,
                tombstones: 3,
            },
        ],
    }
    .encode_to_vec();
    let batch = |base: u64| CachedBatch {
        first_seq: 0,
        last_seq: 2,
        base_offset: base,
        last_offset: base + 2,
        append_time: 1_700_000_000_000,
    };
    let snapshot = ProducerSnapshot {
        offset: 40,
        producers: vec![
            SnapshotProducer {
                producer_id: 0,
                epoch: 0,
                last_seen_ms: 1_700_000_000_000,
                batches: (0..5).map(|i| batch(i * 3)).collect(),
            },
            SnapshotProducer {
                producer_id: 7,
                epoch: 2,
                last_seen_ms: 1_700_000_000_000,
                batches: vec![batch(30)],
            },
        ],
    }
    .encode_to_vec();
    let counter = ProducerIdCounter { next: 12 };
    let key = OffsetCommitKey {
        group: "readers".into(),
        topic: "events".into(),
        partition: 1,
    }
    .encode_to_vec();
    let value = OffsetCommitValue {
        offset: 42,
        commit_timestamp: 1_700_000_000_000,
        metadata: "meta".into(),
    }
    .encode_to_vec();
    // Version 1 of the snapshot: the version-2 body without "last seen".
    let mut snapshot_v1 = body(&snapshot)[..12].to_vec();
    for (id, epoch, batches) in [(0i64, 0i16, 5u8), (7, 2, 1)] {
        snapshot_v1.extend_from_slice(&id.to_le_bytes());
        snapshot_v1.extend_from_slice(&epoch.to_le_bytes());
        snapshot_v1.push(batches);
        for i in 0..u64::from(batches) {
            let b = batch(if id == 0 { i * 3 } else { 30 });
            snapshot_v1.extend_from_slice(&b.first_seq.to_le_bytes());
            snapshot_v1.extend_from_slice(&b.last_seq.to_le_bytes());
            snapshot_v1.extend_from_slice(&b.base_offset.to_le_bytes());
            snapshot_v1.extend_from_slice(&b.last_offset.to_le_bytes());
            snapshot_v1.extend_from_slice(&b.append_time.to_le_bytes());
        }
    }
    let snapshot_v1 = ProducerSnapshot::ENVELOPE.seal_raw(1, &snapshot_v1);
    assert_eq!(
        ProducerSnapshot::decode(&snapshot_v1).expect("a version-1 snapshot"),
        ProducerSnapshot::decode(&snapshot).expect("a snapshot")
    );
    let mut flipped = cleaner.clone();
    flipped[20] ^= 0x10;
    let mut cut = snapshot.clone();
    cut.truncate(snapshot.len() - 30);
    vec![
        ("checkpoint-v3", meta_seed(0x00, &checkpoint)),
        (
            "checkpoint-v2",
            meta_seed(0x08, &Checkpoint::ENVELOPE.seal_raw(2, body(&checkpoint))),
        ),
        (
            "checkpoint-v1",
            meta_seed(
                0x10,
                &Checkpoint::ENVELOPE.seal_raw(1, &body(&checkpoint)[..16]),
            ),
        ),
        ("clean-shutdown-v2", meta_seed(0x01, &marker)),
        (
            "kafka-adopted-v1",
            meta_seed(
                0x05,
                &AdoptedLog::ENVELOPE_V1.seal_raw(1, &1234u64.to_le_bytes()),
            ),
        ),
        (
            "kafka-adopted-v2",
            meta_seed(
                0x05,
                &AdoptedLog {
                    gaps_below: 1234,
                    log_start: 12,
                    compacted: true,
                    adopting: false,
                    segment_ends: vec![(0, 12), (20, 23)],
                }
                .encode_to_vec(),
            ),
        ),
        (
            "clean-shutdown-v1",
            meta_seed(0x09, &CleanShutdown::ENVELOPE.seal_raw(1, body(&marker))),
        ),
        ("cleaner-checkpoint-v2", meta_seed(0x02, &cleaner)),
        (
            "cleaner-checkpoint-v1",
            meta_seed(
                0x0a,
                &CleanerCheckpoint::ENVELOPE.seal_raw(1, body(&cleaner)),
            ),
        ),
        ("producer-snapshot-v3", meta_seed(0x03, &snapshot)),
        (
            "producer-snapshot-v2",
            meta_seed(
                0x13,
                &ProducerSnapshot::ENVELOPE.seal_raw(2, body(&snapshot)),
            ),
        ),
        ("producer-snapshot-v1", meta_seed(0x0b, &snapshot_v1)),
        ("producer-ids-v1", meta_seed(0x04, &counter.encode_to_vec())),
        (
            "producer-ids-12-byte",
            meta_seed(0x04, &counter.encode_unversioned()),
        ),
        ("offsets-key", meta_seed(0x00, &key)),
        ("offsets-value", meta_seed(0x00, &value)),
        // Bodies for the second pass, sealed by it.
        ("body-checkpoint", meta_seed(0x00, body(&checkpoint))),
        ("body-cleaner-checkpoint", meta_seed(0x02, body(&cleaner))),
        ("body-producer-snapshot", meta_seed(0x03, body(&snapshot))),
        ("body-unknown-version", meta_seed(0x18, body(&checkpoint))),
        ("bit-flip-cleaner-checkpoint", meta_seed(0x02, &flipped)),
        ("truncated-producer-snapshot", meta_seed(0x03, &cut)),
        ("garbage", noise(9, 64)),
        ("empty", Vec::new()),
    ]
}

#[test]
#[ignore = "writes fuzz/seeds/; run by hand to regenerate the seed corpora"]
fn regenerate_seed_corpora() {
    let p = pristine();
    // Sanity: the checkpoint helper matches the files the partition writes.
    let cp = p
        .files
        .iter()
        .find(|(f, _)| f.ends_with("checkpoint"))
        .expect("a checkpoint");
    let recovery_point = Checkpoint::decode(&cp.1)
        .expect("a checkpoint")
        .recovery_point;
    assert_eq!(cp.1, checkpoint_bytes(0, recovery_point));
    write_seeds("batch_decode", &batch_decode_seeds_gen(p));
    write_seeds("index_load", &index_load_seeds_gen(p));
    write_seeds("meta_decode", &meta_decode_seeds_gen(p));
    write_seeds("segment_recover", &segment_recover_seeds_gen(p));
}

/// Writes `fuzz/seeds/decompress/`: `[knob, stream]` with a valid stream of each codec as Kafka,
/// librdkafka or another encoder writes it, and damaged ones. Needs every codec:
/// `cargo test --all-features --test storage -- --ignored fuzz_seeds::regenerate_decompress_seeds`.
#[cfg(all(
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
#[test]
#[ignore = "writes the committed seed corpus"]
fn regenerate_decompress_seeds() {
    use std::io::Write as _;
    use topiclog::internals::format::compress;
    use topiclog::Compression;

    for codec in fuzz_checks::CODECS {
        assert!(
            codec.is_available(),
            "{codec} is compiled out: run with --all-features"
        );
    }
    let text: Vec<u8> = (0..120)
        .flat_map(|i| {
            format!(
                "{{\"id\":{i},\"user\":\"u{}\",\"event\":\"click\"}}\n",
                i % 7
            )
            .into_bytes()
        })
        .collect();
    let packed = |codec: Compression, input: &[u8]| {
        let mut out = Vec::new();
        compress(codec, input, &mut out).expect("compress");
        out
    };
    // Knob 0xff: a 16,320-byte limit, more than any content here; knob 1: 64 bytes.
    let seed = |knob: u8, stream: &[u8]| [&[knob][..], stream].concat();
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for (codec, name) in [
        (Compression::None, "none"),
        (Compression::Gzip, "gzip"),
        (Compression::Snappy, "snappy-java"),
        (Compression::Lz4, "lz4-kafka"),
        (Compression::Zstd, "zstd"),
    ] {
        let stream = packed(codec, &text);
        seeds.push((format!("valid-{name}"), seed(0xff, &stream)));
        seeds.push((format!("too-large-{name}"), seed(1, &stream)));
        seeds.push((
            format!("truncated-{name}"),
            seed(0xff, &stream[..stream.len() * 2 / 3]),
        ));
        let mut flipped = stream.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x10;
        seeds.push((format!("bit-flip-{name}"), seed(0xff, &flipped)));
    }
    seeds.push((
        "valid-empty-lz4-kafka".into(),
        seed(0xff, &packed(Compression::Lz4, b"")),
    ));
    seeds.push((
        "valid-empty-snappy-java".into(),
        seed(0xff, &packed(Compression::Snappy, b"")),
    ));
    seeds.push((
        "valid-two-gzip-members".into(),
        seed(
            0xff,
            &[
                packed(Compression::Gzip, b"first "),
                packed(Compression::Gzip, b"second"),
            ]
            .concat(),
        ),
    ));
    seeds.push((
        "valid-two-zstd-frames".into(),
        seed(
            0xff,
            &[
                packed(Compression::Zstd, b"first "),
                packed(Compression::Zstd, &text),
            ]
            .concat(),
        ),
    ));
    seeds.push((
        "valid-two-snappy-java-streams".into(),
        seed(
            0xff,
            &[
                packed(Compression::Snappy, &text),
                packed(Compression::Snappy, b"more"),
            ]
            .concat(),
        ),
    ));
    // librdkafka's snappy: raw, without snappy-java's framing.
    let raw = snap::raw::Encoder::new()
        .compress_vec(&text)
        .expect("snappy");
    seeds.push(("valid-snappy-raw".into(), seed(0xff, &raw)));
    // LZ4 frames Kafka does not write: linked blocks, checksums, content size, stored blocks.
    let frame = |info: lz4_flex::frame::FrameInfo, input: &[u8]| {
        let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(input).expect("lz4");
        encoder.finish().expect("lz4")
    };
    let mut info = lz4_flex::frame::FrameInfo::new()
        .block_mode(lz4_flex::frame::BlockMode::Linked)
        .block_checksums(true)
        .content_checksum(true);
    info.content_size = Some(text.len() as u64);
    seeds.push((
        "valid-lz4-linked-checksums-size".into(),
        seed(0xff, &frame(info, &text)),
    ));
    seeds.push((
        "valid-lz4-kafka-stored-block".into(),
        seed(0xff, &packed(Compression::Lz4, &noise(3, 300))),
    ));
    // zstd as zstd-jni streams it: no content size, a checksum.
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd");
    encoder.include_checksum(true).expect("zstd");
    encoder.write_all(&text).expect("zstd");
    seeds.push((
        "valid-zstd-streamed-checksum".into(),
        seed(0xff, &encoder.finish().expect("zstd")),
    ));
    seeds.push(("garbage".into(), seed(0xff, &noise(4, 200))));
    seeds.push(("empty".into(), Vec::new()));
    seeds.push(("knob-only".into(), vec![0xff]));
    let seeds: Vec<(&str, Vec<u8>)> = seeds.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    write_seeds("decompress", &seeds);
}
