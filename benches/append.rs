//! Append throughput and latency, each beside the raw baseline (see `common`), in one group so
//! every figure has a topiclog/raw ratio.
//!
//! - `append/buffered/{100B,1KiB}/batch{1,100}`: [`Durability::None`]; one iteration is one
//!   `append_batch` of `batch` records. `raw/...`: the same records through the 1 MiB buffer, no
//!   flush and no sync (so, unlike topiclog, nothing reaches the kernel until the buffer fills).
//! - `append/always/100B/batch1`, `batch10`: [`Durability::Always`]; one iteration is one durable
//!   append. `raw/...`: write the records, then flush and `fdatasync`. Criterion's median is the
//!   median of per-sample means; the per-append percentiles of `batch1` are printed after the group
//!   and kept for `benches/summarize.sh`.
//! - `append/always/100B/threads{1,8}`: N threads each appending single records with
//!   `Durability::Always` (group commit); one iteration is one record, so the reported throughput
//!   is total records/s. `raw/...`: N threads sharing one writer under a mutex, each write + flush
//!   under the lock, then `fdatasync` outside it (no group commit beyond what the kernel does).
//!
//! Each benchmark gets a fresh partition (or raw file) in its own directory. The log is emptied,
//! outside the clock, whenever it reaches [`RESET_BYTES`], so disk use stays bounded and the
//! 1 GiB segment never rolls: rolls are rare in production and are not what this measures.

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use tempfile::TempDir;
use topiclog::{Durability, LogConfig, Partition, Record};

use common::{payload, scratch_dir, size_label, Latencies, RawWriter};

/// Segment size: the default, so an append never pays for a roll (see [`RESET_BYTES`]).
const SEGMENT_BYTES: u64 = 1 << 30;

/// Stored bytes at which a log is emptied (outside the clock); with [`CHUNK_BYTES`] of headroom it
/// stays below [`SEGMENT_BYTES`] even with topiclog's framing overhead (about 60% for 100-byte
/// single-record batches).
const RESET_BYTES: u64 = 512 << 20;

/// Payload bytes appended between two checks of [`RESET_BYTES`].
const CHUNK_BYTES: u64 = 32 << 20;

/// What one iteration appends.
#[derive(Clone, Copy)]
struct Shape {
    value_len: usize,
    batch: usize,
}

impl Shape {
    fn label(self) -> String {
        format!("{}/batch{}", size_label(self.value_len as u64), self.batch)
    }

    fn payload_bytes(self) -> u64 {
        (self.value_len * self.batch) as u64
    }

    fn values(self) -> Vec<Bytes> {
        (0..self.batch)
            .map(|i| payload(self.value_len, i as u64))
            .collect()
    }
}

/// One side of a pair: something that appends one prepared batch per call.
trait Appender {
    /// The timed operation: append the batch (durably, if the side is durable).
    fn append(&mut self);
    /// Bytes stored now.
    fn stored_bytes(&self) -> u64;
    /// Empty the log; never timed.
    fn reset(&mut self);
}

struct TopiclogSide {
    log: Partition,
    records: Vec<Record>,
    _dir: TempDir,
}

impl TopiclogSide {
    fn new(shape: Shape, durability: Durability) -> TopiclogSide {
        let dir = scratch_dir("append");
        let log = Partition::open_with(
            dir.path().join("log"),
            LogConfig {
                segment_bytes: SEGMENT_BYTES,
                durability,
                ..LogConfig::default()
            },
        )
        .expect("open the bench partition");
        TopiclogSide {
            log,
            records: shape.values().into_iter().map(Record::new).collect(),
            _dir: dir,
        }
    }
}

impl Appender for TopiclogSide {
    fn append(&mut self) {
        let result = match self.records.as_slice() {
            [one] => self.log.append(one.clone()).map(drop),
            batch => self.log.append_batch(batch).map(drop),
        };
        result.expect("append");
    }

    fn stored_bytes(&self) -> u64 {
        self.log.segments().iter().map(|s| s.size()).sum()
    }

    fn reset(&mut self) {
        // A roll would put an fsync of the whole segment inside the clock.
        assert_eq!(
            self.log.segment_count(),
            1,
            "the bench log rolled: lower RESET_BYTES or CHUNK_BYTES"
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
    values: Vec<Bytes>,
    durable: bool,
    _dir: TempDir,
}

impl RawSide {
    fn new(shape: Shape, durable: bool) -> RawSide {
        let dir = scratch_dir("append-raw");
        RawSide {
            raw: RawWriter::create(&dir.path().join("raw.log")).expect("create the raw file"),
            values: shape.values(),
            durable,
            _dir: dir,
        }
    }
}

impl Appender for RawSide {
    fn append(&mut self) {
        for v in &self.values {
            self.raw.append(v).expect("raw write");
        }
        if self.durable {
            self.raw.sync().expect("raw fdatasync");
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

/// Run `iters` appends, emptying the log between chunks (outside the clock) when it is full.
fn run(
    side: &mut impl Appender,
    shape: Shape,
    iters: u64,
    mut latencies: Option<&mut Latencies>,
) -> Duration {
    let per_chunk = (CHUNK_BYTES / shape.payload_bytes()).max(1);
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        if side.stored_bytes() >= RESET_BYTES {
            side.reset();
        }
        let n = per_chunk.min(iters - done);
        match latencies.as_deref_mut() {
            Some(lat) => {
                for _ in 0..n {
                    let start = Instant::now();
                    side.append();
                    let d = start.elapsed();
                    lat.record(d);
                    elapsed += d;
                }
            }
            None => {
                let start = Instant::now();
                for _ in 0..n {
                    side.append();
                }
                elapsed += start.elapsed();
            }
        }
        done += n;
    }
    elapsed
}

/// Bench `id` (topiclog) and `raw/id` (baseline) in `group`.
fn bench_pair(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    shape: Shape,
    durability: Durability,
    percentiles: bool,
) {
    let id = shape.label();
    group.throughput(Throughput::Elements(shape.batch as u64));
    {
        let mut side: Option<TopiclogSide> = None;
        let mut lat = Latencies::default();
        group.bench_function(&id, |b| {
            let side = side.get_or_insert_with(|| TopiclogSide::new(shape, durability));
            b.iter_custom(|iters| run(side, shape, iters, percentiles.then_some(&mut lat)));
        });
        drop(side);
        lat.report(&format!("{group_name}/{id}"));
    }
    {
        let durable = durability != Durability::None;
        let mut side: Option<RawSide> = None;
        let mut lat = Latencies::default();
        group.bench_function(format!("raw/{id}"), |b| {
            let side = side.get_or_insert_with(|| RawSide::new(shape, durable));
            b.iter_custom(|iters| run(side, shape, iters, percentiles.then_some(&mut lat)));
        });
        drop(side);
        lat.report(&format!("{group_name}/raw/{id}"));
    }
}

fn buffered(c: &mut Criterion) {
    let name = "append/buffered";
    let mut group = c.benchmark_group(name);
    for value_len in [100, 1024] {
        for batch in [1, 100] {
            bench_pair(
                &mut group,
                name,
                Shape { value_len, batch },
                Durability::None,
                false,
            );
        }
    }
    group.finish();
}

/// `iters` single-record durable appends spread over `threads` threads; the clock runs from when
/// all threads are ready until the last one finishes.
fn run_threads(threads: usize, iters: u64, append: &(impl Fn() + Sync)) -> Duration {
    let ready = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|t| {
                let n = iters / threads as u64 + u64::from(t < iters % threads as u64);
                let ready = &ready;
                s.spawn(move || {
                    ready.wait();
                    for _ in 0..n {
                        append();
                    }
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        for w in workers {
            w.join().expect("append thread");
        }
        start.elapsed()
    })
}

/// The raw side of the threaded pair: one writer behind a mutex, a second handle to sync through.
struct SharedRaw {
    writer: Mutex<RawWriter>,
    sync_handle: std::fs::File,
    value: Bytes,
    _dir: TempDir,
}

fn bench_threads(group: &mut BenchmarkGroup<'_, WallTime>, threads: usize) {
    let shape = Shape {
        value_len: 100,
        batch: 1,
    };
    let id = format!("{}/threads{threads}", size_label(shape.value_len as u64));
    group.throughput(Throughput::Elements(1));
    {
        let mut side: Option<TopiclogSide> = None;
        group.bench_function(&id, |b| {
            let side = side.get_or_insert_with(|| TopiclogSide::new(shape, Durability::Always));
            b.iter_custom(|iters| {
                if side.stored_bytes() >= RESET_BYTES {
                    side.reset();
                }
                let (log, record) = (&side.log, &side.records[0]);
                run_threads(threads, iters, &|| {
                    black_box(log.append(record.clone()).expect("append"));
                })
            });
        });
    }
    {
        let mut side: Option<SharedRaw> = None;
        group.bench_function(format!("raw/{id}"), |b| {
            let side = side.get_or_insert_with(|| {
                let dir = scratch_dir("append-raw");
                let writer = RawWriter::create(&dir.path().join("raw.log")).expect("raw file");
                SharedRaw {
                    sync_handle: writer.file().try_clone().expect("dup the raw file"),
                    writer: Mutex::new(writer),
                    value: payload(shape.value_len, 0),
                    _dir: dir,
                }
            });
            b.iter_custom(|iters| {
                {
                    let mut w = side.writer.lock().expect("raw writer");
                    if w.len() >= RESET_BYTES {
                        w.reset().expect("empty the raw file");
                    }
                }
                run_threads(threads, iters, &|| {
                    {
                        let mut w = side.writer.lock().expect("raw writer");
                        w.append(&side.value).expect("raw write");
                        w.flush().expect("raw write");
                    }
                    side.sync_handle.sync_data().expect("raw fdatasync");
                })
            });
        });
    }
}

fn always(c: &mut Criterion) {
    let name = "append/always";
    let mut group = c.benchmark_group(name);
    for batch in [1, 10] {
        let shape = Shape {
            value_len: 100,
            batch,
        };
        bench_pair(&mut group, name, shape, Durability::Always, batch == 1);
    }
    for threads in [1, 8] {
        bench_threads(&mut group, threads);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = buffered, always
}
criterion_main!(benches);
