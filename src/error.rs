//! The crate's one error type, and the categories callers act on.

use std::fmt;
use std::io;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in topiclog.
///
/// Variants carry structured fields so callers can react programmatically; each message says what
/// happened and, where there is something to do, what to do about it. [`kind`](Error::kind) sorts
/// every variant into an [`ErrorKind`] a caller can act on (retry, fix the input, restore damaged
/// data, ...); each variant's documentation names its kind.
///
/// `Error` is `Clone`, so one failure can reach every handle waiting on it; its
/// [`source`](std::error::Error::source) is the underlying [`io::Error`] itself (for
/// [`Error::Io`]) or the underlying `Error` (for [`Error::Maintenance`]), so generic error-chain
/// walkers can downcast it.
///
/// # Examples
/// ```
/// use std::error::Error as _;
/// use topiclog::{Error, ErrorKind};
///
/// fn report(e: &topiclog::Error) -> String {
///     match e.kind() {
///         ErrorKind::Retriable => format!("try again: {e}"),
///         ErrorKind::InvalidInput => format!("bug in the caller: {e}"),
///         ErrorKind::Damaged => format!("restore from a backup: {e}"),
///         _ => format!("{e}"),
///     }
/// }
/// let e = Error::EmptyBatch;
/// assert_eq!(e.kind(), ErrorKind::InvalidInput);
/// assert!(!e.is_retriable());
/// assert!(e.source().is_none());
/// assert!(report(&e).starts_with("bug"));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The requested offset is not in the log: it is below the log start offset (deleted by
    /// retention or truncation) or past the end. Seek to an offset in `[start, end]`.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
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
    ///
    /// Kind: [`ErrorKind::Damaged`].
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
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes; split it or raise max_batch_bytes")]
    RecordTooLarge {
        /// Encoded size of the rejected batch or record.
        size: usize,
        /// The configured limit.
        max: usize,
    },

    /// An append was given no records.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("an append needs at least one record")]
    EmptyBatch,

    /// A configuration value is out of range or contradicts another one.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending setting.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },

    /// An operating-system I/O call failed. A failed write or fsync also poisons the partition
    /// it was for: its next write is [`Error::Poisoned`].
    ///
    /// Kind: by the I/O error's own kind — [`ErrorKind::Retriable`] for one that may pass (a
    /// full disk or quota, an interrupted or timed-out call, memory or a resource that was busy),
    /// [`ErrorKind::Conflict`] for `AlreadyExists` (something that is not topiclog's is in the
    /// way), [`ErrorKind::Storage`] for the rest (permission denied, a read-only file system, a
    /// device error, a missing file). See [`Error::kind`].
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error (dereferences to the [`io::Error`], which is also what
        /// [`source`](std::error::Error::source) returns).
        #[source]
        source: Shared<io::Error>,
    },

    /// An earlier write or fsync failed, so the partition can no longer promise that what it holds
    /// is on disk. It refuses every write until it is recovered in place
    /// ([`Store::recover_partition`](crate::Store::recover_partition),
    /// [`Partition::recover`](crate::Partition::recover)) or reopened, both of which re-read what
    /// really is on disk. fsync is never retried: after a failed fsync the kernel may have dropped
    /// the dirty pages. Reads go on meanwhile.
    ///
    /// Kind: [`ErrorKind::Recover`]: once the cause is gone (`cause` says what failed; a full disk
    /// must be given space first), recover the partition, then retry.
    #[error("partition {} refuses writes after an earlier I/O failure ({cause}); once the cause is fixed, recover it (Store::recover_partition) or reopen it", path.display())]
    Poisoned {
        /// The partition directory.
        path: PathBuf,
        /// The original failure (dereferences to the [`Error`]; it is also what
        /// [`source`](std::error::Error::source) returns, so an error-chain walker reaches the
        /// [`io::Error`] behind it).
        #[source]
        cause: Shared<Error>,
    },

    /// An index entry was rejected: out of order, outside the segment's `u32` offset range, or the
    /// index is full. This is a caller bug when using
    /// [`OffsetIndex`](crate::segment::OffsetIndex)/[`TimeIndex`](crate::segment::TimeIndex)
    /// directly; the partition never triggers it.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("cannot append to index {}: {reason}", path.display())]
    IndexAppend {
        /// The index file.
        path: PathBuf,
        /// Why the entry was rejected.
        reason: String,
    },

    /// A record's timestamp is negative. Kafka refuses them too (its time index and retention
    /// treat a negative timestamp as "none"): give the record a timestamp in milliseconds since
    /// the Unix epoch, or none (the log then stamps it).
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("record timestamp {timestamp} is negative; timestamps are milliseconds since the Unix epoch")]
    InvalidTimestamp {
        /// The timestamp given.
        timestamp: i64,
    },

    /// A segment file holds batches of a format this version does not read: Kafka's message sets
    /// v0/v1 (magic 0 or 1, written before Kafka 0.11), or topiclog's own pre-release format. The
    /// file is left untouched. Move the partition directory away; for old Kafka data, let a Kafka
    /// broker of version 0.11 or later rewrite it (e.g. by reassigning or re-producing it).
    ///
    /// Kind: [`ErrorKind::Damaged`].
    #[error("{}: {found}; topiclog reads Kafka RecordBatch v2 (magic 2) segments only, and left the file untouched", path.display())]
    UnsupportedFormat {
        /// The segment file.
        path: PathBuf,
        /// The format found, in words.
        found: String,
    },

    /// A configuration file is malformed or holds an invalid value. Fix or restore the file (line
    /// 0 means the file as a whole).
    ///
    /// Kind: [`ErrorKind::Damaged`].
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
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// A record without a key was sent to a compacted topic, where records are kept by key. Give
    /// every record a key (Kafka rejects these too).
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("topic {topic:?} is compacted: every record needs a key")]
    MissingKey {
        /// The topic.
        topic: String,
    },

    /// A topic with this name already exists.
    ///
    /// Kind: [`ErrorKind::Conflict`].
    #[error("topic {name:?} already exists")]
    TopicExists {
        /// The topic.
        name: String,
    },

    /// No topic has this name. Create it first (or use `topic_or_create`).
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("topic {name:?} does not exist")]
    UnknownTopic {
        /// The topic.
        name: String,
    },

    /// The partition number is not below the topic's partition count.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
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
    ///
    /// Kind: [`ErrorKind::Conflict`].
    #[error("{} is already open by {} (its lock file is held); close it there first, or open it read-only", path.display(), holder_text(.holder))]
    AlreadyOpen {
        /// The store or partition directory.
        path: PathBuf,
        /// Who holds it, when the file system says: the process id and since when.
        holder: Option<crate::fs::LockHolder>,
    },

    /// The directory is not empty and holds no topiclog store (no `LOCK` file). Use an empty or
    /// new directory: topiclog owns the directory it stores into.
    ///
    /// Kind: [`ErrorKind::Conflict`].
    #[error("{} is not empty and is not a topiclog store; use an empty or new directory", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },

    /// A consumer has no position for a partition: no committed offset, and its
    /// `auto_offset_reset` is `None`. Seek, or choose `Earliest`/`Latest`.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
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
    ///
    /// Kind: [`ErrorKind::Conflict`].
    #[error("commit to group {group:?} refused: {reason}")]
    CommitFailed {
        /// The group.
        group: String,
        /// Why.
        reason: String,
    },

    /// An operation named a partition the consumer is not assigned.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("partition {topic}-{partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// `send` could not buffer the record within `max_block`: the producer's buffer is full
    /// because appends are slower than sends. Slow down, or raise `buffer_bytes`/`max_block`.
    ///
    /// Kind: [`ErrorKind::Retriable`].
    #[error("producer buffer full ({buffered} of {limit} bytes) for longer than max_block")]
    BufferFull {
        /// Bytes buffered.
        buffered: usize,
        /// The buffer limit.
        limit: usize,
    },

    /// An idempotent append's sequence number does not follow the producer's last one in this
    /// partition: a batch was lost in between.
    ///
    /// Kind: [`ErrorKind::Conflict`].
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
    ///
    /// Kind: [`ErrorKind::Conflict`].
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
    ///
    /// Kind: [`ErrorKind::Retriable`].
    #[error(
        "poll was interrupted by wakeup(); no records were lost: poll again, or close the consumer"
    )]
    Wakeup,

    /// The handle was closed: a partition after its `close` (or its topic's deletion), any handle
    /// of a store (topics, producers, consumers) after [`Store::close`](crate::Store::close), or a
    /// producer or consumer after its own `close`. A blocking
    /// [`Consumer::poll`](crate::Consumer::poll) returns this at once when its store closes. Open
    /// the store (or partition) again for new handles.
    ///
    /// Kind: [`ErrorKind::Closed`].
    #[error("{} is closed", path.display())]
    Closed {
        /// The partition directory; the store directory for the store itself, a producer or a
        /// consumer (a closed producer or consumer names it even if the store is still open).
        path: PathBuf,
    },

    /// A Kafka log directory, or a file in it, cannot be used as it is: by
    /// [`Store::import_kafka`](crate::Store::import_kafka) (a topic's partition directories not
    /// numbered `0..n`, leftovers of an interrupted Kafka compaction or segment split, a segment
    /// that is not a whole, valid log, aborted transactions, a malformed checkpoint file) or by
    /// [`Store::export_kafka`](crate::Store::export_kafka) (a malformed checkpoint file already in
    /// the destination, which it would merge into). `reason` says what to do; typically: let the
    /// Kafka broker start and stop cleanly once on that directory (it finishes or discards what
    /// it left half done), then copy the directory again. Nothing was imported or changed.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("cannot use the Kafka log directory content {}: {reason}", path.display())]
    KafkaLogDir {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// A background task failed on one partition: maintenance (flushes, retention) or the
    /// cleaner (compaction). [`Store::maintain`](crate::Store::maintain) returns it, and
    /// [`Store::last_maintenance_error`](crate::Store::last_maintenance_error) keeps the last one
    /// the store's background threads (or `maintain`) ran into. `cause` is what the partition
    /// reported; it is also this error's [`source`](std::error::Error::source).
    ///
    /// Kind: the cause's (an ENOSPC during compaction is [`ErrorKind::Retriable`]: the next pass
    /// tries again).
    #[error("{task} of partition {partition} of topic {topic:?} failed: {cause}")]
    Maintenance {
        /// What was running.
        task: MaintenanceTask,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What the partition reported (dereferences to the [`Error`]).
        #[source]
        cause: Shared<Error>,
    },
}

/// The background task an [`Error::Maintenance`] names.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaintenanceTask {
    /// A flush that a partition's durability made due, a background sync of a rolled segment, or
    /// making the recovery point durable (every `maintenance_interval`).
    Flush,
    /// Retention: by time and size, and of segments below the log start offset (every
    /// `retention_check_interval`).
    Retention,
    /// A compaction pass (the cleaner, every `cleaner_backoff`).
    Compaction,
}

impl fmt::Display for MaintenanceTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaintenanceTask::Flush => "flush",
            MaintenanceTask::Retention => "retention",
            MaintenanceTask::Compaction => "compaction",
        })
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a caller can do about an [`Error`]: the category [`Error::kind`] sorts it into.
///
/// Modelled on Kafka's client errors (a retriable exception "may succeed if retried"; fenced and
/// invalid-input errors never do) and on [`io::ErrorKind`]: a small, stable set to match on, while
/// the [`Error`] variant keeps the details. New kinds may be added, so a `match` needs a `_` arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Try again: nothing is wrong with the call, its input or the stored data, and the same call
    /// may succeed if made again, at once ([`Error::Wakeup`]), after a pause
    /// ([`Error::BufferFull`]) or once the cause passed (an [`Error::Io`] for a full disk,
    /// `StorageFull`, after space was freed). A failed write or fsync also poisons its
    /// partition, so retrying an append after one gets an [`ErrorKind::Recover`] error.
    Retriable,
    /// Recover first: the partition latched an earlier write or fsync failure
    /// ([`Error::Poisoned`]) and refuses writes until it is recovered in place
    /// ([`Store::recover_partition`](crate::Store::recover_partition)) or reopened. Its data is
    /// intact up to what was acknowledged; after the recovery, retry. Fix the cause first if it
    /// persists (a full disk).
    Recover,
    /// The operating system failed an I/O call in a way that does not pass by itself: permission
    /// denied, a read-only file system, a device error, a file missing. Someone must fix the
    /// environment; the [`Error::Io`] names the path and [`Error::io_error`] has the OS error.
    Storage,
    /// The call cannot succeed as made: change the arguments or the configuration (an offset out
    /// of range, a record too large, an empty batch, a bad config value or topic name, a missing
    /// key, an unknown topic or partition, a partition not assigned, no offset to start from, a
    /// Kafka log directory that cannot be imported as it is). Retrying it unchanged fails the
    /// same way.
    InvalidInput,
    /// Stored data failed validation: [`Error::Corrupt`] (a log, index or metadata file) or
    /// [`Error::InvalidConfigFile`] (a `topic.conf`). Nothing was changed; restore the file
    /// from a copy, or reopen with [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt)
    /// to cut a damaged log at the last valid batch.
    Damaged,
    /// Someone else's state stands in the way: another handle holds the directory
    /// ([`Error::AlreadyOpen`]), the directory holds something else ([`Error::NotAStore`], an
    /// [`Error::Io`] of kind `AlreadyExists`), the topic exists ([`Error::TopicExists`]), or a
    /// newer producer or group generation took over ([`Error::ProducerFenced`],
    /// [`Error::OutOfOrderSequence`], [`Error::CommitFailed`]). Retrying unchanged fails the same
    /// way until the other party is gone; a fenced producer or consumer must stop (a consumer
    /// polls again for its new assignment).
    Conflict,
    /// The handle was closed ([`Error::Closed`]): open the store or partition again for new
    /// handles.
    Closed,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Retriable => "retriable",
            ErrorKind::Recover => "recover",
            ErrorKind::Storage => "storage",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Damaged => "damaged",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Closed => "closed",
        })
    }
}

impl Error {
    /// What a caller can do about this error; see [`ErrorKind`] and each variant's
    /// documentation.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Error, ErrorKind};
    /// assert_eq!(Error::Wakeup.kind(), ErrorKind::Retriable);
    /// assert_eq!(Error::EmptyBatch.kind(), ErrorKind::InvalidInput);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        // No `_` arm: every new variant needs a decision here.
        match self {
            Error::Wakeup | Error::BufferFull { .. } => ErrorKind::Retriable,
            Error::Io { source, .. } => io_kind(source.kind()),
            Error::Poisoned { .. } => ErrorKind::Recover,
            Error::OffsetOutOfRange { .. }
            | Error::RecordTooLarge { .. }
            | Error::EmptyBatch
            | Error::InvalidConfig { .. }
            | Error::IndexAppend { .. }
            | Error::InvalidTopicName { .. }
            | Error::MissingKey { .. }
            | Error::UnknownTopic { .. }
            | Error::InvalidPartition { .. }
            | Error::NoOffset { .. }
            | Error::NotAssigned { .. }
            | Error::KafkaLogDir { .. }
            | Error::InvalidTimestamp { .. } => ErrorKind::InvalidInput,
            Error::Corrupt { .. }
            | Error::InvalidConfigFile { .. }
            | Error::UnsupportedFormat { .. } => ErrorKind::Damaged,
            Error::TopicExists { .. }
            | Error::AlreadyOpen { .. }
            | Error::NotAStore { .. }
            | Error::CommitFailed { .. }
            | Error::OutOfOrderSequence { .. }
            | Error::ProducerFenced { .. } => ErrorKind::Conflict,
            Error::Closed { .. } => ErrorKind::Closed,
            Error::Maintenance { cause, .. } => cause.kind(),
        }
    }

    /// Whether the same call may succeed if made again: [`kind`](Self::kind) is
    /// [`ErrorKind::Retriable`]. Every other kind needs something done first (reopen, fix the
    /// input, restore data, resolve a conflict), so a retry loop on this stops at them.
    ///
    /// # Examples
    /// ```
    /// assert!(topiclog::Error::Wakeup.is_retriable());
    /// ```
    pub fn is_retriable(&self) -> bool {
        self.kind() == ErrorKind::Retriable
    }

    /// The operating-system error behind this one, if any: the [`io::Error`] of an
    /// [`Error::Io`], also inside an [`Error::Maintenance`] or behind an [`Error::Poisoned`].
    ///
    /// # Examples
    /// ```
    /// assert!(topiclog::Error::EmptyBatch.io_error().is_none());
    /// ```
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Maintenance { cause, .. } | Error::Poisoned { cause, .. } => cause.io_error(),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source: Shared::new(source),
        }
    }

    pub(crate) fn maintenance(
        task: MaintenanceTask,
        topic: &str,
        partition: u32,
        cause: Error,
    ) -> Self {
        Error::Maintenance {
            task,
            topic: topic.to_owned(),
            partition,
            cause: Shared::new(cause),
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

    pub(crate) fn kafka_log_dir(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::KafkaLogDir {
            path: path.into(),
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

/// The kind of an [`Error::Io`], by the operating system's error kind.
fn io_kind(kind: io::ErrorKind) -> ErrorKind {
    use io::ErrorKind as K;
    match kind {
        // Conditions that pass: space or quota freed, a signal, a timeout, a busy resource.
        K::StorageFull
        | K::QuotaExceeded
        | K::Interrupted
        | K::TimedOut
        | K::WouldBlock
        | K::ResourceBusy
        | K::OutOfMemory => ErrorKind::Retriable,
        K::AlreadyExists => ErrorKind::Conflict,
        _ => ErrorKind::Storage,
    }
}

/// A cause held inside an [`Error`] and shared by the error's clones: an `Error` is `Clone` so
/// one failure can reach every handle waiting on it, while an [`io::Error`] is not.
///
/// It dereferences to the cause. It deliberately does not implement [`std::error::Error`]: the
/// `Error`'s [`source`](std::error::Error::source) is then the cause itself, which error-chain
/// walkers can downcast (`e.source().and_then(|s| s.downcast_ref::<std::io::Error>())`), where
/// an `Arc<io::Error>` would be a source of its own type.
///
/// # Examples
/// ```
/// use std::error::Error as _;
/// use topiclog::{Error, Store};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("file"), b"")?;
/// let e = Store::open(dir.path().join("file").join("store")).unwrap_err(); // not a directory
/// let Error::Io { source, .. } = &e else { panic!("{e}") };
/// let os: &std::io::Error = source; // dereferences to the io::Error
/// let in_chain = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
/// assert_eq!(in_chain.map(|s| s.kind()), Some(os.kind()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Shared<E>(Arc<E>);

fn holder_text(holder: &Option<crate::fs::LockHolder>) -> String {
    holder.as_ref().map_or_else(
        || "another handle or process".to_owned(),
        ToString::to_string,
    )
}

impl<E> Shared<E> {
    /// Wrap `cause`.
    pub fn new(cause: E) -> Self {
        Shared(Arc::new(cause))
    }
}

impl<E> Clone for Shared<E> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<E> Deref for Shared<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.0
    }
}

impl<E> AsRef<E> for Shared<E> {
    fn as_ref(&self) -> &E {
        &self.0
    }
}

impl<E> From<E> for Shared<E> {
    fn from(cause: E) -> Self {
        Shared::new(cause)
    }
}

impl<E: fmt::Debug> fmt::Debug for Shared<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<E: fmt::Display> fmt::Display for Shared<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every variant, with the kind it must have.
    fn every_variant() -> Vec<(Error, ErrorKind)> {
        let path = PathBuf::from("/store/t/0");
        let io = |kind| Error::io(&path, io::Error::from(kind));
        vec![
            (
                Error::OffsetOutOfRange {
                    requested: 9,
                    start: 0,
                    end: 3,
                },
                ErrorKind::InvalidInput,
            ),
            (Error::corrupt(&path, 4, "bad CRC"), ErrorKind::Damaged),
            (
                Error::RecordTooLarge { size: 9, max: 3 },
                ErrorKind::InvalidInput,
            ),
            (Error::EmptyBatch, ErrorKind::InvalidInput),
            (
                Error::config("segment_bytes", "too small"),
                ErrorKind::InvalidInput,
            ),
            (io(io::ErrorKind::StorageFull), ErrorKind::Retriable),
            (
                Error::Poisoned {
                    path: path.clone(),
                    cause: Shared::new(io(io::ErrorKind::StorageFull)),
                },
                ErrorKind::Recover,
            ),
            (
                Error::IndexAppend {
                    path: path.clone(),
                    reason: "full".into(),
                },
                ErrorKind::InvalidInput,
            ),
            (
                Error::InvalidConfigFile {
                    path: path.clone(),
                    line: 0,
                    reason: "checksum".into(),
                },
                ErrorKind::Damaged,
            ),
            (
                Error::InvalidTopicName {
                    name: "..".into(),
                    reason: "reserved",
                },
                ErrorKind::InvalidInput,
            ),
            (
                Error::MissingKey { topic: "t".into() },
                ErrorKind::InvalidInput,
            ),
            (Error::TopicExists { name: "t".into() }, ErrorKind::Conflict),
            (
                Error::UnknownTopic { name: "t".into() },
                ErrorKind::InvalidInput,
            ),
            (
                Error::InvalidPartition {
                    topic: "t".into(),
                    partition: 3,
                    partitions: 1,
                },
                ErrorKind::InvalidInput,
            ),
            (
                Error::AlreadyOpen {
                    path: path.clone(),
                    holder: None,
                },
                ErrorKind::Conflict,
            ),
            (Error::NotAStore { path: path.clone() }, ErrorKind::Conflict),
            (
                Error::NoOffset {
                    topic: "t".into(),
                    partition: 0,
                },
                ErrorKind::InvalidInput,
            ),
            (
                Error::CommitFailed {
                    group: "g".into(),
                    reason: "rebalanced".into(),
                },
                ErrorKind::Conflict,
            ),
            (
                Error::NotAssigned {
                    topic: "t".into(),
                    partition: 0,
                },
                ErrorKind::InvalidInput,
            ),
            (
                Error::BufferFull {
                    buffered: 9,
                    limit: 8,
                },
                ErrorKind::Retriable,
            ),
            (
                Error::OutOfOrderSequence {
                    path: path.clone(),
                    producer_id: 1,
                    expected: 2,
                    got: 4,
                },
                ErrorKind::Conflict,
            ),
            (
                Error::ProducerFenced {
                    path: path.clone(),
                    producer_id: 1,
                    epoch: 0,
                    current: 1,
                },
                ErrorKind::Conflict,
            ),
            (Error::Wakeup, ErrorKind::Retriable),
            (Error::Closed { path: path.clone() }, ErrorKind::Closed),
            (
                Error::maintenance(
                    MaintenanceTask::Compaction,
                    "t",
                    0,
                    Error::io(&path, io::Error::from(io::ErrorKind::StorageFull)),
                ),
                ErrorKind::Retriable,
            ),
            (
                Error::UnsupportedFormat {
                    path: path.clone(),
                    found: "Kafka message format v1 (magic 1)".into(),
                },
                ErrorKind::Damaged,
            ),
            (
                Error::kafka_log_dir(&path, "a leftover .swap file"),
                ErrorKind::InvalidInput,
            ),
            (
                Error::InvalidTimestamp { timestamp: -5 },
                ErrorKind::InvalidInput,
            ),
        ]
    }

    /// The variant's position in `every_variant`. No `_` arm: a new variant does not compile
    /// until it is given a place (and so a kind) in the table.
    fn variant_index(e: &Error) -> usize {
        match e {
            Error::OffsetOutOfRange { .. } => 0,
            Error::Corrupt { .. } => 1,
            Error::RecordTooLarge { .. } => 2,
            Error::EmptyBatch => 3,
            Error::InvalidConfig { .. } => 4,
            Error::Io { .. } => 5,
            Error::Poisoned { .. } => 6,
            Error::IndexAppend { .. } => 7,
            Error::InvalidConfigFile { .. } => 8,
            Error::InvalidTopicName { .. } => 9,
            Error::MissingKey { .. } => 10,
            Error::TopicExists { .. } => 11,
            Error::UnknownTopic { .. } => 12,
            Error::InvalidPartition { .. } => 13,
            Error::AlreadyOpen { .. } => 14,
            Error::NotAStore { .. } => 15,
            Error::NoOffset { .. } => 16,
            Error::CommitFailed { .. } => 17,
            Error::NotAssigned { .. } => 18,
            Error::BufferFull { .. } => 19,
            Error::OutOfOrderSequence { .. } => 20,
            Error::ProducerFenced { .. } => 21,
            Error::Wakeup => 22,
            Error::Closed { .. } => 23,
            Error::Maintenance { .. } => 24,
            Error::UnsupportedFormat { .. } => 25,
            Error::InvalidTimestamp { .. } => 27,
            Error::KafkaLogDir { .. } => 26,
        }
    }

    #[test]
    fn every_variant_has_its_documented_kind() {
        let table = every_variant();
        for (i, (e, kind)) in table.iter().enumerate() {
            assert_eq!(variant_index(e), i, "the table lists {e:?} out of place");
            assert_eq!(e.kind(), *kind, "{e:?}");
            assert_eq!(e.is_retriable(), *kind == ErrorKind::Retriable, "{e:?}");
            // A clone is the same error.
            assert_eq!(e.clone().kind(), *kind);
            assert_eq!(e.clone().to_string(), e.to_string());
        }
    }

    #[test]
    fn io_errors_take_their_kind_from_the_os_error() {
        let cases = [
            (io::ErrorKind::StorageFull, ErrorKind::Retriable),
            (io::ErrorKind::QuotaExceeded, ErrorKind::Retriable),
            (io::ErrorKind::Interrupted, ErrorKind::Retriable),
            (io::ErrorKind::TimedOut, ErrorKind::Retriable),
            (io::ErrorKind::WouldBlock, ErrorKind::Retriable),
            (io::ErrorKind::ResourceBusy, ErrorKind::Retriable),
            (io::ErrorKind::OutOfMemory, ErrorKind::Retriable),
            (io::ErrorKind::AlreadyExists, ErrorKind::Conflict),
            (io::ErrorKind::PermissionDenied, ErrorKind::Storage),
            (io::ErrorKind::ReadOnlyFilesystem, ErrorKind::Storage),
            (io::ErrorKind::NotFound, ErrorKind::Storage),
            (io::ErrorKind::Other, ErrorKind::Storage),
        ];
        for (os, kind) in cases {
            let e = Error::io("/store/t/0/00000000000000000000.log", io::Error::from(os));
            assert_eq!(e.kind(), kind, "{os:?}");
            assert_eq!(e.io_error().map(io::Error::kind), Some(os));
        }
        // ENOSPC as the OS reports it.
        let e = Error::io("/x", io::Error::from_raw_os_error(28));
        assert!(e.is_retriable(), "{e}");
    }

    #[test]
    fn source_is_the_io_error_itself() {
        use std::error::Error as _;
        let e = Error::io("/x", io::Error::from_raw_os_error(28));
        for e in [e.clone(), e] {
            let source = e.source().expect("an I/O error has a source");
            let os = source
                .downcast_ref::<io::Error>()
                .expect("the source downcasts to io::Error");
            assert_eq!(os.raw_os_error(), Some(28));
            assert_eq!(os.kind(), io::ErrorKind::StorageFull);
        }
        assert!(Error::EmptyBatch.source().is_none());
    }

    #[test]
    fn a_poisoned_error_chains_to_the_failure_and_its_io_error() {
        let failure = Error::io(
            "/s/t/0/00000000000000000000.log",
            io::Error::from_raw_os_error(5),
        );
        let e = Error::Poisoned {
            path: "/s/t/0".into(),
            cause: Shared::new(failure),
        };
        assert_eq!(e.kind(), ErrorKind::Recover);
        // Walk the chain as a generic reporter (anyhow, eyre) does.
        let mut chain = Vec::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = next {
            chain.push(err);
            next = err.source();
        }
        assert_eq!(chain.len(), 3, "Poisoned -> Io -> io::Error");
        assert!(matches!(
            chain[1].downcast_ref::<Error>(),
            Some(Error::Io { .. })
        ));
        let os = chain[2].downcast_ref::<io::Error>().expect("the OS error");
        assert_eq!(os.raw_os_error(), Some(5));
        assert_eq!(e.io_error().and_then(io::Error::raw_os_error), Some(5));
    }

    #[test]
    fn a_maintenance_error_takes_kind_and_source_from_its_cause() {
        use std::error::Error as _;
        let cause = Error::corrupt("/store/t/1/00000000000000000000.log", 8, "bad CRC");
        let e = Error::maintenance(MaintenanceTask::Retention, "t", 1, cause.clone());
        assert_eq!(e.kind(), ErrorKind::Damaged);
        let source = e.source().and_then(|s| s.downcast_ref::<Error>());
        assert!(
            matches!(source, Some(Error::Corrupt { position: 8, .. })),
            "{source:?}"
        );
        assert!(e.io_error().is_none());
        let message = e.to_string();
        assert!(
            message.contains("retention of partition 1 of topic \"t\""),
            "{message}"
        );
        assert!(message.ends_with(&cause.to_string()), "{message}");

        let e = Error::maintenance(
            MaintenanceTask::Flush,
            "t",
            0,
            Error::io("/x", io::Error::from_raw_os_error(28)),
        );
        assert!(e.is_retriable());
        assert_eq!(e.io_error().and_then(io::Error::raw_os_error), Some(28));
        // A walker finds the OS error two levels down.
        let os = std::iter::successors(Some(&e as &dyn std::error::Error), |&e| e.source())
            .find_map(|e| e.downcast_ref::<io::Error>());
        assert_eq!(os.map(io::Error::kind), Some(io::ErrorKind::StorageFull));
    }
}
