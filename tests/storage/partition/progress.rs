//! A partition opened with `Partition::open_with_progress` reports its rescan after an unclean
//! stop, inside a segment too, at most once per the observer's interval: the total is the length
//! of the `.log` files rescanned (preallocated space and the part of the segment the recovery
//! point vouches for count as done when passed), a rescan that fails ends with `Failed`, and its
//! compaction passes report what they read.

use std::path::Path;

use topiclog::fs::StdFs;
use topiclog::segment::SegmentFileKind;
use topiclog::{
    CompactionPolicy, Env, Error, LogConfig, Partition, ProgressOperation, ProgressStage, Record,
    Recovery,
};

use crate::common::progress::{check_run, Recorder};
use crate::common::{file_len, overwrite, segment_files, small_log};

const INTERVAL: u64 = 16 << 10;

fn fill(log: &Partition, n: u32) {
    for i in 0..n {
        let value = format!("{i}-{}", "v".repeat(100));
        log.append(Record::new(value).with_key(format!("k{}", i % 50)))
            .unwrap();
    }
}

fn logs_len(dir: &Path) -> u64 {
    segment_files(&StdFs, dir, SegmentFileKind::Log)
        .iter()
        .map(|l| file_len(&StdFs, l))
        .sum()
}

#[test]
fn a_rescan_reports_its_progress_inside_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let config = small_log(1 << 20, 4096);
    let log = Partition::open_with(&dir, config.clone()).unwrap();
    fill(&log, 2000);
    log.abandon();
    let bytes = logs_len(&dir);
    assert!(bytes > 200 << 10, "{bytes}");

    let recorder = Recorder::new(INTERVAL);
    let log =
        Partition::open_with_progress(&dir, config, Env::default(), recorder.clone()).unwrap();
    let runs = recorder.runs(ProgressOperation::Recovery);
    let run = &runs[&dir];
    let (total, advanced) = check_run(run, INTERVAL);
    assert_eq!((run[0].topic.as_deref(), run[0].partition), (None, None));
    assert_eq!(log.segment_count(), 1);
    assert_eq!(total, bytes);
    assert_eq!(total, log.recovery_report().bytes_scanned);
    // One segment, reported on every 16 KiB or so (a batch past each step).
    assert!(advanced as u64 >= bytes / INTERVAL - 1, "{run:#?}");
    assert_eq!(log.end_offset(), 2000);
    log.close().unwrap();
}

#[test]
fn preallocated_space_and_what_the_recovery_point_vouches_for_count_as_done() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let config = LogConfig {
        preallocate: true,
        ..small_log(1 << 20, 4096)
    };
    let log = Partition::open_with(&dir, config.clone()).unwrap();
    fill(&log, 1000);
    // The recovery point: the rescan begins at the last index entry below it.
    log.flush_checkpoint().unwrap();
    fill(&log, 100);
    log.abandon();
    let bytes = logs_len(&dir);

    let recorder = Recorder::new(INTERVAL);
    let log =
        Partition::open_with_progress(&dir, config, Env::default(), recorder.clone()).unwrap();
    let runs = recorder.runs(ProgressOperation::Recovery);
    let run = &runs[&dir];
    let (total, _) = check_run(run, INTERVAL);
    let report = log.recovery_report();
    assert_eq!(total, bytes, "the file's length, preallocation included");
    assert!(
        report.bytes_scanned < total / 4,
        "scanned {} of {total}",
        report.bytes_scanned
    );
    assert_eq!(log.end_offset(), 1100);
    log.close().unwrap();
}

#[test]
fn a_rescan_that_fails_reports_failed_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let config = LogConfig {
        recovery: Recovery::Strict,
        ..small_log(16 << 10, 4096)
    };
    let log = Partition::open_with(&dir, config.clone()).unwrap();
    fill(&log, 500);
    log.abandon();
    // Damage in the middle of the second segment, valid batches after it: not a torn tail.
    let logs = segment_files(&StdFs, &dir, SegmentFileKind::Log);
    assert!(logs.len() >= 3, "{logs:?}");
    overwrite(
        &StdFs,
        &logs[1],
        file_len(&StdFs, &logs[1]) / 2,
        &[0xa5; 64],
    );

    let recorder = Recorder::new(1);
    let err =
        Partition::open_with_progress(&dir, config, Env::default(), recorder.clone()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let run = &recorder.runs(ProgressOperation::Recovery)[&dir];
    let (first, last) = (&run[0], &run[run.len() - 1]);
    assert_eq!((first.stage, first.done), (ProgressStage::Started, 0));
    assert_eq!(last.stage, ProgressStage::Failed);
    let first_segment = file_len(&StdFs, &logs[0]);
    assert!(
        last.done >= first_segment && last.done < first_segment + file_len(&StdFs, &logs[1]),
        "{run:#?}"
    );
    assert!(run[1..run.len() - 1]
        .iter()
        .all(|e| e.stage == ProgressStage::Advanced));
}

#[test]
fn compaction_passes_report_to_the_observer_given_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let recorder = Recorder::new(INTERVAL);
    let config = small_log(16 << 10, 4096);
    let log =
        Partition::open_with_progress(&dir, config, Env::default(), recorder.clone()).unwrap();
    assert_eq!(recorder.events(), vec![], "a new partition rescans nothing");
    fill(&log, 1000);
    let policy = CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    };
    let report = log.compact(0, &policy).unwrap();
    assert!(report.cleaned && report.bytes_read > 0);
    let run = &recorder.runs(ProgressOperation::Compaction)[&dir];
    let (total, advanced) = check_run(run, INTERVAL);
    // Everything was dirty: each sealed segment is read to map it, then to rewrite it.
    assert_eq!(total, 2 * report.bytes_read);
    assert!(advanced as u64 >= total / (2 * INTERVAL), "{run:#?}");
    assert_eq!(recorder.events().len(), run.len());
    log.close().unwrap();
}
