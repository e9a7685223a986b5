//! The environment a log runs in: its file system and its clock, passed beside its config.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::fs::{FileSystem, StdFs};

/// Where a log keeps its files and how it tells the time: not settings of the log, so they travel
/// beside its [`LogConfig`](crate::LogConfig) (or the store's options) instead of inside them.
/// The default is the real file system and the system clock; tests pass a simulated file system
/// ([`SimFs`](crate::fs::SimFs)) and a [`ManualClock`](crate::ManualClock).
///
/// Cheap to clone (two `Arc`s). A [`Store`](crate::Store) holds one and hands it to every
/// partition it opens.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use topiclog::fs::SimFs;
/// use topiclog::{Env, LogConfig, ManualClock, Partition, Record};
/// let clock = ManualClock::new(1_700_000_000_000);
/// let env = Env {
///     fs: Arc::new(SimFs::new(7)),
///     clock: Arc::new(clock.clone()),
/// };
/// let log = Partition::open_with_env("/sim/log", LogConfig::default(), env)?;
/// log.append(Record::new("hello"))?;
/// assert_eq!(log.read(0, 1 << 20)?.records().next().unwrap().timestamp(), 1_700_000_000_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Env {
    /// The file system every file goes through. Default the real one, [`StdFs`].
    pub fs: Arc<dyn FileSystem>,
    /// The clock for timestamps, time-based rolling, retention and expiry. Default
    /// [`SystemClock`].
    pub clock: Arc<dyn Clock>,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            fs: Arc::new(StdFs),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Env {
    /// The file system `fs` with the system clock.
    pub fn with_fs(fs: Arc<dyn FileSystem>) -> Env {
        Env {
            fs,
            ..Env::default()
        }
    }
}
