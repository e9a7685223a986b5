//! Idempotent appends: a replayed batch (same producer id, epoch and sequence) returns its original
//! offsets and writes nothing — also after a clean reopen, after a crash, and across rolls whose
//! producer snapshots were written in the background; sequence gaps and stale epochs are refused.

use std::sync::Arc;

use crate::common::both_fs;
use topiclog::fs::{CrashMode, FileSystem, SimFs};
use topiclog::{Durability, Env, Error, LogConfig, Partition, ProducerBatch, Record};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn batch(seq: i32, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::new(format!("seq-{}", seq as usize + i)))
        .collect()
}

fn pb(id: i64, epoch: i16, seq: i32) -> ProducerBatch {
    ProducerBatch {
        producer_id: id,
        epoch,
        base_sequence: seq,
    }
}

#[test]
fn replays_return_original_offsets_across_reopen() {
    both_fs(|fs, dir| {
        let log = Partition::open_with_env(dir, config(), Env::with_fs(fs.clone())).unwrap();
        log.append(Record::new("plain")).unwrap();
        let a = log
            .append_idempotent(&batch(0, 3), pb(1, 0, 0), Durability::Always)
            .unwrap();
        assert!(!a.duplicate);
        assert_eq!((a.base_offset, a.last_offset), (1, 3));
        let b = log
            .append_idempotent(&batch(3, 2), pb(1, 0, 3), Durability::Always)
            .unwrap();
        let again = log
            .append_idempotent(&batch(0, 3), pb(1, 0, 0), Durability::Always)
            .unwrap();
        assert!(again.duplicate);
        assert_eq!((again.base_offset, again.last_offset), (1, 3));
        assert_eq!(log.end_offset(), 6);
        // A gap or a stale epoch is refused.
        assert!(matches!(
            log.append_idempotent(&batch(9, 1), pb(1, 0, 9), Durability::None),
            Err(Error::OutOfOrderSequence {
                expected: 5,
                got: 9,
                ..
            })
        ));
        log.append_idempotent(&batch(0, 1), pb(1, 1, 0), Durability::None)
            .unwrap();
        assert!(matches!(
            log.append_idempotent(&batch(5, 1), pb(1, 0, 5), Durability::None),
            Err(Error::ProducerFenced { current: 1, .. })
        ));
        log.close().unwrap();
        let log = Partition::open_with_env(dir, config(), Env::with_fs(fs.clone())).unwrap();
        let r = log
            .append_idempotent(&batch(0, 1), pb(1, 1, 0), Durability::None)
            .unwrap();
        assert!(r.duplicate);
        assert_eq!(r.base_offset, 6);
        let _ = b;
        assert_eq!(log.end_offset(), 7);
        log.close().unwrap();
    });
}

#[test]
fn producer_state_survives_a_crash_after_rolls() {
    for seed in 0..4 {
        let fs = SimFs::new(seed);
        let dir = "/p";
        let log =
            Partition::open_with_env(dir, config(), Env::with_fs(Arc::new(fs.clone()))).unwrap();
        let mut offsets = Vec::new();
        for i in 0..60i32 {
            let id = i64::from(i % 3);
            let seq = i / 3;
            let info = log
                .append_idempotent(&batch(seq, 2), pb(id, 0, seq * 2), Durability::Always)
                .unwrap();
            offsets.push((id, seq, info.base_offset));
            if i % 10 == 0 {
                // Background maintenance writes the snapshot taken at the last durable roll.
                log.flush_if_due().unwrap();
            }
        }
        assert!(log.segment_count() > 3);
        log.abandon();
        fs.crash(CrashMode::LoseUnsynced);
        let log =
            Partition::open_with_env(dir, config(), Env::with_fs(Arc::new(fs.clone()))).unwrap();
        assert_eq!(log.end_offset(), 120, "every append was durable");
        // The last five batches of every producer are still recognised.
        for &(id, seq, base) in offsets.iter().rev().take(15) {
            let r = log
                .append_idempotent(&batch(seq, 2), pb(id, 0, seq * 2), Durability::Always)
                .unwrap();
            assert!(r.duplicate, "producer {id} seq {seq}");
            assert_eq!(r.base_offset, base);
        }
        assert_eq!(log.end_offset(), 120);
        // And the next sequence continues.
        log.append_idempotent(&batch(40, 2), pb(0, 0, 40), Durability::Always)
            .unwrap();
        assert_eq!(log.end_offset(), 122);
    }
}

#[test]
fn truncation_forgets_cut_batches() {
    both_fs(|fs, dir| {
        let log = Partition::open_with_env(dir, config(), Env::with_fs(fs.clone())).unwrap();
        for seq in 0..5 {
            log.append_idempotent(&batch(seq, 1), pb(4, 0, seq), Durability::None)
                .unwrap();
        }
        log.truncate_to(3).unwrap();
        // Batches 3 and 4 are gone: sequence 3 is new again.
        let r = log
            .append_idempotent(&batch(3, 1), pb(4, 0, 3), Durability::None)
            .unwrap();
        assert!(!r.duplicate);
        assert_eq!(r.base_offset, 3);
        drop(log);
        let log = Partition::open_with_env(dir, config(), Env::with_fs(fs.clone())).unwrap();
        assert!(
            log.append_idempotent(&batch(3, 1), pb(4, 0, 3), Durability::None)
                .unwrap()
                .duplicate
        );
        log.close().unwrap();
    });
}

/// Compaction keeps each idempotent producer's last batch, emptied if nothing in it survives
/// (Kafka's cleaner does the same): where the state is rebuilt from the log (the segments moved
/// without topiclog's snapshot), a retry of that batch is still a duplicate, not stored twice.
#[test]
fn compaction_keeps_a_producers_last_batch_for_its_state() {
    let fs = SimFs::new(11);
    let env = || Env::with_fs(Arc::new(fs.clone()));
    let cfg = LogConfig {
        cleanup_policy: topiclog::CleanupPolicy::Compact,
        ..config()
    };
    let log = Partition::open_with_env("/p", cfg.clone(), env()).unwrap();
    let keyed = |tag: &str, n: usize| -> Vec<Record> {
        (0..n)
            .map(|k| Record::new(format!("{tag}-{k}")).with_key(format!("k{k}")))
            .collect()
    };
    // Producer 7's only (and so last) batch, then plain appends that supersede every key in it.
    let first = log
        .append_idempotent(&keyed("p7", 4), pb(7, 0, 0), Durability::Always)
        .unwrap();
    for round in 0..40 {
        log.append_batch(&keyed(&format!("r{round}"), 4)).unwrap();
    }
    let policy = topiclog::CompactionPolicy {
        min_cleanable_dirty_ratio: 0.0,
        ..topiclog::CompactionPolicy::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for pass in 0..2 {
        // Twice: the second pass meets the emptied batch and keeps it too.
        let report = log.compact(now + pass, &policy).unwrap();
        assert!(report.cleaned, "{report:?}");
        for round in 0..40 {
            log.append_batch(&keyed(&format!("again{pass}-{round}"), 4))
                .unwrap();
        }
    }
    let first_batch = log.read(0, 1 << 20).unwrap();
    assert!(
        first_batch.records().all(|r| r.offset() >= 4),
        "producer 7's records were compacted away"
    );
    let kept = log.segments()[0].read(0, 1 << 20).unwrap();
    let h = kept[0].header();
    assert_eq!(
        (
            h.base_offset,
            h.record_count,
            h.producer_id,
            h.base_sequence
        ),
        (0, 0, 7, 0),
        "the producer's emptied last batch is kept"
    );
    log.close().unwrap();
    // The segments alone, as a Kafka broker (or an export) would hold them: whoever opens them
    // rebuilds the producers' state from the batches.
    let afs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    afs.create_dir_all(std::path::Path::new("/q")).unwrap();
    for name in afs.read_dir(std::path::Path::new("/p")).unwrap() {
        if name.ends_with(".log") {
            let bytes = fs
                .read_file(&std::path::Path::new("/p").join(&name))
                .unwrap();
            fs.write_file(&std::path::Path::new("/q").join(&name), &bytes);
        }
    }
    let log = Partition::open_with_env("/q", cfg, env()).unwrap();
    assert!(log.recovery_report().producer_state_rebuilt);
    let retry = log
        .append_idempotent(&keyed("p7", 4), pb(7, 0, 0), Durability::Always)
        .unwrap();
    assert!(retry.duplicate, "{retry:?}");
    assert_eq!(retry.base_offset, first.base_offset);
    log.close().unwrap();
}
