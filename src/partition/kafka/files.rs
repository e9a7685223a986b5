//! The small text files a Kafka broker keeps beside its partition data, in exactly the text its
//! readers expect. Each format is taken from Kafka's source (apache/kafka, `storage` and `core`
//! modules), named at each item:
//!
//! - offset checkpoints (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//!   `replication-offset-checkpoint`, `cleaner-offset-checkpoint`, one each per log directory):
//!   `OffsetCheckpointFile` over `server-common`'s `CheckpointFile`: a version line (`0`), a
//!   count line, then one `topic partition offset` line per partition, fields separated by one
//!   space, lines ended by `\n` (`BufferedWriter.newLine()` on Unix);
//! - `leader-epoch-checkpoint` (per partition): `LeaderEpochCheckpointFile`, the same frame with
//!   `epoch startOffset` lines;
//! - `partition.metadata` (per partition): `PartitionMetadata.encode()`, `version: 0` and
//!   `topic_id: <id>` on two lines, no final newline.
//!
//! Kafka replaces each by writing `<name>.tmp`, syncing it and renaming it over the old one; so
//! does [`write_atomic`](crate::fs::write_atomic).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, IoContext, Result};
use crate::fs::{read_all, write_atomic, FileSystem};

/// Kafka's `LogManager.RecoveryPointCheckpointFile`: per partition, the offset below which
/// everything was flushed (a broker recovers only the segments from the one holding it on).
pub(crate) const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Kafka's `LogManager.LogStartOffsetCheckpointFile`: per partition, the log start offset when it
/// lies above the first segment's base offset (after `deleteRecords` or retention).
pub(crate) const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Kafka's `ReplicaManager.HighWatermarkFilename`: per partition, the high watermark.
pub(crate) const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Kafka's `LogCleanerManager.offsetCheckpointFile`: per compacted partition, the first dirty
/// offset (records below it have been through the cleaner).
pub(crate) const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
/// Kafka's `LeaderEpochCheckpointFile`: per partition, where each leader epoch begins.
pub(crate) const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Kafka's `PartitionMetadataFile`: per partition, the topic id.
pub(crate) const PARTITION_METADATA: &str = "partition.metadata";
/// Kafka's `CleanShutdownFileHandler.CLEAN_SHUTDOWN_FILE_NAME`: present in a log directory after
/// a clean broker shutdown (the next start then skips recovery).
pub(crate) const KAFKA_CLEAN_SHUTDOWN: &str = ".kafka_cleanshutdown";

/// The version every one of these files carries (`OffsetCheckpointFile.CURRENT_VERSION`,
/// `LeaderEpochCheckpointFile.CURRENT_VERSION`, `PartitionMetadataFile.CURRENT_VERSION`).
const VERSION: u32 = 0;

/// The largest checkpoint file read: a line is at most ~290 bytes (a 249-byte topic name, two
/// numbers), so this holds over 200,000 partitions.
const MAX_CHECKPOINT_BYTES: u64 = 64 << 20;

/// The entries of an offset checkpoint file, by topic and partition.
pub(crate) type OffsetEntries = BTreeMap<(String, u32), u64>;

/// The text of an offset checkpoint (`OffsetCheckpointFile.Formatter`,
/// `CheckpointFile.CheckpointWriteBuffer`): `0`, the entry count, then `topic partition offset`
/// per line.
pub(crate) fn encode_offset_checkpoint(entries: &OffsetEntries) -> String {
    let mut out = format!("{VERSION}\n{}\n", entries.len());
    for ((topic, partition), offset) in entries {
        out.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    out
}

/// Parse an offset checkpoint as Kafka's `CheckpointFile.CheckpointReadBuffer` does (an empty
/// file, or one with only a version line, holds no entry; fields are split on whitespace), but
/// refusing what Kafka would refuse or misread: another version, a count that does not match,
/// a malformed line, a negative partition or offset, a partition listed twice.
pub(crate) fn decode_offset_checkpoint(text: &str, path: &Path) -> Result<OffsetEntries> {
    let bad = |line: usize, what: &str| {
        Error::kafka_log_dir(
            path,
            format!(
                "line {line}: {what}; this is not a Kafka offset checkpoint file (version 0, \
                 an entry count, then `topic partition offset` lines): restore it, or move it \
                 away if it is stale"
            ),
        )
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let Some((_, version)) = lines.next() else {
        return Ok(OffsetEntries::new());
    };
    if version.trim().parse::<u32>().ok() != Some(VERSION) {
        return Err(bad(1, &format!("version {version:?} is not {VERSION}")));
    }
    let Some((_, count)) = lines.next() else {
        return Ok(OffsetEntries::new());
    };
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| bad(2, &format!("entry count {count:?} is not a number")))?;
    let mut entries = OffsetEntries::new();
    let mut seen = 0usize;
    for (n, line) in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [topic, partition, offset] = fields[..] else {
            return Err(bad(n, &format!("{line:?} is not `topic partition offset`")));
        };
        let partition: u32 = partition
            .parse()
            .ok()
            .filter(|p| i32::try_from(*p).is_ok())
            .ok_or_else(|| {
                bad(
                    n,
                    &format!("partition {partition:?} is not a partition number"),
                )
            })?;
        let offset: u64 = offset
            .parse()
            .ok()
            .filter(|o| i64::try_from(*o).is_ok())
            .ok_or_else(|| bad(n, &format!("offset {offset:?} is not an offset")))?;
        if entries
            .insert((topic.to_owned(), partition), offset)
            .is_some()
        {
            return Err(bad(n, &format!("{topic}-{partition} is listed twice")));
        }
        seen += 1;
    }
    if seen != count {
        return Err(bad(
            2,
            &format!("the file says it holds {count} entries but holds {seen}"),
        ));
    }
    Ok(entries)
}

/// Read the offset checkpoint at `path`; an absent file holds no entry.
pub(crate) fn read_offset_checkpoint(fs: &dyn FileSystem, path: &Path) -> Result<OffsetEntries> {
    if !fs.exists(path).at(path)? {
        return Ok(OffsetEntries::new());
    }
    let bytes = read_all(fs, path, MAX_CHECKPOINT_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::kafka_log_dir(path, e.to_string()),
        _ => Error::io(path, e),
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::kafka_log_dir(path, "not UTF-8 text: not a Kafka checkpoint file"))?;
    decode_offset_checkpoint(text, path)
}

/// Replace the offset checkpoint at `path` with its current entries (if any) updated by
/// `entries`, atomically and durably, as Kafka writes it.
pub(crate) fn merge_offset_checkpoint(
    fs: &dyn FileSystem,
    path: &Path,
    entries: &OffsetEntries,
) -> Result<()> {
    let mut all = read_offset_checkpoint(fs, path)?;
    all.extend(entries.iter().map(|(k, v)| (k.clone(), *v)));
    write_atomic(fs, path, encode_offset_checkpoint(&all).as_bytes()).at(path)
}

/// The text of a `leader-epoch-checkpoint` (`LeaderEpochCheckpointFile.Formatter`): `0`, the
/// entry count, then `epoch startOffset` per line.
pub(crate) fn encode_leader_epochs(entries: &[(i32, u64)]) -> String {
    let mut out = format!("{VERSION}\n{}\n", entries.len());
    for (epoch, start) in entries {
        out.push_str(&format!("{epoch} {start}\n"));
    }
    out
}

/// The text of a `partition.metadata` (`PartitionMetadata.encode()`).
pub(crate) fn encode_partition_metadata(topic_id: &KafkaTopicId) -> String {
    format!("version: {VERSION}\ntopic_id: {topic_id}")
}

/// A Kafka topic id (Kafka's `Uuid`), written into each exported partition's
/// `partition.metadata`. Its text form is what Kafka prints, e.g. in
/// `kafka-topics.sh --describe`'s `TopicId:` column: the 16 bytes in URL-safe base64 without
/// padding (22 characters).
///
/// Kafka refuses to serve a partition whose `partition.metadata` names another id than the
/// cluster's topic of that name, and a KRaft broker sets aside (as a "stray" log, renamed
/// `<topic>-<partition>.<id>-stray`) a partition directory that has no topic id at all; so an
/// export meant for a KRaft cluster needs the id of the topic created there first (see
/// `docs/KAFKA.md`).
///
/// # Examples
/// ```
/// use topiclog::KafkaTopicId;
/// let id: KafkaTopicId = "q2JnFwPxQHyN0bA5FaTm7g".parse()?;
/// assert_eq!(id.to_string(), "q2JnFwPxQHyN0bA5FaTm7g");
/// assert!("not-an-id".parse::<KafkaTopicId>().is_err());
/// assert!("AAAAAAAAAAAAAAAAAAAAAA".parse::<KafkaTopicId>().is_err()); // Kafka's ZERO_UUID
/// # Ok::<(), topiclog::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaTopicId([u8; 16]);

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl KafkaTopicId {
    /// The id from its 16 bytes (Kafka's `Uuid(mostSignificantBits, leastSignificantBits)`,
    /// big-endian).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for the two ids Kafka reserves: all zeros (`Uuid.ZERO_UUID`,
    /// "no id") and `Uuid.ONE_UUID` (the metadata topic's).
    pub fn from_bytes(bytes: [u8; 16]) -> Result<KafkaTopicId> {
        let mut one = [0u8; 16];
        one[15] = 1;
        if bytes == [0u8; 16] || bytes == one {
            return Err(Error::config(
                "topic_id",
                "Kafka reserves this topic id (Uuid.ZERO_UUID or Uuid.ONE_UUID); use the id \
                 `kafka-topics.sh --describe` shows for the topic",
            ));
        }
        Ok(KafkaTopicId(bytes))
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl FromStr for KafkaTopicId {
    type Err = Error;

    /// Parse the text form (22 characters of URL-safe base64; a `==` padding is accepted, as
    /// Kafka's `Uuid.fromString` accepts it).
    fn from_str(s: &str) -> Result<KafkaTopicId> {
        let invalid = || {
            Error::config(
                "topic_id",
                format!(
                    "{s:?} is not a Kafka topic id (22 characters of URL-safe base64, as \
                     `kafka-topics.sh --describe` prints it)"
                ),
            )
        };
        let digits = s.strip_suffix("==").unwrap_or(s);
        if digits.len() != 22 {
            return Err(invalid());
        }
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut out = Vec::with_capacity(17);
        for c in digits.bytes() {
            let v = BASE64_URL
                .iter()
                .position(|&b| b == c)
                .ok_or_else(invalid)?;
            bits = (bits << 6) | v as u32;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        // 22 digits carry 132 bits: 16 bytes and 4 bits, which must be zero (the text Kafka
        // prints; any other would name the same id twice).
        let bytes: [u8; 16] = out.try_into().map_err(|_| invalid())?;
        if bits != 0 {
            return Err(invalid());
        }
        KafkaTopicId::from_bytes(bytes)
    }
}

impl fmt::Display for KafkaTopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut out = String::with_capacity(22);
        for &b in &self.0 {
            bits = (bits << 8) | u32::from(b);
            nbits += 8;
            while nbits >= 6 {
                nbits -= 6;
                out.push(char::from(BASE64_URL[((bits >> nbits) & 63) as usize]));
            }
            bits &= (1 << nbits) - 1;
        }
        if nbits > 0 {
            out.push(char::from(
                BASE64_URL[((bits << (6 - nbits)) & 63) as usize],
            ));
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for KafkaTopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaTopicId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_text_is_kafkas() {
        let mut e = OffsetEntries::new();
        e.insert(("orders".into(), 0), 42);
        e.insert(("orders".into(), 1), 7);
        let text = encode_offset_checkpoint(&e);
        assert_eq!(text, "0\n2\norders 0 42\norders 1 7\n");
        assert_eq!(decode_offset_checkpoint(&text, Path::new("f")).unwrap(), e);
        // What Kafka reads as empty.
        assert!(decode_offset_checkpoint("", Path::new("f"))
            .unwrap()
            .is_empty());
        assert!(decode_offset_checkpoint("0\n", Path::new("f"))
            .unwrap()
            .is_empty());
        assert!(decode_offset_checkpoint("0\n0\n", Path::new("f"))
            .unwrap()
            .is_empty());
        // Tabs and runs of spaces split as Kafka's `\s+`.
        assert_eq!(
            decode_offset_checkpoint("0\n1\nt\t3   9\n", Path::new("f")).unwrap()[&("t".into(), 3)],
            9
        );
        for bad in [
            "1\n0\n",
            "0\nx\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt 0\n",
            "0\n1\nt -1 5\n",
            "0\n1\nt 0 -5\n",
            "0\n2\nt 0 1\nt 0 2\n",
        ] {
            let e = decode_offset_checkpoint(bad, Path::new("f")).unwrap_err();
            assert!(matches!(e, Error::KafkaLogDir { .. }), "{bad:?}: {e}");
        }
    }

    #[test]
    fn leader_epochs_and_partition_metadata_text() {
        assert_eq!(encode_leader_epochs(&[]), "0\n0\n");
        assert_eq!(
            encode_leader_epochs(&[(0, 5), (3, 90)]),
            "0\n2\n0 5\n3 90\n"
        );
        let id: KafkaTopicId = "q2JnFwPxQHyN0bA5FaTm7g".parse().unwrap();
        assert_eq!(
            encode_partition_metadata(&id),
            "version: 0\ntopic_id: q2JnFwPxQHyN0bA5FaTm7g"
        );
    }

    #[test]
    fn topic_ids_round_trip_as_kafka_prints_them() {
        for s in [
            "q2JnFwPxQHyN0bA5FaTm7g",
            "AAAAAAAAAAAAAAAAAAAAAg",
            "_____________________w",
            "ZQBwcd-yS6qDzYI30Q41dA",
        ] {
            let id: KafkaTopicId = s.parse().unwrap();
            assert_eq!(id.to_string(), s);
            assert_eq!(format!("{s}==").parse::<KafkaTopicId>().unwrap(), id);
            assert_eq!(KafkaTopicId::from_bytes(*id.as_bytes()).unwrap(), id);
        }
        let mut two = [0u8; 16];
        two[15] = 2;
        assert_eq!(
            KafkaTopicId::from_bytes(two).unwrap().to_string(),
            "AAAAAAAAAAAAAAAAAAAAAg"
        );
        for bad in [
            "",
            "q2JnFwPxQHyN0bA5FaTm7",
            "q2JnFwPxQHyN0bA5FaTm7gg",
            "q2JnFwPxQHyN0bA5FaTm7+",
            "q2JnFwPxQHyN0bA5FaTm7h", // trailing bits set
            "AAAAAAAAAAAAAAAAAAAAAA", // ZERO_UUID
            "AAAAAAAAAAAAAAAAAAAAAQ", // ONE_UUID
        ] {
            assert!(bad.parse::<KafkaTopicId>().is_err(), "{bad}");
        }
    }
}
