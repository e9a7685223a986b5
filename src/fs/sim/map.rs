//! Real shared maps for [`SimFs`](super::SimFs) files, for
//! [`SimFs::with_mapped_reads`](super::SimFs::with_mapped_reads).
//!
//! Why a real map: `Bytes` is immutable, so a map that follows later writes to its file (what
//! [`File::map_growing`](super::File::map_growing) promises, and what the segment code relies on
//! for the active segment) cannot be built from the simulator's in-memory vectors without
//! `unsafe`; and once `unsafe` is needed, the kernel's own shared mapping is both the simplest and
//! the most faithful model. A mapped `SimFs` file therefore gets a *mirror*: a private file (on
//! tmpfs where possible), unlinked as soon as it is created, that holds the simulated file's
//! current bytes and is kept equal to them by every later write and length change. Maps are
//! `memmap2` shared maps of the mirror, exactly as [`StdFs`](super::StdFs) maps real files: they
//! follow writes, they may extend past the end of the file, and reading a page wholly past the end
//! raises SIGBUS.
//!
//! On top of that, every map is tracked (while any `Bytes` slice of it is alive) so that a shrink
//! the maps' contracts forbid panics at the shrink, naming the file, instead of passing unnoticed
//! when no read happens to touch the cut pages:
//! - below the length of a live [`map_readonly`](super::File::map_readonly) map;
//! - below the bytes written to the file while it has a live
//!   [`map_growing`](super::File::map_growing) map (bytes a reader of the map may still read;
//!   cutting a never-written, preallocated tail is allowed, as sealing a segment does).
//!
//! The mirror lives only while the file has live maps; a file that is no longer mapped drops it
//! (the next map makes a new one), so open mirror files stay bounded by the files mapped at once.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::io;
#[cfg(unix)]
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;

const PAGE: usize = 4096;

/// Where mirrors are made: tmpfs (`/dev/shm`) where it is writable, else the temp directory.
/// Tests make and unlink thousands of mirrors; on a disk file system (ext4) each create then pays
/// for a search among recently deleted inodes, which made a crash test three times slower.
fn mirror_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let probe = shm.join(format!("topiclog-simfs-probe-{}", std::process::id()));
        let writable = private(OpenOptions::new().write(true).create(true).truncate(true))
            .open(&probe)
            .is_ok();
        let _ = std::fs::remove_file(&probe);
        if writable {
            shm
        } else {
            std::env::temp_dir()
        }
    })
}

/// Which kind of map a [`Lease`] stands for, with what its contract protects.
#[derive(Clone, Copy, Debug)]
pub(super) enum MapKind {
    /// [`File::map_readonly`](super::File::map_readonly) of the first `len` bytes: the file must
    /// not shrink below `len`.
    ReadOnly {
        /// The mapped length.
        len: u64,
    },
    /// [`File::map_growing`](super::File::map_growing): the file must not shrink below bytes that
    /// were written to it.
    Growing,
}

/// One map handed out, alive while any `Bytes` slice of it is.
#[derive(Debug)]
struct Lease {
    alive: Weak<()>,
    kind: MapKind,
}

/// The real file standing in for a mapped `SimFs` file's pages.
#[derive(Debug)]
pub(super) struct Mirror {
    file: std::fs::File,
    leases: Vec<Lease>,
}

/// A map of a mirror, the owner of the `Bytes` handed out; keeps its lease alive.
struct MirrorMap {
    map: memmap2::Mmap,
    _alive: Arc<()>,
}

impl AsRef<[u8]> for MirrorMap {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

/// Owner-only permissions where the platform has them (the crate builds on Unix only; the
/// `cfg`s keep a non-Unix build at the one `compile_error!` in `lib.rs`).
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    options.mode(0o600);
    options
}

/// Positional write to a host file.
#[cfg(unix)]
fn write_all_at(file: &std::fs::File, buf: &[u8], pos: u64) -> io::Result<()> {
    file.write_all_at(buf, pos)
}

#[cfg(not(unix))]
fn write_all_at(_: &std::fs::File, _: &[u8], _: u64) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

impl Mirror {
    /// A mirror holding `contents`: a new file in [`mirror_dir`], unlinked at once (so no other
    /// process can open it by name, and nothing is left behind), written with `contents`.
    pub(super) fn create(contents: &[u8]) -> io::Result<Mirror> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = mirror_dir();
        let file = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("topiclog-simfs-map-{}-{n}", std::process::id()));
            match private(OpenOptions::new().read(true).write(true).create_new(true)).open(&path) {
                Ok(file) => {
                    std::fs::remove_file(&path)?;
                    break file;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        };
        file.set_len(contents.len() as u64)?;
        // Only the pages holding data: a preallocated file is mostly zeros, which the length
        // already gives (sparsely).
        for (i, page) in contents.chunks(PAGE).enumerate() {
            if page.iter().any(|&b| b != 0) {
                write_all_at(&file, page, (i * PAGE) as u64)?;
            }
        }
        Ok(Mirror {
            file,
            leases: Vec::new(),
        })
    }

    /// Forget the maps that are gone; whether any is left.
    pub(super) fn is_mapped(&mut self) -> bool {
        self.leases.retain(|l| l.alive.strong_count() > 0);
        !self.leases.is_empty()
    }

    /// A shared, read-only map of the mirror's first `len` bytes (`len` may exceed the file).
    pub(super) fn map(&mut self, len: u64, kind: MapKind) -> io::Result<Bytes> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "map larger than memory"))?;
        // SAFETY: the map is read-only and shared, over a file that only this `SimFs` can reach
        // (created `create_new` with mode 0600 and unlinked at once) and writes only through
        // `pwrite`/`ftruncate` (`write_at`, `set_len`), never through a pointer into any map, as
        // `StdFs` maps real files. The callers' contracts (`File::map_readonly`,
        // `File::map_growing`) are those of `StdFs`'s maps, and `check_shrink` panics at any
        // shrink that breaks them while the map is alive, before it happens; a caller that reads
        // a page wholly past the end of the file anyway gets SIGBUS, as it would on a real file
        // system, which stops the process rather than letting it read undefined bytes.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file)? };
        let alive = Arc::new(());
        self.leases.push(Lease {
            alive: Arc::downgrade(&alive),
            kind,
        });
        Ok(Bytes::from_owner(MirrorMap { map, _alive: alive }))
    }

    /// Write `buf` at `pos`, as the simulated file was. A failure here is the host's (the temp
    /// directory), not a simulated one; the maps could no longer show the file's bytes, so it
    /// panics rather than let a test go on reading something else.
    pub(super) fn write_at(&self, buf: &[u8], pos: u64, path: &Path) {
        if let Err(e) = write_all_at(&self.file, buf, pos) {
            panic!(
                "SimFs mapped reads: cannot update the temp file mirroring {}: {e}",
                path.display()
            );
        }
    }

    /// Set the mirror's length, as the simulated file's was; panics on failure like
    /// [`write_at`](Self::write_at).
    pub(super) fn set_len(&self, len: u64, path: &Path) {
        if let Err(e) = self.file.set_len(len) {
            panic!(
                "SimFs mapped reads: cannot resize the temp file mirroring {}: {e}",
                path.display()
            );
        }
    }

    /// Panic if shrinking the file at `path` to `new_len` breaks the contract of a live map;
    /// `written_end` is the end of the bytes written to it.
    pub(super) fn check_shrink(&mut self, new_len: u64, written_end: u64, path: &Path) {
        if std::thread::panicking() {
            // Unwinding from an earlier failure (often this check's, and then drops shrink the
            // file again): a second panic would abort the whole test binary.
            return;
        }
        self.is_mapped();
        for lease in &self.leases {
            match lease.kind {
                MapKind::ReadOnly { len } if new_len < len => panic!(
                    "SimFs: {} shrunk to {new_len} bytes under a live read-only map of its first \
                     {len} bytes (File::map_readonly: never shrink a mapped file below the map); \
                     reading the cut pages raises SIGBUS on a real file system",
                    path.display()
                ),
                MapKind::Growing if new_len < written_end => panic!(
                    "SimFs: {} shrunk to {new_len} bytes, below the {written_end} bytes written \
                     to it, under a live map_growing map (File::map_growing: never shrink a file \
                     below bytes that may still be read); a reader of the map can still read the \
                     cut bytes, which raises SIGBUS on a real file system: truncate a mapped file \
                     by copy and rename",
                    path.display()
                ),
                _ => {}
            }
        }
    }
}
