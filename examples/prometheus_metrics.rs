//! A store's figures in Prometheus's text format: `topiclog::metrics` (feature `metrics`) hands
//! the stats snapshots to whatever `metrics` recorder the application installed, here
//! `metrics-exporter-prometheus`'s. The example produces 1,000 orders to a 2-partition topic,
//! consumes 600 of them as group `billing` and commits, publishes the store, the producer and the
//! consumer, and prints the scrape text a Prometheus server would get: partition offsets, sizes,
//! appends, reads, syncs, the group's lag per partition, and the clients' counters.
//!
//! Stores into the directory given as the first argument (a new temporary directory if none).
//!
//! Run with `cargo run -p topiclog-examples --example prometheus_metrics --features prometheus
//! [DIR]` (the feature keeps the exporter out of the other examples' builds).
//!
//! A long-running application keeps a `MetricsPublisher` instead of the one-off calls below,
//! and serves `handle.render()` on its `/metrics` endpoint (or lets the exporter's own HTTP
//! listener, its default feature, do it):
//!
//! ```text
//! let _publisher = topiclog::metrics::MetricsPublisher::start(&store, Duration::from_secs(5))?;
//! ```

use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use topiclog::{AutoOffsetReset, ConsumerConfig, ProducerConfig, Record, Store, TopicConfig};

const TOPIC: &str = "orders";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The global recorder: every `topiclog::metrics` call from now on lands in it.
    let handle = PrometheusBuilder::new().install_recorder()?;

    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let store = Store::open(&dir)?;
    if store.topic(TOPIC).is_err() {
        store.create_topic(TOPIC, TopicConfig::with_partitions(2))?;
    }

    let producer = store.producer(ProducerConfig::default())?;
    for i in 0..1000 {
        let order = Record::new(format!("order {i}")).with_key(format!("customer-{}", i % 40));
        // The flush below waits for every send; the handles are not needed.
        drop(producer.send(TOPIC, order)?);
    }
    producer.flush()?;

    let mut consumer = store.consumer(ConsumerConfig {
        client_id: "billing-1".into(),
        auto_offset_reset: AutoOffsetReset::Earliest,
        max_poll_records: 100,
        ..ConsumerConfig::group("billing")
    })?;
    consumer.subscribe(&[TOPIC])?;
    let started = Instant::now();
    let mut consumed = 0;
    while consumed < 600 && started.elapsed() < Duration::from_secs(10) {
        consumed += consumer.poll(Duration::from_millis(500))?.len();
    }
    consumer.commit_sync()?;

    topiclog::metrics::describe();
    topiclog::metrics::publish_store(&store)?;
    topiclog::metrics::publish_producer(&producer, "order-writer");
    topiclog::metrics::publish_consumer(&consumer);

    print!("{}", handle.render());
    drop(consumer);
    drop(producer);
    store.close()?;
    Ok(())
}
