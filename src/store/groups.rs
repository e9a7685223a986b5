//! The store's consumer-group services: the offsets topic, the coordinator, lag reporting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::{CleanupPolicy, Deadline, LogOverrides};
use crate::consumer::{
    Consumer, ConsumerConfig, Coordinator, MemberDescription, OffsetAndMetadata, OffsetStore,
    TopicPartition,
};
use crate::error::IoContext;
use crate::error::{Error, Result};
use crate::format::meta::{Decode, Encode, ProducerIdCounter};
use crate::fs::{read_small_file, write_atomic, FileSystem};
use crate::partition::{Durability, Notify};
use crate::producer::{Producer, ProducerConfig};
use crate::topic::TopicConfig;

use super::{Store, StoreInner};

/// Name of the file holding the next producer id (in the store's reserved `__` namespace, so no
/// topic can take it).
const PRODUCER_IDS_FILE: &str = "__producer_ids";

/// Where earlier versions kept the counter, a name a topic may now take. Open moves a valid
/// counter from there to [`PRODUCER_IDS_FILE`]; a damaged one is left for
/// [`Store::producer`] to report.
pub(super) const LEGACY_PRODUCER_IDS_FILE: &str = "producer-ids";

/// Name of the internal topic holding committed offsets.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Where a group stands on one partition.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// Its end offset now (`None` if the topic or partition no longer exists).
    pub end_offset: Option<u64>,
    /// The group's committed offset, if any.
    pub committed: Option<OffsetAndMetadata>,
    /// `end_offset - committed` (0 if the commit is past the end); `None` without both.
    pub lag: Option<u64>,
    /// The member that owns the partition now, if any.
    pub owner: Option<String>,
}

/// The coordinator, looking up partition counts through a weak reference to the store.
pub(super) fn coordinator(store: Weak<StoreInner>) -> Coordinator {
    Coordinator::new(Box::new(move |topics| {
        let mut out = BTreeMap::new();
        if let Some(s) = store.upgrade() {
            let map = s.topics.read();
            for t in topics {
                if super::is_internal(t) {
                    continue;
                }
                if let Some(topic) = map.get(t) {
                    out.insert(t.clone(), topic.partition_count());
                }
            }
        }
        out
    }))
}

/// Read a producer id counter file (layout: [`ProducerIdCounter`]): the next id.
fn read_counter(fs: &dyn FileSystem, path: &Path) -> Result<i64> {
    let b = read_small_file(fs, path, 64)?;
    ProducerIdCounter::decode(&b)
        .map(|c| c.next)
        .map_err(|e| e.corrupt(path, "producer id counter"))
}

/// Replace the counter file at `path` with `next`, durably.
fn write_counter(fs: &dyn FileSystem, path: &Path, next: i64) -> Result<()> {
    let b = ProducerIdCounter { next }.encode_to_vec();
    write_atomic(fs, path, &b).at(path)
}

/// Move an earlier version's counter (`producer-ids`, a file) to `__producer_ids`, keeping the
/// larger of the two so ids never go backwards. A crash in between leaves both, and the next
/// open does it again. A damaged legacy counter is left where it is: [`Store::producer`] reports
/// it, as it did before.
pub(super) fn migrate_legacy_producer_ids(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let legacy = dir.join(LEGACY_PRODUCER_IDS_FILE);
    let from_legacy = match read_counter(fs, &legacy) {
        Ok(next) => next,
        Err(Error::Corrupt { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let path = dir.join(PRODUCER_IDS_FILE);
    let current = if fs.exists(&path).at(&path)? {
        read_counter(fs, &path)?
    } else {
        0
    };
    write_counter(fs, &path, from_legacy.max(current))?;
    fs.remove_file(&legacy).at(&legacy)?;
    fs.sync_dir(dir).at(dir)
}

impl StoreInner {
    /// A fresh producer id: the persisted counter is advanced (durably) before the id is used.
    fn next_producer_id(&self) -> Result<i64> {
        let _admin = self.admin.lock();
        let fs = &*self.env.fs;
        let path = self.dir.join(PRODUCER_IDS_FILE);
        let mut next = if fs.exists(&path).at(&path)? {
            read_counter(fs, &path)?
        } else {
            0
        };
        // A legacy counter open could not migrate (damaged) still counts, or is reported.
        let legacy = self.dir.join(LEGACY_PRODUCER_IDS_FILE);
        if fs.exists(&legacy).at(&legacy)? && !fs.is_dir(&legacy).at(&legacy)? {
            next = next.max(read_counter(fs, &legacy)?);
        }
        // Never hand out an id some partition still remembers, whatever the counter says (a
        // lost counter file would otherwise restart at 0, and a new producer's first batch would
        // be "recognised" as the old producer's and acknowledged at its offset, unwritten).
        let in_use = self
            .topics
            .read()
            .values()
            .flat_map(|t| t.partitions())
            .filter_map(|p| p.max_producer_id())
            .max();
        let next = match in_use {
            Some(id) if id >= next => id
                .checked_add(1)
                .filter(|n| *n < i64::MAX)
                .ok_or_else(|| Error::corrupt(&path, 0, "producer ids are exhausted"))?,
            _ => next,
        };
        write_counter(fs, &path, next + 1)?;
        Ok(next)
    }

    /// The offset store, loading or creating the offsets topic on first use.
    pub(crate) fn offset_store(&self) -> Result<Arc<OffsetStore>> {
        if let Some(s) = self.offsets.lock().clone() {
            return Ok(s);
        }
        let _admin = self.admin.lock();
        self.check_open()?;
        if let Some(s) = self.offsets.lock().clone() {
            return Ok(s);
        }
        let existing = self.topics.read().get(OFFSETS_TOPIC).cloned();
        let topic = match existing {
            Some(t) => t,
            None => self.create_topic_locked(
                OFFSETS_TOPIC,
                TopicConfig {
                    partitions: self.options.offsets_topic_partitions,
                    overrides: LogOverrides {
                        cleanup_policy: Some(CleanupPolicy::Compact),
                        durability: Some(Durability::Always),
                        segment_bytes: Some(100 << 20),
                        preallocate: Some(false),
                        segment_ms: Some(Deadline::After(Duration::from_secs(7 * 24 * 3600))),
                        ..LogOverrides::default()
                    },
                },
            )?,
        };
        let store = Arc::new(OffsetStore::load(topic)?);
        *self.offsets.lock() = Some(store.clone());
        Ok(store)
    }
}

impl Store {
    /// A new consumer. See [`Consumer`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; [`Error::Closed`].
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        self.inner.check_open()?;
        if config.group_id.is_some() {
            // Create (or load) the offsets topic now, so the first poll does not.
            self.inner.offset_store()?;
        }
        Consumer::new(self.clone(), config)
    }

    /// Every group with committed offsets or active members, sorted.
    ///
    /// # Errors
    /// Errors loading the offsets topic.
    pub fn groups(&self) -> Result<Vec<String>> {
        self.inner.check_open()?;
        let mut all: BTreeSet<String> =
            self.inner.coordinator.active_groups().into_iter().collect();
        if self.inner.topics.read().contains_key(OFFSETS_TOPIC) {
            all.extend(self.inner.offset_store()?.groups());
        }
        Ok(all.into_iter().collect())
    }

    /// The members of `group` and what each owns now.
    pub fn describe_group(&self, group: &str) -> Vec<MemberDescription> {
        self.inner.coordinator.describe(group)
    }

    /// For every partition `group` has a commit for or owns: end offset, committed offset and
    /// lag (Kafka's `kafka-consumer-groups --describe`), sorted by partition.
    ///
    /// # Errors
    /// Errors loading the offsets topic; [`Error::Closed`].
    pub fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        self.inner.check_open()?;
        let committed = self.inner.offset_store()?.group_offsets(group);
        let mut owners: BTreeMap<TopicPartition, String> = BTreeMap::new();
        for m in self.inner.coordinator.describe(group) {
            for tp in m.assignment {
                owners.insert(tp, m.member_id.clone());
            }
        }
        let partitions: BTreeSet<TopicPartition> =
            committed.keys().chain(owners.keys()).cloned().collect();
        Ok(partitions
            .into_iter()
            .map(|tp| {
                let end_offset = self
                    .topic(&tp.topic)
                    .and_then(|t| t.partition(tp.partition))
                    .ok()
                    .map(|p| p.end_offset());
                let committed = committed.get(&tp).cloned();
                let lag = match (end_offset, &committed) {
                    (Some(e), Some(c)) => Some(e.saturating_sub(c.offset)),
                    _ => None,
                };
                PartitionLag {
                    owner: owners.get(&tp).cloned(),
                    partition: tp,
                    end_offset,
                    committed,
                    lag,
                }
            })
            .collect())
    }

    /// Delete every committed offset of `group` (Kafka's `deleteConsumerGroups`). Refused while
    /// the group has members.
    ///
    /// # Errors
    /// [`Error::CommitFailed`] if the group has members; I/O errors.
    pub fn delete_group(&self, group: &str) -> Result<usize> {
        self.inner.check_open()?;
        let store = self.inner.offset_store()?;
        let g = self.inner.coordinator.group(group);
        self.inner
            .coordinator
            .commit_checked(&g, None, &[], || store.delete(group, None))
    }

    /// A new producer. See [`Producer`]. An idempotent one gets a producer id no other producer
    /// of this store ever had (a counter persisted in the store directory).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; [`Error::Closed`]; I/O errors persisting the id counter.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        self.inner.check_open()?;
        config.validate()?;
        let id = if config.idempotent {
            Some(self.inner.next_producer_id()?)
        } else {
            None
        };
        Producer::new(self.clone(), config, id, self.inner.partitioner.clone())
    }

    /// [`Error::Closed`] (naming the store directory) once the store is closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        self.inner.check_open()
    }

    /// Fire `notify` when the store closes (until `notify` is dropped).
    pub(crate) fn notify_on_close(&self, notify: &Arc<Notify>) {
        let mut consumers = self.inner.consumers.lock();
        consumers.retain(|n| n.strong_count() > 0);
        consumers.push(Arc::downgrade(notify));
    }

    pub(crate) fn coordinator(&self) -> &Coordinator {
        &self.inner.coordinator
    }

    pub(crate) fn offset_store(&self) -> Result<Arc<OffsetStore>> {
        self.inner.offset_store()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.env.clock.now_ms()
    }
}

// Consumers move between threads (one per thread, like Kafka's); producers are shared.
const _: () = {
    const fn send<T: Send>() {}
    const fn send_sync<T: Send + Sync>() {}
    send::<Consumer>();
    send_sync::<Producer>();
    send_sync::<crate::consumer::ConsumerWaker>();
};
