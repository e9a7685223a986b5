//! Retention with cleanup policy `delete`, ported from Kafka's `UnifiedLogTest` retention cases:
//! deleting every segment keeps the end offset (and the next append gets it); time-based retention
//! deletes only expired segments, oldest first, and stops at the first segment that must stay
//! (rolling the active segment away when it must go too); `delete_records` moves the start offset
//! at once and durably, and the next retention pass drops the whole segments below it; a second
//! pass deletes nothing more; size-based retention deletes the oldest segments while the rest still
//! hold at least `retention_bytes` (Kafka's rule).
//!
//! Every scenario runs on the real file system and on `SimFs`, with a `ManualClock` for append
//! times and explicit record timestamps.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{both_fs, crash_without_close};
use topiclog::fs::{CrashMode, FileSystem, SimFs, StdFs};
use topiclog::segment::{parse_segment_file_name, SegmentFileKind};
use topiclog::{
    Deadline, Durability, Env, Error, Limit, LogConfig, ManualClock, Partition, Record, Retention,
    RetentionPolicy,
};

const NOW: i64 = 1_700_000_000_000;
/// Value length that makes five one-record batches fill a segment of at least 1 KiB.
const SMALL: usize = 200;
/// Value length that gives every one-record batch a 1 KiB segment of its own.
const LARGE: usize = 700;

/// A value of exactly `len` bytes that names its offset.
fn value(offset: u64, len: usize) -> Vec<u8> {
    let mut v = format!("value-{offset:010}-").into_bytes();
    v.resize(len, b'.');
    v
}

/// The encoded size of a batch of one record with a `len`-byte value and no key.
fn batch_len(len: usize) -> u64 {
    let fs = SimFs::new(1);
    let log = Partition::open_with_env(
        "/scratch",
        LogConfig {
            preallocate: false,
            durability: Durability::None,
            ..LogConfig::default()
        },
        Env::with_fs(Arc::new(fs)),
    )
    .unwrap();
    log.append(Record::new(value(0, len)).with_timestamp(NOW))
        .unwrap();
    log.segments()[0].size()
}

fn env(fs: &Arc<dyn FileSystem>, clock: &ManualClock) -> Env {
    Env {
        fs: fs.clone(),
        clock: Arc::new(clock.clone()),
    }
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: Deadline::Never,
        index_interval_bytes: 256,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

/// A partition whose segments hold exactly five one-record batches of `SMALL` values.
fn five_per_segment(fs: &Arc<dyn FileSystem>, dir: &Path, clock: &ManualClock) -> Partition {
    Partition::open_with_env(dir, config(5 * batch_len(SMALL)), env(fs, clock)).unwrap()
}

/// Append `count` one-record batches with timestamp `ts`; returns their offsets.
fn append_n(log: &Partition, count: u64, len: usize, ts: i64) -> Vec<u64> {
    (0..count)
        .map(|_| {
            let next = log.end_offset();
            let offset = log
                .append(Record::new(value(next, len)).with_timestamp(ts))
                .unwrap();
            assert_eq!(offset, next);
            offset
        })
        .collect()
}

fn bases(log: &Partition) -> Vec<u64> {
    log.segments().iter().map(|s| s.base_offset()).collect()
}

/// Every record from the start offset to the end: offsets dense, values naming their offsets.
fn assert_readable(log: &Partition, len: usize) {
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let read = log.read(next, 1 << 20).unwrap();
        assert!(
            !read.is_empty(),
            "read at {next} found nothing below the end"
        );
        for r in read.records() {
            assert_eq!(r.offset(), next, "offsets must be dense");
            assert_eq!(r.value().unwrap().as_ref(), value(next, len).as_slice());
            next += 1;
        }
    }
    assert_eq!(next, log.end_offset());
}

fn assert_out_of_range(log: &Partition, offset: u64) {
    match log.read(offset, 1 << 20) {
        Err(Error::OffsetOutOfRange {
            requested,
            start,
            end,
        }) => {
            assert_eq!(requested, offset);
            assert_eq!(start, log.start_offset(), "error names the current start");
            assert_eq!(end, log.end_offset(), "error names the current end");
        }
        other => panic!(
            "read({offset}) below the start offset: expected OffsetOutOfRange, got {other:?}"
        ),
    }
}

/// The base offsets of the segment files of one kind in the partition directory.
fn file_bases(fs: &dyn FileSystem, dir: &Path, kind: SegmentFileKind) -> Vec<u64> {
    let mut out: Vec<u64> = fs
        .read_dir(dir)
        .unwrap()
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .filter(|(_, k)| *k == kind)
        .map(|(b, _)| b)
        .collect();
    out.sort_unstable();
    out
}

fn by_time(ms: u64) -> RetentionPolicy {
    RetentionPolicy {
        retention: Retention::After(Duration::from_millis(ms)),
        retention_bytes: Limit::Unlimited,
    }
}

fn by_size(bytes: u64) -> RetentionPolicy {
    RetentionPolicy {
        retention: Retention::Forever,
        retention_bytes: Limit::Bytes(bytes),
    }
}

/// Kafka: `testThatGarbageCollectingSegmentsDoesntChangeOffset`.
#[test]
fn deleting_every_segment_keeps_the_end_offset_for_the_next_append() {
    both_fs(|fs, dir| {
        for n in [0u64, 1, 25] {
            let clock = ManualClock::new(NOW);
            let dir = dir.join(format!("n{n}"));
            let log = Partition::open_with_env(&dir, config(1024), env(&fs, &clock)).unwrap();
            append_n(&log, n, LARGE, NOW - 10);
            assert_eq!(log.end_offset(), n);
            let segments_before = log.segment_count();
            assert_eq!(segments_before as u64, n.max(1), "one batch per segment");

            // Time goes by: every segment, the active one included, has expired.
            let report = log.apply_retention(NOW, &by_time(5)).unwrap();
            let deleted = if n == 0 { 0 } else { segments_before };
            assert_eq!(report.segments_deleted, deleted, "n={n}");
            assert_eq!(
                log.end_offset(),
                n,
                "deleting segments changed the end offset"
            );
            assert_eq!(log.segment_count(), 1, "one (empty) segment must remain");
            assert_eq!(log.start_offset(), n);
            assert_eq!(report.start_offset, n);
            assert_eq!(bases(&log), vec![n]);
            assert_eq!(
                file_bases(&*fs, &dir, SegmentFileKind::Log),
                vec![n],
                "the deleted segments' files are gone"
            );

            let again = log.apply_retention(NOW, &by_time(5)).unwrap();
            assert_eq!(
                again.segments_deleted, 0,
                "further collection deletes nothing"
            );
            assert_eq!(again.bytes_deleted, 0);
            assert_eq!(log.end_offset(), n, "still no change in the end offset");
            assert!(log.read(n, 100).unwrap().is_empty());
            if n > 0 {
                assert_out_of_range(&log, n - 1);
            }

            let next = log
                .append(Record::new(value(n, LARGE)).with_timestamp(NOW))
                .unwrap();
            assert_eq!(next, n, "the next append gets the old end offset");
            assert_readable(&log, LARGE);

            log.close().unwrap();
            let log = Partition::open_with_env(&dir, config(1024), env(&fs, &clock)).unwrap();
            assert_eq!(log.start_offset(), n);
            assert_eq!(log.end_offset(), n + 1);
            assert_readable(&log, LARGE);
        }
    });
}

/// Kafka: `testDeleteOldSegments`. Records stamped 1000 ms before now with a 999 ms retention: every
/// segment has expired, the full active one too, so the log rolls and keeps only an empty segment
/// at the end offset; appending then goes on from there.
#[test]
fn time_retention_deletes_every_expired_segment_and_rolls_the_active_one() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let l = batch_len(SMALL);
        let log = five_per_segment(&fs, dir, &clock);
        append_n(&log, 100, SMALL, NOW - 1000);
        assert_eq!(log.segment_count(), 20);
        assert_eq!(
            bases(&log),
            (0..20).map(|i| i * 5).collect::<Vec<_>>(),
            "five records per segment"
        );

        // Exactly at the retention boundary nothing is old enough yet.
        let early = log.apply_retention(NOW - 1, &by_time(999)).unwrap();
        assert_eq!(early.segments_deleted, 0);
        assert_eq!(log.segment_count(), 20);
        assert_eq!(log.start_offset(), 0);

        let report = log.apply_retention(NOW, &by_time(999)).unwrap();
        assert_eq!(report.segments_deleted, 20);
        assert_eq!(report.bytes_deleted, 100 * l);
        assert_eq!(report.start_offset, 100);
        assert_eq!(
            log.segment_count(),
            1,
            "the deleted segments should be gone"
        );
        assert_eq!(bases(&log), vec![100]);
        assert!(log.segments()[0].is_empty());
        assert_eq!(log.start_offset(), 100);
        assert_eq!(log.end_offset(), 100);
        assert_out_of_range(&log, 0);
        assert_out_of_range(&log, 99);
        assert_eq!(file_bases(&*fs, dir, SegmentFileKind::Log), vec![100]);
        for kind in [SegmentFileKind::OffsetIndex, SegmentFileKind::TimeIndex] {
            assert!(
                file_bases(&*fs, dir, kind).iter().all(|&b| b == 100),
                "no index of a deleted segment remains ({kind:?})"
            );
        }

        // Append some more to make segments again; they read back from the new start.
        let offsets = append_n(&log, 100, SMALL, NOW - 1000);
        assert_eq!(offsets.first(), Some(&100));
        assert_eq!(log.segment_count(), 20);
        assert_readable(&log, SMALL);
        assert_eq!(
            log.offset_for_time(NOW - 1000).unwrap().map(|t| t.offset),
            Some(100)
        );
    });
}

/// Time-based retention goes oldest first and stops at the first segment that must stay, even if
/// later ones have expired.
#[test]
fn time_retention_stops_at_the_first_segment_that_must_stay() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = five_per_segment(&fs, dir, &clock);
        let old = NOW - 10_000;
        append_n(&log, 10, SMALL, old); // segments 0 and 5: expired
        append_n(&log, 5, SMALL, NOW); // segment 10: fresh
        append_n(&log, 10, SMALL, old); // segments 15 and 20 (active): expired
        assert_eq!(bases(&log), vec![0, 5, 10, 15, 20]);

        let report = log.apply_retention(NOW, &by_time(1000)).unwrap();
        assert_eq!(report.segments_deleted, 2);
        assert_eq!(report.bytes_deleted, 10 * batch_len(SMALL));
        assert_eq!(
            bases(&log),
            vec![10, 15, 20],
            "expired segments after a fresh one stay"
        );
        assert_eq!(log.start_offset(), 10);
        assert_eq!(log.end_offset(), 25);
        assert_out_of_range(&log, 9);
        assert_readable(&log, SMALL);

        // Once the fresh segment has expired too, everything goes, the active segment included.
        let later = log.apply_retention(NOW + 1001, &by_time(1000)).unwrap();
        assert_eq!(later.segments_deleted, 3);
        assert_eq!(bases(&log), vec![25]);
        assert_eq!((log.start_offset(), log.end_offset()), (25, 25));
    });
}

/// The active segment: a non-empty one that has expired is rolled away like any other (Kafka's
/// `shouldDeleteTimeBasedSegmentsReadyToBeDeleted`); one that has not expired stays while the
/// expired sealed segments before it go; an empty one is never deleted.
#[test]
fn active_segment_goes_only_when_expired_and_non_empty() {
    both_fs(|fs, dir| {
        // All fifteen records in the active segment, stamped long ago.
        let clock = ManualClock::new(NOW);
        let one = dir.join("one");
        let log = Partition::open_with_env(&one, config(15 * batch_len(SMALL)), env(&fs, &clock))
            .unwrap();
        append_n(&log, 15, SMALL, 10);
        assert_eq!(log.segment_count(), 1);
        let report = log.apply_retention(NOW, &by_time(10_000)).unwrap();
        assert_eq!(report.segments_deleted, 1);
        assert_eq!(
            bases(&log),
            vec![15],
            "one segment remains, empty, at the end"
        );
        assert!(log.segments()[0].is_empty());
        assert_eq!((log.start_offset(), log.end_offset()), (15, 15));
        // The empty active segment is never deleted, however late it is.
        let again = log.apply_retention(i64::MAX, &by_time(1)).unwrap();
        assert_eq!(again.segments_deleted, 0);
        assert_eq!(bases(&log), vec![15]);

        // A fresh active segment stays while the expired sealed ones before it go.
        let two = dir.join("two");
        let log = five_per_segment(&fs, &two, &clock);
        append_n(&log, 10, SMALL, NOW - 60_000);
        append_n(&log, 2, SMALL, NOW);
        assert_eq!(bases(&log), vec![0, 5, 10]);
        let report = log.apply_retention(NOW, &by_time(30_000)).unwrap();
        assert_eq!(report.segments_deleted, 2);
        assert_eq!(bases(&log), vec![10]);
        assert_eq!((log.start_offset(), log.end_offset()), (10, 12));
        assert_readable(&log, SMALL);
    });
}

/// Kafka: `testLogDeletionAfterDeleteRecords`. `delete_records` moves the start offset; the next
/// retention pass (with no time or size limit) deletes the whole segments below it, and only those.
#[test]
fn retention_deletes_whole_segments_below_the_start_after_delete_records() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = five_per_segment(&fs, dir, &clock);
        append_n(&log, 15, SMALL, NOW);
        assert_eq!(bases(&log), vec![0, 5, 10]);
        assert_eq!(log.start_offset(), 0);
        let keep_all = RetentionPolicy::default();

        // The start offset inside the first segment: nothing can go yet.
        assert_eq!(log.delete_records(1).unwrap(), 1);
        assert_eq!(log.start_offset(), 1);
        assert_out_of_range(&log, 0);
        let r = log.apply_retention(NOW, &keep_all).unwrap();
        assert_eq!(r.segments_deleted, 0);
        assert_eq!(r.start_offset, 1);
        assert_eq!(bases(&log), vec![0, 5, 10]);
        assert_eq!(log.start_offset(), 1);
        // Reading at the start returns the batch holding it.
        let first = log.read(1, 1).unwrap();
        assert_eq!(first.records().next().unwrap().offset(), 1);

        assert_eq!(log.delete_records(6).unwrap(), 6);
        for below in [0, 1, 5] {
            assert_out_of_range(&log, below);
        }
        let r = log.apply_retention(NOW, &keep_all).unwrap();
        assert_eq!(r.segments_deleted, 1);
        assert_eq!(r.bytes_deleted, 5 * batch_len(SMALL));
        assert_eq!(bases(&log), vec![5, 10]);
        assert_eq!(
            log.start_offset(),
            6,
            "the start stays where delete_records put it"
        );
        assert_out_of_range(&log, 5);
        assert_readable(&log, SMALL);
        // Lookups by time never answer below the start either.
        assert_eq!(
            log.offset_for_time(i64::MIN).unwrap().map(|t| t.offset),
            Some(6)
        );

        // Up to the end offset: the active segment goes too, and the end offset stays.
        assert_eq!(log.delete_records(15).unwrap(), 15);
        let r = log.apply_retention(NOW, &keep_all).unwrap();
        assert_eq!(r.segments_deleted, 2);
        assert_eq!(bases(&log), vec![15]);
        assert_eq!((log.start_offset(), log.end_offset()), (15, 15));
        assert_out_of_range(&log, 14);
        assert!(log.read(15, 100).unwrap().is_empty());
        assert_eq!(
            log.append(Record::new(value(15, SMALL)).with_timestamp(NOW))
                .unwrap(),
            15
        );
        assert_readable(&log, SMALL);
    });
}

/// `delete_records` past the end fails and changes nothing; at or below the start it is a no-op
/// returning the current start.
#[test]
fn delete_records_bounds() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = five_per_segment(&fs, dir, &clock);
        append_n(&log, 12, SMALL, NOW);
        match log.delete_records(13) {
            Err(Error::OffsetOutOfRange {
                requested,
                start,
                end,
            }) => assert_eq!((requested, start, end), (13, 0, 12)),
            other => panic!("delete_records past the end: {other:?}"),
        }
        assert_eq!(log.start_offset(), 0);
        assert_eq!(log.delete_records(7).unwrap(), 7);
        assert_eq!(
            log.delete_records(3).unwrap(),
            7,
            "the start never moves back"
        );
        assert_eq!(log.delete_records(7).unwrap(), 7);
        assert_eq!(log.start_offset(), 7);
        assert_eq!(
            log.delete_records(12).unwrap(),
            12,
            "the end offset itself is allowed"
        );
        assert_eq!((log.start_offset(), log.end_offset()), (12, 12));
    });
}

/// The start offset `delete_records` sets is durable when the call returns: it survives a clean
/// reopen and a crash right after the call (a killed process on the real file system, a power loss
/// on `SimFs`), without any retention pass; the reopen drops the whole segment below it.
#[test]
fn delete_records_start_offset_survives_reopen_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimFs::new(11);
    let runs: [(Arc<dyn FileSystem>, Option<SimFs>, std::path::PathBuf); 2] = [
        (Arc::new(StdFs), None, tmp.path().join("p")),
        (Arc::new(sim.clone()), Some(sim), "/sim/p".into()),
    ];
    for (fs, sim, root) in runs {
        for crash in [false, true] {
            let clock = ManualClock::new(NOW);
            let dir = root.join(if crash { "crash" } else { "clean" });
            let log = five_per_segment(&fs, &dir, &clock);
            append_n(&log, 15, SMALL, NOW);
            log.flush().unwrap();
            assert_eq!(log.delete_records(7).unwrap(), 7);
            if crash {
                crash_without_close(log);
                if let Some(sim) = &sim {
                    sim.crash(CrashMode::LoseUnsynced);
                }
            } else {
                log.close().unwrap();
            }
            let log = five_per_segment(&fs, &dir, &clock);
            assert_eq!(log.start_offset(), 7, "{dir:?}");
            assert_eq!(log.end_offset(), 15);
            assert_out_of_range(&log, 6);
            assert_readable(&log, SMALL);
            assert_eq!(
                bases(&log),
                vec![5, 10],
                "the open removes the segment wholly below the start"
            );
            assert_eq!(file_bases(&*fs, &dir, SegmentFileKind::Log), vec![5, 10]);
        }
    }
}

/// Kafka: `testRetentionIdempotency`. Three one-batch segments; the first is young by both its
/// timestamp and its append time but lies below the start offset, the second has expired, the
/// third (active) is young: the pass deletes two, and running it again deletes nothing more.
#[test]
fn retention_twice_deletes_nothing_more() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW + 100);
        let log = Partition::open_with_env(dir, config(1024), env(&fs, &clock)).unwrap();
        log.append(Record::new(value(0, LARGE)).with_timestamp(NOW + 100))
            .unwrap();
        log.append(Record::new(value(1, LARGE)).with_timestamp(NOW))
            .unwrap();
        log.append(Record::new(value(2, LARGE)).with_timestamp(NOW + 100))
            .unwrap();
        assert_eq!(bases(&log), vec![0, 1, 2]);
        let policy = by_time(900);
        let now = NOW + 901;

        assert_eq!(log.delete_records(1).unwrap(), 1);
        let first = log.apply_retention(now, &policy).unwrap();
        assert_eq!(
            first.segments_deleted, 2,
            "start-offset retention unblocks time retention behind it"
        );
        assert_eq!(bases(&log), vec![2]);
        assert_eq!(log.start_offset(), 2);

        let second = log.apply_retention(now, &policy).unwrap();
        assert_eq!(second.segments_deleted, 0);
        assert_eq!(second.bytes_deleted, 0);
        assert_eq!(second.start_offset, 2);
        assert_eq!(bases(&log), vec![2]);
        assert_readable(&log, LARGE);
    });
}

/// Kafka: `shouldDeleteSizeBasedSegments`, `shouldNotDeleteSizeBasedSegmentsWhenUnderRetentionSize`
/// and the boundaries of the rule: the oldest segment goes only while the segments after it still
/// hold at least `retention_bytes`.
#[test]
fn size_retention_keeps_at_least_the_limit() {
    let l = batch_len(SMALL);
    // (limit, segments deleted): three segments of 5 batches each, 15 batches in all.
    let cases = [
        (15 * l, 0),
        (10 * l + 1, 0),
        (10 * l, 1),
        (10 * l - 1, 1),
        (5 * l + 1, 1),
        (5 * l, 2),
        (1, 2),
        (0, 3),
    ];
    both_fs(|fs, dir| {
        for (i, &(limit, deleted)) in cases.iter().enumerate() {
            let clock = ManualClock::new(NOW);
            let dir = dir.join(format!("case{i}"));
            let log = five_per_segment(&fs, &dir, &clock);
            append_n(&log, 15, SMALL, NOW);
            assert_eq!(bases(&log), vec![0, 5, 10]);

            let r = log.apply_retention(NOW, &by_size(limit)).unwrap();
            assert_eq!(r.segments_deleted, deleted, "limit {limit} (batch {l})");
            assert_eq!(r.bytes_deleted, deleted as u64 * 5 * l);
            let start = 5 * deleted as u64;
            assert_eq!(log.start_offset(), start);
            assert_eq!(log.end_offset(), 15);
            let remaining: u64 = log.segments().iter().map(|s| s.size()).sum();
            assert_eq!(remaining, (15 - start) * l);
            if deleted == 3 {
                assert_eq!(
                    bases(&log),
                    vec![15],
                    "everything went: an empty segment remains"
                );
            } else {
                assert!(remaining >= limit, "the rest still holds the limit");
            }
            assert_readable(&log, SMALL);
            if start > 0 {
                assert_out_of_range(&log, start - 1);
            }

            let again = log.apply_retention(NOW, &by_size(limit)).unwrap();
            assert_eq!(again.segments_deleted, 0, "limit {limit}: idempotent");
        }
    });
}

/// Time and size together: a segment goes if either says so, still oldest first.
#[test]
fn time_and_size_retention_combine() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let l = batch_len(SMALL);
        let log = five_per_segment(&fs, dir, &clock);
        append_n(&log, 5, SMALL, NOW - 60_000); // segment 0: expired
        append_n(&log, 15, SMALL, NOW); // segments 5, 10, 15: fresh
        let policy = RetentionPolicy {
            retention: Retention::After(Duration::from_secs(30)),
            retention_bytes: Limit::Bytes(10 * l),
        };
        let r = log.apply_retention(NOW, &policy).unwrap();
        // Segment 0 by time; segment 5 by size (10 batches remain after it).
        assert_eq!(r.segments_deleted, 2);
        assert_eq!(bases(&log), vec![10, 15]);
        assert_eq!(log.start_offset(), 10);
        assert_readable(&log, SMALL);
    });
}
