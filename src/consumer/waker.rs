//! Interrupting a consumer's blocking `poll` from another thread (Kafka's
//! `KafkaConsumer.wakeup()`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::partition::Notify;

/// A handle that interrupts its [`Consumer`](super::Consumer)'s
/// [`poll`](super::Consumer::poll) from any thread: Kafka's `KafkaConsumer.wakeup()`. Get one
/// from [`Consumer::waker`](super::Consumer::waker); it is `Clone + Send + Sync`, while the
/// consumer itself stays on one thread.
///
/// # Examples
/// Stop a consumer that blocks until records arrive, from another thread (a shutdown hook):
/// ```
/// use std::time::Duration;
/// use topiclog::{ConsumerConfig, Error, Store, TopicConfig, TopicPartition};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("orders", TopicConfig::with_partitions(1))?;
/// let mut consumer = store.consumer(ConsumerConfig::default())?;
/// consumer.assign(&[TopicPartition::new("orders", 0)])?;
///
/// let waker = consumer.waker();
/// let shutdown = std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(50));
///     waker.wakeup();
/// });
/// loop {
///     match consumer.poll(Duration::MAX) {
///         Ok(records) => println!("{} records", records.len()),
///         Err(Error::Wakeup) => break, // asked to stop: nothing was lost
///         Err(e) => return Err(e.into()),
///     }
/// }
/// consumer.close()?;
/// shutdown.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConsumerWaker {
    pending: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl ConsumerWaker {
    pub(crate) fn new(pending: Arc<AtomicBool>, notify: Arc<Notify>) -> Self {
        ConsumerWaker { pending, notify }
    }

    /// Make the consumer's `poll` return [`Error::Wakeup`](crate::Error::Wakeup): the poll
    /// blocked now, at once, or else the next one. One `Wakeup` answers any number of calls made
    /// before it; polls after it work as usual. No records are lost: a poll that returns `Wakeup`
    /// returned no records and moved no position (a wakeup that arrives after a poll read records
    /// lets that poll return them, and the next poll returns `Wakeup`).
    pub fn wakeup(&self) {
        // The flag first: the consumer reads the signal's sequence number before it checks the
        // flag, so it either sees the flag or is woken from its wait.
        self.pending.store(true, Ordering::SeqCst);
        self.notify.notify();
    }
}
