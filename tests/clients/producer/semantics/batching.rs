//! Batching on disk and linger (on virtual time).

use super::*;

#[test]
fn batching_writes_fewer_larger_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .create_topic("batched", TopicConfig::with_partitions(1))
        .unwrap();
    store
        .create_topic("single", TopicConfig::with_partitions(1))
        .unwrap();
    const N: usize = 2000;
    let batched = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 16 << 10,
            ..config(Acks::Written)
        })
        .unwrap();
    // batch_bytes 1: every record fills its batch.
    let single = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 1,
            ..config(Acks::Written)
        })
        .unwrap();
    for (producer, topic) in [(&batched, "batched"), (&single, "single")] {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                producer
                    .send(topic, Record::new(format!("{i:0100}")))
                    .unwrap()
            })
            .collect();
        producer.flush().unwrap();
        wait_all(&handles);
        // Offsets are dense and in send order.
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(h.wait().unwrap().offset, i as u64);
        }
    }
    let pb = store.topic("batched").unwrap().partition(0).unwrap();
    let ps = store.topic("single").unwrap().partition(0).unwrap();
    assert_eq!(values(&pb).len(), N);
    assert_eq!(values(&ps).len(), N);
    let (nb, ns) = (batch_count(&pb), batch_count(&ps));
    assert_eq!(ns, N, "one batch per record with batch_bytes = 1");
    // 116 estimated bytes a record, 16 KiB a batch: ~141 records a batch.
    assert!(nb <= N / 100, "{N} records in {nb} batches");
    assert!(
        nb >= N * 116 / (16 << 10),
        "batches respect batch_bytes: {nb}"
    );
}

#[test]
fn a_lingering_record_is_not_appended_before_the_linger_or_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(1_700_000_000_000);
    let store = store_on(dir.path(), &clock);
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let p = t.partition(0).unwrap();

    // An hour of linger: nothing happens until flush, however slow the machine.
    let patient = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let h = patient.send("t", Record::new("late")).unwrap();
    let wait = Duration::from_millis(150);
    assert!(times_out(&clock, wait, || h.wait_timeout(wait)).0.is_none());
    assert!(!h.is_done());
    assert_eq!(p.end_offset(), 0);
    patient.flush().unwrap();
    assert!(h.is_done(), "flush waits for the send");
    assert_eq!(h.wait().unwrap().offset, 0);
    assert_eq!(p.end_offset(), 1);

    // 200 ms of linger, no flush: appended on its own, never before the linger passed.
    let lingering = store
        .producer(ProducerConfig {
            linger: Duration::from_millis(200),
            ..config(Acks::Written)
        })
        .unwrap();
    let h = lingering.send("t", Record::new("lingered")).unwrap();
    let almost = Duration::from_millis(199);
    assert!(
        times_out(&clock, almost, || h.wait_timeout(almost))
            .0
            .is_none(),
        "appended before the 200 ms linger"
    );
    clock.advance(Duration::from_millis(1));
    let m = h
        .wait_timeout(Duration::from_secs(10))
        .expect("appended once the linger passed")
        .unwrap();
    assert_eq!(m.offset, 1);

    // A full batch does not wait for the linger.
    let eager = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 1024,
            ..config(Acks::Written)
        })
        .unwrap();
    let handles: Vec<_> = (0..9)
        .map(|_| eager.send("t", Record::new(vec![b'x'; 100])).unwrap())
        .collect();
    // Nine 100-byte records overflow a 1 KiB batch: the first ones are sealed and appended
    // without waiting for the hour-long linger, the last waits in the open batch.
    let m = handles[0]
        .wait_timeout(Duration::from_secs(10))
        .expect("a full batch is appended without waiting for the linger")
        .unwrap();
    assert_eq!(m.offset, 2);
    assert!(
        !handles[8].is_done(),
        "the last record waits for the linger"
    );
    eager.flush().unwrap();
    assert_eq!(handles[8].wait().unwrap().offset, 10);
}

/// Records are encoded at `send`: one sent without a timestamp carries the time its batch got
/// its first such record (never later than its own send), one with a timestamp keeps it, and the
/// handles report exactly what is stored.
#[test]
fn timestamps_are_given_at_send_and_handles_report_what_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000_000;
    let clock = TestClock::new(t0);
    let store = store_on(dir.path(), &clock);
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let first = producer.send("t", Record::new("first")).unwrap();
    clock.advance(Duration::from_millis(10));
    let second = producer.send("t", Record::new("second")).unwrap();
    let own = producer
        .send("t", Record::new("own").with_timestamp(5))
        .unwrap();
    clock.advance(Duration::from_millis(10));
    producer.flush().unwrap();
    // A batch started after the flush takes the clock of its first record.
    clock.advance(Duration::from_millis(10));
    let later = producer.send("t", Record::new("later")).unwrap();
    clock.advance(Duration::from_millis(10));
    producer.flush().unwrap();
    let expected = [
        (&first, "first", t0),
        (&second, "second", t0),
        (&own, "own", 5),
        (&later, "later", t0 + 30),
    ];
    let p = t.partition(0).unwrap();
    for (i, (h, value, ts)) in expected.into_iter().enumerate() {
        let m = h.wait().unwrap();
        assert_eq!(m.offset, i as u64, "{value}");
        assert_eq!(m.timestamp, ts, "{value}: the handle's timestamp");
        let read = p.read(m.offset, 1).unwrap();
        let r = read.records().find(|r| r.offset() == m.offset).unwrap();
        assert_eq!(r.value().unwrap().as_ref(), value.as_bytes());
        assert_eq!(r.timestamp(), ts, "{value}: the stored timestamp");
    }
}

/// A change of the topic's config or partition count while a batch is open keeps the batch: the
/// records sent after the change are stored after the ones sent before, in send order, with the
/// offsets their handles report.
#[test]
fn a_topic_change_with_a_batch_open_keeps_send_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let mut sent = Vec::new();
    let mut send = |label: &str, n: u32| {
        for i in 0..n {
            let v = format!("{label}-{i}");
            let h = producer
                .send_to("t", i % 2, Record::new(v.clone()))
                .unwrap();
            sent.push((v, h));
        }
    };
    send("before", 10);
    store
        .alter_topic_config("t", |c| c.overrides.max_batch_bytes = Some(512 << 10))
        .unwrap();
    send("after-config", 10);
    store.add_partitions("t", 3).unwrap();
    send("after-growth", 10);
    assert_eq!(t.end_offsets(), vec![0, 0, 0], "all still lingering");
    producer.flush().unwrap();
    assert_stored_in_send_order(&t, &sent);
    // The open batch went on filling across the changes: one batch per partition.
    for p in 0..2 {
        assert_eq!(batch_count(&t.partition(p).unwrap()), 1, "partition {p}");
    }
}

/// Many threads sending to one partition at once: every record is stored once, each thread's
/// records in its send order, at the offsets the handles report.
#[test]
fn concurrent_senders_to_one_partition_keep_each_threads_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: Duration::from_millis(1),
            batch_bytes: 2048,
            ..config(Acks::Written)
        })
        .unwrap();
    const THREADS: usize = 4;
    const EACH: usize = 2000;
    let handles: Vec<Vec<(String, SendHandle)>> = std::thread::scope(|s| {
        let joins: Vec<_> = (0..THREADS)
            .map(|th| {
                let producer = producer.clone();
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let v = format!("{th}-{i:05}");
                            let h = producer.send("t", Record::new(v.clone())).unwrap();
                            (v, h)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    producer.flush().unwrap();
    let stored = values(&t.partition(0).unwrap());
    assert_eq!(stored.len(), THREADS * EACH);
    for per_thread in &handles {
        let mut last = None;
        for (v, h) in per_thread {
            let m = h.wait().unwrap();
            assert_eq!(stored[m.offset as usize], (m.offset, v.clone()));
            assert!(
                last < Some(m.offset),
                "{v}: stored in its thread's send order"
            );
            last = Some(m.offset);
        }
    }
}
