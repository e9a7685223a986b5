//! A read at an offset compaction removed yields the first surviving record at or after it,
//! wherever that is. It used to return the last batch of a cleaned segment holding only records
//! below the offset (`read(1)` gave a batch with offset 0 alone, `records()` yielded nothing and
//! `next_offset()` was 2), so a caller taking "no records" for "caught up" stopped early.

mod common;

use std::sync::Arc;

use topiclog::fs::SimFs;
use topiclog::{CleanupPolicy, CompactionPolicy, Env, LogConfig, Partition, Record};

/// The simulated `fs` with the system clock.
fn sim_env(fs: &SimFs) -> Env {
    Env::with_fs(Arc::new(fs.clone()))
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        preallocate: false,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    }
}

fn eager() -> CompactionPolicy {
    CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    }
}

/// Roll to a new segment by appending keyed filler until the segment count grows.
fn roll(log: &Partition, tag: &str) {
    let n = log.segment_count();
    let mut i = 0;
    while log.segment_count() == n {
        log.append(Record::new(vec![b'f'; 200]).with_key(format!("{tag}-{i}")))
            .unwrap();
        i += 1;
    }
}

fn first_record(log: &Partition, offset: u64) -> Option<(u64, Vec<u8>)> {
    log.read(offset, 1)
        .unwrap()
        .records()
        .next()
        .map(|r| (r.offset(), r.key().unwrap().to_vec()))
}

#[test]
fn read_past_a_batch_with_only_earlier_records_finds_the_next_segment() {
    let fs = SimFs::new(1);
    let log = Partition::open_with_env("/p", config(), sim_env(&fs)).unwrap();
    // Offsets 0 and 1 in one batch; offset 1's key is written again in the next segment.
    log.append_batch(&[
        Record::new("a0").with_key("a"),
        Record::new("b0").with_key("b"),
    ])
    .unwrap();
    roll(&log, "x");
    let b1 = log.append(Record::new("b1").with_key("b")).unwrap();
    let after = log.end_offset();
    roll(&log, "y");
    assert!(log.compact(0, &eager()).unwrap().cleaned);
    // The first segment's batch keeps its range [0, 1] but holds offset 0 alone.
    let first = log.read(0, 1).unwrap();
    assert_eq!(first.records().map(|r| r.offset()).collect::<Vec<_>>(), [0]);
    // A read at 1 finds the next surviving record, in a later segment.
    let read = log.read(1, 1).unwrap();
    let got: Vec<u64> = read.records().map(|r| r.offset()).collect();
    assert!(
        !got.is_empty(),
        "read(1) returned no records though later ones exist"
    );
    assert!(got[0] > 1, "{got:?}");
    assert!(read.next_offset() > got[0]);
    // Every offset of the log reads as the first surviving record at or after it.
    let mut survivors = Vec::new();
    let mut next = 0;
    while next < log.end_offset() {
        let b = log.read(next, 1 << 20).unwrap();
        survivors.extend(b.records().map(|r| r.offset()));
        next = b.next_offset();
    }
    for o in 0..log.end_offset() {
        let want = survivors.iter().copied().find(|&s| s >= o);
        assert_eq!(first_record(&log, o).map(|r| r.0), want, "read({o})");
    }
    assert!(survivors.contains(&b1));
    assert_eq!(first_record(&log, 1).unwrap().0, survivors[1]);
    assert!(after > b1);
}

#[test]
fn read_past_a_cleaned_segment_whose_last_batches_went() {
    let fs = SimFs::new(2);
    let log = Partition::open_with_env("/p", config(), sim_env(&fs)).unwrap();
    log.append(Record::new("a0").with_key("a")).unwrap();
    // The last batches of the first segment are all overwritten later.
    let mut i = 0;
    while log.segment_count() == 1 {
        log.append(Record::new(vec![b'v'; 150]).with_key(format!("k{}", i % 3)))
            .unwrap();
        i += 1;
    }
    let second_base = log.segments()[1].base_offset();
    for k in 0..3 {
        log.append(Record::new("new").with_key(format!("k{k}")))
            .unwrap();
    }
    roll(&log, "z");
    assert!(log.compact(0, &eager()).unwrap().cleaned);
    // Everything in the first segment after offset 0 went: a read there finds the next segment.
    let (o, key) = first_record(&log, 1).unwrap();
    assert!(o >= second_base, "read(1) returned offset {o}");
    assert_eq!(key, b"k0".to_vec());
    // The cleaned first segment still ends where the second begins, so a reopen (clean or not)
    // finds no hole.
    let segments = log.segments();
    assert_eq!(segments[0].end_offset(), segments[1].base_offset());
    let end = log.end_offset();
    common::crash_without_close(log);
    let log = Partition::open_with_env("/p", config(), sim_env(&fs)).unwrap();
    assert_eq!(log.end_offset(), end);
    assert_eq!(first_record(&log, 1).unwrap().0, o);
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env("/p", config(), sim_env(&fs)).unwrap();
    assert_eq!(first_record(&log, 1).unwrap().0, o);
}
