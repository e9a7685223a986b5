//! Import of one Kafka partition directory: its `.log` files brought into a new partition
//! directory, every batch verified by segment recovery, and a checkpoint written so the
//! partition opens with Kafka's log start offset.
//!
//! Kafka's CRC covers neither a batch's base offset nor its partition leader epoch, so a
//! topiclog partition checks them by structure (every batch starts where the one before it
//! ends, epoch 0); segments Kafka's cleaner left gaps in, or written under later leader epochs,
//! are rewritten on a copy to meet that (empty batches over the gaps, epochs set to 0).
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
use crate::format::{
    encode_retained, parse_segment_file_name, segment_file_name, BatchHeader, SegmentFileKind,
    MAGIC, MAGIC_OFFSET, MAX_SEGMENT_RELATIVE, PARTITION_LEADER_EPOCH_OFFSET,
};
use crate::fs::{FileSystem, OpenMode};
use crate::segment::{suffixed, Recovery, Segment, SegmentRecovery};

use super::super::checkpoint::Checkpoint;
use super::copy::{copy_file, link_or_copy, walk_headers};

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
    /// Gaps in the offsets that Kafka's compaction left (between batches, before a segment's
    /// first batch, or after its last) closed with an empty batch spanning the missing offsets,
    /// as topiclog's own compaction does: a topiclog partition requires every batch to start
    /// where the one before it ends (Kafka's CRC does not cover base offsets, so that is how it
    /// checks them). A segment with a gap is copied, not linked.
    pub gaps_filled: usize,
    /// Batches whose partition leader epoch (Kafka's replication epoch, outside its CRC) was set
    /// to 0, the only epoch a topiclog partition holds. Their segments are copied, not linked.
    pub leader_epochs_reset: u64,
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
///   indexes are built and written as new files. A segment ending before the next begins gets
///   an empty batch spanning the gap (on a copy);
/// - the last segment: copied (topiclog appends to it in place), then recovered, cutting a torn
///   tail only above Kafka's recovery point (nowhere after a clean Kafka shutdown);
/// - a segment whose batches a partition would take for damage (gaps between them, leader
///   epochs other than 0: see [`needs_rewrite`]) is copied instead, verified as it is, then
///   rewritten ([`rewrite_kafka_batches`]) and recovered again;
/// - a checkpoint with the log start offset and every offset durable.
///
/// `src` is only read. The caller checked it with [`check_kafka_partition_dir`].
pub(crate) fn adopt_kafka_partition(
    fs: &Arc<dyn FileSystem>,
    now_ms: i64,
    src: &Path,
    dest: &Path,
    config: &LogConfig,
    source: &KafkaSource,
    hard_links: bool,
) -> Result<KafkaPartitionImport> {
    let bases = check_kafka_partition_dir(&**fs, src)?;
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
        gaps_filled: 0,
        leader_epochs_reset: 0,
    };
    let mut end = start;
    for (i, &base) in keep.iter().enumerate() {
        let from = segment_file_name(src, base, SegmentFileKind::Log);
        let to = segment_file_name(dest, base, SegmentFileKind::Log);
        let next = keep.get(i + 1).copied();
        // A sealed segment whose batches a partition takes as they are is linked; one that must
        // be rewritten (see `needs_rewrite`) and the last (topiclog appends to it) are copied.
        let mut rewrite = next.is_some() && needs_rewrite(&**fs, &from, base)?;
        let mut linked = if next.is_some() && !rewrite {
            link_or_copy(&**fs, &from, &to, hard_links)?
        } else {
            copy_file(&**fs, &from, &to)?;
            false
        };
        // Every byte of a sealed segment, and after a clean Kafka shutdown of the last one too,
        // was flushed: anything invalid there is damage. Else a torn tail above Kafka's recovery
        // point is cut, as Kafka's recovery would.
        let durable = if next.is_some() || source.clean_shutdown {
            u64::MAX
        } else {
            source.recovery_point.unwrap_or(0)
        };
        let recovered = match recover_imported(fs, dest, base, &config, durable, &from) {
            // Recovery opens the file for writing (it writes nothing to a valid segment): a
            // source file this process may link but not write gets copied instead.
            Err(Error::Io { source, .. })
                if linked && source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                fs.remove_file(&to).at(&to)?;
                copy_file(&**fs, &from, &to)?;
                linked = false;
                recover_imported(fs, dest, base, &config, durable, &from)
            }
            other => other,
        };
        let (mut seg, mut found) = recovered?;
        if next.is_none() {
            report.bytes_truncated = found.truncated_bytes;
            rewrite = needs_rewrite(&**fs, &to, base)?;
        }
        if rewrite {
            drop(seg);
            let (gaps, epochs) = rewrite_kafka_batches(&**fs, &to, base)?;
            report.gaps_filled += gaps;
            report.leader_epochs_reset += epochs;
            (seg, found) = recover_imported(fs, dest, base, &config, u64::MAX, &from)?;
        }
        let Some(next) = next else {
            seg.flush_indexes(true)?;
            report.copied_bytes += seg.size();
            end = found.next_offset;
            continue;
        };
        if found.next_offset > next {
            return Err(Error::kafka_log_dir(
                &from,
                format!(
                    "its batches run to offset {}, past the next segment's base offset {next}: \
                     the segments overlap; restore the directory from the broker's copy",
                    found.next_offset
                ),
            ));
        }
        if found.next_offset < next {
            // Kafka's cleaner removed the segment's last batches. Every topiclog segment ends
            // where the next begins (reads and recovery tell lost data from compaction by it),
            // so close the gap as topiclog's cleaner does, on a copy of the shared file.
            if linked {
                drop(seg);
                fs.remove_file(&to).at(&to)?;
                copy_file(&**fs, &from, &to)?;
                linked = false;
                (seg, found) = recover_imported(fs, dest, base, &config, u64::MAX, &from)?;
            }
            let ts = seg.max_timestamp()?.unwrap_or(-1);
            seg.append(&span_batch(found.next_offset, next, ts, &to)?, now_ms)?;
            report.gaps_filled += 1;
        }
        seg.seal()?;
        if linked {
            report.hard_linked += 1;
        } else {
            report.copied_bytes += seg.size();
        }
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
    Checkpoint {
        log_start_offset: start,
        recovery_point: end,
        // No producer snapshot is taken from Kafka: the first open rebuilds the idempotent
        // producers' state from the batches (those within the producer id expiration), as
        // Kafka's `rebuildProducerState` does without snapshots.
        producers_from: Some(start),
    }
    .write(&**fs, dest)?;
    Ok(report)
}

/// [`Segment::recover`] of an imported segment, naming the Kafka file in errors.
fn recover_imported(
    fs: &Arc<dyn FileSystem>,
    dest: &Path,
    base: u64,
    config: &LogConfig,
    durable: u64,
    source: &Path,
) -> Result<(Segment, SegmentRecovery)> {
    Segment::recover(fs.clone(), dest, base, config, durable).map_err(|e| match e {
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

/// Whether the batches of the `.log` at `path` (a segment based at `base`) break what a
/// topiclog partition checks of its batches, since Kafka's CRC covers neither base offsets nor
/// leader epochs: each batch must start exactly where the one before it ends (the first at the
/// segment's base offset) and carry partition leader epoch 0. Kafka's own logs break both: its
/// cleaner drops whole batches (leaving gaps), and every leader change starts a new epoch.
fn needs_rewrite(fs: &dyn FileSystem, path: &Path, base: u64) -> Result<bool> {
    let mut expected = base;
    let mut rewrite = false;
    walk_headers(fs, path, |h, _| {
        rewrite |= h.base_offset != expected || h.partition_leader_epoch != 0;
        expected = h.next_offset();
        Ok(())
    })?;
    Ok(rewrite)
}

/// Rewrite the (copied, recovered) `.log` at `path` so that a partition takes it: an empty batch
/// over each gap between batches (and before the first, if it starts above `base`), as
/// topiclog's compaction leaves them, and every partition leader epoch set to 0 (it lies outside
/// Kafka's CRC, so the batches still verify). Written to `<path>.rewrite`, synced and renamed
/// over `path`; the caller syncs the directory. Returns the gaps closed and the epochs reset.
fn rewrite_kafka_batches(fs: &dyn FileSystem, path: &Path, base: u64) -> Result<(usize, u64)> {
    let mut headers = Vec::new();
    walk_headers(fs, path, |h, pos| {
        headers.push((*h, pos));
        Ok(())
    })?;
    let tmp = suffixed(path.to_owned(), ".rewrite");
    let src = fs.open(path, OpenMode::Read).at(path)?;
    let out = fs.open(&tmp, OpenMode::Create).at(&tmp)?;
    out.set_len(0).at(&tmp)?;
    let (mut gaps, mut epochs) = (0usize, 0u64);
    let mut expected = base;
    let mut at = 0u64;
    let mut ts = -1;
    let mut buf = Vec::new();
    for (h, pos) in headers {
        if h.base_offset > expected {
            let span = span_batch(expected, h.base_offset, ts, path)?;
            out.write_all_at(&span, at).at(&tmp)?;
            at += span.len() as u64;
            gaps += 1;
        }
        buf.resize(h.total_len(), 0);
        src.read_exact_at(&mut buf, pos).at(path)?;
        if h.partition_leader_epoch != 0 {
            if let Some(field) = buf.get_mut(PARTITION_LEADER_EPOCH_OFFSET..MAGIC_OFFSET) {
                field.copy_from_slice(&0i32.to_be_bytes());
                epochs += 1;
            }
        }
        out.write_all_at(&buf, at).at(&tmp)?;
        at += buf.len() as u64;
        expected = h.next_offset();
        if h.record_count > 0 {
            ts = h.max_timestamp;
        }
    }
    out.sync_all().at(&tmp)?;
    drop((src, out));
    fs.rename(&tmp, path).at(path)?;
    Ok((gaps, epochs))
}

/// An empty batch (no records) spanning offsets `[from, to)`, as compaction ends a cleaned
/// segment.
fn span_batch(from: u64, to: u64, ts: i64, path: &Path) -> Result<Vec<u8>> {
    let last_offset_delta = u32::try_from(to - 1 - from)
        .ok()
        .filter(|&d| u64::from(d) <= MAX_SEGMENT_RELATIVE)
        .ok_or_else(|| {
            Error::kafka_log_dir(
                path,
                format!(
                    "the gap from offset {from} to the next segment at {to} spans more than a \
                     segment's int32 offsets"
                ),
            )
        })?;
    let span = BatchHeader {
        base_offset: from,
        length: 0,
        partition_leader_epoch: 0,
        magic: MAGIC,
        crc: 0,
        attributes: 0,
        last_offset_delta,
        base_timestamp: ts,
        max_timestamp: ts,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: 0,
    };
    let mut buf = Vec::new();
    encode_retained(&mut buf, &span, &[]);
    Ok(buf)
}
