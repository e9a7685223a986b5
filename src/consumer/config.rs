//! How a consumer is configured: where it starts without a position, what it may read, its
//! group and timing.

use super::*;

/// Where a consumer starts when it has no valid position. Kafka: `auto.offset.reset`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records appended from now on. Kafka's default.
    #[default]
    Latest,
    /// Fail with [`Error::NoOffset`] (no commit) or [`Error::OffsetOutOfRange`] (the position is
    /// no longer in the log).
    None,
}

/// Which records a consumer sees. Kafka: `isolation.level`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Every record readers can see (Kafka's `read_uncommitted`).
    #[default]
    ReadUncommitted,
    /// Only records that are durable (fsynced): none that a power loss could take back. (topiclog
    /// has no transactions; this is its meaning of "committed".)
    ReadCommitted,
}

/// Settings of a [`Consumer`]. Every field documents its default and Kafka name.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// The group, for [`Consumer::subscribe`] and for commits. Kafka: `group.id`.
    pub group_id: Option<String>,
    /// A name for this consumer in group descriptions. Default `"consumer"`. Kafka: `client.id`.
    pub client_id: String,
    /// Default [`AutoOffsetReset::Latest`]. Kafka: `auto.offset.reset`.
    pub auto_offset_reset: AutoOffsetReset,
    /// Commit the positions of what `poll` returned every `auto_commit_interval`, before a
    /// rebalance revokes partitions, and on close. Default `true`. Kafka: `enable.auto.commit`.
    ///
    /// Never while the thread is panicking: a consumer dropped during unwinding leaves its group
    /// without committing, so the records after the last commit are delivered again (the panic
    /// may have struck at any record of the last poll).
    pub enable_auto_commit: bool,
    /// Default 5 s (by the store's clock). Kafka: `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// Most records one `poll` returns. Default 500. Kafka: `max.poll.records`.
    pub max_poll_records: usize,
    /// About the most bytes one `poll` returns (at least one batch). Default 50 MiB. Kafka:
    /// `fetch.max.bytes`.
    pub max_poll_bytes: usize,
    /// A member that does not poll for this long (by the store's clock) is removed from its
    /// group and its partitions reassigned. Time spent waiting inside `poll` counts as polling.
    /// Default 5 minutes. Kafka: `max.poll.interval.ms`.
    pub max_poll_interval: Duration,
    /// Default [`Isolation::ReadUncommitted`]. Kafka: `isolation.level`.
    pub isolation: Isolation,
    /// Default [`AssignmentStrategy::CooperativeSticky`]. Kafka:
    /// `partition.assignment.strategy`.
    pub assignment_strategy: AssignmentStrategy,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            client_id: "consumer".into(),
            auto_offset_reset: AutoOffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            max_poll_records: 500,
            max_poll_bytes: 50 << 20,
            max_poll_interval: Duration::from_secs(300),
            isolation: Isolation::ReadUncommitted,
            assignment_strategy: AssignmentStrategy::CooperativeSticky,
        }
    }
}

impl ConsumerConfig {
    /// A config for `group_id` with every other setting at its default.
    pub fn group(group_id: impl Into<String>) -> Self {
        ConsumerConfig {
            group_id: Some(group_id.into()),
            ..ConsumerConfig::default()
        }
    }

    /// Check ranges.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(g) = &self.group_id {
            if g.is_empty() || g.len() > 255 {
                return Err(Error::config("group_id", "must be 1 to 255 bytes"));
            }
        }
        if self.max_poll_records == 0 {
            return Err(Error::config("max_poll_records", "must be at least 1"));
        }
        if self.max_poll_bytes == 0 {
            return Err(Error::config("max_poll_bytes", "must be at least 1"));
        }
        if self.auto_commit_interval.is_zero() {
            return Err(Error::config("auto_commit_interval", "must be positive"));
        }
        if self.max_poll_interval.is_zero() {
            return Err(Error::config("max_poll_interval", "must be positive"));
        }
        Ok(())
    }
}
