//! Moving a partition between topiclog and a Kafka log directory.
//!
//! **Export** ([`Partition::export_kafka`]) writes the partition as a Kafka broker keeps one:
//! its segments' `.log`, `.index` and `.timeindex` files under the same 20-digit names, and a
//! `leader-epoch-checkpoint` (plus `partition.metadata` when given a topic id). The store adds
//! the log-directory checkpoint files (`Store::export_kafka`). **Import** (`adopt`) brings the
//! `.log` files of a Kafka partition directory into a new partition directory, verifying every
//! batch; the store creates the topic around it (`Store::import_kafka`). `files` holds the
//! Kafka text formats, `copy` the linking and copying.
//!
//! # Why a hard link is a snapshot
//! topiclog never writes into a sealed segment's `.log` in place: compaction writes cleaned
//! segments under new names (`*.cleaned`, `*.swap`) and renames them over the old ones
//! (`compaction.rs`), truncation of a sealed segment copies the kept prefix to
//! `<base>.log.truncating` and renames it into place (`Segment::truncated_copy`), retention
//! and deletion unlink. An in-place write happens only to the active segment (appends, and a
//! truncation of it) and, after a crash, when recovery rescans the segment that held the
//! recovery point (which extends it by its preallocation, then trims it back to the same bytes).
//! A sealed `.log` linked into an export therefore keeps the bytes it had when it was linked,
//! whatever the partition does next; the segment still being appended to is copied instead.
//! Index files are always copied (they are small, and both topiclog and Kafka rewrite the
//! active segment's indexes in place).

mod adopt;
mod copy;
pub(crate) mod files;
#[cfg(unix)]
mod read_only;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use adopt::KafkaPartitionImport;
pub(crate) use adopt::{adopt_kafka_partition, check_kafka_partition_dir, KafkaSource};
pub use files::KafkaTopicId;

use crate::config::LogConfig;
use crate::error::{Error, IoContext, Result};
use crate::format::{segment_file_name, SegmentFileKind};
use crate::fs::{create_dir_all_durable, found, write_atomic, FileSystem, OpenMode};
use crate::progress::{Meter, Observer, Progress, ProgressOperation};
use crate::segment::{Recovery, Segment, SegmentView};

use super::Partition;

/// How [`Partition::export_kafka_with`] writes a partition directory.
///
/// # Examples
/// ```
/// use topiclog::{KafkaPartitionExportOptions, Partition, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path().join("log"))?;
/// log.append(Record::new("a"))?;
/// let options = KafkaPartitionExportOptions {
///     hard_links: false,
///     topic_id: Some("q2JnFwPxQHyN0bA5FaTm7g".parse()?),
///     ..KafkaPartitionExportOptions::default()
/// };
/// let out = dir.path().join("kafka/orders-0");
/// log.export_kafka_with(&out, &options)?;
/// assert!(std::fs::read_to_string(out.join("partition.metadata"))?.ends_with("q2JnFwPxQHyN0bA5FaTm7g"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct KafkaPartitionExportOptions {
    /// Hard-link the `.log` files of sealed segments into the export where the file system
    /// allows it (same device), copying otherwise. Default `true`. The links share their files
    /// with the partition (which never rewrites them in place; see `docs/KAFKA.md` for what a
    /// Kafka broker may do to them): set `false` to copy everything, e.g. when a Kafka broker
    /// on this file system will use the export while the partition stays in use.
    pub hard_links: bool,
    /// The id of the topic in the Kafka cluster that adopts the partition, written into
    /// `partition.metadata`. Default `None`: no `partition.metadata` is written, and the
    /// adopting broker must get one (a KRaft broker sets aside a partition without it).
    pub topic_id: Option<KafkaTopicId>,
    /// The observer of the export's progress
    /// ([`ProgressOperation::Export`](crate::ProgressOperation::Export)): its total is the bytes
    /// of the files exported, segment data and indexes (a hard-linked `.log` counts as done at
    /// once). Default `None`.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for KafkaPartitionExportOptions {
    fn default() -> Self {
        KafkaPartitionExportOptions {
            hard_links: true,
            topic_id: None,
            progress: None,
        }
    }
}

/// What [`Partition::export_kafka`] wrote: a consistent snapshot of the partition's records in
/// `[start_offset, end_offset)`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaPartitionExport {
    /// The partition directory written.
    pub dir: PathBuf,
    /// The log start offset of the snapshot (records below it were deleted; the first segment
    /// may begin below it, as in Kafka). Kafka's `log-start-offset-checkpoint` value.
    pub start_offset: u64,
    /// The end offset of the snapshot: every record below it that readers could see when the
    /// export began, and none after. Kafka's recovery point and high watermark for it.
    pub end_offset: u64,
    /// Segments written (the last may be an empty one at `end_offset`, for Kafka to append to).
    pub segments: usize,
    /// `.log` files hard-linked rather than copied.
    pub hard_linked: usize,
    /// Bytes copied (segment data and index files).
    pub copied_bytes: u64,
    /// Where each leader epoch begins, `(epoch, start offset)`, as written to
    /// `leader-epoch-checkpoint`. Batches topiclog wrote count as epoch 0.
    pub leader_epochs: Vec<(i32, u64)>,
    /// The compaction checkpoint at the snapshot, within `[start_offset, end_offset]`: records
    /// below it have been through a compaction pass. Kafka's `cleaner-offset-checkpoint`
    /// value for a compacted topic.
    pub first_dirty_offset: u64,
}

impl Partition {
    /// Write this partition as a Kafka partition directory at `dest` (which must not exist; its
    /// parents are created): hard-linking sealed segments where possible, see
    /// [`export_kafka_with`](Self::export_kafka_with).
    ///
    /// # Errors
    /// As [`export_kafka_with`](Self::export_kafka_with).
    pub fn export_kafka(&self, dest: impl AsRef<Path>) -> Result<KafkaPartitionExport> {
        self.export_kafka_with(dest, &KafkaPartitionExportOptions::default())
    }

    /// Write this partition as a Kafka partition directory at `dest` (which must not exist; its
    /// parents are created; name it `<topic>-<partition>` inside a Kafka log directory): every
    /// record from the log start offset up to the end offset readers see when the call begins.
    /// Appends go on meanwhile and are not included; retention, compaction and truncation of
    /// this partition wait until the segment files are in place (the time to link the sealed
    /// segments and copy the one being appended to).
    ///
    /// Written: each segment's `.log` (a sealed one hard-linked when `options.hard_links` and
    /// the file system allow, else copied; the one being appended to copied up to the end
    /// offset, whole batches only), its `.index` and `.timeindex` (copied, or built for a copied
    /// prefix), an empty last segment at the end offset when the last one is linked (so a Kafka
    /// broker never appends to a shared file), `leader-epoch-checkpoint`, and
    /// `partition.metadata` when `options.topic_id` is set. Everything is synced, the directory
    /// included. The log-directory checkpoint files a broker also needs (recovery point, log
    /// start offset, ...) are the caller's: the returned report has their values, and
    /// [`Store::export_kafka`](crate::Store::export_kafka) writes them.
    ///
    /// # Errors
    /// An [`Error::Io`] of kind `AlreadyExists` if `dest` exists; [`Error::Closed`];
    /// [`Error::Poisoned`] (recover the partition first: what it holds past its last good sync
    /// is unknown); [`Error::Corrupt`] if a batch copied fails verification; [`Error::Io`]. On
    /// an error, what was written of `dest` is removed.
    pub fn export_kafka_with(
        &self,
        dest: impl AsRef<Path>,
        options: &KafkaPartitionExportOptions,
    ) -> Result<KafkaPartitionExport> {
        self.export_kafka_as(dest.as_ref(), options, None)
    }

    /// [`export_kafka_with`](Self::export_kafka_with), its progress events naming `label`
    /// (topic and partition number) if given.
    pub(crate) fn export_kafka_as(
        &self,
        dest: &Path,
        options: &KafkaPartitionExportOptions,
        label: Option<(&str, u32)>,
    ) -> Result<KafkaPartitionExport> {
        let observer = options.progress.clone().map(|p| {
            Observer::new(
                p,
                label.map(|(t, _)| t),
                label.map(|(_, partition)| partition),
            )
        });
        let fs = &*self.inner.fs;
        if fs.exists(dest).at(dest)? {
            return Err(Error::io(
                dest,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "an export writes a new partition directory: move this one away or choose \
                     another destination",
                ),
            ));
        }
        create_dir_all_durable(fs, dest).at(dest)?;
        match self.export_into(dest, options, observer.as_ref()) {
            Ok(report) => Ok(report),
            Err(e) => {
                // Best effort: leave nothing a Kafka broker could mistake for a partition.
                let _ = fs.remove_dir_all(dest);
                if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                    let _ = fs.sync_dir(parent);
                }
                Err(e)
            }
        }
    }

    fn export_into(
        &self,
        dest: &Path,
        options: &KafkaPartitionExportOptions,
        observer: Option<&Observer>,
    ) -> Result<KafkaPartitionExport> {
        let inner = &*self.inner;
        let fs = &inner.fs;
        // What copied segments are checked and indexed with: no preallocation (the copy is
        // exactly its data) and no cut (every byte copied was verified when read).
        let config = LogConfig {
            preallocate: false,
            recovery: Recovery::Strict,
            ..(*inner.config()).clone()
        };
        let mut report = KafkaPartitionExport {
            dir: dest.to_owned(),
            start_offset: 0,
            end_offset: 0,
            segments: 0,
            hard_linked: 0,
            copied_bytes: 0,
            leader_epochs: Vec::new(),
            first_dirty_offset: 0,
        };
        // Started once the snapshot's segments are known, finished when everything is synced.
        let mut meter: Meter<'_>;
        {
            // Compaction, retention, truncation, in-place recovery and close all take the
            // cleaner lock first: while it is held no segment of the snapshot is replaced,
            // deleted or cut. Appends (and rolls) go on; they only add at the end.
            let cleaner = inner.cleaner.lock();
            if inner.closed.load(Ordering::Acquire) {
                return Err(Error::Closed {
                    path: inner.dir.clone(),
                });
            }
            if inner.poisoned.load(Ordering::Acquire) {
                return Err(inner.poison_error());
            }
            // The end first, then the segments: the list then holds every batch below it.
            let end = inner.visible_end.load(Ordering::SeqCst);
            let start = inner.start_offset.load(Ordering::Acquire).min(end);
            let segments = inner.segments.read().clone();
            report.start_offset = start;
            report.end_offset = end;
            report.first_dirty_offset = cleaner.first_dirty.clamp(start, end);
            // The snapshot's segments, each with whether it is sealed and wholly below the end
            // (its files are linked or copied whole) or not (its batches below the end are
            // copied). The whole ones get index files that verify (rebuilt from the log if they
            // were damaged) and are made durable (a roll leaves that to the next group commit)
            // first, so that what the export copies is known before it starts.
            let mut snapshot: Vec<(&Arc<Segment>, bool)> = Vec::new();
            for (i, seg) in segments.iter().enumerate() {
                if seg.base_offset() >= end {
                    break;
                }
                let seg_end = segments
                    .get(i + 1)
                    .map_or_else(|| seg.next_offset(), |n| n.base_offset());
                if seg_end <= start {
                    // Wholly below the log start: the next retention pass deletes it.
                    continue;
                }
                let whole = seg.is_sealed() && seg_end <= end;
                if whole {
                    seg.load_indexes()?;
                    seg.sync()?;
                }
                snapshot.push((seg, whole));
            }
            // Each segment's bytes to export, looked up only for an observer.
            let mut lengths = Vec::new();
            if observer.is_some() {
                for (seg, whole) in &snapshot {
                    let mut len = seg.size();
                    if *whole {
                        let view = SegmentView::new((*seg).clone());
                        for path in [view.index_path(), view.time_index_path()] {
                            len += found(fs.file_len(path)).at(path)?.unwrap_or(0);
                        }
                    }
                    lengths.push(len);
                }
            }
            let total = lengths.iter().sum();
            meter = Meter::start(observer, ProgressOperation::Export, dest, total);
            // Whether the last segment written is a link (or there is none): then an empty
            // segment at the end follows it.
            let mut needs_tail = true;
            for (i, (seg, whole)) in snapshot.into_iter().enumerate() {
                let base = seg.base_offset();
                report.segments += 1;
                meter.part(lengths.get(i).copied().unwrap_or(0));
                if whole {
                    let log = segment_file_name(dest, base, SegmentFileKind::Log);
                    let (src, link) = (seg.log_path(), options.hard_links);
                    if copy::link_or_copy(&**fs, src, &log, link, &mut meter)? {
                        report.hard_linked += 1;
                    } else {
                        report.copied_bytes += seg.size();
                    }
                    let view = SegmentView::new(seg.clone());
                    for (from, kind) in [
                        (view.index_path(), SegmentFileKind::OffsetIndex),
                        (view.time_index_path(), SegmentFileKind::TimeIndex),
                    ] {
                        let to = segment_file_name(dest, base, kind);
                        report.copied_bytes += copy::copy_file_or_empty(&**fs, from, &to)?;
                    }
                    needs_tail = true;
                } else {
                    // Being appended to (or holding batches not visible yet): copy the whole
                    // batches below the end. It is the last one written.
                    let (copied, next) = copy_prefix(fs, seg, dest, end, &config, &mut meter)?;
                    report.copied_bytes += copied;
                    report.end_offset = next;
                    needs_tail = false;
                }
                meter.end_part();
            }
            finish_export(
                fs,
                dest,
                needs_tail.then_some(end),
                &config,
                options,
                &mut report,
            )?;
        }
        meter.finish();
        Ok(report)
    }
}

/// The end of a partition's export into `dest`: an empty segment at `tail` for Kafka to append
/// to (if given), the `leader-epoch-checkpoint` (and `partition.metadata` with a topic id), and
/// the directory synced.
pub(super) fn finish_export(
    fs: &Arc<dyn FileSystem>,
    dest: &Path,
    tail: Option<u64>,
    config: &LogConfig,
    options: &KafkaPartitionExportOptions,
    report: &mut KafkaPartitionExport,
) -> Result<()> {
    if let Some(end) = tail {
        let segment = Segment::create(fs.clone(), dest, end, config)?;
        segment.seal()?;
        report.segments += 1;
    }
    let fs = &**fs;
    report.leader_epochs = copy::leader_epochs(fs, dest, report.start_offset)?;
    let path = dest.join(files::LEADER_EPOCH_CHECKPOINT);
    let text = files::encode_leader_epochs(&report.leader_epochs);
    write_atomic(fs, &path, text.as_bytes()).at(&path)?;
    if let Some(id) = &options.topic_id {
        let path = dest.join(files::PARTITION_METADATA);
        let text = files::encode_partition_metadata(id);
        write_atomic(fs, &path, text.as_bytes()).at(&path)?;
    }
    fs.sync_dir(dest).at(dest)
}

/// Copy the whole batches of `seg` below `end` into a new segment in `dest`, then recover it
/// there (verifying every batch, building its indexes) and seal it. Returns the bytes copied and
/// the copy's end offset.
fn copy_prefix(
    fs: &std::sync::Arc<dyn FileSystem>,
    seg: &Segment,
    dest: &Path,
    end: u64,
    config: &LogConfig,
    meter: &mut Meter<'_>,
) -> Result<(u64, u64)> {
    let base = seg.base_offset();
    let path = segment_file_name(dest, base, SegmentFileKind::Log);
    let out = fs.open(&path, OpenMode::CreateNew).at(&path)?;
    let mut pos = 0u64;
    let mut at = base;
    'read: while at < end {
        let batches = seg.read(at, 1 << 20)?;
        if batches.is_empty() {
            break;
        }
        for b in &batches {
            if b.next_offset() > end {
                break 'read;
            }
            out.write_all_at(b.as_bytes(), pos).at(&path)?;
            pos += b.as_bytes().len() as u64;
            at = b.next_offset();
        }
        meter.at(pos);
    }
    out.sync_all().at(&path)?;
    drop(out);
    // `u64::MAX`: everything in the copy is durable, so anything invalid is an error, never cut.
    let (copy, found) = Segment::recover(fs.clone(), dest, base, config, u64::MAX)?;
    copy.seal()?;
    Ok((pos, found.next_offset))
}
