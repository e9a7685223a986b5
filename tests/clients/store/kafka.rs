//! Moving partitions between a store and a Kafka log directory (`Store::export_kafka`,
//! `Store::import_kafka`, `Partition::export_kafka`, `Store::export_group_offsets`): round trips
//! keep every record, offset and log start (several partitions and segments, a moved log start,
//! a compacted topic), an export taken while writers, retention and compaction run is a
//! consistent prefix that imports cleanly, sealed segments are hard-linked and the segment still
//! written to is copied, Kafka's checkpoint files have Kafka's exact text, and imports refuse
//! what they cannot take whole.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use topiclog::fs::{FileSystem, OpenMode, StdFs};
use topiclog::segment::RecordBatch;
use topiclog::{
    CleanupPolicy, ConsumerConfig, Durability, Env, Error, KafkaExportOptions, KafkaImportOptions,
    KafkaPartitionExportOptions, LogConfig, LogOverrides, ManualClock, OffsetAndMetadata,
    Partition, Record, Retention, Store, StoreOptions, Topic, TopicConfig, TopicPartition,
};

use crate::common::{append_random_batches, both_fs_at, record_views, RecordView};

const NOW: i64 = 1_700_000_000_000;

fn env(fs: Arc<dyn FileSystem>) -> Env {
    Env {
        fs,
        clock: Arc::new(ManualClock::new(NOW)),
    }
}

/// Small segments (several per partition), index entries every few batches, records kept
/// whatever their timestamps, no background threads.
fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 256,
            durability: Durability::None,
            retention: Retention::Forever,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

fn compacted() -> LogOverrides {
    LogOverrides {
        cleanup_policy: Some(CleanupPolicy::Compact),
        min_cleanable_dirty_ratio: Some(0.0),
        ..LogOverrides::default()
    }
}

/// What an import of the topics `options()` stores hold needs: `users` is compacted.
fn import_options() -> KafkaImportOptions {
    let mut o = KafkaImportOptions::default();
    o.topic_overrides.insert("users".into(), compacted());
    o
}

/// An import of `events` as a compacted topic (a Kafka log with compaction gaps is one), after
/// checking that as a topic that does not compact (the default) the import refuses the gaps:
/// Kafka leaves none there.
fn import_events_compacted(store: &Store, kafka: &Path) -> topiclog::KafkaImportReport {
    match store.import_kafka(kafka, &["events"]) {
        Err(Error::KafkaLogDir { path, .. }) => assert!(
            path.starts_with(kafka.join("events-0")),
            "{}",
            path.display()
        ),
        other => panic!("expected KafkaLogDir naming a segment of events-0, got {other:?}"),
    }
    assert!(
        store.topics().is_empty(),
        "a refused import leaves no topic"
    );
    let mut o = KafkaImportOptions::default();
    o.topic_overrides.insert("events".into(), compacted());
    store.import_kafka_with(kafka, &["events"], &o).unwrap()
}

/// Every partition of every topic: (start, end, records).
fn snapshot(store: &Store) -> BTreeMap<(String, u32), (u64, u64, Vec<RecordView>)> {
    let mut out = BTreeMap::new();
    for name in store.topics() {
        let topic = store.topic(&name).unwrap();
        for (i, p) in topic.partitions().iter().enumerate() {
            let start = p.start_offset();
            out.insert(
                (name.clone(), i as u32),
                (start, p.end_offset(), record_views(p, start)),
            );
        }
    }
    out
}

/// `events` (3 partitions, several segments each; partition 1's log start moved inside a
/// segment and the segments below deleted, partition 2's moved past its first segment, which
/// is still on disk) and `users` (compacted, with tombstones).
fn fill(store: &Store) {
    let events = store
        .create_topic("events", TopicConfig::with_partitions(3))
        .unwrap();
    for (i, p) in events.partitions().iter().enumerate() {
        append_random_batches(p, 60 + 10 * i as u64, 7 + i as u64);
        assert!(p.segment_count() >= 3, "{}", p.segment_count());
    }
    let p1 = events.partition(1).unwrap();
    let inside = p1.segments()[1].base_offset() + 1;
    p1.delete_records(inside).unwrap();
    store.maintain().unwrap(); // retention deletes segment 0 of partition 1
    assert_eq!(p1.segments()[0].base_offset() + 1, inside);
    let p2 = events.partition(2).unwrap();
    p2.delete_records(p2.segments()[1].base_offset() + 2)
        .unwrap();
    assert_eq!(p2.segments()[0].base_offset(), 0, "still on disk");

    let users = store
        .create_topic(
            "users",
            TopicConfig {
                partitions: 1,
                overrides: compacted(),
            },
        )
        .unwrap();
    for i in 0..200u64 {
        let key = format!("user-{}", i % 23);
        let r = if i % 17 == 5 {
            Record::tombstone(key)
        } else {
            Record::new(format!("profile {i}"))
                .with_key(key)
                .with_header("v", Some(topiclog::Bytes::from(i.to_string())))
                .with_timestamp(NOW - 1000 + i as i64)
        };
        users.send_to(0, r).unwrap();
    }
    users.compact(NOW).unwrap();
    let u = users.partition(0).unwrap();
    assert!(u.first_dirty_offset() > 0, "compacted");
}

#[test]
fn round_trip_keeps_records_offsets_log_start_and_compaction() {
    both_fs_at("kafka-round-trip", 41, |fs, root| {
        let a = Store::open_with_env(root.join("a"), options(), env(fs.clone())).unwrap();
        fill(&a);
        let before = snapshot(&a);
        let kafka = root.join("kafka-logs");
        let report = a.export_kafka(&kafka, &[]).unwrap();
        assert_eq!(report.partitions.len(), 4);
        for (key, (start, end, _)) in &before {
            let e = &report.partitions[key];
            assert_eq!((e.start_offset, e.end_offset), (*start, *end), "{key:?}");
            assert!(fs
                .is_dir(&kafka.join(format!("{}-{}", key.0, key.1)))
                .unwrap());
        }
        // The export changed nothing in the store.
        assert_eq!(snapshot(&a), before);

        let b = Store::open_with_env(root.join("b"), options(), env(fs.clone())).unwrap();
        let imported = b.import_kafka_with(&kafka, &[], &import_options()).unwrap();
        assert_eq!(imported.topics, ["events", "users"]);
        assert_eq!(imported.partitions.len(), 4);
        assert_eq!(snapshot(&b), before);
        assert_eq!(
            b.topic("users").unwrap().config().cleanup_policy,
            CleanupPolicy::Compact
        );

        // The imported logs go on where Kafka's would: the next offset, and a reopen.
        let events = b.topic("events").unwrap();
        let end = events.partition(0).unwrap().end_offset();
        assert_eq!(
            events
                .send_to(0, Record::new("after").with_key("k"))
                .unwrap()
                .offset,
            end
        );
        let after = snapshot(&b);
        b.close().unwrap();
        let b = Store::open_with_env(root.join("b"), options(), env(fs.clone())).unwrap();
        assert_eq!(snapshot(&b), after);
        assert!(
            b.recovery_reports().is_empty(),
            "{:?}",
            b.recovery_reports()
        );
        b.maintain().unwrap();
        b.topic("users").unwrap().compact(NOW).unwrap();
        assert_eq!(snapshot(&b), after);

        // And back: a second export of the imported store imports to the same records.
        let again = root.join("kafka-logs-2");
        b.export_kafka(&again, &["events"]).unwrap();
        let c = Store::open_with_env(root.join("c"), options(), env(fs)).unwrap();
        c.import_kafka(&again, &[]).unwrap();
        assert_eq!(c.topics(), ["events"]);
        for i in 0..3 {
            let key = ("events".to_string(), i);
            assert_eq!(snapshot(&c)[&key], after[&key]);
        }
    });
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn checkpoint_files_have_kafkas_exact_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), options()).unwrap();
    let a = store
        .create_topic("a", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..3 {
        a.send_to(0, Record::new(format!("v{i}"))).unwrap();
    }
    a.send_to(1, Record::new("gone")).unwrap();
    a.send_to(1, Record::new("kept")).unwrap();
    a.partition(1).unwrap().delete_records(1).unwrap();
    let c = store
        .create_topic(
            "c",
            TopicConfig {
                partitions: 1,
                overrides: compacted(),
            },
        )
        .unwrap();
    // Enough to roll a few segments, so the cleaner has sealed ones to compact.
    for i in 0..120 {
        c.send_to(
            0,
            Record::new(vec![b'x'; 40]).with_key(format!("k{}", i % 3)),
        )
        .unwrap();
    }
    c.compact(NOW).unwrap();
    let cp = c.partition(0).unwrap();
    let (c_start, c_end, c_dirty) = (cp.start_offset(), cp.end_offset(), cp.first_dirty_offset());
    assert!(c_dirty > 0 && c_dirty < c_end);

    let kafka = dir.path().join("kafka");
    std::fs::create_dir_all(&kafka).unwrap();
    // A checkpoint already there (another partition of the broker's) is merged into.
    std::fs::write(
        kafka.join("recovery-point-offset-checkpoint"),
        "0\n1\nother 0 5\n",
    )
    .unwrap();
    let mut options = KafkaExportOptions::default();
    options
        .topic_ids
        .insert("a".into(), "q2JnFwPxQHyN0bA5FaTm7g".parse().unwrap());
    store.export_kafka_with(&kafka, &[], &options).unwrap();

    assert_eq!(
        read(&kafka.join("recovery-point-offset-checkpoint")),
        format!("0\n4\na 0 3\na 1 2\nc 0 {c_end}\nother 0 5\n")
    );
    assert_eq!(
        read(&kafka.join("log-start-offset-checkpoint")),
        format!("0\n3\na 0 0\na 1 1\nc 0 {c_start}\n")
    );
    assert_eq!(
        read(&kafka.join("replication-offset-checkpoint")),
        format!("0\n3\na 0 3\na 1 2\nc 0 {c_end}\n")
    );
    assert_eq!(
        read(&kafka.join("cleaner-offset-checkpoint")),
        format!("0\n1\nc 0 {c_dirty}\n"),
        "only compacted topics"
    );
    // topiclog writes every batch in leader epoch 0; the entry starts at the log start.
    assert_eq!(
        read(&kafka.join("a-0/leader-epoch-checkpoint")),
        "0\n1\n0 0\n"
    );
    assert_eq!(
        read(&kafka.join("a-1/leader-epoch-checkpoint")),
        "0\n1\n0 1\n"
    );
    assert_eq!(
        read(&kafka.join("a-1/partition.metadata")),
        "version: 0\ntopic_id: q2JnFwPxQHyN0bA5FaTm7g"
    );
    assert!(
        !kafka.join("c-0/partition.metadata").exists(),
        "no id given for c"
    );
    for never in [
        "meta.properties",
        ".kafka_cleanshutdown",
        "__consumer_offsets-0",
    ] {
        assert!(!kafka.join(never).exists(), "{never}");
    }
}

fn ino(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Every file below `dir` with its bytes and modification time.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            out.insert(p.clone(), (std::fs::read(&p).unwrap(), m));
        }
    }
    out
}

#[test]
fn sealed_segments_are_hard_linked_and_the_segment_written_to_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), options()).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let p = t.partition(0).unwrap();
    append_random_batches(&p, 80, 3);
    let segments = p.segments();
    assert!(segments.len() >= 3);

    let kafka = dir.path().join("kafka");
    let report = store.export_kafka(&kafka, &[]).unwrap();
    let e = &report.partitions[&("t".to_string(), 0)];
    assert_eq!(e.hard_linked, segments.len() - 1);
    let exported = logs(&kafka.join("t-0"));
    assert_eq!(exported.len(), segments.len());
    for (seg, out) in segments.iter().zip(&exported) {
        assert_eq!(out.file_name(), seg.log_path().file_name());
        let same = ino(out) == ino(seg.log_path());
        assert_eq!(same, seg.is_sealed(), "{}", out.display());
        // Index files are always copies (the active segment's are only in memory yet).
        let index = out.with_extension("index");
        if seg.is_sealed() {
            assert_ne!(ino(&index), ino(seg.index_path()));
        }
        assert!(index.exists() && out.with_extension("timeindex").exists());
    }
    // The active segment's copy holds exactly its data (no preallocated tail).
    let active = segments.last().unwrap();
    assert_eq!(
        std::fs::metadata(exported.last().unwrap()).unwrap().len(),
        active.size()
    );

    // Without hard links every file is a copy.
    let copies = dir.path().join("copies");
    let no_links = KafkaExportOptions {
        hard_links: false,
        ..KafkaExportOptions::default()
    };
    let r = store.export_kafka_with(&copies, &[], &no_links).unwrap();
    assert_eq!(r.partitions[&("t".to_string(), 0)].hard_linked, 0);
    for (seg, out) in segments.iter().zip(logs(&copies.join("t-0"))) {
        assert_ne!(ino(&out), ino(seg.log_path()));
        assert_eq!(std::fs::read(&out).unwrap().len() as u64, seg.size());
    }

    // An import links the Kafka segments it can and never changes the source.
    let source = tree(&kafka);
    let b = Store::open_with(dir.path().join("b"), options()).unwrap();
    let imported = b.import_kafka(&kafka, &["t"]).unwrap();
    let i = &imported.partitions[&("t".to_string(), 0)];
    assert_eq!(i.hard_linked, segments.len() - 1);
    let b_segments = b.topic("t").unwrap().partition(0).unwrap().segments();
    for (seg, src) in b_segments.iter().zip(&exported) {
        assert_eq!(ino(seg.log_path()) == ino(src), seg.is_sealed());
    }
    b.close().unwrap();
    assert_eq!(tree(&kafka), source, "the Kafka directory is only read");
}

#[test]
fn an_export_during_appends_rolls_retention_and_compaction_is_a_consistent_prefix() {
    export_during_churn(false);
}

/// The same, exported by a read-only opener (a backup taken beside the writer): copied through
/// the reader, never linked. An export that retention overtook (its records below the new start
/// were not copied yet) fails with `Interrupted`, as documented, and is run again.
#[test]
fn a_read_only_export_during_appends_rolls_retention_and_compaction_is_a_consistent_prefix() {
    export_during_churn(true);
}

fn export_during_churn(read_only: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), options()).unwrap();
    // Segments of 16 KiB: still dozens of rolls, without a file per 30 records (every segment
    // holds a descriptor, and tests run side by side under `ulimit -n 1024`).
    let live = store
        .create_topic(
            "live",
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    segment_bytes: Some(16 << 10),
                    ..LogOverrides::default()
                },
            },
        )
        .unwrap();
    let kv = store
        .create_topic(
            "kv",
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    segment_bytes: Some(16 << 10),
                    ..compacted()
                },
            },
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // Writers: the value of every record is its offset.
    for topic in [live.clone(), kv.clone()] {
        let stop = stop.clone();
        threads.push(thread::spawn(move || {
            let p = topic.partition(0).unwrap();
            let mut n = 0u64;
            // Bounded, so a slow export cannot let the logs (and their open files) grow
            // without end.
            while !stop.load(Ordering::Relaxed) && n < 12_000 {
                let next = p.end_offset();
                let r = Record::new(next.to_string()).with_key(format!("k{}", n % 40));
                n += 1;
                assert_eq!(topic.send_to(0, r).unwrap().offset, next);
            }
        }));
    }
    // Housekeeping: the log start moves and segments go; the compacted topic is cleaned.
    {
        let (stop, live, kv) = (stop.clone(), live.clone(), kv.clone());
        let store = store.clone();
        threads.push(thread::spawn(move || {
            let p = live.partition(0).unwrap();
            while !stop.load(Ordering::Relaxed) {
                p.delete_records(p.end_offset().saturating_sub(300))
                    .unwrap();
                store.maintain().unwrap();
                kv.compact(NOW).unwrap();
            }
        }));
    }
    let mut exports = Vec::new();
    for i in 0..8 {
        // Let some records in between exports (while the writers write).
        let target = (i + 1) * 1000;
        while live.partition(0).unwrap().end_offset() < target {
            thread::yield_now();
        }
        let out = dir.path().join(format!("export-{i}"));
        let report = if read_only {
            let reader = topiclog::ReadOnlyStore::open(dir.path().join("store")).unwrap();
            let mut attempts = 0;
            loop {
                match reader.export_kafka_with(&out, &[], &KafkaExportOptions::default()) {
                    Ok(r) => break r,
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::Interrupted && attempts < 20 =>
                    {
                        attempts += 1;
                    }
                    Err(e) => panic!("read-only export {i}: {e}"),
                }
            }
        } else {
            store.export_kafka(&out, &[]).unwrap()
        };
        if read_only {
            assert_eq!(
                report
                    .partitions
                    .values()
                    .map(|e| e.hard_linked)
                    .sum::<usize>(),
                0
            );
        }
        exports.push((out, report));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let final_ends = (
        live.partition(0).unwrap().end_offset(),
        kv.partition(0).unwrap().end_offset(),
    );
    for (n, (out, report)) in exports.iter().enumerate() {
        let b = Store::open_with(dir.path().join(format!("import-{n}")), options()).unwrap();
        let mut io = KafkaImportOptions::default();
        io.topic_overrides.insert("kv".into(), compacted());
        b.import_kafka_with(out, &[], &io).unwrap();
        for (name, final_end) in [("live", final_ends.0), ("kv", final_ends.1)] {
            let e = &report.partitions[&(name.to_string(), 0)];
            let p = b.topic(name).unwrap().partition(0).unwrap();
            assert_eq!(
                (p.start_offset(), p.end_offset()),
                (e.start_offset, e.end_offset)
            );
            assert!(e.start_offset <= e.end_offset && e.end_offset <= final_end);
            let records = record_views(&p, p.start_offset());
            for r in &records {
                assert_eq!(r.value.as_deref(), Some(r.offset.to_string().as_bytes()));
            }
            if name == "live" {
                // Not compacted: every offset from the start to the end, once.
                let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
                let want: Vec<u64> = (e.start_offset..e.end_offset).collect();
                assert_eq!(offsets, want, "export {n}");
            } else {
                assert!(records.windows(2).all(|w| w[0].offset < w[1].offset));
                // The last record of the export is the last record below its end.
                if let Some(last) = records.last() {
                    assert_eq!(last.offset + 1, e.end_offset, "export {n}");
                }
            }
        }
        b.close().unwrap();
        let b = Store::open_with(dir.path().join(format!("import-{n}")), options()).unwrap();
        assert!(b.recovery_reports().is_empty());
    }
}

fn exported_store(root: &Path) -> (Store, PathBuf) {
    let store = Store::open_with(root.join("store"), options()).unwrap();
    fill(&store);
    let kafka = root.join("kafka");
    let o = KafkaExportOptions {
        hard_links: false, // the tests edit the export
        ..KafkaExportOptions::default()
    };
    store.export_kafka_with(&kafka, &[], &o).unwrap();
    (store, kafka)
}

fn assert_kafka_log_dir(e: Error, needle: &str) {
    match &e {
        Error::KafkaLogDir { .. } => {
            assert!(e.to_string().contains(needle), "{e}");
            assert_eq!(e.kind(), topiclog::ErrorKind::InvalidInput);
        }
        other => panic!("expected KafkaLogDir ({needle}), got {other:?}"),
    }
}

#[test]
fn import_refuses_existing_topics_gaps_in_partitions_and_interrupted_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, kafka) = exported_store(dir.path());
    let b = Store::open_with(dir.path().join("b"), options()).unwrap();

    // A topic the store has: refused before anything is created.
    b.create_topic("events", TopicConfig::with_partitions(1))
        .unwrap();
    let e = b
        .import_kafka_with(&kafka, &[], &import_options())
        .unwrap_err();
    assert!(
        matches!(e, Error::TopicExists { ref name } if name == "events"),
        "{e}"
    );
    assert_eq!(b.topics(), ["events"], "users was not created either");
    b.delete_topic("events").unwrap();

    // A topic it does not hold.
    let e = b.import_kafka(&kafka, &["nope"]).unwrap_err();
    assert_kafka_log_dir(e, "no partition directory of topic \"nope\"");

    // Partitions not numbered 0..n.
    let gappy = dir.path().join("gappy");
    copy_tree(&kafka, &gappy);
    std::fs::rename(gappy.join("events-1"), gappy.join("events-7")).unwrap();
    let e = b.import_kafka(&gappy, &["events"]).unwrap_err();
    assert_kafka_log_dir(e, "partition directories 0, 2, 7");

    // What an interrupted Kafka compaction or split leaves.
    for leftover in [
        "00000000000000000000.log.swap",
        "00000000000000000000.index.swap",
        "00000000000000000000.log.cleaned",
    ] {
        let d = dir.path().join(format!("left-{leftover}"));
        copy_tree(&kafka, &d);
        std::fs::write(d.join("events-2").join(leftover), b"x").unwrap();
        let e = b.import_kafka(&d, &["events"]).unwrap_err();
        assert_kafka_log_dir(e, leftover);
    }
    // Aborted transactions (a non-empty transaction index); an empty one is fine.
    let d = dir.path().join("txn");
    copy_tree(&kafka, &d);
    std::fs::write(d.join("events-0/00000000000000000000.txnindex"), []).unwrap();
    std::fs::write(d.join("events-1/00000000000000000000.txnindex"), [0u8; 34]).unwrap();
    let e = b.import_kafka(&d, &["events"]).unwrap_err();
    assert_kafka_log_dir(e, "aborted transactions");

    // A sealed segment that is not a whole log (damage, or a copy taken mid-write).
    let d = dir.path().join("torn-sealed");
    copy_tree(&kafka, &d);
    let first = logs(&d.join("events-0"))[0].clone();
    let len = std::fs::metadata(&first).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    f.set_len(len - 10).unwrap();
    let e = b.import_kafka(&d, &["events"]).unwrap_err();
    assert_kafka_log_dir(e, "not a whole, valid log");

    // A malformed checkpoint file.
    let d = dir.path().join("bad-checkpoint");
    copy_tree(&kafka, &d);
    std::fs::write(
        d.join("log-start-offset-checkpoint"),
        "0\n1\nevents zero 3\n",
    )
    .unwrap();
    let e = b.import_kafka(&d, &["events"]).unwrap_err();
    assert_kafka_log_dir(e, "log-start-offset-checkpoint");

    // None of this created anything; the export itself still imports.
    assert!(b.topics().is_empty());
    b.import_kafka_with(&kafka, &[], &import_options()).unwrap();
    assert_eq!(b.topics(), ["events", "users"]);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

#[test]
fn import_keeps_kafka_compaction_gaps_and_cuts_a_torn_tail_as_kafka_recovery_would() {
    let dir = tempfile::tempdir().unwrap();
    let (a, kafka) = exported_store(dir.path());
    let p0 = a.topic("events").unwrap().partition(0).unwrap();
    let mut want = record_views(&p0, 0);
    let end = p0.end_offset();

    // Kafka's cleaner removed the last batch of the first segment: it ends before the next
    // one begins.
    let seg = &p0.segments()[0];
    let batches = seg.read(0, usize::MAX).unwrap();
    let last = batches.last().unwrap();
    let cut = seg.size() - last.as_bytes().len() as u64;
    let path = kafka
        .join("events-0")
        .join(seg.log_path().file_name().unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    want.retain(|r| r.offset < last.base_offset() || r.offset > last.last_offset());
    // And the broker stopped uncleanly while appending: a torn batch at the end of the log.
    let torn = RecordBatch::build(&[Record::new("torn")], end, NOW).unwrap();
    let half = &torn.as_bytes()[..torn.as_bytes().len() / 2];
    let tail = logs(&kafka.join("events-0")).pop().unwrap();
    let mut bytes = std::fs::read(&tail).unwrap();
    bytes.extend_from_slice(half);
    std::fs::write(&tail, &bytes).unwrap();

    let b = Store::open_with(dir.path().join("b"), options()).unwrap();
    let r = import_events_compacted(&b, &kafka);
    let i = &r.partitions[&("events".to_string(), 0)];
    assert_eq!(i.bytes_truncated, half.len() as u64);
    let p = b.topic("events").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), end);
    assert_eq!(record_views(&p, 0), want);
    // Reads starting inside the gap find the next record.
    let next = p.read(last.base_offset(), 1 << 20).unwrap();
    assert_eq!(
        next.records().next().unwrap().offset(),
        last.last_offset() + 1
    );
    b.close().unwrap();
    let b = Store::open_with(dir.path().join("b"), options()).unwrap();
    assert_eq!(
        record_views(&b.topic("events").unwrap().partition(0).unwrap(), 0),
        want
    );

    // After a clean Kafka shutdown every byte was flushed: a torn tail is damage, refused.
    std::fs::write(
        kafka.join(".kafka_cleanshutdown"),
        "{\"version\":0,\"brokerEpoch\":7}",
    )
    .unwrap();
    let c = Store::open_with(dir.path().join("c"), options()).unwrap();
    let mut o = KafkaImportOptions::default();
    o.topic_overrides.insert("events".into(), compacted());
    let e = c.import_kafka_with(&kafka, &["events"], &o).unwrap_err();
    assert_kafka_log_dir(e, "not a whole, valid log");
    assert!(c.topics().is_empty());
}

#[test]
fn a_fully_deleted_partition_exports_one_empty_segment_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), options()).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let p = t.partition(0).unwrap();
    append_random_batches(&p, 40, 5);
    let end = p.end_offset();
    p.delete_records(end).unwrap();
    store.maintain().unwrap();

    let kafka = dir.path().join("kafka");
    let r = store.export_kafka(&kafka, &[]).unwrap();
    let e = &r.partitions[&("t".to_string(), 0)];
    assert_eq!((e.start_offset, e.end_offset, e.segments), (end, end, 1));
    let only = logs(&kafka.join("t-0"));
    assert_eq!(only.len(), 1);
    assert_eq!(
        only[0].file_name().unwrap().to_str().unwrap(),
        format!("{end:020}.log")
    );
    assert_eq!(std::fs::metadata(&only[0]).unwrap().len(), 0);
    assert_eq!(read(&kafka.join("t-0/leader-epoch-checkpoint")), "0\n0\n");

    let b = Store::open_with(dir.path().join("b"), options()).unwrap();
    b.import_kafka(&kafka, &[]).unwrap();
    let t = b.topic("t").unwrap();
    let q = t.partition(0).unwrap();
    assert_eq!((q.start_offset(), q.end_offset()), (end, end));
    assert_eq!(t.send_to(0, Record::new("next")).unwrap().offset, end);
}

#[test]
fn a_partition_exports_on_its_own_and_never_over_an_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open_with(dir.path().join("log"), options().log).unwrap();
    append_random_batches(&log, 30, 9);
    let want = record_views(&log, 0);
    let out = dir.path().join("kafka/orders-0");
    let options = KafkaPartitionExportOptions {
        topic_id: Some("ZQBwcd-yS6qDzYI30Q41dA".parse().unwrap()),
        ..KafkaPartitionExportOptions::default()
    };
    let r = log.export_kafka_with(&out, &options).unwrap();
    assert_eq!((r.start_offset, r.end_offset), (0, log.end_offset()));
    assert!(read(&out.join("partition.metadata")).ends_with("ZQBwcd-yS6qDzYI30Q41dA"));

    // Exists already: refused, and what is there stays.
    let e = log.export_kafka(&out).unwrap_err();
    assert_eq!(
        e.io_error().unwrap().kind(),
        std::io::ErrorKind::AlreadyExists
    );
    assert!(out.join("partition.metadata").exists());

    // A store export refuses too, before writing anything.
    let store = Store::open_with(dir.path().join("store"), self::options()).unwrap();
    store
        .create_topic("orders", TopicConfig::with_partitions(2))
        .unwrap();
    let e = store
        .export_kafka(dir.path().join("kafka"), &[])
        .unwrap_err();
    assert_eq!(
        e.io_error().unwrap().kind(),
        std::io::ErrorKind::AlreadyExists
    );
    assert!(!dir.path().join("kafka/orders-1").exists());
    assert!(!dir
        .path()
        .join("kafka/recovery-point-offset-checkpoint")
        .exists());
    // A topic id for a topic not exported is a mistake, said at once.
    let mut o = KafkaExportOptions::default();
    o.topic_ids
        .insert("ordrs".into(), "ZQBwcd-yS6qDzYI30Q41dA".parse().unwrap());
    let e = store
        .export_kafka_with(dir.path().join("k2"), &["orders"], &o)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidConfig {
                field: "topic_ids",
                ..
            }
        ),
        "{e}"
    );

    // The standalone partition's export imports like any Kafka partition.
    let b = Store::open_with(dir.path().join("b"), self::options()).unwrap();
    b.import_kafka(dir.path().join("kafka"), &["orders"])
        .unwrap();
    let p = b.topic("orders").unwrap().partition(0).unwrap();
    assert_eq!(record_views(&p, 0), want);
    let _ = Topic::name; // (the topic handle is all a caller needs)
}

#[test]
fn group_offsets_export_as_the_csv_kafka_consumer_groups_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("store"), options()).unwrap();
    store
        .create_topic("orders", TopicConfig::with_partitions(3))
        .unwrap();
    store
        .create_topic("refunds", TopicConfig::with_partitions(1))
        .unwrap();
    let consumer = store.consumer(ConsumerConfig::group("billing")).unwrap();
    consumer
        .commit(&[
            (TopicPartition::new("orders", 0), OffsetAndMetadata::new(12)),
            (TopicPartition::new("orders", 2), OffsetAndMetadata::new(3)),
            (TopicPartition::new("refunds", 0), OffsetAndMetadata::new(0)),
        ])
        .unwrap();
    let csv = dir.path().join("billing.csv");
    assert_eq!(store.export_group_offsets(&csv, "billing").unwrap(), 3);
    assert_eq!(read(&csv), "orders,0,12\norders,2,3\nrefunds,0,0\n");
    assert_eq!(store.export_group_offsets(&csv, "nobody").unwrap(), 0);
    assert_eq!(read(&csv), "");
}

#[test]
fn exports_and_imports_go_through_the_stores_file_system() {
    // On a simulated file system that links: the export and import leave nothing unsynced, so
    // a power cut right after them loses nothing.
    let fs = Arc::new(topiclog::fs::SimFs::new(11));
    let root = Path::new("/sim");
    let a = Store::open_with_env(root.join("a"), options(), env(fs.clone())).unwrap();
    fill(&a);
    let before = snapshot(&a);
    a.export_kafka(root.join("kafka"), &[]).unwrap();
    let b = Store::open_with_env(root.join("b"), options(), env(fs.clone())).unwrap();
    b.import_kafka_with(root.join("kafka"), &[], &import_options())
        .unwrap();
    let kafka_files: Vec<String> = fs.read_dir(&root.join("kafka")).unwrap();
    drop((a, b));
    fs.crash(topiclog::fs::CrashMode::LoseUnsynced);
    assert_eq!(fs.read_dir(&root.join("kafka")).unwrap(), kafka_files);
    let b = Store::open_with_env(root.join("b"), options(), env(fs.clone())).unwrap();
    assert_eq!(snapshot(&b), before);
    let _ = (StdFs, OpenMode::Read);
}

#[test]
fn an_import_rebuilds_idempotent_producer_state_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open_with(dir.path().join("a"), options()).unwrap();
    let t = a
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let p = t.partition(0).unwrap();
    append_random_batches(&p, 40, 13);
    let batch = [Record::new("once").with_key("k"), Record::new("twice?")];
    let producer = topiclog::ProducerBatch {
        producer_id: 900,
        epoch: 2,
        base_sequence: 0,
    };
    let first = p
        .append_idempotent(&batch, producer, Durability::None)
        .unwrap();
    append_random_batches(&p, 5, 14);
    let kafka = dir.path().join("kafka");
    a.export_kafka(&kafka, &[]).unwrap();

    let b = Store::open_with(dir.path().join("b"), options()).unwrap();
    b.import_kafka(&kafka, &[]).unwrap();
    let q = b.topic("t").unwrap().partition(0).unwrap();
    // The producer's retry after the move is recognised, as Kafka's rebuilt state would.
    let retry = q
        .append_idempotent(&batch, producer, Durability::None)
        .unwrap();
    assert!(retry.duplicate, "{retry:?}");
    assert_eq!(retry.base_offset, first.base_offset);
    // And ids the store hands out stay clear of the imported producer's.
    let producer = b.producer(topiclog::ProducerConfig::default()).unwrap();
    let sent = producer
        .send("t", Record::new("new"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(sent.offset, q.end_offset() - 1);
    assert!(q
        .append_idempotent(
            &[Record::new("next")],
            topiclog::ProducerBatch {
                producer_id: 900,
                epoch: 2,
                base_sequence: 2,
            },
            Durability::None,
        )
        .is_ok_and(|i| !i.duplicate));
}

/// The batches of the `.log` at `path`: (position, length, base offset, last offset), read from
/// Kafka's header layout (base offset at 0, length at 8, last offset delta at 23, big-endian).
fn batch_spans(path: &Path) -> Vec<(usize, usize, u64, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 61 <= bytes.len() {
        let base = u64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = 12 + u32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let delta = u32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().unwrap());
        out.push((pos, len, base, base + u64::from(delta)));
        pos += len;
    }
    out
}

#[test]
fn import_takes_kafka_written_batches_with_leader_epochs_and_compaction_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (a, kafka) = exported_store(dir.path());
    let p0 = a.topic("events").unwrap().partition(0).unwrap();
    let mut want = record_views(&p0, 0);
    let logs0 = logs(&kafka.join("events-0"));
    assert!(logs0.len() >= 3);

    // As Kafka's cleaner leaves a segment: its first batch and one in the middle dropped.
    let first = &logs0[0];
    let spans = batch_spans(first);
    assert!(spans.len() >= 4);
    let bytes = std::fs::read(first).unwrap();
    let dropped = [spans[0], spans[2]];
    let kept: Vec<u8> = spans
        .iter()
        .filter(|s| !dropped.contains(s))
        .flat_map(|&(pos, len, _, _)| bytes[pos..pos + len].to_vec())
        .collect();
    let kept_len = kept.len();
    std::fs::write(first, kept).unwrap();
    want.retain(|r| {
        !dropped
            .iter()
            .any(|&(_, _, b, l)| (b..=l).contains(&r.offset))
    });
    // As leaders changed while the next segment and the last were written: epochs 3 and 7
    // (outside Kafka's CRC, so the batches still verify).
    for (path, epoch) in [(&logs0[1], 3i32), (logs0.last().unwrap(), 7)] {
        let mut bytes = std::fs::read(path).unwrap();
        for (pos, _, _, _) in batch_spans(path) {
            bytes[pos + 12..pos + 16].copy_from_slice(&epoch.to_be_bytes());
        }
        std::fs::write(path, bytes).unwrap();
    }

    let b = Store::open_with(dir.path().join("b"), options()).unwrap();
    let r = import_events_compacted(&b, &kafka);
    let i = &r.partitions[&("events".to_string(), 0)];
    // Kafka's bytes are kept as they are: every sealed segment linked, the last copied.
    assert_eq!(i.hard_linked, logs0.len() - 1);
    assert_eq!(std::fs::read(first).unwrap().len(), kept_len);
    let p = b.topic("events").unwrap().partition(0).unwrap();
    assert_eq!(record_views(&p, 0), want);
    for &(_, _, base, last) in &dropped {
        let next = p.read(base, 1).unwrap();
        assert_eq!(next.records().next().unwrap().offset(), last + 1);
    }
    b.close().unwrap();
    let b = Store::open_with(dir.path().join("b"), options()).unwrap();
    let p = b.topic("events").unwrap().partition(0).unwrap();
    assert_eq!(record_views(&p, 0), want);
    // Exported again, the leader epochs are Kafka's, from the batches.
    let again = dir.path().join("again");
    b.export_kafka(&again, &["events"]).unwrap();
    let first_base = |path: &Path| batch_spans(path)[0].2;
    assert_eq!(
        read(&again.join("events-0/leader-epoch-checkpoint")),
        format!(
            "0\n3\n0 {}\n3 {}\n7 {}\n",
            spans[1].2,
            first_base(&logs0[1]),
            first_base(logs0.last().unwrap())
        )
    );
    // From the end on the log is topiclog's: appends go on, in epoch 0.
    let end = p.end_offset();
    let t = b.topic("events").unwrap();
    // (A compacted topic takes keyed records only.)
    let after = Record::new("after").with_key("k");
    assert_eq!(t.send_to(0, after).unwrap().offset, end);
    b.close().unwrap();
    let b = Store::open_with(dir.path().join("b"), options()).unwrap();
    let p = b.topic("events").unwrap().partition(0).unwrap();
    assert_eq!(p.end_offset(), end + 1);
    assert_eq!(record_views(&p, 0)[..want.len()], want[..]);
}
