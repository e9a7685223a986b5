//! What callers can do with an error, through real failures: a full disk (ENOSPC injected with
//! `SimFs`) on an append is an `Error::Io` whose `source()` is the `io::Error` itself (so
//! error-chain walkers can downcast it), of kind `Retriable`; the partition it poisoned answers
//! the retry with `Poisoned`, of kind `Reopen`, and takes appends again once reopened. Bad input
//! is `InvalidInput`, a second opener `Conflict`, a closed handle `Closed`, whatever the layer.

use std::error::Error as _;
use std::io;
use std::sync::Arc;

use topiclog::fs::{Fault, FaultOp, SimFs};
use topiclog::{
    Durability, Env, Error, ErrorKind, LogConfig, Partition, Record, Store, StoreOptions,
    TopicConfig,
};

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::Always,
        segment_bytes: 64 << 10,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn disk_full_on_next_write() -> Fault {
    Fault {
        kind: io::ErrorKind::StorageFull,
        path_contains: Some(".log".into()),
        ..Fault::new(FaultOp::Write, 0)
    }
}

/// The kind of the error `r` must hold.
fn kind<T: std::fmt::Debug>(r: topiclog::Result<T>) -> ErrorKind {
    r.unwrap_err().kind()
}

/// Every error in `e`'s chain, `e` first, as a generic walker sees it.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |&e| e.source()).collect()
}

#[test]
fn a_full_disk_is_a_retriable_io_error_whose_source_downcasts() {
    let fs = SimFs::new(1);
    let log = Partition::open_with_env("/p", config(), Env::with_fs(Arc::new(fs.clone()))).unwrap();
    log.append(Record::new("before")).unwrap();
    fs.inject(disk_full_on_next_write());

    let e = log.append(Record::new("no space")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Retriable);
    assert!(e.is_retriable());
    let os = e
        .source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .expect("source() is the io::Error");
    assert_eq!(os.kind(), io::ErrorKind::StorageFull);
    assert_eq!(
        e.io_error().map(io::Error::kind),
        Some(io::ErrorKind::StorageFull)
    );
    // A walker that boxes the error first finds it too.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e.clone());
    let found = chain(&*boxed)
        .into_iter()
        .find_map(|s| s.downcast_ref::<io::Error>())
        .expect("the chain holds the io::Error");
    assert_eq!(found.kind(), io::ErrorKind::StorageFull);

    // The failed write poisoned the partition: retrying says to reopen first.
    let retry = log.append(Record::new("no space")).unwrap_err();
    assert!(matches!(retry, Error::Poisoned { .. }), "{retry:?}");
    assert_eq!(retry.kind(), ErrorKind::Recover);
    assert!(!retry.is_retriable());

    // Space freed and reopened: the retry succeeds.
    let _ = log.close();
    let log = Partition::open_with_env("/p", config(), Env::with_fs(Arc::new(fs.clone()))).unwrap();
    assert_eq!(log.append(Record::new("no space")).unwrap(), 1);
    log.close().unwrap();
}

#[test]
fn store_errors_carry_their_kind() {
    let fs = SimFs::new(2);
    let options = || StoreOptions {
        log: LogConfig {
            segment_bytes: 64 << 10,
            preallocate: false,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    };
    let env = || Env::with_fs(Arc::new(fs.clone()));
    let store = Store::open_with_env("/store", options(), env()).unwrap();
    let topic = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();

    assert_eq!(
        kind(store.create_topic("t", TopicConfig::with_partitions(1))),
        ErrorKind::Conflict
    );
    assert_eq!(kind(store.topic("nope")), ErrorKind::InvalidInput);
    assert_eq!(kind(topic.partition(7)), ErrorKind::InvalidInput);
    assert_eq!(
        kind(store.create_topic("bad/name", TopicConfig::with_partitions(1))),
        ErrorKind::InvalidInput
    );
    let p = topic.partition(0).unwrap();
    assert_eq!(kind(p.append_batch::<Record>(&[])), ErrorKind::InvalidInput);
    assert_eq!(kind(p.read(5, 1024)), ErrorKind::InvalidInput);
    assert_eq!(
        kind(Store::open_with_env("/store", options(), env())),
        ErrorKind::Conflict
    );

    // A full disk while sending: retriable, then the partition wants a reopen.
    fs.inject(disk_full_on_next_write());
    let e = topic.send(Record::new("x")).unwrap_err();
    assert!(e.is_retriable(), "{e:?}");
    assert_eq!(
        e.io_error().map(io::Error::kind),
        Some(io::ErrorKind::StorageFull)
    );
    assert_eq!(kind(topic.send(Record::new("x"))), ErrorKind::Recover);

    let _ = store.close();
    assert_eq!(kind(topic.send(Record::new("x"))), ErrorKind::Closed);
    let store = Store::open_with_env("/store", options(), env()).unwrap();
    store.topic("t").unwrap().send(Record::new("x")).unwrap();
    store.close().unwrap();
}
