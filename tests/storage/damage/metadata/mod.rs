//! Damage to the small metadata files must never panic, hang or allocate absurdly: a partition's
//! `cleaner-checkpoint` and `producer-snapshot`, compaction's transient `.cleaned`/`.swap` files,
//! and the store's `__producer_ids` and `__consumer_offsets` topic (layouts in docs/FORMAT.md).
//!
//! 1. The partition scenarios start from two images (on `SimFs`) of a compacted partition that
//!    idempotent producers wrote to, so both metadata files exist: one after a clean close, one
//!    after a crash. Each metadata file is replaced by random bytes, by the valid file with random
//!    bit flips, by every truncation of it, and by hand-made files with a correct CRC but absurd
//!    counts, lengths and offsets. Opening must return `Ok` or `Err(Error::Corrupt)`, within a
//!    time limit and without panicking; after `Ok` the whole log reads back exactly as before the
//!    damage, a replayed idempotent batch is still recognised (when the damage was detectable),
//!    and appends, compaction, close and reopen go on.
//! 2. A `<base>.log.swap` the cleaner checkpoint does not name is refused with `Corrupt` naming
//!    the file, and the refused open changes nothing; `.cleaned` files of any content and index
//!    `.swap` files without their log are removed on open.
//! 3. A damaged `__producer_ids` makes `Store::producer` fail with an error naming the file; the
//!    offsets topic is out of reach of the public API; a CRC-valid offsets batch whose key or
//!    value does not decode makes loading the offsets fail with `Corrupt`, never panic.
//!
//! Tests marked `#[ignore = "BUG: ..."]` reproduce bugs found here (run them with `--ignored`).
//! The proptests run 128 cases from a fixed seed; `PROPTEST_CASES` and `PROPTEST_RNG_SEED`
//! override that.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use crate::common::{crash_without_close, TestRng};
use proptest::prelude::*;
use topiclog::fs::{CrashMode, FileSystem, SimFs};
use topiclog::{
    AppendInfo, CompactionPolicy, ConsumerConfig, Deadline, Durability, Env, Error, LogConfig,
    ManualClock, OffsetAndMetadata, Partition, ProducerBatch, ProducerConfig, Record, Recovery,
    Store, StoreOptions, TopicConfig, TopicPartition,
};

const DIR: &str = "/p";
const T0: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 24 * 3_600_000;
const CLEANER_CHECKPOINT: &str = "cleaner-checkpoint";
const PRODUCER_SNAPSHOT: &str = "producer-snapshot";
/// Largest valid cleaner checkpoint: 50 bytes (the envelope included) and 64 horizons of 24.
const MAX_CLEANER_CHECKPOINT_LEN: usize = 50 + 64 * 24;
/// The idempotent producers of the fixture.
const PID: i64 = 42;
const PID2: i64 = 7;

// ---------------------------------------------------------------------------------------------
// Fixture: images of a partition directory
// ---------------------------------------------------------------------------------------------

/// The files of a partition directory: name and content.
type Image = Vec<(String, Vec<u8>)>;

fn config() -> LogConfig {
    crate::common::small_log(1024, 100)
}

/// `fs` on the fixed clock `T0`.
fn sim_env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(T0)),
    }
}

fn policy() -> CompactionPolicy {
    CompactionPolicy {
        delete_retention: Duration::from_millis(DAY_MS as u64),
        min_compaction_lag: Duration::ZERO,
        max_compaction_lag: Deadline::Never,
        min_cleanable_dirty_ratio: 0.0,
        map_budget_bytes: 64 << 10,
    }
}

fn capture(fs: &SimFs, dir: &str) -> Image {
    let mut names = fs.read_dir(Path::new(dir)).unwrap();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let data = fs.read_file(&Path::new(dir).join(&n)).unwrap();
            (n, data)
        })
        .collect()
}

fn restore(image: &Image, seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    for (name, data) in image {
        fs.write_file(&Path::new(DIR).join(name), data);
    }
    fs
}

fn file_of<'a>(image: &'a Image, name: &str) -> &'a [u8] {
    &image
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("the image has no {name}"))
        .1
}

/// `image` with `name` replaced by `data` (or removed, for `None`).
fn with_file(image: &Image, name: &str, data: Option<&[u8]>) -> Image {
    let mut out: Image = image.iter().filter(|(n, _)| n != name).cloned().collect();
    if let Some(d) = data {
        out.push((name.to_owned(), d.to_vec()));
    }
    out
}

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i}:").into_bytes();
    v.resize(90, b'a' + (i % 26) as u8);
    v
}

fn pb(producer_id: i64, epoch: i16, base_sequence: i32) -> ProducerBatch {
    ProducerBatch {
        producer_id,
        epoch,
        base_sequence,
    }
}

/// One record as read back.
type Rec = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

/// A partition image and what must hold after opening it.
struct Fixture {
    image: Image,
    /// Every record, as the undamaged image reads back.
    records: Vec<Rec>,
    /// The last idempotent batch of `PID`: replaying it must find the original.
    last_batch: (Vec<Record>, ProducerBatch, AppendInfo),
    /// `PID`'s next sequence number.
    next_seq: i32,
}

fn read_all_records(log: &Partition) -> Result<Vec<Rec>, String> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let batches = log
            .read(next, 64 << 10)
            .map_err(|e| format!("read at {next}: {e}"))?;
        if batches.is_empty() {
            return Err(format!("read at {next} returned nothing below the end"));
        }
        for r in batches.records() {
            out.push((
                r.offset(),
                r.key().map(|k| k.to_vec()),
                r.value().map(|v| v.to_vec()),
            ));
        }
        next = batches.next_offset();
    }
    Ok(out)
}

fn idempotent(
    log: &Partition,
    p: ProducerBatch,
    i: u64,
) -> (Vec<Record>, ProducerBatch, AppendInfo) {
    let records = vec![
        Record::new(value(i)).with_key(format!("idem-{i}")),
        Record::new(value(i + 1)).with_key(format!("idem-{}", i + 1)),
    ];
    let info = log
        .append_idempotent(&records, p, Durability::Always)
        .unwrap();
    assert!(!info.duplicate);
    (records, p, info)
}

/// A compacted partition with idempotent batches, closed cleanly.
fn build_clean() -> Fixture {
    let fs = SimFs::new(1);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    for i in 0..40u64 {
        let r = if i % 9 == 4 {
            Record::tombstone(format!("k{}", i % 6))
        } else {
            Record::new(value(i)).with_key(format!("k{}", i % 6))
        };
        log.append(r).unwrap();
    }
    // Some idempotent batches before the pass (compaction keeps them: their keys are unique).
    let mut seq = 0;
    for i in 0..3u64 {
        idempotent(&log, pb(PID, 0, seq), 1000 + 2 * i);
        seq += 2;
    }
    idempotent(&log, pb(PID2, 3, 0), 2000);
    for i in 40..60u64 {
        log.append(Record::new(value(i)).with_key(format!("k{}", i % 6)))
            .unwrap();
    }
    let report = log.compact(T0, &policy()).unwrap();
    assert!(
        report.cleaned && report.segments_written > 0 && report.records_removed > 0,
        "{report:?}"
    );
    // Idempotent batches after the pass, the last five of `PID` among them.
    let mut last = None;
    for i in 0..6u64 {
        last = Some(idempotent(&log, pb(PID, 0, seq), 3000 + 2 * i));
        seq += 2;
    }
    idempotent(&log, pb(PID2, 3, 2), 4000);
    let records = read_all_records(&log).unwrap();
    log.close().unwrap();
    let image = capture(&fs, DIR);
    file_of(&image, CLEANER_CHECKPOINT);
    file_of(&image, PRODUCER_SNAPSHOT);
    file_of(&image, ".clean_shutdown");
    Fixture {
        image,
        records,
        last_batch: last.unwrap(),
        next_seq: seq,
    }
}

/// The clean image reopened, compacted again, appended to (durably and not), then crashed.
fn build_crashed(clean: &Fixture) -> Fixture {
    let fs = restore(&clean.image, 2);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    for i in 60..90u64 {
        log.append(Record::new(value(i)).with_key(format!("k{}", i % 7)))
            .unwrap();
    }
    let report = log.compact(T0 + 2 * DAY_MS, &policy()).unwrap();
    assert!(report.cleaned, "{report:?}");
    let mut seq = clean.next_seq;
    let mut last = None;
    for i in 0..3u64 {
        last = Some(idempotent(&log, pb(PID, 0, seq), 5000 + 2 * i));
        seq += 2;
    }
    // Not synced: lost in the crash.
    for i in 90..95u64 {
        log.append(Record::new(value(i)).with_key(format!("k{i}")))
            .unwrap();
    }
    crash_without_close(log);
    fs.crash(CrashMode::LoseUnsynced);
    let image = capture(&fs, DIR);
    assert!(image.iter().all(|(n, _)| n != ".clean_shutdown"));
    file_of(&image, CLEANER_CHECKPOINT);
    file_of(&image, PRODUCER_SNAPSHOT);
    // What the undamaged image reads back after recovery.
    let fs = restore(&image, 3);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    let records = read_all_records(&log).unwrap();
    let (records_, p, info) = last.unwrap();
    assert!(info.last_offset < log.end_offset());
    crash_without_close(log);
    Fixture {
        image,
        records,
        last_batch: (records_, p, info),
        next_seq: seq,
    }
}

fn fixtures() -> &'static [Fixture; 2] {
    static F: OnceLock<[Fixture; 2]> = OnceLock::new();
    F.get_or_init(|| {
        let clean = build_clean();
        let crashed = build_crashed(&clean);
        [clean, crashed]
    })
}

// ---------------------------------------------------------------------------------------------
// Opening a damaged image
// ---------------------------------------------------------------------------------------------

/// Run `f` on another thread; fail if it panics or takes longer than `limit` (a hang).
fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Err(format!("{what}: panicked: {msg}"))
        }
        Err(_) => Err(format!("{what}: no answer within {limit:?} (a hang?)")),
    }
}

/// How much to check after a damaged image opened.
#[derive(Clone, Copy)]
struct Checks {
    /// The damage was detectable, so the producer state must be rebuilt exactly: a replay of the
    /// last batch is still recognised.
    dedupe: bool,
    /// Also compact, close and reopen.
    full: bool,
}

/// Open `image` (with `Error::Corrupt` an accepted answer) and, if it opened, check the log.
/// Returns whether it opened.
fn open_damaged(fx: &Fixture, image: Image, checks: Checks, what: &str) -> Result<bool, String> {
    let fs = restore(&image, 11);
    let log = match Partition::open_with_env(DIR, config(), sim_env(&fs)) {
        Ok(log) => log,
        Err(Error::Corrupt { path, reason, .. }) => {
            if reason.is_empty() || !path.starts_with(DIR) {
                return Err(format!("{what}: unhelpful Corrupt: {path:?} {reason:?}"));
            }
            return Ok(false);
        }
        Err(e) => {
            return Err(format!(
                "{what}: open failed with a non-Corrupt error: {e:?}"
            ))
        }
    };
    let records = read_all_records(&log).map_err(|e| format!("{what}: {e}"))?;
    if records != fx.records {
        return Err(format!(
            "{what}: the log reads back differently: {} records, expected {} (first difference at \
             {:?})",
            records.len(),
            fx.records.len(),
            records.iter().zip(&fx.records).position(|(a, b)| a != b)
        ));
    }
    let end = log.end_offset();
    if checks.dedupe {
        let (records, p, info) = &fx.last_batch;
        let again = log
            .append_idempotent(records, *p, Durability::Always)
            .map_err(|e| format!("{what}: replay of the last batch: {e}"))?;
        if !again.duplicate || again.base_offset != info.base_offset {
            return Err(format!(
                "{what}: the replayed batch was not recognised: {again:?}, original {info:?}"
            ));
        }
        let next = log
            .append_idempotent(
                &[Record::new("next").with_key("next")],
                pb(PID, 0, fx.next_seq),
                Durability::Always,
            )
            .map_err(|e| format!("{what}: next idempotent batch: {e}"))?;
        if next.duplicate || next.base_offset != end {
            return Err(format!(
                "{what}: next idempotent batch landed at {next:?}, end {end}"
            ));
        }
    } else {
        // Whatever the producer state holds, a brand-new producer appends.
        log.append_idempotent(
            &[Record::new("fresh").with_key("fresh")],
            pb(999, 0, 0),
            Durability::Always,
        )
        .map_err(|e| format!("{what}: new producer's batch: {e}"))?;
    }
    let at = log.end_offset();
    let offset = log
        .append(Record::new("plain").with_key("plain"))
        .map_err(|e| format!("{what}: append: {e}"))?;
    if offset != at {
        return Err(format!("{what}: append landed at {offset}, end was {at}"));
    }
    if checks.full {
        log.flush().map_err(|e| format!("{what}: flush: {e}"))?;
        log.compact(T0 + 10 * DAY_MS, &policy())
            .map_err(|e| format!("{what}: compact: {e}"))?;
        let before = read_all_records(&log).map_err(|e| format!("{what}: after compact: {e}"))?;
        log.close().map_err(|e| format!("{what}: close: {e}"))?;
        let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
            .map_err(|e| format!("{what}: reopen after close: {e}"))?;
        let after = read_all_records(&log).map_err(|e| format!("{what}: after reopen: {e}"))?;
        if after != before {
            return Err(format!("{what}: reopen changed the log"));
        }
        log.close()
            .map_err(|e| format!("{what}: second close: {e}"))?;
    } else {
        crash_without_close(log);
    }
    Ok(true)
}

fn damaged(fx: &Fixture, name: &str, data: &[u8]) -> Image {
    with_file(&fx.image, name, Some(data))
}

fn check_open(
    fx_index: usize,
    name: &'static str,
    data: Vec<u8>,
    checks: Checks,
    what: String,
) -> Result<bool, String> {
    bounded(&what.clone(), Duration::from_secs(30), move || {
        let fx = &fixtures()[fx_index];
        open_damaged(fx, damaged(fx, name, &data), checks, &what)
    })
}

// ---------------------------------------------------------------------------------------------
// Hand-made files with a valid CRC
// ---------------------------------------------------------------------------------------------

/// `body` followed by its CRC-32.
fn sealed(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

struct Cc {
    first_dirty: u64,
    hole_exempt_end: u64,
    swap_flag: u8,
    swap: (u64, u64),
    /// Written as the horizon count unless `count` overrides it.
    horizons: Vec<(u64, i64, u64)>,
    count: Option<u32>,
}

impl Cc {
    fn encode(&self) -> Vec<u8> {
        let mut b = b"TLCC".to_vec();
        b.push(1);
        b.extend_from_slice(&self.first_dirty.to_le_bytes());
        b.extend_from_slice(&self.hole_exempt_end.to_le_bytes());
        b.push(self.swap_flag);
        b.extend_from_slice(&self.swap.0.to_le_bytes());
        b.extend_from_slice(&self.swap.1.to_le_bytes());
        let count = self.count.unwrap_or(self.horizons.len() as u32);
        b.extend_from_slice(&count.to_le_bytes());
        for (end, horizon, tombstones) in &self.horizons {
            b.extend_from_slice(&end.to_le_bytes());
            b.extend_from_slice(&horizon.to_le_bytes());
            b.extend_from_slice(&tombstones.to_le_bytes());
        }
        sealed(b)
    }
}

fn cc() -> Cc {
    Cc {
        first_dirty: 0,
        hole_exempt_end: 0,
        swap_flag: 0,
        swap: (0, 0),
        horizons: Vec::new(),
        count: None,
    }
}

/// One cached batch of a producer snapshot: first/last sequence, base/last offset, append time.
type SnapBatch = (i32, i32, u64, u64, i64);

struct Snap {
    offset: u64,
    producers: Vec<(i64, i16, Vec<SnapBatch>)>,
    /// Overrides the producer count.
    count: Option<u32>,
    /// Overrides every producer's batch count.
    batch_count: Option<u8>,
}

impl Snap {
    fn encode(&self) -> Vec<u8> {
        let mut b = b"TLPS".to_vec();
        b.push(1);
        b.extend_from_slice(&self.offset.to_le_bytes());
        let count = self.count.unwrap_or(self.producers.len() as u32);
        b.extend_from_slice(&count.to_le_bytes());
        for (id, epoch, batches) in &self.producers {
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&epoch.to_le_bytes());
            b.push(self.batch_count.unwrap_or(batches.len() as u8));
            for (first, last, base, last_offset, time) in batches {
                b.extend_from_slice(&first.to_le_bytes());
                b.extend_from_slice(&last.to_le_bytes());
                b.extend_from_slice(&base.to_le_bytes());
                b.extend_from_slice(&last_offset.to_le_bytes());
                b.extend_from_slice(&time.to_le_bytes());
            }
        }
        sealed(b)
    }
}

fn snap(offset: u64) -> Snap {
    Snap {
        offset,
        producers: Vec::new(),
        count: None,
        batch_count: None,
    }
}

/// The file name of segment `base`'s file with extension `ext`.
fn seg_name(base: u64, ext: &str) -> String {
    format!("{base:020}{ext}")
}

mod checksummed_files;
mod compaction_files;
mod store_files;
