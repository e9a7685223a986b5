//! Readers and retention: whatever a reader holds from before a retention pass (read results, or
//! the segments themselves from `Partition::segments`) keeps reading byte-identically after the
//! pass deleted those segments, and the deleted segments' files stay gone; with appends, retention
//! and reads racing in threads, a read returns either the requested records, correct, or
//! `OffsetOutOfRange` for an offset below the start — never damage, an I/O error, or records after
//! the requested one in its place.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{both_fs, TestRng};
use topiclog::fs::FileSystem;
use topiclog::segment::{parse_segment_file_name, RecordBatch, SegmentFileKind, SegmentView};
use topiclog::{
    Batches, Deadline, Durability, Env, Error, Limit, LogConfig, ManualClock, Partition, Record,
    Retention, RetentionPolicy,
};

const NOW: i64 = 1_700_000_000_000;

/// `fs` on the fixed clock `NOW`.
fn env(fs: &Arc<dyn FileSystem>) -> Env {
    Env {
        fs: fs.clone(),
        clock: Arc::new(ManualClock::new(NOW)),
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_ms: Deadline::Never,
        index_interval_bytes: 128,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

/// The value stored at `offset`: its length varies, its content names the offset.
fn value(offset: u64) -> Vec<u8> {
    let mut v = format!("v{offset}:").into_bytes();
    v.resize(
        40 + (offset as usize * 37) % 120,
        b'a' + (offset % 26) as u8,
    );
    v
}

/// Append `batches` batches of 1-3 records; offsets dense from the current end.
fn fill(log: &Partition, batches: u64, seed: u64) {
    let mut rng = TestRng::new(seed);
    for _ in 0..batches {
        let base = log.end_offset();
        let n = 1 + rng.below(3);
        let records: Vec<Record> = (base..base + n)
            .map(|o| Record::new(value(o)).with_timestamp(NOW + o as i64))
            .collect();
        assert_eq!(log.append_batch(&records).unwrap().base_offset, base);
    }
}

fn raw(batches: &[RecordBatch]) -> Vec<Vec<u8>> {
    batches.iter().map(|b| b.as_bytes().to_vec()).collect()
}

/// Every record in `batches` carries the value of its offset, and the batches are valid.
fn assert_records_correct(batches: &[RecordBatch]) {
    for b in batches {
        RecordBatch::decode(b.as_bytes().clone()).expect("a held batch stays valid");
        for r in b.records() {
            assert_eq!(r.value().unwrap().as_ref(), value(r.offset()).as_slice());
        }
    }
}

/// Base offsets of the segment files of every kind in `dir`.
fn files_by_kind(fs: &dyn FileSystem, dir: &Path) -> Vec<(u64, SegmentFileKind)> {
    let mut out: Vec<_> = fs
        .read_dir(dir)
        .unwrap()
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    out.sort_unstable_by_key(|(b, k)| (*b, *k as u8));
    out
}

/// What readers hold from before the pass, and what they saw then.
struct Held {
    segments: Vec<SegmentView>,
    segment_bytes: Vec<Vec<Vec<u8>>>,
    reads: Vec<(Batches, Vec<Vec<u8>>)>,
}

fn hold(log: &Partition, read_segments_now: bool, expected_segments: Vec<Vec<Vec<u8>>>) -> Held {
    let segments = log.segments();
    let segment_bytes = if read_segments_now {
        segments
            .iter()
            .map(|s| raw(&s.read(s.base_offset(), usize::MAX).unwrap()))
            .collect()
    } else {
        expected_segments
    };
    let mut reads = Vec::new();
    for (offset, max) in [(0, 1), (0, 1 << 20), (7, 300), (log.end_offset() / 2, 1)] {
        let b = log.read(offset, max).unwrap();
        assert!(!b.is_empty());
        let copy = raw(b.batches());
        reads.push((b, copy));
    }
    Held {
        segments,
        segment_bytes,
        reads,
    }
}

/// Delete everything but the active segment, then check what `held` still reads.
fn retention_then_read_held(fs: &Arc<dyn FileSystem>, dir: &Path, log: &Partition, held: Held) {
    let end = log.end_offset();
    let last_base = held.segments.last().unwrap().base_offset();
    assert!(held.segments.len() >= 4, "the test needs several segments");
    log.delete_records(last_base).unwrap();
    let report = log
        .apply_retention(NOW, &RetentionPolicy::default())
        .unwrap();
    assert_eq!(report.segments_deleted, held.segments.len() - 1);
    assert_eq!(log.start_offset(), last_base);
    assert!(matches!(
        log.read(0, 100),
        Err(Error::OffsetOutOfRange { .. })
    ));

    for (batches, copy) in &held.reads {
        assert_eq!(&raw(batches.batches()), copy, "a held read result changed");
        assert_records_correct(batches.batches());
    }
    for (seg, before) in held.segments.iter().zip(&held.segment_bytes) {
        let whole = seg.read(seg.base_offset(), usize::MAX).unwrap_or_else(|e| {
            panic!(
                "reading deleted segment {} through a held handle: {e}",
                seg.base_offset()
            )
        });
        assert_eq!(
            &raw(&whole),
            before,
            "segment {} reads differently after its deletion",
            seg.base_offset()
        );
        assert_records_correct(&whole);
        // A read from the middle, through the index.
        let mid = (seg.base_offset() + seg.end_offset()) / 2;
        let part = seg.read(mid, 1).unwrap();
        assert!(part[0].base_offset() <= mid && mid <= part[0].last_offset());
        assert!(seg.max_timestamp().unwrap().is_some());
    }
    assert_eq!(log.end_offset(), end);

    // The deleted segments left nothing behind, even though readers used them afterwards.
    let files = files_by_kind(&**fs, dir);
    let left: Vec<_> = files.iter().filter(|(b, _)| *b < last_base).collect();
    assert!(
        left.is_empty(),
        "files of deleted segments reappeared after reads through held handles: {left:?}"
    );
}

#[test]
fn held_reads_and_segments_survive_deletion_in_the_appending_process() {
    both_fs(|fs, dir| {
        let log = Partition::open_with_env(dir, config(), env(&fs)).unwrap();
        fill(&log, 60, 1);
        let held = hold(&log, true, Vec::new());
        retention_then_read_held(&fs, dir, &log, held);
    });
}

/// After a reopen the sealed segments have not loaded their indexes yet; a reader that first
/// touches one after its deletion must still read it correctly, and must not recreate its files.
#[test]
fn held_segments_of_a_reopened_log_survive_deletion_before_first_use() {
    both_fs(|fs, dir| {
        let log = Partition::open_with_env(dir, config(), env(&fs)).unwrap();
        fill(&log, 60, 2);
        let expected: Vec<_> = log
            .segments()
            .iter()
            .map(|s| raw(&s.read(s.base_offset(), usize::MAX).unwrap()))
            .collect();
        log.close().unwrap();
        drop(log);

        let log = Partition::open_with_env(dir, config(), env(&fs)).unwrap();
        let held = Held {
            segments: log.segments(),
            segment_bytes: expected,
            reads: Vec::new(),
        };
        retention_then_read_held(&fs, dir, &log, held);
    });
}

/// Appender, retention and readers racing. Each read checks what it got against what must be at
/// that offset; the start offset only grows, so an offset below the start seen before a read must
/// fail with `OffsetOutOfRange`.
#[test]
fn readers_racing_retention_and_appends_see_correct_data_or_out_of_range() {
    both_fs(|fs, dir| {
        let log = Partition::open_with_env(dir, config(), env(&fs)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reads_ok = Arc::new(AtomicU64::new(0));
        let reads_oor = Arc::new(AtomicU64::new(0));
        let passes = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_millis(1500);

        let appender = {
            let log = log.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut rng = TestRng::new(99);
                let mut next = 0u64;
                while !stop.load(Ordering::Relaxed) && next < 40_000 {
                    let n = 1 + rng.below(3);
                    let records: Vec<Record> = (next..next + n)
                        .map(|o| Record::new(value(o)).with_timestamp(NOW + o as i64))
                        .collect();
                    let info = log.append_batch(&records).unwrap();
                    assert_eq!(info.base_offset, next);
                    next += n;
                }
            })
        };

        let retention = {
            let log = log.clone();
            let stop = stop.clone();
            let passes = passes.clone();
            thread::spawn(move || {
                let mut rng = TestRng::new(7);
                while !stop.load(Ordering::Relaxed) {
                    let end = log.end_offset();
                    if end > 60 {
                        log.delete_records(end - 20 - rng.below(40)).unwrap();
                    }
                    let policy = RetentionPolicy {
                        retention: Retention::Forever,
                        retention_bytes: Limit::Bytes(8 << 10),
                    };
                    log.apply_retention(NOW, &policy).unwrap();
                    passes.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_micros(200));
                }
            })
        };

        let readers: Vec<_> = (0..3u64)
            .map(|id| {
                let log = log.clone();
                let stop = stop.clone();
                let reads_ok = reads_ok.clone();
                let reads_oor = reads_oor.clone();
                thread::spawn(move || {
                    let mut rng = TestRng::new(100 + id);
                    while !stop.load(Ordering::Relaxed) {
                        let start = log.start_offset();
                        let end = log.end_offset();
                        // Mostly near the start, where retention is at work.
                        let offset = match rng.below(3) {
                            0 => start.saturating_sub(rng.below(10)),
                            1 => (start + rng.below(30)).min(end),
                            _ => start + rng.below(end - start + 1),
                        };
                        let max = [1usize, 200, 4096][rng.below(3) as usize];
                        match log.read(offset, max) {
                            Ok(read) => {
                                assert!(
                                    offset >= start,
                                    "read({offset}) below start {start} succeeded"
                                );
                                if read.is_empty() {
                                    assert!(
                                        offset >= end,
                                        "nothing at {offset} below the end {end}"
                                    );
                                    continue;
                                }
                                let first = &read.batches()[0];
                                assert!(
                                    first.base_offset() <= offset && offset <= first.last_offset(),
                                    "read({offset}) returned batches from {} (start was {start})",
                                    first.base_offset()
                                );
                                let mut expect = first.base_offset();
                                for b in read.batches() {
                                    for r in b.records() {
                                        assert_eq!(r.offset(), expect, "offsets must be dense");
                                        assert_eq!(
                                            r.value().unwrap().as_ref(),
                                            value(expect).as_slice()
                                        );
                                        expect += 1;
                                    }
                                }
                                reads_ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(Error::OffsetOutOfRange {
                                requested,
                                start: now_start,
                                end: now_end,
                            }) => {
                                assert_eq!(requested, offset);
                                assert!(
                                    offset < now_start || offset > now_end,
                                    "OffsetOutOfRange for {offset} inside [{now_start}, {now_end}]"
                                );
                                assert!(offset < now_start, "{offset} is never past the end");
                                reads_oor.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("read({offset}) failed: {e}"),
                        }
                    }
                })
            })
            .collect();

        // Until the deadline or the appender's last record, and on a loaded machine until every
        // actor did enough (retention and readers go on over the finished log; bounded by a
        // generous hard deadline).
        let hard_deadline = Instant::now() + Duration::from_secs(60);
        let enough = || {
            passes.load(Ordering::Relaxed) > 10
                && reads_ok.load(Ordering::Relaxed) > 100
                && reads_oor.load(Ordering::Relaxed) > 0
        };
        while ((Instant::now() < deadline && !appender.is_finished()) || !enough())
            && Instant::now() < hard_deadline
        {
            thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        appender.join().unwrap();
        retention.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert!(passes.load(Ordering::Relaxed) > 10, "retention ran");
        assert!(reads_ok.load(Ordering::Relaxed) > 100, "readers read");
        assert!(
            reads_oor.load(Ordering::Relaxed) > 0,
            "some reads fell below the start"
        );

        // Afterwards the log is whole from its start, and holds no files below it.
        let start = log.start_offset();
        let mut next = start;
        while next < log.end_offset() {
            let read = log.read(next, 1 << 16).unwrap();
            for r in read.records() {
                assert_eq!(r.offset(), next);
                assert_eq!(r.value().unwrap().as_ref(), value(next).as_slice());
                next += 1;
            }
        }
        let first_base = log.segments()[0].base_offset();
        assert!(first_base <= start);
        let stale: Vec<_> = files_by_kind(&*fs, dir)
            .into_iter()
            .filter(|(b, _)| *b < first_base)
            .collect();
        assert!(
            stale.is_empty(),
            "files of deleted segments remain: {stale:?}"
        );
    });
}
