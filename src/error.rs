//! The crate's one error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in topiclog.
///
/// Variants carry structured fields so callers can react programmatically; each message says what
/// happened and, where there is something to do, what to do about it.
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The requested offset is not in the log: it is below the log start offset (deleted by
    /// retention or truncation) or past the end. Seek to an offset in `[start, end]`.
    #[error("offset {requested} is out of range: the log holds offsets [{start}, {end}); seek within that range")]
    OffsetOutOfRange {
        /// The offset that was asked for.
        requested: u64,
        /// The log start offset at the time of the request.
        start: u64,
        /// The log end offset (next offset to be assigned) at the time of the request.
        end: u64,
    },

    /// Bytes on disk failed validation (checksum, framing or bounds) in a region that was known to
    /// be durable, so the damage is not a torn tail from a crash. Restore the file from a copy, or
    /// reopen with `Recovery::TruncateCorrupt` to cut the log at the last valid batch.
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position in that file where the damage was detected.
        position: u64,
        /// What check failed.
        reason: String,
    },

    /// A record or batch is larger than the configured maximum. Split the batch or raise
    /// `max_batch_bytes`.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes; split it or raise max_batch_bytes")]
    RecordTooLarge {
        /// Encoded size of the rejected batch or record.
        size: usize,
        /// The configured limit.
        max: usize,
    },

    /// An append was given no records.
    #[error("an append needs at least one record")]
    EmptyBatch,

    /// A configuration value is out of range or contradicts another one.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending setting.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },

    /// An operating-system I/O call failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },

    /// An earlier write or fsync failed, so the partition can no longer promise that what it holds
    /// is on disk. It refuses every write until it is reopened (which re-reads what really is on
    /// disk). fsync is never retried: after a failed fsync the kernel may have dropped the dirty
    /// pages.
    #[error("partition {} refuses writes after an earlier I/O failure ({cause}); reopen it", path.display())]
    Poisoned {
        /// The partition directory.
        path: PathBuf,
        /// The original failure.
        cause: String,
    },

    /// An index entry was rejected: out of order, outside the segment's `u32` offset range, or the
    /// index is full. This is a caller bug when using [`crate::OffsetIndex`]/[`crate::TimeIndex`]
    /// directly; the partition never triggers it.
    #[error("cannot append to index {}: {reason}", path.display())]
    IndexAppend {
        /// The index file.
        path: PathBuf,
        /// Why the entry was rejected.
        reason: String,
    },

    /// A configuration file is malformed or holds an invalid value. Fix or restore the file (line
    /// 0 means the file as a whole).
    #[error("invalid configuration file {} (line {line}): {reason}", path.display())]
    InvalidConfigFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number, 0 for the file as a whole.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// A topic name is not 1 to 249 characters of `[A-Za-z0-9._-]`, is `.` or `..`, or is
    /// reserved for the store's own files: it starts with `__` (internal topics such as
    /// `__consumer_offsets`, `__producer_ids`) or is `LOCK` in any letter case (the lock file).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// A record without a key was sent to a compacted topic, where records are kept by key. Give
    /// every record a key (Kafka rejects these too).
    #[error("topic {topic:?} is compacted: every record needs a key")]
    MissingKey {
        /// The topic.
        topic: String,
    },

    /// A topic with this name already exists.
    #[error("topic {name:?} already exists")]
    TopicExists {
        /// The topic.
        name: String,
    },

    /// No topic has this name. Create it first (or use `topic_or_create`).
    #[error("topic {name:?} does not exist")]
    UnknownTopic {
        /// The topic.
        name: String,
    },

    /// The partition number is not below the topic's partition count.
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The requested partition.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },

    /// Another handle (in this process or another) has the store or partition directory open for
    /// writing: two writers would hand out the same offsets to different records. Close the other
    /// handle first (a `Store` owns its partitions: use its `Topic`s and `Partition`s instead of
    /// opening a partition directory of an open store); a crashed holder's lock is released by the
    /// operating system.
    #[error("{} is already open by another handle or process (its lock file is held); close the other handle first", path.display())]
    AlreadyOpen {
        /// The store or partition directory.
        path: PathBuf,
    },

    /// The directory is not empty and holds no topiclog store (no `LOCK` file). Use an empty or
    /// new directory: topiclog owns the directory it stores into.
    #[error("{} is not empty and is not a topiclog store; use an empty or new directory", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },

    /// A consumer has no position for a partition: no committed offset, and its
    /// `auto_offset_reset` is `None`. Seek, or choose `Earliest`/`Latest`.
    #[error("no offset for {topic}-{partition}: nothing committed and auto_offset_reset is None; seek first")]
    NoOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// A commit was refused because the committing consumer no longer owns the partition (a
    /// rebalance moved it, or the member was removed from the group). Records after the last
    /// successful commit will be delivered to the new owner: stop processing them.
    #[error("commit to group {group:?} refused: {reason}")]
    CommitFailed {
        /// The group.
        group: String,
        /// Why.
        reason: String,
    },

    /// An operation named a partition the consumer is not assigned.
    #[error("partition {topic}-{partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// `send` could not buffer the record within `max_block`: the producer's buffer is full
    /// because appends are slower than sends. Slow down, or raise `buffer_bytes`/`max_block`.
    #[error("producer buffer full ({buffered} of {limit} bytes) for longer than max_block")]
    BufferFull {
        /// Bytes buffered.
        buffered: usize,
        /// The buffer limit.
        limit: usize,
    },

    /// An idempotent append's sequence number does not follow the producer's last one in this
    /// partition: a batch was lost in between.
    #[error("out-of-order sequence for producer {producer_id} in {}: expected {expected}, got {got}", path.display())]
    OutOfOrderSequence {
        /// The partition directory.
        path: PathBuf,
        /// The producer.
        producer_id: i64,
        /// The sequence the partition expected next.
        expected: i32,
        /// The sequence the batch carried.
        got: i32,
    },

    /// A newer epoch of this producer id has written to the partition: this producer was
    /// replaced and must stop.
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current} in {}", path.display())]
    ProducerFenced {
        /// The partition directory.
        path: PathBuf,
        /// The producer.
        producer_id: i64,
        /// The epoch that tried to write.
        epoch: i16,
        /// The epoch the partition knows.
        current: i16,
    },

    /// [`ConsumerWaker::wakeup`](crate::ConsumerWaker::wakeup) interrupted a
    /// [`Consumer::poll`](crate::Consumer::poll) (Kafka's `WakeupException`). The poll returned no
    /// records and moved no position: poll again to go on, or close the consumer.
    #[error(
        "poll was interrupted by wakeup(); no records were lost: poll again, or close the consumer"
    )]
    Wakeup,

    /// The handle was closed: a partition after its `close` (or its topic's deletion), any handle
    /// of a store (topics, producers, consumers) after [`Store::close`](crate::Store::close), or a
    /// producer or consumer after its own `close`. A blocking
    /// [`Consumer::poll`](crate::Consumer::poll) returns this at once when its store closes. Open
    /// the store (or partition) again for new handles.
    #[error("{} is closed", path.display())]
    Closed {
        /// The partition directory; the store directory for the store itself, a producer or a
        /// consumer (a closed producer or consumer names it even if the store is still open).
        path: PathBuf,
    },
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        position: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            path: path.into(),
            position,
            reason: reason.into(),
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}

/// Attach a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
