//! What a pass keeps: the latest record per key at its offset, tombstones until their horizon,
//! keyless records removed, headers and timestamps kept, grouping of cleaned segments.

use super::*;

/// Kafka `testCleanSegments`: cleaning keeps exactly the latest record of each key below the
/// active segment, at its original offset, and leaves the active segment alone; the report counts
/// what was read and removed; cleaning again with nothing new is a no-op (every read and
/// `offset_for_time` answer unchanged); a later pass over new data compacts the old survivors
/// against the new records.
#[test]
fn test_clean_segments() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let mut rng = TestRng::new(1);
        for i in 0..200i64 {
            let key = format!("key-{}", rng.below(15));
            appended.one(&log, kv(&key, &format!("value-{i}"), NOW + i));
        }
        let segments_before = log.segment_count();
        assert!(segments_before >= 6, "{segments_before} segments");
        let active = active_base(&log);

        let report = log.compact(NOW, &eager()).unwrap();
        assert!(report.cleaned, "{report:?}");
        assert!(!report.map_full, "{report:?}");
        assert_eq!(report.first_dirty_offset, active);
        assert_eq!(log.first_dirty_offset(), active);
        let want = expected(&appended.0, active, none_gone);
        assert_log(&log, &want, "after the first pass");
        let below = appended.below(active).count() as u64;
        let kept = want.iter().filter(|r| r.offset < active).count() as u64;
        let keys: BTreeSet<_> = appended.below(active).map(|r| r.key.clone()).collect();
        assert_eq!(report.records_read, below, "{report:?}");
        assert_eq!(report.records_removed, below - kept, "{report:?}");
        assert_eq!(report.keys_mapped, keys.len() as u64, "{report:?}");
        assert_eq!(report.tombstones_removed, 0);
        assert_eq!(report.keyless_removed, 0);
        assert_eq!(report.segments_read, segments_before - 1, "{report:?}");
        assert!(log.segment_count() < segments_before);
        assert_eq!(log.end_offset(), 200);

        // Idempotent: nothing dirty, so nothing runs and nothing changes.
        let before = lookups(&log, NOW - 1..=NOW + 200);
        let again = log.compact(NOW, &eager()).unwrap();
        assert!(!again.cleaned, "{again:?}");
        assert_eq!(again.first_dirty_offset, active);
        assert_lookups_eq(&lookups(&log, NOW - 1..=NOW + 200), &before, "second pass");

        // New data supersedes old survivors.
        for i in 200..300i64 {
            let key = format!("key-{}", rng.below(20));
            appended.one(&log, kv(&key, &format!("value-{i}"), NOW + i));
        }
        let active = active_base(&log);
        let report = log.compact(NOW, &eager()).unwrap();
        assert!(report.cleaned, "{report:?}");
        assert_eq!(report.first_dirty_offset, active);
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "after new data",
        );
        let before = lookups(&log, NOW - 1..=NOW + 300);
        assert!(!log.compact(NOW, &eager()).unwrap().cleaned);
        assert_lookups_eq(&lookups(&log, NOW - 1..=NOW + 300), &before, "fourth pass");
    });
}

/// Kafka `testPartialSegmentClean`: with the smallest key map (`MIN_MAP_BUDGET_BYTES`) the map
/// fills in the middle of the dirty range. The pass then cleans only up to the base of the segment
/// where the map filled (as Kafka does; or, if it filled in the first dirty segment, up to the
/// first record whose key did not fit), reports `map_full`, and the first dirty offset advances
/// there; later passes continue from there. The
/// log matches the model after every pass and ends as the latest record per key.
#[test]
fn test_partial_segment_clean() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        // Three rounds over 150 keys, five records to a batch.
        for round in 0..3 {
            for chunk in (0..150).step_by(5) {
                let batch: Vec<Record> = (chunk..chunk + 5)
                    .map(|k| kv(&format!("k{k}"), &format!("r{round}-{k}"), NOW))
                    .collect();
                appended.batch(&log, &batch);
            }
        }
        let active = active_base(&log);
        let policy = CompactionPolicy {
            map_budget_bytes: MIN_MAP_BUDGET_BYTES,
            ..eager()
        };
        let mut passes: Vec<CompactionReport> = Vec::new();
        // (stopped inside the first dirty segment, stopped at a segment boundary)
        let mut mid_segment_or_boundary = (false, false);
        loop {
            let from = log.first_dirty_offset();
            let report = log.compact(NOW, &policy).unwrap();
            let what = format!("pass {} ({report:?})", passes.len() + 1);
            assert!(report.cleaned, "{what}");
            let to = report.first_dirty_offset;
            assert!(to > from, "{what}: no progress from {from}");
            assert_eq!(log.first_dirty_offset(), to, "{what}");
            // The map holds the keys of [from, to) (and, when it filled in a later segment, the
            // keys it took from that segment before the pass ended at its base).
            let keys: BTreeSet<_> = appended
                .0
                .iter()
                .filter(|r| r.offset >= from && r.offset < to)
                .map(|r| r.key.clone())
                .collect();
            assert!(report.keys_mapped >= keys.len() as u64, "{what}");
            if report.map_full {
                assert!(to < active, "{what}");
                let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
                if bases.contains(&to) {
                    // Ended at the base of the segment where the map filled, as Kafka does.
                    mid_segment_or_boundary.1 = true;
                } else {
                    // The map filled inside the first dirty segment: it stopped at the first
                    // record whose key is new.
                    let stop = &appended.0[to as usize];
                    assert!(!keys.contains(&stop.key), "{what}: stopped at a known key");
                    assert_eq!(report.keys_mapped, keys.len() as u64, "{what}");
                    mid_segment_or_boundary.0 = true;
                }
            } else {
                assert_eq!(to, active, "{what}");
            }
            // Where the map stopped: the first record (from `from`) whose key did not fit.
            let stop = if report.map_full {
                let mut seen = BTreeSet::new();
                appended
                    .0
                    .iter()
                    .filter(|r| r.offset >= from && r.key.is_some())
                    .find(|r| {
                        let k = r.key.clone();
                        if seen.contains(&k) {
                            false
                        } else if seen.len() as u64 == report.keys_mapped {
                            true
                        } else {
                            seen.insert(k);
                            false
                        }
                    })
                    .map_or(to, |r| r.offset)
            } else {
                to
            };
            assert!(stop >= to, "{what}");
            assert_log(
                &log,
                &expected_mapped(&appended.0, to, stop, none_gone),
                &what,
            );
            passes.push(report);
            if !report.map_full {
                break;
            }
            assert!(passes.len() < 50, "no end in sight: {passes:?}");
        }
        assert!(passes.len() >= 3, "{passes:?}");
        assert!(
            mid_segment_or_boundary.0 || mid_segment_or_boundary.1,
            "a pass stopped early: {passes:?}"
        );
        let capacity = passes[0].keys_mapped;
        assert!(capacity >= 100, "{passes:?}");
        for p in &passes[..passes.len() - 1] {
            assert_eq!(p.keys_mapped, capacity, "every full pass fills the map");
        }
        // Latest per key: exactly the last round below the active segment.
        let survivors: Vec<_> = record_views(&log, 0)
            .into_iter()
            .filter(|r| r.offset < active)
            .collect();
        let keys: BTreeSet<_> = survivors.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys.len(), survivors.len(), "one record per key");
        assert!(!log.compact(NOW, &policy).unwrap().cleaned);
    });
}

/// Kafka `testCleaningWithDeletes`: unique keys fill some segments, then every even key is deleted
/// with a tombstone, then more unique keys pad the log. A first pass removes every value of the
/// deleted keys and keeps their tombstones (the horizon has not passed); a pass once
/// `delete_retention` has passed removes the tombstones too: the deleted keys are gone entirely,
/// everything else keeps its one record.
#[test]
fn test_cleaning_with_deletes() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        while log.segment_count() < 6 {
            let o = log.end_offset();
            appended.one(&log, kv(&o.to_string(), &format!("v{o}"), NOW));
        }
        let leo = log.end_offset();
        for k in (0..leo).step_by(2) {
            appended.one(&log, tomb(&k.to_string(), NOW));
        }
        while log.segment_count() < 9 {
            let o = log.end_offset();
            appended.one(&log, kv(&o.to_string(), &format!("v{o}"), NOW));
        }
        let active = active_base(&log);
        assert!(
            active > leo + leo / 2,
            "the tombstones lie below the active segment"
        );

        let first = log.compact(NOW, &eager()).unwrap();
        assert!(first.cleaned, "{first:?}");
        assert_eq!(first.tombstones_removed, 0, "{first:?}");
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "tombstones kept",
        );
        let views = record_views(&log, 0);
        for k in (0..leo).step_by(2) {
            let key = k.to_string().into_bytes();
            let of_key: Vec<_> = views
                .iter()
                .filter(|r| r.key.as_ref() == Some(&key))
                .collect();
            assert_eq!(of_key.len(), 1, "key {k}: only its tombstone");
            assert_eq!(of_key[0].value, None, "key {k}");
        }

        // Just before the horizon: nothing is due, nothing runs.
        let early = log
            .compact(NOW + DAY_MS - 1, &CompactionPolicy::default())
            .unwrap();
        assert!(!early.cleaned, "{early:?}");

        let second = log
            .compact(NOW + DAY_MS, &CompactionPolicy::default())
            .unwrap();
        assert!(second.cleaned, "tombstones due trigger a pass: {second:?}");
        let deleted = leo.div_ceil(2);
        assert_eq!(second.tombstones_removed, deleted, "{second:?}");
        assert_eq!(second.records_removed, deleted, "{second:?}");
        let want = expected(&appended.0, active, |r| r.offset < active);
        assert_log(&log, &want, "tombstones removed");
        let keys: BTreeSet<Vec<u8>> = record_views(&log, 0)
            .into_iter()
            .filter_map(|r| r.key)
            .collect();
        for k in 0..leo {
            assert_eq!(
                keys.contains(k.to_string().as_bytes()),
                k % 2 == 1,
                "key {k}"
            );
        }
        // Nothing more is due.
        assert!(
            !log.compact(NOW + 10 * DAY_MS, &CompactionPolicy::default())
                .unwrap()
                .cleaned
        );
    });
}

/// Append filler records (unique keys, 300-byte values) until the log rolls, so everything before
/// lies in sealed segments.
fn roll(log: &Partition, appended: &mut Appended, ts: i64) {
    let segments = log.segment_count();
    while log.segment_count() == segments {
        let o = log.end_offset();
        appended.one(log, kv(&format!("filler-{o}"), &"f".repeat(300), ts));
    }
}

/// Kafka `testCleanTombstone` / the delete-horizon tests (`testDeleteHorizon...`,
/// `testCleanupWithDeleteRetention`): a tombstone is kept by the pass that first maps it and by
/// every pass before that pass's `now + delete_retention`; the first pass at or after it removes
/// it. Older values of the key go at once. A tombstone first mapped by a later pass gets its own,
/// later horizon; the horizons survive a reopen; a tombstone superseded by a later value goes at
/// once (not counted as an expired tombstone); a tombstone in the active segment is never touched.
/// Passes are triggered by due tombstones alone (no dirty data, default dirty ratio).
#[test]
fn test_clean_tombstone_delete_horizon() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let mut log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let retention = CompactionPolicy {
            delete_retention: Duration::from_millis(HOUR_MS as u64),
            ..CompactionPolicy::default()
        };
        let pass = |log: &Partition, now: i64, eager_ratio: bool| {
            let policy = CompactionPolicy {
                min_cleanable_dirty_ratio: if eager_ratio { 0.0 } else { 0.5 },
                ..retention
            };
            log.compact(now, &policy).unwrap()
        };
        let t1 = NOW;
        let t2 = NOW + 30 * MINUTE_MS;
        let a = appended.one(&log, kv("a", "a0", NOW));
        appended.one(&log, kv("b", "b0", NOW));
        appended.one(&log, kv("a", "a1", NOW));
        let d = appended.one(&log, kv("d", "d0", NOW));
        let tomb_a = appended.one(&log, tomb("a", NOW));
        let tomb_d = appended.one(&log, tomb("d", NOW));
        roll(&log, &mut appended, NOW);
        let end1 = active_base(&log);

        // Pass 1 maps the tombstones of a and d: kept, with horizon t1 + 1h.
        let r = pass(&log, t1, true);
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.tombstones_removed, 0, "{r:?}");
        let mut gone: BTreeSet<u64> = BTreeSet::new();
        let model = |appended: &Appended, end: u64, gone: &BTreeSet<u64>| {
            expected(&appended.0, end, |r| gone.contains(&r.offset))
        };
        assert_log(&log, &model(&appended, end1, &gone), "pass 1");
        let views = record_views(&log, 0);
        assert!(views.iter().all(|r| r.offset != a && r.offset != d));
        assert!(views
            .iter()
            .any(|r| r.offset == tomb_a && r.value.is_none()));

        // Pass 2 (t2) first maps b's tombstone (horizon t2 + 1h); d gets a value again, which
        // supersedes its tombstone at once.
        let tomb_b = appended.one(&log, tomb("b", NOW));
        let d1 = appended.one(&log, kv("d", "d1", NOW));
        roll(&log, &mut appended, NOW);
        let end2 = active_base(&log);
        let r = pass(&log, t2, true);
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.tombstones_removed, 0, "superseded is not expired: {r:?}");
        assert_log(&log, &model(&appended, end2, &gone), "pass 2");
        let views = record_views(&log, 0);
        assert!(views.iter().all(|r| r.offset != tomb_d));
        assert!(views.iter().any(|r| r.offset == d1));
        assert!(views.iter().any(|r| r.offset == tomb_b));

        // A tombstone in the active segment, never mapped.
        let tomb_active = appended.one(&log, tomb("e", NOW));

        // The horizons are durable.
        log.close().unwrap();
        drop(log);
        log = open(&fs, dir, &clock);
        assert_eq!(log.first_dirty_offset(), end2);

        // Before a's horizon nothing is due.
        let r = pass(&log, t1 + HOUR_MS - 1, false);
        assert!(!r.cleaned, "{r:?}");
        assert_log(&log, &model(&appended, end2, &gone), "before a's horizon");

        // At a's horizon: a's tombstone goes, b's stays.
        let r = pass(&log, t1 + HOUR_MS, false);
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.tombstones_removed, 1, "{r:?}");
        gone.insert(tomb_a);
        assert_log(&log, &model(&appended, end2, &gone), "a's horizon");

        let r = pass(&log, t2 + HOUR_MS - 1, false);
        assert!(!r.cleaned, "{r:?}");
        let r = pass(&log, t2 + HOUR_MS, false);
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.tombstones_removed, 1, "{r:?}");
        gone.insert(tomb_b);
        let want = model(&appended, end2, &gone);
        assert_log(&log, &want, "b's horizon");
        assert!(want.iter().any(|r| r.offset == tomb_active));
        let keys: BTreeSet<_> = want
            .iter()
            .filter(|r| r.offset < end2)
            .filter_map(|r| r.key.clone())
            .collect();
        assert!(!keys.contains(b"a".as_slice()) && !keys.contains(b"b".as_slice()));
        assert!(keys.contains(b"d".as_slice()));

        // Much later: nothing is due, and the active segment's tombstone is untouched.
        let r = pass(&log, NOW + 100 * DAY_MS, false);
        assert!(!r.cleaned, "{r:?}");
        assert_log(&log, &want, "much later");
    });
}

/// Kafka `testCleaningBeyondMissingOffsets` (and `testCleaningWithOffsetGaps`): a log whose offsets
/// already have gaps, left by an earlier pass inside batches, between batches and at segment ends,
/// is cleaned again correctly; the surviving batches keep their offset ranges, segment offset
/// ranges stay ordered, and a read at any missing offset returns the next record, before and after
/// a reopen.
#[test]
fn test_cleaning_beyond_missing_offsets() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let mut rng = TestRng::new(5);
        let mut appended_ranges = BTreeSet::new();
        let mut append_round = |log: &Partition, appended: &mut Appended, n: usize, keys: u64| {
            for _ in 0..n {
                let size = 1 + rng.below(4) as usize;
                let batch: Vec<Record> = (0..size)
                    .map(|_| {
                        let k = rng.below(keys);
                        kv(
                            &format!("key-{k}"),
                            &format!("value-{}", rng.below(1000)),
                            NOW,
                        )
                    })
                    .collect();
                let info = appended.batch(log, &batch);
                appended_ranges.insert((info.base_offset, info.last_offset));
            }
        };
        append_round(&log, &mut appended, 60, 30);
        let end1 = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let want1 = expected(&appended.0, end1, none_gone);
        assert_log(&log, &want1, "first pass");
        let removed =
            appended.below(end1).count() - want1.iter().filter(|r| r.offset < end1).count();
        assert!(
            removed > 20,
            "the first pass left gaps ({removed} records removed)"
        );

        append_round(&log, &mut appended, 60, 45);
        let end2 = active_base(&log);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned, "{r:?}");
        let want = expected(&appended.0, end2, none_gone);
        assert_log(&log, &want, "second pass over gaps");

        // Segment offset ranges: every batch lies within its segment, below the next one's base.
        let segments = log.segments();
        for pair in segments.windows(2) {
            let (seg, next) = (&pair[0], &pair[1]);
            assert!(seg.base_offset() < next.base_offset());
            assert!(seg.end_offset() <= next.base_offset());
            for r in want
                .iter()
                .filter(|r| r.offset >= seg.base_offset() && r.offset < next.base_offset())
            {
                let read = log.read(r.offset, 1).unwrap();
                let batch = &read.batches()[0];
                assert!(batch.base_offset() >= seg.base_offset());
                assert!(batch.next_offset() <= next.base_offset());
            }
        }
        // Batches keep their offset ranges: every batch read back is one the appender made
        // (apart from the empty batches, holding no record, that end cleaned segments whose last
        // batches went).
        let mut batch_ranges = BTreeSet::new();
        let mut next = 0;
        while next < log.end_offset() {
            let read = log.read(next, 1 << 16).unwrap();
            for b in read.batches().iter().filter(|b| b.record_count() > 0) {
                batch_ranges.insert((b.base_offset(), b.last_offset()));
            }
            next = read.next_offset();
        }
        assert!(
            batch_ranges.is_subset(&appended_ranges),
            "a cleaned batch changed its offset range"
        );

        log.close().unwrap();
        drop(log);
        let log = open(&fs, dir, &clock);
        assert_log(&log, &want, "reopened after a clean close");
        crash_without_close(log);
        let log = open(&fs, dir, &clock);
        assert!(!log.recovery_report().clean_shutdown);
        assert_log(&log, &want, "reopened after a crash");
    });
}

/// Kafka `testSegmentGrouping` (and `testSegmentGroupingWithSparseOffsets`): cleaned segments are
/// merged greedily: a source joins the current output while the output so far plus the whole source
/// fits `segment_bytes`. So many sparse segments collapse into few, no output exceeds
/// `segment_bytes` (unless one source alone already did), each output starts where its first source
/// started, and each next output starts with a source that did not fit. Contents and offsets are
/// preserved; a later pass merges earlier outputs with new data.
#[test]
fn test_segment_grouping() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        let mut rng = TestRng::new(9);
        let mut append = |log: &Partition, appended: &mut Appended, n: u64, keys: u64| {
            for i in 0..n {
                let k = rng.below(keys);
                // An occasional record larger than a whole segment.
                let len = if i % 97 == 50 {
                    1500
                } else {
                    20 + rng.below(40)
                };
                appended.one(log, kv(&format!("key-{k}"), &"v".repeat(len as usize), NOW));
            }
        };
        for round in 0..2u64 {
            append(&log, &mut appended, 120, 12 + 10 * round);
            let sources = sealed_sizes(&log);
            let active = active_base(&log);
            let report = log.compact(NOW, &eager()).unwrap();
            assert!(report.cleaned, "round {round}: {report:?}");
            let what = format!("round {round}");
            assert_log(&log, &expected(&appended.0, active, none_gone), &what);
            let outputs = sealed_sizes(&log);
            assert!(
                outputs.len() < sources.len(),
                "{what}: {} sources, {} outputs",
                sources.len(),
                outputs.len()
            );
            let outs: Vec<(u64, u64)> = outputs.into_iter().collect();
            for (i, &(base, size)) in outs.iter().enumerate() {
                let source_size = sources[&base];
                assert!(
                    size <= SEGMENT_BYTES.max(source_size),
                    "{what}: output at {base} is {size} bytes"
                );
                if let Some(&(next, _)) = outs.get(i + 1) {
                    assert!(
                        size + sources[&next] > SEGMENT_BYTES,
                        "{what}: the source at {next} ({} bytes) would have fit the output at \
                         {base} ({size} bytes)",
                        sources[&next]
                    );
                }
            }
            assert!(report.segments_written <= outs.len(), "{what}: {report:?}");
        }
    });
}

/// Kafka's cleaner drops records without a key (and the `compact` policy refuses them): below the
/// cleaned range every keyless record goes, whether alone in its batch or between keyed records,
/// counted in `keyless_removed`; keyless records in the active segment stay.
#[test]
fn test_keyless_records_are_removed() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..120i64 {
            match i % 3 {
                0 => {
                    appended.one(&log, keyless(&format!("alone-{i}"), NOW));
                }
                1 => {
                    appended.batch(
                        &log,
                        &[
                            kv(&format!("key-{}", i % 7), &format!("v-{i}"), NOW),
                            keyless(&format!("between-{i}"), NOW),
                            kv(&format!("key-{}", (i + 1) % 7), &format!("w-{i}"), NOW),
                        ],
                    );
                }
                _ => {
                    appended.one(&log, kv(&format!("key-{}", i % 7), &format!("u-{i}"), NOW));
                }
            }
        }
        appended.one(&log, keyless("in the active segment", NOW));
        let active = active_base(&log);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned, "{r:?}");
        let keyless_below = appended.below(active).filter(|r| r.key.is_none()).count() as u64;
        assert_eq!(r.keyless_removed, keyless_below, "{r:?}");
        let want = expected(&appended.0, active, none_gone);
        let removed =
            appended.below(active).count() - want.iter().filter(|r| r.offset < active).count();
        assert_eq!(r.records_removed, removed as u64, "{r:?}");
        assert_log(&log, &want, "keyless removed");
        assert!(record_views(&log, 0)
            .iter()
            .filter(|r| r.key.is_none())
            .all(|r| r.offset >= active));
        assert!(want.iter().any(|r| r.key.is_none()), "the active one stays");
    });
}

/// Records for the header/timestamp tests: batches of one to four records over 8 keys, headers on
/// some (repeated header keys, null header values), timestamps wandering out of order.
fn append_rich(log: &Partition, appended: &mut Appended, batches: u64, seed: u64) {
    let mut rng = TestRng::new(seed);
    for b in 0..batches {
        let n = 1 + rng.below(4);
        let batch: Vec<Record> = (0..n)
            .map(|_| {
                let ts = NOW + 10 * b as i64 + rng.below(61) as i64 - 30;
                let len = 10 + rng.below(60) as usize;
                let mut r = Record::new(rng.bytes(len))
                    .with_key(format!("key-{}", rng.below(8)))
                    .with_timestamp(ts);
                match rng.below(4) {
                    0 => {}
                    1 => r = r.with_header("h", Bytes::from(rng.bytes(5))),
                    2 => r = r.with_header("h", None),
                    _ => {
                        r = r
                            .with_header("trace", Bytes::from(rng.bytes(3)))
                            .with_header("trace", Bytes::from(rng.bytes(4)))
                            .with_header("empty", Bytes::new())
                    }
                }
                r
            })
            .collect();
        appended.batch(log, &batch);
    }
}

/// Kafka's cleaner rewrites survivors with their timestamps and headers intact
/// (`testCleanerRetainsHeadersAndTimestamps`-style checks in `LogCleanerTest`): every survivor
/// reads back with its key, value, timestamp and headers, including from batches that lost some
/// records (re-encoded) and under `LogAppendTime`, where the survivors keep their batch's append
/// time.
#[test]
fn test_compaction_preserves_headers_and_timestamps() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        append_rich(&log, &mut appended, 120, 3);
        let active = active_base(&log);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned && r.records_removed > 0, "{r:?}");
        let want = expected(&appended.0, active, none_gone);
        assert!(want
            .iter()
            .any(|r| !r.headers.is_empty() && r.offset < active));
        assert_log(&log, &want, "create time");
    });
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = Partition::open_with_env(
            dir,
            LogConfig {
                timestamp_type: TimestampType::LogAppendTime,
                ..config(SEGMENT_BYTES)
            },
            env(&fs, &clock),
        )
        .unwrap();
        let mut appended = Appended::default();
        for b in 0..40 {
            clock.set(NOW + 1000 * b);
            let batch: Vec<Record> = (0..3)
                .map(|i| kv(&format!("key-{}", (b + i) % 6), &format!("v-{b}-{i}"), 5))
                .collect();
            appended.batch(&log, &batch);
        }
        let active = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        assert_log(
            &log,
            &expected(&appended.0, active, none_gone),
            "log append time",
        );
    });
}

/// `offset_for_time` after compaction (Kafka `testCleaningWithTimeIndex`-style: the cleaned
/// segments' time indexes are rebuilt from the survivors): for every timestamp it answers the first
/// surviving record, in offset order, whose timestamp is at least that, with out-of-order
/// timestamps; the same after a clean close and after a crash.
#[test]
fn test_offset_for_time_after_compaction() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        append_rich(&log, &mut appended, 100, 11);
        let active = active_base(&log);
        assert!(log.compact(NOW, &eager()).unwrap().cleaned);
        let want = expected(&appended.0, active, none_gone);
        let check = |log: &Partition, what: &str| {
            for ts in NOW - 40..=NOW + 1040 {
                assert_eq!(
                    log.offset_for_time(ts).unwrap(),
                    brute_force_offset_for_time(&want, ts),
                    "{what}: offset_for_time({ts})"
                );
            }
        };
        check(&log, "after compaction");
        log.close().unwrap();
        drop(log);
        let log = open(&fs, dir, &clock);
        check(&log, "after a clean close");
        crash_without_close(log);
        let log = open(&fs, dir, &clock);
        check(&log, "after a crash");
        assert_log(&log, &want, "contents");
    });
}

/// Kafka `LogCleanerManagerTest` `testCleanableOffsetsNeedsCheckpointReset`: when the log start
/// offset has moved past the first dirty offset (`delete_records`), cleaning starts at the log
/// start: what is visible from the start is compacted as if the records below it never existed, and
/// a retention pass then drops the whole segments below the start.
#[test]
fn test_cleaning_starts_at_the_log_start_offset() {
    both_fs(|fs, dir| {
        let clock = ManualClock::new(NOW);
        let log = open(&fs, dir, &clock);
        let mut appended = Appended::default();
        for i in 0..150i64 {
            appended.one(&log, kv(&format!("key-{}", i % 12), &format!("v-{i}"), NOW));
        }
        let start = 57;
        assert_eq!(log.delete_records(start).unwrap(), start);
        let active = active_base(&log);
        let r = log.compact(NOW, &eager()).unwrap();
        assert!(r.cleaned, "{r:?}");
        assert_eq!(r.first_dirty_offset, active);
        let visible: Vec<RecordView> = appended
            .0
            .iter()
            .filter(|r| r.offset >= start)
            .cloned()
            .collect();
        let want = expected(&visible, active, none_gone);
        assert_log(&log, &want, "compacted from the start offset");
        let gone = log
            .apply_retention(NOW, &topiclog::RetentionPolicy::default())
            .unwrap();
        assert_eq!(gone.start_offset, start);
        assert!(log.segments()[0].base_offset() <= start);
        assert_log(&log, &want, "after retention");
    });
}
