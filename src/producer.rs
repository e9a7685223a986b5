//! The producer: Kafka's `KafkaProducer`, in-process. `send` encodes a record straight into its
//! partition's open batch (a [`BatchBuilder`], as Kafka's `RecordAccumulator` appends to a
//! `MemoryRecordsBuilder`) and returns a handle at once; sender threads append a batch, as
//! encoded, when it reaches `batch_bytes` or has waited `linger`, and complete its records'
//! handles according to `acks`.
//!
//! Locking: each partition's open batch has a lock of its own, which is all `send` takes for a
//! record that joins an open batch (besides the topic cache's read lock); the producer's shared
//! state (ready queue, batches in flight, sequence numbers) is locked once per batch, when one is
//! opened, sealed or completed. A sender is woken for a sealed batch only when no sender is awake
//! to see it. Lock order: topic cache, then a partition's batch, then the shared state.
//!
//! A record sent without a timestamp gets the time its batch got its first such record (by the
//! store's clock); its handle reports the timestamp stored. That is earlier than the record's own
//! send by at most as long as the batch had been open (about `linger`, 5 ms by default), where
//! Kafka's producer stamps each record at its own `send`: one clock read per batch instead of
//! per record keeps `send`'s common case to one encoded push.
//!
//! Ordering: records sent to one partition are appended in the order `send` accepted them (one
//! batch per partition in flight at a time). Idempotence: each producer gets a store-unique
//! producer id; its batches carry per-partition sequence numbers, so a batch appended twice is
//! stored once ([`Partition::append_idempotent`](crate::Partition::append_idempotent)).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::broker::Broker;
use crate::clock::{Clock, ClockWaiter};
use crate::error::{Error, Result};
use crate::format::{BatchBuilder, Record, BATCH_HEADER_LEN};
use crate::hash::FastHasher;
use crate::partition::{AppendInfo, Durability, ProducerBatch, TimestampType};
use crate::store::Store;
use crate::topic::{Partitioner, RecordMetadata, Topic};
use crate::wait::{Event, EventListener};

/// Compression of batches: Kafka's codecs, each behind a Cargo feature. Defined with the batch
/// format (`format::compression`); re-exported here, where [`ProducerConfig::compression`] uses it.
pub use crate::format::Compression;

/// When a send counts as done. Kafka: `acks`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acks {
    /// When the producer accepted the record into its buffer (Kafka `acks=0`): the handle's
    /// metadata has no offset ([`RecordMetadata::has_offset`] is false) and append errors are
    /// not reported.
    None,
    /// When the record is appended and visible to consumers (Kafka `acks=1`). It is as durable
    /// as the topic's [`Durability`] makes it.
    Written,
    /// When the record is on disk (fsynced; Kafka `acks=all`). Concurrent sends share fsyncs
    /// through the partition's group commit. The default.
    #[default]
    Durable,
}

/// Settings of a [`Producer`]. Every field documents its default and Kafka name.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// Default [`Acks::Durable`]. Kafka: `acks`.
    pub acks: Acks,
    /// A partition's batch is appended once it holds this many bytes. Default 16 KiB. Kafka:
    /// `batch.size`.
    pub batch_bytes: usize,
    /// How long a batch that is not full waits for more records (by the store's clock). Default
    /// 5 ms. Kafka: `linger.ms`.
    pub linger: Duration,
    /// Batches (to different partitions) being appended at once: the number of sender threads.
    /// Default 5. Kafka: `max.in.flight.requests.per.connection`.
    pub max_in_flight: usize,
    /// Stamp batches with a producer id and sequence numbers so replays are stored once.
    /// Default `true`. Kafka: `enable.idempotence`.
    pub idempotent: bool,
    /// Codec of the batches this producer appends (the topic's
    /// [`compression`](crate::LogConfig::compression) may override it). Default
    /// [`Compression::None`]. Kafka: `compression.type`.
    pub compression: Compression,
    /// Chooses partitions for records sent without one. Default `None`: the store's.
    /// Kafka: `partitioner.class`.
    pub partitioner: Option<Arc<dyn Partitioner>>,
    /// Most bytes of records buffered (not yet appended). Default 32 MiB. Kafka:
    /// `buffer.memory`.
    pub buffer_bytes: usize,
    /// How long `send` waits for buffer space before [`Error::BufferFull`] (by the store's
    /// clock). Default 60 s. Kafka: `max.block.ms`.
    pub max_block: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::Durable,
            batch_bytes: 16 << 10,
            linger: Duration::from_millis(5),
            max_in_flight: 5,
            idempotent: true,
            compression: Compression::None,
            partitioner: None,
            buffer_bytes: 32 << 20,
            max_block: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    /// Check ranges.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if !self.compression.is_available() {
            return Err(crate::format::codec_unavailable(self.compression));
        }
        if self.batch_bytes == 0 {
            return Err(Error::config("batch_bytes", "must be at least 1"));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 64 {
            return Err(Error::config("max_in_flight", "must be 1 ..= 64"));
        }
        if self.buffer_bytes < self.batch_bytes {
            return Err(Error::config(
                "buffer_bytes",
                "must be at least batch_bytes",
            ));
        }
        Ok(())
    }
}

/// The outcome of one [`Producer::send`]: wait on it for the record's metadata.
#[derive(Clone)]
#[must_use = "a send reports its error only through its handle: wait on it"]
pub struct SendHandle {
    batch: Arc<BatchState>,
    index: usize,
}

impl fmt::Debug for SendHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendHandle")
            .field("partition", &self.batch.partition)
            .field("done", &self.is_done())
            .finish()
    }
}

impl SendHandle {
    /// Block until the send is done (per the producer's [`Acks`]) and return where the record
    /// went.
    ///
    /// With a clock that moves only when told to (a [`ManualClock`](crate::ManualClock)), a
    /// batch still lingering is sent at once: blocking here without a deadline, the caller could
    /// not move the clock past its linger. (With the system clock it lingers as usual.)
    ///
    /// # Errors
    /// The append's error (the record was not stored).
    pub fn wait(&self) -> Result<RecordMetadata> {
        if !self.is_done() {
            if let Some(core) = self.batch.producer.upgrade() {
                if core.clock.wakes_waiters() {
                    core.send_now(&self.batch);
                }
            }
        }
        let mut r = self.batch.result.lock();
        while r.is_none() {
            self.batch.done.wait(&mut r);
        }
        self.metadata(r.as_ref())
    }

    /// [`wait`](Self::wait) for at most `timeout` (by the store's clock: with a
    /// [`ManualClock`](crate::ManualClock), until the clock has moved past it); `None` if not
    /// done by then.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<RecordMetadata>> {
        if self.is_done() {
            return Some(self.metadata(self.batch.result.lock().as_ref()));
        }
        let clock = {
            let batch = Arc::downgrade(&self.batch);
            ClockWaiter::new(self.batch.clock.clone(), move || {
                if let Some(b) = batch.upgrade() {
                    let _result = b.result.lock();
                    b.done.notify_all();
                }
            })
        };
        let deadline = clock.deadline_after(timeout);
        let mut r = self.batch.result.lock();
        while r.is_none() {
            if clock.wait_until(&self.batch.done, &mut r, deadline) {
                break;
            }
        }
        r.is_some().then(|| self.metadata(r.as_ref()))
    }

    /// Whether the send is done.
    pub fn is_done(&self) -> bool {
        self.batch.result.lock().is_some()
    }

    /// The partition the record went to.
    pub fn partition(&self) -> u32 {
        self.batch.partition
    }

    fn metadata(&self, r: Option<&Result<AppendInfo>>) -> Result<RecordMetadata> {
        let ts = self.batch.times.lock().get(self.index);
        match r {
            Some(Ok(info)) if info.base_offset == u64::MAX => Ok(RecordMetadata {
                partition: self.batch.partition,
                offset: u64::MAX,
                timestamp: ts.unwrap_or(info.append_time),
            }),
            Some(Ok(info)) => Ok(RecordMetadata {
                partition: self.batch.partition,
                offset: info.base_offset + self.index as u64,
                timestamp: if self.batch.log_append_time {
                    info.append_time
                } else {
                    ts.unwrap_or(info.append_time)
                },
            }),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Error::config("send", "not done")),
        }
    }
}

/// The shared state of one batch: its result, for every record's handle.
struct BatchState {
    /// The store's clock, for `wait_timeout`.
    clock: Arc<dyn Clock>,
    /// The producer it is sent by, to send it at once (see [`SendHandle::wait`]).
    producer: Weak<Core>,
    partition: u32,
    log_append_time: bool,
    /// The records' timestamps (filled in when the batch is sealed).
    times: Mutex<Times>,
    result: Mutex<Option<Result<AppendInfo>>>,
    done: Condvar,
    /// Tasks awaiting a handle of this batch (see the `Future` of [`SendHandle`]).
    wakers: Mutex<Vec<Waker>>,
}

impl BatchState {
    fn complete(&self, r: Result<AppendInfo>) {
        *self.result.lock() = Some(r);
        self.done.notify_all();
        // After the result is set: a task registering now finds it when it checks again.
        for waker in std::mem::take(&mut *self.wakers.lock()) {
            waker.wake();
        }
    }
}

/// A handle is a future of its record's metadata: `handle.await` in an async task instead of the
/// blocking [`wait`](SendHandle::wait). Runtime-agnostic: the producer's sender threads append
/// (and `fdatasync`, under [`Acks::Durable`]) and wake the task when the batch is done, so the
/// caller's executor never blocks on I/O. Cancellation-safe: dropping the future (or the handle)
/// changes nothing about the send.
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake};
/// use topiclog::{ProducerConfig, Record, Store, TopicConfig};
///
/// // The smallest executor: poll, park until woken (any async runtime does this for you).
/// fn block_on<F: Future>(f: F) -> F::Output {
///     struct Unpark(std::thread::Thread);
///     impl Wake for Unpark {
///         fn wake(self: Arc<Self>) {
///             self.0.unpark();
///         }
///     }
///     let waker = Arc::new(Unpark(std::thread::current())).into();
///     let mut f = pin!(f);
///     loop {
///         match f.as_mut().poll(&mut Context::from_waker(&waker)) {
///             Poll::Ready(v) => return v,
///             Poll::Pending => std::thread::park(),
///         }
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("events", TopicConfig::with_partitions(1))?;
/// let producer = store.producer(ProducerConfig::default())?;
/// let handle = producer.send("events", Record::new("hello"))?;
/// let metadata = block_on(async { handle.await })?;
/// assert_eq!((metadata.partition, metadata.offset), (0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl Future for SendHandle {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(r) = this.batch.result.lock().as_ref() {
            return Poll::Ready(this.metadata(Some(r)));
        }
        {
            let mut wakers = this.batch.wakers.lock();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
        }
        // As `wait` does: a clock that moves only when told to would never end the linger.
        if let Some(core) = this.batch.producer.upgrade() {
            if core.clock.wakes_waiters() {
                core.send_now(&this.batch);
            }
        }
        match this.batch.result.lock().as_ref() {
            Some(r) => Poll::Ready(this.metadata(Some(r))),
            None => Poll::Pending,
        }
    }
}

/// The timestamps of a batch's records, as encoded.
#[derive(Default)]
struct Times {
    /// The time given to the records sent without one (when the batch got its first such
    /// record), `None` if every record had its own.
    default: Option<i64>,
    /// The records that had their own: `(index, timestamp)`, by index.
    own: Vec<(u32, i64)>,
}

impl Times {
    fn get(&self, index: usize) -> Option<i64> {
        match self.own.binary_search_by_key(&index, |&(i, _)| i as usize) {
            Ok(i) => self.own.get(i).map(|&(_, t)| t),
            Err(_) => self.default,
        }
    }
}

type PartitionKey = (Arc<str>, u32);

/// Its small maps are keyed by topic names and partition numbers the application chose (not
/// adversarial input): hashed with one multiply per word.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// One partition's open batch, behind a lock of its own: `send` takes this lock and no other
/// for a record that joins an open batch (the producer's shared lock once per batch).
struct PartitionSlot {
    partition: u32,
    open: Mutex<Option<OpenBatch>>,
}

/// The key of a slot in [`Accumulator::open`]: its address (the entry holds it alive).
fn slot_key(slot: &Arc<PartitionSlot>) -> usize {
    Arc::as_ptr(slot) as usize
}

/// A batch being filled: its records already encoded, as a Kafka batch, in `builder`.
struct OpenBatch {
    topic: Topic,
    builder: BatchBuilder,
    /// Records with a timestamp of their own: `(index, timestamp)`.
    own_times: Vec<(u32, i64)>,
    /// Upper bound of the encoded records' bytes (without the batch header).
    bytes: usize,
    state: Arc<BatchState>,
}

/// An open batch as the senders see it: when its linger ends, and where it is.
struct OpenEntry {
    name: Arc<str>,
    slot: Arc<PartitionSlot>,
    /// When it was opened (the clock's monotonic time).
    created: Duration,
    /// Which batch (the slot's open batch may since be another).
    state: Arc<BatchState>,
}

struct ReadyBatch {
    id: u64,
    key: PartitionKey,
    topic: Topic,
    builder: BatchBuilder,
    count: usize,
    bytes: usize,
    state: Arc<BatchState>,
}

#[derive(Default)]
struct Accumulator {
    /// The open batches, by [`slot_key`].
    open: FastMap<usize, OpenEntry>,
    ready: VecDeque<ReadyBatch>,
    in_flight: FastSet<PartitionKey>,
    /// Ids of batches sealed but not yet completed.
    pending: BTreeSet<u64>,
    next_batch: u64,
    /// The next sequence number per partition, advanced when a batch is stored (one batch per
    /// partition is in flight at a time, so a failed batch's numbers are reused by the next).
    next_sequence: FastMap<PartitionKey, i32>,
    /// Builders of completed batches, emptied, for new batches (their buffers already grown).
    spare: Vec<BatchBuilder>,
    /// Senders not waiting on `work` (appending a batch, or about to look for one): a batch
    /// opened or sealed while one of them looks is seen without a wake-up.
    awake: usize,
}

/// Most emptied builders kept for reuse.
const SPARE_BUILDERS: usize = 16;

struct Core {
    /// Itself, for its batches' handles.
    me: Weak<Core>,
    store: Store,
    /// The store's clock; its moves wake `work` and `progress`.
    clock: ClockWaiter,
    config: ProducerConfig,
    producer_id: Option<i64>,
    partitioner: Arc<dyn Partitioner>,
    /// Topics by name, as `send` last looked them up, with their partitions' open batches.
    topics: RwLock<FastMap<Arc<str>, Arc<CachedTopic>>>,
    acc: Mutex<Accumulator>,
    /// Bytes of records buffered (not yet appended): reserved by `send` without a lock, released
    /// under `acc`, each release notifying `space` (a `send` waiting for room listens before its
    /// last look, so it sees every release).
    buffered: AtomicUsize,
    /// Set under `acc` by `close`: no batch is opened afterwards.
    closed: AtomicBool,
    /// Senders wait here for work.
    work: Condvar,
    /// `flush` waits here for completions.
    progress: Condvar,
    /// Notified when buffer space is released or the producer closes: what `send` (blocking) and
    /// `send_async` wait on for room.
    space: Event,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// What [`Producer::stats`] reports.
    counters: ProducerCounters,
}

/// The counters behind [`ProducerStats`] (relaxed adds: a snapshot needs no order among them).
#[derive(Default)]
struct ProducerCounters {
    batches_sent: AtomicU64,
    records_sent: AtomicU64,
    bytes_sent: AtomicU64,
    batches_failed: AtomicU64,
    records_failed: AtomicU64,
    buffer_wait_ns: AtomicU64,
}

/// What a producer has done since it was created ([`Producer::stats`]); each field names its
/// counterpart among the Kafka Java producer's metrics (`producer-metrics`) where there is one.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Batches appended. Kafka: `batch-size-avg` is `bytes_sent / batches_sent`.
    pub batches_sent: u64,
    /// Records appended. Kafka: `record-send-total`.
    pub records_sent: u64,
    /// Bytes of the batches appended, as encoded (before compression). Kafka:
    /// `outgoing-byte-total` (after compression, with request overhead).
    pub bytes_sent: u64,
    /// Batches whose append failed (every record in it got the error through its handle).
    pub batches_failed: u64,
    /// Records in those batches. Kafka: `record-error-total`.
    pub records_failed: u64,
    /// Bytes of records buffered now, not yet appended. Kafka: `buffer-total-bytes` minus
    /// `buffer-available-bytes`.
    pub buffered_bytes: u64,
    /// Time `send` spent waiting for buffer space (back-pressure), summed over calls. Kafka:
    /// `bufferpool-wait-time-ns-total`.
    pub buffer_wait: Duration,
}

struct Handle {
    core: Arc<Core>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.core.close();
    }
}

/// A producer: `Clone + Send + Sync`; clones share the buffer and sender threads. Created by
/// [`Store::producer`](crate::Store::producer). Dropping the last clone closes it (flushing).
///
/// # Examples
/// ```
/// use topiclog::{Acks, ProducerConfig, Record, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("events", TopicConfig::with_partitions(3))?;
/// let producer = store.producer(ProducerConfig { acks: Acks::Written, ..ProducerConfig::default() })?;
/// let handles: Vec<_> = (0..100)
///     .map(|i| producer.send("events", Record::new(format!("e{i}")).with_key(format!("k{}", i % 7))))
///     .collect::<Result<_, _>>()?;
/// producer.flush()?;
/// let first = handles[0].wait()?;
/// assert!(first.has_offset());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("producer_id", &self.handle.core.producer_id)
            .finish()
    }
}

impl Store {
    /// A new producer. See [`Producer`]. An idempotent one gets a producer id no other producer
    /// of this store ever had (a counter persisted in the store directory).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; [`Error::Closed`]; I/O errors persisting the id counter.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        self.check_open()?;
        config.validate()?;
        let id = if config.idempotent {
            Some(Broker::of(self).next_producer_id(self)?)
        } else {
            None
        };
        let partitioner = self.partitioner();
        Producer::new(self.clone(), config, id, partitioner)
    }
}

// Producers are shared between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Producer>();
};

impl Producer {
    fn new(
        store: Store,
        config: ProducerConfig,
        producer_id: Option<i64>,
        default_partitioner: Arc<dyn Partitioner>,
    ) -> Result<Producer> {
        config.validate()?;
        let partitioner = config.partitioner.clone().unwrap_or(default_partitioner);
        let core = Arc::new_cyclic(|core: &Weak<Core>| Core {
            me: core.clone(),
            clock: {
                let core = core.clone();
                ClockWaiter::new(store.clock().clone(), move || {
                    if let Some(c) = core.upgrade() {
                        let _acc = c.acc.lock();
                        c.work.notify_all();
                        c.progress.notify_all();
                        drop(_acc);
                        c.space.notify(usize::MAX);
                    }
                })
            },
            store,
            producer_id,
            partitioner,
            topics: RwLock::new(FastMap::default()),
            acc: Mutex::new(Accumulator::default()),
            buffered: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            work: Condvar::new(),
            progress: Condvar::new(),
            space: Event::new(),
            threads: Mutex::new(Vec::new()),
            counters: ProducerCounters::default(),
            config,
        });
        for i in 0..core.config.max_in_flight {
            let c = core.clone();
            let t = std::thread::Builder::new()
                .name(format!("topiclog-producer-{i}"))
                .spawn(move || c.sender())
                .map_err(|e| Error::io(core.store.dir(), e))?;
            core.threads.lock().push(t);
        }
        Ok(Producer {
            handle: Arc::new(Handle { core }),
        })
    }

    /// The producer id stamped on its batches (`None` unless idempotent).
    pub fn producer_id(&self) -> Option<i64> {
        self.handle.core.producer_id
    }

    /// What this producer (and its clones) has done since it was created: batches, records and
    /// bytes appended, failures, what is buffered now, and time spent waiting for buffer space.
    /// See [`ProducerStats`] for each field's Kafka counterpart.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{ProducerConfig, Record, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("events", TopicConfig::with_partitions(1))?;
    /// let producer = store.producer(ProducerConfig::default())?;
    /// for i in 0..10 {
    ///     producer.send("events", Record::new(format!("e{i}")))?;
    /// }
    /// producer.flush()?;
    /// let stats = producer.stats();
    /// assert_eq!((stats.records_sent, stats.records_failed, stats.buffered_bytes), (10, 0, 0));
    /// assert!(stats.batches_sent >= 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> ProducerStats {
        let core = &self.handle.core;
        let c = &core.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProducerStats {
            batches_sent: load(&c.batches_sent),
            records_sent: load(&c.records_sent),
            bytes_sent: load(&c.bytes_sent),
            batches_failed: load(&c.batches_failed),
            records_failed: load(&c.records_failed),
            buffered_bytes: core.buffered.load(Ordering::Acquire) as u64,
            buffer_wait: Duration::from_nanos(load(&c.buffer_wait_ns)),
        }
    }

    /// Buffer `record` for `topic`, choosing its partition like [`Topic::send`]; returns at once
    /// (unless the buffer is full: then it waits up to `max_block`).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::MissingKey`] on a compacted topic;
    /// [`Error::RecordTooLarge`]; [`Error::BufferFull`]; [`Error::Closed`].
    pub fn send(&self, topic: &str, record: Record) -> Result<SendHandle> {
        self.handle.core.send(topic, None, record)
    }

    /// [`send`](Self::send) to a chosen partition.
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`Error::InvalidPartition`].
    pub fn send_to(&self, topic: &str, partition: u32, record: Record) -> Result<SendHandle> {
        self.handle.core.send(topic, Some(partition), record)
    }

    /// [`send`](Self::send) for async code: when the buffer is full, the future awaits room
    /// (up to `max_block`, then [`Error::BufferFull`]) instead of blocking the thread; otherwise
    /// it is ready at once. It resolves to the record's [`SendHandle`], itself a future of its
    /// [`RecordMetadata`] — so `producer.send_async(t, r).await?.await?` waits for both room and
    /// the append, while awaiting only the first lets records pipeline.
    ///
    /// While it waits it is woken by the sender thread that frees buffer space (the notification
    /// a blocking `send` waits on), and at `max_block` by the process's timer thread. Dropping it
    /// before it resolves cancels the send: the record was not buffered and no buffer space stays
    /// taken.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{ProducerConfig, Record, Store, TopicConfig};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl std::task::Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = Box::pin(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("events", TopicConfig::with_partitions(1))?;
    /// let producer = store.producer(ProducerConfig::default())?;
    /// // In a tokio task: `producer.send_async(..).await?.await?`.
    /// let metadata = block_on(async {
    ///     let handle = producer.send_async("events", Record::new("hello")).await?;
    ///     handle.await
    /// })?;
    /// assert_eq!(metadata.offset, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send_async(&self, topic: &str, record: Record) -> Result<SendHandle> {
        self.handle.core.send_async(topic, None, record).await
    }

    /// [`send_async`](Self::send_async) to a chosen partition.
    ///
    /// # Errors
    /// As [`send_to`](Self::send_to).
    pub async fn send_to_async(
        &self,
        topic: &str,
        partition: u32,
        record: Record,
    ) -> Result<SendHandle> {
        self.handle
            .core
            .send_async(topic, Some(partition), record)
            .await
    }

    /// Append everything sent so far, now, and wait until it is done (per `acks`).
    ///
    /// # Errors
    /// [`Error::Closed`]. (Individual sends report their own errors through their handles.)
    pub fn flush(&self) -> Result<()> {
        self.handle.core.flush()
    }

    /// Flush, then stop the sender threads. Other clones get [`Error::Closed`] afterwards.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn close(&self) -> Result<()> {
        self.handle.core.close()
    }
}

/// An upper bound of the bytes `r` takes encoded in a batch: every varint at its longest.
fn record_size(r: &Record) -> usize {
    // length, timestamp delta, offset delta, key and value lengths, header count
    5 + 10
        + 5
        + 5
        + r.key().map_or(0, |k| k.len())
        + 5
        + r.value().map_or(0, |v| v.len())
        + 5
        + r.headers()
            .iter()
            .map(|(k, v)| 10 + k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum::<usize>()
}

fn next_sequence(seq: i32, count: usize) -> i32 {
    ((i64::from(seq) + count as i64) % (i64::from(i32::MAX) + 1)) as i32
}

/// A topic as `send` last looked it up, with the versions that tell when it is stale, and its
/// partitions' open batches.
struct CachedTopic {
    name: Arc<str>,
    topic: Topic,
    settings: Arc<crate::topic::TopicSettings>,
    store_version: u64,
    settings_version: u64,
    /// One per partition, by number. A look-up after a change of the topic's settings keeps
    /// them (an open batch goes on filling, in order); a recreated topic gets new ones.
    slots: Box<[Arc<PartitionSlot>]>,
}

impl CachedTopic {
    fn is_fresh(&self, store_version: u64) -> bool {
        self.store_version == store_version
            && self.settings_version == self.topic.settings_version()
    }
}

impl Core {
    /// Look the topic `name` up again in the store for the cache: `send` does when a topic was
    /// created or deleted since it was cached (a deleted and recreated topic is picked up) or its
    /// settings changed.
    fn refresh_topic(&self, name: &str) -> Result<()> {
        self.store.check_open()?;
        let store_version = self.store.topics_version();
        let mut topics = self.topics.write();
        let old = topics.get(name).cloned();
        if old.as_ref().is_some_and(|c| c.is_fresh(store_version)) {
            // Another thread looked it up meanwhile.
            return Ok(());
        }
        let topic = match self.store.topic(name) {
            Ok(t) => t,
            Err(e) => {
                topics.remove(name);
                return Err(e);
            }
        };
        let settings_version = topic.settings_version();
        let settings = topic.settings();
        let same = old.as_ref().filter(|o| o.topic.same_topic(&topic));
        let slots = (0..settings.partitions)
            .map(|p| {
                same.and_then(|o| o.slots.get(p as usize).cloned())
                    .unwrap_or_else(|| {
                        Arc::new(PartitionSlot {
                            partition: p,
                            open: Mutex::new(None),
                        })
                    })
            })
            .collect();
        if topics.len() > 1024 {
            // Producers that wander over many topics keep a bounded cache. Their open batches
            // are sealed first: a batch opened later in a new slot for the same partition must
            // not overtake them.
            for c in topics.values() {
                for slot in c.slots.iter() {
                    self.seal(&mut slot.open.lock(), &c.name, slot, true);
                }
            }
            topics.clear();
        }
        let name: Arc<str> = Arc::from(name);
        let cached = Arc::new(CachedTopic {
            name: name.clone(),
            topic,
            settings,
            store_version,
            settings_version,
            slots,
        });
        topics.insert(name, cached);
        Ok(())
    }

    fn closed_error(&self) -> Error {
        Error::Closed {
            path: self.store.dir().to_owned(),
        }
    }

    /// The partition of `cached` that `send` puts `record` in, after the checks that fail a
    /// send at once: a missing key on a compacted topic, a record too large, a partition that
    /// does not exist.
    fn route(
        &self,
        cached: &CachedTopic,
        topic_name: &str,
        partition: Option<u32>,
        record: &Record,
        size: usize,
    ) -> Result<u32> {
        let config = &cached.settings.config;
        if config.cleanup_policy.compacts() && record.key().is_none() {
            return Err(Error::MissingKey {
                topic: topic_name.to_owned(),
            });
        }
        let max = config.max_batch_bytes as usize;
        if BATCH_HEADER_LEN + size > max {
            return Err(Error::RecordTooLarge {
                size: BATCH_HEADER_LEN + size,
                max,
            });
        }
        let count = cached.settings.partitions;
        let p = match partition {
            Some(p) if p >= count => {
                return Err(Error::InvalidPartition {
                    topic: topic_name.to_owned(),
                    partition: p,
                    partitions: count,
                })
            }
            Some(p) => p,
            None => {
                self.partitioner.partition(
                    topic_name,
                    record.key().map(|k| k.as_ref()),
                    record.value().map_or(0, |v| v.len()),
                    count,
                ) % count.max(1)
            }
        };
        Ok(p)
    }

    /// Take `size` bytes of buffer if there is room (or the buffer is empty: a record larger
    /// than the whole buffer still goes).
    fn try_reserve(&self, size: usize) -> bool {
        let limit = self.config.buffer_bytes;
        self.buffered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b + size <= limit || b == 0).then_some(b + size)
            })
            .is_ok()
    }

    /// Take `size` bytes of buffer, waiting up to `max_block` for batches to complete.
    fn reserve_waiting(&self, size: usize) -> Result<()> {
        let started = std::time::Instant::now();
        let deadline = self.clock.deadline_after(self.config.max_block);
        let result = loop {
            let listener = match self.reserve_or_listen(size) {
                Ok(listener) => listener,
                Err(done) => break done,
            };
            if self.clock.wait_listener(listener, deadline) {
                break self.reserve_or_full(size);
            }
        };
        self.waited_since(started);
        result
    }

    /// [`reserve_waiting`](Self::reserve_waiting), awaiting the room.
    async fn reserve_async(&self, size: usize) -> Result<()> {
        let started = std::time::Instant::now();
        let deadline = self.clock.deadline_after(self.config.max_block);
        let result = loop {
            let listener = match self.reserve_or_listen(size) {
                Ok(listener) => listener,
                Err(done) => break done,
            };
            if self.clock.listen_until(listener, deadline).await {
                break self.reserve_or_full(size);
            }
        };
        self.waited_since(started);
        result
    }

    /// Take `size` bytes of buffer (`Err(Ok(()))`), or fail if closed (`Err(Err(..))`), or, if
    /// there is no room, a listener for the next release, registered before a second look.
    fn reserve_or_listen(&self, size: usize) -> std::result::Result<EventListener, Result<()>> {
        let check = || {
            if self.closed.load(Ordering::Acquire) {
                Some(Err(self.closed_error()))
            } else if self.try_reserve(size) {
                Some(Ok(()))
            } else {
                None
            }
        };
        if let Some(done) = check() {
            return Err(done);
        }
        let listener = self.space.listen();
        match check() {
            Some(done) => Err(done),
            None => Ok(listener),
        }
    }

    /// The last try at the deadline: room, or [`Error::BufferFull`].
    fn reserve_or_full(&self, size: usize) -> Result<()> {
        match self.reserve_or_listen(size) {
            Err(done) => done,
            Ok(_) => Err(Error::BufferFull {
                buffered: self.buffered.load(Ordering::Acquire),
                limit: self.config.buffer_bytes,
            }),
        }
    }

    fn waited_since(&self, started: std::time::Instant) {
        let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters
            .buffer_wait_ns
            .fetch_add(ns, Ordering::Relaxed);
    }

    /// Give back `size` bytes of buffer (`acc` held) and wake the sends waiting for room and
    /// the flushes waiting for completions.
    fn release(&self, _acc: &mut Accumulator, size: usize) {
        self.buffered.fetch_sub(size, Ordering::AcqRel);
        self.progress.notify_all();
        self.space.notify(usize::MAX);
    }

    /// [`send`](Self::send) for async code: if the buffer is full, await room (up to
    /// `max_block`) instead of blocking. Everything else `send` does never blocks.
    async fn send_async(
        &self,
        topic_name: &str,
        partition: Option<u32>,
        record: Record,
    ) -> Result<SendHandle> {
        let size = record_size(&record);
        if !self.try_reserve(size) {
            // Fail before waiting for what waiting cannot fix.
            if self.closed.load(Ordering::Acquire) {
                return Err(self.closed_error());
            }
            self.store.check_open()?;
            let topic = self.store.topic(topic_name)?;
            if let Some(p) = partition {
                topic.partition(p)?;
            }
            self.reserve_async(size).await?;
        }
        self.send_reserved(topic_name, partition, record, size, true)
    }

    fn send(&self, topic_name: &str, partition: Option<u32>, record: Record) -> Result<SendHandle> {
        let size = record_size(&record);
        self.send_reserved(topic_name, partition, record, size, false)
    }

    /// `send`, with `size` bytes of buffer taken already if `reserved`.
    fn send_reserved(
        &self,
        topic_name: &str,
        partition: Option<u32>,
        record: Record,
        size: usize,
        mut reserved: bool,
    ) -> Result<SendHandle> {
        if self.closed.load(Ordering::Acquire) {
            if reserved {
                self.release(&mut self.acc.lock(), size);
            }
            return Err(self.closed_error());
        }
        if let Err(e) = self.store.check_open() {
            if reserved {
                self.release(&mut self.acc.lock(), size);
            }
            return Err(e);
        }
        // The cache's read lock is held from the look-up to the record's encoding (never while
        // waiting): no reference count is touched per record.
        let added = loop {
            let topics = self.topics.read();
            let store_version = self.store.topics_version();
            let Some(cached) = topics.get(topic_name).filter(|c| c.is_fresh(store_version)) else {
                drop(topics);
                match self.refresh_topic(topic_name) {
                    Ok(()) => continue,
                    Err(e) => break Err(e),
                }
            };
            let p = match self.route(cached, topic_name, partition, &record, size) {
                Ok(p) => p,
                Err(e) => break Err(e),
            };
            if !reserved {
                if self.try_reserve(size) {
                    reserved = true;
                } else {
                    drop(topics);
                    match self.reserve_waiting(size) {
                        // The topic as it is now: waiting for room may have let it change.
                        Ok(()) => {
                            reserved = true;
                            continue;
                        }
                        Err(e) => break Err(e),
                    }
                }
            }
            break self.add(cached, p, &record, size).map(|a| (a, p));
        };
        if added.is_err() && reserved {
            self.release(&mut self.acc.lock(), size);
        }
        let ((state, index, timestamp), p) = added?;
        if self.config.acks == Acks::None {
            // Done when accepted: the handle says so, with no offset.
            return Ok(SendHandle {
                batch: Arc::new(BatchState {
                    clock: self.store.clock().clone(),
                    producer: Weak::new(),
                    partition: p,
                    log_append_time: state.log_append_time,
                    times: Mutex::new(Times {
                        default: timestamp,
                        own: Vec::new(),
                    }),
                    result: Mutex::new(Some(Ok(AppendInfo {
                        base_offset: u64::MAX,
                        last_offset: u64::MAX,
                        append_time: self.store.now_ms(),
                        duplicate: false,
                    }))),
                    done: Condvar::new(),
                    wakers: Mutex::new(Vec::new()),
                }),
                index: 0,
            });
        }
        Ok(SendHandle {
            batch: state,
            index,
        })
    }

    /// Encode `record` into partition `p`'s open batch (opening one if there is none, sealing it
    /// first if the record would overflow it, and after if it is full). Returns the batch's
    /// state, the record's index in it and the timestamp it was given.
    fn add(
        &self,
        cached: &CachedTopic,
        p: u32,
        record: &Record,
        size: usize,
    ) -> Result<(Arc<BatchState>, usize, Option<i64>)> {
        let settings = &cached.settings.config;
        let max = settings.max_batch_bytes as usize;
        let slot = cached
            .slots
            .get(p as usize)
            .ok_or_else(|| Error::config("send", "no slot for a partition of the topic"))?;
        let mut open = slot.open.lock();
        // Would the record overflow the open batch (its target size, or the topic's limit)?
        let overflow = open.as_ref().is_some_and(|b| {
            b.bytes + size > self.config.batch_bytes
                || BATCH_HEADER_LEN + b.bytes + size > max
                // Open for a topic since deleted and recreated under this name.
                || !b.topic.same_topic(&cached.topic)
        });
        if overflow {
            self.seal(&mut open, &cached.name, slot, true);
        }
        let batch = match &mut *open {
            Some(b) => b,
            None => {
                let log_append_time = settings.timestamp_type == TimestampType::LogAppendTime;
                open.insert(self.open_batch(cached, slot, log_append_time)?)
            }
        };
        let index = batch.builder.len();
        let own = record.timestamp();
        match (record.key(), record.value(), own) {
            (None, Some(v), None) if record.headers().is_empty() => {
                batch.builder.push(v);
            }
            _ => {
                batch.builder.push_record(record);
            }
        }
        if let Some(t) = own {
            batch.own_times.push((index as u32, t));
        }
        batch.bytes += size;
        let timestamp = own.or_else(|| batch.builder.default_timestamp());
        let state = batch.state.clone();
        if batch.bytes >= self.config.batch_bytes {
            self.seal(&mut open, &cached.name, slot, true);
        }
        Ok((state, index, timestamp))
    }

    /// A new open batch for `slot`, made known to the senders (for its linger).
    fn open_batch(
        &self,
        cached: &CachedTopic,
        slot: &Arc<PartitionSlot>,
        log_append_time: bool,
    ) -> Result<OpenBatch> {
        let mut acc = self.acc.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        let builder = acc
            .spare
            .pop()
            .unwrap_or_else(|| BatchBuilder::with_clock(self.store.clock().clone()));
        let state = Arc::new(BatchState {
            clock: self.store.clock().clone(),
            producer: self.me.clone(),
            partition: slot.partition,
            log_append_time,
            times: Mutex::new(Times::default()),
            result: Mutex::new(None),
            done: Condvar::new(),
            wakers: Mutex::new(Vec::new()),
        });
        acc.open.insert(
            slot_key(slot),
            OpenEntry {
                name: cached.name.clone(),
                slot: slot.clone(),
                created: self.clock.now(),
                state: state.clone(),
            },
        );
        // A sender waiting without a deadline must learn of the first open batch (one waiting
        // for an older batch's linger wakes before this one's anyway); an awake sender looks at
        // the open batches before it waits.
        if acc.open.len() == 1 && acc.awake == 0 {
            self.work.notify_one();
        }
        Ok(OpenBatch {
            topic: cached.topic.clone(),
            builder,
            own_times: Vec::new(),
            bytes: 0,
            state,
        })
    }

    /// Move the open batch of `slot` (locked: `open`) to the ready queue; `wake` a sender if its
    /// partition has no batch in flight (otherwise the sender of that batch takes it next) and
    /// no awake sender is about to look for one.
    fn seal(
        &self,
        open: &mut Option<OpenBatch>,
        name: &Arc<str>,
        slot: &Arc<PartitionSlot>,
        wake: bool,
    ) {
        let Some(b) = open.take() else {
            return;
        };
        *b.state.times.lock() = Times {
            default: b.builder.default_timestamp(),
            own: b.own_times,
        };
        let key = (name.clone(), slot.partition);
        let mut acc = self.acc.lock();
        acc.open.remove(&slot_key(slot));
        let id = acc.next_batch;
        acc.next_batch += 1;
        acc.pending.insert(id);
        // Every batch in flight has an awake sender appending it; any other awake sender looks
        // at the ready queue before it waits.
        let idle = !acc.in_flight.contains(&key) && acc.awake <= acc.in_flight.len();
        acc.ready.push_back(ReadyBatch {
            id,
            key,
            topic: b.topic,
            count: b.builder.len(),
            builder: b.builder,
            bytes: b.bytes,
            state: b.state,
        });
        if wake && idle {
            self.work.notify_one();
        }
    }

    /// Seal `state`'s batch if it is still open, without waiting for its linger.
    fn send_now(&self, state: &Arc<BatchState>) {
        let entry = self
            .acc
            .lock()
            .open
            .values()
            .find(|e| Arc::ptr_eq(&e.state, state))
            .map(|e| (e.name.clone(), e.slot.clone()));
        if let Some((name, slot)) = entry {
            let mut open = slot.open.lock();
            if open.as_ref().is_some_and(|b| Arc::ptr_eq(&b.state, state)) {
                self.seal(&mut open, &name, &slot, true);
            }
        }
    }

    /// Seal every open batch that lingered long enough, unless its partition has a batch in
    /// flight (then it keeps filling, as in Kafka) — or every open batch if `all`. Unlocks `acc`
    /// meanwhile if there is any to seal (a slot is locked before `acc`).
    fn seal_due(&self, acc: &mut MutexGuard<'_, Accumulator>, all: bool, wake: bool) {
        if acc.open.is_empty() {
            return;
        }
        let now = self.clock.now();
        let due: Vec<(Arc<str>, Arc<PartitionSlot>, Arc<BatchState>)> = acc
            .open
            .values()
            .filter(|e| {
                all || (now.saturating_sub(e.created) >= self.config.linger
                    && !acc.in_flight.contains(&(e.name.clone(), e.slot.partition)))
            })
            .map(|e| (e.name.clone(), e.slot.clone(), e.state.clone()))
            .collect();
        if due.is_empty() {
            return;
        }
        MutexGuard::unlocked(acc, || {
            for (name, slot, state) in due {
                let mut open = slot.open.lock();
                if open.as_ref().is_some_and(|b| Arc::ptr_eq(&b.state, &state)) {
                    self.seal(&mut open, &name, &slot, wake);
                }
            }
        });
    }

    fn sender(&self) {
        let mut acc = self.acc.lock();
        acc.awake += 1;
        loop {
            // Once closed, nothing waits for its linger.
            let closed = self.closed.load(Ordering::Acquire);
            self.seal_due(&mut acc, closed, false);
            // `seal_due` may have unlocked `acc`: a `close` meanwhile notified `work` while this
            // sender was not waiting on it, so it must not decide on the `closed` read before.
            if closed != self.closed.load(Ordering::Acquire) {
                continue;
            }
            let pick = acc
                .ready
                .iter()
                .position(|b| !acc.in_flight.contains(&b.key));
            if let Some(i) = pick {
                let Some(mut batch) = acc.ready.remove(i) else {
                    continue;
                };
                acc.in_flight.insert(batch.key.clone());
                let sequence = self
                    .producer_id
                    .map(|_| *acc.next_sequence.get(&batch.key).unwrap_or(&0));
                drop(acc);
                let encoded = batch.builder.encoded_len();
                let result = self.append(&mut batch, sequence);
                let c = &self.counters;
                let (batches, records) = if result.is_ok() {
                    add_bytes(&c.bytes_sent, encoded);
                    (&c.batches_sent, &c.records_sent)
                } else {
                    (&c.batches_failed, &c.records_failed)
                };
                batches.fetch_add(1, Ordering::Relaxed);
                records.fetch_add(batch.count as u64, Ordering::Relaxed);
                batch.state.complete(result.clone());
                acc = self.acc.lock();
                if let (Some(seq), Ok(_)) = (sequence, &result) {
                    acc.next_sequence
                        .insert(batch.key.clone(), next_sequence(seq, batch.count));
                }
                acc.in_flight.remove(&batch.key);
                acc.pending.remove(&batch.id);
                self.release(&mut acc, batch.bytes);
                if acc.spare.len() < SPARE_BUILDERS {
                    batch.builder.clear();
                    acc.spare.push(batch.builder);
                }
                continue;
            }
            if closed && acc.open.is_empty() && acc.ready.is_empty() {
                acc.awake -= 1;
                return;
            }
            let wake = acc
                .open
                .values()
                .map(|e| e.created.saturating_add(self.config.linger))
                .min();
            match wake {
                // A batch whose partition is in flight waits for that batch's completion, which
                // loops back here.
                Some(t) if t > self.clock.now() => {
                    acc.awake -= 1;
                    self.clock.wait_until(&self.work, &mut acc, t);
                    acc.awake += 1;
                }
                Some(_) if acc.in_flight.is_empty() => {}
                _ => {
                    acc.awake -= 1;
                    self.work.wait(&mut acc);
                    acc.awake += 1;
                }
            }
        }
    }

    /// Append `batch`, its records encoded at `send`: no record is encoded again.
    fn append(&self, batch: &mut ReadyBatch, sequence: Option<i32>) -> Result<AppendInfo> {
        let partition = batch.topic.partition(batch.key.1)?;
        let durability = match self.config.acks {
            Acks::Durable => Durability::Always,
            Acks::Written | Acks::None => partition.config().durability,
        };
        let producer = match (self.producer_id, sequence) {
            (Some(id), Some(seq)) => Some(ProducerBatch {
                producer_id: id,
                epoch: 0,
                base_sequence: seq,
            }),
            _ => None,
        };
        partition.append_builder_produced(
            &mut batch.builder,
            producer,
            Some(durability),
            self.config.compression,
        )
    }

    fn flush(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        let mut acc = self.acc.lock();
        self.flush_locked(&mut acc);
        Ok(())
    }

    fn flush_locked(&self, acc: &mut MutexGuard<'_, Accumulator>) {
        self.seal_due(acc, true, true);
        let target = acc.next_batch;
        self.work.notify_all();
        while acc.pending.first().is_some_and(|&id| id < target) {
            self.progress.wait(acc);
        }
    }

    fn close(&self) -> Result<()> {
        {
            let mut acc = self.acc.lock();
            if !self.closed.load(Ordering::Acquire) {
                self.flush_locked(&mut acc);
                self.closed.store(true, Ordering::Release);
            }
            self.work.notify_all();
            self.progress.notify_all();
        }
        self.space.notify(usize::MAX);
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        Ok(())
    }
}

/// Add a byte count to a counter.
fn add_bytes(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}
