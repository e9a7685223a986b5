//! Retention: deleting whole old segments and moving the log start offset.
//!
//! Crash safety: the new log start offset is made durable (checkpoint) before any file goes, so
//! a crash mid-pass leaves segments that are either whole or gone, and the next open deletes any
//! whole segment that lies entirely below the start offset; an index file whose `.log` is gone is
//! removed as an orphan.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Limit, Retention};
use crate::error::{Error, IoContext, Result};

use super::{stats, Inner, Partition};

/// How long and how much a retention pass keeps, whole segments at a time, oldest first:
/// the argument of [`Partition::apply_retention`], usually a log's
/// [`LogConfig::retention_policy`](crate::LogConfig::retention_policy). The default keeps
/// everything (only segments below the log start offset go).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete segments whose data is older than this. A segment's age counts from the *older* of
    /// its largest record timestamp and its last append (wall clock), so a record with a
    /// far-future timestamp cannot keep a segment forever. Default
    /// [`Retention::Forever`]. Kafka: `retention.ms`.
    pub retention: Retention,
    /// Delete the oldest segments while the rest still hold at least this many bytes. Default
    /// [`Limit::Unlimited`]. Kafka: `retention.bytes`.
    pub retention_bytes: Limit,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            retention: Retention::Forever,
            retention_bytes: Limit::Unlimited,
        }
    }
}

/// What a retention pass did.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes of `.log` deleted.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub start_offset: u64,
}

impl Partition {
    /// Logically delete every record below `before` (Kafka's `deleteRecords`): the log start
    /// offset moves there at once and durably, reads below it fail with
    /// [`Error::OffsetOutOfRange`], and whole segments below it are deleted by the next
    /// [`apply_retention`](Self::apply_retention). Returns the new start offset (unchanged if
    /// `before` is not above it).
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] if `before` is past the end offset; [`Error::Poisoned`] /
    /// [`Error::Closed`]; [`Error::Io`] if the checkpoint cannot be written (the partition is then
    /// poisoned).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Partition, Record, Error};
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?;
    /// log.append_batch(&[Record::new("a"), Record::new("b"), Record::new("c")])?;
    /// assert_eq!(log.delete_records(2)?, 2);
    /// assert!(matches!(log.read(1, 100), Err(Error::OffsetOutOfRange { start: 2, .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_records(&self, before: u64) -> Result<u64> {
        let inner = &*self.inner;
        // The cleaner lock keeps truncation, in-place recovery, retention and compaction out (so
        // the end offset cannot move down under the check below, nor the start offset move
        // meanwhile); appenders go on while the checkpoint is written and synced.
        let _cleaner = inner.cleaner.lock();
        inner.check_writable()?;
        let end = inner.visible_end.load(Ordering::SeqCst);
        let start = inner.start_offset.load(Ordering::Acquire);
        if before > end {
            return Err(Error::OffsetOutOfRange {
                requested: before,
                start,
                end,
            });
        }
        if before <= start {
            return Ok(start);
        }
        inner
            .set_start_offset(before)
            .inspect_err(|e| inner.poison(e))?;
        Ok(before)
    }

    /// Delete whole segments that `policy` or the log start offset no longer keeps, oldest first,
    /// stopping at the first segment that must stay. If every segment goes, a new empty active
    /// segment is rolled first, so the end offset (and the next append's offset) is preserved.
    ///
    /// Readers holding a deleted segment keep reading it until they let go; reads below the new
    /// start offset fail with [`Error::OffsetOutOfRange`].
    ///
    /// # Errors
    /// [`Error::Poisoned`] / [`Error::Closed`]; [`Error::Io`] (the partition is then poisoned;
    /// what is on disk stays consistent).
    pub fn apply_retention(
        &self,
        now_ms: i64,
        policy: &RetentionPolicy,
    ) -> Result<RetentionReport> {
        let inner = &*self.inner;
        // The cleaner lock keeps compaction and truncation out; appenders go on: the append lock
        // is taken only to roll, when every segment goes.
        let _cleaner = inner.cleaner.lock();
        inner.check_writable()?;
        let _span = crate::trace::span!("retention", dir = %inner.dir.display());
        let report = inner
            .retention_locked(now_ms, policy)
            .inspect_err(|e| inner.poison(e))?;
        let c = &inner.counters;
        stats::add(&c.retention_passes, 1);
        stats::add(&c.retention_bytes_deleted, report.bytes_deleted);
        c.last_retention_ms.store(now_ms, Ordering::Relaxed);
        if report.segments_deleted > 0 {
            crate::trace::event!(
                info,
                dir = %inner.dir.display(),
                segments_deleted = report.segments_deleted,
                bytes_deleted = report.bytes_deleted,
                start_offset = report.start_offset,
                "retention pass"
            );
        }
        Ok(report)
    }
}

impl Inner {
    /// A retention pass; the caller holds the cleaner lock. No lock appenders need is held across
    /// its I/O (the checkpoint write, the deletions, the directory sync).
    fn retention_locked(&self, now_ms: i64, policy: &RetentionPolicy) -> Result<RetentionReport> {
        let segments = self.segments.read().clone();
        let start = self.start_offset.load(Ordering::Acquire);
        let end = self.end_offset.load(Ordering::SeqCst);
        let mut remaining: u64 = segments.iter().map(|s| s.appended_size()).sum();
        let active_size = segments.last().map_or(0, |s| s.appended_size());
        let mut doomed = 0usize; // segments from the front that go
        for (i, seg) in segments.iter().enumerate() {
            let is_active = i + 1 == segments.len();
            if seg.is_empty() && is_active {
                break;
            }
            let next = segments.get(i + 1).map_or(end, |n| n.base_offset());
            let below_start = next <= start;
            let by_time = match policy.retention {
                // An empty sealed segment (all its records compacted away) holds nothing to keep.
                Retention::After(_) if seg.is_empty() => true,
                Retention::After(r) => expired(seg, now_ms, r)?,
                Retention::Forever => false,
            };
            let by_size = policy
                .retention_bytes
                .bytes()
                .is_some_and(|max| remaining.saturating_sub(seg.appended_size()) >= max);
            if !(below_start || by_time || by_size) {
                break;
            }
            doomed += 1;
            remaining -= seg.appended_size();
        }
        let mut report = RetentionReport {
            start_offset: start,
            ..RetentionReport::default()
        };
        if doomed == 0 {
            return Ok(report);
        }
        if doomed == segments.len() {
            // Every segment goes, the active one too: roll first, so the end offset stays and the
            // next append continues where the log ended. Unless appends reached the active
            // segment since it was judged: then it holds records the verdict did not see, and
            // stays for the next pass.
            let mut w = self.writer.lock();
            self.check_writable()?;
            let judged = segments.last().filter(|s| Arc::ptr_eq(s, &w.active));
            if judged.is_some_and(|s| s.appended_size() == active_size) {
                self.roll(&mut w)?;
            } else {
                doomed -= 1;
                if doomed == 0 {
                    return Ok(report);
                }
            }
        }
        let segments = self.segments.read().clone();
        let (gone, kept) = segments.split_at(doomed);
        let Some(first_kept) = kept.first() else {
            return Err(Error::corrupt(
                &self.dir,
                0,
                "retention would leave no segment",
            ));
        };
        let end = self.end_offset.load(Ordering::SeqCst);
        let new_start = first_kept.base_offset().min(end).max(start);
        // Durable before any file goes: a crash mid-pass then deletes the rest on open.
        self.set_start_offset(new_start)?;
        {
            // Appends may have rolled meanwhile (they add at the end); only this pass removes
            // from the front (the cleaner lock keeps compaction and truncation out).
            let mut list = self.segments.write();
            let mut next = list.as_ref().clone();
            next.drain(..doomed);
            *list = Arc::new(next);
        }
        // Deleted segments need no sync.
        let first_kept = first_kept.base_offset();
        self.unsynced_sealed
            .lock()
            .retain(|s| s.base_offset() >= first_kept);
        for seg in gone {
            report.bytes_deleted += seg.appended_size();
            seg.delete()?;
            report.segments_deleted += 1;
        }
        self.tail_layout_changed();
        self.fs.sync_dir(&self.dir).at(&self.dir)?;
        report.start_offset = new_start;
        Ok(report)
    }

    /// Move the log start offset to `start`, durably (checkpoint first, then readers see it).
    pub(super) fn set_start_offset(&self, start: u64) -> Result<()> {
        self.update_checkpoint(|cp| cp.log_start_offset = start)?;
        self.start_offset.store(start, Ordering::Release);
        if let Some(t) = &self.tail_page {
            t.set_start(start);
        }
        Ok(())
    }
}

/// Whether a segment is past `retention` at `now_ms`: its age counts from the older of its largest
/// record timestamp and its last append (so future timestamps cannot pin it).
fn expired(seg: &crate::segment::Segment, now_ms: i64, retention: Duration) -> Result<bool> {
    let newest_record = seg.max_timestamp()?;
    let last_append = seg.last_modified_ms();
    let age_from = match (newest_record, last_append) {
        (Some(t), Some(m)) => t.min(m),
        (Some(t), None) => t,
        (None, Some(m)) => m,
        (None, None) => return Ok(false),
    };
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    Ok(age_from < now_ms.saturating_sub(retention_ms))
}
