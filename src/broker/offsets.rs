//! Committed offsets, stored in the internal compacted topic `__consumer_offsets`.
//!
//! One record per commit of one partition, all partitions of a commit in one batch (atomic): its
//! key names the group and partition ([`OffsetCommitKey`]), its value is the commit
//! ([`OffsetCommitValue`]); their bytes are [`crate::format::meta`]'s. A tombstone (null value) deletes the entry. Compaction keeps the latest commit per key, so the
//! topic stays small; recovery and durability are the log's. The store reads the whole topic at
//! open into an in-memory table, which answers every lookup.
//!
//! The table follows the log: an entry is published only once its record is durable, and for
//! each key it holds the latest record (in log order) of the appends that have returned. Appends
//! of one group run concurrently (the coordinator does not serialize commits) and may return out
//! of log order, so every entry keeps the offset of the record it came from and an older record
//! never replaces a newer one; a deleted key keeps its tombstone's offset for the same reason.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::format::meta::{
    Decode, DecodeError, Encode, OffsetCommitKey, OffsetCommitValue, MAX_OFFSETS_KEY_STRING_LEN,
};
use crate::format::Record;
use crate::partition::Durability;
use crate::topic::{murmur2, Topic};

use super::{OffsetAndMetadata, TopicPartition};

/// Longest commit metadata accepted (Kafka's `offset.metadata.max.bytes` default is 4096).
pub const MAX_METADATA_BYTES: usize = 4096;

/// Offsets of every group, backed by the offsets topic.
#[derive(Debug)]
pub(crate) struct OffsetStore {
    topic: Topic,
    /// group -> (topic, partition) -> the latest record. A leaf lock: held only to read or
    /// publish entries, never across an append, and nothing is locked under it (see the
    /// coordinator's lock order).
    table: RwLock<HashMap<String, BTreeMap<TopicPartition, Entry>>>,
}

/// The latest record of one key the table knows.
#[derive(Clone, Debug)]
struct Entry {
    /// Its offset in the offsets topic partition (all of a group's records are in one).
    at: u64,
    /// The commit, or `None` for a tombstone.
    committed: Option<OffsetAndMetadata>,
}

/// Publish `committed` (at log offset `at`) for `tp` unless the table already holds a later
/// record of it.
fn publish(
    group: &mut BTreeMap<TopicPartition, Entry>,
    tp: &TopicPartition,
    at: u64,
    committed: Option<OffsetAndMetadata>,
) {
    match group.get_mut(tp) {
        Some(e) if e.at >= at => {}
        Some(e) => *e = Entry { at, committed },
        None => {
            group.insert(tp.clone(), Entry { at, committed });
        }
    }
}

impl OffsetStore {
    /// Load every committed offset from `topic`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a record of the offsets topic does not decode; read errors.
    pub fn load(topic: Topic) -> Result<OffsetStore> {
        let mut table: HashMap<String, BTreeMap<TopicPartition, Entry>> = HashMap::new();
        for p in topic.partitions() {
            replay_offsets(
                p.dir(),
                p.start_offset(),
                p.end_offset(),
                |at| p.read(at, 1 << 20),
                |group, tp, at, committed| match committed {
                    None => {
                        if let Some(g) = table.get_mut(&group) {
                            g.remove(&tp);
                            if g.is_empty() {
                                table.remove(&group);
                            }
                        }
                    }
                    Some(om) => {
                        let entry = Entry {
                            at,
                            committed: Some(om),
                        };
                        table.entry(group).or_default().insert(tp, entry);
                    }
                },
            )?;
        }
        Ok(OffsetStore {
            topic,
            table: RwLock::new(table),
        })
    }

    /// Durably record `offsets` for `group` (one batch: all or nothing), then publish them.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for oversized metadata or a topic name too long for the record;
    /// append errors.
    pub fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(offsets.len());
        for (tp, om) in offsets {
            if om.metadata.len() > MAX_METADATA_BYTES {
                return Err(Error::config(
                    "metadata",
                    format!(
                        "{} bytes is more than {MAX_METADATA_BYTES}",
                        om.metadata.len()
                    ),
                ));
            }
            // The key stores the group's and topic's lengths as `u16`: a longer name would be
            // written cut short and make the whole offsets topic undecodable.
            if tp.topic.len() > MAX_OFFSETS_KEY_STRING_LEN {
                return Err(Error::config(
                    "topic",
                    format!(
                        "a commit for a topic name of {} bytes; at most {MAX_OFFSETS_KEY_STRING_LEN} \
                         fit an offsets record",
                        tp.topic.len()
                    ),
                ));
            }
            records.push(Record::new(encode_value(om)).with_key(encode_key(group, tp)));
        }
        let appended = self
            .partition_for(group)?
            .append_batch_with(&records, Durability::Always)?;
        let mut table = self.table.write();
        let g = table.entry(group.to_owned()).or_default();
        for ((tp, om), at) in offsets.iter().zip(appended.base_offset..) {
            publish(g, tp, at, Some(om.clone()));
        }
        Ok(())
    }

    /// Durably delete `group`'s commits for `partitions` (all of them if `None`).
    pub fn delete(&self, group: &str, partitions: Option<&[TopicPartition]>) -> Result<usize> {
        let doomed: Vec<TopicPartition> = {
            let table = self.table.read();
            let Some(g) = table.get(group) else {
                return Ok(0);
            };
            let live = |tp: &TopicPartition| g.get(tp).is_some_and(|e| e.committed.is_some());
            match partitions {
                None => g.keys().filter(|tp| live(tp)).cloned().collect(),
                Some(ps) => ps.iter().filter(|tp| live(tp)).cloned().collect(),
            }
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        let records: Vec<Record> = doomed
            .iter()
            .map(|tp| Record::tombstone(encode_key(group, tp)))
            .collect();
        let appended = self
            .partition_for(group)?
            .append_batch_with(&records, Durability::Always)?;
        let mut table = self.table.write();
        let g = table.entry(group.to_owned()).or_default();
        for (tp, at) in doomed.iter().zip(appended.base_offset..) {
            publish(g, tp, at, None);
        }
        Ok(doomed.len())
    }

    pub fn committed(&self, group: &str, tp: &TopicPartition) -> Option<OffsetAndMetadata> {
        self.table.read().get(group)?.get(tp)?.committed.clone()
    }

    pub fn group_offsets(&self, group: &str) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        let table = self.table.read();
        let Some(g) = table.get(group) else {
            return BTreeMap::new();
        };
        g.iter()
            .filter_map(|(tp, e)| Some((tp.clone(), e.committed.clone()?)))
            .collect()
    }

    /// Groups with at least one committed offset.
    pub fn groups(&self) -> Vec<String> {
        self.table
            .read()
            .iter()
            .filter(|(_, g)| g.values().any(|e| e.committed.is_some()))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The offsets topic partition that holds `group`'s commits (Kafka: hash of the group id).
    fn partition_for(&self, group: &str) -> Result<crate::Partition> {
        let n = self.topic.partition_count().max(1);
        let p = (murmur2(group.as_bytes()) & 0x7fff_ffff) as u32 % n;
        self.topic.partition(p)
    }
}

fn encode_key(group: &str, tp: &TopicPartition) -> Bytes {
    let key = OffsetCommitKey {
        group: group.to_owned(),
        topic: tp.topic.clone(),
        partition: tp.partition,
    };
    Bytes::from(key.encode_to_vec())
}

fn encode_value(om: &OffsetAndMetadata) -> Bytes {
    let value = OffsetCommitValue {
        offset: om.offset,
        commit_timestamp: om.commit_timestamp,
        metadata: om.metadata.clone(),
    };
    Bytes::from(value.encode_to_vec())
}

/// Read an offsets topic partition (in `dir`) from `start` to `end` through `read`, and hand
/// each commit to `apply` in log order: group, partition, its offset in the offsets topic, and
/// the commit (`None`: a tombstone, which deletes it). For the writer's table and for read-only
/// openers alike.
///
/// # Errors
/// As [`decode_record`], and what `read` returns.
pub(crate) fn replay_offsets(
    dir: &std::path::Path,
    start: u64,
    end: u64,
    mut read: impl FnMut(u64) -> Result<crate::partition::Batches>,
    mut apply: impl FnMut(String, TopicPartition, u64, Option<OffsetAndMetadata>),
) -> Result<()> {
    let mut next = start;
    while next < end {
        let batches = read(next)?;
        if batches.is_empty() {
            break;
        }
        for r in batches.records() {
            if let Some((group, tp, committed)) = decode_record(dir, &r)? {
                apply(group, tp, r.offset(), committed);
            }
        }
        next = batches.next_offset();
    }
    Ok(())
}

/// A record of the offsets topic (in partition directory `dir`): the group and partition it is
/// for, and the commit (`None`: a tombstone, which deletes the commit); `Ok(None)` for a record
/// without a key (not one of ours: passed over).
///
/// # Errors
/// [`Error::Corrupt`] naming the record's offset if its key or value does not decode.
fn decode_record(
    dir: &std::path::Path,
    r: &crate::format::StoredRecord,
) -> Result<Option<(String, TopicPartition, Option<OffsetAndMetadata>)>> {
    let Some(key) = r.key() else {
        return Ok(None);
    };
    let undecodable = |what: &str, e: DecodeError| {
        Error::corrupt(
            dir,
            r.offset(),
            format!("undecodable {what} in the offsets topic ({e})"),
        )
    };
    let (group, tp) = decode_key(key).map_err(|e| undecodable("key", e))?;
    let committed = match r.value() {
        None => None,
        Some(v) => Some(decode_value(v).map_err(|e| undecodable("value", e))?),
    };
    Ok(Some((group, tp, committed)))
}

fn decode_key(b: &[u8]) -> std::result::Result<(String, TopicPartition), DecodeError> {
    let key = OffsetCommitKey::decode(b)?;
    Ok((key.group, TopicPartition::new(key.topic, key.partition)))
}

fn decode_value(b: &[u8]) -> std::result::Result<OffsetAndMetadata, DecodeError> {
    let value = OffsetCommitValue::decode(b)?;
    Ok(OffsetAndMetadata {
        offset: value.offset,
        metadata: value.metadata,
        commit_timestamp: value.commit_timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_the_commit() {
        let tp = TopicPartition::new("orders", 7);
        let k = encode_key("g1", &tp);
        assert_eq!(decode_key(&k), Ok(("g1".to_owned(), tp)));
        let om = OffsetAndMetadata {
            offset: 42,
            metadata: "hi".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        let v = encode_value(&om);
        assert_eq!(decode_value(&v), Ok(om));
        assert!(decode_key(&v).is_err() && decode_value(&k).is_err());
    }

    #[test]
    fn an_older_record_never_replaces_a_newer_one() {
        let tp = TopicPartition::new("orders", 0);
        let mut g = BTreeMap::new();
        let at = |offset| Some(OffsetAndMetadata::new(offset));
        publish(&mut g, &tp, 5, at(50));
        publish(&mut g, &tp, 3, at(30));
        assert_eq!(g[&tp].committed, at(50), "an append that returned late");
        publish(&mut g, &tp, 7, None);
        publish(&mut g, &tp, 6, at(60));
        assert_eq!(g[&tp].committed, None, "a commit before the tombstone");
        publish(&mut g, &tp, 8, at(80));
        assert_eq!(g[&tp].committed, at(80));
    }
}
