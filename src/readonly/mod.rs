//! Read-only access to a store that another process (or another handle) may be writing:
//! [`ReadOnlyStore`] and [`ReadOnlyPartition`].
//!
//! A read-only opener takes no lock and writes no byte, so any number of them (a lag monitor,
//! a dispatcher, `topiclog` commands, a backup) can look at a live store without slowing its
//! writer or making it fail, as SQLite's and Chronicle Queue's readers can. What each partition's
//! writer has made visible reaches them through its tail page (see [`ReadOnlyPartition`]).
//!
//! Consumer groups are the writer's: a read-only opener reads committed offsets and computes
//! lag ([`ReadOnlyStore::committed_offsets`], [`ReadOnlyStore::group_lag`]), but cannot join a
//! group or commit; the type has no such methods, and the `topiclog` tool refuses `--group` on
//! a store held by a writer with [`Error::ReadOnly`].

mod partition;
mod reader;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use partition::{ReadOnlyPartition, SegmentFile};
pub use reader::TopicReader;

use crate::broker::{replay_offsets, OffsetAndMetadata, PartitionLag, TopicPartition};
use crate::error::{Error, Result};
use crate::fs::{LockHolder, StdFs};
use crate::store::{
    export_log_dir, read_topic_config, ExportWork, KafkaExportOptions, KafkaExportReport,
    CREATING_PREFIX, DELETING_PREFIX, OFFSETS_TOPIC,
};
use crate::topic::{TopicConfig, CONFIG_FILE, LOCK_FILE};

/// A store opened to read only, while another process may hold it for writing
/// ([`Store::open`](crate::Store::open)).
///
/// It takes no lock and writes nothing; it lists topics and their configs as they are on disk
/// when asked (topics created or deleted by the writer show up at the next call), hands out
/// [`ReadOnlyPartition`]s, and reads the consumer groups' committed offsets.
///
/// # Examples
/// ```
/// use topiclog::{ReadOnlyStore, Record, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let orders = store.create_topic("orders", TopicConfig::with_partitions(2))?;
/// orders.send_to(1, Record::new("order 1").with_key("o-1"))?;
///
/// // While `store` is open (in this process or another one):
/// let reader = ReadOnlyStore::open(dir.path())?;
/// assert_eq!(reader.topics()?, vec!["orders".to_string()]);
/// let p1 = reader.partition("orders", 1)?;
/// assert_eq!(p1.end_offset()?, 1);
/// assert!(reader.writer()?.is_some(), "the store is held by a writer");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ReadOnlyStore {
    dir: PathBuf,
}

impl ReadOnlyStore {
    /// Open the store in `dir` to read only. Nothing is created, locked or written.
    ///
    /// # Errors
    /// [`Error::Io`] of kind `NotFound` if there is no directory; [`Error::NotAStore`] if the
    /// directory holds no topiclog store.
    pub fn open(dir: impl AsRef<Path>) -> Result<ReadOnlyStore> {
        let dir = dir.as_ref().to_owned();
        let meta = std::fs::metadata(&dir).map_err(|e| Error::io(&dir, e))?;
        if !meta.is_dir() || !dir.join(LOCK_FILE).exists() {
            return Err(Error::NotAStore { path: dir });
        }
        Ok(ReadOnlyStore { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Who holds the store for writing now, if anyone (`pid: None`: a handle in this process).
    ///
    /// # Errors
    /// [`Error::Io`] if the lock file cannot be looked at.
    pub fn writer(&self) -> Result<Option<LockHolder>> {
        let path = self.dir.join(LOCK_FILE);
        StdFs::lock_holder(&path).map_err(|e| Error::io(&path, e))
    }

    /// The topics, by name (sorted), without the store's internal ones.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be listed.
    pub fn topics(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with("__")
                || name.starts_with(CREATING_PREFIX)
                || name.starts_with(DELETING_PREFIX)
            {
                continue;
            }
            if entry.path().join(CONFIG_FILE).exists() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The config `topic` was created with (and altered to), as its `topic.conf` holds it.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidConfigFile`] for a damaged `topic.conf`.
    pub fn topic_config(&self, topic: &str) -> Result<TopicConfig> {
        let path = self.topic_dir(topic)?.join(CONFIG_FILE);
        match read_topic_config(&StdFs, &path) {
            Ok((config, _format)) => Ok(config),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::UnknownTopic {
                    name: topic.to_owned(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Partition `partition` of `topic`, to read.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidPartition`] past the topic's partitions;
    /// [`Error::Io`].
    pub fn partition(&self, topic: &str, partition: u32) -> Result<ReadOnlyPartition> {
        let partitions = if topic == OFFSETS_TOPIC {
            self.offsets_partitions()?
        } else {
            self.topic_config(topic)?.partitions
        };
        if partition >= partitions {
            return Err(Error::InvalidPartition {
                topic: topic.to_owned(),
                partition,
                partitions,
            });
        }
        ReadOnlyPartition::open(self.topic_dir(topic)?.join(partition.to_string()))
    }

    /// The names of the consumer groups that have committed offsets (sorted).
    ///
    /// # Errors
    /// As [`committed_offsets`](Self::committed_offsets).
    pub fn groups(&self) -> Result<Vec<String>> {
        Ok(self.load_offsets()?.into_keys().collect())
    }

    /// Every offset `group` has committed (and not deleted), by partition.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a record of the offsets topic that does not decode; read errors
    /// as [`ReadOnlyPartition::read`].
    pub fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        Ok(self.load_offsets()?.remove(group).unwrap_or_default())
    }

    /// For each partition `group` has committed for, or of the topics it committed for: the
    /// end offset now, the committed offset and the lag (as
    /// [`Store::group_lag`](crate::Store::group_lag), without the owners: membership lives in
    /// the writer's process).
    ///
    /// # Errors
    /// As [`committed_offsets`](Self::committed_offsets).
    pub fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        let committed = self.committed_offsets(group)?;
        let mut topics: Vec<String> = committed.keys().map(|tp| tp.topic.clone()).collect();
        topics.dedup();
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for topic in &topics {
            let Ok(config) = self.topic_config(topic) else {
                continue;
            };
            for p in 0..config.partitions {
                let tp = TopicPartition::new(topic.clone(), p);
                let end = self.partition(topic, p)?.end_offset()?;
                let c = committed.get(&tp).cloned();
                let lag = c.as_ref().map(|c| end.saturating_sub(c.offset));
                seen.insert(tp.clone());
                out.push(PartitionLag {
                    partition: tp,
                    end_offset: Some(end),
                    committed: c,
                    lag,
                    owner: None,
                });
            }
        }
        for (tp, c) in committed {
            if !seen.contains(&tp) {
                out.push(PartitionLag {
                    partition: tp,
                    end_offset: None,
                    committed: Some(c),
                    lag: None,
                    owner: None,
                });
            }
        }
        Ok(out)
    }

    /// Write every partition of `topics` (all topics if empty) into the Kafka log directory
    /// `dest`, while the writer goes on: as
    /// [`Store::export_kafka_with`](crate::Store::export_kafka_with), but each partition is
    /// copied through [`ReadOnlyPartition::export_kafka_with`] (no hard links; the compaction
    /// checkpoint is not known to a reader, so compacted topics' `cleaner-offset-checkpoint`
    /// entries are their log start). A backup of a live store.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{KafkaExportOptions, ReadOnlyStore, Record, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("store"))?;
    /// store.create_topic("orders", TopicConfig::with_partitions(1))?
    ///     .send(Record::new("created").with_key("order-1"))?;
    /// // While the store stays open:
    /// let reader = ReadOnlyStore::open(dir.path().join("store"))?;
    /// let report = reader.export_kafka_with(dir.path().join("kafka"), &[], &KafkaExportOptions::default())?;
    /// assert_eq!(report.partitions[&("orders".to_string(), 0)].end_offset, 1);
    /// assert!(dir.path().join("kafka/orders-0/00000000000000000000.log").exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidConfig`] for a topic id of a topic not
    /// exported; as [`Store::export_kafka_with`](crate::Store::export_kafka_with) and
    /// [`ReadOnlyPartition::export_kafka_with`].
    pub fn export_kafka_with(
        &self,
        dest: impl AsRef<Path>,
        topics: &[&str],
        options: &KafkaExportOptions,
    ) -> Result<KafkaExportReport> {
        let names: Vec<String> = if topics.is_empty() {
            self.topics()?
        } else {
            topics.iter().map(|t| (*t).to_owned()).collect()
        };
        if let Some(stray) = options.topic_ids.keys().find(|t| !names.contains(*t)) {
            return Err(Error::config(
                "topic_ids",
                format!("names topic {stray:?}, which this export does not write"),
            ));
        }
        let mut work = Vec::new();
        for name in &names {
            let config = self.topic_config(name)?;
            let compacted = config
                .overrides
                .cleanup_policy
                .is_some_and(|p| p.compacts());
            for p in 0..config.partitions {
                let reader = self.partition(name, p)?;
                work.push(ExportWork {
                    topic: name.clone(),
                    partition: p,
                    compacted,
                    export: Box::new(move |path, options, _label| {
                        reader.export_kafka_with(path, options)
                    }),
                });
            }
        }
        export_log_dir(&StdFs, dest.as_ref(), work, options)
    }

    fn topic_dir(&self, topic: &str) -> Result<PathBuf> {
        let valid = !topic.is_empty()
            && topic != "."
            && topic != ".."
            && !topic.contains('/')
            && !topic.contains('\0');
        let dir = self.dir.join(topic);
        if !valid || !dir.is_dir() {
            return Err(Error::UnknownTopic {
                name: topic.to_owned(),
            });
        }
        Ok(dir)
    }

    fn offsets_partitions(&self) -> Result<u32> {
        match self.topic_config(OFFSETS_TOPIC) {
            Ok(c) => Ok(c.partitions),
            Err(Error::UnknownTopic { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Every group's latest commits, from the offsets topic (tombstones delete).
    fn load_offsets(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<TopicPartition, OffsetAndMetadata>>> {
        let mut table: BTreeMap<String, BTreeMap<TopicPartition, OffsetAndMetadata>> =
            BTreeMap::new();
        for p in 0..self.offsets_partitions()? {
            let part = self.partition(OFFSETS_TOPIC, p)?;
            replay_offsets(
                part.dir(),
                part.start_offset()?,
                part.end_offset()?,
                |at| part.read(at, 1 << 20),
                |group, tp, _, committed| match committed {
                    None => {
                        if let Some(g) = table.get_mut(&group) {
                            g.remove(&tp);
                            if g.is_empty() {
                                table.remove(&group);
                            }
                        }
                    }
                    Some(om) => {
                        table.entry(group).or_default().insert(tp, om);
                    }
                },
            )?;
        }
        Ok(table)
    }
}
