//! The batching producer: fire 100,000 records at a 4-partition topic, then a few that must be
//! on disk, and read everything back.
//!
//! Stores into the directory given as the first argument (a new temporary directory if none).
//! `send` only buffers the record and returns a handle: background sender threads group records
//! per partition into batches (up to `batch_bytes`, waiting at most `linger` for more) and append
//! each batch with one write. `Acks::Written` handles complete once the batch is appended and
//! readable; `Acks::Durable` ones once it is also fsynced.
//!
//! Run with `cargo run --release --example producer [DIR]`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use topiclog::{Acks, Durability, LogOverrides, ProducerConfig, Record, Store, TopicConfig};

const TOPIC: &str = "metrics";
const RECORDS: usize = 100_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let store = Store::open(&dir)?;
    let topic = match store.topic(TOPIC) {
        Ok(t) => t,
        Err(_) => store.create_topic(
            TOPIC,
            TopicConfig {
                overrides: LogOverrides {
                    // Appends do not fsync on their own: `Acks::Written` then means "in the page
                    // cache, readable"; the `Acks::Durable` sends below fsync anyway.
                    durability: Some(Durability::None),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(4)
            },
        )?,
    };
    let before = topic.end_offsets();
    println!(
        "store {}: topic '{TOPIC}' ends at {before:?}",
        dir.display()
    );

    // 1. Throughput: acknowledged when written (Kafka acks=1).
    let producer = store.producer(ProducerConfig {
        acks: Acks::Written,
        linger: Duration::from_millis(5),
        batch_bytes: 64 << 10,
        ..ProducerConfig::default()
    })?;
    let payload = vec![b'm'; 80];
    let started = Instant::now();
    let mut sampled = Vec::new();
    for i in 0..RECORDS {
        // Records with the same key always go to the same partition, in order.
        let record = Record::new(payload.clone()).with_key(format!("sensor-{:02}", i % 64));
        let handle = producer.send(TOPIC, record)?;
        if i % 25_000 == 0 {
            sampled.push((i, handle));
        }
    }
    let sent = started.elapsed();
    producer.flush()?; // everything sent so far is appended when this returns
    let flushed = started.elapsed();
    println!(
        "sent {RECORDS} records in {sent:?} ({:.0} records/s accepted), all written after {flushed:?} \
         ({:.0} records/s end to end), producer id {:?}",
        RECORDS as f64 / sent.as_secs_f64(),
        RECORDS as f64 / flushed.as_secs_f64(),
        producer.producer_id()
    );
    for (i, handle) in &sampled {
        let m = handle.wait()?;
        println!(
            "  record #{i:>6} (key sensor-{:02}) -> partition {} offset {}",
            i % 64,
            m.partition,
            m.offset
        );
    }
    producer.close()?;

    // 2. A few records that must survive a power cut before we go on (Kafka acks=all).
    let durable = store.producer(ProducerConfig {
        acks: Acks::Durable,
        ..ProducerConfig::default()
    })?;
    for i in 0..3 {
        let t0 = Instant::now();
        let handle = durable.send(
            TOPIC,
            Record::new(format!("checkpoint {i}")).with_key("checkpoints"),
        )?;
        let m = handle.wait()?; // returns once fsynced (here: after the 5 ms linger, too)
        let p = topic.partition(m.partition)?;
        println!(
            "durable record {i} -> partition {} offset {} in {:?}; partition durable up to {}",
            m.partition,
            m.offset,
            t0.elapsed(),
            p.durable_offset()
        );
        assert!(p.durable_offset() > m.offset);
    }
    durable.close()?;

    // 3. Read everything back.
    let mut per_partition = BTreeMap::new();
    let mut batches = 0;
    for (i, p) in topic.partitions().iter().enumerate() {
        let mut next = before[i];
        let mut records = 0u64;
        while next < p.end_offset() {
            let read = p.read(next, 1 << 20)?;
            batches += read.batches().len();
            records += read.records().count() as u64;
            next = read.next_offset();
        }
        per_partition.insert(i, records);
    }
    let total: u64 = per_partition.values().sum();
    println!(
        "read back {total} new records in {batches} batches ({:.0} records a batch): {:?} per partition",
        total as f64 / batches.max(1) as f64,
        per_partition
    );
    assert_eq!(total, RECORDS as u64 + 3);
    store.close()?;
    Ok(())
}
