//! A store's long operations report their progress to the observer handed in
//! (`StoreOptions::progress`): the rescan of each partition an unclean stop left (its total the
//! bytes rescanned) and a compaction pass (what it maps and rewrites). Every operation is one
//! partition's, named by topic and partition, starts at 0, never goes back and finishes at its
//! total; a clean reopen rescans nothing and reports nothing, nor does a pass with nothing to
//! clean.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use topiclog::fs::{CrashMode, SimFs};
use topiclog::segment::SegmentFileKind;
use topiclog::{
    CleanupPolicy, Durability, Env, LogConfig, LogOverrides, Progress, ProgressOperation, Record,
    Retention, Store, StoreOptions, Topic, TopicConfig,
};

use crate::common::progress::{check_run, Recorder};
use crate::common::{file_len, segment_files};

/// `Advanced` events at least this far apart: a few per segment.
const INTERVAL: u64 = 1000;

fn options(durability: Durability, progress: Option<Arc<dyn Progress>>) -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 4096,
            preallocate: false,
            durability,
            retention: Retention::Forever,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        progress,
        ..StoreOptions::default()
    }
}

/// `n` records of about 100 bytes over 10 keys to each partition of `topic`.
fn fill(topic: &Topic, n: u32) {
    for p in 0..topic.partition_count() {
        for i in 0..n {
            let record =
                Record::new(format!("{p}-{i}-{}", "x".repeat(80))).with_key(format!("k{}", i % 10));
            topic.send_to(p, record).unwrap();
        }
    }
}

#[test]
fn recovery_after_an_unclean_stop_reports_each_partitions_rescan() {
    let fs = SimFs::new(14);
    let env = || Env::with_fs(Arc::new(fs.clone()));
    // Every append synced, the recovery point never written after the first open: the crash
    // leaves every record, and the reopen rescans every segment from its first byte.
    let store = Store::open_with_env("/store", options(Durability::Always, None), env()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    fill(&topic, 150);
    std::mem::forget((topic, store));
    fs.crash(CrashMode::LoseUnsynced);
    let dir = |p: u32| Path::new("/store/t").join(p.to_string());
    let logs: Vec<Vec<PathBuf>> = (0..2)
        .map(|p| segment_files(&fs, &dir(p), SegmentFileKind::Log))
        .collect();
    assert!(logs.iter().all(|l| l.len() >= 3), "{logs:?}");

    let recorder = Recorder::new(INTERVAL);
    let options = options(Durability::Always, Some(recorder.clone()));
    let store = Store::open_with_env("/store", options.clone(), env()).unwrap();
    let runs = recorder.runs(ProgressOperation::Recovery);
    assert_eq!(
        runs.keys().cloned().collect::<Vec<_>>(),
        vec![dir(0), dir(1)]
    );
    let topic = store.topic("t").unwrap();
    for p in 0..2u32 {
        let run = &runs[&dir(p)];
        let (total, advanced) = check_run(run, INTERVAL);
        assert_eq!(
            (run[0].topic.as_deref(), run[0].partition),
            (Some("t"), Some(p))
        );
        let report = topic.partition(p).unwrap().recovery_report();
        assert!(!report.clean_shutdown);
        assert_eq!(report.segments_scanned, logs[p as usize].len());
        let bytes: u64 = logs[p as usize].iter().map(|l| file_len(&fs, l)).sum();
        assert_eq!(total, bytes);
        assert_eq!(total, report.bytes_scanned);
        assert!(advanced as u64 >= total / (2 * INTERVAL), "{run:#?}");
    }
    assert_eq!(topic.end_offsets(), vec![150, 150]);

    // After a clean close nothing is rescanned, and nothing is reported.
    drop(topic);
    store.close().unwrap();
    recorder.clear();
    let store = Store::open_with_env("/store", options, env()).unwrap();
    assert_eq!(recorder.events(), vec![]);
    store.close().unwrap();
}

#[test]
fn compaction_passes_report_the_bytes_they_map_and_rewrite() {
    let recorder = Recorder::new(INTERVAL);
    let dir = tempfile::tempdir().unwrap();
    let options = options(Durability::None, Some(recorder.clone()));
    let store = Store::open_with(dir.path(), options).unwrap();
    let config = TopicConfig {
        overrides: LogOverrides {
            cleanup_policy: Some(CleanupPolicy::Compact),
            min_cleanable_dirty_ratio: Some(0.0),
            ..LogOverrides::default()
        },
        ..TopicConfig::with_partitions(1)
    };
    let topic = store.create_topic("c", config).unwrap();
    let partition = topic.partition(0).unwrap();
    let pass = |first_dirty: u64| {
        // The segments below the first dirty offset are clean, the other sealed ones dirty:
        // the pass maps the dirty ones, then rewrites them all.
        let (mut clean, mut dirty) = (0u64, 0u64);
        for s in partition.segments().iter().filter(|s| s.is_sealed()) {
            if s.end_offset() <= first_dirty {
                clean += s.size();
            } else {
                dirty += s.size();
            }
        }
        recorder.clear();
        store.maintain().unwrap();
        let runs = recorder.runs(ProgressOperation::Compaction);
        assert_eq!(runs.len(), 1, "{runs:#?}");
        let run = &runs[partition.dir()];
        let (total, _) = check_run(run, INTERVAL);
        assert_eq!(
            (run[0].topic.as_deref(), run[0].partition),
            (Some("c"), Some(0))
        );
        assert_eq!(total, 2 * dirty + clean, "clean {clean}, dirty {dirty}");
        (clean, dirty)
    };

    fill(&topic, 200);
    let (clean, dirty) = pass(partition.first_dirty_offset());
    assert_eq!(clean, 0);
    assert!(dirty > 3 * 4096 / 2, "{dirty}");
    // The second pass finds the cleaned segments clean and the new ones dirty.
    fill(&topic, 100);
    let (clean, dirty) = pass(partition.first_dirty_offset());
    assert!(clean > 0 && dirty > 0, "clean {clean}, dirty {dirty}");

    // A pass with nothing to clean reports nothing.
    recorder.clear();
    store.maintain().unwrap();
    assert_eq!(recorder.events(), vec![]);
    store.close().unwrap();
}
