//! What a log runs with: [`LogConfig`], every setting concrete, and [`LogOverrides`], the sparse
//! part of it a topic sets.
//!
//! A partition (and each of its segments) runs with one [`LogConfig`]. A store keeps one in its
//! options ([`StoreOptions::log`](crate::StoreOptions::log)): a topic created with
//! [`LogOverrides`] takes those defaults for every field it leaves `None`, and the store persists
//! the result in the topic's `topic.conf`. "Never" and "unlimited" are variants
//! ([`Deadline::Never`], [`Retention::Forever`], [`Limit::Unlimited`]), never sentinel values.
//! The file system and the clock are not configuration: they travel beside it in an
//! [`Env`](crate::Env).
//!
//! Configs are plain structs with public fields: build them with struct-update syntax from their
//! `Default` (`LogConfig { segment_bytes: 64 << 20, ..LogConfig::default() }`), which keeps
//! building when a later version adds a field.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::Compression;
use crate::format::{
    BATCH_HEADER_LEN, MAX_BATCH_BYTES_LIMIT, OFFSET_INDEX_ENTRY_LEN, TIME_INDEX_ENTRY_LEN,
};
use crate::partition::{CompactionPolicy, RetentionPolicy, MIN_MAP_BUDGET_BYTES};
use crate::segment::{Recovery, SegmentConfig};

/// When appended data is made durable (fsynced).
///
/// Whatever the mode, [`Partition::flush`](crate::Partition::flush) forces a sync, and a clean
/// [`close`](crate::Partition::close) syncs everything.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Never sync on append; the OS writes data back when it likes. Survives a process crash
    /// (`kill -9`), not a power loss. Kafka's default (`flush.messages` = ∞).
    None,
    /// Sync when at least this long has passed since the last sync, checked on append and by
    /// [`Partition::flush_if_due`](crate::Partition::flush_if_due). Kafka: `flush.ms`.
    Interval(Duration),
    /// Sync once at least this many records are unsynced. Kafka: `flush.messages`.
    EveryMessages(u64),
    /// Every append returns only after its data is on disk (`fdatasync`). Concurrent appenders
    /// share syncs (group commit). The default: an acknowledged append is never lost.
    #[default]
    Always,
}

/// How record timestamps are assigned. Kafka: `message.timestamp.type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the record's own timestamp; records without one get the append time. Kafka:
    /// `CreateTime`.
    #[default]
    CreateTime,
    /// Overwrite every timestamp with the log's clock at append time. Kafka: `LogAppendTime`.
    LogAppendTime,
}

/// How a topic stores batches. Kafka: the topic's `compression.type`.
///
/// # Examples
/// ```
/// use topiclog::{Compression, CompressionType, LogConfig};
/// // Every batch stored with zstd, whatever the producer sent.
/// let config = LogConfig { compression: CompressionType::Codec(Compression::Zstd), ..LogConfig::default() };
/// assert_eq!(config.compression.codec_for(Compression::Lz4), Compression::Zstd);
/// assert_eq!(CompressionType::Producer.codec_for(Compression::Lz4), Compression::Lz4);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompressionType {
    /// Keep the codec the producer chose ([`ProducerConfig::compression`](crate::ProducerConfig::compression),
    /// [`Partition::append_batch_compressed`](crate::Partition::append_batch_compressed); plain
    /// appends are uncompressed). Kafka: `producer`, the default.
    #[default]
    Producer,
    /// Store every batch uncompressed. Kafka: `uncompressed`.
    Uncompressed,
    /// Store every batch with this codec, recompressing what a producer sent with another.
    /// Kafka: `gzip`, `snappy`, `lz4`, `zstd`.
    Codec(Compression),
}

impl CompressionType {
    /// The codec a batch that its producer compressed with `requested` is stored with.
    pub fn codec_for(self, requested: Compression) -> Compression {
        match self {
            CompressionType::Producer => requested,
            CompressionType::Uncompressed => Compression::None,
            CompressionType::Codec(c) => c,
        }
    }

    /// Kafka's name of the setting's value (`producer`, `uncompressed`, or a codec's).
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed | CompressionType::Codec(Compression::None) => {
                "uncompressed"
            }
            CompressionType::Codec(c) => c.name(),
        }
    }

    /// Parse Kafka's name of a value; `None` for anything else.
    pub fn from_name(name: &str) -> Option<CompressionType> {
        match name {
            "producer" => Some(CompressionType::Producer),
            "uncompressed" => Some(CompressionType::Uncompressed),
            other => other
                .parse::<Compression>()
                .ok()
                .filter(|c| *c != Compression::None)
                .map(CompressionType::Codec),
        }
    }
}

/// What happens to old records. Kafka: `cleanup.policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Delete whole segments past the retention time or size.
    #[default]
    Delete,
    /// Keep the latest record per key (log compaction).
    Compact,
    /// Both: compact, and delete segments past retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether the log is compacted (`compact` or `compact,delete`).
    pub fn compacts(self) -> bool {
        self != CleanupPolicy::Delete
    }

    /// Whether retention deletes old segments by time and size (`delete` or `compact,delete`).
    pub fn deletes(self) -> bool {
        self != CleanupPolicy::Compact
    }
}

/// How long records are kept. Kafka: `retention.ms` (`-1` is `Forever`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Retention {
    /// Keep records forever (retention by size may still delete them).
    Forever,
    /// Delete a segment once all its records are older than this. Must be positive.
    After(Duration),
}

impl Retention {
    /// The retention time, `None` for [`Forever`](Self::Forever).
    pub fn duration(self) -> Option<Duration> {
        match self {
            Retention::Forever => None,
            Retention::After(d) => Some(d),
        }
    }
}

/// When something time-driven is forced: a segment roll, a compaction pass. Kafka: `segment.ms`,
/// `max.compaction.lag.ms` (`Long.MAX_VALUE` is `Never`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// Never forced by time.
    Never,
    /// Forced once this much time has passed. Must be positive.
    After(Duration),
}

impl Deadline {
    /// The deadline, `None` for [`Never`](Self::Never).
    pub fn duration(self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::After(d) => Some(d),
        }
    }
}

/// A size bound. Kafka: `retention.bytes` (`-1` is `Unlimited`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// No bound.
    Unlimited,
    /// At most this many bytes.
    Bytes(u64),
}

impl Limit {
    /// The bound in bytes, `None` for [`Unlimited`](Self::Unlimited).
    pub fn bytes(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Bytes(b) => Some(b),
        }
    }
}

/// Everything a log (a partition and its segments) runs with, every setting concrete. Each field
/// documents its default and its Kafka name.
///
/// A standalone [`Partition`](crate::Partition) is opened with one; in a
/// [`Store`](crate::Store), [`StoreOptions::log`](crate::StoreOptions::log) holds the defaults and
/// each topic runs with its own, resolved when it was created (see [`LogOverrides`]). The last
/// three fields (`recovery`, `producer_id_expiration`, `recovery_point_interval`) are the store's
/// in a store: a topic cannot override them, and every open applies the store's values.
///
/// Checked by [`validate`](Self::validate), which every open and every config change calls.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{Deadline, Durability, Limit, LogConfig, Partition, Retention};
/// let config = LogConfig {
///     segment_bytes: 64 << 20,
///     segment_ms: Deadline::Never, // roll by size only
///     durability: Durability::Interval(Duration::from_millis(200)),
///     retention: Retention::After(Duration::from_secs(24 * 3600)),
///     retention_bytes: Limit::Bytes(1 << 30),
///     ..LogConfig::default()
/// };
/// config.validate()?;
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open_with(dir.path(), config)?;
/// assert_eq!(log.config().segment_bytes, 64 << 20);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// Roll to a new segment before one would exceed this size. Default 1 GiB. Kafka:
    /// `segment.bytes`. Range: 1 KiB ..= 2 GiB - 1 (Kafka's `int32` file positions).
    pub segment_bytes: u64,
    /// Roll a non-empty segment once its first append is this old. Default 7 days. Kafka:
    /// `segment.ms`. A compacted log also rolls by `max_compaction_lag`, so that data in the
    /// active segment can be compacted in time.
    pub segment_ms: Deadline,
    /// Bytes of log between offset index entries. Default 4096. Kafka: `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// Maximum size of each index file; a full index rolls the segment. Default 10 MiB. Kafka:
    /// `segment.index.bytes`. At least one entry (12 bytes).
    pub max_index_bytes: u32,
    /// Largest encoded batch (and so record) an append accepts. Default 1 MiB + 12 bytes. Kafka:
    /// `max.message.bytes`. Range: 65 bytes (a batch header and one small record) ..=
    /// [`MAX_BATCH_BYTES_LIMIT`](crate::limits::MAX_BATCH_BYTES_LIMIT).
    pub max_batch_bytes: u32,
    /// When appends are synced. Default [`Durability::Always`]. Kafka: `flush.messages` /
    /// `flush.ms`.
    pub durability: Durability,
    /// Preallocate the active segment's file ahead of its data, so an fdatasync after an append
    /// need not also commit a new file size: 256 KiB at first, then doubling, by at most 64 MiB a
    /// step, never past `segment_bytes` (a near-empty partition takes 256 KiB, not a whole
    /// segment, even where files cannot be sparse); a clean close or roll cuts what is unused.
    /// Default `true`. Kafka: `preallocate`.
    pub preallocate: bool,
    /// Appends are gathered in memory up to this many bytes and written to the segment file
    /// with one `pwrite` (write coalescing), instead of one `pwrite` per batch; 0 writes each
    /// batch as it is appended. Default 0 (off). Range: 0 ..= 64 MiB; 1 MiB is what large
    /// buffered appends want (see `BENCHMARKS.md`).
    ///
    /// Nothing waits on the buffer: a read of a buffered record (in this process) writes the
    /// buffer out first, so readers and tailing consumers see every append at once, and every
    /// sync, roll and close writes it out before anything else; in a store, background
    /// maintenance also writes it out every
    /// [`maintenance_interval`](crate::StoreOptions::maintenance_interval) (100 ms by default),
    /// as does every [`Partition::flush_if_due`](crate::Partition::flush_if_due). What it costs:
    /// until then a buffered record is only in this process's memory, so a process crash
    /// (`kill -9`, an abort) loses the newest appends that were not synced, up to this many bytes
    /// (never a synced one: under [`Durability::Always`] every append is written out and synced
    /// before it returns); with 0 they are in the OS page cache at once and survive a process
    /// crash, though not a power loss. The store's, in a store.
    pub write_buffer_bytes: u32,
    /// Whose timestamps records keep. Default [`TimestampType::CreateTime`]. Kafka:
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// Delete segments whose records are all older than this (applied by retention passes).
    /// Default 7 days. Kafka: `retention.ms`.
    pub retention: Retention,
    /// Delete the oldest segments while a partition is larger than this. Default
    /// [`Limit::Unlimited`]. Kafka: `retention.bytes`.
    pub retention_bytes: Limit,
    /// Whether old records are deleted by retention, compacted, or both. Default
    /// [`CleanupPolicy::Delete`]. Kafka: `cleanup.policy`. A compacted log keeps the latest record
    /// per key, so an append of a record without a key is refused with
    /// [`Error::MissingKey`](crate::Error::MissingKey) instead of being dropped by the next pass,
    /// as Kafka refuses it.
    pub cleanup_policy: CleanupPolicy,
    /// How long a tombstone stays after compaction first saw it (so consumers reading behind
    /// still see the delete). Default 1 day. Kafka: `delete.retention.ms`.
    pub delete_retention: Duration,
    /// Records stay uncompacted at least this long after they were written. Default 0. Kafka:
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag: Duration,
    /// Compact dirty data once it is this old, whatever the dirty ratio (and roll the active
    /// segment by then, so it can be). Default [`Deadline::Never`]. Kafka:
    /// `max.compaction.lag.ms`. Not below `min_compaction_lag`.
    pub max_compaction_lag: Deadline,
    /// Compact once more than this share of the cleanable log is dirty (0.0 ..= 1.0; 1.0 never
    /// triggers by ratio alone). Default 0.5. Kafka: `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// How batches are stored: the producer's codec, uncompressed, or one codec for all
    /// (compaction rewrites with it too). Default [`CompressionType::Producer`]. Kafka:
    /// `compression.type`.
    pub compression: CompressionType,
    /// What recovery does with damage that is not a torn tail. Default [`Recovery::Strict`].
    /// (No Kafka counterpart: Kafka always truncates.) The store's, in a store.
    pub recovery: Recovery,
    /// How long an idempotent producer's state is kept after its last write; afterwards a batch
    /// from it is taken as new (a replay is no longer recognised), as in Kafka. Default 1 day.
    /// Kafka: `producer.id.expiration.ms`. The store's, in a store.
    pub producer_id_expiration: Duration,
    /// How often [`flush_if_due`](crate::Partition::flush_if_due) (the store's background
    /// maintenance) makes the recovery point durable when more records were synced since. Records
    /// below the recovery point are known durable, so recovery after a crash reports damage to
    /// them instead of cutting it as a torn tail; damage to acknowledged records newer than the
    /// last recovery point looks like a torn tail (as in Kafka). Each write is an atomic replace
    /// of the checkpoint (two fsyncs and a directory sync), off the append path. Default 1 s.
    /// Kafka: `log.flush.offset.checkpoint.interval.ms` (60 s). The store's, in a store.
    pub recovery_point_interval: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Deadline::After(Duration::from_secs(7 * 24 * 3600)),
            index_interval_bytes: 4096,
            max_index_bytes: 10 << 20,
            max_batch_bytes: (1 << 20) + 12,
            durability: Durability::Always,
            preallocate: true,
            write_buffer_bytes: 0,
            timestamp_type: TimestampType::CreateTime,
            retention: Retention::After(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: Limit::Unlimited,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention: Duration::from_secs(24 * 3600),
            min_compaction_lag: Duration::ZERO,
            max_compaction_lag: Deadline::Never,
            min_cleanable_dirty_ratio: 0.5,
            compression: CompressionType::Producer,
            recovery: Recovery::Strict,
            producer_id_expiration: Duration::from_secs(24 * 3600),
            recovery_point_interval: Duration::from_secs(1),
        }
    }
}

impl LogConfig {
    /// Check every range and contradiction, in one place.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if let CompressionType::Codec(c) = self.compression {
            if !c.is_available() {
                return Err(crate::format::codec_unavailable(c));
            }
        }
        // Kafka's index entries hold positions as int32, so a segment stays below 2 GiB.
        if !(1024..=crate::format::MAX_SEGMENT_RELATIVE).contains(&self.segment_bytes) {
            return Err(Error::config(
                "segment_bytes",
                format!("{} is outside 1 KiB ..= 2 GiB - 1", self.segment_bytes),
            ));
        }
        if self.segment_ms == Deadline::After(Duration::ZERO) {
            return Err(Error::config(
                "segment_ms",
                "must be positive (Deadline::Never rolls by size only)",
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err(Error::config("index_interval_bytes", "must be at least 1"));
        }
        if (self.max_index_bytes as usize) < OFFSET_INDEX_ENTRY_LEN.max(TIME_INDEX_ENTRY_LEN) {
            return Err(Error::config(
                "max_index_bytes",
                "must hold at least one entry (12 bytes)",
            ));
        }
        let min_batch = BATCH_HEADER_LEN as u32 + 8;
        if self.max_batch_bytes < min_batch || self.max_batch_bytes as usize > MAX_BATCH_BYTES_LIMIT
        {
            return Err(Error::config(
                "max_batch_bytes",
                format!(
                    "{} is outside {min_batch} ..= {MAX_BATCH_BYTES_LIMIT}",
                    self.max_batch_bytes
                ),
            ));
        }
        match self.durability {
            Durability::EveryMessages(0) => {
                return Err(Error::config(
                    "durability",
                    "EveryMessages(0): use Durability::Always",
                ))
            }
            Durability::Interval(d) if d.is_zero() => {
                return Err(Error::config(
                    "durability",
                    "Interval(0): use Durability::Always",
                ))
            }
            _ => {}
        }
        if self.retention == Retention::After(Duration::ZERO) {
            return Err(Error::config(
                "retention",
                "must be positive (Retention::Forever keeps records forever)",
            ));
        }
        if self.max_compaction_lag == Deadline::After(Duration::ZERO) {
            return Err(Error::config(
                "max_compaction_lag",
                "must be positive (Deadline::Never: only the dirty ratio triggers compaction)",
            ));
        }
        // The dirty ratio's range and the lags' order, as every compaction pass checks them.
        self.compaction_policy(MIN_MAP_BUDGET_BYTES).validate()?;
        if self.write_buffer_bytes > 64 << 20 {
            return Err(Error::config(
                "write_buffer_bytes",
                "must be at most 64 MiB (0 writes each batch as it is appended)",
            ));
        }
        if self.producer_id_expiration.is_zero() {
            return Err(Error::config("producer_id_expiration", "must be positive"));
        }
        Ok(())
    }

    /// This config with every field `overrides` sets replaced.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{LogConfig, LogOverrides, Retention};
    /// let defaults = LogConfig::default();
    /// let topic = defaults.with_overrides(&LogOverrides {
    ///     retention: Some(Retention::Forever),
    ///     ..LogOverrides::default()
    /// });
    /// assert_eq!(topic.retention, Retention::Forever);
    /// assert_eq!(topic.segment_bytes, defaults.segment_bytes);
    /// ```
    pub fn with_overrides(&self, overrides: &LogOverrides) -> LogConfig {
        let LogOverrides {
            segment_bytes,
            segment_ms,
            index_interval_bytes,
            max_index_bytes,
            max_batch_bytes,
            durability,
            preallocate,
            timestamp_type,
            retention,
            retention_bytes,
            cleanup_policy,
            delete_retention,
            min_compaction_lag,
            max_compaction_lag,
            min_cleanable_dirty_ratio,
            compression,
        } = *overrides;
        LogConfig {
            segment_bytes: segment_bytes.unwrap_or(self.segment_bytes),
            segment_ms: segment_ms.unwrap_or(self.segment_ms),
            index_interval_bytes: index_interval_bytes.unwrap_or(self.index_interval_bytes),
            max_index_bytes: max_index_bytes.unwrap_or(self.max_index_bytes),
            max_batch_bytes: max_batch_bytes.unwrap_or(self.max_batch_bytes),
            durability: durability.unwrap_or(self.durability),
            preallocate: preallocate.unwrap_or(self.preallocate),
            timestamp_type: timestamp_type.unwrap_or(self.timestamp_type),
            retention: retention.unwrap_or(self.retention),
            retention_bytes: retention_bytes.unwrap_or(self.retention_bytes),
            cleanup_policy: cleanup_policy.unwrap_or(self.cleanup_policy),
            delete_retention: delete_retention.unwrap_or(self.delete_retention),
            min_compaction_lag: min_compaction_lag.unwrap_or(self.min_compaction_lag),
            max_compaction_lag: max_compaction_lag.unwrap_or(self.max_compaction_lag),
            min_cleanable_dirty_ratio: min_cleanable_dirty_ratio
                .unwrap_or(self.min_cleanable_dirty_ratio),
            compression: compression.unwrap_or(self.compression),
            recovery: self.recovery,
            producer_id_expiration: self.producer_id_expiration,
            recovery_point_interval: self.recovery_point_interval,
            write_buffer_bytes: self.write_buffer_bytes,
        }
    }

    /// Every setting a topic can override, each set to this config's value: what `topic.conf`
    /// pins.
    pub fn overrides(&self) -> LogOverrides {
        LogOverrides {
            segment_bytes: Some(self.segment_bytes),
            segment_ms: Some(self.segment_ms),
            index_interval_bytes: Some(self.index_interval_bytes),
            max_index_bytes: Some(self.max_index_bytes),
            max_batch_bytes: Some(self.max_batch_bytes),
            durability: Some(self.durability),
            preallocate: Some(self.preallocate),
            timestamp_type: Some(self.timestamp_type),
            retention: Some(self.retention),
            retention_bytes: Some(self.retention_bytes),
            cleanup_policy: Some(self.cleanup_policy),
            delete_retention: Some(self.delete_retention),
            min_compaction_lag: Some(self.min_compaction_lag),
            max_compaction_lag: Some(self.max_compaction_lag),
            min_cleanable_dirty_ratio: Some(self.min_cleanable_dirty_ratio),
            compression: Some(self.compression),
        }
    }

    /// What a retention pass applies: the retention time and size, or, when the cleanup policy
    /// only compacts, nothing (segments wholly below the log start offset still go).
    pub fn retention_policy(&self) -> RetentionPolicy {
        if self.cleanup_policy.deletes() {
            RetentionPolicy {
                retention: self.retention,
                retention_bytes: self.retention_bytes,
            }
        } else {
            RetentionPolicy::default()
        }
    }

    /// What a compaction pass applies, with `map_budget_bytes` of memory for its key map.
    pub fn compaction_policy(&self, map_budget_bytes: usize) -> CompactionPolicy {
        CompactionPolicy {
            delete_retention: self.delete_retention,
            min_compaction_lag: self.min_compaction_lag,
            max_compaction_lag: self.max_compaction_lag,
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
            map_budget_bytes,
        }
    }

    /// How old the active segment may get before it rolls: `segment_ms`, or for a compacted log
    /// `max_compaction_lag` if that is sooner (Kafka does the same), so that the data in it can
    /// be compacted in time.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use topiclog::{CleanupPolicy, Deadline, LogConfig};
    /// let hour = Duration::from_secs(3600);
    /// let config = LogConfig {
    ///     cleanup_policy: CleanupPolicy::Compact,
    ///     max_compaction_lag: Deadline::After(hour),
    ///     ..LogConfig::default()
    /// };
    /// assert_eq!(config.roll_after(), Deadline::After(hour));
    /// ```
    pub fn roll_after(&self) -> Deadline {
        let age = self.segment_ms.duration();
        let lag = if self.cleanup_policy.compacts() {
            self.max_compaction_lag.duration()
        } else {
            None
        };
        match (age, lag) {
            (Some(a), Some(l)) => Deadline::After(a.min(l)),
            (a, l) => a.or(l).map_or(Deadline::Never, Deadline::After),
        }
    }

    /// What a segment needs from the config.
    /// What a segment of a standalone log needs: batch offsets must increase, and may skip
    /// (people building their own log on [`Segment`](crate::segment::Segment) place batches
    /// where they like).
    pub(crate) fn standalone_segment_config(&self) -> SegmentConfig {
        SegmentConfig {
            offset_gaps_below: u64::MAX,
            kafka_epochs_below: u64::MAX,
            ..self.segment_config()
        }
    }

    /// What a segment of a partition needs: batch offsets continue exactly (see
    /// `SegmentConfig::offset_gaps_below`).
    pub(crate) fn segment_config(&self) -> SegmentConfig {
        SegmentConfig {
            index_interval_bytes: self.index_interval_bytes,
            max_index_bytes: self.max_index_bytes,
            preallocate_bytes: if self.preallocate {
                self.segment_bytes
            } else {
                0
            },
            max_batch_bytes: self.max_batch_bytes,
            write_buffer_bytes: self.write_buffer_bytes,
            recovery: self.recovery,
            offset_gaps_below: 0,
            kafka_epochs_below: 0,
        }
    }

    /// This config with every duration in whole milliseconds, a fraction rounded up, as Kafka and
    /// `topic.conf` keep them; a deadline or retention too long to count in `u64` milliseconds is
    /// `Never`/`Forever`.
    pub(crate) fn in_whole_millis(&self) -> LogConfig {
        let deadline = |d: Deadline| match d.duration().map(whole_millis) {
            Some(d) if d != Duration::MAX => Deadline::After(d),
            _ => Deadline::Never,
        };
        LogConfig {
            segment_ms: deadline(self.segment_ms),
            durability: match self.durability {
                Durability::Interval(d) => Durability::Interval(whole_millis(d)),
                other => other,
            },
            retention: match self.retention.duration().map(whole_millis) {
                Some(d) if d != Duration::MAX => Retention::After(d),
                _ => Retention::Forever,
            },
            delete_retention: whole_millis(self.delete_retention),
            min_compaction_lag: whole_millis(self.min_compaction_lag),
            max_compaction_lag: deadline(self.max_compaction_lag),
            producer_id_expiration: whole_millis(self.producer_id_expiration),
            recovery_point_interval: whole_millis(self.recovery_point_interval),
            ..self.clone()
        }
    }
}

/// The settings a topic sets; every field left `None` takes the store's default
/// ([`StoreOptions::log`](crate::StoreOptions::log)) **when the topic is created**. The store then
/// persists the topic's resolved settings in its `topic.conf`, and later opens never change them,
/// whatever options they pass; [`Store::alter_topic_config`](crate::Store::alter_topic_config)
/// does. Each field is the [`LogConfig`] field of the same name (see it for defaults and Kafka
/// names).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{CleanupPolicy, LogOverrides, Retention, TopicConfig};
/// let config = TopicConfig {
///     partitions: 6,
///     overrides: LogOverrides {
///         retention: Some(Retention::After(Duration::from_secs(24 * 3600))),
///         cleanup_policy: Some(CleanupPolicy::CompactDelete),
///         ..LogOverrides::default()
///     },
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOverrides {
    /// Kafka: `segment.bytes`.
    pub segment_bytes: Option<u64>,
    /// Kafka: `segment.ms`.
    pub segment_ms: Option<Deadline>,
    /// Kafka: `index.interval.bytes`.
    pub index_interval_bytes: Option<u32>,
    /// Kafka: `segment.index.bytes`.
    pub max_index_bytes: Option<u32>,
    /// Kafka: `max.message.bytes`.
    pub max_batch_bytes: Option<u32>,
    /// Kafka: `flush.messages` / `flush.ms`.
    pub durability: Option<Durability>,
    /// Kafka: `preallocate`.
    pub preallocate: Option<bool>,
    /// Kafka: `message.timestamp.type`.
    pub timestamp_type: Option<TimestampType>,
    /// Kafka: `retention.ms`.
    pub retention: Option<Retention>,
    /// Kafka: `retention.bytes`.
    pub retention_bytes: Option<Limit>,
    /// Kafka: `cleanup.policy`.
    pub cleanup_policy: Option<CleanupPolicy>,
    /// Kafka: `delete.retention.ms`.
    pub delete_retention: Option<Duration>,
    /// Kafka: `min.compaction.lag.ms`.
    pub min_compaction_lag: Option<Duration>,
    /// Kafka: `max.compaction.lag.ms`.
    pub max_compaction_lag: Option<Deadline>,
    /// Kafka: `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: Option<f64>,
    /// Kafka: `compression.type`.
    pub compression: Option<CompressionType>,
}

/// `d` in whole milliseconds, a fraction rounded up; anything of `u64::MAX` milliseconds or more
/// is `Duration::MAX`.
pub(crate) fn whole_millis(d: Duration) -> Duration {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    match u64::try_from(ms) {
        Ok(ms) if ms < u64::MAX => Duration::from_millis(ms),
        _ => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_millis_rounds_up_and_saturates() {
        assert_eq!(whole_millis(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            whole_millis(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            whole_millis(Duration::from_micros(1500)),
            Duration::from_millis(2)
        );
        assert_eq!(
            whole_millis(Duration::from_millis(7)),
            Duration::from_millis(7)
        );
        assert_eq!(whole_millis(Duration::from_secs(u64::MAX)), Duration::MAX);
        assert_eq!(whole_millis(Duration::from_millis(u64::MAX)), Duration::MAX);
        assert_eq!(whole_millis(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn in_whole_millis_turns_unmeasurable_times_into_never() {
        let c = LogConfig {
            segment_ms: Deadline::After(Duration::MAX),
            retention: Retention::After(Duration::from_secs(u64::MAX)),
            max_compaction_lag: Deadline::After(Duration::from_micros(1500)),
            delete_retention: Duration::from_nanos(1),
            ..LogConfig::default()
        }
        .in_whole_millis();
        assert_eq!(c.segment_ms, Deadline::Never);
        assert_eq!(c.retention, Retention::Forever);
        assert_eq!(
            c.max_compaction_lag,
            Deadline::After(Duration::from_millis(2))
        );
        assert_eq!(c.delete_retention, Duration::from_millis(1));
    }

    #[test]
    fn overrides_round_trip_and_apply() {
        let base = LogConfig::default();
        assert_eq!(base.with_overrides(&LogOverrides::default()), base);
        let other = LogConfig {
            segment_bytes: 4096,
            segment_ms: Deadline::Never,
            retention: Retention::Forever,
            retention_bytes: Limit::Bytes(10),
            cleanup_policy: CleanupPolicy::Compact,
            max_compaction_lag: Deadline::After(Duration::from_secs(1)),
            min_cleanable_dirty_ratio: 0.1,
            ..base.clone()
        };
        assert_eq!(base.with_overrides(&other.overrides()), other);
        // The store's own settings are not overrides.
        let store = LogConfig {
            recovery: Recovery::TruncateCorrupt,
            ..base.clone()
        };
        assert_eq!(
            store.with_overrides(&other.overrides()).recovery,
            Recovery::TruncateCorrupt
        );
    }

    #[test]
    fn roll_age_includes_the_compaction_lag_of_compacted_logs() {
        let hour = Duration::from_secs(3600);
        let c = LogConfig {
            segment_ms: Deadline::Never,
            max_compaction_lag: Deadline::After(hour),
            ..LogConfig::default()
        };
        assert_eq!(
            c.roll_after(),
            Deadline::Never,
            "a deleting log ignores the lag"
        );
        let compacted = LogConfig {
            cleanup_policy: CleanupPolicy::CompactDelete,
            ..c.clone()
        };
        assert_eq!(compacted.roll_after(), Deadline::After(hour));
        let shorter = LogConfig {
            segment_ms: Deadline::After(Duration::from_secs(60)),
            ..compacted
        };
        assert_eq!(
            shorter.roll_after(),
            Deadline::After(Duration::from_secs(60))
        );
    }

    #[test]
    fn validate_names_the_field() {
        let zero = Duration::ZERO;
        let base = LogConfig::default;
        let cases: Vec<(&str, LogConfig)> = vec![
            (
                "segment_bytes",
                LogConfig {
                    segment_bytes: 1023,
                    ..base()
                },
            ),
            (
                "segment_ms",
                LogConfig {
                    segment_ms: Deadline::After(zero),
                    ..base()
                },
            ),
            (
                "index_interval_bytes",
                LogConfig {
                    index_interval_bytes: 0,
                    ..base()
                },
            ),
            (
                "max_index_bytes",
                LogConfig {
                    max_index_bytes: 11,
                    ..base()
                },
            ),
            (
                "max_batch_bytes",
                LogConfig {
                    max_batch_bytes: 10,
                    ..base()
                },
            ),
            (
                "durability",
                LogConfig {
                    durability: Durability::Interval(zero),
                    ..base()
                },
            ),
            (
                "retention",
                LogConfig {
                    retention: Retention::After(zero),
                    ..base()
                },
            ),
            (
                "max_compaction_lag",
                LogConfig {
                    max_compaction_lag: Deadline::After(zero),
                    ..base()
                },
            ),
            (
                "max_compaction_lag",
                LogConfig {
                    min_compaction_lag: Duration::from_secs(2),
                    max_compaction_lag: Deadline::After(Duration::from_secs(1)),
                    ..base()
                },
            ),
            (
                "min_cleanable_dirty_ratio",
                LogConfig {
                    min_cleanable_dirty_ratio: -0.1,
                    ..base()
                },
            ),
            (
                "producer_id_expiration",
                LogConfig {
                    producer_id_expiration: zero,
                    ..base()
                },
            ),
        ];
        for (field, config) in cases {
            match config.validate() {
                Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        // "Never" and "forever" are valid everywhere they are allowed.
        LogConfig {
            segment_ms: Deadline::Never,
            retention: Retention::Forever,
            retention_bytes: Limit::Unlimited,
            max_compaction_lag: Deadline::Never,
            min_compaction_lag: Duration::from_secs(3600),
            ..base()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn retention_policy_follows_the_cleanup_policy() {
        let c = LogConfig {
            retention_bytes: Limit::Bytes(5),
            ..LogConfig::default()
        };
        assert_eq!(c.retention_policy().retention_bytes, Limit::Bytes(5));
        let compact = LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..c
        };
        assert_eq!(compact.retention_policy(), RetentionPolicy::default());
    }
}
