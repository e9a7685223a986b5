//! [`TopicReader`]: a topic's partitions polled like a consumer's, read-only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consumer::{ConsumerRecord, ConsumerRecords};
use crate::error::{Error, Result};

use super::{ReadOnlyPartition, ReadOnlyStore};

/// Reads the partitions of one topic of a [`ReadOnlyStore`] the way a consumer with manually
/// assigned partitions does: [`poll`](Self::poll) returns what is there (or waits for it),
/// [`seek`](Self::seek) moves a partition's position. Positions live in this value only: a
/// reader commits nothing (consumer groups are the writer's).
///
/// A position below a partition's log start (the writer's retention or `delete_records` took
/// the records) moves up to the start, as a Kafka consumer with `auto.offset.reset=earliest`
/// does; [`skipped`](Self::skipped) counts the offsets passed over that way.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{ReadOnlyStore, Record, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let orders = store.create_topic("orders", TopicConfig::with_partitions(2))?;
/// orders.send_to(0, Record::new("a"))?;
/// orders.send_to(1, Record::new("b"))?;
///
/// let mut reader = ReadOnlyStore::open(dir.path())?.reader("orders")?;
/// let records = reader.poll(Duration::from_millis(100))?;
/// assert_eq!(records.len(), 2);
/// assert!(reader.poll(Duration::from_millis(10))?.is_empty(), "caught up");
/// orders.send_to(1, Record::new("c"))?;
/// let next = reader.poll(Duration::from_secs(5))?;
/// assert_eq!(next.iter().next().unwrap().value().unwrap(), "c");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TopicReader {
    topic: Arc<str>,
    /// Each assigned partition, its reader and the next offset to return.
    partitions: Vec<(u32, ReadOnlyPartition, u64)>,
    /// Where the next poll starts, so that one busy partition does not starve the others.
    turn: usize,
    max_bytes: usize,
    skipped: u64,
}

impl ReadOnlyStore {
    /// A [`TopicReader`] of every partition of `topic`, each at its log start.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; as [`ReadOnlyPartition::start_offset`].
    pub fn reader(&self, topic: &str) -> Result<TopicReader> {
        let partitions = self.topic_config(topic)?.partitions;
        self.reader_of(topic, &(0..partitions).collect::<Vec<_>>())
    }

    /// A [`TopicReader`] of the given partitions of `topic`, each at its log start.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidPartition`]; as
    /// [`ReadOnlyPartition::start_offset`].
    pub fn reader_of(&self, topic: &str, partitions: &[u32]) -> Result<TopicReader> {
        let mut assigned = Vec::new();
        for &p in partitions {
            let reader = self.partition(topic, p)?;
            let start = reader.start_offset()?;
            assigned.push((p, reader, start));
        }
        Ok(TopicReader {
            topic: topic.into(),
            partitions: assigned,
            turn: 0,
            max_bytes: 1 << 20,
            skipped: 0,
        })
    }
}

impl TopicReader {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The assigned partitions, in order.
    pub fn partitions(&self) -> Vec<u32> {
        self.partitions.iter().map(|(p, _, _)| *p).collect()
    }

    /// The next offset `partition` returns, if it is assigned.
    pub fn position(&self, partition: u32) -> Option<u64> {
        self.find(partition).map(|i| self.partitions[i].2)
    }

    /// Offsets passed over because the log start had moved past them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// At most this many bytes of batches are read from a partition per poll (at least one
    /// batch). Default 1 MiB.
    pub fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes.max(1);
    }

    /// Read `partition` from `offset` next.
    ///
    /// # Errors
    /// [`Error::InvalidPartition`] if it is not assigned.
    pub fn seek(&mut self, partition: u32, offset: u64) -> Result<()> {
        let i = self.assigned(partition)?;
        self.partitions[i].2 = offset;
        Ok(())
    }

    /// Every partition to its log start.
    ///
    /// # Errors
    /// As [`ReadOnlyPartition::start_offset`].
    pub fn seek_to_beginning(&mut self) -> Result<()> {
        for (_, reader, next) in &mut self.partitions {
            *next = reader.start_offset()?;
        }
        Ok(())
    }

    /// Every partition to its end: only records appended from now on are returned.
    ///
    /// # Errors
    /// As [`ReadOnlyPartition::end_offset`].
    pub fn seek_to_end(&mut self) -> Result<()> {
        for (_, reader, next) in &mut self.partitions {
            *next = reader.end_offset()?;
        }
        Ok(())
    }

    /// Every partition to its first record at or after `timestamp` (its end if there is none).
    ///
    /// # Errors
    /// As [`ReadOnlyPartition::offset_for_time`].
    pub fn seek_to_time(&mut self, timestamp: i64) -> Result<()> {
        for (_, reader, next) in &mut self.partitions {
            *next = match reader.offset_for_time(timestamp)? {
                Some(o) => o,
                None => reader.end_offset()?,
            };
        }
        Ok(())
    }

    /// The records after each partition's position, from every partition that has some (one
    /// read of up to the max bytes each), advancing the positions; if none has any, wait up to
    /// `timeout` for one that does (woken by the writer, see
    /// [`ReadOnlyPartition::wait_for`]) and return what it has.
    ///
    /// # Errors
    /// As [`ReadOnlyPartition::read`] (a damaged batch is [`Error::Corrupt`]).
    pub fn poll(&mut self, timeout: Duration) -> Result<ConsumerRecords> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let records = self.fetch()?;
            if !records.is_empty() {
                return Ok(ConsumerRecords::from_records(records));
            }
            let left = deadline.map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() || self.partitions.is_empty() {
                return Ok(ConsumerRecords::default());
            }
            // The writer wakes the first partition's waiters; the others are looked at again
            // after the reader's nap (a few milliseconds).
            let (_, reader, next) = &self.partitions[self.turn % self.partitions.len()];
            reader.wait_for(*next, left.min(Duration::from_millis(5)))?;
        }
    }

    /// One read of every partition, starting at this poll's turn.
    fn fetch(&mut self) -> Result<Vec<ConsumerRecord>> {
        let mut out = Vec::new();
        let n = self.partitions.len();
        for k in 0..n {
            let i = (self.turn + k) % n;
            let (partition, reader, next) = &mut self.partitions[i];
            let batches = loop {
                match reader.read(*next, self.max_bytes) {
                    Ok(b) => break b,
                    // Deleted under the reader: on from the new start.
                    Err(Error::OffsetOutOfRange { start, .. }) if *next < start => {
                        self.skipped += start - *next;
                        *next = start;
                    }
                    Err(e) => return Err(e),
                }
            };
            for r in batches.records() {
                *next = r.offset() + 1;
                out.push(ConsumerRecord::new(self.topic.clone(), *partition, r));
            }
            *next = (*next).max(batches.next_offset());
        }
        self.turn = (self.turn + 1) % n.max(1);
        Ok(out)
    }

    fn find(&self, partition: u32) -> Option<usize> {
        self.partitions.iter().position(|(p, _, _)| *p == partition)
    }

    fn assigned(&self, partition: u32) -> Result<usize> {
        self.find(partition).ok_or_else(|| Error::InvalidPartition {
            topic: self.topic.to_string(),
            partition,
            partitions: self.partitions.len() as u32,
        })
    }
}
