//! Append latency while segments roll and retention runs: what an appender waits for when the
//! partition does its housekeeping.
//!
//! One partition (preallocated segments) takes single 1 KiB records from the bench thread: 4 MiB
//! segments under `Durability::None` (a roll every ~4,000 appends), 512 KiB under `Always` (a roll
//! every ~500 appends, about every half second of fsyncs). A second thread runs a retention pass
//! every 20 ms that keeps the newest 16 MiB (deleting a segment about as often as one rolls), and,
//! under `None`, makes the data durable (`flush`, as background maintenance does, which also syncs
//! rolled segments).
//!
//! - `latency/roll-retention/{none,always}/1KiB`: one criterion iteration is one append. The
//!   per-append latencies of the whole run (warm-up included) are printed as p50/p90/p99/max and
//!   written to `<criterion home>/topiclog-latency/` for `benches/summarize.sh`; the criterion
//!   time is their mean.
//! - `latency/roll-retention/raw/{none,always}/1KiB`: the baseline, a raw file taking the same
//!   records (`write`, plus `fdatasync` for `always`), emptied every 16 MiB.
//!
//! The figures that matter are p99 and max: an append that waits behind a roll's or a retention
//! pass's fsyncs shows there.

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use topiclog::{Durability, Limit, LogConfig, Partition, Record, Retention, RetentionPolicy};

use common::{payload, scratch_dir, Latencies, RawWriter};

const VALUE_LEN: usize = 1024;
const KEEP_BYTES: u64 = 16 << 20;
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(20);

fn latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("latency/roll-retention");
    for (name, durability, segment_bytes) in [
        ("none", Durability::None, 4 << 20),
        ("always", Durability::Always, 512 << 10),
    ] {
        let dir = scratch_dir("latency");
        let log = Partition::open_with(
            dir.path().join("log"),
            LogConfig {
                segment_bytes,
                durability,
                ..LogConfig::default()
            },
        )
        .expect("open the latency-bench log");
        let stop = Arc::new(AtomicBool::new(false));
        let housekeeping = {
            let (log, stop) = (log.clone(), stop.clone());
            thread::spawn(move || {
                let policy = RetentionPolicy {
                    retention: Retention::Forever,
                    retention_bytes: Limit::Bytes(KEEP_BYTES),
                };
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(HOUSEKEEPING_EVERY);
                    log.apply_retention(0, &policy).expect("retention");
                    if durability == Durability::None {
                        log.flush().expect("background flush");
                    }
                }
            })
        };
        let value = payload(VALUE_LEN, 7);
        let mut latencies = Latencies::default();
        group.bench_function(format!("{name}/1KiB"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let record = Record::new(value.clone());
                    let start = Instant::now();
                    log.append(record).expect("append");
                    let took = start.elapsed();
                    latencies.record(took);
                    total += took;
                }
                total
            });
        });
        stop.store(true, Ordering::Relaxed);
        housekeeping.join().expect("housekeeping thread");
        latencies.report(&format!("latency/roll-retention/{name}/1KiB"));
        log.close().expect("close");

        let raw_path = dir.path().join("raw");
        let mut raw = RawWriter::create(&raw_path).expect("raw file");
        let mut raw_latencies = Latencies::default();
        group.bench_function(format!("raw/{name}/1KiB"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    raw.append(&value).expect("raw append");
                    if durability == Durability::Always {
                        raw.sync().expect("raw sync");
                    }
                    let took = start.elapsed();
                    raw_latencies.record(took);
                    total += took;
                    if raw.len() > KEEP_BYTES {
                        raw.reset().expect("raw reset");
                    }
                }
                total
            });
        });
        raw_latencies.report(&format!("latency/roll-retention/raw/{name}/1KiB"));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = latency
}
criterion_main!(benches);
