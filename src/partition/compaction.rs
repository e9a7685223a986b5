//! Log compaction: keep the latest record per key, drop expired tombstones.
//!
//! # A pass ([`Partition::compact`])
//! 1. Make sealed segments durable, so everything the cleaner may read lies below the recovery
//!    point (recovery never rescans cleaned segments as if they were a torn tail).
//! 2. The *cleanable* range ends at the first *uncleanable* offset: the active segment's base,
//!    or the first dirty segment younger than `min_compaction_lag`. Records below the cleaner
//!    checkpoint's first dirty offset are *clean*; the rest of the cleanable range is *dirty*.
//! 3. Run only if the dirty ratio reaches `min_cleanable_dirty_ratio`, or the oldest dirty data
//!    is older than `max_compaction_lag`, or kept tombstones have reached their horizon.
//! 4. Map key → latest offset over the dirty range, within a fixed memory budget. A key is a
//!    128-bit keyed hash (two SipHash outputs with a per-pass random key), so a collision that
//!    would drop the wrong record is as likely as guessing a random 128-bit number. If the map
//!    fills, the pass maps only up to there (`map_end`) and cleans that much; the next pass goes on.
//! 5. Rewrite every segment below `map_end`, in groups that fit one segment (size, index and
//!    offset limits). A record survives if its key is not in the map or it is the mapped latest
//!    (or newer); a tombstone also goes once its horizon passed; a keyless record goes (as in
//!    Kafka: a compacted log cannot hold them). A batch whose records all survive is copied
//!    verbatim; otherwise the survivors are re-encoded in a batch with the same offset range.
//!    A batch with no survivor goes; if the last batches of a cleaned segment go, an empty batch
//!    (no records) spanning their offsets ends it, so every segment still ends exactly where the
//!    next one begins — the invariant recovery and reads check to tell damage from compaction.
//! 6. Swap each group in (below), then advance the first dirty offset and record the horizon of
//!    the tombstones this pass saw first: `now + delete_retention`.
//!
//! # Crash-safe swap
//! ```text
//! write <base>.log.cleaned, .index.cleaned, .timeindex.cleaned; sync them
//! cleaner checkpoint: swap = (base, end of the replaced range)        (atomic, dir synced)
//! rename *.cleaned -> *.swap, the .log last; sync dir                  <- commit point
//! delete the replaced segments' files; sync dir
//! rename *.swap -> final names, the .log first; sync dir
//! ```
//! Open deletes `*.cleaned`; finds `<base>.log.swap` → deletes the segments in the checkpoint's
//! swap range and renames the `.swap` files into place; deletes index `.swap` files without a
//! `.log.swap` (indexes are rebuilt from the log when missing).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::CompressionType;
use crate::config::Deadline;
use crate::error::{Error, IoContext, Result};
use crate::format::{encode_retained, BatchHeader, Compression, RecordBatch, StoredRecord};
use crate::fs::FileSystem;
use crate::hash::FastHasher;
use crate::progress::{Meter, ProgressOperation};
use crate::segment::{suffixed, Segment, SegmentConfig};

use super::cleaner_checkpoint::CleanerCheckpoint;
use super::{remove_if_exists, stats, Inner, Partition};

/// Suffix of a cleaned segment's files while it is being written.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment's files once the swap is committed.
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// Smallest key-map budget accepted.
pub const MIN_MAP_BUDGET_BYTES: usize = 4 << 10;

/// What one compaction pass applies: a compacted log's compaction settings
/// ([`LogConfig::compaction_policy`](crate::LogConfig::compaction_policy)) and the memory the
/// pass may use. Every field documents its default and Kafka name.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{CompactionPolicy, Partition, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path())?;
/// // ... keyed appends, segments rolled ...
/// let policy = CompactionPolicy {
///     min_cleanable_dirty_ratio: 0.0, // clean whatever is dirty
///     ..CompactionPolicy::default()
/// };
/// let report = log.compact(0, &policy)?;
/// assert!(!report.cleaned); // one empty active segment: nothing to clean
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompactionPolicy {
    /// How long a tombstone stays after the cleaner first saw it (so consumers reading behind
    /// still see the delete). Default 1 day. Kafka: `delete.retention.ms`.
    pub delete_retention: Duration,
    /// Records stay uncompacted at least this long after they were written. Default 0. Kafka:
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag: Duration,
    /// Clean regardless of the dirty ratio once the oldest dirty data is this old. Default
    /// [`Deadline::Never`]. Kafka: `max.compaction.lag.ms`.
    pub max_compaction_lag: Deadline,
    /// Clean when dirty bytes / cleanable bytes exceed this ratio (0.0 ..= 1.0; 1.0 never
    /// triggers by ratio alone, as in Kafka). Default 0.5.
    /// Kafka: `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// Memory for the key → offset map, in bytes. Default 32 MiB (about 0.9 M distinct keys per pass);
    /// at least [`MIN_MAP_BUDGET_BYTES`]. Kafka: `log.cleaner.dedupe.buffer.size`.
    pub map_budget_bytes: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            delete_retention: Duration::from_secs(24 * 3600),
            min_compaction_lag: Duration::ZERO,
            max_compaction_lag: Deadline::Never,
            min_cleanable_dirty_ratio: 0.5,
            map_budget_bytes: 32 << 20,
        }
    }
}

impl CompactionPolicy {
    /// Check ranges.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(Error::config(
                "min_cleanable_dirty_ratio",
                format!("{} is outside 0.0 ..= 1.0", self.min_cleanable_dirty_ratio),
            ));
        }
        if self.map_budget_bytes < MIN_MAP_BUDGET_BYTES {
            return Err(Error::config(
                "map_budget_bytes",
                format!(
                    "{} is below the minimum {MIN_MAP_BUDGET_BYTES}",
                    self.map_budget_bytes
                ),
            ));
        }
        if self
            .max_compaction_lag
            .duration()
            .is_some_and(|max| max < self.min_compaction_lag)
        {
            return Err(Error::config(
                "max_compaction_lag",
                "must not be below min_compaction_lag",
            ));
        }
        Ok(())
    }
}

/// What a compaction pass found and did.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompactionReport {
    /// Whether a pass ran (the triggers fired and there was something to clean).
    pub cleaned: bool,
    /// Dirty bytes / cleanable bytes before the pass.
    pub dirty_ratio: f64,
    /// The first dirty offset after the pass (the persisted cleaner checkpoint).
    pub first_dirty_offset: u64,
    /// The key map filled before the end of the dirty range: only part of it was cleaned.
    pub map_full: bool,
    /// Distinct keys in the map.
    pub keys_mapped: u64,
    /// Segments read (rewritten or checked).
    pub segments_read: usize,
    /// Cleaned segments swapped in.
    pub segments_written: usize,
    /// Bytes of log read while rewriting.
    pub bytes_read: u64,
    /// Bytes of log written.
    pub bytes_written: u64,
    /// Records read while rewriting.
    pub records_read: u64,
    /// Records removed: superseded values, expired tombstones and keyless records.
    pub records_removed: u64,
    /// Of those, tombstones past their horizon.
    pub tombstones_removed: u64,
    /// Of those, records without a key.
    pub keyless_removed: u64,
}

impl Partition {
    /// Run one compaction pass if `policy`'s triggers say so (dirty ratio, maximum lag, or
    /// tombstones due; see [`CompactionPolicy`]): keeps the latest record per key
    /// below the active segment, drops tombstones older than `delete_retention` (counted from
    /// the pass that first saw them, at `now_ms` on the caller's clock), and preserves offsets:
    /// a read at an offset that compaction removed returns the next record.
    ///
    /// Appends and reads go on during the pass; retention, truncation and other passes wait for
    /// it. [`close`](Self::close) stops a pass early (its partial work is discarded).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad policy; [`Error::Poisoned`] / [`Error::Closed`];
    /// [`Error::Corrupt`] if a segment fails verification; [`Error::Io`]. A failure before a swap
    /// commits leaves the log as it was; after, the partition is poisoned and the next open
    /// finishes the swap.
    pub fn compact(&self, now_ms: i64, policy: &CompactionPolicy) -> Result<CompactionReport> {
        policy.validate()?;
        let inner = &*self.inner;
        let mut state = inner.cleaner.lock();
        inner.check_writable()?;
        // Everything the cleaner reads must be durable and below the recovery point.
        let active_base = inner.writer.lock().active.base_offset();
        if inner.checkpoint.lock().recovery_point < active_base {
            self.flush_checkpoint()?;
        }
        let _span = crate::trace::span!("compaction", dir = %inner.dir.display());
        let report = inner.compact_locked(&mut state, now_ms, policy)?;
        if report.cleaned {
            crate::trace::event!(
                info,
                dir = %inner.dir.display(),
                bytes_read = report.bytes_read,
                bytes_written = report.bytes_written,
                records_removed = report.records_removed,
                tombstones_removed = report.tombstones_removed,
                first_dirty_offset = report.first_dirty_offset,
                "compaction pass"
            );
            let c = &inner.counters;
            stats::add(&c.compaction_passes, 1);
            let reclaimed = report.bytes_read.saturating_sub(report.bytes_written);
            stats::add(&c.compaction_bytes_reclaimed, reclaimed);
            c.last_compaction_ms.store(now_ms, Ordering::Relaxed);
        }
        Ok(report)
    }

    /// The cleaner checkpoint: records below this offset have been through a compaction pass
    /// (or lay below the log start offset when a pass was last considered).
    pub fn first_dirty_offset(&self) -> u64 {
        self.inner.cleaner.lock().first_dirty
    }
}

/// Where the dirty range and the triggers stand.
struct Plan {
    first_dirty: u64,
    first_uncleanable: u64,
    dirty_bytes: u64,
    clean_bytes: u64,
}

impl Inner {
    fn plan(
        &self,
        segments: &[Arc<Segment>],
        state: &CleanerCheckpoint,
        now_ms: i64,
        policy: &CompactionPolicy,
    ) -> Result<Plan> {
        let start = self.start_offset.load(Ordering::Acquire);
        let first_base = segments.first().map_or(start, |s| s.base_offset());
        let active_base = segments.last().map_or(start, |s| s.base_offset());
        // Never inside the active segment: its records need not be durable, and the checkpoint
        // must not claim a crash could not take them back.
        let first_dirty = state
            .first_dirty
            .max(start)
            .max(first_base)
            .min(active_base.max(state.first_dirty));
        let recovery_point = self.checkpoint.lock().recovery_point;
        let min_lag_ms = i64::try_from(policy.min_compaction_lag.as_millis()).unwrap_or(i64::MAX);
        let mut first_uncleanable = first_dirty;
        let (mut dirty_bytes, mut clean_bytes) = (0u64, 0u64);
        for (i, seg) in segments.iter().enumerate() {
            let Some(next) = segments.get(i + 1).map(|n| n.base_offset()) else {
                break; // the active segment
            };
            if next <= first_dirty {
                if next > start {
                    clean_bytes += seg.size();
                }
                continue;
            }
            if next > recovery_point {
                break;
            }
            // A segment holding the first dirty offset was rewritten by the pass that stopped
            // there (its file time is that pass's); its records passed the lag check then.
            if min_lag_ms > 0 && seg.base_offset() >= first_dirty {
                // Written when? The last append, else the newest record.
                let written = match (seg.last_modified_ms(), seg.max_timestamp()?) {
                    (Some(m), _) => Some(m),
                    (None, t) => t,
                };
                if written.is_some_and(|w| w > now_ms.saturating_sub(min_lag_ms)) {
                    break;
                }
            }
            dirty_bytes += seg.size();
            first_uncleanable = next;
        }
        Ok(Plan {
            first_dirty,
            first_uncleanable,
            dirty_bytes,
            clean_bytes,
        })
    }

    fn compact_locked(
        &self,
        state: &mut CleanerCheckpoint,
        now_ms: i64,
        policy: &CompactionPolicy,
    ) -> Result<CompactionReport> {
        let segments = self.segments.read().clone();
        let plan = self.plan(&segments, state, now_ms, policy)?;
        let cleanable = plan.dirty_bytes + plan.clean_bytes;
        let mut report = CompactionReport {
            dirty_ratio: if cleanable == 0 {
                0.0
            } else {
                plan.dirty_bytes as f64 / cleanable as f64
            },
            first_dirty_offset: state.first_dirty,
            ..CompactionReport::default()
        };
        let has_dirty = plan.first_uncleanable > plan.first_dirty;
        let lag_due = has_dirty
            && policy.max_compaction_lag.duration().is_some_and(|max| {
                let max_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
                oldest_dirty_ms(&segments, plan.first_dirty)
                    .is_some_and(|t| t <= now_ms.saturating_sub(max_ms))
            });
        let ratio_due = has_dirty && report.dirty_ratio > policy.min_cleanable_dirty_ratio;
        let tombstones_due = state.tombstones_due(now_ms);
        if !(ratio_due || lag_due || tombstones_due) {
            if plan.first_dirty > state.first_dirty {
                // Nothing to clean, but the log start moved past the checkpoint: record that.
                let mut next = state.clone();
                next.first_dirty = plan.first_dirty;
                next.write(&*self.fs, &self.dir)
                    .inspect_err(|e| self.poison(e))?;
                *state = next;
                report.first_dirty_offset = state.first_dirty;
            }
            return Ok(report);
        }

        // What the pass reads: the dirty segments to map them, then (unless the map fills)
        // every segment from the log start to the first uncleanable offset to rewrite them.
        let total = plan
            .dirty_bytes
            .saturating_add(plan.dirty_bytes)
            .saturating_add(plan.clean_bytes);
        let mut meter = Meter::start(
            self.observer.as_ref(),
            ProgressOperation::Compaction,
            &self.dir,
            total,
        );

        // Map the dirty range.
        let mut map = OffsetMap::with_budget(policy.map_budget_bytes);
        let mut map_end = plan.first_dirty;
        let mut dirty_tombstones = 0u64;
        'segments: for (i, seg) in segments.iter().enumerate() {
            // Never the active segment: its records need not be durable yet.
            let Some(next) = segments.get(i + 1).map(|n| n.base_offset()) else {
                break;
            };
            if next <= plan.first_dirty {
                continue;
            }
            if seg.base_offset() >= plan.first_uncleanable {
                break;
            }
            let mut at = plan.first_dirty.max(seg.base_offset());
            meter.part(seg.size());
            let mut mapped = 0u64;
            loop {
                self.check_not_closing()?;
                let batches = seg.read(at, READ_CHUNK)?;
                if batches.is_empty() {
                    break;
                }
                for batch in &batches {
                    mapped += batch.as_bytes().len() as u64;
                    for r in batch.records() {
                        if r.offset() < plan.first_dirty {
                            continue;
                        }
                        if let Some(key) = r.key() {
                            if !map.put(key, r.offset()) {
                                report.map_full = true;
                                // End the pass at this segment's base if the map got past one
                                // (as Kafka does): rewriting a segment only to copy its unmapped
                                // tail is wasted work. Otherwise, mid-segment.
                                map_end = if seg.base_offset() > plan.first_dirty {
                                    seg.base_offset()
                                } else {
                                    r.offset()
                                };
                                break 'segments;
                            }
                            if r.value().is_none() {
                                dirty_tombstones += 1;
                            }
                        }
                        map_end = r.offset() + 1;
                    }
                    at = batch.next_offset();
                }
                meter.at(mapped);
            }
            meter.end_part();
            map_end = map_end.max(next.min(plan.first_uncleanable));
        }
        if !report.map_full {
            map_end = plan.first_uncleanable.max(map_end);
        }
        report.keys_mapped = map.len() as u64;
        report.cleaned = true;

        // Rewrite every segment below `map_end`, a group at a time.
        // Segments wholly below the log start offset are left to retention.
        let start = self.start_offset.load(Ordering::Acquire);
        let sources: Vec<(usize, Arc<Segment>)> = segments
            .iter()
            .enumerate()
            .take(segments.len().saturating_sub(1))
            .filter(|(i, s)| s.base_offset() < map_end && segments[i + 1].base_offset() > start)
            .map(|(i, s)| (i, s.clone()))
            .collect();
        let mut cleaner = Cleaner {
            map: &map,
            map_end,
            first_dirty: plan.first_dirty,
            state,
            now_ms,
            report: &mut report,
            retained: Vec::new(),
            buf: Vec::new(),
            gap_max_timestamp: None,
            last_changed: false,
            compression: self.config().compression,
            producer_last_batches: self.writer.lock().producers.last_batch_bases(),
        };
        self.clean_sources(&mut cleaner, &segments, &sources, &mut meter)?;
        let horizon = now_ms
            .saturating_add(i64::try_from(policy.delete_retention.as_millis()).unwrap_or(i64::MAX));
        let mut next_state = state.clone();
        next_state.swap = None;
        next_state.finish_pass(now_ms, map_end, horizon, dirty_tombstones);
        next_state
            .write(&*self.fs, &self.dir)
            .inspect_err(|e| self.poison(e))?;
        *state = next_state;
        report.first_dirty_offset = state.first_dirty;
        meter.finish();
        Ok(report)
    }

    /// Rewrite `sources` (consecutive segments, with their list indexes) into as few cleaned
    /// segments as fit: a source joins the current output while the output so far plus the whole
    /// source (the worst case: nothing removed) stays within `segment_bytes`, the index limit
    /// and `u32` relative offsets. (Kafka groups by source sizes, so a first pass never merges
    /// full segments; grouping by output size merges as soon as compaction made room.)
    fn clean_sources(
        &self,
        cleaner: &mut Cleaner<'_>,
        segments: &[Arc<Segment>],
        sources: &[(usize, Arc<Segment>)],
        meter: &mut Meter<'_>,
    ) -> Result<()> {
        let cfg = self.config();
        let max_entries =
            u64::from(cfg.max_index_bytes) / crate::format::TIME_INDEX_ENTRY_LEN as u64;
        let fits = |bytes: u64, base: u64, end: u64| {
            bytes <= cfg.segment_bytes
                && bytes / u64::from(cfg.index_interval_bytes) + 2 <= max_entries
                && end - base <= crate::format::MAX_SEGMENT_RELATIVE
        };
        let end_of = |i: usize, seg: &Segment| {
            segments
                .get(i + 1)
                .map_or(seg.next_offset(), |n| n.base_offset())
        };
        let mut group: Vec<(usize, Arc<Segment>)> = Vec::new();
        let mut out: Option<Segment> = None;
        let mut changed = false;
        for (i, seg) in sources {
            if let (Some(o), Some((_, first))) = (&out, group.first()) {
                if !fits(
                    o.appended_size() + seg.size(),
                    first.base_offset(),
                    end_of(*i, seg),
                ) {
                    let o = out
                        .take()
                        .ok_or_else(|| Error::corrupt(&self.dir, 0, "no output"))?;
                    self.swap_in(cleaner, segments, std::mem::take(&mut group), o, changed)?;
                }
            }
            if out.is_none() {
                // Written whole, then trimmed and sealed: no preallocation.
                let seg_config = SegmentConfig {
                    preallocate_bytes: 0,
                    ..self.segment_config(&cfg)
                };
                out = Some(
                    Segment::create_with_suffix(
                        self.fs.clone(),
                        &self.dir,
                        seg.base_offset(),
                        seg_config,
                        CLEANED_SUFFIX,
                    )
                    .inspect_err(|_| self.discard_cleaned(seg.base_offset()))?,
                );
                changed = false;
            }
            if let Some(o) = &out {
                if let Err(e) = cleaner.copy_segment(self, seg, o, meter) {
                    drop(out);
                    self.discard_cleaned(
                        group
                            .first()
                            .map_or(seg.base_offset(), |g| g.1.base_offset()),
                    );
                    return Err(e);
                }
                changed |= cleaner.last_changed;
            }
            cleaner.report.segments_read += 1;
            group.push((*i, seg.clone()));
        }
        if let Some(o) = out {
            self.swap_in(cleaner, segments, group, o, changed)?;
        }
        Ok(())
    }

    /// Seal the cleaned output of `group` and swap it in for the group's segments.
    fn swap_in(
        &self,
        cleaner: &mut Cleaner<'_>,
        segments: &[Arc<Segment>],
        group: Vec<(usize, Arc<Segment>)>,
        out: Segment,
        changed: bool,
    ) -> Result<()> {
        let (first_index, first) = match group.first() {
            Some((i, s)) => (*i, s.clone()),
            None => return Ok(()),
        };
        let last_index = group.last().map_or(first_index, |(i, _)| *i);
        let base = first.base_offset();
        let end = segments
            .get(last_index + 1)
            .map_or(first.next_offset(), |n| n.base_offset());
        if let Err(e) = cleaner.end_at(&out, end).and_then(|()| out.seal()) {
            drop(out);
            self.discard_cleaned(base);
            return Err(e);
        }
        if !changed && group.len() == 1 {
            // Nothing to remove and nothing to merge: keep the original.
            drop(out);
            self.discard_cleaned(base);
            return Ok(());
        }
        cleaner.report.bytes_written += out.appended_size();
        drop(out);

        // Before the commit point: failures leave the original segments in charge.
        let prepared = (|| {
            let mut next = cleaner.state.clone();
            next.swap = Some((base, end));
            next.write(&*self.fs, &self.dir)?;
            *cleaner.state = next;
            for (_, seg) in &group {
                // Readers holding the old segments must never need their files again.
                seg.load_indexes()?;
            }
            for kind in [1usize, 2, 0] {
                let from = cleaned_path(&self.dir, base, kind, CLEANED_SUFFIX);
                let to = cleaned_path(&self.dir, base, kind, SWAP_SUFFIX);
                rename_if_exists(&*self.fs, &from, &to, kind == 0)?;
            }
            self.fs.sync_dir(&self.dir).at(&self.dir)
        })();
        if let Err(e) = prepared {
            self.discard_cleaned(base);
            return Err(e);
        }

        // Committed: from here a failure poisons the partition and the next open finishes.
        let swapped = (|| {
            for (_, seg) in &group {
                seg.delete()?;
            }
            self.fs.sync_dir(&self.dir).at(&self.dir)?;
            for kind in [0usize, 1, 2] {
                let from = cleaned_path(&self.dir, base, kind, SWAP_SUFFIX);
                let to = cleaned_path(&self.dir, base, kind, "");
                rename_if_exists(&*self.fs, &from, &to, kind == 0)?;
            }
            self.fs.sync_dir(&self.dir).at(&self.dir)?;
            let config = self.segment_config(&self.config());
            Segment::open_sealed_with(self.fs.clone(), &self.dir, base, end, config)
        })();
        let cleaned = match swapped {
            Ok(s) => Arc::new(s),
            Err(e) => {
                self.poison(&e);
                return Err(e);
            }
        };
        let mut list = self.segments.write();
        let mut next = list.as_ref().clone();
        let at = next
            .iter()
            .position(|s| Arc::ptr_eq(s, &first))
            .ok_or_else(|| Error::corrupt(&self.dir, base, "cleaned segment's source vanished"))?;
        next.splice(at..at + group.len(), [cleaned]);
        *list = Arc::new(next);
        drop(list);
        self.tail_layout_changed();
        cleaner.report.segments_written += 1;
        Ok(())
    }

    /// Best-effort removal of a cleaned segment that will not be swapped in (open removes any
    /// leftovers).
    fn discard_cleaned(&self, base: u64) {
        for suffix in [CLEANED_SUFFIX, SWAP_SUFFIX] {
            for kind in 0..3 {
                let _ = remove_if_exists(&*self.fs, &cleaned_path(&self.dir, base, kind, suffix));
            }
        }
    }

    fn check_not_closing(&self) -> Result<()> {
        if self.closing.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }
}

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 1 << 20;

/// State of one pass's rewrite.
struct Cleaner<'a> {
    map: &'a OffsetMap,
    map_end: u64,
    first_dirty: u64,
    state: &'a mut CleanerCheckpoint,
    now_ms: i64,
    report: &'a mut CompactionReport,
    retained: Vec<StoredRecord>,
    buf: Vec<u8>,
    /// The largest maximum timestamp of the batches dropped since the output's last batch: the
    /// timestamp of the empty batch that fills their offsets (`fill_to`).
    gap_max_timestamp: Option<i64>,
    /// Whether the last [`copy_segment`](Self::copy_segment) removed anything.
    last_changed: bool,
    /// The topic's `compression.type`: what a rewritten batch is compressed with.
    compression: CompressionType,
    /// Base offsets of each idempotent producer's last batch: kept, empty if nothing in it
    /// survives, so the producer's state can be rebuilt from the log (as Kafka's cleaner does).
    producer_last_batches: std::collections::HashSet<u64>,
}

impl Cleaner<'_> {
    /// Copy what survives of `seg` to `out`, noting in `last_changed` whether anything was removed.
    fn copy_segment(
        &mut self,
        inner: &Inner,
        seg: &Segment,
        out: &Segment,
        meter: &mut Meter<'_>,
    ) -> Result<()> {
        self.last_changed = false;
        let mut at = seg.base_offset();
        meter.part(seg.size());
        let mut read = 0u64;
        loop {
            inner.check_not_closing()?;
            let batches = seg.read(at, READ_CHUNK)?;
            if batches.is_empty() {
                break;
            }
            for batch in &batches {
                at = batch.next_offset();
                read += batch.as_bytes().len() as u64;
                self.report.bytes_read += batch.as_bytes().len() as u64;
                self.last_changed |= self.copy_batch(batch, out)?;
            }
            meter.at(read);
        }
        meter.end_part();
        Ok(())
    }

    fn copy_batch(&mut self, batch: &RecordBatch, out: &Segment) -> Result<bool> {
        let keeps_producer_state = batch.header().producer_id >= 0
            && self.producer_last_batches.contains(&batch.base_offset());
        if batch.record_count() == 0 {
            if keeps_producer_state {
                // A producer's last batch, emptied by an earlier pass: still needed.
                self.fill_to(out, batch.base_offset())?;
                out.append(batch.as_bytes(), self.now_ms)?;
                return Ok(false);
            }
            // An empty batch that filled a gap in an earlier pass: the output fills its own gaps
            // (see `fill_to`). Dropping it removes no record, so it changes nothing.
            self.note_dropped(batch.header());
            return Ok(false);
        }
        if batch.is_control() {
            // Transaction markers written by Kafka: kept as they are (topiclog does not track
            // transactions, so it cannot tell when Kafka would drop one).
            self.fill_to(out, batch.base_offset())?;
            out.append(batch.as_bytes(), self.now_ms)?;
            return Ok(false);
        }
        self.retained.clear();
        let mut removed = 0u64;
        for r in batch.records() {
            self.report.records_read += 1;
            if self.keep(&r) {
                self.retained.push(r);
            } else {
                removed += 1;
            }
        }
        self.report.records_removed += removed;
        if removed == 0 {
            self.fill_to(out, batch.base_offset())?;
            out.append(batch.as_bytes(), self.now_ms)?;
            return Ok(false);
        }
        if self.retained.is_empty() && !keeps_producer_state {
            self.note_dropped(batch.header());
        } else {
            self.fill_to(out, batch.base_offset())?;
            self.buf.clear();
            // Rewritten with the topic's codec (`producer`: the batch's own, as Kafka's cleaner).
            let own = Compression::from_attributes(batch.header().attributes)
                .map_err(|r| Error::corrupt(out.log_path(), 0, r))?;
            // (An empty batch kept for a producer is written uncompressed, as Kafka's are.)
            let codec = if self.retained.is_empty() {
                Compression::None
            } else {
                self.compression.codec_for(own)
            };
            encode_retained(&mut self.buf, batch.header(), &self.retained, codec)
                .map_err(crate::format::codec_error)?;
            out.append(&self.buf, self.now_ms)?;
        }
        Ok(true)
    }

    fn note_dropped(&mut self, h: &BatchHeader) {
        let ts = self
            .gap_max_timestamp
            .map_or(h.max_timestamp, |t| t.max(h.max_timestamp));
        self.gap_max_timestamp = Some(ts);
    }

    /// End `out` exactly at `end` (where the next segment begins): if its last batches went,
    /// fill their offsets. Recovery and reads take a segment that ends early for lost data, so a
    /// cleaned segment never does.
    fn end_at(&mut self, out: &Segment, end: u64) -> Result<()> {
        self.fill_to(out, end)
    }

    /// If batches were dropped between `out`'s end and `next`, append one empty batch (no
    /// records; Kafka's format allows them, and Kafka's own cleaner keeps some) spanning
    /// `[out's end, next)`. A cleaned log then has no gaps in its offsets: every batch starts
    /// where the one before it ends, which is how reads and recovery check base offsets (Kafka's
    /// CRC does not cover them). One such batch per run of dropped batches.
    fn fill_to(&mut self, out: &Segment, next: u64) -> Result<()> {
        let start = out.next_offset();
        if start >= next {
            return Ok(());
        }
        let ts = self.gap_max_timestamp.take().unwrap_or(0);
        let span = BatchHeader {
            base_offset: start,
            length: 0,
            partition_leader_epoch: 0,
            magic: crate::format::MAGIC,
            crc: 0,
            attributes: 0,
            last_offset_delta: u32::try_from(next - 1 - start)
                .ok()
                .filter(|&d| u64::from(d) <= crate::format::MAX_SEGMENT_RELATIVE)
                .ok_or_else(|| {
                    Error::corrupt(
                        out.log_path(),
                        0,
                        "cleaned segment spans more than int32 offsets",
                    )
                })?,
            base_timestamp: ts,
            max_timestamp: ts,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: 0,
        };
        self.buf.clear();
        encode_retained(&mut self.buf, &span, &[], Compression::None)
            .map_err(crate::format::codec_error)?;
        out.append(&self.buf, self.now_ms)
    }

    fn keep(&mut self, r: &StoredRecord) -> bool {
        if r.offset() >= self.map_end {
            return true; // not cleaned by this pass
        }
        let Some(key) = r.key() else {
            self.report.keyless_removed += 1;
            return false;
        };
        if self.map.get(key).is_some_and(|latest| r.offset() < latest) {
            return false;
        }
        if r.value().is_none() && r.offset() < self.first_dirty {
            // A tombstone seen by an earlier pass: gone once its horizon passed.
            if self
                .state
                .horizon_of(r.offset())
                .is_some_and(|h| h <= self.now_ms)
            {
                self.report.tombstones_removed += 1;
                return false;
            }
        }
        true
    }
}

/// When the oldest dirty data was written: the first dirty segment's first batch's maximum
/// timestamp, capped by the segment's last append (so a future timestamp cannot hide it).
fn oldest_dirty_ms(segments: &[Arc<Segment>], first_dirty: u64) -> Option<i64> {
    let i = segments
        .partition_point(|s| s.base_offset() <= first_dirty)
        .saturating_sub(1);
    let seg = segments.get(i)?;
    let first = seg
        .read(first_dirty.max(seg.base_offset()), 1)
        .ok()?
        .first()
        .map(|b| b.max_timestamp());
    match (first, seg.last_modified_ms()) {
        (Some(t), Some(m)) => Some(t.min(m)),
        (t, m) => t.or(m),
    }
}

/// `<base>.log|.index|.timeindex` (kind 0, 1, 2) with `suffix`.
fn cleaned_path(dir: &Path, base: u64, kind: usize, suffix: &str) -> std::path::PathBuf {
    use crate::format::{segment_file_name, SegmentFileKind};
    let kind = match kind {
        0 => SegmentFileKind::Log,
        1 => SegmentFileKind::OffsetIndex,
        _ => SegmentFileKind::TimeIndex,
    };
    suffixed(segment_file_name(dir, base, kind), suffix)
}

/// Rename `from` to `to`; a missing index file is fine (indexes are rebuilt), a missing log is not.
fn rename_if_exists(fs: &dyn FileSystem, from: &Path, to: &Path, required: bool) -> Result<()> {
    match fs.rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(()),
        Err(e) => Err(Error::io(from, e)),
    }
}

/// Finish the committed compaction swap of the cleaned segment at `base` (open calls this when it
/// finds `<base>.log.swap`; see the module docs): delete `replaced`, the files of the segments it
/// replaces, then rename its `.swap` files into place, the `.log` first. The caller syncs the
/// directory.
pub(crate) fn finish_swap(
    fs: &dyn FileSystem,
    dir: &Path,
    base: u64,
    replaced: &[String],
) -> Result<()> {
    for name in replaced {
        remove_if_exists(fs, &dir.join(name))?;
    }
    fs.sync_dir(dir).at(dir)?;
    for kind in [0usize, 1, 2] {
        let from = cleaned_path(dir, base, kind, SWAP_SUFFIX);
        let to = cleaned_path(dir, base, kind, "");
        rename_if_exists(fs, &from, &to, kind == 0)?;
    }
    Ok(())
}

/// Key → latest offset, keyed by a 128-bit hash of the key, with a fixed capacity derived from a
/// memory budget (the table is allocated once and never grows).
struct OffsetMap {
    hasher: RandomState,
    map: HashMap<(u64, u64), u64, BuildHasherDefault<FastHasher>>,
    capacity: usize,
}

impl OffsetMap {
    fn with_budget(budget: usize) -> OffsetMap {
        // A hashbrown table of `buckets` slots costs about `buckets * (16 + 8 + 1)` bytes and holds
        // `buckets * 7 / 8` entries; use the largest power of two that fits the budget. The table
        // grows only when full, so holding at most `capacity` entries it never exceeds that.
        let per_bucket = std::mem::size_of::<((u64, u64), u64)>() + 1;
        let mut buckets = 8usize;
        while buckets * 2 * per_bucket <= budget {
            buckets *= 2;
        }
        let capacity = buckets / 8 * 7;
        OffsetMap {
            hasher: RandomState::new(),
            // Grown as keys arrive (never past `capacity`, so never past the budget): a pass over
            // few keys stays small and cache-friendly.
            map: HashMap::with_capacity_and_hasher(capacity.min(1 << 12), Default::default()),
            capacity,
        }
    }

    fn hash(&self, key: &[u8]) -> (u64, u64) {
        (
            self.hasher.hash_one((0u8, key)),
            self.hasher.hash_one((1u8, key)),
        )
    }

    /// Record `offset` as the latest for `key`; `false` (changing nothing) if the key is new and
    /// the map is full.
    fn put(&mut self, key: &[u8], offset: u64) -> bool {
        let h = self.hash(key);
        if let Some(v) = self.map.get_mut(&h) {
            *v = offset;
            return true;
        }
        if self.map.len() >= self.capacity {
            return false;
        }
        self.map.insert(h, offset);
        true
    }

    fn get(&self, key: &[u8]) -> Option<u64> {
        self.map.get(&self.hash(key)).copied()
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_map_respects_its_budget() {
        let mut m = OffsetMap::with_budget(MIN_MAP_BUDGET_BYTES);
        let cap = m.capacity;
        assert!(cap >= 100, "{cap}");
        assert!(cap * 25 <= MIN_MAP_BUDGET_BYTES);
        for i in 0..cap as u64 {
            assert!(m.put(&i.to_le_bytes(), i));
        }
        assert!(!m.put(b"one more", 1));
        // Updating a known key always works.
        assert!(m.put(&0u64.to_le_bytes(), 99));
        assert_eq!(m.get(&0u64.to_le_bytes()), Some(99));
        assert_eq!(m.get(b"one more"), None);
        assert_eq!(m.len(), cap);
        let default = OffsetMap::with_budget(32 << 20);
        assert!(default.capacity > 900_000, "{}", default.capacity);
    }

    #[test]
    fn policy_validation() {
        assert!(CompactionPolicy::default().validate().is_ok());
        for bad in [
            CompactionPolicy {
                min_cleanable_dirty_ratio: 1.5,
                ..CompactionPolicy::default()
            },
            CompactionPolicy {
                min_cleanable_dirty_ratio: f64::NAN,
                ..CompactionPolicy::default()
            },
            CompactionPolicy {
                map_budget_bytes: 100,
                ..CompactionPolicy::default()
            },
            CompactionPolicy {
                min_compaction_lag: Duration::from_secs(10),
                max_compaction_lag: Deadline::After(Duration::from_secs(1)),
                ..CompactionPolicy::default()
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::InvalidConfig { .. })));
        }
    }
}
