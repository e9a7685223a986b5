//! I/O failures reported through every handle of the failed batch; coalescing while a partition is busy.

use super::*;

#[test]
fn a_failed_append_fails_every_handle_of_its_batch_and_spares_other_partitions() {
    let sim = SimFs::new(21);
    let opts = StoreOptions {
        log: LogConfig {
            preallocate: false,
            segment_bytes: 16 << 10,
            ..options(Durability::None).log
        },
        ..options(Durability::None)
    };
    let dir = Path::new("/s");
    let env = Env::with_fs(Arc::new(sim.clone()));
    let store = Store::open_with_env(dir, opts.clone(), env.clone()).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let id = producer.producer_id().unwrap();
    let send = |p: u32, tag: &str, n: usize| -> Vec<(String, SendHandle)> {
        (0..n)
            .map(|i| {
                let v = format!("{tag}-{i}");
                (v.clone(), producer.send_to("t", p, Record::new(v)).unwrap())
            })
            .collect()
    };
    let stamps = |p: u32| -> Vec<(i64, i32, u32)> {
        stored_batches(&t.partition(p).unwrap())
            .iter()
            .map(|(h, _)| (h.producer_id, h.base_sequence, h.record_count))
            .collect()
    };
    let tags = |p: u32| -> Vec<String> {
        values(&t.partition(p).unwrap())
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };

    let mut round1 = send(0, "a", 5);
    round1.extend(send(1, "b", 5));
    producer.flush().unwrap();
    assert_stored_in_send_order(&t, &round1);

    // The next write to partition 0's log fails (the segment does not roll: 16 KiB segments).
    sim.inject(Fault {
        path_contains: Some("/s/t/0/00000000000000000000.log".into()),
        ..Fault::new(FaultOp::Write, 0)
    });
    let failed = send(0, "failed", 4);
    let ok = send(1, "ok", 3);
    producer.flush().unwrap();
    let errors: Vec<String> = failed
        .iter()
        .map(|(v, h)| match h.wait() {
            Err(e @ Error::Io { .. }) => e.to_string(),
            other => panic!("{v}: expected the write's Io error, got {other:?}"),
        })
        .collect();
    assert!(errors.iter().all(|e| e == &errors[0]), "{errors:?}");
    assert!(errors[0].contains("/s/t/0"), "{}", errors[0]);
    for (i, (v, h)) in ok.iter().enumerate() {
        let m = h.wait().unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!((m.partition, m.offset), (1, 5 + i as u64));
    }
    // The producer's stats count the failed batch and its records apart from those stored.
    let stats = producer.stats();
    assert_eq!(
        (stats.batches_failed, stats.records_failed),
        (1, 4),
        "{stats:?}"
    );
    assert_eq!(
        (stats.batches_sent, stats.records_sent),
        (3, 13),
        "{stats:?}"
    );

    // The failure poisoned partition 0 until it is reopened: later batches to it fail (all their
    // handles); partition 1 keeps taking this producer's batches, its sequence numbers intact.
    let refused = send(0, "refused", 2);
    let ok2 = send(1, "ok2", 2);
    producer.flush().unwrap();
    for (v, h) in &refused {
        assert!(
            matches!(h.wait(), Err(Error::Poisoned { .. })),
            "{v}: {:?}",
            h.wait()
        );
    }
    for (i, (v, h)) in ok2.iter().enumerate() {
        let m = h.wait().unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!((m.partition, m.offset), (1, 8 + i as u64));
    }
    // No trace of the failed batches; partition 1's batches are numbered without gaps.
    assert_eq!(t.partition(0).unwrap().end_offset(), 5);
    assert_eq!(
        tags(0),
        (0..5).map(|i| format!("a-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(stamps(0), vec![(id, 0, 5)]);
    assert_eq!(stamps(1), vec![(id, 0, 5), (id, 5, 3), (id, 8, 2)]);
    let p1: Vec<String> = tags(1);
    assert_eq!(
        p1,
        ["b-0", "b-1", "b-2", "b-3", "b-4", "ok-0", "ok-1", "ok-2", "ok2-0", "ok2-1"]
    );

    // Reopened (no crash), the store holds exactly the successful batches, and a new producer
    // writes to the partition that failed.
    producer.close().unwrap();
    drop(producer);
    drop(t);
    let _ = store.close();
    drop(store);
    sim.clear_faults();
    let store = Store::open_with_env(dir, opts, env).unwrap();
    let t = store.topic("t").unwrap();
    assert_eq!(t.end_offsets(), vec![5, 10]);
    let p0: Vec<String> = values(&t.partition(0).unwrap())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(p0, (0..5).map(|i| format!("a-{i}")).collect::<Vec<_>>());
    let producer = store
        .producer(ProducerConfig {
            linger: HOUR,
            ..config(Acks::Written)
        })
        .unwrap();
    let id2 = producer.producer_id().unwrap();
    assert_ne!(id2, id);
    let again: Vec<SendHandle> = (0..3)
        .map(|i| {
            producer
                .send_to("t", 0, Record::new(format!("again-{i}")))
                .unwrap()
        })
        .collect();
    let p1 = producer.send_to("t", 1, Record::new("again")).unwrap();
    producer.flush().unwrap();
    for (i, h) in again.iter().enumerate() {
        assert_eq!(h.wait().unwrap().offset, 5 + i as u64);
    }
    assert_eq!(p1.wait().unwrap().offset, 10);
    let last = *stored_batches(&t.partition(0).unwrap()).last().unwrap();
    assert_eq!(
        (
            last.0.producer_id,
            last.0.base_sequence,
            last.0.record_count
        ),
        (id2, 0, 3)
    );
}

#[test]
fn flush_after_close_reports_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let producer = store.producer(config(Acks::Written)).unwrap();
    producer.close().unwrap();
    assert!(matches!(producer.flush(), Err(Error::Closed { .. })));
}

#[test]
fn a_burst_coalesces_while_the_partition_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store
        .producer(ProducerConfig {
            linger: Duration::ZERO,
            ..config(Acks::Written)
        })
        .unwrap();
    const N: usize = 20_000;
    for _ in 0..N {
        drop(producer.send("t", Record::new(vec![1u8; 100])).unwrap());
    }
    producer.flush().unwrap();
    let p = t.partition(0).unwrap();
    assert_eq!(p.end_offset(), N as u64);
    // One batch is in flight per partition: what arrives meanwhile keeps filling the open batch
    // (a lingered batch is not sealed while its partition is busy). How much arrives depends on
    // how fast sends are next to appends, so only require real coalescing (this was a median of
    // one record per batch).
    let batches = batch_count(&p);
    assert!(batches <= N / 2, "{N} records in {batches} batches");
}
