//! Only one `Store` at a time may have a directory open: a second open — in this process or in
//! another — fails with `Error::AlreadyOpen`, and the lock goes away with its holder (a clean
//! `close`, dropping the last handle, or the holder process dying by SIGKILL).
//!
//! The cross-process test re-executes this test binary in child mode (selected by an environment
//! variable naming the store directory): the child opens the store, says so on stdout and sleeps
//! until it is killed.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use topiclog::fs::{File, FileSystem, OpenMode, SimFs, StdFs};
use topiclog::{
    Durability, Env, Error, LogConfig, ManualClock, Record, Store, StoreOptions, TopicConfig,
};

/// Set (to the store directory) only in the re-executed child.
const CHILD_ENV: &str = "TOPICLOG_STORE_LOCK_CHILD_DIR";
/// Marks the child's protocol line among whatever the test harness prints.
const MARK: &str = "@@topiclog-store-lock@@ ";
/// The child should never take this long to open an empty store.
const STALL: Duration = Duration::from_secs(30);

/// Background maintenance is off except where a test is about it: see
/// [`reopen_immediately_after_drop_while_maintenance_is_busy`].
fn env(fs: Arc<dyn FileSystem>) -> Env {
    Env::with_fs(fs)
}

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            preallocate: false,
            segment_bytes: 64 << 10,
            ..LogConfig::default()
        },
        background_maintenance: false,
        ..StoreOptions::default()
    }
}

/// Run `f` on the real file system (in a temp dir) and on the simulated one.
fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join("store"));
    f(Arc::new(SimFs::new(11)), Path::new("/sim/store"));
}

fn assert_already_open(result: topiclog::Result<Store>, dir: &Path, what: &str) {
    match result {
        Err(Error::AlreadyOpen { path, .. }) => {
            assert_eq!(path, dir, "{what}: error names the dir")
        }
        Err(e) => panic!("{what}: expected AlreadyOpen, got {e}"),
        Ok(_) => panic!("{what}: a second open of a locked store succeeded"),
    }
}

#[test]
fn second_open_in_process_fails_with_already_open() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let topic = store
            .create_topic("t", TopicConfig::with_partitions(2))
            .unwrap();
        topic.send(Record::new("before")).unwrap();

        assert_already_open(
            Store::open_with_env(dir, options(), env(fs.clone())),
            dir,
            "second",
        );
        assert_already_open(
            Store::open_with_env(dir, options(), env(fs.clone())),
            dir,
            "third",
        );

        // The failed opens neither stole nor released the first store's lock.
        let meta = topic.send(Record::new("after")).unwrap();
        let read = topic.partition(meta.partition).unwrap();
        let got = read.read(meta.offset, 1 << 20).unwrap();
        assert_eq!(
            got.records().next().unwrap().value().unwrap().as_ref(),
            b"after"
        );
        assert_already_open(
            Store::open_with_env(dir, options(), env(fs.clone())),
            dir,
            "after sends",
        );
        store.close().unwrap();
    });
}

#[test]
fn reopen_after_close_succeeds_even_while_clones_live() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let clone = store.clone();
        store
            .create_topic("t", TopicConfig::with_partitions(1))
            .unwrap()
            .send(Record::new("v"))
            .unwrap();
        store.close().unwrap();

        // `close` releases the lock though `clone` is still alive; the clone is closed.
        let reopened = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        assert!(matches!(clone.topic("t"), Err(Error::Closed { .. })));
        assert_eq!(reopened.topics(), vec!["t".to_owned()]);
        assert_eq!(reopened.topic("t").unwrap().end_offsets(), vec![1]);
        drop(clone);
        // Dropping the closed clone must not touch the new holder's lock.
        assert_already_open(
            Store::open_with_env(dir, options(), env(fs.clone())),
            dir,
            "reopened",
        );
        reopened.close().unwrap();
        // Closing twice is harmless.
        reopened.close().unwrap();
        Store::open_with_env(dir, options(), env(fs.clone()))
            .unwrap()
            .close()
            .unwrap();
    });
}

#[test]
fn reopen_after_dropping_the_last_handle_succeeds() {
    both_fs(|fs, dir| {
        let store = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let clone = store.clone();
        let topic = store
            .create_topic("t", TopicConfig::with_partitions(1))
            .unwrap();
        topic.send(Record::new("v")).unwrap();

        drop(store);
        // One clone is still alive: the store is still open.
        assert_already_open(
            Store::open_with_env(dir, options(), env(fs.clone())),
            dir,
            "one clone left",
        );
        drop(clone);
        // A topic handle does not keep the store open; the drop closed its partitions.
        assert!(matches!(
            topic.send(Record::new("late")),
            Err(Error::Closed { .. })
        ));

        let reopened = Store::open_with_env(dir, options(), env(fs.clone())).unwrap();
        let t = reopened.topic("t").unwrap();
        assert_eq!(t.end_offsets(), vec![1]);
        // Dropping is a clean close: the partition skipped the rescan.
        assert!(t.partition(0).unwrap().recovery_report().clean_shutdown);
        drop(t);
        drop(reopened);
        Store::open_with_env(dir, options(), env(fs.clone()))
            .unwrap()
            .close()
            .unwrap();
    });
}

/// A file system whose file syncs take [`SLOW_SYNC`] when the store's maintenance thread makes
/// them, and which says when that thread is inside one: a window in which the maintenance thread
/// is busy with the store.
#[derive(Debug)]
struct SlowMaintenanceFs {
    inner: SimFs,
    in_maintenance_sync: Arc<AtomicBool>,
}

const SLOW_SYNC: Duration = Duration::from_millis(300);

#[derive(Debug)]
struct SlowMaintenanceFile {
    inner: Arc<dyn File>,
    in_maintenance_sync: Arc<AtomicBool>,
}

impl SlowMaintenanceFile {
    fn slow_if_maintenance(&self) {
        let on_maintenance_thread = thread::current()
            .name()
            .is_some_and(|n| n.starts_with("topiclog-maint"));
        if on_maintenance_thread {
            self.in_maintenance_sync.store(true, Ordering::SeqCst);
            thread::sleep(SLOW_SYNC);
        }
    }
}

impl File for SlowMaintenanceFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.slow_if_maintenance();
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.slow_if_maintenance();
        self.inner.sync_all()
    }
    fn map_readonly(&self, len: u64) -> io::Result<Bytes> {
        self.inner.map_readonly(len)
    }
    fn map_growing(&self, len: u64) -> io::Result<Option<Bytes>> {
        self.inner.map_growing(len)
    }
}

impl FileSystem for SlowMaintenanceFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        Ok(Arc::new(SlowMaintenanceFile {
            inner: self.inner.open(path, mode)?,
            in_maintenance_sync: self.in_maintenance_sync.clone(),
        }))
    }
    crate::forward_to_inner_fs!();
}

/// Dropping the last handle must release the lock before `drop` returns, even while the
/// background maintenance thread is in the middle of a pass (and so is using the store).
#[test]
fn reopen_immediately_after_drop_while_maintenance_is_busy() {
    let in_maintenance_sync = Arc::new(AtomicBool::new(false));
    let fs: Arc<dyn FileSystem> = Arc::new(SlowMaintenanceFs {
        inner: SimFs::new(12),
        in_maintenance_sync: in_maintenance_sync.clone(),
    });
    let clock = ManualClock::new(1_700_000_000_000);
    let opts = StoreOptions {
        log: LogConfig {
            durability: Durability::Interval(Duration::from_millis(50)),
            ..options().log
        },
        background_maintenance: true,
        maintenance_interval: Duration::from_millis(1),
        ..options()
    };
    let env = Env {
        fs,
        clock: Arc::new(clock.clone()),
    };
    let dir = Path::new("/store");
    let store = Store::open_with_env(dir, opts.clone(), env.clone()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    // The clock stands still, so the send does not sync; once it moves, maintenance flushes.
    topic.send(Record::new("v")).unwrap();
    drop(topic);
    clock.advance(Duration::from_millis(50));
    let start = Instant::now();
    while !in_maintenance_sync.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < STALL,
            "maintenance never flushed the due partition"
        );
        thread::sleep(Duration::from_millis(1));
    }

    drop(store);
    let store = Store::open_with_env(dir, opts, env)
        .unwrap_or_else(|e| panic!("open right after dropping the last handle: {e}"));
    let t = store.topic("t").unwrap();
    assert_eq!(t.end_offsets(), vec![1]);
    assert!(
        t.partition(0).unwrap().recovery_report().clean_shutdown,
        "the drop closed the store cleanly"
    );
    drop(t);
    store.close().unwrap();
}

/// Child mode: open the store, say so, and sleep until killed. Does nothing unless the parent set
/// [`CHILD_ENV`], so an ordinary `cargo test` run just passes it.
#[test]
fn child_holds_store_open() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open_with_env(&dir, options(), env(Arc::new(StdFs))).expect("child: open");
    store
        .topic_or_create("held")
        .expect("child: topic")
        .send(Record::new("from the child"))
        .expect("child: send");
    println!("{MARK}locked");
    loop {
        thread::sleep(Duration::from_secs(60));
    }
}

fn spawn_child(dir: &Path) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .arg(crate::common::test_path(
            module_path!(),
            "child_holds_store_open",
        ))
        .args(["--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child")
}

/// Wait until the child reports that it holds the store.
fn wait_until_locked(child: &mut Child) {
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(&format!("{MARK}locked")) && tx.send(()).is_err() {
                break;
            }
        }
    });
    match rx.recv_timeout(STALL) {
        Ok(()) => {}
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let mut stderr = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut stderr);
            }
            let why = match e {
                RecvTimeoutError::Timeout => "timed out",
                RecvTimeoutError::Disconnected => "child exited",
            };
            panic!("child never reported the lock ({why}); stderr:\n{stderr}");
        }
    }
}

#[cfg(unix)]
#[test]
fn open_held_by_another_process_fails_until_it_is_killed() {
    use std::os::unix::process::ExitStatusExt;

    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("store");
    let mut child = spawn_child(&dir);
    wait_until_locked(&mut child);

    let open = || Store::open_with_env(&dir, options(), env(Arc::new(StdFs)));
    assert_already_open(open(), &dir, "while the child holds it");
    assert_already_open(open(), &dir, "asked again");

    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("wait for the child");
    assert_eq!(status.signal(), Some(9), "the child died by SIGKILL");

    // The kernel released the dead holder's lock: no stale lock, and its data is there.
    let store = open().expect("open after the holder was killed");
    let held = store.topic("held").expect("the child's topic");
    let p = held.partition(0).unwrap();
    assert_eq!(p.end_offset(), 1);
    assert_eq!(
        p.read(0, 1 << 20)
            .unwrap()
            .records()
            .next()
            .unwrap()
            .value()
            .unwrap()
            .as_ref(),
        b"from the child"
    );
    store.close().unwrap();
}
