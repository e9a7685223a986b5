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
//! <dir>/.lock                                               flock'ed by the one handle that may write
//! ```

mod checkpoint;
mod cleaner_checkpoint;
mod compaction;
mod config;
mod open;
mod producer_state;
mod retention;

pub use compaction::{CompactionPolicy, CompactionReport, MIN_MAP_BUDGET_BYTES};
pub use config::{Durability, PartitionConfig, TimestampType};
pub use producer_state::{ProducerBatch, PRODUCER_BATCHES_KEPT};
pub use retention::{RetentionPolicy, RetentionReport};

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, IoContext, Result};
use crate::format::{
    encode_batch, encoded_batch_len, patch_base_offset, BatchMeta, Record, RecordBatch,
    StoredRecord,
};
use crate::fs::{create_dir_all_durable, FileLock, FileSystem};
use crate::segment::{Segment, SegmentView, TimestampOffset};

use checkpoint::{Checkpoint, CleanShutdown};
use cleaner_checkpoint::CleanerCheckpoint;
pub(crate) use open::holds_data;
use open::recover_dir;
use producer_state::{Check, ProducerTable};

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

/// A wake-up signal shared by several partitions: a consumer registers one with every partition it
/// reads ([`Partition::watch`]) and sleeps on it until any of them publishes new records (or
/// someone else, such as a group rebalance, calls [`notify`](Self::notify)).
#[derive(Debug, Default)]
pub struct Notify {
    seq: Mutex<u64>,
    cv: Condvar,
}

impl Notify {
    /// A new signal.
    pub fn new() -> Arc<Notify> {
        Arc::new(Notify::default())
    }

    /// The current sequence number: pass it to [`wait`](Self::wait) after checking for work, so a
    /// signal that arrives in between is not missed.
    pub fn seq(&self) -> u64 {
        *self.seq.lock()
    }

    /// Wake every waiter.
    pub fn notify(&self) {
        let mut s = self.seq.lock();
        *s += 1;
        self.cv.notify_all();
    }

    /// Sleep until the sequence number moves past `seen` or `deadline` passes; returns whether it
    /// moved.
    pub fn wait(&self, seen: u64, deadline: Instant) -> bool {
        let mut s = self.seq.lock();
        while *s == seen {
            if self.cv.wait_until(&mut s, deadline).timed_out() {
                return *s != seen;
            }
        }
        true
    }
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
    /// An in-place recovery ([`Partition::recover`]) dropped this many offsets from the end: they
    /// came after the last fsync that succeeded before one failed, so whether they reached the
    /// disk is unknown (none of them was acknowledged as durable).
    pub offsets_dropped: u64,
}

/// The result of a read: whole batches in offset order.
///
/// A read at an offset in the middle of a batch returns that whole batch;
/// [`records`](Self::records) skips the records below the requested offset.
#[derive(Clone, Debug, Default)]
pub struct Batches {
    requested: u64,
    batches: Vec<RecordBatch>,
    /// Where to read next when `batches` is empty: the requested offset, or the end offset when
    /// compaction left nothing between them.
    next_if_empty: u64,
}

impl Batches {
    /// The batches, as stored.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Whether nothing was read (the offset is the log end).
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Total bytes of the batches.
    pub fn size_bytes(&self) -> usize {
        self.batches.iter().map(|b| b.as_bytes().len()).sum()
    }

    /// The records at or after the requested offset, in offset order.
    pub fn records(&self) -> impl Iterator<Item = StoredRecord> + '_ {
        let from = self.requested;
        self.batches
            .iter()
            .flat_map(|b| b.records())
            .filter(move |r| r.offset() >= from)
    }

    /// The offset to read next: after the last batch; if there is none, the requested offset
    /// (it was the end), or the end offset if compaction removed every record in between.
    pub fn next_offset(&self) -> u64 {
        self.batches
            .last()
            .map_or(self.next_if_empty, |b| b.next_offset())
    }
}

impl IntoIterator for Batches {
    type Item = RecordBatch;
    type IntoIter = std::vec::IntoIter<RecordBatch>;
    fn into_iter(self) -> Self::IntoIter {
        self.batches.into_iter()
    }
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
/// 1. `cleaner` — compaction holds it for a pass; retention, truncation, in-place recovery and
///    close take it first;
/// 2. `writer` — the append lock;
/// 3. `checkpoint` — held across the checkpoint's atomic write (no other lock is taken under it);
/// 4. `unsynced_sealed`, then `sync`, then `pending` — a sync leader takes `sync`, *releases it*,
///    takes `writer` for a moment to see what to sync, then does its I/O under no lock;
/// 5. leaves, taken alone: `segments` (only for a moment: clone the list, or replace it), `tail`,
///    `watchers`, `pending_snapshot`, `poison_cause`, `report`, `lock`, `config`.
///
/// No file I/O happens under `writer` except the append's own write (and truncation's, and a
/// roll's unsynced index writes): fsyncs for a roll or a retention pass happen outside it.
#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Replaced whole by [`Partition::set_config`]; readers take a snapshot.
    config: RwLock<Arc<PartitionConfig>>,
    fs: Arc<dyn FileSystem>,
    /// Snapshot for readers; the last segment is the active one.
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
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
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    last_sync_ms: AtomicI64,
    /// Mirror of `SyncState::synced`, readable without the sync lock.
    synced_hint: AtomicU64,
    checkpoint: Mutex<Checkpoint>,
    tail: Mutex<()>,
    tail_cv: Condvar,
    tail_waiters: AtomicUsize,
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
    /// What the last open (or in-place recovery) found and repaired.
    report: Mutex<RecoveryReport>,
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
}

impl Partition {
    /// Open (or create) the partition in `dir` with default settings.
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Partition> {
        Partition::open_with(dir, PartitionConfig::default())
    }

    /// Open (or create) the partition in `dir`.
    ///
    /// After a clean [`close`](Self::close) this trusts the files once they match what the close
    /// recorded, reading only the active segment's tail. Otherwise it rescans every segment from
    /// the recovery point, verifying each batch's CRC, cuts a torn tail, rebuilds indexes and syncs
    /// the result; see [`recovery_report`](Self::recovery_report).
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
    pub fn open_with(dir: impl AsRef<Path>, config: PartitionConfig) -> Result<Partition> {
        config.validate()?;
        let dir = dir.as_ref().to_owned();
        let fs = config.file_system.clone();
        create_dir_all_durable(&*fs, &dir).at(&dir)?;
        // Before anything is read: a second writer must not even run recovery.
        let lock_path = dir.join(LOCK_FILE);
        let lock = match fs.try_lock(&lock_path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::AlreadyOpen { path: dir });
            }
            Err(e) => return Err(Error::io(lock_path, e)),
        };
        let r = recover_dir(&fs, &dir, &config)?;
        let now = config.clock.now_ms();
        let (end, start) = (r.end, r.start);
        let partition = Partition {
            inner: Arc::new(Inner {
                dir,
                fs,
                segments: RwLock::new(Arc::new(r.segments)),
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
                trusted_end: AtomicU64::new(u64::MAX),
                sync: Mutex::new(SyncState {
                    synced: end,
                    leader: false,
                    generation: 0,
                }),
                sync_done: Condvar::new(),
                last_sync_ms: AtomicI64::new(now),
                synced_hint: AtomicU64::new(end),
                checkpoint: Mutex::new(r.checkpoint),
                tail: Mutex::new(()),
                tail_cv: Condvar::new(),
                tail_waiters: AtomicUsize::new(0),
                pending_snapshot: Mutex::new(None),
                watchers: Mutex::new(Vec::new()),
                watcher_count: AtomicUsize::new(0),
                last_expiry_ms: AtomicI64::new(now),
                last_recovery_point_ms: AtomicI64::new(now),
                report: Mutex::new(r.report),
                config: RwLock::new(Arc::new(config)),
            }),
        };
        Ok(partition)
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration in force: the one it was opened with, or the last
    /// [`set_config`](Self::set_config).
    pub fn config(&self) -> Arc<PartitionConfig> {
        self.inner.config()
    }

    /// Change the configuration of the open partition. Durability, timestamp type, the key
    /// requirement and the batch size limit apply from the next append; segment size and age
    /// from the next roll decision; index settings and preallocation from the next segment.
    /// The file system, clock and recovery mode are those it was opened with (the ones in
    /// `config` are ignored). Nothing is persisted: a [`Store`](crate::Store) persists topic
    /// configs itself (`Store::alter_topic_config`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` does not validate; the old config stays.
    pub fn set_config(&self, config: PartitionConfig) -> Result<()> {
        config.validate()?;
        let mut current = self.inner.config.write();
        let next = PartitionConfig {
            file_system: current.file_system.clone(),
            clock: current.clock.clone(),
            recovery: current.recovery,
            ..config
        };
        *current = Arc::new(next);
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

    /// Append one record with the configured durability; returns its offset.
    ///
    /// # Errors
    /// As [`append_batch_with`](Self::append_batch_with).
    pub fn append(&self, record: Record) -> Result<u64> {
        Ok(self
            .append_batch(std::slice::from_ref(&record))?
            .base_offset)
    }

    /// Append records as one batch (atomically: all or none become visible), with the configured
    /// durability. Offsets are dense and increasing.
    ///
    /// # Errors
    /// As [`append_batch_with`](Self::append_batch_with).
    pub fn append_batch<R: Borrow<Record>>(&self, records: &[R]) -> Result<AppendInfo> {
        self.append_inner(records, None, None)
    }

    /// Append records as one batch with an explicit durability for this call.
    ///
    /// # Errors
    /// - [`Error::EmptyBatch`] for no records;
    /// - [`Error::RecordTooLarge`] if the encoded batch exceeds `max_batch_bytes`;
    /// - [`Error::Poisoned`] after an earlier I/O failure, [`Error::Closed`] after close;
    /// - [`Error::Io`] if the write or sync fails — the partition is then poisoned. A failed append
    ///   is never visible to readers, and is not reported durable.
    pub fn append_batch_with<R: Borrow<Record>>(
        &self,
        records: &[R],
        durability: Durability,
    ) -> Result<AppendInfo> {
        self.append_inner(records, Some(durability), None)
    }

    /// Append records as one batch from an idempotent producer: if the partition already holds
    /// this producer's batch with this sequence (one of its last [`PRODUCER_BATCHES_KEPT`]), nothing
    /// is written and the original offsets come back with `duplicate: true` (after waiting for
    /// `durability`, in case the original is not durable yet). The producer state survives
    /// reopening, crashes included.
    ///
    /// # Errors
    /// [`Error::OutOfOrderSequence`] if `producer.base_sequence` does not continue the producer's
    /// last batch here; [`Error::ProducerFenced`] for an epoch below the partition's; otherwise
    /// as [`append_batch_with`](Self::append_batch_with).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Durability, Partition, ProducerBatch, Record};
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?;
    /// let p = ProducerBatch { producer_id: 7, epoch: 0, base_sequence: 0 };
    /// let first = log.append_idempotent(&[Record::new("a"), Record::new("b")], p, Durability::Always)?;
    /// let again = log.append_idempotent(&[Record::new("a"), Record::new("b")], p, Durability::Always)?;
    /// assert!(again.duplicate);
    /// assert_eq!(again.base_offset, first.base_offset);
    /// assert_eq!(log.end_offset(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_idempotent<R: Borrow<Record>>(
        &self,
        records: &[R],
        producer: ProducerBatch,
        durability: Durability,
    ) -> Result<AppendInfo> {
        if producer.producer_id < 0 || producer.base_sequence < 0 {
            return Err(Error::config(
                "producer",
                "producer_id and base_sequence must be non-negative",
            ));
        }
        self.append_inner(records, Some(durability), Some(producer))
    }

    /// `durability` `None` means the configured one.
    fn append_inner<R: Borrow<Record>>(
        &self,
        records: &[R],
        durability: Option<Durability>,
        producer: Option<ProducerBatch>,
    ) -> Result<AppendInfo> {
        let inner = &*self.inner;
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let config = inner.config();
        if config.compacted && records.iter().any(|r| r.borrow().key().is_none()) {
            // Compaction keeps records by key: a keyless one would be dropped by the next pass.
            return Err(Error::MissingKey {
                topic: inner.dir.display().to_string(),
            });
        }
        let durability = durability.unwrap_or(config.durability);
        let now = config.clock.now_ms();
        let mut meta = BatchMeta::new(now);
        meta.log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
        if let Some(p) = producer {
            meta.producer_id = p.producer_id;
            meta.producer_epoch = p.epoch;
            meta.base_sequence = p.base_sequence;
        }
        let len = encoded_batch_len(records, &meta);
        let max = config.max_batch_bytes as usize;
        if len > max || records.len() > u32::MAX as usize {
            return Err(Error::RecordTooLarge { size: len, max });
        }
        let mut buf = Vec::with_capacity(len);
        encode_batch(&mut buf, records, &meta);
        let count = records.len() as u64;

        let (base, end, needs_sync) = {
            let mut w = inner.writer.lock();
            inner.check_writable()?;
            if let Some(p) = producer {
                let checked = w.producers.check(
                    p,
                    count as u32,
                    &inner.dir,
                    now,
                    config.producer_id_expiration,
                )?;
                match checked {
                    Check::Fresh => {}
                    Check::Duplicate(info) => {
                        drop(w);
                        if durability != Durability::None {
                            inner.sync_to(info.last_offset.saturating_add(1))?;
                        }
                        return Ok(info);
                    }
                }
                if !w.tracks_producers {
                    // The first idempotent batch here: record durably where the producer state
                    // starts, so open rebuilds it from the log even if the snapshot goes missing,
                    // and start with an empty snapshot there.
                    let from = inner.end_offset.load(Ordering::Acquire);
                    inner
                        .update_checkpoint(|cp| cp.producers_from = Some(from))
                        .and_then(|()| w.producers.write(&*inner.fs, &inner.dir, from))
                        .inspect_err(|e| inner.poison(e))?;
                    w.tracks_producers = true;
                }
            }
            let base = inner.end_offset.load(Ordering::Acquire);
            if inner.should_roll(&config, &w.active, len as u64, count, now)? {
                inner.roll(&mut w).inspect_err(|e| inner.poison(e))?;
            }
            patch_base_offset(&mut buf, base);
            w.active
                .append(&buf, now)
                .inspect_err(|e| inner.poison(e))?;
            let end = base + count;
            let needs_sync = match durability {
                Durability::None => false,
                Durability::Always => true,
                Durability::EveryMessages(n) => {
                    end.saturating_sub(inner.synced_hint.load(Ordering::Acquire)) >= n
                }
                Durability::Interval(d) => {
                    now.saturating_sub(inner.last_sync_ms.load(Ordering::Acquire))
                        >= d.as_millis() as i64
                }
            };
            // Register before publishing the end, so a sync leader that sees this end also sees
            // that it must not be made visible until synced.
            let mut pending = inner.pending.lock();
            if needs_sync {
                pending.insert(base, end);
            }
            inner.end_offset.store(end, Ordering::SeqCst);
            let visible = pending.keys().next().copied().unwrap_or(end);
            drop(pending);
            inner.publish(visible);
            if let Some(p) = producer {
                let info = AppendInfo {
                    base_offset: base,
                    last_offset: end - 1,
                    append_time: now,
                    duplicate: false,
                };
                w.producers.record(p, count as u32, &info, now);
            }
            (base, end, needs_sync)
        };
        if needs_sync {
            inner.sync_to(end)?;
        }
        Ok(AppendInfo {
            base_offset: base,
            last_offset: end - 1,
            append_time: now,
            duplicate: false,
        })
    }

    /// Read whole batches starting with the one containing `offset`, up to about `max_bytes` (at
    /// least one batch is returned if any exists, however large). Reading at the end offset
    /// returns an empty result; use [`wait_for`](Self::wait_for) to block for more.
    ///
    /// Every batch's CRC is verified; records are zero-copy slices.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the start or past the end offset; [`Error::Corrupt`] if a
    /// batch fails verification.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Batches> {
        let inner = &*self.inner;
        let end = inner.visible_end.load(Ordering::SeqCst);
        let start = inner.start_offset.load(Ordering::Acquire);
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        let mut out = Batches {
            requested: offset,
            batches: Vec::new(),
            next_if_empty: offset,
        };
        if offset == end {
            return Ok(out);
        }
        let segments = inner.segments.read().clone();
        // Retention moves the start offset before it drops segments from the list: if this
        // snapshot already lacks them, the start offset says so.
        let start = inner.start_offset.load(Ordering::Acquire);
        if offset < start {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        let mut i = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        // Where to look next: moves past batches that hold nothing at or after `offset`
        // (compaction keeps a batch's offset range, so the batch holding `offset` may hold only
        // records below it, or none), so that the first surviving record >= `offset` is found
        // whenever one exists, in this segment or a later one.
        let mut at = offset;
        while let Some(seg) = segments.get(i) {
            // Every segment ends exactly where the next begins, the last at the end offset.
            let seg_end = segments
                .get(i + 1)
                .map_or(end, |n| n.base_offset().min(end));
            if at >= seg_end {
                i += 1;
                continue;
            }
            let mut batches = seg.read(at, max_bytes)?;
            // The segment may hold batches that are written but not yet visible.
            batches.retain(|b| b.base_offset() < end);
            let Some(last) = batches.last() else {
                if !Arc::ptr_eq(&segments, &inner.segments.read()) {
                    // A truncation replaced the segments after this read began (a retention pass
                    // or compaction swap never removes offsets above the start): read again.
                    return self.read(offset, max_bytes);
                }
                return Err(Error::corrupt(
                    seg.log_path(),
                    seg.size(),
                    format!(
                        "the segment holds no batch at or after offset {at}, but it must reach \
                         offset {seg_end} (where the next segment or the log ends): data is missing"
                    ),
                ));
            };
            let next = last.next_offset();
            match batches.iter().position(|b| holds_records_from(b, offset)) {
                Some(first) => {
                    batches.drain(..first);
                    out.batches = batches;
                    return Ok(out);
                }
                None => at = next,
            }
        }
        // Nothing from `offset` to the end: compaction removed every record in between.
        out.next_if_empty = end;
        Ok(out)
    }

    /// The first record whose timestamp is `>= timestamp`, as `(timestamp, offset)`; `None` if no
    /// record has such a timestamp (including when the log is empty).
    ///
    /// With out-of-order timestamps this is the first such record *in offset order*, as in Kafka's
    /// `ListOffsets`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Io`] if the data cannot be read.
    pub fn offset_for_time(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let start = self.start_offset();
        let end = self.end_offset();
        let segments = self.inner.segments.read().clone();
        for seg in segments.iter() {
            if seg.next_offset() <= start {
                continue;
            }
            if let Some(found) = seg.find_offset_by_timestamp(timestamp, start)? {
                return Ok((found.offset < end).then_some(found));
            }
        }
        Ok(None)
    }

    /// Block until a record at or past `offset` exists (that is, until the end offset exceeds
    /// `offset`), or `timeout` passes. Returns whether data is there. Returns `false` at once if
    /// the partition is closed.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let inner = &*self.inner;
        if inner.visible_end.load(Ordering::SeqCst) > offset {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut guard = inner.tail.lock();
        inner.tail_waiters.fetch_add(1, Ordering::SeqCst);
        let found = loop {
            if inner.visible_end.load(Ordering::SeqCst) > offset {
                break true;
            }
            if inner.closed.load(Ordering::SeqCst) {
                break false;
            }
            if inner.tail_cv.wait_until(&mut guard, deadline).timed_out() {
                break inner.visible_end.load(Ordering::SeqCst) > offset;
            }
        };
        inner.tail_waiters.fetch_sub(1, Ordering::SeqCst);
        found
    }

    /// Fire `notify` whenever records become visible (or durable) in this partition, until
    /// [`unwatch`](Self::unwatch) or `notify` is dropped. Lets one thread wait for data on many
    /// partitions at once. (The consumer's plumbing: [`Notify`](crate::internals::Notify) lives in
    /// [`internals`](crate::internals), outside the semver promise.)
    pub fn watch(&self, notify: &Arc<Notify>) {
        let mut w = self.inner.watchers.lock();
        w.retain(|x| x.strong_count() > 0);
        if !w.iter().any(|x| x.as_ptr() == Arc::as_ptr(notify)) {
            w.push(Arc::downgrade(notify));
        }
        self.inner.watcher_count.store(w.len(), Ordering::SeqCst);
    }

    /// Stop firing `notify`.
    pub fn unwatch(&self, notify: &Arc<Notify>) {
        let mut w = self.inner.watchers.lock();
        w.retain(|x| x.strong_count() > 0 && x.as_ptr() != Arc::as_ptr(notify));
        self.inner.watcher_count.store(w.len(), Ordering::SeqCst);
    }

    /// Remove every record at or after `offset`. A batch that contains `offset` is removed whole
    /// (as in Kafka), so the new end offset can be below `offset`; it is returned. Truncating at or
    /// past the end is a no-op. If the cut would fall below the log start offset (the batch
    /// holding `offset` straddles it), the log goes on empty at the start offset, like Kafka's
    /// `truncateFullyAndStartAt`.
    ///
    /// On a compacted log, truncation does not bring back values compaction removed because a
    /// newer value of the key followed, even if that newer value is now truncated.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the start offset; [`Error::Poisoned`]/[`Error::Closed`];
    /// [`Error::Io`] (which poisons the partition).
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        let inner = &*self.inner;
        let mut cleaner = inner.cleaner.lock();
        let mut w = inner.writer.lock();
        inner.check_writable()?;
        let end = inner.end_offset.load(Ordering::SeqCst);
        let start = inner.start_offset.load(Ordering::Acquire);
        if offset >= end {
            return Ok(end);
        }
        if offset < start {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        inner
            .truncate_locked(&mut w, &mut cleaner, offset)
            .inspect_err(|e| {
                inner.poison(e);
                // The segment may already have cut its published size: never advertise offsets
                // that reads can no longer find.
                let left = w.active.next_offset();
                inner.end_offset.fetch_min(left, Ordering::SeqCst);
                inner.visible_end.fetch_min(left, Ordering::SeqCst);
            })
    }

    /// Make every appended record durable now and record the recovery point, whatever the
    /// configured durability.
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails (the partition is then poisoned); [`Error::Poisoned`].
    pub fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let end = inner.end_offset.load(Ordering::SeqCst);
        inner.sync_to(end)?;
        inner
            .write_recovery_point(end)
            .inspect_err(|e| inner.poison(e))
    }

    /// Periodic maintenance: under [`Durability::Interval`], sync if the interval has passed and
    /// data is unsynced. Returns whether it synced. A background task calls this periodically.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn flush_if_due(&self) -> Result<bool> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let config = inner.config();
        let now = config.clock.now_ms();
        if let Some((offset, mut table)) = inner.pending_snapshot.lock().take() {
            table.remove_expired(now, config.producer_id_expiration);
            table
                .write(&*inner.fs, &inner.dir, offset)
                .inspect_err(|e| inner.poison(e))?;
        }
        // Idle producers expire (looked for at most once a minute of the partition's clock; an
        // append from an expired one is taken as new at once either way).
        let last_expiry = inner.last_expiry_ms.load(Ordering::Acquire);
        if now.saturating_sub(last_expiry) >= 60_000 {
            inner.last_expiry_ms.store(now, Ordering::Release);
            let mut w = inner.writer.lock();
            if !w.producers.is_empty() {
                w.producers
                    .remove_expired(now, config.producer_id_expiration);
            }
        }
        let since_sync = now.saturating_sub(inner.last_sync_ms.load(Ordering::Acquire));
        let due = match config.durability {
            Durability::Interval(d) => since_sync >= d.as_millis() as i64,
            Durability::Always | Durability::None | Durability::EveryMessages(_) => false,
        };
        let end = inner.end_offset.load(Ordering::SeqCst);
        let synced = inner.sync.lock().synced;
        // Rolled segments are synced in the background, like Kafka's flush of a rolled segment,
        // so the recovery point keeps up even when appends do not sync.
        let rolled = !inner.unsynced_sealed.lock().is_empty();
        if (due && synced < end) || rolled {
            self.flush()?;
            return Ok(true);
        }
        // Group commits made records durable: record that in the checkpoint, at once when they
        // made sealed segments durable, otherwise every `recovery_point_interval`. Recovery
        // treats damage below the recovery point as damage, never as a torn tail to cut.
        let active_base = inner.writer.lock().active.base_offset();
        let recovery_point = inner.checkpoint.lock().recovery_point;
        let durable = synced.min(end);
        let interval =
            i64::try_from(config.recovery_point_interval.as_millis()).unwrap_or(i64::MAX);
        let since = now.saturating_sub(inner.last_recovery_point_ms.load(Ordering::Acquire));
        let sealed_durable = recovery_point < active_base && synced >= active_base;
        if durable > recovery_point && (sealed_durable || since >= interval) {
            inner
                .write_recovery_point(durable)
                .inspect_err(|e| inner.poison(e))?;
        }
        Ok(false)
    }

    /// Whether an I/O failure (a full disk, a failed write or fsync) has latched the partition: it
    /// refuses writes with [`Error::Poisoned`] until [`recover`](Self::recover)ed or reopened.
    /// Reads go on.
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
        let trusted = inner.trusted_end.load(Ordering::SeqCst);
        let config = inner.config();
        // The old segments stay with readers that hold them (their files are reopened, never
        // shrunk in place under a map).
        let r = recover_dir(&inner.fs, &inner.dir, &config)?;
        let (end, start) = (r.end, r.start);
        let mut report = r.report;
        *inner.segments.write() = Arc::new(r.segments);
        w.active = r.active;
        w.tracks_producers = r.producers.is_some();
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
        let now = config.clock.now_ms();
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
        *inner.report.lock() = report;
        inner.notify_tailers();
        Ok(report)
    }

    /// Stop using this partition as a process crash would, for crash tests: nothing more is
    /// written or synced (no clean-shutdown marker), every handle gets [`Error::Closed`]
    /// afterwards, and the directory lock is released so the directory can be opened again in
    /// this process. What the next open finds is what a `kill -9` would leave (a power loss too,
    /// on a [`SimFs`](crate::fs::SimFs) after its `crash`).
    #[doc(hidden)]
    pub fn abandon(&self) {
        let inner = &*self.inner;
        inner.closing.store(true, Ordering::Release);
        // Wait for a compaction pass and an appender to let go, as a crash would end them.
        let _cleaner = inner.cleaner.lock();
        let _w = inner.writer.lock();
        inner.closed.store(true, Ordering::SeqCst);
        inner.lock.lock().take();
        inner.notify_tailers();
        let _g = inner.tail.lock();
        inner.tail_cv.notify_all();
    }

    /// Close cleanly: sync everything, write indexes, cut the preallocated tail and leave a
    /// clean-shutdown marker so the next open skips the rescan. Other clones get
    /// [`Error::Closed`] afterwards. Dropping the last clone closes too (ignoring errors).
    ///
    /// # Errors
    /// [`Error::Io`] if a sync or write fails; the next open then recovers as after a crash.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

/// Whether `batch` holds a record at or after `offset`.
fn holds_records_from(batch: &RecordBatch, offset: u64) -> bool {
    batch.record_count() > 0
        && (batch.base_offset() >= offset || batch.records().any(|r| r.offset() >= offset))
}

/// Read the active segment through a shared map where the file system supports it. A failure to
/// map is not an error: reads then use `pread`.
fn map_active(config: &PartitionConfig, segment: &Segment) {
    let len = config.segment_bytes + u64::from(config.max_batch_bytes);
    let _ = segment.map_active(len);
}

pub(crate) fn remove_if_exists(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl Inner {
    /// A snapshot of the configuration in force.
    fn config(&self) -> Arc<PartitionConfig> {
        self.config.read().clone()
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
        Error::Poisoned {
            path: self.dir.clone(),
            cause: self
                .poison_cause
                .lock()
                .as_ref()
                .map_or_else(String::new, Error::to_string),
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
                    *cause = Some(e.clone());
                }
            }
            self.trusted_end.fetch_min(trusted_end, Ordering::SeqCst);
            self.poisoned.store(true, Ordering::Release);
            // Not under the poison-cause lock: `sync_to` takes that one under the sync lock.
            let _g = self.sync.lock();
            self.sync_done.notify_all();
        }
    }

    /// Everything below `synced` is durable: appends waiting for it are done; publish up to the
    /// next one still waiting (or the log end).
    fn release_pending(&self, synced: u64) {
        let mut pending = self.pending.lock();
        while let Some((&base, &end)) = pending.iter().next() {
            if end > synced {
                break;
            }
            pending.remove(&base);
        }
        let visible = pending
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.end_offset.load(Ordering::SeqCst));
        drop(pending);
        self.publish(visible);
    }

    /// Make offsets below `end` visible to readers and wake tailers.
    fn publish(&self, end: u64) {
        self.visible_end.fetch_max(end, Ordering::SeqCst);
        self.notify_tailers();
    }

    fn notify_tailers(&self) {
        if self.tail_waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.tail.lock();
            self.tail_cv.notify_all();
        }
        if self.watcher_count.load(Ordering::SeqCst) > 0 {
            let watchers = self.watchers.lock();
            for w in watchers.iter() {
                if let Some(n) = w.upgrade() {
                    n.notify();
                }
            }
        }
    }

    fn should_roll(
        &self,
        config: &PartitionConfig,
        active: &Segment,
        batch_len: u64,
        count: u64,
        now: i64,
    ) -> Result<bool> {
        if active.is_empty() {
            return Ok(false);
        }
        let end = self.end_offset.load(Ordering::Acquire);
        let last_rel = end + count - 1 - active.base_offset();
        let by_size = active.size() + batch_len > config.segment_bytes;
        let by_time = match (config.segment_ms, active.first_append_ms()) {
            (Some(ms), Some(first)) => now.saturating_sub(first) >= ms.as_millis() as i64,
            _ => false,
        };
        let by_offset = last_rel > u64::from(u32::MAX);
        let by_position = active.size() + batch_len > u64::from(u32::MAX);
        Ok(by_size || by_time || by_offset || by_position || active.indexes_full())
    }

    /// Seal the active segment and start a new one at the end offset.
    ///
    /// Nothing is synced here, so an append that rolls does not wait for the old segment (up to a
    /// whole segment of dirty pages) to reach the disk: the old segment joins `unsynced_sealed`,
    /// which the next group commit or background flush syncs before it claims any offset durable.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        let old = w.active.clone();
        old.seal_unsynced()?;
        let base = self.end_offset.load(Ordering::Acquire);
        let config = self.config();
        let seg = Arc::new(Segment::create(
            self.fs.clone(),
            &self.dir,
            base,
            config.segment_config(),
        )?);
        // The new file's directory entry (and the sealed indexes' renames) become durable with
        // the next sync, before any record in the new segment is claimed durable: no appender
        // waits for the disk here.
        self.dir_unsynced.store(true, Ordering::SeqCst);
        map_active(&config, &seg);
        self.unsynced_sealed.lock().push(old);
        if !w.producers.is_empty() {
            w.snapshot_wanted = true;
        }
        let mut segments = self.segments.write();
        let mut list = segments.as_ref().clone();
        list.push(seg.clone());
        *segments = Arc::new(list);
        w.active = seg;
        Ok(())
    }

    fn write_recovery_point(&self, point: u64) -> Result<()> {
        let start = self.start_offset.load(Ordering::Acquire);
        self.update_checkpoint(|cp| {
            cp.log_start_offset = start;
            cp.recovery_point = point;
        })?;
        self.last_recovery_point_ms
            .store(self.config().clock.now_ms(), Ordering::Release);
        Ok(())
    }

    /// Wait until every offset below `target` is durable, syncing as the group-commit leader if
    /// no sync is in flight.
    fn sync_to(&self, target: u64) -> Result<()> {
        // Nothing past the log end can become durable (a caller's stale offset must not spin).
        let target = target.min(self.end_offset.load(Ordering::SeqCst));
        let mut st = self.sync.lock();
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                return Err(self.poison_error());
            }
            if st.synced >= target {
                return Ok(());
            }
            if st.leader {
                self.sync_done.wait(&mut st);
                continue;
            }
            st.leader = true;
            let generation = st.generation;
            drop(st);
            // Under the append lock, so no roll or append slips in: everything below `end` is in
            // `active` or in a sealed segment that is either already synced or in `sealed`.
            let (end, active, sealed, snapshot, dir_unsynced) = {
                let mut w = self.writer.lock();
                let sealed = std::mem::take(&mut *self.unsynced_sealed.lock());
                let dir_unsynced = self.dir_unsynced.swap(false, Ordering::SeqCst);
                // A producer snapshot as of `end`, valid once this sync succeeds.
                let snapshot = std::mem::take(&mut w.snapshot_wanted).then(|| w.producers.clone());
                (
                    self.end_offset.load(Ordering::SeqCst),
                    w.active.clone(),
                    sealed,
                    snapshot,
                    dir_unsynced,
                )
            };
            // Rolled segments' data, then the directory entries of the segments created since
            // the last sync, then the active segment.
            let result = sealed
                .iter()
                .try_for_each(|seg| seg.sync())
                .and_then(|()| {
                    if dir_unsynced {
                        self.fs.sync_dir(&self.dir).at(&self.dir)
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| active.sync());
            st = self.sync.lock();
            st.leader = false;
            match result {
                Ok(()) => {
                    if let Some(table) = snapshot.filter(|_| st.generation == generation) {
                        *self.pending_snapshot.lock() = Some((end, table));
                    }
                    if st.generation == generation {
                        st.synced = st.synced.max(end);
                        self.synced_hint.store(st.synced, Ordering::Release);
                        self.release_pending(st.synced);
                    }
                    self.last_sync_ms
                        .store(self.config().clock.now_ms(), Ordering::Release);
                    self.sync_done.notify_all();
                }
                Err(e) => {
                    self.sync_done.notify_all();
                    // After a failed fsync nothing written since the last good one can be
                    // vouched for (the kernel may have dropped the dirty pages).
                    let last_good = st.synced;
                    drop(st);
                    self.poison_at(&e, last_good);
                    return Err(e);
                }
            }
        }
    }

    fn truncate_locked(
        &self,
        w: &mut Writer,
        cleaner: &mut CleanerCheckpoint,
        offset: u64,
    ) -> Result<u64> {
        // Rare: settle rolled segments first rather than track which of them survive.
        for seg in std::mem::take(&mut *self.unsynced_sealed.lock()) {
            seg.sync()?;
        }
        let segments = self.segments.read().clone();
        let keep = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        let target = segments[keep].clone();
        // Lower the recovery point before cutting anything, so a crash mid-truncation rescans
        // the cut region instead of judging its zeros to be damage below the durable point.
        self.update_checkpoint(|cp| {
            cp.recovery_point = cp.recovery_point.min(target.base_offset());
        })?;
        // The cleaner forgets what it knew about the cut offsets.
        {
            let mut next = cleaner.clone();
            // The batch holding `offset` goes whole, so the cut can land anywhere in the target
            // segment: forget from its base.
            if next.truncate(target.base_offset()) {
                next.write(&*self.fs, &self.dir)?;
                *cleaner = next;
            }
        }
        // Newest first, each made durable before the next: a crash leaves a prefix of segments.
        for seg in segments[keep + 1..].iter().rev() {
            seg.delete()?;
            self.fs.sync_dir(&self.dir).at(&self.dir)?;
        }
        let active = if target.is_sealed() || target.is_mapped() {
            let seg = Arc::new(target.truncated_copy(&self.dir, offset)?);
            map_active(&self.config(), &seg);
            seg
        } else {
            target.truncate_to(offset)?;
            target
        };
        self.fs.sync_dir(&self.dir).at(&self.dir)?;
        let new_end = active.next_offset();
        {
            let mut list = segments[..keep].to_vec();
            list.push(active.clone());
            *self.segments.write() = Arc::new(list);
        }
        w.active = active;
        self.end_offset.store(new_end, Ordering::SeqCst);
        if w.tracks_producers {
            // Forget the cut batches; on disk, restart from an empty snapshot at the log start
            // (the next unclean open rescans), since what is left need not be durable yet.
            w.producers.truncate(new_end);
            *self.pending_snapshot.lock() = None;
            w.snapshot_wanted = false;
            let start = self.start_offset.load(Ordering::Acquire);
            ProducerTable::default().write(&*self.fs, &self.dir, start)?;
        }
        {
            let mut st = self.sync.lock();
            st.synced = st.synced.min(new_end);
            st.generation += 1;
            self.synced_hint.store(st.synced, Ordering::Release);
        }
        // Truncation is the one place visibility moves backwards.
        let mut pending = self.pending.lock();
        pending.retain(|&base, _| base < new_end);
        let visible = pending
            .keys()
            .next()
            .copied()
            .unwrap_or(new_end)
            .min(new_end);
        self.visible_end.store(visible, Ordering::SeqCst);
        drop(pending);
        let start = self.start_offset.load(Ordering::Acquire);
        self.update_checkpoint(|cp| {
            cp.log_start_offset = start;
            cp.recovery_point = cp.recovery_point.min(new_end);
        })?;
        if new_end < start {
            // The batch holding `offset` straddled the log start (or compaction left a gap down
            // to it): all that is left lies below the start. Go on with an empty segment at the
            // start offset, as Kafka's truncateFullyAndStartAt does, so offsets never go below
            // the start; the segments below it go with the next retention pass (or open).
            self.end_offset.store(start, Ordering::SeqCst);
            self.roll(w)?;
            self.publish(start);
            return Ok(start);
        }
        Ok(new_end)
    }

    fn close(&self) -> Result<()> {
        // Stop a compaction pass at its next check, then wait for it.
        self.closing.store(true, Ordering::Release);
        let _cleaner = self.cleaner.lock();
        let w = self.writer.lock();
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Whatever happens below, the directory is free for the next opener afterwards.
        let _lock = self.lock.lock().take();
        // Tailers and watching consumers wake up and see the close.
        {
            let _g = self.tail.lock();
            self.tail_cv.notify_all();
        }
        for w in self.watchers.lock().iter() {
            if let Some(n) = w.upgrade() {
                n.notify();
            }
        }
        if self.poisoned.load(Ordering::Acquire) {
            // Leave no clean marker: the next open must re-read what really is on disk.
            return Ok(());
        }
        let result = (|| {
            let end = self.end_offset.load(Ordering::SeqCst);
            for seg in std::mem::take(&mut *self.unsynced_sealed.lock()) {
                seg.sync()?;
            }
            w.active.sync()?;
            w.active.flush_indexes(true)?;
            w.active.trim()?;
            {
                let mut st = self.sync.lock();
                st.synced = end;
                self.synced_hint.store(end, Ordering::Release);
            }
            self.release_pending(end);
            self.write_recovery_point(end)?;
            if w.tracks_producers {
                let now = self.config().clock.now_ms();
                let mut table = w.producers.clone();
                table.remove_expired(now, self.config().producer_id_expiration);
                table.write(&*self.fs, &self.dir, end)?;
            }
            // Last: what the next open may trust without rescanning, checked against the files.
            let cp = *self.checkpoint.lock();
            CleanShutdown {
                log_start_offset: cp.log_start_offset,
                end_offset: end,
                producers_from: cp.producers_from,
                active_base: w.active.base_offset(),
                active_size: w.active.size(),
            }
            .write(&*self.fs, &self.dir)
        })();
        if let Err(e) = &result {
            self.poison(e);
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
