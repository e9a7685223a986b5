//! Administering a group's committed offsets from outside the group, as Kafka's `AdminClient`
//! does (`alterConsumerGroupOffsets`, behind `kafka-consumer-groups --reset-offsets --execute`).

use super::{Broker, OffsetAndMetadata, TopicPartition};
use crate::error::{Error, Result};
use crate::store::Store;

impl Store {
    /// Commit `offsets` for `group` without joining it (Kafka's
    /// `AdminClient.alterConsumerGroupOffsets`): each the next offset the group consumes in its
    /// partition, durably, all in one batch. A commit timestamp of 0 is replaced by the store's
    /// clock. As in Kafka, refused while the group has active members (they own their
    /// partitions' commits); any offset is accepted, since a consumer resolves one outside the
    /// log by its `auto_offset_reset` (clamp to `start_offset ..= end_offset` first to avoid
    /// that).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{OffsetAndMetadata, Record, Store, TopicConfig, TopicPartition};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let t = store.create_topic("events", TopicConfig::with_partitions(1))?;
    /// t.send(Record::new("a"))?;
    /// let tp = TopicPartition::new("events", 0);
    /// store.alter_group_offsets("billing", &[(tp.clone(), OffsetAndMetadata::new(1))])?;
    /// assert_eq!(store.group_lag("billing")?[0].committed.as_ref().map(|c| c.offset), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty group id or one over 255 bytes, or oversized
    /// metadata; [`Error::UnknownTopic`] / [`Error::InvalidPartition`] for a partition the store
    /// does not have (nothing is committed then); [`Error::CommitFailed`] while the group has
    /// members; [`Error::Closed`]; I/O errors.
    pub fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        self.check_open()?;
        if group.is_empty() || group.len() > 255 {
            return Err(Error::config("group_id", "must be 1 to 255 bytes"));
        }
        for (tp, _) in offsets {
            self.topic(&tp.topic)?.partition(tp.partition)?;
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let stamped = super::stamp_commits(offsets, self.now_ms());
        let partitions: Vec<TopicPartition> = stamped.iter().map(|(tp, _)| tp.clone()).collect();
        let broker = Broker::of(self);
        let offset_store = broker.offset_store(self)?;
        let g = broker.coordinator.group(group);
        broker
            .coordinator
            .commit_checked(&g, None, &partitions, || {
                offset_store.commit(group, &stamped)
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{ConsumerConfig, Error, Record, Store, StoreOptions, TopicConfig, TopicPartition};

    use super::OffsetAndMetadata;

    fn store(dir: &std::path::Path) -> Store {
        let options = StoreOptions {
            background_maintenance: false,
            background_cleaner: false,
            ..StoreOptions::default()
        };
        Store::open_with(dir, options).unwrap()
    }

    #[test]
    fn altered_offsets_are_committed_durably_and_read_by_consumers() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let t = s
            .create_topic("events", TopicConfig::with_partitions(2))
            .unwrap();
        for i in 0..5 {
            t.send_to(0, Record::new(format!("r{i}"))).unwrap();
        }
        let tp0 = TopicPartition::new("events", 0);
        let tp1 = TopicPartition::new("events", 1);
        s.alter_group_offsets(
            "g",
            &[
                (tp0.clone(), OffsetAndMetadata::new(3)),
                (tp1.clone(), OffsetAndMetadata::new(0)),
            ],
        )
        .unwrap();
        s.close().unwrap();

        let s = store(dir.path());
        let lag = s.group_lag("g").unwrap();
        assert_eq!(lag.len(), 2);
        assert_eq!(lag[0].committed.as_ref().unwrap().offset, 3);
        assert!(lag[0].committed.as_ref().unwrap().commit_timestamp > 0);
        assert_eq!(lag[0].lag, Some(2));
        assert_eq!(s.groups().unwrap(), ["g"]);
        let mut c = s.consumer(ConsumerConfig::group("g")).unwrap();
        c.assign(std::slice::from_ref(&tp0)).unwrap();
        let polled = c.poll(Duration::from_millis(100)).unwrap();
        assert_eq!(polled.iter().next().unwrap().offset(), 3);
    }

    #[test]
    fn unknown_partitions_and_active_groups_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.create_topic("events", TopicConfig::with_partitions(1))
            .unwrap();
        let commit = |topic: &str, p: u32| {
            s.alter_group_offsets(
                "g",
                &[(TopicPartition::new(topic, p), OffsetAndMetadata::new(0))],
            )
        };
        assert!(matches!(commit("nope", 0), Err(Error::UnknownTopic { .. })));
        assert!(matches!(
            commit("events", 1),
            Err(Error::InvalidPartition { .. })
        ));
        assert!(matches!(
            s.alter_group_offsets("", &[]),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(s.group_lag("g").unwrap().is_empty());

        let mut member = s.consumer(ConsumerConfig::group("g")).unwrap();
        member.subscribe(&["events"]).unwrap();
        member.poll(Duration::from_millis(50)).unwrap();
        assert!(matches!(
            commit("events", 0),
            Err(Error::CommitFailed { .. })
        ));
        member.close().unwrap();
        commit("events", 0).unwrap();
    }
}
