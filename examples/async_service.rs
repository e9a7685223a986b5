//! topiclog in an async (tokio) service: one task produces, a consumer group of three *tasks* (not
//! threads) consumes and commits, and the service shuts down gracefully on ctrl-c or after a few
//! seconds: the producer stops and flushes, each consumer is woken out of its pending `recv`
//! ([`ConsumerWaker::wakeup`]), commits and leaves the group, and the run ends with what each
//! member consumed and the group's lag.
//!
//! Nothing here blocks the runtime: `send_async` awaits buffer space, `recv` awaits records (woken
//! by the appends, no polling), `commit_async` runs its `fdatasync` on topiclog's own I/O threads.
//!
//! Stores into the directory given as the first argument (a new temporary directory if none).
//!
//! Run with `cargo run -p topiclog-examples --example async_service --features tokio [DIR]`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use topiclog::{
    Acks, AutoOffsetReset, Consumer, ConsumerConfig, ConsumerWaker, Error, ProducerConfig, Record,
    Store, TopicConfig,
};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const RUN_FOR: Duration = Duration::from_secs(3);

/// One member of the group: consumes until woken for shutdown, committing each batch.
async fn member(name: String, mut consumer: Consumer, started: Instant) -> Result<u64, Error> {
    consumer.subscribe(&[TOPIC])?;
    let mut consumed = 0u64;
    let mut last_assignment = Vec::new();
    loop {
        match consumer.recv().await {
            Ok(records) => {
                consumed += records.len() as u64;
                // Process the records here; then commit what was processed.
                consumer.commit_async().await?;
            }
            // Shutdown: the waker interrupted the pending recv; no record was lost.
            Err(Error::Wakeup) => break,
            Err(e) => return Err(e),
        }
        let mut assignment: Vec<u32> = consumer
            .assignment()
            .iter()
            .map(|tp| tp.partition)
            .collect();
        assignment.sort_unstable();
        if assignment != last_assignment {
            println!(
                "[{:>6.3}s] {name}: owns partitions {assignment:?}",
                started.elapsed().as_secs_f64()
            );
            last_assignment = assignment;
        }
    }
    // Commits (auto-commit) and leaves the group, handing its partitions over.
    consumer.close()?;
    println!(
        "[{:>6.3}s] {name}: left the group after {consumed} records",
        started.elapsed().as_secs_f64()
    );
    Ok(consumed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("store")
        }
    };
    let started = Instant::now();
    let store = Store::open(&dir)?;
    if store.topic(TOPIC).is_err() {
        store.create_topic(TOPIC, TopicConfig::with_partitions(6))?;
    }
    println!(
        "store in {}, topic '{TOPIC}' with 6 partitions",
        dir.display()
    );
    println!("one runtime thread: a producer task and three consumer tasks share it");

    // The consumer group: three tasks.
    let mut wakers: Vec<ConsumerWaker> = Vec::new();
    let mut members = Vec::new();
    for i in 0..3 {
        let consumer = store.consumer(ConsumerConfig {
            client_id: format!("consumer-{i}"),
            auto_offset_reset: AutoOffsetReset::Earliest,
            ..ConsumerConfig::group(GROUP)
        })?;
        wakers.push(consumer.waker());
        members.push(tokio::spawn(member(
            format!("consumer-{i}"),
            consumer,
            started,
        )));
    }

    // The producer task: keyed orders, as fast as the buffer allows, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = store.producer(ProducerConfig {
        acks: Acks::Written,
        linger: Duration::from_millis(5),
        ..ProducerConfig::default()
    })?;
    let produce = {
        let stop = stop.clone();
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let record = Record::new(format!("order {sent}"))
                    .with_key(format!("customer-{}", sent % 97));
                // Awaits buffer space when the buffer is full; the handle is a future of the
                // record's offset, not awaited here (records pipeline).
                drop(producer.send_async(TOPIC, record).await?);
                sent += 1;
                if sent.is_multiple_of(1_000) {
                    // Let the consumers run: a real service produces as requests arrive.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            producer.flush()?;
            Ok::<u64, Error>(sent)
        })
    };

    // Run until ctrl-c or the time is up.
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("--- ctrl-c: shutting down ---"),
        _ = tokio::time::sleep(RUN_FOR) => println!(
            "[{:>6.3}s] --- time is up: shutting down ---",
            started.elapsed().as_secs_f64()
        ),
    }
    stop.store(true, Ordering::Relaxed);
    let produced = produce.await??;
    println!("produced {produced} records");
    // Let the members drain what is left, then wake them out of their pending recv.
    let drained = Instant::now();
    while store.group_lag(GROUP)?.iter().any(|l| l.lag != Some(0))
        && drained.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in &wakers {
        w.wakeup();
    }
    let mut consumed = 0;
    for (i, m) in members.into_iter().enumerate() {
        let n = m.await??;
        println!("consumer-{i} consumed {n} records");
        consumed += n;
    }
    println!(
        "produced {produced}, consumed {consumed}{}",
        if consumed == produced {
            " (each record once)"
        } else {
            " (MISMATCH)"
        }
    );
    println!("group '{GROUP}' lag:");
    for l in store.group_lag(GROUP)? {
        println!(
            "  {}-{}: end offset {:>6}, committed {:>6}, lag {}",
            l.partition.topic,
            l.partition.partition,
            l.end_offset.unwrap_or(0),
            l.committed.map_or(0, |c| c.offset),
            l.lag.unwrap_or(0)
        );
    }
    producer.close()?;
    store.close()?;
    println!("done in {:?}", started.elapsed());
    if consumed != produced {
        return Err("records lost or repeated".into());
    }
    Ok(())
}
