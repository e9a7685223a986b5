//! A retention pass cut by a power loss at every mutating operation it makes: `delete_records`
//! followed by `apply_retention` deleting several segments, on `SimFs`, with the power cut after
//! `n` operations for every `n` from 0 to the number a clean run makes, then a crash (both losing
//! every unsynced byte and tearing writes). The reopen must succeed; every segment is whole or
//! gone, so the log reads back exactly the records from its (old or new) start offset to the end;
//! no index file outlives its `.log`, no whole segment below the start survives the open; and a
//! retention pass run again afterwards finishes the job.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::crash_without_close;
use topiclog::fs::{CrashMode, FileSystem, SimFs};
use topiclog::segment::{parse_segment_file_name, SegmentFileKind};
use topiclog::{
    Deadline, Durability, Env, Error, Limit, LogConfig, ManualClock, Partition, Record, Retention,
    RetentionPolicy,
};

const NOW: i64 = 1_700_000_000_000;
const OLD: i64 = NOW - 2 * 3_600_000;
const RECORDS: u64 = 30;
/// Records below this are stamped `OLD`, the rest `NOW`.
const FIRST_NEW: u64 = 20;
const DIR: &str = "/data/p0";

/// `fs` on the fixed clock `NOW`.
fn sim_env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(NOW)),
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        index_interval_bytes: 100,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn value(offset: u64) -> Vec<u8> {
    let mut v = format!("record-{offset}:").into_bytes();
    v.resize(130, b'0' + (offset % 10) as u8);
    v
}

/// A durable log of `RECORDS` one-record batches, five to a segment; read through real maps
/// ([`SimFs::with_mapped_reads`], the read path `StdFs` takes) or through copies.
fn setup(seed: u64, mapped_reads: bool) -> SimFs {
    let fs = SimFs::new(seed);
    let fs = if mapped_reads {
        fs.with_mapped_reads()
    } else {
        fs
    };
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    for o in 0..RECORDS {
        let ts = if o < FIRST_NEW { OLD } else { NOW };
        assert_eq!(
            log.append(Record::new(value(o)).with_timestamp(ts))
                .unwrap(),
            o
        );
    }
    log.flush().unwrap();
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(
        bases,
        vec![0, 5, 10, 15, 20, 25],
        "five records per segment"
    );
    // Close cleanly so every scenario starts from the same files, indexes included.
    log.close().unwrap();
    fs
}

/// One retention scenario: what `delete_records` gets, the policy, and the start offset a clean
/// run ends with.
struct Scenario {
    delete_before: u64,
    policy: RetentionPolicy,
    final_start: u64,
    final_bases: Vec<u64>,
}

/// Run the pass; errors (from the power cut) are expected and ignored.
fn pass(log: &Partition, s: &Scenario) {
    let _ = log.delete_records(s.delete_before);
    let _ = log.apply_retention(NOW, &s.policy);
}

fn segment_files(fs: &SimFs, dir: &Path) -> Vec<(u64, SegmentFileKind)> {
    let mut out: Vec<_> = fs
        .read_dir(dir)
        .unwrap()
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    out.sort_unstable_by_key(|(b, k)| (*b, *k as u8));
    out
}

/// Everything a reopened log must satisfy after an interrupted pass.
fn check_reopened(fs: &SimFs, s: &Scenario, what: &str) -> Partition {
    let log = Partition::open_with_env(DIR, config(), sim_env(fs))
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let start = log.start_offset();
    let end = log.end_offset();
    assert_eq!(end, RECORDS, "{what}: durable records lost");
    assert!(
        [0, s.delete_before, s.final_start].contains(&start),
        "{what}: start offset {start} is neither the old nor a new one"
    );

    // Segments: contiguous, the first holds the start offset, none lies wholly below it.
    let segments = log.segments();
    let bases: Vec<u64> = segments.iter().map(|s| s.base_offset()).collect();
    assert!(
        bases[0] <= start,
        "{what}: first segment {bases:?} starts after {start}"
    );
    if let Some(&second) = bases.get(1) {
        assert!(
            second > start,
            "{what}: a whole segment below the start {start} survived the open: {bases:?}"
        );
    }

    // Files: every index has its log; the logs are exactly the segments.
    let files = segment_files(fs, Path::new(DIR));
    let logs: Vec<u64> = files
        .iter()
        .filter(|(_, k)| *k == SegmentFileKind::Log)
        .map(|(b, _)| *b)
        .collect();
    assert_eq!(logs, bases, "{what}: .log files vs segments");
    for (b, k) in &files {
        assert!(
            logs.contains(b),
            "{what}: orphan {k:?} file for base {b} without its .log"
        );
    }

    // Reads: exactly the model's records from the start, dense and correct.
    let mut next = start;
    while next < end {
        let read = log
            .read(next, 1 << 20)
            .unwrap_or_else(|e| panic!("{what}: read({next}) failed: {e}"));
        assert!(!read.is_empty(), "{what}: nothing at {next}");
        for r in read.records() {
            assert_eq!(r.offset(), next, "{what}: offsets must be dense");
            assert_eq!(
                r.value().unwrap().as_ref(),
                value(next).as_slice(),
                "{what}"
            );
            next += 1;
        }
    }
    assert_eq!(next, RECORDS, "{what}");
    if start > 0 {
        assert!(
            matches!(
                log.read(start - 1, 100),
                Err(Error::OffsetOutOfRange { .. })
            ),
            "{what}: a read below the start must fail"
        );
    }
    log
}

fn cut_at_every_operation(s: &Scenario, seed: u64) {
    // A clean run: count its mutating operations and check where it ends.
    let fs = setup(seed, false);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    let before = fs.mutating_ops();
    pass(&log, s);
    let ops = fs.mutating_ops() - before;
    assert!(ops >= 5, "the pass makes {ops} mutating operations");
    assert_eq!(log.start_offset(), s.final_start);
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, s.final_bases, "clean run");
    drop(log);

    for n in 0..=ops {
        for (m, mode) in [CrashMode::LoseUnsynced, CrashMode::Torn]
            .into_iter()
            .enumerate()
        {
            let what = format!("cut after {n} of {ops} ops, {mode:?}");
            // Both read paths, alternating with the cut.
            let fs = setup(seed ^ (n << 8) ^ m as u64, n % 2 == 0);
            let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
            fs.power_cut_after(n);
            pass(&log, s);
            crash_without_close(log);
            fs.crash(mode);

            let log = check_reopened(&fs, s, &what);
            // Running the pass again finishes the job.
            pass(&log, s);
            assert_eq!(log.start_offset(), s.final_start, "{what}: rerun");
            let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
            assert_eq!(bases, s.final_bases, "{what}: rerun");
            log.close().unwrap();
            drop(log);
            let log = check_reopened(&fs, s, &format!("{what}, rerun and reopened"));
            assert_eq!(log.start_offset(), s.final_start, "{what}");
            assert_eq!(
                log.append(Record::new(value(RECORDS)).with_timestamp(NOW))
                    .unwrap(),
                RECORDS,
                "{what}: appends go on at the end"
            );
        }
    }
}

/// `delete_records(12)`, then time retention: the segments at 0, 5, 10 and 15 hold only old records
/// and go (the first also lies below the start); the one at 20 is fresh and stops the pass.
#[test]
fn time_retention_after_delete_records_cut_at_every_operation() {
    cut_at_every_operation(
        &Scenario {
            delete_before: 12,
            policy: RetentionPolicy {
                retention: Retention::After(Duration::from_secs(3600)),
                retention_bytes: Limit::Unlimited,
            },
            final_start: 20,
            final_bases: vec![20, 25],
        },
        1,
    );
}

/// `delete_records(7)`, then a size limit of zero: every segment goes, the active one too, so the
/// pass rolls a new empty segment at the end first.
#[test]
fn retention_of_every_segment_cut_at_every_operation() {
    cut_at_every_operation(
        &Scenario {
            delete_before: 7,
            policy: RetentionPolicy {
                retention: Retention::Forever,
                retention_bytes: Limit::Bytes(0),
            },
            final_start: RECORDS,
            final_bases: vec![RECORDS],
        },
        2,
    );
}

/// Only `delete_records` moves the start (to the end offset) and retention with no limits then
/// drops everything below it.
#[test]
fn start_offset_retention_to_the_end_cut_at_every_operation() {
    cut_at_every_operation(
        &Scenario {
            delete_before: RECORDS,
            policy: RetentionPolicy::default(),
            final_start: RECORDS,
            final_bases: vec![RECORDS],
        },
        3,
    );
}
