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

/// Closing while senders seal batches whose linger has passed: a sender seals with the
/// producer's shared state unlocked, and must not then go to sleep on the `closed` flag it read
/// before, having missed `close`'s wake-up meanwhile (`close`, here the drop of the last clone,
/// would wait for that sender forever). Many rounds, each on a thread so that a hang fails the
/// test instead of hanging it.
#[test]
fn close_returns_while_senders_seal_due_batches() {
    const ROUNDS: usize = 200;
    const PARTITIONS: u32 = 8;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(PARTITIONS))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let rounds = {
        let store = store.clone();
        std::thread::spawn(move || {
            for round in 0..ROUNDS {
                // No linger: every sender that wakes finds the open batches due, and seals them.
                let producer = store
                    .producer(ProducerConfig {
                        linger: Duration::ZERO,
                        max_in_flight: 16,
                        ..config(Acks::Written)
                    })
                    .unwrap();
                let sent: Vec<SendHandle> = (0..PARTITIONS)
                    .map(|p| {
                        producer
                            .send_to("t", p, Record::new(format!("r{round}")))
                            .unwrap()
                    })
                    .collect();
                drop(producer);
                assert!(sent.iter().all(SendHandle::is_done), "round {round}");
                tx.send(round).unwrap();
            }
        })
    };
    for round in 0..ROUNDS {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => assert_eq!(r, round),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("round {round}: closing the producer did not return within 10 s")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::panic::resume_unwind(rounds.join().unwrap_err())
            }
        }
    }
    rounds.join().unwrap();
    assert_eq!(
        t.end_offsets(),
        vec![ROUNDS as u64; PARTITIONS as usize],
        "every record stored"
    );
}
