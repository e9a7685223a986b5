//! A file-system wrapper that holds, delays and counts the syncs of one topic's segment logs
//! (`<store>/<topic>/<partition>/<base>.log`), to catch a commit in the middle of its fsync.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use topiclog::fs::{File, FileSystem, OpenMode};

/// The longest a held sync waits for [`SyncGate::release`]: a test that never releases (because
/// an assertion failed first, or the code under test blocks on the held sync) still ends.
pub const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// Control and counters shared by a [`GatedFs`] and the test.
#[derive(Default)]
pub struct SyncGate {
    state: Mutex<Hold>,
    changed: Condvar,
    writes: AtomicU64,
    syncs: AtomicU64,
    /// Called before every sync of a gated file; returns how long that sync sleeps first.
    delay: Mutex<Option<Box<dyn FnMut() -> Duration + Send>>>,
}

#[derive(Default)]
struct Hold {
    /// The next gated sync is to be held.
    armed: bool,
    /// A sync is being held.
    holding: bool,
}

impl SyncGate {
    pub fn new() -> Arc<SyncGate> {
        Arc::new(SyncGate::default())
    }

    /// Hold the next sync of a gated file (before it reaches the inner file system) until
    /// [`release`](Self::release), or [`HOLD_LIMIT`].
    pub fn hold_next(&self) {
        self.state.lock().armed = true;
    }

    /// Wait until a sync is held; whether one is, after at most `timeout`.
    pub fn wait_until_held(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock();
        while !st.holding {
            if self.changed.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        st.holding
    }

    /// Whether a sync is being held now.
    pub fn holding(&self) -> bool {
        self.state.lock().holding
    }

    /// Let the held sync go (and disarm).
    pub fn release(&self) {
        let mut st = self.state.lock();
        st.armed = false;
        st.holding = false;
        self.changed.notify_all();
    }

    /// Make every gated sync sleep for what `delay` returns first.
    pub fn set_delay(&self, delay: impl FnMut() -> Duration + Send + 'static) {
        *self.delay.lock() = Some(Box::new(delay));
    }

    /// Writes to gated files so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Syncs of gated files so far (counted when they reach the inner file system).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Wait until [`writes`](Self::writes) reaches `n`; whether it did within `timeout`.
    pub fn wait_for_writes(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.writes() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    fn before_sync(&self) {
        let pause = self.delay.lock().as_mut().map(|d| d());
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
        let mut st = self.state.lock();
        if st.armed {
            st.armed = false;
            st.holding = true;
            self.changed.notify_all();
            let deadline = Instant::now() + HOLD_LIMIT;
            while st.holding {
                if self.changed.wait_until(&mut st, deadline).timed_out() {
                    st.holding = false;
                    self.changed.notify_all();
                }
            }
        }
        drop(st);
        self.syncs.fetch_add(1, Ordering::SeqCst);
    }
}

/// Which files a [`GatedFs`] puts under its gate.
type Gated = Box<dyn Fn(&Path) -> bool + Send + Sync>;

/// `inner`, with some files' syncs under `gate`.
pub struct GatedFs {
    inner: Arc<dyn FileSystem>,
    gated: Gated,
    gate: Arc<SyncGate>,
}

impl GatedFs {
    /// The `.log` files of `topic`'s partitions under `gate`.
    pub fn new(inner: Arc<dyn FileSystem>, topic: &str, gate: Arc<SyncGate>) -> GatedFs {
        let topic = topic.to_owned();
        Self::files(
            inner,
            move |path| {
                path.extension().is_some_and(|e| e == "log")
                    && path
                        .parent()
                        .and_then(Path::parent)
                        .and_then(Path::file_name)
                        .is_some_and(|t| t == topic.as_str())
            },
            gate,
        )
    }

    /// The files for which `gated` holds under `gate`.
    pub fn files(
        inner: Arc<dyn FileSystem>,
        gated: impl Fn(&Path) -> bool + Send + Sync + 'static,
        gate: Arc<SyncGate>,
    ) -> GatedFs {
        GatedFs {
            inner,
            gated: Box::new(gated),
            gate,
        }
    }

    fn gated(&self, path: &Path) -> bool {
        (self.gated)(path)
    }
}

impl std::fmt::Debug for GatedFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatedFs")
            .field("inner", &self.inner)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SyncGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncGate")
            .field("writes", &self.writes())
            .field("syncs", &self.syncs())
            .finish()
    }
}

#[derive(Debug)]
struct GatedFile {
    inner: Arc<dyn File>,
    gate: Option<Arc<SyncGate>>,
}

impl File for GatedFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        if let Some(g) = &self.gate {
            g.writes.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.write_all_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn modified_ms(&self) -> io::Result<Option<i64>> {
        self.inner.modified_ms()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if let Some(g) = &self.gate {
            g.before_sync();
        }
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        if let Some(g) = &self.gate {
            g.before_sync();
        }
        self.inner.sync_all()
    }
    fn map_readonly(&self, len: u64) -> io::Result<Bytes> {
        self.inner.map_readonly(len)
    }
    fn map_growing(&self, len: u64) -> io::Result<Option<Bytes>> {
        self.inner.map_growing(len)
    }
}

impl FileSystem for GatedFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        Ok(Arc::new(GatedFile {
            inner: self.inner.open(path, mode)?,
            gate: self.gated(path).then(|| self.gate.clone()),
        }))
    }
    crate::forward_to_inner_fs!();
}
