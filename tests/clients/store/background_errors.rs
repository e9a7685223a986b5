//! Failures of the store's background threads reach the caller typed: a compaction pass of the
//! background cleaner that runs out of disk space (ENOSPC injected with `SimFs` into the cleaned
//! segment it writes) shows up in `Store::last_maintenance_error` as an `Error::Maintenance`
//! naming the task, topic and partition, whose cause is the `Error::Io` with the OS error; it is
//! retriable, and once space is back the cleaner's next pass gets through. The log is untouched
//! meanwhile, and the other partition is compacted. A retention pass of background maintenance
//! that may not delete a segment is kept the same way, as a `Storage` error that poisoned the
//! partition, and is not replaced by the `Poisoned` every later pass meets there.

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use topiclog::fs::{Fault, FaultOp, SimFs};
use topiclog::{
    CleanupPolicy, Durability, Env, Error, ErrorKind, Limit, LogConfig, LogOverrides,
    MaintenanceTask, ManualClock, Partition, Record, Store, StoreOptions, Topic, TopicConfig,
};

const NOW: i64 = 1_700_000_000_000;
/// Generous: background work on a loaded machine can be slow, but never this slow.
const DEADLINE: Duration = Duration::from_secs(10);
const KEYS: u32 = 10;

fn env(fs: &SimFs, clock: &ManualClock) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(clock.clone()),
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 1024,
            preallocate: false,
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: true,
        cleaner_backoff: Duration::from_millis(10),
        ..StoreOptions::default()
    }
}

/// 200 updates over [`KEYS`] keys to every partition, then filler records so they are sealed.
fn fill(topic: &Topic) {
    for p in 0..topic.partition_count() {
        for i in 0..200u32 {
            let record = Record::new(format!("{p}-{i}")).with_key(format!("k{}", i % KEYS));
            topic.send_to(p, record).unwrap();
        }
        for _ in 0..2 {
            topic
                .send_to(p, Record::new(vec![b'f'; 900]).with_key("filler"))
                .unwrap();
        }
    }
}

/// Records below the active segment.
fn sealed_records(p: &Partition) -> usize {
    let active = p.segments().last().unwrap().base_offset();
    let mut n = 0;
    let mut next = p.start_offset();
    while next < active {
        let batches = p.read(next, 1 << 20).unwrap();
        n += batches.records().filter(|r| r.offset() < active).count();
        next = batches.next_offset();
    }
    n
}

/// Wait until `done` holds, failing after [`DEADLINE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_background_compaction_failure_is_kept_typed_and_retried() {
    let fs = SimFs::new(11);
    let store =
        Store::open_with_env("/store", options(), env(&fs, &ManualClock::new(NOW))).unwrap();
    // Partition 1 of "table" has no space for the cleaned segment it writes (compaction writes
    // the cleaned copy of segments 0.. to `<base>.log.cleaned` before it swaps it in).
    fs.inject(Fault {
        path_contains: Some("table/1/00000000000000000000.log.cleaned".into()),
        kind: io::ErrorKind::StorageFull,
        sticky: true,
        ..Fault::new(FaultOp::Write, 0)
    });
    let compacted = TopicConfig {
        overrides: LogOverrides {
            cleanup_policy: Some(CleanupPolicy::Compact),
            ..LogOverrides::default()
        },
        ..TopicConfig::with_partitions(2)
    };
    let table = store.create_topic("table", compacted).unwrap();
    let (p0, p1) = (table.partition(0).unwrap(), table.partition(1).unwrap());
    let written = sealed_records(&p1);
    fill(&table);
    let written = sealed_records(&p1).max(written);

    wait_until("the cleaner reports the failure", || {
        store.last_maintenance_error().is_some()
    });
    let e = store.last_maintenance_error().unwrap();
    match &e {
        Error::Maintenance {
            task: MaintenanceTask::Compaction,
            topic,
            partition: 1,
            cause,
        } => {
            assert_eq!(topic, "table");
            match &**cause {
                Error::Io { path, source } => {
                    assert!(path.to_string_lossy().contains("table/1/"), "{path:?}");
                    assert_eq!(source.kind(), io::ErrorKind::StorageFull);
                }
                other => panic!("expected the injected ENOSPC, got {other:?}"),
            }
        }
        other => panic!("expected a compaction failure of table-1, got {other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::Retriable);
    assert_eq!(
        e.io_error().map(io::Error::kind),
        Some(io::ErrorKind::StorageFull)
    );
    let message = e.to_string();
    assert!(
        message.contains("compaction of partition 1 of topic \"table\""),
        "{message}"
    );

    // The failed pass left partition 1 as it was; partition 0 was compacted all the same.
    assert_eq!(sealed_records(&p1), written);
    wait_until("partition 0 is compacted", || {
        sealed_records(&p0) <= KEYS as usize + 1
    });

    // Space is back: the cleaner's next pass gets through.
    fs.clear_faults();
    wait_until("partition 1 is compacted", || {
        sealed_records(&p1) <= KEYS as usize + 1
    });
    store.close().unwrap();
}

#[test]
fn a_background_retention_failure_is_kept_typed() {
    let fs = SimFs::new(12);
    let clock = ManualClock::new(NOW);
    let store = Store::open_with_env(
        "/store",
        StoreOptions {
            background_cleaner: false,
            background_maintenance: true,
            maintenance_interval: Duration::from_millis(10),
            retention_check_interval: Duration::from_secs(1),
            ..options()
        },
        env(&fs, &clock),
    )
    .unwrap();
    let topic = store
        .create_topic(
            "t",
            TopicConfig {
                overrides: LogOverrides {
                    retention_bytes: Some(Limit::Bytes(2048)),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(2)
            },
        )
        .unwrap();
    for p in 0..2 {
        for i in 0..40 {
            topic
                .send_to(p, Record::new(vec![b'v'; 100]).with_key(format!("k{i}")))
                .unwrap();
        }
    }
    let (p0, p1) = (topic.partition(0).unwrap(), topic.partition(1).unwrap());
    assert!(p0.segment_count() > 3 && p1.segment_count() > 3);
    // Segment files of partition 1 may not be removed.
    fs.inject(Fault {
        path_contains: Some("/t/1/".into()),
        kind: io::ErrorKind::PermissionDenied,
        sticky: true,
        ..Fault::new(FaultOp::Remove, 0)
    });
    clock.advance(Duration::from_secs(1)); // retention is due

    wait_until("maintenance reports the failure", || {
        store.last_maintenance_error().is_some()
    });
    let e = store.last_maintenance_error().unwrap();
    match &e {
        Error::Maintenance {
            task: MaintenanceTask::Retention,
            topic,
            partition: 1,
            cause,
        } => {
            assert_eq!(topic, "t");
            assert!(matches!(**cause, Error::Io { .. }), "{cause:?}");
        }
        other => panic!("expected a retention failure of t-1, got {other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::Storage);
    assert_eq!(
        e.io_error().map(io::Error::kind),
        Some(io::ErrorKind::PermissionDenied)
    );
    // Partition 0 had its retention applied; partition 1 refuses writes until reopened.
    wait_until("partition 0 is trimmed", || p0.segment_count() <= 3);
    let refused = p1.append(Record::new("x")).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Recover, "{refused:?}");
    // Every later pass finds partition 1 poisoned; that echo does not hide the cause.
    thread::sleep(Duration::from_millis(100));
    let kept = store.last_maintenance_error().unwrap();
    assert!(
        matches!(
            kept,
            Error::Maintenance {
                task: MaintenanceTask::Retention,
                ..
            }
        ),
        "{kept:?}"
    );
    let _ = store.close();
}
