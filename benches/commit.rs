//! Consumer group commits: `Consumer::commit_sync` to the offsets topic (`__consumer_offsets`,
//! `Durability::Always`), with members of one group committing concurrently.
//!
//! - `commit/sync/{1,4}members`: a group of that many members, each owning one partition of a
//!   4-partition topic (positions resolved by one poll, then fixed); one iteration is one
//!   `commit_sync` by every member, each member on its own thread, all at once (every member's
//!   commit goes to the same offsets partition, so they can share an fsync).
//!   `Throughput::Elements`: commits/s.
//! - `commit/raw/sync/{1,4}members` (the baseline, named `raw/` so `summarize.sh` pairs it): the
//!   same number of threads each appending a one-record batch of a commit's size with
//!   `Partition::append_batch_with(.., Durability::Always)` to one partition of the same store:
//!   the group commit of the partition's sync path, without the coordinator or the offset table.
//!   The ratio is what the commit path costs on top of the durable append it makes.
//!
//! Besides criterion's medians, each prints the per-commit latency percentiles (from every
//! member's thread) and how many writes and fsyncs of the partition's `.log` files one commit
//! cost (counted by a `FileSystem` wrapper around the real one).

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use topiclog::fs::{File, FileLock, FileSystem, OpenMode, StdFs};
use topiclog::{
    AssignmentStrategy, AutoOffsetReset, Consumer, ConsumerConfig, Durability, Env, LogConfig,
    Partition, Record, Store, StoreOptions, TopicConfig,
};

use common::{scratch_dir, Latencies};

const TOPIC: &str = "t";
const GROUP: &str = "bench";
const PARTITIONS: u32 = 4;
/// The offsets topic (its directory's name).
const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The baseline's topic.
const RAW_TOPIC: &str = "raw";

/// Writes and syncs of `.log` files under directories whose name starts with a prefix.
#[derive(Debug, Default)]
struct LogIo {
    writes: AtomicU64,
    syncs: AtomicU64,
}

impl LogIo {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.syncs.load(Ordering::Relaxed),
        )
    }
}

/// The real file system, counting `.log` writes and syncs of the offsets topic and of the
/// baseline's topic separately.
#[derive(Debug)]
struct CountingFs {
    inner: StdFs,
    offsets: Arc<LogIo>,
    raw: Arc<LogIo>,
}

#[derive(Debug)]
struct CountedFile {
    inner: Arc<dyn File>,
    io: Option<Arc<LogIo>>,
}

impl CountedFile {
    fn count(&self, which: fn(&LogIo) -> &AtomicU64) {
        if let Some(io) = &self.io {
            which(io).fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl File for CountedFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.count(|io| &io.writes);
        self.inner.write_all_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn modified_ms(&self) -> io::Result<Option<i64>> {
        self.inner.modified_ms()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.count(|io| &io.syncs);
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.count(|io| &io.syncs);
        self.inner.sync_all()
    }
    fn map_readonly(&self, len: u64) -> io::Result<Bytes> {
        self.inner.map_readonly(len)
    }
    fn map_growing(&self, len: u64) -> io::Result<Option<Bytes>> {
        self.inner.map_growing(len)
    }
}

impl CountingFs {
    /// The counters for a file at `path`: `.log` files of the two topics' partitions only
    /// (`<store>/<topic>/<partition>/<base>.log`).
    fn counters_for(&self, path: &Path) -> Option<Arc<LogIo>> {
        if path.extension().is_none_or(|e| e != "log") {
            return None;
        }
        let topic = path.parent()?.parent()?.file_name()?;
        if topic == OFFSETS_TOPIC {
            Some(self.offsets.clone())
        } else if topic == RAW_TOPIC {
            Some(self.raw.clone())
        } else {
            None
        }
    }
}

impl FileSystem for CountingFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        Ok(Arc::new(CountedFile {
            inner: self.inner.open(path, mode)?,
            io: self.counters_for(path),
        }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.read_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        self.inner.is_dir(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        self.inner.try_lock(path)
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    store: Store,
    offsets: Arc<LogIo>,
    raw: Arc<LogIo>,
}

fn open_store() -> Bench {
    let dir = scratch_dir("commit");
    let offsets = Arc::new(LogIo::default());
    let raw = Arc::new(LogIo::default());
    let fs = CountingFs {
        inner: StdFs::new(),
        offsets: offsets.clone(),
        raw: raw.clone(),
    };
    let store = Store::open_with_env(
        dir.path(),
        StoreOptions {
            log: LogConfig {
                durability: Durability::None,
                ..LogConfig::default()
            },
            background_cleaner: false,
            background_maintenance: true,
            ..StoreOptions::default()
        },
        Env::with_fs(Arc::new(fs)),
    )
    .expect("open the bench store");
    let t = store
        .create_topic(TOPIC, TopicConfig::with_partitions(PARTITIONS))
        .expect("create the topic");
    for p in 0..PARTITIONS {
        for i in 0..100 {
            t.send_to(p, Record::new(format!("v{i}"))).expect("send");
        }
    }
    Bench {
        _dir: dir,
        store,
        offsets,
        raw,
    }
}

/// `n` members of [`GROUP`] subscribed to [`TOPIC`], polled until the group is stable and each
/// has a position in every partition it owns.
fn settled_group(store: &Store, n: usize) -> Vec<Consumer> {
    let mut members: Vec<Consumer> = (0..n)
        .map(|i| {
            let mut c = store
                .consumer(ConsumerConfig {
                    client_id: format!("m{i}"),
                    auto_offset_reset: AutoOffsetReset::Earliest,
                    enable_auto_commit: false,
                    assignment_strategy: AssignmentStrategy::CooperativeSticky,
                    ..ConsumerConfig::group(GROUP)
                })
                .expect("a consumer");
            c.subscribe(&[TOPIC]).expect("subscribe");
            c
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for c in &mut members {
            c.poll(Duration::from_millis(5)).expect("poll");
        }
        let owned: usize = members.iter().map(|c| c.assignment().len()).sum();
        let described: usize = store
            .describe_group(GROUP)
            .iter()
            .map(|m| m.assignment.len())
            .sum();
        if owned == PARTITIONS as usize
            && described == PARTITIONS as usize
            && members.iter().all(|c| !c.assignment().is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group did not settle in 30 s"
        );
    }
    for c in &mut members {
        for tp in c.assignment() {
            c.position(&tp).expect("a position");
        }
    }
    members
}

/// One commit per member per iteration, every member on its own thread.
fn run_members(members: &mut [Consumer], iters: u64, latencies: &Mutex<Latencies>) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in members.iter_mut() {
            s.spawn(move || {
                let mut mine = Latencies::default();
                for _ in 0..iters {
                    let at = Instant::now();
                    c.commit_sync().expect("commit_sync");
                    mine.record(at.elapsed());
                }
                latencies.lock().expect("latencies").extend(mine);
            });
        }
    });
    start.elapsed()
}

/// The baseline: as many threads appending a commit-sized record durably to one partition.
fn run_raw(p: &Partition, threads: usize, iters: u64, latencies: &Mutex<Latencies>) -> Duration {
    // A commit record: key 1 + 2 + 5 + 2 + 1 + 4 bytes ("bench", "t", partition), value
    // 1 + 8 + 8 + 4 bytes (no metadata).
    let key = Bytes::from(vec![1u8; 15]);
    let value = Bytes::from(vec![2u8; 21]);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (key, value) = (key.clone(), value.clone());
            s.spawn(move || {
                let mut mine = Latencies::default();
                for _ in 0..iters {
                    let at = Instant::now();
                    let record = Record::new(value.clone()).with_key(key.clone());
                    p.append_batch_with(&[record], Durability::Always)
                        .expect("durable append");
                    mine.record(at.elapsed());
                }
                latencies.lock().expect("latencies").extend(mine);
            });
        }
    });
    start.elapsed()
}

/// Print what one commit cost in `.log` writes and syncs between two snapshots.
fn report_io(id: &str, before: (u64, u64), after: (u64, u64), commits: u64) {
    if commits == 0 || !common::measuring() {
        return;
    }
    let per = |n: u64| n as f64 / commits as f64;
    println!(
        "{id}: {commits} commits, {:.2} .log writes and {:.3} fsyncs per commit",
        per(after.0 - before.0),
        per(after.1 - before.1),
    );
}

fn commits(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for n in [1usize, 4] {
        group.throughput(Throughput::Elements(n as u64));
        let suffix = if n == 1 { "member" } else { "members" };

        let bench = open_store();
        let mut members = settled_group(&bench.store, n);
        let id = format!("sync/{n}{suffix}");
        let latencies = Mutex::new(Latencies::default());
        let done = AtomicU64::new(0);
        let before = bench.offsets.snapshot();
        group.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                done.fetch_add(iters * n as u64, Ordering::Relaxed);
                run_members(&mut members, iters, &latencies)
            });
        });
        report_io(
            &format!("commit/{id}"),
            before,
            bench.offsets.snapshot(),
            done.load(Ordering::Relaxed),
        );
        latencies
            .into_inner()
            .expect("latencies")
            .report(&format!("commit/{id}"));
        drop(members);

        let raw = bench
            .store
            .create_topic(RAW_TOPIC, TopicConfig::with_partitions(1))
            .expect("create the baseline topic");
        let p = raw.partition(0).expect("partition 0");
        let id = format!("raw/sync/{n}{suffix}");
        let latencies = Mutex::new(Latencies::default());
        let done = AtomicU64::new(0);
        let before = bench.raw.snapshot();
        group.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                done.fetch_add(iters * n as u64, Ordering::Relaxed);
                run_raw(&p, n, iters, &latencies)
            });
        });
        report_io(
            &format!("commit/{id}"),
            before,
            bench.raw.snapshot(),
            done.load(Ordering::Relaxed),
        );
        latencies
            .into_inner()
            .expect("latencies")
            .report(&format!("commit/{id}"));
        bench.store.close().expect("close the store");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = commits
}
criterion_main!(benches);
