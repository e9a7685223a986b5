//! A failed lookup (`stat` failing with EIO or EACCES) is an error the caller sees, never taken
//! for "the file is not there": a failed stat of `producer-snapshot` used to disable idempotence
//! silently, and of `checkpoint` to force a full rescan.

use std::io;
use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{Fault, FaultOp, FileSystem, SimFs};
use topiclog::{Durability, Env, Error, LogConfig, Partition, ProducerBatch, Record};

fn open(fs: &SimFs) -> topiclog::Result<Partition> {
    let config = LogConfig {
        durability: Durability::Always,
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    };
    Partition::open_with_env("/p", config, Env::with_fs(Arc::new(fs.clone())))
}

fn stat_fault(path_contains: &str, kind: io::ErrorKind) -> Fault {
    Fault {
        path_contains: Some(path_contains.into()),
        kind,
        sticky: true,
        ..Fault::new(FaultOp::Stat, 0)
    }
}

/// A partition with an idempotent producer's batch, closed cleanly: it has a checkpoint and a
/// producer snapshot.
fn fixture() -> SimFs {
    let fs = SimFs::new(1);
    let log = open(&fs).unwrap();
    let p = ProducerBatch {
        producer_id: 3,
        epoch: 0,
        base_sequence: 0,
    };
    log.append_idempotent(&[Record::new("a")], p, Durability::Always)
        .unwrap();
    log.close().unwrap();
    fs
}

#[test]
fn sim_fs_stat_faults_fail_lookups_only() {
    let fs = SimFs::new(0);
    fs.create_dir_all(Path::new("/d")).unwrap();
    fs.inject(stat_fault("/d", io::ErrorKind::PermissionDenied));
    let e = fs.exists(Path::new("/d/x")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert!(fs.is_dir(Path::new("/d")).is_err());
    // Mutating operations are not stat: they go on.
    fs.create_dir_all(Path::new("/d/e")).unwrap();
    fs.clear_faults();
    assert!(fs.is_dir(Path::new("/d/e")).unwrap());
    assert!(!fs.exists(Path::new("/d/nope")).unwrap());
    // A file where a directory is expected is "absent", as ENOTDIR is.
    fs.open(Path::new("/d/f"), topiclog::fs::OpenMode::Create)
        .unwrap();
    assert!(!fs.exists(Path::new("/d/f/g")).unwrap());
    // `Any` never matches a stat, and a power cut does not stop one.
    fs.inject(Fault {
        sticky: true,
        ..Fault::new(FaultOp::Any, 0)
    });
    fs.power_cut_after(0);
    assert!(fs.exists(Path::new("/d/f")).unwrap());
}

#[test]
fn failed_stat_of_producer_snapshot_fails_open() {
    let fs = fixture();
    fs.inject(stat_fault("producer-snapshot", io::ErrorKind::Other));
    match open(&fs) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("producer-snapshot"), "{path:?}"),
        other => panic!("expected an I/O error naming the snapshot, got {other:?}"),
    }
    // Once the file system answers again, idempotence is intact.
    fs.clear_faults();
    let log = open(&fs).unwrap();
    let p = ProducerBatch {
        producer_id: 3,
        epoch: 0,
        base_sequence: 0,
    };
    let again = log
        .append_idempotent(&[Record::new("a")], p, Durability::Always)
        .unwrap();
    assert!(again.duplicate, "the replay is recognised");
    assert_eq!(log.end_offset(), 1);
}

#[test]
fn failed_stat_of_checkpoint_fails_open() {
    let fs = fixture();
    fs.inject(stat_fault("checkpoint", io::ErrorKind::PermissionDenied));
    match open(&fs) {
        Err(Error::Io { path, source }) => {
            assert!(path.ends_with("checkpoint"), "{path:?}");
            assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
        }
        other => panic!("expected an I/O error naming the checkpoint, got {other:?}"),
    }
    fs.clear_faults();
    let log = open(&fs).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert!(!log.recovery_report().checkpoint_damaged);
}
