//! `OffsetIndex` on its own: floor lookups (empty, below the first entry, on entries, between
//! them, above the last, at the largest relative offset), rejection of out-of-order, out-of-range
//! and overflowing appends, truncation, the sanity check, and persistence through flush/load/map.
//! The scenarios follow Kafka's `OffsetIndexTest`.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::{both_fs, TestRng};
use topiclog::fs::{FileSystem, OpenMode, SimFs};
use topiclog::segment::{OffsetIndex, OffsetPosition};
use topiclog::Error;

const BASE: u64 = 45;
const ENTRY: usize = 8;

fn sim() -> Arc<dyn FileSystem> {
    Arc::new(SimFs::new(1))
}

fn index_path(dir: &Path) -> PathBuf {
    dir.join("00000000000000000045.index")
}

/// An empty index for a segment at `BASE` holding at most `max_entries` entries.
fn new_index(max_entries: usize) -> OffsetIndex {
    OffsetIndex::create(
        sim(),
        &index_path(Path::new("/idx")),
        BASE,
        max_entries * ENTRY,
    )
}

fn pos(offset: u64, position: u32) -> OffsetPosition {
    OffsetPosition { offset, position }
}

fn entries(index: &OffsetIndex) -> Vec<OffsetPosition> {
    (0..index.len()).map(|i| index.entry(i).unwrap()).collect()
}

/// What a floor lookup must answer, from a sorted map of the entries.
fn expected_floor(map: &BTreeMap<u64, u32>, offset: u64) -> OffsetPosition {
    map.range(..=offset)
        .next_back()
        .map_or(pos(BASE, 0), |(&o, &p)| pos(o, p))
}

fn assert_rejected(result: topiclog::Result<()>, what: &str) {
    match result {
        Err(Error::IndexAppend { .. }) => {}
        other => panic!("{what}: expected Error::IndexAppend, got {other:?}"),
    }
}

/// Raw index entries as they lie on disk: relative offset and position, big-endian (Kafka's
/// layout).
fn raw_entries(entries: &[(u32, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(rel, position) in entries {
        out.extend_from_slice(&rel.to_be_bytes());
        out.extend_from_slice(&position.to_be_bytes());
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
    let index = new_index(30);
    assert!(index.is_empty());
    assert_eq!(index.len(), 0);
    assert_eq!(index.entry(0), None);
    assert_eq!(index.last_entry(), pos(BASE, 0));
    for offset in [0, BASE - 1, BASE, BASE + 1, BASE + 1000, u64::MAX] {
        assert_eq!(index.lookup(offset), pos(BASE, 0), "lookup({offset})");
    }
}

#[test]
fn lookup_returns_floor_entry_everywhere() {
    // Random strictly increasing entries above the base, as many as fit.
    let mut rng = TestRng::new(0x0ff5e7);
    let mut index = new_index(30);
    let mut map = BTreeMap::new();
    let (mut offset, mut position) = (BASE, 0u32);
    for _ in 0..index.max_entries() {
        offset += 1 + rng.below(15);
        position += 1 + rng.below(15) as u32;
        index.append(offset, position).unwrap();
        map.insert(offset, position);
    }
    assert!(index.is_full());
    let (&first, _) = map.first_key_value().unwrap();
    let (&last, &last_pos) = map.last_key_value().unwrap();
    assert_eq!(index.last_entry(), pos(last, last_pos));

    // Every offset from below the base to well past the last entry.
    for offset in 0..last + 50 {
        assert_eq!(
            index.lookup(offset),
            expected_floor(&map, offset),
            "lookup({offset})"
        );
    }
    // Below the first entry: the segment start, even though no entry says so.
    assert_eq!(index.lookup(first - 1), pos(BASE, 0));
    // Exactly on every entry.
    for (&o, &p) in &map {
        assert_eq!(index.lookup(o), pos(o, p));
    }
    // Far above the last entry.
    assert_eq!(index.lookup(u64::MAX), pos(last, last_pos));
    // entry(i) returns the entries in order.
    let listed: Vec<(u64, u32)> = map.into_iter().collect();
    let got: Vec<(u64, u32)> = entries(&index)
        .into_iter()
        .map(|e| (e.offset, e.position))
        .collect();
    assert_eq!(got, listed);
    assert_eq!(index.entry(index.len()), None);
}

#[test]
fn lookup_extremes_of_the_relative_offset_range() {
    let mut index = new_index(10);
    // An entry at the base offset itself is allowed (position 0).
    index.append(BASE, 0).unwrap();
    index.append(BASE + 1, 10).unwrap();
    let top = BASE + u64::from(u32::MAX);
    index.append(top, u32::MAX).unwrap();
    assert_eq!(index.lookup(BASE), pos(BASE, 0));
    assert_eq!(index.lookup(BASE + 1), pos(BASE + 1, 10));
    assert_eq!(index.lookup(top - 1), pos(BASE + 1, 10));
    assert_eq!(index.lookup(top), pos(top, u32::MAX));
    assert_eq!(index.lookup(top + 1), pos(top, u32::MAX));
    assert_eq!(index.lookup(u64::MAX), pos(top, u32::MAX));
    assert_eq!(index.lookup(0), pos(BASE, 0));

    // A segment based near the top of the offset space: no overflow anywhere.
    let base = u64::MAX - 100;
    let mut high = OffsetIndex::create(sim(), Path::new("/idx/high.index"), base, 10 * ENTRY);
    high.append(base + 10, 100).unwrap();
    high.append(u64::MAX, 200).unwrap();
    assert_eq!(high.lookup(0), pos(base, 0));
    assert_eq!(high.lookup(base + 9), pos(base, 0));
    assert_eq!(high.lookup(base + 50), pos(base + 10, 100));
    assert_eq!(high.lookup(u64::MAX), pos(u64::MAX, 200));
}

#[test]
fn append_outside_the_segment_offset_range_is_rejected() {
    let mut index = new_index(10);
    assert_rejected(index.append(BASE - 1, 0), "below the base offset");
    assert_rejected(index.append(0, 0), "offset 0 below the base offset");
    assert_rejected(
        index.append(BASE + u64::from(u32::MAX) + 1, 0),
        "relative offset past u32::MAX",
    );
    assert_rejected(index.append(u64::MAX, 0), "u64::MAX");
    assert!(index.is_empty(), "rejected appends leave no entry");
}

#[test]
fn append_with_out_of_order_offset_is_rejected() {
    let mut index = new_index(10);
    index.append(51, 0).unwrap();
    assert_rejected(index.append(50, 1), "smaller offset");
    assert_rejected(index.append(51, 1), "equal offset");
    assert_eq!(entries(&index), vec![pos(51, 0)], "index unchanged");
    index.append(52, 1).unwrap();
    assert_eq!(entries(&index), vec![pos(51, 0), pos(52, 1)]);
}

#[test]
fn append_with_out_of_order_position_is_rejected() {
    let mut index = new_index(10);
    index.append(51, 100).unwrap();
    assert_rejected(index.append(52, 99), "smaller position");
    assert_rejected(index.append(52, 100), "equal position");
    assert_eq!(entries(&index), vec![pos(51, 100)], "index unchanged");
    index.append(52, 101).unwrap();
    assert_eq!(index.last_entry(), pos(52, 101));
}

#[test]
fn full_index_rejects_appends() {
    // A limit that is not a whole number of entries rounds down.
    for max_bytes in [30 * ENTRY, 30 * ENTRY + 7] {
        let mut index = OffsetIndex::create(sim(), Path::new("/idx/full.index"), BASE, max_bytes);
        assert_eq!(index.max_entries(), 30);
        assert!(!index.is_full());
        for i in 0..30u64 {
            index.append(BASE + 1 + i, i as u32).unwrap();
        }
        assert!(index.is_full());
        assert_rejected(index.append(BASE + 31, 30), "append to a full index");
        assert_eq!(index.len(), 30);
        assert_eq!(index.last_entry(), pos(BASE + 30, 29));
        assert_eq!(index.lookup(BASE + 1000), pos(BASE + 30, 29));
    }
}

/// Entries at 10, 20, ..., 90 relative to the base, position = 10 * offset delta.
fn sparse_index() -> OffsetIndex {
    let mut index = new_index(20);
    for i in 1..10u64 {
        index.append(BASE + 10 * i, 100 * i as u32).unwrap();
    }
    index
}

#[test]
fn truncate_above_last_entry_changes_nothing() {
    let mut index = sparse_index();
    let before = entries(&index);
    index.truncate_to(BASE + 91);
    assert_eq!(entries(&index), before);
    index.truncate_to(u64::MAX);
    assert_eq!(entries(&index), before);
    index.append(BASE + 95, 950).unwrap();
}

#[test]
fn truncate_at_an_entry_removes_it_and_all_later_ones() {
    let mut index = sparse_index();
    index.truncate_to(BASE + 90);
    assert_eq!(index.last_entry(), pos(BASE + 80, 800));
    index.truncate_to(BASE + 50);
    assert_eq!(index.len(), 4);
    assert_eq!(index.last_entry(), pos(BASE + 40, 400));
    assert_eq!(index.lookup(BASE + 1000), pos(BASE + 40, 400));
    // Appending continues from the new last entry, even at the removed offsets.
    index.append(BASE + 50, 500).unwrap();
    assert_eq!(index.lookup(BASE + 55), pos(BASE + 50, 500));
}

#[test]
fn truncate_between_entries_keeps_the_lower_one() {
    let mut index = sparse_index();
    index.truncate_to(BASE + 55);
    assert_eq!(index.len(), 5);
    assert_eq!(index.last_entry(), pos(BASE + 50, 500));
    assert_eq!(index.lookup(BASE + 70), pos(BASE + 50, 500));
    assert_rejected(index.append(BASE + 50, 600), "offset of the kept entry");
    index.append(BASE + 51, 501).unwrap();
}

#[test]
fn truncate_below_first_entry_empties_the_index() {
    for cut in [BASE + 9, BASE, BASE - 1, 0] {
        let mut index = sparse_index();
        index.truncate_to(cut);
        assert!(index.is_empty(), "truncate_to({cut})");
        assert_eq!(index.lookup(BASE + 50), pos(BASE, 0));
        index.append(BASE + 1, 1).unwrap();
    }
    let mut index = sparse_index();
    index.clear();
    assert!(index.is_empty());
    index.append(BASE, 0).unwrap();
}

#[test]
fn sanity_check_accepts_well_formed_indexes() {
    let mut index = new_index(10);
    index.sanity_check(0).unwrap();
    // An entry at the base offset, at position 0 (Kafka's last-offset-equals-base case).
    index.append(BASE, 0).unwrap();
    index.sanity_check(1).unwrap();
    index.append(BASE + 10, 100).unwrap();
    index.append(BASE + 20, 200).unwrap();
    index.sanity_check(201).unwrap();
}

/// Raw entries on disk, the log length to check against, and the index of the first bad entry.
type BadCase = (Vec<(u32, u32)>, u64, usize);

#[test]
fn sanity_check_catches_bad_entries() {
    both_fs(|fs, dir| {
        let path = index_path(dir);
        let cases: Vec<BadCase> = vec![
            (vec![(10, 100), (5, 200)], 1000, 1),    // offset goes back
            (vec![(10, 100), (10, 200)], 1000, 1),   // offset repeats
            (vec![(10, 100), (20, 50)], 1000, 1),    // position goes back
            (vec![(10, 100), (20, 100)], 1000, 1),   // position repeats
            (vec![(10, 100), (20, 5000)], 4096, 1),  // position past the log end
            (vec![(10, 4096)], 4096, 0),             // position at the log end
            (vec![(0, 64)], 1000, 0),                // base offset not at position 0
            (vec![(0, 0), (0, 0), (0, 0)], 1000, 1), // a zeroed file
            (vec![(1, 10), (2, 20), (3, 30), (2, 40)], 100, 3), // damage after good entries
        ];
        for (raw, log_len, bad) in cases {
            write_file(&*fs, &path, &raw_entries(&raw));
            let loaded = OffsetIndex::load(fs.clone(), &path, BASE, 1 << 10).unwrap();
            let mapped = OffsetIndex::map(fs.clone(), &path, BASE, 1 << 10).unwrap();
            for index in [&loaded, &mapped] {
                assert_eq!(index.len(), raw.len());
                match index.sanity_check(log_len) {
                    Err(Error::Corrupt {
                        path: p, position, ..
                    }) => {
                        assert_eq!(p, path);
                        assert_eq!(position, (bad * ENTRY) as u64, "{raw:?}");
                    }
                    other => panic!("{raw:?} with log length {log_len}: {other:?}"),
                }
            }
        }
        // The same kind of file, well formed, passes.
        write_file(
            &*fs,
            &path,
            &raw_entries(&[(10, 100), (20, 200), (30, 4095)]),
        );
        let index = OffsetIndex::load(fs.clone(), &path, BASE, 1 << 10).unwrap();
        index.sanity_check(4096).unwrap();
    });
}

#[test]
fn flush_then_load_round_trips() {
    both_fs(|fs, dir| {
        fs.create_dir_all(dir).unwrap();
        let path = index_path(dir);
        let mut index = OffsetIndex::create(fs.clone(), &path, BASE, 100 * ENTRY);
        for i in 1..=10u64 {
            index.append(BASE + 3 * i, 50 * i as u32).unwrap();
        }
        let written = entries(&index);
        index.flush(true).unwrap();
        assert_eq!(common::file_len(&*fs, &path), (10 * ENTRY) as u64);

        let mut loaded = OffsetIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(entries(&loaded), written);
        loaded.sanity_check(10_000).unwrap();
        for offset in 0..BASE + 40 {
            assert_eq!(
                loaded.lookup(offset),
                index.lookup(offset),
                "lookup({offset})"
            );
        }

        // Appends after a load go to the end of the same file.
        loaded.append(BASE + 100, 1000).unwrap();
        loaded.flush(false).unwrap();
        loaded.append(BASE + 101, 1001).unwrap();
        loaded.flush(true).unwrap();
        let again = OffsetIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(entries(&again), entries(&loaded));
        assert_eq!(again.len(), 12);

        // A trailing partial entry (a torn write) is dropped on load and map.
        common::append_to_file(&*fs, &path, &[0xAB; 5]);
        let torn = OffsetIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(entries(&torn), entries(&loaded));
        let mapped = OffsetIndex::map(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(entries(&mapped), entries(&loaded));
    });
}

#[test]
fn truncation_survives_flush_and_load() {
    both_fs(|fs, dir| {
        fs.create_dir_all(dir).unwrap();
        let path = index_path(dir);
        let mut index = OffsetIndex::create(fs.clone(), &path, BASE, 100 * ENTRY);
        for i in 1..=10u64 {
            index.append(BASE + 10 * i, 100 * i as u32).unwrap();
        }
        index.flush(true).unwrap();
        index.truncate_to(BASE + 45);
        index.append(BASE + 47, 470).unwrap();
        index.flush(true).unwrap();
        let loaded = OffsetIndex::load(fs.clone(), &path, BASE, 100 * ENTRY).unwrap();
        assert_eq!(
            entries(&loaded),
            vec![
                pos(BASE + 10, 100),
                pos(BASE + 20, 200),
                pos(BASE + 30, 300),
                pos(BASE + 40, 400),
                pos(BASE + 47, 470)
            ]
        );
        assert_eq!(common::file_len(&*fs, &path), (5 * ENTRY) as u64);
    });
}

#[test]
fn map_round_trips() {
    both_fs(|fs, dir| {
        fs.create_dir_all(dir).unwrap();
        let path = index_path(dir);
        let mut rng = TestRng::new(99);
        let mut index = OffsetIndex::create(fs.clone(), &path, BASE, 1 << 12);
        let (mut offset, mut position) = (BASE, 0u32);
        for _ in 0..200 {
            offset += 1 + rng.below(7);
            position += 1 + rng.below(300) as u32;
            index.append(offset, position).unwrap();
        }
        index.flush(true).unwrap();

        let mapped = OffsetIndex::map(fs.clone(), &path, BASE, 1 << 12).unwrap();
        assert_eq!(entries(&mapped), entries(&index));
        assert_eq!(mapped.base_offset(), BASE);
        assert_eq!(mapped.last_entry(), index.last_entry());
        mapped.sanity_check(u64::from(position) + 1).unwrap();
        for o in 0..offset + 10 {
            assert_eq!(mapped.lookup(o), index.lookup(o), "lookup({o})");
        }

        // A missing file maps (and loads) as an empty index.
        let missing = dir.join("00000000000000009999.index");
        let empty = OffsetIndex::map(fs.clone(), &missing, 9999, 1 << 12).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.lookup(10_000), pos(9999, 0));
        assert!(OffsetIndex::load(fs.clone(), &missing, 9999, 1 << 12)
            .unwrap()
            .is_empty());
    });
}
