//! A Kafka export by a process that is not the partition's writer
//! ([`ReadOnlyPartition::export_kafka_with`]): the records are read through the read-only
//! reader (CRC-checked, never past what the writer made visible) and copied into new segment
//! files, never hard-linked, since nothing holds the writer's retention or compaction back.

use std::path::Path;
use std::sync::Arc;

use crate::config::LogConfig;
use crate::error::{Error, IoContext, Result};
use crate::format::{segment_file_name, SegmentFileKind};
use crate::fs::{create_dir_all_durable, FileSystem, OpenMode, StdFs};
use crate::readonly::ReadOnlyPartition;
use crate::segment::{Recovery, Segment};

use super::{KafkaPartitionExport, KafkaPartitionExportOptions};

impl ReadOnlyPartition {
    /// Write this partition as a Kafka partition directory at `dest` (which must not exist),
    /// while its writer may go on: as [`Partition::export_kafka_with`](crate::Partition::export_kafka_with),
    /// but every segment is copied (batch by batch, each CRC-checked; `hard_links` is ignored),
    /// from the log start to the end this reader sees when the export begins.
    ///
    /// # Errors
    /// An [`Error::Io`] of kind `AlreadyExists` for an existing `dest`; of kind `Interrupted` if
    /// the writer's retention removed records before they were copied (run it again); as
    /// [`read`](Self::read); [`Error::Io`] writing `dest` (what was written is removed).
    pub fn export_kafka_with(
        &self,
        dest: impl AsRef<Path>,
        options: &KafkaPartitionExportOptions,
    ) -> Result<KafkaPartitionExport> {
        let dest = dest.as_ref();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
        if fs.exists(dest).at(dest)? {
            return Err(Error::io(
                dest,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "an export writes a new partition directory: move this one away or choose \
                     another destination",
                ),
            ));
        }
        create_dir_all_durable(&*fs, dest).at(dest)?;
        match self.export_into(&fs, dest, options) {
            Ok(report) => Ok(report),
            Err(e) => {
                // Leave nothing a Kafka broker could mistake for a partition.
                let _ = fs.remove_dir_all(dest);
                if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                    let _ = fs.sync_dir(parent);
                }
                Err(e)
            }
        }
    }

    fn export_into(
        &self,
        fs: &Arc<dyn FileSystem>,
        dest: &Path,
        options: &KafkaPartitionExportOptions,
    ) -> Result<KafkaPartitionExport> {
        // The copies are exactly their data (no preallocation), and every byte was checked
        // when read (nothing to cut).
        let config = LogConfig {
            preallocate: false,
            recovery: Recovery::Strict,
            ..LogConfig::default()
        };
        let start = self.start_offset()?;
        let end = self.end_offset()?;
        let mut report = KafkaPartitionExport {
            dir: dest.to_owned(),
            start_offset: start,
            end_offset: end,
            segments: 0,
            hard_linked: 0,
            copied_bytes: 0,
            leader_epochs: Vec::new(),
            // Nothing tells a reader how far compaction got: everything counts as not yet
            // compacted (the adopting broker's cleaner goes over it again).
            first_dirty_offset: start,
        };
        // The export's own segments, each up to `segment_bytes`, each starting at its first
        // batch: the source's segment files may be merged or replaced by compaction while this
        // runs, but its offsets never change, so the copy follows the offsets, not the files.
        let mut out: Option<(u64, Arc<dyn crate::fs::File>, std::path::PathBuf, u64)> = None;
        let mut at = start;
        let mut last_base = None;
        while at < end {
            let batches = match self.read(at, 1 << 20) {
                Ok(b) => b,
                Err(Error::OffsetOutOfRange { start: moved, .. }) if at < moved => {
                    return Err(Error::io(
                        self.dir(),
                        std::io::Error::new(
                            std::io::ErrorKind::Interrupted,
                            format!(
                                "the writer's retention removed offsets below {moved} before they \
                                 were copied; run the export again"
                            ),
                        ),
                    ));
                }
                Err(e) => return Err(e),
            };
            if batches.is_empty() {
                break;
            }
            for b in batches.batches() {
                if b.base_offset() >= end {
                    break;
                }
                let bytes = b.as_bytes();
                if out
                    .as_ref()
                    .is_some_and(|o| o.3 + bytes.len() as u64 > config.segment_bytes)
                {
                    if let Some(o) = out.take() {
                        finish_segment(fs, dest, &config, o.0, &*o.1, &o.2)?;
                    }
                }
                if out.is_none() {
                    let base = b.base_offset();
                    if report.segments == 0 {
                        // Reads pass over batches that hold nothing at or after the start (what
                        // compaction emptied): the log starts at the first one copied.
                        report.start_offset = report.start_offset.max(base);
                    }
                    let path = segment_file_name(dest, base, SegmentFileKind::Log);
                    let file = fs.open(&path, OpenMode::CreateNew).at(&path)?;
                    out = Some((base, file, path, 0));
                    report.segments += 1;
                    last_base = Some(base);
                }
                if let Some(o) = out.as_mut() {
                    o.1.write_all_at(bytes, o.3).at(&o.2)?;
                    o.3 += bytes.len() as u64;
                }
                report.copied_bytes += bytes.len() as u64;
                at = b.next_offset();
            }
        }
        if let Some(o) = out.take() {
            finish_segment(fs, dest, &config, o.0, &*o.1, &o.2)?;
        }
        if at < end {
            // The reader reports damage as an error; never export a hole.
            return Err(Error::corrupt(
                self.dir(),
                0,
                format!("the records end at offset {at}, below the end {end} the writer published"),
            ));
        }
        report.first_dirty_offset = report.start_offset;
        // A segment at the end for Kafka to append to, unless the last one copied begins
        // there.
        let tail = (last_base != Some(end)).then_some(end);
        super::finish_export(fs, dest, tail, &config, options, &mut report)?;
        Ok(report)
    }
}

/// Sync the copied segment `base` (in `dest`, written through `file` at `path`), check every
/// batch of it again and build its indexes (`Segment::recover`), and seal it.
fn finish_segment(
    fs: &Arc<dyn FileSystem>,
    dest: &Path,
    config: &LogConfig,
    base: u64,
    file: &dyn crate::fs::File,
    path: &Path,
) -> Result<()> {
    file.sync_all().at(path)?;
    // `u64::MAX`: everything copied is durable, so anything invalid is an error, never cut.
    let (copy, _) = Segment::recover(fs.clone(), dest, base, config, u64::MAX)?;
    copy.seal()
}
