//! # topiclog
//!
//! An embeddable, Kafka-style durable log: partitions of append-only segments (`.log` + sparse
//! `.index` + `.timeindex`), records addressed by offset and found by timestamp, crash recovery that
//! never returns a corrupt or partial record, and group-committed fsync.
//!
//! ```
//! use topiclog::{Durability, LogConfig, Record, Store, StoreOptions, TopicConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open_with(dir.path(), StoreOptions {
//!     log: LogConfig {
//!         durability: Durability::Always, // a send returns after fdatasync (group-committed)
//!         ..LogConfig::default()
//!     },
//!     ..StoreOptions::default()
//! })?;
//! let orders = store.create_topic("orders", TopicConfig::with_partitions(3))?;
//! let meta = orders.send(Record::new("created").with_key("order-1"))?;
//! orders.send(Record::new("paid").with_key("order-1"))?; // same key, same partition
//!
//! let partition = orders.partition(meta.partition)?;
//! let values: Vec<_> = partition
//!     .read(meta.offset, 1 << 20)?
//!     .records()
//!     .map(|r| r.value().cloned())
//!     .collect();
//! assert_eq!(values.len(), 2);
//! store.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers, each usable on its own: [`Store`] → [`Topic`] → [`Partition`] →
//! [`Segment`](segment::Segment) → [`OffsetIndex`](segment::OffsetIndex) /
//! [`TimeIndex`](segment::TimeIndex).
//! On top of the store, what a Kafka broker adds to its storage (a group coordinator, committed
//! offsets in the internal topic `__consumer_offsets`, producer ids), and Kafka's client model
//! in-process: a batching, idempotent [`Producer`], and [`Consumer`]s that poll, commit offsets
//! and share partitions in consumer groups. [`Store::producer`], [`Store::consumer`] and the
//! group methods ([`Store::group_lag`], ...) are where an application meets them.
//! Retention ([`Partition::apply_retention`]) and log compaction ([`Partition::compact`]) run from
//! the store's background threads or on demand ([`Store::maintain`]).
//!
//! # Where things are
//!
//! - The crate root holds what an application names: the store, topics, partitions, records,
//!   the producer and consumer, their configurations and reports, and [`Error`].
//! - Configuration: a partition (and so each topic) runs with one [`LogConfig`], every setting
//!   concrete, documented with its default and its Kafka name; a topic sets only the
//!   [`LogOverrides`] it wants, the rest coming from [`StoreOptions::log`] when it is created.
//!   "Never" and "unlimited" are variants ([`Deadline::Never`], [`Retention::Forever`],
//!   [`Limit::Unlimited`]). The file system and the clock are an [`Env`], passed beside the
//!   config ([`Partition::open_with_env`], [`Store::open_with_env`]). Configs are plain structs
//!   with public fields: build them from their `Default` with struct-update syntax.
//! - Moving partitions to and from Kafka: [`Store::export_kafka`] writes a Kafka log directory
//!   for a broker to adopt, [`Store::import_kafka`] creates topics from one, and
//!   [`Store::export_group_offsets`] writes a group's committed offsets for
//!   `kafka-consumer-groups --reset-offsets --from-file` (`docs/KAFKA.md` has the Kafka side).
//! - Long operations report their progress to a [`Progress`] observer (any
//!   `Fn(&ProgressEvent<'_>)` closure), so a CLI can draw a progress bar: recovery at open after
//!   an unclean stop and compaction passes ([`StoreOptions::progress`],
//!   [`Partition::open_with_progress`]), Kafka export and import (the `progress` field of their
//!   options). Each partition's operation reports its total in bytes up front, then how far it
//!   is at most every [`Progress::interval_bytes`], then that it finished or failed.
//! - [`segment`] holds the building blocks of a partition, for people building their own log:
//!   [`Segment`](segment::Segment), its [`OffsetIndex`](segment::OffsetIndex) and
//!   [`TimeIndex`](segment::TimeIndex), the [`RecordBatch`](segment::RecordBatch) format and
//!   segment file names.
//! - [`fs`] is the file-system seam ([`Env::fs`]): the real file system and
//!   [`SimFs`](fs::SimFs), a simulated one that can crash and fail on demand, for tests.
//! - [`limits`] lists the hard limits that configurations and inputs are checked against.
//! - [`internals`] is plumbing for topiclog's own tests, benchmarks and fuzzers (byte-offset
//!   constants, wake-up signals): public, but outside the semver promise.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `lz4` | yes | Kafka's LZ4 codec ([`Compression::Lz4`]): pure Rust (`lz4_flex`, `twox-hash`) |
//! | `zstd` | yes | Kafka's zstd codec ([`Compression::Zstd`]): the reference C library, built from source (needs a C compiler) |
//! | `gzip` | no | Kafka's gzip codec ([`Compression::Gzip`]): pure Rust (`flate2` on `miniz_oxide`) |
//! | `snappy` | no | Kafka's snappy codec ([`Compression::Snappy`]): pure Rust (`snap`) |
//! | `tracing` | no | spans and events for a [`tracing`](https://docs.rs/tracing) subscriber (below) |
//! | `stream` | no | `Consumer::stream`: polled batches as a [`futures_core::Stream`](https://docs.rs/futures-core) (the async API itself, `poll_async`, `recv`, `send_async`, `wait_for_async`, needs no feature) |
//! | `metrics` | no | the stats published as counters and gauges to a [`metrics`](https://docs.rs/metrics) recorder: the `metrics` module, its names listed there |
//!
//! Every [`Compression`] variant exists in every build; a codec whose feature is off reports
//! itself unavailable ([`Compression::is_available`]) and reading a batch compressed with it
//! fails with a clear error. Without default features nothing needs a C compiler.
//!
//! # Tracing
//!
//! With the `tracing` feature, topiclog emits these spans and events, all with target `topiclog`;
//! their names and fields are stable (fields may be added). Without it they compile to nothing.
//!
//! | name | kind, level | fields |
//! |---|---|---|
//! | `open` | span | `dir`: a partition's open (and in-place recovery) |
//! | "partition opened" | event, debug | `dir`, `clean_shutdown`, `segments_scanned`, `bytes_scanned`, `bytes_truncated`, `segments_deleted`, `corruption_cut`, `checkpoint_damaged`, `producer_state_rebuilt`, `start_offset`, `end_offset` (the [`RecoveryReport`]) |
//! | "partition recovered with a cut" | event, warn | the same, when recovery cut a torn tail, dropped segments or cut damage |
//! | "segment rolled" | event, debug | `dir`, `base_offset` (the new segment's), `sealed_bytes` |
//! | `retention` | span | `dir`: a retention pass |
//! | "retention pass" | event, info | `dir`, `segments_deleted`, `bytes_deleted`, `start_offset` (when it deleted something) |
//! | `compaction` | span | `dir`: a compaction pass |
//! | "compaction pass" | event, info | `dir`, `bytes_read`, `bytes_written`, `records_removed`, `tombstones_removed`, `first_dirty_offset` (when it cleaned) |
//! | "partition poisoned" | event, error | `dir`, `error` (the failure that stopped its writes) |
//! | "maintenance failed" | event, error | `error` (what [`Store::last_maintenance_error`] keeps) |
//! | "group rebalanced" | event, info | `group`, `generation` (the new one), `members` |
//! | "commit refused" | event, warn | `group`, `reason` (the [`Error::CommitFailed`] returned) |
//!
//! # Platforms
//!
//! Unix-like systems only (Linux, macOS, the BSDs): file I/O is positional (`pread`/`pwrite`
//! through `std::os::unix::fs::FileExt`), directories are fsynced by opening them, segments are
//! memory-mapped past their end and deleted while readers may still map them. Elsewhere the
//! crate does not build.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(not(unix))]
compile_error!(
    "topiclog supports Unix-like systems only (Linux, macOS, the BSDs): it relies on positional \
     file I/O (std::os::unix::fs::FileExt), fsync of directories, memory maps reaching past the \
     end of a file and deleting files that are still mapped"
);

mod blocking;
mod broker;
mod clock;
mod config;
mod consumer;
mod env;
mod error;
mod format;
pub mod fs;
mod hash;
pub mod inspect;
#[cfg(feature = "metrics")]
pub mod metrics;
mod partition;
mod producer;
mod progress;
#[cfg(unix)]
mod readonly;
pub mod segment;
mod store;
mod tail;
mod topic;
mod trace;
mod wait;

pub use broker::{
    AssignmentStrategy, MemberDescription, OffsetAndMetadata, PartitionLag, TopicPartition,
};
pub use bytes::Bytes;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    CleanupPolicy, CompressionType, Deadline, Durability, Limit, LogConfig, LogOverrides,
    Retention, TimestampType,
};
#[cfg(feature = "stream")]
pub use consumer::RecordStream;
pub use consumer::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, ConsumerRecords, ConsumerStats,
    ConsumerWaker, Isolation, RebalanceListener,
};
pub use env::Env;
pub use error::{Error, ErrorKind, MaintenanceTask, Result, Shared};
pub use format::{BatchBuilder, Header, HeaderIter, Record, RecordRef, StoredRecord};
pub use fs::{raise_descriptor_limit, set_raise_descriptor_limit};
pub use partition::{
    AppendInfo, BatchRecordRefs, Batches, CompactionPolicy, CompactionReport, KafkaPartitionExport,
    KafkaPartitionExportOptions, KafkaPartitionImport, KafkaTopicId, LazyBatches, Partition,
    PartitionStats, ProducerBatch, RecoveryReport, RetentionPolicy, RetentionReport,
};
pub use producer::{Acks, Compression, Producer, ProducerConfig, ProducerStats, SendHandle};
pub use progress::{
    Progress, ProgressEvent, ProgressOperation, ProgressStage, DEFAULT_PROGRESS_INTERVAL_BYTES,
};
#[cfg(unix)]
pub use readonly::{ReadOnlyPartition, ReadOnlyStore, SegmentFile, TopicReader};
pub use segment::{max_open_segments, set_max_open_segments, Recovery, DEFAULT_MAX_OPEN_SEGMENTS};
pub use store::{
    KafkaExportOptions, KafkaExportReport, KafkaImportOptions, KafkaImportReport,
    PartitionRecovery, PoisonedPartition, Store, StoreOptions,
};
pub use topic::{
    key_partition, validate_topic_name, DefaultPartitioner, Partitioner, RecordMetadata, Topic,
    TopicConfig,
};

pub mod limits {
    //! Hard limits that configurations and inputs are checked against.
    pub use crate::broker::MAX_METADATA_BYTES;
    pub use crate::format::MAX_BATCH_BYTES_LIMIT;
    pub use crate::partition::{MIN_MAP_BUDGET_BYTES, PRODUCER_BATCHES_KEPT};
    pub use crate::topic::{MAX_PARTITIONS, MAX_TOPIC_NAME_LEN};
}

pub mod internals {
    //! Plumbing that topiclog's own integration tests, benchmarks and fuzzers reach into.
    //!
    //! Public so that they can (they are separate crates), but **outside the semver promise**:
    //! anything here may change or disappear in any release. Applications should not need it.
    //! It is always compiled rather than behind a Cargo feature: a crate cannot turn on its own
    //! features for its integration tests, so a feature would make a plain `cargo test` skip
    //! every test that needs it.
    pub use crate::partition::Notify;
    pub use crate::topic::murmur2;

    pub mod format {
        //! Every byte layout: the batch header's field offsets and lengths, index entries and
        //! file names, with the record and batch types again, and the compression codecs'
        //! `compress`/`decompress` (for the fuzzer). `docs/FORMAT.md` describes the same
        //! layout in prose; offsets are derived from the previous field so the two cannot drift
        //! apart silently.
        pub use crate::format::*;
    }
}

/// The README's Rust blocks, compiled (and the runnable ones run) as doctests, so they cannot
/// drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
