//! Batch compression: append and scan throughput of each codec compiled in, beside the raw
//! baseline (the same uncompressed values in a raw file, see `common`), and the compression ratio
//! on disk.
//!
//! Values are JSON-like events (`{"user_id":…,"event":"page_view","url":"/products/…","ts":…,
//! "session":"…",…}`) of exactly 100 B or 1 KiB, with ids, numbers and strings drawn from a seeded
//! RNG ([`json_value`]): compressible as real event streams are, not all-identical bytes. Records
//! have no key and are appended in batches of [`BATCH`] to a [`Partition`] whose
//! `LogConfig::compression` selects the codec ([`log_config`]).
//!
//! - `compression/append/{100B,1KiB}/{codec}`: [`Durability::None`]; one iteration is one
//!   `append_batch` of [`BATCH`] records, cycling through [`POOL_BATCHES`] distinct prepared
//!   batches (1 GiB segments, the log emptied outside the clock every [`RESET_BYTES`] stored, as in
//!   `append.rs`). `Throughput::Elements`: records/s; MB/s of uncompressed payload is that times the
//!   value size. `raw/{size}`: the same values through the raw 1 MiB buffered writer, no sync.
//! - `compression/scan/{100B,1KiB}/{codec}`: [`SCAN_PAYLOAD_BYTES`] of values written once per
//!   codec into 1 MiB segments, closed and reopened (so all but the last segment are sealed and
//!   mapped, as in `read.rs`), read warm from start to end with `read(offset, 1 MiB)`, visiting
//!   every record's value. `Throughput::Elements`: records/s. `raw/{size}`: a `pread` scan of the
//!   same values in 1 MiB chunks.
//!
//! Every codec of one size shares the one `raw/{size}` baseline of its group;
//! `benches/summarize.sh` divides each `{size}/{codec}` by it. The compression ratio
//! (uncompressed value bytes / bytes of the `.log` files after a clean close) of each scan data set
//! is printed once per codec and size, and written to `<criterion home>/topiclog-compression/` for
//! `benches/summarize.sh`.

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::cell::OnceCell;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;
use topiclog::{Compression, CompressionType, Durability, LogConfig, Partition, Record};

use common::{criterion_home, measuring, scratch_dir, size_label, RawReader, RawWriter, Xorshift};

/// Records per appended batch.
const BATCH: usize = 100;

/// Distinct prepared batches the append bench cycles through (so a codec never sees the same
/// batch twice in a row).
const POOL_BATCHES: usize = 64;

/// Segment size of the append bench: the default, so an append never pays for a roll.
const APPEND_SEGMENT_BYTES: u64 = 1 << 30;

/// Stored bytes at which the append bench's log (or raw file) is emptied, outside the clock.
const RESET_BYTES: u64 = 512 << 20;

/// Batches appended between two checks of [`RESET_BYTES`] (at most 100 MiB of 1 KiB values).
const CHUNK_BATCHES: u64 = 1_000;

/// Uncompressed value bytes of each scan data set (quick mode: 1 MiB).
const SCAN_PAYLOAD_BYTES: u64 = 64 << 20;

/// Segment size of the scan data sets: small, so that even the best-compressed set has most of
/// its bytes in sealed (mapped) segments.
const SCAN_SEGMENT_BYTES: u64 = 1 << 20;

/// Value sizes measured.
const VALUE_LENS: [usize; 2] = [100, 1024];

/// The codecs compiled in, with their labels.
fn codecs() -> Vec<(&'static str, Compression)> {
    [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .filter(|c| c.is_available())
    .map(|c| (c.name(), c))
    .collect()
}

/// The partition configuration for `codec` (the topic's `compression.type`, so plain
/// `append_batch` calls are stored with it): buffered appends, the given segment size.
fn log_config(codec: Compression, segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        durability: Durability::None,
        compression: match codec {
            Compression::None => CompressionType::Uncompressed,
            c => CompressionType::Codec(c),
        },
        ..LogConfig::default()
    }
}

// ---- Values ---------------------------------------------------------------------------------------

const EVENTS: [&str; 8] = [
    "page_view",
    "page_view",
    "page_view",
    "add_to_cart",
    "search",
    "click",
    "purchase",
    "login",
];
const CATEGORIES: [&str; 6] = [
    "electronics",
    "books",
    "garden",
    "toys",
    "clothing",
    "kitchen",
];
const REFERRERS: [&str; 5] = [
    "https://www.google.com/search",
    "https://www.bing.com/search",
    "https://www.facebook.com/",
    "https://news.example.org/article",
    "",
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
];
const COUNTRIES: [&str; 8] = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA"];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
const WORDS: [&str; 16] = [
    "blue", "wireless", "cotton", "organic", "large", "set", "pro", "mini", "steel", "classic",
    "travel", "kids", "smart", "eco", "premium", "pack",
];

fn pick<'a>(rng: &mut Xorshift, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len() as u64) as usize]
}

/// A JSON object of exactly `len` bytes describing one web-shop event; `seq` is the record's
/// position in its stream (timestamps rise with it), `rng` draws everything else. Fields are added
/// in a fixed order while they fit (a 100-byte value holds the first few), then order items while
/// they fit, then spaces before the closing brace make up the length.
fn json_value(len: usize, seq: u64, rng: &mut Xorshift) -> Bytes {
    let fields: Vec<String> = vec![
        format!("\"user_id\":{}", 10_000 + rng.below(990_000)),
        format!("\"event\":\"{}\"", pick(rng, &EVENTS)),
        format!(
            "\"url\":\"/products/{}/{}\"",
            pick(rng, &CATEGORIES),
            rng.below(100_000)
        ),
        format!("\"ts\":{}", 1_700_000_000_000 + seq * 7 + rng.below(5)),
        format!("\"session\":\"{:012x}\"", rng.next_u64() >> 16),
        format!("\"referrer\":\"{}\"", pick(rng, &REFERRERS)),
        format!("\"ua\":\"{}\"", pick(rng, &AGENTS)),
        format!(
            "\"geo\":{{\"country\":\"{}\",\"ip\":\"10.{}.{}.{}\"}}",
            pick(rng, &COUNTRIES),
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        format!("\"device\":\"{}\"", pick(rng, &DEVICES)),
        format!(
            "\"cart\":{{\"total\":{}.{:02},\"currency\":\"USD\"}}",
            rng.below(500),
            rng.below(100)
        ),
    ];
    let mut out = String::with_capacity(len);
    out.push('{');
    for field in fields {
        // Room for a comma before the field and the closing brace after it.
        if out.len() + usize::from(out.len() > 1) + field.len() < len {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&field);
        }
    }
    let items_head = ",\"items\":[";
    if out.len() + items_head.len() + 2 < len {
        out.push_str(items_head);
        let mut first = true;
        loop {
            let mut item = String::new();
            let _ = write!(
                item,
                "{}{{\"sku\":\"SKU-{:05}\",\"name\":\"{} {}\",\"qty\":{},\"price\":{}.99}}",
                if first { "" } else { "," },
                rng.below(100_000),
                pick(rng, &WORDS),
                pick(rng, &WORDS),
                1 + rng.below(4),
                1 + rng.below(200),
            );
            // Room for "]}" after the item.
            if out.len() + item.len() + 2 > len {
                break;
            }
            out.push_str(&item);
            first = false;
        }
        out.push(']');
    }
    while out.len() + 1 < len {
        out.push(' ');
    }
    out.push('}');
    assert_eq!(out.len(), len, "json_value made {out}");
    Bytes::from(out)
}

/// `count` values of `len` bytes, the stream that starts at `first_seq` with the RNG `rng`.
fn json_values(len: usize, first_seq: u64, count: usize, rng: &mut Xorshift) -> Vec<Bytes> {
    (0..count as u64)
        .map(|i| json_value(len, first_seq + i, rng))
        .collect()
}

// ---- Append ---------------------------------------------------------------------------------------

/// One side of an append pair: appends one of its prepared batches per call.
trait Appender {
    fn append(&mut self, batch: usize);
    fn stored_bytes(&self) -> u64;
    fn reset(&mut self);
}

struct TopiclogSide {
    log: Partition,
    batches: Vec<Vec<Record>>,
    _dir: TempDir,
}

impl TopiclogSide {
    fn new(codec: Compression, pool: &[Vec<Bytes>]) -> TopiclogSide {
        let dir = scratch_dir("compression-append");
        let log = Partition::open_with(
            dir.path().join("log"),
            log_config(codec, APPEND_SEGMENT_BYTES),
        )
        .expect("open the bench partition");
        let batches = pool
            .iter()
            .map(|values| values.iter().cloned().map(Record::new).collect())
            .collect();
        TopiclogSide {
            log,
            batches,
            _dir: dir,
        }
    }
}

impl Appender for TopiclogSide {
    fn append(&mut self, batch: usize) {
        self.log.append_batch(&self.batches[batch]).expect("append");
    }

    fn stored_bytes(&self) -> u64 {
        self.log.segments().iter().map(|s| s.size()).sum()
    }

    fn reset(&mut self) {
        assert_eq!(
            self.log.segment_count(),
            1,
            "the bench log rolled: lower RESET_BYTES"
        );
        self.log
            .truncate_to(self.log.start_offset())
            .expect("empty the bench partition");
    }
}

impl Drop for TopiclogSide {
    fn drop(&mut self) {
        // Cutting the file drops its dirty pages; closing a full log would write them back first.
        let _ = self.log.truncate_to(self.log.start_offset());
    }
}

struct RawSide {
    raw: RawWriter,
    batches: Vec<Vec<Bytes>>,
    _dir: TempDir,
}

impl Appender for RawSide {
    fn append(&mut self, batch: usize) {
        for v in &self.batches[batch] {
            self.raw.append(v).expect("raw write");
        }
    }

    fn stored_bytes(&self) -> u64 {
        self.raw.len()
    }

    fn reset(&mut self) {
        self.raw.reset().expect("empty the raw file");
    }
}

impl Drop for RawSide {
    fn drop(&mut self) {
        let _ = self.raw.reset();
    }
}

/// `iters` batch appends, cycling through the pool, emptying the log between chunks (outside the
/// clock) when it is full.
fn run_appends(side: &mut impl Appender, iters: u64, next: &mut usize) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        if side.stored_bytes() >= RESET_BYTES {
            side.reset();
        }
        let n = CHUNK_BATCHES.min(iters - done);
        let start = Instant::now();
        for _ in 0..n {
            side.append(*next);
            *next = (*next + 1) % POOL_BATCHES;
        }
        elapsed += start.elapsed();
        done += n;
    }
    elapsed
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("compression/append");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(BATCH as u64));
    for value_len in VALUE_LENS {
        let size = size_label(value_len as u64);
        let mut rng = Xorshift::new(0xC0DEC + value_len as u64);
        let pool: Vec<Vec<Bytes>> = (0..POOL_BATCHES)
            .map(|b| json_values(value_len, (b * BATCH) as u64, BATCH, &mut rng))
            .collect();
        eprintln!(
            "compression/append/{size}: values like {}",
            String::from_utf8_lossy(&pool[0][0])
        );
        for (label, codec) in codecs() {
            let mut side: Option<TopiclogSide> = None;
            let mut next = 0;
            group.bench_function(format!("{size}/{label}"), |b| {
                let side = side.get_or_insert_with(|| TopiclogSide::new(codec, &pool));
                b.iter_custom(|iters| run_appends(side, iters, &mut next));
            });
        }
        let mut side: Option<RawSide> = None;
        let mut next = 0;
        group.bench_function(format!("raw/{size}"), |b| {
            let side = side.get_or_insert_with(|| {
                let dir = scratch_dir("compression-append-raw");
                RawSide {
                    raw: RawWriter::create(&dir.path().join("raw.log")).expect("raw file"),
                    batches: pool.clone(),
                    _dir: dir,
                }
            });
            b.iter_custom(|iters| run_appends(side, iters, &mut next));
        });
    }
    group.finish();
}

// ---- Scan -----------------------------------------------------------------------------------------

/// A partition holding a scan data set with one codec.
struct ScanLog {
    log: Partition,
    _dir: TempDir,
}

/// The values of a scan data set, in a raw file.
struct RawSet {
    path: std::path::PathBuf,
    records: u64,
    _dir: TempDir,
}

fn scan_records(value_len: usize) -> u64 {
    let bytes = if measuring() {
        SCAN_PAYLOAD_BYTES
    } else {
        1 << 20
    };
    // Whole batches.
    (bytes / value_len as u64).div_ceil(BATCH as u64) * BATCH as u64
}

/// The values of the scan data set of `value_len`, batch by batch (the same for every codec).
fn scan_batches(value_len: usize) -> impl Iterator<Item = Vec<Bytes>> {
    let mut rng = Xorshift::new(0x5CA4 + value_len as u64);
    let batches = scan_records(value_len) / BATCH as u64;
    (0..batches).map(move |b| json_values(value_len, b * BATCH as u64, BATCH, &mut rng))
}

fn build_raw(value_len: usize) -> RawSet {
    let dir = scratch_dir("compression-scan-raw");
    let path = dir.path().join("raw.log");
    let mut raw = RawWriter::create(&path).expect("create the raw file");
    let mut records = 0;
    for batch in scan_batches(value_len) {
        for v in &batch {
            raw.append(v).expect("raw write");
            records += 1;
        }
    }
    raw.flush().expect("raw write");
    RawSet {
        path,
        records,
        _dir: dir,
    }
}

/// Write the scan data set with `codec`, close, reopen; print and record its compression ratio.
fn build_log(value_len: usize, label: &str, codec: Compression) -> ScanLog {
    let dir = scratch_dir("compression-scan");
    let log_dir = dir.path().join("log");
    let config = log_config(codec, SCAN_SEGMENT_BYTES);
    let log = Partition::open_with(&log_dir, config.clone()).expect("open the scan log");
    let mut payload = 0u64;
    for batch in scan_batches(value_len) {
        payload += batch.iter().map(|v| v.len() as u64).sum::<u64>();
        let records: Vec<Record> = batch.into_iter().map(Record::new).collect();
        log.append_batch(&records).expect("append");
    }
    log.close().expect("close the scan log");
    drop(log);
    // A clean close cut every `.log` to its data (reopening preallocates the active one again):
    // their lengths now are the bytes on disk.
    let on_disk: u64 = std::fs::read_dir(&log_dir)
        .expect("list the scan log")
        .map(|e| e.expect("list the scan log").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::metadata(p).expect("stat a .log file").len())
        .sum();
    let log = Partition::open_with(&log_dir, config).expect("reopen the scan log");
    assert!(log.recovery_report().clean_shutdown);
    let segments = log.segments();
    let stored: u64 = segments.iter().map(|s| s.size()).sum();
    assert_eq!(on_disk, stored, "the .log files are not their data");
    let active = segments.last().map_or(0, |s| s.size());
    let id = format!("{}/{label}", size_label(value_len as u64));
    let ratio = payload as f64 / on_disk as f64;
    eprintln!(
        "compression/{id}: {} records, {payload} value bytes, {on_disk} bytes in {} .log files \
         ({active} in the active segment): ratio {ratio:.2}",
        log.end_offset(),
        segments.len(),
    );
    if measuring() {
        let dir = criterion_home().join("topiclog-compression");
        let file = dir.join(format!("{}.tsv", id.replace('/', "_")));
        let row = format!("compression/{id}\t{payload}\t{on_disk}\t{ratio:.3}\n");
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, row)) {
            eprintln!("could not write {}: {e}", file.display());
        }
    }
    ScanLog { log, _dir: dir }
}

fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("compression/scan");
    // One iteration is a whole scan (milliseconds to a second): few, equal samples.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for value_len in VALUE_LENS {
        let size = size_label(value_len as u64);
        let records = scan_records(value_len);
        group.throughput(Throughput::Elements(records));
        for (label, codec) in codecs() {
            let data = OnceCell::new();
            group.bench_function(format!("{size}/{label}"), |b| {
                let d = data.get_or_init(|| build_log(value_len, label, codec));
                let end = d.log.end_offset();
                assert_eq!(end, records);
                b.iter(|| {
                    let mut offset = d.log.start_offset();
                    while offset < end {
                        let batches = d.log.read(offset, 1 << 20).expect("read");
                        for r in batches.records() {
                            black_box(r.value().map_or(0, |v| v.len()));
                        }
                        offset = batches.next_offset();
                    }
                });
            });
        }
        let raw = OnceCell::new();
        group.bench_function(format!("raw/{size}"), |b| {
            let set = raw.get_or_init(|| build_raw(value_len));
            let mut reader = RawReader::open(&set.path).expect("open the raw file");
            b.iter(|| {
                let n = reader
                    .scan(|record| {
                        black_box(record.len());
                    })
                    .expect("raw scan");
                assert_eq!(n, set.records);
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = append, scan
}
criterion_main!(benches);
