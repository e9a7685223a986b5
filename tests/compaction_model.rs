//! Model test for log compaction ([`Partition::compact`]) on the simulated file system.
//!
//! `compaction_matches_model`: random operation sequences — keyed appends over a small key space
//! (single records and batches, some with headers or out-of-order timestamps), tombstones, a few
//! keyless records, bulk appends over a large key space (so a small key map fills), compaction
//! passes (the clock advancing, random `delete_retention`, dirty ratio 0 or random, small or large
//! key-map budget, optional maximum lag), clean close + reopen, crash + reopen (after a flush, or
//! losing whatever was not durable; both crash modes), truncation and retention — run against a
//! `Partition` on a [`SimFs`] and against an exact in-memory model of compaction:
//!
//! * the model keeps the records still present, the batches they are in, every tombstone's
//!   horizon (`now + delete_retention` of the pass that first mapped it) and the first dirty
//!   offset;
//! * a pass that reports `cleaned` with first dirty offset `X` (checked: the active segment's base
//!   unless the map filled, and then the offset of a keyed record whose key the map lacked) must
//!   keep, below `X`, exactly the newest present record of each key (over the dirty range
//!   `[first dirty, X)` and the earlier clean part), drop keyless records, drop tombstones whose
//!   horizon (set by an earlier pass) has passed, and leave everything at or above `X` alone;
//! * a pass that does not run changes nothing; one that must run (ratio 0 and dirty data) runs.
//!
//! After every operation the whole log is read back and compared with the model exactly: record
//! by record (offset, timestamp, key, value, headers) and batch by batch (a batch that lost records
//! keeps its offset range; one that lost all of them is gone); point reads at sampled offsets,
//! including offsets compaction removed, return the next batch; `offset_for_time` agrees with brute
//! force over the present records; start, end and first dirty offset agree; the directory holds no
//! `.cleaned`/`.swap` leftover and no index without its `.log`.
//!
//! Every case ends by sealing everything (appending a filler until the log rolls), compacting with
//! a dirty ratio of 0 and then again once every tombstone's horizon has passed, and checking the
//! statement of the feature independently of the incremental model: below the active segment the
//! log holds exactly the latest value of every key (deleted keys gone), in offset order; the active
//! segment is untouched; a clean reopen reads back the same.
//!
//! Truncation: the model checks that `truncate_to(x)` ends the log between the end of the last
//! batch wholly below `x` and the base of the next present batch (or, if that would fall below the
//! start, starts an empty log at the start), and that the first dirty offset becomes
//! `min(first dirty, base of the segment holding x)`. A truncation that reaches data a pass has
//! mapped cannot bring back values compaction removed because a (now truncated) newer value
//! followed; from then on the final check compares with the compaction of what was left. Focused
//! tests pin the bugs this model found (truncation inside a compacted batch, a pass mapping the
//! active segment, a truncation ending below the start).
//!
//! Read paths: half the cases (by their seed) use [`SimFs::with_mapped_reads`], so the partition
//! reads through real maps as it does on `StdFs` (the active segment through a growing map, and
//! truncated by copy and rename); the other half read through copies, the `pread` path. Every
//! open checks which path was taken. `compaction_matches_model_on_std_fs` runs the same
//! operations on [`StdFs`] in a temp dir, so the real maps are read too; there a crash is a
//! process crash (the partition is abandoned and reopened) and must lose nothing written, as
//! after kill -9.
//!
//! Runs 128 cases on `SimFs` and 32 on `StdFs` (in a tmpfs temp dir where there is one) from
//! fixed seeds; `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override that.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{crash_without_close, RecordView};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};
use topiclog::fs::{CrashMode, FileSystem, SimFs, StdFs};
use topiclog::limits::MIN_MAP_BUDGET_BYTES;
use topiclog::segment::{parse_segment_file_name, SegmentFileKind};
use topiclog::{
    Bytes, CompactionPolicy, CompactionReport, Deadline, Durability, Env, Limit, LogConfig,
    ManualClock, Partition, Record, Retention, RetentionPolicy,
};

const DIR: &str = "/data/p0";
const T0: i64 = 1_700_000_000_000;
/// Keys of ordinary appends: `k0` .. `k7`.
const KEYS: u8 = 8;
/// Keys of bulk appends: `w0` .. `w399`, far more than the smallest key map holds.
const BULK_KEYS: u16 = 400;
const DELETE_RETENTION_MS: [u64; 4] = [0, 500, 2_000, 10_000];
const LARGE_MAP: usize = 1 << 20;

type R<T = ()> = Result<T, String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum RecSpec {
    Keyed { key: u8, len: u8, header: bool },
    Tombstone { key: u8 },
    Keyless { len: u8 },
}

#[derive(Clone, Debug)]
enum Op {
    /// One batch; `skew` gives every record an explicit timestamp `now + skew`.
    Append {
        recs: Vec<RecSpec>,
        skew: Option<i16>,
    },
    /// `n` records with keys `w<first>`, `w<first + 1>`, ... in batches of `per_batch`.
    Bulk {
        first: u16,
        n: u8,
        per_batch: u8,
    },
    Compact {
        advance_ms: u16,
        delete_retention: usize,
        /// `None`: ratio 0.0, clean whatever is dirty.
        ratio: Option<f64>,
        small_map: bool,
        max_lag_ms: Option<u16>,
    },
    Reopen,
    /// Crash, after a flush (nothing is lost) or not (what was not durable may go).
    Crash {
        flush: bool,
        torn: bool,
    },
    /// Truncate at `at % (end - start + 1)` past the start.
    Truncate {
        at: u64,
    },
    /// `delete_records` at a batch boundary in the sealed segments (picked by `at`), so the start
    /// lies inside a segment.
    DeleteRecords {
        at: u64,
    },
    Retention {
        bytes: Option<u16>,
        age_ms: Option<u16>,
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
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    prop_oneof![
        10 => (0..KEYS, 0u8..150, prop::bool::weighted(0.2))
            .prop_map(|(key, len, header)| RecSpec::Keyed { key, len, header }),
        3 => (0..KEYS).prop_map(|key| RecSpec::Tombstone { key }),
        1 => (0u8..60).prop_map(|len| RecSpec::Keyless { len }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let append = (
        prop_oneof![3 => prop::collection::vec(rec_spec(), 1..2), 1 => prop::collection::vec(rec_spec(), 2..6)],
        prop::option::weighted(0.15, -3000i16..3000),
    )
        .prop_map(|(recs, skew)| Op::Append { recs, skew });
    let compact = (
        0u16..3000,
        0..DELETE_RETENTION_MS.len(),
        prop::option::weighted(0.3, 0.0f64..1.0),
        prop::bool::weighted(0.4),
        prop::option::weighted(0.2, 0u16..5000),
    )
        .prop_map(
            |(advance_ms, delete_retention, ratio, small_map, max_lag_ms)| Op::Compact {
                advance_ms,
                delete_retention,
                ratio,
                small_map,
                max_lag_ms,
            },
        );
    prop_oneof![
        14 => append,
        3 => (0..BULK_KEYS, 40u8..220, 1u8..12)
            .prop_map(|(first, n, per_batch)| Op::Bulk { first, n, per_batch }),
        7 => compact,
        1 => Just(Op::Reopen),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(flush, torn)| Op::Crash { flush, torn }),
        1 => any::<u64>().prop_map(|at| Op::Truncate { at }),
        1 => (
            prop::option::weighted(0.7, 0u16..6000),
            prop::option::weighted(0.3, 0u16..20000)
        )
            .prop_map(|(bytes, age_ms)| Op::Retention { bytes, age_ms }),
        1 => any::<u64>().prop_map(|at| Op::DeleteRecords { at }),
    ]
}

fn case_config() -> impl Strategy<Value = CaseConfig> {
    (
        any::<u64>(),
        1024u64..=3072,
        prop_oneof![Just(1u32), 16u32..512],
        prop_oneof![3 => Just(10u32 << 20), 1 => 60u32..240],
    )
        .prop_map(
            |(seed, segment_bytes, index_interval_bytes, max_index_bytes)| CaseConfig {
                // From the seed rather than drawn, so the recorded regression seeds still make
                // the cases they recorded.
                fs: FsKind::Sim {
                    mapped_reads: seed & 2 == 0,
                },
                seed,
                segment_bytes,
                index_interval_bytes,
                max_index_bytes,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// What the log must hold.
#[derive(Clone, Debug, Default)]
struct Model {
    /// Records still present, by offset.
    recs: BTreeMap<u64, RecordView>,
    /// Batches `base -> next` holding at least one present record.
    batches: BTreeMap<u64, u64>,
    /// Every record appended and not truncated, lost in a crash or below the start: what the log
    /// would hold without compaction.
    history: BTreeMap<u64, RecordView>,
    /// Tombstones a finished pass has mapped: offset -> the time from which a pass drops them.
    horizons: BTreeMap<u64, i64>,
    first_dirty: u64,
    /// The furthest a pass's key map reached: records below the first dirty offset may have
    /// gone because of newer ones up to here.
    mapped_end: u64,
    start: u64,
    end: u64,
}

impl Model {
    fn push_batch(&mut self, recs: Vec<RecordView>) {
        let base = self.end;
        let next = base + recs.len() as u64;
        for r in recs {
            self.history.insert(r.offset, r.clone());
            self.recs.insert(r.offset, r);
        }
        self.batches.insert(base, next);
        self.end = next;
    }

    /// Forget batches that lost all their records.
    fn prune_batches(&mut self) {
        let recs = &self.recs;
        self.batches
            .retain(|&base, &mut next| recs.range(base..next).next().is_some());
    }

    /// Remove everything at or after `end`.
    fn cut(&mut self, end: u64) {
        self.recs.split_off(&end);
        self.history.split_off(&end);
        self.horizons.split_off(&end);
        self.batches.retain(|_, &mut next| next <= end);
        self.end = end;
    }

    /// Move the start to `start` (retention).
    fn advance_start(&mut self, start: u64) {
        self.recs = self.recs.split_off(&start);
        self.history = self.history.split_off(&start);
        self.horizons = self.horizons.split_off(&start);
        self.batches.retain(|&base, _| base >= start);
        self.start = start;
    }

    /// Apply a pass that mapped `[first_dirty, map_end)` at `now_ms`: below `map_end` keep the
    /// newest present record of each key, drop keyless records and tombstones whose horizon has
    /// passed, then give the tombstones mapped now their horizon.
    /// A pass that mapped `[first_dirty, map_end)` and rewrote everything below `clean_end`
    /// (`clean_end < map_end` when it ended at the base of the segment where the map filled).
    fn compact(
        &mut self,
        first_dirty: u64,
        clean_end: u64,
        map_end: u64,
        now_ms: i64,
        horizon_ms: i64,
    ) {
        let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
        for r in self.recs.range(first_dirty..map_end).map(|(_, r)| r) {
            if let Some(k) = &r.key {
                latest.insert(k.clone(), r.offset);
            }
        }
        let mut gone = Vec::new();
        for (&o, r) in self.recs.range(..clean_end) {
            let drop = match &r.key {
                None => true,
                Some(k) if latest.get(k).is_some_and(|&l| l > o) => true,
                Some(_) => r.value.is_none() && self.horizons.get(&o).is_some_and(|&h| h <= now_ms),
            };
            if drop {
                gone.push(o);
            }
        }
        for o in gone {
            self.recs.remove(&o);
            self.horizons.remove(&o);
        }
        let mapped: Vec<u64> = self
            .recs
            .range(first_dirty..clean_end)
            .filter(|(_, r)| r.value.is_none())
            .map(|(&o, _)| o)
            .collect();
        for o in mapped {
            self.horizons.entry(o).or_insert(horizon_ms);
        }
        self.prune_batches();
        self.first_dirty = self.first_dirty.max(clean_end);
        self.mapped_end = self.mapped_end.max(map_end).max(clean_end);
    }

    /// The present batch, as `(base, next)`, holding the first record at or after `offset`:
    /// what a read at `offset` must return first (a batch holding only records below `offset`
    /// is passed over).
    fn batch_after(&self, offset: u64) -> Option<(u64, u64)> {
        let (&first, _) = self.recs.range(offset..).next()?;
        self.batches
            .range(..=first)
            .next_back()
            .map(|(&b, &n)| (b, n))
    }

    /// The end of the last present batch that lies wholly below `offset` (else the start).
    fn kept_below(&self, offset: u64) -> u64 {
        self.batches
            .range(..offset)
            .filter(|(_, &n)| n <= offset)
            .map(|(_, &n)| n)
            .max()
            .unwrap_or(self.start)
            .max(self.start)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the log back
// ---------------------------------------------------------------------------------------------

fn value_bytes(seq: u64, len: u8) -> Vec<u8> {
    let mut v = format!("v{seq}:").into_bytes();
    v.resize(v.len().max(len as usize), b'a' + (seq % 26) as u8);
    v
}

/// Every batch from the start to the end, as read through the public API.
fn scan(p: &Partition) -> R<Vec<(u64, u64, Vec<RecordView>)>> {
    let end = p.end_offset();
    let mut next = p.start_offset();
    let mut out: Vec<(u64, u64, Vec<RecordView>)> = Vec::new();
    while next < end {
        let b = p
            .read(next, 3000)
            .map_err(|e| format!("read({next}) below end {end} failed: {e}"))?;
        if b.is_empty() {
            break; // only gaps left up to the end
        }
        for batch in b.batches() {
            ensure!(
                out.last().is_none_or(|l| l.1 <= batch.base_offset()),
                "batch at {} overlaps or precedes the previous one {:?}",
                batch.base_offset(),
                out.last().map(|l| (l.0, l.1))
            );
            if batch.record_count() == 0 {
                // An empty batch ending a cleaned segment: the model has no such batches.
                continue;
            }
            let recs: Vec<RecordView> = batch.records().map(|r| RecordView::of(&r)).collect();
            out.push((batch.base_offset(), batch.next_offset(), recs));
        }
        ensure!(b.next_offset() > next, "read({next}) did not progress");
        next = b.next_offset();
    }
    Ok(out)
}

fn short(r: &RecordView) -> String {
    let s = |b: &Option<Vec<u8>>| {
        b.as_ref().map_or("-".to_owned(), |b| {
            String::from_utf8_lossy(&b[..b.len().min(12)]).into_owned()
        })
    };
    format!("{}:{}={}", r.offset, s(&r.key), s(&r.value))
}

fn show(recs: &[RecordView]) -> String {
    recs.iter().map(short).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// Where the partition lives.
enum Backend {
    /// A crash is a power loss ([`SimFs::crash`]).
    Sim(SimFs),
    /// A crash is a process crash (abandon, reopen); the temp dir goes with the harness.
    Std { _temp: tempfile::TempDir },
}

struct Harness {
    kind: FsKind,
    backend: Backend,
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    clock: Arc<ManualClock>,
    config: LogConfig,
    log: Option<Partition>,
    m: Model,
    /// The compaction clock (and the log's clock).
    now: i64,
    /// Records appended so far, to make values unique.
    seq: u64,
    /// Checks so far, to vary the sampled offsets.
    checks: u64,
    trace: Vec<String>,
}

impl Harness {
    fn new(cc: &CaseConfig) -> Harness {
        let (backend, dir, fs): (_, _, Arc<dyn FileSystem>) = match cc.fs {
            FsKind::Sim { mapped_reads } => {
                let sim = SimFs::new(cc.seed);
                let sim = if mapped_reads {
                    sim.with_mapped_reads()
                } else {
                    sim
                };
                sim.write_file(Path::new("/data/.keep"), b"");
                let fs = Arc::new(sim.clone());
                (Backend::Sim(sim), PathBuf::from(DIR), fs)
            }
            FsKind::Std => {
                let tmp = common::std_fs_temp_dir();
                let dir = tmp.path().join("p0");
                (Backend::Std { _temp: tmp }, dir, Arc::new(StdFs))
            }
        };
        let clock = Arc::new(ManualClock::new(T0));
        let config = LogConfig {
            segment_bytes: cc.segment_bytes,
            segment_ms: Deadline::Never,
            index_interval_bytes: cc.index_interval_bytes,
            max_index_bytes: cc.max_index_bytes,
            durability: Durability::None,
            preallocate: false,
            ..LogConfig::default()
        };
        Harness {
            kind: cc.fs,
            backend,
            fs,
            dir,
            clock,
            config,
            log: None,
            m: Model::default(),
            now: T0,
            seq: 0,
            checks: 0,
            trace: Vec::new(),
        }
    }

    fn p(&self) -> &Partition {
        self.log.as_ref().expect("open")
    }

    fn open(&mut self) -> R {
        let env = Env {
            fs: self.fs.clone(),
            clock: self.clock.clone(),
        };
        let p = Partition::open_with_env(&self.dir, self.config.clone(), env)
            .map_err(|e| format!("open failed: {e}"))?;
        if let Backend::Sim(sim) = &self.backend {
            // The read path this case is meant to take: mapped exactly when maps are real.
            let active = p.segments().last().map(|s| s.log_path().to_owned());
            let mapped = active.is_some_and(|path| sim.is_mapped(&path));
            ensure!(
                mapped == (self.kind == FsKind::Sim { mapped_reads: true }),
                "after open the active segment is mapped: {mapped}"
            );
        }
        self.log = Some(p);
        Ok(())
    }

    fn active_base(&self) -> u64 {
        self.p().segments().last().map_or(0, |s| s.base_offset())
    }

    fn build(&mut self, specs: &[RecSpec], skew: Option<i16>) -> (Vec<Record>, Vec<RecordView>) {
        let mut records = Vec::new();
        let mut views = Vec::new();
        for spec in specs {
            self.seq += 1;
            let (key, value, header) = match spec {
                RecSpec::Keyed { key, len, header } => (
                    Some(format!("k{key}").into_bytes()),
                    Some(value_bytes(self.seq, *len)),
                    *header,
                ),
                RecSpec::Tombstone { key } => (Some(format!("k{key}").into_bytes()), None, false),
                RecSpec::Keyless { len } => (None, Some(value_bytes(self.seq, *len)), false),
            };
            let mut r = match &value {
                Some(v) => Record::new(v.clone()),
                None => Record::tombstone(key.clone().unwrap_or_default()),
            };
            if let (Some(k), Some(_)) = (&key, &value) {
                r = r.with_key(k.clone());
            }
            let ts = skew.map(|s| self.now + i64::from(s));
            if let Some(ts) = ts {
                r = r.with_timestamp(ts);
            }
            let headers = if header {
                vec![("h".to_owned(), Some(self.seq.to_le_bytes().to_vec()))]
            } else {
                Vec::new()
            };
            for (hk, hv) in &headers {
                r = r.with_header(hk.clone(), hv.clone().map(Bytes::from));
            }
            records.push(r);
            views.push(RecordView {
                offset: 0,
                timestamp: ts.unwrap_or(self.now),
                key,
                value,
                headers,
            });
        }
        (records, views)
    }

    fn append(&mut self, specs: &[RecSpec], skew: Option<i16>) -> R {
        let (records, mut views) = self.build(specs, skew);
        let info = self
            .p()
            .append_batch(&records)
            .map_err(|e| format!("append failed: {e}"))?;
        ensure!(
            info.base_offset == self.m.end,
            "append landed at {}, expected the end {}",
            info.base_offset,
            self.m.end
        );
        for (i, v) in views.iter_mut().enumerate() {
            v.offset = info.base_offset + i as u64;
        }
        self.m.push_batch(views);
        Ok(())
    }

    fn bulk(&mut self, first: u16, n: u8, per_batch: u8) -> R {
        let mut left = n as usize;
        let mut k = first;
        while left > 0 {
            let take = left.min(per_batch.max(1) as usize);
            let mut records = Vec::new();
            let mut views = Vec::new();
            for _ in 0..take {
                self.seq += 1;
                let key = format!("w{}", k % BULK_KEYS).into_bytes();
                let value = value_bytes(self.seq, 4);
                k = k.wrapping_add(1);
                records.push(Record::new(value.clone()).with_key(key.clone()));
                views.push(RecordView {
                    offset: 0,
                    timestamp: self.now,
                    key: Some(key),
                    value: Some(value),
                    headers: Vec::new(),
                });
            }
            let info = self
                .p()
                .append_batch(&records)
                .map_err(|e| format!("bulk append failed: {e}"))?;
            for (i, v) in views.iter_mut().enumerate() {
                v.offset = info.base_offset + i as u64;
            }
            self.m.push_batch(views);
            left -= take;
        }
        Ok(())
    }

    fn compact(
        &mut self,
        advance_ms: u16,
        delete_retention: usize,
        ratio: Option<f64>,
        small_map: bool,
        max_lag_ms: Option<u16>,
    ) -> R {
        self.now += i64::from(advance_ms);
        self.clock.set(self.now);
        let dr = DELETE_RETENTION_MS[delete_retention % DELETE_RETENTION_MS.len()];
        let policy = CompactionPolicy {
            delete_retention: Duration::from_millis(dr),
            min_compaction_lag: Duration::ZERO,
            max_compaction_lag: /*FIXME*/max_lag_ms.map_or(Deadline::Never, |ms| {
                Deadline::After(Duration::from_millis(ms.into()))
            }),
            min_cleanable_dirty_ratio: ratio.unwrap_or(0.0),
            map_budget_bytes: if small_map {
                MIN_MAP_BUDGET_BYTES
            } else {
                LARGE_MAP
            },
        };
        let report = self.run_pass(&policy)?;
        if ratio.is_none() && !small_map {
            ensure!(
                report.first_dirty_offset.max(self.m.start) >= self.active_base(),
                "a full pass with ratio 0 left the first dirty offset at {}, below the active \
                 segment at {}: {report:?}",
                report.first_dirty_offset,
                self.active_base()
            );
        }
        Ok(())
    }

    /// Run one pass and apply it to the model, checking what the report says.
    fn run_pass(&mut self, policy: &CompactionPolicy) -> R<CompactionReport> {
        let now = self.now;
        let before_dirty = self.m.first_dirty;
        // Never inside the active segment.
        let plan_dirty = before_dirty
            .max(self.m.start)
            .min(self.active_base().max(before_dirty));
        let active_base = self.active_base();
        let end = self.p().end_offset();
        let report = self
            .p()
            .compact(now, policy)
            .map_err(|e| format!("compact failed: {e}"))?;
        ensure!(
            self.p().end_offset() == end && self.p().start_offset() == self.m.start,
            "compaction moved the end ({end} -> {}) or the start ({} -> {})",
            self.p().end_offset(),
            self.m.start,
            self.p().start_offset()
        );
        ensure!(
            self.active_base() == active_base,
            "compaction changed the active segment"
        );
        ensure!(
            report.first_dirty_offset == self.p().first_dirty_offset(),
            "report says first dirty {} but the log says {}",
            report.first_dirty_offset,
            self.p().first_dirty_offset()
        );
        let must_run = policy.min_cleanable_dirty_ratio == 0.0 && plan_dirty < active_base;
        ensure!(
            report.cleaned || !must_run,
            "ratio 0 with dirty data [{plan_dirty}, {active_base}) but no pass: {report:?}"
        );
        if !report.cleaned {
            ensure!(
                report.first_dirty_offset == plan_dirty,
                "a pass that did not run left the first dirty offset at {}, not {plan_dirty}: \
                 {report:?}",
                report.first_dirty_offset
            );
            self.m.first_dirty = plan_dirty;
            return Ok(report);
        }
        let x = report.first_dirty_offset;
        let mut map_end = x;
        if report.map_full {
            ensure!(
                policy.map_budget_bytes == MIN_MAP_BUDGET_BYTES,
                "the large map filled: {report:?}"
            );
            ensure!(
                plan_dirty < x && x < active_base,
                "map full, but the cleaned range ends at {x}, outside ({plan_dirty}, {active_base})"
            );
            // Where the map filled: the first record whose key is new once it holds
            // `keys_mapped` keys.
            let mut keys: BTreeSet<&Vec<u8>> = BTreeSet::new();
            let mut stop = None;
            for (&o, r) in self.m.recs.range(plan_dirty..active_base) {
                let Some(k) = r.key.as_ref() else { continue };
                if keys.contains(k) {
                    continue;
                }
                if keys.len() as u64 == report.keys_mapped {
                    stop = Some(o);
                    break;
                }
                keys.insert(k);
            }
            let stop = stop.ok_or_else(|| format!("map full, but it never filled: {report:?}"))?;
            // The pass ends there, or at the base of the segment holding it if that is past the
            // first dirty offset (as Kafka does).
            let base = self
                .p()
                .segments()
                .iter()
                .map(|s| s.base_offset())
                .take_while(|&b| b <= stop)
                .last()
                .unwrap_or(0);
            let want = if base > plan_dirty { base } else { stop };
            ensure!(
                x == want,
                "the map filled at {stop} (segment base {base}); the pass should end at {want},                  not {x}: {report:?}"
            );
            map_end = stop;
        } else {
            ensure!(
                x == plan_dirty.max(active_base),
                "the pass ended its cleaned range at {x}, expected {}: {report:?}",
                plan_dirty.max(active_base)
            );
        }
        let horizon = now.saturating_add(policy.delete_retention.as_millis() as i64);
        let present_before = self.m.recs.len();
        self.m.compact(plan_dirty, x, map_end, now, horizon);
        let removed = (present_before - self.m.recs.len()) as u64;
        // Records below the start, in the segment holding it, are cleaned too but not visible.
        let hidden = self.p().segments()[0].base_offset() < self.m.start;
        ensure!(
            report.records_removed == removed || (hidden && report.records_removed > removed),
            "the report says {} records removed, the model {removed}: {report:?}",
            report.records_removed
        );
        Ok(report)
    }

    fn reopen(&mut self) -> R {
        let before = scan(self.p())?;
        self.p().close().map_err(|e| format!("close failed: {e}"))?;
        self.log = None;
        self.open()?;
        ensure!(
            self.p().recovery_report().clean_shutdown,
            "clean close, but the open was not clean"
        );
        let after = scan(self.p())?;
        ensure!(before == after, "a clean reopen changed what the log reads");
        Ok(())
    }

    fn crash(&mut self, flush: bool, torn: bool) -> R {
        if flush {
            self.p().flush().map_err(|e| format!("flush failed: {e}"))?;
        }
        let durable = self.p().durable_offset();
        let end = self.m.end;
        crash_without_close(self.log.take().expect("open"));
        let process_crash = match &self.backend {
            Backend::Sim(sim) => {
                sim.crash(if torn {
                    CrashMode::Torn
                } else {
                    CrashMode::LoseUnsynced
                });
                false
            }
            Backend::Std { .. } => {
                self.trace.push("  (StdFs: a process crash)".into());
                true
            }
        };
        self.open()?;
        let new_end = self.p().end_offset();
        ensure!(
            !process_crash || new_end == end,
            "a process crash lost written records: the log ends at {new_end}, not {end}"
        );
        ensure!(
            durable <= new_end && new_end <= end,
            "after the crash the log ends at {new_end}, outside [durable {durable}, end {end}]"
        );
        ensure!(
            new_end == end || new_end <= self.m.start || self.m.batches.contains_key(&new_end),
            "after the crash the log ends at {new_end}, inside a batch"
        );
        if flush {
            ensure!(new_end == end, "flushed records were lost");
        }
        ensure!(
            self.m.first_dirty <= new_end,
            "the crash lost records below the first dirty offset {}",
            self.m.first_dirty
        );
        self.m.cut(new_end);
        // A start moved past records that were not durable falls back to the end.
        self.m.start = self.m.start.min(new_end);
        Ok(())
    }

    fn truncate(&mut self, at: u64) -> R {
        let (start, end) = (self.m.start, self.m.end);
        let x = start + at % (end - start + 1);
        let f = self.m.first_dirty;
        let segment_base = self
            .p()
            .segments()
            .iter()
            .map(|s| s.base_offset())
            .take_while(|&b| b <= x)
            .last()
            .unwrap_or(start);
        let ceiling = self.m.batch_after(x).map_or(end, |(b, _)| b);
        let new_end = self
            .p()
            .truncate_to(x)
            .map_err(|e| format!("truncate_to({x}) failed: {e}"))?;
        self.trace.push(format!("  truncate_to({x}) -> {new_end}"));
        if x >= end {
            ensure!(
                new_end == end,
                "truncating at the end moved it to {new_end}"
            );
            return Ok(());
        }
        let floor = self.m.kept_below(x);
        ensure!(
            floor <= new_end && new_end <= ceiling,
            "truncate_to({x}) ended the log at {new_end}; the batches wholly below {x} end at \
             {floor} and the next present batch starts at {ceiling}"
        );
        ensure!(
            self.p().end_offset() == new_end,
            "truncate_to returned {new_end} but the end offset is {}",
            self.p().end_offset()
        );
        self.m.cut(new_end);
        // A batch straddling the start went whole: the log starts at the new end.
        self.m.start = self.m.start.min(new_end);
        // The cleaner forgets everything from the base of the segment that held `x`: those
        // records are dirty again, and their tombstones get new horizons when next seen.
        let _ = self.m.horizons.split_off(&segment_base);
        if new_end < f.max(self.m.mapped_end) {
            // The cut reached cleaned data: values that compaction removed because a newer one
            // followed are gone for good, even though the newer one is truncated now. From here
            // on the log can only be the compaction of what is left.
            self.m.history = self.m.recs.clone();
        }
        self.m.first_dirty = f.min(segment_base);
        self.m.mapped_end = self.m.mapped_end.min(new_end);
        Ok(())
    }

    fn delete_records(&mut self, at: u64) -> R {
        // At a batch boundary in (start, end], the active segment included. (A start inside a
        // batch is fine for the log, but this model's scan reads whole batches.)
        let (start, end) = (self.m.start, self.m.end);
        if end <= start {
            return Ok(());
        }
        let mut candidates: Vec<u64> = self
            .m
            .batches
            .range(start + 1..=end)
            .map(|(&b, _)| b)
            .collect();
        candidates.push(end);
        candidates.dedup();
        let before = candidates[(at % candidates.len() as u64) as usize];
        let start = self
            .p()
            .delete_records(before)
            .map_err(|e| format!("delete_records({before}) failed: {e}"))?;
        self.trace.push(format!("  delete_records({before})"));
        ensure!(
            start == before && self.p().start_offset() == before,
            "delete_records({before}) returned {start}, start offset {}",
            self.p().start_offset()
        );
        self.m.advance_start(before);
        Ok(())
    }

    fn retention(&mut self, bytes: Option<u16>, age_ms: Option<u16>) -> R {
        let policy = RetentionPolicy {
            retention: /*FIXME*/age_ms.map_or(Retention::Forever, |ms| {
                Retention::After(Duration::from_millis(ms.into()))
            }),
            retention_bytes: /*FIXME*/bytes.map_or(Limit::Unlimited, |b| Limit::Bytes(b.into())),
        };
        let report = self
            .p()
            .apply_retention(self.now, &policy)
            .map_err(|e| format!("apply_retention failed: {e}"))?;
        let start = self.p().start_offset();
        ensure!(
            report.start_offset == start && start >= self.m.start && start <= self.m.end,
            "retention moved the start from {} to {start} (report {report:?})",
            self.m.start
        );
        if start > self.m.start {
            let bases: Vec<u64> = self
                .p()
                .segments()
                .iter()
                .map(|s| s.base_offset())
                .collect();
            ensure!(
                bases.first() == Some(&start),
                "retention moved the start to {start}, but the segments start at {bases:?}"
            );
            self.m.advance_start(start);
        }
        Ok(())
    }

    fn run(&mut self, op: &Op) -> R {
        match op {
            Op::Append { recs, skew } => self.append(recs, *skew),
            Op::Bulk {
                first,
                n,
                per_batch,
            } => self.bulk(*first, *n, *per_batch),
            Op::Compact {
                advance_ms,
                delete_retention,
                ratio,
                small_map,
                max_lag_ms,
            } => self.compact(
                *advance_ms,
                *delete_retention,
                *ratio,
                *small_map,
                *max_lag_ms,
            ),
            Op::Reopen => self.reopen(),
            Op::Crash { flush, torn } => self.crash(*flush, *torn),
            Op::Truncate { at } => self.truncate(*at),
            Op::Retention { bytes, age_ms } => self.retention(*bytes, *age_ms),
            Op::DeleteRecords { at } => self.delete_records(*at),
        }
    }

    /// Compare everything observable with the model.
    fn check(&mut self) -> R {
        self.checks += 1;
        let p = self.p().clone();
        let m = &self.m;
        ensure!(
            p.start_offset() == m.start && p.end_offset() == m.end,
            "log [{}, {}), model [{}, {})",
            p.start_offset(),
            p.end_offset(),
            m.start,
            m.end
        );
        ensure!(
            p.first_dirty_offset() == m.first_dirty,
            "first dirty offset {}, model {}",
            p.first_dirty_offset(),
            m.first_dirty
        );
        let active_base = p.segments().last().map_or(0, |s| s.base_offset());
        ensure!(
            p.first_dirty_offset() <= active_base.max(m.start),
            "first dirty offset {} is inside the active segment at {active_base}",
            p.first_dirty_offset()
        );
        ensure!(
            p.first_dirty_offset() <= p.end_offset(),
            "first dirty offset {} is past the end {}",
            p.first_dirty_offset(),
            p.end_offset()
        );

        // The whole log, batch by batch.
        let seen = scan(&p)?;
        let seen_recs: Vec<RecordView> = seen.iter().flat_map(|b| b.2.clone()).collect();
        let model_recs: Vec<RecordView> = m.recs.values().cloned().collect();
        if seen_recs != model_recs {
            let i = seen_recs
                .iter()
                .zip(&model_recs)
                .position(|(a, b)| a != b)
                .unwrap_or(seen_recs.len().min(model_recs.len()));
            return Err(format!(
                "records differ from #{i} on (log {} records, model {}):\n  log:   {}\n  model: {}",
                seen_recs.len(),
                model_recs.len(),
                show(&seen_recs[i.min(seen_recs.len())..]),
                show(&model_recs[i.min(model_recs.len())..])
            ));
        }
        let seen_batches: Vec<(u64, u64)> = seen.iter().map(|b| (b.0, b.1)).collect();
        let model_batches: Vec<(u64, u64)> = m.batches.iter().map(|(&b, &n)| (b, n)).collect();
        ensure!(
            seen_batches == model_batches,
            "batches differ:\n  log:   {seen_batches:?}\n  model: {model_batches:?}"
        );

        // Point reads at sampled offsets, removed ones included, return the next batch.
        if m.end > m.start {
            let span = m.end - m.start;
            for i in 0..6u64 {
                let o = m.start
                    + (self.checks.wrapping_mul(0x9E37_79B9) ^ i.wrapping_mul(0x85EB_CA6B)) % span;
                let b = p
                    .read(o, 1)
                    .map_err(|e| format!("read({o}, 1) failed: {e}"))?;
                let got = b
                    .batches()
                    .first()
                    .map(|b| (b.base_offset(), b.next_offset()));
                ensure!(
                    got == m.batch_after(o) && b.batches().len() <= 1,
                    "read({o}, 1) returned batches {:?}, expected {:?}",
                    b.batches()
                        .iter()
                        .map(|b| (b.base_offset(), b.next_offset()))
                        .collect::<Vec<_>>(),
                    m.batch_after(o)
                );
                let recs: Vec<u64> = b.records().map(|r| r.offset()).collect();
                let want: Vec<u64> = got.map_or(Vec::new(), |(_, n)| {
                    m.recs.range(o..n).map(|(&o, _)| o).collect()
                });
                ensure!(
                    recs == want,
                    "read({o}, 1).records() = {recs:?}, expected {want:?}"
                );
            }
        }

        // offset_for_time against brute force over the present records.
        let mut probes: Vec<i64> = vec![i64::MIN, T0 - 10_000, self.now + 10_000];
        for (i, r) in m.recs.values().enumerate() {
            if i as u64 % 7 == self.checks % 7 {
                probes.extend([r.timestamp - 1, r.timestamp, r.timestamp + 1]);
            }
        }
        for ts in probes {
            let want = m
                .recs
                .values()
                .find(|r| r.timestamp >= ts)
                .map(|r| (r.timestamp, r.offset));
            let got = p
                .offset_for_time(ts)
                .map_err(|e| format!("offset_for_time({ts}) failed: {e}"))?
                .map(|t| (t.timestamp, t.offset));
            ensure!(
                got == want,
                "offset_for_time({ts}) = {got:?}, brute force {want:?}"
            );
        }

        // Segments and files.
        let segments = p.segments();
        let bases: Vec<u64> = segments.iter().map(|s| s.base_offset()).collect();
        ensure!(
            bases.windows(2).all(|w| w[0] < w[1]) && bases[0] <= m.start,
            "segment bases {bases:?} (start {})",
            m.start
        );
        ensure!(
            segments[..segments.len() - 1].iter().all(|s| s.is_sealed()),
            "a segment other than the last is not sealed"
        );
        check_dir(&*self.fs, &self.dir, &bases)?;
        Ok(())
    }

    /// Seal everything, compact fully, then again once every tombstone may go: below the active
    /// segment the log must hold exactly the latest value of every key (deleted keys gone).
    fn final_check(&mut self) -> R {
        self.trace
            .push("final: seal, compact, compact past every horizon".into());
        let segments = self.p().segment_count();
        let mut i = 0;
        while self.p().segment_count() == segments {
            let spec = [RecSpec::Keyed {
                key: KEYS,
                len: 120,
                header: false,
            }];
            self.append(&spec, None)?;
            i += 1;
            ensure!(i < 1000, "the log never rolled");
        }
        let policy = |dr: u64| CompactionPolicy {
            delete_retention: Duration::from_millis(dr),
            min_compaction_lag: Duration::ZERO,
            max_compaction_lag: Deadline::Never,
            min_cleanable_dirty_ratio: 0.0,
            map_budget_bytes: LARGE_MAP,
        };
        self.now += 1;
        self.clock.set(self.now);
        let final_report = self.run_pass(&policy(1_000))?;
        ensure!(
            self.p().first_dirty_offset() >= self.active_base(),
            "the final pass left dirty data below the active segment: {final_report:?}, \
             segments {:?}, start {}",
            self.p()
                .segments()
                .iter()
                .map(|s| (s.base_offset(), s.size()))
                .collect::<Vec<_>>(),
            self.p().start_offset()
        );
        self.check()?;
        let latest_horizon = self.m.horizons.values().copied().max().unwrap_or(i64::MIN);
        self.now = self.now.max(latest_horizon);
        self.clock.set(self.now);
        self.run_pass(&policy(1_000))?;
        self.check()?;

        // The statement of the feature, independently of the incremental model.
        let active_base = self.active_base();
        let mut latest: BTreeMap<Vec<u8>, &RecordView> = BTreeMap::new();
        for r in self.m.history.range(..active_base).map(|(_, r)| r) {
            if let Some(k) = &r.key {
                latest.insert(k.clone(), r);
            }
        }
        let mut expected: Vec<RecordView> = latest
            .into_values()
            .filter(|r| r.value.is_some())
            .cloned()
            .collect();
        expected.sort_by_key(|r| r.offset);
        expected.extend(self.m.history.range(active_base..).map(|(_, r)| r.clone()));
        let got: Vec<RecordView> = scan(self.p())?.into_iter().flat_map(|b| b.2).collect();
        ensure!(
            got == expected,
            "after full compaction the log is not the latest value of every key:\n  log:      {}\n  expected: {}",
            show(&got),
            show(&expected)
        );
        self.reopen()?;
        self.check()
    }
}

/// No compaction leftovers, no orphan index, and the `.log` files are exactly the segments.
fn check_dir(fs: &dyn FileSystem, dir: &Path, bases: &[u64]) -> R {
    let names = fs.read_dir(dir).map_err(|e| format!("read_dir: {e}"))?;
    for n in &names {
        ensure!(
            !n.ends_with(".cleaned") && !n.ends_with(".swap"),
            "leftover file {n} in {names:?}"
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
    ensure!(logs == bases, ".log files {logs:?}, segments {bases:?}");
    for (b, k) in &files {
        ensure!(logs.contains(b), "orphan {k:?} file for base {b}");
    }
    Ok(())
}

fn run_case(cc: &CaseConfig, ops: &[Op]) -> R {
    let mut h = Harness::new(cc);
    h.open()?;
    let result = (|| {
        for op in ops {
            h.trace.push(format!("{op:?}"));
            h.run(op)?;
            h.check()?;
        }
        h.final_check()
    })();
    result.map_err(|e| format!("{e}\n\nafter:\n{}", h.trace.join("\n")))
}

fn proptest_config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 128;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0xc0_4ac7);
    }
    config.max_shrink_iters = 4096;
    config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(
        "proptest-regressions/compaction_model.txt",
    )));
    config
}

/// Fewer cases on `StdFs`: real files and syncs cost more than the simulator's.
fn proptest_config_std_fs() -> ProptestConfig {
    let mut config = proptest_config();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 32;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0xc057_d0f5);
    }
    config
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn compaction_matches_model(cc in case_config(), ops in prop::collection::vec(op(), 1..48)) {
        if let Err(e) = run_case(&cc, &ops) {
            return Err(TestCaseError::fail(e));
        }
    }
}

proptest! {
    #![proptest_config(proptest_config_std_fs())]

    #[test]
    fn compaction_matches_model_on_std_fs(
        cc in case_config().prop_map(|cc| CaseConfig { fs: FsKind::Std, ..cc }),
        ops in prop::collection::vec(op(), 1..48),
    ) {
        if let Err(e) = run_case(&cc, &ops) {
            return Err(TestCaseError::fail(e));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Focused cases
// ---------------------------------------------------------------------------------------------

/// `fs` on the fixed clock `T0`.
fn focused_env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(T0)),
    }
}

fn focused_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        index_interval_bytes: 100,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

fn eager(delete_retention_ms: u64) -> CompactionPolicy {
    CompactionPolicy {
        delete_retention: Duration::from_millis(delete_retention_ms),
        min_cleanable_dirty_ratio: 0.0,
        ..CompactionPolicy::default()
    }
}

/// Append 100-byte records with keys `f<i>` until the log has `segments` segments.
fn fill_to(log: &Partition, segments: usize, tag: &str) {
    let mut i = 0;
    while log.segment_count() < segments {
        log.append(Record::new(vec![b'x'; 100]).with_key(format!("{tag}{i}")))
            .unwrap();
        i += 1;
    }
}

/// Every record of `key`, as (offset, value).
fn records_of(log: &Partition, key: &str) -> Vec<(u64, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let b = log.read(next, 1 << 16).unwrap();
        if b.is_empty() {
            break;
        }
        for r in b.records() {
            if r.key().is_some_and(|k| k.as_ref() == key.as_bytes()) {
                out.push((r.offset(), r.value().map(|v| v.to_vec())));
            }
        }
        next = b.next_offset();
    }
    out
}

/// `truncate_to(x)` with `x` inside a batch below the first dirty offset removes the batch whole,
/// so the new end is the batch's base, below `x`; but the cleaner checkpoint is truncated at `x`
/// (`CleanerCheckpoint::truncate(offset, ..)` in `Inner::truncate_locked`), so the first dirty
/// offset stays above the end and the records appended next, at offsets in `[new end, x)`, count
/// as already cleaned: no pass ever maps them, and the horizon of the old pass covers them. A
/// tombstone appended there is dropped by the very next pass without having been kept for
/// `delete_retention`, and the value it deleted — not superseded in any map — survives: the
/// deleted key comes back.
#[test]
fn truncation_into_a_compacted_batch_resurrects_a_deleted_key() {
    let fs = SimFs::new(1);
    let log = Partition::open_with_env(DIR, focused_config(), focused_env(&fs)).unwrap();
    assert_eq!(log.append(Record::new("old").with_key("k")).unwrap(), 0);
    let batch: Vec<Record> = (0..5)
        .map(|i| Record::new("b").with_key(format!("b{i}")))
        .collect();
    assert_eq!(log.append_batch(&batch).unwrap().base_offset, 1); // offsets 1..=5
    fill_to(&log, 3, "f");
    let report = log.compact(T0, &eager(24 * 3_600_000)).unwrap();
    assert!(report.cleaned);
    assert!(log.first_dirty_offset() > 5);

    // Offset 3 is inside the batch [1, 6): it goes whole, the end becomes 1.
    let new_end = log.truncate_to(3).unwrap();
    assert_eq!(new_end, 1);
    assert!(
        log.first_dirty_offset() <= log.end_offset(),
        "first dirty offset {} is past the end {} after truncation",
        log.first_dirty_offset(),
        log.end_offset()
    );

    // Delete `k`, seal it, and compact well within the delete retention.
    assert_eq!(log.append(Record::tombstone("k")).unwrap(), 1);
    fill_to(&log, 3, "g");
    let report = log.compact(T0 + 1_000, &eager(24 * 3_600_000)).unwrap();
    assert!(report.cleaned);
    assert_eq!(
        report.tombstones_removed, 0,
        "a tombstone was dropped by the first pass that saw it"
    );
    assert_eq!(
        records_of(&log, "k"),
        vec![(1, None)],
        "the tombstone must supersede the old value and stay for delete_retention"
    );
}

/// After `truncate_to(x)` with `x` inside a sealed segment below the first dirty offset (here at a
/// batch boundary, so the new end is `x`), that segment becomes the active one and the first dirty
/// offset, `x`, lies inside it. A pass that runs because tombstones are due finds no dirty sealed
/// segment, so its cleanable range ends at the first dirty offset; but the map loop in
/// `Inner::compact_locked` only stops at a segment based at or past that offset, so it reads on
/// into the active segment and maps its records — which were never synced (`compact` flushes only
/// when the recovery point is below the active segment's base). The pass removes the durable old
/// value of a key because of a newer, unsynced one in the active segment, and records the first
/// dirty offset past the active segment's records. A crash then loses the unsynced value while the
/// removal stays: the key has no value at all, and the first dirty offset is past the end. (The
/// same map overrun happens after `delete_records` into the active segment.)
#[test]
fn a_pass_after_truncation_maps_the_active_segment_and_loses_a_durable_value() {
    let fs = SimFs::new(2);
    let log = Partition::open_with_env(DIR, focused_config(), focused_env(&fs)).unwrap();
    assert_eq!(log.append(Record::new("old").with_key("k")).unwrap(), 0);
    assert_eq!(log.append(Record::tombstone("t")).unwrap(), 1);
    fill_to(&log, 3, "f");
    let report = log.compact(T0, &eager(0)).unwrap();
    assert!(report.cleaned);

    // Truncate at a batch boundary two records into the second segment.
    let second = log.segments()[1].base_offset();
    let x = second + 2;
    assert_eq!(log.truncate_to(x).unwrap(), x);
    assert_eq!(log.segments().last().unwrap().base_offset(), second);

    // A newer value of `k`, not synced; the tombstone of `t` is due, so a pass runs.
    assert_eq!(log.append(Record::new("new").with_key("k")).unwrap(), x);
    let report = log.compact(T0 + 10, &eager(0)).unwrap();
    assert!(report.cleaned);
    assert!(
        log.first_dirty_offset() <= second,
        "the pass mapped records of the active segment: first dirty offset {}, active base {second}",
        log.first_dirty_offset()
    );

    crash_without_close(log);
    fs.crash(CrashMode::LoseUnsynced);
    let log = Partition::open_with_env(DIR, focused_config(), focused_env(&fs)).unwrap();
    assert_eq!(log.end_offset(), x, "the unsynced append is lost");
    assert_eq!(
        records_of(&log, "k"),
        vec![(0, Some(b"old".to_vec()))],
        "the durable value of k must survive"
    );
    assert!(log.first_dirty_offset() <= log.end_offset());
}

// ---------------------------------------------------------------------------------------------
// A related finding (truncation and the log start offset; not compaction itself)
// ---------------------------------------------------------------------------------------------

/// `delete_records(2)` puts the start inside the batch `[0, 5)`; `truncate_to(3)` is accepted (it
/// is not below the start) but removes the batch holding 3 whole, so the log ends at 0, below its
/// start — `Partition::truncate_to` checks the requested offset against the start, not the cut
/// point. The next append lands at offset 0, below the start: it can never be read (reads at the
/// start fail with `OffsetOutOfRange`, start 2 > end 1). Compaction makes it likelier: a cut can
/// also fall back across a gap compaction left below the start. The model avoids this by moving
/// the start only to batch boundaries and not truncating in the segment holding the start.
#[test]
fn truncation_below_a_start_inside_a_batch_ends_the_log_below_the_start() {
    let fs = SimFs::new(3);
    let log = Partition::open_with_env(DIR, focused_config(), focused_env(&fs)).unwrap();
    let batch: Vec<Record> = (0..5)
        .map(|i| Record::new(format!("v{i}")).with_key(format!("k{i}")))
        .collect();
    log.append_batch(&batch).unwrap();
    assert_eq!(log.delete_records(2).unwrap(), 2);
    let new_end = log.truncate_to(3).unwrap();
    assert!(
        new_end >= log.start_offset() && log.end_offset() >= log.start_offset(),
        "the log ends at {new_end}, below its start {}",
        log.start_offset()
    );
    let offset = log.append(Record::new("after").with_key("k")).unwrap();
    let read = log.read(log.start_offset(), 1 << 16).unwrap();
    assert_eq!(
        read.records().map(|r| r.offset()).collect::<Vec<_>>(),
        vec![offset]
    );
}
