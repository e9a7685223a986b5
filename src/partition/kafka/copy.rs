//! File plumbing for moving segments: a hard link where the file system allows it, else a copy;
//! and the walk over batch headers that finds where each leader epoch begins.

use std::io;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::{parse_segment_file_name, BatchHeader, SegmentFileKind, BATCH_HEADER_LEN};
use crate::fs::{FileSystem, OpenMode};
use crate::progress::Meter;

/// Bytes moved per read when copying.
const CHUNK: usize = 1 << 20;

/// Give `dst` the contents of `src`: a hard link when `link` is set and the file system allows
/// it (same device), else a copy, synced, whose progress `meter` hears. Returns whether it
/// linked. The caller syncs `dst`'s directory.
pub(crate) fn link_or_copy(
    fs: &dyn FileSystem,
    src: &Path,
    dst: &Path,
    link: bool,
    meter: &mut Meter<'_>,
) -> Result<bool> {
    if link {
        match fs.hard_link(src, dst) {
            Ok(()) => return Ok(true),
            // Another device, a file system without hard links, or one that forbids them here
            // (Linux's protected_hardlinks, FAT): the bytes are what matters, copy them.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::CrossesDevices
                        | io::ErrorKind::Unsupported
                        | io::ErrorKind::PermissionDenied
                ) => {}
            Err(e) => return Err(Error::io(dst, e)),
        }
    }
    copy_file(fs, src, dst, meter)?;
    Ok(false)
}

/// Copy `src` to the new file `dst` and sync it; returns the bytes copied. `meter` hears how
/// far into the file the copy is.
pub(crate) fn copy_file(
    fs: &dyn FileSystem,
    src: &Path,
    dst: &Path,
    meter: &mut Meter<'_>,
) -> Result<u64> {
    let from = fs.open(src, OpenMode::Read).at(src)?;
    let len = from.len().at(src)?;
    let to = fs.open(dst, OpenMode::CreateNew).at(dst)?;
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    let mut pos = 0u64;
    while pos < len {
        let n = usize::try_from(len - pos).unwrap_or(CHUNK).min(buf.len());
        let chunk = &mut buf[..n];
        from.read_exact_at(chunk, pos).at(src)?;
        to.write_all_at(chunk, pos).at(dst)?;
        pos += n as u64;
        meter.at(pos);
    }
    to.sync_all().at(dst)?;
    Ok(len)
}

/// [`copy_file`], or an empty `dst` when `src` does not exist.
pub(crate) fn copy_file_or_empty(fs: &dyn FileSystem, src: &Path, dst: &Path) -> Result<u64> {
    if fs.exists(src).at(src)? {
        return copy_file(fs, src, dst, &mut Meter::off());
    }
    let to = fs.open(dst, OpenMode::CreateNew).at(dst)?;
    to.sync_all().at(dst)?;
    Ok(0)
}

/// The leader epoch a batch was written in: Kafka's partition leader epoch field (topiclog
/// writes 0; batches imported from Kafka keep theirs).
fn leader_epoch(header: &BatchHeader) -> i32 {
    header.partition_leader_epoch
}

/// Call `f` with the header and position of every batch of the `.log` at `path`, in order,
/// reading headers only (in windows of up to 1 MiB). Stops at the end of the file, or quietly at
/// the first bytes that are not a whole batch header or whose batch runs past the end of the
/// file: judging those is recovery's job.
pub(crate) fn walk_headers(
    fs: &dyn FileSystem,
    path: &Path,
    mut f: impl FnMut(&BatchHeader, u64) -> Result<()>,
) -> Result<()> {
    let file = fs.open(path, OpenMode::Read).at(path)?;
    let len = file.len().at(path)?;
    let mut window = Vec::new();
    let mut window_at = 0u64;
    let mut pos = 0u64;
    while pos + BATCH_HEADER_LEN as u64 <= len {
        let in_window =
            pos >= window_at && pos + BATCH_HEADER_LEN as u64 <= window_at + window.len() as u64;
        if !in_window {
            let n = usize::try_from(len - pos).unwrap_or(CHUNK).min(CHUNK);
            window.resize(n, 0);
            file.read_exact_at(&mut window, pos).at(path)?;
            window_at = pos;
        }
        let from = usize::try_from(pos - window_at).unwrap_or(usize::MAX);
        let Some(Ok(h)) = window.get(from..).map(BatchHeader::parse) else {
            return Ok(());
        };
        if pos + h.total_len() as u64 > len {
            return Ok(());
        }
        f(&h, pos)?;
        pos += h.total_len() as u64;
    }
    Ok(())
}

/// Where each leader epoch begins in the `.log` files of `dir`, as Kafka's
/// `LeaderEpochFileCache` holds it after recovering those segments (`LogSegment.recover` assigns
/// `(epoch, base offset)` for every batch whose epoch is above the latest) and truncating it to
/// the log start offset `start` (`truncateFromStart`: the entries at or below the start collapse
/// into the latest of them, moved to the start).
pub(crate) fn leader_epochs(
    fs: &dyn FileSystem,
    dir: &Path,
    start: u64,
) -> Result<Vec<(i32, u64)>> {
    let mut logs: Vec<u64> = fs
        .read_dir(dir)
        .at(dir)?
        .iter()
        .filter_map(|n| match parse_segment_file_name(n) {
            Some((base, SegmentFileKind::Log)) => Some(base),
            _ => None,
        })
        .collect();
    logs.sort_unstable();
    let mut entries: Vec<(i32, u64)> = Vec::new();
    for base in logs {
        let path = crate::format::segment_file_name(dir, base, SegmentFileKind::Log);
        walk_headers(fs, &path, |h, _| {
            let epoch = leader_epoch(h);
            if epoch >= 0 && entries.last().is_none_or(|&(latest, _)| epoch > latest) {
                let at = h.base_offset.max(start);
                if entries.last().is_some_and(|&(_, s)| s >= at) {
                    entries.pop();
                }
                entries.push((epoch, at));
            }
            Ok(())
        })?;
    }
    Ok(entries)
}
