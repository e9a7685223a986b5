//! Compaction, ported from Apache Kafka's `LogCleanerTest` (and the trigger rules of
//! `LogCleanerManagerTest`): latest record per key, offsets preserved, partial passes when the
//! key map fills, tombstones kept until their horizon, reads across offset gaps, recovery after a
//! clean close, a crash and a power cut in the middle of a pass, grouping of cleaned segments,
//! minimum and maximum compaction lag, the dirty-ratio trigger, keyless records, and that
//! survivors keep their headers and timestamps (and `offset_for_time` still answers correctly).
//!
//! Every check compares the whole log against a model: the records appended, in offset order, and
//! the rule "below the cleaned end, a record survives iff it has a key, no later record below the
//! cleaned end has the same key, and it is not a tombstone whose horizon has passed". Scenarios
//! run on the real file system and on `SimFs` where practical, with a `ManualClock` for append
//! times and explicit record timestamps, so every run is deterministic.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{
    assert_lookups_eq, both_fs, brute_force_offset_for_time, crash_without_close, lookups,
    record_views, RecordView, TestRng,
};
use topiclog::fs::{CrashMode, FileSystem, SimFs};
use topiclog::limits::MIN_MAP_BUDGET_BYTES;
use topiclog::segment::SegmentFileKind;
use topiclog::{
    AppendInfo, Bytes, CompactionPolicy, CompactionReport, Deadline, Durability, Env, Error,
    LogConfig, ManualClock, Partition, Record, TimestampType,
};

const NOW: i64 = 1_700_000_000_000;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const SEGMENT_BYTES: u64 = 1024;

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
        index_interval_bytes: 128,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn open(fs: &Arc<dyn FileSystem>, dir: &Path, clock: &ManualClock) -> Partition {
    Partition::open_with_env(dir, config(SEGMENT_BYTES), env(fs, clock)).unwrap()
}

/// Clean whatever is dirty (ratio 0), default retention of tombstones (1 day).
fn eager() -> CompactionPolicy {
    CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    }
}

/// A keyed record with an explicit timestamp.
fn kv(key: &str, value: &str, ts: i64) -> Record {
    Record::new(value.to_owned())
        .with_key(key.to_owned())
        .with_timestamp(ts)
}

/// A tombstone with an explicit timestamp.
fn tomb(key: &str, ts: i64) -> Record {
    Record::tombstone(key.to_owned()).with_timestamp(ts)
}

/// A keyless record with an explicit timestamp.
fn keyless(value: &str, ts: i64) -> Record {
    Record::new(value.to_owned()).with_timestamp(ts)
}

/// The records appended so far, as they must read back, in offset order.
#[derive(Default)]
struct Appended(Vec<RecordView>);

impl Appended {
    fn batch(&mut self, log: &Partition, records: &[Record]) -> AppendInfo {
        let info = log.append_batch(records).unwrap();
        let log_append_time = log.config().timestamp_type == TimestampType::LogAppendTime;
        for (i, r) in records.iter().enumerate() {
            self.0.push(RecordView {
                offset: info.base_offset + i as u64,
                timestamp: match r.timestamp() {
                    Some(ts) if !log_append_time => ts,
                    _ => info.append_time,
                },
                key: r.key().map(|k| k.to_vec()),
                value: r.value().map(|v| v.to_vec()),
                headers: r
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
                    .collect(),
            });
        }
        info
    }

    fn one(&mut self, log: &Partition, record: Record) -> u64 {
        self.batch(log, &[record]).base_offset
    }

    fn below(&self, end: u64) -> impl Iterator<Item = &RecordView> {
        self.0.iter().filter(move |r| r.offset < end)
    }
}

/// What a log must hold after passes that together cleaned everything below `clean_end`: below it,
/// a record survives iff it has a key, no later record below `clean_end` has the same key, and
/// `gone` does not say it is a tombstone removed at its horizon; at or after it, everything.
fn expected(
    appended: &[RecordView],
    clean_end: u64,
    gone: impl Fn(&RecordView) -> bool,
) -> Vec<RecordView> {
    expected_mapped(appended, clean_end, clean_end, gone)
}

/// As [`expected`], for a pass whose key map reached `map_end` but which rewrote only below
/// `clean_end` (it ended at the base of the segment where the map filled): a record below
/// `clean_end` also goes if a later record of its key lies below `map_end`.
fn expected_mapped(
    appended: &[RecordView],
    clean_end: u64,
    map_end: u64,
    gone: impl Fn(&RecordView) -> bool,
) -> Vec<RecordView> {
    let mut latest: HashMap<&[u8], u64> = HashMap::new();
    for r in appended
        .iter()
        .filter(|r| r.offset < map_end.max(clean_end))
    {
        if let Some(k) = &r.key {
            latest.insert(k, r.offset);
        }
    }
    appended
        .iter()
        .filter(|r| {
            if r.offset >= clean_end {
                return true;
            }
            let Some(k) = &r.key else {
                return false;
            };
            latest[k.as_slice()] == r.offset && !(r.value.is_none() && gone(r))
        })
        .cloned()
        .collect()
}

/// No tombstone has reached its horizon.
fn none_gone(_: &RecordView) -> bool {
    false
}

/// The log holds exactly `want` (every field of every record), and a read at every offset from the
/// start to the end (with the smallest and a generous limit) starts at the next surviving record.
fn assert_log(log: &Partition, want: &[RecordView], what: &str) {
    let got = record_views(log, log.start_offset());
    if got != want {
        let i = got
            .iter()
            .zip(want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: the log differs from the model at record #{i} ({} records, expected {}):\n  \
             got      {:?}\n  expected {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
    for o in log.start_offset()..log.end_offset() {
        let next = want.iter().find(|r| r.offset >= o).map(|r| r.offset);
        for max in [1, 1 << 16] {
            // A read returns whole batches from the one holding `o`, whose records at or after `o`
            // may all be gone: a reader then goes on at the batch's end (as Kafka's consumer does).
            let mut at = o;
            let mut hops = 0;
            let first = loop {
                let read = log.read(at, max).unwrap();
                if read.is_empty() {
                    break None;
                }
                if let Some(r) = read.records().next() {
                    break Some(r.offset());
                }
                assert!(
                    read.next_offset() > at,
                    "{what}: read({at}) made no progress"
                );
                at = read.next_offset();
                hops += 1;
            };
            assert_eq!(
                first, next,
                "{what}: reading from {o} (limit {max}) must reach the next surviving record first"
            );
            assert!(
                hops <= 1,
                "{what}: reading from {o} took {hops} extra reads"
            );
        }
    }
}

fn active_base(log: &Partition) -> u64 {
    log.segments().last().unwrap().base_offset()
}

/// Sizes of the sealed segments by base offset.
fn sealed_sizes(log: &Partition) -> BTreeMap<u64, u64> {
    let segments = log.segments();
    segments[..segments.len() - 1]
        .iter()
        .map(|s| (s.base_offset(), s.size()))
        .collect()
}

/// The dirty ratio a pass must compute: bytes of sealed segments at or after the first dirty offset
/// over bytes of all sealed segments (the log start is the first segment's base in these tests).
fn model_dirty_ratio(log: &Partition) -> f64 {
    let first_dirty = log.first_dirty_offset();
    let segments = log.segments();
    let (mut dirty, mut clean) = (0u64, 0u64);
    for pair in segments.windows(2) {
        if pair[1].base_offset() <= first_dirty {
            clean += pair[0].size();
        } else {
            dirty += pair[0].size();
        }
    }
    if dirty + clean == 0 {
        0.0
    } else {
        dirty as f64 / (dirty + clean) as f64
    }
}

/// Compaction leftovers in `dir`: files with the `.cleaned` or `.swap` suffix.
fn leftovers(fs: &dyn FileSystem, dir: &Path) -> Vec<String> {
    fs.read_dir(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

/// Kafka `testCleanSegments`: cleaning keeps exactly the latest record of each key below the
/// active segment, at its original offset, and leaves the active segment alone; the report counts
/// what was read and removed; cleaning again with nothing new is a no-op (every read and
/// `offset_for_time` answer unchanged); a later pass over new data compacts the old survivors
/// against the new records.
#[test]
fn test_clean_segments() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let mut rng = TestRng::new(1);
        for i in 0..200i64 {
            let key = format!("key-{}", rng.below(15));
            appended.one(&log, kv(&key, &format!("value-{i}"), NOW + i));
        }
        let segments_before = log.segment_count();
        assert!(segments_before >= 6, "{segments_before} segments");
        let active = active_base(&log);

        let report = log.compact(NOW, &eager()).unwrap();
        assert!(report.cleaned, "{report:?}");
        assert!(!report.map_full, "{report:?}");
        assert_eq!(report.first_dirty_offset, active);
        assert_eq!(log.first_dirty_offset(), active);
        let want = expected(&appended.0, active, none_gone);
        assert_log(&log, &want, "after the first pass");
        let below = appended.below(active).count() as u64;
        let kept = want.iter().filter(|r| r.offset < active).count() as u64;
        let keys: BTreeSet<_> = appended.below(active).map(|r| r.key.clone()).collect();
        assert_eq!(report.records_read, below, "{report:?}");
        assert_eq!(report.records_removed, below - kept, "{report:?}");
        assert_eq!(report.keys_mapped, keys.len() as u64, "{report:?}");
        assert_eq!(report.tombstones_removed, 0);
        assert_eq!(report.keyless_removed, 0);
        assert_eq!(report.segments_read, segments_before - 1, "{report:?}");
        assert!(log.segment_count() < segments_before);
        assert_eq!(log.end_offset(), 200);

        // Idempotent: nothing dirty, so nothing runs and nothing changes.
        let before = lookups(&log, NOW - 1..=NOW + 200);
        let again = log.compact(NOW, &eager()).unwrap();
        assert!(!again.cleaned, "{again:?}");
        assert_eq!(again.first_dirty_offset, active);
        assert_lookups_eq(&lookups(&log, NOW - 1..=NOW + 200), &before, "second pass");

        // New data supersedes old survivors.
        for i in 200..300i64 {
            let key = format!("key-{}", rng.below(20));
            appended.one(&log, kv(&key, &format!("value-{i}"), NOW + i));
        }
        let active = active_base(&log);
        let report = log.compact(NOW, &eager()).unwrap();
        assert!(report.cleaned, "{report:?}");
        assert_eq!(report.first_dirty_offset, active);
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "after new data",
        );
        let before = lookups(&log, NOW - 1..=NOW + 300);
        assert!(!log.compact(NOW, &eager()).unwrap().cleaned);
        assert_lookups_eq(&lookups(&log, NOW - 1..=NOW + 300), &before, "fourth pass");
    });
}

/// Kafka `testPartialSegmentClean`: with the smallest key map (`MIN_MAP_BUDGET_BYTES`) the map
/// fills in the middle of the dirty range. The pass then cleans only up to the base of the segment
/// where the map filled (as Kafka does; or, if it filled in the first dirty segment, up to the
/// first record whose key did not fit), reports `map_full`, and the first dirty offset advances
/// there; later passes continue from there. The
/// log matches the model after every pass and ends as the latest record per key.
#[test]
fn test_partial_segment_clean() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        // Three rounds over 150 keys, five records to a batch.
        for round in 0..3 {
            for chunk in (0..150).step_by(5) {
                let batch: Vec<Record> = (chunk..chunk + 5)
                    .map(|k| kv(&format!("k{k}"), &format!("r{round}-{k}"), NOW))
                    .collect();
                appended.batch(&log, &batch);
            }
        }
        let active = active_base(&log);
        let policy = CompactionPolicy {
            map_budget_bytes: MIN_MAP_BUDGET_BYTES,
            ..eager()
        };
        let mut passes: Vec<CompactionReport> = Vec::new();
        // (stopped inside the first dirty segment, stopped at a segment boundary)
        let mut mid_segment_or_boundary = (false, false);
        loop {
            let from = log.first_dirty_offset();
            let report = log.compact(NOW, &policy).unwrap();
            let what = format!("pass {} ({report:?})", passes.len() + 1);
            assert!(report.cleaned, "{what}");
            let to = report.first_dirty_offset;
            assert!(to > from, "{what}: no progress from {from}");
            assert_eq!(log.first_dirty_offset(), to, "{what}");
            // The map holds the keys of [from, to) (and, when it filled in a later segment, the
            // keys it took from that segment before the pass ended at its base).
            let keys: BTreeSet<_> = appended
                .0
                .iter()
                .filter(|r| r.offset >= from && r.offset < to)
                .map(|r| r.key.clone())
                .collect();
            assert!(report.keys_mapped >= keys.len() as u64, "{what}");
            if report.map_full {
                assert!(to < active, "{what}");
                let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
                if bases.contains(&to) {
                    // Ended at the base of the segment where the map filled, as Kafka does.
                    mid_segment_or_boundary.1 = true;
                } else {
                    // The map filled inside the first dirty segment: it stopped at the first
                    // record whose key is new.
                    let stop = &appended.0[to as usize];
                    assert!(!keys.contains(&stop.key), "{what}: stopped at a known key");
                    assert_eq!(report.keys_mapped, keys.len() as u64, "{what}");
                    mid_segment_or_boundary.0 = true;
                }
            } else {
                assert_eq!(to, active, "{what}");
            }
            // Where the map stopped: the first record (from `from`) whose key did not fit.
            let stop = if report.map_full {
                let mut seen = BTreeSet::new();
                appended
                    .0
                    .iter()
                    .filter(|r| r.offset >= from && r.key.is_some())
                    .find(|r| {
                        let k = r.key.clone();
                        if seen.contains(&k) {
                            false
                        } else if seen.len() as u64 == report.keys_mapped {
                            true
                        } else {
                            seen.insert(k);
                            false
                        }
                    })
                    .map_or(to, |r| r.offset)
            } else {
                to
            };
            assert!(stop >= to, "{what}");
            assert_log(
                &log,
                &expected_mapped(&appended.0, to, stop, none_gone),
                &what,
            );
            passes.push(report);
            if !report.map_full {
                break;
            }
            assert!(passes.len() < 50, "no end in sight: {passes:?}");
        }
        assert!(passes.len() >= 3, "{passes:?}");
        assert!(
            mid_segment_or_boundary.0 || mid_segment_or_boundary.1,
            "a pass stopped early: {passes:?}"
        );
        let capacity = passes[0].keys_mapped;
        assert!(capacity >= 100, "{passes:?}");
        for p in &passes[..passes.len() - 1] {
            assert_eq!(p.keys_mapped, capacity, "every full pass fills the map");
        }
        // Latest per key: exactly the last round below the active segment.
        let survivors: Vec<_> = record_views(&log, 0)
            .into_iter()
            .filter(|r| r.offset < active)
            .collect();
        let keys: BTreeSet<_> = survivors.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys.len(), survivors.len(), "one record per key");
        assert!(!log.compact(NOW, &policy).unwrap().cleaned);
    });
}

/// Kafka `testCleaningWithDeletes`: unique keys fill some segments, then every even key is deleted
/// with a tombstone, then more unique keys pad the log. A first pass removes every value of the
/// deleted keys and keeps their tombstones (the horizon has not passed); a pass once
/// `delete_retention` has passed removes the tombstones too: the deleted keys are gone entirely,
/// everything else keeps its one record.
#[test]
fn test_cleaning_with_deletes() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        while log.segment_count() < 6 {
            let o = log.end_offset();
            appended.one(&log, kv(&o.to_string(), &format!("v{o}"), NOW));
        }
        let leo = log.end_offset();
        for k in (0..leo).step_by(2) {
            appended.one(&log, tomb(&k.to_string(), NOW));
        }
        while log.segment_count() < 9 {
            let o = log.end_offset();
            appended.one(&log, kv(&o.to_string(), &format!("v{o}"), NOW));
        }
        let active = active_base(&log);
        assert!(
            active > leo + leo / 2,
            "the tombstones lie below the active segment"
        );

        let first = log.compact(NOW, &eager()).unwrap();
        assert!(first.cleaned, "{first:?}");
        assert_eq!(first.tombstones_removed, 0, "{first:?}");
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "tombstones kept",
        );
        let views = record_views(&log, 0);
        for k in (0..leo).step_by(2) {
            let key = k.to_string().into_bytes();
            let of_key: Vec<_> = views
                .iter()
                .filter(|r| r.key.as_ref() == Some(&key))
                .collect();
            assert_eq!(of_key.len(), 1, "key {k}: only its tombstone");
            assert_eq!(of_key[0].value, None, "key {k}");
        }

        // Just before the horizon: nothing is due, nothing runs.
        let early = log
            .compact(NOW + DAY_MS - 1, &CompactionPolicy::default())
            .unwrap();
        assert!(!early.cleaned, "{early:?}");

        let second = log
            .compact(NOW + DAY_MS, &CompactionPolicy::default())
            .unwrap();
        assert!(second.cleaned, "tombstones due trigger a pass: {second:?}");
        let deleted = leo.div_ceil(2);
        assert_eq!(second.tombstones_removed, deleted, "{second:?}");
        assert_eq!(second.records_removed, deleted, "{second:?}");
        let want = expected(&appended.0, active, |r| r.offset < active);
        assert_log(&log, &want, "tombstones removed");
        let keys: BTreeSet<Vec<u8>> = record_views(&log, 0)
            .into_iter()
            .filter_map(|r| r.key)
            .collect();
        for k in 0..leo {
            assert_eq!(
                keys.contains(k.to_string().as_bytes()),
                k % 2 == 1,
                "key {k}"
            );
        }
        // Nothing more is due.
        assert!(
            !log.compact(NOW + 10 * DAY_MS, &CompactionPolicy::default())
                .unwrap()
                .cleaned
        );
    });
}

/// Append filler records (unique keys, 300-byte values) until the log rolls, so everything before
/// lies in sealed segments.
fn roll(log: &Partition, appended: &mut Appended, ts: i64) {
    let segments = log.segment_count();
    while log.segment_count() == segments {
        let o = log.end_offset();
        appended.one(log, kv(&format!("filler-{o}"), &"f".repeat(300), ts));
    }
}

/// Kafka `testCleanTombstone` / the delete-horizon tests (`testDeleteHorizon...`,
/// `testCleanupWithDeleteRetention`): a tombstone is kept by the pass that first maps it and by
/// every pass before that pass's `now + delete_retention`; the first pass at or after it removes
/// it. Older values of the key go at once. A tombstone first mapped by a later pass gets its own,
/// later horizon; the horizons survive a reopen; a tombstone superseded by a later value goes at
/// once (not counted as an expired tombstone); a tombstone in the active segment is never touched.
/// Passes are triggered by due tombstones alone (no dirty data, default dirty ratio).
#[test]
fn test_clean_tombstone_delete_horizon() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let mut log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let retention = CompactionPolicy {
            delete_retention: Duration::from_millis(HOUR_MS as u64),
            ..CompactionPolicy::default()
        };
        let pass = |log: &Partition, now: i64, eager_ratio: bool| {
            let policy = CompactionPolicy {
                min_cleanable_dirty_ratio: if eager_ratio { 0.0 } else { 0.5 },
                ..retention
            };
            log.compact(now, &policy).unwrap()
        };
        let t1 = NOW;
        let t2 = NOW + 30 * MINUTE_MS;
        let a = appended.one(&log, kv("a", "a0", NOW));
        appended.one(&log, kv("b", "b0", NOW));
        appended.one(&log, kv("a", "a1", NOW));
        let d = appended.one(&log, kv("d", "d0", NOW));
        let tomb_a = appended.one(&log, tomb("a", NOW));
        let tomb_d = appended.one(&log, tomb("d", NOW));
        roll(&log, &mut appended, NOW);
        let end1 = active_base(&log);

        // Pass 1 maps the tombstones of a and d: kept, with horizon t1 + 1h.
        let r = pass(&log, t1, true);
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.tombstones_removed, 0, "{r:?}");
        let mut gone: BTreeSet<u64> = BTreeSet::new();
        let model = |appended: &Appended, end: u64, gone: &BTreeSet<u64>| {
            expected(&appended.0, end, |r| gone.contains(&r.offset))
        };
        assert_log(&log, &model(&appended, end1, &gone), "pass 1");
        let views = record_views(&log, 0);
        assert!(views.iter().all(|r| r.offset != a && r.offset != d));
        assert!(views
            .iter()
            .any(|r| r.offset == tomb_a && r.value.is_none()));

        // Pass 2 (t2) first maps b's tombstone (horizon t2 + 1h); d gets a value again, which
        // supersedes its tombstone at once.
        let tomb_b = appended.one(&log, tomb("b", NOW));
        let d1 = appended.one(&log, kv("d", "d1", NOW));
        roll(&log, &mut appended, NOW);
        let end2 = active_base(&log);
        let r = pass(&log, t2, true);
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.tombstones_removed, 0, "superseded is not expired: {r:?}");
        assert_log(&log, &model(&appended, end2, &gone), "pass 2");
        let views = record_views(&log, 0);
        assert!(views.iter().all(|r| r.offset != tomb_d));
        assert!(views.iter().any(|r| r.offset == d1));
        assert!(views.iter().any(|r| r.offset == tomb_b));

        // A tombstone in the active segment, never mapped.
        let tomb_active = appended.one(&log, tomb("e", NOW));

        // The horizons are durable.
        log.close().unwrap();
        drop(log);
        log = open(&fs, dir, &clock);
        assert_eq!(log.first_dirty_offset(), end2);

        // Before a's horizon nothing is due.
        let r = pass(&log, t1 + HOUR_MS - 1, false);
        assert!(!r.cleaned, "{r:?}");
        assert_log(&log, &model(&appended, end2, &gone), "before a's horizon");

        // At a's horizon: a's tombstone goes, b's stays.
        let r = pass(&log, t1 + HOUR_MS, false);
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.tombstones_removed, 1, "{r:?}");
        gone.insert(tomb_a);
        assert_log(&log, &model(&appended, end2, &gone), "a's horizon");

        let r = pass(&log, t2 + HOUR_MS - 1, false);
        assert!(!r.cleaned, "{r:?}");
        let r = pass(&log, t2 + HOUR_MS, false);
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.tombstones_removed, 1, "{r:?}");
        gone.insert(tomb_b);
        let want = model(&appended, end2, &gone);
        assert_log(&log, &want, "b's horizon");
        assert!(want.iter().any(|r| r.offset == tomb_active));
        let keys: BTreeSet<_> = want
            .iter()
            .filter(|r| r.offset < end2)
            .filter_map(|r| r.key.clone())
            .collect();
        assert!(!keys.contains(b"a".as_slice()) && !keys.contains(b"b".as_slice()));
        assert!(keys.contains(b"d".as_slice()));

        // Much later: nothing is due, and the active segment's tombstone is untouched.
        let r = pass(&log, NOW + 100 * DAY_MS, false);
        assert!(!r.cleaned, "{r:?}");
        assert_log(&log, &want, "much later");
    });
}

/// Kafka `testCleaningBeyondMissingOffsets` (and `testCleaningWithOffsetGaps`): a log whose offsets
/// already have gaps, left by an earlier pass inside batches, between batches and at segment ends,
/// is cleaned again correctly; the surviving batches keep their offset ranges, segment offset
/// ranges stay ordered, and a read at any missing offset returns the next record, before and after
/// a reopen.
#[test]
fn test_cleaning_beyond_missing_offsets() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let mut rng = TestRng::new(5);
        let mut appended_ranges = BTreeSet::new();
        let mut append_round = |log: &Partition, appended: &mut Appended, n: usize, keys: u64| {
            for _ in 0..n {
                let size = 1 + rng.below(4) as usize;
                let batch: Vec<Record> = (0..size)
                    .map(|_| {
                        let k = rng.below(keys);
                        kv(
                            &format!("key-{k}"),
                            &format!("value-{}", rng.below(1000)),
                            NOW,
                        )
                    })
                    .collect();
                let info = appended.batch(log, &batch);
                appended_ranges.insert((info.base_offset, info.last_offset));
            }
        };
        append_round(&log, &mut appended, 60, 30);
        let end1 = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let want1 = expected(&appended.0, end1, none_gone);
        assert_log(&log, &want1, "first pass");
        let removed =
            appended.below(end1).count() - want1.iter().filter(|r| r.offset < end1).count();
        assert!(
            removed > 20,
            "the first pass left gaps ({removed} records removed)"
        );

        append_round(&log, &mut appended, 60, 45);
        let end2 = active_base(&log);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned, "{r:?}");
        let want = expected(&appended.0, end2, none_gone);
        assert_log(&log, &want, "second pass over gaps");

        // Segment offset ranges: every batch lies within its segment, below the next one's base.
        let segments = log.segments();
        for pair in segments.windows(2) {
            let (seg, next) = (&pair[0], &pair[1]);
            assert!(seg.base_offset() < next.base_offset());
            assert!(seg.end_offset() <= next.base_offset());
            for r in want
                .iter()
                .filter(|r| r.offset >= seg.base_offset() && r.offset < next.base_offset())
            {
                let read = log.read(r.offset, 1).unwrap();
                let batch = &read.batches()[0];
                assert!(batch.base_offset() >= seg.base_offset());
                assert!(batch.next_offset() <= next.base_offset());
            }
        }
        // Batches keep their offset ranges: every batch read back is one the appender made
        // (apart from the empty batches, holding no record, that end cleaned segments whose last
        // batches went).
        let mut batch_ranges = BTreeSet::new();
        let mut next = 0;
        while next < log.end_offset() {
            let read = log.read(next, 1 << 16).unwrap();
            for b in read.batches().iter().filter(|b| b.record_count() > 0) {
                batch_ranges.insert((b.base_offset(), b.last_offset()));
            }
            next = read.next_offset();
        }
        assert!(
            batch_ranges.is_subset(&appended_ranges),
            "a cleaned batch changed its offset range"
        );

        log.close().unwrap();
        drop(log);
        let log = open(&fs, dir, &clock);
        assert_log(&log, &want, "reopened after a clean close");
        crash_without_close(log);
        let log = open(&fs, dir, &clock);
        assert!(!log.recovery_report().clean_shutdown);
        assert_log(&log, &want, "reopened after a crash");
    });
}

/// Kafka `testRecoveryAfterCrash`, first half: a cleaned log reopens identically after a clean
/// close and after a crash without close (which rescans the tail and must accept cleaned segments
/// that end before the next segment starts: here every cleaned segment lost its last, keyless,
/// record). Appends continue at the end offset, and compaction goes on afterwards.
#[test]
fn test_recovery_after_crash() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        // Two ~400-byte batches to a segment: keyed, then keyless, so every cleaned segment ends
        // with a gap.
        let big = "x".repeat(380);
        for i in 0..12 {
            appended.one(&log, kv(&format!("key-{}", i % 4), &big, NOW + i));
            appended.one(&log, keyless(&big, NOW + i));
        }
        let active = active_base(&log);
        assert!(log.segment_count() >= 6);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned, "{r:?}");
        assert!(r.keyless_removed > 0, "{r:?}");
        let want = expected(&appended.0, active, none_gone);
        assert_log(&log, &want, "cleaned");
        // Every cleaned segment lost its last record: it ends before the next one starts.
        let segments = log.segments();
        assert!(segments.len() > 2);
        for pair in segments.windows(2) {
            let last = pair[1].base_offset() - 1;
            assert!(!want.iter().any(|r| r.offset == last), "{last} survived");
        }
        let times = NOW - 1..=NOW + 21;
        let before = lookups(&log, times.clone());
        let end = log.end_offset();

        log.close().unwrap();
        drop(log);
        let log = open(&fs, dir, &clock);
        assert!(log.recovery_report().clean_shutdown);
        assert_lookups_eq(
            &lookups(&log, times.clone()),
            &before,
            "after a clean close",
        );
        assert_log(&log, &want, "after a clean close");

        crash_without_close(log);
        let log = open(&fs, dir, &clock);
        let report = log.recovery_report();
        assert!(!report.clean_shutdown);
        assert_eq!(report.segments_deleted, 0, "{report:?}");
        assert_eq!(report.bytes_truncated, 0, "{report:?}");
        assert_lookups_eq(&lookups(&log, times.clone()), &before, "after a crash");
        assert_log(&log, &want, "after a crash");

        // Appends continue at the end offset; a second pass compacts across the reopen.
        assert_eq!(appended.one(&log, kv("key-0", "after", NOW + 100)), end);
        for i in 0..10 {
            appended.one(&log, kv(&format!("key-{}", i % 6), &big, NOW + 100 + i));
        }
        let active = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let want = expected(&appended.0, active, none_gone);
        assert_log(&log, &want, "second pass after the crash");
        crash_without_close(log);
        let log = open(&fs, dir, &clock);
        assert_log(&log, &want, "second crash");
        let end = log.end_offset();
        assert_eq!(log.append(kv("k", "v", NOW)).unwrap(), end);
    });
}

const CRASH_DIR: &str = "/data/p0";
const CRASH_RECORDS: usize = 30;

fn crash_config() -> LogConfig {
    config(SEGMENT_BYTES)
}

/// `fs` on the fixed clock `NOW`.
fn sim_env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(NOW)),
    }
}

/// The files of a durable, cleanly closed log on `SimFs`: 30 records over 20 keys (with
/// ~130-byte values, so the survivors fill several cleaned segments), some tombstones and keyless
/// records, in batches of one to three.
fn crash_setup() -> (Vec<(std::path::PathBuf, Vec<u8>)>, Vec<RecordView>) {
    let fs = SimFs::new(1);
    let log = Partition::open_with_env(CRASH_DIR, crash_config(), sim_env(&fs)).unwrap();
    let mut appended = Appended::default();
    let mut rng = TestRng::new(42);
    while appended.0.len() < CRASH_RECORDS {
        let n = 1 + rng.below(3);
        let batch: Vec<Record> = (0..n)
            .map(|_| {
                let o = appended.0.len() as u64 + n;
                let ts = NOW + rng.below(1000) as i64;
                match rng.below(12) {
                    0 => tomb(&format!("key-{}", rng.below(20)), ts),
                    1 => keyless(&format!("keyless-{o}"), ts),
                    _ => {
                        let mut v = format!("value-{o}-").into_bytes();
                        v.resize(130, b'.');
                        Record::new(v)
                            .with_key(format!("key-{}", rng.below(20)))
                            .with_timestamp(ts)
                            .with_header("h", Bytes::from(format!("{o}")))
                    }
                }
            })
            .collect();
        appended.batch(&log, &batch);
    }
    log.flush().unwrap();
    log.close().unwrap();
    drop(log);
    let files = fs
        .read_dir(Path::new(CRASH_DIR))
        .unwrap()
        .into_iter()
        .map(|name| {
            let path = Path::new(CRASH_DIR).join(name);
            let data = fs.read_file(&path).unwrap();
            (path, data)
        })
        .collect();
    (files, appended.0)
}

/// A fresh `SimFs` holding `files`, durably.
fn crash_fs(seed: u64, files: &[(std::path::PathBuf, Vec<u8>)]) -> SimFs {
    let fs = SimFs::new(seed);
    for (path, data) in files {
        fs.write_file(path, data);
    }
    fs
}

/// Kafka `testRecoveryAfterCrash`, second half: the cleaner is stopped by a power cut at every
/// mutating operation a pass makes (writing the `.cleaned` files, the cleaner checkpoint with the
/// swap range, the renames to `.swap` (the commit point), deleting the replaced segments, renaming
/// the `.swap` files into place, the final checkpoint), then the unsynced state is lost or torn.
/// The reopen must succeed and leave no `.cleaned`/`.swap` file; the log must be a valid partial
/// clean: every record it holds is an appended record at its own offset, every record the model
/// keeps is there, nothing durable is lost. Running the pass again (then closing and reopening)
/// ends exactly at the model.
#[test]
fn test_recovery_after_crash_mid_clean_lose_unsynced() {
    crash_mid_clean(CrashMode::LoseUnsynced);
}

/// As [`test_recovery_after_crash_mid_clean_lose_unsynced`], with torn unsynced writes.
#[test]
fn test_recovery_after_crash_mid_clean_torn() {
    crash_mid_clean(CrashMode::Torn);
}

fn crash_mid_clean(mode: CrashMode) {
    let (files, appended) = crash_setup();
    let fs = crash_fs(1, &files);
    let log = Partition::open_with_env(CRASH_DIR, crash_config(), sim_env(&fs)).unwrap();
    let active = active_base(&log);
    let sealed_before = log.segment_count() - 1;
    let before = fs.mutating_ops();
    let r = log.compact(NOW, &eager()).unwrap();
    let ops = fs.mutating_ops() - before;
    assert!(r.cleaned, "{r:?}");
    assert!(
        r.segments_written >= 3,
        "several groups, so a cut can fall between two swaps: {r:?}"
    );
    assert!(sealed_before > r.segments_written, "{r:?}");
    let want = expected(&appended, active, none_gone);
    assert_log(&log, &want, "clean run");
    drop(log);

    let all: BTreeMap<u64, &RecordView> = appended.iter().map(|r| (r.offset, r)).collect();
    for n in 0..=ops {
        let what = format!("cut after {n} of {ops} ops, {mode:?}");
        let fs = crash_fs(n, &files);
        let log = Partition::open_with_env(CRASH_DIR, crash_config(), sim_env(&fs)).unwrap();
        fs.power_cut_after(n);
        let _ = log.compact(NOW, &eager());
        crash_without_close(log);
        fs.crash(mode);
        fs.clear_faults();

        let log = Partition::open_with_env(CRASH_DIR, crash_config(), sim_env(&fs))
            .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
        assert_eq!(
            leftovers(&fs, Path::new(CRASH_DIR)),
            Vec::<String>::new(),
            "{what}"
        );
        assert_eq!(log.end_offset(), appended.len() as u64, "{what}");
        let got = record_views(&log, 0);
        for r in &got {
            assert_eq!(Some(&r), all.get(&r.offset), "{what}: a record changed");
        }
        assert!(got.windows(2).all(|w| w[0].offset < w[1].offset), "{what}");
        let offsets: BTreeSet<u64> = got.iter().map(|r| r.offset).collect();
        for w in &want {
            assert!(
                offsets.contains(&w.offset),
                "{what}: survivor at {} lost",
                w.offset
            );
        }
        // Same latest value per key as the model.
        let latest = |views: &[RecordView]| {
            views
                .iter()
                .filter_map(|r| r.key.clone().map(|k| (k, r.offset)))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(latest(&got), latest(&want), "{what}");

        let rerun = log.compact(NOW, &eager()).unwrap();
        assert_eq!(record_views(&log, 0), want, "{what}: rerun {rerun:?}");
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(CRASH_DIR, crash_config(), sim_env(&fs)).unwrap();
        assert_eq!(record_views(&log, 0), want, "{what}: rerun, reopened");
        assert_eq!(log.first_dirty_offset(), active, "{what}");
    }
}

/// Kafka `testSegmentGrouping` (and `testSegmentGroupingWithSparseOffsets`): cleaned segments are
/// merged greedily: a source joins the current output while the output so far plus the whole source
/// fits `segment_bytes`. So many sparse segments collapse into few, no output exceeds
/// `segment_bytes` (unless one source alone already did), each output starts where its first source
/// started, and each next output starts with a source that did not fit. Contents and offsets are
/// preserved; a later pass merges earlier outputs with new data.
#[test]
fn test_segment_grouping() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let mut rng = TestRng::new(9);
        let mut append = |log: &Partition, appended: &mut Appended, n: u64, keys: u64| {
            for i in 0..n {
                let k = rng.below(keys);
                // An occasional record larger than a whole segment.
                let len = if i % 97 == 50 {
                    1500
                } else {
                    20 + rng.below(40)
                };
                appended.one(log, kv(&format!("key-{k}"), &"v".repeat(len as usize), NOW));
            }
        };
        for round in 0..2u64 {
            append(&log, &mut appended, 120, 12 + 10 * round);
            let sources = sealed_sizes(&log);
            let active = active_base(&log);
            let report = log.compact(NOW, &eager()).unwrap();
            assert!(report.cleaned, "round {round}: {report:?}");
            let what = format!("round {round}");
            assert_log(&log, &expected(&appended.0, active, none_gone), &what);
            let outputs = sealed_sizes(&log);
            assert!(
                outputs.len() < sources.len(),
                "{what}: {} sources, {} outputs",
                sources.len(),
                outputs.len()
            );
            let outs: Vec<(u64, u64)> = outputs.into_iter().collect();
            for (i, &(base, size)) in outs.iter().enumerate() {
                let source_size = sources[&base];
                assert!(
                    size <= SEGMENT_BYTES.max(source_size),
                    "{what}: output at {base} is {size} bytes"
                );
                if let Some(&(next, _)) = outs.get(i + 1) {
                    assert!(
                        size + sources[&next] > SEGMENT_BYTES,
                        "{what}: the source at {next} ({} bytes) would have fit the output at \
                         {base} ({size} bytes)",
                        sources[&next]
                    );
                }
            }
            assert!(report.segments_written <= outs.len(), "{what}: {report:?}");
        }
    });
}

/// Kafka `testMinCompactionLag` (`LogCleanerManagerTest` `testCleanableOffsetsForTime`,
/// `testCleanableOffsetsForShortTime`): segments written less than `min_compaction_lag` ago are not
/// cleaned, nor anything after the first of them; once they age, a later pass cleans them.
#[test]
fn test_min_compaction_lag() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW - 2 * HOUR_MS);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..150i64 {
            let ts = NOW - 2 * HOUR_MS;
            appended.one(
                &log,
                kv(&format!("key-{}", i % 10), &format!("old-{i}"), ts),
            );
        }
        clock.set(NOW - 10 * MINUTE_MS);
        let first_young = log.end_offset();
        for i in 0..150i64 {
            let ts = NOW - 10 * MINUTE_MS;
            appended.one(
                &log,
                kv(&format!("key-{}", i % 10), &format!("young-{i}"), ts),
            );
        }
        let active = active_base(&log);
        let young_segment = log
            .segments()
            .iter()
            .rev()
            .find(|s| s.base_offset() <= first_young)
            .unwrap()
            .base_offset();
        assert!(young_segment < active);
        let policy = CompactionPolicy {
            min_compaction_lag: Duration::from_millis(HOUR_MS as u64),
            ..eager()
        };

        let r = log.compact(NOW, &policy).unwrap();
        assert!(r.cleaned, "{r:?}");
        assert_eq!(
            r.first_dirty_offset, young_segment,
            "stops at the first young segment"
        );
        assert_log(
            &log,
            &expected(&appended.0, young_segment, none_gone),
            "young kept",
        );
        // Every young record is still there.
        let views = record_views(&log, 0);
        assert_eq!(
            views.iter().filter(|r| r.offset >= first_young).count(),
            300 - first_young as usize
        );

        // Not yet: 59 minutes after the young data.
        let r = log
            .compact(NOW - 10 * MINUTE_MS + HOUR_MS - MINUTE_MS, &policy)
            .unwrap();
        assert!(!r.cleaned, "{r:?}");
        let r = log.compact(NOW + HOUR_MS, &policy).unwrap();
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.first_dirty_offset, active);
        assert_log(&log, &expected(&appended.0, active, none_gone), "aged");
    });
}

/// Kafka `testMaxCompactionLag` (`LogCleanerManagerTest` `testLogsWithMaxCompactionLag...` /
/// `needCompactionNow`): a log whose dirty ratio stays below `min_cleanable_dirty_ratio` (1.0 here)
/// is not cleaned until its oldest dirty data is `max_compaction_lag` old, which forces a pass; a
/// far-future record timestamp cannot postpone it (the segment's append time caps it).
#[test]
fn test_max_compaction_lag() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        // Every record carries a timestamp far in the future.
        let future = NOW + 365 * DAY_MS;
        for i in 0..100i64 {
            appended.one(
                &log,
                kv(&format!("key-{}", i % 25), &format!("a-{i}"), future),
            );
        }
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        // Dirty data written at T (some of it into the segment that was active at the first
        // pass, which so becomes the first dirty segment, last written at T).
        let t = NOW + HOUR_MS;
        clock.set(t);
        for i in 0..40i64 {
            appended.one(
                &log,
                kv(&format!("key-{}", i % 5), &format!("b-{i}"), future),
            );
        }
        let active = active_base(&log);
        let first_dirty = log.first_dirty_offset();
        assert!(active > first_dirty, "some dirty sealed data");
        let policy = CompactionPolicy {
            min_cleanable_dirty_ratio: 1.0,
            max_compaction_lag: Deadline::After(Duration::from_millis(HOUR_MS as u64)),
            ..CompactionPolicy::default()
        };
        let ratio = model_dirty_ratio(&log);
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");

        let r = log.compact(t + HOUR_MS - 1, &policy).unwrap();
        assert!(!r.cleaned, "{r:?}");
        assert_eq!(r.dirty_ratio, ratio);
        assert_eq!(log.first_dirty_offset(), first_dirty);
        assert_log(
            &log,
            &expected(&appended.0, first_dirty, none_gone),
            "not yet",
        );

        let r = log.compact(t + HOUR_MS, &policy).unwrap();
        assert!(r.cleaned, "max lag forces a pass: {r:?}");
        assert_eq!(r.first_dirty_offset, active);
        assert_log(&log, &expected(&appended.0, active, none_gone), "forced");
    });
}

/// Kafka `LogCleanerManagerTest` dirty-ratio cases (`testCleanableRatio...`, and
/// `grabFilthiestCompactedLog` skipping logs below `min.cleanable.dirty.ratio`): the ratio is the
/// bytes of sealed segments at or after the first dirty offset over all sealed bytes; a pass below
/// 0.9 does nothing (and reports the ratio); once enough dirty data accumulates it runs.
#[test]
fn test_dirty_ratio_trigger() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let mut o = 0i64;
        let mut append = |log: &Partition, appended: &mut Appended, n: i64| {
            for _ in 0..n {
                // Unique keys: nothing is removed, so clean bytes stay large.
                appended.one(log, kv(&format!("key-{o}"), &format!("value-{o}"), NOW));
                o += 1;
            }
        };
        append(&log, &mut appended, 20);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let policy = CompactionPolicy {
            min_cleanable_dirty_ratio: 0.9,
            ..CompactionPolicy::default()
        };
        let mut runs = 0;
        for step in 0..100 {
            append(&log, &mut appended, 60);
            let ratio = model_dirty_ratio(&log);
            let first_dirty = log.first_dirty_offset();
            let r = log.compact(NOW, &policy).unwrap();
            assert_eq!(r.dirty_ratio, ratio, "step {step}: {r:?}");
            if ratio < 0.9 {
                assert!(!r.cleaned, "step {step}: {r:?}");
                assert_eq!(log.first_dirty_offset(), first_dirty);
                assert_eq!(
                    record_views(&log, 0),
                    expected(&appended.0, first_dirty, none_gone),
                    "step {step}: below the ratio nothing changes"
                );
            } else {
                assert!(r.cleaned, "step {step}: {r:?}");
                runs += 1;
                break;
            }
        }
        assert_eq!(runs, 1, "the ratio was reached");
        let active = active_base(&log);
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "after the pass",
        );
    });
}

/// Kafka's cleaner drops records without a key (and the `compact` policy refuses them): below the
/// cleaned range every keyless record goes, whether alone in its batch or between keyed records,
/// counted in `keyless_removed`; keyless records in the active segment stay.
#[test]
fn test_keyless_records_are_removed() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..120i64 {
            match i % 3 {
                0 => {
                    appended.one(&log, keyless(&format!("alone-{i}"), NOW));
                }
                1 => {
                    appended.batch(
                        &log,
                        &[
                            kv(&format!("key-{}", i % 7), &format!("v-{i}"), NOW),
                            keyless(&format!("between-{i}"), NOW),
                            kv(&format!("key-{}", (i + 1) % 7), &format!("w-{i}"), NOW),
                        ],
                    );
                }
                _ => {
                    appended.one(&log, kv(&format!("key-{}", i % 7), &format!("u-{i}"), NOW));
                }
            }
        }
        appended.one(&log, keyless("in the active segment", NOW));
        let active = active_base(&log);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned, "{r:?}");
        let keyless_below = appended.below(active).filter(|r| r.key.is_none()).count() as u64;
        assert_eq!(r.keyless_removed, keyless_below, "{r:?}");
        let want = expected(&appended.0, active, none_gone);
        let removed =
            appended.below(active).count() - want.iter().filter(|r| r.offset < active).count();
        assert_eq!(r.records_removed, removed as u64, "{r:?}");
        assert_log(&log, &want, "keyless removed");
        assert!(record_views(&log, 0)
            .iter()
            .filter(|r| r.key.is_none())
            .all(|r| r.offset >= active));
        assert!(want.iter().any(|r| r.key.is_none()), "the active one stays");
    });
}

/// Records for the header/timestamp tests: batches of one to four records over 8 keys, headers on
/// some (repeated header keys, null header values), timestamps wandering out of order.
fn append_rich(log: &Partition, appended: &mut Appended, batches: u64, seed: u64) {
    let mut rng = TestRng::new(seed);
    for b in 0..batches {
        let n = 1 + rng.below(4);
        let batch: Vec<Record> = (0..n)
            .map(|_| {
                let ts = NOW + 10 * b as i64 + rng.below(61) as i64 - 30;
                let len = 10 + rng.below(60) as usize;
                let mut r = Record::new(rng.bytes(len))
                    .with_key(format!("key-{}", rng.below(8)))
                    .with_timestamp(ts);
                match rng.below(4) {
                    0 => {}
                    1 => r = r.with_header("h", Bytes::from(rng.bytes(5))),
                    2 => r = r.with_header("h", None),
                    _ => {
                        r = r
                            .with_header("trace", Bytes::from(rng.bytes(3)))
                            .with_header("trace", Bytes::from(rng.bytes(4)))
                            .with_header("empty", Bytes::new())
                    }
                }
                r
            })
            .collect();
        appended.batch(log, &batch);
    }
}

/// Kafka's cleaner rewrites survivors with their timestamps and headers intact
/// (`testCleanerRetainsHeadersAndTimestamps`-style checks in `LogCleanerTest`): every survivor
/// reads back with its key, value, timestamp and headers, including from batches that lost some
/// records (re-encoded) and under `LogAppendTime`, where the survivors keep their batch's append
/// time.
#[test]
fn test_compaction_preserves_headers_and_timestamps() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        append_rich(&log, &mut appended, 120, 3);
        let active = active_base(&log);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned && r.records_removed > 0, "{r:?}");
        let want = expected(&appended.0, active, none_gone);
        assert!(want
            .iter()
            .any(|r| !r.headers.is_empty() && r.offset < active));
        assert_log(&log, &want, "create time");
    });
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = Partition::open_with_env(
            dir,
            LogConfig {
                timestamp_type: TimestampType::LogAppendTime,
                ..config(SEGMENT_BYTES)
            },
            env(&fs, &clock),
        )
        .unwrap();
        let mut appended = Appended::default();
        for b in 0..40 {
            clock.set(NOW + 1000 * b);
            let batch: Vec<Record> = (0..3)
                .map(|i| kv(&format!("key-{}", (b + i) % 6), &format!("v-{b}-{i}"), 5))
                .collect();
            appended.batch(&log, &batch);
        }
        let active = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "log append time",
        );
    });
}

/// `offset_for_time` after compaction (Kafka `testCleaningWithTimeIndex`-style: the cleaned
/// segments' time indexes are rebuilt from the survivors): for every timestamp it answers the first
/// surviving record, in offset order, whose timestamp is at least that, with out-of-order
/// timestamps; the same after a clean close and after a crash.
#[test]
fn test_offset_for_time_after_compaction() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        append_rich(&log, &mut appended, 100, 11);
        let active = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let want = expected(&appended.0, active, none_gone);
        let check = |log: &Partition, what: &str| {
            for ts in NOW - 40..=NOW + 1040 {
                assert_eq!(
                    log.offset_for_time(ts).unwrap(),
                    brute_force_offset_for_time(&want, ts),
                    "{what}: offset_for_time({ts})"
                );
            }
        };
        check(&log, "after compaction");
        log.close().unwrap();
        drop(log);
        let log = open(&fs, dir, &clock);
        check(&log, "after a clean close");
        crash_without_close(log);
        let log = open(&fs, dir, &clock);
        check(&log, "after a crash");
        assert_log(&log, &want, "contents");
    });
}

/// Kafka `testCorruptMessageSizeLargerThanBytesAvailable` / `testCleanCorruptMessageSet`: a pass
/// that meets a damaged batch fails with `Error::Corrupt` and changes nothing: the segment list,
/// the first dirty offset and the rest of the log are as before, no cleaner file is left behind,
/// and the partition still takes appends.
#[test]
fn test_corrupt_segment_aborts_the_pass() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..150i64 {
            appended.one(
                &log,
                kv(&format!("key-{}", i % 10), &format!("value-{i:04}"), NOW),
            );
        }
        let segments: Vec<(u64, u64)> = sealed_sizes(&log).into_iter().collect();
        assert!(segments.len() >= 5);
        log.close().unwrap();
        drop(log);
        // Damage a value byte in the middle of the third segment.
        let (victim, size) = segments[2];
        let path = topiclog::segment::segment_file_name(dir, victim, SegmentFileKind::Log);
        let byte = common::file_bytes(&*fs, &path)[size as usize - 3];
        common::overwrite(&*fs, &path, size - 3, &[byte ^ 0x55]);

        let log = open(&fs, dir, &clock);
        match log.compact(NOW, &eager()) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(leftovers(&*fs, dir), Vec::<String>::new());
        assert_eq!(sealed_sizes(&log).into_iter().collect::<Vec<_>>(), segments);
        assert_eq!(log.first_dirty_offset(), 0);
        // Everything outside the damaged segment still reads back unchanged.
        let next_base = segments[3].0;
        let outside: Vec<_> = appended
            .0
            .iter()
            .filter(|r| r.offset < victim || r.offset >= next_base)
            .cloned()
            .collect();
        let got: Vec<RecordView> = outside
            .iter()
            .map(|r| RecordView::of(&log.read(r.offset, 1).unwrap().records().next().unwrap()))
            .collect();
        assert_eq!(got, outside);
        let end = log.end_offset();
        assert_eq!(log.append(kv("k", "v", NOW)).unwrap(), end);
    });
}

/// Truncation into the cleaned range (Kafka `testCleanerCheckpointTruncation`-style: the cleaner
/// checkpoint moves back with the log end): after `truncate_to` inside a cleaned segment, the
/// first dirty offset is at most the new end; new appends and another pass compact the kept prefix
/// against the new data; a crash and reopen keeps it all.
#[test]
fn test_truncation_into_cleaned_range() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..120i64 {
            appended.one(&log, kv(&format!("key-{}", i % 25), &format!("a-{i}"), NOW));
        }
        let active = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let survivors = expected(&appended.0, active, none_gone);
        // Truncate at the middle survivor below the active segment.
        let cleaned: Vec<_> = survivors.iter().filter(|r| r.offset < active).collect();
        let cut = cleaned[cleaned.len() / 2].offset;
        let new_end = log.truncate_to(cut).unwrap();
        assert!(new_end <= cut);
        assert!(log.first_dirty_offset() <= new_end);
        // The log is now the survivors below the new end.
        let mut current: Vec<RecordView> = survivors
            .iter()
            .filter(|r| r.offset < new_end)
            .cloned()
            .collect();
        assert_log(&log, &current, "truncated");
        let mut more = Appended::default();
        for i in 0..80i64 {
            more.one(&log, kv(&format!("key-{}", i % 40), &format!("b-{i}"), NOW));
        }
        assert_eq!(more.0[0].offset, new_end);
        current.extend(more.0);
        let active = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let want = expected(&current, active, none_gone);
        assert_log(&log, &want, "compacted after truncation");
        crash_without_close(log);
        let log = open(&fs, dir, &clock);
        assert_log(&log, &want, "crash after truncation and compaction");
    });
}

/// Kafka `LogCleanerManagerTest` `testCleanableOffsetsNeedsCheckpointReset`: when the log start
/// offset has moved past the first dirty offset (`delete_records`), cleaning starts at the log
/// start: what is visible from the start is compacted as if the records below it never existed, and
/// a retention pass then drops the whole segments below the start.
#[test]
fn test_cleaning_starts_at_the_log_start_offset() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..150i64 {
            appended.one(&log, kv(&format!("key-{}", i % 12), &format!("v-{i}"), NOW));
        }
        let start = 57;
        assert_eq!(log.delete_records(start).unwrap(), start);
        let active = active_base(&log);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.first_dirty_offset, active);
        let visible: Vec<RecordView> = appended
            .0
            .iter()
            .filter(|r| r.offset >= start)
            .cloned()
            .collect();
        let want = expected(&visible, active, none_gone);
        assert_log(&log, &want, "compacted from the start offset");
        let gone = log
            .apply_retention(NOW, &topiclog::RetentionPolicy::default())
            .unwrap();
        assert_eq!(gone.start_offset, start);
        assert!(log.segments()[0].base_offset() <= start);
        assert_log(&log, &want, "after retention");
    });
}

/// Kafka `testCleanSegmentsWithConcurrentSegmentDeletion`-style concurrency: appends go on during a
/// pass (rolling segments the pass does not touch); afterwards the log is exactly the model with
/// the pass's cleaned end, and every appended record past it is there.
#[test]
fn test_appends_during_compaction() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..150i64 {
            appended.one(&log, kv(&format!("key-{}", i % 9), &format!("v-{i}"), NOW));
        }
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut more = Appended::default();
                for i in 0..150i64 {
                    more.one(&log, kv(&format!("key-{}", i % 13), &format!("w-{i}"), NOW));
                }
                more
            })
        };
        let r = log.compact(NOW, &eager()).unwrap();
        let more = writer.join().unwrap();
        appended.0.extend(more.0);
        assert!(r.cleaned, "{r:?}");
        let want = expected(&appended.0, r.first_dirty_offset, none_gone);
        assert_log(&log, &want, "appends during the pass");
        // A second pass catches up (if the writer rolled segments after the first pass planned).
        let active = active_base(&log);
        let second = log.compact(NOW, &eager()).unwrap();
        assert_eq!(second.cleaned, r.first_dirty_offset < active, "{second:?}");
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "second pass",
        );
    });
}

/// Kafka keeps readers working while the cleaner swaps segments (the old files are deleted only
/// once no one reads them; here they stay readable through open handles): a reader holding the
/// segment list from before a pass reads every old segment in full afterwards, exactly as it was.
#[test]
fn test_readers_keep_old_segments_across_swap() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..150i64 {
            appended.one(&log, kv(&format!("key-{}", i % 7), &format!("v-{i}"), NOW));
        }
        log.flush().unwrap();
        let old = log.segments();
        let active = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let mut seen = Vec::new();
        for seg in &old {
            let mut at = seg.base_offset();
            loop {
                let batches = seg.read(at, 1 << 16).unwrap();
                if batches.is_empty() {
                    break;
                }
                for b in &batches {
                    seen.extend(b.records().map(|r| RecordView::of(&r)));
                    at = b.next_offset();
                }
            }
        }
        assert_eq!(seen, appended.0, "the old segments read back unchanged");
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "the new segments",
        );
    });
}

/// Kafka judges `min.compaction.lag.ms` by a segment's largest record timestamp. After a pass
/// whose key map filled, the segment holding the new first dirty offset is a freshly written
/// cleaned segment; its data is as old as before, so with the records two hours old and a one-hour
/// lag, the next pass must continue where the map stopped.
#[test]
fn test_partial_clean_continues_under_min_compaction_lag() {
    // Real wall-clock time, as a caller would pass it: the bug needs the file system's mtime.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    both_fs(|fs, dir| {
        let written = now - 2 * HOUR_MS;
        let clock = ManualClock::new(written);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        // Batches of ten keys, each twice in a row: the map fills inside a batch whose first
        // records it can clean, so that batch's segment is rewritten.
        for chunk in (0..400).step_by(10) {
            let batch: Vec<Record> = (chunk..chunk + 10)
                .flat_map(|k| (0..2).map(move |round| (k, round)))
                .map(|(k, round)| kv(&format!("k{k}"), &format!("r{round}"), written))
                .collect();
            appended.batch(&log, &batch);
        }
        let active = active_base(&log);
        let policy = CompactionPolicy {
            map_budget_bytes: MIN_MAP_BUDGET_BYTES,
            min_compaction_lag: Duration::from_millis(HOUR_MS as u64),
            ..eager()
        };
        let first = log.compact(now, &policy).unwrap();
        assert!(first.cleaned && first.map_full, "{first:?}");
        let partial = log
            .segments()
            .into_iter()
            .rev()
            .find(|s| s.base_offset() <= first.first_dirty_offset)
            .unwrap();
        if partial.base_offset() < first.first_dirty_offset {
            // The map filled inside the segment, which the pass rewrote (fresh file time).
            assert_ne!(partial.last_modified_ms(), Some(written));
        }
        let mut passes = 1;
        while log.first_dirty_offset() < active {
            let from = log.first_dirty_offset();
            let r = log.compact(now + passes, &policy).unwrap();
            assert!(
                r.cleaned && r.first_dirty_offset > from,
                "pass {} made no progress from {from} (active segment at {active}): {r:?}",
                passes + 1
            );
            passes += 1;
            assert!(passes < 20);
        }
        assert_log(&log, &expected(&appended.0, active, none_gone), "finished");
    });
}

/// Kafka cleans by ratio only when `cleanableRatio > min.cleanable.dirty.ratio` (strictly), so a
/// ratio of 1.0 never triggers a pass by itself: only `max.compaction.lag.ms` (or a manual clean)
/// does. Here a never-cleaned log is all dirty (ratio exactly 1.0), and no lag is due.
#[test]
fn test_dirty_ratio_one_never_triggers_by_ratio() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        for i in 0..100i64 {
            log.append(kv(&format!("key-{}", i % 5), "v", NOW)).unwrap();
        }
        let policy = CompactionPolicy {
            min_cleanable_dirty_ratio: 1.0,
            max_compaction_lag: Deadline::After(Duration::from_millis(DAY_MS as u64)),
            ..CompactionPolicy::default()
        };
        let r = log.compact(NOW + HOUR_MS, &policy).unwrap();
        assert_eq!(r.dirty_ratio, 1.0);
        assert!(!r.cleaned, "{r:?}");
    });
}
