//! Segment file names: `<base offset, 20 digits>.<kind>`. One function builds them, one parses them.

use std::path::{Path, PathBuf};

/// The files that make up a segment, plus transient files.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentFileKind {
    /// The record batches.
    Log,
    /// Sparse offset → position index.
    OffsetIndex,
    /// Sparse timestamp → offset index.
    TimeIndex,
}

impl SegmentFileKind {
    /// The file extension, without the dot.
    pub const fn extension(self) -> &'static str {
        match self {
            SegmentFileKind::Log => "log",
            SegmentFileKind::OffsetIndex => "index",
            SegmentFileKind::TimeIndex => "timeindex",
        }
    }
}

/// Path of a segment file in `dir`.
///
/// ```
/// use topiclog::segment::{segment_file_name, SegmentFileKind};
/// let p = segment_file_name(std::path::Path::new("p0"), 42, SegmentFileKind::Log);
/// assert_eq!(p, std::path::Path::new("p0/00000000000000000042.log"));
/// ```
pub fn segment_file_name(dir: &Path, base_offset: u64, kind: SegmentFileKind) -> PathBuf {
    dir.join(format!("{base_offset:020}.{}", kind.extension()))
}

/// Parse a file name (no directory) built by [`segment_file_name`]; `None` for anything else.
///
/// ```
/// use topiclog::segment::{parse_segment_file_name, SegmentFileKind};
/// assert_eq!(parse_segment_file_name("00000000000000000042.index"), Some((42, SegmentFileKind::OffsetIndex)));
/// assert_eq!(parse_segment_file_name("42.index"), None);
/// ```
pub fn parse_segment_file_name(name: &str) -> Option<(u64, SegmentFileKind)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kind = match ext {
        "log" => SegmentFileKind::Log,
        "index" => SegmentFileKind::OffsetIndex,
        "timeindex" => SegmentFileKind::TimeIndex,
        _ => return None,
    };
    Some((stem.parse().ok()?, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_extremes() {
        for base in [0, 1, u64::MAX / 2, u64::MAX] {
            for kind in [
                SegmentFileKind::Log,
                SegmentFileKind::OffsetIndex,
                SegmentFileKind::TimeIndex,
            ] {
                let p = segment_file_name(Path::new(""), base, kind);
                let name = p.to_str().unwrap();
                assert_eq!(parse_segment_file_name(name), Some((base, kind)));
            }
        }
    }

    #[test]
    fn rejects_foreign_names() {
        for n in [
            "",
            "x.log",
            "0000000000000000000a.log",
            "00000000000000000000.log.tmp",
            "00000000000000000000",
            "99999999999999999999.log",
        ] {
            assert_eq!(parse_segment_file_name(n), None, "{n}");
        }
    }
}
