//! Steps of opening a partition: which checkpoint to trust, and loading the segments after a
//! clean close or rescanning them after a crash.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::{parse_segment_file_name, SegmentFileKind, BATCH_HEADER_LEN};
use crate::fs::{FileSystem, OpenMode};
use crate::segment::{Recovery, Segment, SegmentConfig};

use super::checkpoint::{self, Checkpoint, CleanShutdown};
use super::{PartitionConfig, RecoveryReport};

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
        let seg = Segment::open_for_recovery(fs.clone(), dir, base, seg_config)?;
        let r = seg.recover(recovery_point, config.recovery)?;
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
                let s = Segment::open_for_recovery(fs.clone(), dir, later, seg_config)?;
                s.delete()?;
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
