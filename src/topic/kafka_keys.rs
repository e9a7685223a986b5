//! Setting a topic's overrides by their Kafka key names and text values (`retention.ms=3600000`),
//! as `topic.conf` spells them and `kafka-configs --alter --add-config` takes them: for tools
//! that read settings from a command line or a file.
//!
//! A value is parsed by the very code that reads `topic.conf`, so the two cannot disagree on
//! what a key means; ranges and contradictions are checked later, when the overrides are
//! resolved ([`Store::create_topic`](crate::Store::create_topic),
//! [`Store::alter_topic_config`](crate::Store::alter_topic_config)).

use std::path::Path;

use super::config::TopicConfig;
use crate::config::LogOverrides;
use crate::error::{Error, Result};

impl LogOverrides {
    /// Every key [`set_kafka`](Self::set_kafka) and [`unset_kafka`](Self::unset_kafka) take:
    /// Kafka's topic-level config names, as `topic.conf` writes them (`durability` is
    /// topiclog's own: `always`, `none`, `interval:<ms>` or `messages:<n>`).
    pub const KAFKA_KEYS: [&'static str; 16] = [
        "segment.bytes",
        "segment.ms",
        "index.interval.bytes",
        "segment.index.bytes",
        "max.message.bytes",
        "durability",
        "preallocate",
        "retention.ms",
        "retention.bytes",
        "cleanup.policy",
        "message.timestamp.type",
        "delete.retention.ms",
        "min.compaction.lag.ms",
        "max.compaction.lag.ms",
        "min.cleanable.dirty.ratio",
        "compression.type",
    ];

    /// Set the override named by Kafka's `key` from its text `value`, as `topic.conf` writes it
    /// (milliseconds for `*.ms`, `-1` for "never" or "unlimited", `compact,delete`, ...).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use topiclog::{CleanupPolicy, LogOverrides, Retention};
    /// let mut o = LogOverrides::default();
    /// o.set_kafka("retention.ms", "3600000")?;
    /// o.set_kafka("cleanup.policy", "compact,delete")?;
    /// assert_eq!(o.retention, Some(Retention::After(Duration::from_secs(3600))));
    /// assert_eq!(o.cleanup_policy, Some(CleanupPolicy::CompactDelete));
    /// assert!(o.set_kafka("retention.hours", "1").is_err());
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a key not in [`KAFKA_KEYS`](Self::KAFKA_KEYS) or a value
    /// that does not parse (the field is the key). Ranges are checked when the overrides are
    /// applied.
    pub fn set_kafka(&mut self, key: &str, value: &str) -> Result<()> {
        let field = kafka_key(key)?;
        if value.contains(['\n', '\r']) {
            return Err(Error::config(field, "a value is one line"));
        }
        // Exactly the reading of `topic.conf` (format 1: only the keys listed are set).
        let text = format!("format=1\npartitions=1\n{field}={value}\n");
        let (parsed, _) =
            TopicConfig::decode(text.as_bytes(), Path::new(field)).map_err(|e| match e {
                Error::InvalidConfigFile { reason, .. } => Error::config(field, reason),
                other => other,
            })?;
        let p = parsed.overrides;
        let o = self;
        match field {
            "segment.bytes" => o.segment_bytes = p.segment_bytes,
            "segment.ms" => o.segment_ms = p.segment_ms,
            "index.interval.bytes" => o.index_interval_bytes = p.index_interval_bytes,
            "segment.index.bytes" => o.max_index_bytes = p.max_index_bytes,
            "max.message.bytes" => o.max_batch_bytes = p.max_batch_bytes,
            "durability" => o.durability = p.durability,
            "preallocate" => o.preallocate = p.preallocate,
            "retention.ms" => o.retention = p.retention,
            "retention.bytes" => o.retention_bytes = p.retention_bytes,
            "cleanup.policy" => o.cleanup_policy = p.cleanup_policy,
            "message.timestamp.type" => o.timestamp_type = p.timestamp_type,
            "delete.retention.ms" => o.delete_retention = p.delete_retention,
            "min.compaction.lag.ms" => o.min_compaction_lag = p.min_compaction_lag,
            "max.compaction.lag.ms" => o.max_compaction_lag = p.max_compaction_lag,
            "min.cleanable.dirty.ratio" => {
                o.min_cleanable_dirty_ratio = p.min_cleanable_dirty_ratio
            }
            "compression.type" => o.compression = p.compression,
            _ => unreachable!("kafka_key admits only KAFKA_KEYS"),
        }
        Ok(())
    }

    /// The overrides that are set, by Kafka key (in [`KAFKA_KEYS`](Self::KAFKA_KEYS) order), each
    /// with its value as `topic.conf` writes it and [`set_kafka`](Self::set_kafka) reads it. A
    /// topic created since topic configs are pinned sets every key.
    ///
    /// # Examples
    /// ```
    /// use topiclog::LogOverrides;
    /// let mut o = LogOverrides::default();
    /// o.set_kafka("retention.ms", "-1")?;
    /// o.set_kafka("segment.bytes", "1048576")?;
    /// assert_eq!(
    ///     o.kafka_settings(),
    ///     vec![("segment.bytes", "1048576".to_string()), ("retention.ms", "-1".to_string())]
    /// );
    /// # Ok::<(), topiclog::Error>(())
    /// ```
    pub fn kafka_settings(&self) -> Vec<(&'static str, String)> {
        let text =
            super::config::encode(0, &crate::config::LogConfig::default().with_overrides(self));
        let values: std::collections::HashMap<&str, &str> =
            text.lines().filter_map(|l| l.split_once('=')).collect();
        Self::KAFKA_KEYS
            .iter()
            .filter(|k| {
                let mut without = self.clone();
                without.unset_kafka(k).is_ok() && without != *self
            })
            .filter_map(|k| values.get(k).map(|v| (*k, (*v).to_owned())))
            .collect()
    }

    /// Clear the override named by Kafka's `key` (`kafka-configs --alter --delete-config`): the
    /// setting then takes the store's default where the overrides are applied.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a key not in [`KAFKA_KEYS`](Self::KAFKA_KEYS).
    pub fn unset_kafka(&mut self, key: &str) -> Result<()> {
        let o = self;
        match kafka_key(key)? {
            "segment.bytes" => o.segment_bytes = None,
            "segment.ms" => o.segment_ms = None,
            "index.interval.bytes" => o.index_interval_bytes = None,
            "segment.index.bytes" => o.max_index_bytes = None,
            "max.message.bytes" => o.max_batch_bytes = None,
            "durability" => o.durability = None,
            "preallocate" => o.preallocate = None,
            "retention.ms" => o.retention = None,
            "retention.bytes" => o.retention_bytes = None,
            "cleanup.policy" => o.cleanup_policy = None,
            "message.timestamp.type" => o.timestamp_type = None,
            "delete.retention.ms" => o.delete_retention = None,
            "min.compaction.lag.ms" => o.min_compaction_lag = None,
            "max.compaction.lag.ms" => o.max_compaction_lag = None,
            "min.cleanable.dirty.ratio" => o.min_cleanable_dirty_ratio = None,
            "compression.type" => o.compression = None,
            _ => unreachable!("kafka_key admits only KAFKA_KEYS"),
        }
        Ok(())
    }
}

/// `key` as the `'static` name in [`LogOverrides::KAFKA_KEYS`], or the error naming the keys.
fn kafka_key(key: &str) -> Result<&'static str> {
    LogOverrides::KAFKA_KEYS
        .iter()
        .find(|k| **k == key)
        .copied()
        .ok_or_else(|| {
            Error::config(
                "key",
                format!(
                    "unknown topic config key {key:?}; the keys are {}",
                    LogOverrides::KAFKA_KEYS.join(", ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{CleanupPolicy, Deadline, Durability, Limit, Retention};

    #[test]
    fn every_key_sets_and_unsets_its_field() {
        let values = [
            ("segment.bytes", "1048576"),
            ("segment.ms", "-1"),
            ("index.interval.bytes", "100"),
            ("segment.index.bytes", "4096"),
            ("max.message.bytes", "5000"),
            ("durability", "interval:250"),
            ("preallocate", "false"),
            ("retention.ms", "60000"),
            ("retention.bytes", "-1"),
            ("cleanup.policy", "compact"),
            ("message.timestamp.type", "LogAppendTime"),
            ("delete.retention.ms", "3600000"),
            ("min.compaction.lag.ms", "1500"),
            ("max.compaction.lag.ms", "7200000"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("compression.type", "lz4"),
        ];
        assert_eq!(values.len(), LogOverrides::KAFKA_KEYS.len());
        let mut o = LogOverrides::default();
        for (k, v) in values {
            let before = o.clone();
            o.set_kafka(k, v).unwrap();
            assert_ne!(o, before, "{k} sets a field");
        }
        assert_eq!(o.segment_bytes, Some(1 << 20));
        assert_eq!(o.segment_ms, Some(Deadline::Never));
        assert_eq!(
            o.durability,
            Some(Durability::Interval(Duration::from_millis(250)))
        );
        assert_eq!(o.retention, Some(Retention::After(Duration::from_secs(60))));
        assert_eq!(o.retention_bytes, Some(Limit::Unlimited));
        assert_eq!(o.cleanup_policy, Some(CleanupPolicy::Compact));
        assert_eq!(o.min_cleanable_dirty_ratio, Some(0.25));
        for k in LogOverrides::KAFKA_KEYS {
            o.unset_kafka(k).unwrap();
        }
        assert_eq!(o, LogOverrides::default());
    }

    #[test]
    fn bad_keys_and_values_are_invalid_config() {
        let mut o = LogOverrides::default();
        for (k, v, field) in [
            ("retention.hours", "1", "key"),
            ("partitions", "3", "key"),
            ("format", "1", "key"),
            ("crc32", "00000000", "key"),
            ("retention.ms", "soon", "retention.ms"),
            ("cleanup.policy", "sometimes", "cleanup.policy"),
            ("preallocate", "yes", "preallocate"),
            ("segment.bytes", "1\nretention.ms=1", "segment.bytes"),
        ] {
            match o.set_kafka(k, v) {
                Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field, "{k}={v}"),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        assert_eq!(o, LogOverrides::default());
        assert!(matches!(
            o.unset_kafka("retention.hours"),
            Err(Error::InvalidConfig { field: "key", .. })
        ));
    }
}
