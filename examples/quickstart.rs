//! Quickstart: a durable queue in a local directory.
//!
//! Appends a few records (one at a time and as a batch) to a partition in `./quickstart-data`,
//! reads them back, finds a record by timestamp, closes, reopens and shows the data survived.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Instant;

use topiclog::{Durability, Partition, PartitionConfig, Record};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart-data".to_string());
    let dir = std::path::Path::new(&dir).join("orders-0");
    let config = PartitionConfig {
        // Every append returns only after fdatasync; concurrent appenders share syncs.
        durability: Durability::Always,
        segment_bytes: 64 << 20,
        ..PartitionConfig::default()
    };

    let log = Partition::open_with(&dir, config.clone())?;
    let report = log.recovery_report();
    println!(
        "opened {} (clean shutdown last time: {}, records already there: {})",
        dir.display(),
        report.clean_shutdown,
        log.end_offset() - log.start_offset()
    );

    // One record at a time: each append is durable when it returns.
    let t0 = Instant::now();
    let first = log.append(Record::new("order created").with_key("order-1001"))?;
    log.append(Record::new("payment received").with_key("order-1001"))?;
    println!("appended 2 durable records at offsets {first}..={} in {:?}", first + 1, t0.elapsed());

    // A batch: one write, one checksum, one fsync for all of them.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let batch: Vec<Record> = (0..1000)
        .map(|i| {
            Record::new(format!("telemetry sample {i}"))
                .with_key(format!("sensor-{}", i % 8))
                .with_timestamp(now + i)
                .with_header("unit", Some("celsius"))
        })
        .collect();
    let t0 = Instant::now();
    let info = log.append_batch(&batch)?;
    println!(
        "appended a batch of {} records at offsets {}..={} in {:?}",
        batch.len(),
        info.base_offset,
        info.last_offset,
        t0.elapsed()
    );

    // Consume from where this run started.
    let mut next = first;
    let mut consumed = 0;
    while next < log.end_offset() {
        let read = log.read(next, 256 << 10)?;
        for record in read.records() {
            if consumed < 3 {
                println!(
                    "  offset {:>5}  key {:<12} value {:?}",
                    record.offset(),
                    String::from_utf8_lossy(record.key().map(|k| k.as_ref()).unwrap_or(b"-")),
                    String::from_utf8_lossy(record.value().map(|v| v.as_ref()).unwrap_or(b"<tombstone>")),
                );
            }
            consumed += 1;
        }
        next = read.next_offset();
    }
    println!("consumed {consumed} records (every batch CRC-verified), next offset {next}");

    // Find records by time, like Kafka's ListOffsets.
    if let Some(hit) = log.offset_for_time(now + 500)? {
        println!("first record at or after t+500ms: offset {} (timestamp {})", hit.offset, hit.timestamp);
    }

    log.close()?;
    drop(log);

    let log = Partition::open_with(&dir, config)?;
    println!(
        "reopened: clean shutdown {}, offsets {}..{} ({} segment(s)) — the data survived",
        log.recovery_report().clean_shutdown,
        log.start_offset(),
        log.end_offset(),
        log.segment_count()
    );
    log.close()?;
    Ok(())
}
