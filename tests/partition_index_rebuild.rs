//! Indexes are derived data: deleted or zeroed `.index` / `.timeindex` files, of sealed and active
//! segments, after a clean or an unclean stop, are rebuilt from the `.log` on open, and every read
//! and `offset_for_time` answer afterwards equals the one given before the damage. Index files
//! whose `.log` is gone are removed on open. The scenarios follow Kafka's `LogLoaderTest`
//! (`testIndexRebuild`, `testRebuildTimeIndexForOldMessages`, orphan index cleanup) and
//! `LogSegmentTest` (`testRecoveryFixesCorruptIndex`, `testRecoveryRebuildsEmptyTimeIndex`).

mod common;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{
    append_random_batches, assert_lookups_eq, both_fs, crash_without_close, file_len, lookups,
    overwrite, record_views, segment_files, RecordView,
};
use topiclog::fs::{FileSystem, OpenMode};
use topiclog::segment::{segment_file_name, OffsetPosition, SegmentFileKind, TimestampOffset};
use topiclog::{Deadline, Durability, Env, LogConfig, Partition, Record};

const INDEX: SegmentFileKind = SegmentFileKind::OffsetIndex;
const TIME: SegmentFileKind = SegmentFileKind::TimeIndex;

fn config(index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: Deadline::Never,
        index_interval_bytes,
        durability: Durability::None,
        ..LogConfig::default()
    }
}

fn times() -> RangeInclusive<i64> {
    1_000_000 - 40..=1_000_000 + 10 * 60 + 40
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Clean,
    Unclean,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    Delete,
    Zero,
}

/// Apply `damage` to every existing index file of the given kinds; returns how many files were
/// damaged.
fn damage_files(
    fs: &dyn FileSystem,
    dir: &Path,
    kinds: &[SegmentFileKind],
    damage: Damage,
) -> usize {
    let mut n = 0;
    for &kind in kinds {
        for path in segment_files(fs, dir, kind) {
            match damage {
                Damage::Delete => fs.remove_file(&path).unwrap(),
                Damage::Zero => {
                    let len = file_len(fs, &path);
                    overwrite(fs, &path, 0, &vec![0u8; len as usize]);
                }
            }
            n += 1;
        }
    }
    n
}

/// A log written in two runs (so that after a clean close and reopen the active segment has index
/// files on disk and then more data), stopped as `stop` says.
fn two_run_log(fs: &Arc<dyn FileSystem>, dir: &Path, stop: Stop) -> Vec<RecordView> {
    let config = config(256);
    let env = Env::with_fs(fs.clone());
    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    let mut records = append_random_batches(&log, 45, 21);
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
    // More data in the same active segment (whose index files are now on disk), short of a roll.
    let segments = log.segment_count();
    let mut seed = 22;
    while log.segments().last().unwrap().size() < 3000 {
        records.extend(append_random_batches(&log, 1, seed));
        seed += 1;
    }
    assert_eq!(log.segment_count(), segments, "no roll in the second run");
    assert!(segments > 2);
    match stop {
        Stop::Clean => log.close().unwrap(),
        Stop::Unclean => {}
    }
    crash_without_close(log);
    records
}

fn damaged_indexes_are_rebuilt(fs: Arc<dyn FileSystem>, dir: &Path, damage: Damage, stop: Stop) {
    // The answers of an undamaged log, stopped the same way.
    let reference = dir.join("reference");
    let records = two_run_log(&fs, &reference, stop);
    let log = Partition::open_with_env(&reference, config(256), Env::with_fs(fs.clone())).unwrap();
    let expected = lookups(&log, times());
    drop(log);

    for kinds in [&[INDEX][..], &[TIME][..], &[INDEX, TIME][..]] {
        let what = format!("{damage:?} {kinds:?}, {stop:?} stop");
        let dir = dir.join(format!("{kinds:?}"));
        assert_eq!(two_run_log(&fs, &dir, stop), records);
        let logs = segment_files(&*fs, &dir, SegmentFileKind::Log).len();
        let n = damage_files(&*fs, &dir, kinds, damage);
        assert_eq!(n, logs * kinds.len(), "every segment had index files");

        let log = Partition::open_with_env(&dir, config(256), Env::with_fs(fs.clone())).unwrap();
        assert_eq!(log.recovery_report().clean_shutdown, stop == Stop::Clean);
        assert_eq!(record_views(&log, 0), records, "{what}");
        assert_lookups_eq(&lookups(&log, times()), &expected, &what);
        // What was rebuilt stays right across another restart.
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(&dir, config(256), Env::with_fs(fs.clone())).unwrap();
        let restarted = format!("{what}, restarted");
        assert_lookups_eq(&lookups(&log, times()), &expected, &restarted);
        // The log keeps working: a new record is found by offset and by time.
        common::assert_appends_continue(&log, &what);
    }
}

#[test]
fn deleted_index_files_are_rebuilt_on_clean_open() {
    both_fs(|fs, dir| damaged_indexes_are_rebuilt(fs, dir, Damage::Delete, Stop::Clean));
}

#[test]
fn deleted_index_files_are_rebuilt_on_unclean_open() {
    both_fs(|fs, dir| damaged_indexes_are_rebuilt(fs, dir, Damage::Delete, Stop::Unclean));
}

#[test]
fn zeroed_index_files_are_rebuilt_on_clean_open() {
    both_fs(|fs, dir| damaged_indexes_are_rebuilt(fs, dir, Damage::Zero, Stop::Clean));
}

#[test]
fn zeroed_index_files_are_rebuilt_on_unclean_open() {
    both_fs(|fs, dir| damaged_indexes_are_rebuilt(fs, dir, Damage::Zero, Stop::Unclean));
}

#[test]
fn zeroed_single_entry_time_indexes_are_rebuilt() {
    // With an index interval larger than a segment, each segment's time index holds exactly one
    // entry (the maximum timestamp, written when the segment is sealed or closed). Zeroed, that
    // entry claims a maximum timestamp of 0.
    both_fs(|fs, dir| {
        for stop in [Stop::Clean, Stop::Unclean] {
            let dir = dir.join(format!("{stop:?}"));
            let config = config(1 << 20);
            let env = Env::with_fs(fs.clone());
            let log = Partition::open_with_env(&dir, config.clone(), env.clone()).unwrap();
            let records = append_random_batches(&log, 60, 31);
            assert!(log.segment_count() > 2);
            let expected = lookups(&log, times());
            for seg in &log.segments()[..log.segment_count() - 1] {
                let (offsets, timestamps) = seg.index_entries().unwrap();
                assert!(offsets.is_empty());
                assert_eq!(timestamps.len(), 1, "one time index entry per segment");
            }
            match stop {
                Stop::Clean => log.close().unwrap(),
                Stop::Unclean => {}
            }
            crash_without_close(log);

            assert!(damage_files(&*fs, &dir, &[TIME], Damage::Zero) > 2);
            let log = Partition::open_with_env(&dir, config, env.clone()).unwrap();
            assert_eq!(record_views(&log, 0), records);
            assert_lookups_eq(
                &lookups(&log, times()),
                &expected,
                &format!("zeroed one-entry time indexes, {stop:?} stop"),
            );
        }
    });
}

#[test]
fn zeroed_time_index_of_the_active_segment_is_rebuilt_on_clean_open() {
    // The active segment's largest timestamp is in its third batch, well before its last offset
    // index entry, so only the time index remembers it. (A zeroed time index with several entries
    // is not a valid index: its timestamps do not grow.)
    both_fs(|fs, dir| {
        let config = config(64);
        let env = Env::with_fs(fs.clone());
        let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
        for t in [3_000, 4_000, 5_000] {
            log.append(Record::new("early-but-latest").with_timestamp(t))
                .unwrap();
        }
        for i in 3..20 {
            log.append(Record::new(format!("r{i}")).with_timestamp(1_000 + i))
                .unwrap();
        }
        assert_eq!(log.segment_count(), 1);
        let expected: Vec<_> = (990..=5_001)
            .map(|t| log.offset_for_time(t).unwrap())
            .collect();
        assert_eq!(
            log.offset_for_time(5_000).unwrap().map(|t| t.offset),
            Some(2)
        );
        log.close().unwrap();
        drop(log);

        let (_, times_before) = index_entries_of_files(&fs, dir);
        assert!(times_before > 1, "the time index has several entries");
        damage_files(&*fs, dir, &[TIME], Damage::Zero);
        let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
        assert!(log.recovery_report().clean_shutdown);
        let got: Vec<_> = (990..=5_001)
            .map(|t| log.offset_for_time(t).unwrap())
            .collect();
        for (t, (g, e)) in (990..).zip(got.iter().zip(&expected)) {
            assert_eq!(g, e, "offset_for_time({t})");
        }
    });
}

/// The number of offset and time index entries in the files of a one-segment log.
fn index_entries_of_files(fs: &Arc<dyn FileSystem>, dir: &Path) -> (u64, u64) {
    let index = segment_files(&**fs, dir, INDEX);
    let time = segment_files(&**fs, dir, TIME);
    (
        file_len(&**fs, &index[0]) / 8,
        file_len(&**fs, &time[0]) / 12,
    )
}

type IndexEntries = Vec<(u64, Vec<OffsetPosition>, Vec<TimestampOffset>)>;

fn index_entries(log: &Partition) -> IndexEntries {
    log.segments()
        .iter()
        .map(|s| {
            let (offsets, times) = s.index_entries().unwrap();
            (s.base_offset(), offsets, times)
        })
        .collect()
}

/// Write a log in one run, close it, damage every index file as `damage` says, reopen: each
/// segment's index entries must be exactly those written originally.
fn rebuilt_entries_equal_the_originals(fs: Arc<dyn FileSystem>, dir: &Path, damage: Damage) {
    let config = config(256);
    let env = Env::with_fs(fs.clone());
    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    append_random_batches(&log, 56, 41);
    log.close().unwrap();
    drop(log);
    // The entries as written, read back from the files.
    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    let original = index_entries(&log);
    assert!(original.len() > 2);
    for (base, offsets, times) in &original {
        // Enough entries that a zeroed file cannot pass for a valid one.
        assert!(offsets.len() >= 2, "segment {base}: {offsets:?}");
        assert!(times.len() >= 2, "segment {base}: {times:?}");
    }
    log.close().unwrap();
    drop(log);

    damage_files(&*fs, dir, &[INDEX, TIME], damage);
    let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
    let rebuilt = index_entries(&log);
    for (o, r) in original.iter().zip(&rebuilt) {
        let active = if o.0 == original.last().unwrap().0 {
            " (active)"
        } else {
            ""
        };
        assert_eq!(r, o, "{damage:?}: segment {}{active}", o.0);
    }
    assert_eq!(rebuilt.len(), original.len());
}

#[test]
fn deleted_index_files_are_rebuilt_with_the_original_entries() {
    both_fs(|fs, dir| rebuilt_entries_equal_the_originals(fs, dir, Damage::Delete));
}

#[test]
fn zeroed_index_files_are_rebuilt_with_the_original_entries() {
    both_fs(|fs, dir| rebuilt_entries_equal_the_originals(fs, dir, Damage::Zero));
}

fn orphan(dir: &Path, base: u64, kind: SegmentFileKind) -> PathBuf {
    segment_file_name(dir, base, kind)
}

#[test]
fn orphan_index_files_are_removed_on_open() {
    both_fs(|fs, dir| {
        for stop in [Stop::Clean, Stop::Unclean] {
            let dir = dir.join(format!("{stop:?}"));
            let config = config(256);
            let env = Env::with_fs(fs.clone());
            let log = Partition::open_with_env(&dir, config.clone(), env.clone()).unwrap();
            let records = append_random_batches(&log, 40, 51);
            let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
            assert!(bases.len() > 2);
            // Retention is about to delete the first segment (it moves the start offset first).
            log.delete_records(bases[1]).unwrap();
            let expected = lookups(&log, times());
            match stop {
                Stop::Clean => log.close().unwrap(),
                Stop::Unclean => {}
            }
            crash_without_close(log);

            // Index files for bases that have no .log: between segments, past the end, and a
            // deleted segment's leftovers.
            let orphans = [
                orphan(&dir, bases[1] - 1, INDEX),
                orphan(&dir, bases[1] - 1, TIME),
                orphan(&dir, 1_000_000, INDEX),
                orphan(&dir, 1_000_000, TIME),
            ];
            for path in &orphans {
                let f = fs.open(path, OpenMode::CreateNew).unwrap();
                f.write_all_at(&[7u8; 24], 0).unwrap();
            }
            fs.remove_file(&orphan(&dir, bases[0], SegmentFileKind::Log))
                .unwrap();
            let leftovers = [orphan(&dir, bases[0], INDEX), orphan(&dir, bases[0], TIME)];
            assert!(leftovers.iter().all(|p| fs.exists(p).unwrap()));

            let log = Partition::open_with_env(&dir, config, env.clone()).unwrap();
            for path in orphans.iter().chain(&leftovers) {
                assert!(
                    !fs.exists(path).unwrap(),
                    "{stop:?}: {} still exists",
                    path.display()
                );
            }
            // The remaining segments are untouched.
            let names = fs.read_dir(&dir).unwrap();
            for &base in &bases[1..] {
                let log_name = orphan(Path::new(""), base, SegmentFileKind::Log);
                assert!(names.contains(&log_name.to_str().unwrap().to_owned()));
            }
            assert_eq!(log.start_offset(), bases[1]);
            let kept: Vec<RecordView> = records
                .into_iter()
                .filter(|r| r.offset >= bases[1])
                .collect();
            assert_eq!(record_views(&log, bases[1]), kept);
            let expected_reads: Vec<_> = expected
                .reads
                .iter()
                .filter(|r| r.0 >= bases[1])
                .cloned()
                .collect();
            assert_eq!(lookups(&log, times()).reads, expected_reads, "{stop:?}");
        }
    });
}
