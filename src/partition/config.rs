//! Partition configuration.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::format::{
    BATCH_HEADER_LEN, MAX_BATCH_BYTES_LIMIT, OFFSET_INDEX_ENTRY_LEN, TIME_INDEX_ENTRY_LEN,
};
use crate::fs::{FileSystem, StdFs};
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

/// How record timestamps are assigned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the record's own timestamp; records without one get the append time. Kafka:
    /// `message.timestamp.type=CreateTime`.
    #[default]
    CreateTime,
    /// Overwrite every timestamp with the log's clock at append time. Kafka: `LogAppendTime`.
    LogAppendTime,
}

/// Settings of one partition. Every field documents its default and its Kafka counterpart.
///
/// # Examples
/// ```
/// use topiclog::{Durability, PartitionConfig};
/// let config = PartitionConfig {
///     segment_bytes: 64 << 20,
///     durability: Durability::None,
///     ..PartitionConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct PartitionConfig {
    /// Roll to a new segment before one would exceed this size. Default 1 GiB. Kafka:
    /// `segment.bytes`. Range: 1 KiB ..= 2 GiB.
    pub segment_bytes: u64,
    /// Roll a non-empty segment once its first append is this old. Default 7 days; `None` never.
    /// Kafka: `segment.ms`.
    pub segment_ms: Option<Duration>,
    /// Bytes of log between offset index entries. Default 4096. Kafka: `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// Maximum size of each index file; a full index rolls the segment. Default 10 MiB. Kafka:
    /// `segment.index.bytes`.
    pub max_index_bytes: u32,
    /// Largest encoded batch accepted by an append. Default 1 MiB + 12 bytes. Kafka:
    /// `max.message.bytes`.
    pub max_batch_bytes: u32,
    /// When appends are synced. Default [`Durability::Always`]. Kafka: `flush.messages`/`flush.ms`.
    pub durability: Durability,
    /// Preallocate each new segment file to `segment_bytes` (sparse), so an fdatasync after an
    /// append need not also commit a new file size. Default `true`. Kafka: `preallocate`.
    pub preallocate: bool,
    /// What recovery does with damage that is not a torn tail. Default [`Recovery::Strict`].
    pub recovery: Recovery,
    /// Whose timestamps records keep. Default [`TimestampType::CreateTime`]. Kafka:
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// The partition is compacted (Kafka: `cleanup.policy` includes `compact`): compaction keeps
    /// the latest record per key, so an append of a record without a key is refused with
    /// [`Error::MissingKey`](crate::Error::MissingKey) instead of being dropped by the next pass,
    /// as Kafka refuses it. Default `false`.
    pub compacted: bool,
    /// How long an idempotent producer's state is kept after its last write; afterwards a batch
    /// from it is taken as new (a replay is no longer recognised), as in Kafka. Default 1 day.
    /// Kafka: `producer.id.expiration.ms`.
    pub producer_id_expiration: Duration,
    /// How often [`flush_if_due`](crate::Partition::flush_if_due) (the store's background
    /// maintenance) makes the recovery point durable when more records were synced since. Records
    /// below the recovery point are known durable, so recovery after a crash reports damage to
    /// them instead of cutting it as a torn tail; damage to acknowledged records newer than the
    /// last recovery point looks like a torn tail (as in Kafka). Each write is an atomic replace
    /// of the checkpoint (two fsyncs and a directory sync), off the append path. Default 1 s.
    /// Kafka: `log.flush.offset.checkpoint.interval.ms` (60 s).
    pub recovery_point_interval: Duration,
    /// The file system. Default the real one, [`StdFs`].
    pub file_system: Arc<dyn FileSystem>,
    /// The clock, for timestamps and time-based rolling. Default [`SystemClock`].
    pub clock: Arc<dyn Clock>,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(Duration::from_secs(7 * 24 * 3600)),
            index_interval_bytes: 4096,
            max_index_bytes: 10 << 20,
            max_batch_bytes: (1 << 20) + 12,
            durability: Durability::Always,
            preallocate: true,
            recovery: Recovery::Strict,
            timestamp_type: TimestampType::CreateTime,
            compacted: false,
            producer_id_expiration: Duration::from_secs(24 * 3600),
            recovery_point_interval: Duration::from_secs(1),
            file_system: Arc::new(StdFs),
            clock: Arc::new(SystemClock),
        }
    }
}

impl PartitionConfig {
    /// Check ranges and contradictions.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if !(1024..=(2 << 30)).contains(&self.segment_bytes) {
            return Err(Error::config(
                "segment_bytes",
                format!("{} is outside 1 KiB ..= 2 GiB", self.segment_bytes),
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
        if self.producer_id_expiration.is_zero() {
            return Err(Error::config("producer_id_expiration", "must be positive"));
        }
        if self.segment_ms.is_some_and(|d| d.is_zero()) {
            return Err(Error::config("segment_ms", "must be positive, or None"));
        }
        Ok(())
    }

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
        }
    }
}
