//! Topic configuration, persisted in `topic.conf`.
//!
//! `topic.conf` is a small text file in Java-properties style (`key=value` lines, `#` comments) with
//! Kafka's key names, so it is easy to inspect. Format 2 (written since configs are resolved at
//! creation) lists every setting and ends with a `crc32=<8 hex digits>` line, the CRC-32 of every
//! byte before that line (`format::meta::crc32`, the checksum of all of topiclog's own metadata).
//! Format 1 (earlier versions: optional keys, no checksum) is still read; the store rewrites it as
//! format 2 once. The file is replaced atomically and validated when read: a failed checksum, an
//! unknown key, a missing key, a malformed value or a contradiction is an
//! [`Error::InvalidConfigFile`] naming the file and line.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::meta;
use crate::partition::{Durability, TimestampType};

/// Name of the configuration file in a topic directory.
pub(crate) const FILE_NAME: &str = "topic.conf";
/// The format this build writes: every key, then a checksum line.
const FORMAT: u32 = 2;
/// The format of earlier versions: optional keys (a missing one took the store default of each
/// open), no checksum.
pub(crate) const LEGACY_FORMAT: u32 = 1;
/// The key of the checksum line, the last line of a format 2 file.
const CRC_KEY: &str = "crc32";

/// Every setting's key, in the order format 2 writes them; format 2 requires all of them.
const KEYS: [&str; 16] = [
    "partitions",
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
];

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

/// A topic's settings. `partitions` is required; every other field left `None` takes the store's
/// default ([`StoreOptions`](crate::StoreOptions)) **when the topic is created**: the store then
/// persists the resolved config (every field `Some`) in `topic.conf`, and later opens never change
/// it, whatever options they pass. [`Topic::config`](crate::Topic::config) returns the resolved
/// config; [`Store::alter_topic_config`](crate::Store::alter_topic_config) changes it.
///
/// `Duration::MAX` means "never"/"forever" for `segment_ms`, `retention` and
/// `max_compaction_lag`; `u64::MAX` means "unlimited" for `retention_bytes` (Kafka's `-1`).
/// Durations are kept in whole milliseconds, as in Kafka: a resolved config rounds a fraction of
/// a millisecond up.
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

    /// Whether every optional field is set, as in a config resolved against the store defaults.
    pub(crate) fn is_resolved(&self) -> bool {
        let TopicConfig {
            partitions: _,
            segment_bytes,
            segment_ms,
            index_interval_bytes,
            max_index_bytes,
            max_batch_bytes,
            durability,
            preallocate,
            retention,
            retention_bytes,
            cleanup_policy,
            timestamp_type,
            delete_retention,
            min_compaction_lag,
            max_compaction_lag,
            min_cleanable_dirty_ratio,
        } = self;
        segment_bytes.is_some()
            && segment_ms.is_some()
            && index_interval_bytes.is_some()
            && max_index_bytes.is_some()
            && max_batch_bytes.is_some()
            && durability.is_some()
            && preallocate.is_some()
            && retention.is_some()
            && retention_bytes.is_some()
            && cleanup_policy.is_some()
            && timestamp_type.is_some()
            && delete_retention.is_some()
            && min_compaction_lag.is_some()
            && max_compaction_lag.is_some()
            && min_cleanable_dirty_ratio.is_some()
    }

    /// The `topic.conf` text (format 2) of a resolved config: every key, then the checksum line.
    pub(crate) fn encode(&self) -> String {
        debug_assert!(self.is_resolved(), "only resolved configs are persisted");
        let mut out = String::from(
            "# topiclog topic configuration. Change it with Store::alter_topic_config: the crc32\n\
             # line is a checksum of every byte before it, so a hand edit fails the next open.\n",
        );
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
        let crc = meta::crc32(out.as_bytes());
        out.push_str(&format!("{CRC_KEY}={crc:08x}\n"));
        out
    }

    /// Parse `topic.conf`, naming `path` and the line in every error. Returns the config and the
    /// file's format: a format 2 config is resolved (every field `Some`); a format 1 config holds
    /// only the keys the file lists.
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<(TopicConfig, u32)> {
        let bad = |line: usize, reason: String| Error::InvalidConfigFile {
            path: path.to_owned(),
            line,
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad(0, "not UTF-8 text".into()))?;
        // The checksum line, if the last line is one: it covers every byte before it.
        let without_newline = text.strip_suffix('\n').unwrap_or(text);
        let last_start = without_newline.rfind('\n').map_or(0, |i| i + 1);
        let (body, crc_line) = match without_newline[last_start..].split_once('=') {
            Some((key, value)) if key.trim() == CRC_KEY => {
                let body = &text[..last_start];
                let line_no = body.lines().count() + 1;
                let value = value.trim();
                let stored = (value.len() == 8 && value.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| u32::from_str_radix(value, 16).ok())
                    .flatten()
                    .ok_or_else(|| {
                        bad(line_no, format!("{CRC_KEY}: {value:?} is not 8 hex digits"))
                    })?;
                let computed = meta::crc32(body.as_bytes());
                if stored != computed {
                    return Err(bad(
                        line_no,
                        format!(
                            "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the \
                             file is damaged or was edited by hand; restore it from a backup"
                        ),
                    ));
                }
                (body, Some(line_no))
            }
            _ => (text, None),
        };
        let mut config = TopicConfig::default();
        let mut format = None;
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in body.lines().enumerate() {
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
                parse_millis(v).ok_or_else(|| {
                    bad(line_no, format!("{key}: {v:?} is not milliseconds (or -1)"))
                })
            };
            match key {
                "format" => {
                    let f = num(value)?;
                    if f != u64::from(FORMAT) && f != u64::from(LEGACY_FORMAT) {
                        return Err(bad(line_no, format!("unsupported format {value}; this build reads formats {LEGACY_FORMAT} and {FORMAT}")));
                    }
                    format = Some(f as u32);
                }
                "partitions" => config.partitions = num32(value)?,
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
                CRC_KEY => {
                    return Err(bad(line_no, format!("{CRC_KEY}= must be the last line")))
                }
                _ => return Err(bad(line_no, format!("unknown key {key:?}"))),
            }
        }
        let format = format
            .ok_or_else(|| bad(0, "missing format= line: not a complete topic.conf".into()))?;
        if !seen.contains("partitions") {
            return Err(bad(0, "missing partitions=<n> line".into()));
        }
        match (format, crc_line) {
            (FORMAT, None) => {
                return Err(bad(
                    0,
                    format!(
                        "no {CRC_KEY}= line at the end: the file is truncated or damaged; restore \
                         it from a backup"
                    ),
                ))
            }
            (FORMAT, Some(_)) => {
                let missing: Vec<&str> = KEYS.into_iter().filter(|k| !seen.contains(*k)).collect();
                if !missing.is_empty() {
                    return Err(bad(
                        0,
                        format!(
                            "missing {} (format {FORMAT} lists every setting)",
                            missing.join(", ")
                        ),
                    ));
                }
            }
            (_, Some(line)) => {
                return Err(bad(
                    line,
                    format!("format {format} files have no {CRC_KEY}= line"),
                ))
            }
            (_, None) => {}
        }
        config.validate().map_err(|e| bad(0, e.to_string()))?;
        Ok((config, format))
    }
}

/// `d` as topic configs keep it: whole milliseconds, a fraction rounded up; anything of
/// `u64::MAX` milliseconds or more is `Duration::MAX` ("never"/"forever").
pub(crate) fn whole_millis(d: Duration) -> Duration {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    match u64::try_from(ms) {
        Ok(ms) if ms < u64::MAX => Duration::from_millis(ms),
        _ => Duration::MAX,
    }
}

/// Parse milliseconds as [`duration_text`] writes them (`-1` is `Duration::MAX`).
fn parse_millis(v: &str) -> Option<Duration> {
    if v == "-1" {
        return Some(Duration::MAX);
    }
    v.parse::<u64>()
        .ok()
        .map(|ms| whole_millis(Duration::from_millis(ms)))
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
        Durability::Interval(i) => format!("interval:{}", duration_text(i)),
        Durability::EveryMessages(n) => format!("messages:{n}"),
    }
}

fn parse_durability(s: &str) -> Option<Durability> {
    match s {
        "none" => Some(Durability::None),
        "always" => Some(Durability::Always),
        _ => {
            let (kind, n) = s.split_once(':')?;
            match kind {
                "interval" => parse_millis(n).map(Durability::Interval),
                "messages" => n.parse().ok().map(Durability::EveryMessages),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_field() -> TopicConfig {
        TopicConfig {
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
        }
    }

    fn decode(text: &str) -> Result<(TopicConfig, u32)> {
        TopicConfig::decode(text.as_bytes(), Path::new("/s/t/topic.conf"))
    }

    /// A format 2 file: `body` then its checksum line.
    fn sealed(body: &str) -> String {
        format!("{body}crc32={:08x}\n", crc32fast::hash(body.as_bytes()))
    }

    #[test]
    fn round_trip_every_field() {
        let c = every_field();
        assert!(c.is_resolved());
        let text = c.encode();
        assert!(text.starts_with('#'));
        assert!(text.contains("\nformat=2\n"));
        for key in KEYS {
            assert!(text.contains(&format!("\n{key}=")), "{key} is written");
        }
        assert_eq!(decode(&text).unwrap(), (c, 2));
        let d = TopicConfig {
            durability: Some(Durability::Interval(Duration::MAX)),
            retention: Some(Duration::from_millis(u64::MAX - 1)),
            ..every_field()
        };
        assert_eq!(decode(&d.encode()).unwrap(), (d, 2));
    }

    #[test]
    fn whole_millis_rounds_up_and_saturates() {
        assert_eq!(whole_millis(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            whole_millis(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            whole_millis(Duration::from_micros(1500)),
            Duration::from_millis(2)
        );
        assert_eq!(
            whole_millis(Duration::from_millis(7)),
            Duration::from_millis(7)
        );
        assert_eq!(whole_millis(Duration::from_secs(u64::MAX)), Duration::MAX);
        assert_eq!(whole_millis(Duration::from_millis(u64::MAX)), Duration::MAX);
        assert_eq!(whole_millis(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn format_1_is_read_with_optional_keys() {
        let (c, format) = decode("format=1\npartitions=2\nretention.ms=5000\n").unwrap();
        assert_eq!(format, LEGACY_FORMAT);
        assert_eq!(
            c,
            TopicConfig {
                retention: Some(Duration::from_secs(5)),
                ..TopicConfig::with_partitions(2)
            }
        );
    }

    #[test]
    fn every_damage_to_a_format_2_file_is_detected() {
        let text = every_field().encode();
        let bytes = text.as_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.to_vec();
            b[bit / 8] ^= 1 << (bit % 8);
            match TopicConfig::decode(&b, Path::new("/s/t/topic.conf")) {
                Err(Error::InvalidConfigFile { path, .. }) => {
                    assert_eq!(path, Path::new("/s/t/topic.conf"))
                }
                // Only a flip that changes the case of a checksum hex digit, or turns the final
                // newline into other whitespace, may decode, and then to the very same config.
                Ok((c, _)) => assert_eq!(c, every_field(), "bit {bit}"),
                Err(e) => panic!("bit {bit}: {e}"),
            }
        }
        // Every truncation but the one that drops only the final newline.
        for len in 0..bytes.len() - 1 {
            assert!(
                matches!(
                    TopicConfig::decode(&bytes[..len], Path::new("t")),
                    Err(Error::InvalidConfigFile { .. })
                ),
                "cut to {len}"
            );
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        let complete = every_field().encode();
        let body_end = complete.rfind("crc32=").unwrap();
        let body = &complete[..body_end];
        let without = |key: &str| -> String {
            body.lines()
                .filter(|l| !l.starts_with(&format!("{key}=")))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let body_lines = body.lines().count();
        for (text, line) in [
            ("format=1\npartitions=x\n".to_string(), 2),
            ("format=1\npartitions=2\nbogus=1\n".into(), 3),
            ("format=1\npartitions=2\nnot a pair\n".into(), 3),
            ("format=3\npartitions=2\n".into(), 1),
            ("format=1\n".into(), 0),
            ("partitions=2\n".into(), 0),
            ("format=1\npartitions=0\n".into(), 0),
            ("format=1\npartitions=2\npartitions=3\n".into(), 3),
            ("format=1\npartitions=1\ndurability=sometimes\n".into(), 3),
            (
                "format=1\npartitions=1\nmin.cleanable.dirty.ratio=1.5\n".into(),
                3,
            ),
            (
                "format=1\npartitions=1\nmin.cleanable.dirty.ratio=half\n".into(),
                3,
            ),
            // Format 2 needs its checksum, last, and every key.
            ("format=2\npartitions=2\n".into(), 0),
            (body.to_string(), 0),
            (sealed("format=2\npartitions=2\n"), 0),
            (sealed(&without("retention.ms")), 0),
            (format!("{body}crc32=0badc0de\n"), body_lines + 1),
            (format!("{body}crc32=xyz\n"), body_lines + 1),
            (format!("crc32=00000000\n{body}"), 1),
            (sealed("format=1\npartitions=2\n"), 3),
        ] {
            match decode(&text) {
                Err(Error::InvalidConfigFile {
                    path,
                    line: l,
                    reason,
                }) => {
                    assert_eq!(path, Path::new("/s/t/topic.conf"));
                    assert_eq!(l, line, "{text:?}: {reason}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(TopicConfig::decode(&[0xff, 0xfe], Path::new("x")).is_err());
    }
}
