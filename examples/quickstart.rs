//! Quickstart: a durable, partitioned queue in a local directory.
//!
//! Opens a store in `./quickstart-data` (or the directory given as the first argument), creates a
//! topic with 3 partitions, sends keyed and unkeyed records, consumes them back partition by
//! partition, finds a record by timestamp, closes, reopens and shows that the data survived.
//!
//! Run with `cargo run --release --example quickstart`. Run it twice: the second run finds the
//! first run's records.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use topiclog::{Durability, Record, Store, StoreOptions, TopicConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart-data".to_string());
    let options = StoreOptions {
        // Every send returns only after fdatasync; concurrent senders share syncs.
        durability: Durability::Always,
        segment_bytes: 64 << 20,
        ..StoreOptions::default()
    };

    let store = Store::open_with(&dir, options.clone())?;
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
    let start_offsets = orders.end_offsets();

    // Keyed records: the key picks the partition (Kafka's murmur2), so one order stays in order.
    let t0 = Instant::now();
    for (key, event) in [
        ("order-1001", "created"),
        ("order-1002", "created"),
        ("order-1001", "paid"),
        ("order-1001", "shipped"),
    ] {
        let meta = orders.send(Record::new(event).with_key(key))?;
        println!(
            "  sent {key}/{event:<8} -> partition {} offset {}",
            meta.partition, meta.offset
        );
    }
    println!("4 durable keyed sends took {:?}", t0.elapsed());

    // Unkeyed records in one call: grouped per partition into batches (one write + one fsync each).
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let telemetry: Vec<Record> = (0..3000)
        .map(|i| {
            Record::new(format!(
                "temperature sample {i}: {:.1}",
                20.0 + (i % 50) as f64 / 10.0
            ))
            .with_timestamp(now + i)
            .with_header("unit", Some("celsius"))
        })
        .collect();
    let t0 = Instant::now();
    let metas = orders.send_batch(&telemetry)?;
    let mut per_partition = [0usize; 3];
    for m in &metas {
        per_partition[m.partition as usize] += 1;
    }
    println!(
        "sent {} unkeyed records in {:?}, spread over partitions as {per_partition:?}",
        metas.len(),
        t0.elapsed()
    );

    // Consume every partition from where this run started.
    for (p, from) in start_offsets.iter().enumerate() {
        let partition = orders.partition(p as u32)?;
        let (mut next, mut count, mut first) = (*from, 0, None);
        while next < partition.end_offset() {
            let batch = partition.read(next, 256 << 10)?; // whole batches, CRC-verified
            for record in batch.records() {
                if record.key().is_some() && first.is_none() {
                    first = Some(format!(
                        "{}={}",
                        String::from_utf8_lossy(record.key().map_or(&b""[..], |k| k.as_ref())),
                        String::from_utf8_lossy(record.value().map_or(&b""[..], |v| v.as_ref()))
                    ));
                }
                count += 1;
            }
            next = batch.next_offset();
        }
        println!(
            "partition {p}: consumed {count} records (offsets {from}..{next}){}",
            first
                .map(|f| format!(", first keyed: {f}"))
                .unwrap_or_default()
        );
    }

    // Find by time, like Kafka's ListOffsets.
    let target = now + 1500;
    for p in 0..orders.partition_count() {
        if let Some(hit) = orders.partition(p)?.offset_for_time(target)? {
            println!(
                "partition {p}: first record at or after t+1500ms is offset {} (timestamp {})",
                hit.offset, hit.timestamp
            );
        }
    }

    store.close()?;
    drop((orders, store));

    let store = Store::open_with(&dir, options)?;
    let orders = store.topic("orders")?;
    println!(
        "reopened after a clean close: topics {:?}, end offsets {:?} — the data survived",
        store.topics(),
        orders.end_offsets()
    );
    store.close()?;
    Ok(())
}
