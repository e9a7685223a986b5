//! # topiclog
//!
//! An embeddable, Kafka-style durable log: partitions of append-only segments (`.log` + sparse
//! `.index` + `.timeindex`), records addressed by offset and found by timestamp, crash recovery that
//! never returns a corrupt or partial record, and group-committed fsync.
//!
//! ```
//! use topiclog::{Durability, Record, Store, StoreOptions, TopicConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open_with(dir.path(), StoreOptions {
//!     durability: Durability::Always, // a send returns after fdatasync (group-committed)
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
//! Layers, each usable on its own: [`Store`] → [`Topic`] → [`Partition`] → [`Segment`] →
//! [`OffsetIndex`] / [`TimeIndex`];
//! [`format`](mod@format) owns every byte layout; [`fs`] is the file-system seam (real and simulated).
//! On top of the store, Kafka's client model in-process: a batching, idempotent [`Producer`],
//! and [`Consumer`]s that poll, commit offsets and share partitions in consumer groups.
//! Retention ([`Partition::apply_retention`]) and log compaction ([`Partition::compact`]) run from
//! the store's background threads or on demand ([`Store::maintain`]).
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

mod clock;
mod consumer;
mod error;
pub mod format;
pub mod fs;
mod hash;
mod partition;
mod producer;
mod segment;
mod store;
mod topic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use consumer::{
    AssignmentStrategy, AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, ConsumerRecords,
    ConsumerWaker, Isolation, MemberDescription, OffsetAndMetadata, RebalanceListener,
    TopicPartition, MAX_METADATA_BYTES,
};
pub use error::{Error, ErrorKind, MaintenanceTask, Result, Shared};
pub use format::{Header, Record, RecordBatch, StoredRecord};
pub use partition::{
    AppendInfo, Batches, CompactionPolicy, CompactionReport, Durability, Notify, Partition,
    PartitionConfig, ProducerBatch, RecoveryReport, RetentionPolicy, RetentionReport,
    TimestampType, MIN_MAP_BUDGET_BYTES, PRODUCER_BATCHES_KEPT,
};
pub use producer::{Acks, Compression, Producer, ProducerConfig, SendHandle};
pub use segment::{
    OffsetIndex, OffsetPosition, Recovery, Segment, SegmentConfig, SegmentRecovery, SegmentView,
    TimeIndex, TimestampOffset,
};
pub use store::{PartitionLag, PartitionRecovery, PoisonedPartition, Store, StoreOptions};
pub use topic::{
    key_partition, murmur2, validate_topic_name, CleanupPolicy, DefaultPartitioner, Partitioner,
    RecordMetadata, Topic, TopicConfig, MAX_PARTITIONS, MAX_TOPIC_NAME_LEN,
};
