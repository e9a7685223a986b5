//! Opening a partition, as a pipeline of small steps, each testable alone:
//!
//! 1. [`DirListing::read`] and [`Metadata::read`]: what the directory holds (segments, index,
//!    temporary, compaction and metadata files; the checkpoint, clean-shutdown marker and cleaner
//!    checkpoint as found). Changes nothing.
//! 2. [`RecoveryPlan::decide`]: which checkpoint to trust, whether the clean close can be trusted,
//!    which segments to open as they are and which to rescan, what to delete and what to finish.
//!    Pure: no I/O. Refusals (damage under `Recovery::Strict`, an unknown log start) happen here,
//!    before anything on disk changes.
//! 3. [`RecoveryPlan::apply`]: does the I/O (tidying, loading or rescanning segments, writing the
//!    checkpoint, rebuilding the producer state) and hands back the [`Recovered`] state and its
//!    [`RecoveryReport`](super::RecoveryReport).
//!
//! [`recover_dir`] runs the three for `Partition::open_with` and for `Partition::recover` (the
//! in-place recovery of a poisoned partition).

mod apply;
mod listing;
mod plan;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::fs::FileSystem;
use crate::segment::Segment;

use super::checkpoint::Checkpoint;
use super::cleaner_checkpoint::CleanerCheckpoint;
use super::producer_state::ProducerTable;
use super::{PartitionConfig, RecoveryReport};

pub(crate) use listing::holds_data;
use listing::{DirListing, Metadata};
use plan::RecoveryPlan;

/// What a partition directory holds, recovered and ready to serve: what an open installs in a new
/// partition, and an in-place recovery in a poisoned one.
pub(super) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub active: Arc<Segment>,
    pub end: u64,
    pub start: u64,
    pub cleaner: CleanerCheckpoint,
    pub checkpoint: Checkpoint,
    /// The idempotent producers' state, if any ever wrote here.
    pub producers: Option<ProducerTable>,
    pub report: RecoveryReport,
}

/// Recover the partition in `dir` (whose lock the caller holds): list it, decide, apply.
pub(super) fn recover_dir(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    config: &PartitionConfig,
) -> Result<Recovered> {
    let listing = DirListing::read(&**fs, dir)?;
    let metadata = Metadata::read(&**fs, &listing)?;
    let plan = RecoveryPlan::decide(&listing, &metadata, config.recovery)?;
    plan.apply(fs, config)
}
