//! Scale (issue 13): a partition of many small segments, and a store of many partitions.
//!
//! - `scale/partition-open/<n>seg`: open a cleanly closed partition of `n` segments
//!   (`$TOPICLOG_BENCH_SCALE_SEGMENTS`, default 10,000; 300 under `cargo test --benches`), 16 KiB
//!   each (one 14 KiB batch per segment).
//! - `scale/raw/stat/<n>seg` and `scale/raw/open-close/<n>seg`: the floors, measured in the same
//!   run: `stat` every `.log` of that partition (what an open now does per sealed segment), and
//!   open, `fstat` and close every `.log` (what it did before issue 13, less the descriptors it
//!   kept: 10,000 open files do not fit under `ulimit -n 1024`).
//! - `scale/partition-scan/<n>seg`: read every record of that partition, oldest first, through
//!   `Partition::read`; `scale/raw/scan/<n>seg` reads every `.log` with `pread`.
//! - `scale/store-open/<p>part`, `scale/store-close/<p>part`: open and close a store of `p`
//!   partitions (`$TOPICLOG_BENCH_SCALE_PARTITIONS`, default 1,000: 10 topics; 40 under `cargo test
//!   --benches`), each holding one small batch; `scale/raw/open-close-dirs/<p>part` opens and
//!   closes three files per partition directory (the floor of reading a partition's metadata).
//! - `scale/store-append-round-robin/<p>part`: one record to each partition in turn,
//!   [`Durability::None`]; `scale/raw/append-round-robin/<p>part` writes 100 bytes to one open
//!   file per partition in turn.
//! - `scale/store-append-round-robin-w1/<p>part`: W1's batches (100 records of 100 bytes) to each
//!   partition in turn; `scale/store-append-one-partition-w1/<p>part` appends as many to one
//!   partition of the same store (records/s: the ratio is what spreading over `p` costs).
//! - `scale/recovery-tail/<d>+<t>`: reopen a partition whose writer stopped like `kill -9` (no
//!   clean close, the page cache keeping what it wrote) with one active segment of `d` bytes up to
//!   its recovery point (`$TOPICLOG_BENCH_SCALE_DURABLE`, default 1000 MiB) and `t` bytes appended
//!   after it (`$TOPICLOG_BENCH_SCALE_TAIL`, default 10 MiB), in batches of 100 records of 100
//!   bytes. `scale/recovery-full/<d>+<t>` is the same with the index files deleted, so the whole
//!   segment is rescanned (what every unclean open did before). Floors, same run:
//!   `scale/raw/read-tail/<t>` and `scale/raw/read-all/<d>+<t>` read those bytes with `pread`.
//! - `scale/recovery-rescan/<n>seg`: reopen, after a crash-like stop, a partition of `n` 16 KiB
//!   segments none of which is below its recovery point (every segment is rescanned and made
//!   durable); its floor is `scale/raw/scan/<n>seg`.
//!
//! Before the timings, each data set prints what the process holds after the operation: open
//! descriptors, maps, RSS and address space (`VmSize`), from `/proc/self` (Linux).

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::cell::OnceCell;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;
use topiclog::{
    Deadline, Durability, LogConfig, LogOverrides, Partition, Record, Store, StoreOptions,
    TopicConfig,
};

use common::{measuring, payload, scratch_dir, size_from_env, RAW_CHUNK};

/// One batch of this size per segment: with the header, a segment is about 16 KiB.
const SEGMENT_PAYLOAD: usize = 14 << 10;
const TOPICS: u64 = 10;

/// What the process holds now, as a one-line summary.
fn held() -> String {
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let maps = std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map_or("?".into(), |l| l[name.len()..].trim().to_string())
    };
    format!(
        "fds {fds}, maps {maps}, VmRSS {}, VmSize {}",
        field("VmRSS:"),
        field("VmSize:")
    )
}

fn partition_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 10,
        segment_ms: Deadline::Never,
        durability: Durability::None,
        ..LogConfig::default()
    }
}

struct PartitionSet {
    dir: TempDir,
    log_files: Vec<PathBuf>,
    log_bytes: u64,
}

impl PartitionSet {
    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn build(segments: u64) -> PartitionSet {
        let dir = scratch_dir("scale");
        let log_dir = dir.path().join("log");
        let log = Partition::open_with(&log_dir, partition_config()).expect("open");
        let value = Record::new(payload(SEGMENT_PAYLOAD, 7));
        while (log.segment_count() as u64) < segments {
            log.append(value.clone()).expect("append");
            if log.segment_count().is_multiple_of(256) {
                log.flush().expect("flush");
            }
        }
        log.close().expect("close");
        drop(log);
        let mut log_files: Vec<PathBuf> = std::fs::read_dir(&log_dir)
            .expect("list")
            .map(|e| e.expect("list").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        log_files.sort();
        let log_bytes = log_files
            .iter()
            .map(|p| std::fs::metadata(p).expect("stat").len())
            .sum();
        println!(
            "partition data set: {} segments, {log_bytes} log bytes",
            log_files.len()
        );
        PartitionSet {
            dir,
            log_files,
            log_bytes,
        }
    }
}

fn scan(log: &Partition) -> u64 {
    let mut next = log.start_offset();
    let mut n = 0;
    while next < log.end_offset() {
        let got = log.read(next, 1 << 20).expect("read");
        n += got.records().count() as u64;
        next = got.next_offset();
    }
    n
}

fn partition(c: &mut Criterion) {
    let segments = size_from_env(
        "TOPICLOG_BENCH_SCALE_SEGMENTS",
        if measuring() { 10_000 } else { 300 },
    );
    let data = OnceCell::new();
    let data = || {
        data.get_or_init(|| {
            let d = PartitionSet::build(segments);
            println!("before opening: {}", held());
            let t = Instant::now();
            let log = Partition::open_with(d.log_dir(), partition_config()).expect("open");
            println!("opened in {:?}: {}", t.elapsed(), held());
            let _ = log.read(0, 1 << 20).expect("oldest");
            let _ = log.read(log.end_offset() - 1, 1 << 20).expect("newest");
            println!("after oldest and newest: {}", held());
            let t = Instant::now();
            let n = scan(&log);
            println!(
                "after a full scan ({n} records, {:?}): {}",
                t.elapsed(),
                held()
            );
            drop(log);
            println!("after drop: {}", held());
            d
        })
    };

    let mut group = c.benchmark_group("scale");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function(format!("partition-open/{segments}seg"), |b| {
        let d = data();
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = Partition::open_with(d.log_dir(), partition_config()).expect("open");
                elapsed += start.elapsed();
                assert!(log.recovery_report().clean_shutdown);
                drop(log);
            }
            elapsed
        });
    });
    group.bench_function(format!("raw/stat/{segments}seg"), |b| {
        let d = data();
        b.iter(|| {
            let mut n = 0;
            for p in &d.log_files {
                n += std::fs::metadata(p).expect("stat").len();
            }
            assert_eq!(n, d.log_bytes);
        });
    });
    group.bench_function(format!("raw/open-close/{segments}seg"), |b| {
        let d = data();
        b.iter(|| {
            let mut n = 0;
            for p in &d.log_files {
                let f = std::fs::File::open(p).expect("open");
                n += f.metadata().expect("fstat").len();
            }
            assert_eq!(n, d.log_bytes);
        });
    });
    group.bench_function(format!("partition-scan/{segments}seg"), |b| {
        let d = data();
        let log = Partition::open_with(d.log_dir(), partition_config()).expect("open");
        b.iter(|| black_box(scan(&log)));
    });
    group.bench_function(format!("raw/scan/{segments}seg"), |b| {
        let d = data();
        let mut chunk = vec![0u8; RAW_CHUNK];
        b.iter(|| {
            let mut total = 0u64;
            for path in &d.log_files {
                let file = std::fs::File::open(path).expect("open");
                let mut pos = 0u64;
                loop {
                    let got = file.read_at(&mut chunk, pos).expect("pread");
                    if got == 0 {
                        break;
                    }
                    black_box(&chunk[..got]);
                    pos += got as u64;
                }
                total += pos;
            }
            assert_eq!(total, d.log_bytes);
        });
    });
    group.finish();
}

fn store_config(partitions: u64) -> TopicConfig {
    TopicConfig {
        partitions: (partitions / TOPICS) as u32,
        overrides: LogOverrides {
            durability: Some(Durability::None),
            ..LogOverrides::default()
        },
    }
}

/// A closed store of `partitions` partitions (in 10 topics), each with one record.
fn build_store(partitions: u64) -> TempDir {
    let dir = scratch_dir("scale-store");
    let store = Store::open_with(dir.path(), StoreOptions::default()).expect("open store");
    for t in 0..TOPICS {
        let topic = store
            .create_topic(&format!("t{t}"), store_config(partitions))
            .expect("create topic");
        for p in topic.partitions() {
            p.append(Record::new("x")).expect("append");
        }
    }
    store.close().expect("close store");
    dir
}

fn partition_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(root).expect("list store") {
        let t = t.expect("list store").path();
        if !t.is_dir() {
            continue;
        }
        for p in std::fs::read_dir(&t).expect("list topic") {
            let p = p.expect("list topic").path();
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

fn store(c: &mut Criterion) {
    let partitions = size_from_env(
        "TOPICLOG_BENCH_SCALE_PARTITIONS",
        if measuring() { 1_000 } else { 40 },
    );
    let data = OnceCell::new();
    let data = || {
        data.get_or_init(|| {
            let d = build_store(partitions);
            let t = Instant::now();
            let store = Store::open_with(d.path(), StoreOptions::default()).expect("open");
            println!(
                "store of {partitions} opened in {:?}: {}",
                t.elapsed(),
                held()
            );
            let t = Instant::now();
            store.close().expect("close");
            println!("store closed in {:?}: {}", t.elapsed(), held());
            drop(store);
            println!("store dropped: {}", held());
            d
        })
    };
    let mut group = c.benchmark_group("scale");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function(format!("store-open/{partitions}part"), |b| {
        let d = data();
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let store = Store::open_with(d.path(), StoreOptions::default()).expect("open");
                elapsed += start.elapsed();
                store.close().expect("close");
            }
            elapsed
        });
    });
    group.bench_function(format!("store-close/{partitions}part"), |b| {
        let d = data();
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let store = Store::open_with(d.path(), StoreOptions::default()).expect("open");
                // Something to sync in every partition, as after a period of appends.
                for t in 0..TOPICS {
                    for p in store.topic(&format!("t{t}")).expect("topic").partitions() {
                        p.append(Record::new("y")).expect("append");
                    }
                }
                let start = Instant::now();
                store.close().expect("close");
                elapsed += start.elapsed();
            }
            elapsed
        });
    });
    group.bench_function(format!("raw/open-close-dirs/{partitions}part"), |b| {
        let d = data();
        let dirs = partition_dirs(d.path());
        b.iter(|| {
            for dir in &dirs {
                for name in [
                    "checkpoint",
                    "00000000000000000000.log",
                    "00000000000000000000.index",
                ] {
                    if let Ok(f) = std::fs::File::open(dir.join(name)) {
                        black_box(f.metadata().map(|m| m.len()).unwrap_or(0));
                    }
                }
            }
        });
    });
    group.bench_function(format!("store-append-round-robin/{partitions}part"), |b| {
        let d = data();
        let store = Store::open_with(d.path(), StoreOptions::default()).expect("open");
        let parts: Vec<Partition> = (0..TOPICS)
            .flat_map(|t| store.topic(&format!("t{t}")).expect("topic").partitions())
            .collect();
        let record = Record::new(payload(100, 3));
        b.iter(|| {
            for p in &parts {
                p.append(record.clone()).expect("append");
            }
        });
        drop(parts);
        store.close().expect("close");
    });
    // W1's batches (100 records of 100 bytes, encoded with `BatchBuilder`), to every partition in
    // turn and, the same number of batches, to one partition of the same store.
    let w1_batches = |parts: &[Partition], rounds: u64, value: &[u8]| {
        for _ in 0..rounds {
            for p in parts {
                let mut batch = p.batch_builder();
                for _ in 0..100 {
                    batch.push(value);
                }
                p.append_builder(&mut batch).expect("append");
            }
        }
    };
    // Each partition is cut back to where it started (outside the clock) once the iterations
    // appended 256 MiB, so the disk holds what one run writes at most.
    let timed_w1 = |parts: &[Partition], rounds: u64, iters: u64, value: &[u8]| {
        let bases: Vec<u64> = parts.iter().map(|p| p.end_offset()).collect();
        let per_iter = 100 * 130 * rounds * parts.len() as u64;
        let mut elapsed = Duration::ZERO;
        let mut written = 0;
        for _ in 0..iters {
            let start = Instant::now();
            w1_batches(parts, rounds, value);
            elapsed += start.elapsed();
            written += per_iter;
            if written > 256 << 20 {
                for (p, &base) in parts.iter().zip(&bases) {
                    p.truncate_to(base).expect("cut back");
                }
                written = 0;
            }
        }
        elapsed
    };
    group.throughput(Throughput::Elements(100 * partitions));
    group.bench_function(
        format!("store-append-round-robin-w1/{partitions}part"),
        |b| {
            let d = data();
            let store = Store::open_with(d.path(), StoreOptions::default()).expect("open");
            let parts: Vec<Partition> = (0..TOPICS)
                .flat_map(|t| store.topic(&format!("t{t}")).expect("topic").partitions())
                .collect();
            let value = payload(100, 3);
            b.iter_custom(|iters| timed_w1(&parts, 1, iters, &value));
            drop(parts);
            store.close().expect("close");
        },
    );
    group.bench_function(
        format!("store-append-one-partition-w1/{partitions}part"),
        |b| {
            let d = data();
            let store = Store::open_with(d.path(), StoreOptions::default()).expect("open");
            let one = store.topic("t0").expect("topic").partition(0).expect("p");
            let value = payload(100, 3);
            b.iter_custom(|iters| timed_w1(std::slice::from_ref(&one), partitions, iters, &value));
            drop(one);
            store.close().expect("close");
        },
    );
    group.throughput(Throughput::Elements(partitions));
    group.bench_function(format!("raw/append-round-robin/{partitions}part"), |b| {
        let d = data();
        let dirs = partition_dirs(d.path());
        let files: Vec<std::fs::File> = dirs
            .iter()
            .map(|dir| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("raw.bench"))
                    .expect("open raw")
            })
            .collect();
        let record = payload(100, 3);
        b.iter(|| {
            for f in &files {
                use std::io::Write;
                (&*f).write_all(&record).expect("write");
            }
        });
        drop(files);
        for dir in &dirs {
            let _ = std::fs::remove_file(dir.join("raw.bench"));
        }
    });
    group.finish();
}

/// A partition whose writer stopped like `kill -9`, and its metadata and index files as the stop
/// left them: restored before each iteration, so every open recovers the same state.
struct CrashedSet {
    dir: TempDir,
    config: LogConfig,
    saved: Vec<(PathBuf, Vec<u8>)>,
    /// Bytes of batches in the `.log`s (not counting preallocated space).
    data_bytes: u64,
}

impl CrashedSet {
    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// Save every file but the `.log`s and the lock.
    fn save(dir: TempDir, config: LogConfig, data_bytes: u64) -> CrashedSet {
        let log_dir = dir.path().join("log");
        let mut saved = Vec::new();
        for entry in std::fs::read_dir(&log_dir).expect("list") {
            let path = entry.expect("list").path();
            if path.extension().is_none_or(|e| e != "log")
                && path.file_name().is_some_and(|n| n != "LOCK")
            {
                let bytes = std::fs::read(&path).expect("read");
                saved.push((path, bytes));
            }
        }
        CrashedSet {
            dir,
            config,
            saved,
            data_bytes,
        }
    }

    /// Put the saved files back (without the index files: the open rebuilds them from the logs),
    /// and remove what a clean close left.
    fn restore(&self, with_indexes: bool) {
        let _ = std::fs::remove_file(self.log_dir().join(".clean_shutdown"));
        for (path, bytes) in &self.saved {
            let index = path
                .extension()
                .is_some_and(|e| e == "index" || e == "timeindex");
            if index && !with_indexes {
                let _ = std::fs::remove_file(path);
            } else {
                std::fs::write(path, bytes).expect("restore");
            }
        }
    }

    /// Time one unclean open (after `restore`); returns the bytes it rescanned.
    fn recover(&self) -> (Duration, u64) {
        let start = Instant::now();
        let log = Partition::open_with(self.log_dir(), self.config.clone()).expect("open");
        let took = start.elapsed();
        let report = log.recovery_report();
        assert!(!report.clean_shutdown);
        log.abandon();
        (took, report.bytes_scanned)
    }
}

/// One active segment: `durable` bytes below the recovery point, then `tail` bytes after it.
fn build_active_tail(durable: u64, tail: u64) -> CrashedSet {
    let dir = scratch_dir("scale-recovery");
    let config = LogConfig {
        segment_bytes: (durable + tail + (16 << 20)).max(1 << 30),
        segment_ms: Deadline::Never,
        durability: Durability::None,
        ..LogConfig::default()
    };
    let log = Partition::open_with(dir.path().join("log"), config.clone()).expect("open");
    let value = payload(100, 3);
    let size = |log: &Partition| log.segments().iter().map(|s| s.size()).sum::<u64>();
    let fill = |to: u64| {
        while size(&log) < to {
            let mut batch = log.batch_builder();
            for _ in 0..100 {
                batch.push(&value);
            }
            log.append_builder(&mut batch).expect("append");
        }
    };
    fill(durable);
    log.flush_checkpoint().expect("flush");
    fill(durable + tail);
    let data_bytes = size(&log);
    log.abandon();
    drop(log);
    println!("recovery data set: {data_bytes} bytes of batches, {tail} after the recovery point");
    CrashedSet::save(dir, config, data_bytes)
}

/// `segments` segments of 16 KiB, none below the recovery point (it never moved past 0).
fn build_rescan(segments: u64) -> CrashedSet {
    let dir = scratch_dir("scale-rescan");
    let config = partition_config();
    let log = Partition::open_with(dir.path().join("log"), config.clone()).expect("open");
    let value = Record::new(payload(SEGMENT_PAYLOAD, 7));
    while (log.segment_count() as u64) < segments {
        log.append(value.clone()).expect("append");
    }
    log.flush().expect("flush"); // durable, but no recovery point written
    let data_bytes = log.segments().iter().map(|s| s.size()).sum();
    log.abandon();
    drop(log);
    CrashedSet::save(dir, config, data_bytes)
}

fn recovery(c: &mut Criterion) {
    let mib = |b: u64| format!("{}MiB", b >> 20);
    let durable = size_from_env(
        "TOPICLOG_BENCH_SCALE_DURABLE",
        if measuring() { 1000 << 20 } else { 8 << 20 },
    );
    let tail = size_from_env(
        "TOPICLOG_BENCH_SCALE_TAIL",
        if measuring() { 10 << 20 } else { 1 << 20 },
    );
    let segments = size_from_env(
        "TOPICLOG_BENCH_SCALE_SEGMENTS",
        if measuring() { 10_000 } else { 300 },
    );
    let active = OnceCell::new();
    let active = || active.get_or_init(|| build_active_tail(durable, tail));
    let rescan = OnceCell::new();
    let rescan = || rescan.get_or_init(|| build_rescan(segments));
    let time = |set: &CrashedSet, with_indexes: bool, iters: u64| {
        let mut elapsed = Duration::ZERO;
        let mut scanned = 0;
        for _ in 0..iters {
            set.restore(with_indexes);
            let (took, bytes) = set.recover();
            elapsed += took;
            scanned = bytes;
        }
        println!("rescanned {scanned} bytes");
        elapsed
    };
    // The one active segment's bytes `[from, data_bytes)`, with `pread`.
    let read = |set: &CrashedSet, from: u64| {
        let path = set.log_dir().join(format!("{:020}.log", 0));
        let file = std::fs::File::open(path).expect("open");
        let mut chunk = vec![0u8; RAW_CHUNK];
        let mut pos = from;
        while pos < set.data_bytes {
            let want = chunk.len().min((set.data_bytes - pos) as usize);
            let got = file.read_at(&mut chunk[..want], pos).expect("pread");
            assert!(got > 0, "short file");
            black_box(&chunk[..got]);
            pos += got as u64;
        }
        pos - from
    };

    let mut group = c.benchmark_group("scale");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let name = format!("{}+{}", mib(durable), mib(tail));
    group.bench_function(format!("recovery-tail/{name}"), |b| {
        b.iter_custom(|iters| time(active(), true, iters));
    });
    group.bench_function(format!("recovery-full/{name}"), |b| {
        b.iter_custom(|iters| time(active(), false, iters));
    });
    group.bench_function(format!("raw/read-tail/{}", mib(tail)), |b| {
        let set = active();
        b.iter(|| assert_eq!(read(set, set.data_bytes - tail), tail));
    });
    group.bench_function(format!("raw/read-all/{name}"), |b| {
        let set = active();
        b.iter(|| assert_eq!(read(set, 0), set.data_bytes));
    });
    group.bench_function(format!("recovery-rescan/{segments}seg"), |b| {
        b.iter_custom(|iters| time(rescan(), true, iters));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = partition, store, recovery
}
criterion_main!(benches);
