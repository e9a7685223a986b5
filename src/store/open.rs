//! Opening a store: lock, tidy staging directories, load every topic, start the background
//! threads.

use super::maintenance::{spawn_cleaner, spawn_maintenance};
use super::*;

impl Store {
    /// Open the store in `dir` to read only, beside the process that holds it for writing (or
    /// none): the same as [`ReadOnlyStore::open`](crate::ReadOnlyStore::open). It takes no lock
    /// and writes nothing.
    ///
    /// # Errors
    /// As [`ReadOnlyStore::open`](crate::ReadOnlyStore::open).
    #[cfg(unix)]
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<crate::ReadOnlyStore> {
        crate::ReadOnlyStore::open(dir)
    }

    /// Open (or create) a store in `dir` with default options, on the real file system with the
    /// system clock.
    ///
    /// # Errors
    /// As [`open_with_env`](Self::open_with_env).
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with_env(dir, StoreOptions::default(), Env::default())
    }

    /// Open (or create) a store in `dir` with `options`, on the real file system with the system
    /// clock.
    ///
    /// # Errors
    /// As [`open_with_env`](Self::open_with_env).
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::open_with_env(dir, options, Env::default())
    }

    /// Open (or create) a store in `dir`, its files on `env.fs` and its time from `env.clock`:
    /// take the directory lock, recover every partition of every topic, clear away interrupted
    /// topic creations and deletions, and start background maintenance if enabled.
    ///
    /// Every topic runs with the config persisted in its `topic.conf` (and the store-wide log
    /// settings of `options.log`); the topic defaults in `options.log` apply only to topics
    /// created from now on. A `topic.conf` written by an earlier version (format 1, where a
    /// missing key meant "the default of each open") is resolved once against `options` and
    /// rewritten as format 2.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use topiclog::fs::SimFs;
    /// use topiclog::{Env, ManualClock, Store, StoreOptions};
    /// let env = Env {
    ///     fs: Arc::new(SimFs::new(1)),
    ///     clock: Arc::new(ManualClock::new(1_700_000_000_000)),
    /// };
    /// let options = StoreOptions { background_maintenance: false, ..StoreOptions::default() };
    /// let store = Store::open_with_env("/sim/store", options, env)?;
    /// assert!(store.topics().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// What recovery repaired (a torn tail cut after a crash, damage cut under
    /// [`Recovery::TruncateCorrupt`](crate::Recovery::TruncateCorrupt), ...) is listed by
    /// [`recovery_reports`](Self::recovery_reports).
    ///
    /// # Errors
    /// - [`Error::AlreadyOpen`] if another `Store` holds the directory;
    /// - [`Error::NotAStore`] for a non-empty directory that holds no store;
    /// - [`Error::InvalidConfig`] for bad options;
    /// - [`Error::InvalidConfigFile`] naming a damaged (checksum, syntax, values) or missing
    ///   `topic.conf` of a directory that holds partitions: nothing is deleted;
    /// - [`Error::Corrupt`] naming a partition directory `topic.conf` lists but which is missing,
    ///   or one beyond its partition count that holds records;
    /// - anything [`Partition::open_with_env`](crate::Partition::open_with_env) returns.
    pub fn open_with_env(dir: impl AsRef<Path>, options: StoreOptions, env: Env) -> Result<Store> {
        options.validate()?;
        let dir = dir.as_ref().to_owned();
        let fs = env.fs.clone();
        create_dir_all_durable(&*fs, &dir).at(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        if !fs.exists(&lock_path).at(&lock_path)? && !holds_a_store(&*fs, &dir)? {
            // Never treat someone else's directory as a store.
            return Err(Error::NotAStore { path: dir });
        }
        let lock = match fs.try_lock(&lock_path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let holder = crate::fs::LockHolder::of(&e);
                return Err(Error::AlreadyOpen { path: dir, holder });
            }
            Err(e) => return Err(Error::io(lock_path, e)),
        };
        let partitioner = options.partitioner.clone().unwrap_or_else(|| {
            Arc::new(DefaultPartitioner::new(options.sticky_batch_bytes)) as Arc<dyn Partitioner>
        });

        let mut topics = BTreeMap::new();
        let mut removed_any = false;
        let mut legacy_producer_ids = false;
        for name in fs.read_dir(&dir).at(&dir)? {
            let path = dir.join(&name);
            if name.starts_with(CREATING_PREFIX) || name.starts_with(DELETING_PREFIX) {
                // An interrupted creation (never held acknowledged data) or deletion (the topic
                // was gone once the rename was durable).
                if fs.is_dir(&path).at(&path)? {
                    fs.remove_dir_all(&path).at(&path)?;
                } else {
                    fs.remove_file(&path).at(&path)?;
                }
                removed_any = true;
                continue;
            }
            if name == producer_ids::LEGACY_FILE && !fs.is_dir(&path).at(&path)? {
                legacy_producer_ids = true;
                continue;
            }
            // `__consumer_offsets` is the one internal topic; other `__` names are store files
            // (`__producer_ids`) or reserved for later versions.
            let topic_name = if is_internal(&name) {
                name == OFFSETS_TOPIC
            } else {
                check_name_syntax(&name).is_ok()
            };
            if !topic_name || !fs.is_dir(&path).at(&path)? {
                continue;
            }
            let conf_path = path.join(CONFIG_FILE);
            if !fs.exists(&conf_path).at(&conf_path)? {
                if holds_partition_dirs(&*fs, &path)? {
                    // Creation and deletion never leave a topic's directory without its config:
                    // this is damage, and the partitions may hold acknowledged records.
                    return Err(Error::InvalidConfigFile {
                        path: conf_path,
                        line: 0,
                        reason: "missing, but the directory holds partition directories: restore \
                                 topic.conf from a backup (or move the directory out of the store \
                                 if the topic is not wanted); the store does not guess a config"
                            .into(),
                    });
                }
                // An empty directory, or one holding things topiclog never writes: not ours.
                continue;
            }
            let topic = load_topic(&options, &env, &name, &path, partitioner.clone())?;
            topics.insert(name, topic);
        }
        if removed_any {
            fs.sync_dir(&dir).at(&dir)?;
        }
        if legacy_producer_ids {
            producer_ids::migrate_legacy(&*fs, &dir)?;
        }
        let recovery_reports = topics
            .iter()
            .flat_map(|(name, topic)| {
                let partitions = topic.partitions().into_iter().enumerate();
                partitions.map(move |(i, p)| PartitionRecovery {
                    topic: name.clone(),
                    partition: i as u32,
                    report: p.recovery_report(),
                })
            })
            .filter(|r| repaired(&r.report))
            .collect::<Vec<_>>();
        // A recovery that cut records is a background failure too: the last one is kept.
        let recovery_cut = recovery_reports.iter().rev().find_map(|r| {
            let dir = topics.get(&r.topic)?.partition(r.partition).ok()?;
            recovery_cut_error(&r.topic, r.partition, dir.dir(), &r.report)
        });

        let inner = Arc::new(StoreInner {
            extensions: Mutex::new(Vec::new()),
            watchers: Mutex::new(Vec::new()),
            dir,
            partitioner,
            lock: Mutex::new(Some(lock)),
            topics: RwLock::new(topics),
            topics_version: std::sync::atomic::AtomicU64::new(0),
            admin: Mutex::new(()),
            closed: AtomicBool::new(false),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            maintenance: Mutex::new(None),
            cleaner: Mutex::new(None),
            last_maintenance_error: Mutex::new(recovery_cut),
            last_retention_ms: std::sync::atomic::AtomicI64::new(env.clock.now_ms()),
            staging_seq: AtomicU64::new(0),
            recovery_reports: Mutex::new(recovery_reports),
            options,
            env,
        });
        if inner.options.background_maintenance {
            let handle = spawn_maintenance(
                inner.clone(),
                inner.stop.clone(),
                inner.options.maintenance_interval,
            )
            .at(&inner.dir)?;
            *inner.maintenance.lock() = Some(handle);
        }
        if inner.options.background_cleaner {
            let handle = spawn_cleaner(
                inner.clone(),
                inner.stop.clone(),
                inner.options.cleaner_backoff,
            )
            .at(&inner.dir)?;
            *inner.cleaner.lock() = Some(handle);
        }
        Ok(Store {
            inner: Arc::new(StoreHandle { core: inner }),
        })
    }
}

/// Load the topic in `path` (whose `topic.conf` exists) at store open.
pub(super) fn load_topic(
    options: &StoreOptions,
    env: &Env,
    name: &str,
    path: &Path,
    partitioner: Arc<dyn Partitioner>,
) -> Result<Topic> {
    let fs = &*env.fs;
    let conf_path = path.join(CONFIG_FILE);
    let (config, format) = read_topic_config(fs, &conf_path)?;
    // Format 2 sets every override, so only the store-wide settings come from `options`; a
    // format 1 file left unset keys to the options of each open: they are pinned now, once.
    let settings = options
        .topic_settings(config.partitions, options.resolve(&config.overrides))
        .map_err(|e| Error::InvalidConfigFile {
            path: conf_path.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
    // Every listed partition was created before the config listing it was written: a missing
    // one is damage, which reopening it empty would hide.
    for i in 0..config.partitions {
        let p = path.join(i.to_string());
        if !fs.is_dir(&p).at(&p)? {
            return Err(Error::corrupt(
                &p,
                0,
                format!(
                    "partition directory missing, though {} lists {} partitions; restore it from \
                     a backup",
                    conf_path.display(),
                    config.partitions
                ),
            ));
        }
    }
    remove_unused_extra_partitions(fs, path, &conf_path, config.partitions)?;
    let tmp = path.join("topic.conf.tmp");
    if fs.exists(&tmp).at(&tmp)? {
        fs.remove_file(&tmp).at(&tmp)?;
    }
    if format == LEGACY_CONFIG_FORMAT {
        let text = encode_config(config.partitions, &settings.config);
        write_atomic(fs, &conf_path, text.as_bytes()).at(&conf_path)?;
    }
    Topic::open(
        name,
        path,
        settings,
        partitioner,
        env,
        options.cleaner_buffer_bytes,
        options.progress.clone(),
    )
}

/// Read and check `topic.conf`: damage is [`Error::InvalidConfigFile`], a failed read
/// [`Error::Io`].
pub(crate) fn read_topic_config(fs: &dyn FileSystem, path: &Path) -> Result<(TopicConfig, u32)> {
    let bytes = read_all(fs, path, 64 << 10).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::InvalidConfigFile {
            path: path.to_owned(),
            line: 0,
            reason: e.to_string(),
        },
        _ => Error::io(path, e),
    })?;
    TopicConfig::decode(&bytes, path)
}

/// Whether `name` is a partition directory's name: a number without leading zeros.
fn is_partition_name(name: &str) -> Option<u32> {
    name.parse::<u32>().ok().filter(|n| n.to_string() == name)
}

/// Whether a directory holds numbered partition directories, as only a topic does.
fn holds_partition_dirs(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
    for name in fs.read_dir(dir).at(dir)? {
        let path = dir.join(&name);
        if is_partition_name(&name).is_some() && fs.is_dir(&path).at(&path)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `dir` is empty or holds a store whose `LOCK` file went missing: the lock file only
/// guards against a second opener (the next open recreates it), so a directory holding a topic
/// (a subdirectory with a `topic.conf`) or a store file (`__producer_ids`, `__consumer_offsets`)
/// is still a store.
fn holds_a_store(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
    let names = fs.read_dir(dir).at(dir)?;
    if names.is_empty() {
        return Ok(true);
    }
    for name in &names {
        if name.starts_with(producer_ids::FILE) || name == OFFSETS_TOPIC {
            return Ok(true);
        }
        let conf = dir.join(name).join(CONFIG_FILE);
        if fs.exists(&conf).at(&conf)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Remove partition directories at or above `count`: an interrupted `add_partitions` leaves them,
/// and they never held a record. One that holds any (a damaged or replaced `topic.conf`?) is
/// refused: a config must never make open delete data.
fn remove_unused_extra_partitions(
    fs: &dyn FileSystem,
    topic_dir: &Path,
    conf_path: &Path,
    count: u32,
) -> Result<()> {
    let mut removed = false;
    for name in fs.read_dir(topic_dir).at(topic_dir)? {
        let path = topic_dir.join(&name);
        if is_partition_name(&name).is_none_or(|n| n < count) || !fs.is_dir(&path).at(&path)? {
            continue;
        }
        if holds_records(fs, &path)? {
            return Err(Error::corrupt(
                &path,
                0,
                format!(
                    "partition directory holds records but {} lists only {count} partitions; \
                     restore topic.conf from a backup, or move the directory away",
                    conf_path.display()
                ),
            ));
        }
        fs.remove_dir_all(&path).at(&path)?;
        removed = true;
    }
    if removed {
        fs.sync_dir(topic_dir).at(topic_dir)?;
    }
    Ok(())
}

/// Whether a partition directory holds records (see [`crate::partition::holds_data`]). An unused
/// partition's logs are empty or preallocated zeros.
fn holds_records(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
    let names = fs.read_dir(dir).at(dir)?;
    crate::partition::holds_data(fs, dir, &names)
}
