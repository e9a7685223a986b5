//! Fetching: resolving a partition's position (committed offset or reset policy) and reading
//! records from the owned partitions into a poll's result.

use super::*;

impl Consumer {
    /// Resolve the position of `tp`: as set, else the committed offset, else the reset policy.
    pub(super) fn resolve(&mut self, tp: &TopicPartition) -> Result<u64> {
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
    pub(super) fn fetch(&mut self) -> Result<ConsumerRecords> {
        let mut out = ConsumerRecords::default();
        match self.fetch_into(&mut out) {
            Err(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    pub(super) fn fetch_into(&mut self, out: &mut ConsumerRecords) -> Result<()> {
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
