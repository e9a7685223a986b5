//! Compaction basics: latest value per key, offsets preserved, reads across gaps, reopen.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::both_fs;
use topiclog::{CompactionPolicy, Durability, Env, LogConfig, Partition, Record};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        durability: Durability::None,
        ..LogConfig::default()
    }
}

fn eager() -> CompactionPolicy {
    CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    }
}

/// Every record from the start, as (offset, key, value).
fn dump(log: &Partition) -> Vec<(u64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let b = log.read(next, 1 << 16).unwrap();
        assert!(!b.is_empty(), "nothing at {next}");
        for r in b.records() {
            out.push((
                r.offset(),
                String::from_utf8(r.key().unwrap().to_vec()).unwrap(),
                r.value().map(|v| String::from_utf8(v.to_vec()).unwrap()),
            ));
        }
        next = b.next_offset();
    }
    out
}

#[test]
fn keeps_latest_value_per_key_and_preserves_offsets() {
    both_fs(|fs, dir| {
        let log = Partition::open_with_env(dir, config(), Env::with_fs(fs.clone())).unwrap();
        let mut model = BTreeMap::new();
        let mut appended = Vec::new();
        for i in 0..300u64 {
            let key = format!("k{}", i % 10);
            let value = format!("v{i}");
            let off = log
                .append(Record::new(value.clone()).with_key(key.clone()))
                .unwrap();
            appended.push((off, key.clone(), value.clone()));
            model.insert(key, (off, value));
        }
        let before = log.segment_count();
        assert!(before > 5);
        let report = log.compact(0, &eager()).unwrap();
        assert!(report.cleaned, "{report:?}");
        assert!(report.records_removed > 200, "{report:?}");
        let got = dump(&log);
        // Everything in the active segment stays; below it, one record per key.
        let active_base = log.segments().last().unwrap().base_offset();
        let mut below = BTreeMap::new();
        for (off, key, value) in appended.iter().filter(|a| a.0 < active_base) {
            below.insert(key.clone(), (*off, value.clone()));
        }
        let mut expected: Vec<_> = below
            .iter()
            .map(|(k, (o, v))| (*o, k.clone(), Some(v.clone())))
            .collect();
        expected.sort();
        expected.extend(
            appended
                .iter()
                .filter(|a| a.0 >= active_base)
                .map(|(o, k, v)| (*o, k.clone(), Some(v.clone()))),
        );
        assert_eq!(got, expected);
        let latest: BTreeMap<_, _> = got
            .iter()
            .map(|(o, k, v)| (k.clone(), (*o, v.clone().unwrap())))
            .collect();
        assert_eq!(latest, model);
        assert!(log.segment_count() < before);
        // A read inside a gap returns the next record.
        let first = got[0].0;
        if first > 0 {
            let b = log.read(0, 100).unwrap();
            assert_eq!(b.records().next().unwrap().offset(), first);
        }
        assert_eq!(log.end_offset(), 300);
        log.close().unwrap();
        let log = Partition::open_with_env(dir, config(), Env::with_fs(fs.clone())).unwrap();
        assert_eq!(dump(&log), got);
        assert_eq!(log.append(Record::new("x").with_key("k")).unwrap(), 300);
        drop(log);
        // And after an unclean stop.
        let log = Partition::open_with_env(dir, config(), Env::with_fs(fs)).unwrap();
        assert_eq!(dump(&log)[..got.len()], got[..]);
        log.abandon();
    });
}

/// A recovery that cuts the log below the cleaner's first dirty offset makes the cleaner forget
/// the cut range: records appended there are mapped like new data, so a tombstone appended after
/// the cut still deletes its key's older value. Here the active segment is emptied (so the pass's
/// first dirty offset and the recovery point are both its base), the process dies, and
/// `Recovery::TruncateCorrupt` cuts at a damaged batch of the last cleaned segment, which the
/// unclean open rescans because it holds the offset just below the recovery point.
#[test]
fn a_recovery_cut_below_the_first_dirty_offset_resets_the_cleaner() {
    use topiclog::segment::SegmentFileKind;
    use topiclog::Recovery;
    let fs = topiclog::fs::SimFs::new(3);
    let cfg = || LogConfig {
        recovery: Recovery::TruncateCorrupt,
        preallocate: false,
        ..config()
    };
    let env = || Env::with_fs(Arc::new(fs.clone()));
    let log = Partition::open_with_env("/p", cfg(), env()).unwrap();
    for i in 0..200u64 {
        log.append(Record::new(format!("v{i}")).with_key(format!("k{}", i % 20)))
            .unwrap();
    }
    let active = log.segments().last().unwrap().base_offset();
    log.truncate_to(active).unwrap();
    log.compact(0, &eager()).unwrap();
    let dirty = log.first_dirty_offset();
    assert_eq!(dirty, active);
    log.abandon();
    // The first batch of the last cleaned segment (something is left before it).
    let logs = common::segment_files(&fs, std::path::Path::new("/p"), SegmentFileKind::Log);
    let victim = logs[logs.len() - 2].clone();
    assert!(common::file_len(&fs, &victim) > 100);
    common::overwrite(&fs, &victim, 40, &[0x5a; 8]);
    let log = Partition::open_with_env("/p", cfg(), env()).unwrap();
    let end = log.end_offset();
    assert!(
        end < dirty,
        "the cut ({end}) is below the first dirty offset ({dirty})"
    );
    assert!(
        log.first_dirty_offset() <= end,
        "{}",
        log.first_dirty_offset()
    );
    // A key with a value kept below the cut, deleted after it.
    let kept = dump(&log);
    let (_, key, _) = kept.first().unwrap().clone();
    log.append(Record::tombstone(key.clone())).unwrap();
    for i in 0..200u64 {
        log.append(Record::new(format!("w{i}")).with_key(format!("other{i}")))
            .unwrap();
    }
    let policy = CompactionPolicy {
        delete_retention: std::time::Duration::ZERO,
        ..eager()
    };
    log.compact(1, &policy).unwrap();
    log.compact(2, &policy).unwrap();
    let active = log.segments().last().unwrap().base_offset();
    let left: Vec<_> = dump(&log)
        .into_iter()
        .filter(|(o, k, _)| *o < active && *k == key)
        .collect();
    assert!(left.is_empty(), "{key} still has {left:?}");
}
