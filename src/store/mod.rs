//! The store: one directory holding many topics, locked for one owner at a time, with a background
//! maintenance thread.
//!
//! ```text
//! <store>/LOCK                 locked (fcntl) while a Store has the directory open
//! <store>/__producer_ids       the next producer id (names starting with `__` are the store's)
//! <store>/__creating.<n>/      a topic being created (removed by open: it never held data)
//! <store>/__deleting.<n>/      a topic being deleted (removed by open: it is already gone)
//! <store>/<topic>/topic.conf   the topic's resolved configuration
//! <store>/<topic>/<n>/...      partition n
//! ```
//!
//! A directory named like a topic is always a whole topic: creation builds the topic (partitions
//! and `topic.conf`) in a `__creating.<n>` staging directory and renames it into place; deletion
//! first renames the topic to `__deleting.<n>`. A crash at any point therefore reopens with the
//! topic complete or absent, and a topic directory without a valid `topic.conf` is damage that
//! open reports, never a leftover it may delete.
//!
//! The store's state (`StoreInner`) is declared here; each kind of work has its own file:
//! `open` (locking, tidying staging directories, loading topics), `topics` (create, delete, add
//! partitions, alter), `maintenance` (poisoned partitions and their recovery, flush, retention
//! and compaction passes, the background threads, close), `producer_ids` (the counter file) and
//! `upper` (what the broker layer above reads and keeps here).

mod kafka;
mod maintenance;
mod open;
#[cfg(unix)]
pub(crate) use open::read_topic_config;
mod producer_ids;
mod topics;
mod upper;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

#[cfg(unix)]
pub(crate) use kafka::{export_log_dir, ExportWork};
pub use kafka::{KafkaExportOptions, KafkaExportReport, KafkaImportOptions, KafkaImportReport};

use crate::config::{LogConfig, LogOverrides};
use crate::env::Env;
use crate::error::{Error, IoContext, MaintenanceTask, Result};
use crate::fs::{create_dir_all_durable, read_all, write_atomic, FileLock, FileSystem};
use crate::partition::{Notify, Partition, RecoveryReport, MIN_MAP_BUDGET_BYTES};
use crate::progress::Progress;
use crate::topic::{
    check_name_syntax, encode_config, validate_topic_name, DefaultPartitioner, Partitioner, Topic,
    TopicConfig, TopicSettings, CONFIG_FILE, LEGACY_CONFIG_FORMAT, LOCK_FILE, MAX_PARTITIONS,
    RESERVED_PREFIX,
};

/// Prefix of the staging directory a topic is built in before it is renamed into place.
pub(crate) const CREATING_PREFIX: &str = "__creating.";
/// Prefix of the directory a topic is renamed to when it is deleted, before its files go.
pub(crate) const DELETING_PREFIX: &str = "__deleting.";

/// The internal topic holding the committed offsets of consumer groups (kept by the broker, a
/// layer up): the one `__` directory open loads as a topic.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Topics named `__...` belong to the store (like Kafka's `__consumer_offsets`): users cannot
/// create, open, write or delete them.
pub(crate) fn is_internal(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// A partition latched by an I/O failure, from [`Store::poisoned_partitions`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct PoisonedPartition {
    /// The topic (possibly the internal `__consumer_offsets`).
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The failure that latched it.
    pub cause: Error,
}

/// How a store runs: the log settings every topic starts from ([`log`](Self::log)) and the
/// store's own behaviour (background threads and their intervals, the cleaner's memory, the
/// partitioner, the offsets topic). Every field documents its default and its Kafka counterpart.
/// The file system and the clock are not options: they are the store's [`Env`], passed beside
/// them to [`Store::open_with_env`].
///
/// The topic-level fields of `log` apply to a topic **when it is created**: a [`TopicConfig`]
/// override left `None` takes the value here, and the resolved config is persisted with the topic,
/// so options passed to later opens never change an existing topic. Its store-wide fields
/// (`recovery`, `producer_id_expiration`, `recovery_point_interval`), and every other field here,
/// apply to every topic on every open.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{Durability, LogConfig, Retention, Store, StoreOptions};
/// let options = StoreOptions {
///     log: LogConfig {
///         durability: Durability::Interval(Duration::from_millis(200)),
///         segment_bytes: 128 << 20,
///         retention: Retention::Forever,
///         ..LogConfig::default()
///     },
///     background_cleaner: false,
///     ..StoreOptions::default()
/// };
/// let dir = tempfile::tempdir()?;
/// let store = Store::open_with(dir.path(), options)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The log settings a topic takes for every override it leaves `None` when it is created
    /// (Kafka's broker-level `log.*` defaults: `log.segment.bytes`, `log.retention.ms`, ...), and
    /// the store-wide `recovery`, `producer_id_expiration` and `recovery_point_interval`. Default
    /// [`LogConfig::default`].
    pub log: LogConfig,
    /// Memory for the compaction key map (one pass runs at a time). Default 32 MiB. At least
    /// [`MIN_MAP_BUDGET_BYTES`](crate::limits::MIN_MAP_BUDGET_BYTES). Kafka:
    /// `log.cleaner.dedupe.buffer.size`.
    pub cleaner_buffer_bytes: usize,
    /// Run a background cleaner thread that compacts topics whose cleanup policy compacts,
    /// checking every `cleaner_backoff`. Default `true`.
    pub background_cleaner: bool,
    /// How long the background cleaner sleeps when no partition needed cleaning. Default 15 s.
    /// Kafka: `log.cleaner.backoff.ms`.
    pub cleaner_backoff: Duration,
    /// Partitions of the internal offsets topic (`__consumer_offsets`) when it is created; a
    /// group's commits go to one of them by hash. Default 1. Kafka:
    /// `offsets.topic.num.partitions` (50).
    pub offsets_topic_partitions: u32,
    /// Partitions of a topic made by [`Store::topic_or_create`]. Default 1. Kafka:
    /// `num.partitions`.
    pub default_partitions: u32,
    /// Bytes of unkeyed records sent to one partition before the default partitioner moves to
    /// another. Default 16 KiB. Kafka: `batch.size` (which drives its sticky partitioner).
    pub sticky_batch_bytes: usize,
    /// The partitioner for records sent without an explicit partition. Default `None`: a
    /// [`DefaultPartitioner`]. Kafka: `partitioner.class`.
    pub partitioner: Option<Arc<dyn Partitioner>>,
    /// Run a background thread that calls [`Store::maintain`] every `maintenance_interval`.
    /// Default `true`. Turn it off to call `maintain` yourself.
    pub background_maintenance: bool,
    /// How often background maintenance runs (interval flushes, background sync of rolled
    /// segments). Default 100 ms. Kafka: `log.flush.scheduler.interval.ms`.
    pub maintenance_interval: Duration,
    /// How often background maintenance applies retention. Default 5 minutes. Kafka:
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// The observer of long operations on the store's partitions (see [`Progress`]): the
    /// rescan of each partition that open (or [`Store::recover_partition`]) finds stopped
    /// uncleanly, and every compaction pass that cleans, whether the background cleaner or
    /// [`Store::maintain`] runs it. Events name the topic and partition. Exports and imports
    /// take an observer of their own ([`KafkaExportOptions::progress`],
    /// [`KafkaImportOptions::progress`]). Default `None`: nothing is reported, at no cost.
    /// Kafka: none (a broker logs its recovery progress).
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            log: LogConfig::default(),
            cleaner_buffer_bytes: 32 << 20,
            background_cleaner: true,
            cleaner_backoff: Duration::from_secs(15),
            offsets_topic_partitions: 1,
            default_partitions: 1,
            sticky_batch_bytes: 16 << 10,
            partitioner: None,
            background_maintenance: true,
            maintenance_interval: Duration::from_millis(100),
            retention_check_interval: Duration::from_secs(300),
            progress: None,
        }
    }
}

impl StoreOptions {
    /// The config a topic created now with `overrides` runs with: every override it leaves
    /// `None` taken from [`log`](Self::log), and every duration in whole milliseconds (rounded
    /// up), as `topic.conf` keeps it. This is what [`Store::create_topic`] persists.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{LogConfig, LogOverrides, Retention, StoreOptions};
    /// let options = StoreOptions {
    ///     log: LogConfig { retention: Retention::Forever, ..LogConfig::default() },
    ///     ..StoreOptions::default()
    /// };
    /// let resolved = options.resolve(&LogOverrides::default());
    /// assert_eq!(resolved.retention, Retention::Forever); // from the store default
    /// assert_eq!(resolved.segment_bytes, options.log.segment_bytes);
    /// ```
    pub fn resolve(&self, overrides: &LogOverrides) -> LogConfig {
        self.log.with_overrides(overrides).in_whole_millis()
    }

    /// What a topic with `partitions` partitions and the resolved `config` runs with, validated.
    fn topic_settings(&self, partitions: u32, config: LogConfig) -> Result<TopicSettings> {
        TopicConfig::with_partitions(partitions).validate()?;
        config.validate()?;
        Ok(TopicSettings {
            partitions,
            config: Arc::new(config),
        })
    }

    /// Check every setting, the default log config's included.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        self.log.validate()?;
        if self.default_partitions == 0 {
            return Err(Error::config("default_partitions", "must be at least 1"));
        }
        if self.retention_check_interval.is_zero() {
            return Err(Error::config(
                "retention_check_interval",
                "must be positive",
            ));
        }
        if self.maintenance_interval.is_zero() {
            return Err(Error::config("maintenance_interval", "must be positive"));
        }
        if self.offsets_topic_partitions == 0 || self.offsets_topic_partitions > MAX_PARTITIONS {
            return Err(Error::config(
                "offsets_topic_partitions",
                format!("must be 1 ..= {MAX_PARTITIONS}"),
            ));
        }
        if self.cleaner_backoff.is_zero() {
            return Err(Error::config("cleaner_backoff", "must be positive"));
        }
        if self.cleaner_buffer_bytes < MIN_MAP_BUDGET_BYTES {
            return Err(Error::config(
                "cleaner_buffer_bytes",
                format!(
                    "{} is below the minimum {MIN_MAP_BUDGET_BYTES}",
                    self.cleaner_buffer_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// What [`Store::open`] (or [`Store::recover_partition`]) repaired in one partition: an entry of
/// [`Store::recovery_reports`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRecovery {
    /// The topic (`__consumer_offsets` for the committed offsets of consumer groups).
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// What the partition's open found and repaired.
    pub report: RecoveryReport,
}

/// Whether recovery changed what the partition holds or rewrote what described it: cut bytes
/// (a torn tail, or damage under `TruncateCorrupt`), deleted segments, rewrote the checkpoint or
/// rebuilt producer state. A rescan that found everything intact is not a repair.
fn repaired(report: &RecoveryReport) -> bool {
    report.bytes_truncated > 0
        || report.segments_deleted > 0
        || report.corruption_cut
        || report.checkpoint_damaged
        || report.producer_state_rebuilt
        || report.offsets_dropped > 0
}

/// Whether recovery cut records (a torn tail, damage, records past what a poisoned partition
/// could vouch for): what [`Store::last_maintenance_error`] reports, besides
/// [`Store::recovery_reports`].
fn cut_records(report: &RecoveryReport) -> bool {
    report.bytes_truncated > 0
        || report.segments_deleted > 0
        || report.corruption_cut
        || report.offsets_dropped > 0
}

/// The error [`Store::last_maintenance_error`] reports for a recovery that cut records, `None`
/// for one that cut nothing.
fn recovery_cut_error(
    topic: &str,
    partition: u32,
    dir: &Path,
    report: &RecoveryReport,
) -> Option<Error> {
    cut_records(report).then(|| {
        Error::maintenance(
            MaintenanceTask::Recovery,
            topic,
            partition,
            Error::RecoveryCut {
                path: dir.to_owned(),
                report: *report,
            },
        )
    })
}

/// A directory of topics. Cheap to clone; `Send + Sync`. Only one `Store` may have a directory
/// open at a time (enforced with an OS lock on `LOCK`, released by the OS if the holder dies).
///
/// # Examples
/// ```
/// use topiclog::{Record, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let orders = store.create_topic("orders", TopicConfig::with_partitions(3))?;
/// let meta = orders.send(Record::new("created").with_key("order-1"))?;
/// let read = orders.partition(meta.partition)?.read(meta.offset, 1 << 20)?;
/// assert_eq!(read.records().next().unwrap().value().unwrap().as_ref(), b"created");
/// store.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<StoreHandle>,
}

/// The users' share of the store: when the last user handle goes, the store closes right there
/// (releasing its lock before `drop` returns), even if the maintenance thread holds the state.
#[derive(Debug)]
struct StoreHandle {
    core: Arc<StoreInner>,
}

impl std::ops::Deref for StoreHandle {
    type Target = StoreInner;
    fn deref(&self) -> &StoreInner {
        &self.core
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        let _ = self.core.close();
    }
}

/// The store's shared state.
///
/// # Lock order
/// A thread holding one of these locks takes only locks further down the list (and the
/// broker's, `Broker::offsets` and `Broker::producer_ids`, come before all of them: see
/// `src/broker/mod.rs`):
///
/// 1. `admin` — serializes topic creation, deletion and growth, and close; held across their
///    I/O (directory creation and renames, partition opens and closes);
/// 2. `topics` — read for a moment to clone a `Topic` (every pass iterates over clones, with no
///    store lock held), written under `admin` to install or remove one;
/// 3. a partition's own locks (`src/partition/mod.rs`), never taken under `topics`'s guard
///    except a partition's `writer` for a moment (`max_producer_id`, under the broker's
///    `producer_ids`);
/// 4. leaves, taken alone: `watchers` (also under `admin`, when close or a topic change fires
///    them), `recovery_reports`, `last_maintenance_error`, `lock`, `maintenance`, `cleaner`,
///    `stop`'s mutex, and `extensions` (held while an extension is built: `Broker::new` takes
///    no lock).
#[derive(Debug)]
struct StoreInner {
    dir: PathBuf,
    options: StoreOptions,
    /// The file system and clock of every partition of the store.
    env: Env,
    partitioner: Arc<dyn Partitioner>,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    topics: RwLock<BTreeMap<String, Topic>>,
    /// Bumped after every change of `topics` (a topic created, registered or deleted), so a
    /// cached lookup can tell it is stale.
    topics_version: std::sync::atomic::AtomicU64,
    /// Serializes topic creation, deletion and growth.
    admin: Mutex<()>,
    closed: AtomicBool,
    stop: Arc<(Mutex<bool>, Condvar)>,
    maintenance: Mutex<Option<JoinHandle<()>>>,
    cleaner: Mutex<Option<JoinHandle<()>>>,
    /// The last error a maintenance or compaction pass ran into (see `last_maintenance_error`).
    last_maintenance_error: Mutex<Option<Error>>,
    /// Clock time of the last retention pass.
    last_retention_ms: std::sync::atomic::AtomicI64,
    /// The state of the layers above the storage (the broker's group coordinator, offsets and
    /// producer ids), attached on first use; see [`Store::extension`].
    extensions: Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
    /// Signals fired by `close` and when a topic is created, deleted or grown (a consumer's, so a
    /// consumer blocked in `poll` sees the close at once, even one that watches no partition, and
    /// a group member sees its subscription's partitions change without waiting for the clock).
    watchers: Mutex<Vec<Weak<Notify>>>,
    /// Numbers the `__creating.<n>` and `__deleting.<n>` directories.
    staging_seq: AtomicU64,
    /// Repairs made at open (one entry per partition whose recovery repaired something), then
    /// by in-place recoveries.
    recovery_reports: Mutex<Vec<PartitionRecovery>>,
}

impl Store {
    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The file system and clock the store runs on.
    pub fn env(&self) -> &Env {
        &self.inner.env
    }

    /// What this store's open repaired, one entry per partition whose recovery changed what it
    /// holds or rewrote what describes it (see [`RecoveryReport`]), by topic and partition:
    ///
    /// - `bytes_truncated` / `segments_deleted`: a torn tail cut after a crash (the records an
    ///   unsynced write left half-written; under [`Durability::Always`](crate::Durability::Always) none was acknowledged),
    ///   or, with `corruption_cut`, damage cut under
    ///   [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt): records that were
    ///   durable are gone, so restore them from a copy if they matter;
    /// - `checkpoint_damaged`: the checkpoint was missing or damaged and rewritten;
    /// - `producer_state_rebuilt`: idempotent producers' state was rebuilt from the log.
    ///
    /// - `offsets_dropped`: an in-place recovery ([`recover_partition`](Self::recover_partition)),
    ///   or this open after a run in which an I/O failure poisoned the partition, dropped records
    ///   past what the partition could vouch for (written after the last good fsync before one
    ///   failed, or whose append failed).
    ///
    /// Empty after a clean shutdown, and after a crash that left every partition intact; an
    /// in-place recovery that repaired something adds its report. A repair that cut records is
    /// also reported by [`last_maintenance_error`](Self::last_maintenance_error) (task
    /// [`MaintenanceTask::Recovery`]); failures are there too, or returned by the call that met
    /// them.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = topiclog::Store::open(dir.path())?;
    /// for r in store.recovery_reports() {
    ///     if r.report.corruption_cut {
    ///         eprintln!("{}-{}: damaged records were cut: {:?}", r.topic, r.partition, r.report);
    ///     }
    /// }
    /// assert!(store.recovery_reports().is_empty()); // a new store repaired nothing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recovery_reports(&self) -> Vec<PartitionRecovery> {
        self.inner.recovery_reports.lock().clone()
    }
}
