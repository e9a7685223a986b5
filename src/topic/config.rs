//! Topic configuration: per-topic overrides of the store's defaults, persisted in `topic.conf`.
//!
//! `topic.conf` is a small text file in Java-properties style (`key=value` lines, `#` comments) with
//! Kafka's key names, so it is easy to inspect. It is replaced atomically and validated when read:
//! an unknown key, a malformed value or a contradiction is an [`Error::InvalidConfigFile`] naming the
//! file and line.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::partition::{Durability, TimestampType};

/// Name of the configuration file in a topic directory.
pub(crate) const FILE_NAME: &str = "topic.conf";
const FORMAT: u32 = 1;

/// What happens to old records. Kafka: `cleanup.policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Delete whole segments past the retention time or size.
    #[default]
    Delete,
    /// Keep the latest record per key (log compaction).
    Compact,
    /// Both: compact, and delete segments past retention.
    CompactDelete,
}

impl CleanupPolicy {
    fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "delete" => Some(CleanupPolicy::Delete),
            "compact" => Some(CleanupPolicy::Compact),
            "compact,delete" | "delete,compact" => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }
}

/// A topic's settings. `partitions` is required; every other field is an optional override of the
/// store's default ([`StoreOptions`](crate::StoreOptions)): `None` means "use the store default",
/// so changing a store default later applies to every topic that did not override it.
///
/// `Duration::MAX` means "never"/"forever" for `segment_ms` and `retention`; `u64::MAX` means
/// "unlimited" for `retention_bytes` (Kafka's `-1`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{CleanupPolicy, TopicConfig};
/// let config = TopicConfig {
///     partitions: 6,
///     retention: Some(Duration::from_secs(24 * 3600)),
///     cleanup_policy: Some(CleanupPolicy::Delete),
///     ..TopicConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TopicConfig {
    /// Number of partitions. Default 1. Kafka: `num.partitions`. Grow with
    /// [`Store::add_partitions`](crate::Store::add_partitions).
    pub partitions: u32,
    /// Kafka: `segment.bytes`.
    pub segment_bytes: Option<u64>,
    /// Kafka: `segment.ms`.
    pub segment_ms: Option<Duration>,
    /// Kafka: `index.interval.bytes`.
    pub index_interval_bytes: Option<u32>,
    /// Kafka: `segment.index.bytes`.
    pub max_index_bytes: Option<u32>,
    /// Largest encoded batch (and so record) accepted. Kafka: `max.message.bytes`.
    pub max_batch_bytes: Option<u32>,
    /// Kafka: `flush.messages` / `flush.ms`.
    pub durability: Option<Durability>,
    /// Kafka: `preallocate`.
    pub preallocate: Option<bool>,
    /// Delete segments whose records are all older than this. Kafka: `retention.ms`.
    pub retention: Option<Duration>,
    /// Delete the oldest segments while a partition is larger than this. Kafka: `retention.bytes`.
    pub retention_bytes: Option<u64>,
    /// Kafka: `cleanup.policy`.
    pub cleanup_policy: Option<CleanupPolicy>,
    /// Kafka: `message.timestamp.type`.
    pub timestamp_type: Option<TimestampType>,
    /// How long a tombstone stays after compaction first saw it. Kafka: `delete.retention.ms`.
    pub delete_retention: Option<Duration>,
    /// Records stay uncompacted at least this long. Kafka: `min.compaction.lag.ms`.
    pub min_compaction_lag: Option<Duration>,
    /// Compact dirty data once it is this old, whatever the dirty ratio (and roll the active
    /// segment by then, so it can be). Kafka: `max.compaction.lag.ms`.
    pub max_compaction_lag: Option<Duration>,
    /// Compact once more than this share of the cleanable log is dirty (0.0 ..= 1.0). Kafka:
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: Option<f64>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            segment_bytes: None,
            segment_ms: None,
            index_interval_bytes: None,
            max_index_bytes: None,
            max_batch_bytes: None,
            durability: None,
            preallocate: None,
            retention: None,
            retention_bytes: None,
            cleanup_policy: None,
            timestamp_type: None,
            delete_retention: None,
            min_compaction_lag: None,
            max_compaction_lag: None,
            min_cleanable_dirty_ratio: None,
        }
    }
}

/// Largest partition count accepted (a guard against typos that would create millions of
/// directories).
pub const MAX_PARTITIONS: u32 = 100_000;

impl TopicConfig {
    /// A config with `partitions` partitions and every other setting from the store defaults.
    pub fn with_partitions(partitions: u32) -> Self {
        TopicConfig {
            partitions,
            ..TopicConfig::default()
        }
    }

    /// Check the values that can be checked without the store defaults (the merged partition
    /// configuration is validated again when the topic is opened).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(Error::config(
                "partitions",
                format!("{} is outside 1 ..= {MAX_PARTITIONS}", self.partitions),
            ));
        }
        if self.retention.is_some_and(|d| d.is_zero()) {
            return Err(Error::config(
                "retention",
                "must be positive (Duration::MAX = forever)",
            ));
        }
        if self.segment_ms.is_some_and(|d| d.is_zero()) {
            return Err(Error::config(
                "segment_ms",
                "must be positive (Duration::MAX = never)",
            ));
        }
        if self.max_compaction_lag.is_some_and(|d| d.is_zero()) {
            return Err(Error::config(
                "max_compaction_lag",
                "must be positive (Duration::MAX = never)",
            ));
        }
        if let Some(r) = self.min_cleanable_dirty_ratio {
            if !(0.0..=1.0).contains(&r) {
                return Err(Error::config(
                    "min_cleanable_dirty_ratio",
                    format!("{r} is outside 0.0 ..= 1.0"),
                ));
            }
        }
        Ok(())
    }

    /// The `topic.conf` text.
    pub(crate) fn encode(&self) -> String {
        let mut out =
            String::from("# topiclog topic configuration. Edit only while the store is closed.\n");
        let mut put = |k: &str, v: String| {
            out.push_str(k);
            out.push('=');
            out.push_str(&v);
            out.push('\n');
        };
        put("format", FORMAT.to_string());
        put("partitions", self.partitions.to_string());
        if let Some(v) = self.segment_bytes {
            put("segment.bytes", v.to_string());
        }
        if let Some(v) = self.segment_ms {
            put("segment.ms", duration_text(v));
        }
        if let Some(v) = self.index_interval_bytes {
            put("index.interval.bytes", v.to_string());
        }
        if let Some(v) = self.max_index_bytes {
            put("segment.index.bytes", v.to_string());
        }
        if let Some(v) = self.max_batch_bytes {
            put("max.message.bytes", v.to_string());
        }
        if let Some(v) = self.durability {
            put("durability", durability_text(v));
        }
        if let Some(v) = self.preallocate {
            put("preallocate", v.to_string());
        }
        if let Some(v) = self.retention {
            put("retention.ms", duration_text(v));
        }
        if let Some(v) = self.retention_bytes {
            put(
                "retention.bytes",
                if v == u64::MAX {
                    "-1".into()
                } else {
                    v.to_string()
                },
            );
        }
        if let Some(v) = self.cleanup_policy {
            put("cleanup.policy", v.as_str().to_string());
        }
        if let Some(v) = self.timestamp_type {
            let t = match v {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            };
            put("message.timestamp.type", t.to_string());
        }
        if let Some(v) = self.delete_retention {
            put("delete.retention.ms", duration_text(v));
        }
        if let Some(v) = self.min_compaction_lag {
            put("min.compaction.lag.ms", duration_text(v));
        }
        if let Some(v) = self.max_compaction_lag {
            put("max.compaction.lag.ms", duration_text(v));
        }
        if let Some(v) = self.min_cleanable_dirty_ratio {
            put("min.cleanable.dirty.ratio", v.to_string());
        }
        out
    }

    /// Parse `topic.conf`, naming `path` and the line in every error.
    pub(crate) fn decode(text: &[u8], path: &Path) -> Result<TopicConfig> {
        let bad = |line: usize, reason: String| Error::InvalidConfigFile {
            path: path.to_owned(),
            line,
            reason,
        };
        let text = std::str::from_utf8(text).map_err(|_| bad(0, "not UTF-8 text".into()))?;
        let mut config = TopicConfig::default();
        let mut seen_format = false;
        let mut seen_partitions = false;
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad(line_no, format!("expected key=value, found {line:?}")))?;
            let (key, value) = (key.trim(), value.trim());
            if !seen.insert(key.to_string()) {
                return Err(bad(line_no, format!("{key} is set twice")));
            }
            let num = |v: &str| -> Result<u64> {
                v.parse::<u64>().map_err(|_| {
                    bad(
                        line_no,
                        format!("{key}: {v:?} is not a non-negative integer"),
                    )
                })
            };
            let num32 = |v: &str| -> Result<u32> {
                v.parse::<u32>().map_err(|_| {
                    bad(
                        line_no,
                        format!("{key}: {v:?} is not a 32-bit non-negative integer"),
                    )
                })
            };
            let dur = |v: &str| -> Result<Duration> {
                if v == "-1" {
                    return Ok(Duration::MAX);
                }
                v.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| bad(line_no, format!("{key}: {v:?} is not milliseconds (or -1)")))
            };
            match key {
                "format" => {
                    if num(value)? != u64::from(FORMAT) {
                        return Err(bad(line_no, format!("unsupported format {value}; this build reads {FORMAT}")));
                    }
                    seen_format = true;
                }
                "partitions" => {
                    config.partitions = num32(value)?;
                    seen_partitions = true;
                }
                "segment.bytes" => config.segment_bytes = Some(num(value)?),
                "segment.ms" => config.segment_ms = Some(dur(value)?),
                "index.interval.bytes" => config.index_interval_bytes = Some(num32(value)?),
                "segment.index.bytes" => config.max_index_bytes = Some(num32(value)?),
                "max.message.bytes" => config.max_batch_bytes = Some(num32(value)?),
                "durability" => {
                    config.durability = Some(parse_durability(value).ok_or_else(|| {
                        bad(line_no, format!("durability: {value:?} is not always, none, interval:<ms> or messages:<n>"))
                    })?)
                }
                "preallocate" => {
                    config.preallocate = Some(match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(line_no, format!("preallocate: {value:?} is not true or false"))),
                    })
                }
                "retention.ms" => config.retention = Some(dur(value)?),
                "retention.bytes" => {
                    config.retention_bytes = Some(if value == "-1" { u64::MAX } else { num(value)? })
                }
                "cleanup.policy" => {
                    config.cleanup_policy = Some(CleanupPolicy::parse(value).ok_or_else(|| {
                        bad(line_no, format!("cleanup.policy: {value:?} is not delete, compact or compact,delete"))
                    })?)
                }
                "message.timestamp.type" => {
                    config.timestamp_type = Some(match value {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => {
                            return Err(bad(
                                line_no,
                                format!("message.timestamp.type: {value:?} is not CreateTime or LogAppendTime"),
                            ))
                        }
                    })
                }
                "delete.retention.ms" => config.delete_retention = Some(dur(value)?),
                "min.compaction.lag.ms" => config.min_compaction_lag = Some(dur(value)?),
                "max.compaction.lag.ms" => config.max_compaction_lag = Some(dur(value)?),
                "min.cleanable.dirty.ratio" => {
                    config.min_cleanable_dirty_ratio = Some(value.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
                        bad(line_no, format!("min.cleanable.dirty.ratio: {value:?} is not a number in 0.0 ..= 1.0"))
                    })?)
                }
                _ => return Err(bad(line_no, format!("unknown key {key:?}"))),
            }
        }
        if !seen_format {
            return Err(bad(0, "missing format=1 line".into()));
        }
        if !seen_partitions {
            return Err(bad(0, "missing partitions=<n> line".into()));
        }
        config.validate().map_err(|e| bad(0, e.to_string()))?;
        Ok(config)
    }
}

fn duration_text(d: Duration) -> String {
    if d == Duration::MAX {
        "-1".into()
    } else {
        d.as_millis().to_string()
    }
}

fn durability_text(d: Durability) -> String {
    match d {
        Durability::None => "none".into(),
        Durability::Always => "always".into(),
        Durability::Interval(i) => format!("interval:{}", i.as_millis()),
        Durability::EveryMessages(n) => format!("messages:{n}"),
    }
}

fn parse_durability(s: &str) -> Option<Durability> {
    match s {
        "none" => Some(Durability::None),
        "always" => Some(Durability::Always),
        _ => {
            let (kind, n) = s.split_once(':')?;
            let n: u64 = n.parse().ok()?;
            match kind {
                "interval" => Some(Durability::Interval(Duration::from_millis(n))),
                "messages" => Some(Durability::EveryMessages(n)),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_field() {
        let c = TopicConfig {
            partitions: 7,
            segment_bytes: Some(1 << 20),
            segment_ms: Some(Duration::MAX),
            index_interval_bytes: Some(100),
            max_index_bytes: Some(4096),
            max_batch_bytes: Some(5000),
            durability: Some(Durability::Interval(Duration::from_millis(250))),
            preallocate: Some(false),
            retention: Some(Duration::from_secs(60)),
            retention_bytes: Some(u64::MAX),
            cleanup_policy: Some(CleanupPolicy::CompactDelete),
            timestamp_type: Some(TimestampType::LogAppendTime),
            delete_retention: Some(Duration::from_secs(3600)),
            min_compaction_lag: Some(Duration::from_millis(1500)),
            max_compaction_lag: Some(Duration::MAX),
            min_cleanable_dirty_ratio: Some(0.25),
        };
        let text = c.encode();
        assert_eq!(
            TopicConfig::decode(text.as_bytes(), Path::new("t")).unwrap(),
            c
        );
        let d = TopicConfig::with_partitions(2);
        assert_eq!(
            TopicConfig::decode(d.encode().as_bytes(), Path::new("t")).unwrap(),
            d
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, line) in [
            ("format=1\npartitions=x\n", 2),
            ("format=1\npartitions=2\nbogus=1\n", 3),
            ("format=1\npartitions=2\nnot a pair\n", 3),
            ("format=2\npartitions=2\n", 1),
            ("format=1\n", 0),
            ("format=1\npartitions=0\n", 0),
            ("format=1\npartitions=2\npartitions=3\n", 3),
            ("format=1\npartitions=1\ndurability=sometimes\n", 3),
            ("format=1\npartitions=1\nmin.cleanable.dirty.ratio=1.5\n", 3),
            (
                "format=1\npartitions=1\nmin.cleanable.dirty.ratio=half\n",
                3,
            ),
        ] {
            match TopicConfig::decode(text.as_bytes(), Path::new("/s/t/topic.conf")) {
                Err(Error::InvalidConfigFile { path, line: l, .. }) => {
                    assert_eq!(path, Path::new("/s/t/topic.conf"));
                    assert_eq!(l, line, "{text:?}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(TopicConfig::decode(&[0xff, 0xfe], Path::new("x")).is_err());
    }
}
