//! `.index` and `.timeindex` files against Kafka's layout and rules.
//!
//! Kafka (`LogSegment.append`, and `LogSegment.recover` when it rebuilds them): once more than
//! `index.interval.bytes` of batches were appended since the last entry, the offset index gets
//! `(largest offset appended, position of the appended batch)` (8 bytes: relative offset `i32`,
//! position `i32`, big-endian) and the time index `maybeAppend(max timestamp so far, offset of
//! the batch where it was reached)` (12 bytes: timestamp `i64`, relative offset `i32`), which adds
//! an entry only if the timestamp grew. For a single-batch append (and every entry `recover`
//! writes) the offset is the batch's **last** offset. A lookup takes the last entry at or below
//! the target and scans batches from its position, so any offset of the batch at that position is
//! safe to name; the tests check that safety rule and, separately, Kafka's exact choice.

use std::sync::Arc;

use topiclog::{LogConfig, ManualClock, TimestampType};

use crate::common::small_log;
use crate::disk::{self, DecodedSegment};
use crate::expect::{open_partition, Appended, NOW_MS};
use crate::spec;
use crate::write_side::append_mixed_batches;

/// A closed partition (create or log-append time) with several segments and index entries.
fn closed_partition(timestamp_type: TimestampType) -> (tempfile::TempDir, Vec<DecodedSegment>) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let config = LogConfig {
        timestamp_type,
        ..small_log(1024, 100)
    };
    let log = open_partition(&tmp.path().join("p0"), config, &clock);
    let mut appended = Appended::default();
    append_mixed_batches(&log, &mut appended, &clock);
    log.close().unwrap();
    let segments = disk::decode_dir(&tmp.path().join("p0"));
    assert!(segments.len() >= 4);
    (tmp, segments)
}

fn offset_entries(s: &DecodedSegment) -> Vec<(i32, i32)> {
    let what = s.files.log_path.with_extension("index");
    let bytes = s.files.index.as_ref().unwrap_or_else(|| {
        panic!(
            "{} is missing (Kafka keeps one per segment)",
            what.display()
        )
    });
    spec::parse_offset_index(bytes).unwrap_or_else(|e| panic!("{}: {e}", what.display()))
}

fn time_entries(s: &DecodedSegment) -> Vec<(i64, i32)> {
    let what = s.files.log_path.with_extension("timeindex");
    let bytes = s.files.time_index.as_ref().unwrap_or_else(|| {
        panic!(
            "{} is missing (Kafka keeps one per segment)",
            what.display()
        )
    });
    spec::parse_time_index(bytes).unwrap_or_else(|e| panic!("{}: {e}", what.display()))
}

/// The batch of `s` that holds `offset` (base ≤ offset ≤ last).
fn batch_holding(s: &DecodedSegment, offset: i64) -> Option<&disk::DecodedBatch> {
    s.batches
        .iter()
        .find(|b| b.raw.base_offset <= offset && offset <= b.raw.last_offset())
}

#[test]
fn offset_index_entries_point_at_the_batches_they_name() {
    for tt in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        let (_tmp, segments) = closed_partition(tt);
        let mut entries_seen = 0;
        for s in &segments {
            let what = s
                .files
                .log_path
                .with_extension("index")
                .display()
                .to_string();
            let entries = offset_entries(s);
            entries_seen += entries.len();
            let mut prev: Option<(i32, i32)> = None;
            for &(rel, pos) in &entries {
                assert!(rel >= 0 && pos >= 0, "{what}: entry ({rel}, {pos})");
                if let Some((prev_rel, prev_pos)) = prev {
                    assert!(
                        rel > prev_rel && pos > prev_pos,
                        "{what}: entries must grow in both fields: ({prev_rel}, {prev_pos}) then ({rel}, {pos})"
                    );
                }
                prev = Some((rel, pos));
                let batch = s
                    .batches
                    .iter()
                    .find(|b| b.position == pos as usize)
                    .unwrap_or_else(|| {
                        panic!("{what}: position {pos} is not the start of a batch")
                    });
                let offset = s.files.base_offset as i64 + i64::from(rel);
                assert!(
                    batch.raw.base_offset <= offset && offset <= batch.raw.last_offset(),
                    "{what}: entry offset {offset} outside the batch at {pos} ({}..={})",
                    batch.raw.base_offset,
                    batch.raw.last_offset()
                );
            }
        }
        assert!(entries_seen > 3, "{tt:?}: the test wants index entries");
    }
}

#[test]
fn offset_index_entries_name_the_batch_last_offset_as_kafka_writes() {
    for tt in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        let (_tmp, segments) = closed_partition(tt);
        for s in &segments {
            let what = s
                .files
                .log_path
                .with_extension("index")
                .display()
                .to_string();
            for (rel, pos) in offset_entries(s) {
                let Some(batch) = s.batches.iter().find(|b| b.position == pos as usize) else {
                    continue; // reported by the test above
                };
                assert_eq!(
                    s.files.base_offset as i64 + i64::from(rel),
                    batch.raw.last_offset(),
                    "{what}: entry at position {pos} names offset base+{rel}; Kafka's \
                     LogSegment.append/recover write the batch's last offset (batch {}..={})",
                    batch.raw.base_offset,
                    batch.raw.last_offset()
                );
            }
        }
    }
}

#[test]
fn offset_index_entries_are_sparse_by_index_interval_bytes() {
    // Kafka adds an entry only once more than index.interval.bytes (here 100) were appended
    // since the last one (or since the segment's start): never one at position 0.
    let (_tmp, segments) = closed_partition(TimestampType::CreateTime);
    for s in &segments {
        let what = s
            .files
            .log_path
            .with_extension("index")
            .display()
            .to_string();
        let mut last_pos = 0;
        for (_, pos) in offset_entries(s) {
            assert!(
                pos as usize > last_pos + 100,
                "{what}: entry at {pos} only {} bytes after the previous one at {last_pos}",
                pos as usize - last_pos
            );
            last_pos = pos as usize;
        }
    }
}

#[test]
fn time_index_entries_follow_kafka_rules() {
    for tt in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        let (_tmp, segments) = closed_partition(tt);
        let mut entries_seen = 0;
        let last = segments.len() - 1;
        for (i, s) in segments.iter().enumerate() {
            let what = s
                .files
                .log_path
                .with_extension("timeindex")
                .display()
                .to_string();
            let entries = time_entries(s);
            entries_seen += entries.len();
            let mut prev: Option<(i64, i32)> = None;
            for &(ts, rel) in &entries {
                assert!(rel >= 0, "{what}: relative offset {rel}");
                if let Some((prev_ts, prev_rel)) = prev {
                    assert!(
                        ts > prev_ts,
                        "{what}: timestamps must strictly increase: {prev_ts} then {ts}"
                    );
                    assert!(rel >= prev_rel, "{what}: offsets must not decrease");
                }
                prev = Some((ts, rel));
                // The batch holding the entry's offset reached the timestamp first: its max
                // timestamp is the entry's, and every batch before it in the segment is below it.
                let offset = s.files.base_offset as i64 + i64::from(rel);
                let batch = batch_holding(s, offset).unwrap_or_else(|| {
                    panic!("{what}: entry ({ts}, {offset}) names no offset of a batch")
                });
                assert_eq!(
                    batch.raw.max_timestamp, ts,
                    "{what}: entry ({ts}, {offset}): the batch there has max timestamp {}",
                    batch.raw.max_timestamp
                );
                for b in s.batches.iter().filter(|b| b.position < batch.position) {
                    assert!(
                        b.raw.max_timestamp < ts,
                        "{what}: entry ({ts}, {offset}) but the earlier batch at {} already has {}",
                        b.raw.base_offset,
                        b.raw.max_timestamp
                    );
                }
            }
            // A segment that was rolled (or closed) ends with its largest timestamp, as Kafka's
            // onBecomeInactiveSegment / close append it.
            if let Some(max) = s.batches.iter().map(|b| b.raw.max_timestamp).max() {
                let (last_ts, _) = *entries.last().unwrap_or_else(|| {
                    panic!("{what}: no entry in a segment with batches (segment {i} of {last})")
                });
                assert_eq!(
                    last_ts, max,
                    "{what}: last entry vs the segment's max timestamp"
                );
            }
        }
        assert!(
            entries_seen > 3,
            "{tt:?}: the test wants time index entries"
        );
    }
}

#[test]
fn time_index_entries_name_the_batch_last_offset_as_kafka_writes() {
    for tt in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        let (_tmp, segments) = closed_partition(tt);
        for s in &segments {
            let what = s
                .files
                .log_path
                .with_extension("timeindex")
                .display()
                .to_string();
            for (ts, rel) in time_entries(s) {
                let offset = s.files.base_offset as i64 + i64::from(rel);
                let Some(batch) = batch_holding(s, offset) else {
                    continue; // reported by the test above
                };
                assert_eq!(
                    offset,
                    batch.raw.last_offset(),
                    "{what}: entry ({ts}, base+{rel}); Kafka names the last offset of the batch \
                     holding the max timestamp (batch {}..={})",
                    batch.raw.base_offset,
                    batch.raw.last_offset()
                );
            }
        }
    }
}
