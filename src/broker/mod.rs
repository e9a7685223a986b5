//! The layer above the storage, in the shape of a Kafka broker: what a broker adds to its log
//! manager. The group coordinator (membership, generations and assignments of consumer groups),
//! the offsets store (committed offsets, kept in the internal compacted topic
//! `__consumer_offsets`), and producer id allocation. Consumers and producers are its clients.
//!
//! ```text
//! Consumer, Producer           clients (crate::consumer, crate::producer)
//!  └─ Broker                   this module: coordinator, offsets, producer ids
//!      └─ Store                storage (crate::store): topics, partitions, its files, clock
//! ```
//!
//! Each layer talks only to the layers below it: the store keeps the broker's state for its life
//! without knowing its type ([`Store::extension`]) and never calls up. The user-facing methods
//! stay on [`Store`], implemented here ([`Store::groups`], [`Store::group_lag`], ...) and by the
//! clients ([`Store::consumer`], [`Store::producer`]).

mod admin;
mod assignor;
mod coordinator;
mod kafka_offsets;
mod offsets;
#[cfg(unix)]
pub(crate) use offsets::replay_offsets;

/// `offsets` as they are committed: a commit without a time gets `now`.
pub(crate) fn stamp_commits(
    offsets: &[(TopicPartition, OffsetAndMetadata)],
    now: i64,
) -> Vec<(TopicPartition, OffsetAndMetadata)> {
    offsets
        .iter()
        .map(|(tp, om)| {
            let mut om = om.clone();
            if om.commit_timestamp == 0 {
                om.commit_timestamp = now;
            }
            (tp.clone(), om)
        })
        .collect()
}
mod producer_ids;

pub use assignor::AssignmentStrategy;
pub use coordinator::MemberDescription;
pub use offsets::MAX_METADATA_BYTES;

pub(crate) use coordinator::{Coordinator, Group, Step};
pub(crate) use offsets::OffsetStore;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::{CleanupPolicy, Deadline, LogOverrides};
use crate::error::Result;
use crate::partition::Durability;
use crate::store::{Store, OFFSETS_TOPIC};
use crate::topic::TopicConfig;

/// A topic and partition number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A committed offset: the next offset to consume, with optional metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset to consume.
    pub offset: u64,
    /// Free text stored with the commit (at most [`MAX_METADATA_BYTES`]).
    pub metadata: String,
    /// When it was committed (ms, the store's clock).
    pub commit_timestamp: i64,
}

impl OffsetAndMetadata {
    /// `offset` with no metadata (the timestamp is set when committed).
    pub fn new(offset: u64) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: String::new(),
            commit_timestamp: 0,
        }
    }
}

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

/// The broker of one store: attached to it on first use ([`Broker::of`]) and kept as long as the
/// store.
///
/// # Lock order
/// `offsets` and `producer_ids` are never held together, and are taken before any store or
/// partition lock: `offsets` is held while the offsets topic is loaded or created on first use
/// (the store's `admin`, then `topics`, then the new partitions' locks, under it);
/// `producer_ids` across a producer id allocation (the store's `topics` for a moment, each
/// partition's `writer` for a moment to read the largest id it remembers, and the counter file's
/// atomic write).
#[derive(Debug)]
pub(crate) struct Broker {
    coordinator: Coordinator,
    /// Committed offsets, loaded (or created) on first use. Before every store lock.
    offsets: Mutex<Option<Arc<OffsetStore>>>,
    /// Serializes producer id allocation. Before every store lock.
    producer_ids: Mutex<()>,
}

impl Broker {
    /// The broker of `store`.
    pub(crate) fn of(store: &Store) -> Arc<Broker> {
        store.extension(Broker::new)
    }

    fn new(store: &Store) -> Broker {
        // Weak: the store holds the broker.
        let weak = store.downgrade();
        let counts = move |topics: &BTreeSet<String>| {
            topics
                .iter()
                .filter_map(|t| Some((t.clone(), weak.partition_count(t)?)))
                .collect()
        };
        Broker {
            coordinator: Coordinator::new(Box::new(counts), store.clock().clone()),
            offsets: Mutex::new(None),
            producer_ids: Mutex::new(()),
        }
    }

    /// The group coordinator.
    pub(crate) fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// The offset store, loading or creating the offsets topic on first use.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed); errors creating or loading the offsets topic.
    pub(crate) fn offset_store(&self, store: &Store) -> Result<Arc<OffsetStore>> {
        let mut slot = self.offsets.lock();
        if let Some(s) = &*slot {
            return Ok(s.clone());
        }
        let topic = store.internal_topic_or_create(
            OFFSETS_TOPIC,
            TopicConfig {
                partitions: store.options().offsets_topic_partitions,
                overrides: LogOverrides {
                    cleanup_policy: Some(CleanupPolicy::Compact),
                    durability: Some(Durability::Always),
                    segment_bytes: Some(100 << 20),
                    preallocate: Some(false),
                    segment_ms: Some(Deadline::After(Duration::from_secs(7 * 24 * 3600))),
                    ..LogOverrides::default()
                },
            },
        )?;
        let offsets = Arc::new(OffsetStore::load(topic)?);
        *slot = Some(offsets.clone());
        Ok(offsets)
    }
}

impl Store {
    /// Every group with committed offsets or active members, sorted.
    ///
    /// # Errors
    /// Errors loading the offsets topic.
    pub fn groups(&self) -> Result<Vec<String>> {
        self.check_open()?;
        let broker = Broker::of(self);
        let mut all: BTreeSet<String> = broker.coordinator.active_groups().into_iter().collect();
        if self.internal_topic(OFFSETS_TOPIC).is_some() {
            all.extend(broker.offset_store(self)?.groups());
        }
        Ok(all.into_iter().collect())
    }

    /// The members of `group` and what each owns now.
    pub fn describe_group(&self, group: &str) -> Vec<MemberDescription> {
        Broker::of(self).coordinator.describe(group)
    }

    /// For every partition `group` has a commit for or owns: end offset, committed offset and
    /// lag (Kafka's `kafka-consumer-groups --describe`), sorted by partition.
    ///
    /// # Errors
    /// Errors loading the offsets topic; [`Error::Closed`](crate::Error::Closed).
    pub fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        self.check_open()?;
        let broker = Broker::of(self);
        let committed = broker.offset_store(self)?.group_offsets(group);
        let mut owners: BTreeMap<TopicPartition, String> = BTreeMap::new();
        for m in broker.coordinator.describe(group) {
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
    /// [`Error::CommitFailed`](crate::Error::CommitFailed) if the group has members; I/O errors.
    pub fn delete_group(&self, group: &str) -> Result<usize> {
        self.check_open()?;
        let broker = Broker::of(self);
        let offsets = broker.offset_store(self)?;
        let g = broker.coordinator.group(group);
        broker
            .coordinator
            .commit_checked(&g, None, &[], || offsets.delete(group, None))
    }
}
