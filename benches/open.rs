//! Opening a large partition: after a clean close, and after a crash before any recovery point.
//!
//! The data set is built once per run: 1 KiB records in batches of 100 with [`Durability::None`]
//! until the payload reaches `$TOPICLOG_BENCH_OPEN_BYTES` (default 1 GiB; `K`/`M`/`G` suffixes
//! accepted; 16 MiB under `cargo test --benches`), in segments of a quarter of that, at most
//! 256 MiB, so a 1 GiB log is four full sealed segments plus a small active one. Then it is closed
//! cleanly. The files stay in the page cache: these are warm-cache figures, the CPU and `fsync`
//! cost of opening, not the disk's read speed.
//!
//! - `open/clean/1GiB`: time `Partition::open_with` alone on a cleanly closed log (the clean close
//!   that leaves the marker for the next iteration happens outside the clock).
//! - `open/recovery/1GiB`: before each iteration, outside the clock, delete `.clean_shutdown` and
//!   put back the checkpoint the first open wrote (recovery point 0), so the open verifies every
//!   batch of every segment and rebuilds every index (a partition that holds data and has no
//!   checkpoint at all does not open: its log start offset would be a guess); time the open. Throughput: payload bytes (the `.log` files are about 1% larger: framing).
//! - `open/raw/recovery/1GiB`: the floor for a verifying recovery: `pread` every `.log` file in
//!   1 MiB chunks and CRC-32 every byte.

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
use topiclog::{Durability, LogConfig, Partition, Record};

use common::{measuring, payload, scratch_dir, size_from_env, size_label, RAW_CHUNK};

const VALUE_LEN: usize = 1024;
const BATCH_RECORDS: usize = 100;
/// Payload bytes per appended batch; the data set is a whole number of batches.
const BATCH_BYTES: u64 = (VALUE_LEN * BATCH_RECORDS) as u64;

/// A cleanly closed partition of about the requested size.
struct Dataset {
    dir: TempDir,
    config: LogConfig,
    log_files: Vec<PathBuf>,
    log_bytes: u64,
    /// The checkpoint as the first open wrote it (log start 0, recovery point 0): put back with
    /// the clean-shutdown marker removed, it makes the next open rescan every segment, as after a
    /// crash that came before any sync recorded a recovery point.
    first_checkpoint: Vec<u8>,
}

impl Dataset {
    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn build(payload_bytes: u64) -> Dataset {
        let dir = scratch_dir("open");
        let log_dir = dir.path().join("log");
        let config = LogConfig {
            segment_bytes: (payload_bytes / 4).clamp(1 << 20, 256 << 20),
            durability: Durability::None,
            ..LogConfig::default()
        };
        let log = Partition::open_with(&log_dir, config.clone()).expect("open the open-bench log");
        let first_checkpoint =
            std::fs::read(log_dir.join("checkpoint")).expect("read the first checkpoint");
        let values: Vec<Record> = (0..BATCH_RECORDS)
            .map(|i| Record::new(payload(VALUE_LEN, i as u64)))
            .collect();
        let mut written = 0u64;
        while written < payload_bytes {
            log.append_batch(&values).expect("append");
            written += BATCH_BYTES;
        }
        let segments = log.segment_count();
        log.close().expect("close the open-bench log");
        drop(log);
        let mut log_files: Vec<PathBuf> = std::fs::read_dir(&log_dir)
            .expect("list the log")
            .map(|e| e.expect("list the log").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        log_files.sort();
        let log_bytes = log_files
            .iter()
            .map(|p| std::fs::metadata(p).expect("stat a segment").len())
            .sum();
        println!("data set: {written} payload bytes, {log_bytes} log bytes in {segments} segments");
        Dataset {
            dir,
            config,
            log_files,
            log_bytes,
            first_checkpoint,
        }
    }
}

/// Remove `path`, which must exist.
fn remove(path: &Path) {
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

fn open(c: &mut Criterion) {
    let requested = size_from_env(
        "TOPICLOG_BENCH_OPEN_BYTES",
        if measuring() { 1 << 30 } else { 16 << 20 },
    );
    let label = size_label(requested);
    let payload_bytes = requested.div_ceil(BATCH_BYTES) * BATCH_BYTES;
    let data = OnceCell::new();
    let data = || data.get_or_init(|| Dataset::build(payload_bytes));

    let mut group = c.benchmark_group("open");
    // A recovery iteration scans the whole log (about a second for 1 GiB): few, equal samples.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);

    group.bench_function(format!("clean/{label}"), |b| {
        let d = data();
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = Partition::open_with(d.log_dir(), d.config.clone()).expect("open");
                elapsed += start.elapsed();
                assert!(log.recovery_report().clean_shutdown);
                drop(log);
            }
            elapsed
        });
    });

    group.throughput(Throughput::Bytes(payload_bytes));
    group.bench_function(format!("recovery/{label}"), |b| {
        let d = data();
        let log_dir = d.log_dir();
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                remove(&log_dir.join(".clean_shutdown"));
                std::fs::write(log_dir.join("checkpoint"), &d.first_checkpoint)
                    .expect("put the first checkpoint back");
                let start = Instant::now();
                let log = Partition::open_with(&log_dir, d.config.clone()).expect("recover");
                elapsed += start.elapsed();
                let report = log.recovery_report();
                assert!(!report.clean_shutdown);
                assert_eq!(report.segments_scanned, d.log_files.len());
                assert_eq!(report.bytes_truncated, 0);
                drop(log);
            }
            elapsed
        });
    });

    group.bench_function(format!("raw/recovery/{label}"), |b| {
        let d = data();
        let mut chunk = vec![0u8; RAW_CHUNK];
        b.iter(|| {
            let mut scanned = 0u64;
            for path in &d.log_files {
                let file = std::fs::File::open(path).expect("open a segment");
                let mut crc = crc32fast::Hasher::new();
                let mut pos = 0u64;
                loop {
                    let got = file.read_at(&mut chunk, pos).expect("pread a segment");
                    if got == 0 {
                        break;
                    }
                    crc.update(&chunk[..got]);
                    pos += got as u64;
                }
                black_box(crc.finalize());
                scanned += pos;
            }
            assert_eq!(scanned, d.log_bytes);
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = open
}
criterion_main!(benches);
