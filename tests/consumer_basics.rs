//! Consumers end to end: produce, consume, commit, reopen, resume right after the last commit;
//! a group of three sharing six partitions.

use std::collections::BTreeSet;
use std::time::Duration;

use topiclog::{
    AutoOffsetReset, ConsumerConfig, Durability, LogConfig, Record, Store, StoreOptions,
    TopicConfig, TopicPartition,
};

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

fn earliest(group: &str) -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest,
        enable_auto_commit: false,
        ..ConsumerConfig::group(group)
    }
}

#[test]
fn consume_commit_reopen_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..100 {
        t.send(Record::new(format!("v{i}")).with_key(format!("k{i}")))
            .unwrap();
    }
    let mut c = store.consumer(earliest("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 60 {
        for r in c.poll(Duration::from_secs(2)).unwrap() {
            seen.insert(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
        }
    }
    c.commit_sync().unwrap();
    let committed: u64 = (0..2)
        .map(|p| {
            c.committed(&TopicPartition::new("t", p))
                .unwrap()
                .map_or(0, |o| o.offset)
        })
        .sum();
    assert_eq!(committed as usize, seen.len());
    drop(c);
    store.close().unwrap();

    let store = Store::open_with(dir.path(), options()).unwrap();
    let lag = store.group_lag("g").unwrap();
    assert_eq!(
        lag.iter().map(|l| l.lag.unwrap()).sum::<u64>() as usize,
        100 - seen.len()
    );
    let mut c = store.consumer(earliest("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    let mut rest = BTreeSet::new();
    loop {
        let rs = c.poll(Duration::from_millis(300)).unwrap();
        if rs.is_empty() {
            break;
        }
        for r in rs {
            assert!(rest.insert(String::from_utf8(r.value().unwrap().to_vec()).unwrap()));
        }
    }
    assert_eq!(rest.len(), 100 - seen.len());
    assert!(rest.is_disjoint(&seen));
    assert_eq!(store.groups().unwrap(), vec!["g".to_string()]);
}

#[test]
fn three_members_share_six_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), options()).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(6))
        .unwrap();
    let mut cs: Vec<_> = (0..3)
        .map(|_| {
            let mut c = store.consumer(earliest("g")).unwrap();
            c.subscribe(&["t"]).unwrap();
            c
        })
        .collect();
    // Poll round-robin until every member holds two partitions.
    for _ in 0..50 {
        for c in cs.iter_mut() {
            c.poll(Duration::from_millis(10)).unwrap();
        }
        if cs.iter().all(|c| c.assignment().len() == 2) {
            break;
        }
    }
    let all: Vec<TopicPartition> = cs.iter().flat_map(|c| c.assignment()).collect();
    let set: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(set.len(), 6);
    // One leaves: the other two take over its partitions.
    let mut gone = cs.pop().unwrap();
    gone.close().unwrap();
    for _ in 0..50 {
        for c in cs.iter_mut() {
            c.poll(Duration::from_millis(10)).unwrap();
        }
        if cs.iter().all(|c| c.assignment().len() == 3) {
            break;
        }
    }
    let all: BTreeSet<TopicPartition> = cs.iter().flat_map(|c| c.assignment()).collect();
    assert_eq!(all.len(), 6);
    assert_eq!(store.describe_group("g").len(), 2);
}
