//! Read throughput and point-lookup cost, each beside the raw baseline (see `common`).
//!
//! Each data set is written once per run with [`Durability::None`] into 64 MiB segments, then
//! closed and reopened, so every segment but the last is sealed and read through its map. The
//! record counts are chosen so that the last, active segment (read with `pread`, not mapped) holds
//! a sliver of the data: the figures are those of a consumer catching up on sealed data. The build
//! prints the layout and warns if the active segment holds more than 1% of the bytes (as it would
//! if the batch format grew). The raw file holds the same records. Both are read warm, from the
//! page cache.
//!
//! - `read/sequential/1KiB`: 260,000 records of 1 KiB (254 MiB) in batches of 100, four full
//!   segments; one iteration scans the log from start to end with `read(offset, 1 MiB)`, visiting
//!   every record's value. Throughput: payload bytes. `raw/1KiB`: a `pread` scan in 1 MiB chunks.
//! - `read/random/100B`: records of 100 bytes, one per batch, enough to fill two segments (about
//!   128 MiB; 824,000 records in topiclog's first format, 790,000 in RecordBatch v2) and 580 more;
//!   one iteration reads one random offset with `read(offset, 1)` and takes its record.
//!   `raw/100B`: one `pread` of the record at the position an in-memory `Vec` gives.
//! - `lazy/...` beside each of the two: the same reads through `read_lazy` and the borrowed
//!   iterator (`LazyBatches::iter`, records as `RecordRef`s).
//! - `read/offset_for_time/random`: the same log, whose timestamps rise 1 ms per record; one
//!   iteration looks up a random timestamp. `raw/random`: binary search of an in-memory array of
//!   every timestamp, then one `pread` of the record found (an idealized index that costs 8 bytes
//!   of memory per record).

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::cell::OnceCell;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;
use topiclog::{Durability, LogConfig, Partition, Record};

use common::{measuring, payload, scratch_dir, size_label, RawReader, RawWriter, Xorshift};

/// Timestamp of offset 0; offset `n` has `FIRST_TIMESTAMP + n`.
const FIRST_TIMESTAMP: i64 = 1_700_000_000_000;

/// Random offsets (or timestamps) drawn up front and cycled through.
const LOOKUPS: usize = 1 << 16;

/// How many batches a data set holds.
#[derive(Clone, Copy)]
enum Fill {
    /// Exactly this many.
    Batches(u64),
    /// Enough to fill `full` segments, then `tail` in the active one: the same layout whatever
    /// the size of a batch on disk.
    Segments { full: usize, tail: u64 },
}

/// A partition and a raw file holding the same records.
struct Dataset {
    log: Partition,
    raw: RawReader,
    /// Position of each record in the raw file, plus the file length.
    raw_positions: Vec<u64>,
    /// Timestamp of each record (the raw side's in-memory time index).
    timestamps: Vec<i64>,
    records: u64,
    _dir: TempDir,
}

impl Dataset {
    /// Write `fill`'s batches of `batch` records of `value_len` bytes, close, reopen.
    fn build(value_len: usize, batch: usize, fill: Fill) -> Dataset {
        let segment_bytes = if measuring() { 64 << 20 } else { 1 << 20 };
        let dir = scratch_dir("read");
        let log_dir = dir.path().join("log");
        let raw_path = dir.path().join("raw.log");
        let config = LogConfig {
            segment_bytes,
            durability: Durability::None,
            ..LogConfig::default()
        };
        let log = Partition::open_with(&log_dir, config.clone()).expect("open the read log");
        let mut raw = RawWriter::create(&raw_path).expect("create the raw file");
        let mut raw_positions = Vec::new();
        let mut timestamps = Vec::new();
        let mut next = 0u64;
        let mut tail = 0u64;
        loop {
            match fill {
                Fill::Batches(batches) if next >= batches * batch as u64 => break,
                Fill::Segments { tail: want, .. } if tail >= want => break,
                _ => {}
            }
            let records: Vec<Record> = (next..next + batch as u64)
                .map(|offset| {
                    let value = payload(value_len, offset);
                    raw_positions.push(raw.append(&value).expect("raw write"));
                    let ts = FIRST_TIMESTAMP + offset as i64;
                    timestamps.push(ts);
                    Record::new(value).with_timestamp(ts)
                })
                .collect();
            log.append_batch(&records).expect("append");
            next += batch as u64;
            if let Fill::Segments { full, .. } = fill {
                if log.segment_count() > full {
                    tail += 1;
                }
            }
        }
        raw_positions.push(raw.len());
        raw.flush().expect("raw write");
        drop(raw);
        log.close().expect("close the read log");
        drop(log);
        let log = Partition::open_with(&log_dir, config).expect("reopen the read log");
        assert!(log.recovery_report().clean_shutdown);
        let segments = log.segments();
        let total: u64 = segments.iter().map(|s| s.size()).sum();
        let active = segments.last().map_or(0, |s| s.size());
        println!(
            "data set: {next} records of {value_len} B in {} segments, {total} bytes, {active} in the active segment",
            segments.len()
        );
        if active * 100 > total {
            eprintln!("warning: the active (unmapped) segment holds more than 1% of the data set");
        }
        let mut raw = RawReader::open(&raw_path).expect("open the raw file");
        assert_eq!(raw.scan(|_| {}).expect("raw scan"), next);
        Dataset {
            log,
            raw,
            raw_positions,
            timestamps,
            records: next,
            _dir: dir,
        }
    }

    fn random_offsets(&self, seed: u64) -> Vec<u64> {
        let mut rng = Xorshift::new(seed);
        (0..LOOKUPS).map(|_| rng.below(self.records)).collect()
    }

    /// The record at `offset` in the raw file, with one `pread` into `buf`.
    fn raw_record<'a>(&'a self, buf: &'a mut Vec<u8>, offset: u64) -> &'a [u8] {
        let i = offset as usize;
        let (pos, end) = (self.raw_positions[i], self.raw_positions[i + 1]);
        self.raw
            .read_record(buf, pos, (end - pos) as usize)
            .expect("raw pread")
    }
}

fn sequential(c: &mut Criterion) {
    let value_len = 1024;
    let batch = 100;
    // 4 × 649 batches fill four 64 MiB segments; the active segment gets the last 4. (Quick
    // mode: 1 MiB segments of 10 batches.)
    let batches = if measuring() { 2_600 } else { 41 };
    let payload_bytes = batches * batch as u64 * value_len as u64;
    let data = OnceCell::new();
    let data = || data.get_or_init(|| Dataset::build(value_len, batch, Fill::Batches(batches)));
    let id = size_label(value_len as u64);
    let mut group = c.benchmark_group("read/sequential");
    // One iteration is a whole scan (a tenth of a second or more): few, equal samples.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.throughput(Throughput::Bytes(payload_bytes));
    group.bench_function(&id, |b| {
        let d = data();
        let end = d.log.end_offset();
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
    group.bench_function(format!("lazy/{id}"), |b| {
        let d = data();
        let end = d.log.end_offset();
        b.iter(|| {
            let mut offset = d.log.start_offset();
            while offset < end {
                let batches = d.log.read_lazy(offset, 1 << 20).expect("read");
                for r in batches.iter() {
                    black_box(r.expect("a record").value().map_or(0, <[u8]>::len));
                }
                offset = batches.next_offset();
            }
        });
    });
    group.bench_function(format!("raw/{id}"), |b| {
        let d = data();
        // `scan` needs its chunk buffer exclusively; a second reader on the same file is cheap.
        let mut raw = RawReader::open(&d._dir.path().join("raw.log")).expect("open the raw file");
        b.iter(|| {
            raw.scan(|record| {
                black_box(record.len());
            })
            .expect("raw scan")
        });
    });
    group.finish();
}

fn point_lookups(c: &mut Criterion) {
    let value_len = 100;
    let data = OnceCell::new();
    // Two full 64 MiB segments of single-record batches (411,710 each in topiclog's first
    // format, 394,758 in Kafka's RecordBatch v2), then 580 in the active one. (Quick mode: 1 MiB
    // segments, 36 in the active one.)
    let fill = Fill::Segments {
        full: 2,
        tail: if measuring() { 580 } else { 36 },
    };
    let data = || data.get_or_init(|| Dataset::build(value_len, 1, fill));
    let id = size_label(value_len as u64);

    let mut group = c.benchmark_group("read/random");
    group.throughput(Throughput::Elements(1));
    group.bench_function(&id, |b| {
        let d = data();
        let offsets = d.random_offsets(1);
        let mut i = 0;
        b.iter(|| {
            let offset = offsets[i % LOOKUPS];
            i += 1;
            let batches = d.log.read(offset, 1).expect("read");
            let record = batches.records().next().expect("a record at the offset");
            black_box(record.value().map_or(0, |v| v.len()))
        });
    });
    group.bench_function(format!("lazy/{id}"), |b| {
        let d = data();
        let offsets = d.random_offsets(1);
        let mut i = 0;
        b.iter(|| {
            let offset = offsets[i % LOOKUPS];
            i += 1;
            let batches = d.log.read_lazy(offset, 1).expect("read");
            let record = batches.iter().next().expect("a record at the offset");
            black_box(record.expect("a record").value().map_or(0, <[u8]>::len))
        });
    });
    group.bench_function(format!("raw/{id}"), |b| {
        let d = data();
        let offsets = d.random_offsets(1);
        let mut buf = Vec::new();
        let mut i = 0;
        b.iter(|| {
            let offset = offsets[i % LOOKUPS];
            i += 1;
            black_box(d.raw_record(&mut buf, offset).len())
        });
    });
    group.finish();

    let mut group = c.benchmark_group("read/offset_for_time");
    group.throughput(Throughput::Elements(1));
    group.bench_function("random", |b| {
        let d = data();
        let targets: Vec<i64> = d
            .random_offsets(2)
            .into_iter()
            .map(|o| FIRST_TIMESTAMP + o as i64)
            .collect();
        for &ts in targets.iter().take(64) {
            let found = d.log.offset_for_time(ts).expect("lookup").expect("found");
            assert_eq!(
                (found.timestamp, found.offset as i64),
                (ts, ts - FIRST_TIMESTAMP)
            );
        }
        let mut i = 0;
        b.iter(|| {
            let ts = targets[i % LOOKUPS];
            i += 1;
            black_box(d.log.offset_for_time(ts).expect("lookup"))
        });
    });
    group.bench_function("raw/random", |b| {
        let d = data();
        let targets: Vec<i64> = d
            .random_offsets(2)
            .into_iter()
            .map(|o| FIRST_TIMESTAMP + o as i64)
            .collect();
        let mut buf = Vec::new();
        let mut i = 0;
        b.iter(|| {
            let ts = targets[i % LOOKUPS];
            i += 1;
            let offset = d.timestamps.partition_point(|&t| t < ts) as u64;
            black_box((offset, d.raw_record(&mut buf, offset).len()))
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = sequential, point_lookups
}
criterion_main!(benches);
