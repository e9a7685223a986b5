//! Import of one Kafka partition directory: its `.log` files brought into a new partition
//! directory, every batch verified by segment recovery, and a checkpoint written so the
//! partition opens with Kafka's log start offset.
//!
//! The partition keeps Kafka's batches as they are: below the offset where Kafka's log ended
//! (`kafka-adopted`, as the partition's own adoption of a Kafka directory writes it), batches
//! may follow gaps (Kafka's compaction drops whole batches) and carry any leader epoch; from it
//! on the log is topiclog's.
//!
//! Only the `.log` files are taken. Everything else in a Kafka partition directory is either
//! derived data topiclog rebuilds (`.index`, `.timeindex`, and the `.snapshot` producer state,
//! rebuilt from the batches' producer fields), state topiclog does not keep
//! (`leader-epoch-checkpoint`, `partition.metadata`, an empty `.txnindex`), or a leftover Kafka
//! removes when it loads the log (`*.deleted`, `*.tmp`).
//! Leftovers of an operation Kafka finishes or undoes when it next loads the log (`*.swap`,
//! `*.cleaned`) and aborted transactions (a non-empty `.txnindex`) are refused: see
//! [`check_kafka_partition_dir`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogConfig;
use crate::error::{Error, IoContext, Result};
use crate::format::{parse_segment_file_name, segment_file_name, SegmentFileKind};
use crate::fs::{FileSystem, OpenMode};
use crate::progress::{Meter, Observer, ProgressOperation};
use crate::segment::{Recovery, Segment, SegmentConfig, SegmentRecovery};

use super::super::checkpoint::{AdoptedLog, Checkpoint};
use super::copy::{copy_file, link_or_copy};

/// What the Kafka log directory says of a partition, beside its files.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KafkaSource {
    /// Its `log-start-offset-checkpoint` entry (Kafka writes one only when the log start lies
    /// above the first segment's base offset).
    pub log_start: Option<u64>,
    /// Its `recovery-point-offset-checkpoint` entry: everything below was flushed.
    pub recovery_point: Option<u64>,
    /// The log directory holds `.kafka_cleanshutdown`: the broker stopped cleanly, so every
    /// byte of every segment was flushed.
    pub clean_shutdown: bool,
}

/// What [`Store::import_kafka`](crate::Store::import_kafka) found and did for one partition.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaPartitionImport {
    /// The Kafka partition directory read (never modified).
    pub source: PathBuf,
    /// The log start offset: Kafka's (its `log-start-offset-checkpoint` entry), or the first
    /// segment's base offset if that is higher.
    pub start_offset: u64,
    /// The end offset: the offset the next record appended gets.
    pub end_offset: u64,
    /// Segments imported (segments wholly below the log start are left out, as Kafka deletes
    /// them when it loads the log).
    pub segments: usize,
    /// `.log` files hard-linked rather than copied.
    pub hard_linked: usize,
    /// Bytes of `.log` copied.
    pub copied_bytes: u64,
    /// Bytes cut from a torn tail of the last segment, above Kafka's recovery point (only after
    /// an unclean Kafka shutdown; Kafka's own recovery would cut them too).
    pub bytes_truncated: u64,
}

/// Refuse a Kafka partition directory that holds what no import should guess about:
/// - `*.swap`: Kafka stopped while swapping cleaned or split segments into place; its next
///   load finishes the swap (deleting the segments the `.swap` files replace);
/// - `*.cleaned`: Kafka stopped while compacting (or splitting) segments; its next load
///   deletes these files (and `.swap` files of an incomplete split);
/// - a non-empty `.txnindex`: the log holds aborted transactions, whose records a Kafka
///   `read_committed` consumer never sees; topiclog has no transactions and would serve them.
///
/// Also lists the base offsets of the `.log` files, ascending.
///
/// # Errors
/// [`Error::KafkaLogDir`] as above; [`Error::Io`].
pub(crate) fn check_kafka_partition_dir(fs: &dyn FileSystem, src: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    for name in fs.read_dir(src).at(src)? {
        let path = src.join(&name);
        if name.ends_with(".swap") || name.ends_with(".cleaned") {
            return Err(Error::kafka_log_dir(
                path,
                "a leftover of a compaction or segment split that Kafka was stopped in the \
                 middle of (Kafka finishes or discards it when it next loads the log): start \
                 the Kafka broker on this directory and stop it cleanly, then import again",
            ));
        }
        if name.ends_with(".txnindex") {
            let len = fs
                .open(&path, OpenMode::Read)
                .and_then(|f| f.len())
                .at(&path)?;
            if len > 0 {
                return Err(Error::kafka_log_dir(
                    path,
                    "the log holds aborted transactions (this transaction index lists them); \
                     topiclog has no transactions and would serve their records to every \
                     reader: copy the topic's committed records with a read_committed consumer \
                     instead",
                ));
            }
            continue;
        }
        if let Some((base, SegmentFileKind::Log)) = parse_segment_file_name(&name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Bring the Kafka partition in `src` into the new partition directory `dest` (which exists and
/// is empty), as a partition that `Partition::open` opens with `config` without rescanning
/// anything it has not verified:
///
/// - every segment but the last: its `.log` hard-linked (or copied), then recovered in place as
///   a standalone [`Segment`] treating every byte as durable, so that any invalid byte fails the
///   import and nothing is ever cut or extended (the link shares the source's file); its
///   indexes are built and written as new files. Gaps Kafka's compaction left (inside a segment
///   or at its end) and leader epochs stay as they are;
/// - the last segment: copied (topiclog appends to it in place), then recovered, cutting a torn
///   tail only above Kafka's recovery point (nowhere after a clean Kafka shutdown);
/// - `kafka-adopted` with the end offset (gaps and epochs are accepted below it), then a
///   checkpoint with the log start offset, every offset durable, and producer state to be
///   rebuilt from the log start.
///
/// `src` is only read. The caller checked it with [`check_kafka_partition_dir`]. `observer`
/// hears the import's progress: its total is the length of the `.log` files taken, done follows
/// their verification.
pub(crate) fn adopt_kafka_partition(
    fs: &Arc<dyn FileSystem>,
    src: &Path,
    dest: &Path,
    config: &LogConfig,
    source: &KafkaSource,
    hard_links: bool,
    observer: Option<&Observer>,
) -> Result<KafkaPartitionImport> {
    let bases = check_kafka_partition_dir(&**fs, src)?;
    // Kafka leaves gaps in the offsets only by compaction.
    let compacted = config.cleanup_policy.compacts();
    let config = LogConfig {
        preallocate: false,
        recovery: Recovery::Strict,
        ..config.clone()
    };
    let mut start = source.log_start.unwrap_or(0);
    // Segments whose successor begins at or below the log start hold nothing from it on.
    let keep: Vec<u64> = bases
        .iter()
        .enumerate()
        .filter(|&(i, _)| bases.get(i + 1).is_none_or(|&next| next > start))
        .map(|(_, &b)| b)
        .collect();
    let mut report = KafkaPartitionImport {
        source: src.to_owned(),
        start_offset: 0,
        end_offset: 0,
        segments: keep.len(),
        hard_linked: 0,
        copied_bytes: 0,
        bytes_truncated: 0,
    };
    // Each segment's bytes, looked up only for an observer.
    let mut lengths = Vec::new();
    if observer.is_some() {
        for &base in &keep {
            let from = segment_file_name(src, base, SegmentFileKind::Log);
            lengths.push(fs.file_len(&from).at(&from)?);
        }
    }
    let total = lengths.iter().sum();
    let mut meter = Meter::start(observer, ProgressOperation::Import, src, total);
    let mut end = start;
    let mut segment_ends = Vec::new();
    for (i, &base) in keep.iter().enumerate() {
        let from = segment_file_name(src, base, SegmentFileKind::Log);
        let to = segment_file_name(dest, base, SegmentFileKind::Log);
        let next = keep.get(i + 1).copied();
        meter.part(lengths.get(i).copied().unwrap_or(0));
        // Sealed segments are linked where possible; the last is copied (topiclog appends to
        // it in place, and may cut a torn tail off it). The meter follows the verification.
        let mut linked = match next {
            Some(_) => link_or_copy(&**fs, &from, &to, hard_links, &mut Meter::off())?,
            None => {
                copy_file(&**fs, &from, &to, &mut Meter::off())?;
                false
            }
        };
        // Every byte of a sealed segment, and after a clean Kafka shutdown of the last one too,
        // was flushed: anything invalid there is damage, refused with nothing cut or extended
        // (the file may be the source's). Else a torn tail above Kafka's recovery point is cut
        // from the copy, as Kafka's recovery would.
        let durable = if next.is_some() || source.clean_shutdown {
            u64::MAX
        } else {
            source.recovery_point.unwrap_or(0)
        };
        let recovered = match recover_imported(fs, dest, base, &config, durable, &from, &mut meter)
        {
            // Recovery opens the file for writing (it writes nothing to a valid segment): a
            // source file this process may link but not write gets copied instead.
            Err(Error::Io { source, .. })
                if linked && source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                fs.remove_file(&to).at(&to)?;
                copy_file(&**fs, &from, &to, &mut Meter::off())?;
                linked = false;
                recover_imported(fs, dest, base, &config, durable, &from, &mut meter)
            }
            other => other,
        };
        let (seg, found) = recovered?;
        match next {
            None => {
                seg.flush_indexes(true)?;
                report.bytes_truncated = found.truncated_bytes;
                end = found.next_offset;
            }
            Some(next) if found.next_offset > next => {
                return Err(Error::kafka_log_dir(
                    &from,
                    format!(
                        "its batches run to offset {}, past the next segment's base offset \
                         {next}: the segments overlap; restore the directory from the broker's \
                         copy",
                        found.next_offset
                    ),
                ));
            }
            Some(next) if found.next_offset < next && !compacted => {
                return Err(Error::kafka_log_dir(
                    &from,
                    format!(
                        "its batches end at offset {}, before the next segment's base offset \
                         {next}: Kafka leaves such a gap only by compaction, and the topic does \
                         not compact, so records are missing; restore the directory from the \
                         broker's copy (or import it as a compacted topic if it was one)",
                        found.next_offset
                    ),
                ));
            }
            // Ending before the next segment begins is a gap Kafka's compaction left: fine
            // below the adopted end, as long as the segment keeps ending there.
            Some(_) => {
                if compacted {
                    segment_ends.push((base, found.next_offset));
                }
                seg.seal()?
            }
        }
        if linked {
            report.hard_linked += 1;
        } else {
            report.copied_bytes += seg.size();
        }
        meter.end_part();
    }
    let first = keep.first().copied();
    if first.is_none() || start > end {
        // No segment, or the log start lies past the end (Kafka's `deleteRecords` up to the
        // end, then an unclean stop): the log is empty and goes on at the start, as Kafka's
        // `deleteSegmentsIfLogStartGreaterThanLogEnd` leaves it.
        for &base in &keep {
            Segment::delete_files(&**fs, dest, base)?;
        }
        let seg = Segment::create(fs.clone(), dest, start, &config)?;
        seg.flush_indexes(true)?;
        segment_ends.clear();
        report.segments = 1;
        report.hard_linked = 0;
        end = start;
    } else if let Some(first) = first {
        // Below the first segment nothing is left here (Kafka's tiered storage may keep such
        // records remotely; they are not in this directory).
        start = start.max(first);
    }
    report.start_offset = start;
    report.end_offset = end;
    // Below the end, the log is Kafka's: batches may follow gaps (Kafka's compaction drops whole
    // batches, inside segments and at their ends) and carry any partition leader epoch, which
    // a partition checks by structure elsewhere (Kafka's CRC covers neither). Written before the
    // checkpoint, as the partition's own adoption of a Kafka directory does.
    // Still under way until the partition's first open: a checkpoint lost before then is
    // rebuilt by adopting the log again from the same start.
    AdoptedLog {
        gaps_below: end,
        log_start: start,
        compacted,
        adopting: true,
        segment_ends,
    }
    .write(&**fs, dest)?;
    Checkpoint {
        log_start_offset: start,
        recovery_point: end,
        // No producer snapshot is taken from Kafka: the first open rebuilds the idempotent
        // producers' state from the batches (those within the producer id expiration), as
        // Kafka's `rebuildProducerState` does without snapshots.
        producers_from: Some(start),
    }
    .write(&**fs, dest)?;
    meter.finish();
    Ok(report)
}

/// [`Segment::recover`] of an imported segment, naming the Kafka file in errors; `meter` hears
/// how far the verification is.
fn recover_imported(
    fs: &Arc<dyn FileSystem>,
    dest: &Path,
    base: u64,
    config: &LogConfig,
    durable: u64,
    source: &Path,
    meter: &mut Meter<'_>,
) -> Result<(Segment, SegmentRecovery)> {
    let segment_config = SegmentConfig {
        // Kafka leaves gaps only by compaction; any leader epoch is Kafka's.
        offset_gaps_below: if config.cleanup_policy.compacts() {
            u64::MAX
        } else {
            0
        },
        ..config.standalone_segment_config()
    };
    let recovered =
        Segment::recover_segment(fs.clone(), dest, base, segment_config, durable, true, meter);
    recovered.map_err(|e| match e {
        Error::Corrupt {
            position, reason, ..
        } => Error::kafka_log_dir(
            source,
            format!(
                "not a whole, valid log at byte {position} ({reason}); nothing was imported: let \
                 the Kafka broker recover it (start it on this directory and stop it cleanly), \
                 or restore the file"
            ),
        ),
        other => other,
    })
}
