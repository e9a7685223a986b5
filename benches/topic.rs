//! The cost of partitioning: `Topic::send_batch` of keyed records into 4 partitions, beside the
//! same records pre-grouped and appended with `Partition::append_batch` directly (same batches,
//! same partitions). The ratio is what key hashing, grouping and per-record metadata add.
//!
//! - `topic_send/keyed/100B/4p`: one iteration = `send_batch` of 400 keyed 100-byte records.
//! - `topic_send/raw/keyed/100B/4p` (the baseline; named `raw/` so `summarize.sh` pairs it): one
//!   iteration = four `append_batch` calls holding the same records as `send_batch` would make.
//!
//! Durability::None, 1 GiB segments, logs emptied (outside the clock) every few hundred MiB.

#[allow(
    dead_code,
    reason = "each bench binary uses a different part of the shared plumbing"
)]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use topiclog::{
    key_partition, Durability, LogConfig, Record, Store, StoreOptions, Topic, TopicConfig,
};

use common::{payload, scratch_dir};

const RECORDS: usize = 400;
const PARTITIONS: u32 = 4;
/// Iterations between checks of the log size.
const CHUNK_ITERS: u64 = 200;
/// Records per partition at which the logs are emptied.
const RESET_RECORDS: u64 = 1_000_000;

fn reset_if_big(topic: &Topic) {
    for p in topic.partitions() {
        if p.end_offset() - p.start_offset() > RESET_RECORDS {
            p.truncate_to(p.start_offset())
                .expect("empty the partition");
        }
    }
}

fn timed(iters: u64, topic: &Topic, mut one: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(CHUNK_ITERS);
        let start = Instant::now();
        for _ in 0..n {
            one();
        }
        total += start.elapsed();
        done += n;
        reset_if_big(topic);
    }
    total
}

fn topic_send(c: &mut Criterion) {
    let dir = scratch_dir("topic-send");
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            log: LogConfig {
                durability: Durability::None,
                ..LogConfig::default()
            },
            background_maintenance: false,
            ..StoreOptions::default()
        },
    )
    .expect("open the store");
    let topic = store
        .create_topic("bench", TopicConfig::with_partitions(PARTITIONS))
        .expect("create the topic");
    let value = payload(100, 7);
    let records: Vec<Record> = (0..RECORDS)
        .map(|i| Record::new(value.clone()).with_key(format!("key-{i:06}")))
        .collect();
    let mut groups: Vec<Vec<Record>> = vec![Vec::new(); PARTITIONS as usize];
    for r in &records {
        let key = r.key().expect("keyed");
        groups[key_partition(key, PARTITIONS) as usize].push(r.clone());
    }
    let partitions = topic.partitions();

    let mut group = c.benchmark_group("topic_send");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("keyed/100B/4p", |b| {
        b.iter_custom(|iters| {
            timed(iters, &topic, || {
                black_box(topic.send_batch(&records).expect("send_batch"));
            })
        })
    });
    group.bench_function("raw/keyed/100B/4p", |b| {
        b.iter_custom(|iters| {
            timed(iters, &topic, || {
                for (p, g) in partitions.iter().zip(&groups) {
                    black_box(p.append_batch(g).expect("append_batch"));
                }
            })
        })
    });
    group.finish();
    store.close().expect("close the store");
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = topic_send
}
criterion_main!(benches);
