//! `Partition::stats`: each counter follows the work it counts (appends, reads, group commits,
//! retention and compaction passes), the gauges follow the log, and a failed sync shows as
//! `poisoned`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use topiclog::fs::{Fault, FaultOp, SimFs};
use topiclog::{
    CompactionPolicy, Deadline, Durability, Env, LogConfig, ManualClock, Partition, Record,
    RetentionPolicy,
};

const T0: i64 = 1_700_000_000_000;

fn open(fs: &Arc<SimFs>, config: LogConfig) -> Partition {
    let env = Env {
        fs: fs.clone(),
        clock: Arc::new(ManualClock::new(T0)),
    };
    Partition::open_with_env("/p", config, env).unwrap()
}

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        ..LogConfig::default()
    }
}

#[test]
fn appends_reads_and_gauges() {
    let fs = Arc::new(SimFs::new(1));
    let log = open(&fs, config(Durability::None));
    let mut bytes = 0;
    for i in 0..40u64 {
        let batch: Vec<Record> = (0..3).map(|j| Record::new(format!("{i}-{j}"))).collect();
        let info = log.append_batch(&batch).unwrap();
        assert_eq!(info.base_offset, 3 * i);
        bytes += log.read(info.base_offset, 1).unwrap().batches()[0]
            .as_bytes()
            .len() as u64;
    }
    let s = log.stats();
    assert_eq!((s.batches_appended, s.records_appended), (40, 120));
    assert_eq!(s.bytes_appended, bytes);
    // Each read above served exactly the batch appended.
    assert_eq!(
        (s.batches_read, s.records_read, s.bytes_read),
        (40, 120, bytes)
    );
    assert_eq!((s.start_offset, s.end_offset), (0, 120));
    assert_eq!(s.segments, log.segment_count());
    assert!(s.segments > 1, "1 KiB segments rolled");
    let sizes: u64 = log.segments().iter().map(|v| v.size()).sum();
    assert_eq!(s.size_bytes, sizes);
    assert_eq!(s.size_bytes, bytes);
    // Durability::None: nothing synced yet, nothing waited.
    assert_eq!((s.syncs, s.appends_synced), (0, 0));
    assert_eq!(s.sync_max, Duration::ZERO);
    log.flush().unwrap();
    let s = log.stats();
    assert_eq!(s.syncs, 1);
    assert_eq!(s.durable_offset, 120);
    assert!(s.sync_p50 <= s.sync_p99 && s.sync_p99 <= s.sync_max);
    assert!(!s.poisoned);
}

#[test]
fn group_commits_count_the_appends_they_carried() {
    let fs = Arc::new(SimFs::new(2));
    let log = open(&fs, config(Durability::Always));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log.append(Record::new(format!("{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = log.stats();
    assert_eq!(s.records_appended, 200);
    assert_eq!(s.syncs, log.sync_count());
    // Every sync was led by an append still waiting; none counted more than once.
    assert!(s.syncs >= 1 && s.syncs <= 200, "{} syncs", s.syncs);
    assert!(
        s.appends_synced >= s.syncs && s.appends_synced <= 200,
        "{} appends over {} syncs",
        s.appends_synced,
        s.syncs
    );
    assert_eq!(s.durable_offset, 200);
}

#[test]
fn retention_and_compaction_passes() {
    let fs = Arc::new(SimFs::new(3));
    let log = open(
        &fs,
        LogConfig {
            cleanup_policy: topiclog::CleanupPolicy::Compact,
            ..config(Durability::None)
        },
    );
    for i in 0..300u64 {
        // Ten keys, each written thirty times: compaction keeps the last value of each.
        let r = Record::new(format!("value-{i:04}")).with_key(format!("k{}", i % 10));
        log.append(r).unwrap();
    }
    assert_eq!(log.stats().last_compaction_ms, None);
    let report = log.compact(T0 + 1, &CompactionPolicy::default()).unwrap();
    assert!(report.cleaned);
    let s = log.stats();
    assert_eq!(s.compaction_passes, 1);
    assert_eq!(
        s.compaction_bytes_reclaimed,
        report.bytes_read - report.bytes_written
    );
    assert!(s.compaction_bytes_reclaimed > 0);
    assert_eq!(s.last_compaction_ms, Some(T0 + 1));

    assert_eq!(s.last_retention_ms, None);
    // Everything below the second segment: the first one goes whole.
    let cut = log.segments()[1].base_offset();
    log.delete_records(cut).unwrap();
    let report = log
        .apply_retention(T0 + 2, &RetentionPolicy::default())
        .unwrap();
    assert!(report.segments_deleted > 0);
    let s = log.stats();
    assert_eq!(s.retention_passes, 1);
    assert_eq!(s.retention_bytes_deleted, report.bytes_deleted);
    assert_eq!(s.last_retention_ms, Some(T0 + 2));
    assert_eq!(s.start_offset, cut);
}

#[test]
fn a_failed_sync_shows_as_poisoned() {
    let fs = Arc::new(SimFs::new(4));
    let log = open(&fs, config(Durability::None));
    log.append(Record::new("a")).unwrap();
    fs.inject(Fault {
        path_contains: Some(Path::new("/p").join("0000").to_string_lossy().into_owned()),
        ..Fault::new(FaultOp::Sync, 0)
    });
    assert!(log.flush().is_err());
    let s = log.stats();
    assert!(s.poisoned);
    assert_eq!(s.syncs, 0, "a failed sync is not counted");
}
