//! Store maintenance: with interval durability, records become durable without an explicit flush
//! once the interval has passed — by the background thread, or by `Store::maintain` when the
//! thread is off — and `close` (or dropping the store) stops the thread promptly.
//!
//! The tests in this file run one at a time: one of them counts the process's maintenance
//! threads.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use topiclog::fs::{CrashMode, Fault, FaultOp, SimFs};
use topiclog::{
    Durability, Env, Error, LogConfig, LogOverrides, MaintenanceTask, ManualClock, Partition,
    Record, Store, StoreOptions, Topic, TopicConfig,
};

const NOW: i64 = 1_700_000_000_000;
const INTERVAL: Duration = Duration::from_millis(50);
/// Generous: background work on a loaded machine can be slow, but never this slow.
const DEADLINE: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The simulated file system `fs` on the store clock `clock`.
fn sim_env(fs: &SimFs, clock: &ManualClock) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(clock.clone()),
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            preallocate: false,
            segment_bytes: 16 << 10,
            durability: Durability::Interval(INTERVAL),
            ..LogConfig::default()
        },
        ..StoreOptions::default()
    }
}

fn send_to_all(topic: &Topic, tag: &str, per_partition: u32) {
    for p in 0..topic.partition_count() {
        for i in 0..per_partition {
            topic
                .send_to(p, Record::new(format!("{tag}-{p}-{i}")).with_key("k"))
                .unwrap();
        }
    }
}

/// Whether every record of every partition is durable.
fn all_durable(partitions: &[Partition]) -> bool {
    partitions
        .iter()
        .all(|p| p.durable_offset() == p.end_offset())
}

fn none_durable_beyond(partitions: &[Partition], durable: &[u64]) -> bool {
    partitions
        .iter()
        .zip(durable)
        .all(|(p, &d)| p.durable_offset() == d && p.end_offset() > d)
}

/// Poll until `cond` holds or [`DEADLINE`] passes.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn background_maintenance_makes_interval_data_durable() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_with(tmp.path().join("store"), options()).unwrap();
    let topic = store
        .create_topic("interval", TopicConfig::with_partitions(3))
        .unwrap();
    send_to_all(&topic, "a", 20);
    let partitions = topic.partitions();
    // Nobody flushes: the maintenance thread must.
    eventually("background flush", || all_durable(&partitions));
    assert_eq!(topic.end_offsets(), vec![20, 20, 20]);
    assert_eq!(store.last_maintenance_error().map(|e| e.to_string()), None);

    // And again for records sent later.
    send_to_all(&topic, "b", 5);
    eventually("second background flush", || all_durable(&partitions));
    assert_eq!(topic.end_offsets(), vec![25, 25, 25]);
    store.close().unwrap();
}

#[test]
fn background_maintenance_flushes_once_the_interval_has_passed() {
    let _serial = serial();
    let clock = ManualClock::new(NOW);
    let fs = SimFs::new(1);
    let opts = StoreOptions {
        maintenance_interval: Duration::from_millis(2),
        ..options()
    };
    let store = Store::open_with_env("/store", opts, sim_env(&fs, &clock)).unwrap();
    let topic = store
        .create_topic("interval", TopicConfig::with_partitions(2))
        .unwrap();
    let partitions = topic.partitions();
    let durable: Vec<u64> = partitions.iter().map(Partition::durable_offset).collect();
    send_to_all(&topic, "a", 10);
    // The clock stands still: however often maintenance runs, the interval has not passed.
    thread::sleep(Duration::from_millis(100));
    assert!(
        none_durable_beyond(&partitions, &durable),
        "flushed before the interval passed"
    );
    clock.advance(INTERVAL);
    eventually("background flush after the interval", || {
        all_durable(&partitions)
    });
    // Durable means it survives a crash.
    drop((topic, partitions));
    store.close().unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    let store =
        Store::open_with_env("/store", StoreOptions { ..options() }, sim_env(&fs, &clock)).unwrap();
    assert_eq!(store.topic("interval").unwrap().end_offsets(), vec![10, 10]);
    store.close().unwrap();
}

#[test]
fn maintain_flushes_when_background_maintenance_is_off() {
    let _serial = serial();
    let clock = ManualClock::new(NOW);
    let fs = SimFs::new(2);
    let opts = StoreOptions {
        background_maintenance: false,
        maintenance_interval: Duration::from_millis(2),
        ..options()
    };
    let store = Store::open_with_env("/store", opts.clone(), sim_env(&fs, &clock)).unwrap();
    let fast = store
        .create_topic("fast", TopicConfig::with_partitions(2))
        .unwrap();
    let slow = store
        .create_topic(
            "slow",
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    durability: Some(Durability::Interval(Duration::from_secs(1))),
                    ..LogOverrides::default()
                },
            },
        )
        .unwrap();
    let fast_parts = fast.partitions();
    let slow_parts = slow.partitions();
    send_to_all(&fast, "f", 7);
    send_to_all(&slow, "s", 3);
    let fast_durable: Vec<u64> = fast_parts.iter().map(Partition::durable_offset).collect();
    let slow_durable: Vec<u64> = slow_parts.iter().map(Partition::durable_offset).collect();

    // Not yet due.
    store.maintain().unwrap();
    clock.advance(INTERVAL - Duration::from_millis(1));
    store.maintain().unwrap();
    assert!(none_durable_beyond(&fast_parts, &fast_durable));

    // Due, but with the thread off nothing happens by itself.
    clock.advance(Duration::from_millis(1));
    thread::sleep(Duration::from_millis(50));
    assert!(none_durable_beyond(&fast_parts, &fast_durable), "no thread");

    store.maintain().unwrap();
    assert!(all_durable(&fast_parts), "maintain flushed the due topic");
    assert!(
        none_durable_beyond(&slow_parts, &slow_durable),
        "a topic with a longer interval is not due yet"
    );
    clock.advance(Duration::from_secs(1));
    store.maintain().unwrap();
    assert!(all_durable(&slow_parts));
    assert_eq!(store.last_maintenance_error().map(|e| e.to_string()), None);

    // What maintain made durable survives a crash. A record sent right after the slow topic's
    // flush is not due for a second, so nothing syncs it and the crash takes it.
    send_to_all(&slow, "late", 1);
    assert_eq!(slow_parts[0].durable_offset(), 3);
    std::mem::forget((fast, slow, fast_parts, slow_parts));
    std::mem::forget(store);
    fs.crash(CrashMode::LoseUnsynced);
    let store = Store::open_with_env("/store", opts, sim_env(&fs, &clock)).unwrap();
    assert_eq!(store.topic("fast").unwrap().end_offsets(), vec![7, 7]);
    assert_eq!(store.topic("slow").unwrap().end_offsets(), vec![3]);
    store.close().unwrap();
    assert!(matches!(store.maintain(), Err(Error::Closed { .. })));
}

#[test]
fn maintain_reports_a_failed_flush_and_still_visits_every_partition() {
    let _serial = serial();
    let clock = ManualClock::new(NOW);
    let fs = SimFs::new(3);
    let opts = StoreOptions {
        background_maintenance: false,
        ..options()
    };
    let store = Store::open_with_env("/store", opts, sim_env(&fs, &clock)).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    send_to_all(&topic, "v", 4);
    clock.advance(INTERVAL);
    // Fail the first data sync, whichever partition it belongs to.
    fs.inject(Fault::new(FaultOp::Sync, 0));
    let failed = match store.maintain() {
        Err(Error::Maintenance {
            task: MaintenanceTask::Flush,
            topic,
            partition,
            cause,
        }) => {
            assert_eq!(topic, "t");
            assert!(matches!(*cause, Error::Io { .. }), "{cause:?}");
            partition
        }
        other => panic!("expected the injected I/O error in a flush, got {other:?}"),
    };
    // The error is kept, typed, naming the partition.
    match store.last_maintenance_error() {
        Some(Error::Maintenance {
            partition, cause, ..
        }) => {
            assert_eq!(partition, failed);
            assert!(cause.to_string().contains("injected"), "{cause}");
        }
        other => panic!("expected the flush failure to be kept, got {other:?}"),
    }
    let partitions = topic.partitions();
    let flushed: Vec<u32> = (0..3)
        .filter(|&i| {
            let p = &partitions[i as usize];
            p.durable_offset() == p.end_offset()
        })
        .collect();
    assert_eq!(flushed.len(), 2, "the other partitions were still flushed");
    assert!(
        !flushed.contains(&failed),
        "partition {failed} is the one that failed"
    );
    store.close().ok();
}

/// Run `f` on another thread; fail (rather than hang) if it takes longer than [`DEADLINE`].
fn within_deadline(what: &str, f: impl FnOnce() + Send + 'static) -> Duration {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} did not return within {DEADLINE:?}"));
    start.elapsed()
}

/// How many threads of this process are maintenance threads (Linux names them via `comm`, cut
/// to 15 bytes).
#[cfg(target_os = "linux")]
fn maintenance_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with("topiclog-mainte"))
        .count()
}

#[cfg(not(target_os = "linux"))]
fn maintenance_threads() -> usize {
    0
}

#[test]
fn close_and_drop_stop_the_maintenance_thread_promptly() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    // An interval so long that only the stop signal can end the thread's wait.
    let opts = StoreOptions {
        maintenance_interval: Duration::from_secs(3600),
        ..options()
    };
    let before = maintenance_threads();
    let store = Store::open_with(&dir, opts.clone()).unwrap();
    if cfg!(target_os = "linux") {
        // The thread names itself once it runs.
        eventually("one maintenance thread per store", || {
            maintenance_threads() == before + 1
        });
    }
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    send_to_all(&topic, "v", 3);
    let partitions = topic.partitions();
    let took = within_deadline("close", move || store.close().unwrap());
    assert!(took < Duration::from_secs(5), "close took {took:?}");
    assert!(all_durable(&partitions), "close flushed");
    eventually("the maintenance thread exits", || {
        maintenance_threads() == before
    });

    // Dropping the last handle stops it too.
    let store = Store::open_with(&dir, opts.clone()).unwrap();
    assert_eq!(store.topic("t").unwrap().end_offsets(), vec![3, 3]);
    let took = within_deadline("drop", move || drop(store));
    assert!(took < Duration::from_secs(5), "drop took {took:?}");
    eventually("the maintenance thread exits after drop", || {
        maintenance_threads() == before
    });
    Store::open_with(&dir, opts).unwrap().close().unwrap();
}

#[test]
fn durable_offset_reaches_the_end_on_the_simulated_fs_too() {
    let _serial = serial();
    let fs = SimFs::new(4);
    let store = Store::open_with_env(
        Path::new("/store"),
        options(),
        Env::with_fs(Arc::new(fs.clone())),
    )
    .unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    send_to_all(&topic, "v", 10);
    let partitions = topic.partitions();
    eventually("background flush", || all_durable(&partitions));
    store.close().unwrap();
}
