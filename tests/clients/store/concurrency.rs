//! Several threads send to one topic (single records and batches, keyed and unkeyed) while another
//! thread reads every partition: readers only ever see dense, whole, unchanging records, and in
//! the end every sent record is found exactly once, at the metadata its send returned.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{
    key_partition, Durability, Env, LogConfig, Record, RecordMetadata, Store, StoreOptions, Topic,
    TopicConfig,
};

const PARTITIONS: u32 = 4;
const WRITERS: u32 = 4;
const ROUNDS: u32 = 120;

fn options(durability: Durability) -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            preallocate: false,
            // Small segments, so the run rolls segments under the readers.
            segment_bytes: 8 << 10,
            durability,
            ..LogConfig::default()
        },
        ..StoreOptions::default()
    }
}

/// The value of record `i` of round `round` of writer `w`: unique, and of varying length.
fn value(w: u32, round: u32, i: u32) -> String {
    format!(
        "w{w}-r{round}-i{i}-{}",
        "z".repeat(((w + round * 7 + i * 3) % 60) as usize)
    )
}

/// A record sent, where it landed, and whether the sender chose the partition.
struct Sent {
    meta: RecordMetadata,
    record: Record,
    explicit: bool,
}

/// One writer's sends; returns every record it sent with its metadata.
/// Send `ROUNDS` rounds; halfway, wait (up to 30 s) until the reader has seen data, so the reader
/// provably runs alongside the writers however the threads are scheduled.
fn write(topic: &Topic, w: u32, reader_saw_data: &AtomicBool) -> Vec<Sent> {
    let mut sent = Vec::new();
    for round in 0..ROUNDS {
        if round == ROUNDS / 2 {
            let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !reader_saw_data.load(Ordering::SeqCst) && std::time::Instant::now() < give_up {
                thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let record = |i: u32| {
            let r = Record::new(value(w, round, i));
            if (round + i).is_multiple_of(3) {
                r
            } else {
                r.with_key(format!("key-{}", (w * 31 + round + i) % 17))
            }
        };
        match round % 3 {
            0 => {
                let r = record(0);
                let meta = topic.send(r.clone()).unwrap();
                sent.push(Sent {
                    meta,
                    record: r,
                    explicit: false,
                });
            }
            1 => {
                let r = record(0);
                let p = (w + round) % PARTITIONS;
                let meta = topic.send_to(p, r.clone()).unwrap();
                assert_eq!(meta.partition, p);
                sent.push(Sent {
                    meta,
                    record: r,
                    explicit: true,
                });
            }
            _ => {
                let batch: Vec<Record> = (0..1 + (w + round) % 8).map(record).collect();
                let metas = topic.send_batch(&batch).unwrap();
                assert_eq!(metas.len(), batch.len());
                sent.extend(metas.into_iter().zip(batch).map(|(meta, record)| Sent {
                    meta,
                    record,
                    explicit: false,
                }));
            }
        }
    }
    sent
}

/// Read each partition from `next[p]` to its current end, checking density and recording what
/// was seen. Returns how many records were read.
fn read_new(topic: &Topic, next: &mut [u64], seen: &mut HashMap<(u32, u64), Vec<u8>>) -> usize {
    let mut count = 0;
    for p in 0..PARTITIONS {
        let partition = topic.partition(p).unwrap();
        let end = partition.end_offset();
        while next[p as usize] < end {
            let batches = partition.read(next[p as usize], 4 << 10).unwrap();
            assert!(
                !batches.is_empty(),
                "partition {p}: empty read below the end"
            );
            for r in batches.records() {
                assert_eq!(r.offset(), next[p as usize], "partition {p}: dense offsets");
                let v = r.value().expect("no tombstones are sent").to_vec();
                assert!(seen.insert((p, r.offset()), v).is_none());
                next[p as usize] += 1;
                count += 1;
            }
            assert_eq!(batches.next_offset(), next[p as usize]);
        }
    }
    count
}

fn run(fs: Arc<dyn FileSystem>, dir: &Path, durability: Durability) {
    let store = Store::open_with_env(dir, options(durability), Env::with_fs(fs.clone())).unwrap();
    let topic = store
        .create_topic("busy", TopicConfig::with_partitions(PARTITIONS))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let saw_data = Arc::new(AtomicBool::new(false));

    let reader = {
        let topic = topic.clone();
        let done = done.clone();
        let saw_data = saw_data.clone();
        thread::spawn(move || {
            let mut next = vec![0u64; PARTITIONS as usize];
            let mut seen = HashMap::new();
            let mut passes_with_data = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                if read_new(&topic, &mut next, &mut seen) > 0 {
                    passes_with_data += 1;
                    if !finished {
                        saw_data.store(true, Ordering::SeqCst);
                    }
                }
                if finished {
                    // One last pass after the writers stopped caught everything.
                    return (seen, passes_with_data);
                }
                thread::yield_now();
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let topic = topic.clone();
            let saw_data = saw_data.clone();
            thread::spawn(move || write(&topic, w, &saw_data))
        })
        .collect();
    let sent: Vec<Sent> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    done.store(true, Ordering::SeqCst);
    let (seen, passes_with_data) = reader.join().unwrap();
    assert!(
        saw_data.load(Ordering::SeqCst) && passes_with_data > 1,
        "the reader ran alongside the writers"
    );

    // Every sent record exactly once, at its metadata.
    let ends = topic.end_offsets();
    assert_eq!(ends.iter().sum::<u64>(), sent.len() as u64, "{ends:?}");
    assert_eq!(seen.len(), sent.len(), "the reader saw every record");
    let mut at: HashMap<(u32, u64), &Record> = HashMap::new();
    for s in &sent {
        let meta = s.meta;
        assert!(
            at.insert((meta.partition, meta.offset), &s.record)
                .is_none(),
            "two sends got {meta:?}"
        );
        if let (Some(k), false) = (s.record.key(), s.explicit) {
            assert_eq!(meta.partition, key_partition(k, PARTITIONS), "{meta:?}");
        }
    }
    let check = |topic: &Topic, what: &str| {
        let mut next = vec![0u64; PARTITIONS as usize];
        let mut stored = HashMap::new();
        read_new(topic, &mut next, &mut stored);
        assert_eq!(stored.len(), sent.len(), "{what}");
        for ((p, offset), v) in &stored {
            let record = at
                .get(&(*p, *offset))
                .unwrap_or_else(|| panic!("{what}: ({p}, {offset}) holds a record nobody sent"));
            assert_eq!(v.as_slice(), record.value().unwrap().as_ref(), "{what}");
            assert_eq!(
                seen.get(&(*p, *offset)),
                Some(v),
                "{what}: the reader saw the same"
            );
        }
        for p in 0..PARTITIONS {
            let partition = topic.partition(p).unwrap();
            let mut offset = 0;
            while offset < partition.end_offset() {
                let read = partition.read(offset, 1 << 20).unwrap();
                for r in read.records() {
                    let record = at[&(p, r.offset())];
                    assert_eq!(
                        r.key(),
                        record.key(),
                        "{what}: key at ({p}, {})",
                        r.offset()
                    );
                    offset = r.offset() + 1;
                }
            }
        }
    };
    check(&topic, "live");
    store.close().unwrap();

    let store = Store::open_with_env(dir, options(durability), Env::with_fs(fs)).unwrap();
    check(&store.topic("busy").unwrap(), "after reopen");
    store.close().unwrap();
}

#[test]
fn concurrent_senders_and_a_reader_on_the_real_fs() {
    let tmp = tempfile::tempdir().unwrap();
    run(
        Arc::new(StdFs),
        &tmp.path().join("store"),
        Durability::Always,
    );
}

#[test]
fn concurrent_senders_and_a_reader_without_fsync_per_send() {
    let tmp = tempfile::tempdir().unwrap();
    run(Arc::new(StdFs), &tmp.path().join("store"), Durability::None);
}

#[test]
fn concurrent_senders_and_a_reader_on_the_simulated_fs() {
    run(
        Arc::new(SimFs::new(17)),
        Path::new("/store"),
        Durability::Always,
    );
}
