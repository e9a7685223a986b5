//! What a simulated crash loses ([`CrashMode`]) and the faults a test can arm ([`Fault`]).

use std::io;

#[allow(unused_imports)] // for doc links
use super::{File, FileSystem, SimFs};

/// How [`SimFs::crash`] treats bytes written but not synced.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every file reverts to exactly its synced content.
    LoseUnsynced,
    /// Every file keeps a random prefix of its unsynced content: for a uniform `k` in
    /// `0..=max(len, durable len)`, bytes before `k` come from the current content and bytes from
    /// `k` on from the synced content. Models a write that reached the disk only in part.
    Torn,
}

/// The kinds of mutating operation a [`Fault`] can target.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// [`File::write_all_at`].
    Write,
    /// [`File::sync_data`] and [`File::sync_all`].
    Sync,
    /// [`FileSystem::sync_dir`].
    SyncDir,
    /// Creating a file ([`FileSystem::open`] with `Create`/`CreateNew` when the file is new),
    /// directories ([`FileSystem::create_dir_all`] when it creates any) or a new name for a file
    /// ([`FileSystem::hard_link`]).
    Create,
    /// [`FileSystem::rename`].
    Rename,
    /// [`FileSystem::remove_file`] and [`FileSystem::remove_dir_all`].
    Remove,
    /// [`File::set_len`].
    SetLen,
    /// Every mutating operation.
    Any,
    /// Looking a path up ([`FileSystem::exists`], [`FileSystem::is_dir`]), as `stat(2)` does: to
    /// test that a failed lookup is reported, never taken for "absent". Not a mutating operation:
    /// [`FaultOp::Any`] does not match it, a power cut does not stop it and
    /// [`SimFs::mutating_ops`] does not count it.
    Stat,
}

/// A failure to inject with [`SimFs::inject`].
///
/// The fault counts the mutating operations that match `op` and `path_contains` (including ones
/// failed by other faults, excluding ones rejected earlier for ordinary reasons such as
/// `NotFound`); the `nth` of them (0-based) fails with `kind`, and, if `sticky`, so does every
/// later one. A failed operation changes nothing: a failed write writes no byte and a failed sync
/// makes nothing durable.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The operations this fault targets.
    pub op: FaultOp,
    /// If set, only operations on a path containing this string match (for [`FileSystem::rename`],
    /// either path; for file handles, the path the handle was opened with).
    pub path_contains: Option<String>,
    /// Which matching operation fails, counting from 0.
    pub nth: u64,
    /// The error kind to fail with, e.g. `Other` for EIO or `StorageFull` for ENOSPC.
    pub kind: io::ErrorKind,
    /// Whether every matching operation after the `nth` fails too.
    pub sticky: bool,
}

impl Fault {
    /// A non-sticky fault failing the `nth` (0-based) operation of kind `op`, on any path, with
    /// `ErrorKind::Other`.
    pub fn new(op: FaultOp, nth: u64) -> Self {
        Fault {
            op,
            path_contains: None,
            nth,
            kind: io::ErrorKind::Other,
            sticky: false,
        }
    }
}
