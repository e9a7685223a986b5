//! A producer that crashes after writing but before learning the offsets resends, and the log has
//! no duplicates.
//!
//! The test re-executes its own binary in child mode (selected by an environment variable naming
//! the store directory), like `partition_crash_kill9`. The child opens the store (real file
//! system) and appends numbered batches with [`Partition::append_idempotent`] (one producer id,
//! epoch 0, per-record sequence numbers) and [`Durability::Always`]. Before each append it writes
//! the batch number it is *about* to send to a side file and fsyncs it, so after the parent
//! SIGKILLs it at a seeded random moment the parent knows the one batch that may or may not have
//! been written: every earlier one was acknowledged.
//!
//! The parent then reopens the store and, like a restarted producer that never learned the
//! outcome, resends the last few batches with the same producer id and sequences: the acknowledged
//! ones must come back `duplicate` with their original offsets, and the unknown one either
//! `duplicate` (it had been written) or fresh at the log end. It appends the next batch itself and
//! closes, and the next child continues the sequence. At the end the log must hold every batch
//! exactly once, in sequence order.
#![cfg(unix)]

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use topiclog::{
    AppendInfo, Durability, LogConfig, Partition, ProducerBatch, ProducerConfig, Record, Store,
    StoreOptions, TopicConfig,
};

/// Set (to the store directory) only in the re-executed child.
const CHILD_DIR_ENV: &str = "TOPICLOG_IDEMPOTENT_CHILD_DIR";
/// The side file the child writes "about to send batch N" lines to.
const CHILD_SIDE_ENV: &str = "TOPICLOG_IDEMPOTENT_CHILD_SIDE";
/// The producer id the child appends with.
const CHILD_PID_ENV: &str = "TOPICLOG_IDEMPOTENT_CHILD_PRODUCER";
/// The first batch number the child sends.
const CHILD_START_ENV: &str = "TOPICLOG_IDEMPOTENT_CHILD_START";
/// Feeds batch sizes, record content and the kill schedule.
const SEED: u64 = 0x1de3_9073_6e74;
/// Kill cycles per `cargo test` run.
const RUNS: u64 = 30;
/// Batches resent after each kill: the unknown one and up to this many before it (all within the
/// five batches a partition remembers per producer).
const RESEND_BEFORE: u64 = 3;
/// The child should never take this long to make progress.
const STALL: Duration = Duration::from_secs(30);
const TOPIC: &str = "events";

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            // Small segments: kills land after rolls, whose producer snapshots are written in the
            // background by maintenance.
            segment_bytes: 32 << 10,
            preallocate: false,
            durability: Durability::Always,
            ..LogConfig::default()
        },
        background_cleaner: false,
        maintenance_interval: Duration::from_millis(20),
        ..StoreOptions::default()
    }
}

/// splitmix64.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Records in batch `n`: 1 to 16.
fn batch_len(n: u64) -> u64 {
    1 + mix(n ^ SEED) % 16
}

/// The first sequence number of batch `n`: the records of every batch before it.
fn base_sequence(n: u64) -> i32 {
    let s: u64 = (0..n).map(batch_len).sum();
    i32::try_from(s).expect("sequence fits")
}

fn value(n: u64, i: u64) -> String {
    let unit = format!("batch{n}-record{i};");
    let len = 20 + (mix(n * 131 + i) % 300) as usize;
    unit.repeat(len / unit.len() + 1)[..len].to_owned()
}

/// Batch `n`'s records.
fn batch(n: u64) -> Vec<Record> {
    (0..batch_len(n))
        .map(|i| Record::new(value(n, i)).with_key(format!("k{}", (n + i) % 7)))
        .collect()
}

fn producer_batch(id: i64, n: u64) -> ProducerBatch {
    ProducerBatch {
        producer_id: id,
        epoch: 0,
        base_sequence: base_sequence(n),
    }
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} unset"))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Child mode: send batches from `CHILD_START_ENV` on, forever, each announced in the side file
/// before it is sent. Does nothing unless the parent set [`CHILD_DIR_ENV`].
#[test]
fn child_producer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let side = std::env::var_os(CHILD_SIDE_ENV).expect("side file");
    let id = env_u64(CHILD_PID_ENV) as i64;
    let mut n = env_u64(CHILD_START_ENV);
    let mut side = OpenOptions::new()
        .append(true)
        .open(side)
        .expect("child: open the side file");
    let store = Store::open_with(&dir, options()).expect("child: open the store");
    let partition = store
        .topic(TOPIC)
        .and_then(|t| t.partition(0))
        .expect("child: the partition");
    loop {
        side.write_all(format!("about {n}\n").as_bytes())
            .and_then(|()| side.sync_data())
            .expect("child: write the side file");
        let info = partition
            .append_idempotent(&batch(n), producer_batch(id, n), Durability::Always)
            .expect("child: append");
        assert!(!info.duplicate, "child: batch {n} is new");
        n += 1;
    }
}

/// The batch numbers the child announced, in order (a torn last line is ignored).
fn announced(side: &Path) -> Vec<u64> {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(side) {
        f.read_to_string(&mut text).expect("read the side file");
    }
    // Only whole lines: a line cut short could name the wrong batch.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .map(|l| {
            l.strip_prefix("about ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad side-file line {l:?}"))
        })
        .collect()
}

fn spawn_child(dir: &Path, side: &Path, id: i64, start: u64) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .arg(crate::common::test_path(module_path!(), "child_producer"))
        .args(["--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_SIDE_ENV, side)
        .env(CHILD_PID_ENV, id.to_string())
        .env(CHILD_START_ENV, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child")
}

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after spawning: often while it opens (recovers) the store.
    Spawn(Duration),
    /// This long after it announced this many batches.
    Announced(usize, Duration),
}

fn kill_schedule(run: u64) -> KillAt {
    let h = mix(SEED ^ run.wrapping_mul(0x2545_f491_4f6c_dd1d));
    // Sub-millisecond resolution: a durable append takes about one fsync, so kills land before,
    // during and after appends and side-file syncs alike.
    let delay = Duration::from_micros((h >> 16) % 3000);
    match run % 5 {
        0 => KillAt::Spawn(Duration::from_millis((h >> 8) % 15)),
        _ => KillAt::Announced(1 + (h >> 40) as usize % 40, delay),
    }
}

/// Run a child from batch `start` until the kill point, SIGKILL it, and return what it announced.
fn run_and_kill(dir: &Path, side: &Path, id: i64, start: u64, kill_at: KillAt) -> Vec<u64> {
    std::fs::write(side, b"").expect("reset the side file");
    let mut child = spawn_child(dir, side, id, start);
    let spawned = Instant::now();
    let mut stalled = false;
    match kill_at {
        KillAt::Spawn(d) => thread::sleep(d),
        KillAt::Announced(n, d) => {
            while announced(side).len() < n {
                if spawned.elapsed() > STALL || child.try_wait().ok().flatten().is_some() {
                    stalled = true;
                    break;
                }
                thread::sleep(Duration::from_micros(200));
            }
            if !stalled {
                thread::sleep(d);
            }
        }
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("wait for the child");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(
        !stalled,
        "child made no progress ({kill_at:?}, {:?}); status {status}; stderr:\n{stderr}",
        spawned.elapsed()
    );
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL ({status}); stderr:\n{stderr}"
    );
    announced(side)
}

/// Every batch in the partition: `(base offset, producer id, base sequence, values)`.
fn batches(p: &Partition) -> Vec<(u64, i64, i32, Vec<String>)> {
    let mut out = Vec::new();
    let mut next = p.start_offset();
    while next < p.end_offset() {
        let read = p.read(next, 1 << 20).expect("read");
        assert!(!read.is_empty(), "read at {next} below the end was empty");
        for b in read.batches() {
            let h = b.header();
            let values = b
                .records()
                .map(|r| String::from_utf8(r.value().expect("value").to_vec()).expect("utf8"))
                .collect();
            out.push((b.base_offset(), h.producer_id, h.base_sequence, values));
        }
        next = read.next_offset();
    }
    out
}

/// Where batch `n` is in the log, if it is.
fn find(p: &Partition, id: i64, n: u64) -> Option<u64> {
    let seq = base_sequence(n);
    batches(p)
        .into_iter()
        .find(|(_, pid, s, _)| *pid == id && *s == seq)
        .map(|(base, ..)| base)
}

/// The log holds batches `0..count` exactly once each, in order, with their records.
fn verify(p: &Partition, id: i64, count: u64) {
    let all = batches(p);
    assert_eq!(all.len() as u64, count, "one stored batch per sent batch");
    let mut offset = 0;
    for (n, (base, pid, seq, values)) in all.into_iter().enumerate() {
        let n = n as u64;
        assert_eq!(base, offset, "batch {n} follows the one before");
        assert_eq!(
            (pid, seq),
            (id, base_sequence(n)),
            "batch {n} in sequence order"
        );
        let expected: Vec<String> = (0..batch_len(n)).map(|i| value(n, i)).collect();
        assert_eq!(values, expected, "batch {n}'s records");
        offset += batch_len(n);
    }
    assert_eq!(p.end_offset(), offset);
}

#[test]
fn kill9_then_resend_stores_every_batch_exactly_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().join("store");
    let side = tmp.path().join("side");
    let started = Instant::now();
    let id = {
        let store = Store::open_with(&dir, options()).expect("create the store");
        store
            .create_topic(TOPIC, TopicConfig::with_partitions(1))
            .expect("create the topic");
        let producer = store
            .producer(ProducerConfig::default())
            .expect("a producer");
        let id = producer.producer_id().expect("an idempotent producer id");
        producer.close().expect("close the producer");
        store.close().expect("close the store");
        id
    };
    // Batches 0..next are in the log, for certain.
    let mut next = 0u64;
    let (mut duplicates, mut unknown_written, mut unknown_fresh, mut sent_by_children) =
        (0, 0, 0, 0);
    for run in 0..RUNS {
        let kill_at = kill_schedule(run);
        let said = run_and_kill(&dir, &side, id, next, kill_at);
        if let Some(&first) = said.first() {
            assert_eq!(first, next, "run {run}: the child started where told");
        }
        for w in said.windows(2) {
            assert_eq!(w[1], w[0] + 1, "run {run}: batches are announced in order");
        }

        let store = Store::open_with(&dir, options())
            .unwrap_or_else(|e| panic!("run {run} ({kill_at:?}): reopen after the kill: {e}"));
        let p = store.topic(TOPIC).unwrap().partition(0).unwrap();
        let end_before = p.end_offset();
        // The batch announced last may or may not be there; all before it were acknowledged.
        let unknown = said.last().copied();
        if let Some(u) = unknown {
            sent_by_children += u - next;
            for n in next..u {
                assert!(
                    find(&p, id, n).is_some(),
                    "run {run}: acknowledged batch {n} is missing"
                );
            }
            let resend_from = u.saturating_sub(RESEND_BEFORE).max(next);
            for n in resend_from..=u {
                let stored_at = find(&p, id, n);
                let end = p.end_offset();
                let info: AppendInfo = p
                    .append_idempotent(&batch(n), producer_batch(id, n), Durability::Always)
                    .unwrap_or_else(|e| panic!("run {run}: resend of batch {n}: {e}"));
                let count = batch_len(n);
                match stored_at {
                    Some(base) => {
                        assert!(info.duplicate, "run {run}: batch {n} was stored already");
                        assert_eq!(
                            (info.base_offset, info.last_offset),
                            (base, base + count - 1),
                            "run {run}: batch {n}'s original offsets"
                        );
                        assert_eq!(p.end_offset(), end, "a duplicate writes nothing");
                        duplicates += 1;
                        if n == u {
                            unknown_written += 1;
                        }
                    }
                    None => {
                        assert_eq!(n, u, "run {run}: only the last batch may be missing");
                        assert!(!info.duplicate, "run {run}: batch {n} was not stored");
                        assert_eq!(
                            (info.base_offset, info.last_offset),
                            (end, end + count - 1),
                            "run {run}: batch {n} appended at the end"
                        );
                        unknown_fresh += 1;
                    }
                }
            }
            next = u + 1;
        }
        // Continue the sequence, as the restarted producer would.
        let info = p
            .append_idempotent(&batch(next), producer_batch(id, next), Durability::Always)
            .unwrap_or_else(|e| panic!("run {run}: batch {next} after the resends: {e}"));
        assert!(!info.duplicate);
        next += 1;
        verify(&p, id, next);
        eprintln!(
            "run {run:2}: {kill_at:?}: {} announced, unknown {unknown:?}, end {end_before} -> {}, \
             {} segments",
            said.len(),
            p.end_offset(),
            p.segment_count()
        );
        store.close().expect("clean close");
    }

    let store = Store::open_with(&dir, options()).expect("final open");
    let p = store.topic(TOPIC).unwrap().partition(0).unwrap();
    verify(&p, id, next);
    eprintln!(
        "{RUNS} kills in {:?}: {next} batches ({} records, {} segments); children sent \
         {sent_by_children} acknowledged batches; {duplicates} resends were duplicates, of the \
         unknown batch {unknown_written} written and {unknown_fresh} not",
        started.elapsed(),
        p.end_offset(),
        p.segment_count()
    );
    assert!(duplicates > 0, "some resends must find their batch stored");
    assert!(
        sent_by_children >= RUNS,
        "the children must get appends acknowledged ({sent_by_children})"
    );
    assert!(p.segment_count() >= 3, "appends must roll segments");
}
