//! Opening a partition, as a pipeline of small steps, each testable alone:
//!
//! 1. [`DirListing::read`] and [`Metadata::read`]: what the directory holds (segments, index,
//!    temporary, compaction and metadata files; the checkpoint, clean-shutdown marker and cleaner
//!    checkpoint as found). Changes nothing.
//! 2. [`RecoveryPlan::decide`]: which checkpoint to trust, whether the clean close can be trusted,
//!    which segments to open as they are and which to rescan, what to delete and what to finish.
//!    Pure: no I/O. Refusals (damage under `Recovery::Strict`, an unknown log start) happen here,
//!    before anything on disk changes.
//! 3. [`RecoveryPlan::apply`]: does the I/O (tidying, loading or rescanning segments, writing the
//!    checkpoint, rebuilding the producer state) and hands back the [`Recovered`] state and its
//!    [`RecoveryReport`](super::RecoveryReport).
//!
//! [`recover_dir`] runs the three for [`Partition::open_with_env`], which installs the result in a new
//! partition, and for [`Partition::recover`], which installs it in place of a poisoned one's state.

mod apply;
mod listing;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, IoContext, Result};
use crate::fs::{create_dir_all_durable, FdReservation, FileSystem};
use crate::segment::Segment;

use super::checkpoint::{Checkpoint, TrustedEnd};
use super::cleaner_checkpoint::CleanerCheckpoint;
use super::producer_state::ProducerTable;
use crate::clock::Clock;
use crate::config::LogConfig;
use crate::env::Env;
use crate::progress::{Observer, Progress};

use super::{Inner, Partition, RecoveryReport, SyncState, Writer, LOCK_FILE};

pub(crate) use listing::holds_data;
use listing::{DirListing, Metadata};
use plan::RecoveryPlan;

/// What a partition directory holds, recovered and ready to serve: what an open installs in a new
/// partition, and an in-place recovery in a poisoned one.
struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub active: Arc<Segment>,
    pub end: u64,
    pub start: u64,
    pub cleaner: CleanerCheckpoint,
    pub checkpoint: Checkpoint,
    /// The idempotent producers' state, if any ever wrote here.
    pub producers: Option<ProducerTable>,
    pub report: RecoveryReport,
    /// See `SegmentConfig::offset_gaps_below`.
    pub offset_gaps_below: u64,
    /// See `SegmentConfig::kafka_epochs_below`.
    pub kafka_epochs_below: u64,
}

/// Recover the partition in `dir` (whose lock the caller holds): list it, decide, apply,
/// reporting a rescan's progress to `observer`.
fn recover_dir(
    fs: &Arc<dyn FileSystem>,
    clock: &dyn Clock,
    dir: &Path,
    config: &LogConfig,
    never_opened: bool,
    observer: Option<&Observer>,
) -> Result<Recovered> {
    let _span = crate::trace::span!("open", dir = %dir.display());
    let listing = DirListing::read(&**fs, dir)?;
    let metadata = Metadata::read(&**fs, &listing, never_opened)?;
    let compacted = config.cleanup_policy.compacts();
    let plan = RecoveryPlan::decide(&listing, &metadata, config.recovery, compacted)?;
    let recovered = plan.apply(fs, clock, config, observer)?;
    trace_recovery(dir, &recovered);
    Ok(recovered)
}

impl Inner {
    /// At open, the `.trusted_end` marker a poisoned run left: cut every record at or past
    /// `trusted` (their append or their fsync failed, whatever the disk holds of them), exactly
    /// as an in-place recovery does, report the cut as [`RecoveryReport::offsets_dropped`], then
    /// remove the marker.
    fn cut_past_trusted_end(&self, trusted: u64) -> Result<()> {
        let mut cleaner = self.cleaner.lock();
        let mut w = self.writer.lock();
        let end = self.end_offset.load(Ordering::SeqCst);
        let start = self.start_offset.load(Ordering::Acquire);
        if end > trusted {
            let new_end = self
                .truncate_locked(&mut w, &mut cleaner, trusted.max(start))
                .inspect_err(|e| self.poison(e))?;
            self.report.lock().offsets_dropped = end.saturating_sub(new_end);
        }
        self.forget_trusted_end().inspect_err(|e| self.poison(e))
    }

    /// Remove the `.trusted_end` marker once what lay past it is cut, and stop trusting less.
    fn forget_trusted_end(&self) -> Result<()> {
        let mut written = self.trusted_marker.lock();
        TrustedEnd::remove(&*self.fs, &self.dir)?;
        *written = u64::MAX;
        self.trusted_end.store(u64::MAX, Ordering::SeqCst);
        Ok(())
    }
}

/// The `tracing` event of an open: `warn` when recovery cut or dropped anything, else `debug`.
#[cfg(feature = "tracing")]
fn trace_recovery(dir: &Path, r: &Recovered) {
    let report = &r.report;
    let cut = report.bytes_truncated > 0 || report.segments_deleted > 0 || report.corruption_cut;
    macro_rules! opened {
        ($level:ident, $message:literal) => {
            tracing::$level!(
                target: "topiclog",
                dir = %dir.display(),
                clean_shutdown = report.clean_shutdown,
                segments_scanned = report.segments_scanned,
                bytes_scanned = report.bytes_scanned,
                bytes_truncated = report.bytes_truncated,
                segments_deleted = report.segments_deleted,
                corruption_cut = report.corruption_cut,
                checkpoint_damaged = report.checkpoint_damaged,
                producer_state_rebuilt = report.producer_state_rebuilt,
                start_offset = r.start,
                end_offset = r.end,
                $message
            )
        };
    }
    if cut {
        opened!(warn, "partition recovered with a cut");
    } else {
        opened!(debug, "partition opened");
    }
}

#[cfg(not(feature = "tracing"))]
fn trace_recovery(_: &Path, _: &Recovered) {}

impl Partition {
    /// Open the partition directory `dir` to read only, beside its writer (or none): the same
    /// as [`ReadOnlyPartition::open`](crate::ReadOnlyPartition::open). It takes no lock and
    /// writes nothing.
    ///
    /// # Errors
    /// As [`ReadOnlyPartition::open`](crate::ReadOnlyPartition::open).
    #[cfg(unix)]
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<crate::ReadOnlyPartition> {
        crate::ReadOnlyPartition::open(dir)
    }

    /// Open (or create) the partition in `dir` with the default [`LogConfig`], on the real file
    /// system with the system clock.
    ///
    /// # Errors
    /// As [`open_with_env`](Self::open_with_env).
    pub fn open(dir: impl AsRef<Path>) -> Result<Partition> {
        Partition::open_with_env(dir, LogConfig::default(), Env::default())
    }

    /// Open (or create) the partition in `dir` with `config`, on the real file system with the
    /// system clock.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Durability, LogConfig, Partition, Record};
    /// let dir = tempfile::tempdir()?;
    /// let config = LogConfig { durability: Durability::None, ..LogConfig::default() };
    /// let log = Partition::open_with(dir.path(), config)?;
    /// assert_eq!(log.append(Record::new("a"))?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`open_with_env`](Self::open_with_env).
    pub fn open_with(dir: impl AsRef<Path>, config: LogConfig) -> Result<Partition> {
        Partition::open_with_env(dir, config, Env::default())
    }

    /// Open (or create) the partition in `dir` with `config`, its files on `env.fs` and its time
    /// from `env.clock` (see [`Env`] for an example).
    ///
    /// After a clean [`close`](Self::close) this trusts the files once they match what the close
    /// recorded, reading only the active segment's tail. Otherwise it rescans what was written
    /// since the recovery point (the segment holding it from its last index entry made durable
    /// with it), verifying each batch's CRC, cuts a torn tail, rebuilds indexes and syncs the
    /// result; see [`recovery_report`](Self::recovery_report).
    ///
    /// Open never loses data because a file is damaged: it cuts only a torn tail of batches that
    /// were not yet durable, and reports anything else (under
    /// [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt) it cuts at the damage and
    /// says so in the report).
    ///
    /// # Errors
    /// - [`Error::AlreadyOpen`] if another handle or process has the directory open;
    /// - [`Error::InvalidConfig`] for a bad config;
    /// - [`Error::Corrupt`] for damage to data that was durable (under
    ///   [`Recovery::Strict`](crate::Recovery::Strict)): a damaged batch below the recovery point,
    ///   a segment that ends before the next begins or before the recovery point, missing
    ///   segments, a `.log` that is not in topiclog's format (left untouched), and a missing or
    ///   damaged `checkpoint` in a partition that holds data (its log start offset would be
    ///   unknown) unless a clean close's marker vouches for it;
    /// - [`Error::Io`] on I/O failure.
    pub fn open_with_env(dir: impl AsRef<Path>, config: LogConfig, env: Env) -> Result<Partition> {
        Partition::open_observed(dir.as_ref(), config, env, None)
    }

    /// [`open_with_env`](Self::open_with_env), reporting to `progress` the rescan of this open
    /// if it follows an unclean stop, and later in-place [`recover`](Self::recover)ies and
    /// [`compact`](Self::compact)ion passes of the partition (see [`Progress`]). Events name no
    /// topic or partition number; tell partitions apart by [`dir`](crate::ProgressEvent::dir).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use topiclog::{Env, LogConfig, Partition, ProgressEvent, ProgressStage};
    /// let dir = tempfile::tempdir()?;
    /// let bar = Arc::new(|e: &ProgressEvent<'_>| {
    ///     if e.stage == ProgressStage::Finished {
    ///         eprintln!("{:?} of {}: {} bytes", e.operation, e.dir.display(), e.done_bytes);
    ///     }
    /// });
    /// let (config, env) = (LogConfig::default(), Env::default());
    /// let log = Partition::open_with_progress(dir.path(), config, env, bar)?;
    /// assert_eq!(log.end_offset(), 0); // a new partition: nothing to rescan, nothing reported
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`open_with_env`](Self::open_with_env).
    pub fn open_with_progress(
        dir: impl AsRef<Path>,
        config: LogConfig,
        env: Env,
        progress: Arc<dyn Progress>,
    ) -> Result<Partition> {
        let observer = Observer::new(progress, None, None);
        Partition::open_observed(dir.as_ref(), config, env, Some(observer))
    }

    /// [`open_with_env`](Self::open_with_env) for `observer` (a store names its partitions).
    pub(crate) fn open_observed(
        dir: &Path,
        config: LogConfig,
        env: Env,
        observer: Option<Observer>,
    ) -> Result<Partition> {
        config.validate()?;
        let dir = dir.to_owned();
        let Env { fs, clock } = env;
        create_dir_all_durable(&*fs, &dir).at(&dir)?;
        // Before anything is read: a second writer must not even run recovery.
        let lock_path = dir.join(LOCK_FILE);
        // No lock file: topiclog never opened the directory (segments in it were written by
        // someone else, a Kafka broker, and are adopted).
        let never_opened = !fs.exists(&lock_path).at(&lock_path)?;
        // Before opening them: the lock and the active segment's file, held until it closes.
        let fds = FdReservation::new(2);
        let lock = match fs.try_lock(&lock_path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let holder = crate::fs::LockHolder::of(&e);
                return Err(Error::AlreadyOpen { path: dir, holder });
            }
            Err(e) => return Err(Error::io(lock_path, e)),
        };
        // Readers in other processes wait while recovery may cut files below the end they saw.
        let tail_path = dir.join(crate::tail::TAIL_FILE);
        let tail_page = fs
            .map_shared_page(&tail_path)
            .at(&tail_path)?
            .map(crate::tail::TailWriter::new);
        if let Some(t) = &tail_page {
            t.begin_change();
        }
        let r = recover_dir(&fs, &*clock, &dir, &config, never_opened, observer.as_ref())?;
        // A poisoned run left what it could vouch for: cut the rest below, as `recover` would.
        let trusted = TrustedEnd::read(&*fs, &dir)?.map(|m| m.end_offset);
        let now = clock.now_ms();
        let (end, start) = (r.end, r.start);
        let partition = Partition {
            inner: Arc::new(Inner {
                dir,
                fs,
                clock,
                segments: RwLock::new(Arc::new(r.segments)),
                producers_init: Mutex::new(()),
                producers_tracked: AtomicBool::new(r.producers.is_some()),
                recoveries: AtomicU64::new(0),
                writer: Mutex::new(Writer {
                    active: r.active,
                    tracks_producers: r.producers.is_some(),
                    producers: r.producers.unwrap_or_default(),
                    snapshot_wanted: false,
                }),
                end_offset: AtomicU64::new(end),
                visible_end: AtomicU64::new(end),
                pending: Mutex::new(BTreeMap::new()),
                unsynced_sealed: Mutex::new(Vec::new()),
                start_offset: AtomicU64::new(start),
                cleaner: Mutex::new(r.cleaner),
                dir_unsynced: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                lock: Mutex::new(Some(lock)),
                poisoned: AtomicBool::new(false),
                poison_cause: Mutex::new(None),
                trusted_end: AtomicU64::new(trusted.unwrap_or(u64::MAX)),
                trusted_marker: Mutex::new(trusted.unwrap_or(u64::MAX)),
                tail_page,
                sync: Mutex::new(SyncState {
                    synced: end,
                    leader: false,
                    generation: 0,
                    rounds: 0,
                    last_round_appends: 0,
                    last_sync_time: std::time::Duration::ZERO,
                }),
                sync_done: Condvar::new(),
                last_sync_ms: AtomicI64::new(now),
                synced_hint: AtomicU64::new(end),
                checkpoint: Mutex::new(r.checkpoint),
                tail: crate::wait::Event::new(),
                pending_snapshot: Mutex::new(None),
                watchers: Mutex::new(Vec::new()),
                watcher_count: AtomicUsize::new(0),
                last_expiry_ms: AtomicI64::new(now),
                last_recovery_point_ms: AtomicI64::new(now),
                truncations: AtomicU64::new(0),
                durable_appends: AtomicUsize::new(0),
                counters: Default::default(),
                _fds: fds,
                report: Mutex::new(r.report),
                observer,
                offset_gaps_below: r.offset_gaps_below,
                kafka_epochs_below: r.kafka_epochs_below,
                config: RwLock::new(Arc::new(config)),
            }),
        };
        if let Some(trusted) = trusted {
            partition.inner.cut_past_trusted_end(trusted)?;
        }
        if let Some(t) = &partition.inner.tail_page {
            // After any cut: readers see the log as this writer serves it.
            t.opened(
                crate::tail::new_session(),
                partition.start_offset(),
                partition.end_offset(),
            );
        }
        Ok(partition)
    }

    /// Bring a poisoned partition back without reopening it, once the cause is gone (space was
    /// freed, the device answers again): every handle to it keeps working, so producers and
    /// consumers resume by themselves.
    ///
    /// It re-runs recovery from what is on disk, exactly as an open after a crash would (torn
    /// tails cut, interrupted compaction swaps and retention passes finished, indexes and producer
    /// state rebuilt), keeping every acknowledged record. If an fsync had failed, the records
    /// written after the last fsync that succeeded are dropped too: the kernel may have
    /// discarded their pages, so what the disk holds of them is unknown (none was acknowledged
    /// as durable; under `Durability::None` they were acknowledged as written only, as after a
    /// power loss). The returned report says what was cut ([`RecoveryReport::offsets_dropped`]).
    /// A record whose append failed is never in the log afterwards, so retrying it stores it once.
    ///
    /// A partition that is not poisoned is left as it is (its last report comes back).
    ///
    /// # Errors
    /// [`Error::Closed`]; whatever recovery meets ([`Error::Io`] if the disk still fails, for
    /// instance still full: the partition then stays poisoned and the call can be repeated;
    /// [`Error::Corrupt`] for damage).
    pub fn recover(&self) -> Result<RecoveryReport> {
        let inner = &*self.inner;
        let mut cleaner = inner.cleaner.lock();
        let mut w = inner.writer.lock();
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: inner.dir.clone(),
            });
        }
        if !inner.poisoned.load(Ordering::Acquire) {
            return Ok(*inner.report.lock());
        }
        // The marker on disk may hold less than memory does now (a failure while a recovery
        // cut raised the in-memory value again): the lower one wins.
        let trusted = inner
            .trusted_end
            .load(Ordering::SeqCst)
            .min(*inner.trusted_marker.lock());
        let config = inner.config();
        inner.tail_begin_change();
        // Recovery may cut a torn tail in place (a failed fsync may have dropped unsynced pages,
        // leaving zeros): never in a file that readers of the old segments may still read through
        // a map. Each mapped segment it rescans (from the recovery point) gets a fresh copy first.
        let recovery_point = inner.checkpoint.lock().recovery_point;
        for seg in inner.segments.read().iter() {
            if seg.is_mapped() && seg.next_offset() > recovery_point {
                seg.detach_from_maps()
                    .inspect_err(|_| inner.tail_end_change())?;
            }
        }
        // The old segments stay with readers that hold them (their files are reopened, never
        // shrunk in place under a map).
        let r = recover_dir(
            &inner.fs,
            &*inner.clock,
            &inner.dir,
            &config,
            false,
            inner.observer.as_ref(),
        )
        .inspect_err(|_| inner.tail_end_change())?;
        let (end, start) = (r.end, r.start);
        let mut report = r.report;
        *inner.segments.write() = Arc::new(r.segments);
        w.active = r.active;
        w.tracks_producers = r.producers.is_some();
        inner
            .producers_tracked
            .store(w.tracks_producers, Ordering::Release);
        inner.recoveries.fetch_add(1, Ordering::SeqCst);
        w.producers = r.producers.unwrap_or_default();
        w.snapshot_wanted = false;
        inner.unsynced_sealed.lock().clear();
        inner.pending.lock().clear();
        *inner.pending_snapshot.lock() = None;
        inner.dir_unsynced.store(false, Ordering::SeqCst);
        inner.end_offset.store(end, Ordering::SeqCst);
        inner.start_offset.store(start, Ordering::Release);
        *cleaner = r.cleaner;
        *inner.checkpoint.lock() = r.checkpoint;
        {
            let mut st = inner.sync.lock();
            st.synced = end;
            st.leader = false;
            // A sync still in flight on the old files must not vouch for the new state.
            st.generation += 1;
            inner.synced_hint.store(end, Ordering::Release);
        }
        let now = inner.clock.now_ms();
        inner.last_sync_ms.store(now, Ordering::Release);
        inner.trusted_end.store(u64::MAX, Ordering::SeqCst);
        *inner.poison_cause.lock() = None;
        inner.poisoned.store(false, Ordering::Release);
        inner.visible_end.store(end, Ordering::SeqCst);
        if end > trusted {
            let new_end = inner
                .truncate_locked(&mut w, &mut cleaner, trusted)
                .inspect_err(|e| inner.poison(e))?;
            report.offsets_dropped = end - new_end;
        }
        // Only now that the rest is cut: the next open need not cut again. Before any append
        // (this holds the append lock), so the marker never outlives a record acknowledged after.
        inner
            .forget_trusted_end()
            .inspect_err(|e| inner.poison(e))?;
        *inner.report.lock() = report;
        inner.tail_end_change();
        inner.notify_tailers();
        Ok(report)
    }
}
