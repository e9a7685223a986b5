//! A consumer group's committed offsets as the CSV Kafka's `kafka-consumer-groups.sh
//! --reset-offsets --from-file` reads: a Kafka log directory does not carry them (Kafka keeps
//! them in its own `__consumer_offsets`, whose records are not topiclog's), so a move to Kafka
//! sets them there with that tool.

use std::path::Path;

use super::{Broker, OffsetAndMetadata, TopicPartition};
use crate::error::{IoContext, Result};
use crate::fs::write_atomic;
use crate::store::{Store, OFFSETS_TOPIC};

/// The CSV of one group's offsets: one `topic,partition,offset` line per partition, `\n`
/// after each, no header line. That is `ConsumerGroupCommand`'s single-group format
/// (`CsvUtils.CsvRecordNoGroup`, fields `topic`, `partition`, `offset`, Jackson's CSV writer
/// and `parseResetPlan`, which splits the file on `\n`); topic names never need quoting (they
/// are `[A-Za-z0-9._-]`).
pub(crate) fn encode_offsets_csv<'a>(
    offsets: impl IntoIterator<Item = (&'a TopicPartition, &'a OffsetAndMetadata)>,
) -> String {
    offsets
        .into_iter()
        .map(|(tp, o)| format!("{},{},{}\n", tp.topic, tp.partition, o.offset))
        .collect()
}

impl Store {
    /// Write the committed offsets of consumer group `group` to `dest_file` (replaced
    /// atomically) as the CSV that Kafka's
    /// `kafka-consumer-groups.sh --group <group> --reset-offsets --from-file <dest_file> --execute`
    /// reads: one `topic,partition,offset` line per partition the group committed, no header.
    /// Each offset is the next record to consume, as in Kafka. Returns the number of lines.
    ///
    /// A Kafka log directory does not carry committed offsets; after the topics' partitions
    /// are adopted by a Kafka cluster (see [`export_kafka`](Self::export_kafka) and
    /// `docs/KAFKA.md`), that command sets them there. Run it once the data is in place (Kafka
    /// clamps each offset to the partition's log start and end offsets) and while the group
    /// has no active members (Kafka refuses to reset an active group). Commit metadata is not
    /// carried (the CSV has no column for it). A group with no commits gives an empty file
    /// (and 0), which the command cannot use: there is nothing to reset.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{OffsetAndMetadata, Record, Store, TopicConfig, TopicPartition};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("store"))?;
    /// let orders = store.create_topic("orders", TopicConfig::with_partitions(2))?;
    /// orders.send_to(1, Record::new("created").with_key("order-1"))?;
    /// let mut consumer = store.consumer(topiclog::ConsumerConfig::group("billing"))?;
    /// consumer.assign(&[TopicPartition::new("orders", 1)])?;
    /// consumer.commit(&[(TopicPartition::new("orders", 1), OffsetAndMetadata::new(1))])?;
    ///
    /// let csv = dir.path().join("billing.csv");
    /// assert_eq!(store.export_group_offsets(&csv, "billing")?, 1);
    /// assert_eq!(std::fs::read_to_string(&csv)?, "orders,1,1\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed); errors loading the offsets topic; an
    /// [`Error::Io`](crate::Error::Io) writing the file.
    pub fn export_group_offsets(&self, dest_file: impl AsRef<Path>, group: &str) -> Result<usize> {
        self.check_open()?;
        let offsets = if self.internal_topic(OFFSETS_TOPIC).is_some() {
            Broker::of(self).offset_store(self)?.group_offsets(group)
        } else {
            Default::default()
        };
        let dest = dest_file.as_ref();
        let text = encode_offsets_csv(&offsets);
        write_atomic(&*self.env().fs, dest, text.as_bytes()).at(dest)?;
        Ok(offsets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_kafkas_single_group_reset_plan() {
        let a = TopicPartition::new("orders", 0);
        let b = TopicPartition::new("my.topic-x", 12);
        let (oa, ob) = (OffsetAndMetadata::new(42), OffsetAndMetadata::new(0));
        assert_eq!(
            encode_offsets_csv([(&a, &oa), (&b, &ob)]),
            "orders,0,42\nmy.topic-x,12,0\n"
        );
        assert_eq!(encode_offsets_csv([]), "");
    }
}
