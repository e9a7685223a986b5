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

use crate::config::{
    whole_millis, CleanupPolicy, CompressionType, Deadline, Durability, Limit, LogConfig,
    LogOverrides, Retention, TimestampType,
};
use crate::error::{Error, Result};
use crate::format::meta;

/// Name of the configuration file in a topic directory.
pub(crate) const FILE_NAME: &str = "topic.conf";
/// The format this build writes: every key, then a checksum line.
const FORMAT: u32 = 2;
/// The format of earlier versions: optional keys (a missing one took the store default of each
/// open), no checksum.
pub(crate) const LEGACY_FORMAT: u32 = 1;
/// The key of the checksum line, the last line of a format 2 file.
const CRC_KEY: &str = "crc32";
/// How "never", "forever" and "unlimited" are written, as in Kafka.
const NEVER: &str = "-1";

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

/// A topic's settings at creation: its partition count and the log settings it overrides (every
/// one it leaves `None` takes the store's default, [`StoreOptions::log`](crate::StoreOptions::log),
/// **when the topic is created**). The store persists the resolved settings in `topic.conf`, and
/// later opens never change them, whatever options they pass.
/// [`Topic::config`](crate::Topic::config) returns what the topic runs with;
/// [`Store::alter_topic_config`](crate::Store::alter_topic_config) changes it and
/// [`Store::add_partitions`](crate::Store::add_partitions) grows it.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use topiclog::{CleanupPolicy, LogOverrides, Retention, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let config = TopicConfig {
///     partitions: 6,
///     overrides: LogOverrides {
///         retention: Some(Retention::After(Duration::from_secs(24 * 3600))),
///         cleanup_policy: Some(CleanupPolicy::Delete),
///         ..LogOverrides::default()
///     },
/// };
/// let topic = store.create_topic("events", config)?;
/// assert_eq!(topic.config().retention, Retention::After(Duration::from_secs(24 * 3600)));
/// assert_eq!(topic.config().segment_bytes, store.options().log.segment_bytes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TopicConfig {
    /// Number of partitions. Default 1. Kafka: `num.partitions`. Range 1 ..= [`MAX_PARTITIONS`].
    pub partitions: u32,
    /// The log settings this topic sets; the rest come from the store's defaults.
    pub overrides: LogOverrides,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            overrides: LogOverrides::default(),
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

    /// Check the partition count. The overrides are checked once resolved against the store's
    /// defaults ([`LogConfig::validate`]), when the topic is created or altered.
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
        Ok(())
    }
}

/// The `topic.conf` text (format 2) of a topic with `partitions` partitions running with
/// `config`: every setting a topic can override, then the checksum line. The store's own settings
/// (`recovery`, `producer_id_expiration`, `recovery_point_interval`, `write_buffer_bytes`) are
/// not written.
pub(crate) fn encode(partitions: u32, config: &LogConfig) -> String {
    // Destructured whole, so a new setting cannot be forgotten here.
    let LogConfig {
        segment_bytes,
        segment_ms,
        index_interval_bytes,
        max_index_bytes,
        max_batch_bytes,
        durability,
        preallocate,
        timestamp_type,
        retention,
        retention_bytes,
        cleanup_policy,
        delete_retention,
        min_compaction_lag,
        max_compaction_lag,
        min_cleanable_dirty_ratio,
        compression,
        recovery: _,
        producer_id_expiration: _,
        recovery_point_interval: _,
        write_buffer_bytes: _,
    } = *config;
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
    put("partitions", partitions.to_string());
    put("segment.bytes", segment_bytes.to_string());
    put("segment.ms", deadline_text(segment_ms));
    put("index.interval.bytes", index_interval_bytes.to_string());
    put("segment.index.bytes", max_index_bytes.to_string());
    put("max.message.bytes", max_batch_bytes.to_string());
    put("durability", durability_text(durability));
    put("preallocate", preallocate.to_string());
    put(
        "retention.ms",
        match retention {
            Retention::Forever => NEVER.into(),
            Retention::After(d) => duration_text(d),
        },
    );
    put(
        "retention.bytes",
        match retention_bytes {
            Limit::Unlimited => NEVER.into(),
            Limit::Bytes(b) => b.to_string(),
        },
    );
    put("cleanup.policy", cleanup_text(cleanup_policy).into());
    put(
        "message.timestamp.type",
        match timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
        .into(),
    );
    put("delete.retention.ms", duration_text(delete_retention));
    put("min.compaction.lag.ms", duration_text(min_compaction_lag));
    put("max.compaction.lag.ms", deadline_text(max_compaction_lag));
    put(
        "min.cleanable.dirty.ratio",
        min_cleanable_dirty_ratio.to_string(),
    );
    put("compression.type", compression.name().into());
    let crc = meta::crc32(out.as_bytes());
    out.push_str(&format!("{CRC_KEY}={crc:08x}\n"));
    out
}

impl TopicConfig {
    /// Parse `topic.conf`, naming `path` and the line in every error. Returns the config and the
    /// file's format: a format 2 config sets every override; a format 1 config only those the file
    /// lists.
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
            // `-1` (and, as earlier versions read it, `u64::MAX` milliseconds) is "never".
            let deadline = |v: &str| -> Result<Deadline> {
                Ok(match dur(v)? {
                    Duration::MAX => Deadline::Never,
                    d => Deadline::After(d),
                })
            };
            let o = &mut config.overrides;
            match key {
                "format" => {
                    let f = num(value)?;
                    if f != u64::from(FORMAT) && f != u64::from(LEGACY_FORMAT) {
                        return Err(bad(line_no, format!("unsupported format {value}; this build reads formats {LEGACY_FORMAT} and {FORMAT}")));
                    }
                    format = Some(f as u32);
                }
                "partitions" => config.partitions = num32(value)?,
                "segment.bytes" => o.segment_bytes = Some(num(value)?),
                "segment.ms" => o.segment_ms = Some(deadline(value)?),
                "index.interval.bytes" => o.index_interval_bytes = Some(num32(value)?),
                "segment.index.bytes" => o.max_index_bytes = Some(num32(value)?),
                "max.message.bytes" => o.max_batch_bytes = Some(num32(value)?),
                "durability" => {
                    o.durability = Some(parse_durability(value).ok_or_else(|| {
                        bad(line_no, format!("durability: {value:?} is not always, none, interval:<ms> or messages:<n>"))
                    })?)
                }
                "preallocate" => {
                    o.preallocate = Some(match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(line_no, format!("preallocate: {value:?} is not true or false"))),
                    })
                }
                "retention.ms" => {
                    o.retention = Some(match deadline(value)? {
                        Deadline::Never => Retention::Forever,
                        Deadline::After(d) => Retention::After(d),
                    })
                }
                "retention.bytes" => {
                    o.retention_bytes = Some(match value {
                        NEVER => Limit::Unlimited,
                        _ => match num(value)? {
                            u64::MAX => Limit::Unlimited,
                            b => Limit::Bytes(b),
                        },
                    })
                }
                "cleanup.policy" => {
                    o.cleanup_policy = Some(parse_cleanup(value).ok_or_else(|| {
                        bad(line_no, format!("cleanup.policy: {value:?} is not delete, compact or compact,delete"))
                    })?)
                }
                "message.timestamp.type" => {
                    o.timestamp_type = Some(match value {
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
                "compression.type" => {
                    o.compression = Some(CompressionType::from_name(value).ok_or_else(|| {
                        bad(
                            line_no,
                            format!(
                                "compression.type: {value:?} is not producer, uncompressed, \
                                 gzip, snappy, lz4 or zstd"
                            ),
                        )
                    })?)
                }
                "delete.retention.ms" => o.delete_retention = Some(dur(value)?),
                "min.compaction.lag.ms" => o.min_compaction_lag = Some(dur(value)?),
                "max.compaction.lag.ms" => o.max_compaction_lag = Some(deadline(value)?),
                "min.cleanable.dirty.ratio" => {
                    o.min_cleanable_dirty_ratio = Some(value.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
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
                // Written before topics had `compression.type`: such a topic stored what its
                // appenders sent, Kafka's `producer`; pinned, so no open's options change it.
                config
                    .overrides
                    .compression
                    .get_or_insert(CompressionType::Producer);
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

/// Parse milliseconds as [`duration_text`] writes them (`-1` is `Duration::MAX`).
fn parse_millis(v: &str) -> Option<Duration> {
    if v == "-1" {
        return Some(Duration::MAX);
    }
    v.parse::<u64>()
        .ok()
        .map(|ms| whole_millis(Duration::from_millis(ms)))
}

/// A duration in whole milliseconds; `Duration::MAX` (too long to count) is `-1`.
fn duration_text(d: Duration) -> String {
    if d == Duration::MAX {
        NEVER.into()
    } else {
        d.as_millis().to_string()
    }
}

fn deadline_text(d: Deadline) -> String {
    match d {
        Deadline::Never => NEVER.into(),
        Deadline::After(d) => duration_text(d),
    }
}

fn cleanup_text(policy: CleanupPolicy) -> &'static str {
    match policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
        CleanupPolicy::CompactDelete => "compact,delete",
    }
}

fn parse_cleanup(s: &str) -> Option<CleanupPolicy> {
    match s {
        "delete" => Some(CleanupPolicy::Delete),
        "compact" => Some(CleanupPolicy::Compact),
        "compact,delete" | "delete,compact" => Some(CleanupPolicy::CompactDelete),
        _ => None,
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

    /// A format 2 file from before `compression.type` reads as `producer`, whatever the store's
    /// options: the value is pinned, not taken from each open.
    #[test]
    fn a_file_without_compression_type_is_producer() {
        let config = LogConfig {
            compression: CompressionType::Codec(crate::Compression::Zstd),
            ..LogConfig::default()
        };
        let text = encode(2, &config);
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("compression.type=") && !l.starts_with("crc32="))
            .map(|l| format!("{l}\n"))
            .collect();
        let old = format!("{body}crc32={:08x}\n", meta::crc32(body.as_bytes()));
        let (topic, _) = TopicConfig::decode(old.as_bytes(), Path::new("topic.conf")).unwrap();
        assert_eq!(topic.overrides.compression, Some(CompressionType::Producer));
        let (topic, _) = TopicConfig::decode(text.as_bytes(), Path::new("topic.conf")).unwrap();
        assert_eq!(
            topic.overrides.compression,
            Some(CompressionType::Codec(crate::Compression::Zstd))
        );
    }

    fn every_field() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: Deadline::Never,
            index_interval_bytes: 100,
            max_index_bytes: 4096,
            max_batch_bytes: 5000,
            durability: Durability::Interval(Duration::from_millis(250)),
            preallocate: false,
            retention: Retention::After(Duration::from_secs(60)),
            retention_bytes: Limit::Unlimited,
            cleanup_policy: CleanupPolicy::CompactDelete,
            timestamp_type: TimestampType::LogAppendTime,
            delete_retention: Duration::from_secs(3600),
            min_compaction_lag: Duration::from_millis(1500),
            max_compaction_lag: Deadline::Never,
            min_cleanable_dirty_ratio: 0.25,
            ..LogConfig::default()
        }
    }

    /// What a topic of 7 partitions running with `config` reads back.
    fn pinned(config: &LogConfig) -> TopicConfig {
        TopicConfig {
            partitions: 7,
            overrides: config.overrides(),
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
        let text = encode(7, &c);
        assert!(text.starts_with('#'));
        assert!(text.contains("\nformat=2\n"));
        for key in KEYS {
            assert!(text.contains(&format!("\n{key}=")), "{key} is written");
        }
        assert_eq!(decode(&text).unwrap(), (pinned(&c), 2));
        let d = LogConfig {
            durability: Durability::Interval(Duration::MAX),
            retention: Retention::After(Duration::from_millis(u64::MAX - 1)),
            retention_bytes: Limit::Bytes(u64::MAX - 1),
            segment_ms: Deadline::After(Duration::from_millis(1)),
            max_compaction_lag: Deadline::After(Duration::from_secs(7200)),
            ..every_field()
        };
        assert_eq!(decode(&encode(7, &d)).unwrap(), (pinned(&d), 2));
    }

    #[test]
    fn never_is_written_as_minus_one_as_in_kafka() {
        let text = encode(1, &every_field());
        for line in [
            "segment.ms=-1",
            "retention.bytes=-1",
            "max.compaction.lag.ms=-1",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}: {text}");
        }
        let forever = LogConfig {
            retention: Retention::Forever,
            ..every_field()
        };
        assert!(encode(1, &forever).contains("\nretention.ms=-1\n"));
        // Earlier versions wrote "never" as u64::MAX (ms or bytes) in hand-made format 1 files.
        let (c, _) = decode(&format!(
            "format=1\npartitions=1\nsegment.ms={m}\nretention.ms={m}\nretention.bytes={m}\n",
            m = u64::MAX
        ))
        .unwrap();
        assert_eq!(c.overrides.segment_ms, Some(Deadline::Never));
        assert_eq!(c.overrides.retention, Some(Retention::Forever));
        assert_eq!(c.overrides.retention_bytes, Some(Limit::Unlimited));
    }

    #[test]
    fn format_1_is_read_with_optional_keys() {
        let (c, format) = decode("format=1\npartitions=2\nretention.ms=5000\n").unwrap();
        assert_eq!(format, LEGACY_FORMAT);
        assert_eq!(
            c,
            TopicConfig {
                overrides: LogOverrides {
                    retention: Some(Retention::After(Duration::from_secs(5))),
                    ..LogOverrides::default()
                },
                ..TopicConfig::with_partitions(2)
            }
        );
    }

    #[test]
    fn every_damage_to_a_format_2_file_is_detected() {
        let text = encode(7, &every_field());
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
                Ok((c, _)) => assert_eq!(c, pinned(&every_field()), "bit {bit}"),
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
        let complete = encode(7, &every_field());
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
