//! Steps of opening a partition: which checkpoint to trust, and loading the segments after a
//! clean close or rescanning them after a crash.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::{
    parse_segment_file_name, segment_file_name, SegmentFileKind, BATCH_HEADER_LEN,
};
use crate::fs::{FileSystem, OpenMode};
use crate::segment::{Recovery, Segment, SegmentConfig};

use super::checkpoint::{self, Checkpoint, CleanShutdown, CLEAN_SHUTDOWN};
use super::cleaner_checkpoint::CleanerCheckpoint;
use super::producer_state::ProducerTable;
use super::{compaction, map_active, remove_if_exists, PartitionConfig, RecoveryReport};

/// The checkpoint to open with. A missing or damaged one is repaired from the clean-shutdown
/// marker (which a clean close wrote with the same values), or, in a partition that has never
/// held data, started afresh; anything else is damage: without it the log start offset (below
/// which `delete_records` removed records) and the recovery point are unknown.
pub(super) fn resolve_checkpoint(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[String],
    marker: Option<CleanShutdown>,
    report: &mut RecoveryReport,
) -> Result<Option<Checkpoint>> {
    let damage = match Checkpoint::read(fs, dir) {
        Ok(Some(c)) => return Ok(Some(c)),
        Ok(None) => "is missing".to_owned(),
        Err(Error::Corrupt { reason, .. }) => format!("is damaged ({reason})"),
        Err(e) => return Err(e),
    };
    if let Some(m) = marker {
        report.checkpoint_damaged = true;
        return Ok(Some(m.checkpoint()));
    }
    if !holds_data(fs, dir, names)? {
        // A new partition whose first open stopped before its checkpoint was written.
        report.checkpoint_damaged = damage != "is missing";
        return Ok(None);
    }
    Err(Error::corrupt(
        dir.join(checkpoint::FILE_NAME),
        0,
        format!(
            "the partition checkpoint {damage} and the partition holds data, so its log start \
             offset and recovery point are unknown (guessing could bring deleted records back); \
             restore the file from a backup"
        ),
    ))
}

/// Whether any segment of the partition directory `dir` holds a batch: data always starts at the
/// first byte of a segment's `.log` (cleaned and swapped ones included); a new segment is empty
/// or preallocated zeros. Reads one header's worth of each.
pub(crate) fn holds_data(fs: &dyn FileSystem, dir: &Path, names: &[String]) -> Result<bool> {
    for name in names {
        let segment = matches!(
            parse_segment_file_name(name),
            Some((_, SegmentFileKind::Log))
        );
        if !(segment || name.contains(".log.")) {
            continue;
        }
        let path = dir.join(name);
        if fs.is_dir(&path).at(&path)? {
            continue;
        }
        let file = fs.open(&path, OpenMode::Read).at(&path)?;
        let len = file.len().at(&path)?;
        let mut head = vec![0u8; len.min(BATCH_HEADER_LEN as u64) as usize];
        file.read_exact_at(&mut head, 0).at(&path)?;
        if head.iter().any(|&b| b != 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// After a clean close: open the segments as they are, and check that the active one is exactly
/// what the close left (base offset, size, end offset). `Err(Corrupt)` if not: the caller then
/// rescans.
pub(super) fn load_clean(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    bases: &[u64],
    config: SegmentConfig,
    marker: &CleanShutdown,
) -> Result<Vec<Arc<Segment>>> {
    let mut segments = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let seg = match bases.get(i + 1) {
            Some(&next) => Segment::open_sealed(fs.clone(), dir, base, next, config)?,
            None => Segment::open_active(fs.clone(), dir, base, config)?,
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

/// After a crash (or when the clean state did not verify): rescan every segment that may hold
/// data above the recovery point, cut a torn tail, and drop segments that follow a lost one.
///
/// Every segment must end exactly where the next begins (compaction keeps that too) and the last
/// at or past the recovery point. A segment that ends early *at or above* the recovery point lost
/// a tail that was never durable (a roll does not sync the old segment), so what follows it was
/// never durable either and goes. Below the recovery point, or a segment that overlaps the next,
/// is damage: `Corrupt` under [`Recovery::Strict`], a reported cut under
/// [`Recovery::TruncateCorrupt`].
pub(super) fn load_rescanning(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    bases: &[u64],
    config: &PartitionConfig,
    recovery_point: u64,
    report: &mut RecoveryReport,
) -> Result<Vec<Arc<Segment>>> {
    let seg_config = config.segment_config();
    let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        // Rescan every segment holding offsets at or after the recovery point, and the one
        // holding the offset just below it: that segment was active when the checkpoint was
        // written, so its data is durable but its indexes (written when it was sealed) may not be.
        if let Some(nb) = next_base.filter(|&nb| nb < recovery_point) {
            segments.push(Arc::new(Segment::open_sealed(
                fs.clone(),
                dir,
                base,
                nb,
                seg_config,
            )?));
            continue;
        }
        let (seg, r) = Segment::recover(
            fs.clone(),
            dir,
            base,
            seg_config,
            recovery_point,
            config.recovery,
        )?;
        report.segments_scanned += 1;
        report.bytes_scanned += r.valid_bytes + r.truncated_bytes;
        report.bytes_truncated += r.truncated_bytes;
        report.corruption_cut |= r.cut_corruption;
        let end = r.next_offset;
        let damage = match next_base {
            Some(nb) if end > nb => Some(format!(
                "ends at offset {end}, past the next segment's base offset {nb}"
            )),
            Some(nb) if end < nb && end < recovery_point => Some(format!(
                "ends at offset {end}, before the next segment begins ({nb}) and below the \
                 recovery point {recovery_point}: durable records are missing"
            )),
            None if end < recovery_point => Some(format!(
                "ends at offset {end}, below the recovery point {recovery_point}: durable \
                 records are missing"
            )),
            _ => None,
        };
        if let Some(why) = damage {
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
        if next_base.is_some_and(|nb| end != nb) {
            // Everything after an early end would follow a hole in the offsets: drop it, newest
            // first, so a crash meanwhile leaves a prefix.
            for &later in bases[i + 1..].iter().rev() {
                Segment::delete_files(&**fs, dir, later)?;
                report.segments_deleted += 1;
            }
            seg.flush_indexes(true)?;
            segments.push(Arc::new(seg));
            break;
        }
        if next_base.is_none() {
            seg.flush_indexes(true)?;
        } else {
            seg.seal()?;
        }
        segments.push(Arc::new(seg));
    }
    if report.segments_deleted > 0 {
        fs.sync_dir(dir).at(dir)?;
    }
    Ok(segments)
}

/// What a partition directory holds, recovered and ready to serve: what an open installs in a new
/// partition, and an in-place recovery in a poisoned one.
pub(super) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub active: Arc<Segment>,
    pub end: u64,
    pub start: u64,
    pub cleaner: CleanerCheckpoint,
    pub checkpoint: Checkpoint,
    /// The idempotent producers' state, if any ever wrote here.
    pub producers: Option<ProducerTable>,
    pub report: RecoveryReport,
}

/// Recover the partition in `dir` (whose lock the caller holds): trust what a clean close left
/// if it verifies, else rescan; finish interrupted compaction swaps and retention passes; make
/// the result durable (checkpoint, the clean marker's removal); rebuild the producer state.
pub(super) fn recover_dir(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    config: &PartitionConfig,
) -> Result<Recovered> {
    let names = fs.read_dir(dir).at(dir)?;
    let mut report = RecoveryReport::default();

    // What the last clean close saw, if that verifies; otherwise open as after a crash.
    let marker = match CleanShutdown::read(&**fs, dir) {
        Ok(m) => m,
        Err(Error::Corrupt { .. }) => None,
        Err(e) => return Err(e),
    };
    let checkpoint = resolve_checkpoint(&**fs, dir, &names, marker, &mut report)?;
    let clean = marker.is_some_and(|m| Some(m.checkpoint()) == checkpoint);

    // Finish or roll back a compaction swap a crash interrupted.
    let (cleaner_cp, cleaner_damaged) = match CleanerCheckpoint::read(&**fs, dir) {
        Ok(c) => (c, false),
        Err(Error::Corrupt { .. }) => (None, true),
        Err(e) => return Err(e),
    };
    let mut cleaner = compaction::recover_swap(&**fs, dir, &names, cleaner_cp, cleaner_damaged)?;
    if cleaner_damaged {
        // Start the cleaner over: it re-maps the log (tombstones are kept until a pass has
        // seen them again, never dropped early).
        cleaner = CleanerCheckpoint::default();
        cleaner.write(&**fs, dir)?;
    }
    let names = if names
        .iter()
        .any(|n| n.ends_with(compaction::CLEANED_SUFFIX) || n.ends_with(compaction::SWAP_SUFFIX))
    {
        fs.read_dir(dir).at(dir)?
    } else {
        names
    };

    // Sort out what is in the directory.
    let mut bases = Vec::new();
    let mut index_bases = Vec::new();
    for name in &names {
        if name.ends_with(".tmp") || name.ends_with(".truncating") {
            // An interrupted atomic replace: the original is intact.
            remove_if_exists(&**fs, &dir.join(name))?;
            continue;
        }
        match parse_segment_file_name(name) {
            Some((base, SegmentFileKind::Log)) => bases.push(base),
            Some((base, _)) => index_bases.push((base, name.clone())),
            None => {}
        }
    }
    bases.sort_unstable();
    if let Some(cp) = checkpoint {
        // Whole segments below the log start offset: left by a retention pass that a crash
        // interrupted after it moved the start offset. Finish the job.
        let mut dropped = false;
        while bases.len() > 1 && bases[1] <= cp.log_start_offset {
            for kind in [
                SegmentFileKind::Log,
                SegmentFileKind::OffsetIndex,
                SegmentFileKind::TimeIndex,
            ] {
                remove_if_exists(&**fs, &segment_file_name(dir, bases[0], kind))?;
            }
            bases.remove(0);
            dropped = true;
        }
        if dropped {
            fs.sync_dir(dir).at(dir)?;
        }
        // The first segment holds the log start offset: retention moves the start before it
        // deletes a segment, so a first segment starting later means segments went missing.
        let missing_from = match bases.first() {
            Some(&first) if first > cp.log_start_offset => Some(first),
            None if cp.recovery_point > cp.log_start_offset => Some(cp.recovery_point),
            _ => None,
        };
        if let Some(first) = missing_from {
            if config.recovery == Recovery::Strict {
                return Err(Error::corrupt(
                    dir,
                    0,
                    format!(
                        "the segments holding offsets {} to {first} are missing (the log \
                         starts at {}); restore them, or reopen with \
                         Recovery::TruncateCorrupt to start the log at {first}",
                        cp.log_start_offset, cp.log_start_offset
                    ),
                ));
            }
            report.corruption_cut = true;
        }
    }
    for (base, name) in index_bases {
        if bases.binary_search(&base).is_err() {
            // Orphan index: its log is gone.
            remove_if_exists(&**fs, &dir.join(name))?;
        }
    }

    let seg_config = config.segment_config();
    let loaded = match marker.filter(|_| clean) {
        Some(m) => match load_clean(fs, dir, &bases, seg_config, &m) {
            Ok(segments) => Some(segments),
            // Not what the close left: rescan as after a crash, which cuts only what was
            // not durable and reports the rest.
            Err(Error::Corrupt { .. }) | Err(Error::IndexAppend { .. }) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    report.clean_shutdown = loaded.is_some();
    let mut segments = match loaded {
        Some(segments) => segments,
        None => {
            let recovery_point = checkpoint.map_or(0, |c| c.recovery_point);
            load_rescanning(fs, dir, &bases, config, recovery_point, &mut report)?
        }
    };
    if segments.is_empty() {
        // A new log; or (under TruncateCorrupt) one whose segments all went missing, which
        // goes on after the last offset it ever handed out.
        let base = checkpoint.map_or(0, |c| c.log_start_offset.max(c.recovery_point));
        segments.push(Arc::new(Segment::create(
            fs.clone(),
            dir,
            base,
            seg_config,
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
    if cleaner.first_dirty > end {
        // Recovery cut the log (`Recovery::TruncateCorrupt`, or damage): forget what the
        // cleaner knew from the active segment on, as a truncation does, so records appended
        // there are mapped (and their tombstones get horizons) like any new data.
        let from = active.base_offset().min(end);
        if cleaner.truncate(from) {
            cleaner.write(&**fs, dir)?;
        }
    }
    let first_base = segments.first().map_or(end, |s| s.base_offset());
    let start = checkpoint
        .map_or(first_base, |c| c.log_start_offset.max(first_base))
        .min(end);
    let producers_from = checkpoint.and_then(|c| c.producers_from);

    // From here on a crash is an unclean stop again.
    if marker.is_some() || names.iter().any(|n| n == CLEAN_SHUTDOWN) {
        remove_if_exists(&**fs, &dir.join(CLEAN_SHUTDOWN))?;
    }
    let cp = Checkpoint {
        log_start_offset: start,
        recovery_point: end,
        producers_from,
    };
    if checkpoint != Some(cp) || report.checkpoint_damaged {
        cp.write(&**fs, dir)?; // syncs the directory too
    } else {
        fs.sync_dir(dir).at(dir)?; // the marker's removal
    }

    // Idempotent producers' state: the snapshot plus the batches after it; rebuilt from the
    // log (as Kafka does) when the snapshot is missing, damaged or stale.
    let snapshot = match ProducerTable::read(&**fs, dir) {
        // A snapshot describes batches below its offset, which must not be past the end
        // (recovery may have cut the log below it).
        Ok(Some((offset, table))) if offset <= end && table.lies_below(offset) => {
            Some((offset, table))
        }
        Ok(found) => {
            report.producer_state_rebuilt = found.is_some() || producers_from.is_some();
            None
        }
        Err(Error::Corrupt { .. }) => {
            report.producer_state_rebuilt = true;
            None
        }
        Err(e) => return Err(e),
    };
    let replay_from = match (snapshot, producers_from) {
        (Some((offset, table)), _) => Some((offset, table)),
        (None, Some(from)) => Some((from.max(start), ProducerTable::default())),
        (None, None) if report.producer_state_rebuilt => Some((start, ProducerTable::default())),
        (None, None) => None,
    };
    let producers = match replay_from {
        Some((offset, table)) => {
            let now = config.clock.now_ms();
            let mut table = replay_producers(&segments, start, end, table, offset, now, config)?;
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
    })
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
    config: &PartitionConfig,
) -> Result<ProducerTable> {
    let window = i64::try_from(config.producer_id_expiration.as_millis()).unwrap_or(i64::MAX);
    let horizon = now_ms.saturating_sub(window);
    let mut next = offset.max(start);
    let mut i = segments
        .partition_point(|s| s.base_offset() <= next)
        .saturating_sub(1);
    while let Some(seg) = segments.get(i).filter(|_| next < end) {
        let modified = seg.last_modified_ms();
        let newest = match (seg.max_timestamp()?, modified) {
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
