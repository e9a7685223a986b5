//! Compaction basics: latest value per key, offsets preserved, reads across gaps, reopen.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::both_fs;
use topiclog::{CompactionPolicy, Durability, Partition, PartitionConfig, Record};

fn config(fs: Arc<dyn topiclog::fs::FileSystem>) -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 1024,
        durability: Durability::None,
        file_system: fs,
        ..PartitionConfig::default()
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
        let log = Partition::open_with(dir, config(fs.clone())).unwrap();
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
        let log = Partition::open_with(dir, config(fs.clone())).unwrap();
        assert_eq!(dump(&log), got);
        assert_eq!(log.append(Record::new("x").with_key("k")).unwrap(), 300);
        drop(log);
        // And after an unclean stop.
        let log = Partition::open_with(dir, config(fs)).unwrap();
        assert_eq!(dump(&log)[..got.len()], got[..]);
        std::mem::forget(log);
    });
}
