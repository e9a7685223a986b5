//! Rolling to a new segment: by size (a segment never exceeds `segment_bytes` unless it holds a
//! single oversized batch), by time (`segment_ms`, driven by a `ManualClock`; an empty segment never
//! rolls), and when an index is full; offsets stay dense across rolls and segment files are named
//! by their base offsets. The scenarios follow Kafka's `UnifiedLogTest`/`LocalLogTest` roll tests.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{both_fs, brute_force_offset_for_time, record_views, RecordView, TestRng};
use topiclog::fs::FileSystem;
use topiclog::segment::{
    parse_segment_file_name, segment_file_name, RecordBatch, SegmentFileKind, SegmentView,
};
use topiclog::{Deadline, Durability, Env, LogConfig, ManualClock, Partition, Record};

const SEGMENT_BYTES: u64 = 4096;

fn size_config(preallocate: bool) -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        segment_ms: Deadline::Never,
        index_interval_bytes: 512,
        max_batch_bytes: 64 << 10,
        durability: Durability::None,
        preallocate,
        ..LogConfig::default()
    }
}

/// All batches of a segment.
fn batches_of(seg: &SegmentView) -> Vec<RecordBatch> {
    seg.read(seg.base_offset(), usize::MAX).unwrap()
}

/// Records appended as `count` batches of 1-3 records with values of random size; batches listed
/// in `oversized` get a value larger than a whole segment.
fn append_mixed(log: &Partition, count: u64, oversized: &[u64], seed: u64) -> Vec<RecordView> {
    let mut rng = TestRng::new(seed);
    let mut out = Vec::new();
    for b in 0..count {
        let n = 1 + rng.below(3) as usize;
        let len = if oversized.contains(&b) {
            SEGMENT_BYTES as usize + 1000
        } else {
            10 + rng.below(600) as usize
        };
        let records: Vec<Record> = (0..n)
            .map(|_| Record::new(rng.bytes(len)).with_timestamp(1_000 + b as i64))
            .collect();
        let info = log.append_batch(&records).unwrap();
        for (i, r) in records.iter().enumerate() {
            out.push(RecordView {
                offset: info.base_offset + i as u64,
                timestamp: r.timestamp().unwrap(),
                key: None,
                value: r.value().map(|v| v.to_vec()),
                headers: Vec::new(),
            });
        }
    }
    out
}

/// Check the segment chain: each segment starts where the previous one ended, with a batch at its
/// base offset, and no segment is empty except possibly the active one.
fn assert_dense(log: &Partition) {
    let segments = log.segments();
    let mut expected_base = log.start_offset();
    for (i, seg) in segments.iter().enumerate() {
        assert_eq!(seg.base_offset(), expected_base, "segment {i}");
        let batches = batches_of(seg);
        if i + 1 < segments.len() {
            assert!(!batches.is_empty(), "sealed segment {i} is empty");
        }
        for b in &batches {
            assert_eq!(b.base_offset(), expected_base, "segment {i}: a gap");
            expected_base = b.next_offset();
        }
        assert_eq!(seg.end_offset(), expected_base, "segment {i}");
    }
    assert_eq!(expected_base, log.end_offset());
}

fn assert_size_rule(fs: &dyn FileSystem, log: &Partition, preallocate: bool) {
    let segments = log.segments();
    for (i, seg) in segments.iter().enumerate() {
        let batches = batches_of(seg);
        let len: u64 = batches.iter().map(|b| b.as_bytes().len() as u64).sum();
        assert_eq!(seg.size(), len, "segment {i}");
        if seg.size() > SEGMENT_BYTES {
            assert_eq!(
                batches.len(),
                1,
                "segment {i} is oversized with several batches"
            );
        }
        let file_len = common::file_len(fs, seg.log_path());
        if let Some(next) = segments.get(i + 1) {
            // Sealed: trimmed to its data, and it rolled only because the next batch did not fit.
            assert!(seg.is_sealed(), "segment {i}");
            assert_eq!(file_len, seg.size(), "sealed segment {i} is trimmed");
            let next_batch = batches_of(next)[0].as_bytes().len() as u64;
            assert!(
                seg.size() + next_batch > SEGMENT_BYTES,
                "segment {i} ({} bytes) rolled though the next batch ({next_batch} bytes) fit",
                seg.size()
            );
        } else if preallocate && seg.size() <= SEGMENT_BYTES {
            assert_eq!(file_len, SEGMENT_BYTES, "active segment is preallocated");
        } else {
            assert_eq!(file_len, seg.size());
        }
    }
}

#[test]
fn roll_by_size_never_exceeds_segment_bytes_except_for_one_oversized_batch() {
    both_fs(|fs, dir| {
        for preallocate in [false, true] {
            let dir = dir.join(format!("preallocate-{preallocate}"));
            let config = size_config(preallocate);
            let env = Env::with_fs(fs.clone());
            let log = Partition::open_with_env(&dir, config.clone(), env.clone()).unwrap();
            // Oversized batches: alone, back to back, and right at the start of a segment.
            let records = append_mixed(&log, 80, &[0, 20, 21, 50], 7);
            assert!(log.segment_count() > 8);
            assert_size_rule(&*fs, &log, preallocate);
            assert_dense(&log);
            assert_eq!(record_views(&log, 0), records);

            log.close().unwrap();
            drop(log);
            let log = Partition::open_with_env(&dir, config, env.clone()).unwrap();
            assert_size_rule(&*fs, &log, preallocate);
            assert_dense(&log);
            assert_eq!(record_views(&log, 0), records);
        }
    });
}

#[test]
fn roll_by_time_happens_on_the_first_append_after_segment_ms() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(1_000_000);
        let config = LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: Deadline::After(Duration::from_secs(1)),
            durability: Durability::None,
            preallocate: false,
            ..LogConfig::default()
        };
        let env = Env {
            fs: fs.clone(),
            clock: Arc::new(clock.clone()),
        };
        let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
        let bases = |log: &Partition| -> Vec<u64> {
            log.segments().iter().map(|s| s.base_offset()).collect()
        };

        // An empty segment never rolls, however old the partition is.
        clock.advance(Duration::from_secs(10));
        assert_eq!(log.append(Record::new("a")).unwrap(), 0);
        assert_eq!(bases(&log), vec![0]);

        // Not yet: the segment's first append is 999 ms old.
        clock.advance(Duration::from_millis(999));
        assert_eq!(log.append(Record::new("b")).unwrap(), 1);
        assert_eq!(bases(&log), vec![0]);

        // Exactly segment_ms old: this append goes to a new segment.
        clock.advance(Duration::from_millis(1));
        assert_eq!(log.append(Record::new("c")).unwrap(), 2);
        assert_eq!(bases(&log), vec![0, 2]);

        // Time passing without appends creates no segment.
        for _ in 0..5 {
            clock.advance(Duration::from_secs(10));
            assert!(!log.read(0, 1 << 20).unwrap().is_empty());
            log.flush().unwrap();
            assert_eq!(bases(&log), vec![0, 2]);
        }

        // The next append rolls, and the one after it stays in the new segment.
        assert_eq!(log.append(Record::new("d")).unwrap(), 3);
        assert_eq!(bases(&log), vec![0, 2, 3]);
        clock.advance(Duration::from_millis(500));
        assert_eq!(log.append(Record::new("e")).unwrap(), 4);
        assert_eq!(bases(&log), vec![0, 2, 3]);

        assert_dense(&log);
        let values: Vec<Vec<u8>> = record_views(&log, 0)
            .into_iter()
            .map(|r| r.value.unwrap())
            .collect();
        assert_eq!(values, [b"a", b"b", b"c", b"d", b"e"]);
    });
}

fn index_full_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        segment_ms: Deadline::Never,
        // An entry for every batch after the first.
        index_interval_bytes: 1,
        // Room for 4 offset index entries (8 bytes each) and 2 time index entries (12 bytes each).
        max_index_bytes: 32,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn check_index_full_rolls(
    log: &Partition,
    records: &[RecordView],
    full: impl Fn(usize, usize) -> bool,
) {
    let segments = log.segments();
    assert!(segments.len() > 3, "{} segments", segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let (offsets, times) = seg.index_entries().unwrap();
        assert!(offsets.len() <= 4 && times.len() <= 2, "segment {i}");
        if i + 1 < segments.len() {
            assert!(
                full(offsets.len(), times.len()),
                "sealed segment {i} rolled before an index was full: {} offset and {} time entries",
                offsets.len(),
                times.len()
            );
        }
    }
    assert_dense(log);
    assert_eq!(record_views(log, 0), records);
    let lo = records.iter().map(|r| r.timestamp).min().unwrap() - 1;
    let hi = records.iter().map(|r| r.timestamp).max().unwrap() + 1;
    for t in lo..=hi {
        assert_eq!(
            log.offset_for_time(t).unwrap(),
            brute_force_offset_for_time(records, t),
            "offset_for_time({t})"
        );
    }
}

fn index_full_rolls(fs: Arc<dyn FileSystem>, dir: &Path, timestamp: impl Fn(u64) -> i64) {
    let config = index_full_config();
    let env = Env::with_fs(fs.clone());
    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    let mut records = Vec::new();
    for i in 0..40u64 {
        let r = Record::new(format!("v{i}")).with_timestamp(timestamp(i));
        let offset = log.append(r).unwrap();
        records.push(RecordView {
            offset,
            timestamp: timestamp(i),
            key: None,
            value: Some(format!("v{i}").into_bytes()),
            headers: Vec::new(),
        });
    }
    let full = |offsets: usize, times: usize| offsets == 4 || times == 2;
    check_index_full_rolls(&log, &records, full);

    // Clean and unclean reopen: still consistent, and appends continue.
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    check_index_full_rolls(&log, &records, full);
    common::crash_without_close(log);
    let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    check_index_full_rolls(&log, &records, full);
    for i in 40..50u64 {
        let offset = log
            .append(Record::new(format!("v{i}")).with_timestamp(timestamp(i)))
            .unwrap();
        records.push(RecordView {
            offset,
            timestamp: timestamp(i),
            key: None,
            value: Some(format!("v{i}").into_bytes()),
            headers: Vec::new(),
        });
    }
    check_index_full_rolls(&log, &records, full);
}

#[test]
fn roll_when_the_offset_index_is_full() {
    // Equal timestamps add no time index entries, so the offset index fills first.
    both_fs(|fs, dir| index_full_rolls(fs, dir, |_| 1_000));
}

#[test]
fn roll_when_the_time_index_is_full() {
    // Growing timestamps add a time index entry with every offset index entry; the smaller time
    // index fills first.
    both_fs(|fs, dir| index_full_rolls(fs, dir, |i| 1_000 + i as i64));
}

#[test]
fn offsets_are_dense_across_rolls() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(1_000_000);
        let config = LogConfig {
            segment_ms: Deadline::After(Duration::from_secs(1)),
            max_index_bytes: 64,
            index_interval_bytes: 100,
            ..size_config(true)
        };
        let env = Env {
            fs: fs.clone(),
            clock: Arc::new(clock.clone()),
        };
        let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
        let mut rng = TestRng::new(3);
        let mut next = 0u64;
        for i in 0..200u64 {
            // Rolls by size, by time and by full index, interleaved.
            if rng.below(10) == 0 {
                clock.advance(Duration::from_millis(1500));
            }
            let n = 1 + rng.below(4);
            let records: Vec<Record> = (0..n)
                .map(|j| {
                    let len = rng.below(200) as usize;
                    Record::new(rng.bytes(len)).with_key(format!("{i}.{j}"))
                })
                .collect();
            let info = log.append_batch(&records).unwrap();
            assert_eq!((info.base_offset, info.last_offset), (next, next + n - 1));
            next += n;
            assert_eq!(log.end_offset(), next);
        }
        assert!(log.segment_count() > 10);
        assert_dense(&log);
        let offsets: Vec<u64> = record_views(&log, 0).iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..next).collect::<Vec<_>>());
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
        assert_dense(&log);
        assert_eq!(log.append(Record::new("last")).unwrap(), next);
    });
}

#[test]
fn segment_files_are_named_by_base_offset() {
    both_fs(|fs, dir| {
        let config = size_config(true);
        let env = Env::with_fs(fs.clone());
        let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
        append_mixed(&log, 60, &[], 11);
        let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
        assert!(bases.len() > 3);
        for seg in log.segments() {
            assert_eq!(
                seg.log_path(),
                segment_file_name(dir, seg.base_offset(), SegmentFileKind::Log)
            );
        }
        log.close().unwrap();

        let mut found: Vec<(u64, SegmentFileKind)> = Vec::new();
        for name in fs.read_dir(dir).unwrap() {
            if let Some((base, kind)) = parse_segment_file_name(&name) {
                assert_eq!(name, format!("{base:020}.{}", kind.extension()));
                found.push((base, kind));
            }
        }
        found.sort();
        let mut expected: Vec<(u64, SegmentFileKind)> = bases
            .iter()
            .flat_map(|&b| {
                [
                    (b, SegmentFileKind::Log),
                    (b, SegmentFileKind::OffsetIndex),
                    (b, SegmentFileKind::TimeIndex),
                ]
            })
            .collect();
        expected.sort();
        assert_eq!(found, expected);
        assert_eq!(bases[0], 0);
        assert!(fs.exists(&dir.join("00000000000000000000.log")).unwrap());
    });
}
