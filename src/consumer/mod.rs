//! Consumers and consumer groups: Kafka's consumption model, in-process.
//!
//! A [`Consumer`] reads records from the partitions it is assigned — chosen by you
//! ([`Consumer::assign`]) or by its group ([`Consumer::subscribe`]) — from a position per
//! partition, and commits positions to the store's offsets topic (`__consumer_offsets`, an
//! internal compacted topic) so a later consumer in the same group resumes there. The committed
//! offset is the *next* offset to consume. A consumer is a client of the broker
//! (`crate::broker`), whose coordinator runs the rebalance protocol and keeps the offsets.
//!
//! The [`Consumer`] and its public calls are here; `config` (its settings), `records` (what a
//! poll returns), `group` (its side of the rebalance protocol), `fetch` (positions and reads) and
//! `waker` hold the rest.

mod config;
mod fetch;
mod group;
mod records;
#[cfg(feature = "stream")]
mod stream;
mod waker;

pub use config::{AutoOffsetReset, ConsumerConfig, Isolation};
pub use records::{ConsumerRecord, ConsumerRecords};
#[cfg(feature = "stream")]
pub use stream::RecordStream;
pub use waker::ConsumerWaker;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::broker::{
    AssignmentStrategy, Broker, Group, OffsetAndMetadata, OffsetStore, Step, TopicPartition,
};
use crate::clock::ClockWaiter;
use crate::error::{Error, Result};
use crate::format::{HeaderIter, StoredRecord};
use crate::partition::{Notify, Partition};
use crate::store::Store;

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
    /// What [`stats`](Consumer::stats) counts (shared with the futures of async commits, which
    /// take `&self`).
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    polls: AtomicU64,
    records: AtomicU64,
    commits: AtomicU64,
    commits_failed: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counts {
    fn commit(&self, result: &Result<()>) {
        match result {
            Ok(()) => bump(&self.commits, 1),
            Err(_) => bump(&self.commits_failed, 1),
        }
    }
}

/// What a consumer has done since it was created, and how far behind it is now
/// ([`Consumer::stats`]); each field names its counterpart among the Kafka Java consumer's
/// metrics (`consumer-fetch-manager-metrics`, `consumer-coordinator-metrics`).
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Calls to [`poll`](Consumer::poll) that returned.
    pub polls: u64,
    /// Records returned by those polls. Kafka: `records-consumed-total`.
    pub records_consumed: u64,
    /// Commits that succeeded (by hand, or auto-commits). Kafka: `commit-total`.
    pub commits: u64,
    /// Commits that failed (the group took a partition away, or an I/O error). No Kafka metric.
    pub commits_failed: u64,
    /// Partitions assigned now. Kafka: `assigned-partitions`.
    pub assigned_partitions: usize,
    /// The largest lag (end offset minus position) among the assigned partitions with a
    /// position; `None` while none has one. Kafka: `records-lag-max`.
    pub records_lag_max: Option<u64>,
    /// The lags summed over those partitions. Kafka: the sum of the per-partition
    /// `records-lag`.
    pub records_lag_total: u64,
}

/// What a poll does after a fetch ([`Consumer::fetch_step`]).
enum Fetched {
    /// Return these (some records, or none at the deadline).
    Records(ConsumerRecords),
    /// Nothing yet: wait for a notification until this time (the deadline, or sooner to look at
    /// the group).
    WaitUntil(Duration),
    /// Look again at once (the group needs a look now).
    Again,
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
            counts: Arc::new(Counts::default()),
        })
    }

    /// What this consumer has done since it was created (polls, records, commits) and how far
    /// behind the log ends its positions are now. See [`ConsumerStats`] for each field's Kafka
    /// counterpart; [`Store::group_lag`](crate::Store::group_lag) gives a group's committed lag.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use topiclog::{AutoOffsetReset, ConsumerConfig, Record, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let t = store.create_topic("events", TopicConfig::with_partitions(1))?;
    /// t.send_batch(&[Record::new("a"), Record::new("b"), Record::new("c")])?;
    /// let mut consumer = store.consumer(ConsumerConfig {
    ///     auto_offset_reset: AutoOffsetReset::Earliest,
    ///     max_poll_records: 2,
    ///     ..ConsumerConfig::group("g")
    /// })?;
    /// consumer.subscribe(&["events"])?;
    /// let got = consumer.poll(Duration::from_secs(1))?;
    /// consumer.commit_sync()?;
    /// let stats = consumer.stats();
    /// assert_eq!((stats.records_consumed, stats.commits), (got.len() as u64, 1));
    /// assert_eq!(stats.records_lag_max, Some(3 - got.len() as u64));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> ConsumerStats {
        let lags: Vec<u64> = self
            .owned
            .values()
            .filter_map(|o| {
                o.position
                    .map(|p| o.partition.end_offset().saturating_sub(p))
            })
            .collect();
        ConsumerStats {
            polls: self.counts.polls.load(Ordering::Relaxed),
            records_consumed: self.counts.records.load(Ordering::Relaxed),
            commits: self.counts.commits.load(Ordering::Relaxed),
            commits_failed: self.counts.commits_failed.load(Ordering::Relaxed),
            assigned_partitions: self.owned.len(),
            records_lag_max: lags.iter().copied().max(),
            records_lag_total: lags.iter().sum(),
        }
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
        if let Ok(records) = &result {
            bump(&self.counts.polls, 1);
            bump(&self.counts.records, records.len() as u64);
        }
        // Whatever failed after the store closed (a commit or read of a closed partition) failed
        // because of the close: say that, naming the store.
        result.map_err(|e| self.store.check_open().err().unwrap_or(e))
    }

    fn poll_until(&mut self, deadline: Duration) -> Result<ConsumerRecords> {
        loop {
            // Read before the checks below: a close or wakeup that lands after them moves the
            // sequence number, so the wait at the end returns at once.
            let seen = self.notify.seq();
            self.before_fetch()?;
            if self.auto_commit_due() {
                self.auto_commit()?;
            }
            let until = match self.fetch_step(deadline)? {
                Fetched::Records(records) => return Ok(records),
                Fetched::Again => continue,
                Fetched::WaitUntil(until) => until,
            };
            // Wake on new data, a group change, a change of the store's topics or a move of the
            // clock. A member waits as a polling member (alive however long it waits), and wakes
            // in time to notice a member that stopped polling (see `Coordinator::next_check`).
            let timeout = self.clock.timeout(until);
            let notify = &self.notify;
            match &self.membership {
                None => {
                    notify.wait_timeout(seen, timeout);
                }
                Some(m) => {
                    self.broker
                        .coordinator()
                        .waiting(&m.group, m.member, || notify.wait_timeout(seen, timeout));
                }
            }
        }
    }

    /// [`poll`](Self::poll) for async code: the same records, rebalances, auto-commits and
    /// errors, with the wait for records (and the auto-commit's `fdatasync`) taking no thread of
    /// the caller's executor. While it waits it is woken by the append that publishes records
    /// (the notification blocking polls wait on), a group change, [`ConsumerWaker::wakeup`] or a
    /// close, and at its deadline by the process's timer thread; it never polls. An auto-commit
    /// runs on topiclog's I/O threads (as [`commit_async`](Self::commit_async) does) and is
    /// awaited. Works with any executor.
    ///
    /// **Cancellation-safe**: dropping the future (a `select!`, a timeout) loses no record and
    /// moves no position past a record it did not return: records are taken from the log and
    /// returned in the same step, with no `.await` in between. An auto-commit already handed to
    /// the I/O threads completes (it commits positions of records earlier polls returned).
    /// Rebalance listener callbacks run inside it, as in `poll`, and a commit made by one (or the
    /// commit before a revocation) blocks the task for its `fdatasync`.
    ///
    /// # Errors
    /// As [`poll`](Self::poll).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use topiclog::{AutoOffsetReset, ConsumerConfig, Record, Store, TopicConfig};
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
    /// let topic = store.create_topic("jobs", TopicConfig::with_partitions(1))?;
    /// let mut consumer = store.consumer(ConsumerConfig {
    ///     auto_offset_reset: AutoOffsetReset::Earliest,
    ///     ..ConsumerConfig::group("workers")
    /// })?;
    /// consumer.subscribe(&["jobs"])?;
    /// let t = std::thread::spawn(move || topic.send(Record::new("resize image 7")));
    /// // In a tokio task this would be `consumer.poll_async(..).await`.
    /// let records = block_on(consumer.poll_async(Duration::from_secs(10)))?;
    /// assert_eq!(records.iter().next().unwrap().value().unwrap(), &b"resize image 7"[..]);
    /// block_on(consumer.commit_async())?;
    /// # t.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn poll_async(&mut self, timeout: Duration) -> Result<ConsumerRecords> {
        self.check_open()?;
        let deadline = self.clock.deadline_after(timeout);
        let result = self.poll_until_async(deadline).await;
        if let Ok(records) = &result {
            bump(&self.counts.polls, 1);
            bump(&self.counts.records, records.len() as u64);
        }
        result.map_err(|e| self.store.check_open().err().unwrap_or(e))
    }

    /// Await the next records, however long that takes: [`poll_async`](Self::poll_async) with no
    /// timeout, never returning an empty batch. End the wait with
    /// [`ConsumerWaker::wakeup`] (it fails with [`Error::Wakeup`]), by closing the store, or by
    /// dropping the future (cancellation-safe, as `poll_async`).
    ///
    /// # Errors
    /// As [`poll`](Self::poll).
    pub async fn recv(&mut self) -> Result<ConsumerRecords> {
        self.poll_async(Duration::MAX).await
    }

    /// The records as a [`Stream`](futures_core::Stream) of polled batches (each a
    /// [`ConsumerRecords`] of at least one record), for `StreamExt` combinators of `futures` or
    /// `tokio-stream`. Each item is what [`recv`](Self::recv) returns; the stream ends once the
    /// consumer or its store is closed. [`Error::Wakeup`] comes as an item (the stream goes on
    /// afterwards). Dropping the stream between items loses nothing (as `recv`).
    ///
    /// Feature `stream`.
    #[cfg(feature = "stream")]
    pub fn stream(&mut self) -> RecordStream<'_> {
        RecordStream::new(self)
    }

    async fn poll_until_async(&mut self, deadline: Duration) -> Result<ConsumerRecords> {
        loop {
            let seen = self.notify.seq();
            self.before_fetch()?;
            if self.auto_commit_due() {
                self.auto_commit_async().await?;
            }
            let until = match self.fetch_step(deadline)? {
                Fetched::Records(records) => return Ok(records),
                Fetched::Again => continue,
                Fetched::WaitUntil(until) => until,
            };
            let broker = self.broker.clone();
            let _waiting = self
                .membership
                .as_ref()
                .map(|m| broker.coordinator().waiting_guard(&m.group, m.member));
            self.notify.changed(seen, &self.clock, until).await;
        }
    }

    /// What every poll checks before it fetches: the store is open, no wakeup is pending
    /// (checked before anything moves a position: an interrupted poll loses no records).
    fn before_fetch(&mut self) -> Result<()> {
        self.store.check_open()?;
        if self.wakeup.swap(false, Ordering::SeqCst) {
            return Err(Error::Wakeup);
        }
        Ok(())
    }

    fn auto_commit_due(&self) -> bool {
        self.config.enable_auto_commit
            && self.clock.now().saturating_sub(self.last_auto_commit)
                >= self.config.auto_commit_interval
    }

    /// The group step and a fetch, and what the poll does next.
    fn fetch_step(&mut self, deadline: Duration) -> Result<Fetched> {
        self.group_step()?;
        let records = self.fetch()?;
        let now = self.clock.now();
        if !records.is_empty() || now >= deadline {
            return Ok(Fetched::Records(records));
        }
        let until = match &self.membership {
            None => deadline,
            Some(m) => deadline.min(self.broker.coordinator().next_check(&m.group, m.member)),
        };
        Ok(if until <= now {
            Fetched::Again
        } else {
            Fetched::WaitUntil(until)
        })
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
        self.commit(&self.positions())
    }

    /// The positions of everything `poll` returned, to commit.
    fn positions(&self) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        let now = self.store.now_ms();
        self.owned
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
            .collect()
    }

    /// Commit these offsets (each the next offset to consume), durably. A commit timestamp of 0
    /// is replaced by the store's clock.
    ///
    /// # Errors
    /// As [`commit_sync`](Self::commit_sync).
    pub fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<()> {
        let Some(job) = self.commit_job(offsets)? else {
            return Ok(());
        };
        let result = job.run();
        self.counts.commit(&result);
        result
    }

    /// [`commit_sync`](Self::commit_sync) for async code: the positions are taken when it is
    /// called, and the commit (its ownership check, append and `fdatasync`) runs on one of
    /// topiclog's I/O threads (a few threads for the process, started on demand), so it takes no
    /// thread of the caller's executor; the future resolves once the offsets are durable.
    /// Concurrent commits share `fdatasync`s of the offsets partition as blocking ones do.
    ///
    /// The future holds no borrow of the consumer (`'static` and `Send`): it can be awaited
    /// later or elsewhere, and the consumer polled meanwhile. Dropping it does not cancel the
    /// commit, which completes or fails unobserved (Kafka's `commitAsync` without a callback).
    ///
    /// # Errors
    /// As [`commit_sync`](Self::commit_sync).
    pub fn commit_async(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.commit_offsets_async(&self.positions())
    }

    /// [`commit`](Self::commit) for async code, as [`commit_async`](Self::commit_async).
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn commit_offsets_async(
        &self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let job = self.commit_job(offsets);
        let counts = self.counts.clone();
        async move {
            let Some(job) = job? else {
                return Ok(());
            };
            let result = crate::blocking::spawn(move || job.run()).await;
            counts.commit(&result);
            result
        }
    }

    /// Everything a commit of `offsets` needs, checked and stamped; `None` if there is nothing
    /// to commit.
    fn commit_job(
        &self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<Option<CommitJob>> {
        self.check_open()?;
        let group_id = self
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::config("group_id", "commits need a group"))?;
        if offsets.is_empty() {
            return Ok(None);
        }
        let stamped = crate::broker::stamp_commits(offsets, self.store.now_ms());
        let partitions: Vec<TopicPartition> = stamped.iter().map(|(tp, _)| tp.clone()).collect();
        let offset_store = self.broker.offset_store(&self.store)?;
        let (group, member) = match &self.membership {
            Some(m) => (m.group.clone(), Some((m.member, m.generation))),
            None => (self.broker.coordinator().group(group_id), None),
        };
        Ok(Some(CommitJob {
            broker: self.broker.clone(),
            offset_store,
            group,
            member,
            group_id: group_id.to_owned(),
            offsets: stamped,
            partitions,
        }))
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
        if !self.start_auto_commit() {
            return Ok(());
        }
        auto_commit_result(self.commit_sync())
    }

    async fn auto_commit_async(&mut self) -> Result<()> {
        if !self.start_auto_commit() {
            return Ok(());
        }
        auto_commit_result(self.commit_async().await)
    }

    /// An auto-commit is made now: whether there is anything to commit.
    fn start_auto_commit(&mut self) -> bool {
        self.last_auto_commit = self.clock.now();
        // The positions cover everything `poll` returned, and a panic may have struck at any of
        // those records: committing while unwinding would skip the unprocessed ones for good.
        !(std::thread::panicking() || self.config.group_id.is_none() || self.owned.is_empty())
    }
}

/// An auto-commit refused because the group moved on is no error: the new owners start from the
/// last successful commit.
fn auto_commit_result(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::CommitFailed { .. }) => Ok(()),
        other => other,
    }
}

/// A commit, checked and stamped, ready to run on any thread.
struct CommitJob {
    broker: Arc<Broker>,
    offset_store: Arc<OffsetStore>,
    group: Arc<Group>,
    member: Option<(u64, u32)>,
    group_id: String,
    offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    partitions: Vec<TopicPartition>,
}

impl CommitJob {
    fn run(self) -> Result<()> {
        self.broker
            .coordinator()
            .commit_checked(&self.group, self.member, &self.partitions, || {
                self.offset_store.commit(&self.group_id, &self.offsets)
            })
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
