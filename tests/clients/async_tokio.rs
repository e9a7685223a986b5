//! The async API under tokio, on a current-thread runtime (where a blocked thread would stall
//! every task) and on a multi-thread one: tailing a partition from a task, a consumer group of
//! three tasks across a rebalance (no record lost or delivered twice), cancelled polls, awaiting
//! buffer space, async commits, and the record stream.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use topiclog::{
    Acks, AutoOffsetReset, Consumer, ConsumerConfig, Error, Partition, ProducerConfig, Record,
    Store, TopicConfig, TopicPartition,
};

const LONG: Duration = Duration::from_secs(60);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

fn group_config(group: &str) -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest,
        max_poll_records: 50,
        ..ConsumerConfig::group(group)
    }
}

/// A task that counts its turns: if anything blocked the executor's only thread, it would stop
/// counting.
fn ticker(stop: Arc<AtomicBool>) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let handle = tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            t.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (ticks, handle)
}

#[test]
fn a_task_tails_a_partition_woken_by_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path()).unwrap();
    current_thread().block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let (ticks, ticker) = ticker(stop.clone());
        let writer = log.clone();
        let appender = std::thread::spawn(move || {
            for i in 0..20 {
                std::thread::sleep(Duration::from_millis(2));
                writer.append(Record::new(format!("r{i}"))).unwrap();
            }
        });
        // Each record is awaited before it exists, on the runtime's only thread.
        for offset in 0..20 {
            assert!(log.wait_for_async(offset, LONG).await, "offset {offset}");
        }
        appender.join().unwrap();
        // Nothing more comes: the wait ends at its deadline, by the timer.
        let started = Instant::now();
        assert!(!log.wait_for_async(20, Duration::from_millis(50)).await);
        assert!(started.elapsed() >= Duration::from_millis(50));
        stop.store(true, Ordering::SeqCst);
        ticker.await.unwrap();
        assert!(
            ticks.load(Ordering::SeqCst) > 20,
            "the executor kept running other tasks"
        );
    });
    // A close ends a pending wait with `false`.
    let waiter = log.clone();
    let rt = multi_thread();
    let pending = rt.spawn(async move { waiter.wait_for_async(1_000, LONG).await });
    std::thread::sleep(Duration::from_millis(20));
    log.close().unwrap();
    assert!(!rt.block_on(pending).unwrap());
}

/// What the members of a group consumed: every (partition, offset) with how often.
type Seen = Arc<Mutex<BTreeMap<(u32, u64), u32>>>;

/// A member task: consumes until `total` records were seen by the group (or it is told to
/// leave), recording each, committing each poll asynchronously.
async fn member(
    mut consumer: Consumer,
    seen: Seen,
    total: u64,
    leave_after: Option<u64>,
) -> Result<u64, Error> {
    consumer.subscribe(&["orders"])?;
    let mut mine = 0u64;
    loop {
        let done = seen.lock().len() as u64 >= total;
        if done || leave_after.is_some_and(|n| mine >= n) {
            break;
        }
        let records = consumer.poll_async(Duration::from_millis(20)).await?;
        {
            let mut seen = seen.lock();
            for r in records.iter() {
                *seen.entry((r.partition(), r.offset())).or_default() += 1;
            }
        }
        mine += records.len() as u64;
        if !records.is_empty() {
            consumer.commit_async().await?;
        }
    }
    // Leaving commits (auto-commit) and hands the partitions over.
    consumer.close()?;
    Ok(mine)
}

fn run_group(rt: tokio::runtime::Runtime, dir: &Path) {
    const TOTAL: u64 = 3_000;
    let store = Store::open(dir).unwrap();
    let topic = store
        .create_topic("orders", TopicConfig::with_partitions(6))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            acks: Acks::Written,
            linger: Duration::from_millis(1),
            ..ProducerConfig::default()
        })
        .unwrap();
    let seen: Seen = Arc::default();
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let (ticks, ticker) = ticker(stop.clone());
        let produce = {
            let producer = producer.clone();
            tokio::spawn(async move {
                for i in 0..TOTAL {
                    let record = Record::new(format!("order {i}")).with_key(format!("k{i}"));
                    let handle = producer.send_async("orders", record).await?;
                    if i % 500 == 499 {
                        // Now and then wait for an append, and let the consumers run.
                        handle.await?;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                producer.flush()?;
                Ok::<(), Error>(())
            })
        };
        let members: Vec<_> = (0..3)
            .map(|i| {
                let consumer = store.consumer(group_config("billing")).unwrap();
                // The third member leaves early: a rebalance while records flow.
                let leave = (i == 2).then_some(400);
                tokio::spawn(member(consumer, seen.clone(), TOTAL, leave))
            })
            .collect();
        produce.await.unwrap().unwrap();
        let mut per_member = Vec::new();
        for m in members {
            per_member.push(m.await.unwrap().unwrap());
        }
        stop.store(true, Ordering::SeqCst);
        ticker.await.unwrap();
        assert!(ticks.load(Ordering::SeqCst) > 0);
        assert_eq!(per_member.iter().sum::<u64>(), TOTAL, "{per_member:?}");
        assert!(per_member[2] >= 400, "{per_member:?}");
    });
    // Every record once: nothing lost, nothing delivered twice across the rebalance.
    let seen = seen.lock();
    assert_eq!(seen.len() as u64, TOTAL);
    assert!(seen.values().all(|&n| n == 1), "a record came twice");
    let ends = topic.end_offsets();
    for (p, end) in ends.iter().enumerate() {
        let got: Vec<u64> = seen
            .keys()
            .filter(|(q, _)| *q == p as u32)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(got, (0..*end).collect::<Vec<_>>(), "partition {p}");
    }
    // And the group committed all of it.
    let lag = store.group_lag("billing").unwrap();
    assert_eq!(lag.len(), 6);
    assert!(lag.iter().all(|l| l.lag == Some(0)), "{lag:?}");
}

#[test]
fn a_group_of_three_tasks_on_a_current_thread_runtime_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    run_group(current_thread(), dir.path());
}

#[test]
fn a_group_of_three_tasks_on_a_multi_thread_runtime_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    run_group(multi_thread(), dir.path());
}

#[test]
fn a_cancelled_poll_loses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("orders", TopicConfig::with_partitions(2))
        .unwrap();
    let mut consumer = store
        .consumer(ConsumerConfig {
            max_poll_records: 7,
            ..group_config("g")
        })
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    current_thread().block_on(async {
        // A poll cancelled while it waits (nothing to read yet).
        let r = tokio::time::timeout(Duration::from_millis(30), consumer.recv()).await;
        assert!(r.is_err(), "timed out, cancelling the pending poll");
        // Records arrive while polls keep being cancelled at random points.
        let writer = topic.clone();
        let appender = std::thread::spawn(move || {
            for i in 0..500u32 {
                writer.send(Record::new(i.to_be_bytes().to_vec())).unwrap();
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let mut cancelled = 0;
        while got.values().map(Vec::len).sum::<usize>() < 500 {
            tokio::select! {
                r = consumer.recv() => {
                    for rec in r.unwrap().iter() {
                        got.entry(rec.partition()).or_default().push(rec.offset());
                    }
                }
                _ = tokio::task::yield_now() => cancelled += 1,
            }
        }
        appender.join().unwrap();
        assert!(cancelled > 0, "some polls were cancelled");
        // Each partition's records in order, each once.
        let ends = topic.end_offsets();
        for (p, offsets) in &got {
            assert_eq!(*offsets, (0..ends[*p as usize]).collect::<Vec<_>>());
        }
        // Nothing was skipped: the positions are the log ends.
        for p in 0..2 {
            let tp = TopicPartition::new("orders", p);
            assert_eq!(consumer.position(&tp).unwrap(), ends[p as usize]);
        }
    });
}

#[test]
fn a_wakeup_ends_a_pending_recv_and_the_consumer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("orders", TopicConfig::with_partitions(1))
        .unwrap();
    let mut consumer = store.consumer(group_config("g")).unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let waker = consumer.waker();
    let rt = multi_thread();
    rt.block_on(async {
        let wake = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            waker.wakeup();
        });
        assert!(matches!(consumer.recv().await, Err(Error::Wakeup)));
        wake.await.unwrap();
        topic.send(Record::new("after")).unwrap();
        let records = consumer.recv().await.unwrap();
        assert_eq!(
            records.iter().next().unwrap().value().unwrap(),
            &b"after"[..]
        );
    });
}

#[test]
fn send_async_awaits_buffer_space_without_blocking_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    const BUFFER: usize = 1000;
    // Batches as large as the buffer and an hour's linger: nothing frees space until a flush.
    let producer = store
        .producer(ProducerConfig {
            linger: Duration::from_secs(3600),
            batch_bytes: BUFFER,
            buffer_bytes: BUFFER,
            max_block: Duration::from_millis(150),
            acks: Acks::Written,
            ..ProducerConfig::default()
        })
        .unwrap();
    let record = |i: usize| Record::new(format!("{i:0100}"));
    // Fill the buffer (the send that finds it full blocks for max_block and fails).
    let mut handles = Vec::new();
    while let Ok(h) = producer.send("t", record(handles.len())) {
        handles.push(h);
        assert!(handles.len() < BUFFER / 100, "never full");
    }
    current_thread().block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let (ticks, ticker) = ticker(stop.clone());
        // Full: the send waits max_block (the ticker runs meanwhile), then fails.
        let started = Instant::now();
        let err = producer
            .send_async("t", record(handles.len()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::BufferFull { limit: BUFFER, .. }),
            "{err:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(
            ticks.load(Ordering::SeqCst) >= 10,
            "the executor was blocked"
        );
        // Again, and a flush on another thread frees the space: the send goes through.
        let flusher = {
            let producer = producer.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                producer.flush().unwrap();
            })
        };
        let h = producer
            .send_async("t", record(handles.len()))
            .await
            .unwrap();
        flusher.join().unwrap();
        producer.flush().unwrap();
        let m = h.await.unwrap();
        assert_eq!(m.offset, handles.len() as u64);
        stop.store(true, Ordering::SeqCst);
        ticker.await.unwrap();
    });
    assert_eq!(topic.end_offsets()[0], producer.stats().records_sent);
}

#[test]
fn commit_async_is_durable_and_needs_no_borrow_of_the_consumer() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let topic = store
            .create_topic("orders", TopicConfig::with_partitions(1))
            .unwrap();
        for i in 0..10 {
            topic.send(Record::new(format!("o{i}"))).unwrap();
        }
        let mut consumer = store
            .consumer(ConsumerConfig {
                enable_auto_commit: false,
                max_poll_records: 4,
                ..group_config("g")
            })
            .unwrap();
        consumer.subscribe(&["orders"]).unwrap();
        multi_thread().block_on(async {
            assert_eq!(consumer.recv().await.unwrap().len(), 4);
            // Awaited on another task while this one polls on.
            let commit = tokio::spawn(consumer.commit_async());
            assert_eq!(consumer.recv().await.unwrap().len(), 4);
            commit.await.unwrap().unwrap();
        });
        assert_eq!(consumer.stats().commits, 1);
        // Dropped without a close: only the async commit counts.
        std::mem::forget(consumer);
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let lag = store.group_lag("g").unwrap();
    assert_eq!(
        (lag[0].committed.as_ref().map(|c| c.offset), lag[0].lag),
        (Some(4), Some(6)),
        "{lag:?}"
    );
}

#[cfg(feature = "stream")]
#[test]
fn the_record_stream_yields_polled_batches_and_ends_at_close() {
    use futures_core::Stream;
    use std::pin::Pin;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topic = store
        .create_topic("orders", TopicConfig::with_partitions(1))
        .unwrap();
    for i in 0..25 {
        topic.send(Record::new(format!("o{i}"))).unwrap();
    }
    let mut consumer = store
        .consumer(ConsumerConfig {
            max_poll_records: 10,
            ..group_config("g")
        })
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let closer = store.clone();
    current_thread().block_on(async {
        let mut stream = consumer.stream();
        async fn next(
            stream: &mut topiclog::RecordStream<'_>,
        ) -> Option<topiclog::Result<topiclog::ConsumerRecords>> {
            std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
        }
        let mut sizes = Vec::new();
        let mut offsets = Vec::new();
        while offsets.len() < 25 {
            let batch = next(&mut stream).await.unwrap().unwrap();
            sizes.push(batch.len());
            offsets.extend(batch.iter().map(|r| r.offset()));
        }
        assert_eq!(sizes, vec![10, 10, 5]);
        assert_eq!(offsets, (0..25).collect::<Vec<_>>());
        // A close ends the stream.
        let close = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            closer.close().unwrap();
        });
        assert!(next(&mut stream).await.is_none());
        close.await.unwrap();
    });
}
