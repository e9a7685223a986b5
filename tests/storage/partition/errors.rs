//! The partition's error contract: oversized and empty appends, out-of-range offsets (with the
//! fields a caller needs to re-seek), `offset_for_time` on an empty log, invalid configurations,
//! use after close, and I/O failures, which poison the partition until it is recovered in place or
//! reopened (both cut what it could not vouch for) and leave no visible trace of the failed append.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{both_fs, record_views, RecordView};
use topiclog::fs::{CrashMode, Fault, FaultOp, SimFs};
use topiclog::internals::format::MAX_BATCH_BYTES_LIMIT;
use topiclog::{Deadline, Durability, Env, Error, LogConfig, Partition, Record};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        durability: Durability::None,
        ..LogConfig::default()
    }
}

#[test]
fn record_too_large_is_rejected_without_side_effects() {
    both_fs(|fs, dir| {
        let env = Env::with_fs(fs.clone());
        let max = 1024u32;
        let log = Partition::open_with_env(
            dir,
            LogConfig {
                max_batch_bytes: max,
                ..config()
            },
            env.clone(),
        )
        .unwrap();
        log.append(Record::new("first")).unwrap();

        match log.append(Record::new(vec![7u8; 2000])) {
            Err(Error::RecordTooLarge { size, max: m }) => {
                assert_eq!(m, max as usize);
                assert!(size > 2000, "size {size} is the encoded batch size");
            }
            other => panic!("expected RecordTooLarge, got {other:?}"),
        }
        // Many small records that only together exceed the limit.
        let many: Vec<Record> = (0..300).map(|i| Record::new(format!("r{i}"))).collect();
        assert!(matches!(
            log.append_batch(&many),
            Err(Error::RecordTooLarge { max: 1024, .. })
        ));
        assert_eq!(log.end_offset(), 1);

        // Around the limit: accepted exactly when the encoded batch fits.
        for len in 900..1000usize {
            let end = log.end_offset();
            match log.append(Record::new(vec![1u8; len])) {
                Ok(offset) => {
                    assert_eq!(offset, end);
                    let size = log.read(offset, 1).unwrap().batches()[0].as_bytes().len();
                    assert!(size <= max as usize, "{len}: accepted a {size}-byte batch");
                }
                Err(Error::RecordTooLarge { size, .. }) => {
                    assert!(size > max as usize, "{len}: rejected a {size}-byte batch");
                    assert_eq!(log.end_offset(), end);
                }
                Err(e) => panic!("{len}: {e}"),
            }
        }
        // Rejections do not poison: the partition still takes appends.
        let end = log.end_offset();
        assert_eq!(log.append(Record::new("last")).unwrap(), end);
    });
}

#[test]
fn empty_batch_is_rejected() {
    both_fs(|fs, dir| {
        let env = Env::with_fs(fs.clone());
        let log = Partition::open_with_env(dir, config(), env.clone()).unwrap();
        assert!(matches!(
            log.append_batch(&[] as &[Record]),
            Err(Error::EmptyBatch)
        ));
        assert!(matches!(
            log.append_batch_with(&[] as &[Record], Durability::Always),
            Err(Error::EmptyBatch)
        ));
        assert_eq!(log.end_offset(), 0);
        assert_eq!(log.append(Record::new("x")).unwrap(), 0);
        assert!(matches!(
            log.append_batch(&[] as &[Record]),
            Err(Error::EmptyBatch)
        ));
        assert_eq!(log.end_offset(), 1);
    });
}

/// Kafka refuses negative timestamps (its time index and retention read them as "none"): so does
/// an append, writing nothing; a log-append-time log overwrites them, so there they are fine.
#[test]
fn a_negative_timestamp_is_refused_unless_the_log_stamps_records() {
    let fs = Arc::new(SimFs::new(9));
    let env = Env::with_fs(fs.clone());
    let log = Partition::open_with_env("/p", config(), env.clone()).unwrap();
    let batch = [
        Record::new("ok").with_timestamp(5),
        Record::new("bad").with_timestamp(-5),
    ];
    assert!(matches!(
        log.append_batch(&batch),
        Err(Error::InvalidTimestamp { timestamp: -5 })
    ));
    assert_eq!(log.end_offset(), 0);
    assert_eq!(log.append(Record::new("x").with_timestamp(0)).unwrap(), 0);
    log.close().unwrap();
    let stamping = LogConfig {
        timestamp_type: topiclog::TimestampType::LogAppendTime,
        ..config()
    };
    let log = Partition::open_with_env("/p", stamping, env).unwrap();
    assert_eq!(log.append_batch(&batch).unwrap().base_offset, 1);
    let read = log.read(1, 1 << 20).unwrap();
    assert!(read.records().all(|r| r.timestamp() >= 0));
    log.close().unwrap();
}

fn assert_out_of_range(result: topiclog::Result<impl std::fmt::Debug>, expected: (u64, u64, u64)) {
    match result {
        Err(Error::OffsetOutOfRange {
            requested,
            start,
            end,
        }) => assert_eq!((requested, start, end), expected),
        other => panic!("expected OffsetOutOfRange {expected:?}, got {other:?}"),
    }
}

#[test]
fn offset_out_of_range_reports_requested_start_and_end() {
    both_fs(|fs, dir| {
        let env = Env::with_fs(fs.clone());
        // An empty log.
        let empty = Partition::open_with_env(dir.join("empty"), config(), env.clone()).unwrap();
        assert!(empty.read(0, 100).unwrap().is_empty());
        assert_out_of_range(empty.read(1, 100), (1, 0, 0));
        assert_out_of_range(empty.read(u64::MAX, 100), (u64::MAX, 0, 0));

        // A log whose first segment starts at 100 (earlier ones were deleted by retention).
        let dir = dir.join("from-100");
        let log = Partition::open_with_env(&dir, config(), env.clone()).unwrap();
        let old: Vec<Record> = (0..100).map(|i| Record::new(format!("old{i}"))).collect();
        log.append_batch(&old).unwrap();
        log.delete_records(100).unwrap();
        log.apply_retention(0, &topiclog::RetentionPolicy::default())
            .unwrap();
        assert_eq!(log.segments()[0].base_offset(), 100);
        let records: Vec<Record> = (0..5).map(|i| Record::new(format!("v{i}"))).collect();
        log.append_batch(&records).unwrap();
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(&dir, config(), env.clone()).unwrap();
        assert_eq!((log.start_offset(), log.end_offset()), (100, 105));
        for requested in [0, 50, 99] {
            assert_out_of_range(log.read(requested, 100), (requested, 100, 105));
        }
        for requested in [106, 1_000, u64::MAX] {
            assert_out_of_range(log.read(requested, 100), (requested, 100, 105));
        }
        assert_out_of_range(log.truncate_to(99), (99, 100, 105));
        // The edges are in range.
        assert_eq!(
            log.read(100, 100)
                .unwrap()
                .records()
                .next()
                .unwrap()
                .offset(),
            100
        );
        assert!(log.read(105, 100).unwrap().is_empty());
        assert_eq!(log.append(Record::new("next")).unwrap(), 105);
        assert_out_of_range(log.read(107, 100), (107, 100, 106));
    });
}

#[test]
fn offset_for_time_on_empty_log_is_none() {
    both_fs(|fs, dir| {
        let env = Env::with_fs(fs.clone());
        let log = Partition::open_with_env(dir, config(), env.clone()).unwrap();
        for t in [i64::MIN, -1, 0, 1_000, i64::MAX] {
            assert_eq!(
                log.offset_for_time(t).unwrap(),
                None,
                "offset_for_time({t})"
            );
        }
        // Emptied again by truncation.
        log.append(Record::new("x").with_timestamp(500)).unwrap();
        assert_eq!(log.offset_for_time(500).unwrap().unwrap().offset, 0);
        assert_eq!(log.offset_for_time(501).unwrap(), None);
        assert_eq!(log.truncate_to(0).unwrap(), 0);
        for t in [i64::MIN, 0, 500, i64::MAX] {
            assert_eq!(
                log.offset_for_time(t).unwrap(),
                None,
                "after truncation: {t}"
            );
        }
        // And after a reopen.
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(dir, config(), env.clone()).unwrap();
        assert_eq!(log.offset_for_time(0).unwrap(), None);
    });
}

#[test]
fn invalid_config_is_rejected_before_touching_the_directory() {
    both_fs(|fs, dir| {
        let env = Env::with_fs(fs.clone());
        let base = config();
        let zero = Duration::ZERO;
        let cases: Vec<(&str, LogConfig)> = vec![
            (
                "segment_bytes",
                LogConfig {
                    segment_bytes: 0,
                    ..base.clone()
                },
            ),
            (
                "segment_bytes",
                LogConfig {
                    segment_bytes: 1023,
                    ..base.clone()
                },
            ),
            (
                "segment_bytes",
                LogConfig {
                    segment_bytes: 2 << 30,
                    ..base.clone()
                },
            ),
            (
                "index_interval_bytes",
                LogConfig {
                    index_interval_bytes: 0,
                    ..base.clone()
                },
            ),
            (
                "max_index_bytes",
                LogConfig {
                    max_index_bytes: 0,
                    ..base.clone()
                },
            ),
            (
                "max_index_bytes",
                LogConfig {
                    max_index_bytes: 11,
                    ..base.clone()
                },
            ),
            (
                "max_batch_bytes",
                LogConfig {
                    max_batch_bytes: 0,
                    ..base.clone()
                },
            ),
            (
                "max_batch_bytes",
                LogConfig {
                    max_batch_bytes: 10,
                    ..base.clone()
                },
            ),
            (
                "max_batch_bytes",
                LogConfig {
                    max_batch_bytes: MAX_BATCH_BYTES_LIMIT as u32 + 1,
                    ..base.clone()
                },
            ),
            (
                "durability",
                LogConfig {
                    durability: Durability::EveryMessages(0),
                    ..base.clone()
                },
            ),
            (
                "durability",
                LogConfig {
                    durability: Durability::Interval(zero),
                    ..base.clone()
                },
            ),
            (
                "segment_ms",
                LogConfig {
                    segment_ms: Deadline::After(zero),
                    ..base.clone()
                },
            ),
        ];
        for (field, config) in cases {
            assert!(
                matches!(config.validate(), Err(Error::InvalidConfig { field: f, .. }) if f == field),
                "validate: {field}"
            );
            match Partition::open_with_env(dir, config, env.clone()) {
                Err(Error::InvalidConfig { field: f, reason }) => {
                    assert_eq!(f, field);
                    assert!(!reason.is_empty());
                }
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
            assert!(
                !fs.exists(dir).unwrap(),
                "{field}: a rejected open created the directory"
            );
        }

        // The documented bounds themselves are valid.
        for ok in [
            LogConfig {
                segment_bytes: 1024,
                ..base.clone()
            },
            LogConfig {
                segment_bytes: (2 << 30) - 1,
                ..base.clone()
            },
            LogConfig {
                max_index_bytes: 12,
                ..base.clone()
            },
            LogConfig {
                segment_ms: Deadline::Never,
                ..base.clone()
            },
            LogConfig {
                durability: Durability::EveryMessages(1),
                ..base.clone()
            },
        ] {
            ok.validate().unwrap();
        }
    });
}

#[test]
fn closed_partition_rejects_writes() {
    both_fs(|fs, dir| {
        let env = Env::with_fs(fs.clone());
        let log = Partition::open_with_env(dir, config(), env.clone()).unwrap();
        log.append(Record::new("a")).unwrap();
        let other = log.clone();
        log.close().unwrap();

        let closed = |r: topiclog::Result<()>, what: &str| match r {
            Err(Error::Closed { path }) => assert_eq!(path, dir, "{what}"),
            other => panic!("{what}: expected Closed, got {other:?}"),
        };
        closed(log.append(Record::new("b")).map(|_| ()), "append");
        closed(
            other.append(Record::new("b")).map(|_| ()),
            "append via a clone",
        );
        closed(
            other
                .append_batch_with(&[Record::new("b")], Durability::Always)
                .map(|_| ()),
            "append_batch_with",
        );
        closed(other.truncate_to(0).map(|_| ()), "truncate_to");
        closed(other.flush(), "flush");
        assert_eq!(log.end_offset(), 1);
        assert!(
            !other.wait_for(1, Duration::from_secs(5)),
            "wait_for on a closed log"
        );
        other.close().unwrap();
        drop((log, other));

        let log = Partition::open_with_env(dir, config(), env.clone()).unwrap();
        assert!(log.recovery_report().clean_shutdown);
        assert_eq!(log.end_offset(), 1);
        assert_eq!(log.append(Record::new("b")).unwrap(), 1);
    });
}

/// A partition on `sim` with three durable records; returns it, the records, and the config.
fn durable_log(sim: &SimFs, dir: &Path) -> (Partition, Vec<RecordView>, LogConfig) {
    let env = Env::with_fs(Arc::new(sim.clone()));
    let config = LogConfig {
        durability: Durability::Always,
        preallocate: false,
        ..config()
    };
    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    for i in 0..3 {
        log.append(Record::new(format!("ok-{i}")).with_timestamp(1_000 + i))
            .unwrap();
    }
    let records = record_views(&log, 0);
    assert_eq!(log.durable_offset(), 3);
    (log, records, config)
}

fn log_sync_fault() -> Fault {
    Fault {
        path_contains: Some(".log".into()),
        ..Fault::new(FaultOp::Sync, 0)
    }
}

fn failed(record: Record) -> Record {
    record.with_timestamp(9_999)
}

#[test]
fn failed_sync_poisons_the_partition_until_reopened() {
    let sim = SimFs::new(11);
    let dir = Path::new("/p");
    let (log, records, config) = durable_log(&sim, dir);
    let env = Env::with_fs(Arc::new(sim.clone()));
    sim.inject(log_sync_fault());
    match log.append(failed(Record::new("lost"))) {
        Err(Error::Io { path, .. }) => assert!(path.to_string_lossy().ends_with(".log")),
        other => panic!("expected Io, got {other:?}"),
    }
    // Every later write is refused, naming the original failure.
    match log.append(Record::new("after")) {
        Err(Error::Poisoned { path, cause }) => {
            assert_eq!(path, dir);
            assert!(cause.to_string().contains("injected fault"), "{cause}");
            // The chain reaches the operating-system error, for generic error walkers.
            assert!(matches!(&*cause, Error::Io { .. }), "{cause:?}");
            assert!(cause.io_error().is_some(), "{cause:?}");
        }
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
    assert!(matches!(log.truncate_to(0), Err(Error::Poisoned { .. })));
    assert!(matches!(
        log.append_batch_with(&[Record::new("x")], Durability::None),
        Err(Error::Poisoned { .. })
    ));
    // Reads keep working for what was durable.
    assert_eq!(record_views(&log, 0)[..3], records[..]);
    assert_eq!(log.offset_for_time(1_001).unwrap().unwrap().offset, 1);
    assert_eq!(log.durable_offset(), 3);

    // A crash, then a reopen: the durable records are there and the log takes writes again.
    sim.crash(CrashMode::LoseUnsynced);
    drop(log);
    let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
    assert_eq!(log.end_offset(), 3);
    assert_eq!(record_views(&log, 0), records);
    assert_eq!(log.append(Record::new("again")).unwrap(), 3);
    assert_eq!(log.durable_offset(), 4);
}

#[test]
fn failed_sync_leaves_no_visible_trace() {
    let sim = SimFs::new(12);
    let (log, records, _) = durable_log(&sim, Path::new("/p"));
    sim.inject(log_sync_fault());
    assert!(matches!(
        log.append(failed(Record::new("lost"))),
        Err(Error::Io { .. })
    ));
    assert_eq!(
        log.end_offset(),
        3,
        "the failed append moved the end offset"
    );
    assert!(
        log.read(3, 1 << 10).unwrap().is_empty(),
        "the failed record is readable"
    );
    assert_eq!(record_views(&log, 0), records);
    assert_eq!(log.offset_for_time(9_999).unwrap(), None);
    assert!(!log.wait_for(3, Duration::ZERO));
}

#[test]
fn failed_write_leaves_no_visible_trace() {
    let sim = SimFs::new(13);
    let dir = Path::new("/p");
    let (log, records, config) = durable_log(&sim, dir);
    let env = Env::with_fs(Arc::new(sim.clone()));
    sim.inject(Fault {
        path_contains: Some(".log".into()),
        ..Fault::new(FaultOp::Write, 0)
    });
    assert!(matches!(
        log.append(failed(Record::new("lost"))),
        Err(Error::Io { .. })
    ));
    assert_eq!(log.end_offset(), 3);
    assert!(log.read(3, 1 << 10).unwrap().is_empty());
    assert_eq!(record_views(&log, 0), records);
    assert_eq!(log.offset_for_time(9_999).unwrap(), None);
    assert!(matches!(
        log.append(Record::new("after")),
        Err(Error::Poisoned { .. })
    ));

    // Reopened without a crash, the log holds exactly the records before the failure.
    drop(log);
    sim.clear_faults();
    let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
    assert_eq!(record_views(&log, 0), records);
    assert_eq!(log.append(Record::new("again")).unwrap(), 3);
}

#[test]
fn failed_sync_of_an_append_asking_for_durability_leaves_no_visible_trace() {
    // The partition syncs lazily, but this one append asks to be durable, and its sync fails.
    let sim = SimFs::new(14);
    let env = Env::with_fs(Arc::new(sim.clone()));
    let log = Partition::open_with_env(
        "/p",
        LogConfig {
            preallocate: false,
            ..config()
        },
        env.clone(),
    )
    .unwrap();
    for i in 0..3 {
        log.append(Record::new(format!("ok-{i}")).with_timestamp(i))
            .unwrap();
    }
    let records = record_views(&log, 0);
    sim.inject(log_sync_fault());
    assert!(matches!(
        log.append_batch_with(&[failed(Record::new("lost"))], Durability::Always),
        Err(Error::Io { .. })
    ));
    assert_eq!(
        log.end_offset(),
        3,
        "the failed append moved the end offset"
    );
    assert_eq!(record_views(&log, 0), records);
    assert_eq!(log.offset_for_time(9_999).unwrap(), None);
}

#[test]
fn failed_sync_under_every_messages_leaves_no_visible_trace() {
    // The third unsynced record triggers a sync, which fails: that append reports an error, so
    // its record must not be visible.
    let sim = SimFs::new(15);
    let env = Env::with_fs(Arc::new(sim.clone()));
    let log = Partition::open_with_env(
        "/p",
        LogConfig {
            durability: Durability::EveryMessages(3),
            preallocate: false,
            ..config()
        },
        env.clone(),
    )
    .unwrap();
    log.append(Record::new("a").with_timestamp(1)).unwrap();
    log.append(Record::new("b").with_timestamp(2)).unwrap();
    let records = record_views(&log, 0);
    sim.inject(log_sync_fault());
    assert!(matches!(
        log.append(failed(Record::new("lost"))),
        Err(Error::Io { .. })
    ));
    assert_eq!(
        log.end_offset(),
        2,
        "the failed append moved the end offset"
    );
    assert_eq!(record_views(&log, 0), records);
    assert_eq!(log.offset_for_time(9_999).unwrap(), None);
}

/// The values of every record of `log`, from its start.
fn values(log: &Partition) -> Vec<String> {
    record_views(log, log.start_offset())
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

/// Reopening a partition a failed fsync poisoned is what `recover` does in place: the record
/// whose fsync failed is cut (it is still in the file, and a reopen used to keep it), so retrying
/// it stores it once. With a close in between, without one (a process crash), and through a power
/// cut afterwards.
#[test]
fn reopen_after_a_failed_fsync_cuts_what_recover_would() {
    for close in [true, false] {
        let sim = SimFs::new(21);
        let dir = Path::new("/p");
        let env = Env::with_fs(Arc::new(sim.clone()));
        let config = LogConfig {
            durability: Durability::Always,
            preallocate: false,
            ..config()
        };
        let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
        log.append(Record::new("a")).unwrap();
        sim.inject(log_sync_fault());
        assert!(matches!(
            log.append(Record::new("b")),
            Err(Error::Io { .. })
        ));
        assert!(log.is_poisoned());
        if close {
            log.close().unwrap();
        } else {
            log.abandon();
        }
        let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
        assert_eq!(log.recovery_report().offsets_dropped, 1, "close: {close}");
        assert_eq!(log.end_offset(), 1);
        assert_eq!(log.append(Record::new("b")).unwrap(), 1);
        assert_eq!(values(&log), ["a", "b"], "close: {close}");
        // The marker is gone with the cut: a power cut and a reopen keep the retried record.
        sim.crash(CrashMode::LoseUnsynced);
        log.abandon();
        let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
        assert_eq!(log.recovery_report().offsets_dropped, 0);
        assert_eq!(
            values(&log),
            ["a", "b"],
            "close: {close}, after a power cut"
        );
        log.close().unwrap();
    }
}

/// A power cut right after the failed fsync: what reaches the next open is the durable marker,
/// whatever the crash kept of the unsynced record.
#[test]
fn a_power_cut_after_a_failed_fsync_cuts_at_the_trusted_end() {
    let sim = SimFs::new(22);
    let dir = Path::new("/p");
    let env = Env::with_fs(Arc::new(sim.clone()));
    let (log, records, config) = durable_log(&sim, dir);
    sim.inject(log_sync_fault());
    assert!(log.append(failed(Record::new("lost"))).is_err());
    sim.crash(CrashMode::Torn);
    log.abandon();
    let log = Partition::open_with_env(dir, config, env).unwrap();
    assert_eq!(record_views(&log, 0), records);
    assert_eq!(log.append(Record::new("again")).unwrap(), 3);
}
