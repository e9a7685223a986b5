//! Compaction interrupted: by a power loss at every mutating operation of a pass, by an I/O fault
//! at every operation, by faults on either side of the swap's commit point; and compaction under
//! concurrent readers and an appender on the real file system.
//!
//! The power-loss scenarios (on `SimFs`) start from a cleanly closed log with several sealed
//! segments holding duplicates, tombstones and keyless records, run one pass with the power cut
//! after `n` operations for every `n` from 0 to the number a clean pass makes, crash (losing every
//! unsynced byte, or tearing unsynced writes) and reopen. The reopen must succeed; the directory
//! holds no `.cleaned`/`.swap` file, no index without its `.log`, and exactly the `.log`s of the
//! segments; the log ends where it did; every original segment's range reads back either as before
//! the pass or exactly as after a clean pass (a pass swaps segment groups in one at a time); every
//! batch is an original batch range; point reads at every offset and `offset_for_time` agree with
//! the records read; the first dirty offset is the old or the new one. A pass run again then
//! yields exactly the clean pass's log, a clean reopen reads the same, and appends go on at the old
//! end. Scenarios: a first pass that merges every segment into one; a first pass that writes
//! several groups; a second pass that rewrites cleaned segments and drops tombstones whose horizon
//! passed; a pass whose key map fills (it cleans a prefix only).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{crash_without_close, RecordView};
use topiclog::fs::{CrashMode, Fault, FaultOp, FileSystem, SimFs};
use topiclog::limits::MIN_MAP_BUDGET_BYTES;
use topiclog::segment::{parse_segment_file_name, RecordBatch, SegmentFileKind, SegmentView};
use topiclog::{
    CompactionPolicy, CompactionReport, Deadline, Durability, Env, Error, LogConfig, ManualClock,
    Partition, Record,
};

const DIR: &str = "/data/p0";
const T0: i64 = 1_700_000_000_000;

/// `fs` on the fixed clock `T0`.
fn sim_env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(T0)),
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        index_interval_bytes: 100,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn policy(delete_retention_ms: u64, map_budget_bytes: usize) -> CompactionPolicy {
    CompactionPolicy {
        delete_retention: Duration::from_millis(delete_retention_ms),
        min_compaction_lag: Duration::ZERO,
        max_compaction_lag: Deadline::Never,
        min_cleanable_dirty_ratio: 0.0,
        map_budget_bytes,
    }
}

fn value(i: u64, len: usize) -> Vec<u8> {
    let mut v = format!("value-{i}:").into_bytes();
    v.resize(len, b'a' + (i % 26) as u8);
    v
}

/// Appends `n` rounds over keys `k<from>`..`k<from + keys - 1>`: mostly single records, every fifth
/// round a batch of three, every seventh a tombstone, every eleventh a keyless record.
fn append_mixed(log: &Partition, n: u64, from: u64, keys: u64, tag: u64) {
    let key = |i: u64| format!("k{}", from + (i * 7 + tag) % keys);
    for i in 0..n {
        let seq = tag * 1000 + i;
        if i % 7 == 3 {
            log.append(Record::tombstone(key(i))).unwrap();
        } else if i % 11 == 5 {
            log.append(Record::new(value(seq, 40))).unwrap();
        } else if i % 5 == 0 {
            let batch: Vec<Record> = (0..3)
                .map(|j| Record::new(value(seq * 10 + j, 50)).with_key(key(i + j)))
                .collect();
            log.append_batch(&batch).unwrap();
        } else {
            log.append(Record::new(value(seq, 90)).with_key(key(i)))
                .unwrap();
        }
    }
}

/// Everything read back, batch by batch: `(base, next, records)`.
type Dump = Vec<(u64, u64, Vec<RecordView>)>;

fn dump(log: &Partition) -> Dump {
    let end = log.end_offset();
    let mut next = log.start_offset();
    let mut out: Dump = Vec::new();
    while next < end {
        let b = log
            .read(next, 1 << 20)
            .unwrap_or_else(|e| panic!("read({next}) failed: {e}"));
        if b.is_empty() {
            break;
        }
        for batch in b.batches() {
            if let Some(last) = out.last() {
                assert!(last.1 <= batch.base_offset(), "batches out of order");
            }
            if batch.record_count() == 0 {
                // An empty batch ending a cleaned segment: where passes put them depends on
                // how they grouped segments; it holds nothing to compare.
                continue;
            }
            out.push((
                batch.base_offset(),
                batch.next_offset(),
                batch.records().map(|r| RecordView::of(&r)).collect(),
            ));
        }
        next = b.next_offset();
    }
    out
}

fn records(d: &Dump) -> Vec<RecordView> {
    d.iter().flat_map(|b| b.2.clone()).collect()
}

fn in_range(recs: &[RecordView], from: u64, to: u64) -> Vec<RecordView> {
    recs.iter()
        .filter(|r| r.offset >= from && r.offset < to)
        .cloned()
        .collect()
}

fn offsets(recs: &[RecordView]) -> Vec<u64> {
    recs.iter().map(|r| r.offset).collect()
}

fn bases(log: &Partition) -> Vec<u64> {
    log.segments().iter().map(|s| s.base_offset()).collect()
}

/// A fresh file system holding exactly the files of `src` (everything durable): every run of a
/// scenario starts from the same bytes without rebuilding them. Runs alternate, by the seed's
/// second bit, between reads through copies and through real maps
/// ([`SimFs::with_mapped_reads`], the read path `StdFs` takes).
fn clone_fs(src: &SimFs, seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    let fs = if seed & 2 == 0 {
        fs.with_mapped_reads()
    } else {
        fs
    };
    fs.write_file(Path::new("/data/.keep"), b"");
    for name in src.read_dir(Path::new(DIR)).unwrap() {
        let path = Path::new(DIR).join(&name);
        fs.write_file(&path, &src.read_file(&path).unwrap());
    }
    fs
}

/// No compaction leftovers, no orphan index, and the `.log`s are exactly the segments.
fn check_dir(fs: &SimFs, bases: &[u64], what: &str) {
    let names = fs.read_dir(Path::new(DIR)).unwrap();
    for n in &names {
        assert!(
            !n.ends_with(".cleaned") && !n.ends_with(".swap"),
            "{what}: leftover {n} in {names:?}"
        );
    }
    let files: Vec<(u64, SegmentFileKind)> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    let mut logs: Vec<u64> = files
        .iter()
        .filter(|(_, k)| *k == SegmentFileKind::Log)
        .map(|(b, _)| *b)
        .collect();
    logs.sort_unstable();
    assert_eq!(logs, bases, "{what}: .log files vs segments");
    for (b, k) in &files {
        assert!(logs.contains(b), "{what}: orphan {k:?} file for base {b}");
    }
}

/// After a pass failed before its commit point, in the running process: no `.swap` file (a
/// `.cleaned` one may stay until the next open removes it), and the `.log`s are the segments.
fn check_no_swap(fs: &SimFs, bases: &[u64], what: &str) {
    let names = fs.read_dir(Path::new(DIR)).unwrap();
    assert!(
        !names.iter().any(|n| n.ends_with(".swap")),
        "{what}: a swap file survived a failed pass: {names:?}"
    );
    let mut logs: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .filter(|(_, k)| *k == SegmentFileKind::Log)
        .map(|(b, _)| b)
        .collect();
    logs.sort_unstable();
    assert_eq!(logs, bases, "{what}: .log files vs segments");
}

/// A scenario: the files before the pass and what a clean pass makes of them.
struct Scenario {
    name: &'static str,
    base: SimFs,
    now: i64,
    policy: CompactionPolicy,
    /// Before the pass.
    pre: Dump,
    pre_bases: Vec<u64>,
    pre_first_dirty: u64,
    /// After a clean pass.
    post: Dump,
    post_bases: Vec<u64>,
    post_first_dirty: u64,
    report: CompactionReport,
    end: u64,
    /// Mutating operations of a clean pass.
    ops: u64,
}

impl Scenario {
    /// Close `log` (on `fs`) and measure a clean pass at `now` with `policy`.
    fn new(
        name: &'static str,
        fs: SimFs,
        log: Partition,
        now: i64,
        policy: CompactionPolicy,
    ) -> Scenario {
        log.close().unwrap();
        drop(log);
        let base = clone_fs(&fs, 0);
        let fs = clone_fs(&base, 0);
        let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
        let pre = dump(&log);
        let pre_bases = bases(&log);
        let pre_first_dirty = log.first_dirty_offset();
        let end = log.end_offset();
        let before = fs.mutating_ops();
        let report = log.compact(now, &policy).unwrap();
        let ops = fs.mutating_ops() - before;
        assert!(report.cleaned, "{name}: {report:?}");
        assert!(report.records_removed > 0, "{name}: {report:?}");
        assert_eq!(log.end_offset(), end, "{name}");
        let post = dump(&log);
        assert_ne!(records(&pre), records(&post), "{name}");
        check_dir(&fs, &bases(&log), name);
        let s = Scenario {
            name,
            base,
            now,
            policy,
            pre,
            pre_bases,
            pre_first_dirty,
            post,
            post_bases: bases(&log),
            post_first_dirty: log.first_dirty_offset(),
            report,
            end,
            ops,
        };
        // The clean pass's result survives a reopen.
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
        assert_eq!(dump(&log), s.post, "{name}: clean pass, reopened");
        s
    }

    /// Expected records when the segment groups below `boundary` (an offset where a segment of
    /// the clean pass's result starts) were swapped in and the rest were not.
    fn mixed(&self, boundary: u64) -> Vec<RecordView> {
        let mut v = in_range(&records(&self.post), 0, boundary);
        v.extend(in_range(&records(&self.pre), boundary, u64::MAX));
        v
    }

    /// What the log (reopened, or still open after a failed pass) must satisfy whatever the pass
    /// got through. Returns the records read.
    fn check_consistent(&self, log: &Partition, what: &str) -> Vec<RecordView> {
        assert_eq!(log.start_offset(), 0, "{what}");
        assert_eq!(log.end_offset(), self.end, "{what}: the end moved");
        let got = dump(log);
        let recs = records(&got);
        let (pre, post) = (records(&self.pre), records(&self.post));
        // Original segment by original segment: as before, or as after the clean pass.
        let mut bounds = self.pre_bases.clone();
        bounds.push(u64::MAX);
        for w in bounds.windows(2) {
            let seen = in_range(&recs, w[0], w[1]);
            let before = in_range(&pre, w[0], w[1]);
            let after = in_range(&post, w[0], w[1]);
            assert!(
                seen == before || seen == after,
                "{what}: segment [{}, {}) reads {:?}, neither before {:?} nor after {:?}",
                w[0],
                w[1],
                offsets(&seen),
                offsets(&before),
                offsets(&after)
            );
        }
        // Every batch keeps an original batch's offset range.
        let ranges: Vec<(u64, u64)> = self.pre.iter().map(|b| (b.0, b.1)).collect();
        for b in &got {
            assert!(
                ranges.contains(&(b.0, b.1)),
                "{what}: batch [{}, {}) is not an original batch range",
                b.0,
                b.1
            );
        }
        // A point read returns the first batch holding a record at or after the offset (every
        // third offset, which third varying from call to call).
        let phase = what.len() as u64 % 3;
        for o in (0..self.end).filter(|o| o % 3 == phase) {
            let b = log.read(o, 1).unwrap();
            let want = got
                .iter()
                .find(|b| b.2.iter().any(|r| r.offset >= o))
                .map(|b| (b.0, b.1));
            let have = b
                .batches()
                .first()
                .map(|b| (b.base_offset(), b.next_offset()));
            assert_eq!(have, want, "{what}: read({o}, 1)");
        }
        // offset_for_time agrees with brute force.
        let mut probes: Vec<i64> = recs.iter().map(|r| r.timestamp).collect();
        probes.extend([i64::MIN, T0 + 1_000_000]);
        probes.sort_unstable();
        probes.dedup();
        for ts in probes {
            let want = recs
                .iter()
                .find(|r| r.timestamp >= ts)
                .map(|r| (r.timestamp, r.offset));
            let have = log
                .offset_for_time(ts)
                .unwrap()
                .map(|t| (t.timestamp, t.offset));
            assert_eq!(have, want, "{what}: offset_for_time({ts})");
        }
        let fd = log.first_dirty_offset();
        assert!(
            fd == self.pre_first_dirty || fd == self.post_first_dirty,
            "{what}: first dirty offset {fd}, neither {} nor {}",
            self.pre_first_dirty,
            self.post_first_dirty
        );
        recs
    }

    /// After whatever happened, a pass run again gives exactly the clean result, which survives a
    /// clean reopen, and appends go on at the end.
    fn finish(&self, fs: &SimFs, log: Partition, what: &str) {
        self.finish_with(fs, log, what, true);
    }

    /// [`finish`](Self::finish); unless `strict`, a `.cleaned` file an earlier failed pass of this
    /// process left behind may remain until the reopen.
    fn finish_with(&self, fs: &SimFs, log: Partition, what: &str, strict: bool) {
        // (After a pass whose map filled, a pass run again would clean the next part.)
        if !(self.report.map_full && log.first_dirty_offset() == self.post_first_dirty) {
            let report = log
                .compact(self.now, &self.policy)
                .unwrap_or_else(|e| panic!("{what}: the pass run again failed: {e}"));
            assert_eq!(dump(&log), self.post, "{what}: pass run again ({report:?})");
        }
        assert_eq!(dump(&log), self.post, "{what}: pass run again");
        assert_eq!(
            log.first_dirty_offset(),
            self.post_first_dirty,
            "{what}: pass run again"
        );
        if strict {
            check_dir(fs, &bases(&log), what);
        } else {
            check_no_swap(fs, &bases(&log), what);
        }
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(DIR, config(), sim_env(fs)).unwrap();
        assert!(log.recovery_report().clean_shutdown, "{what}");
        check_dir(fs, &bases(&log), what);
        assert_eq!(dump(&log), self.post, "{what}: reopened");
        assert_eq!(
            log.append(Record::new("after").with_key("k0")).unwrap(),
            self.end,
            "{what}: appends go on at the end"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

fn new_log(seed: u64) -> (SimFs, Partition) {
    let fs = SimFs::new(seed);
    fs.write_file(Path::new("/data/.keep"), b"");
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    (fs, log)
}

/// A log of fresh segments, sealed by a large record with a key of its own.
fn fresh(seed: u64, keys: u64) -> (SimFs, Partition) {
    let (fs, log) = new_log(seed);
    append_mixed(&log, 70, 0, keys, 1);
    log.append(Record::new(value(0, 900)).with_key("filler"))
        .unwrap();
    assert!(log.segment_count() >= 8, "{}", log.segment_count());
    (fs, log)
}

/// A first pass over fresh segments with few keys: so little survives that every segment merges
/// into one cleaned segment (one group, many sources).
fn merging_pass() -> Scenario {
    let (fs, log) = fresh(1, 6);
    let s = Scenario::new("merging pass", fs, log, T0, policy(1_000, 1 << 20));
    assert!(
        s.report.segments_written == 1 && s.report.segments_read > 5,
        "{:?}",
        s.report
    );
    s
}

/// A first pass over fresh segments with more keys: the survivors fill several cleaned segments
/// (several groups, swapped in one after another).
fn multi_group_pass() -> Scenario {
    let (fs, log) = fresh(2, 24);
    let s = Scenario::new("multi-group pass", fs, log, T0, policy(1_000, 1 << 20));
    assert!(s.report.segments_written >= 3, "{:?}", s.report);
    s
}

/// A second pass: it rewrites what the first one cleaned, removing values that new records
/// superseded and the first pass's tombstones, whose horizon has passed (their keys are not
/// written again).
fn second_pass() -> Scenario {
    let (fs, log) = new_log(3);
    append_mixed(&log, 70, 0, 24, 1);
    for k in 18..24 {
        log.append(Record::tombstone(format!("k{k}"))).unwrap();
    }
    log.append(Record::new(value(0, 900)).with_key("filler"))
        .unwrap();
    let first = log.compact(T0, &policy(1_000, 1 << 20)).unwrap();
    assert!(first.cleaned);
    append_mixed(&log, 40, 0, 12, 2);
    log.append(Record::new(value(1, 900)).with_key("filler"))
        .unwrap();
    let s = Scenario::new("second pass", fs, log, T0 + 5_000, policy(1_000, 1 << 20));
    assert!(s.report.tombstones_removed >= 6, "{:?}", s.report);
    assert!(s.report.segments_written >= 2, "{:?}", s.report);
    s
}

/// A pass whose key map fills: it cleans a prefix of the dirty range only.
fn map_full_pass() -> Scenario {
    let (fs, log) = new_log(4);
    // 30 keys, each written several times, then 100 new keys: the smallest map (112 keys) fills
    // among the new keys, after the duplicates.
    for i in 0..90u64 {
        log.append(Record::new(value(i, 20)).with_key(format!("w{}", (i * 7) % 30)))
            .unwrap();
    }
    for i in 0..100u64 {
        log.append(Record::new(value(1000 + i, 20)).with_key(format!("x{i}")))
            .unwrap();
    }
    log.append(Record::new(value(0, 900)).with_key("filler"))
        .unwrap();
    let s = Scenario::new(
        "map-full pass",
        fs,
        log,
        T0,
        policy(1_000, MIN_MAP_BUDGET_BYTES),
    );
    assert!(s.report.map_full, "{:?}", s.report);
    s
}

// ---------------------------------------------------------------------------------------------
// A power cut at every operation
// ---------------------------------------------------------------------------------------------

/// Cut the power after every operation of the pass; crash losing unsynced data each time, and
/// tearing unsynced writes after every `torn_every`-th cut.
fn cut_at_every_operation(s: &Scenario, torn_every: u64) {
    assert!(
        s.ops >= 20,
        "{}: the pass makes only {} operations",
        s.name,
        s.ops
    );
    let mut mixes = 0;
    for n in 0..=s.ops {
        for (m, mode) in [CrashMode::LoseUnsynced, CrashMode::Torn]
            .into_iter()
            .enumerate()
        {
            if mode == CrashMode::Torn && n % torn_every != 0 {
                continue;
            }
            let what = format!("{}: cut after {n} of {} ops, {mode:?}", s.name, s.ops);
            let fs = clone_fs(&s.base, n * 2 + m as u64);
            let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
            fs.power_cut_after(n);
            let result = log.compact(s.now, &s.policy);
            assert_eq!(result.is_ok(), n >= s.ops, "{what}: {result:?}");
            crash_without_close(log);
            fs.crash(mode);

            let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
                .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            check_dir(&fs, &bases(&log), &what);
            let recs = s.check_consistent(&log, &what);
            if recs != records(&s.pre) && recs != records(&s.post) {
                mixes += 1;
            }
            s.finish(&fs, log, &what);
        }
    }
    if s.report.segments_written > 1 {
        assert!(mixes > 0, "{}: no cut left a partly swapped log", s.name);
    }
}

#[test]
fn merging_pass_cut_at_every_operation() {
    cut_at_every_operation(&merging_pass(), 1);
}

#[test]
fn multi_group_pass_cut_at_every_operation() {
    cut_at_every_operation(&multi_group_pass(), 1);
}

#[test]
fn second_pass_cut_at_every_operation() {
    cut_at_every_operation(&second_pass(), 1);
}

#[test]
fn map_full_pass_cut_at_every_operation() {
    cut_at_every_operation(&map_full_pass(), 3);
}

/// Directory entries may reach the disk through someone else's `sync_dir` (a roll of the active
/// segment does one) at any point of the swap. Replays the pass with a power cut after every
/// operation, makes the directory durable as it stood, then crashes: the open must still finish
/// or roll back the swap.
#[test]
fn crash_after_a_concurrent_directory_sync_at_every_operation() {
    let s = second_pass();
    for n in 0..=s.ops {
        let what = format!(
            "{}: cut after {n} of {} ops, directory synced",
            s.name, s.ops
        );
        let fs = clone_fs(&s.base, n);
        let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
        fs.power_cut_after(n);
        let _ = log.compact(s.now, &s.policy);
        fs.clear_faults();
        fs.sync_dir(Path::new(DIR)).unwrap();
        crash_without_close(log);
        fs.crash(CrashMode::LoseUnsynced);
        let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
            .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
        check_dir(&fs, &bases(&log), &what);
        s.check_consistent(&log, &what);
        s.finish(&fs, log, &what);
    }
}

/// `close` while a pass runs (in another thread) stops the pass at its next check; whatever it
/// had swapped in stays, the rest is discarded. Tried at several moments of the pass: the close
/// succeeds, the reopen is clean and consistent, and a pass run again gives the clean result.
#[test]
fn close_during_a_pass_leaves_a_consistent_log() {
    let (fs, log) = new_log(5);
    for round in 0..6 {
        append_mixed(&log, 70, 0, 24, round + 1);
    }
    log.append(Record::new(value(0, 900)).with_key("filler"))
        .unwrap();
    let s = Scenario::new("big pass", fs, log, T0, policy(1_000, 1 << 20));
    assert!(s.report.segments_written >= 3, "{:?}", s.report);
    let mut stopped = 0;
    for delay_us in [0u64, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000] {
        let what = format!("close after {delay_us} us");
        let fs = clone_fs(&s.base, delay_us);
        let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
        let pass = {
            let (log, now, policy) = (log.clone(), s.now, s.policy);
            std::thread::spawn(move || log.compact(now, &policy))
        };
        std::thread::sleep(Duration::from_micros(delay_us));
        log.close().unwrap();
        match pass.join().unwrap() {
            Ok(_) => {}
            Err(Error::Closed { .. }) => stopped += 1,
            Err(e) => panic!("{what}: the pass failed with {e}"),
        }
        drop(log);
        let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
        assert!(log.recovery_report().clean_shutdown, "{what}");
        check_dir(&fs, &bases(&log), &what);
        s.check_consistent(&log, &what);
        s.finish(&fs, log, &what);
    }
    assert!(stopped > 0, "no close stopped a pass");
}

// ---------------------------------------------------------------------------------------------
// I/O faults
// ---------------------------------------------------------------------------------------------

fn poisoned(log: &Partition) -> bool {
    match log.flush() {
        Ok(()) => false,
        Err(Error::Poisoned { .. }) => true,
        Err(e) => panic!("flush failed with {e}"),
    }
}

/// One operation of the pass fails (each `n` in turn), the rest work. Before the commit point the
/// pass fails cleanly: the partition is not poisoned, and only the groups already swapped in show.
/// After it, the partition is poisoned (reads go on, from the segments it holds) and the next open
/// finishes the swap. Either way a pass run again gives the clean result.
fn fault_at_every_operation(s: &Scenario) {
    let (mut clean, mut poison) = (0, 0);
    for n in 0..s.ops {
        let what = format!("{}: fault at op {n} of {}", s.name, s.ops);
        let fs = clone_fs(&s.base, n);
        let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
        fs.inject(Fault::new(FaultOp::Any, n));
        let result = log.compact(s.now, &s.policy);
        fs.clear_faults();
        let e = match result {
            Err(e) => e,
            Ok(report) => {
                // The failed operation was a best-effort one: removing the output of a group
                // that removed nothing (which stays until the next open).
                assert_eq!(dump(&log), s.post, "{what}: the pass succeeded: {report:?}");
                s.finish_with(&fs, log, &what, false);
                continue;
            }
        };
        assert!(
            matches!(e, Error::Io { .. }),
            "{what}: the pass failed with {e}"
        );
        if poisoned(&log) {
            poison += 1;
            s.check_consistent(&log, &format!("{what}, poisoned"));
            assert!(matches!(
                log.append(Record::new("x").with_key("k0")),
                Err(Error::Poisoned { .. })
            ));
            if n % 2 == 0 {
                log.close().unwrap();
                drop(log);
            } else {
                crash_without_close(log);
                fs.crash(CrashMode::LoseUnsynced);
            }
            let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
                .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            check_dir(&fs, &bases(&log), &what);
            s.check_consistent(&log, &format!("{what}, reopened"));
            s.finish(&fs, log, &what);
        } else {
            clean += 1;
            check_no_swap(&fs, &bases(&log), &what);
            s.check_consistent(&log, &what);
            if n % 2 == 0 {
                // A `.cleaned` file may stay until the next open; see
                // `failed_create_of_a_cleaned_segment_leaves_it_behind`.
                s.finish_with(&fs, log, &what, false);
            } else {
                // Or a crash right away: the open sorts out what the failure left.
                crash_without_close(log);
                fs.crash(CrashMode::LoseUnsynced);
                let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
                    .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
                check_dir(&fs, &bases(&log), &what);
                s.check_consistent(&log, &format!("{what}, crashed"));
                s.finish(&fs, log, &what);
            }
        }
    }
    assert!(
        clean > 0 && poison > 0,
        "{}: {clean} clean failures, {poison} poisoning ones",
        s.name
    );
}

#[test]
fn multi_group_pass_fault_at_every_operation() {
    fault_at_every_operation(&multi_group_pass());
}

#[test]
fn second_pass_fault_at_every_operation() {
    fault_at_every_operation(&second_pass());
}

/// The rename of the first cleaned `.log` to `.swap` fails: before the commit point. The pass
/// fails, the log is exactly as before, nothing is left behind, the partition is not poisoned and
/// takes appends, and a later pass does the job.
#[test]
fn fault_before_the_commit_point_leaves_the_log_as_it_was() {
    let s = multi_group_pass();
    let fs = clone_fs(&s.base, 9);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    fs.inject(Fault {
        path_contains: Some(".log.cleaned".into()),
        ..Fault::new(FaultOp::Rename, 0)
    });
    let err = log.compact(s.now, &s.policy).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(!poisoned(&log));
    assert_eq!(dump(&log), s.pre);
    assert_eq!(log.first_dirty_offset(), s.pre_first_dirty);
    assert_eq!(bases(&log), s.pre_bases);
    check_dir(&fs, &s.pre_bases, "after the failed pass");
    // Appends work and land at the end.
    assert_eq!(
        log.append(Record::new("late").with_key("late")).unwrap(),
        s.end
    );
    // A later pass does the job (the new record is in the active segment and stays).
    let report = log.compact(s.now, &s.policy).unwrap();
    assert!(report.cleaned);
    let got = records(&dump(&log));
    assert_eq!(got[..got.len() - 1], records(&s.post)[..]);
    assert_eq!(got.last().unwrap().offset, s.end);
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    assert_eq!(records(&dump(&log)), got);
}

/// `Inner::clean_sources` creates each cleaned segment with `Segment::create_with_suffix(..)?`: if
/// the file is created but the `set_len(0)` that follows fails, the error returns without
/// `discard_cleaned`, so `<base>.log.cleaned` stays in the directory. The partition is not
/// poisoned and later passes succeed, but unless one of them happens to start a group at the same
/// base the file stays until the next open deletes it.
#[test]
fn failed_create_of_a_cleaned_segment_leaves_it_behind() {
    let s = multi_group_pass();
    let fs = clone_fs(&s.base, 11);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    fs.inject(Fault {
        path_contains: Some(".log.cleaned".into()),
        ..Fault::new(FaultOp::SetLen, 0)
    });
    let err = log.compact(s.now, &s.policy).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(!poisoned(&log));
    assert_eq!(dump(&log), s.pre);
    check_dir(&fs, &s.pre_bases, "after the failed pass");
}

/// Deleting the first replaced segment's `.log` fails: after the commit point. The partition is
/// poisoned (reads still work, from the old segments); the next open finishes the swap of that
/// group (the others were never started), and a pass run again does the rest.
#[test]
fn fault_after_the_commit_point_poisons_and_the_open_finishes_the_swap() {
    let s = multi_group_pass();
    assert!(s.report.segments_written > 1, "{:?}", s.report);
    let fs = clone_fs(&s.base, 10);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    fs.inject(Fault {
        path_contains: Some(".log".into()),
        ..Fault::new(FaultOp::Remove, 0)
    });
    let err = log.compact(s.now, &s.policy).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(poisoned(&log));
    assert!(matches!(
        log.append(Record::new("x").with_key("k0")),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(
        log.compact(s.now, &s.policy),
        Err(Error::Poisoned { .. })
    ));
    assert_eq!(dump(&log), s.pre, "reads go on from the old segments");
    let names = fs.read_dir(Path::new(DIR)).unwrap();
    assert!(
        names.iter().any(|n| n.ends_with(".log.swap")),
        "the committed swap is on disk: {names:?}"
    );
    log.close().unwrap();
    drop(log);

    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    check_dir(&fs, &bases(&log), "reopened");
    let first_group_end = s.post_bases[1];
    assert_eq!(
        records(&dump(&log)),
        s.mixed(first_group_end),
        "the first group swapped in, the rest as before"
    );
    assert_eq!(bases(&log)[..2], [0, first_group_end]);
    s.check_consistent(&log, "reopened");
    s.finish(&fs, log, "after the finished swap");
}

// ---------------------------------------------------------------------------------------------
// Concurrent readers, real file system
// ---------------------------------------------------------------------------------------------

/// Keys `s0`..`s19` are written once (offsets 0..20) and never again: compaction must never
/// remove them. Every later offset `o` holds key `h<o % 10>`.
const STICKY: u64 = 20;

/// How many records the concurrent appender may add per compaction round.
const APPENDS_PER_ROUND: u64 = 1000;

fn key_of(o: u64) -> String {
    if o < STICKY {
        format!("s{o}")
    } else {
        format!("h{}", o % 10)
    }
}

fn value_of(o: u64) -> Vec<u8> {
    let mut v = format!("{o}:{}:", key_of(o)).into_bytes();
    v.resize(40 + (o % 50) as usize, b'0' + (o % 10) as u8);
    v
}

fn record_of(o: u64) -> Record {
    Record::new(value_of(o)).with_key(key_of(o))
}

/// A record read back is the one appended at its offset.
fn check_record(r: &topiclog::StoredRecord) {
    let o = r.offset();
    assert_eq!(
        r.key().unwrap().as_ref(),
        key_of(o).as_bytes(),
        "key at {o}"
    );
    assert_eq!(
        r.value().unwrap().as_ref(),
        &value_of(o)[..],
        "value at {o}"
    );
}

/// Everything a sealed segment holds, as batch bytes.
fn segment_bytes(seg: &SegmentView) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    let mut at = seg.base_offset();
    loop {
        let batches: Vec<RecordBatch> = seg.read(at, 1 << 20).unwrap();
        let Some(last) = batches.last() else {
            break;
        };
        at = last.next_offset();
        out.extend(batches.iter().map(|b| b.as_bytes().clone()));
    }
    out
}

/// Readers scan the log over and over while an appender adds records and compaction passes swap
/// segments: every record read is the one appended at its offset, offsets increase, the keys
/// written once are always there. A reader holding a snapshot of the segments from before a pass
/// keeps reading exactly their old bytes during and after the pass (their files are deleted by
/// then). At the end a full pass leaves exactly the latest record of each key below the active
/// segment, and a reopen reads the same.
#[test]
fn readers_keep_reading_correct_data_across_swaps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p0");
    let config = LogConfig {
        segment_bytes: 4096,
        segment_ms: Deadline::Never,
        index_interval_bytes: 256,
        durability: Durability::None,
        ..LogConfig::default()
    };
    let log = Partition::open_with(&dir, config.clone()).unwrap();
    for o in 0..1500 {
        assert_eq!(log.append(record_of(o)).unwrap(), o);
    }
    assert!(log.segment_count() > 15);

    let stop = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (log, stop, scans) = (log.clone(), stop.clone(), scans.clone());
        readers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let end = log.end_offset();
                let mut next = log.start_offset();
                let mut last = None;
                let mut sticky = 0;
                while next < end {
                    let b = log.read(next, 2000).unwrap();
                    assert!(!b.is_empty(), "nothing at {next} below {end}");
                    for r in b.records() {
                        assert!(last.is_none_or(|l| r.offset() > l), "offsets go back");
                        last = Some(r.offset());
                        check_record(&r);
                        if r.offset() < STICKY {
                            sticky += 1;
                        }
                    }
                    next = b.next_offset();
                }
                assert_eq!(sticky, STICKY, "a key written once vanished");
                scans.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The appender runs concurrently with every pass but within a budget that each round raises,
    // so the log's size (and the files open) does not depend on how slow the machine is: an
    // unbounded appender on a slow CI runner grew the log to thousands of segments and ran out of
    // file descriptors.
    let budget = Arc::new(AtomicU64::new(log.end_offset() + APPENDS_PER_ROUND));
    let appender = {
        let (log, stop, budget) = (log.clone(), stop.clone(), budget.clone());
        std::thread::spawn(move || {
            let mut o = log.end_offset();
            while !stop.load(Ordering::Relaxed) {
                if o >= budget.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                assert_eq!(log.append(record_of(o)).unwrap(), o);
                o += 1;
                if o % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    type Snapshot = (Vec<SegmentView>, Vec<Vec<bytes::Bytes>>);
    let (tx, rx) = mpsc::channel::<Snapshot>();
    let snapshot_reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut current: Option<Snapshot> = None;
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                while let Ok(s) = rx.try_recv() {
                    current = Some(s);
                }
                if let Some((segments, expected)) = &current {
                    for (seg, want) in segments.iter().zip(expected) {
                        assert_eq!(
                            &segment_bytes(seg),
                            want,
                            "old segment {}",
                            seg.base_offset()
                        );
                    }
                    reads += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            reads
        })
    };

    let mut passes = 0;
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(20));
        budget.fetch_add(APPENDS_PER_ROUND, Ordering::Relaxed);
        let snapshot = log.segments();
        let sealed = snapshot[..snapshot.len() - 1].to_vec();
        let expected: Vec<_> = sealed.iter().map(segment_bytes).collect();
        tx.send((sealed.clone(), expected.clone())).unwrap();
        let report = log.compact(T0 + round, &policy(0, 1 << 20)).unwrap();
        if report.segments_written > 0 {
            passes += 1;
        }
        // The old segments' files are gone; what they held is not.
        for (seg, want) in sealed.iter().zip(&expected) {
            assert_eq!(
                &segment_bytes(seg),
                want,
                "old segment {}",
                seg.base_offset()
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in readers {
        t.join().unwrap();
    }
    appender.join().unwrap();
    let snapshot_reads = snapshot_reader.join().unwrap();
    assert!(passes >= 3, "only {passes} passes swapped segments");
    assert!(scans.load(Ordering::Relaxed) > 0 && snapshot_reads > 0);

    // A last full pass: below the active segment, exactly the latest record of each key.
    log.compact(T0 + 100, &policy(0, 1 << 20)).unwrap();
    let active = log.segments().last().unwrap().base_offset();
    let end = log.end_offset();
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    for o in 0..active {
        latest.insert(key_of(o), o);
    }
    let mut want: Vec<u64> = latest.into_values().collect();
    want.sort_unstable();
    want.extend(active..end);
    let read_all = |log: &Partition| {
        let mut v = Vec::new();
        let mut next = 0;
        while next < end {
            let b = log.read(next, 1 << 20).unwrap();
            for r in b.records() {
                check_record(&r);
                v.push(r.offset());
            }
            next = b.next_offset();
        }
        v
    };
    assert_eq!(read_all(&log), want);
    log.close().unwrap();
    drop(log);
    let log = Partition::open_with(&dir, config).unwrap();
    assert_eq!(read_all(&log), want);
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".cleaned") && !name.ends_with(".swap"),
            "leftover {name}"
        );
    }
}
