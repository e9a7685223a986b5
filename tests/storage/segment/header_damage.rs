//! Batch headers read off the disk are never trusted unchecked. A bit flipped in any header field
//! of any batch of a cleanly closed (or flushed and crashed) log must make a read, a time lookup
//! or the open itself fail with `Error::Corrupt` — never return a wrong record, skip one, or move
//! the end offset. Found by a damage sweep:
//! - reads skipped batches by their unverified header: one bit in a batch's base offset made a
//!   scan omit a record, and `read(38)` inside a damaged batch returned the record at 39;
//! - a clean open took the end offset from the last batch's unverified header (2 became 4098) and
//!   the next append landed there;
//! - `offset_for_time` trusted unverified header timestamps and answered late;
//! - garbage after a sealed segment's data surfaced as `Error::IndexAppend`, not `Corrupt`.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use crate::common::{crash_without_close, file_bytes, overwrite, segment_files, RecordView};
use topiclog::fs::{FileSystem, SimFs};
use topiclog::internals::format::{
    BASE_OFFSET_OFFSET, LAST_OFFSET_DELTA_OFFSET, LENGTH_OFFSET, MAX_TIMESTAMP_OFFSET,
};
use topiclog::segment::{BatchHeader, SegmentFileKind};
use topiclog::{Env, Error, LogConfig, Partition, Record};

const DIR: &str = "/p";

/// The simulated `fs` with the system clock.
fn sim_env(fs: &SimFs) -> Env {
    Env::with_fs(Arc::new(fs.clone()))
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        preallocate: false,
        ..LogConfig::default()
    }
}

/// A log of batches of 1-3 records over several segments, with distinct, increasing timestamps;
/// `compacted`: keys repeat and a compaction pass removed the older values, leaving gaps inside
/// segments. Returns the records the log holds and its end offset.
fn build(clean: bool, compacted: bool) -> (SimFs, Vec<RecordView>, u64) {
    let fs = SimFs::new(5);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    let mut records = Vec::new();
    for b in 0..40u64 {
        let n = 1 + b % 3;
        let batch: Vec<Record> = (0..n)
            .map(|i| {
                Record::new(format!(
                    "value-{b}-{i}-{}",
                    "x".repeat((b % 7) as usize * 10)
                ))
                .with_key(if compacted {
                    format!("k{}", b % 6)
                } else {
                    format!("k{b}")
                })
                .with_timestamp(1_000 + (b * 3 + i) as i64 * 10)
            })
            .collect();
        let info = log.append_batch(&batch).unwrap();
        for (i, r) in batch.iter().enumerate() {
            records.push(RecordView {
                offset: info.base_offset + i as u64,
                timestamp: r.timestamp().unwrap(),
                key: r.key().map(|k| k.to_vec()),
                value: r.value().map(|v| v.to_vec()),
                headers: Vec::new(),
            });
        }
    }
    assert!(log.segment_count() >= 4);
    if compacted {
        let policy = topiclog::CompactionPolicy {
            min_cleanable_dirty_ratio: 0.0,
            ..topiclog::CompactionPolicy::default()
        };
        let report = log.compact(0, &policy).unwrap();
        assert!(report.records_removed > 20, "{report:?}");
        records = common::record_views(&log, 0);
    }
    let end = log.end_offset();
    if clean {
        log.close().unwrap();
    } else {
        // Everything durable and below the recovery point, then gone without a clean close.
        log.flush_checkpoint().unwrap();
        crash_without_close(log);
    }
    (fs, records, end)
}

/// Every file of the partition directory.
type Image = Vec<(String, Vec<u8>)>;

fn capture(fs: &SimFs) -> Image {
    fs.read_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .map(|n| {
            let b = file_bytes(fs, &Path::new(DIR).join(&n));
            (n, b)
        })
        .collect()
}

/// Put the directory back exactly as captured (an open in between rewrites metadata files).
fn restore(fs: &SimFs, image: &Image) {
    for name in fs.read_dir(Path::new(DIR)).unwrap() {
        if !image.iter().any(|(n, _)| *n == name) {
            fs.remove_file(&Path::new(DIR).join(name)).unwrap();
        }
    }
    for (name, bytes) in image {
        fs.write_file(&Path::new(DIR).join(name), bytes);
    }
}

/// The byte position and header of every batch in a `.log`.
fn batches_in(bytes: &[u8]) -> Vec<(usize, BatchHeader)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).unwrap();
        out.push((pos, h));
        pos += h.total_len();
    }
    out
}

/// Open the damaged log and check every answer it gives: each is either right or `Corrupt`.
/// `records` are the log's records in offset order (a compacted log has gaps) and `end` its end
/// offset. Returns whether anything reported the damage.
fn check(fs: &SimFs, records: &[RecordView], end: u64, what: &str) -> bool {
    let log = match Partition::open_with_env(DIR, config(), sim_env(fs)) {
        Ok(log) => log,
        Err(Error::Corrupt { .. }) => return true,
        Err(e) => panic!("{what}: open failed with a non-Corrupt error: {e:?}"),
    };
    assert_eq!(log.end_offset(), end, "{what}: the end offset moved");
    let mut detected = false;
    let mut note = |r: &topiclog::Result<()>| match r {
        Ok(()) => {}
        Err(Error::Corrupt { .. }) => detected = true,
        Err(e) => panic!("{what}: expected Ok or Corrupt, got {e:?}"),
    };
    // Point reads: the first record at or after `o` is exactly the log's first record at or
    // after `o`.
    for o in 0..end {
        let r = log.read(o, 1).map(|b| {
            let want = records.iter().find(|r| r.offset >= o);
            let got = b.records().next().map(|r| RecordView::of(&r));
            assert_eq!(
                got.as_ref(),
                want,
                "{what}: read({o}) returned the wrong record"
            );
        });
        note(&r);
    }
    // A sequential scan sees every record once, in order, or fails.
    let scan = (|| {
        let mut next = 0;
        let mut seen = Vec::new();
        while next < end {
            let b = log.read(next, 700)?;
            seen.extend(b.records().map(|r| RecordView::of(&r)));
            next = b.next_offset();
        }
        assert_eq!(
            seen, records,
            "{what}: the scan skipped, repeated or changed a record"
        );
        Ok(())
    })();
    note(&scan);
    // Time lookups answer exactly (timestamps increase with offsets), or fail.
    for rec in records.iter().step_by(2) {
        let r = log.offset_for_time(rec.timestamp).map(|found| {
            let found = found.map(|f| f.offset);
            assert_eq!(
                found,
                Some(rec.offset),
                "{what}: offset_for_time({})",
                rec.timestamp
            );
        });
        note(&r);
    }
    if !detected {
        // Undetected damage must have been harmless; appends go on at the end.
        assert_eq!(
            log.append(Record::new("next").with_key("n")).unwrap(),
            end,
            "{what}"
        );
    }
    log.abandon();
    detected
}

fn sweep_header_bits(clean: bool, compacted: bool) {
    let (fs, records, end) = build(clean, compacted);
    let image = capture(&fs);
    let logs = segment_files(&fs, Path::new(DIR), SegmentFileKind::Log);
    let mut trials = 0;
    let mut detected = 0;
    for path in &logs {
        let bytes = &file_bytes(&fs, path);
        for (pos, _) in batches_in(bytes) {
            for (field, width) in [
                (BASE_OFFSET_OFFSET, 8),
                (LENGTH_OFFSET, 4),
                (LAST_OFFSET_DELTA_OFFSET, 4),
                (MAX_TIMESTAMP_OFFSET, 8),
            ] {
                // Every bit of the base offset; in debug builds every third bit of the others.
                let step = if field == BASE_OFFSET_OFFSET || !cfg!(debug_assertions) {
                    1
                } else {
                    3
                };
                for bit in (0..width * 8).step_by(step) {
                    let at = pos + field + bit / 8;
                    let damaged = fs.clone();
                    restore(&damaged, &image);
                    overwrite(&damaged, path, at as u64, &[bytes[at] ^ (1 << (bit % 8))]);
                    let what = format!(
                        "{} byte {at} (batch at {pos}, field at {field}) bit {}",
                        path.display(),
                        bit % 8
                    );
                    trials += 1;
                    detected += usize::from(check(&damaged, &records, end, &what));
                }
            }
        }
    }
    // Restored, the intact log reads back whole.
    restore(&fs, &image);
    assert!(!check(&fs, &records, end, "intact"));
    eprintln!("{trials} single-bit header flips, {detected} reported as Corrupt, none misread");
    assert!(detected > trials / 2, "most header damage is caught");
}

#[test]
fn header_bit_flips_after_a_clean_close_are_caught_or_harmless() {
    sweep_header_bits(true, false);
}

#[test]
fn header_bit_flips_after_a_crash_are_caught_or_harmless() {
    sweep_header_bits(false, false);
}

/// A compacted log has gaps inside its segments, where a read cannot tell a skipped batch's
/// header is right from the batch after it: it checksums the batch before every gap.
#[test]
fn header_bit_flips_in_a_compacted_log_are_caught_or_harmless() {
    sweep_header_bits(true, true);
}

/// Garbage after a sealed segment's data (random bytes, or a copy of one of its own batches) is
/// `Corrupt`, never `IndexAppend` (which the partition documents it never raises).
#[test]
fn garbage_after_a_sealed_segment_is_corrupt() {
    for duplicate in [false, true] {
        let (fs, records, end) = build(true, false);
        let logs = segment_files(&fs, Path::new(DIR), SegmentFileKind::Log);
        let first = &logs[0];
        let bytes = file_bytes(&fs, first);
        let garbage = if duplicate {
            let (pos, h) = batches_in(&bytes)[1];
            bytes[pos..pos + h.total_len()].to_vec()
        } else {
            (0..300u32).map(|i| (i * 7 + 3) as u8).collect()
        };
        common::append_to_file(&fs, first, &garbage);
        assert!(
            check(
                &fs,
                &records,
                end,
                &format!("garbage (duplicate: {duplicate})")
            ),
            "the garbage is reported"
        );
    }
}

/// The log's end after a clean open comes from verified batches: a damaged last batch never moves
/// it, and the next append lands right after the last intact record or the open fails.
#[test]
fn clean_open_never_takes_the_end_from_a_damaged_header() {
    let (fs, records, _) = build(true, false);
    let logs = segment_files(&fs, Path::new(DIR), SegmentFileKind::Log);
    let active = logs.last().unwrap();
    let bytes = file_bytes(&fs, active);
    let (pos, _) = *batches_in(&bytes).last().unwrap();
    // The flip that once moved the end from 2 to 4098: bit 12 of the last offset delta.
    let at = pos + LAST_OFFSET_DELTA_OFFSET + 1;
    overwrite(&fs, active, at as u64, &[bytes[at] ^ 0x10]);
    match Partition::open_with_env(DIR, config(), sim_env(&fs)) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(&path, active),
        Ok(log) => panic!(
            "opened with end {} (was {})",
            log.end_offset(),
            records.len()
        ),
        Err(e) => panic!("{e:?}"),
    }
}
