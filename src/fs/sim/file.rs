//! Open files and held locks of the simulated file system.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

use super::*;

/// A lock held in a [`SimFs`]; released on drop unless a crash already released it.
pub(super) struct SimLock {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) comps: Vec<String>,
    pub(super) generation: u64,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock")
            .field("path", &self.comps)
            .finish()
    }
}

impl FileLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.generation == self.generation {
            st.locks.remove(&self.comps);
        }
    }
}

/// A handle to a [`SimFs`] file. It refers to the inode, not the name: it keeps working after the
/// file is renamed, replaced or removed, until the next crash.
pub(super) struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) ino: u64,
    pub(super) generation: u64,
    pub(super) writable: bool,
    /// The path the file was opened with, for messages and fault matching.
    pub(super) path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .field("generation", &self.generation)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl SimFile {
    /// Locks the state, failing if the handle predates a crash.
    pub(super) fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = self.state.lock();
        if st.generation != self.generation {
            return Err(io::Error::other(STALE_MSG));
        }
        Ok(st)
    }

    pub(super) fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(err(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
                &self.path,
            ))
        }
    }

    pub(super) fn sync(&self) -> io::Result<()> {
        let mut st = self.lock()?;
        st.inode(self.ino)?;
        if let Err(e) = st.gate(FaultOp::Sync, &[&self.path]) {
            if st.lossy_failed_syncs {
                // As Linux may: the dirty pages are dropped (marked clean and evicted), so later
                // reads, and the next sync, see what the disk held. The length stays.
                let inode = st.inode_mut(self.ino)?;
                let kept = inode
                    .data
                    .iter()
                    .zip(inode.durable.iter().chain(std::iter::repeat(&0)))
                    .position(|(now, disk)| now != disk);
                if let Some(from) = kept {
                    let len = inode.data.len();
                    for i in from..len {
                        inode.data[i] = inode.durable.get(i).copied().unwrap_or(0);
                    }
                    let dropped = inode.data[from..].to_vec();
                    if let Some(mirror) = inode.live_mirror() {
                        mirror.write_at(&dropped, from as u64, &self.path);
                    }
                }
            }
            return Err(e);
        }
        let inode = st.inode_mut(self.ino)?;
        inode.durable.clone_from(&inode.data);
        st.done();
        Ok(())
    }
}

impl File for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let st = self.lock()?;
        let data = &st.inode(self.ino)?.data;
        let Ok(pos) = usize::try_from(pos) else {
            return Ok(0);
        };
        let Some(available) = data.get(pos..) else {
            return Ok(0);
        };
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut st = self.lock()?;
        self.check_writable()?;
        let end = pos
            .checked_add(buf.len() as u64)
            .ok_or_else(|| err(io::ErrorKind::InvalidInput, "offset overflow", &self.path))?;
        let end = checked_len(end, &self.path)?;
        let start = end - buf.len();
        st.inode(self.ino)?;
        st.gate(FaultOp::Write, &[&self.path])?;
        let inode = st.inode_mut(self.ino)?;
        if inode.data.len() < end {
            resize(&mut inode.data, end, &self.path)?;
        }
        inode.data[start..end].copy_from_slice(buf);
        // Zeros written ahead of the data (a segment's zeroed preallocation) are no more
        // readable than a sparse preallocated tail: cutting them under a map is allowed too.
        if buf.iter().any(|&b| b != 0) {
            inode.written_end = inode.written_end.max(end as u64);
        }
        if let Some(mirror) = inode.live_mirror() {
            mirror.write_at(buf, start as u64, &self.path);
        }
        st.done();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.lock()?;
        Ok(st.inode(self.ino)?.data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.lock()?;
        self.check_writable()?;
        let len = checked_len(len, &self.path)?;
        st.inode(self.ino)?;
        st.gate(FaultOp::SetLen, &[&self.path])?;
        let inode = st.inode_mut(self.ino)?;
        let new_len = len as u64;
        if new_len < inode.data.len() as u64 {
            let written_end = inode.written_end;
            if let Some(mirror) = inode.live_mirror() {
                mirror.check_shrink(new_len, written_end, &self.path);
            }
            inode.written_end = written_end.min(new_len);
        }
        resize(&mut inode.data, len, &self.path)?;
        if let Some(mirror) = inode.live_mirror() {
            mirror.set_len(new_len, &self.path);
        }
        st.done();
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn map_readonly(&self, len: u64) -> io::Result<Bytes> {
        let mut st = self.lock()?;
        let data = &st.inode(self.ino)?.data;
        let bytes = match usize::try_from(len).ok().and_then(|len| data.get(..len)) {
            Some(bytes) => bytes,
            None => {
                return Err(err(
                    io::ErrorKind::UnexpectedEof,
                    &format!("cannot map {len} bytes of a {}-byte file", data.len()),
                    &self.path,
                ))
            }
        };
        if !st.mapped_reads {
            return Ok(Bytes::copy_from_slice(bytes));
        }
        if len == 0 {
            // As `StdFs`: nothing to map.
            return Ok(Bytes::new());
        }
        st.map(self.ino, len, MapKind::ReadOnly { len })
    }

    fn map_growing(&self, len: u64) -> io::Result<Option<Bytes>> {
        let mut st = self.lock()?;
        st.inode(self.ino)?;
        if !st.mapped_reads || len == 0 {
            return Ok(None);
        }
        if len > MAX_FILE_LEN {
            return Err(err(
                io::ErrorKind::InvalidInput,
                "SimFs maps are limited to 4 GiB",
                &self.path,
            ));
        }
        st.map(self.ino, len, MapKind::Growing).map(Some)
    }
}
