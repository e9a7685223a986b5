//! Torn tails and bit flips. A last batch cut at every byte boundary after an unclean stop is
//! dropped on reopen while everything before it stays intact and appends continue; a damaged batch
//! followed by valid data, or one below the durable point, is corruption: `Recovery::Strict`
//! refuses to open (and leaves the file as it was) and `Recovery::TruncateCorrupt` cuts there and
//! says so. The scenarios follow Kafka's `LogLoaderTest` (unclean-shutdown recovery of a truncated
//! or corrupted tail) and `LogSegmentTest` (`testRecoveryWithCorruptMessage`).

use crate::common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::{
    both_fs, crash_without_close, file_bytes, overwrite, record_views, RecordView, TestRng,
};
use topiclog::fs::{FileSystem, OpenMode, SimFs, StdFs};
use topiclog::internals::format::LENGTH_OFFSET;
use topiclog::{Bytes, Env, Error, LogConfig, Partition, Record, Recovery};

fn config(preallocate: bool, recovery: Recovery) -> LogConfig {
    LogConfig {
        preallocate,
        recovery,
        ..crate::common::small_log(2048, 128)
    }
}

/// The partition in `dir` on `fs`.
fn open(fs: &Arc<dyn FileSystem>, dir: &Path, config: LogConfig) -> topiclog::Result<Partition> {
    Partition::open_with_env(dir, config, Env::with_fs(fs.clone()))
}

/// Copy every file of `from` into a fresh directory `to`.
fn copy_dir(fs: &dyn FileSystem, from: &Path, to: &Path) {
    fs.create_dir_all(to).unwrap();
    for name in fs.read_dir(from).unwrap() {
        let bytes = file_bytes(fs, &from.join(&name));
        let f = fs.open(&to.join(&name), OpenMode::CreateNew).unwrap();
        f.write_all_at(&bytes, 0).unwrap();
    }
}

/// A log stopped without a clean close, and where its last batch lies.
struct Template {
    dir: PathBuf,
    /// Every record, the last batch's included.
    records: Vec<RecordView>,
    /// The `.log` holding the last batch.
    log_path: PathBuf,
    /// Byte range of the last batch in that file.
    last_batch: (u64, u64),
    /// Base offset of the last batch.
    last_base: u64,
}

/// Write `batches` random batches (spanning a few segments) and then one small last batch, and
/// stop without closing.
fn write_template(fs: &Arc<dyn FileSystem>, dir: &Path, config: LogConfig) -> Template {
    let log = open(fs, dir, config).unwrap();
    let mut records = common::append_random_batches(&log, 12, 77);
    assert!(log.segment_count() > 1, "the earlier data spans segments");
    // It ends with a non-zero byte (the header value), so zeroing any suffix of it changes it.
    let last = Record::new("last")
        .with_key("k")
        .with_timestamp(2_000_000)
        .with_header("h", Bytes::from("v"));
    let info = log.append_batch(std::slice::from_ref(&last)).unwrap();
    records.push(RecordView {
        offset: info.base_offset,
        timestamp: 2_000_000,
        key: Some(b"k".to_vec()),
        value: Some(b"last".to_vec()),
        headers: vec![("h".to_owned(), Some(b"v".to_vec()))],
    });
    let active = log.segments().last().unwrap().clone();
    let log_path = active.log_path().to_owned();
    let end = active.size();
    let len = log.read(info.base_offset, 1).unwrap().batches()[0]
        .as_bytes()
        .len() as u64;
    drop(active);
    crash_without_close(log);
    Template {
        dir: dir.to_owned(),
        records,
        log_path,
        last_batch: (end - len, end),
        last_base: info.base_offset,
    }
}

/// Reopen a copy of `template` whose last batch was cut at `cut`, and check that exactly the
/// batches before it remain and that appends continue after them.
fn check_cut(template: &Template, preallocate: bool, cut: u64, n: usize) {
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let dir = template.dir.with_file_name(format!("cut-{n}"));
    copy_dir(&*fs, &template.dir, &dir);
    let path = dir.join(template.log_path.file_name().unwrap());
    let (start, end) = template.last_batch;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // The leading bytes of a big-endian base offset are zeros: a tail torn within them looks like
    // unwritten space, which is cut without being counted.
    let mut torn = vec![0u8; (cut - start) as usize];
    file.read_exact_at(&mut torn, start).unwrap();
    let torn_counts = torn.iter().any(|&b| b != 0);
    if preallocate {
        // The file is longer than the data: a torn write leaves zeros after the cut.
        let zeros = vec![0u8; (end - cut) as usize];
        let mut was = vec![0u8; zeros.len()];
        file.read_exact_at(&mut was, cut).unwrap();
        assert!(
            was.iter().any(|&b| b != 0),
            "zeroing from {cut} changes the batch"
        );
        file.write_all_at(&zeros, cut).unwrap();
    } else {
        file.set_len(cut).unwrap();
    }
    drop(file);

    let log = open(&fs, &dir, config(preallocate, Recovery::Strict))
        .unwrap_or_else(|e| panic!("cut at {cut} of [{start}, {end}): {e}"));
    let report = log.recovery_report();
    let what = format!("preallocate {preallocate}, cut at {cut} of [{start}, {end}): {report:?}");
    assert!(!report.clean_shutdown, "{what}");
    assert!(!report.corruption_cut, "{what}");
    if !preallocate && torn_counts {
        assert_eq!(report.bytes_truncated, cut - start, "{what}");
    }
    assert!((report.bytes_truncated > 0) == torn_counts, "{what}");
    assert_eq!(log.end_offset(), template.last_base, "{what}");
    let kept = &template.records[..template.records.len() - 1];
    assert_eq!(record_views(&log, 0), kept, "{what}");

    let offset = log.append(Record::new("again")).unwrap();
    assert_eq!(offset, template.last_base, "{what}");
    let read = log.read(offset, 1 << 10).unwrap();
    let value = read.records().next().unwrap().value().unwrap().clone();
    assert_eq!(value.as_ref(), b"again", "{what}");
    drop(log);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn torn_tail_at_every_byte(preallocate: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let template = write_template(
        &fs,
        &tmp.path().join("template"),
        config(preallocate, Recovery::Strict),
    );
    let (start, end) = template.last_batch;
    assert!(
        end - start < 100,
        "a small last batch keeps the sweep short"
    );
    let cuts: Vec<u64> = (start..end).collect();
    // Cut points are independent: check them on a few threads.
    std::thread::scope(|s| {
        for (t, chunk) in cuts.chunks(cuts.len().div_ceil(4)).enumerate() {
            let template = &template;
            s.spawn(move || {
                for (i, &cut) in chunk.iter().enumerate() {
                    check_cut(template, preallocate, cut, t * 1000 + i);
                }
            });
        }
    });

    // Uncut, the last batch is there.
    let dir = tmp.path().join("uncut");
    copy_dir(&*fs, &template.dir, &dir);
    let log = open(&fs, &dir, config(preallocate, Recovery::Strict)).unwrap();
    assert_eq!(log.recovery_report().bytes_truncated, 0);
    assert_eq!(record_views(&log, 0), template.records);
}

#[test]
fn torn_tail_at_every_byte_of_the_last_batch() {
    torn_tail_at_every_byte(false);
}

#[test]
fn torn_tail_at_every_byte_of_the_last_batch_preallocated() {
    torn_tail_at_every_byte(true);
}

/// A log of `count` single-segment batches, stopped without a clean close; returns its records
/// and the byte range and base offset of every batch.
fn batches_on_disk(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    count: u64,
) -> (Vec<RecordView>, Vec<(u64, u64, u64)>, PathBuf) {
    let config = LogConfig {
        segment_bytes: 64 << 10,
        ..config(false, Recovery::Strict)
    };
    let log = open(fs, dir, config).unwrap();
    let records = common::append_random_batches(&log, count, 5);
    assert_eq!(log.segment_count(), 1);
    let mut spans = Vec::new();
    let mut pos = 0u64;
    let mut next = 0u64;
    while next < log.end_offset() {
        let batch = log.read(next, 1).unwrap().batches()[0].clone();
        let len = batch.as_bytes().len() as u64;
        spans.push((pos, pos + len, batch.base_offset()));
        pos += len;
        next = batch.next_offset();
    }
    let path = log.segments()[0].log_path().to_owned();
    crash_without_close(log);
    (records, spans, path)
}

/// Damage the batch `(start, end, base)` of a copy of `template` by XOR-ing `mask` into the byte
/// at `at`, then check that a strict open fails with `Error::Corrupt` (leaving the file as it
/// was) and that `Recovery::TruncateCorrupt` cuts the log right before that batch.
#[allow(clippy::too_many_arguments)]
fn check_flip(
    fs: &Arc<dyn FileSystem>,
    template: &Path,
    dir: &Path,
    log_name: &std::ffi::OsStr,
    records: &[RecordView],
    batch: (u64, u64, u64),
    at: u64,
    mask: u8,
) {
    let (start, end, base) = batch;
    copy_dir(&**fs, template, dir);
    let path = dir.join(log_name);
    let mut byte = [0u8];
    fs.open(&path, OpenMode::Read)
        .unwrap()
        .read_exact_at(&mut byte, at)
        .unwrap();
    overwrite(&**fs, &path, at, &[byte[0] ^ mask]);
    let damaged = file_bytes(&**fs, &path);
    let what = format!(
        "byte {} of the batch at [{start}, {end}) ^ {mask:#04x}",
        at - start
    );

    match open(fs, dir, config(false, Recovery::Strict)) {
        Err(Error::Corrupt {
            path: p, position, ..
        }) => {
            assert_eq!(p, path, "{what}");
            assert!(
                (start..end).contains(&position),
                "{what}: position {position}"
            );
        }
        Err(e) => panic!("{what}: expected Error::Corrupt, got {e}"),
        Ok(log) => panic!(
            "{what}: strict open succeeded, end offset {} (batch base {base}), report {:?}",
            log.end_offset(),
            log.recovery_report()
        ),
    }
    assert_eq!(
        file_bytes(&**fs, &path),
        damaged,
        "{what}: a failed open changed the log"
    );

    let log = open(fs, dir, config(false, Recovery::TruncateCorrupt)).unwrap();
    let report = log.recovery_report();
    assert!(report.corruption_cut, "{what}: {report:?}");
    assert_eq!(log.end_offset(), base, "{what}");
    let kept: Vec<RecordView> = records
        .iter()
        .filter(|r| r.offset < base)
        .cloned()
        .collect();
    assert_eq!(record_views(&log, 0), kept, "{what}");
    assert_eq!(log.append(Record::new("after")).unwrap(), base, "{what}");
    drop(log);
    fs.remove_dir_all(dir).unwrap();
}

/// Flip one bit in each byte of `bytes` (relative to the start of the next-to-last batch, which
/// is followed by one valid batch) and check each damage is found.
fn flips_followed_by_valid_batch(
    fs: Arc<dyn FileSystem>,
    root: &Path,
    bytes: impl Fn(u64) -> Vec<u64>,
) {
    let template = root.join("template");
    let (records, spans, path) = batches_on_disk(&fs, &template, 8);
    let batch = spans[spans.len() - 2];
    let log_name = path.file_name().unwrap().to_owned();
    for (n, rel) in bytes(batch.1 - batch.0).into_iter().enumerate() {
        let at = batch.0 + rel;
        assert!(at < batch.1);
        let mask = 1u8 << (rel % 8);
        let dir = root.join(format!("flip-{n}"));
        check_flip(&fs, &template, &dir, &log_name, &records, batch, at, mask);
    }
}

#[test]
fn bit_flip_in_checksummed_bytes_followed_by_a_valid_batch_is_corruption() {
    // Every byte from the length field on, on the simulated file system; a sample on the real one
    // (where each reopen costs real fsyncs).
    let sim: Arc<dyn FileSystem> = Arc::new(SimFs::new(3));
    flips_followed_by_valid_batch(sim, Path::new("/sim"), |len| {
        (LENGTH_OFFSET as u64..len).collect()
    });
    let tmp = tempfile::tempdir().unwrap();
    let std: Arc<dyn FileSystem> = Arc::new(StdFs);
    flips_followed_by_valid_batch(std, tmp.path(), |len| {
        (LENGTH_OFFSET as u64..len).step_by(23).collect()
    });
}

#[test]
fn bit_flip_in_base_offset_followed_by_a_valid_batch_is_corruption() {
    // The base offset is outside the CRC (it is assigned after encoding); damage to it must still
    // not be mistaken for a torn tail, nor yield records at wrong offsets.
    let sim: Arc<dyn FileSystem> = Arc::new(SimFs::new(3));
    flips_followed_by_valid_batch(sim, Path::new("/sim"), |_| (0..8).collect());
}

/// Write a log, flush it (so the checkpoint's recovery point covers everything), stop without a
/// clean close, and check a bit flip at each of `bytes(len)` (relative to the start of the last
/// batch, of length `len`) is reported as corruption.
fn flips_below_the_durable_point(
    fs: Arc<dyn FileSystem>,
    dir: &Path,
    bytes: impl Fn(u64) -> Vec<u64>,
) {
    let template = dir.join("template");
    let log = open(&fs, &template, config(false, Recovery::Strict)).unwrap();
    let records = common::append_random_batches(&log, 10, 6);
    log.flush_checkpoint().unwrap();
    assert_eq!(log.durable_offset(), log.end_offset());
    let active = log.segments().last().unwrap().clone();
    let path = active.log_path().to_owned();
    let end = active.size();
    drop(active);
    let last_base = records.last().unwrap().offset;
    let last = log.read(last_base, 1).unwrap().batches()[0].clone();
    let base = last.base_offset();
    let start = end - last.as_bytes().len() as u64;
    crash_without_close(log);

    let log_name = path.file_name().unwrap();
    for (n, rel) in bytes(end - start).into_iter().enumerate() {
        let dir = dir.join(format!("flip-{n}"));
        let at = start + rel;
        let mask = 1 << (rel % 8);
        check_flip(
            &fs,
            &template,
            &dir,
            log_name,
            &records,
            (start, end, base),
            at,
            mask,
        );
    }
}

#[test]
fn bit_flip_in_the_last_batch_below_the_durable_point_is_corruption() {
    // Random bytes of the checksummed part, and the very last byte.
    both_fs(|fs, dir| {
        flips_below_the_durable_point(fs, dir, |len| {
            let mut rng = TestRng::new(9);
            let checked = len - LENGTH_OFFSET as u64;
            let mut rels: Vec<u64> = (0..6)
                .map(|_| LENGTH_OFFSET as u64 + rng.below(checked))
                .collect();
            rels.push(len - 1);
            rels
        })
    });
}

#[test]
fn bit_flip_in_the_base_offset_of_the_last_batch_below_the_durable_point_is_corruption() {
    both_fs(|fs, dir| flips_below_the_durable_point(fs, dir, |_| (0..8).collect()));
}
