//! At-least-once consumption survives `kill -9` of the consuming process: every record is
//! processed at least once, none is skipped, and the group's committed offsets end at the log end.
//!
//! The parent writes a topic and closes the store. The test then re-executes its own binary in
//! child mode (selected by an environment variable naming the working directory); the child opens
//! the store, subscribes in a group and, for every poll, appends the records' `(partition,
//! offset)` to a side file and fsyncs it *before* `commit_sync`, reporting each commit over a
//! pipe. The parent SIGKILLs it at seeded random moments — some while it is still opening the
//! store — and after each kill reopens the store itself to check that everything below the
//! committed offsets is in the side file and that commits never go back. A last child runs to
//! completion.
#![cfg(unix)]

use crate::common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use topiclog::{
    AutoOffsetReset, ConsumerConfig, Durability, LogConfig, Record, Store, StoreOptions,
    TopicConfig,
};

/// Set (to the working directory) only in the re-executed child.
const CHILD_ENV: &str = "TOPICLOG_CONSUMER_KILL9_DIR";
/// Marks the child's protocol lines among whatever the test harness prints.
const MARK: &str = "@@topiclog-consumer-kill9@@ ";
const SEED: u64 = 0x636f_6e73_756d_6539;
const TOPIC: &str = "t";
const GROUP: &str = "g";
const PARTITIONS: u32 = 4;
const RECORDS: u32 = 4_000;
/// The child rests this long after each commit, so however fast the machine, a run makes at most
/// 12 + 24 ms / 2 ms = 24 commits of 16 records before its kill: the 8 killed runs never reach
/// the end on their own.
const PACE: Duration = Duration::from_millis(2);
/// Records per poll, so there are many commits to kill between.
const MAX_POLL_RECORDS: usize = 16;
/// Kills before the run to completion.
const KILLS: u64 = 8;
/// The child should never take this long to say anything.
const STALL: Duration = Duration::from_secs(30);

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

/// splitmix64: a fixed, well-mixed function of its input.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A side-file line: `<partition>:<offset>;`. A line torn by the kill lacks the `;` and is
/// ignored (it was not fsynced, so no commit covers it).
fn parse_side(text: &str) -> Vec<(u32, u64)> {
    text.lines()
        .filter_map(|line| {
            let (p, o) = line.strip_suffix(';')?.split_once(':')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

fn read_side(path: &Path) -> Vec<(u32, u64)> {
    match std::fs::read(path) {
        Ok(bytes) => parse_side(&String::from_utf8_lossy(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// Child mode: consume, record, fsync, commit, until every partition is committed to its end.
/// Does nothing unless the parent set [`CHILD_ENV`], so an ordinary `cargo test` run just passes.
#[test]
fn child_consumer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let mut out = std::io::stdout().lock();
    let mut report = |line: &str| {
        if writeln!(out, "{MARK}{line}")
            .and_then(|()| out.flush())
            .is_err()
        {
            // The parent is gone. Leave as a crash would.
            std::process::exit(0);
        }
    };
    let mut side = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("processed.log"))
        .expect("child: open the side file");
    // A line torn by an earlier kill must not swallow the next one.
    side.write_all(b"\n").expect("child: side file");
    let store = Store::open_with(dir.join("store"), options()).expect("child: open the store");
    let ends = store.topic(TOPIC).expect("child: topic").end_offsets();
    let mut consumer = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            enable_auto_commit: false,
            max_poll_records: MAX_POLL_RECORDS,
            ..ConsumerConfig::group(GROUP)
        })
        .expect("child: consumer");
    consumer.subscribe(&[TOPIC]).expect("child: subscribe");
    report("open");
    loop {
        let records = consumer
            .poll(Duration::from_millis(100))
            .expect("child: poll");
        if !records.is_empty() {
            // Process: record durably, then commit.
            let mut lines = String::new();
            for r in &records {
                lines.push_str(&format!("{}:{};\n", r.partition(), r.offset()));
            }
            side.write_all(lines.as_bytes())
                .and_then(|()| side.sync_data())
                .expect("child: side file");
            consumer.commit_sync().expect("child: commit_sync");
            report(&format!("committed {}", records.len()));
            thread::sleep(PACE);
        }
        let assignment = consumer.assignment();
        let done = assignment.len() == PARTITIONS as usize
            && assignment.iter().all(|tp| {
                consumer.position(tp).expect("child: position") == ends[tp.partition as usize]
            });
        if done {
            break;
        }
    }
    consumer.close().expect("child: close the consumer");
    store.close().expect("child: close the store");
    report("done");
}

/// What the child said.
enum Said {
    Open,
    Committed,
    Done,
}

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after spawning: often while it is still opening (recovering) the store.
    Spawn(Duration),
    /// This long after its `n`th commit.
    Commits(u64, Duration),
}

fn kill_schedule(run: u64) -> KillAt {
    let h = mix(SEED ^ run.wrapping_mul(0x51_7cc1_b727_220a));
    let ms = Duration::from_millis((h >> 16) % 25);
    match run % 4 {
        0 => KillAt::Spawn(ms),
        _ => KillAt::Commits(1 + (h >> 40) % 12, ms),
    }
}

struct Running {
    child: Child,
    said: Receiver<Said>,
    stderr: thread::JoinHandle<String>,
}

fn spawn_child(dir: &Path) -> Running {
    let run = common::spawn_test_child(
        &common::test_path(module_path!(), "child_consumer"),
        (CHILD_ENV, dir.as_os_str()),
        MARK,
        |msg| match msg {
            "open" => Said::Open,
            "done" => Said::Done,
            m if m.starts_with("committed ") => Said::Committed,
            _ => panic!("unexpected child line {msg:?}"),
        },
    );
    Running {
        child: run.child,
        said: run.said,
        stderr: run.stderr,
    }
}

/// What one child run said.
#[derive(Debug, Default)]
struct Heard {
    opened: bool,
    commits: u64,
    done: bool,
}

impl Heard {
    fn take(&mut self, said: Said) {
        match said {
            Said::Open => self.opened = true,
            Said::Committed => self.commits += 1,
            Said::Done => self.done = true,
        }
    }
}

/// Wait until `done(heard)`; `Err` if the child stalls or exits first.
fn listen(r: &Running, heard: &mut Heard, done: impl Fn(&Heard) -> bool) -> Result<(), String> {
    while !done(heard) {
        match r.said.recv_timeout(STALL) {
            Ok(s) => heard.take(s),
            Err(RecvTimeoutError::Timeout) => return Err("no progress".into()),
            Err(RecvTimeoutError::Disconnected) => return Err("child exited".into()),
        }
    }
    Ok(())
}

fn finish(mut r: Running, heard: &mut Heard) -> (ExitStatus, String) {
    let status = r.child.wait().expect("wait for the child");
    for s in r.said.iter() {
        heard.take(s);
    }
    (status, r.stderr.join().unwrap_or_default())
}

fn run_and_kill(dir: &Path, kill_at: KillAt) -> Heard {
    let mut r = spawn_child(dir);
    let mut heard = Heard::default();
    let stalled = match kill_at {
        KillAt::Spawn(d) => {
            thread::sleep(d);
            None
        }
        KillAt::Commits(n, d) => {
            let stalled = listen(&r, &mut heard, |h| h.commits >= n).err();
            if stalled.is_none() {
                thread::sleep(d);
            }
            stalled
        }
    };
    r.child.kill().expect("SIGKILL the child");
    let (status, stderr) = finish(r, &mut heard);
    if let Some(why) = stalled {
        panic!("child stalled ({why}); status {status}; stderr:\n{stderr}");
    }
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL, not exit on its own ({status}, {heard:?}); stderr:\n{stderr}"
    );
    assert!(!heard.done, "killed before it could finish");
    heard
}

/// The group's committed offset for each partition (0 where none), read by reopening the store.
fn committed(store_dir: &Path) -> Vec<u64> {
    let store = Store::open_with(store_dir, options()).expect("reopen the store after a kill");
    let mut out = vec![0; PARTITIONS as usize];
    for l in store.group_lag(GROUP).unwrap() {
        assert_eq!(l.partition.topic, TOPIC);
        out[l.partition.partition as usize] = l.committed.map_or(0, |c| c.offset);
    }
    store.close().unwrap();
    out
}

/// Every record below the committed offsets is in the side file (processed before committed).
fn assert_processed_below(committed: &[u64], side: &[(u32, u64)], what: &str) {
    let mut seen: BTreeMap<u32, Vec<bool>> = BTreeMap::new();
    for (p, c) in committed.iter().enumerate() {
        seen.insert(p as u32, vec![false; *c as usize]);
    }
    for &(p, o) in side {
        if let Some(slot) = seen.get_mut(&p).and_then(|v| v.get_mut(o as usize)) {
            *slot = true;
        }
    }
    for (p, v) in &seen {
        if let Some(o) = v.iter().position(|s| !s) {
            panic!(
                "{what}: partition {p} is committed to {} but offset {o} was never processed",
                v.len()
            );
        }
    }
}

#[test]
fn kill9_while_consuming_processes_every_record_at_least_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let store_dir = dir.join("store");
    let side_path = dir.join("processed.log");
    let ends = {
        let store = Store::open_with(&store_dir, options()).unwrap();
        let t = store
            .create_topic(TOPIC, TopicConfig::with_partitions(PARTITIONS))
            .unwrap();
        for i in 0..RECORDS {
            t.send_to(i % PARTITIONS, Record::new(format!("record-{i}")))
                .unwrap();
        }
        let ends = t.end_offsets();
        store.close().unwrap();
        ends
    };
    let started = Instant::now();

    let mut last = vec![0; PARTITIONS as usize];
    let mut opened = 0;
    for run in 0..KILLS {
        let kill_at = kill_schedule(run);
        let heard = run_and_kill(dir, kill_at);
        opened += u64::from(heard.opened);
        let now = committed(&store_dir);
        let side = read_side(&side_path);
        eprintln!(
            "run {run}: {kill_at:?}: {} commits heard, committed {now:?}, {} lines processed",
            heard.commits,
            side.len()
        );
        for p in 0..PARTITIONS as usize {
            assert!(
                now[p] >= last[p],
                "run {run}: commits went back: {last:?} -> {now:?}"
            );
            assert!(
                now[p] <= ends[p],
                "run {run}: committed past the end: {now:?}"
            );
        }
        assert_processed_below(&now, &side, &format!("run {run}"));
        last = now;
    }
    assert!(
        last.iter().sum::<u64>() > 0,
        "the killed runs must make progress"
    );
    assert!(opened > 0, "some children must get as far as consuming");

    // The last run goes to the end.
    let r = spawn_child(dir);
    let mut heard = Heard::default();
    let stalled = listen(&r, &mut heard, |h| h.done).err();
    let (status, stderr) = finish(r, &mut heard);
    assert!(
        stalled.is_none() && status.success() && heard.done,
        "final run: {stalled:?}, {status}, {heard:?}; stderr:\n{stderr}"
    );

    let side = read_side(&side_path);
    let final_committed = committed(&store_dir);
    assert_eq!(
        final_committed, ends,
        "the group committed every partition to its end"
    );
    assert_processed_below(&final_committed, &side, "final");
    for &(p, o) in &side {
        assert!(
            p < PARTITIONS && o < ends[p as usize],
            "processed ({p}, {o}) is not a record"
        );
    }
    // Each kill can lose at most the batch it interrupted between processing and committing.
    let duplicates = side.len() - RECORDS as usize;
    eprintln!(
        "{KILLS} kills and a final run in {:?}: {} processed, {duplicates} more than once",
        started.elapsed(),
        side.len()
    );
    assert!(
        duplicates <= (KILLS as usize) * MAX_POLL_RECORDS,
        "{duplicates} records processed twice: commits did not hold across kills"
    );
}
