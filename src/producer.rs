//! The producer: Kafka's `KafkaProducer`, in-process. `send` buffers a record in a per-partition
//! batch and returns a handle at once; sender threads append a batch when it reaches
//! `batch_bytes` or has waited `linger`, and complete its records' handles according to `acks`.
//!
//! Ordering: records sent to one partition are appended in the order `send` accepted them (one
//! batch per partition in flight at a time). Idempotence: each producer gets a store-unique
//! producer id; its batches carry per-partition sequence numbers, so a batch appended twice is
//! stored once ([`Partition::append_idempotent`](crate::Partition::append_idempotent)).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::format::Record;
use crate::partition::{AppendInfo, Durability, ProducerBatch, TimestampType};
use crate::store::Store;
use crate::topic::{CleanupPolicy, Partitioner, RecordMetadata, Topic};

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

/// Compression of batches. Only `None` is available in this build; codecs will come behind Cargo
/// features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Records are stored as sent.
    #[default]
    None,
}

/// Settings of a [`Producer`]. Every field documents its default and Kafka name.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// Default [`Acks::Durable`]. Kafka: `acks`.
    pub acks: Acks,
    /// A partition's batch is appended once it holds this many bytes. Default 16 KiB. Kafka:
    /// `batch.size`.
    pub batch_bytes: usize,
    /// How long a batch that is not full waits for more records. Default 5 ms. Kafka:
    /// `linger.ms`.
    pub linger: Duration,
    /// Batches (to different partitions) being appended at once: the number of sender threads.
    /// Default 5. Kafka: `max.in.flight.requests.per.connection`.
    pub max_in_flight: usize,
    /// Stamp batches with a producer id and sequence numbers so replays are stored once.
    /// Default `true`. Kafka: `enable.idempotence`.
    pub idempotent: bool,
    /// Default [`Compression::None`]. Kafka: `compression.type`.
    pub compression: Compression,
    /// Chooses partitions for records sent without one. Default `None`: the store's.
    /// Kafka: `partitioner.class`.
    pub partitioner: Option<Arc<dyn Partitioner>>,
    /// Most bytes of records buffered (not yet appended). Default 32 MiB. Kafka:
    /// `buffer.memory`.
    pub buffer_bytes: usize,
    /// How long `send` waits for buffer space before [`Error::BufferFull`]. Default 60 s.
    /// Kafka: `max.block.ms`.
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
    /// # Errors
    /// The append's error (the record was not stored).
    pub fn wait(&self) -> Result<RecordMetadata> {
        let mut r = self.batch.result.lock();
        while r.is_none() {
            self.batch.done.wait(&mut r);
        }
        self.metadata(r.as_ref())
    }

    /// [`wait`](Self::wait) for at most `timeout`; `None` if not done by then.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<RecordMetadata>> {
        let deadline = Instant::now() + timeout;
        let mut r = self.batch.result.lock();
        while r.is_none() {
            if self.batch.done.wait_until(&mut r, deadline).timed_out() {
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
        let ts = self
            .batch
            .timestamps
            .lock()
            .get(self.index)
            .copied()
            .flatten();
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
    partition: u32,
    log_append_time: bool,
    /// Records' own timestamps, by index.
    timestamps: Mutex<Vec<Option<i64>>>,
    result: Mutex<Option<Result<AppendInfo>>>,
    done: Condvar,
}

impl BatchState {
    fn complete(&self, r: Result<AppendInfo>) {
        *self.result.lock() = Some(r);
        self.done.notify_all();
    }
}

type PartitionKey = (Arc<str>, u32);

struct OpenBatch {
    topic: Topic,
    records: Vec<Record>,
    bytes: usize,
    created: Instant,
    state: Arc<BatchState>,
}

struct ReadyBatch {
    id: u64,
    key: PartitionKey,
    topic: Topic,
    records: Vec<Record>,
    bytes: usize,
    sequence: Option<i32>,
    state: Arc<BatchState>,
}

#[derive(Default)]
struct Accumulator {
    open: HashMap<PartitionKey, OpenBatch>,
    ready: VecDeque<ReadyBatch>,
    in_flight: HashSet<PartitionKey>,
    /// Ids of batches sealed but not yet completed.
    pending: BTreeSet<u64>,
    next_batch: u64,
    next_sequence: HashMap<PartitionKey, i32>,
    buffered: usize,
    closed: bool,
}

struct Core {
    store: Store,
    config: ProducerConfig,
    producer_id: Option<i64>,
    partitioner: Arc<dyn Partitioner>,
    topics: Mutex<HashMap<String, Topic>>,
    acc: Mutex<Accumulator>,
    /// Senders wait here for work.
    work: Condvar,
    /// `send` waits here for buffer space; `flush` for completions.
    progress: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
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

impl Producer {
    pub(crate) fn new(
        store: Store,
        config: ProducerConfig,
        producer_id: Option<i64>,
        default_partitioner: Arc<dyn Partitioner>,
    ) -> Result<Producer> {
        config.validate()?;
        let partitioner = config.partitioner.clone().unwrap_or(default_partitioner);
        let core = Arc::new(Core {
            store,
            producer_id,
            partitioner,
            topics: Mutex::new(HashMap::new()),
            acc: Mutex::new(Accumulator::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            threads: Mutex::new(Vec::new()),
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

/// About the bytes a record takes in a batch (used for batching and buffer accounting).
fn record_size(r: &Record) -> usize {
    16 + r.key().map_or(0, |k| k.len())
        + r.value().map_or(0, |v| v.len())
        + r.headers()
            .iter()
            .map(|(k, v)| 4 + k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum::<usize>()
}

impl Core {
    fn topic(&self, name: &str) -> Result<Topic> {
        if let Some(t) = self.topics.lock().get(name) {
            return Ok(t.clone());
        }
        let t = self.store.topic(name)?;
        self.topics.lock().insert(name.to_owned(), t.clone());
        Ok(t)
    }

    fn send(&self, topic_name: &str, partition: Option<u32>, record: Record) -> Result<SendHandle> {
        let topic = self.topic(topic_name)?;
        if matches!(
            topic.cleanup_policy(),
            CleanupPolicy::Compact | CleanupPolicy::CompactDelete
        ) && record.key().is_none()
        {
            return Err(Error::MissingKey {
                topic: topic_name.to_owned(),
            });
        }
        let size = record_size(&record);
        let max = topic.partition_config().max_batch_bytes as usize;
        if size > max {
            return Err(Error::RecordTooLarge { size, max });
        }
        let count = topic.partition_count();
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
        let deadline = Instant::now() + self.config.max_block;
        let mut acc = self.acc.lock();
        loop {
            if acc.closed {
                return Err(Error::Closed {
                    path: self.store.dir().to_owned(),
                });
            }
            // A record larger than the whole buffer still goes when the buffer is empty.
            if acc.buffered + size <= self.config.buffer_bytes || acc.buffered == 0 {
                break;
            }
            if self.progress.wait_until(&mut acc, deadline).timed_out() {
                return Err(Error::BufferFull {
                    buffered: acc.buffered,
                    limit: self.config.buffer_bytes,
                });
            }
        }
        let key: PartitionKey = (Arc::from(topic_name), p);
        // Would the record overflow the open batch (in bytes or in the topic's batch limit)?
        if let Some(b) = acc.open.get(&key) {
            if b.bytes + size > self.config.batch_bytes.min(max) {
                self.seal(&mut acc, &key);
            }
        }
        let log_append_time =
            topic.partition_config().timestamp_type == TimestampType::LogAppendTime;
        let ts = record.timestamp();
        let batch = acc.open.entry(key.clone()).or_insert_with(|| OpenBatch {
            topic: topic.clone(),
            records: Vec::new(),
            bytes: 0,
            created: Instant::now(),
            state: Arc::new(BatchState {
                partition: p,
                log_append_time,
                timestamps: Mutex::new(Vec::new()),
                result: Mutex::new(None),
                done: Condvar::new(),
            }),
        });
        let fresh = batch.records.is_empty();
        let index = batch.records.len();
        batch.records.push(record);
        batch.bytes += size;
        batch.state.timestamps.lock().push(ts);
        let state = batch.state.clone();
        let full = batch.bytes >= self.config.batch_bytes;
        acc.buffered += size;
        if full {
            self.seal(&mut acc, &key);
        }
        if full || fresh {
            self.work.notify_one();
        }
        drop(acc);
        if self.config.acks == Acks::None {
            // Done when accepted: the handle says so, with no offset.
            let handle = SendHandle {
                batch: Arc::new(BatchState {
                    partition: p,
                    log_append_time,
                    timestamps: Mutex::new(vec![ts]),
                    result: Mutex::new(Some(Ok(AppendInfo {
                        base_offset: u64::MAX,
                        last_offset: u64::MAX,
                        append_time: self.store.now_ms(),
                        duplicate: false,
                    }))),
                    done: Condvar::new(),
                }),
                index: 0,
            };
            return Ok(handle);
        }
        Ok(SendHandle {
            batch: state,
            index,
        })
    }

    /// Move the open batch for `key` to the ready queue, giving it a sequence number.
    fn seal(&self, acc: &mut Accumulator, key: &PartitionKey) {
        let Some(b) = acc.open.remove(key) else {
            return;
        };
        let sequence = self.producer_id.map(|_| {
            let next = acc.next_sequence.entry(key.clone()).or_insert(0);
            let seq = *next;
            let n = b.records.len() as i64;
            *next = ((i64::from(seq) + n) % (i64::from(i32::MAX) + 1)) as i32;
            seq
        });
        let id = acc.next_batch;
        acc.next_batch += 1;
        acc.pending.insert(id);
        acc.ready.push_back(ReadyBatch {
            id,
            key: key.clone(),
            topic: b.topic,
            records: b.records,
            bytes: b.bytes,
            sequence,
            state: b.state,
        });
    }

    fn sender(&self) {
        let mut acc = self.acc.lock();
        loop {
            // Batches that lingered long enough.
            let now = Instant::now();
            let lingered: Vec<PartitionKey> = acc
                .open
                .iter()
                .filter(|(_, b)| now.duration_since(b.created) >= self.config.linger)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &lingered {
                self.seal(&mut acc, k);
            }
            let pick = acc
                .ready
                .iter()
                .position(|b| !acc.in_flight.contains(&b.key));
            if let Some(i) = pick {
                let Some(batch) = acc.ready.remove(i) else {
                    continue;
                };
                acc.in_flight.insert(batch.key.clone());
                drop(acc);
                let result = self.append(&batch);
                batch.state.complete(result);
                acc = self.acc.lock();
                acc.in_flight.remove(&batch.key);
                acc.pending.remove(&batch.id);
                acc.buffered -= batch.bytes;
                self.progress.notify_all();
                // Another batch for the same partition may be waiting for this one.
                self.work.notify_one();
                continue;
            }
            if acc.closed && acc.open.is_empty() && acc.ready.is_empty() {
                return;
            }
            let wake = acc
                .open
                .values()
                .map(|b| b.created + self.config.linger)
                .min();
            match wake {
                Some(t) => {
                    self.work.wait_until(&mut acc, t);
                }
                None => self.work.wait(&mut acc),
            }
        }
    }

    fn append(&self, batch: &ReadyBatch) -> Result<AppendInfo> {
        let partition = batch.topic.partition(batch.key.1)?;
        let durability = match self.config.acks {
            Acks::Durable => Durability::Always,
            Acks::Written | Acks::None => partition.config().durability,
        };
        match (self.producer_id, batch.sequence) {
            (Some(id), Some(seq)) => partition.append_idempotent(
                &batch.records,
                ProducerBatch {
                    producer_id: id,
                    epoch: 0,
                    base_sequence: seq,
                },
                durability,
            ),
            _ => partition.append_batch_with(&batch.records, durability),
        }
    }

    fn flush(&self) -> Result<()> {
        let mut acc = self.acc.lock();
        let keys: Vec<PartitionKey> = acc.open.keys().cloned().collect();
        for k in &keys {
            self.seal(&mut acc, k);
        }
        let target = acc.next_batch;
        self.work.notify_all();
        while acc.pending.first().is_some_and(|&id| id < target) {
            self.progress.wait(&mut acc);
        }
        Ok(())
    }

    fn close(&self) -> Result<()> {
        let result = self.flush();
        {
            let mut acc = self.acc.lock();
            acc.closed = true;
            self.work.notify_all();
            self.progress.notify_all();
        }
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        result
    }
}
