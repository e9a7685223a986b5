//! Producer id allocation (Kafka's `ProducerIdManager`): every idempotent producer of a store
//! gets an id no producer of that store ever had. The counter is a store file
//! (`crate::store`'s `__producer_ids`), advanced durably before an id is handed out.

use crate::error::{Error, Result};
use crate::store::Store;

use super::Broker;

impl Broker {
    /// A fresh producer id: the persisted counter is advanced (durably) before the id is used.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming a damaged counter file, or when ids are exhausted; I/O errors.
    pub(crate) fn next_producer_id(&self, store: &Store) -> Result<i64> {
        let _allocating = self.producer_ids.lock();
        let next = store.producer_id_counter()?;
        // Never hand out an id some partition still remembers, whatever the counter says (a
        // lost counter file would otherwise restart at 0, and a new producer's first batch would
        // be "recognised" as the old producer's and acknowledged at its offset, unwritten).
        let next = match store.max_producer_id_in_use() {
            Some(id) if id >= next => {
                id.checked_add(1).filter(|n| *n < i64::MAX).ok_or_else(|| {
                    Error::corrupt(
                        store.producer_id_counter_path(),
                        0,
                        "producer ids are exhausted",
                    )
                })?
            }
            _ => next,
        };
        store.set_producer_id_counter(next + 1)?;
        Ok(next)
    }
}
