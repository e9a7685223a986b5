//! Read-only checks of topiclog's own metadata files, for tools that inspect a store's directory
//! without opening it (the `topiclog verify` command): a partition's `checkpoint`,
//! `.clean_shutdown`, `cleaner-checkpoint`, `producer-snapshot` and `kafka-adopted`, a topic's
//! `topic.conf`, the store's `__producer_ids`.
//!
//! Everything here only reads: no file is created, written, locked or deleted, so a directory can
//! be inspected while a [`Store`](crate::Store) holds it (a file replaced meanwhile is read either
//! whole before or whole after: each is replaced by an atomic rename). The decoders are the ones
//! the store itself opens these files with; segment files (`.log`, `.index`, `.timeindex`) are
//! [`crate::segment`]'s.
//!
//! # Examples
//! ```
//! use topiclog::inspect::{check_metadata_file, MetadataFile};
//! use topiclog::{Store, TopicConfig};
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("events", TopicConfig::with_partitions(1))?;
//! store.close()?;
//! let conf = dir.path().join("events").join("topic.conf");
//! assert_eq!(MetadataFile::of_name("topic.conf"), Some(MetadataFile::TopicConfig));
//! let summary = check_metadata_file(MetadataFile::TopicConfig, &conf)?;
//! assert!(summary.description.contains("1 partition"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::meta::{
    AdoptedLog, Checkpoint, CleanShutdown, CleanerCheckpoint, Decode, ProducerIdCounter,
    ProducerSnapshot,
};
use crate::topic::TopicConfig;

/// Largest metadata file read (the largest, a producer snapshot, is bounded well below it).
const MAX_FILE_LEN: u64 = 256 << 20;

/// The kinds of metadata file topiclog writes beside its segments.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataFile {
    /// A partition's `checkpoint`: log start offset, recovery point.
    Checkpoint,
    /// A partition's `.clean_shutdown`: what a clean close left.
    CleanShutdown,
    /// A partition's `cleaner-checkpoint`: compaction progress.
    CleanerCheckpoint,
    /// A partition's `producer-snapshot`: idempotent producers' state.
    ProducerSnapshot,
    /// A partition's `kafka-adopted`: below its offset the log is Kafka's (offset gaps allowed).
    KafkaAdopted,
    /// A topic's `topic.conf`.
    TopicConfig,
    /// The store's producer id counter, `__producer_ids` (`producer-ids` in earlier versions).
    ProducerIds,
}

impl MetadataFile {
    /// The kind of metadata file named `file_name`, `None` for any other name.
    pub fn of_name(file_name: &str) -> Option<MetadataFile> {
        Some(match file_name {
            "checkpoint" => MetadataFile::Checkpoint,
            ".clean_shutdown" => MetadataFile::CleanShutdown,
            "cleaner-checkpoint" => MetadataFile::CleanerCheckpoint,
            "producer-snapshot" => MetadataFile::ProducerSnapshot,
            "kafka-adopted" => MetadataFile::KafkaAdopted,
            "topic.conf" => MetadataFile::TopicConfig,
            "__producer_ids" | "producer-ids" => MetadataFile::ProducerIds,
            _ => return None,
        })
    }

    /// What the file holds, in words ("checkpoint", "producer snapshot", ...).
    pub fn describe(self) -> &'static str {
        match self {
            MetadataFile::Checkpoint => "checkpoint",
            MetadataFile::CleanShutdown => "clean-shutdown marker",
            MetadataFile::CleanerCheckpoint => "cleaner checkpoint",
            MetadataFile::ProducerSnapshot => "producer snapshot",
            MetadataFile::KafkaAdopted => "Kafka adoption marker",
            MetadataFile::TopicConfig => "topic configuration",
            MetadataFile::ProducerIds => "producer id counter",
        }
    }
}

/// What a metadata file that decodes holds.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataSummary {
    /// Its kind.
    pub file: MetadataFile,
    /// Its content in a few words, e.g. `log start offset 0, recovery point 42`.
    pub description: String,
    /// A `kafka-adopted` marker's offset: below it the log may have offset gaps (only in a log
    /// adopted as compacted: Kafka leaves no gap in one that is not; `None` then).
    pub gaps_below: Option<u64>,
}

/// Read the file at `path` as a metadata file of kind `file` and decode it, as the store would on
/// open: its envelope (magic, version, length, CRC) and its body; for `topic.conf` its checksum
/// line and every setting. Never writes.
///
/// # Errors
/// - [`Error::Corrupt`] (or [`Error::InvalidConfigFile`] for `topic.conf`), both of
///   [`ErrorKind::Damaged`](crate::ErrorKind::Damaged), naming the file, the position (or line)
///   and what is wrong;
/// - [`Error::Io`] if it cannot be read (missing, a directory, unreadable), or is larger than any
///   such file can be.
pub fn check_metadata_file(file: MetadataFile, path: &Path) -> Result<MetadataSummary> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX_FILE_LEN {
        return Err(Error::corrupt(
            path,
            0,
            format!(
                "{}: {len} bytes, larger than any such file",
                file.describe()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let damaged = |e: crate::format::meta::DecodeError| e.corrupt(path, file.describe());
    let mut gaps_below = None;
    let description = match file {
        MetadataFile::Checkpoint => {
            let c = Checkpoint::decode(&bytes).map_err(damaged)?;
            format!(
                "log start offset {}, recovery point {}",
                c.log_start_offset, c.recovery_point
            )
        }
        MetadataFile::CleanShutdown => {
            let m = CleanShutdown::decode(&bytes).map_err(damaged)?;
            format!(
                "clean close at end offset {} (log start offset {}, active segment {} of {} \
                 bytes)",
                m.end_offset, m.log_start_offset, m.active_base, m.active_size
            )
        }
        MetadataFile::CleanerCheckpoint => {
            let c = CleanerCheckpoint::decode(&bytes).map_err(damaged)?;
            format!("cleaned below offset {}", c.first_dirty)
        }
        MetadataFile::ProducerSnapshot => {
            let s = ProducerSnapshot::decode(&bytes).map_err(damaged)?;
            format!("{} producers as of offset {}", s.producers.len(), s.offset)
        }
        MetadataFile::KafkaAdopted => {
            let a = AdoptedLog::decode(&bytes).map_err(damaged)?;
            gaps_below = a.compacted.then_some(a.gaps_below);
            format!(
                "Kafka's {}log below offset {}",
                if a.compacted { "compacted " } else { "" },
                a.gaps_below
            )
        }
        MetadataFile::TopicConfig => {
            let (config, format) = TopicConfig::decode(&bytes, path)?;
            let s = if config.partitions == 1 { "" } else { "s" };
            format!("{} partition{s} (format {format})", config.partitions)
        }
        MetadataFile::ProducerIds => {
            let c = ProducerIdCounter::decode(&bytes).map_err(damaged)?;
            format!("next producer id {}", c.next)
        }
    };
    Ok(MetadataSummary {
        file,
        description,
        gaps_below,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::meta::Encode;
    use crate::ErrorKind;

    #[test]
    fn names_are_recognised_and_others_are_not() {
        assert_eq!(
            MetadataFile::of_name("checkpoint"),
            Some(MetadataFile::Checkpoint)
        );
        assert_eq!(
            MetadataFile::of_name("producer-ids"),
            Some(MetadataFile::ProducerIds)
        );
        for other in ["00000000000000000000.log", ".lock", "checkpoint.tmp", ""] {
            assert_eq!(MetadataFile::of_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_good_file_decodes_and_a_damaged_one_is_damage_that_nothing_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        let good = Checkpoint {
            log_start_offset: 3,
            recovery_point: 42,
            producers_from: None,
        }
        .encode_to_vec();
        std::fs::write(&path, &good).unwrap();
        let summary = check_metadata_file(MetadataFile::Checkpoint, &path).unwrap();
        assert_eq!(summary.description, "log start offset 3, recovery point 42");
        assert_eq!(summary.gaps_below, None);

        let mut bad = good.clone();
        bad[12] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let e = check_metadata_file(MetadataFile::Checkpoint, &path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Damaged, "{e}");
        assert!(e.to_string().contains("checkpoint: CRC mismatch"), "{e}");
        // Read-only: the damaged file is left as it was.
        assert_eq!(std::fs::read(&path).unwrap(), bad);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["checkpoint"]);

        // The wrong kind of file for its name is damage too; a missing one is an I/O error.
        let e = check_metadata_file(MetadataFile::CleanShutdown, &path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Damaged, "{e}");
        let e =
            check_metadata_file(MetadataFile::Checkpoint, &dir.path().join("none")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }

    #[test]
    fn the_adoption_marker_gives_its_offset_and_topic_conf_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kafka-adopted");
        let marker = AdoptedLog {
            gaps_below: 77,
            log_start: 0,
            compacted: true,
            adopting: false,
            segment_ends: vec![(0, 40)],
        };
        std::fs::write(&path, marker.encode_to_vec()).unwrap();
        let summary = check_metadata_file(MetadataFile::KafkaAdopted, &path).unwrap();
        assert_eq!(summary.gaps_below, Some(77));

        let conf = dir.path().join("topic.conf");
        let store = crate::Store::open(dir.path().join("store")).unwrap();
        store
            .create_topic("t", TopicConfig::with_partitions(2))
            .unwrap();
        store.close().unwrap();
        let text = std::fs::read_to_string(dir.path().join("store/t/topic.conf")).unwrap();
        std::fs::write(&conf, &text).unwrap();
        let summary = check_metadata_file(MetadataFile::TopicConfig, &conf).unwrap();
        assert!(
            summary.description.starts_with("2 partitions"),
            "{summary:?}"
        );
        std::fs::write(&conf, text.replace("partitions=2", "partitions=3")).unwrap();
        let e = check_metadata_file(MetadataFile::TopicConfig, &conf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Damaged, "{e}");
    }
}
