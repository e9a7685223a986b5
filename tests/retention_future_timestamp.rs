//! Time-based retention cannot be pinned by a far-future record timestamp: a segment also ages by
//! the wall-clock time it last received data, so it is deleted once that is older than the
//! retention, whatever its records claim. In the process that appended, the append time comes from
//! the partition's clock; after a reopen it comes from the `.log` file's modification time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use topiclog::segment::{segment_file_name, SegmentFileKind};
use topiclog::{
    Deadline, Durability, Env, Limit, LogConfig, ManualClock, Partition, Record, Retention,
    RetentionPolicy,
};

const T: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Far enough ahead that no retention could ever count it as old.
const YEARS_AHEAD: i64 = 1000 * 365 * DAY;
/// Gives every one-record batch a 1 KiB segment of its own.
const VALUE_LEN: usize = 700;

/// The real file system on `clock`.
fn clock_env(clock: &ManualClock) -> Env {
    Env {
        clock: Arc::new(clock.clone()),
        ..Env::default()
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn record(offset: u64, ts: i64) -> Record {
    let mut v = format!("value-{offset}-").into_bytes();
    v.resize(VALUE_LEN, b'.');
    Record::new(v).with_timestamp(ts)
}

fn retention(ms: i64) -> RetentionPolicy {
    RetentionPolicy {
        retention: Retention::After(Duration::from_millis(ms as u64)),
        retention_bytes: Limit::Unlimited,
    }
}

fn bases(log: &Partition) -> Vec<u64> {
    log.segments().iter().map(|s| s.base_offset()).collect()
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Set the modification time of segment `base`'s `.log`.
fn set_log_mtime(dir: &Path, base: u64, ms: i64) {
    let path = segment_file_name(dir, base, SegmentFileKind::Log);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_millis(ms as u64))
        .unwrap();
}

/// Three one-batch segments whose records all claim a time far in the future.
fn future_log(dir: &Path, clock: &ManualClock, future: i64) -> Partition {
    let log = Partition::open_with_env(dir, config(), clock_env(clock)).unwrap();
    for i in 0..3 {
        assert_eq!(log.append(record(i, future)).unwrap(), i);
    }
    assert_eq!(bases(&log), vec![0, 1, 2]);
    log
}

#[test]
fn future_timestamps_do_not_pin_a_segment_appended_long_ago() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T);
    let log = Partition::open_with_env(tmp.path(), config(), clock_env(&clock)).unwrap();
    let future = T + YEARS_AHEAD;
    // Segment 0: a far-future record appended at T.
    log.append(record(0, future)).unwrap();
    // Segment 1: a far-future record appended 90 minutes later.
    clock.set(T + 90 * 60_000);
    log.append(record(1, future)).unwrap();
    // Segment 2 (active): an ordinary record appended at T + 3 h.
    clock.set(T + 3 * HOUR);
    log.append(record(2, T + 3 * HOUR)).unwrap();
    assert_eq!(bases(&log), vec![0, 1, 2]);
    let policy = retention(2 * HOUR);

    // Two hours after the first append, not yet.
    let r = log.apply_retention(T + 2 * HOUR, &policy).unwrap();
    assert_eq!(r.segments_deleted, 0);

    // Just past it: segment 0 goes although its record claims to be from the far future; segment 1
    // was appended too recently and stops the pass.
    let r = log.apply_retention(T + 2 * HOUR + 1, &policy).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert_eq!(bases(&log), vec![1, 2]);
    assert_eq!(log.start_offset(), 1);

    // Once segment 1's append is two hours old, it goes too; the active segment is younger.
    let r = log
        .apply_retention(T + 90 * 60_000 + 2 * HOUR + 1, &policy)
        .unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert_eq!(bases(&log), vec![2]);
    assert_eq!((log.start_offset(), log.end_offset()), (2, 3));
    let rec = log.read(2, 1 << 20).unwrap();
    assert_eq!(rec.records().next().unwrap().offset(), 2);
}

/// A record stamped in the past still expires by its timestamp even if it was appended just now
/// (the older of the two counts), as Kafka's record-timestamp retention does.
#[test]
fn old_timestamps_expire_a_segment_appended_just_now() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T);
    let log = Partition::open_with_env(tmp.path(), config(), clock_env(&clock)).unwrap();
    log.append(record(0, T - 10 * DAY)).unwrap();
    log.append(record(1, T)).unwrap();
    let r = log.apply_retention(T, &retention(DAY)).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert_eq!(bases(&log), vec![1]);
}

/// After a reopen the append times are gone; the `.log` modification time stands in for them.
/// Segments whose file was last modified long ago go, even with far-future records; the one
/// modified just now stays.
#[test]
fn after_reopen_the_file_mtime_ages_a_future_stamped_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let now = system_now_ms();
    let clock = ManualClock::new(now);
    let future = now + YEARS_AHEAD;
    let log = future_log(tmp.path(), &clock, future);
    log.close().unwrap();
    drop(log);
    set_log_mtime(tmp.path(), 0, now - 3 * DAY);
    set_log_mtime(tmp.path(), 1, now - 2 * DAY);

    let log = Partition::open_with_env(tmp.path(), config(), clock_env(&clock)).unwrap();
    assert_eq!(bases(&log), vec![0, 1, 2]);
    let last = log.segments()[0].last_modified_ms();
    assert!(
        last.is_some_and(|m| (m - (now - 3 * DAY)).abs() < 1000),
        "a reopened segment reports its file's mtime: {last:?}"
    );

    let r = log.apply_retention(now, &retention(DAY)).unwrap();
    assert_eq!(r.segments_deleted, 2);
    assert_eq!(bases(&log), vec![2]);
    assert_eq!((log.start_offset(), log.end_offset()), (2, 3));

    // And the start offset holds across another reopen.
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env(tmp.path(), config(), clock_env(&clock)).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (2, 3));
}

/// The same without touching the files: a clock far ahead of the files' modification times (but
/// still far behind the records' timestamps) sees every segment, the active one too, as expired.
#[test]
fn after_reopen_a_far_future_now_expires_by_mtime() {
    let tmp = tempfile::tempdir().unwrap();
    let now = system_now_ms();
    let clock = ManualClock::new(now);
    let log = future_log(tmp.path(), &clock, now + YEARS_AHEAD);
    log.close().unwrap();
    drop(log);

    let log = Partition::open_with_env(tmp.path(), config(), clock_env(&clock)).unwrap();
    // A year on, by the wall clock, with a retention of a week: not old by the records' stamps.
    let later = now + 365 * DAY;
    let r = log.apply_retention(later, &retention(7 * DAY)).unwrap();
    assert_eq!(r.segments_deleted, 3);
    assert_eq!(bases(&log), vec![3]);
    assert_eq!((log.start_offset(), log.end_offset()), (3, 3));
    clock.set(later);
    assert_eq!(log.append(record(3, later)).unwrap(), 3);
}
