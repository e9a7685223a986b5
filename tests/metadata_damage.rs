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

mod common;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use common::{crash_without_close, TestRng};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
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
    LogConfig {
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        index_interval_bytes: 100,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
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

// ---------------------------------------------------------------------------------------------
// 1. Damaged cleaner checkpoint and producer snapshot
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Damage {
    /// Random bytes of this length.
    Random(usize, u64),
    /// The valid file with these bits flipped (positions taken modulo its length).
    Flips(Vec<(usize, u8)>),
}

fn apply(valid: &[u8], damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::Random(len, seed) => TestRng::new(*seed).bytes(*len),
        Damage::Flips(flips) => {
            let mut b = valid.to_vec();
            for (pos, bit) in flips {
                let at = pos % b.len();
                b[at] ^= 1 << (bit % 8);
            }
            b
        }
    }
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..4096, any::<u64>()).prop_map(|(len, seed)| Damage::Random(len, seed)),
        prop::collection::vec((any::<usize>(), 0u8..8), 1..6).prop_map(Damage::Flips),
    ]
}

fn proptest_config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 128;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x3e7a_da7a);
    }
    // Failures print the minimal input; nothing is written to the source tree.
    config.failure_persistence = None;
    config
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn damaged_cleaner_checkpoint_opens_or_is_corrupt(crashed in any::<bool>(), d in damage()) {
        let fx = &fixtures()[usize::from(crashed)];
        let data = apply(file_of(&fx.image, CLEANER_CHECKPOINT), &d);
        let what = format!("cleaner-checkpoint, crashed={crashed}, {d:?}");
        let checks = Checks { dedupe: true, full: true };
        check_open(usize::from(crashed), CLEANER_CHECKPOINT, data, checks, what)
            .map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn damaged_producer_snapshot_opens_or_is_corrupt(crashed in any::<bool>(), d in damage()) {
        let fx = &fixtures()[usize::from(crashed)];
        let data = apply(file_of(&fx.image, PRODUCER_SNAPSHOT), &d);
        let what = format!("producer-snapshot, crashed={crashed}, {d:?}");
        let checks = Checks { dedupe: true, full: true };
        check_open(usize::from(crashed), PRODUCER_SNAPSHOT, data, checks, what)
            .map_err(TestCaseError::fail)?;
    }
}

#[test]
fn truncated_metadata_files_open() {
    for crashed in [false, true] {
        let fx = &fixtures()[usize::from(crashed)];
        for name in [CLEANER_CHECKPOINT, PRODUCER_SNAPSHOT] {
            let valid = file_of(&fx.image, name).to_vec();
            for len in 0..valid.len() {
                let what = format!(
                    "{name} cut to {len} of {} bytes, crashed={crashed}",
                    valid.len()
                );
                let checks = Checks {
                    dedupe: true,
                    full: len % 16 == 0,
                };
                let opened = check_open(
                    usize::from(crashed),
                    name,
                    valid[..len].to_vec(),
                    checks,
                    what,
                )
                .unwrap();
                assert!(
                    opened,
                    "{name} cut to {len}: a damaged derived file should be recovered"
                );
            }
        }
    }
}

#[test]
fn missing_metadata_files_open() {
    for crashed in [false, true] {
        let fx = &fixtures()[usize::from(crashed)];
        for name in [CLEANER_CHECKPOINT, PRODUCER_SNAPSHOT] {
            let what = format!("{name} missing, crashed={crashed}");
            let fs = restore(&with_file(&fx.image, name, None), 5);
            let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
            assert_eq!(read_all_records(&log).unwrap(), fx.records, "{what}");
            log.close().unwrap();
        }
    }
}

/// Open `image` with the cleaner checkpoint replaced by `data` and run every check.
fn crafted_cleaner_checkpoint(data: Vec<u8>, what: &str) {
    for crashed in [false, true] {
        let what = format!("{what}, crashed={crashed}");
        let checks = Checks {
            dedupe: true,
            full: true,
        };
        check_open(
            usize::from(crashed),
            CLEANER_CHECKPOINT,
            data.clone(),
            checks,
            what,
        )
        .unwrap();
    }
}

#[test]
fn cleaner_checkpoint_with_valid_crc_and_absurd_fields() {
    let rejected = [
        (
            "horizon count u32::MAX",
            Cc {
                count: Some(u32::MAX),
                ..cc()
            },
        ),
        (
            "horizon count 64 with 63 horizons",
            Cc {
                horizons: (1..=63).map(|i| (i, T0, 0)).collect(),
                count: Some(64),
                ..cc()
            },
        ),
        (
            "horizon count 0 with 64 horizons",
            Cc {
                horizons: (1..=64).map(|i| (i, T0, 0)).collect(),
                count: Some(0),
                ..cc()
            },
        ),
        (
            "horizon count 1 without its horizon",
            Cc {
                count: Some(1),
                ..cc()
            },
        ),
        (
            "swap flag 2",
            Cc {
                swap_flag: 2,
                swap: (0, 10),
                ..cc()
            },
        ),
        (
            "horizons out of order",
            Cc {
                horizons: vec![(10, T0, 1), (5, T0, 1)],
                ..cc()
            },
        ),
    ];
    let accepted = [
        (
            "first dirty offset and a horizon at u64::MAX",
            Cc {
                first_dirty: u64::MAX,
                horizons: vec![(u64::MAX, i64::MAX, u64::MAX)],
                ..cc()
            },
        ),
        (
            "a swap over every offset, without swap files",
            Cc {
                swap_flag: 1,
                swap: (0, u64::MAX),
                ..cc()
            },
        ),
        (
            "a backwards swap range, without swap files",
            Cc {
                swap_flag: 1,
                swap: (u64::MAX, 0),
                ..cc()
            },
        ),
        (
            "64 horizons, long passed, huge tombstone counts",
            Cc {
                first_dirty: 3,
                horizons: (1..=64).map(|i| (i, i64::MIN, u64::MAX)).collect(),
                ..cc()
            },
        ),
    ];
    for (what, c) in rejected.into_iter().chain(accepted) {
        crafted_cleaner_checkpoint(c.encode(), what);
    }
}

#[test]
fn cleaner_checkpoint_with_64_pending_horizons_of_huge_counts() {
    let c = Cc {
        first_dirty: 0,
        horizons: (1..=64).map(|i| (i, i64::MAX, u64::MAX)).collect(),
        ..cc()
    };
    crafted_cleaner_checkpoint(c.encode(), "64 future horizons with u64::MAX tombstones");
}

/// The cleaner checkpoint's slot at byte 17 (13 in version 1) once held a "hole-exempt end" that
/// recovery trusted: a huge value exempted a crash-lost tail from the hole check, so the log
/// claimed offsets no segment holds. Cleaned segments now end where the next begins and the slot
/// is ignored: any value there changes nothing.
#[test]
fn cleaner_checkpoint_hole_exempt_end_past_the_recovery_point() {
    let fx = &fixtures()[1];
    let valid = file_of(&fx.image, CLEANER_CHECKPOINT);
    let mut body = valid[..valid.len() - 4].to_vec();
    // The fixture's file is version 2: magic, version, length, first dirty offset, the slot.
    assert_eq!(&valid[..5], b"TLCC\x02");
    body[17..25].copy_from_slice(&u64::MAX.to_le_bytes());
    let what = "crashed image, hole-exempt end u64::MAX".to_owned();
    let checks = Checks {
        dedupe: true,
        full: true,
    };
    check_open(1, CLEANER_CHECKPOINT, sealed(body), checks, what).unwrap();
}

/// Not metadata damage, but the same symptom through the public API alone: compaction removes
/// the last batch of the last sealed segment (a keyless record), then `truncate_to` empties the
/// active segment. The end offset stays at the active segment's base, and a read between the
/// compacted segment's last batch and the end returns nothing, with `next_offset()` equal to the
/// requested offset, so a consumer positioned there never reaches the end.
#[test]
fn read_below_the_end_after_a_compaction_gap_at_the_tail() {
    let fs = SimFs::new(51);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    for i in 0..5u64 {
        log.append(Record::new(value(i)).with_key(format!("k{}", i % 3)))
            .unwrap();
    }
    log.append(Record::new(value(5))).unwrap(); // keyless: compaction removes it
    log.append(Record::new(value(6)).with_key("z")).unwrap(); // rolls
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(
        bases,
        vec![0, 6],
        "the keyless record ends the first segment"
    );
    let report = log.compact(T0, &policy()).unwrap();
    assert_eq!(report.keyless_removed, 1, "{report:?}");
    assert_eq!(log.truncate_to(6).unwrap(), 6);
    let read = log.read(5, 1 << 10).unwrap();
    assert!(
        !read.is_empty() || read.next_offset() > 5,
        "read(5) below the end {} returned nothing and next_offset() {}",
        log.end_offset(),
        read.next_offset()
    );
}

#[test]
fn oversized_cleaner_checkpoint_is_recovered() {
    for len in [MAX_CLEANER_CHECKPOINT_LEN + 1, 4095] {
        let data = TestRng::new(len as u64).bytes(len);
        crafted_cleaner_checkpoint(data, &format!("{len} random bytes"));
    }
    let c = Cc {
        horizons: (1..=65).map(|i| (i, T0, 0)).collect(),
        ..cc()
    };
    crafted_cleaner_checkpoint(c.encode(), "65 horizons (over the limit of 64), valid CRC");
}

/// Open with the producer snapshot replaced by `data`; `dedupe` as in [`Checks`].
fn crafted_producer_snapshot(data: Vec<u8>, dedupe: bool, what: &str) {
    for crashed in [false, true] {
        let what = format!("{what}, crashed={crashed}");
        let checks = Checks { dedupe, full: true };
        check_open(
            usize::from(crashed),
            PRODUCER_SNAPSHOT,
            data.clone(),
            checks,
            what,
        )
        .unwrap();
    }
}

#[test]
fn producer_snapshot_with_valid_crc_and_absurd_counts() {
    let batch = (0, 1, 0, 1, T0);
    let rejected = [
        (
            "producer count u32::MAX, no producers",
            Snap {
                count: Some(u32::MAX),
                ..snap(0)
            },
        ),
        (
            "producer count u32::MAX, one producer",
            Snap {
                producers: vec![(PID, 0, vec![batch])],
                count: Some(u32::MAX),
                ..snap(0)
            },
        ),
        (
            "batch count 255",
            Snap {
                producers: vec![(PID, 0, vec![batch])],
                batch_count: Some(255),
                ..snap(0)
            },
        ),
        (
            "six batches (over the limit of five), length to match",
            Snap {
                producers: vec![(PID, 0, vec![batch; 6])],
                ..snap(0)
            },
        ),
        (
            "bytes left over",
            Snap {
                producers: vec![(PID, 0, vec![batch])],
                count: Some(0),
                ..snap(0)
            },
        ),
    ];
    for (what, s) in rejected {
        crafted_producer_snapshot(s.encode(), true, what);
    }
    // Decodable, so trusted: the producer state is whatever they say, but nothing may break.
    let accepted = [
        ("offset u64::MAX, no producers", snap(u64::MAX)),
        (
            "a producer at epoch i16::MAX fencing the real one",
            Snap {
                producers: vec![(PID, i16::MAX, vec![(i32::MAX, 0, 5, 3, i64::MIN)])],
                ..snap(0)
            },
        ),
        (
            "the same producer id twice",
            Snap {
                producers: vec![(PID, 0, vec![batch]), (PID, 1, vec![])],
                ..snap(0)
            },
        ),
    ];
    for (what, s) in accepted {
        crafted_producer_snapshot(s.encode(), false, what);
    }
    // Many producers: the file's size bounds the work.
    let many = Snap {
        producers: (0..20_000).map(|id| (1_000_000 + id, 0, vec![])).collect(),
        ..snap(u64::MAX)
    };
    crafted_producer_snapshot(many.encode(), false, "20 000 producers");
}

/// A valid-CRC snapshot naming a batch of producer 555 at `base..=last`; then a replay of that
/// batch with `Durability::Always` must come back (whatever it answers) and never name offsets
/// past the log end.
fn replay_phantom_batch(base: u64, last: u64) -> Result<(), String> {
    let fx = &fixtures()[0];
    let s = Snap {
        producers: vec![(555, 0, vec![(0, 1, base, last, T0)])],
        ..snap(u64::MAX)
    };
    let image = damaged(fx, PRODUCER_SNAPSHOT, &s.encode());
    bounded("phantom replay", Duration::from_secs(10), move || {
        let fs = restore(&image, 9);
        let log = match Partition::open_with_env(DIR, config(), sim_env(&fs)) {
            Ok(log) => log,
            Err(Error::Corrupt { .. }) => return Ok(()),
            Err(e) => return Err(format!("open: {e}")),
        };
        let end = log.end_offset();
        let records = [
            Record::new("a").with_key("a"),
            Record::new("b").with_key("b"),
        ];
        match log.append_idempotent(&records, pb(555, 0, 0), Durability::Always) {
            Ok(info) if info.last_offset >= log.end_offset() => Err(format!(
                "a replay was answered with offsets {}..={} past the log end {end}",
                info.base_offset, info.last_offset
            )),
            _ => Ok(()),
        }
    })
}

#[test]
fn producer_snapshot_naming_offsets_past_the_end() {
    replay_phantom_batch(10_000, 10_001).unwrap();
}

#[test]
fn producer_snapshot_naming_offset_u64_max() {
    replay_phantom_batch(u64::MAX - 1, u64::MAX).unwrap();
}

/// The same phantom as above without hand-made files: a clean close writes the snapshot at the
/// log end; damage to the last (durable) batch, then `Recovery::TruncateCorrupt` cuts the log
/// below the snapshot's offset, and the snapshot still answers for the cut batch.
#[test]
fn producer_snapshot_survives_a_truncate_corrupt_cut() {
    let fs = SimFs::new(21);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    for i in 0..5u64 {
        log.append(Record::new(value(i)).with_key(format!("k{i}")))
            .unwrap();
    }
    let (records, p, info) = idempotent(&log, pb(555, 0, 0), 100);
    let batch = log.read(info.base_offset, 1).unwrap().batches()[0]
        .as_bytes()
        .to_vec();
    log.close().unwrap();
    // Reopen (the clean-shutdown marker goes) and crash.
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    crash_without_close(log);
    fs.crash(CrashMode::LoseUnsynced);
    // Damage the idempotent batch's last byte (a record value), below the recovery point.
    let damaged_file = fs
        .read_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .find_map(|n| {
            let path = Path::new(DIR).join(n);
            let bytes = fs.read_file(&path)?;
            let at = bytes
                .windows(batch.len())
                .position(|w| w == batch.as_slice())?;
            Some((path, bytes, at))
        });
    let (path, mut bytes, at) = damaged_file.expect("the batch is in a segment file");
    bytes[at + batch.len() - 1] ^= 0x10;
    fs.write_file(&path, &bytes);

    let result = bounded("replay after cut", Duration::from_secs(10), move || {
        let log = Partition::open_with_env(
            DIR,
            LogConfig {
                recovery: Recovery::TruncateCorrupt,
                ..config()
            },
            sim_env(&fs),
        )
        .map_err(|e| format!("open: {e}"))?;
        let end = log.end_offset();
        assert_eq!(end, info.base_offset, "the damaged batch is cut");
        // Without a sync to wait for, the answer comes back at once: it must not be a duplicate.
        let quick = log
            .append_idempotent(&records, p, Durability::None)
            .map_err(|e| format!("replay: {e}"))?;
        if quick.duplicate {
            return Err(format!(
                "the cut batch was answered as a duplicate at {}..={}, past the end {end}",
                quick.base_offset, quick.last_offset
            ));
        }
        log.truncate_to(end).map_err(|e| format!("truncate: {e}"))?;
        match log.append_idempotent(&records, p, Durability::Always) {
            Ok(again) if again.duplicate => Err(format!(
                "the cut batch was answered as a duplicate at {}..={}, past the end {end}",
                again.base_offset, again.last_offset
            )),
            Ok(again) => {
                assert_eq!(again.base_offset, end);
                Ok(())
            }
            Err(e) => Err(format!("replay: {e}")),
        }
    });
    result.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. Stray compaction files
// ---------------------------------------------------------------------------------------------

fn segment_bases(image: &Image) -> Vec<u64> {
    let mut bases: Vec<u64> = image
        .iter()
        .filter_map(|(n, _)| n.strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    bases
}

fn seg_name(base: u64, ext: &str) -> String {
    format!("{base:020}{ext}")
}

/// The valid cleaner checkpoint `valid` with its swap entry set to `(base, end)`.
fn with_swap_entry(valid: &[u8], base: u64, end: u64) -> Vec<u8> {
    let mut b = valid[..valid.len() - 4].to_vec();
    b[21] = 1;
    b[22..30].copy_from_slice(&base.to_le_bytes());
    b[30..38].copy_from_slice(&end.to_le_bytes());
    sealed(b)
}

/// Open `image`, expecting success; check that no name matching `gone` is left, that the log
/// reads back as `fx.records` and that appends go on.
fn open_expecting_cleanup(fx: &Fixture, image: &Image, gone: impl Fn(&str) -> bool, what: &str) {
    let fs = restore(image, 13);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let names = fs.read_dir(Path::new(DIR)).unwrap();
    let left: Vec<&String> = names.iter().filter(|n| gone(n)).collect();
    assert!(left.is_empty(), "{what}: left behind {left:?}");
    assert_eq!(read_all_records(&log).unwrap(), fx.records, "{what}");
    let end = log.end_offset();
    assert_eq!(
        log.append(Record::new("x").with_key("x")).unwrap(),
        end,
        "{what}"
    );
    log.close().unwrap();
    // And once more, cleanly.
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(log.end_offset(), end + 1, "{what}");
    crash_without_close(log);
}

#[test]
fn stray_log_swap_is_corrupt_naming_the_file() {
    for (i, fx) in fixtures().iter().enumerate() {
        let valid_cc = file_of(&fx.image, CLEANER_CHECKPOINT);
        let bases = segment_bases(&fx.image);
        assert!(bases.len() >= 3, "{bases:?}");
        let checkpoints: [(&str, Option<Vec<u8>>, &str); 4] = [
            (
                "no swap in progress",
                Some(valid_cc.to_vec()),
                "no matching cleaner checkpoint entry",
            ),
            (
                "no cleaner checkpoint",
                None,
                "no matching cleaner checkpoint entry",
            ),
            (
                "a swap in progress at another base",
                Some(with_swap_entry(valid_cc, bases[2], bases[2] + 1)),
                "no matching cleaner checkpoint entry",
            ),
            (
                "a damaged cleaner checkpoint",
                Some(b"TLCC\x01 not a checkpoint".to_vec()),
                "cleaner checkpoint is damaged",
            ),
        ];
        for (cc_what, cc_data, expected) in &checkpoints {
            for swap_base in [bases[1], 123_456] {
                let what = format!("image {i}, {cc_what}, stray swap at {swap_base}");
                let swap_name = seg_name(swap_base, ".log.swap");
                let mut image = with_file(&fx.image, CLEANER_CHECKPOINT, cc_data.as_deref());
                image.push((
                    swap_name.clone(),
                    file_of(&fx.image, &seg_name(bases[1], ".log")).to_vec(),
                ));
                let fs = restore(&image, 17);
                let err = match Partition::open_with_env(DIR, config(), sim_env(&fs)) {
                    Ok(_) => panic!("{what}: opened despite a stray {swap_name}"),
                    Err(e) => e,
                };
                let message = err.to_string();
                match &err {
                    Error::Corrupt { path, reason, .. } => {
                        assert_eq!(path, &Path::new(DIR).join(&swap_name), "{what}: {message}");
                        assert!(reason.contains(expected), "{what}: {message}");
                    }
                    other => panic!("{what}: expected Corrupt, got {other:?}"),
                }
                assert!(
                    message.contains(&swap_name) && message.contains("swap"),
                    "{what}: the message should name the file: {message}"
                );
                // The refused open changed nothing: every file is still there, unchanged.
                for (name, data) in &image {
                    let now = fs.read_file(&Path::new(DIR).join(name));
                    assert_eq!(
                        now.as_deref(),
                        Some(data.as_slice()),
                        "{what}: {name} changed"
                    );
                }
                // With the stray file gone, the partition opens and holds what it held.
                fs.remove_file(&Path::new(DIR).join(&swap_name)).unwrap();
                let repaired: Image = image.into_iter().filter(|(n, _)| *n != swap_name).collect();
                open_expecting_cleanup(fx, &repaired, |n| n.ends_with(".swap"), &what);
            }
        }
    }
}

#[test]
fn cleaned_files_of_any_content_are_removed_on_open() {
    let mut rng = TestRng::new(0xc1ea);
    for (i, fx) in fixtures().iter().enumerate() {
        let bases = segment_bases(&fx.image);
        let valid_cc = file_of(&fx.image, CLEANER_CHECKPOINT);
        for case in 0..24 {
            let mut image = fx.image.clone();
            let mut names = Vec::new();
            let base = if case % 3 == 0 {
                rng.below(1 << 40)
            } else {
                bases[rng.below(bases.len() as u64) as usize]
            };
            for ext in [".log", ".index", ".timeindex"] {
                if rng.below(3) == 0 && ext != ".log" {
                    continue;
                }
                let len = match case {
                    0 => 0,
                    1 => 300_000,
                    _ => rng.below(4096) as usize,
                };
                let name = seg_name(base, &format!("{ext}.cleaned"));
                image.push((name.clone(), rng.bytes(len)));
                names.push(name);
            }
            // Half the time the swap was prepared (the checkpoint names it) but not committed.
            if case % 2 == 1 {
                let end = bases
                    .iter()
                    .copied()
                    .find(|&b| b > base)
                    .unwrap_or(base + 1);
                image = with_file(
                    &image,
                    CLEANER_CHECKPOINT,
                    Some(&with_swap_entry(valid_cc, base, end)),
                );
            }
            let what = format!("image {i}, case {case}: {names:?}");
            open_expecting_cleanup(fx, &image, |n| n.ends_with(".cleaned"), &what);
        }
    }
}

#[test]
fn index_swap_files_without_their_log_are_removed_on_open() {
    let mut rng = TestRng::new(0x5a4b);
    for (i, fx) in fixtures().iter().enumerate() {
        let bases = segment_bases(&fx.image);
        let valid_cc = file_of(&fx.image, CLEANER_CHECKPOINT);
        for case in 0..16 {
            let mut image = fx.image.clone();
            let base = if case % 4 == 0 {
                rng.below(1 << 40)
            } else {
                bases[rng.below(bases.len() as u64) as usize]
            };
            let exts: &[&str] = match case % 3 {
                0 => &[".index.swap"],
                1 => &[".timeindex.swap"],
                _ => &[".index.swap", ".timeindex.swap"],
            };
            for ext in exts {
                let len = rng.below(4096) as usize;
                image.push((seg_name(base, ext), rng.bytes(len)));
            }
            // Half the time the checkpoint still names the swap: the crash came after the `.log`
            // was renamed into place, before its indexes were.
            if case % 2 == 1 {
                let end = bases
                    .iter()
                    .copied()
                    .find(|&b| b > base)
                    .unwrap_or(base + 1);
                image = with_file(
                    &image,
                    CLEANER_CHECKPOINT,
                    Some(&with_swap_entry(valid_cc, base, end)),
                );
            }
            let what = format!("image {i}, case {case}: {exts:?} at {base}");
            open_expecting_cleanup(fx, &image, |n| n.ends_with(".swap"), &what);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Store-level files: `__producer_ids` and the offsets topic
// ---------------------------------------------------------------------------------------------

const STORE: &str = "/s";
const GROUP: &str = "group-under-test";

fn store_env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(T0)),
    }
}

fn store_options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 4096,
            preallocate: false,
            durability: Durability::None,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

#[test]
fn damaged_producer_ids_is_a_clear_error() {
    let fs = SimFs::new(31);
    let store = Store::open_with_env(STORE, store_options(), store_env(&fs)).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    let p = store.producer(ProducerConfig::default()).unwrap();
    assert_eq!(p.producer_id(), Some(0));
    p.close().unwrap();
    let path = Path::new(STORE).join("__producer_ids");
    let valid = fs.read_file(&path).unwrap();
    // docs/FORMAT.md: the envelope (magic `TLPI`, version, length, CRC) around the next id.
    assert_eq!(valid.len(), 21);

    // The counter as earlier versions wrote it (12 bytes: the next id, its CRC), still read.
    let counter = |v: i64| sealed(v.to_le_bytes().to_vec());
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for (layout, valid) in [("", valid.clone()), ("12-byte ", counter(1))] {
        for len in 0..valid.len() {
            cases.push((format!("{layout}cut to {len}"), valid[..len].to_vec()));
        }
        let mut long = valid.clone();
        long.push(0);
        cases.push((format!("{layout}a byte too many"), long));
        for bit in 0..valid.len() * 8 {
            let mut b = valid.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            cases.push((format!("{layout}bit {bit} flipped"), b));
        }
    }
    let mut rng = TestRng::new(0x1d5);
    for i in 0..64 {
        let len = if i < 8 { i } else { rng.below(4096) as usize };
        cases.push((format!("{len} random bytes"), rng.bytes(len)));
    }
    for v in [-1, i64::MIN, i64::MAX] {
        cases.push((format!("counter {v} with a valid CRC"), counter(v)));
    }
    for (what, data) in &cases {
        fs.write_file(&path, data);
        let err = match store.producer(ProducerConfig::default()) {
            Ok(p) => panic!("{what}: got producer id {:?}", p.producer_id()),
            Err(e) => e,
        };
        let message = err.to_string();
        match &err {
            Error::Corrupt {
                path: p, reason, ..
            } => {
                assert_eq!(p, &path, "{what}: {message}");
                assert!(
                    reason.contains("producer id counter") || data.len() > 64,
                    "{what}: {message}"
                );
            }
            // A file longer than any counter fails the size guard, an I/O-style error that still
            // names the file and says what is wrong.
            Error::Io { path: p, .. } if data.len() > 64 => {
                assert_eq!(p, &path, "{what}: {message}");
                assert!(message.contains("bytes"), "{what}: {message}");
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert!(message.contains("__producer_ids"), "{what}: {message}");
        // The damaged counter is left for a human, not silently reset or reused.
        assert_eq!(
            fs.read_file(&path).as_deref(),
            Some(data.as_slice()),
            "{what}"
        );
        // Everything else goes on: a producer that needs no id still sends.
        let plain = store
            .producer(ProducerConfig {
                idempotent: false,
                ..ProducerConfig::default()
            })
            .unwrap();
        assert_eq!(plain.producer_id(), None);
        plain
            .send("t", Record::new("v"))
            .unwrap()
            .wait()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        plain.close().unwrap();
    }
    // A valid counter works again; the last id is refused rather than wrapped.
    fs.write_file(&path, &valid);
    assert_eq!(
        store
            .producer(ProducerConfig::default())
            .unwrap()
            .producer_id(),
        Some(1)
    );
    fs.write_file(&path, &counter(i64::MAX - 1));
    assert_eq!(
        store
            .producer(ProducerConfig::default())
            .unwrap()
            .producer_id(),
        Some(i64::MAX - 1)
    );
    assert!(matches!(
        store.producer(ProducerConfig::default()),
        Err(Error::Corrupt { .. })
    ));
    store.close().unwrap();
}

/// Where a record's parts lie in the first batch of the offsets topic's log.
struct CommitRecord {
    /// The whole log file.
    bytes: Vec<u8>,
    /// Batch length field: the batch is `12 + len` bytes from 0.
    len: usize,
    /// First byte of the key (its version byte).
    key: usize,
    /// First byte of the value (its version byte).
    value: usize,
}

fn offsets_log() -> PathBuf {
    Path::new(STORE)
        .join("__consumer_offsets")
        .join("0")
        .join(seg_name(0, ".log"))
}

fn locate_commit(fs: &SimFs) -> CommitRecord {
    let bytes = fs.read_file(&offsets_log()).unwrap();
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let mut key_head = vec![1u8];
    key_head.extend_from_slice(&(GROUP.len() as u16).to_le_bytes());
    key_head.extend_from_slice(GROUP.as_bytes());
    let key = bytes[..12 + len]
        .windows(key_head.len())
        .position(|w| w == key_head.as_slice())
        .expect("the first batch holds the commit's key");
    // key = version | group len | group | topic len | "t" | partition u32
    let key_end = key + 1 + 2 + GROUP.len() + 2 + 1 + 4;
    // value = version | offset | time | metadata len | "meta": 25 bytes, uvarint 26 before it.
    assert_eq!(bytes[key_end], 26, "value length");
    let value = key_end + 1;
    assert_eq!(bytes[value], 1, "value version");
    assert_eq!(&bytes[value + 21..value + 25], b"meta");
    CommitRecord {
        bytes,
        len,
        key,
        value,
    }
}

/// Recompute the first batch's CRC: crc32(bytes[16..12 + len]) XOR crc32(base offset LE).
fn fix_crc(bytes: &mut [u8], len: usize) {
    let crc = crc32fast::hash(&bytes[16..12 + len]) ^ crc32fast::hash(&bytes[..8]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
}

fn group_consumer(store: &Store) -> topiclog::Result<topiclog::Consumer> {
    store.consumer(ConsumerConfig {
        group_id: Some(GROUP.into()),
        enable_auto_commit: false,
        ..ConsumerConfig::default()
    })
}

/// A store whose offsets topic holds one commit of `GROUP` (then a second, valid one), closed.
fn store_with_commits() -> SimFs {
    let fs = SimFs::new(41);
    let store = Store::open_with_env(STORE, store_options(), store_env(&fs)).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    assert!(matches!(
        store.topic("__consumer_offsets"),
        Err(Error::UnknownTopic { .. })
    ));
    let c = group_consumer(&store).unwrap();
    let tp = TopicPartition::new("t", 0);
    for offset in [5, 9] {
        c.commit(&[(
            tp.clone(),
            OffsetAndMetadata {
                offset,
                metadata: "meta".into(),
                commit_timestamp: 0,
            },
        )])
        .unwrap();
    }
    // The offsets topic now exists on disk, and is still out of reach of the public API.
    assert!(matches!(
        store.topic("__consumer_offsets"),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        store.create_topic("__consumer_offsets", TopicConfig::with_partitions(1)),
        Err(Error::InvalidTopicName { .. })
    ));
    assert!(!store.topics().iter().any(|t| t.starts_with("__")));
    drop(c);
    store.close().unwrap();
    fs
}

/// Reopen the store over `log` (the offsets topic's log bytes) and load the offsets: `Ok` with
/// the committed offset of `t-0`, or the error.
fn load_offsets(fs: &SimFs, log: &[u8]) -> topiclog::Result<Option<u64>> {
    fs.write_file(&offsets_log(), log);
    let store = Store::open_with_env(STORE, store_options(), store_env(fs))?;
    let result = group_consumer(&store)
        .and_then(|c| c.committed(&TopicPartition::new("t", 0)))
        .map(|om| om.map(|om| om.offset));
    if result.is_err() {
        // The rest of the store works: its topics, and consumers without a group.
        store.topic("t").unwrap();
        store.consumer(ConsumerConfig::default()).unwrap();
    }
    store.close().unwrap();
    result
}

#[test]
fn undecodable_offsets_record_is_corrupt() {
    let fs = store_with_commits();
    let c = locate_commit(&fs);
    assert_eq!(load_offsets(&fs, &c.bytes).unwrap(), Some(9));
    let glen = GROUP.len();
    let cases: Vec<(&str, usize, Vec<u8>, &str)> = vec![
        ("key version 9", c.key, vec![9], "undecodable key"),
        (
            "group length u16::MAX",
            c.key + 1,
            vec![0xff, 0xff],
            "undecodable key",
        ),
        ("group not UTF-8", c.key + 3, vec![0xff], "undecodable key"),
        (
            "topic length 0",
            c.key + 3 + glen,
            vec![0, 0],
            "undecodable key",
        ),
        ("value version 9", c.value, vec![9], "undecodable value"),
        (
            "metadata length u32::MAX",
            c.value + 17,
            vec![0xff; 4],
            "undecodable value",
        ),
    ];
    for (what, at, patch, expected) in cases {
        let mut bytes = c.bytes.clone();
        bytes[at..at + patch.len()].copy_from_slice(&patch);
        fix_crc(&mut bytes, c.len);
        let err = match load_offsets(&fs, &bytes) {
            Ok(v) => panic!("{what}: loaded {v:?}"),
            Err(e) => e,
        };
        let message = err.to_string();
        match &err {
            // (`position` holds the record's offset, not a byte position: not checked here.)
            Error::Corrupt { path, reason, .. } => {
                assert!(
                    path.starts_with(Path::new(STORE).join("__consumer_offsets")),
                    "{what}: {message}"
                );
                assert!(reason.contains(expected), "{what}: {message}");
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert!(
            message.contains("offsets topic") && message.contains("__consumer_offsets"),
            "{what}: {message}"
        );
    }
    // Undamaged again, it loads.
    assert_eq!(load_offsets(&fs, &c.bytes).unwrap(), Some(9));
}

#[test]
fn bit_flips_in_offsets_records_with_a_valid_crc() {
    let fs = store_with_commits();
    let c = locate_commit(&fs);
    let mut rng = TestRng::new(0x0ff5);
    let mut outcomes = [0usize; 2];
    // Every byte of the records (framing included), each with a random bit flipped, and every
    // bit of the key.
    let mut flips: Vec<(usize, u8)> = (57..12 + c.len)
        .map(|at| (at, 1u8 << rng.below(8)))
        .collect();
    let key_len = 1 + 2 + GROUP.len() + 2 + 1 + 4;
    for at in c.key..c.key + key_len {
        flips.extend((0..8).map(|bit| (at, 1u8 << bit)));
    }
    for (at, mask) in flips {
        let mut bytes = c.bytes.clone();
        bytes[at] ^= mask;
        fix_crc(&mut bytes, c.len);
        match load_offsets(&fs, &bytes) {
            Ok(_) => outcomes[0] += 1,
            Err(Error::Corrupt { reason, .. }) if !reason.is_empty() => outcomes[1] += 1,
            Err(e) => panic!("byte {at} ^ {mask:#x}: expected Ok or Corrupt, got {e:?}"),
        }
    }
    assert!(outcomes[1] > 0, "{outcomes:?}");
}
