//! Topics: a name, a configuration and N partitions, with Kafka's partitioning rules.
//!
//! Directory layout, inside the store directory:
//! ```text
//! <topic>/topic.conf     the topic's resolved configuration (format 2: every key, checksummed)
//! <topic>/<n>/...        partition n (segments, checkpoint), for every n below the partition count
//! ```

mod config;
mod kafka_keys;
mod partitioner;

pub use config::{TopicConfig, MAX_PARTITIONS};
pub use partitioner::{key_partition, murmur2, DefaultPartitioner, Partitioner};

pub(crate) use config::{
    encode as encode_config, FILE_NAME as CONFIG_FILE, LEGACY_FORMAT as LEGACY_CONFIG_FORMAT,
};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::{LogConfig, TimestampType};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::format::Record;
use crate::partition::{CompactionPolicy, CompactionReport, Partition, RetentionReport};
use crate::progress::{Observer, Progress};

/// Longest topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Names starting with this belong to the store: internal topics (`__consumer_offsets`, as in
/// Kafka) and store-level files (`__producer_ids`, staging directories). No user topic can take one.
pub(crate) const RESERVED_PREFIX: &str = "__";

/// The store's lock file, next to the topic directories. Reserved in every letter case, since a
/// case-insensitive file system would take `lock` for it.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Check a topic name: 1 to 249 characters of `[A-Za-z0-9._-]`, not `.` or `..` (so it can never
/// escape the store directory), not starting with `__` (reserved for the store's internal topics
/// and files, like Kafka's `__consumer_offsets`) and not `LOCK` in any letter case (the store's
/// lock file).
///
/// # Errors
/// [`Error::InvalidTopicName`] saying what is wrong.
///
/// # Examples
/// ```
/// assert!(topiclog::validate_topic_name("orders.v2").is_ok());
/// assert!(topiclog::validate_topic_name("../etc").is_err());
/// assert!(topiclog::validate_topic_name("__consumer_offsets").is_err());
/// assert!(topiclog::validate_topic_name("lock").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> Result<()> {
    check_name_syntax(name)?;
    let reject = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.starts_with(RESERVED_PREFIX) {
        return reject(
            "names starting with '__' are reserved for the store's internal topics and files",
        );
    }
    if name.eq_ignore_ascii_case(LOCK_FILE) {
        return reject(
            "is reserved: the store's lock file is called LOCK (in any letter case, for \
             case-insensitive file systems)",
        );
    }
    Ok(())
}

/// The characters and length rules alone: what a topic directory's name must satisfy to be opened
/// (a topic an earlier version let through, such as `lock`, still opens).
pub(crate) fn check_name_syntax(name: &str) -> Result<()> {
    let reject = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return reject("is empty");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return reject("is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return reject("'.' and '..' are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return reject("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Where a sent record landed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition.
    pub partition: u32,
    /// The record's offset in that partition; `u64::MAX` if unknown (a producer with
    /// [`Acks::None`](crate::Acks::None), like Kafka's `-1`).
    pub offset: u64,
    /// The record's timestamp as stored (its own, or the append time).
    pub timestamp: i64,
}

impl RecordMetadata {
    /// Whether the offset is known.
    pub fn has_offset(&self) -> bool {
        self.offset != u64::MAX
    }
}

/// A topic: named, configured, split into partitions. Cheap to clone; `Send + Sync`.
///
/// Obtained from [`Store::create_topic`](crate::Store::create_topic) or
/// [`Store::topic`](crate::Store::topic).
#[derive(Clone, Debug)]
pub struct Topic {
    inner: Arc<TopicInner>,
}

#[derive(Debug)]
struct TopicInner {
    name: String,
    dir: PathBuf,
    /// Replaced whole by [`Store::alter_topic_config`](crate::Store::alter_topic_config) and
    /// `add_partitions`; readers take a snapshot.
    settings: RwLock<Arc<TopicSettings>>,
    /// Bumped after every change of `settings`, so a cached snapshot can tell it is stale.
    settings_version: AtomicU64,
    partitions: RwLock<Arc<Vec<Partition>>>,
    partitioner: Arc<dyn Partitioner>,
    /// The store's file system and clock.
    env: Env,
    /// Memory for a compaction pass's key map (the store's `cleaner_buffer_bytes`).
    map_budget_bytes: usize,
    /// The store's progress observer, for every partition opened (each named by topic and
    /// number).
    progress: Option<Arc<dyn Progress>>,
}

/// What a topic runs with: its config (validated), as persisted in `topic.conf` but for the
/// store's own settings, which come from the store's options.
#[derive(Clone, Debug)]
pub(crate) struct TopicSettings {
    pub partitions: u32,
    pub config: Arc<LogConfig>,
}

impl Topic {
    /// Open the topic's partitions, `0..settings.partitions`, in `dir` (creating missing
    /// partition directories: the caller checked which may be created), each reporting its
    /// recovery and compaction passes to `progress`.
    pub(crate) fn open(
        name: &str,
        dir: &Path,
        settings: TopicSettings,
        partitioner: Arc<dyn Partitioner>,
        env: &Env,
        map_budget_bytes: usize,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<Topic> {
        let partitions = open_partitions(
            name,
            dir,
            0..settings.partitions,
            &settings.config,
            env,
            progress.as_ref(),
        )?;
        Ok(Topic {
            inner: Arc::new(TopicInner {
                name: name.to_owned(),
                dir: dir.to_owned(),
                settings: RwLock::new(Arc::new(settings)),
                settings_version: AtomicU64::new(0),
                partitions: RwLock::new(Arc::new(partitions)),
                partitioner,
                env: env.clone(),
                map_budget_bytes,
                progress,
            }),
        })
    }

    pub(crate) fn settings(&self) -> Arc<TopicSettings> {
        self.inner.settings.read().clone()
    }

    /// Changes with every change of the topic's settings (config, partition count): a snapshot
    /// of [`settings`](Self::settings) taken at version `v` is current while this returns `v`.
    pub(crate) fn settings_version(&self) -> u64 {
        self.inner.settings_version.load(Ordering::Acquire)
    }

    /// Open partitions `current..new_count` without making them live yet.
    pub(crate) fn open_new_partitions(&self, new_count: u32) -> Result<Vec<Partition>> {
        let current = self.partition_count();
        open_partitions(
            &self.inner.name,
            &self.inner.dir,
            current..new_count,
            &self.settings().config,
            &self.inner.env,
            self.inner.progress.as_ref(),
        )
    }

    /// Make partitions opened by [`open_new_partitions`](Self::open_new_partitions) live (after
    /// the caller persisted the new partition count).
    pub(crate) fn add_opened_partitions(&self, opened: Vec<Partition>) {
        let mut list = self.inner.partitions.read().as_ref().clone();
        list.extend(opened);
        let count = list.len() as u32;
        *self.inner.partitions.write() = Arc::new(list);
        let mut settings = self.inner.settings.write();
        *settings = Arc::new(TopicSettings {
            partitions: count,
            ..(**settings).clone()
        });
        self.inner.settings_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Run with `settings` from now on (after the caller persisted its config): every
    /// partition's configuration, then the topic's policies.
    ///
    /// # Errors
    /// As [`Partition::set_config`] (the caller validated `settings`, so in practice none).
    pub(crate) fn apply_settings(&self, settings: TopicSettings) -> Result<()> {
        for p in self.partitions() {
            p.set_config((*settings.config).clone())?;
        }
        *self.inner.settings.write() = Arc::new(settings);
        self.inner.settings_version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Whether `other` is a handle to this very topic (not one deleted and recreated under the
    /// same name).
    pub(crate) fn same_topic(&self, other: &Topic) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The topic's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The config every partition of the topic runs with: resolved against the store's defaults
    /// when the topic was created and persisted in `topic.conf` (the store's own settings,
    /// `recovery`, `producer_id_expiration` and `recovery_point_interval`, are those of this
    /// open). A snapshot: [`Store::alter_topic_config`](crate::Store::alter_topic_config)
    /// replaces it.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{CleanupPolicy, Retention, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let topic = store.create_topic("orders", TopicConfig::with_partitions(2))?;
    /// let config = topic.config();
    /// assert_eq!(config.cleanup_policy, CleanupPolicy::Delete);
    /// assert_eq!(config.retention, store.options().log.retention);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> LogConfig {
        (*self.settings().config).clone()
    }

    /// The compaction policy a pass applies: the config's compaction settings with the store's
    /// `cleaner_buffer_bytes`. Used only if the cleanup policy compacts.
    pub fn compaction_policy(&self) -> CompactionPolicy {
        self.settings()
            .config
            .compaction_policy(self.inner.map_budget_bytes)
    }

    /// Run a compaction pass on every partition whose triggers fire, if the cleanup policy
    /// compacts (`compact` or `compact,delete`); otherwise do nothing. Returns the partitions'
    /// reports summed (`cleaned` if any partition was cleaned; `dirty_ratio` the largest;
    /// `first_dirty_offset` the smallest).
    ///
    /// # Errors
    /// The first error a partition reported; every partition is still visited.
    pub fn compact(&self, now_ms: i64) -> Result<CompactionReport> {
        let mut first_err = None;
        let total = self.compact_each(now_ms, |_, e| {
            first_err.get_or_insert(e);
        });
        first_err.map_or(Ok(total), Err)
    }

    /// [`compact`](Self::compact), handing each partition's error (but [`Error::Closed`]) to
    /// `failed` with the partition number.
    pub(crate) fn compact_each(
        &self,
        now_ms: i64,
        mut failed: impl FnMut(u32, Error),
    ) -> CompactionReport {
        let mut total = CompactionReport::default();
        if !self.settings().config.cleanup_policy.compacts() {
            return total;
        }
        let policy = self.compaction_policy();
        let mut first_dirty = u64::MAX;
        for (i, p) in self.partitions().iter().enumerate() {
            match p.compact(now_ms, &policy) {
                Ok(r) => {
                    total.cleaned |= r.cleaned;
                    total.dirty_ratio = total.dirty_ratio.max(r.dirty_ratio);
                    first_dirty = first_dirty.min(r.first_dirty_offset);
                    total.map_full |= r.map_full;
                    total.keys_mapped += r.keys_mapped;
                    total.segments_read += r.segments_read;
                    total.segments_written += r.segments_written;
                    total.bytes_read += r.bytes_read;
                    total.bytes_written += r.bytes_written;
                    total.records_read += r.records_read;
                    total.records_removed += r.records_removed;
                    total.tombstones_removed += r.tombstones_removed;
                    total.keyless_removed += r.keyless_removed;
                }
                Err(Error::Closed { .. }) => {}
                Err(e) => failed(i as u32, e),
            }
        }
        total.first_dirty_offset = if first_dirty == u64::MAX {
            0
        } else {
            first_dirty
        };
        total
    }

    /// Apply the topic's retention to every partition now: by time and size if its cleanup policy
    /// deletes (`delete` or `compact,delete`), and in every case to segments wholly below a
    /// partition's log start offset. Returns the total segments and bytes deleted.
    ///
    /// # Errors
    /// The first error a partition reported; every partition is still visited.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionReport> {
        let mut first_err = None;
        let total = self.apply_retention_each(now_ms, |_, e| {
            first_err.get_or_insert(e);
        });
        first_err.map_or(Ok(total), Err)
    }

    /// [`apply_retention`](Self::apply_retention), handing each partition's error (but
    /// [`Error::Closed`]) to `failed` with the partition number.
    pub(crate) fn apply_retention_each(
        &self,
        now_ms: i64,
        mut failed: impl FnMut(u32, Error),
    ) -> RetentionReport {
        let mut total = RetentionReport::default();
        // A compacted topic keeps records by key, not by age or size; but segments wholly below
        // its log start offset (delete_records) still go, as in Kafka.
        let policy = self.settings().config.retention_policy();
        for (i, p) in self.partitions().iter().enumerate() {
            match p.apply_retention(now_ms, &policy) {
                Ok(r) => {
                    total.segments_deleted += r.segments_deleted;
                    total.bytes_deleted += r.bytes_deleted;
                }
                Err(Error::Closed { .. }) => {}
                Err(e) => failed(i as u32, e),
            }
        }
        total
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.inner.partitions.read().len() as u32
    }

    /// Partition `partition`.
    ///
    /// # Errors
    /// [`Error::InvalidPartition`] if there is no such partition.
    pub fn partition(&self, partition: u32) -> Result<Partition> {
        let list = self.inner.partitions.read();
        list.get(partition as usize)
            .cloned()
            .ok_or_else(|| Error::InvalidPartition {
                topic: self.inner.name.clone(),
                partition,
                partitions: list.len() as u32,
            })
    }

    /// All partitions, in order.
    pub fn partitions(&self) -> Vec<Partition> {
        self.inner.partitions.read().as_ref().clone()
    }

    /// Each partition's [`stats`](Partition::stats), by partition number.
    pub fn stats(&self) -> Vec<crate::PartitionStats> {
        self.partitions().iter().map(Partition::stats).collect()
    }

    /// Each partition's start offset, by partition number.
    pub fn start_offsets(&self) -> Vec<u64> {
        self.inner
            .partitions
            .read()
            .iter()
            .map(Partition::start_offset)
            .collect()
    }

    /// Each partition's end offset, by partition number.
    pub fn end_offsets(&self) -> Vec<u64> {
        self.inner
            .partitions
            .read()
            .iter()
            .map(Partition::end_offset)
            .collect()
    }

    /// Send a record to the partition the partitioner picks: by key hash (Kafka's murmur2) if it
    /// has a key, sticky otherwise. Durable per the topic's durability when it returns.
    ///
    /// # Errors
    /// [`Error::MissingKey`] for a record without a key on a compacted topic; otherwise as
    /// [`Partition::append_batch_with`].
    pub fn send(&self, record: Record) -> Result<RecordMetadata> {
        let settings = self.settings();
        self.check_keys(&settings, std::slice::from_ref(&record))?;
        let partitions = self.inner.partitions.read().clone();
        let p = self.choose(&record, partitions.len() as u32);
        Self::append_one(
            &partitions,
            p,
            &self.inner.name,
            record,
            settings.config.timestamp_type,
        )
    }

    /// Send a record to an explicit partition.
    ///
    /// # Errors
    /// [`Error::InvalidPartition`], or as [`Partition::append_batch_with`].
    pub fn send_to(&self, partition: u32, record: Record) -> Result<RecordMetadata> {
        let settings = self.settings();
        self.check_keys(&settings, std::slice::from_ref(&record))?;
        let partitions = self.inner.partitions.read().clone();
        Self::append_one(
            &partitions,
            partition,
            &self.inner.name,
            record,
            settings.config.timestamp_type,
        )
    }

    /// Send many records: each is partitioned as by [`send`](Self::send), and the records bound
    /// for one partition are appended there as one atomic batch (in their original order). Returns
    /// metadata in the order of `records`.
    ///
    /// Batches to different partitions are independent: if one fails, those before it are kept.
    ///
    /// # Errors
    /// [`Error::MissingKey`] for a record without a key on a compacted topic; otherwise as
    /// [`Partition::append_batch_with`].
    pub fn send_batch(&self, records: &[Record]) -> Result<Vec<RecordMetadata>> {
        let settings = self.settings();
        self.check_keys(&settings, records)?;
        let partitions = self.inner.partitions.read().clone();
        let n = partitions.len() as u32;
        let mut chosen = Vec::with_capacity(records.len());
        let mut groups: Vec<Vec<&Record>> = vec![Vec::new(); n as usize];
        for r in records {
            let p = self.choose(r, n);
            chosen.push(p);
            groups[p as usize].push(r);
        }
        let log_append = settings.config.timestamp_type == TimestampType::LogAppendTime;
        // Per partition: offset of its first record and the append time.
        let mut firsts = vec![(0u64, 0i64); n as usize];
        for (p, group) in groups.iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let info = partitions[p].append_batch(group)?;
            firsts[p] = (info.base_offset, info.append_time);
        }
        let mut next_index = vec![0u64; n as usize];
        Ok(records
            .iter()
            .zip(chosen)
            .map(|(r, p)| {
                let (base, append_time) = firsts[p as usize];
                let offset = base + next_index[p as usize];
                next_index[p as usize] += 1;
                RecordMetadata {
                    partition: p,
                    offset,
                    timestamp: stored_timestamp(r, append_time, log_append),
                }
            })
            .collect())
    }

    /// Sync every partition and record its recovery point.
    ///
    /// # Errors
    /// As [`Partition::flush_checkpoint`].
    pub fn flush(&self) -> Result<()> {
        for p in self.partitions() {
            p.flush_checkpoint()?;
        }
        Ok(())
    }

    /// Close every partition cleanly.
    pub(crate) fn close(&self) -> Result<()> {
        close_all(&self.partitions())
    }

    /// A compacted topic keeps records by key: refuse keyless ones before anything is written.
    fn check_keys(&self, settings: &TopicSettings, records: &[Record]) -> Result<()> {
        if settings.config.cleanup_policy.compacts() && records.iter().any(|r| r.key().is_none()) {
            return Err(Error::MissingKey {
                topic: self.inner.name.clone(),
            });
        }
        Ok(())
    }

    fn choose(&self, record: &Record, partitions: u32) -> u32 {
        let value_len = record.value().map_or(0, |v| v.len());
        self.inner.partitioner.partition(
            &self.inner.name,
            record.key().map(|k| k.as_ref()),
            value_len,
            partitions,
        ) % partitions.max(1)
    }

    fn append_one(
        partitions: &[Partition],
        partition: u32,
        topic: &str,
        record: Record,
        timestamp_type: TimestampType,
    ) -> Result<RecordMetadata> {
        let p = partitions
            .get(partition as usize)
            .ok_or_else(|| Error::InvalidPartition {
                topic: topic.to_owned(),
                partition,
                partitions: partitions.len() as u32,
            })?;
        let info = p.append_batch(std::slice::from_ref(&record))?;
        Ok(RecordMetadata {
            partition,
            offset: info.base_offset,
            timestamp: stored_timestamp(
                &record,
                info.append_time,
                timestamp_type == TimestampType::LogAppendTime,
            ),
        })
    }
}

/// Open partitions `range` of the topic `name` in `dir`.
fn open_partitions(
    name: &str,
    dir: &Path,
    range: std::ops::Range<u32>,
    config: &LogConfig,
    env: &Env,
    progress: Option<&Arc<dyn Progress>>,
) -> Result<Vec<Partition>> {
    // Side by side (issue 13); on a failure the partitions opened are dropped, which closes them.
    let first = range.start;
    let n = range.len();
    in_parallel(n, |i| {
        let i = first + i as u32;
        let observer = progress.map(|p| Observer::new(p.clone(), Some(name), Some(i)));
        let dir = dir.join(i.to_string());
        Partition::open_observed(&dir, config.clone(), env.clone(), observer)
    })
    .into_iter()
    .collect()
}

fn stored_timestamp(record: &Record, append_time: i64, log_append: bool) -> i64 {
    if log_append {
        append_time
    } else {
        record.timestamp().unwrap_or(append_time)
    }
}

/// Threads that partitions are opened and closed on at most (issue 13). Opening and closing a
/// partition is a few small reads and writes and a handful of `fsync`s, mostly waiting for the
/// disk: side by side, a journaling file system commits the syncs together, so a store of 1,000
/// partitions opens and closes in about the time of a few dozen.
pub(crate) const PARTITION_THREADS: usize = 32;

/// `f(0), f(1), ..., f(n - 1)`, up to [`PARTITION_THREADS`] at a time, in order. Each is run
/// whatever the others return. Where no thread can be started, this thread does the work.
pub(crate) fn in_parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = n.min(PARTITION_THREADS);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = parking_lot::Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        let worker = || loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return;
            }
            let out = f(i);
            done.lock().push((i, out));
        };
        for _ in 1..threads {
            // One that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new()
                .name("topiclog-partitions".into())
                .spawn_scoped(scope, worker);
        }
        worker();
    });
    let mut done = done.into_inner();
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, out)| out).collect()
}

/// Close `partitions` side by side ([`in_parallel`]). Every one is closed whatever the others
/// report; the error returned is that of the first in `partitions` that failed.
pub(crate) fn close_all(partitions: &[Partition]) -> Result<()> {
    in_parallel(partitions.len(), |i| partitions[i].close())
        .into_iter()
        .collect::<Result<Vec<()>>>()
        .map(|_| ())
}
