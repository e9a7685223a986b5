//! Quickstart: a durable queue embedded in a local directory.
//!
//! Opens a store in `./quickstart-data` (or the directory given as the first argument), makes sure
//! a 3-partition topic `orders` exists, produces order events with a batching producer (each send
//! acknowledged once fsynced), then consumes them in consumer group `billing`, committing as it
//! goes, and prints what happened. Run it again: the consumer resumes right after its last commit,
//! so it sees only the new run's events, while the log still holds everything.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::{Duration, Instant};

use topiclog::{
    Acks, AutoOffsetReset, ConsumerConfig, LogConfig, ProducerConfig, Record, Store, StoreOptions,
    TopicConfig,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart-data".to_string());
    let store = Store::open_with(
        &dir,
        StoreOptions {
            log: LogConfig {
                segment_bytes: 64 << 20,
                ..LogConfig::default()
            },
            ..StoreOptions::default()
        },
    )?;
    let orders = match store.topic("orders") {
        Ok(topic) => {
            println!(
                "opened {dir}: topic 'orders' already holds {:?} records per partition",
                topic.end_offsets()
            );
            topic
        }
        Err(_) => {
            println!("opened {dir}: creating topic 'orders' with 3 partitions");
            store.create_topic("orders", TopicConfig::with_partitions(3))?
        }
    };

    // Produce: records are batched per partition; a key always maps to the same partition
    // (Kafka's murmur2), so one order's events stay in order.
    let producer = store.producer(ProducerConfig {
        acks: Acks::Durable, // a handle completes once its record is fsynced
        ..ProducerConfig::default()
    })?;
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for order in 1000..1100 {
        for event in ["created", "paid", "shipped"] {
            let record = Record::new(event).with_key(format!("order-{order}"));
            handles.push(producer.send("orders", record)?);
        }
    }
    producer.flush()?;
    let first = handles[0].wait()?;
    let last = handles[handles.len() - 1].wait()?;
    println!(
        "produced {} durable events in {:?}; the first went to partition {} offset {}, the last to partition {} offset {}",
        handles.len(),
        t0.elapsed(),
        first.partition,
        first.offset,
        last.partition,
        last.offset
    );

    // Consume as group "billing": the group remembers where it got to.
    let mut consumer = store.consumer(ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest, // a brand-new group starts at the beginning
        enable_auto_commit: false,
        ..ConsumerConfig::group("billing")
    })?;
    consumer.subscribe(&["orders"])?;
    let (mut consumed, mut paid) = (0usize, 0usize);
    loop {
        let records = consumer.poll(Duration::from_millis(500))?;
        if records.is_empty() {
            break; // caught up
        }
        for r in &records {
            consumed += 1;
            if r.value().map(|v| v.as_ref()) == Some(&b"paid"[..]) {
                paid += 1;
            }
        }
        consumer.commit_sync()?; // durable before it returns
    }
    println!(
        "consumer group 'billing' read {consumed} events ({paid} payments) from partitions {:?} and committed",
        consumer.assignment().iter().map(|tp| tp.partition).collect::<Vec<_>>()
    );
    for lag in store.group_lag("billing")? {
        println!(
            "  {}: end offset {:?}, committed {:?}, lag {:?}",
            lag.partition,
            lag.end_offset,
            lag.committed.map(|c| c.offset),
            lag.lag
        );
    }

    println!(
        "the log keeps every event: {:?} records per partition",
        orders.end_offsets()
    );
    consumer.close()?;
    producer.close()?;
    store.close()?;
    println!("closed cleanly; run again to see the group resume after its last commit");
    Ok(())
}
