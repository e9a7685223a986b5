//! The store: one directory holding many topics, locked for one owner at a time, with a background
//! maintenance thread.
//!
//! ```text
//! <store>/LOCK                 flock'ed while a Store has the directory open
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

mod producer_ids;
mod upper;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::config::{LogConfig, LogOverrides};
use crate::env::Env;
use crate::error::{Error, IoContext, MaintenanceTask, Result};
use crate::fs::{create_dir_all_durable, read_all, write_atomic, FileLock, FileSystem};
use crate::partition::{Notify, Partition, RecoveryReport, MIN_MAP_BUDGET_BYTES};
use crate::topic::{
    check_name_syntax, encode_config, validate_topic_name, DefaultPartitioner, Partitioner, Topic,
    TopicConfig, TopicSettings, CONFIG_FILE, LEGACY_CONFIG_FORMAT, LOCK_FILE, MAX_PARTITIONS,
    RESERVED_PREFIX,
};

/// Prefix of the staging directory a topic is built in before it is renamed into place.
const CREATING_PREFIX: &str = "__creating.";
/// Prefix of the directory a topic is renamed to when it is deleted, before its files go.
const DELETING_PREFIX: &str = "__deleting.";

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

#[derive(Debug)]
struct StoreInner {
    dir: PathBuf,
    options: StoreOptions,
    /// The file system and clock of every partition of the store.
    env: Env,
    partitioner: Arc<dyn Partitioner>,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    topics: RwLock<BTreeMap<String, Topic>>,
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
    /// The partitions whose recovery at open repaired something.
    /// Repairs made at open, then by in-place recoveries.
    recovery_reports: Mutex<Vec<PartitionRecovery>>,
}

impl Store {
    /// Open (or create) a store in `dir` with default options, on the real file system with the
    /// system clock.
    ///
    /// # Errors
    /// As [`open_with_env`](Self::open_with_env).
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with_env(dir, StoreOptions::default(), Env::default())
    }

    /// Open (or create) a store in `dir` with `options`, on the real file system with the system
    /// clock.
    ///
    /// # Errors
    /// As [`open_with_env`](Self::open_with_env).
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::open_with_env(dir, options, Env::default())
    }

    /// Open (or create) a store in `dir`, its files on `env.fs` and its time from `env.clock`:
    /// take the directory lock, recover every partition of every topic, clear away interrupted
    /// topic creations and deletions, and start background maintenance if enabled.
    ///
    /// Every topic runs with the config persisted in its `topic.conf` (and the store-wide log
    /// settings of `options.log`); the topic defaults in `options.log` apply only to topics
    /// created from now on. A `topic.conf` written by an earlier version (format 1, where a
    /// missing key meant "the default of each open") is resolved once against `options` and
    /// rewritten as format 2.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use topiclog::fs::SimFs;
    /// use topiclog::{Env, ManualClock, Store, StoreOptions};
    /// let env = Env {
    ///     fs: Arc::new(SimFs::new(1)),
    ///     clock: Arc::new(ManualClock::new(1_700_000_000_000)),
    /// };
    /// let options = StoreOptions { background_maintenance: false, ..StoreOptions::default() };
    /// let store = Store::open_with_env("/sim/store", options, env)?;
    /// assert!(store.topics().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// What recovery repaired (a torn tail cut after a crash, damage cut under
    /// [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt), ...) is listed by
    /// [`recovery_reports`](Self::recovery_reports).
    ///
    /// # Errors
    /// - [`Error::AlreadyOpen`] if another `Store` holds the directory;
    /// - [`Error::NotAStore`] for a non-empty directory that holds no store;
    /// - [`Error::InvalidConfig`] for bad options;
    /// - [`Error::InvalidConfigFile`] naming a damaged (checksum, syntax, values) or missing
    ///   `topic.conf` of a directory that holds partitions: nothing is deleted;
    /// - [`Error::Corrupt`] naming a partition directory `topic.conf` lists but which is missing,
    ///   or one beyond its partition count that holds records;
    /// - anything [`Partition::open_with_env`](crate::Partition::open_with_env) returns.
    pub fn open_with_env(dir: impl AsRef<Path>, options: StoreOptions, env: Env) -> Result<Store> {
        options.validate()?;
        let dir = dir.as_ref().to_owned();
        let fs = env.fs.clone();
        create_dir_all_durable(&*fs, &dir).at(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        if !fs.exists(&lock_path).at(&lock_path)? && !holds_a_store(&*fs, &dir)? {
            // Never treat someone else's directory as a store.
            return Err(Error::NotAStore { path: dir });
        }
        let lock = match fs.try_lock(&lock_path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::AlreadyOpen { path: dir });
            }
            Err(e) => return Err(Error::io(lock_path, e)),
        };
        let partitioner = options.partitioner.clone().unwrap_or_else(|| {
            Arc::new(DefaultPartitioner::new(options.sticky_batch_bytes)) as Arc<dyn Partitioner>
        });

        let mut topics = BTreeMap::new();
        let mut removed_any = false;
        let mut legacy_producer_ids = false;
        for name in fs.read_dir(&dir).at(&dir)? {
            let path = dir.join(&name);
            if name.starts_with(CREATING_PREFIX) || name.starts_with(DELETING_PREFIX) {
                // An interrupted creation (never held acknowledged data) or deletion (the topic
                // was gone once the rename was durable).
                if fs.is_dir(&path).at(&path)? {
                    fs.remove_dir_all(&path).at(&path)?;
                } else {
                    fs.remove_file(&path).at(&path)?;
                }
                removed_any = true;
                continue;
            }
            if name == producer_ids::LEGACY_FILE && !fs.is_dir(&path).at(&path)? {
                legacy_producer_ids = true;
                continue;
            }
            // `__consumer_offsets` is the one internal topic; other `__` names are store files
            // (`__producer_ids`) or reserved for later versions.
            let topic_name = if is_internal(&name) {
                name == OFFSETS_TOPIC
            } else {
                check_name_syntax(&name).is_ok()
            };
            if !topic_name || !fs.is_dir(&path).at(&path)? {
                continue;
            }
            let conf_path = path.join(CONFIG_FILE);
            if !fs.exists(&conf_path).at(&conf_path)? {
                if holds_partition_dirs(&*fs, &path)? {
                    // Creation and deletion never leave a topic's directory without its config:
                    // this is damage, and the partitions may hold acknowledged records.
                    return Err(Error::InvalidConfigFile {
                        path: conf_path,
                        line: 0,
                        reason: "missing, but the directory holds partition directories: restore \
                                 topic.conf from a backup (or move the directory out of the store \
                                 if the topic is not wanted); the store does not guess a config"
                            .into(),
                    });
                }
                // An empty directory, or one holding things topiclog never writes: not ours.
                continue;
            }
            let topic = load_topic(&options, &env, &name, &path, partitioner.clone())?;
            topics.insert(name, topic);
        }
        if removed_any {
            fs.sync_dir(&dir).at(&dir)?;
        }
        if legacy_producer_ids {
            producer_ids::migrate_legacy(&*fs, &dir)?;
        }
        let recovery_reports = topics
            .iter()
            .flat_map(|(name, topic)| {
                let partitions = topic.partitions().into_iter().enumerate();
                partitions.map(move |(i, p)| PartitionRecovery {
                    topic: name.clone(),
                    partition: i as u32,
                    report: p.recovery_report(),
                })
            })
            .filter(|r| repaired(&r.report))
            .collect();

        let inner = Arc::new(StoreInner {
            extensions: Mutex::new(Vec::new()),
            watchers: Mutex::new(Vec::new()),
            dir,
            partitioner,
            lock: Mutex::new(Some(lock)),
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            closed: AtomicBool::new(false),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            maintenance: Mutex::new(None),
            cleaner: Mutex::new(None),
            last_maintenance_error: Mutex::new(None),
            last_retention_ms: std::sync::atomic::AtomicI64::new(env.clock.now_ms()),
            staging_seq: AtomicU64::new(0),
            recovery_reports: Mutex::new(recovery_reports),
            options,
            env,
        });
        if inner.options.background_maintenance {
            let handle = spawn_maintenance(
                inner.clone(),
                inner.stop.clone(),
                inner.options.maintenance_interval,
            )
            .at(&inner.dir)?;
            *inner.maintenance.lock() = Some(handle);
        }
        if inner.options.background_cleaner {
            let handle = spawn_cleaner(
                inner.clone(),
                inner.stop.clone(),
                inner.options.cleaner_backoff,
            )
            .at(&inner.dir)?;
            *inner.cleaner.lock() = Some(handle);
        }
        Ok(Store {
            inner: Arc::new(StoreHandle { core: inner }),
        })
    }

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
    /// - `offsets_dropped`: an in-place recovery ([`recover_partition`](Self::recover_partition))
    ///   dropped records written after the last good fsync before one failed.
    ///
    /// Empty after a clean shutdown, and after a crash that left every partition intact; an
    /// in-place recovery that repaired something adds its report. Failures are in
    /// [`last_maintenance_error`](Self::last_maintenance_error) or returned by the call that
    /// met them.
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

    /// Create a topic. Every log setting `config` leaves `None` is taken from the store's
    /// options now ([`StoreOptions::resolve`]) and persisted with the topic: later opens with
    /// other options do not change it; [`alter_topic_config`](Self::alter_topic_config) does.
    ///
    /// Crash-safe: the topic is built in a staging directory and renamed into place, so a crash
    /// at any point reopens with the topic complete (empty) or absent.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`] (see [`validate_topic_name`]), [`Error::TopicExists`],
    /// [`Error::InvalidConfig`], [`Error::Closed`], or an I/O error (`AlreadyExists` if a file or
    /// directory that is not a topic has the name: move it away).
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        validate_topic_name(name)?;
        let topic = inner.create_topic_locked(name, config)?;
        inner.notify_watchers();
        Ok(topic)
    }
}

impl StoreInner {
    /// Fire every signal registered with [`Store::notify_on_change`].
    fn notify_watchers(&self) {
        for n in self.watchers.lock().iter().filter_map(Weak::upgrade) {
            n.notify();
        }
    }

    /// Create a topic; the caller holds the admin lock and checked the name.
    fn create_topic_locked(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        let settings = self
            .options
            .topic_settings(config.partitions, self.options.resolve(&config.overrides))?;
        if self.topics.read().contains_key(name) {
            return Err(Error::TopicExists {
                name: name.to_owned(),
            });
        }
        let fs = &*self.env.fs;
        let path = self.dir.join(name);
        let conf_path = path.join(CONFIG_FILE);
        if fs.exists(&conf_path).at(&conf_path)? {
            // A whole topic whose creation failed after its rename into place (the commit
            // point), when the directory sync or the open failed and so did taking it away
            // (a full disk, say): adopt it, durably.
            let topic = load_topic(
                &self.options,
                &self.env,
                name,
                &path,
                self.partitioner.clone(),
            )?;
            fs.sync_dir(&self.dir).at(&self.dir)?;
            self.topics.write().insert(name.to_owned(), topic.clone());
            if topic.config() != *settings.config || topic.partition_count() != settings.partitions
            {
                return Err(Error::TopicExists {
                    name: name.to_owned(),
                });
            }
            return Ok(topic);
        }
        if fs.exists(&path).at(&path)? {
            // Not a topic (open would have loaded it or refused to open): someone else's.
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file or directory that is not a topic has this name in the store \
                     directory; move it away or choose another name",
                ),
            ));
        }
        // Build the whole topic where no open mistakes it for one, then rename it into place.
        let staging = self.staging_dir(CREATING_PREFIX)?;
        let built = (|| {
            fs.create_dir_all(&staging).at(&staging)?;
            for i in 0..settings.partitions {
                // Closed cleanly, so the open at the final path skips the rescan.
                Partition::open_with_env(
                    staging.join(i.to_string()),
                    (*settings.config).clone(),
                    self.env.clone(),
                )?
                .close()?;
            }
            let conf_path = staging.join(CONFIG_FILE);
            let text = encode_config(settings.partitions, &settings.config);
            write_atomic(fs, &conf_path, text.as_bytes()).at(&conf_path)?;
            fs.rename(&staging, &path).at(&staging)
        })();
        if let Err(e) = built {
            // The next open removes what is left if this fails too.
            let _ = fs.remove_dir_all(&staging);
            return Err(e);
        }
        // The topic exists once the rename is durable.
        let opened = fs.sync_dir(&self.dir).at(&self.dir).and_then(|()| {
            Topic::open(
                name,
                &path,
                settings,
                self.partitioner.clone(),
                &self.env,
                self.options.cleaner_buffer_bytes,
            )
        });
        match opened {
            Ok(topic) => {
                self.topics.write().insert(name.to_owned(), topic.clone());
                Ok(topic)
            }
            Err(e) => {
                // Take the half-registered topic away again, as a deletion does (the next open
                // finishes it if this fails).
                if let Ok(trash) = self.staging_dir(DELETING_PREFIX) {
                    if fs.rename(&path, &trash).is_ok() {
                        let _ = fs.sync_dir(&self.dir);
                        let _ = fs.remove_dir_all(&trash);
                    }
                }
                Err(e)
            }
        }
    }

    /// A fresh `<prefix><n>` path in the store directory.
    fn staging_dir(&self, prefix: &str) -> Result<PathBuf> {
        loop {
            let n = self.staging_seq.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("{prefix}{n}"));
            if !self.env.fs.exists(&path).at(&path)? {
                return Ok(path);
            }
        }
    }
}

impl Store {
    /// The topic called `name`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::Closed`].
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.inner.check_open()?;
        if is_internal(name) {
            return Err(Error::UnknownTopic {
                name: name.to_owned(),
            });
        }
        self.inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                name: name.to_owned(),
            })
    }

    /// The topic called `name`, created with `default_partitions` partitions and the store
    /// defaults if it does not exist.
    ///
    /// # Errors
    /// As [`create_topic`](Self::create_topic).
    pub fn topic_or_create(&self, name: &str) -> Result<Topic> {
        match self.topic(name) {
            Err(Error::UnknownTopic { .. }) => {
                let config = TopicConfig::with_partitions(self.inner.options.default_partitions);
                match self.create_topic(name, config) {
                    Err(Error::TopicExists { .. }) => self.topic(name),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// The names of all topics, sorted (internal topics, named `__...`, are not listed).
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .topics
            .read()
            .keys()
            .filter(|n| !is_internal(n))
            .cloned()
            .collect()
    }

    /// Delete a topic and all its data. Handles to it get [`Error::Closed`] afterwards.
    ///
    /// Crash-safe: the topic directory is first renamed to a `__deleting.<n>` directory (the
    /// topic is gone once that rename is durable), then removed; an interrupted removal is
    /// finished by the next open.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::Closed`]; an I/O error. If the rename fails, nothing
    /// changed and the call can be retried; after it, the topic is gone from this store even if a
    /// later step fails (a failed directory sync means a crash could still bring it back whole).
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        if is_internal(name) || !inner.topics.read().contains_key(name) {
            return Err(Error::UnknownTopic {
                name: name.to_owned(),
            });
        }
        let fs = &*inner.env.fs;
        let path = inner.dir.join(name);
        let trash = inner.staging_dir(DELETING_PREFIX)?;
        fs.rename(&path, &trash).at(&path)?;
        let topic = inner.topics.write().remove(name);
        inner.notify_watchers();
        if let Some(topic) = topic {
            // Its data is about to go (and its files moved): a failed clean close changes
            // nothing.
            let _ = topic.close();
        }
        fs.sync_dir(&inner.dir).at(&inner.dir)?;
        fs.remove_dir_all(&trash).at(&trash)?;
        fs.sync_dir(&inner.dir).at(&inner.dir)
    }

    /// Grow a topic to `new_count` partitions (never shrink, as in Kafka).
    ///
    /// Keyed records map to `murmur2(key) % partitions`, so after growth a key may map to a
    /// different partition than before (as in Kafka); records already written stay where they are.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `new_count` is not larger than the current count;
    /// [`Error::UnknownTopic`]; an I/O error.
    pub fn add_partitions(&self, name: &str, new_count: u32) -> Result<()> {
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        let topic = self.topic(name)?;
        let current = topic.partition_count();
        if new_count <= current {
            return Err(Error::config(
                "partitions",
                format!("topic {name:?} has {current} partitions; it can only grow"),
            ));
        }
        TopicConfig::with_partitions(new_count).validate()?;
        // New partitions go live only once the config naming them is durable: records sent to
        // them before that would be lost with them if the write failed. Until then they hold no
        // records, which is what lets open remove them after a crash.
        let opened = topic.open_new_partitions(new_count)?;
        let conf_path = topic.dir().join(CONFIG_FILE);
        let text = encode_config(new_count, &topic.config());
        write_atomic(&*inner.env.fs, &conf_path, text.as_bytes()).at(&conf_path)?;
        topic.add_opened_partitions(opened);
        inner.notify_watchers();
        Ok(())
    }

    /// Change a topic's configuration, like Kafka's `incrementalAlterConfigs`: `change` gets the
    /// topic's config as `topic.conf` persists it (its partition count, and every override set to
    /// the value in force) and edits the overrides; one it sets to `None` takes the store's
    /// default of this open ([`StoreOptions::log`]). The result is validated, persisted durably
    /// (`topic.conf` replaced atomically), and only then applied to the running topic: retention,
    /// cleanup and compaction policies from the next maintenance pass; durability, timestamp
    /// type, key requirement and batch size limit from the next append; segment size and age
    /// from the next roll; index settings and preallocation from the next segment. Returns the
    /// new config. It stays in force across reopens, whatever options they pass.
    ///
    /// `change` runs under the store's admin lock: it must not call this store.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use topiclog::{CleanupPolicy, Retention, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("events", TopicConfig::with_partitions(1))?;
    /// let config = store.alter_topic_config("events", |c| {
    ///     c.overrides.retention = Some(Retention::After(Duration::from_secs(24 * 3600)));
    ///     c.overrides.cleanup_policy = Some(CleanupPolicy::CompactDelete);
    /// })?;
    /// assert_eq!(config, store.topic("events")?.config());
    /// assert_eq!(config.cleanup_policy, CleanupPolicy::CompactDelete);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a value out of range or a contradiction, or a changed
    /// `partitions` (grow a topic with [`add_partitions`](Self::add_partitions)): the old config
    /// stays, on disk and live. [`Error::UnknownTopic`] (internal topics included);
    /// [`Error::Closed`]; an I/O error persisting the config: the topic keeps running with the
    /// old config, but the new one may have reached the disk (call again to settle it).
    pub fn alter_topic_config(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicConfig),
    ) -> Result<LogConfig> {
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        let topic = self.topic(name)?;
        let current = topic.config();
        let partitions = topic.partition_count();
        let mut edited = TopicConfig {
            partitions,
            overrides: current.overrides(),
        };
        change(&mut edited);
        if edited.partitions != partitions {
            return Err(Error::config(
                "partitions",
                format!(
                    "alter_topic_config cannot change the partition count of {name:?} \
                     ({partitions} to {}); grow a topic with Store::add_partitions",
                    edited.partitions
                ),
            ));
        }
        let settings = inner
            .options
            .topic_settings(partitions, inner.options.resolve(&edited.overrides))?;
        if *settings.config == current {
            return Ok(current);
        }
        let next = (*settings.config).clone();
        let conf_path = topic.dir().join(CONFIG_FILE);
        let text = encode_config(partitions, &next);
        write_atomic(&*inner.env.fs, &conf_path, text.as_bytes()).at(&conf_path)?;
        topic.apply_settings(settings)?;
        Ok(next)
    }

    /// The partitions an I/O failure (a full disk, a failed write or fsync) has latched, with what
    /// latched them, the internal offsets topic's included: they refuse writes until
    /// [`recover_partition`](Self::recover_partition) brings them back. Empty when all is well.
    pub fn poisoned_partitions(&self) -> Vec<PoisonedPartition> {
        let topics: Vec<(String, Topic)> = self
            .inner
            .topics
            .read()
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        let mut out = Vec::new();
        for (name, topic) in topics {
            for (i, p) in topic.partitions().iter().enumerate() {
                if let Some(cause) = p.poison_cause() {
                    out.push(PoisonedPartition {
                        topic: name.clone(),
                        partition: i as u32,
                        cause,
                    });
                }
            }
        }
        out
    }

    /// Bring one poisoned partition back without closing the store or any other partition (see
    /// [`Partition::recover`](crate::Partition::recover)): recovery re-runs from what is on disk
    /// and every acknowledged record stays. Producers and consumers of the partition get
    /// [`Error::Poisoned`] meanwhile and carry on afterwards with the same handles. `topic` may
    /// name the internal offsets topic (`__consumer_offsets`).
    ///
    /// # Examples
    /// ```
    /// # use topiclog::{Store, TopicConfig};
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path())?;
    /// # store.create_topic("orders", TopicConfig::with_partitions(1))?;
    /// for p in store.poisoned_partitions() {
    ///     eprintln!("{}-{} is latched: {}", p.topic, p.partition, p.cause);
    ///     // ... once the disk has room again:
    ///     let report = store.recover_partition(&p.topic, p.partition)?;
    ///     eprintln!("dropped {} offsets whose fsync failed", report.offsets_dropped);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::InvalidPartition`], [`Error::Closed`]; recovery's errors
    /// (the partition stays poisoned and the call can be repeated).
    pub fn recover_partition(&self, topic: &str, partition: u32) -> Result<RecoveryReport> {
        self.inner.check_open()?;
        let t = self
            .inner
            .topics
            .read()
            .get(topic)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                name: topic.to_owned(),
            })?;
        let report = t.partition(partition)?.recover()?;
        if repaired(&report) {
            self.inner.recovery_reports.lock().push(PartitionRecovery {
                topic: topic.to_owned(),
                partition,
                report,
            });
        }
        Ok(report)
    }

    /// Make every record of every topic durable now, the internal offsets topic included, and
    /// record each partition's recovery point (so recovery after a crash treats damage to any of
    /// them as damage, never as a torn tail), whatever the topics' durability.
    ///
    /// # Errors
    /// [`Error::Closed`]; the first error a partition's flush reported (every partition is still
    /// visited).
    pub fn flush(&self) -> Result<()> {
        self.inner.check_open()?;
        let topics: Vec<Topic> = self.inner.topics.read().values().cloned().collect();
        let mut first_err = None;
        for p in topics.iter().flat_map(|t| t.partitions()) {
            if let Err(e) = p.flush() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Run maintenance once, now: interval flushes, background sync of rolled segments,
    /// retention for every topic whose cleanup policy deletes, and a compaction pass on every
    /// partition of a compacted topic whose triggers fire. The background threads do the same
    /// (retention every `retention_check_interval`, compaction every `cleaner_backoff`); call
    /// this yourself when `background_maintenance` / `background_cleaner` are off.
    ///
    /// # Errors
    /// [`Error::Closed`]; otherwise the first failure, as an [`Error::Maintenance`] naming the
    /// task, topic and partition, with the partition's error as its cause (its
    /// [`kind`](Error::kind) is the cause's). Every partition is still visited, and every failure
    /// is recorded for [`last_maintenance_error`](Self::last_maintenance_error).
    pub fn maintain(&self) -> Result<()> {
        self.inner.maintain(true)
    }

    /// The last failure of background work: a maintenance pass (flushes, retention) or a
    /// compaction pass, whether a background thread or [`maintain`](Self::maintain) ran it. It is
    /// an [`Error::Maintenance`] naming the task, topic and partition, its cause the partition's
    /// typed error (so [`Error::kind`] says whether the next pass may get through, e.g. after a
    /// full disk, and [`Error::io_error`] has the OS error). It stays until a later failure
    /// replaces it; `None` if background work never failed since the store was opened. A
    /// partition that a failure poisoned fails every later pass with [`Error::Poisoned`] until it
    /// is reopened; that repeat never replaces a failure already kept, so the cause stays visible.
    ///
    /// Open does not report here: it either fails or opens, and what it repaired on the way (a
    /// torn tail cut after a crash, damage cut under
    /// [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt), a checkpoint rewritten)
    /// is in [`recovery_reports`](Self::recovery_reports).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Error, ErrorKind, Store};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// if let Some(Error::Maintenance { task, topic, partition, cause }) =
    ///     store.last_maintenance_error()
    /// {
    ///     let hint = if cause.kind() == ErrorKind::Retriable { "retrying" } else { "act now" };
    ///     eprintln!("{task} of {topic}-{partition} failed ({hint}): {cause}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_maintenance_error(&self) -> Option<Error> {
        self.inner.last_maintenance_error.lock().clone()
    }

    /// Close cleanly: stop maintenance, close every partition (so the next open skips the
    /// rescan) and release the directory lock. Other clones get [`Error::Closed`] afterwards;
    /// dropping the last clone closes too.
    ///
    /// # Errors
    /// The first error a partition's close reported.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl StoreInner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn maintain(&self, retention: bool) -> Result<()> {
        self.check_open()?;
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        let mut first_err = None;
        let mut failed = |task, topic: &Topic, partition, cause| {
            let e = Error::maintenance(task, topic.name(), partition, cause);
            self.record_failure(&e);
            first_err.get_or_insert(e);
        };
        for topic in &topics {
            for (i, p) in topic.partitions().iter().enumerate() {
                match p.flush_if_due() {
                    Ok(_) | Err(Error::Closed { .. }) => {}
                    Err(e) => failed(MaintenanceTask::Flush, topic, i as u32, e),
                }
            }
        }
        let now = self.env.clock.now_ms();
        let check_ms = self.options.retention_check_interval.as_millis() as i64;
        let due = now.saturating_sub(self.last_retention_ms.load(Ordering::Acquire)) >= check_ms;
        if retention || due {
            self.last_retention_ms.store(now, Ordering::Release);
            for topic in &topics {
                topic.apply_retention_each(now, |i, e| {
                    failed(MaintenanceTask::Retention, topic, i, e)
                });
            }
        }
        if retention {
            // On demand: compaction too (in the background the cleaner thread does it).
            if let Err(e) = self.compact_all() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// One compaction pass over every partition of every compacted topic whose triggers fire.
    /// Returns whether any partition was cleaned; every failure is recorded, the first returned.
    fn compact_all(&self) -> Result<bool> {
        self.check_open()?;
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        let now = self.env.clock.now_ms();
        let mut cleaned = false;
        let mut first_err = None;
        for topic in &topics {
            let report = topic.compact_each(now, |i, cause| {
                let e = Error::maintenance(MaintenanceTask::Compaction, topic.name(), i, cause);
                self.record_failure(&e);
                first_err.get_or_insert(e);
            });
            cleaned |= report.cleaned;
        }
        first_err.map_or(Ok(cleaned), Err)
    }

    /// Keep `e` for [`Store::last_maintenance_error`]. A poisoned partition fails every pass
    /// with [`Error::Poisoned`] until it is reopened: that echo never replaces a failure already
    /// kept (which may be the one that poisoned it).
    fn record_failure(&self, e: &Error) {
        let echo = matches!(e, Error::Maintenance { cause, .. } if matches!(**cause, Error::Poisoned { .. }));
        let mut last = self.last_maintenance_error.lock();
        if !(echo && last.is_some()) {
            *last = Some(e.clone());
        }
    }

    fn close(&self) -> Result<()> {
        let _admin = self.admin.lock();
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // After the flag: a consumer reads its signal's sequence number before it checks the flag
        // and sleeps on that number, so it either sees the flag or is woken.
        self.notify_watchers();
        {
            let (stopped, cv) = &*self.stop;
            *stopped.lock() = true;
            cv.notify_all();
        }
        if let Some(handle) = self.maintenance.lock().take() {
            // It finishes its current pass, then sees the stop flag.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        let mut first_err = None;
        // Closing a partition stops a compaction pass on it at its next check.
        for t in topics {
            if let Err(e) = t.close() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(handle) = self.cleaner.lock().take() {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        self.lock.lock().take();
        first_err.map_or(Ok(()), Err)
    }
}

fn spawn_maintenance(
    store: Arc<StoreInner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    interval: Duration,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("topiclog-maintenance".into())
        .spawn(move || loop {
            {
                let (stopped, cv) = &*stop;
                let mut guard = stopped.lock();
                if !*guard {
                    cv.wait_for(&mut guard, interval);
                }
                if *guard {
                    return;
                }
            }
            // Failures are kept for `last_maintenance_error`; partitions latch their own.
            let _ = store.maintain(false);
        })
}

fn spawn_cleaner(
    store: Arc<StoreInner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    backoff: Duration,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("topiclog-cleaner".into())
        .spawn(move || {
            let mut busy = false;
            loop {
                {
                    let (stopped, cv) = &*stop;
                    let mut guard = stopped.lock();
                    // Straight on while passes find work (a pass may clean only part of a
                    // partition); otherwise back off.
                    if !*guard && !busy {
                        cv.wait_for(&mut guard, backoff);
                    }
                    if *guard {
                        return;
                    }
                }
                // Failures are kept for `last_maintenance_error`; a failed partition is tried
                // again after the backoff.
                busy = matches!(store.compact_all(), Ok(true));
            }
        })
}

/// Load the topic in `path` (whose `topic.conf` exists) at store open.
fn load_topic(
    options: &StoreOptions,
    env: &Env,
    name: &str,
    path: &Path,
    partitioner: Arc<dyn Partitioner>,
) -> Result<Topic> {
    let fs = &*env.fs;
    let conf_path = path.join(CONFIG_FILE);
    let (config, format) = read_topic_config(fs, &conf_path)?;
    // Format 2 sets every override, so only the store-wide settings come from `options`; a
    // format 1 file left unset keys to the options of each open: they are pinned now, once.
    let settings = options
        .topic_settings(config.partitions, options.resolve(&config.overrides))
        .map_err(|e| Error::InvalidConfigFile {
            path: conf_path.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
    // Every listed partition was created before the config listing it was written: a missing
    // one is damage, which reopening it empty would hide.
    for i in 0..config.partitions {
        let p = path.join(i.to_string());
        if !fs.is_dir(&p).at(&p)? {
            return Err(Error::corrupt(
                &p,
                0,
                format!(
                    "partition directory missing, though {} lists {} partitions; restore it from \
                     a backup",
                    conf_path.display(),
                    config.partitions
                ),
            ));
        }
    }
    remove_unused_extra_partitions(fs, path, &conf_path, config.partitions)?;
    let tmp = path.join("topic.conf.tmp");
    if fs.exists(&tmp).at(&tmp)? {
        fs.remove_file(&tmp).at(&tmp)?;
    }
    if format == LEGACY_CONFIG_FORMAT {
        let text = encode_config(config.partitions, &settings.config);
        write_atomic(fs, &conf_path, text.as_bytes()).at(&conf_path)?;
    }
    Topic::open(
        name,
        path,
        settings,
        partitioner,
        env,
        options.cleaner_buffer_bytes,
    )
}

/// Read and check `topic.conf`: damage is [`Error::InvalidConfigFile`], a failed read
/// [`Error::Io`].
fn read_topic_config(fs: &dyn FileSystem, path: &Path) -> Result<(TopicConfig, u32)> {
    let bytes = read_all(fs, path, 64 << 10).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::InvalidConfigFile {
            path: path.to_owned(),
            line: 0,
            reason: e.to_string(),
        },
        _ => Error::io(path, e),
    })?;
    TopicConfig::decode(&bytes, path)
}

/// Whether `name` is a partition directory's name: a number without leading zeros.
fn is_partition_name(name: &str) -> Option<u32> {
    name.parse::<u32>().ok().filter(|n| n.to_string() == name)
}

/// Whether a directory holds numbered partition directories, as only a topic does.
fn holds_partition_dirs(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
    for name in fs.read_dir(dir).at(dir)? {
        let path = dir.join(&name);
        if is_partition_name(&name).is_some() && fs.is_dir(&path).at(&path)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `dir` is empty or holds a store whose `LOCK` file went missing: the lock file only
/// guards against a second opener (the next open recreates it), so a directory holding a topic
/// (a subdirectory with a `topic.conf`) or a store file (`__producer_ids`, `__consumer_offsets`)
/// is still a store.
fn holds_a_store(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
    let names = fs.read_dir(dir).at(dir)?;
    if names.is_empty() {
        return Ok(true);
    }
    for name in &names {
        if name.starts_with(producer_ids::FILE) || name == OFFSETS_TOPIC {
            return Ok(true);
        }
        let conf = dir.join(name).join(CONFIG_FILE);
        if fs.exists(&conf).at(&conf)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Remove partition directories at or above `count`: an interrupted `add_partitions` leaves them,
/// and they never held a record. One that holds any (a damaged or replaced `topic.conf`?) is
/// refused: a config must never make open delete data.
fn remove_unused_extra_partitions(
    fs: &dyn FileSystem,
    topic_dir: &Path,
    conf_path: &Path,
    count: u32,
) -> Result<()> {
    let mut removed = false;
    for name in fs.read_dir(topic_dir).at(topic_dir)? {
        let path = topic_dir.join(&name);
        if is_partition_name(&name).is_none_or(|n| n < count) || !fs.is_dir(&path).at(&path)? {
            continue;
        }
        if holds_records(fs, &path)? {
            return Err(Error::corrupt(
                &path,
                0,
                format!(
                    "partition directory holds records but {} lists only {count} partitions; \
                     restore topic.conf from a backup, or move the directory away",
                    conf_path.display()
                ),
            ));
        }
        fs.remove_dir_all(&path).at(&path)?;
        removed = true;
    }
    if removed {
        fs.sync_dir(topic_dir).at(topic_dir)?;
    }
    Ok(())
}

/// Whether a partition directory holds records (see [`crate::partition::holds_data`]). An unused
/// partition's logs are empty or preallocated zeros.
fn holds_records(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
    let names = fs.read_dir(dir).at(dir)?;
    crate::partition::holds_data(fs, dir, &names)
}
