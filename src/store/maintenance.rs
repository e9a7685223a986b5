//! Health and upkeep: poisoned partitions and their in-place recovery, flush, retention and
//! compaction passes (on demand and on the background threads), close.

use super::*;

impl Store {
    /// The partitions an I/O failure (a full disk, a failed write or fsync) has latched, with what
    /// latched them, the internal offsets topic's included: they refuse writes until
    /// [`recover_partition`](Self::recover_partition) brings them back. Empty when all is well.
    pub fn poisoned_partitions(&self) -> Vec<PoisonedPartition> {
        let topics = self.every_topic();
        let mut out = Vec::new();
        for (name, topic) in topics {
            for (i, p) in topic.partitions().iter().enumerate() {
                if let Some(cause) = p.poison_cause() {
                    out.push(PoisonedPartition {
                        topic: name.clone(),
                        partition: i as u32,
                        cause,
                    });
                }
            }
        }
        out
    }

    /// Bring one poisoned partition back without closing the store or any other partition (see
    /// [`Partition::recover`](crate::Partition::recover)): recovery re-runs from what is on disk
    /// and every acknowledged record stays. Meanwhile, producers of the partition get
    /// [`Error::Poisoned`] (after the error of the write that failed); consumers go on reading
    /// what the partition holds (a poisoned partition serves reads by design: `poll` returns its
    /// records up to its end, then nothing new, never an error), and a commit whose offsets
    /// partition (of `__consumer_offsets`) is the poisoned one gets [`Error::Poisoned`]. Both carry
    /// on afterwards with the same handles. `topic` may name the internal offsets topic
    /// (`__consumer_offsets`).
    ///
    /// # Examples
    /// ```
    /// # use topiclog::{Store, TopicConfig};
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path())?;
    /// # store.create_topic("orders", TopicConfig::with_partitions(1))?;
    /// for p in store.poisoned_partitions() {
    ///     eprintln!("{}-{} is latched: {}", p.topic, p.partition, p.cause);
    ///     // ... once the disk has room again:
    ///     let report = store.recover_partition(&p.topic, p.partition)?;
    ///     eprintln!("dropped {} offsets whose fsync failed", report.offsets_dropped);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::InvalidPartition`], [`Error::Closed`]; recovery's errors
    /// (the partition stays poisoned and the call can be repeated).
    pub fn recover_partition(&self, topic: &str, partition: u32) -> Result<RecoveryReport> {
        self.inner.check_open()?;
        let t = self
            .inner
            .topics
            .read()
            .get(topic)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                name: topic.to_owned(),
            })?;
        let p = t.partition(partition)?;
        // A partition that is not poisoned is left as it is (and its last report, already
        // reported, comes back).
        let was_poisoned = p.is_poisoned();
        let report = p.recover()?;
        if !was_poisoned {
            return Ok(report);
        }
        if let Some(e) = recovery_cut_error(topic, partition, p.dir(), &report) {
            self.inner.record_failure(&e);
        }
        if repaired(&report) {
            self.inner.recovery_reports.lock().push(PartitionRecovery {
                topic: topic.to_owned(),
                partition,
                report,
            });
        }
        Ok(report)
    }

    /// Make every record of every topic durable now, the internal offsets topic included, and
    /// record each partition's recovery point (so recovery after a crash treats damage to any of
    /// them as damage, never as a torn tail), whatever the topics' durability.
    ///
    /// # Errors
    /// [`Error::Closed`]; the first error a partition's flush reported (every partition is still
    /// visited).
    pub fn flush(&self) -> Result<()> {
        self.inner.check_open()?;
        let topics: Vec<Topic> = self.inner.topics.read().values().cloned().collect();
        let mut first_err = None;
        for p in topics.iter().flat_map(|t| t.partitions()) {
            if let Err(e) = p.flush_checkpoint() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Run maintenance once, now: interval flushes, background sync of rolled segments,
    /// retention for every topic whose cleanup policy deletes, and a compaction pass on every
    /// partition of a compacted topic whose triggers fire. The background threads do the same
    /// (retention every `retention_check_interval`, compaction every `cleaner_backoff`); call
    /// this yourself when `background_maintenance` / `background_cleaner` are off.
    ///
    /// # Errors
    /// [`Error::Closed`]; otherwise the first failure, as an [`Error::Maintenance`] naming the
    /// task, topic and partition, with the partition's error as its cause (its
    /// [`kind`](Error::kind) is the cause's). Every partition is still visited, and every failure
    /// is recorded for [`last_maintenance_error`](Self::last_maintenance_error).
    pub fn maintain(&self) -> Result<()> {
        self.inner.maintain(true)
    }

    /// The last failure of background work: a maintenance pass (flushes, retention) or a
    /// compaction pass, whether a background thread or [`maintain`](Self::maintain) ran it, or a
    /// recovery that cut records. It is an [`Error::Maintenance`] naming the task, topic and
    /// partition, its cause the partition's typed error (so [`Error::kind`] says whether the next
    /// pass may get through, e.g. after a full disk, and [`Error::io_error`] has the OS error). It
    /// stays until a later failure replaces it; `None` if nothing failed or was cut since the
    /// store was opened. A partition that a failure poisoned fails every later pass with
    /// [`Error::Poisoned`] until it is recovered ([`recover_partition`](Self::recover_partition))
    /// or the store is reopened; that repeat never replaces a failure already kept, so the cause
    /// stays visible.
    ///
    /// A recovery that cut records is reported here too, with task
    /// [`MaintenanceTask::Recovery`] and an [`Error::RecoveryCut`] cause holding the partition's
    /// [`RecoveryReport`]: at open, a torn tail cut after a crash, damage cut under
    /// [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt), or the records past what
    /// a poisoned run could vouch for (the last such partition, if several); later, an in-place
    /// [`recover_partition`](Self::recover_partition) that dropped offsets. A clean open, and a
    /// recovery that only rewrote metadata (a checkpoint, the producer state), leave it `None`;
    /// every repair is also in [`recovery_reports`](Self::recovery_reports).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Error, ErrorKind, Store};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// if let Some(Error::Maintenance { task, topic, partition, cause }) =
    ///     store.last_maintenance_error()
    /// {
    ///     let hint = if cause.kind() == ErrorKind::Retriable { "retrying" } else { "act now" };
    ///     eprintln!("{task} of {topic}-{partition} failed ({hint}): {cause}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_maintenance_error(&self) -> Option<Error> {
        self.inner.last_maintenance_error.lock().clone()
    }

    /// Close cleanly: stop maintenance, close every partition (so the next open skips the
    /// rescan) and release the directory lock. Other clones get [`Error::Closed`] afterwards;
    /// dropping the last clone closes too.
    ///
    /// # Errors
    /// The first error a partition's close reported.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// For crash tests: leave the store as a process killed at this instant would, without
    /// writing anything: background threads stop, every partition is abandoned (its lock
    /// released, no sync, no clean-shutdown marker; see `Partition::abandon`), the store's lock
    /// is released, and every handle gets [`Error::Closed`] afterwards. Unlike leaking the
    /// store, this frees what it holds (descriptors, maps).
    #[doc(hidden)]
    pub fn abandon(&self) {
        // Abandoning writes nothing, so it cannot fail.
        let _ = self.inner.shut_down(false);
    }
}

impl StoreInner {
    pub(super) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn maintain(&self, retention: bool) -> Result<()> {
        self.check_open()?;
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        let mut first_err = None;
        let mut failed = |task, topic: &Topic, partition, cause| {
            let e = Error::maintenance(task, topic.name(), partition, cause);
            self.record_failure(&e);
            first_err.get_or_insert(e);
        };
        for topic in &topics {
            for (i, p) in topic.partitions().iter().enumerate() {
                match p.flush_if_due() {
                    Ok(_) | Err(Error::Closed { .. }) => {}
                    Err(e) => failed(MaintenanceTask::Flush, topic, i as u32, e),
                }
            }
        }
        let now = self.env.clock.now_ms();
        let check_ms = self.options.retention_check_interval.as_millis() as i64;
        let due = now.saturating_sub(self.last_retention_ms.load(Ordering::Acquire)) >= check_ms;
        if retention || due {
            self.last_retention_ms.store(now, Ordering::Release);
            for topic in &topics {
                topic.apply_retention_each(now, |i, e| {
                    failed(MaintenanceTask::Retention, topic, i, e)
                });
            }
        }
        if retention {
            // On demand: compaction too (in the background the cleaner thread does it).
            if let Err(e) = self.compact_all() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// One compaction pass over every partition of every compacted topic whose triggers fire.
    /// Returns whether any partition was cleaned; every failure is recorded, the first returned.
    fn compact_all(&self) -> Result<bool> {
        self.check_open()?;
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        let now = self.env.clock.now_ms();
        let mut cleaned = false;
        let mut first_err = None;
        for topic in &topics {
            let report = topic.compact_each(now, |i, cause| {
                let e = Error::maintenance(MaintenanceTask::Compaction, topic.name(), i, cause);
                self.record_failure(&e);
                first_err.get_or_insert(e);
            });
            cleaned |= report.cleaned;
        }
        first_err.map_or(Ok(cleaned), Err)
    }

    /// Keep `e` for [`Store::last_maintenance_error`]. A poisoned partition fails every pass
    /// with [`Error::Poisoned`] until it is recovered (`recover_partition`) or the store is
    /// reopened: that echo never replaces a failure already kept (which may be the one that
    /// poisoned it).
    pub(super) fn record_failure(&self, e: &Error) {
        crate::trace::event!(error, error = %e, "maintenance failed");
        let echo = matches!(e, Error::Maintenance { cause, .. } if matches!(**cause, Error::Poisoned { .. }));
        let mut last = self.last_maintenance_error.lock();
        if !(echo && last.is_some()) {
            *last = Some(e.clone());
        }
    }

    pub(super) fn close(&self) -> Result<()> {
        self.shut_down(true)
    }

    /// Close (`clean`), or abandon as a crash would (see [`Store::abandon`]).
    fn shut_down(&self, clean: bool) -> Result<()> {
        let _admin = self.admin.lock();
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // After the flag: a consumer reads its signal's sequence number before it checks the flag
        // and sleeps on that number, so it either sees the flag or is woken.
        self.notify_watchers();
        {
            let (stopped, cv) = &*self.stop;
            *stopped.lock() = true;
            cv.notify_all();
        }
        if let Some(handle) = self.maintenance.lock().take() {
            // It finishes its current pass, then sees the stop flag.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        let topics: Vec<Topic> = self.topics.read().values().cloned().collect();
        // Closing a partition stops a compaction pass on it at its next check. Every partition
        // of every topic side by side (issue 13): the syncs of a close overlap.
        let partitions: Vec<crate::Partition> =
            topics.iter().flat_map(|t| t.partitions()).collect();
        let first_err = if clean {
            crate::topic::close_all(&partitions).err()
        } else {
            partitions.iter().for_each(crate::Partition::abandon);
            None
        };
        if let Some(handle) = self.cleaner.lock().take() {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        self.lock.lock().take();
        first_err.map_or(Ok(()), Err)
    }
}

pub(super) fn spawn_maintenance(
    store: Arc<StoreInner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    interval: Duration,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("topiclog-maintenance".into())
        .spawn(move || loop {
            {
                let (stopped, cv) = &*stop;
                let mut guard = stopped.lock();
                if !*guard {
                    cv.wait_for(&mut guard, interval);
                }
                if *guard {
                    return;
                }
            }
            // Failures are kept for `last_maintenance_error`; partitions latch their own.
            let _ = store.maintain(false);
        })
}

pub(super) fn spawn_cleaner(
    store: Arc<StoreInner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    backoff: Duration,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("topiclog-cleaner".into())
        .spawn(move || {
            let mut busy = false;
            loop {
                {
                    let (stopped, cv) = &*stop;
                    let mut guard = stopped.lock();
                    // Straight on while passes find work (a pass may clean only part of a
                    // partition); otherwise back off.
                    if !*guard && !busy {
                        cv.wait_for(&mut guard, backoff);
                    }
                    if *guard {
                        return;
                    }
                }
                // Failures are kept for `last_maintenance_error`; a failed partition is tried
                // again after the backoff.
                busy = matches!(store.compact_all(), Ok(true));
            }
        })
}
