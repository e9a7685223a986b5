//! Partitions: an ordered list of segments, the last one active.
//!
//! # Concurrency
//! One appender at a time holds the append lock (encoding and checksumming happen before it is
//! taken). Readers take an `Arc` snapshot of the segment list and read up to each segment's
//! published size, so they never block the appender and never see a partial batch. Durability
//! waits happen after the append lock is released; concurrent waiters share one `fdatasync`
//! (group commit: the first waiter syncs for everyone queued behind it).
//!
//! # Files
//! ```text
//! <dir>/00000000000000000000.log | .index | .timeindex   segments, named by base offset
//! <dir>/checkpoint                                          log start offset + recovery point
//! <dir>/cleaner-checkpoint                                  compaction progress (see `compaction`)
//! <dir>/.clean_shutdown                                     present only between a clean close and the next open
//! <dir>/.trusted_end                                        what a poisoned partition can vouch for, until recovery cuts the rest
//! <dir>/.lock                                               locked (fcntl) by the one handle that may write
//! ```
//!
//! # Layout of this module
//! The shared state ([`Partition`]'s `Inner`, with its lock order) is declared here; each kind of
//! work on it has its own file:
//! - `open`: opening (the recovery pipeline: list, plan, apply) and in-place recovery;
//! - `append`: appends and segment rolls; `sync`: group commit, flushes, the recovery point;
//! - `read`: reads by offset and timestamp; `notify`: waking tailers and watchers;
//! - `truncate`, `retention`, `compaction`: removing records; `close`: clean and crash-like stops;
//! - `checkpoint`, `cleaner_checkpoint`, `producer_state`: the metadata files.

mod append;
mod checkpoint;
mod cleaner_checkpoint;
mod close;
mod compaction;
mod kafka;
mod notify;
mod open;
mod producer_state;
mod read;
mod retention;
mod stats;
mod sync;
mod truncate;

pub use compaction::{CompactionPolicy, CompactionReport, MIN_MAP_BUDGET_BYTES};
pub(crate) use kafka::{
    adopt_kafka_partition, check_kafka_partition_dir, files as kafka_files, KafkaSource,
};
pub use kafka::{
    KafkaPartitionExport, KafkaPartitionExportOptions, KafkaPartitionImport, KafkaTopicId,
};
// The consumer and producer name them from here.
pub(crate) use crate::config::{Durability, TimestampType};
pub use notify::Notify;
pub use producer_state::{ProducerBatch, PRODUCER_BATCHES_KEPT};
pub use read::{BatchRecordRefs, Batches, LazyBatches};
pub use retention::{RetentionPolicy, RetentionReport};
pub use stats::PartitionStats;

/// The log start offset the checkpoint in `dir` records, if there is one (for readers that are
/// not the partition's writer).
#[cfg(unix)]
pub(crate) fn read_checkpoint(
    fs: &dyn crate::fs::FileSystem,
    dir: &Path,
) -> Result<Option<CheckpointStart>> {
    Ok(
        checkpoint::Checkpoint::read(fs, dir)?.map(|cp| CheckpointStart {
            log_start_offset: cp.log_start_offset,
        }),
    )
}

/// The `kafka-adopted` marker in `dir`, if there is one (for readers that are not the writer).
#[cfg(unix)]
pub(crate) fn read_adopted(
    fs: &dyn crate::fs::FileSystem,
    dir: &Path,
) -> Result<Option<checkpoint::AdoptedLog>> {
    checkpoint::AdoptedLog::read(fs, dir)
}

/// What [`read_checkpoint`] returns.
#[cfg(unix)]
pub(crate) struct CheckpointStart {
    pub log_start_offset: u64,
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::clock::Clock;
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::fs::{FileLock, FileSystem};
use crate::segment::{Segment, SegmentView};

use checkpoint::Checkpoint;
use cleaner_checkpoint::CleanerCheckpoint;
pub(crate) use open::holds_data;
use producer_state::ProducerTable;

/// Name of the lock file every writer of a partition directory holds.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Where an append landed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: u64,
    /// Offset of the last record appended.
    pub last_offset: u64,
    /// The log's clock at append time (the records' timestamp under
    /// [`TimestampType::LogAppendTime`]).
    pub append_time: i64,
    /// An idempotent append found the batch already in the log (a replay): nothing was written
    /// and these are the original offsets.
    pub duplicate: bool,
}

/// What opening a partition found and repaired.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use = "the report is the only record of what recovery cut or dropped"]
pub struct RecoveryReport {
    /// The previous run closed cleanly, so nothing was rescanned.
    pub clean_shutdown: bool,
    /// Segments scanned and verified.
    pub segments_scanned: usize,
    /// Bytes scanned.
    pub bytes_scanned: u64,
    /// Bytes cut from torn tails (and, under [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt), damage).
    pub bytes_truncated: u64,
    /// Segments deleted because they followed a cut.
    pub segments_deleted: usize,
    /// Damage other than a torn tail was cut (only under [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt)).
    pub corruption_cut: bool,
    /// The checkpoint file was missing or damaged and was rewritten: from the clean-shutdown
    /// marker (which holds the same values after a clean close), or afresh in a partition that
    /// never held data. (With data and no clean marker, open fails instead.)
    pub checkpoint_damaged: bool,
    /// The idempotent producers' state was rebuilt from the batches in the log (bounded by the
    /// producer id expiration) because its snapshot was missing, damaged or stale.
    pub producer_state_rebuilt: bool,
    /// An in-place recovery ([`Partition::recover`]), or an open after a run that a failure
    /// poisoned, dropped this many offsets from the end: they came after the last fsync that
    /// succeeded before one failed (whether they reached the disk is unknown; none of them was
    /// acknowledged as durable), or their append failed.
    pub offsets_dropped: u64,
}

/// A partition: an append-only, durable, offset-addressed log of record batches in one directory.
///
/// Cheap to clone; clones share the same log. `Send + Sync`: append and read from any thread.
///
/// # Examples
/// ```
/// use topiclog::{Partition, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path())?;
/// let offset = log.append(Record::new("hello").with_key("k"))?;
/// assert_eq!(offset, 0);
/// let read = log.read(0, 1 << 20)?;
/// let first = read.records().next().unwrap();
/// assert_eq!(first.value().unwrap().as_ref(), b"hello");
/// log.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Partition {
    inner: Arc<Inner>,
}

/// The shared state of a partition.
///
/// # Lock order
/// A thread holding one of these locks takes only locks further down the list:
///
/// 1. `cleaner` — compaction holds it for a pass; retention, `delete_records`, truncation,
///    in-place recovery and close take it first; a Kafka export (`kafka`) holds it while it links and copies the
///    segment files, so none of them is replaced or deleted meanwhile;
/// 2. `producers_init` — held by the first idempotent batch across its checkpoint and producer
///    snapshot writes (atomic replaces, with fsyncs), which it does *before* taking `writer`
///    (then `writer` for a moment, to see whether a truncation or recovery ran meanwhile);
/// 3. `writer` — the append lock;
/// 4. the segments' own locks, taken under `writer` (an append, a roll, a truncation) or alone
///    (readers, the cache): a [`Segment`]'s `writer` (its write state), then its `indexes`;
/// 5. `checkpoint` — held across the checkpoint's atomic write (no other lock is taken under it);
/// 6. `unsynced_sealed`, then `sync`, then `pending` — a sync leader takes `sync`, *releases it*,
///    takes `writer` for a moment to see what to sync, then does its I/O under no lock;
/// 7. leaves, taken alone: `segments` (only for a moment: clone the list, or replace it), `tail`,
///    `watchers`, `pending_snapshot`, `poison_cause`, `report`, `lock`, `config`, the tail
///    page's update lock, and `trusted_marker` (held across the `.trusted_end` marker's atomic
///    write, only when a failure poisons the partition, under whatever lock the failing
///    operation held).
///
/// No file I/O happens under `writer` except the append's own write (and truncation's, and a
/// roll's unsynced index writes): fsyncs for a roll, a retention pass or the first idempotent
/// batch happen outside it (if a truncation or an in-place recovery ran while the first
/// idempotent batch wrote its checkpoint, that append redoes the writes under `writer`: rare).
///
/// Two operations do their I/O under `cleaner` and `writer` on purpose, because the state they
/// rebuild must not change under them: a truncation, and an in-place recovery
/// ([`Partition::recover`]: it re-reads the directory, may copy the active segment, cut a torn
/// tail, rebuild indexes and producer state and remove `.trusted_end`, all with fsyncs). During a
/// recovery, appenders that check the poison latch (still set) get [`Error::Poisoned`] at once;
/// one that passed that check before the latch was set blocks on `writer`, then re-checks under it
/// and appends to the recovered log (or gets `Poisoned` if the recovery failed). Readers never
/// block: they read the old segments' snapshot until the new list is installed.
#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Below this offset the log was written by Kafka and adopted: batches there may follow gaps
    /// and carry any leader epoch (0 for a log topiclog wrote; see `kafka-adopted`).
    offset_gaps_below: u64,
    /// Below this offset batches may carry any leader epoch (see `kafka-adopted`).
    kafka_epochs_below: u64,
    /// Replaced whole by [`Partition::set_config`]; readers take a snapshot.
    config: RwLock<Arc<LogConfig>>,
    fs: Arc<dyn FileSystem>,
    clock: Arc<dyn Clock>,
    /// Snapshot for readers; the last segment is the active one.
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// Serializes the start of producer tracking (`start_tracking_producers`: the first
    /// idempotent batch's checkpoint and snapshot writes), which runs before the append lock.
    producers_init: Mutex<()>,
    /// Mirror of `Writer::tracks_producers` (set with it), readable without the append lock: once
    /// true, idempotent appends skip `start_tracking_producers`.
    producers_tracked: AtomicBool,
    /// In-place recoveries ([`Partition::recover`]) that replaced the state: bumped by each.
    recoveries: AtomicU64,
    /// The append lock.
    writer: Mutex<Writer>,
    /// Next offset to assign (the log end in the files).
    end_offset: AtomicU64,
    /// Readers see offsets below this: the log end, except that it never passes the first
    /// append still waiting for the sync it asked for, so no reader sees a record whose append
    /// could still fail or that a crash could take back.
    visible_end: AtomicU64,
    /// Appends waiting for their sync, as base offset -> end offset. A leaf lock.
    pending: Mutex<BTreeMap<u64, u64>>,
    /// Sealed segments whose data has not been synced yet (rolled since the last sync).
    unsynced_sealed: Mutex<Vec<Arc<Segment>>>,
    start_offset: AtomicU64,
    /// The cleaner lock and checkpoint. Compaction holds it for a whole pass; retention, truncation
    /// and close take it first (lock order: cleaner, then writer).
    cleaner: Mutex<CleanerCheckpoint>,
    /// A segment was created (by a roll) since the directory was last synced: the next group
    /// commit syncs the directory before it claims any record in it durable.
    dir_unsynced: AtomicBool,
    /// `close` has begun: a compaction pass stops at its next check.
    closing: AtomicBool,
    closed: AtomicBool,
    /// The directory lock: held from open until close, so no second writer (handle or process)
    /// can open the directory and hand out the same offsets.
    lock: Mutex<Option<Box<dyn FileLock>>>,
    poisoned: AtomicBool,
    /// What poisoned the partition (the first failure).
    poison_cause: Mutex<Option<Error>>,
    /// Offsets below this are what the partition can vouch for after a failure: what appends
    /// acknowledged, or, after a failed fsync, what the last good sync made durable. An in-place
    /// recovery cuts what the disk holds beyond it. `u64::MAX` while healthy.
    trusted_end: AtomicU64,
    /// The trusted end the `.trusted_end` marker on disk holds (`u64::MAX`: none written), so
    /// the next open cuts what an in-place recovery would. A leaf lock, held across the marker's
    /// atomic write.
    trusted_marker: Mutex<u64>,
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    last_sync_ms: AtomicI64,
    /// Mirror of `SyncState::synced`, readable without the sync lock.
    synced_hint: AtomicU64,
    checkpoint: Mutex<Checkpoint>,
    /// Notified when records are published or the partition closes: what tailers (blocking
    /// or async) wait on.
    tail: crate::wait::Event,
    /// A producer snapshot taken at a sync point that was then made durable, to be written by
    /// background maintenance: `(offset, table)`.
    pending_snapshot: Mutex<Option<(u64, ProducerTable)>>,
    /// Signals to fire when records are published (see [`Partition::watch`]).
    watchers: Mutex<Vec<Weak<Notify>>>,
    watcher_count: AtomicUsize,
    /// Clock time producer expiry last ran (see [`Partition::flush_if_due`]).
    last_expiry_ms: AtomicI64,
    /// Clock time the recovery point was last written.
    last_recovery_point_ms: AtomicI64,
    /// The descriptors it holds (its lock and active segment), counted for the descriptor limit.
    _fds: crate::fs::FdReservation,
    /// What it has done since it was opened ([`Partition::stats`]).
    counters: stats::Counters,
    /// Appends under way that will wait for a sync (counted from before they take the append
    /// lock until their sync is done): how many a group commit's leader waits for.
    durable_appends: AtomicUsize,
    /// Truncations started plus truncations finished: odd while one runs (see
    /// `write_recovery_point`).
    truncations: AtomicU64,
    /// What the last open (or in-place recovery) found and repaired.
    report: Mutex<RecoveryReport>,
    /// The page read-only processes follow the log by (`None` on a file system without shared
    /// memory). Its update lock is a leaf.
    tail_page: Option<crate::tail::TailWriter>,
    /// Who hears about this partition's in-place recoveries and compaction passes (given at
    /// open, which reported its own recovery to it).
    observer: Option<crate::progress::Observer>,
}

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    /// Idempotent producers' recent batches.
    producers: ProducerTable,
    /// A roll happened with producers known: the next sync takes a snapshot.
    snapshot_wanted: bool,
    /// Idempotent producers have written here (the checkpoint says from where), so producer
    /// snapshots are kept and open rebuilds their state.
    tracks_producers: bool,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Every offset below this is durable.
    synced: u64,
    /// A sync is in progress; others wait for it.
    leader: bool,
    /// Bumped by truncation, so a sync that started before it cannot vouch for offsets after it.
    generation: u64,
    /// Group commits (each one `fdatasync` of the active segment) that succeeded since open.
    rounds: u64,
    /// Appends waiting for durability when the last sync started: how many it carried.
    last_round_appends: usize,
    /// How long the last successful sync took.
    last_sync_time: std::time::Duration,
}

impl Partition {
    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration in force: the one it was opened with, or the last
    /// [`set_config`](Self::set_config).
    pub fn config(&self) -> LogConfig {
        (*self.inner.config()).clone()
    }

    /// Change the configuration of the open partition. Durability, timestamp type, the key
    /// requirement (cleanup policy) and the batch size limit apply from the next append; segment
    /// size and age from the next roll decision; index settings and preallocation from the next
    /// segment; the recovery mode from the next [`recover`](Self::recover). Retention and
    /// compaction settings are for whoever runs the passes (see
    /// [`LogConfig::retention_policy`]). Nothing is persisted: a [`Store`](crate::Store) persists
    /// topic configs itself (`Store::alter_topic_config`).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Durability, LogConfig, Partition};
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?;
    /// log.set_config(LogConfig { durability: Durability::None, ..log.config() })?;
    /// assert_eq!(log.config().durability, Durability::None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` does not validate; the old config stays.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        *self.inner.config.write() = Arc::new(config);
        Ok(())
    }

    /// What the last open found and repaired.
    pub fn recovery_report(&self) -> RecoveryReport {
        *self.inner.report.lock()
    }

    /// The first offset still in the log.
    pub fn start_offset(&self) -> u64 {
        self.inner.start_offset.load(Ordering::Acquire)
    }

    /// One past the last record readers can see: normally the offset the next append gets. An
    /// append that syncs (under [`Durability::Always`], or when its `EveryMessages`/`Interval`
    /// threshold makes it sync) becomes visible only once its sync succeeded, and so do appends
    /// after it; so no reader ever sees a record whose append failed, and under `Always` no reader
    /// sees a record that a crash could take back.
    pub fn end_offset(&self) -> u64 {
        self.inner.visible_end.load(Ordering::SeqCst)
    }

    /// Every record below this offset is on disk.
    pub fn durable_offset(&self) -> u64 {
        self.inner
            .sync
            .lock()
            .synced
            .min(self.inner.end_offset.load(Ordering::SeqCst))
    }

    /// Read-only views of the segments, oldest first; the last is active.
    pub fn segments(&self) -> Vec<SegmentView> {
        self.inner
            .segments
            .read()
            .iter()
            .map(|s| SegmentView::new(s.clone()))
            .collect()
    }

    /// The largest idempotent producer id this partition remembers (see
    /// [`append_idempotent`](Self::append_idempotent)), `None` if it remembers none. A store
    /// never hands out an id at or below it again.
    pub(crate) fn max_producer_id(&self) -> Option<i64> {
        self.inner.writer.lock().producers.max_producer_id()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.inner.segments.read().len()
    }

    /// Whether an I/O failure (a full disk, a failed write or fsync) has latched the partition: it
    /// refuses writes with [`Error::Poisoned`] until [`recover`](Self::recover)ed or reopened
    /// (equivalent: both cut what lies past what the partition could vouch for; a reopen reads
    /// that from the `.trusted_end` file the failure left). Reads go on.
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    /// The failure that poisoned the partition, if it is poisoned.
    pub fn poison_cause(&self) -> Option<Error> {
        if !self.is_poisoned() {
            return None;
        }
        self.inner.poison_cause.lock().clone()
    }
}

/// Read the active segment through a shared map where the file system supports it. A failure to
/// map is not an error: reads then use `pread`.
fn map_active(config: &LogConfig, segment: &Segment) {
    let len = config.segment_bytes + u64::from(config.max_batch_bytes);
    let _ = segment.map_active(len);
}

pub(crate) use crate::fs::remove_if_exists;

impl Inner {
    /// A snapshot of the configuration in force.
    fn config(&self) -> Arc<LogConfig> {
        self.config.read().clone()
    }

    /// What this partition's segments need from `config`.
    fn segment_config(&self, config: &LogConfig) -> crate::segment::SegmentConfig {
        crate::segment::SegmentConfig {
            offset_gaps_below: self.offset_gaps_below,
            kafka_epochs_below: self.kafka_epochs_below,
            ..config.segment_config()
        }
    }

    /// Change the checkpoint with `f` and make it durable (an atomic replace; nothing is written
    /// if nothing changed).
    fn update_checkpoint(&self, f: impl FnOnce(&mut Checkpoint)) -> Result<()> {
        let mut cp = self.checkpoint.lock();
        let mut next = *cp;
        f(&mut next);
        if next != *cp {
            next.write(&*self.fs, &self.dir)?;
            *cp = next;
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.dir.clone(),
            });
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poison_error());
        }
        Ok(())
    }

    fn poison_error(&self) -> Error {
        let cause = self.poison_cause.lock().clone().unwrap_or_else(|| {
            // Only while a recovery clears the latch: the cause is gone, the flag not yet.
            Error::io(
                &self.dir,
                std::io::Error::other("an earlier write failed; its error was already cleared"),
            )
        });
        Error::Poisoned {
            path: self.dir.clone(),
            cause: cause.into(),
        }
    }

    /// Record the trusted end on disk (`.trusted_end`), so that reopening cuts what lies past it
    /// exactly as [`Partition::recover`] does, instead of keeping records whose append or fsync
    /// failed (which a retry would then store a second time). Best effort: if the marker cannot
    /// be written either, the disk is failing; the partition stays poisoned (in-place recovery
    /// still cuts at the trusted end it keeps in memory, and a poisoned close tries the marker
    /// again), but a reopen without the marker keeps whatever the disk holds past the trusted end.
    fn persist_trusted_end(&self) {
        let mut written = self.trusted_marker.lock();
        let trusted = self.trusted_end.load(Ordering::SeqCst);
        if trusted >= *written {
            return;
        }
        let marker = checkpoint::TrustedEnd {
            end_offset: trusted,
        };
        match marker.write(&*self.fs, &self.dir) {
            Ok(()) => *written = trusted,
            Err(_e) => {
                crate::trace::event!(
                    error,
                    dir = %self.dir.display(),
                    error = %_e,
                    "trusted-end marker not written: a reopen may keep records past the trusted end"
                );
            }
        }
    }

    /// Latch an I/O failure: no more writes until recovered ([`Partition::recover`]) or reopened.
    /// What appends acknowledged stays trusted.
    fn poison(&self, e: &Error) {
        self.poison_at(e, self.end_offset.load(Ordering::SeqCst));
    }

    /// [`poison`](Self::poison), trusting only offsets below `trusted_end`.
    fn poison_at(&self, e: &Error, trusted_end: u64) {
        if matches!(
            e,
            Error::Io { .. } | Error::Corrupt { .. } | Error::IndexAppend { .. }
        ) {
            {
                let mut cause = self.poison_cause.lock();
                if cause.is_none() {
                    crate::trace::event!(
                        error,
                        dir = %self.dir.display(),
                        error = %e,
                        "partition poisoned"
                    );
                    *cause = Some(e.clone());
                }
            }
            self.trusted_end.fetch_min(trusted_end, Ordering::SeqCst);
            self.poisoned.store(true, Ordering::Release);
            self.persist_trusted_end();
            // Not under the poison-cause lock: `sync_to` takes that one under the sync lock.
            let _g = self.sync.lock();
            self.sync_done.notify_all();
        }
    }
}
