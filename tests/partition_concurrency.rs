//! A partition shared between threads: appenders, readers and `wait_for` tailers run at once, on
//! both file systems, while small segments roll underneath them.
//!
//! Records describe themselves (writer, sequence number, the batch they were appended in, and a
//! checksum), so a reader can check each one byte for byte without knowing which offsets the
//! writers were given; afterwards the readers' views are compared with the offsets the appends
//! returned.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::both_fs;
use topiclog::fs::{CrashMode, FileSystem, SimFs};
use topiclog::segment::RecordBatch;
use topiclog::{Bytes, Durability, Env, LogConfig, Partition, Record, StoredRecord};

/// Long enough that only a lost wake-up or a hang can reach it.
const TIMEOUT: Duration = Duration::from_secs(10);
const SEED: u64 = 0xc0c0_4e11;

// Static assertion: a partition can be cloned and shared across threads.
const _: () = {
    const fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Partition>();
};

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        // Small segments and indexes so that rolls and index lookups happen under the readers.
        segment_bytes: 16 << 10,
        index_interval_bytes: 1024,
        max_index_bytes: 4096,
        durability,
        ..LogConfig::default()
    }
}

/// splitmix64.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Who appends what: `writers` threads, each appending `per_writer` records numbered from 0.
#[derive(Clone, Copy, Debug)]
struct Workload {
    writers: u32,
    per_writer: u32,
    /// Only single-record appends (otherwise a mix of singles and batches of 1–20).
    singles: bool,
}

impl Workload {
    fn total(&self) -> u64 {
        u64::from(self.writers) * u64::from(self.per_writer)
    }

    /// The batches writer `writer` appends, as `(first sequence number, record count)`.
    fn plan(&self, writer: u32) -> Vec<(u32, u32)> {
        let mut batches = Vec::new();
        let mut seq = 0;
        while seq < self.per_writer {
            let h = mix(SEED ^ (u64::from(writer) << 32) ^ u64::from(seq));
            let len = if self.singles || h.is_multiple_of(3) {
                1
            } else {
                1 + (h >> 8) as u32 % 20
            };
            let len = len.min(self.per_writer - seq);
            batches.push((seq, len));
            seq += len;
        }
        batches
    }
}

/// A record's identity, as encoded in its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Id {
    writer: u32,
    seq: u32,
    batch_start: u32,
    batch_len: u32,
}

/// The record `id` names: value `w<writer>:s<seq>:b<start>+<len>:` + pseudo-random payload +
/// CRC-32 (little-endian) of everything before it; key, timestamp and headers derived from the id.
fn record_for(id: Id) -> Record {
    let h = mix(SEED ^ (u64::from(id.writer) << 32) ^ u64::from(id.seq) ^ 0x5eed);
    let mut value = format!(
        "w{}:s{}:b{}+{}:",
        id.writer, id.seq, id.batch_start, id.batch_len
    )
    .into_bytes();
    let payload_len = (h % 400) as usize;
    value.extend((0..payload_len).map(|i| mix(h ^ i as u64) as u8));
    let crc = crc32fast::hash(&value);
    value.extend_from_slice(&crc.to_le_bytes());
    let mut record = Record::new(value)
        .with_key(format!("writer-{}", id.writer))
        .with_timestamp(1_700_000_000_000 + i64::from(id.seq))
        .with_header("seq", Bytes::from(id.seq.to_string()));
    if h.is_multiple_of(4) {
        record = record.with_header("null", None);
    }
    record
}

/// Check a stored record against its own description and return who wrote it.
fn identify(record: &StoredRecord) -> Id {
    let at = record.offset();
    let value = record
        .value()
        .unwrap_or_else(|| panic!("offset {at}: no value"));
    assert!(value.len() >= 4, "offset {at}: value too short");
    let (body, crc) = value.split_at(value.len() - 4);
    assert_eq!(
        crc32fast::hash(body).to_le_bytes(),
        crc,
        "offset {at}: value checksum"
    );
    let fields: Vec<&[u8]> = body.splitn(4, |&b| b == b':').collect();
    let field = |i: usize, prefix: char| -> &str {
        std::str::from_utf8(fields[i])
            .ok()
            .and_then(|f| f.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("offset {at}: bad field {i}"))
    };
    let number = |s: &str| -> u32 {
        s.parse()
            .unwrap_or_else(|_| panic!("offset {at}: bad number {s:?}"))
    };
    assert_eq!(fields.len(), 4, "offset {at}: value has four fields");
    let (start, len) = field(2, 'b')
        .split_once('+')
        .unwrap_or_else(|| panic!("offset {at}: bad batch field"));
    let id = Id {
        writer: number(field(0, 'w')),
        seq: number(field(1, 's')),
        batch_start: number(start),
        batch_len: number(len),
    };
    assert_eq!(
        record.to_record(),
        record_for(id),
        "offset {at}: byte-identical to what {id:?} appended"
    );
    id
}

/// A reader's view of the log: who wrote each offset, checked as it goes.
struct View {
    workload: Workload,
    /// `(writer, seq)` by offset.
    ids: Vec<(u32, u32)>,
    /// Next sequence number expected from each writer.
    next_seq: Vec<u32>,
}

impl View {
    fn new(workload: Workload) -> Self {
        View {
            workload,
            ids: Vec::with_capacity(workload.total() as usize),
            next_seq: vec![0; workload.writers as usize],
        }
    }

    fn next_offset(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Take the next batch: it must start exactly at the next offset, be whole, come from one
    /// writer's append, and continue that writer's sequence.
    fn take(&mut self, batch: &RecordBatch) {
        let base = self.next_offset();
        assert_eq!(batch.base_offset(), base, "batches are dense");
        let count = u64::from(batch.record_count());
        assert_eq!(batch.last_offset() + 1 - base, count, "no gaps in a batch");
        let mut first = None;
        for (i, record) in batch.records().enumerate() {
            assert_eq!(record.offset(), base + i as u64, "record offsets are dense");
            let id = identify(&record);
            let batch_id = *first.get_or_insert(id);
            assert_eq!(
                (id.writer, id.batch_start, id.batch_len),
                (batch_id.writer, batch_id.batch_start, batch_id.batch_len),
                "offset {}: one batch holds one append",
                record.offset()
            );
            assert!(id.writer < self.workload.writers);
            let expected = &mut self.next_seq[id.writer as usize];
            assert_eq!(
                id.seq,
                *expected,
                "offset {}: writer {} in its own order, exactly once",
                record.offset(),
                id.writer
            );
            *expected += 1;
            self.ids.push((id.writer, id.seq));
        }
        assert_eq!(
            self.next_offset(),
            base + count,
            "batch at {base} yields its records"
        );
        let id = first.expect("a batch holds records");
        assert_eq!(id.seq, id.batch_start, "batch at {base} starts its append");
        assert_eq!(
            u64::from(id.batch_len),
            count,
            "batch at {base} holds the whole append (no partial batch)"
        );
    }

    /// Whether every record has been seen.
    fn complete(&self) -> bool {
        self.next_offset() == self.workload.total()
    }

    fn finish(self) -> Vec<(u32, u32)> {
        assert!(
            self.next_seq.iter().all(|&s| s == self.workload.per_writer),
            "every writer's records appear exactly once: {:?}",
            self.next_seq
        );
        self.ids
    }
}

/// How a reader waits for more data.
#[derive(Clone, Copy, Debug)]
enum Follow {
    /// Poll `end_offset`, yielding; sometimes read at a random offset it has already seen.
    Poll { max_bytes: usize },
    /// Block in `wait_for(next, TIMEOUT)`.
    Tail { max_bytes: usize },
}

/// Read the log from 0 until all `workload` records are seen, checking everything on the way.
fn follow(log: &Partition, workload: Workload, how: Follow, seed: u64) -> Vec<(u32, u32)> {
    let mut view = View::new(workload);
    let mut rng = seed;
    let mut progress = Instant::now();
    while !view.complete() {
        let next = view.next_offset();
        let max_bytes = match how {
            Follow::Poll { max_bytes } => {
                if log.end_offset() <= next {
                    assert!(
                        progress.elapsed() < TIMEOUT,
                        "reader stuck at {next} (end {})",
                        log.end_offset()
                    );
                    thread::yield_now();
                    continue;
                }
                max_bytes
            }
            Follow::Tail { max_bytes } => {
                assert!(
                    log.wait_for(next, TIMEOUT),
                    "tailer waited in vain at {next} (end {})",
                    log.end_offset()
                );
                max_bytes
            }
        };
        progress = Instant::now();
        let read = log
            .read(next, max_bytes)
            .unwrap_or_else(|e| panic!("{how:?}: read at {next}: {e}"));
        assert!(!read.is_empty(), "{how:?}: read at {next} below the end");
        let records: Vec<u64> = read.records().map(|r| r.offset()).collect();
        for batch in read.batches() {
            view.take(batch);
        }
        assert_eq!(read.next_offset(), view.next_offset());
        assert_eq!(
            records,
            (next..view.next_offset()).collect::<Vec<_>>(),
            "records() yields the batches' records"
        );

        rng = mix(rng);
        if matches!(how, Follow::Poll { .. }) && rng.is_multiple_of(8) {
            // A point read into the middle of what is already known.
            let at = rng % view.next_offset();
            let read = log
                .read(at, 1)
                .unwrap_or_else(|e| panic!("point read at {at}: {e}"));
            let batch = read.batches().first().expect("a batch at a known offset");
            assert!(batch.base_offset() <= at && at <= batch.last_offset());
            let first = read.records().next().expect("a record at a known offset");
            assert_eq!(
                first.offset(),
                at,
                "records() starts at the requested offset"
            );
            let id = identify(&first);
            assert_eq!((id.writer, id.seq), view.ids[at as usize], "stable at {at}");
        }
    }
    view.finish()
}

/// Writer `writer`'s part of `workload`: append its plan in order; returns where each append
/// landed, as `(base offset, first sequence number, record count)`.
fn write_plan(log: &Partition, workload: Workload, writer: u32) -> Vec<(u64, u32, u32)> {
    let plan = workload.plan(writer);
    let mut placed = Vec::with_capacity(plan.len());
    for (batch_start, batch_len) in plan {
        let records: Vec<Record> = (batch_start..batch_start + batch_len)
            .map(|seq| {
                record_for(Id {
                    writer,
                    seq,
                    batch_start,
                    batch_len,
                })
            })
            .collect();
        let base = if batch_len == 1 {
            log.append(records[0].clone())
                .unwrap_or_else(|e| panic!("writer {writer}: append: {e}"))
        } else {
            let info = log
                .append_batch(&records)
                .unwrap_or_else(|e| panic!("writer {writer}: append_batch: {e}"));
            assert_eq!(info.last_offset + 1 - info.base_offset, batch_len.into());
            info.base_offset
        };
        placed.push((base, batch_start, batch_len));
    }
    placed
}

/// `(writer, seq)` by offset, from where the appends say they landed. Checks that each writer's
/// offsets increase and that together they cover `0..total` exactly once.
fn assignment(workload: Workload, placed: &[Vec<(u64, u32, u32)>]) -> Vec<(u32, u32)> {
    let mut by_offset = vec![None; workload.total() as usize];
    for (writer, appends) in placed.iter().enumerate() {
        assert!(
            appends.windows(2).all(|w| w[0].0 < w[1].0),
            "writer {writer}: its offsets increase"
        );
        for &(base, batch_start, batch_len) in appends {
            for i in 0..batch_len {
                let offset = base + u64::from(i);
                let slot = by_offset
                    .get_mut(offset as usize)
                    .unwrap_or_else(|| panic!("offset {offset} is past the total"));
                assert!(slot.is_none(), "offset {offset} given out twice");
                *slot = Some((writer as u32, batch_start + i));
            }
        }
    }
    by_offset
        .into_iter()
        .enumerate()
        .map(|(o, id)| id.unwrap_or_else(|| panic!("offset {o} was never given out")))
        .collect()
}

#[test]
fn partition_is_send_sync_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Partition>();

    // Clones share one log.
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path()).unwrap();
    let other = log.clone();
    let offset = thread::spawn(move || other.append(Record::new("from another thread")).unwrap())
        .join()
        .unwrap();
    assert_eq!(offset, 0);
    assert_eq!(log.end_offset(), 1);
}

/// Four writers (singles and batches), two polling readers and two tailers at once.
fn readers_and_tailers_during_appends(fs: Arc<dyn FileSystem>, dir: &Path, durability: Durability) {
    let workload = Workload {
        writers: 4,
        per_writer: 500,
        singles: false,
    };
    let log = Partition::open_with_env(dir, config(durability), Env::with_fs(fs.clone())).unwrap();
    let readers = [
        Follow::Poll { max_bytes: 1 },
        Follow::Poll {
            max_bytes: 64 << 10,
        },
        Follow::Tail { max_bytes: 4096 },
        Follow::Tail { max_bytes: 1 << 20 },
    ];
    let start = Barrier::new(workload.writers as usize + readers.len());
    let (placed, views) = thread::scope(|s| {
        let views: Vec<_> = readers
            .iter()
            .enumerate()
            .map(|(i, &how)| {
                let (log, start) = (&log, &start);
                s.spawn(move || {
                    start.wait();
                    follow(log, workload, how, SEED ^ i as u64)
                })
            })
            .collect();
        let writers: Vec<_> = (0..workload.writers)
            .map(|writer| {
                let (log, start) = (&log, &start);
                s.spawn(move || {
                    start.wait();
                    write_plan(log, workload, writer)
                })
            })
            .collect();
        let placed: Vec<_> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        let views: Vec<_> = views.into_iter().map(|h| h.join().unwrap()).collect();
        (placed, views)
    });

    let appended = assignment(workload, &placed);
    for (view, how) in views.iter().zip(readers) {
        assert!(
            view == &appended,
            "{how:?} saw each offset as the append that got it"
        );
    }
    assert_eq!(log.end_offset(), workload.total());
    assert!(!log.wait_for(workload.total(), Duration::ZERO));
    assert!(
        log.segment_count() >= 4,
        "segments rolled under the readers ({})",
        log.segment_count()
    );
    if durability == Durability::Always {
        assert_eq!(log.durable_offset(), log.end_offset());
    }
    let tail = Follow::Tail { max_bytes: 1 << 16 };
    assert_eq!(follow(&log, workload, tail, 0), appended);

    // And the same log comes back after a clean reopen.
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env(dir, config(durability), Env::with_fs(fs)).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(follow(&log, workload, tail, 0), appended);
}

#[test]
fn readers_and_tailers_see_a_dense_verified_log_while_four_threads_append() {
    both_fs(|fs, dir| {
        for durability in [Durability::None, Durability::Always] {
            let dir = dir.join(format!("{durability:?}"));
            readers_and_tailers_during_appends(fs.clone(), &dir, durability);
        }
    });
}

#[test]
fn wait_for_wakes_promptly_when_another_thread_appends() {
    both_fs(|fs, dir| {
        let log =
            Partition::open_with_env(dir, config(Durability::None), Env::with_fs(fs)).unwrap();
        log.append(Record::new("r0")).unwrap();
        assert!(log.wait_for(0, Duration::ZERO), "offset 0 is already there");

        // Waiters for the three records of the next batch, and one for a record that never comes.
        let waiters: Vec<_> = (1..=3)
            .map(|offset| {
                let log = log.clone();
                thread::spawn(move || {
                    let started = Instant::now();
                    (log.wait_for(offset, TIMEOUT), started.elapsed())
                })
            })
            .collect();
        let beyond = {
            let log = log.clone();
            thread::spawn(move || log.wait_for(100, Duration::from_millis(300)))
        };
        // Give the waiters a moment to block (correctness does not depend on it).
        thread::sleep(Duration::from_millis(50));
        let appender = {
            let log = log.clone();
            thread::spawn(move || {
                log.append_batch(&[Record::new("r1"), Record::new("r2"), Record::new("r3")])
                    .unwrap()
            })
        };
        assert_eq!(appender.join().unwrap().base_offset, 1);
        for (offset, waiter) in (1..=3).zip(waiters) {
            let (found, waited) = waiter.join().unwrap();
            assert!(found, "wait_for({offset}) sees the batch");
            assert!(
                waited < TIMEOUT,
                "wait_for({offset}) was woken by the append, not by its timeout ({waited:?})"
            );
        }
        assert!(!beyond.join().unwrap(), "offset 100 never arrived");
        assert!(log.wait_for(3, Duration::ZERO));
        assert!(!log.wait_for(4, Duration::ZERO));
    });
}

#[test]
fn wait_for_times_out_without_data_and_returns_false_once_closed() {
    both_fs(|fs, dir| {
        let log =
            Partition::open_with_env(dir, config(Durability::None), Env::with_fs(fs)).unwrap();
        assert!(!log.wait_for(0, Duration::ZERO), "empty log");
        log.append(Record::new("r0")).unwrap();

        let timeout = Duration::from_millis(200);
        let started = Instant::now();
        assert!(!log.wait_for(1, timeout), "no data arrives");
        assert!(
            started.elapsed() >= timeout,
            "wait_for gave up before its timeout"
        );

        // A blocked waiter is released by a close on another clone.
        let waiter = {
            let log = log.clone();
            thread::spawn(move || {
                let started = Instant::now();
                (log.wait_for(1, TIMEOUT), started.elapsed())
            })
        };
        thread::sleep(Duration::from_millis(50));
        log.close().unwrap();
        let (found, waited) = waiter.join().unwrap();
        assert!(!found, "closed before data arrived");
        assert!(waited < TIMEOUT, "close woke the waiter ({waited:?})");

        let started = Instant::now();
        assert!(!log.wait_for(1, TIMEOUT), "closed");
        assert!(started.elapsed() < TIMEOUT, "returns at once when closed");
        assert!(
            log.wait_for(0, TIMEOUT),
            "data below the end is still there"
        );
    });
}

/// Eight threads of single-record appends under `Durability::Always`.
const GROUP_COMMIT: Workload = Workload {
    writers: 8,
    per_writer: 150,
    singles: true,
};

/// Run [`GROUP_COMMIT`] and check where everything landed; returns `(writer, seq)` by offset.
fn group_commit(log: &Partition) -> Vec<(u32, u32)> {
    let start = Barrier::new(GROUP_COMMIT.writers as usize);
    let placed: Vec<_> = thread::scope(|s| {
        let writers: Vec<_> = (0..GROUP_COMMIT.writers)
            .map(|writer| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    write_plan(log, GROUP_COMMIT, writer)
                })
            })
            .collect();
        writers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let appended = assignment(GROUP_COMMIT, &placed);
    assert_eq!(log.end_offset(), GROUP_COMMIT.total());
    assert_eq!(
        log.durable_offset(),
        log.end_offset(),
        "every acknowledged append is durable"
    );
    let tail = Follow::Tail { max_bytes: 1 << 16 };
    assert_eq!(follow(log, GROUP_COMMIT, tail, 0), appended);
    appended
}

#[test]
fn group_commit_makes_every_concurrent_append_durable() {
    both_fs(|fs, dir| {
        let log =
            Partition::open_with_env(dir, config(Durability::Always), Env::with_fs(fs)).unwrap();
        group_commit(&log);
    });
}

#[test]
fn group_commit_acknowledged_appends_survive_power_loss() {
    let sim = SimFs::new(11);
    // Directly under the root, so that only group commit is under test: `open_with` makes only
    // the last directory level it creates durable, and a crash loses a fresh `/a/b` with `a`.
    let dir = Path::new("/group");
    let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
    let log = Partition::open_with_env(dir, config(Durability::Always), Env::with_fs(fs.clone()))
        .unwrap();
    let appended = group_commit(&log);

    // Lose everything that was not synced; the dropped partition cannot close cleanly any more.
    sim.crash(CrashMode::LoseUnsynced);
    drop(log);
    let log = Partition::open_with_env(dir, config(Durability::Always), Env::with_fs(fs)).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(log.end_offset(), GROUP_COMMIT.total());
    let tail = Follow::Tail { max_bytes: 1 << 16 };
    assert_eq!(follow(&log, GROUP_COMMIT, tail, 0), appended);
}
