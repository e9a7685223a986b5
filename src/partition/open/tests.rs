//! Each step of opening a partition alone: the listing's sorting of names, the plan's decisions
//! on made-up listings (no file system), the metadata read and the segment's refusal of a foreign
//! file on a simulated one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::LogConfig;
use crate::error::Error;
use crate::format::{segment_file_name, SegmentFileKind};
use crate::fs::{FileSystem, OpenMode, SimFs};
use crate::segment::{Recovery, Segment};

use super::super::checkpoint::{Checkpoint, CleanShutdown};
use super::super::cleaner_checkpoint::CleanerCheckpoint;
use super::super::producer_state::ProducerTable;
use super::listing::{DirListing, Metadata, Stored};
use super::plan::{ProducerReplay, RecoveryPlan, SegmentEnd, SwapFinish};

const DIR: &str = "/p";

/// `<base>.<ext>`, as the partition names its files.
fn name(base: u64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

/// A listing of `names` in `DIR`.
fn listing(names: &[String]) -> DirListing {
    DirListing::from_names(Path::new(DIR), names.to_vec())
}

/// `.log`, `.index` and `.timeindex` of each base.
fn segment_names(bases: &[u64]) -> Vec<String> {
    bases
        .iter()
        .flat_map(|&b| [name(b, "log"), name(b, "index"), name(b, "timeindex")])
        .collect()
}

fn checkpoint(log_start_offset: u64, recovery_point: u64) -> Checkpoint {
    Checkpoint {
        log_start_offset,
        recovery_point,
        producers_from: None,
    }
}

/// What a clean close of a log ending at `end` in an active segment at `active_base` leaves.
fn marker(log_start_offset: u64, end: u64, active_base: u64) -> CleanShutdown {
    CleanShutdown {
        log_start_offset,
        end_offset: end,
        producers_from: None,
        active_base,
        active_size: 100,
    }
}

/// Metadata with the checkpoint `cp` and no marker, cleaner checkpoint or probe.
fn found(cp: Checkpoint) -> Metadata {
    Metadata {
        marker: None,
        checkpoint: Stored::Found(cp),
        cleaner: Stored::Missing,
        holds_data: None,
        adopted: Stored::Missing,
        never_opened: false,
    }
}

fn decide(names: &[String], metadata: &Metadata) -> RecoveryPlan {
    RecoveryPlan::decide(&listing(names), metadata, Recovery::Strict, false).unwrap()
}

fn corrupt_reason(result: crate::Result<RecoveryPlan>) -> (PathBuf, String) {
    match result {
        Err(Error::Corrupt { path, reason, .. }) => (path, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn the_listing_sorts_names_by_what_they_are() {
    let names = vec![
        name(200, "log"),
        name(100, "log"),
        name(100, "index"),
        name(300, "timeindex"),
        "checkpoint".to_owned(),
        "checkpoint.tmp".to_owned(),
        format!("{}.truncating", name(200, "log")),
        format!("{}.cleaned", name(100, "log")),
        format!("{}.swap", name(100, "log")),
        format!("{}.swap", name(100, "index")),
        ".clean_shutdown".to_owned(),
        ".lock".to_owned(),
        "notes.txt".to_owned(),
    ];
    let l = listing(&names);
    assert_eq!(l.segments, [100, 200], "sorted by base offset");
    assert_eq!(
        l.indexes,
        [(100, name(100, "index")), (300, name(300, "timeindex"))]
    );
    assert_eq!(
        l.temporary,
        [
            "checkpoint.tmp".to_owned(),
            format!("{}.truncating", name(200, "log"))
        ]
    );
    assert_eq!(l.cleaned, [format!("{}.cleaned", name(100, "log"))]);
    assert_eq!(
        l.swap,
        [
            format!("{}.swap", name(100, "log")),
            format!("{}.swap", name(100, "index"))
        ]
    );
    assert!(l.clean_marker);
    assert_eq!(l.names, names);
}

#[test]
fn a_clean_marker_that_matches_the_checkpoint_is_trusted() {
    let mut names = segment_names(&[0, 100]);
    names.push(".clean_shutdown".to_owned());
    let metadata = Metadata {
        marker: Some(marker(0, 150, 100)),
        ..found(checkpoint(0, 150))
    };
    let plan = decide(&names, &metadata);
    assert_eq!(plan.clean, Some(marker(0, 150, 100)));
    assert_eq!(plan.checkpoint, Some(checkpoint(0, 150)));
    assert!(plan.remove_marker);
    assert!(!plan.report.checkpoint_damaged);
    assert_eq!(plan.segments, [0, 100]);
    // Should the active segment not be what the close left, the rescan trusts what lies below
    // the recovery point.
    assert_eq!(plan.trusted, 1);
}

#[test]
fn a_clean_marker_that_disagrees_with_the_checkpoint_is_not_trusted() {
    // A checkpoint written after the close (say, by an open that then crashed) moved on.
    let mut names = segment_names(&[0, 100]);
    names.push(".clean_shutdown".to_owned());
    let metadata = Metadata {
        marker: Some(marker(0, 150, 100)),
        ..found(checkpoint(0, 120))
    };
    let plan = decide(&names, &metadata);
    assert_eq!(plan.clean, None);
    assert_eq!(plan.checkpoint, Some(checkpoint(0, 120)), "the file wins");
    assert_eq!(plan.recovery_point, 120);
    assert!(plan.remove_marker);
    assert!(!plan.report.checkpoint_damaged);
}

#[test]
fn a_damaged_marker_is_removed_and_the_log_rescanned() {
    // `Metadata::read` takes a marker that does not verify for none; its file still goes.
    let mut names = segment_names(&[0]);
    names.push(".clean_shutdown".to_owned());
    let plan = decide(&names, &found(checkpoint(0, 10)));
    assert_eq!(plan.clean, None);
    assert!(plan.remove_marker);
    assert_eq!(plan.trusted, 0);
}

#[test]
fn a_missing_or_damaged_checkpoint_is_repaired_from_the_marker() {
    for stored in [Stored::Missing, Stored::Damaged("CRC mismatch".to_owned())] {
        let metadata = Metadata {
            marker: Some(marker(40, 150, 100)),
            checkpoint: stored.clone(),
            cleaner: Stored::Missing,
            holds_data: None,
            adopted: Stored::Missing,
            never_opened: false,
        };
        let plan = decide(&segment_names(&[0, 100]), &metadata);
        assert_eq!(plan.checkpoint, Some(checkpoint(40, 150)), "{stored:?}");
        assert_eq!(plan.clean, Some(marker(40, 150, 100)), "{stored:?}");
        assert!(plan.report.checkpoint_damaged, "{stored:?}");
    }
}

#[test]
fn a_missing_or_damaged_checkpoint_without_marker_refuses_a_log_with_data() {
    for (stored, says) in [
        (Stored::Missing, "is missing"),
        (
            Stored::Damaged("CRC mismatch".to_owned()),
            "is damaged (CRC mismatch)",
        ),
    ] {
        let metadata = Metadata {
            marker: None,
            checkpoint: stored,
            cleaner: Stored::Missing,
            holds_data: Some(true),
            adopted: Stored::Missing,
            never_opened: false,
        };
        let (path, reason) = corrupt_reason(RecoveryPlan::decide(
            &listing(&segment_names(&[0])),
            &metadata,
            Recovery::TruncateCorrupt,
            false,
        ));
        assert_eq!(path, Path::new(DIR).join("checkpoint"));
        assert!(reason.contains(says), "{reason}");
        assert!(reason.contains("log start"), "{reason}");
    }
}

#[test]
fn a_missing_or_damaged_checkpoint_without_data_starts_afresh() {
    for (stored, damaged) in [
        (Stored::Missing, false),
        (Stored::Damaged("bad magic".to_owned()), true),
    ] {
        let metadata = Metadata {
            marker: None,
            checkpoint: stored,
            cleaner: Stored::Missing,
            holds_data: Some(false),
            adopted: Stored::Missing,
            never_opened: false,
        };
        let plan = decide(&segment_names(&[0]), &metadata);
        assert_eq!(plan.checkpoint, None);
        assert_eq!(plan.recovery_point, 0);
        assert_eq!(plan.trusted, 0, "everything is rescanned");
        assert_eq!(plan.report.checkpoint_damaged, damaged);
        assert_eq!(plan.empty_log_base(), 0);
    }
}

#[test]
fn segments_ending_below_the_recovery_point_are_trusted_the_rest_rescanned() {
    let names = segment_names(&[0, 100, 200, 300]);
    for (recovery_point, trusted) in [
        (0, 0),
        (100, 0), // the segment at 0 holds offset 99, just below the point: rescanned
        (101, 1),
        (250, 2),
        (300, 2),
        (301, 3),
        (u64::MAX, 3), // the active segment is always rescanned
    ] {
        let plan = decide(&names, &found(checkpoint(0, recovery_point)));
        assert_eq!(plan.trusted, trusted, "recovery point {recovery_point}");
    }
}

#[test]
fn a_segment_ending_early_at_or_above_the_recovery_point_drops_what_follows() {
    // A roll does not sync the old segment: its lost tail was never durable, nor was what follows.
    assert_eq!(SegmentEnd::judge(150, Some(200), 150), SegmentEnd::Early);
    assert_eq!(SegmentEnd::judge(150, Some(200), 100), SegmentEnd::Early);
    assert_eq!(SegmentEnd::judge(200, Some(200), 300), SegmentEnd::Whole);
    assert_eq!(SegmentEnd::judge(300, None, 300), SegmentEnd::Whole);
    assert_eq!(SegmentEnd::judge(350, None, 300), SegmentEnd::Whole);
}

#[test]
fn a_segment_ending_early_below_the_recovery_point_or_overlapping_is_damage() {
    let SegmentEnd::Damaged(why) = SegmentEnd::judge(149, Some(200), 150) else {
        panic!("below the recovery point")
    };
    assert!(why.contains("durable records are missing"), "{why}");
    let SegmentEnd::Damaged(why) = SegmentEnd::judge(250, Some(200), 0) else {
        panic!("overlap")
    };
    assert!(
        why.contains("past the next segment's base offset 200"),
        "{why}"
    );
    let SegmentEnd::Damaged(why) = SegmentEnd::judge(299, None, 300) else {
        panic!("the last segment below the recovery point")
    };
    assert!(why.contains("below the recovery point 300"), "{why}");
}

#[test]
fn segments_wholly_below_the_log_start_are_deleted() {
    let names = segment_names(&[0, 100, 200, 300]);
    let plan = decide(&names, &found(checkpoint(200, 350)));
    assert_eq!(plan.delete_below_start, [0, 100]);
    assert_eq!(plan.segments, [200, 300]);
    // Their index files go with them, not as orphans.
    assert!(plan.delete_orphans.is_empty(), "{:?}", plan.delete_orphans);
    // A start inside a segment keeps it.
    let plan = decide(&names, &found(checkpoint(150, 350)));
    assert_eq!(plan.delete_below_start, [0]);
    assert_eq!(plan.segments, [100, 200, 300]);
    // The active segment stays, whatever the start.
    let plan = decide(&names, &found(checkpoint(500, 500)));
    assert_eq!(plan.delete_below_start, [0, 100, 200]);
    assert_eq!(plan.segments, [300]);
}

#[test]
fn missing_segments_at_the_start_are_refused_or_reported() {
    let names = segment_names(&[100, 200]);
    let metadata = found(checkpoint(0, 250));
    let (path, reason) = corrupt_reason(RecoveryPlan::decide(
        &listing(&names),
        &metadata,
        Recovery::Strict,
        false,
    ));
    assert_eq!(path, Path::new(DIR));
    assert!(reason.contains("offsets 0 to 100 are missing"), "{reason}");
    let plan = RecoveryPlan::decide(
        &listing(&names),
        &metadata,
        Recovery::TruncateCorrupt,
        false,
    )
    .unwrap();
    assert!(plan.report.corruption_cut);
    assert_eq!(plan.segments, [100, 200]);
    // Every segment gone: the log goes on after the last offset it handed out.
    let no_segments = vec!["checkpoint".to_owned()];
    assert!(
        RecoveryPlan::decide(&listing(&no_segments), &metadata, Recovery::Strict, false).is_err()
    );
    let plan = RecoveryPlan::decide(
        &listing(&no_segments),
        &metadata,
        Recovery::TruncateCorrupt,
        false,
    )
    .unwrap();
    assert!(plan.report.corruption_cut);
    assert!(plan.segments.is_empty());
    assert_eq!(plan.empty_log_base(), 250);
    // A new log with nothing durable yet has nothing missing.
    let plan = decide(&no_segments, &found(checkpoint(0, 0)));
    assert!(!plan.report.corruption_cut);
}

#[test]
fn orphan_indexes_are_deleted() {
    let mut names = segment_names(&[100]);
    names.push(name(50, "index"));
    names.push(name(50, "timeindex"));
    names.push(name(300, "index"));
    let plan = decide(&names, &found(checkpoint(100, 100)));
    assert_eq!(
        plan.delete_orphans,
        [name(50, "index"), name(50, "timeindex"), name(300, "index")]
    );
    assert_eq!(plan.segments, [100]);
}

#[test]
fn temporary_and_uncommitted_compaction_files_are_deleted() {
    let mut names = segment_names(&[0, 100]);
    let cleaned: Vec<String> = ["log", "index", "timeindex"]
        .iter()
        .map(|ext| format!("{}.cleaned", name(0, ext)))
        .collect();
    names.extend(cleaned.clone());
    names.push("checkpoint.tmp".to_owned());
    names.push(format!("{}.truncating", name(100, "log")));
    let metadata = Metadata {
        // The swap was recorded but never committed: no `.log.swap`.
        cleaner: Stored::Found(CleanerCheckpoint {
            first_dirty: 0,
            swap: Some((0, 100)),
            horizons: Vec::new(),
        }),
        ..found(checkpoint(0, 150))
    };
    let plan = decide(&names, &metadata);
    assert_eq!(plan.delete_cleaned, cleaned);
    assert_eq!(
        plan.delete_temporary,
        [
            "checkpoint.tmp".to_owned(),
            format!("{}.truncating", name(100, "log"))
        ]
    );
    assert_eq!(plan.finish_swap, None);
    assert_eq!(plan.cleaner.swap, None, "the swap is forgotten");
    assert!(plan.write_cleaner);
    assert_eq!(plan.segments, [0, 100], "the originals are intact");
}

#[test]
fn a_committed_swap_is_finished() {
    // Segments 0, 100 and 200 were cleaned into one at 0; the commit renamed the `.cleaned`
    // files to `.swap` (the offset index's, not the time index's, before the crash). Segment 100
    // was already deleted.
    let mut names = segment_names(&[0, 200, 300]);
    names.push(format!("{}.swap", name(0, "log")));
    names.push(format!("{}.swap", name(0, "index")));
    names.push(format!("{}.swap", name(700, "index"))); // left by an older attempt
    let metadata = Metadata {
        cleaner: Stored::Found(CleanerCheckpoint {
            first_dirty: 0,
            swap: Some((0, 300)),
            horizons: Vec::new(),
        }),
        ..found(checkpoint(0, 350))
    };
    let plan = decide(&names, &metadata);
    assert_eq!(
        plan.finish_swap,
        Some(SwapFinish {
            base: 0,
            end: 300,
            replaced: segment_names(&[0, 200]),
        })
    );
    assert_eq!(
        plan.delete_stray_swaps,
        [format!("{}.swap", name(700, "index"))]
    );
    assert_eq!(plan.segments, [0, 300]);
    assert!(plan.delete_orphans.is_empty(), "{:?}", plan.delete_orphans);
    assert_eq!(plan.cleaner.swap, None);
    assert!(plan.write_cleaner);
    assert_eq!(plan.trusted, 1);
}

#[test]
fn a_swap_file_without_its_record_is_refused() {
    let mut names = segment_names(&[0, 100]);
    names.push(format!("{}.swap", name(0, "log")));
    for (cleaner, says) in [
        (Stored::Missing, "no matching cleaner checkpoint entry"),
        (
            Stored::Found(CleanerCheckpoint {
                first_dirty: 0,
                swap: Some((100, 200)),
                horizons: Vec::new(),
            }),
            "no matching cleaner checkpoint entry",
        ),
        (
            Stored::Damaged("CRC mismatch".to_owned()),
            "the cleaner checkpoint is damaged",
        ),
    ] {
        let metadata = Metadata {
            cleaner,
            ..found(checkpoint(0, 150))
        };
        let (path, reason) = corrupt_reason(RecoveryPlan::decide(
            &listing(&names),
            &metadata,
            Recovery::TruncateCorrupt,
            false,
        ));
        assert_eq!(
            path,
            Path::new(DIR).join(format!("{}.swap", name(0, "log")))
        );
        assert!(reason.contains(says), "{reason}");
    }
}

#[test]
fn a_damaged_cleaner_checkpoint_starts_over() {
    let metadata = Metadata {
        cleaner: Stored::Damaged("CRC mismatch".to_owned()),
        ..found(checkpoint(0, 150))
    };
    let plan = decide(&segment_names(&[0, 100]), &metadata);
    assert_eq!(plan.cleaner, CleanerCheckpoint::default());
    assert!(plan.write_cleaner);
    // An intact one without a swap is left as it is.
    let metadata = Metadata {
        cleaner: Stored::Found(CleanerCheckpoint {
            first_dirty: 40,
            swap: None,
            horizons: Vec::new(),
        }),
        ..found(checkpoint(0, 150))
    };
    let plan = decide(&segment_names(&[0, 100]), &metadata);
    assert_eq!(plan.cleaner.first_dirty, 40);
    assert!(!plan.write_cleaner);
}

#[test]
fn producer_state_comes_from_a_fitting_snapshot_else_the_log() {
    let table = ProducerTable::default();
    // A snapshot at or below the end is used as it is.
    let r = ProducerReplay::decide(Stored::Found((80, table.clone())), Some(10), 0, 100);
    assert_eq!((r.from, r.rebuilt), (Some((80, table.clone())), false));
    // One past the end (recovery cut the log below it) is stale: replay from where producers
    // began, or from the log start if that is later.
    let r = ProducerReplay::decide(Stored::Found((120, table.clone())), Some(10), 0, 100);
    assert_eq!((r.from, r.rebuilt), (Some((10, table.clone())), true));
    let r = ProducerReplay::decide(Stored::Missing, Some(10), 50, 100);
    assert_eq!((r.from, r.rebuilt), (Some((50, table.clone())), true));
    // Damaged, and the checkpoint does not say where producers began: the whole log.
    let r = ProducerReplay::decide(Stored::Damaged("CRC".into()), None, 50, 100);
    assert_eq!((r.from, r.rebuilt), (Some((50, table.clone())), true));
    // No idempotent producer ever wrote here.
    let r = ProducerReplay::decide(Stored::Missing, None, 0, 100);
    assert_eq!((r.from, r.rebuilt), (None, false));
}

/// A `SimFs` with `DIR` created.
fn sim() -> SimFs {
    let fs = SimFs::new(3);
    fs.create_dir_all(Path::new(DIR)).unwrap();
    fs
}

#[test]
fn metadata_looks_at_segments_only_when_no_checkpoint_or_marker_says_where_the_log_starts() {
    let fs = sim();
    let dir = Path::new(DIR);
    let log = segment_file_name(dir, 0, SegmentFileKind::Log);
    fs.write_file(&log, &[0u8; 512]); // preallocated, never written
    let metadata = Metadata::read(&fs, &DirListing::read(&fs, dir).unwrap(), false).unwrap();
    assert_eq!(metadata.checkpoint, Stored::Missing);
    assert_eq!(metadata.holds_data, Some(false));
    fs.write_file(&log, &[1u8; 512]);
    let metadata = Metadata::read(&fs, &DirListing::read(&fs, dir).unwrap(), false).unwrap();
    assert_eq!(metadata.holds_data, Some(true));
    checkpoint(0, 0).write(&fs, dir).unwrap();
    let metadata = Metadata::read(&fs, &DirListing::read(&fs, dir).unwrap(), false).unwrap();
    assert_eq!(metadata.checkpoint, Stored::Found(checkpoint(0, 0)));
    assert_eq!(metadata.holds_data, None, "not looked at");
    fs.write_file(&dir.join("checkpoint"), b"TLCP garbage");
    fs.write_file(&dir.join("cleaner-checkpoint"), b"garbage");
    let metadata = Metadata::read(&fs, &DirListing::read(&fs, dir).unwrap(), false).unwrap();
    assert!(matches!(metadata.checkpoint, Stored::Damaged(_)));
    assert!(matches!(metadata.cleaner, Stored::Damaged(_)));
    assert_eq!(metadata.holds_data, Some(true));
}

#[test]
fn a_foreign_first_segment_is_the_segments_job_to_refuse() {
    // The plan goes by names: a `.log` of another format is one more segment to rescan.
    let plan = decide(&segment_names(&[0]), &found(checkpoint(0, 0)));
    assert_eq!(
        (plan.segments.as_slice(), plan.trusted),
        ([0u64].as_slice(), 0)
    );
    assert!(plan.delete_orphans.is_empty() && plan.delete_below_start.is_empty());
    // The rescan refuses it and leaves it as it was, under either mode.
    let fs = sim();
    let log = segment_file_name(Path::new(DIR), 0, SegmentFileKind::Log);
    let foreign: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
    fs.write_file(&log, &foreign);
    let fs: Arc<dyn FileSystem> = Arc::new(fs);
    for mode in [Recovery::Strict, Recovery::TruncateCorrupt] {
        let config = LogConfig {
            recovery: mode,
            ..LogConfig::default()
        };
        let result = Segment::recover(fs.clone(), Path::new(DIR), 0, &config, 0);
        match result {
            Err(Error::Corrupt {
                path,
                position,
                reason,
            }) => {
                assert_eq!((path.as_path(), position), (log.as_path(), 0));
                assert!(reason.contains("does not start with a Kafka RecordBatch v2"));
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        let f = fs.open(&log, OpenMode::Read).unwrap();
        let mut bytes = vec![0u8; f.len().unwrap() as usize];
        f.read_exact_at(&mut bytes, 0).unwrap();
        assert_eq!(bytes, foreign, "{mode:?}: the file was changed");
    }
}

/// A segment of topiclog's pre-release format (little-endian header, version byte 1 where Kafka
/// has its magic) or of Kafka's message format v1 is refused with `UnsupportedFormat` naming the
/// file and the format, by recovery and by a clean open alike, and left as it was.
#[test]
fn segments_of_other_formats_are_refused_by_name() {
    // The first 57 bytes of a pre-release batch: base offset, length, CRC (little-endian), version 1.
    let mut pre_release = vec![0u8; 120];
    pre_release[8..12].copy_from_slice(&108u32.to_le_bytes());
    pre_release[12..16].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    pre_release[16] = 1;
    // A Kafka v1 message: offset, size, CRC (big-endian), magic 1.
    let mut kafka_v1 = vec![0u8; 60];
    kafka_v1[8..12].copy_from_slice(&48u32.to_be_bytes());
    kafka_v1[16] = 1;
    for (bytes, words) in [
        (pre_release, "topiclog's pre-release segment format"),
        (kafka_v1, "Kafka message format v1"),
    ] {
        let fs = sim();
        let log = segment_file_name(Path::new(DIR), 0, SegmentFileKind::Log);
        fs.write_file(&log, &bytes);
        let fs: Arc<dyn FileSystem> = Arc::new(fs);
        let config = LogConfig::default();
        let recovered = Segment::recover(fs.clone(), Path::new(DIR), 0, &config, 0);
        let opened = Segment::open_active(fs.clone(), Path::new(DIR), 0, &config);
        for result in [recovered.map(|(s, _)| s), opened] {
            match result {
                Err(Error::UnsupportedFormat { path, found }) => {
                    assert_eq!(path, log);
                    assert!(found.contains(words), "{found}");
                }
                other => panic!("{words}: {other:?}"),
            }
        }
        let f = fs.open(&log, OpenMode::Read).unwrap();
        let mut left = vec![0u8; f.len().unwrap() as usize];
        f.read_exact_at(&mut left, 0).unwrap();
        assert_eq!(left, bytes, "{words}: the file was changed");
    }
}

#[test]
fn applying_a_plan_tidies_the_directory_as_decided() {
    let fs = sim();
    let dir = Path::new(DIR);
    let afs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let config = LogConfig {
        segment_bytes: 1 << 20,
        max_index_bytes: 4096,
        ..LogConfig::default()
    };
    for base in [0u64, 100] {
        Segment::create(afs.clone(), dir, base, &config).unwrap();
    }
    checkpoint(100, 100).write(&fs, dir).unwrap();
    for leftover in [
        "checkpoint.tmp".to_owned(),
        format!("{}.cleaned", name(100, "log")),
        name(7, "index"),
    ] {
        fs.write_file(&dir.join(leftover), b"x");
    }
    let listing = DirListing::read(&fs, dir).unwrap();
    let plan = RecoveryPlan::decide(
        &listing,
        &Metadata::read(&fs, &listing, false).unwrap(),
        Recovery::Strict,
        false,
    )
    .unwrap();
    assert_eq!(plan.delete_below_start, [0]);
    let recovered = plan.apply(&afs, &SystemClock, &config, None).unwrap();
    let mut left = fs.read_dir(dir).unwrap();
    left.sort();
    assert_eq!(
        left,
        [
            name(100, "index"),
            name(100, "log"),
            name(100, "timeindex"),
            "checkpoint".to_owned()
        ]
    );
    assert_eq!((recovered.start, recovered.end), (100, 100));
    assert_eq!(recovered.segments.len(), 1);
    assert_eq!(recovered.report.segments_scanned, 1);
}

/// `DIR` on a fresh `SimFs` holding a segment at 0 with offsets 0..50 (one batch) and an empty
/// one at 100: the first ends early, before the second begins.
fn early_end(recovery_point: u64) -> (SimFs, Arc<dyn FileSystem>) {
    use crate::format::{Record, RecordBatch};
    let fs = sim();
    let afs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let config = LogConfig {
        max_index_bytes: 4096,
        preallocate: false,
        ..LogConfig::default()
    };
    let records: Vec<Record> = (0..50).map(|i| Record::new(format!("r{i}"))).collect();
    let first = Segment::create(afs.clone(), Path::new(DIR), 0, &config).unwrap();
    first
        .append(RecordBatch::build(&records, 0, 0).unwrap().as_bytes(), 0)
        .unwrap();
    first.seal().unwrap();
    Segment::create(afs.clone(), Path::new(DIR), 100, &config).unwrap();
    checkpoint(0, recovery_point)
        .write(&fs, Path::new(DIR))
        .unwrap();
    (fs, afs)
}

fn open_dir(
    fs: &SimFs,
    afs: &Arc<dyn FileSystem>,
    mode: Recovery,
) -> crate::Result<super::Recovered> {
    let config = LogConfig {
        segment_bytes: 1 << 20,
        max_index_bytes: 4096,
        recovery: mode,
        ..LogConfig::default()
    };
    let listing = DirListing::read(fs, Path::new(DIR))?;
    let plan = RecoveryPlan::decide(&listing, &Metadata::read(fs, &listing, false)?, mode, false)?;
    plan.apply(afs, &SystemClock, &config, None)
}

#[test]
fn a_rescanned_segment_ending_early_above_the_recovery_point_drops_what_follows() {
    let (fs, afs) = early_end(0);
    let recovered = open_dir(&fs, &afs, Recovery::Strict).unwrap();
    assert_eq!(recovered.segments.len(), 1);
    assert_eq!((recovered.start, recovered.end), (0, 50));
    assert_eq!(recovered.report.segments_deleted, 1);
    assert!(!recovered.report.corruption_cut, "never durable: no damage");
    let log = segment_file_name(Path::new(DIR), 100, SegmentFileKind::Log);
    assert!(!fs.exists(&log).unwrap());
}

#[test]
fn a_rescanned_segment_ending_early_below_the_recovery_point_is_damage() {
    let (fs, afs) = early_end(60);
    match open_dir(&fs, &afs, Recovery::Strict) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains("durable records are missing"), "{reason}")
        }
        other => panic!("{:?}", other.map(|r| r.report)),
    }
    let log = segment_file_name(Path::new(DIR), 100, SegmentFileKind::Log);
    assert!(fs.exists(&log).unwrap(), "a refusal deletes nothing");
    let recovered = open_dir(&fs, &afs, Recovery::TruncateCorrupt).unwrap();
    assert_eq!(recovered.end, 50);
    assert_eq!(recovered.report.segments_deleted, 1);
    assert!(recovered.report.corruption_cut);
    assert!(!fs.exists(&log).unwrap());
}
