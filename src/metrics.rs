//! The stats snapshots ([`Store::stats`], [`Store::group_lag`], [`Producer::stats`],
//! [`Consumer::stats`]) published as counters and gauges through the
//! [`metrics`](https://docs.rs/metrics) facade (Cargo feature `metrics`), for whatever recorder
//! the application installed: a Prometheus exporter, StatsD, OpenTelemetry.
//!
//! Publishing is pulled, never pushed from the work: the counters stay the relaxed atomics the
//! stats read, and a call here takes one snapshot and hands every figure to the recorder. Call
//! [`publish_store`] (and [`publish_producer`], [`publish_consumer`]) when your exporter is
//! scraped, or let a [`MetricsPublisher`] thread do it every interval. Call [`describe`] once
//! after installing the recorder so it has every metric's help text and unit (the publisher
//! does).
//!
//! ```
//! use topiclog::{metrics, Record, Store, TopicConfig};
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("events", TopicConfig::with_partitions(1))?;
//! store.topic("events")?.send(Record::new("e"))?;
//! // After installing a recorder (e.g. `PrometheusBuilder::new().install_recorder()`):
//! metrics::describe();
//! metrics::publish_store(&store)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Names
//!
//! Stable (more may be added). Counters end in `_total`; units are in the names and given to
//! the recorder ([`describe`]); offsets and counts of records have none. Each row names the
//! [`PartitionStats`], [`PartitionLag`], [`ProducerStats`](crate::ProducerStats) or
//! [`ConsumerStats`](crate::ConsumerStats) field it
//! publishes and, where there is one, its Kafka counterpart (a broker's JMX metric, a client
//! metric, or a column of `kafka-consumer-groups --describe`).
//!
//! Per partition, labels `topic` and `partition` (every topic, the internal `__consumer_offsets`
//! included), from [`publish_store`] or [`publish_partition`]:
//!
//! | name | type | field | Kafka |
//! |---|---|---|---|
//! | `topiclog_partition_start_offset` | gauge | `start_offset` | `LogStartOffset` |
//! | `topiclog_partition_end_offset` | gauge | `end_offset` | `LogEndOffset` |
//! | `topiclog_partition_durable_offset` | gauge | `durable_offset` | — |
//! | `topiclog_partition_size_bytes` | gauge | `size_bytes` | `Size` |
//! | `topiclog_partition_segments` | gauge | `segments` | `NumLogSegments` |
//! | `topiclog_partition_appended_batches_total` | counter | `batches_appended` | `TotalProduceRequestsPerSec` (per request) |
//! | `topiclog_partition_appended_records_total` | counter | `records_appended` | `MessagesInPerSec` |
//! | `topiclog_partition_appended_bytes_total` | counter | `bytes_appended` | `BytesInPerSec` |
//! | `topiclog_partition_read_batches_total` | counter | `batches_read` | — |
//! | `topiclog_partition_read_records_total` | counter | `records_read` | — |
//! | `topiclog_partition_read_bytes_total` | counter | `bytes_read` | `BytesOutPerSec` |
//! | `topiclog_partition_syncs_total` | counter | `syncs` | `LogFlushRateAndTimeMs` (count) |
//! | `topiclog_partition_synced_appends_total` | counter | `appends_synced` | — |
//! | `topiclog_partition_sync_seconds` | gauge, label `quantile` = `0.5`, `0.99`, `1` | `sync_p50`, `sync_p99`, `sync_max` | `LogFlushRateAndTimeMs` (50th, 99th percentile, max) |
//! | `topiclog_partition_retention_passes_total` | counter | `retention_passes` | — |
//! | `topiclog_partition_retention_deleted_bytes_total` | counter | `retention_bytes_deleted` | — |
//! | `topiclog_partition_last_retention_timestamp_seconds` | gauge | `last_retention_ms` (absent before the first pass) | — |
//! | `topiclog_partition_compaction_passes_total` | counter | `compaction_passes` | `LogCleaner` passes |
//! | `topiclog_partition_compaction_reclaimed_bytes_total` | counter | `compaction_bytes_reclaimed` | — |
//! | `topiclog_partition_last_compaction_timestamp_seconds` | gauge | `last_compaction_ms` (absent before the first pass) | — |
//! | `topiclog_partition_poisoned` | gauge, 0 or 1 | `poisoned` | `OfflineLogDirectoryCount` |
//!
//! Per consumer group and partition it has committed, labels `group`, `topic` and `partition`,
//! from [`publish_store`] or [`publish_group_lag`]:
//!
//! | name | type | field | Kafka |
//! |---|---|---|---|
//! | `topiclog_group_committed_offset` | gauge | `committed.offset` | `CURRENT-OFFSET` |
//! | `topiclog_group_lag_records` | gauge | `lag` | `LAG` |
//!
//! Per producer, label `client_id` (yours to choose), from [`publish_producer`]:
//!
//! | name | type | field | Kafka |
//! |---|---|---|---|
//! | `topiclog_producer_sent_batches_total` | counter | `batches_sent` | — (`batch-size-avg` is bytes over batches) |
//! | `topiclog_producer_sent_records_total` | counter | `records_sent` | `record-send-total` |
//! | `topiclog_producer_sent_bytes_total` | counter | `bytes_sent` | `outgoing-byte-total` |
//! | `topiclog_producer_failed_batches_total` | counter | `batches_failed` | — |
//! | `topiclog_producer_failed_records_total` | counter | `records_failed` | `record-error-total` |
//! | `topiclog_producer_buffered_bytes` | gauge | `buffered_bytes` | `buffer-total-bytes` − `buffer-available-bytes` |
//! | `topiclog_producer_buffer_wait_nanoseconds_total` | counter | `buffer_wait` | `bufferpool-wait-time-ns-total` |
//!
//! Per consumer, labels `client_id` and `group` (its [`ConsumerConfig`](crate::ConsumerConfig)'s
//! `client_id` and `group_id`, empty without a group), from [`publish_consumer`]:
//!
//! | name | type | field | Kafka |
//! |---|---|---|---|
//! | `topiclog_consumer_polls_total` | counter | `polls` | — |
//! | `topiclog_consumer_consumed_records_total` | counter | `records_consumed` | `records-consumed-total` |
//! | `topiclog_consumer_commits_total` | counter | `commits` | `commit-total` |
//! | `topiclog_consumer_failed_commits_total` | counter | `commits_failed` | — |
//! | `topiclog_consumer_assigned_partitions` | gauge | `assigned_partitions` | `assigned-partitions` |
//! | `topiclog_consumer_lag_max_records` | gauge | `records_lag_max` (0 while no partition has a position) | `records-lag-max` |
//! | `topiclog_consumer_lag_records` | gauge | `records_lag_total` | the sum of `records-lag` |
//!
//! # What to know
//!
//! - Counters count from when the store was opened (or the producer or consumer created) and
//!   are handed over with [`Counter::absolute`](::metrics::Counter::absolute). Recorders keep the largest value they were
//!   given, so after a store is reopened in the same process its counters stay flat until they
//!   pass the figures of the earlier open.
//! - Sync times are published as gauges with a `quantile` label (a summary without sum and
//!   count, `topiclog_partition_syncs_total` being the count), not as a histogram: the partition
//!   keeps power-of-two buckets, not samples, so a quantile is its bucket's upper bound capped at
//!   the maximum (see [`PartitionStats::sync_p50`]).
//! - Series of a deleted topic or group stay in the recorder with their last values; labels do
//!   not name the store, so publish one store per recorder.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ::metrics::{KeyName, Label, SharedString, Unit};

use crate::error::{Error, IoContext, Result};
use crate::partition::Notify;
use crate::store::OFFSETS_TOPIC;
use crate::{Consumer, PartitionLag, PartitionStats, Producer, Store};

/// A counter or a gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric: its name, kind, unit and help text, as [`describe`] hands them to the recorder.
#[derive(Debug)]
struct Metric {
    name: &'static str,
    kind: Kind,
    unit: Option<Unit>,
    help: &'static str,
}

impl Metric {
    const fn counter(name: &'static str, unit: Option<Unit>, help: &'static str) -> Metric {
        Metric {
            name,
            kind: Kind::Counter,
            unit,
            help,
        }
    }

    const fn gauge(name: &'static str, unit: Option<Unit>, help: &'static str) -> Metric {
        Metric {
            name,
            kind: Kind::Gauge,
            unit,
            help,
        }
    }

    fn absolute(&self, labels: &[Label], value: u64) {
        debug_assert_eq!(self.kind, Kind::Counter);
        ::metrics::counter!(self.name, labels.iter()).absolute(value);
    }

    fn set(&self, labels: &[Label], value: f64) {
        debug_assert_eq!(self.kind, Kind::Gauge);
        ::metrics::gauge!(self.name, labels.iter()).set(value);
    }
}

const BYTES: Option<Unit> = Some(Unit::Bytes);
const SECONDS: Option<Unit> = Some(Unit::Seconds);
const COUNT: Option<Unit> = Some(Unit::Count);

const START_OFFSET: Metric = Metric::gauge(
    "topiclog_partition_start_offset",
    None,
    "Log start offset, the first offset kept. Kafka: LogStartOffset.",
);
const END_OFFSET: Metric = Metric::gauge(
    "topiclog_partition_end_offset",
    None,
    "Log end offset, the next offset to be appended. Kafka: LogEndOffset.",
);
const DURABLE_OFFSET: Metric = Metric::gauge(
    "topiclog_partition_durable_offset",
    None,
    "Every record below this offset is synced to disk.",
);
const SIZE: Metric = Metric::gauge(
    "topiclog_partition_size_bytes",
    BYTES,
    "Bytes of record batches in the partition's segments. Kafka: Size.",
);
const SEGMENTS: Metric = Metric::gauge(
    "topiclog_partition_segments",
    COUNT,
    "Segments of the partition. Kafka: NumLogSegments.",
);
const APPENDED_BATCHES: Metric = Metric::counter(
    "topiclog_partition_appended_batches_total",
    COUNT,
    "Record batches appended since the store opened.",
);
const APPENDED_RECORDS: Metric = Metric::counter(
    "topiclog_partition_appended_records_total",
    COUNT,
    "Records appended since the store opened. Kafka: MessagesInPerSec.",
);
const APPENDED_BYTES: Metric = Metric::counter(
    "topiclog_partition_appended_bytes_total",
    BYTES,
    "Bytes of record batches appended since the store opened. Kafka: BytesInPerSec.",
);
const READ_BATCHES: Metric = Metric::counter(
    "topiclog_partition_read_batches_total",
    COUNT,
    "Record batches served by reads since the store opened.",
);
const READ_RECORDS: Metric = Metric::counter(
    "topiclog_partition_read_records_total",
    COUNT,
    "Records in the batches served by reads since the store opened.",
);
const READ_BYTES: Metric = Metric::counter(
    "topiclog_partition_read_bytes_total",
    BYTES,
    "Bytes of the batches served by reads since the store opened. Kafka: BytesOutPerSec.",
);
const SYNCS: Metric = Metric::counter(
    "topiclog_partition_syncs_total",
    COUNT,
    "fdatasyncs of the active segment (group commits). Kafka: LogFlushRateAndTimeMs count.",
);
const SYNCED_APPENDS: Metric = Metric::counter(
    "topiclog_partition_synced_appends_total",
    COUNT,
    "Appends carried by those syncs (a lower bound); over syncs_total, appends per sync.",
);
const SYNC_TIME: Metric = Metric::gauge(
    "topiclog_partition_sync_seconds",
    SECONDS,
    "Sync time at quantile 0.5, 0.99 and 1 (the maximum), power-of-two bucket bounds. \
     Kafka: LogFlushRateAndTimeMs.",
);
const RETENTION_PASSES: Metric = Metric::counter(
    "topiclog_partition_retention_passes_total",
    COUNT,
    "Retention passes run since the store opened.",
);
const RETENTION_DELETED: Metric = Metric::counter(
    "topiclog_partition_retention_deleted_bytes_total",
    BYTES,
    "Bytes of segments retention deleted since the store opened.",
);
const LAST_RETENTION: Metric = Metric::gauge(
    "topiclog_partition_last_retention_timestamp_seconds",
    SECONDS,
    "When the last retention pass ran, by the store's clock (seconds since the epoch).",
);
const COMPACTION_PASSES: Metric = Metric::counter(
    "topiclog_partition_compaction_passes_total",
    COUNT,
    "Compaction passes that cleaned something since the store opened. Kafka: LogCleaner.",
);
const COMPACTION_RECLAIMED: Metric = Metric::counter(
    "topiclog_partition_compaction_reclaimed_bytes_total",
    BYTES,
    "Bytes compaction took back (read minus written) since the store opened.",
);
const LAST_COMPACTION: Metric = Metric::gauge(
    "topiclog_partition_last_compaction_timestamp_seconds",
    SECONDS,
    "When the last compaction pass that cleaned something ran, by the store's clock.",
);
const POISONED: Metric = Metric::gauge(
    "topiclog_partition_poisoned",
    None,
    "1 while an I/O failure has latched the partition (it refuses writes until recovered). \
     Kafka: OfflineLogDirectoryCount.",
);
const GROUP_COMMITTED: Metric = Metric::gauge(
    "topiclog_group_committed_offset",
    None,
    "The group's committed offset (the next to consume). Kafka: CURRENT-OFFSET.",
);
const GROUP_LAG: Metric = Metric::gauge(
    "topiclog_group_lag_records",
    COUNT,
    "Log end offset minus the group's committed offset. Kafka: LAG.",
);
const PRODUCER_BATCHES: Metric = Metric::counter(
    "topiclog_producer_sent_batches_total",
    COUNT,
    "Batches the producer appended.",
);
const PRODUCER_RECORDS: Metric = Metric::counter(
    "topiclog_producer_sent_records_total",
    COUNT,
    "Records the producer appended. Kafka: record-send-total.",
);
const PRODUCER_BYTES: Metric = Metric::counter(
    "topiclog_producer_sent_bytes_total",
    BYTES,
    "Bytes of the batches the producer appended, before compression. Kafka: outgoing-byte-total.",
);
const PRODUCER_FAILED_BATCHES: Metric = Metric::counter(
    "topiclog_producer_failed_batches_total",
    COUNT,
    "Batches whose append failed.",
);
const PRODUCER_FAILED_RECORDS: Metric = Metric::counter(
    "topiclog_producer_failed_records_total",
    COUNT,
    "Records in the batches whose append failed. Kafka: record-error-total.",
);
const PRODUCER_BUFFERED: Metric = Metric::gauge(
    "topiclog_producer_buffered_bytes",
    BYTES,
    "Bytes of records buffered, not yet appended.",
);
const PRODUCER_BUFFER_WAIT: Metric = Metric::counter(
    "topiclog_producer_buffer_wait_nanoseconds_total",
    Some(Unit::Nanoseconds),
    "Time send spent waiting for buffer space. Kafka: bufferpool-wait-time-ns-total.",
);
const CONSUMER_POLLS: Metric = Metric::counter(
    "topiclog_consumer_polls_total",
    COUNT,
    "Calls to poll that returned.",
);
const CONSUMER_RECORDS: Metric = Metric::counter(
    "topiclog_consumer_consumed_records_total",
    COUNT,
    "Records returned by polls. Kafka: records-consumed-total.",
);
const CONSUMER_COMMITS: Metric = Metric::counter(
    "topiclog_consumer_commits_total",
    COUNT,
    "Commits that succeeded. Kafka: commit-total.",
);
const CONSUMER_FAILED_COMMITS: Metric = Metric::counter(
    "topiclog_consumer_failed_commits_total",
    COUNT,
    "Commits that failed.",
);
const CONSUMER_ASSIGNED: Metric = Metric::gauge(
    "topiclog_consumer_assigned_partitions",
    COUNT,
    "Partitions assigned to the consumer. Kafka: assigned-partitions.",
);
const CONSUMER_LAG_MAX: Metric = Metric::gauge(
    "topiclog_consumer_lag_max_records",
    COUNT,
    "The largest lag among the consumer's positions (0 while it has none). Kafka: records-lag-max.",
);
const CONSUMER_LAG: Metric = Metric::gauge(
    "topiclog_consumer_lag_records",
    COUNT,
    "The lags of the consumer's positions, summed. Kafka: the sum of records-lag.",
);

/// Every metric, in the order of the tables above.
const ALL: &[Metric] = &[
    START_OFFSET,
    END_OFFSET,
    DURABLE_OFFSET,
    SIZE,
    SEGMENTS,
    APPENDED_BATCHES,
    APPENDED_RECORDS,
    APPENDED_BYTES,
    READ_BATCHES,
    READ_RECORDS,
    READ_BYTES,
    SYNCS,
    SYNCED_APPENDS,
    SYNC_TIME,
    RETENTION_PASSES,
    RETENTION_DELETED,
    LAST_RETENTION,
    COMPACTION_PASSES,
    COMPACTION_RECLAIMED,
    LAST_COMPACTION,
    POISONED,
    GROUP_COMMITTED,
    GROUP_LAG,
    PRODUCER_BATCHES,
    PRODUCER_RECORDS,
    PRODUCER_BYTES,
    PRODUCER_FAILED_BATCHES,
    PRODUCER_FAILED_RECORDS,
    PRODUCER_BUFFERED,
    PRODUCER_BUFFER_WAIT,
    CONSUMER_POLLS,
    CONSUMER_RECORDS,
    CONSUMER_COMMITS,
    CONSUMER_FAILED_COMMITS,
    CONSUMER_ASSIGNED,
    CONSUMER_LAG_MAX,
    CONSUMER_LAG,
];

/// Give the current recorder every metric's help text and unit (Prometheus's `# HELP` and
/// `# TYPE` lines). Call it once after installing the recorder; describing again is harmless.
/// [`MetricsPublisher::start`] calls it on its thread.
pub fn describe() {
    ::metrics::with_recorder(|recorder| {
        for m in ALL {
            let name = KeyName::from_const_str(m.name);
            let help = SharedString::const_str(m.help);
            match m.kind {
                Kind::Counter => recorder.describe_counter(name, m.unit, help),
                Kind::Gauge => recorder.describe_gauge(name, m.unit, help),
            }
        }
    });
}

/// Publish every partition of every topic of `store` ([`Store::stats`], the internal
/// `__consumer_offsets` included) and the committed offset and lag of every consumer group on
/// every partition it has committed ([`Store::group_lag`]) to the current recorder, under the
/// names in the [module docs](self). One snapshot, taken now; nothing is kept.
///
/// # Examples
/// ```
/// use topiclog::{metrics, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// metrics::publish_store(&store)?; // to the global recorder (none installed: a no-op)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Closed`]; errors loading the committed offsets (every partition and every other
/// group is still published).
pub fn publish_store(store: &Store) -> Result<()> {
    store.check_open()?;
    for (topic, partitions) in store.stats() {
        for (i, stats) in partitions.iter().enumerate() {
            publish_partition(&topic, i as u32, stats);
        }
    }
    // Without the offsets topic no group has committed anything, and asking for a group's lag
    // would create it.
    if store.internal_topic(OFFSETS_TOPIC).is_none() {
        return Ok(());
    }
    let mut first_err = None;
    for group in store.groups()? {
        match store.group_lag(&group) {
            Ok(lags) => publish_group_lag(&group, &lags),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Publish one partition's figures under the labels `topic` and `partition`: what
/// [`publish_store`] does for each partition of a store, for a [`Partition`](crate::Partition)
/// opened on its own.
///
/// # Examples
/// ```
/// use topiclog::{metrics, Partition, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Partition::open(dir.path())?;
/// log.append_batch(&[Record::new("a")])?;
/// metrics::publish_partition("audit", 0, &log.stats());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn publish_partition(topic: &str, partition: u32, stats: &PartitionStats) {
    let labels = [
        Label::new("topic", topic.to_owned()),
        Label::new("partition", partition.to_string()),
    ];
    let l = &labels[..];
    START_OFFSET.set(l, stats.start_offset as f64);
    END_OFFSET.set(l, stats.end_offset as f64);
    DURABLE_OFFSET.set(l, stats.durable_offset as f64);
    SIZE.set(l, stats.size_bytes as f64);
    SEGMENTS.set(l, stats.segments as f64);
    APPENDED_BATCHES.absolute(l, stats.batches_appended);
    APPENDED_RECORDS.absolute(l, stats.records_appended);
    APPENDED_BYTES.absolute(l, stats.bytes_appended);
    READ_BATCHES.absolute(l, stats.batches_read);
    READ_RECORDS.absolute(l, stats.records_read);
    READ_BYTES.absolute(l, stats.bytes_read);
    SYNCS.absolute(l, stats.syncs);
    SYNCED_APPENDS.absolute(l, stats.appends_synced);
    for (quantile, took) in [
        ("0.5", stats.sync_p50),
        ("0.99", stats.sync_p99),
        ("1", stats.sync_max),
    ] {
        let mut with_quantile = labels.to_vec();
        with_quantile.push(Label::new("quantile", quantile));
        SYNC_TIME.set(&with_quantile, took.as_secs_f64());
    }
    RETENTION_PASSES.absolute(l, stats.retention_passes);
    RETENTION_DELETED.absolute(l, stats.retention_bytes_deleted);
    if let Some(ms) = stats.last_retention_ms {
        LAST_RETENTION.set(l, ms as f64 / 1000.0);
    }
    COMPACTION_PASSES.absolute(l, stats.compaction_passes);
    COMPACTION_RECLAIMED.absolute(l, stats.compaction_bytes_reclaimed);
    if let Some(ms) = stats.last_compaction_ms {
        LAST_COMPACTION.set(l, ms as f64 / 1000.0);
    }
    POISONED.set(l, if stats.poisoned { 1.0 } else { 0.0 });
}

/// Publish a group's committed offset and lag on each partition of `lags` (what
/// [`Store::group_lag`] returned) that has them, under the labels `group`, `topic` and
/// `partition`. [`publish_store`] does this for every group.
pub fn publish_group_lag(group: &str, lags: &[PartitionLag]) {
    for lag in lags {
        let labels = [
            Label::new("group", group.to_owned()),
            Label::new("topic", lag.partition.topic.clone()),
            Label::new("partition", lag.partition.partition.to_string()),
        ];
        if let Some(committed) = &lag.committed {
            GROUP_COMMITTED.set(&labels, committed.offset as f64);
        }
        if let Some(records) = lag.lag {
            GROUP_LAG.set(&labels, records as f64);
        }
    }
}

/// Publish `producer`'s [`stats`](Producer::stats) (its clones share them) under the label
/// `client_id`, a name of your choosing that tells your producers apart (Kafka's `client.id`).
///
/// # Examples
/// ```
/// use topiclog::{metrics, ProducerConfig, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let producer = store.producer(ProducerConfig::default())?;
/// metrics::publish_producer(&producer, "order-writer");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn publish_producer(producer: &Producer, client_id: &str) {
    let stats = producer.stats();
    let labels = [Label::new("client_id", client_id.to_owned())];
    let l = &labels[..];
    PRODUCER_BATCHES.absolute(l, stats.batches_sent);
    PRODUCER_RECORDS.absolute(l, stats.records_sent);
    PRODUCER_BYTES.absolute(l, stats.bytes_sent);
    PRODUCER_FAILED_BATCHES.absolute(l, stats.batches_failed);
    PRODUCER_FAILED_RECORDS.absolute(l, stats.records_failed);
    PRODUCER_BUFFERED.set(l, stats.buffered_bytes as f64);
    let waited = u64::try_from(stats.buffer_wait.as_nanos()).unwrap_or(u64::MAX);
    PRODUCER_BUFFER_WAIT.absolute(l, waited);
}

/// Publish `consumer`'s [`stats`](Consumer::stats) under the labels `client_id` and `group`
/// (from its config; `group` is empty for a consumer without one). A consumer is not `Sync`:
/// call this on the thread that polls it, for instance after each poll or every so many.
/// Consumers sharing a `client_id` and group overwrite each other's figures: give each its own.
pub fn publish_consumer(consumer: &Consumer) {
    let stats = consumer.stats();
    let config = consumer.config();
    let labels = [
        Label::new("client_id", config.client_id.clone()),
        Label::new("group", config.group_id.clone().unwrap_or_default()),
    ];
    let l = &labels[..];
    CONSUMER_POLLS.absolute(l, stats.polls);
    CONSUMER_RECORDS.absolute(l, stats.records_consumed);
    CONSUMER_COMMITS.absolute(l, stats.commits);
    CONSUMER_FAILED_COMMITS.absolute(l, stats.commits_failed);
    CONSUMER_ASSIGNED.set(l, stats.assigned_partitions as f64);
    CONSUMER_LAG_MAX.set(l, stats.records_lag_max.unwrap_or(0) as f64);
    CONSUMER_LAG.set(l, stats.records_lag_total as f64);
}

/// A thread that [`describe`]s the metrics, then [`publish_store`]s one store to the **global**
/// recorder (`metrics::set_global_recorder`, or an exporter's `install_recorder`) right away and
/// every `interval` after. It stops when it is dropped (or [`stop`](Self::stop)ped), which
/// waits for the thread, and by itself when the store is closed ([`Store::close`] wakes it).
///
/// Like a [`Producer`], it holds a handle to the store: while it runs, dropping your last
/// [`Store`] does not close the store. Keep it in a variable declared after the store (locals
/// drop in reverse order), or stop it first, or close the store explicitly. Failures to publish
/// group lag are skipped (the next interval tries again); the partitions are always published.
///
/// Producers and consumers are not published by it: call [`publish_producer`] and
/// [`publish_consumer`] where they live.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{metrics::MetricsPublisher, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let publisher = MetricsPublisher::start(&store, Duration::from_secs(15))?;
/// // ... the application runs; its exporter serves what the publisher set ...
/// publisher.stop();
/// store.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MetricsPublisher {
    stopped: Arc<AtomicBool>,
    /// Fired by [`stop`](Self::stop) and by the store's close.
    wake: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsPublisher {
    /// Start publishing `store` every `interval` (by the wall clock, not the store's
    /// [`Clock`](crate::Clock)): Prometheus scrapes every 15 to 60 s, so an interval of a few
    /// seconds keeps every scrape fresh.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero `interval`; [`Error::Closed`]; [`Error::Io`] if the
    /// thread cannot be spawned.
    pub fn start(store: &Store, interval: Duration) -> Result<MetricsPublisher> {
        if interval.is_zero() {
            return Err(Error::config("interval", "must be positive"));
        }
        store.check_open()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let wake = Notify::new();
        store.notify_on_change(&wake);
        let thread = {
            let dir = store.dir().to_owned();
            let (store, stopped, wake) = (store.clone(), stopped.clone(), wake.clone());
            std::thread::Builder::new()
                .name("topiclog-metrics".into())
                .spawn(move || {
                    describe();
                    loop {
                        // Read before the checks: a stop or close after them moves it, so the
                        // wait below returns at once.
                        let seen = wake.seq();
                        if stopped.load(Ordering::Acquire) {
                            return;
                        }
                        if let Err(Error::Closed { .. }) = publish_store(&store) {
                            return;
                        }
                        // Early wake-ups (a topic created or deleted) only publish sooner.
                        wake.wait_timeout(seen, Some(interval));
                    }
                })
                .at(&dir)?
        };
        Ok(MetricsPublisher {
            stopped,
            wake,
            thread: Some(thread),
        })
    }

    /// Stop publishing and wait for the thread to finish its current pass. Dropping the
    /// publisher does the same.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify();
        if let Some(thread) = self.thread.take() {
            // A panic on the thread is the recorder's; it has nothing to hand over.
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsPublisher {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::time::Instant;

    #[test]
    fn names_follow_the_conventions_and_are_unique() {
        let mut names = BTreeSet::new();
        for m in ALL {
            assert!(names.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with("topiclog_"), "{}", m.name);
            assert!(
                m.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.name.ends_with("_total"),
                m.kind == Kind::Counter,
                "{}: counters, and only counters, end in _total",
                m.name
            );
            let suffix = match m.unit {
                Some(Unit::Bytes) => Some("_bytes"),
                Some(Unit::Seconds) => Some("_seconds"),
                Some(Unit::Nanoseconds) => Some("_nanoseconds"),
                _ => None,
            };
            if let Some(suffix) = suffix {
                let stem = m.name.strip_suffix("_total").unwrap_or(m.name);
                assert!(stem.ends_with(suffix), "{} lacks {suffix}", m.name);
            }
        }
        let docs = include_str!("metrics.rs");
        for m in ALL {
            assert!(
                docs.contains(&format!("//! | `{}` |", m.name)),
                "{} not in the tables",
                m.name
            );
        }
    }

    #[test]
    fn a_closed_store_ends_the_publisher_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let publisher = MetricsPublisher::start(&store, Duration::from_secs(3600)).unwrap();
        store.close().unwrap();
        let thread = publisher.thread.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the publisher outlived the store's close"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(
            MetricsPublisher::start(&store, Duration::from_secs(1)),
            Err(Error::Closed { .. })
        ));
    }

    #[test]
    fn dropping_the_publisher_stops_it_without_waiting_for_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let publisher = MetricsPublisher::start(&store, Duration::from_secs(3600)).unwrap();
        let began = Instant::now();
        drop(publisher);
        assert!(began.elapsed() < Duration::from_secs(10));
        assert!(matches!(
            MetricsPublisher::start(&store, Duration::ZERO),
            Err(Error::InvalidConfig {
                field: "interval",
                ..
            })
        ));
    }
}
