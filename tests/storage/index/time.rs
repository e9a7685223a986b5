//! `TimeIndex` on its own: floor lookups by timestamp (empty, before the first entry, on entries,
//! between them, after the last), the append rules (an equal timestamp is ignored, a smaller one or
//! a smaller offset is rejected, a full index rejects), truncation by offset, the sanity check, and
//! persistence through flush/load/map. The scenarios follow Kafka's `TimeIndexTest`.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::both_fs;
use topiclog::fs::{FileSystem, OpenMode, SimFs};
use topiclog::segment::{TimeIndex, TimestampOffset};
use topiclog::Error;

const BASE: u64 = 45;
const ENTRY: usize = 12;
const MAX_ENTRIES: usize = 30;

fn sim() -> Arc<dyn FileSystem> {
    Arc::new(SimFs::new(1))
}

fn index_path(dir: &Path) -> PathBuf {
    dir.join("00000000000000000045.timeindex")
}

fn new_index() -> TimeIndex {
    TimeIndex::create(
        sim(),
        &index_path(Path::new("/idx")),
        BASE,
        MAX_ENTRIES * ENTRY,
    )
}

fn ts(timestamp: i64, offset: u64) -> TimestampOffset {
    TimestampOffset { timestamp, offset }
}

fn none_before(base: u64) -> TimestampOffset {
    ts(i64::MIN, base)
}

fn entries(index: &TimeIndex) -> Vec<TimestampOffset> {
    (0..index.len()).map(|i| index.entry(i).unwrap()).collect()
}

/// Kafka's fixture: entries `(10 i, BASE + 10 i)` for `i` in `1..=n`.
fn append_entries(index: &mut TimeIndex, n: u64) {
    for i in 1..=n {
        index.append(10 * i as i64, BASE + 10 * i).unwrap();
    }
}

fn assert_rejected(result: topiclog::Result<()>, what: &str) {
    match result {
        Err(Error::IndexAppend { .. }) => {}
        other => panic!("{what}: expected Error::IndexAppend, got {other:?}"),
    }
}

/// Raw entries as they lie on disk: timestamp `i64`, relative offset `u32`, big-endian (Kafka's
/// layout).
fn raw_entries(entries: &[(i64, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(t, rel) in entries {
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&rel.to_be_bytes());
    }
    out
}

fn write_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) {
    fs.create_dir_all(path.parent().unwrap()).unwrap();
    let f = fs.open(path, OpenMode::Create).unwrap();
    f.set_len(0).unwrap();
    f.write_all_at(bytes, 0).unwrap();
}

#[test]
fn lookup_on_empty_index_returns_segment_start() {
    let index = new_index();
    assert!(index.is_empty());
    assert_eq!(index.last_entry(), None);
    assert_eq!(index.entry(0), None);
    for t in [i64::MIN, -1, 0, 100, i64::MAX] {
        assert_eq!(index.lookup(t), none_before(BASE), "lookup({t})");
    }
}

#[test]
fn lookup_returns_floor_entry_by_timestamp() {
    let mut index = new_index();
    append_entries(&mut index, MAX_ENTRIES as u64 - 1);
    // Before the earliest entry: the segment start.
    assert_eq!(index.lookup(9), none_before(BASE));
    assert_eq!(index.lookup(i64::MIN), none_before(BASE));
    // Between two entries: the lower one.
    assert_eq!(index.lookup(25), ts(20, 65));
    // On an entry: that entry.
    assert_eq!(index.lookup(30), ts(30, 75));
    // After the last entry: the last one.
    assert_eq!(index.lookup(i64::MAX), ts(290, BASE + 290));

    let map: BTreeMap<i64, u64> = entries(&index)
        .into_iter()
        .map(|e| (e.timestamp, e.offset))
        .collect();
    for t in -5..320 {
        let expected = map
            .range(..=t)
            .next_back()
            .map_or(none_before(BASE), |(&t, &o)| ts(t, o));
        assert_eq!(index.lookup(t), expected, "lookup({t})");
    }
    assert_eq!(index.entry(0), Some(ts(10, 55)));
    assert_eq!(index.entry(3), Some(ts(40, 85)));
    assert_eq!(index.last_entry(), Some(ts(290, BASE + 290)));
}

#[test]
fn append_with_equal_timestamp_is_ignored() {
    let mut index = new_index();
    index.append(10, 55).unwrap();
    index.append(10, 60).unwrap();
    index.append(10, 55).unwrap();
    assert_eq!(entries(&index), vec![ts(10, 55)]);
    assert_eq!(index.lookup(10), ts(10, 55));
}

#[test]
fn append_with_decreasing_timestamp_is_rejected() {
    let mut index = new_index();
    index.append(20, 60).unwrap();
    assert_rejected(index.append(15, 70), "smaller timestamp");
    assert_rejected(index.append(i64::MIN, 70), "i64::MIN timestamp");
    assert_eq!(entries(&index), vec![ts(20, 60)], "index unchanged");
}

#[test]
fn append_with_decreasing_offset_is_rejected() {
    let mut index = new_index();
    index.append(20, 60).unwrap();
    assert_rejected(index.append(30, 59), "smaller offset");
    assert_rejected(index.append(20, 50), "equal timestamp, smaller offset");
    assert_eq!(entries(&index), vec![ts(20, 60)], "index unchanged");
    // The offset may stay put while the timestamp grows (a batch raising the maximum twice).
    index.append(30, 60).unwrap();
    assert_eq!(entries(&index), vec![ts(20, 60), ts(30, 60)]);
}

#[test]
fn append_outside_the_segment_offset_range_is_rejected() {
    let mut index = new_index();
    assert_rejected(index.append(10, BASE - 1), "below the base offset");
    assert_rejected(
        index.append(10, BASE + u64::from(u32::MAX) + 1),
        "relative offset past u32::MAX",
    );
    assert!(index.is_empty());
    index.append(10, BASE + u64::from(u32::MAX)).unwrap();
    assert_eq!(index.lookup(11), ts(10, BASE + u64::from(u32::MAX)));
}

#[test]
fn full_index_rejects_appends() {
    let mut index = new_index();
    assert!(!index.is_full());
    append_entries(&mut index, MAX_ENTRIES as u64 - 1);
    assert!(!index.is_full());
    index.append(10_000, 1_000).unwrap();
    assert!(index.is_full());
    assert_rejected(index.append(20_000, 2_000), "append to a full index");
    assert_eq!(index.len(), MAX_ENTRIES);
    assert_eq!(index.last_entry(), Some(ts(10_000, 1_000)));
}

#[test]
fn truncate_above_last_entry_changes_nothing() {
    let mut index = new_index();
    append_entries(&mut index, 9);
    let before = entries(&index);
    index.truncate_to(BASE + 91);
    assert_eq!(entries(&index), before);
    index.truncate_to(u64::MAX);
    assert_eq!(entries(&index), before);
}

#[test]
fn truncate_at_an_entry_removes_it_and_all_later_ones() {
    let mut index = new_index();
    append_entries(&mut index, 9);
    index.truncate_to(BASE + 50);
    assert_eq!(
        entries(&index),
        (1..5)
            .map(|i| ts(10 * i, BASE + 10 * i as u64))
            .collect::<Vec<_>>()
    );
    assert_eq!(index.lookup(1000), ts(40, BASE + 40));
    // Appending continues from the new last entry.
    index.append(45, BASE + 50).unwrap();
    assert_eq!(index.lookup(47), ts(45, BASE + 50));
}

#[test]
fn truncate_between_entries_keeps_the_lower_one() {
    let mut index = new_index();
    append_entries(&mut index, 9);
    index.truncate_to(BASE + 55);
    assert_eq!(index.len(), 5);
    assert_eq!(index.last_entry(), Some(ts(50, BASE + 50)));
    assert_rejected(index.append(60, BASE + 49), "offset below the kept entry");
    index.append(60, BASE + 53).unwrap();
}

#[test]
fn truncate_below_first_entry_empties_the_index() {
    // Kafka: truncating at the first entry's offset leaves nothing.
    for cut in [BASE + 10, BASE + 9, BASE, 0] {
        let mut index = new_index();
        append_entries(&mut index, MAX_ENTRIES as u64 - 1);
        index.truncate_to(cut);
        assert!(index.is_empty(), "truncate_to({cut})");
        assert_eq!(index.lookup(100), none_before(BASE));
        index.append(5, BASE).unwrap();
    }
    let mut index = new_index();
    append_entries(&mut index, 5);
    index.clear();
    assert!(index.is_empty());
    index.append(1, BASE + 1).unwrap();
}

#[test]
fn sanity_check_accepts_well_formed_indexes() {
    let mut index = new_index();
    index.sanity_check(BASE).unwrap();
    append_entries(&mut index, 5);
    index.sanity_check(BASE + 51).unwrap();
    // An entry at the base offset is fine.
    let mut at_base = new_index();
    at_base.append(7, BASE).unwrap();
    at_base.sanity_check(BASE + 1).unwrap();
}

/// Raw entries on disk, the next offset of the segment to check against, and the index of the first bad entry.
type BadCase = (Vec<(i64, u32)>, u64, usize);

#[test]
fn sanity_check_catches_bad_entries() {
    both_fs(|fs, dir| {
        let path = index_path(dir);
        let cases: Vec<BadCase> = vec![
            (vec![(10, 1), (5, 2)], BASE + 10, 1),   // timestamp goes back
            (vec![(10, 1), (10, 2)], BASE + 10, 1),  // timestamp repeats
            (vec![(10, 5), (20, 4)], BASE + 10, 1),  // offset goes back
            (vec![(10, 1), (20, 10)], BASE + 10, 1), // offset at the segment end
            (vec![(10, 1), (20, u32::MAX)], BASE + 10, 1), // offset far past the end
            (vec![(0, 0), (0, 0), (0, 0)], BASE + 10, 1), // a zeroed file
            (vec![(1, 1), (2, 2), (3, 3), (-4, 4)], BASE + 10, 3), // damage after good entries
        ];
        for (raw, next_offset, bad) in cases {
            write_file(&*fs, &path, &raw_entries(&raw));
            let loaded = TimeIndex::load(fs.clone(), &path, BASE, 1 << 10).unwrap();
            let mapped = TimeIndex::map(fs.clone(), &path, BASE, 1 << 10).unwrap();
            for index in [&loaded, &mapped] {
                assert_eq!(index.len(), raw.len());
                match index.sanity_check(next_offset) {
                    Err(Error::Corrupt {
                        path: p, position, ..
                    }) => {
                        assert_eq!(p, path);
                        assert_eq!(position, (bad * ENTRY) as u64, "{raw:?}");
                    }
                    other => panic!("{raw:?} with next offset {next_offset}: {other:?}"),
                }
            }
        }
        write_file(&*fs, &path, &raw_entries(&[(10, 1), (20, 1), (30, 9)]));
        let index = TimeIndex::load(fs.clone(), &path, BASE, 1 << 10).unwrap();
        index.sanity_check(BASE + 10).unwrap();
    });
}

#[test]
fn flush_then_load_round_trips() {
    both_fs(|fs, dir| {
        fs.create_dir_all(dir).unwrap();
        let path = index_path(dir);
        let mut index = TimeIndex::create(fs.clone(), &path, BASE, 100 * ENTRY);
        append_entries(&mut index, 10);
        let written = entries(&index);
        index.flush(true).unwrap();
        assert_eq!(common::file_len(&*fs, &path), (10 * ENTRY) as u64);

        let mut loaded = TimeIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(entries(&loaded), written);
        loaded.sanity_check(BASE + 101).unwrap();
        for t in -5..120 {
            assert_eq!(loaded.lookup(t), index.lookup(t), "lookup({t})");
        }

        loaded.append(500, BASE + 200).unwrap();
        loaded.flush(true).unwrap();
        let again = TimeIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(entries(&again), entries(&loaded));
        assert_eq!(again.len(), 11);

        // A trailing partial entry is dropped on load and map.
        common::append_to_file(&*fs, &path, &[0xCD; 7]);
        let torn = TimeIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(entries(&torn), entries(&loaded));
        let mapped = TimeIndex::map(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(entries(&mapped), entries(&loaded));

        // A truncation is persisted by the next flush.
        let mut cut = TimeIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        cut.truncate_to(BASE + 35);
        cut.flush(true).unwrap();
        let reloaded = TimeIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(
            entries(&reloaded),
            vec![ts(10, BASE + 10), ts(20, BASE + 20), ts(30, BASE + 30)]
        );
    });
}

#[test]
fn map_round_trips() {
    both_fs(|fs, dir| {
        fs.create_dir_all(dir).unwrap();
        let path = index_path(dir);
        let mut index = TimeIndex::create(fs.clone(), &path, BASE, MAX_ENTRIES * ENTRY);
        append_entries(&mut index, MAX_ENTRIES as u64 - 1);
        index.flush(true).unwrap();
        let mapped = TimeIndex::map(fs.clone(), &path, BASE, MAX_ENTRIES * ENTRY).unwrap();
        assert_eq!(entries(&mapped), entries(&index));
        assert_eq!(mapped.base_offset(), BASE);
        mapped.sanity_check(BASE + 291).unwrap();
        for t in -5..320 {
            assert_eq!(mapped.lookup(t), index.lookup(t), "lookup({t})");
        }
        let missing = dir.join("00000000000000009999.timeindex");
        let empty = TimeIndex::map(fs.clone(), &missing, 9999, 1 << 10).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.lookup(i64::MAX), none_before(9999));
    });
}

/// A segment named for the very last offset (a damaged or hostile directory can hold one): the
/// sanity check reports its entry as out of range instead of overflowing.
#[test]
fn sanity_check_at_the_last_base_offset_does_not_overflow() {
    let mut index = TimeIndex::create(
        sim(),
        Path::new("/idx/18446744073709551615.timeindex"),
        u64::MAX,
        MAX_ENTRIES * ENTRY,
    );
    index.append(1_000, u64::MAX).unwrap();
    assert!(matches!(
        index.sanity_check(u64::MAX),
        Err(Error::Corrupt { .. })
    ));
}
