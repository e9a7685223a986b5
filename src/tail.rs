#![allow(unsafe_code)]
// shared memory with other processes: maps, atomics on them, futex calls; each block has a SAFETY note
//! The tail page: what a partition's writer tells read-only processes (see
//! [`ReadOnlyStore`](crate::ReadOnlyStore)) about its log, through one page of shared memory.
//!
//! The writer maps `<partition>/.tail` (4 KiB) shared and writable, and keeps in it the log's
//! visible end (what readers may read: visible by the writer's rule *and* written to the file, so
//! never a record still in the write buffer, nor under `Durability::Always` one whose sync has not
//! succeeded), its start offset, and a sequence number that is odd while a truncation (or an
//! in-place recovery) rewrites files below the end. Readers map it read-only: they never write a
//! byte to the store, so they cannot slow the writer or make it fail.
//!
//! Updates are plain stores to memory (no system call), except the wake-up: each time the end
//! moves, the writer bumps a 32-bit counter and, on Linux, wakes the processes waiting on it with
//! `futex(FUTEX_WAKE)` — at once while its last call woke a reader, else at most once a
//! millisecond, so a writer nobody follows makes almost no extra system calls; a waiting reader
//! looks again every 2 ms at the latest, which bounds the delay when a wake-up was skipped.
//! Elsewhere readers poll the page every 2 ms.
//!
//! The file is never truncated (so a reader's map never loses its page, SIGBUS), and its content is
//! advisory: the writer rewrites every field when it opens, before anything depends on it. A
//! damaged page misleads only readers, and only until the writer's next open; a reader checks the
//! magic and falls back to the files when there is no live writer.
//!
//! Layout (native-endian 64-bit words; the page is written and read on one machine):
//!
//! | word | field |
//! |---|---|
//! | 0 | magic `TLTAIL01` |
//! | 1 | writer session (changes at each writer open) |
//! | 2 | sequence: odd while files below the end are being rewritten |
//! | 3 | visible end offset |
//! | 4 | log start offset |
//! | 5 | layout generation: bumped when segment files are created, deleted or replaced |
//! | 6 | state: 1 open by a writer, 2 closed cleanly |
//! | 8 | (low 32 bits at byte 64) wake-up counter, a futex word |

use std::path::Path;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The tail page's file name, in the partition directory.
pub(crate) const TAIL_FILE: &str = ".tail";
/// A value no other writer open (in any process) is likely to have picked: the time in
/// nanoseconds mixed with the process id.
pub(crate) fn new_session() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

/// The page's length; the file is never shorter once written, and never shrunk.
pub(crate) const PAGE_LEN: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"TLTAIL01");

const W_MAGIC: usize = 0;
const W_SESSION: usize = 1;
const W_SEQ: usize = 2;
const W_END: usize = 3;
const W_START: usize = 4;
const W_LAYOUT: usize = 5;
const W_STATE: usize = 6;
/// Byte offset of the 32-bit wake-up counter.
const WAKE_AT: usize = 64;

/// The writer has the partition open.
pub(crate) const STATE_OPEN: u64 = 1;
/// The writer closed the partition cleanly.
pub(crate) const STATE_CLOSED: u64 = 2;

/// A page of memory shared with other processes through a file: what
/// [`FileSystem::map_shared_page`](crate::fs::FileSystem::map_shared_page) returns (made by
/// [`StdFs`](crate::fs::StdFs) only; a file system wrapping it forwards the call).
pub struct SharedPage {
    map: memmap2::MmapMut,
}

impl std::fmt::Debug for SharedPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPage").finish_non_exhaustive()
    }
}

impl SharedPage {
    /// Map the first [`PAGE_LEN`] bytes of `file` shared and writable. The file must be at least
    /// that long and never be shrunk while mapped.
    pub(crate) fn map(file: &std::fs::File) -> std::io::Result<SharedPage> {
        // SAFETY: a shared writable mapping of a file topiclog never shrinks (the writer only
        // grows it to PAGE_LEN before mapping); other processes map it read-only. All accesses go
        // through atomics (see `word`), so concurrent access from other processes is not a data
        // race on the Rust side.
        let map = unsafe { memmap2::MmapOptions::new().len(PAGE_LEN).map_mut(file)? };
        Ok(SharedPage { map })
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i * 8 + 8 <= PAGE_LEN);
        // SAFETY: the map is page-aligned and PAGE_LEN long, so `i * 8` is an 8-aligned offset
        // inside it; the memory lives as long as `self`, and is only ever accessed atomically.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(i * 8) as *mut u64) }
    }

    fn wake_word(&self) -> &AtomicU32 {
        // SAFETY: as in `word`: a 4-aligned offset inside the page, accessed only atomically.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(WAKE_AT) as *mut u32) }
    }
}

/// How often, at most, the writer makes the wake-up system call while its last one woke nobody.
/// A reader that started waiting just after such a call sees the end move at its next look
/// ([`READER_NAP`]) at the latest.
const IDLE_WAKE_INTERVAL: Duration = Duration::from_millis(1);
/// The longest a reader sleeps on the wake-up word before it looks again.
pub(crate) const READER_NAP: Duration = Duration::from_millis(2);

/// The writer's side of a partition's tail page.
#[derive(Debug)]
pub(crate) struct TailWriter {
    page: SharedPage,
    /// Serialises computing and storing the end, so a truncation's exact store is never
    /// overtaken by a publication computed before it.
    update: Mutex<()>,
    /// When the last wake-up call was made (nanoseconds since `epoch`) and whether it woke a
    /// reader: while readers wait, every publication wakes them at once; while none does, a
    /// publication costs no system call but one per [`IDLE_WAKE_INTERVAL`].
    epoch: Instant,
    last_wake_ns: AtomicU64,
    woke_someone: AtomicBool,
}

impl TailWriter {
    pub(crate) fn new(page: SharedPage) -> TailWriter {
        TailWriter {
            page,
            update: Mutex::new(()),
            epoch: Instant::now(),
            last_wake_ns: AtomicU64::new(0),
            woke_someone: AtomicBool::new(true),
        }
    }

    /// Files below the end are about to be rewritten (recovery at open, truncation, in-place
    /// recovery): readers wait, or retry what they read meanwhile.
    pub(crate) fn begin_change(&self) {
        let _g = self.update.lock();
        let seq = self.page.word(W_SEQ);
        if seq.load(Ordering::SeqCst).is_multiple_of(2) {
            seq.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The rewrite is done: the log now spans `start..end`.
    pub(crate) fn end_change(&self, start: u64, end: u64) {
        let _g = self.update.lock();
        self.page.word(W_END).store(end, Ordering::SeqCst);
        self.page.word(W_START).store(start, Ordering::SeqCst);
        self.page.word(W_LAYOUT).fetch_add(1, Ordering::SeqCst);
        let seq = self.page.word(W_SEQ);
        if !seq.load(Ordering::SeqCst).is_multiple_of(2) {
            seq.fetch_add(1, Ordering::SeqCst);
        }
        self.wake();
    }

    /// A writer opened the log (after its recovery, inside a change begun before it).
    pub(crate) fn opened(&self, session: u64, start: u64, end: u64) {
        self.page.word(W_MAGIC).store(MAGIC, Ordering::SeqCst);
        self.page.word(W_SESSION).store(session, Ordering::SeqCst);
        self.page.word(W_STATE).store(STATE_OPEN, Ordering::SeqCst);
        self.end_change(start, end);
    }

    /// Offsets below `end` may be read by other processes, if the log does not end below it
    /// (`limit`, read under the update lock, so a truncation that finished first is respected).
    pub(crate) fn publish(&self, end: u64, limit: impl FnOnce() -> u64) {
        let _g = self.update.lock();
        let end = end.min(limit());
        if self.page.word(W_END).fetch_max(end, Ordering::SeqCst) < end {
            self.wake();
        }
    }

    /// The log start moved up (retention, `delete_records`).
    pub(crate) fn set_start(&self, start: u64) {
        self.page.word(W_START).fetch_max(start, Ordering::SeqCst);
    }

    /// Segment files were created, deleted or replaced.
    pub(crate) fn layout_changed(&self) {
        self.page.word(W_LAYOUT).fetch_add(1, Ordering::SeqCst);
    }

    /// The writer closed the log: cleanly at `end`, or (`None`) leaving the end it published.
    pub(crate) fn closed(&self, end: Option<u64>) {
        let _g = self.update.lock();
        if let Some(end) = end {
            self.page.word(W_END).store(end, Ordering::SeqCst);
        }
        self.page
            .word(W_STATE)
            .store(STATE_CLOSED, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        let word = self.page.wake_word();
        word.fetch_add(1, Ordering::SeqCst);
        let now = self.epoch.elapsed().as_nanos() as u64;
        let last = self.last_wake_ns.load(Ordering::Relaxed);
        if self.woke_someone.load(Ordering::Relaxed)
            || now.saturating_sub(last) >= IDLE_WAKE_INTERVAL.as_nanos() as u64
        {
            self.last_wake_ns.store(now, Ordering::Relaxed);
            let woken = futex::wake(word);
            self.woke_someone.store(woken > 0, Ordering::Relaxed);
        }
    }
}

/// What a reader saw in a tail page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TailState {
    pub session: u64,
    pub seq: u64,
    pub end: u64,
    pub start: u64,
    pub layout: u64,
    pub state: u64,
}

impl TailState {
    /// A rewrite of files below the end is under way.
    pub(crate) fn changing(&self) -> bool {
        !self.seq.is_multiple_of(2)
    }
}

/// A reader's read-only map of a partition's tail page.
pub(crate) struct TailReader {
    map: memmap2::Mmap,
}

impl std::fmt::Debug for TailReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailReader").finish_non_exhaustive()
    }
}

impl TailReader {
    /// Map `dir`'s tail page read-only: `None` if there is none yet (no writer of this version
    /// ever opened the partition), or it is too short or not a tail page.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Option<TailReader>> {
        let path = dir.join(TAIL_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() < PAGE_LEN as u64 {
            return Ok(None);
        }
        // SAFETY: a read-only shared map of PAGE_LEN bytes of a file at least that long, which
        // its writer never shrinks; the writer changes it concurrently, so it is only read
        // through volatile loads (see `load`), never through references to its bytes.
        let map = unsafe { memmap2::MmapOptions::new().len(PAGE_LEN).map(&file)? };
        let reader = TailReader { map };
        Ok((reader.load(W_MAGIC) == MAGIC).then_some(reader))
    }

    fn load(&self, i: usize) -> u64 {
        assert!(i * 8 + 8 <= PAGE_LEN);
        // SAFETY: an 8-aligned word inside the live, page-aligned map. Volatile: another process
        // changes it; each load is a single aligned 64-bit load, which the platforms topiclog
        // supports perform atomically.
        let v = unsafe { std::ptr::read_volatile(self.map.as_ptr().add(i * 8) as *const u64) };
        fence(Ordering::Acquire);
        v
    }

    /// The wake-up counter (to wait on with [`wait_changed`](Self::wait_changed)).
    pub(crate) fn wake_count(&self) -> u32 {
        fence(Ordering::Acquire);
        // SAFETY: a 4-aligned word inside the live map, read volatile as in `load`.
        let v = unsafe { std::ptr::read_volatile(self.map.as_ptr().add(WAKE_AT) as *const u32) };
        fence(Ordering::Acquire);
        v
    }

    /// A consistent look at the page: the sequence is read first and last, and the fields again
    /// if it moved meanwhile.
    pub(crate) fn state(&self) -> TailState {
        loop {
            let seq = self.load(W_SEQ);
            let s = TailState {
                session: self.load(W_SESSION),
                seq,
                end: self.load(W_END),
                start: self.load(W_START),
                layout: self.load(W_LAYOUT),
                state: self.load(W_STATE),
            };
            if self.load(W_SEQ) == seq {
                return s;
            }
        }
    }

    /// Wait until the wake-up counter differs from `seen`, or `timeout` passes, or at most
    /// [`READER_NAP`] (on Linux with `futex(FUTEX_WAIT)`, elsewhere by polling). May return
    /// early; the caller looks at the page again.
    pub(crate) fn wait_changed(&self, seen: u32, timeout: Duration) {
        if self.wake_count() != seen {
            return;
        }
        // SAFETY: as in `wake_count`; the futex call only reads the word.
        let ptr = unsafe { self.map.as_ptr().add(WAKE_AT) } as *const u32;
        futex::wait(ptr, seen, timeout.min(READER_NAP));
    }
}

#[cfg(target_os = "linux")]
mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Wake every process waiting on `word` (a word of a shared file mapping, so the kernel keys
    /// the futex by file and offset, and waiters in other processes are found): how many woke.
    pub(super) fn wake(word: &AtomicU32) -> i64 {
        // SAFETY: FUTEX_WAKE on a valid, aligned word of a live mapping; it reads nothing and
        // writes nothing in user memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
            ) as i64
        }
    }

    /// Sleep while `*word == seen`, at most `timeout`.
    pub(super) fn wait(word: *const u32, seen: u32, timeout: Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: FUTEX_WAIT on a valid, aligned word of a live read-only shared mapping (the
        // kernel only reads it) with a valid relative timeout; it returns at once if the word no
        // longer holds `seen`, and on a wake-up, a signal or the timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word,
                libc::FUTEX_WAIT,
                seen,
                &ts as *const libc::timespec,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Nothing to do: readers poll.
    pub(super) fn wake(_word: &AtomicU32) -> i64 {
        0
    }

    /// Poll: sleep for the shorter of 2 ms and `timeout`.
    pub(super) fn wait(_word: *const u32, _seen: u32, timeout: Duration) {
        std::thread::sleep(timeout.min(Duration::from_millis(2)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(dir: &Path) -> TailWriter {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(TAIL_FILE))
            .unwrap();
        file.set_len(PAGE_LEN as u64).unwrap();
        TailWriter::new(SharedPage::map(&file).unwrap())
    }

    #[test]
    fn a_reader_sees_what_the_writer_publishes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(TailReader::open(dir.path()).unwrap().is_none());
        let w = page(dir.path());
        // Not a tail page until the writer opened.
        assert!(TailReader::open(dir.path()).unwrap().is_none());
        w.begin_change();
        w.opened(7, 0, 10);
        let r = TailReader::open(dir.path()).unwrap().unwrap();
        let s = r.state();
        assert_eq!((s.session, s.start, s.end, s.state), (7, 0, 10, STATE_OPEN));
        assert!(!s.changing());
        let seen = r.wake_count();
        w.publish(15, || 12);
        assert_eq!(r.state().end, 12, "never past the limit");
        assert_ne!(r.wake_count(), seen);
        w.publish(11, || u64::MAX);
        assert_eq!(r.state().end, 12, "the end only moves up outside a change");
        w.begin_change();
        assert!(r.state().changing());
        w.end_change(3, 5);
        let s = r.state();
        assert!(!s.changing());
        assert_eq!((s.start, s.end), (3, 5));
        w.closed(Some(5));
        assert_eq!(r.state().state, STATE_CLOSED);
    }

    #[test]
    fn a_waiter_wakes_when_the_writer_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let w = page(dir.path());
        w.begin_change();
        w.opened(1, 0, 0);
        let r = TailReader::open(dir.path()).unwrap().unwrap();
        let seen = r.wake_count();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            w.publish(1, || u64::MAX);
            w
        });
        let started = std::time::Instant::now();
        while r.state().end == 0 {
            r.wait_changed(seen, std::time::Duration::from_secs(10));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        drop(t.join().unwrap());
    }
}
