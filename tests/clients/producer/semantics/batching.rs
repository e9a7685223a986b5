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
