//! Concurrent durable producers.

use super::*;

#[test]
fn concurrent_durable_producers_store_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    const THREADS: usize = 6;
    const PER_THREAD: usize = 300;
    // Threads 0..3 share one producer (clones), threads 3..6 each have their own.
    let shared = store.producer(config(Acks::Durable)).unwrap();
    let metas: Vec<Vec<(String, topiclog::RecordMetadata)>> = std::thread::scope(|s| {
        let joins: Vec<_> = (0..THREADS)
            .map(|th| {
                let producer: Producer = if th < 3 {
                    shared.clone()
                } else {
                    store.producer(config(Acks::Durable)).unwrap()
                };
                let t = t.clone();
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut pending = Vec::new();
                    for i in 0..PER_THREAD {
                        let v = format!("t{th}-{i:04}");
                        let h = producer
                            .send("t", Record::new(v.clone()).with_key(format!("t{th}")))
                            .unwrap();
                        pending.push((v, h));
                        // Wait now and then, so sends and syncs interleave across threads.
                        if i % 37 == 36 {
                            for (v, h) in pending.drain(..) {
                                let m = h.wait().unwrap();
                                let p = t.partition(m.partition).unwrap();
                                assert!(p.durable_offset() > m.offset);
                                out.push((v, m));
                            }
                        }
                    }
                    for (v, h) in pending {
                        let m = h.wait().unwrap();
                        let p = t.partition(m.partition).unwrap();
                        assert!(p.durable_offset() > m.offset);
                        out.push((v, m));
                    }
                    out
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    // The metadata matches the log, every value appears exactly once, and each thread's records
    // (one key, so one partition) are in send order.
    let mut stored: BTreeMap<(u32, u64), String> = BTreeMap::new();
    for (pi, p) in t.partitions().iter().enumerate() {
        for (o, v) in values(p) {
            stored.insert((pi as u32, o), v);
        }
    }
    assert_eq!(stored.len(), THREADS * PER_THREAD);
    let distinct: HashSet<&String> = stored.values().collect();
    assert_eq!(distinct.len(), THREADS * PER_THREAD, "no duplicates");
    for (th, list) in metas.iter().enumerate() {
        assert_eq!(list.len(), PER_THREAD);
        let mut last = None;
        for (v, m) in list {
            assert_eq!(stored.get(&(m.partition, m.offset)), Some(v), "{v}");
            if let Some(prev) = last {
                assert!(m.offset > prev, "thread {th}: order within one key");
            }
            last = Some(m.offset);
        }
    }
    for p in t.partitions() {
        assert_eq!(p.durable_offset(), p.end_offset());
    }
}
