//! A store's long operations report their progress to the observers handed in
//! (`StoreOptions::progress`, `KafkaExportOptions::progress`, `KafkaImportOptions::progress`):
//! the rescan of each partition an unclean stop left (its total the bytes rescanned), a
//! compaction pass (what it maps and rewrites), and each partition of an export and an import
//! (the bytes copied). Every operation is one partition's, named by topic and partition, starts
//! at 0, never goes back and finishes at its total; a clean reopen rescans nothing and reports
//! nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use topiclog::fs::{CrashMode, SimFs};
use topiclog::segment::SegmentFileKind;
use topiclog::{
    CleanupPolicy, Durability, Env, KafkaExportOptions, KafkaImportOptions, LogConfig,
    LogOverrides, Progress, ProgressOperation, Record, Retention, Store, StoreOptions, Topic,
    TopicConfig,
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

#[test]
fn export_and_import_report_the_bytes_they_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("a"), options(Durability::None, None)).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    fill(&topic, 120);

    let recorder = Recorder::new(INTERVAL);
    let kafka = dir.path().join("kafka");
    let export = KafkaExportOptions {
        hard_links: false,
        progress: Some(recorder.clone()),
        ..KafkaExportOptions::default()
    };
    let exported = store.export_kafka_with(&kafka, &["t"], &export).unwrap();
    let runs = recorder.runs(ProgressOperation::Export);
    let partition_dir = |p: u32| kafka.join(format!("t-{p}"));
    assert_eq!(
        runs.keys().cloned().collect::<Vec<_>>(),
        vec![partition_dir(0), partition_dir(1)]
    );
    // One partition after the other.
    let order: Vec<_> = recorder.events().iter().map(|e| e.partition).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    for p in 0..2u32 {
        let run = &runs[&partition_dir(p)];
        let (total, advanced) = check_run(run, INTERVAL);
        assert_eq!(
            (run[0].topic.as_deref(), run[0].partition),
            (Some("t"), Some(p))
        );
        let report = &exported.partitions[&("t".to_string(), p)];
        assert_eq!(report.hard_linked, 0);
        assert_eq!(total, report.copied_bytes);
        assert!(advanced > 0, "{run:#?}");
    }

    // Hard links count as done at once: the total is every byte exported all the same.
    recorder.clear();
    let linked = dir.path().join("kafka-linked");
    let export = KafkaExportOptions {
        progress: Some(recorder.clone()),
        ..KafkaExportOptions::default()
    };
    let exported_linked = store.export_kafka_with(&linked, &["t"], &export).unwrap();
    for (p, run) in recorder
        .runs(ProgressOperation::Export)
        .values()
        .enumerate()
    {
        let (total, _) = check_run(run, INTERVAL);
        let report = &exported_linked.partitions[&("t".to_string(), p as u32)];
        assert!(report.hard_linked > 0);
        let linked_bytes: u64 = topic
            .partition(p as u32)
            .unwrap()
            .segments()
            .iter()
            .filter(|s| s.is_sealed())
            .map(|s| s.size())
            .sum();
        assert_eq!(total, report.copied_bytes + linked_bytes);
    }
    store.close().unwrap();

    recorder.clear();
    let other = Store::open_with(dir.path().join("b"), options(Durability::None, None)).unwrap();
    let import = KafkaImportOptions {
        hard_links: false,
        progress: Some(recorder.clone()),
        ..KafkaImportOptions::default()
    };
    let imported = other.import_kafka_with(&kafka, &["t"], &import).unwrap();
    let runs = recorder.runs(ProgressOperation::Import);
    assert_eq!(
        runs.keys().cloned().collect::<Vec<_>>(),
        vec![partition_dir(0), partition_dir(1)]
    );
    let mut kafka_bytes = BTreeMap::new();
    for p in 0..2u32 {
        let run = &runs[&partition_dir(p)];
        let (total, advanced) = check_run(run, INTERVAL);
        assert_eq!(
            (run[0].topic.as_deref(), run[0].partition),
            (Some("t"), Some(p))
        );
        let report = &imported.partitions[&("t".to_string(), p)];
        assert_eq!(total, report.copied_bytes);
        assert!(advanced > 0, "{run:#?}");
        kafka_bytes.insert(p, total);
    }
    // What was imported is what was exported.
    for p in 0..2u32 {
        let logs = segment_files(
            &topiclog::fs::StdFs,
            &partition_dir(p),
            SegmentFileKind::Log,
        );
        let bytes: u64 = logs.iter().map(|l| file_len(&topiclog::fs::StdFs, l)).sum();
        assert_eq!(kafka_bytes[&p], bytes);
    }
    other.close().unwrap();
}
