//! What a partition has done since it was opened, as a plain snapshot ([`Partition::stats`]):
//! counters kept on the paths that do the work (one relaxed atomic add per append, per read call
//! and per sync, no lock), plus gauges read when the snapshot is taken.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::Partition;

/// A partition's figures ([`Partition::stats`]); counters count from when it was opened. Each
/// field names its Kafka counterpart (a broker's JMX metric) where there is one.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionStats {
    /// The log start offset. Kafka: `kafka.log:type=Log,name=LogStartOffset`.
    pub start_offset: u64,
    /// The log end offset (the next offset to be appended). Kafka: `LogEndOffset`.
    pub end_offset: u64,
    /// Every record below this offset is durable (synced). Kafka has no single-broker
    /// counterpart (its recovery point, `recovery-point-offset-checkpoint`, trails it).
    pub durable_offset: u64,
    /// Bytes of record batches in the segments (not counting preallocated space). Kafka: `Size`.
    pub size_bytes: u64,
    /// Segments. Kafka: `NumLogSegments`.
    pub segments: usize,
    /// Record batches appended. Kafka: `kafka.server:type=BrokerTopicMetrics,name=TotalProduceRequestsPerSec` (per request, not batch).
    pub batches_appended: u64,
    /// Records appended. Kafka: `MessagesInPerSec` (its count).
    pub records_appended: u64,
    /// Bytes of record batches appended. Kafka: `BytesInPerSec` (its count).
    pub bytes_appended: u64,
    /// Record batches served by reads (a batch read twice counts twice).
    pub batches_read: u64,
    /// Records in the batches served by reads (records below the offset asked for included).
    pub records_read: u64,
    /// Bytes of the batches served by reads. Kafka: `BytesOutPerSec` (its count).
    pub bytes_read: u64,
    /// `fdatasync`s of the active segment (group commits), each shared by every append and flush
    /// waiting for it. Kafka: `kafka.log:type=LogFlushStats,name=LogFlushRateAndTimeMs` (its
    /// count).
    pub syncs: u64,
    /// Appends waiting for durability when each of those syncs began, summed: `appends_synced /
    /// syncs` is how many appends a sync carried (the group-commit sharing ratio). An append
    /// that arrives while a sync is being set up is carried but not counted, so this is a lower
    /// bound. No Kafka counterpart.
    pub appends_synced: u64,
    /// Median sync time: the upper bound of its power-of-two bucket (so within 2× above), capped
    /// at the maximum. Kafka: `LogFlushRateAndTimeMs` 50th percentile.
    pub sync_p50: Duration,
    /// 99th percentile sync time, as [`sync_p50`](Self::sync_p50). Kafka: its 99th percentile.
    pub sync_p99: Duration,
    /// Longest sync. Kafka: `LogFlushRateAndTimeMs` max.
    pub sync_max: Duration,
    /// Retention passes run ([`Partition::apply_retention`], by hand or from a store's
    /// maintenance).
    pub retention_passes: u64,
    /// Bytes of segments retention deleted. Kafka: none per partition (the log's `Size` drops).
    pub retention_bytes_deleted: u64,
    /// When the last retention pass ran, by the clock its caller passed (`None`: not yet).
    pub last_retention_ms: Option<i64>,
    /// Compaction passes that cleaned something. Kafka: `kafka.log:type=LogCleaner` passes
    /// (`cleaner-recopy-percent`, `max-clean-time-secs` describe them).
    pub compaction_passes: u64,
    /// Bytes compaction took back (read minus written). Kafka: the cleaner's
    /// `max-buffer-utilization-percent` and log `Size` show it only indirectly.
    pub compaction_bytes_reclaimed: u64,
    /// When the last compaction pass that cleaned something ran, by its caller's clock.
    pub last_compaction_ms: Option<i64>,
    /// The partition refuses writes until recovered
    /// ([`Partition::is_poisoned`]). Kafka: an offline log directory
    /// (`kafka.log:type=LogManager,name=OfflineLogDirectoryCount`).
    pub poisoned: bool,
}

/// Power-of-two microsecond buckets: bucket `b` holds durations in `[2^(b-1), 2^b)` µs (bucket 0:
/// under 1 µs), the last one everything longer.
const BUCKETS: usize = 40;

/// The counters behind [`PartitionStats`].
#[derive(Debug)]
pub(super) struct Counters {
    pub batches_appended: AtomicU64,
    pub records_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub batches_read: AtomicU64,
    pub records_read: AtomicU64,
    pub bytes_read: AtomicU64,
    pub appends_synced: AtomicU64,
    sync_buckets: [AtomicU64; BUCKETS],
    sync_max_us: AtomicU64,
    pub retention_passes: AtomicU64,
    pub retention_bytes_deleted: AtomicU64,
    pub last_retention_ms: AtomicI64,
    pub compaction_passes: AtomicU64,
    pub compaction_bytes_reclaimed: AtomicU64,
    pub last_compaction_ms: AtomicI64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            batches_appended: AtomicU64::new(0),
            records_appended: AtomicU64::new(0),
            bytes_appended: AtomicU64::new(0),
            batches_read: AtomicU64::new(0),
            records_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            appends_synced: AtomicU64::new(0),
            sync_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sync_max_us: AtomicU64::new(0),
            retention_passes: AtomicU64::new(0),
            retention_bytes_deleted: AtomicU64::new(0),
            last_retention_ms: AtomicI64::new(i64::MIN),
            compaction_passes: AtomicU64::new(0),
            compaction_bytes_reclaimed: AtomicU64::new(0),
            last_compaction_ms: AtomicI64::new(i64::MIN),
        }
    }
}

/// Add `n` to a counter (relaxed: a snapshot needs no order between counters).
pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// A sync that took `took` and carried `appends` waiting appends.
    pub(super) fn sync_done(&self, took: Duration, appends: u64) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = ((u64::BITS - us.leading_zeros()) as usize).min(BUCKETS - 1);
        if let Some(b) = self.sync_buckets.get(bucket) {
            add(b, 1);
        }
        self.sync_max_us.fetch_max(us, Ordering::Relaxed);
        add(&self.appends_synced, appends);
    }

    /// The sync time below which a share `q` (0..=1) of the syncs fall, as its bucket's upper
    /// bound capped at the maximum; zero before the first sync.
    fn sync_quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .sync_buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        let max = self.sync_max_us.load(Ordering::Relaxed);
        for (b, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = if b == 0 { 1 } else { 1u64 << b.min(63) };
                return Duration::from_micros(upper.min(max));
            }
        }
        Duration::from_micros(max)
    }
}

fn when(ms: &AtomicI64) -> Option<i64> {
    Some(ms.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN)
}

impl Partition {
    /// What this partition holds and has done since it was opened: offsets, size, segments,
    /// appends and reads, syncs (count, time percentiles, how many appends each carried), and
    /// the retention and compaction passes. Cheap: counters read without locks, plus the segment
    /// list. See [`PartitionStats`] for each field's Kafka counterpart.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Partition, Record};
    /// let dir = tempfile::tempdir()?;
    /// let log = Partition::open(dir.path())?; // Durability::Always
    /// log.append_batch(&[Record::new("a"), Record::new("b")])?;
    /// log.read(0, 1 << 20)?;
    /// let stats = log.stats();
    /// assert_eq!((stats.end_offset, stats.records_appended, stats.records_read), (2, 2, 2));
    /// assert_eq!((stats.syncs, stats.appends_synced), (1, 1));
    /// assert!(stats.sync_max >= stats.sync_p50);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> PartitionStats {
        let inner = &*self.inner;
        let c = &inner.counters;
        let segments = inner.segments.read().clone();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PartitionStats {
            start_offset: self.start_offset(),
            end_offset: self.end_offset(),
            durable_offset: self.durable_offset(),
            size_bytes: segments.iter().map(|s| s.appended_size()).sum(),
            segments: segments.len(),
            batches_appended: load(&c.batches_appended),
            records_appended: load(&c.records_appended),
            bytes_appended: load(&c.bytes_appended),
            batches_read: load(&c.batches_read),
            records_read: load(&c.records_read),
            bytes_read: load(&c.bytes_read),
            syncs: self.sync_count(),
            appends_synced: load(&c.appends_synced),
            sync_p50: c.sync_quantile(0.5),
            sync_p99: c.sync_quantile(0.99),
            sync_max: Duration::from_micros(c.sync_max_us.load(Ordering::Relaxed)),
            retention_passes: load(&c.retention_passes),
            retention_bytes_deleted: load(&c.retention_bytes_deleted),
            last_retention_ms: when(&c.last_retention_ms),
            compaction_passes: load(&c.compaction_passes),
            compaction_bytes_reclaimed: load(&c.compaction_bytes_reclaimed),
            last_compaction_ms: when(&c.last_compaction_ms),
            poisoned: self.is_poisoned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_quantiles_are_bucket_bounds_capped_at_the_maximum() {
        let c = Counters::default();
        assert_eq!(c.sync_quantile(0.5), Duration::ZERO);
        for us in [100, 110, 120, 130, 900] {
            c.sync_done(Duration::from_micros(us), 2);
        }
        // 100..130 µs fall in [64, 128) and [128, 256): the median's bucket ends at 128 µs.
        assert_eq!(c.sync_quantile(0.5), Duration::from_micros(128));
        // The slowest: its bucket [512, 1024) is capped at the maximum seen.
        assert_eq!(c.sync_quantile(0.99), Duration::from_micros(900));
        assert_eq!(c.appends_synced.load(Ordering::Relaxed), 10);
    }
}
