//! When a pass runs: minimum and maximum compaction lag and the dirty-ratio trigger.

use super::*;

/// Kafka `testMinCompactionLag` (`LogCleanerManagerTest` `testCleanableOffsetsForTime`,
/// `testCleanableOffsetsForShortTime`): segments written less than `min_compaction_lag` ago are not
/// cleaned, nor anything after the first of them; once they age, a later pass cleans them.
#[test]
fn test_min_compaction_lag() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW - 2 * HOUR_MS);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..150i64 {
            let ts = NOW - 2 * HOUR_MS;
            appended.one(
                &log,
                kv(&format!("key-{}", i % 10), &format!("old-{i}"), ts),
            );
        }
        clock.set(NOW - 10 * MINUTE_MS);
        let first_young = log.end_offset();
        for i in 0..150i64 {
            let ts = NOW - 10 * MINUTE_MS;
            appended.one(
                &log,
                kv(&format!("key-{}", i % 10), &format!("young-{i}"), ts),
            );
        }
        let active = active_base(&log);
        let young_segment = log
            .segments()
            .iter()
            .rev()
            .find(|s| s.base_offset() <= first_young)
            .unwrap()
            .base_offset();
        assert!(young_segment < active);
        let policy = CompactionPolicy {
            min_compaction_lag: Duration::from_millis(HOUR_MS as u64),
            ..eager()
        };

        let r = log.compact(NOW, &policy).unwrap();
        assert!(r.cleaned, "{r:?}");
        assert_eq!(
            r.first_dirty_offset, young_segment,
            "stops at the first young segment"
        );
        assert_log(
            &log,
            &expected(&appended.0, young_segment, none_gone),
            "young kept",
        );
        // Every young record is still there.
        let views = record_views(&log, 0);
        assert_eq!(
            views.iter().filter(|r| r.offset >= first_young).count(),
            300 - first_young as usize
        );

        // Not yet: 59 minutes after the young data.
        let r = log
            .compact(NOW - 10 * MINUTE_MS + HOUR_MS - MINUTE_MS, &policy)
            .unwrap();
        assert!(!r.cleaned, "{r:?}");
        let r = log.compact(NOW + HOUR_MS, &policy).unwrap();
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.first_dirty_offset, active);
        assert_log(&log, &expected(&appended.0, active, none_gone), "aged");
    });
}

/// Kafka `testMaxCompactionLag` (`LogCleanerManagerTest` `testLogsWithMaxCompactionLag...` /
/// `needCompactionNow`): a log whose dirty ratio stays below `min_cleanable_dirty_ratio` (1.0 here)
/// is not cleaned until its oldest dirty data is `max_compaction_lag` old, which forces a pass; a
/// far-future record timestamp cannot postpone it (the segment's append time caps it).
#[test]
fn test_max_compaction_lag() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        // Every record carries a timestamp far in the future.
        let future = NOW + 365 * DAY_MS;
        for i in 0..100i64 {
            appended.one(
                &log,
                kv(&format!("key-{}", i % 25), &format!("a-{i}"), future),
            );
        }
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        // Dirty data written at T (some of it into the segment that was active at the first
        // pass, which so becomes the first dirty segment, last written at T).
        let t = NOW + HOUR_MS;
        clock.set(t);
        for i in 0..40i64 {
            appended.one(
                &log,
                kv(&format!("key-{}", i % 5), &format!("b-{i}"), future),
            );
        }
        let active = active_base(&log);
        let first_dirty = log.first_dirty_offset();
        assert!(active > first_dirty, "some dirty sealed data");
        let policy = CompactionPolicy {
            min_cleanable_dirty_ratio: 1.0,
            max_compaction_lag: Deadline::After(Duration::from_millis(HOUR_MS as u64)),
            ..CompactionPolicy::default()
        };
        let ratio = model_dirty_ratio(&log);
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");

        let r = log.compact(t + HOUR_MS - 1, &policy).unwrap();
        assert!(!r.cleaned, "{r:?}");
        assert_eq!(r.dirty_ratio, ratio);
        assert_eq!(log.first_dirty_offset(), first_dirty);
        assert_log(
            &log,
            &expected(&appended.0, first_dirty, none_gone),
            "not yet",
        );

        let r = log.compact(t + HOUR_MS, &policy).unwrap();
        assert!(r.cleaned, "max lag forces a pass: {r:?}");
        assert_eq!(r.first_dirty_offset, active);
        assert_log(&log, &expected(&appended.0, active, none_gone), "forced");
    });
}

/// Kafka `LogCleanerManagerTest` dirty-ratio cases (`testCleanableRatio...`, and
/// `grabFilthiestCompactedLog` skipping logs below `min.cleanable.dirty.ratio`): the ratio is the
/// bytes of sealed segments at or after the first dirty offset over all sealed bytes; a pass below
/// 0.9 does nothing (and reports the ratio); once enough dirty data accumulates it runs.
#[test]
fn test_dirty_ratio_trigger() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let mut o = 0i64;
        let mut append = |log: &Partition, appended: &mut Appended, n: i64| {
            for _ in 0..n {
                // Unique keys: nothing is removed, so clean bytes stay large.
                appended.one(log, kv(&format!("key-{o}"), &format!("value-{o}"), NOW));
                o += 1;
            }
        };
        append(&log, &mut appended, 20);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let policy = CompactionPolicy {
            min_cleanable_dirty_ratio: 0.9,
            ..CompactionPolicy::default()
        };
        let mut runs = 0;
        for step in 0..100 {
            append(&log, &mut appended, 60);
            let ratio = model_dirty_ratio(&log);
            let first_dirty = log.first_dirty_offset();
            let r = log.compact(NOW, &policy).unwrap();
            assert_eq!(r.dirty_ratio, ratio, "step {step}: {r:?}");
            if ratio < 0.9 {
                assert!(!r.cleaned, "step {step}: {r:?}");
                assert_eq!(log.first_dirty_offset(), first_dirty);
                assert_eq!(
                    record_views(&log, 0),
                    expected(&appended.0, first_dirty, none_gone),
                    "step {step}: below the ratio nothing changes"
                );
            } else {
                assert!(r.cleaned, "step {step}: {r:?}");
                runs += 1;
                break;
            }
        }
        assert_eq!(runs, 1, "the ratio was reached");
        let active = active_base(&log);
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "after the pass",
        );
    });
}

/// Kafka judges `min.compaction.lag.ms` by a segment's largest record timestamp. After a pass
/// whose key map filled, the segment holding the new first dirty offset is a freshly written
/// cleaned segment; its data is as old as before, so with the records two hours old and a one-hour
/// lag, the next pass must continue where the map stopped.
#[test]
fn test_partial_clean_continues_under_min_compaction_lag() {
    // Real wall-clock time, as a caller would pass it: the bug needs the file system's mtime.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    both_fs(|fs, dir| {
        let written = now - 2 * HOUR_MS;
        let clock = ManualClock::new(written);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        // Batches of ten keys, each twice in a row: the map fills inside a batch whose first
        // records it can clean, so that batch's segment is rewritten.
        for chunk in (0..400).step_by(10) {
            let batch: Vec<Record> = (chunk..chunk + 10)
                .flat_map(|k| (0..2).map(move |round| (k, round)))
                .map(|(k, round)| kv(&format!("k{k}"), &format!("r{round}"), written))
                .collect();
            appended.batch(&log, &batch);
        }
        let active = active_base(&log);
        let policy = CompactionPolicy {
            map_budget_bytes: MIN_MAP_BUDGET_BYTES,
            min_compaction_lag: Duration::from_millis(HOUR_MS as u64),
            ..eager()
        };
        let first = log.compact(now, &policy).unwrap();
        assert!(first.cleaned && first.map_full, "{first:?}");
        let partial = log
            .segments()
            .into_iter()
            .rev()
            .find(|s| s.base_offset() <= first.first_dirty_offset)
            .unwrap();
        if partial.base_offset() < first.first_dirty_offset {
            // The map filled inside the segment, which the pass rewrote (fresh file time).
            assert_ne!(partial.last_modified_ms(), Some(written));
        }
        let mut passes = 1;
        while log.first_dirty_offset() < active {
            let from = log.first_dirty_offset();
            let r = log.compact(now + passes, &policy).unwrap();
            assert!(
                r.cleaned && r.first_dirty_offset > from,
                "pass {} made no progress from {from} (active segment at {active}): {r:?}",
                passes + 1
            );
            passes += 1;
            assert!(passes < 20);
        }
        assert_log(&log, &expected(&appended.0, active, none_gone), "finished");
    });
}

/// Kafka cleans by ratio only when `cleanableRatio > min.cleanable.dirty.ratio` (strictly), so a
/// ratio of 1.0 never triggers a pass by itself: only `max.compaction.lag.ms` (or a manual clean)
/// does. Here a never-cleaned log is all dirty (ratio exactly 1.0), and no lag is due.
#[test]
fn test_dirty_ratio_one_never_triggers_by_ratio() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        for i in 0..100i64 {
            log.append(kv(&format!("key-{}", i % 5), "v", NOW)).unwrap();
        }
        let policy = CompactionPolicy {
            min_cleanable_dirty_ratio: 1.0,
            max_compaction_lag: Deadline::After(Duration::from_millis(DAY_MS as u64)),
            ..CompactionPolicy::default()
        };
        let r = log.compact(NOW + HOUR_MS, &policy).unwrap();
        assert_eq!(r.dirty_ratio, 1.0);
        assert!(!r.cleaned, "{r:?}");
    });
}
