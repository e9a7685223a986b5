//! Compaction and failures: recovery after a clean close, a crash and a power cut mid-pass, a
//! corrupt segment aborting the pass, truncation into the cleaned range, appends and readers
//! during a pass.

use super::*;

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
