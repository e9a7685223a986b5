//! Step 2 of opening a partition: decide, from what step 1 found, what to trust, what to rescan,
//! what to delete and what to finish. Pure (no I/O), so each decision is tested on made-up
//! listings.

use std::path::PathBuf;

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::format::{parse_segment_file_name, SegmentFileKind};
use crate::segment::{Recovery, SegmentConfig};

use super::super::checkpoint::{self, AdoptedLog, Checkpoint, CleanShutdown};
use super::super::cleaner_checkpoint::CleanerCheckpoint;
use super::super::compaction::SWAP_SUFFIX;
use super::super::producer_state::ProducerTable;
use super::super::RecoveryReport;
use super::listing::{DirListing, Metadata, Stored};

/// What opening a partition directory will do, in the order it does it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::partition) struct RecoveryPlan {
    pub dir: PathBuf,
    /// The checkpoint to open with; `None` for a partition that never held data.
    pub checkpoint: Option<Checkpoint>,
    /// What the last clean close left, when it agrees with the checkpoint: every segment is
    /// trusted as it is once the active one is what the close left (else the log is rescanned).
    pub clean: Option<CleanShutdown>,
    /// Compaction output whose swap was never committed: delete.
    pub delete_cleaned: Vec<String>,
    /// A committed compaction swap to finish.
    pub finish_swap: Option<SwapFinish>,
    /// `.swap` files that belong to no committed swap: delete.
    pub delete_stray_swaps: Vec<String>,
    /// The cleaner state to go on with.
    pub cleaner: CleanerCheckpoint,
    /// Write `cleaner` (a swap was recorded in it, or it was damaged and starts over).
    pub write_cleaner: bool,
    /// Atomic replaces a crash interrupted: delete (the originals are intact).
    pub delete_temporary: Vec<String>,
    /// Whole segments below the log start offset, left by a retention pass a crash interrupted
    /// after it moved the start: delete, oldest first.
    pub delete_below_start: Vec<u64>,
    /// Index files whose `.log` is gone: delete.
    pub delete_orphans: Vec<String>,
    /// The segments of the log, by ascending base offset.
    pub segments: Vec<u64>,
    /// Every batch below it was durable (0 without a checkpoint).
    pub recovery_point: u64,
    /// After a crash, this many leading segments are opened as they are: each ends (where the next
    /// begins) below the recovery point. The rest are rescanned, starting with the one holding the
    /// offset just below the recovery point: it was active when the checkpoint was written, so its
    /// data and its index entries below the recovery point are durable, but not its indexes as a
    /// whole (written when it was sealed); it is rescanned from the last of those entries.
    pub trusted: usize,
    /// Remove the clean-shutdown marker: from the end of this open a crash is an unclean stop.
    pub remove_marker: bool,
    /// Batches below this offset may follow a gap: the part of the log that Kafka wrote and
    /// compacted (`kafka-adopted`); `u64::MAX` while adopting a compacted log, 0 where Kafka
    /// could not have left a gap (topiclog's log, or a topic that does not compact).
    pub offset_gaps_below: u64,
    /// Batches below this offset may carry any leader epoch: the part of the log that Kafka
    /// wrote; `u64::MAX` while adopting.
    pub kafka_epochs_below: u64,
    /// What to do with `kafka-adopted`.
    pub adoption: Adoption,
    /// The ends of the sealed segments of a compacted log adopted from Kafka, as adopted (see
    /// `AdoptedLog::segment_ends`): checked once the segments are loaded.
    pub segment_ends: Vec<(u64, u64)>,
    /// What is known before any segment is read.
    pub report: RecoveryReport,
}

/// What an open does with `kafka-adopted`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::partition) enum Adoption {
    /// Nothing: no log written by Kafka, or one whose adoption finished.
    None,
    /// The segments are a log written by Kafka, opened by topiclog for the first time (or again
    /// after that first open stopped before its checkpoint): write this marker (an adoption under
    /// way) before anything else, rescan every segment, write the first checkpoint, then the
    /// marker of the finished adoption with the end offset.
    Adopt(AdoptedLog),
    /// An adoption stopped after its checkpoint: write this marker (finished) after the
    /// checkpoint.
    Finish(AdoptedLog),
}

/// A committed compaction swap: `<base>.log.swap` (and its index `.swap` files) replaces the
/// segments with base offsets in `[base, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::partition) struct SwapFinish {
    pub base: u64,
    pub end: u64,
    /// The files of the replaced segments (what is left of them): deleted before the swap files
    /// are renamed into place.
    pub replaced: Vec<String>,
}

impl RecoveryPlan {
    /// Decide how to open the partition that `listing` and `metadata` describe, cutting damage
    /// under `mode` (`Recovery::Strict`: refuse it).
    ///
    /// # Errors
    /// [`Error::Corrupt`], with nothing on disk changed, when the partition cannot be opened
    /// safely: its checkpoint is missing or damaged while it holds data and no clean close
    /// vouches for it; a committed compaction swap has no (readable) record of what it replaces;
    /// or (under `Recovery::Strict`) segments at the start of the log are missing.
    pub fn decide(
        listing: &DirListing,
        metadata: &Metadata,
        mode: Recovery,
        compacted: bool,
    ) -> Result<Self> {
        let dir = &listing.dir;
        let mut report = RecoveryReport::default();
        let found = match &metadata.adopted {
            Stored::Found(a) => Some(a.clone()),
            Stored::Missing => None,
            Stored::Damaged(reason) => {
                return Err(Error::corrupt(
                    dir.join(checkpoint::ADOPTED),
                    0,
                    format!(
                        "the marker of a log adopted from Kafka is damaged ({reason}); restore \
                         it (its offset is where the log written by Kafka ended)"
                    ),
                ))
            }
        };
        // A log written by Kafka, never opened by topiclog, or whose adoption stopped before its
        // first checkpoint: adopt it. Once that checkpoint is written, the partition is
        // topiclog's: a checkpoint lost later is damage as in any partition (adopting again
        // would move the log start back and bring deleted records back).
        let unadopted = match &found {
            None => metadata.never_opened,
            Some(a) => a.adopting,
        };
        let adopt = unadopted
            && matches!(metadata.checkpoint, Stored::Missing)
            && metadata.marker.is_none()
            && metadata.holds_data == Some(true);
        let first = listing.segments.first().copied().unwrap_or(0);
        let (checkpoint, adoption) = if adopt {
            // Kafka keeps the log start offset outside the partition directory: the log starts
            // at its first segment (`Store::import_kafka` applies Kafka's, and records it in
            // the marker). The idempotent producers' state is rebuilt from the batches, as Kafka
            // does without a snapshot, so a producer's retry after the move is still recognised.
            let marker = found.clone().unwrap_or(AdoptedLog {
                gaps_below: u64::MAX,
                log_start: first,
                compacted,
                adopting: true,
                segment_ends: Vec::new(),
            });
            let log_start = marker.log_start.max(first);
            let cp = Checkpoint {
                log_start_offset: log_start,
                recovery_point: 0,
                producers_from: Some(log_start),
            };
            // Whether gaps are Kafka's follows the topic's policy until the adoption is done.
            let marker = AdoptedLog {
                gaps_below: u64::MAX,
                compacted,
                ..marker
            };
            (Some(cp), Adoption::Adopt(marker))
        } else {
            let cp = resolve_checkpoint(listing, metadata, &mut report)?;
            let adoption = match found.clone().filter(|a| a.adopting) {
                // The adoption's checkpoint was written: nothing was appended since, so its
                // recovery point is the adopted end.
                Some(a) => Adoption::Finish(AdoptedLog {
                    gaps_below: a.gaps_below.min(cp.map_or(0, |c| c.recovery_point)),
                    adopting: false,
                    ..a
                }),
                None => Adoption::None,
            };
            (cp, adoption)
        };
        let (offset_gaps_below, kafka_epochs_below, segment_ends) = match (&adoption, &found) {
            (Adoption::Adopt(a), _) => (if a.compacted { u64::MAX } else { 0 }, u64::MAX, vec![]),
            (Adoption::Finish(a), _) | (Adoption::None, Some(a)) if a.compacted => {
                (a.gaps_below, a.gaps_below, a.segment_ends.clone())
            }
            (Adoption::Finish(a), _) | (Adoption::None, Some(a)) => (0, a.gaps_below, vec![]),
            (Adoption::None, None) => (0, 0, vec![]),
        };
        let clean = metadata
            .marker
            .filter(|m| Some(m.checkpoint()) == checkpoint);

        // A compaction swap a crash interrupted: finish it if it was committed (its `.log.swap`
        // exists), else forget it (its `.cleaned` output goes).
        let (mut cleaner, mut write_cleaner) = match &metadata.cleaner {
            Stored::Found(c) => (c.clone(), false),
            Stored::Missing => (CleanerCheckpoint::default(), false),
            // Start the cleaner over: it re-maps the log (tombstones are kept until a pass has
            // seen them again, never dropped early).
            Stored::Damaged(_) => (CleanerCheckpoint::default(), true),
        };
        let recorded = cleaner.swap.take();
        write_cleaner |= recorded.is_some();
        let mut finish_swap = None;
        let mut delete_stray_swaps = Vec::new();
        for name in &listing.swap {
            let Some(base) = swap_log_base(name) else {
                continue;
            };
            let Some((swap_base, end)) = recorded.filter(|(b, _)| *b == base) else {
                let why = if matches!(metadata.cleaner, Stored::Damaged(_)) {
                    "a compaction swap was interrupted and the cleaner checkpoint is damaged, so \
                     the range it replaces is unknown"
                } else {
                    "a compaction swap file has no matching cleaner checkpoint entry"
                };
                return Err(Error::corrupt(dir.join(name), 0, why));
            };
            let replaced = listing
                .names
                .iter()
                .filter(|n| {
                    parse_segment_file_name(n).is_some_and(|(b, _)| b >= swap_base && b < end)
                })
                .cloned()
                .collect();
            finish_swap = Some(SwapFinish {
                base: swap_base,
                end,
                replaced,
            });
        }
        for name in &listing.swap {
            // Index swap files without their log: either not committed yet (the originals are
            // intact) or the log was already moved into place (its indexes are rebuilt).
            let committed = finish_swap
                .as_ref()
                .is_some_and(|s| swap_file_base(name) == Some(s.base));
            if swap_log_base(name).is_none() && !committed {
                delete_stray_swaps.push(name.clone());
            }
        }

        // The segments once the swap is finished.
        let mut segments = listing.segments.clone();
        let mut indexes = listing.indexes.clone();
        if let Some(s) = &finish_swap {
            segments.retain(|&b| b < s.base || b >= s.end);
            segments.push(s.base);
            segments.sort_unstable();
            indexes.retain(|&(b, _)| b < s.base || b >= s.end);
        }

        let mut delete_below_start = Vec::new();
        if let Some(cp) = checkpoint {
            // Retention moves the start offset durably before it deletes a segment: finish
            // the pass.
            while segments.len() > 1 && segments[1] <= cp.log_start_offset {
                delete_below_start.push(segments.remove(0));
            }
            // The first segment holds the log start offset: one starting later means segments
            // went missing.
            let missing_from = match segments.first() {
                Some(&first) if first > cp.log_start_offset => Some(first),
                None if cp.recovery_point > cp.log_start_offset => Some(cp.recovery_point),
                _ => None,
            };
            if let Some(first) = missing_from {
                if mode == Recovery::Strict {
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
        let delete_orphans = indexes
            .into_iter()
            .filter(|(b, _)| segments.binary_search(b).is_err())
            .filter(|(b, _)| !delete_below_start.contains(b))
            .map(|(_, name)| name)
            .collect();

        let recovery_point = checkpoint.map_or(0, |c| c.recovery_point);
        let trusted = segments
            .windows(2)
            .take_while(|w| w[1] < recovery_point)
            .count();
        Ok(RecoveryPlan {
            dir: dir.clone(),
            checkpoint,
            clean,
            delete_cleaned: listing.cleaned.clone(),
            finish_swap,
            delete_stray_swaps,
            cleaner,
            write_cleaner,
            delete_temporary: listing.temporary.clone(),
            delete_below_start,
            delete_orphans,
            segments,
            recovery_point,
            trusted,
            remove_marker: listing.clean_marker,
            offset_gaps_below,
            kafka_epochs_below,
            adoption,
            segment_ends,
            report,
        })
    }

    /// The base offset of the segment a log with no segment left starts with: a new log's 0, or
    /// (after `Recovery::TruncateCorrupt` found every segment missing) the last offset the log
    /// ever handed out, so no offset is handed out twice.
    /// What this partition's segments need from `config` (see [`offset_gaps_below`](Self)).
    pub fn segment_config(&self, config: &LogConfig) -> SegmentConfig {
        SegmentConfig {
            offset_gaps_below: self.offset_gaps_below,
            kafka_epochs_below: self.kafka_epochs_below,
            ..config.segment_config()
        }
    }

    pub fn empty_log_base(&self) -> u64 {
        self.checkpoint
            .map_or(0, |c| c.log_start_offset.max(c.recovery_point))
    }
}

/// The checkpoint to open with. A missing or damaged one is repaired from the clean-shutdown
/// marker (which a clean close wrote with the same values), or, in a partition that has never
/// held data, started afresh; anything else is damage: without it the log start offset (below
/// which `delete_records` removed records) and the recovery point are unknown.
fn resolve_checkpoint(
    listing: &DirListing,
    metadata: &Metadata,
    report: &mut RecoveryReport,
) -> Result<Option<Checkpoint>> {
    let damage = match &metadata.checkpoint {
        Stored::Found(c) => return Ok(Some(*c)),
        Stored::Missing => "is missing".to_owned(),
        Stored::Damaged(reason) => format!("is damaged ({reason})"),
    };
    if let Some(m) = metadata.marker {
        report.checkpoint_damaged = true;
        return Ok(Some(m.checkpoint()));
    }
    if metadata.holds_data == Some(false) {
        // A new partition whose first open stopped before its checkpoint was written.
        report.checkpoint_damaged = matches!(metadata.checkpoint, Stored::Damaged(_));
        return Ok(None);
    }
    Err(Error::corrupt(
        listing.dir.join(checkpoint::FILE_NAME),
        0,
        format!(
            "the partition checkpoint {damage} and the partition holds data, so its log start \
             offset and recovery point are unknown (guessing could bring deleted records back); \
             restore the file from a backup"
        ),
    ))
}

/// The base offset of a `<base>.log.swap` name.
fn swap_log_base(name: &str) -> Option<u64> {
    name.strip_suffix(SWAP_SUFFIX)
        .and_then(parse_segment_file_name)
        .filter(|(_, kind)| *kind == SegmentFileKind::Log)
        .map(|(base, _)| base)
}

/// The base offset of a `<base>.{log,index,timeindex}.swap` name.
fn swap_file_base(name: &str) -> Option<u64> {
    name.strip_suffix(SWAP_SUFFIX)
        .and_then(parse_segment_file_name)
        .map(|(base, _)| base)
}

/// How a rescanned segment ends, against where the next one begins and the recovery point.
///
/// Every segment must end exactly where the next begins (compaction keeps that too) and the last
/// at or past the recovery point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::partition) enum SegmentEnd {
    /// Where the next segment begins; the last segment: at or past the recovery point.
    Whole,
    /// Before the next segment begins, at or past the recovery point: it lost a tail that was
    /// never durable (a roll does not sync the old segment), so what follows it was never durable
    /// either and goes.
    Early,
    /// Damage, `Corrupt` under `Recovery::Strict`, a reported cut (of this segment's successors,
    /// if any) under `Recovery::TruncateCorrupt`: the segment overlaps the next, or durable
    /// records are missing. Says which.
    Damaged(String),
}

impl SegmentEnd {
    /// Judge a segment whose valid batches end at `end`, followed by a segment at `next_base`.
    pub fn judge(end: u64, next_base: Option<u64>, recovery_point: u64) -> SegmentEnd {
        match next_base {
            Some(nb) if end > nb => SegmentEnd::Damaged(format!(
                "ends at offset {end}, past the next segment's base offset {nb}"
            )),
            Some(nb) if end < nb && end < recovery_point => SegmentEnd::Damaged(format!(
                "ends at offset {end}, before the next segment begins ({nb}) and below the \
                 recovery point {recovery_point}: durable records are missing"
            )),
            Some(nb) if end < nb => SegmentEnd::Early,
            None if end < recovery_point => SegmentEnd::Damaged(format!(
                "ends at offset {end}, below the recovery point {recovery_point}: durable \
                 records are missing"
            )),
            _ => SegmentEnd::Whole,
        }
    }
}

/// Where the idempotent producers' state comes from: a snapshot plus the batches after it; rebuilt
/// from the log (as Kafka does) when the snapshot is missing, damaged or stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::partition) struct ProducerReplay {
    /// The table to start from and the offset to replay batches from; `None`: no idempotent
    /// producer ever wrote here.
    pub from: Option<(u64, ProducerTable)>,
    /// The snapshot could not be used and the state is rebuilt from the log.
    pub rebuilt: bool,
}

impl ProducerReplay {
    /// Decide from the snapshot as found, where the checkpoint says producer state begins, and
    /// the log's start and end offsets after recovery.
    pub fn decide(
        snapshot: Stored<(u64, ProducerTable)>,
        producers_from: Option<u64>,
        start: u64,
        end: u64,
    ) -> ProducerReplay {
        let (snapshot, rebuilt) = match snapshot {
            // A snapshot describes batches below its offset, which must not be past the end
            // (recovery may have cut the log below it).
            Stored::Found((offset, table)) if offset <= end && table.lies_below(offset) => {
                (Some((offset, table)), false)
            }
            Stored::Found(_) => (None, true),
            Stored::Missing => (None, producers_from.is_some()),
            Stored::Damaged(_) => (None, true),
        };
        let from = match (snapshot, producers_from) {
            (Some(found), _) => Some(found),
            (None, Some(from)) => Some((from.max(start), ProducerTable::default())),
            (None, None) if rebuilt => Some((start, ProducerTable::default())),
            (None, None) => None,
        };
        ProducerReplay { from, rebuilt }
    }
}
