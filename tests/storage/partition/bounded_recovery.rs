//! Recovery after a crash rescans only what was written since the recovery point: the active
//! segment's index entries below it are made durable with it, so the segment holding it is rescanned
//! from its last such entry, not from its first byte. The index files are untrusted: damaged,
//! missing, stale or cut back, they make the open fall back to the full rescan, never to wrong data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use topiclog::fs::{CrashMode, FileSystem, SimFs};
use topiclog::segment::{segment_file_name, SegmentFileKind};
use topiclog::{Durability, Env, LogConfig, ManualClock, Partition, Record, Recovery};

const DIR: &str = "/p";
const T0: i64 = 1_700_000_000_000;
/// Records per batch, and bytes per record value.
const PER_BATCH: u64 = 4;
const VALUE: usize = 200;

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::None,
        segment_bytes: 64 << 20,
        recovery: Recovery::Strict,
        ..LogConfig::default()
    }
}

fn open(fs: &Arc<SimFs>) -> Partition {
    let env = Env {
        fs: fs.clone(),
        clock: Arc::new(ManualClock::new(T0)),
    };
    Partition::open_with_env(DIR, config(), env).unwrap()
}

/// The value of the record at `offset` in the timeline `era` (a truncation starts a new one).
fn value(era: u64, offset: u64) -> Vec<u8> {
    let mut v = format!("{era}:{offset}:").into_bytes();
    v.resize(VALUE + (offset % 7) as usize, b'a' + (offset % 26) as u8);
    v
}

/// Timestamps that mostly grow, with some going back, so the time index has work to do.
fn timestamp(offset: u64) -> i64 {
    T0 + (offset as i64) * 10 - if offset.is_multiple_of(5) { 25 } else { 0 }
}

/// Append batches until the log ends at `to` (a multiple of `PER_BATCH` past its end).
fn append_to(log: &Partition, era: u64, to: u64) {
    while log.end_offset() < to {
        let at = log.end_offset();
        let batch: Vec<Record> = (at..at + PER_BATCH)
            .map(|o| Record::new(value(era, o)).with_timestamp(timestamp(o)))
            .collect();
        log.append_batch(&batch).unwrap();
    }
}

/// Every record of the log, read one offset at a time (each read goes through the offset index),
/// checked against `era_at`; and a time lookup for every tenth record.
fn check(log: &Partition, end: u64, era_at: impl Fn(u64) -> u64) {
    assert_eq!(log.end_offset(), end);
    for o in 0..end {
        let b = log.read(o, 1).unwrap();
        let r = b
            .records()
            .find(|r| r.offset() == o)
            .unwrap_or_else(|| panic!("offset {o} missing"));
        assert_eq!(
            r.value().unwrap().as_ref(),
            value(era_at(o), o),
            "offset {o}"
        );
    }
    for o in (0..end).step_by(10) {
        // The first offset whose timestamp is at or after `timestamp(o)`.
        let want = (o.saturating_sub(3)..end)
            .find(|&x| timestamp(x) >= timestamp(o))
            .unwrap();
        let found = log.offset_for_time(timestamp(o)).unwrap().unwrap();
        assert_eq!(found.offset, want, "offset_for_time({})", timestamp(o));
    }
}

fn index_file(kind: SegmentFileKind) -> PathBuf {
    segment_file_name(Path::new(DIR), 0, kind)
}

/// A log of `durable` offsets with the recovery point at its end, then `tail` more offsets
/// appended (flushed to the file but never synced), then a crash that keeps a torn prefix of
/// what was not synced.
fn crashed_log(seed: u64, durable: u64, tail: u64) -> Arc<SimFs> {
    let fs = Arc::new(SimFs::new(seed));
    let log = open(&fs);
    append_to(&log, 0, durable);
    log.flush_checkpoint().unwrap();
    append_to(&log, 0, durable + tail);
    log.abandon();
    fs.crash(CrashMode::Torn);
    fs
}

#[test]
fn an_unclean_open_rescans_only_what_follows_the_recovery_point() {
    let (durable, tail) = (20_000, 400);
    for seed in 0..8 {
        let fs = crashed_log(seed, durable, tail);
        let log = open(&fs);
        let report = log.recovery_report();
        assert!(!report.clean_shutdown);
        assert_eq!(report.segments_scanned, 1);
        let end = log.end_offset();
        assert!((durable..=durable + tail).contains(&end), "end {end}");
        // The tail (at most `tail` records of ~220 bytes plus batch overhead) and one index
        // interval before the recovery point, not the 4+ MB before it.
        let segment = log.segments()[0].size();
        assert!(segment > 4_000_000, "{segment}");
        let bound = tail * (VALUE as u64 + 40) + 4096 + 2048;
        assert!(
            report.bytes_scanned <= bound,
            "seed {seed}: scanned {} bytes of a {segment}-byte segment",
            report.bytes_scanned
        );
        check(&log, end, |_| 0);
        // The indexes the open kept and extended are the ones a full rebuild makes.
        let (offsets, times) = log.segments()[0].index_entries().unwrap();
        log.close().unwrap();
        let rebuilt = Arc::new(SimFs::new(seed));
        copy_log_only(&fs, &rebuilt);
        let again = open(&rebuilt);
        assert_eq!(again.recovery_report().bytes_scanned, segment);
        let (offsets2, times2) = again.segments()[0].index_entries().unwrap();
        assert_eq!(offsets, offsets2, "seed {seed}: offset index");
        assert_eq!(times, times2, "seed {seed}: time index");
        // And the reopened log goes on: more appends, a clean close, a clean open.
        append_to(&again, 0, end + 100);
        again.close().unwrap();
        let last = open(&rebuilt);
        assert!(last.recovery_report().clean_shutdown);
        check(&last, end + 100, |_| 0);
    }
}

/// Copy the partition's `.log` and checkpoint to `to` (no index files: the open rebuilds them from
/// the log alone).
fn copy_log_only(from: &SimFs, to: &SimFs) {
    to.create_dir_all(Path::new(DIR)).unwrap();
    for name in ["checkpoint", "00000000000000000000.log"] {
        let path = Path::new(DIR).join(name);
        to.write_file(&path, &from.read_file(&path).unwrap());
    }
}

#[test]
fn damaged_or_missing_index_files_fall_back_to_the_full_rescan() {
    let (durable, tail) = (8_000, 100);
    type Damage = fn(&SimFs);
    let damages: [(&str, Damage); 7] = [
        ("offset index deleted", |fs| {
            fs.remove_file(&index_file(SegmentFileKind::OffsetIndex))
                .unwrap();
        }),
        ("time index deleted", |fs| {
            fs.remove_file(&index_file(SegmentFileKind::TimeIndex))
                .unwrap();
        }),
        ("offset index zeroed", |fs| {
            let p = index_file(SegmentFileKind::OffsetIndex);
            let len = fs.read_file(&p).unwrap().len();
            fs.write_file(&p, &vec![0; len]);
        }),
        ("an offset index entry points into a batch", |fs| {
            let p = index_file(SegmentFileKind::OffsetIndex);
            let mut b = fs.read_file(&p).unwrap();
            let last = b.len() - 8;
            b[last + 7] = b[last + 7].wrapping_add(3); // position += 3
            fs.write_file(&p, &b);
        }),
        ("an offset index entry names the wrong offset", |fs| {
            let p = index_file(SegmentFileKind::OffsetIndex);
            let mut b = fs.read_file(&p).unwrap();
            let last = b.len() - 8;
            b[last + 3] = b[last + 3].wrapping_sub(1);
            fs.write_file(&p, &b);
        }),
        ("the time index cut back", |fs| {
            let p = index_file(SegmentFileKind::TimeIndex);
            let b = fs.read_file(&p).unwrap();
            fs.write_file(&p, &b[..b.len() / 2 / 12 * 12]);
        }),
        ("the time index's last entry raised", |fs| {
            let p = index_file(SegmentFileKind::TimeIndex);
            let mut b = fs.read_file(&p).unwrap();
            let last = b.len() - 12;
            b[last + 6] = b[last + 6].wrapping_add(1);
            fs.write_file(&p, &b);
        }),
    ];
    for (what, damage) in damages {
        let fs = crashed_log(3, durable, tail);
        let segment_len = fs
            .read_file(&index_file(SegmentFileKind::Log))
            .unwrap()
            .len() as u64;
        damage(&fs);
        let log = open(&fs);
        let report = log.recovery_report();
        // Damage detected: the whole segment is rescanned (the preallocated zeros past the data
        // are not counted).
        assert!(
            report.bytes_scanned > 1_000_000 && report.bytes_scanned <= segment_len,
            "{what}: scanned {}",
            report.bytes_scanned
        );
        let end = log.end_offset();
        assert!(
            (durable..=durable + tail).contains(&end),
            "{what}: end {end}"
        );
        check(&log, end, |_| 0);
    }
}

#[test]
fn after_a_truncation_stale_index_entries_never_place_a_read() {
    // Truncate far back, then write different (longer) records over the cut offsets: entries the
    // index file held for the old records name positions that are wrong for the new ones.
    for seed in 0..4 {
        let fs = Arc::new(SimFs::new(seed));
        let log = open(&fs);
        append_to(&log, 0, 12_000);
        log.flush_checkpoint().unwrap();
        log.truncate_to(4_000).unwrap();
        let era = |o: u64| u64::from(o >= 4_000);
        append_to(&log, 1, 10_000);
        log.flush_checkpoint().unwrap();
        append_to(&log, 1, 10_400);
        log.abandon();
        fs.crash(CrashMode::Torn);
        let log = open(&fs);
        let end = log.end_offset();
        assert!((10_000..=10_400).contains(&end), "seed {seed}: end {end}");
        assert!(log.recovery_report().bytes_scanned < 200_000);
        check(&log, end, era);
    }
}

#[test]
fn a_crash_right_after_a_truncation_rescans_from_before_it() {
    // The truncation lowered the recovery point; nothing vouched for the new records yet.
    let fs = Arc::new(SimFs::new(9));
    let log = open(&fs);
    append_to(&log, 0, 12_000);
    log.flush_checkpoint().unwrap();
    log.truncate_to(4_000).unwrap();
    append_to(&log, 1, 6_000);
    log.flush().unwrap(); // durable, but no recovery point written
    log.abandon();
    fs.crash(CrashMode::Torn);
    let log = open(&fs);
    assert_eq!(log.end_offset(), 6_000);
    check(&log, 6_000, |o| u64::from(o >= 4_000));
}
