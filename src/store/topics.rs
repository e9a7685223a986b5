//! Topics: create (staged, then renamed into place), look up, delete, add partitions, alter
//! the configuration.

use super::open::load_topic;
use super::*;

impl Store {
    /// Create a topic. Every log setting `config` leaves `None` is taken from the store's
    /// options now ([`StoreOptions::resolve`]) and persisted with the topic: later opens with
    /// other options do not change it; [`alter_topic_config`](Self::alter_topic_config) does.
    ///
    /// Crash-safe: the topic is built in a staging directory and renamed into place, so a crash
    /// at any point reopens with the topic complete (empty) or absent.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`] (see [`validate_topic_name`]), [`Error::TopicExists`],
    /// [`Error::InvalidConfig`], [`Error::Closed`], or an I/O error (`AlreadyExists` if a file or
    /// directory that is not a topic has the name: move it away).
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        validate_topic_name(name)?;
        let topic = inner.create_topic_locked(name, config)?;
        inner.notify_watchers();
        Ok(topic)
    }
}

impl StoreInner {
    /// Record that the set of topics changed (see `Store::topics_version`).
    fn bump_topics_version(&self) {
        self.topics_version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Fire every signal registered with [`Store::notify_on_change`].
    pub(super) fn notify_watchers(&self) {
        for n in self.watchers.lock().iter().filter_map(Weak::upgrade) {
            n.notify();
        }
    }

    /// Create a topic; the caller holds the admin lock and checked the name.
    pub(super) fn create_topic_locked(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        self.create_topic_prepared(name, config, &mut |_, _, _| Ok(()))
    }

    /// [`create_topic_locked`](Self::create_topic_locked), calling `prepare` with each
    /// partition's number, its directory in the staging directory (created, empty) and the
    /// topic's resolved config before the partition is first opened there (an import fills it
    /// with segments).
    pub(super) fn create_topic_prepared(
        &self,
        name: &str,
        config: TopicConfig,
        prepare: &mut dyn FnMut(u32, &Path, &LogConfig) -> Result<()>,
    ) -> Result<Topic> {
        let settings = self
            .options
            .topic_settings(config.partitions, self.options.resolve(&config.overrides))?;
        if self.topics.read().contains_key(name) {
            return Err(Error::TopicExists {
                name: name.to_owned(),
            });
        }
        let fs = &*self.env.fs;
        let path = self.dir.join(name);
        let conf_path = path.join(CONFIG_FILE);
        if fs.exists(&conf_path).at(&conf_path)? {
            // A whole topic whose creation failed after its rename into place (the commit
            // point), when the directory sync or the open failed and so did taking it away
            // (a full disk, say): adopt it, durably.
            let topic = load_topic(
                &self.options,
                &self.env,
                name,
                &path,
                self.partitioner.clone(),
            )?;
            fs.sync_dir(&self.dir).at(&self.dir)?;
            self.topics.write().insert(name.to_owned(), topic.clone());
            self.bump_topics_version();
            if topic.config() != *settings.config || topic.partition_count() != settings.partitions
            {
                return Err(Error::TopicExists {
                    name: name.to_owned(),
                });
            }
            return Ok(topic);
        }
        if fs.exists(&path).at(&path)? {
            // Not a topic (open would have loaded it or refused to open): someone else's.
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file or directory that is not a topic has this name in the store \
                     directory; move it away or choose another name",
                ),
            ));
        }
        // Build the whole topic where no open mistakes it for one, then rename it into place.
        let staging = self.staging_dir(CREATING_PREFIX)?;
        let built = (|| {
            fs.create_dir_all(&staging).at(&staging)?;
            for i in 0..settings.partitions {
                let dir = staging.join(i.to_string());
                create_dir_all_durable(fs, &dir).at(&dir)?;
                prepare(i, &dir, &settings.config)?;
                // Closed cleanly, so the open at the final path skips the rescan.
                Partition::open_with_env(dir, (*settings.config).clone(), self.env.clone())?
                    .close()?;
            }
            let conf_path = staging.join(CONFIG_FILE);
            let text = encode_config(settings.partitions, &settings.config);
            write_atomic(fs, &conf_path, text.as_bytes()).at(&conf_path)?;
            fs.rename(&staging, &path).at(&staging)
        })();
        if let Err(e) = built {
            // The next open removes what is left if this fails too.
            let _ = fs.remove_dir_all(&staging);
            return Err(e);
        }
        // The topic exists once the rename is durable.
        let opened = fs.sync_dir(&self.dir).at(&self.dir).and_then(|()| {
            Topic::open(
                name,
                &path,
                settings,
                self.partitioner.clone(),
                &self.env,
                self.options.cleaner_buffer_bytes,
                self.options.progress.clone(),
            )
        });
        match opened {
            Ok(topic) => {
                self.topics.write().insert(name.to_owned(), topic.clone());
                self.bump_topics_version();
                Ok(topic)
            }
            Err(e) => {
                // Take the half-registered topic away again, as a deletion does (the next open
                // finishes it if this fails).
                if let Ok(trash) = self.staging_dir(DELETING_PREFIX) {
                    if fs.rename(&path, &trash).is_ok() {
                        let _ = fs.sync_dir(&self.dir);
                        let _ = fs.remove_dir_all(&trash);
                    }
                }
                Err(e)
            }
        }
    }

    /// A fresh `<prefix><n>` path in the store directory.
    fn staging_dir(&self, prefix: &str) -> Result<PathBuf> {
        loop {
            let n = self.staging_seq.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("{prefix}{n}"));
            if !self.env.fs.exists(&path).at(&path)? {
                return Ok(path);
            }
        }
    }
}

impl Store {
    /// Changes whenever a topic is created, registered or deleted: a [`topic`](Self::topic)
    /// lookup made at version `v` is current while this returns `v` (and the topic's own
    /// settings version has not moved).
    pub(crate) fn topics_version(&self) -> u64 {
        self.inner
            .topics_version
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The topic called `name`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::Closed`].
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.inner.check_open()?;
        if is_internal(name) {
            return Err(Error::UnknownTopic {
                name: name.to_owned(),
            });
        }
        self.inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                name: name.to_owned(),
            })
    }

    /// The topic called `name`, created with `default_partitions` partitions and the store
    /// defaults if it does not exist.
    ///
    /// # Errors
    /// As [`create_topic`](Self::create_topic).
    pub fn topic_or_create(&self, name: &str) -> Result<Topic> {
        match self.topic(name) {
            Err(Error::UnknownTopic { .. }) => {
                let config = TopicConfig::with_partitions(self.inner.options.default_partitions);
                match self.create_topic(name, config) {
                    Err(Error::TopicExists { .. }) => self.topic(name),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// The names of all topics, sorted (internal topics, named `__...`, are not listed).
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .topics
            .read()
            .keys()
            .filter(|n| !is_internal(n))
            .cloned()
            .collect()
    }

    /// Every topic (internal ones included) by name, taken under the topics lock and released:
    /// for walks that do I/O or take partition locks per topic.
    pub(crate) fn every_topic(&self) -> Vec<(String, Topic)> {
        self.inner
            .topics
            .read()
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// Every topic's partitions' [`stats`](crate::Partition::stats), by topic name (internal
    /// topics, such as `__consumer_offsets` where committed offsets live, included), each by
    /// partition number: a plain snapshot to log, export or assert on.
    ///
    /// # Examples
    /// ```
    /// use topiclog::{Record, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// let t = store.create_topic("events", TopicConfig::with_partitions(2))?;
    /// t.send_to(1, Record::new("e"))?;
    /// let stats = store.stats();
    /// assert_eq!(stats["events"][1].records_appended, 1);
    /// assert_eq!(stats["events"][0].end_offset, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> std::collections::BTreeMap<String, Vec<crate::PartitionStats>> {
        self.every_topic()
            .into_iter()
            .map(|(n, t)| (n, t.stats()))
            .collect()
    }

    /// Delete a topic and all its data. Handles to it get [`Error::Closed`] afterwards.
    ///
    /// Crash-safe: the topic directory is first renamed to a `__deleting.<n>` directory (the
    /// topic is gone once that rename is durable), then removed; an interrupted removal is
    /// finished by the next open.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::Closed`]; an I/O error. If the rename fails, nothing
    /// changed and the call can be retried; after it, the topic is gone from this store even if a
    /// later step fails (a failed directory sync means a crash could still bring it back whole).
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        if is_internal(name) || !inner.topics.read().contains_key(name) {
            return Err(Error::UnknownTopic {
                name: name.to_owned(),
            });
        }
        let fs = &*inner.env.fs;
        let path = inner.dir.join(name);
        let trash = inner.staging_dir(DELETING_PREFIX)?;
        fs.rename(&path, &trash).at(&path)?;
        let topic = inner.topics.write().remove(name);
        inner.bump_topics_version();
        inner.notify_watchers();
        if let Some(topic) = topic {
            // Its data is about to go (and its files moved): a failed clean close changes
            // nothing.
            let _ = topic.close();
        }
        fs.sync_dir(&inner.dir).at(&inner.dir)?;
        fs.remove_dir_all(&trash).at(&trash)?;
        fs.sync_dir(&inner.dir).at(&inner.dir)
    }

    /// Grow a topic to `new_count` partitions (never shrink, as in Kafka).
    ///
    /// Keyed records map to `murmur2(key) % partitions`, so after growth a key may map to a
    /// different partition than before (as in Kafka); records already written stay where they are.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `new_count` is not larger than the current count;
    /// [`Error::UnknownTopic`]; an I/O error.
    pub fn add_partitions(&self, name: &str, new_count: u32) -> Result<()> {
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        let topic = self.topic(name)?;
        let current = topic.partition_count();
        if new_count <= current {
            return Err(Error::config(
                "partitions",
                format!("topic {name:?} has {current} partitions; it can only grow"),
            ));
        }
        TopicConfig::with_partitions(new_count).validate()?;
        // New partitions go live only once the config naming them is durable: records sent to
        // them before that would be lost with them if the write failed. Until then they hold no
        // records, which is what lets open remove them after a crash.
        let opened = topic.open_new_partitions(new_count)?;
        let conf_path = topic.dir().join(CONFIG_FILE);
        let text = encode_config(new_count, &topic.config());
        write_atomic(&*inner.env.fs, &conf_path, text.as_bytes()).at(&conf_path)?;
        topic.add_opened_partitions(opened);
        inner.notify_watchers();
        Ok(())
    }

    /// Change a topic's configuration, like Kafka's `incrementalAlterConfigs`: `change` gets the
    /// topic's config as `topic.conf` persists it (its partition count, and every override set to
    /// the value in force) and edits the overrides; one it sets to `None` takes the store's
    /// default of this open ([`StoreOptions::log`]). The result is validated, persisted durably
    /// (`topic.conf` replaced atomically), and only then applied to the running topic: retention,
    /// cleanup and compaction policies from the next maintenance pass; durability, timestamp
    /// type, key requirement and batch size limit from the next append; segment size and age
    /// from the next roll; index settings and preallocation from the next segment. Returns the
    /// new config. It stays in force across reopens, whatever options they pass.
    ///
    /// `change` runs under the store's admin lock: it must not call this store.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use topiclog::{CleanupPolicy, Retention, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("events", TopicConfig::with_partitions(1))?;
    /// let config = store.alter_topic_config("events", |c| {
    ///     c.overrides.retention = Some(Retention::After(Duration::from_secs(24 * 3600)));
    ///     c.overrides.cleanup_policy = Some(CleanupPolicy::CompactDelete);
    /// })?;
    /// assert_eq!(config, store.topic("events")?.config());
    /// assert_eq!(config.cleanup_policy, CleanupPolicy::CompactDelete);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a value out of range or a contradiction, or a changed
    /// `partitions` (grow a topic with [`add_partitions`](Self::add_partitions)): the old config
    /// stays, on disk and live. [`Error::UnknownTopic`] (internal topics included);
    /// [`Error::Closed`]; an I/O error persisting the config: the topic keeps running with the
    /// old config, but the new one may have reached the disk (call again to settle it).
    pub fn alter_topic_config(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicConfig),
    ) -> Result<LogConfig> {
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        let topic = self.topic(name)?;
        let current = topic.config();
        let partitions = topic.partition_count();
        let mut edited = TopicConfig {
            partitions,
            overrides: current.overrides(),
        };
        change(&mut edited);
        if edited.partitions != partitions {
            return Err(Error::config(
                "partitions",
                format!(
                    "alter_topic_config cannot change the partition count of {name:?} \
                     ({partitions} to {}); grow a topic with Store::add_partitions",
                    edited.partitions
                ),
            ));
        }
        let settings = inner
            .options
            .topic_settings(partitions, inner.options.resolve(&edited.overrides))?;
        if *settings.config == current {
            return Ok(current);
        }
        let next = (*settings.config).clone();
        let conf_path = topic.dir().join(CONFIG_FILE);
        let text = encode_config(partitions, &next);
        write_atomic(&*inner.env.fs, &conf_path, text.as_bytes()).at(&conf_path)?;
        topic.apply_settings(settings)?;
        Ok(next)
    }
}
