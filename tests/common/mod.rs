//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// Inside an `impl FileSystem for` a wrapper with an `inner` file system: every method but
/// `create_dir_all` and `open` (the ones wrappers change) forwarded to `inner`.
#[macro_export]
macro_rules! forward_to_inner_fs {
    () => {
        fn remove_file(&self, path: &::std::path::Path) -> ::std::io::Result<()> {
            self.inner.remove_file(path)
        }
        fn remove_dir_all(&self, path: &::std::path::Path) -> ::std::io::Result<()> {
            self.inner.remove_dir_all(path)
        }
        fn rename(
            &self,
            from: &::std::path::Path,
            to: &::std::path::Path,
        ) -> ::std::io::Result<()> {
            self.inner.rename(from, to)
        }
        fn read_dir(&self, path: &::std::path::Path) -> ::std::io::Result<Vec<String>> {
            self.inner.read_dir(path)
        }
        fn sync_dir(&self, path: &::std::path::Path) -> ::std::io::Result<()> {
            self.inner.sync_dir(path)
        }
        fn exists(&self, path: &::std::path::Path) -> ::std::io::Result<bool> {
            self.inner.exists(path)
        }
        fn is_dir(&self, path: &::std::path::Path) -> ::std::io::Result<bool> {
            self.inner.is_dir(path)
        }
        fn try_lock(
            &self,
            path: &::std::path::Path,
        ) -> ::std::io::Result<Box<dyn ::topiclog::fs::FileLock>> {
            self.inner.try_lock(path)
        }
        fn hard_link(
            &self,
            original: &::std::path::Path,
            link: &::std::path::Path,
        ) -> ::std::io::Result<()> {
            self.inner.hard_link(original, link)
        }
        fn map_shared_page(
            &self,
            path: &::std::path::Path,
        ) -> ::std::io::Result<Option<::topiclog::fs::SharedPage>> {
            self.inner.map_shared_page(path)
        }
    };
}

pub mod clock;
pub mod config;
pub mod progress;
pub mod sync_gate;

#[allow(unused_imports)] // (not every test crate uses them)
pub use config::{persist_failures, proptest_config, small_log};

use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{Bytes, Partition, Record};

/// Run `f` once on the real file system (in a temp dir) and once on the simulated one, on a
/// directory named `p0`.
pub fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    both_fs_at("p0", 7, f)
}

/// Run `f` once on the real file system (`<temp dir>/<name>`) and once on a [`SimFs`] seeded
/// with `seed` (`/sim/<name>`).
pub fn both_fs_at(name: &str, seed: u64, f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join(name));
    f(Arc::new(SimFs::new(seed)), &Path::new("/sim").join(name));
}

/// A temp dir for model tests on [`StdFs`]: on tmpfs (`/dev/shm`) where there is one, so their
/// many fsyncs cost nothing and the cases stay cheap (maps and SIGBUS behave as on a disk).
pub fn std_fs_temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("topiclog-model-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir")
}

/// A record keyed `k<i>` with value `<tag>-<i>`.
pub fn keyed(i: u64, tag: &str) -> Record {
    Record::new(format!("{tag}-{i}")).with_key(format!("k{i}"))
}

/// All `(offset, value)` pairs from `from` to the end.
pub fn values(log: &Partition, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.end_offset() {
        let batches = log.read(next, 64 << 10).unwrap();
        assert!(
            !batches.is_empty(),
            "read at {next} returned nothing below the end"
        );
        for r in batches.records() {
            assert!(r.offset() >= next);
            out.push((
                r.offset(),
                r.value().map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
        next = batches.next_offset();
    }
    out
}

/// A fresh simulated file system holding exactly the files below `root` of `src` (as they are now,
/// all durable), so every trial of a scenario starts from the same bytes. Empty directories are
/// not copied.
pub fn copy_sim_tree(src: &SimFs, root: &Path, seed: u64) -> SimFs {
    fn walk(src: &SimFs, dst: &SimFs, dir: &Path) {
        for name in src.read_dir(dir).unwrap() {
            let path = dir.join(&name);
            if src.is_dir(&path).unwrap() {
                walk(src, dst, &path);
            } else if let Some(bytes) = src.read_file(&path) {
                dst.write_file(&path, &bytes);
            }
        }
    }
    let dst = SimFs::new(seed);
    walk(src, &dst, root);
    dst
}

// ---- Stores ------------------------------------------------------------------------------------

/// Store options for tests that drive everything themselves: no background threads, no fsync on
/// append.
pub fn manual_store_options() -> topiclog::StoreOptions {
    topiclog::StoreOptions {
        log: topiclog::LogConfig {
            durability: topiclog::Durability::None,
            ..topiclog::LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..topiclog::StoreOptions::default()
    }
}

/// A store (in a temp dir, with [`manual_store_options`]) holding topic `t` with `partitions`
/// partitions of `per_partition` records each, valued `v0`, `v1`, ...
pub fn store_with_topic_t(
    partitions: u32,
    per_partition: u64,
) -> (tempfile::TempDir, topiclog::Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = topiclog::Store::open_with(dir.path(), manual_store_options()).unwrap();
    let t = store
        .create_topic("t", topiclog::TopicConfig::with_partitions(partitions))
        .unwrap();
    for p in 0..partitions {
        for i in 0..per_partition {
            t.send_to(p, Record::new(format!("v{i}"))).unwrap();
        }
    }
    (dir, store)
}

// ---- Helpers for the storage-layer tests (indexes, segments, recovery) -------------------------

/// A deterministic splitmix64 generator: tests seed it so every run sees the same data.
#[derive(Clone, Debug)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        TestRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Everything observable about one stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordView {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RecordView {
    /// The view of a record read back from the log.
    pub fn of(r: &topiclog::StoredRecord) -> Self {
        RecordView {
            offset: r.offset(),
            timestamp: r.timestamp(),
            key: r.key().map(|k| k.to_vec()),
            value: r.value().map(|v| v.to_vec()),
            headers: r
                .headers()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// Every record from `from` to the end, with all their fields.
pub fn record_views(log: &Partition, from: u64) -> Vec<RecordView> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.end_offset() {
        let batches = log.read(next, 64 << 10).unwrap();
        assert!(
            !batches.is_empty(),
            "read at {next} returned nothing below the end"
        );
        out.extend(batches.records().map(|r| RecordView::of(&r)));
        next = batches.next_offset();
    }
    out
}

/// Append `batches` batches of 1-4 records with keys, values of random length, a header on some,
/// and timestamps that wander out of order around `1_000_000 + 10 * batch`. Returns the records as
/// they should read back.
pub fn append_random_batches(log: &Partition, batches: u64, seed: u64) -> Vec<RecordView> {
    let mut rng = TestRng::new(seed);
    let mut out = Vec::new();
    for b in 0..batches {
        let n = 1 + rng.below(4);
        let mut records = Vec::new();
        for _ in 0..n {
            let ts = 1_000_000 + 10 * b as i64 + rng.below(61) as i64 - 30;
            let value_len = 10 + rng.below(150) as usize;
            let mut r = Record::new(rng.bytes(value_len))
                .with_key(format!("key-{}", rng.below(1000)))
                .with_timestamp(ts);
            if rng.below(3) == 0 {
                r = r.with_header("h", Bytes::from(rng.bytes(5)));
            }
            records.push(r);
        }
        let info = log.append_batch(&records).unwrap();
        for (i, r) in records.iter().enumerate() {
            out.push(RecordView {
                offset: info.base_offset + i as u64,
                timestamp: r.timestamp().unwrap(),
                key: r.key().map(|k| k.to_vec()),
                value: r.value().map(|v| v.to_vec()),
                headers: r
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
                    .collect(),
            });
        }
    }
    out
}

/// The first record in offset order whose timestamp is `>= ts`: what `offset_for_time` must
/// answer, computed by brute force.
pub fn brute_force_offset_for_time(
    records: &[RecordView],
    ts: i64,
) -> Option<topiclog::segment::TimestampOffset> {
    records
        .iter()
        .find(|r| r.timestamp >= ts)
        .map(|r| topiclog::segment::TimestampOffset {
            timestamp: r.timestamp,
            offset: r.offset,
        })
}

/// Every answer a reader can get from a log: for each offset in `[start, end]` the batches (raw
/// bytes) that `read` returns with a one-byte and a 1000-byte limit, and `offset_for_time` for every
/// timestamp in `times`.
#[derive(Debug, PartialEq, Eq)]
pub struct Lookups {
    pub reads: Vec<(u64, usize, Vec<Vec<u8>>)>,
    pub times: Vec<(i64, Option<topiclog::segment::TimestampOffset>)>,
}

/// Collect [`Lookups`] from `log`.
pub fn lookups(log: &Partition, times: std::ops::RangeInclusive<i64>) -> Lookups {
    let mut reads = Vec::new();
    for offset in log.start_offset()..=log.end_offset() {
        for max in [1, 1000] {
            let batches = log.read(offset, max).unwrap();
            let bytes = batches
                .batches()
                .iter()
                .map(|b| b.as_bytes().to_vec())
                .collect();
            reads.push((offset, max, bytes));
        }
    }
    let times = times
        .map(|ts| (ts, log.offset_for_time(ts).unwrap()))
        .collect();
    Lookups { reads, times }
}

/// The segment files of one kind in `dir`, sorted by base offset.
pub fn segment_files(
    fs: &dyn FileSystem,
    dir: &Path,
    kind: topiclog::segment::SegmentFileKind,
) -> Vec<std::path::PathBuf> {
    fs.read_dir(dir)
        .unwrap()
        .into_iter()
        .filter(|n| topiclog::segment::parse_segment_file_name(n).is_some_and(|(_, k)| k == kind))
        .map(|n| dir.join(n))
        .collect()
}

/// Overwrite bytes of a file at `pos` (extending it if needed), as damage would.
pub fn overwrite(fs: &dyn FileSystem, path: &Path, pos: u64, bytes: &[u8]) {
    let f = fs.open(path, topiclog::fs::OpenMode::ReadWrite).unwrap();
    f.write_all_at(bytes, pos).unwrap();
}

/// Append bytes to the end of a file.
pub fn append_to_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) {
    let f = fs.open(path, topiclog::fs::OpenMode::ReadWrite).unwrap();
    let len = f.len().unwrap();
    f.write_all_at(bytes, len).unwrap();
}

/// The length of a file.
pub fn file_len(fs: &dyn FileSystem, path: &Path) -> u64 {
    fs.open(path, topiclog::fs::OpenMode::Read)
        .unwrap()
        .len()
        .unwrap()
}

/// The bytes of a file.
pub fn file_bytes(fs: &dyn FileSystem, path: &Path) -> Vec<u8> {
    let f = fs.open(path, topiclog::fs::OpenMode::Read).unwrap();
    let mut buf = vec![0u8; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

/// Stop using `log` without a clean close, as a crash would: no clean-shutdown marker is written,
/// nothing more is synced, its handles are never used again, and its directory lock is released
/// (as the OS releases a dead process's locks). Dropping it would close cleanly instead.
pub fn crash_without_close(log: Partition) {
    log.abandon();
}

/// Assert that two [`Lookups`] agree, naming the first lookup that differs (and how many do)
/// rather than printing both in full.
pub fn assert_lookups_eq(actual: &Lookups, expected: &Lookups, what: &str) {
    let bad_reads: Vec<_> = actual
        .reads
        .iter()
        .zip(&expected.reads)
        .filter(|(a, e)| a != e)
        .collect();
    let bad_times: Vec<_> = actual
        .times
        .iter()
        .zip(&expected.times)
        .filter(|(a, e)| a != e)
        .collect();
    if let Some((a, e)) = bad_reads.first() {
        let bases = |batches: &[Vec<u8>]| -> Vec<u64> {
            batches
                .iter()
                .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()))
                .collect()
        };
        panic!(
            "{what}: {} of {} reads differ; first: read({}, {}) returned batches at {:?}, expected {:?}",
            bad_reads.len(),
            expected.reads.len(),
            e.0,
            e.1,
            bases(&a.2),
            bases(&e.2)
        );
    }
    if let Some((a, e)) = bad_times.first() {
        panic!(
            "{what}: {} of {} offset_for_time answers differ; first: offset_for_time({}) = {:?}, expected {:?}",
            bad_times.len(),
            expected.times.len(),
            e.0,
            a.1,
            e.1
        );
    }
    assert_eq!(
        actual.reads.len(),
        expected.reads.len(),
        "{what}: read count"
    );
    assert_eq!(
        actual.times.len(),
        expected.times.len(),
        "{what}: time count"
    );
}

/// After damage was repaired on open, the log keeps working: a new record lands at the end offset
/// and is found both by offset and by time.
pub fn assert_appends_continue(log: &Partition, what: &str) {
    let end = log.end_offset();
    let offset = log
        .append(Record::new("new").with_timestamp(2_000_000))
        .unwrap();
    assert_eq!(offset, end, "{what}");
    let found = log.offset_for_time(2_000_000).unwrap().unwrap();
    assert_eq!((found.timestamp, found.offset), (2_000_000, end), "{what}");
    assert_eq!(
        log.read(end, 1).unwrap().batches()[0].base_offset(),
        end,
        "{what}"
    );
}

// ---- Child processes for kill -9 tests ---------------------------------------------------------

/// The name the test harness gives test `name` of the module at `module_path` (pass
/// `module_path!()`): the module path without the crate's name, then `name`. A child process
/// runs exactly that test with `--exact`.
pub fn test_path(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, module)) => format!("{module}::{name}"),
        None => name.to_owned(),
    }
}

/// A child process running one test of this test binary, as started by [`spawn_test_child`].
pub struct TestChild<T> {
    pub child: std::process::Child,
    /// What the child said, parsed, in order.
    pub said: std::sync::mpsc::Receiver<T>,
    /// The child's stderr, once it exits.
    pub stderr: std::thread::JoinHandle<String>,
}

/// Run the test named `test` of this binary as a child with `env` set. Its stdout lines that
/// contain `mark` are passed (the text after the mark) to `parse`, and the results arrive on
/// `said`; other lines are ignored.
pub fn spawn_test_child<T: Send + 'static>(
    test: &str,
    env: (&str, &std::ffi::OsStr),
    mark: &'static str,
    parse: impl Fn(&str) -> T + Send + 'static,
) -> TestChild<T> {
    use std::io::{BufRead, Read};
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(env.0, env.1)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut stderr = child.stderr.take().expect("child stderr");
    let (tx, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(at) = line.find(mark) else { continue };
            if tx.send(parse(&line[at + mark.len()..])).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    TestChild {
        child,
        said,
        stderr,
    }
}

// ---- Child processes under limits --------------------------------------------------------------

/// How a child started by [`run_test_child_limited`] ended.
#[derive(Debug)]
pub struct LimitedRun {
    /// Its exit status; `None` if it was killed at the time limit.
    pub status: Option<std::process::ExitStatus>,
    /// Its stdout lines that contain the mark (the text after the mark), in order.
    pub said: Vec<String>,
    /// Its stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: std::time::Duration,
}

impl LimitedRun {
    /// Whether it exited on its own with status 0.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Run the test named `test` of this binary as a child with `env` set, to completion, under an
/// address-space limit of `memory_kib` KiB (`ulimit -v`, through `sh`, so an absurd allocation
/// fails in the child instead of taking the machine's memory) and a time limit (the child is
/// SIGKILLed when it passes, and `status` is `None`). Its stdout lines that contain `mark` are
/// returned (the text after the mark); other lines are dropped.
pub fn run_test_child_limited(
    test: &str,
    env: &[(&str, &std::ffi::OsStr)],
    mark: &str,
    memory_kib: u64,
    time_limit: std::time::Duration,
) -> LimitedRun {
    use std::io::Read;
    let exe = std::env::current_exe().expect("current_exe");
    let started = std::time::Instant::now();
    // `exec` keeps the child's pid, so the kill below reaches the test binary, not the shell.
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {memory_kib} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn child");
    let mut stdout = child.stdout.take().expect("child stdout");
    let mut stderr = child.stderr.take().expect("child stderr");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let deadline = started + time_limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(e) => panic!("wait for the child: {e}"),
        }
    };
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    let said = stdout
        .lines()
        .filter_map(|line| line.find(mark).map(|at| line[at + mark.len()..].to_owned()))
        .collect();
    LimitedRun {
        status,
        said,
        stderr,
        elapsed,
    }
}
