//! The producer's contract, one property per test: what each `Acks` level promises when `wait()`
//! returns, concurrent durable producers, batching on disk, linger, flush/close/drop, the errors
//! `send` reports (missing key, too large, bad partition, unknown topic, full buffer), producer ids,
//! and I/O failures reported through every handle of the failed batch.
//!
//! Timing assertions only use bounds that cannot be violated by a slow machine: "not before the
//! linger" (the sender never seals a batch early) and "not while the linger is an hour". The
//! linger test runs on virtual time: the store's clock moves when the test moves it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::clock::{times_out, TestClock};
use topiclog::fs::{Fault, FaultOp, SimFs};
use topiclog::{
    Acks, AutoOffsetReset, Bytes, CleanupPolicy, ConsumerConfig, Durability, Env, Error, LogConfig,
    LogOverrides, Partition, Producer, ProducerConfig, Record, SendHandle, Store, StoreOptions,
    TopicConfig,
};

const HOUR: Duration = Duration::from_secs(3600);

fn options(durability: Durability) -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            durability,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

fn store(dir: &Path) -> Store {
    Store::open_with(dir, options(Durability::None)).unwrap()
}

/// [`store`] on virtual time.
fn store_on(dir: &Path, clock: &TestClock) -> Store {
    Store::open_with_env(dir, options(Durability::None), clock.env()).unwrap()
}

fn config(acks: Acks) -> ProducerConfig {
    ProducerConfig {
        acks,
        ..ProducerConfig::default()
    }
}

/// Every `(offset, value)` of a partition, in offset order.
fn values(p: &Partition) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut next = p.start_offset();
    while next < p.end_offset() {
        let b = p.read(next, 1 << 20).unwrap();
        assert!(!b.is_empty(), "read at {next} below the end was empty");
        for r in b.records() {
            out.push((
                r.offset(),
                String::from_utf8(r.value().unwrap().to_vec()).unwrap(),
            ));
        }
        next = b.next_offset();
    }
    out
}

/// Number of stored batches in a partition.
fn batch_count(p: &Partition) -> usize {
    let mut n = 0;
    let mut next = p.start_offset();
    while next < p.end_offset() {
        let b = p.read(next, 1 << 20).unwrap();
        n += b.batches().len();
        next = b.next_offset();
    }
    n
}

fn wait_all(handles: &[SendHandle]) {
    for h in handles {
        h.wait().unwrap();
    }
}

/// Header and encoded size of every stored batch of a partition, in offset order.
fn stored_batches(p: &Partition) -> Vec<(topiclog::segment::BatchHeader, usize)> {
    let mut out = Vec::new();
    let mut next = p.start_offset();
    while next < p.end_offset() {
        let b = p.read(next, 1 << 20).unwrap();
        assert!(!b.is_empty(), "read at {next} below the end was empty");
        for batch in b.batches() {
            out.push((*batch.header(), batch.as_bytes().len()));
        }
        next = b.next_offset();
    }
    out
}

/// Check that `sent` (value, handle) is stored exactly where each handle says, that every
/// partition holds nothing else, and that each partition's records were given dense offsets from
/// 0 in send order.
fn assert_stored_in_send_order(t: &topiclog::Topic, sent: &[(String, SendHandle)]) {
    let mut stored: BTreeMap<(u32, u64), String> = BTreeMap::new();
    for (pi, p) in t.partitions().iter().enumerate() {
        for (o, v) in values(p) {
            stored.insert((pi as u32, o), v);
        }
    }
    assert_eq!(
        stored.len(),
        sent.len(),
        "the log holds exactly what was sent"
    );
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    for (v, h) in sent {
        let m = h.wait().unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(m.partition, h.partition());
        let expected = next.entry(m.partition).or_insert(0);
        assert_eq!(
            m.offset, *expected,
            "{v}: offsets in send order within partition {}",
            m.partition
        );
        *expected += 1;
        assert_eq!(stored.get(&(m.partition, m.offset)), Some(v), "{v}");
    }
}

mod acks;
mod batching;
mod concurrency;
mod flush_close;
mod futures;
mod ids_and_topic_lifecycle;
mod io_failures;
mod send_errors;
