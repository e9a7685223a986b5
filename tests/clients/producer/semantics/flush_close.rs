//! Flush, close and drop: everything sent before them is stored, in send order.

use super::*;

#[test]
fn flush_waits_for_everything_sent_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(4))
        .unwrap();
    // Small batches: many fill up and are in flight (or queued behind one in flight) when flush
    // is called; the rest linger for an hour and only flush seals them.
    let lingering = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 2 << 10,
            ..config(Acks::Written)
        })
        .unwrap();
    // One record a batch, each synced: when flush is called, a queue of sealed batches is still
    // waiting for the sender threads and there is no open batch for flush to seal.
    let eager = store
        .producer(ProducerConfig {
            linger: HOUR,
            batch_bytes: 1,
            ..config(Acks::Durable)
        })
        .unwrap();
    let mut sent = Vec::new();
    for (round, producer) in [&lingering, &eager, &lingering, &eager]
        .into_iter()
        .enumerate()
    {
        let n = if round % 2 == 0 { 1000 } else { 200 };
        for i in 0..n {
            let v = format!("r{round}-{i:04}");
            let h = if i % 5 == 0 {
                producer.send_to("t", (i / 5) % 4, Record::new(v.clone()))
            } else {
                producer.send("t", Record::new(v.clone()).with_key(format!("k{}", i % 13)))
            }
            .unwrap();
            sent.push((v, h));
        }
        producer.flush().unwrap();
        for (v, h) in &sent {
            assert!(h.is_done(), "{v}: not done after flush (round {round})");
            h.wait_timeout(Duration::ZERO)
                .expect("done")
                .unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        assert_eq!(
            t.end_offsets().iter().sum::<u64>(),
            sent.len() as u64,
            "round {round}: everything appended by the time flush returned"
        );
        assert_stored_in_send_order(&t, &sent);
    }
    // Nothing pending: flush returns at once.
    lingering.flush().unwrap();
    eager.flush().unwrap();
    assert!(
        t.end_offsets().iter().all(|&e| e > 0),
        "every partition used"
    );
}

#[test]
fn flush_from_another_thread_waits_for_every_clones_sends() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Durable)
        })
        .unwrap();
    let sent: Vec<(String, SendHandle)> = (0..200u32)
        .map(|i| {
            let v = format!("v{i}");
            let h = producer
                .send_to("t", i % 2, Record::new(v.clone()))
                .unwrap();
            (v, h)
        })
        .collect();
    let flusher = producer.clone();
    std::thread::spawn(move || flusher.flush().unwrap())
        .join()
        .unwrap();
    for (v, h) in &sent {
        assert!(h.is_done(), "{v}: not done after another clone's flush");
    }
    for p in t.partitions() {
        assert_eq!(p.end_offset(), 100);
        assert_eq!(
            p.durable_offset(),
            100,
            "Durable acks: flushed means synced"
        );
    }
    assert_stored_in_send_order(&t, &sent);
}

#[test]
fn close_flushes_and_later_sends_fail_with_closed() {
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
    let clone = producer.clone();
    let sent: Vec<(String, SendHandle)> = (0..100u32)
        .map(|i| {
            let v = format!("v{i}");
            let h = producer
                .send_to("t", i % 2, Record::new(v.clone()))
                .unwrap();
            (v, h)
        })
        .collect();
    assert_eq!(t.end_offsets(), vec![0, 0], "an hour of linger");
    assert!(sent.iter().all(|(_, h)| !h.is_done()));

    producer.close().unwrap();
    for (v, h) in &sent {
        assert!(h.is_done(), "{v}: not done after close");
    }
    assert_eq!(t.end_offsets(), vec![50, 50]);
    assert_stored_in_send_order(&t, &sent);

    // Every later use, through any clone, is refused; nothing more reaches the log.
    for p in [&producer, &clone] {
        match p.send("t", Record::new("late")) {
            Err(Error::Closed { path }) => assert_eq!(path, store.dir()),
            other => panic!("send after close: {other:?}"),
        }
        assert!(matches!(
            p.send_to("t", 0, Record::new("late")),
            Err(Error::Closed { .. })
        ));
        assert!(matches!(p.flush(), Err(Error::Closed { .. })));
    }
    // Closing again (or the other clone) is harmless.
    producer.close().unwrap();
    clone.close().unwrap();
    drop((producer, clone));
    assert_eq!(t.end_offsets(), vec![50, 50]);
}

#[test]
fn dropping_the_last_clone_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let clone = producer.clone();
    // The clone sends from another thread and is dropped there.
    let mut sent: Vec<(String, SendHandle)> = std::thread::spawn(move || {
        (0..50)
            .map(|i| {
                let v = format!("clone-{i}");
                (v.clone(), clone.send("t", Record::new(v)).unwrap())
            })
            .collect()
    })
    .join()
    .unwrap();
    for i in 0..50 {
        let v = format!("original-{i}");
        sent.push((v.clone(), producer.send("t", Record::new(v)).unwrap()));
    }
    // One clone is gone, the other still holds the producer open: nothing is forced out.
    assert!(sent.iter().all(|(_, h)| !h.is_done()));
    assert_eq!(t.end_offsets(), vec![0]);

    drop(producer);
    for (v, h) in &sent {
        assert!(
            h.is_done(),
            "{v}: not done after the last clone was dropped"
        );
    }
    assert_eq!(t.end_offsets(), vec![100]);
    assert_stored_in_send_order(&t, &sent);
}
