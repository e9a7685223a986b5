//! Moving topics between a store and a Kafka log directory (`docs/KAFKA.md` is the operator's
//! side): [`Store::export_kafka`] writes `<topic>-<partition>` directories (each partition's
//! own export, `partition/kafka`) and the log-directory checkpoint files a Kafka broker reads
//! at startup; [`Store::import_kafka`] creates topics from the `<topic>-<partition>` directories
//! of a Kafka log directory, crash-safely like [`Store::create_topic`] (built in a staging
//! directory, renamed into place).

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::partition::kafka_files::{
    merge_offset_checkpoint, read_offset_checkpoint, OffsetEntries, CLEANER_OFFSET_CHECKPOINT,
    KAFKA_CLEAN_SHUTDOWN, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
};
use crate::partition::{
    adopt_kafka_partition, check_kafka_partition_dir, KafkaPartitionExport,
    KafkaPartitionExportOptions, KafkaPartitionImport, KafkaSource, KafkaTopicId,
};
use crate::progress::{Observer, Progress};

/// The log-directory checkpoint files an export writes (merging into any already there).
const LOG_DIR_CHECKPOINTS: [&str; 4] = [
    RECOVERY_POINT_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    CLEANER_OFFSET_CHECKPOINT,
];

/// How [`Store::export_kafka_with`] writes a Kafka log directory.
///
/// # Examples
/// ```
/// use topiclog::{KafkaExportOptions, KafkaTopicId, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("store"))?;
/// store.create_topic("orders", TopicConfig::with_partitions(2))?;
/// let mut options = KafkaExportOptions::default();
/// // The id `kafka-topics.sh --describe --topic orders` shows in the adopting cluster.
/// options.topic_ids.insert("orders".into(), "q2JnFwPxQHyN0bA5FaTm7g".parse::<KafkaTopicId>()?);
/// store.export_kafka_with(dir.path().join("kafka"), &["orders"], &options)?;
/// assert!(dir.path().join("kafka/orders-1/partition.metadata").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct KafkaExportOptions {
    /// Hard-link the `.log` files of sealed segments where the file system allows it (the
    /// destination on the store's device), copying otherwise. Default `true`. The links share
    /// their files with the store, which never rewrites them in place; a Kafka broker may
    /// (recovering or truncating a log), so set `false` when a broker on this file system will
    /// use the export while the store is still in use, or copy the export to the broker's host.
    pub hard_links: bool,
    /// The adopting cluster's topic id of each exported topic, by name: written into each of
    /// its partitions' `partition.metadata`. A topic without one gets no `partition.metadata`;
    /// a KRaft broker needs it (see `docs/KAFKA.md`). Default empty.
    pub topic_ids: BTreeMap<String, KafkaTopicId>,
    /// The observer of the export's progress, one
    /// [`ProgressOperation::Export`](crate::ProgressOperation::Export) per partition, in turn,
    /// named by topic and partition; each one's total is the bytes of the files it exports
    /// (segment data and indexes; a hard-linked `.log` counts as done at once). Default `None`.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for KafkaExportOptions {
    fn default() -> Self {
        KafkaExportOptions {
            hard_links: true,
            topic_ids: BTreeMap::new(),
            progress: None,
        }
    }
}

/// What [`Store::export_kafka`] wrote.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaExportReport {
    /// The Kafka log directory written.
    pub dir: PathBuf,
    /// Each partition written (into `<dir>/<topic>-<partition>`), by topic and partition.
    pub partitions: BTreeMap<(String, u32), KafkaPartitionExport>,
}

/// How [`Store::import_kafka_with`] creates the imported topics.
///
/// A Kafka log directory holds no topic configuration: each imported topic is created with
/// `overrides` (or its entry in `topic_overrides`), the rest from the store's defaults
/// ([`StoreOptions::log`]), as [`Store::create_topic`] does. Set at least what the data needs:
/// `cleanup_policy` for a compacted topic (else it is treated as a log and its keys are not
/// required), and a `retention` that keeps the imported records (time retention follows record
/// timestamps, so with the default 7 days, records older than that go at the next retention
/// pass).
///
/// # Examples
/// ```
/// use topiclog::{CleanupPolicy, KafkaImportOptions, LogOverrides, Retention};
/// let mut options = KafkaImportOptions::default();
/// options.overrides.retention = Some(Retention::Forever);
/// options.topic_overrides.insert(
///     "customers".into(),
///     LogOverrides { cleanup_policy: Some(CleanupPolicy::Compact), ..LogOverrides::default() },
/// );
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct KafkaImportOptions {
    /// Hard-link the `.log` files of the Kafka segments other than the last (which topiclog
    /// appends to, so it is always copied) into the store where the file system allows it,
    /// copying otherwise. Default `true`. The source is never written to, but the links share
    /// its files: do not start a Kafka broker on the source directory afterwards (it may
    /// rewrite a segment in place when it recovers or truncates), or set `false`.
    pub hard_links: bool,
    /// The settings of every imported topic that has no entry in `topic_overrides`. Default:
    /// none, so the store's defaults.
    pub overrides: LogOverrides,
    /// The settings of particular topics, by name (replacing `overrides` for them).
    pub topic_overrides: BTreeMap<String, LogOverrides>,
    /// The observer of the import's progress, one
    /// [`ProgressOperation::Import`](crate::ProgressOperation::Import) per Kafka partition
    /// directory, in turn, named by topic and partition; each one's total is the bytes of the
    /// `.log` files it takes (linked or copied), and done follows their verification. Default
    /// `None`.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for KafkaImportOptions {
    fn default() -> Self {
        KafkaImportOptions {
            hard_links: true,
            overrides: LogOverrides::default(),
            topic_overrides: BTreeMap::new(),
            progress: None,
        }
    }
}

/// What [`Store::import_kafka`] did.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaImportReport {
    /// The topics created, sorted.
    pub topics: Vec<String>,
    /// Each partition imported, by topic and partition.
    pub partitions: BTreeMap<(String, u32), KafkaPartitionImport>,
    /// Directories of the Kafka log directory not imported: Kafka's internal topics (`__...`,
    /// when importing every topic), partitions Kafka is deleting (`-delete`), moving between
    /// its log directories (`-future`) or has set aside (`-stray`), and directories that are
    /// not partitions.
    pub skipped: Vec<PathBuf>,
}

/// The topic and partition of a Kafka partition directory name, `<topic>-<partition>` (Kafka's
/// `UnifiedLog.parseTopicPartitionName`); `None` for Kafka's renamed directories
/// (`<topic>-<partition>.<id>-delete`, `-future`, `-stray`) and anything else.
fn parse_partition_dir_name(name: &str) -> Option<(String, u32)> {
    if ["-delete", "-future", "-stray"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        return None;
    }
    let (topic, partition) = name.rsplit_once('-')?;
    let p: u32 = partition.parse().ok()?;
    // One spelling per partition, as Kafka writes it.
    if topic.is_empty() || p.to_string() != partition || i32::try_from(p).is_err() {
        return None;
    }
    Some((topic.to_owned(), p))
}

impl Store {
    /// Write every partition of `topics` (all topics if empty; the internal
    /// `__consumer_offsets` is never exported: see
    /// [`export_group_offsets`](Self::export_group_offsets)) into the Kafka log directory
    /// `dest`, hard-linking sealed segments where possible. See
    /// [`export_kafka_with`](Self::export_kafka_with).
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Record, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("store"))?;
    /// let orders = store.create_topic("orders", TopicConfig::with_partitions(2))?;
    /// orders.send_to(0, Record::new("created").with_key("order-1"))?;
    /// orders.send_to(1, Record::new("paid").with_key("order-2"))?;
    ///
    /// let kafka = dir.path().join("kafka-logs");
    /// let report = store.export_kafka(&kafka, &["orders"])?;
    /// assert_eq!(report.partitions[&("orders".to_string(), 0)].end_offset, 1);
    /// // One directory per partition, with Kafka's segment file names...
    /// assert!(kafka.join("orders-0/00000000000000000000.log").exists());
    /// assert!(kafka.join("orders-1/00000000000000000000.timeindex").exists());
    /// // ...and the log directory's checkpoint files, in Kafka's text format.
    /// let recovery = std::fs::read_to_string(kafka.join("recovery-point-offset-checkpoint"))?;
    /// assert_eq!(recovery, "0\n2\norders 0 1\norders 1 1\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`export_kafka_with`](Self::export_kafka_with).
    pub fn export_kafka(
        &self,
        dest: impl AsRef<Path>,
        topics: &[&str],
    ) -> Result<KafkaExportReport> {
        self.export_kafka_with(dest, topics, &KafkaExportOptions::default())
    }

    /// Write every partition of `topics` (all topics if empty) into the Kafka log directory
    /// `dest` (created if missing), for a Kafka broker to adopt (`docs/KAFKA.md` says how).
    ///
    /// Each partition becomes `<dest>/<topic>-<partition>`, written by
    /// [`Partition::export_kafka_with`]: a consistent snapshot of its records from its log
    /// start offset to the end offset readers saw when its export began, in Kafka's segment
    /// files, with a `leader-epoch-checkpoint` and (with a topic id in `options`) a
    /// `partition.metadata`. Appends go on meanwhile; each partition's retention and compaction
    /// wait while its files are linked or copied. Partitions are snapshotted one after the
    /// other, not at one instant (as in Kafka, they are independent logs).
    ///
    /// Then the log directory's checkpoint files, in Kafka's text format (version `0`, an entry
    /// count, `topic partition offset` lines), replaced atomically and merged with any already
    /// in `dest` (entries for other partitions are kept):
    /// `recovery-point-offset-checkpoint` (the end offset: everything exported is synced),
    /// `log-start-offset-checkpoint` (the log start offset, which `delete_records` or retention
    /// may have moved inside a segment), `replication-offset-checkpoint` (the high watermark:
    /// the end offset) and `cleaner-offset-checkpoint` (for a topic whose cleanup policy
    /// compacts: the first offset not yet compacted).
    ///
    /// Not written: `meta.properties` (the broker's own identity), `.kafka_cleanshutdown`, the
    /// internal `__consumer_offsets` (committed offsets: see
    /// [`export_group_offsets`](Self::export_group_offsets)), producer state (`.snapshot`
    /// files) and transaction indexes (topiclog has no transactions).
    ///
    /// A partition directory that already exists in `dest` is refused before anything is
    /// written. If a partition's export fails, the partition directories this call wrote are
    /// removed and no checkpoint file is touched (the checkpoint files are written last, each
    /// atomically).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidConfig`] for a topic id given for a topic not
    /// exported; an [`Error::Io`] of kind `AlreadyExists` for an existing
    /// `<dest>/<topic>-<partition>`; [`Error::KafkaLogDir`] for a malformed checkpoint file
    /// already in `dest`; [`Error::Closed`]; as [`Partition::export_kafka_with`].
    pub fn export_kafka_with(
        &self,
        dest: impl AsRef<Path>,
        topics: &[&str],
        options: &KafkaExportOptions,
    ) -> Result<KafkaExportReport> {
        let inner = &*self.inner;
        inner.check_open()?;
        let dest = dest.as_ref();
        let fs = &*inner.env.fs;
        let names: BTreeSet<String> = if topics.is_empty() {
            self.topics().into_iter().collect()
        } else {
            topics.iter().map(|t| (*t).to_owned()).collect()
        };
        let selected = names
            .iter()
            .map(|n| self.topic(n))
            .collect::<Result<Vec<_>>>()?;
        if let Some(stray) = options.topic_ids.keys().find(|t| !names.contains(*t)) {
            return Err(Error::config(
                "topic_ids",
                format!("names topic {stray:?}, which this export does not write"),
            ));
        }
        let mut work: Vec<ExportWork<'_>> = Vec::new();
        for topic in &selected {
            let compacted = topic.config().cleanup_policy.compacts();
            for (i, partition) in topic.partitions().into_iter().enumerate() {
                work.push(ExportWork {
                    topic: topic.name().to_owned(),
                    partition: i as u32,
                    compacted,
                    export: Box::new(move |path, options, label| {
                        partition.export_kafka_as(path, options, label)
                    }),
                });
            }
        }
        export_log_dir(fs, dest, work, options)
    }

    /// Create topics from the `<topic>-<partition>` directories of the Kafka log directory
    /// `src`: every topic there if `topics` is empty, else those named, with the store's
    /// defaults for their configuration and hard links where possible. See
    /// [`import_kafka_with`](Self::import_kafka_with).
    ///
    /// # Errors
    /// As [`import_kafka_with`](Self::import_kafka_with).
    pub fn import_kafka(
        &self,
        src: impl AsRef<Path>,
        topics: &[&str],
    ) -> Result<KafkaImportReport> {
        self.import_kafka_with(src, topics, &KafkaImportOptions::default())
    }

    /// Create topics from the `<topic>-<partition>` directories of the Kafka log directory
    /// `src` (a copy of a broker's log directory, or one taken while the broker was stopped):
    /// every topic there if `topics` is empty (Kafka's internal `__...` topics are skipped),
    /// else those named. `src` is only read.
    ///
    /// Each topic gets as many partitions as it has directories, which must be numbered
    /// `0..n`; its configuration comes from `options` and the store's defaults (a Kafka log
    /// directory holds none; see [`KafkaImportOptions`]). Each partition takes the Kafka
    /// segments' `.log` files (hard-linked where `options.hard_links` and the file system
    /// allow, except the last, which is copied), every batch verified by topiclog's segment
    /// recovery, indexes built anew; its log start offset is the one Kafka's
    /// `log-start-offset-checkpoint` names (or the first segment's base offset), its end where
    /// Kafka's log ended, every offset kept. A torn tail of the last segment above Kafka's
    /// recovery point (`recovery-point-offset-checkpoint`) is cut, as Kafka's recovery would,
    /// unless the directory holds `.kafka_cleanshutdown` (then nothing may be cut). Kafka's
    /// compaction leaves gaps in the offsets (dropped batches) and each leader change starts a
    /// new partition leader epoch: both stay as they are below the imported end offset (the
    /// partition records it in `kafka-adopted`, as when it adopts a Kafka directory itself);
    /// from it on the log is topiclog's.
    ///
    /// Not taken: Kafka's `.index`/`.timeindex` (rebuilt), producer snapshots (`.snapshot`:
    /// the idempotent producers' state is rebuilt from the batches' producer fields, those
    /// within `producer_id_expiration`, as Kafka does without snapshots; the store's producer
    /// ids then stay above every imported one), `leader-epoch-checkpoint`, `partition.metadata`,
    /// leftovers Kafka deletes on load (`*.deleted`, `*.tmp`), and the log-directory files
    /// other than the two checkpoints above. Committed consumer offsets are not in a Kafka log
    /// directory's partitions topiclog can read (Kafka's `__consumer_offsets` is skipped).
    ///
    /// Everything that can be checked without reading the segments (names, partition
    /// numbering, existing topics, leftovers, the checkpoint files, configs) is checked for
    /// every topic before any is created. Each topic is created crash-safely, as by
    /// [`create_topic`](Self::create_topic): a crash or failure leaves it whole or absent.
    /// Topics are imported one after the other: if one fails, those before it stay.
    ///
    /// # Errors
    /// [`Error::TopicExists`] for a topic the store has; [`Error::InvalidTopicName`];
    /// [`Error::InvalidConfig`] for a bad override, or one for a topic not imported;
    /// [`Error::KafkaLogDir`] for a topic named but not in `src`, partitions not numbered
    /// `0..n`, leftovers of an interrupted Kafka compaction (`*.swap`, `*.cleaned`), aborted
    /// transactions, a segment that is not a whole, valid log, or a malformed checkpoint file;
    /// [`Error::Closed`]; [`Error::Io`].
    pub fn import_kafka_with(
        &self,
        src: impl AsRef<Path>,
        topics: &[&str],
        options: &KafkaImportOptions,
    ) -> Result<KafkaImportReport> {
        let inner = &*self.inner;
        inner.check_open()?;
        let src = src.as_ref();
        let fs = &*inner.env.fs;
        let mut report = KafkaImportReport {
            topics: Vec::new(),
            partitions: BTreeMap::new(),
            skipped: Vec::new(),
        };
        let mut found: BTreeMap<String, BTreeMap<u32, PathBuf>> = BTreeMap::new();
        for name in fs.read_dir(src).at(src)? {
            let path = src.join(&name);
            if !fs.is_dir(&path).at(&path)? {
                continue;
            }
            match parse_partition_dir_name(&name) {
                Some((topic, p)) => {
                    found.entry(topic).or_default().insert(p, path);
                }
                None => report.skipped.push(path),
            }
        }
        let selected: Vec<String> = if topics.is_empty() {
            let (internal, user): (Vec<_>, Vec<_>) =
                found.keys().cloned().partition(|t| is_internal(t));
            for t in internal {
                report.skipped.extend(found[&t].values().cloned());
            }
            user
        } else {
            let named: BTreeSet<&str> = topics.iter().copied().collect();
            named.into_iter().map(str::to_owned).collect()
        };
        report.skipped.sort();
        if let Some(stray) = options
            .topic_overrides
            .keys()
            .find(|t| !selected.contains(t))
        {
            return Err(Error::config(
                "topic_overrides",
                format!("names topic {stray:?}, which this import does not create"),
            ));
        }
        // Everything checkable without reading segments, for every topic, before any change.
        let mut plans = Vec::new();
        for name in &selected {
            validate_topic_name(name)?;
            let Some(parts) = found.get(name) else {
                return Err(Error::kafka_log_dir(
                    src,
                    format!(
                        "holds no partition directory of topic {name:?} (`{name}-0`, ...); \
                         name a topic it holds"
                    ),
                ));
            };
            let count = parts.len() as u32;
            if parts.keys().copied().ne(0..count) {
                let numbers: Vec<String> = parts.keys().map(u32::to_string).collect();
                return Err(Error::kafka_log_dir(
                    src,
                    format!(
                        "topic {name:?} has partition directories {} but a topic's partitions \
                         are numbered 0 to n-1: copy the missing ones (they may be on another \
                         broker or log directory) into this directory",
                        numbers.join(", ")
                    ),
                ));
            }
            let path = inner.dir.join(name);
            let conf_path = path.join(CONFIG_FILE);
            if inner.topics.read().contains_key(name) || fs.exists(&conf_path).at(&conf_path)? {
                return Err(Error::TopicExists { name: name.clone() });
            }
            if fs.exists(&path).at(&path)? {
                return Err(Error::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "a file or directory that is not a topic has this name in the store \
                         directory; move it away, or import the other topics",
                    ),
                ));
            }
            let overrides = options
                .topic_overrides
                .get(name)
                .unwrap_or(&options.overrides)
                .clone();
            inner
                .options
                .topic_settings(count, inner.options.resolve(&overrides))?;
            for dir in parts.values() {
                check_kafka_partition_dir(fs, dir)?;
            }
            plans.push((
                name.clone(),
                TopicConfig {
                    partitions: count,
                    overrides,
                },
                parts.clone(),
            ));
        }
        let log_starts = read_offset_checkpoint(fs, &src.join(LOG_START_OFFSET_CHECKPOINT))?;
        let recovery_points = read_offset_checkpoint(fs, &src.join(RECOVERY_POINT_CHECKPOINT))?;
        let clean_path = src.join(KAFKA_CLEAN_SHUTDOWN);
        let clean_shutdown = fs.exists(&clean_path).at(&clean_path)?;

        let env = &inner.env;
        for (name, config, parts) in plans {
            let _admin = inner.admin.lock();
            inner.check_open()?;
            if inner.topics.read().contains_key(&name) {
                return Err(Error::TopicExists { name });
            }
            let mut imported = BTreeMap::new();
            inner.create_topic_prepared(&name, config, &mut |i, dir, config| {
                let key = (name.clone(), i);
                let source = KafkaSource {
                    log_start: log_starts.get(&key).copied(),
                    recovery_point: recovery_points.get(&key).copied(),
                    clean_shutdown,
                };
                let src_dir = parts.get(&i).ok_or_else(|| {
                    Error::kafka_log_dir(src, format!("partition {i} of {name:?} went missing"))
                })?;
                let observer = options
                    .progress
                    .clone()
                    .map(|p| Observer::new(p, Some(&name), Some(i)));
                let r = adopt_kafka_partition(
                    &env.fs,
                    src_dir,
                    dir,
                    config,
                    &source,
                    options.hard_links,
                    observer.as_ref(),
                )?;
                // Opened first without preallocation, so that no recovery step can extend a
                // linked file (the source's); closed cleanly, so later opens trust the result.
                let unextended = LogConfig {
                    preallocate: false,
                    ..config.clone()
                };
                Partition::open_with_env(dir, unextended, env.clone())?.close()?;
                imported.insert(key, r);
                Ok(())
            })?;
            inner.notify_watchers();
            report.topics.push(name);
            report.partitions.extend(imported);
        }
        report.topics.sort();
        Ok(report)
    }
}

/// One partition of a Kafka export: whose it is, and how to write its directory.
pub(crate) struct ExportWork<'a> {
    pub topic: String,
    pub partition: u32,
    /// Its topic compacts: the cleaner checkpoint gets an entry.
    pub compacted: bool,
    /// Write the partition directory at the path given.
    #[allow(clippy::type_complexity)]
    pub export: Box<
        dyn FnOnce(
                &Path,
                &KafkaPartitionExportOptions,
                Option<(&str, u32)>,
            ) -> Result<KafkaPartitionExport>
            + 'a,
    >,
}

/// Write `work` into the Kafka log directory `dest`: each partition's directory, then the
/// log-directory checkpoint files (see [`Store::export_kafka_with`]; also what a read-only
/// opener's export writes). All or nothing: a partition directory already in `dest` is refused
/// before anything is written, and if a partition fails, the ones written are removed.
pub(crate) fn export_log_dir(
    fs: &dyn FileSystem,
    dest: &Path,
    work: Vec<ExportWork<'_>>,
    options: &KafkaExportOptions,
) -> Result<KafkaExportReport> {
    let mut planned = Vec::new();
    for w in work {
        let path = dest.join(format!("{}-{}", w.topic, w.partition));
        if fs.exists(&path).at(&path)? {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the Kafka log directory already holds this partition: move it away (or \
                     export into another directory)",
                ),
            ));
        }
        planned.push((w, path));
    }
    // Checkpoint files already there are merged into: they must be readable first.
    for name in LOG_DIR_CHECKPOINTS {
        read_offset_checkpoint(fs, &dest.join(name))?;
    }
    create_dir_all_durable(fs, dest).at(dest)?;
    let mut report = KafkaExportReport {
        dir: dest.to_owned(),
        partitions: BTreeMap::new(),
    };
    let mut written = Vec::new();
    let mut compacted = BTreeSet::new();
    let exported = (|| {
        for (w, path) in planned {
            let partition_options = KafkaPartitionExportOptions {
                hard_links: options.hard_links,
                topic_id: options.topic_ids.get(&w.topic).copied(),
                progress: options.progress.clone(),
            };
            let label = Some((w.topic.as_str(), w.partition));
            let export = (w.export)(&path, &partition_options, label)?;
            written.push(path);
            if w.compacted {
                compacted.insert(w.topic.clone());
            }
            report.partitions.insert((w.topic, w.partition), export);
        }
        let mut entries: [OffsetEntries; 4] = Default::default();
        for (key, e) in &report.partitions {
            entries[0].insert(key.clone(), e.end_offset);
            entries[1].insert(key.clone(), e.start_offset);
            entries[2].insert(key.clone(), e.end_offset);
            if compacted.contains(&key.0) {
                entries[3].insert(key.clone(), e.first_dirty_offset);
            }
        }
        for (name, entries) in LOG_DIR_CHECKPOINTS.iter().zip(&entries) {
            merge_offset_checkpoint(fs, &dest.join(name), entries)?;
        }
        fs.sync_dir(dest).at(dest)
    })();
    if let Err(e) = exported {
        for path in &written {
            let _ = fs.remove_dir_all(path);
        }
        let _ = fs.sync_dir(dest);
        return Err(e);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::parse_partition_dir_name;

    #[test]
    fn partition_directory_names_are_kafkas() {
        assert_eq!(
            parse_partition_dir_name("orders-0"),
            Some(("orders".into(), 0))
        );
        assert_eq!(
            parse_partition_dir_name("my-topic-12"),
            Some(("my-topic".into(), 12))
        );
        for other in [
            "orders",
            "-3",
            "orders-",
            "orders-01",
            "orders-x",
            "orders-2147483648",
            "orders-0.9f3c2d1e0b7a4c5d8e6f1a2b3c4d5e6f-delete",
            "orders-0.9f3c2d1e0b7a4c5d8e6f1a2b3c4d5e6f-future",
            "orders-0.9f3c2d1e0b7a4c5d8e6f1a2b3c4d5e6f-stray",
            "remote-log-index-cache",
            "lost+found",
        ] {
            assert_eq!(parse_partition_dir_name(other), None, "{other}");
        }
    }
}
