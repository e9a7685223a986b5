//! Damage to one file of a partition directory never loses, brings back or misplaces a record
//! silently: open repairs what it provably can (from a redundant copy, or from the log), and
//! reports the rest as `Error::Corrupt` (or, under `Recovery::TruncateCorrupt`, as a reported
//! cut). Each test reproduces one finding of the damage sweep of issue 9:
//! - a flipped bit in the `checkpoint` of a cleaned compacted partition made open delete every
//!   later segment, silently;
//! - a damaged `checkpoint` brought back records `delete_records` removed (start 5 became 0);
//! - a missing `producer-snapshot` lost idempotence: a replayed batch was stored twice;
//! - a sealed segment truncated at a batch boundary, truncated to 0 or deleted went unnoticed:
//!   offsets skipped silently, or the log start moved up;
//! - the active segment cut at a batch boundary below the recovery point opened without error;
//! - a `.log` in another format (a Kafka broker's, a later version's) was erased by recovery.
//!
//! Every scenario runs on two images: after a clean close, and after a crash (the process died
//! after `flush`, so everything is durable and below the recovery point).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{crash_without_close, file_bytes, segment_files};
use topiclog::fs::{FileSystem, OpenMode, SimFs};
use topiclog::segment::SegmentFileKind;
use topiclog::{
    CleanupPolicy, CompactionPolicy, Durability, Env, Error, LogConfig, ManualClock, Partition,
    ProducerBatch, Record, Recovery,
};

const DIR: &str = "/p";
const T0: i64 = 1_700_000_000_000;

fn env(fs: &SimFs, clock: &ManualClock) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(clock.clone()),
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        preallocate: false,
        durability: Durability::Always,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Clean,
    Crash,
}

fn stop(log: Partition, how: Stop) {
    match how {
        Stop::Clean => log.close().unwrap(),
        Stop::Crash => {
            log.flush_checkpoint().unwrap();
            crash_without_close(log);
        }
    }
}

/// A record as `(offset, key, value)`.
type Rec = (u64, Vec<u8>, Option<Vec<u8>>);

/// Every record from the start offset; `Err` if a read fails.
fn scan(log: &Partition) -> topiclog::Result<Vec<Rec>> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let b = log.read(next, 1 << 20)?;
        for r in b.records() {
            out.push((
                r.offset(),
                r.key().map_or(Vec::new(), |k| k.to_vec()),
                r.value().map(|v| v.to_vec()),
            ));
        }
        next = b.next_offset();
    }
    Ok(out)
}

/// A compacted partition of several segments, cleaned once (so some segments were rewritten and
/// end in batches the cleaner re-encoded), with `delete_records` moving the start to 5.
fn compacted(fs: &SimFs, clock: &ManualClock, how: Stop) -> Vec<Rec> {
    let log = Partition::open_with_env(DIR, config(), env(fs, clock)).unwrap();
    for i in 0..120u64 {
        log.append(
            Record::new(format!("value-{i}-{}", "x".repeat(40))).with_key(format!("k{}", i % 9)),
        )
        .unwrap();
    }
    let policy = CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    };
    assert!(log.compact(T0, &policy).unwrap().cleaned);
    log.delete_records(5).unwrap();
    assert!(log.segment_count() >= 3);
    let records = scan(&log).unwrap();
    stop(log, how);
    records
}

fn files(fs: &SimFs) -> Vec<String> {
    fs.read_dir(Path::new(DIR)).unwrap()
}

fn flip(fs: &SimFs, path: &Path, at: u64) {
    let b = file_bytes(fs, path);
    let f = fs.open(path, OpenMode::ReadWrite).unwrap();
    f.write_all_at(&[b[at as usize] ^ 0x08], at).unwrap();
}

fn open(fs: &SimFs, clock: &ManualClock) -> topiclog::Result<Partition> {
    Partition::open_with_env(DIR, config(), env(fs, clock))
}

fn assert_corrupt_naming(result: topiclog::Result<Partition>, file: &str, what: &str) {
    match result {
        Err(Error::Corrupt { path, .. }) => {
            assert!(path.to_string_lossy().contains(file), "{what}: {path:?}")
        }
        Err(e) => panic!("{what}: expected Corrupt naming {file}, got {e:?}"),
        Ok(log) => panic!(
            "{what}: opened ({:?}, start {}, end {})",
            log.recovery_report(),
            log.start_offset(),
            log.end_offset()
        ),
    }
}

#[test]
fn a_damaged_checkpoint_deletes_nothing_and_brings_nothing_back() {
    let checkpoint = PathBuf::from(DIR).join("checkpoint");
    for how in [Stop::Clean, Stop::Crash] {
        for damage in ["flip", "delete"] {
            let what = format!("{how:?}, {damage}");
            let (fs, clock) = (SimFs::new(1), ManualClock::new(T0));
            let records = compacted(&fs, &clock, how);
            let before = files(&fs);
            match damage {
                "flip" => flip(&fs, &checkpoint, 9),
                _ => fs.remove_file(&checkpoint).unwrap(),
            }
            match how {
                // The clean close's marker holds the same values: repaired from it.
                Stop::Clean => {
                    let log = open(&fs, &clock).unwrap();
                    assert!(log.recovery_report().checkpoint_damaged, "{what}");
                    assert_eq!(log.start_offset(), 5, "{what}: deleted records are back");
                    assert_eq!(scan(&log).unwrap(), records, "{what}");
                    assert!(
                        matches!(
                            log.read(4, 100),
                            Err(Error::OffsetOutOfRange { start: 5, .. })
                        ),
                        "{what}"
                    );
                }
                // Nothing vouches for the log start offset: refuse, and touch nothing.
                Stop::Crash => {
                    let mut after_damage = before.clone();
                    if damage == "delete" {
                        after_damage.retain(|n| n != "checkpoint");
                    }
                    assert_corrupt_naming(open(&fs, &clock), "checkpoint", &what);
                    assert_eq!(
                        files(&fs),
                        after_damage,
                        "{what}: the refused open changed files"
                    );
                    // Under TruncateCorrupt too: guessing the start could resurrect records.
                    let cut = LogConfig {
                        recovery: Recovery::TruncateCorrupt,
                        ..config()
                    };
                    assert!(
                        Partition::open_with_env(DIR, cut, env(&fs, &clock)).is_err(),
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_missing_producer_snapshot_is_rebuilt_from_the_log() {
    for how in [Stop::Clean, Stop::Crash] {
        let (fs, clock) = (SimFs::new(2), ManualClock::new(T0));
        let log = open(&fs, &clock).unwrap();
        let p = |seq| ProducerBatch {
            producer_id: 11,
            epoch: 0,
            base_sequence: seq,
        };
        for seq in 0..30 {
            log.append_idempotent(
                &[Record::new(format!("v{seq}-{}", "y".repeat(60))).with_key("k")],
                p(seq),
                Durability::Always,
            )
            .unwrap();
        }
        assert!(log.segment_count() > 1);
        let end = log.end_offset();
        stop(log, how);
        fs.remove_file(&PathBuf::from(DIR).join("producer-snapshot"))
            .unwrap();
        let log = open(&fs, &clock).unwrap();
        assert!(log.recovery_report().producer_state_rebuilt, "{how:?}");
        // The last batch replayed is recognised: acknowledged at its offset, stored once.
        let again = log
            .append_idempotent(
                &[Record::new(format!("v29-{}", "y".repeat(60))).with_key("k")],
                p(29),
                Durability::Always,
            )
            .unwrap();
        assert!(again.duplicate, "{how:?}");
        assert_eq!(again.base_offset, end - 1, "{how:?}");
        assert_eq!(
            log.end_offset(),
            end,
            "{how:?}: the replay was stored twice"
        );
        // And the sequence goes on.
        let next = log
            .append_idempotent(
                &[Record::new("v30").with_key("k")],
                p(30),
                Durability::Always,
            )
            .unwrap();
        assert_eq!((next.base_offset, next.duplicate), (end, false));
    }
}

#[test]
fn idle_producer_ids_expire() {
    let (fs, clock) = (SimFs::new(3), ManualClock::new(T0));
    let cfg = LogConfig {
        producer_id_expiration: Duration::from_secs(3600),
        ..config()
    };
    let log = Partition::open_with_env(DIR, cfg.clone(), env(&fs, &clock)).unwrap();
    let p = ProducerBatch {
        producer_id: 4,
        epoch: 0,
        base_sequence: 0,
    };
    let first = log
        .append_idempotent(&[Record::new("a").with_key("k")], p, Durability::Always)
        .unwrap();
    clock.advance(Duration::from_secs(1800));
    assert!(
        log.append_idempotent(&[Record::new("a").with_key("k")], p, Durability::Always)
            .unwrap()
            .duplicate,
        "within the window a replay is recognised"
    );
    // Idle past the window (counted from its last write), the producer is forgotten: the same
    // batch is taken as new, as in Kafka.
    clock.advance(Duration::from_secs(3601));
    log.flush_if_due().unwrap();
    let again = log
        .append_idempotent(&[Record::new("a").with_key("k")], p, Durability::Always)
        .unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, first.base_offset + 1);
    // Expired producers leave the snapshot and do not come back with a rebuild.
    let q = ProducerBatch {
        producer_id: 9,
        ..p
    };
    log.append_idempotent(&[Record::new("b").with_key("k")], q, Durability::Always)
        .unwrap();
    clock.advance(Duration::from_secs(7200));
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env(DIR, cfg.clone(), env(&fs, &clock)).unwrap();
    let b = log
        .append_idempotent(&[Record::new("b").with_key("k")], q, Durability::Always)
        .unwrap();
    assert!(
        !b.duplicate,
        "an expired producer is not restored from the snapshot"
    );
    log.close().unwrap();
    drop(log);
    fs.remove_file(&PathBuf::from(DIR).join("producer-snapshot"))
        .unwrap();
    clock.advance(Duration::from_secs(7200));
    let log = Partition::open_with_env(DIR, cfg, env(&fs, &clock)).unwrap();
    assert!(log.recovery_report().producer_state_rebuilt);
    let c = log
        .append_idempotent(&[Record::new("b").with_key("k")], q, Durability::Always)
        .unwrap();
    assert!(!c.duplicate, "nor rebuilt from the log");
}

/// The sealed segments of `/p`, oldest first (the last `.log` is the active one).
fn sealed_logs(fs: &SimFs) -> Vec<PathBuf> {
    let mut logs = segment_files(fs, Path::new(DIR), SegmentFileKind::Log);
    logs.pop();
    logs
}

/// The byte position where the last batch of a `.log` starts.
fn last_batch_start(bytes: &[u8]) -> usize {
    let mut pos = 0;
    let mut last = 0;
    while pos < bytes.len() {
        let h = topiclog::segment::BatchHeader::parse(&bytes[pos..]).unwrap();
        last = pos;
        pos += h.total_len();
    }
    last
}

/// Open and read everything: either an error, or exactly `records`. Never a silent gap.
fn read_all_or_error(fs: &SimFs, clock: &ManualClock, records: &[Rec], what: &str) -> bool {
    let log = match open(fs, clock) {
        Ok(log) => log,
        Err(Error::Corrupt { .. }) => return true,
        Err(e) => panic!("{what}: {e:?}"),
    };
    match scan(&log) {
        Err(Error::Corrupt { .. }) => true,
        Err(e) => panic!("{what}: {e:?}"),
        Ok(got) => {
            assert_eq!(got, records, "{what}: records went missing silently");
            false
        }
    }
}

#[test]
fn a_sealed_segment_cut_or_deleted_is_reported() {
    for how in [Stop::Clean, Stop::Crash] {
        for damage in ["truncate-at-batch", "truncate-to-0", "delete"] {
            for which in ["first", "middle"] {
                let what = format!("{how:?}, {damage} the {which} sealed segment");
                let (fs, clock) = (SimFs::new(4), ManualClock::new(T0));
                // A plain (delete-policy) log: every offset holds a record.
                let log = Partition::open_with_env(
                    DIR,
                    LogConfig {
                        cleanup_policy: CleanupPolicy::Delete,
                        ..config()
                    },
                    env(&fs, &clock),
                )
                .unwrap();
                for i in 0..60u64 {
                    log.append(Record::new(format!("r{i}-{}", "z".repeat(50))).with_key("k"))
                        .unwrap();
                }
                let records = scan(&log).unwrap();
                stop(log, how);
                let sealed = sealed_logs(&fs);
                assert!(sealed.len() >= 3);
                let victim = if which == "first" {
                    &sealed[0]
                } else {
                    &sealed[1]
                };
                let bytes = file_bytes(&fs, victim);
                match damage {
                    "truncate-at-batch" => {
                        let f = fs.open(victim, OpenMode::ReadWrite).unwrap();
                        f.set_len(last_batch_start(&bytes) as u64).unwrap();
                    }
                    "truncate-to-0" => {
                        fs.open(victim, OpenMode::ReadWrite)
                            .unwrap()
                            .set_len(0)
                            .unwrap();
                    }
                    _ => fs.remove_file(victim).unwrap(),
                }
                let config = LogConfig {
                    cleanup_policy: CleanupPolicy::Delete,
                    ..config()
                };
                let detected = match Partition::open_with_env(DIR, config, env(&fs, &clock)) {
                    Err(Error::Corrupt { .. }) => true,
                    Err(e) => panic!("{what}: {e:?}"),
                    Ok(log) => {
                        assert_eq!(log.start_offset(), 0, "{what}: the log start moved up");
                        match scan(&log) {
                            Err(Error::Corrupt { .. }) => true,
                            Err(e) => panic!("{what}: {e:?}"),
                            Ok(got) => {
                                assert_eq!(got, records, "{what}: records went missing silently");
                                false
                            }
                        }
                    }
                };
                assert!(detected, "{what}: not reported");
            }
        }
    }
}

#[test]
fn the_active_segment_cut_below_the_recovery_point_is_reported() {
    for how in [Stop::Clean, Stop::Crash] {
        for damage in ["truncate-at-batch", "truncate-to-0", "delete"] {
            let what = format!("{how:?}, {damage} the active segment");
            let (fs, clock) = (SimFs::new(5), ManualClock::new(T0));
            let records = compacted(&fs, &clock, how);
            let active = segment_files(&fs, Path::new(DIR), SegmentFileKind::Log)
                .pop()
                .unwrap();
            let bytes = file_bytes(&fs, &active);
            assert!(!bytes.is_empty());
            match damage {
                "truncate-at-batch" => {
                    let f = fs.open(&active, OpenMode::ReadWrite).unwrap();
                    f.set_len(last_batch_start(&bytes) as u64).unwrap();
                }
                "truncate-to-0" => {
                    fs.open(&active, OpenMode::ReadWrite)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                }
                _ => fs.remove_file(&active).unwrap(),
            }
            assert!(
                read_all_or_error(&fs, &clock, &records, &what),
                "{what}: not reported"
            );
            // TruncateCorrupt opens, and says it cut damage.
            let cut = LogConfig {
                recovery: Recovery::TruncateCorrupt,
                ..config()
            };
            let log = Partition::open_with_env(DIR, cut, env(&fs, &clock)).unwrap();
            assert!(
                log.recovery_report().corruption_cut,
                "{what}: {:?}",
                log.recovery_report()
            );
            let got = scan(&log).unwrap();
            assert!(
                got.len() < records.len() && records.starts_with(&got),
                "{what}"
            );
        }
    }
}

#[test]
fn a_segment_in_another_format_is_refused_and_left_untouched() {
    // A Kafka message set v1 (before Kafka 0.11) at offset 0: big-endian offset, message size,
    // CRC, magic 1, attributes, timestamp, null key, a value. Segments are Kafka's RecordBatch v2
    // now; the older formats are refused by name, and topiclog's own pre-release one likewise.
    let mut kafka_v1 = Vec::new();
    kafka_v1.extend_from_slice(&0u64.to_be_bytes());
    kafka_v1.extend_from_slice(&26u32.to_be_bytes());
    kafka_v1.extend_from_slice(&[0x5c, 0x17, 0x9e, 0x3a]);
    kafka_v1.push(1);
    kafka_v1.push(0);
    kafka_v1.extend_from_slice(&T0.to_be_bytes());
    kafka_v1.extend_from_slice(&(-1i32).to_be_bytes());
    kafka_v1.extend_from_slice(&3u32.to_be_bytes());
    kafka_v1.extend_from_slice(b"old");
    let mut pre_release = vec![0u8; 70];
    pre_release[8..12].copy_from_slice(&58u32.to_le_bytes());
    pre_release[16] = 1;
    for (foreign, words) in [
        (&kafka_v1, "Kafka message format v1"),
        (&pre_release, "pre-release"),
    ] {
        for mode in [Recovery::Strict, Recovery::TruncateCorrupt] {
            for clean in [false, true] {
                let (fs, clock) = (SimFs::new(6), ManualClock::new(T0));
                fs.create_dir_all(Path::new(DIR)).unwrap();
                let log_path = PathBuf::from(DIR).join("00000000000000000000.log");
                fs.write_file(&log_path, foreign);
                if clean {
                    // A directory that looks cleanly closed too: the marker does not vouch for it.
                    fs.write_file(&PathBuf::from(DIR).join(".clean_shutdown"), b"");
                }
                let cfg = LogConfig {
                    recovery: mode,
                    ..config()
                };
                match Partition::open_with_env(DIR, cfg, env(&fs, &clock)) {
                    Err(Error::UnsupportedFormat { path, found }) => {
                        assert_eq!(path, log_path);
                        assert!(found.contains(words), "{found}");
                    }
                    // No checkpoint and data: the log start offset is unknown, said first.
                    Err(Error::Corrupt { path, .. }) if path.ends_with("checkpoint") => {}
                    other => panic!("{mode:?}: {other:?}"),
                }
                assert_eq!(
                    &file_bytes(&fs, &log_path),
                    foreign,
                    "{mode:?}: the file was changed"
                );
            }
        }
        // With a valid checkpoint (a partition of ours whose segment was replaced by a foreign
        // one), the refusal names the segment and the format.
        let (fs, clock) = (SimFs::new(7), ManualClock::new(T0));
        let log = open(&fs, &clock).unwrap();
        log.append(Record::new("ours").with_key("k")).unwrap();
        stop(log, Stop::Crash);
        let log_path = PathBuf::from(DIR).join("00000000000000000000.log");
        fs.write_file(&log_path, foreign);
        for mode in [Recovery::Strict, Recovery::TruncateCorrupt] {
            let cfg = LogConfig {
                recovery: mode,
                ..config()
            };
            match Partition::open_with_env(DIR, cfg, env(&fs, &clock)) {
                Err(Error::UnsupportedFormat { path, found }) => {
                    assert_eq!(path, log_path);
                    assert!(found.contains(words), "{found}");
                }
                Err(e) => panic!("{words}: {e:?}"),
                Ok(_) => panic!("{words}: opened"),
            }
            assert_eq!(
                &file_bytes(&fs, &log_path),
                foreign,
                "{mode:?}: the file was changed"
            );
        }
    }
}

#[test]
fn a_damaged_clean_marker_falls_back_to_a_rescan() {
    for damage in ["flip", "garbage", "empty"] {
        let (fs, clock) = (SimFs::new(8), ManualClock::new(T0));
        let records = compacted(&fs, &clock, Stop::Clean);
        let marker = PathBuf::from(DIR).join(".clean_shutdown");
        match damage {
            "flip" => flip(&fs, &marker, 12),
            "garbage" => fs.write_file(&marker, b"not a marker at all"),
            _ => fs.write_file(&marker, b""),
        }
        let log = open(&fs, &clock).unwrap();
        assert!(!log.recovery_report().clean_shutdown, "{damage}");
        assert_eq!(log.start_offset(), 5, "{damage}");
        assert_eq!(scan(&log).unwrap(), records, "{damage}");
    }
}

/// The `.log` of one segment holding `n` batches of about 100 bytes each, as a clean close
/// leaves it, and where each batch starts.
fn one_segment_log(n: u64) -> (Vec<u8>, Vec<usize>) {
    let (fs, clock) = (SimFs::new(11), ManualClock::new(T0));
    let cfg = LogConfig {
        segment_bytes: 1 << 20,
        durability: Durability::None,
        ..config()
    };
    let log = Partition::open_with_env(DIR, cfg, env(&fs, &clock)).unwrap();
    for i in 0..n {
        log.append(Record::new(format!("value {i:>60}")).with_key(format!("k{i}")))
            .unwrap();
    }
    log.close().unwrap();
    let bytes = file_bytes(&fs, &PathBuf::from(DIR).join("00000000000000000000.log"));
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        starts.push(pos);
        pos += 12 + u32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
    }
    assert_eq!(starts.len() as u64, n);
    (bytes, starts)
}

/// Recovery cuts only what a torn write of the next batch can leave: zeros, or a prefix of that
/// batch. Zeros followed by bytes that are not part of one partially written batch are damage:
/// before, a zeroed header counted as a torn write whatever followed, so a valid segment whose
/// first 4,096 bytes were zeroed (or 100 zero bytes and then text) was cut to nothing and opened
/// with end 0 (`bytes_truncated` its whole length, `corruption_cut: false`).
#[test]
fn zeros_followed_by_data_are_damage_not_a_torn_tail() {
    let (valid, starts) = one_segment_log(500);
    assert!(valid.len() > 40_000, "{}", valid.len());
    let mut text = vec![0u8; 100];
    text.extend(std::iter::repeat_n(*b"some text, not a log. ", 140).flatten());
    let mut zeroed_4k = valid.clone();
    zeroed_4k[..4096].fill(0);
    let mut zeroed_8k = valid.clone();
    zeroed_8k[..8192].fill(0);
    let log_path = PathBuf::from(DIR).join("00000000000000000000.log");
    // A directory topiclog never opened (copied from a Kafka broker): nothing is erased.
    for (file, what) in [
        (&zeroed_4k, "first 4 KiB zeroed"),
        (&zeroed_8k, "first 8 KiB zeroed"),
        (&text, "100 zeros, then text"),
    ] {
        for mode in [Recovery::Strict, Recovery::TruncateCorrupt] {
            let (fs, clock) = (SimFs::new(12), ManualClock::new(T0));
            fs.create_dir_all(Path::new(DIR)).unwrap();
            fs.write_file(&log_path, file);
            let cfg = LogConfig {
                recovery: mode,
                ..config()
            };
            match Partition::open_with_env(DIR, cfg, env(&fs, &clock)) {
                Err(Error::Corrupt { path, .. }) => assert_eq!(path, log_path, "{what}"),
                Ok(log) => panic!(
                    "{what}, {mode:?}: opened, end {}, {:?}",
                    log.end_offset(),
                    log.recovery_report()
                ),
                Err(e) => panic!("{what}, {mode:?}: {e:?}"),
            }
            assert_eq!(
                &file_bytes(&fs, &log_path),
                file,
                "{what}: the file was changed"
            );
        }
    }
    // A partition of ours after a crash: 8 KiB zeroed from a batch past the recovery point, with
    // batches after them. Under Strict, damage at that batch; under TruncateCorrupt, a reported cut.
    let at = starts[300];
    let mut zeroed_middle = valid.clone();
    zeroed_middle[at..at + 8192].fill(0);
    for mode in [Recovery::Strict, Recovery::TruncateCorrupt] {
        let (fs, clock) = (SimFs::new(13), ManualClock::new(T0));
        let cfg = LogConfig {
            recovery: mode,
            segment_bytes: 1 << 20,
            durability: Durability::None,
            ..config()
        };
        let log = Partition::open_with_env(DIR, cfg.clone(), env(&fs, &clock)).unwrap();
        log.append(Record::new("first").with_key("k")).unwrap();
        stop(log, Stop::Crash);
        fs.write_file(&log_path, &zeroed_middle);
        match (mode, Partition::open_with_env(DIR, cfg, env(&fs, &clock))) {
            (Recovery::Strict, Err(Error::Corrupt { path, position, .. })) => {
                assert_eq!((path, position), (log_path.clone(), at as u64));
                assert_eq!(
                    file_bytes(&fs, &log_path),
                    zeroed_middle,
                    "the file was changed"
                );
            }
            (Recovery::TruncateCorrupt, Ok(log)) => {
                assert_eq!(log.end_offset(), 300);
                assert!(log.recovery_report().corruption_cut);
            }
            (_, Ok(log)) => panic!("{mode:?}: opened, {:?}", log.recovery_report()),
            (_, Err(e)) => panic!("{mode:?}: {e:?}"),
        }
    }
}
