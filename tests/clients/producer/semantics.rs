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

// ---- acks ---------------------------------------------------------------------------------------

#[test]
fn acks_none_completes_at_accept_without_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            acks: Acks::None,
            linger: HOUR,
            ..ProducerConfig::default()
        })
        .unwrap();
    let handles: Vec<_> = (0..10)
        .map(|i| {
            producer
                .send("t", Record::new(format!("v{i}")).with_timestamp(1_000 + i))
                .unwrap()
        })
        .collect();
    for (i, h) in handles.iter().enumerate() {
        // Done at once although nothing was appended (the linger is an hour).
        assert!(h.is_done());
        let m = h.wait_timeout(Duration::ZERO).unwrap().unwrap();
        assert!(!m.has_offset());
        assert_eq!(m.offset, u64::MAX);
        assert_eq!(m.partition, 0);
        assert_eq!(m.timestamp, 1_000 + i as i64, "the record's own timestamp");
    }
    assert_eq!(
        t.end_offsets(),
        vec![0],
        "nothing appended before the flush"
    );
    producer.flush().unwrap();
    assert_eq!(
        values(&t.partition(0).unwrap())
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        (0..10).map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
}

#[test]
fn acks_written_is_visible_to_readers_and_consumers_when_wait_returns() {
    let dir = tempfile::tempdir().unwrap();
    // Durable topics too: a Written ack must wait until the record is visible, and under
    // Durability::Always that is after its sync.
    let store = Store::open_with(dir.path(), options(Durability::None)).unwrap();
    let fast = store
        .create_topic("fast", TopicConfig::with_partitions(2))
        .unwrap();
    let synced = store
        .create_topic(
            "synced",
            TopicConfig {
                overrides: LogOverrides {
                    durability: Some(Durability::Always),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(1)
            },
        )
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: Duration::from_millis(2),
            ..config(Acks::Written)
        })
        .unwrap();
    let mut consumer = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            ..ConsumerConfig::default()
        })
        .unwrap();
    consumer
        .assign(&[
            topiclog::TopicPartition::new("fast", 0),
            topiclog::TopicPartition::new("fast", 1),
        ])
        .unwrap();
    for i in 0..50u32 {
        for (topic, t) in [("fast", &fast), ("synced", &synced)] {
            let value = format!("{topic}-{i}");
            let h = producer
                .send(topic, Record::new(value.clone()).with_key(format!("k{i}")))
                .unwrap();
            let m = h.wait().unwrap();
            assert!(m.has_offset());
            let p = t.partition(m.partition).unwrap();
            assert!(p.end_offset() > m.offset, "{value}: visible when acked");
            let read = p.read(m.offset, 1 << 16).unwrap();
            let r = read.records().next().unwrap();
            assert_eq!(r.offset(), m.offset);
            assert_eq!(r.value().unwrap().as_ref(), value.as_bytes());
            if topic == "synced" {
                assert!(
                    p.durable_offset() > m.offset,
                    "Always-topic record is synced"
                );
            }
        }
        // A consumer sees the acked record without waiting for anything else.
        let got = consumer.poll(Duration::ZERO).unwrap();
        assert_eq!(got.len(), 1, "round {i}");
        assert_eq!(
            got.iter().next().unwrap().value().unwrap().as_ref(),
            format!("fast-{i}").as_bytes()
        );
    }
}

#[test]
fn acks_durable_covers_the_record_when_wait_returns() {
    let dir = tempfile::tempdir().unwrap();
    // The topic itself never syncs: Durable acks must sync anyway.
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: Duration::from_millis(1),
            ..config(Acks::Durable)
        })
        .unwrap();
    for round in 0..20u32 {
        let handles: Vec<_> = (0..5)
            .map(|i| {
                producer
                    .send(
                        "t",
                        Record::new(format!("r{round}-{i}")).with_key(format!("{i}")),
                    )
                    .unwrap()
            })
            .collect();
        for h in &handles {
            let m = h.wait().unwrap();
            let p = t.partition(m.partition).unwrap();
            assert!(
                p.durable_offset() > m.offset,
                "durable offset {} does not cover {} in partition {}",
                p.durable_offset(),
                m.offset,
                m.partition
            );
        }
    }
    assert_eq!(t.end_offsets().iter().sum::<u64>(), 100);
}

// ---- concurrency --------------------------------------------------------------------------------

#[test]
fn concurrent_durable_producers_store_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    const THREADS: usize = 6;
    const PER_THREAD: usize = 300;
    // Threads 0..3 share one producer (clones), threads 3..6 each have their own.
    let shared = store.producer(config(Acks::Durable)).unwrap();
    let metas: Vec<Vec<(String, topiclog::RecordMetadata)>> = std::thread::scope(|s| {
        let joins: Vec<_> = (0..THREADS)
            .map(|th| {
                let producer: Producer = if th < 3 {
                    shared.clone()
                } else {
                    store.producer(config(Acks::Durable)).unwrap()
                };
                let t = t.clone();
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut pending = Vec::new();
                    for i in 0..PER_THREAD {
                        let v = format!("t{th}-{i:04}");
                        let h = producer
                            .send("t", Record::new(v.clone()).with_key(format!("t{th}")))
                            .unwrap();
                        pending.push((v, h));
                        // Wait now and then, so sends and syncs interleave across threads.
                        if i % 37 == 36 {
                            for (v, h) in pending.drain(..) {
                                let m = h.wait().unwrap();
                                let p = t.partition(m.partition).unwrap();
                                assert!(p.durable_offset() > m.offset);
                                out.push((v, m));
                            }
                        }
                    }
                    for (v, h) in pending {
                        let m = h.wait().unwrap();
                        let p = t.partition(m.partition).unwrap();
                        assert!(p.durable_offset() > m.offset);
                        out.push((v, m));
                    }
                    out
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    // The metadata matches the log, every value appears exactly once, and each thread's records
    // (one key, so one partition) are in send order.
    let mut stored: BTreeMap<(u32, u64), String> = BTreeMap::new();
    for (pi, p) in t.partitions().iter().enumerate() {
        for (o, v) in values(p) {
            stored.insert((pi as u32, o), v);
        }
    }
    assert_eq!(stored.len(), THREADS * PER_THREAD);
    let distinct: HashSet<&String> = stored.values().collect();
    assert_eq!(distinct.len(), THREADS * PER_THREAD, "no duplicates");
    for (th, list) in metas.iter().enumerate() {
        assert_eq!(list.len(), PER_THREAD);
        let mut last = None;
        for (v, m) in list {
            assert_eq!(stored.get(&(m.partition, m.offset)), Some(v), "{v}");
            if let Some(prev) = last {
                assert!(m.offset > prev, "thread {th}: order within one key");
            }
            last = Some(m.offset);
        }
    }
    for p in t.partitions() {
        assert_eq!(p.durable_offset(), p.end_offset());
    }
}

// ---- batching and linger ------------------------------------------------------------------------

#[test]
fn batching_writes_fewer_larger_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .create_topic("batched", TopicConfig::with_partitions(1))
        .unwrap();
    store
        .create_topic("single", TopicConfig::with_partitions(1))
        .unwrap();
    const N: usize = 2000;
    let batched = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 16 << 10,
            ..config(Acks::Written)
        })
        .unwrap();
    // batch_bytes 1: every record fills its batch.
    let single = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 1,
            ..config(Acks::Written)
        })
        .unwrap();
    for (producer, topic) in [(&batched, "batched"), (&single, "single")] {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                producer
                    .send(topic, Record::new(format!("{i:0100}")))
                    .unwrap()
            })
            .collect();
        producer.flush().unwrap();
        wait_all(&handles);
        // Offsets are dense and in send order.
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(h.wait().unwrap().offset, i as u64);
        }
    }
    let pb = store.topic("batched").unwrap().partition(0).unwrap();
    let ps = store.topic("single").unwrap().partition(0).unwrap();
    assert_eq!(values(&pb).len(), N);
    assert_eq!(values(&ps).len(), N);
    let (nb, ns) = (batch_count(&pb), batch_count(&ps));
    assert_eq!(ns, N, "one batch per record with batch_bytes = 1");
    // 116 estimated bytes a record, 16 KiB a batch: ~141 records a batch.
    assert!(nb <= N / 100, "{N} records in {nb} batches");
    assert!(
        nb >= N * 116 / (16 << 10),
        "batches respect batch_bytes: {nb}"
    );
}

#[test]
fn a_lingering_record_is_not_appended_before_the_linger_or_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(1_700_000_000_000);
    let store = store_on(dir.path(), &clock);
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let p = t.partition(0).unwrap();

    // An hour of linger: nothing happens until flush, however slow the machine.
    let patient = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let h = patient.send("t", Record::new("late")).unwrap();
    let wait = Duration::from_millis(150);
    assert!(times_out(&clock, wait, || h.wait_timeout(wait)).0.is_none());
    assert!(!h.is_done());
    assert_eq!(p.end_offset(), 0);
    patient.flush().unwrap();
    assert!(h.is_done(), "flush waits for the send");
    assert_eq!(h.wait().unwrap().offset, 0);
    assert_eq!(p.end_offset(), 1);

    // 200 ms of linger, no flush: appended on its own, never before the linger passed.
    let lingering = store
        .producer(ProducerConfig {
            linger: Duration::from_millis(200),
            ..config(Acks::Written)
        })
        .unwrap();
    let h = lingering.send("t", Record::new("lingered")).unwrap();
    let almost = Duration::from_millis(199);
    assert!(
        times_out(&clock, almost, || h.wait_timeout(almost))
            .0
            .is_none(),
        "appended before the 200 ms linger"
    );
    clock.advance(Duration::from_millis(1));
    let m = h
        .wait_timeout(Duration::from_secs(10))
        .expect("appended once the linger passed")
        .unwrap();
    assert_eq!(m.offset, 1);

    // A full batch does not wait for the linger.
    let eager = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 1024,
            ..config(Acks::Written)
        })
        .unwrap();
    let handles: Vec<_> = (0..9)
        .map(|_| eager.send("t", Record::new(vec![b'x'; 100])).unwrap())
        .collect();
    // Nine 100-byte records overflow a 1 KiB batch: the first ones are sealed and appended
    // without waiting for the hour-long linger, the last waits in the open batch.
    let m = handles[0]
        .wait_timeout(Duration::from_secs(10))
        .expect("a full batch is appended without waiting for the linger")
        .unwrap();
    assert_eq!(m.offset, 2);
    assert!(
        !handles[8].is_done(),
        "the last record waits for the linger"
    );
    eager.flush().unwrap();
    assert_eq!(handles[8].wait().unwrap().offset, 10);
}

// ---- flush, close, drop -------------------------------------------------------------------------

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

#[test]
fn flush_waits_for_everything_sent_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(4))
        .unwrap();
    // Small batches: many fill up and are in flight (or queued behind one in flight) when flush
    // is called; the rest linger for an hour and only flush seals them.
    let lingering = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 2 << 10,
            ..config(Acks::Written)
        })
        .unwrap();
    // One record a batch, each synced: when flush is called, a queue of sealed batches is still
    // waiting for the sender threads and there is no open batch for flush to seal.
    let eager = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 1,
            ..config(Acks::Durable)
        })
        .unwrap();
    let mut sent = Vec::new();
    for (round, producer) in [&lingering, &eager, &lingering, &eager]
        .into_iter()
        .enumerate()
    {
        let n = if round % 2 == 0 { 1000 } else { 200 };
        for i in 0..n {
            let v = format!("r{round}-{i:04}");
            let h = if i % 5 == 0 {
                producer.send_to("t", (i / 5) % 4, Record::new(v.clone()))
            } else {
                producer.send("t", Record::new(v.clone()).with_key(format!("k{}", i % 13)))
            }
            .unwrap();
            sent.push((v, h));
        }
        producer.flush().unwrap();
        for (v, h) in &sent {
            assert!(h.is_done(), "{v}: not done after flush (round {round})");
            h.wait_timeout(Duration::ZERO)
                .expect("done")
                .unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        assert_eq!(
            t.end_offsets().iter().sum::<u64>(),
            sent.len() as u64,
            "round {round}: everything appended by the time flush returned"
        );
        assert_stored_in_send_order(&t, &sent);
    }
    // Nothing pending: flush returns at once.
    lingering.flush().unwrap();
    eager.flush().unwrap();
    assert!(
        t.end_offsets().iter().all(|&e| e > 0),
        "every partition used"
    );
}

#[test]
fn flush_from_another_thread_waits_for_every_clones_sends() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Durable)
        })
        .unwrap();
    let sent: Vec<(String, SendHandle)> = (0..200u32)
        .map(|i| {
            let v = format!("v{i}");
            let h = producer
                .send_to("t", i % 2, Record::new(v.clone()))
                .unwrap();
            (v, h)
        })
        .collect();
    let flusher = producer.clone();
    std::thread::spawn(move || flusher.flush().unwrap())
        .join()
        .unwrap();
    for (v, h) in &sent {
        assert!(h.is_done(), "{v}: not done after another clone's flush");
    }
    for p in t.partitions() {
        assert_eq!(p.end_offset(), 100);
        assert_eq!(
            p.durable_offset(),
            100,
            "Durable acks: flushed means synced"
        );
    }
    assert_stored_in_send_order(&t, &sent);
}

#[test]
fn close_flushes_and_later_sends_fail_with_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let clone = producer.clone();
    let sent: Vec<(String, SendHandle)> = (0..100u32)
        .map(|i| {
            let v = format!("v{i}");
            let h = producer
                .send_to("t", i % 2, Record::new(v.clone()))
                .unwrap();
            (v, h)
        })
        .collect();
    assert_eq!(t.end_offsets(), vec![0, 0], "an hour of linger");
    assert!(sent.iter().all(|(_, h)| !h.is_done()));

    producer.close().unwrap();
    for (v, h) in &sent {
        assert!(h.is_done(), "{v}: not done after close");
    }
    assert_eq!(t.end_offsets(), vec![50, 50]);
    assert_stored_in_send_order(&t, &sent);

    // Every later use, through any clone, is refused; nothing more reaches the log.
    for p in [&producer, &clone] {
        match p.send("t", Record::new("late")) {
            Err(Error::Closed { path }) => assert_eq!(path, store.dir()),
            other => panic!("send after close: {other:?}"),
        }
        assert!(matches!(
            p.send_to("t", 0, Record::new("late")),
            Err(Error::Closed { .. })
        ));
        assert!(matches!(p.flush(), Err(Error::Closed { .. })));
    }
    // Closing again (or the other clone) is harmless.
    producer.close().unwrap();
    clone.close().unwrap();
    drop((producer, clone));
    assert_eq!(t.end_offsets(), vec![50, 50]);
}

#[test]
fn dropping_the_last_clone_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let clone = producer.clone();
    // The clone sends from another thread and is dropped there.
    let mut sent: Vec<(String, SendHandle)> = std::thread::spawn(move || {
        (0..50)
            .map(|i| {
                let v = format!("clone-{i}");
                (v.clone(), clone.send("t", Record::new(v)).unwrap())
            })
            .collect()
    })
    .join()
    .unwrap();
    for i in 0..50 {
        let v = format!("original-{i}");
        sent.push((v.clone(), producer.send("t", Record::new(v)).unwrap()));
    }
    // One clone is gone, the other still holds the producer open: nothing is forced out.
    assert!(sent.iter().all(|(_, h)| !h.is_done()));
    assert_eq!(t.end_offsets(), vec![0]);

    drop(producer);
    for (v, h) in &sent {
        assert!(
            h.is_done(),
            "{v}: not done after the last clone was dropped"
        );
    }
    assert_eq!(t.end_offsets(), vec![100]);
    assert_stored_in_send_order(&t, &sent);
}

// ---- errors reported by send --------------------------------------------------------------------

#[test]
fn keyless_records_to_a_compacted_topic_fail_with_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let mut topics = Vec::new();
    for (name, policy) in [
        ("compact", CleanupPolicy::Compact),
        ("compact-delete", CleanupPolicy::CompactDelete),
    ] {
        let t = store
            .create_topic(
                name,
                TopicConfig {
                    overrides: LogOverrides {
                        cleanup_policy: Some(policy),
                        ..LogOverrides::default()
                    },
                    ..TopicConfig::with_partitions(2)
                },
            )
            .unwrap();
        topics.push((name, t));
    }
    let plain = store
        .create_topic("plain", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    for (name, t) in &topics {
        match producer.send(name, Record::new("no key")) {
            Err(Error::MissingKey { topic }) => assert_eq!(topic, *name),
            other => panic!("{name}: expected MissingKey, got {other:?}"),
        }
        match producer.send_to(name, 1, Record::new("no key")) {
            Err(Error::MissingKey { topic }) => assert_eq!(topic, *name),
            other => panic!("{name}: expected MissingKey from send_to, got {other:?}"),
        }
        // Keyed records and tombstones are accepted.
        let keyed = producer.send(name, Record::new("v").with_key("k")).unwrap();
        let tomb = producer
            .send_to(name, 0, Record::tombstone("gone"))
            .unwrap();
        producer.flush().unwrap();
        keyed.wait().unwrap();
        tomb.wait().unwrap();
        assert_eq!(
            t.end_offsets().iter().sum::<u64>(),
            2,
            "{name}: the keyless records were not stored"
        );
    }
    // A topic that does not compact takes keyless records.
    let h = producer.send("plain", Record::new("no key")).unwrap();
    producer.flush().unwrap();
    assert_eq!(h.wait().unwrap().offset, 0);
    assert_eq!(plain.end_offsets(), vec![1]);
}

/// Probe `make(len)` for `len` in `lens` against a topic whose batches are at most `max` bytes:
/// the accepted lengths must be a prefix of `lens`, every rejection a `RecordTooLarge` naming
/// `max`. Returns the accepted `(len, handle)`s.
fn probe_record_sizes(
    producer: &Producer,
    topic: &str,
    max: usize,
    lens: std::ops::Range<usize>,
    make: impl Fn(usize) -> Record,
) -> Vec<(usize, SendHandle)> {
    let mut accepted = Vec::new();
    let mut first_rejected = None;
    for len in lens {
        match producer.send(topic, make(len)) {
            Ok(h) => {
                assert!(
                    first_rejected.is_none(),
                    "{len} accepted although {first_rejected:?} was rejected"
                );
                accepted.push((len, h));
            }
            Err(Error::RecordTooLarge { size, max: m }) => {
                assert_eq!(m, max, "{len}: the topic's limit");
                assert!(size > max, "{len}: rejected with size {size} <= {max}");
                first_rejected.get_or_insert(len);
            }
            Err(e) => panic!("{len}: {e}"),
        }
    }
    assert!(first_rejected.is_some(), "nothing was too large");
    accepted
}

#[test]
fn a_record_too_large_for_the_topic_fails_at_send_and_one_that_fits_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    const MAX: usize = 1024;
    let t = store
        .create_topic(
            "small",
            TopicConfig {
                overrides: LogOverrides {
                    max_batch_bytes: Some(MAX as u32),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(1)
            },
        )
        .unwrap();
    // The producer's own batch size does not matter: the topic's limit does.
    for (round, batch_bytes) in [64 << 10, 1].into_iter().enumerate() {
        let producer = store
            .producer(ProducerConfig {
                linger: HOUR,
                batch_bytes,
                ..config(Acks::Written)
            })
            .unwrap();
        // Plain values, then records with a key, headers and an extreme timestamp.
        let plain = probe_record_sizes(&producer, "small", MAX, 800..1100, |len| {
            Record::new(vec![b'p'; len])
        });
        let rich = probe_record_sizes(&producer, "small", MAX, 800..1100, |len| {
            Record::new(vec![b'r'; len])
                .with_key("0123456789")
                .with_header("h1", Bytes::from("header value"))
                .with_header("h2", None)
                .with_timestamp(i64::MAX)
        });
        // The producer may keep a margin (it bounds the encoded size from above), but not much.
        let (largest_plain, _) = plain.last().unwrap();
        let (largest_rich, _) = rich.last().unwrap();
        assert!(
            *largest_plain >= MAX - 128,
            "largest plain value {largest_plain}"
        );
        assert!(
            *largest_rich >= MAX - 160,
            "largest rich value {largest_rich}"
        );
        // Too large for send_to as well; nothing was buffered for the rejections.
        assert!(matches!(
            producer.send_to("small", 0, Record::new(vec![0u8; MAX])),
            Err(Error::RecordTooLarge { max: MAX, .. })
        ));
        producer.flush().unwrap();
        // Every accepted record, including the ones right at the boundary, was appended.
        let p = t.partition(0).unwrap();
        for (len, h) in plain.iter().chain(&rich) {
            let m = h
                .wait()
                .unwrap_or_else(|e| panic!("round {round}: {len}-byte value accepted but: {e}"));
            let read = p.read(m.offset, 1).unwrap();
            let batch = &read.batches()[0];
            assert!(
                batch.as_bytes().len() <= MAX,
                "{len}: stored a {}-byte batch",
                batch.as_bytes().len()
            );
            let r = batch.records().find(|r| r.offset() == m.offset).unwrap();
            assert_eq!(r.value().unwrap().len(), *len);
        }
        // The producer keeps working after the rejections.
        let h = producer.send("small", Record::new("small")).unwrap();
        producer.flush().unwrap();
        assert_eq!(h.wait().unwrap().offset + 1, p.end_offset());
    }
}

#[test]
fn records_that_fit_are_never_batched_past_the_topic_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    const MAX: usize = 1024;
    let t = store
        .create_topic(
            "t",
            TopicConfig {
                overrides: LogOverrides {
                    max_batch_bytes: Some(MAX as u32),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(2)
            },
        )
        .unwrap();
    // batch_bytes far above the topic's limit, an hour of linger: only the limit splits batches.
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 64 << 10,
            ..config(Acks::Written)
        })
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..600usize {
        // 400 ..= 490-byte values (and some keys and headers), with timestamps far apart, so
        // the timestamp deltas take the longest varints.
        let len = 400 + (i * 37) % 91;
        let tag = format!("{i:04}");
        let mut value = tag.clone().into_bytes();
        value.resize(len, b'.');
        let mut r = Record::new(value).with_timestamp(if i % 2 == 0 { i64::MAX } else { 0 });
        if i % 3 == 0 {
            r = r.with_key(format!("key-{i}"));
        }
        if i % 4 == 0 {
            r = r.with_header("trace", Bytes::from(tag.clone()));
        }
        let h = producer.send_to("t", (i % 2) as u32, r).unwrap();
        sent.push((tag, h));
    }
    producer.flush().unwrap();
    for (tag, h) in &sent {
        h.wait().unwrap_or_else(|e| panic!("{tag}: {e}"));
    }
    let mut multi = 0;
    for (pi, p) in t.partitions().iter().enumerate() {
        let batches = stored_batches(p);
        for (header, len) in &batches {
            assert!(
                *len <= MAX,
                "batch at {} of {} records is {len} bytes",
                header.base_offset,
                header.record_count
            );
            if header.record_count > 1 {
                multi += 1;
            }
        }
        assert_eq!(
            batches
                .iter()
                .map(|(h, _)| u64::from(h.record_count))
                .sum::<u64>(),
            300
        );
        // Every record is stored, in send order.
        let tags: Vec<String> = values(p)
            .into_iter()
            .map(|(_, v)| v[..4].to_owned())
            .collect();
        let expected: Vec<String> = (0..600)
            .filter(|i| i % 2 == pi)
            .map(|i| format!("{i:04}"))
            .collect();
        assert_eq!(tags, expected);
    }
    assert!(multi > 0, "records that fit together are still batched");
}

#[test]
fn invalid_partitions_and_unknown_topics_fail_at_send() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    for p in [3, 4, u32::MAX] {
        match producer.send_to("t", p, Record::new("x")) {
            Err(Error::InvalidPartition {
                topic,
                partition,
                partitions,
            }) => assert_eq!((topic.as_str(), partition, partitions), ("t", p, 3)),
            other => panic!("partition {p}: expected InvalidPartition, got {other:?}"),
        }
    }
    for result in [
        producer.send("missing", Record::new("x")),
        producer.send_to("missing", 0, Record::new("x")),
    ] {
        match result {
            Err(Error::UnknownTopic { name }) => assert_eq!(name, "missing"),
            other => panic!("expected UnknownTopic, got {other:?}"),
        }
    }
    // Nothing was buffered for the failures, and the producer still works.
    let h = producer.send_to("t", 2, Record::new("ok")).unwrap();
    producer.flush().unwrap();
    let m = h.wait().unwrap();
    assert_eq!((m.partition, m.offset), (2, 0));
    assert_eq!(t.end_offsets(), vec![0, 0, 1]);
}

#[test]
fn a_full_buffer_fails_after_max_block_and_frees_up_on_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    const BUFFER: usize = 1000;
    const MAX_BLOCK: Duration = Duration::from_millis(200);
    // The batch is as large as the buffer: it can never fill before the buffer does, so nothing
    // is appended before the flush.
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: BUFFER,
            buffer_bytes: BUFFER,
            max_block: MAX_BLOCK,
            ..config(Acks::Written)
        })
        .unwrap();
    let record = |i: usize| Record::new(format!("{i:0100}"));
    let mut handles = Vec::new();
    let err = loop {
        match producer.send("t", record(handles.len())) {
            Ok(h) => handles.push(h),
            Err(e) => break e,
        }
        assert!(handles.len() < BUFFER / 100, "never reported a full buffer");
    };
    assert!(!handles.is_empty());
    // That send waited max_block for space (nothing could free it), then failed.
    let blocked = Instant::now();
    match producer.send("t", record(handles.len())) {
        Err(Error::BufferFull { buffered, limit }) => {
            assert_eq!(limit, BUFFER);
            assert!(buffered <= BUFFER && buffered > BUFFER / 2, "{buffered}");
        }
        other => panic!("expected BufferFull, got {other:?}"),
    }
    assert!(
        blocked.elapsed() >= MAX_BLOCK,
        "failed after {:?}, before max_block",
        blocked.elapsed()
    );
    assert!(
        matches!(err, Error::BufferFull { limit: BUFFER, .. }),
        "{err:?}"
    );
    assert!(handles.iter().all(|h| !h.is_done()));
    assert_eq!(t.end_offsets(), vec![0]);

    // A flush empties the buffer: sends succeed again.
    producer.flush().unwrap();
    wait_all(&handles);
    let n = handles.len() as u64;
    let h = producer.send("t", record(handles.len())).unwrap();
    producer.flush().unwrap();
    assert_eq!(h.wait().unwrap().offset, n);

    // A send blocked on a full buffer goes through as soon as another thread's flush frees it.
    let mut more = Vec::new();
    while let Ok(h) = producer.send("t", record(0)) {
        more.push(h);
    }
    let patient = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: BUFFER,
            buffer_bytes: BUFFER,
            max_block: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let mut patient_handles = Vec::new();
    while patient_handles.len() < more.len() {
        patient_handles.push(patient.send("t", record(0)).unwrap());
    }
    let flusher = patient.clone();
    let flush = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        flusher.flush().unwrap();
    });
    // Blocks (an hour at most) until the flush frees the buffer.
    let h = patient.send("t", record(1)).unwrap();
    flush.join().unwrap();
    patient.flush().unwrap();
    producer.flush().unwrap();
    wait_all(&more);
    wait_all(&patient_handles);
    h.wait().unwrap();
    assert_eq!(t.end_offsets(), vec![n + 1 + more.len() as u64 * 2 + 1]);
}

// ---- producer ids and topic lifecycle -----------------------------------------------------------

#[test]
fn idempotent_producer_ids_are_unique_across_producers_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = BTreeSet::new();
    let one_thread = |idempotent| ProducerConfig {
        idempotent,
        max_in_flight: 1,
        linger: HOUR,
        ..config(Acks::Written)
    };
    {
        let store = store(dir.path());
        let t = store
            .create_topic("t", TopicConfig::with_partitions(1))
            .unwrap();
        let producers: Vec<Producer> = (0..5)
            .map(|_| store.producer(one_thread(true)).unwrap())
            .collect();
        for p in &producers {
            let id = p.producer_id().expect("idempotent by default");
            assert!(id >= 0, "{id}");
            assert!(ids.insert(id), "id {id} given twice");
            assert_eq!(p.clone().producer_id(), Some(id), "clones share the id");
        }
        let plain = store.producer(one_thread(false)).unwrap();
        assert_eq!(plain.producer_id(), None);

        // Batches carry their producer's id (and sequence numbers); the plain producer's do not.
        for p in [&producers[0], &plain, &producers[4], &producers[0]] {
            let _ = p.send("t", Record::new("x")).unwrap();
            p.flush().unwrap();
        }
        let stamps: Vec<(i64, i32)> = stored_batches(&t.partition(0).unwrap())
            .iter()
            .map(|(h, _)| (h.producer_id, h.base_sequence))
            .collect();
        let (id0, id4) = (
            producers[0].producer_id().unwrap(),
            producers[4].producer_id().unwrap(),
        );
        assert_eq!(stamps, vec![(id0, 0), (-1, -1), (id4, 0), (id0, 1)]);
        drop((producers, plain));
        store.close().unwrap();
    }
    // After a reopen, and from several threads at once: still never an id given before.
    for reopen in 0..2 {
        let store = store(dir.path());
        let fresh: Vec<i64> = std::thread::scope(|s| {
            let joins: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..5)
                            .map(|_| {
                                let p = store.producer(one_thread(true)).unwrap();
                                p.producer_id().unwrap()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            joins.into_iter().flat_map(|j| j.join().unwrap()).collect()
        });
        assert_eq!(fresh.len(), 20);
        for id in fresh {
            assert!(id >= 0, "{id}");
            assert!(ids.insert(id), "reopen {reopen}: id {id} given twice");
        }
        assert_eq!(
            store.producer(one_thread(false)).unwrap().producer_id(),
            None
        );
        store.close().unwrap();
    }
    assert_eq!(ids.len(), 45);
}

#[test]
fn a_deleted_and_recreated_topic_is_sent_to_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let old = store
        .create_topic("t", TopicConfig::with_partitions(3))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let mut first = Vec::new();
    for i in 0..30u32 {
        let v = format!("old-{i}");
        let h = if i % 3 == 0 {
            producer.send_to("t", 2, Record::new(v.clone()))
        } else {
            producer.send("t", Record::new(v.clone()).with_key(format!("k{i}")))
        }
        .unwrap();
        first.push((v, h));
    }
    producer.flush().unwrap();
    assert_stored_in_send_order(&old, &first);

    store.delete_topic("t").unwrap();
    assert!(matches!(
        producer.send("t", Record::new("x")),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        producer.send_to("t", 0, Record::new("x")),
        Err(Error::UnknownTopic { .. })
    ));

    // Recreated with fewer partitions: the producer sees the new topic, not its memory of the
    // old one (partition count, offsets, sequence numbers).
    let new = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    match producer.send_to("t", 2, Record::new("x")) {
        Err(Error::InvalidPartition { partitions, .. }) => assert_eq!(partitions, 2),
        other => panic!("expected InvalidPartition, got {other:?}"),
    }
    let mut second = Vec::new();
    for i in 0..40u32 {
        let v = format!("new-{i}");
        let h = if i % 4 == 0 {
            producer.send_to("t", 1, Record::new(v.clone()))
        } else {
            producer.send("t", Record::new(v.clone()).with_key(format!("k{i}")))
        }
        .unwrap();
        second.push((v, h));
    }
    producer.flush().unwrap();
    for (v, h) in &second {
        let m = h.wait().unwrap_or_else(|e| panic!("{v}: {e}"));
        assert!(m.partition < 2, "{v}");
    }
    assert_stored_in_send_order(&new, &second);
    assert_eq!(new.end_offsets().iter().sum::<u64>(), 40);
}

#[test]
fn a_record_sent_after_recreation_is_not_caught_in_a_batch_open_for_the_deleted_topic() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    // Open batches for the old topic (an hour of linger), on partitions 0 and 1.
    let before: Vec<SendHandle> = (0..2)
        .map(|p| producer.send_to("t", p, Record::new("before")).unwrap())
        .collect();
    store.delete_topic("t").unwrap();
    let new = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let after = producer.send_to("t", 0, Record::new("after")).unwrap();
    let keyed = producer
        .send("t", Record::new("after-keyed").with_key("k"))
        .unwrap();
    producer.flush().unwrap();
    for h in &before {
        // Sent to a topic that is gone: done, and not stored in the new topic.
        assert!(h.is_done());
        assert!(h.wait().is_err(), "{:?}", h.wait());
    }
    let m = after.wait().expect("sent after the recreation");
    assert_eq!((m.partition, m.offset), (0, 0));
    assert_eq!(keyed.wait().unwrap().offset, 1);
    assert_eq!(
        values(&new.partition(0).unwrap()),
        vec![(0, "after".to_owned()), (1, "after-keyed".to_owned())]
    );
}

// ---- I/O failures -------------------------------------------------------------------------------

#[test]
fn a_failed_append_fails_every_handle_of_its_batch_and_spares_other_partitions() {
    let sim = SimFs::new(21);
    let opts = StoreOptions {
        log: LogConfig {
            preallocate: false,
            segment_bytes: 16 << 10,
            ..options(Durability::None).log
        },
        ..options(Durability::None)
    };
    let dir = Path::new("/s");
    let env = Env::with_fs(Arc::new(sim.clone()));
    let store = Store::open_with_env(dir, opts.clone(), env.clone()).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let id = producer.producer_id().unwrap();
    let send = |p: u32, tag: &str, n: usize| -> Vec<(String, SendHandle)> {
        (0..n)
            .map(|i| {
                let v = format!("{tag}-{i}");
                (v.clone(), producer.send_to("t", p, Record::new(v)).unwrap())
            })
            .collect()
    };
    let stamps = |p: u32| -> Vec<(i64, i32, u32)> {
        stored_batches(&t.partition(p).unwrap())
            .iter()
            .map(|(h, _)| (h.producer_id, h.base_sequence, h.record_count))
            .collect()
    };
    let tags = |p: u32| -> Vec<String> {
        values(&t.partition(p).unwrap())
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };

    let mut round1 = send(0, "a", 5);
    round1.extend(send(1, "b", 5));
    producer.flush().unwrap();
    assert_stored_in_send_order(&t, &round1);

    // The next write to partition 0's log fails (the segment does not roll: 16 KiB segments).
    sim.inject(Fault {
        path_contains: Some("/s/t/0/00000000000000000000.log".into()),
        ..Fault::new(FaultOp::Write, 0)
    });
    let failed = send(0, "failed", 4);
    let ok = send(1, "ok", 3);
    producer.flush().unwrap();
    let errors: Vec<String> = failed
        .iter()
        .map(|(v, h)| match h.wait() {
            Err(e @ Error::Io { .. }) => e.to_string(),
            other => panic!("{v}: expected the write's Io error, got {other:?}"),
        })
        .collect();
    assert!(errors.iter().all(|e| e == &errors[0]), "{errors:?}");
    assert!(errors[0].contains("/s/t/0"), "{}", errors[0]);
    for (i, (v, h)) in ok.iter().enumerate() {
        let m = h.wait().unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!((m.partition, m.offset), (1, 5 + i as u64));
    }

    // The failure poisoned partition 0 until it is reopened: later batches to it fail (all their
    // handles); partition 1 keeps taking this producer's batches, its sequence numbers intact.
    let refused = send(0, "refused", 2);
    let ok2 = send(1, "ok2", 2);
    producer.flush().unwrap();
    for (v, h) in &refused {
        assert!(
            matches!(h.wait(), Err(Error::Poisoned { .. })),
            "{v}: {:?}",
            h.wait()
        );
    }
    for (i, (v, h)) in ok2.iter().enumerate() {
        let m = h.wait().unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!((m.partition, m.offset), (1, 8 + i as u64));
    }
    // No trace of the failed batches; partition 1's batches are numbered without gaps.
    assert_eq!(t.partition(0).unwrap().end_offset(), 5);
    assert_eq!(
        tags(0),
        (0..5).map(|i| format!("a-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(stamps(0), vec![(id, 0, 5)]);
    assert_eq!(stamps(1), vec![(id, 0, 5), (id, 5, 3), (id, 8, 2)]);
    let p1: Vec<String> = tags(1);
    assert_eq!(
        p1,
        ["b-0", "b-1", "b-2", "b-3", "b-4", "ok-0", "ok-1", "ok-2", "ok2-0", "ok2-1"]
    );

    // Reopened (no crash), the store holds exactly the successful batches, and a new producer
    // writes to the partition that failed.
    producer.close().unwrap();
    drop(producer);
    drop(t);
    let _ = store.close();
    drop(store);
    sim.clear_faults();
    let store = Store::open_with_env(dir, opts, env).unwrap();
    let t = store.topic("t").unwrap();
    assert_eq!(t.end_offsets(), vec![5, 10]);
    let p0: Vec<String> = values(&t.partition(0).unwrap())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(p0, (0..5).map(|i| format!("a-{i}")).collect::<Vec<_>>());
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let id2 = producer.producer_id().unwrap();
    assert_ne!(id2, id);
    let again: Vec<SendHandle> = (0..3)
        .map(|i| {
            producer
                .send_to("t", 0, Record::new(format!("again-{i}")))
                .unwrap()
        })
        .collect();
    let p1 = producer.send_to("t", 1, Record::new("again")).unwrap();
    producer.flush().unwrap();
    for (i, h) in again.iter().enumerate() {
        assert_eq!(h.wait().unwrap().offset, 5 + i as u64);
    }
    assert_eq!(p1.wait().unwrap().offset, 10);
    let last = *stored_batches(&t.partition(0).unwrap()).last().unwrap();
    assert_eq!(
        (
            last.0.producer_id,
            last.0.base_sequence,
            last.0.record_count
        ),
        (id2, 0, 3)
    );
}

#[test]
fn flush_after_close_reports_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let producer = store.producer(config(Acks::Written)).unwrap();
    producer.close().unwrap();
    assert!(matches!(producer.flush(), Err(Error::Closed { .. })));
}

#[test]
fn a_burst_coalesces_while_the_partition_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: Duration::ZERO,
            ..config(Acks::Written)
        })
        .unwrap();
    const N: usize = 20_000;
    for _ in 0..N {
        let _ = producer.send("t", Record::new(vec![1u8; 100])).unwrap();
    }
    producer.flush().unwrap();
    let p = t.partition(0).unwrap();
    assert_eq!(p.end_offset(), N as u64);
    // One batch is in flight per partition: what arrives meanwhile keeps filling the open batch
    // (a lingered batch is not sealed while its partition is busy). How much arrives depends on
    // how fast sends are next to appends, so only require real coalescing (this was a median of
    // one record per batch).
    let batches = batch_count(&p);
    assert!(batches <= N / 2, "{N} records in {batches} batches");
}
