//! Log cleaning: a compaction pass over a large keyed log, its peak heap, and retention passes
//! over a partition of many small segments. Each figure sits beside a raw baseline (see `common`)
//! in the same group, so `benches/summarize.sh` prints the ratio.
//!
//! # Compaction
//! The data set is built once per run: keyed records of 1 KiB values and 16-byte keys, in batches
//! of 100 (one timestamp per batch), with [`Durability::None`], `preallocate: false`, 16 MiB
//! segments, until 16 segments are full (`$TOPICLOG_BENCH_COMPACTION_BYTES`, default 256 MiB,
//! sets the size; 4 MiB in 1 MiB segments under `cargo test --benches`); one more batch starts
//! the active segment, which compaction never touches. Every record's key is drawn uniformly at
//! random from `records / 10` keys, so the log holds about ten versions of each key in random
//! order and about 10% of it is live. Then the log is closed cleanly: it is the template.
//!
//! - `compaction/256MiB_10pct_live`: before each iteration, outside the clock, the template's
//!   files are copied to a fresh directory, synced (so no writeback of the copy runs during the
//!   pass) and opened. The iteration is one `Partition::compact` with the default 32 MiB key map
//!   and `min_cleanable_dirty_ratio: 0.0`: it maps the whole sealed range in one pass and
//!   rewrites every sealed segment (each swap syncs its files and the directory several times).
//!   Throughput: bytes of the sealed `.log` files (what the pass reads; the first pass's report
//!   is checked against it). The files are warm in the page cache.
//! - `compaction/raw/256MiB_10pct_live`: the floor for rewriting those bytes: `pread` each sealed
//!   `.log` file of the template in 1 MiB chunks, `write` every chunk to a new file in a fresh
//!   directory, `fdatasync` each file, sync the directory. (A compaction pass writes only the live
//!   tenth, so it can beat this floor; it also decodes, hashes and re-encodes every record.)
//!
//! After the group: where the time of the timed passes went (on a CPU, waiting for one, asleep
//! in I/O; from `/proc/thread-self/schedstat`: other jobs on this 2-core machine show up as
//! waiting), the largest heap growth seen during a timed pass (a counting
//! `#[global_allocator]` wraps the system allocator; mapped segment files are not heap), and a
//! compaction of a fresh copy with a 512 KiB key map (room for 14,336 keys: about 56% of the
//! keys at full size), pass after pass until nothing is dirty, with its passes, wall time and
//! peak heap growth. Both are checked: every key ends up with one record.
//!
//! # Retention
//! A template of 1,000 segments (50 under `cargo test --benches`) of 16 KiB: single keyless
//! 1 KiB records, 15 to a segment, [`Durability::None`], `preallocate: false`, closed cleanly.
//!
//! - `retention/1000_segments/delete`: before each iteration, outside the clock, copy the
//!   template (files synced) and open it; time one `apply_retention` with `retention_bytes` of
//!   four segments, which deletes the oldest segments down to the last four or five (about 995:
//!   three files each, a durable checkpoint, one directory sync).
//! - `retention/raw/1000_segments/delete`: the floor: unlink the same files, sync the directory.
//! - `retention/1000_segments/noop`: the periodic pass when nothing is due (`retention` 7 days,
//!   `retention_bytes` 1 GiB) on an opened copy; nothing is deleted. It has no raw pair.
//!
//! Deleting is file-system metadata work: the journal commit behind the directory sync (on a
//! file system mounted with `discard`, also the discard of the freed blocks) dominates both
//! `delete` figures and varies from run to run with whatever else the disk is doing.

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, OnceCell};
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;
use topiclog::segment::RecordBatch;
use topiclog::{
    CompactionPolicy, CompactionReport, Durability, Limit, LogConfig, Partition, Record, Retention,
    RetentionPolicy,
};

use common::{measuring, payload, scratch_dir, size_from_env, size_label, Xorshift, RAW_CHUNK};

// ---------------------------------------------------------------------------------------------
// Heap accounting.

/// The system allocator, counting the bytes live now and the most live since [`reset_peak`].
struct CountingAlloc;

static HEAP_NOW: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = HEAP_NOW.fetch_add(bytes, Ordering::Relaxed) + bytes;
    HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    HEAP_NOW.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// bookkeeping only touches atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; `ptr` came from `System` with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Start a peak measurement; returns the heap in use now (the baseline).
fn reset_peak() -> usize {
    let now = HEAP_NOW.load(Ordering::Relaxed);
    HEAP_PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most heap in use since [`reset_peak`] returned `baseline`, above that baseline.
fn peak_above(baseline: usize) -> usize {
    HEAP_PEAK.load(Ordering::Relaxed).saturating_sub(baseline)
}

fn mib(bytes: impl Into<u64>) -> f64 {
    bytes.into() as f64 / f64::from(1u32 << 20)
}

// ---------------------------------------------------------------------------------------------
// Where the time of a timed pass went.

/// Nanoseconds the calling thread has spent on a CPU and waiting in a run queue for one
/// (`/proc/thread-self/schedstat`), if the kernel reports them.
fn thread_sched_ns() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((fields.next()??, fields.next()??))
}

/// Wall time of timed passes split into on-CPU time, time waiting for a CPU (other processes on
/// this 2-core machine) and the rest (sleeping: I/O, `fsync`). The split tells a slow run on a
/// busy machine from a slow pass.
#[derive(Clone, Copy, Default)]
struct TimeSplit {
    passes: u32,
    wall: Duration,
    on_cpu_ns: u64,
    runnable_ns: u64,
}

impl TimeSplit {
    /// Time `pass` on this thread and add it up; returns its result and wall time.
    fn time<T>(split: &Cell<TimeSplit>, pass: impl FnOnce() -> T) -> (T, Duration) {
        let before = thread_sched_ns();
        let start = Instant::now();
        let out = pass();
        let wall = start.elapsed();
        let after = thread_sched_ns();
        let mut s = split.get();
        s.passes += 1;
        s.wall += wall;
        if let (Some(b), Some(a)) = (before, after) {
            s.on_cpu_ns += a.0.saturating_sub(b.0);
            s.runnable_ns += a.1.saturating_sub(b.1);
        }
        split.set(s);
        (out, wall)
    }

    fn report(&self, id: &str) {
        if self.passes == 0 {
            return;
        }
        let per = |ns: u64| ns as f64 / 1e6 / f64::from(self.passes);
        let wall_ns = u64::try_from(self.wall.as_nanos()).unwrap_or(u64::MAX);
        println!(
            "{id}: mean per pass over {} passes (warm-up included): wall {:.0} ms = on CPU {:.0} ms \
             + waiting for a CPU {:.0} ms + sleeping (I/O, fsync) {:.0} ms",
            self.passes,
            per(wall_ns),
            per(self.on_cpu_ns),
            per(self.runnable_ns),
            per(wall_ns.saturating_sub(self.on_cpu_ns + self.runnable_ns)),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Files.

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

fn sync_dir(dir: &Path) {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .unwrap_or_else(|e| panic!("sync {}: {e}", dir.display()));
}

/// The regular files in `dir`, sorted by name.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list a partition")
        .map(|e| e.expect("list a partition").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Copy every file of the partition in `from` into a new directory `to`, then make the copies
/// and the directory durable, so nothing of the copy is left to write back while a measurement
/// runs (and deleting a copied file frees real blocks, as deleting an old segment does). A few
/// files are synced one by one; many (the retention template's 3,000) with one `sync(1)`, since
/// an `fdatasync` per file costs a journal commit each (seconds on this disk), falling back to
/// per-file syncs if the command fails.
fn copy_partition(from: &Path, to: &Path) {
    std::fs::create_dir(to).expect("create a copy's directory");
    let copies: Vec<PathBuf> = files_in(from)
        .into_iter()
        .map(|src| {
            let dst = to.join(src.file_name().expect("a file name"));
            std::fs::copy(&src, &dst).expect("copy a partition file");
            dst
        })
        .collect();
    let synced_all = copies.len() > 64
        && std::process::Command::new("sync")
            .status()
            .is_ok_and(|s| s.success());
    if !synced_all {
        for dst in &copies {
            File::open(dst)
                .and_then(|f| f.sync_data())
                .expect("sync a copied file");
        }
    }
    sync_dir(to);
}

fn is_log_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "log")
}

/// A cleanly closed partition that each iteration copies.
struct Template {
    /// Holds `log/`; removed on drop.
    dir: TempDir,
    config: LogConfig,
}

impl Template {
    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// A synced copy of the template in a fresh scratch directory, and the copy's log directory.
    fn copy(&self, tag: &str) -> (TempDir, PathBuf) {
        let dir = scratch_dir(tag);
        let log_dir = dir.path().join("log");
        copy_partition(&self.log_dir(), &log_dir);
        (dir, log_dir)
    }

    /// Copy the template and open the copy.
    fn open_copy(&self, tag: &str) -> (TempDir, Partition) {
        let (dir, log_dir) = self.copy(tag);
        let log = Partition::open_with(&log_dir, self.config.clone()).expect("open a copy");
        assert!(log.recovery_report().clean_shutdown);
        (dir, log)
    }
}

// ---------------------------------------------------------------------------------------------
// Compaction.

const VALUE_LEN: usize = 1024;
const BATCH_RECORDS: usize = 100;
/// Versions of each key in the log, on average.
const VERSIONS: u64 = 10;
/// Key-map budget of the multi-pass run.
const SMALL_MAP_BUDGET: usize = 512 << 10;

fn key(k: u64) -> Bytes {
    Bytes::from(format!("key-{k:012}"))
}

/// The shape of the compaction data set, computed (without writing anything) from the encoded
/// size of one batch: every batch has the same size (fixed-length keys and values, one timestamp).
#[derive(Clone, Copy)]
struct Shape {
    segment_bytes: u64,
    batch_bytes: u64,
    batches_per_segment: u64,
    sealed_segments: u64,
}

impl Shape {
    fn plan(target_bytes: u64, segment_bytes: u64) -> Shape {
        let records: Vec<Record> = (0..BATCH_RECORDS as u64)
            .map(|i| Record::new(payload(VALUE_LEN, i)).with_key(key(i)))
            .collect();
        let batch = RecordBatch::build(&records, 0, 0).expect("encode a batch");
        let batch_bytes = batch.as_bytes().len() as u64;
        // A segment rolls before a batch would take it past `segment_bytes`.
        let batches_per_segment = segment_bytes / batch_bytes;
        let full = batches_per_segment * batch_bytes;
        let sealed_segments = ((target_bytes + full / 2) / full).max(1);
        Shape {
            segment_bytes,
            batch_bytes,
            batches_per_segment,
            sealed_segments,
        }
    }

    fn sealed_bytes(&self) -> u64 {
        self.sealed_segments * self.batches_per_segment * self.batch_bytes
    }

    /// One batch more than the sealed segments hold: it rolls the last of them.
    fn batches(&self) -> u64 {
        self.sealed_segments * self.batches_per_segment + 1
    }

    fn records(&self) -> u64 {
        self.batches() * BATCH_RECORDS as u64
    }

    fn keys(&self) -> u64 {
        self.records() / VERSIONS
    }
}

struct CompactionData {
    template: Template,
    layout: Shape,
    /// The template's sealed `.log` files: the input of a pass.
    sealed_logs: Vec<PathBuf>,
}

impl CompactionData {
    fn build(layout: Shape) -> CompactionData {
        let started = Instant::now();
        let dir = scratch_dir("compaction");
        let config = LogConfig {
            segment_bytes: layout.segment_bytes,
            durability: Durability::None,
            preallocate: false,
            ..LogConfig::default()
        };
        let log_dir = dir.path().join("log");
        let log = Partition::open_with(&log_dir, config.clone()).expect("open the template");
        let mut rng = Xorshift::new(0xc0ffee);
        let ts = now_ms() - 3_600_000;
        let mut seq = 0u64;
        for b in 0..layout.batches() {
            let records: Vec<Record> = (0..BATCH_RECORDS)
                .map(|_| {
                    seq += 1;
                    Record::new(payload(VALUE_LEN, seq))
                        .with_key(key(rng.below(layout.keys())))
                        .with_timestamp(ts + b as i64)
                })
                .collect();
            log.append_batch(&records).expect("append");
        }
        let segments = log.segments();
        let sealed: u64 = segments[..segments.len() - 1]
            .iter()
            .map(|s| s.size())
            .sum();
        assert_eq!(
            (segments.len() as u64, sealed),
            (layout.sealed_segments + 1, layout.sealed_bytes()),
            "the template's layout differs from the plan (did the batch format or roll rule change?)"
        );
        log.close().expect("close the template");
        drop(log);
        let mut sealed_logs: Vec<PathBuf> = files_in(&log_dir)
            .into_iter()
            .filter(|p| is_log_file(p))
            .collect();
        sealed_logs.pop(); // the active segment (names sort by base offset)
        println!(
            "compaction data set: {} records of {VALUE_LEN} B over {} keys, {} sealed segments of {} ({sealed} bytes) + 1 batch in the active segment; built in {:.1} s",
            layout.records(),
            layout.keys(),
            layout.sealed_segments,
            size_label(layout.segment_bytes),
            started.elapsed().as_secs_f64()
        );
        CompactionData {
            template: Template { dir, config },
            layout,
            sealed_logs,
        }
    }
}

/// Check that a fully compacted copy keeps exactly one record per key below the active segment
/// (every key occurs there: ten versions on average make a missing key vanishingly unlikely at
/// full size; the check allows for it) and nothing else.
fn check_compacted(log: &Partition, data: &CompactionData) {
    let active_base = log
        .segments()
        .last()
        .expect("an active segment")
        .base_offset();
    let mut seen = std::collections::HashSet::new();
    let mut offset = log.start_offset();
    while offset < active_base {
        let batches = log.read(offset, 1 << 20).expect("read the compacted log");
        for r in batches.records().filter(|r| r.offset() < active_base) {
            let k = r.key().expect("a keyed record").clone();
            assert!(seen.insert(k), "two records for one key after compaction");
        }
        offset = batches.next_offset();
    }
    let keys = data.layout.keys() as usize;
    assert!(
        seen.len() <= keys && seen.len() * 1000 >= keys * 999,
        "{} keys left of {keys}",
        seen.len()
    );
}

fn compaction(c: &mut Criterion) {
    let target = size_from_env(
        "TOPICLOG_BENCH_COMPACTION_BYTES",
        if measuring() { 256 << 20 } else { 4 << 20 },
    );
    let segment_bytes = if measuring() { 16 << 20 } else { 1 << 20 };
    let layout = Shape::plan(target, segment_bytes);
    let label = format!("{}_10pct_live", size_label(target));
    let data = OnceCell::new();
    let data = || data.get_or_init(|| CompactionData::build(layout));
    let policy = CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    };

    // The largest heap growth of a timed pass, and the first pass's report.
    let peak = Cell::new(None::<usize>);
    let first_report = Cell::new(None::<CompactionReport>);
    let split = Cell::new(TimeSplit::default());
    let raw_split = Cell::new(TimeSplit::default());

    let mut group = c.benchmark_group("compaction");
    // An iteration is a pass over the whole log plus a copy of it outside the clock (seconds):
    // few, equal samples.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(layout.sealed_bytes()));

    group.bench_function(&label, |b| {
        let d = data();
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let (dir, log) = d.template.open_copy("compaction-copy");
                let now = now_ms();
                let baseline = reset_peak();
                let (report, wall) =
                    TimeSplit::time(&split, || log.compact(now, &policy).expect("compact"));
                elapsed += wall;
                peak.set(peak.get().max(Some(peak_above(baseline))));
                assert!(report.cleaned && !report.map_full, "{report:?}");
                assert_eq!(report.bytes_read, layout.sealed_bytes(), "{report:?}");
                if first_report.get().is_none() {
                    check_compacted(&log, d);
                    first_report.set(Some(report));
                }
                drop(log);
                drop(dir);
            }
            elapsed
        });
    });

    group.bench_function(format!("raw/{label}"), |b| {
        let d = data();
        let mut chunk = vec![0u8; RAW_CHUNK];
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch_dir("compaction-raw");
                let (copied, wall) = TimeSplit::time(&raw_split, || {
                    let mut copied = 0u64;
                    for src in &d.sealed_logs {
                        let input = File::open(src).expect("open a segment");
                        let dst = dir.path().join(src.file_name().expect("a file name"));
                        let mut output = OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&dst)
                            .expect("create a copy");
                        let mut pos = 0u64;
                        loop {
                            let got = input.read_at(&mut chunk, pos).expect("pread a segment");
                            if got == 0 {
                                break;
                            }
                            output.write_all(&chunk[..got]).expect("write a copy");
                            pos += got as u64;
                        }
                        output.sync_data().expect("fdatasync a copy");
                        copied += pos;
                    }
                    sync_dir(dir.path());
                    copied
                });
                elapsed += wall;
                assert_eq!(copied, layout.sealed_bytes());
                drop(dir);
            }
            elapsed
        });
    });
    group.finish();

    if let (Some(peak), Some(r)) = (peak.get(), first_report.get()) {
        println!(
            "compaction peak heap: {:.1} MiB above the heap before the pass (map budget {:.0} MiB); \
             one pass read {} segments ({} bytes, {} records), kept {:.1}% of the records \
             ({} keys mapped), wrote {} segments ({} bytes)",
            mib(peak as u64),
            mib(policy.map_budget_bytes as u64),
            r.segments_read,
            r.bytes_read,
            r.records_read,
            100.0 * (r.records_read - r.records_removed) as f64 / r.records_read as f64,
            r.keys_mapped,
            r.segments_written,
            r.bytes_written,
        );
        split.get().report(&format!("compaction/{label}"));
        raw_split.get().report(&format!("compaction/raw/{label}"));
        small_budget(data(), &policy);
    }
}

/// Compact a fresh copy with a [`SMALL_MAP_BUDGET`] key map until nothing is dirty; print the
/// passes, their time and the peak heap growth.
fn small_budget(d: &CompactionData, policy: &CompactionPolicy) {
    let policy = CompactionPolicy {
        map_budget_bytes: SMALL_MAP_BUDGET,
        ..*policy
    };
    let (dir, log) = d.template.open_copy("compaction-small");
    let now = now_ms();
    let (mut passes, mut peak, mut read, mut written) = (0u32, 0usize, 0u64, 0u64);
    let mut keys_per_pass = 0u64;
    let start = Instant::now();
    loop {
        let baseline = reset_peak();
        let report = log.compact(now, &policy).expect("compact");
        peak = peak.max(peak_above(baseline));
        if !report.cleaned {
            break;
        }
        passes += 1;
        read += report.bytes_read;
        written += report.bytes_written;
        keys_per_pass = keys_per_pass.max(report.keys_mapped);
        assert!(passes < 10_000, "compaction does not converge");
    }
    let elapsed = start.elapsed();
    check_compacted(&log, d);
    println!(
        "compaction with a {} map: {passes} passes (at most {keys_per_pass} keys each) in \
         {:.2} s ({:.1} MiB/s of the {:.0} MiB log), read {:.0} MiB, wrote {:.0} MiB; \
         peak heap {:.2} MiB above the heap before a pass",
        size_label(SMALL_MAP_BUDGET as u64),
        elapsed.as_secs_f64(),
        mib(d.layout.sealed_bytes()) / elapsed.as_secs_f64(),
        mib(d.layout.sealed_bytes()),
        mib(read),
        mib(written),
        mib(peak as u64),
    );
    drop(log);
    drop(dir);
}

// ---------------------------------------------------------------------------------------------
// Retention.

const RETENTION_SEGMENT_BYTES: u64 = 16 << 10;
/// Segments `retention_bytes` keeps in the deleting pass.
const RETENTION_KEEP_SEGMENTS: u64 = 4;

struct RetentionData {
    template: Template,
    /// Segment `.log` sizes in order, the active segment last.
    sizes: Vec<u64>,
}

impl RetentionData {
    fn build(segments: usize) -> RetentionData {
        let started = Instant::now();
        let dir = scratch_dir("retention");
        let config = LogConfig {
            segment_bytes: RETENTION_SEGMENT_BYTES,
            durability: Durability::None,
            preallocate: false,
            ..LogConfig::default()
        };
        let log_dir = dir.path().join("log");
        let log = Partition::open_with(&log_dir, config.clone()).expect("open the template");
        let mut seq = 0u64;
        while log.segment_count() < segments {
            seq += 1;
            log.append(Record::new(payload(VALUE_LEN, seq)))
                .expect("append");
        }
        let sizes: Vec<u64> = log.segments().iter().map(|s| s.size()).collect();
        log.close().expect("close the template");
        drop(log);
        let files = files_in(&log_dir);
        let bytes: u64 = files
            .iter()
            .map(|p| std::fs::metadata(p).expect("stat").len())
            .sum();
        println!(
            "retention data set: {seq} records in {segments} segments of {}, {} files, {bytes} bytes on disk; built in {:.1} s",
            size_label(RETENTION_SEGMENT_BYTES),
            files.len(),
            started.elapsed().as_secs_f64()
        );
        RetentionData {
            template: Template { dir, config },
            sizes,
        }
    }

    fn keep_bytes(&self) -> u64 {
        RETENTION_KEEP_SEGMENTS * RETENTION_SEGMENT_BYTES
    }

    /// Segments the deleting pass removes: the oldest, while the rest hold at least `keep_bytes`.
    fn doomed(&self) -> usize {
        let mut remaining: u64 = self.sizes.iter().sum();
        let mut doomed = 0;
        for size in &self.sizes {
            if remaining - size < self.keep_bytes() {
                break;
            }
            remaining -= size;
            doomed += 1;
        }
        doomed
    }
}

fn retention(c: &mut Criterion) {
    let segments = if measuring() { 1000 } else { 50 };
    let label = format!("{segments}_segments");
    let data = OnceCell::new();
    let data = || data.get_or_init(|| RetentionData::build(segments));

    let mut group = c.benchmark_group("retention");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));

    group.bench_function(format!("{label}/delete"), |b| {
        let d = data();
        let policy = RetentionPolicy {
            retention: Retention::Forever,
            retention_bytes: Limit::Bytes(d.keep_bytes()),
        };
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let (dir, log) = d.template.open_copy("retention-copy");
                let now = now_ms();
                let start = Instant::now();
                let report = log.apply_retention(now, &policy).expect("retention");
                elapsed += start.elapsed();
                assert_eq!(report.segments_deleted, d.doomed(), "{report:?}");
                drop(log);
                drop(dir);
            }
            elapsed
        });
    });

    group.bench_function(format!("raw/{label}/delete"), |b| {
        let d = data();
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let (dir, log_dir) = d.template.copy("retention-raw");
                // The files of the doomed segments: each segment's files share its base's name.
                let doomed: Vec<PathBuf> = {
                    let mut bases: Vec<PathBuf> = files_in(&log_dir)
                        .into_iter()
                        .filter(|p| is_log_file(p))
                        .collect();
                    bases.truncate(d.doomed());
                    bases
                        .iter()
                        .flat_map(|log| {
                            ["log", "index", "timeindex"].map(|ext| log.with_extension(ext))
                        })
                        .filter(|p| p.exists())
                        .collect()
                };
                let start = Instant::now();
                for path in &doomed {
                    std::fs::remove_file(path).expect("unlink a segment file");
                }
                sync_dir(&log_dir);
                elapsed += start.elapsed();
                drop(dir);
            }
            elapsed
        });
    });

    group.bench_function(format!("{label}/noop"), |b| {
        let d = data();
        let (dir, log) = d.template.open_copy("retention-noop");
        let policy = RetentionPolicy {
            retention: Retention::After(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: Limit::Bytes(1 << 30),
        };
        let now = now_ms();
        b.iter(|| {
            let report = log.apply_retention(now, &policy).expect("retention");
            assert_eq!(report.segments_deleted, 0);
            black_box(report)
        });
        drop(log);
        drop(dir);
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = compaction, retention
}
criterion_main!(benches);
