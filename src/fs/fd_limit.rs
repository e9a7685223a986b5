//! Descriptor headroom: an open partition holds two descriptors for its whole life (its directory
//! lock and its active segment's `.log`), so a store of 1,000 partitions needs about 2,000, more
//! than the usual soft limit of 1,024 (`ulimit -n`). As the JVM does at startup for every Java
//! program, Kafka included (`-XX:+MaxFDLimit`, on by default), and Go's runtime since 1.19,
//! topiclog raises the process's soft `RLIMIT_NOFILE` toward its hard limit, but only when its own
//! partitions need it: when the descriptors they hold, plus the segment cache's bound and a
//! margin for the application, would pass the soft limit. It never lowers a limit, never goes past
//! the hard limit, and can be turned off ([`set_raise_descriptor_limit`]).
//!
//! The active segment's descriptor cannot be given back while the partition runs: it is written
//! through it, and after a write-back failure only the descriptors open at the time are told
//! (Linux's `errseq`), so a descriptor closed with unsynced writes and reopened could let a sync
//! report success for lost data.
// `getrlimit`/`setrlimit` through libc, each call with its SAFETY comment.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Descriptors topiclog's open partitions hold.
static HELD: AtomicUsize = AtomicUsize::new(0);
static ENABLED: AtomicBool = AtomicBool::new(true);
/// Serializes reading and raising the limit.
static RAISING: Mutex<()> = Mutex::new(());

/// Descriptors left for the application and for topiclog's short-lived ones (metadata files, the
/// segment cache is counted on its own), beyond what partitions hold.
const MARGIN: usize = 256;

/// Whether topiclog may raise the process's soft descriptor limit (`RLIMIT_NOFILE`) when the
/// partitions it opens need more (on by default; see [`raise_descriptor_limit`]). Turn it off if
/// the application manages the limit itself, or starts programs that need a low limit (programs
/// using `select(2)` break with descriptors above 1,023, and children inherit the limit).
pub fn set_raise_descriptor_limit(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether [`set_raise_descriptor_limit`] allows raising the limit.
///
/// When it does, opening a partition (directly, or in a store) raises the soft `RLIMIT_NOFILE`
/// when the descriptors open partitions hold (two each), plus the segment cache's bound
/// ([`max_open_segments`](crate::max_open_segments)) and a margin of 256 for the application,
/// would pass it: to twice that need, at most the hard limit. So a store of 1,000 partitions
/// opens under `ulimit -n 1024` wherever the hard limit allows 2,300 descriptors (systemd's
/// default hard limit is 524,288).
pub fn raise_descriptor_limit() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Descriptors held by one open partition, given back when dropped.
#[derive(Debug)]
pub(crate) struct FdReservation(usize);

impl FdReservation {
    /// Count `n` more descriptors held for a partition's life, raising the soft limit first if
    /// they would not fit (see the module's documentation). Never fails: when the limit cannot be
    /// raised, opening the files reports `EMFILE` as it would have.
    pub(crate) fn new(n: usize) -> FdReservation {
        let held = HELD.fetch_add(n, Ordering::Relaxed) + n;
        let need = held + crate::segment::max_open_segments() + MARGIN;
        if raise_descriptor_limit() {
            // A `getrlimit` per partition opened (not cached: the application may lower it).
            ensure_soft_limit(need as u64);
        }
        FdReservation(n)
    }
}

impl Drop for FdReservation {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// Raise the soft `RLIMIT_NOFILE` to twice `need` (at most the hard limit) if it is below `need`.
#[cfg(unix)]
#[allow(
    clippy::unnecessary_cast,
    reason = "rlim_t is u64 on 64-bit Linux and macOS, not on every Unix"
)]
fn ensure_soft_limit(need: u64) {
    let _serial = RAISING.lock();
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid `rlimit` for the call to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return;
    }
    let (soft, hard) = (r.rlim_cur as u64, r.rlim_max as u64);
    if soft >= need || hard <= soft {
        return;
    }
    r.rlim_cur = need.saturating_mul(2).min(hard) as libc::rlim_t;
    // SAFETY: `r` is a valid `rlimit` whose soft limit does not exceed its (unchanged) hard one.
    // A refusal leaves the limit as it was: opening files then reports `EMFILE`.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
}

/// Without `RLIMIT_NOFILE` there is nothing to raise (the crate builds on Unix only; this keeps a
/// non-Unix build at the one `compile_error!` in `lib.rs`).
#[cfg(not(unix))]
fn ensure_soft_limit(_need: u64) {}

/// The process's soft and hard descriptor limits (for tests); `None` where there are none.
#[cfg(not(unix))]
#[doc(hidden)]
pub fn descriptor_limits() -> Option<(u64, u64)> {
    None
}

/// The process's soft and hard descriptor limits (for tests).
#[cfg(unix)]
#[doc(hidden)]
#[allow(
    clippy::unnecessary_cast,
    reason = "rlim_t is u64 on 64-bit Linux and macOS, not on every Unix"
)]
pub fn descriptor_limits() -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid `rlimit` for the call to fill in.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0)
        .then_some((r.rlim_cur as u64, r.rlim_max as u64))
}
