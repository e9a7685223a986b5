//! Recovery from garbage: random bytes after the valid data of the `.log` are cut on an unclean
//! open, and random bytes appended to `.index` / `.timeindex` files are detected and the indexes
//! rebuilt, on clean and unclean opens. After each, every read and every `offset_for_time` answer
//! must equal the answer given before the damage. The scenarios follow Kafka's `LogLoaderTest`
//! (`testCorruptLog`, `testCorruptIndexRebuild`, `testCorruptTimeIndexRebuild`).

mod common;

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;

use common::{
    append_random_batches, append_to_file, assert_lookups_eq, both_fs, crash_without_close,
    file_bytes, file_len, lookups, overwrite, record_views, segment_files, TestRng,
};
use topiclog::fs::FileSystem;
use topiclog::segment::SegmentFileKind;
use topiclog::{Deadline, Durability, Env, LogConfig, Partition, Record};

fn config(preallocate: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: Deadline::Never,
        index_interval_bytes: 256,
        durability: Durability::None,
        preallocate,
        ..LogConfig::default()
    }
}

/// Every timestamp `append_random_batches` can produce for up to 60 batches, and a margin.
fn times() -> RangeInclusive<i64> {
    1_000_000 - 40..=1_000_000 + 10 * 60 + 40
}

fn random_garbage(rng: &mut TestRng, len: usize) -> Vec<u8> {
    let mut garbage = rng.bytes(len);
    // Never start with what could pass for unwritten (zero) space.
    garbage[0] |= 0x80;
    garbage
}

/// Random bytes after the valid data are not a torn tail of this log (a torn write leaves a prefix
/// of the batch being written, then zeros): a `Strict` open refuses them and leaves the file as it
/// is; `TruncateCorrupt` cuts them and reports the cut as corruption. (Kafka's `testCorruptLog`
/// cuts such garbage silently; topiclog cuts only what it can tell is its own torn write.)
#[test]
fn random_bytes_after_the_log_data_are_refused_or_cut_as_corruption_on_unclean_open() {
    both_fs(|fs, dir| {
        let mut rng = TestRng::new(0x6a5b);
        for preallocate in [false, true] {
            let dir = dir.join(format!("preallocate-{preallocate}"));
            let config = config(preallocate);
            let env = Env::with_fs(fs.clone());
            let log = Partition::open_with_env(&dir, config.clone(), env.clone()).unwrap();
            let records = append_random_batches(&log, 60, 11);
            assert!(log.segment_count() > 2);
            let before = lookups(&log, times());
            let end = log.end_offset();
            let active = log.segments().last().unwrap().clone();
            let (path, valid) = (active.log_path().to_owned(), active.size());
            drop(active);
            crash_without_close(log);

            let garbage = random_garbage(&mut rng, 300);
            overwrite(&*fs, &path, valid, &garbage);
            let damaged = file_bytes(&*fs, &path);

            match Partition::open_with_env(&dir, config.clone(), env.clone()) {
                Err(topiclog::Error::Corrupt {
                    path: p, position, ..
                }) => {
                    assert_eq!((p, position), (path.clone(), valid));
                }
                other => panic!("Strict open of a log ending in garbage: {other:?}"),
            }
            assert_eq!(
                file_bytes(&*fs, &path),
                damaged,
                "the refused open changed the file"
            );

            let cut = LogConfig {
                recovery: topiclog::Recovery::TruncateCorrupt,
                ..config.clone()
            };
            let log = Partition::open_with_env(&dir, cut, env.clone()).unwrap();
            let report = log.recovery_report();
            assert!(!report.clean_shutdown);
            assert!(report.corruption_cut, "garbage is not a torn tail");
            assert!(report.bytes_truncated >= 300, "{report:?}");
            assert_eq!(log.end_offset(), end);
            assert_eq!(record_views(&log, 0), records);
            assert_lookups_eq(&lookups(&log, times()), &before, "after recovery");
            // The garbage is gone from the file, not merely skipped.
            let bytes = file_bytes(&*fs, &path);
            if preallocate {
                assert_eq!(bytes.len() as u64, 4096);
            } else {
                assert_eq!(bytes.len() as u64, valid);
            }
            assert!(bytes[valid as usize..].iter().all(|&b| b == 0));

            // Appends continue right after the valid data.
            assert_eq!(log.append(Record::new("after")).unwrap(), end);
            let read = log.read(end, 1 << 10).unwrap();
            let value = read.records().next().unwrap().value().unwrap().clone();
            assert_eq!(value.as_ref(), b"after");
        }
    });
}

/// A torn write of the next batch (any prefix of it, then zeros or the end of the file) is cut
/// silently on an unclean open, under `Strict` too: it was never acknowledged.
#[test]
fn a_torn_next_batch_is_cut_silently_on_unclean_open() {
    both_fs(|fs, dir| {
        for preallocate in [false, true] {
            let base_dir = dir.join(format!("torn-preallocate-{preallocate}"));
            let config = config(preallocate);
            let env = Env::with_fs(fs.clone());
            let log = Partition::open_with_env(&base_dir, config.clone(), env.clone()).unwrap();
            let records = append_random_batches(&log, 20, 12);
            let end = log.end_offset();
            let active = log.segments().last().unwrap().clone();
            let (path, valid) = (active.log_path().to_owned(), active.size());
            drop(active);
            crash_without_close(log);
            let next = topiclog::segment::RecordBatch::build(
                &[Record::new("torn").with_key("k"), Record::new("write")],
                end,
                1_000_000,
            )
            .unwrap();
            let next = next.as_bytes().to_vec();
            let image = file_bytes(&*fs, &path);
            for n in [1, 8, 10, 17, 30, 61, next.len() - 2, next.len() - 1] {
                if next[n..].iter().all(|&b| b == 0) {
                    // The zeros that follow complete the batch: it was not torn.
                    continue;
                }
                let f = fs.open(&path, topiclog::fs::OpenMode::ReadWrite).unwrap();
                f.set_len(0).unwrap();
                f.write_all_at(&image, 0).unwrap();
                overwrite(&*fs, &path, valid, &next[..n]);
                let log = Partition::open_with_env(&base_dir, config.clone(), env.clone())
                    .unwrap_or_else(|e| panic!("a torn prefix of {n} bytes: {e}"));
                let report = log.recovery_report();
                assert!(!report.corruption_cut, "{n}: {report:?}");
                assert_eq!(log.end_offset(), end, "{n}");
                assert_eq!(record_views(&log, 0), records, "{n}");
                crash_without_close(log);
            }
        }
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// `close()`: the next open trusts the files.
    Clean,
    /// No close: the next open rescans from the recovery point.
    Unclean,
}

/// Append to a partition, close and reopen it (so the active segment has index files on disk),
/// append more, stop it as `stop` says, append random bytes to every index file of `kind`, and
/// check that the reopened log answers every lookup as before.
fn garbage_in_index_files(fs: Arc<dyn FileSystem>, dir: &Path, kind: SegmentFileKind, stop: Stop) {
    let config = config(true);
    let env = Env::with_fs(fs.clone());
    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    let mut records = append_random_batches(&log, 45, 3);
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    records.extend(append_random_batches(&log, 4, 4));
    assert!(log.segment_count() > 2);
    let before = lookups(&log, times());
    match stop {
        Stop::Clean => log.close().unwrap(),
        Stop::Unclean => {}
    }
    crash_without_close(log);

    let files = segment_files(&*fs, dir, kind);
    let logs = segment_files(&*fs, dir, SegmentFileKind::Log);
    // Every segment has index files, the active one too (written by the clean close before the
    // last batches were appended).
    assert_eq!(files.len(), logs.len(), "every segment has a {kind:?} file");
    let mut rng = TestRng::new(0x1de5 + files.len() as u64);
    for (i, path) in files.iter().enumerate() {
        let len_before = file_len(&*fs, path);
        // Whole entries plus a partial one, of varying length.
        append_to_file(&*fs, path, &random_garbage(&mut rng, 29 + 12 * (i % 3)));
        assert!(file_len(&*fs, path) > len_before);
    }

    let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
    assert_eq!(log.recovery_report().clean_shutdown, stop == Stop::Clean);
    assert_eq!(record_views(&log, 0), records);
    assert_lookups_eq(&lookups(&log, times()), &before, "after the damage");
    // Whatever was rewritten must stay right across another clean restart.
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env(dir, config, env.clone()).unwrap();
    assert_lookups_eq(&lookups(&log, times()), &before, "after a further restart");
    // And the log keeps working: new data is found by offset and by time.
    common::assert_appends_continue(&log, "after garbage in index files");
}

#[test]
fn garbage_appended_to_offset_index_files_clean_open() {
    both_fs(|fs, dir| garbage_in_index_files(fs, dir, SegmentFileKind::OffsetIndex, Stop::Clean));
}

#[test]
fn garbage_appended_to_offset_index_files_unclean_open() {
    both_fs(|fs, dir| garbage_in_index_files(fs, dir, SegmentFileKind::OffsetIndex, Stop::Unclean));
}

#[test]
fn garbage_appended_to_time_index_files_clean_open() {
    both_fs(|fs, dir| garbage_in_index_files(fs, dir, SegmentFileKind::TimeIndex, Stop::Clean));
}

#[test]
fn garbage_appended_to_time_index_files_unclean_open() {
    both_fs(|fs, dir| garbage_in_index_files(fs, dir, SegmentFileKind::TimeIndex, Stop::Unclean));
}
