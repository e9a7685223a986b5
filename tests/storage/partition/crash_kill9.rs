//! A partition survives `kill -9` of the process appending to it: every acknowledged record comes
//! back byte for byte, the log is a dense prefix of what was written, and appends continue.
//!
//! The test re-executes its own binary in child mode (selected by an environment variable naming
//! the partition directory). The child appends with [`Durability::Always`] forever, reporting each
//! acknowledged offset over a pipe; the parent SIGKILLs it at a seeded random moment, reopens the
//! partition in-process and checks it. Every run continues the same log, so later kills land after
//! several segment rolls, and some land while the child is still opening (recovering) the log.
//! Now and then the child writes a recovery point, so most reopens rescan only from the active
//! segment's last index entry below it.
//!
//! Record content and batch boundaries are functions of the offset alone, so the parent can verify
//! records the child appended but did not live to acknowledge, and a child resuming after a kill
//! writes exactly what its predecessor would have.
#![cfg(unix)]

use crate::common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use topiclog::{Bytes, Durability, LogConfig, Partition, Record};

/// Set (to the partition directory) only in the re-executed child.
const CHILD_ENV: &str = "TOPICLOG_CRASH_CHILD_DIR";
/// Marks the child's protocol lines among whatever the test harness prints.
const MARK: &str = "@@topiclog-crash@@ ";
/// Feeds the record content, batch boundaries and kill schedule.
const SEED: u64 = 0x6b69_6c6c_2d39;
/// Kill points per `cargo test` run.
const RUNS: u64 = 24;
/// The child should never take this long to acknowledge anything.
const STALL: Duration = Duration::from_secs(30);
const SEGMENT_BYTES: u64 = 64 << 10;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        durability: Durability::Always,
        preallocate: true,
        ..LogConfig::default()
    }
}

/// splitmix64: a fixed, well-mixed function of its input.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Number of records in the batch that starts at `base`: a third are single-record appends, the
/// rest batches of 1–20.
fn batch_len_at(base: u64) -> u64 {
    let h = mix(base ^ SEED);
    if h.is_multiple_of(3) {
        1
    } else {
        1 + (h >> 8) % 20
    }
}

/// The record at `offset`: value `v<offset>-<seed>;` repeated to a varying length (now and then a
/// tombstone), a key (usually), a timestamp and up to three headers, one of them null.
fn record_at(offset: u64) -> Record {
    let h = mix(offset.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ SEED);
    let key = format!("key-{offset}");
    let mut record = if h.is_multiple_of(13) {
        Record::tombstone(key)
    } else {
        let unit = format!("v{offset}-{SEED:x};");
        let len = 1 + (h >> 4) as usize % 1500;
        let value = unit.repeat(len / unit.len() + 1)[..len].to_owned();
        let record = Record::new(value);
        if h.is_multiple_of(5) {
            record
        } else {
            record.with_key(key)
        }
    };
    record = record.with_timestamp(1_700_000_000_000 + (offset as i64) * 3);
    for i in 0..(h >> 20) % 4 {
        let value = (i != 2).then(|| format!("{offset}:{i}"));
        record = record.with_header(format!("h{i}"), value.map(Bytes::from));
    }
    record
}

/// The batch that starts at `base`.
fn batch_at(base: u64) -> Vec<Record> {
    (base..base + batch_len_at(base)).map(record_at).collect()
}

/// Append the batch that belongs at the log's end; returns its last offset.
fn append_next(log: &Partition, next: u64) -> u64 {
    let batch = batch_at(next);
    let last = if batch.len() == 1 {
        log.append(batch[0].clone()).expect("append")
    } else {
        let info = log.append_batch(&batch).expect("append_batch");
        assert_eq!(info.base_offset, next, "batch placed at the log end");
        info.last_offset
    };
    assert_eq!(last, next + batch.len() as u64 - 1, "appended at {next}");
    last
}

/// Child mode: append forever, reporting each acknowledged last offset. Does nothing unless the
/// parent set [`CHILD_ENV`], so an ordinary `cargo test` run just passes it.
#[test]
fn child_appender() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let log = Partition::open_with(&dir, config()).expect("child: open");
    let mut out = std::io::stdout().lock();
    let mut next = log.end_offset();
    let mut report = |line: String| {
        if writeln!(out, "{MARK}{line}")
            .and_then(|()| out.flush())
            .is_err()
        {
            // The parent is gone. Leave as a crash would: no clean close.
            std::process::exit(0);
        }
    };
    report(format!("open {next}"));
    loop {
        let last = append_next(&log, next);
        // Now and then a recovery point (with the active segment's index entries below it), as
        // a store's maintenance writes: the next open rescans only from the last of them.
        if mix(last ^ SEED).is_multiple_of(8) {
            log.flush_checkpoint().expect("child: flush_checkpoint");
        }
        report(format!("ack {last}"));
        next = last + 1;
    }
}

/// What the child said.
enum Said {
    Open(u64),
    Ack(u64),
}

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after spawning, acknowledged or not: often while the child is still opening or
    /// recovering the log.
    Spawn(Duration),
    /// This long after the child's first acknowledgement.
    FirstAck(Duration),
    /// This long after the child has acknowledged this many records (several segments' worth).
    Records(u64, Duration),
}

fn kill_schedule(run: u64) -> KillAt {
    let h = mix(SEED ^ run.wrapping_mul(0x51_7cc1_b727_220a));
    let ms = |lo: u64, hi: u64| Duration::from_millis(lo + (h >> 16) % (hi - lo + 1));
    match run % 6 {
        0 => KillAt::Spawn(ms(0, 10)),
        3 => KillAt::Records(150 + (h >> 40) % 250, ms(0, 20)),
        _ => KillAt::FirstAck(ms(5, 60)),
    }
}

/// Spawn this test binary in child mode on `dir`.
fn spawn_child(dir: &Path) -> (Child, Receiver<Said>, thread::JoinHandle<String>) {
    let run = common::spawn_test_child(
        &common::test_path(module_path!(), "child_appender"),
        (CHILD_ENV, dir.as_os_str()),
        MARK,
        |msg| {
            if let Some(n) = msg.strip_prefix("open ") {
                Said::Open(n.parse().expect("open offset"))
            } else if let Some(n) = msg.strip_prefix("ack ") {
                Said::Ack(n.parse().expect("ack offset"))
            } else {
                panic!("unexpected child line {msg:?}");
            }
        },
    );
    (run.child, run.said, run.stderr)
}

/// What one child run acknowledged.
#[derive(Default)]
struct Heard {
    opened_at: Option<u64>,
    acked: Option<u64>,
    acks: u64,
}

impl Heard {
    fn take(&mut self, said: Said) {
        match said {
            Said::Open(end) => self.opened_at = Some(end),
            Said::Ack(last) => {
                assert!(
                    self.acked.is_none_or(|a| last > a),
                    "acks must increase: {last} after {:?}",
                    self.acked
                );
                self.acked = Some(last);
                self.acks += 1;
            }
        }
    }

    fn acked_records(&self) -> u64 {
        match (self.opened_at, self.acked) {
            (Some(open), Some(last)) => last + 1 - open,
            _ => 0,
        }
    }
}

/// Let the child run until the kill point, then SIGKILL it and collect everything it said.
fn run_and_kill(dir: &Path, kill_at: KillAt) -> Heard {
    let (mut child, rx, errors) = spawn_child(dir);
    let spawned = Instant::now();
    let mut heard = Heard::default();
    let mut stalled = None;
    let wait_until = |heard: &mut Heard, done: &dyn Fn(&Heard) -> bool| -> Result<(), String> {
        while !done(heard) {
            match rx.recv_timeout(STALL) {
                Ok(said) => heard.take(said),
                Err(RecvTimeoutError::Timeout) => return Err("no progress".into()),
                Err(RecvTimeoutError::Disconnected) => return Err("child exited".into()),
            }
        }
        Ok(())
    };
    let delay = match kill_at {
        KillAt::Spawn(d) => d,
        KillAt::FirstAck(d) => {
            stalled = wait_until(&mut heard, &|h| h.acked.is_some()).err();
            d
        }
        KillAt::Records(n, d) => {
            stalled = wait_until(&mut heard, &|h| h.acked_records() >= n).err();
            d
        }
    };
    if stalled.is_none() {
        thread::sleep(delay);
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("wait for the child");
    // The pipe stays readable after the kill: everything acknowledged before it is still there.
    for said in rx.iter() {
        heard.take(said);
    }
    let stderr = errors.join().unwrap_or_default();
    if let Some(why) = stalled {
        panic!(
            "child stalled ({why}) after {:?}; status {status}; stderr:\n{stderr}",
            spawned.elapsed()
        );
    }
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL, not exit on its own ({status}); stderr:\n{stderr}"
    );
    heard
}

/// Read the whole log and check it is exactly the deterministic sequence, batch for batch.
fn verify_dense_prefix(log: &Partition) {
    assert_eq!(log.start_offset(), 0);
    let end = log.end_offset();
    let mut next = 0;
    while next < end {
        let read = log
            .read(next, 256 << 10)
            .unwrap_or_else(|e| panic!("read at {next} of {end}: {e}"));
        assert!(!read.is_empty(), "read at {next} below end {end} was empty");
        for batch in read.batches() {
            let base = batch.base_offset();
            assert_eq!(base, next, "batches are dense");
            let len = batch_len_at(base);
            assert_eq!(
                (batch.record_count() as u64, batch.last_offset()),
                (len, base + len - 1),
                "batch at {base} is whole"
            );
            let mut offset = base;
            for record in batch.records() {
                assert_eq!(record.offset(), offset);
                assert_eq!(
                    record.to_record(),
                    record_at(offset),
                    "record at {offset} is byte-identical"
                );
                offset += 1;
            }
            assert_eq!(offset, base + len, "batch at {base} yielded all records");
            next = batch.next_offset();
        }
        assert_eq!(read.next_offset(), next);
    }
    assert_eq!(next, end);
}

#[test]
fn kill9_during_appends_keeps_every_acknowledged_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p0");
    let started = Instant::now();
    let mut end = 0u64;
    let mut unclean = 0;
    let mut progressed = 0;
    let mut killed_before_open = 0;
    for run in 0..RUNS {
        let kill_at = kill_schedule(run);
        let heard = run_and_kill(&dir, kill_at);
        if let Some(opened_at) = heard.opened_at {
            assert_eq!(
                opened_at, end,
                "run {run}: the child reopened at the end the parent left"
            );
        } else {
            killed_before_open += 1;
        }

        let log = Partition::open_with(&dir, config())
            .unwrap_or_else(|e| panic!("run {run} ({kill_at:?}): reopen after kill: {e}"));
        let report = log.recovery_report();
        if !report.clean_shutdown {
            unclean += 1;
            // Bounded by what followed the last recovery point: at most the active segment.
            assert!(
                report.bytes_scanned <= SEGMENT_BYTES + 2 * (64 << 10),
                "run {run}: scanned {} bytes",
                report.bytes_scanned
            );
        }
        let new_end = log.end_offset();
        eprintln!(
            "run {run:2}: {kill_at:?}: opened at {:?}, {} acks up to {:?}, end {end} -> {new_end}, \
             {} segments, {report:?}",
            heard.opened_at,
            heard.acks,
            heard.acked,
            log.segment_count()
        );
        assert!(
            new_end >= end,
            "run {run}: the log lost records it had at open"
        );
        if let Some(acked) = heard.acked {
            assert!(
                new_end > acked,
                "run {run}: offset {acked} was acknowledged but the log ends at {new_end}"
            );
            progressed += 1;
        }
        assert_eq!(
            log.durable_offset(),
            new_end,
            "run {run}: recovery leaves the log durable"
        );
        verify_dense_prefix(&log);

        // Appends continue where the log ends, and are readable like the rest.
        let last = append_next(&log, new_end);
        assert_eq!(log.end_offset(), last + 1);
        verify_dense_prefix(&log);
        end = last + 1;
        if run % 4 < 2 {
            log.close().expect("clean close");
        } else {
            // Leave without a clean close, so the next child must recover before appending.
            log.abandon();
        }
    }

    let log = Partition::open_with(&dir, config()).expect("final open");
    verify_dense_prefix(&log);
    assert_eq!(log.end_offset(), end);
    eprintln!(
        "{RUNS} kills in {:?}: {unclean} unclean reopens, {progressed} runs acknowledged appends, \
         {killed_before_open} killed before open, final end {end}, {} segments",
        started.elapsed(),
        log.segment_count()
    );
    assert!(unclean > 0, "some kills must leave an unclean log");
    assert!(
        progressed >= RUNS / 2,
        "most children must get appends acknowledged ({progressed} of {RUNS})"
    );
    assert!(
        end > RUNS,
        "the log must grow beyond the parent's own appends"
    );
    assert!(
        log.segment_count() >= 4,
        "appends must roll segments ({} segments)",
        log.segment_count()
    );
}
