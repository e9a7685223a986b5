//! Step 3 of opening a partition: carry the plan out. Finish or undo what interrupted work left,
//! open the segments (trusted after a clean close, rescanned after a crash), make the result
//! durable, and rebuild the producer state.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::{segment_file_name, SegmentFileKind};
use crate::fs::{found, FileSystem};
use crate::progress::{Meter, Observer, ProgressOperation};
use crate::segment::{Recovery, Segment, SegmentConfig};

use super::super::checkpoint::{AdoptedLog, Checkpoint, CleanShutdown, CLEAN_SHUTDOWN};
use super::super::producer_state::ProducerTable;
use super::super::{compaction, map_active, remove_if_exists, RecoveryReport};
use super::listing::Stored;
use super::plan::{Adoption, ProducerReplay, RecoveryPlan, SegmentEnd};
use super::Recovered;
use crate::clock::Clock;
use crate::config::LogConfig;

impl RecoveryPlan {
    /// Carry the plan out: [`tidy`](Self::tidy), [`load`](Self::load), then
    /// [`finish`](Self::finish).
    ///
    /// # Errors
    /// [`Error::Io`] on I/O failure; [`Error::Corrupt`] for damage a segment's rescan finds
    /// (under `Recovery::Strict`).
    /// `clock` dates the rebuilt producer state (for expiry); `observer` hears about a rescan.
    pub fn apply(
        self,
        fs: &Arc<dyn FileSystem>,
        clock: &dyn Clock,
        config: &LogConfig,
        observer: Option<&Observer>,
    ) -> Result<Recovered> {
        if let Adoption::Adopt(marker) = &self.adoption {
            // Before anything changes: from here until the adoption's checkpoint, a crash leaves
            // a directory that the next open adopts again (it holds topiclog's lock file).
            marker.write(&**fs, &self.dir)?;
        }
        self.tidy(&**fs)?;
        let mut report = self.report;
        let segments = self.load(fs, config, &mut report, observer)?;
        self.finish(fs, clock, config, segments, report)
    }

    /// Finish or undo what interrupted work left: a compaction swap, atomic replaces, a
    /// retention pass, index files whose segment is gone. Each step leaves the directory
    /// openable if a crash stops it.
    fn tidy(&self, fs: &dyn FileSystem) -> Result<()> {
        let dir = &self.dir;
        for name in &self.delete_cleaned {
            remove_if_exists(fs, &dir.join(name))?;
        }
        if let Some(swap) = &self.finish_swap {
            compaction::finish_swap(fs, dir, swap.base, &swap.replaced)?;
        }
        for name in &self.delete_stray_swaps {
            remove_if_exists(fs, &dir.join(name))?;
        }
        if !self.delete_cleaned.is_empty()
            || self.finish_swap.is_some()
            || !self.delete_stray_swaps.is_empty()
        {
            fs.sync_dir(dir).at(dir)?;
        }
        if self.write_cleaner {
            self.cleaner.write(fs, dir)?;
        }
        for name in &self.delete_temporary {
            remove_if_exists(fs, &dir.join(name))?;
        }
        for &base in &self.delete_below_start {
            Segment::delete_files(fs, dir, base)?;
        }
        if !self.delete_below_start.is_empty() {
            fs.sync_dir(dir).at(dir)?;
        }
        for name in &self.delete_orphans {
            remove_if_exists(fs, &dir.join(name))?;
        }
        Ok(())
    }

    /// Open the segments: as they are after a clean close, if the active one is what the close
    /// left; otherwise rescanning from the recovery point. Empty if there is none.
    fn load(
        &self,
        fs: &Arc<dyn FileSystem>,
        config: &LogConfig,
        report: &mut RecoveryReport,
        observer: Option<&Observer>,
    ) -> Result<Vec<Arc<Segment>>> {
        if let Some(marker) = &self.clean {
            let seg_config = self.segment_config(config);
            match load_clean(fs, &self.dir, &self.segments, seg_config, marker) {
                Ok(segments) => {
                    report.clean_shutdown = true;
                    return Ok(segments);
                }
                // Not what the close left: rescan as after a crash, which cuts only what was
                // not durable and reports the rest.
                Err(Error::Corrupt { .. }) | Err(Error::IndexAppend { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.load_rescanning(fs, config, report, observer)
    }

    /// After a crash (or when the clean state did not verify): open the trusted segments as they
    /// are, rescan the rest, cut a torn tail, and drop segments that follow a lost one (see
    /// [`SegmentEnd`]). `observer` hears the rescan's progress: its total is the length of the
    /// files rescanned (looked up only for an observer).
    fn load_rescanning(
        &self,
        fs: &Arc<dyn FileSystem>,
        config: &LogConfig,
        report: &mut RecoveryReport,
        observer: Option<&Observer>,
    ) -> Result<Vec<Arc<Segment>>> {
        let (dir, bases) = (&self.dir, &self.segments);
        let rescanned = bases.get(self.trusted..).unwrap_or_default();
        let mut lengths = Vec::new();
        let mut meter = Meter::off();
        if let Some(observer) = observer.filter(|_| !rescanned.is_empty()) {
            for &base in rescanned {
                let path = segment_file_name(dir, base, SegmentFileKind::Log);
                lengths.push(found(fs.file_len(&path)).at(&path)?.unwrap_or(0));
            }
            let total = lengths.iter().sum();
            meter = Meter::start(Some(observer), ProgressOperation::Recovery, dir, total);
        }
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
        // Rescanned and sealed, not yet synced: synced side by side at the end.
        let mut to_sync: Vec<Arc<Segment>> = Vec::new();
        let mut deleted = false;
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            if let Some(nb) = next_base.filter(|_| i < self.trusted) {
                segments.push(Arc::new(Segment::open_sealed_with(
                    fs.clone(),
                    dir,
                    base,
                    nb,
                    self.segment_config(config),
                )?));
                continue;
            }
            // The segment holding the recovery point: its data and index entries below it were
            // durable when the checkpoint was written, so only what follows is rescanned.
            let recover = if base < self.recovery_point {
                Segment::recover_segment_from_index
            } else {
                Segment::recover_segment
            };
            // Only the last segment is known to stay active; one that ends early becomes the
            // active one too and is synced below.
            let length = i.checked_sub(self.trusted).and_then(|k| lengths.get(k));
            meter.part(length.copied().unwrap_or(0));
            let (seg, r) = recover(
                fs.clone(),
                dir,
                base,
                self.segment_config(config),
                self.recovery_point,
                next_base.is_none(),
                &mut meter,
            )?;
            meter.end_part();
            report.segments_scanned += 1;
            report.bytes_scanned += r.scanned_bytes;
            report.bytes_truncated += r.truncated_bytes;
            report.corruption_cut |= r.cut_corruption;
            let end = r.next_offset;
            // Kafka's compaction leaves gaps between segments too: fine where Kafka wrote.
            let kafka_gap = next_base.is_some_and(|nb| end < nb && nb < self.offset_gaps_below);
            let judged = if kafka_gap {
                SegmentEnd::Whole
            } else {
                SegmentEnd::judge(end, next_base, self.recovery_point)
            };
            if let SegmentEnd::Damaged(why) = judged {
                if config.recovery == Recovery::Strict {
                    return Err(Error::corrupt(
                        seg.log_path(),
                        r.valid_bytes,
                        format!(
                            "the segment {why}; restore it, or reopen with \
                             Recovery::TruncateCorrupt to cut the log here"
                        ),
                    ));
                }
                report.corruption_cut = true;
            }
            if next_base.is_some_and(|nb| end != nb) && !kafka_gap {
                // Everything after an early end would follow a hole in the offsets: drop it,
                // newest first, so a crash meanwhile leaves a prefix.
                for &later in bases[i + 1..].iter().rev() {
                    Segment::delete_files(&**fs, dir, later)?;
                    report.segments_deleted += 1;
                    deleted = true;
                }
                seg.sync_log()?;
                seg.flush_indexes(true)?;
                segments.push(Arc::new(seg));
                break;
            }
            let seg = Arc::new(seg);
            if next_base.is_none() {
                seg.flush_indexes(true)?;
            } else {
                seg.seal_unsynced()?;
                to_sync.push(seg.clone());
            }
            segments.push(seg);
        }
        // The fsyncs of a long rescan (each sealed segment's log and two indexes) overlap, so the
        // device's flushes are shared: 10,000 rescanned segments take seconds, not a minute.
        crate::topic::in_parallel(to_sync.len(), |i| to_sync[i].sync())
            .into_iter()
            .collect::<Result<()>>()?;
        if deleted || !to_sync.is_empty() {
            // Deleted segments, and the index files sealing wrote by rename.
            fs.sync_dir(dir).at(dir)?;
        }
        meter.finish();
        Ok(segments)
    }

    /// Make what was loaded the partition's state: an empty log gets its first segment, the
    /// cleaner forgets what a cut removed, the clean-shutdown marker goes and the checkpoint is
    /// brought up to date (both durably), and the producer state is rebuilt.
    fn finish(
        self,
        fs: &Arc<dyn FileSystem>,
        clock: &dyn Clock,
        config: &LogConfig,
        mut segments: Vec<Arc<Segment>>,
        mut report: RecoveryReport,
    ) -> Result<Recovered> {
        let dir = &self.dir;
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create_with_suffix(
                fs.clone(),
                dir,
                self.empty_log_base(),
                self.segment_config(config),
                "",
            )?));
            fs.sync_dir(dir).at(dir)?;
        }
        if let Some(last) = segments.last() {
            map_active(config, last);
        }
        let active = segments
            .last()
            .cloned()
            .ok_or_else(|| Error::corrupt(dir, 0, "no active segment"))?;
        let end = active.next_offset();
        let mut cleaner = self.cleaner;
        if cleaner.first_dirty > end {
            // Recovery cut the log (`Recovery::TruncateCorrupt`, or damage): forget what the
            // cleaner knew from the active segment on, as a truncation does, so records appended
            // there are mapped (and their tombstones get horizons) like any new data.
            let from = active.base_offset().min(end);
            if cleaner.truncate(from) {
                cleaner.write(&**fs, dir)?;
            }
        }
        let checkpoint = self.checkpoint;
        let first_base = segments.first().map_or(end, |s| s.base_offset());
        let start = checkpoint
            .map_or(first_base, |c| c.log_start_offset.max(first_base))
            .min(end);
        let producers_from = checkpoint.and_then(|c| c.producers_from);

        // From here on a crash is an unclean stop again.
        if self.remove_marker {
            remove_if_exists(&**fs, &dir.join(CLEAN_SHUTDOWN))?;
        }
        let cp = Checkpoint {
            log_start_offset: start,
            recovery_point: end,
            producers_from,
        };
        check_adopted_ends(&segments, start, end, &self.segment_ends)?;
        // An adoption records, before its checkpoint, where the log ends and (in a compacted
        // log) where each sealed segment Kafka wrote ends: a gap after it is Kafka's only while
        // it still ends there. Still under way: a crash before the checkpoint adopts again.
        let adopted = match &self.adoption {
            Adoption::Adopt(marker) => {
                let segment_ends = if marker.compacted {
                    segments
                        .iter()
                        .take(segments.len().saturating_sub(1))
                        .map(|s| (s.base_offset(), s.next_offset()))
                        .collect()
                } else {
                    Vec::new()
                };
                let adopted = AdoptedLog {
                    gaps_below: end,
                    segment_ends,
                    ..marker.clone()
                };
                adopted.write(&**fs, dir)?;
                Some(adopted)
            }
            _ => None,
        };
        if checkpoint != Some(cp) || report.checkpoint_damaged || adopted.is_some() {
            cp.write(&**fs, dir)?; // syncs the directory too
        } else {
            fs.sync_dir(dir).at(dir)?; // the marker's removal
        }
        // After the adoption's checkpoint: from here on the partition is topiclog's (a lost
        // checkpoint is damage), and the log past `end` is continuous. Never widened later.
        let (offset_gaps_below, kafka_epochs_below) = match self.adoption {
            Adoption::Adopt(_) => {
                let done = AdoptedLog {
                    adopting: false,
                    ..adopted.unwrap_or_default()
                };
                done.write(&**fs, dir)?;
                (if done.compacted { end } else { 0 }, end)
            }
            Adoption::Finish(done) => {
                done.write(&**fs, dir)?;
                (self.offset_gaps_below, self.kafka_epochs_below)
            }
            Adoption::None => (self.offset_gaps_below, self.kafka_epochs_below),
        };

        let snapshot = Stored::from_read(ProducerTable::read(&**fs, dir))?;
        let replay = ProducerReplay::decide(snapshot, producers_from, start, end);
        report.producer_state_rebuilt = replay.rebuilt;
        let producers = match replay.from {
            Some((offset, table)) => {
                let now = clock.now_ms();
                let mut table =
                    replay_producers(&segments, start, end, table, offset, now, config)?;
                table.remove_expired(now, config.producer_id_expiration);
                Some(table)
            }
            None => None,
        };
        Ok(Recovered {
            segments,
            active,
            end,
            start,
            cleaner,
            checkpoint: cp,
            producers,
            report,
            offset_gaps_below,
            kafka_epochs_below,
        })
    }
}

/// In a compacted log adopted from Kafka, each sealed segment Kafka wrote must still reach the end
/// it had when adopted (`ends`, from `kafka-adopted`): Kafka's compaction leaves gaps after a
/// segment's last batch, and topiclog's keeps every segment's end (it fills what it drops with
/// an empty batch, and a merged segment covers the ends of those it replaced), so a segment cut
/// short, emptied or deleted shows as an end not reached. Segments wholly below the log start
/// `start` are not checked (retention removes them), nor ends past the log's end `log_end` (only
/// a cut `Recovery::TruncateCorrupt` reported puts the end below them). One read per adopted
/// segment.
fn check_adopted_ends(
    segments: &[Arc<Segment>],
    start: u64,
    log_end: u64,
    ends: &[(u64, u64)],
) -> Result<()> {
    let checked = ends
        .iter()
        .filter(|&&(_, end)| end > start && end > 0 && end <= log_end);
    for &(base, end) in checked {
        let last = end - 1;
        let i = segments.partition_point(|s| s.base_offset() <= last);
        let holder = i.checked_sub(1).and_then(|i| segments.get(i));
        let reaches = match holder {
            Some(seg) if i == segments.len() => seg.next_offset() >= end,
            Some(seg) => seg
                .read(last.max(seg.base_offset()), 1)?
                .last()
                .is_some_and(|b| b.next_offset() >= end),
            None => false,
        };
        if !reaches {
            let path = holder.map_or_else(
                || {
                    segments
                        .first()
                        .map(|s| s.log_path().to_owned())
                        .unwrap_or_default()
                },
                |s| s.log_path().to_owned(),
            );
            return Err(Error::corrupt(
                path,
                0,
                format!(
                    "the segment adopted from Kafka at base offset {base} ended at offset {end}, \
                     but no segment holds offset {last} any more: it was cut short or deleted \
                     (Kafka's compaction keeps a segment's end); records are missing: restore it"
                ),
            ));
        }
    }
    Ok(())
}

/// After a clean close: open the segments as they are, and check that the active one is exactly
/// what the close left (base offset, size, end offset). `Err(Corrupt)` if not: the caller then
/// rescans.
fn load_clean(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    bases: &[u64],
    config: SegmentConfig,
    marker: &CleanShutdown,
) -> Result<Vec<Arc<Segment>>> {
    let mut segments = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let seg = match bases.get(i + 1) {
            Some(&next) => Segment::open_sealed_with(fs.clone(), dir, base, next, config)?,
            None => Segment::open_active_with(fs.clone(), dir, base, config)?,
        };
        segments.push(Arc::new(seg));
    }
    let Some(active) = segments.last() else {
        return Err(Error::corrupt(dir, 0, "no segment is left"));
    };
    let found = (active.base_offset(), active.size(), active.next_offset());
    let left = (marker.active_base, marker.active_size, marker.end_offset);
    if found != left {
        return Err(Error::corrupt(
            active.log_path(),
            0,
            format!(
                "the active segment is not what the clean close left: (base, size, end) is \
                 {found:?}, was {left:?}"
            ),
        ));
    }
    Ok(segments)
}

/// `table` (as of `offset`) plus every batch from `offset` to the end.
///
/// Segments nothing in which was written within the producer id expiration window are
/// skipped: every producer they could name has expired (a producer's latest batches, which
/// its state is made of, lie in later segments).
fn replay_producers(
    segments: &[Arc<Segment>],
    start: u64,
    end: u64,
    mut table: ProducerTable,
    offset: u64,
    now_ms: i64,
    config: &LogConfig,
) -> Result<ProducerTable> {
    let window = i64::try_from(config.producer_id_expiration.as_millis()).unwrap_or(i64::MAX);
    let horizon = now_ms.saturating_sub(window);
    let mut next = offset.max(start);
    let mut i = segments
        .partition_point(|s| s.base_offset() <= next)
        .saturating_sub(1);
    while let Some(seg) = segments.get(i).filter(|_| next < end) {
        let modified = seg.last_modified_ms();
        // A segment of empty batches only (compaction keeps a producer's last batch emptied)
        // has no record timestamp (`i64::MIN`): that says nothing about its age.
        let max_ts = seg.max_timestamp()?.filter(|&t| t != i64::MIN);
        let newest = match (max_ts, modified) {
            (Some(t), Some(m)) => Some(t.max(m)),
            (t, m) => t.or(m),
        };
        let later = segments.get(i + 1);
        if let Some(later) = later.filter(|_| newest.is_some_and(|n| n < horizon)) {
            next = next.max(later.base_offset());
            i += 1;
            continue;
        }
        let batches = seg.read(next, 1 << 20)?;
        if batches.is_empty() {
            i += 1;
            continue;
        }
        for b in &batches {
            if b.base_offset() >= offset {
                table.replay(b.header(), modified.unwrap_or(i64::MIN));
            }
            next = b.next_offset();
        }
    }
    Ok(table)
}
