//! What the layers above the storage get from the store: the broker (`crate::broker`: group
//! coordinator, committed offsets, producer ids), and the consumers and producers built on it.
//!
//! The store never calls up. It keeps the upper layers' state for its life without knowing its
//! type ([`Store::extension`]), creates and finds internal topics for them, fires their close
//! signals, and lends them its clock; they reach it through a [`Store`] handle, or a
//! [`WeakStore`] where holding the store open would be a cycle.

use std::any::Any;
use std::sync::{Arc, Weak};

use crate::clock::Clock;
use crate::error::Result;
use crate::partition::Notify;
use crate::topic::{Partitioner, Topic, TopicConfig};

use super::{is_internal, Store, StoreInner};

/// A reference to a store that does not keep it open (for state the store itself holds).
#[derive(Clone, Debug)]
pub(crate) struct WeakStore(Weak<StoreInner>);

impl WeakStore {
    /// The partition count of user topic `name`, while the store and the topic exist.
    pub(crate) fn partition_count(&self, name: &str) -> Option<u32> {
        if is_internal(name) {
            return None;
        }
        let inner = self.0.upgrade()?;
        let topics = inner.topics.read();
        topics.get(name).map(Topic::partition_count)
    }
}

impl Store {
    /// The state of type `T` an upper layer keeps with this store, made by `init` on first use
    /// and kept until the store is dropped. `init` must not call `extension`. It must not hold
    /// a [`Store`] either (that would keep the store from closing when its users drop it); a
    /// [`WeakStore`] is fine.
    pub(crate) fn extension<T: Any + Send + Sync>(&self, init: impl FnOnce(&Store) -> T) -> Arc<T> {
        let mut extensions = self.inner.extensions.lock();
        if let Some(t) = extensions
            .iter()
            .find_map(|e| Arc::clone(e).downcast::<T>().ok())
        {
            return t;
        }
        let t = Arc::new(init(self));
        extensions.push(t.clone());
        t
    }

    /// A reference that does not keep the store open.
    pub(crate) fn downgrade(&self) -> WeakStore {
        WeakStore(Arc::downgrade(&self.inner.core))
    }

    /// [`Error::Closed`](crate::Error::Closed) (naming the store directory) once the store is
    /// closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        self.inner.check_open()
    }

    /// Fire `notify` when the store closes or a topic is created, deleted or grown (until
    /// `notify` is dropped).
    pub(crate) fn notify_on_change(&self, notify: &Arc<Notify>) {
        let mut watchers = self.inner.watchers.lock();
        watchers.retain(|n| n.strong_count() > 0);
        watchers.push(Arc::downgrade(notify));
    }

    /// The partitioner for records sent without an explicit partition.
    pub(crate) fn partitioner(&self) -> Arc<dyn Partitioner> {
        self.inner.partitioner.clone()
    }

    /// The store's clock.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.env.clock
    }

    /// Now, in ms since the Unix epoch, by the store's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.env.clock.now_ms()
    }

    /// The internal topic `name` (named `__...`), if it exists.
    pub(crate) fn internal_topic(&self, name: &str) -> Option<Topic> {
        debug_assert!(is_internal(name));
        self.inner.topics.read().get(name).cloned()
    }

    /// The internal topic `name`, created with `config` if it does not exist.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed); as [`create_topic`](Self::create_topic).
    pub(crate) fn internal_topic_or_create(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<Topic> {
        debug_assert!(is_internal(name));
        let inner = &*self.inner;
        let _admin = inner.admin.lock();
        inner.check_open()?;
        let existing = inner.topics.read().get(name).cloned();
        match existing {
            Some(t) => Ok(t),
            None => inner.create_topic_locked(name, config),
        }
    }
}
