//! A consumer dropped while its thread unwinds from a panic commits nothing: not by auto-commit on
//! close, not by revoking its partitions (the rebalance listener is not called), not by leaving
//! its group — it leaves without committing. The records after the last real commit are delivered
//! again (at-least-once), whether the panic is caught (`catch_unwind`) or ends the thread. An
//! ordinary drop still auto-commits.

use crate::common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use topiclog::{
    AutoOffsetReset, Consumer, ConsumerConfig, OffsetAndMetadata, RebalanceListener, Store,
    TopicPartition,
};

const RECORDS: u64 = 100;
const PANIC_AT: u64 = 10;

/// A store with topic `t` (one partition) holding `RECORDS` records.
fn setup() -> (tempfile::TempDir, Store) {
    common::store_with_topic_t(1, RECORDS)
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// Auto-commit on (the default), with an interval no test reaches: only the implicit commits on
/// close, revocation and leaving are in play.
fn auto_commit_config() -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest,
        auto_commit_interval: Duration::from_secs(3600),
        ..ConsumerConfig::group("g")
    }
}

/// Poll until the partition's end: returns the offsets polled.
fn poll_all(c: &mut Consumer) -> Vec<u64> {
    let mut offsets = Vec::new();
    for _ in 0..100 {
        let records = c.poll(Duration::from_millis(100)).unwrap();
        offsets.extend(records.iter().map(|r| r.offset()));
        if offsets.last() == Some(&(RECORDS - 1)) {
            break;
        }
    }
    offsets
}

/// Poll everything, "process" records up to `PANIC_AT`, then panic, inside `catch_unwind`: the
/// consumer is dropped while unwinding.
fn panic_while_processing(mut c: Consumer) {
    let result = panic::catch_unwind(AssertUnwindSafe(move || {
        let offsets = poll_all(&mut c);
        assert_eq!(offsets.len() as u64, RECORDS);
        for offset in offsets {
            if offset == PANIC_AT {
                panic!("processing failed at record {offset}");
            }
        }
    }));
    assert!(result.is_err(), "the processing panicked");
}

/// What a fresh member of group `g` reads: it starts after the last commit.
fn redelivered(store: &Store) -> Vec<u64> {
    let mut c = store.consumer(auto_commit_config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    let offsets = poll_all(&mut c);
    c.close().unwrap();
    offsets
}

#[test]
fn a_panic_while_processing_commits_nothing_and_the_records_come_again() {
    let (_dir, store) = setup();
    let mut c = store.consumer(auto_commit_config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    panic_while_processing(c);
    assert_eq!(
        store
            .consumer(auto_commit_config())
            .unwrap()
            .committed(&tp())
            .unwrap(),
        None,
        "the consumer dropped during unwinding committed"
    );
    assert!(store.describe_group("g").is_empty(), "it left the group");
    assert_eq!(redelivered(&store), (0..RECORDS).collect::<Vec<_>>());
}

#[test]
fn a_panic_keeps_the_last_explicit_commit() {
    let (_dir, store) = setup();
    let mut c = store.consumer(auto_commit_config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    // Processed and committed up to (not including) record 5 before the failure.
    let result = panic::catch_unwind(AssertUnwindSafe(move || {
        let offsets = poll_all(&mut c);
        for offset in offsets {
            if offset == 5 {
                c.commit(&[(tp(), OffsetAndMetadata::new(5))]).unwrap();
            }
            if offset == PANIC_AT {
                panic!("processing failed at record {offset}");
            }
        }
    }));
    assert!(result.is_err());
    assert_eq!(redelivered(&store), (5..RECORDS).collect::<Vec<_>>());
}

#[test]
fn a_panic_with_a_manual_assignment_commits_nothing() {
    let (_dir, store) = setup();
    let mut c = store.consumer(auto_commit_config()).unwrap();
    c.assign(&[tp()]).unwrap();
    panic_while_processing(c);
    assert_eq!(redelivered(&store), (0..RECORDS).collect::<Vec<_>>());
}

/// Counts `on_revoked`/`on_lost` calls and commits in `on_revoked`, as listeners are told to.
struct CommittingListener {
    calls: Arc<AtomicUsize>,
}

impl RebalanceListener for CommittingListener {
    fn on_revoked(&mut self, consumer: &Consumer, _partitions: &[TopicPartition]) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = consumer.commit_sync();
    }
    fn on_lost(&mut self, _consumer: &Consumer, _partitions: &[TopicPartition]) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panic_skips_the_rebalance_listener_and_leaves_the_group() {
    let (_dir, store) = setup();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut c = store
        .consumer(ConsumerConfig {
            enable_auto_commit: false,
            ..auto_commit_config()
        })
        .unwrap();
    c.subscribe_with(
        &["t"],
        Some(Box::new(CommittingListener {
            calls: calls.clone(),
        })),
    )
    .unwrap();
    panic_while_processing(c);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the listener ran during unwinding"
    );
    assert!(store.describe_group("g").is_empty(), "it left the group");
    assert_eq!(redelivered(&store), (0..RECORDS).collect::<Vec<_>>());
}

#[test]
fn a_panic_that_ends_the_consumer_thread_commits_nothing() {
    let (_dir, store) = setup();
    let mut c = store.consumer(auto_commit_config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    let worker = thread::spawn(move || {
        let offsets = poll_all(&mut c);
        for offset in offsets {
            if offset == PANIC_AT {
                panic!("processing failed at record {offset}");
            }
        }
    });
    assert!(worker.join().is_err(), "the worker panicked");
    assert_eq!(redelivered(&store), (0..RECORDS).collect::<Vec<_>>());
}

#[test]
fn an_ordinary_drop_still_auto_commits() {
    let (_dir, store) = setup();
    let mut c = store.consumer(auto_commit_config()).unwrap();
    c.subscribe(&["t"]).unwrap();
    assert_eq!(poll_all(&mut c).len() as u64, RECORDS);
    drop(c);
    let committed = store
        .consumer(auto_commit_config())
        .unwrap()
        .committed(&tp())
        .unwrap();
    assert_eq!(committed.map(|o| o.offset), Some(RECORDS));
}
