//! Every writer of a partition directory holds an OS lock on it: a second `Partition::open` of a
//! directory that a `Store`, another `Partition` handle or another process has open fails with
//! `Error::AlreadyOpen` naming the directory (two writers used to hand out the same offset to
//! different records). The lock goes with its holder: a clean close, dropping the last handle, or
//! the holder process dying by SIGKILL.
//!
//! The cross-process test re-executes this test binary in child mode (selected by an environment
//! variable naming the partition directory): the child opens the partition, appends, says so and
//! sleeps until it is killed.
#![cfg(unix)]

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use topiclog::fs::{SimFs, StdFs};
use topiclog::{Env, Error, LogConfig, Partition, Record, Store, StoreOptions, TopicConfig};

const CHILD_ENV: &str = "TOPICLOG_PARTITION_LOCK_CHILD_DIR";
const MARK: &str = "@@topiclog-partition-lock@@ ";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn assert_already_open(result: topiclog::Result<Partition>, dir: &Path, what: &str) {
    match result {
        Err(Error::AlreadyOpen { path, .. }) => {
            assert_eq!(path, dir, "{what}: the error names the dir")
        }
        Err(e) => panic!("{what}: expected AlreadyOpen, got {e}"),
        Ok(_) => panic!("{what}: a second writer opened a locked partition"),
    }
}

#[test]
fn second_partition_handle_is_refused_until_the_first_closes() {
    common::both_fs(|fs, dir| {
        let dir = dir.join("p");
        let first = Partition::open_with_env(&dir, config(), Env::with_fs(fs.clone())).unwrap();
        first.append(Record::new("a")).unwrap();
        assert_already_open(
            Partition::open_with_env(&dir, config(), Env::with_fs(fs.clone())),
            &dir,
            "second handle",
        );
        // The refused open changed nothing: the first writer goes on at the next offset.
        assert_eq!(first.append(Record::new("b")).unwrap(), 1);
        first.close().unwrap();
        let second = Partition::open_with_env(&dir, config(), Env::with_fs(fs.clone())).unwrap();
        assert_eq!(second.append(Record::new("c")).unwrap(), 2);
        drop(second);
        // Dropping the last handle releases it too.
        let third = Partition::open_with_env(&dir, config(), Env::with_fs(fs)).unwrap();
        assert_eq!(third.end_offset(), 3);
    });
}

#[test]
fn partition_of_an_open_store_is_refused() {
    common::both_fs(|fs, dir| {
        let store = Store::open_with_env(
            dir,
            StoreOptions {
                log: LogConfig {
                    preallocate: false,
                    ..LogConfig::default()
                },
                background_maintenance: false,
                background_cleaner: false,
                ..StoreOptions::default()
            },
            Env::with_fs(fs.clone()),
        )
        .unwrap();
        let topic = store
            .create_topic("t", TopicConfig::with_partitions(2))
            .unwrap();
        topic.send_to(1, Record::new("x")).unwrap();
        let pdir = topic.partition(1).unwrap().dir().to_owned();
        assert_already_open(
            Partition::open_with_env(&pdir, config(), Env::with_fs(fs.clone())),
            &pdir,
            "a partition directory of an open store",
        );
        assert_eq!(topic.send_to(1, Record::new("y")).unwrap().offset, 1);
        store.close().unwrap();
        let p = Partition::open_with_env(&pdir, config(), Env::with_fs(fs)).unwrap();
        assert_eq!(p.end_offset(), 2);
    });
}

/// Child mode: open the partition, append, report, then sleep until killed.
#[test]
fn child_holds_partition() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let log = Partition::open_with_env(Path::new(&dir), config(), Env::with_fs(Arc::new(StdFs)))
        .expect("child: open the partition");
    let offset = log
        .append(Record::new("from the child"))
        .expect("child: append");
    println!("{MARK}open {offset}");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn partition_held_by_another_process_is_refused_until_it_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let mut run = common::spawn_test_child(
        &common::test_path(module_path!(), "child_holds_partition"),
        (CHILD_ENV, dir.as_os_str()),
        MARK,
        |line| line.to_owned(),
    );
    let said = run
        .said
        .recv_timeout(Duration::from_secs(30))
        .expect("the child opens the partition");
    assert_eq!(said, "open 0");
    let refused = Partition::open_with_env(&dir, config(), Env::with_fs(Arc::new(StdFs)));
    // The refusal names the holder, so an operator knows who has it: pid and since when.
    let message = refused.as_ref().err().map(ToString::to_string);
    let Err(Error::AlreadyOpen {
        holder: Some(holder),
        ..
    }) = &refused
    else {
        panic!("expected AlreadyOpen naming the holder, got {refused:?}");
    };
    assert_eq!(holder.pid, Some(run.child.id()));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let since = holder
        .since_ms
        .expect("the child recorded when it took the lock");
    assert!(
        since <= now_ms && since > now_ms - 120_000,
        "since {since}, now {now_ms}"
    );
    let message = message.unwrap();
    assert!(
        message.contains(&format!("process {}", run.child.id())) && message.contains(" (since 20"),
        "{message}"
    );
    assert_already_open(refused, &dir, "a partition held by another process");
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    // SIGKILL released the lock: the next writer recovers the child's record and goes on.
    let log = Partition::open_with_env(&dir, config(), Env::with_fs(Arc::new(StdFs))).unwrap();
    assert_eq!(log.end_offset(), 1);
    assert_eq!(log.append(Record::new("after")).unwrap(), 1);
}

#[test]
fn sim_fs_partition_lock_is_released_by_a_crash() {
    let fs = SimFs::new(3);
    let dir = Path::new("/p");
    let log = Partition::open_with_env(dir, config(), Env::with_fs(Arc::new(fs.clone()))).unwrap();
    log.append(Record::new("a")).unwrap();
    fs.crash(topiclog::fs::CrashMode::LoseUnsynced);
    common::crash_without_close(log);
    let log = Partition::open_with_env(dir, config(), Env::with_fs(Arc::new(fs))).unwrap();
    assert_eq!(log.end_offset(), 1);
}
