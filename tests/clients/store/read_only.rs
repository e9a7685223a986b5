//! Read-only access from other processes (issue 15): a writer child process appends, rolls,
//! runs retention and `delete_records`, compacts, creates and deletes topics, is killed with
//! `kill -9` and restarted, while readers in this process follow every partition with
//! [`ReadOnlyStore`] and check every record they get. Plus in-process cases for what the
//! reader may see: nothing in the writer's write buffer, nothing whose sync is under way, nothing
//! a truncation took back; and what it may not do: take the lock or write a byte.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{self, sync_gate};
use topiclog::fs::StdFs;
use topiclog::{
    CleanupPolicy, Durability, Env, Error, Limit, LogConfig, LogOverrides, Partition,
    ReadOnlyPartition, ReadOnlyStore, Record, Store, StoreOptions, TopicConfig,
};

const CHILD_ENV: &str = "TOPICLOG_READ_ONLY_WRITER";
const MARK: &str = "@@writer ";
/// The delete-policy topic: the record at offset `o` is always `value(o)`.
const EVENTS: &str = "events";
/// The compacted topic: the record at offset `o` has key `o % 7` and value `value(o)`.
const LATEST: &str = "latest";
/// Generous bound for things that take moments.
const PATIENCE: Duration = Duration::from_secs(60);

fn value(offset: u64) -> Vec<u8> {
    let mut v = format!("record-{offset:010}-").into_bytes();
    v.resize(80, b'x');
    v
}

fn key(offset: u64) -> Vec<u8> {
    format!("k{}", offset % 7).into_bytes()
}

fn topic_config(compacted: bool) -> TopicConfig {
    TopicConfig {
        partitions: 1,
        overrides: LogOverrides {
            segment_bytes: Some(4096),
            durability: Some(Durability::Always),
            retention_bytes: (!compacted).then_some(Limit::Bytes(24 << 10)),
            cleanup_policy: Some(if compacted {
                CleanupPolicy::Compact
            } else {
                CleanupPolicy::Delete
            }),
            min_cleanable_dirty_ratio: Some(0.01),
            ..LogOverrides::default()
        },
    }
}

/// Child mode: the writer. Appends batches of 5 to both topics until `events` holds `target`
/// records, and every 10 rounds deletes records, runs retention, compacts, and creates and
/// deletes a topic; reports its progress; closes cleanly at the end.
#[test]
fn read_only_writer_child() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let (dir, target) = spec.split_once('|').expect("dir|target");
    let target: u64 = target.parse().expect("target");
    let store = Store::open_with(
        dir,
        StoreOptions {
            background_maintenance: false,
            background_cleaner: false,
            ..StoreOptions::default()
        },
    )
    .expect("child: open");
    for (name, compacted) in [(EVENTS, false), (LATEST, true)] {
        if store.topic(name).is_err() {
            store
                .create_topic(name, topic_config(compacted))
                .expect("child: create");
        }
    }
    let events = store.topic(EVENTS).unwrap().partition(0).unwrap();
    let latest_topic = store.topic(LATEST).unwrap();
    let latest = latest_topic.partition(0).unwrap();
    let events_topic = store.topic(EVENTS).unwrap();
    let mut round = 0u64;
    while events.end_offset() < target {
        round += 1;
        for (p, keyed) in [(&events, false), (&latest, true)] {
            let base = p.end_offset();
            let batch: Vec<Record> = (base..base + 5)
                .map(|o| {
                    let r = Record::new(value(o));
                    if keyed {
                        r.with_key(key(o))
                    } else {
                        r
                    }
                })
                .collect();
            p.append_batch(&batch).expect("child: append");
        }
        if round.is_multiple_of(10) {
            let end = events.end_offset();
            events
                .delete_records(end.saturating_sub(150))
                .expect("child: delete_records");
            let now = i64::MAX / 2;
            events_topic.apply_retention(now).expect("child: retention");
            latest_topic
                .compact(topiclog::SystemClock.now_ms())
                .expect("child: compact");
            let name = format!("tmp{round}");
            let t = store
                .create_topic(&name, TopicConfig::with_partitions(1))
                .expect("child: create tmp");
            t.send_to(0, Record::new("temporary")).expect("child: send");
            drop(t);
            store.delete_topic(&name).expect("child: delete tmp");
        }
        println!(
            "{MARK}progress {} {}",
            events.end_offset(),
            latest.end_offset()
        );
    }
    let (e, l) = (events.end_offset(), latest.end_offset());
    store.close().expect("child: close");
    println!("{MARK}done {e} {l}");
}

use topiclog::Clock;

fn spawn_writer(dir: &Path, target: u64) -> common::TestChild<(String, u64, u64)> {
    let spec = format!("{}|{target}", dir.display());
    common::spawn_test_child(
        &common::test_path(module_path!(), "read_only_writer_child"),
        (CHILD_ENV, std::ffi::OsStr::new(&spec)),
        MARK,
        |line| {
            let mut w = line.split_whitespace();
            let what = w.next().unwrap_or_default().to_owned();
            let e = w.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            let l = w.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            (what, e, l)
        },
    )
}

/// What a follower of one partition checked.
#[derive(Debug, Default)]
struct Followed {
    records: u64,
    /// Offsets jumped over because the log start moved past them (retention, delete_records).
    skipped: u64,
    next: u64,
}

/// Follow `topic`'s partition 0 from the start until `stop` is set and `final_end` reached,
/// checking every record: its content is what the writer wrote at that offset, offsets only
/// go up (and, on the delete-policy topic, without a hole except below the log start).
/// With `pace`, it reads one batch at a time and sleeps that long after each read: it falls
/// behind, and retention deletes segments under it.
fn follow(
    store: ReadOnlyStore,
    topic: &'static str,
    stop: Arc<AtomicBool>,
    final_end: Arc<AtomicU64>,
    pace: Option<Duration>,
) -> Followed {
    let compacted = topic == LATEST;
    let started = Instant::now();
    let part = loop {
        match store.partition(topic, 0) {
            Ok(p) => break p,
            Err(Error::UnknownTopic { .. }) if started.elapsed() < PATIENCE => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{topic}: open to read: {e}"),
        }
    };
    let mut f = Followed::default();
    loop {
        if stop.load(Ordering::SeqCst) && f.next >= final_end.load(Ordering::SeqCst) {
            return f;
        }
        assert!(
            started.elapsed() < 4 * PATIENCE,
            "{topic}: follower stuck at {}",
            f.next
        );
        if let Some(pace) = pace {
            thread::sleep(pace);
        }
        let max_bytes = if pace.is_some() { 1 } else { 16 << 10 };
        match part.read(f.next, max_bytes) {
            Ok(batches) => {
                for r in batches.records() {
                    let o = r.offset();
                    assert!(
                        o >= f.next,
                        "{topic}: offset {o} went back below {}",
                        f.next
                    );
                    if !compacted {
                        assert_eq!(o, f.next, "{topic}: a hole before {o}");
                    }
                    assert_eq!(
                        r.value().map(|v| v.to_vec()),
                        Some(value(o)),
                        "{topic}: wrong record at {o}"
                    );
                    if compacted {
                        assert_eq!(
                            r.key().map(|k| k.to_vec()),
                            Some(key(o)),
                            "{topic}: key at {o}"
                        );
                    }
                    f.records += 1;
                    f.next = o + 1;
                }
                let next = batches.next_offset();
                assert!(next >= f.next, "{topic}: next offset went back");
                if batches.is_empty() {
                    f.next = next;
                    let _ = part.wait_for(f.next, Duration::from_millis(50));
                } else {
                    f.next = next;
                }
            }
            Err(Error::OffsetOutOfRange { start, end, .. }) => {
                assert!(
                    f.next < start,
                    "{topic}: offset {} out of [{start}, {end}) though not below the start",
                    f.next
                );
                f.skipped += start - f.next;
                f.next = start;
            }
            Err(e) => panic!("{topic}: read at {}: {e}", f.next),
        }
    }
}

#[test]
fn readers_in_another_process_follow_a_writer_through_rolls_retention_compaction_and_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut first = spawn_writer(&dir, 1_000_000);
    // The store exists once the writer reported progress.
    let said = first
        .said
        .recv_timeout(PATIENCE)
        .expect("the writer starts");
    assert_eq!(said.0, "progress");
    let store = ReadOnlyStore::open(&dir).unwrap();
    let holder = store.writer().unwrap().expect("the writer holds the store");
    assert_eq!(holder.pid, Some(first.child.id()));

    let stop = Arc::new(AtomicBool::new(false));
    let final_ends = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let slow = Some(Duration::from_millis(20));
    let followers: Vec<_> = [(EVENTS, 0, None), (LATEST, 1, None), (EVENTS, 0, slow)]
        .into_iter()
        .map(|(topic, i, pace)| {
            let (store, stop, end) = (store.clone(), stop.clone(), final_ends[i].clone());
            thread::spawn(move || follow(store, topic, stop, end, pace))
        })
        .collect();
    // A third reader lists topics (created and deleted under it) and looks at each.
    let lister = {
        let (store, stop) = (store.clone(), stop.clone());
        thread::spawn(move || {
            let mut looks = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for name in store.topics().unwrap() {
                    match store.partition(&name, 0).and_then(|p| p.end_offset()) {
                        Ok(_) => looks += 1,
                        // Deleted between the listing and the look.
                        Err(Error::UnknownTopic { .. } | Error::InvalidConfigFile { .. }) => {}
                        Err(Error::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => panic!("looking at {name}: {e}"),
                    }
                }
                thread::sleep(Duration::from_millis(2));
            }
            looks
        })
    };

    // Let the writer work, then kill it mid-flight.
    loop {
        let (what, events_end, _) = first.said.recv_timeout(PATIENCE).expect("progress");
        assert_eq!(what, "progress");
        if events_end >= 600 {
            break;
        }
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    // Readers go on reading what the dead writer left.
    let left = store.partition(EVENTS, 0).unwrap().end_offset().unwrap();
    assert!(left >= 600, "what was visible stays visible: {left}");
    assert!(
        store.writer().unwrap().is_none(),
        "kill -9 released the lock"
    );

    // A new writer recovers and goes on to 1,200 records, then closes.
    let mut second = spawn_writer(&dir, 1_200);
    let (events_end, latest_end) = loop {
        let (what, e, l) = second.said.recv_timeout(PATIENCE).expect("second writer");
        if what == "done" {
            break (e, l);
        }
    };
    assert!(second.child.wait().unwrap().success());
    final_ends[0].store(events_end, Ordering::SeqCst);
    final_ends[1].store(latest_end, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let followed: Vec<Followed> = followers.into_iter().map(|f| f.join().unwrap()).collect();
    let looks = lister.join().unwrap();

    // Events: every record not deleted meanwhile was read, each once, each right.
    let events = &followed[0];
    assert_eq!(events.next, events_end);
    assert_eq!(events.records + events.skipped, events_end, "{events:?}");
    assert!(events.records > 0);
    // Latest: its newest value of every key was read (compaction keeps it).
    let latest = &followed[1];
    assert_eq!(latest.next, latest_end);
    assert!(latest.records >= 7, "{latest:?}");
    // The slow reader fell behind: retention and delete_records took records from under it,
    // and it went on from the new start.
    let slow = &followed[2];
    assert_eq!(slow.next, events_end);
    assert_eq!(slow.records + slow.skipped, events_end, "{slow:?}");
    assert!(slow.skipped > 0, "{slow:?}");
    assert!(looks > 0);
    // After the clean close, the store reads the same without a writer; and the writer did
    // what the readers were to survive: records deleted, segments removed, keys compacted.
    let p = store.partition(EVENTS, 0).unwrap();
    assert_eq!(p.end_offset().unwrap(), events_end);
    assert!(
        p.start_offset().unwrap() >= events_end - 150 - 5,
        "delete_records ran"
    );
    let l = store.partition(LATEST, 0).unwrap();
    let mut kept = 0;
    let mut next = l.start_offset().unwrap();
    while next < latest_end {
        let b = l.read(next, 1 << 20).unwrap();
        kept += b.records().count() as u64;
        next = b.next_offset();
    }
    assert!(
        kept < latest_end / 2,
        "compaction removed old values: {kept} of {latest_end}"
    );
    assert!(store.writer().unwrap().is_none());
    eprintln!(
        "followed: {followed:?}, {looks} looks at listed topics, {kept} records kept in {LATEST}"
    );
}

/// A log written by `config`, with a reader on it.
fn writer_and_reader(dir: &Path, config: LogConfig) -> (Partition, ReadOnlyPartition) {
    let log = Partition::open_with_env(dir, config, Env::with_fs(Arc::new(StdFs))).unwrap();
    let reader = ReadOnlyPartition::open(dir).unwrap();
    (log, reader)
}

#[test]
fn a_reader_sees_nothing_still_in_the_write_buffer() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durability: Durability::None,
        write_buffer_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let (log, _) = writer_and_reader(tmp.path(), config);
    let reader = Partition::open_read_only(tmp.path()).unwrap();
    log.append(Record::new("buffered")).unwrap();
    assert_eq!(log.end_offset(), 1, "the writer's own readers see it");
    assert_eq!(
        reader.end_offset().unwrap(),
        0,
        "other processes read the file"
    );
    assert!(!reader.wait_for(0, Duration::from_millis(20)).unwrap());
    log.flush().unwrap();
    assert_eq!(reader.end_offset().unwrap(), 1);
    let b = reader.read(0, 1 << 20).unwrap();
    assert_eq!(b.records().next().unwrap().value().unwrap(), "buffered");
}

#[test]
fn a_reader_never_sees_a_durable_append_before_its_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let gate = sync_gate::SyncGate::new();
    let fs = sync_gate::GatedFs::files(
        Arc::new(StdFs),
        |p| p.extension().is_some_and(|e| e == "log"),
        gate.clone(),
    );
    let log =
        Partition::open_with_env(&dir, LogConfig::default(), Env::with_fs(Arc::new(fs))).unwrap();
    let reader = ReadOnlyPartition::open(&dir).unwrap();
    gate.hold_next();
    let appender = {
        let log = log.clone();
        thread::spawn(move || log.append(Record::new("durable")).unwrap())
    };
    assert!(gate.wait_until_held(PATIENCE));
    // Written to the file, not yet synced: a crash could take it back.
    assert_eq!(reader.end_offset().unwrap(), 0);
    assert!(!reader.wait_for(0, Duration::from_millis(20)).unwrap());
    gate.release();
    assert_eq!(appender.join().unwrap(), 0);
    assert!(reader.wait_for(0, PATIENCE).unwrap());
    assert_eq!(reader.end_offset().unwrap(), 1);
}

#[test]
fn a_truncation_is_seen_and_nothing_it_took_back_comes_from_the_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let (log, reader) = writer_and_reader(tmp.path(), config);
    for i in 0..40u32 {
        log.append(Record::new(format!("old-{i}"))).unwrap();
    }
    assert_eq!(
        reader
            .read(30, 1 << 20)
            .unwrap()
            .records()
            .next()
            .unwrap()
            .value()
            .unwrap(),
        "old-30"
    );
    log.truncate_to(20).unwrap();
    assert_eq!(reader.end_offset().unwrap(), 20);
    assert!(matches!(
        reader.read(30, 1 << 20),
        Err(Error::OffsetOutOfRange { end: 20, .. })
    ));
    for i in 20..40u32 {
        log.append(Record::new(format!("new-{i}"))).unwrap();
    }
    let mut next = 0;
    while next < 40 {
        let b = reader.read(next, 1 << 20).unwrap();
        for r in b.records() {
            let want = if r.offset() < 20 { "old" } else { "new" };
            assert_eq!(
                r.value().unwrap(),
                format!("{want}-{}", r.offset()).as_str()
            );
        }
        next = b.next_offset();
    }
}

#[test]
fn a_read_only_store_takes_no_lock_writes_nothing_and_reads_committed_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(&dir).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..10 {
        t.send_to(i % 2, Record::new(format!("v{i}")).with_key("k"))
            .unwrap();
    }
    let mut consumer = store
        .consumer(topiclog::ConsumerConfig {
            auto_offset_reset: topiclog::AutoOffsetReset::Earliest,
            enable_auto_commit: false,
            ..topiclog::ConsumerConfig::group("g")
        })
        .unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let mut seen = 0;
    let started = Instant::now();
    while seen < 10 && started.elapsed() < PATIENCE {
        seen += consumer.poll(Duration::from_millis(100)).unwrap().len();
    }
    consumer.commit_sync().unwrap();
    let before = snapshot(&dir);

    let reader = Store::open_read_only(&dir).unwrap();
    assert_eq!(reader.topics().unwrap(), vec!["t".to_owned()]);
    assert_eq!(reader.topic_config("t").unwrap().partitions, 2);
    assert_eq!(reader.groups().unwrap(), vec!["g".to_owned()]);
    let committed = reader.committed_offsets("g").unwrap();
    assert_eq!(committed.len(), 2);
    assert!(committed.values().all(|c| c.offset == 5), "{committed:?}");
    t.send_to(0, Record::new("more").with_key("k")).unwrap();
    let lag = reader.group_lag("g").unwrap();
    let lags: Vec<_> = lag.iter().map(|l| (l.partition.partition, l.lag)).collect();
    assert_eq!(lags, vec![(0, Some(1)), (1, Some(0))]);
    assert!(matches!(
        reader.partition("nope", 0),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        reader.partition("t", 2),
        Err(Error::InvalidPartition { .. })
    ));
    // The writer still holds everything, and the reader wrote nothing (the one append above
    // changed only what the writer owns).
    assert!(matches!(Store::open(&dir), Err(Error::AlreadyOpen { .. })));
    drop(consumer);
    store.close().unwrap();
    let after_reads = snapshot(&dir);
    let reader = ReadOnlyStore::open(&dir).unwrap();
    for _ in 0..3 {
        let p = reader.partition("t", 0).unwrap();
        p.read(0, 1 << 20).unwrap();
        reader.group_lag("g").unwrap();
    }
    assert_eq!(snapshot(&dir), after_reads, "reading changed no file");
    assert_ne!(before, after_reads);
    assert!(matches!(
        ReadOnlyStore::open(tmp.path().join("missing")),
        Err(Error::Io { .. })
    ));
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A closed partition of 40 records over several segments, in a directory of its own; the
/// segment files' base offsets.
fn closed_log(dir: &Path) -> Vec<u64> {
    let config = LogConfig {
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let (log, _) = writer_and_reader(dir, config);
    for i in 0..40u32 {
        log.append(Record::new(format!("value-{i:04}-{}", "x".repeat(60))))
            .unwrap();
    }
    log.close().unwrap();
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|b| b.parse().unwrap())
        })
        .collect();
    bases.sort_unstable();
    assert!(bases.len() >= 4, "{bases:?}");
    bases
}

fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Read everything from the start: the records' offsets, or the first error.
fn read_all(dir: &Path) -> Result<Vec<u64>, Error> {
    let reader = ReadOnlyPartition::open(dir)?;
    let end = reader.end_offset()?;
    let mut next = reader.start_offset()?;
    let mut offsets = Vec::new();
    while next < end {
        let b = reader.read(next, 300)?;
        offsets.extend(b.records().map(|r| r.offset()));
        next = b.next_offset();
    }
    Ok(offsets)
}

#[test]
fn damaged_segments_are_errors_never_holes_or_wrong_records() {
    let tmp = tempfile::tempdir().unwrap();
    // Intact: every record, in order.
    let dir = tmp.path().join("intact");
    closed_log(&dir);
    assert_eq!(read_all(&dir).unwrap(), (0..40).collect::<Vec<_>>());
    // A flipped bit inside a record: the batch's CRC fails.
    let dir = tmp.path().join("flipped");
    let bases = closed_log(&dir);
    let path = log_path(&dir, bases[1]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[80] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        matches!(read_all(&dir), Err(Error::Corrupt { .. })),
        "{:?}",
        read_all(&dir)
    );
    // A batch length made huge: an error, with no allocation of that size and no hole.
    let dir = tmp.path().join("length");
    let bases = closed_log(&dir);
    let path = log_path(&dir, bases[1]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&0x7fff_0000u32.to_be_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(
        matches!(read_all(&dir), Err(Error::Corrupt { .. })),
        "{:?}",
        read_all(&dir)
    );
    // A sealed segment deleted: the offsets it held are a gap, which is damage.
    let dir = tmp.path().join("deleted");
    let bases = closed_log(&dir);
    std::fs::remove_file(log_path(&dir, bases[2])).unwrap();
    assert!(
        matches!(read_all(&dir), Err(Error::Corrupt { .. })),
        "{:?}",
        read_all(&dir)
    );
    // A segment cut at a batch boundary: the same.
    let dir = tmp.path().join("cut");
    let bases = closed_log(&dir);
    let path = log_path(&dir, bases[1]);
    let len = std::fs::metadata(&path).unwrap().len();
    let first_batch = u64::from(u32::from_be_bytes(
        std::fs::read(&path).unwrap()[8..12].try_into().unwrap(),
    )) + 12;
    assert!(first_batch < len);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(first_batch)
        .unwrap();
    assert!(
        matches!(read_all(&dir), Err(Error::Corrupt { .. })),
        "{:?}",
        read_all(&dir)
    );
}

#[test]
fn a_topic_reader_polls_seeks_and_moves_past_deleted_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(&dir).unwrap();
    let t = store
        .create_topic("t", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..6i64 {
        t.send_to(
            (i % 2) as u32,
            Record::new(format!("v{i}")).with_timestamp(1_000 + i),
        )
        .unwrap();
    }
    let ro = ReadOnlyStore::open(&dir).unwrap();
    let mut reader = ro.reader("t").unwrap();
    assert_eq!(reader.partitions(), vec![0, 1]);
    let first = reader.poll(Duration::from_millis(100)).unwrap();
    let mut got: Vec<(u32, u64)> = first.iter().map(|r| (r.partition(), r.offset())).collect();
    got.sort_unstable();
    assert_eq!(got, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    assert_eq!((reader.position(0), reader.position(1)), (Some(3), Some(3)));
    assert!(reader.poll(Duration::ZERO).unwrap().is_empty());
    // A poll that waits is woken by the writer's next append.
    let writer = {
        let t = t.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            t.send_to(1, Record::new("late")).unwrap();
        })
    };
    let late = reader.poll(PATIENCE).unwrap();
    writer.join().unwrap();
    assert_eq!(
        late.iter()
            .map(|r| r.value().unwrap().to_vec())
            .collect::<Vec<_>>(),
        vec![b"late".to_vec()]
    );
    // Seeks: by offset, by time, to the end.
    reader.seek(0, 1).unwrap();
    let again = reader.poll(Duration::ZERO).unwrap();
    assert_eq!(
        again.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        vec![1, 2]
    );
    reader.seek_to_time(1_004).unwrap();
    assert_eq!((reader.position(0), reader.position(1)), (Some(2), Some(2)));
    reader.seek_to_end().unwrap();
    assert!(reader.poll(Duration::ZERO).unwrap().is_empty());
    assert!(matches!(
        reader.seek(7, 0),
        Err(Error::InvalidPartition { .. })
    ));
    // The writer deletes records the reader has not read: it moves on from the new start.
    reader.seek_to_beginning().unwrap();
    t.partition(0).unwrap().delete_records(2).unwrap();
    let rest = reader.poll(Duration::ZERO).unwrap();
    let p0: Vec<u64> = rest
        .iter()
        .filter(|r| r.partition() == 0)
        .map(|r| r.offset())
        .collect();
    assert_eq!(p0, vec![2]);
    assert_eq!(reader.skipped(), 2);
    store.close().unwrap();
}

/// What the writer does in [`a_reader_agrees_with_the_writer_after_any_sequence_of_writes`].
#[derive(Clone, Debug)]
enum Op {
    /// Append this many records (one batch), durably or not.
    Append(u8, bool),
    /// Truncate to this fraction (of 256) of the way from the start to the end.
    Truncate(u8),
    /// `delete_records` up to this fraction of the way, then a retention pass.
    Delete(u8),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (1u8..20, any::<bool>()).prop_map(|(n, d)| Op::Append(n, d)),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => any::<u8>().prop_map(Op::Delete),
    ]
}

proptest::proptest! {
    #![proptest_config(crate::common::proptest_config(24, 0x5eed_0015))]

    /// After every write (appends across rolls, truncations, deleted records and retention),
    /// a reader in "another process" (no shared memory but the tail page) sees the same log as
    /// the writer: the same bounds, and at every offset the same records.
    #[test]
    fn a_reader_agrees_with_the_writer_after_any_sequence_of_writes(
        ops in proptest::collection::vec(op(), 1..24)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 1024,
            durability: Durability::None,
            ..LogConfig::default()
        };
        let (log, reader) = writer_and_reader(tmp.path(), config);
        let mut n = 0u64;
        for op in ops {
            let (start, end) = (log.start_offset(), log.end_offset());
            let at = |f: u8| start + (end - start) * u64::from(f) / 256;
            match op {
                Op::Append(k, durable) => {
                    let batch: Vec<Record> = (0..k)
                        .map(|_| {
                            n += 1;
                            Record::new(format!("r{n}"))
                        })
                        .collect();
                    let d = if durable { Durability::Always } else { Durability::None };
                    log.append_batch_with(&batch, d).unwrap();
                }
                Op::Truncate(f) => {
                    log.truncate_to(at(f)).unwrap();
                }
                Op::Delete(f) => {
                    log.delete_records(at(f)).unwrap();
                    log.apply_retention(0, &topiclog::RetentionPolicy::default()).unwrap();
                }
            }
            let (start, end) = (log.start_offset(), log.end_offset());
            proptest::prop_assert_eq!((reader.start_offset().unwrap(), reader.end_offset().unwrap()), (start, end));
            for offset in start..end {
                let want: Vec<(u64, Option<Vec<u8>>)> = log
                    .read(offset, 200)
                    .unwrap()
                    .records()
                    .map(|r| (r.offset(), r.value().map(|v| v.to_vec())))
                    .collect();
                let got: Vec<(u64, Option<Vec<u8>>)> = reader
                    .read(offset, 200)
                    .unwrap()
                    .records()
                    .map(|r| (r.offset(), r.value().map(|v| v.to_vec())))
                    .collect();
                // The same records from `offset` on (the reader may stop at another batch).
                let common = want.len().min(got.len());
                proptest::prop_assert!(common > 0, "nothing read at {}", offset);
                proptest::prop_assert_eq!(&want[..common], &got[..common]);
            }
            let past_the_end = matches!(reader.read(end + 1, 100), Err(Error::OffsetOutOfRange { .. }));
            proptest::prop_assert!(past_the_end, "a read past the end is out of range");
        }
    }
}
