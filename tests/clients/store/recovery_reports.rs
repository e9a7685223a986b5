//! What a store's open repaired is visible at store level: after a crash that left a torn batch
//! at the end of one partition, `Store::recovery_reports` names that partition (topic, number)
//! with the bytes cut, and only it; the records before the tear are all there. A clean shutdown
//! and reopen reports nothing. Damage cut under `Recovery::TruncateCorrupt` is reported with
//! `corruption_cut`. A recovery that cut records is also what `Store::last_maintenance_error`
//! reports (task `Recovery`, cause `Error::RecoveryCut` with the report); a clean open leaves it
//! `None`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use topiclog::fs::{CrashMode, SimFs};
use topiclog::{
    Durability, Env, Error, ErrorKind, LogConfig, MaintenanceTask, Record, Recovery, Store,
    StoreOptions, TopicConfig,
};

fn env(fs: &SimFs) -> Env {
    Env::with_fs(Arc::new(fs.clone()))
}

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 64 << 10,
            preallocate: false,
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

fn first_log(topic: &str, partition: u32) -> PathBuf {
    Path::new("/store")
        .join(topic)
        .join(partition.to_string())
        .join("00000000000000000000.log")
}

/// A store with topic `t` (2 partitions of 10 records, all durable) that crashed while partition 1
/// wrote an 11th record, leaving `torn` bytes of it. Returns the bytes of that batch.
fn crash_with_torn_tail(fs: &SimFs, torn: usize) -> usize {
    let store = Store::open_with_env("/store", options(), env(fs)).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    for p in 0..2 {
        for i in 0..10 {
            topic.send_to(p, Record::new(format!("v{i}"))).unwrap();
        }
    }
    store.flush().unwrap();
    let log = first_log("t", 1);
    let durable = fs.read_file(&log).unwrap();
    topic.send_to(1, Record::new("lost")).unwrap();
    let written = fs.read_file(&log).unwrap();
    let batch = written.len() - durable.len();
    assert!(torn > 0 && torn < batch);
    std::mem::forget((topic, store));
    fs.crash(CrashMode::LoseUnsynced);
    // The unsynced batch reached the disk in part.
    fs.write_file(&log, &written[..durable.len() + torn]);
    batch
}

#[test]
fn a_torn_tail_cut_at_open_is_reported_by_the_store() {
    let fs = SimFs::new(21);
    // (Past the base offset, whose leading big-endian bytes are zeros like unwritten space.)
    crash_with_torn_tail(&fs, 20);

    let store = Store::open_with_env("/store", options(), env(&fs)).unwrap();
    let reports = store.recovery_reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert_eq!((r.topic.as_str(), r.partition), ("t", 1));
    assert_eq!(r.report.bytes_truncated, 20);
    assert!(!r.report.clean_shutdown);
    assert!(!r.report.corruption_cut);
    assert_eq!(store.topic("t").unwrap().end_offsets(), vec![10, 10]);
    // The cut is a background failure too, typed, with what was cut.
    match store.last_maintenance_error() {
        Some(
            ref e @ Error::Maintenance {
                task: MaintenanceTask::Recovery,
                ref topic,
                partition: 1,
                ref cause,
            },
        ) => {
            assert_eq!(topic, "t");
            match &**cause {
                Error::RecoveryCut { path, report } => {
                    assert_eq!(path, Path::new("/store/t/1"));
                    assert_eq!(*report, r.report);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(e.kind(), ErrorKind::Damaged);
            assert!(e.to_string().contains("20 bytes of a torn tail"), "{e}");
        }
        other => panic!("expected a recovery cut, got {other:?}"),
    }
    store.close().unwrap();

    // A clean shutdown: nothing to repair, nothing reported.
    let store = Store::open_with_env("/store", options(), env(&fs)).unwrap();
    assert_eq!(store.recovery_reports(), &[]);
    assert!(store.last_maintenance_error().is_none());
    store.close().unwrap();
}

#[test]
fn damage_cut_under_truncate_corrupt_is_reported_as_such() {
    let fs = SimFs::new(22);
    crash_with_torn_tail(&fs, 20);
    // Damage below the recovery point of partition 0: a bit flipped in its last batch.
    let log = first_log("t", 0);
    let mut bytes = fs.read_file(&log).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs.write_file(&log, &bytes);

    let truncating = StoreOptions {
        log: LogConfig {
            recovery: Recovery::TruncateCorrupt,
            ..options().log
        },
        ..options()
    };
    let store = Store::open_with_env("/store", truncating, env(&fs)).unwrap();
    let reports = store.recovery_reports();
    let find = |p: u32| reports.iter().find(|r| r.partition == p).map(|r| r.report);
    let damaged = find(0).expect("partition 0 is reported");
    assert!(damaged.corruption_cut, "{damaged:?}");
    assert!(damaged.bytes_truncated > 0);
    let torn = find(1).expect("partition 1 is reported");
    assert!(
        !torn.corruption_cut && torn.bytes_truncated == 20,
        "{torn:?}"
    );
    assert_eq!(reports.len(), 2);
    store.close().unwrap();
}
