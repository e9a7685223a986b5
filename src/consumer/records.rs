//! What a poll returns: records with their topic and partition.

use super::*;

/// A record returned by [`Consumer::poll`]: where it came from, plus the record (zero-copy).
#[derive(Clone, Debug)]
pub struct ConsumerRecord {
    pub(super) topic: Arc<str>,
    pub(super) partition: u32,
    pub(super) record: StoredRecord,
}

impl ConsumerRecord {
    /// A record of `topic`'s `partition`, as a poll returns it.
    pub(crate) fn new(topic: Arc<str>, partition: u32, record: StoredRecord) -> ConsumerRecord {
        ConsumerRecord {
            topic,
            partition,
            record,
        }
    }

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
    pub(super) records: Vec<ConsumerRecord>,
}

impl ConsumerRecords {
    /// What a poll returns: `records`, each partition's in offset order.
    pub(crate) fn from_records(records: Vec<ConsumerRecord>) -> ConsumerRecords {
        ConsumerRecords { records }
    }

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
