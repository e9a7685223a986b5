//! Checks run on arbitrary bytes, shared by the cargo-fuzz targets in `fuzz_targets/` and by the
//! main crate's `tests/fuzz_seeds.rs`, which includes this file with
//! `#[path = "../fuzz/src/lib.rs"] mod fuzz_checks;` and runs the seed corpora through it. So this
//! file may use only `topiclog`, `bytes` and `std`.
//!
//! A check panics only when topiclog misbehaves: a panic inside topiclog, a wrong answer (compared
//! with a reference model built here from the documented format, `docs/FORMAT.md`), an error where
//! the documentation promises success, or a read that makes no progress.
//!
//! Everything runs on a fresh [`SimFs`] per input, with a [`ManualClock`], so runs are
//! deterministic. Inputs start with one or two bytes of knobs (see each check), so the fuzzer
//! reaches every configuration from the same corpus.
//!
//! Setting `TOPICLOG_FUZZ_LENIENT=1` turns off the assertions for the known, still-open bugs
//! listed in [`KNOWN_BUGS`], so a fuzzing run can look past them for new ones. Seeds and
//! regression tests always run strictly.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use topiclog::fs::{FileSystem, SimFs};
use topiclog::internals::format::meta::{
    self, AdoptedLog, Checkpoint, CleanShutdown, CleanerCheckpoint, Decode, Encode,
    OffsetCommitKey, OffsetCommitValue, ProducerIdCounter, ProducerSnapshot,
};
use topiclog::internals::format::{compress, decompress as codec_decompress, CodecError};
use topiclog::internals::format::{
    decompress as decompress_stream, ATTR_LOG_APPEND_TIME, BATCH_HEADER_LEN, BATCH_PREFIX_LEN,
    CRC_OFFSET, LENGTH_OFFSET, MAGIC, MAGIC_OFFSET, MAX_BATCH_BYTES_LIMIT,
    MAX_DECOMPRESSED_BATCH_BYTES, MIN_BATCH_LENGTH_FIELD, RECORDS_OFFSET,
};
use topiclog::segment::{
    segment_file_name, BatchHeader, OffsetIndex, OffsetPosition, RecordBatch, SegmentFileKind,
    TimeIndex, TimestampOffset,
};
use topiclog::Compression;
use topiclog::{
    Deadline, Durability, Env, Error, LogConfig, ManualClock, Partition, Record, Recovery,
    StoredRecord,
};

/// Known bugs whose assertions `TOPICLOG_FUZZ_LENIENT=1` turns off (see the module docs). Empty:
/// every bug fuzzing found so far is fixed and its input is a seed named `regression-*`.
#[allow(
    dead_code,
    reason = "listed for fuzzing runs; the seed test does not read it"
)]
pub const KNOWN_BUGS: &[&str] = &[];

/// Whether `TOPICLOG_FUZZ_LENIENT` is set: skip the assertions of [`KNOWN_BUGS`].
pub fn lenient() -> bool {
    static LENIENT: OnceLock<bool> = OnceLock::new();
    *LENIENT.get_or_init(|| std::env::var_os("TOPICLOG_FUZZ_LENIENT").is_some_and(|v| v != "0"))
}

// ---- Small helpers --------------------------------------------------------------------------------

/// The partition directory on the simulated file system.
pub const DIR: &str = "/p";
/// Timestamps of generated records start around here.
const T0: i64 = 1_700_000_000_000;

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), written here from its definition so the
/// checks do not lean on the crate's own (hardware) implementation.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0x82F6_3B78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    !data
        .iter()
        .fold(!0u32, |c, &b| table[usize::from((c as u8) ^ b)] ^ (c >> 8))
}

/// The big-endian `u32` at `at` of `b`, which the caller knows holds one.
fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut r = BeReader(b.get(at..).unwrap_or_default());
    r.u32().expect("a u32 at a known position")
}

/// Reads big-endian fields from the front of a slice (Kafka's byte order).
struct BeReader<'a>(&'a [u8]);

impl BeReader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// The CRC a well-formed batch (exactly `12 + length` bytes) must carry: Kafka's CRC-32C of the
/// bytes from the attributes on (the base offset, length, leader epoch and magic are outside it).
pub fn batch_crc(batch: &[u8]) -> u32 {
    crc32c(&batch[BATCH_PREFIX_LEN..])
}

/// Set the base offset of an encoded batch, and its CRC to match.
pub fn set_base_offset(batch: &mut [u8], base: u64) {
    batch[..8].copy_from_slice(&base.to_be_bytes());
    let crc = batch_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Walk `buf` as back-to-back batches by their length fields and rewrite each one's CRC, so the
/// fuzzer can shape batch contents freely. Stops at the first length that does not fit.
pub fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= BATCH_HEADER_LEN {
        let length = be_u32(buf, pos + LENGTH_OFFSET);
        let total = LENGTH_OFFSET + 4 + length as usize;
        if length < MIN_BATCH_LENGTH_FIELD || total > buf.len() - pos {
            break;
        }
        let crc = batch_crc(&buf[pos..pos + total]);
        buf[pos + CRC_OFFSET..pos + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        pos += total;
    }
}

/// Split a segment file into its batches by their headers (for well-formed files).
pub fn split_batches(log: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Ok(h) = BatchHeader::parse(&log[pos..]) {
        let end = pos + h.total_len();
        if end > log.len() {
            break;
        }
        out.push(log[pos..end].to_vec());
        pos = end;
    }
    out
}

/// A checkpoint file's bytes, as the partition writes them (no idempotent producers).
pub fn checkpoint_bytes(log_start_offset: u64, recovery_point: u64) -> Vec<u8> {
    Checkpoint {
        log_start_offset,
        recovery_point,
        producers_from: None,
    }
    .encode_to_vec()
}

fn seg_path(base: u64, kind: SegmentFileKind) -> PathBuf {
    segment_file_name(Path::new(DIR), base, kind)
}

fn is_corrupt(e: &Error) -> bool {
    matches!(e, Error::Corrupt { .. })
}

// ---- Records as plain data ------------------------------------------------------------------------

/// Everything a reader can see of a stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    /// Offset.
    pub offset: u64,
    /// Timestamp.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Rec {
    /// Read every field of `r` (through every accessor, `to_record` included) and check that
    /// they agree.
    pub fn of(r: &StoredRecord) -> Rec {
        let headers: Vec<(String, Option<Vec<u8>>)> = r
            .headers()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(headers.len(), r.header_count(), "header count vs headers()");
        let rec = Rec {
            offset: r.offset(),
            timestamp: r.timestamp(),
            key: r.key().map(|k| k.to_vec()),
            value: r.value().map(|v| v.to_vec()),
            headers,
        };
        let back = r.to_record();
        assert_eq!(back.timestamp(), Some(rec.timestamp));
        assert_eq!(back.key().map(|k| k.to_vec()), rec.key);
        assert_eq!(back.value().map(|v| v.to_vec()), rec.value);
        let back_headers: Vec<(String, Option<Vec<u8>>)> = back
            .headers()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
            .collect();
        assert_eq!(back_headers, rec.headers, "to_record headers");
        rec
    }
}

impl Rec {
    /// The same fields from a borrowed [`topiclog::RecordRef`] (`Partition::read_lazy`).
    pub fn of_ref(r: &topiclog::RecordRef<'_>) -> Rec {
        let headers: Vec<(String, Option<Vec<u8>>)> = r
            .headers()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(headers.len(), r.header_count(), "header count vs headers()");
        Rec {
            offset: r.offset(),
            timestamp: r.timestamp(),
            key: r.key().map(<[u8]>::to_vec),
            value: r.value().map(<[u8]>::to_vec),
            headers,
        }
    }
}

/// What `read_lazy(o, max_bytes)` and its borrowed iterator give: the records, or the first error.
fn lazy_records(log: &Partition, o: u64, max_bytes: usize) -> Result<Vec<Rec>, topiclog::Error> {
    let b = log.read_lazy(o, max_bytes)?;
    b.iter().map(|r| r.map(|r| Rec::of_ref(&r))).collect()
}

// ---- A known-good partition -------------------------------------------------------------------------

/// A partition written through the public API and closed cleanly, as files, plus what it holds.
pub struct Pristine {
    /// Every file of the partition directory after the clean close, with its content.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The records, offsets `0..records.len()`.
    pub records: Vec<Rec>,
    /// Every batch of every segment, in offset order, as stored.
    pub batches: Vec<Vec<u8>>,
    /// The segments' base offsets.
    pub segment_bases: Vec<u64>,
}

/// The configuration the pristine partition was written with: small segments (several of them) and
/// an index entry after nearly every batch.
pub fn pristine_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        index_interval_bytes: 64,
        durability: Durability::None,
        preallocate: true,
        ..LogConfig::default()
    }
}

/// The environment of a simulated partition.
pub fn sim_env(fs: SimFs, clock: ManualClock) -> Env {
    Env {
        fs: Arc::new(fs),
        clock: Arc::new(clock),
    }
}

/// Batch `i` of the pristine partition: keys, tombstones, headers (null values, empty keys), empty
/// and larger values, timestamps from the clock, out of order and jumping ahead.
pub fn sample_batch(i: u64) -> Vec<Record> {
    let t = T0 + i as i64 * 1000;
    match i % 6 {
        0 => vec![Record::new(format!("value-{i}"))
            .with_key(format!("key-{i}"))
            .with_timestamp(t)
            .with_header("trace", Bytes::from(format!("t{i}")))
            .with_header("null", None)],
        1 => vec![Record::tombstone(format!("key-{}", i - 1)).with_timestamp(t - 5_000)],
        2 => (0..3)
            .map(|j| Record::new(vec![b'x'; j * 7]).with_timestamp(t + j as i64))
            .collect(),
        3 => vec![
            Record::new(Bytes::new()),
            Record::default().with_header("", Bytes::new()),
        ],
        4 => vec![Record::new(vec![i as u8; 150])
            .with_key("big")
            .with_timestamp(t + 50_000)],
        _ => vec![Record::new("old").with_timestamp(t - 100_000)],
    }
}

const PRISTINE_BATCHES: u64 = 36;

/// The pristine partition, built once per process.
pub fn pristine() -> &'static Pristine {
    static PRISTINE: OnceLock<Pristine> = OnceLock::new();
    PRISTINE.get_or_init(build_pristine)
}

fn build_pristine() -> Pristine {
    let fs = SimFs::new(1);
    let clock = ManualClock::new(T0);
    let log = Partition::open_with_env(DIR, pristine_config(), sim_env(fs.clone(), clock.clone()))
        .expect("open the pristine partition");
    for i in 0..PRISTINE_BATCHES {
        clock.advance(Duration::from_secs(1));
        log.append_batch(&sample_batch(i)).expect("append");
    }
    let mut records = Vec::new();
    let mut next = 0;
    while next < log.end_offset() {
        let b = log
            .read(next, 1 << 20)
            .expect("read the pristine partition");
        records.extend(b.records().map(|r| Rec::of(&r)));
        next = b.next_offset();
    }
    let segment_bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
    log.close().expect("close");
    drop(log);
    let dir = Path::new(DIR);
    let mut files = Vec::new();
    for name in fs.read_dir(dir).expect("read_dir") {
        let path = dir.join(&name);
        let data = fs.read_file(&path).expect("a file");
        files.push((path, data));
    }
    let mut batches = Vec::new();
    for &base in &segment_bases {
        let log = fs
            .read_file(&seg_path(base, SegmentFileKind::Log))
            .expect("segment log");
        batches.extend(split_batches(&log));
    }
    assert!(segment_bases.len() >= 3, "want several segments");
    assert_eq!(
        records.len() as u64,
        records.last().map_or(0, |r| r.offset + 1)
    );
    Pristine {
        files,
        records,
        batches,
        segment_bases,
    }
}

// ---- batch_decode ---------------------------------------------------------------------------------

/// `RecordBatch::decode` and `BatchHeader::parse` on arbitrary bytes, compared with an independent
/// decoder written from `docs/FORMAT.md`; then the same on a copy whose length and CRC fields are
/// rewritten to match, so the fuzzer gets past the checksum into the records.
pub fn batch_decode(data: &[u8]) {
    check_batch(data);
    if data.len() >= BATCH_HEADER_LEN {
        let mut fixed = data.to_vec();
        let length = i32::try_from(fixed.len() - LENGTH_OFFSET - 4).unwrap_or(i32::MAX);
        fixed[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
        let crc = batch_crc(&fixed);
        fixed[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        check_batch(&fixed);
    }
}

fn check_batch(data: &[u8]) {
    let parsed = BatchHeader::parse(data);
    let reference = ref_header(data);
    match (&parsed, &reference) {
        (Ok(h), Some(r)) => {
            assert_eq!(h, r, "BatchHeader::parse vs reference");
            assert_eq!(h.total_len(), 12 + h.length as usize);
            assert_eq!(
                h.last_offset(),
                h.base_offset + u64::from(h.last_offset_delta)
            );
            assert_eq!(h.next_offset(), h.last_offset() + 1);
            assert_eq!(
                h.is_log_append_time(),
                h.attributes & ATTR_LOG_APPEND_TIME != 0
            );
        }
        (Err(_), None) => {}
        _ => panic!("BatchHeader::parse {parsed:?} disagrees with reference {reference:?}"),
    }
    let decoded = RecordBatch::decode(Bytes::copy_from_slice(data));
    let reference = ref_decode(data);
    match (decoded, reference) {
        (Ok(batch), Some((header, records))) => {
            assert_eq!(batch.header(), &header);
            assert_eq!(&batch.as_bytes()[..], data);
            assert_eq!(batch.base_offset(), header.base_offset);
            assert_eq!(batch.last_offset(), header.last_offset());
            assert_eq!(batch.next_offset(), header.next_offset());
            assert_eq!(batch.max_timestamp(), header.max_timestamp);
            assert_eq!(batch.record_count(), header.record_count);
            let iter = batch.records();
            // A control batch stores records but yields none (transaction markers).
            let data_records = if batch.is_control() {
                0
            } else {
                header.record_count as usize
            };
            assert_eq!(iter.len(), data_records);
            let got: Vec<Rec> = iter.map(|r| Rec::of(&r)).collect();
            assert_eq!(got, records, "decoded records vs reference");
            let again: Vec<Rec> = (&batch).into_iter().map(|r| Rec::of(&r)).collect();
            assert_eq!(again, records);
        }
        (Err((at, reason)), None) => {
            assert!(
                at <= data.len(),
                "error position {at} past the input ({reason})"
            );
        }
        (Ok(_), None) => panic!("RecordBatch::decode accepted a batch the reference rejects"),
        (Err((at, reason)), Some(_)) => {
            panic!("RecordBatch::decode rejected a valid batch at {at}: {reason}")
        }
    }
}

/// The header as Kafka's `DefaultRecordBatch` lays it out, with the documented structural checks.
fn ref_header(b: &[u8]) -> Option<BatchHeader> {
    if b.len() < 61 {
        return None;
    }
    // The fields in Kafka's order and widths (positions 0, 8, 12, 16, 17, 21, 23, 27, 35, 43, 51,
    // 53, 57), big-endian.
    let mut r = BeReader(b);
    let base_offset = r.i64()?;
    let length = r.i32()?;
    let partition_leader_epoch = r.i32()?;
    let magic = r.u8()?;
    let crc = r.u32()?;
    let attributes = r.u16()?;
    let last_offset_delta = r.i32()?;
    let base_timestamp = r.i64()?;
    let max_timestamp = r.i64()?;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let base_sequence = r.i32()?;
    let record_count = r.i32()?;
    assert_eq!(b.len() - r.0.len(), 61, "Kafka's batch header is 61 bytes");
    if magic != 2 || base_offset < 0 || length < 0 || last_offset_delta < 0 || record_count < 0 {
        return None;
    }
    let h = BatchHeader {
        base_offset: base_offset as u64,
        length: length as u32,
        partition_leader_epoch,
        magic,
        crc,
        attributes,
        last_offset_delta: last_offset_delta as u32,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        record_count: record_count as u32,
    };
    let ok = h.length >= 49
        && h.length as usize <= MAX_BATCH_BYTES_LIMIT
        && attributes & 7 <= 4
        && u64::from(h.record_count) <= u64::from(h.last_offset_delta) + 1
        && (base_offset as u64) + u64::from(h.last_offset_delta) < i64::MAX as u64;
    ok.then_some(h)
}

/// A whole batch as documented: header, exact length, CRC, records. Compressed batches are
/// `None` unless this build reads them (checked against the crate's own answer elsewhere).
fn ref_decode(b: &[u8]) -> Option<(BatchHeader, Vec<Rec>)> {
    let h = ref_header(b)?;
    if 12 + h.length as usize != b.len() || batch_crc(b) != h.crc {
        return None;
    }
    // A compressed batch's records are one stream: decompressed with the crate's codecs (which
    // are checked against an independent implementation in `tests/kafka_format`), then parsed
    // here like an uncompressed batch's.
    let decompressed;
    let (b, mut pos) = match h.attributes & 7 {
        0 => (b, RECORDS_OFFSET),
        bits => {
            let codec = Compression::from_attributes(bits).ok()?;
            if u64::from(h.record_count) * 7 > MAX_DECOMPRESSED_BATCH_BYTES as u64 {
                return None;
            }
            let mut out = Vec::new();
            decompress_stream(
                codec,
                &b[RECORDS_OFFSET..],
                MAX_DECOMPRESSED_BATCH_BYTES,
                &mut out,
            )
            .ok()?;
            decompressed = out;
            (&decompressed[..], 0)
        }
    };
    let mut records = Vec::new();
    let mut prev_delta: Option<u64> = None;
    for _ in 0..h.record_count {
        let (ts_delta, off_delta, rec) = ref_record(b, &mut pos)?;
        if off_delta > u64::from(h.last_offset_delta) || prev_delta.is_some_and(|p| off_delta <= p)
        {
            return None;
        }
        prev_delta = Some(off_delta);
        records.push(Rec {
            offset: h.base_offset + off_delta,
            timestamp: if h.attributes & ATTR_LOG_APPEND_TIME != 0 {
                h.max_timestamp
            } else {
                h.base_timestamp.wrapping_add(ts_delta)
            },
            ..rec
        });
    }
    // Compaction may leave the last record below `last offset delta` (docs/FORMAT.md).
    if pos != b.len() {
        return None;
    }
    // A control batch's records are transaction markers, never data.
    if h.attributes & (1 << 5) != 0 {
        records.clear();
    }
    Some((h, records))
}

/// Kafka's varint: LEB128 of the zig-zag value, at most `max_len` bytes, the value within
/// `bits` bits.
fn ref_zigzag(b: &[u8], pos: &mut usize, max_len: usize, bits: u32) -> Option<i64> {
    let mut v = 0u64;
    for i in 0..max_len {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if bits < 64 && v >> bits != 0 {
                return None;
            }
            if bits == 64 && i == 9 && byte > 1 {
                return None;
            }
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

fn ref_varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    ref_zigzag(b, pos, 5, 32)
}

fn ref_varlong(b: &[u8], pos: &mut usize) -> Option<i64> {
    ref_zigzag(b, pos, 10, 64)
}

fn ref_take(b: &[u8], pos: &mut usize, len: u64) -> Option<Vec<u8>> {
    let len = usize::try_from(len).ok()?;
    let end = pos.checked_add(len)?;
    let out = b.get(*pos..end)?.to_vec();
    *pos = end;
    Some(out)
}

fn ref_nullable(b: &[u8], pos: &mut usize) -> Option<Option<Vec<u8>>> {
    match ref_varint(b, pos)? {
        -1 => Some(None),
        n if n >= 0 => ref_take(b, pos, n as u64).map(Some),
        _ => None,
    }
}

/// One record (Kafka's `DefaultRecord`): (timestamp delta, offset delta, fields).
fn ref_record(b: &[u8], pos: &mut usize) -> Option<(i64, u64, Rec)> {
    let len = usize::try_from(ref_varint(b, pos)?).ok()?;
    let end = pos.checked_add(len)?;
    let r = b.get(..end)?;
    let _attributes = *r.get(*pos)?;
    *pos += 1;
    let ts_delta = ref_varlong(r, pos)?;
    let off_delta = u64::try_from(ref_varint(r, pos)?).ok()?;
    let key = ref_nullable(r, pos)?;
    let value = ref_nullable(r, pos)?;
    let count = u64::try_from(ref_varint(r, pos)?).ok()?;
    // Each header takes at least two bytes; bounding the loop changes no verdict.
    if count > (end - (*pos).min(end)) as u64 / 2 {
        return None;
    }
    let mut headers = Vec::new();
    for _ in 0..count {
        let klen = u64::try_from(ref_varint(r, pos)?).ok()?;
        let k = String::from_utf8(ref_take(r, pos, klen)?).ok()?;
        headers.push((k, ref_nullable(r, pos)?));
    }
    if *pos != end {
        return None;
    }
    let rec = Rec {
        offset: 0,
        timestamp: 0,
        key,
        value,
        headers,
    };
    Some((ts_delta, off_delta, rec))
}

// ---- index_load -----------------------------------------------------------------------------------

/// Arbitrary bytes as `.index` and `.timeindex` files.
///
/// Input: `[knobs, split, body..]`; the first `4 * split` bytes of `body` are the offset index, the
/// rest the time index. Knobs: bits 0-1 the segment base offset of the standalone indexes (0, 100, 2^40,
/// u64::MAX - 1000); bits 2-3 their `max_index_bytes` (10 MiB, 0, 100, 4096); bits 4-5 which
/// segments of the pristine partition get the garbage (first, second, last, all); bit 6 reopen with
/// `max_index_bytes` 96; bit 7 leave the pristine time indexes in place. An empty body with an odd
/// `split` deletes both index files instead.
///
/// 1. `OffsetIndex`/`TimeIndex` `load` and `map`: entries, lookups, `sanity_check`, `truncate_to`,
///    `append`, `flush` and reload, all against a reference model.
/// 2. The pristine partition (clean-shutdown marker present, so it trusts its indexes) with those
///    files: open, read every offset, `offset_for_time`, append, close, reopen, read again. Reads
///    must return the right records or an error.
pub fn index_load(data: &[u8]) {
    let knobs = data.first().copied().unwrap_or(0);
    let split = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or(&[]);
    let cut = (usize::from(split) * 4).min(body.len());
    let (offset_bytes, time_bytes) = body.split_at(cut);

    let high = if lenient() {
        u64::MAX - (1 << 33) // index-entry-overflow
    } else {
        u64::MAX - 1000
    };
    let base = [0, 100, 1 << 40, high][usize::from(knobs & 3)];
    let max_index_bytes = [10 << 20, 0, 100, 4096][usize::from((knobs >> 2) & 3)];
    standalone_offset_index(offset_bytes, base, max_index_bytes);
    standalone_time_index(time_bytes, base, max_index_bytes);

    let p = pristine();
    let targets: Vec<u64> = match (knobs >> 4) & 3 {
        0 => vec![p.segment_bases[0]],
        1 => vec![p.segment_bases[1]],
        2 => vec![*p.segment_bases.last().expect("segments")],
        _ => p.segment_bases.clone(),
    };
    let fs = SimFs::new(2);
    for (path, bytes) in &p.files {
        fs.write_file(path, bytes);
    }
    for &b in &targets {
        let paths = [
            seg_path(b, SegmentFileKind::OffsetIndex),
            seg_path(b, SegmentFileKind::TimeIndex),
        ];
        if body.is_empty() && split & 1 == 1 {
            for path in &paths {
                fs.remove_file(path).expect("remove an index");
            }
            continue;
        }
        fs.write_file(&paths[0], offset_bytes);
        if knobs & 0x80 == 0 {
            fs.write_file(&paths[1], time_bytes);
        }
    }
    let clock = ManualClock::new(T0 + 1_000_000);
    let env = sim_env(fs, clock);
    let mut config = pristine_config();
    if knobs & 0x40 != 0 {
        config.max_index_bytes = 96;
    }
    let log = match Partition::open_with_env(DIR, config.clone(), env.clone()) {
        Ok(log) => log,
        Err(e) => panic!("clean open with damaged indexes failed: {e}"),
    };
    assert!(log.recovery_report().clean_shutdown);
    let mut expected = p.records.clone();
    check_dense(&log, &expected, true);

    // Append after the damaged indexes: index entries get added to them.
    for i in 0..3u64 {
        let offset = expected.len() as u64;
        let ts = T0 + 200_000 + i as i64;
        let record = Record::new(vec![b'a'; 40])
            .with_key(format!("after-{i}"))
            .with_timestamp(ts);
        match log.append(record.clone()) {
            Ok(o) => assert_eq!(o, offset, "append offset"),
            Err(e) => panic!("append after a clean open with damaged indexes failed: {e}"),
        }
        expected.push(Rec {
            offset,
            timestamp: ts,
            key: record.key().map(|k| k.to_vec()),
            value: record.value().map(|v| v.to_vec()),
            headers: Vec::new(),
        });
    }
    check_dense(&log, &expected, false);
    log.close().expect("close");
    drop(log);
    let log = match Partition::open_with_env(DIR, config, env) {
        Ok(log) => log,
        Err(e) => panic!("reopen after close failed: {e}"),
    };
    assert!(log.recovery_report().clean_shutdown);
    check_dense(&log, &expected, true);
}

/// Entries of an index file's bytes: whole entries of `len` bytes.
fn raw_entries(bytes: &[u8], len: usize) -> Vec<&[u8]> {
    bytes.chunks_exact(len).collect()
}

fn offset_queries(base: u64, entries: &[OffsetPosition]) -> Vec<u64> {
    let mut q = vec![
        0,
        base.saturating_sub(1),
        base,
        base.saturating_add(1),
        base.saturating_add(u64::from(u32::MAX)),
        u64::MAX,
    ];
    for e in entries.iter().take(64) {
        q.extend([
            e.offset.saturating_sub(1),
            e.offset,
            e.offset.saturating_add(1),
        ]);
    }
    q
}

fn check_offset_index(idx: &OffsetIndex, expected: &[OffsetPosition], max_entries: usize) {
    let base = idx.base_offset();
    assert_eq!(idx.len(), expected.len(), "offset index length");
    assert_eq!(idx.is_empty(), expected.is_empty());
    assert_eq!(idx.max_entries(), max_entries, "offset index max entries");
    assert_eq!(idx.is_full(), expected.len() >= max_entries);
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(idx.entry(i), Some(*e), "offset index entry {i}");
    }
    assert_eq!(idx.entry(expected.len()), None);
    let start = OffsetPosition {
        offset: base,
        position: 0,
    };
    assert_eq!(idx.last_entry(), expected.last().copied().unwrap_or(start));
    let sorted = expected.windows(2).all(|w| w[0].offset <= w[1].offset);
    for q in offset_queries(base, expected) {
        let got = idx.lookup(q);
        if sorted {
            let want = if q < base {
                start
            } else {
                expected
                    .iter()
                    .rev()
                    .find(|e| e.offset <= q)
                    .copied()
                    .unwrap_or(start)
            };
            assert_eq!(got, want, "offset index lookup({q})");
        } else {
            assert!(
                got == start || expected.contains(&got),
                "lookup({q}) returned {got:?}, not an entry"
            );
        }
    }
    let max_pos = expected.iter().map(|e| u64::from(e.position)).max();
    for log_len in [0, 1, 4096, u64::MAX]
        .into_iter()
        .chain(max_pos)
        .chain(max_pos.map(|p| p + 1))
    {
        let want = expected.iter().enumerate().all(|(i, e)| {
            u64::from(e.position) < log_len.max(1)
                && if i == 0 {
                    e.position == 0 || e.offset != base
                } else {
                    e.offset > expected[i - 1].offset && e.position > expected[i - 1].position
                }
        });
        assert_eq!(
            idx.sanity_check(log_len).is_ok(),
            want,
            "offset index sanity_check({log_len})"
        );
    }
}

fn standalone_offset_index(bytes: &[u8], base: u64, max_index_bytes: usize) {
    let fs = SimFs::new(3);
    let path = segment_file_name(Path::new("/i"), base, SegmentFileKind::OffsetIndex);
    fs.write_file(&path, bytes);
    let arc: Arc<dyn FileSystem> = Arc::new(fs);
    let all: Vec<OffsetPosition> = raw_entries(bytes, 8)
        .into_iter()
        .map(|e| {
            let mut r = BeReader(e);
            let (relative, position) = (r.u32(), r.u32());
            OffsetPosition {
                offset: base.wrapping_add(u64::from(relative.expect("an entry"))),
                position: position.expect("an entry"),
            }
        })
        .collect();
    let cap = (max_index_bytes / 8).max(1);
    // Any entry, not just the first `cap`: a map keeps them all.
    if let Some(first_bad) = raw_entries(bytes, 8)
        .iter()
        .position(|e| base.checked_add(u64::from(be_u32(e, 0))).is_none())
    {
        // An entry past u64::MAX: damage the index must report, never a panic or a wrap.
        let loaded =
            OffsetIndex::load(arc.clone(), &path, base, max_index_bytes).expect("load index");
        assert!(
            first_bad >= loaded.len() || loaded.sanity_check(u64::MAX).is_err(),
            "overflowing entry passed sanity_check"
        );
        for q in offset_queries(base, &[]) {
            let _ = loaded.lookup(q);
        }
        return;
    }

    let mut loaded =
        OffsetIndex::load(arc.clone(), &path, base, max_index_bytes).expect("load index");
    let mut model: Vec<OffsetPosition> = all.iter().take(cap).copied().collect();
    check_offset_index(&loaded, &model, cap);
    let mut mapped =
        OffsetIndex::map(arc.clone(), &path, base, max_index_bytes).expect("map index");
    check_offset_index(&mapped, &all, cap.max(all.len()));

    // Mutate both, flush, and read back what was written.
    for (idx, model, cap) in [
        (&mut loaded, &mut model, cap),
        (&mut mapped, &mut all.clone(), cap.max(all.len())),
    ] {
        let sorted = model.windows(2).all(|w| w[0].offset <= w[1].offset);
        let cut = model.get(model.len() / 2).map_or(base, |e| e.offset);
        idx.truncate_to(cut);
        if sorted {
            model.retain(|e| e.offset < cut);
            check_offset_index(idx, model, cap);
        } else {
            assert!(idx.len() <= model.len());
            model.truncate(idx.len());
        }
        let last = model.last().copied();
        let (off, pos) = match last {
            Some(l) => (l.offset.saturating_add(1), l.position.saturating_add(1)),
            None => (base, 0),
        };
        let accept = model.len() < cap
            && off
                .checked_sub(base)
                .is_some_and(|r| u32::try_from(r).is_ok())
            && last.is_none_or(|l| off > l.offset && pos > l.position);
        assert_eq!(
            idx.append(off, pos).is_ok(),
            accept,
            "offset index append({off}, {pos}) after {last:?}"
        );
        if accept {
            model.push(OffsetPosition {
                offset: off,
                position: pos,
            });
        }
        check_offset_index(idx, model, cap);
        idx.flush(true).expect("flush index");
        let again = OffsetIndex::load(arc.clone(), &path, base, 1 << 30).expect("reload");
        let on_disk: Vec<OffsetPosition> =
            (0..again.len()).filter_map(|i| again.entry(i)).collect();
        assert_eq!(
            &on_disk[..model.len().min(on_disk.len())],
            &model[..],
            "flushed offset index"
        );
        if bytes.len() / 8 <= cap {
            assert_eq!(on_disk.len(), model.len(), "flushed offset index length");
        }
        fs_restore(&arc, &path, bytes);
    }
}

/// Put the original bytes back for the next variant.
fn fs_restore(fs: &Arc<dyn FileSystem>, path: &Path, bytes: &[u8]) {
    let file = fs
        .open(path, topiclog::fs::OpenMode::Create)
        .expect("reopen index");
    file.set_len(0).expect("set_len");
    file.write_all_at(bytes, 0).expect("write");
}

fn check_time_index(idx: &TimeIndex, expected: &[TimestampOffset], max_entries: usize) {
    let base = idx.base_offset();
    assert_eq!(idx.len(), expected.len(), "time index length");
    assert_eq!(idx.is_empty(), expected.is_empty());
    assert_eq!(idx.is_full(), expected.len() >= max_entries);
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(idx.entry(i), Some(*e), "time index entry {i}");
    }
    assert_eq!(idx.entry(expected.len()), None);
    assert_eq!(idx.last_entry(), expected.last().copied());
    let none = TimestampOffset {
        timestamp: i64::MIN,
        offset: base,
    };
    let sorted = expected
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp);
    let mut queries = vec![i64::MIN, -1, 0, i64::MAX];
    for e in expected.iter().take(64) {
        queries.extend([
            e.timestamp.saturating_sub(1),
            e.timestamp,
            e.timestamp.saturating_add(1),
        ]);
    }
    for q in queries {
        let got = idx.lookup(q);
        if sorted {
            let want = expected
                .iter()
                .rev()
                .find(|e| e.timestamp <= q)
                .copied()
                .unwrap_or(none);
            assert_eq!(got, want, "time index lookup({q})");
        } else {
            assert!(
                got == none || expected.contains(&got),
                "time lookup({q}) returned {got:?}, not an entry"
            );
        }
    }
    let max_off = expected.iter().map(|e| e.offset).max();
    for next in [
        0,
        base,
        base.saturating_add(1),
        base.saturating_add(1000),
        u64::MAX,
    ]
    .into_iter()
    .chain(max_off)
    .chain(max_off.map(|o| o.saturating_add(1)))
    {
        let want = expected.iter().enumerate().all(|(i, e)| {
            e.offset < next.max(base.saturating_add(1))
                && (i == 0
                    || (e.timestamp > expected[i - 1].timestamp
                        && e.offset >= expected[i - 1].offset))
        });
        assert_eq!(
            idx.sanity_check(next).is_ok(),
            want,
            "time index sanity_check({next})"
        );
    }
}

fn standalone_time_index(bytes: &[u8], base: u64, max_index_bytes: usize) {
    let fs = SimFs::new(4);
    let path = segment_file_name(Path::new("/i"), base, SegmentFileKind::TimeIndex);
    fs.write_file(&path, bytes);
    let arc: Arc<dyn FileSystem> = Arc::new(fs);
    let all: Vec<TimestampOffset> = raw_entries(bytes, 12)
        .into_iter()
        .map(|e| {
            let mut r = BeReader(e);
            let (timestamp, relative) = (r.i64(), r.u32());
            TimestampOffset {
                timestamp: timestamp.expect("an entry"),
                offset: base.wrapping_add(u64::from(relative.expect("an entry"))),
            }
        })
        .collect();
    let cap = (max_index_bytes / 12).max(1);
    // Any entry, not just the first `cap`: a map keeps them all.
    if let Some(first_bad) = raw_entries(bytes, 12)
        .iter()
        .position(|e| base.checked_add(u64::from(be_u32(e, 8))).is_none())
    {
        // An entry past u64::MAX: damage the index must report, never a panic or a wrap.
        let loaded =
            TimeIndex::load(arc.clone(), &path, base, max_index_bytes).expect("load time index");
        assert!(
            first_bad >= loaded.len() || loaded.sanity_check(u64::MAX).is_err(),
            "overflowing entry passed sanity_check"
        );
        for q in [i64::MIN, -1, 0, 1, i64::MAX] {
            let _ = loaded.lookup(q);
        }
        return;
    }

    let mut loaded =
        TimeIndex::load(arc.clone(), &path, base, max_index_bytes).expect("load time index");
    // A loaded time index keeps one entry past its maximum: the final entry of a sealed segment
    // may go there (`TimeIndex::append_final`).
    let mut model: Vec<TimestampOffset> = all.iter().take(cap + 1).copied().collect();
    check_time_index(&loaded, &model, cap);
    let mut mapped =
        TimeIndex::map(arc.clone(), &path, base, max_index_bytes).expect("map time index");
    check_time_index(&mapped, &all, cap.max(all.len()));

    for (idx, model, cap) in [
        (&mut loaded, &mut model, cap),
        (&mut mapped, &mut all.clone(), cap.max(all.len())),
    ] {
        let cut = model.get(model.len() / 2).map_or(base, |e| e.offset);
        idx.truncate_to(cut);
        while model.last().is_some_and(|e| e.offset >= cut) {
            model.pop();
        }
        check_time_index(idx, model, cap);
        let last = model.last().copied();
        let (ts, off) = match last {
            Some(l) => (l.timestamp.saturating_add(1), l.offset.saturating_add(1)),
            None => (0, base),
        };
        let accept = match last {
            Some(l) if ts == l.timestamp && off >= l.offset => None,
            Some(l) if ts < l.timestamp || off < l.offset => Some(false),
            _ => Some(
                model.len() < cap
                    && off
                        .checked_sub(base)
                        .is_some_and(|r| u32::try_from(r).is_ok()),
            ),
        };
        let result = idx.append(ts, off);
        assert_eq!(
            result.is_ok(),
            accept != Some(false),
            "time index append({ts}, {off}) after {last:?}: {result:?}"
        );
        if accept == Some(true) {
            model.push(TimestampOffset {
                timestamp: ts,
                offset: off,
            });
        }
        check_time_index(idx, model, cap);
        idx.flush(true).expect("flush time index");
        let again = TimeIndex::load(arc.clone(), &path, base, 1 << 30).expect("reload");
        let on_disk: Vec<TimestampOffset> =
            (0..again.len()).filter_map(|i| again.entry(i)).collect();
        assert_eq!(
            &on_disk[..model.len().min(on_disk.len())],
            &model[..],
            "flushed time index"
        );
        if bytes.len() / 12 <= cap {
            assert_eq!(on_disk.len(), model.len(), "flushed time index length");
        }
        fs_restore(&arc, &path, bytes);
    }
}

/// The partition holds exactly `expected` (offsets `0..len`): every offset reads back the right
/// records or fails with `Corrupt`; a sequential scan progresses; with `times`, `offset_for_time`
/// is right for every record's timestamp (and one more).
fn check_dense(log: &Partition, expected: &[Rec], times: bool) {
    let end = expected.len() as u64;
    assert_eq!(log.start_offset(), 0, "start offset");
    assert_eq!(log.end_offset(), end, "end offset");
    for o in 0..end {
        let max_bytes = [1, 200, 1 << 20][(o % 3) as usize];
        let lazy = lazy_records(log, o, max_bytes);
        if let Ok(l) = &lazy {
            // Whatever the borrowed path returns is genuine and dense, from `o` on (it may step
            // over damage the owned path reports, in records before `o` it never decodes).
            if let Some(first) = l.first() {
                assert!(
                    first.offset >= o,
                    "read_lazy({o}) returned {}",
                    first.offset
                );
                let at = first.offset as usize;
                for (k, r) in l.iter().enumerate() {
                    assert_eq!(Some(r), expected.get(at + k), "read_lazy({o}) record {k}");
                }
            }
        }
        match log.read(o, max_bytes) {
            Ok(b) => {
                let got: Vec<Rec> = b.records().map(|r| Rec::of(&r)).collect();
                assert_eq!(
                    lazy.as_ref().ok(),
                    Some(&got),
                    "read_lazy({o}) disagrees with read"
                );
                assert!(
                    !got.is_empty(),
                    "read({o}) returned no records below the end"
                );
                if lenient() {
                    // stale-offset-entry: the read may start after `o`, but what it returns must
                    // be genuine and dense.
                    assert!(got[0].offset >= o, "read({o}) returned {}", got[0].offset);
                    let first = got[0].offset as usize;
                    for (k, r) in got.iter().enumerate() {
                        assert_eq!(Some(r), expected.get(first + k), "read({o}) record {k}");
                    }
                } else {
                    for (k, r) in got.iter().enumerate() {
                        assert_eq!(r, &expected[o as usize + k], "read({o}) record {k}");
                    }
                    assert_eq!(
                        b.next_offset(),
                        o + got.len() as u64,
                        "read({o}) next offset"
                    );
                }
            }
            Err(e) if is_corrupt(&e) => {}
            Err(e) => panic!("read({o}) failed: {e}"),
        }
    }
    assert!(log.read(end, 100).expect("read at the end").is_empty());
    assert!(matches!(
        log.read(end + 1, 100),
        Err(Error::OffsetOutOfRange { .. })
    ));
    let mut next = 0;
    while next < end {
        match log.read(next, 300) {
            Ok(b) => {
                assert!(b.next_offset() > next, "read({next}) made no progress");
                next = b.next_offset();
            }
            Err(e) if is_corrupt(&e) => next += 1,
            Err(e) => panic!("read({next}) failed: {e}"),
        }
    }
    if !times {
        return;
    }
    let mut queries: Vec<i64> = expected.iter().map(|r| r.timestamp).collect();
    queries.extend(expected.iter().map(|r| r.timestamp + 1));
    queries.extend([i64::MIN, i64::MAX]);
    queries.sort_unstable();
    queries.dedup();
    for t in queries {
        let want = expected
            .iter()
            .find(|r| r.timestamp >= t)
            .map(|r| TimestampOffset {
                timestamp: r.timestamp,
                offset: r.offset,
            });
        match log.offset_for_time(t) {
            Ok(got) if lenient() => {
                // short-timeindex: the answer may come too late, but must be a real record.
                if let Some(g) = got {
                    assert!(g.timestamp >= t, "offset_for_time({t}) = {g:?}");
                    let r = usize::try_from(g.offset).ok().and_then(|o| expected.get(o));
                    assert_eq!(r.map(|r| r.timestamp), Some(g.timestamp), "{g:?}");
                    assert!(
                        want.is_some_and(|w| w.offset <= g.offset),
                        "{g:?} vs {want:?}"
                    );
                }
            }
            Ok(got) => assert_eq!(got, want, "offset_for_time({t})"),
            Err(e) if is_corrupt(&e) => {}
            Err(e) => panic!("offset_for_time({t}) failed: {e}"),
        }
    }
}

// ---- segment_recover ------------------------------------------------------------------------------

/// A batch the reference scan accepted.
#[derive(Clone, Debug)]
pub struct RefBatch {
    /// The stored bytes.
    pub bytes: Vec<u8>,
    /// Base offset.
    pub base: u64,
    /// Offset after the batch.
    pub next: u64,
    /// Records.
    pub records: Vec<Rec>,
    /// Header max timestamp.
    pub max_timestamp: i64,
    /// A compressed batch whose records do not decode (codec not built in, or a damaged
    /// payload under a valid CRC): recovery keeps it (it checks CRCs only), reads report it.
    pub opaque: bool,
}

/// What recovery must keep of a segment file: the longest prefix of valid batches whose offsets
/// continue exactly, carry partition leader epoch 0 (what topiclog writes), stay within `int32` of
/// the segment base, and whose positions stay within `int32`.
/// Returns the batches, the byte length of the prefix and the offset after it.
pub fn ref_scan(log: &[u8], seg_base: u64) -> (Vec<RefBatch>, usize, u64) {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut expected = seg_base;
    while pos < log.len() {
        let rest = &log[pos..];
        let Ok(h) = BatchHeader::parse(rest) else {
            break;
        };
        let total = h.total_len();
        if total > rest.len() {
            break;
        }
        let decoded = RecordBatch::decode(Bytes::copy_from_slice(&rest[..total]));
        let compressed = h.attributes & 7 != 0;
        if decoded.is_err() && !(compressed && batch_crc(&rest[..total]) == h.crc) {
            break;
        }
        // Every batch continues the one before it exactly (topiclog's logs have no offset gaps:
        // Kafka's CRC leaves the base offset out, and this is what checks it).
        if h.base_offset != expected
            || h.partition_leader_epoch != 0
            || h.last_offset() - seg_base > i32::MAX as u64
            || (pos + total) as u64 > i32::MAX as u64
        {
            break;
        }
        out.push(RefBatch {
            bytes: rest[..total].to_vec(),
            base: h.base_offset,
            next: h.next_offset(),
            records: decoded
                .as_ref()
                .map(|b| b.records().map(|r| Rec::of(&r)).collect())
                .unwrap_or_default(),
            max_timestamp: h.max_timestamp,
            opaque: decoded.is_err(),
        });
        pos += total;
        expected = h.next_offset();
    }
    (out, pos, expected)
}

/// Whether the bytes at `pos` of a `.log` (where a batch based at `expected` belongs, but no
/// valid one is) could be what a torn write of that batch left: zeros, or a header whose written
/// bytes agree with such a batch (base offset, version, a plausible length), with zeros where it
/// was not written. A complete, checksummed batch the scan refused (offsets going backwards or
/// past the segment's range) is not.
pub fn torn_compatible(log: &[u8], pos: usize, expected: u64) -> bool {
    let rest = &log[pos..];
    if let Ok(h) = BatchHeader::parse(rest) {
        // A batch recovery takes for valid: CRC, and record framing when uncompressed (it does
        // not decompress).
        let whole = h.total_len() <= rest.len();
        let valid = whole
            && if h.attributes & 7 == 0 {
                RecordBatch::decode(Bytes::copy_from_slice(&rest[..h.total_len()])).is_ok()
            } else {
                batch_crc(&rest[..h.total_len()]) == h.crc
            };
        if valid {
            return false;
        }
    }
    let h = &rest[..rest.len().min(BATCH_HEADER_LEN)];
    let base_ok = h
        .iter()
        .zip(expected.to_be_bytes())
        .all(|(&got, want)| got == want || got == 0);
    let magic = h.get(MAGIC_OFFSET).copied();
    let magic_ok = magic.is_none_or(|m| m == MAGIC || m == 0);
    let length_ok = match (h.get(LENGTH_OFFSET..LENGTH_OFFSET + 4), magic) {
        (Some(l), Some(m)) if m != 0 => {
            let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
            (MIN_BATCH_LENGTH_FIELD..=MAX_BATCH_BYTES_LIMIT as u32).contains(&len)
        }
        _ => true,
    };
    base_ok && magic_ok && length_ok
}

/// Arbitrary bytes as a `.log`, recovered after an unclean stop.
///
/// Input: `[knobs0, knobs1, body..]`. The segment file is 0-3 pristine batches (knobs0 bits 0-1)
/// followed by `body`, whose CRCs are rewritten if knobs0 bit 2 is set. knobs0: bit 3 preallocate;
/// bits 4-5 checkpoint (none, zeros, start/recovery point from knobs1, damaged); bit 6 a second,
/// valid segment follows; bit 7 `index_interval_bytes` 64 instead of 4096. knobs1: bits 0-3 the
/// checkpoint's recovery point (`n`, or `u64::MAX` for 15); bits 4-5 `max_index_bytes` (10 MiB,
/// 4096, 36, 12); bit 6 the checkpoint's log start offset is the same number; bit 7
/// `max_batch_bytes` 200.
///
/// Opens with both `Recovery` modes. Without a valid checkpoint, a partition holding data must not
/// open (its log start offset is unknown), nor a first segment that is not in topiclog's format
/// (neither valid nor a torn batch from its first byte). Otherwise `TruncateCorrupt` must open;
/// `Strict` may fail only when the file holds more than valid batches or the first segment ends
/// before the second begins below the recovery point, and must fail when its batches end below
/// the recovery point. What opens must hold exactly the reference prefix: every read, a
/// sequential scan, `offset_for_time`, then append, close, reopen and read again.
pub fn segment_recover(data: &[u8]) {
    let k0 = data.first().copied().unwrap_or(0);
    let k1 = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or(&[]);
    let p = pristine();

    let mut log1 = Vec::new();
    let mut next = 0;
    for b in p.batches.iter().take(usize::from(k0 & 3)) {
        let mut b = b.clone();
        set_base_offset(&mut b, next);
        next = BatchHeader::parse(&b)
            .expect("pristine batch")
            .next_offset();
        log1.extend_from_slice(&b);
    }
    let body_at = log1.len();
    log1.extend_from_slice(body);
    if k0 & 4 != 0 {
        fix_crcs(&mut log1[body_at..]);
    }
    let (ref1, end1, expected1) = ref_scan(&log1, 0);

    let n = u64::from(k1 & 15);
    let param = if n == 15 { u64::MAX } else { n };
    let (checkpoint, log_start, recovery_point) = match (k0 >> 4) & 3 {
        0 => (None, 0, 0),
        1 => (Some(checkpoint_bytes(0, 0)), 0, 0),
        2 => {
            let start = if k1 & 0x40 != 0 { param } else { 0 };
            (Some(checkpoint_bytes(start, param)), start, param)
        }
        _ => {
            let mut c = checkpoint_bytes(param, param);
            c[7] ^= 0x55;
            (Some(c), 0, 0)
        }
    };

    let two_segments = k0 & 0x40 != 0;
    let base2 = expected1.max(1);
    let mut log2 = Vec::new();
    let mut next = base2;
    for b in p.batches.iter().take(2) {
        let mut b = b.clone();
        set_base_offset(&mut b, next);
        next = BatchHeader::parse(&b)
            .expect("pristine batch")
            .next_offset();
        log2.extend_from_slice(&b);
    }
    let (ref2, _, _) = ref_scan(&log2, base2);
    // A first segment wholly below the log start offset is what an interrupted retention pass
    // leaves; open deletes it (covered by the retention crash tests). Keep this target on
    // recovery: start below the second segment.
    let (checkpoint, log_start) = if two_segments && log_start >= base2 {
        (Some(checkpoint_bytes(0, recovery_point)), 0)
    } else {
        (checkpoint, log_start)
    };

    // What recovery must keep.
    let leftover1 = end1 < log1.len();
    // The segment holding the offset just below the recovery point is rescanned too.
    let first_scanned = !two_segments || base2 >= recovery_point;
    // A first segment that ends before the second starts (here: an empty one) leaves a hole: the
    // second is dropped too. Below the recovery point the hole is damage.
    let hole = two_segments && expected1 < base2;
    let hole_is_damage = hole && expected1 < recovery_point;
    let cut1 = hole;
    // Data (a batch's first bytes) and no valid checkpoint: the log start offset is unknown.
    let holds_data = two_segments
        || log1[..log1.len().min(BATCH_HEADER_LEN)]
            .iter()
            .any(|&b| b != 0);
    let checkpoint_lost = matches!((k0 >> 4) & 3, 0 | 3) && holds_data;
    // Bytes recovery cannot take for a torn tail of this log: never cut silently, and at the
    // first byte never cut at all.
    let foreign1 = leftover1 && !torn_compatible(&log1, end1, expected1);
    let foreign_at_start = foreign1 && end1 == 0 && first_scanned;
    // A first segment that starts with a zero header and holds data after it: no torn write of
    // a batch leaves that, and cutting it would erase the file's whole content, none of it
    // identified as ours, so recovery refuses it in every mode (as another format at the first
    // byte).
    let header = log1.len().min(BATCH_HEADER_LEN);
    let zeros_then_data_at_start = end1 == 0
        && first_scanned
        && log1[..header].iter().all(|&b| b == 0)
        && log1[header..].iter().any(|&b| b != 0);
    let mut content = ref1;
    if two_segments && !cut1 {
        content.extend(ref2);
    }
    // A log that ends below the recovery point lost durable records: damage.
    let ends_below = content.last().map_or(0, |b| b.next) < recovery_point;

    let mut config = LogConfig {
        segment_bytes: 4096,
        segment_ms: Deadline::Never,
        durability: Durability::None,
        preallocate: k0 & 8 != 0,
        index_interval_bytes: if k0 & 0x80 != 0 { 64 } else { 4096 },
        max_index_bytes: [10 << 20, 4096, 36, 12][usize::from((k1 >> 4) & 3)],
        ..LogConfig::default()
    };
    if k1 & 0x80 != 0 {
        config.max_batch_bytes = 200;
    }

    for mode in [Recovery::Strict, Recovery::TruncateCorrupt] {
        let fs = SimFs::new(5);
        fs.write_file(&seg_path(0, SegmentFileKind::Log), &log1);
        if two_segments {
            fs.write_file(&seg_path(base2, SegmentFileKind::Log), &log2);
        }
        if let Some(c) = &checkpoint {
            fs.write_file(&Path::new(DIR).join("checkpoint"), c);
        }
        // A directory topiclog opened before (it leaves its lock file): a lost checkpoint is
        // damage, not a log written by Kafka to adopt (tests/storage/partition/kafka_adoption.rs).
        fs.write_file(&Path::new(DIR).join(".lock"), b"");
        let config = LogConfig {
            recovery: mode,
            ..config.clone()
        };
        let env = sim_env(fs, ManualClock::new(T0));
        let log = match Partition::open_with_env(DIR, config.clone(), env.clone()) {
            Ok(log) => log,
            Err(Error::IndexAppend { .. }) if lenient() => continue, // index-full-recovery
            Err(e) => {
                // Another format at the first byte is named as such (old Kafka, or topiclog's
                // pre-release format); anything else wrong is `Corrupt`.
                let named = matches!(e, Error::UnsupportedFormat { .. }) && foreign_at_start;
                assert!(is_corrupt(&e) || named, "recovery failed with {e}");
                if checkpoint_lost || foreign_at_start || zeros_then_data_at_start {
                    continue;
                }
                assert!(
                    mode == Recovery::Strict,
                    "TruncateCorrupt recovery failed: {e}"
                );
                assert!(
                    leftover1 || !first_scanned || hole_is_damage || ends_below,
                    "Strict recovery failed on a log of valid batches: {e}"
                );
                continue;
            }
        };
        assert!(
            !checkpoint_lost,
            "a partition holding data opened without a valid checkpoint"
        );
        assert!(
            !foreign_at_start,
            "a segment not in topiclog's format from its first byte opened"
        );
        assert!(
            !zeros_then_data_at_start,
            "a segment of zeros then data opened (its content would have been erased)"
        );
        let report = log.recovery_report();
        assert!(!report.clean_shutdown);
        if !first_scanned {
            // The first segment is below the recovery point, so it is trusted unread: exercise it,
            // but errors are fine.
            exercise(&log, &config, &env);
            continue;
        }
        assert!(
            !(mode == Recovery::Strict && leftover1 && expected1 < recovery_point),
            "Strict recovery cut data below the recovery point {recovery_point} (valid up to {expected1})"
        );
        assert!(
            !(mode == Recovery::Strict && (hole_is_damage || foreign1 || ends_below)),
            "Strict recovery cut damage silently (hole below the recovery point: {hole_is_damage}, \
             bytes not of this log: {foreign1})"
        );
        // Recovery reports a cut tail when it holds non-zero bytes within one maximum batch of
        // the cut (it does not read a preallocated file to its end), or when it cut damage.
        let probe = (config.max_batch_bytes as usize + BATCH_HEADER_LEN).min(log1.len() - end1);
        let nonzero_near = log1[end1..end1 + probe].iter().any(|&b| b != 0);
        let truncated1 = if leftover1 && (nonzero_near || report.corruption_cut) {
            (log1.len() - end1) as u64
        } else {
            0
        };
        assert_eq!(report.bytes_truncated, truncated1, "bytes_truncated");
        let kept2 = two_segments && !cut1;
        assert_eq!(report.segments_scanned, 1 + usize::from(kept2));
        assert_eq!(report.segments_deleted, usize::from(two_segments && cut1));
        let end = content.last().map_or(0, |b| b.next);
        let start = log_start.min(end);
        if content.iter().any(|b| b.opaque) {
            // Reads of an undecodable compressed batch fail, as they must; nothing to compare.
            continue;
        }
        check_content(&log, &content, start, end);

        // Append, close cleanly, reopen: the same content plus the new record.
        let offset = log
            .append(Record::new("after").with_timestamp(7))
            .unwrap_or_else(|e| panic!("append after recovery failed: {e}"));
        assert_eq!(offset, end, "append offset after recovery");
        let got: Vec<Rec> = log
            .read(end, 1 << 20)
            .expect("read the appended record")
            .records()
            .map(|r| Rec::of(&r))
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].value.as_deref(), Some(&b"after"[..]));
        log.close().expect("close after recovery");
        drop(log);
        let log = Partition::open_with_env(DIR, config, env).expect("reopen after recovery");
        assert!(log.recovery_report().clean_shutdown);
        let mut scan = Vec::new();
        let mut at = start;
        while at < log.end_offset() {
            let b = log.read(at, 1 << 20).expect("read after reopen");
            assert!(b.next_offset() > at, "no progress at {at}");
            at = b.next_offset();
            check_batches_are_content(b.batches(), &content, end + 1, "after reopen");
            scan.extend(b.records().map(|r| Rec::of(&r)));
        }
        let want: Vec<&Rec> = content_records(&content, start);
        assert_eq!(scan.len(), want.len() + 1, "records after reopen");
        for (got, want) in scan.iter().zip(&want) {
            assert_eq!(got, *want, "record after reopen");
        }
    }
}

/// The records of `content` at or after `start`.
fn content_records(content: &[RefBatch], start: u64) -> Vec<&Rec> {
    content
        .iter()
        .flat_map(|b| &b.records)
        .filter(|r| r.offset >= start)
        .collect()
}

/// Every batch a read returned is a batch of `content`, byte for byte (or, at or past `appended`,
/// one appended after recovery).
fn check_batches_are_content(got: &[RecordBatch], content: &[RefBatch], appended: u64, what: &str) {
    for g in got {
        if g.base_offset() + 1 >= appended {
            continue;
        }
        let want = content
            .iter()
            .find(|b| b.base == g.base_offset())
            .unwrap_or_else(|| panic!("{what}: batch at {} is not in the log", g.base_offset()));
        assert_eq!(
            &g.as_bytes()[..],
            &want.bytes[..],
            "{what}: batch at {}",
            want.base
        );
    }
}

/// The recovered partition holds exactly `content`, readable from `start` to `end`.
fn check_content(log: &Partition, content: &[RefBatch], start: u64, end: u64) {
    assert_eq!(log.end_offset(), end, "end offset after recovery");
    assert_eq!(log.start_offset(), start, "start offset after recovery");
    let mut offsets = vec![start, start.saturating_add(1)];
    for b in content {
        offsets.extend([b.base, b.base + 1, b.next - 1, b.next]);
    }
    offsets.retain(|&o| o >= start && o < end);
    offsets.sort_unstable();
    offsets.dedup();
    for (i, &o) in offsets.iter().enumerate() {
        let max_bytes = [1, 100, 1 << 20][i % 3];
        let b = log
            .read(o, max_bytes)
            .unwrap_or_else(|e| panic!("read({o}) after recovery failed: {e}"));
        // The first batch holding a record at or after `o` (batches holding only records below
        // it, or none, are passed over); none: the read is empty and points at the end.
        let got = b.batches();
        let Some(first) = content
            .iter()
            .position(|b| b.records.iter().any(|r| r.offset >= o))
        else {
            assert!(
                got.is_empty(),
                "read({o}) returned batches with no record at or after it"
            );
            assert_eq!(b.next_offset(), end, "read({o}) next offset");
            continue;
        };
        assert!(!got.is_empty(), "read({o}) returned nothing below the end");
        assert!(got.len() <= content.len() - first);
        for (g, want) in got.iter().zip(&content[first..]) {
            assert_eq!(&g.as_bytes()[..], &want.bytes[..], "read({o}) batch");
        }
        if got.len() > 1 {
            assert!(b.size_bytes() <= max_bytes, "read({o}) exceeded max_bytes");
        }
        let records: Vec<Rec> = b.records().map(|r| Rec::of(&r)).collect();
        let want: Vec<&Rec> = content[first..first + got.len()]
            .iter()
            .flat_map(|b| &b.records)
            .filter(|r| r.offset >= o)
            .collect();
        assert_eq!(
            records.iter().collect::<Vec<_>>(),
            want,
            "read({o}) records"
        );
    }
    assert!(log.read(end, 10).expect("read at the end").is_empty());
    if end < u64::MAX {
        assert!(matches!(
            log.read(end + 1, 10),
            Err(Error::OffsetOutOfRange { .. })
        ));
    }
    if start > 0 {
        assert!(matches!(
            log.read(start - 1, 10),
            Err(Error::OffsetOutOfRange { .. })
        ));
    }
    // Sequential scan.
    let mut scan = Vec::new();
    let mut at = start;
    while at < end {
        let b = log
            .read(at, 150)
            .unwrap_or_else(|e| panic!("read({at}) after recovery failed: {e}"));
        assert!(b.next_offset() > at, "read({at}) made no progress");
        at = b.next_offset();
        check_batches_are_content(b.batches(), content, u64::MAX, "sequential scan");
        scan.extend(b.records().map(|r| Rec::of(&r)));
    }
    let want = content_records(content, start);
    assert_eq!(scan.len(), want.len(), "sequential scan record count");
    for (got, want) in scan.iter().zip(&want) {
        assert_eq!(got, *want, "sequential scan record");
    }
    // offset_for_time, checked when every batch's max timestamp is its records' maximum (decode
    // does not check that; a batch that lies about it may be skipped).
    let consistent = content.iter().all(|b| {
        b.records.is_empty() || b.records.iter().map(|r| r.timestamp).max() == Some(b.max_timestamp)
    });
    let records: Vec<&Rec> = content
        .iter()
        .flat_map(|b| &b.records)
        .filter(|r| r.offset >= start)
        .collect();
    let mut queries: Vec<i64> = records.iter().take(6).map(|r| r.timestamp).collect();
    queries.extend(
        records
            .iter()
            .rev()
            .take(3)
            .map(|r| r.timestamp.saturating_add(1)),
    );
    queries.extend([i64::MIN, 0, i64::MAX]);
    for t in queries {
        let got = log
            .offset_for_time(t)
            .unwrap_or_else(|e| panic!("offset_for_time({t}) after recovery failed: {e}"));
        if consistent {
            let want = records
                .iter()
                .find(|r| r.timestamp >= t)
                .map(|r| TimestampOffset {
                    timestamp: r.timestamp,
                    offset: r.offset,
                });
            assert_eq!(got, want, "offset_for_time({t}) after recovery");
        }
    }
}

/// Read, search, append, close and reopen a partition whose data may be damaged: no panics, no
/// endless loops; errors are fine.
fn exercise(log: &Partition, config: &LogConfig, env: &Env) {
    let (start, end) = (log.start_offset(), log.end_offset());
    let mut at = start;
    let mut steps = 0;
    while at < end && steps < 10_000 {
        steps += 1;
        match log.read(at, 150) {
            Ok(b) if !b.is_empty() => {
                assert!(b.next_offset() > at, "read({at}) made no progress");
                for r in b.records() {
                    Rec::of(&r);
                }
                at = b.next_offset();
            }
            _ => break,
        }
    }
    for t in [i64::MIN, 0, T0, i64::MAX] {
        let _ = log.offset_for_time(t);
    }
    let _ = log.append(Record::new("after"));
    let _ = log.close();
    if let Ok(again) = Partition::open_with_env(DIR, config.clone(), env.clone()) {
        let _ = again.read(again.start_offset(), 1 << 20);
    }
}

// ---- meta_decode ----------------------------------------------------------------------------------

/// A metadata record type: its name, its envelope (`None`: a record of the offsets topic, which
/// has none), whether decoding a file of its current version and encoding the value again gives
/// back the same bytes, and the check.
struct MetaKind {
    name: &'static str,
    envelope: Option<meta::Envelope>,
    canonical: bool,
    check: fn(&str, &[u8], bool) -> bool,
}

const META_KINDS: [MetaKind; 8] = [
    MetaKind {
        name: "checkpoint",
        envelope: Some(Checkpoint::ENVELOPE),
        canonical: true,
        check: check_meta::<Checkpoint>,
    },
    MetaKind {
        name: "clean-shutdown marker",
        envelope: Some(CleanShutdown::ENVELOPE),
        canonical: true,
        check: check_meta::<CleanShutdown>,
    },
    MetaKind {
        // Its unused slot, and the swap fields without a swap, are not read.
        name: "cleaner checkpoint",
        envelope: Some(CleanerCheckpoint::ENVELOPE),
        canonical: false,
        check: check_meta::<CleanerCheckpoint>,
    },
    MetaKind {
        name: "producer snapshot",
        envelope: Some(ProducerSnapshot::ENVELOPE),
        canonical: true,
        check: check_meta::<ProducerSnapshot>,
    },
    MetaKind {
        name: "producer id counter",
        envelope: Some(ProducerIdCounter::ENVELOPE),
        canonical: true,
        check: check_meta::<ProducerIdCounter>,
    },
    MetaKind {
        name: "Kafka adoption marker",
        envelope: Some(AdoptedLog::ENVELOPE),
        canonical: true,
        check: check_meta::<AdoptedLog>,
    },
    MetaKind {
        name: "offsets key",
        envelope: None,
        canonical: true,
        check: check_meta::<OffsetCommitKey>,
    },
    MetaKind {
        name: "offsets value",
        envelope: None,
        canonical: true,
        check: check_meta::<OffsetCommitValue>,
    },
];

/// Every metadata record type of `topiclog::internals::format::meta` on arbitrary bytes.
///
/// Input: `[knobs, rest..]`.
/// 1. `rest` decoded as each record type.
/// 2. `rest` as the body of an envelope (magic, length and CRC made to match) of the type that
///    knobs bits 0-2 pick (modulo the number of enveloped types), at the version bits 3-5 pick
///    from the ones it reads plus one it does not; decoded as that type, so the fuzzer reaches
///    the body decoders past the checksum.
///
/// Checks: decoding never panics and reports a position within the input; whatever decodes
/// encodes to bytes that decode to the same value and encode to the same bytes again; a file of
/// the current version that decodes is exactly what its value encodes to (except where a
/// layout has fields that are not read: the cleaner checkpoint's).
pub fn meta_decode(data: &[u8]) {
    let knobs = data.first().copied().unwrap_or(0);
    let rest = data.get(1..).unwrap_or_default();
    for kind in &META_KINDS {
        let current = kind.envelope.is_none_or(|e| {
            rest.get(4) == Some(&e.version)
                && !(kind.name == "producer id counter"
                    && rest.len() == ProducerIdCounter::UNVERSIONED_LEN)
        });
        (kind.check)(kind.name, rest, kind.canonical && current);
    }
    let enveloped: Vec<&MetaKind> = META_KINDS.iter().filter(|k| k.envelope.is_some()).collect();
    let kind = enveloped[usize::from(knobs & 7) % enveloped.len()];
    let envelope = kind.envelope.expect("an enveloped kind");
    let mut versions = vec![envelope.version];
    versions.extend_from_slice(envelope.legacy);
    versions.push(envelope.version.wrapping_add(1));
    let version = versions[usize::from((knobs >> 3) & 7) % versions.len()];
    let sealed = envelope.seal_raw(version, rest);
    let decoded = (kind.check)(
        kind.name,
        &sealed,
        kind.canonical && version == envelope.version,
    );
    // A version this release does not read is refused, whatever the body.
    assert!(
        !decoded || envelope.reads(version),
        "{}: version {version} decoded",
        kind.name
    );
}

/// The codec's promises for `bytes` as a `T` (see [`meta_decode`]); `canonical`: a value
/// decoded from them must encode to exactly them. Returns whether they decoded.
fn check_meta<T>(name: &str, bytes: &[u8], canonical: bool) -> bool
where
    T: Encode + Decode + PartialEq + std::fmt::Debug,
{
    let value = match T::decode(bytes) {
        Ok(value) => value,
        Err(e) => {
            assert!(
                e.position <= bytes.len(),
                "{name}: error position {} past the input ({})",
                e.position,
                e.reason
            );
            return false;
        }
    };
    let encoded = value.encode_to_vec();
    let again = T::decode(&encoded)
        .unwrap_or_else(|e| panic!("{name}: {value:?} encodes to bytes that do not decode: {e}"));
    assert_eq!(again, value, "{name}: decode(encode(x)) != x");
    assert_eq!(
        again.encode_to_vec(),
        encoded,
        "{name}: encoding is not stable"
    );
    if canonical {
        assert_eq!(
            encoded, bytes,
            "{name}: a current-version file re-encodes differently"
        );
    }
    true
}

// ---- decompress ------------------------------------------------------------------------------------

/// Every codec, in attribute order: those compiled out must say so.
pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// The limit of the second, generous pass: decoded content of any input up to this size is
/// compared with the first pass's.
const DECOMPRESS_LARGE_LIMIT: usize = 1 << 20;

/// `[knob, stream..]`: the stream decompressed with every codec (one corpus serves all five),
/// with `max_len = knob * 64` (0 to 16,320 bytes), appending to a buffer that already holds a
/// prefix.
///
/// Checks, per codec: no panic; a codec whose feature is off is `Unavailable`; an error leaves
/// the buffer as it was; success appends at most `max_len` bytes, the same bytes a generous
/// limit gives, and those bytes compress to a stream that decompresses to them again (and is
/// `TooLarge` one byte under their length); `TooLarge` means a generous limit gives more than
/// `max_len` bytes or another error; damage found within `max_len` is found under any limit.
pub fn decompress(data: &[u8]) {
    let Some((&knob, stream)) = data.split_first() else {
        return;
    };
    let max_len = usize::from(knob) * 64;
    for codec in CODECS {
        check_decompress(codec, stream, max_len);
    }
}

fn check_decompress(codec: Compression, stream: &[u8], max_len: usize) {
    const PREFIX: &[u8] = b"prefix";
    let run = |limit: usize| {
        let mut out = PREFIX.to_vec();
        let result = codec_decompress(codec, stream, limit, &mut out);
        (result, out)
    };
    let (result, out) = run(max_len);
    if !codec.is_available() {
        assert_eq!(result, Err(CodecError::Unavailable(codec)), "{codec}");
        assert_eq!(out, PREFIX, "{codec}: Unavailable changed the output");
        return;
    }
    match result {
        Ok(()) => {
            assert!(out.starts_with(PREFIX), "{codec}: the prefix was changed");
            let content = out.get(PREFIX.len()..).unwrap_or_default();
            assert!(
                content.len() <= max_len,
                "{codec}: {} bytes decoded with max_len {max_len}",
                content.len()
            );
            let (large, large_out) = run(DECOMPRESS_LARGE_LIMIT);
            assert_eq!(large, Ok(()), "{codec}: a larger limit fails");
            assert!(
                large_out == out,
                "{codec}: a larger limit decodes differently"
            );

            let mut again = Vec::new();
            compress(codec, content, &mut again)
                .unwrap_or_else(|e| panic!("{codec}: compressing decoded content: {e}"));
            let mut back = Vec::new();
            assert_eq!(
                codec_decompress(codec, &again, content.len(), &mut back),
                Ok(()),
                "{codec}: its own stream does not decode"
            );
            assert!(back == content, "{codec}: round trip differs");
            if let Some(under) = content.len().checked_sub(1) {
                assert_eq!(
                    codec_decompress(codec, &again, under, &mut Vec::new()),
                    Err(CodecError::TooLarge { max: under }),
                    "{codec}: its own stream one byte over the limit"
                );
            }
        }
        Err(CodecError::TooLarge { max }) => {
            assert_eq!(max, max_len, "{codec}: TooLarge reports another limit");
            assert_eq!(out, PREFIX, "{codec}: TooLarge changed the output");
            let (large, large_out) = run(DECOMPRESS_LARGE_LIMIT.max(max_len + 1));
            if large.is_ok() {
                assert!(
                    large_out.len() - PREFIX.len() > max_len,
                    "{codec}: TooLarge under {max_len} but {} bytes decode",
                    large_out.len() - PREFIX.len()
                );
            }
        }
        Err(CodecError::Corrupt(what)) => {
            assert_eq!(out, PREFIX, "{codec}: Corrupt ({what}) changed the output");
            let (large, _) = run(DECOMPRESS_LARGE_LIMIT);
            assert!(
                large.is_err(),
                "{codec}: Corrupt ({what}) under {max_len} but decodes under a larger limit"
            );
        }
        Err(e @ CodecError::Unavailable(_)) => panic!("{codec}: {e} though it is available"),
    }
}
