//! End to end: a [`Producer`] sending 100-byte records and a [`Consumer`] reading them back.
//!
//! - `e2e/throughput/100B/{written,durable}/{1p,4p}`: one iteration sends [`RECORDS`] (written)
//!   or [`DURABLE_RECORDS`] (durable) keyless records from one thread (then `flush`) while the
//!   bench thread polls a consumer assigned every partition until it has them all; the clock
//!   runs from the first send to the last record received. `Throughput::Elements`: records/s.
//!   Producer defaults (16 KiB batches, 5 ms linger, 5 senders) with `Acks::Written` or
//!   `Acks::Durable`; topics have `Durability::None`, so only `Durable` acks fsync.
//! - `e2e/throughput/raw/100B/written/1p` (the baseline, named `raw/` so `summarize.sh` pairs
//!   it): the same records, in batches of the size the producer makes (141 records), appended
//!   with `Partition::append_batch` by one thread while the bench thread tails the partition with
//!   `wait_for` + `read`. The ratio is what the producer and consumer layers cost.
//! - `e2e/latency/100krps/linger{0,5ms}`: not a criterion measurement. A producer thread sends
//!   single records at a fixed 100,000 records/s (paced in steps of a few tens of µs), each
//!   carrying its send time; a tailing consumer (`poll`) on another thread takes the time at which
//!   each record comes back. The first second is warm-up; p50/p90/p99/p99.9/max of the rest are
//!   printed and written to `<criterion home>/topiclog-latency/` for `benches/summarize.sh`.
//!
//! Logs are emptied (outside the clock) once they hold [`RESET_RECORDS`] records.

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use topiclog::{
    Acks, AutoOffsetReset, Consumer, ConsumerConfig, Durability, LogConfig, Partition, Producer,
    ProducerConfig, Record, Store, StoreOptions, Topic, TopicConfig, TopicPartition,
};

use common::{criterion_home, measuring, payload, scratch_dir};

/// Records per iteration with `Acks::Written`.
const RECORDS: usize = 100_000;
/// Records per iteration with `Acks::Durable`.
const DURABLE_RECORDS: usize = 20_000;
const VALUE_LEN: usize = 100;
/// Records stored at which the topic is emptied.
const RESET_RECORDS: u64 = 4_000_000;
/// Records a producer batch holds: 16 KiB / (100 + 16) estimated bytes.
const PRODUCER_BATCH: usize = 141;
const TOPIC: &str = "e2e";

fn open_store(tag: &str) -> (tempfile::TempDir, Store) {
    let dir = scratch_dir(tag);
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            log: LogConfig {
                durability: Durability::None,
                ..LogConfig::default()
            },
            background_cleaner: false,
            // Rolled segments are synced in the background, as in production.
            background_maintenance: true,
            ..StoreOptions::default()
        },
    )
    .expect("open the bench store");
    (dir, store)
}

fn tailing_consumer(store: &Store, topic: &Topic) -> Consumer {
    let mut consumer = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Latest,
            enable_auto_commit: false,
            max_poll_records: 10_000,
            ..ConsumerConfig::default()
        })
        .expect("a consumer");
    let all: Vec<TopicPartition> = (0..topic.partition_count())
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    consumer.assign(&all).expect("assign");
    consumer
}

/// Empty the topic if it grew past [`RESET_RECORDS`]; then start the consumer at the end.
fn reset_if_big(topic: &Topic, consumer: &mut Consumer) {
    let stored: u64 = topic
        .partitions()
        .iter()
        .map(|p| p.end_offset() - p.start_offset())
        .sum();
    if stored > RESET_RECORDS {
        for p in topic.partitions() {
            p.truncate_to(p.start_offset())
                .expect("empty the partition");
        }
    }
    consumer.seek_to_end(&[]).expect("seek to end");
}

struct Pipeline {
    _dir: tempfile::TempDir,
    store: Store,
    topic: Topic,
    producer: Producer,
    consumer: Consumer,
    value: Bytes,
}

impl Pipeline {
    fn new(acks: Acks, partitions: u32) -> Pipeline {
        let (dir, store) = open_store("e2e");
        let topic = store
            .create_topic(TOPIC, TopicConfig::with_partitions(partitions))
            .expect("create the topic");
        let producer = store
            .producer(ProducerConfig {
                acks,
                ..ProducerConfig::default()
            })
            .expect("a producer");
        let consumer = tailing_consumer(&store, &topic);
        Pipeline {
            _dir: dir,
            store,
            topic,
            producer,
            consumer,
            value: payload(VALUE_LEN, 1),
        }
    }

    /// Send `n` records from another thread and consume them here; the time from the first send to
    /// the last record received.
    fn run(&mut self, n: usize) -> Duration {
        reset_if_big(&self.topic, &mut self.consumer);
        let (producer, value) = (&self.producer, &self.value);
        let consumer = &mut self.consumer;
        std::thread::scope(|s| {
            let start = Instant::now();
            let sender = s.spawn(move || {
                for _ in 0..n {
                    // Not waited on: the consumer below must receive every record.
                    drop(
                        producer
                            .send(TOPIC, Record::new(value.clone()))
                            .expect("send"),
                    );
                }
                producer.flush().expect("flush");
            });
            let mut got = 0;
            while got < n {
                let records = consumer.poll(Duration::from_secs(10)).expect("poll");
                assert!(!records.is_empty(), "no records for 10 s ({got} of {n})");
                got += records.len();
            }
            let elapsed = start.elapsed();
            sender.join().expect("sender thread");
            assert_eq!(got, n, "exactly the records sent");
            elapsed
        })
    }
}

/// The baseline: one thread appends pre-built batches to a partition, this one tails it.
fn raw_run(p: &Partition, batches: &[Vec<Record>], n: usize) -> Duration {
    if p.end_offset() - p.start_offset() > RESET_RECORDS {
        p.truncate_to(p.start_offset())
            .expect("empty the partition");
    }
    let from = p.end_offset();
    std::thread::scope(|s| {
        let start = Instant::now();
        let writer = s.spawn(|| {
            let mut sent = 0;
            for b in batches.iter().cycle() {
                if sent >= n {
                    break;
                }
                let take = (n - sent).min(b.len());
                p.append_batch(&b[..take]).expect("append_batch");
                sent += take;
            }
        });
        let mut next = from;
        let mut got = 0;
        while got < n {
            if !p.wait_for(next, Duration::from_secs(10)) {
                panic!("no records for 10 s ({got} of {n})");
            }
            let read = p.read(next, 50 << 20).expect("read");
            for r in read.records() {
                std::hint::black_box(r.value());
                got += 1;
            }
            next = read.next_offset();
        }
        let elapsed = start.elapsed();
        writer.join().expect("writer thread");
        elapsed
    })
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("e2e/throughput");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (acks, label, n) in [
        (Acks::Written, "written", RECORDS),
        (Acks::Durable, "durable", DURABLE_RECORDS),
    ] {
        group.throughput(Throughput::Elements(n as u64));
        for partitions in [1, 4] {
            if acks == Acks::Durable && partitions == 1 {
                continue;
            }
            let id = format!("100B/{label}/{partitions}p");
            let mut pipeline: Option<Pipeline> = None;
            group.bench_function(&id, |b| {
                let pipe = pipeline.get_or_insert_with(|| Pipeline::new(acks, partitions));
                b.iter_custom(|iters| (0..iters).map(|_| pipe.run(n)).sum());
            });
            if let Some(p) = pipeline {
                p.producer.close().expect("close the producer");
                drop(p.consumer);
                p.store.close().expect("close the store");
            }
        }
    }
    group.throughput(Throughput::Elements(RECORDS as u64));
    let (_dir, store) = open_store("e2e-raw");
    let topic = store
        .create_topic(TOPIC, TopicConfig::with_partitions(1))
        .expect("create the topic");
    let p = topic.partition(0).expect("partition 0");
    let value = payload(VALUE_LEN, 1);
    let batch: Vec<Record> = (0..PRODUCER_BATCH)
        .map(|_| Record::new(value.clone()))
        .collect();
    let batches = vec![batch];
    group.bench_function("raw/100B/written/1p", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| raw_run(&p, &batches, RECORDS)).sum());
    });
    group.finish();
    store.close().expect("close the store");
}

/// Produce-to-consume latency at a fixed rate; prints and records the percentiles.
fn latency_at_rate(id: &str, rate: u64, linger: Duration, warm_up: Duration, measure: Duration) {
    let (_dir, store) = open_store("e2e-latency");
    let topic = store
        .create_topic(TOPIC, TopicConfig::with_partitions(1))
        .expect("create the topic");
    let producer = store
        .producer(ProducerConfig {
            acks: Acks::Written,
            linger,
            ..ProducerConfig::default()
        })
        .expect("a producer");
    let mut consumer = tailing_consumer(&store, &topic);
    consumer.seek_to_end(&[]).expect("seek to end");
    let base = Instant::now();
    let total = warm_up + measure;
    let sent = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let filler = payload(VALUE_LEN - 8, 2);
    let mut nanos: Vec<u64> = Vec::with_capacity((rate * measure.as_secs().max(1)) as usize);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            loop {
                let now = base.elapsed();
                if now >= total {
                    break;
                }
                let due = (now.as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
                while i < due {
                    let at = base.elapsed().as_nanos() as u64;
                    let mut v = Vec::with_capacity(VALUE_LEN);
                    v.extend_from_slice(&at.to_le_bytes());
                    v.extend_from_slice(&filler);
                    // Not waited on: the consumer must receive every record.
                    drop(producer.send(TOPIC, Record::new(v)).expect("send"));
                    i += 1;
                }
                sent.store(i, Ordering::Release);
                std::thread::sleep(Duration::from_micros(20));
            }
            producer.flush().expect("flush");
            sent.store(i, Ordering::Release);
            done.store(true, Ordering::Release);
        });
        let mut got = 0u64;
        loop {
            let records = consumer.poll(Duration::from_millis(100)).expect("poll");
            let now = base.elapsed().as_nanos() as u64;
            for r in &records {
                let v = r.value().expect("value");
                let at = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
                if Duration::from_nanos(at) >= warm_up {
                    nanos.push(now.saturating_sub(at));
                }
            }
            got += records.len() as u64;
            if done.load(Ordering::Acquire) && got >= sent.load(Ordering::Acquire) {
                break;
            }
        }
    });
    producer.close().expect("close the producer");
    drop(consumer);
    store.close().expect("close the store");
    report_latency(id, nanos);
}

/// Print the percentiles and write them for `summarize.sh`; nothing in a `--test` run, which only
/// checks that the measurement runs.
fn report_latency(id: &str, mut nanos: Vec<u64>) {
    if nanos.is_empty() || !measuring() {
        return;
    }
    nanos.sort_unstable();
    let n = nanos.len();
    let at = |q: f64| nanos[((n as f64 * q) as usize).min(n - 1)];
    let (p50, p90, p99, p999, max) = (at(0.5), at(0.9), at(0.99), at(0.999), nanos[n - 1]);
    let us = |x: u64| x as f64 / 1e3;
    println!(
        "{id}: produce-to-consume latency p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, \
         max {:.1} µs (n = {n}, warm-up excluded)",
        us(p50),
        us(p90),
        us(p99),
        us(p999),
        us(max)
    );
    let dir = criterion_home().join("topiclog-latency");
    let file = dir.join(format!("{}.tsv", id.replace('/', "_")));
    let row = format!("{id}\t{p50}\t{p90}\t{p99}\t{max}\t{n}\n");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, row)) {
        eprintln!("could not write {}: {e}", file.display());
    }
}

fn latency(_c: &mut Criterion) {
    // A name filter on the command line (`cargo bench --bench e2e -- throughput`) skips this.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| "e2e/latency".contains(f.as_str())) {
        return;
    }
    let (warm_up, measure) = if measuring() {
        (Duration::from_secs(1), Duration::from_secs(3))
    } else {
        (Duration::from_millis(50), Duration::from_millis(150))
    };
    for (label, linger) in [
        ("linger0", Duration::ZERO),
        ("linger5ms", Duration::from_millis(5)),
    ] {
        latency_at_rate(
            &format!("e2e/latency/100krps/{label}"),
            100_000,
            linger,
            warm_up,
            measure,
        );
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = throughput, latency
}
criterion_main!(benches);
