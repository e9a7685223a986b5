//! Consumers and consumer groups: Kafka's consumption model, in-process.
//!
//! A [`Consumer`] reads records from the partitions it is assigned — chosen by you
//! ([`Consumer::assign`]) or by its group ([`Consumer::subscribe`]) — from a position per
//! partition, and commits positions to the store's offsets topic (`__consumer_offsets`, an
//! internal compacted topic) so a later consumer in the same group resumes there. The committed
//! offset is the *next* offset to consume. A consumer is a client of the broker
//! (`crate::broker`), whose coordinator runs the rebalance protocol and keeps the offsets.

mod waker;

pub use waker::ConsumerWaker;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::broker::{AssignmentStrategy, Broker, Group, OffsetAndMetadata, Step, TopicPartition};
use crate::clock::ClockWaiter;
use crate::error::{Error, Result};
use crate::format::{HeaderIter, StoredRecord};
use crate::partition::{Notify, Partition};
use crate::store::Store;

/// Where a consumer starts when it has no valid position. Kafka: `auto.offset.reset`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records appended from now on. Kafka's default.
    #[default]
    Latest,
    /// Fail with [`Error::NoOffset`] (no commit) or [`Error::OffsetOutOfRange`] (the position is
    /// no longer in the log).
    None,
}

/// Which records a consumer sees. Kafka: `isolation.level`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Every record readers can see (Kafka's `read_uncommitted`).
    #[default]
    ReadUncommitted,
    /// Only records that are durable (fsynced): none that a power loss could take back. (topiclog
    /// has no transactions; this is its meaning of "committed".)
    ReadCommitted,
}

/// Settings of a [`Consumer`]. Every field documents its default and Kafka name.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// The group, for [`Consumer::subscribe`] and for commits. Kafka: `group.id`.
    pub group_id: Option<String>,
    /// A name for this consumer in group descriptions. Default `"consumer"`. Kafka: `client.id`.
    pub client_id: String,
    /// Default [`AutoOffsetReset::Latest`]. Kafka: `auto.offset.reset`.
    pub auto_offset_reset: AutoOffsetReset,
    /// Commit the positions of what `poll` returned every `auto_commit_interval`, before a
    /// rebalance revokes partitions, and on close. Default `true`. Kafka: `enable.auto.commit`.
    ///
    /// Never while the thread is panicking: a consumer dropped during unwinding leaves its group
    /// without committing, so the records after the last commit are delivered again (the panic
    /// may have struck at any record of the last poll).
    pub enable_auto_commit: bool,
    /// Default 5 s (by the store's clock). Kafka: `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// Most records one `poll` returns. Default 500. Kafka: `max.poll.records`.
    pub max_poll_records: usize,
    /// About the most bytes one `poll` returns (at least one batch). Default 50 MiB. Kafka:
    /// `fetch.max.bytes`.
    pub max_poll_bytes: usize,
    /// A member that does not poll for this long (by the store's clock) is removed from its
    /// group and its partitions reassigned. Time spent waiting inside `poll` counts as polling.
    /// Default 5 minutes. Kafka: `max.poll.interval.ms`.
    pub max_poll_interval: Duration,
    /// Default [`Isolation::ReadUncommitted`]. Kafka: `isolation.level`.
    pub isolation: Isolation,
    /// Default [`AssignmentStrategy::CooperativeSticky`]. Kafka:
    /// `partition.assignment.strategy`.
    pub assignment_strategy: AssignmentStrategy,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            client_id: "consumer".into(),
            auto_offset_reset: AutoOffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            max_poll_records: 500,
            max_poll_bytes: 50 << 20,
            max_poll_interval: Duration::from_secs(300),
            isolation: Isolation::ReadUncommitted,
            assignment_strategy: AssignmentStrategy::CooperativeSticky,
        }
    }
}

impl ConsumerConfig {
    /// A config for `group_id` with every other setting at its default.
    pub fn group(group_id: impl Into<String>) -> Self {
        ConsumerConfig {
            group_id: Some(group_id.into()),
            ..ConsumerConfig::default()
        }
    }

    /// Check ranges.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(g) = &self.group_id {
            if g.is_empty() || g.len() > 255 {
                return Err(Error::config("group_id", "must be 1 to 255 bytes"));
            }
        }
        if self.max_poll_records == 0 {
            return Err(Error::config("max_poll_records", "must be at least 1"));
        }
        if self.max_poll_bytes == 0 {
            return Err(Error::config("max_poll_bytes", "must be at least 1"));
        }
        if self.auto_commit_interval.is_zero() {
            return Err(Error::config("auto_commit_interval", "must be positive"));
        }
        if self.max_poll_interval.is_zero() {
            return Err(Error::config("max_poll_interval", "must be positive"));
        }
        Ok(())
    }
}

/// A record returned by [`Consumer::poll`]: where it came from, plus the record (zero-copy).
#[derive(Clone, Debug)]
pub struct ConsumerRecord {
    topic: Arc<str>,
    partition: u32,
    record: StoredRecord,
}

impl ConsumerRecord {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }
    /// The offset.
    pub fn offset(&self) -> u64 {
        self.record.offset()
    }
    /// The timestamp (ms).
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp()
    }
    /// The key.
    pub fn key(&self) -> Option<&Bytes> {
        self.record.key()
    }
    /// The value (`None` for a tombstone).
    pub fn value(&self) -> Option<&Bytes> {
        self.record.value()
    }
    /// The headers.
    pub fn headers(&self) -> HeaderIter<'_> {
        self.record.headers()
    }
    /// The stored record.
    pub fn record(&self) -> &StoredRecord {
        &self.record
    }
    /// Its topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

/// What one [`Consumer::poll`] returned: records of one or more partitions, each partition's in
/// offset order.
#[derive(Clone, Debug, Default)]
pub struct ConsumerRecords {
    records: Vec<ConsumerRecord>,
}

impl ConsumerRecords {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// The records.
    pub fn iter(&self) -> std::slice::Iter<'_, ConsumerRecord> {
        self.records.iter()
    }
    /// The partitions with records.
    pub fn partitions(&self) -> BTreeSet<TopicPartition> {
        self.records.iter().map(|r| r.topic_partition()).collect()
    }
    /// The records of one partition.
    pub fn records_for<'a>(
        &'a self,
        tp: &'a TopicPartition,
    ) -> impl Iterator<Item = &'a ConsumerRecord> + 'a {
        self.records
            .iter()
            .filter(move |r| r.partition == tp.partition && *r.topic == *tp.topic)
    }
}

impl IntoIterator for ConsumerRecords {
    type Item = ConsumerRecord;
    type IntoIter = std::vec::IntoIter<ConsumerRecord>;
    fn into_iter(self) -> Self::IntoIter {
        self.records.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConsumerRecords {
    type Item = &'a ConsumerRecord;
    type IntoIter = std::slice::Iter<'a, ConsumerRecord>;
    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}

/// Callbacks around a group rebalance (Kafka's `ConsumerRebalanceListener`). They run inside
/// [`Consumer::poll`] (and [`Consumer::close`]), on the consumer's thread.
pub trait RebalanceListener: Send {
    /// `partitions` are about to be taken away: commit what you processed (the consumer still
    /// owns them, so `consumer.commit_sync()` works here). With auto-commit on, the consumer
    /// has already committed its positions.
    fn on_revoked(&mut self, consumer: &Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }
    /// `partitions` were added to the assignment (positions are resolved on the next fetch).
    fn on_assigned(&mut self, consumer: &Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }
    /// `partitions` were lost without a chance to commit (this member was removed from the group
    /// for missing `max_poll_interval`; another member may already own them). Default: calls
    /// [`on_revoked`](Self::on_revoked), whose commits will fail.
    fn on_lost(&mut self, consumer: &Consumer, partitions: &[TopicPartition]) {
        self.on_revoked(consumer, partitions);
    }
}

struct Owned {
    topic: Arc<str>,
    partition: Partition,
    position: Option<u64>,
    paused: bool,
}

struct Membership {
    group: Arc<Group>,
    member: u64,
    generation: u32,
    subscription: BTreeSet<String>,
}

/// A consumer: one per thread, like Kafka's (`Send`, not `Sync`). Created by
/// [`Store::consumer`](crate::Store::consumer). Dropping it closes it.
///
/// Delivery is at-least-once: a record is delivered again unless a commit covered it. Commits
/// happen when you make them and, with [`enable_auto_commit`](ConsumerConfig::enable_auto_commit),
/// on the auto-commit interval, before a rebalance revokes partitions, and on close or drop. None
/// of these implicit commits happens while the thread is panicking: a consumer dropped during
/// unwinding leaves its group (or drops its assignment) without committing and without calling
/// the [`RebalanceListener`], so every record after the last commit is delivered again.
///
/// A consumer does not outlive its store: after [`Store::close`](crate::Store::close) its calls
/// fail with [`Error::Closed`] naming the store directory, and a `poll` blocked at the time returns
/// that at once. Another thread can interrupt a blocked `poll` through a [`ConsumerWaker`]
/// (see [`waker`](Consumer::waker)).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{AutoOffsetReset, ConsumerConfig, Record, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let orders = store.create_topic("orders", TopicConfig::with_partitions(2))?;
/// orders.send(Record::new("created").with_key("order-1"))?;
///
/// let mut consumer = store.consumer(ConsumerConfig {
///     auto_offset_reset: AutoOffsetReset::Earliest,
///     ..ConsumerConfig::group("billing")
/// })?;
/// consumer.subscribe(&["orders"])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// assert_eq!(records.len(), 1);
/// consumer.commit_sync()?; // the group resumes after "created" next time
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer {
    store: Store,
    broker: Arc<Broker>,
    config: ConsumerConfig,
    notify: Arc<Notify>,
    /// Set by [`ConsumerWaker::wakeup`]; the next poll to see it clears it and fails.
    wakeup: Arc<AtomicBool>,
    owned: BTreeMap<TopicPartition, Owned>,
    membership: Option<Membership>,
    listener: Option<Box<dyn RebalanceListener>>,
    /// The store's clock; its moves wake `notify`.
    clock: ClockWaiter,
    /// When auto-commit last ran (the clock's monotonic time).
    last_auto_commit: Duration,
    /// Where the next fetch starts, for fairness across partitions.
    cursor: usize,
    closed: bool,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.config.group_id)
            .field("assignment", &self.owned.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Consumer {
    fn new(store: Store, config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let notify = Notify::new();
        store.notify_on_change(&notify);
        let clock = {
            let notify = Arc::downgrade(&notify);
            ClockWaiter::new(store.clock().clone(), move || {
                if let Some(n) = notify.upgrade() {
                    n.notify();
                }
            })
        };
        Ok(Consumer {
            broker: Broker::of(&store),
            last_auto_commit: clock.now(),
            clock,
            store,
            config,
            notify,
            wakeup: Arc::new(AtomicBool::new(false)),
            owned: BTreeMap::new(),
            membership: None,
            listener: None,
            cursor: 0,
            closed: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// A handle another thread can use to interrupt [`poll`](Self::poll) (Kafka's `wakeup()`,
    /// which needs a handle here because a consumer is not `Sync`). See [`ConsumerWaker`].
    pub fn waker(&self) -> ConsumerWaker {
        ConsumerWaker::new(self.wakeup.clone(), self.notify.clone())
    }

    /// Join the group and let it assign partitions of `topics` (replacing any earlier
    /// subscription or manual assignment). The assignment arrives during [`poll`](Self::poll).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without a `group_id` or with another assignment strategy than
    /// the group's; [`Error::InvalidTopicName`].
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.subscribe_with(topics, None)
    }

    /// [`subscribe`](Self::subscribe) with a rebalance listener.
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_with(
        &mut self,
        topics: &[&str],
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<()> {
        self.check_open()?;
        let group_id = self.config.group_id.clone().ok_or_else(|| {
            Error::config(
                "group_id",
                "subscribe needs a group; use assign without one",
            )
        })?;
        for t in topics {
            crate::topic::validate_topic_name(t)?;
        }
        self.unsubscribe()?;
        self.listener = listener;
        let coordinator = self.broker.coordinator();
        let group = coordinator.group(&group_id);
        let subscription: BTreeSet<String> = topics.iter().map(|t| t.to_string()).collect();
        let member = coordinator.join(
            &group,
            &self.config.client_id,
            subscription.clone(),
            self.config.assignment_strategy,
            self.config.max_poll_interval,
            self.notify.clone(),
        )?;
        self.membership = Some(Membership {
            group,
            member,
            generation: 0,
            subscription,
        });
        Ok(())
    }

    /// Leave the group (revoking and, with auto-commit, committing first) or drop the manual
    /// assignment.
    ///
    /// # Errors
    /// A failed auto-commit.
    pub fn unsubscribe(&mut self) -> Result<()> {
        let result = self.revoke_all();
        if let Some(m) = self.membership.take() {
            self.broker.coordinator().leave(&m.group, m.member);
        }
        self.clear_owned();
        result
    }

    /// Read exactly these partitions, with no group management (commits still go to `group_id`
    /// if set, allowed while nobody is subscribed in that group).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] / [`Error::InvalidPartition`].
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        let mut resolved = Vec::with_capacity(partitions.len());
        for tp in partitions {
            resolved.push((
                tp.clone(),
                self.store.topic(&tp.topic)?.partition(tp.partition)?,
            ));
        }
        self.unsubscribe()?;
        for (tp, p) in resolved {
            self.add_owned(tp, p);
        }
        Ok(())
    }

    /// The partitions this consumer reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.keys().cloned().collect()
    }

    /// This consumer's member id in its group (`<client_id>-<n>`), if subscribed.
    pub fn member_id(&self) -> Option<String> {
        self.membership
            .as_ref()
            .map(|m| format!("{}-{}", self.config.client_id, m.member))
    }

    /// Records from the assigned partitions: returns as soon as any are available (at most
    /// `max_poll_records` / about `max_poll_bytes`), or empty after `timeout` (by the store's
    /// clock: with a [`ManualClock`](crate::ManualClock), once the clock has moved past it). Also
    /// where group rebalances happen (listener callbacks run here) and auto-commits are made.
    ///
    /// # Errors
    /// [`Error::NoOffset`] / [`Error::OffsetOutOfRange`] under [`AutoOffsetReset::None`]; a
    /// failed auto-commit; read errors; [`Error::Closed`] (naming the store directory) once the
    /// store or this consumer is closed — at once, also for a poll blocked when the store closes
    /// on another thread; [`Error::Wakeup`] after [`ConsumerWaker::wakeup`], with no records
    /// returned or positions moved (only `poll` waits, so only `poll` is interrupted).
    pub fn poll(&mut self, timeout: Duration) -> Result<ConsumerRecords> {
        self.check_open()?;
        let result = self.poll_until(self.clock.deadline_after(timeout));
        // Whatever failed after the store closed (a commit or read of a closed partition) failed
        // because of the close: say that, naming the store.
        result.map_err(|e| self.store.check_open().err().unwrap_or(e))
    }

    fn poll_until(&mut self, deadline: Duration) -> Result<ConsumerRecords> {
        loop {
            // Read before the checks below: a close or wakeup that lands after them moves the
            // sequence number, so the wait at the end returns at once.
            let seen = self.notify.seq();
            self.store.check_open()?;
            // Before anything moves a position: an interrupted poll loses no records.
            if self.wakeup.swap(false, Ordering::SeqCst) {
                return Err(Error::Wakeup);
            }
            if self.config.enable_auto_commit
                && self.clock.now().saturating_sub(self.last_auto_commit)
                    >= self.config.auto_commit_interval
            {
                self.auto_commit()?;
            }
            self.group_step()?;
            let records = self.fetch()?;
            if !records.is_empty() {
                return Ok(records);
            }
            let now = self.clock.now();
            if now >= deadline {
                return Ok(records);
            }
            // Wake on new data, a group change, a change of the store's topics or a move of the
            // clock. A member waits as a polling member (alive however long it waits); with a
            // clock that moves with real time it also wakes now and then, to notice members that
            // stopped polling (a clock that wakes its waiters wakes it as it moves).
            let Some(m) = &self.membership else {
                self.notify.wait_timeout(seen, self.clock.timeout(deadline));
                continue;
            };
            let until = deadline.min(now.saturating_add(Duration::from_millis(100)));
            let timeout = self.clock.timeout(until);
            let notify = &self.notify;
            self.broker
                .coordinator()
                .waiting(&m.group, m.member, || notify.wait_timeout(seen, timeout));
        }
    }

    /// Commit the positions of everything `poll` returned (for every assigned partition with a
    /// position), durably, before returning. The group's other members go on polling and
    /// committing while this commit waits for its fsync, and concurrent commits of one group share
    /// fsyncs of the offsets topic; a rebalance that would take one of these partitions away waits
    /// for the commit to finish.
    ///
    /// # Errors
    /// [`Error::CommitFailed`] if the group took a partition away; [`Error::InvalidConfig`]
    /// without a `group_id`; [`Error::Closed`] once the store or this consumer is closed; I/O
    /// errors.
    pub fn commit_sync(&self) -> Result<()> {
        let now = self.store.now_ms();
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = self
            .owned
            .iter()
            .filter_map(|(tp, o)| {
                o.position.map(|p| {
                    (
                        tp.clone(),
                        OffsetAndMetadata {
                            offset: p,
                            metadata: String::new(),
                            commit_timestamp: now,
                        },
                    )
                })
            })
            .collect();
        self.commit(&offsets)
    }

    /// Commit these offsets (each the next offset to consume), durably. A commit timestamp of 0
    /// is replaced by the store's clock.
    ///
    /// # Errors
    /// As [`commit_sync`](Self::commit_sync).
    pub fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<()> {
        self.check_open()?;
        let group_id = self
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::config("group_id", "commits need a group"))?;
        if offsets.is_empty() {
            return Ok(());
        }
        let now = self.store.now_ms();
        let stamped: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
            .iter()
            .map(|(tp, om)| {
                let mut om = om.clone();
                if om.commit_timestamp == 0 {
                    om.commit_timestamp = now;
                }
                (tp.clone(), om)
            })
            .collect();
        let tps: Vec<TopicPartition> = stamped.iter().map(|(tp, _)| tp.clone()).collect();
        let offset_store = self.broker.offset_store(&self.store)?;
        let coordinator = self.broker.coordinator();
        let (group, member) = match &self.membership {
            Some(m) => (m.group.clone(), Some((m.member, m.generation))),
            None => (coordinator.group(group_id), None),
        };
        coordinator.commit_checked(&group, member, &tps, || {
            offset_store.commit(group_id, &stamped)
        })
    }

    /// The committed offset of `tp` in this consumer's group.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without a `group_id`; [`Error::Closed`]; I/O errors creating the
    /// offsets topic.
    pub fn committed(&self, tp: &TopicPartition) -> Result<Option<OffsetAndMetadata>> {
        self.check_open()?;
        let group_id = self
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::config("group_id", "committed offsets need a group"))?;
        Ok(self
            .broker
            .offset_store(&self.store)?
            .committed(group_id, tp))
    }

    /// The offset the next `poll` reads from in `tp` (resolving it from the committed offset or
    /// `auto_offset_reset` if needed).
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; as [`poll`](Self::poll).
    pub fn position(&mut self, tp: &TopicPartition) -> Result<u64> {
        self.check_open()?;
        self.resolve(tp)
    }

    /// Read `tp` from `offset` next.
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; [`Error::Closed`].
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<()> {
        self.check_open()?;
        self.owned_mut(tp)?.position = Some(offset);
        Ok(())
    }

    /// Read `partitions` (all assigned ones if empty) from their log start.
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; [`Error::Closed`].
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        for tp in self.targets(partitions) {
            let o = self.owned_mut(&tp)?;
            o.position = Some(o.partition.start_offset());
        }
        Ok(())
    }

    /// Read `partitions` (all assigned ones if empty) from their end: only new records.
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; [`Error::Closed`].
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        for tp in self.targets(partitions) {
            let o = self.owned_mut(&tp)?;
            o.position = Some(o.partition.end_offset());
        }
        Ok(())
    }

    /// Read every assigned partition from its first record with a timestamp `>= timestamp` (its
    /// end if none), like Kafka's `offsetsForTimes` + `seek`.
    ///
    /// # Errors
    /// Read errors; [`Error::Closed`].
    pub fn seek_to_time(&mut self, timestamp: i64) -> Result<()> {
        self.check_open()?;
        for o in self.owned.values_mut() {
            let at = o.partition.offset_for_time(timestamp)?;
            o.position = Some(at.map_or_else(|| o.partition.end_offset(), |t| t.offset));
        }
        Ok(())
    }

    /// Stop returning records from `partitions` until [`resume`](Self::resume) (they stay
    /// assigned).
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; [`Error::Closed`].
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        for tp in partitions {
            self.owned_mut(tp)?.paused = true;
        }
        Ok(())
    }

    /// Return records from `partitions` again.
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; [`Error::Closed`].
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        for tp in partitions {
            self.owned_mut(tp)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.owned
            .iter()
            .filter(|(_, o)| o.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Commit (with auto-commit on), run `on_revoked`, leave the group. Dropping the consumer does
    /// the same, ignoring errors — except while the thread is panicking, when it leaves without
    /// committing or calling the listener.
    ///
    /// # Errors
    /// A failed auto-commit (the consumer is closed anyway).
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.unsubscribe();
        self.closed = true;
        result
    }

    /// [`Error::Closed`] (naming the store directory) once this consumer or its store is closed.
    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed {
                path: self.store.dir().to_owned(),
            });
        }
        self.store.check_open()
    }

    fn targets(&self, partitions: &[TopicPartition]) -> Vec<TopicPartition> {
        if partitions.is_empty() {
            self.owned.keys().cloned().collect()
        } else {
            partitions.to_vec()
        }
    }

    fn owned_mut(&mut self, tp: &TopicPartition) -> Result<&mut Owned> {
        self.owned.get_mut(tp).ok_or_else(|| Error::NotAssigned {
            topic: tp.topic.clone(),
            partition: tp.partition,
        })
    }

    fn add_owned(&mut self, tp: TopicPartition, partition: Partition) {
        partition.watch(&self.notify);
        let topic: Arc<str> = Arc::from(tp.topic.as_str());
        self.owned.insert(
            tp,
            Owned {
                topic,
                partition,
                position: None,
                paused: false,
            },
        );
    }

    fn remove_owned(&mut self, tp: &TopicPartition) {
        if let Some(o) = self.owned.remove(tp) {
            o.partition.unwatch(&self.notify);
        }
    }

    fn clear_owned(&mut self) {
        let all: Vec<TopicPartition> = self.owned.keys().cloned().collect();
        for tp in &all {
            self.remove_owned(tp);
        }
    }

    fn auto_commit(&mut self) -> Result<()> {
        self.last_auto_commit = self.clock.now();
        // The positions cover everything `poll` returned, and a panic may have struck at any of
        // those records: committing while unwinding would skip the unprocessed ones for good.
        if std::thread::panicking() || self.config.group_id.is_none() || self.owned.is_empty() {
            return Ok(());
        }
        match self.commit_sync() {
            // The group moved on: the new owners start from the last successful commit.
            Err(Error::CommitFailed { .. }) => Ok(()),
            other => other,
        }
    }

    /// Before giving partitions up: auto-commit, then the listener. Neither while the thread is
    /// panicking (a drop during unwinding): the listener's `on_revoked` is where users commit, and
    /// a callback that panicked during unwinding would abort the process.
    fn before_revoke(&mut self, partitions: &[TopicPartition], lost: bool) -> Result<()> {
        if std::thread::panicking() {
            return Ok(());
        }
        let result = if self.config.enable_auto_commit && !lost {
            self.auto_commit()
        } else {
            Ok(())
        };
        if let Some(mut l) = self.listener.take() {
            if lost {
                l.on_lost(self, partitions);
            } else {
                l.on_revoked(self, partitions);
            }
            self.listener = Some(l);
        }
        result
    }

    /// Give up everything (leaving the group, or dropping a manual assignment).
    fn revoke_all(&mut self) -> Result<()> {
        if self.owned.is_empty() {
            return Ok(());
        }
        if self.membership.is_some() {
            let all = self.assignment();
            self.before_revoke(&all, false)
        } else if self.config.enable_auto_commit {
            self.auto_commit()
        } else {
            Ok(())
        }
    }

    /// Talk to the group coordinator until this member is settled: take up a new generation,
    /// revoke and rejoin, take up the next (a few steps at most).
    fn group_step(&mut self) -> Result<()> {
        for _ in 0..4 {
            if !self.group_step_once()? {
                break;
            }
        }
        Ok(())
    }

    /// One exchange with the coordinator; returns whether to ask again.
    fn group_step_once(&mut self) -> Result<bool> {
        let Some(m) = &self.membership else {
            return Ok(false);
        };
        let (group, member, generation) = (m.group.clone(), m.member, m.generation);
        let broker = self.broker.clone();
        let coordinator = broker.coordinator();
        match coordinator.poll(&group, member, generation) {
            Step::Stable | Step::Waiting => Ok(false),
            Step::Revoke(partitions) => {
                let result = self.before_revoke(&partitions, false);
                for tp in &partitions {
                    self.remove_owned(tp);
                }
                coordinator.rejoin(&group, member);
                result.map(|()| true)
            }
            Step::Assigned(generation, partitions) => {
                let mut added = Vec::new();
                let keep: BTreeSet<&TopicPartition> = partitions.iter().collect();
                let gone: Vec<TopicPartition> = self
                    .owned
                    .keys()
                    .filter(|tp| !keep.contains(tp))
                    .cloned()
                    .collect();
                for tp in &gone {
                    self.remove_owned(tp);
                }
                for tp in partitions {
                    if self.owned.contains_key(&tp) {
                        continue;
                    }
                    // A topic deleted meanwhile: skip it; the next rebalance drops it.
                    let Ok(p) = self
                        .store
                        .topic(&tp.topic)
                        .and_then(|t| t.partition(tp.partition))
                    else {
                        continue;
                    };
                    self.add_owned(tp.clone(), p);
                    added.push(tp);
                }
                if let Some(m) = &mut self.membership {
                    m.generation = generation;
                }
                if let Some(mut l) = self.listener.take() {
                    if !added.is_empty() {
                        l.on_assigned(self, &added);
                    }
                    self.listener = Some(l);
                }
                Ok(true)
            }
            Step::Fenced => {
                let lost = self.assignment();
                if !lost.is_empty() {
                    self.before_revoke(&lost, true)?;
                }
                self.clear_owned();
                // Rejoin as a new member.
                let Some(m) = self.membership.take() else {
                    return Ok(false);
                };
                let member = coordinator.join(
                    &m.group,
                    &self.config.client_id,
                    m.subscription.clone(),
                    self.config.assignment_strategy,
                    self.config.max_poll_interval,
                    self.notify.clone(),
                )?;
                self.membership = Some(Membership {
                    member,
                    generation: 0,
                    ..m
                });
                Ok(true)
            }
        }
    }

    /// Resolve the position of `tp`: as set, else the committed offset, else the reset policy.
    fn resolve(&mut self, tp: &TopicPartition) -> Result<u64> {
        let committed = match &self.config.group_id {
            Some(g) if self.owned.get(tp).is_some_and(|o| o.position.is_none()) => {
                self.broker.offset_store(&self.store)?.committed(g, tp)
            }
            _ => None,
        };
        let reset = self.config.auto_offset_reset;
        let o = self.owned_mut(tp)?;
        if let Some(p) = o.position {
            return Ok(p);
        }
        let p = match (committed, reset) {
            (Some(c), _) => c.offset,
            (None, AutoOffsetReset::Earliest) => o.partition.start_offset(),
            (None, AutoOffsetReset::Latest) => o.partition.end_offset(),
            (None, AutoOffsetReset::None) => {
                return Err(Error::NoOffset {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                })
            }
        };
        o.position = Some(p);
        Ok(p)
    }

    /// Read what is available from the assigned, unpaused partitions, fairly. If a partition
    /// fails after others returned records, those records are returned (their positions have
    /// moved) and the failing partition, whose position has not, fails the next poll.
    fn fetch(&mut self) -> Result<ConsumerRecords> {
        let mut out = ConsumerRecords::default();
        match self.fetch_into(&mut out) {
            Err(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    fn fetch_into(&mut self, out: &mut ConsumerRecords) -> Result<()> {
        let keys: Vec<TopicPartition> = self
            .owned
            .iter()
            .filter(|(_, o)| !o.paused)
            .map(|(tp, _)| tp.clone())
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut bytes = 0usize;
        let n = keys.len();
        let start = self.cursor % n;
        self.cursor = start + 1;
        for i in 0..n {
            if out.records.len() >= self.config.max_poll_records
                || bytes >= self.config.max_poll_bytes
            {
                break;
            }
            let tp = &keys[(start + i) % n];
            let position = self.resolve(tp)?;
            let isolation = self.config.isolation;
            let reset = self.config.auto_offset_reset;
            let Some(o) = self.owned.get_mut(tp) else {
                continue;
            };
            let end = match isolation {
                Isolation::ReadUncommitted => o.partition.end_offset(),
                Isolation::ReadCommitted => o.partition.durable_offset(),
            };
            if position >= end && position <= o.partition.end_offset() {
                continue;
            }
            let budget = (self.config.max_poll_bytes - bytes).max(1);
            let batches = match o.partition.read(position, budget) {
                Ok(b) => b,
                Err(Error::OffsetOutOfRange {
                    requested,
                    start,
                    end,
                }) => {
                    // Retention passed the position, or the log was truncated below it.
                    o.position = Some(match reset {
                        AutoOffsetReset::Earliest => start,
                        AutoOffsetReset::Latest => end,
                        AutoOffsetReset::None => {
                            return Err(Error::OffsetOutOfRange {
                                requested,
                                start,
                                end,
                            })
                        }
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            bytes += batches.size_bytes();
            let mut next = position;
            for r in batches.records() {
                if r.offset() >= end || out.records.len() >= self.config.max_poll_records {
                    break;
                }
                next = r.offset() + 1;
                out.records.push(ConsumerRecord {
                    topic: o.topic.clone(),
                    partition: tp.partition,
                    record: r,
                });
            }
            // Past a compaction gap with nothing returned, still move on.
            if next == position {
                next = batches.next_offset().min(end).max(position);
            }
            o.position = Some(next);
        }
        Ok(())
    }
}

impl Store {
    /// A new consumer. See [`Consumer`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; [`Error::Closed`].
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        self.check_open()?;
        if config.group_id.is_some() {
            // Create (or load) the offsets topic now, so the first poll does not.
            Broker::of(self).offset_store(self)?;
        }
        Consumer::new(self.clone(), config)
    }
}

// Consumers move between threads (one per thread, like Kafka's); their wakers are shared.
const _: () = {
    const fn send<T: Send>() {}
    const fn send_sync<T: Send + Sync>() {}
    send::<Consumer>();
    send_sync::<ConsumerWaker>();
};

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
