//! The checks `dump` and `verify` share: walking a `.log` by its batches' length fields, checking a
//! batch (CRC, then decoding), and checking `.index` / `.timeindex` entries against the batches of
//! their `.log`. One piece of code for both index kinds: an entry is an offset with a position
//! (`.index`) or with a timestamp (`.timeindex`).
//!
//! Everything here only reads; nothing trusts a length it has not checked against what the file
//! holds.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use topiclog::fs::StdFs;
use topiclog::segment::{BatchHeader, OffsetIndex, RecordBatch, SegmentFileKind, TimeIndex};
use topiclog::Bytes;

/// Bytes of a batch's base offset and length fields: what a walk needs to step to the next batch
/// (Kafka's `LOG_OVERHEAD`).
pub const LOG_OVERHEAD: usize = 12;

/// Bytes of a batch's header, up to its first record (Kafka's `RECORD_BATCH_OVERHEAD`): fewer
/// at the end of a file are a header cut short.
pub const BATCH_HEADER_LEN: usize = 61;

/// One batch header found walking a `.log`, and where.
pub struct Walked {
    pub position: u64,
    pub header: BatchHeader,
    /// The bytes of the whole batch; `None` when the file ends inside it.
    pub bytes: Option<Bytes>,
}

/// How a walk over a `.log` ended.
pub enum WalkEnd {
    /// At the end of the file.
    Clean,
    /// At a zero-filled tail (preallocated space): `bytes` of zeros from `position`.
    ZeroTail { position: u64, bytes: u64 },
    /// At damage: no batch can be read from `position` on. `torn` when the file ends inside
    /// the batch there (a write cut short, or one a live writer is making).
    Damage {
        position: u64,
        message: String,
        torn: bool,
    },
}

/// Walk the batches of `log` by their length fields, as Kafka's `FileLogInputStream` does: each
/// header parsed (structure only), each batch's bytes handed over whole, or `None` when torn.
/// A batch whose CRC fails is still stepped over by its length, so later batches are seen.
pub fn walk(log: &Bytes, mut each: impl FnMut(Walked) -> io::Result<()>) -> io::Result<WalkEnd> {
    let mut pos = 0usize;
    while let Some(rest) = log.get(pos..).filter(|r| !r.is_empty()) {
        let position = pos as u64;
        if rest.iter().all(|&b| b == 0) {
            return Ok(WalkEnd::ZeroTail {
                position,
                bytes: rest.len() as u64,
            });
        }
        let header = match BatchHeader::parse(rest) {
            Ok(header) => header,
            Err(reason) => {
                let message = if rest.len() < LOG_OVERHEAD {
                    format!(
                        "{} bytes at the end of the file, too few for a batch's offset and \
                         length (a torn write)",
                        rest.len()
                    )
                } else {
                    format!("{reason} ({} bytes from here to the end)", rest.len())
                };
                return Ok(WalkEnd::Damage {
                    position,
                    message,
                    torn: rest.len() < BATCH_HEADER_LEN,
                });
            }
        };
        let size = header.total_len();
        let bytes = log
            .get(pos..pos.saturating_add(size))
            .map(|_| log.slice(pos..pos + size));
        let torn = bytes.is_none();
        each(Walked {
            position,
            header,
            bytes,
        })?;
        if torn {
            return Ok(WalkEnd::Damage {
                position,
                message: format!(
                    "torn batch: its length says {size} bytes, the file holds {} from here",
                    rest.len()
                ),
                torn: true,
            });
        }
        pos += size;
    }
    Ok(WalkEnd::Clean)
}

/// Whether the batch's stored CRC matches its bytes; `None` when it is cut short.
pub fn crc_valid(w: &Walked) -> Option<bool> {
    w.bytes
        .as_ref()
        .map(|b| BatchHeader::computed_crc(b) == Some(w.header.crc))
}

/// Check a whole batch found at `position`: its CRC, then (the CRC verifying) its decoding, which
/// checks the rest (codec, record framing). The damage is a position in the file and a message.
pub fn check_batch(
    position: u64,
    header: &BatchHeader,
    bytes: Bytes,
) -> Result<RecordBatch, (u64, String)> {
    let computed = BatchHeader::computed_crc(&bytes);
    if computed != Some(header.crc) {
        return Err((
            position,
            format!(
                "CRC mismatch: the batch stores {}, its bytes give {}",
                header.crc,
                computed.unwrap_or_default()
            ),
        ));
    }
    RecordBatch::decode(bytes).map_err(|(at, reason)| (position + at as u64, reason.to_owned()))
}

/// What index entries are checked against: every whole batch of a `.log`.
pub struct LogBatches {
    /// Batch headers by their position.
    by_position: HashMap<u64, BatchHeader>,
    /// For each batch's last offset: the largest timestamp of the segment up to that batch.
    max_timestamp_through: HashMap<u64, i64>,
    /// Where the whole batches end (a live writer may append past it).
    pub end_position: u64,
    /// The offset after the last whole batch, `None` without one.
    pub next_offset: Option<u64>,
}

impl LogBatches {
    /// The whole batches of `log`. Damage in the log is for the log's own check to report;
    /// entries pointing into or past it mismatch.
    pub fn of(log: &Bytes) -> LogBatches {
        let mut batches = LogBatches {
            by_position: HashMap::new(),
            max_timestamp_through: HashMap::new(),
            end_position: 0,
            next_offset: None,
        };
        let mut max_timestamp = i64::MIN;
        // The closure never fails, so neither does the walk.
        let _ = walk(log, |w| {
            if w.bytes.is_some() {
                max_timestamp = max_timestamp.max(w.header.max_timestamp);
                batches
                    .max_timestamp_through
                    .insert(w.header.last_offset(), max_timestamp);
                batches.end_position = w.position + w.header.total_len() as u64;
                batches.next_offset = Some(w.header.last_offset() + 1);
                batches.by_position.insert(w.position, w.header);
            }
            Ok(())
        });
        batches
    }
}

/// The two kinds of index file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// `.index`: offset → position.
    Offset,
    /// `.timeindex`: timestamp → offset.
    Time,
}

impl IndexKind {
    /// The kind of index a segment file is, `None` for a `.log` (or a kind this tool does not
    /// know).
    pub fn of(kind: SegmentFileKind) -> Option<IndexKind> {
        match kind {
            SegmentFileKind::OffsetIndex => Some(IndexKind::Offset),
            SegmentFileKind::TimeIndex => Some(IndexKind::Time),
            _ => None,
        }
    }

    /// Bytes of one entry.
    pub fn entry_len(self) -> u64 {
        match self {
            IndexKind::Offset => 8,
            IndexKind::Time => 12,
        }
    }
}

/// One index entry, its offset made absolute: with a position (`.index`) or a timestamp
/// (`.timeindex`).
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub offset: u64,
    pub position: Option<u32>,
    pub timestamp: Option<i64>,
}

/// What reading an index file finds, entry by entry.
pub enum IndexItem {
    /// Entry number `i`.
    Entry(usize, Entry),
    /// Entry number `i`, whose offset overflows the base offset (damage).
    Overflow(usize),
    /// From entry `from` on, `count` zero-filled entries: preallocated space, not entries (Kafka
    /// preallocates an active segment's index; relative offset 0 after the first entry is Kafka's
    /// `DumpLogSegments` rule). Nothing follows it.
    ZeroTail { from: usize, count: usize },
}

/// An index file, read.
pub struct IndexRead {
    pub items: Vec<IndexItem>,
    /// The file's length when it is not a whole number of entries (damage).
    pub partial: Option<u64>,
}

/// Read the index file at `path` of the segment at `base_offset` (through a read-only map). The
/// error is a message for the reader ("cannot read: ...").
pub fn read_index(path: &Path, base_offset: u64, kind: IndexKind) -> Result<IndexRead, String> {
    let cannot = |e: &dyn std::fmt::Display| format!("cannot read: {e}");
    let entries: Vec<Option<Entry>> = match kind {
        IndexKind::Offset => {
            let index =
                OffsetIndex::map(Arc::new(StdFs), path, base_offset, 0).map_err(|e| cannot(&e))?;
            (0..index.len())
                .map(|i| {
                    index.entry(i).map(|e| Entry {
                        offset: e.offset,
                        position: Some(e.position),
                        timestamp: None,
                    })
                })
                .collect()
        }
        IndexKind::Time => {
            let index =
                TimeIndex::map(Arc::new(StdFs), path, base_offset, 0).map_err(|e| cannot(&e))?;
            (0..index.len())
                .map(|i| {
                    index.entry(i).map(|e| Entry {
                        offset: e.offset,
                        position: None,
                        timestamp: Some(e.timestamp),
                    })
                })
                .collect()
        }
    };
    let total = entries.len();
    let mut items = Vec::with_capacity(total);
    for (i, entry) in entries.into_iter().enumerate() {
        let Some(entry) = entry else {
            items.push(IndexItem::Overflow(i));
            continue;
        };
        let zero = entry.offset == base_offset
            && entry.position.unwrap_or(0) == 0
            && entry.timestamp.unwrap_or(0) == 0;
        if i > 0 && zero {
            items.push(IndexItem::ZeroTail {
                from: i,
                count: total - i,
            });
            break;
        }
        items.push(IndexItem::Entry(i, entry));
    }
    let len = std::fs::metadata(path).map_err(|e| cannot(&e))?.len();
    let partial = (len % kind.entry_len() != 0).then_some(len);
    Ok(IndexRead { items, partial })
}

/// Checks a file's entries, in order, against its `.log`: Kafka's rules.
pub struct IndexChecker {
    kind: IndexKind,
    previous: Option<Entry>,
}

impl IndexChecker {
    pub fn new(kind: IndexKind) -> IndexChecker {
        IndexChecker {
            kind,
            previous: None,
        }
    }

    /// What is wrong with the next entry, if anything.
    pub fn check(&mut self, entry: &Entry, log: &LogBatches) -> Option<String> {
        let previous = self.previous.replace(*entry);
        match self.kind {
            IndexKind::Offset => {
                let position = entry.position.unwrap_or_default();
                match log.by_position.get(&u64::from(position)) {
                    _ if previous.is_some_and(|p| {
                        entry.offset <= p.offset || Some(position) <= p.position
                    }) =>
                    {
                        Some("entries must grow in offset and position".to_owned())
                    }
                    None => Some(format!("no batch of the log starts at position {position}")),
                    // Kafka's rule: an entry names the last offset of the batch at its position.
                    Some(h) if h.last_offset() != entry.offset => Some(format!(
                        "the batch at position {position} holds offsets {} to {}: the entry \
                         should name {}",
                        h.base_offset,
                        h.last_offset(),
                        h.last_offset()
                    )),
                    Some(_) => None,
                }
            }
            IndexKind::Time => {
                let timestamp = entry.timestamp.unwrap_or_default();
                match log.max_timestamp_through.get(&entry.offset) {
                    _ if previous.is_some_and(|p| {
                        Some(timestamp) <= p.timestamp || entry.offset < p.offset
                    }) =>
                    {
                        Some("entries must grow in timestamp (and not fall in offset)".to_owned())
                    }
                    None => Some(format!(
                        "no batch of the log ends at offset {}",
                        entry.offset
                    )),
                    // Kafka's rule: the segment's largest timestamp as of the batch the entry
                    // names.
                    Some(&max) if max != timestamp => Some(format!(
                        "the log's largest timestamp through offset {} is {max}",
                        entry.offset
                    )),
                    Some(_) => None,
                }
            }
        }
    }
}

/// Whether `entry` points past what `log` held when it was read: on the active segment of a live
/// store, a batch appended since (not damage).
pub fn past_the_end(entry: &Entry, log: &LogBatches) -> bool {
    match entry.position {
        Some(p) => u64::from(p) >= log.end_position,
        None => log.next_offset.is_none_or(|next| entry.offset >= next),
    }
}
