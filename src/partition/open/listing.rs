//! Step 1 of opening a partition: what its directory holds. Reading it changes nothing.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::{parse_segment_file_name, SegmentFileKind, BATCH_HEADER_LEN};
use crate::fs::{FileSystem, OpenMode};

use super::super::checkpoint::{AdoptedLog, Checkpoint, CleanShutdown, CLEAN_SHUTDOWN};
use super::super::cleaner_checkpoint::CleanerCheckpoint;
use super::super::compaction::{CLEANED_SUFFIX, SWAP_SUFFIX};

/// The entries of a partition directory, sorted out by what they are (by name alone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(in crate::partition) struct DirListing {
    /// The directory.
    pub dir: PathBuf,
    /// Every entry, as listed.
    pub names: Vec<String>,
    /// Base offsets of the `.log` files, ascending.
    pub segments: Vec<u64>,
    /// `.index` and `.timeindex` files with their base offsets, as listed.
    pub indexes: Vec<(u64, String)>,
    /// `*.tmp` and `*.truncating`: atomic replaces a crash interrupted (the originals are intact).
    pub temporary: Vec<String>,
    /// `*.cleaned`: compaction output whose swap was not committed.
    pub cleaned: Vec<String>,
    /// `*.swap`: compaction output whose swap was committed (`<base>.log.swap` and its indexes),
    /// or index files left from one.
    pub swap: Vec<String>,
    /// Whether the clean-shutdown marker is there (whether or not it verifies).
    pub clean_marker: bool,
}

impl DirListing {
    /// List `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be read.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<DirListing> {
        let names = fs.read_dir(dir).at(dir)?;
        Ok(DirListing::from_names(dir, names))
    }

    /// Sort out `names`, the entries of `dir`.
    pub fn from_names(dir: &Path, names: Vec<String>) -> DirListing {
        let mut listing = DirListing {
            dir: dir.to_owned(),
            ..DirListing::default()
        };
        for name in &names {
            if name.ends_with(CLEANED_SUFFIX) {
                listing.cleaned.push(name.clone());
            } else if name.ends_with(SWAP_SUFFIX) {
                listing.swap.push(name.clone());
            } else if name.ends_with(".tmp") || name.ends_with(".truncating") {
                listing.temporary.push(name.clone());
            } else if name == CLEAN_SHUTDOWN {
                listing.clean_marker = true;
            } else {
                match parse_segment_file_name(name) {
                    Some((base, SegmentFileKind::Log)) => listing.segments.push(base),
                    Some((base, _)) => listing.indexes.push((base, name.clone())),
                    None => {}
                }
            }
        }
        listing.segments.sort_unstable();
        listing.names = names;
        listing
    }
}

/// A metadata file as found: decoded, absent, or there but failing its checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::partition) enum Stored<T> {
    Found(T),
    Missing,
    /// Why it does not verify.
    Damaged(String),
}

impl<T> Stored<T> {
    /// `Ok(None)` is missing, `Err(Corrupt)` damaged; any other error is the caller's.
    pub(super) fn from_read(read: Result<Option<T>>) -> Result<Stored<T>> {
        match read {
            Ok(Some(t)) => Ok(Stored::Found(t)),
            Ok(None) => Ok(Stored::Missing),
            Err(Error::Corrupt { reason, .. }) => Ok(Stored::Damaged(reason)),
            Err(e) => Err(e),
        }
    }
}

/// The partition's metadata files, read and checked, and (only when the checkpoint is gone and
/// no clean close vouches for it) whether the segments hold any data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::partition) struct Metadata {
    /// What the last clean close left, if it is there and verifies.
    pub marker: Option<CleanShutdown>,
    pub checkpoint: Stored<Checkpoint>,
    pub cleaner: Stored<CleanerCheckpoint>,
    /// Whether any segment holds a batch; `None` when it did not need looking at (the
    /// checkpoint or the marker says where the log starts).
    pub holds_data: Option<bool>,
    /// The marker of a log written by Kafka and adopted, if any.
    pub adopted: Stored<AdoptedLog>,
    /// topiclog had never opened the directory (it had no lock file): segments without any
    /// metadata of ours are a log written by someone else (a Kafka broker) to adopt.
    pub never_opened: bool,
}

impl Metadata {
    /// Read the metadata files of the partition in `listing`.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be read; damage is not an error here.
    pub fn read(fs: &dyn FileSystem, listing: &DirListing, never_opened: bool) -> Result<Metadata> {
        let dir = &listing.dir;
        let marker = match CleanShutdown::read(fs, dir) {
            Ok(m) => m,
            Err(Error::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        let checkpoint = Stored::from_read(Checkpoint::read(fs, dir))?;
        let holds_data = match (&checkpoint, marker) {
            (Stored::Found(_), _) | (_, Some(_)) => None,
            _ => Some(holds_data(fs, dir, &listing.names)?),
        };
        let cleaner = Stored::from_read(CleanerCheckpoint::read(fs, dir))?;
        let adopted = Stored::from_read(AdoptedLog::read(fs, dir))?;
        Ok(Metadata {
            marker,
            checkpoint,
            cleaner,
            holds_data,
            adopted,
            never_opened,
        })
    }
}

/// Whether any segment of the partition directory `dir` holds a batch: data always starts at the
/// first byte of a segment's `.log` (cleaned and swapped ones included); a new segment is empty
/// or preallocated zeros. Reads one header's worth of each.
pub(crate) fn holds_data(fs: &dyn FileSystem, dir: &Path, names: &[String]) -> Result<bool> {
    for name in names {
        let segment = matches!(
            parse_segment_file_name(name),
            Some((_, SegmentFileKind::Log))
        );
        if !(segment || name.contains(".log.")) {
            continue;
        }
        let path = dir.join(name);
        if fs.is_dir(&path).at(&path)? {
            continue;
        }
        let file = fs.open(&path, OpenMode::Read).at(&path)?;
        let len = file.len().at(&path)?;
        let mut head = vec![0u8; len.min(BATCH_HEADER_LEN as u64) as usize];
        file.read_exact_at(&mut head, 0).at(&path)?;
        if head.iter().any(|&b| b != 0) {
            return Ok(true);
        }
    }
    Ok(false)
}
