//! # topiclog
//!
//! An embeddable, Kafka-style durable log: partitions of append-only segments (`.log` + sparse
//! `.index` + `.timeindex`), records addressed by offset and found by timestamp, crash recovery that
//! never returns a corrupt or partial record, and group-committed fsync.
//!
//! ```
//! use topiclog::{Partition, PartitionConfig, Durability, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Partition::open_with(dir.path(), PartitionConfig {
//!     durability: Durability::Always, // append returns after fdatasync (group-committed)
//!     ..PartitionConfig::default()
//! })?;
//! let info = log.append_batch(&[
//!     Record::new("created").with_key("order-1"),
//!     Record::new("paid").with_key("order-1"),
//! ])?;
//! assert_eq!((info.base_offset, info.last_offset), (0, 1));
//!
//! for record in log.read(0, 1 << 20)?.records() {
//!     println!("{} {:?}", record.offset(), record.value());
//! }
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers, each usable on its own: [`Partition`] → [`Segment`] → [`OffsetIndex`] / [`TimeIndex`];
//! [`format`] owns every byte layout; [`fs`] is the file-system seam (real and simulated).
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod clock;
mod error;
pub mod format;
pub mod fs;
mod partition;
mod segment;
mod store;
mod topic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use format::{Header, Record, RecordBatch, StoredRecord};
pub use partition::{
    AppendInfo, Batches, Durability, Partition, PartitionConfig, RecoveryReport, TimestampType,
};
pub use segment::{
    OffsetIndex, OffsetPosition, Recovery, Segment, SegmentConfig, SegmentRecovery, TimeIndex,
    TimestampOffset,
};
pub use store::{Store, StoreOptions};
pub use topic::{
    key_partition, murmur2, validate_topic_name, CleanupPolicy, DefaultPartitioner, Partitioner,
    RecordMetadata, Topic, TopicConfig, MAX_PARTITIONS, MAX_TOPIC_NAME_LEN,
};
