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

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    assert_lookups_eq, both_fs, brute_force_offset_for_time, crash_without_close, lookups,
    record_views, RecordView, TestRng,
};
use topiclog::fs::{CrashMode, FileSystem, SimFs};
use topiclog::limits::MIN_MAP_BUDGET_BYTES;
use topiclog::segment::SegmentFileKind;
use topiclog::{
    AppendInfo, Bytes, CompactionPolicy, CompactionReport, Deadline, Env, Error, LogConfig,
    ManualClock, Partition, Record, TimestampType,
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
    crate::common::small_log(segment_bytes, 128)
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

mod cleaning;
mod recovery;
mod triggers;
