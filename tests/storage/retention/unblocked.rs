//! Appenders never wait for the fsyncs of `delete_records` or of a retention pass (issue 10):
//! while either one's checkpoint sync is held, appends to the same partition go on. The
//! `delete_records` case failed before the fix (it held the append lock across the checkpoint's
//! atomic write, so the append below blocked until the held sync was let go).

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::sync_gate::{GatedFs, SyncGate};
use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{
    Deadline, Durability, Env, Limit, LogConfig, Partition, Record, Retention, RetentionPolicy,
};

/// Generous bound for what takes milliseconds.
const PROMPTLY: Duration = Duration::from_secs(5);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

/// A partition on each file system, with its checkpoint's syncs under a gate.
fn on_both(f: impl Fn(&Partition, &SyncGate)) {
    let tmp = tempfile::tempdir().unwrap();
    let backends: [(Arc<dyn FileSystem>, &Path); 2] = [
        (Arc::new(StdFs), tmp.path()),
        (Arc::new(SimFs::new(7).with_mapped_reads()), Path::new("/p")),
    ];
    for (inner, dir) in backends {
        let gate = SyncGate::new();
        let fs = GatedFs::files(
            inner,
            |path| path.file_name().is_some_and(|n| n == "checkpoint.tmp"),
            gate.clone(),
        );
        let env = Env::with_fs(Arc::new(fs));
        let log = Partition::open_with_env(dir, config(), env).unwrap();
        for i in 0..40u32 {
            // Old timestamps: a time-based retention pass finds the first segments expired.
            let record = Record::new(vec![b'v'; 300]).with_timestamp(1_000 + i64::from(i));
            log.append(record).unwrap();
        }
        assert!(log.segments().len() > 3, "the test needs several segments");
        f(&log, &gate);
        log.close().unwrap();
    }
}

/// Run `work` on a thread with the next checkpoint sync held; while it is held, append from
/// this thread and check the append returns; then release and return `work`'s result.
fn append_while_held<T: Send + 'static>(
    log: &Partition,
    gate: &SyncGate,
    work: impl FnOnce(Partition) -> T + Send + 'static,
) -> T {
    gate.hold_next();
    let handle = log.clone();
    let worker = thread::spawn(move || work(handle));
    assert!(
        gate.wait_until_held(PROMPTLY),
        "the checkpoint sync was never reached"
    );
    let end = log.end_offset();
    let (tx, rx) = std::sync::mpsc::channel();
    let appender = {
        let log = log.clone();
        thread::spawn(move || tx.send(log.append(Record::new("during"))))
    };
    let appended = rx.recv_timeout(PROMPTLY);
    assert!(
        gate.holding(),
        "the sync must still be held during the append"
    );
    gate.release();
    let _sent = appender.join().unwrap();
    let appended = appended.expect("the append waited for the checkpoint's fsync");
    assert_eq!(appended.unwrap(), end);
    worker.join().unwrap()
}

#[test]
fn appends_go_on_while_delete_records_syncs_the_checkpoint() {
    on_both(|log, gate| {
        let start = append_while_held(log, gate, |log| log.delete_records(10).unwrap());
        assert_eq!(start, 10);
        assert_eq!(log.start_offset(), 10);
        // The record appended meanwhile is there, after all the others.
        let last = log.end_offset() - 1;
        let batches = log.read(last, 1 << 20).unwrap();
        let values: Vec<_> = batches
            .records()
            .filter_map(|r| r.value().cloned())
            .collect();
        assert_eq!(values.last().map(|v| &v[..]), Some(&b"during"[..]));
    });
}

#[test]
fn appends_go_on_while_a_retention_pass_syncs_the_checkpoint() {
    on_both(|log, gate| {
        let policy = RetentionPolicy {
            retention: Retention::After(Duration::from_secs(60)),
            retention_bytes: Limit::Unlimited,
        };
        let now = 1_000 + 10 * 60 * 1_000;
        let report = append_while_held(log, gate, move |log| {
            log.apply_retention(now, &policy).unwrap()
        });
        assert!(report.segments_deleted > 0, "{report:?}");
    });
}

/// The first idempotent batch of a partition records where producer state starts (the
/// checkpoint, then an empty producer snapshot: atomic writes with fsyncs) before it takes the
/// append lock: other appends go on while that checkpoint's sync is held. (Failed before: it
/// wrote both under the append lock.)
#[test]
fn appends_go_on_while_the_first_idempotent_batch_syncs_the_checkpoint() {
    on_both(|log, gate| {
        let producer = topiclog::ProducerBatch {
            producer_id: 7,
            epoch: 0,
            base_sequence: 0,
        };
        let info = append_while_held(log, gate, move |log| {
            log.append_idempotent(&[Record::new("idempotent")], producer, Durability::None)
                .unwrap()
        });
        assert!(!info.duplicate);
        // A replay is recognized: the producer state is tracked.
        let again = log
            .append_idempotent(&[Record::new("idempotent")], producer, Durability::None)
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(again.base_offset, info.base_offset);
    });
}
