//! A consumer group sharing a topic: three consumers in threads split a 6-partition topic while a
//! producer keeps sending; after a while one consumer leaves and the other two take over its
//! partitions. Each consumer prints its assignment as the group rebalances (a
//! [`RebalanceListener`]), commits after every poll, and the run ends with the group's lag per
//! partition.
//!
//! Stores into the directory given as the first argument (a new temporary directory if none).
//! Ends by itself after about three seconds.
//!
//! Run with `cargo run --example consumer_group [DIR]`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use topiclog::{
    Acks, AutoOffsetReset, Consumer, ConsumerConfig, ProducerConfig, RebalanceListener, Record,
    Store, TopicConfig, TopicPartition,
};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

/// Prints what the group gives and takes.
struct Announce {
    name: String,
    started: Instant,
}

impl Announce {
    fn say(&self, what: &str, partitions: &[TopicPartition], owns: &[TopicPartition]) {
        println!(
            "[{:>6.3}s] {}: {what} {}; owns {}",
            self.started.elapsed().as_secs_f64(),
            self.name,
            list(partitions),
            list(owns)
        );
    }
}

impl RebalanceListener for Announce {
    fn on_revoked(&mut self, consumer: &Consumer, partitions: &[TopicPartition]) {
        // We commit after every poll, so nothing is left to commit here. The consumer still
        // owns `partitions` while this runs.
        let keeps: Vec<TopicPartition> = consumer
            .assignment()
            .into_iter()
            .filter(|tp| !partitions.contains(tp))
            .collect();
        self.say("gives up", partitions, &keeps);
    }

    fn on_assigned(&mut self, consumer: &Consumer, partitions: &[TopicPartition]) {
        self.say("gets", partitions, &consumer.assignment());
    }
}

fn list(partitions: &[TopicPartition]) -> String {
    let numbers: Vec<String> = partitions
        .iter()
        .map(|tp| tp.partition.to_string())
        .collect();
    format!("[{}]", numbers.join(", "))
}

/// Whether the group has committed everything in every partition of the topic.
fn caught_up(store: &Store, partitions: u32) -> topiclog::Result<bool> {
    let lags = store.group_lag(GROUP)?;
    Ok(lags.len() == partitions as usize && lags.iter().all(|l| l.lag == Some(0)))
}

/// Consume until `leave` is set (or, once everything is written, until the group has consumed
/// it all), committing after every poll. Returns the records consumed.
fn consume(
    store: Store,
    name: String,
    started: Instant,
    leave: Arc<AtomicBool>,
    written: Arc<AtomicBool>,
) -> topiclog::Result<u64> {
    let mut consumer = store.consumer(ConsumerConfig {
        client_id: name.clone(),
        auto_offset_reset: AutoOffsetReset::Earliest,
        enable_auto_commit: false,
        ..ConsumerConfig::group(GROUP)
    })?;
    consumer.subscribe_with(
        &[TOPIC],
        Some(Box::new(Announce {
            name: name.clone(),
            started,
        })),
    )?;
    let mut consumed = 0u64;
    loop {
        if leave.load(Ordering::SeqCst) {
            println!(
                "[{:>6.3}s] {name}: leaving the group after {consumed} records",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        let records = consumer.poll(Duration::from_millis(100))?;
        if records.is_empty() && written.load(Ordering::SeqCst) && caught_up(&store, 6)? {
            break; // the producer has stopped and the group consumed everything
        }
        consumed += records.len() as u64;
        // Process, then commit: a partition's next owner resumes right after what we finished.
        consumer.commit_sync()?;
    }
    consumer.close()?; // leaves the group: the others rebalance
    Ok(consumed)
}

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
        Err(_) => store.create_topic(TOPIC, TopicConfig::with_partitions(6))?,
    };
    println!(
        "store {}: topic '{TOPIC}' with {} partitions, group '{GROUP}'",
        dir.display(),
        topic.partition_count()
    );
    let started = Instant::now();
    let producing = Arc::new(AtomicBool::new(true));
    let produced = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicBool::new(false));

    // The producer: a few hundred keyed records every 10 ms until told to stop.
    let producer = {
        let store = store.clone();
        let producing = producing.clone();
        let produced = produced.clone();
        thread::spawn(move || -> topiclog::Result<()> {
            let producer = store.producer(ProducerConfig {
                acks: Acks::Written,
                linger: Duration::from_millis(2),
                ..ProducerConfig::default()
            })?;
            let mut order = 0u64;
            let mut handles = Vec::new();
            while producing.load(Ordering::SeqCst) {
                for _ in 0..200 {
                    let record = Record::new(format!("order {order} paid"))
                        .with_key(format!("customer-{}", order % 97));
                    handles.push(producer.send(TOPIC, record)?);
                    order += 1;
                }
                // A send reports its error only through its handle.
                for handle in handles.drain(..) {
                    handle.wait()?;
                }
                produced.store(order, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(10));
            }
            producer.close() // flushes what is still buffered
        })
    };

    let leave: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let consumers: Vec<_> = (0..3)
        .map(|i| {
            let (store, leave, written) = (store.clone(), leave[i].clone(), written.clone());
            thread::spawn(move || consume(store, format!("consumer-{i}"), started, leave, written))
        })
        .collect();

    thread::sleep(Duration::from_millis(1500));
    println!(
        "[{:>6.3}s] --- consumer-2 leaves ---",
        started.elapsed().as_secs_f64()
    );
    leave[2].store(true, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(1500));
    println!(
        "[{:>6.3}s] --- the producer stops ---",
        started.elapsed().as_secs_f64()
    );
    producing.store(false, Ordering::SeqCst);
    producer.join().expect("producer thread")?;
    written.store(true, Ordering::SeqCst);

    let mut consumed = 0;
    for (i, c) in consumers.into_iter().enumerate() {
        let n = c.join().expect("consumer thread")?;
        println!("consumer-{i} consumed {n} records");
        consumed += n;
    }
    println!(
        "produced {}, consumed {consumed} (each record once: every poll was committed before a \
         partition moved)",
        produced.load(Ordering::SeqCst)
    );
    println!("group '{GROUP}' lag (kafka-consumer-groups --describe):");
    for lag in store.group_lag(GROUP)? {
        println!(
            "  {}: end offset {:>6}, committed {:>6}, lag {}, owner {}",
            lag.partition,
            lag.end_offset.map_or("-".into(), |o| o.to_string()),
            lag.committed.map_or("-".into(), |c| c.offset.to_string()),
            lag.lag.map_or("-".into(), |l| l.to_string()),
            lag.owner.as_deref().unwrap_or("none")
        );
    }
    println!("done in {:?}", started.elapsed());
    store.close()?;
    Ok(())
}
