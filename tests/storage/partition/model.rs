//! Model test for [`Partition`] on the simulated and the real file system.
//!
//! `partition_matches_model`: random operation sequences (append with random keys, values,
//! headers, timestamps and per-call durability; read at any offset with any `max_bytes`; read by
//! time; truncate; flush; `flush_if_due`; clean close + reopen; crash; power cut in the middle of
//! a few steps) run against a `Partition` on a [`SimFs`] and against a plain in-memory model.
//! After every step the whole log is read back (one batch per read, then in large reads) and
//! compared with the model: bounds, batch boundaries, every record byte for byte, `wait_for` and
//! `offset_for_time` against brute force.
//!
//! The durability contract (DESIGN §5) is checked at every crash: the reopened log is a prefix of
//! what was appended, ending at a batch boundary, and holds every record acknowledged durable (an
//! `Always` append that returned `Ok`, everything before a successful `flush`, a `flush_if_due`
//! that synced, or a clean close, and everything below `durable_offset()`); no read ever fails or
//! returns a damaged batch. Under a power cut the first failing write must return `Io`, every
//! later write `Poisoned`; a failed append leaves no visible trace (but may survive a crash); a
//! failed truncate leaves either the old or the truncated log.
//!
//! Read paths: half the cases (by their seed) use [`SimFs::with_mapped_reads`], so the partition
//! reads through real maps as it does on `StdFs` (the active segment through a growing map, and
//! truncated by copy and rename, never in place); the other half read through copies, the
//! `pread` path. Every open checks which path was taken.
//!
//! `partition_matches_model_on_std_fs` runs the same operations on [`StdFs`] in a temp dir, so
//! the real maps are read too. There a crash is a process crash: the partition is abandoned and
//! reopened, and everything written must survive (as after kill -9), not just what was
//! acknowledged durable. Power cuts need the simulator, so a `CrashAt` runs its steps without one
//! before the crash.
//!
//! `crash_at_every_op` replays one fixed scenario with a power cut before each of its mutating
//! file-system operations, in both crash modes and on both read paths, and reports every
//! distinct failure.
//!
//! Runs 128 cases on `SimFs` and 32 on `StdFs` (in a tmpfs temp dir where there is one) from
//! fixed seeds; `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override that.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use topiclog::fs::{CrashMode, SimFs, StdFs};
use topiclog::segment::{RecordBatch, TimestampOffset};
use topiclog::{
    Batches, Clock, Deadline, Durability, Env, Error, LogConfig, ManualClock, Partition, Record,
    Recovery, TimestampType,
};

const DIR: &str = "/data/p0";
const T0: i64 = 1_700_000_000_000;

type R<T = ()> = Result<T, String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// A record as the log must return it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MRec {
    offset: u64,
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What the partition must show, and what it must keep across a crash.
#[derive(Clone, Debug, Default)]
struct Model {
    /// The visible log; `recs[i].offset == i` (there is no retention, so the start is 0).
    recs: Vec<MRec>,
    /// Batch boundaries `[base, next)` of `recs`, in order.
    batches: Vec<(u64, u64)>,
    /// Every record below this offset was acknowledged durable and must survive any crash.
    durable: u64,
    /// Records past `recs` that a failed write may have left on disk: after a crash the log is a
    /// prefix of `recs ++ ghost`.
    ghost: Vec<MRec>,
    ghost_batches: Vec<(u64, u64)>,
}

impl Model {
    fn end(&self) -> u64 {
        self.recs.len() as u64
    }

    fn push_batch(&mut self, recs: Vec<MRec>) {
        let base = self.end();
        let next = base + recs.len() as u64;
        self.recs.extend(recs);
        self.batches.push((base, next));
    }

    /// Where `truncate_to(offset)` cuts: the base of the batch containing `offset` (the end if
    /// `offset` is at or past it).
    fn cut_point(&self, offset: u64) -> u64 {
        self.batches
            .iter()
            .find(|&&(_, next)| next > offset)
            .map_or(self.end(), |&(base, _)| base)
    }

    /// Truncate at `cut` (a batch boundary); returns what was removed.
    fn cut(&mut self, cut: u64) -> (Vec<MRec>, Vec<(u64, u64)>) {
        let i = self.batches.partition_point(|&(base, _)| base < cut);
        let removed_batches = self.batches.split_off(i);
        let removed = self.recs.split_off(cut as usize);
        self.durable = self.durable.min(cut);
        (removed, removed_batches)
    }

    /// Brute force `offset_for_time`: the first record in offset order with a timestamp `>= ts`.
    fn offset_for_time(&self, ts: i64) -> Option<TimestampOffset> {
        self.recs
            .iter()
            .find(|r| r.ts >= ts)
            .map(|r| TimestampOffset {
                timestamp: r.ts,
                offset: r.offset,
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum TsSpec {
    /// No timestamp: the log's clock.
    Clock,
    /// The clock plus this many ms (may be negative: out of order).
    Rel(i64),
    /// An absolute timestamp (extremes included, none negative).
    Abs(i64),
}

#[derive(Clone)]
struct RecSpec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: TsSpec,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl std::fmt::Debug for RecSpec {
    /// Compact: lengths rather than bytes, so failing cases stay readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map(Vec::len);
        write!(
            f,
            "Rec(key {:?}, value {:?}, {:?}, {} headers)",
            len(&self.key),
            len(&self.value),
            self.ts,
            self.headers.len()
        )
    }
}

#[derive(Clone, Copy, Debug)]
enum DurSpec {
    /// `append_batch` with the configured durability.
    Config,
    With(Durability),
}

#[derive(Clone, Debug)]
enum TsSel {
    /// An existing record's timestamp (index modulo the length) plus -1, 0 or 1.
    Existing(usize, i64),
    Rel(i64),
    Abs(i64),
}

#[derive(Clone, Debug)]
enum Step {
    Append {
        recs: Vec<RecSpec>,
        dur: DurSpec,
        advance_ms: u64,
    },
    Flush,
    FlushIfDue,
    /// Truncate at `at % (end + 2)`.
    Truncate(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Step(Step),
    /// Read at `at % (end + 4)` (past the end included).
    Read {
        at: u64,
        max_bytes: usize,
    },
    ReadByTime(TsSel),
    Reopen,
    Crash {
        torn: bool,
    },
    /// `power_cut_after(cut)`, the steps (which may fail), then a crash and reopen.
    CrashAt {
        cut: u64,
        steps: Vec<Step>,
        torn: bool,
    },
}

/// The file system a case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FsKind {
    /// [`SimFs`]; with `mapped_reads`, [`SimFs::with_mapped_reads`].
    Sim { mapped_reads: bool },
    /// [`StdFs`] in a temp dir.
    Std,
}

#[derive(Clone, Debug)]
struct CaseConfig {
    fs: FsKind,
    seed: u64,
    segment_bytes: u64,
    index_interval_bytes: u32,
    max_index_bytes: u32,
    preallocate: bool,
    log_append_time: bool,
    segment_ms: Option<u64>,
    durability: Durability,
    /// `LogConfig::write_buffer_bytes`: 0 (each batch written at once) or a small buffer, so that
    /// batches wait in it, are written by reads, fills, syncs and rolls, and are lost by crashes.
    write_buffer_bytes: u32,
}

fn mode(torn: bool) -> CrashMode {
    if torn {
        CrashMode::Torn
    } else {
        CrashMode::LoseUnsynced
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the log back
// ---------------------------------------------------------------------------------------------

/// The whole log as read through the public API.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    start: u64,
    end: u64,
    batches: Vec<(u64, u64)>,
    recs: Vec<MRec>,
}

fn to_mrec(r: &topiclog::StoredRecord) -> MRec {
    MRec {
        offset: r.offset(),
        ts: r.timestamp(),
        key: r.key().map(|k| k.to_vec()),
        value: r.value().map(|v| v.to_vec()),
        headers: r
            .headers()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect(),
    }
}

/// Structural checks every successful read must pass: whole, valid batches, dense offsets,
/// starting with the batch that contains `offset`.
fn check_batches(b: &Batches, offset: u64, max_bytes: usize) -> R {
    let mut expect = None;
    for (i, batch) in b.batches().iter().enumerate() {
        ensure!(
            RecordBatch::decode(batch.as_bytes().clone()).is_ok(),
            "read({offset}) returned a batch that does not decode"
        );
        if i == 0 {
            ensure!(
                batch.base_offset() <= offset && offset <= batch.last_offset(),
                "read({offset}) starts with batch [{}, {}]",
                batch.base_offset(),
                batch.last_offset()
            );
        }
        if let Some(e) = expect {
            ensure!(
                batch.base_offset() == e,
                "read({offset}): batch at {} follows one ending before {e}",
                batch.base_offset()
            );
        }
        let offsets: Vec<u64> = batch.records().map(|r| r.offset()).collect();
        let dense: Vec<u64> = (batch.base_offset()..=batch.last_offset()).collect();
        ensure!(
            offsets == dense && batch.record_count() as usize == offsets.len(),
            "read({offset}): batch [{}, {}] holds offsets {offsets:?}",
            batch.base_offset(),
            batch.last_offset()
        );
        expect = Some(batch.next_offset());
    }
    if b.batches().len() > 1 {
        ensure!(
            b.size_bytes() <= max_bytes,
            "read({offset}, {max_bytes}) returned {} batches of {} bytes",
            b.batches().len(),
            b.size_bytes()
        );
    }
    ensure!(
        b.next_offset() == expect.unwrap_or(offset),
        "read({offset}): next_offset {} but batches end at {expect:?}",
        b.next_offset()
    );
    let recs: Vec<u64> = b.records().map(|r| r.offset()).collect();
    let from = recs.first().copied().unwrap_or(offset);
    ensure!(
        recs.is_empty() || from == offset,
        "read({offset}).records() starts at {from}"
    );
    Ok(())
}

/// Read the whole log, `max_bytes` at a time.
fn observe(p: &Partition, max_bytes: usize) -> R<Seen> {
    let start = p.start_offset();
    let end = p.end_offset();
    let mut seen = Seen {
        start,
        end,
        batches: Vec::new(),
        recs: Vec::new(),
    };
    let mut next = start;
    while next < end {
        let b = p
            .read(next, max_bytes)
            .map_err(|e| format!("read({next}, {max_bytes}) below end {end} failed: {e}"))?;
        ensure!(
            !b.is_empty(),
            "read({next}, {max_bytes}) returned nothing below end {end}"
        );
        check_batches(&b, next, max_bytes)?;
        for batch in b.batches() {
            seen.batches
                .push((batch.base_offset(), batch.next_offset()));
        }
        seen.recs.extend(b.records().map(|r| to_mrec(&r)));
        next = b.next_offset();
    }
    ensure!(
        next == end,
        "reading to the end stopped at {next}, end {end}"
    );
    Ok(seen)
}

fn describe_diff(what: &str, seen: &Seen, recs: &[MRec], batches: &[(u64, u64)]) -> String {
    let first_bad = seen
        .recs
        .iter()
        .zip(recs)
        .position(|(a, b)| a != b)
        .map(|i| {
            format!(
                "first difference at offset {i}: log {:?} model {:?}",
                seen.recs[i], recs[i]
            )
        });
    format!(
        "{what}: log [{}, {}) with {} records / {} batches; model {} records / {} batches; {}; \
         log batches {:?}; model batches {:?}",
        seen.start,
        seen.end,
        seen.recs.len(),
        seen.batches.len(),
        recs.len(),
        batches.len(),
        first_bad.unwrap_or_else(|| "common part equal".into()),
        seen.batches,
        batches
    )
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// Where the partition lives.
enum Backend {
    /// A crash is a power loss ([`SimFs::crash`]); power cuts can be armed.
    Sim(SimFs),
    /// A crash is a process crash (abandon, reopen); the temp dir goes with the harness.
    Std { _temp: tempfile::TempDir },
}

struct Harness {
    kind: FsKind,
    backend: Backend,
    dir: PathBuf,
    clock: ManualClock,
    config: LogConfig,
    env: Env,
    log_append_time: bool,
    log: Option<Partition>,
    m: Model,
    /// A write failed since the last open: the partition must be poisoned.
    failed: bool,
    /// A power cut is armed: writes may fail.
    faults: bool,
    /// The partition was closed cleanly and not reopened: the next open must be clean.
    closed_cleanly: bool,
    /// Operation trace for failure messages.
    trace: Vec<String>,
}

impl Harness {
    fn new(cc: &CaseConfig) -> Harness {
        let (backend, dir, file_system): (_, _, std::sync::Arc<dyn topiclog::fs::FileSystem>) =
            match cc.fs {
                FsKind::Sim { mapped_reads } => {
                    let fs = SimFs::new(cc.seed);
                    let fs = if mapped_reads {
                        fs.with_mapped_reads()
                    } else {
                        fs
                    };
                    // The data directory exists (durably) before the partition is created in it.
                    fs.write_file(std::path::Path::new("/data/.keep"), b"");
                    let handle = std::sync::Arc::new(fs.clone());
                    (Backend::Sim(fs), PathBuf::from(DIR), handle)
                }
                FsKind::Std => {
                    let tmp = common::std_fs_temp_dir();
                    let dir = tmp.path().join("p0");
                    (Backend::Std { _temp: tmp }, dir, std::sync::Arc::new(StdFs))
                }
            };
        let clock = ManualClock::new(T0);
        let config = LogConfig {
            segment_bytes: cc.segment_bytes,
            segment_ms: cc.segment_ms.map_or(Deadline::Never, |ms| {
                Deadline::After(Duration::from_millis(ms))
            }),
            index_interval_bytes: cc.index_interval_bytes,
            max_index_bytes: cc.max_index_bytes,
            durability: cc.durability,
            preallocate: cc.preallocate,
            write_buffer_bytes: cc.write_buffer_bytes,
            recovery: Recovery::Strict,
            timestamp_type: if cc.log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            ..LogConfig::default()
        };
        let env = Env {
            fs: file_system,
            clock: std::sync::Arc::new(clock.clone()),
        };
        Harness {
            kind: cc.fs,
            backend,
            dir,
            clock,
            config,
            env,
            log_append_time: cc.log_append_time,
            log: None,
            m: Model::default(),
            failed: false,
            faults: false,
            closed_cleanly: false,
            trace: Vec::new(),
        }
    }

    fn p(&self) -> &Partition {
        self.log.as_ref().expect("partition is open")
    }

    /// The simulated file system, for what only it can do (power cuts, counting operations).
    fn sim(&self) -> &SimFs {
        match &self.backend {
            Backend::Sim(fs) => fs,
            Backend::Std { .. } => panic!("this scenario needs SimFs"),
        }
    }

    fn open(&self) -> R<Partition> {
        let p = Partition::open_with_env(&self.dir, self.config.clone(), self.env.clone())
            .map_err(|e| format!("open failed: {e}"))?;
        if let Backend::Sim(fs) = &self.backend {
            // The read path this case is meant to take: mapped exactly when maps are real.
            let active = p.segments().last().map(|s| s.log_path().to_owned());
            let mapped = active.is_some_and(|path| fs.is_mapped(&path));
            ensure!(
                mapped == (self.kind == FsKind::Sim { mapped_reads: true }),
                "after open the active segment is mapped: {mapped}"
            );
        }
        Ok(p)
    }

    fn effective(&self, dur: DurSpec) -> Durability {
        match dur {
            DurSpec::Config => self.config.durability,
            DurSpec::With(d) => d,
        }
    }

    fn build(&self, specs: &[RecSpec]) -> (Vec<Record>, Vec<MRec>) {
        let now = self.clock.now_ms();
        let base = self.m.end();
        let mut records = Vec::new();
        let mut model = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let mut r = Record::default().with_value(s.value.clone().map(Bytes::from));
            if let Some(k) = &s.key {
                r = r.with_key(k.clone());
            }
            let own = match s.ts {
                TsSpec::Clock => None,
                TsSpec::Rel(d) => Some(now.saturating_add(d)),
                TsSpec::Abs(t) => Some(t),
            };
            if let Some(t) = own {
                r = r.with_timestamp(t);
            }
            for (k, v) in &s.headers {
                r = r.with_header(k.clone(), v.clone().map(Bytes::from));
            }
            records.push(r);
            model.push(MRec {
                offset: base + i as u64,
                ts: if self.log_append_time {
                    now
                } else {
                    own.unwrap_or(now)
                },
                key: s.key.clone(),
                value: s.value.clone(),
                headers: s.headers.clone(),
            });
        }
        (records, model)
    }

    /// Classify a failed write: before any failure only `Io` (and only with a power cut armed);
    /// afterwards only `Poisoned`. Returns whether this is the first failure.
    fn write_failed(&mut self, what: &str, e: &Error) -> R<bool> {
        if self.failed {
            ensure!(
                matches!(e, Error::Poisoned { .. }),
                "{what} after an earlier failure returned {e:?}, expected Poisoned"
            );
            return Ok(false);
        }
        ensure!(self.faults, "{what} failed without any fault: {e}");
        ensure!(
            matches!(e, Error::Io { .. }),
            "first failure ({what}) is not an I/O error: {e:?}"
        );
        self.failed = true;
        Ok(true)
    }

    fn step(&mut self, step: &Step) -> R {
        match step {
            Step::Append {
                recs,
                dur,
                advance_ms,
            } => {
                self.clock.advance(Duration::from_millis(*advance_ms));
                let now = self.clock.now_ms();
                let (records, model) = self.build(recs);
                let durability = self.effective(*dur);
                let res = match dur {
                    DurSpec::Config => self.p().append_batch(&records),
                    DurSpec::With(d) => self.p().append_batch_with(&records, *d),
                };
                self.trace.push(format!(
                    "append {} records ({durability:?}) at {now} -> {:?}",
                    records.len(),
                    res.as_ref().map(|i| (i.base_offset, i.last_offset))
                ));
                match res {
                    Ok(info) => {
                        ensure!(!self.failed, "append succeeded on a poisoned partition");
                        let end = self.m.end();
                        let n = records.len() as u64;
                        ensure!(
                            (info.base_offset, info.last_offset, info.append_time)
                                == (end, end + n - 1, now),
                            "append returned {info:?}, expected offsets {end}..={} at {now}",
                            end + n - 1
                        );
                        self.m.push_batch(model);
                        if durability == Durability::Always {
                            self.m.durable = self.m.end();
                        }
                    }
                    Err(e) => {
                        if self.write_failed("append", &e)? {
                            // The batch may have reached the disk before the failure.
                            let base = self.m.end();
                            self.m.ghost_batches = vec![(base, base + model.len() as u64)];
                            self.m.ghost = model;
                        }
                    }
                }
                self.check()
            }
            Step::Flush => {
                let res = self.p().flush();
                self.trace.push(format!("flush -> {res:?}"));
                match res {
                    Ok(()) => {
                        ensure!(!self.failed, "flush succeeded on a poisoned partition");
                        self.m.durable = self.m.end();
                    }
                    Err(e) => {
                        self.write_failed("flush", &e)?;
                    }
                }
                self.check()
            }
            Step::FlushIfDue => {
                let res = self.p().flush_if_due();
                self.trace.push(format!("flush_if_due -> {res:?}"));
                match res {
                    Ok(synced) => {
                        ensure!(
                            !self.failed || !synced,
                            "flush_if_due synced a poisoned partition"
                        );
                        if synced {
                            self.m.durable = self.m.end();
                        }
                    }
                    Err(e) => {
                        self.write_failed("flush_if_due", &e)?;
                    }
                }
                self.check()
            }
            Step::Truncate(at) => {
                let offset = at % (self.m.end() + 2);
                let cut = self.m.cut_point(offset);
                let res = self.p().truncate_to(offset);
                self.trace
                    .push(format!("truncate_to({offset}) [cut {cut}] -> {res:?}"));
                match res {
                    Ok(new_end) => {
                        ensure!(!self.failed, "truncate succeeded on a poisoned partition");
                        ensure!(
                            new_end == cut,
                            "truncate_to({offset}) returned {new_end}, model cuts at {cut}"
                        );
                        if offset < self.m.end() {
                            self.m.cut(cut);
                        }
                        self.check()
                    }
                    Err(e) => {
                        if !self.write_failed("truncate", &e)? {
                            return self.check();
                        }
                        // A failed truncate may or may not have happened (in part, on disk); the
                        // visible log is the old one or the truncated one.
                        self.m.durable = self.m.durable.min(cut);
                        let seen = observe(self.p(), 1)?;
                        if seen.recs == self.m.recs && seen.batches == self.m.batches {
                            return self.check();
                        }
                        let mut truncated = self.m.clone();
                        let (ghost, ghost_batches) = truncated.cut(cut);
                        ensure!(
                            seen.recs == truncated.recs && seen.batches == truncated.batches,
                            "{}",
                            describe_diff(
                                "after a failed truncate the log is neither the old nor the \
                                 truncated one",
                                &seen,
                                &truncated.recs,
                                &truncated.batches
                            )
                        );
                        truncated.ghost = ghost;
                        truncated.ghost_batches = ghost_batches;
                        self.m = truncated;
                        self.check()
                    }
                }
            }
        }
    }

    /// Full-state comparison of the open partition with the model.
    fn check(&mut self) -> R {
        let p = self.p().clone();
        let m = &self.m;
        let v = p.end_offset();
        ensure!(v == m.end(), "end_offset {v}, model end {}", m.end());
        ensure!(
            !p.wait_for(v, Duration::ZERO) && (v == 0 || p.wait_for(v - 1, Duration::ZERO)),
            "wait_for disagrees with the end offset {v}"
        );
        let seen = observe(&p, 1)?;
        ensure!(
            seen.start == 0 && seen.end == v,
            "log bounds [{}, {}), model [0, {v})",
            seen.start,
            seen.end
        );
        ensure!(
            seen.batches == m.batches && seen.recs == m.recs,
            "{}",
            describe_diff("log differs from model", &seen, &m.recs, &m.batches)
        );
        let big = observe(&p, 1 << 20)?;
        ensure!(
            big.recs == m.recs && big.batches == m.batches,
            "{}",
            describe_diff("large reads differ from model", &big, &m.recs, &m.batches)
        );
        // Read by time at a few interesting points, including a hidden (failed) record's time.
        let mut probes = vec![i64::MIN, i64::MAX];
        if let (Some(first), Some(last)) = (m.recs.first(), m.recs.last()) {
            let max = m.recs.iter().map(|r| r.ts).max().unwrap_or(i64::MIN);
            probes.extend([first.ts, last.ts, max, max.saturating_add(1)]);
            let mid = &m.recs[m.recs.len() / 2];
            probes.extend([mid.ts, mid.ts.saturating_add(1)]);
        }
        if let Some(hidden) = m.ghost.first() {
            probes.push(hidden.ts);
        }
        for ts in probes {
            check_time(&p, m, ts)?;
        }
        let durable = p.durable_offset();
        ensure!(
            durable <= m.end(),
            "durable_offset {durable} past end {}",
            m.end()
        );
        if !self.failed {
            // The partition's own claim is part of the contract: it must survive a crash.
            self.m.durable = self.m.durable.max(durable);
        }
        Ok(())
    }

    fn read(&mut self, at: u64, max_bytes: usize) -> R {
        let end = self.m.end();
        let offset = at % (end + 4);
        let res = self.p().read(offset, max_bytes);
        self.trace.push(format!(
            "read({offset}, {max_bytes}) -> {}",
            match &res {
                Ok(b) => format!("{} batches", b.batches().len()),
                Err(e) => format!("{e}"),
            }
        ));
        if offset > end {
            ensure!(
                matches!(
                    res,
                    Err(Error::OffsetOutOfRange { requested, start: 0, end: e }) if requested == offset && e == end
                ),
                "read({offset}) past end {end} returned {res:?}"
            );
            return Ok(());
        }
        let b = res.map_err(|e| format!("read({offset}, {max_bytes}) failed: {e}"))?;
        if offset == end {
            ensure!(
                b.is_empty() && b.next_offset() == end,
                "read at the end returned data"
            );
            return Ok(());
        }
        ensure!(
            !b.is_empty(),
            "read({offset}) below end {end} returned nothing"
        );
        check_batches(&b, offset, max_bytes)?;
        let first = b.batches()[0].base_offset();
        let i = self.m.batches.partition_point(|&(base, _)| base < first);
        let got: Vec<(u64, u64)> = b
            .batches()
            .iter()
            .map(|x| (x.base_offset(), x.next_offset()))
            .collect();
        ensure!(
            self.m.batches.get(i..i + got.len()) == Some(&got[..]),
            "read({offset}) batches {got:?} are not model batches"
        );
        let recs: Vec<MRec> = b.records().map(|r| to_mrec(&r)).collect();
        let to = b.next_offset() as usize;
        ensure!(
            recs[..] == self.m.recs[offset as usize..to],
            "read({offset}) records differ from the model"
        );
        Ok(())
    }

    fn read_by_time(&mut self, sel: &TsSel) -> R {
        let ts = match *sel {
            TsSel::Existing(i, d) if !self.m.recs.is_empty() => {
                self.m.recs[i % self.m.recs.len()].ts.saturating_add(d)
            }
            TsSel::Existing(_, d) => self.clock.now_ms() + d,
            TsSel::Rel(d) => self.clock.now_ms() + d,
            TsSel::Abs(t) => t,
        };
        self.trace.push(format!("offset_for_time({ts})"));
        let p = self.p().clone();
        check_time(&p, &self.m, ts)
    }

    /// Clean close and reopen: nothing may change.
    fn reopen(&mut self) -> R {
        let p = self.log.take().expect("open");
        let res = p.close();
        self.trace.push(format!("close + open -> {res:?}"));
        res.map_err(|e| format!("clean close failed: {e}"))?;
        drop(p);
        self.m.durable = self.m.end();
        let p = self.open()?;
        ensure!(
            p.recovery_report().clean_shutdown,
            "reopen after a clean close is not clean: {:?}",
            p.recovery_report()
        );
        self.log = Some(p);
        self.failed = false;
        let before = self.m.end();
        self.after_reopen()?;
        ensure!(
            self.m.end() == before,
            "a clean reopen kept {} of {before} records",
            self.m.end()
        );
        Ok(())
    }

    /// Simulated power loss (on `StdFs`, a process crash), then open.
    fn crash(&mut self, mode: CrashMode) -> R {
        if let Some(p) = self.log.take() {
            p.abandon();
        }
        let written = match &self.backend {
            Backend::Sim(fs) => {
                fs.crash(mode);
                self.trace.push(format!("crash({mode:?}) + open"));
                None
            }
            Backend::Std { .. } => {
                self.trace.push("process crash + open".into());
                // A process crash loses only what the process never wrote: nothing without a
                // write buffer; with one, what waited in it (the prefix rule still holds: every
                // durable record survives).
                (self.config.write_buffer_bytes == 0).then(|| self.m.end())
            }
        };
        self.faults = false;
        let p = self.open()?;
        let report = p.recovery_report();
        ensure!(
            report.clean_shutdown == self.closed_cleanly && !report.corruption_cut,
            "recovery after a crash (clean close before it: {}): {report:?}",
            self.closed_cleanly
        );
        self.closed_cleanly = false;
        self.log = Some(p);
        self.failed = false;
        self.after_reopen()?;
        if let Some(written) = written {
            // Nothing failed (there are no faults on StdFs), and a process crash loses nothing
            // the process wrote.
            ensure!(
                self.m.end() == written,
                "a process crash kept {} of the {written} records written",
                self.m.end()
            );
        }
        Ok(())
    }

    /// The prefix rule: the reopened log is a prefix of `recs ++ ghost`, ending at a batch
    /// boundary, holding at least every durable record. Then the model becomes that prefix, all of
    /// it durable (recovery syncs what it keeps).
    fn after_reopen(&mut self) -> R {
        let seen = observe(self.p(), 1)?;
        let mut all = self.m.recs.clone();
        all.extend(self.m.ghost.iter().cloned());
        let mut all_batches = self.m.batches.clone();
        all_batches.extend(self.m.ghost_batches.iter().copied());
        let k = seen.recs.len();
        ensure!(
            seen.start == 0 && seen.end == k as u64,
            "reopened log bounds [{}, {}) with {k} records",
            seen.start,
            seen.end
        );
        ensure!(
            k as u64 >= self.m.durable,
            "{}",
            describe_diff(
                &format!(
                    "reopened log lost durable records (durable point {})",
                    self.m.durable
                ),
                &seen,
                &all,
                &all_batches
            )
        );
        ensure!(
            k <= all.len()
                && seen.recs[..] == all[..k]
                && all_batches.get(..seen.batches.len()) == Some(&seen.batches[..]),
            "{}",
            describe_diff(
                "reopened log is not a prefix of what was appended",
                &seen,
                &all,
                &all_batches
            )
        );
        all.truncate(k);
        all_batches.truncate(seen.batches.len());
        self.m = Model {
            recs: all,
            batches: all_batches,
            durable: k as u64,
            ghost: Vec::new(),
            ghost_batches: Vec::new(),
        };
        self.check()
    }

    fn crash_at(&mut self, cut: u64, steps: &[Step], torn: bool) -> R {
        if let Backend::Sim(fs) = &self.backend {
            self.trace.push(format!("power_cut_after({cut})"));
            fs.power_cut_after(cut);
            self.faults = true;
        }
        for s in steps {
            self.step(s)?;
        }
        self.crash(mode(torn))
    }

    fn run(&mut self, op: &Op) -> R {
        match op {
            Op::Step(s) => self.step(s),
            Op::Read { at, max_bytes } => self.read(*at, *max_bytes),
            Op::ReadByTime(sel) => self.read_by_time(sel),
            Op::Reopen => self.reopen(),
            Op::Crash { torn } => self.crash(mode(*torn)),
            Op::CrashAt { cut, steps, torn } => self.crash_at(*cut, steps, *torn),
        }
    }
}

fn check_time(p: &Partition, m: &Model, ts: i64) -> R {
    let got = p
        .offset_for_time(ts)
        .map_err(|e| format!("offset_for_time({ts}) failed: {e}"))?;
    let want = m.offset_for_time(ts);
    ensure!(
        got == want,
        "offset_for_time({ts}) = {got:?}, model {want:?} (timestamps {:?})",
        m.recs.iter().map(|r| r.ts).collect::<Vec<_>>()
    );
    Ok(())
}

fn run_case(cc: &CaseConfig, ops: &[Op]) -> R {
    let mut h = Harness::new(cc);
    let p = h.open()?;
    h.log = Some(p);
    h.check()?;
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = h.run(op) {
            let trace = h.trace.join("\n  ");
            return Err(format!("{e}\nat op {i}; trace:\n  {trace}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn bytes_up_to(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..n)
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    let key = prop::option::weighted(0.7, bytes_up_to(8));
    let value = prop_oneof![
        1 => Just(None),
        8 => bytes_up_to(120).prop_map(Some),
        1 => prop::collection::vec(any::<u8>(), 300..900).prop_map(Some),
    ];
    let ts = prop_oneof![
        3 => Just(TsSpec::Clock),
        6 => (-3000i64..3000).prop_map(TsSpec::Rel),
        // Extremes a record may carry (negative timestamps are refused, as in Kafka; see
        // `partition::errors`).
        1 => prop::sample::select(vec![0, 1, i64::MAX - 1, i64::MAX]).prop_map(TsSpec::Abs),
    ];
    let headers = prop::collection::vec(("[a-z]{0,4}", prop::option::of(bytes_up_to(6))), 0..3);
    (key, value, ts, headers).prop_map(|(key, value, ts, headers)| RecSpec {
        key,
        value,
        ts,
        headers,
    })
}

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![
        Just(Durability::None),
        Just(Durability::Always),
        (1u64..4).prop_map(Durability::EveryMessages),
        (1u64..200).prop_map(|ms| Durability::Interval(Duration::from_millis(ms))),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let append = (
        prop::collection::vec(rec_spec(), 1..6),
        prop_oneof![1 => Just(DurSpec::Config), 3 => durability().prop_map(DurSpec::With)],
        prop_oneof![4 => 0u64..50, 1 => 0u64..3000],
    )
        .prop_map(|(recs, dur, advance_ms)| Step::Append {
            recs,
            dur,
            advance_ms,
        });
    prop_oneof![
        8 => append,
        1 => Just(Step::Flush),
        1 => Just(Step::FlushIfDue),
        1 => any::<u64>().prop_map(Step::Truncate),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let ts_sel = prop_oneof![
        4 => (any::<usize>(), -1i64..=1).prop_map(|(i, d)| TsSel::Existing(i, d)),
        2 => (-5000i64..5000).prop_map(TsSel::Rel),
        1 => prop::sample::select(vec![i64::MIN, -1, 0, i64::MAX]).prop_map(TsSel::Abs),
    ];
    prop_oneof![
        12 => step().prop_map(Op::Step),
        3 => (any::<u64>(), prop_oneof![Just(1usize), 1usize..5000])
            .prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        3 => ts_sel.prop_map(Op::ReadByTime),
        1 => Just(Op::Reopen),
        2 => any::<bool>().prop_map(|torn| Op::Crash { torn }),
        2 => (0u64..40, prop::collection::vec(step(), 1..6), any::<bool>())
            .prop_map(|(cut, steps, torn)| Op::CrashAt { cut, steps, torn }),
    ]
}

fn case_config() -> impl Strategy<Value = CaseConfig> {
    (
        any::<u64>(),
        1024u64..=4096,
        prop_oneof![Just(1u32), 32u32..512],
        prop_oneof![2 => Just(10u32 << 20), 1 => 12u32..200],
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.3, 500u64..5000),
        durability(),
    )
        .prop_map(
            |(
                seed,
                segment_bytes,
                index_interval_bytes,
                max_index_bytes,
                preallocate,
                log_append_time,
                segment_ms,
                durability,
            )| CaseConfig {
                // From the seed rather than drawn, so the recorded regression seeds still make
                // the cases they recorded.
                fs: FsKind::Sim {
                    mapped_reads: seed & 2 == 0,
                },
                write_buffer_bytes: match (seed >> 3) & 3 {
                    0 | 1 => 0,
                    2 => 300,
                    _ => 4096,
                },
                seed,
                segment_bytes,
                index_interval_bytes,
                max_index_bytes,
                preallocate,
                log_append_time,
                segment_ms,
                durability,
            },
        )
}

fn proptest_config() -> ProptestConfig {
    common::persist_failures(common::proptest_config(128, 0x7091_c106), "partition_model")
}

/// Fewer cases on `StdFs`: real files and syncs cost more than the simulator's.
fn proptest_config_std_fs() -> ProptestConfig {
    common::persist_failures(common::proptest_config(32, 0x57d0_f5f5), "partition_model")
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn partition_matches_model(cc in case_config(), ops in prop::collection::vec(op(), 1..48)) {
        if let Err(e) = run_case(&cc, &ops) {
            return Err(TestCaseError::fail(e));
        }
    }
}

proptest! {
    #![proptest_config(proptest_config_std_fs())]

    #[test]
    fn partition_matches_model_on_std_fs(
        cc in case_config().prop_map(|cc| CaseConfig { fs: FsKind::Std, ..cc }),
        ops in prop::collection::vec(op(), 1..48),
    ) {
        if let Err(e) = run_case(&cc, &ops) {
            return Err(TestCaseError::fail(e));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A power cut before every mutating operation of one scenario
// ---------------------------------------------------------------------------------------------

fn scenario_steps() -> Vec<Step> {
    let batch = |n: usize, tag: u8| {
        (0..n)
            .map(|i| RecSpec {
                key: Some(vec![tag, i as u8]),
                value: Some(vec![tag; 110 + i]),
                ts: if i % 2 == 0 {
                    TsSpec::Clock
                } else {
                    TsSpec::Rel(-7)
                },
                headers: vec![("h".into(), Some(vec![tag]))],
            })
            .collect::<Vec<_>>()
    };
    let append = |n, tag, d| Step::Append {
        recs: batch(n, tag),
        dur: DurSpec::With(d),
        advance_ms: 10,
    };
    let mut steps = Vec::new();
    // Two records per batch, ~300 bytes: three batches per 1 KiB segment, so the offsets
    // [0, 6), [6, 12), ... land in successive segments.
    for tag in 0..10 {
        steps.push(append(2, tag, Durability::Always));
    }
    // Move the recovery point to the end, then truncate into the middle of the second (sealed)
    // segment, below it: cut at 8.
    steps.push(Step::Flush);
    steps.push(Step::Truncate(9));
    for tag in 10..13 {
        steps.push(append(2, tag, Durability::Always));
    }
    steps.push(append(1, 13, Durability::None));
    steps.push(Step::Flush);
    steps.push(append(1, 14, Durability::None));
    steps
}

fn scenario_config(seed: u64, preallocate: bool) -> CaseConfig {
    CaseConfig {
        // Crash modes alternate with the seed's lowest bit, the read path with the next one.
        fs: FsKind::Sim {
            mapped_reads: seed & 2 == 0,
        },
        seed,
        segment_bytes: 1024,
        index_interval_bytes: 128,
        max_index_bytes: 10 << 20,
        preallocate,
        log_append_time: false,
        segment_ms: None,
        durability: Durability::Always,
        // Every other seed pair gathers appends in a small buffer.
        write_buffer_bytes: if seed & 4 == 0 { 0 } else { 200 },
    }
}

/// Run the scenario (open, steps, close) with a power cut after `cut` operations (`None`: no
/// cut), then crash and reopen. Returns the number of mutating operations the scenario made
/// before the crash (if it got that far) and the verdict.
fn run_scenario(cc: &CaseConfig, cut: Option<u64>, crash_mode: CrashMode) -> (Option<u64>, R) {
    let mut h = Harness::new(cc);
    let mut ops = None;
    let verdict = scenario_in(&mut h, cut, crash_mode, &mut ops).map_err(|e| {
        let trace = h.trace.join("\n  ");
        format!("{e}\ntrace:\n  {trace}")
    });
    (ops, verdict)
}

fn scenario_in(
    h: &mut Harness,
    cut: Option<u64>,
    crash_mode: CrashMode,
    ops: &mut Option<u64>,
) -> R {
    if let Some(n) = cut {
        h.sim().power_cut_after(n);
        h.faults = true;
    }
    match Partition::open_with_env(&h.dir, h.config.clone(), h.env.clone()) {
        Ok(p) => {
            h.trace.push("open -> Ok".into());
            h.log = Some(p);
            h.check()?;
            for s in scenario_steps() {
                h.step(&s)?;
            }
            let res = h.p().close();
            h.trace.push(format!("close -> {res:?}"));
            match res {
                Ok(()) => {
                    if !h.failed {
                        h.m.durable = h.m.end();
                        h.closed_cleanly = true;
                    }
                }
                Err(e) => {
                    h.write_failed("close", &e)?;
                }
            }
        }
        Err(e) => {
            h.trace.push(format!("open -> {e}"));
            ensure!(
                cut.is_some() && matches!(e, Error::Io { .. }),
                "open failed: {e:?}"
            );
        }
    }
    *ops = Some(h.sim().mutating_ops());
    if cut.is_none() {
        ensure!(!h.failed, "scenario failed without a power cut");
        ensure!(
            h.m.end() == 8 + 2 * 3 + 2,
            "scenario ended at {}",
            h.m.end()
        );
    }
    h.crash(crash_mode)?;
    // The recovered log takes appends again, and keeps them across another crash.
    h.step(&Step::Append {
        recs: vec![RecSpec {
            key: None,
            value: Some(b"after".to_vec()),
            ts: TsSpec::Clock,
            headers: Vec::new(),
        }],
        dur: DurSpec::With(Durability::Always),
        advance_ms: 1,
    })?;
    h.crash(crash_mode)
}

#[test]
fn crash_at_every_op() {
    let mut failures = Vec::new();
    let mut runs = 0;
    for preallocate in [true, false] {
        let (total, verdict) = run_scenario(
            &scenario_config(0, preallocate),
            None,
            CrashMode::LoseUnsynced,
        );
        runs += 1;
        if let Err(e) = verdict {
            failures.push(format!("preallocate {preallocate}, no power cut: {e}"));
        }
        let total = total.expect("the scenario runs to its end without a power cut");
        assert!(total > 50, "scenario makes only {total} operations");
        for n in 0..=total {
            let crash_mode = if n % 2 == 0 {
                CrashMode::LoseUnsynced
            } else {
                CrashMode::Torn
            };
            let (_, verdict) = run_scenario(&scenario_config(n, preallocate), Some(n), crash_mode);
            runs += 1;
            if let Err(e) = verdict {
                failures.push(format!(
                    "preallocate {preallocate}, power cut after {n} of {total} ops, {crash_mode:?}: {e}"
                ));
            }
        }
    }
    if failures.is_empty() {
        return;
    }
    // Group by the first line (the symptom), so one run shows every distinct problem.
    let mut kinds: Vec<(String, usize, &String)> = Vec::new();
    for f in &failures {
        let symptom: String = f
            .lines()
            .next()
            .unwrap_or_default()
            .split(": ")
            .skip(1)
            .collect::<Vec<_>>()
            .join(": ")
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(60)
            .collect();
        match kinds.iter_mut().find(|(s, _, _)| *s == symptom) {
            Some(kind) => kind.1 += 1,
            None => kinds.push((symptom, 1, f)),
        }
    }
    let report: Vec<String> = kinds
        .iter()
        .map(|(_, count, first)| format!("{count} run(s) like:\n{first}"))
        .collect();
    panic!(
        "{} of {runs} runs failed, {} distinct symptom(s):\n\n{}",
        failures.len(),
        kinds.len(),
        report.join("\n\n")
    );
}

/// Opening a partition creates its directory and any missing parents; once an append was
/// acknowledged durable, a crash must not take the directories (and so the record) away.
#[test]
fn created_directories_survive_a_crash() {
    let fs = SimFs::new(1);
    let config = LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let env = Env::with_fs(std::sync::Arc::new(fs.clone()));
    let dir = "/fresh/topic/p0";
    let p = Partition::open_with_env(dir, config.clone(), env.clone()).expect("open");
    p.append_batch_with(&[Record::new("x")], Durability::Always)
        .expect("append");
    p.abandon();
    fs.crash(CrashMode::LoseUnsynced);
    let p = Partition::open_with_env(dir, config, env).expect("reopen");
    assert_eq!(
        p.end_offset(),
        1,
        "an acknowledged durable record was lost with its directory"
    );
}
