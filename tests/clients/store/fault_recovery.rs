//! A full disk or a failed fsync is survivable without restarting the process: the failing
//! partition latches (`Error::Poisoned`, listed by `Store::poisoned_partitions`), every other one
//! goes on, and once the cause is gone `Store::recover_partition` brings it back in place, with the
//! handles producers and consumers already hold.
//!
//! On the simulated file system a scenario (appends with `Durability::Always` that roll segments,
//! `delete_records` and a retention pass that deletes segments, then one that deletes every
//! segment (so the active one rolls), appends to a compacted topic and a compaction pass,
//! consumer commits) runs once per mutating operation with a fault there, each trial both with
//! plain reads and with `SimFs::with_mapped_reads` (the read path `StdFs` uses):
//! - ENOSPC (`StorageFull`) from that operation on, for every kind of operation (a write, a file
//!   creation, a rename, a size change, a sync: each write site of an append, a roll, a retention
//!   pass, a compaction swap and a commit), until "space comes back";
//! - EIO on that one fsync, or that one directory fsync (never retried), on a file system where a
//!   failed fsync drops the file's unsynced data (`SimFs::with_lossy_failed_syncs`, as Linux may),
//!   so code that retried an fsync and trusted it would lose acknowledged records here.
//!
//! Each test counts the trials whose fault actually fired, not only those that ran.
//!
//! Then the fault clears, every poisoned partition is recovered, and: every acknowledged record is
//! there, at its offset, exactly once; no record whose append failed is there; retrying the failed
//! appends stores each exactly once; the group's committed offset is its last acknowledged commit;
//! offsets stay dense from the log start, which is where the acknowledged `delete_records` put it
//! (or where one whose result was an error was asked to); the compacted topic holds each value at
//! most once, at increasing offsets, keeps every acknowledged record unless a newer one of its key
//! follows, and ends with its newest record; and after a power cut and a reopen all of that still
//! holds.

use crate::common;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{CrashMode, Fault, FaultOp, SimFs};
use topiclog::{
    AutoOffsetReset, CleanupPolicy, ConsumerConfig, Durability, Env, Error, LogConfig,
    LogOverrides, OffsetAndMetadata, Partition, Record, Retention, RetentionPolicy, Store,
    StoreOptions, TopicConfig, TopicPartition,
};

const DIR: &str = "/store";
const EVENTS: &str = "events";
const LATEST: &str = "latest";

fn env(fs: &SimFs) -> Env {
    Env::with_fs(Arc::new(fs.clone()))
}

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            durability: Durability::Always,
            segment_bytes: 1024,
            preallocate: false,
            retention: Retention::Forever,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

/// The store before the scenario: both topics created, nothing written.
fn base_image() -> SimFs {
    let fs = SimFs::new(11);
    let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
    store
        .create_topic(EVENTS, TopicConfig::with_partitions(1))
        .unwrap();
    store
        .create_topic(
            LATEST,
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    cleanup_policy: Some(CleanupPolicy::Compact),
                    ..LogOverrides::default()
                },
            },
        )
        .unwrap();
    store.close().unwrap();
    fs
}

/// A copy of `src` to run one trial on.
fn copy(src: &SimFs) -> SimFs {
    common::copy_sim_tree(src, Path::new(DIR), 0)
}

/// What the scenario saw: which appends were acknowledged where, which failed.
#[derive(Debug, Default)]
struct Outcome {
    /// `events` records acknowledged: offset -> value.
    acked: BTreeMap<u64, String>,
    /// `events` values whose append failed.
    failed: Vec<String>,
    /// `latest` key -> the value of its last acknowledged append.
    latest: BTreeMap<String, String>,
    /// `latest` appends that failed: (key, value).
    latest_failed: Vec<(String, String)>,
    /// The largest start offset `delete_records` acknowledged.
    deleted_before: u64,
    /// The largest start offset `delete_records` was asked for (acknowledged or not).
    delete_asked: u64,
    /// Segments the retention passes that succeeded deleted: (first pass, second pass).
    retention_deleted: (usize, usize),
    /// Segments of `events` before the first retention pass.
    segments_before_retention: usize,
    /// `latest` appends acknowledged: offset -> (key, value).
    latest_acked: BTreeMap<u64, (String, String)>,
    /// The last committed offset acknowledged.
    committed: Option<u64>,
}

fn event(i: u64) -> String {
    format!("event-{i:04}-{}", "e".repeat(40))
}

/// The scenario; errors are part of the outcome, never a panic.
fn scenario(store: &Store, out: &mut Outcome) {
    let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
    let latest = store.topic(LATEST).unwrap().partition(0).unwrap();
    let append = |p: &Partition, values: &[String]| -> Option<u64> {
        let records: Vec<Record> = values.iter().map(|v| Record::new(v.clone())).collect();
        p.append_batch(&records).ok().map(|info| info.base_offset)
    };
    let mut i = 0u64;
    let mut batch = |n: u64, out: &mut Outcome| {
        let values: Vec<String> = (i..i + n).map(event).collect();
        i += n;
        match append(&events, &values) {
            Some(base) => {
                for (k, v) in values.into_iter().enumerate() {
                    out.acked.insert(base + k as u64, v);
                }
            }
            None => out.failed.extend(values),
        }
    };
    for n in [1, 3, 2, 1, 4, 2, 1, 1, 3, 2, 2, 3, 1, 2] {
        batch(n, out);
    }
    out.segments_before_retention = events.segment_count();
    // Retention: the start moves to two thirds of the log, and the segments wholly below it go.
    let delete = |cut: u64, out: &mut Outcome| {
        out.delete_asked = out.delete_asked.max(cut);
        if events.delete_records(cut).is_ok() {
            out.deleted_before = out.deleted_before.max(cut);
        }
        events
            .apply_retention(0, &RetentionPolicy::default())
            .map_or(0, |r| r.segments_deleted)
    };
    out.retention_deleted.0 = delete(events.end_offset() * 2 / 3, out);
    for n in [2, 1, 3] {
        batch(n, out);
    }
    // Then every record: every segment goes, the active one included (a roll).
    out.retention_deleted.1 = delete(events.end_offset(), out);
    for n in [1, 2] {
        batch(n, out);
    }
    // A compacted topic: keys written over, then a pass.
    for round in 0..4 {
        for k in 0..3 {
            let key = format!("k{k}");
            let value = format!("{key}-v{round}-{}", "l".repeat(60));
            let record = Record::new(value.clone()).with_key(key.clone());
            match latest.append(record) {
                Ok(o) => {
                    out.latest_acked.insert(o, (key.clone(), value.clone()));
                    out.latest.insert(key, value);
                }
                Err(_) => out.latest_failed.push((key, value)),
            }
        }
    }
    let _ = store.maintain();
    // A consumer group commits twice.
    if let Ok(mut consumer) = store.consumer(ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest,
        enable_auto_commit: false,
        ..ConsumerConfig::group("g")
    }) {
        let tp = TopicPartition::new(EVENTS, 0);
        if consumer.assign(std::slice::from_ref(&tp)).is_ok() {
            for target in [events.end_offset() / 2, events.end_offset()] {
                let commit = [(tp.clone(), OffsetAndMetadata::new(target))];
                if consumer.commit(&commit).is_ok() {
                    out.committed = Some(target);
                }
            }
        }
    }
}

/// Every record of `p` from its start: offset -> value.
fn records(p: &Partition) -> BTreeMap<u64, String> {
    let mut out = BTreeMap::new();
    let mut next = p.start_offset();
    while next < p.end_offset() {
        let b = p.read(next, 1 << 20).unwrap();
        for r in b.records() {
            let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
            assert!(out.insert(r.offset(), v).is_none());
        }
        next = b.next_offset();
    }
    out
}

/// What must hold of the store after recovery (and after a power cut and reopen).
fn check(store: &Store, out: &Outcome, retried: &BTreeMap<String, u64>, what: &str) {
    let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
    let start = events.start_offset();
    assert!(
        start >= out.deleted_before,
        "{what}: the log start went back"
    );
    assert!(
        start <= out.delete_asked.max(out.deleted_before),
        "{what}: the log start {start} passed every delete_records ({})",
        out.delete_asked
    );
    let got = records(&events);
    // Dense from the start.
    let offsets: Vec<u64> = got.keys().copied().collect();
    let dense: Vec<u64> = (start..events.end_offset()).collect();
    assert_eq!(offsets, dense, "{what}: offsets are not dense");
    for (o, v) in out.acked.range(start..) {
        assert_eq!(
            got.get(o),
            Some(v),
            "{what}: acknowledged record {o} lost or changed"
        );
    }
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for v in got.values() {
        *count.entry(v.as_str()).or_default() += 1;
    }
    for (v, n) in &count {
        assert_eq!(*n, 1, "{what}: {v} is in the log {n} times");
    }
    for v in &out.failed {
        match retried.get(v) {
            Some(o) => assert_eq!(got.get(o), Some(v), "{what}: retried {v} lost"),
            None => assert!(
                !count.contains_key(v.as_str()),
                "{what}: failed {v} is visible"
            ),
        }
    }
    // The compacted topic: each key's newest value is its last acknowledged one (or a retry).
    let latest = store.topic(LATEST).unwrap().partition(0).unwrap();
    let mut newest: BTreeMap<String, String> = BTreeMap::new();
    let mut held: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let mut next = latest.start_offset();
    while next < latest.end_offset() {
        let b = latest.read(next, 1 << 20).unwrap();
        for r in b.records() {
            let k = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
            let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
            newest.insert(k.clone(), v.clone());
            assert!(
                held.insert(r.offset(), (k, v)).is_none(),
                "{what}: compacted offset {} read twice",
                r.offset()
            );
        }
        next = b.next_offset();
    }
    // Increasing offsets within [start, end), ending with the newest record (compaction never
    // removes the last one), each value at most once.
    if let (Some((&first, _)), Some((&last, _))) = (held.first_key_value(), held.last_key_value()) {
        assert!(first >= latest.start_offset(), "{what}");
        assert_eq!(last + 1, latest.end_offset(), "{what}: compacted log's end");
    }
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for (o, (_, v)) in &held {
        if let Some(before) = seen.insert(v.as_str(), *o) {
            panic!("{what}: compacted value {v} at {before} and {o}");
        }
    }
    // An acknowledged record is there, unless compaction removed it for a newer one of its key.
    for (o, (k, v)) in &out.latest_acked {
        match held.get(o) {
            Some(found) => assert_eq!(found, &(k.clone(), v.clone()), "{what}: compacted {o}"),
            None => assert!(
                held.range(o + 1..).any(|(_, (nk, _))| nk == k),
                "{what}: acknowledged {k}={v} at {o} is gone with no newer value of {k}"
            ),
        }
    }
    for (k, v) in &out.latest {
        let failed_later = out.latest_failed.iter().any(|(fk, _)| fk == k);
        if !failed_later {
            assert_eq!(newest.get(k), Some(v), "{what}: {k}'s latest value");
        }
    }
    // The group's commit.
    let committed = store
        .group_lag("g")
        .unwrap()
        .into_iter()
        .find_map(|l| l.committed.map(|c| c.offset));
    assert_eq!(committed, out.committed, "{what}: committed offset");
}

/// How a trial's file system reads and what its failed syncs do.
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// `SimFs::with_mapped_reads`.
    mapped: bool,
    /// `SimFs::with_lossy_failed_syncs`.
    lossy: bool,
}

/// What a set of trials did.
#[derive(Debug, Default)]
struct Tally {
    trials: usize,
    /// Trials whose fault fired.
    fired: usize,
    /// Partitions recovered in place.
    recovered: usize,
}

impl Tally {
    fn add(&mut self, (recovered, fired): (usize, bool)) {
        self.trials += 1;
        self.fired += usize::from(fired);
        self.recovered += recovered;
    }
}

/// Runs one trial; returns how many partitions it had to recover and whether the fault fired.
fn trial(base: &SimFs, fault: Fault, mode: Mode, what: &str) -> (usize, bool) {
    let mut fs = copy(base);
    if mode.mapped {
        fs = fs.with_mapped_reads();
    }
    if mode.lossy {
        fs = fs.with_lossy_failed_syncs();
    }
    let what = &format!("{what} ({mode:?})");
    let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
    fs.inject(fault);
    let mut out = Outcome::default();
    scenario(&store, &mut out);
    let fired = fs.faults_fired() > 0;
    if !fired {
        assert!(
            out.failed.is_empty() && out.latest_failed.is_empty(),
            "{what}"
        );
        assert!(store.poisoned_partitions().is_empty(), "{what}");
    }
    // The cause goes away (space was freed, the device answers); the latched partitions are
    // listed, and come back in place.
    fs.clear_faults();
    let poisoned = store.poisoned_partitions();
    for p in &poisoned {
        assert!(
            matches!(p.cause, Error::Io { .. } | Error::Corrupt { .. }),
            "{what}: {:?}",
            p.cause
        );
        let report = store
            .recover_partition(&p.topic, p.partition)
            .unwrap_or_else(|e| panic!("{what}: recover {}-{}: {e}", p.topic, p.partition));
        if report.offsets_dropped > 0 {
            // The store lists what an in-place recovery cut, and reports it as a failure.
            assert!(
                store.recovery_reports().iter().any(|r| r.topic == p.topic
                    && r.partition == p.partition
                    && r.report == report),
                "{what}"
            );
            assert!(
                matches!(
                    store.last_maintenance_error(),
                    Some(Error::Maintenance { task: topiclog::MaintenanceTask::Recovery, ref topic, partition, ref cause })
                        if *topic == p.topic && partition == p.partition
                            && matches!(**cause, Error::RecoveryCut { report: r, .. } if r == report)
                ),
                "{what}: {:?}",
                store.last_maintenance_error()
            );
        }
    }
    assert!(store.poisoned_partitions().is_empty(), "{what}");
    // The same handles write again: retry what failed.
    let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
    let mut retried = BTreeMap::new();
    for v in &out.failed {
        let o = events
            .append(Record::new(v.clone()))
            .unwrap_or_else(|e| panic!("{what}: retry after recovery: {e}"));
        retried.insert(v.clone(), o);
    }
    let latest = store.topic(LATEST).unwrap().partition(0).unwrap();
    for (k, v) in &out.latest_failed {
        latest
            .append(Record::new(v.clone()).with_key(k.clone()))
            .unwrap();
        out.latest.insert(k.clone(), v.clone());
    }
    out.latest_failed.clear();
    check(&store, &out, &retried, what);
    // Everything acknowledged was durable: a power cut now loses nothing.
    fs.crash(CrashMode::LoseUnsynced);
    store.abandon();
    drop(store);
    let store = Store::open_with_env(DIR, options(), env(&fs))
        .unwrap_or_else(|e| panic!("{what}: reopen after a power cut: {e}"));
    check(
        &store,
        &out,
        &retried,
        &format!("{what}, after a power cut"),
    );
    store.close().unwrap();
    (poisoned.len(), fired)
}

/// Mutating operations of a fault-free scenario.
fn scenario_ops(base: &SimFs) -> u64 {
    let fs = copy(base);
    let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
    let before = fs.mutating_ops();
    let mut out = Outcome::default();
    scenario(&store, &mut out);
    assert!(out.failed.is_empty() && out.committed.is_some());
    assert!(out.segments_before_retention > 2, "{out:?}");
    // The retention passes delete segments (their files and indexes, then a directory sync),
    // the second one every segment, so the active one rolls.
    let (first, second) = out.retention_deleted;
    assert!(
        first >= 1,
        "the first retention pass deleted no segment: {out:?}"
    );
    assert!(
        second >= 1,
        "the second retention pass deleted no segment: {out:?}"
    );
    let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
    assert_eq!(events.start_offset(), out.deleted_before);
    assert_eq!(events.segments()[0].base_offset(), out.deleted_before);
    check(&store, &out, &BTreeMap::new(), "fault-free");
    fs.mutating_ops() - before
}

const MODES: [Mode; 2] = [
    Mode {
        mapped: false,
        lossy: false,
    },
    Mode {
        mapped: true,
        lossy: false,
    },
];

const LOSSY_MODES: [Mode; 2] = [
    Mode {
        mapped: false,
        lossy: true,
    },
    Mode {
        mapped: true,
        lossy: true,
    },
];

#[test]
fn a_full_disk_at_every_operation_is_recovered_in_place() {
    let base = base_image();
    let ops = scenario_ops(&base);
    for mode in MODES {
        let mut tally = Tally::default();
        for n in 0..ops {
            let fault = Fault {
                kind: io::ErrorKind::StorageFull,
                sticky: true,
                ..Fault::new(FaultOp::Any, n)
            };
            tally.add(trial(
                &base,
                fault,
                mode,
                &format!("ENOSPC from operation {n} of {ops}"),
            ));
        }
        eprintln!("ENOSPC, {mode:?}: {tally:?}");
        // Every operation of the scenario is a mutating one the fault can hit.
        assert_eq!(tally.fired, tally.trials, "{mode:?}: {tally:?}");
        assert!(
            tally.recovered >= ops as usize / 2,
            "most trials poisoned a partition: {tally:?}"
        );
    }
}

/// EIO on the `n`th operation of kind `op`, for every `n` until the scenario has fewer such
/// operations (ten trials in a row whose fault never fired).
fn every_failed_sync(op: FaultOp, modes: [Mode; 2]) -> Vec<Tally> {
    let base = base_image();
    let ops = scenario_ops(&base);
    let mut tallies = Vec::new();
    for mode in modes {
        let mut tally = Tally::default();
        let mut idle = 0;
        for n in 0..ops {
            let fault = Fault {
                kind: io::ErrorKind::Other,
                sticky: false,
                ..Fault::new(op, n)
            };
            let (recovered, fired) = trial(&base, fault, mode, &format!("EIO on {op:?} {n}"));
            tally.add((recovered, fired));
            idle = if fired { 0 } else { idle + 1 };
            if idle == 10 {
                break;
            }
        }
        eprintln!("EIO on {op:?}, {mode:?}: {tally:?}");
        tallies.push(tally);
    }
    tallies
}

#[test]
fn a_failed_fsync_at_every_sync_is_recovered_in_place() {
    for tally in every_failed_sync(FaultOp::Sync, LOSSY_MODES) {
        // The scenario syncs often: data, indexes, metadata files of both topics and the
        // offsets topic.
        assert!(tally.fired > 40, "{tally:?}");
        assert!(tally.recovered > 20, "{tally:?}");
    }
}

#[test]
fn a_failed_directory_fsync_at_every_sync_is_recovered_in_place() {
    for tally in every_failed_sync(FaultOp::SyncDir, LOSSY_MODES) {
        // Rolls, retention's deletions, metadata replaces and compaction swaps sync the
        // directory.
        assert!(tally.fired > 10, "{tally:?}");
        assert!(tally.recovered > 5, "{tally:?}");
    }
}

#[test]
fn other_partitions_go_on_while_one_is_poisoned() {
    let base = base_image();
    let fs = copy(&base);
    let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
    let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
    let latest = store.topic(LATEST).unwrap().partition(0).unwrap();
    events.append(Record::new("before")).unwrap();
    fs.inject(Fault {
        path_contains: Some(format!("{EVENTS}/0/")),
        kind: io::ErrorKind::StorageFull,
        sticky: true,
        ..Fault::new(FaultOp::Any, 0)
    });
    assert!(events.append(Record::new("lost")).is_err());
    assert!(events.is_poisoned());
    assert!(matches!(
        events.append(Record::new("refused")),
        Err(Error::Poisoned { .. })
    ));
    // The other topic, reads of the poisoned one, and the status view all work meanwhile.
    latest.append(Record::new("v").with_key("k")).unwrap();
    assert_eq!(records(&events).len(), 1);
    let poisoned = store.poisoned_partitions();
    assert_eq!(poisoned.len(), 1);
    assert_eq!(
        (poisoned[0].topic.as_str(), poisoned[0].partition),
        (EVENTS, 0)
    );
    // Still full: recovery fails and can be repeated.
    assert!(store.recover_partition(EVENTS, 0).is_err() || !events.is_poisoned());
    fs.clear_faults();
    let report = store.recover_partition(EVENTS, 0).unwrap();
    assert!(!events.is_poisoned());
    assert_eq!(
        events.append(Record::new("after")).unwrap(),
        1,
        "{report:?}"
    );
    assert!(matches!(
        store.recover_partition("nope", 0),
        Err(Error::UnknownTopic { .. })
    ));
}

/// A producer whose partition latches gets a clear error for the sends that could not be stored,
/// and the same producer's later sends succeed once the partition is recovered.
#[test]
fn a_producer_resumes_after_recover_partition() {
    let base = base_image();
    let fs = copy(&base);
    let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
    let producer = store
        .producer(topiclog::ProducerConfig {
            acks: topiclog::Acks::Durable,
            linger: std::time::Duration::ZERO,
            ..topiclog::ProducerConfig::default()
        })
        .unwrap();
    let send = |v: &str| {
        producer
            .send(EVENTS, Record::new(v.to_owned()))
            .and_then(|h| h.wait())
    };
    assert_eq!(send("first").unwrap().offset, 0);
    fs.inject(Fault {
        path_contains: Some(format!("{EVENTS}/0/")),
        kind: io::ErrorKind::StorageFull,
        sticky: true,
        ..Fault::new(FaultOp::Any, 0)
    });
    let failed = send("while full").unwrap_err();
    assert!(
        matches!(failed, Error::Io { .. } | Error::Poisoned { .. }),
        "{failed:?}"
    );
    assert!(matches!(send("still full"), Err(Error::Poisoned { .. })));
    fs.clear_faults();
    let _ = store.recover_partition(EVENTS, 0).unwrap();
    let meta = send("after").unwrap();
    assert_eq!(meta.offset, 1, "the failed sends left nothing behind");
    let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
    let values: Vec<String> = records(&events).into_values().collect();
    assert_eq!(values, ["first", "after"]);
    producer.close().unwrap();
}

/// Reopening the store after a failed fsync is equivalent to `recover_partition`: the record
/// whose fsync failed is cut (the file still holds it), so a retry stores it once; and a power
/// cut afterwards keeps that.
#[test]
fn reopening_the_store_after_a_failed_fsync_cuts_what_recover_partition_would() {
    for reopen in [true, false] {
        let base = base_image();
        let fs = copy(&base);
        let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
        let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
        events.append(Record::new("a")).unwrap();
        fs.inject(Fault {
            path_contains: Some(format!("{EVENTS}/0/")),
            ..Fault::new(FaultOp::Sync, 0)
        });
        assert!(events.append(Record::new("b")).is_err());
        assert!(events.is_poisoned());
        let store = if reopen {
            store.close().unwrap();
            let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
            let dropped: Vec<u64> = store
                .recovery_reports()
                .iter()
                .filter(|r| r.topic == EVENTS)
                .map(|r| r.report.offsets_dropped)
                .collect();
            assert_eq!(dropped, [1]);
            assert!(matches!(
                store.last_maintenance_error(),
                Some(Error::Maintenance {
                    task: topiclog::MaintenanceTask::Recovery,
                    ..
                })
            ));
            store
        } else {
            let report = store.recover_partition(EVENTS, 0).unwrap();
            assert_eq!(report.offsets_dropped, 1);
            assert!(matches!(
                store.last_maintenance_error(),
                Some(Error::Maintenance {
                    task: topiclog::MaintenanceTask::Recovery,
                    ..
                })
            ));
            store
        };
        let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
        assert_eq!(events.append(Record::new("b")).unwrap(), 1);
        let values: Vec<String> = records(&events).into_values().collect();
        assert_eq!(values, ["a", "b"], "reopen: {reopen}");
        fs.crash(CrashMode::LoseUnsynced);
        store.abandon();
        drop(store);
        let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
        let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
        let values: Vec<String> = records(&events).into_values().collect();
        assert_eq!(values, ["a", "b"], "reopen: {reopen}, after a power cut");
        store.close().unwrap();
    }
}

/// A consumer of a poisoned partition: reads of what the partition holds go on (`poll` returns
/// the records that were written, then nothing new, never an error), and its commits go on while
/// the offsets topic is healthy. When the offsets topic's partition is the poisoned one, the
/// consumer's commits get `Error::Poisoned` (after the one that failed) and the consumer's reads go
/// on. After `recover_partition`, the same consumer polls and commits again.
#[test]
fn the_same_consumer_polls_and_commits_across_recover_partition() {
    use std::time::Duration;
    let base = base_image();
    let fs = copy(&base);
    let store = Store::open_with_env(DIR, options(), env(&fs)).unwrap();
    let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
    for i in 0..3 {
        events.append(Record::new(format!("r{i}"))).unwrap();
    }
    let tp = TopicPartition::new(EVENTS, 0);
    let mut consumer = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            enable_auto_commit: false,
            ..ConsumerConfig::group("g")
        })
        .unwrap();
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    let poll_values = |c: &mut topiclog::Consumer| -> Vec<String> {
        let records = c
            .poll(Duration::ZERO)
            .expect("a poll never fails on a poisoned partition");
        records
            .iter()
            .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
            .collect()
    };
    let committed = |s: &Store| {
        s.group_lag("g")
            .unwrap()
            .into_iter()
            .find_map(|l| l.committed.map(|c| c.offset))
    };
    assert_eq!(poll_values(&mut consumer), ["r0", "r1", "r2"]);

    // 1. The data partition is poisoned.
    fs.inject(Fault {
        path_contains: Some(format!("{EVENTS}/0/")),
        kind: io::ErrorKind::StorageFull,
        sticky: true,
        ..Fault::new(FaultOp::Any, 0)
    });
    assert!(events.append(Record::new("lost")).is_err());
    assert!(events.is_poisoned());
    assert!(
        poll_values(&mut consumer).is_empty(),
        "nothing new, no error"
    );
    consumer.commit_sync().unwrap();
    assert_eq!(committed(&store), Some(3));
    fs.clear_faults();
    let _ = store.recover_partition(EVENTS, 0).unwrap();
    events.append(Record::new("r3")).unwrap();
    assert_eq!(poll_values(&mut consumer), ["r3"]);
    consumer.commit_sync().unwrap();
    assert_eq!(committed(&store), Some(4));

    // 2. The offsets topic's partition is poisoned: commits are refused, reads go on.
    fs.inject(Fault {
        path_contains: Some("__consumer_offsets/".into()),
        kind: io::ErrorKind::StorageFull,
        sticky: true,
        ..Fault::new(FaultOp::Any, 0)
    });
    events.append(Record::new("r4")).unwrap();
    assert_eq!(poll_values(&mut consumer), ["r4"]);
    let first = consumer.commit_sync().unwrap_err();
    assert!(
        matches!(first, Error::Io { .. } | Error::Poisoned { .. }),
        "{first:?}"
    );
    match consumer.commit_sync() {
        Err(Error::Poisoned { .. }) => {}
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert_eq!(committed(&store), Some(4));
    let poisoned = store.poisoned_partitions();
    assert_eq!(poisoned.len(), 1, "{poisoned:?}");
    assert_eq!(poisoned[0].topic, "__consumer_offsets");
    events.append(Record::new("r5")).unwrap();
    assert_eq!(poll_values(&mut consumer), ["r5"]);
    fs.clear_faults();
    let _ = store
        .recover_partition(&poisoned[0].topic, poisoned[0].partition)
        .unwrap();
    consumer.commit_sync().unwrap();
    assert_eq!(committed(&store), Some(6));
    events.append(Record::new("r6")).unwrap();
    assert_eq!(poll_values(&mut consumer), ["r6"]);
    consumer.commit_sync().unwrap();
    assert_eq!(committed(&store), Some(7));
    drop(consumer);
    store.close().unwrap();
}
